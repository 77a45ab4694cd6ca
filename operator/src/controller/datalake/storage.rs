//! The storage stage, after the apply: an S3 connection (managed MinIO once its pods are
//! ready, or the external endpoint), the zones' buckets with their settings, then managed
//! MinIO's users and policies (`identities::sync`).

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::datalake::{DataLake, ZoneStatus};

use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, Refusal, namespace};
use super::super::lake::secret;
use super::super::metrics::WriteLabels;
use super::STARTING_RECHECK;
use super::outcome::{RETRY, Stop};
use super::status::StatusBuilder;
use crate::desired::identity::Identities;
use crate::desired::lake::{Invalid, Part};
use crate::desired::{self, buckets, minio};
use crate::storage::{
    S3Connection, Storage, StorageError, delete_bucket_and_contents, ensure_bucket,
};

/// Here for the crawler controller until it reads Secrets through `controller::lake`.
use super::super::lake::secret_value;

/// Read the access key pair of `secret_name` from `keys` (values as stored, not trimmed).
/// Refused (and retried) when the Secret or a key is missing.
pub(super) async fn credentials(
    ctx: &Context,
    ns: &str,
    secret_name: &str,
    keys: (&str, &str),
) -> Result<Result<(String, String), Refusal>, Error> {
    let Some(secret) = secret(&ctx.client, ns, secret_name).await? else {
        return Ok(Err(Refusal::new(
            "SecretNotFound",
            format!("Secret {ns}/{secret_name} with the storage credentials does not exist"),
        )
        .retry_after(RETRY)));
    };
    match (secret_value(&secret, keys.0), secret_value(&secret, keys.1)) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Ok(Ok((a, s))),
        _ => Ok(Err(Refusal::new(
            "InvalidSecret",
            format!(
                "Secret {ns}/{secret_name} needs non-empty keys {:?} and {:?}",
                keys.0, keys.1
            ),
        )
        .retry_after(RETRY))),
    }
}

/// Why the lake's storage cannot be reached yet.
fn connect_refused(refusal: Refusal) -> Stop {
    Stop::refused(Part::Storage, "ConnectStorage", refusal)
}

