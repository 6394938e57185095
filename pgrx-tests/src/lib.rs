//! Helpers for fluent's integration tests: real connections to a running
//! PostgreSQL with fluent installed, as the roles an application uses.
//!
//! The server is the throwaway cluster `.ci/run` starts; `FLUENT_TEST_HOST`
//! (a socket directory or host name) and `FLUENT_TEST_PORT` point at it.

pub mod bouncer;
pub mod citus;
pub mod tokens;

use std::sync::{Arc, Mutex};

use postgres::{Client, NoTls};

/// The login role applications connect as: trusted to choose the end user.
pub const AUTHENTICATOR: &str = "it_auth";
/// The unprivileged role queries run as after `SET ROLE`.
pub const APP: &str = "it_app";
/// A login role with the privileges of fluent_admin, as tests use: unlike
/// the authenticator, it may switch the acting user many times.
pub const TESTER: &str = "it_tester";

/// The test server: `FLUENT_TEST_HOST` and `FLUENT_TEST_PORT` (default 5432).
pub fn test_server() -> (String, u16) {
    let host = std::env::var("FLUENT_TEST_HOST")
        .expect("FLUENT_TEST_HOST names the test server (run via .ci/run)");
    let port = std::env::var("FLUENT_TEST_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    (host, port)
}

/// A PostgreSQL program: from `FLUENT_PG_BIN`, else Debian's PostgreSQL 15.
pub fn pg_bin(program: &str) -> std::path::PathBuf {
    let dir =
        std::env::var("FLUENT_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    std::path::PathBuf::from(dir).join(program)
}

fn config(database: &str, user: &str) -> postgres::Config {
    let (host, port) = test_server();
    let mut config = postgres::Config::new();
    config.host(&host).port(port).dbname(database).user(user);
    config
}

pub fn connect(database: &str, user: &str) -> Client {
    config(database, user)
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("connect to {database} as {user}: {e}"))
}

/// A connection with server settings given at connection time (`options`,
/// as in libpq: `-c name=value`).
pub fn connect_with_options(database: &str, user: &str, options: &str) -> Client {
    config(database, user)
        .options(options)
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("connect to {database} as {user}: {e}"))
}

/// A connection whose notices and warnings (severity and SQLSTATE: message)
/// are collected in the returned list.
pub fn connect_collecting_notices(database: &str, user: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let client = config(database, user)
        .notice_callback(move |n| {
            sink.lock().unwrap().push(format!(
                "{} {}: {}",
                n.severity(),
                n.code().code(),
                n.message()
            ))
        })
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("connect to {database} as {user}: {e}"));
    (client, notices)
}

/// Creates (or re-creates) the empty database `name` owned by `owner`.
/// With `FLUENT_TEST_SCHEMA` set, its sessions find that schema on their
/// search_path after `public` (also where a dump is restored into it).
pub fn empty_database(name: &str, owner: &str) {
    database_from(
        &mut connect("postgres", "postgres"),
        name,
        owner,
        "template1",
    );
}

/// Creates (or re-creates) the database `name` owned by `owner` as a copy of
/// `template`, with the search_path of `empty_database`.
fn database_from(admin: &mut Client, name: &str, owner: &str, template: &str) {
    recreate_database(admin, name, owner, template);
    if let Some(schema) = api_schema() {
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {name} SET search_path = \"$user\", public, {schema}"
            ))
            .unwrap();
    }
}

/// Drops the database `name` if it exists and makes it again, owned by
/// `owner`, as a copy of `template`, through `admin` (a superuser's
/// connection to another database of the server). The copy is of the
/// template's files (`STRATEGY FILE_COPY`), not of its pages through the WAL
/// (PostgreSQL's default): on a Citus node, which does not sync, a copy takes
/// 150 ms against 318 ms, and the Citus suite, which copies on three nodes
/// for every test, a third less time; on `.ci/run`'s other clusters (which
/// do not sync either) the suites take as long either way. A server that
/// syncs pays two checkpoints per copy instead.
pub fn recreate_database(admin: &mut Client, name: &str, owner: &str, template: &str) {
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name} OWNER {owner} TEMPLATE {template} STRATEGY FILE_COPY"),
    ] {
        admin.batch_execute(&statement).unwrap();
    }
}

/// Whether the server of `admin` has a database `name`.
pub fn database_exists(admin: &mut Client, name: &str) -> bool {
    admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .unwrap()
        .is_some()
}

/// Creates an empty database with fluent installed and the test roles in
/// place, and returns its name.
///
/// With `FLUENT_TEST_SCHEMA` set, the API goes in that schema (`CREATE
/// EXTENSION fluent SCHEMA ...`), which the database's sessions find on
/// their search_path (see `empty_database`): `.ci/run` runs the suite both
/// ways.
pub fn fresh_database(name: &str) -> String {
    let database = format!("fluent_it_{name}");
    let mut admin = connect("postgres", "postgres");
    let template = fluent_template(&mut admin);
    database_from(&mut admin, &database, "postgres", &template);
    let mut db = connect(&database, "postgres");
    ensure_role(&mut db, APP, false, &[]);
    ensure_role(&mut db, AUTHENTICATOR, true, &["fluent_authenticator", APP]);
    ensure_role(&mut db, TESTER, true, &["fluent_admin", APP]);
    database
}

