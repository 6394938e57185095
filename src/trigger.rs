//! Trigger functions written in Rust, declared so that a direct call gets
//! the error PL/pgSQL gives (`0A000`, "can only be called as a trigger")
//! instead of a panic: pgrx's `#[pg_trigger]` wrapper panics (XX000) when
//! there is no trigger data.

use pgrx::pg_sys;
use pgrx::trigger_support::PgTrigger;

use crate::error::FluentError;

/// Defines the C symbol `$symbol` (and its V1 info record `$finfo`) for a
/// trigger function whose SQL name is `$sql_name`; `$body` gets the
/// `PgTrigger`. The function returns NULL, so it suits AFTER triggers only.
/// Its `CREATE FUNCTION` is in `sql/triggers.sql`, in this version's library.
macro_rules! after_trigger {
    ($symbol:ident, $finfo:ident, $sql_name:literal, $body:expr) => {
        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record =
                ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        #[no_mangle]
        #[::pgrx::pg_guard]
        pub unsafe extern "C-unwind" fn $symbol(
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::pg_sys::Datum {
            let trigger = unsafe { $crate::trigger::trigger_of(fcinfo, $sql_name) };
            let body: fn(&::pgrx::trigger_support::PgTrigger<'_>) = $body;
            body(&trigger);
            ::pgrx::pg_sys::Datum::from(0)
        }
    };
}
pub(crate) use after_trigger;

/// The trigger a function was called for; raises `0A000` when it was called
/// as a plain function.
///
/// # Safety
/// `fcinfo` must be the call info PostgreSQL passed to the function.
pub unsafe fn trigger_of<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
    function: &'static str,
) -> PgTrigger<'a> {
    let fcinfo = unsafe { fcinfo.as_ref() }.expect("PostgreSQL passes call info");
    unsafe { PgTrigger::from_fcinfo(fcinfo) }
        .unwrap_or_else(|_| FluentError::NotCalledAsTrigger { function }.report())
}
