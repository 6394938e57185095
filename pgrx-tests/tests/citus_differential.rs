//! The differential check of issue 21: over random catalogs, the rows each
//! user sees through the Citus coordinator are the rows one plain node (no
//! Citus) shows for the same catalog and data, before and after random
//! catalog changes.
//!
//! Each seed builds one random catalog (users in one or two workspaces,
//! roles with per-module read scopes, grants, teams with leads, reporting
//! lines, overrides, users with no roles, a user who may not act) with
//! fluent's SQL API, and runs the same script on two databases of the
//! Citus cluster's coordinator instance: one joined into the cluster (a
//! table distributed by tenant and a reference table, both protected) and
//! one without `CREATE EXTENSION citus`, where fluent is a plain node
//! (`fluent._citus_node()` says `none`, and its policies take the one-server
//! form). Every user, in every workspace, then reads both tables in a
//! transaction that chose the identity with `local`, as the application
//! does: all rows, a count, one tenant (a router query on Citus), a join of
//! the two; both sides must answer alike. Random catalog changes follow,
//! committed (or once rolled back) on both sides while the readers'
//! connections (and Citus's to the workers) stay open: the next statement
//! must show them alike on both sides.
//!
//! Two more tests ask the same of what one node also gets right: prepared
//! statements executed for one user after another, and a change read by the
//! transaction that makes it. Both fail on Citus today (see their comments).
//!
//! The seeds are fixed; `FLUENT_DIFF_SEEDS=7,8` runs others, and
//! `FLUENT_DIFF_KEEP=1` keeps the databases. A failure names the seed and
//! prints the catalog script that both sides ran.

use fluent_pgrx_tests::citus::{connect, database, nodes};
use fluent_pgrx_tests::{sqlstate, APP, AUTHENTICATOR, TESTER};
use postgres::types::ToSql;
use postgres::{Client, Statement};

/// The seeds of the main check: between them, one and two workspaces, and
/// the Citus setup run before and after the catalog was written.
const SEEDS: [u64; 4] = [1, 2, 3, 8];

/// The seeds of the prepared statements' check and of the check inside the
/// changing transaction.
const PREPARED_SEEDS: [u64; 1] = [2];
const INSIDE_SEEDS: [u64; 1] = [5];

/// Rows of the distributed table, tenants, and rows of the reference table.
const NOTES: usize = 120;
const TENANTS: u64 = 6;
const SHARED: usize = 40;
/// Projects, reached by item roles assigned to users and teams.
const PROJECTS: usize = 30;
const ASSIGNMENTS: usize = 40;

const SCOPES: [&str; 5] = ["none", "own", "direct", "team", "all"];

/// xorshift64*: a small deterministic generator, so a seed is a repro.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64's finaliser: neighbouring seeds start far apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with `percent` percent chance.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the generator knows of the catalog, to draw changes that name
/// things that exist.
struct Model {
    users: Vec<String>,
    workspaces: Vec<Workspace>,
}

struct Workspace {
    name: &'static str,
    roles: Vec<String>,
    teams: Vec<String>,
    /// Whether the workspace has the `shared` module (a child of `notes`);
    /// without it, the reference table shows its users nothing.
    shared: bool,
}

/// One database of the comparison: its admin (a DBA, no superuser) and two
/// application connections kept open for the whole seed, one logged in as
/// the tester and one as the authenticator.
struct Side {
    label: &'static str,
    db: String,
    admin: Reader,
    readers: [Reader; 2],
}

