//! Pure functions from a validated spec to the desired objects. Nothing here talks to the
//! network; every builder is unit-tested from YAML fixtures.

pub mod blueprint;
pub mod buckets;
pub mod connection;
pub mod crawler;
pub mod identity;
pub mod lake;
pub mod lakekeeper;
pub mod meta;
pub mod minio;
pub mod nessie;
pub mod postgres;
pub mod set;
pub mod spark;
pub mod trino;
pub mod trino_access;
pub mod trino_auth;
pub mod workflow;
pub mod workflow_access;
pub mod workflow_events;

/// Errors of the builders: what a schema could not refuse, named by its field path.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `podOverrides` did not produce a valid pod template.
    #[error("{field}: the merged pod template is invalid: {source}")]
    PodOverrides {
        /// The field path of the overrides.
        field: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// `configOverrides` names a file that is not rendered.
    #[error(
        "spec.queryEngine.trino.configOverrides: unknown file {file:?}; expected one of {expected}"
    )]
    UnknownOverrideFile {
        /// The file named.
        file: String,
        /// The files that can be overridden.
        expected: String,
    },
    /// A workgroup's `maxScanBytes` is not a quantity.
    #[error(
        "spec.queryEngine.workgroups[{workgroup}].maxScanBytes: {value:?} is not a byte quantity"
    )]
    ScanBytes {
        /// Workgroup name.
        workgroup: String,
        /// The value found.
        value: String,
    },
}
