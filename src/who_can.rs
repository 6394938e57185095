//! "Who can see invoice 3?": `fluent_who_can(tbl, row_key, action)` lists
//! each user who may perform a module action on one row of a protected
//! table, and why, without impersonating anyone. It reads the row (its
//! owner, workspace and assignees), every holder's permissions in the row's
//! workspace and who reaches the owner and assignees through a reporting
//! line or a team, each in one query, then applies to each holder the same
//! decision (src/scope.rs) and the same reach the policies test
//! (sql/rls.sql): scope `all` reaches every row; `own` the rows the user owns
//! or is assigned to; `direct` and `team` also those of the users their
//! line and teams reach. Where the scope does not reach the row, an item
//! role the user holds on it (or on its parent), directly or through a
//! team, and that gives the action, does, where the decisions admit item
//! roles. On Citus, the row is read on the nodes holding the table's
//! placements (src/placed_rows.rs).

use std::collections::HashSet;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::cache;
use crate::citus;
use crate::delegation;
use crate::error::FluentError;
use crate::gucs;
use crate::identity;
use crate::loaders::{self, Assignment, ItemRole, Reacher, RowFacts, UserHoldings, WorkspaceModel};
use crate::placed_rows;
use crate::rows;
use crate::scope::{decide, item_roles_give, Scope, Source};

/// One user who may act on the row: key, scope, what gave the scope
/// (`roles` or `override`), the roles giving it, how it reaches the row
/// (`all`, `owner`, `assignee`, `team lead`, `manager`) and through whom.
type WhoRow = (
    String,
    String,
    String,
    Option<Vec<String>>,
    String,
    Option<String>,
);

/// How a scope narrower than `all` reaches the row, if it does.
fn reach(
    user: &str,
    scope: Scope,
    row: &RowFacts,
    reachers: &[Reacher],
) -> Option<(&'static str, Option<String>)> {
    if scope == Scope::All {
        return Some(("all", None));
    }
    if row.owner.as_deref() == Some(user) {
        return Some(("owner", None));
    }
    if row.assignees.iter().any(|a| a == user) {
        return Some(("assignee", None));
    }
    if scope < Scope::Direct {
        return None;
    }
    // Leads first: they reach their members with `direct` and `team`; a
    // manager reaches one level down with `direct`, the whole line with `team`.
    reachers
        .iter()
        .filter(|r| r.user == user)
        .filter(|r| r.relation == "team lead" || scope == Scope::Team || r.depth == 1)
        .min_by_key(|r| (r.relation != "team lead", r.depth))
        .map(|r| {
            let relation = if r.relation == "team lead" {
                "team lead"
            } else {
                "manager"
            };
            (relation, Some(r.reached.clone()))
        })
}

/// The item role that gives the user the slot's action on the row, and the
/// team it was given to (None: to the user), when the decisions on the
/// slot and on the item roles' slot admit item roles (src/scope.rs).
fn item_role(
    user: &str,
    admitted: bool,
    giving: &[&str],
    row: &RowFacts,
    teams_of: &[(String, String)],
) -> Option<(&'static str, Option<String>)> {
    if !admitted {
        return None;
    }
    let gives = |a: &&Assignment| giving.contains(&a.item_role.as_str());
    // The user's own assignment first, then one through a team.
    row.assignments
        .iter()
        .filter(gives)
        .filter(|a| a.user.as_deref() == Some(user))
        .map(|a| ("item role", Some(a.item_role.clone())))
        .chain(
            row.assignments
                .iter()
                .filter(gives)
                .filter(|a| {
                    a.team.as_ref().is_some_and(|t| {
                        teams_of
                            .iter()
                            .any(|(team, member)| team == t && member == user)
                    })
                })
                .map(|a| {
                    let team = a.team.clone().unwrap_or_default();
                    ("item role", Some(format!("{} (team {team})", a.item_role)))
                }),
        )
        .next()
}

/// What the item roles on the row need from the workspace model: the slot
/// of the module action they must give, and their names.
struct ItemRoles<'a> {
    slot: Option<usize>,
    /// The table's module is not the items' (a child of another module).
    other_module: bool,
    giving: Vec<&'a ItemRole>,
    teams_of: Vec<(String, String)>,
}

/// The row for one holder, if they may act on the row: by the scope of
/// their permission, else by an item role they hold on it.
fn holder_row(
    model: &WorkspaceModel,
    slot: usize,
    user: String,
    holdings: &UserHoldings,
    row: &RowFacts,
    reachers: &[Reacher],
    items: &ItemRoles<'_>,
) -> Option<WhoRow> {
    let inputs = holdings.decision_inputs(model);
    let facts = inputs.facts(model);
    let decision = decide(&facts, slot);
    let by_scope = (decision.scope > Scope::None)
        .then(|| reach(&user, decision.scope, row, reachers))
        .flatten();
    let admitted = items.slot.is_some_and(|item_slot| {
        item_roles_give(decision, decide(&facts, item_slot), items.other_module)
    });
    let reached_by_scope = by_scope.is_some();
    // Item roles whose condition the holder meets now.
    let giving: Vec<&str> = items
        .giving
        .iter()
        .filter(|r| {
            r.condition.met(
                |role| holdings.roles.contains(&role),
                |s| decide(&facts, s).scope,
            )
        })
        .map(|r| r.name.as_str())
        .collect();
    let (how, through) =
        by_scope.or_else(|| item_role(&user, admitted, &giving, row, &items.teams_of))?;
    // A scope that reaches the row comes from an override or the widest
    // roles; otherwise an item role gave the action.
    let (source, roles) = match decision.source {
        _ if !reached_by_scope => ("item role", None),
        Source::Override { .. } => ("override", None),
        _ => ("roles", Some(inputs.widest_roles(model, slot))),
    };
    Some((
        user,
        decision.scope.as_str().to_owned(),
        source.to_owned(),
        roles,
        how.to_owned(),
        through,
    ))
}