/// A connection and its prepared statements, prepared once and executed
/// for every user in every round: their cached plans must follow the
/// acting user and the catalog.
struct Reader {
    client: Client,
    prepared: Vec<(&'static str, Statement)>,
}

/// The prepared queries (`$1`: a tenant).
const PREPARED: [&str; 4] = [
    "SELECT n.id::text FROM notes n ORDER BY n.id",
    "SELECT n.id::text FROM notes n WHERE n.tenant = $1 ORDER BY n.id",
    "SELECT s.id::text FROM shared_notes s ORDER BY s.id",
    "SELECT p.id::text FROM projects p WHERE p.tenant = $1 ORDER BY p.id",
];

impl Reader {
    fn new(db: &str, user: &str) -> Self {
        Reader {
            client: connect(0, db, user),
            prepared: vec![],
        }
    }
    /// Prepares the queries, once the tables exist.
    fn prepare(&mut self) {
        self.prepared = PREPARED
            .iter()
            .map(|q| (*q, self.client.prepare(q).unwrap()))
            .collect();
    }
}

/// A catalog batch, `SELECT fluent_set_workspace(...)` first: the admin's
/// workspace for what follows.
fn in_workspace(ws: &str, sql: &str) -> String {
    format!("SELECT fluent_set_workspace('{ws}'); {sql}")
}

/// Runs `sql` (a batch) on both sides, which must succeed or fail alike;
/// returns whether it succeeded. A failed batch in a transaction block
/// leaves it aborted, for the caller to roll back.
fn both(sides: &mut [Side; 2], sql: &str, context: &str) -> bool {
    let outcomes: Vec<String> = sides
        .iter_mut()
        .map(|side| sqlstate(side.admin.client.batch_execute(sql)))
        .collect();
    assert_eq!(
        outcomes[0], outcomes[1],
        "the catalog batch succeeds or fails alike on Citus and on one node: {sql}\n{context}"
    );
    outcomes[0] == "ok"
}

fn create_catalog(rng: &mut Rng, script: &mut Vec<String>) -> Model {
    let users: Vec<String> = (0..6 + rng.below(4)).map(|i| format!("u{i}")).collect();
    let two = rng.chance(50);
    let mut workspaces = vec![Workspace {
        name: "default",
        roles: vec![],
        teams: vec![],
        shared: true,
    }];
    if two {
        script.push("SELECT fluent_create_workspace('w2')".into());
        workspaces.push(Workspace {
            name: "w2",
            roles: vec![],
            teams: vec![],
            shared: rng.chance(70),
        });
    }
    // Users are global; the reporting line too: a manager comes first.
    for (i, user) in users.iter().enumerate() {
        let manager = if i > 0 && rng.chance(60) {
            format!("'u{}'", rng.below(i))
        } else {
            "NULL".into()
        };
        script.push(format!(
            "SELECT fluent_create_user('{user}', manager => {manager})"
        ));
    }
    // One user (not u0, u1 nor the last) may not act.
    if rng.chance(60) {
        let user = &users[2 + rng.below(users.len() - 3)];
        let status = rng.pick(&["disabled", "ghost"]);
        script.push(format!(
            "SELECT fluent_set_user_status('{user}', '{status}')"
        ));
    }
    let last = users.len() - 1;
    for (w, ws) in workspaces.iter_mut().enumerate() {
        let mut batch = vec!["SELECT fluent_create_module('notes')".to_owned()];
        if ws.shared {
            batch.push("SELECT fluent_create_module('shared', parent => 'notes')".into());
        }
        // Projects and their item roles (seed 002).
        batch.push(
            "SELECT fluent_create_module('projects');
             SELECT fluent_create_item_role('projects', 'editor', '{read}');
             SELECT fluent_create_item_role('projects', 'viewer', '{read}')"
                .into(),
        );
        for r in 0..2 + rng.below(3) {
            let role = format!("r{r}");
            batch.push(format!("SELECT fluent_create_role('{role}')"));
            // In the default workspace, r0 reads its own notes and r1 all:
            // u0 and u1 hold them (see `sanity`).
            let notes = match (w, r) {
                (0, 0) => Some("own"),
                (0, 1) => Some("all"),
                _ if rng.chance(85) => Some(*rng.pick(&SCOPES)),
                _ => None,
            };
            if let Some(scope) = notes {
                batch.push(format!(
                    "SELECT fluent_set_permission('{role}', 'notes', 'read', '{scope}')"
                ));
            }
            if rng.chance(70) {
                let scope = rng.pick(&SCOPES);
                batch.push(format!(
                    "SELECT fluent_set_permission('{role}', 'projects', 'read', '{scope}')"
                ));
            }
            // Unset: the child module inherits the parent's scope.
            if ws.shared && rng.chance(60) {
                let scope = rng.pick(&SCOPES);
                batch.push(format!(
                    "SELECT fluent_set_permission('{role}', 'shared', 'read', '{scope}')"
                ));
            }
            ws.roles.push(role);
        }
        for (i, user) in users.iter().enumerate() {
            let held: Vec<&String> = match (w, i) {
                (0, 0) => vec![&ws.roles[0]],
                (0, 1) => vec![&ws.roles[1]],
                // The last user holds nothing anywhere.
                _ if i == last => vec![],
                _ => {
                    let n = *rng.pick(&[0, 1, 1, 2]);
                    let mut held = vec![];
                    for _ in 0..n {
                        let role = rng.pick(&ws.roles);
                        if !held.contains(&role) {
                            held.push(role);
                        }
                    }
                    held
                }
            };
            for role in held {
                batch.push(format!("SELECT fluent_grant_role('{user}', '{role}')"));
            }
        }
        for t in 0..1 + rng.below(2) {
            let team = format!("t{t}");
            batch.push(format!("SELECT fluent_create_team('{team}')"));
            for user in &users {
                if rng.chance(40) {
                    let lead = rng.chance(30);
                    batch.push(format!(
                        "SELECT fluent_add_team_member('{team}', '{user}', {lead})"
                    ));
                }
            }
            ws.teams.push(team);
        }
        for _ in 0..rng.below(3) {
            let user = &users[2 + rng.below(last - 2)];
            let module = if ws.shared && rng.chance(40) {
                "shared"
            } else {
                "notes"
            };
            let scope = rng.pick(&SCOPES);
            batch.push(format!(
                "SELECT fluent_set_override('{user}', '{module}', 'read', '{scope}')"
            ));
        }
        script.push(in_workspace(ws.name, &batch.join("; ")));
    }
    Model { users, workspaces }
}

/// The owner of each row: every user owns some, then anyone, a key no user
/// has, or nobody.
fn owners(rng: &mut Rng, users: &[String], rows: usize) -> Vec<String> {
    (0..rows)
        .map(|i| {
            if i < users.len() {
                format!("'{}'", users[i])
            } else {
                match rng.below(12) {
                    0 => "'stranger'".into(),
                    1 => "NULL".into(),
                    _ => format!("'{}'", rng.pick(users)),
                }
            }
        })
        .collect()
}

/// One random change to the catalog, as a batch in its workspace. The
/// drops re-create what they dropped (without its grants, members or
/// manager), so later changes still name things that exist.
fn random_change(rng: &mut Rng, model: &Model) -> String {
    let ws = rng.pick(&model.workspaces);
    let user = rng.pick(&model.users);
    let role = rng.pick(&ws.roles);
    let team = rng.pick(&ws.teams);
    let module = if ws.shared && rng.chance(40) {
        "shared"
    } else {
        "notes"
    };
    let module = if rng.chance(25) { "projects" } else { module };
    let scope = rng.pick(&SCOPES);
    let sql = match rng.below(17) {
        0 | 1 => format!("SELECT fluent_grant_role('{user}', '{role}')"),
        // A temporary grant, in force for the whole test.
        2 => format!(
            "SELECT fluent_grant_role('{user}', '{role}', until => now() + interval '1 day')"
        ),
        3 => format!("SELECT fluent_revoke_role('{user}', '{role}')"),
        4 | 5 => format!("SELECT fluent_set_permission('{role}', '{module}', 'read', '{scope}')"),
        6 => format!("SELECT fluent_clear_permission('{role}', '{module}', 'read')"),
        7 => format!("SELECT fluent_set_override('{user}', '{module}', 'read', '{scope}')"),
        8 => format!("SELECT fluent_clear_override('{user}', '{module}', 'read')"),
        9 => {
            // Only to an earlier user (or none): no cycle, ever.
            let i = model.users.iter().position(|u| u == user).unwrap();
            let manager = if i > 0 && rng.chance(75) {
                format!("'u{}'", rng.below(i))
            } else {
                "NULL".into()
            };
            format!("SELECT fluent_set_manager('{user}', {manager})")
        }
        10 => {
            let lead = rng.chance(40);
            format!("SELECT fluent_add_team_member('{team}', '{user}', {lead})")
        }
        11 => format!("SELECT fluent_remove_team_member('{team}', '{user}')"),
        12 => {
            let status = rng.pick(&["active", "active", "disabled", "ghost"]);
            format!("SELECT fluent_set_user_status('{user}', '{status}')")
        }
        13 => {
            let module = if ws.shared && rng.chance(70) {
                "shared"
            } else {
                *rng.pick(&["notes", "projects"])
            };
            let enabled = rng.chance(50);
            format!("SELECT fluent_set_module_enabled('{module}', {enabled})")
        }
        14 if ws.shared => {
            if rng.chance(60) {
                "SELECT fluent_set_requirement('shared', 'notes', 'read')".into()
            } else {
                "SELECT fluent_clear_requirement('shared')".into()
            }
        }
        14 => format!("SELECT fluent_drop_team('{team}'); SELECT fluent_create_team('{team}')"),
        15 => format!(
            "SELECT fluent_drop_role('{role}', true); SELECT fluent_create_role('{role}');
             SELECT fluent_set_permission('{role}', 'notes', 'read', '{scope}')"
        ),
        _ => format!("SELECT fluent_drop_user('{user}'); SELECT fluent_create_user('{user}')"),
    };
    in_workspace(ws.name, &sql)
}

/// The rows' first column, joined with commas; or the error.
fn texts(
    client: &mut Client,
    query: &(impl postgres::ToStatement + ?Sized),
    params: &[&(dyn ToSql + Sync)],
) -> Result<String, String> {
    client
        .query(query, params)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.get::<_, Option<String>>(0)
                        .unwrap_or_else(|| "NULL".into())
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("ERROR {}: {}", db.code().code(), db.message()),
            None => format!("ERROR {e}"),
        })
}

