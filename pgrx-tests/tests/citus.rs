//! fluent on a Citus cluster (a coordinator and two workers, started by
//! `.ci/run`): the catalog written on the coordinator is on every worker
//! when the change commits, and never when it rolls back; the workers'
//! sessions see it at their next statement; administration on a worker is
//! refused; nobody but fluent writes the bus.

use fluent_pgrx_tests::citus::{connect, database};
use fluent_pgrx_tests::{sqlstate, TESTER};
use postgres::Client;

/// What node `node` answers for `user` on notes.read, as a DBA would ask.
fn scope(client: &mut Client, user: &str) -> String {
    client
        .query_one("SELECT fluent_scope($1, 'notes', 'read')::text", &[&user])
        .unwrap()
        .get(0)
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
