//! One user's holdings read by index probes, without the executor: the
//! first check of a user costs what `fluent._load_user` costs in index
//! lookups, not a query's start and end.
//!
//! It reads what `fluent._load_user` (sql/loaders.sql) returns, from the same
//! indexes (`users (user_key)`, `grants` and `overrides` by `(workspace_id,
//! user_id)`), through the snapshot the running statement reads with, as
//! the kept-plan query does in a transaction that has written nothing; the
//! cache falls back to that query in one that has. Only built-in
//! comparisons run (text and integer equality): no code a user controls.
//!
//! The indexes are used only while they are what the catalog declares (valid
//! btrees on those columns, neither partial nor on expressions); otherwise
//! the query reads instead. They are looked up again whenever their tables'
//! definitions change: a `REINDEX CONCURRENTLY` gives an index a new OID.

use std::cell::RefCell;
use std::ffi::CStr;

use pgrx::pg_sys;

use crate::hashing::FastMap;
use crate::loaders::{UserHoldings, WorkspaceModel};
use crate::owner;
use crate::scope::Scope;

/// The relations read and the attribute numbers of the columns used,
/// resolved once per installation (keyed by the users table's OID).
#[derive(Clone, Copy)]
struct Layout {
    users: pg_sys::Oid,
    users_by_key: pg_sys::Oid,
    grants: pg_sys::Oid,
    grants_by_user: pg_sys::Oid,
    overrides: pg_sys::Oid,
    overrides_by_user: pg_sys::Oid,
    user_key: i16,
    /// The collation `users (user_key)` is ordered by.
    key_collation: pg_sys::Oid,
    user_id: i16,
    status: i16,
    grant_workspace: i16,
    grant_user: i16,
    grant_role: i16,
    grant_until: i16,
    override_workspace: i16,
    override_user: i16,
    override_action: i16,
    override_scope: i16,
    override_set_by: i16,
    override_until: i16,
}

thread_local! {
    static LAYOUT: RefCell<Option<Layout>> = const { RefCell::new(None) };
    /// Enum value OID -> label (user statuses and scopes).
    static LABELS: RefCell<FastMap<u32, String>> = RefCell::new(FastMap::default());
}

/// Registers the invalidation callback; called once from `_PG_init`.
pub fn init() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Only forget: no catalog access is allowed here.
    LAYOUT.with_borrow_mut(|l| {
        if l.is_some_and(|l| {
            relid == pg_sys::InvalidOid || [l.users, l.grants, l.overrides].contains(&relid)
        }) {
            *l = None;
        }
    });
}

/// Whether `index` is a valid btree on `table`'s columns `columns` first,
/// neither partial nor on expressions: one that holds every row by them.
fn btree_on(index: pg_sys::Oid, table: pg_sys::Oid, columns: &[i16]) -> bool {
    unsafe {
        let class = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as _,
            pg_sys::Datum::from(index),
        );
        if class.is_null() {
            return false;
        }
        let btree = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(class)).relam
            == pg_sys::BTREE_AM_OID;
        pg_sys::ReleaseSysCache(class);
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::INDEXRELID as _,
            pg_sys::Datum::from(index),
        );
        if tuple.is_null() {
            return false;
        }
        let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_index>(tuple);
        let keys = (*form).indkey.values.as_slice(columns.len());
        let usable = btree
            && (*form).indrelid == table
            && (*form).indisvalid
            && (*form).indisready
            && (*form).indislive
            && (*form).indnatts as usize >= columns.len()
            && keys == columns
            && pg_sys::heap_attisnull(
                tuple,
                pg_sys::Anum_pg_index_indpred as _,
                std::ptr::null_mut(),
            )
            && pg_sys::heap_attisnull(
                tuple,
                pg_sys::Anum_pg_index_indexprs as _,
                std::ptr::null_mut(),
            );
        pg_sys::ReleaseSysCache(tuple);
        usable
    }
}