/// How `compare` reads.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The readers, each user in a transaction of its own.
    Own,
    /// As `Own`, and the prepared statements too.
    Prepared,
    /// The admins, in the transaction open there (which changed the
    /// catalog), each user under a savepoint.
    Inside,
}

/// What `user` sees, acting in `ws`, read as `mode` says. A failed query is
/// an answer too (and the last one).
fn observe(
    reader: &mut Reader,
    ws: &Workspace,
    user: &str,
    tenant: i32,
    mode: Mode,
) -> Vec<String> {
    let scopes = if ws.shared {
        "fluent_scope('notes', 'read') || ' ' || fluent_scope('shared', 'read')"
    } else {
        "fluent_scope('notes', 'read')"
    };
    let ws = ws.name;
    let (begin, undo, end) = if mode == Mode::Inside {
        (
            "SAVEPOINT observe",
            "ROLLBACK TO SAVEPOINT observe",
            "RELEASE SAVEPOINT observe",
        )
    } else {
        ("BEGIN", "ROLLBACK", "COMMIT")
    };
    let client = &mut reader.client;
    if let Err(e) = client.batch_execute(&format!(
        "{begin}; SELECT fluent_set_workspace('{ws}', true); SELECT fluent_set_user('{user}', true)"
    )) {
        client.batch_execute(undo).unwrap();
        return vec![format!("acting: {}", sqlstate(Err::<(), _>(e)))];
    }
    let ad_hoc = [
        format!("SELECT {scopes}"),
        "SELECT n.id::text FROM notes n ORDER BY n.id".into(),
        "SELECT count(*)::text FROM notes".into(),
        // A router query on Citus (one tenant, one shard).
        format!("SELECT n.id::text FROM notes n WHERE n.tenant = {tenant} ORDER BY n.id"),
        "SELECT s.id::text FROM shared_notes s ORDER BY s.id".into(),
        "SELECT count(*)::text FROM shared_notes".into(),
        // Pushed down whole on Citus: a distributed table joined to a
        // reference table, both protected.
        "SELECT count(*)::text FROM notes n JOIN shared_notes s ON s.owner = n.owner".into(),
        // By scope or by an item role, the user's own or a team's.
        "SELECT p.id::text FROM projects p ORDER BY p.id".into(),
        format!("SELECT p.id::text FROM projects p WHERE p.tenant = {tenant} ORDER BY p.id"),
    ];
    let mut seen = vec![];
    let mut failed = false;
    for q in &ad_hoc {
        let answer = texts(client, q.as_str(), &[]);
        failed = answer.is_err();
        seen.push(format!("{q} => {}", answer.unwrap_or_else(|e| e)));
        if failed {
            break;
        }
    }
    if mode == Mode::Prepared && !failed {
        for (q, statement) in &reader.prepared {
            let params: &[&(dyn ToSql + Sync)] = if q.contains("$1") { &[&tenant] } else { &[] };
            let answer = texts(&mut reader.client, statement, params);
            failed = answer.is_err();
            seen.push(format!(
                "prepared {q} ($1 = {tenant}) => {}",
                answer.unwrap_or_else(|e| e)
            ));
            if failed {
                break;
            }
        }
    }
    reader
        .client
        .batch_execute(if failed { undo } else { end })
        .unwrap();
    seen
}

