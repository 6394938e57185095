//! Plans that follow the acting user.
//!
//! The policies `fluent_protect()` writes (sql/rls.sql) call helpers of the
//! acting user's reach (src/checks.rs) with constant module and action
//! names. A table with an owner column gets one call per policy,
//! `fluent.rls_reaches(module, action, owner)`; the others are made of the
//! tests `fluent.rls_all`, `rls_own`, `rls_users` and `rls_any` and of the
//! acting user's keys (`fluent.rls_user_key()`, `rls_owner_keys(...)`, and
//! their `_id`/`_uuid` forms). Each helper has a planner support function
//! that replaces the call, when a query is planned, with what it stands for
//! the acting user: scope `all` leaves no row filter at all; `own` leaves
//! `owner = 'ann'`, as if written by hand; `team` leaves `owner =
//! ANY(<keys>)`; `none` leaves a constant false, which the planner hook
//! below turns into reading nothing. The one call is replaced by that test
//! directly; the tests and keys fold to constants that the planner folds on.
//!
//! Such a plan is only right for the identity and catalog it was made with,
//! so the planner is told what it depends on, the way it records the
//! relations and functions a plan uses:
//! - the catalog: the sentinel relation joins the plan's `relationOids`, so
//!   the relcache invalidation a catalog change sends (src/cache.rs)
//!   invalidates the plan in every backend at the moment the cache drops;
//! - the identity: the folded function's support function joins the plan's
//!   `invalItems`. When `fluent.acting_user` or `fluent.workspace` changes
//!   (src/gucs.rs), or a transaction that may have folded stale answers ends
//!   (src/cache.rs), the plan cache's callbacks are run for exactly those
//!   functions, as if their definitions had changed: only plans that folded
//!   them are invalidated, and only when any were made since the last time.

use std::cell::RefCell;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::Internal;

use crate::cache;
use crate::checks;
use crate::checks::Reach;
use crate::citus;
use crate::error::FluentError;
use crate::folds;
use crate::kept_plans;
use crate::owner;
use crate::placements;
use crate::planning_snapshot;

thread_local! {
    /// (helper, its support function, the support function's hash).
    static SUPPORT: RefCell<Vec<(pg_sys::Oid, pg_sys::Oid, u32)>> = const { RefCell::new(Vec::new()) };
}

static mut PREVIOUS_PLANNER: pg_sys::planner_hook_type = None;

static mut PREVIOUS_SET_REL_PATHLIST: pg_sys::set_rel_pathlist_hook_type = None;

/// Installs the planner hook; called once from `_PG_init`, which may run in
/// the middle of planning the first protected query (the support functions
/// load the library): that is before any relation's paths are built, so
/// the hook already serves that query.
pub fn init() {
    unsafe {
        PREVIOUS_SET_REL_PATHLIST = pg_sys::set_rel_pathlist_hook;
        pg_sys::set_rel_pathlist_hook = Some(empty_when_denied);
        PREVIOUS_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(plan_with_one_identity);
        for cache in [
            pg_sys::SysCacheIdentifier::OPERNAMENSP,
            pg_sys::SysCacheIdentifier::CASTSOURCETARGET,
        ] {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as i32,
                Some(forget_equalities),
                pg_sys::Datum::from(0),
            );
        }
    }
}

/// Makes a plan, and refuses it if the identity changed while it was made
/// after answers of the previous one were folded into it: an IMMUTABLE
/// function run by the planner may call `fluent_reset_user()`. Such a plan
/// would hold the old identity's answers for the new one.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn plan_with_one_identity(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    citus::refuse_reading_own_changes(parse);
    // A client's statement is planned with the string the client sent (the
    // simple and the extended protocol, EXPLAIN); a statement run inside
    // another (a function's, fluent's own) with its own.
    let inside = query_string != pg_sys::debug_query_string;
    // A client's statement planned at Bind (a custom plan, or a kept one
    // planned again) was not parsed: it takes the catalog's changes in here,
    // before it folds (src/kept_plans.rs).
    if !inside {
        cache::take_in_changes_once_per_statement();
    }
    let (plan, planned) = folds::planning(inside, || match PREVIOUS_PLANNER {
        Some(previous) => previous(parse, query_string, cursor_options, bound_params),
        None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
    });
    if planned.mixed {
        crate::error::FluentError::IdentityChangedWhilePlanning.report();
    }
    if planned.folded && !plan.is_null() {
        keep_dependencies(plan, planning_snapshot::folded_stamp(planned.looks));
        if !inside {
            planning_snapshot::keep();
        }
    }
    plan
}

