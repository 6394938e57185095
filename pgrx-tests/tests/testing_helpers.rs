//! The test helpers for applications (sql/testing.sql), over real
//! connections: a test runner that is a member of fluent_admin (not a
//! superuser) acts as users through the application role and row-level
//! security applies; a runner that is not a DBA is refused, whatever role it
//! can switch to.

use fluent_pgrx_tests::{connect, fresh_database, sqlstate, APP, AUTHENTICATOR, TESTER};

#[test]
fn a_dba_runner_acts_through_the_application_role_and_others_are_refused() {
    let db = fresh_database("testing_helpers");
    connect(&db, "postgres")
        .batch_execute(&format!(
            "SELECT fluent_create_module('notes');
             SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'own');
             SELECT fluent_create_user('ann'), fluent_grant_role('ann', 'reader');
             CREATE TABLE notes (id int PRIMARY KEY, owner text);
             INSERT INTO notes VALUES (1, 'ann'), (2, 'bob');
             GRANT SELECT ON notes TO {APP}, {TESTER};
             SELECT fluent_protect('notes', 'notes', 'owner');"
        ))
        .unwrap();

    let mut runner = connect(&db, TESTER);
    let mut tx = runner.transaction().unwrap();
    tx.execute(
        "SELECT fluent_test_act_as('ann', $1::text::regrole)",
        &[&APP],
    )
    .unwrap();
    let (role, ids): (String, Vec<i32>) = (
        tx.query_one("SELECT current_user::text", &[])
            .unwrap()
            .get(0),
        tx.query("SELECT id FROM notes ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect(),
    );
    assert_eq!((role.as_str(), ids.as_slice()), (APP, [1].as_slice()));
    tx.execute(
        "SELECT fluent_test_act_as(NULL, $1::text::regrole)",
        &[&APP],
    )
    .unwrap();
    assert_eq!(tx.query("SELECT id FROM notes", &[]).unwrap().len(), 0);
    tx.execute("SELECT fluent_test_reset()", &[]).unwrap();
    let role: String = tx
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(role, TESTER);
    tx.rollback().unwrap();

    // Outside a transaction block the choice lasts one statement, and after
    // a test transaction nothing of it is left: the runner, acting for
    // nobody, sees no note.
    let after = |runner: &mut postgres::Client| -> (String, i64) {
        let row = runner
            .query_one(
                "SELECT current_user::text, (SELECT count(*) FROM notes)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(after(&mut runner), (TESTER.to_string(), 0));
    runner
        .execute(
            "SELECT fluent_test_act_as('ann', $1::text::regrole)",
            &[&APP],
        )
        .unwrap();
    assert_eq!(after(&mut runner), (TESTER.to_string(), 0));

    // An application role that bypasses row-level security is refused: the
    // test would pass for the wrong reason.
    connect(&db, "postgres")
        .batch_execute(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'helpers_bypass') THEN
                     CREATE ROLE helpers_bypass BYPASSRLS;
                 END IF;
             END $$;",
        )
        .unwrap();
    let refused = runner.execute("SELECT fluent_test_act_as('ann', 'helpers_bypass')", &[]);
    assert_eq!(sqlstate(refused), "22023");

    // The authenticator may choose a user once, but is no test runner.
    let mut other = connect(&db, AUTHENTICATOR);
    let refused = other.execute(
        "SELECT fluent_test_act_as('ann', $1::text::regrole)",
        &[&APP],
    );
    assert_eq!(sqlstate(refused), "42501");
}
