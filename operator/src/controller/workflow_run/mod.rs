//! The WorkflowRun reconciler: dereference (its Workflow, the DataLake, the run it resumes) →
//! advance the step DAG ([`dag`]) with what the step Jobs did → create the Jobs of the attempts
//! that start → status, and an event per step transition. A finished run is final.

pub mod dag;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::{CONDITION_READY, Conditions, condition, set_condition};
use lakeform_api::datalake::DataLake;
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::{Phase, StepStatus, WorkflowRun, WorkflowRunStatus};
use serde_json::json;

use super::apply::replacing_patch;
use super::context::Context;
use super::jobs::{JobState, job_state};
use crate::desired::spark::{self, SparkState};
use crate::desired::workflow::{
    CANCEL_ANNOTATION, LABEL_RUN, LABEL_WORKFLOW, label_value, step_job, step_job_name,
};
use dag::{Attempt, Decision};

/// Field manager of run status writes.
const FIELD_MANAGER: &str = "lakeform-workflowrun-controller";
/// How often a run waiting for its DataLake looks again.
const WAITING_RECHECK: Duration = Duration::from_secs(10);
/// How often a running spark step's SparkApplication is looked at.
const SPARK_POLL: Duration = Duration::from_secs(10);

/// Errors that end a reconcile without a verdict (API failures); retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("WorkflowRun has no namespace")]
    NoNamespace,
}

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

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Write `status` unless it equals the live one.
async fn write(run: &WorkflowRun, status: &WorkflowRunStatus, ctx: &Context) -> Result<(), Error> {
    if run.status.as_ref() == Some(status) {
        return Ok(());
    }
    let ns = run.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &ns);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch_status(
        &run.name_any(),
        &params,
        &Patch::Merge(&json!({ "status": replacing_patch(
            &serde_json::to_value(&run.status).unwrap_or_default(),
            serde_json::to_value(status).unwrap_or_default(),
        ) })),
    )
    .await?;
    Ok(())
}

fn set_ready(
    conditions: &mut Conditions,
    run: &WorkflowRun,
    ok: bool,
    reason: &str,
    message: String,
) {
    set_condition(
        conditions,
        condition(
            CONDITION_READY,
            ok,
            reason,
            message,
            run.metadata.generation,
            Time(now()),
        ),
    );
}

async fn event(ctx: &Context, run: &WorkflowRun, type_: EventType, reason: &str, note: String) {
    ctx.event(&run.object_ref(&()), type_, reason, "Run", note)
        .await;
}

