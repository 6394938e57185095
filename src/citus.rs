//! fluent on a Citus cluster: whether this backend is applying catalog
//! changes the coordinator broadcast (sql/citus.sql).
//!
//! Each node keeps its own catalog. On the coordinator, every write to it is
//! sent through `fluent.citus_bus`, a Citus reference table: Citus inserts
//! the row on every node's placement in the coordinator's transaction, with
//! two-phase commit, and a BEFORE trigger on each worker's placement applies
//! it to that node's catalog and keeps nothing. While it applies, this flag
//! is set: the worker's refusal of catalog writes lets them through, and the
//! audit and attribution triggers keep the rows as the coordinator made them
//! (the coordinator audited the change). Only the catalog owner, which the
//! apply trigger runs as, may set it, and it ends with the transaction.

use std::cell::Cell;

use pgrx::pg_sys;

use crate::error::FluentError;
use crate::owner;

thread_local! {
    static APPLYING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this backend is applying a change sent by the coordinator.
pub fn applying() -> bool {
    APPLYING.get()
}

/// At the end of every transaction (src/lib.rs).
pub fn transaction_ended() {
    APPLYING.set(false);
}

#[pgrx::pg_schema]
mod fluent {
    use super::*;

    /// Marks the start (`true`) or end of a broadcast change's apply. Only
    /// the catalog owner may call it (the apply trigger runs as that role).
    #[pgrx::pg_extern(volatile, parallel_unsafe)]
    fn _citus_set_applying(on: bool) {
        if !owner::is_catalog_owner(unsafe { pg_sys::GetUserId() }) {
            FluentError::NotAdmin.report();
        }
        APPLYING.set(on);
    }

    /// Whether this backend is applying a change sent by the coordinator.
    #[pgrx::pg_extern(stable, parallel_safe)]
    fn _citus_applying() -> bool {
        applying()
    }
}
