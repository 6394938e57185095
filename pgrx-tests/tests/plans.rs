//! Plans follow the acting user. The planner folds each user's scope into
//! the plan of a protected query (src/plans.rs), so a cached plan made for one
//! user must never run for another: every route by which PostgreSQL keeps a
//! plan is prepared or cached as one user, then run after each kind of
//! identity change and after grants committed in another session, as the
//! application role over real connections. The rows must always be exactly
//! the acting user's.

use fluent_pgrx_tests::{
    app_session, connect, connect_with_options, fresh_database, sqlstate, tester_session, APP,
    AUTHENTICATOR,
};
use postgres::{Client, Transaction};

/// Who owns the rows of `items`, and what each user sees (by owner).
const SEES_ALL: &[&str] = &["ann", "ben", "cat", "lee", "vic"];
const ANN: &[&str] = &["ann"];
const LEE: &[&str] = &["ben", "lee"];
const NOBODY: &[&str] = &[];

fn database(name: &str) -> String {
    let database = fresh_database(name);
    let mut db = connect(&database, "postgres");
    db.batch_execute(
        "SELECT fluent_create_module('items');
         SELECT fluent_create_role('clerk'), fluent_create_role('auditor'), fluent_create_role('lead');
         SELECT fluent_set_permission('clerk', 'items', a, 'own') FROM unnest('{read,write}'::text[]) a;
         SELECT fluent_set_permission('auditor', 'items', a, 'all') FROM unnest('{read,write}'::text[]) a;
         SELECT fluent_set_permission('lead', 'items', 'read', 'team');
         SELECT fluent_create_user(u) FROM unnest('{ann,ben,cat,vic,lee,nel}'::text[]) u;
         SELECT fluent_grant_role('ann', 'clerk'), fluent_grant_role('ben', 'clerk'),
                fluent_grant_role('vic', 'auditor'), fluent_grant_role('lee', 'lead');
         SELECT fluent_create_team('desk'), fluent_add_team_member('desk', 'lee', true),
                fluent_add_team_member('desk', 'ben');
         CREATE TABLE items (id int PRIMARY KEY, owner text NOT NULL, body text);
         CREATE INDEX ON items (owner);
         INSERT INTO items VALUES (1, 'ann', 'a'), (2, 'ann', 'b'), (3, 'ben', 'c'), (4, 'cat', 'd'),
                                  (5, 'vic', 'e'), (6, 'lee', 'f');
         SELECT fluent_protect('items', 'items', 'owner');
         SELECT fluent_create_workspace('elsewhere');",
    )
    .unwrap();
    db.batch_execute(&format!(
        "GRANT SELECT, INSERT, UPDATE ON items TO {APP};
         CREATE FUNCTION owners_seen() RETURNS text[] LANGUAGE plpgsql AS
             $$ BEGIN RETURN (SELECT coalesce(array_agg(DISTINCT owner ORDER BY owner), '{{}}') FROM items); END $$;
         CREATE FUNCTION owners_seen_sql() RETURNS text[] LANGUAGE sql STABLE AS
             $$ SELECT coalesce(array_agg(DISTINCT owner ORDER BY owner), '{{}}') FROM items $$;
         -- runs as vic whoever calls it (a superuser-owned function's SET clause)
         CREATE FUNCTION owners_seen_by_vic() RETURNS text[] LANGUAGE plpgsql SECURITY DEFINER
             SET fluent.acting_user = 'vic' SET search_path = public, pg_temp AS
             $$ BEGIN RETURN owners_seen(); END $$;
         GRANT EXECUTE ON FUNCTION owners_seen_by_vic() TO {APP};"
    ))
    .unwrap();
    database
}

const OWNERS: &str =
    "SELECT coalesce(array_agg(DISTINCT owner ORDER BY owner), '{}') FROM items WHERE id > $1";

fn owners(rows: Vec<postgres::Row>) -> Vec<String> {
    rows[0].get(0)
}

fn expect(seen: Vec<String>, expected: &[&str], after: &str) {
    assert_eq!(seen, expected, "rows seen {after}");
}

/// The test role switches to another user (RESET ROLE / set user / SET
/// ROLE; an authenticator may not, see identity.rs).
fn act_as(client: &mut Client, user: &str) {
    client
        .batch_execute(&format!(
            "RESET ROLE; SELECT fluent_set_user('{user}'); SET ROLE {APP}"
        ))
        .unwrap();
}

/// The owners a query returning one text[] sees, run with the simple query
/// protocol (as psql runs it: one message, one transaction).
fn simple(client: &mut Client, query: &str) -> Vec<String> {
    let messages = client.simple_query(query).unwrap();
    let Some(row) = messages.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    }) else {
        panic!("{query} returned no row")
    };
    let text = row.get(0).unwrap().trim_matches(['{', '}']);
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Prepares the `owners` statement in `mode` and runs it often enough for
/// the plan cache to settle on a generic plan, checking it sees `sees`.
fn prepare_owners(client: &mut Client, mode: &str, sees: &[&str]) {
    client
        .batch_execute(&format!(
            "SET plan_cache_mode = {mode}; PREPARE owners(int) AS {OWNERS}"
        ))
        .unwrap();
    for _ in 0..6 {
        expect(prepared(client), sees, &format!("{mode}: as prepared"));
    }
}

