//! The commit gate: no statement starts between a catalog change becoming
//! visible and its invalidation message being sent.
//!
//! PostgreSQL makes a committed transaction visible to new snapshots
//! (`ProcArrayEndTransaction`) before it sends the transaction's
//! invalidation messages (`AtEOXact_Inval`), and releases its locks only
//! after that. Its own catalog caches are safe because DDL holds its locks
//! across that window; fluent's catalog writes take no lock a checking
//! session waits for. So a statement of another session could start in the
//! window, see the change in its snapshot, find no message yet, and answer
//! from the cache as it was (the load test of `.ci/bench` caught this).
//!
//! So a transaction that wrote the catalog closes the gate as it commits:
//! at `XACT_EVENT_PRE_COMMIT` it takes a lock that it holds until its locks
//! are released, after its messages were sent; and each statement passes the
//! gate before it takes in messages (src/cache.rs). When no change is
//! committing, passing costs a fast-path lock and unlock in this backend's
//! own array.
//!
//! The lock is a relation lock in this database on `pg_database`, a shared
//! catalog, which PostgreSQL always locks with no database in the tag: so no
//! lock anybody takes has this tag. (Any role can lock any relation OID,
//! existing or not: `nextval()` takes `RowExclusiveLock` on it before it
//! checks anything, for the whole transaction even when a savepoint rolls
//! its error back. On the OID of schema `fluent`, which the gate used, that
//! lock made every committing catalog change wait, and every statement
//! behind it; and after OID wraparound a relation may have a schema's OID.)
//! The checking sessions take `RowExclusiveLock` (weak modes take the fast
//! path and do not conflict with each other), committing writers
//! `ShareLock` (which conflicts with it, not with itself: writers do not
//! wait for each other). A prepared transaction (two-phase commit) does not
//! close the gate: it would keep it closed until `COMMIT PREPARED`; nor does
//! a transaction without an id, or whose catalog writes were all rolled back
//! to savepoints: nothing of it becomes visible.
//!
//! Nothing here waits for a session that another session can hold up:
//! - A writer whose commit is visible is not waited for: its messages can be
//!   held up as long as its client does not read a notice PostgreSQL sends
//!   it while it sends them, with interrupts held. Its change is taken in as
//!   if they had arrived (src/cache.rs, `pass_gate_and_take_in`: a look at
//!   the change log finds it). PostgreSQL stops listing it among the gate's
//!   holders as it becomes visible, so it also takes a lock of its own,
//!   which says it is a writer.
//! - A writer whose commit is not visible yet is waited for up to
//!   `PATIENCE`: it may wait for a synchronous standby. (The truncation of
//!   its `ON COMMIT DELETE ROWS` tables, which waits for any lock on them,
//!   runs before it closes the gate.) After that, no statement of this
//!   backend waits for it again: it is stalled, and its change is invisible
//!   to the snapshots taken until it is visible. A statement that passed the
//!   gate before it was visible and starts running after, with a snapshot
//!   that shows it, catches up with it as it starts (src/kept_plans.rs): its
//!   checks take the change in; a plan whose answers were folded from a
//!   cache that had not taken it in runs under the snapshot it was planned
//!   under (src/planning_snapshot.rs) or, started by a later message than
//!   its planning, is refused with `40001` (run again, it sees the change).

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;

use crate::error::FluentError;
use crate::owner;

thread_local! {
    /// The outermost (sub)transaction nesting level whose catalog writes
    /// still stand, or 0 if none: the transaction wrote the catalog.
    static CHANGED_AT: Cell<i32> = const { Cell::new(0) };
    /// The writers this backend stopped waiting for (see `pass`).
    static STALLED: RefCell<Vec<pg_sys::TransactionId>> = const { RefCell::new(Vec::new()) };
    /// The writers whose visible change this backend took in before their
    /// messages arrived, by process number and local transaction number.
    static TAKEN_IN: RefCell<Vec<(usize, pg_sys::LocalTransactionId)>> =
        const { RefCell::new(Vec::new()) };
}

