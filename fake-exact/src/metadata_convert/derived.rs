//! The sync and bulk endpoints, which the scraped reference lacks (the scrape is keyed by
//! endpoint name, so `sync/CRM/Accounts` and `bulk/CRM/Accounts` collapsed into `crm/Accounts`;
//! `shared/corpus/SOURCES.md`). Their list comes from the most used client, which models every
//! one of them (exact-online.md §1.2 cites it): `picqer/exact-php-client` snapshot `8b350573`
//! (2025-12-19), `src/Picqer/Financials/Exact/Sync*.php` and `Bulk*.php`, the `$url` of each model.
//! The reference's service list (`skylence-2026-01__exact-api-resources.json`) has no sync or
//! bulk service at all, but lists each standard counterpart used below under the same service.
//!
//! Each entry names the standard endpoint it is derived from. When the input reference lacks
//! that endpoint, the entry is not emitted and the converter reports it: a type is never made
//! up without documented properties.

/// One sync or bulk endpoint and where its properties come from.
#[derive(Debug, Clone, Copy)]
pub struct DerivedEndpoint {
    /// Path under `/api/v1/{division}/`, with Exact's casing: `sync/CRM/Accounts`.
    pub path: &'static str,
    /// The standard endpoint with the same entity: `crm/Accounts` (matched case-insensitively
    /// against the reference's `uri`).
    pub standard: &'static str,
    /// For the sync endpoints that return one row per *line* with the header's fields repeated
    /// (picqer's `SyncSalesInvoice` model has both `InvoiceID` and the line's `ID`, `Item`,
    /// `Quantity`, `NetPrice`, …): the line endpoint whose properties are appended and whose key
    /// keys the row.
    pub lines: Option<&'static str>,
}

const fn d(path: &'static str, standard: &'static str) -> DerivedEndpoint {
    DerivedEndpoint {
        path,
        standard,
        lines: None,
    }
}

const fn flat(path: &'static str, standard: &'static str, lines: &'static str) -> DerivedEndpoint {
    DerivedEndpoint {
        path,
        standard,
        lines: Some(lines),
    }
}

