//! The pod runner: a test-only stand-in for a kubelet (DESIGN.md §5).
//!
//! It registers the Node `lakeform-pod-runner`, watches unscheduled Pods labelled
//! `app.kubernetes.io/managed-by=lakeform`, binds them to that Node through `pods/binding`, and
//! runs their containers with the locally built `lakeform` binary — sequentially, init containers
//! first — in a clean environment (PATH, HOME and the container's env resolved the way the kubelet
//! does). It writes the Pod status back like a kubelet (phase, conditions, container states with
//! exit codes), so the real Job and CronJob controllers finish the Jobs.
//!
//! Only Pods of Jobs and bare Pods are run; Pods controlled by anything else (StatefulSets,
//! ReplicaSets: MinIO, Trino, Lakekeeper) are left unscheduled — the suite checks those as
//! objects. It never pretends: a container whose image is not ours fails the Pod with reason
//! `UnsupportedImage`. Deviations from a kubelet: regular containers run one after the other (not
//! side by side), volumes are not mounted, probes and resources are ignored, and the process gets
//! `KUBECONFIG` pointing at a kubeconfig with a token of the Pod's service account (the stand-in
//! for the in-cluster service-account mount, which needs absolute paths).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex as StdMutex},
    time::Duration,
};

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::{
    api::{
        authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec},
        core::v1::{
            Binding, ConfigMap, Container, ContainerState, ContainerStateRunning,
            ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Node, NodeAddress,
            NodeCondition, NodeStatus, NodeSystemInfo, ObjectReference, Pod, PodIP, Secret,
            ServiceAccount,
        },
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Time},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions},
    config::{Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext},
    runtime::{WatchStreamExt, watcher},
};
use lakeform_e2e::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, POD_RUNNER_NODE,
    podspec::{self, EnvSources, LOCAL_IP},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
    signal::unix::{SignalKind, signal},
    sync::{Mutex, Semaphore, watch},
    task::JoinSet,
};
use tracing::{error, info, warn};

#[derive(Parser, Debug)]
#[command(
    name = "pod-runner",
    about = "Test-only stand-in for a kubelet: runs lakeform Pods with the local lakeform binary"
)]
struct Args {
    /// Kubeconfig of the control plane (admin).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The lakeform binary to run for containers with the lakeform image.
    #[arg(long, env = "LAKEFORM_BIN")]
    lakeform_bin: Option<PathBuf>,
    /// Folder for container logs (`<ns>_<pod>_<container>.log`); default
    /// `$LAKEFORM_CACHE/logs/pods`.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Folder under which each Pod gets a fresh working directory; default a temp dir.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// How many Pods run at the same time; further Pods stay unscheduled until a slot frees.
    #[arg(long, default_value_t = 4)]
    max_parallel: usize,
    /// Name of the Node to register and bind Pods to.
    #[arg(long, default_value = POD_RUNNER_NODE)]
    node_name: String,
    /// Only Pods with this `spec.schedulerName` are scheduled (lets a second pod runner, e.g.
    /// one with a fake binary, share the control plane without racing for the same Pods).
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
}

/// Why a running Pod must stop early.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    None,
    /// The Pod got a deletionTimestamp (grace period in seconds) or disappeared.
    Deleted {
        grace: i64,
        gone: bool,
    },
    /// The pod runner is shutting down.
    Shutdown,
}

/// What to do about a Pod event.
enum Decision {
    Ignore,
    FinishDeletion,
    Untracked,
    Start(watch::Receiver<Stop>),
}

/// What a tracked Pod is doing.
enum Tracked {
    Running(watch::Sender<Stop>),
    Finished,
}

const SHUTDOWN_GRACE: i64 = 5;
const DEFAULT_GRACE: i64 = 30;
const STDERR_TAIL_LINES: usize = 20;
const MESSAGE_MAX_BYTES: usize = 2048;
const HEARTBEAT: Duration = Duration::from_secs(10);

struct Runner {
    client: Client,
    bin: PathBuf,
    log_dir: PathBuf,
    work_root: PathBuf,
    node: String,
    scheduler: String,
    slots: Arc<Semaphore>,
    pods: StdMutex<HashMap<String, Tracked>>,
    /// The cluster entry of our kubeconfig, copied into the kubeconfig each process gets.
    cluster: Option<NamedCluster>,
    node_ready_since: Timestamp,
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let runner = Arc::new(Runner::new(args).await?);
    runner.register_node().await?;
    runner.fail_orphans().await?;
    runner.run().await
}

