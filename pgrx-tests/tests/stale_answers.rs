//! Stale answers (issue 18, item 2), over real connections: a change rolled
//! back by the backend that made it, an identity changed while a plan was
//! made, and a revoke committed by another session while a READ COMMITTED
//! transaction stays open. Each answer must be the one of the catalog and
//! identity in force at the statement.

use fluent_pgrx_tests::{
    api_schema, connect, connect_with_options, fresh_database, sqlstate, wait_until, APP, TESTER,
};
use postgres::Client;

/// ann may read her own docs; boss all of them (docs 1..=10 are ann's, 33 in
/// all).
fn seed(database: &str) {
    let mut db = connect(database, "postgres");
    db.batch_execute(&format!(
        "SELECT fluent_create_module('docs');
         SELECT fluent_create_role('own_r'), fluent_set_permission('own_r', 'docs', 'read', 'own');
         SELECT fluent_create_role('all_r'), fluent_set_permission('all_r', 'docs', 'read', 'all');
         SELECT fluent_create_user(u) FROM unnest('{{ann,boss,del}}'::text[]) u;
         SELECT fluent_grant_role('ann', 'own_r'), fluent_grant_role('boss', 'all_r');
         -- del administers users and roles through the application.
         SELECT fluent_create_module('admin', '{{manage}}');
         SELECT fluent_create_role('admins'), fluent_set_permission('admins', 'admin', 'manage', 'all');
         SELECT fluent_set_admin_right('assign_roles', 'admin', 'manage');
         SELECT fluent_set_admin_right('assign_beyond_own', 'admin', 'manage');
         SELECT fluent_grant_role('del', 'admins'), fluent_grant_role('del', 'all_r');
         CREATE TABLE docs (id int PRIMARY KEY, owner text);
         INSERT INTO docs SELECT i, CASE WHEN i <= 10 THEN 'ann' ELSE 'x' || i END FROM generate_series(1, 33) i;
         SELECT fluent_protect('docs', 'docs', 'owner');
         GRANT SELECT ON docs TO {APP};
         CREATE FUNCTION drop_identity() RETURNS boolean LANGUAGE plpgsql IMMUTABLE
             AS 'BEGIN PERFORM fluent_reset_user(); RETURN true; END';
         CREATE FUNCTION count_docs_pl() RETURNS bigint LANGUAGE plpgsql STABLE
             AS 'BEGIN RETURN (SELECT count(*) FROM docs); END';
         -- SQL functions that are not inlined, called from PL/pgSQL: they
         -- keep their plans for the PL/pgSQL expression's life.
         CREATE FUNCTION count_docs() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM docs';
         CREATE FUNCTION count_docs_atomic() RETURNS bigint LANGUAGE sql STABLE
             BEGIN ATOMIC SELECT count(*) FROM docs; END;
         CREATE FUNCTION pl_sqlfn() RETURNS text LANGUAGE plpgsql
             AS 'BEGIN RETURN count_docs() || '' '' || count_docs_atomic(); END';"
    ))
    .unwrap();
}

fn scope(client: &mut Client, user: &str) -> String {
    client
        .query_one("SELECT fluent_scope($1, 'docs', 'read')", &[&user])
        .unwrap()
        .get(0)
}

fn count(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap().get(0)
}

/// The one number `sql` returns, through the simple query protocol.
fn simple_count(client: &mut Client, sql: &str) -> i64 {
    let messages = client.simple_query(sql).unwrap();
    let row = messages.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    row.and_then(|r| r.get(0)?.parse().ok())
        .unwrap_or_else(|| panic!("{sql} returned no number"))
}

