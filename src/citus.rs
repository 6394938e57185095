//! fluent on a Citus cluster (sql/citus.sql): what the catalog's broadcast
//! to the workers needs from Rust.
//!
//! Each node keeps its own catalog. On the coordinator, every write to it is
//! sent through `fluent.citus_bus`, a Citus reference table: Citus inserts
//! the row on every node's placement in the coordinator's transaction, with
//! two-phase commit, and a BEFORE trigger on each worker's placement applies
//! it to that node's catalog and keeps nothing.
//!
//! - Sending: Citus dials the workers as the current role, which the
//!   catalog owner (the sending trigger's) cannot be: it cannot log in.
//!   [`fluent::_citus_send_rows`] inserts the rows as `fluent_replicator`,
//!   a role that may log in on the workers and may insert into the bus and
//!   do nothing else (it owns nothing).
//! - Whether to send: whether the bus is a Citus table, read with the
//!   catalog snapshot (the newest), not the transaction's: a REPEATABLE READ
//!   transaction that began before `fluent_citus_setup()` must send too.
//! - Applying: while a worker applies the coordinator's rows, a flag lets
//!   the worker's refusal of catalog writes let them through, and the audit
//!   and attribution triggers keep the rows as the coordinator made them.
//!   Only the catalog owner may set it; a rolled-back subtransaction and the
//!   end of the transaction clear it.
//! - The acting user on the workers: Citus runs a statement's shard queries
//!   on connections of its own, where nobody acts. When the identity is
//!   chosen inside a transaction block on the coordinator,
//!   [`carry_identity`] issues `SET LOCAL fluent.remote_identity = <carrier>`
//!   with `citus.propagate_set_commands = 'local'`, which Citus sends to
//!   every worker connection of the transaction. The carrier names the user,
//!   the workspace and Citus's distributed transaction id, signed (HMAC)
//!   with a secret only the catalog owners of the cluster's nodes read. A
//!   worker acts for it ([`remote_identity`]) only inside that distributed
//!   transaction: a carrier copied, replayed on a reused connection, or set
//!   by hand on a worker is nobody.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pgrx::pg_sys;
use pgrx::spi::Spi;
use pgrx::JsonB;
use serde::{Deserialize, Serialize};

use crate::error::FluentError;
use crate::owner;

thread_local! {
    static APPLYING: Cell<bool> = const { Cell::new(false) };
    /// fluent itself is setting `fluent.remote_identity` (carry_identity).
    static CARRYING: Cell<bool> = const { Cell::new(false) };
    /// Citus's distributed transaction number when the current top-level
    /// statement began (0: none).
    static STATEMENT_TRANSACTION: Cell<u64> = const { Cell::new(0) };
    /// This transaction sent catalog changes to the workers (the coordinator).
    static SENT: Cell<bool> = const { Cell::new(false) };
    /// This transaction's verified carrier: its text and whom it names.
    static REMOTE: RefCell<Option<(String, Option<Remote>)>> = const { RefCell::new(None) };
}

/// The identity a verified carrier names.
#[derive(Clone)]
pub struct Remote {
    pub user: Rc<str>,
    pub workspace: Rc<str>,
}

/// What the carrier signs: the identity and Citus's distributed transaction.
#[derive(Serialize, Deserialize, PartialEq)]
struct Carrier {
    user: String,
    workspace: String,
    initiator: i32,
    transaction: i64,
    stamp: String,
}

/// Whether this backend is applying a change sent by the coordinator.
pub fn applying() -> bool {
    APPLYING.get()
}

/// At the end of every transaction (`top`) and of every rolled-back
/// subtransaction (src/lib.rs): an apply that failed half-way leaves no flag
/// behind.
pub fn transaction_ended(top: bool) {
    APPLYING.set(false);
    REMOTE.set(None);
    STATEMENT_TRANSACTION.set(0);
    if top {
        SENT.set(false);
    }
}

