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

/// Whether the current role (after any SET ROLE or SECURITY DEFINER switch)
/// is a superuser or has the privileges of one of `roles`.
pub fn current_role_is_one_of(roles: &[&std::ffi::CStr]) -> bool {
    unsafe {
        let me = pg_sys::GetUserId();
        pg_sys::superuser_arg(me)
            || roles.iter().any(|name| {
                let role = pg_sys::get_role_oid(name.as_ptr(), true);
                role != pg_sys::InvalidOid && pg_sys::has_privs_of_role(me, role)
            })
    }
}

fn require_trusted(what: &'static str) {
    // Inside a security-restricted operation (index expressions, maintenance
    // commands run as a table owner) nobody chooses identities.
    if unsafe { pg_sys::InSecurityRestrictedOperation() } || !current_role_is_one_of(&TRUSTED_ROLES) {
        FluentError::NotTrusted { what }.report();
    }
}

/// Makes `user_key` the acting end user for the session, or with
/// `local => true` for the current transaction only.
#[pg_extern(volatile, parallel_unsafe)]
fn fluent_set_user(user_key: Option<&str>, local: default!(bool, false)) {
    require_trusted("user");
    let Some(user_key) = user_key else {
        FluentError::NullArgument { argument: "user", hint: "Use fluent_reset_user() to act for nobody." }.report()
    };
    // Checked in the current workspace: set the workspace first.
    gucs::with_acting(|_, workspace| cache::check_may_act(workspace, user_key)).unwrap_or_else(|e| e.report());
    gucs::set(gucs::USER_GUC, user_key, local);
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
fn fluent_set_workspace(workspace: Option<&str>, local: default!(bool, false)) {
    require_trusted("workspace");
    let Some(workspace) = workspace else {
        FluentError::NullArgument { argument: "workspace", hint: "The default workspace is named 'default'." }.report()
    };
    if !cache::workspace_exists(workspace) {
        FluentError::UnknownWorkspace { workspace: workspace.to_owned() }.report();
    }
    gucs::set(gucs::WORKSPACE_GUC, workspace, local);
}

/// The workspace the session acts in.
#[pg_extern(stable, parallel_safe)]
fn fluent_current_workspace() -> String {
    gucs::with_acting(|_, workspace| workspace.to_owned())
}
