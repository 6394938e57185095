//! Running catalog queries as the catalog owner.
//!
//! Application roles have no privilege on the catalog tables, so fluent
//! switches to the catalog owner, `fluent_owner` (a role without superuser
//! powers, sql/privileges.sql), for the few queries it runs (the way
//! PostgreSQL runs a SECURITY DEFINER function or a foreign-key check) and
//! switches back before returning, also on error. The queries call
//! SQL-standard functions in `sql/loaders.sql`, bound at CREATE EXTENSION
//! time, and name every other type, function and operator with its schema,
//! so no search_path of the caller takes part (it is the session's: a kept
//! plan is made again under it when it changes). Each query is prepared
//! once per backend and its plan kept (PostgreSQL's plan cache replans it
//! when what it depends on changes), so a load parses and plans nothing.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::PgOid;

use crate::hashing::FastMap;

pub const CATALOG_SCHEMA: &std::ffi::CStr = c"fluent";

/// A query's kept plan and the argument types it was prepared for.
struct KeptPlan {
    types: Box<[pg_sys::Oid]>,
    plan: Rc<OwnedPreparedStatement>,
}

thread_local! {
    /// The kept plans of each query, one per list of argument types.
    static PLANS: RefCell<FastMap<&'static str, Vec<KeptPlan>>> = RefCell::new(FastMap::default());
}

/// Runs `f` with the catalog owner, `fluent_owner`, as current user, in a
/// security-restricted operation, and restores the caller's identity
/// afterwards.
pub fn as_catalog_owner<R>(f: impl FnOnce(&mut SpiClient<'_>) -> R) -> R {
    as_role(catalog_owner(), f)
}

/// Runs `f` with `role` as current user, in a security-restricted
/// operation, and restores the caller's identity afterwards (also on error).
pub fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce(&mut SpiClient<'_>) -> R) -> R {
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) }
        }
    }

    let mut prev_user = pg_sys::InvalidOid;
    let mut prev_context = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut prev_user, &mut prev_context);
        pg_sys::SetUserIdAndSecContext(
            role,
            prev_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let _restore = Restore(prev_user, prev_context);
    Spi::connect_mut(|client| f(client))
}

/// Runs `f` with setting `name` at `value`, as a function's `SET` clause
/// would, and restores the caller's value afterwards (an error restores it
/// with the (sub)transaction it aborts).
pub fn with_setting<R>(name: &std::ffi::CStr, value: &std::ffi::CStr, f: impl FnOnce() -> R) -> R {
    let nest = unsafe { pg_sys::NewGUCNestLevel() };
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
    let result = f();
    unsafe { pg_sys::AtEOXact_GUC(true, nest) };
    result
}

/// The owner of the catalog's tables, `fluent_owner` (sql/privileges.sql).
fn catalog_owner() -> pg_sys::Oid {
    installed_catalog_owner()
        .unwrap_or_else(|| pgrx::error!("fluent's catalog is not installed in this database"))
}

/// Whether `role` is the catalog owner: fluent's own elevated code, which
/// administers with the rights of a DBA (it cannot log in and has no
/// members).
pub fn is_catalog_owner(role: pg_sys::Oid) -> bool {
    installed_catalog_owner() == Some(role)
}

fn installed_catalog_owner() -> Option<pg_sys::Oid> {
    let rel = catalog_relid(c"workspaces")?;
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as _,
            pg_sys::Datum::from(rel),
        );
        if tuple.is_null() {
            pgrx::error!("cache lookup failed for relation {rel:?}");
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        Some(owner)
    }
}

thread_local! {
    /// Schema `fluent`'s OID as last looked up (`Some(None)`: not there);
    /// `None` until it is looked up again. Every statement asks for it (the
    /// commit gate's lock tag), so it is kept as PostgreSQL keeps its own
    /// lookups: until a change to `pg_namespace` is announced.
    static NAMESPACE: Cell<Option<Option<pg_sys::Oid>>> = const { Cell::new(None) };
    /// Bumped by every such announcement, so that a lookup that took one in
    /// while it ran does not keep what it found.
    static NAMESPACE_CHANGES: Cell<u64> = const { Cell::new(0) };
}

/// Registers the invalidation callback; called once from `_PG_init`.
pub fn init() {
    unsafe {
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as i32,
            Some(forget_namespace),
            pg_sys::Datum::from(0),
        );
    }
}

/// A schema was created, renamed or dropped (in this backend at its next
/// command, in another at the next statement here), or the caches were
/// reset: only forget, no catalog access is allowed here.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn forget_namespace(
    _arg: pg_sys::Datum,
    _cache: std::ffi::c_int,
    _hash: u32,
) {
    NAMESPACE.set(None);
    NAMESPACE_CHANGES.set(NAMESPACE_CHANGES.get() + 1);
}

