//! Connection info: where the lake's storage, catalog and query engine are, as plain inputs for
//! the other builders and as the `<lake>-connection` ConfigMap workloads mount.
//!
//! Nothing here holds a secret value: credentials are named (Secret name and keys), and pods
//! read them through `secretKeyRef`.

use std::collections::BTreeMap;
use std::convert::Infallible;

use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, EnvVarSource, SecretKeySelector};
use kube::ResourceExt;
use lakeform_api::common::S3CredentialsRef;
use lakeform_api::connection::{StorageEndpoint, storage_endpoint};
use lakeform_api::datalake::{CatalogServer, DataLake, OAuth2Credentials};

use super::meta::owned_meta;
use super::{lakekeeper, minio, nessie, trino_auth};

/// Component label of the connection-info ConfigMap.
pub const COMPONENT: &str = "connection";
/// Key of the S3 endpoint URL.
pub const KEY_S3_ENDPOINT: &str = "s3.endpoint";
/// Key of the S3 signing region.
pub const KEY_S3_REGION: &str = "s3.region";
/// Key of the path-style flag (`"true"` / `"false"`).
pub const KEY_S3_PATH_STYLE: &str = "s3.path-style";
/// Prefix of the per-zone bucket keys (`bucket.<zone>`).
pub const KEY_BUCKET_PREFIX: &str = "bucket.";
/// Key of the Iceberg REST catalog URI.
pub const KEY_CATALOG_URI: &str = "catalog.uri";
/// Key of the catalog warehouse.
pub const KEY_CATALOG_WAREHOUSE: &str = "catalog.warehouse";
/// Key of the Trino coordinator's client URI (HTTPS; its CA in the ConfigMap `<lake>-trino-ca`).
pub const KEY_TRINO_URI: &str = "trino.uri";
/// Key naming the Secret that holds the S3 access key pair (the name only, never the values).
pub const KEY_CREDENTIALS_SECRET: &str = "credentials.secret";
/// Key naming the Secret key of the access key id.
pub const KEY_CREDENTIALS_ACCESS_KEY: &str = "credentials.access-key-id-key";
/// Key naming the Secret key of the secret access key.
pub const KEY_CREDENTIALS_SECRET_KEY: &str = "credentials.secret-access-key-key";

/// What the controller knows about where the lake lives. Built by [`LakeEndpoints::for_lake`]
/// from the spec alone, or assembled by the controller from what it observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LakeEndpoints {
    /// S3 endpoint URL.
    pub s3_endpoint: String,
    /// S3 signing region.
    pub region: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// Secret (name and keys) with the S3 access key pair.
    pub credentials: S3CredentialsRef,
    /// Iceberg REST catalog base URI, when the lake has a catalog.
    pub catalog_uri: Option<String>,
    /// Warehouse passed to the catalog (`/v1/config?warehouse=`), when there is one.
    pub warehouse: Option<String>,
    /// OAuth2 client credentials of an external catalog (a Secret name; values never read here).
    pub catalog_oauth2: Option<OAuth2Credentials>,
    /// Trino coordinator URI, when the lake has a query engine.
    pub trino_uri: Option<String>,
}

impl LakeEndpoints {
    /// Endpoints as the spec defines them: managed MinIO or external S3, a managed catalog or
    /// an external catalog, and the Trino Service when a query engine is requested.
    ///
    /// The storage part is [`storage`], shared with the worker. The catalog part is not: the
    /// worker's crawler reads a managed catalog's URI from the DataLake's status and passes no
    /// warehouse (see `lakeform_worker::crawl::source`).
    pub fn for_lake(lake: &DataLake) -> Self {
        let spec = &lake.spec;
        let StorageEndpoint {
            endpoint: s3_endpoint,
            region,
            path_style,
            credentials,
        } = storage(lake);
        let (catalog_uri, warehouse, catalog_oauth2) = match &spec.catalog {
            Some(c) => match (&c.managed, &c.external) {
                (_, Some(ext)) => (
                    Some(ext.uri.clone()),
                    ext.warehouse.clone(),
                    ext.oauth2.clone(),
                ),
                (Some(managed), None) => (
                    Some(managed_catalog_uri(lake, managed.server)),
                    Some(lake.name_any()),
                    None,
                ),
                (None, None) => (None, None, None),
            },
            None => (None, None, None),
        };
        let trino_uri = spec
            .query_engine
            .as_ref()
            .and_then(|q| q.trino.as_ref())
            .map(|_| trino_auth::https_uri(lake));
        LakeEndpoints {
            s3_endpoint,
            region,
            path_style,
            credentials,
            catalog_uri,
            warehouse,
            catalog_oauth2,
            trino_uri,
        }
    }
}

