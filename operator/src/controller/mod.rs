//! The operator process: leader election, controllers, metrics and health endpoints,
//! graceful shutdown.

pub mod apply;
pub mod blueprint;
pub mod context;
pub mod crawler;
pub mod datalake;
pub mod error;
pub mod jobs;
pub mod lake;
pub mod leader;
pub mod metrics;
pub mod notifications;
pub mod workflow;
pub mod workflow_run;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Config};
use tokio::task::JoinHandle;

use self::context::Context;
use self::leader::Election;
use self::metrics::Metrics;

/// Settings of `lakeform run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Kubeconfig file; unset: in-cluster config or `KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
    /// Watch only these namespaces; empty: all namespaces.
    pub namespaces: Vec<String>,
    /// Address of /metrics, /healthz, /readyz.
    pub metrics_address: SocketAddr,
    /// Resync interval of healthy objects.
    pub resync: Duration,
    /// Leader election Lease (namespace, name); None disables election.
    pub lease: Option<(String, String)>,
    /// This replica's identity in the election and in events.
    pub identity: String,
    /// Image of the Jobs that run crawls (and other worker subcommands).
    pub worker_image: String,
    /// Address of the bucket-notification receiver; `None`: no receiver, so `runOnEvents`
    /// crawlers report that they cannot run.
    pub events_address: Option<std::net::SocketAddr>,
    /// MinIO webhook target id that delivers to the receiver.
    pub events_target: String,
    /// Bearer token the webhook target sends; `None`: requests are not checked.
    pub events_token: Option<String>,
    /// Base URL at which managed MinIO pods reach the event receiver (its Service); with it,
    /// managed MinIOs get the webhook target in their environment.
    pub events_url: Option<String>,
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested");
}

/// Where each controller runs: one scope per watched namespace (listed once, blanks ignored),
/// or all namespaces (`None`) when none is listed. A kube-runtime watcher sees one namespace or
/// all of them, so watching a list means one controller per namespace; they share the context.
fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    let listed: BTreeSet<&str> = namespaces
        .iter()
        .map(|ns| ns.trim())
        .filter(|ns| !ns.is_empty())
        .collect();
    if listed.is_empty() {
        return vec![None];
    }
    listed.into_iter().map(|ns| Some(ns.to_string())).collect()
}

/// Spawn one task that runs `controller` in every scope and ends when they all have.
fn spawn_per_scope<F, Fut>(scopes: &[Option<String>], controller: F) -> JoinHandle<()>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runs: Vec<Fut> = scopes.iter().cloned().map(controller).collect();
    tokio::spawn(async move {
        futures::future::join_all(runs).await;
    })
}

