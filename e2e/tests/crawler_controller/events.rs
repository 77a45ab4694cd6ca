//! Event mode: with `runOnEvents` the operator points the zone bucket's notifications at MinIO's
//! webhook target `LAKEFORM` (e2e/up declares it, delivering to the address the test operator's
//! event receiver listens on) and starts one crawl per batch — `batchSize: 5` and five uploaded objects give exactly one Job,
//! which crawls those five keys and nothing else.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use lakeform_api::crawler::{Crawler, RunResult};
use lakeform_e2e::{TestContext, has_condition, lake, wait_for};

use super::common::{
    Needs, crawler_jobs, crawler_yaml, csv, pyiceberg_rows, ready_lake, staged, wait_ready_is,
};
use crate::storage::common::{apply, events};

const RUN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_notified_objects_start_exactly_one_crawl_of_those_keys() -> Result<()> {
    staged(
        "crawlctl-events",
        "ce",
        Needs {
            jobs: true,
            events: true,
        },
        scenario,
    )
    .await
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    let s3 = lake::s3_client(&ctx.env);
    let bucket = format!("{lake_name}-raw");
    // there before the crawler: never notified, so an event batch does not crawl it
    lake::put_object(&s3, &bucket, "data/orders/0.csv", csv(1000, 7)).await?;
    apply(
        ctx,
        &crawler_yaml(
            "orders",
            lake_name,
            database,
            "  recrawlPolicy: Events\n  runOnEvents: {batchSize: 5, batchWindowSeconds: 3600}\n",
        ),
    )
    .await?;
    let c = wait_ready_is(ctx, "orders", "True", "OnDemand").await?;
    let message = c
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|x| x.type_ == "Ready"))
        .map(|x| x.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains("crawls object-created notifications of") && message.contains(&bucket),
        "Ready message says what the crawler listens to: {message}"
    );
    // the operator pointed the bucket at its webhook target
    let config = s3
        .get_bucket_notification_configuration()
        .bucket(&bucket)
        .send()
        .await?;
    let queues = config.queue_configurations();
    ensure!(
        queues.len() == 1
            && queues[0].queue_arn().starts_with("arn:minio:sqs:")
            && queues[0].queue_arn().ends_with(":LAKEFORM:webhook")
            && queues[0]
                .id()
                .is_some_and(|id| id.starts_with(&format!("lakeform:{}/orders:", ctx.ns))),
        "bucket notification configuration: {queues:?}"
    );

    // outside the target: notified by MinIO, not counted by the crawler
    lake::put_object(&s3, &bucket, "elsewhere/x.csv", csv(0, 3)).await?;
    let mut keys = Vec::new();
    for i in 1..=4 {
        let key = format!("data/orders/{i}.csv");
        lake::put_object(&s3, &bucket, &key, csv(i * 10, 10)).await?;
        keys.push(format!("{bucket}/{key}"));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    ensure!(
        crawler_jobs(ctx, "orders").await?.is_empty(),
        "four keys are not a batch of five"
    );
    lake::put_object(&s3, &bucket, "data/orders/5.csv", csv(50, 10)).await?;
    keys.push(format!("{bucket}/data/orders/5.csv"));

    // exactly one Job, labelled as an event batch, with the five keys
    let jobs = wait_for_jobs(ctx).await?;
    let job = &jobs[0];
    let name = job.metadata.name.clone().context("job name")?;
    ensure!(
        job.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("lakeform.dev/trigger"))
            .map(String::as_str)
            == Some("events"),
        "{:?}",
        job.metadata.labels
    );
    // the operator hands the keys ConfigMap over to the Job just after creating it: wait for
    // that (reading it once raced the hand-over)
    let handed_over = {
        let job = name.clone();
        move |cm: Option<&ConfigMap>| {
            cm.and_then(|c| c.metadata.owner_references.as_ref())
                .is_some_and(|o| o.iter().any(|o| o.kind == "Job" && o.name == job))
        }
    };
    let cm = wait_for(
        &ctx.api::<ConfigMap>(),
        &format!("{name}-keys"),
        "the batch's keys ConfigMap owned by its Job",
        Duration::from_secs(30),
        handed_over,
    )
    .await
    .context("the batch's keys ConfigMap")?;
    let mut listed: Vec<String> = cm
        .data
        .as_ref()
        .and_then(|d| d.get("keys"))
        .map(|k| k.lines().map(str::to_string).collect())
        .unwrap_or_default();
    listed.sort();
    keys.sort();
    ensure!(listed == keys, "batch keys {listed:?}, uploaded {keys:?}");
    ensure!(
        cm.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o.kind == "Job" && o.name == name)),
        "the keys ConfigMap goes with its Job: {:?}",
        cm.metadata.owner_references
    );
    wait_for(
        &ctx.api::<Job>(),
        &name,
        "the event-batch Job to complete",
        RUN,
        |j: Option<&Job>| j.is_some_and(|j| has_condition(j, "Complete")),
    )
    .await?;

    // the run crawled the five notified objects only
    let c = wait_for(
        &ctx.api::<Crawler>(),
        "orders",
        "the event-batch run to be reported",
        RUN,
        |c: Option<&Crawler>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.last_run.as_ref())
                .is_some_and(|r| r.result.is_some())
        },
    )
    .await?;
    let run = c.status.and_then(|s| s.last_run).context("lastRun")?;
    ensure!(
        run.result == Some(RunResult::Succeeded) && run.job_name.as_deref() == Some(&name),
        "{run:?}"
    );
    ensure!(run.tables_created == 1, "{run:?}");
    let rows = pyiceberg_rows(ctx, catalog, database, &["orders"]).await?;
    ensure!(
        rows.get("orders") == Some(&50),
        "PyIceberg reads the 5 × 10 notified rows, not the 7 rows that were there before: {rows:?}"
    );

    // nothing else starts: no second batch, no duplicate
    tokio::time::sleep(Duration::from_secs(8)).await;
    let jobs = crawler_jobs(ctx, "orders").await?;
    ensure!(
        jobs.len() == 1,
        "one batch, one Job: {:?}",
        jobs.iter().map(|j| &j.metadata.name).collect::<Vec<_>>()
    );
    let evs = events(ctx, "orders").await?;
    let started: Vec<&String> = evs
        .iter()
        .filter(|(t, r, _)| t == "Normal" && r == "CrawlStarted")
        .map(|(_, _, n)| n)
        .collect();
    ensure!(
        started.len() == 1 && started[0].contains("5 notified object(s)"),
        "{started:?}"
    );
    Ok(())
}

/// Wait until the crawler has a Job (at most [`RUN`]).
async fn wait_for_jobs(ctx: &TestContext) -> Result<Vec<Job>> {
    let deadline = tokio::time::Instant::now() + RUN;
    loop {
        let jobs = crawler_jobs(ctx, "orders").await?;
        if !jobs.is_empty() {
            ensure!(jobs.len() == 1, "one batch started {} Jobs", jobs.len());
            return Ok(jobs);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no crawl started within {RUN:?} of the fifth upload"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
