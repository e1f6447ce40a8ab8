//! Every naming rule of the converter, in one place: entity type names, document (file) names,
//! container names. See the module documentation of [`super`] for the rules in prose.

/// Plural endings that the suffix rules below would get wrong, mapped to their singular.
/// Matched against the end of the name, so `ItemStatuses` → `ItemStatus`.
const IRREGULAR_PLURALS: &[(&str, &str)] = &[
    ("Statuses", "Status"),
    ("Bonuses", "Bonus"),
    ("Analyses", "Analysis"),
    ("Children", "Child"),
    ("People", "Person"),
];

/// Names (or name endings) that end in `s` but are already singular (or invariant).
const INVARIANT_ENDINGS: &[&str] = &[
    "Status", "Series", "News", "Bonus", "Basis", "Analysis", "Alias", "Canvas",
];

/// Exact's endpoint names are plural (`GLAccounts`, `Opportunities`, `Addresses`); its entity
/// type names are singular (`Exact.Web.Api.Models.Account`, `.SalesInvoice`, `.System.Me`,
/// `.GLAccountSync`, seen in `__metadata.type` and error texts, exact-online.md §1.2/§2.4).
/// The scrape carries no type names, so they are derived with this small, deterministic rule
/// set, applied in order:
///
/// 1. an irregular plural ending ([`IRREGULAR_PLURALS`]: `…Statuses` → `…Status`);
/// 2. an invariant ending stays ([`INVARIANT_ENDINGS`]: `…Status`, `…Series`);
/// 3. `…ies` → `…y` (`Opportunities` → `Opportunity`, `BankEntries` → `BankEntry`);
/// 4. `…sses` → `…ss` (`Addresses` → `Address`, `DivisionClasses` → `DivisionClass`);
/// 5. `…xes`, `…ches`, `…shes` drop `es` (`Mailboxes` → `Mailbox`);
/// 6. `…ss`, `…us`, `…is` stay (`Address`, `Bonus`);
/// 7. a final lower-case `s` is dropped (`GLAccounts` → `GLAccount`, `SalesOrderIDs` →
///    `SalesOrderID`); an upper-case final `S` is an acronym and stays (`ProjectWBS`);
/// 8. anything else is already singular and stays (`Me`, `Metadata`, `ReceivablesList`,
///    `ProjectPlanning`, `StockPosition`, `Deleted`).
pub fn singularize(name: &str) -> String {
    for (plural, singular) in IRREGULAR_PLURALS {
        if let Some(stem) = name.strip_suffix(plural) {
            return format!("{stem}{singular}");
        }
    }
    if INVARIANT_ENDINGS.iter().any(|end| name.ends_with(end)) {
        return name.to_string();
    }
    if let Some(stem) = name.strip_suffix("ies") {
        if !stem.is_empty() {
            return format!("{stem}y");
        }
    }
    if let Some(stem) = name.strip_suffix("sses") {
        return format!("{stem}ss");
    }
    for ending in ["xes", "ches", "shes"] {
        if name.ends_with(ending) {
            return name[..name.len() - 2].to_string();
        }
    }
    if name.ends_with("ss") || name.ends_with("us") || name.ends_with("is") {
        return name.to_string();
    }
    match name.strip_suffix('s') {
        Some(stem) if !stem.is_empty() => stem.to_string(),
        _ => name.to_string(),
    }
}

/// The casing Exact itself uses for service segments that are not a single capitalised word
/// (from the service list of Exact's reference, `skylence-2026-01__exact-api-resources.json`).
const SERVICE_CASING: &[(&str, &str)] = &[
    ("crm", "CRM"),
    ("financialtransaction", "FinancialTransaction"),
    ("generaljournalentry", "GeneralJournalEntry"),
    ("hrm", "HRM"),
    ("purchaseentry", "PurchaseEntry"),
    ("purchaseorder", "PurchaseOrder"),
    ("salesentry", "SalesEntry"),
    ("salesinvoice", "SalesInvoice"),
    ("salesorder", "SalesOrder"),
    ("vat", "VAT"),
];

