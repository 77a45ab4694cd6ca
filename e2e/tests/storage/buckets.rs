//! Zones become buckets with the requested settings, edits converge, removed zones keep their
//! bucket, a bucket deleted by hand comes back, and a quiet resync writes nothing.

use std::time::Duration;

use anyhow::{Result, ensure};
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectLockEnabled, ObjectLockRetentionMode};
use lakeform_e2e::TestContext;
use lakeform_e2e::lake::{delete_bucket, put_object, s3_client};
use lakeform_e2e::operator::Operator;

use super::common::*;

const ZONES: &str = "    - name: raw
      quota: 1Gi
      lifecycle:
        - {id: tmp, prefix: tmp/, expireAfterDays: 7}
        - {id: uploads, abortIncompleteMultipartAfterDays: 2}
    - name: curated
      versioning: true
      lifecycle:
        - {id: old-versions, noncurrentExpireAfterDays: 30}
    - name: vault
      versioning: true
      objectLock: {mode: Governance, retentionDays: 1}
";

async fn lifecycle_ids(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, Option<i32>)> {
    match s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => {
            let mut v: Vec<_> = out
                .rules()
                .iter()
                .map(|r| {
                    (
                        r.id().unwrap_or_default().to_string(),
                        r.expiration().and_then(|e| e.days()),
                    )
                })
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn external_storage_zones_become_buckets_and_converge() -> Result<()> {
    let ctx = TestContext::new("storage-buckets").await?;
    let s3 = s3_client(&ctx.env);
    let lake = format!("lk{}", &ctx.ns[ctx.ns.len() - 6..]);
    secret(&ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    let mut op = Operator::start(&ctx, "2s")?;
    apply(
        &ctx,
        &lake_yaml(&lake, &ctx.env.s3_endpoint, "s3", "Delete", ZONES),
    )
    .await?;
    let started = std::time::Instant::now();
    let ready = wait_ready(&ctx, &lake).await?;
    println!(
        "DataLake Ready after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let zones = &ready.status.as_ref().expect("status").zones;
    ensure!(
        zones.len() == 3 && zones.iter().all(|z| z.ready),
        "zones: {zones:?}"
    );
    let (raw, curated, vault) = (
        format!("{lake}-raw"),
        format!("{lake}-curated"),
        format!("{lake}-vault"),
    );

    // Read every setting back from MinIO.
    let versioning = |b: String| {
        let s3 = s3.clone();
        async move {
            s3.get_bucket_versioning()
                .bucket(b)
                .send()
                .await
                .ok()
                .and_then(|o| o.status)
        }
    };
    ensure!(
        versioning(raw.clone()).await.is_none(),
        "raw has no versioning"
    );
    ensure!(versioning(curated.clone()).await == Some(BucketVersioningStatus::Enabled));
    ensure!(versioning(vault.clone()).await == Some(BucketVersioningStatus::Enabled));
    let lock = s3
        .get_object_lock_configuration()
        .bucket(&vault)
        .send()
        .await?;
    let lock = lock
        .object_lock_configuration()
        .expect("lock configuration");
    ensure!(lock.object_lock_enabled() == Some(&ObjectLockEnabled::Enabled));
    let retention = lock
        .rule()
        .and_then(|r| r.default_retention())
        .expect("default retention");
    ensure!(
        retention.mode() == Some(&ObjectLockRetentionMode::Governance)
            && retention.days() == Some(1)
    );
    // MinIO has no AbortIncompleteMultipartUpload action (it expires stale uploads itself), so
    // the `uploads` rule, which has no other action, is not sent to it.
    ensure!(
        lifecycle_ids(&s3, &raw).await == vec![("tmp".to_string(), Some(7))],
        "raw lifecycle: {:?}",
        lifecycle_ids(&s3, &raw).await
    );
    let curated_rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&curated)
        .send()
        .await?;
    let rule = &curated_rules.rules()[0];
    ensure!(
        rule.noncurrent_version_expiration()
            .and_then(|n| n.noncurrent_days())
            == Some(30)
    );
    ensure!(
        op.metric_sum("lakeform_storage_writes_total{what=\"quota\"}")
            .await?
            == 1.0,
        "quota set once"
    );
    wait_event(&ctx, &lake, "Normal", "BucketCreated").await?;

    // A quiet resync writes nothing: several resync periods pass without storage writes or
    // status changes.
    let writes = op.metric_sum("lakeform_storage_writes_total").await?;
    let reconciles = op
        .metric_sum("lakeform_reconciliations_total{kind=\"DataLake\",result=\"ok\"}")
        .await?;
    let before = ctx.api::<lakeform_api::DataLake>().get(&lake).await?;
    let rv = before.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let reconciles_after = op
        .metric_sum("lakeform_reconciliations_total{kind=\"DataLake\",result=\"ok\"}")
        .await?;
    ensure!(
        reconciles_after >= reconciles + 2.0,
        "resyncs happened ({reconciles} -> {reconciles_after})"
    );
    ensure!(
        op.metric_sum("lakeform_storage_writes_total").await? == writes,
        "no storage write on resync"
    );
    let after = ctx.api::<lakeform_api::DataLake>().get(&lake).await?;
    let rv_after = after.metadata.resource_version.clone();
    ensure!(
        rv == rv_after,
        "the DataLake was rewritten on a quiet resync: {rv:?} -> {rv_after:?}\n\
         before: {} {}\nafter: {} {}\nevents: {:?}",
        serde_json::to_string(&before.status)?,
        serde_json::to_string(&before.metadata.managed_fields)?,
        serde_json::to_string(&after.status)?,
        serde_json::to_string(&after.metadata.managed_fields)?,
        events(&ctx, &lake).await?
    );
    println!(
        "quiet resync: {} reconciles, 0 storage writes, DataLake resourceVersion unchanged",
        reconciles_after - reconciles
    );

    // Edit a lifecycle rule and drop the curated zone: MinIO follows; the bucket stays.
    put_object(&s3, &curated, "keep/me.txt", b"data".to_vec()).await?;
    let edited = "    - name: raw
      quota: 1Gi
      lifecycle:
        - {id: tmp, prefix: tmp/, expireAfterDays: 3}
    - name: vault
      versioning: true
      objectLock: {mode: Governance, retentionDays: 1}
";
    apply(
        &ctx,
        &lake_yaml(&lake, &ctx.env.s3_endpoint, "s3", "Delete", edited),
    )
    .await?;
    let ready = wait_ready(&ctx, &lake).await?;
    ensure!(ready.status.as_ref().map(|s| s.zones.len()) == Some(2));
    eventually("raw lifecycle edited in MinIO", SETTLE, || async {
        lifecycle_ids(&s3, &raw).await == vec![("tmp".to_string(), Some(3))]
    })
    .await?;
    ensure!(
        bucket_exists(&s3, &curated).await,
        "a removed zone keeps its bucket"
    );
    let kept = s3
        .get_object()
        .bucket(&curated)
        .key("keep/me.txt")
        .send()
        .await;
    ensure!(kept.is_ok(), "and its data");

    // A bucket deleted by hand is recreated on the next resync.
    // (with a 3 s resync the operator may recreate it before a check that it is gone: the
    // evidence is a new creation date)
    let created = || async {
        s3.list_buckets().send().await.ok().and_then(|l| {
            l.buckets()
                .iter()
                .find(|b| b.name() == Some(raw.as_str()))
                .and_then(|b| b.creation_date().cloned())
        })
    };
    let before = created().await;
    ensure!(before.is_some(), "raw has a creation date");
    tokio::time::sleep(Duration::from_millis(1100)).await; // creation dates have 1 s steps
    delete_bucket(&s3, &raw).await?;
    eventually("raw bucket recreated", SETTLE, || async {
        let now = created().await;
        now.is_some() && now != before
    })
    .await?;
    eventually("its lifecycle restored", SETTLE, || async {
        lifecycle_ids(&s3, &raw).await == vec![("tmp".to_string(), Some(3))]
    })
    .await?;
    op.check_alive()?;

    // Clean up: the lake (deletionPolicy Delete) takes its two buckets; the removed zone's
    // bucket is ours to delete (the operator never deletes on edit).
    delete_lake(&ctx, &lake).await?;
    ensure!(!bucket_exists(&s3, &raw).await && !bucket_exists(&s3, &vault).await);
    delete_bucket(&s3, &curated).await.ok();
    Ok(())
}
