//! `fluent_who_can` agrees with row-level security on random catalogs: for
//! every row and every user, the user is listed exactly when the policies
//! let them read the row, acting as that user through the application role
//! over a real connection. Each round draws roles with random scopes on the
//! module (none to all, or unset), random grants and overrides, a random
//! reporting line, teams with leads, disabled users, a module requirement,
//! and rows with random owners (some unknown) and assignees. A second
//! property does the same with item roles: an assignment table naming users
//! and teams with random item roles (some conditioned on a role, later
//! revoked from some holders), and a child table reached through it.

use std::collections::BTreeSet;

use fluent_pgrx_tests::{connect, fresh_database, APP, TESTER};

/// A small deterministic generator (xorshift64*): the rounds are the same
/// on every run, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const SCOPES: [&str; 5] = ["none", "own", "direct", "team", "all"];
const USERS: usize = 9;
const ROWS: i32 = 12;

/// The SQL that builds one random round in workspace `w{round}`.
fn random_catalog(round: u64, rng: &mut Rng) -> String {
    let ws = format!("w{round}");
    let user = |i: usize| format!("{ws}_u{i}");
    let mut sql = format!(
        "SELECT fluent_create_workspace('{ws}'), fluent_set_workspace('{ws}');
         SELECT fluent_create_module('docs', '{{read,write}}'), fluent_create_module('gate', '{{enter}}');
         SELECT fluent_create_role('everyone'), fluent_set_permission('everyone', 'gate', 'enter', 'all');"
    );
    for r in 0..3 {
        sql += &format!("SELECT fluent_create_role('r{r}');");
        if rng.chance(80) {
            let scope = SCOPES[rng.below(SCOPES.len())];
            sql += &format!("SELECT fluent_set_permission('r{r}', 'docs', 'read', '{scope}');");
        }
    }
    // Sometimes reading docs requires the gate (held through `everyone`).
    if rng.chance(30) {
        sql += "SELECT fluent_set_requirement('docs', 'gate', 'enter');";
    }
    for i in 0..USERS {
        let manager = if i > 0 && rng.chance(60) {
            format!("'{}'", user(rng.below(i)))
        } else {
            "NULL".into()
        };
        sql += &format!(
            "SELECT fluent_create_user('{}', manager => {manager});",
            user(i)
        );
        for r in 0..3 {
            if rng.chance(30) {
                sql += &format!("SELECT fluent_grant_role('{}', 'r{r}');", user(i));
            }
        }
        if rng.chance(80) {
            sql += &format!("SELECT fluent_grant_role('{}', 'everyone');", user(i));
        }
        if rng.chance(15) {
            let scope = SCOPES[rng.below(SCOPES.len())];
            sql += &format!(
                "SELECT fluent_set_override('{}', 'docs', 'read', '{scope}');",
                user(i)
            );
        }
    }
    for t in 0..2 {
        sql += &format!("SELECT fluent_create_team('t{t}');");
        for i in 0..USERS {
            if rng.chance(25) {
                let lead = rng.chance(40);
                sql += &format!(
                    "SELECT fluent_add_team_member('t{t}', '{}', {lead});",
                    user(i)
                );
            }
        }
    }
    for i in 0..USERS {
        if rng.chance(10) {
            sql += &format!(
                "SELECT fluent_set_user_status('{}', 'disabled', force => true);",
                user(i)
            );
        }
    }
    let table = format!("docs_{round}");
    sql += &format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, owner text, ws text);
         CREATE TABLE {table}_members (doc int, member text);
         GRANT SELECT ON {table}, {table}_members TO {APP};"
    );
    for id in 0..ROWS {
        let owner = if rng.chance(85) {
            user(rng.below(USERS))
        } else {
            "stranger".into()
        };
        sql += &format!("INSERT INTO {table} VALUES ({id}, '{owner}', '{ws}');");
        for _ in 0..rng.below(3) {
            sql += &format!(
                "INSERT INTO {table}_members VALUES ({id}, '{}');",
                user(rng.below(USERS))
            );
        }
    }
    sql += &format!(
        "SELECT fluent_protect('{table}', 'docs', 'owner', membership_table => '{table}_members',
                               membership_row_column => 'doc', membership_user_column => 'member',
                               workspace_column => 'ws');"
    );
    sql
}