fn prepared(client: &mut Client) -> Vec<String> {
    simple(client, "EXECUTE owners(0)")
}

#[test]
fn a_prepared_statement_follows_every_identity_change() {
    let database = database("plans_prepared");
    for mode in ["auto", "force_generic_plan", "force_custom_plan"] {
        let mut c = tester_session(&database, "vic");
        prepare_owners(&mut c, mode, SEES_ALL);
        act_as(&mut c, "ann");
        expect(prepared(&mut c), ANN, &format!("{mode}: vic -> ann"));
        act_as(&mut c, "lee");
        expect(prepared(&mut c), LEE, &format!("{mode}: ann -> lee"));
        act_as(&mut c, "nel");
        expect(prepared(&mut c), NOBODY, &format!("{mode}: lee -> nel"));
        act_as(&mut c, "vic");
        expect(prepared(&mut c), SEES_ALL, &format!("{mode}: nel -> vic"));

        // anyone may drop their identity, also the application role
        c.batch_execute("SELECT fluent_reset_user()").unwrap();
        expect(prepared(&mut c), NOBODY, &format!("{mode}: reset"));
        act_as(&mut c, "vic");

        // a local identity ends with its transaction
        c.batch_execute(
            "RESET ROLE; BEGIN; SELECT fluent_set_user('ann', true); SET LOCAL ROLE it_app",
        )
        .unwrap();
        expect(prepared(&mut c), ANN, &format!("{mode}: local ann"));
        c.batch_execute("COMMIT; SET ROLE it_app").unwrap();
        expect(
            prepared(&mut c),
            SEES_ALL,
            &format!("{mode}: after the local ann"),
        );

        // ... and with the savepoint it was set after
        c.batch_execute("RESET ROLE; BEGIN; SAVEPOINT s; SELECT fluent_set_user('ann', true); SET LOCAL ROLE it_app")
            .unwrap();
        expect(
            prepared(&mut c),
            ANN,
            &format!("{mode}: ann after a savepoint"),
        );
        c.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
        expect(
            prepared(&mut c),
            SEES_ALL,
            &format!("{mode}: rolled back to vic"),
        );
        c.batch_execute("COMMIT; SET ROLE it_app").unwrap();

        // a function's SET clause, inside and after
        let inside = simple(&mut c, "SELECT owners_seen_by_vic()");
        expect(
            inside,
            SEES_ALL,
            &format!("{mode}: inside a function acting as vic"),
        );
        act_as(&mut c, "ann");
        let inside = simple(&mut c, "SELECT owners_seen_by_vic()");
        expect(
            inside,
            SEES_ALL,
            &format!("{mode}: ann calls a function acting as vic"),
        );
        expect(
            prepared(&mut c),
            ANN,
            &format!("{mode}: ann after the function"),
        );

        // another workspace, where ann holds nothing, and back
        c.batch_execute("RESET ROLE; SELECT fluent_set_workspace('elsewhere'); SET ROLE it_app")
            .unwrap();
        expect(
            prepared(&mut c),
            NOBODY,
            &format!("{mode}: ann in another workspace"),
        );
        c.batch_execute("RESET ROLE; SELECT fluent_set_workspace('default'); SET ROLE it_app")
            .unwrap();
        expect(
            prepared(&mut c),
            ANN,
            &format!("{mode}: ann back in default"),
        );
    }
}

