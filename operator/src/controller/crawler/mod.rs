//! The Crawler reconciler: dereference (its DataLake) → validate → build (ServiceAccount, Role,
//! RoleBinding, CronJob) → apply → on-demand runs → status.
//!
//! The crawl itself runs in Jobs (`lakeform crawl --crawler <ns>/<name>`) that write
//! `status.lastRun`, `status.tables` and `status.tableCount`; this controller owns the other
//! status fields (`conditions`, `observedGeneration`, `lastRunToken`) under its own field
//! manager, so the two writers never undo each other.

pub mod runs;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{ListParams, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::{CONDITION_READY, find_condition};
use lakeform_api::crawler::Crawler;
use lakeform_api::datalake::DataLake;
use lakeform_api::validate::validate_crawler;

use super::apply::{Applier, HASH_ANNOTATION};
use super::context::Context;
pub use super::error::Error;
use super::error::{KubeResultExt, Refusal, namespace};
use super::jobs;
use super::lake::s3_connection;
use super::notifications;
use crate::controller::apply::merge_params;
use crate::desired::crawler as build;
use crate::desired::set::{DesiredSet, Ownership};
use runs::{OnDemand, Runs};
use status::StatusBuilder;

/// How often a crawler whose lake is not Ready looks again (lake changes also wake it).
const LAKE_RECHECK: Duration = Duration::from_secs(15);
/// How often an on-demand run waiting for an active run looks again.
const WAITING_RECHECK: Duration = Duration::from_secs(10);

/// What the crawler controller needs besides the shared context.
pub struct CrawlerContext {
    /// Shared client, recorder, metrics and settings.
    pub base: Arc<Context>,
    /// Image of the crawl pods (the `lakeform` binary).
    pub worker_image: String,
    /// Batchers of the crawlers with `runOnEvents` (shared with the event receiver).
    pub events: Arc<notifications::Subscriptions>,
    /// MinIO webhook target id whose notifications reach this operator's event receiver;
    /// `None` when the operator runs no receiver.
    pub events_target: Option<String>,
}

fn key(crawler: &Crawler) -> String {
    format!(
        "crawler:{}/{}",
        crawler.namespace().unwrap_or_default(),
        crawler.name_any()
    )
}

async fn reconcile(crawler: Arc<Crawler>, ctx: Arc<CrawlerContext>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = apply_crawler(&crawler, &ctx).await;
    ctx.base
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Which live objects a crawler's desired set speaks for: its CronJob, found by the crawler's
/// label. Its ServiceAccount, Role and RoleBinding are applied but never pruned (they go with
/// the Crawler, their owner).
fn ownership(crawler: &Crawler) -> Ownership {
    Ownership::new(format!(
        "app.kubernetes.io/managed-by=lakeform,{}={}",
        build::LABEL_CRAWLER,
        build::label_value(&crawler.name_any())
    ))
    .kind::<CronJob>()
}

/// Apply `set` (the crawler's objects, or none) and prune its CronJob when the set holds none
/// (its Jobs go with it).
async fn apply_set(crawler: &Crawler, ctx: &Context, set: DesiredSet) -> Result<(), Error> {
    let ns = namespace(crawler)?;
    let applied = Applier::new(&ctx.client, &ns).apply(set).await?;
    if !applied.pruned.is_empty() {
        tracing::info!(crawler = %key(crawler), pruned = ?applied.pruned, "pruned");
    }
    Ok(())
}

/// `spec.paused`: suspend the CronJob (and drop its applied hash so that unpausing applies it
/// again as the spec says).
async fn suspend_cronjob(crawler: &Crawler, ctx: &Context) -> Result<(), Error> {
    let ns = namespace(crawler)?;
    let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let name = build::cronjob_name(crawler);
    let Some(live) = api.get_opt(&name).await? else {
        return Ok(());
    };
    if live.spec.as_ref().and_then(|s| s.suspend) == Some(true)
        && !live.annotations().contains_key(HASH_ANNOTATION)
    {
        return Ok(());
    }
    let patch = serde_json::json!({
        "metadata": {"annotations": {HASH_ANNOTATION: null}},
        "spec": {"suspend": true},
    });
    let params = merge_params();
    api.patch(&name, &params, &Patch::Merge(&patch)).await?;
    Ok(())
}

/// `LakeNotReady` unless the DataLake's `Ready` condition is true.
fn lake_ready(lake: &DataLake) -> Result<(), Refusal> {
    let ready = lake
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, CONDITION_READY));
    let message = match ready {
        Some(c) if c.status == "True" => return Ok(()),
        Some(c) => format!(
            "DataLake {} is not Ready ({}: {})",
            lake.name_any(),
            c.reason,
            c.message
        ),
        None => format!("DataLake {} has no Ready condition yet", lake.name_any()),
    };
    Err(Refusal::new("LakeNotReady", message).retry_after(LAKE_RECHECK))
}