impl Runner {
    async fn new(args: Args) -> Result<Runner> {
        // rustls has both ring and aws-lc-rs in this crate: pick one before kube builds TLS.
        lakeform_e2e::lake::install_rustls_provider();
        let (config, cluster) = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                let cluster = current_cluster(&kubeconfig, path);
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .with_context(|| format!("loading kubeconfig {}", path.display()))?;
                (config, cluster)
            }
            None => (
                kube::Config::infer()
                    .await
                    .context("no --kubeconfig and no usable default kube config")?,
                None,
            ),
        };
        if cluster.is_none() {
            warn!(
                "no kubeconfig file given: processes get no KUBECONFIG for their service account"
            );
        }
        let client = Client::try_from(config).context("building the kube client")?;
        let bin = match args.lakeform_bin {
            Some(bin) => bin,
            None => lakeform_e2e::lakeform_bin()?,
        };
        let bin = std::fs::canonicalize(&bin)
            .with_context(|| format!("the lakeform binary {} does not exist", bin.display()))?;
        let log_dir = args
            .log_dir
            .unwrap_or_else(|| lakeform_e2e::env::cache_dir().join("logs/pods"));
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let work_root = args
            .work_dir
            .unwrap_or_else(|| std::env::temp_dir().join("lakeform-pod-runner"));
        std::fs::create_dir_all(&work_root)
            .with_context(|| format!("creating {}", work_root.display()))?;
        info!(
            bin = %bin.display(),
            log_dir = %log_dir.display(),
            work_dir = %work_root.display(),
            max_parallel = args.max_parallel,
            node = %args.node_name,
            "pod runner starting"
        );
        Ok(Runner {
            client,
            bin,
            log_dir,
            work_root,
            node: args.node_name,
            scheduler: args.scheduler_name,
            slots: Arc::new(Semaphore::new(args.max_parallel.max(1))),
            pods: StdMutex::new(HashMap::new()),
            cluster,
            node_ready_since: Timestamp::now(),
        })
    }

    fn pods_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    // ---------------------------------------------------------------- the Node

    async fn register_node(&self) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = Node {
            metadata: ObjectMeta {
                name: Some(self.node.clone()),
                labels: Some(
                    [
                        ("kubernetes.io/hostname", self.node.as_str()),
                        ("kubernetes.io/os", "linux"),
                        ("kubernetes.io/arch", std::env::consts::ARCH),
                        ("lakeform.dev/pod-runner", "true"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => info!(node = %self.node, "registered Node"),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(err) => return Err(err).context("registering the pod runner's Node"),
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let capacity: BTreeMap<String, Quantity> = [
            ("cpu".to_string(), Quantity(cpus.to_string())),
            ("memory".to_string(), Quantity("8Gi".into())),
            ("pods".to_string(), Quantity("110".into())),
        ]
        .into();
        let status = NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: LOCAL_IP.into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.node.clone(),
                },
            ]),
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            conditions: Some(vec![self.ready_condition(true)]),
            node_info: Some(NodeSystemInfo {
                architecture: std::env::consts::ARCH.into(),
                boot_id: String::new(),
                container_runtime_version: "lakeform-pod-runner://local-process".into(),
                kernel_version: String::new(),
                kube_proxy_version: String::new(),
                kubelet_version: format!("lakeform-pod-runner/{}", env!("CARGO_PKG_VERSION")),
                machine_id: String::new(),
                operating_system: "linux".into(),
                os_image: "lakeform pod runner (local processes)".into(),
                system_uuid: String::new(),
                ..Default::default()
            }),
            ..Default::default()
        };
        nodes
            .patch_status(
                &self.node,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .context("writing the pod runner's Node status")?;
        Ok(())
    }

    fn ready_condition(&self, ready: bool) -> NodeCondition {
        NodeCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: Some(
                if ready {
                    "KubeletReady"
                } else {
                    "PodRunnerStopped"
                }
                .into(),
            ),
            message: Some(
                if ready {
                    "lakeform pod runner is posting ready status"
                } else {
                    "lakeform pod runner stopped"
                }
                .into(),
            ),
            last_heartbeat_time: Some(now()),
            last_transition_time: Some(if ready {
                Time(self.node_ready_since)
            } else {
                now()
            }),
        }
    }

    async fn heartbeat(&self, ready: bool) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = json!({ "status": { "conditions": [self.ready_condition(ready)] } });
        match nodes
            .patch_status(
                &self.node,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Someone deleted the Node: register it again.
            Err(kube::Error::Api(s)) if s.is_not_found() && ready => self.register_node().await,
            Err(err) => Err(err).context("Node heartbeat"),
        }
    }

    // ---------------------------------------------------------------- watching

    /// Pods bound to our Node that were started by an earlier pod runner process cannot be
    /// resumed: their process is gone. Fail them like a kubelet fails containers it lost.
    async fn fail_orphans(&self) -> Result<()> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let list = pods
            .list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={}", self.node)))
            .await
            .context("listing Pods bound to the pod runner's Node")?;
        for pod in list {
            self.handle_untracked_bound(&pod).await;
            // Remember them so the watcher does not treat them as new.
            if let Some(uid) = pod.metadata.uid.clone()
                && pod
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .is_some()
                && let Ok(mut map) = self.pods.lock()
            {
                map.insert(uid, Tracked::Finished);
            }
        }
        Ok(())
    }

    async fn handle_untracked_bound(&self, pod: &Pod) {
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .is_some();
        if started && !is_terminal(pod) {
            warn!(pod = %pod_key(pod), "Pod was started by an earlier pod runner; failing it");
            if let Err(err) = self.fail_orphan(pod).await {
                warn!(pod = %pod_key(pod), "could not fail the orphaned Pod: {err:#}");
            }
        }
        if pod.metadata.deletion_timestamp.is_some() {
            self.finish_deletion(pod).await;
        }
    }

    async fn fail_orphan(&self, pod: &Pod) -> Result<()> {
        // A process an earlier pod runner left behind (it was killed hard) still belongs to the
        // Pod: stop it, as a kubelet removes containers it does not know any more.
        let status = pod.status.as_ref();
        for cs in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .chain(
                status
                    .and_then(|s| s.init_container_statuses.as_ref())
                    .into_iter()
                    .flatten(),
            )
        {
            if let Some(pid) = cs
                .container_id
                .as_deref()
                .and_then(|id| id.strip_prefix("pod-runner://"))
                .and_then(|pid| pid.parse::<u32>().ok())
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                    let bin = self.bin.as_os_str().as_encoded_bytes();
                    cmdline.split(|b| *b == 0).any(|arg| arg == bin)
                })
            {
                warn!(pod = %pod_key(pod), pid, "killing a process left behind by an earlier pod runner");
                signal_group(pid, libc::SIGKILL);
            }
        }
        let unknown = |statuses: Option<&Vec<ContainerStatus>>| -> Vec<Value> {
            statuses
                .into_iter()
                .flatten()
                .map(|cs| {
                    let mut cs = cs.clone();
                    if cs.state.as_ref().is_some_and(|s| s.running.is_some()) {
                        cs.state = Some(ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: 137,
                                reason: Some("ContainerStatusUnknown".into()),
                                message: Some(
                                    "The container could not be located when the pod was \
                                     terminated (the pod runner restarted)"
                                        .into(),
                                ),
                                started_at: cs
                                    .state
                                    .as_ref()
                                    .and_then(|s| s.running.as_ref())
                                    .and_then(|r| r.started_at.clone()),
                                finished_at: Some(now()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        });
                        cs.ready = false;
                        cs.started = Some(false);
                    }
                    container_status_json(&cs)
                })
                .collect()
        };
        let status = pod.status.as_ref();
        let init = unknown(status.and_then(|s| s.init_container_statuses.as_ref()));
        let mut patch = json!({
            "status": {
                "phase": "Failed",
                "reason": "PodRunnerRestarted",
                "message": "the pod runner restarted while this Pod was running; its processes are gone",
                "conditions": [
                    condition("Ready", false, Some("PodFailed"), None),
                    condition("ContainersReady", false, Some("PodFailed"), None),
                    condition("PodReadyToStartContainers", false, None, None),
                ],
                "containerStatuses": unknown(status.and_then(|s| s.container_statuses.as_ref())),
            }
        });
        if !init.is_empty() {
            patch["status"]["initContainerStatuses"] = Value::Array(init);
        }
        self.patch_pod_status(pod, patch).await
    }

    /// Like a kubelet, remove a deleted Pod from the API once nothing runs for it any more.
    async fn finish_deletion(&self, pod: &Pod) {
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            return;
        };
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.pods_api(ns).delete(name, &params).await {
            Ok(_) => info!(pod = %pod_key(pod), "deleted terminated Pod (grace period 0)"),
            Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => {}
            Err(err) => warn!(pod = %pod_key(pod), "could not finish deleting the Pod: {err}"),
        }
    }

    async fn run(self: Arc<Self>) -> Result<()> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
        let mut events = watcher(pods, watcher::Config::default().labels(&selector))
            .default_backoff()
            .boxed();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        info!(selector = %selector, "watching Pods");
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                        self.clone().on_pod(pod, &mut tasks).await;
                    }
                    Some(Ok(watcher::Event::Delete(pod))) => self.on_deleted(&pod),
                    Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                    Some(Err(err)) => warn!("watching Pods: {err}"),
                    None => {
                        error!("the Pod watch ended");
                        break;
                    }
                },
                _ = heartbeat.tick() => {
                    if let Err(err) = self.heartbeat(true).await {
                        warn!("{err:#}");
                    }
                }
                Some(joined) = tasks.join_next() => {
                    if let Err(err) = joined {
                        error!("a Pod task failed: {err}");
                    }
                }
                _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break; }
                _ = sigint.recv() => { info!("SIGINT: shutting down"); break; }
            }
        }
        // Stop the running Pods (their processes are killed, their status says why) and wait.
        if let Ok(map) = self.pods.lock() {
            for tracked in map.values() {
                if let Tracked::Running(tx) = tracked {
                    tx.send_replace(Stop::Shutdown);
                }
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(SHUTDOWN_GRACE as u64 + 10), drain)
            .await
            .is_err()
        {
            warn!("some Pod tasks did not stop in time");
        }
        if let Err(err) = self.heartbeat(false).await {
            warn!("{err:#}");
        }
        info!("pod runner stopped");
        Ok(())
    }

    async fn on_pod(self: Arc<Self>, pod: Pod, tasks: &mut JoinSet<()>) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let bound_here =
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(self.node.as_str());
        match self.decide(&uid, &pod) {
            Decision::Ignore => {}
            Decision::FinishDeletion => self.finish_deletion(&pod).await,
            Decision::Untracked if bound_here => self.handle_untracked_bound(&pod).await,
            Decision::Untracked => {}
            Decision::Start(rx) => {
                let runner = self.clone();
                tasks.spawn(async move {
                    let key = pod_key(&pod);
                    let keep_tracking = runner.clone().run_pod(pod, rx).await;
                    if let Ok(mut map) = runner.pods.lock() {
                        if keep_tracking {
                            map.insert(uid, Tracked::Finished);
                        } else {
                            // Not bound: a later event may schedule it again.
                            map.remove(&uid);
                        }
                    }
                    tracing::debug!(pod = %key, "Pod task done");
                });
            }
        }
    }

    /// What to do about a Pod event (decided under the lock, acted on without it).
    fn decide(&self, uid: &str, pod: &Pod) -> Decision {
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let Ok(mut map) = self.pods.lock() else {
            return Decision::Ignore;
        };
        match map.get(uid) {
            Some(Tracked::Running(tx)) => {
                if deleting {
                    let grace = pod
                        .metadata
                        .deletion_grace_period_seconds
                        .unwrap_or(DEFAULT_GRACE);
                    tx.send_if_modified(|stop| {
                        if *stop == Stop::None {
                            *stop = Stop::Deleted { grace, gone: false };
                            true
                        } else {
                            false
                        }
                    });
                }
                return Decision::Ignore;
            }
            Some(Tracked::Finished) => {
                return if deleting && node == Some(self.node.as_str()) {
                    Decision::FinishDeletion
                } else {
                    Decision::Ignore
                };
            }
            None => {}
        }
        let scheduler = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
        // Pods of StatefulSets, ReplicaSets … (MinIO, Trino, Lakekeeper) are checked as objects,
        // not run (DESIGN.md §5): leave them unscheduled instead of failing them into a
        // delete-and-recreate loop with their controller.
        if let Some(owner) = controller_kind(pod)
            && owner != "Job"
        {
            return Decision::Ignore;
        }
        let start = match node {
            None => {
                !deleting
                    && !is_terminal(pod)
                    && scheduler.unwrap_or("default-scheduler") == self.scheduler
            }
            Some(n) if n == self.node => {
                // Created with spec.nodeName set to us and never started: run it.
                !deleting
                    && !is_terminal(pod)
                    && pod
                        .status
                        .as_ref()
                        .and_then(|s| s.start_time.as_ref())
                        .is_none()
            }
            Some(_) => return Decision::Ignore,
        };
        if start {
            let (tx, rx) = watch::channel(Stop::None);
            map.insert(uid.to_string(), Tracked::Running(tx));
            Decision::Start(rx)
        } else {
            Decision::Untracked
        }
    }

    fn on_deleted(&self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        let Ok(mut map) = self.pods.lock() else {
            return;
        };
        match map.get(uid) {
            Some(Tracked::Running(tx)) => {
                tx.send_replace(Stop::Deleted {
                    grace: 0,
                    gone: true,
                });
            }
            Some(Tracked::Finished) => {
                map.remove(uid);
            }
            None => {}
        }
    }

    // ---------------------------------------------------------------- one Pod

    /// Runs one Pod to its end. Returns false when the Pod was never bound (so a later event may
    /// pick it up again).
    async fn run_pod(self: Arc<Self>, pod: Pod, mut stop: watch::Receiver<Stop>) -> bool {
        let key = pod_key(&pod);
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return false,
            },
            _ = stop.wait_for(|s| *s != Stop::None) => return false,
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        // Re-read: while we waited for a slot the Pod may have been deleted or bound.
        let pod = match self.pods_api(&ns).get_opt(&name).await {
            Ok(Some(fresh)) if fresh.metadata.uid == pod.metadata.uid => fresh,
            Ok(_) => return true,
            Err(err) => {
                warn!(pod = %key, "re-reading the Pod: {err}");
                return false;
            }
        };
        if pod.metadata.deletion_timestamp.is_some() || is_terminal(&pod) {
            return true;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        match node.as_deref() {
            None => {
                if let Err(err) = self.bind(&pod).await {
                    warn!(pod = %key, "binding failed: {err:#}");
                    return false;
                }
                info!(pod = %key, node = %self.node, "bound Pod");
            }
            Some(n) if n == self.node => {}
            Some(_) => return true,
        }
        let mut run = PodRun::new(self.clone(), pod);
        run.run(&mut stop).await;
        drop(permit);
        true
    }

    async fn bind(&self, pod: &Pod) -> Result<()> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(self.node.clone()),
                ..Default::default()
            },
        };
        let _: Value = self
            .pods_api(ns)
            .create_subresource("binding", name, &PostParams::default(), &binding)
            .await
            .context("POST pods/binding")?;
        Ok(())
    }

    async fn patch_pod_status(&self, pod: &Pod, patch: Value) -> Result<()> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api = self.pods_api(ns);
        let mut delay = Duration::from_millis(200);
        for attempt in 0..5 {
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.is_not_found() => {
                    return Err(anyhow!("the Pod no longer exists")).context(PodGone);
                }
                Err(kube::Error::Api(s)) if s.code == 422 || s.code == 400 => {
                    return Err(anyhow!("{}", s.message))
                        .context("the API server rejected the Pod status");
                }
                Err(err) if attempt < 4 => {
                    warn!(pod = %pod_key(pod), "status update failed, retrying: {err}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(err) => return Err(err).context("updating the Pod status"),
            }
        }
        Err(anyhow!("updating the Pod status failed"))
    }
}