/// Run the operator until SIGTERM/SIGINT (or until leadership is lost, which is an error):
/// serve metrics → win the election → start the event receiver and the controllers → wait.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let client = client(opts.kubeconfig.as_ref()).await?;
    let metrics = Arc::new(Metrics::default());
    let server = tokio::spawn(metrics::serve(opts.metrics_address, metrics.clone()));
    let mut lost = match &opts.lease {
        Some(lease) => tokio::select! {
            rx = election(lease, &opts.identity).acquire(client.clone()) => Some(rx),
            _ = shutdown_signal() => return Ok(()),
        },
        None => None,
    };
    metrics.leading.store(true, Ordering::Relaxed);
    let ctx = Arc::new(context(client, metrics, &opts));
    let subscriptions = Arc::new(notifications::Subscriptions::default());
    let receiver = match opts.events_address {
        Some(addr) => Some(receiver(addr, subscriptions.clone(), &opts).await?),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let controllers = controllers(&ctx, subscriptions, &opts, stop_rx);
    let leadership_lost = async {
        match lost.as_mut() {
            Some(rx) => {
                let _ = rx.wait_for(|leading| !*leading).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let result = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        _ = leadership_lost => Err(anyhow::anyhow!("lost leadership; exiting so that only one replica writes")),
    };
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(20), controllers).await;
    server.abort();
    if let Some(r) = receiver {
        r.abort();
    }
    result
}

/// The leader election of `lease` (namespace, name) under `identity`.
fn election(lease: &(String, String), identity: &str) -> Election {
    Election {
        namespace: lease.0.clone(),
        name: lease.1.clone(),
        identity: identity.to_string(),
        duration: Duration::from_secs(15),
        renew: Duration::from_secs(5),
    }
}

/// What every controller shares, with the webhook target managed MinIOs deliver through when
/// the operator runs an event receiver that pods can reach.
fn context(client: Client, metrics: Arc<Metrics>, opts: &RunOptions) -> Context {
    let reporter = Reporter {
        controller: "lakeform".into(),
        instance: Some(opts.identity.clone()),
    };
    let minio_webhook = match (&opts.events_address, &opts.events_url) {
        (Some(_), Some(url)) => Some(crate::desired::minio::Webhook {
            id: opts.events_target.clone(),
            endpoint: format!(
                "{}{}",
                url.trim_end_matches('/'),
                notifications::WEBHOOK_PATH
            ),
            token: opts.events_token.clone(),
        }),
        _ => None,
    };
    Context::new(
        client.clone(),
        Recorder::new(client, reporter),
        metrics,
        opts.resync,
        minio_webhook,
    )
}

/// Bind and serve the bucket-notification receiver on `addr`.
async fn receiver(
    addr: SocketAddr,
    subscriptions: Arc<notifications::Subscriptions>,
    opts: &RunOptions,
) -> anyhow::Result<JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the event receiver to {addr}"))?;
    Ok(tokio::spawn(notifications::serve(
        listener,
        subscriptions,
        opts.events_token.clone(),
    )))
}

/// Start the four controllers in every watched namespace; the future ends when they all
/// have, after `stop` turned true.
fn controllers(
    ctx: &Arc<Context>,
    subscriptions: Arc<notifications::Subscriptions>,
    opts: &RunOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> + use<> {
    let stopped = || {
        let mut rx = stop.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let scopes = scopes(&opts.namespaces);
    let events_target = opts.events_address.map(|_| opts.events_target.clone());
    let datalakes = spawn_per_scope(&scopes, |ns| datalake::run(ctx.clone(), ns, stopped()));
    let workflows = spawn_per_scope(&scopes, |ns| {
        let events = workflow::events::Events {
            subscriptions: subscriptions.clone(),
            target: events_target.clone(),
            image: opts.worker_image.clone(),
        };
        workflow::run(ctx.clone(), events, ns, stopped())
    });
    let workflow_runs = spawn_per_scope(&scopes, |ns| {
        workflow_run::run(ctx.clone(), opts.worker_image.clone(), ns, stopped())
    });
    let crawlers = spawn_per_scope(&scopes, |ns| {
        let (image, target) = (opts.worker_image.clone(), events_target.clone());
        crawler::run(
            ctx.clone(),
            image,
            subscriptions.clone(),
            target,
            ns,
            stopped(),
        )
    });
    let blueprints = spawn_per_scope(&scopes, |ns| blueprint::run(ctx.clone(), ns, stopped()));
    async {
        let _ = blueprints.await;
        let _ = datalakes.await;
        let _ = crawlers.await;
        let _ = workflows.await;
        let _ = workflow_runs.await;
    }
}

#[cfg(test)]
mod tests {
    use super::scopes;

    #[test]
    fn no_namespace_means_all_namespaces() {
        assert_eq!(scopes(&[]), vec![None]);
        assert_eq!(scopes(&[" ".into()]), vec![None]);
    }

    #[test]
    fn each_listed_namespace_once() {
        let listed = ["b".to_string(), "a".into(), "b".into(), "".into()];
        assert_eq!(scopes(&listed), vec![Some("a".into()), Some("b".into())]);
    }
}
