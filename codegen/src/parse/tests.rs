use super::parse_document;
use crate::csdl::{Document, MaxLength, ODataVersion, OperationKind, Scale};
use crate::diagnostics::{Diagnostics, Severity};
use crate::source::{Pos, SourceFile};

fn parse(text: &str) -> (Option<Document>, Diagnostics) {
    let source = SourceFile::new("t.xml", text.to_string());
    let mut diags = Diagnostics::default();
    let doc = parse_document(&source, 0, &mut diags);
    (doc, diags)
}

/// Parses a document that must be well-formed and free of diagnostics.
fn parse_ok(text: &str) -> Document {
    let (doc, diags) = parse(text);
    assert!(diags.is_empty(), "unexpected diagnostics:\n{diags}");
    doc.expect("well-formed")
}

fn messages(diags: &Diagnostics) -> Vec<String> {
    diags.0.iter().map(|d| d.to_string()).collect()
}

const V4_HEAD: &str = r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices><Schema Namespace="NS" xmlns="http://docs.oasis-open.org/odata/ns/edm">"#;
const V4_TAIL: &str = "</Schema></edmx:DataServices></edmx:Edmx>";

fn v4(schema_body: &str) -> String {
    format!("{V4_HEAD}{schema_body}{V4_TAIL}")
}

fn v2(schema_body: &str) -> String {
    format!(
        r#"<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx">
<edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" m:DataServiceVersion="2.0">
<Schema Namespace="NS" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
{schema_body}
</Schema>
</edmx:DataServices>
</edmx:Edmx>"#
    )
}

#[test]
fn bom_is_skipped_and_positions_count_it() {
    let text = "\u{FEFF}<edmx:Edmx Version=\"4.0\"><edmx:DataServices>\n  <Schema Namespace=\"NS\">\n    <EntityType Name=\"A\"/>\n  </Schema></edmx:DataServices></edmx:Edmx>";
    let source = SourceFile::new("t.xml", text.to_string());
    let mut diags = Diagnostics::default();
    let doc = parse_document(&source, 7, &mut diags).expect("well-formed");
    assert!(diags.is_empty(), "{diags}");
    let schema = &doc.schemas[0];
    assert_eq!((schema.pos.line, schema.pos.column), (2, 3));
    let et = &schema.entity_types[0];
    let offset = text.find("<EntityType").unwrap();
    assert_eq!(
        et.pos,
        Pos {
            file: 7,
            line: 3,
            column: 5,
            offset: offset as u64
        }
    );
    assert_eq!(et.pos, source.pos(7, offset));
    assert_eq!(doc.odata_version, Some(ODataVersion::V4));
}

#[test]
fn document_without_xml_declaration() {
    let doc = parse_ok(&v4(
        r#"<EntityType Name="A"><Key><PropertyRef Name="Id"/></Key><Property Name="Id" Type="Edm.Int32" Nullable="false"/></EntityType>"#,
    ));
    assert_eq!(doc.edmx_version, "4.0");
    let et = &doc.schemas[0].entity_types[0];
    assert_eq!(et.name, "A");
    assert_eq!(et.key.as_ref().unwrap()[0].name, "Id");
    assert_eq!(et.properties[0].facets.nullable, Some(false));
    assert_eq!((et.pos.line, et.pos.column), (1, V4_HEAD.len() as u32 + 1));
}

#[test]
fn with_xml_declaration_and_comments_everywhere() {
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<!-- head -->\n{}\n<!-- tail -->\n",
        v4(
            r#"<!-- c --><EntityType Name="A"><!-- inside --><Property Name="P" Type="Edm.String"/></EntityType><!-- c -->"#
        )
    );
    let doc = parse_ok(&text);
    assert_eq!(doc.schemas[0].entity_types[0].properties.len(), 1);
}

