//! The load test of `.ci/bench` (`FLUENT_BENCH_PART=load`): many sessions
//! through PgBouncer in transaction mode, each transaction choosing an end
//! user and reading and writing a protected table, while another session
//! changes grants, roles and teams; every answer is checked against the
//! catalog as committed, and the throughput is compared with the same
//! workload written by hand. fluent runs it twice per round: choosing the
//! user as the hand-written side does, and choosing then handing over to
//! the application role.
//!
//! The database (made by `.ci/bench`): 10,000 users `u0`..`u9999`, each
//! holding `clerk` (read and write `own`); the first 200 ("churn users")
//! also lead a team `t<k>` of `u<k+1>`..`u<k+5>`, and the administrator
//! grants and revokes `clerk`, `lead` (read `team`), `auditor` (read `all`,
//! write nothing) and `floater` to and from them, edits `floater`'s
//! permissions, and adds and removes `u<k+6>` to and from `t<k>`.
//! `items` (1,000,000 rows, `owner = 'u' || id % 10000`) is protected by
//! fluent; `items_plain` is a copy with the same indexes and the policy
//! `owner = current_setting('app.user', true)`, the hand-written way.
//!
//! Checking against the committed catalog: every change of the
//! administrator bumps `load_version` in its own transaction, and this
//! program records what the catalog says at each version before it commits.
//! A client transaction reads the version before its queries and again after
//! them (`v0`, `v1`), in statements of their own. Its answers must be those
//! of one catalog version in `[v0, v1]`: everything committed before a
//! statement starts must be seen by it. An answer that only an older version
//! gives is stale; one that no version gives is wrong.
//!
//! Configuration (environment): `FLUENT_TEST_HOST`, `FLUENT_TEST_PORT` (the
//! server), `FLUENT_LOAD_DATABASE` (`load`), `FLUENT_LOAD_CLIENTS` (16),
//! `FLUENT_LOAD_POOL` (server connections per side, 8), `FLUENT_LOAD_SECONDS`
//! (per phase, 10), `FLUENT_LOAD_ROUNDS` (3), `FLUENT_LOAD_ADMIN_PAUSE_MS`
//! (between two changes, 20). Exits with 1 if any answer was stale or wrong
//! or any error was not one the workload provokes (after stopping its
//! bouncers).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fluent_pgrx_tests::bouncer::Bouncer;
use fluent_pgrx_tests::connect;
use postgres::{Client, SimpleQueryMessage};

const USERS: i64 = 10_000;
const ROWS: i64 = 1_000_000;
/// Users whose roles and teams the administrator changes.
const CHURN: i64 = 200;
/// Rows per read: a window of ids that holds one of the user's own rows.
const WINDOW: i64 = 100;
/// One transaction in this many tries to insert a row for someone else,
/// which the policy refuses (42501): errors on purpose, to show they leave
/// nothing behind on the pooled connection.
const PROVOKE_EVERY: u64 = 50;

const FLUENT_LOGIN: &str = "load_web";
const PLAIN_LOGIN: &str = "load_plain";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: enough randomness for choosing users and rows.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n as u64) as i64
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scope {
    None,
    Own,
    Team,
    All,
}

impl Scope {
    fn sql(self) -> &'static str {
        match self {
            Scope::None => "none",
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::All => "all",
        }
    }
}

/// The roles, as bits of a user's holdings: name, read scope, write scope
/// (`floater`'s are in the history instead).
const CLERK: u8 = 1;
const FLOATER: u8 = 8;
const ROLES: [(u8, &str, Scope, Scope); 4] = [
    (CLERK, "clerk", Scope::Own, Scope::Own),
    (2, "lead", Scope::Team, Scope::Own),
    (4, "auditor", Scope::All, Scope::None),
    (FLOATER, "floater", Scope::None, Scope::None),
];

/// What the catalog said from each version on: entries `(version, value)`
/// in version order, the first at the version the run started from.
struct History {
    /// The version the run started from.
    start: u64,
    /// Per churn user, the roles held.
    held: Vec<Vec<(u64, u8)>>,
    /// `floater`'s read and write scopes.
    floater: Vec<(u64, (Scope, Scope))>,
    /// Per team `t<k>`, whether `u<k+6>` is a member.
    extra_member: Vec<Vec<(u64, bool)>>,
    /// The change each version made, for the failure messages.
    changes: Vec<(u64, String)>,
}

