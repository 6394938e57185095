//! Scopes and how a user's scope is resolved from roles, overrides, feature
//! gates and module inheritance. Pure logic: no database, unit-tested with
//! `cargo test`.
//!
//! Precedence for one action of an active user who may sign in:
//! 1. a disabled module (or parent module) gives `none`;
//! 2. else an override of the user's, on the action or inherited from the
//!    same action of a parent module, gives its scope, wider or narrower;
//! 3. else the widest scope over the user's roles;
//! 4. else `none`.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

/// How many rows an action reaches, ordered `None < Own < Team < All`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    #[default]
    None,
    Own,
    Team,
    All,
}

impl Scope {
    pub const NAMES: [&'static str; 4] = ["none", "own", "team", "all"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "none" => Ok(Scope::None),
            "own" => Ok(Scope::Own),
            "team" => Ok(Scope::Team),
            "all" => Ok(Scope::All),
            _ => Err(()),
        }
    }
}

/// One (module, action) pair of a workspace. Slots are numbered densely so a
/// user's resolved permissions are a plain vector indexed by slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The slot of the same action on the nearest ancestor module that has
    /// it: where a role that does not set this slot takes its scope from.
    pub inherits_from: Option<usize>,
    /// False when the module or one of its ancestors is disabled.
    pub enabled: bool,
}

/// The explicit permissions of one role: `scopes[slot]` is `Some` where the
/// role sets that slot (an explicit `None` scope blocks inheritance).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolePermissions {
    pub scopes: Vec<Option<Scope>>,
}

impl RolePermissions {
    pub fn new(slot_count: usize) -> Self {
        RolePermissions {
            scopes: vec![None; slot_count],
        }
    }

    /// The setting that applies to `slot`: its own, else the one on the
    /// parent module's action of the same name; `None` if neither is set.
    pub fn setting(&self, slots: &[Slot], slot: usize) -> Option<Scope> {
        let mut current = Some(slot);
        // Module parents form a tree (a parent must exist before its child),
        // but a bound keeps a corrupted catalog from looping forever.
        for _ in 0..=slots.len() {
            let s = current?;
            if let Some(scope) = self.scopes[s] {
                return Some(scope);
            }
            current = slots[s].inherits_from;
        }
        None
    }

    /// The role's scope on `slot`: its setting, or `none` when unset.
    pub fn resolve(&self, slots: &[Slot], slot: usize) -> Scope {
        self.setting(slots, slot).unwrap_or_default()
    }
}

