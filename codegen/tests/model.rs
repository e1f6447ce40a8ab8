//! The model through the library's public interface: selection and its closure, inheritance and
//! keys from base types, V2 navigation resolution, documentation sources, type mapping and
//! overrides, naming decisions.

use odata_codegen::edm_types::{RustType, TypeMap};
use odata_codegen::model::selection::{explain, Selection};
use odata_codegen::model::{TypeKind, TypeRef};
use odata_codegen::source::SourceFile;
use odata_codegen::{build_model, parse, BuildOptions, Diagnostics, Model};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus")
        .join(rel)
}

fn model_of(
    files: &[PathBuf],
    selection: Selection,
    type_map: TypeMap,
) -> (Option<Model>, Diagnostics) {
    let (docs, mut d) = odata_codegen::load_documents(files);
    assert!(!d.has_errors(), "{d}");
    let (m, d2) = build_model(
        &docs,
        &BuildOptions {
            service: "svc".into(),
            selection,
            lenient: false,
            type_map,
            renames: Default::default(),
        },
    );
    d.extend(d2);
    (m, d)
}

fn model_of_text(xml: &str, selection: Selection) -> (Option<Model>, Diagnostics) {
    let src = SourceFile::new("inline.xml", xml.to_string());
    let mut d = Diagnostics::default();
    let doc = parse::parse_document(&src, 0, &mut d).expect("well-formed");
    let (m, d2) = build_model(
        &[(src, doc)],
        &BuildOptions {
            service: "svc".into(),
            selection,
            lenient: false,
            type_map: TypeMap::default(),
            renames: Default::default(),
        },
    );
    d.extend(d2);
    (m, d)
}

fn v4(body: &str) -> String {
    format!(
        r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>
<Schema Namespace="NS" Alias="Self" xmlns="http://docs.oasis-open.org/odata/ns/edm">
{body}
</Schema></edmx:DataServices></edmx:Edmx>"#
    )
}

#[test]
fn keys_declared_in_a_base_type_and_inherited_properties_come_first() {
    let (m, d) = model_of(
        &[corpus(
            "metadata-synthetic/odata-connectedservice__AbstractEntityTypeWithoutKey.xml",
        )],
        Selection::All,
        TypeMap::default(),
    );
    let m = m.unwrap_or_else(|| panic!("{d}"));
    // Every selected entity type with a key has its key properties first.
    for t in m.entity_types() {
        let s = t.as_struct().unwrap();
        for (i, k) in s.key.iter().enumerate() {
            assert_eq!(&s.properties[i].wire_name, k, "{}", t.qname);
            assert!(s.properties[i].is_key);
        }
    }
    let derived: Vec<_> = m
        .entity_types()
        .filter(|t| t.as_struct().unwrap().base_type.is_some())
        .collect();
    assert!(!derived.is_empty());
}

#[test]
fn v2_navigation_properties_resolve_through_associations() {
    let (m, d) = model_of(
        &[corpus("metadata/northwind-v2__service.xml")],
        Selection::All,
        TypeMap::default(),
    );
    let m = m.unwrap_or_else(|| panic!("{d}"));
    let cat = m
        .types
        .values()
        .find(|t| t.wire_name == "Category")
        .unwrap();
    let s = cat.as_struct().unwrap();
    let products = s
        .navigations
        .iter()
        .find(|n| n.wire_name == "Products")
        .unwrap();
    assert!(products.many);
    assert!(products.target.ends_with(".Product"), "{}", products.target);
    let prod = m
        .types
        .values()
        .find(|t| t.wire_name == "Product")
        .unwrap()
        .as_struct()
        .unwrap();
    let c = prod
        .navigations
        .iter()
        .find(|n| n.wire_name == "Category")
        .unwrap();
    assert!(!c.many);
    assert_eq!(
        c.constraints,
        vec![("CategoryID".to_string(), "CategoryID".to_string())]
    );
}

#[test]
fn selection_pulls_in_complex_enum_and_base_types_but_not_navigation_targets() {
    let (m, d) = model_of(
        &[corpus("metadata/trippin-v4__TripPinServiceRW.xml")],
        Selection::Names(vec!["Airports".into()]),
        TypeMap::default(),
    );
    let m = m.unwrap_or_else(|| panic!("{d}"));
    let names: Vec<&str> = m.types.keys().map(String::as_str).collect();
    assert!(
        names.contains(&"Microsoft.OData.SampleService.Models.TripPin.Airport"),
        "{names:?}"
    );
    assert!(
        names.contains(&"Microsoft.OData.SampleService.Models.TripPin.AirportLocation"),
        "{names:?}"
    );
    assert!(
        names.contains(&"Microsoft.OData.SampleService.Models.TripPin.Location"),
        "{names:?}"
    ); // base of AirportLocation
    assert!(!names.iter().any(|n| n.ends_with(".Person")), "{names:?}");
    let why = explain(&m);
    assert!(why.contains("Location (complex): base type of Microsoft.OData.SampleService.Models.TripPin.AirportLocation"), "{why}");
    assert_eq!(m.entity_sets.len(), 1);
}

