//! Reading the permission catalog into plain Rust values: a workspace's
//! modules, actions and compiled roles; one user's holdings; team sets;
//! administrative rights; token settings. Each is one kept-plan query run as
//! the catalog owner (src/owner.rs) against `sql/loaders.sql`.

use std::collections::HashMap;

use crate::hashing::FastMap;

use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use crate::owner::{as_catalog_owner, column, select, select_generic};
use crate::scope::{Condition, Facts, RolePermissions, Scope, Slot, Standing};

/// One role of a workspace, compiled: its explicit permissions by slot.
#[derive(Clone, Debug)]
pub struct CompiledRole {
    pub name: String,
    /// The template (and template role) it was made from.
    pub template: Option<(String, String)>,
    pub permissions: RolePermissions,
    /// Holding it lets a user sign in.
    pub grants_sign_in: bool,
}

/// The modules, actions and roles of one workspace, numbered into slots.
#[derive(Clone, Debug, Default)]
pub struct WorkspaceModel {
    pub workspace_id: i32,
    /// The workspace has sign-in roles: users must hold one to act.
    pub sign_in_required: bool,
    /// module name -> action name -> slot
    pub modules: FastMap<String, FastMap<String, usize>>,
    pub slots: Vec<Slot>,
    /// catalog action_id -> slot
    pub slot_of_action: HashMap<i32, usize>,
    /// catalog role_id -> compiled role
    pub roles: FastMap<i32, CompiledRole>,
    /// For explanations: each slot's module and action name, and the
    /// nearest disabled module (itself or an ancestor) that closes it.
    pub slot_names: Vec<(String, String)>,
    pub disabled_by: Vec<Option<String>>,
    /// slot -> catalog action_id
    pub action_ids: Vec<i32>,
    /// The permissions that give each administrative right, as (right,
    /// module, action): holding the action at scope `all` gives the right
    /// (`fluent.admin_rights`).
    pub admin_rights: Vec<(String, String, String)>,
    /// The item roles of the workspace's modules (`fluent.item_roles`).
    pub item_roles: Vec<ItemRole>,
    /// slot -> the item roles (indexes into `item_roles`) that give its
    /// action, in name order.
    pub item_roles_giving: FastMap<usize, Vec<usize>>,
}

/// One item role, compiled.
#[derive(Clone, Debug)]
pub struct ItemRole {
    pub name: String,
    pub module: String,
    /// The slots of the actions it gives.
    pub slots: Vec<usize>,
    pub condition: Condition,
}

/// What one user holds in one workspace.
#[derive(Debug)]
pub struct UserHoldings {
    pub user_id: i64,
    pub status: String,
    /// The roles held, sorted by id.
    pub roles: Vec<i32>,
    /// The user's overrides, by slot.
    pub overrides: Vec<(usize, Scope)>,
    /// Who set each override, by slot.
    pub override_set_by: Vec<(usize, String)>,
    /// When the next of the grants and overrides that count expires
    /// (microseconds since 2000, as `TimestampTz`); `None` if none expires.
    pub expires_at: Option<pg_sys::TimestampTz>,
}

impl UserHoldings {
    /// The roles held that the workspace has, compiled.
    pub fn held<'m>(&self, model: &'m WorkspaceModel) -> Vec<&'m CompiledRole> {
        self.roles
            .iter()
            .filter_map(|r| model.roles.get(r))
            .collect()
    }

    /// Whether the user may act in the workspace.
    pub fn standing(&self, model: &WorkspaceModel) -> Standing {
        if self.status != "active" {
            Standing::Inactive
        } else if model.sign_in_required && !self.held(model).iter().any(|r| r.grants_sign_in) {
            Standing::NoSignInRole
        } else {
            Standing::Active
        }
    }

    /// The overrides as settings by slot.
    pub fn override_settings(&self, model: &WorkspaceModel) -> RolePermissions {
        let mut overrides = RolePermissions::new(model.slots.len());
        for &(slot, scope) in &self.overrides {
            overrides.scopes[slot] = Some(scope);
        }
        overrides
    }

    /// What the decision reads for this user (src/scope.rs).
    pub fn decision_inputs<'m>(&self, model: &'m WorkspaceModel) -> DecisionInputs<'m> {
        let held = self.held(model);
        DecisionInputs {
            permissions: held.iter().map(|r| &r.permissions).collect(),
            held,
            overrides: self.override_settings(model),
            standing: self.standing(model),
        }
    }
}

