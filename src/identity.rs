//! Who the session acts for: the end user and the workspace.
//!
//! An application connects as one database role and acts for many users, so
//! the end user is not `current_user`. It is chosen in one of two ways:
//!
//! - By a verified token: `fluent_authenticate(token)`, which any role may
//!   call; the token decides (src/token.rs).
//! - By trust: `fluent_set_user(user)`, for superusers and roles with the
//!   privileges of `fluent_admin` (DBAs, tests), which may switch freely, and
//!   of `fluent_authenticator` (the role an application logs in as), which
//!   chooses once: after that, in the same transaction (`local => true`) or
//!   session, only a token changes the identity. So SQL that the application
//!   role runs after `SET ROLE` cannot hand itself back to the authenticator
//!   (`RESET ROLE`, `SET ROLE`, a function's `SET` clause) and choose
//!   someone else: the identity is sealed, whichever role asks. Trust also
//!   ends when the session moves to an untrusted role, chosen or not: fluent
//!   watches PostgreSQL's `role` setting (`assign_role` below).

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::cache;
use crate::citus;
use crate::error::FluentError;
use crate::gucs;
use crate::loaders;
use crate::owner::{self, as_catalog_owner, update};
use crate::token;

const TRUSTED_ROLES: [&std::ffi::CStr; 2] = [c"fluent_authenticator", c"fluent_admin"];
const ADMIN_ROLES: [&std::ffi::CStr; 1] = [c"fluent_admin"];

/// The roles named that exist, with their OIDs. Role names are only ever
/// looked up exactly, never parsed as identifiers; after that, roles are
/// compared by OID.
fn existing_roles<'r, 'n>(
    roles: &'r [&'n std::ffi::CStr],
) -> impl Iterator<Item = (&'n std::ffi::CStr, pg_sys::Oid)> + 'r {
    roles
        .iter()
        .map(|name| (*name, unsafe { pg_sys::get_role_oid(name.as_ptr(), true) }))
        .filter(|(_, oid)| *oid != pg_sys::InvalidOid)
}

/// Whether the current role (after any SET ROLE or SECURITY DEFINER switch)
/// is a superuser.
pub fn current_role_is_superuser() -> bool {
    unsafe { pg_sys::superuser_arg(pg_sys::GetUserId()) }
}

type RoleList = &'static [&'static std::ffi::CStr];