/// Every user's view, in every workspace, on both sides: they must be
/// equal (and, outside a changing transaction, free of errors). Returns
/// the answers of the distributed table's full read (or the refusal to
/// act), by (workspace, user).
fn compare(
    rng: &mut Rng,
    sides: &mut [Side; 2],
    model: &Model,
    round: &str,
    script: &[String],
    mode: Mode,
) -> Vec<((String, String), String)> {
    let mut answers = vec![];
    for ws in &model.workspaces {
        for user in &model.users {
            let reader = rng.below(2);
            let tenant = (rng.next() % TENANTS) as i32;
            let seen: Vec<Vec<String>> = sides
                .iter_mut()
                .map(|side| {
                    let reader = if mode == Mode::Inside {
                        &mut side.admin
                    } else {
                        &mut side.readers[reader]
                    };
                    observe(reader, ws, user, tenant, mode)
                })
                .collect();
            let role = if mode == Mode::Inside {
                TESTER
            } else {
                [TESTER, AUTHENTICATOR][reader]
            };
            // Inside the changing transaction Citus refuses to read a
            // protected table (its workers see the change at commit); the
            // answers before that first read match.
            let seen = if mode == Mode::Inside {
                let refused = seen[0].get(1).is_some_and(|a| {
                    a.starts_with("SELECT n.id::text FROM notes n ORDER BY n.id => ERROR 0A000")
                });
                assert!(
                    refused || seen[0].len() == 1 && seen[0] == seen[1],
                    "{round}: {user} acting in {}: Citus refuses to read a protected table \
                     in the transaction that changed the catalog: {seen:#?}",
                    ws.name
                );
                vec![seen[0][..1].to_vec(), seen[1][..1].to_vec()]
            } else {
                seen
            };
            if seen[0] != seen[1] {
                let diff: Vec<String> = seen[0]
                    .iter()
                    .zip(&seen[1])
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| format!("  {}: {a}\n  {}: {b}", sides[0].label, sides[1].label))
                    .collect();
                panic!(
                    "{round}: {user} acting in {ws} (as {role}) sees differently on Citus and on one node:\n{}\n\
                     all answers: {:#?}\nthe catalog script both sides ran:\n{};",
                    diff.join("\n"),
                    seen,
                    script.join(";\n"),
                    ws = ws.name,
                );
            }
            if mode != Mode::Inside {
                assert!(
                    !seen[0].iter().any(|a| a.contains("=> ERROR")),
                    "{round}: {user} acting in {} (as {role}): {:#?}",
                    ws.name,
                    seen[0]
                );
            }
            let answer = seen[0].get(1).unwrap_or(&seen[0][0]).clone();
            answers.push(((ws.name.to_owned(), user.clone()), answer));
        }
    }
    // Nobody chosen: no row, on either side.
    if mode != Mode::Inside {
        for side in sides.iter_mut() {
            let none = texts(
                &mut side.readers[0].client,
                "SELECT count(*)::text FROM notes",
                &[],
            );
            assert_eq!(
                none.as_deref(),
                Ok("0"),
                "{round}: no identity on {}",
                side.label
            );
        }
    }
    answers
}

