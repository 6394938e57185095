//! Who is administering: a DBA, or an end user acting through the
//! application with an administrative right (delegated administration).
//!
//! The administration functions that end users may be delegated (users,
//! grants, overrides, roles) run as the catalog owner (SECURITY DEFINER in
//! `sql/admin.sql`), because application roles may not touch the catalog.
//! Inside such a function `current_user` is the owner, so the caller is
//! captured before the switch: the public function, SECURITY INVOKER, passes
//! `fluent._caller()` to the implementation, which records the calling role
//! under an unguessable ticket; the implementation redeems the ticket first
//! thing (`fluent._take_caller`). A ticket is good once, in the transaction
//! that made it, so calling an implementation directly gets nothing more
//! than calling the public function.

use std::cell::RefCell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::cache;
use crate::error::FluentError;
use crate::gucs;
use crate::hashing::FastMap;
use crate::identity;
use crate::scope::Scope;

thread_local! {
    static TICKETS: RefCell<FastMap<i64, pg_sys::Oid>> = RefCell::new(FastMap::default());
    /// The tickets whose caller could choose the acting user when the ticket
    /// was made (`_identity_caller`), the way `fluent_set_user` decides.
    static CHOOSERS: RefCell<FastMap<i64, ()>> = RefCell::new(FastMap::default());
}

/// At the end of every transaction (src/lib.rs): tickets are good for one.
pub fn transaction_ended() {
    TICKETS.with(|t| t.borrow_mut().clear());
    CHOOSERS.with(|t| t.borrow_mut().clear());
}

fn random_ticket() -> i64 {
    let mut bytes = [0u8; 8];
    if !unsafe { pg_sys::pg_strong_random(bytes.as_mut_ptr().cast(), bytes.len()) } {
        pgrx::error!("could not generate a random fluent caller ticket");
    }
    i64::from_ne_bytes(bytes)
}

#[pg_schema]
mod fluent {
    use super::*;

    /// Records the calling role and returns the ticket that names it.
    #[pg_extern(volatile, parallel_unsafe)]
    fn _caller() -> i64 {
        // Index expressions and maintenance commands run as a table owner
        // inside a security-restricted operation: nobody administers there.
        if unsafe { pg_sys::InSecurityRestrictedOperation() } {
            FluentError::NotAdmin.report();
        }
        let ticket = random_ticket();
        let caller = unsafe { pg_sys::GetUserId() };
        TICKETS.with(|t| t.borrow_mut().insert(ticket, caller));
        ticket
    }

    /// `_caller()` for `fluent_accept_invitation`: the ticket also records
    /// whether the caller could choose the acting user right now (a DBA, or
    /// an authenticator whose identity is not sealed: src/identity.rs), which
    /// the caller's role alone does not tell once the implementation runs.
    #[pg_extern(volatile, parallel_unsafe)]
    fn _identity_caller() -> i64 {
        let ticket = _caller();
        if identity::may_choose_identity() {
            CHOOSERS.with(|t| t.borrow_mut().insert(ticket, ()));
        }
        ticket
    }

    /// Whether the ticket was made by `_identity_caller` for a caller that
    /// could choose the acting user; redeem it before `_take_caller`.
    #[pg_extern(volatile, parallel_unsafe)]
    fn _caller_chooses_identity(ticket: Option<i64>) -> bool {
        ticket.is_some_and(|ticket| CHOOSERS.with(|t| t.borrow_mut().remove(&ticket).is_some()))
    }

    /// Redeems a ticket: the role that called the public function. It also
    /// becomes `fluent.caller_role` (for the audit trail and the attribution
    /// columns) until the implementation returns, which restores the
    /// setting through its own `SET` clause.
    #[pg_extern(volatile, parallel_unsafe)]
    fn _take_caller(ticket: Option<i64>) -> pg_sys::Oid {
        let caller = ticket
            .and_then(|ticket| TICKETS.with(|t| t.borrow_mut().remove(&ticket)))
            .unwrap_or_else(|| FluentError::NoCallerTicket.report());
        identity::require_primary();
        let name = identity::role_name(caller);
        gucs::set(gucs::CALLER_ROLE_GUC, &name, true);
        caller
    }

    /// Whether `role` administers fluent as a DBA: a superuser or a role
    /// with the privileges of fluent_admin.
    #[pg_extern(stable, parallel_safe)]
    fn _is_dba(role: pg_sys::Oid) -> bool {
        identity::role_is_dba(role)
    }

    /// The database role changes are attributed to: the caller of the
    /// running administration function, else the current role.
    #[pg_extern(stable, parallel_safe)]
    fn _actor_role() -> String {
        gucs::caller_role()
            .map(str::to_owned)
            .unwrap_or_else(|| identity::role_name(unsafe { pg_sys::GetUserId() }))
    }

    /// Whether `user` holds the administrative right in the current workspace.
    #[pg_extern(stable, parallel_safe)]
    fn _holds_right(user: &str, right: &str) -> bool {
        gucs::with_workspace(|workspace| holds_right(workspace, user, Some(right)))
    }

    /// `user`'s scope on `module.action` in the current workspace, for the
    /// escalation checks of delegated administration (no caller check:
    /// only the catalog owner may execute it).
    #[pg_extern(stable, parallel_safe)]
    fn _scope_of(user: &str, module: &str, action: &str) -> &'static str {
        gucs::with_workspace(|workspace| {
            cache::scope(workspace, user, module, action)
                .unwrap_or_default()
                .as_str()
        })
    }
}

/// Whether `user` holds an administrative right in `workspace` (any right
/// when `right` is None): some permission that gives it, at scope `all`.
pub fn holds_right(workspace: &str, user: &str, right: Option<&str>) -> bool {
    let Some(model) = cache::model(workspace) else {
        return false;
    };
    model
        .admin_rights
        .iter()
        .filter(|(r, _, _)| right.is_none_or(|right| right == r))
        .any(|(_, module, action)| {
            cache::scope(workspace, user, module, action).ok() == Some(Scope::All)
        })
}

/// Raises 42501 unless the caller may read `user`'s permissions: the acting
/// user themself, superusers, fluent_admin and fluent_reader members, and
/// the workspace's delegated administrators.
pub fn require_may_read_permissions_of(user: &str) {
    let allowed = gucs::with_acting(|acting, workspace| {
        acting == Some(user) || may_read_everyones_permissions(workspace)
    });
    if !allowed {
        FluentError::OthersPermissionsDenied {
            user: user.to_owned(),
        }
        .report();
    }
}

/// Whether the caller may read everyone's permissions in `workspace`:
/// superusers, fluent_admin and fluent_reader members, and the workspace's
/// delegated administrators.
pub fn may_read_everyones_permissions(workspace: &str) -> bool {
    identity::current_role_reads_all()
        || gucs::with_acting(|acting, _| {
            acting.is_some_and(|acting| holds_right(workspace, acting, None))
        })
}
