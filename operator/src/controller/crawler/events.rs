//! `spec.runOnEvents`: crawls started by bucket notifications (and, with the same machinery,
//! workflow runs requested by `event` triggers, see [`Owner`]).
//!
//! The operator configures each target bucket to send object-created notifications under the
//! target's prefix to its MinIO webhook target ([`crate::storage::notify`]); MinIO POSTs them
//! to the operator's event receiver ([`serve`]), which hands each key to the batchers of the
//! crawlers it belongs to. A batch is crawled when it holds `batchSize` keys or
//! `batchWindowSeconds` after its first key, by a Job named from a hash of its keys (so one
//! batch can never start two Jobs) whose keys come from a ConfigMap owned by that Job. A batch
//! waits while another crawl of the same crawler is running, and keys that arrive meanwhile join
//! the next batch. Batches live in the operator's memory: MinIO queues notifications while the
//! receiver is down (the target's `queue_dir`), and keys pending when the operator stops are
//! crawled by the next scheduled or on-demand run, which lists everything.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Client, Resource, ResourceExt};
use lakeform_api::common::FIELD_MANAGER;
use lakeform_api::crawler::Crawler;
use lakeform_api::datalake::DataLake;
use lakeform_api::workflow::Workflow;
use lakeform_worker::crawl::listing::{self, Excludes};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::super::context::Context;
use super::super::datalake::storage::secret_value;
use super::super::jobs::{JobState, job_event, job_state};
use crate::desired::connection::LakeEndpoints;
use crate::desired::crawler::{
    LABEL_CRAWLER, belongs_to, events_job, events_keys, events_keys_name, events_token, label_value,
};
use crate::desired::workflow_events;
use crate::storage::S3Connection;
use crate::storage::notify::{Rule, parse_webhook, webhook_arn};

/// Path of the event receiver that MinIO's webhook target posts to.
pub const WEBHOOK_PATH: &str = "/minio/events";
/// Keys queued per crawler between the receiver and its batcher.
const QUEUE: usize = 4096;
/// How often a full or expired batch that cannot start (another crawl runs) looks again.
const BUSY_RECHECK: Duration = Duration::from_secs(5);
/// How often a listener checks that its Crawler still exists.
const ALIVE_CHECK: Duration = Duration::from_secs(30);
/// Most bytes of keys in one batch (the ConfigMap that carries them holds at most 1 MiB).
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// One target of an event-driven crawler: bucket, prefix and the target's excludes.
pub struct Source {
    pub bucket: String,
    pub prefix: String,
    pub excludes: Excludes,
}

/// Who a batcher works for.
#[derive(Clone)]
pub enum Owner {
    /// A Crawler with `runOnEvents`: each batch is a crawl Job of the notified keys.
    Crawler(Crawler),
    /// A Workflow's `event` trigger: each batch is a request for a run (see
    /// [`crate::desired::workflow_events`]), started by the Workflow controller under the
    /// workflow's concurrency policy.
    Workflow { workflow: Workflow, trigger: String },
}

impl Owner {
    fn uid(&self) -> String {
        match self {
            Owner::Crawler(c) => c.uid().unwrap_or_default(),
            Owner::Workflow { workflow, trigger } => {
                format!("{}/{trigger}", workflow.uid().unwrap_or_default())
            }
        }
    }

    /// The key of its batcher in [`Subscriptions`].
    pub fn key(&self) -> String {
        match self {
            Owner::Crawler(c) => format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()),
            Owner::Workflow { workflow, trigger } => {
                format!("{}{trigger}", workflow_key_prefix(workflow))
            }
        }
    }

    /// Prefix of the ids of the bucket notification rules it owns.
    fn rule_prefix(&self) -> String {
        match self {
            Owner::Crawler(c) => format!(
                "lakeform:{}/{}:",
                c.namespace().unwrap_or_default(),
                c.name_any()
            ),
            Owner::Workflow { workflow, trigger } => format!(
                "lakeform-wf:{}/{}/{trigger}:",
                workflow.namespace().unwrap_or_default(),
                workflow.name_any()
            ),
        }
    }
}

/// Prefix of the batcher keys of a workflow's event triggers.
pub fn workflow_key_prefix(workflow: &Workflow) -> String {
    format!(
        "workflow:{}/{}/",
        workflow.namespace().unwrap_or_default(),
        workflow.name_any()
    )
}