#[test]
fn who_can_agrees_with_row_level_security_on_random_catalogs() {
    let database = fresh_database("who_can");
    let mut admin = connect(&database, "postgres");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut compared = 0;
    for round in 0..12u64 {
        admin
            .batch_execute(&random_catalog(round, &mut rng))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let ws = format!("w{round}");
        let table = format!("docs_{round}");
        // What row-level security lets each active user read.
        let mut allowed: BTreeSet<(i32, String)> = BTreeSet::new();
        let active: Vec<String> = admin
            .query(
                "SELECT user_key FROM fluent.users WHERE user_key LIKE $1 AND status = 'active'",
                &[&format!("{ws}\\_u%")],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        // One session per round, switching users as a test suite does.
        let mut session = connect(&database, TESTER);
        for user in &active {
            session
                .execute(
                    "SELECT fluent_set_workspace($1), fluent_set_user($2)",
                    &[&ws, user],
                )
                .unwrap();
            session.batch_execute(&format!("SET ROLE {APP}")).unwrap();
            for row in session
                .query(&format!("SELECT id FROM {table}"), &[])
                .unwrap()
            {
                allowed.insert((row.get(0), user.clone()));
            }
            session.batch_execute("RESET ROLE").unwrap();
        }
        // What fluent_who_can says, row by row.
        let mut listed: BTreeSet<(i32, String)> = BTreeSet::new();
        admin
            .execute("SELECT fluent_set_workspace($1)", &[&ws])
            .unwrap();
        for id in 0..ROWS {
            for row in admin
                .query(
                    "SELECT user_key FROM fluent_who_can($1::text::regclass, $2)",
                    &[&table, &id.to_string()],
                )
                .unwrap()
            {
                listed.insert((id, row.get(0)));
            }
        }
        assert_eq!(
            allowed, listed,
            "round {round}: (row, user) pairs row-level security allows vs fluent_who_can lists"
        );
        compared += allowed.len();
    }
    // The rounds are not all empty: the comparison had something to compare.
    assert!(
        compared > 50,
        "only {compared} allowed pairs over all rounds"
    );
}

const ACTIONS: [&str; 2] = ["read", "write"];
const ITEM_ROLES: usize = 4;

/// The SQL that builds one random round with item roles in workspace
/// `i{round}`: projects with an assignment table, and tasks under them.
fn random_item_catalog(round: u64, rng: &mut Rng) -> String {
    let ws = format!("i{round}");
    let user = |i: usize| format!("{ws}_u{i}");
    let mut sql = format!(
        "SELECT fluent_create_workspace('{ws}'), fluent_set_workspace('{ws}');
         SELECT fluent_create_module('projects', '{{read,write}}'), fluent_create_module('gate', '{{enter}}');
         SELECT fluent_create_role('everyone'), fluent_set_permission('everyone', 'gate', 'enter', 'all');
         SELECT fluent_create_role('cond');"
    );
    for r in 0..2 {
        sql += &format!("SELECT fluent_create_role('r{r}');");
        if rng.chance(70) {
            let scope = SCOPES[rng.below(SCOPES.len())];
            sql += &format!("SELECT fluent_set_permission('r{r}', 'projects', 'read', '{scope}');");
        }
    }
    if rng.chance(30) {
        sql += "SELECT fluent_set_requirement('projects', 'gate', 'enter');";
    }
    // Item roles with random actions; some require the role `cond`.
    let mut conditioned = [false; ITEM_ROLES];
    for (k, conditioned) in conditioned.iter_mut().enumerate() {
        let actions: Vec<&str> = match rng.below(3) {
            0 => vec!["read"],
            1 => vec!["write"],
            _ => ACTIONS.to_vec(),
        };
        *conditioned = rng.chance(30);
        let condition = if *conditioned {
            ", required_role => 'cond'"
        } else {
            ""
        };
        sql += &format!(
            "SELECT fluent_create_item_role('projects', 'ir{k}', '{{{}}}'{condition});",
            actions.join(",")
        );
    }
    let mut holds_cond = [false; USERS];
    for (i, holds_cond) in holds_cond.iter_mut().enumerate() {
        let manager = if i > 0 && rng.chance(50) {
            format!("'{}'", user(rng.below(i)))
        } else {
            "NULL".into()
        };
        sql += &format!(
            "SELECT fluent_create_user('{}', manager => {manager});",
            user(i)
        );
        for r in 0..2 {
            if rng.chance(25) {
                sql += &format!("SELECT fluent_grant_role('{}', 'r{r}');", user(i));
            }
        }
        if rng.chance(85) {
            sql += &format!("SELECT fluent_grant_role('{}', 'everyone');", user(i));
        }
        *holds_cond = rng.chance(50);
        if *holds_cond {
            sql += &format!("SELECT fluent_grant_role('{}', 'cond');", user(i));
        }
    }
    let mut members = Vec::new();
    for t in 0..3 {
        sql += &format!("SELECT fluent_create_team('t{t}');");
        for i in 0..USERS {
            if rng.chance(30) {
                members.push((t, i));
                let lead = rng.chance(30);
                sql += &format!(
                    "SELECT fluent_add_team_member('t{t}', '{}', {lead});",
                    user(i)
                );
            }
        }
    }
    let projects = format!("projects_{round}");
    let tasks = format!("tasks_{round}");
    // Every other round the tasks have an owner column of their own.
    let task_owner = round.is_multiple_of(2);
    sql += &format!(
        "CREATE TABLE {projects} (id int PRIMARY KEY, owner text, ws text NOT NULL);
         CREATE TABLE {projects}_roles (project_id int NOT NULL REFERENCES {projects} ON DELETE CASCADE, user_key text,
                                        team text, role text NOT NULL);
         CREATE INDEX ON {projects}_roles (user_key);
         CREATE INDEX ON {projects}_roles (team);
         CREATE TABLE {tasks} (id int PRIMARY KEY, project_id int NOT NULL REFERENCES {projects}, owner text, ws text NOT NULL);
         GRANT SELECT ON {projects}, {projects}_roles, {tasks} TO {APP};"
    );
    let owner = |rng: &mut Rng| {
        if rng.chance(85) {
            user(rng.below(USERS))
        } else {
            "stranger".into()
        }
    };
    for id in 0..ROWS {
        sql += &format!(
            "INSERT INTO {projects} VALUES ({id}, '{}', '{ws}');",
            owner(rng)
        );
    }
    for id in 0..ROWS {
        let project = rng.below(ROWS as usize);
        sql += &format!(
            "INSERT INTO {tasks} VALUES ({id}, {project}, '{}', '{ws}');",
            owner(rng)
        );
    }
    sql += &format!(
        "SELECT fluent_protect('{projects}', 'projects', 'owner', membership_table => '{projects}_roles',
                               membership_row_column => 'project_id', membership_user_column => 'user_key',
                               membership_role_column => 'role', membership_team_column => 'team',
                               workspace_column => 'ws');
         SELECT fluent_protect('{tasks}', 'projects', {}parent_table => '{projects}',
                               parent_column => 'project_id', workspace_column => 'ws');",
        if task_owner { "'owner', " } else { "" }
    );
    // Assignments, written as a DBA after the protection, so that the
    // trigger checks them: only valid ones (a conditioned item role only to
    // a user holding the condition, never to a team).
    for id in 0..ROWS {
        for _ in 0..rng.below(4) {
            let k = rng.below(ITEM_ROLES);
            if rng.chance(35) {
                if conditioned[k] {
                    continue;
                }
                sql += &format!(
                    "INSERT INTO {projects}_roles VALUES ({id}, NULL, 't{}', 'ir{k}');",
                    rng.below(3)
                );
            } else {
                let i = rng.below(USERS);
                if conditioned[k] && !holds_cond[i] {
                    continue;
                }
                sql += &format!(
                    "INSERT INTO {projects}_roles VALUES ({id}, '{}', NULL, 'ir{k}');",
                    user(i)
                );
            }
        }
    }
    // Then the condition revoked from some (their item roles lapse), a team
    // member removed, an item role dropped, accounts disabled.
    for (i, holds_cond) in holds_cond.iter().enumerate() {
        if *holds_cond && rng.chance(30) {
            sql += &format!("SELECT fluent_revoke_role('{}', 'cond');", user(i));
        }
    }
    if !members.is_empty() && rng.chance(50) {
        let (t, i) = members[rng.below(members.len())];
        sql += &format!("SELECT fluent_remove_team_member('t{t}', '{}');", user(i));
    }
    if rng.chance(30) {
        sql += &format!(
            "SELECT fluent_drop_item_role('projects', 'ir{}');",
            rng.below(ITEM_ROLES)
        );
    }
    for i in 0..USERS {
        if rng.chance(10) {
            sql += &format!(
                "SELECT fluent_set_user_status('{}', 'disabled', force => true);",
                user(i)
            );
        }
    }
    sql
}

