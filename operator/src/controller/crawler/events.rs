//! `spec.runOnEvents`: crawls started by bucket notifications.
//!
//! For each such Crawler the operator holds one MinIO notification stream per target
//! ([`crate::storage::notify`]) and batches the created keys. A batch is crawled when it holds
//! `batchSize` keys or `batchWindowSeconds` after its first key, by a Job named from a hash of
//! its keys (so one batch can never start two Jobs) whose keys come from a ConfigMap owned by
//! that Job. A batch waits while another crawl of the same crawler is running, and keys that
//! arrive meanwhile join the next batch. Batches live in the operator's memory: keys notified
//! while no operator listens (or pending when it restarts) are crawled by the next scheduled or
//! on-demand run, which lists everything.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Client, Resource, ResourceExt};
use lakeform_api::common::FIELD_MANAGER;
use lakeform_api::crawler::Crawler;
use lakeform_api::datalake::DataLake;
use lakeform_worker::crawl::listing::{self, Excludes};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::super::context::Context;
use super::runs::{JobState, belongs_to, job_event, job_state};
use crate::build::crawler::{
    LABEL_CRAWLER, events_job, events_keys, events_keys_name, events_token, label_value,
};
use crate::build::minio;
use crate::storage::S3Connection;
use crate::storage::notify::Listener;

/// How long a reconcile waits for a new listener's first connection before reporting.
pub const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// How often a full or expired batch that cannot start (another crawl runs) looks again.
const BUSY_RECHECK: Duration = Duration::from_secs(5);
/// How often a listener checks that its Crawler still exists.
const ALIVE_CHECK: Duration = Duration::from_secs(30);
/// Longest pause between two attempts to reopen a notification stream.
const MAX_REOPEN_DELAY: Duration = Duration::from_secs(60);
/// Most bytes of keys in one batch (the ConfigMap that carries them holds at most 1 MiB).
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// The state of a crawler's notification streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenState {
    /// Opening the streams.
    Connecting,
    /// Every stream is open.
    Listening,
    /// A stream could not be opened (it is retried with backoff).
    Failed(String),
}

/// One target's notification stream: bucket, prefix and the target's excludes.
pub struct Source {
    pub bucket: String,
    pub prefix: String,
    pub excludes: Excludes,
}

/// What a crawler listens to and how it batches.
pub struct Plan {
    /// The Crawler as last reconciled: owner, names and labels of the batch Jobs.
    pub crawler: Crawler,
    /// Its DataLake (labels of the batch Jobs).
    pub lake: DataLake,
    /// The lake's S3 endpoint and credentials.
    pub conn: S3Connection,
    pub sources: Vec<Source>,
    pub batch_size: usize,
    pub window: Duration,
    /// Image of the crawl Jobs.
    pub image: String,
}