/// A user's effective scope on every slot, by the precedence above; the
/// user's overrides are kept like one more role's settings.
pub fn effective_scopes<R: Borrow<RolePermissions>>(
    slots: &[Slot],
    roles: &[R],
    overrides: &RolePermissions,
) -> Vec<Scope> {
    (0..slots.len())
        .map(|slot| {
            if !slots[slot].enabled {
                return Scope::None;
            }
            overrides.setting(slots, slot).unwrap_or_else(|| {
                roles
                    .iter()
                    .map(|role| role.borrow().resolve(slots, slot))
                    .max()
                    .unwrap_or_default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slots: 0 = billing.read, 1 = billing.write, 2 = invoices.read (child
    // of billing.read), 3 = invoices.write (child of billing.write),
    // 4 = invoices.approve (no parent action).
    fn slot(inherits_from: Option<usize>) -> Slot {
        Slot {
            inherits_from,
            enabled: true,
        }
    }

    fn slots() -> Vec<Slot> {
        vec![
            slot(None),
            slot(None),
            slot(Some(0)),
            slot(Some(1)),
            slot(None),
        ]
    }

    fn no_overrides() -> RolePermissions {
        RolePermissions::new(5)
    }

    fn role(settings: &[(usize, Scope)]) -> RolePermissions {
        let mut role = RolePermissions::new(5);
        for &(slot, scope) in settings {
            role.scopes[slot] = Some(scope);
        }
        role
    }

    #[test]
    fn scopes_are_ordered_and_round_trip() {
        assert!(Scope::None < Scope::Own && Scope::Own < Scope::Team && Scope::Team < Scope::All);
        for name in Scope::NAMES {
            assert_eq!(name.parse::<Scope>().unwrap().as_str(), name);
        }
        assert!("ALL".parse::<Scope>().is_err());
        assert!("".parse::<Scope>().is_err());
    }

    #[test]
    fn unset_slot_inherits_from_parent_module() {
        let r = role(&[(0, Scope::Team)]);
        assert_eq!(r.resolve(&slots(), 2), Scope::Team);
        assert_eq!(r.resolve(&slots(), 3), Scope::None);
    }

    #[test]
    fn explicit_setting_overrides_parent_even_when_narrower() {
        let r = role(&[(0, Scope::All), (2, Scope::None)]);
        assert_eq!(r.resolve(&slots(), 2), Scope::None);
        assert_eq!(r.resolve(&slots(), 0), Scope::All);
    }

    #[test]
    fn inheritance_walks_several_levels() {
        let chain = vec![slot(None), slot(Some(0)), slot(Some(1))];
        let mut r = RolePermissions::new(3);
        r.scopes[0] = Some(Scope::Own);
        assert_eq!(r.resolve(&chain, 2), Scope::Own);
    }

    #[test]
    fn effective_scope_is_widest_over_roles() {
        let roles = [
            role(&[(0, Scope::Own), (4, Scope::All)]),
            role(&[(0, Scope::Team)]),
        ];
        let eff = effective_scopes(&slots(), &roles, &no_overrides());
        assert_eq!(
            eff,
            vec![
                Scope::Team,
                Scope::None,
                Scope::Team,
                Scope::None,
                Scope::All
            ]
        );
    }

    #[test]
    fn explicit_none_in_one_role_does_not_cancel_another_role() {
        let roles = [role(&[(2, Scope::None)]), role(&[(2, Scope::Own)])];
        assert_eq!(
            effective_scopes(&slots(), &roles, &no_overrides())[2],
            Scope::Own
        );
    }

    #[test]
    fn no_roles_means_none_everywhere() {
        assert_eq!(
            effective_scopes::<RolePermissions>(&slots(), &[], &no_overrides()),
            vec![Scope::None; 5]
        );
    }

    #[test]
    fn a_cycle_in_a_corrupted_catalog_terminates() {
        let cyclic = vec![slot(Some(1)), slot(Some(0))];
        assert_eq!(RolePermissions::new(2).resolve(&cyclic, 0), Scope::None);
    }

    #[test]
    fn an_override_replaces_the_roles_scope_both_ways() {
        let roles = [role(&[(0, Scope::Own), (1, Scope::All)])];
        let overrides = role(&[(0, Scope::All), (1, Scope::None)]);
        let eff = effective_scopes(&slots(), &roles, &overrides);
        assert_eq!(eff[0], Scope::All, "widened");
        assert_eq!(eff[1], Scope::None, "an override of none denies");
    }

    #[test]
    fn an_override_reaches_submodules_unless_they_have_their_own() {
        let roles = [role(&[(2, Scope::All), (3, Scope::All)])];
        let overrides = role(&[(0, Scope::None), (1, Scope::None), (3, Scope::Own)]);
        let eff = effective_scopes(&slots(), &roles, &overrides);
        assert_eq!(eff[2], Scope::None, "inherited from the parent's override");
        assert_eq!(eff[3], Scope::Own, "the submodule's own override");
    }

    #[test]
    fn a_disabled_module_denies_even_an_override() {
        let mut gated = slots();
        gated[4].enabled = false;
        let roles = [role(&[(4, Scope::All)])];
        let overrides = role(&[(4, Scope::All)]);
        assert_eq!(effective_scopes(&gated, &roles, &overrides)[4], Scope::None);
        assert_eq!(
            effective_scopes(&slots(), &roles, &overrides)[4],
            Scope::All
        );
    }
}
