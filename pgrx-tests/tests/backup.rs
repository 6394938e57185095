//! pg_dump keeps the catalog, the audit trail and the protections, and the
//! obvious restore (`psql -f dump.sql`, `pg_restore` without options) brings
//! back the same database: no entries rewritten, no errors. A schema-only
//! restore leaves fluent's policies without their catalog rows, which one
//! call makes right again. How tokens are verified is not dumped.

use std::process::{Command, Output};

use fluent_pgrx_tests::tokens::{self, sign};
use fluent_pgrx_tests::{
    connect, empty_database, ensure_role, fresh_database, pg_bin, sqlstate, test_server,
};

fn run(program: &str, args: &[&str]) -> Output {
    let (host, port) = test_server();
    let output = Command::new(pg_bin(program))
        .args(["-h", &host, "-p", &port.to_string(), "-U", "postgres"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{program} failed: {stderr}");
    assert!(
        !stderr.contains("ERROR"),
        "{program} reported an error: {stderr}"
    );
    // pg_dump used to warn about circular foreign keys in the catalog.
    assert!(
        program != "pg_dump" || !stderr.contains("warning"),
        "{program} warned: {stderr}"
    );
    output
}

fn source_database(name: &str) -> String {
    let source = fresh_database(name);
    let mut db = connect(&source, "postgres");
    // Column limits need a table owner that row-level security applies to.
    ensure_role(&mut db, "backup_owner", false, &[]);
    db.batch_execute(
        "SELECT fluent_apply_template('cx');
         SELECT fluent_create_user('ann');
         SELECT fluent_create_user('lee');
         SELECT fluent_set_manager('ann', 'lee');
         SELECT fluent_grant_role('ann', 'agent');
         SELECT fluent_mark_reviewed('ann');
         SELECT fluent_set_override('ann', 'analytics', 'read', 'own');
         SELECT fluent_set_module_enabled('quality', false);
         CREATE TABLE notes (id int, owner text, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE notes_2026 PARTITION OF notes FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         INSERT INTO notes VALUES (1, 'ann', '2026-02-01'), (2, 'lee', '2026-03-01');
         CREATE TABLE tickets (id int PRIMARY KEY, subject text);
         CREATE TABLE ticket_members (ticket_id int REFERENCES tickets, user_key text);
         SELECT fluent_protect('notes', 'interactions', 'owner');
         SELECT fluent_protect('tickets', 'interactions', membership_table => 'ticket_members',
                               membership_row_column => 'ticket_id', membership_user_column => 'user_key');
         ALTER TABLE tickets OWNER TO backup_owner;
         SELECT fluent_protect_columns('tickets', '{subject}', 'interactions');
         -- A child of a table with a primary key: a restore adds the key
         -- after the catalog's rows, before the child's policies and column
         -- trigger, which the event trigger then created twice.
         CREATE TABLE tickets_archive () INHERITS (tickets);
         ALTER TABLE tickets_archive OWNER TO backup_owner;
         SELECT fluent_create_team('support'), fluent_add_team_member('support', 'lee', lead => true),
                fluent_add_team_member('support', 'ann');
         SELECT fluent_set_requirement('analytics', 'interactions', 'read');
         SELECT fluent_set_admin_right('manage_users', 'interactions', 'write');
         SELECT fluent_grant_role('lee', 'team_lead', until => now() + interval '30 days');",
    )
    .unwrap();
    source
}

/// Everything a restore must bring back unchanged: every table and sequence
/// pg_dump keeps for fluent, with the rows it keeps (the catalog with its
/// attribution, the whole audit trail), the protections and their state,
/// and the column limits' view and trigger.
fn figures(client: &mut postgres::Client) -> Vec<String> {
    let dumped: Vec<(String, bool, String)> = client
        .query(
            "SELECT c.oid::regclass::text, c.relkind = 'S', x.condition
               FROM pg_extension e CROSS JOIN unnest(e.extconfig, e.extcondition) x (relid, condition)
               JOIN pg_class c ON c.oid = x.relid
              WHERE e.extname = 'fluent' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut figures: Vec<String> = dumped
        .iter()
        .map(|(relation, sequence, condition)| {
            let sql = if *sequence {
                format!("SELECT last_value::text FROM {relation}")
            } else {
                format!(
                    "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))
                       FROM (SELECT * FROM {relation} {condition}) t"
                )
            };
            let figure: String = client.query_one(&sql, &[]).unwrap().get(0);
            format!("{relation}: {figure}")
        })
        .collect();
    let row = client
        .query_one(
            "SELECT (SELECT md5(string_agg(p::text, ',' ORDER BY p::text)) FROM fluent.permissions p),
                    (SELECT md5(string_agg(g::text, ',' ORDER BY g::text)) FROM fluent.grants g),
                    (SELECT md5(string_agg(o::text, ',' ORDER BY o::text)) FROM fluent.overrides o),
                    (SELECT md5(string_agg(u::text, ',' ORDER BY u::text)) FROM fluent.users u),
                    (SELECT md5(string_agg(a::text, ',' ORDER BY a.audit_id)) FROM fluent.audit_log a),
                    (SELECT count(*) FROM fluent.audit_log)::text,
                    (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM fluent.protected_tables t),
                    (SELECT string_agg(table_name || '=' || intact, ',' ORDER BY table_name::text) FROM fluent.protection_status),
                    (SELECT string_agg(relname || ':' || relrowsecurity || relforcerowsecurity, ',' ORDER BY relname)
                       FROM pg_class WHERE relname IN ('notes', 'notes_2026', 'tickets', 'ticket_members')),
                    fluent_scope('ann', 'analytics', 'read'), fluent_scope('ann', 'interactions', 'write'),
                    fluent_scope('ann', 'quality', 'read'), fluent_scope('lee', 'interactions', 'read'),
                    pg_get_viewdef('tickets_masked'),
                    (SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger
                      WHERE tgrelid = 'tickets'::regclass AND NOT tgisinternal)",
            &[],
        )
        .unwrap();
    figures.extend((0..row.len()).map(|i| row.get::<_, Option<String>>(i).unwrap_or_default()));
    figures
}

/// Restores a plain-format dump the obvious way.
fn psql_file(database: &str, file: &str) {
    run(
        "psql",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-f",
            file,
        ],
    );
}

fn dump_file(name: &str) -> String {
    std::env::temp_dir().join(name).to_str().unwrap().to_owned()
}

fn assert_restored_like(source: &str, target: &str) {
    let before = figures(&mut connect(source, "postgres"));
    let mut restored = connect(target, "postgres");
    assert_eq!(figures(&mut restored), before);
    // New changes continue the restored identities and history.
    let last: i64 = restored
        .query_one("SELECT max(audit_id) FROM fluent.audit_log", &[])
        .unwrap()
        .get(0);
    restored
        .execute("SELECT fluent_create_user('bo')", &[])
        .unwrap();
    let next: i64 = restored
        .query_one("SELECT max(audit_id) FROM fluent.audit_log", &[])
        .unwrap()
        .get(0);
    assert!(next > last);
}

#[test]
fn a_plain_dump_restored_with_psql_is_the_same_database() {
    let source = source_database("dump_plain");
    let file = dump_file("fluent_it_dump.sql");
    run("pg_dump", &["-d", &source, "-f", &file]);
    let target = "fluent_it_dump_plain_target";
    empty_database(target, "postgres");
    psql_file(target, &file);
    assert_restored_like(&source, target);
}

#[test]
fn a_custom_dump_restored_with_pg_restore_is_the_same_database() {
    let source = source_database("dump_custom");
    let file = dump_file("fluent_it_dump.custom");
    run("pg_dump", &["-Fc", "-d", &source, "-f", &file]);
    let target = "fluent_it_dump_custom_target";
    empty_database(target, "postgres");
    run("pg_restore", &["-d", target, &file]);
    assert_restored_like(&source, target);
}

#[test]
fn a_schema_only_restore_is_recovered_with_one_call() {
    let source = source_database("dump_schema");
    let file = dump_file("fluent_it_dump_schema.sql");
    run("pg_dump", &["--schema-only", "-d", &source, "-f", &file]);
    let target = "fluent_it_dump_schema_target";
    empty_database(target, "postgres");
    psql_file(target, &file);

    let mut db = connect(target, "postgres");
    let policies = |db: &mut postgres::Client| -> i64 {
        db.query_one(
            "SELECT count(*) FROM pg_policy WHERE polname LIKE 'fluent\\_%'",
            &[],
        )
        .unwrap()
        .get(0)
    };
    let registered: i64 = db
        .query_one("SELECT count(*) FROM fluent.protected_tables", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        (registered, policies(&mut db)),
        (0, 20),
        "policies without catalog rows"
    );

    // Protect again: fluent's leftover policies are replaced.
    db.batch_execute(
        "SELECT fluent_create_module('interactions');
         SELECT fluent_protect('notes', 'interactions', 'owner');",
    )
    .unwrap();
    let intact: bool = db
        .query_one(
            "SELECT intact FROM fluent.protection_status WHERE table_name = 'notes'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(intact);
    // Or remove them: the membership table goes back to no row-level security.
    db.batch_execute("SELECT fluent_unprotect('tickets')")
        .unwrap();
    let (left, rls): (i64, bool) = db
        .query_one(
            "SELECT (SELECT count(*) FROM pg_policy WHERE polrelid IN ('tickets'::regclass, 'ticket_members'::regclass)),
                    (SELECT bool_or(relrowsecurity) FROM pg_class WHERE oid IN ('tickets'::regclass, 'ticket_members'::regclass))",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((left, rls), (0, false));
}

/// README: "`pg_dump` keeps what is in the catalog and the audit log ...,
/// except `fluent.token_settings`: how tokens are verified holds deployment
/// secrets, so set it again after a restore". The HMAC secret, audience and
/// issuer are nowhere in the dump; the restored database has the default
/// row, so tokens are refused (`55000`) until the keys are set again.
#[test]
fn token_settings_are_not_dumped_and_are_set_again_after_a_restore() {
    let source = fresh_database("dump_tokens");
    let keys = tokens::jwks_with(&["hs-1"]);
    let secret = serde_json::from_str::<serde_json::Value>(&keys).unwrap()["keys"][0]["k"]
        .as_str()
        .unwrap()
        .to_owned();
    let settings = format!(
        "UPDATE fluent.token_settings SET keys = '{keys}', audiences = '{{claims-audience}}',
                issuer = 'https://claims-issuer.example', workspace_claim = 'claims_ws'"
    );
    let mut db = connect(&source, "postgres");
    db.batch_execute(&format!(
        "{settings};
         SELECT fluent_create_user('ann');"
    ))
    .unwrap();
    let token = sign(
        "HS256",
        None,
        serde_json::json!({ "sub": "ann", "aud": "claims-audience", "iss": "https://claims-issuer.example",
                            "claims_ws": "default", "exp": tokens::now() + 300 }),
    );
    let authenticate = |db: &mut postgres::Client| {
        db.batch_execute("BEGIN").unwrap();
        let state = sqlstate(db.execute("SELECT fluent_authenticate($1)", &[&token]));
        db.batch_execute("ROLLBACK").unwrap();
        state
    };
    assert_eq!(authenticate(&mut db), "ok", "the source verifies tokens");

    let file = dump_file("fluent_it_dump_tokens.sql");
    run("pg_dump", &["-d", &source, "-f", &file]);
    let dump = std::fs::read_to_string(&file).unwrap();
    for kept_out in [
        secret.as_str(),
        "claims-audience",
        "claims-issuer",
        "claims_ws",
    ] {
        assert!(!dump.contains(kept_out), "the dump holds {kept_out}");
    }

    let target = "fluent_it_dump_tokens_target";
    empty_database(target, "postgres");
    psql_file(target, &file);
    let mut restored = connect(target, "postgres");
    let row = restored
        .query_one(
            "SELECT keys IS NULL, audiences, issuer, workspace_claim FROM fluent.token_settings",
            &[],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, Vec<String>>(1),
            row.get::<_, Option<String>>(2),
            row.get::<_, Option<String>>(3),
        ),
        (true, vec![], None, None),
        "the restored database has the default token settings"
    );
    // The catalog came back: the user exists, but no token is verified.
    assert_eq!(authenticate(&mut restored), "55000");
    restored.batch_execute(&settings).unwrap();
    assert_eq!(authenticate(&mut restored), "ok", "set again");
}
