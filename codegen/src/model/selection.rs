//! Which entity sets are selected, and the explanation of why each type is in the model.
//!
//! By default every entity set and singleton is selected; `--entities A,B` or a service's
//! `config.json` selects a subset. The closure adds base types, complex types, enum types and
//! type definitions that selected types use. Navigation targets outside the selection are *not*
//! pulled in (ODataConnectedService#404: one selected type pulled in 2,551): their foreign-key
//! properties stay, the navigation field is left out.

use super::Model;
use std::fmt::Write as _;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub enum Selection {
    /// Every entity set and singleton.
    #[default]
    All,
    /// Every entity set and singleton, and every type the documents define (entity, complex and
    /// enum types), reachable from a set or not.
    AllTypes,
    /// These names: entity set or singleton names, or entity type names (short or qualified).
    Names(Vec<String>),
    /// From a service's config.json: (entity name, endpoint path) pairs. The entity set is the
    /// endpoint's last segment; the document is chosen by the endpoint's prefix.
    Config(Vec<(String, String)>),
}

/// `odatagen explain`: one line per selected type with the reasons it is included.
pub fn explain(model: &Model) -> String {
    let mut out = String::new();
    for (qname, reasons) in &model.reasons {
        let kind = match model.types.get(qname).map(|t| &t.kind) {
            Some(super::TypeKind::Entity(_)) => "entity",
            Some(super::TypeKind::Complex(_)) => "complex",
            Some(super::TypeKind::Enum(_)) => "enum",
            None => "type",
        };
        let _ = writeln!(out, "{qname} ({kind}): {}", reasons.join("; "));
    }
    out
}
