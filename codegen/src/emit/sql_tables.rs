//! The service's tables as Rust constants for the runtime (`odata_runtime::TableInfo`), with the
//! parameter-bound SQL of each table written out once here:
//!
//! * `pub const TABLES: &[::odata_runtime::TableInfo]` — one per table, sorted by table name;
//! * `impl ::odata_runtime::Table for <Entity>` — the table of the entity type's first entity set
//!   (the set its `Entity::ENTITY_SET` names);
//! * `pub fn visit_tables(&mut impl ::odata_runtime::TableVisitor)` — every table with its
//!   entity type, for code that works on all tables generically (tests, initial loads).
//!
//! The SQL: every identifier quoted; `?` parameters for SQLite and `$n` for PostgreSQL (decimals
//! are bound as exact text and cast `::NUMERIC`, and read back as `::text`). A batch of N rows is
//! `insert_head` + N parameter groups + `upsert_tail`, so the runtime assembles it without
//! parsing SQL. The upsert updates every non-key column (and `synced_at`) and resets
//! `deleted_at` to NULL; keyless tables get a plain INSERT.

use super::rust::Layout;
use crate::model::Model;
use crate::sql::schema::{ColumnDef, ColumnKind, TableDef, DIVISION_COLUMN};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `"name"` with inner `"` doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The cast after a PostgreSQL bind parameter of this kind.
pub fn pg_cast(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Decimal => "::NUMERIC",
        _ => "",
    }
}

/// The generated SQL of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSql {
    pub insert_head: String,
    pub values_sqlite: String,
    pub values_postgres: String,
    pub upsert_tail: String,
    pub upsert_sqlite: String,
    pub upsert_postgres: String,
    pub select_sqlite: String,
    pub select_postgres: String,
}

fn insert_columns(t: &TableDef) -> impl Iterator<Item = &ColumnDef> {
    t.columns.iter().filter(|c| c.kind != ColumnKind::DeletedAt)
}