#[test]
fn unknown_selection_names_are_errors_listing_what_exists() {
    let (m, d) = model_of(
        &[corpus("metadata/northwind-v4__northwind-metadata.xml")],
        Selection::Names(vec!["Ordrs".into()]),
        TypeMap::default(),
    );
    assert!(m.is_none());
    let e = d.errors().next().unwrap().to_string();
    assert!(
        e.contains("'Ordrs' is neither an entity set") && e.contains("Orders"),
        "{e}"
    );
}

#[test]
fn documentation_from_core_description_inline_and_out_of_line_and_sap_labels() {
    let xml = v4(
        r#"<EntityType Name="Thing"><Key><PropertyRef Name="Id"/></Key>
  <Property Name="Id" Type="Edm.Int32" Nullable="false"><Annotation Term="Core.Description" String="The identifier"/></Property>
  <Property Name="Name" Type="Edm.String"/>
</EntityType>
<Annotations Target="Self.Thing/Name"><Annotation Term="Org.OData.Core.V1.Description" String="Display name &amp; more"/></Annotations>
<EntityContainer Name="C"><EntitySet Name="Things" EntityType="Self.Thing"/></EntityContainer>"#,
    );
    let (m, d) = model_of_text(&xml, Selection::All);
    let m = m.unwrap_or_else(|| panic!("{d}"));
    let s = m.types["NS.Thing"].as_struct().unwrap();
    assert_eq!(s.properties[0].docs.as_deref(), Some("The identifier"));
    assert_eq!(s.properties[1].docs.as_deref(), Some("Display name & more"));
    let (m, _) = model_of(
        &[corpus("metadata/sap-gateway-demo__GWSAMPLE_BASIC.xml")],
        Selection::All,
        TypeMap::default(),
    );
    let m = m.unwrap();
    let bp = m
        .types
        .values()
        .find(|t| t.wire_name == "BusinessPartner")
        .unwrap()
        .as_struct()
        .unwrap();
    assert!(
        bp.properties
            .iter()
            .any(|p| p.docs.as_deref().is_some_and(|d| d.contains("Company"))),
        "sap:label docs missing"
    );
}

#[test]
fn decimals_map_by_precision_and_scale_and_overrides_win() {
    let xml = v4(
        r#"<EntityType Name="Money"><Key><PropertyRef Name="Id"/></Key>
  <Property Name="Id" Type="Edm.Int64" Nullable="false"/>
  <Property Name="Small" Type="Edm.Decimal" Precision="13" Scale="3"/>
  <Property Name="Huge" Type="Edm.Decimal" Precision="34" Scale="2"/>
  <Property Name="Floating" Type="Edm.Decimal" Precision="16" Scale="variable"/>
  <Property Name="Bare" Type="Edm.Decimal"/>
  <Property Name="When" Type="Edm.DateTime"/>
</EntityType>
<EntityContainer Name="C"><EntitySet Name="Money" EntityType="Self.Money"/></EntityContainer>"#,
    );
    let (m, d) = model_of_text(&xml, Selection::All);
    let m = m.unwrap_or_else(|| panic!("{d}"));
    let s = m.types["NS.Money"].as_struct().unwrap();
    let rust = |n: &str| {
        s.properties
            .iter()
            .find(|p| p.wire_name == n)
            .unwrap()
            .rust
            .clone()
            .unwrap()
            .rust
    };
    assert_eq!(rust("Id"), "i64");
    assert_eq!(rust("Small"), "::rust_decimal::Decimal");
    assert_eq!(rust("Huge"), "::bigdecimal::BigDecimal");
    assert_eq!(rust("Floating"), "::bigdecimal::BigDecimal");
    assert_eq!(rust("Bare"), "::bigdecimal::BigDecimal");
    assert_eq!(rust("When"), "::chrono::NaiveDateTime");

    // Per type and per property overrides.
    let mut types = BTreeMap::new();
    types.insert(
        "Edm.DateTime".to_string(),
        RustType {
            rust: "::std::string::String".into(),
            adapter: None,
            crates: vec![],
        },
    );
    let mut props = BTreeMap::new();
    props.insert(
        "NS.Money/Small".to_string(),
        RustType {
            rust: "f64".into(),
            adapter: Some("::odata_runtime::wire::Lenient".into()),
            crates: vec![],
        },
    );
    let tm = TypeMap::default().with_overrides(&types, &props);
    let src = SourceFile::new("inline.xml", xml.clone());
    let mut dd = Diagnostics::default();
    let doc = parse::parse_document(&src, 0, &mut dd).unwrap();
    let (m, _) = build_model(
        &[(src, doc)],
        &BuildOptions {
            service: "svc".into(),
            selection: Selection::All,
            lenient: false,
            type_map: tm,
            renames: Default::default(),
        },
    );
    let m = m.unwrap();
    let s = m.types["NS.Money"].as_struct().unwrap();
    let rust = |n: &str| {
        s.properties
            .iter()
            .find(|p| p.wire_name == n)
            .unwrap()
            .rust
            .clone()
            .unwrap()
            .rust
    };
    assert_eq!(rust("Small"), "f64");
    assert_eq!(rust("When"), "::std::string::String");
    assert_eq!(rust("Huge"), "::bigdecimal::BigDecimal");
}

