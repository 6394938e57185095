//! Templates, overrides, feature gates and the audit trail across sessions,
//! over real connections, with a DBA that is not a superuser.

use fluent_pgrx_tests::{app_session, connect, ensure_role, fresh_database, sqlstate, APP};

/// A login role with fluent_admin: what a DBA administers fluent as.
const DBA: &str = "it_dba";
/// A login role with fluent_reader: a reporting tool.
const READER: &str = "it_reader";

fn seed(database: &str) {
    let mut su = connect(database, "postgres");
    ensure_role(&mut su, DBA, true, &["fluent_admin"]);
    ensure_role(&mut su, READER, true, &["fluent_reader"]);
    su.batch_execute(&format!(
        "CREATE TABLE invoices (id int PRIMARY KEY, owner text);
         INSERT INTO invoices SELECT g, CASE WHEN g % 2 = 0 THEN 'bea' ELSE 'sam' END FROM generate_series(1, 10) g;
         GRANT SELECT ON invoices TO {APP};
         SELECT fluent_apply_template('fluent');
         SELECT fluent_protect('invoices', 'invoices', 'owner');"
    ))
    .unwrap();
    let mut dba = connect(database, DBA);
    dba.batch_execute(
        "SELECT fluent_create_user('bea');
         SELECT fluent_grant_role('bea', 'billing');
         SELECT fluent_create_user('sam');
         SELECT fluent_grant_role('sam', 'scheduler');",
    )
    .unwrap();
}

fn visible(client: &mut postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM invoices", &[])
        .unwrap()
        .get(0)
}

fn audit_entries(client: &mut impl postgres::GenericClient, table: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM fluent.audit_log WHERE table_name = $1",
            &[&table],
        )
        .unwrap()
        .get(0)
}

#[test]
fn an_override_set_in_one_session_applies_in_another_both_ways() {
    let db = fresh_database("override");
    seed(&db);
    let mut sam = app_session(&db, "sam");
    let mut bea = app_session(&db, "bea");
    assert_eq!(visible(&mut sam), 0, "schedulers do not see invoices");
    assert_eq!(visible(&mut bea), 10);

    let mut dba = connect(&db, DBA);
    dba.batch_execute(
        "SELECT fluent_set_override('sam', 'invoices', 'read', 'own');
         SELECT fluent_set_override('bea', 'invoices', 'read', 'none');",
    )
    .unwrap();
    assert_eq!(visible(&mut sam), 5, "widened to own rows");
    assert_eq!(visible(&mut bea), 0, "narrowed to nothing");

    dba.execute(
        "SELECT fluent_clear_override('bea', 'invoices', 'read')",
        &[],
    )
    .unwrap();
    assert_eq!(visible(&mut bea), 10, "the roles decide again");
}

#[test]
fn disabling_a_module_hides_it_from_every_session_at_once() {
    let db = fresh_database("gate");
    seed(&db);
    let mut bea = app_session(&db, "bea");
    let modules = |c: &mut postgres::Client| -> Vec<String> {
        c.query("SELECT m FROM fluent_visible_modules() m ORDER BY m", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert!(modules(&mut bea).contains(&"invoices".to_owned()));

    let mut dba = connect(&db, DBA);
    dba.execute("SELECT fluent_set_module_enabled('invoices', false)", &[])
        .unwrap();
    assert_eq!(visible(&mut bea), 0);
    assert!(!modules(&mut bea).contains(&"invoices".to_owned()));
    assert!(
        modules(&mut bea).contains(&"rates".to_owned()),
        "other modules stay"
    );
}

#[test]
fn the_audit_trail_commits_and_rolls_back_with_the_change() {
    let db = fresh_database("audit");
    seed(&db);
    let mut reader = connect(&db, READER);
    let before = audit_entries(&mut reader, "overrides");

    let mut dba = connect(&db, DBA);
    let mut tx = dba.transaction().unwrap();
    tx.execute(
        "SELECT fluent_set_override('sam', 'rates', 'read', 'all')",
        &[],
    )
    .unwrap();
    assert_eq!(
        audit_entries(&mut tx, "overrides"),
        before + 1,
        "written in the changing transaction"
    );
    assert_eq!(
        audit_entries(&mut reader, "overrides"),
        before,
        "invisible to others until commit"
    );
    tx.rollback().unwrap();
    assert_eq!(
        audit_entries(&mut reader, "overrides"),
        before,
        "a rolled-back change leaves no entry"
    );

    dba.execute(
        "SELECT fluent_set_override('sam', 'rates', 'read', 'all')",
        &[],
    )
    .unwrap();
    let row = reader
        .query_one(
            "SELECT db_role::text, after ->> 'scope' FROM fluent.audit_log WHERE table_name = 'overrides'
              ORDER BY audit_id DESC LIMIT 1",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), DBA);
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("all"));
}

#[test]
fn no_one_but_a_superuser_can_tamper_with_the_audit_trail() {
    let db = fresh_database("tamper");
    seed(&db);
    let mut dba = connect(&db, DBA);
    let mut reader = connect(&db, READER);
    for (client, who) in [(&mut dba, DBA), (&mut reader, READER)] {
        for statement in [
            "UPDATE fluent.audit_log SET db_role = 'nobody'",
            "DELETE FROM fluent.audit_log",
            "TRUNCATE fluent.audit_log",
            "INSERT INTO fluent.audit_log (db_role, table_name, operation) VALUES ('x', 'grants', 'INSERT')",
            "ALTER TABLE fluent.grants DISABLE TRIGGER audit_change",
        ] {
            assert_eq!(sqlstate(client.execute(statement, &[])), "42501", "{who}: {statement}");
        }
    }
    let mut app = app_session(&db, "bea");
    assert_eq!(
        sqlstate(app.execute("SELECT count(*) FROM fluent.audit_log", &[])),
        "42501"
    );
    let entries: i64 = reader
        .query_one("SELECT count(*) FROM fluent.audit_log", &[])
        .unwrap()
        .get(0);
    assert!(
        entries > 100,
        "the template and seed were recorded: {entries}"
    );
}
