//! Least privilege in a managed lake, checked with the keys themselves against its own MinIO:
//! the crawl Job signs with the Crawler's identity (never the root keys), and those keys read
//! its target but not a bucket it does not crawl; a data-location Grant gives `bob` keys of
//! his own in a Secret only he may read — they read under the granted prefix and nothing else
//! (MinIO answers AccessDenied), while Trino refuses bob's query; deleting the Grant removes
//! his MinIO user (timed) and his Secret; a Workflow's sql step signs with the Workflow's own
//! identity and writes what Trino reads back.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, Secret};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{ListParams, PostParams};
use lakeform_api::grant::Grant;
use lakeform_e2e::{Env, TestContext, lake};

use lakeform_api::workflow_run::Phase;

use super::support::{rows, secret_value};
use crate::grants::{Expect, until, wait_grant};
use crate::storage::common::{apply, eventually};
use crate::workflow::common::{run_yaml, wait_finished};

/// The bucket nobody crawls (the `archive` zone).
const ARCHIVE: &str = "ml-archive";
/// The Crawler's identity Secret.
const CRAWLER_SECRET: &str = "orders-crawler-s3";
/// bob's identity Secret.
const BOB_SECRET: &str = "ml-s3-user-bob";

/// Everything this module shows, in order. `endpoint`: the lake's MinIO as this host reaches it;
/// `root`: a client with the root keys (the test's, to put objects).
pub async fn least_privilege(
    ctx: &TestContext,
    lake: &str,
    endpoint: &str,
    root: &aws_sdk_s3::Client,
) -> Result<()> {
    crawl_jobs_hold_no_root_keys(ctx).await?;
    for (key, body) in [("shared/a.csv", "a\n1\n"), ("private/b.csv", "b\n2\n")] {
        lake::put_object(root, ARCHIVE, key, body.as_bytes().to_vec()).await?;
    }
    let crawler = client(ctx, endpoint, CRAWLER_SECRET).await?;
    let data = lake::list_objects(&crawler, "ml-raw", "data/").await?;
    ensure!(!data.is_empty(), "the crawler's keys list its target");
    lake::get_object(&crawler, "ml-raw", &data[0].0).await?;
    denied(
        lake::get_object(&crawler, ARCHIVE, "shared/a.csv").await,
        "crawler GET archive",
    )?;
    denied(
        lake::list_objects(&crawler, ARCHIVE, "").await,
        "crawler LIST archive",
    )?;
    println!("identities: the Crawler's keys read ml-raw/data/ and nothing of {ARCHIVE}");
    bob_reads_only_his_prefix(ctx, lake, endpoint).await?;
    workflow_signs_as_itself(ctx, lake).await
}

/// A Workflow's sql step signs with the Workflow's identity (its Job names that Secret and
/// never the root one), reads `sales.orders` and overwrites `sales.order_totals` (a commit
/// through Nessie's REST API with its `defaults.prefix`): Trino reads the same totals as from
/// the source table.
async fn workflow_signs_as_itself(ctx: &TestContext, lake: &str) -> Result<()> {
    let workflow = format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: totals}}
spec:
  lakeRef: {{name: {lake}}}
  steps:
    - name: sum
      sql:
        statements: ['SELECT count(*) AS n, sum(amount) AS total FROM sales.orders']
        target: {{database: sales, table: order_totals}}
        mode: Overwrite
  triggers: [{{name: manual, onDemand: {{}}}}]
"
    );
    apply(ctx, &workflow).await?;
    apply(ctx, &run_yaml("totals-1", "totals", "", None)).await?;
    let run = wait_finished(ctx, "totals-1").await?;
    let phase = run.status.as_ref().and_then(|s| s.phase);
    ensure!(
        phase == Some(Phase::Succeeded),
        "the sql step run: {:?}",
        run.status
    );
    let jobs = ctx
        .api::<Job>()
        .list(&ListParams::default().labels("lakeform.dev/workflow-run=totals-1"))
        .await?;
    for job in &jobs.items {
        let secrets = env_secrets(&job_env(job));
        ensure!(
            !secrets.is_empty() && secrets.iter().all(|s| s == "totals-workflow-s3"),
            "the step's keys come from the Workflow's identity only: {secrets:?}"
        );
    }
    let source = rows(
        ctx,
        lake,
        "SELECT count(*), sum(amount) FROM lake.sales.orders",
    )
    .await?;
    let written = rows(ctx, lake, "SELECT n, total FROM lake.sales.order_totals").await?;
    ensure!(
        written == source,
        "the step wrote {written:?}, the source sums to {source:?}"
    );
    println!("identities: a sql step signed as its Workflow wrote {written:?}");
    Ok(())
}

/// The crawl Jobs name the Crawler's Secret and no env var of theirs comes from the root
/// credentials; the crawl Role may read that one Secret.
async fn crawl_jobs_hold_no_root_keys(ctx: &TestContext) -> Result<()> {
    let jobs = ctx
        .api::<Job>()
        .list(&ListParams::default().labels("lakeform.dev/crawler=orders"))
        .await?;
    ensure!(!jobs.items.is_empty(), "no crawl Job of orders");
    for job in &jobs.items {
        let env = job_env(job);
        let named = env
            .iter()
            .find(|e| e.name == "LAKEFORM_S3_CREDENTIALS_SECRET")
            .and_then(|e| e.value.clone());
        ensure!(
            named.as_deref() == Some(CRAWLER_SECRET),
            "the crawl Job signs with {CRAWLER_SECRET}: {env:?}"
        );
        let root = env_secrets(&env).iter().any(|s| s == "ml-minio-root");
        ensure!(!root, "a crawl Job reads the root keys: {env:?}");
    }
    let role = ctx.api::<Role>().get("orders-crawler").await?;
    let secrets: Vec<String> = role
        .rules
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.resources.as_deref() == Some(&["secrets".to_string()]))
        .flat_map(|r| r.resource_names.unwrap_or_default())
        .collect();
    ensure!(
        secrets == [CRAWLER_SECRET],
        "the crawl Role reads only its identity: {secrets:?}"
    );
    Ok(())
}

