//! `fluent_who_can` agrees with row-level security on random catalogs: for
//! every row and every user, the user is listed exactly when the policies
//! let them read the row, acting as that user through the application role
//! over a real connection. Each round draws roles with random scopes on the
//! module (none to all, or unset), random grants and overrides, a random
//! reporting line, teams with leads, disabled users, a module requirement,
//! and rows with random owners (some unknown) and assignees.

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
