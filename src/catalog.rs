//! Reading the permission catalog into plain Rust values.
//!
//! Application roles have no privilege on the catalog tables, so the loader
//! switches to the catalog owner for the few queries it runs (the same way
//! PostgreSQL runs a SECURITY DEFINER function or a foreign-key check) and
//! switches back before returning, also on error. The queries themselves are
//! SQL-standard functions in `sql/loaders.sql`, bound at CREATE EXTENSION
//! time, so no search_path of the caller takes part.

use std::collections::HashMap;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::scope::{RolePermissions, Scope, Slot};

const CATALOG_SCHEMA: &std::ffi::CStr = c"fluent";
/// The catalog relation whose relcache invalidation means "the permission
/// catalog changed" (sent by the triggers in `sql/triggers.sql`).
const SENTINEL_TABLE: &std::ffi::CStr = c"workspaces";

/// The modules and actions of one workspace, numbered into slots.
#[derive(Debug, Default)]
pub struct WorkspaceModel {
    pub workspace_id: i32,
    /// module name -> action name -> slot
    pub modules: HashMap<String, HashMap<String, usize>>,
    pub slots: Vec<Slot>,
    /// catalog action_id -> slot
    pub slot_of_action: HashMap<i32, usize>,
}

/// What the catalog says about one user.
#[derive(Debug)]
pub struct UserRecord {
    pub user_id: i64,
    pub status: String,
}

/// OID of the relation used as the invalidation sentinel, if the extension
/// is installed in this database.
pub fn sentinel_relid() -> Option<pg_sys::Oid> {
    unsafe {
        let nsp = pg_sys::get_namespace_oid(CATALOG_SCHEMA.as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return None;
        }
        let rel = pg_sys::get_relname_relid(SENTINEL_TABLE.as_ptr(), nsp);
        (rel != pg_sys::InvalidOid).then_some(rel)
    }
}

/// Runs `f` with the catalog owner as current user, in a security-restricted
/// operation, and restores the caller's identity afterwards.
fn as_catalog_owner<R>(f: impl FnOnce(&SpiClient<'_>) -> R) -> R {
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) }
        }
    }

    let owner = catalog_owner();
    let mut prev_user = pg_sys::InvalidOid;
    let mut prev_context = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut prev_user, &mut prev_context);
        pg_sys::SetUserIdAndSecContext(
            owner,
            prev_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let _restore = Restore(prev_user, prev_context);
    Spi::connect(|client| f(&client))
}

/// The owner of schema `fluent`: the role that created the extension.
fn catalog_owner() -> pg_sys::Oid {
    unsafe {
        let nsp = pg_sys::get_namespace_oid(CATALOG_SCHEMA.as_ptr(), false);
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as _,
            pg_sys::Datum::from(nsp),
        );
        if tuple.is_null() {
            pgrx::error!("cache lookup failed for namespace {nsp:?}");
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_namespace>(tuple)).nspowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}

fn query<'a>(
    client: &SpiClient<'a>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> pgrx::spi::SpiTupleTable<'a> {
    client.select(sql, None, args).unwrap_or_else(|e| pgrx::error!("fluent catalog query failed: {e}"))
}

fn column<T: FromDatum + IntoDatum>(row: &pgrx::spi::SpiHeapTupleData<'_>, ordinal: usize) -> Option<T> {
    row.get::<T>(ordinal).unwrap_or_else(|e| pgrx::error!("fluent catalog row is malformed: {e}"))
}

/// Loads the modules and actions of a workspace; `None` if it does not exist.
pub fn load_workspace(name: &str) -> Option<WorkspaceModel> {
    as_catalog_owner(|client| {
        let rows = query(client, "SELECT * FROM fluent._load_workspace($1)", &[name.into()]);
        let mut model: Option<WorkspaceModel> = None;
        // (module_id, parent_id, action name, slot), to link parents once all are known.
        let mut pending = Vec::new();
        for row in rows {
            let ws = model.get_or_insert_with(|| WorkspaceModel {
                workspace_id: column::<i32>(&row, 1).unwrap_or_default(),
                ..Default::default()
            });
            let (Some(module_id), Some(module)) = (column::<i32>(&row, 2), column::<String>(&row, 3)) else {
                continue;
            };
            let (Some(action_id), Some(action)) = (column::<i32>(&row, 5), column::<String>(&row, 6)) else {
                ws.modules.entry(module).or_default();
                continue;
            };
            let slot = ws.slots.len();
            ws.slots.push(Slot { inherits_from: None });
            ws.slot_of_action.insert(action_id, slot);
            pending.push((module_id, column::<i32>(&row, 4), action.clone(), slot));
            ws.modules.entry(module).or_default().insert(action, slot);
        }
        let mut ws = model?;
        let parent_of: HashMap<i32, Option<i32>> = pending.iter().map(|(m, p, _, _)| (*m, *p)).collect();
        let slot_of: HashMap<(i32, &str), usize> =
            pending.iter().map(|(m, _, a, s)| ((*m, a.as_str()), *s)).collect();
        for (module_id, _, action, slot) in &pending {
            // Nearest ancestor that declares the same action.
            let mut ancestor = parent_of.get(module_id).copied().flatten();
            let mut hops = 0;
            while let Some(a) = ancestor {
                if let Some(&s) = slot_of.get(&(a, action.as_str())) {
                    ws.slots[*slot].inherits_from = Some(s);
                    break;
                }
                hops += 1;
                if hops > parent_of.len() {
                    break;
                }
                ancestor = parent_of.get(&a).copied().flatten();
            }
        }
        Some(ws)
    })
}

/// Looks a user up by key.
pub fn load_user(key: &str) -> Option<UserRecord> {
    as_catalog_owner(|client| {
        let rows = query(client, "SELECT * FROM fluent._load_user($1)", &[key.into()]);
        rows.into_iter().next().map(|row| UserRecord {
            user_id: column(&row, 1).unwrap_or_default(),
            status: column(&row, 2).unwrap_or_default(),
        })
    })
}

/// The explicit permissions of every role the user holds in the workspace.
pub fn load_role_permissions(ws: &WorkspaceModel, user_id: i64) -> Vec<RolePermissions> {
    as_catalog_owner(|client| {
        let rows = query(
            client,
            "SELECT * FROM fluent._load_grants($1, $2)",
            &[ws.workspace_id.into(), user_id.into()],
        );
        let mut roles: Vec<(i32, RolePermissions)> = Vec::new();
        for row in rows {
            let role_id: i32 = column(&row, 1).unwrap_or_default();
            if roles.last().map(|(id, _)| *id) != Some(role_id) {
                roles.push((role_id, RolePermissions::new(ws.slots.len())));
            }
            let (Some(action_id), Some(scope)) = (column::<i32>(&row, 2), column::<String>(&row, 3)) else {
                continue;
            };
            if let (Some(&slot), Ok(scope)) = (ws.slot_of_action.get(&action_id), scope.parse::<Scope>()) {
                roles.last_mut().expect("pushed above").1.scopes[slot] = Some(scope);
            }
        }
        roles.into_iter().map(|(_, perms)| perms).collect()
    })
}

/// Keys of the users whose rows scope `team` adds for this user.
pub fn load_team(workspace_id: i32, user_id: i64) -> Vec<String> {
    as_catalog_owner(|client| {
        query(client, "SELECT * FROM fluent._load_team($1, $2)", &[workspace_id.into(), user_id.into()])
            .into_iter()
            .filter_map(|row| column::<String>(&row, 1))
            .collect()
    })
}