/// The (row, user) pairs row-level security lets the active users of `ws`
/// read in each table, acting through the application role.
fn allowed_pairs(
    admin: &mut postgres::Client,
    database: &str,
    ws: &str,
    tables: &[&str],
) -> Vec<BTreeSet<(i32, String)>> {
    let active: Vec<String> = admin
        .query(
            "SELECT user_key FROM fluent.users WHERE user_key LIKE $1 AND status = 'active'",
            &[&format!("{ws}\\_u%")],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!active.is_empty(), "{ws}: no active user");
    let mut allowed = vec![BTreeSet::new(); tables.len()];
    let mut session = connect(database, TESTER);
    for user in &active {
        session
            .execute(
                "SELECT fluent_set_workspace($1), fluent_set_user($2)",
                &[&ws, user],
            )
            .unwrap();
        session.batch_execute(&format!("SET ROLE {APP}")).unwrap();
        for (table, allowed) in tables.iter().zip(allowed.iter_mut()) {
            for row in session
                .query(&format!("SELECT id FROM {table}"), &[])
                .unwrap()
            {
                allowed.insert((row.get(0), user.clone()));
            }
        }
        session.batch_execute("RESET ROLE").unwrap();
    }
    allowed
}

/// The (row, user) pairs fluent_who_can lists for reading each row of
/// `table` (keys 0..ROWS).
fn listed_pairs(admin: &mut postgres::Client, ws: &str, table: &str) -> BTreeSet<(i32, String)> {
    admin
        .execute("SELECT fluent_set_workspace($1)", &[&ws])
        .unwrap();
    let mut listed = BTreeSet::new();
    for id in 0..ROWS {
        for row in admin
            .query(
                "SELECT user_key FROM fluent_who_can($1::text::regclass, $2, 'read')",
                &[&table, &id.to_string()],
            )
            .unwrap()
        {
            listed.insert((id, row.get(0)));
        }
    }
    listed
}

