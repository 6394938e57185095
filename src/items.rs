//! The trigger on assignment tables (sql/items.sql). It runs after row
//! security let an assignment be written, checks it against its item role
//! as the catalog owner (`fluent._check_assignment`: the user or team it
//! names exists, the item role is the module's, and its condition is met),
//! and records the assignment, and its removal, in the audit trail. A C
//! trigger function cannot be called directly, so the check tells nothing
//! to anyone who could not write the assignment; and after the row is
//! written, no other trigger can change it behind the check's back.

use pgrx::datum::DatumWithOid;
use pgrx::heap_tuple::PgHeapTuple;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::trigger_support::{PgTrigger, PgTriggerOperation};
use pgrx::AllocatedByPostgres;

use crate::cache;
use crate::citus;
use crate::gucs;
use crate::identity;
use crate::loaders::WorkspaceModel;
use crate::owner::{as_catalog_owner, column, select, update};
use crate::rows;
use crate::trigger::after_trigger;

fn fail(e: &dyn std::fmt::Display) -> ! {
    pgrx::error!("{e}")
}

fn check_item_assignment(trigger: &PgTrigger<'_>) {
    let args = trigger.extra_args().unwrap_or_else(|e| fail(&e));
    let [module, user_column, team_column, role_column] = args.as_slice() else {
        pgrx::error!("fluent._check_item_assignment() takes four arguments");
    };
    let relation = trigger.relation().unwrap_or_else(|e| fail(&e));
    // On Citus the trigger runs on a shard: what it names is the table.
    let table = citus::table_of_shard(relation.oid()).unwrap_or(relation.oid());
    // (A TRUNCATE, statement-level, has no row: it is only recorded.)
    if let Some(row) = trigger.new() {
        let text = |column: &str| -> Option<String> {
            if column.is_empty() {
                return None;
            }
            row.get_by_name::<String>(column)
                .unwrap_or_else(|e| fail(&e))
        };
        let (user, team, item_role) = (text(user_column), text(team_column), text(role_column));
        as_catalog_owner(|client| {
            update(
                client,
                "SELECT fluent._check_assignment($1, $2, $3, $4, $5::pg_catalog.regclass)",
                &[
                    module.as_str().into(),
                    item_role.as_deref().into(),
                    user.as_deref().into(),
                    team.as_deref().into(),
                    table.into(),
                ],
            )
        });
    }
    record(trigger, &relation, table);
}

/// The row as JSON text, made as the writer: the application's types and
/// their casts to JSON are its owner's code, which never runs as the catalog
/// owner. Kept as text to the log: parsed into Rust values, a number would
/// lose digits and a deep value would not parse.
fn as_json(
    row: Option<PgHeapTuple<'_, AllocatedByPostgres>>,
    row_type: pg_sys::Oid,
) -> Option<String> {
    let datum = row.and_then(|row| row.into_composite_datum())?;
    Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.to_jsonb($1)::pg_catalog.text",
        &[unsafe { DatumWithOid::new(datum, row_type) }],
    )
    .unwrap_or_else(|e| fail(&e))
}

/// Records the assignment written or removed in the audit trail, in the
/// current workspace, as `fluent._audit_assignment` does, naming `table`.
fn record(trigger: &PgTrigger<'_>, relation: &pgrx::PgRelation, table: pg_sys::Oid) {
    let operation = match trigger.op().unwrap_or_else(|e| fail(&e)) {
        PgTriggerOperation::Insert => "INSERT",
        PgTriggerOperation::Update => "UPDATE",
        PgTriggerOperation::Delete => "DELETE",
        PgTriggerOperation::Truncate => "TRUNCATE",
    };
    let row_type = unsafe { (*relation.rd_rel).reltype };
    let before = as_json(trigger.old(), row_type);
    let after = as_json(trigger.new(), row_type);
    let table = unsafe {
        let name = |s: *const std::ffi::c_char| std::ffi::CStr::from_ptr(s).to_string_lossy();
        format!(
            "{}.{}",
            name(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(table))),
            name(pg_sys::get_rel_name(table))
        )
    };
    let db_role = identity::role_name(unsafe { pg_sys::GetUserId() });
    let acting = gucs::with_acting(|user, _| user.map(str::to_owned));
    as_catalog_owner(|client| {
        update(
            client,
            "SELECT fluent._audit_assignment($1, $2, $3, $4, $5::pg_catalog.jsonb, $6::pg_catalog.jsonb)",
            &[
                db_role.as_str().into(),
                acting.as_deref().into(),
                table.as_str().into(),
                operation.into(),
                before.into(),
                after.into(),
            ],
        )
    })
}

