//! The WorkflowRun reconciler, a pipeline: dereference (its Workflow, the DataLake, the run it
//! resumes) → advance the step DAG ([`dag`], pure) with what the step Jobs did and create the
//! Jobs of the attempts that start → status ([`status`]), and an event per step transition. A
//! finished run is final.
//!
//! A stage that cannot go on refuses ([`Refusal`]). A refusal only a change can lift ends the
//! run `Failed` (`Ready=False` with the refusal's reason and message, a Warning event, the
//! reason as the metric result); one that retries (the DataLake is missing) leaves the run
//! waiting with `Ready=False` and no event, as before. Functions here stay under ~80 lines.

pub mod dag;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::datalake::DataLake;
use lakeform_api::workflow::{Step, Workflow};
use lakeform_api::workflow_run::{Phase, StepStatus, WorkflowRun, WorkflowRunStatus};
use serde_json::json;

use super::context::Context;
pub use super::error::Error;
use super::error::{KubeResultExt, Refusal, Retry, namespace};
use super::jobs::{JobState, job_state};
use crate::controller::apply::merge_params;
use crate::desired::spark::{self, SparkState};
use crate::desired::workflow::{
    CANCEL_ANNOTATION, LABEL_RUN, LABEL_WORKFLOW, label_value, step_job, step_job_name,
};
use dag::{Attempt, Decision};
use status::{conclude, set_ready, write};

/// How often a run waiting for its DataLake looks again.
const WAITING_RECHECK: Duration = Duration::from_secs(10);
/// How often a running spark step's SparkApplication is looked at.
const SPARK_POLL: Duration = Duration::from_secs(10);

/// What the run controller needs besides the shared context.
pub struct RunContext {
    pub base: Arc<Context>,
    /// Image of the Jobs of crawl steps (the `lakeform` binary).
    pub worker_image: String,
}

fn key(run: &WorkflowRun) -> String {
    format!(
        "workflowrun:{}/{}",
        run.namespace().unwrap_or_default(),
        run.name_any()
    )
}

async fn event(ctx: &Context, run: &WorkflowRun, type_: EventType, reason: &str, note: String) {
    ctx.event(&run.object_ref(&()), type_, reason, "Run", note)
        .await;
}

/// The run cannot go on. Refusals only a change can lift end it `Failed` before any (further)
/// step runs, with a Warning event the first time; the others leave it waiting.
async fn refuse(
    run: &WorkflowRun,
    mut status: WorkflowRunStatus,
    refusal: Refusal,
    ctx: &Context,
) -> Result<Action, Error> {
    let now = jiff::Timestamp::now();
    let message = refusal.message.clone();
    if let Retry::After(_) = refusal.retry {
        set_ready(&mut status, run, false, refusal.reason, message, now);
        status.observed_generation = run.metadata.generation;
        write(run, &status, ctx).await?;
        ctx.metrics.reconciled("WorkflowRun", refusal.reason);
        return Ok(refusal.action());
    }
    let first = status.phase != Some(Phase::Failed);
    status.phase = Some(Phase::Failed);
    status.message = Some(message.clone());
    status.completion_time.get_or_insert(Time(now));
    status.observed_generation = run.metadata.generation;
    set_ready(&mut status, run, false, refusal.reason, message, now);
    write(run, &status, ctx).await?;
    if first {
        refusal
            .publish(ctx, &run.object_ref(&()), "WorkflowRun", "Run")
            .await;
    } else {
        ctx.metrics.reconciled("WorkflowRun", refusal.reason);
    }
    Ok(refusal.action())
}