thread_local! {
    /// What `role_is_one_of` answered, by role and list, until a role, a
    /// membership, a database's owner or a relation's owner changes (the
    /// syscache callbacks `forget_verdicts` is registered for): each
    /// transaction of an application asks it when it chooses the user and
    /// again when it sets its role, and PostgreSQL keeps the memberships of
    /// one role at a time, so asking for two in turn recomputes both.
    static VERDICTS: RefCell<Vec<(pg_sys::Oid, RoleList, bool)>> = const { RefCell::new(Vec::new()) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn forget_verdicts(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    // Only forget: no catalog access is allowed here.
    VERDICTS.with_borrow_mut(Vec::clear);
}

/// Whether `role` is a superuser, the catalog owner (fluent's own elevated
/// code) or has the privileges of one of `roles`.
fn role_is_one_of(role: pg_sys::Oid, roles: RoleList) -> bool {
    let known = VERDICTS.with_borrow(|v| {
        v.iter()
            .find(|(r, list, _)| *r == role && *list == roles)
            .map(|(_, _, verdict)| *verdict)
    });
    if let Some(verdict) = known {
        return verdict;
    }
    let superuser = unsafe { pg_sys::superuser_arg(role) };
    let verdict = superuser
        || existing_roles(roles).any(|(_, r)| unsafe { pg_sys::has_privs_of_role(role, r) })
        || owner::is_catalog_owner(role);
    VERDICTS.with_borrow_mut(|v| {
        // A handful of roles per backend; a bound all the same.
        if v.len() >= 64 {
            v.clear();
        }
        v.push((role, roles, verdict));
    });
    verdict
}

/// Whether the current role is a superuser or has the privileges of one of
/// `roles`.
pub fn current_role_is_one_of(roles: RoleList) -> bool {
    role_is_one_of(unsafe { pg_sys::GetUserId() }, roles)
}

/// Whether `role` administers fluent as a DBA (superuser or fluent_admin).
pub fn role_is_dba(role: pg_sys::Oid) -> bool {
    role_is_one_of(role, &ADMIN_ROLES)
}

/// Whether the current role may read anyone's permissions: superusers,
/// fluent_admin and fluent_reader.
pub fn current_role_reads_all() -> bool {
    current_role_is_one_of(&[c"fluent_admin", c"fluent_reader"])
}

/// Raises 25006 on a hot standby: the catalog is written on the primary.
pub fn require_primary() {
    if unsafe { pg_sys::RecoveryInProgress() } {
        FluentError::OnStandby.report();
    }
}

/// Raises unless the current role is trusted with `roles`; a member that
/// does not inherit their privileges is told to SET ROLE first.
fn require_one_of(roles: RoleList, refused: impl FnOnce() -> FluentError) {
    if current_role_is_one_of(roles) {
        return;
    }
    let me = unsafe { pg_sys::GetUserId() };
    match existing_roles(roles).find(|(_, role)| unsafe { pg_sys::is_member_of_role(me, *role) }) {
        Some((name, _)) => FluentError::TrustedOnlyAfterSetRole {
            denied: refused().message(),
            role: name.to_string_lossy().into_owned(),
        }
        .report(),
        None => refused().report(),
    }
}

/// How far a trusted caller is trusted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Superusers and fluent_admin: may switch identities at will.
    Unrestricted,
    /// fluent_authenticator: chooses once per transaction or session.
    Once,
}

fn require_trusted(what: &'static str) -> Trust {
    // Inside a security-restricted operation (index expressions, maintenance
    // commands run as a table owner) nobody chooses identities.
    if unsafe { pg_sys::InSecurityRestrictedOperation() } {
        FluentError::NotTrusted { what }.report();
    }
    if current_role_is_one_of(&ADMIN_ROLES) {
        return Trust::Unrestricted;
    }
    require_one_of(&TRUSTED_ROLES, || FluentError::NotTrusted { what });
    Trust::Once
}

/// Whether the current role could choose the acting user now, as
/// `fluent_set_user` decides, without raising: a DBA, or a role with the
/// privileges of fluent_authenticator whose identity is not sealed; nobody
/// inside a security-restricted operation.
pub fn may_choose_identity() -> bool {
    if unsafe { pg_sys::InSecurityRestrictedOperation() } {
        return false;
    }
    current_role_is_one_of(&ADMIN_ROLES) || (current_role_is_one_of(&TRUSTED_ROLES) && !sealed())
}

/// Whether the identity can no longer be chosen by trust: set once for the
/// transaction or for the session. Cleared at transaction end
/// (`transaction`), never (`session`): a session identity chosen by an
/// authenticator is that connection's for good.
#[derive(Clone, Copy, Default)]
struct Seal {
    session: bool,
    transaction: bool,
}

thread_local! {
    static SEAL: Cell<Seal> = Cell::new(Seal::default());
    /// The current transaction moved the session to an untrusted role at
    /// the session level: if it commits, the session is sealed.
    static SESSION_MOVE_PENDING: Cell<bool> = const { Cell::new(false) };
    /// The user the last token verified, and whether only for the transaction.
    static VERIFIED: RefCell<Option<(String, bool)>> = const { RefCell::new(None) };
    /// The role the session was started as (a startup option, `ALTER ROLE`
    /// or `ALTER DATABASE ... SET role`), as it was when the library loaded:
    /// judged at the first question about the seal, in a transaction (the
    /// library may load outside one, where no catalog can be read).
    static START_ROLE: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
    /// Whether the library loaded in a transaction that had already changed
    /// the role (`watch_role_changes`), and how far that transaction got.
    static LOADED_AFTER_A_ROLE_CHANGE: Cell<LoadedAfter> = const { Cell::new(LoadedAfter::No) };
}

/// The library may load in a transaction that changed the role before:
/// what that transaction leaves at the session level (a `SET ROLE app`
/// hidden behind `SET LOCAL role TO DEFAULT` or a `RESET ROLE` that a
/// rollback undoes) is known only once it has ended.
#[derive(Clone, Copy, PartialEq)]
enum LoadedAfter {
    No,
    /// In the running transaction.
    InThisTransaction,
    /// That transaction ended: judged at the next question about the seal or
    /// change of the role (`judge_the_role_left_by_the_loading_transaction`).
    Ended,
}

/// After the transaction the library loaded in has ended: a role set at the
/// session level by SQL (the value before the running transaction, the
/// bottom of the setting's stack, or the current one) seals the session, as
/// it would have had the library been loaded (`watch_role_changes` judges
/// the same at load; both fail closed for a trusted role so set).
fn judge_the_role_left_by_the_loading_transaction() {
    if LOADED_AFTER_A_ROLE_CHANGE.get() != LoadedAfter::Ended {
        return;
    }
    LOADED_AFTER_A_ROLE_CHANGE.set(LoadedAfter::No);
    let source = unsafe {
        let setting = ROLE_SETTING;
        if setting.is_null() {
            return;
        }
        let mut entry = (*setting).stack;
        if entry.is_null() {
            (*setting).source
        } else {
            while !(*entry).prev.is_null() {
                entry = (*entry).prev;
            }
            (*entry).source
        }
    };
    if source == pg_sys::GucSource::PGC_S_SESSION {
        seal(false);
    }
}

fn sealed() -> bool {
    let in_transaction = unsafe { pg_sys::IsTransactionState() };
    if in_transaction {
        judge_the_role_left_by_the_loading_transaction();
    }
    let judged = in_transaction.then(|| START_ROLE.take()).flatten();
    if let Some(role) = judged {
        // A session started as a role not trusted to choose identities has
        // handed over before it ran anything: `SET ROLE NONE` must not give
        // its SQL the login role's trust.
        if !role_is_one_of(role, &TRUSTED_ROLES) {
            seal(false);
        }
    }
    let seal = SEAL.with(Cell::get);
    seal.session || seal.transaction
}

/// Called after every change of the `role` setting: SET [LOCAL] ROLE, RESET
/// ROLE, SET ROLE NONE, set_config('role', ...), a function's SET role, and
/// PostgreSQL restoring it when a transaction or subtransaction ends.
///
/// Inside a transaction, a move to a role that is not trusted to choose
/// identities means the session is handing over to an application role, so
/// trust ends for the rest of the transaction: whatever the authenticator
/// wanted to choose it chose before. If the move is session-level (not SET
/// LOCAL, not a function's SET clause, as the setting's stack tells) and
/// commits, the whole session is sealed from the next transaction on.
/// `GUC_SET_LOCAL` is a SET LOCAL after a session-level SET in the same
/// (sub)transaction: the value that commits is the SET's, judged when it was
/// made (a `RESET ROLE` back to the authenticator, then `SET LOCAL ROLE app`,
/// is a hand-over for the transaction only).
fn role_changed(state: Option<pg_sys::GucStackState::Type>) {
    use pg_sys::GucStackState::GUC_SET;
    if !unsafe { pg_sys::IsTransactionState() } {
        return;
    }
    // Before this change is judged: its stack entry keeps the value it
    // replaces, the one an earlier transaction left.
    judge_the_role_left_by_the_loading_transaction();
    let role = match unsafe { pg_sys::GetCurrentRoleId() } {
        pg_sys::InvalidOid => unsafe { pg_sys::GetSessionUserId() },
        role => role,
    };
    if role_is_one_of(role, &TRUSTED_ROLES) {
        return;
    }
    seal(true);
    if state == Some(GUC_SET) {
        SESSION_MOVE_PENDING.with(|p| p.set(true));
    }
}

static mut CORE_ASSIGN_ROLE: pg_sys::GucStringAssignHook = None;
static mut ROLE_SETTING: *mut pg_sys::config_generic = std::ptr::null_mut();

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_role(
    new: *const std::ffi::c_char,
    extra: *mut std::ffi::c_void,
) {
    if let Some(core) = CORE_ASSIGN_ROLE {
        core(new, extra);
    }
    // PostgreSQL pushes the old value before it assigns the new one, so the
    // top of the stack says how this change was made.
    let stack = if ROLE_SETTING.is_null() {
        std::ptr::null_mut()
    } else {
        (*ROLE_SETTING).stack
    };
    role_changed((!stack.is_null()).then(|| (*stack).state));
}

/// Chains `assign_role` in front of PostgreSQL's own assign hook of the
/// `role` setting, the one place every route to a new current role passes.
unsafe fn watch_role_changes() {
    let Some(generic) = gucs::find(c"role") else {
        pgrx::error!("fluent could not find the role setting");
    };
    // The library may load after the role changed (it loads at the first
    // call of a fluent function): a change in this transaction leaves the
    // setting's stack, a session-level SET ROLE its source.
    if !(*generic).stack.is_null() {
        seal(true);
        LOADED_AFTER_A_ROLE_CHANGE.set(LoadedAfter::InThisTransaction);
    }
    if (*generic).source == pg_sys::GucSource::PGC_S_SESSION {
        seal(false);
    } else if (*generic).source > pg_sys::GucSource::PGC_S_DEFAULT {
        // Set before any SQL ran, so no SQL chose it: the session's starting
        // role, judged when the seal is first asked about (`sealed`).
        let role = pg_sys::GetCurrentRoleId();
        if role != pg_sys::InvalidOid {
            START_ROLE.set(Some(role));
        }
    }
    // _PG_init runs once per backend, so this chains once.
    ROLE_SETTING = generic;
    let role = generic.cast::<pg_sys::config_string>();
    CORE_ASSIGN_ROLE = (*role).assign_hook;
    (*role).assign_hook = Some(assign_role);
}

/// Seals the identity for the transaction (`local`) or for the session (and
/// the transaction with it: `sealed` asks for either).
fn seal(local: bool) {
    SEAL.with(|s| {
        let mut seal = s.get();
        seal.transaction = true;
        seal.session |= !local;
        s.set(seal);
    });
}

/// Refuses a change by trust of a sealed identity. Choosing the identity
/// that is already in place changes nothing and is allowed.
fn refuse_if_sealed(what: &'static str, unchanged: bool) {
    if sealed() && !unchanged {
        FluentError::IdentitySealed { what }.report();
    }
}

pub fn init() {
    unsafe {
        watch_role_changes();
        // What `role_is_one_of` depends on: roles (superuser, names),
        // memberships, database owners (pg_database_owner) and the owner of
        // fluent's catalog.
        for cache in [
            pg_sys::SysCacheIdentifier::AUTHOID,
            pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM,
            pg_sys::SysCacheIdentifier::DATABASEOID,
            pg_sys::SysCacheIdentifier::RELOID,
        ] {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as i32,
                Some(forget_verdicts),
                pg_sys::Datum::from(0),
            );
        }
    }
}

