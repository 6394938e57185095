//! The rows of `fluent.effective_permissions`: what each user holding a role
//! or an override may do, decided by `scope::decide` like every check.
//!
//! Most users share their decisions with many others: what decides them is
//! the workspace, whether the user is active, the roles held and the
//! overrides, and a workspace of 100,000 users has a few dozen such
//! profiles. So the view (sql/views.sql) is a join, which PostgreSQL
//! evaluates without materializing 150 text rows per user:
//!
//! - `fluent._effective_holders(for_user)`: one row per (workspace, user
//!   holding a role or an override there) with the user's profile number;
//! - `fluent._effective_profiles(for_user, for_module)`: one row per
//!   (profile, module, action) with the decision, decided once per profile.
//!
//! Both read one `Report`, made once per query from one load of the holdings
//! per workspace (`loaders::load_all_holdings`) and shared by the two calls,
//! so they number the profiles alike and see the same catalog.
//!
//! A function cannot see the query's `WHERE`, so a planner hook does it for
//! them (`narrow_to_filters`): when a query filters the view on one user
//! (`user_key = 'ann'`, or a parameter) the hook passes that user to both
//! functions, which then load that user alone (one index probe per
//! workspace) and decide only their profiles; a filter on one module is
//! passed to `_effective_profiles`, which then decides that module's actions
//! only. The filter stays in the plan, so the answer is the same either way;
//! only what is computed changes.

use std::cell::RefCell;
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::Internal;

use crate::hashing::FastMap;
use crate::loaders::{self, UserHoldings, WorkspaceModel};
use crate::owner;
use crate::reports::{models, require_reader};
use crate::scope::{decide, Scope, Source};

/// One user holding a role or an override in a workspace.
struct Holder {
    user_key: String,
    status: String,
    profile: usize,
}

/// What decides a user's answers in a workspace, and one holder's holdings
/// to decide them from.
struct Profile {
    workspace: usize,
    holdings: UserHoldings,
}

/// The workspace, whether the user is active, the roles held and the
/// overrides: users alike in these get the same decisions.
type ProfileKey = (usize, bool, Vec<i32>, Vec<(usize, Scope)>);

/// The holders of every workspace (or of one user) and their profiles.
#[derive(Default)]
struct Report {
    workspaces: Vec<(String, Rc<WorkspaceModel>)>,
    holders: Vec<Holder>,
    profiles: Vec<Profile>,
}

impl Report {
    /// Loads the holdings of every user, or of `user` only, in one query per
    /// workspace, and groups them into profiles.
    fn load(user: Option<&str>) -> Report {
        let mut report = Report::default();
        let mut known: FastMap<ProfileKey, usize> = FastMap::default();
        for (workspace, (name, model)) in models().into_iter().enumerate() {
            let holdings = match user {
                None => loaders::load_all_holdings(&model),
                Some(key) => loaders::load_holder(&model, key)
                    .map(|holdings| (key.to_owned(), holdings))
                    .into_iter()
                    .collect(),
            };
            for (user_key, mut holdings) in holdings {
                let status = std::mem::take(&mut holdings.status);
                let key = (
                    workspace,
                    status == "active",
                    std::mem::take(&mut holdings.roles),
                    std::mem::take(&mut holdings.overrides),
                );
                let profile = match known.get(&key) {
                    Some(&profile) => profile,
                    None => {
                        // This holder's holdings decide for the profile.
                        let profile = report.profiles.len();
                        report.profiles.push(Profile {
                            workspace,
                            holdings: UserHoldings {
                                status: status.clone(),
                                roles: key.2.clone(),
                                overrides: key.3.clone(),
                                ..holdings
                            },
                        });
                        known.insert(key, profile);
                        profile
                    }
                };
                report.holders.push(Holder {
                    user_key,
                    status,
                    profile,
                });
            }
            report.workspaces.push((name, model));
        }
        report
    }

