//! The operator SIGKILLed in the middle of reconciling a 10-zone lake and restarted converges
//! to the same buckets, without duplicates or errors left in status.

use std::time::Duration;

use anyhow::{Result, ensure};
use lakeform_e2e::TestContext;
use lakeform_e2e::lake::s3_client;
use lakeform_e2e::operator::Operator;

use super::common::*;

#[tokio::test]
async fn operator_killed_mid_reconcile_converges() -> Result<()> {
    let ctx = TestContext::new("storage-crash").await?;
    let s3 = s3_client(&ctx.env);
    let lake = format!("cr{}", &ctx.ns[ctx.ns.len() - 6..]);
    secret(&ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    let zones: String = (0..10)
        .map(|i| format!("    - name: z{i}\n      versioning: true\n      lifecycle: [{{id: tmp, prefix: tmp/, expireAfterDays: {}}}]\n", i + 1))
        .collect();
    apply(
        &ctx,
        &lake_yaml(&lake, &ctx.env.s3_endpoint, "s3", "Delete", &zones),
    )
    .await?;
    let mut op = Operator::start(&ctx, "3s")?;
    // Kill it as soon as the first buckets exist, while the others are being made.
    let first = format!("{lake}-z0");
    eventually("first bucket created", SETTLE, || {
        bucket_exists(&s3, &first)
    })
    .await?;
    op.kill9()?;
    let mut made = 0;
    for i in 0..10 {
        if bucket_exists(&s3, &format!("{lake}-z{i}")).await {
            made += 1;
        }
    }
    println!("killed the operator with {made}/10 buckets created");
    tokio::time::sleep(Duration::from_secs(1)).await;
    op.restart()?;
    let ready = wait_ready(&ctx, &lake).await?;
    let status = ready.status.clone().unwrap_or_default();
    ensure!(
        status.zones.len() == 10 && status.zones.iter().all(|z| z.ready && z.message.is_none()),
        "zones: {:?}",
        status.zones
    );
    ensure!(
        status.conditions.iter().all(|c| c.status == "True"),
        "conditions: {:?}",
        status.conditions
    );
    let all = s3.list_buckets().send().await?;
    let ours: Vec<_> = all
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| n.starts_with(&format!("{lake}-")))
        .collect();
    ensure!(ours.len() == 10, "exactly the 10 buckets: {ours:?}");
    for i in 0..10 {
        let rules = s3
            .get_bucket_lifecycle_configuration()
            .bucket(format!("{lake}-z{i}"))
            .send()
            .await?;
        ensure!(rules.rules()[0].expiration().and_then(|e| e.days()) == Some(i + 1));
    }
    delete_lake(&ctx, &lake).await
}
