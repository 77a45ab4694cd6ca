//! The MinIO admin API (bucket quotas), signed with SigV4 like `mc admin` does.

use aws_credential_types::Credentials;
use serde::{Deserialize, Serialize};

use super::S3Connection;
use super::error::StorageError;

/// A bucket quota as MinIO's admin API reads and writes it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BucketQuota {
    /// Deprecated by MinIO in favour of `size`, still sent for older servers.
    #[serde(default)]
    pub quota: u64,
    /// Maximum bytes in the bucket; 0 = no quota.
    #[serde(default)]
    pub size: u64,
    /// `hard` (the only type MinIO enforces).
    #[serde(
        default,
        rename = "quotatype",
        skip_serializing_if = "String::is_empty"
    )]
    pub quota_type: String,
}

#[derive(Clone)]
pub(crate) struct MinioAdmin {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    credentials: Credentials,
}

impl MinioAdmin {
    pub(crate) fn new(conn: &S3Connection) -> Self {
        MinioAdmin {
            http: reqwest::Client::new(),
            endpoint: conn.endpoint.trim_end_matches('/').to_string(),
            region: conn.region.clone(),
            credentials: Credentials::new(
                &conn.access_key,
                &conn.secret_key,
                None,
                None,
                "lakeform",
            ),
        }
    }

    /// Whether the endpoint is a MinIO server (its health endpoint names itself).
    pub(crate) async fn is_minio(&self) -> bool {
        let url = format!("{}/minio/health/live", self.endpoint);
        match self.http.get(&url).send().await {
            Ok(r) => r
                .headers()
                .get("server")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("minio")),
            Err(_) => false,
        }
    }

    /// The bucket's quota in bytes (0: none).
    pub(crate) async fn get_quota(&self, bucket: &str) -> Result<u64, StorageError> {
        let body = self
            .call("GET", "get-bucket-quota", bucket, Vec::new())
            .await?;
        if body.is_empty() {
            return Ok(0);
        }
        let q: BucketQuota = serde_json::from_slice(&body).map_err(|e| StorageError::Other {
            operation: "GetBucketQuota",
            bucket: bucket.to_string(),
            message: format!("unexpected response: {e}"),
        })?;
        Ok(q.size.max(q.quota))
    }

    /// Set (or with 0, clear) a hard quota.
    pub(crate) async fn set_quota(&self, bucket: &str, bytes: u64) -> Result<(), StorageError> {
        let q = BucketQuota {
            quota: bytes,
            size: bytes,
            quota_type: "hard".into(),
        };
        let body = serde_json::to_vec(&q).map_err(|e| StorageError::Other {
            operation: "SetBucketQuota",
            bucket: bucket.to_string(),
            message: e.to_string(),
        })?;
        self.call("PUT", "set-bucket-quota", bucket, body)
            .await
            .map(drop)
    }

    async fn call(
        &self,
        method: &str,
        api: &'static str,
        bucket: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, StorageError> {
        let url = format!("{}/minio/admin/v3/{api}?bucket={bucket}", self.endpoint);
        let other = |message: String| StorageError::Other {
            operation: api,
            bucket: bucket.to_string(),
            message,
        };
        let request = super::sign::request(&self.credentials, &self.region, method, &url, body)
            .map_err(other)?;
        let response =
            self.http
                .execute(request)
                .await
                .map_err(|e| StorageError::EndpointUnreachable {
                    operation: api,
                    endpoint: self.endpoint.clone(),
                    message: e.to_string(),
                })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| other(e.to_string()))?
            .to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        #[derive(Deserialize)]
        struct AdminError {
            #[serde(rename = "Code", default)]
            code: String,
            #[serde(rename = "Message", default)]
            message: String,
        }
        let err: AdminError = serde_json::from_slice(&bytes).unwrap_or(AdminError {
            code: format!("HTTP{}", status.as_u16()),
            message: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
        });
        Err(StorageError::from_code(
            api,
            Some(bucket),
            &self.endpoint,
            &err.code,
            err.message,
        ))
    }
}