/// Runs created by hand get their Workflow as owner (and its label), as triggered runs have:
/// the Workflow then reports them, trims them with its history and takes them along when it is
/// deleted.
async fn adopt(run: &WorkflowRun, wf: &Workflow, ctx: &Context) -> Result<(), Error> {
    let owned = run
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == wf.uid().as_ref());
    let label = label_value(&wf.name_any());
    if owned && run.labels().get(LABEL_WORKFLOW) == Some(&label) {
        return Ok(());
    }
    let mut owners = run.owner_references().to_vec();
    if !owned && let Some(mut o) = wf.controller_owner_ref(&()) {
        if owners.iter().any(|x| x.controller == Some(true)) {
            o.controller = Some(false);
        }
        owners.push(o);
    }
    let patch = json!({"metadata": {
        "labels": {LABEL_WORKFLOW: label},
        "ownerReferences": owners,
    }});
    let name = run.name_any();
    Api::<WorkflowRun>::namespaced(ctx.client.clone(), &namespace(run)?)
        .patch(&name, &merge_params(), &Patch::Merge(&patch))
        .await
        .during(|| {
            format!(
                "adopting WorkflowRun {name} into Workflow {}",
                wf.name_any()
            )
        })?;
    Ok(())
}

/// The Jobs of this run, by name.
async fn jobs(run: &WorkflowRun, ctx: &Context) -> Result<BTreeMap<String, Job>, Error> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace(run)?);
    let selector = format!("{LABEL_RUN}={}", label_value(&run.name_any()));
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await
        .during(|| format!("listing the Jobs of WorkflowRun {}", run.name_any()))?
        .items
        .into_iter()
        .filter(|j| {
            j.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == run.uid().as_ref())
        })
        .map(|j| (j.name_any(), j))
        .collect())
}

/// The SparkApplications of a run's spark steps, by name (none when the workflow has no spark
/// step: the resource may not even exist then).
async fn spark_apps(
    run: &WorkflowRun,
    workflow: &Workflow,
    ctx: &Context,
) -> Result<BTreeMap<String, DynamicObject>, Error> {
    if !workflow.spec.steps.iter().any(|s| s.spark.is_some()) {
        return Ok(BTreeMap::new());
    }
    owned_spark_apps(run, ctx).await
}

async fn owned_spark_apps(
    run: &WorkflowRun,
    ctx: &Context,
) -> Result<BTreeMap<String, DynamicObject>, Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace(run)?, &spark::resource());
    let selector = format!("{LABEL_RUN}={}", label_value(&run.name_any()));
    let list = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(l) => l,
        // the Spark Operator's CRD is gone: the steps' applications are missing
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(e).during(|| {
                format!(
                    "listing the SparkApplications of WorkflowRun {}",
                    run.name_any()
                )
            });
        }
    };
    Ok(list
        .items
        .into_iter()
        .filter(|a| {
            a.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == run.uid().as_ref())
        })
        .map(|a| (a.name_any(), a))
        .collect())
}

fn failure_reason(job: &Job) -> String {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
        })
        .map(|c| {
            format!(
                "Job {} failed: {}: {}",
                job.name_any(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
        .unwrap_or_else(|| format!("Job {} failed", job.name_any()))
}

/// What the current attempt of each running step did.
fn attempts(
    run: &WorkflowRun,
    steps: &[StepStatus],
    jobs: &BTreeMap<String, Job>,
    apps: &BTreeMap<String, DynamicObject>,
) -> BTreeMap<String, Attempt> {
    steps
        .iter()
        .filter(|s| s.phase == Phase::Running)
        .map(|s| {
            let name = step_job_name(run, &s.name, s.attempts);
            let a = match jobs.get(&name) {
                None => match apps.get(&name).map(spark::state) {
                    None => Attempt::Missing,
                    Some(SparkState::Running) => Attempt::Running,
                    Some(SparkState::Succeeded) => Attempt::Succeeded,
                    Some(SparkState::Failed(m)) => Attempt::Failed(m),
                },
                Some(j) => match job_state(j) {
                    JobState::Active => Attempt::Running,
                    JobState::Succeeded => Attempt::Succeeded,
                    JobState::Failed => Attempt::Failed(failure_reason(j)),
                },
            };
            (s.name.clone(), a)
        })
        .collect()
}

/// Delete `name` through `api`; gone already is fine.
async fn delete_active<K>(api: &Api<K>, name: &str, what: &str) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).during(|| format!("deleting {what} {name} (run cancelled)")),
    }
}

