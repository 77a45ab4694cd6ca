//! The Workflow reconciler, a pipeline: dereference (its DataLake) → validate (DAG, cron, time
//! zones, what this version can run) → check what steps need (extract Secrets, the Spark
//! Operator; [`access`]) → apply (bookmarks and their ServiceAccount, event routes and batchers
//! via [`events`]) → triggers (decided by the pure [`triggers`] module: event batches, the
//! on-demand token, cron schedules, afterWorkflow, under the `concurrencyPolicy`, and history
//! trimming; carried out by [`runs`]) → status (`Ready`, `lastRun`, `activeRuns`,
//! `nextScheduleTimes`; [`status`]). Runs themselves are the WorkflowRun controller's.
//! A Workflow with `spec.blueprintRef` is a blueprint instance and takes the [`instance`]
//! pipeline instead (expand the blueprint into children, apply and prune them).
//!
//! A stage that cannot go on refuses ([`Refusal`]): `Ready=False` with its reason and message,
//! a Warning event when that verdict is new, the reason as the reconcile's metric result, and
//! its retry. Functions here stay under ~80 lines.

mod access;
pub mod events;
pub mod instance;
mod runs;
mod status;
pub mod triggers;

use std::sync::Arc;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use lakeform_api::blueprint::{Blueprint, ClusterBlueprint};
use lakeform_api::datalake::DataLake;
use lakeform_api::validate::validate_workflow;
use lakeform_api::workflow::{BlueprintKind, Workflow};
use lakeform_api::workflow_run::WorkflowRun;

use super::context::Context;
pub use super::error::Error;
use super::error::{KubeResultExt, Refusal, namespace};
use crate::desired::workflow as build;
use status::Status;

fn key(wf: &Workflow) -> String {
    format!(
        "workflow:{}/{}",
        wf.namespace().unwrap_or_default(),
        wf.name_any()
    )
}

/// What this version cannot run in `wf`, one line each.
fn unsupported(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in wf.spec.steps.iter().enumerate() {
        if !build::supported(s) {
            out.push(format!(
                "spec.steps[{i}] ({}): {} steps",
                s.name,
                build::step_kind(s)
            ));
        }
    }
    out
}

/// What the Workflow controller works with.
pub struct WorkflowContext {
    pub base: Arc<Context>,
    pub events: events::Events,
}

/// Read the DataLake of `wf` (`None`: it does not exist).
async fn dereference(wf: &Workflow, ctx: &Context) -> Result<Option<DataLake>, Error> {
    let name = &wf.spec.lake_ref.name;
    Api::<DataLake>::namespaced(ctx.client.clone(), &namespace(wf)?)
        .get_opt(name)
        .await
        .during(|| format!("reading DataLake {name} (spec.lakeRef.name)"))
}

/// Pure: the spec is valid, its lake exists and this version can run every step.
fn validate(wf: &Workflow, lake: Option<DataLake>) -> Result<DataLake, Refusal> {
    if let Err(errors) = validate_workflow(&wf.spec, lake.as_ref().map(|l| &l.spec)) {
        return Err(Refusal::new("InvalidSpec", errors.to_string()));
    }
    let Some(lake) = lake else {
        return Err(Refusal::new(
            "LakeNotFound",
            format!(
                "DataLake {}/{} (spec.lakeRef.name) does not exist; no trigger fires until it does",
                wf.namespace().unwrap_or_default(),
                wf.spec.lake_ref.name
            ),
        )
        .retry_after(access::RECHECK));
    };
    let missing = unsupported(wf);
    if !missing.is_empty() {
        return Err(Refusal::new(
            "Unsupported",
            format!(
                "this lakeform version cannot run: {}; no trigger fires",
                missing.join("; ")
            ),
        ));
    }
    Ok(lake)
}