#[test]
fn a_rolled_back_change_leaves_nothing_in_the_writers_cache() {
    let db = fresh_database("stale_rollback");
    seed(&db);
    // A delegated administrator's grant, through the application: the grant
    // reads the grantee by itself, so the writer caches the uncommitted row.
    let mut app = connect(&db, TESTER);
    app.batch_execute(&format!("SELECT fluent_set_user('del'); SET ROLE {APP}"))
        .unwrap();
    assert_eq!(scope(&mut app, "ann"), "own");
    app.batch_execute("BEGIN; SELECT fluent_grant_role('ann', 'all_r')")
        .unwrap();
    assert_eq!(
        scope(&mut app, "ann"),
        "all",
        "the transaction sees its grant"
    );
    app.batch_execute("ROLLBACK").unwrap();
    assert_eq!(scope(&mut app, "ann"), "own", "after ROLLBACK");
    // The same through a savepoint, and a folded plan in between.
    app.batch_execute("RESET ROLE").unwrap();
    app.batch_execute(&format!(
        "BEGIN; SET LOCAL ROLE {APP}; SAVEPOINT s; SELECT fluent_grant_role('ann', 'all_r');
         RESET ROLE; SELECT fluent_set_user('ann', true); SET LOCAL ROLE {APP};
         PREPARE ann_docs AS SELECT count(*) FROM docs"
    ))
    .unwrap();
    assert_eq!(count(&mut app, "EXECUTE ann_docs"), 33);
    app.batch_execute(&format!(
        "ROLLBACK TO SAVEPOINT s; RESET ROLE; SELECT fluent_set_user('ann', true); SET LOCAL ROLE {APP}"
    ))
    .unwrap();
    assert_eq!(scope(&mut app, "ann"), "own", "after ROLLBACK TO SAVEPOINT");
    assert_eq!(
        count(&mut app, "EXECUTE ann_docs"),
        10,
        "the plan folded from the rolled-back grant"
    );
    app.batch_execute("COMMIT").unwrap();
    assert_eq!(
        scope(&mut app, "ann"),
        "own",
        "after the transaction committed"
    );
    // Every other session agrees.
    let mut other = connect(&db, TESTER);
    assert_eq!(scope(&mut other, "ann"), "own");
    // Prepared (two-phase commit), then rolled back by another session,
    // which sends no message.
    app.batch_execute(&format!(
        "SET ROLE {APP}; BEGIN; SELECT fluent_grant_role('ann', 'all_r')"
    ))
    .unwrap();
    assert_eq!(scope(&mut app, "ann"), "all", "the prepared grant");
    app.batch_execute("PREPARE TRANSACTION 'grant_ann'")
        .unwrap();
    connect(&db, "postgres")
        .batch_execute("ROLLBACK PREPARED 'grant_ann'")
        .unwrap_or_else(|e| panic!("ROLLBACK PREPARED: {e}"));
    assert_eq!(scope(&mut app, "ann"), "own", "after ROLLBACK PREPARED");
}