/// The value at `version`, or `None` before the first entry.
fn at<T: Copy>(entries: &[(u64, T)], version: u64) -> Option<T> {
    let i = entries.partition_point(|(v, _)| *v <= version);
    (i > 0).then(|| entries[i - 1].1)
}

/// What one user reaches at one catalog version.
struct Reach {
    user: i64,
    read: Scope,
    write: Scope,
    team: Vec<i64>,
}

impl Reach {
    fn reaches(&self, owner: i64, scope: Scope) -> bool {
        match scope {
            Scope::None => false,
            Scope::Own => owner == self.user,
            Scope::Team => owner == self.user || self.team.contains(&owner),
            Scope::All => true,
        }
    }
}

impl History {
    /// The catalog as committed now, read in one snapshot: the holdings of
    /// the churn users, `floater`'s scopes and the teams' extra members
    /// (a run starts from whatever an earlier run left).
    fn read(client: &mut Client) -> History {
        let statements = run(
            client,
            "BEGIN ISOLATION LEVEL REPEATABLE READ;
             SELECT v FROM load_version;
             SELECT substr(u.user_key, 2) || ' ' || r.name
               FROM fluent.grants g JOIN fluent.users u USING (user_id) JOIN fluent.roles r USING (role_id)
              WHERE u.user_key ~ '^u[0-9]{1,3}$';
             SELECT a.name || ' ' || p.scope
               FROM fluent.permissions p JOIN fluent.roles r USING (role_id) JOIN fluent.actions a USING (action_id)
              WHERE r.name = 'floater';
             SELECT substr(t.name, 2)
               FROM fluent.team_members m JOIN fluent.teams t USING (team_id) JOIN fluent.users u USING (user_id)
              WHERE t.name ~ '^t[0-9]+$' AND u.user_key = 'u' || (substr(t.name, 2)::int + 6);
             COMMIT",
        )
        .unwrap_or_else(|e| panic!("read the catalog: {e}"));
        let version = version_of(&statements[..2]);
        let mut held = vec![0u8; CHURN as usize];
        for row in &statements[2] {
            let (user, role) = row.split_once(' ').unwrap();
            let user: usize = user.parse().unwrap();
            if let (Some(h), Some((bit, ..))) = (
                held.get_mut(user),
                ROLES.iter().find(|(_, name, ..)| *name == role),
            ) {
                *h |= bit;
            }
        }
        let scope = |action: &str| {
            statements[3]
                .iter()
                .filter_map(|row| row.split_once(' '))
                .find(|(a, _)| *a == action)
                .map_or(Scope::None, |(_, scope)| {
                    [Scope::None, Scope::Own, Scope::Team, Scope::All]
                        .into_iter()
                        .find(|s| s.sql() == scope)
                        .unwrap_or_else(|| panic!("scope {scope}"))
                })
        };
        let mut extra_member = vec![false; CHURN as usize];
        for row in &statements[4] {
            if let Some(member) = extra_member.get_mut(row.parse::<usize>().unwrap()) {
                *member = true;
            }
        }
        History {
            start: version,
            held: held.into_iter().map(|h| vec![(version, h)]).collect(),
            floater: vec![(version, (scope("read"), scope("write")))],
            extra_member: extra_member
                .into_iter()
                .map(|m| vec![(version, m)])
                .collect(),
            changes: Vec::new(),
        }
    }

    /// What `user` reaches through fluent at `version` (unknown before the
    /// run started).
    fn fluent_reach(&self, user: i64, version: u64) -> Option<Reach> {
        if version < self.start {
            return None;
        }
        if user >= CHURN {
            return Some(Reach {
                user,
                read: Scope::Own,
                write: Scope::Own,
                team: Vec::new(),
            });
        }
        let k = user as usize;
        let held = at(&self.held[k], version)?;
        let floater = at(&self.floater, version)?;
        let (mut read, mut write) = (Scope::None, Scope::None);
        for (bit, _, r, w) in ROLES {
            if held & bit != 0 {
                let (r, w) = if bit == FLOATER { floater } else { (r, w) };
                read = read.max(r);
                write = write.max(w);
            }
        }
        let mut team: Vec<i64> = (user + 1..=user + 5).collect();
        if at(&self.extra_member[k], version)? {
            team.push(user + 6);
        }
        Some(Reach {
            user,
            read,
            write,
            team,
        })
    }
}

/// The rows a client reads and the row it updates.
struct Request {
    user: i64,
    from: i64,
    target: i64,
}