const PASS: pg_sys::LOCKMODE = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
const CLOSE: pg_sys::LOCKMODE = pg_sys::ShareLock as pg_sys::LOCKMODE;

/// The gate's lock tag in this database, if fluent is installed in it (see
/// the module comment: no other lock has it).
fn tag() -> Option<pg_sys::LOCKTAG> {
    owner::catalog_namespace()?;
    Some(relation_lock_tag(pg_sys::DatabaseRelationId, 0))
}

/// The lock by which the writer whose process is number `number` says it
/// holds the gate closed: the gate's tag with `number + 1` where
/// PostgreSQL's relation locks have 0 (no other lock has it either).
fn own_tag(number: usize) -> pg_sys::LOCKTAG {
    relation_lock_tag(pg_sys::DatabaseRelationId, number as u32 + 1)
}

/// A relation lock tag in this database (PostgreSQL's `SET_LOCKTAG_RELATION`,
/// with `field3`, which it leaves 0).
pub fn relation_lock_tag(relation: pg_sys::Oid, field3: u32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: relation.to_u32(),
        locktag_field3: field3,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_RELATION as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    }
}

/// Whether another session holds a lock on `tag` that conflicts with
/// passing (takes the passing lock without waiting and lets it go).
unsafe fn held_by_another(tag: &pg_sys::LOCKTAG) -> bool {
    match pg_sys::LockAcquire(tag, PASS, false, true) {
        pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => true,
        pg_sys::LockAcquireResult::LOCKACQUIRE_OK => {
            pg_sys::LockRelease(tag, PASS, false);
            false
        }
        _ => false,
    }
}

/// The current (sub)transaction wrote the catalog (its statement triggers).
pub fn catalog_changed() {
    let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
    if CHANGED_AT.get() == 0 || level < CHANGED_AT.get() {
        CHANGED_AT.set(level);
    }
}

/// A subtransaction ended (src/lib.rs): its catalog writes now stand in its
/// parent, or were rolled back (a statement rolled back to a savepoint
/// closes no gate: nothing of it becomes visible).
pub fn subtransaction_ended(committed: bool) {
    let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
    if CHANGED_AT.get() >= level {
        CHANGED_AT.set(if committed { level - 1 } else { 0 });
    }
}

/// Just before the current transaction commits (src/lib.rs): if it wrote
/// the catalog, close the gate until its locks are released, and say so by
/// a lock of its own (readers find a writer whose commit is visible by it:
/// PostgreSQL no longer lists it among the gate's holders). Its
/// `ON COMMIT` actions on temporary tables run first: truncating one waits
/// for any lock on it, which any role can hold with `nextval()` on its OID,
/// and that wait must not hold the gate closed. (PostgreSQL runs them again
/// after this callback: the tables are empty, and dropped ones are gone
/// from the list.)
pub fn pre_commit() {
    // A transaction without an id wrote nothing that becomes visible (its
    // triggers fired on no row): readers need not wait for it.
    if CHANGED_AT.get() == 0
        || unsafe { pg_sys::GetTopTransactionIdIfAny() } == pg_sys::InvalidTransactionId
    {
        return;
    }
    if let Some(tag) = tag() {
        unsafe {
            pg_sys::PreCommit_on_commit_actions();
            pg_sys::LockAcquire(&tag, CLOSE, false, false);
            let number = pg_sys::MyProc.offset_from((*pg_sys::ProcGlobal).allProcs);
            pg_sys::LockAcquire(&own_tag(number as usize), CLOSE, false, false);
        }
    }
}

/// At the end of every transaction (src/lib.rs).
pub fn transaction_ended() {
    CHANGED_AT.set(0);
}