/// The check is not vacuous: u0 (r0, own) sees exactly the notes they own,
/// u1 (r1, all) every note, the last user (no role) none, in the default
/// workspace before any change.
fn sanity(answers: &[((String, String), String)], own: &[i64], last: &str) {
    let find = |user: &str| -> &str {
        &answers
            .iter()
            .find(|((ws, u), _)| ws == "default" && u == user)
            .unwrap()
            .1
    };
    let ids = |list: &[i64]| {
        list.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let all: Vec<i64> = (1..=NOTES as i64).collect();
    let prefix = "SELECT n.id::text FROM notes n ORDER BY n.id => ";
    assert_eq!(find("u0"), format!("{prefix}{}", ids(own)), "u0: own");
    assert_eq!(find("u1"), format!("{prefix}{}", ids(&all)), "u1: all");
    assert_eq!(find(last), prefix, "{last}: no role");
}

/// Both databases with the seed's catalog and data, compared once.
struct Fixture {
    seed: u64,
    rng: Rng,
    model: Model,
    script: Vec<String>,
    sides: [Side; 2],
    citus_db: String,
    plain_db: String,
}

fn fixture(name: &str, seed: u64, mode: Mode) -> Fixture {
    let mut rng = Rng::new(seed);
    let mut script = vec![];
    let model = create_catalog(&mut rng, &mut script);
    let setup_first = rng.chance(50);
    eprintln!(
        "{name}, seed {seed}: {} users, workspaces {:?}, fluent_citus_setup() {} the catalog",
        model.users.len(),
        model.workspaces.iter().map(|w| w.name).collect::<Vec<_>>(),
        if setup_first { "before" } else { "after" }
    );

    // The Citus cluster's database, and the plain one beside it on the
    // coordinator's instance: fluent without Citus.
    let citus_db = database(&format!("{name}_{seed}"));
    let plain_db = format!("{citus_db}_plain");
    {
        let mut admin = connect(0, "postgres", "postgres");
        for statement in [
            format!("DROP DATABASE IF EXISTS {plain_db} WITH (FORCE)"),
            format!("CREATE DATABASE {plain_db}"),
        ] {
            admin.batch_execute(&statement).unwrap();
        }
        let mut plain = connect(0, &plain_db, "postgres");
        plain.batch_execute("CREATE EXTENSION fluent").unwrap();
        // (Memberships are cluster-wide: citus::database made them.)
        plain
            .batch_execute(&format!(
                "GRANT fluent_admin, {APP} TO {TESTER}; GRANT fluent_authenticator, {APP} TO {AUTHENTICATOR}"
            ))
            .unwrap();
    }
    for (db, expected) in [(&citus_db, "coordinator"), (&plain_db, "none")] {
        let node: String = connect(0, db, "postgres")
            .query_one("SELECT fluent._citus_node()", &[])
            .unwrap()
            .get(0);
        assert_eq!(node, expected, "{db}");
    }
    let setup = || {
        let workers: i32 = connect(0, &citus_db, "postgres")
            .query_one("SELECT fluent_citus_setup()", &[])
            .unwrap()
            .get(0);
        assert_eq!(workers, 2);
    };
    if setup_first {
        setup();
    }
    let side = |label, db: &String| Side {
        label,
        db: db.clone(),
        admin: Reader::new(db, TESTER),
        readers: [Reader::new(db, TESTER), Reader::new(db, AUTHENTICATOR)],
    };
    let mut sides = [side("citus", &citus_db), side("one node", &plain_db)];
    for batch in &script {
        assert!(both(&mut sides, batch, &format!("seed {seed}")), "{batch}");
    }
    if !setup_first {
        setup();
    }

    // The data: the same rows on both sides; on Citus distributed by tenant
    // (and a reference table), then protected.
    let note_owners = owners(&mut rng, &model.users, NOTES);
    let notes: Vec<String> = note_owners
        .iter()
        .enumerate()
        .map(|(i, owner)| {
            let tenant = rng.next() % TENANTS;
            format!("({tenant}, {}, {owner}, 'n')", i + 1)
        })
        .collect();
    let shared: Vec<String> = owners(&mut rng, &model.users, SHARED)
        .iter()
        .enumerate()
        .map(|(i, owner)| format!("({}, {owner})", 1001 + i))
        .collect();
    let project_owners = owners(&mut rng, &model.users, PROJECTS);
    let project_tenants: Vec<u64> = (0..PROJECTS).map(|_| rng.next() % TENANTS).collect();
    let projects: Vec<String> = project_owners
        .iter()
        .zip(&project_tenants)
        .enumerate()
        .map(|(i, (owner, tenant))| format!("({tenant}, {}, {owner})", i + 1))
        .collect();
    // Assignments name users (any, also ones dropped later) or the default
    // workspace's teams, where the superuser writing them acts. The last
    // user, who holds no role, views project 1 (checked below).
    let last = model.users.last().unwrap();
    let mut assignments = vec![format!(
        "({}, 1, '{last}', NULL, 'viewer')",
        project_tenants[0]
    )];
    assignments.extend((0..ASSIGNMENTS).map(|_| {
        let project = rng.below(PROJECTS);
        let (user, team) = if rng.chance(70) {
            (format!("'{}'", rng.pick(&model.users)), "NULL".to_owned())
        } else {
            (
                "NULL".to_owned(),
                format!("'{}'", rng.pick(&model.workspaces[0].teams)),
            )
        };
        let role = rng.pick(&["editor", "viewer"]);
        format!(
            "({}, {}, {user}, {team}, '{role}')",
            project_tenants[project],
            project + 1
        )
    }));
    for side in sides.iter_mut() {
        let citus = side.label == "citus";
        let mut su = connect(0, &side.db, "postgres");
        let distribute = |sql: &str| if citus { sql.to_owned() } else { String::new() };
        su.batch_execute(&format!(
            "CREATE TABLE notes (tenant int, id bigint, owner text, body text);
             {}
             INSERT INTO notes VALUES {};
             GRANT SELECT ON notes TO {APP}, {TESTER}, {AUTHENTICATOR};
             SELECT fluent_protect('notes', 'notes', owner_column => 'owner');",
            distribute("SELECT create_distributed_table('notes', 'tenant', shard_count => 8);"),
            notes.join(", ")
        ))
        .unwrap();
        // (A transaction that wrote the catalog cannot write a reference
        // table too: see the README.)
        su.batch_execute(&format!(
            "CREATE TABLE shared_notes (id bigint PRIMARY KEY, owner text);
             {}
             INSERT INTO shared_notes VALUES {};
             GRANT SELECT ON shared_notes TO {APP}, {TESTER}, {AUTHENTICATOR};
             SELECT fluent_protect('shared_notes', 'shared', owner_column => 'owner');",
            distribute("SELECT create_reference_table('shared_notes');"),
            shared.join(", ")
        ))
        .unwrap();
        // An item's key: on one server its id (unique here), on Citus with
        // the distribution column, which a distributed table's keys include.
        let (key, points) = if citus {
            ("tenant, id", "tenant, project_id")
        } else {
            ("id", "project_id")
        };
        su.batch_execute(&format!(
            "CREATE TABLE projects (tenant int, id bigint, owner text, PRIMARY KEY ({key}));
             CREATE TABLE project_roles (tenant int, project_id bigint, user_key text, team text, role text,
                 FOREIGN KEY ({points}) REFERENCES projects ({key}) ON DELETE CASCADE);
             CREATE INDEX ON project_roles (user_key);
             CREATE INDEX ON project_roles (team);
             {}
             INSERT INTO projects VALUES {};
             INSERT INTO project_roles VALUES {};
             GRANT SELECT ON projects, project_roles TO {APP}, {TESTER}, {AUTHENTICATOR};",
            distribute(
                "SELECT create_distributed_table('projects', 'tenant', shard_count => 8);
                 SELECT create_distributed_table('project_roles', 'tenant', colocate_with => 'projects');"
            ),
            projects.join(", "),
            assignments.join(", ")
        ))
        .unwrap();
        // (Once the tables are on the workers: Citus sends the policies,
        // which name the assignment table, on connections of its own.)
        su.batch_execute(
            "SELECT fluent_protect('projects', 'projects', 'owner', row_column => 'id',
                                   membership_table => 'project_roles', membership_row_column => 'project_id',
                                   membership_user_column => 'user_key', membership_role_column => 'role',
                                   membership_team_column => 'team')",
        )
        .unwrap();
        side.admin.prepare();
        for reader in side.readers.iter_mut() {
            reader.prepare();
        }
    }
    // The tenant query is a router query on Citus.
    let plan: Vec<String> = sides[0].readers[0]
        .client
        .query("EXPLAIN SELECT id FROM notes WHERE tenant = 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("Task Count: 1")),
        "{plan:#?}"
    );

    let answers = compare(
        &mut rng,
        &mut sides,
        &model,
        &format!("{name}, seed {seed}, the catalog as made"),
        &script,
        if mode == Mode::Prepared {
            mode
        } else {
            Mode::Own
        },
    );
    let own: Vec<i64> = note_owners
        .iter()
        .enumerate()
        .filter(|(_, o)| *o == "'u0'")
        .map(|(i, _)| i as i64 + 1)
        .collect();
    sanity(&answers, &own, model.users.last().unwrap());
    // Item roles take part: the last user, who holds no role, reads the
    // project she views, on both sides.
    for side in sides.iter_mut() {
        let client = &mut side.readers[0].client;
        client
            .batch_execute(&format!(
                "BEGIN; SELECT fluent_set_user('{}', true)",
                model.users.last().unwrap()
            ))
            .unwrap();
        let seen = texts(
            client,
            "SELECT p.id::text FROM projects p WHERE p.id = 1",
            &[],
        );
        client.batch_execute("COMMIT").unwrap();
        assert_eq!(seen.as_deref(), Ok("1"), "{}: an item role", side.label);
    }
    Fixture {
        seed,
        rng,
        model,
        script,
        sides,
        citus_db,
        plain_db,
    }
}

