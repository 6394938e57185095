//! The commit gate (src/gate.rs), over real connections, with a committing
//! backend held at a chosen point of its commit by gdb: before its commit is
//! visible (as a commit waits for a synchronous standby), and between its
//! commit becoming visible and its invalidation messages being sent (as a
//! backend descheduled there under load, or whose client does not read a
//! notice sent there). A commit that waits before it is visible stops no
//! statement of other sessions; one that is visible is taken in without
//! waiting for its messages; and no statement answers with permissions
//! older than the rows it reads.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// A session of the application acting for boss, whose statements fail
/// after 30 s rather than wait for good.
fn boss_session(db: &str) -> Client {
    let mut session = app_session(db, "boss");
    session
        .batch_execute("SET statement_timeout = '30s'")
        .unwrap();
    session
}

fn count(client: &mut Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap().get(0)
}

/// How many sessions hold the commit gate closed (its lock: `ShareLock` on
/// `pg_database` with this database in the tag; each writer holds one more
/// of its own, which `pg_locks` shows alike).
fn gate_closed(dba: &mut Client) -> i64 {
    count(
        dba,
        "SELECT count(DISTINCT pid) FROM pg_locks WHERE relation = 'pg_database'::regclass
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND mode = 'ShareLock' AND granted",
    )
}

/// The state letter of process `pid` (`t`: stopped by a tracer).
fn process_state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.chars().next().unwrap()
}

/// A backend held by gdb at a breakpoint, let go when dropped.
struct Held {
    gdb: Child,
    pid: i32,
}

