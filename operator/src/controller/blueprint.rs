//! The Blueprint and ClusterBlueprint status controller, a pipeline: validate (templates parse,
//! use only declared parameters and render with sample values; `lakeform_api::validate`) →
//! count (the instances naming it, and those expanded from an older generation) → status
//! (`Ready`, `instances`, `outdatedInstances`), written only when it differs, with a Warning
//! event when a verdict of `Ready=False` is new.
//!
//! ClusterBlueprints are counted only by an operator that watches every namespace: an operator
//! limited to some namespaces reads them (its instances use them) but leaves their status to
//! the cluster-wide one, so two namespaced operators never fight over it.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use lakeform_api::blueprint::{Blueprint, BlueprintSpec, BlueprintStatus, ClusterBlueprint};
use lakeform_api::common::{
    CONDITION_READY, FIELD_MANAGER, condition, find_condition, keep_transition_times, set_condition,
};
use lakeform_api::validate::validate_blueprint;
use lakeform_api::workflow::{BlueprintKind, Workflow};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::context::Context;
use super::error::{Error, KubeResultExt};

/// The action of every Blueprint event.
const ACTION: &str = "Validate";

/// Pure: the status for a blueprint of `generation` with `spec`, given the instances' expanded
/// generations (`None`: not expanded yet). Returns it and the `Ready=False` message, if any.
pub fn status(
    last: Option<&BlueprintStatus>,
    generation: Option<i64>,
    spec: &BlueprintSpec,
    instances: &[Option<i64>],
) -> (BlueprintStatus, Option<String>) {
    let mut s = last.cloned().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let verdict = validate_blueprint(spec);
    let (ok, reason, message) = match &verdict {
        Ok(()) => (
            true,
            "Valid",
            format!(
                "{} parameter(s), {} template(s) render with sample values",
                spec.parameters.len(),
                spec.resources.len()
            ),
        ),
        Err(errors) => (false, "InvalidSpec", errors.to_string()),
    };
    set_condition(
        &mut s.conditions,
        condition(
            CONDITION_READY,
            ok,
            reason,
            message.clone(),
            generation,
            now,
        ),
    );
    s.observed_generation = generation;
    s.instances = i32::try_from(instances.len()).unwrap_or(i32::MAX);
    let outdated = instances
        .iter()
        .filter(|g| g.is_some_and(|g| Some(g) != generation))
        .count();
    s.outdated_instances = i32::try_from(outdated).unwrap_or(i32::MAX);
    (s, (!ok).then_some(message))
}

/// The expanded generations of the instances naming `kind`/`name`.
async fn instances(
    ctx: &Context,
    kind: BlueprintKind,
    name: &str,
    namespace: Option<&str>,
) -> Result<Vec<Option<i64>>, Error> {
    let api: Api<Workflow> = match namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .during(|| format!("listing the instances of {kind} {name}"))?;
    Ok(list
        .items
        .iter()
        .filter(|w| {
            w.spec
                .blueprint_ref
                .as_ref()
                .is_some_and(|r| r.kind == kind && r.name == name)
        })
        .map(|w| {
            w.status
                .as_ref()
                .and_then(|s| s.expanded_from.as_ref())
                .map(|e| e.generation)
        })
        .collect())
}

/// Write `status` (server-side apply, one field manager) unless the live one is the same;
/// publish the `InvalidSpec` event when that verdict is new.
async fn write<K>(
    api: Api<K>,
    obj: &K,
    mut next: BlueprintStatus,
    last: Option<&BlueprintStatus>,
    invalid: Option<String>,
    ctx: &Context,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    if let Some(l) = last {
        keep_transition_times(&mut next.conditions, &l.conditions);
    }
    if last == Some(&next) {
        return Ok(());
    }
    let was_invalid = last
        .and_then(|l| find_condition(&l.conditions, CONDITION_READY))
        .is_some_and(|c| c.reason == "InvalidSpec" && Some(&c.message) == invalid.as_ref());
    let name = obj.name_any();
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": next});
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .during(|| format!("writing the status of {} {name}", K::kind(&())))?;
    if let Some(message) = invalid.filter(|_| !was_invalid) {
        let reference = obj.object_ref(&());
        ctx.event(
            &reference,
            EventType::Warning,
            "InvalidSpec",
            ACTION,
            message,
        )
        .await;
    }
    Ok(())
}

