//! Run the real `lakeform run` operator process for a test, scoped to the test's namespace
//! (its own leader-election Lease there), with its log in the cache folder.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::TestContext;
use crate::env::lakeform_bin;

/// A running operator; killed when dropped.
pub struct Operator {
    child: Option<Child>,
    /// Address of its /metrics endpoint.
    pub metrics: String,
    /// Its log file.
    pub log: PathBuf,
    ns: String,
    resync: String,
    kubeconfig: PathBuf,
    restarts: u32,
    /// `--events-address` and its token, when this operator receives bucket notifications.
    events: Option<(String, String)>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Operator {
    /// Start `lakeform run --namespace <test ns>` with the given resync interval (e.g. `3s`).
    pub fn start(ctx: &TestContext, resync: &str) -> Result<Operator> {
        Operator::launch(ctx, resync, None)
    }

    fn launch(
        ctx: &TestContext,
        resync: &str,
        events: Option<(String, String)>,
    ) -> Result<Operator> {
        let mut op = Operator {
            child: None,
            metrics: String::new(),
            log: ctx
                .env
                .cache
                .join("logs")
                .join(format!("operator-{}.log", ctx.ns)),
            ns: ctx.ns.clone(),
            resync: resync.to_string(),
            kubeconfig: ctx.env.kubeconfig.clone(),
            restarts: 0,
            events,
        };
        op.spawn()?;
        Ok(op)
    }

    /// [`Operator::start`], plus the bucket-notification receiver on the address MinIO's
    /// webhook target `LAKEFORM` delivers to. One such operator at a time (it is one port).
    pub fn start_with_events(ctx: &TestContext, resync: &str) -> Result<Operator> {
        let address = ctx.env.events_address.clone().context(
            "LAKEFORM_EVENTS_ADDRESS is not set: the e2e environment predates the webhook \
             target; run e2e/up again",
        )?;
        let token = ctx.env.events_token.clone().unwrap_or_default();
        Operator::launch(ctx, resync, Some((address, token)))
    }

    fn spawn(&mut self) -> Result<()> {
        let port = free_port()?;
        self.metrics = format!("127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = Command::new(lakeform_bin()?)
            .args([
                "run",
                "--namespace",
                &self.ns,
                "--lease-namespace",
                &self.ns,
            ])
            .args(["--metrics-address", &self.metrics, "--resync", &self.resync])
            .arg("--identity")
            .arg(format!("e2e-{}-{}", self.ns, self.restarts))
            .env("KUBECONFIG", &self.kubeconfig)
            // only an operator asked to receives notifications (the address is one port)
            .env_remove("LAKEFORM_EVENTS_ADDRESS")
            .env_remove("LAKEFORM_EVENTS_TOKEN")
            .args(
                self.events
                    .iter()
                    .flat_map(|(addr, _)| ["--events-address".to_string(), addr.clone()]),
            )
            .envs(
                self.events
                    .iter()
                    .map(|(_, token)| ("LAKEFORM_EVENTS_TOKEN", token.clone())),
            )
            .env("RUST_LOG", "info,lakeform=debug,kube=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting `lakeform run`")?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL the process (no graceful shutdown), as a crash would.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().context("killing the operator")?;
            c.wait().context("reaping the operator")?;
        }
        Ok(())
    }

    /// Start it again after [`Operator::kill9`].
    pub fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.restarts += 1;
        self.spawn()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            bail!(
                "the operator exited with {status}; log: {}",
                self.log.display()
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
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Plain HTTP/1.0 GET on loopback (the metrics endpoint), retried while the server starts.
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
