//! On-demand runs: the `lakeform.dev/run` annotation starts exactly one Job per token (the same
//! token again starts none, a new token — set by `lakeform crawler run` — a second one).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::batch::v1::Job;
use lakeform_api::crawler::{Crawler, RunResult};
use lakeform_e2e::{TestContext, has_condition, lake, wait_for};
use serde_json::json;

use super::common::{
    Needs, annotate, command, condition, crawler_jobs, crawler_yaml, cronjob_exists, csv,
    ready_lake, staged, wait_ready_is,
};
use crate::storage::common::{apply, eventually, wait_events};

const RUN: Duration = Duration::from_secs(120);

/// Wait until the run of `token` is recorded and its own Job (the one annotated with the
/// token) has finished with a report. `lastRunToken` moves to the new token as soon as its Job
/// starts, while `lastRun` still holds the previous run's report until the new one ends.
async fn wait_run(ctx: &TestContext, token: &str) -> Result<Crawler> {
    let want = token.to_string();
    wait_for(
        &ctx.api::<Crawler>(),
        "orders",
        "the on-demand token to be recorded",
        RUN,
        move |c: Option<&Crawler>| {
            c.and_then(|c| c.status.as_ref())
                .is_some_and(|s| s.last_run_token.as_deref() == Some(want.as_str()))
        },
    )
    .await?;
    let job = crawler_jobs(ctx, "orders")
        .await?
        .into_iter()
        .find(|j| {
            j.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("lakeform.dev/run"))
                .map(String::as_str)
                == Some(token)
        })
        .and_then(|j| j.metadata.name)
        .with_context(|| format!("no Job annotated with token {token:?}"))?;
    wait_for(
        &ctx.api::<Crawler>(),
        "orders",
        &format!("the run of Job {job} to be reported"),
        RUN,
        move |c: Option<&Crawler>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.last_run.as_ref())
                .is_some_and(|r| r.result.is_some() && r.job_name.as_deref() == Some(job.as_str()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_token_starts_exactly_one_job() -> Result<()> {
    staged(
        "crawlctl-demand",
        "cd",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        scenario,
    )
    .await
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    let s3 = lake::s3_client(&ctx.env);
    lake::put_object(
        &s3,
        &format!("{lake_name}-raw"),
        "data/orders/1.csv",
        csv(0, 12),
    )
    .await?;
    apply(ctx, &crawler_yaml("orders", lake_name, database, "")).await?;
    wait_ready_is(ctx, "orders", "True", "OnDemand").await?;
    ensure!(
        !cronjob_exists(ctx, "orders").await?,
        "no schedule, no CronJob"
    );
    ensure!(crawler_jobs(ctx, "orders").await?.is_empty());

    // token t1: one Job, recorded, run to completion on the node
    annotate(ctx, "orders", json!({"lakeform.dev/run": "t1"})).await?;
    let c = wait_run(ctx, "t1").await?;
    let jobs = crawler_jobs(ctx, "orders").await?;
    ensure!(jobs.len() == 1, "one Job for t1, got {}", jobs.len());
    let first = jobs[0].metadata.name.clone().context("job name")?;
    let run = c.status.and_then(|s| s.last_run).context("lastRun")?;
    ensure!(
        run.result == Some(RunResult::Succeeded) && run.job_name.as_deref() == Some(&first),
        "{run:?}"
    );
    ensure!(
        run.tables_created == 1 && run.objects_scanned == 1,
        "{run:?}"
    );
    ensure!(
        jobs[0]
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("lakeform.dev/run"))
            .map(String::as_str)
            == Some("t1")
    );
    wait_for(
        &ctx.api::<Job>(),
        &first,
        "the t1 Job to complete",
        RUN,
        |j: Option<&Job>| j.is_some_and(|j| has_condition(j, "Complete")),
    )
    .await?;

    // the same token again (and other changes that wake the controller): no second Job
    annotate(
        ctx,
        "orders",
        json!({"lakeform.dev/run": "t1", "example.com/touched": "1"}),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(10)).await; // > 3 resyncs
    let jobs = crawler_jobs(ctx, "orders").await?;
    ensure!(
        jobs.len() == 1,
        "the same token started another Job: {:?}",
        jobs.iter()
            .map(|j| j.metadata.name.clone())
            .collect::<Vec<_>>()
    );

    // a new token through the CLI: a second Job
    let kubeconfig = ctx.env.kubeconfig.to_string_lossy().to_string();
    let crawler_ref = format!("{}/orders", ctx.ns);
    let (ok, out) = command(
        &lakeform_e2e::lakeform_bin()?,
        &[
            "crawler",
            "run",
            &crawler_ref,
            "--token",
            "t2",
            "--kubeconfig",
            &kubeconfig,
        ],
    )
    .await?;
    ensure!(ok, "lakeform crawler run failed: {out}");
    ensure!(out.contains("orders-run-"), "{out}");
    let c = wait_run(ctx, "t2").await?;
    let jobs = crawler_jobs(ctx, "orders").await?;
    ensure!(jobs.len() == 2, "two tokens, two Jobs: got {}", jobs.len());
    let second = jobs
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .find(|n| n != &first)
        .context("second Job")?;
    let run = c.status.and_then(|s| s.last_run).context("lastRun")?;
    ensure!(run.job_name.as_deref() == Some(&second), "{run:?}");
    ensure!(run.result == Some(RunResult::Succeeded), "{run:?}");
    ensure!(
        out.contains(&second),
        "the CLI named the Job it asked for: {out}"
    );

    // the same token through the CLI says so and starts nothing
    let (ok, out) = command(
        &lakeform_e2e::lakeform_bin()?,
        &[
            "crawler",
            "run",
            &crawler_ref,
            "--token",
            "t2",
            "--kubeconfig",
            &kubeconfig,
        ],
    )
    .await?;
    ensure!(ok && out.contains("already"), "{out}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    ensure!(crawler_jobs(ctx, "orders").await?.len() == 2);

    // events: one CrawlStarted per token, Running back to False
    eventually("Running=False", Duration::from_secs(60), || async {
        ctx.api::<Crawler>()
            .get("orders")
            .await
            .ok()
            .and_then(|c| condition(&c, "Running"))
            .is_some_and(|(s, _)| s == "False")
    })
    .await?;
    let crawl_started = |evs: &[(String, String, String)]| {
        evs.iter()
            .filter(|(t, r, _)| t == "Normal" && r == "CrawlStarted")
            .count()
    };
    let evs = wait_events(ctx, "orders", "two CrawlStarted events", |evs| {
        crawl_started(evs) >= 2
    })
    .await?;
    let started: Vec<&String> = evs
        .iter()
        .filter(|(t, r, _)| t == "Normal" && r == "CrawlStarted")
        .map(|(_, _, n)| n)
        .collect();
    ensure!(started.len() == 2, "CrawlStarted events: {started:?}");
    ensure!(
        started.iter().any(|n| n.contains("t1")) && started.iter().any(|n| n.contains("t2")),
        "{started:?}"
    );
    Ok(())
}