/// Kind of the Pod's controlling owner (`Job`, `StatefulSet`, …), if any.
fn controller_kind(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.kind.as_str())
}

/// Marker context: the Pod is gone from the API.
#[derive(Debug)]
struct PodGone;

impl std::fmt::Display for PodGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the Pod is gone")
    }
}

fn is_pod_gone(err: &anyhow::Error) -> bool {
    err.downcast_ref::<PodGone>().is_some()
}

/// The kubeconfig cluster entry currently in use, with a relative CA path made absolute.
fn current_cluster(kubeconfig: &Kubeconfig, path: &Path) -> Option<NamedCluster> {
    let context_name = kubeconfig.current_context.as_deref()?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)?
        .context
        .as_ref()?;
    let mut cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)?
        .clone();
    if let Some(inner) = cluster.cluster.as_mut()
        && let Some(ca) = inner.certificate_authority.as_mut()
        && Path::new(ca.as_str()).is_relative()
        && let Some(dir) = path.parent()
    {
        *ca = dir.join(&*ca).to_string_lossy().into_owned();
    }
    Some(cluster)
}

/// A condition entry for a strategic-merge patch (absent fields are nulled so stale
/// reasons/messages do not survive).
fn condition(type_: &str, status: bool, reason: Option<&str>, message: Option<&str>) -> Value {
    json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": now(),
    })
}

