//! The managed-lake scenario (see the module doc): start, crawl, query, refuse, retain,
//! re-create, delete.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use lakeform_api::crawler::{Crawler, RunResult};
use lakeform_e2e::operator::Operator;
use lakeform_e2e::{Env, TestContext, lake, wait_for, wait_for_deleted};

use super::support::{
    Images, START, lake_pods, lake_yaml, pod_ready, pyiceberg_stats, query, rows, secret_value,
    service_url, wait_ready,
};
use crate::crawler_controller::common::{annotate, crawler_jobs, crawler_yaml, csv};
use crate::storage::common::{apply, bucket_exists, delete_lake, eventually, wait_events};

const LAKE: &str = "ml";
/// The crawled table's files: `orders/part-<i>.csv`, 400 rows each.
const FILES: i64 = 3;
const ROWS_PER_FILE: i64 = 400;
/// The Secrets the operator generates for the lake (kept under `Retain`).
const KEPT_SECRETS: [&str; 2] = ["ml-minio-root", "ml-catalog-pg"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_lake_runs_and_answers_sql() -> Result<()> {
    lake::install_rustls_provider();
    let images = Images::from_env()?;
    let ctx = TestContext::new("managed-lake").await?;
    ctx.require_node().await?;
    let op = Operator::start(&ctx, "3s")?;
    let result = scenario(&ctx, &images).await;
    if result.is_err() {
        // leave nothing behind for the next run: the buckets live in the lake's own MinIO
        let _ = delete_lake(&ctx, LAKE).await;
    }
    drop(op);
    result
}

async fn scenario(ctx: &TestContext, images: &Images) -> Result<()> {
    apply(ctx, &lake_yaml(LAKE, images, "Retain")).await?;
    let ready = wait_ready(ctx, LAKE).await?;
    every_pod_ready(ctx).await?;
    let endpoints = ready
        .status
        .and_then(|s| s.endpoints)
        .context("no status.endpoints")?;
    ensure!(
        endpoints.trino
            == Some(format!(
                "https://ml-trino.{}.svc.cluster.local:8443",
                ctx.ns
            )),
        "the query endpoint in status: {endpoints:?}"
    );
    let s3 = lake_s3(ctx).await?;
    for bucket in ["ml-raw", "ml-curated", "ml-archive"] {
        ensure!(
            bucket_exists(&s3.client, bucket).await,
            "no bucket {bucket} in the lake's MinIO"
        );
    }
    let schemas = rows(ctx, LAKE, "SHOW SCHEMAS FROM lake").await?;
    ensure!(
        schemas.iter().any(|s| s == "sales"),
        "the database sales is not a namespace in Nessie: {schemas:?}"
    );
    let expected = upload_orders(&s3, 0..FILES).await?;
    apply(ctx, &crawler_yaml("orders", LAKE, "sales", "")).await?;
    crawl(ctx, "first", RunResult::Succeeded).await?;
    let counted = count_and_sum(ctx).await?;
    ensure!(
        counted == expected,
        "Trino counted {counted:?}, the files hold {expected:?}"
    );
    let read = pyiceberg_stats(ctx, LAKE, "orders", &s3_env(&s3)).await?;
    ensure!(
        (read.0 as i64, read.1) == expected,
        "PyIceberg read {read:?}, the files hold {expected:?}"
    );
    println!("managed lake: crawled {expected:?} (rows, sum), Trino and PyIceberg agree");
    workgroup_limit_refuses(ctx).await?;
    overrides_applied(ctx).await?;
    super::identities::least_privilege(ctx, LAKE, &s3.env.s3_endpoint, &s3.client).await?;
    let expected = minio_killed_mid_crawl(ctx, &s3, expected).await?;
    retain_then_recreate(ctx, images, expected).await?;
    delete_removes_everything(ctx, images).await
}

async fn every_pod_ready(ctx: &TestContext) -> Result<()> {
    let pods = lake_pods(ctx, LAKE).await?;
    let mut components: Vec<String> = pods
        .iter()
        .filter(|p| pod_ready(p))
        .filter_map(|p| p.labels().get("app.kubernetes.io/component").cloned())
        .collect();
    components.sort();
    components.dedup();
    for want in ["catalog", "catalog-db", "storage", "trino-coordinator"] {
        ensure!(
            components.iter().any(|c| c == want),
            "no Ready pod of {want}: Ready components {components:?}"
        );
    }
    println!("managed lake: Ready pods of {components:?}");
    Ok(())
}

/// The lake's MinIO as this host reaches it: its Service IP and the generated root key.
struct LakeS3 {
    env: Env,
    client: aws_sdk_s3::Client,
}

async fn lake_s3(ctx: &TestContext) -> Result<LakeS3> {
    let mut env = ctx.env.clone();
    env.s3_endpoint = service_url(ctx, "ml-minio").await?;
    env.s3_access_key = secret_value(ctx, "ml-minio-root", "accessKeyId").await?;
    env.s3_secret_key = secret_value(ctx, "ml-minio-root", "secretAccessKey").await?;
    let client = lake::s3_client(&env);
    Ok(LakeS3 { env, client })
}

fn s3_env(s3: &LakeS3) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("LAKEFORM_S3_ENDPOINT", s3.env.s3_endpoint.clone()),
        ("LAKEFORM_S3_REGION", s3.env.s3_region.clone()),
        ("LAKEFORM_S3_ACCESS_KEY", s3.env.s3_access_key.clone()),
        ("LAKEFORM_S3_SECRET_KEY", s3.env.s3_secret_key.clone()),
    ])
}

