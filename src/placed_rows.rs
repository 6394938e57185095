//! On Citus, the row `fluent_who_can` asks about (src/who_can.rs), read on
//! the nodes that hold the table's placements: a Citus table itself holds no
//! rows.
//!
//! The coordinator knows where the row is to be found (the catalog's
//! protections are kept there only) and who may ask; each node holding
//! placements of the table has the rows. So the coordinator writes a
//! request, signed with the cluster's secret (`fluent.citus_secret`), naming
//! the relations and columns to read, the key, the workspace the caller is
//! confined to, the role it is for and when it expires; it sends
//! `SELECT fluent._citus_placed_rows(<request>)` to each node through
//! Citus (`citus::run_on_nodes`), connecting as the calling role. The node
//! reads its own placements as src/rows.rs reads a table (no code of the
//! table's owner runs), and answers with the rows found and their members.
//! A node answers only a request it can verify, unexpired, for the role it
//! runs as: a request copied from a log answers nobody else, and no one can
//! write one.
//!
//! Between distributed tables a membership row belongs to its item's tenant:
//! it is matched on the item's distribution value as well as its key, as the
//! policies match it (src/placements.rs). The nodes read the rows as
//! committed, not this transaction's own changes.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::citus;
use crate::error::FluentError;
use crate::loaders::{RowFacts, RowLookup};
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
    /// The table with its partitions.
    relations: Vec<String>,
    key_column: String,
    owner_column: Option<String>,
    workspace_column: Option<String>,
    /// The table's distribution column, and the membership table's, when
    /// both are distributed.
    distribution: Option<(String, String)>,
    membership_relations: Vec<String>,
    membership_row_column: Option<String>,
    membership_user_column: Option<String>,
    key: String,
    /// The workspace the caller is confined to (a delegated administrator).
    workspace: Option<String>,
    exp: u64,
}

/// A row found on a node: its owner, its workspace and the users its
/// membership rows name.
#[derive(Serialize, Deserialize)]
struct Placed {
    owner: Option<String>,
    workspace: Option<String>,
    assignees: Vec<String>,
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
    let request = request(table, &lookup, row_key, confined);
    let nodes = citus::placement_nodes(table, true);
    let mut found: Vec<Placed> = Vec::new();
    let remote: Vec<(String, i32)> = nodes
        .iter()
        .filter(|(_, _, here)| !here)
        .map(|(name, port, _)| (name.clone(), *port))
        .collect();
    if nodes.iter().any(|(_, _, here)| *here) {
        found.extend(placed(&request));
    }
    if !remote.is_empty() {
        found.extend(ask(table, &request, &remote));
    }
    let row = rows::only_row(found, table, &lookup.key_column, row_key, confined);
    RowFacts {
        module: lookup.module,
        owner: row.owner,
        workspace: lookup.workspace_column.is_some().then_some(row.workspace),
        assignees: row.assignees,
        // Item roles on Citus tables are refused (sql/citus.sql).
        item_module: None,
        assignments: Vec::new(),
    }
}

/// Refuses to ask the nodes while this transaction holds an exclusive lock
/// on the table or its membership table (`ALTER TABLE`, `LOCK TABLE`): Citus
/// holds it on their shards too, so the nodes' new connections would wait
/// for this transaction, which waits for them.
fn refuse_own_exclusive_locks(table: pg_sys::Oid, lookup: &RowLookup) {
    for &relation in lookup.relations.iter().chain(&lookup.membership_relations) {
        let locked = unsafe {
            let rel = pg_sys::table_open(relation, pg_sys::AccessShareLock as i32);
            let locked =
                pg_sys::CheckRelationLockedByMe(rel, pg_sys::AccessExclusiveLock as i32, false);
            pg_sys::table_close(rel, pg_sys::NoLock as i32);
            locked
        };
        if locked {
            FluentError::CitusRowsLocked {
                table: qualified(table),
            }
            .report();
        }
    }
}

/// The request for the row, for the calling role.
fn request(
    table: pg_sys::Oid,
    lookup: &RowLookup,
    row_key: &str,
    workspace: Option<&str>,
) -> Request {
    let names = |relations: &[pg_sys::Oid]| relations.iter().map(|&r| qualified(r)).collect();
    let membership = lookup.membership_relations.first().copied();
    let distribution = membership.and_then(|membership| {
        owner::as_catalog_owner(|client| {
            let row = owner::select(
                client,
                "SELECT fluent._citus_distribution_column($1)::pg_catalog.text,
                        fluent._citus_distribution_column($2)::pg_catalog.text",
                &[table.into(), membership.into()],
            )
            .next()?;
            Some((owner::column(&row, 1)?, owner::column(&row, 2)?))
        })
    });
    Request {
        role: role_name(),
        relations: names(&lookup.relations),
        key_column: lookup.key_column.clone(),
        owner_column: lookup.owner_column.clone(),
        workspace_column: lookup.workspace_column.clone(),
        distribution,
        membership_relations: names(&lookup.membership_relations),
        membership_row_column: lookup.membership_row_column.clone(),
        membership_user_column: lookup.membership_user_column.clone(),
        key: row_key.to_owned(),
        workspace: workspace.map(str::to_owned),
        exp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            + REQUEST_LIFETIME,
    }
}

