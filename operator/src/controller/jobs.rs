//! Kubernetes Jobs as every controller sees them: whether one has finished, and events that
//! name the Job they are about.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::context::Context;

/// Whether a Job has finished, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Active,
    Succeeded,
    Failed,
}

/// The state of a Job from its conditions.
pub fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if is("Failed") {
        JobState::Failed
    } else if is("Complete") {
        JobState::Succeeded
    } else {
        JobState::Active
    }
}

/// Publish an event about `object` whose related object is the Job `job` (in the object's
/// namespace). The Job is part of the event's identity, so the events of two runs are two
/// events rather than one series.
pub async fn job_event<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    job: &str,
    type_: EventType,
    (reason, action): (&str, &str),
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: Some(ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(job.into()),
            namespace: object.meta().namespace.clone(),
            ..Default::default()
        }),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &object.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> Job {
        serde_yaml::from_str(yaml).expect("job parses")
    }

    #[test]
    fn states_from_conditions() {
        let active = job("metadata: {name: a}\nstatus: {active: 1}\n");
        let done = job(
            "metadata: {name: b}\nstatus: {conditions: [{type: SuccessCriteriaMet, status: 'True'}, {type: Complete, status: 'True'}]}\n",
        );
        let failed = job(
            "metadata: {name: c}\nstatus: {conditions: [{type: FailureTarget, status: 'True'}, {type: Failed, status: 'True', reason: BackoffLimitExceeded}]}\n",
        );
        let failing = job(
            "metadata: {name: d}\nstatus: {conditions: [{type: FailureTarget, status: 'True'}]}\n",
        );
        assert_eq!(job_state(&active), JobState::Active);
        assert_eq!(job_state(&done), JobState::Succeeded);
        assert_eq!(job_state(&failed), JobState::Failed);
        assert_eq!(job_state(&failing), JobState::Active);
    }
}
