//! The DataLake reconciler. [`reconcile`] wraps the finalizer; a live lake goes through the
//! pipeline in [`apply`], one stage per step:
//!
//! 1. **validate** — `spec.paused` and what the schema cannot check; an invalid spec stops here.
//! 2. **build** — `desired::lake::objects`: every Kubernetes object of the lake as one set
//!    (pure; parts that cannot be built are refused and keep their live objects), with Trino's
//!    access rules compiled from the lake's Grants (`grants`); for managed storage, the S3
//!    identities of its principals, Crawlers and Workflows are compiled too (`identities`);
//!    with Trino, the logins of its admin, workgroup users and principals are applied first
//!    (`logins`: the coordinator mounts their password file).
//! 3. **apply** — `controller::apply::Applier`: generated Secrets once, objects with workloads
//!    last, then the lake's objects no longer desired are pruned.
//! 4. **external** — what lives outside Kubernetes: the zones' buckets and MinIO's users and
//!    policies (`storage`, `identities`: the identities' Secrets are applied once MinIO holds
//!    the users), the catalog's namespaces (`catalog`, with Lakekeeper's bootstrap in
//!    `managed_catalog`), and Trino's readiness (`query`); then each Grant's status says where
//!    it is enforced (`grants`).
//! 5. **status** — `outcome::conclude`: refusals become conditions, Warning events and the
//!    metric in one place; the status is written only when it changed.
//!
//! Every function here is under 80 lines.

mod catalog;
mod grants;
mod identities;
mod logins;
mod managed_catalog;
mod objects;
mod outcome;
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
use lakeform_api::crawler::Crawler;
use lakeform_api::datalake::{DataLake, DeletionPolicy};
use lakeform_api::grant::Grant;
use lakeform_api::validate::validate_datalake;
use lakeform_api::workflow::Workflow;

use super::apply::Applier;
use super::context::Context;
pub use super::error::Error;
use super::error::{KubeResultExt, Refusal, namespace};
use crate::desired::connection::{self, LakeEndpoints};
use crate::desired::lake::{LakeObjects, Part};
use crate::desired::set::DesiredSet;
use outcome::{Kind, Stop, conclude, key};
use status::StatusBuilder;

/// Finalizer guarding data outside Kubernetes (buckets, catalog entries).
pub const FINALIZER: &str = "lakeform.dev/data";

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

/// Reconcile a live DataLake: validate → build → apply → external → status.
async fn apply(lake: &DataLake, ctx: &Context) -> Result<Action, Error> {
    let mut status = StatusBuilder::new(lake);
    if lake.spec.paused {
        return paused(lake, ctx, status).await;
    }
    if let Some(invalid) = validate(lake) {
        return conclude(lake, ctx, status, vec![invalid]).await;
    }
    let endpoints = LakeEndpoints::for_lake(lake);
    let grants = grants::compile(lake, ctx).await?;
    let identities = identities::compile(lake, ctx, grants.grants()).await?;
    logins::apply(lake, ctx, grants.grants()).await?;
    let LakeObjects { set, invalid } = build(lake, ctx, &endpoints, &grants.rules)?;
    apply_objects(lake, ctx, set).await?;
    status.connection_config_map(&connection::name(lake));
    let mut stops = Vec::new();
    stops.extend(storage::reconcile(lake, ctx, &invalid, &identities, &mut status).await?);
    stops.extend(catalog::reconcile(lake, ctx, &invalid, &mut status).await?);
    stops.extend(query::reconcile(lake, ctx, &invalid, &mut status).await?);
    let storage_ready = !stops.iter().any(|s| s.part == Part::Storage);
    grants::report(lake, ctx, &grants, &identities, storage_ready).await?;
    conclude(lake, ctx, status, stops).await
}

/// `spec.paused`: say so, touch nothing else.
async fn paused(
    lake: &DataLake,
    ctx: &Context,
    mut status: StatusBuilder,
) -> Result<Action, Error> {
    status.paused();
    status
        .write(lake, ctx)
        .await
        .during(|| format!("writing the status of DataLake {}", key(lake)))?;
    ctx.metrics.reconciled("DataLake", "paused");
    Ok(Action::await_change())
}