/// End the run as `Failed` before any step ran (what it needs is missing or invalid).
async fn fail(
    run: &WorkflowRun,
    mut status: WorkflowRunStatus,
    reason: &str,
    message: String,
    ctx: &Context,
) -> Result<Action, Error> {
    let first = status.phase != Some(Phase::Failed);
    status.phase = Some(Phase::Failed);
    status.message = Some(message.clone());
    status.completion_time.get_or_insert(Time(now()));
    status.observed_generation = run.metadata.generation;
    set_ready(&mut status.conditions, run, false, reason, message.clone());
    write(run, &status, ctx).await?;
    if first {
        event(ctx, run, EventType::Warning, reason, message).await;
    }
    Ok(Action::await_change())
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
    let ns = run.namespace().ok_or(Error::NoNamespace)?;
    let patch = json!({"metadata": {
        "labels": {LABEL_WORKFLOW: label},
        "ownerReferences": owners,
    }});
    Api::<WorkflowRun>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &run.name_any(),
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// The Jobs of this run, by name.
async fn jobs(run: &WorkflowRun, ctx: &Context) -> Result<BTreeMap<String, Job>, Error> {
    let ns = run.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{LABEL_RUN}={}", label_value(&run.name_any()));
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
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
    let ns = run.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &spark::resource());
    let selector = format!("{LABEL_RUN}={}", label_value(&run.name_any()));
    let list = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(l) => l,
        // the Spark Operator's CRD is gone: the steps' applications are missing
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
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

/// `concurrencyPolicy: Replace` (or a user) asked the run to stop: delete its active Jobs and
/// cancel every unfinished step.
async fn cancel(
    run: &WorkflowRun,
    mut status: WorkflowRunStatus,
    ctx: &Context,
) -> Result<Action, Error> {
    let ns = run.namespace().ok_or(Error::NoNamespace)?;
    let apps: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &spark::resource());
    for (name, app) in owned_spark_apps(run, ctx).await? {
        if spark::state(&app) == SparkState::Running {
            match apps.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    for (name, job) in jobs(run, ctx).await? {
        if job_state(&job) == JobState::Active {
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let t = Time(now());
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
    set_ready(
        &mut status.conditions,
        run,
        false,
        "Cancelled",
        format!("cancelled: {message}"),
    );
    write(run, &status, ctx).await?;
    event(ctx, run, EventType::Normal, "RunCancelled", message).await;
    Ok(Action::await_change())
}

async fn reconcile(run: Arc<WorkflowRun>, rctx: Arc<RunContext>) -> Result<Action, Error> {
    let ctx = rctx.base.as_ref();
    let run = run.as_ref();
    let ns = run.namespace().ok_or(Error::NoNamespace)?;
    let mut status = run.status.clone().unwrap_or_default();
    if status.phase.is_some_and(Phase::is_final) {
        return Ok(Action::await_change());
    }
    if run.annotations().contains_key(CANCEL_ANNOTATION) {
        return cancel(run, status, ctx).await;
    }

    // dereference
    let wf_name = &run.spec.workflow_ref.name;
    let Some(workflow) = Api::<Workflow>::namespaced(ctx.client.clone(), &ns)
        .get_opt(wf_name)
        .await?
    else {
        let m = format!("Workflow {ns}/{wf_name} (spec.workflowRef.name) does not exist");
        return fail(run, status, "WorkflowNotFound", m, ctx).await;
    };
    adopt(run, &workflow, ctx).await?;
    if workflow.spec.blueprint_ref.is_some() {
        let m = format!(
            "Workflow {wf_name} is expanded from a Blueprint, which this lakeform version cannot \
             expand yet"
        );
        return fail(run, status, "BlueprintNotSupported", m, ctx).await;
    }
    let lake_name = &workflow.spec.lake_ref.name;
    let Some(lake) = Api::<DataLake>::namespaced(ctx.client.clone(), &ns)
        .get_opt(lake_name)
        .await?
    else {
        set_ready(
            &mut status.conditions,
            run,
            false,
            "LakeNotFound",
            format!("DataLake {ns}/{lake_name} of Workflow {wf_name} does not exist; waiting"),
        );
        status.observed_generation = run.metadata.generation;
        write(run, &status, ctx).await?;
        return Ok(Action::requeue(WAITING_RECHECK));
    };
    let steps = &workflow.spec.steps;
    if status.steps.is_empty() {
        let resumed = match &run.spec.resume_from {
            Some(r) => match Api::<WorkflowRun>::namespaced(ctx.client.clone(), &ns)
                .get_opt(&r.name)
                .await?
            {
                Some(old) => Some((r.name.clone(), old.status.unwrap_or_default().steps)),
                None => {
                    let m = format!(
                        "spec.resumeFrom: WorkflowRun {ns}/{} does not exist",
                        r.name
                    );
                    return fail(run, status, "ResumeFromNotFound", m, ctx).await;
                }
            },
            None => None,
        };
        status.steps = dag::initial(
            steps,
            resumed.as_ref().map(|(n, s)| (n.as_str(), s.as_slice())),
        );
    }

    // advance with what the Jobs did; start attempts (a step that cannot become a Job fails
    // at once, and the DAG is advanced again so its dependents are decided in this pass)
    let live = jobs(run, ctx).await?;
    let apps = spark_apps(run, &workflow, ctx).await?;
    let mut seen = attempts(run, &status.steps, &live, &apps);
    let mut decision = Decision::default();
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    for _ in 0..=steps.len() {
        let d = match dag::advance(steps, &mut status.steps, &seen, now()) {
            Ok(d) => d,
            Err(m) => return fail(run, status, "InvalidSpec", m, ctx).await,
        };
        seen.clear();
        let mut again = false;
        for start in &d.starts {
            let Some(step) = steps.iter().find(|s| s.name == start.step) else {
                continue;
            };
            let Some(st) = status.steps.iter_mut().find(|s| s.name == start.step) else {
                continue;
            };
            if let Some(app) = spark::application(&workflow, run, &lake, step, start.attempt) {
                st.job_name = app.metadata.name.clone();
                let api: Api<DynamicObject> =
                    Api::namespaced_with(ctx.client.clone(), &ns, &spark::resource());
                match api.create(&PostParams::default(), &app).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        let m = format!(
                            "the SparkApplication resource ({}) does not exist: install the Kubeflow Spark Operator",
                            spark::CRD_NAME
                        );
                        seen.insert(start.step.clone(), Attempt::Failed(m));
                        st.attempts = st.attempts.max(1 + step.retries.max(0));
                        again = true;
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            match step_job(
                &workflow,
                run,
                &lake,
                step,
                start.attempt,
                &rctx.worker_image,
            ) {
                Ok(job) => {
                    st.job_name = job.metadata.name.clone();
                    match job_api.create(&PostParams::default(), &job).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => {
                    seen.insert(start.step.clone(), Attempt::Failed(e.to_string()));
                    // no retry can help: use up the attempts
                    st.attempts = st.attempts.max(1 + step.retries.max(0));
                    again = true;
                }
            }
        }
        decision.starts.extend(d.starts);
        decision.transitions.extend(d.transitions);
        decision.wake_at = match (decision.wake_at, d.wake_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if !again {
            break;
        }
    }

    // status
    let phase = dag::run_phase(&status.steps);
    status.phase = Some(phase);
    status.observed_generation = run.metadata.generation;
    status.start_time = status
        .steps
        .iter()
        .filter_map(|s| s.start_time.clone())
        .min_by_key(|t| t.0)
        .or(status.start_time);
    let failed: Vec<String> = status
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Failed)
        .map(|s| format!("{}: {}", s.name, s.message.clone().unwrap_or_default()))
        .collect();
    match phase {
        Phase::Succeeded => {
            status.completion_time.get_or_insert(Time(now()));
            status.message = None;
            set_ready(
                &mut status.conditions,
                run,
                true,
                "Succeeded",
                "every step finished".into(),
            );
        }
        Phase::Failed => {
            status.completion_time.get_or_insert(Time(now()));
            status.message = Some(failed.join("; "));
            set_ready(
                &mut status.conditions,
                run,
                false,
                "StepFailed",
                failed.join("; "),
            );
        }
        _ => {
            let running: Vec<&str> = status
                .steps
                .iter()
                .filter(|s| matches!(s.phase, Phase::Running | Phase::Retrying))
                .map(|s| s.name.as_str())
                .collect();
            set_ready(
                &mut status.conditions,
                run,
                true,
                "Running",
                format!("running: {}", running.join(", ")),
            );
        }
    }
    write(run, &status, ctx).await?;
    for t in &decision.transitions {
        let (type_, reason) = match t.phase {
            Phase::Running => (EventType::Normal, "StepStarted"),
            Phase::Succeeded => (EventType::Normal, "StepSucceeded"),
            Phase::Retrying => (EventType::Warning, "StepRetrying"),
            Phase::Failed => (EventType::Warning, "StepFailed"),
            Phase::Skipped => (EventType::Normal, "StepSkipped"),
            Phase::Cancelled | Phase::Pending => (EventType::Normal, "StepChanged"),
        };
        event(
            ctx,
            run,
            type_,
            reason,
            format!("step {}: {}", t.step, t.message),
        )
        .await;
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
        ctx.metrics.reconciled("WorkflowRun", "finished");
        return Ok(Action::await_change());
    }
    ctx.reset_backoff(&key(run));
    ctx.metrics.reconciled("WorkflowRun", "ok");
    let mut wait = decision
        .wake_at
        .and_then(|w| w.duration_since(now()).try_into().ok())
        .map(|d: Duration| d.min(ctx.resync))
        .unwrap_or(ctx.resync);
    // SparkApplications are not watched (their CRD may come and go): poll running ones
    if steps.iter().any(|s| {
        s.spark.is_some()
            && status
                .steps
                .iter()
                .any(|x| x.name == s.name && x.phase == Phase::Running)
    }) {
        wait = wait.min(SPARK_POLL);
    }
    Ok(Action::requeue(wait.max(Duration::from_secs(1))))
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