/// One user's roles, overrides and standing in a workspace, owned so that
/// the decision's `Facts` can borrow them: what the reports, explanations
/// and `fluent_who_can` decide from.
pub struct DecisionInputs<'m> {
    pub held: Vec<&'m CompiledRole>,
    permissions: Vec<&'m RolePermissions>,
    overrides: RolePermissions,
    standing: Standing,
}

impl<'m> DecisionInputs<'m> {
    /// For a user the catalog does not know: no role, no override, inactive.
    pub fn nobody(model: &WorkspaceModel) -> DecisionInputs<'m> {
        DecisionInputs {
            held: Vec::new(),
            permissions: Vec::new(),
            overrides: RolePermissions::new(model.slots.len()),
            standing: Standing::Inactive,
        }
    }

    pub fn facts<'a>(&'a self, model: &'a WorkspaceModel) -> Facts<'a, &'m RolePermissions> {
        Facts {
            standing: self.standing,
            slots: &model.slots,
            roles: &self.permissions,
            overrides: &self.overrides,
        }
    }

    /// The override set on or inherited by the slot, if any.
    pub fn override_setting(&self, model: &WorkspaceModel, slot: usize) -> Option<Scope> {
        self.overrides.setting(&model.slots, slot)
    }

    /// The held roles that give the widest scope on the slot, by name and
    /// sorted; none when no role gives anything.
    pub fn widest_roles(&self, model: &WorkspaceModel, slot: usize) -> Vec<String> {
        let scopes: Vec<Scope> = self
            .permissions
            .iter()
            .map(|p| p.resolve(&model.slots, slot))
            .collect();
        let widest = scopes.iter().copied().max().unwrap_or_default();
        let mut names: Vec<String> = self
            .held
            .iter()
            .zip(&scopes)
            .filter(|(_, s)| **s == widest && widest > Scope::None)
            .map(|(r, _)| r.name.clone())
            .collect();
        names.sort();
        names
    }
}

/// Loads the modules, actions and roles of a workspace; `None` if it does
/// not exist.
pub fn load_workspace(name: &str) -> Option<WorkspaceModel> {
    load_workspace_keeping(name, None)
}

/// Loads the workspace again after its model changed, and its roles
/// `changed`. When the actions are those of `old` (with new ones after
/// them, as a new module's), the other roles compiled in `old` are taken
/// as they are: their slots did not move.
pub fn reload_workspace(
    name: &str,
    old: &WorkspaceModel,
    changed: &[i32],
) -> Option<WorkspaceModel> {
    load_workspace_keeping(name, Some((old, changed)))
}

