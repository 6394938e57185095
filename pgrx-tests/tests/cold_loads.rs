//! A first check reads the user by index probes (src/probes.rs) in a
//! transaction that has written nothing, and by the kept-plan query
//! (`fluent._load_user`) in one that has: both must load the same
//! holdings. Over a catalog with every kind of holding (roles, expired and
//! future grants, overrides in force and expired, every status, a user of
//! another workspace, an unknown key), every answer of a fresh backend
//! reading through probes equals that of a fresh backend reading through
//! the query.
//!
//! The probes keep their index scans open from the first load of a
//! transaction until it ends: each later load reads through the snapshot of
//! its own statement, and no error, rolled-back savepoint or load that
//! failed half-way leaves a scan, reference or lock behind (the server warns
//! at commit of any it finds: the tests collect warnings).

use fluent_pgrx_tests::{connect, connect_collecting_notices, fresh_database, TESTER};
use postgres::Client;

const USERS: [&str; 9] = [
    "ana", "ben", "cleo", "dev", "eli", "fay", "gus", "hal", "nobody",
];

fn seed(database: &str) {
    connect(database, "postgres")
        .batch_execute(
            "SELECT fluent_create_module('notes');
             SELECT fluent_create_module('tasks', ARRAY['read', 'write', 'approve']);
             SELECT fluent_create_module('files', parent => 'notes');
             SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'own');
             SELECT fluent_create_role('writer'), fluent_set_permission('writer', 'notes', 'write', 'all'),
                    fluent_set_permission('writer', 'tasks', 'approve', 'team');
             SELECT fluent_create_user(u) FROM unnest('{ana,ben,cleo,dev,eli,fay,gus,hal}'::text[]) u;
             SELECT fluent_grant_role(u, 'reader') FROM unnest('{ana,ben,cleo,dev,eli,fay}'::text[]) u;
             SELECT fluent_grant_role('ben', 'writer');
             -- A grant that has expired and one that has not.
             SELECT fluent_grant_role('cleo', 'writer', until => now() + interval '1 day');
             SELECT fluent_grant_role('dev', 'writer', until => now() + interval '1 day');
             UPDATE fluent.grants SET valid_until = now() - interval '1 day'
              WHERE user_id = (SELECT user_id FROM fluent.users WHERE user_key = 'dev') AND valid_until IS NOT NULL;
             -- Overrides: wider, narrower, expired.
             SELECT fluent_set_override('eli', 'notes', 'read', 'all');
             SELECT fluent_set_override('eli', 'tasks', 'read', 'own');
             SELECT fluent_set_override('fay', 'notes', 'read', 'none');
             SELECT fluent_set_override('ana', 'tasks', 'write', 'all', until => now() + interval '1 hour');
             UPDATE fluent.overrides SET valid_until = now() - interval '1 hour'
              WHERE user_id = (SELECT user_id FROM fluent.users WHERE user_key = 'ana');
             SELECT fluent_set_user_status('fay', 'disabled');
             -- gus holds nothing here, hal only in another workspace.
             SELECT fluent_create_workspace('other');
             SELECT fluent_set_workspace('other');
             SELECT fluent_create_module('notes');
             SELECT fluent_create_role('boss'), fluent_set_permission('boss', 'notes', 'read', 'all');
             SELECT fluent_grant_role('hal', 'boss');
             SELECT fluent_reset_user();",
        )
        .unwrap();
}

/// Every answer for every user, from a fresh backend.
fn answers(client: &mut Client) -> Vec<String> {
    let mut all = Vec::new();
    for user in USERS {
        for (module, action) in [
            ("notes", "read"),
            ("notes", "write"),
            ("files", "read"),
            ("tasks", "read"),
            ("tasks", "write"),
            ("tasks", "approve"),
        ] {
            let scope: String = client
                .query_one(
                    "SELECT fluent_scope($1, $2, $3)",
                    &[&user, &module, &action],
                )
                .unwrap()
                .get(0);
            all.push(format!("{user} {module}.{action}: {scope}"));
        }
        let visible: Vec<String> = client
            .query_one("SELECT ARRAY(SELECT fluent_visible_modules($1))", &[&user])
            .unwrap()
            .get(0);
        all.push(format!("{user} sees {visible:?}"));
    }
    all
}

