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
//! change commits waits for that commit to finish, no longer; otherwise
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
//! close the gate: it would keep it closed until `COMMIT PREPARED`.

use std::cell::Cell;

use pgrx::pg_sys;

use crate::owner;

thread_local! {
    /// The current transaction wrote the catalog.
    static CHANGED: Cell<bool> = const { Cell::new(false) };
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

/// The current transaction wrote the catalog (its statement triggers).
pub fn catalog_changed() {
    CHANGED.set(true);
}

/// Just before the current transaction commits (src/lib.rs): if it wrote
/// the catalog, close the gate until its locks are released.
pub fn pre_commit() {
    if !CHANGED.get() {
        return;
    }
    if let Some(tag) = tag() {
        unsafe { pg_sys::LockAcquire(&tag, CLOSE, false, false) };
    }
}

/// At the end of every transaction (src/lib.rs).
pub fn transaction_ended() {
    CHANGED.set(false);
}

/// Waits until no catalog change is between becoming visible and sending
/// its invalidation messages. Called once per statement, before the
/// statement takes in messages.
pub fn pass() {
    let Some(tag) = tag() else { return };
    unsafe {
        if pg_sys::LockAcquire(&tag, PASS, false, false)
            == pg_sys::LockAcquireResult::LOCKACQUIRE_OK
        {
            pg_sys::LockRelease(&tag, PASS, false);
        }
    }
}
