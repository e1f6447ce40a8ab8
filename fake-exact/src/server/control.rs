//! Test controls under `/_test/` (not part of Exact's surface):
//!
//! * `POST /_test/mutate`: insert / update / delete rows (one op object or an array):
//!   `{"entity": "crm/Accounts", "division": 100001, "op": "update", "key": "guid'…'",
//!   "fields": {"Name": "x"}}`; `"op": "insert"` (optional `"count"`), `"op": "delete"`.
//!   Changed rows get a new `Modified` (now, Dutch local) and a new `Timestamp` from the
//!   division's counter; deletions are logged in `sync/Deleted` (§1.4).
//! * `GET /_test/stats`: [`super::Stats`] as JSON.
//! * `GET /_test/checksum?entity=…&division=…[&fields=A,B]`: `count`, `keys_hash` and `hash`
//!   of the rows the server holds. Row hash = first 8 bytes (big-endian) of SHA-256 over
//!   `Name=<value as served in JSON>\n` for each field in ascending name order (key literal
//!   alone for `keys_hash`); the checksum is the wrapping sum of row hashes as 16 hex digits,
//!   so it does not depend on row order.
//! * `GET|POST /_test/faults`: read / replace the fault rates ([`super::Faults`]).
//! * `POST /_test/clock`: `{"advance_ms": n}` moves the server clock forward.
//! * `GET /_test/key?entity=…&division=…&index=i`: key literal of generated row `i`.

use super::api::{decode_key, exact_error, has_special, special, Out};
use super::store::{row_val, Order, Plan, Scan};
use super::{App, Faults};
use axum::http::Method;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `sync/Deleted` EntityType codes (§1.4), by entity set name.
pub const ENTITY_TYPE_CODES: &[(&str, i64)] = &[
    ("TransactionLines", 1),
    ("Accounts", 2),
    ("Addresses", 3),
    ("Attachments", 4),
    ("Contacts", 5),
    ("Documents", 6),
    ("GLAccounts", 7),
    ("ItemPrices", 8),
    ("Items", 9),
    ("PaymentTerms", 10),
    ("Quotations", 11),
    ("SalesOrders", 12),
    ("SalesInvoices", 13),
    ("TimeCostTransactions", 14),
    ("StockPositions", 15),
    ("GoodsDeliveries", 16),
    ("GoodsDeliveryLines", 17),
    ("GLClassifications", 18),
    ("ItemWarehouses", 19),
    ("StorageLocationStockPositions", 20),
    ("Projects", 21),
    ("PurchaseOrders", 22),
    ("Subscriptions", 23),
    ("SubscriptionLines", 24),
    ("ProjectWBS", 25),
    ("ProjectPlanning", 26),
    ("LeaveAbsenceHoursByDay", 27),
    ("SerialBatchNumbers", 28),
    ("StockSerialBatchNumbers", 29),
    ("ItemAccounts", 30),
    ("DiscountTables", 31),
    ("SalesOrderHeaders", 32),
    ("SalesOrderLines", 33),
    ("QuotationHeaders", 34),
    ("QuotationLines", 35),
    ("ShopOrders", 36),
    ("ShopOrderMaterialPlans", 37),
    ("ShopOrderRoutingStepPlans", 38),
    ("Schedules", 39),
    ("ScheduleEntries", 40),
    ("ItemStorageLocations", 41),
    ("Employees", 42),
    ("Employments", 43),
    ("EmploymentContracts", 44),
    ("EmploymentOrganizations", 45),
    ("EmploymentCLAs", 46),
    ("EmploymentSalaries", 47),
    ("BankAccounts", 48),
    ("EmploymentTaxAuthoritiesGeneral", 49),
    ("ShopOrderPurchasePlanning", 50),
    ("ShopOrderSubOrders", 51),
    ("RequirementIssues", 53),
    ("BillOfMaterialMaterials", 54),
    ("BillOfMaterialVersions", 55),
];

pub fn entity_type_code(set_name: &str) -> Option<i64> {
    ENTITY_TYPE_CODES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(set_name))
        .map(|(_, c)| *c)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MutateOp {
    entity: String,
    division: i32,
    op: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(MutateOp),
    Many(Vec<MutateOp>),
}