/// A query is planned (src/plans.rs) on the coordinator. After this
/// transaction sent catalog changes to the workers, it may not read a Citus
/// table that fluent protects: the workers apply the changes on the
/// replicator's connections, so the shard queries of this transaction would
/// see the catalog as it was committed, not as the coordinator sees it.
pub unsafe fn refuse_reading_own_changes(query: *mut pg_sys::Query) {
    unsafe extern "C-unwind" fn protected_citus_table(
        node: *mut pg_sys::Node,
        _context: *mut std::ffi::c_void,
    ) -> bool {
        if node.is_null() {
            return false;
        }
        if (*node).type_ == pg_sys::NodeTag::T_RangeTblEntry {
            let rte = node.cast::<pg_sys::RangeTblEntry>();
            if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && is_protected_citus_table((*rte).relid)
            {
                return true;
            }
            return false;
        }
        if (*node).type_ == pg_sys::NodeTag::T_Query {
            return pg_sys::query_tree_walker(
                node.cast(),
                Some(protected_citus_table),
                std::ptr::null_mut(),
                pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
            );
        }
        pg_sys::expression_tree_walker(node, Some(protected_citus_table), std::ptr::null_mut())
    }
    if SENT.get() && protected_citus_table(query.cast(), std::ptr::null_mut()) {
        FluentError::CitusReadAfterChange.report();
    }
}

/// Whether `relid` is a Citus table (distributed, reference or Citus
/// local): its rows are in its placements, not in the table itself.
pub fn is_citus_table(relid: pg_sys::Oid) -> bool {
    citus_active()
        && unsafe {
            let is_citus_table: unsafe extern "C-unwind" fn(pg_sys::Oid) -> bool =
                std::mem::transmute(citus_function(c"IsCitusTable"));
            is_citus_table(relid)
        }
}

/// The Citus table `relid` is a shard of, on a node holding its placements
/// (an assignment table's trigger runs on the shard, and the audit trail
/// names the table), or None.
pub fn table_of_shard(relid: pg_sys::Oid) -> Option<pg_sys::Oid> {
    if !citus_active() {
        return None;
    }
    unsafe {
        // Citus's own test: the name is a shard's, and its shard is known.
        let is_shard: unsafe extern "C-unwind" fn(pg_sys::Oid) -> bool =
            std::mem::transmute(citus_function(c"RelationIsAKnownShard"));
        if !is_shard(relid) {
            return None;
        }
        let shard_id: unsafe extern "C-unwind" fn(*const std::ffi::c_char, bool) -> u64 =
            std::mem::transmute(citus_function(c"ExtractShardIdFromTableName"));
        let table_of: unsafe extern "C-unwind" fn(i64, bool) -> pg_sys::Oid =
            std::mem::transmute(citus_function(c"LookupShardRelationFromCatalog"));
        let name = pg_sys::get_rel_name(relid);
        if name.is_null() {
            return None;
        }
        let table = table_of(shard_id(name, true) as i64, true);
        (table != pg_sys::InvalidOid).then_some(table)
    }
}