fn load_workspace_keeping(
    name: &str,
    keep: Option<(&WorkspaceModel, &[i32])>,
) -> Option<WorkspaceModel> {
    as_catalog_owner(|client| {
        let rows = select(
            client,
            "SELECT * FROM fluent._load_workspace($1)",
            &[name.into()],
        );
        let mut model: Option<WorkspaceModel> = None;
        // module_id -> (parent_id, enabled), for every module.
        let mut modules: HashMap<i32, (Option<i32>, bool)> = HashMap::new();
        let mut module_names: HashMap<i32, String> = HashMap::new();
        // (module_id, action name, slot), to link parents once all are known.
        let mut pending = Vec::new();
        for row in rows {
            let ws = model.get_or_insert_with(|| WorkspaceModel {
                workspace_id: column::<i32>(&row, 1).unwrap_or_default(),
                sign_in_required: column::<bool>(&row, 2).unwrap_or_default(),
                ..Default::default()
            });
            let (Some(module_id), Some(module)) =
                (column::<i32>(&row, 3), column::<String>(&row, 4))
            else {
                continue;
            };
            modules.insert(
                module_id,
                (
                    column::<i32>(&row, 5),
                    column::<bool>(&row, 6).unwrap_or(true),
                ),
            );
            module_names.insert(module_id, module.clone());
            let (Some(action_id), Some(action)) =
                (column::<i32>(&row, 7), column::<String>(&row, 8))
            else {
                ws.modules.entry(module).or_default();
                continue;
            };
            let slot = ws.slots.len();
            ws.slots.push(Slot {
                inherits_from: None,
                enabled: true,
                requires: None,
            });
            ws.slot_of_action.insert(action_id, slot);
            ws.slot_names.push((module.clone(), action.clone()));
            ws.action_ids.push(action_id);
            pending.push((module_id, action.clone(), slot));
            ws.modules.entry(module).or_default().insert(action, slot);
        }
        let mut ws = model?;
        let mut item_role_ids: Vec<i32> = Vec::new();
        let parent = |m: i32| modules.get(&m).and_then(|(p, _)| *p);
        let slot_of: HashMap<(i32, &str), usize> = pending
            .iter()
            .map(|(m, a, s)| ((*m, a.as_str()), *s))
            .collect();
        for (module_id, action, slot) in &pending {
            // Module parents form a tree; the bound guards a corrupted catalog.
            let ancestors: Vec<i32> = std::iter::successors(parent(*module_id), |&a| parent(a))
                .take(modules.len())
                .collect();
            // Disabled when the module or any ancestor is; the nearest says.
            let disabled_by = std::iter::once(*module_id)
                .chain(ancestors.iter().copied())
                .find(|m| modules.get(m).is_some_and(|(_, enabled)| !*enabled));
            ws.slots[*slot].enabled = disabled_by.is_none();
            ws.disabled_by
                .push(disabled_by.and_then(|m| module_names.get(&m).cloned()));
            // Nearest ancestor that declares the same action.
            ws.slots[*slot].inherits_from = ancestors
                .iter()
                .find_map(|&a| slot_of.get(&(a, action.as_str())).copied());
        }
        // Requirements: a module's apply to each of its actions but the
        // required one; an action's own (read last) wins.
        for row in select(
            client,
            "SELECT * FROM fluent._load_requirements($1)",
            &[ws.workspace_id.into()],
        ) {
            let required = column::<i32>(&row, 3).and_then(|a| ws.slot_of_action.get(&a).copied());
            let module: Option<i32> = column(&row, 1);
            let targets: Vec<usize> = match column::<i32>(&row, 2) {
                Some(action) => ws
                    .slot_of_action
                    .get(&action)
                    .copied()
                    .into_iter()
                    .collect(),
                None => pending
                    .iter()
                    .filter(|(m, _, _)| Some(*m) == module)
                    .map(|(_, _, s)| *s)
                    .collect(),
            };
            for slot in targets.into_iter().filter(|&s| Some(s) != required) {
                ws.slots[slot].requires = required;
            }
        }
        ws.admin_rights = select(
            client,
            "SELECT * FROM fluent._load_admin_rights($1)",
            &[name.into()],
        )
        .map(|row| {
            (
                column(&row, 1).unwrap_or_default(),
                column(&row, 2).unwrap_or_default(),
                column(&row, 3).unwrap_or_default(),
            )
        })
        .collect();
        // One row per item role and action, by item role.
        for row in select(
            client,
            "SELECT * FROM fluent._load_item_roles($1)",
            &[ws.workspace_id.into()],
        ) {
            let (Some(id), Some(name), Some(module)) = (
                column::<i32>(&row, 1),
                column::<String>(&row, 2),
                column::<String>(&row, 3),
            ) else {
                continue;
            };
            let slot = column::<i32>(&row, 4).and_then(|a| ws.slot_of_action.get(&a).copied());
            let condition = match (column::<i32>(&row, 5), column::<i32>(&row, 6)) {
                (Some(role), _) => Condition::Role(role),
                // A required permission the model lacks is never held.
                (None, Some(action)) => Condition::Permission(
                    ws.slot_of_action
                        .get(&action)
                        .copied()
                        .unwrap_or(usize::MAX),
                ),
                (None, None) => Condition::None,
            };
            if item_role_ids.last() != Some(&id) {
                item_role_ids.push(id);
                ws.item_roles.push(ItemRole {
                    name,
                    module,
                    slots: Vec::new(),
                    condition,
                });
            }
            let index = ws.item_roles.len() - 1;
            if let Some(slot) = slot {
                ws.item_roles[index].slots.push(slot);
                ws.item_roles_giving.entry(slot).or_default().push(index);
            }
        }
        match keep {
            Some((old, changed))
                if old.workspace_id == ws.workspace_id
                    && ws.action_ids.starts_with(&old.action_ids) =>
            {
                ws.roles = old.roles.clone();
                for role in ws.roles.values_mut() {
                    role.permissions.scopes.resize(ws.slots.len(), None);
                }
                if !changed.is_empty() {
                    load_roles(client, &mut ws, Some(changed));
                }
            }
            _ => load_roles(client, &mut ws, None),
        }
        Some(ws)
    })
}

