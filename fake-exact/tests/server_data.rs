//! Data endpoints over real HTTP: URL shapes (§1), JSON shapes and types (§2.2, §2.5), paging
//! (§2.3), query options (§2.4), errors (§2.6).

mod server_common;

use fake_exact::Config;
use serde_json::Value;
use server_common::{results, rss_kb, start, Api, DIV};
use std::collections::BTreeSet;
use std::time::Instant;

fn cfg_rows(entity: &str, rows: u64) -> Config {
    let mut c = Config::default();
    c.rows.insert(entity.into(), rows);
    c
}

/// Follows `__next` links, returning every page.
fn all_pages(api: &Api, first: &str) -> Vec<Value> {
    let mut pages = vec![api.get_json(first, 200)];
    while let Some(next) = pages.last().unwrap()["d"]["__next"]
        .as_str()
        .map(String::from)
    {
        assert!(
            next.starts_with(api.h.base_url()),
            "__next is absolute: {next}"
        );
        assert!(next.contains("$skiptoken="), "{next}");
        pages.push(api.get_json(&next, 200));
        assert!(pages.len() < 100);
    }
    pages
}

/// §2.3: 60 rows per page on regular endpoints, `__next` absolute with `$skiptoken` = last key
/// and the original options; §6: `Modified` ties straddle page boundaries, so a `gt` cursor
/// on page-level checkpoints would lose rows.
#[test]
fn paging_150_rows_gives_3_pages_every_row_once_with_ties_at_boundaries() {
    let api = start(cfg_rows("Accounts", 150));
    let pages = all_pages(&api, "crm/Accounts?$select=ID,Code,Modified");
    let sizes: Vec<usize> = pages.iter().map(|p| results(p).len()).collect();
    assert_eq!(sizes, vec![60, 60, 30]);
    assert!(
        pages[2]["d"].get("__next").is_none(),
        "no __next on the last page"
    );
    let next = pages[0]["d"]["__next"].as_str().unwrap();
    assert!(next.contains("$select=ID,Code,Modified"), "{next}");
    let last_id = results(&pages[0])[59]["ID"].as_str().unwrap();
    assert!(
        next.ends_with(&format!("$skiptoken=guid'{last_id}'")),
        "{next}"
    );
    let ids: Vec<&str> = pages
        .iter()
        .flat_map(|p| results(p).iter().map(|r| r["ID"].as_str().unwrap()))
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 150);
    assert_eq!(unique.len(), 150);
    for w in pages.windows(2) {
        let a = results(&w[0]).last().unwrap()["Modified"].clone();
        let b = results(&w[1])[0]["Modified"].clone();
        assert_eq!(a, b, "Modified tie across the page boundary");
    }
    // only the selected fields (+ __metadata)
    let row = results(&pages[0])[0].as_object().unwrap();
    let keys: BTreeSet<&str> = row.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["__metadata", "ID", "Code", "Modified"])
    );
}

/// §1.3, §2.4, §8: bulk and sync endpoints need `$select` (400 with Exact's text and error
/// shape, §2.6); with it, bulk pages hold 1000 rows (§2.3).
#[test]
fn select_is_required_on_bulk_and_sync_and_bulk_pages_hold_1000() {
    let api = start(cfg_rows("Accounts", 1500));
    for path in ["bulk/CRM/Accounts", "sync/CRM/Accounts"] {
        let v = api.get_json(path, 400);
        assert_eq!(
            Api::error_text(&v),
            "Please add a $select or a $top=1 statement to the query string."
        );
    }
    let pages = all_pages(&api, "bulk/CRM/Accounts?$select=ID,Name");
    let sizes: Vec<usize> = pages.iter().map(|p| results(p).len()).collect();
    assert_eq!(sizes, vec![1000, 500]);
    // sync: 1000 per page too, Timestamp as a string (§1.3, §2.5)
    let v = api.get_json("sync/CRM/Accounts?$select=ID,Timestamp", 200);
    assert_eq!(results(&v).len(), 1000);
    assert!(results(&v)[0]["Timestamp"].is_string());
}