/// The (module, item role) pairs the application's assignment tables give
/// to `user` (a user key) and to `teams` (team names), the tables listed
/// once for all of them. A Citus table's assignments are on the nodes
/// holding its placements, which this does not read: it may give any of
/// the module's item roles.
fn assigned_item_roles(
    model: &WorkspaceModel,
    user: Option<&str>,
    teams: &[String],
) -> Vec<(String, String)> {
    let tables = as_catalog_owner(|client| {
        select(
            client,
            "SELECT * FROM fluent._load_assignment_tables()",
            &[],
        )
        .map(|row| {
            (
                column::<String>(&row, 1).unwrap_or_default(),
                column::<Vec<pg_sys::Oid>>(&row, 2).unwrap_or_default(),
                column::<String>(&row, 3),
                column::<String>(&row, 4),
                column::<String>(&row, 5).unwrap_or_default(),
            )
        })
        .collect::<Vec<_>>()
    });
    let mut given = Vec::new();
    for (module, relations, user_column, team_column, role_column) in tables {
        if relations.iter().any(|&r| citus::is_citus_table(r)) {
            given.extend(
                model
                    .item_roles
                    .iter()
                    .filter(|r| r.module == module)
                    .map(|r| (module.clone(), r.name.clone())),
            );
            continue;
        }
        let named = user.zip(user_column.as_deref()).into_iter().chain(
            team_column
                .as_deref()
                .into_iter()
                .flat_map(|column| teams.iter().map(move |team| (team.as_str(), column))),
        );
        for (name, column) in named {
            for item_role in rows::item_roles_naming(&relations, column, name, &role_column) {
                given.push((module.clone(), item_role));
            }
        }
    }
    given.sort();
    given.dedup();
    given
}

/// One action an item role gives on the rows of a protected table's
/// module: the items' own module, or a child table's.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ItemAction {
    module: String,
    action: String,
    item_module: String,
    item_role: String,
}

/// The actions the item roles `assigned` give on the rows of the item
/// tables and their child tables, where `open(..)` says they do.
fn item_actions(
    model: &WorkspaceModel,
    assigned: &[(String, String)],
    open: impl Fn(&ItemAction) -> bool,
) -> Vec<ItemAction> {
    // item module -> the modules of the tables its item roles reach.
    let reached: Vec<(String, String)> = as_catalog_owner(|client| {
        select(client, "SELECT * FROM fluent._load_item_modules()", &[])
            .filter_map(|row| Some((column::<String>(&row, 1)?, column::<String>(&row, 2)?)))
            .collect()
    });
    let mut actions = Vec::new();
    for (item_module, item_role) in assigned {
        let Some(role) = model
            .item_roles
            .iter()
            .find(|r| &r.module == item_module && &r.name == item_role)
        else {
            continue;
        };
        for (_, module) in reached.iter().filter(|(m, _)| m == item_module) {
            for &slot in &role.slots {
                let action = &model.slot_names[slot].1;
                // The table's module must have the action for it to be given.
                if !model
                    .modules
                    .get(module)
                    .is_some_and(|a| a.contains_key(action))
                {
                    continue;
                }
                let given = ItemAction {
                    module: module.clone(),
                    action: action.clone(),
                    item_module: item_module.clone(),
                    item_role: item_role.clone(),
                };
                if open(&given) {
                    actions.push(given);
                }
            }
        }
    }
    actions.sort();
    actions.dedup();
    actions
}