/// Makes sure a plan that folded the acting user's answers records what it
/// depends on. The support functions record it while the plan is made
/// (`depend_on_identity_and_catalog`), but a planner that runs before this
/// one and builds a plan of its own from the one PostgreSQL made (Citus's,
/// for a distributed query) may leave it out: such a plan would outlive the
/// identity and the catalog it was folded for. `stamp` is what it folded
/// from, compared as it starts (src/planning_snapshot.rs).
unsafe fn keep_dependencies(plan: *mut pg_sys::PlannedStmt, stamp: cache::AnswersStamp) {
    folds::with_folded_functions(|folded| {
        for &hash in folded {
            if !names_function((*plan).invalItems, hash) {
                let item = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlanInvalItem>())
                    .cast::<pg_sys::PlanInvalItem>();
                (*item).type_ = pg_sys::NodeTag::T_PlanInvalItem;
                (*item).cacheId = pg_sys::SysCacheIdentifier::PROCOID as i32;
                (*item).hashValue = hash;
                (*plan).invalItems = pg_sys::lappend((*plan).invalItems, item.cast());
            }
        }
    });
    if let Some(sentinel) = cache::sentinel_relid() {
        (*plan).relationOids = pg_sys::list_append_unique_oid((*plan).relationOids, sentinel);
        kept_plans::lock_when_bound(plan, sentinel, stamp);
    }
}

/// Whether a restriction is the constant false or NULL.
unsafe fn is_constant_false(rinfo: *mut pg_sys::RestrictInfo) -> bool {
    let clause = (*rinfo).clause.cast::<pg_sys::Node>();
    if clause.is_null() || (*clause).type_ != pg_sys::NodeTag::T_Const {
        return false;
    }
    let constant = clause.cast::<pg_sys::Const>();
    (*constant).constisnull || !bool::from_datum((*constant).constvalue, false).unwrap_or(false)
}

/// A policy folded to false (scope `none`) reads nothing: the relation gets
/// the empty plan PostgreSQL gives `WHERE false`. Without this, PostgreSQL 15
/// keeps a variable-free security qual as a filter and scans every row to
/// reject it whenever the query has conditions of its own.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn empty_when_denied(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    rte: *mut pg_sys::RangeTblEntry,
) {
    if let Some(previous) = PREVIOUS_SET_REL_PATHLIST {
        previous(root, rel, rti, rte);
    }
    let restrictions = (*rel).baserestrictinfo;
    if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION || restrictions.is_null() {
        return;
    }
    let denied = (0..(*restrictions).length as usize)
        .any(|i| is_constant_false((*(*restrictions).elements.add(i)).ptr_value.cast()));
    if !denied {
        return;
    }
    // What PostgreSQL's set_dummy_rel_pathlist() does.
    (*rel).rows = 0.0;
    (*(*rel).reltarget).width = 0;
    (*rel).pathlist = std::ptr::null_mut();
    (*rel).partial_pathlist = std::ptr::null_mut();
    let empty = pg_sys::create_append_path(
        std::ptr::null_mut(),
        rel,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        (*rel).lateral_relids,
        0,
        false,
        -1.0,
    );
    pg_sys::add_path(rel, empty.cast());
    pg_sys::set_cheapest(rel);
}

/// The text of a non-null text constant, borrowed from the plan tree.
unsafe fn text_constant<'a>(node: *mut pg_sys::Node) -> Option<&'a str> {
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Const {
        return None;
    }
    let constant = node.cast::<pg_sys::Const>();
    if (*constant).constisnull || (*constant).consttype != pg_sys::TEXTOID {
        return None;
    }
    <&str>::from_datum((*constant).constvalue, false)
}

/// The `N` arguments of a call, when it has `N` and all are text constants
/// (no allocation: this runs for every helper folded into every plan).
unsafe fn text_arguments<'a, const N: usize>(call: *mut pg_sys::FuncExpr) -> Option<[&'a str; N]> {
    let args = (*call).args;
    let count = if args.is_null() {
        0
    } else {
        (*args).length as usize
    };
    if count != N {
        return None;
    }
    let mut values = [""; N];
    for (i, value) in values.iter_mut().enumerate() {
        *value = text_constant((*(*args).elements.add(i)).ptr_value.cast::<pg_sys::Node>())?;
    }
    Some(values)
}

/// The two arguments of a call, when both are text constants.
unsafe fn module_and_action<'a>(call: *mut pg_sys::FuncExpr) -> Option<(&'a str, &'a str)> {
    let [module, action] = text_arguments(call)?;
    Some((module, action))
}

