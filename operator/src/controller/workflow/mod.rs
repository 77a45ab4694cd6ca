//! The Workflow reconciler: dereference (its DataLake) → validate (DAG, cron, time zones, what
//! this version can run) → what steps need (extract Secrets, the Spark Operator, bookmarks and
//! their ServiceAccount; [`access`]) → triggers (on-demand token, event batches via
//! [`events`], cron schedules, afterWorkflow) under the `concurrencyPolicy` → history limit →
//! status (`Ready`, `lastRun`, `activeRuns`, `nextScheduleTimes`). Runs themselves are the
//! WorkflowRun controller's.

mod access;
pub mod events;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::{CONDITION_READY, condition, keep_transition_times, set_condition};
use lakeform_api::datalake::DataLake;
use lakeform_api::validate::{next_fire, parse_cron, validate_workflow};
use lakeform_api::workflow::{ConcurrencyPolicy, RunSummary, When, Workflow, WorkflowStatus};
use lakeform_api::workflow_run::{Phase, WorkflowRun};
use serde_json::json;

use super::apply::replacing_patch;
use super::context::Context;
use crate::desired::workflow::{
    self as build, CANCEL_ANNOTATION, LABEL_WORKFLOW, SCHEDULED_ANNOTATION,
};
use crate::desired::workflow_events;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Field manager of workflow status writes.
const FIELD_MANAGER: &str = "lakeform-workflow-controller";
/// How often a workflow whose lake is missing looks again.
const LAKE_RECHECK: Duration = Duration::from_secs(15);
/// How often an event batch waiting for an active run (`Forbid`) looks again.
const BATCH_RECHECK: Duration = Duration::from_secs(5);

/// Errors that end a reconcile without a verdict (API failures); retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Apply(#[from] super::apply::ApplyError),
    #[error("Workflow has no namespace")]
    NoNamespace,
}

fn key(wf: &Workflow) -> String {
    format!(
        "workflow:{}/{}",
        wf.namespace().unwrap_or_default(),
        wf.name_any()
    )
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// The runs of a workflow (owned by it), oldest first.
async fn runs(wf: &Workflow, ctx: &Context) -> Result<Vec<WorkflowRun>, Error> {
    let ns = wf.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{LABEL_WORKFLOW}={}", build::label_value(&wf.name_any()));
    let mut runs: Vec<WorkflowRun> = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == wf.uid().as_ref())
        })
        .collect();
    runs.sort_by_key(|r| (r.creation_timestamp().map(|t| t.0), r.name_any()));
    Ok(runs)
}

fn run_finished(run: &WorkflowRun) -> bool {
    run.status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(Phase::is_final)
}

/// Accumulated status and the events to publish after writing it.
struct Outcome {
    status: WorkflowStatus,
    events: Vec<(EventType, &'static str, String)>,
}

impl Outcome {
    fn ready(&mut self, wf: &Workflow, ok: bool, reason: &str, message: String) {
        set_condition(
            &mut self.status.conditions,
            condition(
                CONDITION_READY,
                ok,
                reason,
                message,
                wf.metadata.generation,
                Time(now()),
            ),
        );
    }

    /// `Ready=False` with `reason`, and a Warning event when that verdict is new.
    fn refuse(&mut self, wf: &Workflow, reason: &'static str, message: String) {
        let known = matches!(
            lakeform_api::common::find_condition(&self.status.conditions, CONDITION_READY),
            Some(c) if c.reason == reason && c.message == message
        );
        self.ready(wf, false, reason, message.clone());
        if !known {
            self.events.push((EventType::Warning, reason, message));
        }
    }

