//! Rows the server holds: generated rows plus a small overlay per (entity, division) of
//! updated, inserted and deleted rows (test mutations), and the query engine over both.

use super::catalog::{Edm, Entity};
use super::gen::{Gen, Val, MUTATION_TS_START};
use super::query::{Cmp, Lit, Op};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A changed (updated or inserted) row.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: u64,
    /// Local wall-clock ms (§2.5).
    pub modified: i64,
    pub timestamp: i64,
    /// Served values replacing the generated ones, in served JSON form.
    pub fields: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default)]
pub struct Overlay {
    /// Rows inserted after the generated ones (indexes `n..n + inserted`).
    pub inserted: u64,
    pub changed: BTreeMap<u64, Change>,
    pub by_seq: BTreeMap<u64, u64>,
    pub deleted: BTreeSet<u64>,
}

impl Overlay {
    fn excluded(&self, i: u64) -> bool {
        self.changed.contains_key(&i) || self.deleted.contains(&i)
    }
    fn excluded_in(&self, lo: u64, hi: u64) -> u64 {
        if lo >= hi {
            return 0;
        }
        (self.changed.range(lo..hi).count() + self.deleted.range(lo..hi).count()) as u64
    }
}

/// All overlays and the per-division Timestamp counters.
#[derive(Debug, Default)]
pub struct Store {
    pub overlays: HashMap<(String, i32), Overlay>,
    div_ts: HashMap<i32, i64>,
    seq: u64,
    last_modified: i64,
}

/// Row order of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By key (generated index).
    Key,
    /// By Modified / Timestamp: unchanged generated rows (in index order), then changed rows
    /// in change order (their values are all newer).
    Change,
}

/// A validated `$filter`.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub modified: Vec<(Op, i64)>,
    pub timestamp: Vec<(Op, i64)>,
    /// `Some(None)`: the key literal matches no row.
    pub key: Option<Option<u64>>,
    pub division: Option<i64>,
    pub entity_type: Option<i64>,
}

/// Decodes a key literal to a row index.
pub type KeyDecoder<'a> = &'a dyn Fn(&str) -> Option<u64>;

/// Builds a plan from parsed comparisons, enforcing which fields may be filtered on
/// (§1.3: sync endpoints only on Timestamp, `sync/Deleted` also `EntityType eq N`).
pub fn plan(
    entity: &Entity,
    gen: &Gen,
    cmps: &[Cmp],
    divisions_key: Option<KeyDecoder>,
) -> Result<Plan, String> {
    let mut p = Plan::default();
    let sync = entity.kind == super::catalog::Kind::Sync;
    for c in cmps {
        let is = |i: Option<usize>| i.is_some_and(|i| entity.props[i].name == c.field);
        if is(entity.timestamp) {
            let v = match c.lit {
                Lit::Int { value, .. } => value,
                _ => {
                    return Err(format!(
                    "Timestamp must be compared with an Edm.Int64 literal such as 123L, not '{}'",
                    c.lit.as_key_literal()
                ))
                }
            };
            p.timestamp.push((c.op, v));
        } else if is(entity.modified) && !sync {
            let Lit::DateTime(v) = c.lit else {
                return Err(
                    "Modified must be compared with a datetime'yyyy-mm-ddThh:mm:ss' literal".into(),
                );
            };
            p.modified.push((c.op, v));
        } else if sync && !(entity.is_deleted_log() && c.field == "EntityType") {
            return Err(format!(
                "Filtering on '{}' is not supported on sync endpoints; only Timestamp can be filtered",
                c.field
            ));
        } else if entity.keys.len() == 1 && entity.props[entity.keys[0]].name == c.field {
            if c.op != Op::Eq {
                return Err(format!(
                    "Only 'eq' is supported on the key property '{}'",
                    c.field
                ));
            }
            let key_edm = entity.props[entity.keys[0]].edm;
            let ok = matches!(
                (key_edm, &c.lit),
                (Edm::Guid, Lit::Guid(_))
                    | (Edm::String, Lit::Str(_))
                    | (Edm::Int32 | Edm::Int16 | Edm::Byte, Lit::Int { .. })
                    | (Edm::Int64, Lit::Int { .. })
            );
            if !ok {
                return Err(format!(
                    "Operator 'eq' incompatible with operand types for '{}'",
                    c.field
                ));
            }
            let lit = c.lit.as_key_literal();
            let idx = match divisions_key {
                Some(f) => f(&lit),
                None => gen.index_of_literal(&lit),
            };
            p.key = Some(match p.key {
                Some(prev) if prev != idx => None,
                _ => idx,
            });
        } else if is(entity.division) || (entity.is_deleted_log() && c.field == "EntityType") {
            let (Op::Eq, Lit::Int { value, .. }) = (c.op, &c.lit) else {
                return Err(format!("Only '{} eq <number>' is supported", c.field));
            };
            if c.field == "Division" {
                p.division = Some(*value);
            } else {
                p.entity_type = Some(*value);
            }
        } else if entity.prop(&c.field).is_some() {
            return Err(format!(
                "Filtering on '{}' is not supported by this server",
                c.field
            ));
        } else {
            return Err(format!(
                "Type '{}' does not have a property named '{}'",
                entity.type_name, c.field
            ));
        }
    }
    Ok(p)
}