/// Whether `relid` is a Citus table with row security (fluent's policies,
/// or any: a table that has none reads the same everywhere).
unsafe fn is_protected_citus_table(relid: pg_sys::Oid) -> bool {
    if !is_citus_table(relid) {
        return false;
    }
    let tuple = pg_sys::SearchSysCache1(
        pg_sys::SysCacheIdentifier::RELOID as _,
        pg_sys::Datum::from(relid),
    );
    if tuple.is_null() {
        return false;
    }
    let secured =
        (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relrowsecurity;
    pg_sys::ReleaseSysCache(tuple);
    secured
}

/// A top-level statement begins (src/cache.rs): notes the distributed
/// transaction it runs in. A carrier counts only for the transaction a
/// statement began in: one that a function claims mid-statement
/// (`assign_distributed_transaction_id`, public on the workers) is nobody's.
pub fn statement_started() {
    if !citus_loaded() {
        return;
    }
    let number = unsafe {
        let current: unsafe extern "C-unwind" fn() -> u64 =
            std::mem::transmute(citus_function(c"CurrentDistributedTransactionNumber"));
        current()
    };
    STATEMENT_TRANSACTION.set(number);
}

/// Before a utility statement runs (src/lib.rs's utility hook, ahead of
/// Citus's): whether it may run at all. Refuses, on the coordinator, a `SET
/// LOCAL` (or `RESET`, `SET TRANSACTION`) that Citus will propagate when it
/// shares its query string with other statements. Citus sends the whole
/// string to the workers' connections of the transaction, and keeps it for
/// each connection opened later (the replicator's too): the other
/// statements would run on the workers as the application role, or as the
/// replicator. Checked as the statement runs, with the propagation setting
/// as it is then (a SQL function's statements are all parsed before the
/// first one runs). Skips every `SET` in the replicator's sessions.
pub unsafe fn before_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
) -> bool {
    let statement = (*pstmt).utilityStmt;
    if !statement.is_null() && (*statement).type_ == pg_sys::NodeTag::T_VariableSetStmt {
        if replicator_session() {
            // The SETs Citus replays on the replicator's connection were
            // the application's: none applies to the bus's insert. (Its
            // search_path is pinned: a domain named like the insert's types
            // would run its owner's check as the replicator.)
            return false;
        }
        refuse_unsafe_propagation(pstmt, query_string);
    }
    if !statement.is_null() && (*statement).type_ == pg_sys::NodeTag::T_CopyStmt {
        refuse_copying_after_own_changes(statement.cast());
    }
    true
}

/// The checks of a `SET` (`before_utility`).
unsafe fn refuse_unsafe_propagation(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
) {
    let set = (*pstmt).utilityStmt.cast::<pg_sys::VariableSetStmt>();
    let propagated = (*set).is_local
        || matches!(
            (*set).kind,
            pg_sys::VariableSetKind::VAR_RESET
                | pg_sys::VariableSetKind::VAR_RESET_ALL
                | pg_sys::VariableSetKind::VAR_SET_MULTI
        );
    let propagating = || {
        let setting =
            pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false);
        !setting.is_null() && std::ffi::CStr::from_ptr(setting).to_bytes() == b"local"
    };
    if !propagated
        || query_string.is_null()
        || !propagating()
        || !citus_active()
        || !citus_is_coordinator()
    {
        return;
    }
    // Nor may it set search_path: Citus replays it on every connection of
    // the transaction, the replicator's too, whose insert into the bus
    // names types (`'...'::jsonb`) that a domain of the same name earlier in
    // the path would capture, running its owner's check as the replicator.
    // Only `pg_catalog, pg_temp` (what fluent_citus_setup() pins), which
    // nothing can capture, goes through.
    if (*set).is_local
        && !(*set).name.is_null()
        && std::ffi::CStr::from_ptr((*set).name)
            .to_bytes()
            .eq_ignore_ascii_case(b"search_path")
        && string_arguments(set) != [b"pg_catalog".as_slice(), b"pg_temp"]
    {
        FluentError::CitusSetSearchPath.report();
    }
    let text = std::ffi::CStr::from_ptr(query_string).to_bytes();
    let start = ((*pstmt).stmt_location.max(0) as usize).min(text.len());
    let end = match (*pstmt).stmt_len {
        0 => text.len(),
        len => (start + len as usize).min(text.len()),
    };
    let alone = |part: &[u8]| part.iter().all(|b| b.is_ascii_whitespace() || *b == b';');
    if !alone(&text[..start]) || !alone(&text[end..]) {
        FluentError::CitusSetBesideStatements.report();
    }
}

/// The values of a `SET` given as strings (identifiers or literals); an
/// empty list when any is of another kind.
unsafe fn string_arguments<'a>(set: *const pg_sys::VariableSetStmt) -> Vec<&'a [u8]> {
    let args = (*set).args;
    let count = if args.is_null() {
        0
    } else {
        (*args).length as usize
    };
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        let node = (*(*args).elements.add(i))
            .ptr_value
            .cast::<pg_sys::A_Const>();
        if node.is_null()
            || (*node).type_ != pg_sys::NodeTag::T_A_Const
            || (*node).isnull
            || (*node).val.sval.type_ != pg_sys::NodeTag::T_String
        {
            return Vec::new();
        }
        values.push(std::ffi::CStr::from_ptr((*node).val.sval.sval).to_bytes());
    }
    values
}

