//! fluent's settings: the acting end user and workspace, how tokens are
//! verified, and identity logging.
//!
//! The identity settings are GUCs, not backend-local variables, because
//! PostgreSQL hands GUCs to parallel workers and restores them at transaction
//! and subtransaction end. Every setting is `PGC_SUSET`, so that an
//! application role cannot `SET` it: only a superuser can (in
//! postgresql.conf, `ALTER SYSTEM`, `ALTER DATABASE ... SET`), or
//! `fluent_set_user()` / `fluent_authenticate()` after their own checks
//! (src/identity.rs). The token keys are also hidden from non-superusers.

use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::pg_sys;

use crate::plans;

static USER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static WORKSPACE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"default"));

pub const USER_GUC: &CStr = c"fluent.acting_user";
pub const WORKSPACE_GUC: &CStr = c"fluent.workspace";
pub const CALLER_ROLE_GUC: &CStr = c"fluent.caller_role";

static LOG_IDENTITY_CHANGES: GucSetting<bool> = GucSetting::<bool>::new(false);
static CALLER_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_KEYS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(30);
static JWT_USER_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"sub"));
static JWT_WORKSPACE_CLAIM: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static UNKNOWN_SUBJECT: GucSetting<UnknownSubject> =
    GucSetting::<UnknownSubject>::new(UnknownSubject::Refuse);
static NEW_USER_ROLES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// What `fluent_authenticate` does with a verified token whose subject is
/// not in `fluent.users`.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnknownSubject {
    /// Refuse the token (28000).
    #[name = c"refuse"]
    Refuse,
    /// Create an active user with `fluent.new_user_roles`, audited.
    #[name = c"create"]
    Create,
}

pub fn init() {
    // SAFETY: the assign hooks are guarded and only flip plan-cache flags.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            USER_GUC,
            c"The end user the session acts for.",
            c"Set with fluent_set_user(); row-level policies and fluent_can(module, action) use it. Empty means nobody.",
            &USER,
            GucContext::Suset,
            GucFlags::default(),
            None,
            Some(assign_user),
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            WORKSPACE_GUC,
            c"The fluent workspace (tenant) the session acts in.",
            c"Set with fluent_set_workspace().",
            &WORKSPACE,
            GucContext::Suset,
            GucFlags::default(),
            None,
            Some(assign_workspace),
            None,
        );
    }
    define_token_settings();
    GucRegistry::define_bool_guc(
        c"fluent.log_identity_changes",
        c"Logs every change of fluent's acting user to the server log.",
        c"One LOG line per change: the database role, the user set, and whether by a token or by a trusted role.",
        &LOG_IDENTITY_CHANGES,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        CALLER_ROLE_GUC,
        c"The database role that called the running fluent administration function.",
        c"Set by fluent itself for the audit trail and attribution columns; not for users.",
        &CALLER_ROLE,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL | GucFlags::NO_RESET_ALL | GucFlags::DISALLOW_IN_FILE,
    );
    // Nobody may create other fluent.* settings: a placeholder set before
    // the library loaded would otherwise look like ours.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"fluent".as_ptr()) };
}

/// Reads a string GUC without copying. The value lives until the setting
/// changes, which cannot happen while the caller's closure runs.
fn read(setting: &GucSetting<Option<CString>>) -> Option<&'static str> {
    unsafe {
        let raw = *setting.as_ptr();
        if raw.is_null() {
            return None;
        }
        CStr::from_ptr(raw).to_str().ok().filter(|s| !s.is_empty())
    }
}

/// Whether `new` differs from the setting's current value (NULL and empty
/// alike mean nobody).
unsafe fn changes(setting: &GucSetting<Option<CString>>, new: *const c_char) -> bool {
    let text = |raw: *const c_char| {
        if raw.is_null() {
            &[][..]
        } else {
            CStr::from_ptr(raw).to_bytes()
        }
    };
    text(*setting.as_ptr()) != text(new)
}

