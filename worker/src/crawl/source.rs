//! Where a crawl's inputs come from: a Crawler, its DataLake and the credentials Secret in
//! Kubernetes, or two YAML files plus credentials from the environment (file mode).

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use lakeform_api::common::FIELD_MANAGER;
use lakeform_api::connection::{
    ENV_CREDENTIALS_SECRET, StorageEndpoint, identity_credentials, storage_credentials,
    storage_endpoint,
};
use lakeform_api::crawler::{CrawlRun, CrawledTable, Crawler};
use lakeform_api::datalake::DataLake;

use crate::crawl::engine::CrawlInput;
use crate::crawl::error::CrawlError;
use crate::lake::catalog::CatalogConn;

/// Environment variables with the access key pair in file mode.
pub const ENV_ACCESS_KEY: &str = "LAKEFORM_S3_ACCESS_KEY";
pub const ENV_SECRET_KEY: &str = "LAKEFORM_S3_SECRET_KEY";

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CrawlError> {
    let text = std::fs::read_to_string(path).map_err(|source| CrawlError::ReadFile {
        path: path.display().to_string(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|source| CrawlError::ParseYaml {
        path: path.display().to_string(),
        source,
    })
}

fn env(name: &str) -> Result<String, CrawlError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| CrawlError::Config(format!("environment variable {name} is not set")))
}

/// Where the lake's storage is ([`storage_endpoint`], as the operator derives it), except that
/// managed storage is reached at the endpoint the DataLake's status reports: until the operator
/// has brought the storage up there is nothing to crawl.
fn storage(lake: &DataLake) -> Result<StorageEndpoint, CrawlError> {
    storage_endpoint(lake, || {
        lake.status
            .as_ref()
            .and_then(|s| s.endpoints.as_ref())
            .and_then(|e| e.s3.clone())
            .ok_or_else(|| {
                CrawlError::Config(format!(
                    "DataLake {}: managed storage has no status.endpoints.s3 yet",
                    lake.name_any()
                ))
            })
    })
}

/// The lake's catalog endpoint. Kept apart from the operator's `LakeEndpoints::for_lake`
/// because the two compute different things: here a managed catalog's URI is the one the
/// DataLake's status reports (its warehouse is the lake's name, as the operator configures
/// it and gives step Jobs), and a `spec.catalog` with neither `managed` nor `external`
/// (which the CRD rejects, a file-mode manifest may not) counts as managed, not as no catalog.
fn catalog(lake: &DataLake) -> Result<CatalogConn, CrawlError> {
    let name = lake.name_any();
    let spec = lake
        .spec
        .catalog
        .as_ref()
        .ok_or_else(|| CrawlError::Config(format!("DataLake {name} has no spec.catalog")))?;
    if let Some(ext) = &spec.external {
        return Ok(CatalogConn {
            uri: ext.uri.clone(),
            warehouse: ext.warehouse.clone(),
        });
    }
    let uri = lake
        .status
        .as_ref()
        .and_then(|s| s.endpoints.as_ref())
        .and_then(|e| e.catalog.clone())
        .ok_or_else(|| {
            CrawlError::Config(format!(
                "DataLake {name}: managed catalog has no status.endpoints.catalog yet"
            ))
        })?;
    Ok(CatalogConn {
        uri,
        warehouse: Some(name),
    })
}

/// File mode: a Crawler and a DataLake manifest, credentials from the environment.
pub fn from_files(crawler: &Path, lake: &Path) -> Result<CrawlInput, CrawlError> {
    let crawler: Crawler = read_yaml(crawler)?;
    let lake: DataLake = read_yaml(lake)?;
    let s3 = storage(&lake)?.connection(env(ENV_ACCESS_KEY)?, env(ENV_SECRET_KEY)?);
    Ok(CrawlInput {
        crawler_id: crawler_id(&crawler),
        catalog: catalog(&lake)?,
        spec: crawler.spec,
        lake,
        s3,
        only_keys: None,
    })
}

/// `namespace/name`, or the name alone when there is no namespace.
pub fn crawler_id(c: &Crawler) -> String {
    match c.namespace() {
        Some(ns) => format!("{ns}/{}", c.name_any()),
        None => c.name_any(),
    }
}

/// Parses `namespace/name`.
pub fn parse_ref(s: &str) -> Result<(String, String), CrawlError> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok((ns.into(), name.into())),
        _ => Err(CrawlError::Config(format!(
            "--crawler expects <namespace>/<name>, got {s:?}"
        ))),
    }
}

/// Kubernetes mode: reads the Crawler, its DataLake and the credentials Secret.
pub async fn from_cluster(client: &Client, ns: &str, name: &str) -> Result<CrawlInput, CrawlError> {
    let crawler: Crawler = Api::namespaced(client.clone(), ns).get(name).await?;
    let lake: DataLake = Api::namespaced(client.clone(), ns)
        .get(&crawler.spec.lake_ref.name)
        .await?;
    // A managed lake's crawl pods sign with the Crawler's own identity (the pod names its
    // Secret); others with the lake's credentials.
    let credentials = match std::env::var(ENV_CREDENTIALS_SECRET) {
        Ok(name) if !name.is_empty() => identity_credentials(&name),
        _ => storage_credentials(&lake),
    };
    let secret_name = &credentials.secret_name;
    let secret = read_secret(client, ns, secret_name).await?;
    let value = |key: &str| -> Result<String, CrawlError> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key).cloned())
            })
            .ok_or_else(|| {
                CrawlError::Config(format!("Secret {ns}/{secret_name} has no key {key}"))
            })
    };
    let s3 = storage(&lake)?.connection(
        value(&credentials.access_key_id_key)?,
        value(&credentials.secret_access_key_key)?,
    );
    Ok(CrawlInput {
        crawler_id: format!("{ns}/{name}"),
        catalog: catalog(&lake)?,
        spec: crawler.spec,
        lake,
        s3,
        only_keys: None,
    })
}

/// How long a crawl waits for its credentials Secret: a Crawler's identity Secret appears only
/// once the lake's MinIO knows its keys, which may be just after a first crawl Job starts.
const SECRET_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// The Secret `name`, waiting up to [`SECRET_WAIT`] for it to appear.
async fn read_secret(client: &Client, ns: &str, name: &str) -> Result<Secret, CrawlError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + SECRET_WAIT;
    loop {
        if let Some(secret) = api.get_opt(name).await? {
            return Ok(secret);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CrawlError::Config(format!(
                "Secret {ns}/{name} with the crawl's S3 keys does not exist (waited {} s)",
                SECRET_WAIT.as_secs()
            )));
        }
        tracing::info!(secret = %name, "waiting for the crawl's credentials Secret");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Writes `lastRun`, `tables` and `tableCount` into the Crawler's status (server-side apply,
/// field manager `lakeform`). The rest of the current status is applied unchanged so the
/// shared field manager keeps owning it.
pub async fn write_status(
    client: &Client,
    ns: &str,
    name: &str,
    run: &CrawlRun,
    tables: &[CrawledTable],
) -> Result<(), CrawlError> {
    let api: Api<Crawler> = Api::namespaced(client.clone(), ns);
    let current = api.get_status(name).await?;
    let mut status = current.status.unwrap_or_default();
    status.last_run = Some(run.clone());
    status.tables = tables.to_vec();
    status.table_count = Some(tables.len() as i32);
    let patch = serde_json::json!({
        "apiVersion": "lakeform.dev/v1alpha1",
        "kind": "Crawler",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
