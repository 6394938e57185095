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
/// Citus cluster, with fluent installed and the test roles on every node;
/// returns its name. fluent is not set up for Citus yet
/// (`fluent_citus_setup()`), so tests can see what that does.
///
/// Each node's database is a copy of that node's database of a template
/// cluster, made once per installed build of fluent (`cluster_template`):
/// copies of one name on every node form a cluster like the template's, as
/// Citus finds a node's database by the coordinator's database name, and
/// each node's objects keep their OIDs in the copy.
pub fn database(name: &str) -> String {
    let database = format!("fluent_citus_{name}");
    let mut admins: Vec<Client> = (0..3)
        .map(|node| connect(node, "postgres", "postgres"))
        .collect();
    let template = cluster_template(&mut admins);
    for (node, admin) in admins.iter_mut().enumerate() {
        // The databases of earlier tests go: Citus keeps a maintenance
        // daemon in each, which checks for distributed deadlocks every two
        // seconds over connections of its own, and by the end of the suite
        // those would take a good part of the machine.
        let earlier: Vec<String> = admin
            .query(
                "SELECT datname FROM pg_database
                  WHERE datname LIKE 'fluent\\_citus\\_%' AND datname NOT LIKE 'fluent\\_citus\\_template\\_%'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        for name in earlier {
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .unwrap();
        }
        copy_database(admin, node, &database, &template);
    }
    database
}

/// Makes `name` on `node` (dropped first if it exists) a copy of `template`.
fn copy_database(admin: &mut Client, node: usize, name: &str, template: &str) {
    crate::recreate_database(admin, name, "postgres", template);
    // `CREATE EXTENSION citus` lists the database it is made in among Citus'
    // distributed objects, by OID: the copy lists itself, not the template
    // (which a node added later would be told to find).
    connect(node, name, "postgres")
        .batch_execute(
            "UPDATE pg_catalog.pg_dist_object SET objid = d.oid
               FROM pg_catalog.pg_database d
              WHERE classid = 'pg_catalog.pg_database'::regclass AND d.datname = current_database()",
        )
        .unwrap();
}

/// The template cluster's database, of one name on every node (`admins`:
/// the nodes' `postgres` databases, coordinator first): Citus in it, the
/// workers added to the coordinator's metadata, fluent installed (on the
/// coordinator, which Citus propagates) and the test roles granted on
/// every node. Adding the nodes and installing fluent take about two thirds
/// of a second a test, a copy on each node a tenth. Made once per Citus
/// version and installed build of fluent, on every node, or again on every
/// node if a node lacks it (an interrupted run).
fn cluster_template(admins: &mut [Client]) -> String {
    let (host, ports) = nodes();
    let build = crate::installed_build(&mut admins[0]);
    let template = format!("{}_cluster_{build}", citus_template_name(&mut admins[0]));
    admins[0]
        .batch_execute("SELECT pg_advisory_lock(hashtext('fluent_template'))")
        .unwrap();
    if !admins
        .iter_mut()
        .all(|admin| crate::database_exists(admin, &template))
    {
        let making = format!("{template}_making");
        for (node, admin) in admins.iter_mut().enumerate() {
            let citus = citus_template(admin, node);
            admin
                .batch_execute(&format!(
                    "DO $$ BEGIN
                       IF EXISTS (SELECT 1 FROM pg_database WHERE datname = '{template}') THEN
                         ALTER DATABASE {template} WITH IS_TEMPLATE false;
                       END IF;
                     END $$"
                ))
                .unwrap();
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {template} WITH (FORCE)"))
                .unwrap();
            copy_database(admin, node, &making, &citus);
            for (role, login) in [(APP, false), (TESTER, true), (AUTHENTICATOR, true)] {
                crate::ensure_role(admin, role, login, &[]);
            }
        }
        connect(0, &making, "postgres")
            .batch_execute(&format!(
                "SELECT citus_set_coordinator_host('{host}', {});
                 SELECT citus_add_node('{host}', {});
                 SELECT citus_add_node('{host}', {});
                 CREATE EXTENSION fluent;",
                ports[0], ports[1], ports[2]
            ))
            .unwrap();
        // The roles were made on each node, so Citus does not track them:
        // each node grants them itself.
        for node in 0..3 {
            connect(node, &making, "postgres")
                .batch_execute(&format!(
                    "SET citus.enable_ddl_propagation = off;
                     GRANT fluent_admin, {APP} TO {TESTER}; GRANT fluent_authenticator, {APP} TO {AUTHENTICATOR};
                     GRANT ALL ON SCHEMA public TO {APP}"
                ))
                .unwrap();
        }
        for admin in admins.iter_mut() {
            crate::freeze_template(admin, &making, &template);
        }
    }
    admins[0]
        .batch_execute("SELECT pg_advisory_unlock(hashtext('fluent_template'))")
        .unwrap();
    template
}

/// The name of `citus_template` for the Citus version the node of `admin`
/// has.
fn citus_template_name(admin: &mut Client) -> String {
    let version: String = admin
        .query_one(
            "SELECT default_version FROM pg_available_extensions WHERE name = 'citus'",
            &[],
        )
        .unwrap()
        .get(0);
    format!("fluent_citus_template_{}", version.replace(['.', '-'], "_"))
}

/// The database the template cluster's database copies on `node`: Citus
/// installed and nothing else.
/// `CREATE EXTENSION citus` takes about half a second a node, a copy a
/// tenth of that. Made once per node and Citus version (`make_template`: no
/// session may connect to it, and Citus starts a maintenance daemon in a
/// database where it is used).
fn citus_template(admin: &mut Client, node: usize) -> String {
    let template = citus_template_name(admin);
    crate::make_template(admin, &template, |making| {
        connect(node, making, "postgres")
            .batch_execute("CREATE EXTENSION citus")
            .unwrap();
    });
    template
}

/// A fourth node, started for one test and not in the cluster until the test
/// adds it (`citus_add_node`) to its database; stopped and removed when
/// dropped. Its socket is in the cluster's directory, its port the next after
/// the workers'.
pub struct AddedNode {
    dir: std::path::PathBuf,
    pub port: u16,
}

/// Citus is built for Debian's PostgreSQL 15 (`fluent_start_citus`).
const CITUS_BIN: &str = "/usr/lib/postgresql/15/bin";

fn run_as_postgres(tool: &str, args: &[&str]) {
    crate::run_as_postgres(&std::path::Path::new(CITUS_BIN).join(tool), args);
}

impl AddedNode {
    /// Starts the node, configured as `fluent_start_citus` configures the
    /// others, with `database` in it and Citus installed there, and lets
    /// Citus copy placements between the nodes' sockets in `database`.
    pub fn start(database: &str) -> AddedNode {
        let (host, ports) = nodes();
        let port = ports[2] + 1;
        let dir = std::path::Path::new(&host).join("node3");
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.to_str().unwrap();
        run_as_postgres(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        );
        let options = format!(
            "-p {port} -k {host} -c listen_addresses='' -c shared_preload_libraries=citus \
             -c session_preload_libraries=fluent_preload -c max_prepared_transactions=50 -c fsync=off"
        );
        let log = format!("{host}/node3.log");
        run_as_postgres(
            "pg_ctl",
            &["-D", data, "-l", &log, "-w", "-o", &options, "start"],
        );
        let node = AddedNode { dir, port };
        node.connect("postgres", "postgres")
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .unwrap();
        node.connect(database, "postgres")
            .batch_execute("CREATE EXTENSION citus")
            .unwrap();
        // Citus copies placements to a node through connections to
        // "localhost" unless told the node's own name; this cluster listens
        // on its socket only.
        let mut clients = vec![node.connect(database, "postgres")];
        clients.extend((0..3).map(|n| connect(n, database, "postgres")));
        for mut client in clients {
            client
                .batch_execute(&format!(
                    "SET citus.enable_ddl_propagation = off;
                     ALTER DATABASE {database} SET citus.local_hostname = '{host}'"
                ))
                .unwrap();
        }
        node
    }

    pub fn connect(&self, database: &str, user: &str) -> Client {
        let (host, _) = nodes();
        postgres::Config::new()
            .host(&host)
            .port(self.port)
            .dbname(database)
            .user(user)
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("connect to the added node, {database} as {user}: {e}"))
    }
}

impl Drop for AddedNode {
    fn drop(&mut self) {
        let data = self.dir.clone();
        let _ = std::panic::catch_unwind(|| {
            run_as_postgres(
                "pg_ctl",
                &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
            )
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
