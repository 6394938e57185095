//! The per-backend permission cache.
//!
//! `fluent_can` must not query the catalog in the steady state, so each
//! backend keeps what it has read: per workspace, its model (modules, actions,
//! compiled roles), and per user, their effective scopes (users who hold the
//! same roles and no overrides share one vector) and, on first use, the users
//! their scope `team` reaches.
//!
//! Coherence comes from PostgreSQL's own invalidation messages, as in Citus'
//! metadata cache: a statement trigger on every catalog table sends a
//! relcache invalidation for a sentinel relation (`fluent.workspaces`); it is
//! delivered to every backend when the writing transaction commits (and to
//! the writer itself at once), and our callback only bumps a generation
//! counter. The next lookup sees the new generation and reads the entries of
//! the change log (`fluent.changes`, written by the same transactions) that
//! the snapshot of its previous look did not see, so no change that
//! committed late is skipped and none is applied twice; it changes only
//! what the entries name: a user, a role, a workspace's model, a workspace,
//! team sets. A gap in the log (pruned entries) drops everything.
//!
//! Applying a change costs the same however many users are cached: nothing
//! walks them. A role or a model loaded again resolves the role sets'
//! scopes again in place, which the users who hold a set share; a changed
//! user is marked, with the number of the look that applied the change, and
//! an entry loaded before the mark is stale when it is next read
//! (`WorkspaceEntry::holds`), as are users cached as unknown after any user
//! change and users with overrides after a change to their role set's roles
//! or to the model. Marks are swept when they outnumber a quarter of the
//! cached users, and at eviction.
//!
//! One subtlety: in REPEATABLE READ or SERIALIZABLE, a load made after the
//! invalidation arrived reads through the transaction's snapshot, older than
//! the change. The log read of that transaction used the same snapshot,
//! which did not see the change: the transaction callback bumps the
//! generation once more and the next look, reading what that snapshot did
//! not see, drops what such loads may have missed.
//! In READ COMMITTED every load takes a fresh snapshot, so nothing is
//! reloaded twice.
//!
//! Temporary access needs no message: an entry remembers when the next of
//! its grants and overrides expires and is loaded again by the first
//! transaction that starts at or after that instant (the clock of `now()`,
//! which the loaders compare with too). Plans that folded an answer with an
//! expiry are invalidated when the transaction ends (src/plans.rs), so none
//! is reused past it.

use crate::hashing::FastMap;
use std::cell::{Cell, RefCell};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

use crate::citus;
use crate::error::FluentError;
use crate::loaders::{self, Change, WorkspaceModel};
use crate::owner;
use crate::probes;
use crate::scope::{
    effective_scopes, item_roles_give_by_scopes, may_assign_item_role, RolePermissions, Scope,
    Standing,
};
use crate::trigger::after_trigger;
use crate::unguarded;

/// The relation whose relcache invalidation means "the permission catalog
/// changed" (sent by the `invalidate_cache` triggers): one no query reads
/// (sql/catalog.sql).
const SENTINEL_TABLE: &std::ffi::CStr = c"cache_sentinel";

/// Bumped by the invalidation callbacks; the cache has looked at the change
/// log for one value.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// An invalidation arrived during the current transaction.
static INVALIDATED_IN_XACT: AtomicBool = AtomicBool::new(false);
/// An invalidation arrived during the current statement.
static INVALIDATED_IN_STATEMENT: AtomicBool = AtomicBool::new(false);
/// The current transaction read an entry that expires.
static EXPIRING_READ_IN_XACT: AtomicBool = AtomicBool::new(false);
/// The current transaction wrote the catalog (sent the invalidation).
static WROTE_IN_XACT: AtomicBool = AtomicBool::new(false);
/// What this backend cached may come from rows that were rolled back: drop
/// everything at the next look.
static FLUSH: AtomicBool = AtomicBool::new(false);
/// OID of the sentinel relation, or 0 while unknown.
static SENTINEL: AtomicU32 = AtomicU32::new(0);
/// A message arrived since the last look at the change log began.
static MESSAGE_SINCE_LOOK: AtomicBool = AtomicBool::new(true);
/// Every catalog change whose message this backend has taken in has a
/// transaction id below this one (the newest completed one, plus one, when
/// the last message arrived), or 0 before the first.
static MESSAGES_BELOW: AtomicU64 = AtomicU64::new(0);

/// What this backend loaded since it started (`fluent.cache_statistics()`):
/// users and workspace models, each by one catalog query.
static USER_LOADS: AtomicU64 = AtomicU64::new(0);
static MODEL_LOADS: AtomicU64 = AtomicU64::new(0);

/// `fluent.cache_users`: how many users a backend keeps, over all workspaces.
static MAX_USERS: GucSetting<i32> = GucSetting::<i32>::new(200_000);

/// The next statement, and the end of the transaction, look at the change
/// log again (`INVALIDATED_IN_STATEMENT`, `INVALIDATED_IN_XACT`).
fn look_again() {
    INVALIDATED_IN_XACT.store(true, Ordering::Relaxed);
    INVALIDATED_IN_STATEMENT.store(true, Ordering::Relaxed);
}

/// Registers the invalidation callbacks and the cache setting; called once
/// from `_PG_init`.
pub fn init() {
    GucRegistry::define_int_guc(
        c"fluent.cache_users",
        c"How many users' permissions a backend keeps cached, over all workspaces.",
        c"Beyond it, the users not checked since the last eviction are dropped first.",
        &MAX_USERS,
        100,
        100_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
        PREVIOUS_POST_PARSE_ANALYZE = pg_sys::post_parse_analyze_hook;
        pg_sys::post_parse_analyze_hook = Some(statement_parsed);
    }
}

/// Marks every backend's cache stale when the current transaction commits
/// (and this backend's at the next command). Called by the catalog triggers.
pub fn invalidate_all_backends() {
    WROTE_IN_XACT.store(true, Ordering::Relaxed);
    crate::gate::catalog_changed();
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
        message_arrived();
    }
}

/// Passes the commit gate (src/gate.rs) and takes in what it lets through:
/// the messages that arrived, and a change visible whose messages have not
/// (its writer still holds the gate), as if they had: the plans that folded
/// answers go, as the messages would make them go.
pub fn pass_gate_and_take_in() {
    if crate::gate::pass() {
        message_arrived();
        crate::folds::invalidate_identity_plans();
    }
    unsafe { pg_sys::AcceptInvalidationMessages() };
}

/// What an invalidation message of the catalog does here (it only flips
/// flags: no catalog access is allowed in the callback).
fn message_arrived() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    MESSAGES_BELOW.fetch_max(latest_completed_xid() + 1, Ordering::Relaxed);
    MESSAGE_SINCE_LOOK.store(true, Ordering::Relaxed);
    // The look this causes reads the log, and loads, through the
    // snapshot of the statement running: in REPEATABLE READ the
    // transaction's, and in READ COMMITTED too it may predate the
    // change (a cursor's, or the statement's when the message arrives
    // in the middle of it, at a lock). So the statement after it looks
    // again, and so does the next transaction, each through a snapshot
    // taken after the message arrived.
    look_again();
    crate::folds::drop_sql_function_plans();
}