/// Passes the gate: makes sure that the statement takes in every catalog
/// change visible to it. Called once per statement, before the statement
/// takes in messages. Returns whether a change is visible whose messages
/// may not have arrived: the caller takes it in as if they had (a look at
/// the change log finds it).
///
/// A writer closes the gate before its commit is visible: for its commit
/// record and a wait for a synchronous standby (and any wait a client can
/// cause while PostgreSQL sends it a notice there). One still committing is
/// waited for, polling, up to `PATIENCE`; after that this backend stops
/// waiting for it (it is stalled), and its statements go on as before the
/// change until it becomes visible. A plan that starts running with a
/// snapshot in which such a writer became visible since catches up with it
/// (`stalled_commit_visible`). A writer whose commit is visible is
/// not waited for at all: its messages could be held up as long as its
/// client does not read (a notice sent while they are sent, with interrupts
/// held), and those of any process, writer or not, as long. Its change is
/// taken in without them.
#[must_use]
pub fn pass() -> bool {
    let Some(tag) = tag() else { return false };
    unsafe {
        if held_by_another(&tag) {
            return wait_for_writers(&tag);
        }
    }
    // No writer holds the gate: the ones remembered have ended.
    STALLED.with_borrow_mut(Vec::clear);
    TAKEN_IN.with_borrow_mut(Vec::clear);
    false
}

/// How long a statement waits at the gate for a writer whose commit is not
/// visible yet (a commit record's flush takes milliseconds; a synchronous
/// standby's answer, at most about a second on a working one).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a writer that holds the gate stands, read from its process without
/// a lock (the local transaction number, read again, tells whether the rest
/// belongs to that transaction).
enum Writer {
    /// Its commit is visible, or it has ended.
    Done,
    /// Its commit is not visible yet: it still runs as transaction `xid`.
    Committing(pg_sys::TransactionId),
    /// Its id is cleared and its local number not yet (its commit is
    /// becoming visible).
    Clearing,
}

unsafe fn wait_for_writers(tag: &pg_sys::LOCKTAG) -> bool {
    let started = std::time::Instant::now();
    let mut nap: std::ffi::c_long = 20;
    loop {
        // The writers still committing: PostgreSQL lists the holders whose
        // local transaction number is set.
        let holders = pg_sys::GetLockConflicts(tag, PASS, std::ptr::null_mut());
        let mut waiting = false;
        let mut stalled = Vec::new();
        let mut next = holders;
        while valid(*next) {
            match writer(proc_of(*next), (*next).localTransactionId) {
                Writer::Done => {}
                Writer::Committing(xid) => {
                    let known = STALLED.with_borrow(|s| s.contains(&xid));
                    if known || started.elapsed() >= PATIENCE {
                        stalled.push(xid);
                    } else {
                        waiting = true;
                    }
                }
                Writer::Clearing => waiting |= started.elapsed() < PATIENCE,
            }
            next = next.add(1);
        }
        pg_sys::pfree(holders.cast());
        if !waiting {
            STALLED.set(stalled);
            return writer_visible_and_holding_the_gate();
        }
        pg_sys::pg_usleep(nap);
        pg_sys::check_for_interrupts!();
        nap = (nap * 2).min(1000);
    }
}

/// Whether a process of this database made its catalog change visible and
/// still holds the gate (its messages may not be sent), and this backend
/// has not taken its change in yet: one whose local transaction number is
/// cleared, and whose own lock says it is a writer. Each is taken in once
/// (the look that follows, or the one after it if that look's snapshot is
/// older than the change, reads it), not at every statement while its
/// messages are held up.
unsafe fn writer_visible_and_holding_the_gate() -> bool {
    let global = pg_sys::ProcGlobal;
    let all = std::slice::from_raw_parts((*global).allProcs, (*global).allProcCount as usize);
    let visible: Vec<(usize, pg_sys::LocalTransactionId)> = all
        .iter()
        .enumerate()
        .filter_map(|(number, proc)| {
            let proc = proc as *const pg_sys::PGPROC;
            let lxid = std::ptr::read_volatile(&(*proc).fpLocalTransactionId);
            let visible_writer = proc != pg_sys::MyProc.cast_const()
                && (*proc).databaseId == pg_sys::MyDatabaseId
                && lxid != 0
                && advertised_lxid(proc) == 0
                && held_by_another(&own_tag(number));
            visible_writer.then_some((number, lxid))
        })
        .collect();
    let new = TAKEN_IN.with_borrow(|taken| visible.iter().any(|w| !taken.contains(w)));
    TAKEN_IN.set(visible);
    new
}

