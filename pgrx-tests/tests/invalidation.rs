//! Precise invalidation over real connections: a change committed in one
//! session drops only what it can affect in another session's cache, and
//! that session sees the new answer at its next statement for every affected
//! user and the same answer as before for everyone else; a rolled-back change
//! is never seen.

use fluent_pgrx_tests::{connect, fresh_database, TESTER};
use postgres::Client;

const USERS: [&str; 6] = ["ann", "bob", "cat", "dan", "eve", "lea"];

fn seed(database: &str) {
    connect(database, "postgres")
        .batch_execute(
            "SELECT fluent_create_module('notes');
             SELECT fluent_create_module('tasks');
             SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'own');
             SELECT fluent_create_role('writer'), fluent_set_permission('writer', 'notes', 'write', 'all');
             SELECT fluent_create_role('lead'), fluent_set_permission('lead', 'tasks', 'read', 'team');
             SELECT fluent_create_user(u) FROM unnest('{ann,bob,cat,dan,eve,lea}'::text[]) u;
             SELECT fluent_grant_role(u, 'reader') FROM unnest('{ann,bob,cat,dan,eve}'::text[]) u;
             SELECT fluent_grant_role('bob', 'writer');
             SELECT fluent_grant_role('lea', 'lead');
             SELECT fluent_create_team('desk'), fluent_add_team_member('desk', 'lea', true);",
        )
        .unwrap();
}

/// Everything the observer's cache answers for every user: each scope and
/// the users lea's scope team reaches.
fn answers(client: &mut Client) -> Vec<String> {
    let mut all: Vec<String> = USERS
        .iter()
        .map(|u| {
            client
                .query_one(
                    "SELECT $1 || ': ' || fluent_scope($1, 'notes', 'read') || ' ' || fluent_scope($1, 'notes', 'write')
                            || ' ' || fluent_scope($1, 'tasks', 'read')",
                    &[u],
                )
                .unwrap()
                .get(0)
        })
        .collect();
    // lea's team, as the policies see it (acting as lea).
    client
        .batch_execute("BEGIN; SELECT fluent_set_user('lea', true)")
        .unwrap();
    let team: Vec<String> = client
        .query_one("SELECT fluent.rls_owner_keys('tasks', 'read')", &[])
        .unwrap()
        .get(0);
    client.batch_execute("COMMIT").unwrap();
    all.push(format!("lea's team: {}", team.join(",")));
    all
}

