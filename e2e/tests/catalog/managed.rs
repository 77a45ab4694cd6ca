//! Managed catalog (the Lakekeeper option + PostgreSQL) and Trino, asserted from the API:
//! Lakekeeper's and Trino's upstream images are not reachable from our node (no registry), so
//! the lake reports `CatalogStarting` / `QueryEngineStarting` and every object is checked as the
//! operator built it — owner references, wiring, no secret values in ConfigMaps, the generated
//! Secrets kept out of garbage collection (they outlive a `Retain` lake), and the config-hash
//! annotation that rolls pods when rendered config changes. `managed_lake` runs a managed lake
//! for real (Nessie, PostgreSQL, MinIO and Trino pods from images built here).

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::Resource;
use kube::api::ListParams;
use lakeform_api::DataLake;
use lakeform_e2e::operator::Operator;
use lakeform_e2e::{TestContext, wait_for, wait_for_deleted};

use crate::storage::common::{SETTLE, apply, delete_lake, eventually, secret, wait_condition};

fn lake_yaml(ctx: &TestContext, workers: i32, file_format: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {{name: mc}}
spec:
  storage:
    external:
      endpoint: {endpoint}
      credentials: {{secretName: s3}}
  zones: [{{name: raw}}, {{name: curated}}]
  catalog:
    managed:
      server: Lakekeeper
      database:
        managed: {{volumeSize: 2Gi}}
    databases:
      - {{name: landing, zone: raw}}
  queryEngine:
    trino:
      workers: {{replicas: {workers}}}
      configOverrides:
        catalog/lake.properties: {{iceberg.file-format: {file_format}}}
    workgroups:
      - {{name: analysts, users: [alice], maxScanBytes: 1Gi, maxConcurrentQueries: 3}}
",
        endpoint = ctx.env.s3_endpoint
    )
}

fn hash(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("lakeform.dev/config-hash").cloned())
        .unwrap_or_default()
}

fn owned_by(obj: &impl Resource, uid: &str) -> bool {
    obj.meta()
        .owner_references
        .as_ref()
        .is_some_and(|r| r.iter().any(|o| o.uid == uid && o.controller == Some(true)))
}