    async fn write(mut self, wf: &Workflow, ctx: &Context) -> Result<(), Error> {
        self.status.observed_generation = wf.metadata.generation;
        if wf.status.as_ref() != Some(&self.status) {
            let ns = wf.namespace().ok_or(Error::NoNamespace)?;
            let api: Api<Workflow> = Api::namespaced(ctx.client.clone(), &ns);
            // The cached object may predate our own last write (the watch lags the write):
            // compare with the live status, keeping transition times that still hold.
            let live = api.get_opt(&wf.name_any()).await?.and_then(|w| w.status);
            if let Some(l) = &live {
                keep_transition_times(&mut self.status.conditions, &l.conditions);
            }
            if live.as_ref() != Some(&self.status) {
                let params = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                api.patch_status(
                    &wf.name_any(),
                    &params,
                    &Patch::Merge(&json!({ "status": replacing_patch(
                        &serde_json::to_value(&live).unwrap_or_default(),
                        serde_json::to_value(&self.status).unwrap_or_default(),
                    ) })),
                )
                .await?;
            }
        }
        for (type_, reason, note) in self.events {
            ctx.event(&wf.object_ref(&()), type_, reason, "Trigger", note)
                .await;
        }
        Ok(())
    }
}

/// Start a run named `name` unless the concurrency policy forbids it now. Returns whether the
/// run exists now (created, or created before).
async fn start_run(
    wf: &Workflow,
    run: WorkflowRun,
    active: &[&WorkflowRun],
    ctx: &Context,
    out: &mut Outcome,
) -> Result<bool, Error> {
    let ns = wf.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &ns);
    let name = run.name_any();
    if api.get_opt(&name).await?.is_some() {
        return Ok(true);
    }
    if !active.is_empty() {
        let names: Vec<String> = active.iter().map(|r| r.name_any()).collect();
        match wf.spec.concurrency_policy {
            ConcurrencyPolicy::Forbid => {
                out.events.push((
                    EventType::Normal,
                    "RunSkipped",
                    format!(
                        "run {name} not started: {} still active (concurrencyPolicy Forbid)",
                        names.join(", ")
                    ),
                ));
                return Ok(false);
            }
            ConcurrencyPolicy::Replace => {
                for old in active {
                    let patch = json!({"metadata": {"annotations": {
                        CANCEL_ANNOTATION: format!("replaced by run {name}")
                    }}});
                    api.patch(
                        &old.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                }
            }
            ConcurrencyPolicy::Allow => {}
        }
    }
    match api.create(&PostParams::default(), &run).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(true),
        Err(e) => return Err(e.into()),
    }
    out.events.push((
        EventType::Normal,
        "RunCreated",
        format!("started run {name}"),
    ));
    Ok(true)
}

/// The most recently finished run of the Workflow `name` in `ns`, if any.
async fn newest_finished(
    ns: &str,
    name: &str,
    ctx: &Context,
) -> Result<Option<WorkflowRun>, Error> {
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), ns);
    let selector = format!("{LABEL_WORKFLOW}={}", build::label_value(name));
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|r| r.spec.workflow_ref.name == name && run_finished(r))
        .max_by_key(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0)
        }))
}