/// §2.4: a configurable set of regular endpoints refuses queries without `$select` or `$top=1`.
#[test]
fn select_or_top1_required_on_configured_regular_endpoints() {
    let api = start(Config::default());
    let v = api.get_json("purchaseentry/PurchaseEntries", 400);
    assert!(Api::error_text(&v).starts_with("Please add a $select"));
    api.get_json("purchaseentry/PurchaseEntries?$top=1", 200);
    api.get_json("purchaseentry/PurchaseEntries?$select=EntryID", 200);
    // other regular endpoints serve all fields plus __deferred navigation links (§2.2)
    let v = api.get_json("crm/Accounts", 200);
    assert_eq!(results(&v).len(), 10);
}

/// §2.4: selecting a property the entity lacks → 400 "Type '…' does not have a property named '…'".
#[test]
fn unknown_select_field_is_400_with_exacts_text() {
    let api = start(Config::default());
    let v = api.get_json(
        "sync/Financial/GLAccounts?$select=ID,DeductibilityPercentages",
        400,
    );
    assert_eq!(
        Api::error_text(&v),
        "Type 'Exact.Web.Api.Models.GLAccountSync' does not have a property named 'DeductibilityPercentages'"
    );
}

/// §2.5: Int64 as strings, Int32/Double as numbers, `/Date(ms)/`, Guid strings, Booleans,
/// padded codes, nulls for some nullable properties, Unicode, quotes and ampersands.
#[test]
fn json_types_follow_exacts_encoding() {
    let api = start(cfg_rows("Accounts", 300));
    let pages = all_pages(
        &api,
        "bulk/CRM/Accounts?$select=ID,Code,Name,Modified,Division,CreditLinePurchase,Blocked,Email",
    );
    let rows: Vec<&Value> = pages.iter().flat_map(|p| results(p).iter()).collect();
    assert_eq!(rows.len(), 300);
    let r = rows[0];
    assert_eq!(r["__metadata"]["type"], "Exact.Web.Api.Models.AccountBulk");
    let id = r["ID"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert!(r["__metadata"]["uri"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/bulk/CRM/Accounts(guid'{id}')")));
    assert_eq!(r["Code"], "    1000");
    assert_eq!(r["Division"], DIV);
    let m = r["Modified"].as_str().unwrap();
    assert!(m.starts_with("/Date(") && m.ends_with(")/"), "{m}");
    let nulls = rows.iter().filter(|r| r["Email"].is_null()).count();
    assert!((10..=60).contains(&nulls), "~10% nulls, got {nulls}/300");
    assert!(rows.iter().any(|r| r["CreditLinePurchase"].is_number()));
    assert!(rows.iter().any(|r| r["Blocked"].is_boolean()));
    let names: String = rows.iter().filter_map(|r| r["Name"].as_str()).collect();
    for s in ["ß", "é", "Łukasz", "€", "\"", "&", "'"] {
        assert!(names.contains(s), "names contain {s}");
    }
}

/// §2.4, §1.3: `$filter` on Timestamp (`123L` and plain `123`), Modified (`datetime'…'`),
/// key and Division with `eq`, joined by `and`.
#[test]
fn filters_on_timestamp_modified_key_and_division() {
    let api = start(cfg_rows("Accounts", 100));
    let all = api.get_json("sync/CRM/Accounts?$select=ID,Timestamp", 200);
    let ts: Vec<i64> = results(&all)
        .iter()
        .map(|r| r["Timestamp"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ts.len(), 100);
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "Timestamp grows");
    let t50 = ts[50];
    let count = |f: &str| {
        results(&api.get_json(
            &format!("sync/CRM/Accounts?$select=ID,Timestamp&$filter={f}"),
            200,
        ))
        .len()
    };
    assert_eq!(count(&format!("Timestamp gt {t50}L")), 49);
    assert_eq!(count(&format!("Timestamp ge {t50}L")), 50);
    assert_eq!(count(&format!("Timestamp gt {t50}")), 49);
    assert_eq!(count(&format!("Timestamp eq {t50}L")), 1);
    assert_eq!(count(&format!("Timestamp lt {t50}L")), 50);
    assert_eq!(
        count(&format!("Timestamp le {t50}L and Timestamp gt {}L", ts[10])),
        40
    );

    let regular = api.get_json("crm/Accounts?$select=ID,Modified", 200);
    let page = results(&regular);
    assert_eq!(page.len(), 60);
    // row 14..20 share one Modified; find its wall-clock literal
    let ms: i64 = page[14]["Modified"].as_str().unwrap()[6..19]
        .parse()
        .unwrap();
    let lit = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let n = |f: &str| {
        let v = api.get_json(
            &format!("crm/Accounts?$select=ID&$inlinecount=allpages&$filter={f}"),
            200,
        );
        v["d"]["__count"].as_str().unwrap().parse::<u64>().unwrap()
    };
    assert_eq!(n(&format!("Modified eq datetime'{lit}'")), 7);
    assert_eq!(n(&format!("Modified ge datetime'{lit}'")), 86);
    assert_eq!(n(&format!("Modified gt datetime'{lit}'")), 79);
    assert_eq!(n(&format!("Modified lt datetime'{lit}'")), 14);
    let minute = &lit[..16];
    assert_eq!(
        n(&format!("Modified le datetime'{minute}'")),
        21,
        "seconds are optional"
    );

    let id = page[3]["ID"].as_str().unwrap();
    let v = api.get_json(
        &format!("crm/Accounts?$select=ID&$filter=ID eq guid'{id}' and Division eq {DIV}"),
        200,
    );
    assert_eq!(
        results(&v).len(),
        1,
        "a keyed filter still returns the list form (§2.2)"
    );
    assert_eq!(results(&v)[0]["ID"], id);
    assert_eq!(n("Division eq 999"), 0);
}

/// §2.6, §1.3: anything outside the supported subset is a 400 in Exact's error shape;
/// sync endpoints filter on Timestamp only.
#[test]
fn unsupported_filters_are_400() {
    let api = start(Config::default());
    for f in [
        "Timestamp gt 1L or Timestamp lt 5L",
        "substringof('a', Name)",
        "Name eq 'x'",
        "Modified gt 5",
        "Modified gt datetime'not a date'",
        "ID gt guid'00000000-0000-0000-0000-000000000000'",
        "Nope eq 1",
    ] {
        let v = api.get_json(&format!("crm/Accounts?$select=ID&$filter={f}"), 400);
        assert!(!Api::error_text(&v).is_empty(), "{f}");
    }
    let v = api.get_json(
        "sync/CRM/Accounts?$select=ID&$filter=Modified gt datetime'2021-01-01T00:00:00'",
        400,
    );
    assert!(Api::error_text(&v).contains("only Timestamp"));
}

/// §2.3: `$skip` is rejected on newer (bulk/sync) endpoints, works on regular ones;
/// `$top` limits the rows.
#[test]
fn skip_and_top() {
    let api = start(cfg_rows("Accounts", 100));
    let v = api.get_json("bulk/CRM/Accounts?$select=ID&$skip=10", 400);
    assert!(Api::error_text(&v).contains("$skip"));
    api.get_json("sync/CRM/Accounts?$select=ID&$skip=10", 400);
    let all = api.get_json("crm/Accounts?$select=ID", 200);
    let skipped = api.get_json("crm/Accounts?$select=ID&$skip=10&$top=5", 200);
    assert_eq!(results(&skipped).len(), 5);
    assert_eq!(results(&skipped)[0]["ID"], results(&all)[10]["ID"]);
    assert!(skipped["d"].get("__next").is_none());
    // $top above the page size pages on, carrying the remainder
    let pages = all_pages(&api, "crm/Accounts?$select=ID&$top=70");
    let sizes: Vec<usize> = pages.iter().map(|p| results(p).len()).collect();
    assert_eq!(sizes, vec![60, 10]);
}

/// §2.2: `$inlinecount=allpages` adds `__count` as a string; `/$count` is a bare number.
#[test]
fn inlinecount_and_count() {
    let api = start(cfg_rows("Accounts", 75));
    let v = api.get_json("crm/Accounts?$select=ID&$inlinecount=allpages", 200);
    assert_eq!(v["d"]["__count"], "75");
    let r = api.get("crm/Accounts/$count");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().unwrap(), "75");
}

/// §1.2, §2.2: single entity by key is `{"d": {...}}`; unknown keys are 404 (Exact shape).
#[test]
fn single_entity_by_key() {
    let api = start(Config::default());
    let page = api.get_json("crm/Accounts?$select=ID", 200);
    let id = results(&page)[2]["ID"].as_str().unwrap().to_string();
    let v = api.get_json(&format!("crm/Accounts(guid'{id}')"), 200);
    assert_eq!(v["d"]["ID"], id.as_str());
    assert!(v["d"].get("results").is_none());
    assert!(v["d"]["BankAccounts"]["__deferred"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("/BankAccounts"));
    let v = api.get_json(
        "crm/Accounts(guid'00000000-0000-4000-8000-000000000000')",
        404,
    );
    Api::error_text(&v);
}

/// §2.3: `$orderby` on key, Modified or Timestamp (ascending) is accepted.
#[test]
fn orderby_key_modified_timestamp() {
    let api = start(Config::default());
    let a = api.get_json("crm/Accounts?$select=ID&$orderby=ID", 200);
    let b = api.get_json("crm/Accounts?$select=ID&$orderby=Modified asc", 200);
    assert_eq!(a, b, "generated rows are in key and Modified order at once");
    api.get_json("sync/CRM/Accounts?$select=ID&$orderby=Timestamp", 200);
    api.get_json("crm/Accounts?$select=ID&$orderby=Name", 400);
}

/// §1.2, §2.1: `$metadata` per service is the cached XML (Accept optional), in any casing.
#[test]
fn metadata_documents_are_served() {
    let api = start(Config::default());
    for (path, needle) in [
        ("crm/$metadata", "EntitySet Name=\"Accounts\""),
        ("sync/CRM/$metadata", "AccountSync"),
        ("bulk/Financial/$metadata", "Exact.Web.Api.Models"),
    ] {
        let r = api
            .http
            .get(api.url(path))
            .bearer_auth(&api.access)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml"));
        assert!(r.text().unwrap().contains(needle), "{path}");
    }
}

/// §1.2: `/api/v1/current/Me` has no division and returns a one-element list with
/// `CurrentDivision`; `system/Divisions` accepts any division in the path.
#[test]
fn me_and_divisions() {
    let api = start(Config::default());
    let v = api.get_json(&format!("{}/api/v1/current/Me", api.h.base_url()), 200);
    assert_eq!(results(&v).len(), 1);
    assert_eq!(results(&v)[0]["CurrentDivision"], DIV);
    assert_eq!(
        results(&v)[0]["__metadata"]["type"],
        "Exact.Web.Api.Models.Me"
    );
    let v = api.get_json(
        &format!("{}/api/v1/123456/system/Divisions", api.h.base_url()),
        200,
    );
    let codes: Vec<i64> = results(&v)
        .iter()
        .map(|r| r["Code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![100001, 100002, 100003]);
    let v = api.get_json(
        &format!(
            "{}/api/v1/1/system/Divisions?$filter=Code eq 100002",
            api.h.base_url()
        ),
        200,
    );
    assert_eq!(results(&v).len(), 1);
    assert_eq!(results(&v)[0]["Code"], 100002);
    // system/Users needs no division either (§1.2)
    let v = api.get_json(
        &format!("{}/api/v1/system/Users?$select=UserID", api.h.base_url()),
        200,
    );
    assert_eq!(results(&v).len(), 10);
    // other entities need a division the user may access
    let v = api.get_json(
        &format!("{}/api/v1/123456/crm/Accounts?$select=ID", api.h.base_url()),
        403,
    );
    assert_eq!(Api::error_text(&v), "Forbidden - WrongDivision");
}

/// §4.1, §2.3: concurrent clients on several divisions are served independently (each
/// division has its own rate-limit counter; the server holds no per-request state).
#[test]
fn concurrent_requests_on_several_divisions() {
    let api = start(cfg_rows("Accounts", 500));
    std::thread::scope(|s| {
        for div in [100001, 100002, 100003] {
            let api = &api;
            s.spawn(move || {
                let mut url = format!(
                    "{}/api/v1/{div}/crm/Accounts?$select=ID,Name",
                    api.h.base_url()
                );
                let mut n = 0;
                loop {
                    let v = api.get_json(&url, 200);
                    n += results(&v).len();
                    match v["d"]["__next"].as_str() {
                        Some(next) => url = next.to_string(),
                        None => break,
                    }
                }
                assert_eq!(n, 500);
            });
        }
    });
    let stats = api.h.stats();
    for div in [100001, 100002, 100003] {
        assert_eq!(stats.calls[&format!("{div} crm/accounts")], 9);
    }
}

/// Every entity set of every cached `$metadata` document can be served (§1.2).
#[test]
fn every_entity_set_serves_a_page() {
    let api = start(Config {
        rows_per_entity: 2,
        minutely_limit: 10_000,
        ..Config::default()
    });
    let eps = api.h.endpoints();
    assert!(eps.len() > 200, "{}", eps.len());
    for ep in eps {
        if ep == "current/me" {
            continue;
        }
        let v = api.get_json(
            &format!("{ep}?$top=1"),
            if ep.starts_with("sync/") || ep.starts_with("bulk/") {
                400
            } else {
                200
            },
        );
        if ep.starts_with("sync/") || ep.starts_with("bulk/") {
            continue;
        }
        assert!(v["d"]["results"].is_array(), "{ep}");
    }
}

/// §2.3 at scale: a 1,000,000-row entity serves page 1 and page 16,000 from generated rows
/// without holding them (figures printed, no timed assertions).
#[test]
fn million_rows_page_1_and_page_16000() {
    let api = start(cfg_rows("Accounts", 1_000_000));
    let rss0 = rss_kb();
    let t = Instant::now();
    let p1 = api.get_json("crm/Accounts?$select=ID,Code,Name,Modified", 200);
    let d1 = t.elapsed();
    assert_eq!(results(&p1).len(), 60);
    let key = api
        .h
        .key_literal("crm/Accounts", DIV, 16_000 * 60 - 61)
        .unwrap();
    let t = Instant::now();
    let p16k = api.get_json(
        &format!("crm/Accounts?$select=ID,Code,Name,Modified&$skiptoken={key}"),
        200,
    );
    let d2 = t.elapsed();
    assert_eq!(results(&p16k).len(), 60);
    assert_eq!(results(&p16k)[0]["Code"], format!("{:>8}", 1000 + 959_940));
    let t = Instant::now();
    let via_skip = api.get_json(
        "crm/Accounts?$select=ID,Code,Name,Modified&$skip=959940",
        200,
    );
    let d3 = t.elapsed();
    assert_eq!(results(&via_skip)[0], results(&p16k)[0]);
    let last = api.get_json(
        &format!(
            "crm/Accounts?$select=ID&$skiptoken={}",
            api.h.key_literal("crm/Accounts", DIV, 999_959).unwrap()
        ),
        200,
    );
    assert_eq!(results(&last).len(), 40);
    assert!(last["d"].get("__next").is_none());
    let v = api.get_json("crm/Accounts?$select=ID&$top=1&$inlinecount=allpages", 200);
    assert_eq!(v["d"]["__count"], "1000000");
    println!(
        "1M rows: page 1 {d1:?}, page 16,000 via $skiptoken {d2:?}, via $skip {d3:?}; RSS {} kB -> {} kB",
        rss0,
        rss_kb()
    );
}

/// Bench (run with `--ignored --nocapture`): rows/s for 1000-row bulk pages and RSS at 1M rows.
#[test]
#[ignore]
fn bench_bulk_pages() {
    let mut cfg = cfg_rows("Accounts", 1_000_000);
    cfg.minutely_limit = 1_000_000;
    cfg.daily_limit = 1_000_000;
    let api = start(cfg);
    let rss0 = rss_kb();
    let t = Instant::now();
    let mut url = "bulk/CRM/Accounts?$select=ID,Code,Name,Modified,Division,CreditLinePurchase,Blocked,Email,City,Country".to_string();
    let mut rows = 0;
    for _ in 0..50 {
        let v = api.get_json(&url, 200);
        rows += results(&v).len();
        url = v["d"]["__next"].as_str().unwrap().to_string();
    }
    let secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut url = "bulk/CRM/Accounts?$select=*".to_string();
    let mut full = Value::Null;
    for _ in 0..10 {
        full = api.get_json(&url, 200);
        url = full["d"]["__next"].as_str().unwrap().to_string();
    }
    let full_secs = t.elapsed().as_secs_f64() / 10.0;
    let t = Instant::now();
    let c = api.control(
        "GET",
        &format!("checksum?entity=crm/Accounts&division={DIV}&fields=ID,Name,Modified"),
        None,
    );
    assert_eq!(c["count"], 1_000_000);
    println!("checksum over 1M rows (3 fields): {:?}", t.elapsed());
    println!(
        "bulk 10 fields: {rows} rows in {secs:.2}s = {:.0} rows/s (incl. client JSON parse); all {} fields: 1000 rows in {full_secs:.3}s = {:.0} rows/s; RSS {rss0} kB -> {} kB at 1M rows",
        rows as f64 / secs,
        results(&full)[0].as_object().unwrap().len() - 1,
        1000.0 / full_secs,
        rss_kb()
    );
}

/// §2.1: without `Accept: application/json` Exact answers Atom XML: a feed with
/// `m:properties`, `m:type`/`m:null`, local-time dates and a `link rel="next"`;
/// `$format=json` also selects JSON.
#[test]
fn atom_is_the_default_format() {
    let api = start(cfg_rows("Accounts", 100));
    let r = api
        .http
        .get(api.url("crm/Accounts?$select=ID,Name,Modified,Email,Blocked&$inlinecount=allpages"))
        .bearer_auth(&api.access)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/atom+xml"));
    let xml = r.text().unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut entries, mut next, mut nulls, mut counts) = (0, None, 0, 0);
    loop {
        match reader.read_event().expect("well-formed Atom") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                let attr = |k: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == k)
                        .map(|a| a.value.to_string())
                };
                match name.as_str() {
                    "entry" => entries += 1,
                    "link" if attr("rel").as_deref() == Some("next") => next = attr("href"),
                    "d:Modified" => assert_eq!(attr("m:type").as_deref(), Some("Edm.DateTime")),
                    "d:Email" if attr("m:null").as_deref() == Some("true") => nulls += 1,
                    "m:count" => counts += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    assert_eq!(entries, 60);
    assert_eq!(counts, 1);
    assert!(xml.contains("<m:count>100</m:count>"));
    assert!(next.unwrap().contains("$skiptoken=guid"));
    assert!(nulls < 60);
    assert!(
        xml.contains("<d:Modified m:type=\"Edm.DateTime\">2021-01-04T08:00:00.000</d:Modified>")
    );
    let r = api
        .http
        .get(api.url("crm/Accounts?$select=ID&$format=json"))
        .bearer_auth(&api.access)
        .send()
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}
