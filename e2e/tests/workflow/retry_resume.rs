//! A failing step is retried `retries` times with backoff, then fails the run and its
//! dependents are skipped; a run with `resumeFrom` keeps the steps that succeeded and re-runs
//! only the failed branch, which succeeds once its cause (a parameter) is fixed.

use anyhow::{Result, ensure};
use lakeform_api::workflow_run::Phase;
use lakeform_e2e::TestContext;

use super::common::{lakeform_step, run_jobs, run_yaml, step, wait_finished};
use crate::crawler_controller::common::{Needs, ready_lake, staged};
use crate::storage::common::{apply, wait_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_step_retries_then_resume_reruns_only_the_failed_branch() -> Result<()> {
    staged(
        "wf-retry",
        "wr",
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
    let mut steps = lakeform_step("first", "", &["debug", "env", "LAKEFORM_STEP"]);
    steps.push_str(&lakeform_step(
        "check",
        "      dependsOn: [first]\n      retries: 1\n",
        &["debug", "require-env", "LAKEFORM_PARAM_READY=yes"],
    ));
    steps.push_str(&lakeform_step(
        "after",
        "      dependsOn: [check]\n",
        &["debug", "env", "LAKEFORM_STEP"],
    ));
    apply(
        ctx,
        &format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: flaky}}
spec:
  lakeRef: {{name: {lake_name}}}
  steps:
{steps}"
        ),
    )
    .await?;

    // without READY=yes, `check` fails twice (1 + retries) and `after` is skipped
    apply(ctx, &run_yaml("flaky-1", "flaky", "", None)).await?;
    let run = wait_finished(ctx, "flaky-1").await?;
    let status = run.status.clone().unwrap_or_default();
    ensure!(status.phase == Some(Phase::Failed), "{status:?}");
    let check = step(&run, "check")?;
    ensure!(
        check.phase == Phase::Failed && check.attempts == 2,
        "check: {check:?}"
    );
    ensure!(
        check
            .message
            .as_deref()
            .is_some_and(|m| m.contains("failed after 2 attempt(s)")),
        "{check:?}"
    );
    ensure!(step(&run, "first")?.phase == Phase::Succeeded);
    ensure!(step(&run, "after")?.phase == Phase::Skipped);
    ensure!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("check")),
        "the run says which step failed: {:?}",
        status.message
    );
    let jobs = run_jobs(ctx, "flaky-1").await?;
    ensure!(
        jobs == vec![
            "flaky-1-check-1".to_string(),
            "flaky-1-check-2".into(),
            "flaky-1-first-1".into()
        ],
        "{jobs:?}"
    );
    let wanted = ["StepRetrying", "StepFailed", "StepSkipped", "RunFailed"];
    wait_events(ctx, "flaky-1", &format!("events {wanted:?}"), |evs| {
        wanted.iter().all(|w| evs.iter().any(|(_, r, _)| r == w))
    })
    .await?;

    // resume with the cause fixed: `first` keeps its result, `check` and `after` run
    apply(
        ctx,
        &run_yaml("flaky-2", "flaky", "READY: 'yes'", Some("flaky-1")),
    )
    .await?;
    let run = wait_finished(ctx, "flaky-2").await?;
    let status = run.status.clone().unwrap_or_default();
    ensure!(status.phase == Some(Phase::Succeeded), "{status:?}");
    let first = step(&run, "first")?;
    ensure!(
        first.phase == Phase::Succeeded
            && first.job_name.as_deref() == Some("flaky-1-first-1")
            && first
                .message
                .as_deref()
                .is_some_and(|m| m.contains("succeeded in run flaky-1")),
        "first kept its earlier result: {first:?}"
    );
    ensure!(step(&run, "check")?.phase == Phase::Succeeded);
    ensure!(step(&run, "after")?.phase == Phase::Succeeded);
    let jobs = run_jobs(ctx, "flaky-2").await?;
    ensure!(
        jobs == vec!["flaky-2-after-1".to_string(), "flaky-2-check-1".into()],
        "only the failed branch ran again: {jobs:?}"
    );
    Ok(())
}
