//! Reading the row `fluent_who_can` asks about, and who is assigned to it,
//! without running code that the table's owner controls.
//!
//! Whoever reads a table through SQL may run its owner's code: a domain's
//! CHECK when the key is coerced to it, a cast the owner defined, a function
//! folded in a partial index's predicate while the table is planned, a
//! view's functions. Read with fluent's rights, that code made a table owner
//! a superuser. So the row is read the way PostgreSQL reads its own
//! catalogs: a heap scan with a scan key, compared by the equality of the key
//! type's default btree operator class (which only a superuser can create),
//! the key parsed and the values printed by their types' input and output
//! functions (C functions, so a superuser's too). No parser, planner,
//! executor, privilege check or row-level security is involved, and no
//! change of identity: the caller was checked (they may read everyone's
//! permissions), and the scan reads past the policies as the catalog scans
//! do. The tables to read come from the catalog (`fluent._row_lookup`).

use std::ffi::{CStr, CString};

use pgrx::pg_sys;

use crate::error::FluentError;
use crate::loaders::{Assignment, RowFacts, RowLookup};

/// The key, parsed in the base type of the key column, and how to compare it.
struct Key {
    base: pg_sys::Oid,
    datum: pg_sys::Datum,
    equal: pg_sys::Oid,
    collation: pg_sys::Oid,
}

/// The name PostgreSQL prints for a relation (`regclass`).
fn relation_text(rel: pg_sys::Oid) -> String {
    unsafe {
        let text = pg_sys::OidOutputFunctionCall(
            pg_sys::Oid::from(pg_sys::F_REGCLASSOUT),
            pg_sys::Datum::from(rel),
        );
        CStr::from_ptr(text).to_string_lossy().into_owned()
    }
}

