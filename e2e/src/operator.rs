//! The operator as users run it: installed with the Helm chart (`charts/lakeform`) into a test's
//! namespace, from the image built from the commit under test, watching only that namespace
//! (its Roles, its ServiceAccount, its leader-election Lease there), running as a pod on the
//! node. Its log is saved to the cache folder when the test is done with it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::TestContext;
use crate::env::{Env, repo_root};

/// The Helm release (and so the Deployment and ServiceAccount) name in every test namespace.
pub const RELEASE: &str = "lakeform";

/// How long the chart may take to install and its pod to become Ready (the leader).
const READY: Duration = Duration::from_secs(120);

/// A running operator; uninstalled (its log saved first) when dropped.
pub struct Operator {
    /// Address (pod IP:port) of its /metrics endpoint.
    pub metrics: String,
    /// Where its log is saved when the test is done with it.
    pub log: PathBuf,
    ns: String,
    env: Env,
    /// The operator receives bucket notifications.
    events: bool,
}

impl Operator {
    /// Install the chart with `--resync <resync>` (e.g. `3s`) and wait until it is Ready.
    pub fn start(ctx: &TestContext, resync: &str) -> Result<Operator> {
        Operator::install(ctx, resync, false)
    }

    /// [`Operator::start`], plus the bucket-notification receiver behind the events Service on
    /// the fixed cluster IP and port MinIO's webhook target `LAKEFORM` delivers to
    /// (`LAKEFORM_EVENTS_ADDRESS`, set by `e2e/up`), with the token it sends. One receiving
    /// operator at a time.
    pub fn start_with_events(ctx: &TestContext, resync: &str) -> Result<Operator> {
        Operator::install(ctx, resync, true)
    }

    fn install(ctx: &TestContext, resync: &str, events: bool) -> Result<Operator> {
        let mut op = Operator {
            metrics: String::new(),
            log: ctx
                .env
                .cache
                .join("logs")
                .join(format!("operator-{}.log", ctx.ns)),
            ns: ctx.ns.clone(),
            env: ctx.env.clone(),
            events,
        };
        if events {
            op.events_secret()?;
        }
        let args = op.helm_install_args(resync)?;
        let out = op.helm(&args)?;
        if !out.status.success() {
            bail!(
                "helm install of the operator failed:\n{}\n{}",
                text(&out),
                op.report()
            );
        }
        op.wait_ready()?;
        Ok(op)
    }

    fn helm_install_args(&self, resync: &str) -> Result<Vec<String>> {
        let (repository, tag) = self
            .env
            .image
            .rsplit_once(':')
            .filter(|(repo, tag)| !tag.contains('/') && !repo.is_empty())
            .with_context(|| format!("the e2e image {:?} has no tag", self.env.image))?;
        let chart = repo_root().join("charts/lakeform");
        let mut args: Vec<String> = vec![
            "install".into(),
            RELEASE.into(),
            chart.display().to_string(),
        ];
        let mut set = |key: &str, value: &str| {
            args.push("--set-string".into());
            args.push(format!("{key}={value}"));
        };
        set("image.repository", repository);
        set("image.tag", tag);
        // the image exists only in the node's containerd
        set("image.pullPolicy", "Never");
        set("watchNamespaces[0]", &self.ns);
        set("resync", resync);
        // helm splits --set values on commas
        set("logLevel", r"info\,lakeform=debug\,kube=warn");
        if self.events {
            let address = self.env.events_address.clone().context(
                "LAKEFORM_EVENTS_ADDRESS is not set: the e2e environment predates the events \
                 Service; run e2e/up again",
            )?;
            let (ip, port) = address
                .rsplit_once(':')
                .with_context(|| format!("LAKEFORM_EVENTS_ADDRESS {address:?} is not ip:port"))?;
            set("events.existingSecret", "e2e-events");
            set("events.service.clusterIP", ip);
            args.extend(["--set".into(), format!("events.port={port}")]);
            args.extend(["--set".into(), "events.enabled=true".into()]);
        }
        // one release per test namespace: the cluster-scoped built-ins come from e2e/run
        args.extend(["--set".into(), "builtinBlueprints.install=false".into()]);
        Ok(args)
    }

    /// The Secret with the token MinIO's webhook target sends (from the env file).
    fn events_secret(&self) -> Result<()> {
        let token = self
            .env
            .events_token
            .clone()
            .context("LAKEFORM_EVENTS_TOKEN is not set: run e2e/up again")?;
        let out = self.kubectl(&[
            "create",
            "secret",
            "generic",
            "e2e-events",
            &format!("--from-literal=token={token}"),
        ])?;
        if !out.status.success() {
            bail!("creating the events token Secret: {}", text(&out));
        }
        Ok(())
    }

