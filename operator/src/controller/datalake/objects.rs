//! Readiness of the workloads the lake runs (applied by the apply stage).

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use super::super::context::Context;
use super::super::error::{Error, KubeResultExt};

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
