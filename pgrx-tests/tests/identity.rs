//! Verified identity over real connections, as the roles a PostgREST or
//! Supabase deployment uses: tokens (fluent_authenticate), the seal on
//! trusted identities, PostgREST's per-request SQL, the Supabase-style
//! accessor, unknown subjects and identity logging.

use fluent_pgrx_tests::tokens::{self, now, sign, sign_as};
use fluent_pgrx_tests::{
    api_schema, connect, connect_collecting_notices, ensure_role, fresh_database, sqlstate, APP,
    AUTHENTICATOR,
};
use postgres::Client;
use serde_json::json;

/// PostgREST's login role: no fluent trust at all.
const PGRST: &str = "it_pgrst";
/// PostgREST's role for requests with a valid JWT, and for anonymous ones.
const WEB: &str = "it_web";
const ANON: &str = "it_anon";
const AUDIENCE: &str = "fluent-app";
const ISSUER: &str = "https://auth.example";

/// A database whose tokens are verified with the test keys, with ann and
/// carol owning notes, and PostgREST's db-pre-request function.
fn database(name: &str, keys: &str) -> String {
    let database = fresh_database(name);
    let mut db = connect(&database, "postgres");
    ensure_role(&mut db, WEB, false, &[]);
    ensure_role(&mut db, ANON, false, &[]);
    ensure_role(&mut db, PGRST, true, &[WEB, ANON]);
    let api = api_schema().unwrap_or_else(|| "public".into());
    db.batch_execute(&format!(
        "UPDATE fluent.token_settings SET keys = '{keys}', audiences = '{{{AUDIENCE}}}', issuer = '{ISSUER}';
         SELECT fluent_create_module('notes');
         SELECT fluent_create_role('reader');
         SELECT fluent_set_permission('reader', 'notes', 'read', 'own');
         SELECT fluent_create_user('ann'); SELECT fluent_grant_role('ann', 'reader');
         SELECT fluent_create_user('carol'); SELECT fluent_grant_role('carol', 'reader');
         CREATE TABLE notes (id int PRIMARY KEY, owner text);
         INSERT INTO notes VALUES (1, 'ann'), (2, 'ann'), (3, 'carol');
         GRANT SELECT ON notes TO {WEB}, {ANON}, {APP};
         SELECT fluent_protect('notes', 'notes', 'owner');
         -- The recipe of the README: hand the raw bearer token to fluent.
         -- (With the API in another schema, that schema is on its path.)
         CREATE FUNCTION public.pre_request() RETURNS void
         LANGUAGE plpgsql SET search_path = pg_catalog, {api} AS $$
         DECLARE
             auth text := current_setting('request.headers', true)::json ->> 'authorization';
         BEGIN
             IF auth IS NOT NULL THEN
                 PERFORM fluent_authenticate(substring(auth FROM '^Bearer (.+)$'), true);
             END IF;
         END $$;"
    ))
    .unwrap();
    database
}

/// An authenticator choosing carol for the session and for the transaction.
const SESSION_AND_TRANSACTION_CHOICES: [&str; 2] = [
    "SELECT fluent_set_user('carol')",
    "SELECT fluent_set_user('carol', true)",
];

/// Claims as an identity provider issues them for `user`.
fn issued(user: &str) -> serde_json::Value {
    json!({ "sub": user, "aud": AUDIENCE, "iss": ISSUER, "exp": now() + 300, "role": WEB })
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One PostgREST request, as PostgREST 12 runs it: a transaction with the
/// role, claims and headers as local settings, the db-pre-request, the
/// query. Returns the ids of the notes seen, or the request's SQLSTATE.
fn request(
    client: &mut Client,
    role: &str,
    token: Option<&str>,
    claims: &str,
) -> Result<Vec<i32>, String> {
    let headers = match token {
        Some(token) => json!({ "authorization": format!("Bearer {token}") }).to_string(),
        None => "{}".into(),
    };
    let result = (|| {
        client.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE")?;
        client.batch_execute(&format!(
            "SELECT set_config('search_path', 'public', true), set_config('role', {}, true),
                    set_config('request.jwt.claims', {}, true), set_config('request.headers', {}, true),
                    set_config('request.method', 'GET', true), set_config('request.path', '/notes', true)",
            quote(role),
            quote(claims),
            quote(&headers)
        ))?;
        client.batch_execute("SELECT public.pre_request()")?;
        let rows = client.query("SELECT id FROM notes ORDER BY id", &[])?;
        client.batch_execute("COMMIT")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    })();
    result.map_err(|e: postgres::Error| {
        client.batch_execute("ROLLBACK").unwrap();
        sqlstate(Err::<(), _>(e))
    })
}

fn authenticate(client: &mut Client, token: &str) -> Result<String, String> {
    client
        .query_one("SELECT fluent_authenticate($1)", &[&token])
        .map(|row| row.get(0))
        .map_err(|e| sqlstate(Err::<(), _>(e)))
}

/// Runs `f` in a transaction as the web role, which holds no trust.
fn as_web<R>(client: &mut Client, f: impl FnOnce(&mut Client) -> R) -> R {
    client
        .batch_execute(&format!("BEGIN; SET LOCAL ROLE {WEB}"))
        .unwrap();
    let result = f(client);
    client.batch_execute("ROLLBACK").unwrap();
    result
}

#[test]
fn every_algorithm_verifies_and_the_subject_sees_their_rows() {
    let db = database("tokens_good", tokens::jwks());
    let mut c = connect(&db, PGRST);
    for alg in [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA",
    ] {
        // Two RSA keys: RS* tokens name theirs; the others need no kid.
        let kid = alg.starts_with("RS").then_some("rs-1");
        let token = sign(alg, kid, issued("ann"));
        let seen = as_web(&mut c, |c| {
            assert_eq!(authenticate(c, &token), Ok("ann".into()), "{alg}");
            let ids: Vec<i32> = c
                .query("SELECT id FROM notes ORDER BY id", &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            ids
        });
        assert_eq!(seen, [1, 2], "{alg}");
    }
    // With a kid, the key it names; within the leeway, an expired token still passes.
    let token = sign(
        "RS256",
        Some("rs-2"),
        json!({ "sub": "carol", "aud": AUDIENCE, "iss": ISSUER, "exp": now() - 10 }),
    );
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &token)),
        Ok("carol".into())
    );
}

