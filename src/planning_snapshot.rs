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
//! under when its plan folded answers (registered: what it sees stays
//! readable), and as that plan starts running the statement passes the
//! gate again. If a change was taken in since the answers were read, the
//! plan runs under the kept snapshot: its rows and its answers are both as
//! before the change (the statement then reads as of its planning, as a
//! statement waiting for a lock during its planning would). The next
//! statement sees the change.
//!
//! Only in READ COMMITTED (the other levels run every statement under the
//! transaction's snapshot), and only for the plan just made, as it starts
//! in the same client message: a simple query's, or a Bind's that plans a
//! query and starts it. A plan the plan cache keeps and runs again, and a
//! write bound by one message and executed by another, start under their
//! own snapshot (src/kept_plans.rs, and the README's open limits).

use std::cell::Cell;

use pgrx::pg_sys;

use crate::cache;
use crate::unguarded;

/// The snapshot kept for the plan just made.
#[derive(Clone, Copy)]
struct Kept {
    /// The start of the client's statement it was planned for.
    statement: pg_sys::TimestampTz,
    /// Registered on the transaction's resource owner.
    snapshot: pg_sys::Snapshot,
    /// The cache's generation its answers were read at.
    generation: Option<u64>,
}

thread_local! {
    static KEPT: Cell<Option<Kept>> = const { Cell::new(None) };
    /// A snapshot a plan started under, kept until the transaction ends or
    /// the next plan is kept: the rows a plan returns may be read after it
    /// ended (a `RETURNING` portal's store), and must stay readable.
    static STARTED_UNDER: Cell<pg_sys::Snapshot> = const { Cell::new(std::ptr::null_mut()) };
}

fn read_committed() -> bool {
    unsafe { pg_sys::XactIsoLevel < pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// A client's statement was planned, and its plan folded answers (src/plans.rs).
pub fn keep() {
    release();
    unsafe {
        if !read_committed() || !pg_sys::ActiveSnapshotSet() {
            return;
        }
        let snapshot = pg_sys::RegisterSnapshotOnOwner(
            pg_sys::GetActiveSnapshot(),
            pg_sys::TopTransactionResourceOwner,
        );
        KEPT.set(Some(Kept {
            statement: unguarded::statement_started(),
            snapshot,
            generation: cache::answers_generation(),
        }));
    }
}

/// As a plan that folded answers starts running (src/kept_plans.rs): if it
/// is the plan just made, pass the gate, and if a change was taken in since
/// its answers were read, run it under the snapshot it was planned under.
/// The plan just made is the first to start after it in the same client
/// statement (nothing runs between a statement's planning and its start:
/// a simple query's portal, a Bind's, `EXPLAIN ANALYZE`, a cursor); the
/// plan cache runs a copy of it, so the plan itself cannot be compared. A
/// plan started later (a write bound, then executed by another message)
/// does not match it, and lets the kept snapshot go.
pub unsafe fn start(query: *mut pg_sys::QueryDesc, folded: bool) {
    let Some(kept) = KEPT.take() else { return };
    if folded && kept.statement == unguarded::statement_started() && read_committed() {
        cache::pass_gate_and_take_in();
        if cache::changed_since(kept.generation) && substitute(query, kept.snapshot) {
            STARTED_UNDER.set(kept.snapshot);
            return;
        }
    }
    unregister(kept.snapshot);
}

/// Runs `query` under a copy of `planned` (with the command id of the
/// snapshot it was to run under), on the stack of active snapshots in place
/// of that one, so that what the statement runs reads through it too. The
/// query's snapshot is registered on the current resource owner (the
/// portal's) as `CreateQueryDesc` registered the one it replaces, for
/// `FreeQueryDesc` to unregister.
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
    true
}

/// Lets every snapshot kept here go (a new plan is kept, or the transaction
/// is about to commit or prepare: the resource owner must hold none).
pub fn release() {
    if let Some(kept) = KEPT.take() {
        unregister(kept.snapshot);
    }
    let started = STARTED_UNDER.replace(std::ptr::null_mut());
    if !started.is_null() {
        unregister(started);
    }
}

/// The transaction aborted: its resource owner releases the snapshots.
pub fn forget() {
    KEPT.set(None);
    STARTED_UNDER.set(std::ptr::null_mut());
}

fn unregister(snapshot: pg_sys::Snapshot) {
    unsafe { pg_sys::UnregisterSnapshotFromOwner(snapshot, pg_sys::TopTransactionResourceOwner) };
}
