//! The audit trail: a row trigger on every catalog table writes the change
//! to `fluent.audit_log` in the same transaction.
//!
//! The entry is written as the catalog owner, because nobody else may insert
//! into the log; the role recorded is the one that made the change. The
//! trigger refuses to run on any table outside schema `fluent`, so it cannot
//! be borrowed to forge entries. A restore is not a change: rows a superuser
//! loads with `COPY ... FROM` into the catalog (what `pg_restore` and `psql
//! -f dump.sql` do) come with their own history, which the dumped audit log
//! already holds.

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::trigger_support::PgTrigger;

use crate::citus;
use crate::error::FluentError;
use crate::gucs;
use crate::identity;
use crate::owner::{as_catalog_owner, in_catalog_schema, update};
use crate::trigger::after_trigger;

/// Whether the running statement is a superuser's `COPY ... FROM` into one of
/// fluent's catalog tables: a restore (or a bulk load, which a superuser could
/// equally make with triggers disabled). Catalog rows loaded this way keep
/// their ids and attribution and are not audited again.
///
/// The statement itself is read, not only its tag, and its issuer: the
/// administration functions run as their owner, a superuser, so tag and
/// current role alone would let anyone allowed to call them do it unaudited
/// from inside a COPY: `COPY (SELECT fluent_grant_role(...)) TO STDOUT`, or
/// the WHERE clause of a `COPY ... FROM` (run for each input row). So the
/// role that issued the statement (the outer user, which SECURITY DEFINER
/// does not change) must be a superuser, as the current one, and the COPY
/// must have no WHERE clause.
///
/// Rows a Citus worker applies from the coordinator's broadcast
/// (src/citus.rs) are copies too: the coordinator audited and attributed them.
pub fn restoring() -> bool {
    if citus::applying() {
        return true;
    }
    let issuer_is_superuser = unsafe { pg_sys::superuser_arg(pg_sys::GetOuterUserId()) };
    if !issuer_is_superuser || !identity::current_role_is_superuser() {
        return false;
    }
    unsafe {
        let portal = pg_sys::ActivePortal;
        if portal.is_null() || (*portal).commandTag != pg_sys::CommandTag::CMDTAG_COPY {
            return false;
        }
        let stmts = (*portal).stmts;
        if stmts.is_null() || (*stmts).length != 1 {
            return false;
        }
        let planned = (*(*stmts).elements).ptr_value as *mut pg_sys::Node;
        if !pgrx::is_a(planned, pg_sys::NodeTag::T_PlannedStmt) {
            return false;
        }
        let copy = (*(planned as *mut pg_sys::PlannedStmt)).utilityStmt;
        if !pgrx::is_a(copy, pg_sys::NodeTag::T_CopyStmt) {
            return false;
        }
        let copy = copy as *mut pg_sys::CopyStmt;
        if !(*copy).is_from || (*copy).relation.is_null() || !(*copy).whereClause.is_null() {
            return false;
        }
        let target = pg_sys::RangeVarGetRelidExtended(
            (*copy).relation,
            pg_sys::NoLock as _,
            pg_sys::RVROption::RVR_MISSING_OK as _,
            None,
            std::ptr::null_mut(),
        );
        target != pg_sys::InvalidOid && in_catalog_schema(target)
    }
}

#[pg_schema]
mod fluent {
    /// restoring() for SQL: the attribution trigger (sql/triggers.sql) keeps
    /// restored rows as they are.
    #[pgrx::pg_extern(stable, parallel_safe)]
    fn _restoring() -> bool {
        super::restoring()
    }
}

fn audit_change(trigger: &PgTrigger<'_>) {
    let table = trigger.table_name().unwrap_or_else(|e| pgrx::error!("{e}"));
    if trigger.table_schema().ok().as_deref() != Some("fluent") {
        FluentError::NotCatalogTable { table }.report();
    }
    if restoring() {
        return;
    }
    let operation = match trigger.op().unwrap_or_else(|e| pgrx::error!("{e}")) {
        PgTriggerOperation::Insert => "INSERT",
        PgTriggerOperation::Update => "UPDATE",
        PgTriggerOperation::Delete => "DELETE",
        PgTriggerOperation::Truncate => "TRUNCATE",
    };
    let relation = trigger.relation().unwrap_or_else(|e| pgrx::error!("{e}"));
    let row_type = unsafe { (*relation.rd_rel).reltype };
    // The role that called the administration function making the change,
    // or the role writing the catalog directly (src/delegation.rs).
    let db_role = gucs::caller_role()
        .map(str::to_owned)
        .unwrap_or_else(|| identity::role_name(unsafe { pg_sys::GetUserId() }));
    let acting = gucs::with_acting(|user, _| user.map(str::to_owned));
    record_audit(
        &db_role,
        acting.as_deref(),
        &table,
        operation,
        row_type,
        trigger.old().and_then(|row| row.into_composite_datum()),
        trigger.new().and_then(|row| row.into_composite_datum()),
    );
}

/// Appends an entry to `fluent.audit_log`. `before` and `after` are rows of
/// the changed table (its composite type is `row_type`).
fn record_audit(
    db_role: &str,
    acting_user: Option<&str>,
    table: &str,
    operation: &str,
    row_type: pg_sys::Oid,
    before: Option<pg_sys::Datum>,
    after: Option<pg_sys::Datum>,
) {
    let row = |datum: Option<pg_sys::Datum>| unsafe { DatumWithOid::new(datum, row_type) };
    as_catalog_owner(|client| {
        update(
            client,
            "SELECT fluent._audit_insert($1, $2, $3, $4, pg_catalog.to_jsonb($5), pg_catalog.to_jsonb($6))",
            &[db_role.into(), acting_user.into(), table.into(), operation.into(), row(before), row(after)],
        )
    })
}

after_trigger!(
    fluent_audit_change,
    pg_finfo_fluent_audit_change,
    "fluent.audit_change",
    audit_change
);
// Its CREATE FUNCTION is in sql/triggers.sql.