/// Compiles the workspace's roles `only` (all of them for `None`) into
/// `ws.roles`: those of them the catalog no longer has are dropped.
fn load_roles(client: &SpiClient<'_>, ws: &mut WorkspaceModel, only: Option<&[i32]>) {
    match only {
        Some(ids) => ws.roles.retain(|id, _| !ids.contains(id)),
        None => ws.roles.clear(),
    }
    for row in select(
        client,
        "SELECT * FROM fluent._load_roles($1, $2)",
        &[ws.workspace_id.into(), only.map(<[i32]>::to_vec).into()],
    ) {
        let role_id: i32 = column(&row, 1).unwrap_or_default();
        let slots = ws.slots.len();
        let role = ws.roles.entry(role_id).or_insert_with(|| CompiledRole {
            name: column(&row, 5).unwrap_or_default(),
            template: column::<String>(&row, 6).zip(column::<String>(&row, 7)),
            permissions: RolePermissions::new(slots),
            grants_sign_in: column::<bool>(&row, 2).unwrap_or_default(),
        });
        let slot = column::<i32>(&row, 3).and_then(|a| ws.slot_of_action.get(&a).copied());
        let scope = column::<String>(&row, 4).and_then(|s| s.parse::<Scope>().ok());
        if let (Some(slot), Some(scope)) = (slot, scope) {
            role.permissions.scopes[slot] = Some(scope);
        }
    }
}

/// The model with the roles `changed` compiled again (after their
/// permissions, flags or names changed, or they were made or dropped;
/// modules and actions, whose changes reload the whole model, stay).
pub fn reload_roles(model: &WorkspaceModel, changed: &[i32]) -> WorkspaceModel {
    let mut ws = model.clone();
    as_catalog_owner(|client| load_roles(client, &mut ws, Some(changed)));
    ws
}

/// One entry of the change log: what a catalog write can affect.
#[derive(Debug)]
pub struct Change {
    /// `None`: every workspace.
    pub workspace_id: Option<i32>,
    /// `user`, `role`, `workspace` or `teams`.
    pub kind: String,
    /// The user or role.
    pub id: Option<i64>,
}

/// The change log entries the previous look's snapshot did not see.
pub struct ChangeLog {
    pub changes: Vec<Change>,
    /// The highest transaction id whose entries were pruned (entries at or
    /// below it may be gone).
    pub pruned_below: u64,
    /// The snapshot this look read with (`pg_snapshot` text): the next
    /// look reads what it did not see.
    pub seen: String,
}

impl ChangeLog {
    /// Whether every entry a look from snapshot `seen` needs is still
    /// there: the entries pruned, whose transaction ids are at most
    /// `pruned_below` (the highest pruned), are all below its xmin, so that
    /// snapshot saw them. (The transaction at its xmin was running then: its
    /// entries are needed.)
    pub fn complete_since(&self, seen: &str) -> bool {
        seen.split(':')
            .next()
            .and_then(|xmin| xmin.parse::<u64>().ok())
            .is_some_and(|xmin| self.pruned_below < xmin)
    }
}