impl Held {
    /// Attaches gdb to backend `pid` with a breakpoint at PostgreSQL
    /// function `function`, and lets it run on until it gets there.
    fn at(pid: i32, function: &str) -> Held {
        let mut gdb = Command::new("gdb")
            .args(["-q", "-nx", "-p", &pid.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gdb is installed (.ci/setup)");
        let commands = format!("set pagination off\nset confirm off\nbreak {function}\ncontinue\n");
        gdb.stdin
            .as_mut()
            .unwrap()
            .write_all(commands.as_bytes())
            .unwrap();
        // Attached (stopped), then running again.
        let started = std::time::Instant::now();
        while process_state(pid) != 't' {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "gdb never attached"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        while process_state(pid) == 't' {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "gdb never continued"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Held { gdb, pid }
    }

    /// Waits until the backend stops at the breakpoint.
    fn reached(&self) {
        let started = std::time::Instant::now();
        while process_state(self.pid) != 't' {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the backend never reached the breakpoint"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets the backend go on.
    fn release(mut self) {
        self.detach();
    }

    fn detach(&mut self) {
        if let Some(mut stdin) = self.gdb.stdin.take() {
            let _ = stdin.write_all(b"detach\nquit\n");
        }
        let _ = self.gdb.wait();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Starts committing `change` in a session as `postgres`, held by gdb at
/// `function`. Returns the hold and the committing thread.
fn commit_held_at(
    db: &str,
    change: &'static str,
    function: &str,
) -> (Held, std::thread::JoinHandle<()>) {
    let mut writer = connect(db, "postgres");
    writer
        .batch_execute("CREATE TEMP TABLE scratch (i int); BEGIN")
        .unwrap();
    writer.batch_execute(change).unwrap();
    let pid: i32 = writer
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let held = Held::at(pid, function);
    let committing = std::thread::spawn(move || writer.batch_execute("COMMIT").unwrap());
    held.reached();
    (held, committing)
}

const REVOKE: &str = "SELECT fluent_revoke_role('boss', 'all_r')";

/// Held where a commit waits for a synchronous standby: after it closed the
/// gate, before it is visible (`PreCommit_Notify` runs just before the
/// commit record).
const BEFORE_VISIBLE: &str = "PreCommit_Notify";
/// Held after its commit became visible, before its messages are sent.
const VISIBLE_UNSENT: &str = "AtEOXact_Inval";

/// A catalog change whose commit waits before it is visible stops no
/// statement: each session waits for it a moment once, then answers as
/// before it, until it is visible (every statement of every session waited
/// until the commit went on).
#[test]
fn a_commit_waiting_before_it_is_visible_stops_no_statement() {
    let db = fresh_database("gate_stalled");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut reader = boss_session(&db);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let (held, committing) = commit_held_at(&db, REVOKE, BEFORE_VISIBLE);
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
    let mut newcomer = boss_session(&db);
    assert_eq!(
        count(&mut newcomer, "SELECT count(*) FROM docs"),
        33,
        "a session that started while the revoke waits"
    );
    held.release();
    committing.join().unwrap();
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "the revoke, visible"
    );
    assert_eq!(count(&mut newcomer, "SELECT count(*) FROM docs"), 0);
}

/// A commit that is visible and has not sent its messages yet is taken in
/// without them: a statement starting then sees the change in its answers
/// as in its rows, and does not wait for the messages, which a client can
/// hold up as long as it does not read (a notice sent while they are sent,
/// with interrupts held). (PostgreSQL stops listing the committing
/// transaction among the gate's holders as it becomes visible: such a
/// commit was not waited for, and the statement answered as before it;
/// then it was waited for, as long as it took.)
#[test]
fn a_visible_commit_is_taken_in_before_its_messages_arrive() {
    let db = fresh_database("gate_visible");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut reader = boss_session(&db);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let (held, committing) = commit_held_at(
        &db,
        "SELECT fluent_revoke_role('boss', 'all_r'); INSERT INTO docs VALUES (99, 'ann')",
        VISIBLE_UNSENT,
    );
    assert_eq!(
        count(&mut dba, "SELECT count(*) FROM docs WHERE id = 99"),
        1,
        "the commit is visible"
    );
    assert_eq!(gate_closed(&mut dba), 1, "the revoke holds the gate");
    let reading = std::thread::spawn(move || {
        let answer = count(&mut reader, "SELECT count(*) FROM docs");
        (answer, reader)
    });
    let started = std::time::Instant::now();
    while !reading.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the statement waits for the revoke's messages"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (answer, mut reader) = reading.join().unwrap();
    assert_eq!(
        answer, 0,
        "a statement started between the revoke's commit and its messages"
    );
    assert!(!reader
        .query_one("SELECT fluent_can('docs', 'read')", &[])
        .unwrap()
        .get::<_, bool>(0));
    held.release();
    committing.join().unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 0);
}

/// A session whose transactions are REPEATABLE READ or SERIALIZABLE from
/// the start (`SET SESSION CHARACTERISTICS`, as JDBC sets the isolation)
/// passes the gate once its transaction's snapshot is taken: a commit
/// visible in it, whose messages are not sent, is taken in. (Such sessions
/// passed the gate nowhere, and answered as before the revoke while reading
/// the rows written with it.)
#[test]
fn a_repeatable_read_session_takes_in_a_visible_commit_at_its_snapshot() {
    let db = fresh_database("gate_visible_rr");
    seed(&db);
    let mut readers: Vec<Client> = ["REPEATABLE READ", "SERIALIZABLE"]
        .iter()
        .map(|level| {
            let mut reader = boss_session(&db);
            reader
                .batch_execute(&format!(
                    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}"
                ))
                .unwrap();
            assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
            reader
        })
        .collect();
    let (held, committing) = commit_held_at(
        &db,
        "SELECT fluent_revoke_role('boss', 'all_r'); INSERT INTO docs VALUES (99, 'ann')",
        VISIBLE_UNSENT,
    );
    for (reader, level) in readers.iter_mut().zip(["REPEATABLE READ", "SERIALIZABLE"]) {
        assert_eq!(
            count(reader, "SELECT count(*) FROM docs"),
            0,
            "{level}: a transaction whose snapshot shows the revoke, before its messages"
        );
        assert!(
            !reader
                .query_one("SELECT fluent_can('docs', 'read')", &[])
                .unwrap()
                .get::<_, bool>(0),
            "{level}"
        );
    }
    held.release();
    committing.join().unwrap();
}

/// An `EXECUTE` that begins a REPEATABLE READ transaction, whose snapshot
/// is taken after its plan is chosen, takes in a commit that is visible and
/// whose messages are not sent before the plan is chosen, and answers with
/// it (it answered from before it). A named statement bound again through
/// the extended protocol, whose plan PostgreSQL reuses before fluent runs,
/// is refused with `40001` as it starts under a snapshot that shows the
/// change of its user's answers (it answered as before the change, with the
/// row written with it: 34), and planned again after that.
#[test]
fn a_kept_plan_chosen_while_a_visible_commit_is_unsent_is_refused_then_planned_with_it() {
    let db = fresh_database("gate_visible_kept");
    seed(&db);
    let mut bound = boss_session(&db);
    bound
        .batch_execute("SET plan_cache_mode = force_generic_plan")
        .unwrap();
    let statement = bound.prepare("SELECT count(*) FROM docs").unwrap();
    let mut executed = boss_session(&db);
    executed
        .batch_execute(
            "SET plan_cache_mode = force_generic_plan;
             PREPARE all_docs AS SELECT count(*) FROM docs",
        )
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            bound.query_one(&statement, &[]).unwrap().get::<_, i64>(0),
            33
        );
        assert_eq!(count(&mut executed, "EXECUTE all_docs"), 33);
    }
    executed
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .unwrap();
    let (held, committing) = commit_held_at(
        &db,
        "SELECT fluent_revoke_role('boss', 'all_r'); INSERT INTO docs VALUES (99, 'ann')",
        VISIBLE_UNSENT,
    );
    assert_eq!(
        count(&mut executed, "EXECUTE all_docs"),
        0,
        "EXECUTE beginning a REPEATABLE READ transaction"
    );
    assert_eq!(
        sqlstate(bound.query_one(&statement, &[])),
        "40001",
        "a kept plan bound again, chosen before the revoke was taken in"
    );
    assert_eq!(
        bound.query_one(&statement, &[]).unwrap().get::<_, i64>(0),
        0,
        "bound again once the change was taken in"
    );
    held.release();
    committing.join().unwrap();
}

/// A process that is not a catalog writer, held between its commit becoming
/// visible and its messages (as its client can hold it, not reading a
/// notice sent there), is not waited for while a catalog change commits:
/// every process of the database in that stretch was, as long as its client
/// wished.
#[test]
fn a_session_that_wrote_no_catalog_is_never_waited_for() {
    let db = fresh_database("gate_other_tail");
    seed(&db);
    let mut reader = boss_session(&db);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let (other, other_committing) =
        commit_held_at(&db, "INSERT INTO scratch VALUES (1)", VISIBLE_UNSENT);
    let (held, committing) = commit_held_at(&db, REVOKE, BEFORE_VISIBLE);
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        33,
        "a statement while the revoke waits and another session is held after its commit"
    );
    held.release();
    committing.join().unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 0);
    other.release();
    other_committing.join().unwrap();
}

/// The truncation of the writer's `ON COMMIT DELETE ROWS` tables waits for
/// any lock on them, which any role can hold with `nextval()` on their OID:
/// it runs before the gate closes, so the wait stops no other statement
/// (every statement of every session waited until the lock's holder ended).
#[test]
fn a_commit_waiting_for_a_lock_on_its_temporary_table_closes_no_gate() {
    let db = fresh_database("gate_on_commit");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut writer = connect(&db, "postgres");
    writer
        .batch_execute("CREATE TEMP TABLE t (i int) ON COMMIT DELETE ROWS")
        .unwrap();
    let table: u32 = writer
        .query_one("SELECT 't'::regclass::oid", &[])
        .unwrap()
        .get(0);
    let mut holder = connect(&db, TESTER);
    holder
        .batch_execute(&format!(
            "BEGIN; SAVEPOINT a; SELECT nextval({table}::oid::regclass)"
        ))
        .unwrap_err();
    holder.batch_execute("ROLLBACK TO a").unwrap();
    let mut reader = boss_session(&db);
    let committing = std::thread::spawn(move || {
        writer
            .batch_execute(&format!("BEGIN; SELECT count(*) FROM t; {REVOKE}; COMMIT"))
            .unwrap();
    });
    wait_until(
        &mut dba,
        &format!("SELECT count(*) FROM pg_locks WHERE relation = {table} AND NOT granted"),
        "the commit never waited",
    );
    assert_eq!(
        gate_closed(&mut dba),
        0,
        "the waiting commit closed the gate"
    );
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        33,
        "a statement while the revoke waits for the lock"
    );
    holder.batch_execute("COMMIT").unwrap();
    committing.join().unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 0);
}

/// A transaction whose catalog writes were rolled back to a savepoint
/// closes no gate: nothing of it becomes visible (an application role that
/// may write the catalog, accepting an invitation, closed it at will).
#[test]
fn a_commit_whose_catalog_writes_were_rolled_back_closes_no_gate() {
    let db = fresh_database("gate_rolled_back");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    // With a transaction id (the insert).
    let (held, committing) = commit_held_at(
        &db,
        "INSERT INTO scratch VALUES (1);
         SAVEPOINT x; SELECT fluent_revoke_role('boss', 'all_r'); ROLLBACK TO x",
        BEFORE_VISIBLE,
    );
    assert_eq!(
        gate_closed(&mut dba),
        0,
        "a revoke rolled back to a savepoint"
    );
    held.release();
    committing.join().unwrap();
    // A savepoint released keeps its writes.
    let (held, committing) = commit_held_at(
        &db,
        "SAVEPOINT x; SELECT fluent_revoke_role('boss', 'all_r'); RELEASE x",
        BEFORE_VISIBLE,
    );
    assert_eq!(gate_closed(&mut dba), 1, "a released savepoint's revoke");
    held.release();
    committing.join().unwrap();
}