/// `concurrencyPolicy: Replace` (or a user) asked the run to stop: delete its active Jobs and
/// cancel every unfinished step.
async fn cancel(
    run: &WorkflowRun,
    mut status: WorkflowRunStatus,
    ctx: &Context,
) -> Result<Action, Error> {
    let ns = namespace(run)?;
    let apps: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &spark::resource());
    for (name, app) in owned_spark_apps(run, ctx).await? {
        if spark::state(&app) == SparkState::Running {
            delete_active(&apps, &name, "SparkApplication").await?;
        }
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    for (name, job) in jobs(run, ctx).await? {
        if job_state(&job) == JobState::Active {
            delete_active(&api, &name, "Job").await?;
        }
    }
    let now = jiff::Timestamp::now();
    let t = Time(now);
    for s in status.steps.iter_mut().filter(|s| !s.phase.is_final()) {
        s.phase = Phase::Cancelled;
        s.completion_time = Some(t.clone());
        s.message = Some("cancelled".into());
    }
    let message = run
        .annotations()
        .get(CANCEL_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    status.phase = Some(Phase::Cancelled);
    status.completion_time = Some(t);
    status.message = Some(format!("cancelled: {message}"));
    let ready = format!("cancelled: {message}");
    set_ready(&mut status, run, false, "Cancelled", ready, now);
    write(run, &status, ctx).await?;
    event(ctx, run, EventType::Normal, "RunCancelled", message).await;
    Ok(Action::await_change())
}

/// What a run works with: its Workflow and DataLake, and the step statuses of the run it
/// resumes (read only while the run has no step statuses yet).
struct Deps {
    workflow: Workflow,
    lake: DataLake,
    resumed: Option<(String, Vec<StepStatus>)>,
}

/// Read the Workflow (adopting the run into it), its DataLake and the run this one resumes.
async fn dereference(
    run: &WorkflowRun,
    status: &WorkflowRunStatus,
    ctx: &Context,
) -> Result<Result<Deps, Refusal>, Error> {
    let ns = namespace(run)?;
    let wf_name = &run.spec.workflow_ref.name;
    let Some(workflow) = Api::<Workflow>::namespaced(ctx.client.clone(), &ns)
        .get_opt(wf_name)
        .await
        .during(|| format!("reading Workflow {wf_name} (spec.workflowRef.name)"))?
    else {
        let m = format!("Workflow {ns}/{wf_name} (spec.workflowRef.name) does not exist");
        return Ok(Err(Refusal::new("WorkflowNotFound", m)));
    };
    adopt(run, &workflow, ctx).await?;
    if workflow.spec.blueprint_ref.is_some() {
        let children = workflow
            .status
            .as_ref()
            .map(|s| {
                s.children
                    .iter()
                    .filter(|c| c.kind == "Workflow")
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let m = format!(
            "Workflow {wf_name} is a blueprint instance and has no steps of its own; run one of \
             the workflows it created instead: {children}"
        );
        return Ok(Err(Refusal::new("BlueprintInstance", m)));
    }
    let lake_name = &workflow.spec.lake_ref.name;
    let Some(lake) = Api::<DataLake>::namespaced(ctx.client.clone(), &ns)
        .get_opt(lake_name)
        .await
        .during(|| format!("reading DataLake {lake_name} of Workflow {wf_name}"))?
    else {
        let m = format!("DataLake {ns}/{lake_name} of Workflow {wf_name} does not exist; waiting");
        return Ok(Err(
            Refusal::new("LakeNotFound", m).retry_after(WAITING_RECHECK)
        ));
    };
    let resumed = match (&run.spec.resume_from, status.steps.is_empty()) {
        (Some(r), true) => match Api::<WorkflowRun>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&r.name)
            .await
            .during(|| format!("reading WorkflowRun {} (spec.resumeFrom)", r.name))?
        {
            Some(old) => Some((r.name.clone(), old.status.unwrap_or_default().steps)),
            None => {
                let m = format!(
                    "spec.resumeFrom: WorkflowRun {ns}/{} does not exist",
                    r.name
                );
                return Ok(Err(Refusal::new("ResumeFromNotFound", m)));
            }
        },
        _ => None,
    };
    Ok(Ok(Deps {
        workflow,
        lake,
        resumed,
    }))
}

/// Create the object of one attempt: the step's SparkApplication or Job. Returns why the
/// attempt failed at once when no retry can help (the step cannot become a Job, the Spark
/// Operator is not installed).
async fn start_attempt(
    run: &WorkflowRun,
    deps: &Deps,
    step: &Step,
    attempt: i32,
    st: &mut StepStatus,
    rctx: &RunContext,
) -> Result<Option<String>, Error> {
    let client = rctx.base.client.clone();
    let ns = namespace(run)?;
    if let Some(app) = spark::application(&deps.workflow, run, &deps.lake, step, attempt) {
        st.job_name = app.metadata.name.clone();
        let name = app.name_any();
        let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &spark::resource());
        return match api.create(&PostParams::default(), &app).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Some(format!(
                "the SparkApplication resource ({}) does not exist: install the Kubeflow Spark Operator",
                spark::CRD_NAME
            ))),
            Err(e) => Err(e).during(|| format!("creating SparkApplication {name}")),
        };
    }
    let job = match step_job(
        &deps.workflow,
        run,
        &deps.lake,
        step,
        attempt,
        &rctx.worker_image,
    ) {
        Ok(job) => job,
        Err(e) => return Ok(Some(e.to_string())),
    };
    st.job_name = job.metadata.name.clone();
    let name = job.name_any();
    match Api::<Job>::namespaced(client, &ns)
        .create(&PostParams::default(), &job)
        .await
    {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(e).during(|| format!("creating Job {name}")),
    }
}

