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
//! - a folded plan's range table also holds an entry that no scan reads and
//!   no permission check covers, whose only use is its lock: Bind takes it
//!   with the plan's tables;
//! - each run of such a plan leaves that lock uncleared (the flag PostgreSQL
//!   sets once it has taken messages in at a lock), so the next Bind's lock
//!   on it takes in what arrived since. The sentinel relation that the
//!   catalog's messages name is among the plan's `relationOids`
//!   (src/plans.rs): the plan cache's own callback invalidates the plan,
//!   which is planned again, and the planner takes the changes in before it
//!   folds;
//! - a client's statement takes in messages as it starts running, as when
//!   it is parsed: for the checks of a plan that folds nothing (`fluent_can`)
//!   and for the kept plans of the functions it calls, checked later.
//!
//! The lock must be one nothing else takes, or taking it would clear the
//! flag before the next Bind: `pg_database` in `RowShareLock`. A relation is
//! locked so by `SELECT ... FOR SHARE` and `LOCK TABLE`, which on a catalog
//! only a superuser may run (from PostgreSQL 17 on, `pg_maintain` too, which
//! may lock every table anyway); EXPLAIN, `pg_relation_size()` and the like
//! lock in `AccessShareLock`, a lock of its own. (On fluent's sentinel, in
//! `AccessShareLock`, any EXPLAIN of a folded query cleared the flag.) And
//! only `ExclusiveLock` or stronger conflicts with it, which the same roles
//! alone can ask for on a shared catalog, where a database owner may `VACUUM
//! FULL` any table of the database: queued behind a lock any role can hold
//! (`nextval()` on the OID), that would stop every Bind of a folded plan.
//!
//! What remains:
//! - a window as narrow as the one a parsed statement has between its parse
//!   and its execution's snapshot (README): a change that commits while a
//!   kept plan is bound may show in the rows the statement reads and not yet
//!   in the plan's answers;
//! - a kept plan of a statement that runs at Execute (a write, or one with a
//!   write in a `WITH`), bound and closed without an Execute, leaves the lock
//!   cleared: the next kept plan bound answers once as before the changes
//!   that arrived since.

use pgrx::pg_sys;

use crate::cache;

static mut PREVIOUS_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

/// The lock a folded plan takes at Bind (see the module comment).
const BIND_LOCK_RELATION: pg_sys::Oid = pg_sys::DatabaseRelationId;
const BIND_LOCK: pg_sys::LOCKMODE = pg_sys::RowShareLock as pg_sys::LOCKMODE;

/// Installs the executor start hook; called once from `_PG_init`.
pub fn init() {
    unsafe {
        PREVIOUS_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

/// Adds the entry whose lock takes messages in to a folded plan's range
/// table, so that a kept copy of the plan takes it when it is bound again.
pub unsafe fn lock_when_bound(plan: *mut pg_sys::PlannedStmt) {
    if locked_when_bound((*plan).rtable) {
        return;
    }
    let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
        .cast::<pg_sys::RangeTblEntry>();
    (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
    (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
    (*rte).relid = BIND_LOCK_RELATION;
    (*rte).relkind = pg_sys::RELKIND_RELATION as std::ffi::c_char;
    (*rte).rellockmode = BIND_LOCK;
    // EXPLAIN names every entry; no privilege is checked on it (no
    // required permissions on 15, no permission entry from 16 on).
    (*rte).eref = pg_sys::makeAlias(c"pg_database".as_ptr(), std::ptr::null_mut());
    (*plan).rtable = pg_sys::lappend((*plan).rtable, rte.cast());
}

/// Whether range table `rtable` holds the entry `lock_when_bound` adds.
unsafe fn locked_when_bound(rtable: *mut pg_sys::List) -> bool {
    if rtable.is_null() {
        return false;
    }
    let entries = std::slice::from_raw_parts((*rtable).elements, (*rtable).length as usize);
    // Appended last; searched from the end.
    entries.iter().rev().any(|cell| {
        let rte = cell.ptr_value.cast::<pg_sys::RangeTblEntry>();
        (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
            && (*rte).relid == BIND_LOCK_RELATION
            && (*rte).rellockmode == BIND_LOCK
    })
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: std::ffi::c_int) {
    // A parallel worker runs its leader's plan, which did all this.
    if pg_sys::ParallelWorkerNumber < 0 {
        // Once per client statement, whatever runs first: the statement
        // bound (a portal's copy of its text), or one it runs inside.
        cache::take_in_changes_once_per_statement();
        if locked_when_bound((*(*query).plannedstmt).rtable) {
            take_messages_in_at_next_lock();
        }
    }
    match PREVIOUS_EXECUTOR_START {
        Some(previous) => previous(query, eflags),
        None => pg_sys::standard_ExecutorStart(query, eflags),
    }
}

/// Leaves this transaction's Bind lock, if it holds it, as not having taken
/// messages in: the next `LockRelationOid` on it takes them in (its count
/// of holds is left as it was).
unsafe fn take_messages_in_at_next_lock() {
    // A shared catalog's lock names no database.
    let tag = pg_sys::LOCKTAG {
        locktag_field1: 0,
        locktag_field2: BIND_LOCK_RELATION.to_u32(),
        locktag_field3: 0,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_RELATION as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    };
    #[cfg(feature = "pg15")]
    let held = pg_sys::LockHeldByMe(&tag, BIND_LOCK);
    #[cfg(not(feature = "pg15"))]
    let held = pg_sys::LockHeldByMe(&tag, BIND_LOCK, false);
    if !held {
        return;
    }
    let mut local: *mut pg_sys::LOCALLOCK = std::ptr::null_mut();
    // Held: taken once more without waiting, to reach its entry.
    #[cfg(feature = "pg15")]
    let taken = pg_sys::LockAcquireExtended(&tag, BIND_LOCK, false, true, false, &mut local);
    #[cfg(not(feature = "pg15"))]
    let taken = pg_sys::LockAcquireExtended(&tag, BIND_LOCK, false, true, false, &mut local, false);
    if taken == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
        return;
    }
    if !local.is_null() {
        (*local).lockCleared = false;
    }
    pg_sys::LockRelease(&tag, BIND_LOCK, false);
}
