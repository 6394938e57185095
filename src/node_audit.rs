//! On Citus, the audit rows the workers hold. An assignment of an item role
//! on a Citus table is recorded on the node that holds it, in that node's
//! `fluent.audit_log` (src/items.rs). `fluent.citus_audit_log` (sql/citus.sql)
//! shows them on the coordinator: it asks each other node, as the calling
//! role through Citus (`citus::run_on_nodes`), for its log as JSON. A node
//! that cannot be asked stops the read: an audit trail is not shown in part.

use pgrx::prelude::*;
use pgrx::JsonB;

use crate::citus;
use crate::error::FluentError;
use crate::owner;

/// What each node runs: its whole log, oldest first, every name qualified
/// (the node's session has the database's default search path).
const NODE_LOG: &str =
    "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a.*) ORDER BY a.audit_id),
                               '[]'::pg_catalog.jsonb)::pg_catalog.text
                          FROM fluent.audit_log a";

#[pg_schema]
mod fluent {
    use super::*;

    /// Each other node's `fluent.audit_log`, as a JSON array, by node
    /// (`host:port`); none without Citus.
    #[pg_extern(volatile, parallel_restricted)]
    fn _citus_node_audit_logs(
    ) -> TableIterator<'static, (name!(node, String), name!(entries, JsonB))> {
        let nodes: Vec<(String, i32, String)> = owner::as_catalog_owner(|client| {
            owner::select(
                client,
                "SELECT node_name, node_port FROM fluent._citus_other_nodes()",
                &[],
            )
            .map(|row| {
                (
                    owner::column::<String>(&row, 1).unwrap_or_default(),
                    owner::column::<i32>(&row, 2).unwrap_or_default(),
                    NODE_LOG.to_owned(),
                )
            })
            .collect()
        });
        if nodes.is_empty() {
            return TableIterator::new(Vec::new());
        }
        let logs: Vec<(String, JsonB)> = citus::run_on_nodes(&nodes)
            .into_iter()
            .map(|(name, port, success, result)| {
                let node = format!("{name}:{port}");
                let entries = success
                    .then(|| serde_json::from_str(&result).ok())
                    .flatten()
                    .unwrap_or_else(|| {
                        FluentError::CitusAuditUnread {
                            node: node.clone(),
                            message: result,
                        }
                        .report()
                    });
                (node, JsonB(entries))
            })
            .collect();
        TableIterator::new(logs)
    }
}
