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
//! gate before it takes in messages (src/cache.rs): it takes a conflicting
//! lock and lets it go at once. A statement that starts while a catalog
//! change commits waits for that commit to finish (but see below);
//! otherwise
//! passing costs a fast-path lock and unlock in this backend's own array.
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
//! a transaction without an id, which wrote nothing that becomes visible.
//!
//! A writer's commit may wait after it closed the gate and before it is
//! visible: for a synchronous standby, or for a lock (the truncation of its
//! `ON COMMIT DELETE ROWS` tables waits for any lock on them, and any role
//! can hold one with `nextval()`). Waiting for it all along would stop every
//! statement of the database behind one lock of a role with no privilege.
//! So a statement waits for a writer whose commit is not visible yet only
//! up to `PATIENCE`, and no statement of its backend waits for that writer
//! again: it is stalled, and its change is invisible to the snapshots taken
//! until it is visible. A statement that passed the gate before it was
//! visible and starts running after, with a snapshot that shows it, catches
//! up with it as it starts (src/kept_plans.rs): its checks take the change
//! in, and a plan whose answers were folded from a cache that had not taken
//! it in is refused with `40001` (run again, it sees the change).

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;

use crate::error::FluentError;
use crate::owner;

thread_local! {
    /// The outermost (sub)transaction nesting level whose catalog writes
    /// still stand, or 0 if none: the transaction wrote the catalog.
    static CHANGED_AT: Cell<i32> = const { Cell::new(0) };
    /// The writers this backend stopped waiting for (see `pass`).
    static STALLED: RefCell<Vec<Stalled>> = const { RefCell::new(Vec::new()) };
}

const PASS: pg_sys::LOCKMODE = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
const CLOSE: pg_sys::LOCKMODE = pg_sys::ShareLock as pg_sys::LOCKMODE;

/// The gate's lock tag in this database, if fluent is installed in it (see
/// the module comment: no other lock has it).
fn tag() -> Option<pg_sys::LOCKTAG> {
    owner::catalog_namespace()?;
    Some(pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: pg_sys::DatabaseRelationId.to_u32(),
        locktag_field3: 0,
        locktag_field4: 0,
        locktag_type: pg_sys::LockTagType::LOCKTAG_RELATION as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    })
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
/// the catalog, close the gate until its locks are released. Its
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
        }
    }
}

/// At the end of every transaction (src/lib.rs).
pub fn transaction_ended() {
    CHANGED_AT.set(0);
}

/// Waits until no catalog change is between becoming visible and sending
/// its invalidation messages. Called once per statement, before the
/// statement takes in messages.
///
/// A writer closes the gate before its commit is visible: for its commit
/// record, a wait for a synchronous standby, and the truncation of its
/// `ON COMMIT DELETE ROWS` tables, which waits for any lock another role
/// holds on them (`nextval()` on their OID). A writer whose commit is
/// visible is waited for until it ends, which is soon: nothing it does then
/// waits for another session. One still committing is waited for, polling,
/// up to `PATIENCE`; after that this backend stops waiting for it (it is
/// stalled), and its statements go on as before the change until it becomes
/// visible. A plan that starts running with a snapshot in which such a
/// writer became visible since catches up with it
/// (`catch_up_with_stalled_commits`).
pub fn pass() {
    let Some(tag) = tag() else { return };
    unsafe {
        match pg_sys::LockAcquire(&tag, PASS, false, true) {
            pg_sys::LockAcquireResult::LOCKACQUIRE_OK => {
                pg_sys::LockRelease(&tag, PASS, false);
                // No writer holds the gate: the stalled ones have ended.
                STALLED.with_borrow_mut(Vec::clear);
            }
            pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => wait_for_writers(&tag),
            _ => {}
        }
    }
}

/// How long a statement waits at the gate for a writer whose commit is not
/// visible yet (a commit record's flush takes milliseconds; a synchronous
/// standby's answer, at most about a second on a working one).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Where a transaction that a statement waits for stands, read from its
/// process without a lock (the local transaction number, read before and
/// after, tells whether the rest belongs to that transaction).
enum Writer {
    /// Its locks are released: it sent its messages (or it was another
    /// transaction, which began as it was looked at).
    Ended,
    /// Its commit is visible; it is sending its messages. PostgreSQL
    /// clears its local transaction number then, and `GetLockConflicts` no
    /// longer lists it.
    Visible,
    /// Its commit is not visible yet: it still runs as transaction `xid`.
    Committing(pg_sys::TransactionId),
    /// It runs without a transaction id (it began as it was looked at).
    Running,
}

/// A transaction a statement waits for: its process, and its local
/// transaction number.
#[derive(Clone, Copy, PartialEq)]
struct Watched {
    proc: *mut pg_sys::PGPROC,
    lxid: pg_sys::LocalTransactionId,
}

