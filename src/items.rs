//! The trigger on assignment tables (sql/items.sql). It runs after row
//! security let an assignment be written, and checks it against its item
//! role as the catalog owner (`fluent._check_assignment`): the user or team
//! it names exists, the item role is the module's, and its condition is met.
//! A C trigger function cannot be called directly, so the check tells
//! nothing to anyone who could not write the assignment; and after the row
//! is written, no other trigger can change it behind the check's back.

use pgrx::trigger_support::PgTrigger;

use crate::owner::{as_catalog_owner, update};
use crate::trigger::after_trigger;

fn check_item_assignment(trigger: &PgTrigger<'_>) {
    let fail = |e: &dyn std::fmt::Display| -> ! { pgrx::error!("{e}") };
    let args = trigger.extra_args().unwrap_or_else(|e| fail(&e));
    let [module, user_column, team_column, role_column] = args.as_slice() else {
        pgrx::error!("fluent._check_item_assignment() takes four arguments");
    };
    let Some(row) = trigger.new() else { return };
    let text = |column: &str| -> Option<String> {
        if column.is_empty() {
            return None;
        }
        row.get_by_name::<String>(column)
            .unwrap_or_else(|e| fail(&e))
    };
    let (user, team, item_role) = (text(user_column), text(team_column), text(role_column));
    let table = trigger.relation().unwrap_or_else(|e| fail(&e)).oid();
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
    })
}

after_trigger!(
    fluent_check_item_assignment,
    pg_finfo_fluent_check_item_assignment,
    "fluent._check_item_assignment",
    check_item_assignment
);
// Its CREATE FUNCTION is in sql/items.sql.
