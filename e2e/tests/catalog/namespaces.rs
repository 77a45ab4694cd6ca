//! Namespaces appear with the spec's properties (read back with PyIceberg), re-applying writes
//! nothing, a catalog outage is reported and recovered from without restarting the operator,
//! removed empty namespaces are dropped under `deletionPolicy: Delete`, and no secret value
//! appears in status, events, ConfigMaps or the operator's log.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use lakeform_api::DataLake;
use lakeform_e2e::TestContext;
use lakeform_e2e::catalog_server::CatalogServer;
use lakeform_e2e::operator::Operator;

use crate::storage::common::{
    apply, delete_lake, events, secret, wait_condition, wait_event, wait_ready,
};

type Namespaces = BTreeMap<String, BTreeMap<String, String>>;

/// Namespaces and properties as PyIceberg sees them.
async fn pyiceberg_namespaces(ctx: &TestContext, uri: &str) -> Result<Namespaces> {
    let script = lakeform_e2e::repo_root().join("e2e/py/namespaces.py");
    let out = tokio::process::Command::new(&ctx.env.python)
        .arg(&script)
        .arg(uri)
        .output()
        .await
        .context("running PyIceberg")?;
    ensure!(
        out.status.success(),
        "PyIceberg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn lake_yaml(name: &str, ctx: &TestContext, catalog: &str, databases: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {{name: {name}}}
spec:
  storage:
    deletionPolicy: Delete
    external:
      endpoint: {endpoint}
      credentials: {{secretName: s3}}
  zones:
    - name: raw
    - name: curated
  catalog:
    external:
      uri: {catalog}
      warehouse: {warehouse}
    databases:
{databases}",
        endpoint = ctx.env.s3_endpoint,
        warehouse = ctx.env.catalog_warehouse,
    )
}

const DATABASES: &str = "      - name: landing
        zone: raw
        description: Files as they arrive.
      - name: sales
        zone: curated
        properties: {team: finance}
";

#[tokio::test]
async fn external_catalog_namespaces_outage_and_secrets() -> Result<()> {
    let ctx = TestContext::new("catalog").await?;
    let lake = format!("ct{}", &ctx.ns[ctx.ns.len() - 6..]);
    let mut server = CatalogServer::start(&ctx.env, &ctx.ns).await?;
    secret(&ctx, "s3", &ctx.env.s3_access_key, &ctx.env.s3_secret_key).await?;
    let op = Operator::start(&ctx, "2s")?;
    apply(&ctx, &lake_yaml(&lake, &ctx, &server.uri, DATABASES)).await?;
    let ready = wait_ready(&ctx, &lake).await?;
    let status = ready.status.clone().unwrap_or_default();
    ensure!(status.endpoints.as_ref().and_then(|e| e.catalog.clone()) == Some(server.uri.clone()));

    let seen = pyiceberg_namespaces(&ctx, &server.uri).await?;
    let landing = seen
        .get("landing")
        .context("namespace landing listed by PyIceberg")?;
    ensure!(
        landing.get("comment").map(String::as_str) == Some("Files as they arrive."),
        "{landing:?}"
    );
    ensure!(
        landing.get("location") == Some(&format!("s3://{lake}-raw/landing")),
        "{landing:?}"
    );
    let sales = seen.get("sales").context("namespace sales")?;
    ensure!(sales.get("team").map(String::as_str) == Some("finance"));
    ensure!(sales.get("location") == Some(&format!("s3://{lake}-curated/sales")));
    ensure!(sales.get("lakeform.dev/owner") == Some(&format!("{}/{lake}", ctx.ns)));

    // Re-applying the same manifest changes nothing: no catalog write, no status write.
    let writes = op.metric_sum("lakeform_catalog_writes_total").await?;
    let rv = ctx
        .api::<DataLake>()
        .get(&lake)
        .await?
        .metadata
        .resource_version;
    apply(&ctx, &lake_yaml(&lake, &ctx, &server.uri, DATABASES)).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        op.metric_sum("lakeform_catalog_writes_total").await? == writes,
        "re-apply wrote to the catalog"
    );
    ensure!(
        ctx.api::<DataLake>()
            .get(&lake)
            .await?
            .metadata
            .resource_version
            == rv,
        "re-apply rewrote the DataLake"
    );
    println!(
        "re-apply: {writes} catalog writes before and after, DataLake resourceVersion unchanged"
    );

    // A property edited in the spec is updated; a removed key is removed.
    let edited = DATABASES.replace("{team: finance}", "{team: revenue}");
    apply(&ctx, &lake_yaml(&lake, &ctx, &server.uri, &edited)).await?;
    crate::storage::common::eventually(
        "property updated in the catalog",
        Duration::from_secs(30),
        || async {
            pyiceberg_namespaces(&ctx, &server.uri)
                .await
                .ok()
                .and_then(|n| n.get("sales").and_then(|p| p.get("team").cloned()))
                == Some("revenue".to_string())
        },
    )
    .await?;

    // Outage: the catalog stops → CatalogReady=False; it comes back → Ready, same operator.
    server.stop();
    let down = wait_condition(&ctx, &lake, "CatalogReady", "False", "CatalogUnreachable").await?;
    ensure!(
        crate::storage::common::condition(&down, "Ready").map(|c| c.1)
            == Some("CatalogUnreachable".into())
    );
    wait_event(&ctx, &lake, "Warning", "CatalogUnreachable").await?;
    server.restart().await?;
    wait_ready(&ctx, &lake).await?;
    op_alive(&op)?;

    // Removing a database with deletionPolicy Delete drops its (empty) namespace.
    apply(
        &ctx,
        &lake_yaml(
            &lake,
            &ctx,
            &server.uri,
            "      - name: landing\n        zone: raw\n",
        ),
    )
    .await?;
    crate::storage::common::eventually(
        "namespace sales dropped",
        Duration::from_secs(30),
        || async {
            pyiceberg_namespaces(&ctx, &server.uri)
                .await
                .is_ok_and(|n| !n.contains_key("sales") && n.contains_key("landing"))
        },
    )
    .await?;

    // No secret value in status, events, ConfigMaps or the operator's log.
    let secret_value = ctx.env.s3_secret_key.clone();
    let status = serde_json::to_string(&ctx.api::<DataLake>().get(&lake).await?.status)?;
    let evs = format!("{:?}", events(&ctx, &lake).await?);
    let cms = serde_json::to_string(
        &ctx.api::<ConfigMap>()
            .list(&ListParams::default())
            .await?
            .items,
    )?;
    let log = std::fs::read_to_string(&op.log).unwrap_or_default();
    for (what, text) in [
        ("status", &status),
        ("events", &evs),
        ("ConfigMaps", &cms),
        ("operator log", &log),
    ] {
        ensure!(
            !text.contains(&secret_value),
            "the S3 secret key appears in {what}"
        );
    }
    println!(
        "checked status ({} B), events ({} B), ConfigMaps ({} B) and the operator log ({} B): no secret value",
        status.len(),
        evs.len(),
        cms.len(),
        log.len()
    );

    delete_lake(&ctx, &lake).await?;
    let left = pyiceberg_namespaces(&ctx, &server.uri).await?;
    ensure!(
        !left.contains_key("landing"),
        "deletionPolicy Delete drops the lake's empty namespaces: {left:?}"
    );
    Ok(())
}

fn op_alive(op: &Operator) -> Result<()> {
    let text = std::fs::read_to_string(&op.log).unwrap_or_default();
    ensure!(
        !text.contains("panicked"),
        "operator panicked; log: {}",
        op.log.display()
    );
    Ok(())
}