pub(crate) fn handle(app: &Arc<App>, method: &Method, rest: &str, query: &str, body: &[u8]) -> Out {
    let q: BTreeMap<String, String> = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
        .collect();
    match (method.as_str(), rest.trim_end_matches('/')) {
        ("POST", "mutate") => mutate(app, body),
        ("GET", "stats") => Out::json(
            200,
            &serde_json::to_value(&*app.stats.lock().unwrap()).unwrap_or_default(),
        ),
        ("GET", "checksum") => checksum(app, &q),
        ("GET", "faults") => Out::json(
            200,
            &serde_json::to_value(&*app.faults.lock().unwrap()).unwrap_or_default(),
        ),
        ("POST", "faults") => match serde_json::from_slice::<Faults>(body) {
            Ok(f) => {
                *app.faults.lock().unwrap() = f.clone();
                Out::json(200, &serde_json::to_value(f).unwrap_or_default())
            }
            Err(e) => exact_error(400, &format!("bad faults: {e}")),
        },
        ("POST", "clock") => {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let ms = v
                .get("advance_ms")
                .and_then(|x| x.as_i64())
                .unwrap_or(0)
                .max(0);
            app.cfg
                .clock
                .advance(std::time::Duration::from_millis(ms as u64));
            Out::json(200, &serde_json::json!({"now_ms": app.cfg.clock.now_ms()}))
        }
        ("GET", "key") => {
            let Some(e) = q.get("entity").and_then(|p| app.catalog.entity(p)) else {
                return exact_error(404, "unknown entity");
            };
            let div: i32 = q.get("division").and_then(|d| d.parse().ok()).unwrap_or(0);
            let i: u64 = q.get("index").and_then(|d| d.parse().ok()).unwrap_or(0);
            Out::json(
                200,
                &serde_json::json!({"key": app.gen(e, div).key_literal(i)}),
            )
        }
        _ => exact_error(404, "unknown test control"),
    }
}

