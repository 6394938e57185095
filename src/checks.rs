//! Permission checks: `fluent_can`, `fluent_scope`, and the functions the
//! generated row-level policies call (schema `fluent`, prefix `rls_`).
//!
//! All answer from the per-backend cache (src/cache.rs). The planner
//! replaces every call of a policy helper with its answer for the acting
//! user (src/plans.rs), so none runs per row; each also runs as written,
//! with the same answer, where a call is not planned away.

use pgrx::prelude::*;

use crate::cache;
use crate::delegation;
use crate::error::FluentError;
use crate::gucs;
use crate::scope::Scope;

fn required<'a>(value: Option<&'a str>, argument: &'static str) -> &'a str {
    value.unwrap_or_else(|| {
        FluentError::NullArgument {
            argument: argument.into(),
            hint: "Pass the module and action names declared with fluent_create_module().",
        }
        .report()
    })
}

/// Scope of `user` (nobody when NULL) on `module.action` in the current
/// workspace; an unknown module or action is an error.
fn scope_of(user: Option<&str>, module: Option<&str>, action: Option<&str>) -> Scope {
    let (module, action) = (required(module, "module"), required(action, "action"));
    gucs::with_workspace(|workspace| {
        let Some(user) = user else {
            // Still validate the names, so a typo fails for everyone alike.
            cache::scope(workspace, "", module, action).unwrap_or_else(|e| e.report());
            return Scope::None;
        };
        cache::scope(workspace, user, module, action).unwrap_or_else(|e| e.report())
    })
}

/// Raises 42501 unless the caller may read `user`'s permissions
/// (src/delegation.rs).
fn require_may_read(user: Option<&str>) {
    if let Some(user) = user {
        delegation::require_may_read_permissions_of(user);
    }
}

/// Whether `user_key` may perform `action` on `module` at any scope.
#[pg_extern(stable, parallel_safe)]
fn fluent_can(user_key: Option<&str>, module: Option<&str>, action: Option<&str>) -> bool {
    require_may_read(user_key);
    scope_of(user_key, module, action) > Scope::None
}

/// Whether the acting user (fluent_set_user) may perform `action` on `module`.
#[pg_extern(stable, parallel_safe, name = "fluent_can")]
fn fluent_can_acting(module: Option<&str>, action: Option<&str>) -> bool {
    gucs::with_acting(|user, _| scope_of(user, module, action) > Scope::None)
}

/// The scope (`none`, `own`, `team` or `all`) `user_key` has on `module.action`.
#[pg_extern(stable, parallel_safe)]
fn fluent_scope(
    user_key: Option<&str>,
    module: Option<&str>,
    action: Option<&str>,
) -> &'static str {
    require_may_read(user_key);
    scope_of(user_key, module, action).as_str()
}

/// The scope the acting user has on `module.action`.
#[pg_extern(stable, parallel_safe, name = "fluent_scope")]
fn fluent_scope_acting(module: Option<&str>, action: Option<&str>) -> &'static str {
    gucs::with_acting(|user, _| scope_of(user, module, action)).as_str()
}

/// The enabled modules on which `user_key` has some access in the current
/// workspace, by name: what an application shows in its navigation.
#[pg_extern(stable, parallel_safe)]
fn fluent_visible_modules(user_key: Option<&str>) -> SetOfIterator<'static, String> {
    require_may_read(user_key);
    let modules = match user_key {
        None => Vec::new(),
        Some(user) => gucs::with_acting(|_, workspace| cache::visible_modules(workspace, user))
            .unwrap_or_else(|e| e.report()),
    };
    SetOfIterator::new(modules)
}

/// fluent_visible_modules() for the acting user.
#[pg_extern(stable, parallel_safe, name = "fluent_visible_modules")]
fn fluent_visible_modules_acting() -> SetOfIterator<'static, String> {
    let modules = gucs::with_acting(|user, workspace| match user {
        None => Ok(Vec::new()),
        Some(user) => cache::visible_modules(workspace, user),
    })
    .unwrap_or_else(|e| e.report());
    SetOfIterator::new(modules)
}

/// A type that owner, assignment and workspace columns can have, and how a
/// user or workspace key reads as that type. A key matches only the value it
/// is the canonical text of (what the column's output function prints), so
/// `'+42'`, `'042'` or `' 42'` match no integer row and an upper-case or
/// braced uuid matches no uuid row. Keys that do not parse match no row.
pub trait KeyType: Sized {
    fn parse(key: &str) -> Option<Self>;
}