#[tokio::test]
async fn managed_catalog_and_trino_objects() -> Result<()> {
    let ctx = TestContext::new("catalog-managed").await?;
    secret(&ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    let mut op = Operator::start(&ctx, "2s")?;
    apply(&ctx, &lake_yaml(&ctx, 2, "PARQUET")).await?;
    wait_condition(&ctx, "mc", "CatalogReady", "False", "CatalogStarting").await?;
    let lake = wait_condition(
        &ctx,
        "mc",
        "QueryEngineReady",
        "False",
        "QueryEngineStarting",
    )
    .await?;
    let status = lake.status.clone().unwrap_or_default();
    ensure!(
        crate::storage::common::condition(&lake, "StorageReady").map(|c| c.0)
            == Some("True".into())
    );
    let uid = lake.metadata.uid.clone().unwrap_or_default();
    let ns = &ctx.ns;
    let endpoints = status.endpoints.clone().unwrap_or_default();
    ensure!(
        endpoints.catalog
            == Some(format!(
                "http://mc-lakekeeper.{ns}.svc.cluster.local:8181/catalog"
            )),
        "{endpoints:?}"
    );
    ensure!(
        endpoints.trino == Some(format!("https://mc-trino.{ns}.svc.cluster.local:8443")),
        "{endpoints:?}"
    );

    // Catalog: Lakekeeper, its PostgreSQL, migrations — owned by the lake; the generated Secrets
    // are not (a lake deleted with `Retain` leaves them, so a re-created lake reads its data).
    let lk = ctx.api::<Deployment>().get("mc-lakekeeper").await?;
    let pg = ctx.api::<StatefulSet>().get("mc-catalog-pg").await?;
    let jobs = ctx
        .api::<Job>()
        .list(&ListParams::default().labels("app.kubernetes.io/component=catalog-migrate"))
        .await?;
    ensure!(jobs.items.len() == 1, "one migrations Job");
    for (what, ok) in [
        ("Lakekeeper Deployment", owned_by(&lk, &uid)),
        ("PostgreSQL StatefulSet", owned_by(&pg, &uid)),
        ("migrations Job", owned_by(&jobs.items[0], &uid)),
        (
            "Lakekeeper Service",
            owned_by(&ctx.api::<Service>().get("mc-lakekeeper").await?, &uid),
        ),
    ] {
        ensure!(ok, "{what} is owned by the DataLake");
    }
    for name in ["mc-lakekeeper-encryption", "mc-catalog-pg"] {
        let kept = ctx.api::<Secret>().get(name).await?;
        ensure!(
            !owned_by(&kept, &uid),
            "{name} must not be garbage-collected with the lake"
        );
    }
    let lk_env = serde_json::to_string(
        &lk.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| &p.containers),
    )?;
    ensure!(
        lk_env.contains("LAKEKEEPER__PG_ENCRYPTION_KEY") && lk_env.contains("secretKeyRef"),
        "Lakekeeper env from Secrets"
    );

    // Trino: coordinator + workers, Services, ConfigMaps wired to the catalog and storage.
    let coord = ctx.api::<Deployment>().get("mc-trino-coordinator").await?;
    let workers = ctx.api::<Deployment>().get("mc-trino-worker").await?;
    ensure!(owned_by(&coord, &uid) && owned_by(&workers, &uid));
    ensure!(workers.spec.as_ref().and_then(|s| s.replicas) == Some(2));
    let cm = ctx.api::<ConfigMap>().get("mc-trino-coordinator").await?;
    let data = cm.data.clone().unwrap_or_default();
    let catalog = data
        .get("catalog-lake.properties")
        .context("catalog file")?;
    for line in [
        "connector.name=iceberg",
        "iceberg.catalog.type=rest",
        &format!(
            "iceberg.rest-catalog.uri=http://mc-lakekeeper.{ns}.svc.cluster.local:8181/catalog"
        ),
        &format!("s3.endpoint={}", ctx.env.s3_endpoint),
        "s3.aws-access-key=${ENV:LAKE_S3_ACCESS_KEY}",
        "iceberg.file-format=PARQUET",
    ] {
        ensure!(
            catalog.lines().any(|l| l == line),
            "catalog file lacks {line:?}:\n{catalog}"
        );
    }
    ensure!(
        data.keys().any(|k| k.starts_with("resource-groups")),
        "resource groups rendered: {:?}",
        data.keys()
    );
    let conn = ctx.api::<ConfigMap>().get("mc-connection").await?;
    let conn_data = conn.data.clone().unwrap_or_default();
    ensure!(
        conn_data.get("bucket.raw").map(String::as_str) == Some("mc-raw"),
        "{conn_data:?}"
    );
    ensure!(
        status
            .connection_config_map
            .as_ref()
            .map(|r| r.name.as_str())
            == Some("mc-connection")
    );
    let cms = serde_json::to_string(
        &ctx.api::<ConfigMap>()
            .list(&ListParams::default())
            .await?
            .items,
    )?;
    ensure!(
        !cms.contains(&ctx.env.s3_secret_key),
        "a secret value is in a ConfigMap"
    );

    // Rendered config changes roll the pods; scaling workers only scales.
    let (coord_hash, worker_hash) = (hash(&coord), hash(&workers));
    ensure!(!coord_hash.is_empty() && !worker_hash.is_empty());
    apply(&ctx, &lake_yaml(&ctx, 3, "PARQUET")).await?;
    let workers = wait_for(
        &ctx.api::<Deployment>(),
        "mc-trino-worker",
        "3 workers",
        SETTLE,
        |d: Option<&Deployment>| {
            d.is_some_and(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(3))
        },
    )
    .await?;
    ensure!(
        hash(&workers) == worker_hash,
        "scaling workers does not restart them"
    );
    apply(&ctx, &lake_yaml(&ctx, 3, "ORC")).await?;
    let changed = |name: &'static str, before: String| {
        let api = ctx.api::<Deployment>();
        async move {
            wait_for(
                &api,
                name,
                "config hash changed",
                SETTLE,
                move |d: Option<&Deployment>| d.is_some_and(|d| hash(d) != before),
            )
            .await
        }
    };
    changed("mc-trino-coordinator", coord_hash).await?;
    changed("mc-trino-worker", worker_hash).await?;
    println!(
        "config-hash: changed on both roles after a catalog setting changed; unchanged when workers scaled 2 -> 3"
    );

    // Dropping the query engine removes Trino; deleting the lake removes the rest (GC).
    let lk_uid = lk.metadata.uid.clone().unwrap_or_default();
    let no_trino = lake_yaml(&ctx, 3, "ORC");
    let no_trino = &no_trino[..no_trino.find("  queryEngine:").unwrap_or(no_trino.len())];
    apply(&ctx, no_trino).await?;
    eventually("Trino objects pruned", SETTLE, || async {
        ctx.api::<Deployment>()
            .get_opt("mc-trino-coordinator")
            .await
            .ok()
            .flatten()
            .is_none()
            && ctx
                .api::<ConfigMap>()
                .get_opt("mc-trino-worker")
                .await
                .ok()
                .flatten()
                .is_none()
    })
    .await?;
    wait_for(
        &ctx.api::<DataLake>(),
        "mc",
        "no QueryEngineReady condition",
        SETTLE,
        |l: Option<&DataLake>| {
            l.is_some_and(|l| {
                l.status.as_ref().and_then(|s| s.observed_generation) == l.metadata.generation
                    && crate::storage::common::condition(l, "QueryEngineReady").is_none()
            })
        },
    )
    .await?;
    op.check_alive()?;
    delete_lake(&ctx, "mc").await?;
    wait_for_deleted(
        &ctx.api::<Deployment>(),
        "mc-lakekeeper",
        &lk_uid,
        "Lakekeeper garbage-collected",
        SETTLE,
    )
    .await
}
