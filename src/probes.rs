//! One user's holdings read by index probes, without the executor: the
//! first check of a user costs what `fluent._load_user` costs in index
//! lookups, not a query's start and end.
//!
//! It reads what `fluent._load_user` (sql/loaders.sql) returns, from the same
//! indexes (`users (user_key)`, `grants` and `overrides` by `(workspace_id,
//! user_id)`), through the snapshot the running statement reads with, as
//! the kept-plan query does in a transaction that has written nothing; the
//! cache falls back to that query in one that has. Only built-in
//! comparisons run (text and integer equality): no code a user controls.
//! The indexes hold the columns read (`INCLUDE`, sql/catalog.sql), so a load
//! reads them as an index-only scan would: a table's page only where the
//! visibility map does not say all of it is visible.
//!
//! The indexes are used only while they are what the catalog declares (valid
//! btrees on those columns, neither partial nor on expressions, holding the
//! columns read); otherwise the query reads instead. They are looked up again whenever their tables'
//! definitions change: a `REINDEX CONCURRENTLY` gives an index a new OID.
//!
//! Opening an index scan costs more than the probe it makes, so the scans
//! stay open from the first load of a transaction until it ends, and each
//! load rescans them with its keys and its statement's snapshot. They keep
//! no snapshot and no buffer pin between loads; their relation references
//! and locks belong to a resource owner of their own under the
//! transaction's: closed before it commits (src/lib.rs) and before a utility
//! statement that may be DDL on those tables (`before_utility`), released with the
//! transaction's if it aborts, and untouched by a subtransaction's end;
//! a load that failed half-way (which ends its subtransaction or
//! transaction) leaves its pins and references released quietly when that
//! ends, its locks to the transaction.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use pgrx::pg_sys;

use crate::hashing::FastMap;
use crate::loaders::{UserHoldings, WorkspaceModel};
use crate::owner;
use crate::scope::Scope;

/// The relations read, and where the columns read are in the indexes'
/// tuples (positions from 0, key or `INCLUDE` column), resolved once per
/// installation (keyed by the users table's OID).
#[derive(Clone, Copy)]
struct Layout {
    users: pg_sys::Oid,
    users_by_key: pg_sys::Oid,
    grants: pg_sys::Oid,
    grants_by_user: pg_sys::Oid,
    overrides: pg_sys::Oid,
    overrides_by_user: pg_sys::Oid,
    /// The collation of `users (user_key)` and of its index.
    key_collation: pg_sys::Oid,
    /// The newest transaction that built one of the indexes while a
    /// snapshot could still see an older version of a row whose columns it
    /// holds (`pg_index.indcheckxmin`): such an index holds the values of
    /// the newest version, so, as the planner does, only transactions whose
    /// oldest snapshot follows it read it. Invalid: none.
    built_by: pg_sys::TransactionId,
    user_id: usize,
    status: usize,
    grant_role: usize,
    grant_until: usize,
    override_action: usize,
    override_scope: usize,
    override_set_by: usize,
    override_until: usize,
}

thread_local! {
    static LAYOUT: RefCell<Option<Layout>> = const { RefCell::new(None) };
    /// Enum value OID -> label (user statuses and scopes).
    static LABELS: RefCell<FastMap<u32, String>> = RefCell::new(FastMap::default());
}

/// Registers the invalidation callback; called once from `_PG_init`.
pub fn init() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0));
    }
}

