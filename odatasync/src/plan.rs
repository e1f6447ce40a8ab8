//! Which entities a run syncs, in which order: `config.json`'s `skip`, `dependsOn`
//! (topological order), `one_division_only`, `check_count`, and `--entities`.

use crate::error::Error;
use crate::service::Service;
use odata_runtime::TableInfo;

/// The endpoint of Exact's deletion log (handled by `sync_deleted`, not as a table).
pub const DELETED_ENDPOINT: &str = "sync/Deleted";

/// One entity of a plan.
#[derive(Debug, Clone)]
pub struct PlannedEntity {
    /// config.json name.
    pub name: String,
    /// Path under the service root, without a leading `/`.
    pub endpoint: String,
    pub table: &'static TableInfo,
    pub one_division_only: bool,
    pub check_count: bool,
    /// Where `check_count` asks for `$count`: the endpoint itself, or for a bulk or sync
    /// endpoint (which have no `$count`) the standard endpoint of the same entity set in
    /// config.json.
    pub count_endpoint: String,
    /// Entities of this plan that must succeed first (in the same division).
    pub depends_on: Vec<String>,
    /// `sync/Deleted`: marks deletions in the other tables instead of filling its own.
    pub is_deletion_log: bool,
    /// config.json `skip_paging`: `$top`/`$skip` paging when the service sends no next link.
    pub skip_paging: Option<u64>,
}

/// Builds the plan: the entities named (any, including `skip`ped ones), or else every entity
/// without `skip`; in a topological order of `dependsOn` (ties by name), the deletion log last.
/// A name that is not in config.json is a usage error listing the names.
pub fn plan(service: &Service, names: Option<&[String]>) -> Result<Vec<PlannedEntity>, Error> {
    let order = service.config.run_order().map_err(Error::Config)?;
    if let Some(names) = names {
        for n in names {
            if !service.config.entities.contains_key(n) {
                let known: Vec<&str> = order.iter().map(String::as_str).collect();
                return Err(Error::Usage(format!(
                    "--entities: '{n}' is not an entity of {}/config.json (entities: {})",
                    service.dir.display(),
                    known.join(", ")
                )));
            }
        }
    }
    let wanted = |n: &str| match names {
        Some(names) => names.iter().any(|x| x == n),
        None => !service.config.entities[n].skip,
    };
    let mut out: Vec<PlannedEntity> = Vec::new();
    let mut deletion_log = Vec::new();
    for name in order.iter().filter(|n| wanted(n)) {
        let cfg = &service.config.entities[name];
        let table = service.table(name).ok_or_else(|| {
            Error::Config(format!(
                "entity '{name}' has no generated table (run `cargo build`)"
            ))
        })?;
        let endpoint = cfg.path().to_string();
        let is_deletion_log = endpoint.eq_ignore_ascii_case(DELETED_ENDPOINT);
        let count_endpoint = count_endpoint(service, &endpoint, table);
        let p = PlannedEntity {
            name: name.clone(),
            count_endpoint,
            endpoint,
            table,
            one_division_only: cfg.one_division_only,
            check_count: cfg.check_count && !is_deletion_log,
            depends_on: cfg
                .depends_on
                .iter()
                .filter(|d| wanted(d))
                .cloned()
                .collect(),
            is_deletion_log,
            skip_paging: cfg.skip_paging,
        };
        if is_deletion_log {
            deletion_log.push(p);
        } else {
            out.push(p);
        }
    }
    out.extend(deletion_log);
    Ok(out)
}

/// Warnings about a plan that works but costs more than it needs: a standard endpoint (60
/// rows a call on Exact) synced while config.json has a bulk or sync endpoint (1000 rows a
/// call) for the same entity set.
pub fn advice(service: &Service, plan: &[PlannedEntity]) -> Vec<String> {
    let mut out = Vec::new();
    for p in plan {
        if is_bulk_or_sync(&p.endpoint) {
            continue;
        }
        let set = p.table.entity_set;
        let better = service.config.entities.iter().find(|(n, c)| {
            is_bulk_or_sync(c.path())
                && service
                    .table(n)
                    .is_some_and(|t| t.entity_set.eq_ignore_ascii_case(set))
        });
        if let Some((n, c)) = better {
            out.push(format!(
                "{}: {} pages 60 rows a call; '{n}' ({}) reads the same rows 1000 a call",
                p.name,
                p.endpoint,
                c.path()
            ));
        }
    }
    out
}