fn user_loads(client: &mut Client) -> i64 {
    client
        .query_one("SELECT user_loads FROM fluent.cache_statistics()", &[])
        .unwrap()
        .get(0)
}

#[test]
fn probes_and_the_load_query_read_the_same_holdings() {
    let db = fresh_database("cold_loads");
    seed(&db);
    // Probes: a read-only transaction.
    let mut probing = connect(&db, TESTER);
    probing.batch_execute("BEGIN").unwrap();
    let probed = answers(&mut probing);
    assert_eq!(
        user_loads(&mut probing),
        USERS.len() as i64,
        "one load per user"
    );
    probing.batch_execute("COMMIT").unwrap();
    // The kept-plan query: a transaction that has a transaction id.
    let mut querying = connect(&db, TESTER);
    querying
        .batch_execute("BEGIN; SELECT pg_current_xact_id()")
        .unwrap();
    let queried = answers(&mut querying);
    querying.batch_execute("COMMIT").unwrap();
    assert_eq!(probed, queried);
    // The catalog is what the answers say (a few spot checks, so that both
    // paths being wrong the same way fails too).
    for expected in [
        "ben notes.write: all",
        "cleo notes.write: all",
        "dev notes.write: none",
        "eli notes.read: all",
        "eli tasks.read: own",
        "ana tasks.write: none",
        "fay notes.read: none",
        "gus notes.read: none",
        "hal notes.read: none",
        "nobody notes.read: none",
    ] {
        assert!(
            probed.iter().any(|a| a == expected),
            "{expected}: {probed:#?}"
        );
    }
}

#[test]
fn probes_follow_the_indexes_they_read() {
    let db = fresh_database("cold_loads_indexes");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut checker = connect(&db, TESTER);
    let scope = |c: &mut Client, user: &str| -> String {
        c.query_one("SELECT fluent_scope($1, 'notes', 'read')", &[&user])
            .unwrap()
            .get(0)
    };
    assert_eq!(scope(&mut checker, "ana"), "own");
    // REINDEX CONCURRENTLY gives each index a new OID.
    // (Each outside a transaction block.)
    for reindex in [
        "REINDEX INDEX CONCURRENTLY fluent.grants_workspace_user_idx",
        "REINDEX TABLE CONCURRENTLY fluent.users",
    ] {
        dba.batch_execute(reindex).unwrap();
    }
    assert_eq!(
        scope(&mut checker, "ben"),
        "own",
        "after REINDEX CONCURRENTLY"
    );
    // An index by that name that does not hold every row (a partial one) is
    // not read: eli's override of notes.read (all) is not in it.
    dba.batch_execute(
        "DROP INDEX fluent.overrides_workspace_user_idx;
         CREATE INDEX overrides_workspace_user_idx ON fluent.overrides (workspace_id, user_id)
          WHERE scope <> 'all';",
    )
    .unwrap();
    let mut fresh = connect(&db, TESTER);
    assert_eq!(scope(&mut fresh, "eli"), "all", "with a partial index");
    assert_eq!(
        scope(&mut checker, "eli"),
        "all",
        "with a partial index, an older backend"
    );
}