#[test]
fn an_identity_changed_while_planning_is_refused() {
    let db = fresh_database("stale_planning");
    seed(&db);
    let mut auth = connect(&db, "postgres");
    auth.batch_execute(&format!(
        "GRANT EXECUTE ON FUNCTION drop_identity() TO {APP};
         BEGIN; SELECT fluent_set_user('boss', true); SET LOCAL ROLE {APP};
         PREPARE mid AS SELECT (SELECT count(*) FROM docs) WHERE drop_identity()"
    ))
    .unwrap();
    // Planning folds boss's answer, then the planner runs drop_identity().
    assert_eq!(sqlstate(auth.query("EXECUTE mid", &[])), "55000");
    auth.batch_execute("ROLLBACK").unwrap();
    auth.batch_execute(&format!(
        "BEGIN; SELECT fluent_set_user('ann', true); SET LOCAL ROLE {APP};"
    ))
    .unwrap();
    // Planned for ann, the plan still resets the identity while planning,
    // but folded nothing before: it reads as nobody, as the statement ends.
    let rows = auth.query("EXECUTE mid", &[]);
    assert!(
        matches!(&rows, Ok(r) if r.iter().all(|row| row.get::<_, i64>(0) <= 10))
            || sqlstate(rows) == "55000",
        "never boss's 33"
    );
    auth.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn a_revoke_reaches_an_open_read_committed_transaction_at_its_next_statement() {
    let db = fresh_database("stale_revoke");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut reader = connect(&db, TESTER);
    reader
        .batch_execute(&format!(
            "BEGIN; SELECT fluent_set_user('boss', true); SET LOCAL ROLE {APP};
             PREPARE all_docs AS SELECT count(*) FROM docs"
        ))
        .unwrap();
    assert_eq!(count(&mut reader, "EXECUTE all_docs"), 33);
    assert_eq!(count(&mut reader, "SELECT count_docs_pl()"), 33);
    assert!(reader
        .query_one("SELECT fluent_can('docs', 'read')", &[])
        .unwrap()
        .get::<_, bool>(0));
    dba.batch_execute("SELECT fluent_revoke_role('boss', 'all_r')")
        .unwrap();
    // The reader's transaction is still open; its next statements see the
    // revoke, by every route.
    assert_eq!(
        count(&mut reader, "EXECUTE all_docs"),
        0,
        "prepared statement"
    );
    assert_eq!(
        count(&mut reader, "SELECT count_docs_pl()"),
        0,
        "PL/pgSQL plan"
    );
    assert!(!reader
        .query_one("SELECT fluent_can('docs', 'read')", &[])
        .unwrap()
        .get::<_, bool>(0));
    dba.batch_execute("SELECT fluent_grant_role('boss', 'all_r')")
        .unwrap();
    assert_eq!(count(&mut reader, "EXECUTE all_docs"), 33, "and a grant");
    reader.batch_execute("COMMIT").unwrap();
}

#[test]
fn sql_function_plans_follow_identity_changes_and_revokes_inside_a_transaction() {
    let db = fresh_database("stale_sqlfn");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut session = connect(&db, "postgres");
    let sqlfn = |client: &mut Client| -> String {
        client.query_one("SELECT pl_sqlfn()", &[]).unwrap().get(0)
    };
    // A trusted switch of identity, then fluent_reset_user().
    session
        .batch_execute(&format!(
            "BEGIN; SELECT fluent_set_user('boss'); SET LOCAL ROLE {APP}"
        ))
        .unwrap();
    assert_eq!(sqlfn(&mut session), "33 33");
    session
        .batch_execute(&format!(
            "RESET ROLE; SELECT fluent_set_user('ann'); SET LOCAL ROLE {APP}"
        ))
        .unwrap();
    assert_eq!(sqlfn(&mut session), "10 10", "after the switch to ann");
    session.batch_execute("SELECT fluent_reset_user()").unwrap();
    assert_eq!(sqlfn(&mut session), "0 0", "after fluent_reset_user()");
    session.batch_execute("COMMIT").unwrap();
    // A revoke committed by another session while the transaction is open.
    session
        .batch_execute(&format!(
            "BEGIN; SELECT fluent_set_user('boss'); SET LOCAL ROLE {APP}"
        ))
        .unwrap();
    assert_eq!(sqlfn(&mut session), "33 33");
    dba.batch_execute("SELECT fluent_revoke_role('boss', 'all_r')")
        .unwrap();
    assert_eq!(sqlfn(&mut session), "0 0", "after the revoke");
    session.batch_execute("COMMIT").unwrap();
}

/// The extended protocol (README, "How plans follow identity and the
/// catalog"): a statement prepared there and bound again in the same
/// transaction is not parsed again, and PostgreSQL checks its kept plan at
/// Bind, where it takes no new lock and so no invalidation message. A folded
/// plan locks the sentinel relation, whose lock each execution leaves to be
/// taken anew: the next Bind takes the revoke in and plans again. Each
/// `plan_cache_mode`, a plan that folds nothing (`fluent_can`) and a
/// function's plan under a statement bound again.
#[test]
fn a_named_extended_protocol_statement_sees_a_revoke_at_its_next_bind() {
    let db = fresh_database("stale_bind");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut reader = connect(&db, TESTER);
    for mode in ["auto", "force_generic_plan", "force_custom_plan"] {
        reader
            .batch_execute(&format!(
                "BEGIN; SET LOCAL plan_cache_mode = {mode};
                 SELECT fluent_set_user('boss', true); SET LOCAL ROLE {APP}"
            ))
            .unwrap();
        let plain = reader.prepare("SELECT count(*) FROM docs").unwrap();
        let bound = reader
            .prepare("SELECT count(*) FROM docs WHERE id > $1")
            .unwrap();
        let can_stmt = reader.prepare("SELECT fluent_can('docs', 'read')").unwrap();
        let in_function = reader.prepare("SELECT count_docs_pl()").unwrap();
        // The one with a parameter first: planned at Bind in
        // force_custom_plan, before anything else takes the change in.
        let counts = |reader: &mut Client| -> [i64; 3] {
            [
                reader.query_one(&bound, &[&0i32]).unwrap().get(0),
                reader.query_one(&plain, &[]).unwrap().get(0),
                reader.query_one(&in_function, &[]).unwrap().get(0),
            ]
        };
        let can =
            |reader: &mut Client| -> bool { reader.query_one(&can_stmt, &[]).unwrap().get(0) };
        // Past the five custom plans `auto` makes before a generic one.
        for _ in 0..6 {
            assert_eq!(counts(&mut reader), [33, 33, 33], "{mode}");
        }
        assert!(can(&mut reader));
        // What locks the relations these plans depend on in other ways
        // (EXPLAIN opens every entry of a plan's range table) leaves the
        // next Bind to take the change in.
        reader
            .simple_query(
                "EXPLAIN (COSTS OFF) SELECT count(*) FROM docs;
                 SELECT pg_relation_size('fluent.cache_sentinel'), pg_relation_size('pg_database');
                 PREPARE lock_catalog AS SELECT 1 FROM pg_database FOR SHARE;
                 DEALLOCATE lock_catalog",
            )
            .unwrap();
        dba.batch_execute("SELECT fluent_revoke_role('boss', 'all_r')")
            .unwrap();
        assert_eq!(
            counts(&mut reader),
            [0, 0, 0],
            "{mode}: bound again after a revoke"
        );
        assert!(
            !can(&mut reader),
            "{mode}: fluent_can bound again after a revoke"
        );
        dba.batch_execute("SELECT fluent_grant_role('boss', 'all_r')")
            .unwrap();
        assert!(
            can(&mut reader),
            "{mode}: fluent_can bound again after a grant"
        );
        assert_eq!(
            counts(&mut reader),
            [33, 33, 33],
            "{mode}: bound again after a grant"
        );
        reader.batch_execute("COMMIT").unwrap();
    }
}

/// A statement takes its snapshot before it locks its tables, and takes in
/// other sessions' invalidation messages as it locks them. A grant committed
/// while the statement waited for a lock arrives as a message the statement
/// takes in; the reload it causes must read the catalog as committed then,
/// not through the statement's older snapshot, or the cache would count
/// itself current without the grant until the next change. (The simple
/// protocol: it plans with the snapshot it parsed with, where the extended
/// protocol takes a new one to plan at Bind.)
#[test]
fn a_grant_committed_while_a_statement_waited_for_a_lock_is_seen_by_the_next_statement() {
    let db = fresh_database("stale_lock_wait");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "CREATE TABLE waiter (x int); GRANT SELECT ON waiter TO {APP}"
    ))
    .unwrap();
    let mut reader = connect(&db, TESTER);
    reader
        .batch_execute(&format!("SELECT fluent_set_user('ann'); SET ROLE {APP}"))
        .unwrap();
    assert_eq!(simple_count(&mut reader, "SELECT count(*) FROM docs"), 10);

    let mut locker = connect(&db, "postgres");
    locker
        .batch_execute("BEGIN; LOCK TABLE waiter IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let waiting = std::thread::spawn(move || {
        let n = simple_count(
            &mut reader,
            "SELECT count(*) FROM docs WHERE EXISTS (SELECT FROM waiter)",
        );
        (reader, n)
    });
    // Once the reader waits for the lock (its snapshot taken), grant.
    wait_until(
        &mut dba,
        "SELECT count(*) FROM pg_locks WHERE relation = 'waiter'::regclass AND NOT granted",
        "the reader never waited for the lock",
    );
    dba.batch_execute("SELECT fluent_grant_role('ann', 'all_r')")
        .unwrap();
    locker.batch_execute("COMMIT").unwrap();
    let (mut reader, n) = waiting.join().unwrap();
    assert_eq!(n, 0, "waiter is empty");
    assert_eq!(
        simple_count(&mut reader, "SELECT count(*) FROM docs"),
        33,
        "the statement after the one that waited sees the grant"
    );
}

