//! Scopes, and the one decision of what a user may do: `decide` computes,
//! for one user and one action (slot), the scope and where it comes from;
//! `explain` adds every fact behind it. The cache, the policy helpers,
//! `fluent_explain` and the reporting views all read these; nothing else
//! restates the rule. Pure logic: no database, unit-tested with `cargo test`,
//! including a property test against a naive reference.
//!
//! Precedence for one action:
//! 1. a user who is unknown, ghost, disabled or invited gets `none`;
//! 2. so does one without a sign-in role, in a workspace that has them;
//! 3. a disabled module (or parent module) gives `none`;
//! 4. so does a missing required permission (the module or action requires
//!    another one, held at some scope, itself decided by these rules);
//! 5. else an override of the user's, on the action or inherited from the
//!    same action of a parent module, gives its scope, wider or narrower;
//! 6. else the widest scope over the user's roles, each role's setting on the
//!    action or inherited from the same action of a parent module;
//! 7. else `none`.
//!
//! Item roles (held on one item through an assignment table) add the items
//! where they are held to the rows a scope reaches. They count where the
//! decision was made by an override, the roles or their absence (5-7): what
//! rules 1-4 close, item roles never open (`admits_item_roles`).

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

/// How many rows an action reaches, ordered `None < Own < Direct < Team < All`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    #[default]
    None,
    Own,
    /// Own rows, plus those of direct reports and members of teams led.
    Direct,
    /// Own rows, plus those of everyone in the reporting line below and
    /// members of teams led.
    Team,
    All,
}

impl Scope {
    pub const NAMES: [&'static str; 5] = ["none", "own", "direct", "team", "all"];

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
            "direct" => Ok(Scope::Direct),
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
    /// The slot whose permission this one requires: without it, nothing else
    /// on this slot counts (seed 002: Project Access opens the Projects module).
    pub requires: Option<usize>,
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

    /// The setting that applies to `slot` and the slot it is set on.
    pub fn setting_with_source(&self, slots: &[Slot], slot: usize) -> Option<(Scope, usize)> {
        let mut current = Some(slot);
        for _ in 0..=slots.len() {
            let s = current?;
            if let Some(scope) = self.scopes[s] {
                return Some((scope, s));
            }
            current = slots[s].inherits_from;
        }
        None
    }
}

/// Whether the user may act at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Active,
    /// Unknown, ghost, disabled or invited.
    Inactive,
    /// The workspace has sign-in roles and the user holds none.
    NoSignInRole,
}

/// Everything one user's decisions depend on in one workspace.
pub struct Facts<'a, R: Borrow<RolePermissions>> {
    pub standing: Standing,
    pub slots: &'a [Slot],
    pub roles: &'a [R],
    pub overrides: &'a RolePermissions,
}

/// What decided a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The user is unknown, ghost, disabled or invited.
    Inactive,
    /// The workspace has sign-in roles and the user holds none.
    NoSignInRole,
    /// The module or a parent module is disabled.
    ModuleDisabled,
    /// The permission the slot requires is missing.
    RequirementMissing { required: usize },
    /// An override, set on this slot.
    Override { set_on: usize },
    /// The widest scope over the roles held.
    Roles,
    /// No role grants it.
    NoRole,
}

/// One decision: the scope and what decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub scope: Scope,
    pub source: Source,
}

impl Decision {
    /// Whether item roles count on the slot: not where the user's standing,
    /// a disabled module or a missing requirement closed it.
    pub fn admits_item_roles(&self) -> bool {
        matches!(
            self.source,
            Source::Override { .. } | Source::Roles | Source::NoRole
        )
    }
}

/// `decide(facts, slot).admits_item_roles()` from an active user's
/// effective scopes (what the cache keeps): the slot is enabled and the
/// slot it requires, decided in full, is held at some scope.
pub fn admits_item_roles(slots: &[Slot], scopes: &[Scope], active: bool, slot: usize) -> bool {
    active
        && slots[slot].enabled
        && slots[slot]
            .requires
            .filter(|&r| r != slot)
            .is_none_or(|r| scopes.get(r).is_some_and(|s| *s > Scope::None))
}