/// At the end of every transaction (src/lib.rs): if an invalidation arrived
/// during it, look at the change log again (see the module comment).
/// Plans that folded an answer with an expiry go too: the next
/// transaction may start after it.
pub fn transaction_ended(committed: bool) {
    let expiring = EXPIRING_READ_IN_XACT.swap(false, Ordering::Relaxed);
    let wrote = WROTE_IN_XACT.swap(false, Ordering::Relaxed);
    if wrote && !committed {
        flush();
    }
    INVALIDATED_IN_STATEMENT.store(false, Ordering::Relaxed);
    GATE_PENDING.set(false);
    GATE_PASSED_IN_XACT.set(false);
    if INVALIDATED_IN_XACT.swap(false, Ordering::Relaxed) {
        GENERATION.fetch_add(1, Ordering::Relaxed);
        // Plans made from those loads go with them (src/plans.rs).
        crate::folds::invalidate_identity_plans();
    } else if expiring {
        crate::folds::invalidate_identity_plans();
    }
}

/// A subtransaction was rolled back (src/lib.rs): if the transaction has
/// written the catalog, the writes may have been the subtransaction's.
pub fn subtransaction_rolled_back() {
    if WROTE_IN_XACT.load(Ordering::Relaxed) {
        flush();
    }
}

/// Writes to the catalog were rolled back. Their writer read its own
/// uncommitted rows: what it loaded since, and the plans folded from that,
/// would outlive the rollback, as the change log that names what to drop was
/// rolled back too. So the next look drops everything (a rollback of
/// administration is rare). Only flags are set here.
fn flush() {
    FLUSH.store(true, Ordering::Relaxed);
    GENERATION.fetch_add(1, Ordering::Relaxed);
    crate::folds::invalidate_identity_plans();
}

/// Why a user is granted nothing in a workspace, whatever they hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Barred {
    Unknown,
    Ghost,
    Disabled,
    /// Invited, and the invitation not accepted yet (fluent_accept_invitation).
    Invited,
    /// The workspace has sign-in roles and the user holds none of them.
    NoSignInRole,
}

/// What one user may do in one workspace (kept small: a backend may hold
/// hundreds of thousands).
struct UserEntry {
    /// Effective scope per slot when the user has overrides; otherwise the
    /// scopes of their role set. (Boxed twice: a thin pointer keeps every
    /// entry small, and few users have overrides.)
    own: Option<Box<OwnScopes>>,
    /// 0 for an unknown user.
    user_id: i64,
    /// The number of the look (`Cache::looks`) after which it was loaded:
    /// it reflects the changes applied up to that look, and no later one.
    loaded: u64,
    /// The set of roles held (`WorkspaceEntry::sets`); `NO_SET` when barred.
    set: u32,
    barred: Option<Barred>,
    /// Checked since the last eviction sweep.
    used: Cell<bool>,
    /// When the next grant or override the entry counts expires; `NEVER`
    /// if none does.
    expires_at: pg_sys::TimestampTz,
}

/// A user's own effective scopes, by slot.
struct OwnScopes(Box<[Scope]>);

const NO_SET: u32 = u32::MAX;
const NEVER: pg_sys::TimestampTz = pg_sys::TimestampTz::MAX;

impl UserEntry {
    /// Whether the entry still holds in this transaction (see the module
    /// comment); reading one that expires is noted for the plans.
    fn current(&self) -> bool {
        if self.expires_at == NEVER {
            return true;
        }
        let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
        EXPIRING_READ_IN_XACT.store(true, Ordering::Relaxed);
        now < self.expires_at
    }
}

/// A set of roles some users hold, with its effective scopes without
/// overrides: shared by all of them.
struct RoleSet {
    roles: Box<[i32]>,
    scopes: Box<[Scope]>,
    /// The last look that resolved `scopes` again (one of the roles or the
    /// model changed): the users with overrides who hold the set and were
    /// loaded before it are stale.
    changed_at: u64,
}

/// The changes a look applied to users, which make the entries loaded
/// before it stale.
#[derive(Default)]
struct UserMarks {
    /// user_id -> the last look that applied a change to the user.
    changed: FastMap<i64, u64>,
    /// The last look that applied a change to any user: users cached as
    /// unknown may have been created by it.
    any_changed_at: u64,
}

impl UserMarks {
    /// Whether a cached entry still holds: no look since it was loaded
    /// changed its user (any user, for an unknown one) or, for a user with
    /// overrides, the roles of their set or the model. Users without
    /// overrides share their set's scopes, which such changes resolve again
    /// in place.
    fn hold(&self, sets: &[RoleSet], user: &UserEntry) -> bool {
        if user.barred == Some(Barred::Unknown) {
            return user.loaded >= self.any_changed_at;
        }
        if !self.changed.is_empty()
            && self
                .changed
                .get(&user.user_id)
                .is_some_and(|&at| at > user.loaded)
        {
            return false;
        }
        user.own.is_none()
            || sets
                .get(user.set as usize)
                .is_some_and(|set| user.loaded >= set.changed_at)
    }
}

struct WorkspaceEntry {
    model: Rc<WorkspaceModel>,
    users: FastMap<Box<str>, UserEntry>,
    /// What changed for users since entries were loaded.
    marks: UserMarks,
    /// Role sets by index.
    sets: Vec<RoleSet>,
    set_of: FastMap<Box<[i32]>, u32>,
    /// (user_id, direct) -> the users their scope `team` (or `direct`)
    /// reaches, loaded on first use.
    teams: FastMap<(i64, bool), TeamSet>,
    /// user_id -> the names of the teams they are a member of (assignments
    /// to a team give its members item roles), loaded on first use.
    /// (With the number of its load, `next_part_load`.)
    member_of: FastMap<i64, (u64, Rc<Vec<String>>)>,
    /// The look after which the whole model was loaded (at first, or again
    /// as modules, actions, requirements, administrative rights or item
    /// roles changed).
    remodeled_at: u64,
}

/// The users a user's scope `team` or `direct` reaches.
struct TeamSet {
    /// Their keys, the user's first.
    keys: Rc<Vec<String>>,
    /// The teams the user leads, whose members are among them: a change to
    /// one of these teams drops the set (`Cache::apply`).
    led: Vec<i64>,
    /// Which load of a part of a user's answers it was (`next_part_load`).
    load: u64,
}

impl WorkspaceEntry {
    fn scopes<'a>(&'a self, user: &'a UserEntry) -> &'a [Scope] {
        match (&user.own, self.sets.get(user.set as usize)) {
            (Some(own), _) => &own.0,
            (None, Some(set)) => &set.scopes,
            _ => &[],
        }
    }

    /// Whether a cached entry still holds (`UserMarks::hold`).
    fn holds(&self, user: &UserEntry) -> bool {
        self.marks.hold(&self.sets, user)
    }

    /// The cached entry of `user` if it still holds.
    fn current_user(&self, user: &str) -> Option<&UserEntry> {
        self.users
            .get(user)
            .filter(|e| e.current() && self.holds(e))
    }

    /// Drops the entries that no longer hold, and the marks with them.
    fn sweep(&mut self) {
        let (marks, sets) = (&self.marks, &self.sets);
        self.users.retain(|_, u| marks.hold(sets, u));
        self.marks.changed.clear();
    }
}

/// Marks are swept when there are more than this many, and more than a
/// quarter of the cached users.
const SWEEP_MARKS: usize = 1024;

#[derive(Default)]
struct Cache {
    /// The generation whose changes have been applied; `None`: nothing loaded.
    generation: Option<u64>,
    /// How many looks at the change log have applied changes.
    looks: u64,
    /// The snapshot of the last look at the change log: the next reads
    /// what it did not see.
    seen: Option<String>,
    /// The transaction that made that look, if it had an id: a snapshot
    /// counts its own transaction's later writes as seen.
    seen_by: Option<u64>,
    /// `None` caches that a workspace does not exist.
    workspaces: FastMap<String, Option<WorkspaceEntry>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    /// Loads of the parts of users' answers cached apart (team sets, member
    /// teams), numbered: a part loaded again has another number.
    static PART_LOADS: Cell<u64> = const { Cell::new(0) };
}

