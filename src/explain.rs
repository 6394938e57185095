//! `fluent_explain`: why a user may or may not do something.
//!
//! The facts come from the catalog (`fluent._explain` in sql/views.sql, read
//! as the catalog owner); the conclusion they reach is checked against the
//! scope the cache enforces, so an explanation can never describe rules
//! other than the ones applied.

use pgrx::prelude::*;

use crate::cache;
use crate::delegation;
use crate::error::FluentError;
use crate::gucs;
use crate::owner::{as_catalog_owner, column, select};

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
            value.unwrap_or_else(|| FluentError::NullArgument { argument, hint }.report())
        });
    // What others may do is for administrators and reporting roles to see.
    delegation::require_may_read_permissions_of(user);
    let workspace = gucs::with_workspace(str::to_owned);
    let enforced = cache::scope(&workspace, user, module, action).unwrap_or_else(|e| e.report());
    let facts = explain_facts(&workspace, user, module, action);
    let explained = facts
        .last()
        .and_then(|fact| fact.3.clone())
        .unwrap_or_default();
    if explained != enforced.as_str() {
        FluentError::ExplainDisagrees {
            explained,
            enforced: enforced.as_str().to_owned(),
        }
        .report();
    }
    TableIterator::new(facts)
}

/// One row of fluent_explain(): step, fact, subject, scope, detail.
type ExplainFact = (i32, String, Option<String>, Option<String>, Option<String>);

/// The facts behind the decision on `module.action` for `user`, from
/// `fluent._explain` (sql/views.sql); module and action must exist.
fn explain_facts(workspace: &str, user: &str, module: &str, action: &str) -> Vec<ExplainFact> {
    as_catalog_owner(|client| {
        select(
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
