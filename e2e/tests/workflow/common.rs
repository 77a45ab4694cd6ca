//! Helpers of the workflow tests.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::batch::v1::Job;
use kube::api::ListParams;
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::{Phase, StepStatus, WorkflowRun};
use lakeform_e2e::{TestContext, wait_for};

/// How long a run may take.
pub const RUN: Duration = Duration::from_secs(150);

/// A container step running the lakeform image under test with `args`.
pub fn lakeform_step(name: &str, extra: &str, args: &[&str]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "    - name: {name}\n{extra}      container:\n        image: {}\n        command: [lakeform, {}]\n",
        lakeform_e2e::env::e2e_image(),
        quoted.join(", ")
    )
}

/// A WorkflowRun manifest.
pub fn run_yaml(name: &str, workflow: &str, params: &str, resume_from: Option<&str>) -> String {
    let resume = resume_from
        .map(|r| format!("  resumeFrom: {{name: {r}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: WorkflowRun
metadata: {{name: {name}}}
spec:
  workflowRef: {{name: {workflow}}}
  parameters: {{{params}}}
{resume}"
    )
}

/// Wait until the run has finished (any final phase).
pub async fn wait_finished(ctx: &TestContext, run: &str) -> Result<WorkflowRun> {
    wait_for(
        &ctx.api::<WorkflowRun>(),
        run,
        "the run to finish",
        RUN,
        |r: Option<&WorkflowRun>| {
            r.and_then(|r| r.status.as_ref())
                .and_then(|s| s.phase)
                .is_some_and(|p| matches!(p, Phase::Succeeded | Phase::Failed | Phase::Cancelled))
        },
    )
    .await
}

/// The status of `step` in `run`.
pub fn step<'a>(run: &'a WorkflowRun, step: &str) -> Result<&'a StepStatus> {
    run.status
        .as_ref()
        .and_then(|s| s.steps.iter().find(|x| x.name == step))
        .with_context(|| format!("run {:?} has no status for step {step}", run.metadata.name))
}

/// The Jobs of a run (label `lakeform.dev/workflow-run`), by name.
pub async fn run_jobs(ctx: &TestContext, run: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = ctx
        .api::<Job>()
        .list(&ListParams::default().labels(&format!("lakeform.dev/workflow-run={run}")))
        .await?
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Wait until the Workflow's `Ready` condition has `reason` (`Ready` when it is True); returns
/// the condition's message.
pub async fn wait_ready_reason(ctx: &TestContext, name: &str, reason: &str) -> Result<String> {
    let want = reason.to_string();
    let wf = wait_for(
        &ctx.api::<Workflow>(),
        name,
        &format!("Workflow {name} Ready condition with reason {reason}"),
        RUN,
        move |w: Option<&Workflow>| {
            w.and_then(|w| w.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason == want)
            })
        },
    )
    .await?;
    Ok(wf
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default())
}
