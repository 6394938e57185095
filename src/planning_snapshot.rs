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
//! plans a query and starts it. A statement planned while a portal runs
//! (EXPLAIN, COPY, CREATE TABLE AS, DECLARE, EXECUTE) starts under the
//! snapshot it was planned under: nothing is kept for it.
//!
//! Every other plan that folded answers (a function's query, planned under
//! its caller's snapshot and run under a newer one; a plan the plan cache
//! kept; a write bound and executed by a later message; a statement of a
//! transaction with an id) carries a stamp of what it folded from (the
//! identity, and the versions of the cached parts of its answers;
//! src/cache.rs). As it starts it passes the gate, the cache takes in every
//! change its snapshot shows, and it runs only if the acting user's answers
//! still have its stamp: else it is refused with `40001` (`start_inside`).

use std::cell::Cell;

use pgrx::pg_sys;

use crate::cache::{self, AnswersStamp};
use crate::error::FluentError;
use crate::folds::{self, FoldLooks};
use crate::gucs;
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
    /// The portal they run in, once the first of them started (null
    /// before): a portal a function opens later (a PL/pgSQL `FOR` loop's)
    /// is not theirs.
    portal: pg_sys::Portal,
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
        // the planning snapshot: its answers are not that snapshot's. A
        // statement planned while a portal runs (EXPLAIN, COPY, CREATE
        // TABLE AS, DECLARE, EXECUTE) runs under the snapshot it was planned
        // under, in a portal of its own.
        if !read_committed()
            || planned_under.is_null()
            || !pg_sys::ActivePortal.is_null()
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
            portal: std::ptr::null_mut(),
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
/// lets the kept snapshot go, as does a plan started by a later message (a
/// write bound, then executed). Every other folded plan (a query run inside
/// the statement, a function's or a utility statement's; a plan the plan
/// cache kept; a statement of a transaction with an id) is checked by
/// `start_inside`.
pub unsafe fn start(query: *mut pg_sys::QueryDesc, stamp: Option<AnswersStamp>) {
    let kept = KEPT.get();
    if kept.is_some_and(|kept| kept.statement != unguarded::statement_started()) {
        release();
    }
    let portal = pg_sys::ActivePortal;
    let planned = KEPT
        .get()
        .filter(|kept| kept.portal.is_null() || kept.portal == portal)
        .and_then(|kept| Some((kept, portal_position(query)?)));
    match (planned, stamp) {
        (Some((kept, last)), _) => {
            KEPT.set(Some(Kept { portal, ..kept }));
            start_planned(query, stamp.is_some(), kept, last);
        }
        (None, Some(stamp)) => start_inside(query, stamp),
        (None, _) => {}
    }
}

/// Where the plan of `query` is in the active portal: `Some(last)`, with
/// whether no plan that runs comes after it (a rule's `NOTIFY` does not), or
/// `None` if it is not the portal's.
unsafe fn portal_position(query: *mut pg_sys::QueryDesc) -> Option<bool> {
    let portal = pg_sys::ActivePortal;
    if portal.is_null() || (*portal).stmts.is_null() {
        return None;
    }
    let stmts = (*portal).stmts;
    let plans = std::slice::from_raw_parts((*stmts).elements, (*stmts).length as usize);
    let plan = (*query).plannedstmt;
    let at = plans
        .iter()
        .position(|cell| cell.ptr_value == plan.cast())?;
    Some(plans[at + 1..].iter().all(|cell| {
        let stmt = cell.ptr_value.cast::<pg_sys::PlannedStmt>();
        (*stmt).commandType == pg_sys::CmdType::CMD_UTILITY
    }))
}

unsafe fn start_planned(query: *mut pg_sys::QueryDesc, folded: bool, kept: Kept, last: bool) {
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

/// A folded plan that does not run under a kept planning snapshot: a query
/// run inside the client's statement (a volatile function's, a DO block's,
/// a trigger's), a plan the plan cache kept, or any in a transaction with an
/// id. Its answers were folded from the cache as `folded` stamps it, maybe
/// long before (a SQL function plans its statements at its first call, for
/// every row of its caller), and the cache may have looked at the change
/// log since (a `fluent_can` in between). And PostgreSQL plans a function's
/// query under the snapshot active then (the caller's) and, in READ
/// COMMITTED, runs it under one taken after: a change committed in between
/// would show in its rows and not in its answers (a loop in a DO block read,
/// for as long as it ran, rows written after a revoke). So, in READ
/// COMMITTED, it passes the gate and, if a change arrived that the cache's
/// answers do not hold, the cache looks at the change log through the
/// query's snapshot; then the query runs only if the acting user's answers
/// are still those it folded (others' changes do not stop it), else it is
/// refused with `40001` (run again, the statement sees the change). An
/// identity changed since it was planned (`fluent_reset_user` in a SQL
/// function) refuses it too, at every isolation level. Its own snapshot is
/// used, not the one it was planned under: a volatile function's query must
/// see what committed before it started.
unsafe fn start_inside(query: *mut pg_sys::QueryDesc, folded: AnswersStamp) {
    let snapshot = (*query).snapshot;
    if read_committed() {
        cache::pass_gate_and_take_in();
        if !cache::answers_hold_every_message() && !snapshot.is_null() {
            pg_sys::PushActiveSnapshot(snapshot);
            cache::look_again_now();
            pg_sys::PopActiveSnapshot();
        }
    }
    if acting_stamp(Some(folded.parts)) != folded {
        // Made again at its next use, not refused again.
        folds::invalidate_identity_plans();
        FluentError::ChangedWhileRunning.report();
    }
}

/// What the plan just made folded the acting user's answers from
/// (src/plans.rs): the identity's stamp if its folds read no cache, the
/// stamp of the acting user's answers if they all read the cache as it is
/// now (src/folds.rs), else a stamp no start matches.
pub fn folded_stamp(looks: FoldLooks) -> AnswersStamp {
    match looks {
        FoldLooks::None => acting_stamp(Some(AnswersStamp::IDENTITY)),
        FoldLooks::One(look) if look == cache::looks() => acting_stamp(None),
        FoldLooks::One(_) | FoldLooks::Several => AnswersStamp::NONE,
    }
}

/// The stamp of the acting user's answers: as cached, looking at nothing
/// (`None`), or with the optional `parts` loaded again where a change
/// dropped them; the identity's for nobody, or where `parts` says so.
fn acting_stamp(parts: Option<u8>) -> AnswersStamp {
    gucs::with_acting(|user, workspace| match (user, parts) {
        (Some(user), None) => cache::answers_stamp_folded(workspace, user),
        (Some(user), Some(parts)) if parts & AnswersStamp::IDENTITY == 0 => {
            cache::answers_stamp_now(workspace, user, parts)
        }
        (user, _) => cache::identity_stamp(workspace, user),
    })
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