#[test]
fn v2_association_and_navigation() {
    let doc = parse_ok(&v2(r#"
<EntityType Name="Order" m:HasStream="true">
  <Key><PropertyRef Name="OrderID"/></Key>
  <Property Name="OrderID" Type="Edm.Int32" Nullable="false"/>
  <Property Name="CustomerID" Type="Edm.String" MaxLength="5" FixedLength="true" Unicode="true"/>
  <NavigationProperty Name="Customer" Relationship="NS.FK_Orders_Customers" FromRole="Orders" ToRole="Customers"/>
</EntityType>
<Association Name="FK_Orders_Customers">
  <End Role="Customers" Type="NS.Customer" Multiplicity="0..1"><OnDelete Action="Cascade"/></End>
  <End Role="Orders" Type="NS.Order" Multiplicity="*"/>
  <ReferentialConstraint>
    <Principal Role="Customers"><PropertyRef Name="CustomerID"/></Principal>
    <Dependent Role="Orders"><PropertyRef Name="CustomerID"/></Dependent>
  </ReferentialConstraint>
</Association>
<EntityContainer Name="C" m:IsDefaultEntityContainer="true">
  <EntitySet Name="Orders" EntityType="NS.Order"/>
  <AssociationSet Name="FK" Association="NS.FK_Orders_Customers">
    <End Role="Customers" EntitySet="Customers"/>
    <End Role="Orders" EntitySet="Orders"/>
  </AssociationSet>
  <FunctionImport Name="Top" ReturnType="Collection(NS.Order)" EntitySet="Orders" m:HttpMethod="GET">
    <Parameter Name="n" Type="Edm.Int32" Mode="In"/>
  </FunctionImport>
</EntityContainer>"#));
    assert_eq!(doc.odata_version, Some(ODataVersion::V2));
    assert_eq!(doc.data_service_version.as_deref(), Some("2.0"));
    let s = &doc.schemas[0];
    let order = &s.entity_types[0];
    assert!(order.has_stream);
    let p = &order.properties[1].facets;
    assert_eq!(p.max_length, Some(MaxLength::Length(5)));
    assert_eq!((p.fixed_length, p.unicode), (Some(true), Some(true)));
    let nav = &order.navigation_properties[0];
    assert_eq!(nav.relationship.as_deref(), Some("NS.FK_Orders_Customers"));
    assert_eq!(nav.from_role.as_deref(), Some("Orders"));
    assert_eq!(nav.to_role.as_deref(), Some("Customers"));
    assert_eq!(nav.type_name, None);

    let assoc = &s.associations[0];
    assert_eq!(assoc.ends.len(), 2);
    assert_eq!(assoc.ends[0].multiplicity, "0..1");
    assert_eq!(assoc.ends[1].type_name, "NS.Order");
    let rc = assoc.referential_constraint.as_ref().unwrap();
    assert_eq!(rc.principal_role, "Customers");
    assert_eq!(rc.principal_properties, ["CustomerID"]);
    assert_eq!(rc.dependent_role, "Orders");
    assert_eq!(rc.dependent_properties, ["CustomerID"]);

    let c = &s.entity_containers[0];
    assert!(c.is_default);
    let aset = &c.association_sets[0];
    assert_eq!(aset.association, "NS.FK_Orders_Customers");
    assert_eq!(aset.ends[1].entity_set, "Orders");
    let f = &c.operation_imports[0];
    assert_eq!(f.kind, OperationKind::Function);
    assert_eq!(f.return_type.as_deref(), Some("Collection(NS.Order)"));
    assert_eq!(f.http_method.as_deref(), Some("GET"));
    assert_eq!(f.entity_set.as_deref(), Some("Orders"));
    assert_eq!(f.parameters[0].mode.as_deref(), Some("In"));
    assert_eq!(f.parameters[0].type_name, "Edm.Int32");
}

#[test]
fn v4_navigation_with_referential_constraint_and_container() {
    let doc = parse_ok(&v4(r#"
<EntityType Name="Order" OpenType="true" Abstract="false">
  <Key><PropertyRef Name="Id" Alias="OrderId"/></Key>
  <Property Name="Id" Type="Edm.Int32" Nullable="false"/>
  <Property Name="CustomerId" Type="Edm.Int32"/>
  <NavigationProperty Name="Customer" Type="NS.Customer" Nullable="false" Partner="Orders">
    <ReferentialConstraint Property="CustomerId" ReferencedProperty="Id"/>
    <OnDelete Action="None"/>
  </NavigationProperty>
  <NavigationProperty Name="Lines" Type="Collection(NS.Line)" ContainsTarget="true"/>
</EntityType>
<Function Name="Top" IsBound="true" IsComposable="true" EntitySetPath="b/Lines">
  <Parameter Name="b" Type="NS.Order"/>
  <Parameter Name="n" Type="Edm.Decimal" Precision="10" Scale="2"/>
  <ReturnType Type="Collection(NS.Line)" Nullable="false"/>
</Function>
<Action Name="Ship"><Parameter Name="o" Type="NS.Order"/></Action>
<EntityContainer Name="C" Extends="Other.C">
  <EntitySet Name="Orders" EntityType="NS.Order">
    <NavigationPropertyBinding Path="Customer" Target="Customers"/>
  </EntitySet>
  <Singleton Name="Me" Type="NS.Customer"><NavigationPropertyBinding Path="Orders" Target="Orders"/></Singleton>
  <FunctionImport Name="TopF" Function="NS.Top" EntitySet="Orders" IncludeInServiceDocument="true"/>
  <ActionImport Name="ShipA" Action="NS.Ship"/>
</EntityContainer>"#));
    let s = &doc.schemas[0];
    let order = &s.entity_types[0];
    assert!(order.open_type && !order.is_abstract);
    assert_eq!(
        order.key.as_ref().unwrap()[0].alias.as_deref(),
        Some("OrderId")
    );
    let nav = &order.navigation_properties[0];
    assert_eq!(nav.type_name.as_deref(), Some("NS.Customer"));
    assert_eq!(nav.nullable, Some(false));
    assert_eq!(nav.partner.as_deref(), Some("Orders"));
    assert!(!nav.contains_target);
    assert_eq!(nav.referential_constraints.len(), 1);
    assert_eq!(nav.referential_constraints[0].property, "CustomerId");
    assert_eq!(nav.referential_constraints[0].referenced_property, "Id");
    assert!(order.navigation_properties[1].contains_target);

    let f = &s.operations[0];
    assert_eq!(f.kind, OperationKind::Function);
    assert!(f.is_bound && f.is_composable);
    assert_eq!(f.entity_set_path.as_deref(), Some("b/Lines"));
    assert_eq!(f.parameters[1].facets.precision, Some(10));
    assert_eq!(f.parameters[1].facets.scale, Some(Scale::Number(2)));
    assert_eq!(f.return_type.as_deref(), Some("Collection(NS.Line)"));
    assert_eq!(f.return_facets.nullable, Some(false));
    assert_eq!(s.operations[1].kind, OperationKind::Action);
    assert_eq!(s.operations[1].return_type, None);

    let c = &s.entity_containers[0];
    assert_eq!(c.extends.as_deref(), Some("Other.C"));
    assert_eq!(
        c.entity_sets[0].navigation_property_bindings[0].target,
        "Customers"
    );
    assert_eq!(c.singletons[0].type_name, "NS.Customer");
    assert_eq!(
        c.singletons[0].navigation_property_bindings[0].path,
        "Orders"
    );
    let fi = &c.operation_imports[0];
    assert_eq!(
        (fi.kind, fi.operation.as_deref()),
        (OperationKind::Function, Some("NS.Top"))
    );
    let ai = &c.operation_imports[1];
    assert_eq!(
        (ai.kind, ai.operation.as_deref()),
        (OperationKind::Action, Some("NS.Ship"))
    );
}

#[test]
fn enums_with_and_without_values() {
    let (doc, diags) = parse(&v4(r#"
<EnumType Name="Color" UnderlyingType="Edm.Byte" IsFlags="true">
  <Member Name="Red" Value="1"/><Member Name="Green" Value="2"/><Member Name="Neg" Value="-4"/>
</EnumType>
<EnumType Name="Plain"><Member Name="A"/><Member Name="B"/></EnumType>
<EnumType Name="Bad"><Member Name="X" Value="one"/></EnumType>"#));
    let doc = doc.unwrap();
    let e = &doc.schemas[0].enum_types;
    assert_eq!(e[0].underlying_type.as_deref(), Some("Edm.Byte"));
    assert!(e[0].is_flags);
    let values: Vec<_> = e[0].members.iter().map(|m| m.value).collect();
    assert_eq!(values, [Some(1), Some(2), Some(-4)]);
    assert!(!e[1].is_flags);
    assert_eq!(e[1].underlying_type, None);
    let values: Vec<_> = e[1]
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.value))
        .collect();
    assert_eq!(values, [("A", None), ("B", None)]);
    assert_eq!(e[2].members[0].value, None);
    assert_eq!(
        messages(&diags),
        ["t.xml:6:46: error: invalid enum member value 'one': expected an integer"]
    );
}

#[test]
fn scale_max_length_and_facet_warnings() {
    let (doc, diags) = parse(&v4(r#"
<ComplexType Name="T">
  <Property Name="a" Type="Edm.Decimal" Scale="variable"/>
  <Property Name="b" Type="Edm.Decimal" Scale="Variable"/>
  <Property Name="c" Type="Edm.Decimal" Scale="floating"/>
  <Property Name="d" Type="Edm.Decimal" Scale="7" SRID="4326" DefaultValue="0"/>
  <Property Name="e" Type="Edm.String" MaxLength="Max"/>
  <Property Name="f" Type="Edm.String" MaxLength="max"/>
  <Property Name="g" Type="Edm.String" MaxLength="255"/>
  <Property Name="h" Type="Edm.String" MaxLength="lots" Nullable="maybe" Scale="x" SCale="5" FixLength="16"/>
</ComplexType>
<TypeDefinition Name="Money" UnderlyingType="Edm.Decimal" Precision="18" Scale="4"/>"#));
    let doc = doc.unwrap();
    let props = &doc.schemas[0].complex_types[0].properties;
    let scales: Vec<_> = props.iter().map(|p| p.facets.scale).collect();
    assert_eq!(
        scales[..4],
        [
            Some(Scale::Variable),
            Some(Scale::Variable),
            Some(Scale::Floating),
            Some(Scale::Number(7))
        ]
    );
    assert_eq!(props[3].facets.srid.as_deref(), Some("4326"));
    assert_eq!(props[3].facets.default_value.as_deref(), Some("0"));
    assert_eq!(props[4].facets.max_length, Some(MaxLength::Max));
    assert_eq!(props[5].facets.max_length, Some(MaxLength::Max));
    assert_eq!(props[6].facets.max_length, Some(MaxLength::Length(255)));
    let h = &props[7].facets;
    assert_eq!((h.max_length, h.nullable, h.scale), (None, None, None));
    let td = &doc.schemas[0].type_definitions[0];
    assert_eq!(td.underlying_type, "Edm.Decimal");
    assert_eq!(
        (td.facets.precision, td.facets.scale),
        (Some(18), Some(Scale::Number(4)))
    );
    assert!(!diags.has_errors());
    assert_eq!(
        messages(&diags),
        [
            "t.xml:10:51: warning: invalid MaxLength value 'lots' (expected a number or 'max'); the attribute is ignored",
            "t.xml:10:67: warning: invalid Nullable value 'maybe' (expected 'true' or 'false'); the attribute is ignored",
            "t.xml:10:81: warning: invalid Scale value 'x' (expected a number, 'variable' or 'floating'); the attribute is ignored",
        ]
    );
}

#[test]
fn inline_core_description_and_annotations_block() {
    let doc = parse_ok(&v4(r#"
<EntityType Name="P">
  <Annotation Term="Core.Description" String="A person"/>
  <Property Name="Name" Type="Edm.String">
    <Annotation Term="Core.Description"><String>The &lt;full&gt; name</String></Annotation>
    <Annotation Term="Core.Computed" Bool="true"/>
    <Annotation Term="Core.LongDescription" Qualifier="q"><Record><PropertyValue Property="x" String="y"/></Record></Annotation>
  </Property>
</EntityType>
<Annotations Target="NS.P/Name" Qualifier="Phone">
  <Annotation Term="Common.Label" String="Full name"/>
  <Annotation Term="UI.Hidden"><Annotation Term="Core.Description" String="nested"/></Annotation>
</Annotations>
<Annotation Term="Core.SchemaVersion" String="1.0"/>"#));
    let s = &doc.schemas[0];
    let p = &s.entity_types[0];
    assert_eq!(p.annotations.len(), 1);
    assert_eq!(p.annotations[0].term, "Core.Description");
    assert_eq!(p.annotations[0].value.as_deref(), Some("A person"));
    let a = &p.properties[0].annotations;
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].value.as_deref(), Some("The <full> name"));
    assert_eq!(
        (a[1].term.as_str(), a[1].value.as_deref()),
        ("Core.Computed", None)
    );
    assert_eq!(a[2].qualifier.as_deref(), Some("q"));
    assert_eq!(a[2].value, None);
    let b = &s.annotation_blocks[0];
    assert_eq!(b.target, "NS.P/Name");
    assert_eq!(b.qualifier.as_deref(), Some("Phone"));
    assert_eq!(b.annotations.len(), 2);
    assert_eq!(b.annotations[0].value.as_deref(), Some("Full name"));
    assert_eq!(
        (
            b.annotations[1].term.as_str(),
            b.annotations[1].value.as_deref()
        ),
        ("UI.Hidden", None)
    );
    // An annotation directly in the schema annotates the schema: a block targeting its namespace.
    let sb = &s.annotation_blocks[1];
    assert_eq!(sb.target, "NS");
    assert_eq!(sb.annotations[0].value.as_deref(), Some("1.0"));
}

#[test]
fn v2_documentation_and_sap_attributes() {
    let doc = parse_ok(&v2(r#"
<EntityType Name="E" sap:label="Entity" sap:content-version="1" xmlns:sap="http://www.sap.com/Protocols/SAPData">
  <Documentation><Summary> Short </Summary><LongDescription>Long
text</LongDescription><sap:tagcollection><sap:tag>x</sap:tag></sap:tagcollection></Documentation>
  <Key><PropertyRef Name="Id"/></Key>
  <Property Name="Id" Type="Edm.String" sap:label="Identifier" sap:quickinfo="The id" sap:heading="ID"/>
  <Property Name="Other" Type="Edm.String" sap:heading="Head" sap:label=""/>
</EntityType>"#));
    let e = &doc.schemas[0].entity_types[0];
    assert_eq!(e.docs.summary.as_deref(), Some("Short"));
    assert_eq!(e.docs.long_description.as_deref(), Some("Long\ntext"));
    assert_eq!(e.docs.sap_label.as_deref(), Some("Entity"));
    let id = &e.properties[0].docs;
    assert_eq!(id.sap_label.as_deref(), Some("Identifier"));
    assert_eq!(id.sap_quickinfo.as_deref(), Some("The id"));
    assert_eq!(e.properties[1].docs.sap_label.as_deref(), Some("Head"));
}

#[test]
fn unknown_elements_and_attributes_are_skipped() {
    let doc = parse_ok(&v4(r#"
<Term Name="T" Type="Edm.String"><Annotation Term="Core.Description" String="x"/></Term>
<EntityType Name="A" p8:StoreGeneratedPattern="Identity" xmlns:p8="urn:x">
  <Property Name="P" Type="Edm.String" FixLength="16"/>
  <UnknownElement Name="U"><Property Name="Hidden" Type="Edm.String"/><Deeper><Deeper/></Deeper></UnknownElement>
  <Property Name="Q" Type="Edm.String"/>
</EntityType>"#));
    let e = &doc.schemas[0].entity_types[0];
    let names: Vec<_> = e.properties.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["P", "Q"]);
    assert_eq!(e.properties[0].facets.fixed_length, None);
    assert!(doc.schemas[0].annotation_blocks.is_empty());
}

#[test]
fn attribute_values_are_unescaped() {
    let doc = parse_ok(&v4(
        r#"<EntityType Name="A"><Property Name="P" Type="Edm.String" DefaultValue="a &amp; b &lt;c&gt; &#233;&#x41; &quot;q&quot; &apos;"/></EntityType>"#,
    ));
    let p = &doc.schemas[0].entity_types[0].properties[0];
    assert_eq!(
        p.facets.default_value.as_deref(),
        Some("a & b <c> éA \"q\" '")
    );
}

#[test]
fn mismatched_end_tag_is_one_error_with_position() {
    let text = "<edmx:Edmx Version=\"4.0\">\n  <edmx:DataServices>\n    <Schema Namespace=\"NS\">\n      <EntityType Name=\"A\">\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n";
    let (doc, diags) = parse(text);
    assert!(doc.is_none());
    assert_eq!(
        messages(&diags),
        ["t.xml:5:5: error: malformed XML: expected '</EntityType>', found '</Schema>'"]
    );
}

#[test]
fn malformed_xml_messages() {
    let cases = [
        (
            v4(r#"<EntityType Name="A &amp B"/>"#),
            format!("t.xml:1:{}: error: malformed XML: '&' does not start an entity or character reference ending in ';' (write '&amp;' for a literal '&')", V4_HEAD.len() + 21),
        ),
        (
            v4(r#"<EntityType Name="&nbsp;"/>"#),
            format!("t.xml:1:{}: error: malformed XML: unknown entity '&nbsp;' (only &lt; &gt; &amp; &apos; &quot; and character references are defined)", V4_HEAD.len() + 19),
        ),
        (
            v4(r#"<EntityType Name="A"><Documentation><Summary>a & b</Summary></Documentation></EntityType>"#),
            format!("t.xml:1:{}: error: malformed XML: '&' does not start an entity or character reference ending in ';' (write '&amp;' for a literal '&')", V4_HEAD.len() + 48),
        ),
        (
            v4(r#"<EntityType Name="A" Name="B"/>"#),
            format!("t.xml:1:{}: error: malformed XML: duplicate attribute", V4_HEAD.len() + 22),
        ),
        (
            format!("{V4_HEAD}<EntityType Name=\"A\">\n"),
            format!("t.xml:2:1: error: malformed XML: unexpected end of input: expected '</EntityType>' to close '<EntityType>' opened at 1:{}", V4_HEAD.len() + 1),
        ),
        (
            format!("{V4_HEAD}<EntityType Name=\"A"),
            format!("t.xml:1:{}: error: malformed XML: attribute value not closed: '\"' not found before end of input", V4_HEAD.len() + 1),
        ),
        (
            format!("{}x", v4("")),
            format!("t.xml:1:{}: error: malformed XML: text outside the root element", v4("").len() + 1),
        ),
        (String::new(), "t.xml:1:1: error: malformed XML: no root element".to_string()),
    ];
    for (text, expected) in cases {
        let (doc, diags) = parse(&text);
        assert!(doc.is_none(), "{text}");
        assert_eq!(messages(&diags), [expected], "{text}");
    }
}

#[test]
fn stray_text_is_an_error_but_parsing_goes_on() {
    let text = "<edmx:Edmx Version=\"4.0\">\n  <edmx:DataServices>\n    <Schema Namespace=\"NS\"><EntityType Name=\"A\"/>oops &amp; more</Schema>\n  </edmx:DataServices>\n  <!-- c -->'\n</edmx:Edmx>";
    let (doc, diags) = parse(text);
    let doc = doc.expect("still well-formed");
    assert_eq!(doc.schemas[0].entity_types.len(), 1);
    assert_eq!(
        messages(&diags),
        [
            "t.xml:3:50: error: unexpected text 'oops & more' inside <Schema>",
            "t.xml:5:13: error: unexpected text ''' inside <edmx:Edmx>",
        ]
    );
    let (_, diags) = parse(&v4(&"x".repeat(60)));
    assert_eq!(
        messages(&diags),
        [format!(
            "t.xml:1:{}: error: unexpected text '{}…' inside <Schema>",
            V4_HEAD.len() + 1,
            "x".repeat(40)
        )]
    );
}

#[test]
fn misspelled_data_services_is_a_warning() {
    let text = "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n  <edmx:Dataservices>\n    <Schema Namespace=\"NS\"><EntityType Name=\"A\"/></Schema>\n  </edmx:Dataservices>\n</edmx:Edmx>";
    let (doc, diags) = parse(text);
    assert_eq!(doc.unwrap().schemas[0].entity_types.len(), 1);
    assert_eq!(
        messages(&diags),
        ["t.xml:2:3: warning: misspelled element 'edmx:Dataservices' read as 'edmx:DataServices'"]
    );
    assert_eq!(diags.0[0].severity, Severity::Warning);
}

#[test]
fn references_and_versions() {
    let doc = parse_ok(
        r#"<edmx:Edmx Version="4.01" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
<edmx:Reference Uri="https://x/Core.xml"><edmx:Include Namespace="Org.OData.Core.V1" Alias="Core"/><edmx:IncludeAnnotations TermNamespace="X"/></edmx:Reference>
<edmx:DataServices><Schema Namespace="NS" Alias="self"/></edmx:DataServices></edmx:Edmx>"#,
    );
    assert_eq!(doc.edmx_version, "4.01");
    assert_eq!(doc.odata_version, Some(ODataVersion::V4));
    assert_eq!(doc.references.len(), 1);
    assert_eq!(doc.references[0].namespace, "Org.OData.Core.V1");
    assert_eq!(doc.references[0].alias.as_deref(), Some("Core"));
    assert_eq!(
        (doc.references[0].pos.line, doc.references[0].pos.column),
        (2, 42)
    );
    assert_eq!(doc.schemas[0].alias.as_deref(), Some("self"));

    let v3 = parse_ok(
        r#"<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx"><edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" m:DataServiceVersion="1.0" m:MaxDataServiceVersion="3.0"><Schema Namespace="NS" xmlns="http://schemas.microsoft.com/ado/2008/09/edm"/></edmx:DataServices></edmx:Edmx>"#,
    );
    assert_eq!(v3.odata_version, Some(ODataVersion::V3));
    assert_eq!(v3.max_data_service_version.as_deref(), Some("3.0"));

    let bare = parse_ok(
        r#"<Schema Namespace="NS" xmlns="http://schemas.microsoft.com/ado/2009/11/edm"><EntityType Name="A"/></Schema>"#,
    );
    assert_eq!(bare.odata_version, Some(ODataVersion::V3));
    assert_eq!(bare.schemas[0].entity_types.len(), 1);
}

#[test]
fn missing_required_attributes_are_errors() {
    let (doc, diags) = parse(&v4(r#"<EntityType><Property Name="P"/></EntityType>"#));
    assert!(doc.is_some());
    let col = V4_HEAD.len() + 1;
    assert_eq!(
        messages(&diags),
        [
            format!("t.xml:1:{col}: error: <EntityType> has no 'Name' attribute"),
            format!(
                "t.xml:1:{}: error: <Property> has no 'Type' attribute",
                col + 12
            ),
        ]
    );
}

#[test]
fn unknown_root_element_is_an_error() {
    let (doc, diags) = parse("<html><body/></html>");
    assert!(doc.is_some());
    assert_eq!(
        messages(&diags),
        ["t.xml:1:1: error: expected <edmx:Edmx> as the root element, found <html>"]
    );
}

#[test]
fn positions_match_source_pos_on_long_lines_and_multibyte_text() {
    // One line, Cyrillic names: the incremental cursor must agree with SourceFile::pos.
    let body: String = (0..50)
        .map(|i| format!(r#"<EntityType Name="Тип{i}"><Property Name="Поле{i}" Type="Edm.String"/></EntityType>"#))
        .collect();
    let text = format!("\u{FEFF}{}", v4(&body));
    let source = SourceFile::new("t.xml", text.clone());
    let mut diags = Diagnostics::default();
    let doc = parse_document(&source, 0, &mut diags).unwrap();
    let types = &doc.schemas[0].entity_types;
    assert_eq!(types.len(), 50);
    for t in types {
        assert_eq!(t.pos, source.pos(0, t.pos.offset as usize));
        assert!(text[t.pos.offset as usize..].starts_with("<EntityType"));
        let p = &t.properties[0].pos;
        assert_eq!(*p, source.pos(0, p.offset as usize));
        let expected_col = text[..p.offset as usize].chars().count() as u32 + 1;
        assert_eq!(p.column, expected_col);
    }
}

#[test]
fn v3_value_annotations_and_function_import_attributes() {
    let doc = parse_ok(
        r#"<edmx:Edmx Version="1.0"><edmx:DataServices m:DataServiceVersion="3.0" xmlns:m="urn:m"><Schema Namespace="NS" xmlns="http://schemas.microsoft.com/ado/2009/11/edm">
<EntityContainer Name="C">
  <FunctionImport Name="Act" IsBindable="true" IsSideEffecting="true" m:IsAlwaysBindable="true"><Parameter Name="p" Type="NS.E"/></FunctionImport>
</EntityContainer>
<Annotations Target="NS.E"><ValueAnnotation Term="Core.Description" String="V3 style"/></Annotations>
</Schema></edmx:DataServices></edmx:Edmx>"#,
    );
    assert_eq!(doc.odata_version, Some(ODataVersion::V3));
    let fi = &doc.schemas[0].entity_containers[0].operation_imports[0];
    assert!(fi.is_bindable);
    assert_eq!(fi.is_side_effecting, Some(true));
    assert_eq!(fi.operation, None);
    let b = &doc.schemas[0].annotation_blocks[0];
    assert_eq!(b.annotations[0].value.as_deref(), Some("V3 style"));
}
