//! fluent on a Citus cluster (a coordinator and two workers, started by
//! `.ci/run`): the catalog written on the coordinator is on every worker
//! when the change commits, and never when it rolls back; the workers'
//! sessions see it at their next statement; administration on a worker is
//! refused; nobody but fluent writes the bus.

use fluent_pgrx_tests::citus::{connect, connect_collecting_notices, database};
use fluent_pgrx_tests::{ensure_role, error_message, sqlstate, APP, AUTHENTICATOR, TESTER};
use postgres::Client;

/// What node `node` answers for `user` on notes.read, as a DBA would ask.
fn scope(client: &mut Client, user: &str) -> String {
    client
        .query_one("SELECT fluent_scope($1, 'notes', 'read')::text", &[&user])
        .unwrap()
        .get(0)
}

/// A superuser's connection to node `node` whose DDL Citus does not send to
/// the other nodes: for what each node makes for itself (roles, grants).
fn unpropagated(node: usize, db: &str) -> Client {
    let mut client = connect(node, db, "postgres");
    client
        .batch_execute("SET citus.enable_ddl_propagation = off")
        .unwrap();
    client
}

/// Every replicated catalog table's rows on a node, one text per table, to
/// compare nodes.
fn catalog(client: &mut Client) -> Vec<String> {
    let tables: Vec<String> = client
        .query_one("SELECT fluent._citus_tables()::text[]", &[])
        .unwrap()
        .get(0);
    tables
        .iter()
        .map(|t| {
            client
                .query_one(
                    &format!(
                        "SELECT '{t}: ' || coalesce(string_agg(to_jsonb(r)::text, ' | ' ORDER BY to_jsonb(r)::text), '')
                           FROM fluent.{t} r"
                    ),
                    &[],
                )
                .unwrap()
                .get(0)
        })
        .collect()
}

fn seed(client: &mut Client) {
    client
        .batch_execute(
            "SELECT fluent_create_module('notes');
             SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'own');
             SELECT fluent_create_user(u) FROM unnest('{ann,bob,cat}'::text[]) u;
             SELECT fluent_grant_role('ann', 'reader');",
        )
        .unwrap();
}

#[test]
fn setup_sends_the_catalog_and_every_change_reaches_every_worker_when_it_commits() {
    let db = database("changes");
    let mut coordinator = connect(0, &db, "postgres");
    // Made before the setup: sent by it.
    seed(&mut coordinator);
    let workers: i32 = coordinator
        .query_one("SELECT fluent_citus_setup()", &[])
        .unwrap()
        .get(0);
    assert_eq!(workers, 2);
    let mut w1 = connect(1, &db, "postgres");
    let mut w2 = connect(2, &db, "postgres");
    let expected = catalog(&mut coordinator);
    assert_eq!(catalog(&mut w1), expected);
    assert_eq!(catalog(&mut w2), expected);
    assert_eq!(scope(&mut w1, "ann"), "own");
    assert_eq!(scope(&mut w2, "bob"), "none");

    // A grant committed on the coordinator, by a DBA who is no superuser:
    // the workers' open sessions see it at their next statement.
    let mut admin = connect(0, &db, TESTER);
    admin
        .batch_execute("SELECT fluent_grant_role('bob', 'reader')")
        .unwrap();
    assert_eq!(scope(&mut w1, "bob"), "own");
    assert_eq!(scope(&mut w2, "bob"), "own");

    // A role change and a revoke, in one transaction: nothing before COMMIT,
    // both after.
    admin
        .batch_execute(
            "BEGIN;
             SELECT fluent_set_permission('reader', 'notes', 'read', 'all');
             SELECT fluent_revoke_role('ann', 'reader');",
        )
        .unwrap();
    assert_eq!(scope(&mut w1, "ann"), "own");
    assert_eq!(scope(&mut w2, "bob"), "own");
    admin.batch_execute("COMMIT").unwrap();
    assert_eq!(scope(&mut w1, "ann"), "none");
    assert_eq!(scope(&mut w2, "bob"), "all");

    // Rolled back: never seen; a rolled-back savepoint's part neither.
    admin
        .batch_execute(
            "BEGIN; SELECT fluent_grant_role('cat', 'reader'); SELECT fluent_drop_user('bob'); ROLLBACK;",
        )
        .unwrap();
    assert_eq!(scope(&mut w1, "cat"), "none");
    assert_eq!(scope(&mut w2, "bob"), "all");
    admin
        .batch_execute(
            "BEGIN;
             SAVEPOINT s; SELECT fluent_grant_role('cat', 'reader'); ROLLBACK TO SAVEPOINT s;
             SELECT fluent_create_user('dan'), fluent_grant_role('dan', 'reader');
             COMMIT;",
        )
        .unwrap();
    assert_eq!(scope(&mut w1, "cat"), "none");
    assert_eq!(scope(&mut w2, "dan"), "all");

    // Deletes cascade the same way on every node.
    admin
        .batch_execute("SELECT fluent_drop_user('bob'); SELECT fluent_drop_role('reader', true)")
        .unwrap();
    let expected = catalog(&mut coordinator);
    assert_eq!(catalog(&mut w1), expected);
    assert_eq!(catalog(&mut w2), expected);
}

#[test]
fn administration_is_refused_on_a_worker_and_setup_runs_only_on_the_coordinator_as_a_superuser() {
    let db = database("refusals");
    let mut coordinator = connect(0, &db, "postgres");
    seed(&mut coordinator);
    assert_eq!(
        sqlstate(connect(0, &db, TESTER).query_one("SELECT fluent_citus_setup()", &[])),
        "55000"
    );
    assert_eq!(
        sqlstate(connect(1, &db, "postgres").query_one("SELECT fluent_citus_setup()", &[])),
        "55000"
    );
    coordinator
        .query_one("SELECT fluent_citus_setup()", &[])
        .unwrap();

    // On a worker: the API and direct writes, by a DBA and by a superuser.
    for user in [TESTER, "postgres"] {
        let mut worker = connect(1, &db, user);
        assert_eq!(
            sqlstate(worker.batch_execute("SELECT fluent_create_user('dan')")),
            "55000",
            "{user}"
        );
        assert_eq!(
            sqlstate(worker.batch_execute("DELETE FROM fluent.grants")),
            "55000",
            "{user}"
        );
    }
    // ... which changed nothing there.
    let mut w1 = connect(1, &db, "postgres");
    assert_eq!(scope(&mut w1, "ann"), "own");
    assert_eq!(catalog(&mut w1), catalog(&mut coordinator));
}

#[test]
fn only_fluent_writes_the_bus() {
    let db = database("bus");
    let mut coordinator = connect(0, &db, "postgres");
    seed(&mut coordinator);
    coordinator
        .query_one("SELECT fluent_citus_setup()", &[])
        .unwrap();
    let forged = "INSERT INTO fluent.citus_bus VALUES ('grants', 't', NULL, NULL)";
    // A DBA on the coordinator, and on a worker, the table and its placement.
    assert_eq!(
        sqlstate(connect(0, &db, TESTER).batch_execute(forged)),
        "42501"
    );
    let mut w1 = connect(1, &db, "postgres");
    w1.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
        .unwrap();
    let shard: String = w1
        .query_one(
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relnamespace = 'fluent'::regnamespace AND c.relname LIKE 'citus\\_bus\\_%'",
            &[],
        )
        .unwrap()
        .get(0);
    let mut tester = connect(1, &db, TESTER);
    assert_eq!(sqlstate(tester.batch_execute(forged)), "42501");
    assert_eq!(
        sqlstate(tester.batch_execute(&forged.replace("fluent.citus_bus", &shard))),
        "42501"
    );
    // Nor the applying flag, which only the catalog owner may set.
    assert_eq!(
        sqlstate(tester.batch_execute("SELECT fluent._citus_set_applying(true)")),
        "42501"
    );
    assert_eq!(scope(&mut w1, "ann"), "own");
}

/// The shards of `table` that worker `node` holds.
fn local_shards(db: &str, node: usize, table: &str) -> Vec<String> {
    let shards: Vec<String> = connect(node, db, "postgres")
        .query(
            "SELECT shard_name($1::text::regclass, s.shardid) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
              WHERE s.logicalrelid = $1::text::regclass AND p.groupid = (SELECT groupid FROM pg_dist_local_group)",
            &[&table],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!shards.is_empty(), "node {node} holds shards of {table}");
    shards
}

/// How many of the users `keys` node `node`'s catalog has.
fn users_named(db: &str, node: usize, keys: &[&str]) -> i64 {
    connect(node, db, "postgres")
        .query_one(
            "SELECT count(*) FROM fluent.users WHERE user_key = ANY ($1)",
            &[&keys],
        )
        .unwrap()
        .get(0)
}

