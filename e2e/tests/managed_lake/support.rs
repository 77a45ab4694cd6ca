//! What the managed-lake scenario needs around the cluster: the images under test, the lake's
//! manifest, its Services' addresses from this host, `lakeform query` and PyIceberg.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::ListParams;
use lakeform_api::DataLake;
use lakeform_e2e::{TestContext, wait_for};

/// How long a managed lake may take to become Ready: four components' pods start on a 2-core
/// node beside the rest of the suite (Trino's JVM alone needs about a minute there).
pub const START: Duration = Duration::from_secs(600);

/// The images of the lake's components, from `e2e/run` (`images/build-lake --print`).
pub struct Images {
    pub minio: String,
    pub postgres: String,
    pub trino: String,
    pub nessie: String,
}

impl Images {
    /// `LAKEFORM_E2E_{MINIO,POSTGRES,TRINO,NESSIE}_IMAGE`; an error naming the missing one.
    pub fn from_env() -> Result<Images> {
        let var =
            |name: &str| {
                let key = format!("LAKEFORM_E2E_{name}_IMAGE");
                std::env::var(&key).ok().filter(|v| !v.is_empty()).with_context(|| {
                format!(
                    "{key} is not set: run the suite through e2e/run, which builds the managed \
                     lake's images (images/build-lake) and names them"
                )
            })
            };
        Ok(Images {
            minio: var("MINIO")?,
            postgres: var("POSTGRES")?,
            trino: var("TRINO")?,
            nessie: var("NESSIE")?,
        })
    }
}

/// The DataLake `name`: managed MinIO (zones `raw`, `curated`), the managed Nessie catalog with
/// its managed PostgreSQL and the database `sales` in `curated`, a Trino coordinator that runs
/// the queries itself (no workers: two cores), a workgroup `capped` whose one user may scan 1 KiB
/// per query, a `config.properties` override and a pod label by `podOverrides`.
pub fn lake_yaml(name: &str, images: &Images, policy: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {{name: {name}}}
spec:
  storage:
    deletionPolicy: {policy}
    managed:
      image: {minio}
      volumeSize: 1Gi
      resources: {{requests: {{cpu: 50m, memory: 256Mi}}, limits: {{memory: 1Gi}}}}
  zones: [{{name: raw}}, {{name: curated}}, {{name: archive}}]
  catalog:
    managed:
      image: {nessie}
      resources: {{requests: {{cpu: 50m, memory: 256Mi}}, limits: {{memory: 1Gi}}}}
      database:
        managed:
          image: {postgres}
          volumeSize: 1Gi
          resources: {{requests: {{cpu: 50m, memory: 64Mi}}, limits: {{memory: 512Mi}}}}
    databases:
      - {{name: sales, zone: curated}}
  queryEngine:
    trino:
      image: {trino}
      workers: {{replicas: 0}}
      coordinator:
        resources: {{requests: {{cpu: 100m, memory: 1Gi}}, limits: {{memory: 2Gi}}}}
      configOverrides:
        config.properties: {{query.max-execution-time: 42m}}
      podOverrides:
        metadata: {{labels: {{lakeform-e2e/override: applied}}}}
    workgroups:
      - {{name: capped, users: [capped], maxScanBytes: 1Ki}}
",
        minio = images.minio,
        nessie = images.nessie,
        postgres = images.postgres,
        trino = images.trino,
    )
}

/// Wait until the lake is Ready for its current generation (up to [`START`]); on timeout the
/// error shows its conditions and its pods' states.
pub async fn wait_ready(ctx: &TestContext, name: &str) -> Result<DataLake> {
    let ready = wait_for(
        &ctx.api::<DataLake>(),
        name,
        "Ready=True",
        START,
        |l: Option<&DataLake>| {
            l.is_some_and(|l| {
                l.status.as_ref().and_then(|s| s.observed_generation) == l.metadata.generation
                    && crate::storage::common::condition(l, "Ready").map(|c| c.0)
                        == Some("True".into())
            })
        },
    )
    .await;
    match ready {
        Ok(lake) => Ok(lake),
        Err(e) => bail!("{e:#}\npods:\n{}", pods_report(ctx, name).await),
    }
}