/// Which keys an owner takes and how it batches them.
pub struct Plan {
    /// The Crawler or Workflow as last reconciled: owner, names and labels of what a batch
    /// creates.
    pub owner: Owner,
    /// Its DataLake (labels of the batch Jobs).
    pub lake: DataLake,
    pub sources: Vec<Source>,
    pub batch_size: usize,
    pub window: Duration,
    /// Image of the crawl Jobs.
    pub image: String,
}

impl Plan {
    /// A plan batching `batch_size` keys or `window_seconds` after a batch's first key (both at
    /// least 1).
    pub fn new(
        owner: Owner,
        lake: DataLake,
        sources: Vec<Source>,
        batch_size: i32,
        window_seconds: i32,
        image: String,
    ) -> Plan {
        Plan {
            owner,
            lake,
            sources,
            batch_size: usize::try_from(batch_size.max(1)).unwrap_or(1),
            window: Duration::from_secs(u64::try_from(window_seconds.max(1)).unwrap_or(1)),
            image,
        }
    }

    /// What identifies a batcher: a change restarts it (pending keys are then left to the
    /// next run).
    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.owner.uid(),
            self.lake.name_any(),
            self.batch_size.to_string(),
            self.window.as_secs().to_string(),
            self.image.clone(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for s in &self.sources {
            h.update(s.bucket.as_bytes());
            h.update([0]);
            h.update(s.prefix.as_bytes());
            h.update([0]);
        }
        if let Owner::Crawler(c) = &self.owner {
            for t in &c.spec.targets {
                h.update(t.exclude.join("\n").as_bytes());
                h.update([0]);
            }
        }
        hex::encode(h.finalize())
    }

    /// `bucket/key` of a notified key, if the key belongs to `source` and is not excluded.
    fn accept(source: &Source, key: &str) -> Option<String> {
        if !listing::in_target(&source.prefix, key)
            || listing::is_noise(key, 1)
            || source
                .excludes
                .excluded(listing::relative(&source.prefix, key))
        {
            return None;
        }
        Some(format!("{}/{key}", source.bucket))
    }
}

struct Subscription {
    fingerprint: String,
    plan: Arc<Plan>,
    tx: mpsc::Sender<Vec<String>>,
    task: JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The batchers of all event-driven crawlers, by crawler key.
#[derive(Default)]
pub struct Subscriptions {
    running: Mutex<HashMap<String, Subscription>>,
}

impl Subscriptions {
    /// Make sure a batcher runs `plan` for its owner (restarting it when the plan changed or it
    /// ended).
    pub fn ensure(&self, plan: Plan, ctx: Arc<Context>) {
        let key = plan.owner.key();
        let key = key.as_str();
        let fingerprint = plan.fingerprint();
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = running.get(key)
            && r.fingerprint == fingerprint
            && !r.task.is_finished()
        {
            return;
        }
        let plan = Arc::new(plan);
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(batch(plan.clone(), ctx, rx));
        tracing::info!(owner = key, "batching bucket notifications");
        running.insert(
            key.to_string(),
            Subscription {
                fingerprint,
                plan,
                tx,
                task,
            },
        );
    }

    /// Stop the batcher of `key`, if any. The buckets keep routing to the receiver, which
    /// drops keys no batcher takes.
    pub fn stop(&self, key: &str) {
        let removed = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if removed.is_some() {
            tracing::info!(owner = key, "stopped batching bucket notifications");
        }
    }

    /// Stop every batcher whose key starts with `prefix` except those in `keep`.
    pub fn stop_others(&self, prefix: &str, keep: &[String]) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<String> = running
            .keys()
            .filter(|k| k.starts_with(prefix) && !keep.contains(k))
            .cloned()
            .collect();
        for k in gone {
            running.remove(&k);
            tracing::info!(owner = %k, "stopped batching bucket notifications");
        }
    }

    /// Hand a notified `key` of `bucket` to every crawler whose targets hold it; how many took
    /// it.
    pub fn deliver(&self, bucket: &str, key: &str) -> usize {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = 0;
        for (crawler, sub) in running.iter() {
            let Some(full) = sub
                .plan
                .sources
                .iter()
                .filter(|s| s.bucket == bucket)
                .find_map(|s| Plan::accept(s, key))
            else {
                continue;
            };
            match sub.tx.try_send(vec![full]) {
                Ok(()) => taken += 1,
                Err(e) => tracing::warn!(
                    crawler = %crawler, bucket, key, error = %e,
                    "dropping a notification (the next full crawl picks the object up)"
                ),
            }
        }
        taken
    }
}

