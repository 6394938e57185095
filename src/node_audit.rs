//! On Citus, the audit rows the workers hold. An assignment of an item role
//! on a Citus table is recorded on the node that holds it, in that node's
//! `fluent.audit_log` (src/items.rs). `fluent.citus_audit_log` (sql/citus.sql)
//! shows them on the coordinator: it asks each other node, as the calling
//! role through Citus (`citus::run_on_nodes`), for its log as JSON. A node
//! that cannot be asked stops the read: an audit trail is not shown in part.

use pgrx::prelude::*;

use crate::citus;
use crate::error::FluentError;
use crate::owner;

/// What each node runs, a page at a time: its log after an entry, oldest
/// first, as a JSON array's text (the view casts it: parsed here, a number
/// would lose digits and a deep value would not parse), every name qualified
/// (the node's session has the database's default search path).
fn page_after(audit_id: i64) -> String {
    format!(
        "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a.*) ORDER BY a.audit_id), '[]'::pg_catalog.jsonb)::pg_catalog.text
           FROM (SELECT * FROM fluent.audit_log l WHERE l.audit_id OPERATOR(pg_catalog.>) {audit_id}::pg_catalog.int8
                  ORDER BY l.audit_id LIMIT {PAGE}) a"
    )
}

/// Entries per page: a node's whole log in one value could pass what one
/// value may hold.
const PAGE: i64 = 1000;

/// How many entries a page holds and the last one's `audit_id`, read by
/// PostgreSQL's own JSON parser (the one that wrote it on the node), as the
/// caller.
fn page_extent(page: &str) -> (i64, Option<i64>) {
    Spi::connect(|client| {
        let row = client
            .select(
                "SELECT pg_catalog.count(*)::pg_catalog.int8,
                        pg_catalog.max((e OPERATOR(pg_catalog.->>) 'audit_id')::pg_catalog.int8)
                   FROM pg_catalog.jsonb_array_elements($1::pg_catalog.text::pg_catalog.jsonb) e",
                Some(1),
                &[page.into()],
            )
            .unwrap_or_else(|e| pgrx::error!("{e}"))
            .first();
        (
            row.get::<i64>(1).ok().flatten().unwrap_or(0),
            row.get::<i64>(2).ok().flatten(),
        )
    })
}

#[pg_schema]
mod fluent {
    use super::*;

    /// Each other node's `fluent.audit_log`, in pages of JSON arrays (as
    /// text), by node (`host:port`); none without Citus.
    #[pg_extern(volatile, parallel_restricted)]
    fn _citus_node_audit_logs(
    ) -> TableIterator<'static, (name!(node, String), name!(entries, String))> {
        let nodes: Vec<(String, i32)> = owner::as_catalog_owner(|client| {
            owner::select(
                client,
                "SELECT node_name, node_port FROM fluent._citus_other_nodes()",
                &[],
            )
            .map(|row| {
                (
                    owner::column::<String>(&row, 1).unwrap_or_default(),
                    owner::column::<i32>(&row, 2).unwrap_or_default(),
                )
            })
            .collect()
        });
        let mut pages = Vec::new();
        // Each node from its first entry on; a node leaves the round once a
        // page comes back short.
        let mut after: Vec<(String, i32, i64)> = nodes
            .into_iter()
            .map(|(name, port)| (name, port, 0))
            .collect();
        while !after.is_empty() {
            let commands: Vec<(String, i32, String)> = after
                .iter()
                .map(|(name, port, id)| (name.clone(), *port, page_after(*id)))
                .collect();
            let mut next = Vec::new();
            for (name, port, success, page) in citus::run_on_nodes(&commands) {
                let node = format!("{name}:{port}");
                if !success {
                    FluentError::CitusAuditUnread {
                        node,
                        message: page,
                    }
                    .report();
                }
                let (entries, last) = page_extent(&page);
                if entries == 0 {
                    continue;
                }
                if entries == PAGE {
                    if let Some(last) = last {
                        next.push((name, port, last));
                    }
                }
                pages.push((node, page));
            }
            after = next;
        }
        TableIterator::new(pages)
    }
}