/// The SQL text of a table.
pub fn table_sql(t: &TableDef) -> TableSql {
    let table = quote_ident(&t.name);
    let cols: Vec<&ColumnDef> = insert_columns(t).collect();
    let names: Vec<String> = cols.iter().map(|c| quote_ident(&c.name)).collect();
    let insert_head = format!("INSERT INTO {table} ({}) VALUES ", names.join(", "));
    let values_sqlite = format!("({})", vec!["?"; cols.len()].join(", "));
    let values_postgres = format!(
        "({})",
        cols.iter()
            .enumerate()
            .map(|(i, c)| format!("${}{}", i + 1, pg_cast(c.kind)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let upsert_tail = if t.primary_key.is_empty() {
        String::new()
    } else {
        let pk: Vec<String> = t.primary_key.iter().map(|k| quote_ident(k)).collect();
        let mut sets: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !t.primary_key.contains(&c.name))
            .map(|c| {
                let q = quote_ident(&c.name);
                if c.kind == ColumnKind::DeletedAt {
                    format!("{q} = NULL")
                } else {
                    format!("{q} = excluded.{q}")
                }
            })
            .collect();
        if sets.is_empty() {
            // Only key columns: nothing to update, but the conflict must not fail.
            sets.push(format!("{} = excluded.{}", pk[0], pk[0]));
        }
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            pk.join(", "),
            sets.join(", ")
        )
    };
    let all: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let select_sqlite = format!("SELECT {} FROM {table}", all.join(", "));
    let select_postgres = format!(
        "SELECT {} FROM {table}",
        t.columns
            .iter()
            .map(|c| {
                let q = quote_ident(&c.name);
                if c.kind == ColumnKind::Decimal {
                    format!("{q}::text AS {q}")
                } else {
                    q
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    TableSql {
        upsert_sqlite: format!("{insert_head}{values_sqlite}{upsert_tail}"),
        upsert_postgres: format!("{insert_head}{values_postgres}{upsert_tail}"),
        insert_head,
        values_sqlite,
        values_postgres,
        upsert_tail,
        select_sqlite,
        select_postgres,
    }
}

/// The entity property stored in a system column: the entity's own `Division` property for the
/// `division` column.
fn system_wire_name(model: &Model, t: &TableDef, c: &ColumnDef) -> Option<String> {
    if c.kind != ColumnKind::Division || c.name != DIVISION_COLUMN {
        return None;
    }
    let s = model.types.get(&t.entity_type)?.as_struct()?;
    s.properties
        .iter()
        .find(|p| p.sql_name == DIVISION_COLUMN && !p.ty.is_collection() && !p.ty.is_stream())
        .map(|p| p.wire_name.clone())
}

fn table_info(model: &Model, t: &TableDef) -> TokenStream {
    let sql = table_sql(t);
    let columns = t.columns.iter().map(|c| {
        let name = &c.name;
        let wire = match c.wire_name.clone().or_else(|| system_wire_name(model, t, c)) {
            Some(w) => quote! { ::std::option::Option::Some(#w) },
            None => quote! { ::std::option::Option::None },
        };
        let kind = format_ident!("{}", c.kind.as_str());
        let nullable = c.nullable;
        let cast = pg_cast(c.kind);
        quote! {
            ::odata_runtime::ColumnInfo { name: #name, wire_name: #wire, kind: ::odata_runtime::ColumnKind::#kind, nullable: #nullable, pg_cast: #cast }
        }
    });
    let name = &t.name;
    let entity = &t.entity;
    let entity_set = &t.entity_set;
    let entity_type = &t.entity_type;
    let division = t.division;
    let pk = t.primary_key.iter();
    let TableSql {
        insert_head,
        values_sqlite,
        upsert_tail,
        upsert_sqlite,
        upsert_postgres,
        select_sqlite,
        select_postgres,
        ..
    } = sql;
    quote! {
        ::odata_runtime::TableInfo {
            name: #name,
            entity: #entity,
            entity_set: #entity_set,
            entity_type: #entity_type,
            division: #division,
            columns: &[ #(#columns),* ],
            primary_key: &[ #(#pk),* ],
            upsert_sqlite: #upsert_sqlite,
            upsert_postgres: #upsert_postgres,
            insert_head: #insert_head,
            values_sqlite: #values_sqlite,
            upsert_tail: #upsert_tail,
            select_sqlite: #select_sqlite,
            select_postgres: #select_postgres,
        }
    }
}

/// The Rust path of a table's entity type, when it has an `Entity` implementation.
fn entity_path(model: &Model, layout: &Layout, t: &TableDef) -> Option<TokenStream> {
    let ty = model.types.get(&t.entity_type)?;
    if !ty.is_entity() || model.sets_of(&t.entity_type).is_empty() {
        return None;
    }
    let root: syn::Path = syn::parse_str(&layout.root).ok()?;
    let id = super::rust::ident(&ty.rust_name);
    Some(quote! { #root::#id })
}

/// `TABLES`, the `Table` implementations and `visit_tables` for a service module.
pub fn emit_tables(model: &Model, layout: &Layout, tables: &[TableDef]) -> TokenStream {
    let infos = tables.iter().map(|t| table_info(model, t));
    let root: TokenStream = syn::parse_str::<syn::Path>(&layout.root)
        .map(|p| quote! { #p })
        .unwrap_or_else(|_| quote! { crate });
    let mut impls = Vec::new();
    let mut visits = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let Some(path) = entity_path(model, layout, t) else {
            continue;
        };
        let first_set = model
            .sets_of(&t.entity_type)
            .first()
            .map(|s| s.wire_name.clone());
        if first_set.as_deref() == Some(t.entity_set.as_str()) {
            let doc = format!(" Table `{}`.", t.name);
            impls.push(quote! {
                #[doc = #doc]
                impl ::odata_runtime::Table for #path {
                    const TABLE: &'static ::odata_runtime::TableInfo = &#root::TABLES[#i];
                }
            });
        }
        visits.push(quote! { visitor.visit::<#path>(&#root::TABLES[#i]); });
    }
    let count = tables.len();
    let doc = format!(
        " The {count} tables of this service (sorted by name): columns, primary key and the SQL the runtime binds."
    );
    quote! {
        #[doc = #doc]
        pub const TABLES: &[::odata_runtime::TableInfo] = &[ #(#infos),* ];
        #(#impls)*
        /// Calls `visitor` once per table of [`TABLES`], with the table's entity type.
        pub fn visit_tables<V: ::odata_runtime::TableVisitor>(visitor: &mut V) {
            let _ = &visitor;
            #(#visits)*
        }
    }
}

/// [`emit_tables`] as formatted Rust source.
pub fn tables_source(
    model: &Model,
    layout: &Layout,
    tables: &[TableDef],
) -> Result<String, super::rust::EmitError> {
    let file: syn::File = syn::parse2(emit_tables(model, layout, tables)).map_err(|e| {
        super::rust::EmitError::Unparsable {
            what: "tables".into(),
            message: e.to_string(),
        }
    })?;
    Ok(prettyplease::unparse(&file))
}