    /// SIGKILL the operator's process in its container, as a crash would, and keep it down
    /// (the Deployment scaled to 0) until [`Operator::restart`].
    pub fn kill9(&mut self) -> Result<()> {
        let pod = self.pod_name()?;
        let container = self.jsonpath(
            &["get", "pod", &pod],
            "{.status.containerStatuses[0].containerID}",
        )?;
        let id = container
            .strip_prefix("containerd://")
            .with_context(|| format!("pod {pod} has no containerd container ({container:?})"))?;
        let ctr = Command::new("ctr")
            .args([
                "--address",
                &self.env.containerd_sock,
                "--namespace",
                "k8s.io",
            ])
            .args(["tasks", "kill", "--signal", "SIGKILL", id])
            .output()
            .context("running ctr tasks kill")?;
        if !ctr.status.success() {
            bail!("killing the operator's container {id}: {}", text(&ctr));
        }
        self.checked(&["scale", "deployment", RELEASE, "--replicas=0"])?;
        self.checked(&[
            "delete",
            "pod",
            &pod,
            "--grace-period=0",
            "--force",
            "--wait=true",
        ])?;
        Ok(())
    }

    /// Start it again after [`Operator::kill9`]; waits until the new pod is Ready.
    pub fn restart(&mut self) -> Result<()> {
        self.checked(&["scale", "deployment", RELEASE, "--replicas=1"])?;
        self.wait_ready()
    }