/// Drops both databases of a fixture that passed (on a failure, or with
/// FLUENT_DIFF_KEEP set, they stay, to look at).
fn teardown(fixture: Fixture) {
    let Fixture {
        sides,
        citus_db,
        plain_db,
        ..
    } = fixture;
    drop(sides);
    if std::env::var_os("FLUENT_DIFF_KEEP").is_some() {
        return;
    }
    for node in 0..3 {
        connect(node, "postgres", "postgres")
            .batch_execute(&format!("DROP DATABASE {citus_db} WITH (FORCE)"))
            .unwrap();
    }
    connect(0, "postgres", "postgres")
        .batch_execute(&format!("DROP DATABASE {plain_db} WITH (FORCE)"))
        .unwrap();
}

/// Random changes in `rounds` transactions, the same on both sides. Each
/// transaction is read in (`Mode::Inside`), then committed (one of them
/// rolled back) and read by the readers at their next statement.
fn change_and_compare(f: &mut Fixture, name: &str, rounds: usize, mode: Mode) {
    let rolled_back = f.rng.below(rounds);
    let (mut committed, mut refused) = (0, vec![]);
    for round in 0..rounds {
        let changes: Vec<String> = (0..1 + f.rng.below(3))
            .map(|_| random_change(&mut f.rng, &f.model))
            .collect();
        let end = if round == rolled_back {
            "ROLLBACK"
        } else {
            "COMMIT"
        };
        let label = format!("{name}, seed {}, change {round} ({end})", f.seed);
        let context = format!(
            "{label}\nthe catalog script so far:\n{};",
            f.script.join(";\n")
        );
        both(&mut f.sides, "BEGIN", &context);
        let mut ok = true;
        for change in &changes {
            ok = both(&mut f.sides, change, &context);
            if !ok {
                refused.push(change.clone());
                break;
            }
        }
        if ok && mode == Mode::Inside {
            let mut script = f.script.clone();
            script.push("BEGIN".into());
            script.extend(changes.iter().cloned());
            compare(
                &mut f.rng,
                &mut f.sides,
                &f.model,
                &format!("{label}, read inside the changing transaction"),
                &script,
                Mode::Inside,
            );
        }
        both(&mut f.sides, if ok { end } else { "ROLLBACK" }, &context);
        if ok && end == "COMMIT" {
            committed += 1;
            f.script.extend(changes);
        } else {
            f.script
                .push(format!("-- rolled back: {}", changes.join("; ")));
        }
        let after = if mode == Mode::Inside {
            Mode::Own
        } else {
            mode
        };
        compare(&mut f.rng, &mut f.sides, &f.model, &label, &f.script, after);
    }
    eprintln!(
        "{name}, seed {}: {committed} change transactions committed, {} refused alike on both sides: {refused:?}",
        f.seed,
        refused.len()
    );
}