#[test]
fn enums_number_members_and_type_definitions_resolve_to_primitives() {
    let xml = v4(
        r#"<EnumType Name="Color"><Member Name="Red"/><Member Name="Green" Value="5"/><Member Name="Blue"/></EnumType>
<TypeDefinition Name="Amount" UnderlyingType="Edm.Decimal" Precision="10" Scale="2"/>
<EntityType Name="Paint"><Key><PropertyRef Name="Id"/></Key>
  <Property Name="Id" Type="Edm.Int32" Nullable="false"/>
  <Property Name="Color" Type="Self.Color"/>
  <Property Name="Colors" Type="Collection(Self.Color)"/>
  <Property Name="Price" Type="Self.Amount"/>
</EntityType>
<EntityContainer Name="C"><EntitySet Name="Paints" EntityType="Self.Paint"/></EntityContainer>"#,
    );
    let (m, d) = model_of_text(&xml, Selection::All);
    let m = m.unwrap_or_else(|| panic!("{d}"));
    let TypeKind::Enum(e) = &m.types["NS.Color"].kind else {
        panic!()
    };
    let vals: Vec<(String, i64)> = e
        .members
        .iter()
        .map(|m| (m.wire_name.clone(), m.value))
        .collect();
    assert_eq!(
        vals,
        vec![("Red".into(), 0), ("Green".into(), 5), ("Blue".into(), 6)]
    );
    let s = m.types["NS.Paint"].as_struct().unwrap();
    assert!(
        matches!(&s.properties[2].ty, TypeRef::Collection(inner) if matches!(**inner, TypeRef::Enum { .. }))
    );
    assert_eq!(
        s.properties[3].rust.as_ref().unwrap().rust,
        "::rust_decimal::Decimal"
    );
    assert_eq!(s.properties[3].facets.precision, Some(10));
    assert!(
        !m.types.contains_key("NS.Amount"),
        "type definitions are inlined"
    );
}

