//! On Citus, the row `fluent_who_can` asks about (src/who_can.rs), read on
//! the nodes that hold the table's placements: a Citus table itself holds no
//! rows.
//!
//! The coordinator knows where the row is to be found (the catalog's
//! protections are kept there only) and who may ask; each node holding
//! placements of the table has the rows. So the coordinator writes each
//! node a request, signed with the cluster's secret (`fluent.citus_secret`),
//! naming the node's shards to read (from the coordinator's metadata, which
//! routes queries, not the node's own tables), the columns, the key, the
//! workspace the caller is confined to, the role it is for and when it
//! expires; it sends
//! `SELECT fluent._citus_placed_rows(<request>)` to each node through
//! Citus (`citus::run_on_nodes`), connecting as the calling role. The node
//! reads its own placements as src/rows.rs reads a table (no code of the
//! table's owner runs), and answers with the rows found and their members.
//! A node answers only a request it can verify, unexpired, for the role it
//! runs as: a request copied from a log answers nobody else, and no one can
//! write one.
//!
//! Between distributed tables a membership row, or an assignment of an item
//! role, belongs to its item's tenant: it is matched on the item's
//! distribution value as well as its key, as the policies match it
//! (src/placements.rs). The remote nodes read the rows as committed, not
//! this transaction's own changes.

use std::time::{SystemTime, UNIX_EPOCH};

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::citus;
use crate::error::FluentError;
use crate::loaders::{Assignment, RowFacts, RowLookup};
use crate::owner;
use crate::rows;

/// How long a request is valid, in seconds: long enough for the nodes to be
/// dialled; plus `REQUEST_LEEWAY` for clocks that differ between nodes.
const REQUEST_LIFETIME: u64 = 10;
const REQUEST_LEEWAY: u64 = 5;

/// What a node reads: relations as qualified names (the same on every node),
/// columns by name.
#[derive(Serialize, Deserialize)]
struct Request {
    /// The role the request is for: the one the node's session runs as. (A
    /// role's OID differs between nodes; Citus keeps roles alike by name.)
    role: String,
    /// This node's shards of the table and its partitions.
    shards: Vec<String>,
    key_column: String,
    owner_column: Option<String>,
    workspace_column: Option<String>,
    /// The table's distribution column, when it is distributed.
    distribution: Option<String>,
    /// This node's shards of the membership table and its partitions, its
    /// columns, and its distribution column when both tables are
    /// distributed.
    membership_shards: Vec<String>,
    membership_row_column: Option<String>,
    membership_user_column: Option<String>,
    membership_distribution: Option<String>,
    /// Item roles: the table's column naming the item (its key, or its
    /// parent's), this node's shards of the assignment table (the table's
    /// own membership table, or its parent's), its columns, and its
    /// distribution column when both tables are distributed.
    item_column: Option<String>,
    assignment_shards: Vec<String>,
    assignment_row_column: Option<String>,
    assignment_user_column: Option<String>,
    assignment_team_column: Option<String>,
    assignment_role_column: Option<String>,
    assignment_distribution: Option<String>,
    key: String,
    /// The workspace the caller is confined to (a delegated administrator).
    workspace: Option<String>,
    exp: u64,
}

/// A row found on a node: its owner, its workspace, the users its
/// membership rows name, and its item's assignments.
#[derive(Serialize, Deserialize)]
struct Placed {
    owner: Option<String>,
    workspace: Option<String>,
    assignees: Vec<String>,
    assignments: Vec<Assignment>,
}

