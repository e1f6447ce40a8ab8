//! A test table with a column of every kind, and rows for it (the SQLite and PostgreSQL
//! write paths' tests).

use crate::sql::{ColumnInfo, ColumnKind, TableInfo};
use crate::{Dialect, Entity, PropertyInfo};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) enum Status {
    Open,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Wide {
    #[serde(rename = "ID")]
    pub(crate) id: String,
    #[serde(rename = "Name")]
    pub(crate) name: Option<String>,
    #[serde(rename = "Amount")]
    pub(crate) amount: String,
    #[serde(rename = "Flag")]
    pub(crate) flag: bool,
    #[serde(rename = "Small")]
    pub(crate) small: i16,
    #[serde(rename = "Big")]
    pub(crate) big: String,
    #[serde(rename = "Ratio")]
    pub(crate) ratio: f64,
    #[serde(rename = "Whole")]
    pub(crate) whole: i32,
    #[serde(rename = "NotANumber")]
    pub(crate) not_a_number: f64,
    #[serde(rename = "Modified")]
    pub(crate) modified: String,
    #[serde(rename = "Legacy")]
    pub(crate) legacy: String,
    #[serde(rename = "At")]
    pub(crate) at: String,
    #[serde(rename = "Day")]
    pub(crate) day: String,
    #[serde(rename = "Clock")]
    pub(crate) clock: String,
    #[serde(rename = "Guid")]
    pub(crate) guid: String,
    #[serde(rename = "Data")]
    pub(crate) data: String,
    #[serde(rename = "Extra")]
    pub(crate) extra: Vec<u8>,
    #[serde(rename = "State")]
    pub(crate) state: Status,
    #[serde(rename = "Code")]
    pub(crate) code: u32,
    #[serde(rename = "Missing", skip_serializing_if = "Option::is_none")]
    pub(crate) missing: Option<String>,
    #[serde(rename = "NoColumn")]
    pub(crate) no_column: String,
}

impl Entity for Wide {
    const TYPE_NAME: &'static str = "T.Wide";
    const ENTITY_SET: &'static str = "Wides";
    const DIALECT: Dialect = Dialect::V2;
    const PROPERTIES: &'static [PropertyInfo] = &[];
    const KEY: &'static [&'static str] = &["ID"];
    const SELECT: &'static [&'static str] = &[];
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
}

const fn col(name: &'static str, wire: Option<&'static str>, kind: ColumnKind) -> ColumnInfo {
    ColumnInfo {
        name,
        wire_name: wire,
        kind,
        nullable: true,
        pg_cast: "",
    }
}

pub(crate) const COLUMNS: &[ColumnInfo] = &[
    col("division", None, ColumnKind::Division),
    col("id", Some("ID"), ColumnKind::Uuid),
    col("name", Some("Name"), ColumnKind::Text),
    col("amount", Some("Amount"), ColumnKind::Decimal),
    col("flag", Some("Flag"), ColumnKind::Bool),
    col("small", Some("Small"), ColumnKind::Int16),
    col("big", Some("Big"), ColumnKind::Int64),
    col("ratio", Some("Ratio"), ColumnKind::Float64),
    col("whole", Some("Whole"), ColumnKind::Float32),
    col("nan", Some("NotANumber"), ColumnKind::Float64),
    col("modified", Some("Modified"), ColumnKind::DateTime),
    col("legacy", Some("Legacy"), ColumnKind::DateTime),
    col("at", Some("At"), ColumnKind::DateTimeOffset),
    col("day", Some("Day"), ColumnKind::Date),
    col("clock", Some("Clock"), ColumnKind::Time),
    col("guid", Some("Guid"), ColumnKind::Uuid),
    col("data", Some("Data"), ColumnKind::Bytes),
    col("extra", Some("Extra"), ColumnKind::Json),
    col("state", Some("State"), ColumnKind::Enum),
    col("code_text", Some("Code"), ColumnKind::Text),
    col("code_int", Some("Code"), ColumnKind::Int32),
    col("missing", Some("Missing"), ColumnKind::Text),
    col("synced_at", None, ColumnKind::SyncedAt),
    col("deleted_at", None, ColumnKind::DeletedAt),
];

pub(crate) const NAMES: &str = "\"division\", \"id\", \"name\", \"amount\", \"flag\", \"small\", \"big\", \"ratio\", \"whole\", \"nan\", \"modified\", \"legacy\", \"at\", \"day\", \"clock\", \"guid\", \"data\", \"extra\", \"state\", \"code_text\", \"code_int\", \"missing\", \"synced_at\"";

pub(crate) const TABLE: TableInfo = TableInfo {
    name: "wide",
    entity: "Wides",
    entity_set: "Wides",
    entity_type: "T.Wide",
    division: true,
    columns: COLUMNS,
    primary_key: &["division", "id"],
    upsert_sqlite: "",
    upsert_postgres: "",
    insert_head: "INSERT INTO \"wide\" (\"division\", \"id\", \"name\", \"amount\", \"flag\", \"small\", \"big\", \"ratio\", \"whole\", \"nan\", \"modified\", \"legacy\", \"at\", \"day\", \"clock\", \"guid\", \"data\", \"extra\", \"state\", \"code_text\", \"code_int\", \"missing\", \"synced_at\") VALUES ",
    values_sqlite: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    upsert_tail: " ON CONFLICT (\"division\", \"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"deleted_at\" = NULL",
    select_sqlite: "",
    select_postgres: "",
};

pub(crate) fn row(id: &str) -> Wide {
    Wide {
        id: id.into(),
        name: Some("Ünïcode \"quoted\"\t\\ new\nline\r".into()),
        amount: " 12.50 ".into(),
        flag: true,
        small: -7,
        big: " 9007199254740993".into(),
        ratio: 0.1,
        whole: 3,
        not_a_number: f64::NAN,
        modified: "2024-02-29T10:11:12.345".into(),
        legacy: "/Date(1700000000123)/".into(),
        at: "2024-01-01T10:00:00+02:00".into(),
        day: "/Date(1709251200000)/".into(),
        clock: "PT13H20M15.5S".into(),
        guid: "6F9619FF-8B86-D011-B42D-00C04FC964FF".into(),
        data: "AAEC/w==".into(),
        extra: vec![1, 2],
        state: Status::Open,
        code: 42,
        missing: None,
        no_column: "ignored".into(),
    }
}
