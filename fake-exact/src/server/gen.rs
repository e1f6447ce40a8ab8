//! Deterministic rows: row `i` of (entity, division) is a pure function of
//! (seed, entity, division, i), so a million-row entity costs no memory.
//!
//! Ordering promises the query engine relies on:
//! * keys grow with `i` (Guid keys start with an 8-hex-digit counter, the rest is a hash), so
//!   `$skiptoken` = last key is decoded back to `i`;
//! * `Modified` is non-decreasing in `i` and repeats in runs of [`TIE_RUN`] rows, so equal values
//!   straddle page boundaries of 60 and 1000 (§6 "Modified-cursor pitfalls");
//! * `Timestamp` strictly grows with `i` and stays below [`MUTATION_TS_START`], where the
//!   per-division counter for changed rows begins (§1.3).

use super::catalog::{Derived, Edm, Entity, Prop, TextKind};

/// Rows sharing one `Modified` value.
pub const TIE_RUN: u64 = 7;
/// `Modified` of row 0: 2021-01-04T08:00:00 Dutch local time, encoded as if UTC (§2.5).
pub const MODIFIED_BASE_LOCAL_MS: i64 = 1_609_747_200_000;
/// Step between tie runs.
pub const MODIFIED_STEP_MS: i64 = 60_000;
/// First value of the per-division Timestamp counter used by mutations.
pub const MUTATION_TS_START: i64 = 1_000_000_000_000;

/// A served value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Str(String),
    /// Int32/Int16/Byte: a JSON number.
    Int(i64),
    /// Int64: a JSON string (§2.5).
    Int64(i64),
    Dbl(f64),
    Bool(bool),
    /// Local wall-clock ms, written `/Date(ms)/` (§2.5).
    Date(i64),
    /// Raw JSON from a test mutation.
    Json(serde_json::Value),
}

impl Val {
    /// Appends the JSON form.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Val::Null => out.push_str("null"),
            Val::Str(s) => write_json_str(out, s),
            Val::Int(n) => out.push_str(&n.to_string()),
            Val::Int64(n) => {
                out.push('"');
                out.push_str(&n.to_string());
                out.push('"');
            }
            Val::Dbl(d) => {
                // `9075`, `12.5` (integral doubles without `.0`, as Exact writes them, §2.5)
                if d.is_finite() {
                    out.push_str(&d.to_string());
                } else {
                    out.push_str("null")
                }
            }
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Date(ms) => {
                out.push_str("\"/Date(");
                out.push_str(&ms.to_string());
                out.push_str(")/\"");
            }
            Val::Json(v) => out.push_str(&v.to_string()),
        }
    }

    pub fn to_json_string(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }

    /// Numeric view for filter comparisons (Timestamp, dates, Int32).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(n) | Val::Int64(n) | Val::Date(n) => Some(*n),
            Val::Json(serde_json::Value::Number(n)) => n.as_i64(),
            Val::Json(serde_json::Value::String(s)) => {
                if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
                    inner.parse().ok()
                } else {
                    s.parse().ok()
                }
            }
            _ => None,
        }
    }
}

/// Appends `s` as a JSON string (escaped as serde_json does: `"`, `\\` and control
/// characters only).
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// Appends the JSON-escaped text of `s` (without quotes).
pub fn push_escaped(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    for (k, &c) in b.iter().enumerate() {
        if c >= 0x20 && c != b'"' && c != b'\\' {
            continue;
        }
        out.push_str(&s[start..k]);
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c >> 4) as usize] as char);
                out.push(HEX[(c & 0xf) as usize] as char);
            }
        }
        start = k + 1;
    }
    out.push_str(&s[start..]);
}