/// The rows `user` sees on worker `node`'s own shards of `table`, read
/// there directly as the application role: the shards' policies, folded
/// for the worker session's acting user.
fn shard_rows(db: &str, node: usize, table: &str, user: &str) -> Vec<i64> {
    let shards = local_shards(db, node, table);
    // (On a worker only a superuser may choose the acting user.)
    let mut client = connect(node, db, "postgres");
    client
        .execute("SELECT fluent_set_user($1)", &[&user])
        .unwrap();
    client.batch_execute(&format!("SET ROLE {APP}")).unwrap();
    let mut ids: Vec<i64> = shards
        .iter()
        .flat_map(|shard| {
            client
                .query(&format!("SELECT id FROM {shard}"), &[])
                .unwrap()
                .into_iter()
                .map(|r| r.get::<_, i64>(0))
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_distributed_table_is_protected_on_every_shard_with_the_plans_folded() {
    let db = distributed_notes("protect");
    let recorded: i64 = connect(0, &db, "postgres")
        .query_one(
            "SELECT count(*) FROM fluent.protected_tables WHERE table_name = 'notes'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1, "the protection is recorded on the coordinator");
    // Each scope, over both workers' shards: what one node would show.
    for (user, expected) in [
        ("ann", owned(&["ann"])),
        ("lea", owned(&["lea", "ann", "bob"])),
        ("cat", (1..=40).collect()),
        ("dan", vec![]),
    ] {
        let mut seen: Vec<i64> = [1, 2]
            .iter()
            .flat_map(|&node| shard_rows(&db, node, "notes", user))
            .collect();
        seen.sort();
        assert_eq!(seen, expected, "{user}");
    }
    // The shards' policies call no sub-select, and their plans call no
    // fluent function: the acting user's keys are constants.
    let mut w1 = connect(1, &db, "postgres");
    w1.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
        .unwrap();
    let sublinks: i64 = w1
        .query_one(
            "SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
              WHERE c.relname LIKE 'notes\\_%' AND pg_get_expr(p.polqual, p.polrelid) LIKE '%SELECT%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sublinks, 0);
    let shard = local_shards(&db, 1, "notes").remove(0);
    let mut client = connect(1, &db, "postgres");
    client
        .batch_execute(&format!("SELECT fluent_set_user('lea'); SET ROLE {APP}"))
        .unwrap();
    let plan: String = client
        .query(
            &format!("EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM {shard}"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!plan.contains("rls_"), "{plan}");
    assert!(plan.contains("ANY ('{"), "{plan}");
}

#[test]
fn a_transaction_whose_snapshot_predates_the_setup_still_sends_its_changes() {
    let db = database("snapshot");
    let mut coordinator = connect(0, &db, "postgres");
    seed(&mut coordinator);
    let mut early = connect(0, &db, TESTER);
    early
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM fluent.users")
        .unwrap();
    coordinator
        .query_one("SELECT fluent_citus_setup()", &[])
        .unwrap();
    early
        .batch_execute("SELECT fluent_grant_role('bob', 'reader'); COMMIT")
        .unwrap();
    assert_eq!(scope(&mut connect(1, &db, "postgres"), "bob"), "own");
    assert_eq!(scope(&mut connect(2, &db, "postgres"), "bob"), "own");
}

#[test]
fn setup_runs_again_and_the_replicator_owns_nothing_it_could_hand_out() {
    let db = database("again");
    let mut coordinator = connect(0, &db, "postgres");
    seed(&mut coordinator);
    // A second run (after adding a node) must not wait on its own lock.
    coordinator
        .batch_execute("SET statement_timeout = '30s'")
        .unwrap();
    for _ in 0..2 {
        coordinator
            .query_one("SELECT fluent_citus_setup()", &[])
            .unwrap();
    }
    connect(0, &db, TESTER)
        .batch_execute("SELECT fluent_grant_role('cat', 'reader')")
        .unwrap();
    assert_eq!(scope(&mut connect(2, &db, "postgres"), "cat"), "own");

    // fluent_replicator logs in (Citus dials the workers as it), owns no
    // function to hand out, and cannot send rows but through the bus.
    let mut replicator = connect(0, &db, "fluent_replicator");
    let owned: i64 = replicator
        .query_one(
            "SELECT count(*) FROM pg_proc WHERE proowner = 'fluent_replicator'::regrole",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owned, 0);
    assert_eq!(
        sqlstate(replicator.batch_execute(
            "GRANT EXECUTE ON FUNCTION fluent._citus_send_rows(text, text, jsonb, jsonb) TO PUBLIC"
        )),
        "42501"
    );
    assert_eq!(
        sqlstate(
            connect(0, &db, TESTER)
                .batch_execute("SELECT fluent._citus_send_rows('grants', 't', NULL, NULL)")
        ),
        "42501"
    );
}

#[test]
fn a_failed_apply_rolled_back_to_a_savepoint_leaves_the_worker_refusing() {
    let db = database("savepoint");
    let mut coordinator = connect(0, &db, "postgres");
    seed(&mut coordinator);
    coordinator
        .query_one("SELECT fluent_citus_setup()", &[])
        .unwrap();
    let mut w1 = connect(1, &db, "postgres");
    w1.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
        .unwrap();
    let shard: String = w1
        .query_one(
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relnamespace = 'fluent'::regnamespace AND c.relname LIKE 'citus\\_bus\\_%'",
            &[],
        )
        .unwrap()
        .get(0);
    // An apply that fails half-way (a duplicate user id), undone by a
    // rollback to a savepoint: the worker refuses catalog writes again.
    w1.batch_execute("BEGIN; SAVEPOINT s").unwrap();
    let duplicate = format!(
        "INSERT INTO {shard} VALUES ('users', 'i', NULL,
           (SELECT jsonb_agg(to_jsonb(u)) FROM fluent.users u))"
    );
    assert_eq!(sqlstate(w1.batch_execute(&duplicate)), "23505");
    w1.batch_execute("ROLLBACK TO SAVEPOINT s").unwrap();
    let applying: bool = w1
        .query_one("SELECT fluent._citus_applying()", &[])
        .unwrap()
        .get(0);
    assert!(!applying);
    assert_eq!(
        sqlstate(w1.batch_execute("DELETE FROM fluent.grants")),
        "55000"
    );
}

#[test]
fn a_changed_primary_key_and_protections_made_on_a_worker_are_refused() {
    let db = database("keys");
    let mut coordinator = connect(0, &db, "postgres");
    seed(&mut coordinator);
    coordinator
        .query_one("SELECT fluent_citus_setup()", &[])
        .unwrap();
    let mut admin = connect(0, &db, TESTER);
    admin
        .batch_execute(
            "SELECT fluent_create_user('boss'), fluent_create_user('emp');
             SELECT fluent_set_manager('emp', 'boss');",
        )
        .unwrap();
    // The reports would keep the old id here and lose it on the workers.
    assert_eq!(
        sqlstate(
            admin
                .batch_execute("UPDATE fluent.users SET user_id = DEFAULT WHERE user_key = 'boss'")
        ),
        "0A000"
    );
    let expected = catalog(&mut coordinator);
    assert_eq!(catalog(&mut connect(1, &db, "postgres")), expected);

    let mut worker = connect(1, &db, TESTER);
    worker
        .batch_execute("CREATE TABLE local_notes (id int, owner text)")
        .unwrap();
    assert_eq!(
        sqlstate(worker.batch_execute(
            "SELECT fluent_protect('local_notes', 'notes', owner_column => 'owner')"
        )),
        "55000"
    );
}

/// A database (`database`) with fluent set up for Citus, and a superuser's
/// connection to its coordinator.
fn set_up(name: &str) -> (String, Client) {
    let db = database(name);
    let mut coordinator = connect(0, &db, "postgres");
    coordinator
        .batch_execute("SELECT fluent_citus_setup()")
        .unwrap();
    (db, coordinator)
}

/// A database with `notes` distributed over both workers and protected,
/// users at each scope, and fluent set up for Citus.
fn distributed_notes(name: &str) -> String {
    let (db, mut coordinator) = set_up(name);
    coordinator
        .batch_execute(&format!(
            "SELECT fluent_create_module('notes');
             SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'own');
             SELECT fluent_create_role('lead'), fluent_set_permission('lead', 'notes', 'read', 'team');
             SELECT fluent_create_role('auditor'), fluent_set_permission('auditor', 'notes', 'read', 'all');
             SELECT fluent_create_user(u) FROM unnest('{{ann,bob,cat,dan,lea}}'::text[]) u;
             SELECT fluent_grant_role('ann', 'reader'), fluent_grant_role('lea', 'lead'),
                    fluent_grant_role('cat', 'auditor');
             SELECT fluent_create_team('desk'), fluent_add_team_member('desk', 'lea', true),
                    fluent_add_team_member('desk', 'ann'), fluent_add_team_member('desk', 'bob');
             CREATE TABLE notes (id bigint, tenant int, owner text, body text);
             SELECT create_distributed_table('notes', 'tenant', shard_count => 4);
             INSERT INTO notes SELECT g, g % 8, (ARRAY['ann','bob','cat','dan','lea'])[g % 5 + 1], 'x'
               FROM generate_series(1, 40) g;
             GRANT SELECT ON notes TO {APP}, {TESTER}, {AUTHENTICATOR};
             SELECT fluent_protect('notes', 'notes', owner_column => 'owner');"
        ))
        .unwrap();
    // (A transaction that wrote the catalog cannot write a reference table
    // too: see the README.)
    coordinator
        .batch_execute(&format!(
            "CREATE TABLE shared_notes (id bigint PRIMARY KEY, owner text);
             SELECT create_reference_table('shared_notes');
             INSERT INTO shared_notes SELECT id, owner FROM notes;
             GRANT SELECT ON shared_notes TO {TESTER};
             SELECT fluent_protect('shared_notes', 'notes', owner_column => 'owner');"
        ))
        .unwrap();
    db
}

/// The ids of notes owned by `keys` (row g is owned by the (g % 5)th user).
fn owned(keys: &[&str]) -> Vec<i64> {
    let owners = ["ann", "bob", "cat", "dan", "lea"];
    (1..=40)
        .filter(|g: &i64| keys.contains(&owners[(*g % 5) as usize]))
        .collect()
}

fn ids(client: &mut Client, sql: &str) -> Vec<i64> {
    client
        .query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn the_acting_user_chosen_on_the_coordinator_reaches_every_shard_of_the_transaction() {
    let db = distributed_notes("identity");
    // The tester logs in (Citus dials the workers as the querying role).
    let mut app = connect(0, &db, TESTER);
    for (user, expected) in [
        ("ann", owned(&["ann"])),
        ("lea", owned(&["lea", "ann", "bob"])),
        ("cat", (1..=40).collect()),
        ("dan", vec![]),
    ] {
        app.batch_execute(&format!("BEGIN; SELECT fluent_set_user('{user}', true)"))
            .unwrap();
        // Multi-shard, and a router query (one tenant, one shard).
        let all = ids(&mut app, "SELECT id FROM notes ORDER BY id");
        let reference = ids(&mut app, "SELECT id FROM shared_notes ORDER BY id");
        let tenant = ids(
            &mut app,
            "SELECT id FROM notes WHERE tenant = 3 ORDER BY id",
        );
        let router: Vec<String> = app
            .query("EXPLAIN SELECT id FROM notes WHERE tenant = 3", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            router.iter().any(|l| l.contains("Task Count: 1")),
            "one tenant, one shard: {router:#?}"
        );
        app.batch_execute("COMMIT").unwrap();
        assert_eq!(all, expected, "{user}");
        assert_eq!(reference, expected, "{user}, the reference table");
        let expected_tenant: Vec<i64> = expected.iter().copied().filter(|g| g % 8 == 3).collect();
        assert_eq!(tenant, expected_tenant, "{user}, tenant 3");
    }
    // The next transaction, on the connections Citus keeps, without an
    // identity: nobody.
    assert_eq!(ids(&mut app, "SELECT id FROM notes"), Vec::<i64>::new());
}

#[test]
fn a_carrier_copied_forged_or_set_by_hand_on_a_worker_is_nobody() {
    let db = distributed_notes("carrier");
    // A genuine carrier (a superuser may read it on the coordinator).
    let mut su = connect(0, &db, "postgres");
    su.batch_execute("BEGIN; SELECT fluent_set_user('cat', true)")
        .unwrap();
    let carrier: String = su
        .query_one("SELECT current_setting('fluent.remote_identity')", &[])
        .unwrap()
        .get(0);
    su.batch_execute("COMMIT").unwrap();
    assert_eq!(carrier.split('.').count(), 3, "a signed token: {carrier}");
    // The application role cannot read it.
    let mut app = connect(0, &db, TESTER);
    app.batch_execute("BEGIN; SELECT fluent_set_user('ann', true)")
        .unwrap();
    assert_eq!(
        sqlstate(app.query_one("SELECT current_setting('fluent.remote_identity')", &[])),
        "42501"
    );
    app.batch_execute("ROLLBACK").unwrap();

    let mut w1 = connect(1, &db, "postgres");
    w1.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
        .unwrap();
    let shard = local_shards(&db, 1, "notes").remove(0);
    let mut worker = connect(1, &db, TESTER);
    let count = |client: &mut Client| -> i64 {
        client
            .query_one(&format!("SELECT count(*) FROM {shard}"), &[])
            .unwrap()
            .get(0)
    };
    // Copied onto a worker, outside its distributed transaction.
    worker
        .batch_execute(&format!(
            "BEGIN; SET LOCAL fluent.remote_identity = '{carrier}'"
        ))
        .unwrap();
    assert_eq!(count(&mut worker), 0);
    // ... inside another distributed transaction.
    worker
        .batch_execute("SELECT assign_distributed_transaction_id(1, 424242, now())")
        .unwrap();
    assert_eq!(count(&mut worker), 0);
    worker.batch_execute("ROLLBACK").unwrap();
    // Forged: signed with another key, naming this backend's transaction.
    let forged = forge(&mut worker, "cat");
    worker
        .batch_execute(&format!("SET fluent.remote_identity = '{forged}'"))
        .unwrap();
    assert_eq!(count(&mut worker), 0);
    worker.batch_execute("COMMIT").unwrap();
}

/// A carrier for `user` naming the worker session's distributed
/// transaction (which it assigns), signed with a key of the attacker's.
fn forge(worker: &mut Client, user: &str) -> String {
    worker
        .batch_execute("BEGIN; SELECT assign_distributed_transaction_id(1, 777, '2026-01-01')")
        .unwrap();
    let row = worker
        .query_one(
            "SELECT initiator_node_identifier, transaction_number, transaction_stamp::text
               FROM get_current_transaction_id()",
            &[],
        )
        .unwrap();
    let (initiator, number, stamp): (i32, i64, String) = (row.get(0), row.get(1), row.get(2));
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({
            "user": user, "workspace": "default", "initiator": initiator,
            "transaction": number, "stamp": stamp
        }),
        &jsonwebtoken::EncodingKey::from_secret(b"attacker's key"),
    )
    .unwrap()
}

/// The count a simple-protocol batch's last row holds (PgBouncer in
/// transaction mode takes the simple protocol, see src/bouncer.rs).
fn last_count(client: &mut Client, sql: &str) -> i64 {
    client
        .simple_query(sql)
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .next_back()
        .unwrap()
}

#[test]
fn behind_pgbouncer_each_transaction_acts_for_its_own_user_only() {
    let db = distributed_notes("pooled");
    // A transaction pool of one server connection in front of the
    // coordinator: every client's transactions share one backend, and that
    // backend's Citus connections to the workers.
    let (host, ports) = fluent_pgrx_tests::citus::nodes();
    std::env::set_var("FLUENT_TEST_HOST", &host);
    std::env::set_var("FLUENT_TEST_PORT", ports[0].to_string());
    let bouncer = fluent_pgrx_tests::bouncer::Bouncer::start_for(&db, &[TESTER]);
    let mut first = bouncer.connect(TESTER);
    let mut second = bouncer.connect(TESTER);
    for _ in 0..2 {
        assert_eq!(
            last_count(
                &mut first,
                "BEGIN; SELECT fluent_set_user('cat', true); SELECT count(*) FROM notes; COMMIT"
            ),
            40
        );
        assert_eq!(
            last_count(
                &mut second,
                "BEGIN; SELECT fluent_set_user('ann', true); SELECT count(*) FROM notes; COMMIT"
            ),
            owned(&["ann"]).len() as i64
        );
        // A transaction that chose nobody, after both, on the same backend.
        assert_eq!(last_count(&mut first, "SELECT count(*) FROM notes"), 0);
    }
}

#[test]
fn a_catalog_change_and_a_reference_table_write_in_one_transaction_are_refused_whole() {
    let db = distributed_notes("reference_write");
    let mut admin = connect(0, &db, "postgres");
    admin
        .batch_execute(&format!(
            "CREATE TABLE lookup (id int PRIMARY KEY, label text);
             SELECT create_reference_table('lookup');
             GRANT SELECT, INSERT ON lookup TO {TESTER};"
        ))
        .unwrap();
    let mut tester = connect(0, &db, TESTER);
    for batch in [
        "BEGIN; SELECT fluent_grant_role('dan', 'auditor'); INSERT INTO lookup VALUES (1, 'one')",
        "BEGIN; INSERT INTO lookup VALUES (1, 'one'); SELECT fluent_grant_role('dan', 'auditor')",
    ] {
        assert_eq!(sqlstate(tester.batch_execute(batch)), "25001", "{batch}");
        tester.batch_execute("ROLLBACK").unwrap();
    }
    // Nothing of either was kept, on any node.
    for node in 0..3 {
        assert_eq!(scope(&mut connect(node, &db, "postgres"), "dan"), "none");
    }
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM lookup", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[test]
fn authenticators_resets_and_time_zones_reach_the_workers_and_a_copied_carrier_does_not() {
    let db = distributed_notes("carrier_routes");
    // An authenticator (fluent_authenticator only, sealed once it chose),
    // in a session whose time zone and date style differ from the workers'.
    let mut app = connect(0, &db, AUTHENTICATOR);
    app.batch_execute("SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY'")
        .unwrap();
    app.batch_execute("BEGIN; SELECT fluent_set_user('ann', true)")
        .unwrap();
    assert_eq!(ids(&mut app, "SELECT id FROM notes WHERE tenant = 5"), [5]);
    assert_eq!(
        ids(&mut app, "SELECT id FROM notes ORDER BY id"),
        owned(&["ann"])
    );
    // Dropping the identity drops it on the workers too.
    app.batch_execute("SELECT fluent_reset_user()").unwrap();
    assert_eq!(
        ids(&mut app, "SELECT id FROM notes WHERE tenant = 5"),
        Vec::<i64>::new()
    );
    app.batch_execute("COMMIT").unwrap();

    // A genuine carrier for cat (scope all), read by a superuser.
    let mut su = connect(0, &db, "postgres");
    su.batch_execute("BEGIN; SELECT fluent_set_user('cat', true)")
        .unwrap();
    let row = su
        .query_one(
            "SELECT current_setting('fluent.remote_identity'), initiator_node_identifier, transaction_number,
                    transaction_stamp::text
               FROM get_current_transaction_id()",
            &[],
        )
        .unwrap();
    let (carrier, initiator, number, stamp): (String, i32, i64, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    su.batch_execute("COMMIT").unwrap();
    // On the coordinator the authenticator can neither take that
    // transaction's distributed id nor hand the carrier to the workers.
    let mut sealed = connect(0, &db, AUTHENTICATOR);
    sealed
        .batch_execute("SELECT fluent_set_user('ann', false)")
        .unwrap();
    sealed.batch_execute("BEGIN").unwrap();
    assert_eq!(
        sqlstate(sealed.batch_execute(&format!(
            "SELECT assign_distributed_transaction_id({initiator}, {number}, '{stamp}')"
        ))),
        "42501"
    );
    sealed
        .batch_execute("ROLLBACK; BEGIN; SET LOCAL citus.propagate_set_commands = 'local'")
        .unwrap();
    assert_eq!(
        sqlstate(sealed.batch_execute(&format!("SET LOCAL fluent.remote_identity = '{carrier}'"))),
        "22023"
    );
    sealed.batch_execute("ROLLBACK").unwrap();
    // ... nor reach a worker through Citus's run_command_on_* (they would
    // open connections where it could claim the id).
    assert_eq!(
        sqlstate(sealed.batch_execute("SELECT run_command_on_workers('SELECT 1')")),
        "42501"
    );
    // ... nor from its role's defaults.
    let defaults = sealed.batch_execute(&format!(
        "ALTER ROLE {AUTHENTICATOR} SET fluent.remote_identity = '{carrier}'"
    ));
    assert_eq!(sqlstate(defaults), "22023");
}

#[test]
fn code_pushed_down_to_a_worker_can_neither_choose_again_nor_claim_a_carrier() {
    let db = distributed_notes("pushed_down");
    // A carrier for cat (scope all) and its distributed transaction.
    let mut su = connect(0, &db, "postgres");
    su.batch_execute("BEGIN; SELECT fluent_set_user('cat', true)")
        .unwrap();
    let row = su
        .query_one(
            "SELECT current_setting('fluent.remote_identity'), initiator_node_identifier, transaction_number,
                    transaction_stamp
               FROM get_current_transaction_id()",
            &[],
        )
        .unwrap();
    let (carrier, initiator, number): (String, i32, i64) = (row.get(0), row.get(1), row.get(2));
    let stamp: std::time::SystemTime = row.get(3);
    let stamp = stamp
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    su.batch_execute("COMMIT").unwrap();

    let mut w1 = connect(1, &db, "postgres");
    w1.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'")
        .unwrap();
    let shards = local_shards(&db, 1, "notes");
    let every_local_row = shards
        .iter()
        .map(|s| format!("SELECT id FROM {s}"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");

    let mut app = connect(0, &db, AUTHENTICATOR);
    // A second choice, past the seal, inside a shard query: refused there.
    app.batch_execute("BEGIN; SELECT fluent_set_user('ann', true)")
        .unwrap();
    assert_eq!(
        sqlstate(app.batch_execute(
            "SELECT count(*), fluent_set_user('cat')::text FROM notes WHERE tenant = 1"
        )),
        "55000"
    );
    app.batch_execute("ROLLBACK").unwrap();
    // The next transaction on the same connections acts for its own user.
    app.batch_execute("BEGIN; SELECT fluent_set_user('lea', true)")
        .unwrap();
    assert_eq!(
        ids(&mut app, "SELECT id FROM notes ORDER BY id"),
        owned(&["ann", "bob", "lea"])
    );
    app.batch_execute("COMMIT").unwrap();

    // A function of the application's own, pushed down, that claims the
    // carrier's distributed transaction on the worker and sets the carrier:
    // the statement began in no transaction, so the carrier is nobody's.
    connect(0, &db, TESTER)
        .batch_execute(
            "CREATE FUNCTION public.claim(i int, n bigint, s bigint, carrier text, q text) RETURNS bigint
             LANGUAGE plpgsql AS $$
             DECLARE c bigint;
             BEGIN
                 IF (SELECT transaction_number FROM get_current_transaction_id()) = 0 THEN
                     EXECUTE format('SELECT assign_distributed_transaction_id(%s, %s, %L)',
                                    i, n, 'epoch'::timestamptz + s * interval '1 microsecond');
                 END IF;
                 EXECUTE format('SET LOCAL fluent.remote_identity = %L', carrier);
                 EXECUTE format('SELECT count(*) FROM (%s) x', q) INTO c;
                 RETURN c;
             END $$;",
        )
        .unwrap();
    let mut app = connect(0, &db, AUTHENTICATOR);
    app.batch_execute("SELECT fluent_set_user('ann', false)")
        .unwrap();
    let claimed: i64 = app
        .query_one(
            // (Router: the whole statement runs on the worker, the function
            // once on the count's row.)
            "SELECT public.claim($1, $2, $3, $4, $5), count(*) FROM notes WHERE tenant = 1",
            &[
                &initiator,
                &number,
                &(stamp as i64),
                &carrier,
                &every_local_row,
            ],
        )
        .unwrap()
        .get(0);
    assert_eq!(claimed, 0, "the rows of the worker's shards, as cat");
}

/// Projects distributed by tenant over 4 shards with a co-located
/// membership table, and a copy of both as reference tables, protected
/// through the membership (no owner column). Project g (1 to 20) is in
/// tenant g % 4; its member is ann, bob or dan (g % 3 = 0, 1, 2). ann and
/// bob read and write their own, lea leads a team with ann, cat reads and
/// writes all, dan holds nothing.
fn distributed_projects(name: &str) -> String {
    let (db, mut coordinator) = set_up(name);
    coordinator
        .batch_execute(
            "SELECT fluent_create_module('projects');
             SELECT fluent_create_role('member'), fluent_set_permission('member', 'projects', 'read', 'own'),
                    fluent_set_permission('member', 'projects', 'write', 'own');
             SELECT fluent_create_role('lead'), fluent_set_permission('lead', 'projects', 'read', 'team');
             SELECT fluent_create_role('boss'), fluent_set_permission('boss', 'projects', 'read', 'all'),
                    fluent_set_permission('boss', 'projects', 'write', 'all');
             SELECT fluent_create_user(u) FROM unnest('{ann,bob,cat,dan,lea}'::text[]) u;
             SELECT fluent_grant_role('ann', 'member'), fluent_grant_role('bob', 'member'),
                    fluent_grant_role('lea', 'lead'), fluent_grant_role('cat', 'boss');
             SELECT fluent_create_team('desk'), fluent_add_team_member('desk', 'lea', true),
                    fluent_add_team_member('desk', 'ann');",
        )
        .unwrap();
    for (kind, projects, members) in [
        (
            "create_distributed_table('projects', 'tenant', shard_count => 4)",
            "projects",
            "create_distributed_table('project_members', 'tenant', colocate_with => 'projects')",
        ),
        (
            "create_reference_table('ref_projects')",
            "ref_projects",
            "create_reference_table('ref_members')",
        ),
    ] {
        let members_table = if projects == "projects" {
            "project_members"
        } else {
            "ref_members"
        };
        coordinator
            .batch_execute(&format!(
                "CREATE TABLE {projects} (tenant int, id bigint, name text, PRIMARY KEY (tenant, id));
                 CREATE TABLE {members_table} (tenant int, project_id bigint, user_key text,
                                               PRIMARY KEY (tenant, project_id, user_key),
                                               FOREIGN KEY (tenant, project_id) REFERENCES {projects} (tenant, id));
                 CREATE INDEX ON {members_table} (user_key);
                 SELECT {kind};
                 SELECT {members};
                 INSERT INTO {projects} SELECT g % 4, g, 'p' || g FROM generate_series(1, 20) g;
                 INSERT INTO {members_table}
                   SELECT g % 4, g, (ARRAY['ann', 'bob', 'dan'])[g % 3 + 1] FROM generate_series(1, 20) g;
                 GRANT SELECT, INSERT, UPDATE, DELETE ON {projects}, {members_table} TO {TESTER};"
            ))
            .unwrap();
        // (Its own transaction: one that wrote the catalog cannot write a
        // reference table too.)
        coordinator
            .batch_execute(&format!(
                "SELECT fluent_protect('{projects}', 'projects', row_column => 'id',
                                       membership_table => '{members_table}',
                                       membership_row_column => 'project_id',
                                       membership_user_column => 'user_key')"
            ))
            .unwrap();
    }
    db
}

/// The projects whose member is one of `keys` (project g's is the
/// (g % 3)th of ann, bob, dan).
fn member_of(keys: &[&str]) -> Vec<i64> {
    let members = ["ann", "bob", "dan"];
    (1..=20)
        .filter(|g: &i64| keys.contains(&members[(*g % 3) as usize]))
        .collect()
}

/// Runs `sql` through the coordinator as the tester acting for `user`.
fn acting(client: &mut Client, user: &str, sql: &str) -> Vec<i64> {
    client
        .batch_execute(&format!("BEGIN; SELECT fluent_set_user('{user}', true)"))
        .unwrap();
    let rows = ids(client, sql);
    client.batch_execute("COMMIT").unwrap();
    rows
}

#[test]
fn a_co_located_membership_table_gives_each_user_the_rows_one_node_shows() {
    let db = distributed_projects("membership");
    let mut app = connect(0, &db, TESTER);
    for (user, expected) in [
        ("ann", member_of(&["ann"])),
        ("bob", member_of(&["bob"])),
        ("lea", member_of(&["ann"])),
        ("cat", (1..=20).collect()),
        ("dan", vec![]),
    ] {
        let all = acting(&mut app, user, "SELECT id FROM projects ORDER BY id");
        assert_eq!(all, expected, "{user}");
        let tenant = acting(
            &mut app,
            user,
            "SELECT id FROM projects WHERE tenant = 3 ORDER BY id",
        );
        let expected_tenant: Vec<i64> = expected.iter().copied().filter(|g| g % 4 == 3).collect();
        assert_eq!(tenant, expected_tenant, "{user}, tenant 3");
        let reference = acting(&mut app, user, "SELECT id FROM ref_projects ORDER BY id");
        assert_eq!(reference, expected, "{user}, the reference tables");
    }
    // A router query stays on one shard, and the shard's plan reads the
    // node's own placement of the membership table once (an InitPlan) with
    // the acting user's key folded in: no fluent function is called.
    app.batch_execute("BEGIN; SELECT fluent_set_user('ann', true)")
        .unwrap();
    let plan: String = app
        .query(
            "EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM projects WHERE tenant = 3",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    app.batch_execute("COMMIT").unwrap();
    assert!(plan.contains("Task Count: 1"), "{plan}");
    assert!(plan.contains("InitPlan"), "{plan}");
    assert!(plan.contains("project_members_"), "{plan}");
    assert!(plan.contains("'ann'::text"), "{plan}");
    assert!(!plan.contains("rls_"), "{plan}");
}

#[test]
fn a_membership_change_is_seen_at_the_next_statement_also_by_a_kept_plan() {
    let db = distributed_projects("membership_change");
    let mut app = connect(0, &db, TESTER);
    let mut dba = connect(0, &db, "postgres");
    // A prepared router query, its generic plan kept by the coordinator.
    app.batch_execute(
        "SET plan_cache_mode = force_generic_plan;
         PREPARE mine(int) AS SELECT id FROM projects WHERE tenant = $1 ORDER BY id",
    )
    .unwrap();
    let before = acting(&mut app, "bob", "EXECUTE mine(3)");
    assert_eq!(before, vec![7, 19]);
    dba.batch_execute("INSERT INTO project_members VALUES (3, 3, 'bob')")
        .unwrap();
    assert_eq!(acting(&mut app, "bob", "EXECUTE mine(3)"), vec![3, 7, 19]);
    dba.batch_execute("DELETE FROM project_members WHERE project_id = 7")
        .unwrap();
    assert_eq!(acting(&mut app, "bob", "EXECUTE mine(3)"), vec![3, 19]);
    // A rolled-back change is never seen.
    dba.batch_execute("BEGIN; INSERT INTO project_members VALUES (3, 11, 'bob'); ROLLBACK")
        .unwrap();
    assert_eq!(acting(&mut app, "bob", "EXECUTE mine(3)"), vec![3, 19]);
}

#[test]
fn membership_rows_are_written_only_within_the_writers_reach() {
    let db = distributed_projects("membership_writes");
    let mut app = connect(0, &db, TESTER);
    // The rows written, or the SQLSTATE of the refusal.
    let write = |app: &mut Client, user: &str, sql: &str| -> Result<u64, String> {
        app.batch_execute(&format!("BEGIN; SELECT fluent_set_user('{user}', true)"))
            .unwrap();
        let result = app.execute(sql, &[]);
        app.batch_execute("ROLLBACK").unwrap();
        result.map_err(|e| sqlstate(Err::<(), _>(e)))
    };
    for (table, members) in [
        ("projects", "project_members"),
        ("ref_projects", "ref_members"),
    ] {
        // ann (write own) adds a member to her project 3, not to bob's 1.
        assert_eq!(
            write(
                &mut app,
                "ann",
                &format!("INSERT INTO {members} VALUES (3, 3, 'lea')")
            ),
            Ok(1),
            "{table}"
        );
        assert_eq!(
            write(
                &mut app,
                "ann",
                &format!("INSERT INTO {members} VALUES (1, 1, 'lea')")
            ),
            Err("42501".into()),
            "{table}"
        );
        // She may change her project's membership, not move it to bob's.
        assert_eq!(
            write(
                &mut app,
                "ann",
                &format!("UPDATE {members} SET user_key = 'lea' WHERE project_id = 3")
            ),
            Ok(1),
            "{table}"
        );
        assert_eq!(
            write(
                &mut app,
                "ann",
                &format!("UPDATE {members} SET project_id = 7 WHERE tenant = 3 AND project_id = 3")
            ),
            Err("42501".into()),
            "{table}"
        );
        // bob removes nothing of ann's; cat (write all) adds anywhere.
        assert_eq!(
            write(
                &mut app,
                "bob",
                &format!("DELETE FROM {members} WHERE project_id = 3")
            ),
            Ok(0),
            "{table}"
        );
        assert_eq!(
            write(
                &mut app,
                "cat",
                &format!("INSERT INTO {members} VALUES (1, 1, 'lea')")
            ),
            Ok(1),
            "{table}"
        );
        // dan holds nothing: adds nothing.
        assert_eq!(
            write(
                &mut app,
                "dan",
                &format!("INSERT INTO {members} VALUES (1, 1, 'dan')")
            ),
            Err("42501".into()),
            "{table}"
        );
    }
}

#[test]
fn a_membership_table_on_other_nodes_than_its_items_is_refused() {
    let (_, mut coordinator) = set_up("layout");
    coordinator
        .batch_execute("SELECT fluent_create_module('projects')")
        .unwrap();
    coordinator
        .batch_execute(
            "CREATE TABLE tasks (tenant int, id bigint PRIMARY KEY);
             CREATE TABLE task_members (tenant int, task_id bigint, user_key text);
             CREATE INDEX ON task_members (user_key);
             SELECT create_distributed_table('tasks', 'id', shard_count => 4);
             SELECT create_distributed_table('task_members', 'tenant', shard_count => 3);
             CREATE TABLE local_members (tenant int, task_id bigint, user_key text);
             CREATE INDEX ON local_members (user_key);
             CREATE TABLE unkeyed_members (tenant int, task_id bigint, user_key text);
             CREATE INDEX ON unkeyed_members (user_key);
             SELECT create_distributed_table('unkeyed_members', 'task_id', colocate_with => 'tasks');",
        )
        .unwrap();
    // Not on the same nodes, or co-located without a foreign key that says
    // each membership row is where its task is.
    for members in ["task_members", "local_members", "unkeyed_members"] {
        let refused = coordinator.batch_execute(&format!(
            "SELECT fluent_protect('tasks', 'projects', membership_table => '{members}',
                                   membership_row_column => 'task_id', membership_user_column => 'user_key')"
        ));
        assert_eq!(sqlstate(refused), "0A000", "{members}");
    }
    // Item roles: on reference tables (Citus writes their rows on every
    // node, where the triggers would each check and record them), and a
    // child table on other nodes than its parent's assignments.
    coordinator
        .batch_execute("SELECT fluent_create_item_role('projects', 'editor', '{read}')")
        .unwrap();
    coordinator
        .batch_execute(
            "CREATE TABLE ref_tasks (id bigint PRIMARY KEY, owner text);
             CREATE TABLE ref_task_roles (task_id bigint REFERENCES ref_tasks ON DELETE CASCADE, user_key text, role text);
             SELECT create_reference_table('ref_tasks');
             SELECT create_reference_table('ref_task_roles');
             CREATE TABLE task_roles (task_id bigint REFERENCES tasks ON DELETE CASCADE, user_key text, role text);
             SELECT create_distributed_table('task_roles', 'task_id', colocate_with => 'tasks');
             -- (Citus refuses a foreign key between tables that are not co-located.)
             CREATE TABLE task_notes (id bigint PRIMARY KEY, task_id bigint, owner text);
             SELECT create_distributed_table('task_notes', 'id', shard_count => 3);",
        )
        .unwrap();
    let refused = coordinator.batch_execute(
        "SELECT fluent_protect('ref_tasks', 'projects', 'owner', membership_table => 'ref_task_roles',
                               membership_row_column => 'task_id', membership_user_column => 'user_key',
                               membership_role_column => 'role')",
    );
    assert_eq!(sqlstate(refused), "0A000", "item roles on reference tables");
    coordinator
        .batch_execute(
            "SELECT fluent_protect('tasks', 'projects', membership_table => 'task_roles',
                                   membership_row_column => 'task_id', membership_user_column => 'user_key',
                                   membership_role_column => 'role')",
        )
        .unwrap();
    let refused = coordinator.batch_execute(
        "SELECT fluent_protect('task_notes', 'projects', 'owner', parent_table => 'tasks', parent_column => 'task_id')",
    );
    assert_eq!(sqlstate(refused), "0A000", "a child on other nodes");
    coordinator
        .batch_execute("SELECT fluent_unprotect('tasks')")
        .unwrap();
    // Distributed and protected in one transaction: Citus sends the
    // policies, which name the membership table, on connections of its own,
    // where that table does not exist yet.
    let create = "CREATE TABLE late (tenant int, id bigint, PRIMARY KEY (tenant, id));
         CREATE TABLE late_members (tenant int, late_id bigint, user_key text,
                                    FOREIGN KEY (tenant, late_id) REFERENCES late (tenant, id));
         CREATE INDEX ON late_members (user_key);
         SELECT create_distributed_table('late', 'tenant', shard_count => 4);
         SELECT create_distributed_table('late_members', 'tenant', colocate_with => 'late');";
    let protect = "SELECT fluent_protect('late', 'projects', row_column => 'id', membership_table => 'late_members',
                                         membership_row_column => 'late_id', membership_user_column => 'user_key')";
    assert_eq!(
        sqlstate(coordinator.batch_execute(&format!("{create} {protect}"))),
        "42P01"
    );
    coordinator.batch_execute(create).unwrap();
    coordinator.batch_execute(protect).unwrap();
    coordinator
        .batch_execute("SELECT fluent_unprotect('late')")
        .unwrap();
    let protected: i64 = coordinator
        .query_one("SELECT count(*) FROM fluent.protected_tables", &[])
        .unwrap()
        .get(0);
    assert_eq!(protected, 0, "nothing is left half-done");
}

#[test]
fn a_propagated_set_sent_with_other_statements_is_refused_before_it_reaches_a_worker() {
    let db = distributed_notes("set_injection");
    let (_, ports) = fluent_pgrx_tests::citus::nodes();
    let mut app = connect(0, &db, TESTER);
    // Citus would send the whole query string of a propagated SET LOCAL to
    // the workers' connections of the transaction: the DO block would run
    // there as the application role (and again on every connection the
    // transaction opens later).
    let payload = format!(
        "SET LOCAL work_mem = '5MB'; DO $$ BEGIN IF current_setting('port') <> '{}' THEN
           RAISE EXCEPTION 'ran on a worker'; END IF; END $$",
        ports[0]
    );
    for opening in [
        "SELECT fluent_set_user('ann', true); SELECT count(*) FROM notes",
        "SET LOCAL citus.propagate_set_commands = 'local'; SELECT count(*) FROM notes",
    ] {
        app.batch_execute("BEGIN").unwrap();
        app.batch_execute(opening).unwrap();
        let refused = app.batch_execute(&payload);
        app.batch_execute("ROLLBACK").unwrap();
        assert_eq!(sqlstate(refused), "0A000", "after {opening}");
        // The same SET alone goes through, and so does the DO block.
        app.batch_execute("BEGIN").unwrap();
        app.batch_execute(opening).unwrap();
        app.batch_execute("SET LOCAL work_mem = '5MB'").unwrap();
        app.batch_execute(&payload[payload.find("DO").unwrap()..])
            .unwrap();
        app.batch_execute("COMMIT").unwrap();
    }
    // A SQL function's statements are all parsed before the first runs:
    // the SET is checked as it runs, with propagation as it is then.
    app.batch_execute(&format!(
        "CREATE FUNCTION public.inject() RETURNS int LANGUAGE sql AS $f$
           SELECT pg_catalog.set_config('citus.propagate_set_commands', 'local', true);
           SET LOCAL work_mem = '5MB';
           DO $d$ BEGIN IF current_setting('port') <> '{}' THEN RAISE EXCEPTION 'ran on a worker'; END IF; END $d$;
           SELECT 1 $f$",
        ports[0]
    ))
    .unwrap();
    app.batch_execute("BEGIN; SELECT count(*) FROM notes")
        .unwrap();
    let refused = app.batch_execute("SELECT public.inject()");
    app.batch_execute("ROLLBACK").unwrap();
    assert_eq!(sqlstate(refused), "0A000", "through a SQL function");
    // In a database without Citus (on a server that preloads it) nothing
    // is propagated, and nothing is refused.
    let mut admin = connect(0, "postgres", "postgres");
    for statement in [
        "DROP DATABASE IF EXISTS fluent_citus_plain WITH (FORCE)",
        "CREATE DATABASE fluent_citus_plain",
    ] {
        admin.batch_execute(statement).unwrap();
    }
    connect(0, "fluent_citus_plain", "postgres")
        .batch_execute(
            "BEGIN; SET LOCAL citus.propagate_set_commands = 'local';
             SET LOCAL work_mem = '2MB'; SET LOCAL search_path = public; COMMIT",
        )
        .unwrap();
}

#[test]
fn a_search_path_of_the_querying_role_neither_captures_the_replicator_nor_the_membership_read() {
    let db = distributed_projects("search_path");
    let mut app = connect(0, &db, TESTER);
    // A domain named like the type of the bus's rows, earlier in a search
    // path, would take the replicator's insert on the workers (Citus replays
    // the transaction's SET LOCAL on every connection it opens): its check
    // would run as fluent_replicator, which may write the bus.
    app.batch_execute(
        "CREATE FUNCTION public.tattle(j pg_catalog.jsonb) RETURNS boolean LANGUAGE plpgsql
           AS $$ BEGIN RAISE EXCEPTION 'ran as %', current_user; END $$;
         CREATE DOMAIN public.jsonb AS pg_catalog.jsonb CHECK (public.tattle(VALUE));",
    )
    .unwrap();
    app.batch_execute("BEGIN; SET LOCAL citus.propagate_set_commands = 'local'")
        .unwrap();
    let refused = app.batch_execute("SET LOCAL search_path = public, pg_catalog");
    app.batch_execute("ROLLBACK").unwrap();
    assert_eq!(sqlstate(refused), "0A000");
    // Setting names are case-insensitive.
    app.batch_execute("BEGIN; SET LOCAL citus.propagate_set_commands = 'local'")
        .unwrap();
    let refused = app.batch_execute("SET LOCAL \"Search_Path\" = public, pg_catalog");
    app.batch_execute("ROLLBACK").unwrap();
    assert_eq!(sqlstate(refused), "0A000", "a quoted spelling");
    // On the workers, the replicator's sessions keep their own search_path
    // (pinned by the setup) whatever Citus replays on them, and whatever the
    // database's default.
    for node in [1, 2] {
        let mut replicator = connect(node, &db, "fluent_replicator");
        replicator
            .batch_execute("SET search_path = public, pg_catalog; SET LOCAL search_path = public")
            .unwrap();
        let path: String = replicator
            .query_one("SELECT current_setting('search_path')", &[])
            .unwrap()
            .get(0);
        assert_eq!(path, "pg_catalog, pg_temp", "worker {node}");
    }
    for node in 0..3 {
        connect(node, "postgres", "postgres")
            .batch_execute(&format!(
                "ALTER DATABASE {db} SET search_path = public, pg_catalog"
            ))
            .unwrap();
    }
    let mut admin = connect(0, &db, TESTER);
    admin
        .batch_execute("SELECT fluent_create_user('yan')")
        .unwrap();
    // The same path through set_config() stays on the coordinator.
    app.batch_execute(
        "BEGIN; SET LOCAL citus.propagate_set_commands = 'local';
         SELECT set_config('search_path', 'public, pg_catalog', true);",
    )
    .unwrap();
    app.batch_execute("SELECT fluent_create_user('zed')")
        .unwrap();
    app.batch_execute("COMMIT").unwrap();
    for node in [1, 2] {
        assert_eq!(users_named(&db, node, &["zed", "yan"]), 2, "worker {node}");
    }
    // On a worker, an `=` of the session's search path does not stand in
    // for the one the membership read compares the user with.
    let mut worker = connect(1, &db, "postgres");
    worker
        .batch_execute(
            "SET citus.enable_ddl_propagation = off;
             CREATE SCHEMA evil;
             CREATE FUNCTION evil.yes(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
             CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.yes);",
        )
        .unwrap();
    worker
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA evil TO {TESTER}; SELECT fluent_set_user('bob'); SET ROLE {TESTER};
             SET search_path = evil, pg_catalog, public"
        ))
        .unwrap();
    let mut seen: Vec<i64> = local_shards(&db, 1, "projects")
        .iter()
        .flat_map(|shard| ids(&mut worker, &format!("SELECT id FROM {shard}")))
        .collect();
    seen.sort();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|g| member_of(&["bob"]).contains(g)),
        "bob's projects only: {seen:?}"
    );
}

