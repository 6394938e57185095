//! Item roles over real connections, as the application role: a change
//! committed in another session (an assignment written through the app, a
//! team membership, an item role dropped, the role an item role requires
//! revoked, the module disabled) is seen at the acting session's next
//! statement, on the item table and on its child table; prepared statements
//! follow those changes and the acting user in every plan cache mode; and
//! the plan of a protected query calls no fluent function per row.

use fluent_pgrx_tests::{app_session, connect, fresh_database, tester_session, APP};
use postgres::{Client, Statement};

/// Projects 1-3 belong to olga (scope own), 4 to dan (no scope). ann views
/// project 1, the design team (bob) manages project 2, cat is boss of
/// project 3 while she holds `lead`. Tasks hang under the projects.
fn database(name: &str) -> String {
    let database = fresh_database(name);
    let mut db = connect(&database, "postgres");
    db.batch_execute(
        "SELECT fluent_create_module('projects', '{read,write,delete,create}');
         SELECT fluent_create_item_role('projects', 'manager', '{read,write,delete}');
         SELECT fluent_create_item_role('projects', 'viewer', '{read}');
         SELECT fluent_create_role('lead');
         SELECT fluent_create_item_role('projects', 'boss', '{read,write}', required_role => 'lead');
         SELECT fluent_create_role('owner');
         SELECT fluent_set_permission('owner', 'projects', a, 'own') FROM unnest('{read,write}'::text[]) a;
         SELECT fluent_create_user(u) FROM unnest('{olga,ann,bob,cat,eve,fay,dan}'::text[]) u;
         SELECT fluent_grant_role('olga', 'owner'), fluent_grant_role('cat', 'lead');
         SELECT fluent_create_team('design'), fluent_add_team_member('design', 'bob');
         CREATE TABLE projects (id int PRIMARY KEY, owner text, ws text NOT NULL);
         CREATE TABLE project_roles (project_id int NOT NULL REFERENCES projects ON DELETE CASCADE, user_key text,
                                     team text, role text NOT NULL);
         CREATE INDEX project_roles_user_idx ON project_roles (user_key);
         CREATE INDEX project_roles_team_idx ON project_roles (team);
         CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects, ws text NOT NULL);
         CREATE INDEX ON tasks (project_id);
         INSERT INTO projects VALUES (1, 'olga', 'default'), (2, 'olga', 'default'),
                                     (3, 'olga', 'default'), (4, 'dan', 'default');
         INSERT INTO tasks VALUES (11, 1, 'default'), (12, 1, 'default'), (21, 2, 'default'),
                                  (22, 2, 'default'), (31, 3, 'default'), (41, 4, 'default');
         SELECT fluent_protect('projects', 'projects', 'owner', membership_table => 'project_roles',
             membership_row_column => 'project_id', membership_user_column => 'user_key',
             membership_role_column => 'role', membership_team_column => 'team', workspace_column => 'ws');
         SELECT fluent_protect('tasks', 'projects', parent_table => 'projects', parent_column => 'project_id',
             workspace_column => 'ws');
         INSERT INTO project_roles VALUES (1, 'ann', NULL, 'viewer'), (2, NULL, 'design', 'manager'),
                                          (3, 'cat', NULL, 'boss');",
    )
    .unwrap();
    db.batch_execute(&format!(
        "GRANT SELECT ON projects, tasks TO {APP};
         GRANT SELECT, INSERT, DELETE ON project_roles TO {APP};"
    ))
    .unwrap();
    database
}

/// The projects and the tasks a session reads.
type Seen = (Vec<i32>, Vec<i32>);

const PROJECTS: &str =
    "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM projects WHERE id > $1";
const TASKS: &str = "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM tasks WHERE id > $1";

fn seen(projects: &[i32], tasks: &[i32]) -> Seen {
    (projects.to_vec(), tasks.to_vec())
}

fn nothing() -> Seen {
    seen(&[], &[])
}

