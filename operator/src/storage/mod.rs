//! Object storage through the real protocols: the S3 API (aws-sdk-s3) for buckets, versioning,
//! object lock and lifecycle, and the MinIO admin API for quotas and for the lake's identities
//! (users and policies, `iam`).

mod admin;
mod bucket;
mod error;
pub mod iam;
mod lifecycle;
mod madmin;
pub mod notify;
mod sign;

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, timeout::TimeoutConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

pub use bucket::{delete_bucket_and_contents, ensure_bucket};
pub use error::StorageError;
/// Where and how to reach an S3 endpoint (shared with the worker).
pub use lakeform_api::connection::S3Connection;

/// Clients for one S3 endpoint.
#[derive(Clone)]
pub struct Storage {
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) admin: admin::MinioAdmin,
    pub(crate) endpoint: String,
    /// The endpoint is MinIO (answers `/minio/health/live` with `Server: MinIO`): quotas go
    /// through its admin API, and multipart-upload expiry is MinIO's own.
    pub(crate) is_minio: bool,
}

impl Storage {
    /// Build clients for `conn`. Nothing is sent until the first call.
    pub fn new(conn: &S3Connection) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .build();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(conn.region.clone()))
            .endpoint_url(&conn.endpoint)
            .force_path_style(conn.path_style)
            .credentials_provider(Credentials::new(
                &conn.access_key,
                &conn.secret_key,
                None,
                None,
                "lakeform",
            ))
            .timeout_config(timeouts)
            .http_client(http)
            .build();
        Storage {
            s3: aws_sdk_s3::Client::from_conf(config),
            admin: admin::MinioAdmin::new(conn),
            endpoint: conn.endpoint.clone(),
            is_minio: false,
        }
    }

    /// Build clients, check that the endpoint answers and accepts the credentials, and find out
    /// whether it is MinIO.
    pub async fn connect(conn: &S3Connection) -> Result<Self, StorageError> {
        let mut st = Storage::new(conn);
        st.check_access().await?;
        st.is_minio = st.admin.is_minio().await;
        Ok(st)
    }

    /// Classify an SDK error of `operation` on `bucket`.
    pub(crate) fn err<E, R>(
        &self,
        operation: &'static str,
        bucket: &str,
        e: aws_sdk_s3::error::SdkError<E, R>,
    ) -> StorageError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        StorageError::from_sdk(operation, Some(bucket), &self.endpoint, e)
    }

    /// Check that the endpoint answers and the credentials are accepted (ListBuckets).
    async fn check_access(&self) -> Result<(), StorageError> {
        self.s3
            .list_buckets()
            .max_buckets(1)
            .send()
            .await
            .map(drop)
            .map_err(|e| StorageError::from_sdk("ListBuckets", None, &self.endpoint, e))
    }
}