fn layout() -> Option<Layout> {
    if let Some(layout) = LAYOUT.with_borrow(|l| *l) {
        return Some(layout);
    }
    let users = owner::catalog_relid(c"users")?;
    let attnum = |rel: pg_sys::Oid, name: &CStr| -> Option<i16> {
        let n = unsafe { pg_sys::get_attnum(rel, name.as_ptr()) };
        (n > 0).then_some(n)
    };
    let user_key = attnum(users, c"user_key")?;
    let (mut typid, mut typmod, mut key_collation) = (pg_sys::InvalidOid, 0, pg_sys::InvalidOid);
    unsafe {
        pg_sys::get_atttypetypmodcoll(users, user_key, &mut typid, &mut typmod, &mut key_collation)
    };
    let grants = owner::catalog_relid(c"grants")?;
    let overrides = owner::catalog_relid(c"overrides")?;
    let layout = Layout {
        users,
        users_by_key: owner::catalog_relid(c"users_user_key_key")?,
        grants,
        grants_by_user: owner::catalog_relid(c"grants_workspace_user_idx")?,
        overrides,
        overrides_by_user: owner::catalog_relid(c"overrides_workspace_user_idx")?,
        user_key,
        key_collation,
        user_id: attnum(users, c"user_id")?,
        status: attnum(users, c"status")?,
        grant_workspace: attnum(grants, c"workspace_id")?,
        grant_user: attnum(grants, c"user_id")?,
        grant_role: attnum(grants, c"role_id")?,
        grant_until: attnum(grants, c"valid_until")?,
        override_workspace: attnum(overrides, c"workspace_id")?,
        override_user: attnum(overrides, c"user_id")?,
        override_action: attnum(overrides, c"action_id")?,
        override_scope: attnum(overrides, c"scope")?,
        override_set_by: attnum(overrides, c"set_by")?,
        override_until: attnum(overrides, c"valid_until")?,
    };
    let usable = btree_on(layout.users_by_key, users, &[layout.user_key])
        && btree_on(
            layout.grants_by_user,
            grants,
            &[layout.grant_workspace, layout.grant_user],
        )
        && btree_on(
            layout.overrides_by_user,
            overrides,
            &[layout.override_workspace, layout.override_user],
        );
    if !usable {
        return None;
    }
    LAYOUT.with_borrow_mut(|l| *l = Some(layout));
    Some(layout)
}

/// An index scan of `rel` by equality on heap columns `keys`, each with its
/// equality function and collation; `visit` sees every visible tuple.
unsafe fn scan(
    rel: pg_sys::Oid,
    index: pg_sys::Oid,
    snapshot: pg_sys::Snapshot,
    keys: &[(i16, u32, pg_sys::Oid, pg_sys::Datum)],
    mut visit: impl FnMut(pg_sys::HeapTuple, pg_sys::TupleDesc),
) {
    let relation = pg_sys::table_open(rel, pg_sys::AccessShareLock as _);
    let desc = (*relation).rd_att;
    let mut scankeys: Vec<pg_sys::ScanKeyData> = vec![std::mem::zeroed(); keys.len()];
    for (key, &(attnum, equal, collation, value)) in scankeys.iter_mut().zip(keys) {
        pg_sys::ScanKeyInit(
            key,
            attnum,
            pg_sys::BTEqualStrategyNumber as _,
            equal.into(),
            value,
        );
        // The index orders a text column by the column's collation.
        key.sk_collation = collation;
    }
    let scan = pg_sys::systable_beginscan(
        relation,
        index,
        true,
        snapshot,
        keys.len() as _,
        scankeys.as_mut_ptr(),
    );
    loop {
        let tuple = pg_sys::systable_getnext(scan);
        if tuple.is_null() {
            break;
        }
        visit(tuple, desc);
    }
    pg_sys::systable_endscan(scan);
    // The lock is kept until the transaction ends, as a query's would be.
    pg_sys::table_close(relation, pg_sys::NoLock as _);
}

unsafe fn attribute(
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    attnum: i16,
) -> Option<pg_sys::Datum> {
    let mut null = false;
    let value = pg_sys::heap_getattr(tuple, attnum as _, desc, &mut null);
    (!null).then_some(value)
}

/// The label of an enum value.
fn label(value: pg_sys::Datum) -> String {
    let oid = value.value() as u32;
    if let Some(label) = LABELS.with_borrow(|l| l.get(&oid).cloned()) {
        return label;
    }
    let label = unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::ENUMOID as _, value);
        if tuple.is_null() {
            pgrx::error!("cache lookup failed for enum value {oid}");
        }
        let row = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_enum>(tuple);
        let label = CStr::from_ptr((*row).enumlabel.data.as_ptr())
            .to_string_lossy()
            .into_owned();
        pg_sys::ReleaseSysCache(tuple);
        label
    };
    LABELS.with_borrow_mut(|l| l.insert(oid, label.clone()));
    label
}

/// Whether a grant or override valid until `until` counts now (the
/// transaction's start, as `now()` in `fluent._in_force`).
fn in_force(until: Option<pg_sys::TimestampTz>, now: pg_sys::TimestampTz) -> bool {
    until.is_none_or(|until| until > now)
}