    /// The rows of one profile: its decision on each action (of `module`
    /// only, if given).
    fn profile_rows(&self, profile: usize, module: Option<&str>) -> Vec<ProfileRow> {
        let Profile {
            workspace,
            holdings,
        } = &self.profiles[profile];
        let (workspace, model) = &self.workspaces[*workspace];
        let inputs = holdings.decision_inputs(model);
        let facts = inputs.facts(model);
        (0..model.slots.len())
            .filter(|&slot| module.is_none_or(|m| model.slot_names[slot].0 == m))
            .map(|slot| {
                let (module, action) = &model.slot_names[slot];
                let decision = decide(&facts, slot);
                let widest_roles = inputs.widest_roles(model, slot);
                (
                    profile as i32,
                    workspace.clone(),
                    module.clone(),
                    action.clone(),
                    decision.scope.as_str().to_owned(),
                    match decision.source {
                        Source::NoSignInRole => "sign_in",
                        Source::Inactive => "user_status",
                        Source::ModuleDisabled => "module_disabled",
                        Source::RequirementMissing { .. } => "requirement",
                        Source::Override { .. } => "override",
                        Source::Roles => "roles",
                        Source::NoRole => "no_role",
                    }
                    .to_owned(),
                    (!widest_roles.is_empty()).then_some(widest_roles),
                    inputs
                        .override_setting(model, slot)
                        .map(|s| s.as_str().to_owned()),
                    model.disabled_by[slot].is_none(),
                )
            })
            .collect()
    }
}

type ProfileRow = (
    i32,
    String,
    String,
    String,
    String,
    String,
    Option<Vec<String>>,
    Option<String>,
    bool,
);

/// The report of a running query (its memory context's address) for a user
/// (or everyone).
struct QueryReport {
    query: usize,
    user: Option<String>,
    report: Rc<Report>,
}

thread_local! {
    /// The reports of the queries running in this backend.
    static REPORTS: RefCell<Vec<QueryReport>> = const { RefCell::new(Vec::new()) };
}

/// The report of the running query, made by whichever of the two functions
/// runs first: the other reads the same one.
fn query_report(user: Option<&str>) -> Rc<Report> {
    // A set-returning function's first call runs in its multi-call memory
    // context, a child of the query's (fmgr's fn_mcxt: funcapi.c).
    let query = unsafe { (*pg_sys::CurrentMemoryContext).parent };
    if query.is_null() {
        return Rc::new(Report::load(user));
    }
    let id = query as usize;
    let found = REPORTS.with_borrow(|reports| {
        reports
            .iter()
            .find(|r| r.query == id && r.user.as_deref() == user)
            .map(|r| r.report.clone())
    });
    if let Some(report) = found {
        return report;
    }
    let report = Rc::new(Report::load(user));
    if !REPORTS.with_borrow(|reports| reports.iter().any(|r| r.query == id)) {
        // Forgotten when the query's memory goes (end of query or error).
        unsafe {
            let callback = pg_sys::MemoryContextAlloc(
                query,
                std::mem::size_of::<pg_sys::MemoryContextCallback>(),
            )
            .cast::<pg_sys::MemoryContextCallback>();
            (*callback).func = Some(forget_report);
            (*callback).arg = query.cast();
            pg_sys::MemoryContextRegisterResetCallback(query, callback);
        }
    }
    REPORTS.with_borrow_mut(|reports| {
        reports.push(QueryReport {
            query: id,
            user: user.map(str::to_owned),
            report: report.clone(),
        })
    });
    report
}

/// Drops the reports of a query whose memory is reset or deleted.
unsafe extern "C-unwind" fn forget_report(query: *mut std::ffi::c_void) {
    let id = query as usize;
    // Never borrowed across a call into PostgreSQL, so never busy here.
    let _ = REPORTS.try_with(|reports| {
        if let Ok(mut reports) = reports.try_borrow_mut() {
            reports.retain(|r| r.query != id);
        }
    });
}

// Where the planner hook finds the filters: the functions and the columns
// of their results (1-based, as in sql/views.sql).
const HOLDERS: &CStr = c"_effective_holders";
const PROFILES: &CStr = c"_effective_profiles";
const PROFILE_COLUMN: pg_sys::AttrNumber = 1;
const USER_KEY_COLUMN: pg_sys::AttrNumber = 2;
const MODULE_COLUMN: pg_sys::AttrNumber = 3;

static mut PREVIOUS_SET_REL_PATHLIST: pg_sys::set_rel_pathlist_hook_type = None;

/// Installs the planner hook; called once from `_PG_init`. The functions'
/// support function loads the library while their sizes are estimated, before
/// any relation's paths are built, so the hook serves that query already.
pub fn init() {
    unsafe {
        PREVIOUS_SET_REL_PATHLIST = pg_sys::set_rel_pathlist_hook;
        pg_sys::set_rel_pathlist_hook = Some(narrow_to_filters);
    }
}