/// What a session reads now, each query one statement.
fn sees(client: &mut Client) -> Seen {
    let projects = client.query_one(PROJECTS, &[&0i32]).unwrap().get(0);
    let tasks = client.query_one(TASKS, &[&0i32]).unwrap().get(0);
    (projects, tasks)
}

/// A change made in session `b`: not seen by `a` while uncommitted nor when
/// rolled back; seen at `a`'s next statement once committed.
fn step(a: &mut Client, b: &mut Client, change: &str, before: &Seen, after: &Seen, what: &str) {
    assert_eq!(&sees(a), before, "{what}: before");
    let mut tx = b.transaction().unwrap();
    tx.batch_execute(change).unwrap();
    assert_eq!(&sees(a), before, "{what}: while uncommitted");
    tx.rollback().unwrap();
    assert_eq!(&sees(a), before, "{what}: rolled back");
    b.batch_execute(change).unwrap();
    assert_eq!(&sees(a), after, "{what}: committed, at the next statement");
}

#[test]
fn a_change_committed_in_another_session_is_seen_at_the_next_statement() {
    let db = database("item_roles_sessions");
    let mut dba = connect(&db, "postgres");

    // App data: olga, through the app, names fay viewer of her project 1.
    let mut olga = app_session(&db, "olga");
    let mut fay = app_session(&db, "fay");
    step(
        &mut fay,
        &mut olga,
        "INSERT INTO project_roles VALUES (1, 'fay', NULL, 'viewer')",
        &nothing(),
        &seen(&[1], &[11, 12]),
        "olga names fay viewer of project 1",
    );
    step(
        &mut fay,
        &mut olga,
        "DELETE FROM project_roles WHERE user_key = 'fay'",
        &seen(&[1], &[11, 12]),
        &nothing(),
        "olga removes fay's assignment",
    );

    // Team membership (the catalog): eve joins and leaves the design team,
    // which manages project 2.
    let mut eve = app_session(&db, "eve");
    step(
        &mut eve,
        &mut dba,
        "SELECT fluent_add_team_member('design', 'eve')",
        &nothing(),
        &seen(&[2], &[21, 22]),
        "eve added to design",
    );
    step(
        &mut eve,
        &mut dba,
        "SELECT fluent_remove_team_member('design', 'eve')",
        &seen(&[2], &[21, 22]),
        &nothing(),
        "eve removed from design",
    );

    // The condition of an item role: cat is boss of project 3 while she
    // holds lead.
    let mut cat = app_session(&db, "cat");
    step(
        &mut cat,
        &mut dba,
        "SELECT fluent_revoke_role('cat', 'lead')",
        &seen(&[3], &[31]),
        &nothing(),
        "lead revoked from cat",
    );
    step(
        &mut cat,
        &mut dba,
        "SELECT fluent_grant_role('cat', 'lead')",
        &nothing(),
        &seen(&[3], &[31]),
        "lead granted to cat again",
    );

    // The module disabled and enabled: bob's team assignment and olga's
    // scope go and come back.
    let mut bob = app_session(&db, "bob");
    step(
        &mut bob,
        &mut dba,
        "SELECT fluent_set_module_enabled('projects', false)",
        &seen(&[2], &[21, 22]),
        &nothing(),
        "module disabled (bob)",
    );
    assert_eq!(sees(&mut olga), nothing(), "module disabled (olga)");
    step(
        &mut bob,
        &mut dba,
        "SELECT fluent_set_module_enabled('projects', true)",
        &nothing(),
        &seen(&[2], &[21, 22]),
        "module enabled (bob)",
    );
    assert_eq!(
        sees(&mut olga),
        seen(&[1, 2, 3], &[]),
        "module enabled (olga)"
    );

    // An item role dropped: ann's viewer assignment gives nothing.
    let mut ann = app_session(&db, "ann");
    step(
        &mut ann,
        &mut dba,
        "SELECT fluent_drop_item_role('projects', 'viewer')",
        &seen(&[1], &[11, 12]),
        &nothing(),
        "viewer dropped",
    );
    // ... and nobody else's answer changed.
    assert_eq!(sees(&mut bob), seen(&[2], &[21, 22]), "bob after the drop");
    assert_eq!(sees(&mut cat), seen(&[3], &[31]), "cat after the drop");
    assert_eq!(sees(&mut eve), nothing(), "eve after the drop");
}