/// A kind of change, the SQL that makes it, and the answers it changes
/// ("before", "after").
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[test]
fn each_kind_of_change_reaches_exactly_the_users_it_affects() {
    let db = fresh_database("invalidation");
    seed(&db);
    // The observer is a test role (fluent_admin): it reads anyone's scopes.
    let mut observer = connect(&db, TESTER);
    let mut dba = connect(&db, "postgres");
    // (change, the answers it changes, as "before -> after")
    let cases: [Case; 21] = [
        ("grant", "SELECT fluent_grant_role('ann', 'writer')", &[("ann: own none none", "ann: own all none")]),
        ("revoke", "SELECT fluent_revoke_role('bob', 'writer')", &[("bob: own all none", "bob: own none none")]),
        (
            "role permission",
            "SELECT fluent_set_permission('writer', 'notes', 'write', 'own')",
            &[("ann: own all none", "ann: own own none")],
        ),
        ("override", "SELECT fluent_set_override('cat', 'notes', 'read', 'all')", &[("cat: own none none", "cat: all none none")]),
        // A role's permission resolves the scopes of the role sets holding
        // it in place; cat, who holds it with an override, is loaded again.
        (
            "permission of a role held by a user with an override (cat)",
            "SELECT fluent_set_permission('reader', 'tasks', 'read', 'own')",
            &[
                ("ann: own own none", "ann: own own own"),
                ("bob: own none none", "bob: own none own"),
                ("cat: all none none", "cat: all none own"),
                ("dan: own none none", "dan: own none own"),
                ("eve: own none none", "eve: own none own"),
            ],
        ),
        (
            "that permission cleared",
            "SELECT fluent_clear_permission('reader', 'tasks', 'read')",
            &[
                ("ann: own own own", "ann: own own none"),
                ("bob: own none own", "bob: own none none"),
                ("cat: all none own", "cat: all none none"),
                ("dan: own none own", "dan: own none none"),
                ("eve: own none own", "eve: own none none"),
            ],
        ),
        (
            "gate",
            "SELECT fluent_set_module_enabled('tasks', false)",
            &[("lea: none none team", "lea: none none none"), ("lea's team: lea", "lea's team: ")],
        ),
        ("user status", "SELECT fluent_set_user_status('dan', 'disabled')", &[("dan: own none none", "dan: none none none")]),
        (
            "team membership",
            "SELECT fluent_set_module_enabled('tasks', true), fluent_add_team_member('desk', 'eve')",
            &[("lea: none none none", "lea: none none team"), ("lea's team: ", "lea's team: lea,eve")],
        ),
        ("manager", "SELECT fluent_set_manager('ann', 'lea')", &[("lea's team: lea,eve", "lea's team: lea,ann,eve")]),
        // The workspace model (modules, actions, requirements, administrative
        // rights, item roles) is loaded again; its users are kept, their
        // role sets resolved again, those with overrides (cat) loaded again.
        ("new module (nobody's answer changes)", "SELECT fluent_create_module('files')", &[]),
        (
            "requirement (ann's notes.write now needs tasks.read, which she lacks)",
            "SELECT fluent_set_requirement('notes', 'tasks', 'read', action => 'write')",
            &[("ann: own own none", "ann: own none none")],
        ),
        (
            "requirement cleared",
            "SELECT fluent_clear_requirement('notes', action => 'write')",
            &[("ann: own none none", "ann: own own none")],
        ),
        ("administrative right (nobody's answer changes)", "SELECT fluent_set_admin_right('manage_roles', 'tasks', 'read')", &[]),
        (
            "item role (nobody's answer changes)",
            "SELECT fluent_create_item_role('notes', 'note_editor', ARRAY['read', 'write'])",
            &[],
        ),
        (
            "role flags and description (nobody's answer changes)",
            "SELECT fluent_alter_role('reader', privileged => true, description => 'reads notes')",
            &[],
        ),
        (
            "gate on a module a user with an override holds (cat) and role sets hold",
            "SELECT fluent_set_module_enabled('notes', false)",
            &[
                ("ann: own own none", "ann: none none none"),
                ("bob: own none none", "bob: none none none"),
                ("cat: all none none", "cat: none none none"),
                ("eve: own none none", "eve: none none none"),
            ],
        ),
        (
            "gate reopened",
            "SELECT fluent_set_module_enabled('notes', true)",
            &[
                ("ann: none none none", "ann: own own none"),
                ("bob: none none none", "bob: own none none"),
                ("cat: none none none", "cat: all none none"),
                ("eve: none none none", "eve: own none none"),
            ],
        ),
        (
            "new role, given a permission and granted (its holder only)",
            "SELECT fluent_create_role('auditor'), fluent_set_permission('auditor', 'notes', 'read', 'all'),
                    fluent_grant_role('eve', 'auditor')",
            &[("eve: own none none", "eve: all none none")],
        ),
        (
            "new sign-in role (everyone else may no longer act)",
            "SELECT fluent_create_role('login'), fluent_grant_role('eve', 'login'), fluent_grant_role('lea', 'login'),
                    fluent_alter_role('login', grants_sign_in => true)",
            &[
                ("ann: own own none", "ann: none none none"),
                ("bob: own none none", "bob: none none none"),
                ("cat: all none none", "cat: none none none"),
            ],
        ),
        (
            "template applied (the workspace is reloaded; nobody's answer changes)",
            "SELECT fluent_apply_template('cx')",
            &[],
        ),
    ];
    for (kind, change, changed) in cases {
        let before = answers(&mut observer);
        // Rolled back: never seen.
        let mut tx = dba.transaction().unwrap();
        tx.batch_execute(change).unwrap();
        tx.rollback().unwrap();
        assert_eq!(answers(&mut observer), before, "{kind}: rolled back");
        // Committed: seen at the next statement, for the affected users only.
        dba.batch_execute(change).unwrap();
        let expected: Vec<String> = before
            .iter()
            .map(|a| {
                changed
                    .iter()
                    .find(|(old, _)| old == a)
                    .map_or_else(|| a.clone(), |(_, new)| (*new).to_owned())
            })
            .collect();
        assert_eq!(answers(&mut observer), expected, "{kind}: committed");
    }
}