/// Reconcile a live Crawler: its runs, then dereference → validate → build + apply →
/// listen → on-demand run → status.
async fn apply_crawler(crawler: &Crawler, cctx: &CrawlerContext) -> Result<Action, Error> {
    let ctx = cctx.base.as_ref();
    let mut status = StatusBuilder::new(crawler);
    let runs = Runs::list(crawler, ctx).await?;
    tracing::debug!(crawler = %key(crawler), jobs = ?runs::summary(&runs), "reconciling");
    runs.report_failures(crawler, ctx).await?;
    status.running(&runs.active(), None);
    if crawler.spec.paused
        || crawler.spec.run_on_events.is_none()
        || crawler.meta().deletion_timestamp.is_some()
    {
        cctx.events.stop(&key(crawler));
    }
    if crawler.spec.paused {
        return pause(crawler, ctx, status).await;
    }
    let lake = match dereference_and_validate(crawler, ctx).await? {
        Ok(lake) => lake,
        Err((refusal, stage)) => return refuse(crawler, cctx, status, refusal, stage).await,
    };
    let (reason, mut message) = apply_objects(crawler, &lake, cctx).await?;
    let mut ready = Ok((reason, message.clone()));
    if let Some(batching) = &crawler.spec.run_on_events {
        match listen(crawler, &lake, batching, cctx).await? {
            Ok(listening) => {
                message.push_str(&format!("; {listening}"));
                ready = Ok((reason, message));
            }
            Err(refusal) => ready = Err(refusal),
        }
    }
    let action = on_demand(crawler, &lake, &runs, cctx, &mut status).await?;
    runs.prune_on_demand(crawler, ctx).await?;
    finish(crawler, ctx, status, ready).await?;
    Ok(action)
}

/// `spec.paused`: the CronJob suspended, `Paused` true, nothing else done.
async fn pause(
    crawler: &Crawler,
    ctx: &Context,
    mut status: StatusBuilder,
) -> Result<Action, Error> {
    suspend_cronjob(crawler, ctx).await?;
    status.paused();
    status.write(crawler, ctx).await?;
    ctx.metrics.reconciled("Crawler", "paused");
    Ok(Action::await_change())
}

/// The crawler's DataLake, once the spec is valid against it and it is Ready; a refusal says
/// why not, with the stage that refused (the event's action).
async fn dereference_and_validate(
    crawler: &Crawler,
    ctx: &Context,
) -> Result<Result<DataLake, (Refusal, &'static str)>, Error> {
    let ns = namespace(crawler)?;
    let lake_name = &crawler.spec.lake_ref.name;
    let lake = Api::<DataLake>::namespaced(ctx.client.clone(), &ns)
        .get_opt(lake_name)
        .await
        .during(|| format!("reading DataLake {ns}/{lake_name}"))?;
    // validate (without the lake, what can be checked alone)
    if let Err(errors) = validate_crawler(&crawler.spec, lake.as_ref().map(|l| &l.spec)) {
        return Ok(Err((
            Refusal::new("InvalidSpec", errors.to_string()),
            "Validate",
        )));
    }
    let Some(lake) = lake else {
        let message = format!(
            "DataLake {ns}/{lake_name} (spec.lakeRef.name) does not exist; the crawler starts \
             when it does"
        );
        let refusal = Refusal::new("LakeNotFound", message).retry_after(ctx.resync);
        return Ok(Err((refusal, "Dereference")));
    };
    Ok(lake_ready(&lake)
        .map(|()| lake)
        .map_err(|r| (r, "Dereference")))
}

/// A crawler that cannot run: no batcher; without a valid spec or a lake, no CronJob either;
/// `Ready=False` with the refusal, and a Warning event when that is news (`LakeNotReady` is a
/// wait, not news).
async fn refuse(
    crawler: &Crawler,
    cctx: &CrawlerContext,
    mut status: StatusBuilder,
    refusal: Refusal,
    stage: &str,
) -> Result<Action, Error> {
    let ctx = cctx.base.as_ref();
    cctx.events.stop(&key(crawler));
    let waiting = refusal.reason == "LakeNotReady";
    if !waiting {
        apply_set(crawler, ctx, DesiredSet::new(Some(ownership(crawler)))).await?;
    }
    status.ready(false, refusal.reason, refusal.message.clone());
    if status.write(crawler, ctx).await? && !waiting {
        refusal.event(ctx, &crawler.object_ref(&()), stage).await;
    }
    ctx.metrics.reconciled("Crawler", refusal.reason);
    Ok(refusal.action())
}