/// Dereference, validate, check what steps need, and apply what they need (bookmarks, event
/// routes). Returns what event triggers listen to.
async fn prepare(
    wf: &Workflow,
    wctx: &WorkflowContext,
    status: &mut Status,
) -> Result<Result<Option<String>, Refusal>, Error> {
    let ctx = wctx.base.as_ref();
    let lake = match validate(wf, dereference(wf, ctx).await?) {
        Ok(lake) => lake,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Err(refusal) = access::check_secrets(wf, ctx).await? {
        return Ok(Err(refusal));
    }
    if let Err(refusal) = access::check_spark_operator(wf, ctx).await? {
        return Ok(Err(refusal));
    }
    if let Some(token) = access::ensure(wf, ctx).await? {
        status.fields().last_bookmark_reset = Some(token.clone());
        status.event(
            EventType::Normal,
            "BookmarksReset",
            format!(
                "bookmarks cleared ({} {token}): the next run loads every row again",
                crate::desired::workflow_access::RESET_ANNOTATION
            ),
        );
    }
    events::listen(wf, &lake, &wctx.events, &wctx.base).await
}

async fn reconcile(wf: Arc<Workflow>, wctx: Arc<WorkflowContext>) -> Result<Action, Error> {
    let wf = wf.as_ref();
    let ctx = wctx.base.as_ref();
    let now = jiff::Timestamp::now();
    let own = runs::own(wf, ctx).await?;
    let mut status = Status::new(wf, &own, now);
    if wf.spec.blueprint_ref.is_some() {
        return instance::reconcile(wf, ctx, status).await;
    }
    if wf.spec.paused {
        status.paused();
        status.write(wf, ctx).await?;
        return Ok(Action::await_change());
    }
    let listening = match prepare(wf, &wctx, &mut status).await? {
        Ok(listening) => listening,
        Err(refusal) => {
            let action = refusal.action();
            status.refuse(refusal);
            status.write(wf, ctx).await?;
            return Ok(action);
        }
    };
    let upstream = runs::upstream(wf, ctx).await?;
    let plan = triggers::plan(&triggers::Inputs {
        workflow: wf,
        runs: &own,
        upstream: &upstream,
        now,
    });
    let batch_waits = runs::start_all(wf, &plan, ctx, &mut status).await?;
    runs::trim(wf, &plan.trim, ctx).await?;
    status.fields().next_schedule_times = plan.next_schedule_times.clone();
    status.ready(
        true,
        "Ready",
        format!(
            "{} step(s); {} schedule(s) armed; runs on demand with a WorkflowRun or the lakeform.dev/run annotation{}",
            wf.spec.steps.len(),
            plan.next_schedule_times.len(),
            listening.map(|l| format!("; {l}")).unwrap_or_default()
        ),
    );
    status.write(wf, ctx).await?;
    ctx.reset_backoff(&key(wf));
    ctx.metrics.reconciled("Workflow", "ok");
    Ok(Action::requeue(plan.requeue_after(
        now,
        batch_waits,
        ctx.resync,
    )))
}

fn error_policy(wf: Arc<Workflow>, error: &Error, ctx: Arc<WorkflowContext>) -> Action {
    tracing::warn!(workflow = %key(&wf), %error, "reconcile failed");
    ctx.base.metrics.reconciled("Workflow", "error");
    Action::requeue(ctx.base.backoff(&key(&wf)))
}

/// The workflows in `store` with an `afterWorkflow` trigger naming the workflow of `run`.
fn downstream_of(store: &Store<Workflow>, run: &WorkflowRun) -> Vec<ObjectRef<Workflow>> {
    store
        .state()
        .iter()
        .filter(|w| w.namespace() == run.namespace())
        .filter(|w| {
            w.spec.triggers.iter().any(|t| {
                t.after_workflow
                    .as_ref()
                    .is_some_and(|a| a.name == run.spec.workflow_ref.name)
            })
        })
        .map(|w| ObjectRef::from_obj(w.as_ref()))
        .collect()
}

/// The blueprint instances in `store` naming the blueprint `kind`/`name`.
fn instances_of(
    store: &Store<Workflow>,
    kind: BlueprintKind,
    name: &str,
    ns: Option<&str>,
) -> Vec<ObjectRef<Workflow>> {
    store
        .state()
        .iter()
        .filter(|w| instance::names_blueprint(w, kind, name, ns))
        .map(|w| ObjectRef::from_obj(w.as_ref()))
        .collect()
}

/// Run the Workflow controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    events: events::Events,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (workflows, runs): (Api<Workflow>, Api<WorkflowRun>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let blueprints: Api<Blueprint> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let controller = Controller::new(workflows, watcher::Config::default());
    let store = controller.store();
    let (by_blueprint, by_cluster_blueprint) = (store.clone(), store.clone());
    let upstream_runs = runs.clone();
    controller
        .owns(runs, watcher::Config::default())
        // a blueprint's change wakes its instances (they show UpToDate=False)
        .watches(blueprints, watcher::Config::default(), move |b| {
            instances_of(
                &by_blueprint,
                BlueprintKind::Blueprint,
                &b.name_any(),
                b.namespace().as_deref(),
            )
        })
        .watches(
            Api::<ClusterBlueprint>::all(client.clone()),
            watcher::Config::default(),
            move |b| {
                instances_of(
                    &by_cluster_blueprint,
                    BlueprintKind::ClusterBlueprint,
                    &b.name_any(),
                    None,
                )
            },
        )
        // a run of another workflow wakes the workflows triggered after it
        .watches(upstream_runs, watcher::Config::default(), move |run| {
            downstream_of(&store, &run)
        })
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            error_policy,
            Arc::new(WorkflowContext { base: ctx, events }),
        )
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "workflow reconcile loop");
            }
        })
        .await;
}