fn mutate(app: &Arc<App>, body: &[u8]) -> Out {
    let ops = match serde_json::from_slice::<OneOrMany>(body) {
        Ok(OneOrMany::One(o)) => vec![o],
        Ok(OneOrMany::Many(v)) => v,
        Err(e) => return exact_error(400, &format!("bad mutate body: {e}")),
    };
    let now = app.cfg.clock.now_ms();
    let local = super::clock::utc_to_dutch_local_ms(now);
    let mut results = Vec::new();
    let mut events: Vec<(i32, String, &'static str, String)> = Vec::new();
    let mut store = app.store.lock().unwrap();
    for op in ops {
        let Some(entity) = app.catalog.entity(&op.entity) else {
            return exact_error(404, &format!("unknown entity {}", op.entity));
        };
        if !app.cfg.divisions.contains(&op.division) {
            return exact_error(400, &format!("division {} is not configured", op.division));
        }
        for f in op.fields.keys() {
            match entity.prop(f) {
                None => {
                    return exact_error(
                        400,
                        &format!(
                            "Type '{}' does not have a property named '{}'",
                            entity.type_name, f
                        ),
                    )
                }
                Some(pi) if entity.props[pi].is_key => {
                    return exact_error(400, &format!("key property '{f}' cannot be set"))
                }
                Some(_) => {}
            }
        }
        let gen = app.gen(entity, op.division);
        let n = app.rows(entity);
        let table = App::table(entity);
        let key_index = |store_ok: bool| -> Result<u64, Out> {
            let _ = store_ok;
            let k = op
                .key
                .as_deref()
                .ok_or_else(|| exact_error(400, "key is required"))?;
            decode_key(app, entity, &gen, k).ok_or_else(|| exact_error(404, "Resource not found"))
        };
        match op.op.as_str() {
            "insert" => {
                for _ in 0..op.count.unwrap_or(1) {
                    match store.upsert(&table, op.division, n, None, op.fields.clone(), local) {
                        Ok((i, ts)) => {
                            events.push((
                                op.division,
                                entity.set_name.clone(),
                                "Update",
                                gen.key_val(i, 0)
                                    .to_json_string()
                                    .trim_matches('"')
                                    .to_string(),
                            ));
                            results.push(serde_json::json!({"op": "insert", "index": i, "key": gen.key_literal(i), "timestamp": ts}))
                        }
                        Err(e) => return exact_error(400, &e),
                    }
                }
            }
            "update" => {
                let i = match key_index(true) {
                    Ok(i) => i,
                    Err(o) => return o,
                };
                match store.upsert(&table, op.division, n, Some(i), op.fields.clone(), local) {
                    Ok((i, ts)) => {
                        events.push((
                            op.division,
                            entity.set_name.clone(),
                            "Update",
                            gen.key_val(i, 0)
                                .to_json_string()
                                .trim_matches('"')
                                .to_string(),
                        ));
                        results.push(serde_json::json!({"op": "update", "index": i, "key": gen.key_literal(i), "timestamp": ts}))
                    }
                    Err(_) => return exact_error(404, "Resource not found"),
                }
            }
            "delete" => {
                let i = match key_index(true) {
                    Ok(i) => i,
                    Err(o) => return o,
                };
                let ts = match store.delete(&table, op.division, n, i, local) {
                    Ok(ts) => ts,
                    Err(_) => return exact_error(404, "Resource not found"),
                };
                events.push((
                    op.division,
                    entity.set_name.clone(),
                    "Delete",
                    gen.key_val(i, 0)
                        .to_json_string()
                        .trim_matches('"')
                        .to_string(),
                ));
                let mut logged = None;
                if let Some(code) = entity_type_code(&entity.set_name) {
                    let key_val = gen.key_val(i, 0);
                    let mut f = BTreeMap::new();
                    f.insert(
                        "EntityKey".to_string(),
                        serde_json::Value::from(key_val.to_json_string().trim_matches('"')),
                    );
                    f.insert("EntityType".to_string(), serde_json::Value::from(code));
                    f.insert(
                        "DeletedDate".to_string(),
                        serde_json::Value::from(format!("/Date({local})/")),
                    );
                    f.insert("Division".to_string(), serde_json::Value::from(op.division));
                    f.insert(
                        "DeletedBy".to_string(),
                        serde_json::Value::from("6a3b1d5e-0000-4000-8000-00000000beef"),
                    );
                    if let Ok((_, dts)) = store.upsert("deleted", op.division, 0, None, f, local) {
                        logged = Some(dts);
                    }
                }
                results.push(serde_json::json!({"op": "delete", "index": i, "key": gen.key_literal(i), "timestamp": ts, "deleted_log_timestamp": logged}));
            }
            other => {
                return exact_error(
                    400,
                    &format!("unknown op '{other}' (insert, update, delete)"),
                )
            }
        }
    }
    drop(store);
    for (division, set, action, key) in events {
        super::webhooks::notify(app, division, &set, action, &key);
    }
    Out::json(200, &serde_json::json!({"results": results}))
}

fn row_hash(text: &str) -> u64 {
    let d = Sha256::digest(text.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

fn checksum(app: &App, q: &BTreeMap<String, String>) -> Out {
    let Some(entity) = q.get("entity").and_then(|p| app.catalog.entity(p)) else {
        return exact_error(404, "unknown entity");
    };
    let Some(div) = q.get("division").and_then(|d| d.parse::<i32>().ok()) else {
        return exact_error(400, "division is required");
    };
    let mut fields: Vec<usize> = match q.get("fields").filter(|f| !f.is_empty()) {
        None => (0..entity.props.len()).collect(),
        Some(f) => {
            let mut v = Vec::new();
            for name in f.split(',').map(str::trim) {
                match entity.prop(name) {
                    Some(pi) => v.push(pi),
                    None => {
                        return exact_error(
                            400,
                            &format!(
                                "Type '{}' does not have a property named '{}'",
                                entity.type_name, name
                            ),
                        )
                    }
                }
            }
            v
        }
    };
    fields.sort_by(|a, b| entity.props[*a].name.cmp(&entity.props[*b].name));
    let now = app.cfg.clock.now_ms();
    let gen = app.gen(entity, div);
    let spec = special(app, entity, now);
    let plain = !has_special(entity);
    let n = app.rows(entity);
    let store = app.store.lock().unwrap();
    let overlay = store.overlay(&App::table(entity), div);
    let plan = Plan::default();
    let scan = Scan {
        gen,
        n,
        overlay,
        plan: &plan,
        division: div,
    };
    let (mut count, mut hash, mut keys_hash) = (0u64, 0u64, 0u64);
    let mut after = None;
    let mut text = String::new();
    loop {
        let (rows, more) = scan.page(Order::Key, after, 0, 10_000);
        for &i in &rows {
            let change = overlay.and_then(|o| o.changed.get(&i));
            text.clear();
            for &pi in &fields {
                text.push_str(&entity.props[pi].name);
                text.push('=');
                if change.is_none() && plain {
                    // the same text as the Val path, written directly
                    gen.write_json(pi, i, &mut text);
                } else {
                    row_val(&gen, pi, i, change, &spec).write_json(&mut text);
                }
                text.push('\n');
            }
            hash = hash.wrapping_add(row_hash(&text));
            keys_hash = keys_hash.wrapping_add(row_hash(&gen.key_literal(i)));
            count += 1;
        }
        after = rows.last().copied();
        if !more {
            break;
        }
    }
    Out::json(
        200,
        &serde_json::json!({
            "entity": entity.path,
            "division": div,
            "count": count,
            "hash": format!("{hash:016x}"),
            "keys_hash": format!("{keys_hash:016x}"),
            "fields": fields.iter().map(|&pi| entity.props[pi].name.clone()).collect::<Vec<_>>(),
        }),
    )
}