fn next_part_load() -> u64 {
    PART_LOADS.set(PART_LOADS.get() + 1);
    PART_LOADS.get()
}

thread_local! {
    /// The start of the statement that last took in invalidation messages.
    static STATEMENT_SEEN: Cell<pg_sys::TimestampTz> = const { Cell::new(0) };
    /// The running statement has not passed the commit gate: it does when
    /// it first reads the cache (`refresh_if_stale`).
    static GATE_PENDING: Cell<bool> = const { Cell::new(false) };
    /// This REPEATABLE READ or SERIALIZABLE transaction passed the gate
    /// after its snapshot was taken.
    static GATE_PASSED_IN_XACT: Cell<bool> = const { Cell::new(false) };
}

static mut PREVIOUS_POST_PARSE_ANALYZE: pg_sys::post_parse_analyze_hook_type = None;

/// In READ COMMITTED a statement sees every change committed before it
/// started. PostgreSQL takes in other backends' invalidation messages only
/// when it locks a relation not locked yet in the transaction, so a revoke
/// would wait, in an open transaction, for a relation the transaction had
/// not touched. So each statement takes them in when it is parsed, before
/// the plan cache checks the plans it will run (a prepared statement's
/// EXECUTE, a PL/pgSQL function's plans), once: the queries parsed while it
/// runs see what it saw. A statement bound again without a parse takes them
/// in as it is planned or starts running (src/kept_plans.rs).
pub fn take_in_changes_once_per_statement() {
    take_in_changes(false);
}

/// `take_in_changes_once_per_statement` for a client's statement being
/// parsed. The statements of one simple-protocol message share its start
/// time; each after the first takes in the messages that arrived while the
/// ones before it ran, and passes the commit gate when it first reads the
/// cache: most (`COMMIT`, `SET`, a query of unprotected tables) never do,
/// and each pass may wait for a committing change.
fn take_in_changes_for_client_statement() {
    take_in_changes(true);
}

fn take_in_changes(client_statement: bool) {
    unsafe {
        if !unguarded::in_transaction() {
            return;
        }
        if pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 {
            return pass_gate_at_transaction_snapshot();
        }
        let started = unguarded::statement_started();
        let new_message = STATEMENT_SEEN.replace(started) != started;
        if new_message || client_statement {
            // What the previous statement looked at after a message arrived
            // is looked at again (see relcache_callback).
            if INVALIDATED_IN_STATEMENT.swap(false, Ordering::Relaxed) {
                GENERATION.fetch_add(1, Ordering::Relaxed);
                crate::folds::invalidate_identity_plans();
            }
            // A change visible to this statement has sent its messages, or
            // is taken in without them.
            if new_message {
                pass_gate_and_take_in();
            } else {
                pg_sys::AcceptInvalidationMessages();
            }
            GATE_PENDING.set(!new_message);
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn statement_parsed(
    pstate: *mut pg_sys::ParseState,
    query: *mut pg_sys::Query,
    jstate: *mut pg_sys::JumbleState,
) {
    if let Some(previous) = PREVIOUS_POST_PARSE_ANALYZE {
        previous(pstate, query, jstate);
    }
    // No portal runs while a client's statement is parsed; one does while a
    // function's statements are, except for the functions the planner runs
    // (constant folding, selectivity estimates), which run while nothing is
    // planned at the top level.
    if pg_sys::ActivePortal.is_null() && !crate::folds::planning_now() {
        citus::statement_started();
        take_in_changes_for_client_statement();
    } else {
        take_in_changes_once_per_statement();
    }
}

/// In REPEATABLE READ and SERIALIZABLE every statement reads through the
/// transaction's snapshot: the gate is passed at each statement until that
/// snapshot is taken, and once after (a transaction whose isolation is set
/// before it begins, by `default_transaction_isolation` or `SET SESSION
/// CHARACTERISTICS`, passed it nowhere before; and one whose first
/// statement is an `EXECUTE`, which takes its snapshot after the plan is
/// chosen, must pass it before).
fn pass_gate_at_transaction_snapshot() {
    if GATE_PASSED_IN_XACT.get() {
        return;
    }
    GATE_PASSED_IN_XACT.set(unsafe { pg_sys::FirstSnapshotSet });
    pass_gate_and_take_in();
}

fn refresh_if_stale() {
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        pass_gate_at_transaction_snapshot();
    }
    if GATE_PENDING.replace(false) {
        pass_gate_and_take_in();
    }
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
    let current_xid = unsafe { pg_sys::GetTopFullTransactionIdIfAny().value };
    let seen = CACHE.with_borrow(|c| match (&c.seen, c.seen_by) {
        // The last look was made by an earlier transaction of this backend
        // that had written: what it wrote after that look was not read.
        (Some(seen), Some(xid)) if xid != current_xid => Some(unseen(seen, xid)),
        (seen, _) => seen.clone(),
    });
    // A look asked for again (see look_again) through the very snapshot the
    // last one read through (a cursor's, fetched again) would read nothing
    // new, unless a message arrived since (a change that is not MVCC-safe:
    // an extension created again, a TRUNCATE), this transaction wrote since
    // (its own entries show through any snapshot) or rolled writes back: it
    // is skipped, or a cursor declared before a change would read the log
    // at each fetch, each asking the next to look again.
    if !MESSAGE_SINCE_LOOK.load(Ordering::Relaxed)
        && current_xid == 0
        && !FLUSH.load(Ordering::Relaxed)
        && seen.is_some()
        && active_snapshot_text() == seen
    {
        if seen.as_deref().is_some_and(misses_a_message) {
            look_again();
        }
        CACHE.with_borrow_mut(|c| c.generation = Some(current));
        return;
    }
    // A first look reads through a snapshot that may predate changes whose
    // messages were processed before this library was loaded: look again
    // at the next statement and when the transaction ends.
    if seen.is_none() {
        look_again();
    }
    // No borrow is held while SPI runs: loading may process invalidations.
    MESSAGE_SINCE_LOOK.store(false, Ordering::Relaxed);
    let mut log = loaders::load_changes(seen.as_deref());
    if !log.seen.is_empty() {
        if let Some(seen) = recovery_snapshot_text() {
            log.seen = seen;
        }
    }
    if look_may_miss_changes(seen.as_deref(), &log.seen) {
        look_again();
    }
    let (work, look) = CACHE.with_borrow_mut(|c| {
        let mut work = Reloads::default();
        c.looks += 1;
        let flush = FLUSH.swap(false, Ordering::Relaxed);
        if !flush && seen.as_deref().is_some_and(|seen| log.complete_since(seen)) {
            for change in &log.changes {
                c.apply(change, c.looks, &mut work);
            }
            for ws in c.workspaces.values_mut().flatten() {
                if ws.marks.changed.len() > SWEEP_MARKS.max(ws.users.len() / 4) {
                    ws.sweep();
                }
            }
        } else {
            c.workspaces.clear();
        }
        (work, c.looks)
    });
    // Each workspace is loaded again once, however many changes named it:
    // its whole model when modules, actions, requirements, administrative
    // rights or item roles changed (keeping the compiled roles that did not
    // change when no action moved), else only the roles that changed. No
    // borrow is held while SPI runs.
    let no_roles = Vec::new();
    let changed_roles = |name: &String| {
        work.recompile
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&no_roles, |(_, roles)| roles)
    };
    let roles_only = work
        .recompile
        .iter()
        .filter(|(n, _)| !work.remodel.contains(n))
        .map(|(n, roles)| (n, false, roles));
    let reloads = work.remodel.iter().map(|n| (n, true, changed_roles(n)));
    for (name, whole, roles) in reloads.chain(roles_only) {
        let Some(model) =
            CACHE.with_borrow(|c| Some(c.workspaces.get(name)?.as_ref()?.model.clone()))
        else {
            continue;
        };
        MODEL_LOADS.fetch_add(1, Ordering::Relaxed);
        let model = if whole {
            loaders::reload_workspace(name, &model, roles).map(Rc::new)
        } else {
            Some(Rc::new(loaders::reload_roles(&model, roles)))
        };
        CACHE.with_borrow_mut(|c| match model {
            Some(model) => {
                if let Some(Some(ws)) = c.workspaces.get_mut(name) {
                    ws.take_model(model, (!whole).then_some(roles.as_slice()), look);
                }
            }
            None => {
                c.workspaces.remove(name);
            }
        });
    }
    // Only now is the look done: an error while loading (a timeout, a
    // cancel) leaves the generation stale, and the next lookup reads the
    // same entries again and loads what they name.
    // (An empty snapshot: nothing was seen, see above.)
    CACHE.with_borrow_mut(|c| {
        c.generation = Some(current);
        c.seen = (!log.seen.is_empty()).then_some(log.seen);
        c.seen_by = (current_xid != 0).then_some(current_xid);
    });
}

/// `xid` as a full transaction id (it is within 2^31 of the next one).
fn full_xid(next: u64, xid: pg_sys::TransactionId) -> u64 {
    let full = (next & !0xFFFF_FFFF) | u64::from(xid.into_inner());
    if full > next {
        full.saturating_sub(1 << 32)
    } else {
        full
    }
}

/// The transactions `snapshot` counts as running: its top-level ones, or on
/// a hot standby every one (PostgreSQL keeps them all with the
/// subtransactions there, and `xip` empty).
fn running_in(snapshot: &pg_sys::SnapshotData) -> &[pg_sys::TransactionId] {
    let (xip, count) = if snapshot.takenDuringRecovery {
        (snapshot.subxip, snapshot.subxcnt.max(0) as usize)
    } else {
        (snapshot.xip, snapshot.xcnt as usize)
    };
    if xip.is_null() || count == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(xip, count) }
    }
}