/// At the end of every transaction (src/lib.rs): the transaction's seal and
/// verified user end with it; a session-level move to an untrusted role that
/// commits seals the session for good, one rolled back with the transaction
/// does not (one rolled back to a savepoint still does: it fails closed).
pub fn transaction_ended(committed: bool) {
    if LOADED_AFTER_A_ROLE_CHANGE.get() == LoadedAfter::InThisTransaction {
        LOADED_AFTER_A_ROLE_CHANGE.set(LoadedAfter::Ended);
    }
    SEAL.with(|s| {
        let moved = SESSION_MOVE_PENDING.with(|p| p.replace(false));
        let seal = s.get();
        s.set(Seal {
            session: seal.session || (moved && committed),
            transaction: false,
        });
    });
    VERIFIED.with(|v| {
        let mut v = v.borrow_mut();
        if matches!(*v, Some((_, true))) {
            *v = None;
        }
    });
}

pub fn role_name(role: pg_sys::Oid) -> String {
    unsafe {
        std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(role, false))
            .to_string_lossy()
            .into_owned()
    }
}

/// One server-log line per identity change when fluent.log_identity_changes
/// is on, for shops that audit sessions (pgaudit, set_user).
fn log_change(user: &str, how: &str, local: bool) {
    if gucs::log_identity_changes() {
        let role = role_name(unsafe { pg_sys::GetUserId() });
        let span = if local { "transaction" } else { "session" };
        pgrx::log!(
            "fluent: role \"{role}\" set the acting user to \"{user}\" by {how} for the {span}"
        );
    }
}