/// Whether this session logged in as `fluent_replicator` (by OID), on a
/// Citus node.
fn replicator_session() -> bool {
    citus_loaded()
        && unsafe {
            let replicator = pg_sys::get_role_oid(c"fluent_replicator".as_ptr(), true);
            replicator != pg_sys::InvalidOid && pg_sys::GetSessionUserId() == replicator
        }
}

/// `COPY` of a table reads or writes it without a plan: after this
/// transaction sent catalog changes, a protected Citus table is refused
/// here as the planner refuses it (`refuse_reading_own_changes`). (`COPY
/// (query)` is planned.)
unsafe fn refuse_copying_after_own_changes(copy: *mut pg_sys::CopyStmt) {
    if !SENT.get() || (*copy).relation.is_null() {
        return;
    }
    let relid = pg_sys::RangeVarGetRelidExtended(
        (*copy).relation,
        pg_sys::NoLock as pg_sys::LOCKMODE,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    );
    if relid != pg_sys::InvalidOid && is_protected_citus_table(relid) {
        FluentError::CitusReadAfterChange.report();
    }
}

/// A node holding placements: its name, port, and whether it is this one.
pub type Node = (String, i32, bool);

/// The shards each node holds of `relations`, from this node's metadata
/// (`fluent._citus_shards_by_node`): per node, each shard's schema-qualified
/// name and its relation. A node's own tables, which its owner could rename,
/// are not consulted.
pub fn shards_by_node(
    relations: &[pg_sys::Oid],
) -> std::collections::BTreeMap<Node, Vec<(String, pg_sys::Oid)>> {
    let mut nodes: std::collections::BTreeMap<Node, Vec<(String, pg_sys::Oid)>> =
        Default::default();
    owner::as_catalog_owner(|client| {
        for row in owner::select(
            client,
            "SELECT node_name, node_port, here, shard, relation::pg_catalog.oid
               FROM fluent._citus_shards_by_node($1::pg_catalog.regclass[])",
            &[relations.to_vec().into()],
        ) {
            let node = (
                owner::column::<String>(&row, 1).unwrap_or_default(),
                owner::column::<i32>(&row, 2).unwrap_or_default(),
                owner::column::<bool>(&row, 3).unwrap_or_default(),
            );
            let shard: String = owner::column(&row, 4).unwrap_or_default();
            let relation: pg_sys::Oid = owner::column(&row, 5).unwrap_or(pg_sys::InvalidOid);
            nodes.entry(node).or_default().push((shard, relation));
        }
    });
    nodes
}