#[test]
fn bad_tokens_are_refused() {
    let db = database("tokens_bad", tokens::jwks());
    let mut c = connect(&db, PGRST);
    let with = |changes: serde_json::Value| {
        let mut claims = issued("ann");
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let good = sign("RS256", Some("rs-1"), issued("ann"));
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let carol_payload = sign("RS256", Some("rs-1"), issued("carol"));
    let tampered = format!(
        "{head}.{}.{signature}",
        carol_payload.split('.').nth(1).unwrap()
    );
    let cases = [
        (
            "expired",
            sign("ES256", None, with(json!({ "exp": now() - 120 }))),
        ),
        (
            "not yet valid",
            sign("ES256", None, with(json!({ "nbf": now() + 120 }))),
        ),
        (
            "no exp",
            sign(
                "ES256",
                None,
                json!({ "sub": "ann", "aud": AUDIENCE, "iss": ISSUER }),
            ),
        ),
        (
            "wrong audience",
            sign("EdDSA", None, with(json!({ "aud": "other-app" }))),
        ),
        (
            "wrong issuer",
            sign(
                "EdDSA",
                None,
                with(json!({ "iss": "https://evil.example" })),
            ),
        ),
        ("bad signature", tampered),
        ("alg none", tokens::unsigned(issued("ann"))),
        (
            "HS256 signed with the RSA public key",
            tokens::hs256_with_rsa_public_key(issued("ann")),
        ),
        (
            "unknown kid",
            sign_as("RS256", "rs-1", Some("rs-9"), issued("ann")),
        ),
        (
            "kid of another key",
            sign_as("RS256", "rs-1", Some("rs-2"), issued("ann")),
        ),
        ("not a token", "ann".to_owned()),
        ("unknown subject", sign("HS256", None, issued("stranger"))),
    ];
    for (case, token) in cases {
        let result = as_web(&mut c, |c| {
            let r = authenticate(c, &token);
            let who: Option<String> = c
                .query_one("SELECT fluent_current_user()", &[])
                .map(|r| r.get(0))
                .unwrap_or(None);
            (r, who)
        });
        assert_eq!(result, (Err("28000".into()), None), "{case}");
    }
}

#[test]
fn a_rotated_key_set_takes_effect_and_keys_are_for_superusers_only() {
    let db = database("tokens_rotation", &tokens::jwks_with(&["rs-1"]));
    let old = sign("RS256", Some("rs-1"), issued("ann"));
    let new = sign("RS256", Some("rs-2"), issued("ann"));
    let mut c = connect(&db, PGRST);
    assert_eq!(as_web(&mut c, |c| authenticate(c, &old)), Ok("ann".into()));
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &new)),
        Err("28000".into())
    );
    // Rotation: both keys while tokens of the old one are still out, then the new one only.
    let mut su = connect(&db, "postgres");
    su.batch_execute(&format!(
        "UPDATE fluent.token_settings SET keys = '{}'",
        tokens::jwks_with(&["rs-1", "rs-2"])
    ))
    .unwrap();
    // Seen by the next statement of a session that is already connected.
    assert_eq!(as_web(&mut c, |c| authenticate(c, &old)), Ok("ann".into()));
    assert_eq!(as_web(&mut c, |c| authenticate(c, &new)), Ok("ann".into()));
    su.batch_execute(&format!(
        "UPDATE fluent.token_settings SET keys = '{}'",
        tokens::jwks_with(&["rs-2"])
    ))
    .unwrap();
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &old)),
        Err("28000".into())
    );
    assert_eq!(as_web(&mut c, |c| authenticate(c, &new)), Ok("ann".into()));

    // Nobody but superusers reads or changes the keys and the rules: not the
    // web role, not a DBA (fluent_admin), not a reporting role.
    let mut dba = connect(&db, "postgres");
    ensure_role(
        &mut dba,
        "it_token_dba",
        true,
        &["fluent_admin", "fluent_reader"],
    );
    let mut dba = connect(&db, "it_token_dba");
    for attempt in [
        "SELECT keys FROM fluent.token_settings",
        "UPDATE fluent.token_settings SET issuer = NULL",
        "SELECT * FROM fluent._load_token_settings()",
    ] {
        let web = as_web(&mut c, |c| sqlstate(c.batch_execute(attempt)));
        assert_eq!(web, "42501", "web: {attempt}");
        assert_eq!(
            sqlstate(dba.batch_execute(attempt)),
            "42501",
            "DBA: {attempt}"
        );
    }
    // Without keys, tokens are refused as a configuration error.
    su.batch_execute("UPDATE fluent.token_settings SET keys = NULL")
        .unwrap();
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &new)),
        Err("55000".into())
    );
}