/// The three arguments of `rls_items` and `rls_item_roles`.
unsafe fn item_arguments<'a>(call: *mut pg_sys::FuncExpr) -> Option<(&'a str, &'a str, &'a str)> {
    let [module, action, item_module] = text_arguments(call)?;
    Some((module, action, item_module))
}

/// A `text[]` constant.
unsafe fn text_array_constant(values: Vec<String>) -> *mut pg_sys::Node {
    let datum = values.into_datum().unwrap_or(pg_sys::Datum::from(0));
    pg_sys::makeConst(
        pg_sys::TEXTARRAYOID,
        -1,
        pg_sys::DEFAULT_COLLATION_OID,
        -1,
        datum,
        false,
        false,
    )
    .cast()
}

/// Where the keys of an array constant come from: the users the acting
/// user reaches on a module's action, or the current workspace.
#[derive(Clone, Copy)]
enum Keys<'a> {
    Reached(&'a str, &'a str),
    Workspace,
}

/// An array constant of type `array_type` (`text[]`, `bigint[]` or
/// `uuid[]`) of the acting user's keys from `source`, and how many it holds;
/// None for another type.
unsafe fn keys_array(array_type: pg_sys::Oid, source: Keys) -> Option<(*mut pg_sys::Node, usize)> {
    fn keys<K: checks::KeyType>(source: Keys) -> Vec<K> {
        match source {
            Keys::Reached(module, action) => checks::reached_keys(module, action),
            Keys::Workspace => checks::workspace_keys(),
        }
    }
    fn counted<K: IntoDatum>(keys: Vec<K>) -> (Option<pg_sys::Datum>, usize) {
        let count = keys.len();
        (keys.into_datum(), count)
    }
    let ((datum, count), collation) = match array_type {
        pg_sys::TEXTARRAYOID => (
            counted(keys::<String>(source)),
            pg_sys::DEFAULT_COLLATION_OID,
        ),
        pg_sys::INT8ARRAYOID => (counted(keys::<i64>(source)), pg_sys::InvalidOid),
        pg_sys::UUIDARRAYOID => (counted(keys::<pgrx::Uuid>(source)), pg_sys::InvalidOid),
        _ => return None,
    };
    let constant = pg_sys::makeConst(
        array_type,
        -1,
        collation,
        -1,
        datum.unwrap_or(pg_sys::Datum::from(0)),
        datum.is_none(),
        false,
    );
    Some((constant.cast(), count))
}

/// An array constant of the keys a call of `rls_owner_keys`, `_ids` or
/// `_uuids` (two arguments) or of `rls_workspace_keys`, `_ids` or `_uuids`
/// (none) returns for the acting user, typed as the call is.
unsafe fn keys_constant(call: *mut pg_sys::FuncExpr) -> Option<*mut pg_sys::Node> {
    let source = match text_arguments::<2>(call) {
        Some([module, action]) => Keys::Reached(module, action),
        None => text_arguments::<0>(call).map(|_| Keys::Workspace)?,
    };
    keys_array((*call).funcresulttype, source).map(|(constant, _)| constant)
}

/// The acting user's key as a constant of type `key_type` (`text`, `bigint`
/// or `uuid`), NULL when nobody acts or the key is not of that type; None
/// for another type.
unsafe fn acting_key_constant(key_type: pg_sys::Oid) -> Option<*mut pg_sys::Node> {
    let (datum, len, byval, collation) = match key_type {
        pg_sys::TEXTOID => (
            checks::acting_key::<String>().into_datum(),
            -1,
            false,
            pg_sys::DEFAULT_COLLATION_OID,
        ),
        pg_sys::INT8OID => (
            checks::acting_key::<i64>().into_datum(),
            8,
            true,
            pg_sys::InvalidOid,
        ),
        pg_sys::UUIDOID => (
            checks::acting_key::<pgrx::Uuid>().into_datum(),
            16,
            false,
            pg_sys::InvalidOid,
        ),
        _ => return None,
    };
    let constant = pg_sys::makeConst(
        key_type,
        -1,
        collation,
        len,
        datum.unwrap_or(pg_sys::Datum::from(0)),
        datum.is_none(),
        byval,
    );
    Some(constant.cast())
}

