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
//! flag before the next Bind, and one no role can queue a conflicting lock
//! on, or that role would stop every Bind behind it. So it is the TOAST
//! relation of `fluent.users` in `RowShareLock`: a relation in schema
//! `pg_toast`, which no role but a superuser (and members of
//! `pg_read_all_data`, who read everything) can name, so none can lock it
//! with `LOCK TABLE`, `SELECT ... FOR SHARE` or `CREATE RULE` (which locks
//! its table before it checks anything); EXPLAIN, `pg_relation_size()` and
//! the like lock in `AccessShareLock`, a lock of its own. It is in this
//! database, so taken by the fast path. Earlier choices failed: fluent's
//! sentinel in `AccessShareLock` (an EXPLAIN of any folded query cleared the
//! flag, and a database owner's `VACUUM FULL` of it, queued behind a lock
//! any role holds with `nextval()`, stopped every Bind); `pg_database` in
//! `RowShareLock` (any role can name it: a `PREPARE` of `SELECT ... FOR
//! SHARE` on it cleared the flag, and `CREATE RULE` on it, queued, stopped
//! every Bind in every database). A database owner's `VACUUM FULL` of
//! `fluent.users` still waits for, and stops, Binds, as it stops every
//! first check reading that table.
//!
//! A change that commits while a kept plan is bound, after its lock was
//! taken, and a kept plan bound while the lock stayed cleared (a statement
//! that runs at Execute, a write, bound and closed without an Execute, leaves
//! it so), are found as the plan starts: src/planning_snapshot.rs refuses the
//! run if the change concerns the acting user's answers.

use std::cell::Cell;

use pgrx::pg_sys;

use crate::cache;
use crate::gate;
use crate::owner;
use crate::planning_snapshot;

static mut PREVIOUS_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

/// The lock a folded plan takes at Bind (see the module comment).
const BIND_LOCK: pg_sys::LOCKMODE = pg_sys::RowShareLock as pg_sys::LOCKMODE;

thread_local! {
    /// (the sentinel relation, the relation locked at Bind) as last
    /// resolved: a catalog created again has new ones.
    static BIND_LOCK_RELATION: Cell<(pg_sys::Oid, pg_sys::Oid)> =
        const { Cell::new((pg_sys::InvalidOid, pg_sys::InvalidOid)) };
}

/// Installs the executor start hook; called once from `_PG_init`.
pub fn init() {
    unsafe {
        PREVIOUS_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

/// Adds the entry whose lock takes messages in to a folded plan's range
/// table, so that a kept copy of the plan takes it when it is bound again.
/// `sentinel` is the sentinel relation the plan depends on. The entry also
/// carries `stamp`, what the plan's answers were folded from
/// (src/planning_snapshot.rs), in two fields that only other kinds of entry
/// use (`enrtuples`, `ctelevelsup`): copies of the plan (the plan cache's)
/// copy them, and nothing reads them in a relation's entry.
pub unsafe fn lock_when_bound(
    plan: *mut pg_sys::PlannedStmt,
    sentinel: pg_sys::Oid,
    stamp: cache::AnswersStamp,
) {
    let Some(relation) = bind_lock_relation(sentinel) else {
        return;
    };
    if let Some(rte) = bind_lock_entry((*plan).rtable, relation) {
        return carry_stamp(rte, stamp);
    }
    let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
        .cast::<pg_sys::RangeTblEntry>();
    carry_stamp(rte, stamp);
    (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
    (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
    (*rte).relid = relation;
    (*rte).relkind = pg_sys::RELKIND_TOASTVALUE as std::ffi::c_char;
    (*rte).rellockmode = BIND_LOCK;
    // EXPLAIN names every entry; no privilege is checked on it (no
    // required permissions on 15, no permission entry from 16 on).
    (*rte).eref = pg_sys::makeAlias(c"fluent_bind_lock".as_ptr(), std::ptr::null_mut());
    (*plan).rtable = pg_sys::lappend((*plan).rtable, rte.cast());
}

/// The TOAST relation of `fluent.users` of the catalog whose sentinel is
/// `sentinel`, looked up once per catalog.
fn bind_lock_relation(sentinel: pg_sys::Oid) -> Option<pg_sys::Oid> {
    let (known_sentinel, known) = BIND_LOCK_RELATION.get();
    if known_sentinel == sentinel && known != pg_sys::InvalidOid {
        return Some(known);
    }
    let users = owner::catalog_relid(c"users")?;
    let toast = unsafe {
        let class = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as _,
            pg_sys::Datum::from(users),
        );
        if class.is_null() {
            return None;
        }
        let toast =
            (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(class)).reltoastrelid;
        pg_sys::ReleaseSysCache(class);
        toast
    };
    if toast == pg_sys::InvalidOid {
        return None;
    }
    BIND_LOCK_RELATION.set((sentinel, toast));
    Some(toast)
}

/// The entry `lock_when_bound` adds, if range table `rtable` holds it.
unsafe fn bind_lock_entry(
    rtable: *mut pg_sys::List,
    relation: pg_sys::Oid,
) -> Option<*mut pg_sys::RangeTblEntry> {
    if rtable.is_null() {
        return None;
    }
    let entries = std::slice::from_raw_parts((*rtable).elements, (*rtable).length as usize);
    // Appended last; searched from the end.
    entries
        .iter()
        .rev()
        .map(|cell| cell.ptr_value.cast::<pg_sys::RangeTblEntry>())
        .find(|&rte| {
            (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && (*rte).relid == relation
                && (*rte).rellockmode == BIND_LOCK
        })
}

unsafe fn carry_stamp(rte: *mut pg_sys::RangeTblEntry, stamp: cache::AnswersStamp) {
    // Exact: the hash has 52 bits, a double's mantissa.
    (*rte).enrtuples = stamp.hash as f64;
    (*rte).ctelevelsup = stamp.parts.into();
}

unsafe fn carried_stamp(rte: *mut pg_sys::RangeTblEntry) -> cache::AnswersStamp {
    cache::AnswersStamp {
        hash: (*rte).enrtuples as u64,
        parts: (*rte).ctelevelsup as u8,
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: std::ffi::c_int) {
    // A parallel worker runs its leader's plan, which did all this.
    if pg_sys::ParallelWorkerNumber < 0 {
        let (_, relation) = BIND_LOCK_RELATION.get();
        let stamp = (relation != pg_sys::InvalidOid)
            .then(|| bind_lock_entry((*(*query).plannedstmt).rtable, relation))
            .flatten()
            .map(|rte| carried_stamp(rte));
        let folded = stamp.is_some();
        // The plan just made runs under the snapshot it was planned under
        // if a change arrived since (which the check below then finds
        // invisible); any other checks its answers against the cache.
        planning_snapshot::start(query, stamp);
        // Before the gate is passed below, which forgets the commits it
        // stopped waiting for once they ended.
        if gate::stalled_commit_visible((*query).snapshot, folded, cache::last_look_saw) {
            cache::pass_gate_and_take_in();
        }
        // Once per client statement, whatever runs first: the statement
        // bound (a portal's copy of its text), or one it runs inside.
        cache::take_in_changes_once_per_statement();
        if folded {
            take_messages_in_at_next_lock(relation);
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
unsafe fn take_messages_in_at_next_lock(relation: pg_sys::Oid) {
    let tag = gate::relation_lock_tag(relation, 0);
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
