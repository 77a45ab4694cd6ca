//! One test = one namespace.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::{
    Api, Client, Resource,
    api::{DeleteParams, ObjectMeta, PostParams},
};

use crate::env::Env;

/// Name of the Node object the pod runner registers and binds pods to.
pub const POD_RUNNER_NODE: &str = "lakeform-pod-runner";

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

    /// Fails unless the pod runner is alive (its Node heartbeat is fresh). Tests that need pods to
    /// run call this first so a missing pod runner is reported as such, not as a Job timeout.
    pub async fn require_pod_runner(&self) -> Result<()> {
        match pod_runner_heartbeat_age(&self.client).await? {
            Some(age) if age <= Duration::from_secs(45) => Ok(()),
            Some(age) => bail!(
                "the pod runner's Node {POD_RUNNER_NODE} has not sent a heartbeat for {}s — the \
                 pod runner is not running; `e2e/run` starts it (log: {}/logs/pod-runner.log)",
                age.as_secs(),
                self.env.cache.display()
            ),
            None => bail!(
                "there is no Node {POD_RUNNER_NODE}: the pod runner has never run against this \
                 control plane; `e2e/run` starts it"
            ),
        }
    }
}

/// Age of the pod runner's last Node heartbeat (`Ready` condition `lastHeartbeatTime`), `None`
/// when the Node does not exist.
pub async fn pod_runner_heartbeat_age(client: &Client) -> Result<Option<Duration>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let Some(node) = nodes
        .get_opt(POD_RUNNER_NODE)
        .await
        .context("reading the pod runner's Node")?
    else {
        return Ok(None);
    };
    let heartbeat = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .and_then(|c| c.last_heartbeat_time);
    let Some(heartbeat) = heartbeat else {
        return Ok(Some(Duration::MAX));
    };
    let age = jiff::Timestamp::now().duration_since(heartbeat.0);
    Ok(Some(
        Duration::try_from(age).unwrap_or(Duration::ZERO), // negative (clock skew) → fresh
    ))
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
