//! Reading another table from a policy on a Citus node.
//!
//! Some policies compare a column with values read from another table: the
//! rows a membership table assigns to the acting user, the items whose
//! assignment gives them an item role, the items a membership row may point
//! at (sql/rls.sql). On one server that is an uncorrelated
//! `ARRAY(SELECT ...)`, an InitPlan run once per query. Citus refuses
//! policies with sub-selects, and a shard's query may not read a distributed
//! table anyway. So on a Citus node the policy calls
//! `fluent.rls_local_rows(...)` instead, and its planner support function
//! (src/plans.rs) replaces the call with the same `ARRAY(SELECT ...)` over
//! this node's own placements of the table: the plan reads them once per
//! query, at execution, so nothing of the table's contents is kept in a plan.
//!
//! For a distributed table that is exact when the rows a shard's policy
//! looks for are on the same node: the membership table distributed by the
//! same column as the protected table and co-located with it, each
//! membership row carrying its item's distribution value (a foreign key
//! from the membership rows to their items, which Citus requires to include
//! the distribution column, ensures it). A reference table has a placement
//! on every node. `fluent_protect()` refuses other layouts on Citus
//! (sql/citus.sql).

use pgrx::pg_sys;

use crate::owner;

/// The SQL of `ARRAY(SELECT m.<column> FROM <t> m WHERE <condition>)` (or
/// of `ROW(m.<a>, m.<b>)` for several columns) over `table` itself when it
/// is no Citus table, over this node's placements of it (joined by `UNION
/// ALL`) when it is one, or the empty array of its type when this node
/// holds none. The relations and the type come from
/// `fluent._local_rows_from` (sql/citus.sql), asked as the catalog owner
/// (Citus's catalogs).
pub fn local_rows_sql(table: pg_sys::Oid, columns: &[String], condition: &str) -> String {
    let (relations, typ) = owner::as_catalog_owner(|client| {
        let row = client
            .select(
                "SELECT relations, col_type FROM fluent._local_rows_from($1, $2::pg_catalog.name[])",
                Some(1),
                &[table.into(), columns.to_vec().into()],
            )
            .unwrap_or_else(|e| pgrx::error!("{e}"))
            .first();
        (
            row.get::<Vec<String>>(1).ok().flatten().unwrap_or_default(),
            row.get::<String>(2).ok().flatten().unwrap_or_default(),
        )
    });
    if relations.is_empty() {
        return format!("ARRAY[]::{typ}[]");
    }
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| format!("m.{}", pgrx::spi::quote_identifier(c)))
        .collect();
    let selected = match quoted.as_slice() {
        [one] => one.clone(),
        several => format!("ROW({})", several.join(", ")),
    };
    let selects: Vec<String> = relations
        .iter()
        .map(|from| format!("SELECT {selected} FROM {from} m WHERE {condition}"))
        .collect();
    format!("ARRAY({})", selects.join(" UNION ALL "))
}

#[pgrx::pg_schema]
pub mod fluent {
    use pgrx::prelude::*;

    /// The SQL `fluent.rls_local_rows` stands for on this node
    /// (sql/rls.sql runs it when a call is not planned away), and the
    /// sub-select one server's policies hold.
    #[pg_extern(stable, parallel_safe)]
    fn _local_rows_sql(table: pg_sys::Oid, columns: Vec<String>, condition: &str) -> String {
        super::local_rows_sql(table, &columns, condition)
    }
}