/// As a plan starts running with `snapshot`: whether a writer this backend
/// stopped waiting for (see `pass`) is visible in it, so that the
/// statement's checks must take its change in (the caller passes the gate
/// again). A plan that `folded` answers from a cache that had not taken the
/// change in (`in_cache`: the cache's last look saw the writer's
/// transaction) would answer from before it while reading rows after it:
/// it is refused.
#[must_use]
pub fn stalled_commit_visible(
    snapshot: pg_sys::Snapshot,
    folded: bool,
    in_cache: impl Fn(pg_sys::TransactionId) -> bool,
) -> bool {
    if STALLED.with_borrow(Vec::is_empty)
        || snapshot.is_null()
        || unsafe { (*snapshot).snapshot_type } != pg_sys::SnapshotType::SNAPSHOT_MVCC
    {
        return false;
    }
    let visible: Vec<pg_sys::TransactionId> = STALLED.with_borrow(|stalled| {
        stalled
            .iter()
            .copied()
            .filter(|&xid| unsafe {
                !pg_sys::XidInMVCCSnapshot(xid, snapshot) && pg_sys::TransactionIdDidCommit(xid)
            })
            .collect()
    });
    if folded && visible.iter().any(|&xid| !in_cache(xid)) {
        FluentError::ChangedWhilePlanning.report();
    }
    !visible.is_empty()
}

#[cfg(feature = "pg15")]
fn valid(vxid: pg_sys::VirtualTransactionId) -> bool {
    vxid.backendId != pg_sys::InvalidBackendId && vxid.localTransactionId != 0
}

#[cfg(not(feature = "pg15"))]
fn valid(vxid: pg_sys::VirtualTransactionId) -> bool {
    vxid.procNumber != pg_sys::INVALID_PROC_NUMBER && vxid.localTransactionId != 0
}

/// The process of backend `backend` (PostgreSQL 15's bindings lack it).
#[cfg(feature = "pg15")]
unsafe fn backend_proc(backend: pg_sys::BackendId) -> *mut pg_sys::PGPROC {
    extern "C-unwind" {
        fn BackendIdGetProc(backend: std::ffi::c_int) -> *mut pg_sys::PGPROC;
    }
    pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| BackendIdGetProc(backend))
}

/// The process of the transaction `vxid` (null if none).
unsafe fn proc_of(vxid: pg_sys::VirtualTransactionId) -> *mut pg_sys::PGPROC {
    #[cfg(feature = "pg15")]
    return backend_proc(vxid.backendId);
    #[cfg(not(feature = "pg15"))]
    return pg_sys::ProcNumberGetProc(vxid.procNumber);
}

/// The local transaction number process `proc` advertises (cleared as its
/// commit becomes visible).
unsafe fn advertised_lxid(proc: *const pg_sys::PGPROC) -> pg_sys::LocalTransactionId {
    #[cfg(feature = "pg15")]
    return std::ptr::read_volatile(&(*proc).lxid);
    #[cfg(not(feature = "pg15"))]
    return std::ptr::read_volatile(&(*proc).vxid.lxid);
}

/// Where the writer running local transaction `lxid` in process `proc`
/// stands (see `Writer`).
unsafe fn writer(proc: *const pg_sys::PGPROC, lxid: pg_sys::LocalTransactionId) -> Writer {
    if proc.is_null() || advertised_lxid(proc) != lxid {
        return Writer::Done;
    }
    let xid = std::ptr::read_volatile(&(*proc).xid);
    if advertised_lxid(proc) != lxid {
        Writer::Done
    } else if xid == pg_sys::InvalidTransactionId {
        Writer::Clearing
    } else {
        Writer::Committing(xid)
    }
}