/// Appends the decimal digits of `n` (no allocation).
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut k = buf.len();
    loop {
        k -= 1;
        buf[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits only
    out.push_str(std::str::from_utf8(&buf[k..]).unwrap_or_default());
}

pub fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Appends `cents / 100` as Rust's `f64` `Display` writes it (`12.5`, `-0.01`, `9075`).
fn push_cents(out: &mut String, cents: i64) {
    if cents < 0 {
        out.push('-');
    }
    let a = cents.unsigned_abs();
    push_u64(out, a / 100);
    let f = a % 100;
    if f != 0 {
        out.push('.');
        out.push((b'0' + (f / 10) as u8) as char);
        if !f.is_multiple_of(10) {
            out.push((b'0' + (f % 10) as u8) as char);
        }
    }
}

/// Appends the Guid text of 128 bits (as [`format_guid`]).
pub fn push_guid(out: &mut String, hi: u64, lo: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b'-'; 36];
    // (value, nibbles, position)
    for (v, nibbles, at) in [
        (hi >> 32, 8, 0),
        ((hi >> 16) & 0xffff, 4, 9),
        (hi & 0xffff, 4, 14),
        (lo >> 48, 4, 19),
        (lo & 0xffff_ffff_ffff, 12, 24),
    ] {
        for n in 0..nibbles {
            buf[at + n] = HEX[((v >> ((nibbles - 1 - n) * 4)) & 0xf) as usize];
        }
    }
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

/// SplitMix64 finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn mix4(a: u64, b: u64, c: u64, d: u64) -> u64 {
    mix(mix(mix(mix(a) ^ b) ^ c) ^ d)
}

pub fn modified_local_ms(i: u64) -> i64 {
    MODIFIED_BASE_LOCAL_MS + (i / TIE_RUN) as i64 * MODIFIED_STEP_MS
}

pub fn generated_timestamp(i: u64) -> i64 {
    10_000 + 3 * i as i64
}

/// Guid text of 128 bits.
pub fn format_guid(hi: u64, lo: u64) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// Generates values for one (seed, entity, division).
#[derive(Debug, Clone, Copy)]
pub struct Gen<'a> {
    pub seed: u64,
    pub entity: &'a Entity,
    pub division: i32,
    /// Hash of the data identity (the entity set name), shared by `crm/Accounts`,
    /// `bulk/CRM/Accounts` and `sync/CRM/Accounts`.
    pub table_hash: u64,
    /// [`table_base`] of (seed, table_hash, division), computed once by [`Gen::new`].
    base: u64,
}

const NAMES: &[&str] = &[
    "Bäckerei Müller GmbH",
    "Straßenbau Groß & Söhne",
    "Łukasz Wiśniewski",
    "Café \"De Gouden Leeuw\"",
    "Société Générale d'Électricité",
    "Smith & Jones Ltd",
    "Ærø Fiskeri ApS",
    "Zoë van 't Hof",
    "Price: 100 € & more",
    "O'Brien <Consulting>",
    "Çelik İnşaat A.Ş.",
    "Jansen B.V.",
];

const WORDS: &[&str] = &[
    "Standaard",
    "Crème brûlée",
    "A&B",
    "\"quoted\"",
    "Größe",
    "EUR",
    "n/a",
    "Tab\there",
    "line\nbreak",
    "Ünïcödé",
];