/// Put the `orders` CSV files `files` into the raw zone; (rows, sum of amount) they hold.
async fn upload_orders(s3: &LakeS3, files: std::ops::Range<i64>) -> Result<(i64, f64)> {
    let (mut rows, mut sum) = (0, 0.0);
    for f in files {
        let start = f * ROWS_PER_FILE;
        // csv(): amount = (i % 9) + 0.5
        sum += (start..start + ROWS_PER_FILE)
            .map(|i| (i % 9) as f64 + 0.5)
            .sum::<f64>();
        rows += ROWS_PER_FILE;
        let key = format!("data/orders/part-{f}.csv");
        lake::put_object(&s3.client, "ml-raw", &key, csv(start, ROWS_PER_FILE)).await?;
    }
    Ok((rows, sum))
}

/// Start an on-demand crawl of the Crawler `orders` with `token` and wait for the report of the
/// Job that token started (`lastRun` holds the previous run's report until the new one ends);
/// when `want` is Succeeded the crawl must have succeeded (else either end is fine).
async fn crawl(ctx: &TestContext, token: &str, want: RunResult) -> Result<RunResult> {
    annotate(
        ctx,
        "orders",
        serde_json::json!({"lakeform.dev/run": token}),
    )
    .await?;
    let job = wait_token_job(ctx, token).await?;
    let crawler = wait_for(
        &ctx.api::<Crawler>(),
        "orders",
        &format!("the crawl of Job {job} to finish"),
        Duration::from_secs(300),
        move |c: Option<&Crawler>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.last_run.as_ref())
                .is_some_and(|r| {
                    r.job_name.as_deref() == Some(job.as_str())
                        && matches!(r.result, Some(RunResult::Succeeded | RunResult::Failed))
                })
        },
    )
    .await?;
    let run = crawler.status.and_then(|s| s.last_run).context("no run")?;
    let result = run.result.clone().context("no result")?;
    ensure!(
        want != RunResult::Succeeded || result == RunResult::Succeeded,
        "the crawl did not succeed: {run:?}"
    );
    Ok(result)
}