/// Sync endpoints (GET only, 1000 rows per page, `Timestamp` Int64 row-version cursor;
/// exact-online.md §1.3). Where the standard counterpart is not obvious, the comment says why
/// the natural name is kept (and therefore usually not found in a 2019/2021 scrape).
pub const SYNC_ENDPOINTS: &[DerivedEndpoint] = &[
    d("sync/CRM/Accounts", "crm/Accounts"),
    d("sync/CRM/Addresses", "crm/Addresses"),
    d("sync/CRM/Contacts", "crm/Contacts"),
    // No standard QuotationHeaders endpoint in the 2019/2021 reference.
    d("sync/CRM/QuotationHeaders", "crm/QuotationHeaders"),
    d("sync/CRM/QuotationLines", "crm/QuotationLines"),
    flat(
        "sync/CRM/Quotations",
        "crm/Quotations",
        "crm/QuotationLines",
    ),
    // Payment terms are not crm/cashflow PaymentConditions; no standard PaymentTerms endpoint.
    d("sync/Cashflow/PaymentTerms", "cashflow/PaymentTerms"),
    d(
        "sync/Documents/DocumentAttachments",
        "documents/DocumentAttachments",
    ),
    d("sync/Documents/Documents", "documents/Documents"),
    d("sync/Financial/GLAccounts", "financial/GLAccounts"),
    d(
        "sync/Financial/GLClassifications",
        "financial/GLClassifications",
    ),
    d(
        "sync/Financial/TransactionLines",
        "financialtransaction/TransactionLines",
    ),
    d(
        "sync/HRM/AbsenceRegistrationTransactions",
        "hrm/AbsenceRegistrationTransactions",
    ),
    d("sync/HRM/AbsenceRegistrations", "hrm/AbsenceRegistrations"),
    d(
        "sync/HRM/LeaveAbsenceHoursByDay",
        "hrm/LeaveAbsenceHoursByDay",
    ),
    d(
        "sync/HRM/LeaveBuildUpRegistrations",
        "hrm/LeaveBuildUpRegistrations",
    ),
    d("sync/HRM/LeaveRegistrations", "hrm/LeaveRegistrations"),
    d("sync/HRM/ScheduleEntries", "hrm/ScheduleEntries"),
    d("sync/HRM/Schedules", "hrm/Schedules"),
    d(
        "sync/Inventory/ItemStorageLocations",
        "inventory/ItemStorageLocations",
    ),
    d("sync/Inventory/ItemWarehouses", "inventory/ItemWarehouses"),
    d(
        "sync/Inventory/SerialBatchNumbers",
        "inventory/SerialBatchNumbers",
    ),
    // Not read/logistics/StockPosition (a keyless read function with other fields).
    d("sync/Inventory/StockPositions", "inventory/StockPositions"),
    d(
        "sync/Inventory/StockSerialBatchNumbers",
        "inventory/StockSerialBatchNumbers",
    ),
    d(
        "sync/Inventory/StorageLocationStockPositions",
        "inventory/StorageLocationStockPositions",
    ),
    d("sync/Logistics/Items", "logistics/Items"),
    d(
        "sync/Logistics/PurchaseItemPrices",
        "logistics/PurchaseItemPrices",
    ),
    d(
        "sync/Logistics/SalesItemPrices",
        "logistics/SalesItemPrices",
    ),
    d("sync/Logistics/SupplierItem", "logistics/SupplierItem"),
    d(
        "sync/Manufacturing/BillOfMaterialMaterials",
        "manufacturing/BillOfMaterialMaterials",
    ),
    d(
        "sync/Manufacturing/BillOfMaterialVersions",
        "manufacturing/BillOfMaterialVersions",
    ),
    d(
        "sync/Manufacturing/MaterialIssues",
        "manufacturing/MaterialIssues",
    ),
    d(
        "sync/Manufacturing/ShopOrderMaterialPlans",
        "manufacturing/ShopOrderMaterialPlans",
    ),
    d(
        "sync/Manufacturing/ShopOrderPurchasePlanning",
        "manufacturing/ShopOrderPurchasePlanning",
    ),
    d(
        "sync/Manufacturing/ShopOrderRoutingStepPlans",
        "manufacturing/ShopOrderRoutingStepPlans",
    ),
    d(
        "sync/Manufacturing/ShopOrderSubOrders",
        "manufacturing/ShopOrderSubOrders",
    ),
    d("sync/Manufacturing/ShopOrders", "manufacturing/ShopOrders"),
    // Employees' bank accounts (picqer's model has Employee, EmployeeHID), not crm/BankAccounts.
    d("sync/Payroll/BankAccounts", "payroll/BankAccounts"),
    d("sync/Payroll/EmploymentCLAs", "payroll/EmploymentCLAs"),
    d(
        "sync/Payroll/EmploymentContracts",
        "payroll/EmploymentContracts",
    ),
    d(
        "sync/Payroll/EmploymentOrganizations",
        "payroll/EmploymentOrganizations",
    ),
    d(
        "sync/Payroll/EmploymentSalaries",
        "payroll/EmploymentSalaries",
    ),
    d(
        "sync/Payroll/EmploymentTaxAuthoritiesGeneral",
        "payroll/EmploymentTaxAuthoritiesGeneral",
    ),
    d("sync/Payroll/Employees", "payroll/Employees"),
    d("sync/Payroll/Employments", "payroll/Employments"),
    d("sync/Project/ProjectPlanning", "project/ProjectPlanning"),
    d("sync/Project/ProjectWBS", "project/ProjectWBS"),
    d("sync/Project/Projects", "project/Projects"),
    // Time and cost transactions; project/TimeTransactions and CostTransactions are separate.
    d(
        "sync/Project/TimeCostTransactions",
        "project/TimeCostTransactions",
    ),
    flat(
        "sync/PurchaseOrder/PurchaseOrders",
        "purchaseorder/PurchaseOrders",
        "purchaseorder/PurchaseOrderLines",
    ),
    d(
        "sync/Sales/SalesPriceListVolumeDiscounts",
        "sales/SalesPriceListVolumeDiscounts",
    ),
    flat(
        "sync/SalesInvoice/SalesInvoices",
        "salesinvoice/SalesInvoices",
        "salesinvoice/SalesInvoiceLines",
    ),
    d(
        "sync/SalesOrder/GoodsDeliveries",
        "salesorder/GoodsDeliveries",
    ),
    d(
        "sync/SalesOrder/GoodsDeliveryLines",
        "salesorder/GoodsDeliveryLines",
    ),
    d(
        "sync/SalesOrder/SalesOrderHeaders",
        "salesorder/SalesOrderHeaders",
    ),
    d(
        "sync/SalesOrder/SalesOrderLines",
        "salesorder/SalesOrderLines",
    ),
    flat(
        "sync/SalesOrder/SalesOrders",
        "salesorder/SalesOrders",
        "salesorder/SalesOrderLines",
    ),
    d(
        "sync/Subscription/SubscriptionLines",
        "subscription/SubscriptionLines",
    ),
    d(
        "sync/Subscription/Subscriptions",
        "subscription/Subscriptions",
    ),
];

