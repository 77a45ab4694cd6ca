//! Bucket notifications: the bucket side (which events of which keys go to the operator's
//! webhook target, through the S3 `PutBucketNotificationConfiguration` API) and the receiving
//! side (the documents MinIO POSTs to a webhook target).
//!
//! The webhook *target* itself (`notify_webhook:<id>` pointing at the operator's event
//! receiver) is server configuration that MinIO only loads at start: the managed MinIO gets it
//! in its environment, an external MinIO from its administrator (see the README). A bucket's
//! configuration names it by ARN, `arn:minio:sqs::<id>:webhook`.

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::Storage;
use super::error::StorageError;

/// The event names a crawl cares about: objects that appeared or were overwritten.
pub const OBJECT_CREATED: &str = "s3:ObjectCreated:*";

/// The ARN of MinIO's webhook target `id` (any region).
pub fn webhook_arn(id: &str) -> String {
    format!("arn:minio:sqs::{id}:webhook")
}

/// `arn` with its region left out: MinIO answers with its own region filled into the ARNs it
/// was given without one.
fn without_region(arn: &str) -> String {
    let mut parts: Vec<&str> = arn.split(':').collect();
    if parts.len() == 6 && parts[..3] == ["arn", "minio", "sqs"] {
        parts[3] = "";
    }
    parts.join(":")
}

/// One rule of a bucket's notification configuration that lakeform owns: object-created
/// events under `prefix` go to the target `arn`. `id` names the owner (rules are replaced by
/// id prefix, so every owner keeps only its own rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub arn: String,
    pub prefix: String,
}

impl Rule {
    fn to_queue(&self) -> Result<QueueConfiguration, String> {
        let mut b = QueueConfiguration::builder()
            .id(&self.id)
            .queue_arn(&self.arn)
            .events(Event::from(OBJECT_CREATED));
        if !self.prefix.is_empty() {
            b = b.filter(
                NotificationConfigurationFilter::builder()
                    .key(
                        S3KeyFilter::builder()
                            .filter_rules(
                                FilterRule::builder()
                                    .name(FilterRuleName::Prefix)
                                    .value(&self.prefix)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            );
        }
        b.build().map_err(|e| e.to_string())
    }

    fn of_queue(q: &QueueConfiguration) -> Option<Rule> {
        let prefix = q
            .filter()
            .and_then(|f| f.key())
            .map(|k| k.filter_rules())
            .unwrap_or_default()
            .iter()
            .find(|r| r.name() == Some(&FilterRuleName::Prefix))
            .and_then(|r| r.value())
            .unwrap_or_default()
            .to_string();
        Some(Rule {
            id: q.id()?.to_string(),
            arn: without_region(q.queue_arn()),
            prefix,
        })
    }
}

impl Storage {
    /// Make the rules of `bucket` whose id starts with `owner` exactly `rules` (each id must
    /// start with `owner`), keeping everyone else's. Writes only when something differs;
    /// returns whether it wrote.
    pub async fn ensure_notifications(
        &self,
        bucket: &str,
        owner: &str,
        rules: &[Rule],
    ) -> Result<bool, StorageError> {
        const OP: &str = "PutBucketNotificationConfiguration";
        let current = self
            .s3
            .get_bucket_notification_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| self.err("GetBucketNotificationConfiguration", bucket, e))?;
        let queues = current.queue_configurations();
        let mine: Vec<Rule> = queues
            .iter()
            .filter(|q| q.id().is_some_and(|id| id.starts_with(owner)))
            .filter_map(Rule::of_queue)
            .collect();
        if mine == rules {
            return Ok(false);
        }
        let mut desired: Vec<QueueConfiguration> = queues
            .iter()
            .filter(|q| !q.id().is_some_and(|id| id.starts_with(owner)))
            .cloned()
            .collect();
        for r in rules {
            desired.push(r.to_queue().map_err(|message| StorageError::Other {
                operation: OP,
                bucket: bucket.to_string(),
                message,
            })?);
        }
        let config = NotificationConfiguration::builder()
            .set_queue_configurations(Some(desired))
            .set_topic_configurations(Some(current.topic_configurations().to_vec()))
            .set_lambda_function_configurations(Some(
                current.lambda_function_configurations().to_vec(),
            ))
            .build();
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(config)
            .send()
            .await
            .map_err(|e| self.err(OP, bucket, e))?;
        Ok(true)
    }
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
    bucket: RecordBucket,
    object: RecordObject,
}

#[derive(Deserialize)]
struct RecordBucket {
    name: String,
}

#[derive(Deserialize)]
struct RecordObject {
    key: String,
}

/// The `(bucket, key)` pairs of a notification document as a webhook target receives it (keys
/// URL-decoded, as the S3 API names them).
pub fn parse_webhook(body: &[u8]) -> Result<Vec<(String, String)>, serde_json::Error> {
    let doc: Document = serde_json::from_slice(body)?;
    Ok(doc
        .records
        .into_iter()
        .map(|r| (r.s3.bucket.name, decode_key(&r.s3.object.key)))
        .collect())
}

/// Object keys in notifications are form-encoded (`+` for a space, `%XX` for the rest).
fn decode_key(key: &str) -> String {
    percent_decode_str(&key.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_documents_name_bucket_and_decoded_key() {
        let body = br#"{"EventName":"s3:ObjectCreated:Put","Key":"lake-raw/in/a+b%2Bc.csv","Records":[{"eventVersion":"2.0","eventName":"s3:ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"lake-raw","arn":"arn:aws:s3:::lake-raw"},"object":{"key":"in%2Fa+b%2Bc.csv","size":3,"eTag":"x"}}}]}"#;
        assert_eq!(
            parse_webhook(body).expect("parses"),
            vec![("lake-raw".to_string(), "in/a b+c.csv".to_string())]
        );
        assert!(parse_webhook(b"{}").expect("no records").is_empty());
        assert!(parse_webhook(b"not json").is_err());
    }

    #[test]
    fn rules_round_trip_through_queue_configurations() {
        let r = Rule {
            id: "lakeform:team/orders:0".into(),
            arn: webhook_arn("lakeform"),
            prefix: "data/".into(),
        };
        let q = r.to_queue().expect("valid");
        assert_eq!(q.events(), &[Event::from(OBJECT_CREATED)]);
        assert_eq!(Rule::of_queue(&q), Some(r.clone()));
        let whole = Rule {
            prefix: String::new(),
            ..r
        };
        let q = whole.to_queue().expect("valid");
        assert!(q.filter().is_none(), "no prefix, no filter");
        assert_eq!(Rule::of_queue(&q), Some(whole));
        assert_eq!(webhook_arn("t1"), "arn:minio:sqs::t1:webhook");
        let answered = QueueConfiguration::builder()
            .id("x")
            .queue_arn("arn:minio:sqs:us-east-1:t1:webhook")
            .events(Event::from(OBJECT_CREATED))
            .build()
            .expect("valid");
        assert_eq!(
            Rule::of_queue(&answered).map(|r| r.arn),
            Some(webhook_arn("t1")),
            "the region MinIO fills in does not make a rule differ"
        );
    }
}