/// Without preloading, fluent loads in the middle of the first planner call
/// that reaches a policy, a call PostgreSQL began without fluent's planner
/// hook. When that call plans a SQL function's query for a PL/pgSQL
/// expression, the folded plan lives for the transaction all the same, and
/// a revoke taken in later in it must reach it.
#[test]
fn a_sql_function_planned_while_fluent_loads_follows_a_revoke() {
    let db = fresh_database("stale_first_load");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    // One SQL function: the first plan that reaches the policy is its query's.
    dba.batch_execute(
        "CREATE FUNCTION pl_one_sqlfn() RETURNS bigint LANGUAGE plpgsql AS 'BEGIN RETURN count_docs(); END'",
    )
    .unwrap();
    let mut session = connect_with_options(&db, "postgres", "-c fluent.acting_user=boss");
    let loaded: i64 = session
        .query_one(
            "SELECT count(*) FROM pg_settings WHERE name = 'fluent.acting_user'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        loaded, 0,
        "fluent is not loaded before the first protected query"
    );
    session
        .batch_execute(&format!("SET ROLE {APP}; BEGIN"))
        .unwrap();
    assert_eq!(count(&mut session, "SELECT pl_one_sqlfn()"), 33);
    dba.batch_execute("SELECT fluent_revoke_role('boss', 'all_r')")
        .unwrap();
    assert_eq!(
        count(&mut session, "SELECT pl_one_sqlfn()"),
        0,
        "after the revoke"
    );
    session.batch_execute("COMMIT").unwrap();
}