/// What `key` holds in the workspace (`None`: an unknown user), or
/// `Err(())` where it cannot be read here (no snapshot, or the catalog's
/// layout is not the one expected): the caller queries instead.
pub fn load_user(ws: &WorkspaceModel, key: &str) -> Result<Option<UserHoldings>, ()> {
    let layout = layout().ok_or(())?;
    unsafe {
        // The kept-plan query reads through the statement's snapshot only
        // while the transaction has written nothing; once it has, through a
        // new one that sees its own writes (SPI's read-only rule): leave
        // those loads, and any without a snapshot, to it.
        if !pg_sys::ActiveSnapshotSet()
            || pg_sys::GetCurrentTransactionIdIfAny() != pg_sys::InvalidTransactionId
        {
            return Err(());
        }
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetActiveSnapshot());
        let now = pg_sys::GetCurrentTransactionStartTimestamp();
        let key_text = pg_sys::cstring_to_text_with_len(key.as_ptr().cast(), key.len() as _);
        let mut user: Option<(i64, String)> = None;
        scan(
            layout.users,
            layout.users_by_key,
            snapshot,
            &[(
                layout.user_key,
                pg_sys::F_TEXTEQ,
                layout.key_collation,
                pg_sys::Datum::from(key_text),
            )],
            |tuple, desc| {
                let id = attribute(tuple, desc, layout.user_id).map_or(0, |d| d.value() as i64);
                let status = attribute(tuple, desc, layout.status).map(label);
                user = Some((id, status.unwrap_or_default()));
            },
        );
        let Some((user_id, status)) = user else {
            pg_sys::UnregisterSnapshot(snapshot);
            return Ok(None);
        };
        let by_user = |workspace: i16, user: i16| {
            [
                (
                    workspace,
                    pg_sys::F_INT4EQ,
                    pg_sys::InvalidOid,
                    pg_sys::Datum::from(ws.workspace_id),
                ),
                (
                    user,
                    pg_sys::F_INT8EQ,
                    pg_sys::InvalidOid,
                    pg_sys::Datum::from(user_id),
                ),
            ]
        };
        let mut holdings = UserHoldings {
            user_id,
            status,
            roles: Vec::new(),
            overrides: Vec::new(),
            override_set_by: Vec::new(),
            expires_at: None,
        };
        let mut expires = |until: Option<pg_sys::TimestampTz>| {
            if let Some(until) = until {
                holdings.expires_at = Some(holdings.expires_at.map_or(until, |e| e.min(until)));
            }
        };
        let mut roles = Vec::new();
        scan(
            layout.grants,
            layout.grants_by_user,
            snapshot,
            &by_user(layout.grant_workspace, layout.grant_user),
            |tuple, desc| {
                let until = attribute(tuple, desc, layout.grant_until).map(|d| d.value() as i64);
                if in_force(until, now) {
                    expires(until);
                    if let Some(role) = attribute(tuple, desc, layout.grant_role) {
                        roles.push(role.value() as i32);
                    }
                }
            },
        );
        let mut overrides: Vec<(i32, Scope, String)> = Vec::new();
        scan(
            layout.overrides,
            layout.overrides_by_user,
            snapshot,
            &by_user(layout.override_workspace, layout.override_user),
            |tuple, desc| {
                let until = attribute(tuple, desc, layout.override_until).map(|d| d.value() as i64);
                if !in_force(until, now) {
                    return;
                }
                expires(until);
                let action = attribute(tuple, desc, layout.override_action);
                let scope = attribute(tuple, desc, layout.override_scope)
                    .and_then(|d| label(d).parse::<Scope>().ok());
                let set_by = attribute(tuple, desc, layout.override_set_by).map(|d| {
                    CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>())
                        .to_string_lossy()
                        .into_owned()
                });
                if let (Some(action), Some(scope)) = (action, scope) {
                    overrides.push((action.value() as i32, scope, set_by.unwrap_or_default()));
                }
            },
        );
        pg_sys::UnregisterSnapshot(snapshot);
        roles.sort_unstable();
        holdings.roles = roles;
        overrides.sort_by_key(|o| o.0);
        for (action, scope, set_by) in overrides {
            if let Some(&slot) = ws.slot_of_action.get(&action) {
                holdings.overrides.push((slot, scope));
                holdings.override_set_by.push((slot, set_by));
            }
        }
        Ok(Some(holdings))
    }
}
