//! `fluent_explain`: why a user may or may not do something.
//!
//! The facts are the ones the decision itself weighs (`scope::explain`, the
//! same function the cache and the policies use), with their names from the
//! workspace model: so an explanation can never describe rules other than
//! the ones applied.

use pgrx::prelude::*;

use crate::cache;
use crate::delegation;
use crate::error::FluentError;
use crate::gucs;
use crate::identity;
use crate::loaders::{self, WorkspaceModel};
use crate::scope::{self, Source};

/// One row of fluent_explain(): step, fact, subject, scope, detail.
type Fact = (i32, String, Option<String>, Option<String>, Option<String>);

/// One row per fact that decides the scope `user_key` has on `module.action`
/// in the current workspace (status, sign-in role, module gate, parent
/// modules, each role, an override), then a `result` row with that scope.
// pgrx reads the column names from the `name!` markers in the signature, so
// the row type cannot be a type alias.
#[allow(clippy::type_complexity)]
#[pg_extern(stable, parallel_restricted)]
fn fluent_explain(
    user_key: Option<&str>,
    module: Option<&str>,
    action: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(step, i32),
        name!(fact, String),
        name!(subject, Option<String>),
        name!(scope, Option<String>),
        name!(detail, Option<String>),
    ),
> {
    let hint = "Pass the user key and the module and action names.";
    let [user, module, action] =
        [("user", user_key), ("module", module), ("action", action)].map(|(argument, value)| {
            value.unwrap_or_else(|| {
                FluentError::NullArgument {
                    argument: argument.into(),
                    hint,
                }
                .report()
            })
        });
    // What others may do is for administrators and reporting roles to see.
    delegation::require_may_read_permissions_of(user);
    let workspace = gucs::with_workspace(str::to_owned);
    let (model, slot) =
        cache::model_and_slot(&workspace, module, action).unwrap_or_else(|e| e.report());
    TableIterator::new(facts(&model, slot, user))
}
extension_sql!(
    r#"COMMENT ON FUNCTION @extschema@.fluent_explain(text, text, text) IS
    'Why the user has the scope they have on the module''s action: one row per deciding fact, then the result; anyone may explain themselves, fluent_admin and fluent_reader anyone';"#,
    name = "fluent_explain_comment",
    requires = [fluent_explain]
);

fn facts(model: &WorkspaceModel, slot: usize, user: &str) -> Vec<Fact> {
    // A delegated administrator is confined to the workspace: a user of
    // other workspaces only is unknown to them, status and all.
    let confined =
        !identity::current_role_reads_all() && gucs::with_acting(|acting, _| acting != Some(user));
    let holdings = if confined && loaders::belongs_elsewhere_only(user) {
        None
    } else {
        loaders::load_user(model, user)
    };
    let mut rows: Vec<Fact> = Vec::new();
    let mut fact =
        |fact: &str, subject: Option<String>, scope: Option<scope::Scope>, detail: String| {
            rows.push((
                rows.len() as i32 + 1,
                fact.to_owned(),
                subject,
                scope.map(|s| s.as_str().to_owned()),
                Some(detail),
            ));
        };
    let name = |slot: usize| {
        let (module, action) = &model.slot_names[slot];
        format!("{module}.{action}")
    };
    let (module, action) = &model.slot_names[slot];

    let active = holdings.as_ref().is_some_and(|h| h.status == "active");
    fact(
        "user",
        Some(user.to_owned()),
        None,
        match &holdings {
            None => "unknown user: granted nothing".into(),
            Some(h) if !active => format!("{}: granted nothing, whatever the roles", h.status),
            Some(_) => "active".into(),
        },
    );
    let inputs = holdings.as_ref().map_or_else(
        || loaders::DecisionInputs::nobody(model),
        |h| h.decision_inputs(model),
    );
    let held = &inputs.held;
    let holds_sign_in = held.iter().any(|r| r.grants_sign_in);
    if model.sign_in_required && holdings.is_some() {
        let mut names: Vec<&str> = model
            .roles
            .values()
            .filter(|r| r.grants_sign_in)
            .map(|r| r.name.as_str())
            .collect();
        names.sort_unstable();
        fact(
            "sign-in",
            Some(names.join(", ")),
            None,
            if holds_sign_in {
                "holds a sign-in role".into()
            } else {
                "holds no sign-in role: granted nothing".into()
            },
        );
    }
    fact(
        "module",
        Some(module.clone()),
        None,
        match &model.disabled_by[slot] {
            None => "enabled".into(),
            Some(by) if by == module => "disabled: denies every action to everyone".into(),
            Some(by) => {
                format!("disabled with its parent module {by}: denies every action to everyone")
            }
        },
    );
    let parents = std::iter::successors(model.slots[slot].inherits_from, |&s| {
        model.slots[s].inherits_from
    })
    .take(model.slots.len());
    for parent in parents {
        fact(
            "parent module",
            Some(name(parent)),
            None,
            format!(
                "a role or override that does not set {module}.{action} takes it from {}",
                name(parent)
            ),
        );
    }

    let explanation = scope::explain(&inputs.facts(model), slot);
    if let Some((required, held)) = explanation.requirement {
        let detail = if held > scope::Scope::None {
            format!("{module}.{action} requires it; held")
        } else {
            format!("{module}.{action} requires it; missing: nothing else here counts")
        };
        fact("requirement", Some(name(required)), Some(held), detail);
    }
    let mut roles = explanation.roles;
    roles.sort_by(|a, b| {
        b.scope
            .cmp(&a.scope)
            .then_with(|| held[a.role].name.cmp(&held[b.role].name))
    });
    for role in &roles {
        fact(
            "role",
            Some(held[role.role].name.clone()),
            Some(role.scope),
            match role.set_on {
                None => "not set: none".into(),
                Some(on) if on == slot => format!("set on {}", name(on)),
                Some(on) => format!("inherited from {}", name(on)),
            },
        );
    }
    if roles.is_empty() {
        fact("role", None, None, "holds no role in this workspace".into());
    }
    if let Some((scope, on)) = explanation.override_ {
        let set_by = holdings
            .iter()
            .flat_map(|h| &h.override_set_by)
            .find(|(s, _)| *s == on)
            .map(|(_, by)| by.clone())
            .unwrap_or_default();
        fact(
            "override",
            Some(name(on)),
            Some(scope),
            format!("set by {set_by}; replaces what the roles give"),
        );
    }
    let decision = explanation.decision;
    let item_roles: Vec<&str> = model
        .item_roles_giving
        .get(&slot)
        .into_iter()
        .flatten()
        .map(|&i| model.item_roles[i].name.as_str())
        .collect();
    if !item_roles.is_empty() {
        fact(
            "item roles",
            Some(item_roles.join(", ")),
            None,
            if decision.admits_item_roles() {
                format!("give {module}.{action} on the items where the user holds one, directly or through a team (fluent_who_can names them), whatever the scope")
            } else {
                "give nothing: what closes the module closes them too".into()
            },
        );
    }
    let why = match decision.source {
        Source::NoSignInRole => "the user holds no sign-in role",
        Source::Inactive => "the user may not act",
        Source::ModuleDisabled => "the module is disabled",
        Source::RequirementMissing { .. } => "the required permission is missing",
        Source::Override { .. } => "the override decides",
        Source::Roles => "the widest scope over the roles held",
        Source::NoRole => "no role grants it",
    };
    fact(
        "result",
        Some(user.to_owned()),
        Some(decision.scope),
        why.into(),
    );
    rows
}
