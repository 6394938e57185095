//! The commit gate (src/gate.rs) against commits that wait before they are
//! visible, over real connections: a catalog change whose commit waits for a
//! lock any role can hold (the truncation of the writer's `ON COMMIT DELETE
//! ROWS` table waits for a `nextval()` on its OID) stops no statement of
//! other sessions, and no statement answers with permissions older than the
//! rows it reads.

use fluent_pgrx_tests::{app_session, connect, fresh_database, sqlstate, wait_until, APP, TESTER};
use postgres::Client;

/// boss reads all 33 docs through role all_r.
fn seed(database: &str) {
    let mut db = connect(database, "postgres");
    db.batch_execute(&format!(
        "SELECT fluent_create_module('docs');
         SELECT fluent_create_role('all_r'), fluent_set_permission('all_r', 'docs', 'read', 'all');
         SELECT fluent_create_user(u) FROM unnest('{{ann,boss}}'::text[]) u;
         SELECT fluent_grant_role('boss', 'all_r');
         CREATE TABLE docs (id int PRIMARY KEY, owner text);
         INSERT INTO docs SELECT i, 'ann' FROM generate_series(1, 33) i;
         SELECT fluent_protect('docs', 'docs', 'owner');
         GRANT SELECT ON docs TO {APP};
         -- Run while its caller is planned (constant folding), not inlined.
         CREATE FUNCTION slow_one() RETURNS int LANGUAGE sql IMMUTABLE
             AS 'SELECT pg_sleep(2); SELECT 1';
         -- After the sleep, a check (a look at the catalog through a
         -- snapshot of its own), then a query planned from what it saw.
         CREATE FUNCTION count_docs_later() RETURNS bigint LANGUAGE plpgsql
             AS 'BEGIN PERFORM pg_sleep(2); PERFORM fluent_can(''docs'', ''read''); RETURN (SELECT count(*) FROM docs); END';
         GRANT EXECUTE ON FUNCTION count_docs_later() TO {APP};"
    ))
    .unwrap();
}

fn count(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap().get(0)
}

/// How many sessions hold the commit gate closed (its lock: `ShareLock` on
/// `pg_database` with this database in the tag).
fn gate_closed(dba: &mut Client) -> i64 {
    count(
        dba,
        "SELECT count(*) FROM pg_locks WHERE relation = 'pg_database'::regclass
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND mode = 'ShareLock' AND granted",
    )
}

/// A session as `postgres` with an `ON COMMIT DELETE ROWS` table, and a
/// session of a role with no privilege on it holding a lock on its OID
/// (`nextval()` locks before it checks anything; the savepoint rolls the
/// error back, not the lock). Returns (writer, holder, the table's OID).
fn writer_held_at_commit(db: &str) -> (Client, Client, u32) {
    let mut writer = connect(db, "postgres");
    writer
        .batch_execute("CREATE TEMP TABLE t (i int) ON COMMIT DELETE ROWS")
        .unwrap();
    let table: u32 = writer
        .query_one("SELECT 't'::regclass::oid", &[])
        .unwrap()
        .get(0);
    let mut holder = connect(db, TESTER);
    holder
        .batch_execute(&format!(
            "BEGIN; SAVEPOINT a; SELECT nextval({table}::oid::regclass)"
        ))
        .unwrap_err();
    holder.batch_execute("ROLLBACK TO a").unwrap();
    (writer, holder, table)
}

/// Commits `change` in `writer`'s session after reading its temporary
/// table (so its commit truncates it), in a thread; returns once the commit
/// waits for the holder's lock.
fn commit_behind_the_lock(
    dba: &mut Client,
    mut writer: Client,
    table: u32,
    change: &'static str,
) -> std::thread::JoinHandle<()> {
    let committing = std::thread::spawn(move || {
        writer
            .batch_execute(&format!("BEGIN; SELECT count(*) FROM t; {change}; COMMIT"))
            .unwrap();
    });
    wait_until(
        dba,
        &format!("SELECT count(*) FROM pg_locks WHERE relation = {table} AND NOT granted"),
        "the commit never waited",
    );
    committing
}

/// A catalog change whose commit waits before it is visible stops no
/// statement: each session waits for it a moment once, then answers as
/// before it, until it is visible (every statement of every session waited
/// until the lock's holder ended).
#[test]
fn a_commit_waiting_before_it_is_visible_stops_no_statement() {
    let db = fresh_database("gate_stalled");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let (writer, mut holder, table) = writer_held_at_commit(&db);
    let mut reader = app_session(&db, "boss");
    reader
        .batch_execute("SET statement_timeout = '20s'")
        .unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let committing = commit_behind_the_lock(
        &mut dba,
        writer,
        table,
        "SELECT fluent_revoke_role('boss', 'all_r')",
    );
    assert_eq!(gate_closed(&mut dba), 1, "the revoke closed the gate");
    for round in 0..3 {
        assert_eq!(
            count(&mut reader, "SELECT count(*) FROM docs"),
            33,
            "statement {round} while the revoke waits to commit"
        );
    }
    assert!(reader
        .query_one("SELECT fluent_can('docs', 'read')", &[])
        .unwrap()
        .get::<_, bool>(0));
    let mut newcomer = app_session(&db, "boss");
    newcomer
        .batch_execute("SET statement_timeout = '20s'")
        .unwrap();
    assert_eq!(
        count(&mut newcomer, "SELECT count(*) FROM docs"),
        33,
        "a session that started while the revoke waits"
    );
    holder.batch_execute("COMMIT").unwrap();
    committing.join().unwrap();
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "the revoke, visible"
    );
    assert_eq!(count(&mut newcomer, "SELECT count(*) FROM docs"), 0);
}

