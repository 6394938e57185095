//! A private PgBouncer in front of the test server, for testing fluent behind
//! a transaction pool.
//!
//! [`Bouncer::start`] runs one `pgbouncer` process for one test database in
//! `pool_mode = transaction` with a single server connection
//! (`default_pool_size = 1`, `max_db_connections = 1`): every client of the
//! same user is served, transaction by transaction, by the same PostgreSQL
//! backend, which is what makes state left behind by one client visible to
//! the next. [`Bouncer::start_pool`] gives a larger pool, for the load test
//! (`src/bin/loadtest.rs`). It listens only on a unix socket in a fresh temporary directory
//! (no TCP port, so it cannot collide with a system pgbouncer on 6432) and
//! forwards to `FLUENT_TEST_HOST` / `FLUENT_TEST_PORT`.
//!
//! Protocol caveat: the `postgres` crate sends every `query`/`execute` with
//! the extended protocol and a *named* prepared statement (Parse and Bind
//! in separate round trips). A transaction pool may hand those round trips
//! to different backends, and PgBouncer only tracks prepared statements
//! from 1.21 on (`max_prepared_statements`); Debian 12 ships 1.18. Talk to
//! the bouncer with `simple_query` / `batch_execute` (the simple protocol),
//! as an application behind such a pool would have to.
//! [`Bouncer::supports_prepared_statements`] tells whether the installed
//! version could do better.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls};

use crate::AUTHENTICATOR;

/// The port in the socket's name (`.s.PGSQL.<port>`). PgBouncer listens on
/// no TCP address here, and each instance has a directory of its own, so a
/// fixed number cannot collide with anything.
const PORT: u16 = 16432;

/// How long to wait for a started pgbouncer to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The OS user pgbouncer runs as when the tests run as root (it refuses to
/// run as root).
const RUN_AS: &str = "postgres";

/// A running pgbouncer; dropping it stops the process and removes its
/// directory.
pub struct Bouncer {
    child: Child,
    dir: PathBuf,
    database: String,
    version: String,
}

impl Bouncer {
    /// Starts a pgbouncer for `database` that lets in the authenticator
    /// role and `postgres`.
    pub fn start(database: &str) -> Bouncer {
        Bouncer::start_for(database, &[AUTHENTICATOR, "postgres"])
    }

    /// Starts a pgbouncer for `database` that lets in the given users
    /// (`auth_type = trust` still wants every user name listed).
    pub fn start_for(database: &str, users: &[&str]) -> Bouncer {
        Bouncer::start_pool(database, users, 1)
    }

    /// Starts a pgbouncer for `database` that lets in the given users, with
    /// `pool_size` server connections to the database in all.
    pub fn start_pool(database: &str, users: &[&str], pool_size: u32) -> Bouncer {
        let binary = find_pgbouncer();
        let version = pgbouncer_version(&binary);
        let (host, port) = crate::test_server();
        assert!(
            !host.contains(char::is_whitespace) && !database.contains(char::is_whitespace),
            "the bouncer config does not quote {host:?} or {database:?}"
        );

        let dir = fresh_dir();
        let userlist: String = users.iter().map(|u| format!("\"{u}\" \"\"\n")).collect();
        fs::write(dir.join("userlist.txt"), userlist).unwrap();
        let ini = format!(
            "[databases]
{database} = host={host} port={port} dbname={database}

[pgbouncer]
; unix socket only, in this instance's own directory
listen_addr =
listen_port = {PORT}
unix_socket_dir = {dir}
pidfile =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = transaction
; with one server connection, consecutive clients share one backend
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = {pool_size}
max_client_conn = 50
; not used in transaction mode anyway
server_reset_query =
; sent by some drivers (psql, JDBC); PgBouncer rejects unknown ones
ignore_startup_parameters = extra_float_digits
",
            dir = dir.display()
        );
        let config = dir.join("pgbouncer.ini");
        fs::write(&config, ini).unwrap();
        let log = fs::File::create(dir.join("pgbouncer.log")).unwrap();

        let mut command = Command::new(&binary);
        if running_as_root() {
            // pgbouncer's own -u switches user after reading its config, so
            // the child we kill and wait for is pgbouncer itself (a runuser
            // in between would not pass a SIGKILL on).
            let status = Command::new("chown")
                .arg("-R")
                .arg(format!("{RUN_AS}:"))
                .arg(&dir)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown {RUN_AS} {}", dir.display());
            command.arg("-u").arg(RUN_AS);
        }
        let child = command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));

        let mut bouncer = Bouncer {
            child,
            dir,
            database: database.to_owned(),
            version,
        };
        bouncer.wait_until_listening();
        bouncer
    }

    fn wait_until_listening(&mut self) {
        let socket = self.socket_dir().join(format!(".s.PGSQL.{PORT}"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("pgbouncer exited at start ({status}):\n{}", self.log());
            }
            // A bare accept opens no server connection, so the one the pool
            // has is left for the test.
            if UnixStream::connect(&socket).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "pgbouncer did not listen on {} within {START_TIMEOUT:?}:\n{}",
                    socket.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new client connection through the bouncer to its database.
    pub fn connect(&self, user: &str) -> Client {
        postgres::Config::new()
            .host_path(self.socket_dir())
            .port(PORT)
            .dbname(&self.database)
            .user(user)
            .connect_timeout(Duration::from_secs(10))
            .connect(NoTls)
            .unwrap_or_else(|e| {
                panic!(
                    "connect through pgbouncer to {} as {user}: {e}\n{}",
                    self.database,
                    self.log()
                )
            })
    }

    /// The directory holding the bouncer's socket, config and log.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The port in the socket's name.
    pub fn port(&self) -> u16 {
        PORT
    }

    /// The installed version, e.g. `1.18.0`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether this pgbouncer can track named prepared statements in
    /// transaction mode (`max_prepared_statements`, 1.21 and later). The
    /// config above does not turn it on either way.
    pub fn supports_prepared_statements(&self) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        (major, minor) >= (1, 21)
    }

    /// Everything pgbouncer has logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(self.dir.join("pgbouncer.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("pgbouncer log ({}):\n{}", self.dir.display(), self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `FLUENT_PGBOUNCER`, or `pgbouncer` on the PATH or in the sbin
/// directories Debian installs it to (not always on a test's PATH).
fn find_pgbouncer() -> PathBuf {
    if let Some(path) = std::env::var_os("FLUENT_PGBOUNCER") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join("pgbouncer"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "pgbouncer not found on the PATH or in /usr/sbin: install Debian's \
                 `pgbouncer` package (.ci/setup does), or set FLUENT_PGBOUNCER to the binary"
            )
        })
}

fn pgbouncer_version(binary: &Path) -> String {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("run {} --version: {e}", binary.display()));
    let text = String::from_utf8_lossy(&output.stdout);
    // "PgBouncer 1.18.0" on the first line.
    text.lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("unexpected `pgbouncer --version` output: {text:?}"))
}

/// Whether the tests run as root (then servers run as `postgres`).
pub fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A new, empty directory only its owner can enter.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "fluent-bouncer-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
}