/// Prepared statements (extended protocol) on the item table and the child
/// table, kept by one session.
struct Prepared {
    client: Client,
    projects: Statement,
    tasks: Statement,
}

impl Prepared {
    fn new(mut client: Client, mode: &str) -> Self {
        client
            .batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .unwrap();
        let projects = client.prepare(PROJECTS).unwrap();
        let tasks = client.prepare(TASKS).unwrap();
        Prepared {
            client,
            projects,
            tasks,
        }
    }

    /// Runs both statements often enough for the plan cache to settle on a
    /// generic plan (in mode auto), each run checked.
    fn expect(&mut self, expected: &Seen, what: &str) {
        for run in 0..6 {
            let projects: Vec<i32> = self
                .client
                .query_one(&self.projects, &[&0i32])
                .unwrap()
                .get(0);
            let tasks: Vec<i32> = self.client.query_one(&self.tasks, &[&0i32]).unwrap().get(0);
            assert_eq!(&(projects, tasks), expected, "{what}, run {run}");
        }
    }
}

#[test]
fn prepared_statements_follow_catalog_changes_committed_in_another_session() {
    for (i, mode) in ["auto", "force_generic_plan", "force_custom_plan"]
        .into_iter()
        .enumerate()
    {
        let db = database(&format!("item_roles_plans_{i}"));
        let mut dba = connect(&db, "postgres");
        let mut eve = Prepared::new(app_session(&db, "eve"), mode);
        let mut bob = Prepared::new(app_session(&db, "bob"), mode);
        let mut cat = Prepared::new(app_session(&db, "cat"), mode);
        let two = seen(&[2], &[21, 22]);
        let three = seen(&[3], &[31]);
        // (change, then what eve, bob and cat see)
        let steps: [(&str, [&Seen; 3]); 7] = [
            ("(prepared)", [&nothing(), &two, &three]),
            (
                "SELECT fluent_add_team_member('design', 'eve')",
                [&two, &two, &three],
            ),
            (
                "SELECT fluent_revoke_role('cat', 'lead')",
                [&two, &two, &nothing()],
            ),
            (
                "SELECT fluent_grant_role('cat', 'lead')",
                [&two, &two, &three],
            ),
            (
                "SELECT fluent_remove_team_member('design', 'eve')",
                [&nothing(), &two, &three],
            ),
            (
                "SELECT fluent_drop_item_role('projects', 'manager')",
                [&nothing(), &nothing(), &three],
            ),
            (
                // the team no longer holds an item role that exists
                "SELECT fluent_add_team_member('design', 'eve')",
                [&nothing(), &nothing(), &three],
            ),
        ];
        for (change, [sees_eve, sees_bob, sees_cat]) in steps {
            if change != "(prepared)" {
                dba.batch_execute(change).unwrap();
            }
            eve.expect(sees_eve, &format!("{mode}: eve after {change}"));
            bob.expect(sees_bob, &format!("{mode}: bob after {change}"));
            cat.expect(sees_cat, &format!("{mode}: cat after {change}"));
        }
    }
}