/// Identity and permissions first, then the schedule (CronJob, or none); the Ready reason and
/// message that describe how the crawler runs.
async fn apply_objects(
    crawler: &Crawler,
    lake: &DataLake,
    cctx: &CrawlerContext,
) -> Result<(&'static str, String), Error> {
    let ctx = cctx.base.as_ref();
    let mut set = DesiredSet::new(Some(ownership(crawler)));
    let built = |e: serde_json::Error| Error::Other(format!("serializing a crawler object: {e}"));
    set.add(&build::service_account(crawler, lake))
        .map_err(built)?;
    set.add(&build::role(crawler, lake)).map_err(built)?;
    set.add(&build::role_binding(crawler, lake))
        .map_err(built)?;
    let Some(schedule) = &crawler.spec.schedule else {
        apply_set(crawler, ctx, set).await?;
        let message = format!(
            "no schedule: runs when annotated {}=<token>",
            build::RUN_ANNOTATION
        );
        return Ok(("OnDemand", message));
    };
    let cronjob = build::cronjob(crawler, lake, schedule, &cctx.worker_image);
    set.add(&cronjob).map_err(built)?;
    apply_set(crawler, ctx, set).await?;
    let name = build::cronjob_name(crawler);
    if schedule.suspend {
        let message =
            format!("CronJob {name} is suspended (spec.schedule.suspend); runs on demand only");
        return Ok(("Suspended", message));
    }
    let tz = schedule.time_zone.as_deref().unwrap_or("UTC");
    let message = format!(
        "CronJob {name} runs the crawl at {:?} ({tz})",
        schedule.cron
    );
    Ok(("Scheduled", message))
}

/// Start the run of a pending on-demand token exactly once (or wait for the active run);
/// the controller's next action.
async fn on_demand(
    crawler: &Crawler,
    lake: &DataLake,
    runs: &Runs,
    cctx: &CrawlerContext,
    status: &mut StatusBuilder,
) -> Result<Action, Error> {
    let ctx = cctx.base.as_ref();
    let Some(token) = runs::pending_token(crawler) else {
        return Ok(Action::requeue(ctx.resync));
    };
    let active = runs.active();
    match runs::start_on_demand(crawler, lake, runs, &token, &cctx.worker_image, ctx).await? {
        OnDemand::Started { job, created } => {
            status.run_token(&token);
            let mut now_active = active;
            if created {
                now_active.push(job.clone());
            }
            status.running(&now_active, None);
            if created {
                let note = format!("on-demand run {token:?}: started Job {job}");
                let reason = ("CrawlStarted", "Crawl");
                jobs::job_event(ctx, crawler, &job, EventType::Normal, reason, note).await;
            }
            Ok(Action::requeue(ctx.resync))
        }
        OnDemand::Waiting => {
            status.running(&active, Some(&token));
            Ok(Action::requeue(WAITING_RECHECK))
        }
    }
}

