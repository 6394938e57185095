//! fluent in a schema of the user's choice, as Supabase keeps extensions in
//! `extensions` while PostgREST exposes `public`: `CREATE EXTENSION fluent
//! SCHEMA extensions` puts the whole API there and nothing in `public`, the
//! catalog stays in `fluent`, and an application whose search_path is only
//! `public` is protected all the same: the policies, the masked view and the
//! column trigger call fluent's own schema, never the API's by name.

use fluent_pgrx_tests::{connect, empty_database, ensure_role, APP, AUTHENTICATOR};

const DATABASE: &str = "fluent_it_schema";

#[test]
fn the_api_lives_in_the_schema_chosen_and_protection_works_without_it_on_the_path() {
    empty_database(DATABASE, "postgres");
    let mut db = connect(DATABASE, "postgres");
    db.batch_execute(
        "CREATE SCHEMA extensions;
         CREATE EXTENSION fluent SCHEMA extensions;",
    )
    .unwrap();
    ensure_role(&mut db, APP, false, &[]);
    ensure_role(&mut db, AUTHENTICATOR, true, &["fluent_authenticator", APP]);
    ensure_role(&mut db, "notes_owner", false, &[]);

    // The API is in `extensions`, the catalog in `fluent`, nothing in `public`.
    let placed: Vec<(String, i64)> = db
        .query(
            "SELECT n.nspname::text, count(*) FROM pg_depend d
               JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
               JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
                AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fluent')
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let schemas: Vec<&str> = placed.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(schemas, ["extensions", "fluent"], "{placed:?}");
    let in_public: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(in_public, 0);
    // It stays where it was put.
    let moved = db
        .batch_execute("ALTER EXTENSION fluent SET SCHEMA public")
        .unwrap_err();
    assert_eq!(moved.code().map(|c| c.code()), Some("0A000"), "{moved}");

    // A DBA who keeps `extensions` off the path names the functions.
    db.batch_execute(&format!(
        "SET search_path = public;
         SELECT extensions.fluent_create_module('notes', '{{read,write}}');
         SELECT extensions.fluent_create_role('clerk'), extensions.fluent_set_permission('clerk', 'notes', 'read', 'own'),
                extensions.fluent_set_permission('clerk', 'notes', 'write', 'own');
         SELECT extensions.fluent_create_role('boss'), extensions.fluent_set_permission('boss', 'notes', 'read', 'all'),
                extensions.fluent_set_permission('boss', 'notes', 'write', 'all');
         SELECT extensions.fluent_create_module('users', '{{write}}');
         SELECT extensions.fluent_set_permission('boss', 'users', 'write', 'all');
         SELECT extensions.fluent_set_admin_right('manage_users', 'users', 'write'),
                extensions.fluent_set_admin_right('assign_roles', 'users', 'write');
         SELECT extensions.fluent_create_user(u) FROM unnest('{{ann,bob,eve}}'::text[]) u;
         SELECT extensions.fluent_grant_role('ann', 'clerk'), extensions.fluent_grant_role('bob', 'clerk'),
                extensions.fluent_grant_role('eve', 'boss');
         CREATE TABLE notes (id int PRIMARY KEY, owner text, body text, secret text);
         INSERT INTO notes VALUES (1, 'ann', 'a', 's1'), (2, 'bob', 'b', 's2');
         ALTER TABLE notes OWNER TO notes_owner;
         SELECT extensions.fluent_protect('notes', 'notes', 'owner');
         -- the secret is for user administrators only
         SELECT extensions.fluent_protect_columns('notes', '{{secret}}', 'users', read_action => 'write');
         GRANT SELECT (id, owner, body), UPDATE ON notes TO {APP};
         GRANT SELECT ON notes_masked TO {APP};
         GRANT USAGE ON SCHEMA extensions TO {APP};"
    ))
    .unwrap();

    // The application: search_path `public` only, as PostgREST's.
    let seen = |user: &str| -> Vec<(i32, Option<String>)> {
        let mut app = connect(DATABASE, AUTHENTICATOR);
        app.batch_execute("SET search_path = public").unwrap();
        app.execute("SELECT extensions.fluent_set_user($1)", &[&user])
            .unwrap();
        app.batch_execute(&format!("SET ROLE {APP}")).unwrap();
        app.query("SELECT id, secret FROM notes_masked ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    assert_eq!(seen("ann"), [(1, None)]);
    assert_eq!(
        seen("eve"),
        [(1, Some("s1".into())), (2, Some("s2".into()))]
    );

    // The column trigger, the delegated administration wrappers and
    // fluent_who_can work from there too.
    let mut app = connect(DATABASE, AUTHENTICATOR);
    app.batch_execute("SET search_path = public").unwrap();
    app.execute("SELECT extensions.fluent_set_user('ann')", &[])
        .unwrap();
    app.batch_execute(&format!("SET ROLE {APP}")).unwrap();
    let refused = app
        .batch_execute("UPDATE notes SET secret = 'x' WHERE id = 1")
        .unwrap_err();
    assert_eq!(refused.code().map(|c| c.code()), Some("42501"), "{refused}");
    let mut admin = connect(DATABASE, AUTHENTICATOR);
    admin.batch_execute("SET search_path = public").unwrap();
    admin
        .execute("SELECT extensions.fluent_set_user('eve')", &[])
        .unwrap();
    admin.batch_execute(&format!("SET ROLE {APP}")).unwrap();
    admin
        .execute("SELECT extensions.fluent_create_user('dan')", &[])
        .unwrap();
    admin
        .execute("SELECT extensions.fluent_grant_role('dan', 'clerk')", &[])
        .unwrap();
    let who: Vec<String> = admin
        .query(
            "SELECT user_key FROM extensions.fluent_who_can('notes', '2') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(who, ["bob", "eve"]);
}