/// Whether item roles held on items of one module give their action on
/// the rows of a table of `slot`'s module (`item_slot`: the same action of
/// the items' module; the same slot for the items' own table): both
/// decisions admit item roles, and a table of another module (a project's
/// financials, reached through the project) takes its module's action at
/// some scope too: the access role opens the section, the item role says
/// on which items (seed 003).
pub fn item_roles_give(slot: Decision, item_slot: Decision, other_module: bool) -> bool {
    slot.admits_item_roles()
        && item_slot.admits_item_roles()
        && (!other_module || slot.scope > Scope::None)
}

/// What an item role requires of whoever holds it (seed 002: "a person
/// has to have the accountable executive role to be named as an
/// accountable executive on a project").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Condition {
    #[default]
    None,
    /// A role (catalog role_id), held now.
    Role(i32),
    /// A permission, held now at some scope.
    Permission(usize),
}

impl Condition {
    /// Whether a user who holds `held` roles and has `scope_on` each slot
    /// meets it. Checked when an assignment is written, and again whenever
    /// the item role is read: a revoked or expired role lapses it.
    pub fn met(self, holds: impl Fn(i32) -> bool, scope_on: impl Fn(usize) -> Scope) -> bool {
        match self {
            Condition::None => true,
            Condition::Role(role) => holds(role),
            Condition::Permission(slot) => scope_on(slot) > Scope::None,
        }
    }
}

/// Whether a writer whose scope on the module's update action is `update`
/// (and reaches the item) may assign an item role whose actions the writer
/// holds at `scopes`: no one hands out, to herself or anyone, an action her
/// scope does not give her on that item. Reach grows with the scope over
/// the same owner column, so an action held at `update`'s scope or wider
/// reaches the item too.
pub fn may_assign_item_role(update: Scope, mut scopes: impl Iterator<Item = Scope>) -> bool {
    update > Scope::None && scopes.all(|s| s >= update)
}

/// `item_roles_give` from an active user's effective scopes.
pub fn item_roles_give_by_scopes(
    slots: &[Slot],
    scopes: &[Scope],
    active: bool,
    (slot, item_slot): (usize, usize),
    other_module: bool,
) -> bool {
    admits_item_roles(slots, scopes, active, slot)
        && admits_item_roles(slots, scopes, active, item_slot)
        && (!other_module || scopes.get(slot).is_some_and(|s| *s > Scope::None))
}

/// The decision for one slot: the one place the precedence rule is written.
pub fn decide<R: Borrow<RolePermissions>>(facts: &Facts<'_, R>, slot: usize) -> Decision {
    let decided = |scope, source| Decision { scope, source };
    match facts.standing {
        Standing::Active => {}
        Standing::Inactive => return decided(Scope::None, Source::Inactive),
        Standing::NoSignInRole => return decided(Scope::None, Source::NoSignInRole),
    }
    if !facts.slots[slot].enabled {
        return decided(Scope::None, Source::ModuleDisabled);
    }
    if let Some(required) = missing_requirement(facts, slot) {
        return decided(Scope::None, Source::RequirementMissing { required });
    }
    if let Some((scope, set_on)) = facts.overrides.setting_with_source(facts.slots, slot) {
        return decided(scope, Source::Override { set_on });
    }
    let widest = facts
        .roles
        .iter()
        .map(|role| role.borrow().resolve(facts.slots, slot))
        .max()
        .unwrap_or_default();
    if widest > Scope::None {
        decided(widest, Source::Roles)
    } else {
        decided(Scope::None, Source::NoRole)
    }
}

