//! What a DDL command did, for the event trigger that gives partitions and
//! inheritance children created or attached later their protection
//! (`fluent._protect_new_children`, sql/rls.sql).
//!
//! An `ALTER TABLE` that attaches nothing must leave the children alone: in
//! a restore, the dump's `ALTER TABLE ONLY parent ADD CONSTRAINT ... PRIMARY
//! KEY` comes after the catalog's rows and before the children's dumped
//! policies and triggers, which the event trigger would otherwise create
//! first, so that the dump's own `CREATE POLICY` then failed.

use pgrx::pg_sys;

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_fluent_attaches() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `fluent._attaches(command pg_ddl_command) → boolean` (created in
/// sql/rls.sql, in this version's library): whether a command collected for
/// an event trigger creates a table (`CREATE TABLE`, with `PARTITION OF` or
/// `INHERITS`) or attaches one (`ATTACH PARTITION`, `INHERIT`).
///
/// # Safety
/// Called by PostgreSQL with a `pg_ddl_command`, which only
/// `pg_event_trigger_ddl_commands()` makes (the type has no input function).
#[no_mangle]
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn fluent_attaches(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let command = (*(*fcinfo).args.as_ptr())
        .value
        .cast_mut_ptr::<pg_sys::CollectedCommand>();
    let attaches = match (*command).type_ {
        pg_sys::CollectedCommandType::SCT_Simple => true,
        pg_sys::CollectedCommandType::SCT_AlterTable => {
            let subcommands = (*command).d.alterTable.subcmds;
            let count = if subcommands.is_null() {
                0
            } else {
                (*subcommands).length as usize
            };
            (0..count).any(|i| {
                let sub = (*(*subcommands).elements.add(i))
                    .ptr_value
                    .cast::<pg_sys::CollectedATSubcmd>();
                let node = (*sub).parsetree;
                !node.is_null()
                    && (*node).type_ == pg_sys::NodeTag::T_AlterTableCmd
                    && matches!(
                        (*node.cast::<pg_sys::AlterTableCmd>()).subtype,
                        pg_sys::AlterTableType::AT_AttachPartition
                            | pg_sys::AlterTableType::AT_AddInherit
                    )
            })
        }
        _ => false,
    };
    pg_sys::Datum::from(attaches)
}
