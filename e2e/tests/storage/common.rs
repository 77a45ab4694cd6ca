//! Helpers for the storage tests.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{ListParams, PostParams};
use lakeform_api::DataLake;
use lakeform_e2e::{ApplyOptions, TestContext, apply_yaml_str, wait_for};
use serde_json::json;

/// Time a DataLake may take to settle (several reconciles with backoff).
pub const SETTLE: Duration = Duration::from_secs(60);

/// Create the credentials Secret `name` with the given keys.
pub async fn secret(ctx: &TestContext, name: &str, access: &str, secret: &str) -> Result<()> {
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"accessKeyId": access, "secretAccessKey": secret},
    }))?;
    ctx.api::<Secret>()
        .create(&PostParams::default(), &s)
        .await
        .context("creating the Secret")?;
    Ok(())
}

/// A DataLake manifest on an external endpoint; `zones` is the YAML list under `zones:`.
pub fn lake_yaml(name: &str, endpoint: &str, secret: &str, policy: &str, zones: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1\nkind: DataLake\nmetadata:\n  name: {name}\nspec:\n  storage:\n    deletionPolicy: {policy}\n    external:\n      endpoint: {endpoint}\n      credentials: {{secretName: {secret}}}\n  zones:\n{zones}"
    )
}

/// Apply YAML into the test namespace.
pub async fn apply(ctx: &TestContext, yaml: &str) -> Result<()> {
    apply_yaml_str(&ctx.client, yaml, &ApplyOptions::new(&ctx.ns))
        .await
        .map(drop)
}

/// The condition `ctype` of a lake as (status, reason).
pub fn condition(lake: &DataLake, ctype: &str) -> Option<(String, String)> {
    lake.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == ctype)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Wait until `ctype` has `status` and `reason` for the current generation.
pub async fn wait_condition(
    ctx: &TestContext,
    name: &str,
    ctype: &str,
    status: &str,
    reason: &str,
) -> Result<DataLake> {
    let (ctype, status, reason) = (ctype.to_string(), status.to_string(), reason.to_string());
    let what = format!("{ctype}={status} ({reason})");
    wait_for(
        &ctx.api::<DataLake>(),
        name,
        &what,
        SETTLE,
        move |l: Option<&DataLake>| {
            l.is_some_and(|l| {
                let current =
                    l.status.as_ref().and_then(|s| s.observed_generation) == l.metadata.generation;
                current && condition(l, &ctype) == Some((status.clone(), reason.clone()))
            })
        },
    )
    .await
}

/// Wait until the lake is Ready.
pub async fn wait_ready(ctx: &TestContext, name: &str) -> Result<DataLake> {
    wait_condition(ctx, name, "Ready", "True", "Reconciled").await
}

/// Events about `name` in the test namespace, as (type, reason, note).
pub async fn events(ctx: &TestContext, name: &str) -> Result<Vec<(String, String, String)>> {
    let list = ctx
        .api::<Event>()
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect())
}

/// Events about `name` once `ok` holds for them, at most 30 s. A controller writes its status
/// before it records the event that explains it, so a test that saw the status waits here
/// rather than reading the events once.
pub async fn wait_events<F>(
    ctx: &TestContext,
    name: &str,
    what: &str,
    ok: F,
) -> Result<Vec<(String, String, String)>>
where
    F: Fn(&[(String, String, String)]) -> bool,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let evs = events(ctx, name).await?;
        if ok(&evs) {
            return Ok(evs);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after 30s waiting for {what} about {name}: {evs:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Wait for an event of `type_` and `reason` about `name`; the events so far.
pub async fn wait_event(
    ctx: &TestContext,
    name: &str,
    type_: &str,
    reason: &str,
) -> Result<Vec<(String, String, String)>> {
    wait_events(ctx, name, &format!("a {type_} {reason} event"), |evs| {
        evs.iter().any(|(t, r, _)| t == type_ && r == reason)
    })
    .await
}

/// Does the bucket exist in MinIO?
pub async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    s3.head_bucket().bucket(bucket).send().await.is_ok()
}

/// Poll `f` until it returns true, at most `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("timed out after {}s: {what}", timeout.as_secs())
}

/// Delete the DataLake and wait until it is gone (its finalizer handled by the operator).
pub async fn delete_lake(ctx: &TestContext, name: &str) -> Result<()> {
    let api = ctx.api::<DataLake>();
    let Some(lake) = api.get_opt(name).await? else {
        return Ok(());
    };
    let uid = lake.metadata.uid.clone().unwrap_or_default();
    api.delete(name, &Default::default()).await?;
    lakeform_e2e::wait_for_deleted(
        &api,
        name,
        &uid,
        "DataLake deleted (finalizer removed)",
        SETTLE,
    )
    .await
}