/// How many table tuples the probes' indexes have led to
/// (`pg_stat_user_indexes.idx_tup_fetch`), once every backend but the
/// caller's has reported its counts.
fn tuples_fetched_through(dba: &mut Client, indexes: &[&str]) -> (i64, i64) {
    let reported = "SELECT count(*) = 0 FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()";
    for _ in 0..200 {
        if dba.query_one(reported, &[]).unwrap().get::<_, bool>(0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    dba.batch_execute("SELECT pg_stat_clear_snapshot()")
        .unwrap();
    let row = dba
        .query_one(
            "SELECT sum(idx_scan)::bigint, sum(idx_tup_fetch)::bigint FROM pg_stat_user_indexes
              WHERE schemaname = 'fluent' AND indexrelname = ANY ($1)",
            &[&indexes],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// Vacuums `tables` until every page of each is marked all-visible. One
/// VACUUM may not mark them: a backend of another suite that is still
/// connecting (no database yet) holds back every database's horizon, and a
/// page another backend has pinned is skipped.
fn vacuum_until_all_visible(dba: &mut Client, tables: &[&str]) {
    let vacuum = format!("VACUUM {}", tables.join(", "));
    let started = std::time::Instant::now();
    loop {
        dba.batch_execute(&vacuum).unwrap();
        let pending: i64 = dba
            .query_one(
                "SELECT count(*) FROM pg_class
                  WHERE oid = ANY ($1::text[]::regclass[]) AND relallvisible < relpages",
                &[&tables],
            )
            .unwrap()
            .get(0);
        if pending == 0 {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{pending} of {tables:?} never all-visible"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_all_visible_catalog_is_read_from_the_indexes_alone() {
    let db = fresh_database("cold_loads_index_only");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut querying = connect(&db, TESTER);
    querying
        .batch_execute("BEGIN; SELECT pg_current_xact_id()")
        .unwrap();
    let queried = answers(&mut querying);
    querying.batch_execute("COMMIT").unwrap();
    drop(querying);
    // Every page all-visible, and the counters from zero.
    vacuum_until_all_visible(
        &mut dba,
        &["fluent.users", "fluent.grants", "fluent.overrides"],
    );
    dba.batch_execute(
        "SELECT pg_stat_reset_single_table_counters(i)
           FROM unnest(ARRAY['fluent.users_user_key_key', 'fluent.grants_workspace_user_idx',
                             'fluent.overrides_workspace_user_idx']::regclass[]) i;",
    )
    .unwrap();
    let indexes = [
        "users_user_key_key",
        "grants_workspace_user_idx",
        "overrides_workspace_user_idx",
    ];
    let mut probing = connect(&db, TESTER);
    probing.batch_execute("BEGIN").unwrap();
    let probed = answers(&mut probing);
    assert_eq!(user_loads(&mut probing), USERS.len() as i64);
    probing.batch_execute("COMMIT").unwrap();
    drop(probing);
    assert_eq!(probed, queried, "read from the indexes alone");
    let (scans, fetched) = tuples_fetched_through(&mut dba, &indexes);
    assert!(scans >= 3 * USERS.len() as i64 - 2, "{scans} index scans");
    assert_eq!(fetched, 0, "table tuples read through the indexes");
    // A change clears its pages' bits: a load through a snapshot older than
    // the change reads those pages and sees the rows as they were; a later
    // one sees the change.
    let mut repeatable = connect(&db, TESTER);
    repeatable
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();
    dba.batch_execute(
        "SELECT fluent_revoke_role('ana', 'reader');
         SELECT fluent_grant_role('gus', 'writer');
         SELECT fluent_set_user_status('ben', 'disabled');
         SELECT fluent_set_override('cleo', 'notes', 'read', 'none');",
    )
    .unwrap();
    let before = [
        ("ana", "notes", "read", "own"),
        ("gus", "notes", "write", "none"),
        ("ben", "notes", "write", "all"),
        ("cleo", "notes", "read", "own"),
    ];
    for (user, module, action, scope) in before {
        assert_eq!(
            scope_of(&mut repeatable, user, module, action),
            scope,
            "{user} {module}.{action} before the change"
        );
    }
    repeatable.batch_execute("COMMIT").unwrap();
    let mut fresh = connect(&db, TESTER);
    for ((user, module, action, _), scope) in
        before.into_iter().zip(["none", "all", "none", "none"])
    {
        assert_eq!(
            scope_of(&mut fresh, user, module, action),
            scope,
            "{user} {module}.{action} after the change"
        );
    }
}

#[test]
fn an_index_built_while_older_snapshots_see_other_values_is_not_read_by_them() {
    let db = fresh_database("cold_loads_check_xmin");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    // Without the scope in the index, changing it is a HOT update.
    dba.batch_execute(
        "DROP INDEX fluent.overrides_workspace_user_idx;
         CREATE INDEX overrides_workspace_user_idx ON fluent.overrides (workspace_id, user_id)",
    )
    .unwrap();
    let mut older = connect(&db, TESTER);
    older
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();
    dba.batch_execute("SELECT fluent_set_override('eli', 'notes', 'read', 'none')")
        .unwrap();
    // Built while `older` may still read the version before that update,
    // the index holds the newest scope (`indcheckxmin`).
    dba.batch_execute(
        "DROP INDEX fluent.overrides_workspace_user_idx;
         CREATE INDEX overrides_workspace_user_idx ON fluent.overrides (workspace_id, user_id)
             INCLUDE (action_id, scope, set_by, valid_until)",
    )
    .unwrap();
    let check_xmin: bool = dba
        .query_one(
            "SELECT indcheckxmin FROM pg_index WHERE indexrelid = 'fluent.overrides_workspace_user_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(check_xmin, "the index is marked for older snapshots");
    assert_eq!(
        scope_of(&mut older, "eli", "notes", "read"),
        "all",
        "the snapshot from before the change"
    );
    older.batch_execute("COMMIT").unwrap();
    assert_eq!(
        scope_of(&mut connect(&db, TESTER), "eli", "notes", "read"),
        "none"
    );
}

#[test]
fn dropping_the_visibility_map_after_a_check_is_safe() {
    let db = fresh_database("cold_loads_vm");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute("CREATE EXTENSION pg_visibility").unwrap();
    dba.batch_execute("VACUUM fluent.users, fluent.grants, fluent.overrides")
        .unwrap();
    // A check, then the maps dropped in the same transaction: no page of
    // them may still be pinned.
    dba.batch_execute(
        "BEGIN;
         SELECT fluent_scope('ana', 'notes', 'read');
         SELECT pg_truncate_visibility_map(t)
           FROM unnest(ARRAY['fluent.users', 'fluent.grants', 'fluent.overrides']::regclass[]) t;
         SELECT fluent_scope('ben', 'notes', 'read');
         COMMIT",
    )
    .unwrap();
    assert_eq!(scope_of(&mut dba, "cleo", "notes", "read"), "own");
}

#[test]
fn an_index_in_another_collation_is_not_read() {
    let db = fresh_database("cold_loads_collation");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let icu: bool = dba
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_collation WHERE collname = 'und-x-icu')",
            &[],
        )
        .unwrap()
        .get(0);
    if !icu {
        eprintln!("skipped: this server has no ICU collations");
        return;
    }
    // Ordered case-insensitively first, the keys are not where a search in
    // the column's collation looks for them.
    dba.batch_execute(
        "SELECT fluent_create_user(k), fluent_grant_role(k, 'writer')
           FROM unnest('{Zed,Bob,Dave,Abe,Yul,Cal}'::text[]) k;
         ALTER TABLE fluent.users DROP CONSTRAINT users_user_key_key;
         CREATE UNIQUE INDEX users_user_key_key ON fluent.users (user_key COLLATE \"und-x-icu\")
             INCLUDE (user_id, status);",
    )
    .unwrap();
    let mut checker = connect(&db, TESTER);
    for key in ["Zed", "Bob", "Dave", "Abe", "Yul", "Cal", "ana"] {
        let expected = if key == "ana" { "none" } else { "all" };
        assert_eq!(
            scope_of(&mut checker, key, "notes", "write"),
            expected,
            "{key}"
        );
    }
}

#[test]
fn a_load_stopped_half_way_keeps_the_transactions_locks_and_no_pin() {
    let db = fresh_database("cold_loads_stopped");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    // Many index entries for one user (not valid grants: written with the
    // triggers off), so that reading them takes a while.
    dba.batch_execute(
        "CREATE EXTENSION pg_buffercache;
         SET session_replication_role = replica;
         INSERT INTO fluent.grants (workspace_id, user_id, role_id, valid_until)
         SELECT 1, u.user_id, g, now() - interval '1 day'
           FROM fluent.users u, generate_series(1000, 400000) g WHERE u.user_key = 'gus';
         RESET session_replication_role;",
    )
    .unwrap();
    dba.batch_execute("VACUUM fluent.grants").unwrap();
    let (mut client, notices) = connect_collecting_notices(&db, "postgres");
    // A check that loads only the user (unknown: no grants read), then one
    // stopped while it opens the grants' scan, then one stopped while it
    // reads them: each in a savepoint rolled back.
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ;
             SELECT fluent_scope('nobody', 'notes', 'read');
             SAVEPOINT a;",
        )
        .unwrap();
    let mut locker = connect(&db, "postgres");
    client
        .batch_execute("SET LOCAL lock_timeout = '200ms'")
        .unwrap();
    blocked_at_grants(&mut client, &mut locker, "ana");
    client
        .batch_execute("ROLLBACK TO a; SELECT fluent_scope('ana', 'notes', 'read'); SAVEPOINT b")
        .unwrap();
    let error = client
        .batch_execute(
            "SET LOCAL statement_timeout = '10ms'; SELECT fluent_scope('gus', 'notes', 'read')",
        )
        .unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("57014"), "{error}");
    client
        .batch_execute("ROLLBACK TO b; DECLARE c CURSOR FOR SELECT 1")
        .unwrap();
    // The locks of the loads that finished are the transaction's until it
    // ends, as a query's would be.
    let locked: Vec<String> = client
        .query(
            "SELECT DISTINCT relation::regclass::text FROM pg_locks
              WHERE pid = pg_backend_pid() AND relation IN ('fluent.users'::regclass,
                    'fluent.grants'::regclass, 'fluent.overrides'::regclass)
              ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        locked,
        ["fluent.grants", "fluent.overrides", "fluent.users"]
    );
    // And no page stays pinned: another session's VACUUM waits for none.
    let pinned: i64 = client
        .query_one(
            "SELECT coalesce(sum(pinning_backends), 0) FROM pg_buffercache
              WHERE relfilenode IN (pg_relation_filenode('fluent.grants'),
                                    pg_relation_filenode('fluent.grants_workspace_user_idx'))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(pinned, 0, "pages of grants pinned");
    assert_eq!(scope_of(&mut client, "gus", "notes", "read"), "none");
    client.batch_execute("COMMIT").unwrap();
    assert!(
        notices.lock().unwrap().is_empty(),
        "{:?}",
        notices.lock().unwrap()
    );
}

/// A first check of `user` that opens the scan of users, then waits for the
/// lock on grants, which `locker` holds meanwhile, until it gives up
/// (`client` has a `lock_timeout`).
fn blocked_at_grants(client: &mut Client, locker: &mut Client, user: &str) {
    locker
        .batch_execute("BEGIN; LOCK TABLE fluent.grants IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let error = client
        .batch_execute(&format!("SELECT fluent_scope('{user}', 'notes', 'read')"))
        .unwrap_err();
    locker.batch_execute("COMMIT").unwrap();
    assert_eq!(error.code().map(|c| c.code()), Some("55P03"), "{error}");
}

fn scope_of(client: &mut Client, user: &str, module: &str, action: &str) -> String {
    client
        .query_one(
            "SELECT fluent_scope($1, $2, $3)",
            &[&user, &module, &action],
        )
        .unwrap()
        .get(0)
}

#[test]
fn kept_scans_read_through_each_statements_snapshot() {
    let db = fresh_database("cold_loads_snapshots");
    seed(&db);
    let mut admin = connect(&db, "postgres");
    let (mut checker, notices) = connect_collecting_notices(&db, TESTER);
    // READ COMMITTED: a later statement of the transaction sees what
    // committed before it began, through the scans the first one opened.
    checker.batch_execute("BEGIN").unwrap();
    assert_eq!(scope_of(&mut checker, "ana", "notes", "write"), "none");
    admin
        .batch_execute("SELECT fluent_grant_role('gus', 'writer')")
        .unwrap();
    assert_eq!(scope_of(&mut checker, "gus", "notes", "write"), "all");
    checker.batch_execute("COMMIT").unwrap();
    // REPEATABLE READ: every statement reads through the transaction's
    // snapshot.
    let (mut repeatable, repeatable_notices) = connect_collecting_notices(&db, TESTER);
    repeatable
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    assert_eq!(scope_of(&mut repeatable, "ana", "notes", "write"), "none");
    admin
        .batch_execute("SELECT fluent_create_user('ivy'), fluent_grant_role('ivy', 'writer')")
        .unwrap();
    assert_eq!(
        scope_of(&mut repeatable, "ivy", "notes", "write"),
        "none",
        "a user created after the transaction's snapshot"
    );
    repeatable.batch_execute("COMMIT").unwrap();
    assert_eq!(scope_of(&mut repeatable, "ivy", "notes", "write"), "all");
    for notices in [notices, repeatable_notices] {
        assert!(
            notices.lock().unwrap().is_empty(),
            "{:?}",
            notices.lock().unwrap()
        );
    }
}

#[test]
fn errors_and_savepoints_leave_no_scan_behind() {
    let db = fresh_database("cold_loads_errors");
    seed(&db);
    let expected = answers(&mut connect(&db, TESTER));
    let (mut client, notices) = connect_collecting_notices(&db, TESTER);
    // A statement that loads several users, then fails.
    let failing = |users: &str| {
        format!(
            "SELECT fluent_scope(u, CASE WHEN u = 'dev' OR u = 'hal' THEN 'nothing' ELSE 'notes' END, 'read')
               FROM unnest('{{{users}}}'::text[]) u"
        )
    };
    client
        .batch_execute(&failing("ana,ben,cleo,dev"))
        .unwrap_err();
    // In a transaction: scans opened in a savepoint rolled back, another in
    // which a statement fails after loads, then more loads and a commit.
    client
        .batch_execute(
            "BEGIN;
             SAVEPOINT a; SELECT fluent_scope('eli', 'notes', 'read'); ROLLBACK TO a;
             SAVEPOINT b; SELECT fluent_scope('fay', 'notes', 'read'); RELEASE b;
             SAVEPOINT c;",
        )
        .unwrap();
    client.batch_execute(&failing("gus,hal")).unwrap_err();
    client.batch_execute("ROLLBACK TO c").unwrap();
    let answered = answers(&mut client);
    client.batch_execute("COMMIT").unwrap();
    assert_eq!(answered, expected);
    assert!(
        notices.lock().unwrap().is_empty(),
        "{:?}",
        notices.lock().unwrap()
    );
}

#[test]
fn a_load_that_fails_half_way_leaves_nothing_behind() {
    let db = fresh_database("cold_loads_half_way");
    seed(&db);
    let expected = answers(&mut connect(&db, TESTER));
    let (mut client, notices) = connect_collecting_notices(&db, TESTER);
    // The workspace and the change log are read; the users are not.
    client
        .batch_execute("SELECT fluent_visible_modules('nobody')")
        .unwrap();
    let mut locker = connect(&db, "postgres");
    client.batch_execute("SET lock_timeout = '200ms'").unwrap();
    // In a savepoint rolled back: the next load of the transaction opens
    // the scans again.
    client.batch_execute("BEGIN; SAVEPOINT a").unwrap();
    blocked_at_grants(&mut client, &mut locker, "ana");
    client.batch_execute("ROLLBACK TO a").unwrap();
    let answered = answers(&mut client);
    client.batch_execute("COMMIT").unwrap();
    assert_eq!(answered, expected);
    // A transaction that commits right after.
    let (mut client, later_notices) = connect_collecting_notices(&db, TESTER);
    client
        .batch_execute("SET lock_timeout = '200ms'; SELECT fluent_visible_modules('nobody')")
        .unwrap();
    client.batch_execute("BEGIN; SAVEPOINT a").unwrap();
    blocked_at_grants(&mut client, &mut locker, "ana");
    client.batch_execute("ROLLBACK TO a; COMMIT").unwrap();
    // Out of any transaction block.
    blocked_at_grants(&mut client, &mut locker, "ben");
    assert_eq!(answers(&mut client), expected);
    // DDL on those tables later in the transaction (by their owner) is not
    // refused for what the failed load left open.
    let (mut dba, dba_notices) = connect_collecting_notices(&db, "postgres");
    dba.batch_execute("SET lock_timeout = '200ms'; SELECT fluent_visible_modules('nobody')")
        .unwrap();
    dba.batch_execute("BEGIN; SAVEPOINT a").unwrap();
    blocked_at_grants(&mut dba, &mut locker, "cleo");
    dba.batch_execute("ROLLBACK TO a").unwrap();
    dba.batch_execute("ALTER TABLE fluent.users SET (fillfactor = 90)")
        .unwrap_or_else(|e| panic!("DDL after a failed load: {e}"));
    dba.batch_execute("ROLLBACK").unwrap();
    for notices in [notices, later_notices, dba_notices] {
        assert!(
            notices.lock().unwrap().is_empty(),
            "{:?}",
            notices.lock().unwrap()
        );
    }
}
