//! DDL per backend from the [`TableDef`]s: pure functions returning SQL text. Every identifier is
//! quoted with `"` (inner quotes doubled) in every statement, so SQL keywords (`order`, `user`),
//! mixed case and non-ASCII names are all safe on SQLite and PostgreSQL alike. Each statement
//! that changes the schema has a `down` counterpart that reverts it.

use super::schema::{Backend, ColumnDef, IndexDef, TableDef};
use crate::naming;

/// `"name"` with inner `"` doubled.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A comma-separated list of quoted identifiers.
pub fn quote_list(idents: &[String]) -> String {
    idents
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The column's SQL type on a backend.
pub fn column_type(c: &ColumnDef, backend: Backend) -> &str {
    match backend {
        Backend::Sqlite => &c.sqlite_type,
        Backend::Postgres => &c.postgres_type,
    }
}

/// Name of a table's primary-key constraint (named, so a key change can drop it by name).
pub fn primary_key_name(table: &str) -> String {
    naming::shorten_sql(&format!("{table}_pkey"), &format!("{table}/pkey"))
}

fn column_line(c: &ColumnDef, backend: Backend, allow_not_null: bool) -> String {
    let mut s = format!("{} {}", quote(&c.name), column_type(c, backend));
    if allow_not_null && !c.nullable {
        s.push_str(" NOT NULL");
    }
    s
}

/// `CREATE TABLE` with every column (NOT NULL where the column is not nullable) and the primary
/// key when the table has one. Indexes are separate statements ([`create_index`]).
pub fn create_table(t: &TableDef, backend: Backend) -> String {
    create_table_named(t, &t.name, backend)
}

fn create_table_named(t: &TableDef, name: &str, backend: Backend) -> String {
    let mut lines: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("    {}", column_line(c, backend, true)))
        .collect();
    if !t.primary_key.is_empty() {
        lines.push(format!(
            "    CONSTRAINT {} PRIMARY KEY ({})",
            quote(&primary_key_name(&t.name)),
            quote_list(&t.primary_key)
        ));
    }
    format!("CREATE TABLE {} (\n{}\n);", quote(name), lines.join(",\n"))
}

/// `DROP TABLE`: the down counterpart of [`create_table`].
pub fn drop_table(table: &str, _backend: Backend) -> String {
    format!("DROP TABLE {};", quote(table))
}

/// `CREATE INDEX` on a table.
pub fn create_index(table: &str, idx: &IndexDef, _backend: Backend) -> String {
    format!(
        "CREATE INDEX {} ON {} ({});",
        quote(&idx.name),
        quote(table),
        quote_list(&idx.columns)
    )
}

/// `DROP INDEX`: the down counterpart of [`create_index`].
pub fn drop_index(idx: &IndexDef, _backend: Backend) -> String {
    format!("DROP INDEX {};", quote(&idx.name))
}

/// `ALTER TABLE … ADD COLUMN`, always nullable (existing rows have no value).
pub fn add_column(table: &str, c: &ColumnDef, backend: Backend) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {};",
        quote(table),
        column_line(c, backend, false)
    )
}

/// `ALTER TABLE … DROP COLUMN`: the down counterpart of [`add_column`] (SQLite ≥ 3.35).
pub fn drop_column(table: &str, column: &str, _backend: Backend) -> String {
    format!(
        "ALTER TABLE {} DROP COLUMN {};",
        quote(table),
        quote(column)
    )
}

/// A table with its indexes: the statements that create it, and (reversed order) drop it.
pub fn create_table_with_indexes(t: &TableDef, backend: Backend) -> (Vec<String>, Vec<String>) {
    let mut up = vec![create_table(t, backend)];
    up.extend(t.indexes.iter().map(|i| create_index(&t.name, i, backend)));
    (up, vec![drop_table(&t.name, backend)])
}