/// The row of Citus table `table` keyed `row_key` (in `in_workspace` only,
/// for a caller confined to one) and the users assigned to it, read on the
/// nodes holding its placements. Refused as `rows::read` refuses: no row,
/// several, or a key type it does not read.
pub fn read(
    table: pg_sys::Oid,
    lookup: RowLookup,
    row_key: &str,
    in_workspace: Option<&str>,
) -> RowFacts {
    rows::check_key(table, &lookup.key_column, row_key);
    refuse_own_exclusive_locks(table, &lookup);
    let confined = in_workspace.filter(|_| lookup.workspace_column.is_some());
    // Each shard is read once, on this node when it holds it: a reference
    // table's (the same shard on every node) on one node only.
    let mut nodes: Vec<(citus::Node, Vec<(String, pg_sys::Oid)>)> = citus::shards_by_node(
        &lookup
            .relations
            .iter()
            .chain(&lookup.membership_relations)
            .chain(&lookup.assignment_relations)
            .copied()
            .collect::<Vec<_>>(),
    )
    .into_iter()
    .collect();
    nodes.sort_by_key(|((_, _, here), _)| !here);
    let mut taken = std::collections::HashSet::new();
    let mut found: Vec<Placed> = Vec::new();
    let mut remote: Vec<(String, i32, Request)> = Vec::new();
    for ((name, port, here), shards) in nodes {
        let shards: Vec<(String, pg_sys::Oid)> = shards
            .into_iter()
            .filter(|(shard, _)| taken.insert(shard.clone()))
            .collect();
        if shards.is_empty() {
            continue;
        }
        let of = |relations: &[pg_sys::Oid]| -> Vec<String> {
            shards
                .iter()
                .filter(|(_, relation)| relations.contains(relation))
                .map(|(shard, _)| shard.clone())
                .collect()
        };
        let request = request(
            &lookup,
            [
                of(&lookup.relations),
                of(&lookup.membership_relations),
                of(&lookup.assignment_relations),
            ],
            table,
            row_key,
            confined,
        );
        if here {
            found.extend(placed(&request));
        } else {
            remote.push((name, port, request));
        }
    }
    if !remote.is_empty() {
        found.extend(ask(table, &remote));
    }
    let row = rows::only_row(found, table, &lookup.key_column, row_key, confined);
    RowFacts {
        module: lookup.module,
        owner: row.owner,
        workspace: lookup.workspace_column.is_some().then_some(row.workspace),
        assignees: row.assignees,
        item_module: lookup.item_module,
        assignments: row.assignments,
    }
}

/// Refuses to ask the nodes while this transaction holds an exclusive lock
/// on the table, its membership table or its assignment table (`ALTER TABLE`, `LOCK TABLE`): Citus
/// holds it on their shards too, so the nodes' new connections would wait
/// for this transaction, which waits for them.
fn refuse_own_exclusive_locks(table: pg_sys::Oid, lookup: &RowLookup) {
    for &relation in lookup
        .relations
        .iter()
        .chain(&lookup.membership_relations)
        .chain(&lookup.assignment_relations)
    {
        let locked = unsafe {
            let rel = pg_sys::table_open(relation, pg_sys::AccessShareLock as i32);
            let locked =
                pg_sys::CheckRelationLockedByMe(rel, pg_sys::AccessExclusiveLock as i32, false);
            pg_sys::table_close(rel, pg_sys::NoLock as i32);
            locked
        };
        if locked {
            FluentError::CitusRowsLocked {
                table: rows::qualified_name(table),
            }
            .report();
        }
    }
}

