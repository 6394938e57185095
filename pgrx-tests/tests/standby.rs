//! fluent on a hot standby: a streaming replica of the test cluster, made
//! with `pg_basebackup -R` and started by the test. Checks, identities and
//! protected reads work there (loads only read); administration fails with
//! 25006 and changes nothing; a change made on the primary reaches the
//! replica's sessions when it is replayed.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use fluent_pgrx_tests::bouncer::running_as_root;
use fluent_pgrx_tests::{
    api_schema, connect, fresh_database, pg_bin, test_server, wait_until, APP, AUTHENTICATOR,
};
use postgres::{Client, NoTls};

/// Runs PostgreSQL tool `tool` as the `postgres` OS user when we are root.
fn run_as_postgres(tool: &str, args: &[&str]) {
    fluent_pgrx_tests::run_as_postgres(&pg_bin(tool), args);
}

/// A replica of the test cluster, stopped and removed when dropped.
struct Replica {
    dir: PathBuf,
    port: u16,
}

impl Replica {
    fn start() -> Replica {
        let (host, primary_port) = test_server();
        let port = primary_port + 100;
        let primary_port = primary_port.to_string();
        let dir = std::env::temp_dir().join(format!("fluent-replica-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if running_as_root() {
            assert!(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        let data = dir.join("data");
        run_as_postgres(
            "pg_basebackup",
            &[
                "-h",
                &host,
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                // A spread checkpoint can keep the backup waiting for minutes.
                "--checkpoint=fast",
            ],
        );
        // Feedback: the primary keeps the row versions the replica's
        // snapshots need (a session holding one across a reinstall below),
        // so that replay never has to cancel it or wait for it (a CI run
        // lost that session to a recovery conflict).
        let options = format!(
            "-p {port} -k {} -c listen_addresses='' -c hot_standby=on \
             -c hot_standby_feedback=on -c wal_receiver_status_interval=1",
            dir.display()
        );
        run_as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                dir.join("server.log").to_str().unwrap(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
        Replica { dir, port }
    }

    fn connect(&self, database: &str, user: &str) -> Client {
        postgres::Config::new()
            .host(self.dir.to_str().unwrap())
            .port(self.port)
            .dbname(database)
            .user(user)
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("connect to the replica: {e}"))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::panic::catch_unwind(|| {
            run_as_postgres(
                "pg_ctl",
                &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
            )
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until the replica has replayed everything the primary wrote so far.
fn caught_up(primary: &mut Client, replica: &mut Client) {
    let lsn: String = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);
    let start = Instant::now();
    while !replica
        .query_one(
            "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
            &[&lsn],
        )
        .unwrap()
        .get::<_, bool>(0)
    {
        // Replay may wait up to `max_standby_streaming_delay` (30 s) for a
        // replica session it conflicts with, before cancelling it.
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the replica did not catch up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn scope(client: &mut Client) -> String {
    client
        .query_one("SELECT fluent_scope('notes', 'read')", &[])
        .unwrap()
        .get(0)
}

#[test]
fn checks_and_protected_reads_work_on_a_replica_and_follow_the_primary() {
    let db = fresh_database("standby");
    let mut primary = connect(&db, "postgres");
    primary
        .batch_execute(&format!(
            "SELECT fluent_create_module('notes');
             SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'own');
             SELECT fluent_create_user('ann'), fluent_grant_role('ann', 'reader');
             CREATE TABLE notes (id int PRIMARY KEY, owner text);
             INSERT INTO notes VALUES (1, 'ann'), (2, 'bob'), (3, 'bob');
             GRANT SELECT ON notes TO {APP};
             SELECT fluent_protect('notes', 'notes', 'owner');
             CHECKPOINT;"
        ))
        .unwrap();
    let replica = Replica::start();

    // The application's flow, on the replica.
    let mut app = replica.connect(&db, AUTHENTICATOR);
    app.batch_execute(&format!("SELECT fluent_set_user('ann'); SET ROLE {APP}"))
        .unwrap();
    assert_eq!(scope(&mut app), "own");
    let seen: i64 = app
        .query_one("SELECT count(*) FROM notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, 1, "ann's note only");

    // Administration is for the primary: 25006, nothing changed.
    let mut dba = replica.connect(&db, "postgres");
    for statement in [
        "SELECT fluent_grant_role('ann', 'reader')",
        "SELECT fluent_protect('notes', 'notes', 'owner')",
        "SELECT fluent_set_permission('reader', 'notes', 'read', 'all')",
        "SELECT fluent_create_user('zoe')",
        "SELECT fluent_create_workspace('other')",
    ] {
        let error = dba.batch_execute(statement).unwrap_err();
        let db_error = error.as_db_error().expect("a database error");
        assert_eq!(db_error.code().code(), "25006", "{statement}");
        assert!(
            db_error.message().contains("hot standby"),
            "{statement}: {}",
            db_error.message()
        );
    }
    let users: i64 = dba
        .query_one("SELECT count(*) FROM fluent.users", &[])
        .unwrap()
        .get(0);
    assert_eq!(users, 1, "nothing changed");

    // A change on the primary reaches the replica's session once replayed.
    primary
        .batch_execute("SELECT fluent_set_permission('reader', 'notes', 'read', 'all')")
        .unwrap();
    caught_up(&mut primary, &mut dba);
    assert_eq!(scope(&mut app), "all");
    let seen: i64 = app
        .query_one("SELECT count(*) FROM notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, 3);
    primary
        .batch_execute("SELECT fluent_revoke_role('ann', 'reader')")
        .unwrap();
    caught_up(&mut primary, &mut dba);
    assert_eq!(scope(&mut app), "none");

    // A replica session whose snapshot predates a reinstall replayed from
    // the primary reads the new catalog as empty (its answers are that
    // snapshot's); its next transaction has the new catalog's. On a replica
    // the look at the change log names the statement's recovery snapshot as
    // seen: an empty look must still count as no look, as on the primary
    // (before, the session kept answering from the empty catalog).
    app.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();
    // The primary holds back cleanup for that snapshot once the replica's
    // feedback names it.
    wait_until(
        &mut primary,
        "SELECT count(*) FROM pg_stat_replication WHERE backend_xmin IS NOT NULL",
        "the replica never reported its snapshot",
    );
    let create = match api_schema() {
        Some(schema) => format!("CREATE EXTENSION fluent SCHEMA {schema}"),
        None => "CREATE EXTENSION fluent".to_owned(),
    };
    primary
        .batch_execute(&format!(
            "DROP EXTENSION fluent CASCADE; {create};
             SELECT fluent_create_module('notes');
             SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'all');
             SELECT fluent_create_user('ann'), fluent_grant_role('ann', 'reader');
             SELECT fluent_protect('notes', 'notes', 'owner');"
        ))
        .unwrap();
    caught_up(&mut primary, &mut dba);
    let count = |client: &mut Client| -> i64 {
        client
            .query_one("SELECT count(*) FROM notes", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(
        count(&mut app),
        0,
        "the snapshot sees the new catalog empty"
    );
    app.batch_execute("COMMIT").unwrap();
    assert_eq!(count(&mut app), 3, "the next transaction: the new catalog");
    assert_eq!(scope(&mut app), "all");
}