/// Runs `sql` (one text value) in a session acting for boss, planned while
/// a revoke of boss's role waits before it is visible and started after
/// the revoke became visible (`sql` sleeps while it is planned or runs, and
/// the revoke goes on meanwhile), after `warm` (statements run before the
/// revoke). Returns its SQLSTATE and its value, and the session.
fn run_across_a_stalled_revoke(
    name: &str,
    warm: &[&str],
    sql: &'static str,
) -> (String, String, Client) {
    let db = fresh_database(name);
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut reader = boss_session(&db);
    let reader_pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    for statement in warm {
        reader.batch_execute(statement).unwrap();
    }
    let (held, committing) = commit_held_at(&db, REVOKE, BEFORE_VISIBLE);
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
    held.release();
    committing.join().unwrap();
    running.join().unwrap()
}

/// A statement planned while a stalled change was not visible, which
/// starts running after it became visible, would read rows through a
/// snapshot that shows the change with answers folded before it: it runs
/// under the snapshot it was planned under (src/planning_snapshot.rs), as
/// before the change (it was refused with 40001 before), and run again it
/// sees the change.
#[test]
fn a_plan_folded_before_a_stalled_change_became_visible_runs_as_before_it() {
    let sql = "SELECT count(*)::text FROM docs WHERE slow_one() = 1";
    let (state, value, mut reader) =
        run_across_a_stalled_revoke("gate_stalled_plan", &["SELECT count(*) FROM docs"], sql);
    assert_eq!(
        (state.as_str(), value.as_str()),
        ("ok", "33"),
        "the statement planned before the revoke, run after it"
    );
    assert_eq!(
        reader.query_one(sql, &[]).unwrap().get::<_, String>(0),
        "0",
        "run again"
    );
}

/// The first value `sql` returns, run through the simple query protocol
/// (planned and started in one message, as `psql` runs it).
fn simple_value(client: &mut Client, sql: &str) -> String {
    try_simple_value(client, sql).unwrap()
}

/// The first value `sql` returns through the simple protocol, or its error.
fn try_simple_value(client: &mut Client, sql: &str) -> Result<String, postgres::Error> {
    Ok(client
        .simple_query(sql)?
        .into_iter()
        .find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row"))
}

/// Revokes boss's role and writes a 34th row in one transaction, committed
/// whole (messages sent) while the reader's statement is planned: the
/// statement reads as of its planning, neither with the row written after
/// the revoke nor with the revoke. On the code before, it read the new row
/// with the access boss had before the revoke (34). Returns the reader.
fn revoke_and_write_while_planned(db: &str, reader: Client, sql: &'static str) -> (String, Client) {
    let (value, reader) = try_revoke_and_write_while_planned(db, reader, sql);
    (value.unwrap(), reader)
}

/// `revoke_and_write_while_planned`, returning what `sql` gave, an error too.
fn try_revoke_and_write_while_planned(
    db: &str,
    reader: Client,
    sql: &'static str,
) -> (Result<String, postgres::Error>, Client) {
    try_change_and_write_while_planned(db, reader, sql, REVOKE)
}

/// `change` and a 34th row written in one transaction, committed while the
/// reader's statement `sql` is planned; returns what `sql` gave.
fn try_change_and_write_while_planned(
    db: &str,
    reader: Client,
    sql: &'static str,
    change: &str,
) -> (Result<String, postgres::Error>, Client) {
    let mut dba = connect(db, "postgres");
    let mut reader = reader;
    let reader_pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let running = std::thread::spawn(move || {
        let value = try_simple_value(&mut reader, sql);
        (value, reader)
    });
    wait_until(
        &mut dba,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {reader_pid} AND wait_event = 'PgSleep'"
        ),
        "the statement never slept while it was planned",
    );
    dba.batch_execute(&format!(
        "BEGIN; {change}; INSERT INTO docs VALUES (34, 'ann'); COMMIT"
    ))
    .unwrap();
    running.join().unwrap()
}

#[test]
fn a_change_committed_while_a_statement_is_planned_shows_in_neither_its_rows_nor_its_answers() {
    let db = fresh_database("gate_planned_across");
    seed(&db);
    let (mut reader, notices) =
        fluent_pgrx_tests::connect_collecting_notices(&db, fluent_pgrx_tests::AUTHENTICATOR);
    reader
        .batch_execute(&format!("SELECT fluent_set_user('boss'); SET ROLE {APP}"))
        .unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let sql = "SELECT count(*)::text FROM docs WHERE slow_one() = 1";
    let (value, mut reader) = revoke_and_write_while_planned(&db, reader, sql);
    assert_eq!(value, "33", "planned before the change, started after it");
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "the next statement"
    );
    // The snapshot it ran under was let go before the transaction's end.
    assert_eq!(
        notices.lock().unwrap().clone(),
        Vec::<String>::new(),
        "no leaked snapshot"
    );
}

/// The same through the extended protocol: Bind plans the statement and
/// starts it in one message (the plan cache runs its copy of the plan).
#[test]
fn a_change_committed_while_a_statement_is_bound_shows_in_neither_its_rows_nor_its_answers() {
    let db = fresh_database("gate_bound_across");
    seed(&db);
    let mut reader = boss_session(&db);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let mut dba = connect(&db, "postgres");
    let reader_pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let running = std::thread::spawn(move || {
        let value = reader
            .query_one("SELECT count(*)::text FROM docs WHERE slow_one() = 1", &[])
            .unwrap()
            .get::<_, String>(0);
        (value, reader)
    });
    wait_until(
        &mut dba,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {reader_pid} AND wait_event = 'PgSleep'"
        ),
        "the statement never slept while it was planned",
    );
    dba.batch_execute(&format!(
        "BEGIN; {REVOKE}; INSERT INTO docs VALUES (34, 'ann'); COMMIT"
    ))
    .unwrap();
    let (value, mut reader) = running.join().unwrap();
    assert_eq!(value, "33", "bound before the change, started after it");
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "the next statement"
    );
}

/// `sql` of `reader` waits at a lock the test holds: polls until it does.
fn wait_for_lock(dba: &mut Client, reader_pid: i32, what: &str) {
    wait_until(
        dba,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {reader_pid} AND wait_event_type = 'Lock'"
        ),
        what,
    );
}