fn all(tests: &[(Op, i64)], v: i64) -> bool {
    tests.iter().all(|(op, b)| op.test(v, *b))
}

/// Smallest i in [lo, hi) with pred(i) true, for a monotone pred (false… then true…).
fn partition(lo: u64, hi: u64, pred: impl Fn(u64) -> bool) -> u64 {
    let (mut a, mut b) = (lo, hi);
    while a < b {
        let m = a + (b - a) / 2;
        if pred(m) {
            b = m;
        } else {
            a = m + 1;
        }
    }
    a
}

/// What one query reads.
pub struct Scan<'a> {
    pub gen: Gen<'a>,
    pub n: u64,
    pub overlay: Option<&'a Overlay>,
    pub plan: &'a Plan,
    pub division: i32,
}

impl<'a> Scan<'a> {
    /// Generated index range allowed by the Modified/Timestamp bounds and key/division tests.
    fn gen_range(&self) -> (u64, u64) {
        let p = self.plan;
        if p.division.is_some_and(|d| d != i64::from(self.division)) {
            return (0, 0);
        }
        if p.entity_type.is_some() && self.gen.entity.is_deleted_log() {
            return (0, 0);
        }
        let (mut lo, mut hi) = (0, self.n);
        if let Some(k) = p.key {
            match k {
                Some(i) if i < self.n => {
                    lo = i;
                    hi = i + 1
                }
                _ => return (0, 0),
            }
        }
        let lower = |tests: &[(Op, i64)], f: &dyn Fn(u64) -> i64, lo: u64, hi: u64| {
            // f is non-decreasing: lower bounds hold on a suffix, upper bounds on a prefix
            // (`eq` is both `ge` and `le`).
            let low: Vec<_> = tests
                .iter()
                .filter_map(|&(o, v)| match o {
                    Op::Gt => Some((Op::Gt, v)),
                    Op::Ge | Op::Eq => Some((Op::Ge, v)),
                    _ => None,
                })
                .collect();
            let up: Vec<_> = tests
                .iter()
                .filter_map(|&(o, v)| match o {
                    Op::Lt => Some((Op::Lt, v)),
                    Op::Le | Op::Eq => Some((Op::Le, v)),
                    _ => None,
                })
                .collect();
            let a = partition(lo, hi, |i| all(&low, f(i)));
            let b = partition(a, hi, |i| !all(&up, f(i)));
            (a, b)
        };
        if !p.timestamp.is_empty() {
            (lo, hi) = lower(
                &p.timestamp,
                &|i| super::gen::generated_timestamp(i),
                lo,
                hi,
            );
        }
        if !p.modified.is_empty() {
            (lo, hi) = lower(&p.modified, &|i| super::gen::modified_local_ms(i), lo, hi);
        }
        (lo, hi)
    }

    fn change_matches(&self, i: u64, c: &Change) -> bool {
        let p = self.plan;
        if let Some(k) = p.key {
            if k != Some(i) {
                return false;
            }
        }
        if p.division.is_some_and(|d| d != i64::from(self.division)) {
            return false;
        }
        if let Some(et) = p.entity_type {
            if c.fields.get("EntityType").and_then(|v| v.as_i64()) != Some(et) {
                return false;
            }
        }
        all(&p.timestamp, c.timestamp) && all(&p.modified, c.modified)
    }

