//! Readiness of the workloads the lake runs (applied by the apply stage), and removal of the
//! generated Secrets the garbage collector leaves (`desired::lake::kept_secrets`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use lakeform_api::datalake::DataLake;

use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, namespace};
use crate::desired::lake::kept_secrets;

/// Available replicas of a Deployment (0 when missing).
pub async fn deployment_available(ctx: &Context, ns: &str, name: &str) -> Result<i32, Error> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await
        .during(|| format!("reading Deployment {ns}/{name}"))?
        .and_then(|d| d.status)
        .and_then(|s| s.available_replicas)
        .unwrap_or(0))
}

/// `deletionPolicy: Delete`: delete the lake's generated credentials, which carry no owner
/// reference so that `Retain` keeps them (missing ones are fine).
pub async fn delete_kept_secrets(lake: &DataLake, ctx: &Context) -> Result<(), Error> {
    let ns = namespace(lake)?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for name in kept_secrets(lake) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::debug!(datalake = %lake.name_any(), secret = %name, "deleted"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).during(|| format!("deleting Secret {ns}/{name}")),
        }
    }
    Ok(())
}