/// The extension dropped and created again (new OIDs, its schema's included)
/// is found at the next statement by a session that used the old one and by
/// the session that made it: a backend keeps schema `fluent`'s OID only until
/// PostgreSQL announces a change to `pg_namespace`. With the old OID every
/// check failed ("fluent's catalog is not installed").
#[test]
fn an_extension_created_again_is_found_at_the_next_statement() {
    let db = fresh_database("stale_reinstall");
    let create = match api_schema() {
        Some(schema) => format!("CREATE EXTENSION fluent SCHEMA {schema}"),
        None => "CREATE EXTENSION fluent".to_owned(),
    };
    let catalog = |scope: &str| {
        format!(
            "SELECT fluent_create_module('docs');
             SELECT fluent_create_role('r'), fluent_set_permission('r', 'docs', 'read', '{scope}');
             SELECT fluent_create_user('ann'), fluent_grant_role('ann', 'r');"
        )
    };
    let reinstall = |scope: &str| {
        format!(
            "DROP EXTENSION fluent CASCADE; {create}; {}",
            catalog(scope)
        )
    };
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&catalog("own")).unwrap();
    let mut session = connect(&db, "postgres");
    assert_eq!(scope(&mut session, "ann"), "own");
    dba.batch_execute(&reinstall("all")).unwrap();
    assert_eq!(
        scope(&mut session, "ann"),
        "all",
        "created again by another session"
    );
    session.batch_execute(&reinstall("team")).unwrap();
    assert_eq!(
        scope(&mut session, "ann"),
        "team",
        "created again by this session"
    );
    assert_eq!(scope(&mut dba, "ann"), "team");
}

