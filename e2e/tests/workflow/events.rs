//! `event` triggers: the operator routes the trigger's bucket prefix to MinIO's webhook target
//! and, when `batchSize` objects arrived, starts exactly one run whose steps see the batch's
//! keys (`LAKEFORM_EVENT_KEYS`) and whose crawl step crawls only those objects.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::{Phase, WorkflowRun};
use lakeform_e2e::{TestContext, lake};

use super::common::{RUN, lakeform_step, step, wait_finished, wait_ready_reason};
use crate::controlplane::common::only_pod;
use crate::crawler_controller::common::{
    Needs, crawler_yaml, csv, pyiceberg_rows, ready_lake, staged, wait_ready_is,
};
use crate::storage::common::apply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_notified_objects_start_one_run_that_crawls_them() -> Result<()> {
    staged(
        "wf-events",
        "we",
        Needs {
            jobs: true,
            events: true,
        },
        scenario,
    )
    .await
}

async fn runs(ctx: &TestContext) -> Result<Vec<WorkflowRun>> {
    Ok(ctx
        .api::<WorkflowRun>()
        .list(&ListParams::default().labels("lakeform.dev/workflow=ingest"))
        .await?
        .items)
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    let s3 = lake::s3_client(&ctx.env);
    let bucket = format!("{lake_name}-raw");
    // there before the trigger: never notified, never crawled by the batch
    lake::put_object(&s3, &bucket, "data/orders/0.csv", csv(1000, 7)).await?;
    apply(ctx, &crawler_yaml("orders", lake_name, database, "")).await?;
    wait_ready_is(ctx, "orders", "True", "OnDemand").await?;
    let mut steps = lakeform_step("announce", "", &["debug", "env", "LAKEFORM_EVENT_KEYS"]);
    steps.push_str(
        "    - name: crawl\n      dependsOn: [announce]\n      crawl: {crawlerRef: {name: orders}}\n",
    );
    apply(
        ctx,
        &format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: ingest}}
spec:
  lakeRef: {{name: {lake_name}}}
  steps:
{steps}  triggers:
    - name: landed
      event: {{zone: raw, prefix: data/, batchSize: 3, batchWindowSeconds: 3600}}
"
        ),
    )
    .await?;
    let message = wait_ready_reason(ctx, "ingest", "Ready").await?;
    ensure!(
        message.contains("event triggers landed:") && message.contains(&bucket),
        "{message}"
    );
    let config = s3
        .get_bucket_notification_configuration()
        .bucket(&bucket)
        .send()
        .await?;
    let ids: Vec<&str> = config
        .queue_configurations()
        .iter()
        .filter_map(|q| q.id())
        .collect();
    ensure!(
        ids.iter()
            .any(|id| id.starts_with(&format!("lakeform-wf:{}/ingest/landed:", ctx.ns))),
        "bucket notification rules: {ids:?}"
    );

    let mut keys = Vec::new();
    for i in 1..=2 {
        let key = format!("data/orders/{i}.csv");
        lake::put_object(&s3, &bucket, &key, csv(i * 10, 10)).await?;
        keys.push(format!("{bucket}/{key}"));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    ensure!(
        runs(ctx).await?.is_empty(),
        "two keys are not a batch of three"
    );
    lake::put_object(&s3, &bucket, "data/orders/3.csv", csv(30, 10)).await?;
    keys.push(format!("{bucket}/data/orders/3.csv"));
    keys.sort();

    let deadline = tokio::time::Instant::now() + RUN;
    let name = loop {
        if let Some(r) = runs(ctx).await?.first() {
            break r.metadata.name.clone().context("run name")?;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no run started by the batch"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let run = wait_finished(ctx, &name).await?;
    ensure!(
        run.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded),
        "{:?}",
        run.status
    );
    ensure!(step(&run, "crawl")?.phase == Phase::Succeeded);
    ensure!(
        run.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("lakeform.dev/trigger"))
            .map(String::as_str)
            == Some("event-landed"),
        "{:?}",
        run.metadata.labels
    );
    let cm = ctx
        .api::<ConfigMap>()
        .get(&name)
        .await
        .context("the batch's keys")?;
    let mut listed: Vec<String> = cm
        .data
        .as_ref()
        .and_then(|d| d.get("keys"))
        .map(|k| k.lines().map(str::to_string).collect())
        .unwrap_or_default();
    listed.sort();
    ensure!(listed == keys, "batch {listed:?}, uploaded {keys:?}");
    ensure!(
        cm.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o.kind == "WorkflowRun" && o.name == name)),
        "the keys go with the run: {:?}",
        cm.metadata.owner_references
    );
    let pod = only_pod(ctx, &format!("{name}-announce-1")).await?;
    let log = ctx
        .pod_log(&pod.metadata.name.clone().unwrap_or_default(), "step")
        .await?;
    ensure!(
        keys.iter().all(|k| log.contains(k.as_str())),
        "the step saw the keys:\n{log}"
    );
    let rows = pyiceberg_rows(ctx, catalog, database, &["orders"]).await?;
    ensure!(
        rows.get("orders") == Some(&30),
        "the crawl step read the 3 × 10 notified rows, not the 7 that were there before: {rows:?}"
    );

    // one batch, one run
    tokio::time::sleep(Duration::from_secs(8)).await;
    let all = runs(ctx).await?;
    ensure!(
        all.len() == 1,
        "{:?}",
        all.iter().map(|r| &r.metadata.name).collect::<Vec<_>>()
    );
    let wf = ctx.api::<Workflow>().get("ingest").await?;
    ensure!(
        wf.status
            .and_then(|s| s.last_event_batch)
            .is_some_and(|b| b.starts_with("landed/events-")),
        "status.lastEventBatch"
    );
    println!("event trigger: 2 uploads → no run; 3rd → one run {name}, its crawl read 30 rows");
    Ok(())
}
