//! The storage stage: an S3 connection (managed MinIO or external endpoint) and the zones'
//! buckets.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::datalake::{DataLake, ZoneStatus};

use super::super::apply::apply;
use super::super::context::Context;
use super::super::metrics::WriteLabels;
use super::status::StatusBuilder;
use super::{Error, STARTING_RECHECK, objects};
use crate::desired::{self, buckets, minio};
use crate::storage::{
    S3Connection, Storage, StorageError, delete_bucket_and_contents, ensure_bucket,
};

/// Result of the storage stage.
pub enum Outcome {
    /// Every bucket is as desired.
    Ready,
    /// Waiting for something that will happen by itself (pods starting).
    Waiting(Duration),
    /// Failed with a status reason; `retry` false when only a spec change can help.
    Failed { reason: &'static str, retry: bool },
}

impl Outcome {
    /// Combine the outcomes of two stages: any failure wins, then waiting, then ready.
    pub fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Failed { reason, retry }, Outcome::Failed { retry: r2, .. }) => {
                Outcome::Failed {
                    reason,
                    retry: retry || r2,
                }
            }
            (f @ Outcome::Failed { .. }, _) | (_, f @ Outcome::Failed { .. }) => f,
            (Outcome::Waiting(a), Outcome::Waiting(b)) => Outcome::Waiting(a.min(b)),
            (w @ Outcome::Waiting(_), _) | (_, w @ Outcome::Waiting(_)) => w,
            (Outcome::Ready, Outcome::Ready) => Outcome::Ready,
        }
    }
}

/// Why no connection could be made.
pub(super) struct NoConnection {
    pub(super) reason: &'static str,
    pub(super) message: String,
    outcome: Outcome,
}

/// The value of `key` in `secret` (`data`, else `stringData`), if it is UTF-8.
pub(crate) fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

/// Read the credentials of `secret_name` from `keys`.
pub(super) async fn credentials(
    ctx: &Context,
    ns: &str,
    secret_name: &str,
    keys: (&str, &str),
) -> Result<Result<(String, String), NoConnection>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = secrets.get_opt(secret_name).await? else {
        return Ok(Err(NoConnection {
            reason: "SecretNotFound",
            message: format!(
                "Secret {ns}/{secret_name} with the storage credentials does not exist"
            ),
            outcome: Outcome::Failed {
                reason: "SecretNotFound",
                retry: true,
            },
        }));
    };
    match (secret_value(&secret, keys.0), secret_value(&secret, keys.1)) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Ok(Ok((a, s))),
        _ => Ok(Err(NoConnection {
            reason: "InvalidSecret",
            message: format!(
                "Secret {ns}/{secret_name} needs non-empty keys {:?} and {:?}",
                keys.0, keys.1
            ),
            outcome: Outcome::Failed {
                reason: "InvalidSecret",
                retry: true,
            },
        })),
    }
}

/// Apply the managed MinIO objects and, once its pods are ready, connect with the root user.
async fn managed_connection(
    lake: &DataLake,
    ctx: &Context,
    ns: &str,
) -> Result<Result<S3Connection, NoConnection>, Error> {
    let Some(spec) = lake.spec.storage.managed.as_ref() else {
        return Err(Error::Internal("managed storage expected".into()));
    };
    let secret_name = minio::secret_name(lake);
    objects::create_once(lake, ctx, &secret_name, || {
        let user = objects::random_token(8)?;
        Ok(minio::secret(
            lake,
            &format!("lakeform-{user}"),
            &objects::random_token(40)?,
        ))
    })
    .await?;
    for svc in minio::services(lake) {
        apply(&ctx.client, svc).await?;
    }
    if let Some(token) = ctx.minio_webhook.as_ref().and_then(|w| w.token.as_deref()) {
        apply(&ctx.client, minio::events_secret(lake, token)).await?;
    }
    let sts = match minio::statefulset(lake, spec, ctx.minio_webhook.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Err(NoConnection {
                reason: "InvalidSpec",
                message: e.to_string(),
                outcome: Outcome::Failed {
                    reason: "InvalidSpec",
                    retry: false,
                },
            }));
        }
    };
    apply(&ctx.client, sts).await?;
    let live: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), ns);
    let ready = live
        .get_opt(&minio::name(lake))
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    if ready < spec.replicas {
        return Ok(Err(NoConnection {
            reason: "StorageStarting",
            message: format!(
                "MinIO StatefulSet {}: {ready}/{} replicas ready",
                minio::name(lake),
                spec.replicas
            ),
            outcome: Outcome::Waiting(STARTING_RECHECK),
        }));
    }
    let (access_key, secret_key) = match credentials(
        ctx,
        ns,
        &secret_name,
        (minio::USER_KEY, minio::PASSWORD_KEY),
    )
    .await?
    {
        Ok(c) => c,
        Err(no) => return Ok(Err(no)),
    };
    Ok(Ok(
        desired::connection::storage(lake).connection(access_key, secret_key)
    ))
}