/// What the schema cannot check; an invalid spec refuses the storage part (and so `Ready`).
fn validate(lake: &DataLake) -> Option<Stop> {
    let errors = validate_datalake(lake).err()?;
    Some(Stop {
        part: Part::Storage,
        refusal: Refusal::new("InvalidSpec", errors.to_string()),
        action: "Validate",
        kind: Kind::Invalid,
    })
}

/// Every Kubernetes object of the lake (pure but for the operator's webhook setting), with
/// Trino's access `rules` compiled from the lake's Grants.
fn build(
    lake: &DataLake,
    ctx: &Context,
    endpoints: &LakeEndpoints,
    rules: &serde_json::Value,
) -> Result<LakeObjects, Error> {
    let webhook = ctx.minio_webhook.as_ref();
    crate::desired::lake::objects(lake, endpoints, webhook, rules).map_err(|e| {
        Error::Other(format!(
            "serializing the objects of DataLake {}: {e}",
            key(lake)
        ))
    })
}

/// Apply the lake's desired set; announce generated credentials.
async fn apply_objects(lake: &DataLake, ctx: &Context, set: DesiredSet) -> Result<(), Error> {
    let ns = namespace(lake)?;
    let applied = Applier::new(&ctx.client, &ns).apply(set).await?;
    if applied.writes > 0 {
        let (writes, pruned) = (applied.writes, &applied.pruned);
        tracing::debug!(datalake = %key(lake), writes, ?pruned, "applied the desired set");
    }
    for name in applied.generated {
        ctx.event(
            &lake.object_ref(&()),
            EventType::Normal,
            "CredentialsCreated",
            "Create",
            format!("generated Secret {name}"),
        )
        .await;
    }
    Ok(())
}

/// The DataLake is being deleted: with `deletionPolicy: Delete` drop its namespaces, empty and
/// remove its buckets, then delete its generated credentials (its volumes go with their
/// StatefulSets: `meta::volume_policy`); with `Retain` leave all of them, so that a DataLake
/// re-created with the same name reaches the same data. Other Kubernetes objects go with their
/// owner (garbage collector).
async fn cleanup(lake: &DataLake, ctx: &Context) -> Result<Action, Error> {
    if lake.spec.storage.deletion_policy != DeletionPolicy::Delete {
        return Ok(Action::await_change());
    }
    let deleted = match catalog::delete_namespaces(lake, ctx).await {
        Ok(()) => storage::delete_buckets(lake, ctx).await,
        Err(message) => Err(message),
    };
    let (type_, reason, note) = match &deleted {
        Ok(()) => (
            EventType::Normal,
            "BucketsDeleted",
            "deletionPolicy Delete: buckets emptied and removed".to_string(),
        ),
        Err(message) => (EventType::Warning, "DeleteFailed", message.clone()),
    };
    ctx.event(&lake.object_ref(&()), type_, reason, "Delete", note)
        .await;
    match deleted {
        Ok(()) => {
            objects::delete_kept_secrets(lake, ctx).await?;
            Ok(Action::await_change())
        }
        Err(message) => Err(Error::Other(format!(
            "deleting storage of the DataLake: {message}"
        ))),
    }
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

/// The DataLake `name` in `namespace` (what a Grant's, Crawler's or Workflow's `lakeRef` names).
fn lake_named(namespace: Option<String>, name: &str) -> Option<ObjectRef<DataLake>> {
    Some(ObjectRef::new(name).within(&namespace?))
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
            scoped::<Grant>(&client, &namespace),
            watcher::Config::default(),
            |grant| lake_named(grant.namespace(), &grant.spec.lake_ref.name),
        )
        // Crawlers' and Workflows' S3 identities are the lake's to make (and remove).
        .watches(
            scoped::<Crawler>(&client, &namespace),
            watcher::Config::default(),
            |crawler| lake_named(crawler.namespace(), &crawler.spec.lake_ref.name),
        )
        .watches(
            scoped::<Workflow>(&client, &namespace),
            watcher::Config::default(),
            |workflow| lake_named(workflow.namespace(), &workflow.spec.lake_ref.name),
        )
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
const STARTING_RECHECK: Duration = Duration::from_secs(15);
