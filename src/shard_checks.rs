//! On Citus, `fluent_protection_problems` (sql/rls.sql) checks the shards
//! too: Citus gives each shard the table's row security and policies, and
//! a table owner who can log in on a worker can change a shard's there.
//!
//! The coordinator sends each node holding a placement of the table the
//! policies each relation must carry (its own, with the roles named: role
//! OIDs differ between nodes) and asks it, as the calling role through
//! Citus (`citus::run_on_nodes`), what its shards lack
//! (`fluent._citus_local_shard_problems`, sql/citus.sql, which reads only
//! PostgreSQL's catalogs). A node that cannot be asked is reported, not
//! skipped.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::Deserialize;

use crate::citus;

/// One problem a node found on one of its shards.
#[derive(Deserialize)]
struct ShardProblem {
    relation: String,
    shard: String,
    problem: String,
    detail: String,
}

/// The problems of the shards of `table`'s relations, named in `expected`
/// with their policies: (relation, problem, detail naming shard and node);
/// no relation for a node that could not be asked.
fn shard_problems(table: pg_sys::Oid, expected: &JsonB) -> Vec<(Option<String>, String, String)> {
    let nodes = citus::placement_nodes(table, false);
    let expected_text = expected.0.to_string();
    let mut answers: Vec<(String, bool, String)> = Vec::new();
    let (here, remote): (Vec<_>, Vec<_>) = nodes.into_iter().partition(|(_, _, here)| *here);
    for (name, port, _) in here {
        // As the caller, as the remote nodes are asked.
        let found = Spi::get_one_with_args::<JsonB>(
            "SELECT fluent._citus_local_shard_problems($1)",
            &[JsonB(expected.0.clone()).into()],
        )
        .unwrap_or_else(|e| pgrx::error!("{e}"));
        answers.push((
            format!("{name}:{port}"),
            true,
            found.map(|j| j.0.to_string()).unwrap_or_default(),
        ));
    }
    if !remote.is_empty() {
        let nodes: Vec<(String, i32)> = remote.into_iter().map(|(n, p, _)| (n, p)).collect();
        let command = format!(
            "SELECT fluent._citus_local_shard_problems({}::jsonb)",
            pgrx::spi::quote_literal(&expected_text)
        );
        answers.extend(
            citus::run_on_nodes(&nodes, &command)
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

    /// The problems of the shards of `tbl`'s relations (the keys of
    /// `expected`), as `fluent_protection_problems` lists them.
    #[allow(clippy::type_complexity)]
    #[pg_extern(volatile, parallel_restricted)]
    fn _citus_shard_problems(
        tbl: pg_sys::Oid,
        expected: JsonB,
    ) -> TableIterator<
        'static,
        (
            name!(relation, Option<String>),
            name!(problem, String),
            name!(detail, String),
        ),
    > {
        TableIterator::new(shard_problems(tbl, &expected))
    }
}
