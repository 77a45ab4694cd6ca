//! Bucket notifications, shared by the Crawler controller (`spec.runOnEvents`: crawls started
//! by notified objects) and the Workflow controller (`event` triggers: runs requested by
//! notified objects, see [`Owner`]). Not a controller: both use it, it imports neither.
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
//!
//! - [`receiver`]: the HTTP endpoint MinIO posts to; hands keys to [`Subscriptions`].
//! - [`plan`]: what each owner takes ([`Plan`]) and the running batchers ([`Subscriptions`]).
//! - [`routing`]: the bucket notification rules that send an owner's keys to the receiver.
//! - [`batcher`]: collects keys into batches and starts a crawl Job or requests a run.

mod batcher;
mod plan;
mod receiver;
mod routing;

use std::time::Duration;

use kube::ResourceExt;
use lakeform_api::crawler::Crawler;
use lakeform_api::workflow::Workflow;
use lakeform_worker::crawl::listing::Excludes;

pub use plan::{Plan, Subscriptions};
pub use receiver::serve;
pub use routing::route;

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