/// A transaction that called the administration and wrote nothing (it has
/// no transaction id) does not close the gate: nothing of it becomes
/// visible. (Waiting for it, every statement waited until the lock's holder
/// ended.)
#[test]
fn a_commit_that_wrote_nothing_closes_no_gate() {
    let db = fresh_database("gate_no_xid");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let (writer, mut holder, table) = writer_held_at_commit(&db);
    let mut reader = app_session(&db, "boss");
    reader
        .batch_execute("SET statement_timeout = '20s'")
        .unwrap();
    // The catalog's statement triggers fire on no row.
    let committing = commit_behind_the_lock(
        &mut dba,
        writer,
        table,
        "UPDATE fluent.roles SET name = name WHERE false",
    );
    assert_eq!(gate_closed(&mut dba), 0, "the empty commit closed the gate");
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        33,
        "a statement while the empty commit waits"
    );
    holder.batch_execute("COMMIT").unwrap();
    committing.join().unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
}

/// Runs `sql` (one text value) in a session acting for boss, planned while
/// a revoke of boss's role waits at its commit and started after the revoke
/// became visible (`sql` sleeps while it is planned or runs, and the lock's
/// holder lets the revoke commit meanwhile), after `warm` (statements run
/// before the revoke). Returns its SQLSTATE and its value, and the session.
fn run_across_a_stalled_revoke(
    name: &str,
    warm: &[&str],
    sql: &'static str,
) -> (String, String, Client) {
    let db = fresh_database(name);
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let (writer, mut holder, table) = writer_held_at_commit(&db);
    let mut reader = app_session(&db, "boss");
    reader
        .batch_execute("SET statement_timeout = '30s'")
        .unwrap();
    let reader_pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    for statement in warm {
        reader.batch_execute(statement).unwrap();
    }
    let committing = commit_behind_the_lock(
        &mut dba,
        writer,
        table,
        "SELECT fluent_revoke_role('boss', 'all_r')",
    );
    let running = std::thread::spawn(move || {
        let result = reader.query_one(sql, &[]);
        let value = match &result {
            Ok(row) => row.get::<_, String>(0),
            Err(_) => String::new(),
        };
        (sqlstate(result), value, reader)
    });
    wait_until(
        &mut dba,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {reader_pid} AND wait_event = 'PgSleep'"
        ),
        "the statement never slept while the revoke waited",
    );
    holder.batch_execute("COMMIT").unwrap();
    committing.join().unwrap();
    running.join().unwrap()
}

/// A statement planned while a stalled change was not visible, which
/// starts running after it became visible, would read rows through a
/// snapshot that shows the change with answers folded before it: it is
/// refused with 40001, and run again it sees the change.
#[test]
fn a_plan_folded_before_a_stalled_change_became_visible_is_refused() {
    let sql = "SELECT count(*)::text FROM docs WHERE slow_one() = 1";
    let (state, value, mut reader) =
        run_across_a_stalled_revoke("gate_stalled_plan", &["SELECT count(*) FROM docs"], sql);
    assert_eq!(
        (state.as_str(), value.as_str()),
        ("40001", ""),
        "the statement planned before the revoke, run after it"
    );
    assert_eq!(
        reader.query_one(sql, &[]).unwrap().get::<_, String>(0),
        "0",
        "run again"
    );
}

/// A statement that started while a change stalled, and plans a query from
/// a cache that took the change in once it was visible (a function's query,
/// after a check through a snapshot of its own), runs it with the change:
/// neither refused (as it was before the cache's look was asked whether it
/// saw the change) nor answered as before it.
#[test]
fn a_plan_folded_after_a_stalled_change_was_taken_in_runs() {
    let (state, value, _) = run_across_a_stalled_revoke(
        "gate_stalled_inner",
        &["SELECT count(*) FROM docs"],
        "SELECT count_docs_later()::text",
    );
    assert_eq!(
        (state.as_str(), value.as_str()),
        ("ok", "0"),
        "the function's query, planned after the revoke was visible"
    );
}

/// A statement that folds nothing (`fluent_can` answers as it runs),
/// planned while a change stalled and started after it became visible,
/// checks with the change: its snapshot shows it.
#[test]
fn a_check_that_starts_after_a_stalled_change_became_visible_sees_it() {
    // The cache looked through a snapshot of its own first (a session's
    // first looks are taken again).
    let warm = ["SELECT fluent_can('docs', 'read')"; 3];
    let (state, value, _) = run_across_a_stalled_revoke(
        "gate_stalled_check",
        &warm,
        "SELECT fluent_can('docs', 'read')::text WHERE slow_one() = 1",
    );
    assert_eq!(
        (state.as_str(), value.as_str()),
        ("ok", "false"),
        "a check planned before the revoke was visible, run after"
    );
}
