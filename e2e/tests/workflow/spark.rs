//! `spark` steps: without the Kubeflow Spark Operator's CRD the Workflow is `Ready=False`,
//! reason `SparkOperatorMissing`, naming the step; once the CRD exists a run submits one
//! SparkApplication per attempt (owned by the run, with the run's environment), and the step
//! follows the application's state. (No Spark runs here: the test plays the Spark Operator by
//! writing the application's status.)

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use lakeform_api::workflow_run::Phase;
use lakeform_e2e::TestContext;

use super::common::{run_yaml, step, wait_finished, wait_ready_reason};
use crate::crawler_controller::common::{Needs, ready_lake, staged};
use crate::storage::common::{apply, wait_event};

const CRD: &str = "sparkapplications.sparkoperator.k8s.io";

fn spark_crd() -> Result<CustomResourceDefinition> {
    Ok(serde_yaml::from_str(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: sparkapplications.sparkoperator.k8s.io
  # *.k8s.io groups need it; the Spark Operator's own CRD carries this one
  annotations: {api-approved.kubernetes.io: 'https://github.com/kubeflow/spark-operator/pull/1298'}
spec:
  group: sparkoperator.k8s.io
  scope: Namespaced
  names: {kind: SparkApplication, plural: sparkapplications, singular: sparkapplication}
  versions:
    - name: v1beta2
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
",
    )?)
}

async fn remove_crd(crds: &Api<CustomResourceDefinition>) -> Result<()> {
    if crds.get_opt(CRD).await?.is_some() {
        let _ = crds.delete(CRD, &DeleteParams::default()).await;
        for _ in 0..60 {
            if crds.get_opt(CRD).await?.is_none() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::bail!("CRD {CRD} was not deleted");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_steps_need_the_operator_and_follow_their_application() -> Result<()> {
    staged("wf-spark", "wk", Needs::default(), scenario).await
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    remove_crd(&crds).await?;
    let result = with_crd_lifecycle(ctx, &crds, catalog, lake_name, database).await;
    remove_crd(&crds).await?;
    result
}

async fn with_crd_lifecycle(
    ctx: &TestContext,
    crds: &Api<CustomResourceDefinition>,
    catalog: &str,
    lake_name: &str,
    database: &str,
) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    apply(
        ctx,
        &format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: train}}
spec:
  lakeRef: {{name: {lake_name}}}
  parameters: {{epochs: '3'}}
  steps:
    - name: fit
      spark:
        application:
          type: Python
          mode: cluster
          image: spark:3.5.3
          mainApplicationFile: local:///opt/jobs/fit.py
          sparkVersion: 3.5.3
          driver: {{cores: 1, memory: 512m}}
          executor: {{instances: 1, cores: 1, memory: 512m}}
"
        ),
    )
    .await?;
    let message = wait_ready_reason(ctx, "train", "SparkOperatorMissing").await?;
    ensure!(
        message.contains("spec.steps[0] (fit)") && message.contains(CRD),
        "{message}"
    );
    wait_event(ctx, "train", "Warning", "SparkOperatorMissing").await?;

    // the operator gets installed: the workflow recovers by itself
    crds.create(&PostParams::default(), &spark_crd()?).await?;
    wait_ready_reason(ctx, "train", "Ready").await?;

    apply(ctx, &run_yaml("train-1", "train", "epochs: '5'", None)).await?;
    let apps: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &ctx.ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(
                "sparkoperator.k8s.io",
                "v1beta2",
                "SparkApplication",
            ),
            "sparkapplications",
        ),
    );
    let mut app = None;
    for _ in 0..120 {
        if let Some(a) = apps.get_opt("train-1-fit-1").await? {
            app = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let app = app.context("no SparkApplication train-1-fit-1 was created")?;
    ensure!(
        app.metadata.owner_references.as_ref().is_some_and(|o| o
            .iter()
            .any(|o| o.kind == "WorkflowRun" && o.name == "train-1")),
        "owned by the run: {:?}",
        app.metadata.owner_references
    );
    ensure!(app.data["spec"]["mainApplicationFile"] == "local:///opt/jobs/fit.py");
    let env = app.data["spec"]["driver"]["env"]
        .as_array()
        .context("driver env")?;
    for (k, v) in [
        ("LAKEFORM_RUN_ID", "train-1"),
        ("LAKEFORM_PARAM_EPOCHS", "5"),
    ] {
        ensure!(
            env.iter().any(|e| e["name"] == k && e["value"] == v),
            "{k}={v} not in the driver env: {env:?}"
        );
    }

    // the Spark Operator reports completion: the step and the run succeed
    apps.patch_status(
        "train-1-fit-1",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"status": {"applicationState": {"state": "COMPLETED"}}})),
    )
    .await?;
    let run = wait_finished(ctx, "train-1").await?;
    ensure!(
        run.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded),
        "{:?}",
        run.status
    );
    ensure!(step(&run, "fit")?.job_name.as_deref() == Some("train-1-fit-1"));
    println!(
        "spark step: refused without the CRD, SparkApplication submitted with the run's env, COMPLETED → Succeeded"
    );
    Ok(())
}