async fn reconcile_blueprint(b: Arc<Blueprint>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = super::error::namespace(b.as_ref())?;
    let name = b.name_any();
    let found = instances(&ctx, BlueprintKind::Blueprint, &name, Some(&ns)).await?;
    let last = b.status.as_ref();
    let (next, invalid) = status(last, b.metadata.generation, &b.spec, &found);
    let reason = if invalid.is_some() {
        "InvalidSpec"
    } else {
        "ok"
    };
    let api = Api::<Blueprint>::namespaced(ctx.client.clone(), &ns);
    write(api, b.as_ref(), next, last, invalid, &ctx).await?;
    ctx.metrics.reconciled("Blueprint", reason);
    Ok(Action::requeue(ctx.resync))
}

async fn reconcile_cluster(b: Arc<ClusterBlueprint>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = b.name_any();
    let found = instances(&ctx, BlueprintKind::ClusterBlueprint, &name, None).await?;
    let last = b.status.as_ref();
    let (next, invalid) = status(last, b.metadata.generation, &b.spec.blueprint, &found);
    let reason = if invalid.is_some() {
        "InvalidSpec"
    } else {
        "ok"
    };
    let api = Api::<ClusterBlueprint>::all(ctx.client.clone());
    write(api, b.as_ref(), next, last, invalid, &ctx).await?;
    ctx.metrics.reconciled("ClusterBlueprint", reason);
    Ok(Action::requeue(ctx.resync))
}

fn error_policy<K: ResourceExt>(b: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(blueprint = %b.name_any(), %error, "reconcile failed");
    ctx.metrics.reconciled("Blueprint", "error");
    Action::requeue(ctx.backoff(&format!("blueprint:{}", b.name_any())))
}

/// The instance's blueprint, when it names one of kind `kind`.
fn named_by(w: &Workflow, kind: BlueprintKind) -> Option<String> {
    w.spec
        .blueprint_ref
        .as_ref()
        .filter(|r| r.kind == kind)
        .map(|r| r.name.clone())
}

/// Run the Blueprint status controller in one scope (and, when the scope is every namespace,
/// the ClusterBlueprint one) until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = futures::FutureExt::shared(shutdown);
    let client = ctx.client.clone();
    let (blueprints, workflows): (Api<Blueprint>, Api<Workflow>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let namespaced = Controller::new(blueprints, watcher::Config::default())
        .watches(workflows.clone(), watcher::Config::default(), |w| {
            named_by(&w, BlueprintKind::Blueprint)
                .map(|n| ObjectRef::<Blueprint>::new(&n).within(&w.namespace().unwrap_or_default()))
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_blueprint, error_policy, ctx.clone())
        .for_each(|_| async {});
    if namespace.is_some() {
        namespaced.await;
        return;
    }
    let cluster = Controller::new(
        Api::<ClusterBlueprint>::all(client),
        watcher::Config::default(),
    )
    .watches(workflows, watcher::Config::default(), |w| {
        named_by(&w, BlueprintKind::ClusterBlueprint).map(|n| ObjectRef::new(&n))
    })
    .graceful_shutdown_on(shutdown)
    .run(reconcile_cluster, error_policy, ctx)
    .for_each(|_| async {});
    futures::future::join(namespaced, cluster).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(template: &str) -> BlueprintSpec {
        serde_yaml::from_str(&format!(
            "parameters: [{{name: source, required: true}}]\nresources:\n- name: cm\n  template: |\n    {template}\n"
        ))
        .expect("spec")
    }

    #[test]
    fn counts_instances_and_reports_invalid_templates() {
        let good =
            spec("{apiVersion: v1, kind: ConfigMap, metadata: {name: '{{ params.source }}'}}");
        let (s, invalid) = status(None, Some(3), &good, &[Some(3), Some(2), None]);
        assert_eq!(invalid, None);
        assert_eq!((s.instances, s.outdated_instances), (3, 1));
        assert_eq!(s.observed_generation, Some(3));
        let bad = spec("{apiVersion: v1, kind: ConfigMap, metadata: {name: '{{ params.sorce }}'}}");
        let (s, invalid) = status(Some(&s), Some(4), &bad, &[]);
        let message = invalid.expect("invalid");
        assert!(message.contains("params.sorce"), "{message}");
        let ready = find_condition(&s.conditions, CONDITION_READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
    }
}