/// Before a utility statement (src/lib.rs's utility hook): closes the scans
/// kept open, but for the statements a transaction reading permissions runs
/// between its checks (fetching from a cursor, transaction control,
/// settings). The scans hold references to the tables and indexes they
/// read, and PostgreSQL refuses DDL on a relation "being used by active
/// queries in this session": after the first check of a transaction, its
/// `ALTER TABLE`, `TRUNCATE`, `CREATE INDEX`, `REINDEX`, `CLUSTER` or `DROP
/// EXTENSION` of fluent's users, grants or overrides would fail. Their locks
/// stay with the transaction.
pub unsafe fn before_utility(statement: *mut pg_sys::Node) {
    let between_checks = !statement.is_null()
        && matches!(
            (*statement).type_,
            pg_sys::NodeTag::T_FetchStmt
                | pg_sys::NodeTag::T_TransactionStmt
                | pg_sys::NodeTag::T_VariableSetStmt
                | pg_sys::NodeTag::T_VariableShowStmt
        );
    // Not while a load runs (it took the scans out; none runs a statement).
    if !between_checks {
        if let Some(open) = OPEN.take() {
            within(|| open.close());
            release_owner(true);
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Only forget: no catalog access is allowed here. Open scans are closed
    // at the next load. While no layout is known (or one is being looked
    // up), any relation may be one of those.
    LAYOUT.with_borrow_mut(|l| {
        if l.is_none_or(|l| {
            relid == pg_sys::InvalidOid || [l.users, l.grants, l.overrides].contains(&relid)
        }) {
            *l = None;
            GENERATION.set(GENERATION.get() + 1);
        }
    });
}

/// What `btree_on` found of a usable index.
struct Usable {
    /// The table columns it holds, key columns first, then `INCLUDE` ones.
    columns: Vec<i16>,
    /// The transaction that built it, if snapshots older than that must not
    /// read it (see `Layout::built_by`).
    built_by: Option<pg_sys::TransactionId>,
}

/// `index`, if it is a valid btree on `table` with `keys` as its first key
/// columns, neither partial nor on expressions: one that holds every row by
/// them.
fn btree_on(index: pg_sys::Oid, table: pg_sys::Oid, keys: &[i16]) -> Option<Usable> {
    unsafe {
        let class = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as _,
            pg_sys::Datum::from(index),
        );
        if class.is_null() {
            return None;
        }
        let btree = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(class)).relam
            == pg_sys::BTREE_AM_OID;
        pg_sys::ReleaseSysCache(class);
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::INDEXRELID as _,
            pg_sys::Datum::from(index),
        );
        if tuple.is_null() {
            return None;
        }
        let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_index>(tuple);
        let columns = (*form)
            .indkey
            .values
            .as_slice((*form).indnatts as usize)
            .to_vec();
        let built_by = (*form)
            .indcheckxmin
            .then(|| pg_sys::submodules::htup::HeapTupleHeaderGetXmin((*tuple).t_data));
        let usable = btree
            && (*form).indrelid == table
            && (*form).indisvalid
            && (*form).indisready
            && (*form).indislive
            && (*form).indnkeyatts as usize >= keys.len()
            && columns.starts_with(keys)
            && pg_sys::heap_attisnull(
                tuple,
                pg_sys::Anum_pg_index_indpred as _,
                std::ptr::null_mut(),
            )
            && pg_sys::heap_attisnull(
                tuple,
                pg_sys::Anum_pg_index_indexprs as _,
                std::ptr::null_mut(),
            );
        pg_sys::ReleaseSysCache(tuple);
        usable.then_some(Usable { columns, built_by })
    }
}

/// The collation of column `attnum` of relation `rel` (of a table, or of an
/// index, whose columns have the collation it orders them by).
fn collation_of(rel: pg_sys::Oid, attnum: i16) -> pg_sys::Oid {
    let (mut typid, mut typmod, mut collation) = (pg_sys::InvalidOid, 0, pg_sys::InvalidOid);
    unsafe { pg_sys::get_atttypetypmodcoll(rel, attnum, &mut typid, &mut typmod, &mut collation) };
    collation
}