/// A change whose message is taken in while the statement is planned (at
/// a lock its parse waits for) is read through the planning snapshot,
/// which does not show it: the statement reads as of that snapshot. On the
/// code before, it read the row written with the revoke (34).
#[test]
fn a_change_taken_in_at_a_lock_while_a_statement_is_parsed_shows_in_neither_its_rows_nor_its_answers(
) {
    let db = fresh_database("gate_planned_lock");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "CREATE TABLE side (i int); INSERT INTO side VALUES (1); GRANT SELECT ON side TO {APP}"
    ))
    .unwrap();
    let mut reader = boss_session(&db);
    assert_eq!(simple_value(&mut reader, "SELECT count(*) FROM docs"), "33");
    let reader_pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut locker = connect(&db, "postgres");
    locker
        .batch_execute("BEGIN; LOCK side IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let running = std::thread::spawn(move || {
        let value = simple_value(
            &mut reader,
            "SELECT count(*)::text FROM docs WHERE EXISTS (SELECT FROM side)",
        );
        (value, reader)
    });
    wait_for_lock(&mut dba, reader_pid, "the statement never waited for side");
    dba.batch_execute(&format!(
        "BEGIN; {REVOKE}; INSERT INTO docs VALUES (34, 'ann'); COMMIT"
    ))
    .unwrap();
    locker.batch_execute("COMMIT").unwrap();
    let (value, mut reader) = running.join().unwrap();
    assert_eq!(
        value, "33",
        "parsed before the change, its message taken in at a lock"
    );
    assert_eq!(
        simple_value(&mut reader, "SELECT count(*) FROM docs"),
        "0",
        "the next statement"
    );
}

/// `planned_in_steps()`, run while its caller is planned: waits for the
/// test at two advisory locks, with a check through a snapshot of its own
/// (`check_now()`, VOLATILE, after a lock that takes messages in) in
/// between.
fn create_steps(dba: &mut Client) {
    dba.batch_execute(&format!(
        "CREATE TABLE side (i int);
         GRANT SELECT ON side TO {APP};
         CREATE FUNCTION check_now() RETURNS int LANGUAGE plpgsql VOLATILE
             AS 'BEGIN PERFORM FROM side; PERFORM fluent_can(''docs'', ''read''); RETURN 1; END';
         CREATE FUNCTION planned_in_steps() RETURNS int LANGUAGE plpgsql IMMUTABLE
             AS 'BEGIN PERFORM pg_advisory_lock(1); PERFORM pg_advisory_unlock(1);
                       PERFORM check_now();
                       PERFORM pg_advisory_lock(2); PERFORM pg_advisory_unlock(2); RETURN 1; END';
         GRANT EXECUTE ON FUNCTION check_now(), planned_in_steps() TO {APP};"
    ))
    .unwrap();
}

/// Runs `sql` in `reader` (simple protocol) through the steps of
/// `planned_in_steps()`: `first` commits while it waits at the first,
/// `second` (if any) while it waits at the second. Returns its SQLSTATE and
/// first value, and the reader.
fn run_in_steps(
    db: &str,
    reader: Client,
    sql: &'static str,
    first: &str,
    second: Option<&str>,
) -> (String, String, Client) {
    let mut dba = connect(db, "postgres");
    let mut reader = reader;
    let reader_pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut steps = connect(db, "postgres");
    steps
        .batch_execute("SELECT pg_advisory_lock(1), pg_advisory_lock(2)")
        .unwrap();
    let running = std::thread::spawn(move || {
        let result = reader.simple_query(sql);
        let value = match &result {
            Ok(messages) => messages
                .iter()
                .find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        (sqlstate(result), value, reader)
    });
    let waiting_at = |step: i32| {
        format!(
            "SELECT count(*) FROM pg_locks WHERE pid = {reader_pid} AND locktype = 'advisory'
                AND objid = {step} AND NOT granted"
        )
    };
    wait_until(
        &mut dba,
        &waiting_at(1),
        "the statement never reached its first step",
    );
    dba.batch_execute(first).unwrap();
    steps.batch_execute("SELECT pg_advisory_unlock(1)").unwrap();
    wait_until(
        &mut dba,
        &waiting_at(2),
        "the statement never reached its second step",
    );
    if let Some(second) = second {
        dba.batch_execute(second).unwrap();
    }
    steps.batch_execute("SELECT pg_advisory_unlock(2)").unwrap();
    running.join().unwrap()
}

/// A function run while the statement is planned reads the catalog
/// through a snapshot of its own, after a change that deleted ann's row 200
/// and gave boss access to every row; then another change arrives before
/// the statement starts. The answers (every row) are newer than the
/// planning snapshot (which holds row 200) and maybe older than the running
/// one: the statement is refused with 40001, and run again it answers with
/// both changes. Run under the planning snapshot it read row 200 (34 rows),
/// which no committed state shows boss.
#[test]
fn answers_read_while_planning_through_a_newer_snapshot_refuse_the_statement_when_another_change_arrives(
) {
    let db = fresh_database("gate_planned_newer");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(
        "SELECT fluent_create_role('own_r'), fluent_set_permission('own_r', 'docs', 'read', 'own');
         SELECT fluent_grant_role('boss', 'own_r'), fluent_revoke_role('boss', 'all_r');
         INSERT INTO docs VALUES (200, 'ann');",
    )
    .unwrap();
    create_steps(&mut dba);
    let mut reader = boss_session(&db);
    assert_eq!(
        simple_value(&mut reader, "SELECT count(*) FROM docs"),
        "0",
        "own rows: none"
    );
    let (state, value, mut reader) = run_in_steps(
        &db,
        reader,
        "SELECT count(*)::text FROM docs WHERE planned_in_steps() = 1",
        "BEGIN; DELETE FROM docs WHERE id = 200; SELECT fluent_grant_role('boss', 'all_r'); COMMIT",
        Some("SELECT fluent_revoke_role('ann', 'own_r')"),
    );
    assert_eq!(
        (state.as_str(), value.as_str()),
        ("40001", ""),
        "answers read after the first change, the second arrived before the start"
    );
    assert_eq!(
        simple_value(
            &mut reader,
            "SELECT count(*) FROM docs WHERE planned_in_steps() = 1"
        ),
        "33",
        "run again"
    );
}

/// Answers folded before a function run later in the planning took a
/// change in through a snapshot of its own (a subquery's, planned after the
/// policy's test was folded): the cache holds the change, the plan does
/// not, and the statement is refused. On the code before, the cache looked
/// current and the plan ran under the later snapshot with the answers from
/// before the revoke: it read the row written with it.
#[test]
fn answers_folded_before_a_look_through_a_newer_snapshot_refuse_the_statement() {
    let db = fresh_database("gate_planned_fold_then_look");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    create_steps(&mut dba);
    let mut reader = boss_session(&db);
    assert_eq!(simple_value(&mut reader, "SELECT count(*) FROM docs"), "33");
    let (state, value, mut reader) = run_in_steps(
        &db,
        reader,
        "SELECT count(*)::text FROM docs, (SELECT planned_in_steps() AS z OFFSET 0) s WHERE s.z = 1",
        &format!("BEGIN; {REVOKE}; INSERT INTO docs VALUES (34, 'ann'); COMMIT"),
        None,
    );
    assert_eq!(
        (state.as_str(), value.as_str()),
        ("40001", ""),
        "folded before the revoke, which a later look of the planning took in"
    );
    assert_eq!(
        simple_value(&mut reader, "SELECT count(*) FROM docs"),
        "0",
        "run again"
    );
}

/// A rule makes one statement several plans, made before any runs: the
/// plan that folded answers (the rule's action, reading docs) is not the
/// first to start. It runs under the planning snapshot when a change
/// arrived meanwhile: the row written with the revoke is not copied. On
/// the code before, the first plan's start let the kept snapshot go, and
/// the action copied it.
#[test]
fn a_rule_action_planned_before_a_change_runs_as_before_it() {
    let db = fresh_database("gate_planned_rule");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "CREATE TABLE rins (i int); CREATE TABLE rlog (id int);
         ALTER TABLE rins OWNER TO {APP}; ALTER TABLE rlog OWNER TO {APP};
         SET ROLE {APP};
         CREATE RULE copy_docs AS ON INSERT TO rins DO ALSO INSERT INTO rlog SELECT id FROM docs;
         RESET ROLE;"
    ))
    .unwrap();
    let mut reader = boss_session(&db);
    assert_eq!(simple_value(&mut reader, "SELECT count(*) FROM docs"), "33");
    let (_, mut reader) = revoke_and_write_while_planned(
        &db,
        reader,
        "INSERT INTO rins SELECT slow_one() RETURNING i::text",
    );
    assert_eq!(
        simple_value(
            &mut dba,
            "SELECT count(*) FILTER (WHERE id = 34) || '/' || count(*) FROM rlog"
        ),
        "0/33",
        "the rows the rule's action copied"
    );
    assert_eq!(
        simple_value(&mut reader, "SELECT count(*) FROM docs"),
        "0",
        "the next statement"
    );
}

