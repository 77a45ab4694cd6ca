//! Managed storage: the MinIO StatefulSet and Services match the spec, are owned by the DataLake
//! and are garbage-collected with it; the generated root credentials are not (the lake's
//! default `Retain` keeps them with the volumes, so a re-created lake reads its data again).
//! (MinIO's upstream image is not reachable from our node, so the lake reports
//! `StorageStarting` — it is Ready only when the StatefulSet has ready replicas; `managed_lake`
//! runs MinIO for real from an image built here.)

use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use lakeform_e2e::operator::Operator;
use lakeform_e2e::{TestContext, wait_for_deleted};

use super::common::*;

#[tokio::test]
async fn managed_minio_objects_follow_the_spec_and_its_owner() -> Result<()> {
    let ctx = TestContext::new("storage-managed").await?;
    let _op = Operator::start(&ctx, "3s")?;
    let lake = "mlake";
    let yaml = "apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {name: mlake}
spec:
  storage:
    managed:
      replicas: 4
      volumeSize: 5Gi
      storageClass: standard
      resources: {requests: {cpu: 250m, memory: 512Mi}}
  zones: [{name: raw}]
";
    apply(&ctx, yaml).await?;
    let l = wait_condition(&ctx, lake, "StorageReady", "False", "StorageStarting").await?;
    let uid = l.metadata.uid.clone().unwrap_or_default();
    let sts = ctx.api::<StatefulSet>().get("mlake-minio").await?;
    let spec = sts.spec.as_ref().expect("spec");
    ensure!(spec.replicas == Some(4));
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let args = pod.containers[0].args.clone().unwrap_or_default();
    let ns = &ctx.ns;
    ensure!(
        args[1]
            == format!("http://mlake-minio-{{0...3}}.mlake-minio-hl.{ns}.svc.cluster.local/data"),
        "{args:?}"
    );
    let claim = &spec.volume_claim_templates.as_ref().expect("claims")[0];
    let claim_spec = claim.spec.as_ref().expect("claim spec");
    ensure!(claim_spec.storage_class_name.as_deref() == Some("standard"));
    ensure!(
        claim_spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .map(|r| r["storage"].0.clone())
            == Some("5Gi".into())
    );
    let owned_by_lake =
        |refs: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            refs.is_some_and(|r| r.iter().any(|o| o.uid == uid && o.controller == Some(true)))
        };
    ensure!(
        owned_by_lake(sts.metadata.owner_references.as_ref()),
        "StatefulSet owned by the lake"
    );
    for name in ["mlake-minio", "mlake-minio-hl"] {
        let svc = ctx.api::<Service>().get(name).await?;
        ensure!(
            owned_by_lake(svc.metadata.owner_references.as_ref()),
            "{name} owned"
        );
    }
    let secret = ctx.api::<Secret>().get("mlake-minio-root").await?;
    ensure!(
        !owned_by_lake(secret.metadata.owner_references.as_ref()),
        "the root Secret outlives a Retain lake: no owner reference"
    );
    let retention = spec.persistent_volume_claim_retention_policy.as_ref();
    ensure!(
        retention.and_then(|r| r.when_deleted.as_deref()) == Some("Retain"),
        "volumes outlive a Retain lake: {retention:?}"
    );
    let data = secret.data.clone().unwrap_or_default();
    ensure!(
        data.get("secretAccessKey").is_some_and(|v| v.0.len() >= 32),
        "generated password"
    );

    // The credentials are created once, never rotated by a reconcile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let again = ctx.api::<Secret>().get("mlake-minio-root").await?;
    ensure!(
        again.data == secret.data,
        "credentials unchanged across reconciles"
    );

    // Deleting the lake removes its objects through the real garbage collector.
    let sts_uid = sts.metadata.uid.clone().unwrap_or_default();
    delete_lake(&ctx, lake).await?;
    wait_for_deleted(
        &ctx.api::<StatefulSet>(),
        "mlake-minio",
        &sts_uid,
        "StatefulSet garbage-collected",
        SETTLE,
    )
    .await?;
    eventually("Services garbage-collected", SETTLE, || async {
        ctx.api::<Service>()
            .get_opt("mlake-minio")
            .await
            .ok()
            .flatten()
            .is_none()
            && ctx
                .api::<Service>()
                .get_opt("mlake-minio-hl")
                .await
                .ok()
                .flatten()
                .is_none()
    })
    .await?;
    let kept = ctx.api::<Secret>().get("mlake-minio-root").await?;
    ensure!(
        kept.data == secret.data,
        "the root Secret is kept as it was"
    );
    Ok(())
}
