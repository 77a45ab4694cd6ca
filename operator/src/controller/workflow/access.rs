//! What steps need before a run may start: extract steps' connection Secrets exist (checked
//! here so a missing Secret is a `Ready=False` verdict naming the field, not a failed pod),
//! the Spark Operator's CRD exists for spark steps, and, for incremental extracts, the
//! bookmark ConfigMap and the step ServiceAccount.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use lakeform_api::workflow::Workflow;
use serde_json::json;

use super::super::apply::apply;
use super::super::context::Context;
use super::Error;
use crate::desired::spark;
use crate::desired::workflow_access as build;

/// One line per extract step whose connection Secret or key is missing.
pub async fn missing_secrets(wf: &Workflow, ctx: &Context) -> Result<Vec<String>, Error> {
    let ns = wf.namespace().ok_or(Error::NoNamespace)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut out = Vec::new();
    for (i, s) in wf.spec.steps.iter().enumerate() {
        let Some(x) = &s.extract else { continue };
        let r = &x.source.connection_secret_ref;
        let field = format!(
            "spec.steps[{i}] ({}).extract.source.connectionSecretRef",
            s.name
        );
        match secrets.get_opt(&r.name).await? {
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
pub async fn missing_spark_operator(wf: &Workflow, ctx: &Context) -> Result<Option<String>, Error> {
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
    if crds.get_opt(spark::CRD_NAME).await?.is_some() {
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
    let ns = wf.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch(
        &build::bookmarks_name(wf),
        &PatchParams::default(),
        &Patch::Merge(&json!({ "data": null })),
    )
    .await?;
    Ok(Some(token))
}