/// The request for the row on one node, whose shards of the table, of the
/// membership table and of the assignment table are named, for the calling
/// role.
fn request(
    lookup: &RowLookup,
    [shards, membership_shards, assignment_shards]: [Vec<String>; 3],
    table: pg_sys::Oid,
    row_key: &str,
    workspace: Option<&str>,
) -> Request {
    // The distribution columns of the table, its membership table and its
    // assignment table.
    let distributed: Vec<Option<String>> = owner::as_catalog_owner(|client| {
        [
            Some(table),
            lookup.membership_relations.first().copied(),
            lookup.assignment_relations.first().copied(),
        ]
        .into_iter()
        .map(|relation| {
            let relation = relation?;
            let row = owner::select(
                client,
                "SELECT fluent._citus_distribution_column($1)::pg_catalog.text",
                &[relation.into()],
            )
            .next()?;
            owner::column(&row, 1)
        })
        .collect()
    });
    let [distribution, membership, assignment] = [0, 1, 2].map(|i| distributed[i].clone());
    // Another table's distribution value is compared only between
    // distributed tables.
    let paired = |other: Option<String>| other.filter(|_| distribution.is_some());
    Request {
        role: role_name(),
        shards,
        key_column: lookup.key_column.clone(),
        owner_column: lookup.owner_column.clone(),
        workspace_column: lookup.workspace_column.clone(),
        membership_distribution: paired(membership),
        assignment_distribution: paired(assignment),
        distribution,
        membership_shards,
        membership_row_column: lookup.membership_row_column.clone(),
        membership_user_column: lookup.membership_user_column.clone(),
        item_column: lookup.item_column.clone(),
        assignment_shards,
        assignment_row_column: lookup.assignment_row_column.clone(),
        assignment_user_column: lookup.assignment_user_column.clone(),
        assignment_team_column: lookup.assignment_team_column.clone(),
        assignment_role_column: lookup.assignment_role_column.clone(),
        key: row_key.to_owned(),
        workspace: workspace.map(str::to_owned),
        exp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            + REQUEST_LIFETIME,
    }
}

/// Sends each remote node its request, signed, as the calling role, and
/// gathers their rows.
fn ask(table: pg_sys::Oid, requests: &[(String, i32, Request)]) -> Vec<Placed> {
    let secret = citus::secret().unwrap_or_else(|| {
        FluentError::CitusRowsUnread {
            table: rows::qualified_name(table),
            node: "(all)".into(),
            message: "fluent is not set up for Citus (fluent_citus_setup())".into(),
        }
        .report()
    });
    let commands: Vec<(String, i32, String)> = requests
        .iter()
        .map(|(name, port, request)| {
            let signed = citus::signed(request, &secret);
            // A signed request is base64url and dots: nothing to quote.
            let command = format!("SELECT fluent._citus_placed_rows('{signed}'::pg_catalog.text)");
            (name.clone(), *port, command)
        })
        .collect();
    let answers = citus::run_on_nodes(&commands);
    let mut found = Vec::new();
    for (name, port, success, result) in answers {
        let rows: Option<Vec<Placed>> = success
            .then(|| serde_json::from_str(&result).ok())
            .flatten();
        match rows {
            Some(rows) => found.extend(rows),
            None => FluentError::CitusRowsUnread {
                table: rows::qualified_name(table),
                node: format!("{name}:{port}"),
                message: result,
            }
            .report(),
        }
    }
    found
}

