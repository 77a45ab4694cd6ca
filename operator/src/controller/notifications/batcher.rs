//! One batcher per owner: collects notified keys into batches and starts a crawl Job of a
//! batch (Crawler) or hands the batch to the Workflow controller (event trigger).

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ListParams, Patch, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::crawler::Crawler;
use lakeform_api::workflow::Workflow;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ALIVE_CHECK, BUSY_RECHECK, MAX_BATCH_BYTES, Owner, Plan};
use crate::controller::apply::merge_params;
use crate::controller::context::Context;
use crate::controller::jobs::{JobState, job_event, job_state};
use crate::desired::crawler::{
    LABEL_CRAWLER, belongs_to, events_job, events_keys, events_keys_name, events_token, label_value,
};
use crate::desired::workflow_events;

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
pub(super) async fn batch(plan: Arc<Plan>, ctx: Arc<Context>, mut rx: mpsc::Receiver<Vec<String>>) {
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
    let params = merge_params();
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
        let params = merge_params();
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