impl KeyType for String {
    fn parse(key: &str) -> Option<Self> {
        Some(key.to_owned())
    }
}

impl KeyType for i64 {
    fn parse(key: &str) -> Option<Self> {
        key.parse().ok().filter(|n: &i64| n.to_string() == key)
    }
}

impl KeyType for pgrx::Uuid {
    /// Only the canonical form: 32 lower-case hex digits grouped 8-4-4-4-12.
    fn parse(key: &str) -> Option<Self> {
        let bytes = key.as_bytes();
        let canonical = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
            });
        if !canonical {
            return None;
        }
        let hex: Vec<u8> = bytes.iter().copied().filter(|b| *b != b'-').collect();
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(pgrx::Uuid::from_bytes(out))
    }
}

/// The acting user's scope for a policy: unknown modules and a missing
/// user deny instead of failing the query.
fn policy_scope(workspace: &str, user: Option<&str>, module: &str, action: &str) -> Scope {
    user.and_then(|user| cache::scope(workspace, user, module, action).ok())
        .unwrap_or_default()
}

/// Which rows of a protected table the acting user reaches with one action:
/// what the policies test, and what the planner folds into the plan
/// (src/plans.rs), decided here only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// No row (scope `none`, nobody acting, an unknown module).
    Nothing,
    /// The acting user's own rows: scope `own`, or `team` with nobody else
    /// in reach. The policies compare with the user's key, a scalar, so the
    /// planner estimates it like the hand-written `owner = 'ann'`.
    Own,
    /// The rows of the acting user and the other users scope `team`
    /// reaches: compared with `= ANY(keys)`.
    Users,
    /// Every row (scope `all`): no row filter at all.
    Everything,
}

/// The acting user's reach on `module.action`.
pub fn acting_reach(module: &str, action: &str) -> Reach {
    gucs::with_acting(|user, workspace| {
        match (user, policy_scope(workspace, user, module, action)) {
            (None, _) | (_, Scope::None) => Reach::Nothing,
            (_, Scope::All) => Reach::Everything,
            (_, Scope::Own) => Reach::Own,
            (Some(user), scope @ (Scope::Direct | Scope::Team)) => {
                if cache::reached_users(workspace, user, scope).len() > 1 {
                    Reach::Users
                } else {
                    Reach::Own
                }
            }
        }
    })
}

pub fn reached_keys<K: KeyType>(module: &str, action: &str) -> Vec<K> {
    gucs::with_acting(|user, workspace| {
        let scope = policy_scope(workspace, user, module, action);
        let Some(user) = user else { return Vec::new() };
        cache::reached_users(workspace, user, scope)
            .iter()
            .filter_map(|k| K::parse(k))
            .collect()
    })
}

/// The item roles of `item_module` that give `action` to the acting user,
/// where the decisions on `module.action` and `item_module.action` admit
/// them: what the policies compare an assignment's role with.
pub fn acting_item_roles(module: &str, action: &str, item_module: &str) -> Vec<String> {
    gucs::with_acting(|user, workspace| match user {
        None => Vec::new(),
        Some(user) => cache::item_roles(workspace, user, module, action, item_module),
    })
}

/// The item roles of `module` the acting user may assign on the items
/// their scope on `module.update_action` reaches.
pub fn acting_assignable_item_roles(module: &str, update_action: &str) -> Vec<String> {
    gucs::with_acting(|user, workspace| match user {
        None => Vec::new(),
        Some(user) => cache::assignable_item_roles(workspace, user, module, update_action),
    })
}

/// The teams the acting user is a member of, by name.
pub fn acting_teams() -> Vec<String> {
    gucs::with_acting(|user, workspace| match user {
        None => Vec::new(),
        Some(user) => cache::member_teams(workspace, user).to_vec(),
    })
}

/// The acting user's key as a value of a key column's type.
pub fn acting_key<K: KeyType>() -> Option<K> {
    gucs::with_acting(|user, _| user.and_then(K::parse))
}