/// PostgreSQL: change a column's type (and nullability) in place, converting with `USING`.
/// Returns (up, down).
pub fn pg_alter_column(
    table: &str,
    old: &ColumnDef,
    new: &ColumnDef,
) -> (Vec<String>, Vec<String>) {
    let stmts = |from: &ColumnDef, to: &ColumnDef| {
        let mut v = Vec::new();
        if from.postgres_type != to.postgres_type {
            v.push(format!(
                "ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{};",
                quote(table),
                quote(&to.name),
                to.postgres_type,
                quote(&to.name),
                to.postgres_type
            ));
        }
        if from.nullable != to.nullable {
            v.push(format!(
                "ALTER TABLE {} ALTER COLUMN {} {} NOT NULL;",
                quote(table),
                quote(&to.name),
                if to.nullable { "DROP" } else { "SET" }
            ));
        }
        v
    };
    (stmts(old, new), stmts(new, old))
}

/// PostgreSQL: replace the primary key. Returns (up, down).
pub fn pg_change_key(old: &TableDef, new: &TableDef) -> (Vec<String>, Vec<String>) {
    let stmts = |from: &TableDef, to: &TableDef| {
        let mut v = Vec::new();
        let name = quote(&primary_key_name(&to.name));
        if !from.primary_key.is_empty() {
            v.push(format!(
                "ALTER TABLE {} DROP CONSTRAINT {name};",
                quote(&to.name)
            ));
        }
        if !to.primary_key.is_empty() {
            v.push(format!(
                "ALTER TABLE {} ADD CONSTRAINT {name} PRIMARY KEY ({});",
                quote(&to.name),
                quote_list(&to.primary_key)
            ));
        }
        v
    };
    (stmts(old, new), stmts(new, old))
}

/// SQLite cannot change a column's type or a table's key in place: the table is rebuilt (create
/// the new definition under a temporary name, copy the columns both definitions have, drop the
/// old table, rename, recreate the indexes). Returns (up, down); down rebuilds the old definition.
pub fn sqlite_rebuild(old: &TableDef, new: &TableDef) -> (Vec<String>, Vec<String>) {
    (rebuild(old, new), rebuild(new, old))
}