/// The actions the assignments naming the user (or the team) give on the
/// rows of the tables they reach, open or not.
fn assigned_item_actions(user: Option<&str>, team: Option<&str>) -> Vec<ItemAction> {
    gucs::with_workspace(|workspace| {
        let Some(model) = cache::model(workspace) else {
            return Vec::new();
        };
        let assigned = match (user, team) {
            (Some(user), _) => assigned_item_roles(&model, Some(user), &[]),
            (None, Some(team)) => assigned_item_roles(&model, None, &[team.to_owned()]),
            (None, None) => Vec::new(),
        };
        item_actions(&model, &assigned, |_| true)
    })
}

/// The actions the item roles assigned to `user`, directly or through a
/// team of theirs, give them now (the decisions admit them and their
/// conditions are met: src/cache.rs).
fn open_item_actions(user: &str) -> Vec<ItemAction> {
    gucs::with_workspace(|workspace| {
        let Some(model) = cache::model(workspace) else {
            return Vec::new();
        };
        let assigned =
            assigned_item_roles(&model, Some(user), &cache::member_teams(workspace, user));
        item_actions(&model, &assigned, |a| {
            cache::item_roles(workspace, user, &a.module, &a.action, &a.item_module)
                .contains(&a.item_role)
        })
    })
}

/// An `ItemAction` as a row: module, action, item module, item role.
type ItemActionRow = (String, String, String, String);

fn rows_of(actions: Vec<ItemAction>) -> Vec<ItemActionRow> {
    actions
        .into_iter()
        .map(|a| (a.module, a.action, a.item_module, a.item_role))
        .collect()
}

#[pg_schema]
mod fluent {
    use super::*;

    /// The module actions the application's assignments naming a user
    /// (`user_key`) or a team give on the rows item roles reach (the items'
    /// and their children's), through which item role: what a delegated
    /// administrator opens by activating the user or adding a member to the
    /// team (`fluent._item_roles_within_powers`). For the catalog owner only.
    // pgrx reads the column names from the `name!` markers in the
    // signature, so the row type cannot be a type alias.
    #[allow(clippy::type_complexity)]
    #[pg_extern(stable, parallel_restricted)]
    fn _assigned_item_actions(
        user_key: Option<&str>,
        team: Option<&str>,
    ) -> TableIterator<
        'static,
        (
            name!(module, String),
            name!(action, String),
            name!(item_module, String),
            name!(item_role, String),
        ),
    > {
        TableIterator::new(rows_of(assigned_item_actions(user_key, team)))
    }

    /// Whether a plain table holds a row (a partitioned one holds none of
    /// its own): a table joins an assignment table empty. Read with a heap
    /// scan, so that no code of its owner runs as the caller. A Citus
    /// table's rows are in its placements: it may hold some.
    #[pg_extern(stable, parallel_restricted)]
    fn _has_rows(tbl: pg_sys::Oid) -> bool {
        let kind = unsafe { pg_sys::get_rel_relkind(tbl) } as u8;
        kind == pg_sys::RELKIND_RELATION && (citus::is_citus_table(tbl) || rows::has_rows(tbl))
    }

    /// Those of a user's that give them the action now: compared before and
    /// after a delegated administrator's grant or override, what it opened.
    /// For the catalog owner only.
    #[allow(clippy::type_complexity)]
    #[pg_extern(stable, parallel_restricted)]
    fn _open_item_actions(
        user_key: &str,
    ) -> TableIterator<
        'static,
        (
            name!(module, String),
            name!(action, String),
            name!(item_module, String),
            name!(item_role, String),
        ),
    > {
        TableIterator::new(rows_of(open_item_actions(user_key)))
    }
}

after_trigger!(
    fluent_check_item_assignment,
    pg_finfo_fluent_check_item_assignment,
    "fluent._check_item_assignment",
    check_item_assignment
);
// Its CREATE FUNCTION is in sql/items.sql.
