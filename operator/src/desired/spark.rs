//! `spark` steps: a `sparkoperator.k8s.io/v1beta2` SparkApplication (Kubeflow Spark Operator)
//! per attempt, owned by the run, named like the attempt's Job would be. The user's
//! `application` is the spec; the driver and executors also get the run's environment (run
//! identity, parameters, lake connection — credentials by `secretKeyRef`).

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::core::ObjectMeta;
use kube::{Resource, ResourceExt};
use lakeform_api::datalake::DataLake;
use lakeform_api::workflow::{Step, Workflow};
use lakeform_api::workflow_run::WorkflowRun;
use serde_json::Value;

use super::workflow::{LABEL_RUN, LABEL_STEP, env, label_value, step_job_name, workflow_labels};

/// API group of the Spark Operator.
pub const GROUP: &str = "sparkoperator.k8s.io";
/// The CustomResourceDefinition that must exist for spark steps.
pub const CRD_NAME: &str = "sparkapplications.sparkoperator.k8s.io";

/// The SparkApplication resource (v1beta2).
pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1beta2", "SparkApplication"),
        "sparkapplications",
    )
}

/// What a SparkApplication's `status.applicationState.state` says about the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SparkState {
    Running,
    Succeeded,
    Failed(String),
}

/// The attempt's state from the application's status.
pub fn state(app: &DynamicObject) -> SparkState {
    let s = app.data.pointer("/status/applicationState");
    let state = s
        .and_then(|s| s.get("state"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match state {
        "COMPLETED" => SparkState::Succeeded,
        "FAILED" | "SUBMISSION_FAILED" => SparkState::Failed(format!(
            "SparkApplication {} {state}: {}",
            app.name_any(),
            s.and_then(|s| s.get("errorMessage"))
                .and_then(Value::as_str)
                .unwrap_or("no error message")
        )),
        _ => SparkState::Running,
    }
}

fn push_env(spec: &mut Value, role: &str, vars: &Value) {
    let Some(obj) = spec.as_object_mut() else {
        return;
    };
    let part = obj
        .entry(role)
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(part) = part.as_object_mut() {
        let list = part
            .entry("env")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let (Some(list), Some(vars)) = (list.as_array_mut(), vars.as_array()) {
            list.extend(vars.iter().cloned());
        }
    }
}

/// The SparkApplication of `attempt` of `step`.
pub fn application(
    workflow: &Workflow,
    run: &WorkflowRun,
    lake: &DataLake,
    step: &Step,
    attempt: i32,
) -> Option<DynamicObject> {
    let spark = step.spark.as_ref()?;
    let mut spec = spark.application.0.clone();
    if !spec.is_object() {
        spec = Value::Object(Default::default());
    }
    let vars = serde_json::to_value(env(workflow, run, lake, &step.name, attempt)).ok()?;
    push_env(&mut spec, "driver", &vars);
    push_env(&mut spec, "executor", &vars);
    let mut labels = workflow_labels(workflow);
    labels.insert(LABEL_RUN.into(), label_value(&run.name_any()));
    labels.insert(LABEL_STEP.into(), step.name.clone());
    let mut app = DynamicObject::new(&step_job_name(run, &step.name, attempt), &resource())
        .within(&run.namespace().unwrap_or_default());
    app.metadata = ObjectMeta {
        labels: Some(labels),
        owner_references: run.controller_owner_ref(&()).map(|o| vec![o]),
        ..app.metadata
    };
    app.data = serde_json::json!({ "spec": spec });
    Some(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_keeps_the_users_spec_and_gets_the_run_environment() {
        let w: Workflow = serde_yaml::from_str(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {name: nightly, namespace: team, uid: w-1}
spec:
  lakeRef: {name: sales}
  steps:
    - name: train
      spark:
        application:
          type: Scala
          mainClass: org.acme.Train
          driver: {cores: 1, env: [{name: MINE, value: '1'}]}
",
        )
        .expect("workflow");
        let lake: DataLake = serde_yaml::from_str(
            "apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {name: sales, namespace: team}
spec:
  storage: {external: {endpoint: 'http://minio:9000', credentials: {secretName: s3}}}
  zones: [{name: raw}]
",
        )
        .expect("lake");
        let mut run = WorkflowRun::new(
            "nightly-1",
            serde_yaml::from_str("workflowRef: {name: nightly}").expect("run spec"),
        );
        run.metadata.namespace = Some("team".into());
        run.metadata.uid = Some("r-1".into());
        let app = application(&w, &run, &lake, &w.spec.steps[0], 2).expect("spark step");
        assert_eq!(app.name_any(), "nightly-1-train-2");
        assert_eq!(
            app.metadata.owner_references.as_ref().expect("owner")[0].name,
            "nightly-1"
        );
        assert_eq!(app.data["spec"]["mainClass"], "org.acme.Train");
        let driver_env = app.data["spec"]["driver"]["env"].as_array().expect("env");
        assert_eq!(
            driver_env[0]["name"], "MINE",
            "the user's variables come first"
        );
        assert!(
            driver_env
                .iter()
                .any(|e| e["name"] == "LAKEFORM_RUN_ID" && e["value"] == "nightly-1")
        );
        let key = driver_env
            .iter()
            .find(|e| e["name"] == "LAKEFORM_S3_SECRET_KEY")
            .expect("secret key var");
        assert!(key.get("value").is_none() && key["valueFrom"]["secretKeyRef"]["name"] == "s3");
        assert!(
            app.data["spec"]["executor"]["env"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        );

        let mut done = app.clone();
        done.data["status"] = serde_json::json!({"applicationState": {"state": "COMPLETED"}});
        assert_eq!(state(&done), SparkState::Succeeded);
        done.data["status"] =
            serde_json::json!({"applicationState": {"state": "FAILED", "errorMessage": "OOM"}});
        assert!(matches!(state(&done), SparkState::Failed(m) if m.contains("OOM")));
        assert_eq!(state(&app), SparkState::Running);
    }
}