/// The seeds: `FLUENT_DIFF_SEEDS` (comma-separated), else `default`.
fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("FLUENT_DIFF_SEEDS") {
        Ok(list) => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("FLUENT_DIFF_SEEDS: numbers, comma-separated")
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// Runs `check` for each seed, naming the seed that failed.
fn for_each_seed(name: &str, default: &[u64], check: impl Fn(u64)) {
    // (Fails early, with the harness's message, without a cluster.)
    nodes();
    for seed in seeds(default) {
        let started = std::time::Instant::now();
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(seed))) {
            let test = std::thread::current().name().unwrap_or(name).to_owned();
            eprintln!("{name}: seed {seed} failed (rerun: FLUENT_DIFF_SEEDS={seed} cargo test ... {test})");
            std::panic::resume_unwind(panic);
        }
        eprintln!("{name}, seed {seed}: passed in {:.1?}", started.elapsed());
    }
}

#[test]
fn every_user_sees_through_the_coordinator_what_one_node_shows_over_random_catalogs() {
    for_each_seed("diff", &SEEDS, |seed| {
        let mut f = fixture("diff", seed, Mode::Own);
        change_and_compare(&mut f, "diff", 5, Mode::Own);
        teardown(f);
    });
}

/// Prepared statements, executed for one user after another and across
/// catalog changes, as a driver's statement cache does. (Citus builds the
/// final plan of a distributed query anew, without the dependencies fluent
/// records on it: src/plans.rs puts them back.)
#[test]
fn prepared_statements_follow_the_acting_user_and_the_catalog_as_on_one_node() {
    for_each_seed("diff_prepared", &PREPARED_SEEDS, |seed| {
        let mut f = fixture("diff_prepared", seed, Mode::Prepared);
        change_and_compare(&mut f, "diff_prepared", 3, Mode::Prepared);
        teardown(f);
    });
}

/// A change read by the transaction that makes it: one node shows it at the
/// next statement. On Citus the workers' shards read their committed catalog
/// (the bus's rows are applied on other connections, as fluent_replicator),
/// so reading a protected table there is refused (0A000) until the change
/// commits; what the transaction reads before that matches one node.
#[test]
fn a_change_read_inside_its_own_transaction_is_refused_on_citus_and_matches_after_commit() {
    for_each_seed("diff_inside", &INSIDE_SEEDS, |seed| {
        let mut f = fixture("diff_inside", seed, Mode::Own);
        change_and_compare(&mut f, "diff_inside", 3, Mode::Inside);
        teardown(f);
    });
}