fn local_or_error(local: Option<bool>) -> bool {
    local.unwrap_or_else(|| {
        FluentError::NullArgument {
            argument: "local".into(),
            hint: "Pass true for the current transaction, false for the session.",
        }
        .report()
    })
}

/// Sets one of the identity settings, for the transaction when `local`.
/// Like `SET LOCAL`, a local setting outside a transaction block warns: it
/// ends with the statement.
fn set_identity(name: &std::ffi::CStr, value: &str, local: bool, function: &'static str) {
    // On a Citus worker the identity is the coordinator's (src/citus.rs): a
    // call pushed down into a shard query would otherwise choose again, past
    // the seal, on a connection Citus keeps for later transactions.
    if !current_role_is_superuser() && citus::on_worker() {
        FluentError::IdentityOnCitusWorker.report();
    }
    if local && !unsafe { pg_sys::IsTransactionBlock() } {
        FluentError::LocalOutsideTransaction { function }.warn();
    }
    gucs::set(name, value, local);
    // On a Citus coordinator, the workers' connections of this transaction
    // learn the identity too.
    gucs::with_acting(citus::carry_identity);
}

#[pg_schema]
mod fluent {
    use super::*;

    /// Raises 42501 unless the current role is a superuser or has the
    /// privileges of fluent_admin; every administration function calls it.
    #[pg_extern(stable, parallel_safe)]
    fn _require_admin() {
        require_one_of(&ADMIN_ROLES, || FluentError::NotAdmin);
        require_primary();
    }