/// A look's snapshot as `pg_snapshot` text, `xmin:xmax:xip,...` (what
/// `Cache::seen` holds), read.
struct SeenText<'a> {
    xmin: u64,
    xmax: u64,
    /// The running transactions' ids, comma-separated.
    running: &'a str,
}

impl<'a> SeenText<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        Some(SeenText {
            xmin: parts.next()?.parse().ok()?,
            xmax: parts.next()?.parse().ok()?,
            running: parts.next().unwrap_or(""),
        })
    }

    fn running(&self) -> impl Iterator<Item = u64> + '_ {
        self.running.split(',').filter_map(|x| x.parse().ok())
    }
}

/// Whether a snapshot (its `xmax` and `running` transactions, as full ids)
/// does not see a transaction that `seen` sees as committed.
fn sees_less(xmax: u64, mut running: impl Iterator<Item = u64>, seen: &SeenText) -> bool {
    let seen_running: Vec<u64> = seen.running().collect();
    xmax < seen.xmax || running.any(|x| x < seen.xmax && !seen_running.contains(&x))
}

/// Whether a look, through the running statement's snapshot, saw `now`
/// where the last look had seen `before`, and may have missed changes that
/// a later snapshot sees: the next statement and the end of the transaction
/// look again, as after a first look. So it is
/// - when no snapshot came back (`now` empty): the statement's sees no
///   change horizon, as it predates the catalog (the extension was created
///   again by a transaction that committed after it was taken), on a replica
///   too; nothing was seen, and the next look is a first look again (kept as
///   an empty snapshot, it failed every later look of the session; on a
///   replica, kept as the recovery snapshot, it left the catalog seen as
///   empty);
/// - when the snapshot is older than the last look's (a REPEATABLE READ
///   transaction's, imported with SET TRANSACTION SNAPSHOT): else what was
///   loaded through it stayed until the next change;
/// - when it may not see a change whose message was already taken in
///   (`misses_a_message`).
fn look_may_miss_changes(before: Option<&str>, now: &str) -> bool {
    let older = || {
        let before = before.and_then(SeenText::parse)?;
        let now = SeenText::parse(now)?;
        Some(sees_less(now.xmax, now.running(), &before))
    };
    now.is_empty() || older().unwrap_or(false) || misses_a_message(now)
}

/// Whether a look through snapshot `now` (`pg_snapshot` text) may not see
/// a change whose message this backend took in before it: the snapshot was
/// taken before that change committed (a cursor's, declared before it, and
/// fetched after a statement that took the message in and looked at
/// nothing). The change's transaction id is below `MESSAGES_BELOW`, so
/// either the snapshot's `xmax` is too, or the change was running when the
/// snapshot was taken and has committed since. A running transaction that
/// committed after the message only costs one more look.
fn misses_a_message(now: &str) -> bool {
    let below = MESSAGES_BELOW.load(Ordering::Relaxed);
    let Some(now) = SeenText::parse(now) else {
        return false;
    };
    now.xmax < below
        || now.running().any(|xid| {
            xid < below
                && unsafe {
                    pg_sys::TransactionIdDidCommit(pg_sys::TransactionId::from(xid as u32))
                }
        })
}

/// The newest transaction id that has completed (committed or aborted), as
/// a full id.
fn latest_completed_xid() -> u64 {
    unsafe {
        #[cfg(feature = "pg15")]
        let variables = pg_sys::ShmemVariableCache;
        #[cfg(not(feature = "pg15"))]
        let variables = pg_sys::TransamVariables;
        (*variables).latestCompletedXid.value
    }
}

/// Whether the last look at the change log read through a snapshot that
/// sees `xid` as completed: the cache holds what that transaction changed
/// (src/gate.rs asks it of a commit it stopped waiting for).
pub fn last_look_saw(xid: pg_sys::TransactionId) -> bool {
    let next = unsafe { pg_sys::ReadNextFullTransactionId() }.value;
    let xid = full_xid(next, xid);
    CACHE.with_borrow(|c| {
        c.seen
            .as_deref()
            .and_then(SeenText::parse)
            .is_some_and(|seen| xid < seen.xmax && !seen.running().any(|x| x == xid))
    })
}

/// Whether the cache's answers hold every change whose message arrived:
/// it is current, and its last look's snapshot missed none of them. Every
/// change visible to a snapshot taken before the commit gate was last passed
/// is then in them (src/planning_snapshot.rs).
pub fn answers_hold_every_message() -> bool {
    let current = GENERATION.load(Ordering::Relaxed);
    CACHE.with_borrow(|c| {
        c.generation == Some(current)
            && c.seen
                .as_deref()
                .is_some_and(|seen| !misses_a_message(seen))
    })
}

/// Whether the last look at the change log read through a snapshot that
/// sees a transaction as completed that `snapshot` does not (a look made
/// while a statement was planned, through a snapshot newer than the
/// statement's: a function the planner ran took one).
pub fn last_look_saw_more_than(snapshot: pg_sys::Snapshot) -> bool {
    if snapshot.is_null() {
        return true;
    }
    let next = unsafe { pg_sys::ReadNextFullTransactionId() }.value;
    let snapshot = unsafe { &*snapshot };
    CACHE.with_borrow(|c| {
        c.seen
            .as_deref()
            .and_then(SeenText::parse)
            .is_some_and(|seen| snapshot_sees_less(next, snapshot, &seen))
    })
}