/// The rows the shards `request` names hold on this node. A shard the node
/// does not have stops the read: the coordinator routes queries to it.
fn placed(request: &Request) -> Vec<Placed> {
    let [relations, membership_relations, assignment_relations] =
        owner::as_catalog_owner(|client| {
            let named = |names: &[String]| -> Vec<pg_sys::Oid> {
                let found = owner::select(
                    client,
                    "SELECT fluent._relations_named($1)",
                    &[names.to_vec().into()],
                )
                .first()
                .get::<Vec<Option<pg_sys::Oid>>>(1)
                .ok()
                .flatten()
                .unwrap_or_default();
                names
                    .iter()
                    .zip(found.iter().chain(std::iter::repeat(&None)))
                    .map(|(name, oid)| {
                        oid.unwrap_or_else(|| {
                            FluentError::CitusShardMissing {
                                shard: name.clone(),
                            }
                            .report()
                        })
                    })
                    .collect()
            };
            let named = [
                named(&request.shards),
                named(&request.membership_shards),
                named(&request.assignment_shards),
            ];
            // A table hung under a shard holds rows that queries on the
            // shard read, and that the scans below would not see: refused.
            let all: Vec<pg_sys::Oid> = named.iter().flatten().copied().collect();
            if let Some(child) = owner::select(
                client,
                "SELECT fluent._outside_children($1, $1) LIMIT 1",
                &[all.into()],
            )
            .next()
            .and_then(|row| owner::column::<String>(&row, 1))
            {
                FluentError::CitusShardChild { child }.report();
            }
            named
        });
    // The rows of `relations` whose `row_column` is `key` and, between
    // distributed tables, whose `distributed_by` column holds the item's
    // distribution value too (compared as the column's type compares it:
    // 1.0 is 1.00); None for a row without one, which has no such rows.
    let of_item = |relations: &[pg_sys::Oid],
                   row_column: &str,
                   key: &str,
                   distributed_by: Option<&str>,
                   value: Option<&str>,
                   columns: &[Option<&str>]|
     -> Vec<Vec<Option<String>>> {
        let mut keys = vec![(row_column, key)];
        match (distributed_by, value) {
            (Some(column), Some(value)) => keys.push((column, value)),
            (Some(_), None) => return Vec::new(),
            (None, _) => {}
        }
        rows::keyed_rows(relations, &keys, columns)
    };
    rows::keyed_rows(
        &relations,
        &[(&request.key_column, &request.key)],
        &[
            request.owner_column.as_deref(),
            request.workspace_column.as_deref(),
            request.distribution.as_deref(),
            request.item_column.as_deref(),
        ],
    )
    .into_iter()
    .filter(|row| request.workspace.is_none() || row[1] == request.workspace)
    .map(|mut row| {
        let item = row.pop().flatten();
        let distributed_by = row.pop().flatten();
        let workspace = row.pop().flatten();
        let owner = row.pop().flatten();
        let mut assignees: Vec<String> = match (
            &request.membership_row_column,
            &request.membership_user_column,
        ) {
            (Some(row_column), Some(user_column)) => of_item(
                &membership_relations,
                row_column,
                &request.key,
                request.membership_distribution.as_deref(),
                distributed_by.as_deref(),
                &[Some(user_column)],
            )
            .into_iter()
            .filter_map(|mut m| m.pop().flatten())
            .collect(),
            _ => Vec::new(),
        };
        assignees.sort();
        assignees.dedup();
        let assignments = match (
            &item,
            &request.assignment_row_column,
            &request.assignment_role_column,
        ) {
            (Some(item), Some(row_column), Some(role_column)) => of_item(
                &assignment_relations,
                row_column,
                item,
                request.assignment_distribution.as_deref(),
                distributed_by.as_deref(),
                &[
                    request.assignment_user_column.as_deref(),
                    request.assignment_team_column.as_deref(),
                    Some(role_column),
                ],
            )
            .into_iter()
            .filter_map(rows::assignment)
            .collect(),
            _ => Vec::new(),
        };
        Placed {
            owner,
            workspace,
            assignees,
            assignments,
        }
    })
    .collect()
}

/// The current role's name.
fn role_name() -> String {
    unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// The request `signed`, if this cluster's coordinator signed it for the
/// current role and it has not expired.
fn verified(signed: &str) -> Option<Request> {
    let request: Request = citus::verified(signed, Some(REQUEST_LEEWAY))?;
    (request.role == role_name()).then_some(request)
}

#[pg_schema]
pub mod fluent {
    use super::*;

    /// On a Citus node: the rows of a signed request of `fluent_who_can`
    /// on the coordinator, as JSON. Anything else is refused.
    #[pg_extern(stable, parallel_restricted)]
    fn _citus_placed_rows(request: &str) -> String {
        let request = verified(request).unwrap_or_else(|| FluentError::CitusRowRequest.report());
        serde_json::to_string(&placed(&request))
            .unwrap_or_else(|e| pgrx::error!("fluent could not write the rows found: {e}"))
    }
}
