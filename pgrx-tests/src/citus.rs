//! The Citus cluster of `pgrx-tests/tests/citus.rs`: a coordinator and two
//! workers that `.ci/run` starts (`fluent_start_citus` in `.ci/lib.sh`),
//! their sockets in `FLUENT_CITUS_HOST`, the coordinator on
//! `FLUENT_CITUS_PORT` and the workers on the next two ports.
//!
//! [`database`] makes one database per test on every node, with Citus in
//! it, the workers added to the coordinator's metadata, fluent installed (on
//! the coordinator, which Citus propagates) and the test roles on every node.

use std::sync::{Arc, Mutex};

use postgres::{Client, NoTls};

use crate::{APP, AUTHENTICATOR, TESTER};

/// The socket directory and the ports of the coordinator and the workers.
pub fn nodes() -> (String, [u16; 3]) {
    let host = std::env::var("FLUENT_CITUS_HOST")
        .expect("FLUENT_CITUS_HOST names the Citus cluster's socket directory (run via .ci/run)");
    let port: u16 = std::env::var("FLUENT_CITUS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("FLUENT_CITUS_PORT gives the coordinator's port");
    (host, [port, port + 1, port + 2])
}

fn config(node: usize, database: &str, user: &str) -> postgres::Config {
    let (host, ports) = nodes();
    let mut config = postgres::Config::new();
    config
        .host(&host)
        .port(ports[node])
        .dbname(database)
        .user(user);
    config
}

/// A connection to node `node` (0: the coordinator, 1 and 2: the workers).
pub fn connect(node: usize, database: &str, user: &str) -> Client {
    config(node, database, user)
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("connect to node {node}, {database} as {user}: {e}"))
}

/// A connection to node `node` whose notices and log messages (their text)
/// are collected in the returned list.
pub fn connect_collecting_notices(
    node: usize,
    database: &str,
    user: &str,
) -> (Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    let client = config(node, database, user)
        .notice_callback(move |n| sink.lock().unwrap().push(n.message().to_owned()))
        .connect(NoTls)
        .unwrap_or_else(|e| panic!("connect to node {node}, {database} as {user}: {e}"));
    (client, notices)
}

/// A fresh database `fluent_citus_<name>` on every node, joined into one
/// Citus cluster, with fluent installed; returns its name. fluent is not
/// set up for Citus yet (`fluent_citus_setup()`), so tests can see what
/// that does.
pub fn database(name: &str) -> String {
    let database = format!("fluent_citus_{name}");
    let (host, ports) = nodes();
    for node in 0..3 {
        let mut admin = connect(node, "postgres", "postgres");
        for statement in [
            format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
            format!("CREATE DATABASE {database}"),
        ] {
            admin.batch_execute(&statement).unwrap();
        }
        for (role, login) in [
            (APP, "NOLOGIN"),
            (TESTER, "LOGIN"),
            (AUTHENTICATOR, "LOGIN"),
        ] {
            admin
                .batch_execute(&format!(
                    "DO $$ BEGIN
                       IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} {login}; END IF;
                     END $$;"
                ))
                .unwrap();
        }
        connect(node, &database, "postgres")
            .batch_execute("CREATE EXTENSION citus")
            .unwrap();
    }
    let mut coordinator = connect(0, &database, "postgres");
    coordinator
        .batch_execute(&format!(
            "SELECT citus_set_coordinator_host('{host}', {});
             SELECT citus_add_node('{host}', {});
             SELECT citus_add_node('{host}', {});
             CREATE EXTENSION fluent;",
            ports[0], ports[1], ports[2]
        ))
        .unwrap();
    // The roles were made on each node, so Citus does not track them: each
    // node grants them itself.
    for node in 0..3 {
        connect(node, &database, "postgres")
            .batch_execute(&format!(
                "SET citus.enable_ddl_propagation = off;
                 GRANT fluent_admin, {APP} TO {TESTER}; GRANT fluent_authenticator, {APP} TO {AUTHENTICATOR};
                 GRANT ALL ON SCHEMA public TO {APP}"
            ))
            .unwrap();
    }
    database
}