/// The in-cluster Iceberg REST URI of a managed catalog server. Its warehouse is named after
/// the lake (`nessie::warehouse_name`, `lakekeeper::warehouse_name`).
pub fn managed_catalog_uri(lake: &DataLake, server: CatalogServer) -> String {
    match server {
        CatalogServer::Nessie => nessie::catalog_uri(lake),
        CatalogServer::Lakekeeper => lakekeeper::catalog_uri(lake),
    }
}

/// The bucket of a managed catalog's warehouse: the first database's zone, else the first zone.
pub fn warehouse_bucket(lake: &DataLake) -> String {
    lake.spec
        .catalog
        .as_ref()
        .and_then(|cat| cat.databases.first())
        .and_then(|db| lake.zone_bucket(&db.zone))
        .or_else(|| lake.spec.zones.first().map(|z| lake.bucket_name(z)))
        .unwrap_or_default()
}

/// Where the lake's S3 is as the operator builds it: external storage as its spec says, managed
/// storage at its MinIO Service ([`minio::endpoint`]). The worker derives the same with
/// [`storage_endpoint`] but takes the managed endpoint from the DataLake's status.
pub fn storage(lake: &DataLake) -> StorageEndpoint {
    let Ok(endpoint) = storage_endpoint(lake, || Ok::<_, Infallible>(minio::endpoint(lake)));
    endpoint
}

/// Name of the connection-info ConfigMap.
pub fn name(lake: &DataLake) -> String {
    format!("{}-connection", lake.name_any())
}

/// The connection-info ConfigMap: endpoints, one `bucket.<zone>` key per zone, and the NAME of
/// the credentials Secret (never its values).
pub fn config_map(lake: &DataLake, endpoints: &LakeEndpoints) -> ConfigMap {
    let mut data = BTreeMap::from([
        (KEY_S3_ENDPOINT.to_string(), endpoints.s3_endpoint.clone()),
        (KEY_S3_REGION.to_string(), endpoints.region.clone()),
        (
            KEY_S3_PATH_STYLE.to_string(),
            endpoints.path_style.to_string(),
        ),
        (
            KEY_CREDENTIALS_SECRET.to_string(),
            endpoints.credentials.secret_name.clone(),
        ),
        (
            KEY_CREDENTIALS_ACCESS_KEY.to_string(),
            endpoints.credentials.access_key_id_key.clone(),
        ),
        (
            KEY_CREDENTIALS_SECRET_KEY.to_string(),
            endpoints.credentials.secret_access_key_key.clone(),
        ),
    ]);
    for zone in &lake.spec.zones {
        data.insert(
            format!("{KEY_BUCKET_PREFIX}{}", zone.name),
            lake.bucket_name(zone),
        );
    }
    let optional = [
        (KEY_CATALOG_URI, &endpoints.catalog_uri),
        (KEY_CATALOG_WAREHOUSE, &endpoints.warehouse),
        (KEY_TRINO_URI, &endpoints.trino_uri),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            data.insert(key.to_string(), v.clone());
        }
    }
    ConfigMap {
        metadata: owned_meta(lake, name(lake), COMPONENT),
        data: Some(data),
        ..Default::default()
    }
}

