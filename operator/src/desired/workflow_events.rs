//! `event` triggers of Workflows: the operator's batcher hands each batch of notified keys to
//! the Workflow as a ConfigMap (`<workflow>-<token>`, key `keys`, one `bucket/key` per line)
//! and the annotation `lakeform.dev/event-batch: <trigger>/<token>`; the Workflow controller
//! starts the run `<workflow>-<token>` under the concurrency policy and records the batch in
//! `status.lastEventBatch`. The run's steps get the keys as `LAKEFORM_EVENT_KEYS` (crawl steps
//! as `LAKEFORM_CRAWL_KEYS`, so they crawl only those objects).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapKeySelector, EnvVar, EnvVarSource};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::WorkflowRun;

use super::meta::bounded;
use super::workflow::{LABEL_TRIGGER, workflow_labels};

/// Annotation on a Workflow (the batch waiting for a run) and on the run (its keys'
/// ConfigMap).
pub const BATCH_ANNOTATION: &str = "lakeform.dev/event-batch";
/// Key of the ConfigMap holding the batch's keys.
pub const KEYS_FILE: &str = "keys";
/// Environment variable with a batch's keys in every step of an event-triggered run.
pub const EVENT_KEYS_ENV: &str = "LAKEFORM_EVENT_KEYS";

/// The annotation value of a batch.
pub fn batch_value(trigger: &str, token: &str) -> String {
    format!("{trigger}/{token}")
}

/// The batch waiting for a run: `(trigger, token)` from the annotation, unless the status says
/// it was taken.
pub fn pending_batch(workflow: &Workflow) -> Option<(String, String)> {
    let value = workflow.annotations().get(BATCH_ANNOTATION)?;
    let taken = workflow
        .status
        .as_ref()
        .and_then(|s| s.last_event_batch.as_deref());
    if taken == Some(value.as_str()) {
        return None;
    }
    let (trigger, token) = value.split_once('/')?;
    Some((trigger.to_string(), token.to_string()))
}

/// Name of a batch's ConfigMap (and of the run it starts).
pub fn batch_name(workflow: &Workflow, token: &str) -> String {
    bounded(&workflow.name_any(), &format!("-{token}"), 63)
}

/// The ConfigMap with a batch's keys, owned by the Workflow (then by the run it starts).
pub fn batch_keys(workflow: &Workflow, trigger: &str, token: &str, keys: &[String]) -> ConfigMap {
    let mut labels = workflow_labels(workflow);
    labels.insert(LABEL_TRIGGER.into(), format!("event-{trigger}"));
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(batch_name(workflow, token)),
            namespace: workflow.namespace(),
            labels: Some(labels),
            owner_references: workflow.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(KEYS_FILE.to_string(), keys.join("\n"))])),
        ..Default::default()
    }
}

/// `var` read from the keys of the run's batch, when the run was started by one.
pub fn keys_env(run: &WorkflowRun, var: &str) -> Option<EnvVar> {
    let cm = run.annotations().get(BATCH_ANNOTATION)?;
    Some(EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: cm.clone(),
                key: KEYS_FILE.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow() -> Workflow {
        serde_yaml::from_str(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {name: ingest, namespace: team, uid: w-1}
spec:
  lakeRef: {name: sales}
  steps: [{name: crawl, crawl: {crawlerRef: {name: c}}}]
  triggers: [{name: landed, event: {zone: raw, prefix: in/, batchSize: 3}}]
",
        )
        .expect("workflow")
    }

    #[test]
    fn a_batch_is_pending_until_the_status_takes_it() {
        let mut w = workflow();
        assert_eq!(pending_batch(&w), None);
        w.metadata.annotations = Some(BTreeMap::from([(
            BATCH_ANNOTATION.to_string(),
            batch_value("landed", "events-abc"),
        )]));
        assert_eq!(
            pending_batch(&w),
            Some(("landed".to_string(), "events-abc".to_string()))
        );
        w.status = Some(lakeform_api::workflow::WorkflowStatus {
            last_event_batch: Some("landed/events-abc".into()),
            ..Default::default()
        });
        assert_eq!(pending_batch(&w), None);
    }

    #[test]
    fn batch_keys_are_owned_by_the_workflow_and_reach_the_steps_by_reference() {
        let w = workflow();
        let cm = batch_keys(&w, "landed", "events-abc", &["b/k1".into(), "b/k2".into()]);
        assert_eq!(cm.metadata.name.as_deref(), Some("ingest-events-abc"));
        assert_eq!(cm.data.as_ref().expect("data")[KEYS_FILE], "b/k1\nb/k2");
        assert_eq!(
            cm.metadata.owner_references.expect("owner")[0].name,
            "ingest"
        );
        let mut run = WorkflowRun::new(
            "ingest-events-abc",
            serde_yaml::from_str("workflowRef: {name: ingest}").expect("spec"),
        );
        assert!(keys_env(&run, EVENT_KEYS_ENV).is_none());
        run.metadata.annotations = Some(BTreeMap::from([(
            BATCH_ANNOTATION.to_string(),
            "ingest-events-abc".to_string(),
        )]));
        let env = keys_env(&run, EVENT_KEYS_ENV).expect("env");
        let r = env
            .value_from
            .and_then(|v| v.config_map_key_ref)
            .expect("ref");
        assert_eq!(
            (r.name.as_str(), r.key.as_str()),
            ("ingest-events-abc", KEYS_FILE)
        );
    }
}