/// The list cells of a PostgreSQL `List` of pointers.
unsafe fn cells<T>(list: *mut pg_sys::List) -> impl Iterator<Item = *mut T> {
    let len = if list.is_null() { 0 } else { (*list).length };
    (0..len as usize).map(move |i| (*(*list).elements.add(i)).ptr_value.cast::<T>())
}

/// The call of `fluent.<name>` a range table entry scans, if it scans one.
unsafe fn report_call(
    rte: *mut pg_sys::RangeTblEntry,
    name: &CStr,
) -> Option<*mut pg_sys::FuncExpr> {
    if rte.is_null() || (*rte).rtekind != pg_sys::RTEKind::RTE_FUNCTION {
        return None;
    }
    let mut functions = cells::<pg_sys::RangeTblFunction>((*rte).functions);
    let (Some(function), None) = (functions.next(), functions.next()) else {
        return None;
    };
    let call = (*function).funcexpr.cast::<pg_sys::FuncExpr>();
    if call.is_null() || (*call).xpr.type_ != pg_sys::NodeTag::T_FuncExpr {
        return None;
    }
    let funcid = (*call).funcid;
    let proname = pg_sys::get_func_name(funcid);
    let named = !proname.is_null() && CStr::from_ptr(proname) == name;
    (named && owner::in_catalog_namespace(pg_sys::get_func_namespace(funcid))).then_some(call)
}

/// The base relations of this query level that scan `fluent.<name>`.
unsafe fn rels_calling(root: *mut pg_sys::PlannerInfo, name: &CStr) -> Vec<pg_sys::Index> {
    (1..(*root).simple_rel_array_size as pg_sys::Index)
        .filter(|&rti| {
            !(*(*root).simple_rel_array.add(rti as usize)).is_null()
                && report_call(*(*root).simple_rte_array.add(rti as usize), name).is_some()
        })
        .collect()
}

/// Whether `node` is column `attno` of relation `rti`, as scanned (not
/// nulled by an outer join).
unsafe fn is_column(
    node: *mut pg_sys::Node,
    rti: pg_sys::Index,
    attno: pg_sys::AttrNumber,
) -> bool {
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Var {
        return false;
    }
    let var = node.cast::<pg_sys::Var>();
    #[cfg(not(feature = "pg15"))]
    if !(*var).varnullingrels.is_null() {
        return false;
    }
    (*var).varno as pg_sys::Index == rti && (*var).varattno == attno && (*var).varlevelsup == 0
}

/// The value a restriction of relation `rti` makes column `attno` equal to:
/// `column = value` with a text constant or a query parameter, compared by
/// a deterministic collation (byte equality, as Rust compares).
unsafe fn equal_to(
    root: *mut pg_sys::PlannerInfo,
    rti: pg_sys::Index,
    attno: pg_sys::AttrNumber,
) -> Option<*mut pg_sys::Node> {
    let rel = *(*root).simple_rel_array.add(rti as usize);
    cells::<pg_sys::RestrictInfo>((*rel).baserestrictinfo).find_map(|rinfo| {
        let clause = (*rinfo).clause.cast::<pg_sys::Node>();
        if clause.is_null() || (*clause).type_ != pg_sys::NodeTag::T_OpExpr {
            return None;
        }
        let op = clause.cast::<pg_sys::OpExpr>();
        let collation = (*op).inputcollid;
        if (*op).opno != pg_sys::Oid::from(pg_sys::TextEqualOperator)
            || collation == pg_sys::InvalidOid
            || !pg_sys::get_collation_isdeterministic(collation)
        {
            return None;
        }
        let args: Vec<*mut pg_sys::Node> = cells((*op).args).collect();
        let value = match args[..] {
            [left, right] if is_column(left, rti, attno) => right,
            [left, right] if is_column(right, rti, attno) => left,
            _ => return None,
        };
        let known = match (*value).type_ {
            pg_sys::NodeTag::T_Const => {
                let constant = value.cast::<pg_sys::Const>();
                !(*constant).constisnull && (*constant).consttype == pg_sys::TEXTOID
            }
            pg_sys::NodeTag::T_Param => {
                let param = value.cast::<pg_sys::Param>();
                (*param).paramkind == pg_sys::ParamKind::PARAM_EXTERN
                    && (*param).paramtype == pg_sys::TEXTOID
            }
            _ => false,
        };
        known.then(|| pg_sys::copyObjectImpl(value.cast()).cast())
    })
}

