//! Topics → tables. `config.json` lists the topics per entity (`webhookTopics`); a topic is the
//! entity set it is about (Exact's topics are entity set names: `Accounts`, `GLAccounts`, §5).
//!
//! * `Create` / `Update`: the row is fetched by key through the endpoint of every config entity
//!   that lists the topic and upserted into that entity's table.
//! * `Delete`: `deleted_at` is set on the rows with that key in every table of the topic's
//!   entity set (standard, bulk and sync tables alike), as `sync/Deleted` does.

use crate::service::Service;
use odata_runtime::TableInfo;
use std::collections::BTreeMap;

/// A config entity that a topic's `Create`/`Update` events refresh.
#[derive(Debug, Clone)]
pub struct FetchTarget {
    /// The config.json entity name.
    pub entity: String,
    pub endpoint: String,
    pub table: &'static TableInfo,
}

/// Everything a topic's events touch.
#[derive(Debug, Clone)]
pub struct Topic {
    /// As written in config.json.
    pub name: String,
    pub fetch: Vec<FetchTarget>,
    /// Every table of the entity sets of `fetch` whose key is one column besides `division`.
    pub delete: Vec<&'static TableInfo>,
}

/// The topics of a service (looked up without regard to case, as Exact matches topics).
#[derive(Debug, Clone, Default)]
pub struct Topics {
    by_lower: BTreeMap<String, Topic>,
}

impl Topics {
    pub fn of(service: &Service) -> Topics {
        let mut by_lower: BTreeMap<String, Topic> = BTreeMap::new();
        for (name, cfg) in &service.config.entities {
            let Some(table) = service.table(name) else {
                continue;
            };
            for topic in &cfg.webhook_topics {
                let t = by_lower
                    .entry(topic.to_ascii_lowercase())
                    .or_insert_with(|| Topic {
                        name: topic.clone(),
                        fetch: Vec::new(),
                        delete: Vec::new(),
                    });
                t.fetch.push(FetchTarget {
                    entity: name.clone(),
                    endpoint: cfg.endpoint.trim_start_matches('/').to_string(),
                    table,
                });
            }
        }
        for t in by_lower.values_mut() {
            for target in &t.fetch {
                for table in service.tables.iter().filter(|x| {
                    x.entity_set.eq_ignore_ascii_case(target.table.entity_set)
                        && single_key(x).is_some()
                }) {
                    if !t.delete.iter().any(|d| d.name == table.name) {
                        t.delete.push(table);
                    }
                }
            }
        }
        Topics { by_lower }
    }

    pub fn get(&self, topic: &str) -> Option<&Topic> {
        self.by_lower.get(&topic.to_ascii_lowercase())
    }

    /// The topic names, as config.json writes them (sorted without regard to case).
    pub fn names(&self) -> Vec<String> {
        self.by_lower.values().map(|t| t.name.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_lower.is_empty()
    }
}

/// The key column of a table whose key is one column besides `division`.
pub fn single_key(t: &TableInfo) -> Option<&'static str> {
    let mut keys = t.primary_key.iter().filter(|k| **k != "division");
    match (keys.next(), keys.next()) {
        (Some(k), None) => Some(*k),
        _ => None,
    }
}
