//! The DataLake reconciler: dereference → validate → build → apply → status.
//!
//! Storage (this module's `storage` stage) turns `spec.storage` and `spec.zones` into a MinIO
//! StatefulSet or an external endpoint, and buckets with their settings.

mod catalog;
mod managed_catalog;
mod objects;
mod query;
mod status;
pub(crate) mod storage;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::ListParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::datalake::{DataLake, DeletionPolicy};
use lakeform_api::validate::validate_datalake;

use super::context::Context;
use crate::desired::connection::{self, LakeEndpoints};
use status::StatusBuilder;

/// Finalizer guarding data outside Kubernetes (buckets, catalog entries).
pub const FINALIZER: &str = "lakeform.dev/data";

/// Errors that end a reconcile without a status verdict (API failures); retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(Box<kube::Error>),
    #[error("{0}")]
    Apply(Box<super::apply::ApplyError>),
    #[error("DataLake has no namespace")]
    NoNamespace,
    #[error("deleting storage of the DataLake: {0}")]
    Cleanup(String),
    #[error("{0}")]
    Internal(String),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(Box::new(e))
    }
}

impl From<super::apply::ApplyError> for Error {
    fn from(e: super::apply::ApplyError) -> Self {
        Error::Apply(Box::new(e))
    }
}

fn key(lake: &DataLake) -> String {
    format!(
        "{}/{}",
        lake.namespace().unwrap_or_default(),
        lake.name_any()
    )
}