fn is_bulk_or_sync(endpoint: &str) -> bool {
    let e = endpoint.to_ascii_lowercase();
    e.starts_with("bulk/") || e.starts_with("sync/")
}

fn count_endpoint(service: &Service, endpoint: &str, table: &TableInfo) -> String {
    if !is_bulk_or_sync(endpoint) {
        return endpoint.to_string();
    }
    service
        .config
        .entities
        .iter()
        .filter(|(_, c)| !is_bulk_or_sync(c.path()))
        .find(|(n, _)| {
            service
                .table(n)
                .is_some_and(|t| t.entity_set.eq_ignore_ascii_case(table.entity_set))
        })
        .map(|(_, c)| c.path().to_string())
        .unwrap_or_else(|| endpoint.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Service;
    use std::path::Path;

    fn exact() -> Service {
        Service::load(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata-cache")),
            "exact",
        )
        .expect("metadata-cache/exact")
    }

    fn names(p: &[PlannedEntity]) -> Vec<&str> {
        p.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn default_plan_skips_skipped_orders_dependencies_and_puts_the_deletion_log_last() {
        let svc = exact();
        let p = plan(&svc, None).unwrap();
        let n = names(&p);
        for e in &p {
            assert!(!svc.config.entities[&e.name].skip, "{} is skip", e.name);
        }
        let pos = |x: &str| n.iter().position(|y| *y == x).unwrap();
        assert!(pos("SyncGLAccounts") < pos("SyncTransactionLines"));
        assert!(pos("SyncAccounts") < pos("SyncTransactionLines"));
        assert_eq!(*n.last().unwrap(), "SyncDeleted");
        assert!(p.last().unwrap().is_deletion_log);
        assert!(!p.last().unwrap().check_count);
        let gltt = &p[pos("GLTransactionTypes")];
        assert!(gltt.one_division_only);
        // Dependencies outside the plan (BulkSalesInvoices is skipped) are dropped.
        assert!(p[pos("BulkSalesInvoiceLines")].depends_on.is_empty());
        assert_eq!(
            p[pos("SyncTransactionLines")].depends_on,
            vec!["SyncGLAccounts".to_string(), "SyncAccounts".to_string()]
        );
    }

    #[test]
    fn named_entities_may_be_skipped_ones_and_keep_the_dependency_order() {
        let svc = exact();
        let wanted = ["TransactionLines", "Accounts", "GLAccounts"].map(String::from);
        let p = plan(&svc, Some(&wanted)).unwrap();
        assert_eq!(names(&p), ["Accounts", "GLAccounts", "TransactionLines"]);
        assert_eq!(p[2].depends_on, ["GLAccounts", "Accounts"]);
    }

    #[test]
    fn an_unknown_entity_is_a_usage_error_that_lists_the_entities() {
        let svc = exact();
        let e = plan(&svc, Some(&["GLAcounts".to_string()])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let m = e.to_string();
        assert!(m.contains("'GLAcounts'") && m.contains("GLAccounts"), "{m}");
    }

    #[test]
    fn bulk_and_sync_endpoints_count_through_the_standard_endpoint() {
        let svc = exact();
        let p = plan(&svc, None).unwrap();
        let get = |n: &str| p.iter().find(|e| e.name == n).unwrap();
        assert_eq!(get("SyncAccounts").count_endpoint, "crm/Accounts");
        assert_eq!(
            get("BulkSalesInvoiceLines").count_endpoint,
            "salesinvoice/SalesInvoiceLines"
        );
        assert_eq!(get("Journals").count_endpoint, "financial/Journals");
    }

    #[test]
    fn advice_names_the_bulk_or_sync_alternative_of_a_standard_endpoint() {
        let svc = exact();
        let p = plan(
            &svc,
            Some(&["GLAccounts".to_string(), "Journals".to_string()]),
        )
        .unwrap();
        let a = advice(&svc, &p);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(
            a[0].starts_with("GLAccounts: financial/GLAccounts"),
            "{a:?}"
        );
        assert!(advice(&svc, &plan(&svc, None).unwrap()).is_empty());
    }
}
