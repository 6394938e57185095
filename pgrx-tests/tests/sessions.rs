//! Behaviour that crosses sessions, over real connections, as the
//! non-superuser roles an application uses.

use fluent_pgrx_tests::{
    app_session, connect, connect_collecting_notices, fresh_database, sqlstate, APP, AUTHENTICATOR,
};

fn seed(database: &str) {
    let mut dba = connect(database, "postgres");
    dba.batch_execute(&format!(
        "SELECT fluent_create_module('invoices');
         SELECT fluent_create_role('billing');
         SELECT fluent_set_permission('billing', 'invoices', 'read', 'all');
         SELECT fluent_create_role('clerk');
         SELECT fluent_set_permission('clerk', 'invoices', 'read', 'own');
         SELECT fluent_create_user('bill');
         SELECT fluent_create_user('carl');
         SELECT fluent_grant_role('bill', 'billing');
         SELECT fluent_grant_role('carl', 'clerk');
         CREATE TABLE invoices (id int PRIMARY KEY, owner text);
         INSERT INTO invoices SELECT g, CASE WHEN g % 2 = 0 THEN 'bill' ELSE 'carl' END FROM generate_series(1, 10) g;
         GRANT SELECT ON invoices TO {APP};
         SELECT fluent_protect('invoices', 'invoices', 'owner');"
    ))
    .unwrap();
}

fn visible(client: &mut postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM invoices", &[])
        .unwrap()
        .get(0)
}

#[test]
fn a_committed_revoke_denies_the_other_session_at_its_next_statement() {
    let db = fresh_database("revoke");
    seed(&db);
    let mut bill = app_session(&db, "bill");
    assert_eq!(visible(&mut bill), 10);
    assert!(bill
        .query_one("SELECT fluent_can('invoices', 'read')", &[])
        .unwrap()
        .get::<_, bool>(0));

    let mut dba = connect(&db, "postgres");
    dba.execute("SELECT fluent_revoke_role('bill', 'billing')", &[])
        .unwrap();

    assert_eq!(
        visible(&mut bill),
        0,
        "the revoke is seen by the next statement"
    );
    assert!(!bill
        .query_one("SELECT fluent_can('invoices', 'read')", &[])
        .unwrap()
        .get::<_, bool>(0));
}

#[test]
fn an_uncommitted_grant_is_invisible_until_commit_and_a_rolled_back_one_forever() {
    let db = fresh_database("grant");
    seed(&db);
    let mut carl = app_session(&db, "carl");
    assert_eq!(visible(&mut carl), 5);

    let mut dba = connect(&db, "postgres");
    let mut tx = dba.transaction().unwrap();
    tx.execute("SELECT fluent_grant_role('carl', 'billing')", &[])
        .unwrap();
    assert_eq!(visible(&mut carl), 5, "not committed yet");
    tx.rollback().unwrap();
    assert_eq!(visible(&mut carl), 5, "rolled back");

    let mut tx = dba.transaction().unwrap();
    tx.execute("SELECT fluent_grant_role('carl', 'billing')", &[])
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(visible(&mut carl), 10, "committed");

    // A permission change (not a grant) travels the same way.
    dba.execute(
        "SELECT fluent_set_permission('billing', 'invoices', 'read', 'none')",
        &[],
    )
    .unwrap();
    assert_eq!(visible(&mut carl), 5, "back to the clerk role's own scope");
}

#[test]
fn each_session_keeps_its_own_identity() {
    let db = fresh_database("identity");
    seed(&db);
    let mut bill = app_session(&db, "bill");
    let mut carl = app_session(&db, "carl");
    assert_eq!(visible(&mut bill), 10);
    assert_eq!(visible(&mut carl), 5);
    let who: Option<String> = carl
        .query_one("SELECT fluent_current_user()", &[])
        .unwrap()
        .get(0);
    assert_eq!(who.as_deref(), Some("carl"));
}

#[test]
fn an_application_role_cannot_become_another_user() {
    let db = fresh_database("spoof");
    seed(&db);
    let mut carl = app_session(&db, "carl");
    assert_eq!(
        sqlstate(carl.execute("SELECT fluent_set_user('bill')", &[])),
        "42501"
    );
    assert_eq!(
        sqlstate(carl.batch_execute("SET fluent.acting_user = 'bill'")),
        "42501"
    );
    assert_eq!(
        sqlstate(carl.execute("SELECT set_config('fluent.acting_user', 'bill', true)", &[])),
        "42501"
    );
    assert_eq!(
        sqlstate(carl.batch_execute("SELECT * FROM fluent.grants")),
        "42501"
    );
    assert_eq!(visible(&mut carl), 5);

    // A login role with no fluent role at all cannot either, even before
    // the library is loaded in its backend (the setting is reserved).
    let mut admin = connect(&db, "postgres");
    admin.batch_execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'it_stranger') THEN CREATE ROLE it_stranger LOGIN; END IF; END $$").unwrap();
    admin
        .batch_execute(&format!("GRANT {APP} TO it_stranger"))
        .unwrap();
    let mut stranger = connect(&db, "it_stranger");
    let set_first = stranger.batch_execute("SET fluent.acting_user = 'bill'");
    let can: bool = stranger
        .query_one("SELECT fluent_can('invoices', 'read')", &[])
        .unwrap()
        .get(0);
    assert!(
        set_first.is_err() || !can,
        "a placeholder set before load must not take effect"
    );
    let who: Option<String> = stranger
        .query_one("SELECT fluent_current_user()", &[])
        .unwrap()
        .get(0);
    assert_eq!(who, None);
    assert_eq!(
        sqlstate(stranger.execute("SELECT fluent_set_user('bill')", &[])),
        "42501"
    );
    let _ = AUTHENTICATOR;
}

#[test]
fn a_local_identity_outside_a_transaction_block_warns_like_set_local() {
    let db = fresh_database("local_warning");
    seed(&db);
    let (mut auth, notices) = connect_collecting_notices(&db, AUTHENTICATOR);
    auth.execute("SELECT fluent_set_user('bill', true)", &[])
        .unwrap();
    assert_eq!(
        notices.lock().unwrap().as_slice(),
        ["WARNING 25P01: fluent_set_user(..., local => true) can only be used in transaction blocks"]
    );
    let who: Option<String> = auth
        .query_one("SELECT fluent_current_user()", &[])
        .unwrap()
        .get(0);
    assert_eq!(who, None, "it ended with its statement");
    // Inside a transaction block it is silent and lasts until the end.
    notices.lock().unwrap().clear();
    let mut tx = auth.transaction().unwrap();
    tx.execute("SELECT fluent_set_user('bill', true)", &[])
        .unwrap();
    let who: Option<String> = tx
        .query_one("SELECT fluent_current_user()", &[])
        .unwrap()
        .get(0);
    assert_eq!(who.as_deref(), Some("bill"));
    tx.commit().unwrap();
    assert!(notices.lock().unwrap().is_empty());
    // A NULL `local` is an error, not a silent default.
    assert_eq!(
        sqlstate(auth.execute("SELECT fluent_set_user('bill', NULL)", &[])),
        "22004"
    );
}