#[test]
fn who_can_agrees_with_row_level_security_with_item_roles() {
    let database = fresh_database("who_can_items");
    let mut admin = connect(&database, "postgres");
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut compared = [0; 2];
    let mut through_item_roles = [0; 2];
    for round in 0..12u64 {
        admin
            .batch_execute(&random_item_catalog(round, &mut rng))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let ws = format!("i{round}");
        let tables = [format!("projects_{round}"), format!("tasks_{round}")];
        let allowed = allowed_pairs(
            &mut admin,
            &database,
            &ws,
            &[tables[0].as_str(), tables[1].as_str()],
        );
        for (t, table) in tables.iter().enumerate() {
            let listed = listed_pairs(&mut admin, &ws, table);
            assert_eq!(
                allowed[t], listed,
                "round {round}, {table}: (row, user) pairs row-level security allows vs fluent_who_can lists"
            );
            compared[t] += allowed[t].len();
            // How many of them came through an item role only.
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM generate_series(0, $2 - 1) id,
                            fluent_who_can($1::text::regclass, id::text, 'read') w
                      WHERE w.reach = 'item role'",
                    &[table, &ROWS],
                )
                .unwrap()
                .get(0);
            through_item_roles[t] += n;
        }
    }
    // Both tables had rows to compare, some of them reached by item roles.
    for (t, what) in ["projects", "tasks"].iter().enumerate() {
        assert!(
            compared[t] > 50,
            "{what}: only {} allowed pairs over all rounds",
            compared[t]
        );
        assert!(
            through_item_roles[t] > 20,
            "{what}: only {} pairs through item roles over all rounds",
            through_item_roles[t]
        );
    }
}