/// Bulk endpoints (GET only, 1000 rows per page, the standard endpoint's properties;
/// exact-online.md §1.2).
pub const BULK_ENDPOINTS: &[DerivedEndpoint] = &[
    d("bulk/CRM/Accounts", "crm/Accounts"),
    d("bulk/CRM/Addresses", "crm/Addresses"),
    d("bulk/CRM/Contacts", "crm/Contacts"),
    d("bulk/CRM/QuotationLines", "crm/QuotationLines"),
    d("bulk/CRM/Quotations", "crm/Quotations"),
    d("bulk/Cashflow/Payments", "cashflow/Payments"),
    d("bulk/Cashflow/Receivables", "cashflow/Receivables"),
    d(
        "bulk/Documents/DocumentAttachments",
        "documents/DocumentAttachments",
    ),
    d("bulk/Documents/Documents", "documents/Documents"),
    d("bulk/Financial/GLAccounts", "financial/GLAccounts"),
    d(
        "bulk/Financial/GLClassifications",
        "financial/GLClassifications",
    ),
    d(
        "bulk/Financial/TransactionLines",
        "financialtransaction/TransactionLines",
    ),
    d("bulk/Logistics/Items", "logistics/Items"),
    d(
        "bulk/Logistics/SalesItemPrices",
        "logistics/SalesItemPrices",
    ),
    d(
        "bulk/SalesInvoice/SalesInvoiceLines",
        "salesinvoice/SalesInvoiceLines",
    ),
    d(
        "bulk/SalesInvoice/SalesInvoices",
        "salesinvoice/SalesInvoices",
    ),
    d(
        "bulk/SalesOrder/GoodsDeliveries",
        "salesorder/GoodsDeliveries",
    ),
    d(
        "bulk/SalesOrder/GoodsDeliveryLines",
        "salesorder/GoodsDeliveryLines",
    ),
    d(
        "bulk/SalesOrder/SalesOrderLines",
        "salesorder/SalesOrderLines",
    ),
    d("bulk/SalesOrder/SalesOrders", "salesorder/SalesOrders"),
];

/// `sync/Deleted`: the deletion log (exact-online.md §1.4; fields from picqer `SyncDeleted.php`,
/// Airbyte `schemas/sync_deleted.json` and leapforce `sync/Deleted.go`, which agree). Keyed by
/// `ID`, the log row's own key; `Timestamp` is the cursor. (name, Edm type, description)
pub const SYNC_DELETED_PATH: &str = "sync/Deleted";