fn who_can(table: pg_sys::Oid, row_key: &str, action: &str) -> Vec<WhoRow> {
    let table_name = || relation_name(table);
    // Whoever may read everyone's permissions: reporting roles, or a
    // delegated administrator of the current workspace. Checked before the
    // row is read, so that nothing about it leaks.
    let acting_workspace = gucs::with_workspace(str::to_owned);
    if !delegation::may_read_everyones_permissions(&acting_workspace) {
        FluentError::WhoCanDenied {
            table: table_name(),
        }
        .report();
    }
    // A delegated administrator's lookup is confined to their workspace:
    // rows of others are neither found nor counted. On Citus the rows are in
    // the table's placements; the table itself holds none.
    let reads_all = identity::current_role_reads_all();
    let confined = (!reads_all).then_some(acting_workspace.as_str());
    let lookup = loaders::row_lookup(table);
    let row = if citus::is_citus_table(table) {
        placed_rows::read(table, lookup, row_key, confined)
    } else {
        rows::read(table, lookup, row_key, confined)
    };
    let workspace = match &row.workspace {
        None => acting_workspace,
        // A row in no workspace, or in another one than the delegated
        // administrator's, is for the reporting roles only.
        Some(ws) => {
            let ws = ws.clone().unwrap_or_default();
            if ws != acting_workspace && !reads_all {
                FluentError::WhoCanDenied {
                    table: table_name(),
                }
                .report();
            }
            ws
        }
    };
    if !cache::workspace_exists(&workspace) {
        return Vec::new();
    }
    let (model, slot) =
        cache::model_and_slot(&workspace, &row.module, action).unwrap_or_else(|e| e.report());
    let targets: Vec<String> = row
        .owner
        .iter()
        .chain(&row.assignees)
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let reachers = loaders::load_reachers(model.workspace_id, &targets);
    // Item roles give the action of the same name of their own module.
    let item_slot = row
        .item_module
        .as_ref()
        .and_then(|m| model.modules.get(m)?.get(action).copied());
    let mut teams: Vec<String> = row
        .assignments
        .iter()
        .filter_map(|a| a.team.clone())
        .collect();
    teams.sort();
    teams.dedup();
    let items = ItemRoles {
        slot: item_slot,
        other_module: row.item_module.as_ref() != Some(&row.module),
        giving: item_slot
            .and_then(|s| model.item_roles_giving.get(&s))
            .into_iter()
            .flatten()
            .map(|&i| &model.item_roles[i])
            .collect(),
        teams_of: loaders::load_team_members(model.workspace_id, &teams),
    };
    let mut holders = loaders::load_all_holdings(&model);
    // Assignees without a grant or override in the workspace may still act
    // (in a workspace without sign-in roles) through their item roles.
    let mut assigned: Vec<&String> = row
        .assignments
        .iter()
        .filter_map(|a| a.user.as_ref())
        .chain(items.teams_of.iter().map(|(_, member)| member))
        .collect();
    assigned.sort();
    assigned.dedup();
    for user in assigned {
        if !holders.iter().any(|(key, _)| key == user) {
            if let Some(holdings) = loaders::load_user(&model, user) {
                holders.push((user.clone(), holdings));
            }
        }
    }
    holders
        .into_iter()
        .filter_map(|(user, holdings)| {
            holder_row(&model, slot, user, &holdings, &row, &reachers, &items)
        })
        .collect()
}

/// The relation's name, for messages.
fn relation_name(table: pg_sys::Oid) -> String {
    let name = unsafe { pg_sys::get_rel_name(table) };
    if name.is_null() {
        return table.to_u32().to_string();
    }
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

#[pg_schema]
pub mod fluent {
    use super::*;

    /// The rows of `fluent_who_can()` (sql/rls.sql), which takes the table as
    /// a regclass.
    // The row type cannot be a type alias.
    #[allow(clippy::type_complexity)]
    #[pg_extern(stable, parallel_restricted)]
    fn _who_can(
        tbl: Option<pg_sys::Oid>,
        row_key: Option<&str>,
        action: Option<&str>,
    ) -> TableIterator<
        'static,
        (
            name!(user_key, String),
            name!(scope, String),
            name!(source, String),
            name!(roles, Option<Vec<String>>),
            name!(reach, String),
            name!(through, Option<String>),
        ),
    > {
        let null = |argument: &'static str| -> ! {
            FluentError::NullArgument {
                argument: argument.into(),
                hint: "Pass the table, the row's key and the module action.",
            }
            .report()
        };
        let table = tbl.unwrap_or_else(|| null("tbl"));
        let row_key = row_key.unwrap_or_else(|| null("row_key"));
        let action = action.unwrap_or_else(|| null("action"));
        TableIterator::new(who_can(table, row_key, action))
    }
}