/// The OID of schema `fluent`, if the extension is installed in this
/// database.
pub fn catalog_namespace() -> Option<pg_sys::Oid> {
    if let Some(known) = NAMESPACE.get() {
        return known;
    }
    // The lookup may take in invalidation messages.
    let changes = NAMESPACE_CHANGES.get();
    let nsp = unsafe { pg_sys::get_namespace_oid(CATALOG_SCHEMA.as_ptr(), true) };
    let found = (nsp != pg_sys::InvalidOid).then_some(nsp);
    if NAMESPACE_CHANGES.get() == changes {
        NAMESPACE.set(Some(found));
    }
    found
}

/// Whether `nsp` is schema `fluent`.
pub fn in_catalog_namespace(nsp: pg_sys::Oid) -> bool {
    catalog_namespace() == Some(nsp)
}

/// Whether relation `rel` lives in schema `fluent`.
pub fn in_catalog_schema(rel: pg_sys::Oid) -> bool {
    catalog_namespace().is_some_and(|nsp| unsafe { pg_sys::get_rel_namespace(rel) } == nsp)
}

/// The OID of relation `name` in schema `fluent`, if the extension is
/// installed in this database.
pub fn catalog_relid(name: &std::ffi::CStr) -> Option<pg_sys::Oid> {
    let nsp = catalog_namespace()?;
    unsafe {
        let rel = pg_sys::get_relname_relid(name.as_ptr(), nsp);
        (rel != pg_sys::InvalidOid).then_some(rel)
    }
}

/// The kept plan of `sql` for the types of `args`, prepared on first use in
/// this backend. A plan is for its argument types: the audit trigger passes
/// the rows of every catalog table to one query, each table's of its own
/// type, and a type dropped with the extension must not stay in a plan (an
/// extension created again gets plans of its own; with the old types every
/// catalog write of the session failed). (The map is not borrowed while a
/// plan runs: a plan may fire a trigger that runs another catalog query.)
fn kept_plan(
    client: &SpiClient<'_>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> Rc<OwnedPreparedStatement> {
    let prepared_for = |kept: &KeptPlan| {
        kept.types.len() == args.len() && kept.types.iter().zip(args).all(|(t, a)| *t == a.oid())
    };
    let known = PLANS.with_borrow(|p| {
        p.get(sql)
            .and_then(|kept| kept.iter().find(|k| prepared_for(k)))
            .map(|k| k.plan.clone())
    });
    if let Some(plan) = known {
        return plan;
    }
    let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
    let plan = Rc::new(
        client
            .prepare(sql, &types)
            .unwrap_or_else(|e| pgrx::error!("fluent catalog query failed: {e}"))
            .keep(),
    );
    PLANS.with_borrow_mut(|p| {
        p.entry(sql).or_default().push(KeptPlan {
            types: args.iter().map(|a| a.oid()).collect(),
            plan: plan.clone(),
        })
    });
    plan
}

/// Reads the catalog with `sql` (through its kept plan).
pub fn select<'conn>(
    client: &SpiClient<'conn>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> SpiTupleTable<'conn> {
    let plan = kept_plan(client, sql, args);
    client
        .select(&*plan, None, args)
        .unwrap_or_else(|e| pgrx::error!("fluent catalog query failed: {e}"))
}

/// Reads the catalog with `sql` through its kept plan's generic plan: for a
/// query run very often whose generic plan is as good as a custom one but
/// which PostgreSQL's cost comparison would plan afresh at every run (its
/// custom plans look cheaper because their estimates see the arguments).
pub fn select_generic<'conn>(
    client: &SpiClient<'conn>,
    sql: &'static str,
    args: &[DatumWithOid<'_>],
) -> SpiTupleTable<'conn> {
    struct Restore(std::ffi::c_int);
    impl Drop for Restore {
        fn drop(&mut self) {
            unsafe { pg_sys::plan_cache_mode = self.0 }
        }
    }
    // The setting is read when the plan cache chooses between its plans,
    // not kept with them: set for this execution only, restored also on error.
    let _restore = Restore(unsafe { pg_sys::plan_cache_mode });
    unsafe {
        pg_sys::plan_cache_mode =
            pg_sys::PlanCacheMode::PLAN_CACHE_MODE_FORCE_GENERIC_PLAN as std::ffi::c_int
    };
    select(client, sql, args)
}

/// Writes the catalog with `sql` (through its kept plan).
pub fn update<'conn>(client: &mut SpiClient<'conn>, sql: &'static str, args: &[DatumWithOid<'_>]) {
    let plan = kept_plan(client, sql, args);
    client
        .update(&*plan, None, args)
        .unwrap_or_else(|e| pgrx::error!("fluent could not write its catalog: {e}"));
}

/// Column `ordinal` (1-based) of a catalog row.
pub fn column<T: FromDatum + IntoDatum>(
    row: &pgrx::spi::SpiHeapTupleData<'_>,
    ordinal: usize,
) -> Option<T> {
    row.get::<T>(ordinal)
        .unwrap_or_else(|e| pgrx::error!("fluent catalog row is malformed: {e}"))
}