/// `sees_less` for `snapshot`, with `next` the next full transaction id.
fn snapshot_sees_less(next: u64, snapshot: &pg_sys::SnapshotData, seen: &SeenText) -> bool {
    let running = running_in(snapshot).iter().map(|&xid| full_xid(next, xid));
    sees_less(full_xid(next, snapshot.xmax), running, seen)
}

/// `pg_snapshot` text of a snapshot (`running` sorted).
fn snapshot_text(xmin: u64, xmax: u64, running: &[u64]) -> String {
    let running: Vec<String> = running.iter().map(u64::to_string).collect();
    format!("{xmin}:{xmax}:{}", running.join(","))
}

/// On a hot standby, the snapshot a look read through as `pg_snapshot`
/// text. `pg_current_snapshot()` there lists no running transaction (it
/// reads only `xip`, which recovery leaves empty), so the look would record
/// as seen a primary's transaction still running, and skip its entries
/// once it commits: the replica would keep a revoked grant.
fn recovery_snapshot_text() -> Option<String> {
    let recovery = unsafe {
        pg_sys::ActiveSnapshotSet() && (*pg_sys::GetActiveSnapshot()).takenDuringRecovery
    };
    if recovery {
        active_snapshot_text()
    } else {
        None
    }
}

/// The snapshot of the running statement as `pg_snapshot` text, as
/// `pg_current_snapshot()` gives it (or, on a hot standby, as
/// `recovery_snapshot_text` tells it).
fn active_snapshot_text() -> Option<String> {
    let snapshot = unsafe {
        if !pg_sys::ActiveSnapshotSet() {
            return None;
        }
        &*pg_sys::GetActiveSnapshot()
    };
    let next = unsafe { pg_sys::ReadNextFullTransactionId() }.value;
    let xmax = full_xid(next, snapshot.xmax);
    let mut running: Vec<u64> = running_in(snapshot)
        .iter()
        .map(|&x| full_xid(next, x))
        .filter(|&x| x < xmax)
        .collect();
    running.sort_unstable();
    running.dedup();
    Some(snapshot_text(full_xid(next, snapshot.xmin), xmax, &running))
}

/// Before a load whose result is cached. A load reads through the snapshot
/// of the statement (or cursor, or portal) running the check while the
/// (sub)transaction has written nothing (the probes, and SPI's read-only
/// rule, src/owner.rs), which may see less than the snapshot the last look
/// read the change log through: a cursor declared before a revoke
/// committed, fetched after a later statement applied it. The entry it
/// caches would be stamped as loaded after that change and kept until the
/// user's next change. So the last look's snapshot is moved back to one
/// that sees no more than this load's, and the next statement, and the next
/// transaction, look again: what the load could not see is read again and
/// marks what it names.
fn load_through_snapshot() {
    let snapshot = unsafe {
        if !pg_sys::ActiveSnapshotSet()
            || pg_sys::GetCurrentTransactionIdIfAny() != pg_sys::InvalidTransactionId
        {
            return;
        }
        &*pg_sys::GetActiveSnapshot()
    };
    let next = unsafe { pg_sys::ReadNextFullTransactionId() }.value;
    let back = CACHE.with_borrow(|c| {
        let seen = SeenText::parse(c.seen.as_deref()?)?;
        // Sees everything below it and nothing from it on: no more than
        // either snapshot.
        snapshot_sees_less(next, snapshot, &seen)
            .then(|| seen.xmin.min(full_xid(next, snapshot.xmin)))
    });
    let Some(back) = back else {
        return;
    };
    CACHE.with_borrow_mut(|c| c.seen = Some(snapshot_text(back, back, &[])));
    look_again();
}

/// Snapshot `seen` (`pg_snapshot` text, `xmin:xmax:xip,...`) with
/// transaction `xid` counted as not seen (running when it was taken).
fn unseen(seen: &str, xid: u64) -> String {
    let Some(text) = SeenText::parse(seen) else {
        return seen.to_owned();
    };
    if xid >= text.xmax {
        return seen.to_owned();
    }
    let mut running: Vec<u64> = text.running().collect();
    if !running.contains(&xid) {
        running.push(xid);
        running.sort_unstable();
    }
    snapshot_text(text.xmin.min(xid), text.xmax, &running)
}

/// The workspaces a look at the change log must load again.
#[derive(Default)]
struct Reloads {
    /// Those whose roles changed, with those roles.
    recompile: Vec<(String, Vec<i32>)>,
    /// Those whose modules, actions, requirements, administrative rights or
    /// item roles changed.
    remodel: Vec<String>,
}

impl WorkspaceEntry {
    /// Takes a model loaded again at look `look`, after the roles `changed`
    /// changed, or more than roles (`None`). The role sets those changes
    /// can affect (those holding a changed role; all of them for `None`)
    /// are resolved again in place: a role's permissions, a module turned
    /// off, a requirement or a new action change what a role set gives,
    /// not who holds what, so its holders keep their entries. Users with
    /// overrides who hold such a set are loaded again when next read
    /// (`UserMarks::hold`), as their own scopes are not kept apart from
    /// what they override.
    fn take_model(&mut self, model: Rc<WorkspaceModel>, changed: Option<&[i32]>, look: u64) {
        for set in &mut self.sets {
            if changed.is_none_or(|roles| set.roles.iter().any(|r| roles.contains(r))) {
                set.scopes = role_set_scopes(&model, &set.roles);
                set.changed_at = look;
            }
        }
        if changed.is_none() {
            self.remodeled_at = look;
        }
        self.model = model;
    }

    /// The stamp of what `user` (entry `entry`) is answered, with the parts
    /// `parts` of `AnswersStamp` that are cached (the rest left out).
    fn stamp(&self, identity: (&str, &str), entry: &UserEntry, parts: u8) -> AnswersStamp {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        identity.hash(&mut hasher);
        (self.model.workspace_id, self.remodeled_at).hash(&mut hasher);
        (entry.user_id, entry.loaded, entry.set, entry.barred).hash(&mut hasher);
        self.sets
            .get(entry.set as usize)
            .map(|set| set.changed_at)
            .hash(&mut hasher);
        let mut covered = 0;
        for (bit, direct) in [(AnswersStamp::TEAM, false), (AnswersStamp::DIRECT, true)] {
            if let Some(set) = self.teams.get(&(entry.user_id, direct)) {
                if parts & bit != 0 {
                    covered |= bit;
                    (bit, set.load).hash(&mut hasher);
                }
            }
        }
        if let Some((load, _)) = self.member_of.get(&entry.user_id) {
            if parts & AnswersStamp::MEMBER_OF != 0 {
                covered |= AnswersStamp::MEMBER_OF;
                (AnswersStamp::MEMBER_OF, load).hash(&mut hasher);
            }
        }
        AnswersStamp {
            hash: hasher.finish() & AnswersStamp::HASH_BITS,
            parts: covered,
        }
    }
}

/// What a plan folded the acting user's answers from (src/plans.rs), kept
/// with the plan and compared as it starts (src/planning_snapshot.rs): the
/// identity, and the versions of what the cache answered it from (the
/// user's entry and role set, the workspace model; the users the scopes
/// `team` and `direct` reach and the teams the user is a member of, where
/// `parts` says they were cached). A look that changes any of them for the
/// user, or a reload, gives another stamp; other users' changes do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswersStamp {
    /// A hash of those, in `HASH_BITS` (kept in a plan as a `double`).
    pub hash: u64,
    pub parts: u8,
}