/// Whether the acting user's reach on `module.action` takes in a row whose
/// owner column holds `owner`: what `fluent.rls_reaches` answers, and what
/// the test the planner puts in its place (src/plans.rs) keeps.
fn owner_reached<K: KeyType + PartialEq>(module: &str, action: &str, owner: K) -> bool {
    match acting_reach(module, action) {
        Reach::Nothing => false,
        Reach::Everything => true,
        Reach::Own => acting_key::<K>() == Some(owner),
        Reach::Users => reached_keys::<K>(module, action).contains(&owner),
    }
}

pub fn workspace_keys<K: KeyType>() -> Vec<K> {
    gucs::with_acting(|_, workspace| K::parse(workspace).into_iter().collect())
}

#[pg_schema]
mod fluent {
    use super::*;

    // The four tests the policies are made of. The planner replaces a call
    // with constant arguments by its value for the acting user.

    /// Whether the column limits of `rel` apply to the row being written
    /// (`fluent._check_column_writes`): where row-level security applies to
    /// the write; and in a foreign-key action, which PostgreSQL runs as the
    /// table's owner exempt from its row security, where the role whose
    /// statement caused it is neither a superuser nor `BYPASSRLS`, since an
    /// `ON UPDATE CASCADE` or `ON DELETE SET NULL` otherwise rewrote limited
    /// columns of rows the acting user may not write.
    #[pg_extern(stable, parallel_safe)]
    fn _column_limits_apply(rel: pg_sys::Oid) -> bool {
        unsafe {
            if pg_sys::check_enable_rls(rel, pg_sys::InvalidOid, true)
                == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
            {
                return true;
            }
            let cause = pg_sys::GetOuterUserId();
            pg_sys::InNoForceRLSOperation()
                && !pg_sys::superuser_arg(cause)
                && !pg_sys::has_bypassrls_privilege(cause)
        }
    }

    /// Whether the acting user reaches every row on `module.action`.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_all_support)]
    fn rls_all(module: &str, action: &str) -> bool {
        acting_reach(module, action) == Reach::Everything
    }

    /// Whether the acting user reaches their own rows only on `module.action`.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_own_support)]
    fn rls_own(module: &str, action: &str) -> bool {
        acting_reach(module, action) == Reach::Own
    }

    /// Whether the acting user reaches the rows of other users too (but not
    /// every row) on `module.action`.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_users_support)]
    fn rls_users(module: &str, action: &str) -> bool {
        acting_reach(module, action) == Reach::Users
    }

    /// Whether the acting user reaches any row on `module.action`.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_any_support)]
    fn rls_any(module: &str, action: &str) -> bool {
        acting_reach(module, action) != Reach::Nothing
    }

    /// Whether the acting user may hold, on items of the protected table of
    /// `module` (or on their parent items, of `item_module`), item roles that
    /// give `action`: some item role gives it, and the decisions on both
    /// modules admit item roles.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_items_support)]
    fn rls_items(module: &str, action: &str, item_module: &str) -> bool {
        !acting_item_roles(module, action, item_module).is_empty()
    }

    /// The names of those item roles: an assignment naming one of them gives
    /// the acting user `action` on its item.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_item_roles_support)]
    fn rls_item_roles(module: &str, action: &str, item_module: &str) -> Vec<String> {
        acting_item_roles(module, action, item_module)
    }

    /// The item roles of `module` the acting user may assign (write to an
    /// assignment table) on the items their scope on `module.update_action`
    /// reaches: those whose every action they hold at that scope or wider.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_assignable_support)]
    fn rls_assignable_item_roles(module: &str, update_action: &str) -> Vec<String> {
        acting_assignable_item_roles(module, update_action)
    }

    /// The names of the teams the acting user is a member of: an assignment
    /// naming one gives its item role to every member.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_teams_support)]
    fn rls_user_teams() -> Vec<String> {
        acting_teams()
    }

    /// The acting user's key, for text owner columns; NULL when nobody acts.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_user_support)]
    fn rls_user_key() -> Option<String> {
        acting_key()
    }

    /// The acting user's key as an integer, for integer owner columns; NULL
    /// when nobody acts or the key is not the canonical text of an integer.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_user_support)]
    fn rls_user_id() -> Option<i64> {
        acting_key()
    }

    /// The acting user's key as a uuid, for uuid owner columns; NULL when
    /// nobody acts or the key is not a canonical uuid.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_user_support)]
    fn rls_user_uuid() -> Option<pgrx::Uuid> {
        acting_key()
    }