    /// Whether the current role is a superuser, by OID.
    #[pg_extern(stable, parallel_safe)]
    fn _current_role_is_superuser() -> bool {
        current_role_is_superuser()
    }

    /// Whether the session user (who runs a test suite, whatever role it
    /// switched to) is a DBA, by OID: the test helpers switch identities.
    #[pg_extern(stable, parallel_safe)]
    fn _session_user_is_dba() -> bool {
        role_is_dba(unsafe { pg_sys::GetSessionUserId() })
    }

    /// The acting user, for PL/pgSQL in schema fluent: the SECURITY DEFINER
    /// administration functions must not look up `fluent_current_user` in
    /// the extension schema at run time, where the database owner could put
    /// a function of their own.
    #[pg_extern(stable, parallel_safe)]
    fn _acting_user() -> Option<String> {
        gucs::with_acting(|user, _| user.map(str::to_owned))
    }

    /// The current workspace, for the same reason.
    #[pg_extern(stable, parallel_safe)]
    fn _workspace_name() -> String {
        gucs::with_workspace(str::to_owned)
    }
}

/// Makes `user_key` the acting end user for the session, or with
/// `local => true` for the current transaction only.
#[pg_extern(volatile, parallel_unsafe)]
fn fluent_set_user(user_key: Option<&str>, local: default!(Option<bool>, false)) {
    let trust = require_trusted("user");
    let Some(user_key) = user_key else {
        FluentError::NullArgument {
            argument: "user".into(),
            hint: "Use fluent_reset_user() to act for nobody.",
        }
        .report()
    };
    let local = local_or_error(local);
    if trust == Trust::Once {
        // Choosing the same user again changes nothing, but not for the
        // session: that would make a transaction's identity outlive it.
        refuse_if_sealed(
            "user",
            local && gucs::with_acting(|user, _| user == Some(user_key)),
        );
    }
    // Checked in the current workspace: set the workspace first.
    gucs::with_acting(|_, workspace| cache::check_may_act(workspace, user_key))
        .unwrap_or_else(|e| e.report());
    set_identity(gucs::USER_GUC, user_key, local, "fluent_set_user");
    if trust == Trust::Once {
        seal(local);
    }
    log_change(user_key, "trust", local);
}
extension_sql!(
    r#"COMMENT ON FUNCTION @extschema@.fluent_set_user(text, boolean) IS
    'Sets the acting end user for the session, or the transaction when local; superusers and fluent_admin at will, fluent_authenticator once per transaction or session';"#,
    name = "fluent_set_user_comment",
    requires = [fluent_set_user]
);