impl AnswersStamp {
    pub const TEAM: u8 = 1;
    pub const DIRECT: u8 = 2;
    pub const MEMBER_OF: u8 = 4;
    /// Of the identity alone (no entry was read).
    pub const IDENTITY: u8 = 8;
    pub const HASH_BITS: u64 = (1 << 52) - 1;
    /// The stamp of no answers: matches none (answers folded from two
    /// looks, or from a cache that held no entry).
    pub const NONE: AnswersStamp = AnswersStamp {
        hash: u64::MAX,
        parts: 0,
    };
}

/// How many looks at the change log have applied changes: folds made
/// between two equal counts read one state of the cache.
pub fn looks() -> u64 {
    CACHE.with_borrow(|c| c.looks)
}

/// `looks()` if the cache is current, as a fold that read it leaves it;
/// `None` if it is not (a fold that read only the identity, before any
/// read of the cache in its statement, when a change had arrived).
pub fn current_look() -> Option<u64> {
    let current = GENERATION.load(Ordering::Relaxed);
    CACHE.with_borrow(|c| (c.generation == Some(current)).then_some(c.looks))
}

/// The stamp of what the cache answers `user` in `workspace` now, with
/// every optional part that is cached, loading none (and looking at
/// nothing): right after answers were folded from it. If the user's entry
/// is no longer cached (evicted while the plan was made), none.
pub fn answers_stamp_folded(workspace: &str, user: &str) -> AnswersStamp {
    cached_stamp(workspace, user, u8::MAX)
}

/// The stamp of `user`'s cached entry in `workspace`, with the cached
/// optional parts among `parts`; none without an entry.
fn cached_stamp(workspace: &str, user: &str, parts: u8) -> AnswersStamp {
    CACHE
        .with_borrow(|c| {
            let ws = c.workspaces.get(workspace)?.as_ref()?;
            let entry = ws.users.get(user)?;
            Some(ws.stamp((workspace, user), entry, parts))
        })
        .unwrap_or(AnswersStamp::NONE)
}

/// The stamp of what the cache answers `user` in `workspace` after a look
/// at the change log (taken if a change arrived that it does not hold),
/// with the optional parts `parts` loaded again where a change dropped
/// them.
pub fn answers_stamp_now(workspace: &str, user: &str, parts: u8) -> AnswersStamp {
    if with_user_entry(workspace, user, |_, _, _| ()).is_err() {
        return AnswersStamp::NONE;
    }
    for (bit, scope) in [
        (AnswersStamp::TEAM, Scope::Team),
        (AnswersStamp::DIRECT, Scope::Direct),
    ] {
        if parts & bit != 0 {
            reached_users(workspace, user, scope);
        }
    }
    if parts & AnswersStamp::MEMBER_OF != 0 {
        member_teams(workspace, user);
    }
    cached_stamp(workspace, user, parts)
}

/// The stamp of answers folded from the identity alone: the user's key (or
/// nobody, `None`) in `workspace`.
pub fn identity_stamp(workspace: &str, user: Option<&str>) -> AnswersStamp {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (AnswersStamp::IDENTITY, workspace, user).hash(&mut hasher);
    AnswersStamp {
        hash: hasher.finish() & AnswersStamp::HASH_BITS,
        parts: AnswersStamp::IDENTITY,
    }
}

/// Looks at the change log again, through the active snapshot.
pub fn look_again_now() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    refresh_if_stale();
}

/// The scopes a set of roles gives without overrides.
fn role_set_scopes(model: &WorkspaceModel, roles: &[i32]) -> Box<[Scope]> {
    let permissions: Vec<&RolePermissions> = roles
        .iter()
        .filter_map(|r| model.roles.get(r))
        .map(|r| &r.permissions)
        .collect();
    effective_scopes(
        &model.slots,
        &permissions,
        &RolePermissions::new(model.slots.len()),
    )
    .into()
}

impl Cache {
    /// Drops or marks what one logged change, applied by look `look`, can
    /// affect, and notes the workspaces to load again.
    fn apply(&mut self, change: &Change, look: u64, work: &mut Reloads) {
        // A change names one workspace, or every one; a workspace cached as
        // missing may be the one just created.
        let matches = |ws: &Option<WorkspaceEntry>| {
            change.workspace_id.is_none()
                || ws
                    .as_ref()
                    .is_none_or(|ws| Some(ws.model.workspace_id) == change.workspace_id)
        };
        if !matches!(
            change.kind.as_str(),
            "user" | "role" | "teams" | "lead" | "model"
        ) {
            self.workspaces.retain(|_, w| !matches(w));
            return;
        }
        for (name, ws) in self.workspaces.iter_mut().filter(|(_, w)| matches(w)) {
            let Some(ws) = ws else { continue };
            match change.kind.as_str() {
                // The user, and anyone cached as unknown (they may be new).
                "user" => {
                    ws.marks.any_changed_at = look;
                    if let Some(id) = change.id {
                        ws.marks.changed.insert(id, look);
                    }
                }
                // The role, compiled again, and the role sets it is in.
                "role" => {
                    let role = change.id.unwrap_or(0) as i32;
                    match work.recompile.iter_mut().find(|(n, _)| n == name) {
                        Some((_, roles)) if roles.contains(&role) => {}
                        Some((_, roles)) => roles.push(role),
                        None => work.recompile.push((name.clone(), vec![role])),
                    }
                }
                "model" => {
                    if !work.remodel.contains(name) {
                        work.remodel.push(name.clone());
                    }
                }
                // The sets of the team's leads (of every lead, for a change
                // to every reporting line), and everyone's teams.
                "teams" => {
                    match change.id {
                        Some(team) => ws.teams.retain(|_, set| !set.led.contains(&team)),
                        None => ws.teams.clear(),
                    }
                    ws.member_of.clear();
                }
                // A lead made or unmade: their sets.
                _ => match change.id {
                    Some(lead) => {
                        ws.teams.remove(&(lead, false));
                        ws.teams.remove(&(lead, true));
                    }
                    None => ws.teams.clear(),
                },
            }
        }
    }

    /// The users cached whose entries still hold.
    fn cached_users(&self) -> usize {
        self.workspaces
            .values()
            .flatten()
            .map(|ws| ws.users.values().filter(|u| ws.holds(u)).count())
            .sum()
    }

    /// The entries kept, stale or not.
    fn entries(&self) -> usize {
        self.workspaces
            .values()
            .flatten()
            .map(|ws| ws.users.len())
            .sum()
    }

    /// Keeps the cache within `fluent.cache_users`: drops the users not
    /// checked since the last eviction and those that no longer hold (all
    /// of them if that is not enough).
    fn evict_if_full(&mut self) {
        let max = MAX_USERS.get().max(1) as usize;
        if self.entries() < max {
            return;
        }
        // Counted as a look: answers folded before and after it may come
        // from two entries of one user (src/folds.rs).
        self.looks += 1;
        for ws in self.workspaces.values_mut().flatten() {
            let (marks, sets) = (&ws.marks, &ws.sets);
            ws.users
                .retain(|_, u| u.used.replace(false) && marks.hold(sets, u));
            ws.marks.changed.clear();
        }
        if self.entries() >= max {
            for ws in self.workspaces.values_mut().flatten() {
                ws.users.clear();
            }
        }
    }
}