#[test]
fn a_prepared_distributed_query_follows_the_acting_user_and_the_catalog() {
    let db = distributed_notes("prepared");
    let mut app = connect(0, &db, TESTER);
    let mut dba = connect(0, &db, "postgres");
    // Citus builds the final plan of a multi-shard query anew: the one
    // first made for dan (no access) folded his answer, and must not serve
    // cat, nor dan once he is granted more.
    let statement = app.prepare("SELECT count(*) FROM notes").unwrap();
    let count = |app: &mut Client, user: &str| -> i64 {
        app.batch_execute(&format!("BEGIN; SELECT fluent_set_user('{user}', true)"))
            .unwrap();
        let n: i64 = app.query_one(&statement, &[]).unwrap().get(0);
        app.batch_execute("COMMIT").unwrap();
        n
    };
    assert_eq!(count(&mut app, "dan"), 0);
    assert_eq!(count(&mut app, "cat"), 40);
    assert_eq!(count(&mut app, "ann"), owned(&["ann"]).len() as i64);
    dba.batch_execute("SELECT fluent_grant_role('dan', 'auditor')")
        .unwrap();
    assert_eq!(count(&mut app, "dan"), 40);
}

#[test]
fn a_transaction_that_changed_the_catalog_reads_no_protected_citus_table() {
    let db = distributed_notes("read_own_change");
    let mut app = connect(0, &db, TESTER);
    // The workers apply the change on the replicator's connections: this
    // transaction's shard queries would read the catalog as committed.
    for read in [
        "SELECT count(*) FROM notes",
        "SELECT count(*) FROM notes WHERE tenant = 1",
        "SELECT count(*) FROM shared_notes",
        "SELECT count(*) FROM (SELECT 1 FROM notes n JOIN shared_notes s USING (id)) j",
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM notes)",
    ] {
        app.batch_execute(
            "BEGIN; SELECT fluent_grant_role('dan', 'auditor'); SELECT fluent_set_user('dan', true)",
        )
        .unwrap();
        let refused = app.batch_execute(read);
        app.batch_execute("ROLLBACK").unwrap();
        assert_eq!(sqlstate(refused), "0A000", "{read}");
    }
    // COPY reads and writes a table without a plan.
    for copy in ["COPY notes TO STDOUT", "COPY shared_notes TO STDOUT"] {
        app.batch_execute(
            "BEGIN; SELECT fluent_revoke_role('cat', 'auditor'); SELECT fluent_set_user('cat', true)",
        )
        .unwrap();
        let refused = app.copy_out(copy).map(|_| ());
        app.batch_execute("ROLLBACK").unwrap();
        assert_eq!(sqlstate(refused), "0A000", "{copy}");
    }
    // Committed, the next transaction reads it everywhere.
    app.batch_execute("SELECT fluent_grant_role('dan', 'auditor')")
        .unwrap();
    app.batch_execute("BEGIN; SELECT fluent_set_user('dan', true)")
        .unwrap();
    assert_eq!(last_count(&mut app, "SELECT count(*) FROM notes"), 40);
    app.batch_execute("COMMIT").unwrap();
}