/// What changed that snapshot `seen` did not see (nothing for `None`).
pub fn load_changes(seen: Option<&str>) -> ChangeLog {
    as_catalog_owner(|client| {
        let mut log = ChangeLog {
            changes: Vec::new(),
            pruned_below: u64::MAX,
            seen: String::new(),
        };
        // Every look runs it: its generic plan reads the log's index on xid
        // as a custom plan does, without planning the query at each look.
        for row in select_generic(
            client,
            "SELECT * FROM fluent._load_changes($1)",
            &[seen.into()],
        ) {
            log.pruned_below = column::<String>(&row, 4)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            log.seen = column(&row, 5).unwrap_or_default();
            if let Some(kind) = column::<String>(&row, 2) {
                log.changes.push(Change {
                    workspace_id: column(&row, 1),
                    kind,
                    id: column(&row, 3),
                });
            }
        }
        log
    })
}

/// A user's holdings from a row of `_load_user` or `_load_holdings`,
/// whose columns from `first` on are: user_id, status, role_ids,
/// override_actions, override_scopes, override_set_by, expires_at.
fn holdings_from(
    ws: &WorkspaceModel,
    row: &pgrx::spi::SpiHeapTupleData<'_>,
    first: usize,
) -> UserHoldings {
    let actions: Vec<i32> = column(row, first + 3).unwrap_or_default();
    let scopes: Vec<String> = column(row, first + 4).unwrap_or_default();
    let set_by: Vec<String> = column(row, first + 5).unwrap_or_default();
    UserHoldings {
        user_id: column(row, first).unwrap_or_default(),
        status: column(row, first + 1).unwrap_or_default(),
        roles: column(row, first + 2).unwrap_or_default(),
        overrides: actions
            .iter()
            .zip(&scopes)
            .filter_map(|(a, s)| Some((*ws.slot_of_action.get(a)?, s.parse().ok()?)))
            .collect(),
        override_set_by: actions
            .iter()
            .zip(set_by)
            .filter_map(|(a, by)| Some((*ws.slot_of_action.get(a)?, by)))
            .collect(),
        expires_at: column::<pgrx::datetime::TimestampWithTimeZone>(row, first + 6).map(Into::into),
    }
}

/// What `key` holds in the workspace; `None` for an unknown user.
pub fn load_user(ws: &WorkspaceModel, key: &str) -> Option<UserHoldings> {
    as_catalog_owner(|client| {
        let rows = select(
            client,
            "SELECT * FROM fluent._load_user($1, $2)",
            &[ws.workspace_id.into(), key.into()],
        );
        let row = rows.into_iter().next()?;
        Some(holdings_from(ws, &row, 1))
    })
}

/// What `key` holds in the workspace if it holds a role or an override
/// there: the row `load_all_holdings` has for them, by one index probe.
pub fn load_holder(ws: &WorkspaceModel, key: &str) -> Option<UserHoldings> {
    as_catalog_owner(|client| {
        let rows = select(
            client,
            "SELECT * FROM fluent._load_user($1, $2)",
            &[ws.workspace_id.into(), key.into()],
        );
        let row = rows.into_iter().next()?;
        // role_ids and override_actions (NULL without an override).
        let holds = !column::<Vec<i32>>(&row, 3).unwrap_or_default().is_empty()
            || column::<Vec<i32>>(&row, 4).is_some();
        holds.then(|| holdings_from(ws, &row, 1))
    })
}

/// Whether `key` names a user who belongs to other workspaces and not to the
/// current one (`fluent._belongs_elsewhere_only`).
pub fn belongs_elsewhere_only(key: &str) -> bool {
    as_catalog_owner(|client| {
        select(
            client,
            "SELECT fluent._belongs_elsewhere_only(u.user_id) FROM fluent.users u
              WHERE u.user_key OPERATOR(pg_catalog.=) $1",
            &[key.into()],
        )
        .next()
        .and_then(|row| column::<bool>(&row, 1))
        .unwrap_or(false)
    })
}

