//! fluent: role-based, row-level permissions enforced inside PostgreSQL.
//!
//! Modules, in layers: each imports only modules of the layers above it in
//! this list (`layers_run_one_way` below checks it), so that a change to a
//! lower layer never has to reason about a higher one.
//! 1. Foundations, importing nothing of fluent's but `error`:
//!    - `error`: every error raised from Rust and from SQL, with its SQLSTATE
//!    - `hashing`: the fast hasher of the cache's maps
//!    - `scope`: the one decision: scopes and their resolution over roles, module inheritance and item roles (pure logic)
//!    - `token`: verifying JSON Web Tokens (pure Rust)
//!    - `ddl`: what a DDL command did, for the event trigger that protects new children
//!    - `folds`: which plans folded the acting user's answers, and invalidating them
//!    - `trigger`: Rust trigger functions that refuse direct calls cleanly
//!    - `preload`: `fluent_preload`, the library name that loads the installed version
//!    - `unguarded`: PostgreSQL functions that cannot raise an error, called without pgrx's guard on per-statement paths
//! 2. Reading the catalog:
//!    - `owner`: running catalog queries as the catalog owner, through kept plans
//!    - `citus`: on Citus, the catalog bus, the identity carrier and the `SET`s Citus would propagate (`sql/citus.sql`)
//!    - `placements`: on Citus, the SQL that reads a table's rows on this node's own placements, for policies
//!    - `loaders`: reading the catalog (`sql/loaders.sql`) into Rust values
//!    - `rows`: reading the row `fluent_who_can` asks about without running its owner's code
//!    - `placed_rows`: on Citus, reading that row on the nodes holding the table's placements, by signed requests
//!    - `shard_checks`: on Citus, asking each node whether its shards still carry their tables' row security, policies and item role triggers
//!    - `node_audit`: on Citus, reading the audit logs the workers hold (assignments on Citus tables)
//!    - `probes`: one user's holdings by index probes, without the executor (a first check)
//! 3. State:
//!    - `gucs`: the settings that carry the acting user and workspace
//!    - `gate`: the commit gate: no statement starts between a catalog change becoming visible and its invalidation messages being sent
//!    - `cache`: the per-backend cache and its invalidation
//!    - `planning_snapshot`: a client's statement whose answers were folded runs under its planning snapshot when a change arrived in between
//!    - `kept_plans`: kept plans run again without a parse (a prepared statement bound again) take in the catalog's changes
//! 4. Who acts:
//!    - `identity`: `fluent_authenticate`, `fluent_set_user` and friends: tokens, trust and the seal
//!    - `delegation`: who administers (DBA or delegated end user), and who may read others' permissions
//! 5. Answers:
//!    - `checks`: `fluent_can`, `fluent_scope`, `fluent_visible_modules` and the row-level policy helpers
//!    - `plans`: folding the policy helpers into plans (planner support functions and hooks)
//! 6. Readers and writers of the answers:
//!    - `explain`: `fluent_explain`, the facts behind one decision
//!    - `reports`: the rows of the permission matrix view, from the same decision
//!    - `effective`: the rows of the effective permissions view, decided once per profile, and the planner hook that narrows it to a filtered user or module
//!    - `who_can`: `fluent_who_can`, every user who can act on one row
//!    - `items`: the item roles' assignment triggers and helpers
//!    - `audit`: the trigger that writes every catalog change to `fluent.audit_log`
//!
//! Administration, templates, reporting views and `fluent_protect` are SQL
//! and PL/pgSQL in `sql/`.

use pgrx::prelude::*;

mod audit;
mod cache;
mod checks;
mod citus;
mod ddl;
mod delegation;
mod effective;
mod error;
mod explain;
mod folds;
mod gate;
mod gucs;
mod hashing;
mod identity;
mod items;
mod kept_plans;
mod loaders;
mod node_audit;
mod owner;
mod placed_rows;
mod placements;
mod planning_snapshot;
mod plans;
mod preload;
mod probes;
mod reports;
mod rows;
mod scope;
mod shard_checks;
mod token;
mod trigger;
mod unguarded;
mod who_can;