/// A statement whose snapshot predates an extension created again (another
/// session's transaction committed after the snapshot was taken) reads the
/// new catalog as empty: its answers are those of that snapshot, and the
/// session's next transaction has the new catalog's. (Found by an
/// adversarial review: the empty look was kept as the snapshot seen, and
/// every later check of the session failed with "invalid input syntax for
/// type pg_snapshot".)
#[test]
fn a_snapshot_older_than_a_reinstall_leaves_the_session_working() {
    let db = fresh_database("stale_reinstall_snapshot");
    let create = match api_schema() {
        Some(schema) => format!("CREATE EXTENSION fluent SCHEMA {schema}"),
        None => "CREATE EXTENSION fluent".to_owned(),
    };
    let catalog = "SELECT fluent_create_module('docs');
         SELECT fluent_create_role('r'), fluent_set_permission('r', 'docs', 'read', 'own');
         SELECT fluent_create_user('ann'), fluent_grant_role('ann', 'r');
         SELECT fluent_protect('docs', 'docs', 'owner');";
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "CREATE TABLE docs (id int PRIMARY KEY, owner text);
         INSERT INTO docs SELECT i, CASE WHEN i <= 10 THEN 'ann' ELSE 'x' END FROM generate_series(1, 33) i;
         GRANT SELECT ON docs TO {APP};
         {catalog}"
    ))
    .unwrap();
    let mut session = connect(&db, "postgres");
    session
        .batch_execute(&format!("SELECT fluent_set_user('ann'); SET ROLE {APP}"))
        .unwrap();
    assert_eq!(count(&mut session, "SELECT count(*) FROM docs"), 10);
    session
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();
    dba.batch_execute(&format!(
        "BEGIN; DROP EXTENSION fluent CASCADE; {create}; {catalog} COMMIT"
    ))
    .unwrap();
    assert_eq!(
        count(&mut session, "SELECT count(*) FROM docs"),
        0,
        "the transaction's snapshot sees the new catalog empty"
    );
    session.batch_execute("COMMIT").unwrap();
    assert_eq!(count(&mut session, "SELECT count(*) FROM docs"), 10);
    assert_eq!(
        count(&mut session, "SELECT count(*) FROM docs WHERE id <= 5"),
        5
    );
}

#[test]
fn a_look_through_an_older_snapshot_is_taken_again() {
    let db = fresh_database("stale_older_look");
    seed(&db);
    let mut exporter = connect(&db, TESTER);
    exporter
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let snapshot: String = exporter
        .query_one("SELECT pg_export_snapshot()", &[])
        .unwrap()
        .get(0);
    connect(&db, "postgres")
        .batch_execute("SELECT fluent_revoke_role('boss', 'all_r')")
        .unwrap();
    let mut checker = connect(&db, TESTER);
    // A look that sees the revoke (boss is not cached here).
    assert_eq!(scope(&mut checker, "ann"), "own");
    // A transaction through the snapshot exported before it: boss still
    // holds the role there, and is loaded so.
    checker
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))
        .unwrap();
    assert_eq!(
        scope(&mut checker, "boss"),
        "all",
        "through the old snapshot"
    );
    checker.batch_execute("COMMIT").unwrap();
    exporter.batch_execute("COMMIT").unwrap();
    assert_eq!(
        scope(&mut checker, "boss"),
        "none",
        "after that transaction"
    );
}

/// A cursor declared before a team change, fetched after a statement that took
/// the change's message in and checked nothing: its fetch looks at the change
/// log, and loads, through the cursor's snapshot, which does not see the
/// change; the statements after it look again through their own.
#[test]
fn a_team_loaded_through_a_cursors_snapshot_is_read_again() {
    let db = fresh_database("stale_cursor_team");
    seed(&db);
    connect(&db, "postgres")
        .batch_execute(
            "SELECT fluent_create_role('lead_r'), fluent_set_permission('lead_r', 'docs', 'read', 'team');
             SELECT fluent_create_user(u) FROM unnest('{lea,max}'::text[]) u;
             SELECT fluent_grant_role('lea', 'lead_r');
             SELECT fluent_create_team('desk'), fluent_add_team_member('desk', 'lea', true),
                    fluent_add_team_member('desk', 'max');
             CREATE FUNCTION team_keys() RETURNS text[] LANGUAGE plpgsql STABLE
                 AS 'BEGIN RETURN fluent.rls_owner_keys(''docs'', ''read''); END';",
        )
        .unwrap();
    let mut checker = connect(&db, TESTER);
    assert_eq!(scope(&mut checker, "ann"), "own");
    checker
        .batch_execute(
            "BEGIN; SELECT fluent_set_user('lea', true);
             DECLARE c CURSOR FOR SELECT team_keys() FROM generate_series(1, 2)",
        )
        .unwrap();
    connect(&db, "postgres")
        .batch_execute("SELECT fluent_remove_team_member('desk', 'max')")
        .unwrap();
    let keys = |checker: &mut Client, sql: &str| -> String {
        let keys: Vec<String> = checker.query_one(sql, &[]).unwrap().get(0);
        keys.join(",")
    };
    assert_eq!(keys(&mut checker, "SELECT ARRAY['x']"), "x");
    // The cursor reads through the snapshot it was declared with.
    assert_eq!(keys(&mut checker, "FETCH 1 FROM c"), "lea,max");
    // The next statements, through their own.
    for _ in 0..2 {
        assert_eq!(
            keys(&mut checker, "SELECT fluent.rls_owner_keys('docs', 'read')"),
            "lea",
            "after the cursor's fetch"
        );
    }
    checker.batch_execute("COMMIT").unwrap();
}