/// What every user holding a role or an override in the workspace holds,
/// by user key, in one query.
pub fn load_all_holdings(ws: &WorkspaceModel) -> Vec<(String, UserHoldings)> {
    as_catalog_owner(|client| {
        select(
            client,
            "SELECT * FROM fluent._load_holdings($1)",
            &[ws.workspace_id.into()],
        )
        .filter_map(|row| Some((column::<String>(&row, 1)?, holdings_from(ws, &row, 2))))
        .collect()
    })
}

/// How one user reaches another's rows through scope `direct` or `team`.
pub struct Reacher {
    pub user: String,
    /// The user reached.
    pub reached: String,
    /// "manager" or "team lead".
    pub relation: String,
    /// For a manager, how many levels above the user reached.
    pub depth: i32,
}

/// Who reaches the users `keys` through scope `direct` or `team`: the
/// inverse of `load_team`, in one query.
pub fn load_reachers(workspace_id: i32, keys: &[String]) -> Vec<Reacher> {
    as_catalog_owner(|client| {
        select(
            client,
            "SELECT * FROM fluent._load_reachers($1, $2)",
            &[workspace_id.into(), keys.to_vec().into()],
        )
        .filter_map(|row| {
            Some(Reacher {
                user: column(&row, 1)?,
                reached: column(&row, 2)?,
                relation: column(&row, 3)?,
                depth: column(&row, 4)?,
            })
        })
        .collect()
    })
}

/// A row of a protected table, as `fluent_who_can` reads it (src/rows.rs).
pub struct RowFacts {
    pub module: String,
    pub owner: Option<String>,
    /// The row's workspace when the table has a workspace column (`Some(None)`:
    /// the row's is NULL); `None` when it has none.
    pub workspace: Option<Option<String>>,
    pub assignees: Vec<String>,
    /// The module whose item roles apply to the row (its own, or its
    /// parent's), and the row's assignments: (user, team, item role).
    pub item_module: Option<String>,
    pub assignments: Vec<Assignment>,
}

/// One assignment of an item role on a row (or on its parent): to a user or
/// to a team. (On Citus, read on the node holding it and sent back.)
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Assignment {
    pub user: Option<String>,
    pub team: Option<String>,
    pub item_role: String,
}

/// Where to find a row of a protected table (`fluent._row_lookup`).
pub struct RowLookup {
    pub module: String,
    pub key_column: String,
    pub owner_column: Option<String>,
    pub workspace_column: Option<String>,
    pub membership_row_column: Option<String>,
    pub membership_user_column: Option<String>,
    /// The table with its partitions and children.
    pub relations: Vec<pg_sys::Oid>,
    /// The membership table with its partitions and children.
    pub membership_relations: Vec<pg_sys::Oid>,
    /// Item roles: the module whose item roles apply, the table's column
    /// naming the item (its key, or its parent's key), and the assignment
    /// table's columns and relations.
    pub item_module: Option<String>,
    pub item_column: Option<String>,
    pub assignment_row_column: Option<String>,
    pub assignment_user_column: Option<String>,
    pub assignment_team_column: Option<String>,
    pub assignment_role_column: Option<String>,
    pub assignment_relations: Vec<pg_sys::Oid>,
}

/// Where to find a row of `table`, from the catalog.
pub fn row_lookup(table: pg_sys::Oid) -> RowLookup {
    as_catalog_owner(|client| {
        let row = select(
            client,
            "SELECT module, key_column::pg_catalog.text, owner_column::pg_catalog.text,
                    workspace_column::pg_catalog.text, membership_row_column::pg_catalog.text,
                    membership_user_column::pg_catalog.text, relations::pg_catalog.oid[],
                    membership_relations::pg_catalog.oid[], item_module, item_column::pg_catalog.text,
                    assignment_row_column::pg_catalog.text, assignment_user_column::pg_catalog.text,
                    assignment_team_column::pg_catalog.text, assignment_role_column::pg_catalog.text,
                    assignment_relations::pg_catalog.oid[]
               FROM fluent._row_lookup($1)",
            &[table.into()],
        )
        .next()
        .unwrap_or_else(|| pgrx::error!("fluent._row_lookup returned no row"));
        RowLookup {
            module: column(&row, 1).unwrap_or_default(),
            key_column: column(&row, 2).unwrap_or_default(),
            owner_column: column(&row, 3),
            workspace_column: column(&row, 4),
            membership_row_column: column(&row, 5),
            membership_user_column: column(&row, 6),
            relations: column(&row, 7).unwrap_or_default(),
            membership_relations: column(&row, 8).unwrap_or_default(),
            item_module: column(&row, 9),
            item_column: column(&row, 10),
            assignment_row_column: column(&row, 11),
            assignment_user_column: column(&row, 12),
            assignment_team_column: column(&row, 13),
            assignment_role_column: column(&row, 14),
            assignment_relations: column(&row, 15).unwrap_or_default(),
        }
    })
}