#[cfg(test)]
mod layers;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
extension_sql_file!(
    "../sql/loaders.sql",
    name = "loaders",
    requires = ["catalog"]
);
extension_sql_file!(
    "../sql/triggers.sql",
    name = "triggers",
    requires = [
        "loaders",
        checks::fluent::rls_all,
        identity::fluent::_current_role_is_superuser,
        audit::fluent::_restoring,
        delegation::fluent::_actor_role
    ]
);
extension_sql_file!(
    "../sql/admin.sql",
    name = "admin",
    requires = [
        "triggers",
        identity::fluent::_workspace_name,
        error::fluent::_raise,
        identity::fluent::_acting_user,
        identity::fluent::_require_admin,
        delegation::fluent::_caller,
        delegation::fluent::_take_caller,
        delegation::fluent::_identity_caller,
        delegation::fluent::_caller_chooses_identity,
        delegation::fluent::_is_dba,
        delegation::fluent::_holds_right,
        delegation::fluent::_scope_of,
        reports::fluent::_role_scopes,
        reports::fluent::_inheriting_actions
    ]
);
extension_sql_file!(
    "../sql/templates.sql",
    name = "templates",
    requires = ["admin"]
);
extension_sql_file!(
    "../sql/views.sql",
    name = "views",
    requires = [
        "templates",
        reports::fluent::_permission_matrix,
        effective::fluent::_effective_holders,
        effective::fluent::_effective_profiles
    ]
);
extension_sql_file!(
    "../sql/citus.sql",
    name = "citus",
    requires = [
        "views",
        citus::fluent::_citus_set_applying,
        citus::fluent::_citus_applying,
        citus::fluent::_citus_bus_active,
        citus::fluent::_citus_send_rows,
        placements::fluent::_local_rows_sql,
        node_audit::fluent::_citus_node_audit_logs
    ]
);
extension_sql_file!(
    "../sql/rls.sql",
    name = "rls",
    requires = [
        "citus",
        checks::fluent::rls_all,
        checks::fluent::rls_own,
        checks::fluent::rls_users,
        checks::fluent::rls_any,
        checks::fluent::rls_reaches,
        checks::fluent::rls_user_key,
        checks::fluent::rls_user_id,
        checks::fluent::rls_user_uuid,
        checks::fluent::rls_owner_keys,
        checks::fluent::rls_owner_ids,
        checks::fluent::rls_owner_uuids,
        checks::fluent::rls_workspace_keys,
        checks::fluent::rls_workspace_ids,
        checks::fluent::rls_workspace_uuids,
        checks::fluent::rls_items,
        checks::fluent::rls_item_roles,
        checks::fluent::rls_user_teams,
        checks::fluent::rls_assignable_item_roles,
        who_can::fluent::_who_can,
        plans::fluent::rls_local_rows
    ]
);
extension_sql_file!("../sql/columns.sql", name = "columns", requires = ["rls"]);
extension_sql_file!(
    "../sql/items.sql",
    name = "items",
    requires = [
        "columns",
        items::fluent::_assigned_item_actions,
        items::fluent::_open_item_actions
    ]
);
extension_sql_file!(
    "../sql/testing.sql",
    name = "testing",
    requires = ["items", identity::fluent::_session_user_is_dba]
);
extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Loaded as `fluent_preload`: only load the version the database uses.
    if preload::loaded_as_preloader() {
        preload::load_installed_version();
        return;
    }
    // Each version is its own library; two in one backend would define the
    // same settings and hooks twice.
    if gucs::defined_by_another_library() {
        error::FluentError::OtherVersionLoaded.report();
    }
    gucs::init();
    owner::init();
    cache::init();
    kept_plans::init();
    probes::init();
    identity::init();
    plans::init();
    effective::init();
    unsafe {
        PREVIOUS_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        pg_sys::RegisterXactCallback(Some(transaction_ended), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subtransaction_ended), std::ptr::null_mut());
    }
}

static mut PREVIOUS_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

/// One utility hook for the modules that look at a utility statement before
/// it runs: Citus's checks (which may skip it), then the open scans.
// The hook's signature is PostgreSQL's.
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    if !citus::before_utility(pstmt, query_string) {
        return;
    }
    probes::before_utility((*pstmt).utilityStmt);
    match PREVIOUS_PROCESS_UTILITY {
        Some(previous) => previous(
            pstmt,
            query_string,
            read_only_tree,
            context,
            params,
            query_env,
            dest,
            qc,
        ),
        None => pg_sys::standard_ProcessUtility(
            pstmt,
            query_string,
            read_only_tree,
            context,
            params,
            query_env,
            dest,
            qc,
        ),
    }
}

/// One end-of-transaction callback for the modules that keep per-transaction
/// state.
#[pg_guard]
unsafe extern "C-unwind" fn transaction_ended(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    let committed = match event {
        XACT_EVENT_PRE_COMMIT => {
            probes::transaction_ending();
            planning_snapshot::release();
            return gate::pre_commit();
        }
        XACT_EVENT_PARALLEL_PRE_COMMIT | XACT_EVENT_PRE_PREPARE => {
            planning_snapshot::release();
            return probes::transaction_ending();
        }
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PREPARE => true,
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => false,
        _ => return,
    };
    // Closed before the transaction's resource owner is released.
    if committed {
        probes::transaction_ending();
    } else {
        probes::transaction_aborted();
        planning_snapshot::forget();
    }
    // A prepared transaction's catalog writes may yet be rolled back, and
    // ROLLBACK PREPARED sends no message: what this backend read of them
    // goes as after a rollback (COMMIT PREPARED sends the messages).
    cache::transaction_ended(committed && event != XACT_EVENT_PREPARE);
    folds::transaction_ended();
    identity::transaction_ended(committed);
    delegation::transaction_ended();
    citus::transaction_ended(true);
    gate::transaction_ended();
}

/// Rolling back to a savepoint may undo catalog writes the cache has read.
#[pg_guard]
unsafe extern "C-unwind" fn subtransaction_ended(
    event: pg_sys::SubXactEvent::Type,
    _mysubid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
            probes::subtransaction_aborted();
            cache::subtransaction_rolled_back();
            citus::transaction_ended(false);
            gate::subtransaction_ended(false);
        }
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => gate::subtransaction_ended(true),
        _ => {}
    }
}
