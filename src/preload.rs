//! A preload name that outlives versions.
//!
//! Each version of fluent is its own library, `fluent-<version>.so`, so a
//! setting such as `session_preload_libraries` cannot name it without being
//! changed at every update, and the name `fluent` is 0.1.0's library. So the
//! installer also copies the library to `fluent_preload.so` (a copy: a link
//! would be the same file to the dynamic loader and to PostgreSQL, which
//! would then never initialise the versioned name). Loaded under that name,
//! the library only loads the library that fluent's functions in the
//! session's database name (the version installed there, whatever it is),
//! and does nothing in a database without fluent.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

/// The name the installer gives the copy: `session_preload_libraries =
/// 'fluent_preload'`.
const PRELOAD_NAME: &str = "fluent_preload";

#[repr(C)]
struct DlInfo {
    fname: *const c_char,
    fbase: *mut c_void,
    sname: *const c_char,
    saddr: *mut c_void,
}

extern "C" {
    fn dladdr(addr: *const c_void, info: *mut DlInfo) -> c_int;
}

/// Whether this copy of the library was loaded as `fluent_preload`.
pub fn loaded_as_preloader() -> bool {
    let mut info = DlInfo {
        fname: std::ptr::null(),
        fbase: std::ptr::null_mut(),
        sname: std::ptr::null(),
        saddr: std::ptr::null_mut(),
    };
    let found = unsafe { dladdr(loaded_as_preloader as *const c_void, &mut info) } != 0;
    if !found || info.fname.is_null() {
        return false;
    }
    let path = unsafe { CStr::from_ptr(info.fname) }.to_string_lossy();
    std::path::Path::new(path.as_ref())
        .file_stem()
        .is_some_and(|stem| stem == PRELOAD_NAME)
}

/// Loads the library of the fluent installed in the session's database, if
/// any (a backend of the postmaster or of no database loads nothing).
pub fn load_installed_version() {
    unsafe {
        // A parallel worker loads its leader's libraries, the versioned one
        // too, and may not look anything up here: its transaction state is
        // the leader's, where a query of its own assigns no transaction id
        // ("cannot assign XIDs during a parallel operation").
        if !pg_sys::IsUnderPostmaster
            || pg_sys::MyDatabaseId == pg_sys::InvalidOid
            || pg_sys::InitializingParallelWorker
        {
            return;
        }
        let in_transaction = pg_sys::IsTransactionState();
        if !in_transaction {
            pg_sys::StartTransactionCommand();
        }
        let snapshot = !pg_sys::ActiveSnapshotSet();
        if snapshot {
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        }
        // Every name qualified, the operators too: the session's search path
        // is the database's default, which its owner (perhaps not a
        // superuser) may set, and this runs as whoever connects.
        let library = Spi::get_one::<String>(
            "SELECT p.probin FROM pg_catalog.pg_extension e
               JOIN pg_catalog.pg_depend d
                 ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                AND d.refobjid OPERATOR(pg_catalog.=) e.oid
                AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                AND d.deptype OPERATOR(pg_catalog.=) 'e'::pg_catalog.\"char\"
               JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) d.objid
              WHERE e.extname OPERATOR(pg_catalog.=) 'fluent'::pg_catalog.name AND p.probin IS NOT NULL
              ORDER BY p.oid LIMIT 1",
        )
        .unwrap_or(None);
        if snapshot {
            pg_sys::PopActiveSnapshot();
        }
        if !in_transaction {
            pg_sys::CommitTransactionCommand();
        }
        if let Some(library) = library.and_then(|l| CString::new(l).ok()) {
            pg_sys::load_file(library.as_ptr(), false);
        }
    }
}