/// A container status for a strategic-merge patch: members of `state`/`lastState` that are not
/// set are nulled, otherwise the patch would merge `running` into an old `waiting`.
fn container_status_json(cs: &ContainerStatus) -> Value {
    let mut value = serde_json::to_value(cs).unwrap_or(Value::Null);
    for field in ["state", "lastState"] {
        let entry = value
            .as_object_mut()
            .map(|o| o.entry(field).or_insert_with(|| json!({})));
        if let Some(Value::Object(state)) = entry {
            for member in ["waiting", "running", "terminated"] {
                state.entry(member).or_insert(Value::Null);
            }
        }
    }
    value
}

/// How a container run ended.
enum Outcome {
    Succeeded,
    Failed,
    /// The container could not be run at all (reason, message); the Pod fails with that reason.
    Unrunnable(String, String),
    /// The Pod must stop: deleted, deadline, shutdown, gone.
    Interrupted(Interrupt),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Interrupt {
    Deleted,
    Gone,
    Deadline,
    Shutdown,
}

/// A Pod condition as the pod runner tracks it.
struct Cond {
    status: bool,
    reason: Option<String>,
    since: Time,
}

impl Cond {
    fn new(status: bool, reason: Option<&str>) -> Cond {
        Cond {
            status,
            reason: reason.map(str::to_string),
            since: now(),
        }
    }
}

/// The state of one running Pod, published as its status.
struct PodRun {
    runner: Arc<Runner>,
    pod: Pod,
    key: String,
    start: Timestamp,
    deadline: Option<tokio::time::Instant>,
    phase: &'static str,
    reason: Option<String>,
    message: Option<String>,
    conditions: BTreeMap<&'static str, Cond>,
    init_statuses: Vec<ContainerStatus>,
    statuses: Vec<ContainerStatus>,
    work_dir: PathBuf,
    gone: bool,
}

impl PodRun {
    fn new(runner: Arc<Runner>, pod: Pod) -> PodRun {
        let spec = pod.spec.clone().unwrap_or_default();
        let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
        let waiting = |c: &Container, reason: &str| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            ready: false,
            restart_count: 0,
            started: Some(false),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let init_statuses = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| waiting(c, "PodInitializing"))
            .collect();
        let statuses = spec
            .containers
            .iter()
            .map(|c| {
                waiting(
                    c,
                    if has_init {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    },
                )
            })
            .collect();
        let mut conditions = BTreeMap::new();
        conditions.insert("PodScheduled", Cond::new(true, None));
        conditions.insert("PodReadyToStartContainers", Cond::new(true, None));
        conditions.insert(
            "Initialized",
            if has_init {
                Cond::new(false, Some("ContainersNotInitialized"))
            } else {
                Cond::new(true, None)
            },
        );
        for ready in ["Ready", "ContainersReady"] {
            conditions.insert(ready, Cond::new(false, Some("ContainersNotReady")));
        }
        let deadline = spec
            .active_deadline_seconds
            .filter(|s| *s > 0)
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s as u64));
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let work_dir = runner.work_root.join(format!(
            "{}_{}_{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default(),
            uid.get(..8).unwrap_or(&uid)
        ));
        PodRun {
            key: pod_key(&pod),
            runner,
            pod,
            start: Timestamp::now(),
            deadline,
            phase: "Pending",
            reason: None,
            message: None,
            conditions,
            init_statuses,
            statuses,
            work_dir,
            gone: false,
        }
    }

    fn set_condition(&mut self, type_: &'static str, status: bool, reason: Option<&str>) {
        let entry = self
            .conditions
            .entry(type_)
            .or_insert_with(|| Cond::new(status, reason));
        if entry.status != status {
            entry.since = now();
        }
        entry.status = status;
        entry.reason = reason.map(str::to_string);
    }

    fn refresh_ready(&mut self) {
        let all_ready = !self.statuses.is_empty() && self.statuses.iter().all(|s| s.ready);
        let reason = if all_ready {
            None
        } else if self.phase == "Succeeded" {
            Some("PodCompleted")
        } else {
            Some("ContainersNotReady")
        };
        self.set_condition("ContainersReady", all_ready, reason);
        self.set_condition("Ready", all_ready, reason);
    }

    async fn publish(&mut self) -> Result<()> {
        if self.gone {
            return Err(anyhow!("the Pod no longer exists")).context(PodGone);
        }
        self.refresh_ready();
        let not_ready: Vec<&str> = self
            .statuses
            .iter()
            .filter(|s| !s.ready)
            .map(|s| s.name.as_str())
            .collect();
        let not_initialized: Vec<&str> = self
            .init_statuses
            .iter()
            .filter(|s| {
                s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_none_or(|t| t.exit_code != 0)
            })
            .map(|s| s.name.as_str())
            .collect();
        let conditions: Vec<Value> = self
            .conditions
            .iter()
            .map(|(type_, cond)| {
                let message = match *type_ {
                    "Ready" | "ContainersReady" if !cond.status => Some(format!(
                        "containers with unready status: [{}]",
                        not_ready.join(" ")
                    )),
                    "Initialized" if !cond.status => Some(format!(
                        "containers with incomplete status: [{}]",
                        not_initialized.join(" ")
                    )),
                    _ => None,
                };
                json!({
                    "type": type_,
                    "status": if cond.status { "True" } else { "False" },
                    "reason": cond.reason,
                    "message": message,
                    "lastProbeTime": null,
                    "lastTransitionTime": cond.since,
                    "observedGeneration": self.pod.metadata.generation,
                })
            })
            .collect();
        let mut patch = json!({
            "status": {
                "observedGeneration": self.pod.metadata.generation,
                "phase": self.phase,
                "reason": self.reason,
                "message": self.message,
                "hostIP": LOCAL_IP,
                "hostIPs": [{ "ip": LOCAL_IP }],
                "podIP": LOCAL_IP,
                "podIPs": [PodIP { ip: LOCAL_IP.into() }],
                "startTime": Time(self.start),
                "conditions": conditions,
                "containerStatuses": self.statuses.iter().map(container_status_json).collect::<Vec<_>>(),
            }
        });
        if !self.init_statuses.is_empty() {
            patch["status"]["initContainerStatuses"] = self
                .init_statuses
                .iter()
                .map(container_status_json)
                .collect();
        }
        let result = self.runner.patch_pod_status(&self.pod, patch).await;
        if let Err(err) = &result
            && is_pod_gone(err)
        {
            self.gone = true;
        }
        result
    }

    /// Publishes, logging failures (a status write that fails must not kill a running process).
    async fn publish_logged(&mut self) {
        if let Err(err) = self.publish().await
            && !is_pod_gone(&err)
        {
            warn!(pod = %self.key, "{err:#}");
        }
    }

    async fn run(&mut self, stop: &mut watch::Receiver<Stop>) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let init: Vec<Container> = spec.init_containers.clone().unwrap_or_default();
        let containers = spec.containers.clone();

        // Images first: never pretend to run something else than lakeform.
        for (is_init, c) in init
            .iter()
            .map(|c| (true, c))
            .chain(containers.iter().map(|c| (false, c)))
        {
            let image = c.image.as_deref().unwrap_or_default();
            if !podspec::is_lakeform_image(image) {
                let message = format!(
                    "container {:?} uses image {image:?}: the pod runner only runs the lakeform \
                     image (an image whose repository ends in \"lakeform\", e.g. \
                     ghcr.io/lakeform/lakeform:<tag>) with the locally built lakeform binary",
                    c.name
                );
                self.waiting(is_init, &c.name, "UnsupportedImage", Some(&message));
                return self.finish_failed("UnsupportedImage", &message).await;
            }
            if is_init && c.restart_policy.as_deref() == Some("Always") {
                let message = format!(
                    "init container {:?} is a sidecar (restartPolicy: Always), which the pod \
                     runner does not support",
                    c.name
                );
                self.waiting(true, &c.name, "Unsupported", Some(&message));
                return self.finish_failed("Unsupported", &message).await;
            }
        }
        if let Err(err) = std::fs::create_dir_all(&self.work_dir) {
            let message = format!("creating the work dir {}: {err}", self.work_dir.display());
            return self.finish_failed("PodRunnerError", &message).await;
        }
        info!(pod = %self.key, "starting Pod");
        self.publish_logged().await;

        let mut interrupted = None;
        let mut failed = false;
        for c in &init {
            match self.run_container(true, c, stop).await {
                Outcome::Succeeded => {}
                Outcome::Failed => {
                    failed = true;
                    break;
                }
                Outcome::Unrunnable(reason, message) => {
                    self.cleanup();
                    return self.finish_failed(&reason, &message).await;
                }
                Outcome::Interrupted(why) => {
                    interrupted = Some(why);
                    break;
                }
            }
        }
        if !failed && interrupted.is_none() {
            self.set_condition("Initialized", true, None);
            for c in &containers {
                match self.run_container(false, c, stop).await {
                    Outcome::Succeeded => {}
                    // Like a kubelet running containers side by side, the others still run.
                    Outcome::Failed => failed = true,
                    Outcome::Unrunnable(reason, message) => {
                        self.cleanup();
                        return self.finish_failed(&reason, &message).await;
                    }
                    Outcome::Interrupted(why) => {
                        interrupted = Some(why);
                        break;
                    }
                }
            }
        }
        self.cleanup();
        self.set_condition("PodReadyToStartContainers", false, None);
        match interrupted {
            None if !failed => {
                self.phase = "Succeeded";
                self.set_condition("Initialized", true, Some("PodCompleted"));
                self.publish_logged().await;
                info!(pod = %self.key, "Pod Succeeded");
            }
            None => {
                self.phase = "Failed";
                self.publish_logged().await;
                info!(pod = %self.key, "Pod Failed");
            }
            Some(Interrupt::Gone) => {
                info!(pod = %self.key, "Pod was deleted from the API: stopped it");
            }
            Some(Interrupt::Deleted) => {
                self.phase = "Failed";
                self.publish_logged().await;
                info!(pod = %self.key, "Pod was deleted before it finished: stopped it");
                self.runner.finish_deletion(&self.pod).await;
            }
            Some(Interrupt::Deadline) => {
                self.finish_failed(
                    "DeadlineExceeded",
                    "Pod was active on the node longer than the specified deadline",
                )
                .await;
            }
            Some(Interrupt::Shutdown) => {
                self.finish_failed(
                    "PodRunnerShutdown",
                    "the pod runner shut down while this Pod was running; its processes were killed",
                )
                .await;
            }
        }
    }

    fn cleanup(&self) {
        if let Err(err) = std::fs::remove_dir_all(&self.work_dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            warn!(pod = %self.key, "removing {}: {err}", self.work_dir.display());
        }
    }

    async fn finish_failed(&mut self, reason: &str, message: &str) {
        self.phase = "Failed";
        self.reason = Some(reason.to_string());
        self.message = Some(message.to_string());
        self.set_condition("PodReadyToStartContainers", false, None);
        self.publish_logged().await;
        info!(pod = %self.key, reason, "Pod Failed: {message}");
        if self.pod.metadata.deletion_timestamp.is_some() {
            self.runner.finish_deletion(&self.pod).await;
        }
    }

    fn status_mut(&mut self, is_init: bool, name: &str) -> Option<&mut ContainerStatus> {
        let list = if is_init {
            &mut self.init_statuses
        } else {
            &mut self.statuses
        };
        list.iter_mut().find(|s| s.name == name)
    }

    fn waiting(&mut self, is_init: bool, name: &str, reason: &str, message: Option<&str>) {
        if let Some(cs) = self.status_mut(is_init, name) {
            cs.ready = false;
            cs.started = Some(false);
            cs.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: message.map(str::to_string),
                }),
                ..Default::default()
            });
        }
    }

    /// Waits for `delay`, or returns why the Pod must stop first.
    async fn pause(&self, delay: Duration, stop: &mut watch::Receiver<Stop>) -> Option<Interrupt> {
        let deadline = self.deadline;
        tokio::select! {
            _ = tokio::time::sleep(delay) => None,
            why = stop.wait_for(|s| *s != Stop::None) => {
                Some(interrupt_of(why.map(|w| *w).unwrap_or(Stop::Shutdown)))
            }
            _ = sleep_until_opt(deadline) => Some(Interrupt::Deadline),
        }
    }

    /// Env and credentials for a container, or a kubelet-like CreateContainerConfigError message.
    async fn prepare(&self, c: &Container) -> Result<Vec<(String, String)>, String> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or_default();
        let refs = podspec::env_references(c);
        let mut sources = EnvSources::default();
        let cms: Api<ConfigMap> = Api::namespaced(self.runner.client.clone(), ns);
        for name in refs.config_maps {
            let cm = cms
                .get_opt(&name)
                .await
                .map_err(|e| format!("couldn't get configMap {ns}/{name}: {e}"))?;
            sources
                .config_maps
                .insert(name, cm.map(|cm| cm.data.unwrap_or_default()));
        }
        let secrets: Api<Secret> = Api::namespaced(self.runner.client.clone(), ns);
        for name in refs.secrets {
            let secret = secrets
                .get_opt(&name)
                .await
                .map_err(|e| format!("couldn't get secret {ns}/{name}: {e}"))?;
            let data = secret.map(|s| {
                let mut data: BTreeMap<String, Result<String, ()>> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8(v.0).map_err(|_| ())))
                    .collect();
                for (k, v) in s.string_data.unwrap_or_default() {
                    data.insert(k, Ok(v));
                }
                data
            });
            sources.secrets.insert(name, data);
        }
        let mut env = podspec::resolve_env(&self.pod, c, &sources)?;
        if !env.iter().any(|(k, _)| k == "KUBECONFIG")
            && let Some(path) = self.service_account_kubeconfig().await?
        {
            env.push(("KUBECONFIG".into(), path.to_string_lossy().into_owned()));
        }
        Ok(env)
    }

    /// Writes a kubeconfig with a fresh token of the Pod's service account (bound to the Pod),
    /// the stand-in for the in-cluster token mount.
    async fn service_account_kubeconfig(&self) -> Result<Option<PathBuf>, String> {
        let spec = self.pod.spec.as_ref();
        if spec.and_then(|s| s.automount_service_account_token) == Some(false) {
            return Ok(None);
        }
        let Some(cluster) = self.runner.cluster.clone() else {
            return Ok(None);
        };
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or_default();
        let sa = spec
            .and_then(|s| s.service_account_name.as_deref())
            .unwrap_or("default");
        let request = TokenRequest {
            metadata: ObjectMeta::default(),
            spec: TokenRequestSpec {
                audiences: vec![],
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: self.pod.metadata.name.clone(),
                    uid: self.pod.metadata.uid.clone(),
                }),
                expiration_seconds: Some(3600),
            },
            status: None,
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.runner.client.clone(), ns);
        let token: TokenRequest = api
            .create_subresource("token", sa, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("requesting a token for service account {ns}/{sa}: {e}"))?;
        let token = token
            .status
            .map(|s| s.token)
            .ok_or_else(|| format!("the token request for {ns}/{sa} returned no token"))?;
        let kubeconfig = Kubeconfig {
            clusters: vec![NamedCluster {
                name: "lakeform-e2e".into(),
                ..cluster
            }],
            auth_infos: vec![NamedAuthInfo {
                name: sa.to_string(),
                auth_info: Some(kube::config::AuthInfo {
                    token: Some(token.into()),
                    ..Default::default()
                }),
                other: Default::default(),
            }],
            contexts: vec![NamedContext {
                name: "pod".into(),
                context: Some(kube::config::Context {
                    cluster: "lakeform-e2e".into(),
                    user: Some(sa.to_string()),
                    namespace: Some(ns.to_string()),
                    extensions: None,
                    other: Default::default(),
                }),
                other: Default::default(),
            }],
            current_context: Some("pod".into()),
            ..Default::default()
        };
        let dir = self.work_dir.join(".pod-runner");
        let path = dir.join("kubeconfig");
        let yaml = serde_yaml::to_string(&kubeconfig)
            .map_err(|e| format!("serializing the service account kubeconfig: {e}"))?;
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, yaml))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(Some(path))
    }

    async fn run_container(
        &mut self,
        is_init: bool,
        c: &Container,
        stop: &mut watch::Receiver<Stop>,
    ) -> Outcome {
        let policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        let mut backoff = Duration::from_secs(10);
        loop {
            // Env (retried like the kubelet while a Secret/ConfigMap is missing).
            let mut last_error = String::new();
            let env = loop {
                match self.prepare(c).await {
                    Ok(env) => break env,
                    Err(message) => {
                        if message != last_error {
                            warn!(pod = %self.key, container = %c.name, "CreateContainerConfigError (retrying every 2s): {message}");
                            self.waiting(
                                is_init,
                                &c.name,
                                "CreateContainerConfigError",
                                Some(&message),
                            );
                            self.publish_logged().await;
                            last_error = message;
                        }
                        if let Some(why) = self.pause(Duration::from_secs(2), stop).await {
                            return Outcome::Interrupted(why);
                        }
                    }
                }
            };
            let map: HashMap<&str, &str> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let lookup = |name: &str| map.get(name).map(|v| v.to_string());
            let command: Vec<String> = c
                .command
                .iter()
                .flatten()
                .map(|s| podspec::expand(s, lookup))
                .collect();
            let args: Vec<String> = c
                .args
                .iter()
                .flatten()
                .map(|s| podspec::expand(s, lookup))
                .collect();
            let argv = match podspec::lakeform_argv(&command, &args) {
                Ok(argv) => argv,
                Err(message) => {
                    self.waiting(is_init, &c.name, "UnsupportedCommand", Some(&message));
                    return Outcome::Unrunnable("UnsupportedCommand".into(), message);
                }
            };
            let exit = self.exec(is_init, c, &argv, &env, stop).await;
            let (code, interrupted) = match exit {
                Exec::Exited(code) => (code, None),
                Exec::Interrupted(code, why) => (code, Some(why)),
                Exec::StartError => (128, None),
            };
            if let Some(why) = interrupted {
                return Outcome::Interrupted(why);
            }
            let restart = match policy.as_str() {
                "Always" => !is_init || code != 0,
                "OnFailure" => code != 0,
                _ => false,
            };
            if !restart {
                self.publish_logged().await;
                return if code == 0 {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                };
            }
            // Restart with back-off, like the kubelet (10s doubling, capped at 5 minutes).
            let message = format!(
                "back-off {}s restarting failed container={} pod={}",
                backoff.as_secs(),
                c.name,
                self.pod.metadata.name.as_deref().unwrap_or_default()
            );
            if let Some(cs) = self.status_mut(is_init, &c.name) {
                cs.last_state = cs.state.take();
                cs.restart_count += 1;
                cs.state = Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".into()),
                        message: Some(message),
                    }),
                    ..Default::default()
                });
                cs.ready = false;
                cs.started = Some(false);
            }
            self.publish_logged().await;
            if let Some(why) = self.pause(backoff, stop).await {
                return Outcome::Interrupted(why);
            }
            backoff = (backoff * 2).min(Duration::from_secs(300));
        }
    }

    /// Starts the process, streams its output, waits for it (or kills it).
    async fn exec(
        &mut self,
        is_init: bool,
        c: &Container,
        argv: &[String],
        env: &[(String, String)],
        stop: &mut watch::Receiver<Stop>,
    ) -> Exec {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let log_path = self
            .runner
            .log_dir
            .join(format!("{ns}_{name}_{}.log", c.name));
        let restarted = self
            .status_mut(is_init, &c.name)
            .is_some_and(|cs| cs.restart_count > 0);
        let log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(restarted)
            .write(true)
            .truncate(!restarted)
            .open(&log_path)
            .await;
        let log = match log {
            Ok(f) => Arc::new(Mutex::new(f)),
            Err(err) => {
                let message = format!("opening the log file {}: {err}", log_path.display());
                self.terminated(
                    is_init,
                    &c.name,
                    128,
                    None,
                    "StartError",
                    Some(message),
                    None,
                );
                return Exec::StartError;
            }
        };
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let mut cmd = Command::new(&self.runner.bin);
        cmd.args(argv)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.work_dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        info!(pod = %self.key, container = %c.name, argv = ?argv, "starting container");
        let started = now();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(err) => {
                let message = format!("starting {}: {err}", self.runner.bin.display());
                self.terminated(
                    is_init,
                    &c.name,
                    128,
                    None,
                    "StartError",
                    Some(message),
                    None,
                );
                return Exec::StartError;
            }
        };
        let pid = child.id().unwrap_or_default();
        let container_id = format!("pod-runner://{pid}");
        let image_id = format!("file://{}", self.runner.bin.display());
        if let Some(cs) = self.status_mut(is_init, &c.name) {
            cs.image_id = image_id;
            cs.container_id = Some(container_id.clone());
            cs.started = Some(true);
            cs.ready = !is_init;
            cs.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(started.clone()),
                }),
                ..Default::default()
            });
        }
        if !is_init {
            // While init containers run the Pod is still Pending (as with a kubelet).
            self.phase = "Running";
        }
        self.publish_logged().await;

        let tail = Arc::new(StdMutex::new(VecDeque::<String>::new()));
        let mut streams = JoinSet::new();
        if let Some(out) = child.stdout.take() {
            streams.spawn(copy_lines(out, log.clone(), None));
        }
        if let Some(err) = child.stderr.take() {
            streams.spawn(copy_lines(err, log.clone(), Some(tail.clone())));
        }

        let deadline = self.deadline;
        let grace = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(DEFAULT_GRACE);
        let woke = tokio::select! {
            status = child.wait() => Woke::Exited(status),
            why = stop.wait_for(|s| *s != Stop::None) => {
                Woke::Stopped(why.map(|w| *w).unwrap_or(Stop::Shutdown))
            }
            _ = sleep_until_opt(deadline) => Woke::Deadline,
        };
        let (status, interrupted) = match woke {
            Woke::Exited(status) => (status, None),
            Woke::Stopped(why) => {
                let grace = match why {
                    Stop::Deleted { grace, .. } => grace,
                    _ => SHUTDOWN_GRACE,
                };
                info!(pod = %self.key, container = %c.name, ?why, "killing the container");
                (
                    terminate(&mut child, pid, grace).await,
                    Some(interrupt_of(why)),
                )
            }
            Woke::Deadline => {
                info!(pod = %self.key, container = %c.name, "activeDeadlineSeconds exceeded: killing the container");
                (
                    terminate(&mut child, pid, grace).await,
                    Some(Interrupt::Deadline),
                )
            }
        };
        // The container ends with its main process: nothing it started outlives it.
        signal_group(pid, libc::SIGKILL);
        // Output readers end when the pipes close; don't hang on a leaked grandchild.
        let drain = async { while streams.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            streams.abort_all();
        }
        let (code, signal) = match status {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => (code, None),
                (None, Some(sig)) => (128 + sig, Some(sig)),
                (None, None) => (255, None),
            },
            Err(err) => {
                warn!(pod = %self.key, "waiting for the process: {err}");
                (255, None)
            }
        };
        let message = {
            let lines: Vec<String> = tail
                .lock()
                .map(|t| t.iter().cloned().collect())
                .unwrap_or_default();
            let mut text = lines.join("\n");
            if text.len() > MESSAGE_MAX_BYTES {
                let mut cut = text.len() - MESSAGE_MAX_BYTES;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                text = text[cut..].to_string();
            }
            (!text.is_empty()).then_some(text)
        };
        let reason = if code == 0 { "Completed" } else { "Error" };
        info!(pod = %self.key, container = %c.name, exit_code = code, "container exited");
        self.terminated(
            is_init,
            &c.name,
            code,
            signal,
            reason,
            message,
            Some((started, container_id)),
        );
        match interrupted {
            Some(why) => Exec::Interrupted(code, why),
            None => Exec::Exited(code),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn terminated(
        &mut self,
        is_init: bool,
        name: &str,
        code: i32,
        signal: Option<i32>,
        reason: &str,
        message: Option<String>,
        started: Option<(Time, String)>,
    ) {
        if let Some(cs) = self.status_mut(is_init, name) {
            let (started_at, container_id) = match started {
                Some((t, id)) => (Some(t), Some(id)),
                None => (None, None),
            };
            cs.ready = false;
            cs.started = Some(false);
            cs.state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    signal,
                    reason: Some(reason.into()),
                    message,
                    started_at,
                    finished_at: Some(now()),
                    container_id,
                }),
                ..Default::default()
            });
        }
    }
}

