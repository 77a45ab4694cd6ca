//! The MinIO admin API (bucket quotas here, users and policies in `iam`), signed with SigV4
//! like `mc admin` does; every call times out.

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
            // Every admin call is bounded: a hung MinIO must not hold a reconcile.
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
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
        let query = format!("bucket={}", encode(bucket));
        let (status, bytes) = self.exchange(method, api, &query, body).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        let (code, message) = admin_error(status, &bytes);
        Err(StorageError::from_code(
            api,
            Some(bucket),
            &self.endpoint,
            &code,
            message,
        ))
    }

    /// One signed admin request: the response's status and body. Errors only when there is no
    /// response (unreachable, timed out) or the request could not be signed.
    pub(super) async fn exchange(
        &self,
        method: &str,
        api: &'static str,
        query: &str,
        body: Vec<u8>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), StorageError> {
        let url = format!("{}/minio/admin/v3/{api}?{query}", self.endpoint);
        let unreachable = |message: String| StorageError::EndpointUnreachable {
            operation: api,
            endpoint: self.endpoint.clone(),
            message,
        };
        let request = super::sign::request(&self.credentials, &self.region, method, &url, body)
            .map_err(|e| StorageError::Other {
                operation: api,
                bucket: String::new(),
                message: format!("signing the request: {e}"),
            })?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_vec();
        Ok((status, bytes))
    }

    /// The endpoint URL.
    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The root secret key: admin request and response bodies are encrypted with it.
    pub(super) fn secret_key(&self) -> &str {
        self.credentials.secret_access_key()
    }
}

/// The error code and message of an admin API error response.
pub(super) fn admin_error(status: reqwest::StatusCode, bytes: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct AdminError {
        #[serde(rename = "Code", default)]
        code: String,
        #[serde(rename = "Message", default)]
        message: String,
    }
    match serde_json::from_slice::<AdminError>(bytes) {
        Ok(e) => (e.code, e.message),
        Err(_) => (
            format!("HTTP{}", status.as_u16()),
            String::from_utf8_lossy(bytes).chars().take(300).collect(),
        ),
    }
}

/// Everything but RFC 3986's unreserved characters: SigV4's canonical query encoding, so the
/// URL is signed as sent.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` percent-encoded for a query value.
pub(super) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string()
}
