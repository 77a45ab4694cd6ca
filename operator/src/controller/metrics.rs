//! Prometheus metrics and the `/metrics`, `/healthz` and `/readyz` endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of reconcile metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Kind reconciled.
    pub kind: String,
    /// `ok`, or the condition reason of the failure.
    pub result: String,
}

/// Labels of storage write metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// What was written (`bucket`, `versioning`, `lifecycle`, …).
    pub what: String,
}

/// All operator metrics.
pub struct Metrics {
    registry: Registry,
    /// Reconciliations by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile durations in seconds.
    pub duration: Histogram,
    /// Writes to object storage (a resync with nothing changed adds none).
    pub storage_writes: Family<WriteLabels, Counter>,
    /// Writes to the Iceberg REST catalog.
    pub catalog_writes: Family<WriteLabels, Counter>,
    /// True while this replica leads and runs controllers.
    pub leading: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lakeform");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let storage_writes = Family::<WriteLabels, Counter>::default();
        let catalog_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciliations by kind and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            duration.clone(),
        );
        registry.register(
            "storage_writes",
            "Write requests sent to object storage",
            storage_writes.clone(),
        );
        registry.register(
            "catalog_writes",
            "Write requests sent to the Iceberg REST catalog",
            catalog_writes.clone(),
        );
        Metrics {
            registry,
            reconciles,
            duration,
            storage_writes,
            catalog_writes,
            leading: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    /// Count one reconciliation.
    pub fn reconciled(&self, kind: &str, result: &str) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.into(),
                result: result.into(),
            })
            .inc();
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> (StatusCode, String) {
    match m.render() {
        Ok(text) => (StatusCode::OK, text),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn ready(State(m): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if m.leading.load(Ordering::Relaxed) {
        (StatusCode::OK, "leading")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "standby")
    }
}

/// Serve the endpoints until the process ends.
pub async fn serve(addr: SocketAddr, m: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(m);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app).await
}
