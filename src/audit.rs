//! The audit trail: a row trigger on every catalog table writes the change
//! to `fluent.audit_log` in the same transaction.
//!
//! The entry is written as the catalog owner, because nobody else may insert
//! into the log; the role recorded is the one that made the change. The
//! trigger refuses to run on any table outside schema `fluent`, so it cannot
//! be borrowed to forge entries.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::catalog;
use crate::error::FluentError;
use crate::gucs;

#[pg_schema]
mod fluent {
    use super::*;

    #[pg_trigger]
    fn audit_change<'a>(
        trigger: &'a pgrx::PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
        if trigger.table_schema()? != "fluent" {
            FluentError::NotCatalogTable { table: trigger.table_name()? }.report();
        }
        let operation = match trigger.op()? {
            PgTriggerOperation::Insert => "INSERT",
            PgTriggerOperation::Update => "UPDATE",
            PgTriggerOperation::Delete => "DELETE",
            PgTriggerOperation::Truncate => "TRUNCATE",
        };
        let relation = trigger.relation()?;
        let row_type = unsafe { (*relation.rd_rel).reltype };
        let db_role = unsafe {
            let me = pg_sys::GetUserId();
            std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(me, false)).to_string_lossy().into_owned()
        };
        let acting = gucs::with_acting(|user, _| user.map(str::to_owned));
        catalog::record_audit(
            &db_role,
            acting.as_deref(),
            relation.name(),
            operation,
            row_type,
            trigger.old().and_then(|row| row.into_composite_datum()),
            trigger.new().and_then(|row| row.into_composite_datum()),
        );
        Ok(None)
    }
}