fn layout() -> Option<Layout> {
    if let Some(layout) = LAYOUT.with_borrow(|l| *l) {
        return Some(layout);
    }
    // The catalog lookups below may take in invalidation messages.
    let generation = GENERATION.get();
    let attnum = |rel: pg_sys::Oid, name: &CStr| -> Option<i16> {
        let n = unsafe { pg_sys::get_attnum(rel, name.as_ptr()) };
        (n > 0).then_some(n)
    };
    let mut built_by = pg_sys::InvalidTransactionId;
    // Where each of `names` is in the tuples of `index`, a btree on `table`
    // by `keys` first.
    let mut read = |table: pg_sys::Oid, index: pg_sys::Oid, keys: &[&CStr], names: &[&CStr]| {
        let keys = keys
            .iter()
            .map(|k| attnum(table, k))
            .collect::<Option<Vec<i16>>>()?;
        let usable = btree_on(index, table, &keys)?;
        if let Some(xid) = usable.built_by {
            if built_by == pg_sys::InvalidTransactionId
                || unsafe { pg_sys::TransactionIdPrecedes(built_by, xid) }
            {
                built_by = xid;
            }
        }
        names
            .iter()
            .map(|n| {
                let n = attnum(table, n)?;
                usable.columns.iter().position(|&c| c == n)
            })
            .collect::<Option<Vec<usize>>>()
    };
    let users = owner::catalog_relid(c"users")?;
    let users_by_key = owner::catalog_relid(c"users_user_key_key")?;
    // The keys are compared in the column's collation: an index ordered by
    // another would be searched in the wrong order.
    let key_collation = collation_of(users, attnum(users, c"user_key")?);
    if collation_of(users_by_key, 1) != key_collation {
        return None;
    }
    let grants = owner::catalog_relid(c"grants")?;
    let grants_by_user = owner::catalog_relid(c"grants_workspace_user_idx")?;
    let overrides = owner::catalog_relid(c"overrides")?;
    let overrides_by_user = owner::catalog_relid(c"overrides_workspace_user_idx")?;
    let by_user = [c"workspace_id", c"user_id"];
    let user = read(
        users,
        users_by_key,
        &[c"user_key"],
        &[c"user_id", c"status"],
    )?;
    let grant = read(
        grants,
        grants_by_user,
        &by_user,
        &[c"role_id", c"valid_until"],
    )?;
    let set = [c"action_id", c"scope", c"set_by", c"valid_until"];
    let set = read(overrides, overrides_by_user, &by_user, &set)?;
    let layout = Layout {
        users,
        users_by_key,
        grants,
        grants_by_user,
        overrides,
        overrides_by_user,
        key_collation,
        built_by,
        user_id: user[0],
        status: user[1],
        grant_role: grant[0],
        grant_until: grant[1],
        override_action: set[0],
        override_scope: set[1],
        override_set_by: set[2],
        override_until: set[3],
    };
    // Kept only if no table changed while it was looked up (the caller,
    // which took `GENERATION` before, then queries instead).
    if GENERATION.get() == generation {
        LAYOUT.with_borrow_mut(|l| *l = Some(layout));
    }
    Some(layout)
}

/// One index scan kept open: `table` read through `index` by equality on
/// the index's first columns, each key with its equality function and
/// collation (only the arguments change from one load to the next).
struct Probe {
    table: pg_sys::Relation,
    index: pg_sys::Relation,
    scan: pg_sys::IndexScanDesc,
    /// Where the table's tuple goes when its page must be read.
    slot: *mut pg_sys::TupleTableSlot,
    keys: Vec<pg_sys::ScanKeyData>,
    /// The visibility map page last read, pinned during a read only (a
    /// function such as `pg_truncate_visibility_map()`, run by the same
    /// transaction between two loads, drops the map's pages).
    vm_buffer: pg_sys::Buffer,
}

/// The columns of one index tuple, by position.
struct Row {
    values: [pg_sys::Datum; pg_sys::INDEX_MAX_KEYS as usize],
    nulls: [bool; pg_sys::INDEX_MAX_KEYS as usize],
}

impl Row {
    fn get(&self, column: usize) -> Option<pg_sys::Datum> {
        (!self.nulls[column]).then_some(self.values[column])
    }
}

