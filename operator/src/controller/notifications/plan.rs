//! What each owner of notifications takes and how it batches them ([`Plan`]), and the
//! batchers running for them ([`Subscriptions`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use lakeform_api::datalake::DataLake;
use lakeform_worker::crawl::listing;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::batcher::batch;
use super::{Owner, QUEUE, Source};
use crate::controller::context::Context;

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

#[cfg(test)]
mod tests {
    use super::*;
    use lakeform_worker::crawl::listing::Excludes;

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
}