/// Once the applied MinIO has its pods ready, connect with the root user.
async fn managed_connection(
    lake: &DataLake,
    ctx: &Context,
    ns: &str,
    replicas: i32,
) -> Result<Result<S3Connection, Stop>, Error> {
    let name = minio::name(lake);
    let ready = Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
        .get_opt(&name)
        .await
        .during(|| format!("reading StatefulSet {ns}/{name}"))?
        .and_then(|s| s.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    if ready < replicas {
        let message = format!("MinIO StatefulSet {name}: {ready}/{replicas} replicas ready");
        let stop = Stop::starting(Part::Storage, "StorageStarting", message, STARTING_RECHECK);
        return Ok(Err(stop));
    }
    let keys = (minio::USER_KEY, minio::PASSWORD_KEY);
    let secret_name = minio::secret_name(lake);
    Ok(credentials(ctx, ns, &secret_name, keys)
        .await?
        .map(|(access_key, secret_key)| {
            desired::connection::storage(lake).connection(access_key, secret_key)
        })
        .map_err(connect_refused))
}

/// The S3 connection of a lake (its objects already applied), or why there is none.
async fn connection(
    lake: &DataLake,
    ctx: &Context,
    invalid: &Invalid,
) -> Result<Result<S3Connection, Stop>, Error> {
    let ns = namespace(lake)?;
    if let Some(message) = invalid.get(Part::Storage) {
        return Ok(Err(connect_refused(Refusal::new("InvalidSpec", message))));
    }
    if lake.spec.storage.external.is_none() {
        let replicas = lake.spec.storage.managed.as_ref().map_or(0, |m| m.replicas);
        return managed_connection(lake, ctx, &ns, replicas).await;
    };
    let endpoint = desired::connection::storage(lake);
    let c = endpoint.credentials.clone();
    let keys = (
        c.access_key_id_key.as_str(),
        c.secret_access_key_key.as_str(),
    );
    Ok(credentials(ctx, &ns, &c.secret_name, keys)
        .await?
        .map(|(access_key, secret_key)| endpoint.connection(access_key, secret_key))
        .map_err(connect_refused))
}

/// Connect to the lake's storage and converge its buckets; record `StorageReady`, the zones
/// and the endpoint in `status`.
pub async fn reconcile(
    lake: &DataLake,
    ctx: &Context,
    invalid: &Invalid,
    identities: &Identities,
    status: &mut StatusBuilder,
) -> Result<Option<Stop>, Error> {
    let conn = match connection(lake, ctx, invalid).await? {
        Ok(c) => c,
        Err(stop) => return Ok(Some(stop)),
    };
    status.s3_endpoint(&conn.endpoint);
    let st = match Storage::connect(&conn).await {
        Ok(st) => st,
        Err(e) => return Ok(Some(failed(status, &e, Vec::new()))),
    };
    let desired = buckets::desired_buckets(lake);
    let (zones, first_error) = ensure_zones(lake, ctx, &st, &desired).await;
    if let Some(e) = first_error {
        return Ok(Some(failed(status, &e, zones)));
    }
    status.zones(zones);
    if let Some(stop) = super::identities::sync(lake, ctx, &st, identities).await {
        return Ok(Some(stop));
    }
    let users = match identities.managed {
        true => format!(", {} S3 identities", identities.list.len()),
        false => String::new(),
    };
    status.storage(
        true,
        "BucketsReady",
        format!(
            "{} bucket(s) ready at {}{users}",
            desired.len(),
            conn.endpoint
        ),
    );
    Ok(None)
}

/// Ensure each zone's bucket; the zones' states and the first error. Stops at the first error
/// that means the endpoint or the keys are unusable.
async fn ensure_zones(
    lake: &DataLake,
    ctx: &Context,
    st: &Storage,
    desired: &[buckets::DesiredBucket],
) -> (Vec<ZoneStatus>, Option<StorageError>) {
    let mut zones = Vec::with_capacity(desired.len());
    let mut first_error: Option<StorageError> = None;
    for want in desired {
        let zone = |ready: bool, message: Option<String>| ZoneStatus {
            name: want.zone.clone(),
            bucket: want.name.clone(),
            ready,
            message,
        };
        match ensure_bucket(st, want).await {
            Ok(report) => {
                announce_bucket(lake, ctx, want, report.created, &report.changed).await;
                zones.push(zone(true, None));
            }
            Err(e) => {
                zones.push(zone(false, Some(e.to_string())));
                let unreachable = matches!(
                    e,
                    StorageError::AccessDenied { .. } | StorageError::EndpointUnreachable { .. }
                );
                first_error.get_or_insert(e);
                if unreachable {
                    break;
                }
            }
        }
    }
    (zones, first_error)
}

/// Count and tell what was written to a bucket.
async fn announce_bucket(
    lake: &DataLake,
    ctx: &Context,
    want: &buckets::DesiredBucket,
    created: bool,
    changed: &[&'static str],
) {
    let reference = lake.object_ref(&());
    let count = |what: &str| {
        let labels = WriteLabels { what: what.into() };
        ctx.metrics.storage_writes.get_or_create(&labels).inc();
    };
    if created {
        count("bucket");
        let note = format!("zone {}: created bucket {}", want.zone, want.name);
        ctx.event(
            &reference,
            EventType::Normal,
            "BucketCreated",
            "CreateBucket",
            note,
        )
        .await;
    }
    for what in changed {
        count(what);
    }
    if !changed.is_empty() {
        let note = format!(
            "zone {}: bucket {} updated: {}",
            want.zone,
            want.name,
            changed.join(", ")
        );
        ctx.event(
            &reference,
            EventType::Normal,
            "BucketUpdated",
            "UpdateBucket",
            note,
        )
        .await;
    }
}

/// The storage refused what we asked: zones as far as known, and the refusal.
fn failed(status: &mut StatusBuilder, e: &StorageError, zones: Vec<ZoneStatus>) -> Stop {
    if !zones.is_empty() {
        status.zones(zones);
    }
    let refusal = Refusal::new(e.reason(), e.to_string());
    let refusal = match e.needs_spec_change() {
        true => refusal,
        false => refusal.retry_after(RETRY),
    };
    Stop::refused(Part::Storage, "ReconcileStorage", refusal)
}

/// Empty and delete every zone's bucket (deletionPolicy: Delete).
pub async fn delete_buckets(lake: &DataLake, ctx: &Context) -> Result<(), String> {
    let conn = match connection(lake, ctx, &Invalid::default())
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(c) => c,
        Err(stop) => return Err(stop.refusal.message),
    };
    let st = Storage::connect(&conn).await.map_err(|e| e.to_string())?;
    for want in buckets::desired_buckets(lake) {
        delete_bucket_and_contents(&st, &want.name)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(datalake = %lake.name_any(), bucket = %want.name, "bucket deleted");
    }
    Ok(())
}