unsafe fn wait_for_writers(tag: &pg_sys::LOCKTAG) {
    let started = std::time::Instant::now();
    let mut nap: std::ffi::c_long = 20;
    let mut watched: Vec<Watched> = Vec::new();
    let mut first = true;
    loop {
        // The writers still committing: PostgreSQL lists the holders whose
        // local transaction number is set.
        let holders = pg_sys::GetLockConflicts(tag, PASS, std::ptr::null_mut());
        let mut next = holders;
        while valid(*next) {
            let holder = Watched {
                proc: proc_of(*next),
                lxid: (*next).localTransactionId,
            };
            if !holder.proc.is_null() && !watched.contains(&holder) {
                watched.push(holder);
            }
            next = next.add(1);
        }
        pg_sys::pfree(holders.cast());
        // The writers whose commit was visible already: every process of
        // this database between its commit and the release of its locks
        // (the others' tails are as short).
        if first {
            first = false;
            watched.extend(processes_in_their_commits_tail());
        }
        let mut waiting = false;
        let mut stalled = Vec::new();
        watched.retain(|w| match writer(*w) {
            Writer::Ended => false,
            Writer::Visible => {
                waiting = true;
                true
            }
            Writer::Committing(xid) => {
                let known = STALLED.with_borrow(|s| s.iter().any(|w| w.xid == xid));
                if known || started.elapsed() >= PATIENCE {
                    stalled.push(Stalled { xid });
                } else {
                    waiting = true;
                }
                true
            }
            Writer::Running => true,
        });
        if !waiting {
            STALLED.set(stalled);
            return;
        }
        pg_sys::pg_usleep(nap);
        pg_sys::check_for_interrupts!();
        nap = (nap * 2).min(1000);
    }
}

/// The transactions of this database's other processes that made their
/// commit (or abort) visible and have not released their locks yet.
unsafe fn processes_in_their_commits_tail() -> Vec<Watched> {
    let global = pg_sys::ProcGlobal;
    let all = std::slice::from_raw_parts_mut((*global).allProcs, (*global).allProcCount as usize);
    all.iter_mut()
        .map(|proc| Watched {
            proc: proc as *mut pg_sys::PGPROC,
            lxid: std::ptr::read_volatile(&proc.fpLocalTransactionId),
        })
        .filter(|w| {
            w.proc != pg_sys::MyProc
                && w.lxid != 0
                && (*w.proc).databaseId == pg_sys::MyDatabaseId
                && matches!(writer(*w), Writer::Visible)
        })
        .collect()
}

/// A writer this backend stopped waiting for while its commit was not
/// visible (see `pass`).
struct Stalled {
    xid: pg_sys::TransactionId,
}

/// As a plan starts running with `snapshot`: if a writer this backend
/// stopped waiting for is visible in it, the statement's checks must see its
/// change. A plan that `folded` answers from a cache that had not taken the
/// change in (`in_cache`: the cache's last look saw the writer's
/// transaction) would answer from before it while reading rows after it:
/// it is refused. Otherwise the writer's messages are taken in (it is
/// waited for until it sends them), and the checks the plan makes as it
/// runs look at the change through this snapshot.
pub fn catch_up_with_stalled_commits(
    snapshot: pg_sys::Snapshot,
    folded: bool,
    in_cache: impl Fn(pg_sys::TransactionId) -> bool,
) {
    if STALLED.with_borrow(Vec::is_empty)
        || snapshot.is_null()
        || unsafe { (*snapshot).snapshot_type } != pg_sys::SnapshotType::SNAPSHOT_MVCC
    {
        return;
    }
    let visible: Vec<pg_sys::TransactionId> = STALLED.with_borrow(|stalled| {
        stalled
            .iter()
            .map(|w| w.xid)
            .filter(|&xid| unsafe {
                !pg_sys::XidInMVCCSnapshot(xid, snapshot) && pg_sys::TransactionIdDidCommit(xid)
            })
            .collect()
    });
    if visible.is_empty() {
        return;
    }
    if folded && visible.into_iter().any(|xid| !in_cache(xid)) {
        FluentError::ChangedWhilePlanning.report();
    }
    pass();
    unsafe { pg_sys::AcceptInvalidationMessages() };
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

/// Where the transaction `w` stands (see `Writer`). Its process keeps its
/// local transaction number for its virtual transaction lock
/// (`fpLocalTransactionId`) until it releases its locks, after its messages
/// are sent, and clears the advertised one when its commit becomes visible.
unsafe fn writer(w: Watched) -> Writer {
    let proc = w.proc;
    #[cfg(feature = "pg15")]
    let advertised = || std::ptr::read_volatile(&(*proc).lxid);
    #[cfg(not(feature = "pg15"))]
    let advertised = || std::ptr::read_volatile(&(*proc).vxid.lxid);
    let locked = || std::ptr::read_volatile(&(*proc).fpLocalTransactionId);
    if locked() != w.lxid {
        return Writer::Ended;
    }
    let xid = std::ptr::read_volatile(&(*proc).xid);
    let now = advertised();
    if locked() != w.lxid {
        Writer::Ended
    } else if now == 0 {
        Writer::Visible
    } else if now != w.lxid {
        Writer::Ended
    } else if xid == pg_sys::InvalidTransactionId {
        // Or its id was cleared as its commit became visible, just before
        // its local number: the next look sees it visible.
        Writer::Running
    } else {
        Writer::Committing(xid)
    }
}
