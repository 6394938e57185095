//! The per-backend permission cache.
//!
//! `fluent_can` must not query the catalog in the steady state, so each
//! backend keeps what it has read, per workspace and per user, and drops all
//! of it when the catalog changes. Coherence comes from PostgreSQL's own
//! invalidation messages, as in Citus' metadata cache: a statement trigger on
//! every catalog table sends a relcache invalidation for a sentinel relation
//! (`fluent.workspaces`); it is delivered to every backend when the writing
//! transaction commits (and to the writer itself at once), and our callback
//! only bumps a generation counter. The next lookup sees the new generation
//! and starts from an empty cache.
//!
//! One subtlety: a load made inside a transaction that had already received
//! an invalidation may have read through a snapshot older than the change
//! (REPEATABLE READ, or a statement snapshot taken before the message was
//! processed). Such loads are only trusted until the end of that
//! transaction: the transaction callback bumps the generation once more.

use crate::hashing::FastMap;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use pgrx::pg_sys;

use crate::error::FluentError;
use crate::loaders::{self, WorkspaceModel};
use crate::owner;
use crate::scope::{effective_scopes, RolePermissions, Scope};
use crate::trigger::after_trigger;

/// The catalog relation whose relcache invalidation means "the permission
/// catalog changed" (sent by the `invalidate_cache` triggers).
const SENTINEL_TABLE: &std::ffi::CStr = c"workspaces";

/// Bumped by the invalidation callbacks; the cache is valid for one value.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// An invalidation arrived during the current transaction.
static INVALIDATED_IN_XACT: AtomicBool = AtomicBool::new(false);
/// OID of the sentinel relation, or 0 while unknown.
static SENTINEL: AtomicU32 = AtomicU32::new(0);

/// Registers the invalidation callbacks; called once from `_PG_init`.
pub fn init() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
    }
}

/// Marks every backend's cache stale when the current transaction commits
/// (and this backend's at the next command). Called by the catalog triggers.
pub fn invalidate_all_backends() {
    if let Some(relid) = owner::catalog_relid(SENTINEL_TABLE) {
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) }
    }
}