impl Probe {
    /// Opens the scan (within `within`: its references, locks and pins
    /// belong to the probes' resource owner).
    unsafe fn open(
        table: pg_sys::Oid,
        index: pg_sys::Oid,
        snapshot: pg_sys::Snapshot,
        keys: &[(u32, pg_sys::Oid)],
    ) -> Probe {
        let table = pg_sys::table_open(table, pg_sys::AccessShareLock as _);
        let index = pg_sys::index_open(index, pg_sys::AccessShareLock as _);
        let keys: Vec<pg_sys::ScanKeyData> = keys
            .iter()
            .enumerate()
            .map(|(column, &(equal, collation))| {
                let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
                pg_sys::ScanKeyInit(
                    &mut key,
                    // Index columns, numbered from 1.
                    column as i16 + 1,
                    pg_sys::BTEqualStrategyNumber as _,
                    equal.into(),
                    pg_sys::Datum::from(0),
                );
                // The index orders a text column by the column's collation.
                key.sk_collation = collation;
                key
            })
            .collect();
        #[cfg(feature = "pg15")]
        let scan = pg_sys::index_beginscan(table, index, snapshot, keys.len() as _, 0);
        #[cfg(not(feature = "pg15"))]
        let scan = pg_sys::index_beginscan(
            table,
            index,
            snapshot,
            std::ptr::null_mut(),
            keys.len() as _,
            0,
        );
        (*scan).xs_snapshot = std::ptr::null_mut();
        // The values are read from the index's tuples, as an index-only
        // scan reads them.
        (*scan).xs_want_itup = true;
        let slot = pg_sys::table_slot_create(table, std::ptr::null_mut());
        Probe {
            table,
            index,
            scan,
            slot,
            keys,
            vm_buffer: pg_sys::InvalidBuffer as pg_sys::Buffer,
        }
    }

    /// Every tuple with the keys `values` visible to `snapshot`, each seen by
    /// `visit` (which copies what it needs: the row is gone after).
    ///
    /// Read as an index-only scan reads (nodeIndexonlyscan.c): the columns
    /// from the index tuple, and the table's page only where the visibility
    /// map does not say that every tuple on it is visible to everyone, to
    /// decide whether this one is visible to `snapshot` (the index holds
    /// every column read, so no update of them is HOT: an index tuple's
    /// values are those of every version it leads to). In a serializable
    /// transaction the table's page is always read: reading it takes the
    /// predicate lock on the tuple.
    unsafe fn read(
        &mut self,
        snapshot: pg_sys::Snapshot,
        values: &[pg_sys::Datum],
        mut visit: impl FnMut(&Row),
    ) {
        for (key, &value) in self.keys.iter_mut().zip(values) {
            key.sk_argument = value;
        }
        // The scan reads through the snapshot of the statement that runs
        // the load, and keeps none between loads.
        (*self.scan).xs_snapshot = snapshot;
        pg_sys::index_rescan(
            self.scan,
            self.keys.as_mut_ptr(),
            self.keys.len() as _,
            std::ptr::null_mut(),
            0,
        );
        let serializable = pg_sys::XactIsoLevel == pg_sys::XACT_SERIALIZABLE as i32;
        let mut row = Row {
            values: [pg_sys::Datum::from(0); pg_sys::INDEX_MAX_KEYS as usize],
            nulls: [true; pg_sys::INDEX_MAX_KEYS as usize],
        };
        loop {
            let tid =
                pg_sys::index_getnext_tid(self.scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tid.is_null() {
                break;
            }
            let block = pgrx::itemptr::item_pointer_get_block_number_no_check(*tid);
            let all_visible = !serializable
                && pg_sys::visibilitymap_get_status(self.table, block, &mut self.vm_buffer)
                    & pg_sys::VISIBILITYMAP_ALL_VISIBLE as u8
                    != 0;
            if !all_visible && !pg_sys::index_fetch_heap(self.scan, self.slot) {
                continue;
            }
            pg_sys::index_deform_tuple(
                (*self.scan).xs_itup,
                (*self.scan).xs_itupdesc,
                row.values.as_mut_ptr(),
                row.nulls.as_mut_ptr(),
            );
            visit(&row);
        }
        // The end of the scan dropped the pins of the index and of the
        // table's last page but the slot's and the visibility map's: no page
        // stays pinned between loads (a pin would hold up VACUUM's cleanup
        // of it, and make dropping it fail).
        pg_sys::ExecClearTuple(self.slot);
        if self.vm_buffer != pg_sys::InvalidBuffer as pg_sys::Buffer {
            pg_sys::ReleaseBuffer(self.vm_buffer);
            self.vm_buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
        }
        (*self.scan).xs_snapshot = std::ptr::null_mut();
    }

    /// Closes the scan (within `within`). The locks stay until the
    /// transaction ends, as a query's would.
    unsafe fn close(self) {
        pg_sys::ExecDropSingleTupleTableSlot(self.slot);
        pg_sys::index_endscan(self.scan);
        pg_sys::index_close(self.index, pg_sys::NoLock as _);
        pg_sys::table_close(self.table, pg_sys::NoLock as _);
    }
}

/// The scans loads read, each opened at the first load of a transaction
/// that reads by probes and needs it, and kept until the transaction ends:
/// the loads of a statement (or transaction) that meets many users for the
/// first time each cost a rescan of each, not a scan opened and closed.
struct Open {
    /// `GENERATION` when the first was opened.
    generation: u64,
    users: Option<Probe>,
    grants: Option<Probe>,
    overrides: Option<Probe>,
}

impl Open {
    /// Opens `probe` if needed (within `within`); `None` if the layout has
    /// changed since `self` was made (opening a table may take in
    /// invalidation messages).
    unsafe fn ready(
        probe: &mut Option<Probe>,
        generation: u64,
        open: impl FnOnce() -> Probe,
    ) -> Option<&mut Probe> {
        let probe = probe.get_or_insert_with(open);
        (GENERATION.get() == generation).then_some(probe)
    }

