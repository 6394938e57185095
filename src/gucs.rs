//! fluent's settings: the acting end user and workspace, identity logging,
//! and the caller of the running administration function. (How tokens are
//! verified is not a setting but the superuser-only table
//! `fluent.token_settings`: settings can be read by anyone before the
//! library loads, and `ALTER DATABASE ... SET` values in pg_db_role_setting.)
//!
//! The identity settings are GUCs, not backend-local variables, because
//! PostgreSQL hands GUCs to parallel workers and restores them at transaction
//! and subtransaction end. Every setting is `PGC_SUSET`, so that an
//! application role cannot `SET` it: only a superuser can (in
//! postgresql.conf, `ALTER SYSTEM`, `ALTER DATABASE ... SET`), or
//! `fluent_set_user()` / `fluent_authenticate()` after their own checks
//! (src/identity.rs).

use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

use crate::citus;
use crate::folds;

static USER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static WORKSPACE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"default"));

pub const USER_GUC: &CStr = c"fluent.acting_user";
pub const WORKSPACE_GUC: &CStr = c"fluent.workspace";
pub const CALLER_ROLE_GUC: &CStr = c"fluent.caller_role";

/// On a Citus worker, the identity the coordinator sent (src/citus.rs). Any
/// role may set it (Citus's connections log in as the querying role); only a
/// carrier signed for this backend's distributed transaction counts.
static REMOTE_IDENTITY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub const REMOTE_IDENTITY_GUC: &CStr = c"fluent.remote_identity";

static LOG_IDENTITY_CHANGES: GucSetting<bool> = GucSetting::<bool>::new(false);
static CALLER_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Whether another build of fluent already defined its settings in this
/// backend: a session that used one version when the extension was updated
/// to another (each version has its own library, see README "Upgrade").
pub fn defined_by_another_library() -> bool {
    find(USER_GUC).is_some_and(|generic| unsafe {
        (*generic).flags & pg_sys::GUC_CUSTOM_PLACEHOLDER as i32 == 0
    })
}

/// PostgreSQL's own record of the setting `name`, if it has one (custom
/// settings of libraries not loaded are placeholders).
pub fn find(name: &CStr) -> Option<*mut pg_sys::config_generic> {
    // The function's signature changed in PostgreSQL 16.
    #[cfg(feature = "pg15")]
    let (variables, count) =
        unsafe { (pg_sys::get_guc_variables(), pg_sys::GetNumConfigOptions()) };
    #[cfg(not(feature = "pg15"))]
    let (variables, count) = unsafe {
        let mut count = 0;
        (pg_sys::get_guc_variables(&mut count), count)
    };
    if variables.is_null() {
        return None;
    }
    let variables = unsafe { std::slice::from_raw_parts(variables, count as usize) };
    variables
        .iter()
        .copied()
        .find(|&generic| !generic.is_null() && unsafe { CStr::from_ptr((*generic).name) } == name)
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
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            REMOTE_IDENTITY_GUC,
            c"On a Citus worker: the acting user and workspace the coordinator sent.",
            c"Set by fluent on the coordinator, sent by Citus; honoured only inside the distributed transaction it was signed for.",
            &REMOTE_IDENTITY,
            GucContext::Userset,
            GucFlags::NO_SHOW_ALL | GucFlags::NO_RESET_ALL | GucFlags::SUPERUSER_ONLY,
            Some(check_remote_identity),
            Some(assign_remote_identity),
            None,
        );
    }
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
        folds::identity_changed();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_workspace(new: *const c_char, _extra: *mut c_void) {
    if changes(&WORKSPACE, new) {
        folds::identity_changed();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_remote_identity(
    new: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let value = if new.is_null() || (*new).is_null() {
        ""
    } else {
        CStr::from_ptr(*new).to_str().unwrap_or("-")
    };
    citus::may_set_remote_identity(value, source)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_remote_identity(new: *const c_char, _extra: *mut c_void) {
    if changes(&REMOTE_IDENTITY, new) {
        folds::identity_changed();
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
///
/// With no acting user set here, on a Citus worker, the identity the
/// coordinator sent for this distributed transaction (src/citus.rs).
pub fn with_acting<R>(f: impl FnOnce(Option<&str>, &str) -> R) -> R {
    if let (None, Some(carrier)) = (read(&USER), read(&REMOTE_IDENTITY)) {
        if let Some(remote) = citus::remote_identity(carrier) {
            return f(Some(&remote.user), &remote.workspace);
        }
        return f(None, read(&WORKSPACE).unwrap_or("default"));
    }
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
