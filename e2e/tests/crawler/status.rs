//! `lakeform crawl --crawler <ns>/<name>`: the Crawler, its DataLake and the credentials Secret
//! read from the API server, the report written into the Crawler's status (server-side apply,
//! field manager `lakeform`, status subresource).

use anyhow::{Context, Result, ensure};
use iceberg::{Catalog, NamespaceIdent};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use lakeform_api::crawler::{Crawler, RunResult};
use lakeform_api::datalake::DataLake;
use lakeform_e2e::TestContext;
use lakeform_e2e::lake;
use lakeform_worker::crawl::{CrawlArgs, run};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawler_run_for_a_crawler_object_writes_its_status() -> Result<()> {
    lake::install_rustls_provider();
    let ctx = TestContext::new("crawler-status").await?;
    // a REST catalog of the test's own: tests side by side do not contend for one SQLite file
    let server = lakeform_e2e::catalog_server::CatalogServer::start(&ctx.env, &ctx.ns).await?;
    let mut own = ctx.env.clone();
    own.catalog_uri = server.uri.clone();
    let env = &own;
    let s3 = lake::s3_client(env);
    let bucket = lake::unique_name("lakeform-crawl-st");
    let database = bucket.replace('-', "_");
    lake::create_bucket(&s3, &bucket).await?;
    let result = async {
        let corpus = super::corpus::generate()?;
        for (key, body) in corpus
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with("orders/") || k.starts_with("mixed/"))
        {
            lake::put_object(&s3, &bucket, &format!("data/{key}"), body.clone()).await?;
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("lake-s3".into()),
                ..Default::default()
            },
            string_data: Some(
                [
                    ("accessKeyId".to_string(), env.s3_access_key.clone()),
                    ("secretAccessKey".to_string(), env.s3_secret_key.clone()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        ctx.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await?;
        let lake_obj: DataLake = serde_json::from_value(json!({
            "apiVersion": "lakeform.dev/v1alpha1",
            "kind": "DataLake",
            "metadata": {"name": "lake"},
            "spec": {
                "storage": {"external": {
                    "endpoint": env.s3_endpoint, "region": env.s3_region, "pathStyle": true,
                    "credentials": {"secretName": "lake-s3"}
                }},
                "zones": [{"name": "raw", "bucket": bucket}],
                "catalog": {
                    "external": {"uri": env.catalog_uri, "warehouse": env.catalog_warehouse},
                    "databases": [{"name": database, "zone": "raw"}]
                }
            }
        }))?;
        ctx.api::<DataLake>()
            .create(&PostParams::default(), &lake_obj)
            .await?;
        let crawler: Crawler = serde_json::from_value(json!({
            "apiVersion": "lakeform.dev/v1alpha1",
            "kind": "Crawler",
            "metadata": {"name": "corpus"},
            "spec": {
                "lakeRef": {"name": "lake"},
                "database": database,
                "targets": [{"zone": "raw", "prefix": "data/"}],
                "grouping": {"tableLevel": 1}
            }
        }))?;
        ctx.api::<Crawler>()
            .create(&PostParams::default(), &crawler)
            .await?;

        let args = CrawlArgs {
            crawler: Some(format!("{}/corpus", ctx.ns)),
            crawler_file: None,
            lake_file: None,
            job_name: Some("corpus-crawl-1".into()),
            dry_run: false,
            keys: None,
        };
        let outcome = run(args).await.context("crawl of the Crawler object")?;
        ensure!(outcome.run.tables_created == 3, "{:?}", outcome.run);

        let got = ctx.api::<Crawler>().get_status("corpus").await?;
        let status = got.status.clone().context("no status written")?;
        let last = status.last_run.context("no status.lastRun")?;
        ensure!(last.result == Some(RunResult::Succeeded), "{last:?}");
        ensure!(
            last.job_name.as_deref() == Some("corpus-crawl-1"),
            "{last:?}"
        );
        ensure!(
            last.tables_created == 3 && last.objects_scanned == 5,
            "{last:?}"
        );
        ensure!(
            last.start_time.is_some() && last.completion_time.is_some(),
            "{last:?}"
        );
        ensure!(status.table_count == Some(3), "{:?}", status.table_count);
        let names: Vec<&str> = status.tables.iter().map(|t| t.name.as_str()).collect();
        ensure!(names == ["mixed_csv", "mixed_json", "orders"], "{names:?}");
        let managers: Vec<(String, String, String)> = got
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                (
                    m.manager.unwrap_or_default(),
                    m.operation.unwrap_or_default(),
                    m.subresource.unwrap_or_default(),
                )
            })
            .collect();
        ensure!(
            managers.contains(&("lakeform".into(), "Apply".into(), "status".into())),
            "status not applied by field manager lakeform: {managers:?}"
        );
        Ok(())
    }
    .await;

    if let Ok(catalog) = lake::rest_catalog(env).await {
        let ns = NamespaceIdent::new(database.clone());
        for t in catalog.list_tables(&ns).await.unwrap_or_default() {
            let _ = catalog.purge_table(&t).await;
        }
        let _ = catalog.drop_namespace(&ns).await;
    }
    if let Err(e) = lake::delete_bucket(&s3, &bucket).await {
        eprintln!("cleanup: bucket {bucket}: {e}");
    }
    result
}
