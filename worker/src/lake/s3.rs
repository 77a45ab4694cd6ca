//! S3 access through the AWS SDK (path-style for MinIO), counting requests and bytes read.
//! The crawler lists and reads zone objects through [`Store`]; both the crawler and the steps
//! sign with an [`S3Connection`] (`lakeform_api::connection`, the operator's type too).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, timeout::TimeoutConfig};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use bytes::Bytes;
use lakeform_api::connection::S3Connection;

use crate::lake::error::{LakeError, ReadError};

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key in the bucket.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag as listed (quotes removed).
    pub etag: String,
}

impl ObjectMeta {
    /// The state fingerprint of the object: changes when its content does.
    pub fn fingerprint(&self) -> String {
        format!("{}|{}", self.etag, self.size)
    }
}

/// Request counters of a run.
#[derive(Debug, Default)]
pub struct Counters {
    pub lists: AtomicU64,
    pub gets: AtomicU64,
    pub bytes_read: AtomicU64,
}

impl Counters {
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
    pub fn lists(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }
}

/// An S3 client with counters.
pub struct Store {
    client: aws_sdk_s3::Client,
    pub counters: Counters,
}

/// How long a connection to the S3 endpoint may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an open request may wait for the first byte of its answer (a hung endpoint fails
/// the request, and after the SDK's retries the object or the run, instead of hanging it;
/// a long transfer that is making progress is not cut).
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

impl Store {
    pub fn new(conn: &S3Connection) -> Store {
        Store::with_timeouts(conn, CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT)
    }

    /// A store whose requests give up after `connect` to connect and `first_byte` to answer.
    pub fn with_timeouts(conn: &S3Connection, connect: Duration, first_byte: Duration) -> Store {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(connect)
            .read_timeout(first_byte)
            .build();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
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
                "lakeform-crawler",
            ))
            .http_client(http)
            .timeout_config(timeouts)
            .build();
        Store {
            client: aws_sdk_s3::Client::from_conf(config),
            counters: Counters::default(),
        }
    }

    /// Every object under `prefix` (LIST requests only).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>, LakeError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            self.counters.lists.fetch_add(1, Ordering::Relaxed);
            let page = page.map_err(|e| LakeError::List {
                bucket: bucket.into(),
                prefix: prefix.into(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    out.push(ObjectMeta {
                        key: key.to_string(),
                        size: obj.size().unwrap_or_default().max(0) as u64,
                        etag: obj
                            .e_tag()
                            .unwrap_or_default()
                            .trim_matches('"')
                            .to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Bytes `[start, end)` of an object (one GET).
    pub async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        end: u64,
    ) -> Result<Bytes, ReadError> {
        if end <= start {
            return Ok(Bytes::new());
        }
        self.get(bucket, key, Some(format!("bytes={start}-{}", end - 1)))
            .await
    }

    /// The whole object (one GET).
    pub async fn get_all(&self, bucket: &str, key: &str) -> Result<Bytes, ReadError> {
        self.get(bucket, key, None).await
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<String>,
    ) -> Result<Bytes, ReadError> {
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_range(range)
            .send()
            .await
            .map_err(|e| ReadError(DisplayErrorContext(&e).to_string()))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| ReadError(e.to_string()))?
            .into_bytes();
        self.counters
            .bytes_read
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hung_endpoint_fails_the_request_instead_of_hanging_it() {
        // accepts connections and never answers
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                open.push(conn);
            }
        });
        let conn = S3Connection {
            endpoint: format!("http://{addr}"),
            region: "us-east-1".into(),
            path_style: true,
            access_key: "a".into(),
            secret_key: "b".into(),
        };
        let store = Store::with_timeouts(&conn, Duration::from_secs(1), Duration::from_millis(500));
        // without the timeouts this would wait for ever: the outer bound only stops the test
        let got = tokio::time::timeout(
            Duration::from_secs(120),
            store.get_range("bucket", "key", 0, 10),
        )
        .await
        .expect("the request gave up on its own");
        assert!(got.is_err(), "a request to a silent endpoint must fail");
        held.abort();
    }
}
