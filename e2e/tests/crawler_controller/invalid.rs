//! What a schema cannot check: an invalid cron, a target zone the lake does not have and a
//! missing DataLake each give `Ready=False` with a reason and no CronJob; fixing the spec (or
//! creating the lake) brings the CronJob; breaking it again removes it.

use std::time::Duration;

use anyhow::{Result, ensure};
use kube::api::{Patch, PatchParams};
use lakeform_api::crawler::Crawler;
use lakeform_e2e::TestContext;
use serde_json::json;

use super::common::{Needs, crawler_yaml, cronjob_exists, lake_yaml, staged, wait_ready_is};
use crate::storage::common::{apply, eventually, secret, wait_event, wait_ready};

/// A schedule that does not fire during a test.
const NIGHTLY: &str = "  schedule: {cron: '0 3 * * *'}\n";

async fn message(ctx: &TestContext, name: &str) -> Result<String> {
    let c = ctx.api::<Crawler>().get(name).await?;
    Ok(c.status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message)
        .unwrap_or_default())
}

async fn patch_spec(ctx: &TestContext, name: &str, spec: serde_json::Value) -> Result<()> {
    ctx.api::<Crawler>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_and_missing_lake_give_reasons_and_no_cronjob() -> Result<()> {
    staged("crawlctl-invalid", "ci", Needs::default(), scenario).await
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    secret(ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    // three crawlers before their lake exists
    apply(
        ctx,
        &crawler_yaml(
            "bad-cron",
            lake_name,
            database,
            "  schedule: {cron: 'every minute'}\n",
        ),
    )
    .await?;
    let bad_zone = crawler_yaml("bad-zone", lake_name, database, NIGHTLY)
        .replace("- zone: raw", "- zone: gold");
    apply(ctx, &bad_zone).await?;
    apply(ctx, &crawler_yaml("no-lake", lake_name, database, NIGHTLY)).await?;

    wait_ready_is(ctx, "bad-cron", "False", "InvalidSpec").await?;
    let m = message(ctx, "bad-cron").await?;
    ensure!(
        m.contains("spec.schedule.cron") && m.contains("every minute"),
        "{m}"
    );
    wait_ready_is(ctx, "no-lake", "False", "LakeNotFound").await?;
    let m = message(ctx, "no-lake").await?;
    ensure!(m.contains(lake_name), "{m}");
    for c in ["bad-cron", "bad-zone", "no-lake"] {
        ensure!(!cronjob_exists(ctx, c).await?, "{c} has a CronJob");
    }

    // the lake appears: no-lake recovers, bad-zone is now found invalid
    apply(ctx, &lake_yaml(ctx, catalog, lake_name, database)).await?;
    wait_ready(ctx, lake_name).await?;
    wait_ready_is(ctx, "no-lake", "True", "Scheduled").await?;
    ensure!(
        cronjob_exists(ctx, "no-lake").await?,
        "no-lake has no CronJob"
    );
    wait_ready_is(ctx, "bad-zone", "False", "InvalidSpec").await?;
    let m = message(ctx, "bad-zone").await?;
    ensure!(
        m.contains("spec.targets[0].zone") && m.contains("gold"),
        "{m}"
    );
    wait_ready_is(ctx, "bad-cron", "False", "InvalidSpec").await?;
    for c in ["bad-cron", "bad-zone"] {
        ensure!(!cronjob_exists(ctx, c).await?, "{c} has a CronJob");
        wait_event(ctx, c, "Warning", "InvalidSpec").await?;
    }
    wait_event(ctx, "no-lake", "Warning", "LakeNotFound").await?;

    // fixing the specs brings the CronJobs
    patch_spec(ctx, "bad-cron", json!({"schedule": {"cron": "0 3 * * *"}})).await?;
    patch_spec(
        ctx,
        "bad-zone",
        json!({"targets": [{"zone": "raw", "prefix": "data/"}]}),
    )
    .await?;
    for c in ["bad-cron", "bad-zone"] {
        wait_ready_is(ctx, c, "True", "Scheduled").await?;
        ensure!(
            cronjob_exists(ctx, c).await?,
            "{c} has no CronJob after the fix"
        );
    }

    // breaking a spec again removes its CronJob; so does removing the schedule
    patch_spec(
        ctx,
        "bad-cron",
        json!({"schedule": {"timeZone": "Mars/Olympus_Mons"}}),
    )
    .await?;
    wait_ready_is(ctx, "bad-cron", "False", "InvalidSpec").await?;
    ensure!(
        message(ctx, "bad-cron")
            .await?
            .contains("spec.schedule.timeZone")
    );
    patch_spec(ctx, "no-lake", json!({"schedule": null})).await?;
    wait_ready_is(ctx, "no-lake", "True", "OnDemand").await?;
    for c in ["bad-cron", "no-lake"] {
        eventually(
            &format!("the CronJob of {c} is deleted"),
            Duration::from_secs(30),
            || async { !cronjob_exists(ctx, c).await.unwrap_or(true) },
        )
        .await?;
    }
    Ok(())
}
