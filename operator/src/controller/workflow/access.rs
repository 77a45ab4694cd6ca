//! What steps need before a run may start: extract steps' connection Secrets exist (checked
//! here so a missing Secret is a `Ready=False` verdict naming the field, not a failed pod),
//! the Spark Operator's CRD exists for spark steps, and, for incremental extracts, the
//! bookmark ConfigMap and the step ServiceAccount.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::Patch;
use lakeform_api::workflow::Workflow;
use serde_json::json;

use super::super::apply::apply;
use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, Refusal, namespace};
use crate::controller::apply::merge_params;
use crate::desired::spark;
use crate::desired::workflow_access as build;

/// How often a workflow refused for something outside it (a Secret, the Spark Operator) looks
/// again.
pub const RECHECK: Duration = Duration::from_secs(15);

/// Refused (`SecretNotFound`) while an extract step's connection Secret or key is missing.
pub async fn check_secrets(wf: &Workflow, ctx: &Context) -> Result<Result<(), Refusal>, Error> {
    let missing = missing_secrets(wf, ctx).await?;
    if missing.is_empty() {
        return Ok(Ok(()));
    }
    Ok(Err(Refusal::new(
        "SecretNotFound",
        format!("{}; no trigger fires until it exists", missing.join("; ")),
    )
    .retry_after(RECHECK)))
}

/// Refused (`SparkOperatorMissing`) while spark steps have no Spark Operator to run them.
pub async fn check_spark_operator(
    wf: &Workflow,
    ctx: &Context,
) -> Result<Result<(), Refusal>, Error> {
    Ok(match missing_spark_operator(wf, ctx).await? {
        None => Ok(()),
        Some(message) => Err(Refusal::new(
            "SparkOperatorMissing",
            format!("{message}; no trigger fires until it is installed"),
        )
        .retry_after(RECHECK)),
    })
}

/// One line per extract step whose connection Secret or key is missing.
async fn missing_secrets(wf: &Workflow, ctx: &Context) -> Result<Vec<String>, Error> {
    let ns = namespace(wf)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut out = Vec::new();
    for (i, s) in wf.spec.steps.iter().enumerate() {
        let Some(x) = &s.extract else { continue };
        let r = &x.source.connection_secret_ref;
        let field = format!(
            "spec.steps[{i}] ({}).extract.source.connectionSecretRef",
            s.name
        );
        let secret = secrets
            .get_opt(&r.name)
            .await
            .during(|| format!("reading Secret {ns}/{} ({field})", r.name))?;
        match secret {
            None => out.push(format!("{field}: Secret {ns}/{} does not exist", r.name)),
            Some(secret) => {
                let has_key = secret.data.as_ref().is_some_and(|d| d.contains_key(&r.key))
                    || secret
                        .string_data
                        .as_ref()
                        .is_some_and(|d| d.contains_key(&r.key));
                if !has_key {
                    out.push(format!(
                        "{field}: Secret {ns}/{} has no key {:?}",
                        r.name, r.key
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The spark steps, one line naming them, when the Spark Operator's CRD does not exist.
async fn missing_spark_operator(wf: &Workflow, ctx: &Context) -> Result<Option<String>, Error> {
    let steps: Vec<String> = wf
        .spec
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.spark.is_some())
        .map(|(i, s)| format!("spec.steps[{i}] ({})", s.name))
        .collect();
    if steps.is_empty() {
        return Ok(None);
    }
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let crd = crds
        .get_opt(spark::CRD_NAME)
        .await
        .during(|| format!("reading CustomResourceDefinition {}", spark::CRD_NAME))?;
    if crd.is_some() {
        return Ok(None);
    }
    Ok(Some(format!(
        "{}: spark steps need the Kubeflow Spark Operator, and CustomResourceDefinition {} does not exist",
        steps.join(", "),
        spark::CRD_NAME
    )))
}

/// Applies the bookmark ConfigMap and the step ServiceAccount, Role and RoleBinding when the
/// workflow keeps bookmarks, and acts on a pending reset token: every bookmark is forgotten.
/// Returns the token acted on.
pub async fn ensure(wf: &Workflow, ctx: &Context) -> Result<Option<String>, Error> {
    if !build::needs_bookmarks(wf) {
        return Ok(None);
    }
    apply(&ctx.client, build::bookmarks(wf)).await?;
    apply(&ctx.client, build::service_account(wf)).await?;
    apply(&ctx.client, build::role(wf)).await?;
    apply(&ctx.client, build::role_binding(wf)).await?;
    let Some(token) = build::pending_reset(wf) else {
        return Ok(None);
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace(wf)?);
    let name = build::bookmarks_name(wf);
    api.patch(
        &name,
        &merge_params(),
        &Patch::Merge(&json!({ "data": null })),
    )
    .await
    .during(|| format!("clearing the bookmarks in ConfigMap {name}"))?;
    Ok(Some(token))
}