/// Whether the query joins `holders` and `profiles` on the profile number:
/// both columns in one equivalence class, which PostgreSQL makes of an
/// inner join's equality (an outer join's makes none).
unsafe fn joined_on_profile(
    root: *mut pg_sys::PlannerInfo,
    holders: pg_sys::Index,
    profiles: pg_sys::Index,
) -> bool {
    cells::<pg_sys::EquivalenceClass>((*root).eq_classes).any(|class| {
        let members = || cells::<pg_sys::EquivalenceMember>((*class).ec_members);
        (*class).ec_merged.is_null()
            && members().any(|m| is_column((*m).em_expr.cast(), holders, PROFILE_COLUMN))
            && members().any(|m| is_column((*m).em_expr.cast(), profiles, PROFILE_COLUMN))
    })
}

/// Whether argument `n` (0-based) of the call relation `rti` scans is a
/// NULL constant, as the view passes, or already `value` (this hook has
/// narrowed it: it runs for each of the two relations). Only such an
/// argument is narrowed: a value given in the call already decides what
/// the function computes.
unsafe fn argument_open(
    root: *mut pg_sys::PlannerInfo,
    rti: pg_sys::Index,
    n: usize,
    value: *mut pg_sys::Node,
) -> bool {
    let rte = *(*root).simple_rte_array.add(rti as usize);
    let Some(call) = report_call(rte, HOLDERS).or_else(|| report_call(rte, PROFILES)) else {
        return false;
    };
    cells::<pg_sys::Node>((*call).args)
        .nth(n)
        .is_some_and(|arg| {
            ((*arg).type_ == pg_sys::NodeTag::T_Const && (*arg.cast::<pg_sys::Const>()).constisnull)
                || pg_sys::equal(arg.cast(), value.cast())
        })
}

/// The user a query's view of effective permissions is filtered on: the
/// holders' `user_key = value`, when this query level scans the two
/// functions once each, for every user (their first argument NULL, or
/// narrowed already), joined on the profile number (as the view does). Both calls then get it, so
/// that they still share one report.
unsafe fn filtered_user(root: *mut pg_sys::PlannerInfo) -> Option<*mut pg_sys::Node> {
    let (holders, profiles) = (rels_calling(root, HOLDERS), rels_calling(root, PROFILES));
    let (&[holders], &[profiles]) = (&holders[..], &profiles[..]) else {
        return None;
    };
    if !joined_on_profile(root, holders, profiles) {
        return None;
    }
    let value = equal_to(root, holders, USER_KEY_COLUMN)?;
    (argument_open(root, holders, 0, value) && argument_open(root, profiles, 0, value))
        .then_some(value)
}

/// Passes the query's filters on one user or one module to the functions
/// behind `fluent.effective_permissions` (see the module comment). Each
/// filter stays in the plan; the functions only leave out rows it rejects.
#[pg_guard]
unsafe extern "C-unwind" fn narrow_to_filters(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    rte: *mut pg_sys::RangeTblEntry,
) {
    if let Some(previous) = PREVIOUS_SET_REL_PATHLIST {
        previous(root, rel, rti, rte);
    }
    let (call, module) = if let Some(call) = report_call(rte, HOLDERS) {
        (call, None)
    } else if let Some(call) = report_call(rte, PROFILES) {
        let module =
            equal_to(root, rti, MODULE_COLUMN).filter(|&value| argument_open(root, rti, 1, value));
        (call, module)
    } else {
        return;
    };
    let user = filtered_user(root);
    if user.is_none() && module.is_none() {
        return;
    }
    let mut args = std::ptr::null_mut();
    for (i, arg) in cells::<pg_sys::Node>((*call).args).enumerate() {
        let narrowed = match i {
            0 => user,
            1 => module,
            _ => None,
        };
        args = pg_sys::lappend(args, narrowed.unwrap_or(arg).cast());
    }
    (*call).args = args;
}

