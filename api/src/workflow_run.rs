//! `WorkflowRun`: one execution of a Workflow.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Conditions, LocalRef};

/// One execution of a Workflow. Create one to run a workflow on demand; the operator creates
/// them for triggers. The spec is immutable.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lakeform.dev",
    version = "v1alpha1",
    kind = "WorkflowRun",
    plural = "workflowruns",
    shortname = "wfr",
    category = "lakeform",
    namespaced,
    status = "WorkflowRunStatus",
    doc = "One execution of a Workflow: each step is a Job owned by the run.",
    printcolumn = r#"{"name":"Workflow","type":"string","jsonPath":".spec.workflowRef.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Started","type":"date","jsonPath":".status.startTime"}"#,
    printcolumn = r#"{"name":"Finished","type":"date","jsonPath":".status.completionTime","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec of a WorkflowRun is immutable; create a new run instead"))]
pub struct WorkflowRunSpec {
    /// The Workflow to run, in the same namespace.
    pub workflow_ref: LocalRef,
    /// Run parameters (override the workflow's defaults). Steps see them as environment
    /// variables `LAKEFORM_PARAM_<NAME>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Resume a finished run: re-run its failed and skipped steps and everything downstream;
    /// steps that succeeded keep their result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<LocalRef>,
}

/// Phase of a run or step.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Not started.
    #[default]
    Pending,
    /// Running.
    Running,
    /// Waiting for a retry after a failed attempt.
    Retrying,
    /// Finished successfully.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Not run because its dependencies did not reach the required state.
    Skipped,
    /// Stopped by `concurrencyPolicy: Replace` or by deletion.
    Cancelled,
}

impl Phase {
    /// Whether the phase is final: a run or step in it changes no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::Failed | Phase::Skipped | Phase::Cancelled
        )
    }
}

/// Observed state of a WorkflowRun.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRunStatus {
    /// Overall phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `Ready` and `Succeeded`-style conditions with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the first step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// State of each step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,
    /// Small values steps pass on to later steps (run properties).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// Why the run failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// State of one step of a run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// Step name.
    pub name: String,
    /// Step phase.
    pub phase: Phase,
    /// Job of the current (or last) attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Attempts started so far.
    #[serde(default)]
    pub attempts: i32,
    /// When the first attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the step ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When the next attempt may start (during `Retrying`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Time>,
    /// Failure reason or summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