/// The names of all workspaces.
pub fn workspace_names() -> Vec<String> {
    as_catalog_owner(|client| {
        select(client, "SELECT * FROM fluent._load_workspaces()", &[])
            .filter_map(|row| column::<String>(&row, 1))
            .collect()
    })
}

/// Keys of the users whose rows scope `team` (or, with `direct`, scope
/// `direct`) adds for this user, and the teams the user leads (the team
/// changes that change those keys, besides the reporting line's), read in
/// one snapshot.
pub fn load_team(workspace_id: i32, user_id: i64, direct: bool) -> (Vec<String>, Vec<i64>) {
    as_catalog_owner(|client| {
        select(
            client,
            "SELECT ARRAY(SELECT t.user_key FROM fluent._load_team($1, $2, $3) t),
                    fluent._load_led_teams($1, $2)",
            &[workspace_id.into(), user_id.into(), direct.into()],
        )
        .next()
        .map(|row| {
            (
                column::<Vec<String>>(&row, 1).unwrap_or_default(),
                column::<Vec<i64>>(&row, 2).unwrap_or_default(),
            )
        })
        .unwrap_or_default()
    })
}

/// The names of the teams the user is a member of.
pub fn load_member_teams(workspace_id: i32, user_id: i64) -> Vec<String> {
    as_catalog_owner(|client| {
        select(
            client,
            "SELECT * FROM fluent._load_member_teams($1, $2)",
            &[workspace_id.into(), user_id.into()],
        )
        .filter_map(|row| column::<String>(&row, 1))
        .collect()
    })
}

/// The members of the named teams, as (team, user key).
pub fn load_team_members(workspace_id: i32, teams: &[String]) -> Vec<(String, String)> {
    if teams.is_empty() {
        return Vec::new();
    }
    as_catalog_owner(|client| {
        select(
            client,
            "SELECT * FROM fluent._load_team_members($1, $2)",
            &[workspace_id.into(), teams.to_vec().into()],
        )
        .filter_map(|row| Some((column::<String>(&row, 1)?, column::<String>(&row, 2)?)))
        .collect()
    })
}

/// How tokens are verified: the row of `fluent.token_settings`.
pub struct TokenSettings {
    pub keys: Option<String>,
    pub audiences: Vec<String>,
    pub issuer: Option<String>,
    pub leeway: u64,
    pub user_claim: String,
    pub workspace_claim: Option<String>,
    /// Create an unknown subject (else refuse the token).
    pub create_unknown: bool,
    pub new_user_roles: Vec<String>,
}

pub fn load_token_settings() -> TokenSettings {
    as_catalog_owner(|client| {
        let rows = select(client, "SELECT * FROM fluent._load_token_settings()", &[]);
        let row = rows
            .into_iter()
            .next()
            .unwrap_or_else(|| pgrx::error!("fluent.token_settings has no row"));
        TokenSettings {
            keys: column(&row, 1),
            audiences: column(&row, 2).unwrap_or_default(),
            issuer: column(&row, 3),
            leeway: column::<i32>(&row, 4).unwrap_or_default().max(0) as u64,
            user_claim: column(&row, 5).unwrap_or_else(|| "sub".into()),
            workspace_claim: column(&row, 6),
            create_unknown: column::<String>(&row, 7).as_deref() == Some("create"),
            new_user_roles: column(&row, 8).unwrap_or_default(),
        }
    })
}