/// A URL segment as a Pascal-case identifier part: `crm` → `CRM`, `financialtransaction` →
/// `FinancialTransaction`, `logistics` → `Logistics`, `CRM` → `CRM`.
pub fn pascal_segment(segment: &str) -> String {
    let lower = segment.to_ascii_lowercase();
    if let Some((_, cased)) = SERVICE_CASING.iter().find(|(l, _)| *l == lower) {
        return (*cased).to_string();
    }
    let mut chars = segment.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Pascal-case join of the document path segments: `["sync", "CRM"]` → `SyncCRM`.
pub fn pascal_path(segments: &[String]) -> String {
    segments.iter().map(|s| pascal_segment(s)).collect()
}

/// The file name of the document that describes the given document path (the endpoint path
/// without its last segment): segments lower-cased and joined with `.`, plus `.xml`.
/// `["financial"]` → `financial.xml`, `["sync", "Financial"]` → `sync.financial.xml`.
pub fn document_file_name(doc_segments: &[String]) -> String {
    let joined: Vec<String> = doc_segments
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    format!("{}.xml", joined.join("."))
}

/// An OData SimpleIdentifier as the converter accepts it: ASCII letter or `_` first, then ASCII
/// letters, digits and `_` (every name in the scrapes fits; anything else is reported).
pub fn is_simple_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singularize_regular_plurals() {
        for (plural, singular) in [
            ("GLAccounts", "GLAccount"),
            ("Accounts", "Account"),
            ("TransactionLines", "TransactionLine"),
            ("SalesInvoices", "SalesInvoice"),
            ("Divisions", "Division"),
            ("Employees", "Employee"),
            ("Warehouses", "Warehouse"),
            ("SalesOrderIDs", "SalesOrderID"),
            ("RecentHours", "RecentHour"),
        ] {
            assert_eq!(singularize(plural), singular, "{plural}");
        }
    }

    #[test]
    fn singularize_ies_sses_xes() {
        assert_eq!(singularize("Opportunities"), "Opportunity");
        assert_eq!(singularize("BankEntries"), "BankEntry");
        assert_eq!(singularize("Currencies"), "Currency");
        assert_eq!(singularize("Addresses"), "Address");
        assert_eq!(singularize("DivisionClasses"), "DivisionClass");
        assert_eq!(singularize("Mailboxes"), "Mailbox");
        assert_eq!(singularize("Batches"), "Batch");
    }

    #[test]
    fn singularize_keeps_singular_and_invariant_names() {
        for name in [
            "Me",
            "Status",
            "ItemStatus",
            "Metadata",
            "Series",
            "ReceivablesList",
            "ProfitLossOverview",
            "ProjectPlanning",
            "StockPosition",
            "ProjectWBS",
            "Deleted",
            "Address",
            "Bonus",
            "EmploymentTaxAuthoritiesGeneral",
            "MailMessagesSent",
            "s",
        ] {
            assert_eq!(singularize(name), name, "{name}");
        }
        assert_eq!(singularize("ItemStatuses"), "ItemStatus");
    }

    #[test]
    fn document_file_names() {
        let segs = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(document_file_name(&segs(&["financial"])), "financial.xml");
        assert_eq!(
            document_file_name(&segs(&["sync", "Financial"])),
            "sync.financial.xml"
        );
        assert_eq!(document_file_name(&segs(&["bulk", "CRM"])), "bulk.crm.xml");
        assert_eq!(
            document_file_name(&segs(&["read", "financial"])),
            "read.financial.xml"
        );
        assert_eq!(pascal_path(&segs(&["sync", "CRM"])), "SyncCRM");
        assert_eq!(pascal_path(&segs(&["salesinvoice"])), "SalesInvoice");
        assert_eq!(pascal_path(&segs(&["current"])), "Current");
    }

    #[test]
    fn simple_identifiers() {
        assert!(is_simple_identifier("Class_01"));
        assert!(is_simple_identifier("_x"));
        assert!(!is_simple_identifier("1x"));
        assert!(!is_simple_identifier("a-b"));
        assert!(!is_simple_identifier(""));
    }
}
