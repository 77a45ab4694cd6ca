//! Values passed between the crawler's stages.

use std::fmt;

use arrow_schema::SchemaRef;
use lakeform_api::crawler::DataFormat;

pub use crate::lake::s3::ObjectMeta;

/// A data format the crawler knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Parquet,
    Avro,
    Orc,
    Json,
    Csv,
    Log,
}

impl Format {
    /// Name used in table properties and the status (`parquet`, `csv`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Avro => "avro",
            Format::Orc => "orc",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Log => "log",
        }
    }

    /// Inverse of [`Format::as_str`].
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "parquet" => Format::Parquet,
            "avro" => Format::Avro,
            "orc" => Format::Orc,
            "json" => Format::Json,
            "csv" => Format::Csv,
            "log" => Format::Log,
            _ => return None,
        })
    }

    /// Whether the table's data is the source objects themselves (no copy).
    pub fn in_place(self) -> bool {
        matches!(self, Format::Parquet)
    }
}

impl From<DataFormat> for Format {
    fn from(f: DataFormat) -> Self {
        match f {
            DataFormat::Parquet => Format::Parquet,
            DataFormat::Avro => Format::Avro,
            DataFormat::Orc => Format::Orc,
            DataFormat::Json => Format::Json,
            DataFormat::Csv => Format::Csv,
            DataFormat::Log => Format::Log,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a CSV object is laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvDialect {
    pub delimiter: u8,
    pub quote: u8,
    pub header: bool,
    /// Column names in file order (from the header, the classifier, or `col_0…`).
    pub columns: Vec<String>,
}

/// How a log object is parsed: a regex with named groups compiled from grok.
#[derive(Clone, Debug)]
pub struct LogDialect {
    pub classification: String,
    pub regex: regex::Regex,
}

/// How to read the records of a text object.
#[derive(Clone, Debug)]
pub enum Dialect {
    None,
    Csv(CsvDialect),
    Log(LogDialect),
    /// JSON documents whose records sit at a path (`$.records[*]` → `["records"]`).
    JsonPath(Vec<String>),
    /// A JSON document of records found by the built-in classifier: the document is the
    /// array (`None`) or the array is under a top-level key (`Some`); read record by record.
    JsonDocument(Option<String>),
}

/// What inference found out about one object.
#[derive(Clone, Debug)]
pub struct Inferred {
    pub format: Format,
    /// Schema in iceberg-compatible arrow types (see [`crate::crawl::schema::normalize`]).
    pub schema: SchemaRef,
    pub dialect: Dialect,
    /// The Parquet footer, kept to build data files with metrics.
    pub parquet: Option<std::sync::Arc<parquet::file::metadata::ParquetMetaData>>,
    /// The whole (decompressed) body when it was read completely during inference.
    pub body: Option<bytes::Bytes>,
    /// Rows seen while inferring (text formats) or in the footer (Parquet).
    pub rows: Option<u64>,
    /// Why it was read this way.
    pub decision: Decision,
}

/// Which classifier won an object, how sure it was, and which columns fell back to text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// `csv`, `json-document`, `json-lines`, `grok:<name>`, `parquet`, … (`custom …` for a
    /// classifier of the spec).
    pub classifier: String,
    /// Its certainty (0..=1).
    pub certainty: f64,
    /// Columns typed as text although most sampled values were not, with why.
    pub text_columns: Vec<String>,
}
