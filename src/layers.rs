//! The module layers of src/lib.rs, checked: no module imports one of its
//! own layer's successors or of a layer below it (pure Rust).

/// The modules in the order of src/lib.rs's layer list: each may import
/// only those before it.
const ORDER: &[&str] = &[
    "error",
    "hashing",
    "scope",
    "token",
    "ddl",
    "folds",
    "trigger",
    "preload",
    "unguarded",
    "owner",
    "citus",
    "placements",
    "loaders",
    "rows",
    "placed_rows",
    "shard_checks",
    "node_audit",
    "probes",
    "gucs",
    "gate",
    "cache",
    "planning_snapshot",
    "kept_plans",
    "identity",
    "delegation",
    "checks",
    "plans",
    "explain",
    "reports",
    "effective",
    "who_can",
    "items",
    "audit",
];

/// The fluent modules a source file names as `crate::<module>`.
fn imports(source: &str) -> Vec<String> {
    let mut found: Vec<String> = source
        .match_indices("crate::")
        .map(|(at, m)| {
            source[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

macro_rules! sources {
    ($($module:ident),*) => {
        &[$((stringify!($module), include_str!(concat!(stringify!($module), ".rs")))),*]
    };
}

#[test]
fn layers_run_one_way() {
    let sources: &[(&str, &str)] = sources!(
        error,
        hashing,
        scope,
        token,
        ddl,
        folds,
        trigger,
        preload,
        unguarded,
        owner,
        citus,
        placements,
        loaders,
        rows,
        placed_rows,
        shard_checks,
        node_audit,
        probes,
        gucs,
        gate,
        cache,
        planning_snapshot,
        kept_plans,
        identity,
        delegation,
        checks,
        plans,
        explain,
        reports,
        effective,
        who_can,
        items,
        audit
    );
    assert_eq!(sources.len(), ORDER.len());
    let mut wrong = Vec::new();
    for (module, source) in sources {
        let at = ORDER.iter().position(|m| m == module).unwrap();
        // (A macro names its own module as `$crate::<module>`.)
        for import in imports(source).into_iter().filter(|i| i != module) {
            match ORDER.iter().position(|m| *m == import) {
                Some(i) if i < at => {}
                Some(_) => wrong.push(format!("{module} imports {import}, a layer up")),
                None => wrong.push(format!("{module} imports {import}, not in the layer list")),
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn imports_are_read() {
    assert_eq!(
        imports("use crate::cache;\nlet x = crate::loaders::load(); crate::cache::f()"),
        ["cache", "loaders"]
    );
}