    /// Changed rows matching the plan, as (index, seq).
    fn changed(&self, order: Order) -> Vec<(u64, u64)> {
        let Some(o) = self.overlay else {
            return Vec::new();
        };
        match order {
            Order::Key => o
                .changed
                .iter()
                .filter(|(i, c)| self.change_matches(**i, c))
                .map(|(i, c)| (*i, c.seq))
                .collect(),
            Order::Change => o
                .by_seq
                .iter()
                .filter(|(_, i)| self.change_matches(**i, &o.changed[i]))
                .map(|(s, i)| (*i, *s))
                .collect(),
        }
    }

    /// Number of matching rows.
    pub fn count(&self) -> u64 {
        let (lo, hi) = self.gen_range();
        let excl = self.overlay.map_or(0, |o| o.excluded_in(lo, hi));
        (hi - lo) - excl + self.changed(Order::Key).len() as u64
    }

    /// Row indexes of one page: after the row `after` (a generated index), skipping `skip`,
    /// at most `limit`; plus whether more rows follow.
    pub fn page(
        &self,
        order: Order,
        after: Option<u64>,
        skip: u64,
        limit: usize,
    ) -> (Vec<u64>, bool) {
        let (lo, hi) = self.gen_range();
        let changed = self.changed(order);
        let excluded = |i: u64| self.overlay.is_some_and(|o| o.excluded(i));
        let want = limit + 1;
        let mut out: Vec<u64> = Vec::with_capacity(want.min(4096));
        let mut skip = skip;
        let mut push = |i: u64, out: &mut Vec<u64>| {
            if skip > 0 {
                skip -= 1;
                true
            } else {
                out.push(i);
                out.len() < want
            }
        };
        match order {
            Order::Key => {
                let start = after.map_or(lo, |a| (a + 1).max(lo));
                let mut ch = changed
                    .iter()
                    .map(|(i, _)| *i)
                    .filter(|i| after.is_none_or(|a| *i > a))
                    .peekable();
                let mut g = start;
                loop {
                    while g < hi && excluded(g) {
                        g += 1;
                    }
                    let next_gen = (g < hi).then_some(g);
                    let next = match (next_gen, ch.peek().copied()) {
                        (None, None) => break,
                        (Some(a), Some(b)) if b < a => {
                            ch.next();
                            b
                        }
                        (Some(a), _) => {
                            g += 1;
                            a
                        }
                        (None, Some(b)) => {
                            ch.next();
                            b
                        }
                    };
                    if !push(next, &mut out) {
                        break;
                    }
                }
            }
            Order::Change => {
                let after_seq =
                    after.and_then(|a| self.overlay.and_then(|o| o.changed.get(&a)).map(|c| c.seq));
                let mut full = false;
                if after_seq.is_none() {
                    let mut g = after.map_or(lo, |a| (a + 1).max(lo));
                    while g < hi {
                        if !excluded(g) && !push(g, &mut out) {
                            full = true;
                            break;
                        }
                        g += 1;
                    }
                }
                if !full {
                    for (i, s) in &changed {
                        if after_seq.is_some_and(|a| *s <= a) {
                            continue;
                        }
                        if !push(*i, &mut out) {
                            break;
                        }
                    }
                }
            }
        }
        let more = out.len() > limit;
        out.truncate(limit);
        (out, more)
    }

