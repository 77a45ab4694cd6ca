//! Bucket notification rules: each owner's sources are routed to the operator's webhook
//! target, with the lake's S3 connection.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use lakeform_api::datalake::DataLake;

use super::{Owner, Source};
use crate::controller::datalake::storage::secret_value;
use crate::desired::connection::LakeEndpoints;
use crate::storage::S3Connection;
use crate::storage::notify::{Rule, webhook_arn};

/// The lake's S3 endpoint and credentials, read from its Secret; `Err` says what is missing.
pub async fn connection(
    lake: &DataLake,
    client: &Client,
) -> Result<Result<S3Connection, String>, kube::Error> {
    let ns = lake.namespace().unwrap_or_default();
    let ep = LakeEndpoints::for_lake(lake);
    let c = &ep.credentials;
    let Some(secret) = Api::<Secret>::namespaced(client.clone(), &ns)
        .get_opt(&c.secret_name)
        .await?
    else {
        return Ok(Err(format!(
            "Secret {ns}/{} with the lake's storage credentials does not exist",
            c.secret_name
        )));
    };
    let value = |key: &str| {
        secret_value(&secret, key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (value(&c.access_key_id_key), value(&c.secret_access_key_key)) {
        (Some(access_key), Some(secret_key)) => Ok(Ok(S3Connection {
            endpoint: ep.s3_endpoint,
            region: ep.region,
            path_style: ep.path_style,
            access_key,
            secret_key,
        })),
        _ => Ok(Err(format!(
            "Secret {ns}/{} needs non-empty keys {:?} and {:?}",
            c.secret_name, c.access_key_id_key, c.secret_access_key_key
        ))),
    }
}

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