#[test]
fn a_superuser_setting_the_identity_directly_replans() {
    let database = database("plans_superuser");
    let mut c = connect(&database, "postgres");
    c.batch_execute(&format!(
        "SET plan_cache_mode = force_generic_plan; SET fluent.acting_user = 'vic'; SET ROLE {APP};
         PREPARE owners(int) AS {OWNERS}"
    ))
    .unwrap();
    expect(prepared(&mut c), SEES_ALL, "as vic");
    c.batch_execute("RESET ROLE; SET fluent.acting_user = 'ann'; SET ROLE it_app")
        .unwrap();
    expect(prepared(&mut c), ANN, "SET fluent.acting_user = 'ann'");
    c.batch_execute("RESET ROLE; RESET fluent.acting_user; SET ROLE it_app")
        .unwrap();
    expect(prepared(&mut c), NOBODY, "RESET fluent.acting_user");
}

#[test]
fn plpgsql_and_sql_function_plans_follow_the_identity() {
    let database = database("plans_functions");
    let mut c = tester_session(&database, "vic");
    c.batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    for function in ["owners_seen", "owners_seen_sql"] {
        let call = format!("SELECT {function}()");
        for (user, sees) in [
            ("vic", SEES_ALL),
            ("ann", ANN),
            ("vic", SEES_ALL),
            ("nel", NOBODY),
            ("lee", LEE),
        ] {
            act_as(&mut c, user);
            for _ in 0..3 {
                let seen = simple(&mut c, &call);
                expect(seen, sees, &format!("{function} as {user}"));
            }
        }
    }
}

/// How a connection pool runs a client's transaction: the identity is local
/// to it, and the statement was prepared once per server connection
/// (extended protocol, a named statement).
fn pooled(tx: &mut Transaction<'_>, user: &str, statement: &postgres::Statement) -> Vec<String> {
    tx.execute("SELECT fluent_set_user($1, true)", &[&user])
        .unwrap();
    tx.batch_execute(&format!("SET LOCAL ROLE {APP}")).unwrap();
    owners(tx.query(statement, &[&0i32]).unwrap())
}

#[test]
fn extended_protocol_statements_follow_per_transaction_identities() {
    let database = database("plans_pool");
    for mode in ["auto", "force_generic_plan"] {
        let mut c = connect(&database, AUTHENTICATOR);
        c.batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .unwrap();
        let statement = c.prepare(OWNERS).unwrap();
        let users = [
            ("vic", SEES_ALL),
            ("ann", ANN),
            ("nel", NOBODY),
            ("lee", LEE),
        ];
        for round in 0..3 {
            for (user, sees) in users.iter().chain(users.iter().rev()) {
                let mut tx = c.transaction().unwrap();
                let seen = pooled(&mut tx, user, &statement);
                tx.commit().unwrap();
                expect(
                    seen,
                    sees,
                    &format!("{mode}, round {round}, transaction as {user}"),
                );
            }
        }
        // between transactions the connection acts for nobody
        c.batch_execute(&format!("SET ROLE {APP}")).unwrap();
        expect(
            owners(c.query(&statement, &[&0i32]).unwrap()),
            NOBODY,
            "between transactions",
        );
    }
}

/// An acting user, what they see at first, then each change committed by the
/// DBA and what they see after it.
type CatalogChanges<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a [&'a str])]);

#[test]
fn a_cached_plan_follows_grants_committed_in_another_session() {
    let database = database("plans_catalog");
    let mut admin = connect(&database, "postgres");
    let changes: [CatalogChanges; 2] = [
        (
            "ann",
            ANN,
            &[
                ("SELECT fluent_grant_role('ann', 'auditor')", SEES_ALL),
                ("SELECT fluent_revoke_role('ann', 'auditor')", ANN),
                ("SELECT fluent_revoke_role('ann', 'clerk')", NOBODY),
                ("SELECT fluent_grant_role('ann', 'clerk')", ANN),
                (
                    "SELECT fluent_set_override('ann', 'items', 'read', 'all')",
                    SEES_ALL,
                ),
                ("SELECT fluent_clear_override('ann', 'items', 'read')", ANN),
                ("SELECT fluent_set_module_enabled('items', false)", NOBODY),
                ("SELECT fluent_set_module_enabled('items', true)", ANN),
            ],
        ),
        (
            "lee",
            LEE,
            &[
                (
                    "SELECT fluent_add_team_member('desk', 'cat')",
                    &["ben", "cat", "lee"],
                ),
                ("SELECT fluent_remove_team_member('desk', 'cat')", LEE),
            ],
        ),
    ];
    for mode in ["force_generic_plan", "auto"] {
        for (user, first, steps) in changes {
            let mut c = app_session(&database, user);
            prepare_owners(&mut c, mode, first);
            for (change, sees) in steps {
                admin.batch_execute(change).unwrap();
                expect(
                    prepared(&mut c),
                    sees,
                    &format!("{mode}: {user} after {change}"),
                );
            }
        }
    }
}

#[test]
fn the_first_query_of_a_fresh_backend_is_planned_for_its_user() {
    let database = database("plans_fresh");
    // A fresh backend that has not loaded fluent: the identity is a
    // placeholder setting until the library loads, which happens while the
    // first protected query is planned.
    for (user, sees) in [("ann", ANN), ("vic", SEES_ALL), ("nel", NOBODY)] {
        let mut c = connect_with_options(
            &database,
            "postgres",
            &format!("-c fluent.acting_user={user}"),
        );
        let loaded = |c: &mut Client| -> bool {
            // a placeholder setting is not listed in pg_settings
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_settings WHERE name = 'fluent.acting_user'",
                    &[],
                )
                .unwrap()
                .get(0);
            n == 1
        };
        assert!(
            !loaded(&mut c),
            "fluent is not loaded before the first protected query"
        );
        c.batch_execute(&format!("SET ROLE {APP}")).unwrap();
        let seen = owners(c.query(OWNERS, &[&0i32]).unwrap());
        expect(
            seen,
            sees,
            &format!("first query of a fresh backend as {user}"),
        );
        assert!(loaded(&mut c), "planning the protected query loaded fluent");
        let plan: Vec<String> = c
            .query(
                &format!("EXPLAIN (COSTS OFF) {}", OWNERS.replace("$1", "0")),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            !plan.join("\n").contains("rls_"),
            "the policy was folded on the first query: {plan:?}"
        );
    }
}