fn rebuild(from: &TableDef, to: &TableDef) -> Vec<String> {
    let tmp = format!("{}__odatagen_new", to.name);
    let common: Vec<String> = to
        .columns
        .iter()
        .filter(|c| from.columns.iter().any(|o| o.name == c.name))
        .map(|c| c.name.clone())
        .collect();
    let mut v = vec![create_table_named(to, &tmp, Backend::Sqlite)];
    v.push(format!(
        "INSERT INTO {} ({cols}) SELECT {cols} FROM {};",
        quote(&tmp),
        quote(&from.name),
        cols = quote_list(&common)
    ));
    v.push(drop_table(&from.name, Backend::Sqlite));
    v.push(format!(
        "ALTER TABLE {} RENAME TO {};",
        quote(&tmp),
        quote(&to.name)
    ));
    v.extend(
        to.indexes
            .iter()
            .map(|i| create_index(&to.name, i, Backend::Sqlite)),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::schema::{ColumnKind, SqlTypes};

    fn col(name: &str, kind: ColumnKind, nullable: bool) -> ColumnDef {
        ColumnDef {
            wire_name: Some(name.into()),
            ..ColumnDef::system(&SqlTypes::default(), name, kind, nullable, "")
        }
    }

    fn table(name: &str, cols: Vec<ColumnDef>, pk: &[&str]) -> TableDef {
        TableDef {
            name: name.into(),
            entity: name.into(),
            entity_set: name.into(),
            entity_type: format!("NS.{name}"),
            rust_type: name.into(),
            division: false,
            columns: cols,
            primary_key: pk.iter().map(|s| s.to_string()).collect(),
            indexes: vec![IndexDef {
                name: format!("{name}_idx"),
                columns: vec!["group".into()],
            }],
        }
    }

    #[test]
    fn quotes_keywords_and_inner_quotes() {
        assert_eq!(quote("order"), "\"order\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote("\""), "\"\"\"\"");
    }

    #[test]
    fn create_table_quotes_everything() {
        let t = table(
            "order",
            vec![
                col("key", ColumnKind::Int32, false),
                col("group", ColumnKind::Text, true),
                col("user", ColumnKind::Decimal, true),
                col("a\"b", ColumnKind::Bool, true),
            ],
            &["key"],
        );
        let sqlite = create_table(&t, Backend::Sqlite);
        assert_eq!(
            sqlite,
            "CREATE TABLE \"order\" (\n    \"key\" INTEGER NOT NULL,\n    \"group\" TEXT,\n    \"user\" TEXT,\n    \"a\"\"b\" INTEGER,\n    CONSTRAINT \"order_pkey\" PRIMARY KEY (\"key\")\n);"
        );
        let pg = create_table(&t, Backend::Postgres);
        assert!(pg.contains("\"user\" NUMERIC,"), "{pg}");
        assert!(pg.contains("\"a\"\"b\" BOOLEAN,"), "{pg}");
        assert_eq!(
            create_index("order", &t.indexes[0], Backend::Postgres),
            "CREATE INDEX \"order_idx\" ON \"order\" (\"group\");"
        );
        assert_eq!(
            drop_index(&t.indexes[0], Backend::Sqlite),
            "DROP INDEX \"order_idx\";"
        );
        assert_eq!(
            drop_table("order", Backend::Sqlite),
            "DROP TABLE \"order\";"
        );
    }

    #[test]
    fn keyless_tables_have_no_primary_key() {
        let t = table("t", vec![col("a", ColumnKind::Text, true)], &[]);
        assert!(!create_table(&t, Backend::Sqlite).contains("PRIMARY KEY"));
    }

    #[test]
    fn add_column_is_always_nullable() {
        let c = col("select", ColumnKind::Int64, false);
        assert_eq!(
            add_column("group", &c, Backend::Postgres),
            "ALTER TABLE \"group\" ADD COLUMN \"select\" BIGINT;"
        );
        assert_eq!(
            drop_column("group", "select", Backend::Sqlite),
            "ALTER TABLE \"group\" DROP COLUMN \"select\";"
        );
    }

    #[test]
    fn cyrillic_63_byte_names() {
        // 31 Cyrillic letters (2 bytes each) + "_" = 63 bytes: PostgreSQL's limit exactly.
        let name = format!("{}_", "я".repeat(31));
        assert_eq!(name.len(), 63);
        let t = table(&name, vec![col(&name, ColumnKind::Text, false)], &[&name]);
        let sql = create_table(&t, Backend::Postgres);
        assert!(sql.starts_with(&format!("CREATE TABLE \"{name}\" (")));
        assert!(primary_key_name(&name).len() <= 63);
        assert!(primary_key_name(&name).is_char_boundary(primary_key_name(&name).len()));
    }

    #[test]
    fn rebuild_copies_common_columns() {
        let old = table(
            "t",
            vec![
                col("id", ColumnKind::Int32, false),
                col("group", ColumnKind::Int32, true),
            ],
            &["id"],
        );
        let mut new = old.clone();
        new.columns[1] = col("group", ColumnKind::Text, true);
        new.columns.push(col("x", ColumnKind::Text, true));
        let (up, down) = sqlite_rebuild(&old, &new);
        assert_eq!(
            up[1],
            "INSERT INTO \"t__odatagen_new\" (\"id\", \"group\") SELECT \"id\", \"group\" FROM \"t\";"
        );
        assert_eq!(up[3], "ALTER TABLE \"t__odatagen_new\" RENAME TO \"t\";");
        assert_eq!(up[4], "CREATE INDEX \"t_idx\" ON \"t\" (\"group\");");
        assert!(down[0].contains("\"group\" INTEGER"));
        let (up, down) = pg_alter_column("t", &old.columns[1], &new.columns[1]);
        assert_eq!(
            up,
            vec!["ALTER TABLE \"t\" ALTER COLUMN \"group\" TYPE TEXT USING \"group\"::TEXT;"]
        );
        assert_eq!(
            down,
            vec!["ALTER TABLE \"t\" ALTER COLUMN \"group\" TYPE INTEGER USING \"group\"::INTEGER;"]
        );
    }
}