/// The lake's pods (label `app.kubernetes.io/instance=<lake>`).
pub async fn lake_pods(ctx: &TestContext, lake: &str) -> Result<Vec<Pod>> {
    let selector = format!("app.kubernetes.io/instance={lake}");
    Ok(ctx
        .api::<Pod>()
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// Whether every container of the pod is ready.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// One line per pod of the lake: name, phase, readiness, waiting reasons.
async fn pods_report(ctx: &TestContext, lake: &str) -> String {
    let Ok(pods) = lake_pods(ctx, lake).await else {
        return "(could not list the pods)".into();
    };
    pods.iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let waiting: Vec<String> = status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                .collect();
            format!(
                "  {} {} ready={} {}",
                p.metadata.name.clone().unwrap_or_default(),
                status.phase.unwrap_or_default(),
                pod_ready(p),
                waiting.join(",")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `http://<cluster IP>:<port>` of a Service: kube-proxy routes this host's own connections to
/// cluster IPs, and this host cannot resolve cluster DNS names.
pub async fn service_url(ctx: &TestContext, service: &str) -> Result<String> {
    let svc = ctx.api::<Service>().get(service).await?;
    let spec = svc.spec.unwrap_or_default();
    let ip = spec.cluster_ip.context("no cluster IP")?;
    let port = spec
        .ports
        .and_then(|p| p.first().map(|p| p.port))
        .context("no port")?;
    Ok(format!("http://{ip}:{port}"))
}

/// A key of a Secret as text.
pub async fn secret_value(ctx: &TestContext, secret: &str, key: &str) -> Result<String> {
    let s = ctx.api::<Secret>().get(secret).await?;
    let value = s
        .data
        .and_then(|d| d.get(key).cloned())
        .with_context(|| format!("Secret {secret} has no key {key}"))?;
    Ok(String::from_utf8(value.0)?)
}

/// `lakeform query NS/LAKE SQL [--user USER]`: (exit success, stdout, stderr).
pub async fn query(
    ctx: &TestContext,
    lake: &str,
    sql: &str,
    user: Option<&str>,
) -> Result<(bool, String, String)> {
    query_as(ctx, lake, sql, user, None).await
}

/// [`query`] with `password` (`$LAKEFORM_TRINO_PASSWORD`) instead of the user's login Secret.
pub async fn query_as(
    ctx: &TestContext,
    lake: &str,
    sql: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<(bool, String, String)> {
    let bin = lakeform_e2e::lakeform_bin()?;
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("query")
        .arg(format!("{}/{lake}", ctx.ns))
        .arg(sql)
        .arg("--kubeconfig")
        .arg(&ctx.env.kubeconfig)
        .arg("--timeout")
        .arg("240")
        .env_remove("LAKEFORM_TRINO_PASSWORD")
        .kill_on_drop(true);
    if let Some(user) = user {
        cmd.arg("--user").arg(user);
    }
    if let Some(password) = password {
        cmd.env("LAKEFORM_TRINO_PASSWORD", password);
    }
    let out = cmd.output().await.context("running lakeform query")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `lakeform query` that must succeed: its output lines without the header.
pub async fn rows(ctx: &TestContext, lake: &str, sql: &str) -> Result<Vec<String>> {
    let (ok, stdout, stderr) = query(ctx, lake, sql, None).await?;
    ensure!(ok, "lakeform query {sql:?} failed:\n{stdout}{stderr}");
    Ok(stdout.lines().skip(1).map(str::to_string).collect())
}

/// Row count and sum of `amount` of `sales.<table>` as PyIceberg reads them: the table from the
/// Nessie REST API, its files from the lake's MinIO (`e2e/py/table_stats.py`).
pub async fn pyiceberg_stats(
    ctx: &TestContext,
    lake: &str,
    table: &str,
    s3: &BTreeMap<&str, String>,
) -> Result<(u64, f64)> {
    let nessie = service_url(ctx, &format!("{lake}-nessie")).await?;
    let script = lakeform_e2e::repo_root().join("e2e/py/table_stats.py");
    let out = tokio::process::Command::new(&ctx.env.python)
        .arg(&script)
        .args(["pyiceberg", "sales", table])
        .envs(s3.iter().map(|(k, v)| (*k, v.as_str())))
        .env("LAKEFORM_CATALOG_URI", format!("{nessie}/iceberg"))
        .env("LAKEFORM_CATALOG_WAREHOUSE", lake)
        .env("LAKEFORM_S3_IGNORE_CATALOG_ENDPOINT", "1")
        .kill_on_drop(true)
        .output()
        .await
        .context("running PyIceberg")?;
    ensure!(
        out.status.success(),
        "table_stats.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let t = &stats[table];
    Ok((
        t["rows"].as_u64().context("rows")?,
        t["sums"]["amount"].as_f64().context("sum of amount")?,
    ))
}
