//! fluent on a Citus cluster (sql/citus.sql): what the catalog's broadcast
//! to the workers needs from Rust.
//!
//! Each node keeps its own catalog. On the coordinator, every write to it is
//! sent through `fluent.citus_bus`, a Citus reference table: Citus inserts
//! the row on every node's placement in the coordinator's transaction, with
//! two-phase commit, and a BEFORE trigger on each worker's placement applies
//! it to that node's catalog and keeps nothing.
//!
//! - Sending: Citus dials the workers as the current role, which the
//!   catalog owner (the sending trigger's) cannot be: it cannot log in.
//!   [`fluent::_citus_send_rows`] inserts the rows as `fluent_replicator`,
//!   a role that may log in on the workers and may insert into the bus and
//!   do nothing else (it owns nothing).
//! - Whether to send: whether the bus is a Citus table, read with the
//!   catalog snapshot (the newest), not the transaction's: a REPEATABLE READ
//!   transaction that began before `fluent_citus_setup()` must send too.
//! - Applying: while a worker applies the coordinator's rows, a flag lets
//!   the worker's refusal of catalog writes let them through, and the audit
//!   and attribution triggers keep the rows as the coordinator made them.
//!   Only the catalog owner may set it; a rolled-back subtransaction and the
//!   end of the transaction clear it.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::spi::Spi;
use pgrx::JsonB;

use crate::error::FluentError;
use crate::owner;

thread_local! {
    static APPLYING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this backend is applying a change sent by the coordinator.
pub fn applying() -> bool {
    APPLYING.get()
}

/// At the end of every transaction and of every rolled-back subtransaction
/// (src/lib.rs): an apply that failed half-way leaves no flag behind.
pub fn transaction_ended() {
    APPLYING.set(false);
}

fn require_catalog_owner() {
    if !owner::is_catalog_owner(unsafe { pg_sys::GetUserId() }) {
        FluentError::NotAdmin.report();
    }
}

/// Whether `fluent.citus_bus` is a Citus table (`pg_dist_partition` has its
/// row), by the newest committed catalog.
fn bus_distributed() -> bool {
    let Some(bus) = owner::catalog_relid(c"citus_bus") else {
        return false;
    };
    unsafe {
        let catalog = pg_sys::get_namespace_oid(c"pg_catalog".as_ptr(), false);
        let partitions = pg_sys::get_relname_relid(c"pg_dist_partition".as_ptr(), catalog);
        if partitions == pg_sys::InvalidOid {
            return false;
        }
        let rel = pg_sys::table_open(partitions, pg_sys::AccessShareLock as _);
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        // logicalrelid, the first column.
        pg_sys::ScanKeyInit(
            &mut key,
            1,
            pg_sys::BTEqualStrategyNumber as _,
            pg_sys::F_OIDEQ.into(),
            pg_sys::Datum::from(bus),
        );
        // No snapshot: the catalog snapshot, the newest.
        let scan = pg_sys::systable_beginscan(
            rel,
            pg_sys::InvalidOid,
            false,
            std::ptr::null_mut(),
            1,
            &mut key,
        );
        let found = !pg_sys::systable_getnext(scan).is_null();
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
        found
    }
}

#[pgrx::pg_schema]
mod fluent {
    use super::*;

    /// Marks the start (`true`) or end of a broadcast change's apply. Only
    /// the catalog owner may call it (the apply trigger runs as that role).
    #[pgrx::pg_extern(volatile, parallel_unsafe)]
    fn _citus_set_applying(on: bool) {
        require_catalog_owner();
        APPLYING.set(on);
    }

    /// Whether this backend is applying a change sent by the coordinator.
    #[pgrx::pg_extern(stable, parallel_safe)]
    fn _citus_applying() -> bool {
        applying()
    }

    /// Whether the bus is a Citus table: `fluent_citus_setup()` ran.
    #[pgrx::pg_extern(volatile, parallel_safe)]
    fn _citus_bus_active() -> bool {
        bus_distributed()
    }

    /// Sends one statement's rows to the workers: inserts them into the
    /// bus as `fluent_replicator`. Only the catalog owner may call it.
    #[pgrx::pg_extern(volatile, parallel_unsafe)]
    fn _citus_send_rows(tbl: &str, op: &str, old_rows: Option<JsonB>, new_rows: Option<JsonB>) {
        require_catalog_owner();
        let replicator = unsafe { pg_sys::get_role_oid(c"fluent_replicator".as_ptr(), false) };
        struct Restore(pg_sys::Oid, i32);
        impl Drop for Restore {
            fn drop(&mut self) {
                unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) }
            }
        }
        let mut prev_user = pg_sys::InvalidOid;
        let mut prev_context = 0;
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut prev_user, &mut prev_context);
            pg_sys::SetUserIdAndSecContext(
                replicator,
                prev_context
                    | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                    | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            );
        }
        let _restore = Restore(prev_user, prev_context);
        Spi::run_with_args(
            "INSERT INTO fluent.citus_bus (tbl, op, old_rows, new_rows) VALUES ($1, $2::\"char\", $3, $4)",
            &[tbl.into(), op.into(), old_rows.into(), new_rows.into()],
        )
        .unwrap_or_else(|e| pgrx::error!("{e}"));
    }
}
