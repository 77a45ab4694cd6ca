//! What every reconciler shares: the client, the event recorder, metrics and settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};

use super::metrics::Metrics;

/// Shared state of the controllers.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Requeue interval of a healthy object (level-based resync).
    pub resync: Duration,
    /// The webhook target managed MinIOs deliver bucket notifications through (the operator
    /// runs an event receiver and was told how MinIO pods reach it); `None`: no target.
    pub minio_webhook: Option<crate::desired::minio::Webhook>,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// New context.
    pub fn new(
        client: Client,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        resync: Duration,
        minio_webhook: Option<crate::desired::minio::Webhook>,
    ) -> Self {
        Context {
            client,
            recorder,
            metrics,
            resync,
            minio_webhook,
            failures: Mutex::default(),
        }
    }

    /// Record a failure of `key` and return how long to wait before retrying:
    /// 2 s, 4 s, 8 s, … capped at 5 minutes.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(2u64.saturating_pow((*n).min(9))).min(Duration::from_secs(300))
    }

    /// Forget the failures of `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Publish an event; failures to publish are logged, never fatal.
    pub async fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, reference).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}
