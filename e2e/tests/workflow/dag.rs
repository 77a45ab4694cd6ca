//! A DAG run: a container step sees the run's identity, parameters and the lake's connection;
//! a crawl step runs the Crawler's crawl as the Crawler's ServiceAccount and PyIceberg reads
//! the table; the failure branch is skipped; the Workflow reports the run.

use anyhow::{Result, ensure};
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::Phase;
use lakeform_e2e::{TestContext, lake, wait_for};

use super::common::{lakeform_step, run_jobs, run_yaml, step, wait_finished};
use crate::controlplane::common::only_pod;
use crate::crawler_controller::common::{
    Needs, command, crawler_yaml, csv, pyiceberg_rows, ready_lake, staged, wait_ready_is,
};
use crate::storage::common::{apply, wait_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dag_run_passes_identity_and_parameters_and_crawls() -> Result<()> {
    staged(
        "wf-dag",
        "wd",
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
        csv(0, 21),
    )
    .await?;
    apply(ctx, &crawler_yaml("orders", lake_name, database, "")).await?;
    wait_ready_is(ctx, "orders", "True", "OnDemand").await?;

    let mut steps = lakeform_step(
        "announce",
        "",
        &[
            "debug",
            "env",
            "LAKEFORM_WORKFLOW",
            "LAKEFORM_RUN_ID",
            "LAKEFORM_STEP",
            "LAKEFORM_PARAM_DAY",
            "LAKEFORM_PARAM_WHO",
            "LAKEFORM_CATALOG_URI",
            "LAKEFORM_S3_ACCESS_KEY",
        ],
    );
    steps.push_str(
        "    - name: crawl\n      dependsOn: [announce]\n      crawl: {crawlerRef: {name: orders}}\n",
    );
    steps.push_str(&lakeform_step(
        "on-failure",
        "      dependsOn: [crawl]\n      when: Failed\n",
        &["debug", "env", "LAKEFORM_STEP"],
    ));
    apply(
        ctx,
        &format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: etl}}
spec:
  lakeRef: {{name: {lake_name}}}
  parameters: {{day: default-day, who: workflow}}
  steps:
{steps}"
        ),
    )
    .await?;
    wait_for(
        &ctx.api::<Workflow>(),
        "etl",
        "the Workflow to be Ready",
        super::common::RUN,
        |w: Option<&Workflow>| {
            w.and_then(|w| w.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
    )
    .await?;

    apply(ctx, &run_yaml("etl-1", "etl", "day: 2026-11-30", None)).await?;
    let run = wait_finished(ctx, "etl-1").await?;
    let phase = run.status.as_ref().and_then(|s| s.phase);
    ensure!(phase == Some(Phase::Succeeded), "run: {:?}", run.status);
    ensure!(step(&run, "announce")?.phase == Phase::Succeeded);
    ensure!(step(&run, "crawl")?.phase == Phase::Succeeded);
    ensure!(step(&run, "on-failure")?.phase == Phase::Skipped);
    ensure!(
        step(&run, "crawl")?.start_time >= step(&run, "announce")?.completion_time,
        "crawl started after announce finished"
    );
    let jobs = run_jobs(ctx, "etl-1").await?;
    ensure!(
        jobs == vec!["etl-1-announce-1".to_string(), "etl-1-crawl-1".to_string()],
        "one Job per started step attempt: {jobs:?}"
    );

    // the container saw the run's identity, merged parameters and the lake's connection
    let pod = only_pod(ctx, "etl-1-announce-1").await?;
    let log = ctx
        .pod_log(&pod.metadata.name.clone().unwrap_or_default(), "step")
        .await?;
    for want in [
        "LAKEFORM_WORKFLOW=etl",
        "LAKEFORM_RUN_ID=etl-1",
        "LAKEFORM_STEP=announce",
        "LAKEFORM_PARAM_DAY=2026-11-30",
        "LAKEFORM_PARAM_WHO=workflow",
        &format!("LAKEFORM_CATALOG_URI={catalog}"),
        &format!("LAKEFORM_S3_ACCESS_KEY={}", ctx.env.s3_access_key),
    ] {
        ensure!(
            log.contains(want),
            "{want:?} not in the step's output:\n{log}"
        );
    }

    // the crawl step's crawl registered the table: PyIceberg reads it
    let rows = pyiceberg_rows(ctx, catalog, database, &["orders"]).await?;
    ensure!(rows.get("orders") == Some(&21), "{rows:?}");

    // the Workflow reports its last run; the run's events tell the story
    let wf = wait_for(
        &ctx.api::<Workflow>(),
        "etl",
        "the Workflow to report the run",
        super::common::RUN,
        |w: Option<&Workflow>| {
            w.and_then(|w| w.status.as_ref())
                .and_then(|s| s.last_run.as_ref())
                .is_some_and(|r| r.name == "etl-1" && r.phase == "Succeeded")
        },
    )
    .await?;
    ensure!(
        wf.status.is_some_and(|s| s.active_runs.is_empty()),
        "no run active any more"
    );
    let wanted = [
        "StepStarted",
        "StepSucceeded",
        "StepSkipped",
        "RunSucceeded",
    ];
    wait_events(ctx, "etl-1", &format!("events {wanted:?}"), |evs| {
        wanted.iter().all(|w| evs.iter().any(|(_, r, _)| r == w))
    })
    .await?;

    // on demand through the CLI: one run per token; `workflow runs` shows the DAG
    let kubeconfig = ctx.env.kubeconfig.to_string_lossy().to_string();
    let target = format!("{}/etl", ctx.ns);
    let bin = lakeform_e2e::lakeform_bin()?;
    let run_args = |token| {
        [
            "workflow",
            "run",
            &target,
            "--token",
            token,
            "--kubeconfig",
            &kubeconfig,
        ]
    };
    let (ok, out) = command(&bin, &run_args("t1")).await?;
    ensure!(ok && out.contains("WorkflowRun etl-od-"), "{out}");
    let name = out
        .split_whitespace()
        .find(|w| w.starts_with("etl-od-"))
        .unwrap_or_default()
        .to_string();
    let run = wait_finished(ctx, &name).await?;
    ensure!(
        run.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded),
        "{:?}",
        run.status
    );
    let (ok, out) = command(&bin, &run_args("t1")).await?;
    ensure!(ok && out.contains("already"), "the same token again: {out}");
    let (ok, out) = command(
        &bin,
        &["workflow", "runs", &target, "--kubeconfig", &kubeconfig],
    )
    .await?;
    ensure!(ok, "{out}");
    let first_line = out.lines().next().unwrap_or_default();
    ensure!(
        first_line.starts_with(&format!("{name}  Succeeded")),
        "newest run first: {out}"
    );
    ensure!(
        out.contains("etl-1  Succeeded") && out.contains("after crawl") && out.contains("Skipped"),
        "{out}"
    );
    let runs = ctx
        .api::<lakeform_api::workflow_run::WorkflowRun>()
        .list(&Default::default())
        .await?
        .items;
    ensure!(runs.len() == 2, "one run per token: {} runs", runs.len());
    Ok(())
}
