//! A client's statement whose plan folded the acting user's answers runs
//! under the snapshot it was planned with when a catalog change arrived in
//! between.
//!
//! PostgreSQL plans a statement under one snapshot and starts running it
//! under another, taken later (a simple query's portal). The answers folded
//! into the plan hold every change visible to the first: the statement
//! passed the commit gate after that snapshot was taken (src/cache.rs). A
//! change that committed in between (a revoke, and rows written in the same
//! transaction) would show in the rows and not in the answers: the
//! statement would read rows written after the revoke with the access the
//! user had before it. A statement can widen that window at will (an
//! IMMUTABLE function that sleeps while it is planned).
//!
//! So the planner keeps the snapshot a client's statement was planned
//! under when its plans folded answers (registered: what it sees stays
//! readable), and as each such plan starts running the statement passes the
//! gate again. Then:
//! - if the cache read the catalog while the statement was planned through
//!   a snapshot newer than the kept one (a function the planner ran took
//!   one), answers folded before and after that look may differ, and no
//!   snapshot is known to match them: the statement is refused with `40001`
//!   (run again, it sees the changes);
//! - else, if the cache's answers hold every change whose message arrived,
//!   they hold every change the running snapshot shows: the plan runs as
//!   started;
//! - else its answers are those of the kept snapshot (a change that became
//!   visible after it was taken was read through it, which does not show
//!   it): the plan runs under the kept snapshot, its rows and its answers
//!   both as before the change, as if it had started running as it was
//!   planned. The next statement sees the change.
//!
//! Only in READ COMMITTED (the other levels run every statement under the
//! transaction's snapshot), in a transaction without an id (one with an id
//! reads the catalog through snapshots newer than the planning one), and
//! only for the plans just made, as they start from the portal they were
//! made for in the same client message: a simple query's, or a Bind's that
//! plans a query and starts it. A plan the plan cache keeps and runs again,
//! a write bound by one message and executed by another, and a query
//! planned inside a utility statement (`EXPLAIN ANALYZE`, `CREATE TABLE
//! AS`), start under their own snapshot (src/kept_plans.rs, and
//! the README's open limits).

use std::cell::Cell;

use pgrx::pg_sys;

use crate::cache;
use crate::error::FluentError;
use crate::unguarded;

/// The snapshot kept for the plans just made.
#[derive(Clone, Copy)]
struct Kept {
    /// The start of the client's statement they were planned for.
    statement: pg_sys::TimestampTz,
    /// The snapshot they were planned under, registered on the
    /// transaction's resource owner.
    snapshot: pg_sys::Snapshot,
    /// The cache read the catalog through a newer snapshot while they were
    /// planned: answers folded before and after that look may differ, and
    /// neither snapshot is known to match them all.
    mixed: bool,
}

thread_local! {
    static KEPT: Cell<Option<Kept>> = const { Cell::new(None) };
}