/// The types of key an owner column of type `column_type` is compared with
/// (as `fluent._key_kind` takes them): the key's, its array's, and the
/// suffix of the `rls_owner_*` helper returning such keys.
fn key_types(column_type: pg_sys::Oid) -> Option<(pg_sys::Oid, pg_sys::Oid, &'static str)> {
    match column_type {
        pg_sys::TEXTOID | pg_sys::VARCHAROID => {
            Some((pg_sys::TEXTOID, pg_sys::TEXTARRAYOID, "keys"))
        }
        pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => {
            Some((pg_sys::INT8OID, pg_sys::INT8ARRAYOID, "ids"))
        }
        pg_sys::UUIDOID => Some((pg_sys::UUIDOID, pg_sys::UUIDARRAYOID, "uuids")),
        _ => None,
    }
}

/// `pg_catalog.=` for an owner column's type and a key's, as the parser
/// resolves it for `owner = key`: the operator, its function and the types
/// it takes.
#[derive(Clone, Copy)]
struct Equality {
    operator: pg_sys::Oid,
    function: pg_sys::Oid,
    left: pg_sys::Oid,
    right: pg_sys::Oid,
}

thread_local! {
    /// The equalities looked up, by (column type, key type): the lookup
    /// resolves the schema and searches the candidates, many times the cost
    /// of building the test. Forgotten when operators or casts change, as
    /// PostgreSQL's own cache of operator lookups is.
    static EQUALITIES: RefCell<Vec<(pg_sys::Oid, pg_sys::Oid, Equality)>> = const { RefCell::new(Vec::new()) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn forget_equalities(
    _arg: pg_sys::Datum,
    _cache: std::ffi::c_int,
    _hash: u32,
) {
    EQUALITIES.with_borrow_mut(Vec::clear);
}

/// The equality between `column_type` and `key_type` (see `Equality`).
unsafe fn equality(column_type: pg_sys::Oid, key_type: pg_sys::Oid) -> Equality {
    let known = EQUALITIES.with_borrow(|e| {
        e.iter()
            .find(|(c, k, _)| *c == column_type && *k == key_type)
            .map(|(_, _, found)| *found)
    });
    if let Some(found) = known {
        return found;
    }
    let mut name = std::ptr::null_mut();
    for part in [c"pg_catalog", c"="] {
        name = pg_sys::lappend(
            name,
            pg_sys::makeString(pg_sys::pstrdup(part.as_ptr())).cast(),
        );
    }
    let tuple = pg_sys::oper(std::ptr::null_mut(), name, column_type, key_type, false, -1);
    let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_operator>(tuple);
    let found = Equality {
        operator: (*form).oid,
        function: (*form).oprcode,
        left: (*form).oprleft,
        right: (*form).oprright,
    };
    pg_sys::ReleaseSysCache(tuple);
    EQUALITIES.with_borrow_mut(|e| e.push((column_type, key_type, found)));
    found
}

/// `owner = key`, or with `any` `owner = ANY (keys)`, as the parser makes
/// them from that text: `pg_catalog.=` for the column's type and the key's
/// (`key_type`; so an `integer` column keeps its index against a `bigint`
/// key), the column coerced to the operator's input as needed (`varchar` to
/// `text`), compared in the column's collation (a column's collation wins
/// over the constant's default).
unsafe fn equals(
    owner: *mut pg_sys::Node,
    key: *mut pg_sys::Node,
    key_type: pg_sys::Oid,
    any: bool,
) -> Option<*mut pg_sys::Node> {
    let column_type = pg_sys::exprType(owner);
    let equality = equality(column_type, key_type);
    // The keys are built of the key type: an operator taking another (none
    // of the built-in ones for the key types) is not one to build here.
    if equality.right != key_type {
        return None;
    }
    let left = if equality.left == column_type {
        owner
    } else {
        pg_sys::coerce_type(
            std::ptr::null_mut(),
            owner,
            column_type,
            equality.left,
            -1,
            pg_sys::CoercionContext::COERCION_IMPLICIT,
            pg_sys::CoercionForm::COERCE_IMPLICIT_CAST,
            -1,
        )
    };
    let collation = match pg_sys::exprCollation(left) {
        pg_sys::InvalidOid => pg_sys::exprCollation(key),
        collation => collation,
    };
    let args = pg_sys::list_make2_impl(
        pg_sys::NodeTag::T_List,
        pg_sys::ListCell {
            ptr_value: left.cast(),
        },
        pg_sys::ListCell {
            ptr_value: key.cast(),
        },
    );
    Some(if any {
        let test = pg_sys::palloc0(std::mem::size_of::<pg_sys::ScalarArrayOpExpr>())
            .cast::<pg_sys::ScalarArrayOpExpr>();
        (*test).xpr.type_ = pg_sys::NodeTag::T_ScalarArrayOpExpr;
        (*test).opno = equality.operator;
        (*test).opfuncid = equality.function;
        (*test).useOr = true;
        (*test).inputcollid = collation;
        (*test).args = args;
        (*test).location = -1;
        test.cast()
    } else {
        let test = pg_sys::palloc0(std::mem::size_of::<pg_sys::OpExpr>()).cast::<pg_sys::OpExpr>();
        (*test).xpr.type_ = pg_sys::NodeTag::T_OpExpr;
        (*test).opno = equality.operator;
        (*test).opfuncid = equality.function;
        (*test).opresulttype = pg_sys::BOOLOID;
        (*test).inputcollid = collation;
        (*test).args = args;
        (*test).location = -1;
        test.cast()
    })
}

/// At most this many reached keys go into a plan as an array constant,
/// which the planner estimates key by key; more are read by a sub-select,
/// an InitPlan, estimated as one. On a Citus node they are always spelled
/// out: Citus sends no sub-select to a shard.
const SPELLED_OUT_KEYS: usize = 100;

/// The test a call of `fluent.rls_reaches(module, action, owner)` stands
/// for, made for the acting user: true (scope `all`), `owner = <key>`
/// (their own rows), `owner = ANY (<keys>)` (the users a team scope
/// reaches: an array constant, or a sub-select for many), or false. The
/// plan then depends on the identity and the catalog, as a fold's does.
unsafe fn owner_test(
    root: *mut pg_sys::PlannerInfo,
    call: *mut pg_sys::FuncExpr,
) -> Option<*mut pg_sys::Node> {
    if (*(*call).args).length != 3 {
        return None;
    }
    let module = text_constant(argument(call, 0)?)?;
    let action = text_constant(argument(call, 1)?)?;
    let owner = argument(call, 2)?;
    let (key_type, array_type, suffix) = key_types(pg_sys::exprType(owner))?;
    let deny = || pg_sys::makeBoolConst(false, false).cast();
    Some(match checks::acting_reach(module, action) {
        Reach::Nothing => deny(),
        Reach::Everything => pg_sys::makeBoolConst(true, false).cast(),
        Reach::Own => {
            let key = acting_key_constant(key_type)?;
            if (*key.cast::<pg_sys::Const>()).constisnull {
                deny()
            } else {
                equals(owner, key, key_type, false)?
            }
        }
        Reach::Users => {
            let (keys, count) = keys_array(array_type, Keys::Reached(module, action))?;
            if count <= SPELLED_OUT_KEYS || citus::citus_active() {
                equals(owner, keys, key_type, true)?
            } else {
                let sql = format!(
                    "SELECT (SELECT fluent.rls_owner_{suffix}({}, {}))",
                    pgrx::spi::quote_literal(module),
                    pgrx::spi::quote_literal(action)
                );
                let keys = selected_expression(&sql)?;
                // The planner turns sub-selects into plans only in queries
                // it knows hold some; this one does now.
                (*(*root).parse).hasSubLinks = true;
                equals(owner, keys, key_type, true)?
            }
        }
    })
}

/// The one expression `sql` (`SELECT <expression>`) selects, parsed and
/// analyzed (row security included) with names resolving in pg_catalog and
/// fluent's own schema only, as a policy's did when it was created (its
/// relations and functions are qualified): an operator or function of the
/// querying role's search_path must not stand in for one of fluent's.
unsafe fn selected_expression(sql: &str) -> Option<*mut pg_sys::Node> {
    let sql = std::ffi::CString::new(sql).ok()?;
    let raw = pg_sys::pg_parse_query(sql.as_ptr());
    if raw.is_null() || (*raw).length != 1 {
        return None;
    }
    let queries = owner::with_setting(c"search_path", c"pg_catalog, pg_temp", || {
        pg_sys::pg_analyze_and_rewrite_fixedparams(
            (*(*raw).elements).ptr_value.cast(),
            sql.as_ptr(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        )
    });
    let query = (*(*queries).elements).ptr_value.cast::<pg_sys::Query>();
    let target = (*(*(*query).targetList).elements)
        .ptr_value
        .cast::<pg_sys::TargetEntry>();
    Some((*target).expr.cast())
}

/// A helper's support function and its syscache hash, looked up once per
/// helper and backend. Keyed by the helper's OID, so an extension dropped and
/// created again (new OIDs) is looked up afresh.
unsafe fn support_of(funcid: pg_sys::Oid) -> (pg_sys::Oid, u32) {
    if let Some(known) = SUPPORT.with_borrow(|s| s.iter().find(|(f, _, _)| *f == funcid).copied()) {
        return (known.1, known.2);
    }
    let support = pg_sys::get_func_support(funcid);
    let hash = pg_sys::GetSysCacheHashValue(
        pg_sys::SysCacheIdentifier::PROCOID as i32,
        pg_sys::Datum::from(support),
        pg_sys::Datum::from(0),
        pg_sys::Datum::from(0),
        pg_sys::Datum::from(0),
    );
    SUPPORT.with_borrow_mut(|s| s.push((funcid, support, hash)));
    (support, hash)
}

/// Records that the plan being made depends on the acting user and on the
/// catalog (once per plan: a policy folds several helpers, a query may
/// apply several policies).
/// `look` is the look at the change log whose cache the fold read
/// (src/folds.rs), `None` for a fold of the identity alone.
unsafe fn depend_on_identity_and_catalog(
    root: *mut pg_sys::PlannerInfo,
    funcid: pg_sys::Oid,
    look: Option<u64>,
) {
    // The plan depends on the identity through the support function:
    // unlike the helper, it appears in no query tree, so invalidating it
    // reaches the plans that folded the helper and nothing else (the
    // statements' parse trees are kept, only the plans are redone).
    let (support, hash) = support_of(funcid);
    let glob = (*root).glob;
    if !names_function((*glob).invalItems, hash) {
        pg_sys::record_plan_function_dependency(root, support);
    }
    if let Some(sentinel) = cache::sentinel_relid() {
        (*glob).relationOids = pg_sys::list_append_unique_oid((*glob).relationOids, sentinel);
    }
    folds::record_fold(hash, look);
}

/// Whether plan invalidation items `items` (a plan's, or one being made)
/// name the function whose syscache hash is `hash`.
unsafe fn names_function(items: *mut pg_sys::List, hash: u32) -> bool {
    if items.is_null() {
        return false;
    }
    (0..(*items).length as usize).any(|i| {
        let item = (*(*items).elements.add(i))
            .ptr_value
            .cast::<pg_sys::PlanInvalItem>();
        (*item).cacheId == pg_sys::SysCacheIdentifier::PROCOID as i32 && (*item).hashValue == hash
    })
}

/// Answers a `SupportRequestSimplify` for a call of one of fluent's helpers
/// with `replace(root, call)` when the call is planned as part of a query and
/// `replace` has a replacement, nothing otherwise (a null pointer: no change).
fn replace_call(
    request: Internal,
    replace: impl FnOnce(*mut pg_sys::PlannerInfo, *mut pg_sys::FuncExpr) -> Option<*mut pg_sys::Node>,
) -> Internal {
    let unchanged = Internal::from(Some(pg_sys::Datum::from(0)));
    let Some(request) = request.unwrap() else {
        return unchanged;
    };
    unsafe {
        let node = request.cast_mut_ptr::<pg_sys::Node>();
        if (*node).type_ != pg_sys::NodeTag::T_SupportRequestSimplify {
            return unchanged;
        }
        let request = node.cast::<pg_sys::SupportRequestSimplify>();
        let root = (*request).root;
        // Outside the planner proper (no PlannerInfo) there is no plan to
        // record the dependencies in, so the call stays a call.
        if root.is_null() || (*root).glob.is_null() {
            return unchanged;
        }
        match replace(root, (*request).fcall) {
            Some(replacement) => Internal::from(Some(pg_sys::Datum::from(replacement))),
            None => unchanged,
        }
    }
}

/// Folds a call of one of the policy helpers to `fold(call)`, a constant of
/// the acting user's answers, and records what the plan then depends on.
fn simplify(
    request: Internal,
    fold: impl FnOnce(*mut pg_sys::FuncExpr) -> Option<*mut pg_sys::Node>,
) -> Internal {
    simplify_reading(request, true, fold)
}

/// `simplify`, for a helper whose answer reads the cache (`reads_cache`) or
/// the identity alone (the acting user's key).
fn simplify_reading(
    request: Internal,
    reads_cache: bool,
    fold: impl FnOnce(*mut pg_sys::FuncExpr) -> Option<*mut pg_sys::Node>,
) -> Internal {
    replace_call(request, |root, call| unsafe {
        let constant = fold(call)?;
        let look = if reads_cache {
            cache::current_look()
        } else {
            None
        };
        depend_on_identity_and_catalog(root, (*call).funcid, look);
        Some(constant)
    })
}

/// The `n`th argument of a call.
unsafe fn argument(call: *mut pg_sys::FuncExpr, n: usize) -> Option<*mut pg_sys::Node> {
    let args = (*call).args;
    (!args.is_null() && n < (*args).length as usize)
        .then(|| (*(*args).elements.add(n)).ptr_value.cast::<pg_sys::Node>())
}

/// Replaces a call of `fluent.rls_local_rows(sample, table, columns,
/// condition)` with the `ARRAY(SELECT ...)` it stands for on this node
/// (src/placements.rs), parsed and rewritten here (row security included),
/// which the planner then turns into an InitPlan, as it does the sub-select
/// a policy holds on one server. The plan depends on what it reads as any
/// plan does (its relations, and the helpers folded inside).
unsafe fn local_rows_subquery(
    root: *mut pg_sys::PlannerInfo,
    call: *mut pg_sys::FuncExpr,
) -> Option<*mut pg_sys::Node> {
    let table = argument(call, 1)?;
    if (*table).type_ != pg_sys::NodeTag::T_Const {
        return None;
    }
    let table = table.cast::<pg_sys::Const>();
    if (*table).constisnull || !matches!((*table).consttype, pg_sys::REGCLASSOID | pg_sys::OIDOID) {
        return None;
    }
    let table = pg_sys::Oid::from_datum((*table).constvalue, false)?;
    let columns = argument(call, 2)?;
    if (*columns).type_ != pg_sys::NodeTag::T_Const {
        return None;
    }
    let columns = columns.cast::<pg_sys::Const>();
    if (*columns).constisnull || (*columns).consttype != pg_sys::TEXTARRAYOID {
        return None;
    }
    let columns = Vec::<String>::from_datum((*columns).constvalue, false)?;
    let condition = text_constant(argument(call, 3)?)?;
    let array = selected_expression(&format!(
        "SELECT {}",
        placements::local_rows_sql(table, &columns, condition)
    ))?;
    if pg_sys::exprType(array) != (*call).funcresulttype {
        return None;
    }
    // The planner turns sub-selects into plans only in queries it knows
    // hold some; this one does now.
    (*(*root).parse).hasSubLinks = true;
    Some(array)
}

/// Folds a test of the acting user's reach to its answer.
fn fold_reach(request: Internal, decide: fn(Reach) -> bool) -> Internal {
    simplify(request, |call| unsafe {
        let (module, action) = module_and_action(call)?;
        let answer = decide(checks::acting_reach(module, action));
        Some(pg_sys::makeBoolConst(answer, false))
    })
}

/// Folds `rls_user_key()`, `_id()` or `_uuid()` to the acting user's key as a
/// constant of the call's type (NULL when there is none), so the plan is the
/// one of `owner = 'ann'` written by hand, estimates included.
fn fold_user_key(request: Internal) -> Internal {
    simplify_reading(request, false, |call| unsafe {
        acting_key_constant((*call).funcresulttype)
    })
}

#[pg_schema]
pub mod fluent {
    use super::*;

    /// Planner support for `fluent.rls_all`: folds it to the acting user's answer.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_all_support(request: Internal) -> Internal {
        fold_reach(request, |reach| reach == Reach::Everything)
    }

    /// Planner support for `fluent.rls_own`: folds it to the acting user's answer.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_own_support(request: Internal) -> Internal {
        fold_reach(request, |reach| reach == Reach::Own)
    }

    /// Planner support for `fluent.rls_users`: folds it to the acting user's answer.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_users_support(request: Internal) -> Internal {
        fold_reach(request, |reach| reach == Reach::Users)
    }

    /// Planner support for `fluent.rls_any`: folds it to the acting user's answer.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_any_support(request: Internal) -> Internal {
        fold_reach(request, |reach| reach != Reach::Nothing)
    }

    /// Planner support for `fluent.rls_reaches`: replaces it with the test
    /// of the owner column it stands for, made for the acting user.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_reaches_support(request: Internal) -> Internal {
        replace_call(request, |root, call| unsafe {
            let test = owner_test(root, call)?;
            depend_on_identity_and_catalog(root, (*call).funcid, cache::current_look());
            Some(test)
        })
    }

    /// Planner support for `fluent.rls_items`: folds it to the acting user's answer.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_items_support(request: Internal) -> Internal {
        simplify(request, |call| unsafe {
            let (module, action, item_module) = item_arguments(call)?;
            let roles = checks::acting_item_roles(module, action, item_module);
            Some(pg_sys::makeBoolConst(!roles.is_empty(), false))
        })
    }

    /// Planner support for `fluent.rls_item_roles`: folds it to the names.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_item_roles_support(request: Internal) -> Internal {
        simplify(request, |call| unsafe {
            let (module, action, item_module) = item_arguments(call)?;
            Some(text_array_constant(checks::acting_item_roles(
                module,
                action,
                item_module,
            )))
        })
    }

    /// Planner support for `fluent.rls_assignable_item_roles`: folds it to the names.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_assignable_support(request: Internal) -> Internal {
        simplify(request, |call| unsafe {
            let (module, action) = module_and_action(call)?;
            Some(text_array_constant(checks::acting_assignable_item_roles(
                module, action,
            )))
        })
    }

    /// Planner support for `fluent.rls_user_teams`: folds it to the names.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_teams_support(request: Internal) -> Internal {
        simplify(request, |call| unsafe {
            text_arguments::<0>(call)?;
            Some(text_array_constant(checks::acting_teams()))
        })
    }

    /// Planner support for `fluent.rls_owner_keys`, `_ids` and `_uuids`
    /// and `fluent.rls_workspace_keys`, `_ids` and `_uuids`: folds them to
    /// the acting user's keys, an array constant. A policy may then compare
    /// with the call itself (`owner = ANY (fluent.rls_owner_keys(...))`),
    /// as the policies of Citus tables do (no sub-select goes to a shard).
    #[pg_extern(immutable, parallel_safe)]
    fn rls_keys_support(request: Internal) -> Internal {
        simplify(request, |call| unsafe { keys_constant(call) })
    }

    /// Planner support for `fluent.rls_local_rows`: replaces it with the
    /// sub-select over this node's placements it stands for.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_local_rows_support(request: Internal) -> Internal {
        replace_call(request, |root, call| unsafe {
            local_rows_subquery(root, call)
        })
    }

    /// On a Citus node, the values of `cols` of `tbl`'s rows on this node
    /// that meet `condition` (sql/rls.sql, `fluent._rows_of_sql`): policies
    /// call it where one server's hold a sub-select. The planner replaces
    /// each call with that sub-select (`rls_local_rows_support`); this runs
    /// it, as the caller, only where a call is not planned away. `sample`
    /// gives the result's element type (a record for several columns).
    #[pg_extern(stable, parallel_safe, support = rls_local_rows_support)]
    #[search_path(pg_catalog, pg_temp)]
    fn rls_local_rows(
        sample: Option<pgrx::AnyElement>,
        tbl: pg_sys::Oid,
        cols: Vec<String>,
        condition: &str,
        fcinfo: pg_sys::FunctionCallInfo,
    ) -> Option<pgrx::AnyArray> {
        let _ = sample;
        // The type the call resolved (the sample's array type): what is
        // returned must be of it.
        let expected = unsafe { pg_sys::get_fn_expr_rettype((*fcinfo).flinfo) };
        let sql = format!(
            "SELECT {}",
            placements::local_rows_sql(tbl, &cols, condition)
        );
        // The array is copied out of SPI's memory, which goes when SPI ends.
        let outer = unsafe { pg_sys::CurrentMemoryContext };
        pgrx::spi::Spi::connect(|client| {
            let table = client
                .select(&sql, Some(1), &[])
                .unwrap_or_else(|e| pgrx::error!("{e}"));
            let typoid = table.column_type_oid(1).ok()?.value();
            if typoid != expected {
                let name = |t: pg_sys::Oid| unsafe {
                    std::ffi::CStr::from_ptr(pg_sys::format_type_be(t))
                        .to_string_lossy()
                        .into_owned()
                };
                FluentError::LocalRowsType {
                    expected: name(expected),
                    found: name(typoid),
                }
                .report();
            }
            let datum = table.first().get_datum_by_ordinal(1).ok().flatten()?;
            unsafe {
                let previous = pg_sys::MemoryContextSwitchTo(outer);
                let copied = pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(
                    datum.cast_mut_ptr::<pg_sys::varlena>(),
                ));
                pg_sys::MemoryContextSwitchTo(previous);
                pgrx::AnyArray::from_polymorphic_datum(copied, false, typoid)
            }
        })
    }

    /// Planner support for `fluent.rls_user_key`, `_id` and `_uuid`: folds
    /// them to the acting user's key.
    #[pg_extern(immutable, parallel_safe)]
    fn rls_user_support(request: Internal) -> Internal {
        fold_user_key(request)
    }
}