async fn reconcile(
    lake: Arc<DataLake>,
    ctx: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<Error>> {
    let ns = lake
        .namespace()
        .ok_or(kube::runtime::finalizer::Error::UnnamedObject)?;
    let api: Api<DataLake> = Api::namespaced(ctx.client.clone(), &ns);
    let started = std::time::Instant::now();
    let result = finalizer(&api, FINALIZER, lake, |event| async {
        match event {
            Finalizer::Apply(lake) => apply(&lake, &ctx).await,
            Finalizer::Cleanup(lake) => cleanup(&lake, &ctx).await,
        }
    })
    .await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Reconcile a live DataLake.
async fn apply(lake: &DataLake, ctx: &Context) -> Result<Action, Error> {
    let mut status = StatusBuilder::new(lake);
    if lake.spec.paused {
        status.paused();
        status.write(lake, ctx).await?;
        ctx.metrics.reconciled("DataLake", "paused");
        return Ok(Action::await_change());
    }
    if let Err(errors) = validate_datalake(lake) {
        let message = errors.to_string();
        status.invalid(&message);
        if status.write(lake, ctx).await? {
            ctx.event(
                &lake.object_ref(&()),
                EventType::Warning,
                "InvalidSpec",
                "Validate",
                message,
            )
            .await;
        }
        ctx.metrics.reconciled("DataLake", "InvalidSpec");
        return Ok(Action::await_change());
    }
    let storage = storage::reconcile(lake, ctx, &mut status).await?;
    let catalog = catalog::reconcile(lake, ctx, &mut status).await?;
    let endpoints = LakeEndpoints::for_lake(lake);
    let query = query::reconcile(lake, ctx, &mut status, &endpoints).await?;
    apply_connection_info(lake, ctx, &mut status, &endpoints).await?;
    let outcome = storage.and(catalog).and(query);
    status.write(lake, ctx).await?;
    let k = key(lake);
    match outcome {
        storage::Outcome::Ready => {
            ctx.reset_backoff(&k);
            ctx.metrics.reconciled("DataLake", "ok");
            Ok(Action::requeue(ctx.resync))
        }
        storage::Outcome::Waiting(after) => {
            ctx.metrics.reconciled("DataLake", "waiting");
            Ok(Action::requeue(after))
        }
        storage::Outcome::Failed { reason, retry } => {
            ctx.metrics.reconciled("DataLake", reason);
            if retry {
                Ok(Action::requeue(ctx.backoff(&k)))
            } else {
                Ok(Action::await_change())
            }
        }
    }
}

/// The connection-info ConfigMap (endpoints and bucket names, never credentials) that other
/// workloads can mount.
async fn apply_connection_info(
    lake: &DataLake,
    ctx: &Context,
    status: &mut StatusBuilder,
    endpoints: &LakeEndpoints,
) -> Result<(), Error> {
    super::apply::apply(&ctx.client, connection::config_map(lake, endpoints)).await?;
    status.connection_config_map(&connection::name(lake));
    Ok(())
}

/// The DataLake is being deleted: with `deletionPolicy: Delete` empty and remove its buckets;
/// with `Retain` leave them. Kubernetes objects go with their owner (garbage collector).
async fn cleanup(lake: &DataLake, ctx: &Context) -> Result<Action, Error> {
    if lake.spec.storage.deletion_policy == DeletionPolicy::Delete {
        if let Err(message) = catalog::delete_namespaces(lake, ctx).await {
            ctx.event(
                &lake.object_ref(&()),
                EventType::Warning,
                "DeleteFailed",
                "Delete",
                message.clone(),
            )
            .await;
            return Err(Error::Cleanup(message));
        }
        if let Err(e) = storage::delete_buckets(lake, ctx).await {
            let message = e.to_string();
            ctx.event(
                &lake.object_ref(&()),
                EventType::Warning,
                "DeleteFailed",
                "Delete",
                message.clone(),
            )
            .await;
            return Err(Error::Cleanup(message));
        }
        ctx.event(
            &lake.object_ref(&()),
            EventType::Normal,
            "BucketsDeleted",
            "Delete",
            "deletionPolicy Delete: buckets emptied and removed".into(),
        )
        .await;
    }
    Ok(Action::await_change())
}

fn error_policy(
    lake: Arc<DataLake>,
    error: &kube::runtime::finalizer::Error<Error>,
    ctx: Arc<Context>,
) -> Action {
    tracing::warn!(datalake = %key(&lake), %error, "reconcile failed");
    ctx.metrics.reconciled("DataLake", "error");
    Action::requeue(ctx.backoff(&key(&lake)))
}

/// Lakes in `lakes` whose external storage credentials are the Secret `secret`.
fn lakes_using_secret(lakes: &[Arc<DataLake>], secret: &Secret) -> Vec<ObjectRef<DataLake>> {
    lakes
        .iter()
        .filter(|l| l.namespace() == secret.namespace())
        .filter(|l| {
            l.spec
                .storage
                .external
                .as_ref()
                .is_some_and(|e| Some(&e.credentials.secret_name) == secret.metadata.name.as_ref())
        })
        .map(|l| ObjectRef::from_obj(l.as_ref()))
        .collect()
}

/// An `Api` for one namespace, or all.
fn scoped<K>(client: &kube::Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run the DataLake controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let lakes = scoped::<DataLake>(&client, &namespace);
    if let Err(e) = lakes.list(&ListParams::default().limit(1)).await {
        tracing::error!(error = %e, "DataLake CRD is not queryable; is crds/ installed?");
    }
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=lakeform");
    let controller = Controller::new(lakes, watcher::Config::default());
    let store = controller.store();
    controller
        .owns(scoped::<StatefulSet>(&client, &namespace), managed.clone())
        .owns(scoped::<Deployment>(&client, &namespace), managed.clone())
        .owns(scoped::<Service>(&client, &namespace), managed.clone())
        .owns(scoped::<ConfigMap>(&client, &namespace), managed)
        .watches(
            scoped::<Secret>(&client, &namespace),
            watcher::Config::default(),
            move |secret| lakes_using_secret(&store.state(), &secret),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile loop");
            }
        })
        .await;
}

/// How long to wait between checks while managed storage starts.
pub(crate) const STARTING_RECHECK: Duration = Duration::from_secs(15);
