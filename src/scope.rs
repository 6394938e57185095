//! Scopes and how a user's scope is resolved from roles and module
//! inheritance. Pure logic: no database, unit-tested with `cargo test`.

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
}

/// The explicit permissions of one role: `scopes[slot]` is `Some` where the
/// role sets that slot (an explicit `None` scope blocks inheritance).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolePermissions {
    pub scopes: Vec<Option<Scope>>,
}

impl RolePermissions {
    pub fn new(slot_count: usize) -> Self {
        RolePermissions { scopes: vec![None; slot_count] }
    }

    /// The role's scope on `slot`: its own setting, else what it has on the
    /// parent module's action of the same name, else `none`.
    pub fn resolve(&self, slots: &[Slot], slot: usize) -> Scope {
        let mut current = Some(slot);
        // Module parents form a tree (a parent must exist before its child),
        // but a bound keeps a corrupted catalog from looping forever.
        for _ in 0..=slots.len() {
            let Some(s) = current else { break };
            if let Some(scope) = self.scopes[s] {
                return scope;
            }
            current = slots[s].inherits_from;
        }
        Scope::None
    }
}

/// A user's effective scope on every slot: the widest over their roles.
pub fn effective_scopes(slots: &[Slot], roles: &[RolePermissions]) -> Vec<Scope> {
    (0..slots.len())
        .map(|slot| roles.iter().map(|role| role.resolve(slots, slot)).max().unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slots: 0 = billing.read, 1 = billing.write, 2 = invoices.read (child
    // of billing.read), 3 = invoices.write (child of billing.write),
    // 4 = invoices.approve (no parent action).
    fn slots() -> Vec<Slot> {
        vec![
            Slot { inherits_from: None },
            Slot { inherits_from: None },
            Slot { inherits_from: Some(0) },
            Slot { inherits_from: Some(1) },
            Slot { inherits_from: None },
        ]
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
        let chain = vec![
            Slot { inherits_from: None },
            Slot { inherits_from: Some(0) },
            Slot { inherits_from: Some(1) },
        ];
        let mut r = RolePermissions::new(3);
        r.scopes[0] = Some(Scope::Own);
        assert_eq!(r.resolve(&chain, 2), Scope::Own);
    }

    #[test]
    fn effective_scope_is_widest_over_roles() {
        let roles = [role(&[(0, Scope::Own), (4, Scope::All)]), role(&[(0, Scope::Team)])];
        let eff = effective_scopes(&slots(), &roles);
        assert_eq!(eff, vec![Scope::Team, Scope::None, Scope::Team, Scope::None, Scope::All]);
    }

    #[test]
    fn explicit_none_in_one_role_does_not_cancel_another_role() {
        let roles = [role(&[(2, Scope::None)]), role(&[(2, Scope::Own)])];
        assert_eq!(effective_scopes(&slots(), &roles)[2], Scope::Own);
    }

    #[test]
    fn no_roles_means_none_everywhere() {
        assert_eq!(effective_scopes(&slots(), &[]), vec![Scope::None; 5]);
    }

    #[test]
    fn a_cycle_in_a_corrupted_catalog_terminates() {
        let cyclic = vec![Slot { inherits_from: Some(1) }, Slot { inherits_from: Some(0) }];
        assert_eq!(RolePermissions::new(2).resolve(&cyclic, 0), Scope::None);
    }
}