/// A cursor declared before a change and fetched after a statement that
/// took the change's message in looks at the change log through its own
/// snapshot, and asks the next statement to look again. Fetched again, it
/// does not read the log at each fetch: through the same snapshot, a look
/// would read nothing new. A statement with a snapshot of its own looks.
#[test]
fn a_cursor_older_than_a_change_does_not_read_the_log_at_each_fetch() {
    let db = fresh_database("stale_cursor_looks");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let horizon: u32 = dba
        .query_one("SELECT 'fluent.change_horizon'::regclass::oid", &[])
        .unwrap()
        .get(0);
    let mut reader = connect(&db, TESTER);
    reader
        .batch_execute(
            "BEGIN; SELECT fluent_set_user('ann', true);
             DECLARE c CURSOR FOR SELECT g, fluent_scope('ann', 'docs', 'read')
                 FROM generate_series(1, 100000) g;
             FETCH 2 FROM c",
        )
        .unwrap();
    dba.batch_execute("SELECT fluent_grant_role('ann', 'all_r')")
        .unwrap();
    let looks = |reader: &mut Client| -> i64 {
        reader
            .query_one("SELECT pg_stat_get_xact_numscans($1)", &[&horizon])
            .unwrap()
            .get(0)
    };
    let fetch =
        |reader: &mut Client| -> String { reader.query_one("FETCH 1 FROM c", &[]).unwrap().get(1) };
    reader.batch_execute("SELECT 1").unwrap();
    // Through the cursor's snapshot, from before the grant.
    assert_eq!(fetch(&mut reader), "own");
    let before = looks(&mut reader);
    for _ in 0..20 {
        assert_eq!(fetch(&mut reader), "own");
    }
    let after = looks(&mut reader);
    assert!(
        after - before <= 2,
        "20 fetches read the change log {} times",
        after - before
    );
    assert_eq!(
        scope(&mut reader, "ann"),
        "all",
        "a statement of its own sees the grant"
    );
    reader.batch_execute("COMMIT").unwrap();
}

/// The statements of one simple-protocol message share one start time. A
/// change committed while the first one ran reaches the next ones, even
/// when they lock nothing new (`fluent_can` reads the cache alone).
#[test]
fn a_later_statement_of_one_message_sees_a_change_made_while_an_earlier_one_ran() {
    let db = fresh_database("stale_one_message");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut locker = connect(&db, "postgres");
    locker.batch_execute("SELECT pg_advisory_lock(7)").unwrap();
    let mut reader = connect(&db, TESTER);
    reader
        .batch_execute("SELECT fluent_set_user('boss')")
        .unwrap();
    assert_eq!(scope(&mut reader, "boss"), "all");
    let waiting = std::thread::spawn(move || {
        let messages = reader
            .simple_query(
                "SELECT fluent_can('docs', 'read'); SELECT pg_advisory_lock(7);
                 SELECT fluent_can('docs', 'read')",
            )
            .unwrap();
        let answers: Vec<String> = messages
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
        answers
    });
    wait_until(
        &mut dba,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        "the reader never waited for the lock",
    );
    dba.batch_execute("SELECT fluent_revoke_role('boss', 'all_r')")
        .unwrap();
    locker
        .batch_execute("SELECT pg_advisory_unlock(7)")
        .unwrap();
    let answers = waiting.join().unwrap();
    assert_eq!(
        answers,
        ["t", "", "f"],
        "the third statement sees the revoke"
    );
}

