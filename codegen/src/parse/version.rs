//! Which OData version a document is, from what the EDMX wrapper and the CSDL namespace say.
//!
//! - `edmx:Edmx/@Version` `4.0`/`4.01` → V4 (OData V4 EDMX; wins over any `DataServiceVersion`
//!   a V4 service still writes, as the Outlook REST metadata does).
//! - otherwise `m:DataServiceVersion` or `m:MaxDataServiceVersion` ≥ 3 → V3 (the service speaks
//!   V3 even when the document is 1.0/2.0-shaped, e.g. Northwind V3 with DSV 1.0 / Max 3.0).
//! - otherwise an EDMX 1.0 document, or one with a DSV, → V2.
//! - with none of these (a bare `<Schema>`), the CSDL namespace decides: the OASIS namespace →
//!   V4, `2009/11` (CSDL 3.0) → V3, the 2006/04..2008/09 namespaces → V2.

use crate::csdl::ODataVersion;

/// What the wrapper and schemas said, as written.
#[derive(Debug, Default)]
pub(super) struct VersionHints<'s> {
    pub edmx_version: &'s str,
    /// Namespace URI of the `Edmx` element (`xmlns:edmx`), if seen.
    pub edmx_namespace: Option<&'s str>,
    pub data_service_version: Option<&'s str>,
    pub max_data_service_version: Option<&'s str>,
    /// Namespace URI of the first `Schema` element, if seen.
    pub csdl_namespace: Option<&'s str>,
}

const OASIS: &str = "http://docs.oasis-open.org/odata/ns/";

pub(super) fn decide(h: &VersionHints<'_>) -> Option<ODataVersion> {
    let edmx = h.edmx_version.trim();
    if edmx.starts_with('4') {
        return Some(ODataVersion::V4);
    }
    let dsv = [h.data_service_version, h.max_data_service_version]
        .into_iter()
        .flatten()
        .filter_map(major)
        .max();
    match dsv {
        Some(m) if m >= 4 && edmx.is_empty() => return Some(ODataVersion::V4),
        Some(m) if m >= 3 => return Some(ODataVersion::V3),
        Some(_) => return Some(ODataVersion::V2),
        None => {}
    }
    if !edmx.is_empty() {
        return Some(ODataVersion::V2);
    }
    if h.edmx_namespace.is_some_and(|ns| ns.starts_with(OASIS)) {
        return Some(ODataVersion::V4);
    }
    let ns = h.csdl_namespace?;
    if ns.starts_with(OASIS) {
        Some(ODataVersion::V4)
    } else if ns.contains("/2009/11/") {
        Some(ODataVersion::V3)
    } else if ns.contains("schemas.microsoft.com/ado/") {
        Some(ODataVersion::V2)
    } else {
        None
    }
}

/// The major number of a version string such as `3.0` or `2.0;NetFx`.
fn major(v: &str) -> Option<u32> {
    let v = v.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    v.get(..digits)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(edmx: &str, dsv: Option<&str>, max: Option<&str>) -> Option<ODataVersion> {
        decide(&VersionHints {
            edmx_version: edmx,
            data_service_version: dsv,
            max_data_service_version: max,
            ..VersionHints::default()
        })
    }

    #[test]
    fn edmx_4_wins_over_data_service_version() {
        assert_eq!(v("4.0", Some("4.0"), Some("4.0")), Some(ODataVersion::V4));
        assert_eq!(v("4.01", None, None), Some(ODataVersion::V4));
        assert_eq!(v("4.0", Some("3.0"), None), Some(ODataVersion::V4));
    }

    #[test]
    fn data_service_versions_pick_v2_or_v3() {
        assert_eq!(v("1.0", Some("1.0"), None), Some(ODataVersion::V2));
        assert_eq!(v("1.0", Some("2.0"), None), Some(ODataVersion::V2));
        assert_eq!(v("1.0", Some("1.0"), Some("2.0")), Some(ODataVersion::V2));
        assert_eq!(v("1.0", Some("1.0"), Some("3.0")), Some(ODataVersion::V3));
        assert_eq!(v("1.0", Some("3.0"), Some("3.0")), Some(ODataVersion::V3));
        assert_eq!(v("1.0", None, None), Some(ODataVersion::V2));
        assert_eq!(v("1.0", Some("2.0;NetFx"), None), Some(ODataVersion::V2));
    }

    #[test]
    fn namespaces_decide_when_nothing_else_does() {
        let bare = |ns: &'static str| {
            decide(&VersionHints {
                csdl_namespace: Some(ns),
                ..VersionHints::default()
            })
        };
        assert_eq!(
            bare("http://docs.oasis-open.org/odata/ns/edm"),
            Some(ODataVersion::V4)
        );
        assert_eq!(
            bare("http://schemas.microsoft.com/ado/2009/11/edm"),
            Some(ODataVersion::V3)
        );
        assert_eq!(
            bare("http://schemas.microsoft.com/ado/2008/09/edm"),
            Some(ODataVersion::V2)
        );
        assert_eq!(bare("urn:something-else"), None);
        assert_eq!(v("", None, None), None);
    }
}
