//! Who the session acts for: the end user and the workspace.
//!
//! An application connects as one database role and acts for many users, so
//! the end user is not `current_user`. Only a trusted role may choose it: a
//! superuser, or a role with the privileges of `fluent_authenticator` (the
//! role an application logs in as) or `fluent_admin` (DBAs). The usual flow
//! is PostgREST's: log in as the authenticator, `fluent_set_user(...)`, then
//! `SET ROLE` to an unprivileged application role, which can read the
//! identity but cannot change it.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::cache;
use crate::error::FluentError;
use crate::gucs;

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

/// Whether the current role is a superuser or has the privileges of one of
/// `roles`.
pub fn current_role_is_one_of(roles: &[&std::ffi::CStr]) -> bool {
    let me = unsafe { pg_sys::GetUserId() };
    current_role_is_superuser()
        || existing_roles(roles).any(|(_, role)| unsafe { pg_sys::has_privs_of_role(me, role) })
}

/// Raises unless the current role is trusted with `roles`; a member that
/// does not inherit their privileges is told to SET ROLE first.
fn require_one_of(roles: &[&std::ffi::CStr], refused: impl FnOnce() -> FluentError) {
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

fn require_trusted(what: &'static str) {
    // Inside a security-restricted operation (index expressions, maintenance
    // commands run as a table owner) nobody chooses identities.
    if unsafe { pg_sys::InSecurityRestrictedOperation() } {
        FluentError::NotTrusted { what }.report();
    }
    require_one_of(&TRUSTED_ROLES, || FluentError::NotTrusted { what });
}

fn local_or_error(local: Option<bool>) -> bool {
    local.unwrap_or_else(|| {
        FluentError::NullArgument {
            argument: "local",
            hint: "Pass true for the current transaction, false for the session.",
        }
        .report()
    })
}

/// Sets one of the identity settings, for the transaction when `local`.
/// Like `SET LOCAL`, a local setting outside a transaction block warns: it
/// ends with the statement.
fn set_identity(name: &std::ffi::CStr, value: &str, local: bool, function: &'static str) {
    if local && !unsafe { pg_sys::IsTransactionBlock() } {
        FluentError::LocalOutsideTransaction { function }.warn();
    }
    gucs::set(name, value, local);
}

#[pg_schema]
mod fluent {
    use super::*;

    /// Raises 42501 unless the current role is a superuser or has the
    /// privileges of fluent_admin; every administration function calls it.
    #[pg_extern(stable, parallel_safe)]
    fn _require_admin() {
        require_one_of(&ADMIN_ROLES, || FluentError::NotAdmin);
    }

    /// Whether the current role is a superuser, by OID.
    #[pg_extern(stable, parallel_safe)]
    fn _current_role_is_superuser() -> bool {
        current_role_is_superuser()
    }
}

/// Makes `user_key` the acting end user for the session, or with
/// `local => true` for the current transaction only.
#[pg_extern(volatile, parallel_unsafe)]
fn fluent_set_user(user_key: Option<&str>, local: default!(Option<bool>, false)) {
    require_trusted("user");
    let Some(user_key) = user_key else {
        FluentError::NullArgument {
            argument: "user",
            hint: "Use fluent_reset_user() to act for nobody.",
        }
        .report()
    };
    let local = local_or_error(local);
    // Checked in the current workspace: set the workspace first.
    gucs::with_acting(|_, workspace| cache::check_may_act(workspace, user_key))
        .unwrap_or_else(|e| e.report());
    set_identity(gucs::USER_GUC, user_key, local, "fluent_set_user");
}

/// Acts for nobody: every check is denied until a user is set again.
#[pg_extern(volatile, parallel_unsafe)]
fn fluent_reset_user() {
    // Dropping one's identity only ever narrows access, so anyone may.
    gucs::set(gucs::USER_GUC, "", false);
}

/// The end user the session acts for, or NULL.
#[pg_extern(stable, parallel_safe)]
fn fluent_current_user() -> Option<String> {
    gucs::with_acting(|user, _| user.map(str::to_owned))
}

/// Makes `workspace` the current workspace for the session, or with
/// `local => true` for the current transaction only.
#[pg_extern(volatile, parallel_unsafe)]
fn fluent_set_workspace(workspace: Option<&str>, local: default!(Option<bool>, false)) {
    require_trusted("workspace");
    let Some(workspace) = workspace else {
        FluentError::NullArgument {
            argument: "workspace",
            hint: "The default workspace is named 'default'.",
        }
        .report()
    };
    let local = local_or_error(local);
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

/// The workspace the session acts in.
#[pg_extern(stable, parallel_safe)]
fn fluent_current_workspace() -> String {
    gucs::with_acting(|_, workspace| workspace.to_owned())
}