/// The S3 connection of a lake.
async fn connection(
    lake: &DataLake,
    ctx: &Context,
) -> Result<Result<S3Connection, NoConnection>, Error> {
    let ns = lake.namespace().ok_or(Error::NoNamespace)?;
    if lake.spec.storage.external.is_some() {
        let endpoint = desired::connection::storage(lake);
        let c = &endpoint.credentials;
        let keys = credentials(
            ctx,
            &ns,
            &c.secret_name,
            (&c.access_key_id_key, &c.secret_access_key_key),
        )
        .await?;
        return Ok(keys.map(|(access_key, secret_key)| endpoint.connection(access_key, secret_key)));
    }
    managed_connection(lake, ctx, &ns).await
}

/// Converge storage; record conditions, zones and the endpoint in `status`.
pub async fn reconcile(
    lake: &DataLake,
    ctx: &Context,
    status: &mut StatusBuilder,
) -> Result<Outcome, Error> {
    let reference = lake.object_ref(&());
    let conn = match connection(lake, ctx).await? {
        Ok(c) => c,
        Err(no) => {
            status.storage(false, no.reason, no.message.clone());
            if !matches!(no.outcome, Outcome::Waiting(_)) {
                ctx.event(
                    &reference,
                    EventType::Warning,
                    no.reason,
                    "ConnectStorage",
                    no.message,
                )
                .await;
            }
            return Ok(no.outcome);
        }
    };
    status.s3_endpoint(&conn.endpoint);
    let st = match Storage::connect(&conn).await {
        Ok(st) => st,
        Err(e) => return Ok(fail(lake, ctx, status, &e, Vec::new()).await),
    };
    let desired = buckets::desired_buckets(lake);
    let mut zones = Vec::with_capacity(desired.len());
    let mut first_error: Option<StorageError> = None;
    for want in &desired {
        match ensure_bucket(&st, want).await {
            Ok(report) => {
                if report.created {
                    ctx.metrics
                        .storage_writes
                        .get_or_create(&WriteLabels {
                            what: "bucket".into(),
                        })
                        .inc();
                    ctx.event(
                        &reference,
                        EventType::Normal,
                        "BucketCreated",
                        "CreateBucket",
                        format!("zone {}: created bucket {}", want.zone, want.name),
                    )
                    .await;
                }
                for what in &report.changed {
                    ctx.metrics
                        .storage_writes
                        .get_or_create(&WriteLabels {
                            what: (*what).into(),
                        })
                        .inc();
                }
                if !report.changed.is_empty() {
                    ctx.event(
                        &reference,
                        EventType::Normal,
                        "BucketUpdated",
                        "UpdateBucket",
                        format!(
                            "zone {}: bucket {} updated: {}",
                            want.zone,
                            want.name,
                            report.changed.join(", ")
                        ),
                    )
                    .await;
                }
                zones.push(ZoneStatus {
                    name: want.zone.clone(),
                    bucket: want.name.clone(),
                    ready: true,
                    message: None,
                });
            }
            Err(e) => {
                zones.push(ZoneStatus {
                    name: want.zone.clone(),
                    bucket: want.name.clone(),
                    ready: false,
                    message: Some(e.to_string()),
                });
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
    if let Some(e) = first_error {
        return Ok(fail(lake, ctx, status, &e, zones).await);
    }
    status.zones(zones);
    status.storage(
        true,
        "BucketsReady",
        format!("{} bucket(s) ready at {}", desired.len(), conn.endpoint),
    );
    Ok(Outcome::Ready)
}

async fn fail(
    lake: &DataLake,
    ctx: &Context,
    status: &mut StatusBuilder,
    e: &StorageError,
    zones: Vec<ZoneStatus>,
) -> Outcome {
    if !zones.is_empty() {
        status.zones(zones);
    }
    status.storage(false, e.reason(), e.to_string());
    ctx.event(
        &lake.object_ref(&()),
        EventType::Warning,
        e.reason(),
        "ReconcileStorage",
        e.to_string(),
    )
    .await;
    Outcome::Failed {
        reason: e.reason(),
        retry: !e.needs_spec_change(),
    }
}

/// Empty and delete every zone's bucket (deletionPolicy: Delete).
pub async fn delete_buckets(lake: &DataLake, ctx: &Context) -> Result<(), String> {
    let conn = match connection(lake, ctx).await.map_err(|e| e.to_string())? {
        Ok(c) => c,
        Err(no) => return Err(no.message),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(reason: &'static str, retry: bool) -> Outcome {
        Outcome::Failed { reason, retry }
    }

    #[test]
    fn outcomes_combine_worst_first() {
        let s = Duration::from_secs;
        assert!(matches!(Outcome::Ready.and(Outcome::Ready), Outcome::Ready));
        assert!(
            matches!(Outcome::Ready.and(Outcome::Waiting(s(5))), Outcome::Waiting(d) if d == s(5))
        );
        assert!(
            matches!(Outcome::Waiting(s(9)).and(Outcome::Waiting(s(5))), Outcome::Waiting(d) if d == s(5))
        );
        assert!(matches!(
            Outcome::Waiting(s(1)).and(failed("X", false)),
            Outcome::Failed {
                reason: "X",
                retry: false
            }
        ));
        assert!(matches!(
            failed("A", false).and(failed("B", true)),
            Outcome::Failed {
                reason: "A",
                retry: true
            }
        ));
    }
}