/// The relation's schema-qualified, quoted name, which reads the same on
/// every node whatever the search path.
pub fn qualified_name(rel: pg_sys::Oid) -> String {
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

fn attnum(rel: pg_sys::Oid, column: &str) -> i16 {
    let name = CString::new(column).unwrap_or_default();
    let attnum = unsafe { pg_sys::get_attnum(rel, name.as_ptr()) };
    if attnum <= 0 {
        pgrx::error!(
            "column \"{column}\" of relation {} does not exist",
            relation_text(rel)
        );
    }
    attnum
}

/// Parses `row_key` in the base type of `column` of `table`, refusing types
/// whose input would run a user's code (composites, ranges, arrays: their
/// parts' domain checks).
fn parse_key(table: pg_sys::Oid, column: &str, row_key: &str) -> Key {
    unsafe {
        let (mut typ, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
        pg_sys::get_atttypetypmodcoll(
            table,
            attnum(table, column),
            &mut typ,
            &mut typmod,
            &mut collation,
        );
        let base = pg_sys::getBaseTypeAndTypmod(typ, &mut typmod);
        let kind = pg_sys::get_typtype(base) as u8;
        let (mut category, mut preferred) = (0 as std::ffi::c_char, false);
        pg_sys::get_type_category_preferred(base, &mut category, &mut preferred);
        let opclass = pg_sys::GetDefaultOpClass(base, pg_sys::BTREE_AM_OID);
        if !matches!(kind, b'b' | b'e') || category as u8 == b'A' || opclass == pg_sys::InvalidOid {
            let typ = CStr::from_ptr(pg_sys::format_type_be(base)).to_string_lossy();
            FluentError::WhoCanKeyType {
                table: relation_text(table),
                column: column.to_owned(),
                typ: typ.into_owned(),
            }
            .report();
        }
        let input_type = pg_sys::get_opclass_input_type(opclass);
        let operator = pg_sys::get_opfamily_member(
            pg_sys::get_opclass_family(opclass),
            input_type,
            input_type,
            pg_sys::BTEqualStrategyNumber as i16,
        );
        let (mut input, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
        pg_sys::getTypeInputInfo(base, &mut input, &mut ioparam);
        let text = CString::new(row_key).unwrap_or_default();
        let datum = pg_sys::OidInputFunctionCall(input, text.as_ptr().cast_mut(), ioparam, typmod);
        Key {
            base,
            datum,
            equal: pg_sys::get_opcode(operator),
            collation,
        }
    }
}

/// Where a column is in one table and the output function that prints it.
struct Printed {
    attnum: i16,
    output: pg_sys::Oid,
}

impl Printed {
    fn of(rel: pg_sys::Oid, column: &str) -> Self {
        let attnum = attnum(rel, column);
        let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
        unsafe {
            pg_sys::getTypeOutputInfo(pg_sys::get_atttype(rel, attnum), &mut output, &mut varlena)
        };
        Printed { attnum, output }
    }

    /// The column of `tuple` as text, or None for NULL.
    unsafe fn text(&self, tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> Option<String> {
        let mut null = false;
        let datum = pg_sys::heap_getattr(tuple, self.attnum as i32, desc, &mut null);
        if null {
            return None;
        }
        let text = pg_sys::OidOutputFunctionCall(self.output, datum);
        Some(CStr::from_ptr(text).to_string_lossy().into_owned())
    }
}

/// The rows of the heap tables among `relations` whose columns equal the
/// keys (column, key), each as the text of the `columns` asked for (None
/// where no column is named, or the value is NULL).
fn matching_rows(
    relations: &[pg_sys::Oid],
    keys: &[(&str, &Key)],
    columns: &[Option<&str>],
) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    for &oid in relations {
        unsafe {
            let rel = pg_sys::table_open(oid, pg_sys::AccessShareLock as i32);
            // A partitioned table stores nothing: its partitions are listed.
            if (*(*rel).rd_rel).relkind as u8 == pg_sys::RELKIND_PARTITIONED_TABLE {
                pg_sys::table_close(rel, pg_sys::NoLock as i32);
                continue;
            }
            if (*(*rel).rd_rel).relam != pg_sys::HEAP_TABLE_AM_OID {
                FluentError::WhoCanNotHeap {
                    table: relation_text(oid),
                }
                .report();
            }
            let mut scan_keys: Vec<pg_sys::ScanKeyData> = Vec::with_capacity(keys.len());
            for &(column, key) in keys {
                let attnum = attnum(oid, column);
                let typ = pg_sys::get_atttype(oid, attnum);
                if pg_sys::getBaseType(typ) != key.base {
                    FluentError::WhoCanKeyType {
                        table: relation_text(oid),
                        column: column.to_owned(),
                        typ: CStr::from_ptr(pg_sys::format_type_be(typ))
                            .to_string_lossy()
                            .into_owned(),
                    }
                    .report();
                }
                let mut scan_key: pg_sys::ScanKeyData = std::mem::zeroed();
                pg_sys::ScanKeyEntryInitialize(
                    &mut scan_key,
                    0,
                    attnum,
                    pg_sys::BTEqualStrategyNumber as u16,
                    pg_sys::InvalidOid,
                    key.collation,
                    key.equal,
                    key.datum,
                );
                scan_keys.push(scan_key);
            }
            let printed: Vec<Option<Printed>> = columns
                .iter()
                .map(|c| c.map(|c| Printed::of(oid, c)))
                .collect();
            use pg_sys::ScanOptions::*;
            let scan = pg_sys::heap_beginscan(
                rel,
                pg_sys::GetActiveSnapshot(),
                scan_keys.len() as i32,
                scan_keys.as_mut_ptr(),
                std::ptr::null_mut(),
                SO_TYPE_SEQSCAN | SO_ALLOW_STRAT | SO_ALLOW_SYNC | SO_ALLOW_PAGEMODE,
            );
            loop {
                let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
                if tuple.is_null() {
                    break;
                }
                let desc = (*rel).rd_att;
                rows.push(
                    printed
                        .iter()
                        .map(|p| p.as_ref().and_then(|p| p.text(tuple, desc)))
                        .collect(),
                );
            }
            pg_sys::heap_endscan(scan);
            // The lock is kept to the end of the transaction, as a query's.
            pg_sys::table_close(rel, pg_sys::NoLock as i32);
        }
    }
    rows
}

/// The item roles that the assignment rows of `relations` (an assignment
/// table with its partitions and children) naming `name` in `column` give,
/// read as `read` reads rows: no code of the table's owner runs.
pub fn item_roles_naming(
    relations: &[pg_sys::Oid],
    column: &str,
    name: &str,
    role_column: &str,
) -> Vec<String> {
    let Some(&first) = relations.first() else {
        return Vec::new();
    };
    let key = parse_key(first, column, name);
    matching_rows(relations, &[(column, &key)], &[Some(role_column)])
        .into_iter()
        .filter_map(|mut row| row.pop().flatten())
        .collect()
}

/// Whether the table holds a row this transaction can see, read as `read`
/// reads rows: no code of the table's owner runs.
pub fn has_rows(table: pg_sys::Oid) -> bool {
    unsafe {
        let rel = pg_sys::table_open(table, pg_sys::AccessShareLock as i32);
        if (*(*rel).rd_rel).relam != pg_sys::HEAP_TABLE_AM_OID {
            pg_sys::table_close(rel, pg_sys::NoLock as i32);
            // Rows of another table access method cannot be told apart here:
            // count them as there.
            return true;
        }
        use pg_sys::ScanOptions::*;
        let scan = pg_sys::heap_beginscan(
            rel,
            pg_sys::GetActiveSnapshot(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            SO_TYPE_SEQSCAN | SO_ALLOW_PAGEMODE,
        );
        let found =
            !pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection).is_null();
        pg_sys::heap_endscan(scan);
        pg_sys::table_close(rel, pg_sys::NoLock as i32);
        found
    }
}

/// The one row found by the key, or the error saying there is none or more
/// than one (`in_workspace`: the workspace the caller is confined to).
pub fn only_row<T>(
    mut found: Vec<T>,
    table: pg_sys::Oid,
    key_column: &str,
    row_key: &str,
    in_workspace: Option<&str>,
) -> T {
    match found.len() {
        1 => found.remove(0),
        0 => FluentError::WhoCanNoRow {
            table: relation_text(table),
            column: key_column.to_owned(),
            key: row_key.to_owned(),
            workspace: in_workspace.map(str::to_owned),
        }
        .report(),
        rows => FluentError::WhoCanManyRows {
            table: relation_text(table),
            rows: rows as i64,
            column: key_column.to_owned(),
            key: row_key.to_owned(),
        }
        .report(),
    }
}

/// Parses `row_key` as `column` of `table` reads it, refusing a key type
/// whose input could run a user's code (as `read` does).
pub fn check_key(table: pg_sys::Oid, column: &str, row_key: &str) {
    parse_key(table, column, row_key);
}

/// The rows of `relations` (tables of the same columns) whose columns equal
/// the values of `keys` (column, value as text, compared as the column's
/// type compares them), each as the text of `columns` (None where no column
/// is named, or the value is NULL), read as `read` reads rows. No
/// relations: no rows.
pub fn keyed_rows(
    relations: &[pg_sys::Oid],
    keys: &[(&str, &str)],
    columns: &[Option<&str>],
) -> Vec<Vec<Option<String>>> {
    let Some(&first) = relations.first() else {
        return Vec::new();
    };
    let parsed: Vec<Key> = keys
        .iter()
        .map(|&(column, value)| parse_key(first, column, value))
        .collect();
    let keys: Vec<(&str, &Key)> = keys
        .iter()
        .zip(&parsed)
        .map(|(&(column, _), key)| (column, key))
        .collect();
    matching_rows(relations, &keys, columns)
}

/// An assignment from its row's user, team and role columns, read in that
/// order; none without a role.
pub fn assignment(mut row: Vec<Option<String>>) -> Option<Assignment> {
    let item_role = row.pop().flatten()?;
    let team = row.pop().flatten();
    let user = row.pop().flatten();
    Some(Assignment {
        user,
        team,
        item_role,
    })
}

/// The row of `table` keyed `row_key` (in `in_workspace` only, for a caller
/// confined to one) and the users assigned to it.
pub fn read(
    table: pg_sys::Oid,
    lookup: RowLookup,
    row_key: &str,
    in_workspace: Option<&str>,
) -> RowFacts {
    let key = parse_key(table, &lookup.key_column, row_key);
    let confined = in_workspace.filter(|_| lookup.workspace_column.is_some());
    let found: Vec<Vec<Option<String>>> = matching_rows(
        &lookup.relations,
        &[(&lookup.key_column, &key)],
        &[
            lookup.item_column.as_deref(),
            lookup.workspace_column.as_deref(),
            lookup.owner_column.as_deref(),
        ],
    )
    .into_iter()
    .filter(|row| confined.is_none() || row[1].as_deref() == confined)
    .collect();
    let (owner, workspace, item) = {
        let mut row = only_row(found, table, &lookup.key_column, row_key, confined);
        (
            row.pop().flatten(),
            row.pop().flatten(),
            row.pop().flatten(),
        )
    };
    let mut assignees: Vec<String> = match (
        &lookup.membership_row_column,
        &lookup.membership_user_column,
    ) {
        (Some(row_column), Some(user_column)) => matching_rows(
            &lookup.membership_relations,
            &[(row_column, &key)],
            &[Some(user_column)],
        )
        .into_iter()
        .filter_map(|mut row| row.pop().flatten())
        .collect(),
        _ => Vec::new(),
    };
    assignees.sort();
    assignees.dedup();
    // The item's assignments, found by the item's key as the assignment
    // table's row column reads it (the row's own key, or its parent's).
    let assignments = match (
        item,
        &lookup.assignment_row_column,
        &lookup.assignment_role_column,
        lookup.assignment_relations.first(),
    ) {
        (Some(item), Some(row_column), Some(role_column), Some(&assignment_table)) => {
            let item_key = parse_key(assignment_table, row_column, &item);
            matching_rows(
                &lookup.assignment_relations,
                &[(row_column, &item_key)],
                &[
                    lookup.assignment_user_column.as_deref(),
                    lookup.assignment_team_column.as_deref(),
                    Some(role_column),
                ],
            )
            .into_iter()
            .filter_map(assignment)
            .collect()
        }
        _ => Vec::new(),
    };
    RowFacts {
        module: lookup.module,
        owner,
        workspace: lookup.workspace_column.is_some().then_some(workspace),
        assignees,
        item_module: lookup.item_module,
        assignments,
    }
}