    /// Like [`Scan::page`] in `Modified` order (unchanged generated rows, then changed rows by
    /// (Modified, index)), continuing after the row that had (`Modified`, index) `after` when
    /// it was served; a row changed since then does not make the run skip rows.
    pub fn page_by_modified(
        &self,
        after: Option<(i64, u64)>,
        skip: u64,
        limit: usize,
    ) -> (Vec<u64>, bool) {
        let (lo, hi) = self.gen_range();
        let mut changed: Vec<(i64, u64)> = self
            .overlay
            .map(|o| {
                o.changed
                    .iter()
                    .filter(|(i, c)| self.change_matches(**i, c))
                    .map(|(i, c)| (c.modified, *i))
                    .collect()
            })
            .unwrap_or_default();
        changed.sort_unstable();
        let excluded = |i: u64| self.overlay.is_some_and(|o| o.excluded(i));
        // Was the cursor row a generated row (its generated Modified) or a changed one?
        let (gen_start, ov_after) = match after {
            None => (lo, None),
            Some((m, k)) if k < self.n && super::gen::modified_local_ms(k) == m => {
                ((k + 1).max(lo), None)
            }
            Some(pos) => (hi, Some(pos)),
        };
        let want = limit + 1;
        let mut out = Vec::with_capacity(want.min(4096));
        let mut skip = skip;
        let mut g = gen_start;
        while g < hi && out.len() < want {
            if !excluded(g) {
                if skip > 0 {
                    skip -= 1;
                } else {
                    out.push(g);
                }
            }
            g += 1;
        }
        for (m, i) in changed {
            if out.len() >= want {
                break;
            }
            if ov_after.is_some_and(|a| (m, i) <= a) {
                continue;
            }
            if skip > 0 {
                skip -= 1;
            } else {
                out.push(i);
            }
        }
        let more = out.len() > limit;
        out.truncate(limit);
        (out, more)
    }
}

impl Store {
    pub fn overlay(&self, path: &str, division: i32) -> Option<&Overlay> {
        self.overlays.get(&(path.to_string(), division))
    }

    /// Next Timestamp of a division (only grows, §1.3) and the next Modified (now, never
    /// earlier than the previous one).
    fn bump(&mut self, division: i32, now_local: i64) -> (u64, i64, i64) {
        self.seq += 1;
        let ts = self.div_ts.entry(division).or_insert(MUTATION_TS_START);
        *ts += 1;
        self.last_modified = self.last_modified.max(now_local);
        (self.seq, *ts, self.last_modified)
    }

    /// Updates (`Some(i)`) or inserts (`None`) a row; returns its index.
    pub fn upsert(
        &mut self,
        path: &str,
        division: i32,
        n: u64,
        index: Option<u64>,
        fields: BTreeMap<String, serde_json::Value>,
        now_local: i64,
    ) -> Result<(u64, i64), String> {
        let (seq, ts, modified) = self.bump(division, now_local);
        let o = self
            .overlays
            .entry((path.to_string(), division))
            .or_default();
        let i = match index {
            Some(i) => {
                if i >= n + o.inserted || o.deleted.contains(&i) {
                    return Err("no such row".into());
                }
                i
            }
            None => {
                o.inserted += 1;
                n + o.inserted - 1
            }
        };
        let mut merged = o
            .changed
            .remove(&i)
            .map(|c| {
                o.by_seq.remove(&c.seq);
                c.fields
            })
            .unwrap_or_default();
        merged.extend(fields);
        o.changed.insert(
            i,
            Change {
                seq,
                modified,
                timestamp: ts,
                fields: merged,
            },
        );
        o.by_seq.insert(seq, i);
        Ok((i, ts))
    }

    /// Deletes a row; returns the Timestamp given to the deletion.
    pub fn delete(
        &mut self,
        path: &str,
        division: i32,
        n: u64,
        i: u64,
        now_local: i64,
    ) -> Result<i64, String> {
        let (_, ts, _) = self.bump(division, now_local);
        let o = self
            .overlays
            .entry((path.to_string(), division))
            .or_default();
        if i >= n + o.inserted || o.deleted.contains(&i) {
            return Err("no such row".into());
        }
        if let Some(c) = o.changed.remove(&i) {
            o.by_seq.remove(&c.seq);
        }
        o.deleted.insert(i);
        Ok(ts)
    }
}

/// One value of row `i`, with the overlay applied.
pub fn row_val(
    gen: &Gen,
    pi: usize,
    i: u64,
    change: Option<&Change>,
    special: &dyn Fn(usize, u64) -> Option<Val>,
) -> Val {
    let e = gen.entity;
    if let Some(c) = change {
        if let Some(v) = c.fields.get(&e.props[pi].name) {
            return Val::Json(v.clone());
        }
        if Some(pi) == e.modified {
            return Val::Date(c.modified);
        }
        if Some(pi) == e.timestamp {
            return Val::Int64(c.timestamp);
        }
    }
    if let Some(v) = special(pi, i) {
        return v;
    }
    gen.value(pi, i)
}