/// The database `fresh_database` copies: fluent installed in an empty
/// database, in the API's schema when there is one. `CREATE EXTENSION
/// fluent` takes about a quarter of a second, a copy a fifth of that. One
/// template per installed build (the install script's and the library's
/// modification times name it) and schema.
fn fluent_template(admin: &mut Client) -> String {
    let build = installed_build(admin);
    let schema = api_schema();
    let template = format!(
        "fluent_template_{build}{}",
        schema
            .as_deref()
            .map(|s| format!("_{s}"))
            .unwrap_or_default()
    );
    make_template(admin, &template, |making| {
        let mut db = connect(making, "postgres");
        match &schema {
            None => db.batch_execute("CREATE EXTENSION fluent").unwrap(),
            Some(schema) => db
                .batch_execute(&format!(
                    "CREATE SCHEMA {schema};
                     GRANT USAGE ON SCHEMA {schema} TO PUBLIC;
                     CREATE EXTENSION fluent SCHEMA {schema};"
                ))
                .unwrap(),
        }
    });
    template
}

/// The build of fluent installed in the server of `admin` (a superuser's
/// connection): a short digest of its install script's and library's
/// modification times, which name the template databases made from it.
pub fn installed_build(admin: &mut Client) -> String {
    admin
        .query_one(
            "SELECT left(md5(string_agg((pg_stat_file(f)).modification::text, ',')), 12)
               FROM unnest(ARRAY[
                      (SELECT setting FROM pg_config WHERE name = 'SHAREDIR') || '/extension/fluent--'
                        || (SELECT default_version FROM pg_available_extensions WHERE name = 'fluent') || '.sql',
                      (SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR') || '/fluent-'
                        || (SELECT default_version FROM pg_available_extensions WHERE name = 'fluent') || '.so']) f",
            &[],
        )
        .unwrap()
        .get(0)
}

/// Makes the template database `template`, unless it exists, through
/// `admin` (a superuser's connection to another database of the server):
/// an empty database that `fill`, given its name, fills, then made a
/// template no session may connect to (one in it would stop the copies).
/// It is made under another name first, so that an interrupted run leaves
/// no half-made template. Tests of one binary may run at once (`cargo test`
/// without `--test-threads=1`): one makes it, the others wait.
pub fn make_template(admin: &mut Client, template: &str, fill: impl FnOnce(&str)) {
    admin
        .batch_execute("SELECT pg_advisory_lock(hashtext('fluent_template'))")
        .unwrap();
    if !database_exists(admin, template) {
        let making = format!("{template}_making");
        recreate_database(admin, &making, "postgres", "template1");
        fill(&making);
        freeze_template(admin, &making, template);
    }
    admin
        .batch_execute("SELECT pg_advisory_unlock(hashtext('fluent_template'))")
        .unwrap();
}

/// Makes the database `making` the template `template`: connections refused
/// from now on, those open ended, and renamed.
pub fn freeze_template(admin: &mut Client, making: &str, template: &str) {
    for statement in [
        format!("ALTER DATABASE {making} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"),
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{making}'"
        ),
        format!("ALTER DATABASE {making} RENAME TO {template}"),
    ] {
        admin.batch_execute(&statement).unwrap();
    }
}

/// The schema of fluent's API in the databases the tests create, when not
/// the default (`FLUENT_TEST_SCHEMA`).
pub fn api_schema() -> Option<String> {
    std::env::var("FLUENT_TEST_SCHEMA")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Creates the cluster-wide role `name` unless it exists (tests share the
/// cluster), and makes it a member of `member_of`.
pub fn ensure_role(client: &mut Client, name: &str, login: bool, member_of: &[&str]) {
    let login = if login { "LOGIN" } else { "NOLOGIN" };
    client
        .batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN CREATE ROLE {name} {login}; END IF;
             END $$;"
        ))
        .unwrap();
    for role in member_of {
        client
            .batch_execute(&format!("GRANT {role} TO {name}"))
            .unwrap();
    }
}

/// An application session: logs in as the authenticator, acts for `user`,
/// and drops to the unprivileged application role.
pub fn app_session(database: &str, user: &str) -> Client {
    let mut client = connect(database, AUTHENTICATOR);
    client
        .execute("SELECT fluent_set_user($1)", &[&user])
        .unwrap();
    client.batch_execute(&format!("SET ROLE {APP}")).unwrap();
    client
}

/// A test session that switches users: logs in as the tester (fluent_admin),
/// acts for `user`, and drops to the application role.
pub fn tester_session(database: &str, user: &str) -> Client {
    let mut client = connect(database, TESTER);
    client
        .execute("SELECT fluent_set_user($1)", &[&user])
        .unwrap();
    client.batch_execute(&format!("SET ROLE {APP}")).unwrap();
    client
}

/// The message of a failed statement (empty when it did not fail with a
/// server error).
pub fn error_message(result: &Result<impl Sized, postgres::Error>) -> String {
    result
        .as_ref()
        .err()
        .and_then(|e| e.as_db_error())
        .map(|e| e.message().to_owned())
        .unwrap_or_default()
}

/// Runs a PostgreSQL program as the `postgres` OS user when we are root
/// (initdb and the server refuse root), and asserts that it succeeded.
pub fn run_as_postgres(program: &std::path::Path, args: &[&str]) {
    let mut command = if bouncer::running_as_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    let output = command.args(args).output().expect("run a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(result: Result<impl Sized, postgres::Error>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => e
            .code()
            .map(|c| c.code().to_owned())
            .unwrap_or_else(|| format!("no sqlstate: {e}")),
    }
}

/// Polls `sql` (a count) until it is not 0: another session has reached the
/// point the test waits for (`what` says which, if it never does).
pub fn wait_until(client: &mut Client, sql: &str, what: &str) {
    let started = std::time::Instant::now();
    while client.query_one(sql, &[]).unwrap().get::<_, i64>(0) == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