/// What the database answered.
#[derive(PartialEq, Debug)]
struct Answer {
    read: Vec<i64>,
    updated: bool,
}

impl Answer {
    /// The rows read as ranges, and whether the row was updated.
    fn brief(&self) -> String {
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for &id in &self.read {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == id => *last = id,
                _ => ranges.push((id, id)),
            }
        }
        let read: Vec<String> = ranges
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        format!("read [{}], updated {}", read.join(", "), self.updated)
    }
}

fn expected(reach: &Reach, request: &Request) -> Answer {
    let owner = |id: i64| id % USERS;
    Answer {
        read: (request.from..request.from + WINDOW)
            .filter(|&id| (1..=ROWS).contains(&id) && reach.reaches(owner(id), reach.read))
            .collect(),
        // UPDATE ... WHERE id = ... reads the row too: both policies apply.
        updated: reach.reaches(owner(request.target), reach.read)
            && reach.reaches(owner(request.target), reach.write),
    }
}

/// How a phase's transactions choose their user. `Fluent` is the
/// workload of the hand-written side with fluent in its place: the login
/// role chooses and queries. `HandingOver` also hands over to the
/// application role (`SET LOCAL ROLE app`, README "The trust model"), which
/// drops the authenticator's own privileges for the rest of the transaction.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    ByHand,
    Fluent,
    HandingOver,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::ByHand => "by hand",
            Side::Fluent => "fluent",
            Side::HandingOver => "+hand-over",
        }
    }

    fn is_fluent(self) -> bool {
        self != Side::ByHand
    }

    fn login(self) -> &'static str {
        if self.is_fluent() {
            FLUENT_LOGIN
        } else {
            PLAIN_LOGIN
        }
    }

    /// The table it reads and writes.
    fn table(self) -> &'static str {
        if self.is_fluent() {
            "items"
        } else {
            "items_plain"
        }
    }

    /// The statements that choose the user (`{user}`) in a transaction.
    fn choose(self) -> &'static str {
        match self {
            Side::ByHand => "SELECT set_config('app.user', 'u{user}', true)",
            Side::Fluent => "SELECT fluent_set_user('u{user}', true)",
            Side::HandingOver => "SELECT fluent_set_user('u{user}', true); SET LOCAL ROLE app",
        }
    }
}

#[derive(Default)]
struct Counts {
    transactions: AtomicU64,
    checked: AtomicU64,
    stale: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
    provoked: AtomicU64,
}

/// The first column of each statement's rows.
fn run(client: &mut Client, sql: &str) -> Result<Vec<Vec<String>>, postgres::Error> {
    let mut statements = Vec::new();
    let mut rows = Vec::new();
    for message in client.simple_query(sql)? {
        match message {
            SimpleQueryMessage::Row(row) => rows.push(row.get(0).unwrap_or_default().to_owned()),
            SimpleQueryMessage::CommandComplete(_) => statements.push(std::mem::take(&mut rows)),
            _ => {}
        }
    }
    Ok(statements)
}