/// Delete finished runs beyond `historyLimit`, oldest first (their Jobs go with them).
async fn trim_history(wf: &Workflow, runs: &[WorkflowRun], ctx: &Context) -> Result<(), Error> {
    let ns = wf.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &ns);
    let done: Vec<&WorkflowRun> = runs.iter().filter(|r| run_finished(r)).collect();
    let limit = usize::try_from(wf.spec.history_limit.max(0)).unwrap_or(0);
    for old in done.iter().take(done.len().saturating_sub(limit)) {
        match api
            .delete(&old.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What this version cannot run in `wf`, one line each.
fn unsupported(wf: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    if wf.spec.blueprint_ref.is_some() {
        out.push("spec.blueprintRef: blueprint expansion".to_string());
    }
    for (i, s) in wf.spec.steps.iter().enumerate() {
        if let Some(x) = &s.extract
            && x.source.engine != lakeform_api::workflow::SourceEngine::Postgres
        {
            out.push(format!(
                "spec.steps[{i}] ({}).extract.source.engine: {:?} sources (Postgres is supported)",
                s.name, x.source.engine
            ));
        }
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

async fn reconcile(wf: Arc<Workflow>, wctx: Arc<WorkflowContext>) -> Result<Action, Error> {
    let wf = wf.as_ref();
    let ctx = wctx.base.as_ref();
    let ns = wf.namespace().ok_or(Error::NoNamespace)?;
    let mut out = Outcome {
        status: wf.status.clone().unwrap_or_default(),
        events: Vec::new(),
    };
    let all = runs(wf, ctx).await?;
    out.status.active_runs = all
        .iter()
        .filter(|r| !run_finished(r))
        .map(|r| r.name_any())
        .collect();
    out.status.last_run = all.last().map(|r| {
        let s = r.status.clone().unwrap_or_default();
        RunSummary {
            name: r.name_any(),
            phase: format!("{:?}", s.phase.unwrap_or(Phase::Pending)),
            start_time: s.start_time,
            completion_time: s.completion_time,
        }
    });

    if wf.spec.paused {
        out.ready(wf, false, "Paused", "spec.paused: no trigger fires".into());
        out.write(wf, ctx).await?;
        return Ok(Action::await_change());
    }

    // dereference + validate
    let lake_name = &wf.spec.lake_ref.name;
    let lake = Api::<DataLake>::namespaced(ctx.client.clone(), &ns)
        .get_opt(lake_name)
        .await?;
    if let Err(errors) = validate_workflow(&wf.spec, lake.as_ref().map(|l| &l.spec)) {
        out.refuse(wf, "InvalidSpec", errors.to_string());
        out.write(wf, ctx).await?;
        return Ok(Action::await_change());
    }
    let Some(lake) = lake else {
        out.refuse(
            wf,
            "LakeNotFound",
            format!("DataLake {ns}/{lake_name} (spec.lakeRef.name) does not exist; no trigger fires until it does"),
        );
        out.write(wf, ctx).await?;
        return Ok(Action::requeue(LAKE_RECHECK));
    };
    let missing = unsupported(wf);
    if !missing.is_empty() {
        out.refuse(
            wf,
            "Unsupported",
            format!(
                "this lakeform version cannot run: {}; no trigger fires",
                missing.join("; ")
            ),
        );
        out.write(wf, ctx).await?;
        return Ok(Action::await_change());
    }
    let missing = access::missing_secrets(wf, ctx).await?;
    if !missing.is_empty() {
        out.refuse(
            wf,
            "SecretNotFound",
            format!("{}; no trigger fires until it exists", missing.join("; ")),
        );
        out.write(wf, ctx).await?;
        return Ok(Action::requeue(LAKE_RECHECK));
    }
    if let Some(message) = access::missing_spark_operator(wf, ctx).await? {
        out.refuse(
            wf,
            "SparkOperatorMissing",
            format!("{message}; no trigger fires until it is installed"),
        );
        out.write(wf, ctx).await?;
        return Ok(Action::requeue(LAKE_RECHECK));
    }
    if let Some(token) = access::ensure(wf, ctx).await? {
        out.status.last_bookmark_reset = Some(token.clone());
        out.events.push((
            EventType::Normal,
            "BookmarksReset",
            format!(
                "bookmarks cleared ({} {token}): the next run loads every row again",
                crate::desired::workflow_access::RESET_ANNOTATION
            ),
        ));
    }
    let listening = match events::listen(wf, &lake, &wctx.events, &wctx.base).await? {
        Ok(l) => l,
        Err(why) => {
            out.refuse(wf, "EventsUnavailable", why);
            out.write(wf, ctx).await?;
            return Ok(Action::requeue(LAKE_RECHECK));
        }
    };
    let active: Vec<&WorkflowRun> = all.iter().filter(|r| !run_finished(r)).collect();

    // an event batch handed over by a trigger's batcher
    let mut batch_waits = false;
    if let Some((trigger, token)) = workflow_events::pending_batch(wf) {
        if wf.spec.concurrency_policy == ConcurrencyPolicy::Forbid && !active.is_empty() {
            // the keys wait for the active run to end (the batcher holds new keys meanwhile)
            batch_waits = true;
        } else {
            let name = workflow_events::batch_name(wf, &token);
            let run = build::run(
                wf,
                name.clone(),
                &format!("event-{trigger}"),
                BTreeMap::new(),
                BTreeMap::from([(workflow_events::BATCH_ANNOTATION.to_string(), name.clone())]),
            );
            if start_run(wf, run, &active, ctx, &mut out).await? {
                hand_over_keys(wf, &name, ctx).await?;
                out.status.last_event_batch = Some(workflow_events::batch_value(&trigger, &token));
            } else {
                batch_waits = true;
            }
        }
    }

    // on demand
    if let Some(token) = build::pending_token(wf) {
        let params = wf
            .spec
            .triggers
            .iter()
            .find_map(|t| t.on_demand.as_ref())
            .map(|o| o.parameters.clone())
            .unwrap_or_default();
        let run = build::run(
            wf,
            build::on_demand_run_name(wf, &token),
            "on-demand",
            params,
            BTreeMap::from([(
                crate::desired::crawler::RUN_ANNOTATION.to_string(),
                token.clone(),
            )]),
        );
        // an on-demand token is a request: it is recorded whether it ran or was forbidden
        start_run(wf, run, &active, ctx, &mut out).await?;
        out.status.last_run_token = Some(token);
    }

    // schedules
    let t = now().as_second();
    let mut wake: Option<i64> = None;
    let mut next_times = BTreeMap::new();
    for trigger in &wf.spec.triggers {
        let Some(s) = &trigger.schedule else { continue };
        let cron = match parse_cron(&s.cron) {
            Ok(c) => c,
            Err(_) => continue, // validated above
        };
        let stored = out
            .status
            .next_schedule_times
            .get(&trigger.name)
            .map(|x| x.0.as_second());
        if let Some(due) = stored
            && due <= t
        {
            let run = build::run(
                wf,
                build::scheduled_run_name(wf, &trigger.name, due),
                &format!("schedule-{}", trigger.name),
                BTreeMap::new(),
                BTreeMap::from([(
                    SCHEDULED_ANNOTATION.to_string(),
                    jiff::Timestamp::from_second(due)
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                )]),
            );
            start_run(wf, run, &active, ctx, &mut out).await?;
        }
        let next = match stored {
            Some(due) if due > t => due,
            _ => match next_fire(&cron, s.time_zone.as_deref(), t) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Ok(ts) = jiff::Timestamp::from_second(next) {
            next_times.insert(trigger.name.clone(), Time(ts));
        }
        wake = Some(wake.map_or(next, |w| w.min(next)));
    }
    out.status.next_schedule_times = next_times;

    // after other workflows: the newest finished run of the upstream, if it ended after this
    // workflow was created and in the state the trigger asks for, starts one run (named after
    // it, so it starts only one)
    for trigger in &wf.spec.triggers {
        let Some(after) = &trigger.after_workflow else {
            continue;
        };
        let Some(upstream) = newest_finished(&ns, &after.name, ctx).await? else {
            continue;
        };
        let ended = upstream
            .status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .map(|t| t.0);
        let created = wf.creation_timestamp().map(|t| t.0);
        let phase = upstream.status.as_ref().and_then(|s| s.phase);
        let fires = matches!(
            (after.state, phase),
            (When::Succeeded, Some(Phase::Succeeded))
                | (When::Failed, Some(Phase::Failed))
                | (When::Completed, Some(Phase::Succeeded | Phase::Failed))
        );
        if !fires || ended < created {
            continue;
        }
        let run = build::run(
            wf,
            build::after_run_name(wf, &upstream),
            &format!("after-{}", trigger.name),
            BTreeMap::new(),
            BTreeMap::from([(build::AFTER_ANNOTATION.to_string(), upstream.name_any())]),
        );
        start_run(wf, run, &active, ctx, &mut out).await?;
    }

    trim_history(wf, &all, ctx).await?;
    let schedules = out.status.next_schedule_times.len();
    out.ready(
        wf,
        true,
        "Ready",
        format!(
            "{} step(s); {schedules} schedule(s) armed; runs on demand with a WorkflowRun or the lakeform.dev/run annotation{}",
            wf.spec.steps.len(),
            listening.map(|l| format!("; {l}")).unwrap_or_default()
        ),
    );
    out.write(wf, ctx).await?;
    ctx.reset_backoff(&key(wf));
    ctx.metrics.reconciled("Workflow", "ok");
    let until = wake
        .map(|w| Duration::from_secs(u64::try_from(w - t).unwrap_or(0).max(1)))
        .unwrap_or(ctx.resync);
    let until = if batch_waits {
        until.min(BATCH_RECHECK)
    } else {
        until
    };
    Ok(Action::requeue(until.min(ctx.resync)))
}

/// The batch's keys ConfigMap goes with the run it started (history trimming deletes both).
async fn hand_over_keys(wf: &Workflow, name: &str, ctx: &Context) -> Result<(), Error> {
    let ns = wf.namespace().ok_or(Error::NoNamespace)?;
    let Some(run) = Api::<WorkflowRun>::namespaced(ctx.client.clone(), &ns)
        .get_opt(name)
        .await?
    else {
        return Ok(());
    };
    let Some(owner) = run.controller_owner_ref(&()) else {
        return Ok(());
    };
    let owner = OwnerReference {
        controller: Some(false),
        ..owner
    };
    let patch = json!({"metadata": {"ownerReferences": [owner]}});
    match Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
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
    let controller = Controller::new(workflows, watcher::Config::default());
    let store = controller.store();
    let upstream_runs = runs.clone();
    controller
        .owns(runs, watcher::Config::default())
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