/// The event receiver's state.
#[derive(Clone)]
struct Receiver {
    subscriptions: Arc<Subscriptions>,
    /// Bearer token MinIO's webhook target sends (its `auth_token`); `None`: no check.
    token: Option<String>,
}

/// Serve the event receiver on `listener`: MinIO's webhook target POSTs notification
/// documents to [`WEBHOOK_PATH`]; other methods (MinIO's reachability checks) get 200.
pub async fn serve(
    listener: tokio::net::TcpListener,
    subscriptions: Arc<Subscriptions>,
    token: Option<String>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(WEBHOOK_PATH, any(receive))
        .with_state(Receiver {
            subscriptions,
            token,
        });
    tracing::info!(addr = ?listener.local_addr(), path = WEBHOOK_PATH, "receiving bucket notifications");
    axum::serve(listener, app).await
}

async fn receive(
    State(r): State<Receiver>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if let Some(token) = &r.token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v));
        if given != Some(token.as_str()) {
            return (StatusCode::UNAUTHORIZED, "bad or missing token\n".into());
        }
    }
    if method != axum::http::Method::POST || body.is_empty() {
        return (StatusCode::OK, String::new());
    }
    match parse_webhook(&body) {
        Ok(records) => {
            let mut taken = 0;
            for (bucket, key) in &records {
                taken += r.subscriptions.deliver(bucket, key);
            }
            tracing::debug!(
                records = records.len(),
                taken,
                "bucket notifications received"
            );
            (StatusCode::OK, String::new())
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("not a bucket notification document: {e}\n"),
        ),
    }
}

/// The lake's S3 endpoint and credentials, read from its Secret; `Err` says what is missing.
pub async fn connection(
    lake: &DataLake,
    client: &Client,
) -> Result<Result<S3Connection, String>, kube::Error> {
    let ns = lake.namespace().unwrap_or_default();
    let ep = LakeEndpoints::for_lake(lake);
    let c = &ep.credentials;
    let Some(secret) = Api::<Secret>::namespaced(client.clone(), &ns)
        .get_opt(&c.secret_name)
        .await?
    else {
        return Ok(Err(format!(
            "Secret {ns}/{} with the lake's storage credentials does not exist",
            c.secret_name
        )));
    };
    let value = |key: &str| {
        secret_value(&secret, key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (value(&c.access_key_id_key), value(&c.secret_access_key_key)) {
        (Some(access_key), Some(secret_key)) => Ok(Ok(S3Connection {
            endpoint: ep.s3_endpoint,
            region: ep.region,
            path_style: ep.path_style,
            access_key,
            secret_key,
        })),
        _ => Ok(Err(format!(
            "Secret {ns}/{} needs non-empty keys {:?} and {:?}",
            c.secret_name, c.access_key_id_key, c.secret_access_key_key
        ))),
    }
}

/// Point the notifications of each source's bucket and prefix at the webhook target `target`,
/// replacing the rules this owner set before (rule ids `lakeform:<ns>/<crawler>:<n>`,
/// `lakeform-wf:<ns>/<workflow>/<trigger>:<n>`).
pub async fn route(
    owner: &Owner,
    conn: &S3Connection,
    sources: &[Source],
    target: &str,
) -> Result<(), crate::storage::StorageError> {
    let owner = owner.rule_prefix();
    let storage = crate::storage::Storage::new(conn);
    let arn = webhook_arn(target);
    let mut buckets: Vec<&str> = sources.iter().map(|s| s.bucket.as_str()).collect();
    buckets.sort();
    buckets.dedup();
    for bucket in buckets {
        let rules: Vec<Rule> = sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.bucket == bucket)
            .map(|(i, s)| Rule {
                id: format!("{owner}{i}"),
                arn: arn.clone(),
                prefix: s.prefix.clone(),
            })
            .collect();
        if storage.ensure_notifications(bucket, &owner, &rules).await? {
            tracing::info!(bucket, arn = %arn, rules = rules.len(), "routed bucket notifications");
        }
    }
    Ok(())
}

/// Whether a batch could start.
enum Start {
    Started,
    /// Another crawl of this crawler is running, or the workflow has not taken the previous
    /// batch yet.
    Busy,
    /// The owner is gone (or was replaced): stop listening.
    Gone,
}

/// Collect keys into batches and start a crawl per batch, until the channel closes (the
/// subscription was replaced or stopped) or the Crawler is gone.
async fn batch(plan: Arc<Plan>, ctx: Arc<Context>, mut rx: mpsc::Receiver<Vec<String>>) {
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut first: Option<Instant> = None;
    let mut not_before = Instant::now();
    let mut alive_check = tokio::time::interval(ALIVE_CHECK);
    loop {
        let now = Instant::now();
        let full = pending.len() >= plan.batch_size;
        let expired = first.is_some_and(|f| now >= f + plan.window);
        if (full || expired) && now >= not_before {
            match start_batch(&plan, &ctx, &mut pending).await {
                Ok(Start::Started) => {
                    first = (!pending.is_empty()).then_some(now);
                    continue;
                }
                Ok(Start::Busy) => not_before = now + BUSY_RECHECK,
                Ok(Start::Gone) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not start an event batch; retrying");
                    not_before = now + BUSY_RECHECK;
                }
            }
        }
        let wake = if pending.len() >= plan.batch_size {
            Some(not_before)
        } else {
            first.map(|f| (f + plan.window).max(not_before))
        };
        tokio::select! {
            keys = rx.recv() => match keys {
                Some(keys) => {
                    if first.is_none() {
                        first = Some(Instant::now());
                    }
                    pending.extend(keys);
                }
                None => return,
            },
            _ = sleep_until(wake), if wake.is_some() => {}
            _ = alive_check.tick() => {
                if matches!(owner_gone(&plan, &ctx).await, Ok(true)) {
                    return;
                }
            }
        }
    }
}