#[test]
fn postgrest_requests_follow_the_token_and_nothing_else() {
    let db = database("postgrest", tokens::jwks());
    let mut c = connect(&db, PGRST);
    let ann = sign("RS256", Some("rs-1"), issued("ann"));
    let carol_claims = issued("carol").to_string();
    // Anonymous: no token, no identity, no rows.
    assert_eq!(request(&mut c, ANON, None, "{}"), Ok(vec![]));
    // A valid token: ann's rows.
    assert_eq!(
        request(&mut c, WEB, Some(&ann), &issued("ann").to_string()),
        Ok(vec![1, 2])
    );
    // Forged claims with ann's token: the token decides.
    assert_eq!(
        request(&mut c, WEB, Some(&ann), &carol_claims),
        Ok(vec![1, 2])
    );
    // Forged claims alone: nobody.
    assert_eq!(request(&mut c, WEB, None, &carol_claims), Ok(vec![]));
    // A forged token: the request fails.
    let forged = tokens::unsigned(issued("carol"));
    assert_eq!(
        request(&mut c, WEB, Some(&forged), &carol_claims),
        Err("28000".into())
    );
    // Nothing is carried to the next request on the pooled connection.
    assert_eq!(request(&mut c, ANON, None, "{}"), Ok(vec![]));
    let left: (Option<String>, Option<String>) = {
        let row = c
            .query_one("SELECT fluent_current_user(), fluent_verified_user()", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(left, (None, None));
    // SQL injected into a request cannot choose anyone by trust.
    c.batch_execute(&format!("BEGIN; SET LOCAL ROLE {WEB}"))
        .unwrap();
    authenticate(&mut c, &ann).unwrap();
    assert_eq!(
        sqlstate(c.execute("SELECT fluent_set_user('carol', true)", &[])),
        "42501"
    );
    c.batch_execute("ROLLBACK").unwrap();
    for attempt in [
        "SELECT fluent_set_user('carol', true)",
        "SELECT set_config('fluent.acting_user', 'carol', true)",
    ] {
        c.batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE {WEB}; SELECT fluent_authenticate({}); RESET ROLE",
            quote(&ann)
        ))
        .unwrap();
        assert_eq!(
            sqlstate(c.execute(attempt, &[])),
            "42501",
            "{attempt} after RESET ROLE"
        );
        c.batch_execute("ROLLBACK").unwrap();
    }
}

#[test]
fn the_verified_user_is_what_auth_uid_is_to_supabase() {
    let db = database("supabase", tokens::jwks());
    let mut c = connect(&db, PGRST);
    let ann = sign("ES384", None, issued("ann"));
    c.batch_execute(&format!("BEGIN; SET LOCAL ROLE {WEB}"))
        .unwrap();
    let before: Option<String> = c
        .query_one("SELECT fluent_verified_user()", &[])
        .unwrap()
        .get(0);
    authenticate(&mut c, &ann).unwrap();
    let after: Option<String> = c
        .query_one("SELECT fluent_verified_user()", &[])
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").unwrap();
    let next: Option<String> = c
        .query_one("SELECT fluent_verified_user()", &[])
        .unwrap()
        .get(0);
    assert_eq!((before, after, next), (None, Some("ann".into()), None));
    // An identity chosen by trust is not a verified one.
    let mut trusted = connect(&db, AUTHENTICATOR);
    trusted
        .batch_execute("BEGIN; SELECT fluent_set_user('carol', true)")
        .unwrap();
    let row = trusted
        .query_one("SELECT fluent_current_user(), fluent_verified_user()", &[])
        .unwrap();
    assert_eq!(
        (
            row.get::<_, Option<String>>(0),
            row.get::<_, Option<String>>(1)
        ),
        (Some("carol".into()), None)
    );
}

