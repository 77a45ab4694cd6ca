//! One test = one namespace.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::{
    Api, Client, Resource,
    api::{DeleteParams, LogParams, ObjectMeta, PostParams},
};

use crate::env::Env;

/// Label on every namespace the suite creates, so stale ones can be found and removed.
pub const E2E_NAMESPACE_LABEL: &str = "lakeform.dev/e2e";

/// A test's view of the environment: the loaded [`Env`], an admin client and a fresh namespace
/// that is deleted (best effort) when the context is dropped — also when the test panics.
/// Set `LAKEFORM_E2E_KEEP_NAMESPACES=1` to keep the namespaces for debugging.
pub struct TestContext {
    pub env: Env,
    pub client: Client,
    /// The test's namespace.
    pub ns: String,
    config: kube::Config,
    keep: bool,
    started: std::time::Instant,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut n = (nanos as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ (u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 20);
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::new();
    for _ in 0..6 {
        s.push(alphabet[(n % 36) as usize] as char);
        n /= 36;
    }
    s
}

impl TestContext {
    /// Loads the environment and creates the namespace `e2e-<prefix>-<random>`.
    pub async fn new(prefix: &str) -> Result<TestContext> {
        let env = Env::load()?;
        let config = env.kube_config().await?;
        let client = Client::try_from(config.clone()).context("building the kube client")?;
        let prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let ns = format!("e2e-{prefix}-{}", unique_suffix());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let object = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                labels: Some([(E2E_NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| {
                format!(
                    "creating the test namespace {ns} on {} (is the API server up?)",
                    env.apiserver
                )
            })?;
        let keep = std::env::var_os("LAKEFORM_E2E_KEEP_NAMESPACES").is_some_and(|v| v != "0");
        Ok(TestContext {
            env,
            client,
            ns,
            config,
            keep,
            started: std::time::Instant::now(),
        })
    }

    /// A namespaced `Api` in the test namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Fails unless the node is Ready (kubelet renews its Lease; the node-lifecycle controller
    /// turns Ready to Unknown ~40 s after it stops). Tests that need pods to run call this
    /// first so a dead node is reported as such, not as a Job timeout.
    pub async fn require_node(&self) -> Result<()> {
        let name = &self.env.node_name;
        match node_ready(&self.client, name).await? {
            Some(true) => Ok(()),
            Some(false) => bail!(
                "the node {name} is not Ready — is kubelet running? `e2e/up` starts it (log: \
                 {}/logs/kubelet.log)",
                self.env.cache.display()
            ),
            None => bail!(
                "there is no Node {name}: kubelet never registered with this control plane; \
                 `e2e/up` starts it (log: {}/logs/kubelet.log)",
                self.env.cache.display()
            ),
        }
    }

    /// The log of one container of a Pod in the test namespace, read through the API server
    /// from the kubelet (`pods/log`), as `kubectl logs` does.
    pub async fn pod_log(&self, pod: &str, container: &str) -> Result<String> {
        let params = LogParams {
            container: Some(container.to_string()),
            ..Default::default()
        };
        self.api::<Pod>()
            .logs(pod, &params)
            .await
            .with_context(|| format!("reading the log of container {container} of Pod {pod}"))
    }
}

/// Whether the Node's `Ready` condition is True; `None` when the Node does not exist.
pub async fn node_ready(client: &Client, name: &str) -> Result<Option<bool>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let Some(node) = nodes
        .get_opt(name)
        .await
        .with_context(|| format!("reading Node {name}"))?
    else {
        return Ok(None);
    };
    Ok(Some(node.status.and_then(|s| s.conditions).is_some_and(
        |conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        },
    )))
}

impl Drop for TestContext {
    fn drop(&mut self) {
        // Shown by `cargo test -- --show-output` (e2e/run): how long each test's work took.
        println!(
            "namespace {} done after {:.1}s",
            self.ns,
            self.started.elapsed().as_secs_f64()
        );
        if self.keep {
            eprintln!(
                "keeping test namespace {} (LAKEFORM_E2E_KEEP_NAMESPACES)",
                self.ns
            );
            return;
        }
        let config = self.config.clone();
        let ns = self.ns.clone();
        // The test's runtime may be shutting down (or be a current-thread runtime we must not
        // block): delete from a separate thread with its own small runtime.
        let result = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let client = Client::try_from(config)?;
                let namespaces: Api<Namespace> = Api::all(client);
                match namespaces.delete(&ns, &DeleteParams::background()).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
                    Err(err) => Err(err.into()),
                }
            })
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!(
                "warning: could not delete test namespace {}: {err:#}",
                self.ns
            ),
            Err(_) => eprintln!("warning: deleting test namespace {} panicked", self.ns),
        }
    }
}