/// bob's data-location Grant on `archive/shared/`: enforced by MinIO, his Secret readable by
/// him alone, his keys read only under the prefix; Trino refuses him; revoked when deleted.
async fn bob_reads_only_his_prefix(ctx: &TestContext, lake: &str, endpoint: &str) -> Result<()> {
    let grant = format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Grant
metadata: {{name: bob-archive}}
spec:
  lakeRef: {{name: {lake}}}
  principal: {{kind: User, name: bob}}
  resource: {{dataLocation: {{zone: archive, prefix: shared/}}}}
  permissions: [SELECT]
"
    );
    apply(ctx, &grant).await?;
    let g = wait_grant(ctx, "bob-archive", "True", "Enforced").await?;
    let by = g.status.and_then(|s| s.enforced_by);
    ensure!(by.as_deref() == Some("MinIO"), "enforced by MinIO: {by:?}");
    ensure!(
        may_read(ctx, "bob", BOB_SECRET).await?,
        "bob may read his Secret"
    );
    ensure!(
        !may_read(ctx, "alice", BOB_SECRET).await?,
        "alice may not read bob's Secret"
    );
    let bob = client(ctx, endpoint, BOB_SECRET).await?;
    let body = lake::get_object(&bob, ARCHIVE, "shared/a.csv").await?;
    ensure!(body == b"a\n1\n", "bob reads the granted object");
    let listed = lake::list_objects(&bob, ARCHIVE, "shared/").await?;
    ensure!(
        listed.len() == 1,
        "bob lists the granted prefix: {listed:?}"
    );
    denied(
        lake::get_object(&bob, ARCHIVE, "private/b.csv").await,
        "bob GET private/",
    )?;
    denied(
        lake::list_objects(&bob, ARCHIVE, "").await,
        "bob LIST the bucket",
    )?;
    denied(
        lake::list_objects(&bob, "ml-raw", "data/").await,
        "bob LIST ml-raw",
    )?;
    let put = lake::put_object(&bob, ARCHIVE, "shared/new.csv", b"x".to_vec()).await;
    denied(put, "bob PUT with SELECT only")?;
    println!("identities: bob's keys read {ARCHIVE}/shared/ only (MinIO: AccessDenied elsewhere)");
    ensure!(
        may_read(ctx, "bob", "ml-trino-user-bob").await?
            && !may_read(ctx, "alice", "ml-trino-user-bob").await?,
        "bob's Trino login Secret is his alone"
    );
    let refused = until(
        ctx,
        lake,
        "bob",
        "SELECT count(*) FROM lake.sales.orders",
        Expect::Denied,
    )
    .await?;
    println!("identities: Trino refuses bob ({refused:.1} s after his Grant was Ready)");
    revoke(ctx, &bob).await
}

/// Delete bob's Grant: his keys stop working and his Secret goes; prints how long it took.
async fn revoke(ctx: &TestContext, bob: &aws_sdk_s3::Client) -> Result<()> {
    let start = Instant::now();
    ctx.api::<Grant>()
        .delete("bob-archive", &Default::default())
        .await?;
    loop {
        if let Err(e) = lake::get_object(bob, ARCHIVE, "shared/a.csv").await {
            ensure!(
                format!("{e:#}").contains("InvalidAccessKeyId"),
                "a removed user's keys are unknown to MinIO: {e:#}"
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("bob's keys still read 60 s after his Grant was deleted");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let revoked = start.elapsed().as_secs_f64();
    eventually("bob's Secret pruned", Duration::from_secs(60), || async {
        ctx.api::<Secret>()
            .get_opt(BOB_SECRET)
            .await
            .is_ok_and(|s| s.is_none())
    })
    .await?;
    println!("identities: the Grant deleted, MinIO refused bob's keys after {revoked:.1} s");
    Ok(())
}

/// The environment of a Job's (first) container.
fn job_env(job: &Job) -> Vec<EnvVar> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
}

/// The Secrets an environment takes values from.
fn env_secrets(env: &[EnvVar]) -> Vec<String> {
    env.iter()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|s| s.name.clone())
        .collect()
}

/// An S3 client signing with the keys in `secret`.
async fn client(ctx: &TestContext, endpoint: &str, secret: &str) -> Result<aws_sdk_s3::Client> {
    let env = Env {
        s3_endpoint: endpoint.to_string(),
        s3_access_key: secret_value(ctx, secret, "AWS_ACCESS_KEY_ID").await?,
        s3_secret_key: secret_value(ctx, secret, "AWS_SECRET_ACCESS_KEY").await?,
        ..ctx.env.clone()
    };
    Ok(lake::s3_client(&env))
}

/// `result` is MinIO's AccessDenied.
fn denied<T>(result: Result<T>, what: &str) -> Result<()> {
    match result {
        Ok(_) => bail!("{what}: allowed, should be AccessDenied"),
        Err(e) if format!("{e:#}").contains("AccessDenied") => Ok(()),
        Err(e) => Err(e).context(format!("{what}: should be AccessDenied")),
    }
}

/// Whether the API server lets `user` get the Secret `name` in the test namespace.
async fn may_read(ctx: &TestContext, user: &str, name: &str) -> Result<bool> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ctx.ns.clone()),
                verb: Some("get".into()),
                resource: Some("secrets".into()),
                name: Some(name.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: kube::Api<SubjectAccessReview> = kube::Api::all(ctx.client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}