/// Verifies a JSON Web Token with the keys and rules of
/// `fluent.token_settings` and makes its subject the acting user (and its workspace claim,
/// when a workspace claim is configured, the workspace), for the
/// transaction or, with `local => false`, the session. Any role may call it:
/// the token decides. Returns the user key.
#[pg_extern(volatile, parallel_unsafe)]
fn fluent_authenticate(token: Option<&str>, local: default!(Option<bool>, true)) -> String {
    let Some(token) = token else {
        FluentError::NullArgument {
            argument: "token".into(),
            hint: "Pass the raw JSON Web Token, without the \"Bearer \" prefix.",
        }
        .report()
    };
    let local = local_or_error(local);
    // A session identity outlives the request: only roles trusted to choose
    // identities may make one, so SQL run as the application role cannot
    // leave its own identity behind on a pooled connection.
    if !local {
        require_trusted("user for the session");
    }
    let settings = loaders::load_token_settings();
    let keys = settings
        .keys
        .as_deref()
        .unwrap_or_else(|| FluentError::TokensNotConfigured.report());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let audiences: Vec<&str> = settings.audiences.iter().map(String::as_str).collect();
    let verified = token::verify(
        token,
        &token::Policy {
            keys,
            audiences: &audiences,
            issuer: settings.issuer.as_deref(),
            leeway: settings.leeway,
            user_claim: &settings.user_claim,
            workspace_claim: settings.workspace_claim.as_deref(),
            now,
        },
    )
    .unwrap_or_else(|e| {
        if e.is_configuration() {
            FluentError::TokenKeysInvalid { reason: e.reason() }.report()
        }
        FluentError::TokenRefused { reason: e.reason() }.report()
    });
    if let Some(workspace) = &verified.workspace {
        if !cache::workspace_exists(workspace) {
            FluentError::TokenRefused {
                reason: format!("its workspace \"{workspace}\" does not exist"),
            }
            .report();
        }
        set_identity(gucs::WORKSPACE_GUC, workspace, local, "fluent_authenticate");
    }
    let user = verified.user;
    gucs::with_acting(
        |_, workspace| match cache::check_may_act(workspace, &user) {
            Err(FluentError::UnknownUser { .. }) if settings.create_unknown => {
                // The audit trail names the new user as the one acting.
                set_identity(gucs::USER_GUC, &user, true, "fluent_authenticate");
                let roles: Vec<&str> = settings.new_user_roles.iter().map(String::as_str).collect();
                create_user_from_token(
                    &user,
                    workspace,
                    &roles,
                    &role_name(unsafe { pg_sys::GetUserId() }),
                );
                cache::check_may_act(workspace, &user)
            }
            Err(FluentError::UnknownUser { .. }) => Err(FluentError::TokenRefused {
                reason: format!("its subject \"{user}\" is not a fluent user"),
            }),
            other => other,
        },
    )
    .unwrap_or_else(|e| e.report());
    set_identity(gucs::USER_GUC, &user, local, "fluent_authenticate");
    seal(local);
    VERIFIED.with(|v| *v.borrow_mut() = Some((user.clone(), local)));
    log_change(&user, "token", local);
    user
}
extension_sql!(
    r#"COMMENT ON FUNCTION @extschema@.fluent_authenticate(text, boolean) IS
    'Verifies a JSON Web Token (fluent.token_settings) and makes its subject the acting user for the transaction, or the session when local is false; any role may call it';"#,
    name = "fluent_authenticate_comment",
    requires = [fluent_authenticate]
);