async fn sleep_until(when: Option<Instant>) {
    if let Some(w) = when {
        tokio::time::sleep_until(w).await;
    }
}

async fn owner_gone(plan: &Plan, ctx: &Context) -> Result<bool, kube::Error> {
    match &plan.owner {
        Owner::Crawler(crawler) => {
            let ns = crawler.namespace().unwrap_or_default();
            let live = Api::<Crawler>::namespaced(ctx.client.clone(), &ns)
                .get_opt(&crawler.name_any())
                .await?;
            Ok(live.is_none_or(|c| c.uid() != crawler.uid()))
        }
        Owner::Workflow { workflow, trigger } => {
            let ns = workflow.namespace().unwrap_or_default();
            let live = Api::<Workflow>::namespaced(ctx.client.clone(), &ns)
                .get_opt(&workflow.name_any())
                .await?;
            Ok(live.is_none_or(|w| {
                w.uid() != workflow.uid()
                    || !w
                        .spec
                        .triggers
                        .iter()
                        .any(|t| &t.name == trigger && t.event.is_some())
            }))
        }
    }
}

/// The first keys of `pending` that make one batch: at most `size` keys and
/// [`MAX_BATCH_BYTES`] bytes (always at least one key).
fn next_batch(pending: &BTreeSet<String>, size: usize) -> Vec<String> {
    let mut bytes = 0;
    let mut keys = Vec::new();
    for k in pending.iter().take(size) {
        bytes += k.len() + 1;
        if !keys.is_empty() && bytes > MAX_BATCH_BYTES {
            break;
        }
        keys.push(k.clone());
    }
    keys
}

/// Start what the next batch asks for, unless the owner is busy.
async fn start_batch(
    plan: &Plan,
    ctx: &Context,
    pending: &mut BTreeSet<String>,
) -> Result<Start, kube::Error> {
    if owner_gone(plan, ctx).await? {
        return Ok(Start::Gone);
    }
    match &plan.owner {
        Owner::Crawler(crawler) => start_crawl(plan, crawler, ctx, pending).await,
        Owner::Workflow { workflow, trigger } => {
            request_run(plan, workflow, trigger, ctx, pending).await
        }
    }
}

