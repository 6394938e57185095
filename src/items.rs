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
use crate::gucs;
use crate::identity;
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
                    relation.oid().into(),
                ],
            )
        });
    }
    record(trigger, &relation);
}

/// The row as JSON, made as the writer: the application's types and their
/// casts to JSON are its owner's code, which never runs as the catalog owner.
fn as_json(
    row: Option<PgHeapTuple<'_, AllocatedByPostgres>>,
    row_type: pg_sys::Oid,
) -> Option<pgrx::JsonB> {
    let datum = row.and_then(|row| row.into_composite_datum())?;
    Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT pg_catalog.to_jsonb($1)",
        &[unsafe { DatumWithOid::new(datum, row_type) }],
    )
    .unwrap_or_else(|e| fail(&e))
}

/// Records the assignment written or removed in the audit trail, in the
/// current workspace, as `fluent._audit_assignment` does.
fn record(trigger: &PgTrigger<'_>, relation: &pgrx::PgRelation) {
    let operation = match trigger.op().unwrap_or_else(|e| fail(&e)) {
        PgTriggerOperation::Insert => "INSERT",
        PgTriggerOperation::Update => "UPDATE",
        PgTriggerOperation::Delete => "DELETE",
        PgTriggerOperation::Truncate => "TRUNCATE",
    };
    let row_type = unsafe { (*relation.rd_rel).reltype };
    let before = as_json(trigger.old(), row_type);
    let after = as_json(trigger.new(), row_type);
    let table = format!(
        "{}.{}",
        trigger.table_schema().unwrap_or_else(|e| fail(&e)),
        trigger.table_name().unwrap_or_else(|e| fail(&e))
    );
    let db_role = identity::role_name(unsafe { pg_sys::GetUserId() });
    let acting = gucs::with_acting(|user, _| user.map(str::to_owned));
    as_catalog_owner(|client| {
        update(
            client,
            "SELECT fluent._audit_assignment($1, $2, $3, $4, $5, $6)",
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
/// to `name`, a user key or (with `team`) a team name.
fn assigned_item_roles(name: &str, team: bool) -> Vec<(String, String)> {
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
        let Some(column) = (if team { team_column } else { user_column }) else {
            continue;
        };
        for item_role in rows::item_roles_naming(&relations, &column, name, &role_column) {
            given.push((module.clone(), item_role));
        }
    }
    given.sort();
    given.dedup();
    given
}

/// The (module, item role) pairs assigned to `user`, directly or through a
/// team of theirs, that give them some action now (the decision admits
/// them and their condition is met: src/cache.rs).
fn open_item_roles(user: &str) -> Vec<(String, String)> {
    gucs::with_workspace(|workspace| {
        let Some(model) = cache::model(workspace) else {
            return Vec::new();
        };
        let mut assigned = assigned_item_roles(user, false);
        for team in cache::member_teams(workspace, user).iter() {
            assigned.extend(assigned_item_roles(team, true));
        }
        assigned.sort();
        assigned.dedup();
        assigned
            .into_iter()
            .filter(|(module, item_role)| {
                model
                    .item_roles
                    .iter()
                    .filter(|r| &r.module == module && &r.name == item_role)
                    .flat_map(|r| r.slots.iter())
                    .any(|&slot| {
                        let action = &model.slot_names[slot].1;
                        cache::item_roles(workspace, user, module, action, module)
                            .contains(item_role)
                    })
            })
            .collect()
    })
}

#[pg_schema]
mod fluent {
    use super::*;

    /// The (module, item role) pairs the application's assignments give
    /// `user_key`, directly or through a team, that give them some action
    /// now: compared before and after a delegated administrator's change,
    /// what the change opened. For the catalog owner only.
    #[pg_extern(stable, parallel_restricted)]
    fn _open_item_roles(
        user_key: &str,
    ) -> TableIterator<'static, (name!(module, String), name!(item_role, String))> {
        TableIterator::new(open_item_roles(user_key))
    }

    /// The (module, item role) pairs the application's assignments give to
    /// a user (`user_key`) or a team: what a delegated administrator opens
    /// by activating the user or adding a member to the team
    /// (`fluent._item_roles_within_powers`). For the catalog owner only.
    #[pg_extern(stable, parallel_restricted)]
    fn _assigned_item_roles(
        user_key: Option<&str>,
        team: Option<&str>,
    ) -> TableIterator<'static, (name!(module, String), name!(item_role, String))> {
        let given = match (user_key, team) {
            (Some(user), _) => assigned_item_roles(user, false),
            (None, Some(team)) => assigned_item_roles(team, true),
            (None, None) => Vec::new(),
        };
        TableIterator::new(given)
    }
}

after_trigger!(
    fluent_check_item_assignment,
    pg_finfo_fluent_check_item_assignment,
    "fluent._check_item_assignment",
    check_item_assignment
);
// Its CREATE FUNCTION is in sql/items.sql.
