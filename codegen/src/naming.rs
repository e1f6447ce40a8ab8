//! The one naming pipeline. Every Rust and SQL name in the model is decided here, once, in this
//! order (see `shared/design/style.md`):
//!
//! 1. heck case conversion (`UpperCamelCase` for types and variants, `snake_case` for fields,
//!    modules and SQL);
//! 2. characters that cannot appear in an identifier become `_` (Unicode XID rules, so Cyrillic
//!    letters stay: Rust identifiers may be non-ASCII since 1.53, and 1C developers read them);
//! 3. a leading digit gets a `_` prefix;
//! 4. Rust keywords: raw identifiers (`r#type`), or a `_` suffix for `self`, `Self`, `super`,
//!    `crate` which have no raw form;
//! 5. names the generated code itself uses are reserved per scope;
//! 6. uniqueness of every derived name in its scope, resolved deterministically: the members of a
//!    collision group are ordered by their wire name (byte order), the first keeps the name and the
//!    others get `_2`, `_3`, … — independent of document order, so adding an unrelated type never
//!    renames an existing one. Every such decision is reported as a warning naming both originals
//!    and their positions;
//! 7. SQL: lower-case snake_case, compared case-insensitively (SQLite folds case even in quoted
//!    identifiers), at most 63 bytes (PostgreSQL's limit), shortened with a hash of the original
//!    name, and checked for collisions after shortening.

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::source::Pos;
use heck::{ToSnakeCase, ToUpperCamelCase};
use std::collections::{BTreeMap, BTreeSet};

/// PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1).
pub const PG_MAX_IDENT_BYTES: usize = 63;

/// Keywords that can be used as raw identifiers (`r#type`).
const RAW_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