impl Plan {
    /// What identifies a listener: a change restarts it (pending keys are then left to the
    /// next run).
    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.crawler.uid().unwrap_or_default(),
            self.lake.name_any(),
            self.conn.endpoint.clone(),
            self.conn.region.clone(),
            self.conn.access_key.clone(),
            self.conn.secret_key.clone(),
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
        for t in &self.crawler.spec.targets {
            h.update(t.exclude.join("\n").as_bytes());
            h.update([0]);
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

struct Running {
    fingerprint: String,
    state: Arc<Mutex<ListenState>>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The listeners of all event-driven crawlers, by crawler key.
#[derive(Default)]
pub struct Listeners {
    running: Mutex<HashMap<String, Running>>,
}

impl Listeners {
    /// Make sure a listener runs `plan` for `key` (restarting it when the plan changed or it
    /// ended) and return its state.
    pub fn ensure(&self, key: &str, plan: Plan, ctx: Arc<Context>) -> Arc<Mutex<ListenState>> {
        let fingerprint = plan.fingerprint();
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = running.get(key)
            && r.fingerprint == fingerprint
            && !r.task.is_finished()
        {
            return r.state.clone();
        }
        let state = Arc::new(Mutex::new(ListenState::Connecting));
        let task = tokio::spawn(listen(Arc::new(plan), ctx, state.clone()));
        tracing::info!(crawler = key, "listening for bucket notifications");
        running.insert(
            key.to_string(),
            Running {
                fingerprint,
                state: state.clone(),
                task,
            },
        );
        state
    }

    /// Stop the listener of `key`, if any.
    pub fn stop(&self, key: &str) {
        let removed = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if removed.is_some() {
            tracing::info!(crawler = key, "stopped listening for bucket notifications");
        }
    }
}

fn read_state(state: &Mutex<ListenState>) -> ListenState {
    state.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn set_state(state: &Mutex<ListenState>, new: ListenState) {
    *state.lock().unwrap_or_else(|p| p.into_inner()) = new;
}

/// The state once it left `Connecting`, or `Connecting` after `wait`.
pub async fn settled(state: &Mutex<ListenState>, wait: Duration) -> ListenState {
    let deadline = Instant::now() + wait;
    loop {
        let s = read_state(state);
        if s != ListenState::Connecting || Instant::now() >= deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lake's S3 endpoint and credentials, read from its Secret; `Err` says what is missing.
pub async fn connection(
    lake: &DataLake,
    client: &Client,
) -> Result<Result<S3Connection, String>, kube::Error> {
    let ns = lake.namespace().unwrap_or_default();
    let (endpoint, region, secret_name, keys) = match &lake.spec.storage.external {
        Some(ext) => (
            ext.endpoint.clone(),
            ext.region.clone(),
            ext.credentials.secret_name.clone(),
            (
                ext.credentials.access_key_id_key.clone(),
                ext.credentials.secret_access_key_key.clone(),
            ),
        ),
        None => (
            minio::endpoint(lake),
            "us-east-1".to_string(),
            minio::secret_name(lake),
            (minio::USER_KEY.to_string(), minio::PASSWORD_KEY.to_string()),
        ),
    };
    let Some(secret) = Api::<Secret>::namespaced(client.clone(), &ns)
        .get_opt(&secret_name)
        .await?
    else {
        return Ok(Err(format!(
            "Secret {ns}/{secret_name} with the lake's storage credentials does not exist"
        )));
    };
    let value = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key).cloned())
            })
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (value(&keys.0), value(&keys.1)) {
        (Some(access_key), Some(secret_key)) => Ok(Ok(S3Connection {
            endpoint,
            region,
            path_style: true,
            access_key,
            secret_key,
        })),
        _ => Ok(Err(format!(
            "Secret {ns}/{secret_name} needs non-empty keys {:?} and {:?}",
            keys.0, keys.1
        ))),
    }
}

/// The listener task: one reader per source feeding the batcher.
async fn listen(plan: Arc<Plan>, ctx: Arc<Context>, state: Arc<Mutex<ListenState>>) {
    let listener = match Listener::new(&plan.conn) {
        Ok(l) => l,
        Err(e) => {
            set_state(&state, ListenState::Failed(e.to_string()));
            return;
        }
    };
    let (tx, rx) = mpsc::channel::<Vec<String>>(64);
    let open = Arc::new(Mutex::new(0usize));
    let mut readers = JoinSet::new();
    for i in 0..plan.sources.len() {
        readers.spawn(read(
            listener.clone(),
            plan.clone(),
            i,
            tx.clone(),
            state.clone(),
            open.clone(),
        ));
    }
    drop(tx);
    batch(plan, ctx, rx).await;
    // dropping `readers` stops them
}

/// Keep the stream of `plan.sources[index]` open and send its accepted keys.
async fn read(
    listener: Listener,
    plan: Arc<Plan>,
    index: usize,
    tx: mpsc::Sender<Vec<String>>,
    state: Arc<Mutex<ListenState>>,
    open: Arc<Mutex<usize>>,
) {
    let source = &plan.sources[index];
    let total = plan.sources.len();
    let mut delay = Duration::from_secs(1);
    loop {
        match listener.open(&source.bucket, &source.prefix).await {
            Ok(mut stream) => {
                delay = Duration::from_secs(1);
                {
                    let mut n = open.lock().unwrap_or_else(|p| p.into_inner());
                    *n += 1;
                    if *n >= total {
                        set_state(&state, ListenState::Listening);
                    }
                }
                let end = loop {
                    match stream.next_keys().await {
                        Ok(Some(keys)) => {
                            let accepted: Vec<String> = keys
                                .iter()
                                .filter_map(|k| Plan::accept(source, k))
                                .collect();
                            if !accepted.is_empty() && tx.send(accepted).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break None,
                        Err(e) => break Some(e.to_string()),
                    }
                };
                *open.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                match end {
                    Some(e) => {
                        tracing::warn!(bucket = %source.bucket, error = %e, "notification stream broke; reopening");
                    }
                    None => {
                        tracing::debug!(bucket = %source.bucket, "notification stream closed; reopening");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(bucket = %source.bucket, error = %e, "cannot open the notification stream");
                set_state(&state, ListenState::Failed(e.to_string()));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_REOPEN_DELAY);
    }
}

/// Whether a batch could start.
enum Start {
    Started,
    /// Another crawl of this crawler is running.
    Busy,
    /// The Crawler is gone (or was replaced): stop listening.
    Gone,
}

/// Collect keys into batches and start a crawl per batch.
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
                    tracing::warn!(error = %e, "could not start an event-batch crawl; retrying");
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
                if matches!(crawler_gone(&plan, &ctx).await, Ok(true)) {
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

async fn crawler_gone(plan: &Plan, ctx: &Context) -> Result<bool, kube::Error> {
    let ns = plan.crawler.namespace().unwrap_or_default();
    let live = Api::<Crawler>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&plan.crawler.name_any())
        .await?;
    Ok(live.is_none_or(|c| c.uid() != plan.crawler.uid()))
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

/// Start the crawl of the next batch unless another crawl of the crawler is running.
async fn start_batch(
    plan: &Plan,
    ctx: &Context,
    pending: &mut BTreeSet<String>,
) -> Result<Start, kube::Error> {
    if crawler_gone(plan, ctx).await? {
        return Ok(Start::Gone);
    }
    let crawler = &plan.crawler;
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
            "CrawlStarted",
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
