//! The rows of the reporting view of what each role gives
//! (`fluent.permission_matrix`), from the one decision in src/scope.rs (what
//! each user may do, `fluent.effective_permissions`, is src/effective.rs);
//! and the role scopes and inheritance that delegated administration checks
//! (sql/admin.sql). For superusers, fluent_admin and fluent_reader (the
//! views' readers), who may read anyone's permissions.

use pgrx::prelude::*;

use crate::cache;
use crate::error::FluentError;
use crate::gucs;
use crate::identity;
use crate::loaders::{self, WorkspaceModel};
use crate::scope::Scope;

pub(crate) fn require_reader() {
    if !identity::current_role_reads_all() {
        FluentError::NotAdmin.report();
    }
}

/// Every workspace's model.
pub(crate) fn models() -> Vec<(String, std::rc::Rc<WorkspaceModel>)> {
    loaders::workspace_names()
        .into_iter()
        .filter_map(|name| cache::model(&name).map(|model| (name, model)))
        .collect()
}

type MatrixRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
);

fn slot_name(model: &WorkspaceModel, slot: usize) -> String {
    let (module, action) = &model.slot_names[slot];
    format!("{module}.{action}")
}

fn matrix_rows() -> Vec<MatrixRow> {
    let mut rows = Vec::new();
    for (workspace, model) in models() {
        // In the order the roles were created.
        let mut roles: Vec<(&i32, &loaders::CompiledRole)> = model.roles.iter().collect();
        roles.sort_by_key(|(id, _)| **id);
        for (_, role) in roles {
            for slot in 0..model.slots.len() {
                let (module, action) = &model.slot_names[slot];
                let setting = role.permissions.setting_with_source(&model.slots, slot);
                rows.push((
                    workspace.clone(),
                    role.name.clone(),
                    module.clone(),
                    action.clone(),
                    setting.map_or(Scope::None, |(s, _)| s).as_str().to_owned(),
                    match setting {
                        None => "unset",
                        Some((_, on)) if on == slot => "set",
                        Some(_) => "inherited",
                    }
                    .to_owned(),
                    setting.map(|(_, on)| slot_name(&model, on)),
                    model.disabled_by[slot].is_none(),
                    role.template.as_ref().map(|t| t.0.clone()),
                    role.template.as_ref().map(|t| t.1.clone()),
                ));
            }
        }
    }
    rows
}

#[pg_schema]
mod fluent {
    use super::*;

    /// The rows of `fluent.permission_matrix`.
    #[allow(clippy::type_complexity)]
    #[pg_extern(stable, parallel_restricted)]
    fn _permission_matrix() -> TableIterator<
        'static,
        (
            name!(workspace, String),
            name!(role, String),
            name!(module, String),
            name!(action, String),
            name!(scope, String),
            name!(setting, String),
            name!(set_on, Option<String>),
            name!(module_enabled, bool),
            name!(template, Option<String>),
            name!(template_role, Option<String>),
        ),
    > {
        require_reader();
        TableIterator::new(matrix_rows())
    }

    /// A role's scope on every action of the current workspace (by action id),
    /// for the escalation checks of delegated administration.
    #[pg_extern(stable, parallel_restricted)]
    fn _role_scopes(
        role_id: i32,
    ) -> TableIterator<'static, (name!(action_id, i32), name!(scope, String))> {
        let model = gucs::with_workspace(cache::model);
        let rows: Vec<(i32, String)> = model
            .iter()
            .flat_map(|m| {
                let role = m.roles.get(&role_id);
                (0..m.slots.len()).map(move |slot| {
                    let scope = role.map_or(Scope::None, |r| r.permissions.resolve(&m.slots, slot));
                    (m.action_ids[slot], scope.as_str().to_owned())
                })
            })
            .collect();
        TableIterator::new(rows)
    }

    /// The actions that take their setting from `action_id`: itself and the
    /// same action of every submodule that does not set its own.
    #[pg_extern(stable, parallel_restricted)]
    fn _inheriting_actions(action_id: i32) -> SetOfIterator<'static, i32> {
        let model = gucs::with_workspace(cache::model);
        let ids: Vec<i32> = model
            .iter()
            .flat_map(|m| {
                let from = m.slot_of_action.get(&action_id).copied();
                (0..m.slots.len())
                    .filter(move |&slot| {
                        std::iter::successors(Some(slot), |&s| m.slots[s].inherits_from)
                            .take(m.slots.len())
                            .any(|s| Some(s) == from)
                    })
                    .map(|slot| m.action_ids[slot])
            })
            .collect();
        SetOfIterator::new(ids)
    }
}