/// Keywords that have no raw form.
const NON_RAW_KEYWORDS: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Replaces what cannot be part of an identifier by `_` (step 2).
fn replace_non_ident(s: &str) -> String {
    s.chars()
        .map(|c| {
            if unicode_ident::is_xid_continue(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn fix_start(mut s: String, fallback: &str) -> String {
    if s.is_empty() || s.chars().all(|c| c == '_') {
        return fallback.to_string();
    }
    if let Some(c) = s.chars().next() {
        if !unicode_ident::is_xid_start(c) && c != '_' {
            s.insert(0, '_');
        }
    }
    s
}

/// Applies the keyword rule (step 4).
pub fn escape_keyword(s: String) -> String {
    if NON_RAW_KEYWORDS.contains(&s.as_str()) {
        format!("{s}_")
    } else if RAW_KEYWORDS.contains(&s.as_str()) {
        format!("r#{s}")
    } else {
        s
    }
}

/// snake_case that keeps digits attached: heck splits `Line1` into `line1` already; we only make
/// sure the result is an identifier.
fn snake(s: &str) -> String {
    let replaced = replace_non_ident(s);
    replaced.to_snake_case()
}

fn camel(s: &str) -> String {
    let replaced = replace_non_ident(s);
    replaced.to_upper_camel_case()
}

/// Rust name for a struct, enum or enum variant (`UpperCamelCase`).
pub fn rust_type_name(wire: &str) -> String {
    escape_keyword(fix_start(camel(wire), "Unnamed"))
}

/// Rust name for a field or module (`snake_case`).
pub fn rust_field_name(wire: &str) -> String {
    escape_keyword(fix_start(snake(wire), "unnamed"))
}

/// Rust module name for a namespace: `Microsoft.Graph.Security` → `microsoft_graph_security`.
pub fn module_name(namespace: &str) -> String {
    rust_field_name(namespace)
}

/// SQL name (before uniqueness and the length rule): lower-case snake_case.
pub fn sql_base_name(wire: &str) -> String {
    let s = fix_start(snake(wire), "unnamed");
    s.to_lowercase()
}

/// Enforces PostgreSQL's 63-byte limit: a longer name keeps its first bytes (at a character
/// boundary) and ends in `_` plus 8 hex digits of a hash of the *original* wire name, so the result
/// is stable and two long names that share a prefix stay distinct.
pub fn shorten_sql(name: &str, original: &str) -> String {
    if name.len() <= PG_MAX_IDENT_BYTES {
        return name.to_string();
    }
    let tag = format!("_{:08x}", fnv1a32(original.as_bytes()));
    let mut cut = PG_MAX_IDENT_BYTES - tag.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", name[..cut].trim_end_matches('_'), tag)
}

/// FNV-1a, 32 bits: a stable, dependency-free hash for name tags (not for security).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// What a scope resolves: the original (wire) name, the candidate derived name, where it came from.
#[derive(Debug, Clone)]
pub struct NameItem {
    pub original: String,
    pub candidate: String,
    pub pos: Pos,
}

/// How names compare inside a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Rust identifiers: exact.
    Exact,
    /// SQL identifiers: case-insensitive (SQLite), and at most 63 bytes (PostgreSQL).
    Sql,
}

fn strip_raw(s: &str) -> &str {
    s.strip_prefix("r#").unwrap_or(s)
}

fn key_of(s: &str, cmp: Compare) -> String {
    match cmp {
        Compare::Exact => s.to_string(),
        Compare::Sql => s.to_lowercase(),
    }
}

/// The rules of one naming scope.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Names the scope in messages (e.g. `fields of NorthwindModel.Order`).
    pub name: &'a str,
    pub cmp: Compare,
    /// Names the generated code uses in this scope.
    pub reserved: &'a [&'a str],
    /// Suffix style: `Name2` (types, variants: `Name_2` is not UpperCamelCase) or `name_2`.
    pub camel_suffix: bool,
    /// How a user pins another name, for messages.
    pub hint: &'a str,
}

/// The default hint: Rust names are pinned in service.toml.
pub const RENAME_HINT: &str = "pin another name under [rename] in service.toml";

/// Resolves collisions in one scope with snake-case suffixes (see [`make_unique_in`]).
pub fn make_unique(
    scope: &str,
    items: &[NameItem],
    cmp: Compare,
    reserved: &[&str],
    file_of: &dyn Fn(u32) -> std::path::PathBuf,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let rules = Scope {
        name: scope,
        cmp,
        reserved,
        camel_suffix: false,
        hint: RENAME_HINT,
    };
    make_unique_in(&rules, items, file_of, diags)
}

/// Resolves collisions in one scope (step 6). Returns the final names, in input order.
///
/// In a group of items that derive the same name, the one whose wire name already *is* that
/// name keeps it (`name` beats `Name` for the field `name`); otherwise the first by wire name in
/// byte order. The others get a numeric suffix. Nothing depends on document order.
pub fn make_unique_in(
    rules: &Scope<'_>,
    items: &[NameItem],
    file_of: &dyn Fn(u32) -> std::path::PathBuf,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let cmp = rules.cmp;
    let scope = rules.name;
    let hint = rules.hint;
    let finalize = |s: &str, original: &str| -> String {
        match cmp {
            Compare::Exact => s.to_string(),
            Compare::Sql => shorten_sql(s, original),
        }
    };
    // Candidate after the length rule (SQL).
    let cands: Vec<String> = items
        .iter()
        .map(|i| finalize(&i.candidate, &i.original))
        .collect();
    // Qualified type names compare by their last segment (`NS.Item` owns `Item`).
    let owns = |i: usize| {
        let c = strip_raw(&cands[i]);
        c == items[i].original || items[i].original.rsplit('.').next() == Some(c)
    };
    let rank = |i: usize| (!owns(i), items[i].original.as_bytes());
    let mut taken: BTreeSet<String> = rules.reserved.iter().map(|r| key_of(r, cmp)).collect();
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (idx, c) in cands.iter().enumerate() {
        groups.entry(key_of(c, cmp)).or_default().push(idx);
    }
    // All plain candidates are taken first, so a suffixed name never steals a real one.
    let mut out: Vec<Option<String>> = vec![None; items.len()];
    let mut losers: Vec<(usize, usize)> = Vec::new(); // (index, winner index)
    for (key, members) in &groups {
        let mut members = members.clone();
        members.sort_by(|a, b| rank(*a).cmp(&rank(*b)).then(a.cmp(b)));
        let reserved_hit = taken.contains(key);
        let mut iter = members.iter();
        if !reserved_hit {
            if let Some(first) = iter.next() {
                out[*first] = Some(cands[*first].clone());
                taken.insert(key.clone());
            }
        }
        let winner = if reserved_hit {
            None
        } else {
            members.first().copied()
        };
        for m in iter {
            losers.push((*m, winner.unwrap_or(usize::MAX)));
        }
    }
    losers.sort_by(|a, b| rank(a.0).cmp(&rank(b.0)).then(a.0.cmp(&b.0)));
    for (idx, winner) in losers {
        // `self_` + `_2` would be `self__2`, which the snake-case lint rejects.
        let stripped = strip_raw(&cands[idx]);
        let base = match stripped.trim_end_matches('_') {
            "" => stripped.to_string(),
            b => b.to_string(),
        };
        let sep = if rules.camel_suffix { "" } else { "_" };
        let mut n = 2;
        let name = loop {
            let cand = finalize(
                &format!("{base}{sep}{n}"),
                &format!("{}#{n}", items[idx].original),
            );
            if !taken.contains(&key_of(&cand, cmp)) {
                break cand;
            }
            n += 1;
        };
        taken.insert(key_of(&name, cmp));
        let item = &items[idx];
        let msg = if winner == usize::MAX {
            format!(
                "{scope}: '{}' would be named '{}', which the generated code uses itself; it is named '{}' instead ({hint})",
                item.original, cands[idx], name
            )
        } else {
            let w = &items[winner];
            if w.original == item.original {
                format!(
                    "{scope}: '{}' is defined twice (also at {}:{}); the second is named '{}'",
                    item.original, w.pos.line, w.pos.column, name
                )
            } else {
                format!(
                    "{scope}: '{}' and '{}' (at {}:{}) both become '{}'; '{}' is named '{}' ({hint})",
                    item.original, w.original, w.pos.line, w.pos.column, cands[idx], item.original, name
                )
            }
        };
        diags.push(Diagnostic::warning(msg).at(
            file_of(item.pos.file),
            item.pos.line,
            item.pos.column,
        ));
        out[idx] = Some(name);
    }
    out.into_iter()
        .zip(cands)
        .map(|(o, c)| o.unwrap_or(c))
        .collect()
}

/// Whether `s` is a valid Rust identifier (raw identifiers included), as `syn` would accept it.
pub fn is_valid_ident(s: &str) -> bool {
    syn::parse_str::<syn::Ident>(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords() {
        assert_eq!(rust_field_name("type"), "r#type");
        assert_eq!(rust_field_name("self"), "self_");
        assert_eq!(rust_field_name("Self"), "self_");
        assert_eq!(rust_field_name("crate"), "crate_");
        assert_eq!(rust_field_name("super"), "super_");
        assert_eq!(rust_type_name("self"), "Self_");
        assert_eq!(rust_type_name("Self"), "Self_");
        assert_eq!(rust_field_name("move"), "r#move");
        for k in RAW_KEYWORDS {
            assert!(is_valid_ident(&rust_field_name(k)), "{k}");
        }
    }

    #[test]
    fn odd_characters_and_digits() {
        assert_eq!(rust_field_name("2xl_16"), "_2xl_16");
        assert_eq!(rust_type_name("3D"), "_3d");
        assert_eq!(rust_field_name("Category_of_X_(2)"), "category_of_x_2");
        assert_eq!(rust_field_name("a.b/c$d"), "a_b_c_d");
        assert_eq!(rust_field_name(""), "unnamed");
        assert_eq!(rust_field_name("__"), "unnamed");
        assert_eq!(rust_field_name("Наименование"), "наименование");
        assert_eq!(
            rust_type_name("Catalog_Номенклатура"),
            "CatalogНоменклатура"
        );
        for s in ["2xl_16", "_0-foo", "/", "", "Наименование", "a b", "ÄÖÜ"] {
            assert!(is_valid_ident(&rust_field_name(s)), "{s}");
            assert!(is_valid_ident(&rust_type_name(s)), "{s}");
        }
    }

    #[test]
    fn sql_names_are_shortened_with_a_hash() {
        let long = "Ф".repeat(40); // 80 bytes
        let s = shorten_sql(&sql_base_name(&long), &long);
        assert!(s.len() <= PG_MAX_IDENT_BYTES, "{s}");
        let other = format!("{}x", "Ф".repeat(40));
        assert_ne!(s, shorten_sql(&sql_base_name(&other), &other));
        assert_eq!(shorten_sql("short", "Short"), "short");
    }

    fn items(names: &[&str], f: fn(&str) -> String) -> Vec<NameItem> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| NameItem {
                original: n.to_string(),
                candidate: f(n),
                pos: Pos {
                    file: 0,
                    line: i as u32 + 1,
                    column: 1,
                    offset: 0,
                },
            })
            .collect()
    }

    #[test]
    fn collisions_resolve_by_wire_name_order_not_document_order() {
        let mut d = Diagnostics::default();
        let f = |_: u32| std::path::PathBuf::from("x.xml");
        let a = make_unique(
            "s",
            &items(&["dupName", "DupName", "dup_name_2"], rust_field_name),
            Compare::Exact,
            &[],
            &f,
            &mut d,
        );
        assert_eq!(a, vec!["dup_name_3", "dup_name", "dup_name_2"]);
        let mut d2 = Diagnostics::default();
        let b = make_unique(
            "s",
            &items(&["DupName", "dupName", "dup_name_2"], rust_field_name),
            Compare::Exact,
            &[],
            &f,
            &mut d2,
        );
        assert_eq!(b, vec!["dup_name", "dup_name_3", "dup_name_2"]);
        assert_eq!(d.0.len(), 1);
        assert!(
            d.0[0].message.contains("'dupName' and 'DupName'"),
            "{}",
            d.0[0]
        );
    }

    #[test]
    fn sql_scope_is_case_insensitive_and_respects_reserved() {
        let mut d = Diagnostics::default();
        let f = |_: u32| std::path::PathBuf::from("x.xml");
        let it = vec![
            NameItem {
                original: "SyncedAt".into(),
                candidate: "synced_at".into(),
                pos: Pos::default(),
            },
            NameItem {
                original: "Name".into(),
                candidate: "Name".into(),
                pos: Pos::default(),
            },
            NameItem {
                original: "name".into(),
                candidate: "name".into(),
                pos: Pos::default(),
            },
        ];
        let r = make_unique("t", &it, Compare::Sql, &["synced_at"], &f, &mut d);
        assert_eq!(r, vec!["synced_at_2", "Name", "name_2"]);
    }
}
