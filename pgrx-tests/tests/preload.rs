//! `session_preload_libraries = 'fluent_preload'` (README, "The trust model"):
//! a name that works whatever version a database has installed, and in a
//! database without fluent. The advice used to be `'fluent'`, which is
//! 0.1.0's library name: on an install of 0.2.0 alone every new connection
//! failed, and beside an old `fluent.so` it loaded the wrong version.

use fluent_pgrx_tests::{
    connect, connect_with_options, empty_database, fresh_database, sqlstate, APP, AUTHENTICATOR,
};
use postgres::Client;

const PRELOAD: &str = "-c session_preload_libraries=fluent_preload";

/// Whether fluent's library is loaded in the session: its settings are
/// defined (an integer), not placeholders.
fn fluent_loaded(client: &mut Client) -> bool {
    client
        .query_opt(
            "SELECT 1 FROM pg_settings WHERE name = 'fluent.cache_users' AND vartype = 'integer'",
            &[],
        )
        .unwrap()
        .is_some()
}

#[test]
fn the_preload_name_loads_the_installed_version_at_connection() {
    let db = fresh_database("preload");
    // Without it, the library loads at the first call of a fluent function.
    let mut plain = connect(&db, "postgres");
    assert!(!fluent_loaded(&mut plain));
    let mut preloaded = connect_with_options(&db, "postgres", PRELOAD);
    assert!(
        fluent_loaded(&mut preloaded),
        "loaded before any fluent call"
    );
    // The library loaded is the one the installed functions name: calling
    // one loads no second version (which would refuse with 55000).
    preloaded
        .batch_execute("SELECT fluent_current_user(); SELECT fluent_current_workspace()")
        .unwrap();
}

#[test]
fn a_session_level_move_before_any_fluent_call_seals_a_preloaded_session() {
    let db = fresh_database("preload_seal");
    connect(&db, "postgres")
        .batch_execute("SELECT fluent_create_user('ann'), fluent_create_module('docs')")
        .unwrap();
    // Not preloaded, fluent sees only where the role is when it loads.
    let mut session = connect(&db, AUTHENTICATOR);
    session
        .batch_execute(&format!("SET ROLE {APP}; RESET ROLE;"))
        .unwrap();
    assert_eq!(
        sqlstate(session.execute("SELECT fluent_set_user('ann')", &[])),
        "ok"
    );
    connect(&db, "postgres")
        .batch_execute(&format!(
            "ALTER ROLE {AUTHENTICATOR} IN DATABASE {db} SET session_preload_libraries = 'fluent_preload'"
        ))
        .unwrap();
    // The authenticator hands the session to the application role and the
    // application role hands it back, all before any fluent call: with the
    // library preloaded, fluent saw the move, and the session stays sealed.
    let mut session = connect(&db, AUTHENTICATOR);
    session
        .batch_execute(&format!("SET ROLE {APP}; RESET ROLE;"))
        .unwrap();
    let refused = session
        .execute("SELECT fluent_set_user('ann')", &[])
        .unwrap_err();
    assert_eq!(refused.code().map(|c| c.code()), Some("42501"));
    let message = refused.as_db_error().unwrap().message();
    assert!(message.contains("already chosen"), "{message}");
    connect(&db, "postgres")
        .batch_execute(&format!(
            "ALTER ROLE {AUTHENTICATOR} IN DATABASE {db} RESET session_preload_libraries"
        ))
        .unwrap();
}

#[test]
fn the_preload_name_loads_nothing_in_a_database_without_fluent() {
    empty_database("fluent_it_preload_none", "postgres");
    let mut session = connect_with_options("fluent_it_preload_none", "postgres", PRELOAD);
    assert!(!fluent_loaded(&mut session));
    assert_eq!(
        session.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
        1
    );
}