/// The sentinel relation, as resolved when the cache was last refreshed
/// (looked up if it has not been yet).
pub fn sentinel_relid() -> Option<pg_sys::Oid> {
    match SENTINEL.load(Ordering::Relaxed) {
        0 => owner::catalog_relid(SENTINEL_TABLE),
        oid => Some(pg_sys::Oid::from(oid)),
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Only mark stale: no catalog access is allowed here.
    let sentinel = SENTINEL.load(Ordering::Relaxed);
    if relid == pg_sys::InvalidOid || sentinel == 0 || relid.to_u32() == sentinel {
        GENERATION.fetch_add(1, Ordering::Relaxed);
        INVALIDATED_IN_XACT.store(true, Ordering::Relaxed);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PREPARE
    ) && INVALIDATED_IN_XACT.swap(false, Ordering::Relaxed)
    {
        GENERATION.fetch_add(1, Ordering::Relaxed);
        // Plans made from those loads go with them (src/plans.rs).
        crate::plans::invalidate_identity_plans();
    }
}

/// What one user may do in one workspace.
struct UserEntry {
    /// Effective scope per slot; empty when the user may not act. Users who
    /// hold the same roles and no overrides share one vector.
    scopes: Rc<[Scope]>,
    /// Why the user may not act here, if they may not.
    barred: Option<Barred>,
    /// Keys of the users scope `team` reaches besides the user, loaded on first use.
    team: Option<Rc<Vec<String>>>,
    user_id: Option<i64>,
}

struct WorkspaceEntry {
    model: Rc<WorkspaceModel>,
    users: FastMap<String, UserEntry>,
    /// The effective scopes of each set of roles held without overrides.
    by_roles: FastMap<Box<[i32]>, Rc<[Scope]>>,
}

#[derive(Default)]
struct Cache {
    generation: Option<u64>,
    /// `None` caches that a workspace does not exist.
    workspaces: FastMap<String, Option<WorkspaceEntry>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn refresh_if_stale() {
    let current = GENERATION.load(Ordering::Relaxed);
    if CACHE.with_borrow(|c| c.generation == Some(current)) {
        return;
    }
    // Resolve the sentinel before reading anything, so that a change
    // committed while we load is not missed.
    SENTINEL.store(
        owner::catalog_relid(SENTINEL_TABLE).map_or(0, |o| o.to_u32()),
        Ordering::Relaxed,
    );
    CACHE.with_borrow_mut(|c| {
        *c = Cache {
            generation: Some(current),
            ..Default::default()
        };
    });
}

/// Loads (at most once per generation) and returns the workspace model.
fn workspace_model(workspace: &str) -> Option<Rc<WorkspaceModel>> {
    if let Some(cached) = CACHE.with_borrow(|c| {
        c.workspaces
            .get(workspace)
            .map(|w| w.as_ref().map(|w| w.model.clone()))
    }) {
        return cached;
    }
    // No borrow is held while SPI runs: loading may process invalidations.
    let loaded = loaders::load_workspace(workspace).map(Rc::new);
    CACHE.with_borrow_mut(|c| {
        c.workspaces.insert(
            workspace.to_owned(),
            loaded.clone().map(|model| WorkspaceEntry {
                model,
                users: FastMap::default(),
                by_roles: FastMap::default(),
            }),
        )
    });
    loaded
}

pub fn workspace_exists(workspace: &str) -> bool {
    refresh_if_stale();
    workspace_model(workspace).is_some()
}

/// Resolves a (module, action) name pair to its slot, or the error to raise.
fn slot_of(
    model: &WorkspaceModel,
    workspace: &str,
    module: &str,
    action: &str,
) -> Result<usize, FluentError> {
    let actions = model
        .modules
        .get(module)
        .ok_or_else(|| FluentError::UnknownModule {
            module: module.to_owned(),
            workspace: workspace.to_owned(),
        })?;
    actions
        .get(action)
        .copied()
        .ok_or_else(|| FluentError::UnknownAction {
            module: module.to_owned(),
            action: action.to_owned(),
        })
}

/// Why a user is granted nothing in a workspace, whatever they hold.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Barred {
    Unknown,
    /// Ghost or disabled.
    Status(String),
    /// The workspace has sign-in roles and the user holds none of them.
    NoSignInRole,
}

fn load_user_entry(workspace: &str, model: &WorkspaceModel, user: &str) -> UserEntry {
    let barred = |reason, user_id| UserEntry {
        scopes: Rc::default(),
        barred: Some(reason),
        team: None,
        user_id,
    };
    let Some(holdings) = loaders::load_user(model, user) else {
        return UserEntry {
            team: Some(Rc::default()),
            ..barred(Barred::Unknown, None)
        };
    };
    let user_id = Some(holdings.user_id);
    if holdings.status != "active" {
        return barred(Barred::Status(holdings.status), user_id);
    }
    let held: Vec<&loaders::CompiledRole> = holdings
        .roles
        .iter()
        .filter_map(|r| model.roles.get(r))
        .collect();
    if model.sign_in_required && !held.iter().any(|r| r.grants_sign_in) {
        return barred(Barred::NoSignInRole, user_id);
    }
    let compute = || -> Rc<[Scope]> {
        let mut overrides = RolePermissions::new(model.slots.len());
        for &(slot, scope) in &holdings.overrides {
            overrides.scopes[slot] = Some(scope);
        }
        let roles: Vec<&RolePermissions> = held.iter().map(|r| &r.permissions).collect();
        effective_scopes(&model.slots, &roles, &overrides).into()
    };
    let scopes = if holdings.overrides.is_empty() {
        // Shared by every user who holds exactly these roles.
        let key: Box<[i32]> = holdings.roles.into();
        let shared = CACHE.with_borrow(|c| {
            c.workspaces
                .get(workspace)?
                .as_ref()?
                .by_roles
                .get(&key)
                .cloned()
        });
        shared.unwrap_or_else(|| {
            let scopes = compute();
            CACHE.with_borrow_mut(|c| {
                if let Some(Some(ws)) = c.workspaces.get_mut(workspace) {
                    ws.by_roles.insert(key, scopes.clone());
                }
            });
            scopes
        })
    } else {
        compute()
    };
    UserEntry {
        scopes,
        barred: None,
        team: None,
        user_id,
    }
}

/// Runs `f` on the user's cache entry in the workspace, loading it first
/// if needed.
fn with_user_entry<R>(
    workspace: &str,
    user: &str,
    f: impl FnOnce(&WorkspaceModel, &UserEntry) -> R,
) -> Result<R, FluentError> {
    refresh_if_stale();
    let model = workspace_model(workspace).ok_or_else(|| FluentError::UnknownWorkspace {
        workspace: workspace.to_owned(),
    })?;
    let mut f = Some(f);
    let cached = CACHE.with_borrow(|c| {
        let entry = c.workspaces.get(workspace)?.as_ref()?.users.get(user)?;
        f.take().map(|f| f(&model, entry))
    });
    if let Some(result) = cached {
        return Ok(result);
    }
    let entry = load_user_entry(workspace, &model, user);
    let result = f.take().expect("not called above")(&model, &entry);
    CACHE.with_borrow_mut(|c| {
        if let Some(Some(ws)) = c.workspaces.get_mut(workspace) {
            ws.users.insert(user.to_owned(), entry);
        }
    });
    Ok(result)
}

/// Whether `user` may act in `workspace`: known, active, and holding a
/// sign-in role where the workspace has them.
pub fn check_may_act(workspace: &str, user: &str) -> Result<(), FluentError> {
    let barred = with_user_entry(workspace, user, |_, entry| entry.barred.clone())?;
    match barred {
        None => Ok(()),
        Some(Barred::Unknown) => Err(FluentError::UnknownUser {
            user: user.to_owned(),
        }),
        Some(Barred::Status(status)) => Err(FluentError::UserCannotSignIn {
            user: user.to_owned(),
            status,
        }),
        Some(Barred::NoSignInRole) => Err(FluentError::NoSignInRole {
            user: user.to_owned(),
            workspace: workspace.to_owned(),
        }),
    }
}

/// The modules on which `user` has some scope, sorted by name. Disabled
/// modules never qualify: their every slot resolves to `none`.
pub fn visible_modules(workspace: &str, user: &str) -> Result<Vec<String>, FluentError> {
    with_user_entry(workspace, user, |model, entry| {
        let mut names: Vec<String> = model
            .modules
            .iter()
            .filter(|(_, actions)| {
                actions
                    .values()
                    .any(|&slot| entry.scopes.get(slot).is_some_and(|s| *s > Scope::None))
            })
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    })
}

/// The scope `user` has on `module.action` in `workspace`. Unknown users
/// get `none`; unknown modules and actions are errors.
pub fn scope(
    workspace: &str,
    user: &str,
    module: &str,
    action: &str,
) -> Result<Scope, FluentError> {
    // Fast path: everything is cached and current; one thread-local access,
    // four hash lookups, no allocation. Anything else (a stale cache, a
    // miss, an unknown name) takes the slow path, which reports errors.
    let generation = GENERATION.load(Ordering::Relaxed);
    let hit = CACHE.with_borrow(|c| {
        if c.generation != Some(generation) {
            return None;
        }
        let ws = c.workspaces.get(workspace)?.as_ref()?;
        let slot = *ws.model.modules.get(module)?.get(action)?;
        let entry = ws.users.get(user)?;
        Some(entry.scopes.get(slot).copied().unwrap_or_default())
    });
    if let Some(scope) = hit {
        return Ok(scope);
    }
    refresh_if_stale();
    with_user_entry(workspace, user, |model, entry| {
        let slot = slot_of(model, workspace, module, action)?;
        Ok(entry.scopes.get(slot).copied().unwrap_or_default())
    })?
}

/// The users whose rows `user` reaches with `scope`, the user first:
/// nobody for `none`, the user for `own`, plus their team and reporting
/// line for `team` and `all` (`all` also reaches every other row, which the
/// policies test separately).
pub fn reached_users(workspace: &str, user: &str, scope: Scope) -> Rc<Vec<String>> {
    if scope == Scope::None {
        return Rc::default();
    }
    if scope == Scope::Own {
        return Rc::new(vec![user.to_owned()]);
    }
    let cached = CACHE.with_borrow(|c| {
        let ws = c.workspaces.get(workspace)?.as_ref()?;
        let entry = ws.users.get(user)?;
        Some((entry.team.clone(), entry.user_id, ws.model.workspace_id))
    });
    let Some((team, user_id, workspace_id)) = cached else {
        return Rc::new(vec![user.to_owned()]);
    };
    if let Some(team) = team {
        return team;
    }
    let mut keys = vec![user.to_owned()];
    if let Some(user_id) = user_id {
        keys.extend(loaders::load_team(workspace_id, user_id));
    }
    let keys = Rc::new(keys);
    CACHE.with_borrow_mut(|c| {
        if let Some(Some(ws)) = c.workspaces.get_mut(workspace) {
            if let Some(entry) = ws.users.get_mut(user) {
                entry.team = Some(keys.clone());
            }
        }
    });
    keys
}

// Statement trigger on the catalog tables: tells every backend to drop its
// cached permissions when this transaction commits.
after_trigger!(
    fluent_invalidate_cache,
    pg_finfo_fluent_invalidate_cache,
    "fluent.invalidate_cache",
    |_| { invalidate_all_backends() }
);
pgrx::extension_sql!(
    "CREATE FUNCTION fluent.invalidate_cache() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', 'fluent_invalidate_cache';",
    name = "invalidate_cache_trigger",
    requires = ["loaders"]
);
