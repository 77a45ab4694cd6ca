//! WorkflowRun status: the run's phase, times, message and `Ready` from its steps, and the
//! write — server-side apply of the whole status under the one field manager
//! ([`FIELD_MANAGER`]), skipped when nothing differs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::{CONDITION_READY, FIELD_MANAGER, condition, set_condition};
use lakeform_api::workflow_run::{Phase, WorkflowRun, WorkflowRunStatus};
use serde_json::json;

use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, namespace};
use super::dag;

/// Set the `Ready` condition of `status`.
pub fn set_ready(
    status: &mut WorkflowRunStatus,
    run: &WorkflowRun,
    ok: bool,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) {
    set_condition(
        &mut status.conditions,
        condition(
            CONDITION_READY,
            ok,
            reason,
            message,
            run.metadata.generation,
            Time(now),
        ),
    );
}

/// The run's phase, start and completion times, message and `Ready` from its steps. Returns
/// the phase.
pub fn conclude(run: &WorkflowRun, status: &mut WorkflowRunStatus, now: jiff::Timestamp) -> Phase {
    let phase = dag::run_phase(&status.steps);
    status.phase = Some(phase);
    status.observed_generation = run.metadata.generation;
    status.start_time = status
        .steps
        .iter()
        .filter_map(|s| s.start_time.clone())
        .min_by_key(|t| t.0)
        .or(status.start_time.take());
    let failed: Vec<String> = status
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Failed)
        .map(|s| format!("{}: {}", s.name, s.message.clone().unwrap_or_default()))
        .collect();
    match phase {
        Phase::Succeeded => {
            status.completion_time.get_or_insert(Time(now));
            status.message = None;
            let message = "every step finished".into();
            set_ready(status, run, true, "Succeeded", message, now);
        }
        Phase::Failed => {
            status.completion_time.get_or_insert(Time(now));
            status.message = Some(failed.join("; "));
            set_ready(status, run, false, "StepFailed", failed.join("; "), now);
        }
        _ => {
            let running: Vec<&str> = status
                .steps
                .iter()
                .filter(|s| matches!(s.phase, Phase::Running | Phase::Retrying))
                .map(|s| s.name.as_str())
                .collect();
            let message = format!("running: {}", running.join(", "));
            set_ready(status, run, true, "Running", message, now);
        }
    }
    phase
}

/// Write `status` unless it equals the cached one.
pub async fn write(
    run: &WorkflowRun,
    status: &WorkflowRunStatus,
    ctx: &Context,
) -> Result<(), Error> {
    if run.status.as_ref() == Some(status) {
        return Ok(());
    }
    let name = run.name_any();
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &namespace(run)?);
    let patch = json!({
        "apiVersion": WorkflowRun::api_version(&()),
        "kind": WorkflowRun::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .during(|| format!("writing the status of WorkflowRun {name}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeform_api::common::find_condition;
    use lakeform_api::workflow_run::StepStatus;

    fn run() -> WorkflowRun {
        serde_yaml::from_str(
            "apiVersion: lakeform.dev/v1alpha1
kind: WorkflowRun
metadata: {name: r1, namespace: team, generation: 1}
spec: {workflowRef: {name: nightly}}
",
        )
        .expect("run parses")
    }

    fn step(name: &str, phase: Phase, message: Option<&str>) -> StepStatus {
        StepStatus {
            name: name.into(),
            phase,
            message: message.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn the_run_concludes_from_its_steps() {
        let now = jiff::Timestamp::from_second(1_800_000_000).expect("ts");
        let r = run();
        let mut status = WorkflowRunStatus {
            steps: vec![
                step("a", Phase::Succeeded, None),
                step("b", Phase::Running, None),
            ],
            ..Default::default()
        };
        assert_eq!(conclude(&r, &mut status, now), Phase::Running);
        let ready = find_condition(&status.conditions, CONDITION_READY).expect("ready");
        assert_eq!(
            (ready.reason.as_str(), ready.message.as_str()),
            ("Running", "running: b")
        );
        assert!(status.completion_time.is_none());

        status.steps[1] = step("b", Phase::Failed, Some("exit 3"));
        assert_eq!(conclude(&r, &mut status, now), Phase::Failed);
        assert_eq!(status.message.as_deref(), Some("b: exit 3"));
        let ready = find_condition(&status.conditions, CONDITION_READY).expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "StepFailed")
        );
        assert_eq!(status.completion_time, Some(Time(now)));
        assert_eq!(status.observed_generation, Some(1));
    }
}