#[test]
fn an_unknown_subject_is_refused_or_created_as_configured() {
    let db = database("unknown_subject", tokens::jwks());
    let newbie = sign("HS512", None, issued("newbie"));
    let mut c = connect(&db, PGRST);
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &newbie)),
        Err("28000".into())
    );
    let mut su = connect(&db, "postgres");
    su.batch_execute(
        "UPDATE fluent.token_settings SET unknown_subject = 'create', new_user_roles = '{reader}'",
    )
    .unwrap();
    let mut c = connect(&db, PGRST);
    c.batch_execute(&format!("BEGIN; SET LOCAL ROLE {WEB}"))
        .unwrap();
    assert_eq!(authenticate(&mut c, &newbie), Ok("newbie".into()));
    let scope: String = c
        .query_one("SELECT fluent_scope('notes', 'read')", &[])
        .unwrap()
        .get(0);
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(scope, "own");
    let audit: Vec<(String, String, Option<String>)> = su
        .query(
            "SELECT table_name, db_role::text, acting_user FROM fluent.audit_log
              WHERE coalesce(after ->> 'user_key', '') = 'newbie' OR table_name = 'grants' AND acting_user = 'newbie'
              ORDER BY audit_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        audit,
        [
            ("users".into(), WEB.into(), Some("newbie".into())),
            ("grants".into(), WEB.into(), Some("newbie".into()))
        ]
    );
    // A configured role the workspace lacks is a configuration error, and nothing is created.
    su.batch_execute("UPDATE fluent.token_settings SET new_user_roles = '{reader,ghost_role}'")
        .unwrap();
    let other = sign("HS512", None, issued("other"));
    let mut c = connect(&db, PGRST);
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &other)),
        Err("42704".into())
    );
    let created: i64 = su
        .query_one(
            "SELECT count(*) FROM fluent.users WHERE user_key = 'other'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(created, 0);
}

#[test]
fn the_trusted_identity_cannot_be_handed_back() {
    let db = database("hand_back", tokens::jwks());
    let mut c = connect(&db, AUTHENTICATOR);
    // Per transaction: every route back to the authenticator stays ann.
    for route in [
        "RESET ROLE",
        "SET ROLE NONE",
        &format!("SET ROLE {AUTHENTICATOR}"),
        &format!("SELECT set_config('role', '{AUTHENTICATOR}', true)"),
    ] {
        c.batch_execute(&format!(
            "BEGIN; SELECT fluent_set_user('ann', true); SET LOCAL ROLE {APP}"
        ))
        .unwrap();
        assert_eq!(sqlstate(c.batch_execute(route)), "ok", "{route}");
        assert_eq!(
            sqlstate(c.execute("SELECT fluent_set_user('carol', true)", &[])),
            "42501",
            "{route}"
        );
        c.batch_execute("ROLLBACK").unwrap();
    }
    c.batch_execute(&format!(
        "BEGIN; SELECT fluent_set_user('ann', true); SET LOCAL ROLE {APP}"
    ))
    .unwrap();
    assert_eq!(
        sqlstate(c.batch_execute("SET SESSION AUTHORIZATION postgres")),
        "42501"
    );
    c.batch_execute("ROLLBACK").unwrap();
    // Per session: the same, also in later transactions.
    c.batch_execute(&format!(
        "SELECT fluent_set_user('ann'); SET ROLE {APP}; RESET ROLE"
    ))
    .unwrap();
    for choice in SESSION_AND_TRANSACTION_CHOICES {
        assert_eq!(sqlstate(c.execute(choice, &[])), "42501", "{choice}");
    }
    let who: Option<String> = c
        .query_one("SELECT fluent_current_user()", &[])
        .unwrap()
        .get(0);
    assert_eq!(who.as_deref(), Some("ann"));
    // A token identity is sealed the same way.
    let mut t = connect(&db, AUTHENTICATOR);
    let ann = sign("HS256", None, issued("ann"));
    t.batch_execute(&format!(
        "BEGIN; SET LOCAL ROLE {APP}; SELECT fluent_authenticate({}); RESET ROLE",
        quote(&ann)
    ))
    .unwrap();
    assert_eq!(
        sqlstate(t.execute("SELECT fluent_set_user('carol', true)", &[])),
        "42501"
    );
    t.batch_execute("ROLLBACK").unwrap();
    // Only a token changes it.
    let carol = sign("HS256", None, issued("carol"));
    c.batch_execute("BEGIN").unwrap();
    assert_eq!(authenticate(&mut c, &carol), Ok("carol".into()));
    c.batch_execute("COMMIT").unwrap();
}