#[test]
fn cross_namespace_duplicates_get_the_namespace_as_prefix() {
    // Both alert types (no entity set: reachable through navigation only) and the enums they use.
    let sel = Selection::Names(vec![
        "microsoft.graph.alert".into(),
        "microsoft.graph.security.alert".into(),
        "users".into(),
    ]);
    let (m, d) = model_of(
        &[corpus("metadata/msgraph__v1.0-Prod.csdl.xml")],
        sel,
        TypeMap::default(),
    );
    let m = m.unwrap_or_else(|| {
        panic!(
            "{}",
            d.errors()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let a = &m.types["microsoft.graph.alertSeverity"];
    let b = &m.types["microsoft.graph.security.alertSeverity"];
    assert_eq!(a.rust_name, "AlertSeverity");
    assert_eq!(b.rust_name, "MicrosoftGraphSecurityAlertSeverity");
    // Short names shared by two namespaces: the first by qualified name keeps it, the other gets
    // its namespace as prefix.
    let mut by_short: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in m.types.values() {
        by_short
            .entry(t.wire_name.as_str())
            .or_default()
            .push(t.qname.as_str());
    }
    let pairs: Vec<_> = by_short.values().filter(|v| v.len() > 1).collect();
    assert!(!pairs.is_empty());
    for v in &pairs {
        let first = &m.types[v[0]];
        assert_eq!(
            first.rust_name,
            odata_codegen::naming::rust_type_name(&first.wire_name),
            "{}",
            first.qname
        );
        for q in &v[1..] {
            let t = &m.types[*q];
            let prefix = odata_codegen::naming::rust_type_name(&t.namespace);
            assert!(
                t.rust_name.starts_with(&prefix),
                "{} → {}",
                t.qname,
                t.rust_name
            );
        }
    }
    let names: std::collections::BTreeSet<&str> =
        m.types.values().map(|t| t.rust_name.as_str()).collect();
    assert_eq!(
        names.len(),
        m.types.len(),
        "Rust type names are unique service-wide"
    );
    let collisions = d
        .warnings()
        .filter(|w| w.message.starts_with("types: "))
        .count();
    assert_eq!(collisions, pairs.iter().map(|v| v.len() - 1).sum::<usize>());
}

#[test]
fn sql_names_of_the_1c_file_fit_postgres_and_are_unique() {
    let (m, d) = model_of(
        &[corpus("metadata/1c-enterprise__StandardODATA_Russian.xml")],
        Selection::All,
        TypeMap::default(),
    );
    let m = m.unwrap_or_else(|| panic!("{d}"));
    let mut shortened = 0;
    for t in m.types.values() {
        if let Some(s) = t.as_struct() {
            let mut seen = std::collections::BTreeSet::new();
            for p in &s.properties {
                assert!(p.sql_name.len() <= 63, "{}", p.sql_name);
                assert!(
                    seen.insert(p.sql_name.to_lowercase()),
                    "duplicate column {} in {}",
                    p.sql_name,
                    t.qname
                );
                if odata_codegen::naming::sql_base_name(&p.wire_name).len() > 63 {
                    shortened += 1;
                }
            }
        }
    }
    for s in m.entity_sets.values() {
        assert!(s.sql_name.len() <= 63);
    }
    assert!(shortened > 0);
}

#[test]
fn duplicate_property_is_an_error_with_both_positions() {
    let xml = v4(r#"<EntityType Name="T"><Key><PropertyRef Name="Id"/></Key>
<Property Name="Id" Type="Edm.Int32" Nullable="false"/>
<Property Name="Id" Type="Edm.String"/></EntityType>
<EntityContainer Name="C"><EntitySet Name="Ts" EntityType="Self.T"/></EntityContainer>"#);
    let (m, d) = model_of_text(&xml, Selection::All);
    assert!(m.is_none());
    let e = d.errors().next().unwrap().to_string();
    assert!(e.starts_with("inline.xml:5:1: error: property 'Id' of 'NS.T' is declared twice (first in 'NS.T' at 4:1)"), "{e}");
}

#[test]
fn pinned_names_from_service_toml_replace_derived_ones() {
    let toml = "[rename]\n\"NS.Thing\" = \"Widget\"\n\"NS.Thing/Name\" = \"label\"\n";
    let st = odata_codegen::config::ServiceToml::parse(Path::new("service.toml"), toml).unwrap();
    let xml = v4(
        r#"<EntityType Name="Thing"><Key><PropertyRef Name="Id"/></Key>
<Property Name="Id" Type="Edm.Int32" Nullable="false"/><Property Name="Name" Type="Edm.String"/></EntityType>
<EntityContainer Name="C"><EntitySet Name="Things" EntityType="Self.Thing"/></EntityContainer>"#,
    );
    let src = SourceFile::new("inline.xml", xml);
    let mut d = Diagnostics::default();
    let doc = parse::parse_document(&src, 0, &mut d).unwrap();
    let opts = BuildOptions {
        service: "svc".into(),
        selection: Selection::All,
        lenient: false,
        type_map: TypeMap::default(),
        renames: st.rename,
    };
    let (m, d) = build_model(&[(src, doc)], &opts);
    let m = m.unwrap_or_else(|| panic!("{d}"));
    let t = &m.types["NS.Thing"];
    assert_eq!(t.rust_name, "Widget");
    let s = t.as_struct().unwrap();
    assert_eq!(s.properties[1].rust_name, "label");
    assert_eq!(s.key_rust_name.as_deref(), Some("WidgetKey"));
    let e = odata_codegen::config::ServiceToml::parse(
        Path::new("service.toml"),
        "[rename]\n\"NS.T\" = \"not valid\"\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a Rust identifier"), "{e}");
}