/// An environment variable read from one key of a Secret (never an inlined value).
pub fn secret_env(var: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A plain environment variable.
pub fn plain_env(var: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: var.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn lake(yaml_spec: &str) -> DataLake {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: DataLake\nmetadata: {{name: sales, namespace: team, uid: 1234}}\nspec:\n{yaml_spec}"
        );
        serde_yaml::from_str(&doc).expect("fixture parses")
    }

    const EXTERNAL: &str = "  storage:\n    external:\n      endpoint: http://minio.data:9000\n      region: eu-1\n      credentials: {secretName: s3-creds, accessKeyIdKey: user, secretAccessKeyKey: pass}\n  zones:\n    - {name: raw}\n    - {name: curated, bucket: gold-data}\n  catalog:\n    external: {uri: 'http://rest.data:8181', warehouse: 's3://wh/'}\n  queryEngine:\n    trino: {}\n";

    #[test]
    fn external_lake_connection_info() {
        let l = lake(EXTERNAL);
        let ep = LakeEndpoints::for_lake(&l);
        assert_eq!(ep.s3_endpoint, "http://minio.data:9000");
        assert_eq!(ep.region, "eu-1");
        assert!(ep.path_style);
        assert_eq!(ep.credentials.secret_name, "s3-creds");
        assert_eq!(ep.catalog_uri.as_deref(), Some("http://rest.data:8181"));
        assert_eq!(ep.warehouse.as_deref(), Some("s3://wh/"));
        assert_eq!(
            ep.trino_uri.as_deref(),
            Some("https://sales-trino.team.svc.cluster.local:8443")
        );

        let cm = config_map(&l, &ep);
        assert_eq!(cm.metadata.name.as_deref(), Some("sales-connection"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("team"));
        let owner = &cm.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("DataLake", "sales", Some(true))
        );
        assert_eq!(
            cm.metadata.labels.as_ref().expect("labels")["app.kubernetes.io/part-of"],
            "sales"
        );
        let data = cm.data.expect("data");
        assert_eq!(data["s3.endpoint"], "http://minio.data:9000");
        assert_eq!(data["s3.region"], "eu-1");
        assert_eq!(data["s3.path-style"], "true");
        assert_eq!(data["bucket.raw"], "sales-raw");
        assert_eq!(data["bucket.curated"], "gold-data");
        assert_eq!(data["catalog.uri"], "http://rest.data:8181");
        assert_eq!(data["catalog.warehouse"], "s3://wh/");
        assert_eq!(
            data["trino.uri"],
            "https://sales-trino.team.svc.cluster.local:8443"
        );
        assert_eq!(data["credentials.secret"], "s3-creds");
        assert_eq!(data["credentials.access-key-id-key"], "user");
        assert_eq!(data["credentials.secret-access-key-key"], "pass");
    }

    #[test]
    fn managed_lake_points_at_minio_and_its_catalog_server() {
        let l = lake(
            "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  catalog:\n    managed: {}\n",
        );
        let ep = LakeEndpoints::for_lake(&l);
        assert_eq!(
            ep.s3_endpoint,
            "http://sales-minio.team.svc.cluster.local:9000"
        );
        assert_eq!(ep.credentials.secret_name, "sales-minio-root");
        assert_eq!(
            ep.catalog_uri.as_deref(),
            Some("http://sales-nessie.team.svc.cluster.local:19120/iceberg")
        );
        assert_eq!(ep.warehouse.as_deref(), Some("sales"));
        let keeper = lake(
            "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  catalog:\n    managed: {server: Lakekeeper}\n",
        );
        assert_eq!(
            LakeEndpoints::for_lake(&keeper).catalog_uri.as_deref(),
            Some("http://sales-lakekeeper.team.svc.cluster.local:8181/catalog")
        );
        assert_eq!(ep.trino_uri, None);
        let data = config_map(&l, &ep).data.expect("data");
        assert!(!data.contains_key("trino.uri"));
        assert_eq!(data["bucket.raw"], "sales-raw");
    }

    #[test]
    fn no_secret_value_in_the_config_map() {
        let l = lake(EXTERNAL);
        let ep = LakeEndpoints::for_lake(&l);
        let yaml = serde_yaml::to_string(&config_map(&l, &ep)).expect("serializes");
        for secret in ["AKIA-TEST-ACCESS", "test-secret-value"] {
            assert!(!yaml.contains(secret));
        }
        // Only names and keys, which are what pods need to reference the Secret.
        assert!(yaml.contains("s3-creds"));
    }
}