impl<'a> Gen<'a> {
    pub fn new(seed: u64, entity: &'a Entity, division: i32, table_hash: u64) -> Gen<'a> {
        Gen {
            seed,
            entity,
            division,
            table_hash,
            base: table_base(seed, table_hash, division),
        }
    }

    fn base(&self) -> u64 {
        self.base
    }

    /// The first 32 bits of Guid keys: an offset per (seed, entity, division) plus `i`.
    fn guid_offset(&self) -> u64 {
        self.base() % 0x4000_0000
    }

    fn key_guid(&self, i: u64, key_no: usize) -> String {
        key_guid(self.base(), i, key_no)
    }

    /// Index of the row that reference property `pi` (a [`Derived::Ref`] or
    /// [`Derived::CodeRef`]) of row `i` points at, and the target's base hash; `None` when the
    /// target has no rows.
    fn ref_target(&self, pi: usize, i: u64) -> Option<(u64, u64)> {
        let (table_hash, rows, hash) = match &self.entity.derived[pi] {
            Some(Derived::Ref {
                table_hash, rows, ..
            }) => (table_hash, rows, self.entity.props[pi].hash),
            Some(Derived::CodeRef {
                table_hash,
                rows,
                hash,
                ..
            }) => (table_hash, rows, *hash),
            _ => return None,
        };
        if *rows == 0 {
            return None;
        }
        let j = mix4(self.base(), i, hash, 3) % rows;
        Some((j, table_base(self.seed, *table_hash, self.division)))
    }

    fn is_null(&self, p: &Prop, i: u64) -> bool {
        p.nullable && mix4(self.base(), i, p.hash, 2).is_multiple_of(10)
    }

    /// Value of key property `key_no` (index into `entity.keys`) of row `i`.
    pub fn key_val(&self, i: u64, key_no: usize) -> Val {
        let p = &self.entity.props[self.entity.keys[key_no]];
        match p.edm {
            Edm::Guid => Val::Str(self.key_guid(i, key_no)),
            Edm::Int64 => Val::Int64(i as i64 + 1),
            Edm::String => Val::Str(format!("{:08}", i + 1)),
            Edm::Int32 | Edm::Int16 | Edm::Byte if key_no == 0 => Val::Int(i as i64 + 1),
            Edm::Int32 | Edm::Int16 | Edm::Byte => Val::Int(1),
            _ => Val::Str(format!("{:08}", i + 1)),
        }
    }

    /// The OData key literal of row `i` (`guid'…'`, `12`, `12L`, `'00000012'`; composite keys
    /// joined by `,`; the bare index for entities without a key), as used in `$skiptoken`.
    pub fn key_literal(&self, i: u64) -> String {
        if self.entity.keys.is_empty() {
            return i.to_string();
        }
        (0..self.entity.keys.len())
            .map(|k| {
                let p = &self.entity.props[self.entity.keys[k]];
                literal_of(p.edm, &self.key_val(i, k))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Inverse of [`Gen::key_literal`] (first key property decides); `None` if it is not a key
    /// this generator produced.
    pub fn index_of_literal(&self, lit: &str) -> Option<u64> {
        let lit = lit.trim();
        if self.entity.keys.is_empty() {
            return lit.parse().ok();
        }
        let first = lit.split(',').next()?.trim();
        let p = &self.entity.props[self.entity.keys[0]];
        match p.edm {
            Edm::Guid => {
                let g = first
                    .strip_prefix("guid'")
                    .and_then(|s| s.strip_suffix('\''))
                    .unwrap_or(first)
                    .to_ascii_lowercase();
                let counter = u64::from_str_radix(g.get(0..8)?, 16).ok()?;
                let i = counter.wrapping_sub(self.guid_offset()) & 0xffff_ffff;
                (self.key_guid(i, 0) == g).then_some(i)
            }
            Edm::Int64 | Edm::Int32 | Edm::Int16 | Edm::Byte => {
                let n: u64 = first.trim_end_matches(['L', 'l']).parse().ok()?;
                n.checked_sub(1)
            }
            _ => {
                let s = first.trim_matches('\'');
                let n: u64 = s.trim().parse().ok()?;
                n.checked_sub(1)
            }
        }
    }

    /// Appends the JSON text of property `pi` of generated row `i`: the same text as
    /// `self.value(pi, i).write_json(out)`, written directly (the bulk-page fast path).
    pub fn write_json(&self, pi: usize, i: u64, out: &mut String) {
        let e = self.entity;
        let p = &e.props[pi];
        if p.is_key {
            let k = e.keys.iter().position(|&x| x == pi).unwrap_or(0);
            if p.edm == Edm::Guid {
                push_key_guid_json(out, self.base(), i, k);
            } else {
                self.key_val(i, k).write_json(out);
            }
            return;
        }
        if Some(pi) == e.modified {
            out.push_str("\"/Date(");
            push_i64(out, modified_local_ms(i));
            out.push_str(")/\"");
            return;
        }
        if Some(pi) == e.timestamp {
            out.push('"');
            push_i64(out, generated_timestamp(i));
            out.push('"');
            return;
        }
        if Some(pi) == e.division {
            push_i64(out, i64::from(self.division));
            return;
        }
        match &e.derived[pi] {
            None => write_plain_json(out, self.base(), p, i),
            Some(Derived::OwnKey) => push_key_guid_json(out, self.base(), i, 0),
            Some(Derived::Ref { .. }) => match self.ref_target(pi, i) {
                Some((j, base)) if !self.is_null(p, i) => push_key_guid_json(out, base, j, 0),
                _ => out.push_str("null"),
            },
            Some(Derived::CodeRef { prop, .. }) => match self.ref_target(pi, i) {
                Some((j, base)) if !self.is_null(p, i) => write_plain_json(out, base, prop, j),
                _ => out.push_str("null"),
            },
            Some(Derived::Copy { via, prop }) => match self.ref_target(*via, i) {
                Some(_) if self.is_null(&e.props[*via], i) && p.nullable => out.push_str("null"),
                Some((j, base)) => write_plain_json(out, base, prop, j),
                None => out.push_str("null"),
            },
        }
    }

    /// Appends the JSON-escaped key literal of row `i` (as [`Gen::key_literal`]).
    pub fn write_key_literal(&self, i: u64, out: &mut String) {
        let e = self.entity;
        if e.keys.len() == 1 && e.props[e.keys[0]].edm == Edm::Guid {
            let (hi, lo) = key_guid_bits(self.base(), i, 0);
            out.push_str("guid'");
            push_guid(out, hi, lo);
            out.push('\'');
        } else {
            push_escaped(out, &self.key_literal(i));
        }
    }

    /// Value of property `pi` of generated row `i`.
    pub fn value(&self, pi: usize, i: u64) -> Val {
        let e = self.entity;
        let p = &e.props[pi];
        if p.is_key {
            let k = e.keys.iter().position(|&x| x == pi).unwrap_or(0);
            return self.key_val(i, k);
        }
        if Some(pi) == e.modified {
            return Val::Date(modified_local_ms(i));
        }
        if Some(pi) == e.timestamp {
            return Val::Int64(generated_timestamp(i));
        }
        if Some(pi) == e.division {
            return Val::Int(i64::from(self.division));
        }
        match &e.derived[pi] {
            None => {}
            Some(Derived::OwnKey) => return Val::Str(self.key_guid(i, 0)),
            Some(Derived::Ref { .. }) => {
                if self.is_null(p, i) {
                    return Val::Null;
                }
                return match self.ref_target(pi, i) {
                    Some((j, base)) => Val::Str(key_guid(base, j, 0)),
                    None => Val::Null,
                };
            }
            Some(Derived::CodeRef { prop, .. }) => {
                if self.is_null(p, i) {
                    return Val::Null;
                }
                return match self.ref_target(pi, i) {
                    Some((j, base)) => plain_value(base, prop, j),
                    None => Val::Null,
                };
            }
            Some(Derived::Copy { via, prop }) => {
                if self.is_null(&e.props[*via], i) && p.nullable {
                    return Val::Null;
                }
                return match self.ref_target(*via, i) {
                    Some((j, base)) => plain_value(base, prop, j),
                    None => Val::Null,
                };
            }
        }
        plain_value(self.base(), p, i)
    }
}

/// Base hash of (seed, table, division): every generated value of the table's rows in that
/// division derives from it.
pub fn table_base(seed: u64, table_hash: u64, division: i32) -> u64 {
    mix4(seed, table_hash, division as i64 as u64, 0x5eed)
}

/// Guid key number `key_no` of row `i` of the table with base hash `base`.
pub fn key_guid(base: u64, i: u64, key_no: usize) -> String {
    let (hi, lo) = key_guid_bits(base, i, key_no);
    format_guid(hi, lo)
}

fn key_guid_bits(base: u64, i: u64, key_no: usize) -> (u64, u64) {
    let counter = (base % 0x4000_0000 + i) & 0xffff_ffff;
    let h = mix4(base, i, key_no as u64, 1);
    let h2 = mix(h);
    let hi = (counter << 32) | (h >> 32);
    // version-4 style nibble and variant bits for realism
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (h2 & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    (hi, lo)
}

/// Appends `"…"` with the Guid key `key_no` of row `i` of the table with base hash `base`.
fn push_key_guid_json(out: &mut String, base: u64, i: u64, key_no: usize) {
    let (hi, lo) = key_guid_bits(base, i, key_no);
    out.push('"');
    push_guid(out, hi, lo);
    out.push('"');
}

/// The JSON text of [`plain_value`], appended without building a [`Val`].
fn write_plain_json(out: &mut String, base: u64, p: &Prop, i: u64) {
    let h = mix4(base, i, p.hash, 2);
    if p.nullable && h.is_multiple_of(10) {
        out.push_str("null");
        return;
    }
    let r = h >> 8;
    match p.edm {
        Edm::Guid => {
            out.push('"');
            push_guid(out, mix(r), mix(r ^ 0xabc));
            out.push('"');
        }
        Edm::String => write_text(out, p.text, i, r, true),
        Edm::DateTime => {
            let ms = if p.name == "Created" {
                modified_local_ms(i) - (r % 90) as i64 * 86_400_000
            } else {
                1_577_836_800_000 + (r % 2500) as i64 * 86_400_000
            };
            out.push_str("\"/Date(");
            push_i64(out, ms);
            out.push_str(")/\"");
        }
        Edm::Int64 => {
            out.push('"');
            push_u64(out, r % 1_000_000);
            out.push('"');
        }
        Edm::Int32 | Edm::Int16 => push_u64(out, r % 100),
        Edm::Byte => push_u64(out, r % 10),
        Edm::Double => push_cents(out, (r % 2_000_000) as i64 - 400_000),
        Edm::Decimal => {
            out.push('"');
            push_u64(out, r % 10_000);
            out.push('.');
            let f = r % 100;
            out.push((b'0' + (f / 10) as u8) as char);
            out.push((b'0' + (f % 10) as u8) as char);
            out.push('"');
        }
        Edm::Boolean => out.push_str(if r & 1 == 1 { "true" } else { "false" }),
        Edm::Binary | Edm::Other => out.push_str("null"),
    }
}

/// A value generated from the hash alone (no key, Modified, Timestamp, Division or
/// reference): property `p` of row `i` of the table with base hash `base`.
pub fn plain_value(base: u64, p: &Prop, i: u64) -> Val {
    let h = mix4(base, i, p.hash, 2);
    if p.nullable && h.is_multiple_of(10) {
        return Val::Null;
    }
    let r = h >> 8;
    match p.edm {
        Edm::Guid => Val::Str(format_guid(mix(r), mix(r ^ 0xabc))),
        Edm::String => Val::Str(string_value(p, i, r)),
        Edm::DateTime => {
            if p.name == "Created" {
                Val::Date(modified_local_ms(i) - (r % 90) as i64 * 86_400_000)
            } else {
                // date-only values are local midnight (§2.5)
                Val::Date(1_577_836_800_000 + (r % 2500) as i64 * 86_400_000)
            }
        }
        Edm::Int64 => Val::Int64((r % 1_000_000) as i64),
        Edm::Int32 | Edm::Int16 => Val::Int((r % 100) as i64),
        Edm::Byte => Val::Int((r % 10) as i64),
        Edm::Double => {
            let cents = (r % 2_000_000) as i64 - 400_000;
            Val::Dbl(cents as f64 / 100.0)
        }
        Edm::Decimal => Val::Str(format!("{}.{:02}", r % 10_000, r % 100)),
        Edm::Boolean => Val::Bool(r & 1 == 1),
        Edm::Binary | Edm::Other => Val::Null,
    }
}

/// [`NAMES`] then [`WORDS`], JSON-escaped (without quotes), computed once.
fn escaped() -> &'static [String] {
    static CACHE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        NAMES
            .iter()
            .chain(WORDS)
            .map(|s| {
                let mut e = String::new();
                push_escaped(&mut e, s);
                e
            })
            .collect()
    })
}

fn string_value(p: &Prop, i: u64, r: u64) -> String {
    let mut s = String::new();
    write_text(&mut s, p.text, i, r, false);
    s
}

/// Appends the generated text of a String property of kind `kind` (JSON-quoted and escaped
/// when `json`).
fn write_text(out: &mut String, kind: TextKind, i: u64, r: u64, json: bool) {
    if json {
        out.push('"');
    }
    match kind {
        TextKind::Code => {
            // right-aligned fixed-width codes (§2.5)
            let n = 1000 + i;
            let digits = n.checked_ilog10().unwrap_or(0) as usize + 1;
            for _ in digits..8 {
                out.push(' ');
            }
            push_u64(out, n);
        }
        TextKind::Name => {
            let k = (r % NAMES.len() as u64) as usize;
            if json {
                out.push_str(&escaped()[k]);
            } else {
                out.push_str(NAMES[k]);
            }
            out.push(' ');
            push_u64(out, i);
        }
        TextKind::Email => {
            out.push_str("info");
            push_u64(out, i);
            out.push_str("@voorbeeld.nl");
        }
        TextKind::Country => out.push_str("NL "),
        TextKind::Currency => out.push_str("EUR"),
        TextKind::Word => {
            let k = (r % WORDS.len() as u64) as usize;
            if json {
                out.push_str(&escaped()[NAMES.len() + k]);
            } else {
                out.push_str(WORDS[k]);
            }
        }
    }
    if json {
        out.push('"');
    }
}

/// OData V2 literal of a key value.
pub fn literal_of(edm: Edm, v: &Val) -> String {
    match (edm, v) {
        (Edm::Guid, Val::Str(s)) => format!("guid'{s}'"),
        (Edm::Int64, Val::Int64(n)) => format!("{n}L"),
        (_, Val::Int(n)) => n.to_string(),
        (_, Val::Int64(n)) => format!("{n}L"),
        (_, Val::Str(s)) => format!("'{}'", s.replace('\'', "''")),
        (_, other) => other.to_json_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::catalog::Catalog;

    #[test]
    fn doubles_are_written_like_exact() {
        assert_eq!(Val::Dbl(9075.0).to_json_string(), "9075");
        assert_eq!(Val::Dbl(-12.5).to_json_string(), "-12.5");
        assert_eq!(Val::Int64(5).to_json_string(), "\"5\"");
        assert_eq!(Val::Date(1).to_json_string(), "\"/Date(1)/\"");
    }

    #[test]
    fn json_writers_match_serde_json_and_display() {
        for s in NAMES
            .iter()
            .chain(WORDS)
            .chain(&["a\\b\u{1}\u{8}\u{c}\r/\u{7f}é€"])
        {
            let mut out = String::new();
            write_json_str(&mut out, s);
            assert_eq!(out, serde_json::Value::from(*s).to_string());
        }
        for c in (-400_000i64..1_600_000)
            .step_by(7)
            .chain([-1, 0, 1, 10, -10, 100, -100])
        {
            let mut out = String::new();
            push_cents(&mut out, c);
            assert_eq!(out, (c as f64 / 100.0).to_string(), "{c}");
        }
        for (hi, lo) in [(0, 0), (u64::MAX, u64::MAX), (mix(1), mix(2))] {
            let mut out = String::new();
            push_guid(&mut out, hi, lo);
            assert_eq!(out, format_guid(hi, lo));
        }
        for n in [0i64, 7, 10, 99, 1000, -5, i64::MIN, i64::MAX] {
            let mut out = String::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    /// The direct JSON writer gives exactly the text of the `Val` path for every property of
    /// every entity set (plain, key, derived).
    #[test]
    fn fast_json_equals_val_json_for_every_entity() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata-cache/exact");
        let mut cat = Catalog::load(std::path::Path::new(dir)).unwrap();
        cat.set_ref_rows(|_| 37);
        for e in cat.entities.values() {
            let g = Gen::new(
                3,
                e,
                100002,
                crate::server::catalog::fnv1a(&e.set_name.to_lowercase()),
            );
            for i in [0u64, 1, 5, 59, 60, 999, 123_456] {
                for pi in 0..e.props.len() {
                    let mut fast = String::new();
                    g.write_json(pi, i, &mut fast);
                    assert_eq!(fast, g.value(pi, i).to_json_string(), "{} {}", e.path, pi);
                }
                let mut lit = String::new();
                g.write_key_literal(i, &mut lit);
                let mut want = String::new();
                push_escaped(&mut want, &g.key_literal(i));
                assert_eq!(lit, want);
            }
        }
    }

    #[test]
    fn keys_grow_with_the_index_and_decode_back() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata-cache/exact");
        let cat = Catalog::load(std::path::Path::new(dir)).unwrap();
        let e = cat.entity("crm/Accounts").unwrap();
        let g = Gen::new(7, e, 100001, 99);
        let mut prev = String::new();
        for i in [0u64, 1, 2, 59, 60, 999_999] {
            let lit = g.key_literal(i);
            assert!(lit > prev, "{lit} > {prev}");
            assert_eq!(g.index_of_literal(&lit), Some(i));
            prev = lit;
        }
        assert_eq!(
            g.index_of_literal("guid'00000000-0000-4000-8000-000000000000'"),
            None
        );
        assert!(
            modified_local_ms(6) == modified_local_ms(0)
                && modified_local_ms(7) > modified_local_ms(6)
        );
        assert!(generated_timestamp(1) > generated_timestamp(0));
    }
}