/// Write `Ready` (true with how the crawler runs, or false with why events cannot start
/// crawls — a Warning event when that is news); the reconcile counts as done either way.
async fn finish(
    crawler: &Crawler,
    ctx: &Context,
    mut status: StatusBuilder,
    ready: Result<(&'static str, String), Refusal>,
) -> Result<(), Error> {
    let refusal = match ready {
        Ok((reason, message)) => {
            status.ready(true, reason, message);
            None
        }
        Err(refusal) => {
            status.ready(false, refusal.reason, refusal.message.clone());
            Some(refusal)
        }
    };
    if status.write(crawler, ctx).await?
        && let Some(refusal) = refusal
    {
        refusal.event(ctx, &crawler.object_ref(&()), "Listen").await;
    }
    ctx.reset_backoff(&key(crawler));
    ctx.metrics.reconciled("Crawler", "ok");
    Ok(())
}

/// Route the crawler's target buckets' notifications to this operator and keep its batcher
/// running. `Ok(Ok(text))` says what it crawls; a refusal (`EventsUnavailable`) why it cannot.
async fn listen(
    crawler: &Crawler,
    lake: &DataLake,
    batching: &lakeform_api::crawler::EventBatching,
    cctx: &CrawlerContext,
) -> Result<Result<String, Refusal>, Error> {
    let unavailable = |why: String| Ok(Err(Refusal::new("EventsUnavailable", why)));
    let Some(target) = &cctx.events_target else {
        cctx.events.stop(&key(crawler));
        return unavailable(
            "runOnEvents needs the operator's event receiver (lakeform run --events-address); \
             none is configured"
                .into(),
        );
    };
    let conn = match s3_connection(lake, &cctx.base.client).await? {
        Ok(c) => c,
        Err(refusal) => {
            cctx.events.stop(&key(crawler));
            let why = refusal.message;
            return unavailable(format!("cannot route bucket notifications: {why}"));
        }
    };
    let sources = match sources(crawler, lake) {
        Ok(sources) => sources,
        Err(why) => return unavailable(why),
    };
    let owner = notifications::Owner::Crawler(crawler.clone());
    if let Err(e) = notifications::route(&owner, &conn, &sources, target).await {
        cctx.events.stop(&key(crawler));
        return unavailable(format!(
            "cannot route bucket notifications to the operator: {e}"
        ));
    }
    let described: Vec<String> = sources
        .iter()
        .map(|s| format!("{}/{}", s.bucket, s.prefix))
        .collect();
    let plan = notifications::Plan::new(
        owner,
        lake.clone(),
        sources,
        batching.batch_size,
        batching.batch_window_seconds,
        cctx.worker_image.clone(),
    );
    cctx.events.ensure(plan, cctx.base.clone());
    Ok(Ok(format!(
        "crawls object-created notifications of {} in batches of {} key(s) or {}s",
        described.join(", "),
        batching.batch_size,
        batching.batch_window_seconds
    )))
}

/// The bucket and prefix of each target (with its excludes); `Err` says which exclude is bad.
fn sources(crawler: &Crawler, lake: &DataLake) -> Result<Vec<notifications::Source>, String> {
    let mut sources = Vec::new();
    for target in &crawler.spec.targets {
        let Some(bucket) = lake.zone_bucket(&target.zone) else {
            continue; // validation reports unknown zones before this point
        };
        let excludes = lakeform_worker::crawl::listing::Excludes::new(&target.exclude)
            .map_err(|e| e.to_string())?;
        sources.push(notifications::Source {
            bucket,
            prefix: target.prefix.clone(),
            excludes,
        });
    }
    Ok(sources)
}

fn error_policy(crawler: Arc<Crawler>, error: &Error, ctx: Arc<CrawlerContext>) -> Action {
    tracing::warn!(crawler = %key(&crawler), %error, "reconcile failed");
    ctx.base.metrics.reconciled("Crawler", "error");
    Action::requeue(ctx.base.backoff(&key(&crawler)))
}

/// Crawlers in `store` that refer to `lake`.
fn crawlers_of_lake(store: &Store<Crawler>, lake: &DataLake) -> Vec<ObjectRef<Crawler>> {
    store
        .state()
        .iter()
        .filter(|c| c.namespace() == lake.namespace())
        .filter(|c| Some(&c.spec.lake_ref.name) == lake.metadata.name.as_ref())
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// The crawler a Job runs for (from its crawler label, names as [`build::label_value`] made).
fn crawler_of_job(store: &Store<Crawler>, job: &Job) -> Vec<ObjectRef<Crawler>> {
    let Some(label) = job.labels().get(build::LABEL_CRAWLER) else {
        return vec![];
    };
    store
        .state()
        .iter()
        .filter(|c| c.namespace() == job.namespace())
        .filter(|c| &build::label_value(&c.name_any()) == label)
        .filter(|c| crate::desired::crawler::belongs_to(job, c))
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Run the Crawler controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    worker_image: String,
    events: Arc<notifications::Subscriptions>,
    events_target: Option<String>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    fn scoped<K>(c: &kube::Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(c.clone(), ns),
            None => Api::all(c.clone()),
        }
    }
    let crawlers: Api<Crawler> = scoped(&client, &namespace);
    if let Err(e) = crawlers.list(&ListParams::default().limit(1)).await {
        tracing::error!(error = %e, "Crawler CRD is not queryable; is crds/ installed?");
    }
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=lakeform");
    let controller = Controller::new(crawlers, watcher::Config::default());
    let store = controller.store();
    let jobs_store = store.clone();
    let cctx = Arc::new(CrawlerContext {
        base: ctx,
        worker_image,
        events,
        events_target,
    });
    controller
        .owns(scoped::<CronJob>(&client, &namespace), managed.clone())
        .watches(scoped::<Job>(&client, &namespace), managed, move |job| {
            crawler_of_job(&jobs_store, &job)
        })
        .watches(
            scoped::<DataLake>(&client, &namespace),
            watcher::Config::default(),
            move |lake| crawlers_of_lake(&store, &lake),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, cctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "crawler reconcile loop");
            }
        })
        .await;
}
