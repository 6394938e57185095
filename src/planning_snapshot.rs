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
//! gate again. Then:
//! - if the cache's answers hold every change whose message arrived, they
//!   hold every change the running snapshot shows: the plan runs as made;
//! - else, if the cache read the catalog through no snapshot newer than the
//!   kept one, its answers are those of the kept snapshot (a change that
//!   became visible after it was taken in later, and read through it, which
//!   does not show it): the plan runs under the kept snapshot, its rows and
//!   its answers both as before the change, as if it had started running as
//!   it was planned. The next statement sees the change;
//! - else (a function run while the statement was planned read the catalog
//!   through a newer snapshot, and another change arrived) neither snapshot
//!   matches the answers: the statement is refused with `40001`, and run
//!   again it sees the changes. Rows read under the older snapshot with
//!   the newer answers would show rows that a change removed as it granted
//!   access.
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
use crate::error::FluentError;
use crate::unguarded;

/// The snapshot kept for the plan just made.
#[derive(Clone, Copy)]
struct Kept {
    /// The start of the client's statement it was planned for.
    statement: pg_sys::TimestampTz,
    /// Registered on the transaction's resource owner.
    snapshot: pg_sys::Snapshot,
}

thread_local! {
    static KEPT: Cell<Option<Kept>> = const { Cell::new(None) };
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
        }));
    }
}

/// As a plan that folded answers starts running (src/kept_plans.rs): if it
/// is the plan just made, pass the gate, and run it under the snapshot its
/// answers are those of (see the module comment). The plan just made is
/// the first to start after it in the same client statement (nothing runs
/// between a statement's planning and its start: a simple query's portal,
/// a Bind's, `EXPLAIN ANALYZE`, a cursor); the plan cache runs a copy of
/// it, so the plan itself cannot be compared. A plan started later (a write
/// bound, then executed by another message) does not match it, and lets the
/// kept snapshot go.
pub unsafe fn start(query: *mut pg_sys::QueryDesc, folded: bool) {
    let Some(kept) = KEPT.get() else { return };
    let just_made = folded && kept.statement == unguarded::statement_started() && read_committed();
    if just_made {
        // Kept until it has passed: an error there (a cancel) leaves it to
        // `release` at the transaction's end.
        cache::pass_gate_and_take_in();
    }
    KEPT.set(None);
    let decided = !just_made || cache::answers_hold_every_message();
    // Neither snapshot matches the answers, or the query does not run under
    // the active one (nothing known does that): refused.
    let refused = !decided
        && (cache::last_look_saw_more_than(kept.snapshot) || !substitute(query, kept.snapshot));
    unregister(kept.snapshot);
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
