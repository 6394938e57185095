//! pg_dump keeps the catalog and the audit trail, and a restore made the
//! way the README says brings back the same permissions and history.

use std::process::Command;

use fluent_pgrx_tests::{connect, fresh_database};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn run(program: &str, args: &[&str], replica: bool) {
    let host = std::env::var("FLUENT_TEST_HOST").expect("FLUENT_TEST_HOST");
    let port = std::env::var("FLUENT_TEST_PORT").unwrap_or_else(|_| "5432".into());
    let mut command = Command::new(format!("{PG_BIN}/{program}"));
    command
        .args(["-h", &host, "-p", &port, "-U", "postgres"])
        .args(args);
    if replica {
        command.env("PGOPTIONS", "-c session_replication_role=replica");
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Catalog and audit figures that must survive a dump and restore.
fn figures(client: &mut postgres::Client) -> Vec<String> {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM fluent.permissions)::text, (SELECT count(*) FROM fluent.overrides)::text,
                    (SELECT count(*) FROM fluent.audit_log)::text, (SELECT max(audit_id) FROM fluent.audit_log)::text,
                    (SELECT string_agg(name || '=' || enabled, ',' ORDER BY name) FROM fluent.modules),
                    fluent_scope('ann', 'analytics', 'read'), fluent_scope('ann', 'interactions', 'write'),
                    fluent_scope('ann', 'quality', 'read')",
            &[],
        )
        .unwrap();
    (0..row.len())
        .map(|i| row.get::<_, Option<String>>(i).unwrap_or_default())
        .collect()
}

#[test]
fn a_dump_restores_permissions_and_the_audit_trail() {
    let source = fresh_database("dump_source");
    let mut db = connect(&source, "postgres");
    db.batch_execute(
        "SELECT fluent_apply_template('cx');
         SELECT fluent_create_user('ann');
         SELECT fluent_grant_role('ann', 'agent');
         SELECT fluent_set_override('ann', 'analytics', 'read', 'own');
         SELECT fluent_set_module_enabled('quality', false);",
    )
    .unwrap();
    let before = figures(&mut db);

    let file = std::env::temp_dir().join("fluent_it_dump.sql");
    let file = file.to_str().unwrap();
    run("pg_dump", &["-d", &source, "-f", file], false);
    let target = "fluent_it_dump_target";
    let mut admin = connect("postgres", "postgres");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {target} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {target}"))
        .unwrap();
    run(
        "psql",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            target,
            "-f",
            file,
        ],
        true,
    );

    let mut restored = connect(target, "postgres");
    assert_eq!(figures(&mut restored), before);
    // New changes continue the restored identities and history.
    restored
        .execute("SELECT fluent_create_user('bo')", &[])
        .unwrap();
    let next: i64 = restored
        .query_one("SELECT max(audit_id) FROM fluent.audit_log", &[])
        .unwrap()
        .get(0);
    assert!(next > before[3].parse::<i64>().unwrap());
}