/// The number of rows of catalog table `table` by its statistics, if known.
fn estimated_rows(table: &CStr) -> Option<f64> {
    let relid = owner::catalog_relid(table)?;
    let tuples = unsafe {
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return None;
        }
        let tuples = (*(*rel).rd_rel).reltuples;
        pg_sys::RelationClose(rel);
        tuples
    };
    (tuples >= 0.0).then_some(f64::from(tuples).max(1.0))
}

#[pg_schema]
mod fluent {
    use super::*;

    /// The holders behind `fluent.effective_permissions`: every user holding
    /// a role or an override in a workspace (or `for_user` only), with
    /// their profile in `_effective_profiles` of the same query and user.
    #[pg_extern(stable, parallel_restricted, support = effective::fluent::_effective_support)]
    fn _effective_holders(
        for_user: Option<&str>,
    ) -> TableIterator<
        'static,
        (
            name!(profile, i32),
            name!(user_key, String),
            name!(user_status, String),
        ),
    > {
        require_reader();
        let report = query_report(for_user);
        TableIterator::new((0..report.holders.len()).map(move |i| {
            let holder = &report.holders[i];
            (
                holder.profile as i32,
                holder.user_key.clone(),
                holder.status.clone(),
            )
        }))
    }

    /// The decisions behind `fluent.effective_permissions`: one row per
    /// profile of `_effective_holders(for_user)` and action (of
    /// `for_module` only, if given), decided once per profile.
    #[allow(clippy::type_complexity)]
    #[pg_extern(stable, parallel_restricted, support = effective::fluent::_effective_support)]
    fn _effective_profiles(
        for_user: Option<&str>,
        for_module: Option<&str>,
    ) -> TableIterator<
        'static,
        (
            name!(profile, i32),
            name!(workspace, String),
            name!(module, String),
            name!(action, String),
            name!(scope, String),
            name!(source, String),
            name!(roles, Option<Vec<String>>),
            name!(override_scope, Option<String>),
            name!(module_enabled, bool),
        ),
    > {
        require_reader();
        let report = query_report(for_user);
        let module = for_module.map(str::to_owned);
        TableIterator::new(
            (0..report.profiles.len())
                .flat_map(move |profile| report.profile_rows(profile, module.as_deref())),
        )
    }

    /// Planner support for the two functions: how many rows to expect.
    /// Holders: the users (or one). Profiles: the actions, the rows of one
    /// profile, which is exact for one user and low for all of them, on
    /// purpose: PostgreSQL has no statistics on the profile numbers, and
    /// with more profile rows it prefers a merge join, which re-reads each
    /// profile's rows for every holder (four times slower at 100,000 users
    /// than hashing the profiles, the smaller side). Being called also loads
    /// the library, whose planner hook (`narrow_to_filters`) must run for
    /// the same query.
    #[pg_extern(immutable, parallel_safe)]
    fn _effective_support(request: Internal) -> Internal {
        let unchanged = Internal::from(Some(pg_sys::Datum::from(0)));
        let Some(request) = request.unwrap() else {
            return unchanged;
        };
        unsafe {
            let node = request.cast_mut_ptr::<pg_sys::Node>();
            if (*node).type_ != pg_sys::NodeTag::T_SupportRequestRows {
                return unchanged;
            }
            let request = node.cast::<pg_sys::SupportRequestRows>();
            let call = (*request).node.cast::<pg_sys::FuncExpr>();
            if call.is_null() || (*call).xpr.type_ != pg_sys::NodeTag::T_FuncExpr {
                return unchanged;
            }
            let name = pg_sys::get_func_name((*call).funcid);
            if name.is_null() {
                return unchanged;
            }
            let one_user = cells::<pg_sys::Node>((*call).args)
                .next()
                .is_some_and(|arg| {
                    (*arg).type_ != pg_sys::NodeTag::T_Const
                        || !(*arg.cast::<pg_sys::Const>()).constisnull
                });
            let rows = match CStr::from_ptr(name) {
                n if n == HOLDERS && one_user => Some(1.0),
                n if n == HOLDERS => estimated_rows(c"users"),
                n if n == PROFILES => estimated_rows(c"actions"),
                _ => None,
            };
            let Some(rows) = rows else {
                return unchanged;
            };
            (*request).rows = rows;
            Internal::from(Some(pg_sys::Datum::from(request)))
        }
    }
}