/// The acting user if a token verified by fluent_authenticate() chose them,
/// otherwise NULL: what Supabase's auth.uid() is to its policies. Parallel
/// restricted: what was verified is known to this backend, not its workers.
#[pg_extern(stable, parallel_restricted)]
fn fluent_verified_user() -> Option<String> {
    let verified = VERIFIED.with(|v| v.borrow().as_ref().map(|(user, _)| user.clone()))?;
    gucs::with_acting(|user, _| user == Some(verified.as_str())).then_some(verified)
}
extension_sql!(
    r#"COMMENT ON FUNCTION @extschema@.fluent_verified_user() IS
    'The acting user when a token verified by fluent_authenticate() chose them, else NULL (an auth.uid() for policies)';"#,
    name = "fluent_verified_user_comment",
    requires = [fluent_verified_user]
);

/// Creates the user a verified token names (`unknown_subject = 'create'`)
/// with the configured roles, attributed to `caller`.
fn create_user_from_token(user: &str, workspace: &str, roles: &[&str], caller: &str) {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    as_catalog_owner(|client| {
        update(
            client,
            "SELECT fluent._create_token_user($1, $2, $3, $4)",
            &[user.into(), workspace.into(), roles.into(), caller.into()],
        )
    })
}

/// Acts for nobody: every check is denied until a user is set again.
#[pg_extern(volatile, parallel_unsafe)]
fn fluent_reset_user() {
    // Dropping one's identity only ever narrows access, so anyone may.
    gucs::set(gucs::USER_GUC, "", false);
    // ... on the Citus workers of this transaction too.
    gucs::with_acting(citus::carry_identity);
}
extension_sql!(
    r#"COMMENT ON FUNCTION @extschema@.fluent_reset_user() IS 'Acts for nobody: every check is denied';"#,
    name = "fluent_reset_user_comment",
    requires = [fluent_reset_user]
);

/// The end user the session acts for, or NULL.
#[pg_extern(stable, parallel_safe)]
fn fluent_current_user() -> Option<String> {
    gucs::with_acting(|user, _| user.map(str::to_owned))
}
extension_sql!(
    r#"COMMENT ON FUNCTION @extschema@.fluent_current_user() IS 'The acting end user, or NULL';"#,
    name = "fluent_current_user_comment",
    requires = [fluent_current_user]
);

/// Makes `workspace` the current workspace for the session, or with
/// `local => true` for the current transaction only.
#[pg_extern(volatile, parallel_unsafe)]
fn fluent_set_workspace(workspace: Option<&str>, local: default!(Option<bool>, false)) {
    let trust = require_trusted("workspace");
    let Some(workspace) = workspace else {
        FluentError::NullArgument {
            argument: "workspace".into(),
            hint: "The default workspace is named 'default'.",
        }
        .report()
    };
    let local = local_or_error(local);
    if trust == Trust::Once {
        refuse_if_sealed(
            "workspace",
            local && gucs::with_workspace(|current| current == workspace),
        );
    }
    if !cache::workspace_exists(workspace) {
        FluentError::UnknownWorkspace {
            workspace: workspace.to_owned(),
        }
        .report();
    }
    set_identity(
        gucs::WORKSPACE_GUC,
        workspace,
        local,
        "fluent_set_workspace",
    );
}
extension_sql!(
    r#"COMMENT ON FUNCTION @extschema@.fluent_set_workspace(text, boolean) IS
    'Sets the current workspace for the session, or the transaction when local; only superusers, fluent_authenticator and fluent_admin may';"#,
    name = "fluent_set_workspace_comment",
    requires = [fluent_set_workspace]
);

/// The workspace the session acts in.
#[pg_extern(stable, parallel_safe)]
fn fluent_current_workspace() -> String {
    gucs::with_acting(|_, workspace| workspace.to_owned())
}
extension_sql!(
    r#"COMMENT ON FUNCTION @extschema@.fluent_current_workspace() IS 'The current workspace';"#,
    name = "fluent_current_workspace_comment",
    requires = [fluent_current_workspace]
);
