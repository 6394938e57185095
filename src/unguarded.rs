//! PostgreSQL functions called without pgrx's error guard.
//!
//! pgrx wraps each call into PostgreSQL in a `sigsetjmp`, so that an error
//! raised there unwinds Rust frames properly: about 150 instructions a call.
//! The functions here cannot raise an error (each reads a variable), and
//! run several times at every statement (src/cache.rs takes in the
//! catalog's changes at each parse, plan and executor start), so they are
//! declared again without it.

use pgrx::pg_sys;

mod raw {
    use pgrx::pg_sys;

    extern "C" {
        pub fn IsTransactionState() -> bool;
        pub fn GetCurrentStatementStartTimestamp() -> pg_sys::TimestampTz;
    }
}

/// Whether a transaction is in progress (not starting, ending or aborted).
pub fn in_transaction() -> bool {
    unsafe { raw::IsTransactionState() }
}

/// When the current client statement started (`statement_timestamp()`).
pub fn statement_started() -> pg_sys::TimestampTz {
    unsafe { raw::GetCurrentStatementStartTimestamp() }
}