    unsafe fn users(&mut self, layout: &Layout, snapshot: pg_sys::Snapshot) -> Option<&mut Probe> {
        Open::ready(&mut self.users, self.generation, || {
            Probe::open(
                layout.users,
                layout.users_by_key,
                snapshot,
                &[(pg_sys::F_TEXTEQ, layout.key_collation)],
            )
        })
    }

    unsafe fn grants(&mut self, layout: &Layout, snapshot: pg_sys::Snapshot) -> Option<&mut Probe> {
        Open::ready(&mut self.grants, self.generation, || {
            Probe::open(layout.grants, layout.grants_by_user, snapshot, &BY_USER)
        })
    }

    unsafe fn overrides(
        &mut self,
        layout: &Layout,
        snapshot: pg_sys::Snapshot,
    ) -> Option<&mut Probe> {
        Open::ready(&mut self.overrides, self.generation, || {
            Probe::open(
                layout.overrides,
                layout.overrides_by_user,
                snapshot,
                &BY_USER,
            )
        })
    }

    unsafe fn close(self) {
        for probe in [self.users, self.grants, self.overrides]
            .into_iter()
            .flatten()
        {
            probe.close();
        }
    }
}

/// The keys of grants and overrides: (workspace_id, user_id).
const BY_USER: [(u32, pg_sys::Oid); 2] = [
    (pg_sys::F_INT4EQ, pg_sys::InvalidOid),
    (pg_sys::F_INT8EQ, pg_sys::InvalidOid),
];

thread_local! {
    /// The open scans, while no load runs. A load takes them out and puts
    /// them back when it is done: if it fails half-way, they are gone and
    /// their resource owner keeps what they held, released quietly when the
    /// error ends its subtransaction or transaction.
    static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
    /// The transaction's resource owner for the scans (a child of the
    /// transaction's, so that a rolled-back subtransaction leaves the scans
    /// of its parent alone and an aborted transaction releases them with
    /// its own); null when none.
    static OWNER: Cell<pg_sys::ResourceOwner> = const { Cell::new(std::ptr::null_mut()) };
    /// Counts the times the layout was forgotten: scans opened before are
    /// closed and opened again from the new layout.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with the scans' resource owner current (the scans' references
/// and pins must be taken and given back under the same owner), creating it
/// for this transaction if needed, and the transaction's memory context
/// (which the scans' memory must outlive statements in; what a load that
/// failed half-way left goes with the transaction).
unsafe fn within<R>(f: impl FnOnce() -> R) -> R {
    if OWNER.get().is_null() {
        OWNER.set(pg_sys::ResourceOwnerCreate(
            pg_sys::TopTransactionResourceOwner,
            c"fluent probes".as_ptr(),
        ));
    }
    /// Puts the caller's owner and context back, also when `f` fails.
    struct Restore(pg_sys::ResourceOwner, pg_sys::MemoryContext);
    impl Drop for Restore {
        fn drop(&mut self) {
            unsafe {
                pg_sys::CurrentResourceOwner = self.0;
                pg_sys::CurrentMemoryContext = self.1;
            }
        }
    }
    let _restore = Restore(pg_sys::CurrentResourceOwner, pg_sys::CurrentMemoryContext);
    pg_sys::CurrentResourceOwner = OWNER.get();
    pg_sys::CurrentMemoryContext = pg_sys::TopTransactionContext;
    f()
}

/// Releases the scans' resource owner: after the scans were closed, it
/// holds only their locks, which go to the transaction (`closed`);
/// otherwise what a load that failed half-way left, released quietly but
/// for the locks, which go to the transaction too.
unsafe fn release_owner(closed: bool) {
    let owner = OWNER.replace(std::ptr::null_mut());
    if owner.is_null() {
        return;
    }
    use pg_sys::ResourceReleasePhase::*;
    for phase in [
        RESOURCE_RELEASE_BEFORE_LOCKS,
        RESOURCE_RELEASE_LOCKS,
        RESOURCE_RELEASE_AFTER_LOCKS,
    ] {
        // The locks go to the transaction either way: those of the loads
        // that finished are held until it ends, as a query's would be.
        let keep = closed || phase == RESOURCE_RELEASE_LOCKS;
        pg_sys::ResourceOwnerRelease(owner, phase, keep, false);
    }
    pg_sys::ResourceOwnerDelete(owner);
}

/// Before the transaction commits or prepares, and when it has committed
/// (src/lib.rs): closes the scans.
pub fn transaction_ending() {
    unsafe {
        let open = OPEN.take();
        let closed = open.is_some();
        if let Some(open) = open {
            within(|| open.close());
        }
        release_owner(closed);
    }
}

/// When a subtransaction has aborted (src/lib.rs): a load it interrupted (a
/// timeout, a cancel) left what it held to the scans' resource owner, buffer
/// pins included; released now, not at the next load or statement (a pin
/// holds up VACUUM, and makes dropping the page fail).
pub fn subtransaction_aborted() {
    if OPEN.with_borrow(Option::is_none) {
        unsafe { release_owner(false) };
    }
}

/// When the transaction has aborted (src/lib.rs): the transaction's
/// resource owner releases the scans' with its own; forget them.
pub fn transaction_aborted() {
    // No `Drop` runs: `Open` holds only pointers.
    OPEN.take();
    OWNER.set(std::ptr::null_mut());
}

/// The open scans, if this transaction has any and the layout has not
/// changed since they were opened; else none yet.
unsafe fn take_open(generation: u64) -> Open {
    // (What a load that failed half-way left went when the error ended its
    // subtransaction or transaction.)
    if let Some(open) = OPEN.take() {
        if open.generation == generation {
            return open;
        }
        within(|| open.close());
    }
    Open {
        generation,
        users: None,
        grants: None,
        overrides: None,
    }
}

/// The label of an enum value.
fn label(value: pg_sys::Datum) -> String {
    let oid = value.value() as u32;
    if let Some(label) = LABELS.with_borrow(|l| l.get(&oid).cloned()) {
        return label;
    }
    let label = unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::ENUMOID as _, value);
        if tuple.is_null() {
            pgrx::error!("cache lookup failed for enum value {oid}");
        }
        let row = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_enum>(tuple);
        let label = CStr::from_ptr((*row).enumlabel.data.as_ptr())
            .to_string_lossy()
            .into_owned();
        pg_sys::ReleaseSysCache(tuple);
        label
    };
    LABELS.with_borrow_mut(|l| l.insert(oid, label.clone()));
    label
}

