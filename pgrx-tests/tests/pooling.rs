//! fluent behind PgBouncer in transaction pooling mode, with one server
//! connection: consecutive clients share one PostgreSQL backend, so
//! whatever one client leaves in the backend the next one finds.
//!
//! Everything through the bouncer uses the simple query protocol
//! (`simple_query` / `batch_execute`): the `postgres` crate's extended
//! protocol uses named prepared statements, which the PgBouncer in
//! Debian 12 (1.18) cannot carry across a transaction pool (see
//! `fluent_pgrx_tests::bouncer`).

use fluent_pgrx_tests::bouncer::Bouncer;
use fluent_pgrx_tests::tokens;
use fluent_pgrx_tests::{connect, fresh_database, APP, AUTHENTICATOR};
use postgres::{Client, SimpleQueryMessage};

/// ann owns 2 of the 5 notes.
const ANNS_NOTES: &str = "2";

fn seed(database: &str) {
    let mut dba = connect(database, "postgres");
    dba.batch_execute(&format!(
        "SELECT fluent_create_module('notes');
         SELECT fluent_create_role('reader');
         SELECT fluent_set_permission('reader', 'notes', 'read', 'own');
         SELECT fluent_create_user('ann');
         SELECT fluent_grant_role('ann', 'reader');
         CREATE TABLE notes (id int PRIMARY KEY, owner text);
         INSERT INTO notes VALUES (1, 'ann'), (2, 'ann'), (3, 'bob'), (4, 'bob'), (5, 'bob');
         GRANT SELECT ON notes TO {APP};
         SELECT fluent_protect('notes', 'notes', 'owner');"
    ))
    .unwrap();
}

/// The only row `sql` returns, as text (simple protocol).
fn row(client: &mut Client, sql: &str) -> Vec<Option<String>> {
    let rows: Vec<_> = client
        .simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).map(str::to_owned))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 1, "{sql} returned {rows:?}");
    rows.into_iter().next().unwrap()
}

/// Who the backend acts for, who it runs as, which backend it is, and how
/// many notes it sees.
const STATE: &str = "SELECT fluent_current_user(), current_user::text, pg_backend_pid()::text, \
                     (SELECT count(*) FROM notes)::text";

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[test]
fn a_per_transaction_identity_ends_with_the_transaction_and_is_not_handed_to_the_next_client() {
    let db = fresh_database("pool_local");
    seed(&db);
    let bouncer = Bouncer::start(&db);

    let mut a = bouncer.connect(AUTHENTICATOR);
    a.batch_execute("BEGIN").unwrap();
    a.batch_execute("SELECT fluent_set_user('ann', true)")
        .unwrap();
    a.batch_execute(&format!("SET LOCAL ROLE {APP}")).unwrap();
    let in_a = row(&mut a, STATE);
    assert_eq!(in_a[0], some("ann"));
    assert_eq!(in_a[1], some(APP));
    assert_eq!(in_a[3].as_deref(), Some(ANNS_NOTES));
    a.batch_execute("COMMIT").unwrap();

    // A stays connected; B is a second client of the same pool, served by
    // the same (only) server connection.
    let mut b = bouncer.connect(AUTHENTICATOR);
    let in_b = row(&mut b, STATE);
    assert_eq!(in_b[2], in_a[2], "B runs on A's backend");
    assert_eq!(in_b[0], None, "A's identity ended with its transaction");
    assert_eq!(
        in_b[1],
        some(AUTHENTICATOR),
        "and so did its SET LOCAL ROLE"
    );
    assert_eq!(in_b[3].as_deref(), Some("0"), "nobody sees no notes");

    // The same as the application role, which is what B's queries run as.
    b.batch_execute(&format!("BEGIN; SET LOCAL ROLE {APP}"))
        .unwrap();
    let as_app = row(&mut b, STATE);
    b.batch_execute("COMMIT").unwrap();
    assert_eq!(as_app[2], in_a[2]);
    assert_eq!(as_app[0], None);
    assert_eq!(as_app[1], some(APP));
    assert_eq!(as_app[3].as_deref(), Some("0"));

    // And A, back for another transaction, starts from nobody too.
    let again = row(&mut a, STATE);
    assert_eq!(again[2], in_a[2]);
    assert_eq!(again[0], None);
    assert_eq!(again[1], some(AUTHENTICATOR));
}

/// The token form: what a PostgREST request does, one transaction each.
#[test]
fn a_per_transaction_token_identity_is_not_handed_to_the_next_client() {
    let db = fresh_database("pool_token");
    seed(&db);
    connect(&db, "postgres")
        .batch_execute(&format!(
            "UPDATE fluent.token_settings SET keys = '{}'",
            tokens::jwks()
        ))
        .unwrap();
    let bouncer = Bouncer::start(&db);
    let token = tokens::sign("EdDSA", None, tokens::claims("ann"));

    let mut a = bouncer.connect(AUTHENTICATOR);
    a.batch_execute(&format!(
        "BEGIN; SET LOCAL ROLE {APP}; SELECT fluent_authenticate('{token}', true)"
    ))
    .unwrap();
    let in_a = row(&mut a, STATE);
    a.batch_execute("COMMIT").unwrap();
    assert_eq!(in_a[0], some("ann"));
    assert_eq!(in_a[3].as_deref(), Some(ANNS_NOTES));

    let mut b = bouncer.connect(AUTHENTICATOR);
    b.batch_execute(&format!("BEGIN; SET LOCAL ROLE {APP}"))
        .unwrap();
    let in_b = row(&mut b, STATE);
    let verified = row(&mut b, "SELECT fluent_verified_user()");
    b.batch_execute("COMMIT").unwrap();
    assert_eq!(in_b[2], in_a[2], "B runs on A's backend");
    assert_eq!(
        in_b[0], None,
        "A's token identity ended with its transaction"
    );
    assert_eq!(verified[0], None);
    assert_eq!(in_b[3].as_deref(), Some("0"));
}

/// Documents the hazard: the session form (`fluent_set_user(user)`, i.e.
/// `local => false`) sets the identity on the *server* backend, and a
/// transaction pool hands that backend to whichever client comes next.
/// Behind a transaction pool only the per-transaction form is safe.
#[test]
fn hazard_a_session_identity_leaks_to_the_next_client_of_a_transaction_pool() {
    let db = fresh_database("pool_session");
    seed(&db);
    let bouncer = Bouncer::start(&db);

    let mut a = bouncer.connect(AUTHENTICATOR);
    a.batch_execute("SELECT fluent_set_user('ann')").unwrap();
    let in_a = row(&mut a, STATE);
    assert_eq!(in_a[0], some("ann"));

    let mut b = bouncer.connect(AUTHENTICATOR);
    let in_b = row(&mut b, STATE);
    assert_eq!(in_b[2], in_a[2], "B runs on A's backend");
    assert_eq!(
        in_b[0],
        some("ann"),
        "B, which never set a user, acts as the user A set for its session"
    );
    b.batch_execute(&format!("BEGIN; SET LOCAL ROLE {APP}"))
        .unwrap();
    let as_app = row(&mut b, STATE);
    b.batch_execute("COMMIT").unwrap();
    assert_eq!(as_app[0], some("ann"));
    assert_eq!(
        as_app[3].as_deref(),
        Some(ANNS_NOTES),
        "and reads ann's notes"
    );
}
