//! What plans folded of the acting user's answers, and their invalidation.
//!
//! The planner support functions (src/plans.rs) fold the acting user's
//! answers into plans and record it here; the modules that notice a change
//! below them (the identity in src/gucs.rs, the catalog in src/cache.rs)
//! invalidate those plans through here. Nothing in this module reads the
//! catalog or the cache, so both can call it: dependencies run one way.
//!
//! Every function here only flips flags in the plan cache (through its
//! syscache callbacks), so it is safe in GUC assign hooks, invalidation
//! callbacks and transaction callbacks.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;

thread_local! {
    /// Syscache hash values of the support functions of the helpers folded
    /// into plans since the plans depending on them were last invalidated.
    static FOLDED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// How many plans are being made (nested: a function run while planning
    /// may plan queries of its own).
    static PLANNING: Cell<u32> = const { Cell::new(0) };
    /// Counts the identity changes and the folds, so that planning can tell
    /// whether one happened while it ran.
    static IDENTITY_CHANGES: Cell<u64> = const { Cell::new(0) };
    static FOLDS: Cell<u64> = const { Cell::new(0) };
    /// The looks at the change log whose cache the folds of the plannings
    /// running read.
    static FOLD_LOOKS: Cell<FoldLooks> = const { Cell::new(FoldLooks::None) };
    /// A plan made in the current transaction for a statement run inside
    /// another one (a function's) folded the acting user's answers.
    static FOLDED_INSIDE_IN_XACT: Cell<bool> = const { Cell::new(false) };
}

/// A plan folded the helper whose support function has syscache hash
/// `hash`, from the cache as look `look` left it (`None`: it read no cache,
/// only the identity).
pub fn record_fold(hash: u32, look: Option<u64>) {
    FOLDS.set(FOLDS.get() + 1);
    if let Some(look) = look {
        FOLD_LOOKS.set(FOLD_LOOKS.get().and(FoldLooks::One(look)));
    }
    // Outside the planner hook: the library loaded in the middle of this
    // planner call (which looked the hook up before), or an expression
    // planned without the planner (PL/pgSQL's casts). Whose statement it
    // plans is unknown, so it counts as one run inside another.
    if PLANNING.get() == 0 {
        FOLDED_INSIDE_IN_XACT.set(true);
    }
    FOLDED.with_borrow_mut(|folded| {
        if !folded.contains(&hash) {
            folded.push(hash);
        }
    });
}

/// What a planner run did with the acting user's answers.
pub struct Planned {
    /// It folded some.
    pub folded: bool,
    /// The identity changed while it ran after answers of the previous one
    /// were folded.
    pub mixed: bool,
    /// What its folds read of the cache.
    pub looks: FoldLooks,
}

/// The looks at the change log (src/cache.rs counts them) whose cache a
/// plan's folds read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FoldLooks {
    /// None: they folded the identity alone.
    None,
    One(u64),
    Several,
}

impl FoldLooks {
    /// What folds that read `self` and folds that read `other` read.
    fn and(self, other: FoldLooks) -> FoldLooks {
        match (self, other) {
            (FoldLooks::None, looks) | (looks, FoldLooks::None) => looks,
            (FoldLooks::One(a), FoldLooks::One(b)) if a == b => self,
            _ => FoldLooks::Several,
        }
    }
}

/// Runs `plan` (the planner) for a statement, the client's own or, with
/// `inside`, one run inside another (a function's); returns its result and
/// what it folded.
pub fn planning<R>(
    inside: bool,
    plan: impl FnOnce() -> R + std::panic::UnwindSafe,
) -> (R, Planned) {
    let (changes, folds) = (IDENTITY_CHANGES.get(), FOLDS.get());
    let outer = FOLD_LOOKS.replace(FoldLooks::None);
    let this = Cell::new(FoldLooks::None);
    PLANNING.set(PLANNING.get() + 1);
    let result = pgrx::PgTryBuilder::new(plan)
        .finally(|| {
            PLANNING.set(PLANNING.get() - 1);
            // The planning this one runs inside folded what it folded.
            this.set(FOLD_LOOKS.get());
            FOLD_LOOKS.set(outer.and(this.get()));
        })
        .execute();
    let folded = FOLDS.get() != folds;
    if folded && inside {
        FOLDED_INSIDE_IN_XACT.set(true);
    }
    let mixed = IDENTITY_CHANGES.get() != changes && folded;
    (
        result,
        Planned {
            folded,
            mixed,
            looks: this.get(),
        },
    )
}

/// Whether a plan is being made (a function the planner runs is running).
pub fn planning_now() -> bool {
    PLANNING.get() > 0
}

/// Runs `f` over the syscache hash values of the support functions folded
/// into plans since the plans depending on them were last invalidated.
pub fn with_folded_functions<R>(f: impl FnOnce(&[u32]) -> R) -> R {
    FOLDED.with_borrow(|folded| f(folded))
}

/// Invalidates every cached plan that folded the acting user's answers.
pub fn invalidate_identity_plans() {
    // While a plan is being made, the helpers it folded so far stay listed:
    // that plan is not in the plan cache yet, so these callbacks miss it, and
    // the next change must reach it.
    let folded = if PLANNING.get() > 0 {
        FOLDED.with_borrow(Vec::clone)
    } else {
        FOLDED.with_borrow_mut(std::mem::take)
    };
    for hash in folded {
        unsafe { pg_sys::CallSyscacheCallbacks(pg_sys::SysCacheIdentifier::PROCOID as i32, hash) }
    }
}

/// The acting user or workspace changes (src/gucs.rs): plans folded for the
/// old one must not run for the new one.
pub fn identity_changed() {
    IDENTITY_CHANGES.set(IDENTITY_CHANGES.get() + 1);
    invalidate_identity_plans();
    drop_sql_function_plans();
}

/// The identity or the catalog changed (src/cache.rs). A SQL function
/// (LANGUAGE sql or BEGIN ATOMIC) that is not inlined plans its queries
/// itself and keeps the plans, outside the plan cache, for as long as its
/// caller's expression lives: a PL/pgSQL expression's lives for the
/// transaction. PostgreSQL drops those plans when a plan calling the function
/// is invalidated, so a change in the middle of a transaction where a
/// statement run inside another folded answers invalidates every plan that
/// calls a function (the plan cache keeps no finer record of them). Only
/// then: the plans of the client's own statements are in the plan cache,
/// where `invalidate_identity_plans` reaches them, and every plan calling a
/// function includes fluent's kept catalog queries, which would all be
/// planned again after each change. At the end of a transaction they go
/// anyway.
pub fn drop_sql_function_plans() {
    if FOLDED_INSIDE_IN_XACT.get() && unsafe { pg_sys::IsTransactionState() } {
        unsafe { pg_sys::CallSyscacheCallbacks(pg_sys::SysCacheIdentifier::PROCOID as i32, 0) }
    }
}

/// At the end of every transaction (src/lib.rs).
pub fn transaction_ended() {
    FOLDED_INSIDE_IN_XACT.set(false);
}