/// Advance the DAG with what the Jobs did and start the attempts it decides on. A step that
/// cannot become a Job fails at once (its attempts used up), and the DAG is advanced again so
/// its dependents are decided in this pass.
async fn advance(
    run: &WorkflowRun,
    deps: &Deps,
    status: &mut WorkflowRunStatus,
    rctx: &RunContext,
    now: jiff::Timestamp,
) -> Result<Result<Decision, Refusal>, Error> {
    let ctx = rctx.base.as_ref();
    let steps = &deps.workflow.spec.steps;
    let live = jobs(run, ctx).await?;
    let apps = spark_apps(run, &deps.workflow, ctx).await?;
    let mut seen = attempts(run, &status.steps, &live, &apps);
    let mut decision = Decision::default();
    for _ in 0..=steps.len() {
        let d = match dag::advance(steps, &mut status.steps, &seen, now) {
            Ok(d) => d,
            Err(m) => return Ok(Err(Refusal::new("InvalidSpec", m))),
        };
        seen.clear();
        for start in &d.starts {
            let Some(step) = steps.iter().find(|s| s.name == start.step) else {
                continue;
            };
            let Some(st) = status.steps.iter_mut().find(|s| s.name == start.step) else {
                continue;
            };
            if let Some(why) = start_attempt(run, deps, step, start.attempt, st, rctx).await? {
                seen.insert(start.step.clone(), Attempt::Failed(why));
                // no retry can help: use up the attempts
                st.attempts = st.attempts.max(1 + step.retries.max(0));
            }
        }
        decision.starts.extend(d.starts);
        decision.transitions.extend(d.transitions);
        decision.wake_at = match (decision.wake_at, d.wake_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if seen.is_empty() {
            break;
        }
    }
    Ok(Ok(decision))
}

/// An event per step transition, and one when the run ends.
async fn publish(
    run: &WorkflowRun,
    decision: &Decision,
    phase: Phase,
    status: &WorkflowRunStatus,
    ctx: &Context,
) {
    for t in &decision.transitions {
        let (type_, reason) = match t.phase {
            Phase::Running => (EventType::Normal, "StepStarted"),
            Phase::Succeeded => (EventType::Normal, "StepSucceeded"),
            Phase::Retrying => (EventType::Warning, "StepRetrying"),
            Phase::Failed => (EventType::Warning, "StepFailed"),
            Phase::Skipped => (EventType::Normal, "StepSkipped"),
            Phase::Cancelled | Phase::Pending => (EventType::Normal, "StepChanged"),
        };
        let note = format!("step {}: {}", t.step, t.message);
        event(ctx, run, type_, reason, note).await;
    }
    if phase.is_final() {
        let (type_, reason) = if phase == Phase::Succeeded {
            (EventType::Normal, "RunSucceeded")
        } else {
            (EventType::Warning, "RunFailed")
        };
        let note = status
            .message
            .clone()
            .unwrap_or_else(|| "every step succeeded".into());
        event(ctx, run, type_, reason, note).await;
    }
}

/// How long until an unfinished run is looked at again: its next retry, at most `resync`, and
/// soon while a spark step runs (SparkApplications are not watched: their CRD may come and go).
fn requeue_after(
    steps: &[Step],
    status: &WorkflowRunStatus,
    decision: &Decision,
    now: jiff::Timestamp,
    resync: Duration,
) -> Duration {
    let mut wait = decision
        .wake_at
        .and_then(|w| w.duration_since(now).try_into().ok())
        .map(|d: Duration| d.min(resync))
        .unwrap_or(resync);
    if steps.iter().any(|s| {
        s.spark.is_some()
            && status
                .steps
                .iter()
                .any(|x| x.name == s.name && x.phase == Phase::Running)
    }) {
        wait = wait.min(SPARK_POLL);
    }
    wait.max(Duration::from_secs(1))
}

async fn reconcile(run: Arc<WorkflowRun>, rctx: Arc<RunContext>) -> Result<Action, Error> {
    let ctx = rctx.base.as_ref();
    let run = run.as_ref();
    namespace(run)?;
    let mut status = run.status.clone().unwrap_or_default();
    if status.phase.is_some_and(Phase::is_final) {
        return Ok(Action::await_change());
    }
    if run.annotations().contains_key(CANCEL_ANNOTATION) {
        return cancel(run, status, ctx).await;
    }
    let deps = match dereference(run, &status, ctx).await? {
        Ok(deps) => deps,
        Err(refusal) => return refuse(run, status, refusal, ctx).await,
    };
    if status.steps.is_empty() {
        let resumed = deps.resumed.as_ref();
        let resumed = resumed.map(|(n, s)| (n.as_str(), s.as_slice()));
        status.steps = dag::initial(&deps.workflow.spec.steps, resumed);
    }
    let now = jiff::Timestamp::now();
    let decision = match advance(run, &deps, &mut status, &rctx, now).await? {
        Ok(decision) => decision,
        Err(refusal) => return refuse(run, status, refusal, ctx).await,
    };
    let phase = conclude(run, &mut status, now);
    write(run, &status, ctx).await?;
    publish(run, &decision, phase, &status, ctx).await;
    if phase.is_final() {
        ctx.metrics.reconciled("WorkflowRun", "finished");
        return Ok(Action::await_change());
    }
    ctx.reset_backoff(&key(run));
    ctx.metrics.reconciled("WorkflowRun", "ok");
    let steps = &deps.workflow.spec.steps;
    Ok(Action::requeue(requeue_after(
        steps, &status, &decision, now, ctx.resync,
    )))
}

fn error_policy(run: Arc<WorkflowRun>, error: &Error, ctx: Arc<RunContext>) -> Action {
    tracing::warn!(run = %key(&run), %error, "reconcile failed");
    ctx.base.metrics.reconciled("WorkflowRun", "error");
    Action::requeue(ctx.base.backoff(&key(&run)))
}

/// Run the WorkflowRun controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    worker_image: String,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (runs, jobs): (Api<WorkflowRun>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let managed = watcher::Config::default().labels(LABEL_RUN);
    Controller::new(runs, watcher::Config::default())
        .owns(jobs, managed)
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            error_policy,
            Arc::new(RunContext {
                base: ctx,
                worker_image,
            }),
        )
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "workflowrun reconcile loop");
            }
        })
        .await;
}
