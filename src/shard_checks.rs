//! On Citus, `fluent_protection_problems` (sql/rls.sql) checks the shards
//! too: Citus gives each shard the table's row security and policies, and
//! a table owner who can log in on a worker can change a shard's there.
//!
//! The coordinator lists, from its own metadata, the shards each node holds
//! of the table's relations (`fluent._citus_shards_by_node`), with the
//! policies each shard must carry (its table's here, with the roles named:
//! role OIDs differ between nodes) and the item roles' triggers. It asks each node, as the calling role
//! through Citus (`citus::run_on_nodes`), what those shards lack
//! (`fluent._citus_local_shard_problems`, sql/citus.sql, which reads only
//! PostgreSQL's catalogs and finds each shard by the name the coordinator
//! routes queries to, not through the node's own metadata or tables). A node
//! that cannot be asked is reported, not skipped.

use std::collections::BTreeMap;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::citus;
use crate::owner;

/// One problem a node found on one of its shards.
#[derive(Deserialize)]
struct ShardProblem {
    relation: String,
    shard: String,
    problem: String,
    detail: String,
}

/// The problems of the shards of `relations`: (relation, problem, detail
/// naming the shard and its node); no relation for a node that could not be
/// asked.
fn shard_problems(relations: Vec<pg_sys::Oid>) -> Vec<(Option<String>, String, String)> {
    // Each relation's name and policies, as its shards must carry them.
    let specs: Vec<(pg_sys::Oid, Value)> = owner::as_catalog_owner(|client| {
        relations
            .iter()
            .map(|&relation| {
                let row = owner::select(
                    client,
                    "SELECT $1::pg_catalog.regclass::pg_catalog.text, fluent._policies_named($1),
                            fluent._item_triggers_named($1)",
                    &[relation.into()],
                )
                .first();
                let name = row.get::<String>(1).ok().flatten().unwrap_or_default();
                let policies = row.get::<JsonB>(2).ok().flatten().map(|j| j.0);
                let triggers = row.get::<JsonB>(3).ok().flatten().map(|j| j.0);
                (
                    relation,
                    json!({
                        "relation": name,
                        "policies": policies.unwrap_or_default(),
                        "triggers": triggers.unwrap_or_default(),
                    }),
                )
            })
            .collect()
    });
    let spec = |relation: pg_sys::Oid| {
        specs
            .iter()
            .find(|(r, _)| *r == relation)
            .map(|(_, spec)| spec.clone())
            .unwrap_or_default()
    };
    // Per node: shard -> its table and the table's policies.
    let nodes: BTreeMap<citus::Node, Map<String, Value>> = citus::shards_by_node(&relations)
        .into_iter()
        .map(|(node, shards)| {
            let expected = shards
                .into_iter()
                .map(|(shard, relation)| (shard, spec(relation)))
                .collect();
            (node, expected)
        })
        .collect();
    let mut answers: Vec<(String, bool, String)> = Vec::new();
    let mut remote: Vec<(String, i32, String)> = Vec::new();
    for ((name, port, here), expected) in nodes {
        let expected = Value::Object(expected);
        if here {
            // As the caller, as the remote nodes are asked.
            let found = Spi::get_one_with_args::<JsonB>(
                "SELECT fluent._citus_local_shard_problems($1)",
                &[JsonB(expected).into()],
            )
            .unwrap_or_else(|e| pgrx::error!("{e}"));
            answers.push((
                format!("{name}:{port}"),
                true,
                found.map(|j| j.0.to_string()).unwrap_or_default(),
            ));
        } else {
            let command = format!(
                "SELECT fluent._citus_local_shard_problems({}::pg_catalog.jsonb)",
                pgrx::spi::quote_literal(expected.to_string())
            );
            remote.push((name, port, command));
        }
    }
    if !remote.is_empty() {
        answers.extend(
            citus::run_on_nodes(&remote)
                .into_iter()
                .map(|(name, port, success, result)| (format!("{name}:{port}"), success, result)),
        );
    }
    let mut problems = Vec::new();
    for (node, success, result) in answers {
        match success
            .then(|| serde_json::from_str::<Vec<ShardProblem>>(&result).ok())
            .flatten()
        {
            Some(found) => problems.extend(found.into_iter().map(|p| {
                (
                    Some(p.relation),
                    p.problem,
                    format!("shard {} on node {node}: {}", p.shard, p.detail),
                )
            })),
            None => problems.push((
                None,
                "shards not checked".to_owned(),
                format!("node {node} could not be asked: {result}"),
            )),
        }
    }
    problems
}

#[pg_schema]
pub mod fluent {
    use super::*;

    /// The problems of the shards of `relations` (a protected Citus table,
    /// its membership table and their partitions), as
    /// `fluent_protection_problems` lists them.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_restricted)]
    fn _citus_shard_problems(
        relations: Vec<pg_sys::Oid>,
    ) -> TableIterator<
        'static,
        (
            name!(relation, Option<String>),
            name!(problem, String),
            name!(detail, String),
        ),
    > {
        TableIterator::new(shard_problems(relations))
    }
}