/// Hand the next batch to the workflow: a ConfigMap with its keys and the
/// `lakeform.dev/event-batch` annotation, unless the previous batch was not taken yet.
async fn request_run(
    plan: &Plan,
    workflow: &Workflow,
    trigger: &str,
    ctx: &Context,
    pending: &mut BTreeSet<String>,
) -> Result<Start, kube::Error> {
    let ns = workflow.namespace().unwrap_or_default();
    let api: Api<Workflow> = Api::namespaced(ctx.client.clone(), &ns);
    let live = api.get(&workflow.name_any()).await?;
    if workflow_events::pending_batch(&live).is_some() {
        return Ok(Start::Busy);
    }
    let keys = next_batch(pending, plan.batch_size);
    let token = events_token(&keys);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let cm = workflow_events::batch_keys(&live, trigger, &token, &keys);
    match config_maps.create(&PostParams::default(), &cm).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let patch = serde_json::json!({"metadata": {"annotations": {
        workflow_events::BATCH_ANNOTATION: workflow_events::batch_value(trigger, &token)
    }}});
    api.patch(&workflow.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    for k in &keys {
        pending.remove(k);
    }
    tracing::info!(
        workflow = %workflow.name_any(), trigger, keys = keys.len(), token,
        "event batch handed to the workflow"
    );
    Ok(Start::Started)
}

/// Start the crawl of the next batch unless another crawl of the crawler is running.
async fn start_crawl(
    plan: &Plan,
    crawler: &Crawler,
    ctx: &Context,
    pending: &mut BTreeSet<String>,
) -> Result<Start, kube::Error> {
    let ns = crawler.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{LABEL_CRAWLER}={}", label_value(&crawler.name_any()));
    let busy = jobs
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .iter()
        .any(|j| belongs_to(j, crawler) && job_state(j) == JobState::Active);
    if busy {
        return Ok(Start::Busy);
    }
    let keys = next_batch(pending, plan.batch_size);
    let token = events_token(&keys);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let cm = events_keys(crawler, &plan.lake, &token, &keys);
    match config_maps.create(&PostParams::default(), &cm).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    let job = events_job(crawler, &plan.lake, &token, &plan.image);
    let name = job.name_any();
    let (created, job) = match jobs.create(&PostParams::default(), &job).await {
        Ok(j) => (true, j),
        Err(kube::Error::Api(s)) if s.code == 409 => (false, jobs.get(&name).await?),
        Err(e) => return Err(e),
    };
    // hand the keys to the Job so they go with it
    if let Some(owner) = job.controller_owner_ref(&()) {
        let owner = OwnerReference {
            controller: Some(false),
            ..owner
        };
        let patch = serde_json::json!({"metadata": {"ownerReferences": [owner]}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        config_maps
            .patch(
                &events_keys_name(crawler, &token),
                &params,
                &Patch::Merge(&patch),
            )
            .await?;
    }
    for k in &keys {
        pending.remove(k);
    }
    if created {
        job_event(
            ctx,
            crawler,
            &name,
            EventType::Normal,
            ("CrawlStarted", "Crawl"),
            format!(
                "{} notified object(s) (first {:?}): started Job {name}",
                keys.len(),
                keys[0]
            ),
        )
        .await;
    }
    Ok(Start::Started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(prefix: &str, exclude: &[&str]) -> Source {
        Source {
            bucket: "lake-raw".into(),
            prefix: prefix.into(),
            excludes: Excludes::new(&exclude.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("globs"),
        }
    }

    #[test]
    fn accepted_keys_are_in_the_target_and_not_excluded() {
        let s = source("landing/orders", &["**/*.tmp"]);
        assert_eq!(
            Plan::accept(&s, "landing/orders/2024/a.csv").as_deref(),
            Some("lake-raw/landing/orders/2024/a.csv")
        );
        assert_eq!(Plan::accept(&s, "landing/orders_old/a.csv"), None);
        assert_eq!(Plan::accept(&s, "landing/orders/x/a.tmp"), None);
        assert_eq!(Plan::accept(&s, "landing/orders/_SUCCESS"), None);
        assert!(Plan::accept(&source("", &[]), "any/key.json").is_some());
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let pending: BTreeSet<String> = (0..10).map(|i| format!("b/k{i}")).collect();
        assert_eq!(
            next_batch(&pending, 4),
            vec!["b/k0", "b/k1", "b/k2", "b/k3"]
        );
        let big: BTreeSet<String> = (0..3)
            .map(|i| format!("{i}{}", "x".repeat(MAX_BATCH_BYTES / 2)))
            .collect();
        assert_eq!(
            next_batch(&big, 100).len(),
            1,
            "two halves overflow the ConfigMap"
        );
        let huge: BTreeSet<String> = ["y".repeat(MAX_BATCH_BYTES * 2)].into();
        assert_eq!(
            next_batch(&huge, 100).len(),
            1,
            "a batch always takes one key"
        );
    }
}