/// Wait for the crawl Job annotated with the on-demand `token`; its name.
async fn wait_token_job(ctx: &TestContext, token: &str) -> Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = crawler_jobs(ctx, "orders")
            .await?
            .into_iter()
            .find(|j| j.annotations().get("lakeform.dev/run").map(String::as_str) == Some(token));
        if let Some(name) = job.and_then(|j| j.metadata.name) {
            return Ok(name);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no crawl Job for the token {token} after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// New files, a crawl, and MinIO's pod killed as soon as the crawl's Job exists: the crawl
/// fails or gets through, and the next crawl leaves every row exactly once. Returns the
/// table's (rows, sum) now.
async fn minio_killed_mid_crawl(
    ctx: &TestContext,
    s3: &LakeS3,
    before: (i64, f64),
) -> Result<(i64, f64)> {
    let added = upload_orders(s3, FILES..FILES + 2).await?;
    let expected = (before.0 + added.0, before.1 + added.1);
    let pods = ctx.api::<Pod>();
    let killed = pods.get("ml-minio-0").await?.metadata.uid;
    let kill = async {
        wait_token_job(ctx, "killed").await?;
        pods.delete("ml-minio-0", &DeleteParams::default().grace_period(0))
            .await
            .context("killing MinIO's pod")
    };
    let (interrupted, killing) = tokio::join!(crawl(ctx, "killed", RunResult::Failed), kill);
    killing?;
    let interrupted = interrupted?;
    eventually("MinIO's new pod Ready", START, || async {
        pods.get_opt("ml-minio-0")
            .await
            .ok()
            .flatten()
            .is_some_and(|p| p.metadata.uid != killed && pod_ready(&p))
    })
    .await?;
    wait_ready(ctx, LAKE).await?;
    crawl(ctx, "after-kill", RunResult::Succeeded).await?;
    let counted = count_and_sum(ctx).await?;
    ensure!(
        counted == expected,
        "after MinIO was killed mid-crawl ({interrupted:?}) and a next crawl, Trino counts \
         {counted:?}; the files hold {expected:?}"
    );
    println!("managed lake: MinIO killed mid-crawl ({interrupted:?}), next crawl: {counted:?}");
    Ok(expected)
}

/// `SELECT count(*), sum(amount)` of the crawled table through `lakeform query`.
async fn count_and_sum(ctx: &TestContext) -> Result<(i64, f64)> {
    let lines = rows(
        ctx,
        LAKE,
        "SELECT count(*), sum(amount) FROM lake.sales.orders",
    )
    .await?;
    let line = lines.first().context("no row")?;
    let (count, sum) = line
        .split_once('\t')
        .with_context(|| format!("not two columns: {line:?}"))?;
    Ok((count.parse()?, sum.parse()?))
}

/// The `capped` user's workgroup may scan 1 KiB: its sessions carry the limit, and Trino stops
/// its query once the query has read more. Trino checks running queries' scans about once a
/// second, so the refused query is one that runs for a while (a cross join of the table's `id`
/// column: 3 files of 400 distinct longs, kilobytes); a quick scan ends before any check.
async fn workgroup_limit_refuses(ctx: &TestContext) -> Result<()> {
    let (ok, session, stderr) = query(ctx, LAKE, "SHOW SESSION", Some("capped")).await?;
    let limit = session
        .lines()
        .find(|l| l.starts_with("query_max_scan_physical_bytes\t"))
        .unwrap_or_default();
    ensure!(
        ok && limit.split('\t').nth(1) == Some("1024B"),
        "the capped workgroup's session limit: {limit:?} {stderr}"
    );
    let sql = "SELECT count(*) FROM lake.sales.orders a CROSS JOIN lake.sales.orders b \
               CROSS JOIN lake.sales.orders c WHERE a.id + b.id + c.id >= 0";
    let (ok, stdout, stderr) = query(ctx, LAKE, sql, Some("capped")).await?;
    ensure!(
        !ok && stderr.contains("EXCEEDED_SCAN_LIMIT"),
        "a query over the workgroup's maxScanBytes must be refused by Trino; got ok={ok}:\n\
         {stdout}{stderr}"
    );
    println!(
        "managed lake: workgroup limit: {}",
        stderr.lines().last().unwrap_or_default()
    );
    Ok(())
}

/// `configOverrides` (`query.max-execution-time`, the default of a session property) and
/// `podOverrides` (a label) reach the running coordinator.
async fn overrides_applied(ctx: &TestContext) -> Result<()> {
    let (ok, session, stderr) = query(ctx, LAKE, "SHOW SESSION", None).await?;
    let line = session
        .lines()
        .find(|l| l.starts_with("query_max_execution_time\t"))
        .unwrap_or_default();
    ensure!(
        ok && matches!(line.split('\t').nth(1), Some("42m" | "42.00m")),
        "the config.properties override: {line:?} {stderr}"
    );
    let labelled = lake_pods(ctx, LAKE).await?.into_iter().any(|p| {
        p.labels()
            .get("app.kubernetes.io/component")
            .map(String::as_str)
            == Some("trino-coordinator")
            && p.labels().get("lakeform-e2e/override").map(String::as_str) == Some("applied")
            && pod_ready(&p)
    });
    ensure!(
        labelled,
        "the podOverrides label is on the running coordinator"
    );
    Ok(())
}

/// Delete the lake under `Retain`: its workloads go, its Secrets and volumes stay; the same
/// manifest again brings back a lake that answers with the same rows.
async fn retain_then_recreate(
    ctx: &TestContext,
    images: &Images,
    expected: (i64, f64),
) -> Result<()> {
    let sts = ctx.api::<StatefulSet>().get("ml-minio").await?;
    delete_lake(ctx, LAKE).await?;
    wait_for_deleted(
        &ctx.api::<StatefulSet>(),
        "ml-minio",
        &sts.metadata.uid.unwrap_or_default(),
        "MinIO's StatefulSet garbage-collected",
        START,
    )
    .await?;
    for name in KEPT_SECRETS {
        ensure!(
            ctx.api::<Secret>().get_opt(name).await?.is_some(),
            "Retain keeps the Secret {name}"
        );
    }
    let claims = claims(ctx).await?;
    ensure!(claims.len() == 2, "Retain keeps both volumes: {claims:?}");
    apply(ctx, &lake_yaml(LAKE, images, "Retain")).await?;
    wait_ready(ctx, LAKE).await?;
    let again = count_and_sum(ctx).await?;
    ensure!(
        again == expected,
        "after re-creating the lake Trino counts {again:?}, before {expected:?}"
    );
    println!("managed lake: deleted with Retain and re-created: the same {again:?}");
    Ok(())
}

/// The lake's PVCs (MinIO's and PostgreSQL's).
async fn claims(ctx: &TestContext) -> Result<Vec<String>> {
    Ok(ctx
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n.starts_with("data-ml-"))
        .collect())
}

