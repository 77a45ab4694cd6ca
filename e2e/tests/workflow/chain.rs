//! `afterWorkflow` triggers: a run of `up` that succeeds starts exactly one run of the
//! workflow triggered on success, and none of the one triggered on failure.

use std::time::Duration;

use anyhow::{Result, ensure};
use kube::api::ListParams;
use lakeform_api::workflow_run::{Phase, WorkflowRun};
use lakeform_e2e::TestContext;

use super::common::{lakeform_step, run_yaml, wait_finished};
use crate::crawler_controller::common::{Needs, ready_lake, staged};
use crate::storage::common::apply;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_starts_the_workflows_triggered_after_it() -> Result<()> {
    staged(
        "wf-chain",
        "wh",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        scenario,
    )
    .await
}

fn workflow(name: &str, lake: &str, triggers: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  lakeRef: {{name: {lake}}}
{triggers}  steps:
{}",
        lakeform_step("hello", "", &["debug", "env", "LAKEFORM_WORKFLOW"])
    )
}

async fn runs_of(ctx: &TestContext, workflow: &str) -> Result<Vec<WorkflowRun>> {
    Ok(ctx
        .api::<WorkflowRun>()
        .list(&ListParams::default().labels(&format!("lakeform.dev/workflow={workflow}")))
        .await?
        .items)
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    apply(ctx, &workflow("up", lake_name, "")).await?;
    apply(
        ctx,
        &workflow(
            "on-success",
            lake_name,
            "  triggers: [{name: after-up, afterWorkflow: {name: up, state: Succeeded}}]\n",
        ),
    )
    .await?;
    apply(
        ctx,
        &workflow(
            "on-failure",
            lake_name,
            "  triggers: [{name: after-up, afterWorkflow: {name: up, state: Failed}}]\n",
        ),
    )
    .await?;
    // let both downstream workflows settle before the upstream run
    tokio::time::sleep(Duration::from_secs(3)).await;
    apply(ctx, &run_yaml("up-1", "up", "", None)).await?;
    let up = wait_finished(ctx, "up-1").await?;
    ensure!(up.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let started = loop {
        let runs = runs_of(ctx, "on-success").await?;
        if let Some(r) = runs.first() {
            ensure!(
                runs.len() == 1,
                "one upstream run, one downstream run: {}",
                runs.len()
            );
            break r.metadata.name.clone().unwrap_or_default();
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no run of on-success within 60 s of up-1 finishing"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ensure!(started.starts_with("on-success-after-"), "{started}");
    let run = wait_finished(ctx, &started).await?;
    ensure!(run.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded));
    ensure!(
        run.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("lakeform.dev/after-run"))
            .map(String::as_str)
            == Some("up-1"),
        "{:?}",
        run.metadata.annotations
    );
    // resyncs later: still one run each way
    tokio::time::sleep(Duration::from_secs(8)).await;
    ensure!(runs_of(ctx, "on-success").await?.len() == 1, "fired twice");
    ensure!(
        runs_of(ctx, "on-failure").await?.is_empty(),
        "the failure trigger fired on a success"
    );
    Ok(())
}