#[test]
fn sets_before_a_catalog_change_do_not_reach_the_replicator() {
    let db = distributed_notes("set_role");
    let mut app = connect(0, &db, TESTER);
    // Citus replays the transaction's SET LOCALs on the replicator's
    // connection, where fluent ignores them: the role there stays the
    // replicator, whichever way the application chose its own.
    app.batch_execute("BEGIN; SELECT fluent_set_user('ann', true)")
        .unwrap();
    app.batch_execute(&format!("SET LOCAL ROLE {TESTER}"))
        .unwrap();
    app.batch_execute("SET LOCAL work_mem = '5MB'").unwrap();
    app.batch_execute("SELECT fluent_create_user('yan'); COMMIT")
        .unwrap();
    app.batch_execute(&format!(
        "BEGIN; SELECT fluent_set_user('ann', true); SELECT set_config('role', '{TESTER}', true);
         SELECT fluent_create_user('zed'); COMMIT;"
    ))
    .unwrap();
    assert_eq!(users_named(&db, 1, &["yan", "zed"]), 2);
    // The setup took run_command_on_all_nodes from PUBLIC, and with it
    // citus_stat_activity.
    assert_eq!(
        sqlstate(app.batch_execute("SELECT count(*) FROM citus_stat_activity")),
        "42501"
    );
}

#[test]
fn after_the_setup_only_a_superuser_distributes_tables_on_a_coordinator_with_placements() {
    let (db, mut coordinator) = set_up("distribute_after_setup");
    // The coordinator holds the bus's placement (a reference table), and
    // Citus's connection to itself claims a distributed transaction id,
    // which the setup took from PUBLIC there.
    let mut owner = connect(0, &db, TESTER);
    owner
        .batch_execute("CREATE TABLE mine (tenant int, body text)")
        .unwrap();
    assert_eq!(
        sqlstate(owner.batch_execute("SELECT create_reference_table('mine')")),
        "42501"
    );
    coordinator
        .batch_execute("SELECT create_reference_table('mine')")
        .unwrap();
}

