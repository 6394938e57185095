//! Kept plans run again without a parse, made to take in the catalog's
//! changes.
//!
//! fluent takes in other sessions' invalidation messages as each statement
//! is parsed (src/cache.rs). A statement prepared through the extended
//! protocol and bound again (JDBC, pgx and asyncpg reuse them) is not parsed
//! again: PostgreSQL checks its kept plan at Bind (`CheckCachedPlan`) by
//! locking the relations the plan reads, and takes in messages only at a
//! lock the transaction does not hold yet, or holds without having taken
//! messages in since (`LOCALLOCK.lockCleared` unset). In a transaction
//! block the locks stay held and cleared, so the plan was reused as folded
//! before a change committed meanwhile, until the transaction ended.
//!
//! So:
//! - a folded plan's range table also holds the sentinel relation (src/plans.rs
//!   lists it among the plan's `relationOids` already), which no scan reads
//!   and no permission check covers: Bind locks it with the plan's tables;
//! - each run of such a plan leaves the sentinel's lock uncleared (the flag
//!   PostgreSQL sets once it has taken messages in at a lock), so the next
//!   Bind's lock on it takes in what arrived since. The plan cache's own
//!   callback then invalidates the plan, which is planned again, and the
//!   planner takes the changes in before it folds (src/plans.rs);
//! - a client's statement takes in messages as it starts running, as when
//!   it is parsed: for the checks of a plan that folds nothing (`fluent_can`)
//!   and for the kept plans of the functions it calls, checked later.
//!
//! What remains is a window as narrow as the one a parsed statement has
//! between its parse and its execution's snapshot (README): a change that
//! commits while a kept plan is bound may show in the rows the statement
//! reads and not yet in the plan's answers.

use pgrx::pg_sys;

use crate::cache;

static mut PREVIOUS_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

const SENTINEL_LOCK: pg_sys::LOCKMODE = pg_sys::AccessShareLock as pg_sys::LOCKMODE;

/// Installs the executor start hook; called once from `_PG_init`.
pub fn init() {
    unsafe {
        PREVIOUS_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

/// Adds the sentinel relation to a folded plan's range table, so that a
/// kept copy of the plan locks it when it is bound again.
pub unsafe fn lock_sentinel_when_bound(plan: *mut pg_sys::PlannedStmt, sentinel: pg_sys::Oid) {
    if sentinel_entry((*plan).rtable, sentinel) {
        return;
    }
    let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
        .cast::<pg_sys::RangeTblEntry>();
    (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
    (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
    (*rte).relid = sentinel;
    (*rte).relkind = pg_sys::RELKIND_RELATION as std::ffi::c_char;
    (*rte).rellockmode = SENTINEL_LOCK;
    // EXPLAIN names every entry; no privilege is checked on it (no
    // required permissions on 15, no permission entry from 16 on).
    (*rte).eref = pg_sys::makeAlias(c"cache_sentinel".as_ptr(), std::ptr::null_mut());
    (*plan).rtable = pg_sys::lappend((*plan).rtable, rte.cast());
}

/// Whether range table `rtable` holds the sentinel relation.
unsafe fn sentinel_entry(rtable: *mut pg_sys::List, sentinel: pg_sys::Oid) -> bool {
    if rtable.is_null() {
        return false;
    }
    let entries = std::slice::from_raw_parts((*rtable).elements, (*rtable).length as usize);
    // Appended last; searched from the end.
    entries.iter().rev().any(|cell| {
        let rte = cell.ptr_value.cast::<pg_sys::RangeTblEntry>();
        (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && (*rte).relid == sentinel
    })
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: std::ffi::c_int) {
    // A parallel worker runs its leader's plan, which did all this.
    if pg_sys::ParallelWorkerNumber < 0 {
        // Once per client statement, whatever runs first: the statement
        // bound (a portal's copy of its text), or one it runs inside.
        cache::take_in_changes_once_per_statement();
        if let Some(sentinel) = cache::known_sentinel_relid() {
            if sentinel_entry((*(*query).plannedstmt).rtable, sentinel) {
                take_messages_in_at_next_lock(sentinel);
            }
        }
    }
    match PREVIOUS_EXECUTOR_START {
        Some(previous) => previous(query, eflags),
        None => pg_sys::standard_ExecutorStart(query, eflags),
    }
}

/// Leaves this transaction's lock on the sentinel, if it holds one, as not
/// having taken messages in: the next `LockRelationOid` on it takes them in
/// (its count of holds is left as it was).
unsafe fn take_messages_in_at_next_lock(sentinel: pg_sys::Oid) {
    let tag = pg_sys::LOCKTAG {
        locktag_field1: pg_sys::MyDatabaseId.to_u32(),
        locktag_field2: sentinel.to_u32(),
        locktag_field3: 0,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_RELATION as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    };
    #[cfg(feature = "pg15")]
    let held = pg_sys::LockHeldByMe(&tag, SENTINEL_LOCK);
    #[cfg(not(feature = "pg15"))]
    let held = pg_sys::LockHeldByMe(&tag, SENTINEL_LOCK, false);
    if !held {
        return;
    }
    let mut local: *mut pg_sys::LOCALLOCK = std::ptr::null_mut();
    // Held: taken once more without waiting, to reach its entry.
    #[cfg(feature = "pg15")]
    let taken = pg_sys::LockAcquireExtended(&tag, SENTINEL_LOCK, false, true, false, &mut local);
    #[cfg(not(feature = "pg15"))]
    let taken =
        pg_sys::LockAcquireExtended(&tag, SENTINEL_LOCK, false, true, false, &mut local, false);
    if taken == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
        return;
    }
    if !local.is_null() {
        (*local).lockCleared = false;
    }
    pg_sys::LockRelease(&tag, SENTINEL_LOCK, false);
}