/// Sends the signed request to the remote `nodes`, as the calling role, and
/// gathers their rows.
fn ask(table: pg_sys::Oid, request: &Request, nodes: &[(String, i32)]) -> Vec<Placed> {
    let secret = citus::secret().unwrap_or_else(|| {
        FluentError::CitusRowsUnread {
            table: qualified(table),
            node: "(all)".into(),
            message: "fluent is not set up for Citus (fluent_citus_setup())".into(),
        }
        .report()
    });
    let signed = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        request,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_else(|e| pgrx::error!("fluent could not sign the request for the Citus nodes: {e}"));
    // A signed request is base64url and dots: nothing to quote.
    let command = format!("SELECT fluent._citus_placed_rows('{signed}'::pg_catalog.text)");
    let answers = citus::run_on_nodes(
        &nodes
            .iter()
            .map(|(name, port)| (name.clone(), *port, command.clone()))
            .collect::<Vec<_>>(),
    );
    let mut found = Vec::new();
    for (name, port, success, result) in answers {
        let rows: Option<Vec<Placed>> = success
            .then(|| serde_json::from_str(&result).ok())
            .flatten();
        match rows {
            Some(rows) => found.extend(rows),
            None => FluentError::CitusRowsUnread {
                table: qualified(table),
                node: format!("{name}:{port}"),
                message: result,
            }
            .report(),
        }
    }
    found
}

/// The rows this node's placements hold for `request`.
fn placed(request: &Request) -> Vec<Placed> {
    let (relations, membership_relations) = owner::as_catalog_owner(|client| {
        let local = |names: &[String]| -> Vec<pg_sys::Oid> {
            owner::select(
                client,
                "SELECT fluent._local_placements_named($1)::pg_catalog.oid[]",
                &[names.to_vec().into()],
            )
            .first()
            .get::<Vec<pg_sys::Oid>>(1)
            .ok()
            .flatten()
            .unwrap_or_default()
        };
        (
            local(&request.relations),
            local(&request.membership_relations),
        )
    });
    let (row_distribution, member_distribution) = match &request.distribution {
        Some((row, member)) => (Some(row.as_str()), Some(member.as_str())),
        None => (None, None),
    };
    rows::keyed_rows(
        &relations,
        &[(&request.key_column, &request.key)],
        &[
            request.owner_column.as_deref(),
            request.workspace_column.as_deref(),
            row_distribution,
        ],
    )
    .into_iter()
    .filter(|row| request.workspace.is_none() || row[1] == request.workspace)
    .map(|mut row| {
        let distributed_by = row.pop().flatten();
        let workspace = row.pop().flatten();
        let owner = row.pop().flatten();
        let assignees = match (
            &request.membership_row_column,
            &request.membership_user_column,
        ) {
            (Some(row_column), Some(user_column)) => {
                // Between distributed tables, the membership rows of this
                // item's tenant only: its distribution value, compared as
                // the column's type compares it (1.0 is 1.00).
                let mut keys = vec![(row_column.as_str(), request.key.as_str())];
                match (member_distribution, &distributed_by) {
                    (Some(column), Some(value)) => keys.push((column, value.as_str())),
                    // A row without a distribution value has no members.
                    (Some(_), None) => return (owner, workspace, Vec::new()),
                    (None, _) => {}
                }
                let mut users: Vec<String> =
                    rows::keyed_rows(&membership_relations, &keys, &[Some(user_column)])
                        .into_iter()
                        .filter_map(|mut m| m.pop().flatten())
                        .collect();
                users.sort();
                users.dedup();
                users
            }
            _ => Vec::new(),
        };
        (owner, workspace, assignees)
    })
    .map(|(owner, workspace, assignees)| Placed {
        owner,
        workspace,
        assignees,
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

/// The relation's schema-qualified, quoted name, which reads the same on
/// every node whatever the search path.
fn qualified(rel: pg_sys::Oid) -> String {
    unsafe {
        let schema = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(rel));
        let name = pg_sys::get_rel_name(rel);
        if schema.is_null() || name.is_null() {
            return rel.to_u32().to_string();
        }
        let text =
            |p: *mut std::ffi::c_char| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
        format!(
            "{}.{}",
            pgrx::spi::quote_identifier(text(schema)),
            pgrx::spi::quote_identifier(text(name))
        )
    }
}

/// The request `signed`, if this cluster's coordinator signed it for the
/// current role and it has not expired.
fn verified(signed: &str) -> Option<Request> {
    let secret = citus::secret()?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    validation.leeway = REQUEST_LEEWAY;
    let request = jsonwebtoken::decode::<Request>(
        signed,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .ok()?
    .claims;
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
