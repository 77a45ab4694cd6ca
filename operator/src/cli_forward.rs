//! A port-forward to a lake's Trino coordinator, as `kubectl port-forward` makes one: a local
//! listener on `127.0.0.1` whose every connection is a port-forward stream to the coordinator
//! pod through the API server (`create pods/portforward`). `lakeform query` talks to Trino over
//! it because the API server's service proxy drops the `Authorization` header once it has
//! authenticated the caller, and Trino needs that header to authenticate the user.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use tokio::net::TcpListener;

/// A running forward; connections are served until it is dropped.
pub struct Forward {
    /// Where to connect (`127.0.0.1:<port>`).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forward a local port to `port` of a running pod in `ns` matching `selector`.
pub async fn start(
    client: &kube::Client,
    ns: &str,
    selector: &str,
    port: u16,
) -> anyhow::Result<Forward> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = running_pod(&pods, ns, selector).await?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("listening on 127.0.0.1 for the port-forward")?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (pods, pod) = (pods.clone(), pod.clone());
            tokio::spawn(async move {
                if let Err(e) = serve(&pods, &pod, port, conn).await {
                    tracing::debug!(%pod, error = %e, "port-forward connection");
                }
            });
        }
    });
    Ok(Forward { addr, task })
}

/// The name of a running, not terminating pod matching `selector` (a ready one if any).
async fn running_pod(pods: &Api<Pod>, ns: &str, selector: &str) -> anyhow::Result<String> {
    let listed = pods
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing the pods {selector} in {ns}"))?;
    let running: Vec<&Pod> = listed
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    let ready = |p: &&&Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let pod = running
        .iter()
        .find(ready)
        .or_else(|| running.first())
        .and_then(|p| p.metadata.name.clone());
    match pod {
        Some(name) => Ok(name),
        None => bail!("no running pod {selector} in {ns}: is the coordinator up?"),
    }
}

/// Copy one local connection to and from a port-forward stream of `pod`.
async fn serve(
    pods: &Api<Pod>,
    pod: &str,
    port: u16,
    mut conn: tokio::net::TcpStream,
) -> anyhow::Result<()> {
    let mut forwarder = pods.portforward(pod, &[port]).await?;
    let mut upstream = forwarder
        .take_stream(port)
        .context("the port-forward has no stream")?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    drop(upstream);
    forwarder.join().await?;
    Ok(())
}