    /// Whether the acting user reaches, on `module.action`, a row whose owner
    /// column holds `owner` (text, varchar, an integer or a uuid): the one
    /// call a policy makes for a table with an owner column. The planner
    /// replaces it with the test it stands for (src/plans.rs): nothing,
    /// `owner = <key>`, `owner = ANY(<keys>)` or false. This runs only where
    /// a call is not planned away, with the same answers: keys compare byte
    /// for byte (fluent refuses key columns whose collation does otherwise),
    /// a NULL owner is reached at scope `all`, not at `none`, and otherwise
    /// gives NULL, as a comparison with NULL does. NULL for a type fluent does
    /// not take as a key, or a NULL module or action: no row.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_reaches_support)]
    fn rls_reaches(
        module: Option<&str>,
        action: Option<&str>,
        owner: Option<pgrx::AnyElement>,
    ) -> Option<bool> {
        let (module, action) = (module?, action?);
        let Some(owner) = owner else {
            return match acting_reach(module, action) {
                Reach::Everything => Some(true),
                Reach::Nothing => Some(false),
                Reach::Own | Reach::Users => None,
            };
        };
        let datum = owner.datum();
        unsafe {
            match owner.oid() {
                pg_sys::TEXTOID | pg_sys::VARCHAROID => {
                    String::from_datum(datum, false).map(|key| owner_reached(module, action, key))
                }
                pg_sys::INT2OID => i16::from_datum(datum, false)
                    .map(|key| owner_reached(module, action, i64::from(key))),
                pg_sys::INT4OID => i32::from_datum(datum, false)
                    .map(|key| owner_reached(module, action, i64::from(key))),
                pg_sys::INT8OID => {
                    i64::from_datum(datum, false).map(|key| owner_reached(module, action, key))
                }
                pg_sys::UUIDOID => pgrx::Uuid::from_datum(datum, false)
                    .map(|key| owner_reached(module, action, key)),
                _ => None,
            }
        }
    }

    /// Keys of the users whose rows the acting user reaches on
    /// `module.action`, for text owner columns.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_keys_support)]
    fn rls_owner_keys(module: &str, action: &str) -> Vec<String> {
        reached_keys(module, action)
    }

    /// The same keys, for integer owner columns.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_keys_support)]
    fn rls_owner_ids(module: &str, action: &str) -> Vec<i64> {
        reached_keys(module, action)
    }

    /// The same keys, for uuid owner columns.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_keys_support)]
    fn rls_owner_uuids(module: &str, action: &str) -> Vec<pgrx::Uuid> {
        reached_keys(module, action)
    }

    /// The current workspace as a one-element array, for text workspace columns.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_keys_support)]
    fn rls_workspace_keys() -> Vec<String> {
        workspace_keys()
    }

    /// The current workspace, for integer workspace columns.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_keys_support)]
    fn rls_workspace_ids() -> Vec<i64> {
        workspace_keys()
    }

    /// The current workspace, for uuid workspace columns.
    #[pg_extern(stable, parallel_safe, support = plans::fluent::rls_keys_support)]
    fn rls_workspace_uuids() -> Vec<pgrx::Uuid> {
        workspace_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::KeyType;

    #[test]
    fn integer_keys_parse_only_in_canonical_form() {
        assert_eq!(<i64 as KeyType>::parse("42"), Some(42));
        assert_eq!(<i64 as KeyType>::parse("-7"), Some(-7));
        assert_eq!(<i64 as KeyType>::parse("0"), Some(0));
        for alias in ["+42", "042", " 42", "42 ", "-0", "alice", ""] {
            assert_eq!(<i64 as KeyType>::parse(alias), None, "{alias:?}");
        }
    }

    #[test]
    fn uuid_keys_parse_only_in_canonical_form() {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&[0xa0, 0xee, 0xbc, 0x99]);
        bytes[4..].copy_from_slice(&[
            0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11,
        ]);
        assert_eq!(
            <pgrx::Uuid as KeyType>::parse("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Some(pgrx::Uuid::from_bytes(bytes))
        );
        for alias in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "alice",
        ] {
            assert_eq!(<pgrx::Uuid as KeyType>::parse(alias), None, "{alias}");
        }
    }
}