/// A kept plan of a statement that starts running at Execute (a write),
/// bound and closed without an Execute, leaves the Bind lock marked as
/// having taken messages in, as PostgreSQL marks it; nothing of fluent's
/// runs before the next Bind, whose kept plan was chosen as before a revoke
/// committed meanwhile. It is refused with `40001` as it starts (it answered
/// once as before the revoke); the transaction run again sees the revoke.
#[test]
fn a_write_bound_and_closed_without_execute_leaves_no_bind_stale() {
    let db = fresh_database("stale_bind_no_execute");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!("GRANT UPDATE ON docs TO {APP}"))
        .unwrap();
    let mut reader = connect(&db, TESTER);
    let mut tx = reader.transaction().unwrap();
    tx.batch_execute(&format!(
        "SET LOCAL plan_cache_mode = force_generic_plan;
         SELECT fluent_set_user('boss', true); SET LOCAL ROLE {APP}"
    ))
    .unwrap();
    let read = tx.prepare("SELECT count(*) FROM docs").unwrap();
    let write = tx
        .prepare("UPDATE docs SET owner = owner WHERE id = 1")
        .unwrap();
    for _ in 0..2 {
        assert_eq!(tx.query_one(&read, &[]).unwrap().get::<_, i64>(0), 33);
        tx.execute(&write, &[]).unwrap();
    }
    assert_eq!(tx.query_one(&read, &[]).unwrap().get::<_, i64>(0), 33);
    drop(tx.bind(&write, &[]).unwrap());
    dba.batch_execute("SELECT fluent_revoke_role('boss', 'all_r')")
        .unwrap();
    assert_eq!(
        sqlstate(tx.query_one(&read, &[])),
        "40001",
        "the Bind after a write bound without an Execute"
    );
    tx.rollback().unwrap();
    let mut tx = reader.transaction().unwrap();
    tx.batch_execute(&format!(
        "SELECT fluent_set_user('boss', true); SET LOCAL ROLE {APP}"
    ))
    .unwrap();
    assert_eq!(
        tx.query_one("SELECT count(*) FROM docs", &[])
            .unwrap()
            .get::<_, i64>(0),
        0,
        "run again"
    );
    tx.commit().unwrap();
}

/// A kept plan's Bind takes a lock no role can queue a conflicting request
/// on: a role that names a relation can ask for `AccessExclusiveLock` on it
/// before anything is checked (`CREATE RULE` locks its table first), and
/// while such a request waits behind one session's Bind lock, every other
/// session's Bind would wait behind it. The lock is on a relation of schema
/// `pg_toast`, which such a role cannot name.
#[test]
fn a_role_that_queues_a_lock_does_not_stop_the_binds_of_kept_plans() {
    let db = fresh_database("stale_bind_lock_queue");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let toast: String = dba
        .query_one(
            "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'fluent.users'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    let open_and_bind_twice = |client: &mut Client| {
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL lock_timeout = '2s';
                 SELECT fluent_set_user('boss', true); SET LOCAL ROLE {APP}"
            ))
            .unwrap();
        let read = client.prepare("SELECT count(*) FROM docs").unwrap();
        for _ in 0..2 {
            let n: Result<i64, _> = client.query_one(&read, &[]).map(|row| row.get(0));
            assert_eq!(
                n.map_err(|e| e.to_string()),
                Ok(33),
                "a Bind of a kept plan"
            );
        }
    };
    let mut holder = connect(&db, TESTER);
    open_and_bind_twice(&mut holder);
    for target in ["pg_database", "fluent.cache_sentinel", toast.as_str()] {
        // Connected first: a request queued on pg_database stops new
        // connections too (PostgreSQL's own doing).
        let mut binder = connect(&db, TESTER);
        let mut attacker = connect(&db, TESTER);
        let rule = format!(
            "SET statement_timeout = '3s'; CREATE RULE r AS ON INSERT TO {target} DO INSTEAD NOTHING"
        );
        let queued = std::thread::spawn(move || sqlstate(attacker.batch_execute(&rule)));
        std::thread::sleep(std::time::Duration::from_millis(300));
        open_and_bind_twice(&mut binder);
        binder.batch_execute("COMMIT").unwrap();
        let code = queued.join().unwrap();
        assert!(
            code == "42501" || code == "57014",
            "CREATE RULE on {target}: {code}"
        );
    }
    holder.batch_execute("COMMIT").unwrap();
}
