//! The install script and everything it binds resolve only pg_catalog and
//! fluent's own objects: hostile objects planted in `public` by the
//! (non-superuser) owner of the database, and in the installing session's
//! `pg_temp`, never run, at install time or later.

use fluent_pgrx_tests::{connect, empty_database, ensure_role, fresh_database, TESTER};

/// Every planted function and operator records who ran it.
const PLANT: &str = r#"
CREATE TABLE public.hijacked (who name, superuser boolean, what text);
GRANT INSERT ON public.hijacked TO PUBLIC;
CREATE FUNCTION public.record_hijack(what text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO public.hijacked SELECT current_user, rolsuper, what FROM pg_catalog.pg_roles WHERE rolname = current_user
$$;
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.record_hijack('format/2'); RETURN pg_catalog.format($1, $2); END $$;
CREATE FUNCTION public.format(text, text, text, text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.record_hijack('format/5'); RETURN pg_catalog.format($1, $2, $3, $4, $5); END $$;
CREATE FUNCTION public.format(text, text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.record_hijack('format/3'); RETURN pg_catalog.format($1, $2, $3); END $$;
CREATE FUNCTION public.concat_ws(text, text, text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.record_hijack('concat_ws'); RETURN pg_catalog.concat_ws($1, $2, $3); END $$;
CREATE FUNCTION public.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM public.record_hijack('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object($1, $2); END $$;
CREATE FUNCTION public.hijack_eq_oid_regnamespace(oid, regnamespace) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.record_hijack('=(oid,regnamespace)'); RETURN $1 OPERATOR(pg_catalog.=) $2::oid; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regnamespace, FUNCTION = public.hijack_eq_oid_regnamespace);
CREATE FUNCTION public.hijack_eq_oid_regclass(oid, regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM public.record_hijack('=(oid,regclass)'); RETURN $1 OPERATOR(pg_catalog.=) $2::oid; END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.hijack_eq_oid_regclass);
CREATE FUNCTION public.hijack_arrow(jsonb, jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM public.record_hijack('->>(jsonb,jsonb)'); RETURN $1 OPERATOR(pg_catalog.->>) ($2 OPERATOR(pg_catalog.#>>) '{}'); END $$;
CREATE OPERATOR public.->> (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = public.hijack_arrow);
"#;

/// In the installing superuser's own session: relations in pg_temp are
/// found before pg_catalog's unless a path says otherwise.
const PLANT_TEMP: &str = "
CREATE TEMP TABLE pg_extension (oid oid, extname name);
CREATE TEMP TABLE pg_roles (oid oid, rolname name, rolsuper boolean);
INSERT INTO pg_temp.pg_roles VALUES (0, 'fluent_admin', true), (0, 'fluent_authenticator', true), (0, 'fluent_reader', true);
CREATE TEMP TABLE pg_policy (polrelid oid, polname name);
CREATE TEMP TABLE pg_inherits (inhrelid oid, inhparent oid);
";

const ADMINISTER: &str = "
SELECT fluent_create_workspace('acme');
SELECT fluent_apply_template('fluent');
SELECT fluent_create_module('docs');
SELECT fluent_create_role('rw');
SELECT fluent_set_permission('rw', 'docs', a, 'own') FROM unnest('{read,write,delete}'::text[]) a;
SELECT fluent_create_user('ann');
SELECT fluent_create_user('bo', manager => 'ann');
SELECT fluent_grant_role('ann', 'rw');
SELECT fluent_set_override('ann', 'docs', 'read', 'all');
SELECT fluent_mark_reviewed('ann');
SELECT fluent_clone_role('owner', 'owner2');
SELECT fluent_reset_role('owner');
SELECT fluent_set_module_enabled('docs', true);
CREATE TABLE docs (id int, owner text, ws text, PRIMARY KEY (id, ws)) PARTITION BY LIST (ws);
CREATE TABLE docs_default PARTITION OF docs DEFAULT;
CREATE TABLE doc_members (doc_id int, user_key text);
INSERT INTO docs VALUES (1, 'ann', 'default'), (2, 'bo', 'default');
SELECT fluent_protect('docs', 'docs', 'owner', membership_table => 'doc_members',
                      membership_row_column => 'doc_id', membership_user_column => 'user_key', row_column => 'id',
                      workspace_column => 'ws');
CREATE TABLE docs_acme PARTITION OF docs FOR VALUES IN ('acme');
SELECT count(*) FROM fluent.protection_status;
SELECT fluent_set_user('ann');
SELECT fluent_scope('docs', 'read'), fluent_can('ann', 'docs', 'write');
SELECT * FROM fluent_explain('ann', 'docs', 'read');
SELECT count(*) FROM fluent.effective_permissions;
SELECT fluent_unprotect('docs');
SELECT fluent_revoke_role('ann', 'rw');
SELECT fluent_drop_user('bo');
";

#[test]
fn planted_objects_never_run_at_install_or_after() {
    let database = "fluent_it_planted";
    let mut admin = connect("postgres", "postgres");
    ensure_role(&mut admin, "it_db_owner", true, &[]);
    ensure_role(&mut admin, "it_planter_admin", true, &["fluent_admin"]);
    empty_database(database, "it_db_owner");

    // The database owner (no superuser) plants in public, which it owns.
    let mut db = connect(database, "postgres");
    db.batch_execute("ALTER SCHEMA public OWNER TO it_db_owner")
        .unwrap();
    connect(database, "it_db_owner")
        .batch_execute(PLANT)
        .unwrap();

    // A superuser installs and administers in a session with planted temp relations.
    db.batch_execute(PLANT_TEMP).unwrap();
    db.batch_execute("CREATE EXTENSION fluent").unwrap();
    db.batch_execute(ADMINISTER).unwrap();
    // So does a fluent_admin.
    let mut dba = connect(database, "it_planter_admin");
    dba.batch_execute(
        "SELECT fluent_create_user('cy'); SELECT fluent_set_manager('cy', 'ann');
         SELECT fluent_grant_role('cy', 'owner'); SELECT fluent_revoke_role('cy', 'owner', force => true);",
    )
    .unwrap();

    let ran: Vec<String> = db
        .query(
            "SELECT who || ' (superuser ' || superuser || '): ' || what FROM public.hijacked",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ran.is_empty(), "planted code ran: {ran:?}");
    // The temp relations did not stand in for the catalogs: privileges were revoked.
    let public_grant: bool = db
        .query_one(
            "SELECT has_function_privilege('public', 'fluent_create_workspace(text)', 'EXECUTE')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        !public_grant,
        "EXECUTE on fluent_create_workspace is still granted to PUBLIC"
    );
}

/// The administration implementations run as the catalog owner (SECURITY
/// DEFINER). The owner of the database owns schema `public`, where fluent's
/// public functions live, and can swap it for one of their own: the
/// implementations must not call anything there by name.
#[test]
fn a_database_owner_cannot_borrow_the_catalog_owner() {
    let database = "fluent_it_schema_swap";
    let mut admin = connect("postgres", "postgres");
    ensure_role(&mut admin, "it_db_owner", true, &[]);
    empty_database(database, "it_db_owner");
    let mut db = connect(database, "postgres");
    db.batch_execute("ALTER SCHEMA public OWNER TO it_db_owner; CREATE EXTENSION fluent")
        .unwrap();
    db.batch_execute(
        "CREATE TABLE public.hijacked (who name, superuser boolean);
         GRANT INSERT ON public.hijacked TO PUBLIC;",
    )
    .unwrap();
    let mut owner = connect(database, "it_db_owner");
    owner
        .batch_execute(
            r#"
            ALTER SCHEMA public RENAME TO public_orig;
            CREATE SCHEMA public;
            CREATE FUNCTION public.fluent_current_user() RETURNS text LANGUAGE sql AS $$
                INSERT INTO public_orig.hijacked SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
                SELECT NULL::text $$;
            CREATE FUNCTION public.fluent_current_workspace() RETURNS text LANGUAGE sql AS $$
                INSERT INTO public_orig.hijacked SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
                SELECT 'default'::text $$;
            "#,
        )
        .unwrap();
    // The owner (no fluent right) is refused; a superuser's call works; neither runs the planted code.
    let refused = owner.batch_execute("SELECT public_orig.fluent_create_role('x')");
    assert_eq!(fluent_pgrx_tests::sqlstate(refused), "42501");
    db.batch_execute(
        "SELECT public_orig.fluent_create_role('y');
         SELECT public_orig.fluent_create_user('ann');
         SELECT public_orig.fluent_grant_role('ann', 'y');
         SELECT public_orig.fluent_mark_reviewed('ann');",
    )
    .unwrap();
    let ran: i64 = db
        .query_one("SELECT count(*) FROM public_orig.hijacked", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        ran, 0,
        "planted code ran inside fluent's administration functions"
    );
}

/// What fluent runs elevated runs as `fluent_owner`, which cannot log in, is
/// no superuser, does not bypass row-level security, has no members and is a
/// member of nothing: it owns the catalog and the SECURITY DEFINER functions,
/// all but the one event trigger function that creates policies on other
/// roles' tables.
#[test]
fn the_catalog_owner_has_no_superuser_powers() {
    let database = "fluent_it_catalog_owner";
    empty_database(database, "postgres");
    let mut db = connect(database, "postgres");
    db.batch_execute("CREATE EXTENSION fluent").unwrap();
    let row = db
        .query_one(
            "SELECT r.rolsuper, r.rolbypassrls, r.rolcanlogin, r.rolcreaterole, r.rolcreatedb,
                    EXISTS (SELECT 1 FROM pg_auth_members m WHERE r.oid IN (m.roleid, m.member))
               FROM pg_roles r WHERE r.rolname = 'fluent_owner'",
            &[],
        )
        .unwrap();
    for (i, power) in [
        "superuser",
        "bypassrls",
        "login",
        "createrole",
        "createdb",
        "memberships",
    ]
    .iter()
    .enumerate()
    {
        assert!(!row.get::<_, bool>(i), "fluent_owner has {power}");
    }
    let not_owned: Vec<String> = db
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c
              WHERE c.relnamespace = 'fluent'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                AND c.relowner <> 'fluent_owner'::regrole",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        not_owned.is_empty(),
        "not owned by fluent_owner: {not_owned:?}"
    );
    let definers_by_superusers: Vec<String> = db
        .query(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
              WHERE p.prosecdef AND r.rolsuper AND p.oid IN (
                    SELECT objid FROM pg_depend WHERE refobjid = (SELECT oid FROM pg_extension WHERE extname = 'fluent')
                       AND classid = 'pg_proc'::regclass AND deptype = 'e')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(definers_by_superusers, ["fluent._protect_new_children()"]);
}

/// A role named fluent_owner made beforehand with more than fluent gives it
/// (or granted to someone) would own the catalog: CREATE EXTENSION refuses it.
#[test]
fn a_planted_catalog_owner_is_refused() {
    let database = "fluent_it_planted_owner";
    empty_database(database, "postgres");
    let mut db = connect(database, "postgres");
    // Installing once makes the role (it outlives the extension); each plant
    // is rolled back.
    db.batch_execute("CREATE EXTENSION fluent; DROP EXTENSION fluent")
        .unwrap();
    for plant in [
        "ALTER ROLE fluent_owner BYPASSRLS",
        "ALTER ROLE fluent_owner LOGIN",
        "CREATE ROLE it_owner_member; GRANT fluent_owner TO it_owner_member",
        "CREATE ROLE it_owner_parent; GRANT it_owner_parent TO fluent_owner",
    ] {
        db.batch_execute(&format!(
            "BEGIN; CREATE ROLE it_owner_probe; DROP ROLE it_owner_probe; {plant}"
        ))
        .unwrap();
        let refused = db.batch_execute("CREATE EXTENSION fluent");
        assert_eq!(fluent_pgrx_tests::sqlstate(refused), "55000", "{plant}");
        db.batch_execute("ROLLBACK").unwrap();
    }
    db.batch_execute("CREATE EXTENSION fluent").unwrap();
}

/// Owning the catalog lets a role redefine it: a trigger, a default or a
/// check on a catalog table, or a SET clause or SECURITY INVOKER on a
/// SECURITY DEFINER function would run its code as the superuser who next
/// writes the catalog or calls the function (found by an adversarial review:
/// a CREATEROLE role granted itself fluent_owner and planted a trigger that a
/// DBA's fluent_protect ran as a superuser). fluent_owner and the roles with
/// its privileges change no definitions; a DBA's work is unaffected.
#[test]
fn the_catalog_owner_changes_no_definitions() {
    let database = "fluent_it_owner_ddl";
    empty_database(database, "postgres");
    let mut db = connect(database, "postgres");
    db.batch_execute(
        "CREATE EXTENSION fluent;
         CREATE TABLE docs (id int PRIMARY KEY, owner text);
         SELECT fluent_create_module('docs');",
    )
    .unwrap();
    for (how, ddl) in [
        ("member", "CREATE TRIGGER planted BEFORE INSERT ON fluent.protected_tables FOR EACH ROW EXECUTE FUNCTION fluent._log_changes()"),
        ("member", "ALTER TABLE fluent.protected_tables ALTER COLUMN module SET DEFAULT 'x'"),
        ("owner", "ALTER FUNCTION fluent._do_grant_role(text, text, timestamptz, bigint) SECURITY INVOKER"),
        ("owner", "ALTER FUNCTION fluent._do_grant_role(text, text, timestamptz, bigint) SET search_path = public"),
        ("owner", "CREATE FUNCTION pg_temp.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'"),
    ] {
        let become_ = if how == "owner" { "SET ROLE fluent_owner;" } else { "SET ROLE it_owner_member;" };
        db.batch_execute(&format!(
            "BEGIN; CREATE ROLE it_owner_member; GRANT fluent_owner TO it_owner_member; {become_}"
        ))
        .unwrap();
        let refused = db.batch_execute(ddl);
        assert_eq!(fluent_pgrx_tests::sqlstate(refused), "42501", "{ddl}");
        db.batch_execute("ROLLBACK").unwrap();
    }
    // A DBA administers and protects as before, and other roles' DDL is theirs.
    db.batch_execute(
        "SELECT fluent_protect('docs', 'docs', 'owner');
         SELECT fluent_create_role('reader');
         CREATE TABLE other (x int);
         CREATE TRIGGER t BEFORE INSERT ON other FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();",
    )
    .unwrap();
}

/// A role that reads all data (`pg_read_all_data`: a backup or analytics
/// role) reads the catalog, but not the token settings, which hold the
/// secrets that verify tokens (nor, on Citus, `fluent.citus_secret`:
/// pgrx-tests/tests/citus.rs): row security with no policy keeps it out.
#[test]
fn a_role_that_reads_all_data_reads_no_secrets() {
    let db = fresh_database("read_all_data");
    let mut su = connect(&db, "postgres");
    ensure_role(&mut su, "it_read_all", true, &["pg_read_all_data"]);
    su.batch_execute(
        "UPDATE fluent.token_settings
            SET keys = '{\"keys\": [{\"kty\": \"oct\", \"kid\": \"k\", \"k\": \"c2VjcmV0\"}]}'",
    )
    .unwrap();
    let mut reader = connect(&db, "it_read_all");
    let (settings, workspaces): (i64, i64) = {
        let row = reader
            .query_one(
                "SELECT (SELECT count(*) FROM fluent.token_settings),
                        (SELECT count(*) FROM fluent.workspaces)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((settings, workspaces), (0, 1));
    // A superuser still reads them (and the catalog owner, as every token
    // test shows).
    let keys: i64 = su
        .query_one(
            "SELECT count(*) FROM fluent.token_settings WHERE keys IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(keys, 1);
}

/// fluent's catalog queries run as the catalog owner with the caller's
/// search path: a domain named `text` and an operator `=` of the caller's,
/// first in that path, run for no one but the caller.
#[test]
fn a_callers_search_path_runs_nothing_as_the_catalog_owner() {
    let db = fresh_database("caller_search_path");
    let mut su = connect(&db, "postgres");
    su.batch_execute(&format!(
        "CREATE TABLE notes (id int PRIMARY KEY, owner text);
         SELECT fluent_create_module('notes');
         SELECT fluent_protect('notes', 'notes', owner_column => 'owner');
         INSERT INTO notes VALUES (1, 'ann');
         CREATE SCHEMA evil AUTHORIZATION {TESTER};
         CREATE TABLE public.ran (who name);
         GRANT INSERT ON public.ran TO PUBLIC;"
    ))
    .unwrap();
    let mut tester = connect(&db, TESTER);
    tester
        .batch_execute(
            "GRANT USAGE ON SCHEMA evil TO PUBLIC;
             CREATE FUNCTION evil.record(v pg_catalog.text) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.ran VALUES (current_user); RETURN true; END $$;
             CREATE DOMAIN evil.text AS pg_catalog.text CHECK (evil.record(VALUE));
             CREATE FUNCTION evil.text_eq(pg_catalog.text, pg_catalog.text) RETURNS boolean
             LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO public.ran VALUES (current_user); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
             CREATE OPERATOR evil.= (leftarg = pg_catalog.text, rightarg = pg_catalog.text,
                                     function = evil.text_eq);
             SET search_path = evil, pg_catalog, public;
             SELECT * FROM fluent_who_can('public.notes', '1');",
        )
        .unwrap();
    let ran: Vec<String> = su
        .query("SELECT DISTINCT who::text FROM public.ran", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ran.iter().all(|who| who == TESTER), "{ran:?}");
}
