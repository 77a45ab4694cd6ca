//! Bucket notification rules: each owner's sources are routed to the operator's webhook
//! target, with the lake's S3 connection.

use super::{Owner, Source};
use crate::storage::S3Connection;
use crate::storage::notify::{Rule, webhook_arn};

/// Point the notifications of each source's bucket and prefix at the webhook target `target`,
/// replacing the rules this owner set before (rule ids `lakeform:<ns>/<crawler>:<n>`,
/// `lakeform-wf:<ns>/<workflow>/<trigger>:<n>`).
pub async fn route(
    owner: &Owner,
    conn: &S3Connection,
    sources: &[Source],
    target: &str,
) -> Result<(), crate::storage::StorageError> {
    let owner = owner.rule_prefix();
    let storage = crate::storage::Storage::new(conn);
    let arn = webhook_arn(target);
    let mut buckets: Vec<&str> = sources.iter().map(|s| s.bucket.as_str()).collect();
    buckets.sort();
    buckets.dedup();
    for bucket in buckets {
        let rules: Vec<Rule> = sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.bucket == bucket)
            .map(|(i, s)| Rule {
                id: format!("{owner}{i}"),
                arn: arn.clone(),
                prefix: s.prefix.clone(),
            })
            .collect();
        if storage.ensure_notifications(bucket, &owner, &rules).await? {
            tracing::info!(bucket, arn = %arn, rules = rules.len(), "routed bucket notifications");
        }
    }
    Ok(())
}
