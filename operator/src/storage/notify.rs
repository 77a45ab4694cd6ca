//! Bucket notifications through MinIO's `ListenBucketNotification` extension of the S3 API
//! (`GET /<bucket>?events=…&prefix=…`, SigV4-signed): the server streams one JSON document per
//! event, newline-separated, with whitespace keep-alives in between. The operator holds the
//! stream open, so a lake needs no webhook target, no inbound network path to the operator and
//! no server-side configuration; events that happen while no operator listens are picked up by
//! the next scheduled or on-demand crawl, which lists everything.

use std::time::Duration;

use aws_credential_types::Credentials;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;

use super::S3Connection;
use super::error::StorageError;

/// The event names a crawl cares about: objects that appeared or were overwritten.
pub const OBJECT_CREATED: &str = "s3:ObjectCreated:*";

/// How long a stream may stay silent (MinIO sends keep-alives far more often) before it is
/// treated as dead and reopened.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Opens notification streams on one endpoint.
#[derive(Clone)]
pub struct Listener {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    credentials: Credentials,
}

/// An open stream of notifications for one bucket.
pub struct Notifications {
    response: reqwest::Response,
    buf: Vec<u8>,
    bucket: String,
    endpoint: String,
}

#[derive(Deserialize)]
struct Document {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    s3: RecordS3,
}

#[derive(Deserialize)]
struct RecordS3 {
    object: RecordObject,
}

#[derive(Deserialize)]
struct RecordObject {
    key: String,
}

impl Listener {
    /// A listener for `conn`'s endpoint (always path-style: the extension is MinIO's).
    pub fn new(conn: &S3Connection) -> Result<Self, StorageError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| StorageError::Other {
                operation: "ListenBucketNotification",
                bucket: String::new(),
                message: e.to_string(),
            })?;
        Ok(Listener {
            http,
            endpoint: conn.endpoint.trim_end_matches('/').to_string(),
            region: conn.region.clone(),
            credentials: Credentials::new(
                &conn.access_key,
                &conn.secret_key,
                None,
                None,
                "lakeform",
            ),
        })
    }

    /// Open the stream of object-created events of `bucket` under `prefix`.
    pub async fn open(&self, bucket: &str, prefix: &str) -> Result<Notifications, StorageError> {
        const OP: &str = "ListenBucketNotification";
        let url = format!(
            "{}/{}?events={}&prefix={}",
            self.endpoint,
            utf8_percent_encode(bucket, NON_ALPHANUMERIC),
            utf8_percent_encode(OBJECT_CREATED, NON_ALPHANUMERIC),
            utf8_percent_encode(prefix, NON_ALPHANUMERIC),
        );
        let other = |message: String| StorageError::Other {
            operation: OP,
            bucket: bucket.to_string(),
            message,
        };
        let request =
            super::sign::request(&self.credentials, &self.region, "GET", &url, Vec::new())
                .map_err(other)?;
        let response =
            self.http
                .execute(request)
                .await
                .map_err(|e| StorageError::EndpointUnreachable {
                    operation: OP,
                    endpoint: self.endpoint.clone(),
                    message: e.to_string(),
                })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let code = xml_element(&body, "Code").unwrap_or_else(|| format!("HTTP{status}"));
            let message = xml_element(&body, "Message").unwrap_or_else(|| {
                "the endpoint does not offer bucket notification streams (only MinIO does)".into()
            });
            return Err(StorageError::from_code(
                OP,
                Some(bucket),
                &self.endpoint,
                &code,
                message,
            ));
        }
        Ok(Notifications {
            response,
            buf: Vec::new(),
            bucket: bucket.to_string(),
            endpoint: self.endpoint.clone(),
        })
    }
}

impl Notifications {
    /// The keys of the next notifications (URL-decoded, as the S3 API names them); `None` when
    /// the server closed the stream. Waits at most [`IDLE_TIMEOUT`] for any byte.
    pub async fn next_keys(&mut self) -> Result<Option<Vec<String>>, StorageError> {
        loop {
            let keys = take_keys(&mut self.buf);
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
            let chunk = tokio::time::timeout(IDLE_TIMEOUT, self.response.chunk())
                .await
                .map_err(|_| StorageError::EndpointUnreachable {
                    operation: "ListenBucketNotification",
                    endpoint: self.endpoint.clone(),
                    message: format!(
                        "the notification stream of bucket {:?} was silent for {}s",
                        self.bucket,
                        IDLE_TIMEOUT.as_secs()
                    ),
                })?
                .map_err(|e| StorageError::EndpointUnreachable {
                    operation: "ListenBucketNotification",
                    endpoint: self.endpoint.clone(),
                    message: e.to_string(),
                })?;
            match chunk {
                Some(bytes) => self.buf.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }
}

/// Remove the complete lines from `buf` and return the object keys they name. Keep-alive
/// whitespace and documents that are not notifications are skipped.
fn take_keys(buf: &mut Vec<u8>) -> Vec<String> {
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    let lines: Vec<u8> = buf.drain(..=end).collect();
    lines
        .split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .filter_map(|l| match serde_json::from_slice::<Document>(l) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable bucket notification");
                None
            }
        })
        .flat_map(|d| d.records)
        .map(|r| decode_key(&r.s3.object.key))
        .collect()
}

/// Object keys in notifications are form-encoded (`+` for a space, `%XX` for the rest).
fn decode_key(key: &str) -> String {
    percent_decode_str(&key.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The text of the first `<name>` element of an S3 XML error body.
fn xml_element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&format!("</{name}>"))?;
    Some(body[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_complete_lines_only() {
        let mut buf = b" \n{\"Records\":[{\"s3\":{\"object\":{\"key\":\"in/a%2Bb+c.csv\",\"size\":3}}}]}\n  \n{\"Records\":[{\"s3\":{\"object\":{\"key\":\"in/par".to_vec();
        assert_eq!(take_keys(&mut buf), vec!["in/a+b c.csv".to_string()]);
        assert!(buf.starts_with(b"{\"Records\""), "the partial line is kept");
        buf.extend_from_slice(b"t.csv\"}}}]}\n");
        assert_eq!(take_keys(&mut buf), vec!["in/part.csv".to_string()]);
        assert!(buf.is_empty());
    }

    #[test]
    fn keep_alives_and_foreign_documents_yield_nothing() {
        let mut buf = b"   \n{\"something\":1}\nnot json\n".to_vec();
        assert!(take_keys(&mut buf).is_empty());
        assert!(buf.is_empty());
        let mut partial = b"{\"Records\":".to_vec();
        assert!(take_keys(&mut partial).is_empty());
        assert_eq!(partial, b"{\"Records\":");
    }

    #[test]
    fn xml_error_fields() {
        let body = "<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>";
        assert_eq!(xml_element(body, "Code").as_deref(), Some("NotImplemented"));
        assert!(xml_element(body, "Message").is_some_and(|m| m.starts_with("A header")));
        assert_eq!(xml_element(body, "Resource"), None);
    }
}