/// Loads (at most once per workspace until it changes) and returns the
/// workspace model.
fn workspace_model(workspace: &str) -> Option<Rc<WorkspaceModel>> {
    if let Some(cached) = CACHE.with_borrow(|c| {
        c.workspaces
            .get(workspace)
            .map(|w| w.as_ref().map(|w| w.model.clone()))
    }) {
        return cached;
    }
    // No borrow is held while SPI runs: loading may process invalidations.
    MODEL_LOADS.fetch_add(1, Ordering::Relaxed);
    load_through_snapshot();
    let loaded = loaders::load_workspace(workspace).map(Rc::new);
    CACHE.with_borrow_mut(|c| {
        let looks = c.looks;
        c.workspaces.insert(
            workspace.to_owned(),
            loaded.clone().map(|model| WorkspaceEntry {
                model,
                users: FastMap::default(),
                marks: UserMarks::default(),
                sets: Vec::new(),
                set_of: FastMap::default(),
                teams: FastMap::default(),
                member_of: FastMap::default(),
                remodeled_at: looks,
            }),
        )
    });
    loaded
}

/// The workspace model and the slot of `module.action` (for explanations
/// and reports), or the error to raise.
pub fn model_and_slot(
    workspace: &str,
    module: &str,
    action: &str,
) -> Result<(Rc<WorkspaceModel>, usize), FluentError> {
    refresh_if_stale();
    let model = workspace_model(workspace).ok_or_else(|| FluentError::UnknownWorkspace {
        workspace: workspace.to_owned(),
    })?;
    let slot = slot_of(&model, workspace, module, action)?;
    Ok((model, slot))
}

/// The workspace model, loaded if needed.
pub fn model(workspace: &str) -> Option<Rc<WorkspaceModel>> {
    refresh_if_stale();
    workspace_model(workspace)
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
        .ok_or_else(|| FluentError::NotInWorkspace {
            kind: "module",
            name: module.to_owned(),
            workspace: workspace.to_owned(),
        })?;
    actions
        .get(action)
        .copied()
        .ok_or_else(|| FluentError::UnknownAction {
            module: module.to_owned(),
            action: action.to_owned(),
            known: None,
        })
}

fn load_user_entry(workspace: &str, model: &WorkspaceModel, user: &str) -> UserEntry {
    USER_LOADS.fetch_add(1, Ordering::Relaxed);
    // Stamped when it is cached (with_user_entry).
    let barred = |barred, user_id| UserEntry {
        own: None,
        user_id,
        loaded: 0,
        set: NO_SET,
        barred: Some(barred),
        used: Cell::new(true),
        expires_at: NEVER,
    };
    load_through_snapshot();
    // Index probes; the kept-plan query where they cannot run.
    let holdings =
        probes::load_user(model, user).unwrap_or_else(|()| loaders::load_user(model, user));
    let Some(holdings) = holdings else {
        return barred(Barred::Unknown, 0);
    };
    match holdings.status.as_str() {
        "active" => {}
        "ghost" => return barred(Barred::Ghost, holdings.user_id),
        "invited" => return barred(Barred::Invited, holdings.user_id),
        _ => return barred(Barred::Disabled, holdings.user_id),
    }
    let expires_at = holdings.expires_at.unwrap_or(NEVER);
    if holdings.standing(model) == Standing::NoSignInRole {
        // A sign-in role granted later is a change, which drops the entry.
        return barred(Barred::NoSignInRole, holdings.user_id);
    }
    let held = holdings.held(model);
    let permissions: Vec<&RolePermissions> = held.iter().map(|r| &r.permissions).collect();
    let scopes_with = |overrides: &RolePermissions| {
        Box::new(OwnScopes(
            effective_scopes(&model.slots, &permissions, overrides).into(),
        ))
    };
    // The role set's scopes, shared by every user who holds exactly these roles.
    let set = CACHE.with_borrow_mut(|c| {
        let ws = c.workspaces.get_mut(workspace)?.as_mut()?;
        if let Some(&set) = ws.set_of.get(holdings.roles.as_slice()) {
            return Some(set);
        }
        let set = ws.sets.len() as u32;
        ws.sets.push(RoleSet {
            roles: holdings.roles.clone().into(),
            scopes: role_set_scopes(model, &holdings.roles),
            changed_at: 0,
        });
        ws.set_of.insert(holdings.roles.clone().into(), set);
        Some(set)
    });
    let own = (!holdings.overrides.is_empty() || set.is_none())
        .then(|| scopes_with(&holdings.override_settings(model)));
    UserEntry {
        own,
        user_id: holdings.user_id,
        loaded: 0,
        set: set.unwrap_or(NO_SET),
        barred: None,
        used: Cell::new(true),
        expires_at,
    }
}

/// Runs `f` on the user's cache entry in the workspace, loading it first
/// if needed.
fn with_user_entry<R>(
    workspace: &str,
    user: &str,
    f: impl FnOnce(&WorkspaceModel, &[Scope], &UserEntry) -> R,
) -> Result<R, FluentError> {
    refresh_if_stale();
    let model = workspace_model(workspace).ok_or_else(|| FluentError::UnknownWorkspace {
        workspace: workspace.to_owned(),
    })?;
    let cached = CACHE.with_borrow(|c| {
        c.workspaces
            .get(workspace)
            .and_then(|w| w.as_ref())
            .is_some_and(|w| w.current_user(user).is_some())
    });
    if !cached {
        let mut entry = load_user_entry(workspace, &model, user);
        CACHE.with_borrow_mut(|c| {
            c.evict_if_full();
            entry.loaded = c.looks;
            if let Some(Some(ws)) = c.workspaces.get_mut(workspace) {
                ws.users.insert(user.into(), entry);
            }
        });
    }
    CACHE
        .with_borrow(|c| {
            let ws = c.workspaces.get(workspace)?.as_ref()?;
            let entry = ws.users.get(user)?;
            entry.used.set(true);
            Some(f(&model, ws.scopes(entry), entry))
        })
        .ok_or_else(|| FluentError::UnknownWorkspace {
            workspace: workspace.to_owned(),
        })
}

/// Whether `user` may act in `workspace`: known, active, and holding a
/// sign-in role where the workspace has them.
pub fn check_may_act(workspace: &str, user: &str) -> Result<(), FluentError> {
    let barred = with_user_entry(workspace, user, |_, _, entry| entry.barred)?;
    let status = |status: &str| FluentError::UserCannotSignIn {
        user: user.to_owned(),
        status: status.to_owned(),
    };
    match barred {
        None => Ok(()),
        Some(Barred::Unknown) => Err(FluentError::UnknownUser {
            user: user.to_owned(),
        }),
        Some(Barred::Ghost) => Err(status("ghost")),
        Some(Barred::Disabled) => Err(status("disabled")),
        Some(Barred::Invited) => Err(status("invited")),
        Some(Barred::NoSignInRole) => Err(FluentError::NoSignInRole {
            user: user.to_owned(),
            workspace: workspace.to_owned(),
        }),
    }
}