/// The same in a transaction block, for a write: an `UPDATE ... RETURNING`
/// (a portal that stores its rows) planned before the change updates and
/// returns the rows as before it; and the transaction commits with no
/// snapshot left behind.
#[test]
fn a_write_planned_before_a_change_committed_meanwhile_runs_as_before_it() {
    let db = fresh_database("gate_planned_write");
    seed(&db);
    let mut admin = connect(&db, "postgres");
    admin
        .batch_execute(&format!(
            "GRANT UPDATE ON docs TO {APP};
             SELECT fluent_set_permission('all_r', 'docs', 'write', 'all')"
        ))
        .unwrap();
    let (mut reader, notices) =
        fluent_pgrx_tests::connect_collecting_notices(&db, fluent_pgrx_tests::AUTHENTICATOR);
    reader
        .batch_execute(&format!(
            "BEGIN; SELECT fluent_set_user('boss', true); SET LOCAL ROLE {APP}"
        ))
        .unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let sql = "WITH u AS (UPDATE docs SET owner = owner WHERE slow_one() = 1 RETURNING id)
               SELECT count(*)::text FROM u";
    let (value, mut reader) = revoke_and_write_while_planned(&db, reader, sql);
    assert_eq!(value, "33", "planned before the change, started after it");
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "the next statement"
    );
    reader.batch_execute("COMMIT").unwrap();
    assert_eq!(
        notices.lock().unwrap().clone(),
        Vec::<String>::new(),
        "no leaked snapshot"
    );
}

/// A statement whose plan folded answers keeps its planning snapshot only
/// until its plan starts: a transaction left idle after it holds back no
/// cleanup (`backend_xmin` is empty, as without fluent).
#[test]
fn a_folded_statement_keeps_no_snapshot_once_it_ran() {
    let db = fresh_database("gate_planned_xmin");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let mut reader = boss_session(&db);
    let pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    reader.batch_execute("BEGIN").unwrap();
    assert_eq!(simple_value(&mut reader, "SELECT count(*) FROM docs"), "33");
    assert_eq!(
        count(
            &mut dba,
            &format!("SELECT count(backend_xmin) FROM pg_stat_activity WHERE pid = {pid}")
        ),
        0,
        "an idle transaction after a folded statement"
    );
    reader.batch_execute("COMMIT").unwrap();
}

/// The same after a statement whose query is planned while a portal runs
/// (`EXPLAIN`, `COPY`), and after a write whose rule's last action is a
/// `NOTIFY`: on the code before, each kept its planning snapshot until the
/// transaction ended.
#[test]
fn statements_planned_inside_utilities_or_ending_in_a_notify_keep_no_snapshot() {
    let db = fresh_database("gate_planned_xmin_utility");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "CREATE TABLE noted (id int, owner text);
         SELECT fluent_protect('noted', 'docs', 'owner');
         SELECT fluent_set_permission('all_r', 'docs', 'write', 'all');
         CREATE RULE noted_notify AS ON INSERT TO noted DO ALSO NOTIFY noted_changed;
         GRANT SELECT, INSERT ON noted TO {APP};"
    ))
    .unwrap();
    let mut reader = boss_session(&db);
    let pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let xmin_held = |dba: &mut Client| {
        count(
            dba,
            &format!("SELECT count(backend_xmin) FROM pg_stat_activity WHERE pid = {pid}"),
        )
    };
    reader.batch_execute("BEGIN").unwrap();
    reader
        .batch_execute("EXPLAIN SELECT count(*) FROM docs")
        .unwrap();
    assert_eq!(xmin_held(&mut dba), 0, "idle after EXPLAIN");
    let mut copied = String::new();
    std::io::Read::read_to_string(
        &mut reader
            .copy_out("COPY (SELECT id FROM docs) TO STDOUT")
            .unwrap(),
        &mut copied,
    )
    .unwrap();
    assert_eq!(copied.lines().count(), 33, "the rows copied");
    assert_eq!(xmin_held(&mut dba), 0, "idle after COPY");
    reader
        .batch_execute("INSERT INTO noted VALUES (1, 'boss')")
        .unwrap();
    assert_eq!(xmin_held(&mut dba), 0, "idle after the rule's NOTIFY");
    reader.batch_execute("COMMIT").unwrap();
}