    /// Wait until the operator's pod is Ready (it leads), and fail at once — with its log —
    /// when its container exits or cannot start, instead of letting the test time out.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY;
        let template = "{range .items[*]}{.metadata.name} \
            {.status.containerStatuses[0].ready} \
            {.status.containerStatuses[0].restartCount} \
            {.status.containerStatuses[0].state.terminated.reason}\
            {.status.containerStatuses[0].state.waiting.reason}{'\\n'}{end}";
        let selector = format!("app.kubernetes.io/instance={RELEASE}");
        loop {
            let pods = self.jsonpath(&["get", "pods", "-l", &selector], template)?;
            for line in pods.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    [_, "true", "0"] => {
                        self.metrics = self.metrics_address()?;
                        return Ok(());
                    }
                    [pod, _, restarts, reason @ ..]
                        if *restarts != "0" || reason.iter().any(|r| fatal(r)) =>
                    {
                        bail!(
                            "the operator's pod {pod} failed to start ({}, restarts: {restarts}):\n{}",
                            reason.join(" "),
                            self.report()
                        )
                    }
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator was not Ready after {}s:\n{}",
                    READY.as_secs(),
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Fails, with the end of its log, if the operator's container has exited or restarted.
    pub fn check_alive(&mut self) -> Result<()> {
        let pod = self.pod_name()?;
        let restarts = self.jsonpath(
            &["get", "pod", &pod],
            "{.status.containerStatuses[0].restartCount}",
        )?;
        let running = self.jsonpath(
            &["get", "pod", &pod],
            "{.status.containerStatuses[0].state.running.startedAt}",
        )?;
        if restarts.trim() != "0" || running.trim().is_empty() {
            bail!(
                "the operator's container exited (restarts: {restarts}); its log:\n{}",
                self.report()
            );
        }
        Ok(())
    }

    /// The value of a Prometheus sample, summed over all label sets whose line starts with
    /// `prefix` (e.g. `lakeform_storage_writes_total`).
    pub async fn metric_sum(&self, prefix: &str) -> Result<f64> {
        let text = http_get(&self.metrics, "/metrics").await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    fn pod_name(&self) -> Result<String> {
        let selector = format!("app.kubernetes.io/instance={RELEASE}");
        let name = self.jsonpath(
            &[
                "get",
                "pods",
                "-l",
                &selector,
                "--field-selector=status.phase!=Failed",
            ],
            "{.items[0].metadata.name}",
        )?;
        if name.is_empty() {
            bail!("the operator has no pod in namespace {}", self.ns);
        }
        Ok(name)
    }

    fn metrics_address(&self) -> Result<String> {
        let pod = self.pod_name()?;
        let ip = self.jsonpath(&["get", "pod", &pod], "{.status.podIP}")?;
        if ip.is_empty() {
            bail!("the operator's pod {pod} has no IP yet");
        }
        Ok(format!("{ip}:8080"))
    }

    /// The operator's pods, their events and the end of their logs (for failures).
    fn report(&self) -> String {
        let mut out = String::new();
        let selector = format!("app.kubernetes.io/instance={RELEASE}");
        for args in [
            vec!["get", "pods", "-l", &selector, "-o", "wide"],
            vec!["logs", "-l", &selector, "--tail=40", "--prefix"],
            vec![
                "logs",
                "-l",
                &selector,
                "--tail=40",
                "--prefix",
                "--previous",
            ],
            vec!["get", "events", "--sort-by=.lastTimestamp"],
        ] {
            match self.kubectl(&args) {
                Ok(o) => out.push_str(&format!("$ kubectl {}\n{}\n", args.join(" "), text(&o))),
                Err(e) => out.push_str(&format!("{e:#}\n")),
            }
        }
        out
    }

    /// Save the log of every container the release ran into [`Operator::log`].
    fn save_log(&self) {
        let selector = format!("app.kubernetes.io/instance={RELEASE}");
        if let Ok(out) = self.kubectl(&["logs", "-l", &selector, "--tail=-1", "--timestamps"]) {
            let _ = std::fs::write(&self.log, &out.stdout);
        }
    }

    fn jsonpath(&self, args: &[&str], path: &str) -> Result<String> {
        let mut all: Vec<&str> = args.to_vec();
        let output = format!("jsonpath={path}");
        all.extend(["-o", &output]);
        let out = self.checked(&all)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn checked(&self, args: &[&str]) -> Result<Output> {
        let out = self.kubectl(args)?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}", args.join(" "), text(&out));
        }
        Ok(out)
    }

    fn kubectl(&self, args: &[&str]) -> Result<Output> {
        run(&self.env.kubectl, &self.env, &self.ns, args)
    }

    fn helm(&self, args: &[String]) -> Result<Output> {
        let helm = self.env.cache.join("bin/helm");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&helm, &self.env, &self.ns, &args)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.save_log();
        let started = Instant::now();
        // The operator stops first (SIGTERM, its graceful shutdown): helm deletes the Deployment
        // and the RBAC together, so a pod still running would see its Role vanish, and every
        // 403 it got would count against the chart in e2e/run's audit check.
        let selector = format!("app.kubernetes.io/instance={RELEASE}");
        for args in [
            vec!["scale", "deployment", RELEASE, "--replicas=0"],
            vec![
                "wait",
                "--for=delete",
                "pod",
                "-l",
                &selector,
                "--timeout=60s",
            ],
        ] {
            if let Err(e) = self.checked(&args) {
                eprintln!("warning: stopping the operator in {}: {e:#}", self.ns);
            }
        }
        // Uninstalled, not left to the namespace's deletion: the events Service's fixed IP must
        // be free for the next receiving operator.
        let args = ["uninstall", RELEASE, "--wait", "--timeout", "60s"].map(String::from);
        match self.helm(&args) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("warning: helm uninstall in {}: {}", self.ns, text(&out)),
            Err(e) => eprintln!("warning: helm uninstall in {}: {e:#}", self.ns),
        }
        println!(
            "stopped and uninstalled the operator in {} in {:.1}s",
            self.ns,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Run `program` (kubectl or helm) against the e2e cluster in namespace `ns`.
fn run(program: &Path, env: &Env, ns: &str, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(["--namespace", ns]);
    if program.ends_with("kubectl") {
        cmd.arg("--request-timeout=30s");
    }
    cmd.args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .output()
        .with_context(|| format!("running {} {}", program.display(), args.join(" ")))
}

/// A container state reason that will not get better by waiting.
fn fatal(reason: &str) -> bool {
    matches!(
        reason,
        "Error"
            | "OOMKilled"
            | "CrashLoopBackOff"
            | "ErrImageNeverPull"
            | "ErrImagePull"
            | "ImagePullBackOff"
            | "CreateContainerError"
            | "CreateContainerConfigError"
            | "InvalidImageName"
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Plain HTTP/1.0 GET (the metrics endpoint), retried while the server starts.
async fn http_get(addr: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut last = None;
    for _ in 0..50 {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(mut s) => {
                s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
                    .await?;
                let mut buf = String::new();
                s.read_to_string(&mut buf).await?;
                return Ok(buf
                    .split_once("\r\n\r\n")
                    .map(|(_, b)| b.to_string())
                    .unwrap_or_default());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("GET http://{addr}{path}: {last:?}")
}