// Every route that changes the identity (fluent_set_user, a local setting
// ending with its transaction or savepoint, RESET, a function's SET clause, a
// superuser's SET) ends in an assign hook, called before the new value is
// stored: plans folded for the old identity must not run for the new one.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_user(new: *const c_char, _extra: *mut c_void) {
    if changes(&USER, new) {
        plans::invalidate_identity_plans();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_workspace(new: *const c_char, _extra: *mut c_void) {
    if changes(&WORKSPACE, new) {
        plans::invalidate_identity_plans();
    }
}

fn define_token_settings() {
    let string = |name, short, long, setting, flags| {
        GucRegistry::define_string_guc(name, short, long, setting, GucContext::Suset, flags)
    };
    string(
        c"fluent.jwt_keys",
        c"The keys fluent_authenticate() verifies tokens with, as a JSON Web Key Set.",
        c"A JWKS document ({\"keys\": [...]}); HMAC secrets are keys of type oct. Empty: tokens are refused.",
        &JWT_KEYS,
        GucFlags::SUPERUSER_ONLY,
    );
    string(
        c"fluent.jwt_audience",
        c"Audiences a token must name in its aud claim (comma-separated); empty: not checked.",
        c"",
        &JWT_AUDIENCE,
        GucFlags::default(),
    );
    string(
        c"fluent.jwt_issuer",
        c"The issuer a token's iss claim must equal; empty: not checked.",
        c"",
        &JWT_ISSUER,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"fluent.jwt_leeway",
        c"Seconds of clock difference allowed when checking a token's exp and nbf.",
        c"",
        &JWT_LEEWAY,
        0,
        300,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    string(
        c"fluent.jwt_user_claim",
        c"The token claim that holds the user key.",
        c"",
        &JWT_USER_CLAIM,
        GucFlags::default(),
    );
    string(
        c"fluent.jwt_workspace_claim",
        c"The token claim that holds the workspace; empty: tokens do not choose the workspace.",
        c"",
        &JWT_WORKSPACE_CLAIM,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"fluent.unknown_subject",
        c"What fluent_authenticate() does with a valid token for a user fluent does not know: refuse or create.",
        c"create adds an active user holding fluent.new_user_roles in the token's workspace; the audit trail records it.",
        &UNKNOWN_SUBJECT,
        GucContext::Suset,
        GucFlags::default(),
    );
    string(
        c"fluent.new_user_roles",
        c"Roles (comma-separated) granted to users created from a token (fluent.unknown_subject = create).",
        c"",
        &NEW_USER_ROLES,
        GucFlags::default(),
    );
}

/// The token settings, read once per verification.
pub struct TokenSettings {
    pub keys: Option<&'static str>,
    pub audiences: Vec<&'static str>,
    pub issuer: Option<&'static str>,
    pub leeway: u64,
    pub user_claim: &'static str,
    pub workspace_claim: Option<&'static str>,
    pub unknown_subject: UnknownSubject,
    pub new_user_roles: Vec<&'static str>,
}

fn list(setting: &GucSetting<Option<CString>>) -> Vec<&'static str> {
    read(setting)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub fn token_settings() -> TokenSettings {
    TokenSettings {
        keys: read(&JWT_KEYS),
        audiences: list(&JWT_AUDIENCE),
        issuer: read(&JWT_ISSUER),
        leeway: JWT_LEEWAY.get().max(0) as u64,
        user_claim: read(&JWT_USER_CLAIM).unwrap_or("sub"),
        workspace_claim: read(&JWT_WORKSPACE_CLAIM),
        unknown_subject: UNKNOWN_SUBJECT.get(),
        new_user_roles: list(&NEW_USER_ROLES),
    }
}

pub fn log_identity_changes() -> bool {
    LOG_IDENTITY_CHANGES.get()
}

/// The role that called the running administration function, if one is
/// running (src/delegation.rs).
pub fn caller_role() -> Option<&'static str> {
    read(&CALLER_ROLE)
}

/// Calls `f` with the current workspace.
pub fn with_workspace<R>(f: impl FnOnce(&str) -> R) -> R {
    f(read(&WORKSPACE).unwrap_or("default"))
}

/// Calls `f` with the acting user (if any) and the current workspace.
pub fn with_acting<R>(f: impl FnOnce(Option<&str>, &str) -> R) -> R {
    f(read(&USER), read(&WORKSPACE).unwrap_or("default"))
}

/// Sets one of fluent's settings for the session or, with `local`, for the
/// current transaction. The caller has already checked that the current
/// role may.
pub fn set(name: &CStr, value: &str, local: bool) {
    let value =
        CString::new(value).unwrap_or_else(|_| pgrx::error!("{name:?} must not contain NUL bytes"));
    let action = if local {
        pg_sys::GucAction::GUC_ACTION_LOCAL
    } else {
        pg_sys::GucAction::GUC_ACTION_SET
    };
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}
