//! Kubernetes objects the stages share: Secrets created once, readiness of workloads, and
//! pruning of components a spec no longer asks for.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::LABEL_PART_OF;
use lakeform_api::datalake::DataLake;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::super::context::Context;
use super::Error;

/// A random token of letters and digits (generated credentials and keys).
pub fn random_token(len: usize) -> Result<String, Error> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("no randomness for credentials: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// Create `secret` unless a Secret of that name exists: generated credentials are made once and
/// never rotated by a reconcile. `make` is only called when the Secret is missing.
pub async fn create_once(
    lake: &DataLake,
    ctx: &Context,
    name: &str,
    make: impl FnOnce() -> Result<Secret, Error>,
) -> Result<(), Error> {
    let ns = lake.namespace().ok_or(Error::NoNamespace)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    if secrets.get_opt(name).await?.is_some() {
        return Ok(());
    }
    match secrets.create(&PostParams::default(), &make()?).await {
        Ok(_) => {
            ctx.event(
                &lake.object_ref(&()),
                EventType::Normal,
                "CredentialsCreated",
                "Create",
                format!("generated Secret {name}"),
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Available replicas of a Deployment (0 when missing).
pub async fn deployment_available(ctx: &Context, ns: &str, name: &str) -> Result<i32, Error> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|d| d.status)
        .and_then(|s| s.available_replicas)
        .unwrap_or(0))
}

async fn prune_kind<K>(
    ctx: &Context,
    ns: &str,
    selector: &str,
    keep: &[String],
) -> Result<usize, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let mut deleted = 0;
    for obj in api
        .list(&ListParams::default().labels(selector))
        .await?
        .items
    {
        let name = obj.name_any();
        if keep.contains(&name) || obj.meta().deletion_timestamp.is_some() {
            continue;
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

/// Delete the lake's objects of `component` (Deployments, StatefulSets, Services, ConfigMaps,
/// Jobs) except those named in `keep`. Lists first, so nothing is written when nothing is left.
pub async fn prune(
    lake: &DataLake,
    ctx: &Context,
    component: &str,
    keep: &[String],
) -> Result<usize, Error> {
    let ns = lake.namespace().ok_or(Error::NoNamespace)?;
    let selector = format!(
        "{LABEL_PART_OF}={},app.kubernetes.io/component={component}",
        lake.name_any()
    );
    let mut n = prune_kind::<Deployment>(ctx, &ns, &selector, keep).await?;
    n += prune_kind::<StatefulSet>(ctx, &ns, &selector, keep).await?;
    n += prune_kind::<Service>(ctx, &ns, &selector, keep).await?;
    n += prune_kind::<ConfigMap>(ctx, &ns, &selector, keep).await?;
    n += prune_kind::<Job>(ctx, &ns, &selector, keep).await?;
    Ok(n)
}