/// What the application role sees in its session: the acting user, the
/// workspace, the database role, and the notes it reads.
fn seen(c: &mut Client) -> (Option<String>, Option<String>, String, i64) {
    let row = c
        .query_one(
            "SELECT fluent_current_user(), fluent_current_workspace(), current_user::text,
                    (SELECT count(*) FROM notes)",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// README, "A sealed session stays sealed": "`RESET ALL` by the application
/// role drops the identity and resets the workspace to `default`".
/// PostgreSQL's RESET ALL resets every setting the session may change or
/// not, but not the role: the connection stays the application role's,
/// sealed, and the authenticator cannot choose anyone again.
#[test]
fn reset_all_by_the_application_role_drops_the_identity_and_the_workspace() {
    let db = database("reset_all", tokens::jwks());
    connect(&db, "postgres")
        .batch_execute(
            "SELECT fluent_create_workspace('other'), fluent_set_workspace('other');
             SELECT fluent_create_module('notes');
             SELECT fluent_create_role('reader'), fluent_set_permission('reader', 'notes', 'read', 'all');
             SELECT fluent_grant_role('ann', 'reader');",
        )
        .unwrap();
    let ann_in_other = (
        Some("ann".to_owned()),
        Some("other".to_owned()),
        APP.to_owned(),
        3,
    );
    let nobody_in_default = (None, Some("default".to_owned()), APP.to_owned(), 0);
    // For the session.
    let mut c = connect(&db, AUTHENTICATOR);
    c.batch_execute(&format!(
        "SELECT fluent_set_workspace('other'); SELECT fluent_set_user('ann'); SET ROLE {APP}"
    ))
    .unwrap();
    assert_eq!(seen(&mut c), ann_in_other);
    c.batch_execute("RESET ALL").unwrap();
    assert_eq!(seen(&mut c), nobody_in_default, "after RESET ALL");
    c.batch_execute("RESET ROLE").unwrap();
    for choice in SESSION_AND_TRANSACTION_CHOICES {
        assert_eq!(sqlstate(c.execute(choice, &[])), "42501", "{choice}");
    }
    // For the transaction.
    let mut t = connect(&db, AUTHENTICATOR);
    t.batch_execute(&format!(
        "BEGIN; SELECT fluent_set_workspace('other', true); SELECT fluent_set_user('ann', true);
         SET LOCAL ROLE {APP}"
    ))
    .unwrap();
    assert_eq!(seen(&mut t), ann_in_other);
    t.batch_execute("RESET ALL").unwrap();
    assert_eq!(seen(&mut t), nobody_in_default, "after RESET ALL");
    t.batch_execute("RESET ROLE").unwrap();
    assert_eq!(
        sqlstate(t.execute("SELECT fluent_set_user('carol', true)", &[])),
        "42501"
    );
    t.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn trust_ends_when_the_role_changes_even_if_nothing_was_chosen() {
    let db = database("role_change_seal", tokens::jwks());
    connect(&db, "postgres")
        .batch_execute("SELECT fluent_create_workspace('other')")
        .unwrap();
    let first = |c: &mut Client, sql: &str| {
        c.batch_execute(sql).unwrap();
        let state = sqlstate(c.execute("SELECT fluent_set_user('carol', true)", &[]));
        c.batch_execute("ROLLBACK").unwrap();
        state
    };
    let mut c = connect(&db, AUTHENTICATOR);
    for (case, sql) in [
        // The first: a fresh backend, where fluent loads only after the role changed.
        ("nothing chosen", format!("BEGIN; SET LOCAL ROLE {APP}; RESET ROLE")),
        ("nothing chosen, fluent loaded", format!("BEGIN; SET LOCAL ROLE {APP}; RESET ROLE")),
        (
            "only the workspace chosen",
            format!("BEGIN; SELECT fluent_set_workspace('other', true); SET LOCAL ROLE {APP}; RESET ROLE"),
        ),
        (
            "set_config('role')",
            format!("BEGIN; SELECT set_config('role', '{APP}', true); SELECT set_config('role', 'none', true)"),
        ),
    ] {
        assert_eq!(first(&mut c, &sql), "42501", "{case}");
    }
    // The pool's per-transaction flow goes on: each transaction chooses once.
    for user in ["ann", "carol", "ann"] {
        c.batch_execute(&format!(
            "BEGIN; SELECT fluent_set_user('{user}', true); SET LOCAL ROLE {APP}"
        ))
        .unwrap();
        let who: Option<String> = c
            .query_one("SELECT fluent_current_user()", &[])
            .unwrap()
            .get(0);
        c.batch_execute("COMMIT").unwrap();
        assert_eq!(who.as_deref(), Some(user));
    }
    // A transaction identity cannot be made a session one, by trust or by token.
    c.batch_execute(&format!(
        "BEGIN; SELECT fluent_set_user('ann', true); SET LOCAL ROLE {APP}; RESET ROLE"
    ))
    .unwrap();
    assert_eq!(
        sqlstate(c.execute("SELECT fluent_set_user('ann', false)", &[])),
        "42501"
    );
    c.batch_execute("ROLLBACK").unwrap();
    let ann = sign("HS256", None, issued("ann"));
    c.batch_execute(&format!("BEGIN; SET LOCAL ROLE {APP}"))
        .unwrap();
    let session = sqlstate(c.execute("SELECT fluent_authenticate($1, false)", &[&ann]));
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(session, "42501");
    // A session-level move to the application role seals the connection, and
    // a later move rolled back does not undo it.
    let mut d = connect(&db, AUTHENTICATOR);
    // One statement per message, as psql sends them (a message with BEGIN
    // in it would make the first SET ROLE part of the rolled-back block).
    for statement in [
        "SELECT fluent_current_user()",
        &format!("SET ROLE {APP}"),
        "BEGIN",
        &format!("SET ROLE {APP}"),
        "ROLLBACK",
        "RESET ROLE",
    ] {
        d.batch_execute(statement).unwrap();
    }
    for choice in SESSION_AND_TRANSACTION_CHOICES {
        assert_eq!(sqlstate(d.execute(choice, &[])), "42501", "{choice}");
    }
    c.batch_execute(&format!("SET ROLE {APP}; RESET ROLE"))
        .unwrap();
    for choice in SESSION_AND_TRANSACTION_CHOICES {
        assert_eq!(sqlstate(c.execute(choice, &[])), "42501", "{choice}");
    }
}

#[test]
fn a_workspace_claim_chooses_the_workspace() {
    let db = database("workspace_claim", tokens::jwks());
    let mut su = connect(&db, "postgres");
    su.batch_execute(
        "SELECT fluent_create_workspace('acme');
         UPDATE fluent.token_settings SET workspace_claim = 'tenant'",
    )
    .unwrap();
    let mut c = connect(&db, PGRST);
    let mut claims = issued("ann");
    claims["tenant"] = json!("acme");
    let token = sign("ES256", None, claims.clone());
    let workspace = as_web(&mut c, |c| {
        authenticate(c, &token).unwrap();
        c.query_one("SELECT fluent_current_workspace()", &[])
            .unwrap()
            .get::<_, String>(0)
    });
    assert_eq!(workspace, "acme");
    claims["tenant"] = json!("nowhere");
    let unknown = sign("ES256", None, claims);
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &unknown)),
        Err("28000".into())
    );
    let without = sign("ES256", None, issued("ann"));
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &without)),
        Err("28000".into())
    );
}

