//! Errors of the lake I/O. [`LakeError`] fails the caller's run (the crawler and the steps wrap
//! it in their own error); [`ReadError`] is about one object, which the crawler reports and
//! skips.

use thiserror::Error;

/// A failure talking to the lake's storage or catalog. Messages name what was being done.
#[derive(Debug, Error)]
pub enum LakeError {
    /// A table definition the catalog cannot take (a partition column missing from the
    /// schema, a type without an Iceberg counterpart).
    #[error("configuration: {0}")]
    Config(String),
    /// Listing a bucket prefix failed.
    #[error("listing s3://{bucket}/{prefix}: {message}")]
    List {
        bucket: String,
        prefix: String,
        message: String,
    },
    /// An iceberg-rust catalog call failed.
    #[error("catalog: {context}: {source}")]
    Catalog {
        context: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    /// A catalog REST call made without iceberg-rust failed.
    #[error("catalog REST call {context}: {message}")]
    Rest { context: String, message: String },
}

impl LakeError {
    /// Wraps an iceberg error with what was being done.
    pub fn catalog(context: impl Into<String>) -> impl FnOnce(iceberg::Error) -> LakeError {
        let context = context.into();
        move |source| LakeError::Catalog {
            context,
            source: Box::new(source),
        }
    }
}

/// Why one object could not be read (the S3 error, with its context).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct ReadError(pub String);