/// The slot `slot` requires, if the user lacks it (holds it at no scope). A
/// requirement is itself decided in full, its own requirements included;
/// the bound guards a cycle in a corrupted catalog, which then denies.
fn missing_requirement<R: Borrow<RolePermissions>>(
    facts: &Facts<'_, R>,
    slot: usize,
) -> Option<usize> {
    let mut seen = 0;
    let mut current = slot;
    while let Some(required) = facts.slots[current].requires.filter(|&r| r != current) {
        seen += 1;
        if seen > facts.slots.len() {
            return Some(required);
        }
        let held = facts.slots[required].enabled
            && facts
                .overrides
                .setting(facts.slots, required)
                .unwrap_or_else(|| {
                    facts
                        .roles
                        .iter()
                        .map(|role| role.borrow().resolve(facts.slots, required))
                        .max()
                        .unwrap_or_default()
                })
                > Scope::None;
        if !held {
            return Some(required);
        }
        current = required;
    }
    None
}

/// One role's part in a decision: its scope on the slot and the slot the
/// setting is on (`None`: not set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleFact {
    pub role: usize,
    pub scope: Scope,
    pub set_on: Option<usize>,
}

/// A decision with every fact behind it, for `fluent_explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    /// Each role held (by index into `Facts::roles`), widest first.
    pub roles: Vec<RoleFact>,
    /// The override that applies, and the slot it is set on.
    pub override_: Option<(Scope, usize)>,
    /// The slot this one requires, and the scope the user holds there.
    pub requirement: Option<(usize, Scope)>,
}

pub fn explain<R: Borrow<RolePermissions>>(facts: &Facts<'_, R>, slot: usize) -> Explanation {
    let mut roles: Vec<RoleFact> = facts
        .roles
        .iter()
        .enumerate()
        .map(|(role, permissions)| {
            let setting = permissions.borrow().setting_with_source(facts.slots, slot);
            RoleFact {
                role,
                scope: setting.map(|(scope, _)| scope).unwrap_or_default(),
                set_on: setting.map(|(_, on)| on),
            }
        })
        .collect();
    roles.sort_by_key(|r| std::cmp::Reverse(r.scope));
    Explanation {
        decision: decide(facts, slot),
        roles,
        override_: facts.overrides.setting_with_source(facts.slots, slot),
        requirement: facts.slots[slot]
            .requires
            .filter(|&required| required != slot)
            .map(|required| (required, decide(facts, required).scope)),
    }
}

