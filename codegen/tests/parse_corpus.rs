//! The streaming parser against every real, synthetic and invalid `$metadata` file of the shared
//! corpus (`shared/corpus/SOURCES.md`), plus a no-panic property test on mutated corpus files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use odata_codegen::csdl::{Document, ODataVersion};
use odata_codegen::diagnostics::{Diagnostics, Severity};
use odata_codegen::parse::parse_document;
use odata_codegen::source::SourceFile;
use proptest::prelude::*;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus");
const FOLDERS: [&str; 3] = ["metadata", "metadata-synthetic", "metadata-invalid"];

/// OData version of every corpus file, as SOURCES.md lists it.
const VERSIONS: &[(&str, ODataVersion)] = {
    use ODataVersion::*;
    &[
        ("northwind-v2-current__metadata.xml", V2),
        ("northwind-v2__service.xml", V2),
        ("northwind-v3__service.xml", V3),
        ("northwind-v4__northwind-metadata.xml", V4),
        ("odatademo-v2__service.xml", V2),
        ("odatademo-v3-later__TestMetadataCsdlV3.xml", V3),
        ("odatademo-v3__service.xml", V3),
        ("odatademo-v4__V4.xml", V4),
        ("trippin-inmemory-v4__trippin-csdl.xml", V4),
        ("trippin-restier-v4__trippin.xml", V4),
        ("trippin-v4__TripPinServiceRW.xml", V4),
        ("odata-v4-odatawcfservice__staticservice-metadata.xml", V4),
        ("simpleodata-wcfds-v3__Northwind_minified.xml", V3),
        ("msgraph__clean_v10_cleanMetadata.xml", V4),
        ("msgraph__v1.0-Prod.csdl.xml", V4),
        ("sharepoint-rest-v3__SharePoint.xml", V3),
        ("exchange-outlook-v4__metadata.xml", V4),
        ("sap-s4hana__API_BUSINESS_PARTNER.xml", V2),
        ("sap-s4hana__API_PRODUCT_SRV.xml", V2),
        ("sap-s4hana__API_SALES_ORDER_SRV.xml", V2),
        ("sap-s4hana-v4__CE_SALESORDER_0001.xml", V4),
        ("sap-gateway-demo__GWSAMPLE_BASIC.xml", V2),
        ("sap-gateway-demo__SEPMRA_PROD_MAN.xml", V2),
        ("sap-rap-v2__cds_xdmoxui_travel_a_d.xml", V2),
        ("sap-rap-v4__sd_travel_mdsk.xml", V4),
        ("sap-successfactors__ECEmployeeProfile.xml", V2),
        ("olingo__caps.products.CatalogService_default.xml", V4),
        ("olingo__sap-annotations-only.xml", V4),
        ("reso-dd__RESODataDictionary-1.7.xml", V4),
        ("reso-dd__RESODataDictionary-2.0.xml", V4),
        ("reso-mls-blackknight__Metadata_BKFSWS103.xml", V4),
        ("reso-mls-corelogic-trestle__Metadata.xml", V4),
        ("reso-mls-hawaii__Metadata.xml", V4),
        ("reso-mls-mlsgrid__Metadata.xml", V4),
        ("reso-mls-rapattoni__Metadata_Formatted.xml", V4),
        ("1c-enterprise__StandardODATA_Russian.xml", V3),
        ("simpleodata__Artifacts.xml", V3),
        ("simpleodata__ClientProductSku.xml", V4),
        ("simpleodata__Insight.xml", V3),
        ("olingo__fromdoc1-metadata.xml", V4),
        ("olingo__sap-v2-with-v4-references.xml", V2),
        (
            "odata-connectedservice__AbstractEntityTypeWithoutKey.xml",
            V4,
        ),
        ("odata-connectedservice__DupNames.xml", V4),
        ("odata-connectedservice__EmptySchema.xml", V4),
        ("odata-connectedservice__EntitiesEnumsFunctions.xml", V4),
        ("odata-connectedservice__EntityHierarchyWithIDAndId.xml", V4),
        (
            "odata-connectedservice__EntityPropertiesWithDefaultValues.xml",
            V4,
        ),
        ("odata-connectedservice__KeywordsAsNames.xml", V4),
        ("odata-connectedservice__MaxLength.xml", V4),
        ("odata-connectedservice__MergedFunctionalTest.xml", V4),
        ("odata-connectedservice__Multiplicity.xml", V4),
        ("odata-connectedservice__NamespaceInKeywords.xml", V4),
        ("odata-connectedservice__OverrideOperations.xml", V4),
        ("odata-connectedservice__PrefixConflict.xml", V4),
        ("odata-connectedservice__SampleServiceV2.xml", V2),
        (
            "odata-connectedservice__SampleServiceV4WithDateOnlyAndTimeOnly.xml",
            V4,
        ),
        (
            "odata-connectedservice__SourceParameterOrKeysProperty.xml",
            V4,
        ),
        ("odata-connectedservice__TypeDefinitions.xml", V4),
        (
            "odata-connectedservice__UnexpectedElementsAndAttributes.xml",
            V4,
        ),
        ("odata2ts-handmade__abstractAndOpen.xml", V4),
        ("odata2ts-handmade__edge-cases.xml", V4),
        ("odata2ts-handmade__multiple-schemas.xml", V4),
        ("odata2ts-handmade__oneOfEverything.xml", V2),
        ("reso-commander__bad-edmx-no-keyfield.xml", V4),
        ("reso-commander__bad-edmx-unparsable-xml.xml", V4),
        ("reso-commander__bad-edmx-wrong-edm-binding-target.xml", V4),
    ]
};

