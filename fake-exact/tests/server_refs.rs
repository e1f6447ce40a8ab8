//! Referential integrity of the generated data (issue 5: "TransactionLines referring to
//! existing GLAccounts and Accounts"), through HTTP: a Guid property naming another entity set
//! holds the key of an existing row of that set in the same division, and its `…Code`,
//! `…Name`, `…Description` siblings are that row's values; a String `XCode` without a Guid `X`
//! is the `Code` of an existing `Xs` row (rule: `Catalog::link`).

mod server_common;

use fake_exact::Config;
use serde_json::Value;
use server_common::{results, start, Api, DIV};
use std::collections::{BTreeMap, BTreeSet};

/// Every row of a bulk endpoint (one page of up to 1000 rows), keyed by `ID`.
fn by_id(api: &Api, division: i32, endpoint: &str, select: &str) -> BTreeMap<String, Value> {
    let url = format!(
        "{}/api/v1/{division}/{endpoint}?$select={select}",
        api.h.base_url()
    );
    let v = api.get_json(&url, 200);
    assert!(v["d"].get("__next").is_none(), "one page: {endpoint}");
    results(&v)
        .iter()
        .map(|r| (r["ID"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn config() -> Config {
    let mut c = Config::default();
    c.rows.insert("GLAccounts".into(), 37);
    c.rows.insert("Accounts".into(), 53);
    c.rows.insert("TransactionLines".into(), 400);
    c.rows.insert("SalesInvoices".into(), 20);
    c.rows.insert("SalesInvoiceLines".into(), 90);
    c.rows.insert("Contacts".into(), 70);
    c.rows.insert("Journals".into(), 12);
    c
}

/// §1.2 bulk endpoints, §2.2 JSON: every TransactionLine's `GLAccount` and `Account` is the
/// `ID` of a GLAccount / Account of the same division, with matching code, name and description.
#[test]
fn transaction_lines_refer_to_existing_glaccounts_and_accounts() {
    let api = start(config());
    for div in [DIV, 100002] {
        let gl = by_id(
            &api,
            div,
            "bulk/Financial/GLAccounts",
            "ID,Code,Description",
        );
        let acc = by_id(&api, div, "bulk/CRM/Accounts", "ID,Code,Name");
        assert_eq!((gl.len(), acc.len()), (37, 53));
        let lines = by_id(
            &api,
            div,
            "bulk/Financial/TransactionLines",
            "ID,GLAccount,GLAccountCode,GLAccountDescription,Account,AccountCode,AccountName",
        );
        assert_eq!(lines.len(), 400);
        let (mut gl_seen, mut acc_seen) = (BTreeSet::new(), BTreeSet::new());
        for (id, l) in &lines {
            if let Some(g) = l["GLAccount"].as_str() {
                let row = gl
                    .get(g)
                    .unwrap_or_else(|| panic!("line {id}: GLAccount {g} does not exist"));
                assert_eq!(l["GLAccountCode"], row["Code"], "line {id}");
                assert_eq!(l["GLAccountDescription"], row["Description"], "line {id}");
                gl_seen.insert(g);
            } else {
                assert!(l["GLAccount"].is_null() && l["GLAccountCode"].is_null());
            }
            if let Some(a) = l["Account"].as_str() {
                let row = acc
                    .get(a)
                    .unwrap_or_else(|| panic!("line {id}: Account {a} does not exist"));
                assert_eq!(l["AccountCode"], row["Code"], "line {id}");
                assert_eq!(l["AccountName"], row["Name"], "line {id}");
                acc_seen.insert(a);
            }
        }
        // references are mostly set (nullable ones are null 1 in 10) and spread over the targets
        assert!(gl_seen.len() > 25 && acc_seen.len() > 35, "{gl_seen:?}");
        let set = lines
            .values()
            .filter(|l| l["GLAccount"].is_string())
            .count();
        assert!(set > 300, "{set} of 400 lines have a GLAccount");
    }
    // code references: JournalCode is the Code of an existing Journal, JournalDescription its
    // Description
    let journals = api.get_json("financial/Journals?$select=Code,Description", 200);
    assert_eq!(results(&journals).len(), 12);
    // (every non-key property of the derived $metadata is nullable, Code included)
    let journals: BTreeMap<&str, &Value> = results(&journals)
        .iter()
        .filter_map(|r| Some((r["Code"].as_str()?, r)))
        .collect();
    let lines = api.get_json(
        "bulk/Financial/TransactionLines?$select=ID,JournalCode,JournalDescription",
        200,
    );
    let mut seen = BTreeSet::new();
    for l in results(&lines) {
        if let Some(code) = l["JournalCode"].as_str() {
            let j = journals
                .get(code)
                .unwrap_or_else(|| panic!("journal {code:?} does not exist"));
            assert_eq!(l["JournalDescription"], j["Description"]);
            seen.insert(code);
        }
    }
    assert!(seen.len() >= journals.len() - 2, "{seen:?}");
    // the regular endpoint serves the same references as the bulk one
    let page = api.get_json(
        "financialtransaction/TransactionLines?$select=ID,GLAccount,Account",
        200,
    );
    let bulk = by_id(
        &api,
        DIV,
        "bulk/Financial/TransactionLines",
        "ID,GLAccount,Account",
    );
    for r in results(&page) {
        let b = &bulk[r["ID"].as_str().unwrap()];
        assert_eq!(
            (&r["GLAccount"], &r["Account"]),
            (&b["GLAccount"], &b["Account"])
        );
    }
}

/// Header/lines and other references: `SalesInvoiceLines.InvoiceID` → `SalesInvoices`,
/// `Contacts.Account` → `Accounts`; a property named like another variant's key
/// (`QuotationID` in `sync/CRM/Quotations`, keyed by `ID`) is the row's own key.
#[test]
fn invoice_lines_contacts_and_variants_refer_to_existing_rows() {
    let api = start(config());
    let url = |p: &str| format!("{}/api/v1/{DIV}/{p}", api.h.base_url());
    let inv = api.get_json(
        &url("bulk/SalesInvoice/SalesInvoices?$select=InvoiceID,InvoiceNumber"),
        200,
    );
    let invoices: BTreeMap<&str, &Value> = results(&inv)
        .iter()
        .map(|r| (r["InvoiceID"].as_str().unwrap(), r))
        .collect();
    assert_eq!(invoices.len(), 20);
    let lines = api.get_json(
        &url("bulk/SalesInvoice/SalesInvoiceLines?$select=ID,InvoiceID"),
        200,
    );
    assert_eq!(results(&lines).len(), 90);
    for l in results(&lines) {
        if let Some(i) = l["InvoiceID"].as_str() {
            assert!(invoices.contains_key(i), "invoice {i} does not exist");
        }
    }
    let acc = by_id(&api, DIV, "bulk/CRM/Accounts", "ID");
    let contacts = by_id(&api, DIV, "bulk/CRM/Contacts", "ID,Account");
    for c in contacts.values() {
        if let Some(a) = c["Account"].as_str() {
            assert!(acc.contains_key(a), "account {a} does not exist");
        }
    }
    let q = api.get_json(&url("sync/CRM/Quotations?$select=ID,QuotationID"), 200);
    let crm = api.get_json(&url("crm/Quotations?$select=QuotationID"), 200);
    assert_eq!(results(&q)[0]["ID"], results(&q)[0]["QuotationID"]);
    assert_eq!(results(&q)[0]["ID"], results(&crm)[0]["QuotationID"]);
}

/// §2.2: generated rows are written by a direct JSON writer, changed rows by the general one;
/// both give the same row shape: `__metadata` (uri with the key, type), every property in
/// `$metadata` order, `__deferred` links under the row's uri. A row updated with its own
/// values reads back equal apart from Modified/Timestamp.
#[test]
fn generated_and_changed_rows_have_the_same_shape() {
    let api = start(config());
    let before = api.get_json("crm/Accounts?$top=3", 200);
    let row1 = results(&before)[1].clone();
    let key = api.h.key_literal("crm/Accounts", DIV, 1).unwrap();
    api.control(
        "POST",
        "mutate",
        Some(
            serde_json::json!({"entity": "crm/Accounts", "division": DIV, "op": "update",
            "key": key, "fields": {"Name": row1["Name"].clone()}}),
        ),
    );
    let after = api.get_json("crm/Accounts?$top=3", 200);
    let (plain, changed) = (&results(&after)[0], &results(&after)[1]);
    let names = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(plain), names(changed));
    assert_eq!(plain["__metadata"]["type"], changed["__metadata"]["type"]);
    let uri = changed["__metadata"]["uri"].as_str().unwrap();
    assert!(uri.ends_with(&format!("/crm/Accounts({key})")), "{uri}");
    assert_eq!(
        changed["BankAccounts"]["__deferred"]["uri"],
        format!("{uri}/BankAccounts")
    );
    for (k, v) in row1.as_object().unwrap() {
        if k != "Modified" {
            assert_eq!(&changed[k], v, "{k}");
        }
    }
    assert_eq!(results(&after)[0], results(&before)[0]);
}
