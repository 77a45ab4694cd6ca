//! Errors of the crawler. Errors about one object are reported and skipped ([`ObjectFailure`]);
//! [`CrawlError`] fails the whole run.

use thiserror::Error;

use crate::lake::error::{LakeError, ReadError};

/// A failure that stops the run.
#[derive(Debug, Error)]
pub enum CrawlError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    ParseYaml {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("kubernetes: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// Storage or catalog I/O failed (its message names what was being done).
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(
        "the run would create {would_create} tables, more than spec.tableThreshold {threshold}; nothing was created"
    )]
    TableThreshold { would_create: usize, threshold: i32 },
    #[error("invalid glob in spec.targets[].exclude {pattern:?}: {source}")]
    Glob {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("writing the report: {0}")]
    Report(#[from] serde_json::Error),
}

impl CrawlError {
    /// Wraps an iceberg error with what was being done.
    pub fn catalog(context: impl Into<String>) -> impl FnOnce(iceberg::Error) -> CrawlError {
        let wrap = LakeError::catalog(context);
        move |source| CrawlError::Lake(wrap(source))
    }
}

impl From<kube::Error> for CrawlError {
    fn from(e: kube::Error) -> Self {
        CrawlError::Kube(Box::new(e))
    }
}

/// Why one object could not be used. The run goes on without it.
#[derive(Debug, Error)]
pub enum ObjectFailure {
    #[error("reading the object: {0}")]
    Read(String),
    #[error("decompressing: {0}")]
    Decompress(String),
    #[error("{what} is over the limit of {limit} bytes a crawl reads of one object")]
    TooLarge { what: &'static str, limit: u64 },
    #[error("not a valid Parquet file: {0}")]
    Parquet(String),
    #[error("not a valid Avro file: {0}")]
    Avro(String),
    #[error("CSV: {0}")]
    Csv(String),
    #[error("JSON: {0}")]
    Json(String),
    #[error("log: {0}")]
    Log(String),
    #[error("schema: {0}")]
    Schema(String),
    #[error("partition value {value:?} of {column} is not a {expected}")]
    Partition {
        column: String,
        value: String,
        expected: String,
    },
    #[error("writing Parquet: {0}")]
    Write(String),
}

impl From<ReadError> for ObjectFailure {
    fn from(e: ReadError) -> Self {
        ObjectFailure::Read(e.0)
    }
}