/// The only diagnostics the corpus produces: (file, severity, `line:col: message`).
const EXPECTED_DIAGNOSTICS: &[(&str, Severity, &str)] = &[
    (
        "reso-commander__bad-edmx-unparsable-xml.xml",
        Severity::Error,
        "19:47: unexpected text ''' inside <edmx:Edmx>",
    ),
    (
        "reso-mls-mlsgrid__Metadata.xml",
        Severity::Warning,
        "1:2320: <Annotation> has no 'Term' attribute; it is ignored",
    ),
    (
        "reso-mls-rapattoni__Metadata_Formatted.xml",
        Severity::Warning,
        "3:3: misspelled element 'edmx:Dataservices' read as 'edmx:DataServices'",
    ),
];

fn corpus_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in FOLDERS {
        let dir = Path::new(CORPUS).join(folder);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {} not readable: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "xml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn load(path: &Path) -> SourceFile {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} not readable: {e}", path.display()));
    SourceFile::new(path, text)
}

fn corpus_file(name: &str) -> PathBuf {
    FOLDERS
        .iter()
        .map(|f| Path::new(CORPUS).join(f).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not in the corpus"))
}

fn parse_file(name: &str) -> (SourceFile, Document, Diagnostics) {
    let source = load(&corpus_file(name));
    let mut diags = Diagnostics::default();
    let doc = parse_document(&source, 0, &mut diags)
        .unwrap_or_else(|| panic!("{name} is well-formed but did not parse:\n{diags}"));
    (source, doc, diags)
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

#[test]
fn every_corpus_file_parses_with_exact_counts_and_expected_diagnostics() {
    let files = corpus_files();
    assert_eq!(files.len(), 66, "SOURCES.md lists 39 + 24 + 3 files");
    let mut failures = Vec::new();
    for path in &files {
        let name = file_name(path);
        let source = load(path);
        let mut diags = Diagnostics::default();
        let Some(doc) = parse_document(&source, 3, &mut diags) else {
            failures.push(format!("{name}: did not parse:\n{diags}"));
            continue;
        };

        let entity_types: usize = doc.schemas.iter().map(|s| s.entity_types.len()).sum();
        let entity_sets: usize = doc
            .schemas
            .iter()
            .flat_map(|s| &s.entity_containers)
            .map(|c| c.entity_sets.len())
            .sum();
        let expected_types = source.text.matches("<EntityType ").count();
        let expected_sets = source.text.matches("<EntitySet ").count();
        if (entity_types, entity_sets) != (expected_types, expected_sets) {
            failures.push(format!(
                "{name}: {entity_types} entity types / {entity_sets} sets, the text has {expected_types} / {expected_sets}"
            ));
        }

        let version = VERSIONS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        if version.is_none() || doc.odata_version != version {
            failures.push(format!(
                "{name}: OData version {:?}, SOURCES.md says {version:?}",
                doc.odata_version
            ));
        }

        let got: Vec<(Severity, String)> = diags
            .0
            .iter()
            .map(|d| {
                (
                    d.severity,
                    format!("{}:{}: {}", d.line, d.column, d.message),
                )
            })
            .collect();
        let expected: Vec<(Severity, String)> = EXPECTED_DIAGNOSTICS
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|(_, s, m)| (*s, m.to_string()))
            .collect();
        if got != expected {
            failures.push(format!(
                "{name}: diagnostics {got:#?}, expected {expected:#?}"
            ));
        }
        if diags
            .0
            .iter()
            .any(|d| d.file.as_deref() != Some(path.as_path()))
        {
            failures.push(format!("{name}: a diagnostic does not name the file"));
        }
        if doc.schemas.iter().any(|s| s.pos.file != 3) {
            failures.push(format!("{name}: positions do not carry the file index"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn graph_v1_prod_has_eleven_schemas_and_their_aliases() {
    let (_, doc, diags) = parse_file("msgraph__v1.0-Prod.csdl.xml");
    assert!(diags.is_empty(), "{diags}");
    let schemas: Vec<(&str, Option<&str>)> = doc
        .schemas
        .iter()
        .map(|s| (s.namespace.as_str(), s.alias.as_deref()))
        .collect();
    assert_eq!(
        schemas,
        [
            ("microsoft.graph", Some("graph")),
            ("microsoft.graph.callRecords", None),
            (
                "microsoft.graph.customDataProvidedResourcePayloads",
                Some("customDataProvidedResourcePayloads")
            ),
            (
                "microsoft.graph.entraRecoveryServices",
                Some("entraRecoveryServices")
            ),
            ("microsoft.graph.externalConnectors", None),
            ("microsoft.graph.identityGovernance", None),
            ("microsoft.graph.partners.billing", None),
            ("microsoft.graph.search", None),
            ("microsoft.graph.security", Some("self")),
            (
                "microsoft.graph.teamsAdministration",
                Some("teamsAdministration")
            ),
            ("microsoft.graph.termStore", None),
        ]
    );
    let count =
        |f: fn(&odata_codegen::csdl::Schema) -> usize| -> usize { doc.schemas.iter().map(f).sum() };
    // Numbers from SOURCES.md.
    assert_eq!(count(|s| s.entity_types.len()), 1182);
    assert_eq!(count(|s| s.complex_types.len()), 1779);
    assert_eq!(count(|s| s.enum_types.len()), 861);
    assert_eq!(
        count(|s| s.enum_types.iter().filter(|e| e.is_flags).count()),
        64
    );
    assert_eq!(
        count(|s| s.entity_containers.iter().map(|c| c.singletons.len()).sum()),
        31
    );
    assert_eq!(
        count(|s| s
            .entity_types
            .iter()
            .filter(|t| t.key.is_none() && t.base_type.is_none() && !t.is_abstract)
            .count()),
        20
    );
    assert_eq!(doc.edmx_version, "4.0");
}

#[test]
fn northwind_v2_associations_and_referential_constraints() {
    let (source, doc, diags) = parse_file("northwind-v2__service.xml");
    assert!(diags.is_empty(), "{diags}");
    assert_eq!(doc.odata_version, Some(ODataVersion::V2));
    assert_eq!(doc.data_service_version.as_deref(), Some("1.0"));
    let associations: Vec<_> = doc.schemas.iter().flat_map(|s| &s.associations).collect();
    assert_eq!(associations.len(), 11);
    let constraints: Vec<_> = associations
        .iter()
        .filter_map(|a| a.referential_constraint.as_ref())
        .collect();
    // SOURCES.md says "18 ReferentialConstraints": the file has 9 `<ReferentialConstraint>`
    // elements (18 is the count of the word, start and end tags), i.e. 18 principal/dependent sides.
    assert_eq!(
        constraints.len(),
        source.text.matches("<ReferentialConstraint>").count()
    );
    assert_eq!(constraints.len(), 9);
    let sides = constraints
        .iter()
        .map(|rc| {
            usize::from(!rc.principal_role.is_empty()) + usize::from(!rc.dependent_role.is_empty())
        })
        .sum::<usize>();
    assert_eq!(sides, 18);
    assert!(constraints
        .iter()
        .all(|rc| !rc.principal_properties.is_empty()
            && rc.principal_properties.len() == rc.dependent_properties.len()));
    let self_association = associations
        .iter()
        .find(|a| a.ends[0].type_name == a.ends[1].type_name)
        .expect("the Employees self-association");
    assert_ne!(self_association.ends[0].role, self_association.ends[1].role);
    assert!(associations.iter().all(|a| a.ends.len() == 2));
    // The file starts with a UTF-8 BOM: the first schema is still found at its line.
    assert_eq!(doc.schemas[0].pos.line, 3);
}

#[test]
fn ce_salesorder_is_edmx_4_01_on_one_line() {
    let (source, doc, diags) = parse_file("sap-s4hana-v4__CE_SALESORDER_0001.xml");
    assert!(diags.is_empty(), "{diags}");
    assert_eq!(doc.edmx_version, "4.01");
    assert_eq!(doc.odata_version, Some(ODataVersion::V4));
    assert_eq!(source.text.lines().count(), 1);
    let last = doc.schemas[0].annotation_blocks.last().unwrap();
    let offset = source.text.rfind("<Annotations ").unwrap();
    assert_eq!(last.pos, source.pos(0, offset));
}

#[test]
fn rapattoni_misspelling_is_a_warning_and_its_schemas_are_read() {
    let (_, doc, diags) = parse_file("reso-mls-rapattoni__Metadata_Formatted.xml");
    let warnings: Vec<_> = diags.warnings().map(|d| d.message.as_str()).collect();
    assert_eq!(
        warnings,
        ["misspelled element 'edmx:Dataservices' read as 'edmx:DataServices'"]
    );
    assert!(!diags.has_errors());
    assert!(doc.schemas.len() > 1);
}

#[test]
fn cyrillic_positions_count_characters() {
    let (source, doc, _) = parse_file("1c-enterprise__StandardODATA_Russian.xml");
    let name = "АдресЭлектроннойПочтыФНС";
    let property = doc
        .schemas
        .iter()
        .flat_map(|s| &s.entity_types)
        .flat_map(|t| &t.properties)
        .find(|p| p.name == name)
        .expect("the property is in the file");
    // Expected position by counting characters in the text: the `<Property` whose Name it is.
    let attr = source.text.find(&format!("Name=\"{name}\"")).unwrap();
    let offset = source.text[..attr].rfind("<Property").unwrap();
    let before = &source.text[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() as u32 + 1;
    assert_eq!((property.pos.line, property.pos.column), (line, column));
    assert_eq!(property.pos.offset, offset as u64);

    // In the file every start tag begins its own line, so bytes and characters before it are
    // the same. Joined onto one line, the same document puts thousands of Cyrillic characters
    // before the property: its column must count them as characters, not bytes.
    let one_line = SourceFile::new("one-line.xml", source.text.replace('\n', " "));
    let mut diags = Diagnostics::default();
    let doc = parse_document(&one_line, 0, &mut diags).expect("still well-formed");
    let property = doc
        .schemas
        .iter()
        .flat_map(|s| &s.entity_types)
        .flat_map(|t| &t.properties)
        .find(|p| p.name == name)
        .unwrap();
    assert_eq!(property.pos.offset, offset as u64);
    let chars = one_line.text[..offset].chars().count() as u32;
    assert_eq!((property.pos.line, property.pos.column), (1, chars + 1));
    assert!(chars < offset as u32, "Cyrillic text precedes the property");
}

#[test]
fn unparsable_reso_file_reports_stray_text_and_keeps_its_content() {
    let (_, doc, diags) = parse_file("reso-commander__bad-edmx-unparsable-xml.xml");
    assert_eq!(diags.errors().count(), 1);
    assert_eq!(doc.schemas.len(), 2);
    assert_eq!(doc.schemas[1].entity_containers[0].entity_sets.len(), 1);
}

/// Release-mode timing of the two Graph files (the performance corpus):
/// `cargo test --release -p odata-codegen --test parse_corpus -- --ignored --nocapture`.
#[test]
#[ignore]
fn graph_parse_time() {
    for name in [
        "msgraph__v1.0-Prod.csdl.xml",
        "msgraph__clean_v10_cleanMetadata.xml",
    ] {
        let source = load(&corpus_file(name));
        let mut best = f64::MAX;
        for _ in 0..10 {
            let mut diags = Diagnostics::default();
            let start = Instant::now();
            let doc = parse_document(&source, 0, &mut diags);
            best = best.min(start.elapsed().as_secs_f64() * 1000.0);
            assert!(doc.is_some());
        }
        println!(
            "{name}: {} bytes parsed in {best:.1} ms (best of 10)",
            source.text.len()
        );
    }
}

// -------------------------------------------------------------------- no panics on any input

const SMALL_FILES: [&str; 6] = [
    "odata-connectedservice__UnexpectedElementsAndAttributes.xml",
    "odata-connectedservice__SampleServiceV2.xml",
    "odata2ts-handmade__oneOfEverything.xml",
    "reso-commander__bad-edmx-unparsable-xml.xml",
    "odata2ts-handmade__abstractAndOpen.xml",
    "odata-connectedservice__TypeDefinitions.xml",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop::sample::select(vec![
        b"<".to_vec(),
        b"\"".to_vec(),
        b"&".to_vec(),
        b">".to_vec(),
        b"</".to_vec(),
        b"/>".to_vec(),
        b"&amp".to_vec(),
        b"&#x;".to_vec(),
        b"<!--".to_vec(),
        b"<![CDATA[".to_vec(),
        b"\xEF\xBB\xBF".to_vec(),
        "Ж".as_bytes().to_vec(),
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), special).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Delete { at, len: n } if len > 0 => {
                let at = at % len;
                let end = (at + n).min(len);
                bytes.drain(at..end);
            }
            Mutation::Insert { at, bytes: ins } => {
                let at = at % (len + 1);
                bytes.splice(at..at, ins.iter().copied());
            }
            Mutation::Truncate { at } => bytes.truncate(at % (len + 1)),
            Mutation::Delete { .. } => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_files_never_panic(
        file in 0..SMALL_FILES.len(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let original = std::fs::read(corpus_file(SMALL_FILES[file])).unwrap();
        let mutated = apply(original, &mutations);
        let text = String::from_utf8_lossy(&mutated).into_owned();
        let source = SourceFile::new("mutated.xml", text);
        let mut diags = Diagnostics::default();
        let doc = parse_document(&source, 0, &mut diags);
        if doc.is_none() {
            // Not well-formed: exactly one error, with a position.
            prop_assert_eq!(diags.0.len(), 1);
            prop_assert!(diags.0[0].is_error());
            prop_assert!(diags.0[0].message.starts_with("malformed XML: "));
            prop_assert!(diags.0[0].line >= 1 && diags.0[0].column >= 1);
        }
        for d in &diags.0 {
            prop_assert!(d.line >= 1);
        }
    }
}