/// A transaction with an id keeps no planning snapshot (it reads the
/// catalog through snapshots of its own): a statement planned before a
/// revoke and a row written with it, and started after, is refused. On the
/// code before, it read the row with the access boss had before the revoke
/// (34).
#[test]
fn a_statement_of_a_transaction_with_an_id_started_after_a_revoke_is_refused() {
    let db = fresh_database("gate_planned_with_id");
    seed(&db);
    let mut reader = boss_session(&db);
    reader
        .batch_execute("BEGIN; SELECT pg_current_xact_id()")
        .unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let sql = "SELECT count(*)::text FROM docs WHERE slow_one() = 1";
    let (result, mut reader) = try_revoke_and_write_while_planned(&db, reader, sql);
    assert_eq!(sqlstate(result), "40001", "planned before, started after");
    reader.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "run again"
    );
}

/// Whether a statement that may have been planned before a change was
/// refused (`40001`) or answered `fresh`, as after the change: never as
/// before it.
fn refused_or_fresh(value: Result<String, postgres::Error>, fresh: &str) -> bool {
    match value {
        Ok(value) => value == fresh,
        Err(e) => sqlstate(Err::<(), _>(e)) == "40001",
    }
}

/// `sql` runs in `reader` while the test holds advisory lock 7: the query it
/// runs after taking that lock (a function's) starts after `change`, which
/// commits with a 34th row while it waits. Returns what `sql` gave.
fn change_while_a_function_waits(
    db: &str,
    mut reader: Client,
    sql: &'static str,
    change: &str,
) -> (Result<String, postgres::Error>, Client) {
    let mut dba = connect(db, "postgres");
    dba.batch_execute("SELECT pg_advisory_lock(7)").unwrap();
    let reader_pid: i32 = reader
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let running = std::thread::spawn(move || {
        let value = reader
            .query_one(sql, &[])
            .map(|row| row.get::<_, String>(0));
        (value, reader)
    });
    wait_for_lock(
        &mut dba,
        reader_pid,
        "the function never waited for the lock",
    );
    connect(db, "postgres")
        .batch_execute(&format!(
            "BEGIN; {change}; INSERT INTO docs VALUES (34, 'ann'); COMMIT"
        ))
        .unwrap();
    dba.batch_execute("SELECT pg_advisory_unlock(7)").unwrap();
    running.join().unwrap()
}

/// `CREATE FUNCTION name()`: counts the rows of `table`, waits for
/// advisory lock 7, and counts them again: the second query is planned under
/// its caller's snapshot and runs under one taken after (a volatile
/// function's, in READ COMMITTED).
fn count_twice_function(name: &str, table: &str) -> String {
    format!(
        "CREATE FUNCTION {name}() RETURNS text LANGUAGE plpgsql AS $$
    DECLARE first bigint;
    BEGIN
        SELECT count(*) INTO first FROM {table};
        PERFORM pg_advisory_lock_shared(7);
        RETURN first || '/' || (SELECT count(*) FROM {table});
    END $$"
    )
}

/// A database of `seed`'s with `count_twice()` over the docs, and
/// `count_twice()` run for boss while `change` commits with a 34th row
/// (`change_while_a_function_waits`). Returns what it gave and boss's
/// session.
fn count_twice_across(name: &str, change: &str) -> (Result<String, postgres::Error>, Client) {
    let db = fresh_database(name);
    seed(&db);
    connect(&db, "postgres")
        .batch_execute(&format!(
            "{}; GRANT EXECUTE ON FUNCTION count_twice() TO {APP}",
            count_twice_function("count_twice", "docs")
        ))
        .unwrap();
    change_while_a_function_waits(&db, boss_session(&db), "SELECT count_twice()", change)
}

/// A revoke (and a row written with it) that commits while a function runs
/// shows in neither the rows nor the answers of the function's next query:
/// the query is refused (`40001`), and the statement run again sees the
/// revoke. On the code before, the query read the row written after the
/// revoke with the access boss had before it ("33/34").
#[test]
fn a_function_query_started_after_a_revoke_of_the_acting_user_is_refused() {
    let (value, mut reader) = count_twice_across("gate_function_revoke", REVOKE);
    assert_eq!(
        sqlstate(value),
        "40001",
        "the function's query after the revoke"
    );
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "the statement run again"
    );
}

/// Another user's change committing while the function runs does not stop
/// it: its next query reads the row written with that change, with boss's
/// unchanged answers.
#[test]
fn a_function_query_started_after_another_users_change_runs() {
    let (value, _) = count_twice_across(
        "gate_function_other",
        "SELECT fluent_grant_role('ann', 'all_r')",
    );
    assert_eq!(value.unwrap(), "33/34", "both queries of the function");
}

/// A SQL function plans all its statements at its first call (on 15; from
/// 18 on, each as it reaches it, with the change). A look at the
/// change log between then and its last statement (a helper's `fluent_can`,
/// after a lock that took the messages in) takes in a revoke that committed
/// meanwhile, with a row: the last statement, folded before the revoke, is
/// refused as it starts. On the code that compared the answers before and
/// after its own look, that look had already been taken, and the statement
/// read the row with the access boss had before the revoke ("34").
#[test]
fn a_sql_function_statement_folded_before_a_revoke_is_refused_after_a_look_in_between() {
    let db = fresh_database("gate_sql_function_look");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "CREATE TABLE side (i int);
         GRANT SELECT ON side TO {APP};
         CREATE FUNCTION may_read() RETURNS boolean LANGUAGE plpgsql
             AS 'BEGIN PERFORM FROM side; RETURN fluent_can(''docs'', ''read''); END';
         CREATE FUNCTION count_after_a_check() RETURNS text LANGUAGE sql AS $$
             SELECT pg_advisory_lock_shared(7);
             SELECT may_read();
             SELECT count(*)::text FROM docs;
         $$;
         GRANT EXECUTE ON FUNCTION may_read(), count_after_a_check() TO {APP}"
    ))
    .unwrap();
    let reader = boss_session(&db);
    let (value, mut reader) =
        change_while_a_function_waits(&db, reader, "SELECT count_after_a_check()", REVOKE);
    assert!(
        refused_or_fresh(value, "0"),
        "the statement folded before the revoke"
    );
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "the statement run again"
    );
}