/// Whether a grant or override valid until `until` counts now (the
/// transaction's start, as `now()` in `fluent._in_force`).
fn in_force(until: Option<pg_sys::TimestampTz>, now: pg_sys::TimestampTz) -> bool {
    until.is_none_or(|until| until > now)
}

/// What `key` holds in the workspace (`None`: an unknown user), or
/// `Err(())` where it cannot be read here (no snapshot, or the catalog's
/// layout is not the one expected): the caller queries instead.
pub fn load_user(ws: &WorkspaceModel, key: &str) -> Result<Option<UserHoldings>, ()> {
    unsafe {
        // The kept-plan query reads through the statement's snapshot only
        // while the transaction has written nothing; once it has, through a
        // new one that sees its own writes (SPI's read-only rule): leave
        // those loads, and any without an MVCC snapshot, to it.
        if !pg_sys::ActiveSnapshotSet()
            || pg_sys::GetCurrentTransactionIdIfAny() != pg_sys::InvalidTransactionId
        {
            return Err(());
        }
        let snapshot = pg_sys::GetActiveSnapshot();
        if (*snapshot).snapshot_type != pg_sys::SnapshotType::SNAPSHOT_MVCC {
            return Err(());
        }
        let generation = GENERATION.get();
        let layout = layout().ok_or(())?;
        if layout.built_by != pg_sys::InvalidTransactionId
            && !pg_sys::TransactionIdPrecedes(layout.built_by, pg_sys::TransactionXmin)
        {
            return Err(());
        }
        let mut open = take_open(generation);
        let now = pg_sys::GetCurrentTransactionStartTimestamp();
        // In the caller's memory context, as the scans keep no key.
        let key_text = pg_sys::cstring_to_text_with_len(key.as_ptr().cast(), key.len() as _);
        let mut user: Option<(i64, Option<pg_sys::Datum>)> = None;
        let mut roles = Vec::new();
        // (action, scope, set by)
        let mut overrides: Vec<(pg_sys::Datum, pg_sys::Datum, String)> = Vec::new();
        let mut expires_at: Option<pg_sys::TimestampTz> = None;
        // Whether the layout held throughout.
        let held = within(|| {
            let Some(users_scan) = open.users(&layout, snapshot) else {
                return false;
            };
            users_scan.read(snapshot, &[pg_sys::Datum::from(key_text)], |row| {
                let id = row.get(layout.user_id).map_or(0, |d| d.value() as i64);
                user = Some((id, row.get(layout.status)));
            });
            let Some((user_id, _)) = user else {
                return true;
            };
            let by_user = [
                pg_sys::Datum::from(ws.workspace_id),
                pg_sys::Datum::from(user_id),
            ];
            let mut expires = |until: Option<pg_sys::TimestampTz>| {
                if let Some(until) = until {
                    expires_at = Some(expires_at.map_or(until, |e| e.min(until)));
                }
            };
            let Some(grants_scan) = open.grants(&layout, snapshot) else {
                return false;
            };
            grants_scan.read(snapshot, &by_user, |row| {
                let until = row.get(layout.grant_until).map(|d| d.value() as i64);
                if in_force(until, now) {
                    expires(until);
                    if let Some(role) = row.get(layout.grant_role) {
                        roles.push(role.value() as i32);
                    }
                }
            });
            let Some(overrides_scan) = open.overrides(&layout, snapshot) else {
                return false;
            };
            overrides_scan.read(snapshot, &by_user, |row| {
                let until = row.get(layout.override_until).map(|d| d.value() as i64);
                if !in_force(until, now) {
                    return;
                }
                expires(until);
                let action = row.get(layout.override_action);
                let scope = row.get(layout.override_scope);
                let set_by = row.get(layout.override_set_by).map(|d| {
                    CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>())
                        .to_string_lossy()
                        .into_owned()
                });
                if let (Some(action), Some(scope)) = (action, scope) {
                    overrides.push((action, scope, set_by.unwrap_or_default()));
                }
            });
            true
        });
        OPEN.set(Some(open));
        if !held {
            return Err(());
        }
        let Some((user_id, status)) = user else {
            return Ok(None);
        };
        roles.sort_unstable();
        let mut holdings = UserHoldings {
            user_id,
            status: status.map(label).unwrap_or_default(),
            roles,
            overrides: Vec::new(),
            override_set_by: Vec::new(),
            expires_at,
        };
        let mut overrides: Vec<(i32, Scope, String)> = overrides
            .into_iter()
            .filter_map(|(action, scope, set_by)| {
                let scope = label(scope).parse::<Scope>().ok()?;
                Some((action.value() as i32, scope, set_by))
            })
            .collect();
        overrides.sort_by_key(|o| o.0);
        for (action, scope, set_by) in overrides {
            if let Some(&slot) = ws.slot_of_action.get(&action) {
                holdings.overrides.push((slot, scope));
                holdings.override_set_by.push((slot, set_by));
            }
        }
        Ok(Some(holdings))
    }
}