#[test]
fn explain_the_views_and_who_can_answer_on_the_coordinator() {
    let db = distributed_notes("explain");
    // A reporting role on the coordinator, where the catalog is written.
    let mut reader = connect(0, &db, "postgres");
    reader
        .batch_execute(&format!(
            "GRANT fluent_reader TO {AUTHENTICATOR}; SET ROLE {AUTHENTICATOR}"
        ))
        .unwrap();
    let status: Vec<(String, bool)> = reader
        .query(
            "SELECT table_name::text, intact FROM fluent.protection_status ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        status,
        vec![
            ("notes".to_owned(), true),
            ("shared_notes".to_owned(), true)
        ]
    );
    for (user, scope) in [
        ("ann", "own"),
        ("lea", "team"),
        ("cat", "all"),
        ("dan", "none"),
    ] {
        let effective: String = reader
            .query_one(
                "SELECT coalesce(max(scope::text), 'none') FROM fluent.effective_permissions
                  WHERE user_key = $1 AND module = 'notes' AND action = 'read'",
                &[&user],
            )
            .unwrap()
            .get(0);
        assert_eq!(effective, scope, "{user}");
        let explained: i64 = reader
            .query_one(
                "SELECT count(*) FROM fluent_explain($1, 'notes', 'read') WHERE scope::text = $2",
                &[&user, &scope],
            )
            .unwrap()
            .get(0);
        assert!(explained > 0 || scope == "none", "{user}");
    }
    // The shards are checked on their nodes: a table owner (a superuser
    // here) on a worker unforces row security on one, drops a policy of
    // another, and adds a permissive policy to a reference table's.
    let notes = local_shards(&db, 1, "notes");
    let shared = local_shards(&db, 2, "shared_notes");
    connect(1, &db, "postgres")
        .batch_execute(&format!(
            "ALTER TABLE {} NO FORCE ROW LEVEL SECURITY; DROP POLICY fluent_select ON {};
             SET citus.enable_ddl_propagation = off;
             CREATE TABLE peek (id bigint, tenant int, owner text, body text);
             ALTER TABLE {} INHERIT peek;
             CREATE TABLE hidden () INHERITS ({});",
            notes[0], notes[1], notes[1], notes[0]
        ))
        .unwrap();
    connect(2, &db, "postgres")
        .batch_execute(&format!("CREATE POLICY open ON {} USING (true)", shared[0]))
        .unwrap();
    // The shards are found by the names the coordinator routes queries to,
    // whatever the worker's own table is called.
    connect(1, &db, "postgres")
        .batch_execute(
            "SET citus.enable_ddl_propagation = off; ALTER TABLE notes RENAME TO notes_elsewhere",
        )
        .unwrap();
    let problems: Vec<(String, String)> = reader
        .query(
            "SELECT relation::text, problem || ': ' || detail FROM fluent_protection_problems() ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    connect(1, &db, "postgres")
        .batch_execute(
            "SET citus.enable_ddl_propagation = off; ALTER TABLE notes_elsewhere RENAME TO notes",
        )
        .unwrap();
    let (host, ports) = fluent_pgrx_tests::citus::nodes();
    let on = |node: usize| format!("on node {host}:{}", ports[node]);
    assert_eq!(
        problems,
        [
            (
                "notes".to_owned(),
                format!("child outside the protection: shard public.{} {}: public.hidden inherits from the shard: queries on the shard read its rows, which it keeps past the shard's row security", notes[0], on(1))
            ),
            (
                "notes".to_owned(),
                format!("parent outside the protection: shard public.{} {}: the shard inherits from public.peek: queries on it read and change the shard's rows without these policies", notes[1], on(1))
            ),
            (
                "notes".to_owned(),
                format!("policy missing: shard public.{} {}: fluent_select was dropped on the shard", notes[1], on(1))
            ),
            (
                "notes".to_owned(),
                format!("row-level security not forced: shard public.{} {}: the owner sees and changes the shard's rows", notes[0], on(1))
            ),
            (
                "shared_notes".to_owned(),
                format!("permissive policy added: shard public.{} {}: open is OR-ed with fluent's policies on the shard and widens access", shared[0], on(2))
            ),
        ]
    );
    // A shard gone from its node is reported, and leaves the checks of the
    // node's other shards whole (the missing one's name once hid every
    // parent and child outside the protection there).
    connect(1, &db, "postgres")
        .batch_execute(&format!(
            "SET citus.enable_ddl_propagation = off; ALTER TABLE {} RENAME TO notes_gone",
            notes[1]
        ))
        .unwrap();
    let problems: Vec<String> = reader
        .query(
            "SELECT problem || ': ' || detail FROM fluent_protection_problems() WHERE relation = 'notes'::regclass ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        problems,
        [
            format!("child outside the protection: shard public.{} {}: public.hidden inherits from the shard: queries on the shard read its rows, which it keeps past the shard's row security", notes[0], on(1)),
            format!("row-level security not forced: shard public.{} {}: the owner sees and changes the shard's rows", notes[0], on(1)),
            format!("shard missing: shard public.{} {}: the node has no such relation: queries routed to it fail", notes[1], on(1)),
        ]
    );
    // fluent_who_can reads a Citus table's rows where they are: the
    // reference table's on one of its nodes. (Note 5 is ann's.)
    assert_eq!(
        who_can(&mut reader, "shared_notes", "5"),
        [
            ("ann".into(), "own".into(), "owner".into()),
            ("cat".into(), "all".into(), "all".into()),
            ("lea".into(), "team".into(), "team lead".into()),
        ]
    );
}

/// `fluent_who_can(table, key)`'s users, scopes and reaches, by user.
fn who_can(client: &mut Client, table: &str, key: &str) -> Vec<(String, String, String)> {
    client
        .query(
            &format!("SELECT user_key, scope, reach FROM fluent_who_can('{table}', $1) ORDER BY 1"),
            &[&key],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[test]
fn who_can_reads_a_citus_tables_row_on_the_node_holding_it() {
    let db = distributed_projects("who_can");
    let mut dba = connect(0, &db, "postgres");
    dba.batch_execute(&format!("GRANT fluent_reader TO {AUTHENTICATOR}"))
        .unwrap();
    let mut reader = connect(0, &db, AUTHENTICATOR);
    // Project 3 (tenant 3) has ann as member: she reaches it as assignee,
    // lea as her team's lead, cat by scope all; project 4's member is bob.
    let project_3 = vec![
        ("ann".to_owned(), "own".to_owned(), "assignee".to_owned()),
        ("cat".into(), "all".into(), "all".into()),
        ("lea".into(), "team".into(), "team lead".into()),
    ];
    assert_eq!(who_can(&mut reader, "projects", "3"), project_3);
    assert_eq!(who_can(&mut reader, "ref_projects", "3"), project_3);
    assert_eq!(
        who_can(&mut reader, "projects", "4"),
        [
            ("bob".to_owned(), "own".to_owned(), "assignee".to_owned()),
            ("cat".into(), "all".into(), "all".into()),
        ]
    );
    // The nodes read the shards the coordinator names, whatever their own
    // tables are called.
    let rename = |from: &str, to: &str| {
        for node in 1..=2 {
            connect(node, &db, "postgres")
                .batch_execute(&format!(
                    "SET citus.enable_ddl_propagation = off; ALTER TABLE {from} RENAME TO {to}"
                ))
                .unwrap();
        }
    };
    rename("projects", "projects_elsewhere");
    let renamed = who_can(&mut reader, "projects", "3");
    rename("projects_elsewhere", "projects");
    assert_eq!(renamed, project_3);
    // A table hung under a shard holds rows the shard's queries read, which
    // a read of the shard alone would miss: refused, naming it.
    let on_each_shard = |sql: &str| {
        for node in 1..=2 {
            let mut worker = connect(node, &db, "postgres");
            for shard in local_shards(&db, node, "projects") {
                worker
                    .batch_execute(&format!(
                        "SET citus.enable_ddl_propagation = off; {}",
                        sql.replace("{shard}", &shard)
                    ))
                    .unwrap();
            }
        }
    };
    on_each_shard("CREATE TABLE {shard}_hidden () INHERITS ({shard})");
    let refused = reader.batch_execute("SELECT * FROM fluent_who_can('projects', '3')");
    let message = error_message(&refused);
    assert_eq!(sqlstate(refused), "08000");
    assert!(
        message.contains("_hidden inherits from a shard"),
        "{message}"
    );
    on_each_shard("DROP TABLE {shard}_hidden");
    // No row, and a key that two tenants' rows share, as on one node.
    let sqlstate_of = |client: &mut Client, sql: &str| sqlstate(client.batch_execute(sql));
    assert_eq!(
        sqlstate_of(
            &mut reader,
            "SELECT * FROM fluent_who_can('projects', '99')"
        ),
        "P0002"
    );
    dba.batch_execute("INSERT INTO projects VALUES (1, 3, 'another tenant''s 3')")
        .unwrap();
    assert_eq!(
        sqlstate_of(&mut reader, "SELECT * FROM fluent_who_can('projects', '3')"),
        "21000"
    );
    // The nodes are asked as the calling role: one that may not log in
    // there gets the node's refusal, named.
    ensure_role(
        &mut dba,
        "it_citus_nologin_reader",
        false,
        &["fluent_reader"],
    );
    dba.batch_execute("SET ROLE it_citus_nologin_reader")
        .unwrap();
    let refused = dba.batch_execute("SELECT * FROM fluent_who_can('projects', '3')");
    let message = error_message(&refused);
    assert_eq!(sqlstate(refused), "08000");
    assert!(message.contains("on Citus node"), "{message}");
    dba.batch_execute("RESET ROLE").unwrap();
    // Nobody else may ask, on the coordinator or on a worker directly.
    let mut app = connect(0, &db, TESTER);
    app.batch_execute(&format!("SET ROLE {APP}")).unwrap();
    assert_eq!(
        sqlstate_of(&mut app, "SELECT * FROM fluent_who_can('projects', '4')"),
        "42501"
    );
}

/// A login role that only chooses users (fluent_authenticator).
const DELEGATE: &str = "it_citus_delegate";

/// A delegated administrator is confined to their workspace on Citus too:
/// the row of another workspace with the same key is not found, and a
/// membership row of that other row names nobody on this one.
#[test]
fn who_can_on_citus_confines_a_delegated_administrator_to_their_workspace() {
    let db = distributed_projects("who_can_confined");
    let mut dba = connect(0, &db, "postgres");
    dba.batch_execute(
        "SELECT fluent_create_workspace('other');
         SELECT fluent_set_admin_right('manage_users', 'projects', 'read');
         CREATE TABLE ws_projects (ws text, id bigint, PRIMARY KEY (ws, id));
         CREATE TABLE ws_members (ws text, project_id bigint, user_key text,
                                  FOREIGN KEY (ws, project_id) REFERENCES ws_projects (ws, id));
         SELECT create_distributed_table('ws_projects', 'ws', shard_count => 4);
         SELECT create_distributed_table('ws_members', 'ws', colocate_with => 'ws_projects');
         INSERT INTO ws_projects VALUES ('default', 3), ('other', 3), ('other', 5);
         INSERT INTO ws_members VALUES ('default', 3, 'ann'), ('other', 3, 'ann'), ('other', 3, 'bob'),
                                       ('other', 5, 'bob');
         GRANT SELECT ON ws_projects, ws_members TO it_tester;",
    )
    .unwrap();
    dba.batch_execute(
        "SELECT fluent_protect('ws_projects', 'projects', row_column => 'id', workspace_column => 'ws',
                               membership_table => 'ws_members', membership_row_column => 'project_id',
                               membership_user_column => 'user_key')",
    )
    .unwrap();
    // cat holds projects read at scope all in the default workspace, which
    // the right manage_users takes: she administers it, through a role
    // that chooses users and reads nobody's permissions itself.
    for node in 0..3 {
        let mut client = unpropagated(node, &db);
        ensure_role(&mut client, DELEGATE, true, &["fluent_authenticator"]);
    }
    let mut admin = connect(0, &db, DELEGATE);
    admin
        .batch_execute("BEGIN; SELECT fluent_set_user('cat', true)")
        .unwrap();
    let listed = who_can(&mut admin, "ws_projects", "3");
    let other = sqlstate(admin.batch_execute("SELECT * FROM fluent_who_can('ws_projects', '5')"));
    admin.batch_execute("COMMIT").unwrap();
    assert_eq!(
        listed,
        [
            ("ann".to_owned(), "own".to_owned(), "assignee".to_owned()),
            ("cat".into(), "all".into(), "all".into()),
            ("lea".into(), "team".into(), "team lead".into()),
        ]
    );
    assert_eq!(other, "P0002");
    // The policies confine the rows to the acting workspace too: ann, a
    // member of both projects 3, reads the default workspace's only.
    let mut app = connect(0, &db, TESTER);
    app.batch_execute("BEGIN; SELECT fluent_set_user('ann', true)")
        .unwrap();
    let rows: Vec<(String, i64)> = app
        .query("SELECT ws, id FROM ws_projects", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    app.batch_execute("COMMIT").unwrap();
    assert_eq!(rows, [("default".to_owned(), 3)]);
}

#[test]
fn a_partitioned_distributed_table_is_protected_with_its_partitions_and_column_limits_are_refused()
{
    let (db, mut dba) = set_up("partitions");
    dba.batch_execute(&format!(
        "SELECT fluent_create_module('notes'), fluent_create_module('secrets');
         SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'own');
         SELECT fluent_create_user('ann'), fluent_create_user('bob'), fluent_grant_role('ann', 'reader');
         CREATE TABLE pnotes (tenant int, id bigint, owner text, secret text, PRIMARY KEY (tenant, id))
           PARTITION BY RANGE (tenant);
         CREATE TABLE pnotes_a PARTITION OF pnotes FOR VALUES FROM (0) TO (4);
         CREATE TABLE pnotes_b PARTITION OF pnotes FOR VALUES FROM (4) TO (8);
         SELECT create_distributed_table('pnotes', 'tenant', shard_count => 4);
         INSERT INTO pnotes SELECT g % 8, g, (ARRAY['ann', 'bob'])[g % 2 + 1], 's' FROM generate_series(1, 20) g;
         GRANT SELECT ON pnotes, pnotes_b TO {TESTER};"
    ))
    .unwrap();
    dba.batch_execute("SELECT fluent_protect('pnotes', 'notes', owner_column => 'owner')")
        .unwrap();
    // A partition made after the protection gets its policies too.
    dba.batch_execute(&format!(
        "CREATE TABLE pnotes_c PARTITION OF pnotes FOR VALUES FROM (8) TO (12);
         INSERT INTO pnotes VALUES (9, 98, 'ann', 's'), (9, 99, 'bob', 's');
         GRANT SELECT ON pnotes_c TO {TESTER};"
    ))
    .unwrap();
    let mut app = connect(0, &db, TESTER);
    let anns: Vec<i64> = (1..=20).filter(|g| g % 2 == 0).chain([98]).collect();
    assert_eq!(
        acting(&mut app, "ann", "SELECT id FROM pnotes ORDER BY id"),
        anns
    );
    assert_eq!(
        acting(&mut app, "ann", "SELECT id FROM pnotes_b ORDER BY id"),
        anns.iter()
            .copied()
            .filter(|g| (4..8).contains(&(g % 8)) && *g <= 20)
            .collect::<Vec<_>>()
    );
    assert_eq!(acting(&mut app, "ann", "SELECT id FROM pnotes_c"), [98]);
    assert_eq!(
        acting(&mut app, "bob", "SELECT id FROM pnotes ORDER BY id"),
        Vec::<i64>::new()
    );
    let intact = |dba: &mut Client| -> bool {
        dba.query_one(
            "SELECT intact FROM fluent.protection_status WHERE table_name = 'pnotes'::regclass",
            &[],
        )
        .unwrap()
        .get(0)
    };
    assert!(intact(&mut dba));
    // Column limits are refused before anything is made.
    assert_eq!(
        sqlstate(
            dba.batch_execute("SELECT fluent_protect_columns('pnotes', '{secret}', 'secrets')")
        ),
        "0A000"
    );
    let masked: Option<String> = dba
        .query_one("SELECT to_regclass('pnotes_masked')::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(masked, None);
    assert!(intact(&mut dba));
}

/// A worker answers only a request the coordinator signed, for the role it
/// runs as, unexpired: not one for another role, changed, expired, or
/// written by hand. The coordinator does not show the request to the caller
/// (Citus logs remote commands on request).
#[test]
fn a_worker_answers_only_requests_signed_for_its_session_role() {
    let db = distributed_projects("who_can_requests");
    let mut dba = connect(0, &db, "postgres");
    dba.batch_execute(&format!(
        "GRANT fluent_reader TO {AUTHENTICATOR}; GRANT SELECT ON projects TO {AUTHENTICATOR}"
    ))
    .unwrap();
    let (mut reader, notices) = connect_collecting_notices(0, &db, AUTHENTICATOR);
    reader
        .batch_execute("SET citus.log_remote_commands = on; SET client_min_messages = log")
        .unwrap();
    assert_eq!(who_can(&mut reader, "projects", "4").len(), 2);
    reader
        .batch_execute("SELECT count(*) FROM projects")
        .unwrap();
    let logged = notices.lock().unwrap().join("\n");
    assert!(logged.contains("FROM (SELECT"), "{logged}");
    assert!(!logged.contains("_citus_placed_rows"), "{logged}");
    // Requests as the coordinator writes them, signed with the cluster's
    // secret (read here by a superuser).
    let secret: String = dba
        .query_one("SELECT secret FROM fluent.citus_secret", &[])
        .unwrap()
        .get(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Each worker's request names its own shards of both tables.
    let shards = |node: usize, table: &str| -> Vec<String> {
        local_shards(&db, node, table)
            .into_iter()
            .map(|s| format!("public.{s}"))
            .collect()
    };
    let sign = |node: usize, role: &str, exp: u64| {
        let claims = serde_json::json!({
            "role": role, "shards": shards(node, "projects"), "key_column": "id",
            "owner_column": null, "workspace_column": null, "distribution": "tenant",
            "membership_shards": shards(node, "project_members"), "membership_row_column": "project_id",
            "membership_user_column": "user_key", "membership_distribution": "tenant",
            "item_column": null, "assignment_shards": [], "assignment_row_column": null,
            "assignment_user_column": null, "assignment_team_column": null, "assignment_role_column": null,
            "assignment_distribution": null, "key": "4", "workspace": null, "exp": exp,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let ask = |node: usize, role: &str, request: &str| {
        connect(node, &db, role).query_one("SELECT fluent._citus_placed_rows($1)", &[&request])
    };
    // Its own role, on each worker: answered (project 4 is on one of them).
    let answers: Vec<String> = (1..=2)
        .map(|node| {
            ask(node, AUTHENTICATOR, &sign(node, AUTHENTICATOR, now + 10))
                .unwrap()
                .get(0)
        })
        .collect();
    assert!(answers.iter().any(|a| a.contains("\"bob\"")), "{answers:?}");
    // A shard the node does not have is not skipped.
    assert_eq!(
        sqlstate(ask(2, AUTHENTICATOR, &sign(1, AUTHENTICATOR, now + 10)).map(|_| ())),
        "42P01"
    );
    // Another role, a changed request, an expired one, one written by hand:
    // refused.
    let request = sign(1, AUTHENTICATOR, now + 10);
    let mut changed = request.clone();
    let dot = changed.find('.').unwrap();
    let swapped = if &request[dot + 2..dot + 3] == "A" {
        "B"
    } else {
        "A"
    };
    changed.replace_range(dot + 2..dot + 3, swapped);
    // {"alg":"none"} . {"role":"it_tester"}: no signature.
    let unsigned = "eyJhbGciOiJub25lIn0.eyJyb2xlIjoiaXRfdGVzdGVyIn0.".to_owned();
    for (node, role, request) in [
        (1, TESTER, request.clone()),
        (1, AUTHENTICATOR, changed),
        (1, AUTHENTICATOR, sign(1, AUTHENTICATOR, now - 30)),
        (1, TESTER, unsigned.clone()),
        (0, AUTHENTICATOR, unsigned),
    ] {
        let refused = ask(node, role, &request).map(|_| ());
        assert_eq!(sqlstate(refused), "42501", "{role}: {request}");
    }
    // A role that reads all data reads no secret on any node.
    for node in 0..3 {
        ensure_role(
            &mut unpropagated(node, &db),
            "it_citus_read_all",
            true,
            &["pg_read_all_data"],
        );
        let secrets: i64 = connect(node, &db, "it_citus_read_all")
            .query_one("SELECT count(*) FROM fluent.citus_secret", &[])
            .unwrap()
            .get(0);
        assert_eq!(secrets, 0, "node {node}");
    }
}

/// fluent_who_can and the policies read a Citus table in a schema the
/// catalog owner has no privilege on; a membership row's tenant is compared
/// as its type compares it (1.00 is tenant 1.0); and asking about a table
/// this transaction locked exclusively is refused, not left waiting for
/// itself.
#[test]
fn who_can_on_citus_reads_any_schema_compares_tenants_by_type_and_waits_for_no_own_lock() {
    let (db, mut dba) = set_up("who_can_odd");
    dba.batch_execute(&format!(
        "SELECT fluent_create_module('tasks');
         SELECT fluent_create_role('member'), fluent_set_permission('member', 'tasks', 'read', 'own');
         SELECT fluent_create_user(u), fluent_grant_role(u, 'member') FROM unnest('{{bob,zed}}'::text[]) u;
         CREATE SCHEMA s;
         GRANT USAGE ON SCHEMA s TO {TESTER}, {AUTHENTICATOR};
         CREATE TABLE s.tasks (tenant numeric, id bigint, owner text, PRIMARY KEY (tenant, id));
         CREATE TABLE s.task_members (tenant numeric, task_id bigint, user_key text,
                                      FOREIGN KEY (tenant, task_id) REFERENCES s.tasks (tenant, id));
         SELECT create_distributed_table('s.tasks', 'tenant', shard_count => 4);
         SELECT create_distributed_table('s.task_members', 'tenant', colocate_with => 's.tasks');
         INSERT INTO s.tasks VALUES (1.0, 10, 'bob');
         INSERT INTO s.task_members VALUES (1.00, 10, 'zed');
         GRANT SELECT ON s.tasks, s.task_members TO {TESTER};
         GRANT fluent_reader TO {AUTHENTICATOR};"
    ))
    .unwrap();
    dba.batch_execute(
        "SELECT fluent_protect('s.tasks', 'tasks', owner_column => 'owner', row_column => 'id',
                               membership_table => 's.task_members', membership_row_column => 'task_id',
                               membership_user_column => 'user_key')",
    )
    .unwrap();
    let mut app = connect(0, &db, TESTER);
    assert_eq!(acting(&mut app, "zed", "SELECT id FROM s.tasks"), [10]);
    let mut reader = connect(0, &db, AUTHENTICATOR);
    assert_eq!(
        who_can(&mut reader, "s.tasks", "10"),
        [
            ("bob".to_owned(), "own".to_owned(), "owner".to_owned()),
            ("zed".into(), "own".into(), "assignee".into()),
        ]
    );
    dba.batch_execute(
        "SET statement_timeout = '20s'; BEGIN; ALTER TABLE s.tasks ADD COLUMN zz int",
    )
    .unwrap();
    let refused = dba.batch_execute("SELECT * FROM fluent_who_can('s.tasks', '10')");
    dba.batch_execute("ROLLBACK").unwrap();
    assert_eq!(sqlstate(refused), "55006");
}

/// A node added after the setup: the setup refuses until the bus has a
/// placement there (Citus copies reference tables to a new node only when
/// told), then sends it the whole catalog, and later changes reach it.
#[test]
fn a_node_added_after_the_setup_gets_the_catalog_when_the_setup_runs_again() {
    let db = distributed_notes("node_added");
    let node = fluent_pgrx_tests::citus::AddedNode::start(&db);
    let (host, _) = fluent_pgrx_tests::citus::nodes();
    let mut dba = connect(0, &db, "postgres");
    dba.batch_execute(&format!("SELECT citus_add_node('{host}', {})", node.port))
        .unwrap();
    assert_eq!(
        sqlstate(dba.batch_execute("SELECT fluent_citus_setup()")),
        "55000"
    );
    // (This cluster's wal_level is not logical.)
    let mut dba = connect(0, &db, "postgres");
    dba.batch_execute("SELECT replicate_reference_tables('block_writes')")
        .unwrap();
    let workers: i32 = dba
        .query_one("SELECT fluent_citus_setup()", &[])
        .unwrap()
        .get(0);
    assert_eq!(workers, 3);
    let users = |client: &mut Client| -> Vec<String> {
        client
            .query("SELECT user_key FROM fluent.users ORDER BY 1", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let mut added = node.connect(&db, "postgres");
    assert_eq!(users(&mut added), users(&mut dba));
    assert_eq!(scope(&mut added, "ann"), "own");
    dba.batch_execute("SELECT fluent_revoke_role('ann', 'reader')")
        .unwrap();
    assert_eq!(scope(&mut added, "ann"), "none");
    // The replicator logs in there, with its settings pinned.
    let settings: Vec<String> = added
        .query(
            "SELECT unnest(s.setconfig) FROM pg_db_role_setting s
              WHERE s.setrole = 'fluent_replicator'::regrole AND s.setdatabase = 0 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        settings.contains(&"search_path=pg_catalog, pg_temp".to_owned()),
        "{settings:?}"
    );
    // (Out of the cluster again before the node stops: Citus's maintenance
    // would keep dialling it.)
    dba.batch_execute(&format!(
        "SELECT citus_remove_node('{host}', {})",
        node.port
    ))
    .unwrap();
}

/// A worker's database may belong to a non-superuser, who may set its
/// default search path: a domain named like a type fluent sends (jsonb)
/// captures nothing of the setup (the cluster's secret goes out then, as
/// the calling superuser), of the shard checks or of fluent_who_can. And a
/// table named like fluent's schema reads intact.
#[test]
fn a_workers_database_owner_captures_nothing_of_the_setup_or_the_checks() {
    let db = database("owner_capture");
    let mut worker = unpropagated(2, &db);
    ensure_role(&mut worker, "it_citus_dbowner", true, &[]);
    worker
        .batch_execute(&format!("ALTER DATABASE {db} OWNER TO it_citus_dbowner"))
        .unwrap();
    connect(2, &db, "it_citus_dbowner")
        .batch_execute(&format!(
            "SET citus.enable_ddl_propagation = off;
             CREATE TABLE public.loot (who text, superuser boolean, secret text);
             GRANT INSERT ON public.loot TO PUBLIC;
             CREATE FUNCTION public.capture(v pg_catalog.jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO public.loot SELECT current_user, rolsuper, v ->> '#secret'
                 FROM pg_catalog.pg_roles WHERE rolname = current_user;
               RETURN true;
             END $$;
             CREATE DOMAIN public.jsonb AS pg_catalog.jsonb CHECK (public.capture(VALUE));
             ALTER DATABASE {db} SET search_path = public, pg_catalog;"
        ))
        .unwrap();
    let mut dba = connect(0, &db, "postgres");
    dba.batch_execute("SELECT fluent_citus_setup()").unwrap();
    dba.batch_execute(
        "SELECT fluent_create_module('notes');
         SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'own');
         SELECT fluent_create_user('ann'), fluent_grant_role('ann', 'reader');
         CREATE TABLE public.fluent (tenant int, id bigint, owner text, PRIMARY KEY (tenant, id));
         SELECT create_distributed_table('public.fluent', 'tenant', shard_count => 4);
         INSERT INTO public.fluent SELECT g, g, 'ann' FROM generate_series(1, 8) g;"
    )
    .unwrap();
    // The reporting role reads on every node (the nodes' checks run as it).
    for node in 0..3 {
        connect(node, &db, "postgres")
            .batch_execute(&format!(
                "SET citus.enable_ddl_propagation = off; GRANT fluent_reader TO {AUTHENTICATOR}"
            ))
            .unwrap();
    }
    dba.batch_execute(
        "SELECT fluent_protect('public.fluent', 'notes', owner_column => 'owner', row_column => 'id')",
    )
    .unwrap();
    let mut reader = connect(0, &db, AUTHENTICATOR);
    let status: Vec<(bool, Vec<String>)> = reader
        .query("SELECT intact, problems FROM fluent.protection_status", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(status, [(true, vec![])]);
    assert_eq!(who_can(&mut reader, "public.fluent", "3").len(), 1);
    // A role that reports on the coordinator only cannot have the shards
    // checked: the nodes refuse it, and the status says so.
    for node in 0..3 {
        ensure_role(
            &mut unpropagated(node, &db),
            "it_citus_coordinator_reader",
            true,
            &[],
        );
    }
    connect(0, &db, "postgres")
        .batch_execute(
            "SET citus.enable_ddl_propagation = off; GRANT fluent_reader TO it_citus_coordinator_reader",
        )
        .unwrap();
    let problems: Vec<String> = connect(0, &db, "it_citus_coordinator_reader")
        .query("SELECT problem FROM fluent_protection_problems()", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(problems, ["shards not checked", "shards not checked"]);
    let loot: i64 = connect(2, &db, "postgres")
        .query_one("SELECT count(*) FROM public.loot", &[])
        .unwrap()
        .get(0);
    assert_eq!(loot, 0);
}

/// The setup's commands on the workers' own connections are checked: one
/// that fails on a worker stops the setup, and nothing is set up.
#[test]
fn a_setup_command_failing_on_a_worker_stops_the_setup_whole() {
    let db = database("setup_fails");
    // Worker 1's sessions are read-only by default (the replicator's are
    // not: the setup pins it, once it can).
    connect(1, &db, "postgres")
        .batch_execute(&format!(
            "SET citus.enable_ddl_propagation = off;
             ALTER DATABASE {db} SET default_transaction_read_only = on;"
        ))
        .unwrap();
    let mut dba = connect(0, &db, "postgres");
    let refused = dba.batch_execute("SELECT fluent_citus_setup()");
    let message = error_message(&refused);
    assert_eq!(sqlstate(refused), "08000");
    assert!(message.contains("fluent_replicator"), "{message}");
    let active: bool = dba
        .query_one("SELECT fluent._citus_bus_active()", &[])
        .unwrap()
        .get(0);
    assert!(!active);
}

/// A node added later whose database's owner (not a superuser) put a domain
/// named jsonb first in its default search path: Citus creates the bus's
/// placement there with that type, and the setup refuses before it sends
/// anything through it, so the domain's check never runs as the superuser.
#[test]
fn a_node_whose_bus_placement_has_another_jsonb_is_refused_before_anything_is_sent() {
    let db = distributed_notes("node_captured");
    let node = fluent_pgrx_tests::citus::AddedNode::start(&db);
    let (host, _) = fluent_pgrx_tests::citus::nodes();
    // The new node's database belongs to a non-superuser who has put a
    // domain named jsonb first in its default search path: Citus's
    // placements made there take it.
    let mut added = node.connect(&db, "postgres");
    ensure_role(&mut added, "it_citus_dbowner", true, &[]);
    added
        .batch_execute(&format!("ALTER DATABASE {db} OWNER TO it_citus_dbowner"))
        .unwrap();
    node.connect(&db, "it_citus_dbowner")
        .batch_execute(&format!(
            "CREATE TABLE public.loot (who text);
             GRANT INSERT ON public.loot TO PUBLIC;
             CREATE FUNCTION public.capture(v pg_catalog.jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.loot VALUES (current_user); RETURN true; END $$;
             CREATE DOMAIN public.jsonb AS pg_catalog.jsonb CHECK (public.capture(VALUE));
             ALTER DATABASE {db} SET search_path = public, pg_catalog;"
        ))
        .unwrap();
    let mut dba = connect(0, &db, "postgres");
    dba.batch_execute(&format!("SELECT citus_add_node('{host}', {})", node.port))
        .unwrap();
    dba.batch_execute("SELECT replicate_reference_tables('block_writes')")
        .unwrap();
    let refused = dba.batch_execute("SELECT fluent_citus_setup()");
    let message = error_message(&refused);
    assert_eq!(sqlstate(refused), "08000");
    assert!(message.contains("type outside pg_catalog"), "{message}");
    let loot: i64 = node
        .connect(&db, "postgres")
        .query_one("SELECT count(*) FROM public.loot", &[])
        .unwrap()
        .get(0);
    assert_eq!(loot, 0);
    dba.batch_execute(&format!(
        "SELECT citus_remove_node('{host}', {})",
        node.port
    ))
    .unwrap();
}

/// A database with seed 002's projects on Citus, item roles on them and a
/// child table (their tasks), distributed by tenant with the assignments
/// and the tasks co-located. ann owns every project and task; every user
/// holds `staff` (own scope on read, write and create, not delete); vic is
/// in team `design`.
fn item_projects(name: &str) -> String {
    let (db, mut coordinator) = set_up(name);
    coordinator
        .batch_execute(&format!(
            "SELECT fluent_create_module('projects', '{{read,write,delete,create}}');
             SELECT fluent_create_item_role('projects', 'manager', '{{read,write,delete}}'),
                    fluent_create_item_role('projects', 'editor', '{{read,write}}'),
                    fluent_create_item_role('projects', 'viewer', '{{read}}');
             SELECT fluent_create_role('staff'), fluent_set_permission('staff', 'projects', 'read', 'own'),
                    fluent_set_permission('staff', 'projects', 'write', 'own'),
                    fluent_set_permission('staff', 'projects', 'create', 'own');
             SELECT fluent_create_user(u), fluent_grant_role(u, 'staff')
               FROM unnest('{{ann,eddy,vic,zoe}}'::text[]) u;
             SELECT fluent_create_team('design'), fluent_add_team_member('design', 'vic');
             -- A distributed table's keys include its distribution column.
             CREATE TABLE projects (tenant int, id int, owner text, name text, PRIMARY KEY (tenant, id));
             CREATE TABLE project_roles (tenant int, project_id int, user_key text, team text, role text,
                 FOREIGN KEY (tenant, project_id) REFERENCES projects (tenant, id) ON DELETE CASCADE);
             CREATE INDEX ON project_roles (user_key);
             CREATE INDEX ON project_roles (team);
             CREATE TABLE tasks (tenant int, id int, project_id int, owner text, body text,
                 PRIMARY KEY (tenant, id), FOREIGN KEY (tenant, project_id) REFERENCES projects (tenant, id));
             SELECT create_distributed_table('projects', 'tenant', shard_count => 4);
             SELECT create_distributed_table('project_roles', 'tenant', colocate_with => 'projects');
             SELECT create_distributed_table('tasks', 'tenant', colocate_with => 'projects');
             INSERT INTO projects SELECT g % 4, g, 'ann', 'p' || g FROM generate_series(1, 8) g;
             INSERT INTO tasks SELECT g % 4, 100 + g, g, 'ann', 't' || g FROM generate_series(1, 8) g;
             GRANT SELECT, INSERT, UPDATE, DELETE ON projects, project_roles, tasks TO {TESTER};"
        ))
        .unwrap();
    // (Each statement its own transaction, as in psql: Citus has the tables
    // on the workers once they are distributed.)
    coordinator
        .batch_execute(
            "SELECT fluent_protect('projects', 'projects', 'owner', row_column => 'id',
                                   membership_table => 'project_roles',
                                   membership_row_column => 'project_id', membership_user_column => 'user_key',
                                   membership_role_column => 'role', membership_team_column => 'team',
                                   insert_action => 'create')",
        )
        .unwrap();
    coordinator
        .batch_execute(
            "SELECT fluent_protect('tasks', 'projects', 'owner', row_column => 'id',
                                   parent_table => 'projects', parent_column => 'project_id',
                                   insert_action => 'create')",
        )
        .unwrap();
    db
}

/// Runs `sql` through the coordinator as the tester acting for `user`, in a
/// transaction of its own: the rows written, or the refusal's SQLSTATE.
fn commit_as(app: &mut Client, user: &str, sql: &str) -> Result<u64, String> {
    app.batch_execute(&format!("BEGIN; SELECT fluent_set_user('{user}', true)"))
        .unwrap();
    match app.execute(sql, &[]) {
        Ok(rows) => {
            app.batch_execute("COMMIT").unwrap();
            Ok(rows)
        }
        Err(e) => {
            app.batch_execute("ROLLBACK").unwrap();
            Err(sqlstate(Err::<(), _>(e)))
        }
    }
}

#[test]
fn item_roles_on_citus_tables_give_their_items_and_check_writes_on_the_shards() {
    let db = item_projects("item_roles");
    let mut app = connect(0, &db, TESTER);
    let (projects, roles, tasks) = ("projects", "project_roles", "tasks");
    // A child table without its foreign key is refused, before anything is
    // made: the hint says what it takes.
    let mut dba = connect(0, &db, "postgres");
    dba.batch_execute(
        "CREATE TABLE notes (tenant int, id int, project_id int, owner text, PRIMARY KEY (tenant, id));
         SELECT create_distributed_table('notes', 'tenant', colocate_with => 'projects');",
    )
    .unwrap();
    let refused = dba
        .batch_execute(
            "SELECT fluent_protect('notes', 'projects', 'owner', row_column => 'id',
                                   parent_table => 'projects', parent_column => 'project_id')",
        )
        .unwrap_err();
    let refused = refused.as_db_error().unwrap();
    assert_eq!(refused.code().code(), "0A000");
    assert!(
        refused.hint().is_some_and(|h| h.contains(
            "a foreign key to \"public.projects\" that includes both distribution columns"
        )),
        "{refused:?}"
    );
    // ann, who owns project 1 and 2 with scope own on write (not
    // delete), names an editor and a team of viewers, not a manager.
    assert_eq!(
        commit_as(
            &mut app,
            "ann",
            &format!("INSERT INTO {roles} VALUES (1, 1, 'eddy', NULL, 'editor'), (2, 2, NULL, 'design', 'viewer')")
        ),
        Ok(2)
    );
    assert_eq!(
        commit_as(
            &mut app,
            "ann",
            &format!("INSERT INTO {roles} VALUES (3, 3, 'zoe', NULL, 'manager')")
        ),
        Err("42501".into())
    );
    // Checked on the shard, after row security: a user fluent does not
    // know.
    assert_eq!(
        commit_as(
            &mut app,
            "ann",
            &format!("INSERT INTO {roles} VALUES (3, 3, 'nobody', NULL, 'editor')")
        ),
        Err("42704".into())
    );
    // Each user reads the projects their item roles give, and their
    // tasks; a router query too.
    for (user, expected, expected_tasks) in [
        ("eddy", vec![1], vec![101]),
        ("vic", vec![2], vec![102]),
        ("zoe", vec![], vec![]),
        ("ann", (1..=8).collect(), (101..=108).collect()),
    ] {
        let seen = acting(
            &mut app,
            user,
            &format!("SELECT id::bigint FROM {projects} ORDER BY id"),
        );
        assert_eq!(seen, expected, "{user}");
        let seen = acting(
            &mut app,
            user,
            &format!("SELECT id::bigint FROM {tasks} ORDER BY id"),
        );
        assert_eq!(seen, expected_tasks, "{user} tasks");
    }
    assert_eq!(
        acting(
            &mut app,
            "eddy",
            &format!("SELECT id::bigint FROM {projects} WHERE tenant = 1")
        ),
        vec![1]
    );
    // An editor names no one, herself included; she adds a task under
    // her project and edits it, but takes neither it nor a task over.
    assert_eq!(
        commit_as(
            &mut app,
            "eddy",
            &format!("INSERT INTO {roles} VALUES (1, 1, 'eddy', NULL, 'manager')")
        ),
        Err("42501".into())
    );
    assert_eq!(
        commit_as(
            &mut app,
            "eddy",
            &format!("INSERT INTO {tasks} VALUES (1, 201, 1, 'eddy', 'new')")
        ),
        Ok(1)
    );
    assert_eq!(
        commit_as(
            &mut app,
            "eddy",
            &format!("UPDATE {projects} SET name = 'renamed' WHERE id = 1")
        ),
        Ok(1)
    );
    assert_eq!(
        commit_as(
            &mut app,
            "eddy",
            &format!("UPDATE {projects} SET owner = 'eddy' WHERE id = 1")
        ),
        Err("42501".into())
    );
    assert_eq!(
        commit_as(
            &mut app,
            "eddy",
            &format!("INSERT INTO {tasks} VALUES (1, 202, 1, 'zoe', 'planted')")
        ),
        Err("42501".into())
    );
    // A viewer puts no task under her project.
    assert_eq!(
        commit_as(
            &mut app,
            "vic",
            &format!("INSERT INTO {tasks} VALUES (2, 203, 2, 'vic', 'x')")
        ),
        Err("42501".into())
    );
    // Taken back, the item role gives nothing at the next statement.
    assert_eq!(
        commit_as(
            &mut app,
            "ann",
            &format!("DELETE FROM {roles} WHERE user_key = 'eddy'")
        ),
        Ok(1)
    );
    assert_eq!(
        acting(
            &mut app,
            "eddy",
            &format!("SELECT id::bigint FROM {projects}")
        ),
        Vec::<i64>::new()
    );
}

/// The audit rows of assignments on node `node`: (database role, acting
/// user, table, operation).
fn assignment_audit(db: &str, node: usize) -> Vec<(String, Option<String>, String, String)> {
    connect(node, db, "postgres")
        .query(
            "SELECT db_role, acting_user, table_name, operation FROM fluent.audit_log
              WHERE table_name LIKE '%project_roles%' ORDER BY audit_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[test]
fn item_roles_on_citus_are_audited_found_checked_and_kept_within_a_delegates_powers() {
    let db = item_projects("item_readers");
    let mut app = connect(0, &db, TESTER);
    assert_eq!(
        commit_as(
            &mut app,
            "ann",
            "INSERT INTO project_roles VALUES (1, 1, 'eddy', NULL, 'editor'), (2, 2, NULL, 'design', 'viewer')"
        ),
        Ok(2)
    );
    // Audited on the node holding the assignment, in its transaction,
    // naming the table (not its shard); a TRUNCATE on the coordinator.
    let on_workers: Vec<_> = [1, 2]
        .into_iter()
        .flat_map(|node| assignment_audit(&db, node))
        .collect();
    let inserted = (
        TESTER.to_owned(),
        Some("ann".to_owned()),
        "public.project_roles".to_owned(),
        "INSERT".to_owned(),
    );
    assert_eq!(on_workers, [inserted.clone(), inserted]);
    assert_eq!(assignment_audit(&db, 0), []);
    // The coordinator shows the workers' logs, to those who may read the
    // log on every node.
    let reading = |node: usize, grant: &str| {
        let mut client = unpropagated(node, &db);
        ensure_role(&mut client, AUDITOR, true, &[]);
        client.batch_execute(&grant.replace("{}", AUDITOR)).unwrap();
    };
    for node in 0..3 {
        reading(node, "REVOKE fluent_reader FROM {}");
    }
    let mut reader = connect(0, &db, AUDITOR);
    let citus_log = |reader: &mut Client| {
        reader.query(
            "SELECT node, acting_user, table_name, operation FROM fluent.citus_audit_log
              WHERE table_name = 'public.project_roles' ORDER BY node",
            &[],
        )
    };
    assert_eq!(sqlstate(citus_log(&mut reader)), "42501");
    // Allowed on the coordinator only: the workers refuse, and nothing is
    // shown in part.
    reading(0, "GRANT fluent_reader TO {}");
    assert_eq!(sqlstate(citus_log(&mut reader)), "08000");
    for node in 1..3 {
        reading(node, "GRANT fluent_reader TO {}");
    }
    let (host, ports) = fluent_pgrx_tests::citus::nodes();
    let gathered: Vec<(String, String, String, String)> = citus_log(&mut reader)
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let entry = |node: usize| {
        (
            format!("{host}:{}", ports[node]),
            "ann".to_owned(),
            "public.project_roles".to_owned(),
            "INSERT".to_owned(),
        )
    };
    assert_eq!(gathered, [entry(1), entry(2)]);
    // Every entry, as written: a numeric value to its last digit, a value
    // nested deep, and more entries than one page holds.
    connect(0, &db, "postgres")
        .batch_execute("ALTER TABLE project_roles ADD COLUMN weight numeric, ADD COLUMN meta jsonb")
        .unwrap();
    let deep = format!("{}{}", "[".repeat(125), "]".repeat(125));
    assert_eq!(
        commit_as(
            &mut app,
            "ann",
            &format!(
                "INSERT INTO project_roles VALUES {}",
                vec![
                    format!("(1, 1, 'zoe', NULL, 'viewer', 0.10000000000000000555, '{deep}')");
                    1001
                ]
                .join(", ")
            )
        ),
        Ok(1001)
    );
    let on_node = |node: usize| -> i64 {
        connect(node, &db, "postgres")
            .query_one("SELECT count(*) FROM fluent.audit_log", &[])
            .unwrap()
            .get(0)
    };
    let read: Vec<(String, i64, Option<String>)> = reader
        .query(
            "SELECT node, count(*), max(after ->> 'weight') FROM fluent.citus_audit_log GROUP BY node ORDER BY node",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let weight = Some("0.10000000000000000555".to_owned());
    let tenant_1 = if on_node(1) > 1001 { 1 } else { 2 };
    assert_eq!(
        read,
        [1, 2]
            .map(|node| (
                format!("{host}:{}", ports[node]),
                on_node(node),
                (node == tenant_1).then(|| weight.clone()).flatten()
            ))
            .to_vec()
    );
    assert_eq!(
        commit_as(
            &mut app,
            "ann",
            "DELETE FROM project_roles WHERE user_key = 'zoe'"
        ),
        Ok(1001)
    );
    // fluent_who_can reads the assignments where they are: the item's, and
    // its parent's for a task.
    let mut dba = connect(0, &db, "postgres");
    assert_eq!(
        who_can(&mut dba, "projects", "1"),
        [
            ("ann".to_owned(), "own".to_owned(), "owner".to_owned()),
            ("eddy".into(), "own".into(), "item role".into()),
        ]
    );
    assert_eq!(
        who_can(&mut dba, "tasks", "102"),
        [
            ("ann".to_owned(), "own".to_owned(), "owner".to_owned()),
            ("vic".into(), "own".into(), "item role".into()),
        ]
    );
    // A child's trigger finds its parent by name on the shard's node: a
    // look-alike that a table owner puts under that name there (one that
    // any writer may update) is not the co-located Citus table.
    let swap = |from: &str, to: &str, look_alike: bool| {
        for node in 1..=2 {
            connect(node, &db, "postgres")
                .batch_execute(&format!(
                    "SET citus.enable_ddl_propagation = off; ALTER TABLE {from} RENAME TO {to};{}",
                    if look_alike {
                        "CREATE TABLE projects (tenant int, id int);
                         INSERT INTO projects SELECT t, g FROM generate_series(0, 3) t, generate_series(1, 8) g;
                         GRANT SELECT, UPDATE ON projects TO PUBLIC;"
                    } else {
                        ""
                    }
                ))
                .unwrap();
        }
    };
    swap("projects", "projects_shell", true);
    let planted = commit_as(
        &mut app,
        "vic",
        "INSERT INTO tasks VALUES (2, 301, 2, 'vic', 'x')",
    );
    for node in 1..=2 {
        connect(node, &db, "postgres")
            .batch_execute("DROP TABLE projects")
            .unwrap();
    }
    swap("projects_shell", "projects", false);
    assert_eq!(planted, Err("55000".into()));
    // The item roles' triggers are checked on every shard.
    let roles_shard = local_shards(&db, 1, "project_roles").remove(0);
    let tasks_shard = local_shards(&db, 2, "tasks").remove(0);
    let shard_id = |shard: &str| shard.rsplit('_').next().unwrap().to_owned();
    connect(1, &db, "postgres")
        .batch_execute(&format!(
            "ALTER TABLE {roles_shard} DISABLE TRIGGER fluent_item_role_conditions_{}",
            shard_id(&roles_shard)
        ))
        .unwrap();
    connect(2, &db, "postgres")
        .batch_execute(&format!(
            "DROP TRIGGER fluent_item_parent_{} ON {tasks_shard}",
            shard_id(&tasks_shard)
        ))
        .unwrap();
    let problems: Vec<String> = dba
        .query(
            "SELECT problem || ': ' || detail FROM fluent_protection_problems() ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (host, ports) = fluent_pgrx_tests::citus::nodes();
    assert_eq!(
        problems,
        [
            format!("item role trigger disabled: shard public.{roles_shard} on node {host}:{}: fluent_item_role_conditions on the shard: assignments are not checked against their item roles and conditions", ports[1]),
            format!("item role trigger missing: shard public.{tasks_shard} on node {host}:{}: fluent_item_parent on the shard: a row may be put under a parent its writer may not update", ports[2]),
        ]
    );
    dba.batch_execute("TRUNCATE project_roles").unwrap();
    assert_eq!(
        assignment_audit(&db, 0),
        [(
            "postgres".to_owned(),
            None,
            "public.project_roles".to_owned(),
            "TRUNCATE".to_owned()
        )]
    );
    // A delegated administrator (manage_users, from projects.read at scope
    // all) does not open item roles beyond her powers. The coordinator does
    // not read the assignments on the workers: it takes every item role of
    // the module as given. So she activates zoe, who holds less than she
    // does and has no assignment, only once she holds every action the
    // item roles give at scope all (delete: manager).
    dba.batch_execute(
        "SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'projects', 'read', 'all'),
                fluent_set_permission('reader', 'projects', 'write', 'all'),
                fluent_set_permission('reader', 'projects', 'create', 'all');
         SELECT fluent_create_user('rita'), fluent_grant_role('rita', 'reader');
         SELECT fluent_set_admin_right('manage_users', 'projects', 'read');
         SELECT fluent_set_user_status('zoe', 'disabled');",
    )
    .unwrap();
    // (Through a role that only chooses users: the tester's fluent_admin
    // would make her a DBA.)
    for node in 0..3 {
        ensure_role(
            &mut unpropagated(node, &db),
            DELEGATE,
            true,
            &["fluent_authenticator"],
        );
    }
    let mut delegate = connect(0, &db, DELEGATE);
    let activate = |client: &mut Client| {
        commit_as(
            client,
            "rita",
            "SELECT fluent_set_user_status('zoe', 'active')",
        )
    };
    assert_eq!(activate(&mut delegate), Err("42501".into()));
    // Nor does she create users, or add members to teams.
    for change in [
        "SELECT fluent_create_user('newbie')",
        "SELECT fluent_add_team_member('design', 'ann')",
    ] {
        assert_eq!(
            commit_as(&mut delegate, "rita", change),
            Err("42501".into()),
            "{change}"
        );
    }
    dba.batch_execute("SELECT fluent_set_permission('reader', 'projects', 'delete', 'all')")
        .unwrap();
    assert_eq!(activate(&mut delegate), Ok(1));
}

#[test]
fn a_partitioned_assignment_table_on_citus_takes_new_partitions_checked_and_no_table_attached() {
    let (db, mut dba) = set_up("item_partitions");
    dba.batch_execute(
        "SELECT fluent_create_module('projects', '{read,write}');
         SELECT fluent_create_item_role('projects', 'editor', '{read,write}');
         SELECT fluent_create_item_role('projects', 'viewer', '{read}');
         SELECT fluent_create_role('staff'), fluent_set_permission('staff', 'projects', 'write', 'own'),
                fluent_set_permission('staff', 'projects', 'read', 'own');
         SELECT fluent_create_user('ann'), fluent_grant_role('ann', 'staff');
         CREATE TABLE projects (tenant int, id int, owner text, PRIMARY KEY (tenant, id));
         CREATE TABLE project_roles (tenant int, project_id int, user_key text, role text,
             FOREIGN KEY (tenant, project_id) REFERENCES projects (tenant, id) ON DELETE CASCADE)
             PARTITION BY LIST (role);
         CREATE TABLE project_roles_editors PARTITION OF project_roles FOR VALUES IN ('editor');
         CREATE INDEX ON project_roles (user_key);
         SELECT create_distributed_table('projects', 'tenant', shard_count => 4);
         SELECT create_distributed_table('project_roles', 'tenant', colocate_with => 'projects');
         INSERT INTO projects VALUES (1, 1, 'ann');",
    )
    .unwrap();
    dba.batch_execute(&format!(
        "SELECT fluent_protect('projects', 'projects', 'owner', row_column => 'id',
                               membership_table => 'project_roles', membership_row_column => 'project_id',
                               membership_user_column => 'user_key', membership_role_column => 'role');
         GRANT SELECT, INSERT ON projects, project_roles TO {TESTER};"
    ))
    .unwrap();
    // Citus distributes a new partition, and refuses one with triggers
    // unless told it may.
    assert!(dba
        .batch_execute(
            "CREATE TABLE project_roles_viewers PARTITION OF project_roles FOR VALUES IN ('viewer')"
        )
        .is_err());
    dba.batch_execute(
        "SET citus.enable_unsafe_triggers = on;
         CREATE TABLE project_roles_viewers PARTITION OF project_roles FOR VALUES IN ('viewer');
         RESET citus.enable_unsafe_triggers;",
    )
    .unwrap();
    // Its shards check what is written into them, and are checked.
    let mut app = connect(0, &db, TESTER);
    assert_eq!(
        commit_as(
            &mut app,
            "ann",
            "INSERT INTO project_roles VALUES (1, 1, 'nobody', 'viewer')"
        ),
        Err("42704".into())
    );
    let problems = |dba: &mut Client| -> Vec<String> {
        dba.query(
            "SELECT relation::text || ': ' || problem FROM fluent_protection_problems() ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert_eq!(problems(&mut dba), Vec::<String>::new());
    // A partition's shards have the triggers as clones, checked too.
    let shard = local_shards(&db, 1, "project_roles_viewers").remove(0);
    let mut worker = connect(1, &db, "postgres");
    let clone: String = worker
        .query_one(
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::text::regclass
                AND tgname LIKE 'fluent_item_role_conditions%'",
            &[&shard],
        )
        .unwrap()
        .get(0);
    worker
        .batch_execute(&format!("ALTER TABLE {shard} DISABLE TRIGGER {clone}"))
        .unwrap();
    assert_eq!(
        problems(&mut dba),
        ["project_roles_viewers: item role trigger disabled"]
    );
    worker
        .batch_execute(&format!("ALTER TABLE {shard} ENABLE TRIGGER {clone}"))
        .unwrap();
    // A distributed table attached: fluent cannot see that it is empty.
    dba.batch_execute(
        "CREATE TABLE project_roles_more (LIKE project_roles);
         SELECT create_distributed_table('project_roles_more', 'tenant', colocate_with => 'projects');",
    )
    .unwrap();
    assert_eq!(
        sqlstate(dba.batch_execute(
            "ALTER TABLE project_roles ATTACH PARTITION project_roles_more FOR VALUES IN ('more')"
        )),
        "0A000"
    );
}

/// A login role that reads the audit logs once it holds fluent_reader.
const AUDITOR: &str = "it_citus_auditor";

/// A table owner who is neither a superuser nor a member of fluent_admin.
const OWNER: &str = "it_citus_owner";

#[test]
fn moving_a_shard_of_an_item_table_takes_its_owner_the_right_to_make_the_triggers() {
    let (db, mut dba) = set_up("item_move");
    for node in 0..3 {
        let mut client = unpropagated(node, &db);
        ensure_role(&mut client, OWNER, true, &[]);
        client
            .batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {OWNER}"))
            .unwrap();
    }
    let (host, ports) = fluent_pgrx_tests::citus::nodes();
    dba.batch_execute(&format!(
        "SELECT fluent_create_module('projects', '{{read,write}}');
         SELECT fluent_create_item_role('projects', 'editor', '{{read,write}}');
         SET ROLE {OWNER};
         CREATE TABLE projects (tenant int, id int, owner text, PRIMARY KEY (tenant, id));
         CREATE TABLE project_roles (tenant int, project_id int, user_key text, role text,
             FOREIGN KEY (tenant, project_id) REFERENCES projects (tenant, id) ON DELETE CASCADE);
         SELECT create_distributed_table('projects', 'tenant', shard_count => 4);
         SELECT create_distributed_table('project_roles', 'tenant', colocate_with => 'projects');
         RESET ROLE;
         SET citus.local_hostname = '{host}';"
    ))
    .unwrap();
    dba.batch_execute(
        "SELECT fluent_protect('projects', 'projects', 'owner', row_column => 'id',
                               membership_table => 'project_roles', membership_row_column => 'project_id',
                               membership_user_column => 'user_key', membership_role_column => 'role')",
    )
    .unwrap();
    // Citus makes the moved placement as the table's owner, triggers
    // included, which takes EXECUTE on fluent's trigger functions.
    let shard = local_shards(&db, 2, "projects").remove(0);
    let shard_id: i64 = shard.rsplit('_').next().unwrap().parse().unwrap();
    let move_shard = |dba: &mut Client| {
        dba.batch_execute(&format!(
            "SELECT citus_move_shard_placement({shard_id}, '{host}', {}, '{host}', {},
                                               shard_transfer_mode => 'block_writes')",
            ports[2], ports[1]
        ))
    };
    let refused = move_shard(&mut dba);
    assert!(
        error_message(&refused).starts_with("permission denied for function fluent._check_item"),
        "{refused:?}"
    );
    // Granted on every node for the move, and taken back after.
    let functions =
        "fluent._check_item_assignment(), fluent._check_item_owner(), fluent._check_item_parent()";
    for node in 0..3 {
        unpropagated(node, &db)
            .batch_execute(&format!("GRANT EXECUTE ON FUNCTION {functions} TO {OWNER}"))
            .unwrap();
    }
    move_shard(&mut dba).unwrap();
    for node in 0..3 {
        unpropagated(node, &db)
            .batch_execute(&format!(
                "REVOKE EXECUTE ON FUNCTION {functions} FROM {OWNER}"
            ))
            .unwrap();
    }
    // The moved placement has its triggers.
    assert!(local_shards(&db, 1, "projects").contains(&shard));
    let problems: i64 = dba
        .query_one("SELECT count(*) FROM fluent_protection_problems()", &[])
        .unwrap()
        .get(0);
    assert_eq!(problems, 0);
}