#[test]
fn a_prepared_statement_follows_the_acting_user() {
    let db = database("item_roles_identity");
    let users: [(&str, Seen); 7] = [
        ("olga", seen(&[1, 2, 3], &[])),
        ("ann", seen(&[1], &[11, 12])),
        ("bob", seen(&[2], &[21, 22])),
        ("cat", seen(&[3], &[31])),
        ("eve", nothing()),
        ("dan", nothing()),
        ("bob", seen(&[2], &[21, 22])),
    ];
    for mode in ["auto", "force_generic_plan", "force_custom_plan"] {
        let mut c = Prepared::new(tester_session(&db, "ann"), mode);
        c.expect(&seen(&[1], &[11, 12]), &format!("{mode}: ann, as prepared"));
        for (user, sees) in &users {
            c.client
                .batch_execute(&format!(
                    "RESET ROLE; SELECT fluent_set_user('{user}'); SET ROLE {APP}"
                ))
                .unwrap();
            c.expect(sees, &format!("{mode}: acting as {user}"));
        }
    }
}

/// The plan of `query` as the session runs it.
fn explain(client: &mut Client, query: &str) -> Vec<String> {
    client
        .query(&format!("EXPLAIN (VERBOSE, COSTS OFF) {query}"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn the_plan_calls_no_fluent_function_per_row() {
    let db = database("item_roles_explain");
    for (user, table) in [
        ("bob", "projects"),
        ("bob", "tasks"),
        ("ann", "projects"),
        ("cat", "tasks"),
    ] {
        let mut c = app_session(&db, user);
        // The tables are tiny: without sequential scans, the planner shows
        // whether the assignment table's user index can serve the policy.
        c.batch_execute("SET enable_seqscan = off").unwrap();
        let plan = explain(&mut c, &format!("SELECT * FROM {table}"));
        let text = plan.join("\n");
        for line in &plan {
            let line = line.trim_start();
            if line.starts_with("Filter:")
                || line.starts_with("Index Cond:")
                || line.starts_with("Recheck Cond:")
            {
                assert!(
                    !line.contains("fluent."),
                    "{user} on {table}: a condition calls fluent per row: {line}\n{text}"
                );
            }
        }
        assert!(
            text.contains("project_roles_user_idx"),
            "{user} on {table}: the assignment table's user index is not used\n{text}"
        );
        assert!(
            plan.iter().any(|l| {
                let l = l.trim_start();
                l.starts_with("Index Cond:") && l.contains(&format!("user_key = '{user}'::text"))
            }),
            "{user} on {table}: the user is not folded into an index condition\n{text}"
        );
        // The rows are still right under this plan.
        let expected = match (user, table) {
            ("bob", "projects") => vec![2],
            ("bob", "tasks") => vec![21, 22],
            ("ann", "projects") => vec![1],
            ("cat", "tasks") => vec![31],
            _ => unreachable!(),
        };
        let rows: Vec<i32> = c
            .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(rows, expected, "{user} on {table}: rows");
    }
}

#[test]
fn a_parent_table_is_dropped_only_with_the_children_its_item_roles_reach() {
    let database = database("drop_parent");
    let mut db = connect(&database, "postgres");
    // Its tasks would otherwise be put under whatever table takes its name.
    let refused = db.batch_execute("DROP TABLE projects CASCADE");
    assert_eq!(fluent_pgrx_tests::sqlstate(refused), "2BP01");
    db.batch_execute("DROP TABLE projects, tasks CASCADE")
        .unwrap();
    let left: i64 = db
        .query_one("SELECT count(*) FROM fluent.protected_tables", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn an_assignment_is_audited_as_written() {
    let database = database("audit_exact");
    let mut db = connect(&database, "postgres");
    // A number to its last digit, and a value nested deeper than a Rust
    // JSON parser would read.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    db.batch_execute(&format!(
        "ALTER TABLE project_roles ADD COLUMN weight numeric, ADD COLUMN meta jsonb;
         INSERT INTO project_roles VALUES (4, 'eve', NULL, 'viewer', 0.10000000000000000555, '{deep}');"
    ))
    .unwrap();
    let (weight, meta): (String, String) = db
        .query_one(
            "SELECT after ->> 'weight', after ->> 'meta' FROM fluent.audit_log
              WHERE table_name = 'public.project_roles' AND after ->> 'user_key' = 'eve'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(weight, "0.10000000000000000555");
    assert_eq!(meta, deep);
}