fn version_of(statements: &[Vec<String>]) -> u64 {
    statements
        .last()
        .and_then(|rows| rows.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {statements:?}"))
}

/// Messages about the first few failures, printed at the end.
static FAILURES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(failure: String) {
    let mut failures = FAILURES.lock().unwrap();
    if failures.len() < 10 {
        failures.push(failure);
    }
}

/// One client session: transactions until `deadline`.
fn client_loop(
    side: Side,
    mut client: Client,
    seed: u64,
    deadline: Instant,
    history: &RwLock<History>,
    counts: &Counts,
) {
    let mut rng = Rng(seed);
    let table = side.table();
    let mut attempt = 0u64;
    while Instant::now() < deadline {
        attempt += 1;
        // A churn user one time in four, anyone otherwise.
        let user = if rng.below(4) == 0 {
            rng.below(CHURN)
        } else {
            rng.below(USERS)
        };
        let begin = format!(
            "BEGIN; {}",
            side.choose().replace("{user}", &user.to_string())
        );
        if attempt.is_multiple_of(PROVOKE_EVERY) {
            let sql = format!(
                "{begin}; INSERT INTO {table} VALUES ({}, 'nobody', 'refused')",
                ROWS + 1 + rng.below(ROWS)
            );
            match run(&mut client, &sql) {
                Err(e) if e.code().map(|c| c.code()) == Some("42501") => {
                    counts.provoked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    note(format!("{sql}: {e}"));
                }
                Ok(_) => {
                    counts.wrong.fetch_add(1, Ordering::Relaxed);
                    note(format!("{sql}: not refused"));
                }
            }
            run(&mut client, "ROLLBACK").expect("ROLLBACK");
            counts.transactions.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // One of the user's own rows, somewhere in the window; the row
        // updated is that one or one of the next seven (team members, the
        // member who comes and goes, someone else).
        let own = user + USERS * (rng.below(ROWS / USERS) + i64::from(user == 0));
        let from = (own - rng.below(WINDOW)).max(1);
        let step = rng.below(8);
        let target = if own + step <= ROWS {
            own + step
        } else {
            own - step
        };
        let request = Request { user, from, target };
        let result = (|| {
            let v0 = version_of(&run(
                &mut client,
                &format!("{begin}; SELECT v FROM load_version"),
            )?);
            let read = run(
                &mut client,
                &format!(
                    "SELECT id FROM {table} WHERE id BETWEEN {from} AND {} ORDER BY id",
                    from + WINDOW - 1
                ),
            )?;
            let write = run(
                &mut client,
                &format!(
                    "UPDATE {table} SET body = md5(random()::text) WHERE id = {target} RETURNING id; \
                     SELECT v FROM load_version; COMMIT"
                ),
            )?;
            let answer = Answer {
                read: read[0].iter().map(|id| id.parse().unwrap()).collect(),
                updated: !write[0].is_empty(),
            };
            Ok::<_, postgres::Error>((v0, version_of(&write[..2]), answer))
        })();
        match result {
            Ok((v0, v1, answer)) => {
                counts.transactions.fetch_add(1, Ordering::Relaxed);
                counts.checked.fetch_add(1, Ordering::Relaxed);
                check(side, &request, v0, v1, &answer, history, counts);
            }
            Err(e) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                note(format!("{} transaction of u{user}: {e}", side.name()));
                let _ = run(&mut client, "ROLLBACK");
            }
        }
    }
}

/// Counts the answer as right, stale or wrong (see the module comment).
fn check(
    side: Side,
    request: &Request,
    v0: u64,
    v1: u64,
    answer: &Answer,
    history: &RwLock<History>,
    counts: &Counts,
) {
    let history = history.read().unwrap();
    let expected_at = |version: u64| match side {
        Side::Fluent | Side::HandingOver => history
            .fluent_reach(request.user, version)
            .map(|reach| expected(&reach, request)),
        Side::ByHand => Some(expected(
            &Reach {
                user: request.user,
                read: Scope::Own,
                write: Scope::Own,
                team: Vec::new(),
            },
            request,
        )),
    };
    // The read and the update are statements of their own: each sees one
    // version, the update the read's or a later one.
    let read_at = |v: u64| expected_at(v).is_some_and(|e| e.read == answer.read);
    let update_at = |v: u64| expected_at(v).is_some_and(|e| e.updated == answer.updated);
    if (v0..=v1)
        .find(|&v| read_at(v))
        .is_some_and(|read| (read..=v1).any(update_at))
    {
        return;
    }
    // Stale: each statement gave the answer of some committed version, one
    // of them older than what was committed before it started.
    let newest = |at: &dyn Fn(u64) -> bool| (history.start..=v1).rev().find(|&v| at(v));
    let (read, update) = (newest(&read_at), newest(&update_at));
    let stale = read.zip(update).map(|(r, u)| r.min(u));
    let what = match (read, update) {
        (Some(r), Some(u)) => {
            counts.stale.fetch_add(1, Ordering::Relaxed);
            format!("stale (the read of version {r}, the update of version {u})")
        }
        _ => {
            counts.wrong.fetch_add(1, Ordering::Relaxed);
            "wrong".to_owned()
        }
    };
    let since = stale.unwrap_or(v0);
    let changes: Vec<&str> = history
        .changes
        .iter()
        .filter(|(v, _)| (since + 1..=v1).contains(v))
        .map(|(_, c)| c.as_str())
        .collect();
    note(format!(
        "{} answer for u{} between versions {v0} and {v1}, rows {}.. and row {}: {what}: {}, expected {}; changes since: {changes:?}",
        side.name(),
        request.user,
        request.from,
        request.target,
        answer.brief(),
        expected_at(v1).map_or("?".into(), |a| a.brief()),
    ));
}

/// Records one change in the history at its version.
type Record = Box<dyn FnOnce(&mut History, u64)>;

/// The administrator: one change per transaction, each bumping the version,
/// until `stop`. Returns the number of changes committed.
fn admin_loop(
    database: &str,
    stop: &AtomicBool,
    history: &RwLock<History>,
    pause: Duration,
) -> u64 {
    let mut client = connect(database, "postgres");
    let mut rng = Rng(0x5eed);
    let mut changes = 0;
    while !stop.load(Ordering::Relaxed) {
        let k = rng.below(CHURN);
        let kind = rng.below(20);
        let (change, record): (String, Record) = if kind < 10 {
            let (bit, role, _, _) = ROLES[rng.below(4) as usize];
            let held = history.read().unwrap().held[k as usize].last().unwrap().1;
            let (sql, now) = if held & bit != 0 {
                (format!("fluent_revoke_role('u{k}', '{role}')"), held & !bit)
            } else {
                (format!("fluent_grant_role('u{k}', '{role}')"), held | bit)
            };
            (sql, Box::new(move |h, v| h.held[k as usize].push((v, now))))
        } else if kind < 15 {
            let (read, write) = history.read().unwrap().floater.last().unwrap().1;
            let (action, scopes) = if kind < 12 {
                let scope =
                    [Scope::None, Scope::Own, Scope::Team, Scope::All][rng.below(4) as usize];
                ("read", (scope, write))
            } else {
                let scope = [Scope::None, Scope::Own, Scope::Team][rng.below(3) as usize];
                ("write", (read, scope))
            };
            let scope = if action == "read" { scopes.0 } else { scopes.1 };
            (
                format!(
                    "fluent_set_permission('floater', 'items', '{action}', '{}')",
                    scope.sql()
                ),
                Box::new(move |h, v| h.floater.push((v, scopes))),
            )
        } else {
            let member = history.read().unwrap().extra_member[k as usize]
                .last()
                .unwrap()
                .1;
            let sql = if member {
                format!("fluent_remove_team_member('t{k}', 'u{}')", k + 6)
            } else {
                format!("fluent_add_team_member('t{k}', 'u{}')", k + 6)
            };
            (
                sql,
                Box::new(move |h, v| h.extra_member[k as usize].push((v, !member))),
            )
        };
        let statements = run(
            &mut client,
            &format!("BEGIN; SELECT {change}; UPDATE load_version SET v = v + 1 RETURNING v"),
        )
        .unwrap_or_else(|e| panic!("{change}: {e}"));
        // Recorded before the commit makes the version visible.
        let version = version_of(&statements);
        let mut history = history.write().unwrap();
        record(&mut history, version);
        history.changes.push((version, change));
        drop(history);
        run(&mut client, "COMMIT").unwrap_or_else(|e| panic!("COMMIT of version {version}: {e}"));
        changes += 1;
        std::thread::sleep(pause);
    }
    changes
}

struct Phase {
    side: Side,
    tps: f64,
    counts: Counts,
}

/// Warms the pool: `pool` clients at once, each sending one message that
/// runs a transaction per user choosing that user, so that each server
/// connection (a client holds one while its message runs) has cached every
/// user, as the backends of a pool that has served for a while have. The
/// hand-written side does the same with its own identity setting.
fn warm_up(side: Side, bouncer: &Bouncer, pool: u32) {
    let sql: String = (0..USERS)
        .map(|user| {
            format!(
                "BEGIN; {}; COMMIT;\n",
                side.choose().replace("{user}", &user.to_string())
            )
        })
        .collect();
    std::thread::scope(|s| {
        for _ in 0..pool {
            let mut client = bouncer.connect(side.login());
            let sql = &sql;
            s.spawn(move || run(&mut client, sql).unwrap_or_else(|e| panic!("warm-up: {e}")));
        }
    });
}

fn run_phase(
    side: Side,
    bouncer: &Bouncer,
    clients: usize,
    seconds: u64,
    history: &RwLock<History>,
) -> Phase {
    let connections: Vec<Client> = (0..clients)
        .map(|_| bouncer.connect(side.login()))
        .collect();
    let counts = Counts::default();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    std::thread::scope(|s| {
        for (i, client) in connections.into_iter().enumerate() {
            let counts = &counts;
            s.spawn(move || {
                client_loop(
                    side,
                    client,
                    seed ^ ((i as u64) << 48),
                    deadline,
                    history,
                    counts,
                )
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    Phase {
        side,
        tps: counts.transactions.load(Ordering::Relaxed) as f64 / elapsed,
        counts,
    }
}

fn main() {
    // Exiting only once `load_test` has returned, its bouncers dropped (stopped):
    // `std::process::exit` runs no destructors.
    if !load_test() {
        std::process::exit(1);
    }
}

/// The whole load test; whether every answer was right and no error came
/// but those provoked.
fn load_test() -> bool {
    let database: String = env("FLUENT_LOAD_DATABASE", "load".to_owned());
    let clients: usize = env("FLUENT_LOAD_CLIENTS", 16);
    let pool: u32 = env("FLUENT_LOAD_POOL", 8);
    let seconds: u64 = env("FLUENT_LOAD_SECONDS", 10);
    let rounds: usize = env("FLUENT_LOAD_ROUNDS", 3);
    let pause = Duration::from_millis(env("FLUENT_LOAD_ADMIN_PAUSE_MS", 20));

    // One bouncer per side, so that each side has its whole pool.
    let fluent_bouncer = Bouncer::start_pool(&database, &[FLUENT_LOGIN], pool);
    let plain_bouncer = Bouncer::start_pool(&database, &[PLAIN_LOGIN], pool);
    warm_up(Side::Fluent, &fluent_bouncer, pool);
    warm_up(Side::ByHand, &plain_bouncer, pool);
    let history = RwLock::new(History::read(&mut connect(&database, "postgres")));
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (phases, changes) = std::thread::scope(|s| {
        let admin = s.spawn(|| admin_loop(&database, &stop, &history, pause));
        let phases: Vec<Phase> = (0..rounds)
            .flat_map(|_| [Side::ByHand, Side::Fluent, Side::HandingOver])
            .map(|side| {
                let bouncer = if side.is_fluent() {
                    &fluent_bouncer
                } else {
                    &plain_bouncer
                };
                run_phase(side, bouncer, clients, seconds, &history)
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        (phases, admin.join().unwrap())
    });
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "Load test: {clients} sessions through PgBouncer {} (transaction pool of {pool} server connections per side), \
         {seconds} s per phase; another session made {changes} catalog changes ({:.0}/s)",
        fluent_bouncer.version(),
        changes as f64 / elapsed
    );
    println!(
        "{:<10} {:>9} {:>12} {:>6} {:>6} {:>7} {:>9}",
        "phase", "tps", "checked", "stale", "wrong", "errors", "provoked"
    );
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    for phase in &phases {
        let c = &phase.counts;
        println!(
            "{:<10} {:>9.0} {:>12} {:>6} {:>6} {:>7} {:>9}",
            phase.side.name(),
            phase.tps,
            load(&c.checked),
            load(&c.stale),
            load(&c.wrong),
            load(&c.errors),
            load(&c.provoked)
        );
    }
    let mean = |side: Side| {
        let tps: Vec<f64> = phases
            .iter()
            .filter(|p| p.side == side)
            .map(|p| p.tps)
            .collect();
        tps.iter().sum::<f64>() / tps.len() as f64
    };
    let total =
        |f: fn(&Counts) -> &AtomicU64| phases.iter().map(|p| load(f(&p.counts))).sum::<u64>();
    let by_hand = mean(Side::ByHand);
    // Each round's fluent phases against its hand-written phase: the
    // machine's load drifts less within a round than across rounds.
    let rounds_of = |side: Side| {
        let mut ratios: Vec<f64> = phases
            .chunks(3)
            .filter_map(|round| {
                let tps = |s: Side| round.iter().find(|p| p.side == s).map(|p| p.tps);
                Some(tps(side)? / tps(Side::ByHand)?)
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for side in [Side::Fluent, Side::HandingOver] {
        let tps = mean(side);
        println!(
            "{} {tps:.0} tps, by hand {by_hand:.0} tps (means over {rounds} rounds): {:.2}x (rounds {})",
            side.name(),
            tps / by_hand,
            rounds_of(side)
        );
    }
    println!(
        "answers checked {}, stale {}, wrong {}; errors {} (and {} refused inserts, on purpose)",
        total(|c| &c.checked),
        total(|c| &c.stale),
        total(|c| &c.wrong),
        total(|c| &c.errors),
        total(|c| &c.provoked)
    );
    let failures = FAILURES.lock().unwrap();
    for failure in failures.iter() {
        eprintln!("  {failure}");
    }
    total(|c| &c.stale) + total(|c| &c.wrong) + total(|c| &c.errors) == 0
}