pub const SYNC_DELETED_PROPERTIES: &[(&str, &str, &str)] = &[
    (
        "Timestamp",
        "Edm.Int64",
        "Timestamp: row version of the log row, the cursor for incremental reads ($filter=Timestamp gt {last}L)",
    ),
    ("DeletedBy", "Edm.Guid", "User ID of the person who deleted the record"),
    ("DeletedDate", "Edm.DateTime", "Deletion date"),
    ("Division", "Edm.Int32", "Division code"),
    ("EntityKey", "Edm.Guid", "Primary key (ID) of the deleted record"),
    (
        "EntityType",
        "Edm.Int32",
        "Entity type of the deleted record: 1=TransactionLines 2=Accounts 3=Addresses 4=Attachments 5=Contacts \
6=Documents 7=GLAccounts 8=ItemPrices 9=Items 10=PaymentTerms 11=Quotations 12=SalesOrders (replaced by 32/33) \
13=SalesInvoices 14=TimeCostTransactions 15=StockPositions 16=GoodsDeliveries 17=GoodsDeliveryLines \
18=GLClassifications 19=ItemWarehouses 20=StorageLocationStockPositions 21=Projects 22=PurchaseOrders \
23=Subscriptions 24=SubscriptionLines 25=ProjectWBS 26=ProjectPlanning 27=LeaveAbsenceHoursByDay \
28=SerialBatchNumbers 29=StockSerialBatchNumbers 30=ItemAccounts 31=DiscountTables 32=SalesOrderHeaders \
33=SalesOrderLines 34=QuotationHeaders 35=QuotationLines 36=ShopOrders 37=ShopOrderMaterialPlans \
38=ShopOrderRoutingStepPlans 39=Schedules 40=ScheduleEntries 41=ItemStorageLocations 42=Employees \
43=Employments 44=EmploymentContracts 45=EmploymentOrganizations 46=EmploymentCLAs 47=EmploymentSalaries \
48=BankAccounts 49=EmploymentTaxAuthoritiesGeneral 50=ShopOrderPurchasePlanning 51=ShopOrderSubOrders \
53=RequirementIssues 54=BillOfMaterialMaterials 55=BillOfMaterialVersions; the list grows, unknown codes are data",
    ),
    ("ID", "Edm.Guid", "Primary key of the log row"),
];

/// The `Timestamp` property added to every derived sync type (exact-online.md §1.3: every sync
/// endpoint has it, as an Int64 row version; it is listed first in Exact's sync reference pages).
pub const SYNC_TIMESTAMP_DESCRIPTION: &str =
    "Timestamp: row version, ever increasing; the cursor for incremental sync ($filter=Timestamp gt {last}L)";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn tables_have_unique_paths_and_consistent_shapes() {
        let mut seen = BTreeSet::new();
        for e in SYNC_ENDPOINTS.iter().chain(BULK_ENDPOINTS) {
            assert!(
                seen.insert(e.path.to_ascii_lowercase()),
                "duplicate {}",
                e.path
            );
            let segs: Vec<&str> = e.path.split('/').collect();
            assert_eq!(segs.len(), 3, "{}", e.path);
            assert!(segs[0] == "sync" || segs[0] == "bulk", "{}", e.path);
            // the entity (last segment) is the same as the standard one's
            assert_eq!(
                segs[2],
                e.standard.rsplit('/').next().unwrap(),
                "{}",
                e.path
            );
            assert!(e.lines.is_none() || segs[0] == "sync");
        }
        assert!(!seen.contains(&SYNC_DELETED_PATH.to_ascii_lowercase()));
        assert_eq!(SYNC_ENDPOINTS.len(), 59);
        assert_eq!(BULK_ENDPOINTS.len(), 20);
    }
}