/// A write bound through the extended protocol before a revoke, and
/// executed after another statement took the revoke in, is refused. On the
/// code before, it updated the 34 rows, the one written with the revoke
/// too, with the access boss had before it.
#[test]
fn a_write_bound_before_a_revoke_and_executed_after_another_statement_is_refused() {
    let db = fresh_database("gate_bound_write_later");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "GRANT UPDATE ON docs TO {APP};
         SELECT fluent_set_permission('all_r', 'docs', 'write', 'all')"
    ))
    .unwrap();
    let mut reader = connect(&db, fluent_pgrx_tests::AUTHENTICATOR);
    let mut tx = reader.transaction().unwrap();
    tx.batch_execute(&format!(
        "SELECT fluent_set_user('boss', true); SET LOCAL ROLE {APP}"
    ))
    .unwrap();
    let write = tx
        .prepare("UPDATE docs SET owner = owner RETURNING id")
        .unwrap();
    let portal = tx.bind(&write, &[]).unwrap();
    dba.batch_execute(&format!(
        "BEGIN; {REVOKE}; INSERT INTO docs VALUES (34, 'ann'); COMMIT"
    ))
    .unwrap();
    assert_eq!(
        tx.query_one("SELECT count(*) FROM docs", &[])
            .unwrap()
            .get::<_, i64>(0),
        0,
        "the statement in between"
    );
    assert_eq!(
        sqlstate(tx.query_portal(&portal, 0)),
        "40001",
        "the write bound before the revoke"
    );
}

/// A SQL function that drops the identity (`fluent_reset_user`) and then
/// reads: on 15 its statements were planned, at its first call, for the
/// identity before, and the read is refused rather than answered for it
/// (from 18 on it is planned as it is reached, for nobody). On the code
/// before, it read boss's 33 rows.
#[test]
fn a_sql_function_statement_folded_before_the_identity_changed_is_refused() {
    let db = fresh_database("gate_sql_function_identity");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "CREATE FUNCTION reset_and_count() RETURNS text LANGUAGE sql AS $$
             SELECT fluent_reset_user();
             SELECT count(*)::text FROM docs;
         $$;
         GRANT SELECT ON docs TO {TESTER};"
    ))
    .unwrap();
    let mut reader = connect(&db, TESTER);
    reader
        .batch_execute("SELECT fluent_set_user('boss')")
        .unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let value = reader
        .query_one("SELECT reset_and_count()", &[])
        .map(|row| row.get::<_, String>(0));
    assert!(
        refused_or_fresh(value, "0"),
        "planned for boss, run for nobody"
    );
    reader.batch_execute("SELECT fluent_reset_user()").unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 0, "nobody");
}

/// A session acting for boss with a cache of 100 users, and
/// `count_evicting()`: a function whose query, while it is planned, runs a
/// function that asks about 100 other users (evicting boss's entry) and
/// sleeps.
fn evicting_reader(db: &str) -> Client {
    let mut dba = connect(db, "postgres");
    dba.batch_execute(&format!(
        "GRANT SELECT ON docs TO {TESTER};
         CREATE FUNCTION evict_and_sleep() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
         BEGIN
             PERFORM fluent_scope('nobody' || i, 'docs', 'read') FROM generate_series(1, 100) i;
             PERFORM pg_sleep(2);
             RETURN 1;
         END $$;
         CREATE FUNCTION count_evicting() RETURNS text LANGUAGE plpgsql AS $$
         BEGIN
             RETURN (SELECT count(*)::text FROM docs, (SELECT evict_and_sleep() AS e OFFSET 0) s
                      WHERE s.e = 1);
         END $$;"
    ))
    .unwrap();
    let mut reader = connect(db, TESTER);
    reader
        .batch_execute("SET fluent.cache_users = 100; SELECT fluent_set_user('boss')")
        .unwrap();
    reader
}

/// A function's query whose folds read boss's entry, which the planner then
/// evicts (a function it runs asks about 100 other users, with the cache
/// kept to 100 users), and that starts after a revoke committed with a row:
/// refused. (An adversary's pass had such a plan stamped with the identity
/// alone, which every later answer matched, and read the row; this test
/// passes on that code too, the adversary's script did not.)
#[test]
fn a_function_query_whose_users_entry_was_evicted_while_it_was_planned_is_refused() {
    let db = fresh_database("gate_function_evicted");
    seed(&db);
    let mut reader = evicting_reader(&db);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let (result, mut reader) =
        try_revoke_and_write_while_planned(&db, reader, "SELECT count_evicting()");
    assert_eq!(
        sqlstate(result),
        "40001",
        "evicted while planned, started after"
    );
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        0,
        "the statement after it"
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

/// A write's plan (a portal that starts running at Execute) bound through
/// the extended protocol while a change stalled, and executed after the
/// change became visible, is refused: the messages taken in at Execute must
/// not make the backend forget the stalled commit before the check.
#[test]
fn a_write_bound_before_a_stalled_change_and_executed_after_is_refused() {
    let db = fresh_database("gate_stalled_execute");
    seed(&db);
    let mut reader = boss_session(&db);
    reader
        .batch_execute("CREATE TEMP TABLE scratch (i int)")
        .unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let mut transaction = reader.transaction().unwrap();
    let statement = transaction
        .prepare(
            "WITH w AS (INSERT INTO scratch VALUES (1) RETURNING i)
             SELECT count(*) FROM docs, (SELECT count(*) FROM w) written",
        )
        .unwrap();
    let (held, committing) = commit_held_at(&db, REVOKE, BEFORE_VISIBLE);
    let portal = transaction.bind(&statement, &[]).unwrap();
    held.release();
    committing.join().unwrap();
    let result = transaction.query_portal(&portal, 0);
    let answer = result.as_ref().ok().map(|rows| rows[0].get::<_, i64>(0));
    assert_eq!(
        (sqlstate(result), answer),
        ("40001".to_owned(), None),
        "bound before the revoke was visible, executed after"
    );
}

/// A change of the workspace model (here a module created) committing while
/// a function runs refuses the function's next query, though boss's
/// permissions did not change: a plan that folded answers is refused when
/// the model it was folded from changed under it (README, "Every other
/// plan that folded answers"). Run again, the statement reads the row
/// written with the change.
#[test]
fn a_function_query_started_after_a_model_change_is_refused() {
    let (value, mut reader) = count_twice_across(
        "gate_function_model",
        "SELECT fluent_create_module('notes')",
    );
    assert_eq!(sqlstate(value), "40001", "the query after the model change");
    assert_eq!(
        count(&mut reader, "SELECT count(*) FROM docs"),
        34,
        "the statement run again"
    );
}

/// Item roles given through a team: bob manages project 2 as a member of
/// design. A change of any team of the workspace (here a new, unrelated
/// one) committing while a function of bob's runs refuses its next query,
/// which folded the teams bob is a member of; boss's function, which folded
/// no teams, runs across the same change.
#[test]
fn a_team_change_refuses_only_function_queries_that_folded_member_teams() {
    let db = fresh_database("gate_function_team");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "SELECT fluent_create_module('projects', '{{read,write}}');
         SELECT fluent_create_item_role('projects', 'manager', '{{read,write}}');
         SELECT fluent_create_user('bob');
         SELECT fluent_create_team('design'), fluent_add_team_member('design', 'bob');
         CREATE TABLE projects (id int PRIMARY KEY, owner text);
         CREATE TABLE project_roles (project_id int NOT NULL REFERENCES projects ON DELETE CASCADE, user_key text,
                                     team text, role text NOT NULL);
         CREATE INDEX ON project_roles (user_key);
         CREATE INDEX ON project_roles (team);
         INSERT INTO projects VALUES (1, 'olga'), (2, 'olga');
         INSERT INTO project_roles VALUES (2, NULL, 'design', 'manager');
         SELECT fluent_protect('projects', 'projects', 'owner', membership_table => 'project_roles',
             membership_row_column => 'project_id', membership_user_column => 'user_key',
             membership_role_column => 'role', membership_team_column => 'team');
         GRANT SELECT ON projects, project_roles TO {APP};
         {};
         {};
         GRANT EXECUTE ON FUNCTION count_twice(), count_projects_twice() TO {APP}",
        count_twice_function("count_twice", "docs"),
        count_twice_function("count_projects_twice", "projects")
    ))
    .unwrap();
    let bob = app_session(&db, "bob");
    let (value, mut bob) = change_while_a_function_waits(
        &db,
        bob,
        "SELECT count_projects_twice()",
        "SELECT fluent_create_team('support')",
    );
    assert_eq!(
        sqlstate(value),
        "40001",
        "bob's query after another team's change"
    );
    assert_eq!(
        count(&mut bob, "SELECT count(*) FROM projects"),
        1,
        "run again: project 2 through design"
    );
    // bob's session holds the function's shared advisory lock.
    drop(bob);
    dba.batch_execute("DELETE FROM docs WHERE id = 34").unwrap();
    let boss = boss_session(&db);
    let (value, _) = change_while_a_function_waits(
        &db,
        boss,
        "SELECT count_twice()",
        "SELECT fluent_create_team('billing')",
    );
    assert_eq!(
        value.unwrap(),
        "33/34",
        "boss's queries across the team change"
    );
}