enum Woke {
    Exited(std::io::Result<std::process::ExitStatus>),
    Stopped(Stop),
    Deadline,
}

enum Exec {
    Exited(i32),
    Interrupted(i32, Interrupt),
    StartError,
}

fn interrupt_of(stop: Stop) -> Interrupt {
    match stop {
        Stop::Deleted { gone: true, .. } => Interrupt::Gone,
        Stop::Deleted { .. } => Interrupt::Deleted,
        Stop::Shutdown | Stop::None => Interrupt::Shutdown,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => futures::future::pending().await,
    }
}

/// Sends a signal to a container's process group: the container is its process and everything
/// that process started (`process_group(0)` at spawn makes the group id the process id).
fn signal_group(pgid: u32, signal: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid)
        && pgid > 0
    {
        // SAFETY: a plain kill(2) on a process group we created; no memory is involved.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// SIGTERM to the container, then SIGKILL after the grace period (as the kubelet does).
async fn terminate(
    child: &mut tokio::process::Child,
    pgid: u32,
    grace: i64,
) -> std::io::Result<std::process::ExitStatus> {
    if grace > 0 {
        signal_group(pgid, libc::SIGTERM);
        let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
            return status;
        }
    }
    signal_group(pgid, libc::SIGKILL);
    child.kill().await?;
    child.wait().await
}

/// Copies output into the log file line by line; stderr lines also go into the tail ring.
async fn copy_lines<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    log: Arc<Mutex<tokio::fs::File>>,
    tail: Option<Arc<StdMutex<VecDeque<String>>>>,
) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {
                {
                    let mut f = log.lock().await;
                    let _ = f.write_all(&line).await;
                    if line.last() != Some(&b'\n') {
                        let _ = f.write_all(b"\n").await;
                    }
                }
                if let Some(tail) = &tail
                    && let Ok(mut t) = tail.lock()
                {
                    if t.len() == STDERR_TAIL_LINES {
                        t.pop_front();
                    }
                    let text = String::from_utf8_lossy(&line);
                    t.push_back(text.trim_end_matches(['\n', '\r']).to_string());
                }
            }
            Err(err) => {
                let mut f = log.lock().await;
                let _ = f
                    .write_all(format!("[pod-runner] reading output failed: {err}\n").as_bytes())
                    .await;
                break;
            }
        }
    }
    let mut f = log.lock().await;
    let _ = f.flush().await;
}