/// Switch to `Delete` and delete the lake: buckets emptied and removed (its event), then the
/// Secrets and volumes go too.
async fn delete_removes_everything(ctx: &TestContext, images: &Images) -> Result<()> {
    apply(ctx, &lake_yaml(LAKE, images, "Delete")).await?;
    wait_ready(ctx, LAKE).await?;
    delete_lake(ctx, LAKE).await?;
    wait_events(ctx, LAKE, "BucketsDeleted", |events| {
        events
            .iter()
            .any(|(_, reason, _)| reason == "BucketsDeleted")
    })
    .await?;
    eventually("Secrets and volumes removed", START, || async {
        let mut secrets = 0;
        for name in KEPT_SECRETS {
            secrets += ctx
                .api::<Secret>()
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .iter()
                .count();
        }
        secrets == 0 && claims(ctx).await.is_ok_and(|c| c.is_empty())
    })
    .await?;
    let workloads = ctx.api::<Deployment>().list(&ListParams::default()).await?;
    ensure!(
        workloads
            .items
            .iter()
            .all(|d| !d.labels().contains_key("app.kubernetes.io/instance")
                || d.labels()["app.kubernetes.io/instance"] != LAKE),
        "the lake's Deployments are gone"
    );
    println!("managed lake: deleted with Delete: buckets, Secrets and volumes removed");
    Ok(())
}
