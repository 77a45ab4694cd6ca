//! Wrong credentials and an unreachable endpoint are reported (condition reason + Warning
//! event), retried with backoff, and recover without restarting the operator.

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use lakeform_e2e::TestContext;
use lakeform_e2e::lake::s3_client;
use lakeform_e2e::operator::Operator;
use serde_json::json;

use super::common::*;

#[tokio::test]
async fn wrong_credentials_then_fixed_secret() -> Result<()> {
    let ctx = TestContext::new("storage-denied").await?;
    let lake = format!("dn{}", &ctx.ns[ctx.ns.len() - 6..]);
    secret(&ctx, "s3", &ctx.env.s3_access_key, "not-the-password").await?;
    let op = Operator::start(&ctx, "3s")?;
    apply(
        &ctx,
        &lake_yaml(
            &lake,
            &ctx.env.s3_endpoint,
            "s3",
            "Delete",
            "    - name: raw\n",
        ),
    )
    .await?;
    let l = wait_condition(&ctx, &lake, "StorageReady", "False", "AccessDenied").await?;
    ensure!(condition(&l, "Ready").map(|c| c.1) == Some("AccessDenied".into()));
    let evs = wait_event(&ctx, &lake, "Warning", "AccessDenied").await?;
    // Retries happen (with backoff) while it stays broken.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let failed = op
        .metric_sum("lakeform_reconciliations_total{kind=\"DataLake\",result=\"AccessDenied\"}")
        .await?;
    ensure!(failed >= 2.0, "retried: {failed} attempts");
    // No secret value leaks into status or events.
    let text = format!("{:?} {:?}", l.status, evs);
    ensure!(
        !text.contains("not-the-password") && !text.contains(&ctx.env.s3_secret_key),
        "secret leaked"
    );

    let fix = json!({"stringData": {"secretAccessKey": ctx.env.s3_secret_key}});
    ctx.api::<Secret>()
        .patch("s3", &PatchParams::default(), &Patch::Merge(&fix))
        .await?;
    wait_ready(&ctx, &lake).await?;
    ensure!(bucket_exists(&s3_client(&ctx.env), &format!("{lake}-raw")).await);
    delete_lake(&ctx, &lake).await
}

#[tokio::test]
async fn unreachable_endpoint_then_fixed() -> Result<()> {
    let ctx = TestContext::new("storage-down").await?;
    let lake = format!("dw{}", &ctx.ns[ctx.ns.len() - 6..]);
    secret(&ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    let _op = Operator::start(&ctx, "3s")?;
    // Port 9 (discard) on loopback: nothing listens there.
    apply(
        &ctx,
        &lake_yaml(
            &lake,
            "http://127.0.0.1:9",
            "s3",
            "Retain",
            "    - name: raw\n",
        ),
    )
    .await?;
    wait_condition(&ctx, &lake, "StorageReady", "False", "EndpointUnreachable").await?;
    wait_event(&ctx, &lake, "Warning", "EndpointUnreachable").await?;
    // With Retain, a lake whose storage is unreachable can still be deleted.
    delete_lake(&ctx, &lake).await?;

    let lake2 = format!("{lake}b");
    apply(
        &ctx,
        &lake_yaml(
            &lake2,
            "http://127.0.0.1:9",
            "s3",
            "Delete",
            "    - name: raw\n",
        ),
    )
    .await?;
    wait_condition(&ctx, &lake2, "StorageReady", "False", "EndpointUnreachable").await?;
    apply(
        &ctx,
        &lake_yaml(
            &lake2,
            &ctx.env.s3_endpoint,
            "s3",
            "Delete",
            "    - name: raw\n",
        ),
    )
    .await?;
    wait_ready(&ctx, &lake2).await?;
    delete_lake(&ctx, &lake2).await
}
