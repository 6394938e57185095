//! Reading the permission catalog into plain Rust values.
//!
//! Application roles have no privilege on the catalog tables, so the loader
//! switches to the catalog owner for the few queries it runs (the same way
//! PostgreSQL runs a SECURITY DEFINER function or a foreign-key check) and
//! switches back before returning, also on error. The queries themselves are
//! SQL-standard functions in `sql/loaders.sql`, bound at CREATE EXTENSION
//! time, so no search_path of the caller takes part.

use std::collections::HashMap;

use crate::hashing::FastMap;

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
    /// The workspace has sign-in roles: users must hold one to act.
    pub sign_in_required: bool,
    /// module name -> action name -> slot
    pub modules: FastMap<String, FastMap<String, usize>>,
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
fn as_catalog_owner<R>(f: impl FnOnce(&mut SpiClient<'_>) -> R) -> R {
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
    Spi::connect_mut(|client| f(client))
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
        let owner =
            (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_namespace>(tuple)).nspowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}

fn query<'a>(
    client: &SpiClient<'a>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> pgrx::spi::SpiTupleTable<'a> {
    client
        .select(sql, None, args)
        .unwrap_or_else(|e| pgrx::error!("fluent catalog query failed: {e}"))
}

fn column<T: FromDatum + IntoDatum>(
    row: &pgrx::spi::SpiHeapTupleData<'_>,
    ordinal: usize,
) -> Option<T> {
    row.get::<T>(ordinal)
        .unwrap_or_else(|e| pgrx::error!("fluent catalog row is malformed: {e}"))
}

/// Loads the modules and actions of a workspace; `None` if it does not exist.
pub fn load_workspace(name: &str) -> Option<WorkspaceModel> {
    as_catalog_owner(|client| {
        let rows = query(
            client,
            "SELECT * FROM fluent._load_workspace($1)",
            &[name.into()],
        );
        let mut model: Option<WorkspaceModel> = None;
        // module_id -> (parent_id, enabled), for every module.
        let mut modules: HashMap<i32, (Option<i32>, bool)> = HashMap::new();
        // (module_id, action name, slot), to link parents once all are known.
        let mut pending = Vec::new();
        for row in rows {
            let ws = model.get_or_insert_with(|| WorkspaceModel {
                workspace_id: column::<i32>(&row, 1).unwrap_or_default(),
                sign_in_required: column::<bool>(&row, 2).unwrap_or_default(),
                ..Default::default()
            });
            let (Some(module_id), Some(module)) =
                (column::<i32>(&row, 3), column::<String>(&row, 4))
            else {
                continue;
            };
            modules.insert(
                module_id,
                (
                    column::<i32>(&row, 5),
                    column::<bool>(&row, 6).unwrap_or(true),
                ),
            );
            let (Some(action_id), Some(action)) =
                (column::<i32>(&row, 7), column::<String>(&row, 8))
            else {
                ws.modules.entry(module).or_default();
                continue;
            };
            let slot = ws.slots.len();
            ws.slots.push(Slot {
                inherits_from: None,
                enabled: true,
            });
            ws.slot_of_action.insert(action_id, slot);
            pending.push((module_id, action.clone(), slot));
            ws.modules.entry(module).or_default().insert(action, slot);
        }
        let mut ws = model?;
        let parent = |m: i32| modules.get(&m).and_then(|(p, _)| *p);
        let slot_of: HashMap<(i32, &str), usize> = pending
            .iter()
            .map(|(m, a, s)| ((*m, a.as_str()), *s))
            .collect();
        for (module_id, action, slot) in &pending {
            // Module parents form a tree; the bound guards a corrupted catalog.
            let ancestors: Vec<i32> = std::iter::successors(parent(*module_id), |&a| parent(a))
                .take(modules.len())
                .collect();
            // Disabled when the module or any ancestor is.
            ws.slots[*slot].enabled = std::iter::once(*module_id)
                .chain(ancestors.iter().copied())
                .all(|m| modules.get(&m).is_none_or(|(_, enabled)| *enabled));
            // Nearest ancestor that declares the same action.
            ws.slots[*slot].inherits_from = ancestors
                .iter()
                .find_map(|&a| slot_of.get(&(a, action.as_str())).copied());
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

/// What the user holds in a workspace: the explicit permissions of each
/// role, their overrides, and whether a role lets them sign in.
pub struct Holdings {
    pub roles: Vec<RolePermissions>,
    pub overrides: RolePermissions,
    pub holds_sign_in_role: bool,
}

pub fn load_holdings(ws: &WorkspaceModel, user_id: i64) -> Holdings {
    let to_slot_scope = |action_id: Option<i32>, scope: Option<String>| {
        let slot = *ws.slot_of_action.get(&action_id?)?;
        Some((slot, scope?.parse::<Scope>().ok()?))
    };
    as_catalog_owner(|client| {
        let args = [ws.workspace_id.into(), user_id.into()];
        let mut holdings = Holdings {
            roles: Vec::new(),
            overrides: RolePermissions::new(ws.slots.len()),
            holds_sign_in_role: false,
        };
        let mut last_role = None;
        for row in query(client, "SELECT * FROM fluent._load_grants($1, $2)", &args) {
            let role_id: i32 = column(&row, 1).unwrap_or_default();
            if last_role != Some(role_id) {
                last_role = Some(role_id);
                holdings.roles.push(RolePermissions::new(ws.slots.len()));
                holdings.holds_sign_in_role |= column::<bool>(&row, 2).unwrap_or_default();
            }
            if let Some((slot, scope)) = to_slot_scope(column(&row, 3), column(&row, 4)) {
                holdings.roles.last_mut().expect("pushed above").scopes[slot] = Some(scope);
            }
        }
        for row in query(
            client,
            "SELECT * FROM fluent._load_overrides($1, $2)",
            &args,
        ) {
            if let Some((slot, scope)) = to_slot_scope(column(&row, 1), column(&row, 2)) {
                holdings.overrides.scopes[slot] = Some(scope);
            }
        }
        holdings
    })
}

/// Keys of the users whose rows scope `team` adds for this user.
pub fn load_team(workspace_id: i32, user_id: i64) -> Vec<String> {
    as_catalog_owner(|client| {
        query(
            client,
            "SELECT * FROM fluent._load_team($1, $2)",
            &[workspace_id.into(), user_id.into()],
        )
        .filter_map(|row| column::<String>(&row, 1))
        .collect()
    })
}

/// One row of fluent_explain(): step, fact, subject, scope, detail.
pub type ExplainFact = (i32, String, Option<String>, Option<String>, Option<String>);

/// The facts behind the decision on `module.action` for `user`, from
/// `fluent._explain` (sql/views.sql); module and action must exist.
pub fn explain_facts(workspace: &str, user: &str, module: &str, action: &str) -> Vec<ExplainFact> {
    as_catalog_owner(|client| {
        query(
            client,
            "SELECT step, fact, subject, scope::pg_catalog.text, detail FROM fluent._explain($1, $2, $3, $4)",
            &[workspace.into(), user.into(), module.into(), action.into()],
        )
        .map(|row| {
            (
                column(&row, 1).unwrap_or_default(),
                column(&row, 2).unwrap_or_default(),
                column(&row, 3),
                column(&row, 4),
                column(&row, 5),
            )
        })
        .collect()
    })
}

/// Appends an entry to `fluent.audit_log`. `before` and `after` are rows of
/// the changed table (its composite type is `row_type`).
pub fn record_audit(
    db_role: &str,
    acting_user: Option<&str>,
    table: &str,
    operation: &str,
    row_type: pg_sys::Oid,
    before: Option<pg_sys::Datum>,
    after: Option<pg_sys::Datum>,
) {
    let row = |datum: Option<pg_sys::Datum>| unsafe { DatumWithOid::new(datum, row_type) };
    as_catalog_owner(|client| {
        client
            .update(
                "SELECT fluent._audit_insert($1, $2, $3, $4, pg_catalog.to_jsonb($5), pg_catalog.to_jsonb($6))",
                None,
                &[db_role.into(), acting_user.into(), table.into(), operation.into(), row(before), row(after)],
            )
            .unwrap_or_else(|e| pgrx::error!("fluent could not write its audit trail: {e}"));
    })
}

/// The permissions that give each administrative right in a workspace, as
/// (right, module, action): holding the action at scope `all` gives the
/// right (`fluent.admin_rights`).
pub fn admin_right_actions(workspace: &str) -> Vec<(String, String, String)> {
    as_catalog_owner(|client| {
        query(
            client,
            "SELECT * FROM fluent._load_admin_rights($1)",
            &[workspace.into()],
        )
        .map(|row| {
            (
                column(&row, 1).unwrap_or_default(),
                column(&row, 2).unwrap_or_default(),
                column(&row, 3).unwrap_or_default(),
            )
        })
        .collect()
    })
}

/// Creates the user a verified token names (`fluent.unknown_subject =
/// create`) with the configured roles, attributed to `caller`.
pub fn create_user_from_token(user: &str, workspace: &str, roles: &[&str], caller: &str) {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    as_catalog_owner(|client| {
        client
            .update(
                "SELECT fluent._create_token_user($1, $2, $3, $4)",
                None,
                &[user.into(), workspace.into(), roles.into(), caller.into()],
            )
            .unwrap_or_else(|e| pgrx::error!("fluent could not create the token's user: {e}"));
    })
}

/// How tokens are verified: the row of `fluent.token_settings`.
pub struct TokenSettings {
    pub keys: Option<String>,
    pub audiences: Vec<String>,
    pub issuer: Option<String>,
    pub leeway: u64,
    pub user_claim: String,
    pub workspace_claim: Option<String>,
    /// Create an unknown subject (else refuse the token).
    pub create_unknown: bool,
    pub new_user_roles: Vec<String>,
}

pub fn load_token_settings() -> TokenSettings {
    as_catalog_owner(|client| {
        let rows = query(client, "SELECT * FROM fluent._load_token_settings()", &[]);
        let row = rows
            .into_iter()
            .next()
            .unwrap_or_else(|| pgrx::error!("fluent.token_settings has no row"));
        TokenSettings {
            keys: column(&row, 1),
            audiences: column(&row, 2).unwrap_or_default(),
            issuer: column(&row, 3),
            leeway: column::<i32>(&row, 4).unwrap_or_default().max(0) as u64,
            user_claim: column(&row, 5).unwrap_or_else(|| "sub".into()),
            workspace_claim: column(&row, 6),
            create_unknown: column::<String>(&row, 7).as_deref() == Some("create"),
            new_user_roles: column(&row, 8).unwrap_or_default(),
        }
    })
}