#[test]
fn a_repeatable_read_transaction_keeps_no_stale_answer_after_it_ends() {
    let db = fresh_database("invalidation_rr");
    seed(&db);
    let mut observer = connect(&db, TESTER);
    let mut dba = connect(&db, "postgres");
    let scope = |c: &mut Client| -> String {
        c.query_one("SELECT fluent_scope('bob', 'notes', 'write')", &[])
            .unwrap()
            .get(0)
    };
    // The snapshot is taken before the revoke, bob is first loaded after it.
    observer
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .unwrap();
    dba.batch_execute("SELECT fluent_revoke_role('bob', 'writer')")
        .unwrap();
    assert_eq!(scope(&mut observer), "all", "the transaction's snapshot");
    observer.batch_execute("COMMIT").unwrap();
    assert_eq!(scope(&mut observer), "none", "after it ends");

    // The same with fluent already loaded in the backend before the snapshot.
    observer
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT fluent_scope('ann', 'notes', 'read')",
        )
        .unwrap();
    dba.batch_execute("SELECT fluent_grant_role('bob', 'writer')")
        .unwrap();
    assert_eq!(scope(&mut observer), "none", "the transaction's snapshot");
    observer.batch_execute("COMMIT").unwrap();
    assert_eq!(scope(&mut observer), "all", "after it ends");
}

/// This backend's (user loads, model loads) so far (`fluent.cache_statistics()`).
fn loads(client: &mut Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT user_loads, model_loads FROM fluent.cache_statistics()",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn a_change_loads_again_only_what_it_changes() {
    let db = fresh_database("invalidation_loads");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    // Twenty bystanders hold the readers' role; cat has an override.
    dba.batch_execute(
        "SELECT fluent_create_user('by' || g), fluent_grant_role('by' || g, 'reader') FROM generate_series(1, 20) g;
         SELECT fluent_set_override('cat', 'tasks', 'read', 'own');",
    )
    .unwrap();
    let everyone: Vec<String> = USERS
        .iter()
        .map(|u| u.to_string())
        .chain((1..=20).map(|g| format!("by{g}")))
        .collect();
    let mut observer = connect(&db, TESTER);
    let check_everyone = |c: &mut Client| {
        for user in &everyone {
            c.query_one("SELECT fluent_scope($1, 'notes', 'read')", &[user])
                .unwrap();
        }
    };
    check_everyone(&mut observer);
    // (change, users loaded again, models loaded again)
    // A role or model change resolves the role sets' scopes again in place:
    // only users with overrides load again, never the role's other holders.
    let cases: [(&str, &str, i64, i64); 11] = [
        ("a grant: its user", "SELECT fluent_grant_role('ann', 'writer')", 1, 0),
        ("a team membership: nobody's scopes", "SELECT fluent_add_team_member('desk', 'eve')", 0, 0),
        (
            "a permission of a role: none of its holders (bob, ann), the roles compiled once",
            "SELECT fluent_set_permission('writer', 'notes', 'write', 'own')",
            0,
            1,
        ),
        (
            "a permission of a role 25 users hold: its holder with overrides (cat)",
            "SELECT fluent_set_permission('reader', 'tasks', 'read', 'own')",
            1,
            1,
        ),
        (
            "a new role, given a permission and granted: the user granted it",
            "SELECT fluent_create_role('auditor'), fluent_set_permission('auditor', 'notes', 'read', 'all'),
                    fluent_grant_role('eve', 'auditor')",
            1,
            1,
        ),
        ("a role's flags: none of its holders (lea)", "SELECT fluent_alter_role('lead', privileged => true)", 0, 1),
        ("a new module: the users with overrides (cat)", "SELECT fluent_create_module('files')", 1, 1),
        ("a gate: the users with overrides", "SELECT fluent_set_module_enabled('files', false)", 1, 1),
        (
            "a requirement: the users with overrides",
            "SELECT fluent_set_requirement('files', 'notes', 'read')",
            1,
            1,
        ),
        (
            "an administrative right: the users with overrides",
            "SELECT fluent_set_admin_right('manage_roles', 'tasks', 'read')",
            1,
            1,
        ),
        (
            "an item role: the users with overrides",
            "SELECT fluent_create_item_role('notes', 'note_editor', ARRAY['read'])",
            1,
            1,
        ),
    ];
    for (kind, change, users, models) in cases {
        // Rolled back: no backend is told, nothing is loaded.
        let before = loads(&mut observer);
        let mut tx = dba.transaction().unwrap();
        tx.batch_execute(change).unwrap();
        tx.rollback().unwrap();
        check_everyone(&mut observer);
        assert_eq!(loads(&mut observer), before, "{kind}: rolled back");
        dba.batch_execute(change).unwrap();
        check_everyone(&mut observer);
        let after = loads(&mut observer);
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (users, models),
            "{kind}: loads (users, models) after checking all {} users",
            everyone.len()
        );
    }
}