/// The policies compare keys in the key column's collation, so that its
/// index serves them; under a nondeterministic one another user's key would
/// equal the acting user's (`ann` and `ANN`, or `ann` followed by a
/// zero-width space), and that user would read and write the acting user's
/// rows. A key column with such a collation is refused, whatever its role,
/// and nothing of the protection is left behind.
#[test]
fn a_key_column_under_a_nondeterministic_collation_is_refused() {
    let database = fresh_database("nondeterministic_keys");
    let mut db = connect(&database, "postgres");
    // Nondeterministic collations come from ICU: a build without it has none.
    if let Err(e) = db.batch_execute(
        "CREATE COLLATION nd (provider = icu, locale = 'und', deterministic = false)",
    ) {
        assert_eq!(
            sqlstate(Err::<(), _>(e)),
            "0A000",
            "only a build without ICU refuses it"
        );
        eprintln!("skipped: this PostgreSQL has no ICU, so no nondeterministic collation");
        return;
    }
    db.batch_execute(
        "SELECT fluent_create_module('notes');
         CREATE TABLE by_owner (id int PRIMARY KEY, owner text COLLATE nd NOT NULL);
         CREATE TABLE by_workspace (id int PRIMARY KEY, owner text NOT NULL, ws varchar COLLATE nd NOT NULL);
         CREATE TABLE by_reader (id int PRIMARY KEY, owner text NOT NULL);
         CREATE TABLE readers (note_id int NOT NULL, user_key text COLLATE nd NOT NULL);
         CREATE TABLE by_c_owner (id int PRIMARY KEY, owner text COLLATE \"C\" NOT NULL);",
    )
    .unwrap();
    for (protect, table, what) in [
        (
            "fluent_protect('by_owner', 'notes', 'owner')",
            "by_owner",
            "owner column",
        ),
        (
            "fluent_protect('by_workspace', 'notes', 'owner', workspace_column => 'ws')",
            "by_workspace",
            "workspace column",
        ),
        (
            "fluent_protect('by_reader', 'notes', 'owner', 'readers', 'note_id', 'user_key')",
            "by_reader",
            "membership user column",
        ),
    ] {
        let error = db
            .batch_execute(&format!("SELECT {protect}"))
            .expect_err(protect);
        let error = error.as_db_error().expect("a server error");
        assert_eq!(error.code().code(), "0A000", "{protect}: {error}");
        assert!(
            error.message().contains("nondeterministic") && error.message().contains(what),
            "{protect}: {}",
            error.message()
        );
        let left: i64 = db
            .query_one(
                "SELECT (SELECT count(*) FROM pg_policy WHERE polrelid IN ($1::text::regclass, 'readers'::regclass))
                      + (SELECT count(*) FROM fluent.protected_tables WHERE table_name = $1::text::regclass)",
                &[&table],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{protect} left policies or a record behind");
    }
    // A deterministic collation other than the default is fine.
    db.batch_execute("SELECT fluent_protect('by_c_owner', 'notes', 'owner')")
        .unwrap();
}
