//! diesel schema and row types for the service's tables, per backend:
//!
//! ```text
//! #[cfg(feature = "diesel-sqlite")]   pub mod diesel_sqlite { pub mod schema { table!… } pub struct <Table>Row … }
//! #[cfg(feature = "diesel-postgres")] pub mod diesel_pg     { … }
//! ```
//!
//! Each backend module has `schema` (one `diesel::table!` per table, with `#[sql_name]` where the
//! Rust name differs, and `allow_tables_to_appear_in_same_query!`), a row struct per table
//! (`Queryable`, `Selectable`, `Insertable`, `AsChangeset`, with `primary_key`) in the types the
//! runtime stores (SQLite: text for decimals, dates, uuids and JSON; PostgreSQL: `BigDecimal`,
//! chrono, `Uuid`, `serde_json::Value`) and, at the crate root, `<service>_diesel_sqlite_tables!`
//! / `<service>_diesel_pg_tables!`: callback macros calling `$m!(path::to::table, path::to::Row, "table_name")`
//! for every table, for code that works on all tables generically.
//!
//! **Column rule**: diesel's `table!` supports at most 64 columns with the feature
//! `64-column-tables` (which the generated crate enables); 128 would cover more of Exact
//! (22 of its 25 tables instead of 10) at a large compile-time cost, and Exact's widest tables
//! (Accounts: 151) fit neither. So diesel code is emitted for tables with at most
//! [`DIESEL_MAX_COLUMNS`] columns and a primary key; the others are listed in the module's doc
//! comment (and by [`skipped`], for a build warning) and are served by the sqlx runtime only.

use super::rust::Layout;
use crate::model::Model;
use crate::naming;
use crate::sql::schema::{ColumnDef, ColumnKind, TableDef};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::collections::BTreeSet;

/// The most columns a diesel table may have here (diesel feature `64-column-tables`).
pub const DIESEL_MAX_COLUMNS: usize = 64;

/// Names the `table!` macro defines inside a table's module: a column cannot take them.
const RESERVED: &[&str] = &[
    "table",
    "star",
    "all_columns",
    "columns",
    "dsl",
    "SqlType",
    "BoxedQuery",
    "is_nullable",
    "helper_types",
];

/// Why a table has no diesel code, or `None` when it has.
pub fn skip_reason(t: &TableDef) -> Option<String> {
    if t.columns.len() > DIESEL_MAX_COLUMNS {
        Some(format!(
            "{} columns (diesel: at most {DIESEL_MAX_COLUMNS})",
            t.columns.len()
        ))
    } else if t.primary_key.is_empty() {
        Some("no primary key (diesel tables need one)".into())
    } else {
        None
    }
}

/// Tables without diesel code, with the reason: for the module docs and a build warning.
pub fn skipped(tables: &[TableDef]) -> Vec<(String, String)> {
    tables
        .iter()
        .filter_map(|t| skip_reason(t).map(|r| (t.name.clone(), r)))
        .collect()
}

/// A Rust identifier for a SQL name: the name itself when it is a plain identifier, otherwise
/// its identifier characters plus `_`.
fn rust_name(sql: &str, avoid: &[&str]) -> String {
    if naming::is_valid_ident(sql) && !sql.starts_with("r#") && !avoid.contains(&sql) {
        return sql.to_string();
    }
    let mut s: String = sql
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_numeric()) {
        s.insert(0, '_');
    }
    s.push('_');
    s
}