fn can(client: &mut Client, user: &str) -> bool {
    client
        .query_one("SELECT fluent_can($1, 'notes', 'read')", &[&user])
        .unwrap()
        .get(0)
}

#[test]
fn a_look_through_a_snapshot_older_than_the_change_is_taken_again() {
    let db = fresh_database("invalidation_old_snapshot");
    seed(&db);
    let mut observer = connect(&db, TESTER);
    let mut dba = connect(&db, "postgres");
    assert!(can(&mut observer, "ann"));
    // The change's message arrives at the FETCH, whose checks read through
    // the cursor's snapshot, older than the revoke.
    observer
        .batch_execute(
            "BEGIN; DECLARE c CURSOR FOR SELECT fluent_can('bob', 'notes', 'read') FROM generate_series(1, 3)",
        )
        .unwrap();
    dba.batch_execute("SELECT fluent_revoke_role('ann', 'reader')")
        .unwrap();
    observer.batch_execute("FETCH 1 FROM c").unwrap();
    assert!(!can(&mut observer, "ann"), "the next statement");
    observer.batch_execute("COMMIT").unwrap();
    assert!(!can(&mut observer, "ann"), "the next transaction");
    // A cursor held past its transaction is materialised at COMMIT, through
    // its snapshot.
    observer
        .batch_execute(
            "BEGIN; DECLARE h CURSOR WITH HOLD FOR SELECT fluent_can('bob', 'notes', 'read') FROM generate_series(1, 3)",
        )
        .unwrap();
    dba.batch_execute("SELECT fluent_revoke_role('bob', 'reader')")
        .unwrap();
    observer.batch_execute("COMMIT; CLOSE h").unwrap();
    assert!(!can(&mut observer, "bob"), "after a held cursor");
}