/// The modules on which `user` has some scope, sorted by name. Disabled
/// modules never qualify: their every slot resolves to `none`.
pub fn visible_modules(workspace: &str, user: &str) -> Result<Vec<String>, FluentError> {
    with_user_entry(workspace, user, |model, scopes, _| {
        let mut names: Vec<String> = model
            .modules
            .iter()
            .filter(|(_, actions)| {
                actions
                    .values()
                    .any(|&slot| scopes.get(slot).is_some_and(|s| *s > Scope::None))
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
        let entry = ws.current_user(user)?;
        entry.used.set(true);
        Some(ws.scopes(entry).get(slot).copied().unwrap_or_default())
    });
    if let Some(scope) = hit {
        return Ok(scope);
    }
    refresh_if_stale();
    with_user_entry(workspace, user, |model, scopes, _| {
        let slot = slot_of(model, workspace, module, action)?;
        Ok(scopes.get(slot).copied().unwrap_or_default())
    })?
}

/// The users whose rows `user` reaches with `scope`, the user first:
/// nobody for `none`, the user for `own`, plus their direct reports and the
/// members of teams they lead for `direct`, plus their whole reporting line
/// for `team` and `all` (`all` also reaches every other row, which the
/// policies test separately).
pub fn reached_users(workspace: &str, user: &str, scope: Scope) -> Rc<Vec<String>> {
    if scope == Scope::None {
        return Rc::default();
    }
    if scope == Scope::Own {
        return Rc::new(vec![user.to_owned()]);
    }
    let direct = scope == Scope::Direct;
    let cached = CACHE.with_borrow(|c| {
        let ws = c.workspaces.get(workspace)?.as_ref()?;
        let entry = ws.users.get(user).filter(|e| ws.holds(e))?;
        Some((
            ws.teams
                .get(&(entry.user_id, direct))
                .map(|set| set.keys.clone()),
            entry.user_id,
            ws.model.workspace_id,
        ))
    });
    let Some((team, user_id, workspace_id)) = cached else {
        return Rc::new(vec![user.to_owned()]);
    };
    if let Some(team) = team {
        return team;
    }
    if user_id == 0 {
        return Rc::new(vec![user.to_owned()]);
    }
    let mut keys = vec![user.to_owned()];
    load_through_snapshot();
    let (team, led) = loaders::load_team(workspace_id, user_id, direct);
    keys.extend(team);
    let keys = Rc::new(keys);
    CACHE.with_borrow_mut(|c| {
        if let Some(Some(ws)) = c.workspaces.get_mut(workspace) {
            let set = TeamSet {
                keys: keys.clone(),
                led,
                load: next_part_load(),
            };
            ws.teams.insert((user_id, direct), set);
        }
    });
    keys
}

/// The item roles of `item_module` that give `action` (by name) to `user`
/// on the items where they hold them, with their conditions met now
/// (src/scope.rs); none where the decision on `module.action` or on
/// `item_module.action` admits no item roles (an inactive user, a disabled
/// module, a missing requirement, or no scope on the action of another
/// module than the items'), and for unknown names (a policy denies instead
/// of failing).
pub fn item_roles(
    workspace: &str,
    user: &str,
    module: &str,
    action: &str,
    item_module: &str,
) -> Vec<String> {
    let held = held_roles(workspace, user);
    with_user_entry(workspace, user, |model, scopes, entry| {
        let slot_of = |m: &str| model.modules.get(m)?.get(action).copied();
        let (Some(slot), Some(item_slot)) = (slot_of(module), slot_of(item_module)) else {
            return Vec::new();
        };
        let active = entry.barred.is_none();
        if !item_roles_give_by_scopes(
            &model.slots,
            scopes,
            active,
            (slot, item_slot),
            module != item_module,
        ) {
            return Vec::new();
        }
        let scope_on = |s: usize| scopes.get(s).copied().unwrap_or_default();
        model
            .item_roles_giving
            .get(&item_slot)
            .into_iter()
            .flatten()
            .map(|&i| &model.item_roles[i])
            .filter(|r| r.condition.met(|role| held.contains(&role), scope_on))
            .map(|r| r.name.clone())
            .collect()
    })
    .unwrap_or_default()
}

/// The item roles of `module` that `user` may assign on an item their scope
/// on `module.update_action` reaches: those whose every action they hold at
/// that scope or wider (src/scope.rs).
pub fn assignable_item_roles(
    workspace: &str,
    user: &str,
    module: &str,
    update_action: &str,
) -> Vec<String> {
    with_user_entry(workspace, user, |model, scopes, entry| {
        let Some(slot) = model.modules.get(module).and_then(|m| m.get(update_action)) else {
            return Vec::new();
        };
        if entry.barred.is_some() {
            return Vec::new();
        }
        let update = scopes.get(*slot).copied().unwrap_or_default();
        model
            .item_roles
            .iter()
            .filter(|r| r.module == module)
            .filter(|r| {
                may_assign_item_role(
                    update,
                    r.slots
                        .iter()
                        .map(|&s| scopes.get(s).copied().unwrap_or_default()),
                )
            })
            .map(|r| r.name.clone())
            .collect()
    })
    .unwrap_or_default()
}

/// The roles `user` holds (none when barred or unknown), loading the user
/// if needed.
fn held_roles(workspace: &str, user: &str) -> Vec<i32> {
    if with_user_entry(workspace, user, |_, _, _| ()).is_err() {
        return Vec::new();
    }
    CACHE
        .with_borrow(|c| {
            let ws = c.workspaces.get(workspace)?.as_ref()?;
            let entry = ws.users.get(user)?;
            Some(ws.sets.get(entry.set as usize)?.roles.to_vec())
        })
        .unwrap_or_default()
}

/// The names of the teams `user` is a member of.
pub fn member_teams(workspace: &str, user: &str) -> Rc<Vec<String>> {
    let Ok((user_id, workspace_id)) = with_user_entry(workspace, user, |model, _, entry| {
        (entry.user_id, model.workspace_id)
    }) else {
        return Rc::default();
    };
    if user_id == 0 {
        return Rc::default();
    }
    let cached = CACHE.with_borrow(|c| {
        c.workspaces
            .get(workspace)?
            .as_ref()?
            .member_of
            .get(&user_id)
            .map(|(_, teams)| teams.clone())
    });
    if let Some(teams) = cached {
        return teams;
    }
    load_through_snapshot();
    let teams = Rc::new(loaders::load_member_teams(workspace_id, user_id));
    CACHE.with_borrow_mut(|c| {
        if let Some(Some(ws)) = c.workspaces.get_mut(workspace) {
            ws.member_of
                .insert(user_id, (next_part_load(), teams.clone()));
        }
    });
    teams
}

#[pgrx::pg_schema]
mod fluent {
    use super::*;
    use pgrx::prelude::*;

    /// What this backend's cache holds and has loaded: how precisely
    /// changes are invalidated shows in how few loads follow them.
    #[pg_extern(volatile, parallel_restricted)]
    fn cache_statistics() -> TableIterator<
        'static,
        (
            name!(cached_users, i64),
            name!(user_loads, i64),
            name!(model_loads, i64),
        ),
    > {
        refresh_if_stale();
        let cached = CACHE.with_borrow(Cache::cached_users) as i64;
        TableIterator::once((
            cached,
            USER_LOADS.load(Ordering::Relaxed) as i64,
            MODEL_LOADS.load(Ordering::Relaxed) as i64,
        ))
    }

    extension_sql!(
        "COMMENT ON FUNCTION fluent.cache_statistics() IS
             'This backend''s permission cache: the users it holds, and how many users and workspace models it has loaded since it started (each load is one catalog query; a change loads again only what it changes)';",
        name = "cache_statistics_comment",
        requires = [cache_statistics]
    );
}

// Statement trigger on the catalog tables: tells every backend to drop its
// cached permissions when this transaction commits.
after_trigger!(
    fluent_invalidate_cache,
    pg_finfo_fluent_invalidate_cache,
    "fluent.invalidate_cache",
    |_| { invalidate_all_backends() }
);
// Its CREATE FUNCTION is in sql/triggers.sql.