/// An active user's scope on every slot (`decide` for each).
pub fn effective_scopes<R: Borrow<RolePermissions>>(
    slots: &[Slot],
    roles: &[R],
    overrides: &RolePermissions,
) -> Vec<Scope> {
    let facts = Facts {
        standing: Standing::Active,
        slots,
        roles,
        overrides,
    };
    (0..slots.len())
        .map(|slot| decide(&facts, slot).scope)
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
            requires: None,
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
        assert!(
            Scope::None < Scope::Own && Scope::Own < Scope::Direct && Scope::Direct < Scope::Team
        );
        assert!(Scope::Team < Scope::All);
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

    /// A deliberately naive reference, written from the rule's wording and
    /// not from the code: walk up the module tree by hand for every role and
    /// the override, then apply the precedence list top to bottom.
    fn naive(
        standing: Standing,
        slots: &[Slot],
        roles: &[RolePermissions],
        overrides: &RolePermissions,
        slot: usize,
    ) -> Scope {
        fn inherited(settings: &[Option<Scope>], slots: &[Slot], slot: usize) -> Option<Scope> {
            let mut chain = vec![slot];
            while let Some(parent) = slots[*chain.last().unwrap()].inherits_from {
                if chain.contains(&parent) {
                    break;
                }
                chain.push(parent);
            }
            chain.into_iter().find_map(|s| settings[s])
        }
        fn own_scope(
            slots: &[Slot],
            roles: &[RolePermissions],
            overrides: &RolePermissions,
            slot: usize,
        ) -> Scope {
            if !slots[slot].enabled {
                return Scope::None;
            }
            if let Some(scope) = inherited(&overrides.scopes, slots, slot) {
                return scope;
            }
            let mut best = Scope::None;
            for role in roles {
                if let Some(scope) = inherited(&role.scopes, slots, slot) {
                    if scope > best {
                        best = scope;
                    }
                }
            }
            best
        }
        if standing != Standing::Active || !slots[slot].enabled {
            return Scope::None;
        }
        // Every requirement up the chain must be held (a cycle denies).
        let mut visited = vec![slot];
        let mut current = slot;
        while let Some(required) = slots[current].requires {
            if required == current {
                break;
            }
            if visited.contains(&required) {
                return Scope::None;
            }
            if own_scope(slots, roles, overrides, required) == Scope::None {
                return Scope::None;
            }
            visited.push(required);
            current = required;
        }
        own_scope(slots, roles, overrides, slot)
    }

    /// A small deterministic generator (no dependency for one test).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
        fn scope(&mut self) -> Option<Scope> {
            match self.next(7) {
                0 => Some(Scope::None),
                1 => Some(Scope::Own),
                2 => Some(Scope::Direct),
                3 => Some(Scope::Team),
                4 => Some(Scope::All),
                _ => None,
            }
        }
    }

    #[test]
    fn decide_agrees_with_a_naive_reference_on_random_catalogs() {
        let mut rng = Lcg(0x5eed);
        for case in 0..5_000 {
            let n = 1 + rng.next(8) as usize;
            // Parents come before children, as in the catalog.
            let slots: Vec<Slot> = (0..n)
                .map(|i| Slot {
                    inherits_from: (i > 0 && rng.next(2) == 0).then(|| rng.next(i as u64) as usize),
                    enabled: rng.next(5) != 0,
                    requires: (rng.next(4) == 0).then(|| rng.next(n as u64) as usize),
                })
                .collect();
            let roles: Vec<RolePermissions> = (0..rng.next(4))
                .map(|_| RolePermissions {
                    scopes: (0..n).map(|_| rng.scope()).collect(),
                })
                .collect();
            let overrides = RolePermissions {
                scopes: (0..n)
                    .map(|_| if rng.next(4) == 0 { rng.scope() } else { None })
                    .collect(),
            };
            let standing = [
                Standing::Active,
                Standing::Active,
                Standing::Inactive,
                Standing::NoSignInRole,
            ][rng.next(4) as usize];
            let facts = Facts {
                standing,
                slots: &slots,
                roles: &roles,
                overrides: &overrides,
            };
            // What the cache keeps for an active user: the scopes.
            let scopes = effective_scopes(&slots, &roles, &overrides);
            for slot in 0..n {
                let expected = naive(standing, &slots, &roles, &overrides, slot);
                let decision = decide(&facts, slot);
                assert_eq!(decision.scope, expected, "case {case}, slot {slot}");
                assert_eq!(
                    admits_item_roles(&slots, &scopes, standing == Standing::Active, slot),
                    decision.admits_item_roles(),
                    "case {case}, slot {slot}: item roles admitted from the scopes as by the decision"
                );
                let item_slot = rng.next(n as u64) as usize;
                let other = rng.next(2) == 0;
                assert_eq!(
                    item_roles_give_by_scopes(
                        &slots,
                        &scopes,
                        standing == Standing::Active,
                        (slot, item_slot),
                        other
                    ),
                    item_roles_give(decision, decide(&facts, item_slot), other),
                    "case {case}, slot {slot}, item slot {item_slot}: item roles give alike"
                );
                let explanation = explain(&facts, slot);
                assert_eq!(
                    explanation.decision, decision,
                    "case {case}: explain decides the same"
                );
                // The facts explain the decision.
                match decision.source {
                    Source::Override { .. } => {
                        assert_eq!(explanation.override_.map(|o| o.0), Some(decision.scope))
                    }
                    Source::Roles => assert_eq!(
                        explanation.roles.first().map(|r| r.scope),
                        Some(decision.scope)
                    ),
                    Source::NoRole => {
                        assert!(explanation.roles.iter().all(|r| r.scope == Scope::None))
                    }
                    Source::ModuleDisabled => assert!(!slots[slot].enabled),
                    Source::RequirementMissing { .. } => assert_eq!(decision.scope, Scope::None),
                    Source::Inactive => assert_eq!(standing, Standing::Inactive),
                    Source::NoSignInRole => assert_eq!(standing, Standing::NoSignInRole),
                }
            }
        }
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