fn read_committed() -> bool {
    unsafe { pg_sys::XactIsoLevel < pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// A client's statement was planned, and its plan folded answers
/// (src/plans.rs). The plans of one statement (a rule's actions) are made
/// under one snapshot, kept once.
pub fn keep() {
    unsafe {
        let planned_under = if pg_sys::ActiveSnapshotSet() {
            pg_sys::GetActiveSnapshot()
        } else {
            std::ptr::null_mut()
        };
        let statement = unguarded::statement_started();
        if let Some(kept) = KEPT.get() {
            if kept.statement == statement && kept.snapshot == planned_under {
                KEPT.set(Some(Kept {
                    mixed: kept.mixed || cache::last_look_saw_more_than(planned_under),
                    ..kept
                }));
                return;
            }
        }
        release();
        // A transaction with an id reads the catalog through snapshots of
        // its own (SPI is no longer read-only, src/owner.rs), newer than
        // the planning snapshot: its answers are not that snapshot's.
        if !read_committed()
            || planned_under.is_null()
            || pg_sys::GetTopTransactionIdIfAny() != pg_sys::InvalidTransactionId
        {
            return;
        }
        let snapshot =
            pg_sys::RegisterSnapshotOnOwner(planned_under, pg_sys::TopTransactionResourceOwner);
        KEPT.set(Some(Kept {
            statement,
            snapshot,
            mixed: cache::last_look_saw_more_than(planned_under),
        }));
    }
}

/// As a plan starts running (src/kept_plans.rs). The plans just made start
/// in the same client statement, from the portal they were made for
/// (nothing runs between a statement's planning and its start: a simple
/// query's portal, a Bind's; the plan cache runs a copy of them, so they
/// are found in the portal, not compared with what the planner returned).
/// Each that `folded` answers passes the gate and runs under the snapshot
/// its answers are those of (see the module comment); the portal's last
/// lets the kept snapshot go. A query run inside the statement (a
/// function's) is not the portal's; a plan started by a later message (a
/// write bound, then executed) lets it go too.
pub unsafe fn start(query: *mut pg_sys::QueryDesc, folded: bool) {
    let Some(kept) = KEPT.get() else { return };
    if kept.statement != unguarded::statement_started() {
        return release();
    }
    let portal = pg_sys::ActivePortal;
    if portal.is_null() {
        return;
    }
    let stmts = (*portal).stmts;
    let plans: &[pg_sys::ListCell] = if stmts.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts((*stmts).elements, (*stmts).length as usize)
    };
    let plan = (*query).plannedstmt;
    let Some(at) = plans.iter().position(|cell| cell.ptr_value == plan.cast()) else {
        return;
    };
    let last = at + 1 == plans.len();
    let refused = folded && read_committed() && {
        // Kept until it has passed: an error there (a cancel) leaves it to
        // `release` at the transaction's end.
        cache::pass_gate_and_take_in();
        kept.mixed
            || !cache::answers_hold_every_message()
                && (cache::last_look_saw_more_than(kept.snapshot)
                    || !substitute(query, kept.snapshot))
    };
    if last || refused {
        release();
    }
    if refused {
        FluentError::ChangedWhilePlanning.report();
    }
}

/// Runs `query` under a copy of `planned` (with the command id of the
/// snapshot it was to run under), on the stack of active snapshots in place
/// of that one, so that what the statement runs reads through it too. The
/// query's snapshot is registered on the current resource owner (the
/// portal's) as `CreateQueryDesc` registered the one it replaces, for
/// `FreeQueryDesc` to unregister. A portal that stores the rows it returns
/// (`RETURNING`, a write in `WITH`) holds a snapshot that keeps what they
/// point to readable until they are sent: it holds `planned` instead.
unsafe fn substitute(query: *mut pg_sys::QueryDesc, planned: pg_sys::Snapshot) -> bool {
    let running = (*query).snapshot;
    if running.is_null()
        || !pg_sys::ActiveSnapshotSet()
        || pg_sys::GetActiveSnapshot() != running
        || (*running).snapshot_type != pg_sys::SnapshotType::SNAPSHOT_MVCC
    {
        return false;
    }
    let command = (*running).curcid;
    pg_sys::PopActiveSnapshot();
    pg_sys::UnregisterSnapshot(running);
    pg_sys::PushCopiedSnapshot(planned);
    let active = pg_sys::GetActiveSnapshot();
    (*active).curcid = command;
    (*query).snapshot = pg_sys::RegisterSnapshot(active);
    let portal = pg_sys::ActivePortal;
    if !portal.is_null() && !(*portal).holdSnapshot.is_null() {
        pg_sys::UnregisterSnapshot((*portal).holdSnapshot);
        (*portal).holdSnapshot = pg_sys::RegisterSnapshot(planned);
    }
    true
}

/// Lets the kept snapshot go (a new plan is kept, or the transaction is
/// about to commit or prepare: the resource owner must hold none).
pub fn release() {
    if let Some(kept) = KEPT.take() {
        unregister(kept.snapshot);
    }
}

/// The transaction aborted: its resource owner releases the snapshot.
pub fn forget() {
    KEPT.set(None);
}

fn unregister(snapshot: pg_sys::Snapshot) {
    unsafe { pg_sys::UnregisterSnapshotFromOwner(snapshot, pg_sys::TopTransactionResourceOwner) };
}
