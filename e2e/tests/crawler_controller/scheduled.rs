//! A crawler with a one-minute schedule: the operator's CronJob is run by the real CronJob
//! controller, the node runs its Job with the crawler's ServiceAccount, the crawl writes
//! its report into the Crawler's status and PyIceberg reads the tables back.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Patch, PatchParams};
use lakeform_api::crawler::{Crawler, RunResult};
use lakeform_e2e::operator::Operator;
use lakeform_e2e::{TestContext, has_condition, lake};
use serde_json::json;

use super::common::{
    catalog, cleanup, condition, crawler_yaml, names, pyiceberg_rows, ready_lake, upload_corpus,
    wait_ready_is,
};
use crate::storage::common::{apply, events};

/// A minute for the schedule to come round, plus the run.
const FIRST_RUN: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_crawl_runs_in_a_cronjob_job_and_reports_into_status() -> Result<()> {
    lake::install_rustls_provider();
    let ctx = TestContext::new("crawlctl-sched").await?;
    ctx.require_node().await?;
    let server = catalog(&ctx).await?;
    let (lake_name, database) = names(&ctx, "cs");
    let mut op = Operator::start(&ctx, "3s")?;
    let result = scenario(&ctx, &server.uri, &mut op, &lake_name, &database).await;
    cleanup(&ctx, &lake_name).await;
    result
}

async fn scenario(
    ctx: &TestContext,
    catalog: &str,
    op: &mut Operator,
    lake_name: &str,
    database: &str,
) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    let objects = upload_corpus(ctx, lake_name).await?;
    apply(
        ctx,
        &crawler_yaml(
            "sales",
            lake_name,
            database,
            "  schedule: {cron: '* * * * *'}\n",
        ),
    )
    .await?;
    wait_ready_is(ctx, "sales", "True", "Scheduled").await?;
    let cj = ctx
        .api::<CronJob>()
        .get("sales-crawl")
        .await
        .context("the CronJob sales-crawl")?;
    let spec = cj.spec.clone().context("CronJob spec")?;
    ensure!(spec.schedule == "* * * * *" && spec.concurrency_policy.as_deref() == Some("Forbid"));
    let pod = spec
        .job_template
        .spec
        .and_then(|s| s.template.spec)
        .context("pod spec")?;
    ensure!(pod.service_account_name.as_deref() == Some("sales-crawler"));

    // the real CronJob controller starts a Job at the next minute; the node runs it
    let started = Instant::now();
    let api = ctx.api::<Crawler>();
    let mut saw_running = false;
    let crawler = loop {
        op.check_alive()?;
        let c = api.get("sales").await?;
        if condition(&c, "Running").map(|(s, _)| s) == Some("True".into()) {
            saw_running = true;
        }
        if let Some(run) = c.status.as_ref().and_then(|s| s.last_run.as_ref())
            && run.result.is_some()
        {
            break c;
        }
        if started.elapsed() > FIRST_RUN {
            bail!(
                "no crawl report after {}s; CronJob status: {:?}; crawler status: {:?}",
                FIRST_RUN.as_secs(),
                ctx.api::<CronJob>().get("sales-crawl").await?.status,
                c.status
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let status = crawler.status.clone().context("status")?;
    let run = status.last_run.clone().context("lastRun")?;
    eprintln!(
        "scheduled run after {:.1}s: {run:?}",
        started.elapsed().as_secs_f64()
    );
    ensure!(run.result == Some(RunResult::Succeeded), "{run:?}");
    let job_name = run.job_name.clone().context("lastRun.jobName")?;
    ensure!(job_name.starts_with("sales-crawl-"), "{job_name}");
    ensure!(run.objects_scanned == objects as i64, "{run:?}");
    ensure!(run.tables_created == 2, "{run:?}");
    ensure!(status.table_count == Some(2), "{:?}", status.table_count);
    let tables: Vec<&str> = status.tables.iter().map(|t| t.name.as_str()).collect();
    ensure!(tables == ["metrics", "orders"], "{tables:?}");
    ensure!(
        saw_running,
        "the Running condition was never True during the run"
    );

    // the Job is the CronJob's, and it completed
    let job = ctx.api::<Job>().get(&job_name).await?;
    ensure!(
        job.metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "CronJob" && o.name == "sales-crawl"),
        "Job {job_name} is not the CronJob's"
    );
    lakeform_e2e::wait_for(
        &ctx.api::<Job>(),
        &job_name,
        "the crawl Job to complete",
        Duration::from_secs(60),
        |j: Option<&Job>| j.is_some_and(|j| has_condition(j, "Complete")),
    )
    .await?;
    // Running goes back to False once no Job is active (the next minute may start another)
    lakeform_e2e::wait_for(
        &api,
        "sales",
        "Running=False after the run",
        Duration::from_secs(60),
        |c: Option<&Crawler>| {
            c.is_some_and(|c| condition(c, "Running").map(|(s, _)| s) == Some("False".into()))
        },
    )
    .await?;

    // a client we did not write reads the tables
    let rows = pyiceberg_rows(ctx, catalog, database, &["orders", "metrics"]).await?;
    ensure!(
        rows.get("orders") == Some(&50) && rows.get("metrics") == Some(&40),
        "{rows:?}"
    );

    // the controller never wrote the crawl's fields, the crawl never wrote the conditions
    let live = api.get("sales").await?;
    let managers: Vec<(String, String)> = live
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.fields_v1
                    .map(|f| serde_json::to_string(&f.0).unwrap_or_default())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let controller = managers
        .iter()
        .find(|(m, _)| m == "lakeform-crawler-controller")
        .context("no status fields of lakeform-crawler-controller")?;
    ensure!(
        !controller.1.contains("f:lastRun") && !controller.1.contains("f:tables"),
        "the controller owns the crawl's fields: {}",
        controller.1
    );

    // suspending the schedule keeps the CronJob, suspended
    ctx.api::<Crawler>()
        .patch(
            "sales",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"schedule": {"suspend": true}}})),
        )
        .await?;
    wait_ready_is(ctx, "sales", "True", "Suspended").await?;
    let cj = ctx.api::<CronJob>().get("sales-crawl").await?;
    ensure!(cj.spec.and_then(|s| s.suspend) == Some(true));
    let evs = events(ctx, "sales").await?;
    ensure!(
        !evs.iter().any(|(_, r, _)| r == "CrawlFailed"),
        "unexpected failure events: {evs:?}"
    );
    Ok(())
}
