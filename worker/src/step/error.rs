//! Errors of a workflow step run by the worker.

use thiserror::Error;

use crate::lake::LakeError;

/// Why a step failed. Messages name the table, column or setting involved.
#[derive(Debug, Error)]
pub enum StepError {
    /// A setting (environment, arguments, step spec) is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// The step spec asks for something the lake cannot do (`field` is its path, e.g.
    /// `spec.steps[2].sql.partitionBy`).
    #[error("{field}: {message}")]
    Spec { field: String, message: String },
    /// A catalog call failed.
    #[error("catalog: {context}: {source}")]
    Catalog {
        context: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Lake I/O shared with the crawler failed (connecting, creating or widening a table,
    /// a REST commit).
    #[error("catalog: {0}")]
    Lake(#[from] LakeError),
    /// Planning or running SQL failed.
    #[error("SQL: {context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    /// Data does not fit the target table.
    #[error("table {table}: {message}")]
    Data { table: String, message: String },
    /// The source database (PostgreSQL, MySQL) refused or failed.
    #[error("source database: {context}: {source}")]
    Source {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The source database did not answer in time.
    #[error("source database: {context}: no answer within {seconds}s")]
    SourceTimeout { context: String, seconds: u64 },
    /// A source column has a value the lake cannot hold.
    #[error("source table {table}: {message}")]
    SourceData { table: String, message: String },
    /// Reading or writing the bookmark ConfigMap failed.
    #[error("bookmarks: {context}: {source}")]
    Bookmarks {
        context: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The tokio runtime could not start.
    #[error("runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The report could not be printed.
    #[error("report: {0}")]
    Report(#[from] serde_json::Error),
}

impl StepError {
    /// Maps an iceberg error with what was being done.
    pub fn catalog(context: impl Into<String>) -> impl FnOnce(iceberg::Error) -> StepError {
        let context = context.into();
        move |source| StepError::Catalog {
            context,
            source: Box::new(source),
        }
    }

    /// Maps a DataFusion error with what was being done.
    pub fn sql(
        context: impl Into<String>,
    ) -> impl FnOnce(datafusion::error::DataFusionError) -> StepError {
        let context = context.into();
        move |source| StepError::Sql {
            context,
            source: Box::new(source),
        }
    }

    /// Maps a source database error (PostgreSQL, MySQL) with what was being done.
    pub fn source<E>(context: impl Into<String>) -> impl FnOnce(E) -> StepError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let context = context.into();
        move |source| StepError::Source {
            context,
            source: Box::new(source),
        }
    }
}