#[test]
fn an_error_while_loading_again_leaves_nothing_stale() {
    let db = fresh_database("invalidation_error");
    seed(&db);
    let mut observer = connect(&db, TESTER);
    let mut dba = connect(&db, "postgres");
    let mut locker = connect(&db, "postgres");
    assert!(can(&mut observer, "ann"));
    for (lock, change, restore) in [
        (
            "fluent.requirements",
            "SELECT fluent_set_module_enabled('notes', false)",
            "SELECT fluent_set_module_enabled('notes', true)",
        ),
        (
            "fluent.roles",
            "SELECT fluent_set_permission('reader', 'notes', 'read', 'none')",
            "SELECT fluent_set_permission('reader', 'notes', 'read', 'own')",
        ),
    ] {
        // Loading the model (or the roles) again times out on a lock.
        dba.batch_execute(change).unwrap();
        locker
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE {lock} IN ACCESS EXCLUSIVE MODE"
            ))
            .unwrap();
        observer
            .batch_execute("SET lock_timeout = '200ms'")
            .unwrap();
        let timed_out = observer.query_one("SELECT fluent_can('ann', 'notes', 'read')", &[]);
        assert_eq!(
            timed_out
                .err()
                .and_then(|e| e.code().map(|c| c.code().to_owned())),
            Some("55P03".to_owned()),
            "{change}: the load waits for {lock}"
        );
        locker.batch_execute("COMMIT").unwrap();
        observer.batch_execute("RESET lock_timeout").unwrap();
        assert!(!can(&mut observer, "ann"), "{change}: after the error");
        assert!(!can(&mut observer, "bob"), "{change}: after the error");
        dba.batch_execute(restore).unwrap();
        assert!(can(&mut observer, "ann"), "{change}: restored");
    }
}

#[test]
fn a_writer_sees_what_it_wrote_after_its_last_look() {
    let db = fresh_database("invalidation_own_writes");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    let scope = |c: &mut Client, user: &str| -> String {
        c.query_one("SELECT fluent_scope($1, 'notes', 'write')", &[&user])
            .unwrap()
            .get(0)
    };
    assert_eq!(scope(&mut dba, "cat"), "none");
    // The look in the middle of the transaction sees its own first grant;
    // the second comes after it. A later transaction id completed before
    // the look (another session's), so the look's snapshot has its xmax
    // past the writer's own id.
    let mut other = connect(&db, TESTER);
    dba.batch_execute("BEGIN; SELECT fluent_grant_role('ann', 'writer')")
        .unwrap();
    other.batch_execute("SELECT pg_current_xact_id()").unwrap();
    dba.batch_execute(
        "SELECT fluent_can('ann', 'notes', 'write');
         SELECT fluent_grant_role('cat', 'writer');
         COMMIT;",
    )
    .unwrap();
    assert_eq!(
        scope(&mut dba, "cat"),
        "all",
        "the writer, after its commit"
    );
    assert_eq!(scope(&mut other, "cat"), "all", "another session");
}

#[test]
fn changed_users_marked_in_bulk_are_swept_and_seen() {
    let db = fresh_database("invalidation_sweep");
    seed(&db);
    let mut dba = connect(&db, "postgres");
    dba.batch_execute("SELECT count(fluent_create_user('m' || g)) FROM generate_series(1, 1200) g")
        .unwrap();
    let mut observer = connect(&db, TESTER);
    let scope = |c: &mut Client, user: &str| -> String {
        c.query_one("SELECT fluent_scope($1, 'notes', 'read')", &[&user])
            .unwrap()
            .get(0)
    };
    let cached: Vec<String> = (1..=10)
        .map(|g| format!("m{g}"))
        .chain(USERS.map(String::from))
        .collect();
    for user in &cached {
        scope(&mut observer, user);
    }
    // 1,200 users changed in one transaction: more marks than the look
    // keeps (src/cache.rs), so it sweeps the cached entries.
    dba.batch_execute(
        "SELECT count(fluent_grant_role('m' || g, 'reader')) FROM generate_series(1, 1200) g",
    )
    .unwrap();
    let before = loads(&mut observer);
    for user in &cached {
        let expected = match user.as_str() {
            "lea" => "none",
            _ => "own",
        };
        assert_eq!(scope(&mut observer, user), expected, "{user}");
    }
    assert_eq!(
        loads(&mut observer).0 - before.0,
        10,
        "the ten changed users, loaded again"
    );
    // A user changed after the sweep is marked again and seen.
    dba.batch_execute("SELECT fluent_revoke_role('m3', 'reader')")
        .unwrap();
    assert_eq!(scope(&mut observer, "m3"), "none");
    assert_eq!(scope(&mut observer, "m4"), "own");
}