#[test]
fn identity_changes_are_logged_when_asked() {
    let db = database("identity_log", tokens::jwks());
    let mut su = connect(&db, "postgres");
    su.batch_execute(&format!(
        "ALTER DATABASE {db} SET fluent.log_identity_changes = on"
    ))
    .unwrap();
    let (mut c, notices) = connect_collecting_notices(&db, PGRST);
    c.batch_execute("SET client_min_messages = log").unwrap();
    let ann = sign("HS256", None, issued("ann"));
    as_web(&mut c, |c| authenticate(c, &ann)).unwrap();
    let (mut t, trusted) = connect_collecting_notices(&db, AUTHENTICATOR);
    t.batch_execute(
        "SET client_min_messages = log; BEGIN; SELECT fluent_set_user('carol', true); COMMIT",
    )
    .unwrap();
    let logged = |notices: &std::sync::Arc<std::sync::Mutex<Vec<String>>>| {
        notices
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.contains("set the acting user"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        logged(&notices),
        [format!("LOG 00000: fluent: role \"{WEB}\" set the acting user to \"ann\" by token for the transaction")]
    );
    assert_eq!(
        logged(&trusted),
        [format!("LOG 00000: fluent: role \"{AUTHENTICATOR}\" set the acting user to \"carol\" by trust for the transaction")]
    );
}

#[test]
fn an_invited_subject_is_refused_until_the_invitation_is_accepted() {
    let db = database("invited_subject", tokens::jwks());
    let mut su = connect(&db, "postgres");
    // Even where unknown subjects are created: Ivan is known, only invited.
    su.batch_execute(
        "UPDATE fluent.token_settings SET unknown_subject = 'create', new_user_roles = '{reader}';
         SELECT fluent_invite_user('ivan'); SELECT fluent_grant_role('ivan', 'reader');
         INSERT INTO notes VALUES (4, 'ivan');",
    )
    .unwrap();
    let token = sign("HS512", None, issued("ivan"));
    let mut c = connect(&db, PGRST);
    assert_eq!(
        as_web(&mut c, |c| authenticate(c, &token)),
        Err("28000".into())
    );
    let status: String = su
        .query_one(
            "SELECT status::text FROM fluent.users WHERE user_key = 'ivan'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(status, "invited");
    su.batch_execute("SELECT fluent_accept_invitation('ivan')")
        .unwrap();
    assert_eq!(
        request(&mut c, WEB, Some(&token), &issued("ivan").to_string()),
        Ok(vec![4])
    );
}

/// fluent remembers which roles may choose identities (src/identity.rs,
/// `role_is_one_of`) until a role or a membership changes: a login role
/// whose membership in fluent_authenticator is revoked cannot choose in its
/// next transaction, on the connection it already has, and can again once
/// the membership is granted back.
#[test]
fn a_revoked_membership_ends_trust_in_an_open_session() {
    const LOGIN: &str = "it_auth_revoked";
    let db = fresh_database("identity_revoked_trust");
    let mut dba = connect(&db, "postgres");
    dba.batch_execute("SELECT fluent_create_user('ann'), fluent_create_user('bob')")
        .unwrap();
    ensure_role(&mut dba, LOGIN, true, &["fluent_authenticator", APP]);
    let mut app = connect(&db, LOGIN);
    app.batch_execute("BEGIN; SELECT fluent_set_user('ann', true); COMMIT")
        .unwrap();
    dba.batch_execute(&format!("REVOKE fluent_authenticator FROM {LOGIN}"))
        .unwrap();
    assert_eq!(
        sqlstate(app.batch_execute("BEGIN; SELECT fluent_set_user('bob', true)")),
        "42501",
        "no longer trusted"
    );
    app.batch_execute("ROLLBACK").unwrap();
    dba.batch_execute(&format!("GRANT fluent_authenticator TO {LOGIN}"))
        .unwrap();
    app.batch_execute("BEGIN; SELECT fluent_set_user('bob', true); COMMIT")
        .unwrap();
}

/// A role set in a session before fluent was loaded in it counts as a
/// hand-over, even a trusted one, since fluent could not watch the move:
/// choosing is refused (42501) with a hint that says so and how to avoid it.
/// Set after fluent is loaded, the same role chooses: the README's recipe
/// for a NOINHERIT member of fluent_authenticator.
#[test]
fn a_role_set_before_fluent_loads_counts_as_a_hand_over() {
    let database = fresh_database("identity_role_before_load");
    let mut db = connect(&database, "postgres");
    ensure_role(
        &mut db,
        "it_noinherit_auth",
        true,
        &["fluent_authenticator"],
    );
    db.batch_execute(
        "ALTER ROLE it_noinherit_auth NOINHERIT;
         SELECT fluent_create_user('ann');",
    )
    .unwrap();
    let choose = "SET ROLE fluent_authenticator; BEGIN; SELECT fluent_set_user('ann', true)";

    let mut before = connect(&database, "it_noinherit_auth");
    let loaded: i64 = before
        .query_one(
            "SELECT count(*) FROM pg_settings WHERE name = 'fluent.acting_user'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(loaded, 0, "fluent is not loaded before its first call");
    let refused = before.batch_execute(choose);
    let hint = refused
        .as_ref()
        .err()
        .and_then(|e| e.as_db_error())
        .and_then(|e| e.hint())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(sqlstate(refused), "42501");
    assert!(hint.contains("before fluent was loaded"), "{hint}");
    assert!(hint.contains("session_preload_libraries"), "{hint}");

    let mut after = connect(&database, "it_noinherit_auth");
    after.batch_execute("SELECT fluent_current_user()").unwrap();
    after.batch_execute(choose).unwrap();
    let acting: Option<String> = after
        .query_one("SELECT fluent_current_user()", &[])
        .unwrap()
        .get(0);
    assert_eq!(acting.as_deref(), Some("ann"));
}

/// A session-level hand-over rolled back with its transaction leaves the
/// session's trust as it was; one rolled back to a savepoint still seals the
/// session (README, "The trust model": it fails closed).
#[test]
fn a_hand_over_rolled_back_with_its_transaction_does_not_seal_the_session() {
    let database = fresh_database("identity_rolled_back_hand_over");
    connect(&database, "postgres")
        .batch_execute("SELECT fluent_create_user('ann')")
        .unwrap();
    let choose = |session: &mut Client| {
        sqlstate(session.execute("SELECT fluent_set_user('ann', true)", &[]))
    };
    let mut session = connect(&database, AUTHENTICATOR);
    session
        .batch_execute("SELECT fluent_current_user()")
        .unwrap();
    session
        .batch_execute(&format!("BEGIN; SET ROLE {APP}; ROLLBACK"))
        .unwrap();
    assert_eq!(
        choose(&mut session),
        "ok",
        "rolled back with the transaction"
    );
    let mut session = connect(&database, AUTHENTICATOR);
    session
        .batch_execute("SELECT fluent_current_user()")
        .unwrap();
    session
        .batch_execute(&format!(
            "BEGIN; SAVEPOINT s; SET ROLE {APP}; ROLLBACK TO s; COMMIT"
        ))
        .unwrap();
    assert_eq!(choose(&mut session), "42501", "rolled back to a savepoint");
}

/// A session-level move back to a trusted role (`RESET ROLE`, or `SET ROLE`
/// to the authenticator) followed by `SET LOCAL ROLE app` in the same
/// transaction hands over for that transaction only: the next transaction
/// chooses again. (An adversary's pass found both sealed the session for
/// good, so that an application resetting its role defensively at the start
/// of each transaction lost its pooled connection.) A session-level move to
/// the application role still seals it, whatever follows.
#[test]
fn a_local_hand_over_after_a_session_move_back_to_a_trusted_role_seals_only_its_transaction() {
    let database = fresh_database("identity_local_after_session_move");
    connect(&database, "postgres")
        .batch_execute("SELECT fluent_create_user('ann'), fluent_create_user('bob')")
        .unwrap();
    let choose = |session: &mut Client, user: &str| {
        sqlstate(session.execute(&format!("SELECT fluent_set_user('{user}', true)"), &[]))
    };
    // A session of the authenticator with fluent loaded (see
    // a_role_set_before_fluent_loads_counts_as_a_hand_over) that runs
    // `statements`, each in a message of its own, as an application sends them.
    let session_after = |statements: &[&str]| {
        let mut session = connect(&database, AUTHENTICATOR);
        session
            .batch_execute("SELECT fluent_current_user()")
            .unwrap();
        for statement in statements {
            session.batch_execute(statement).unwrap();
        }
        session
    };
    let hand_over = format!("SET LOCAL ROLE {APP}");
    for move_back in ["RESET ROLE", &format!("SET ROLE {AUTHENTICATOR}")] {
        let mut session = session_after(&[
            "BEGIN",
            move_back,
            "SELECT fluent_set_user('ann', true)",
            &hand_over,
        ]);
        session.batch_execute("SAVEPOINT s").unwrap();
        assert_eq!(
            choose(&mut session, "bob"),
            "42501",
            "{move_back}: the same transaction"
        );
        session.batch_execute("ROLLBACK TO s; COMMIT").unwrap();
        session.batch_execute("BEGIN").unwrap();
        assert_eq!(
            choose(&mut session, "bob"),
            "ok",
            "{move_back}: the next transaction"
        );
        session.batch_execute("COMMIT").unwrap();
    }
    let mut session = session_after(&[
        "BEGIN",
        &format!("SET ROLE {APP}"),
        &format!("SET LOCAL ROLE {AUTHENTICATOR}"),
        "COMMIT",
    ]);
    session.batch_execute("BEGIN").unwrap();
    assert_eq!(
        choose(&mut session, "bob"),
        "42501",
        "a session-level move to the application role"
    );
}

/// A local choice seals its transaction without a hand-over: the
/// authenticator's later calls there act for no one else. What its SQL
/// leaves on the connection does reach the next transaction (README, "What
/// fluent does not guarantee"): a temporary domain whose check chooses for
/// the session when nobody is chosen runs in the next transaction, before
/// any choice; `DISCARD ALL` between them drops it.
#[test]
fn a_local_choice_seals_its_transaction_but_not_what_it_leaves_on_the_connection() {
    let database = fresh_database("identity_choice_without_hand_over");
    connect(&database, "postgres")
        .batch_execute("SELECT fluent_create_user(u) FROM unnest('{ann,bob,carol}'::text[]) u")
        .unwrap();
    let who = |session: &mut Client| -> Option<String> {
        session
            .query_one("SELECT fluent_current_user()", &[])
            .unwrap()
            .get(0)
    };
    let mut session = connect(&database, AUTHENTICATOR);
    session
        .batch_execute("BEGIN; SELECT fluent_set_user('ann', true)")
        .unwrap();
    for attempt in [
        "SELECT fluent_set_user('bob', true)",
        "SELECT fluent_set_user('bob')",
        "SELECT fluent_reset_user(); SELECT fluent_set_user('bob', true)",
    ] {
        session.batch_execute("SAVEPOINT s").unwrap();
        assert_eq!(
            sqlstate(session.batch_execute(attempt)),
            "42501",
            "{attempt}"
        );
        session.batch_execute("ROLLBACK TO s").unwrap();
    }
    assert_eq!(who(&mut session).as_deref(), Some("ann"));
    let plant = "CREATE FUNCTION pg_temp.spy(k text) RETURNS boolean LANGUAGE plpgsql AS $$
                 BEGIN
                     IF fluent_current_user() IS NULL THEN PERFORM fluent_set_user('carol'); END IF;
                     RETURN true;
                 END $$;
                 CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (pg_temp.spy(VALUE))";
    session.batch_execute(plant).unwrap();
    session.batch_execute("COMMIT").unwrap();
    session.batch_execute("BEGIN; SELECT 'x'::text").unwrap();
    assert_eq!(
        who(&mut session).as_deref(),
        Some("carol"),
        "the planted domain chose in the next transaction"
    );
    session.batch_execute("COMMIT").unwrap();
    let mut session = connect(&database, AUTHENTICATOR);
    session
        .batch_execute(&format!(
            "BEGIN; SELECT fluent_set_user('ann', true); {plant}; COMMIT"
        ))
        .unwrap();
    session.batch_execute("DISCARD ALL").unwrap();
    session.batch_execute("BEGIN; SELECT 'x'::text").unwrap();
    assert_eq!(who(&mut session), None, "after DISCARD ALL: nobody");
    assert_eq!(
        sqlstate(session.batch_execute("SELECT fluent_set_user('bob', true)")),
        "ok",
        "and the transaction chooses its own user"
    );
    assert_eq!(who(&mut session).as_deref(), Some("bob"));
}

/// fluent loaded in a transaction that had moved the role at the session
/// level behind a later change: what that transaction leaves is judged
/// once it has ended. A `SET ROLE app` hidden behind `SET LOCAL role TO
/// DEFAULT` as fluent loads, and committed, seals the session; so does one
/// committed before fluent loaded in a transaction whose `RESET ROLE` is
/// rolled back. (An adversary's pass chose identities after both, once back
/// as the authenticator.) Each statement is a message of its own.
#[test]
fn a_session_move_that_commits_after_fluent_loaded_mid_transaction_seals_the_session() {
    let database = fresh_database("identity_move_around_the_load");
    connect(&database, "postgres")
        .batch_execute("SELECT fluent_create_user('bob')")
        .unwrap();
    let hidden_move = [
        "BEGIN".to_owned(),
        format!("SET ROLE {APP}"),
        "SET LOCAL role TO DEFAULT".to_owned(),
        "SELECT fluent_current_user()".to_owned(),
        "COMMIT".to_owned(),
    ];
    let undone_reset = [
        format!("SET ROLE {APP}"),
        "BEGIN".to_owned(),
        "RESET ROLE".to_owned(),
        "SELECT fluent_current_user()".to_owned(),
        "ROLLBACK".to_owned(),
    ];
    for (what, statements) in [
        ("a move hidden as fluent loads", &hidden_move[..]),
        ("a reset rolled back after fluent loads", &undone_reset[..]),
    ] {
        let mut session = connect(&database, AUTHENTICATOR);
        for statement in statements {
            session.batch_execute(statement).unwrap();
        }
        let role: String = session
            .query_one("SELECT current_user::text", &[])
            .unwrap()
            .get(0);
        assert_eq!(role, APP, "{what}: the session is the application role's");
        session.batch_execute("RESET ROLE").unwrap();
        session.batch_execute("BEGIN").unwrap();
        assert_eq!(
            sqlstate(session.execute("SELECT fluent_set_user('bob', true)", &[])),
            "42501",
            "{what}: back as the authenticator"
        );
    }
}