/// Runs each command on its node (name, port, command) through Citus's
/// `master_run_on_worker`, in parallel, each on a new connection as the
/// current role outside this transaction, and returns each node's success
/// and result (its one value, or its error). Called directly: the SQL
/// function is taken back from PUBLIC (`fluent_citus_setup()`), for it would
/// run any SQL; this runs only fluent's. The node's session has the search
/// path of the database's defaults there: a command names everything with
/// its schema.
pub fn run_on_nodes(nodes: &[(String, i32, String)]) -> Vec<(String, i32, bool, String)> {
    use pgrx::{FromDatum, IntoDatum};
    let names: Vec<String> = nodes.iter().map(|(name, _, _)| name.clone()).collect();
    let ports: Vec<i32> = nodes.iter().map(|(_, port, _)| *port).collect();
    let commands: Vec<String> = nodes
        .iter()
        .map(|(_, _, command)| command.clone())
        .collect();
    let args = [
        names.into_datum(),
        ports.into_datum(),
        commands.into_datum(),
        true.into_datum(),
    ];
    let mut answers = Vec::new();
    unsafe {
        let function: unsafe extern "C-unwind" fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum =
            std::mem::transmute(citus_function(c"master_run_on_worker"));
        let desc = pg_sys::CreateTemplateTupleDesc(4);
        for (at, typ) in [
            pg_sys::TEXTOID,
            pg_sys::INT4OID,
            pg_sys::BOOLOID,
            pg_sys::TEXTOID,
        ]
        .into_iter()
        .enumerate()
        {
            pg_sys::TupleDescInitEntry(desc, at as i16 + 1, std::ptr::null(), typ, -1, 0);
        }
        let econtext = pg_sys::CreateStandaloneExprContext();
        let mut rsinfo = pg_sys::ReturnSetInfo {
            type_: pg_sys::NodeTag::T_ReturnSetInfo,
            econtext,
            expectedDesc: desc,
            allowedModes: pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32,
            ..Default::default()
        };
        let mut flinfo = pg_sys::FmgrInfo {
            fn_nargs: 4,
            fn_retset: true,
            fn_mcxt: pg_sys::CurrentMemoryContext,
            ..Default::default()
        };
        let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
            + args.len() * std::mem::size_of::<pg_sys::NullableDatum>();
        let fcinfo = pg_sys::palloc0(size) as pg_sys::FunctionCallInfo;
        (*fcinfo).flinfo = &mut flinfo;
        (*fcinfo).resultinfo = (&mut rsinfo as *mut pg_sys::ReturnSetInfo).cast();
        (*fcinfo).nargs = args.len() as i16;
        let slots = (*fcinfo).args.as_mut_slice(args.len());
        for (slot, arg) in slots.iter_mut().zip(args) {
            *slot = pg_sys::NullableDatum {
                value: arg.unwrap_or_else(|| pg_sys::Datum::from(0)),
                isnull: false,
            };
        }
        // Citus would log the command to the caller: a request it carries
        // is for the nodes only.
        owner::with_setting(c"citus.log_remote_commands", c"off", || function(fcinfo));
        if !rsinfo.setResult.is_null() {
            let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
            while pg_sys::tuplestore_gettupleslot(rsinfo.setResult, true, false, slot) {
                let value = |at: i32| {
                    let mut null = false;
                    let datum = pg_sys::slot_getattr(slot, at, &mut null);
                    (datum, null)
                };
                let text = |at: i32| match value(at) {
                    (_, true) => String::new(),
                    (datum, false) => String::from_datum(datum, false).unwrap_or_default(),
                };
                answers.push((
                    text(1),
                    value(2).0.value() as i32,
                    value(3).0.value() != 0,
                    text(4),
                ));
            }
            pg_sys::ExecDropSingleTupleTableSlot(slot);
            pg_sys::tuplestore_end(rsinfo.setResult);
        }
        pg_sys::FreeExprContext(econtext, true);
    }
    answers
}