/// A team change drops the team sets of that team's leads, and a lead made
/// or unmade drops their own: another session sees the change at its next
/// statement, and loads no other lead's set again.
#[test]
fn a_team_change_drops_the_sets_of_its_leads_only() {
    let db = fresh_database("invalidation_teams");
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(&format!(
        "ALTER DATABASE {db} SET track_functions = 'all';
         SELECT fluent_create_module('tasks');
         SELECT fluent_create_role('lead'), fluent_set_permission('lead', 'tasks', 'read', 'team');
         SELECT fluent_create_user(u) FROM unnest('{{lea,lou,ann,bob,cat}}'::text[]) u;
         SELECT fluent_grant_role('lea', 'lead'), fluent_grant_role('lou', 'lead');
         SELECT fluent_create_team('desk'), fluent_add_team_member('desk', 'lea', true),
                fluent_add_team_member('desk', 'ann');
         SELECT fluent_create_team('ops'), fluent_add_team_member('ops', 'lou', true),
                fluent_add_team_member('ops', 'bob');"
    ))
    .unwrap();
    let mut observer = connect(&db, TESTER);
    // Each lead's team as the policies see it, in one transaction of the
    // observer, and how many team sets it loaded.
    // (Counted as the calls the backend has not yet reported, which no
    // report empties inside a transaction.)
    let calls = |observer: &mut Client| -> i64 {
        observer
            .query_one(
                "SELECT coalesce(pg_stat_get_xact_function_calls('fluent._load_led_teams(int, bigint)'::regprocedure), 0)",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let teams = |observer: &mut Client| -> (String, String, i64) {
        observer.batch_execute("BEGIN").unwrap();
        let before = calls(observer);
        let mut team = |lead: &str| -> String {
            // (The call is folded when its statement is planned: after the
            // identity is chosen, in a statement of its own.)
            observer
                .execute("SELECT fluent_set_user($1, true)", &[&lead])
                .unwrap();
            let keys: Vec<String> = observer
                .query_one("SELECT fluent.rls_owner_keys('tasks', 'read')", &[])
                .unwrap()
                .get(0);
            keys.join(",")
        };
        let (lea, lou) = (team("lea"), team("lou"));
        let loads = calls(observer) - before;
        observer.batch_execute("COMMIT").unwrap();
        (lea, lou, loads)
    };
    assert_eq!(
        teams(&mut observer),
        ("lea,ann".into(), "lou,bob".into(), 2)
    );
    assert_eq!(
        teams(&mut observer),
        ("lea,ann".into(), "lou,bob".into(), 0),
        "cached"
    );
    // (change, lea's team after, lou's team after, sets loaded again)
    let cases = [
        (
            "SELECT fluent_add_team_member('desk', 'cat')",
            "lea,ann,cat",
            "lou,bob",
            1,
        ),
        (
            "SELECT fluent_remove_team_member('desk', 'ann')",
            "lea,cat",
            "lou,bob",
            1,
        ),
        (
            "SELECT fluent_add_team_member('ops', 'ann')",
            "lea,cat",
            "lou,ann,bob",
            1,
        ),
        // lou made a lead of desk too: lou's set, and desk's leads'.
        (
            "SELECT fluent_add_team_member('desk', 'lou', true)",
            "lea,cat,lou",
            "lou,ann,bob,cat,lea",
            2,
        ),
        (
            "SELECT fluent_remove_team_member('desk', 'lou')",
            "lea,cat",
            "lou,ann,bob",
            2,
        ),
        // A manager changes a reporting line: every set.
        (
            "SELECT fluent_set_manager('cat', 'lou')",
            "lea,cat",
            "lou,ann,bob,cat",
            2,
        ),
    ];
    for (change, lea, lou, loads) in cases {
        dba.batch_execute(change).unwrap();
        assert_eq!(
            teams(&mut observer),
            (lea.into(), lou.into(), loads),
            "after {change}"
        );
    }
    // A rolled-back change is never seen, and drops nothing.
    dba.batch_execute("BEGIN; SELECT fluent_remove_team_member('ops', 'bob'); ROLLBACK")
        .unwrap();
    assert_eq!(
        teams(&mut observer),
        ("lea,cat".into(), "lou,ann,bob,cat".into(), 0)
    );
}