fn camel(sql: &str) -> String {
    let mut out = String::new();
    for part in sql.split('_').filter(|p| !p.is_empty()) {
        let mut cs = part.chars();
        if let Some(f) = cs.next() {
            out.extend(f.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    if out.is_empty() || !naming::is_valid_ident(&out) {
        out = format!("T{}", rust_name(sql, &[]).trim_matches('_'));
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Be {
    Sqlite,
    Pg,
}

/// (diesel SQL type, Rust type) of a column.
fn types(kind: ColumnKind, be: Be) -> (TokenStream, TokenStream) {
    use ColumnKind::*;
    let text = (
        quote! { ::diesel::sql_types::Text },
        quote! { ::std::string::String },
    );
    match (kind, be) {
        (Bool, _) => (quote! { ::diesel::sql_types::Bool }, quote! { bool }),
        (Int16, _) => (quote! { ::diesel::sql_types::SmallInt }, quote! { i16 }),
        (Int32 | Division, _) => (quote! { ::diesel::sql_types::Integer }, quote! { i32 }),
        (Int64, _) => (quote! { ::diesel::sql_types::BigInt }, quote! { i64 }),
        (Float32, _) => (quote! { ::diesel::sql_types::Float }, quote! { f32 }),
        (Float64, _) => (quote! { ::diesel::sql_types::Double }, quote! { f64 }),
        (Bytes, _) => (
            quote! { ::diesel::sql_types::Binary },
            quote! { ::std::vec::Vec<u8> },
        ),
        (_, Be::Sqlite) => text,
        (Decimal, Be::Pg) => (
            quote! { ::diesel::sql_types::Numeric },
            quote! { ::bigdecimal::BigDecimal },
        ),
        (Date, Be::Pg) => (
            quote! { ::diesel::sql_types::Date },
            quote! { ::chrono::NaiveDate },
        ),
        (DateTime, Be::Pg) => (
            quote! { ::diesel::sql_types::Timestamp },
            quote! { ::chrono::NaiveDateTime },
        ),
        (DateTimeOffset | SyncedAt | DeletedAt, Be::Pg) => (
            quote! { ::diesel::sql_types::Timestamptz },
            quote! { ::chrono::DateTime<::chrono::Utc> },
        ),
        (Time, Be::Pg) => (
            quote! { ::diesel::sql_types::Time },
            quote! { ::chrono::NaiveTime },
        ),
        (Uuid, Be::Pg) => (
            quote! { ::diesel::sql_types::Uuid },
            quote! { ::uuid::Uuid },
        ),
        (Json, Be::Pg) => (
            quote! { ::diesel::sql_types::Jsonb },
            quote! { ::serde_json::Value },
        ),
        (Text | Enum | Duration, Be::Pg) => text,
    }
}

/// The default SQL type of a kind on a backend: a column whose type was overridden in
/// `service.toml` gets no diesel code (its storage is not what the row type expects).
fn default_type_matches(c: &ColumnDef, be: Be) -> bool {
    let d = crate::sql::SqlTypes::default();
    match be {
        Be::Sqlite => d.sqlite.get(&c.kind) == Some(&c.sqlite_type),
        Be::Pg => {
            d.postgres.get(&c.kind) == Some(&c.postgres_type)
                || (c.kind == ColumnKind::Decimal && c.postgres_type.starts_with("NUMERIC"))
        }
    }
}

fn backend_module(tables: &[TableDef], be: Be, root: &str) -> TokenStream {
    let mut schema_items = Vec::new();
    let mut table_idents = Vec::new();
    let mut rows = Vec::new();
    let mut each = Vec::new();
    let mut skipped_lines = Vec::new();
    let (name, backend) = match be {
        Be::Sqlite => ("diesel_sqlite", "SQLite"),
        Be::Pg => ("diesel_pg", "PostgreSQL"),
    };
    // `$crate::<service>::diesel_…`: macro_rules paths resolve at the call site.
    let mut segs: Vec<TokenStream> = vec![quote! { $crate }];
    for seg in root.split("::").skip(1) {
        let id = format_ident!("{}", seg);
        segs.push(quote! { #id });
    }
    let mid_for_path = format_ident!("{}", name);
    let module_path = quote! { #(#segs)::* :: #mid_for_path };
    let mut used_tables = BTreeSet::new();
    let mut used_rows = BTreeSet::new();
    for t in tables {
        if let Some(r) = skip_reason(t) {
            skipped_lines.push(format!(" - `{}`: {r}", t.name));
            continue;
        }
        if let Some(c) = t.columns.iter().find(|c| !default_type_matches(c, be)) {
            skipped_lines.push(format!(
                " - `{}`: column `{}` has an overridden SQL type",
                t.name, c.name
            ));
            continue;
        }
        let tname = rust_name(&t.name, &[]);
        let row_name = format!("{}Row", camel(&t.name));
        if !used_tables.insert(tname.clone()) || !used_rows.insert(row_name.clone()) {
            skipped_lines.push(format!(" - `{}`: its Rust name is taken", t.name));
            continue;
        }
        let mut avoid: Vec<&str> = RESERVED.to_vec();
        avoid.push(&tname);
        let col_names: Vec<String> = t
            .columns
            .iter()
            .map(|c| rust_name(&c.name, &avoid))
            .collect();
        let unique: BTreeSet<&String> = col_names.iter().collect();
        if unique.len() != col_names.len() {
            skipped_lines.push(format!(" - `{}`: column names collide in Rust", t.name));
            continue;
        }
        let tid = format_ident!("{}", tname);
        let rid = format_ident!("{}", row_name);
        let mut cols = Vec::new();
        let mut fields = Vec::new();
        for (c, n) in t.columns.iter().zip(&col_names) {
            let cid = format_ident!("{}", n);
            let (st, rt) = types(c.kind, be);
            let (st, rt) = if c.nullable {
                (
                    quote! { ::diesel::sql_types::Nullable<#st> },
                    quote! { ::std::option::Option<#rt> },
                )
            } else {
                (st, rt)
            };
            let rename = if *n != c.name {
                let s = &c.name;
                quote! { #[sql_name = #s] }
            } else {
                quote! {}
            };
            cols.push(quote! { #rename #cid -> #st, });
            let doc = format!(" `{}`", c.name);
            fields.push(quote! { #[doc = #doc] pub #cid: #rt, });
        }
        let pk: Vec<syn::Ident> = t
            .primary_key
            .iter()
            .filter_map(|k| t.columns.iter().position(|c| &c.name == k))
            .map(|i| format_ident!("{}", col_names[i]))
            .collect();
        let table_rename = if tname != t.name {
            let s = &t.name;
            quote! { #[sql_name = #s] }
        } else {
            quote! {}
        };
        let tdoc = format!(" Table `{}` (entity set `{}`).", t.name, t.entity_set);
        schema_items.push(quote! {
            ::diesel::table! {
                #[doc = #tdoc]
                #table_rename
                #tid (#(#pk),*) {
                    #(#cols)*
                }
            }
        });
        table_idents.push(tid.clone());
        let check = match be {
            Be::Sqlite => quote! { ::diesel::sqlite::Sqlite },
            Be::Pg => quote! { ::diesel::pg::Pg },
        };
        let rdoc = format!(" A row of `{}`.", t.name);
        rows.push(quote! {
            #[doc = #rdoc]
            #[derive(::std::fmt::Debug, ::std::clone::Clone, ::std::cmp::PartialEq, ::std::default::Default,
                ::diesel::Queryable, ::diesel::Selectable, ::diesel::Insertable, ::diesel::AsChangeset)]
            #[diesel(table_name = self::schema::#tid)]
            #[diesel(primary_key(#(#pk),*))]
            #[diesel(check_for_backend(#check))]
            pub struct #rid {
                #(#fields)*
            }
        });
        let sql_name = &t.name;
        each.push(
            quote! { $m!(#module_path::schema::#tid::table, #module_path::#rid, #sql_name); },
        );
    }
    let allow = if table_idents.len() >= 2 {
        quote! { ::diesel::allow_tables_to_appear_in_same_query!(#(#table_idents),*); }
    } else {
        quote! {}
    };
    let mut docs = vec![format!(
        " diesel schema and row types for {backend} ({} of {} tables; tables of at most {DIESEL_MAX_COLUMNS} columns with a primary key).",
        table_idents.len(),
        tables.len()
    )];
    if !skipped_lines.is_empty() {
        docs.push(String::new());
        docs.push(
            " Tables without diesel code (use the sqlx runtime, `odata_runtime::sql`):".into(),
        );
        docs.extend(skipped_lines);
    }
    let mid = format_ident!("{}", name);
    let feature = match be {
        Be::Sqlite => "diesel-sqlite",
        Be::Pg => "diesel-postgres",
    };
    // Exported at the crate root: `<service>_diesel_sqlite_tables!` (`tables_…` in a
    // standalone crate).
    let service = root
        .rsplit("::")
        .next()
        .filter(|s| *s != "crate")
        .unwrap_or("odata");
    let mac = format_ident!("{}_{}_tables", service, name);
    quote! {
        #( #[doc = #docs] )*
        #[cfg(feature = #feature)]
        pub mod #mid {
            /// `diesel::table!` per table.
            pub mod schema {
                #(#schema_items)*
                #allow
            }
            #(#rows)*
            /// Calls `$m!(table, Row, "sql_name")` (absolute paths) for every table of this module.
            #[macro_export]
            macro_rules! #mac {
                ($m:ident) => { #(#each)* };
            }
        }
    }
}

/// The diesel modules of a service (both backends, each behind its cargo feature).
pub fn emit_diesel(_model: &Model, layout: &Layout, tables: &[TableDef]) -> TokenStream {
    if tables.is_empty() {
        return quote! {};
    }
    let sqlite = backend_module(tables, Be::Sqlite, &layout.root);
    let pg = backend_module(tables, Be::Pg, &layout.root);
    quote! { #sqlite #pg }
}

/// [`emit_diesel`] as formatted Rust source.
pub fn diesel_source(
    model: &Model,
    layout: &Layout,
    tables: &[TableDef],
) -> Result<String, super::rust::EmitError> {
    let file: syn::File = syn::parse2(emit_diesel(model, layout, tables)).map_err(|e| {
        super::rust::EmitError::Unparsable {
            what: "diesel".into(),
            message: e.to_string(),
        }
    })?;
    Ok(prettyplease::unparse(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_names_avoid_keywords_and_reserved_names() {
        assert_eq!(rust_name("order_id", RESERVED), "order_id");
        assert_eq!(rust_name("type", RESERVED), "type_");
        assert_eq!(rust_name("self", RESERVED), "self_");
        assert_eq!(rust_name("table", RESERVED), "table_");
        assert_eq!(rust_name("2x", RESERVED), "_2x_");
        assert_eq!(camel("exact_gl_accounts"), "ExactGlAccounts");
    }
}