/// On 15, a SQL function's statements are planned at its first call: one
/// that changes its own user's permissions and then reads is refused at
/// every call, as the read was folded before the change (the README says
/// to write it in PL/pgSQL). 18 plans each statement as it reaches it: the
/// read sees the change. Never the answer from before the grant.
#[test]
fn a_sql_function_that_changes_its_own_users_permissions_then_reads_is_refused_on_15() {
    let db = fresh_database("gate_sql_function_self_change");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "GRANT SELECT ON docs TO {TESTER};
         CREATE FUNCTION grant_and_count() RETURNS text LANGUAGE sql AS $$
             SELECT fluent_grant_role('ann', 'all_r');
             SELECT count(*)::text FROM docs;
         $$;
         CREATE FUNCTION grant_and_count_plpgsql() RETURNS text LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM fluent_grant_role('ann', 'all_r');
             RETURN (SELECT count(*)::text FROM docs);
         END $$;"
    ))
    .unwrap();
    let mut tester = connect(&db, TESTER);
    tester
        .batch_execute("SELECT fluent_set_user('ann')")
        .unwrap();
    let version: i32 = tester
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    for call in 1..=2 {
        tester.batch_execute("BEGIN").unwrap();
        let value = tester
            .query_one("SELECT grant_and_count()", &[])
            .map(|row| row.get::<_, String>(0));
        if version < 180000 {
            assert_eq!(sqlstate(value), "40001", "call {call} on 15");
        } else {
            assert_eq!(value.unwrap(), "33", "call {call} on 18");
        }
        tester.batch_execute("ROLLBACK").unwrap();
    }
    let value: String = tester
        .query_one("SELECT grant_and_count_plpgsql()", &[])
        .unwrap()
        .get(0);
    assert_eq!(value, "33", "the same function in PL/pgSQL");
}

/// A query bound (planned) for boss through the extended protocol, whose
/// user's entry is evicted from the cache (`fluent.cache_users`) by a
/// statement run before its Execute, runs with boss's answers, alone and
/// when another user's change arrives before it starts: the entry loaded
/// again has the stamp it was folded from.
#[test]
fn a_query_whose_users_entry_was_evicted_between_its_plan_and_its_start_runs() {
    let db = fresh_database("gate_evicted_before_start");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!("GRANT SELECT ON docs TO {TESTER}"))
        .unwrap();
    let mut reader = connect(&db, TESTER);
    reader
        .batch_execute("SET fluent.cache_users = 100; SELECT fluent_set_user('boss')")
        .unwrap();
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let evict =
        "SELECT count(fluent_scope('nobody' || i, 'docs', 'read')) FROM generate_series(1, 200) i";
    for another_change in [false, true] {
        let mut transaction = reader.transaction().unwrap();
        let statement = transaction.prepare("SELECT count(*) FROM docs").unwrap();
        let portal = transaction.bind(&statement, &[]).unwrap();
        transaction.batch_execute(evict).unwrap();
        if another_change {
            dba.batch_execute("SELECT fluent_grant_role('ann', 'all_r')")
                .unwrap();
        }
        let result = transaction.query_portal(&portal, 0);
        let answer = result.as_ref().ok().map(|rows| rows[0].get::<_, i64>(0));
        assert_eq!(
            (sqlstate(result), answer),
            ("ok".to_owned(), Some(33)),
            "evicted between its plan and its start, another user's change: {another_change}"
        );
        transaction.rollback().unwrap();
    }
}

/// The same eviction while the plan is made (a function the planner runs
/// asks about 100 other users), then another user's grant committed with a
/// 34th row before the plan starts: the plan runs, with boss's unchanged
/// answers (the cache had taken the grant in as it started).
#[test]
fn a_function_query_whose_users_entry_was_evicted_while_planned_runs_after_another_users_change() {
    let db = fresh_database("gate_function_evicted_other");
    seed(&db);
    let mut reader = evicting_reader(&db);
    assert_eq!(count(&mut reader, "SELECT count(*) FROM docs"), 33);
    let (result, _) = try_change_and_write_while_planned(
        &db,
        reader,
        "SELECT count_evicting()",
        "SELECT fluent_grant_role('ann', 'all_r')",
    );
    assert_eq!(
        result.unwrap(),
        "34",
        "evicted while planned, then another user's grant"
    );
}