/// The address of C function `name` of Citus's library (loaded: see
/// `citus_loaded`), looked up once per backend: `load_external_function`
/// checks the library's file at every call, and one runs per statement.
/// Missing, it raises an error.
unsafe fn citus_function(name: &'static std::ffi::CStr) -> *const std::ffi::c_void {
    thread_local! {
        static FOUND: RefCell<Vec<(&'static std::ffi::CStr, usize)>> = const { RefCell::new(Vec::new()) };
    }
    if let Some(address) =
        FOUND.with_borrow(|f| f.iter().find(|(n, _)| *n == name).map(|(_, a)| *a))
    {
        return address as *const std::ffi::c_void;
    }
    let function = pg_sys::load_external_function(
        c"citus".as_ptr(),
        name.as_ptr(),
        true,
        std::ptr::null_mut(),
    ) as usize;
    FOUND.with_borrow_mut(|f| f.push((name, function)));
    function as *const std::ffi::c_void
}

/// Whether Citus is loaded in this backend: its `citus.version` setting is
/// defined, and not as a placeholder, which any role may make with `SET`.
/// Citus loads only from `shared_preload_libraries`, before any backend
/// starts, so the answer holds for the backend's life and is looked up once
/// (it is asked at every statement).
fn citus_loaded() -> bool {
    thread_local! {
        static LOADED: Cell<Option<bool>> = const { Cell::new(None) };
    }
    if let Some(loaded) = LOADED.get() {
        return loaded;
    }
    let loaded = unsafe {
        let name = c"citus.version".as_ptr();
        !pg_sys::GetConfigOption(name, true, false).is_null()
            && pg_sys::GetConfigOptionFlags(name, true) & pg_sys::GUC_CUSTOM_PLACEHOLDER as i32 == 0
    };
    LOADED.set(Some(loaded));
    loaded
}

/// Whether Citus is loaded and its extension is in this database (Citus's
/// own cached answer): a server that preloads Citus also has databases
/// without it, where its metadata functions fail.
pub fn citus_active() -> bool {
    citus_loaded()
        && unsafe {
            let has_been_loaded: unsafe extern "C-unwind" fn() -> bool =
                std::mem::transmute(citus_function(c"CitusHasBeenLoaded"));
            has_been_loaded()
        }
}

/// This node's part: "coordinator", "worker" or "none" (sql/citus.sql),
/// asked as the catalog owner (the acting role may not execute fluent's
/// internals).
fn node() -> String {
    owner::as_catalog_owner(|client| {
        client
            .select("SELECT fluent._citus_node()", None, &[])
            .ok()?
            .first()
            .get::<String>(1)
            .ok()
            .flatten()
    })
    .unwrap_or_default()
}

/// Whether this node is a Citus worker.
pub fn on_worker() -> bool {
    citus_loaded() && node() == "worker"
}

/// Whether this node is the coordinator, by Citus's own cached metadata
/// (no SQL: usable in a setting's check hook).
fn citus_is_coordinator() -> bool {
    unsafe {
        let is_coordinator: unsafe extern "C-unwind" fn() -> bool =
            std::mem::transmute(citus_function(c"IsCoordinator"));
        is_coordinator()
    }
}

/// Whether `fluent.remote_identity` may take a value from `source`. Empty
/// (nobody) always. Otherwise only where Citus is loaded, inside a
/// transaction, from a `SET` (not from a role's or database's defaults), and
/// on the coordinator only when fluent itself sets it (`carry_identity`): an
/// application role on the coordinator cannot hand the workers a carrier it
/// copied.
pub fn may_set_remote_identity(value: &str, source: pg_sys::GucSource::Type) -> bool {
    if value.is_empty() || source == pg_sys::GucSource::PGC_S_DEFAULT {
        return true;
    }
    if !citus_loaded() {
        return true;
    }
    if source != pg_sys::GucSource::PGC_S_SESSION || !unsafe { pg_sys::IsTransactionState() } {
        return false;
    }
    // (In a database without the citus extension nothing reads it.)
    CARRYING.get() || !citus_active() || !citus_is_coordinator()
}

/// Citus's distributed transaction id of this backend: (initiator node,
/// transaction number, timestamp); number 0 when there is none.
fn distributed_transaction() -> (i32, i64, String) {
    Spi::get_three::<i32, i64, String>(
        // The stamp as microseconds since the epoch: its text would follow
        // the session's TimeZone and DateStyle, which the workers' do not.
        // (Qualified throughout: the session's search path may be a
        // database owner's.)
        "SELECT initiator_node_identifier, transaction_number,
                (extract(epoch FROM transaction_stamp) OPERATOR(pg_catalog.*) 1000000)::bigint::pg_catalog.text
           FROM pg_catalog.get_current_transaction_id()",
    )
    .map(|(i, n, s)| (i.unwrap_or(0), n.unwrap_or(0), s.unwrap_or_default()))
    .unwrap_or_else(|e| pgrx::error!("{e}"))
}

/// The cluster's secret (`fluent.citus_secret`), read as the catalog owner.
pub fn secret() -> Option<String> {
    owner::as_catalog_owner(|client| {
        client
            .select("SELECT secret FROM fluent.citus_secret", None, &[])
            .ok()?
            .first()
            .get::<String>(1)
            .ok()
            .flatten()
    })
}

/// On the coordinator, inside a transaction block, once fluent is set up for
/// Citus: sends `user` and `workspace` to every worker connection of this
/// transaction (see the module comment); nobody (`None`) empties it there.
/// Elsewhere it does nothing.
pub fn carry_identity(user: Option<&str>, workspace: &str) {
    if !citus_loaded() || !unsafe { pg_sys::IsTransactionBlock() } {
        return;
    }
    if node() != "coordinator" || !bus_distributed() {
        return;
    }
    let token = match user {
        None => String::new(),
        Some(user) => match secret() {
            None => return,
            Some(secret) => sign(user, workspace, &secret),
        },
    };
    // A token is base64url and dots: nothing to quote.
    CARRYING.set(true);
    let set =
        Spi::run("SELECT pg_catalog.set_config('citus.propagate_set_commands', 'local', true)")
            .and_then(|_| Spi::run(&format!("SET LOCAL fluent.remote_identity = '{token}'")));
    CARRYING.set(false);
    set.unwrap_or_else(|e| pgrx::error!("{e}"));
}

/// The carrier of `user` and `workspace` for this transaction.
fn sign(user: &str, workspace: &str, secret: &str) -> String {
    unsafe {
        // Citus gives the transaction its distributed id when it first
        // needs one; the carrier names it, so it is needed now.
        let start: unsafe extern "C-unwind" fn() =
            std::mem::transmute(citus_function(c"UseCoordinatedTransaction"));
        start();
    }
    let (initiator, transaction, stamp) = distributed_transaction();
    let carrier = Carrier {
        user: user.to_owned(),
        workspace: workspace.to_owned(),
        initiator,
        transaction,
        stamp,
    };
    signed(&carrier, secret)
}

/// `claims` signed with the cluster's secret (HS256), for another node to
/// verify (`verified`).
pub fn signed<T: Serialize>(claims: &T, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_else(|e| pgrx::error!("fluent could not sign for the Citus nodes: {e}"))
}

/// The claims of `signed` if this cluster's secret signed them; with
/// `leeway` (seconds), only until their `exp`.
pub fn verified<T: serde::de::DeserializeOwned>(signed: &str, leeway: Option<u64>) -> Option<T> {
    let secret = secret()?;
    let mut validation = Validation::new(Algorithm::HS256);
    match leeway {
        Some(leeway) => {
            validation.set_required_spec_claims(&["exp"]);
            validation.leeway = leeway;
        }
        None => {
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
        }
    }
    jsonwebtoken::decode::<T>(
        signed,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .ok()
    .map(|data| data.claims)
}

/// On a Citus worker, the identity `carrier` (the value of
/// `fluent.remote_identity`) names, if it verifies and belongs to this
/// backend's distributed transaction; verified once per transaction.
pub fn remote_identity(carrier: &str) -> Option<Remote> {
    if let Some(known) = REMOTE.with_borrow(|r| {
        r.as_ref()
            .filter(|(text, _)| text == carrier)
            .map(|(_, remote)| remote.clone())
    }) {
        return known;
    }
    let remote = verify(carrier);
    REMOTE.set(Some((carrier.to_owned(), remote.clone())));
    remote
}

fn verify(carrier: &str) -> Option<Remote> {
    if !citus_loaded() || !unsafe { pg_sys::IsTransactionState() } || node() != "worker" {
        return None;
    }
    let claims: Carrier = verified(carrier, None)?;
    let (initiator, transaction, stamp) = distributed_transaction();
    if transaction == 0
        || transaction as u64 != STATEMENT_TRANSACTION.get()
        || (claims.initiator, claims.transaction, claims.stamp.as_str())
            != (initiator, transaction, stamp.as_str())
        || claims.user.is_empty()
    {
        return None;
    }
    Some(Remote {
        user: claims.user.into(),
        workspace: claims.workspace.into(),
    })
}

fn require_catalog_owner() {
    if !owner::is_catalog_owner(unsafe { pg_sys::GetUserId() }) {
        FluentError::NotAdmin.report();
    }
}

/// Whether `fluent.citus_bus` is a Citus table (`pg_dist_partition` has its
/// row), by the newest committed catalog.
fn bus_distributed() -> bool {
    let Some(bus) = owner::catalog_relid(c"citus_bus") else {
        return false;
    };
    unsafe {
        let catalog = pg_sys::get_namespace_oid(c"pg_catalog".as_ptr(), false);
        let partitions = pg_sys::get_relname_relid(c"pg_dist_partition".as_ptr(), catalog);
        if partitions == pg_sys::InvalidOid {
            return false;
        }
        let rel = pg_sys::table_open(partitions, pg_sys::AccessShareLock as _);
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        // logicalrelid, the first column.
        pg_sys::ScanKeyInit(
            &mut key,
            1,
            pg_sys::BTEqualStrategyNumber as _,
            pg_sys::F_OIDEQ.into(),
            pg_sys::Datum::from(bus),
        );
        // No snapshot: the catalog snapshot, the newest.
        let scan = pg_sys::systable_beginscan(
            rel,
            pg_sys::InvalidOid,
            false,
            std::ptr::null_mut(),
            1,
            &mut key,
        );
        let found = !pg_sys::systable_getnext(scan).is_null();
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
        found
    }
}

#[pgrx::pg_schema]
mod fluent {
    use super::*;

    /// Marks the start (`true`) or end of a broadcast change's apply. Only
    /// the catalog owner may call it (the apply trigger runs as that role).
    #[pgrx::pg_extern(volatile, parallel_unsafe)]
    fn _citus_set_applying(on: bool) {
        require_catalog_owner();
        APPLYING.set(on);
    }

    /// Whether this backend is applying a change sent by the coordinator.
    #[pgrx::pg_extern(stable, parallel_safe)]
    fn _citus_applying() -> bool {
        applying()
    }

    /// The name of the table `rel` is, or on a Citus node is a shard of:
    /// what the item roles' triggers, which run on the shards, name in their
    /// errors.
    #[pgrx::pg_extern(stable, parallel_safe)]
    fn _table_name_of(rel: pg_sys::Oid) -> Option<String> {
        let table = table_of_shard(rel).unwrap_or(rel);
        let name = unsafe { pg_sys::get_rel_name(table) };
        (!name.is_null()).then(|| unsafe {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        })
    }

    /// Whether `parent` is a Citus table co-located with the table whose
    /// shard `shard` is: a child table's trigger, on a shard, finds its
    /// parent by name, which a table owner on the node could give to a
    /// look-alike of their own (only Citus makes Citus tables).
    #[pgrx::pg_extern(stable, parallel_safe)]
    fn _citus_colocated(parent: pg_sys::Oid, shard: pg_sys::Oid) -> bool {
        let Some(child) = table_of_shard(shard) else {
            return false;
        };
        is_citus_table(parent)
            && unsafe {
                let colocation: unsafe extern "C-unwind" fn(pg_sys::Oid) -> u32 =
                    std::mem::transmute(citus_function(c"TableColocationId"));
                colocation(parent) == colocation(child)
            }
    }

    /// Whether the bus is a Citus table: `fluent_citus_setup()` ran.
    #[pgrx::pg_extern(volatile, parallel_safe)]
    fn _citus_bus_active() -> bool {
        bus_distributed()
    }

    /// Sends one statement's rows to the workers: inserts them into the
    /// bus as `fluent_replicator`. Only the catalog owner may call it.
    #[pgrx::pg_extern(volatile, parallel_unsafe)]
    fn _citus_send_rows(tbl: &str, op: &str, old_rows: Option<JsonB>, new_rows: Option<JsonB>) {
        require_catalog_owner();
        SENT.set(true);
        let replicator = unsafe { pg_sys::get_role_oid(c"fluent_replicator".as_ptr(), false) };
        // Citus writes the rows into the workers' statement as string
        // literals for this session's standard_conforming_strings, and the
        // replicator's sessions read them with it on (fluent_citus_setup).
        owner::with_setting(c"standard_conforming_strings", c"on", || {
            owner::as_role(replicator, |client| {
                client.update(
                    "INSERT INTO fluent.citus_bus (tbl, op, old_rows, new_rows) VALUES ($1, $2::pg_catalog.\"char\", $3, $4)",
                    None,
                    &[tbl.into(), op.into(), old_rows.into(), new_rows.into()],
                )
                .map(|_| ())
            })
        })
        .unwrap_or_else(|e| pgrx::error!("{e}"));
    }
}