/// The preloader's look at the installed version runs as whoever connects,
/// with the database's default search path, which the database's owner
/// (perhaps not a superuser) sets: an operator of theirs named `=` first in
/// that path runs for no one, a superuser's session included.
#[test]
fn a_database_owners_operator_runs_for_no_one_as_a_preloaded_session_starts() {
    let db = "fluent_it_preload_owner";
    let mut admin = connect("postgres", "postgres");
    fluent_pgrx_tests::ensure_role(&mut admin, "it_db_owner", true, &[]);
    empty_database(db, "it_db_owner");
    connect(db, "postgres")
        .batch_execute("CREATE EXTENSION fluent")
        .unwrap();
    connect(db, "it_db_owner")
        .batch_execute(&format!(
            "CREATE SCHEMA evil;
             CREATE TABLE evil.log (who name);
             GRANT USAGE ON SCHEMA evil TO PUBLIC; GRANT INSERT ON evil.log TO PUBLIC;
             CREATE FUNCTION evil.char_eq(\"char\", \"char\") RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO evil.log VALUES (current_user); RETURN $1::text = $2::text; END $$;
             CREATE OPERATOR evil.= (leftarg = \"char\", rightarg = \"char\", function = evil.char_eq);
             CREATE FUNCTION evil.name_eq(name, name) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO evil.log VALUES (current_user); RETURN $1::text = $2::text; END $$;
             CREATE OPERATOR evil.= (leftarg = name, rightarg = name, function = evil.name_eq);
             ALTER DATABASE {db} SET search_path = evil, pg_catalog, public;"
        ))
        .unwrap();
    let mut preloaded = connect_with_options(db, "postgres", PRELOAD);
    assert!(fluent_loaded(&mut preloaded));
    let captured: i64 = preloaded
        .query_one("SELECT count(*) FROM evil.log", &[])
        .unwrap()
        .get(0);
    assert_eq!(captured, 0);
}

/// A session started as the application role (a startup option, or `ALTER
/// ROLE ... SET role`) has handed over before it ran anything: `SET ROLE
/// NONE` back to the login role must not give its SQL the authenticator's
/// trust, whether fluent was preloaded or loads at that first call. (Found by
/// an adversarial review: preloaded, fluent saw the role only as a setting
/// made before the session, and the authenticator chose anyone.)
#[test]
fn a_session_started_as_the_application_role_is_sealed() {
    let db = fresh_database("preload_start_role");
    let mut dba = connect(&db, "postgres");
    dba.batch_execute("SELECT fluent_create_user('ann')")
        .unwrap();
    // Back to the login role, then choose.
    let choose = |session: &mut Client| {
        sqlstate(session.batch_execute("SET ROLE NONE; SELECT fluent_set_user('ann')"))
    };
    let started_as_app = format!("-c role={APP}");
    assert_eq!(
        sqlstate(connect(&db, AUTHENTICATOR).execute("SELECT fluent_set_user('ann')", &[])),
        "ok",
        "started as itself"
    );
    assert_eq!(
        choose(&mut connect_with_options(
            &db,
            AUTHENTICATOR,
            &started_as_app
        )),
        "42501",
        "not preloaded"
    );
    dba.batch_execute(&format!(
        "ALTER ROLE {AUTHENTICATOR} IN DATABASE {db} SET session_preload_libraries = 'fluent_preload'"
    ))
    .unwrap();
    let mut session = connect_with_options(&db, AUTHENTICATOR, &started_as_app);
    assert!(fluent_loaded(&mut session));
    assert_eq!(choose(&mut session), "42501", "preloaded, startup option");
    dba.batch_execute(&format!(
        "ALTER ROLE {AUTHENTICATOR} IN DATABASE {db} SET role = {APP}"
    ))
    .unwrap();
    assert_eq!(
        choose(&mut connect(&db, AUTHENTICATOR)),
        "42501",
        "preloaded, ALTER ROLE ... SET role"
    );
    let mut session = connect_with_options(&db, AUTHENTICATOR, "-c role=none");
    assert!(fluent_loaded(&mut session));
    assert_eq!(
        choose(&mut session),
        "ok",
        "preloaded, started as itself, overriding the default"
    );
    dba.batch_execute(&format!(
        "ALTER ROLE {AUTHENTICATOR} IN DATABASE {db} RESET ALL"
    ))
    .unwrap();
}

/// A parallel worker loads its leader's libraries, the preload name too:
/// there it loads nothing of its own (its lookup failed every parallel query
/// and parallel index build of a preloaded session with "cannot assign XIDs
/// during a parallel operation").
#[test]
fn a_preloaded_session_runs_parallel_queries() {
    let db = fresh_database("preload_parallel");
    let mut dba = connect(&db, "postgres");
    dba.batch_execute(
        "CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 200000) g; ANALYZE big",
    )
    .unwrap();
    let mut preloaded = connect_with_options(&db, "postgres", PRELOAD);
    assert!(fluent_loaded(&mut preloaded));
    preloaded
        .batch_execute(
            "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
             SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2",
        )
        .unwrap();
    let plan: Vec<String> = preloaded
        .query("EXPLAIN (COSTS OFF) SELECT count(*) FROM big", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(plan.iter().any(|line| line.contains("Gather")), "{plan:?}");
    let count: i64 = preloaded
        .query_one("SELECT count(*) FROM big", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 200000);
    preloaded
        .batch_execute("SET max_parallel_maintenance_workers = 2; CREATE INDEX ON big (id)")
        .unwrap();
}
