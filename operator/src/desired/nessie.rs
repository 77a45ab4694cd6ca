//! Managed catalog: a Project Nessie server, the default managed Iceberg REST catalog.
//!
//! Why Nessie: it is the managed catalog that runs here. Lakekeeper publishes only container
//! images (not reachable from our machines) and is not on crates.io; Apache Polaris publishes
//! libraries but no runnable server to Maven Central; Nessie publishes its server as one
//! runnable jar (`org.projectnessie.nessie:nessie-quarkus:<v>:runner`), which the e2e suite
//! builds into an image. Users run it in production with a JDBC (PostgreSQL) store, which is
//! what is configured here.
//!
//! Targets **Nessie 0.99.0** (`ghcr.io/projectnessie/nessie:0.99.0`, the API default), checked
//! against the `application.properties` shipped in that release and run in the e2e suite:
//! - version store `nessie.version.store.type=JDBC2` on the datasource named by
//!   `nessie.version.store.persist.jdbc.datasource=postgresql` (`quarkus.datasource.postgresql.*`);
//! - the lake's warehouse: `nessie.catalog.default-warehouse`,
//!   `nessie.catalog.warehouses.<name>.location`;
//! - S3: `nessie.catalog.service.s3.default-options.{endpoint,path-style-access,region,
//!   request-signing-enabled,access-key}`, the key pair through Nessie's Quarkus secrets
//!   (`urn:nessie-secret:quarkus:<prefix>` with `<prefix>.name` / `<prefix>.secret`), filled
//!   from the pod's environment (`${VAR}`), which `secretKeyRef` fills from the lake's Secret.
//!   Request signing is off: engines sign with their own credentials.
//! - Iceberg REST under `/iceberg` on port 19120; health (`/q/health/ready`, `/q/health/live`)
//!   on the management port 9000.
//!
//! The configuration file is read from `/deployments/config/application.properties` (the
//! image's working directory is `/deployments`). No secret value is in any built object.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec,
    Service, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use lakeform_api::datalake::{DataLake, ManagedCatalog};

use super::BuildError;
use super::connection::{LakeEndpoints, secret_env, warehouse_bucket};
use super::meta::{
    catalog_pod_overrides, cluster_service, http_probe, labels, owned_meta, pod_security,
    restricted, rolling_deployment, service_port, short_hash,
};
use super::postgres;

/// Component label of the catalog server (the same as Lakekeeper's: one catalog per lake).
pub const COMPONENT: &str = "catalog";
/// Nessie's HTTP port (Iceberg REST under `/iceberg`, Nessie's own API under `/api`).
pub const PORT: i32 = 19120;
/// Quarkus management port (health and metrics).
pub const MANAGEMENT_PORT: i32 = 9000;
/// The user the Nessie image runs as.
const NESSIE_UID: i64 = 185;
/// Where the configuration file is mounted (the image's working directory + `config`).
const CONFIG_DIR: &str = "/deployments/config";
/// Key of the configuration file in the ConfigMap.
const CONFIG_FILE: &str = "application.properties";
/// Environment variables the configuration reads its secrets from.
const ENV_DB_USER: &str = "CATALOG_DB_USER";
const ENV_DB_PASSWORD: &str = "CATALOG_DB_PASSWORD";
const ENV_S3_ACCESS_KEY: &str = "LAKE_S3_ACCESS_KEY";
const ENV_S3_SECRET_KEY: &str = "LAKE_S3_SECRET_KEY";
/// Annotation carrying the hash of the configuration, so that a change rolls the pods.
const CONFIG_HASH_ANNOTATION: &str = "lakeform.dev/config-hash";

/// Name of the Deployment, Service and ConfigMap.
pub fn name(lake: &DataLake) -> String {
    format!("{}-nessie", lake.name_any())
}

/// In-cluster base URI of the server.
pub fn uri(lake: &DataLake) -> String {
    format!(
        "http://{}.{}.svc.cluster.local:{PORT}",
        name(lake),
        lake.namespace().unwrap_or_default()
    )
}

/// In-cluster Iceberg REST catalog URI (what clients use as `uri`).
pub fn catalog_uri(lake: &DataLake) -> String {
    format!("{}/iceberg", uri(lake))
}

/// Name of the lake's warehouse (what clients pass as `warehouse`): the lake's name.
pub fn warehouse_name(lake: &DataLake) -> String {
    lake.name_any()
}

/// `application.properties`: the JDBC2 store on the managed PostgreSQL, the lake's warehouse
/// in its first database's bucket, and the lake's S3 with the key pair from the environment.
pub fn properties(lake: &DataLake, endpoints: &LakeEndpoints) -> String {
    let warehouse = warehouse_name(lake);
    let jdbc = format!(
        "jdbc:postgresql://{}:{}/{}",
        postgres::host(lake),
        postgres::PG_PORT,
        postgres::PG_DATABASE
    );
    let s3 = "nessie.catalog.service.s3.default-options";
    let lines = [
        ("nessie.version.store.type", "JDBC2".to_string()),
        (
            "nessie.version.store.persist.jdbc.datasource",
            "postgresql".into(),
        ),
        ("quarkus.datasource.postgresql.active", "true".into()),
        ("quarkus.datasource.postgresql.jdbc.url", jdbc),
        (
            "quarkus.datasource.postgresql.username",
            format!("${{{ENV_DB_USER}}}"),
        ),
        (
            "quarkus.datasource.postgresql.password",
            format!("${{{ENV_DB_PASSWORD}}}"),
        ),
        ("nessie.catalog.default-warehouse", warehouse.clone()),
        (
            &format!("nessie.catalog.warehouses.{warehouse}.location"),
            format!("s3://{}/warehouse/", warehouse_bucket(lake)),
        ),
        (&format!("{s3}.endpoint"), endpoints.s3_endpoint.clone()),
        (
            &format!("{s3}.path-style-access"),
            endpoints.path_style.to_string(),
        ),
        (&format!("{s3}.region"), endpoints.region.clone()),
        (&format!("{s3}.request-signing-enabled"), "false".into()),
        (
            &format!("{s3}.access-key"),
            "urn:nessie-secret:quarkus:lakeform.s3".into(),
        ),
        ("lakeform.s3.name", format!("${{{ENV_S3_ACCESS_KEY}}}")),
        ("lakeform.s3.secret", format!("${{{ENV_S3_SECRET_KEY}}}")),
    ];
    let mut out = String::from("# written by lakeform: edit the DataLake, not this file\n");
    for (key, value) in lines {
        out.push_str(&format!("{key}={value}\n"));
    }
    out
}

/// The ConfigMap holding `application.properties` (no secret values: those are `${VAR}`s).
pub fn config_map(lake: &DataLake, endpoints: &LakeEndpoints) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(lake, name(lake), COMPONENT),
        data: Some(BTreeMap::from([(
            CONFIG_FILE.to_string(),
            properties(lake, endpoints),
        )])),
        ..Default::default()
    }
}

/// The server's environment: the database user and password from the managed PostgreSQL's
/// Secret and the lake's S3 key pair, all by `secretKeyRef`.
pub fn env(lake: &DataLake, endpoints: &LakeEndpoints) -> Vec<EnvVar> {
    let c = &endpoints.credentials;
    let db = postgres::secret_name(lake);
    vec![
        secret_env(ENV_DB_USER, &db, postgres::PG_USER_KEY),
        secret_env(ENV_DB_PASSWORD, &db, postgres::PG_PASSWORD_KEY),
        secret_env(ENV_S3_ACCESS_KEY, &c.secret_name, &c.access_key_id_key),
        secret_env(ENV_S3_SECRET_KEY, &c.secret_name, &c.secret_access_key_key),
    ]
}

fn container(lake: &DataLake, spec: &ManagedCatalog, endpoints: &LakeEndpoints) -> Container {
    let port = |name: &str, port| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Container {
        name: "nessie".into(),
        image: Some(spec.image()),
        env: Some(env(lake, endpoints)),
        ports: Some(vec![
            port("http", PORT),
            port("management", MANAGEMENT_PORT),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        readiness_probe: Some(http_probe("/q/health/ready", MANAGEMENT_PORT, 5, 3)),
        liveness_probe: Some(http_probe("/q/health/live", MANAGEMENT_PORT, 30, 6)),
        resources: spec.resources.clone(),
        security_context: Some(restricted()),
        ..Default::default()
    }
}

/// The Nessie Deployment. The pod template carries the configuration's hash, so a changed
/// configuration (a new endpoint, a new warehouse bucket) rolls the servers.
pub fn deployment(
    lake: &DataLake,
    spec: &ManagedCatalog,
    endpoints: &LakeEndpoints,
) -> Result<Deployment, BuildError> {
    let hash = short_hash(&properties(lake, endpoints), 16);
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&lake.name_any(), COMPONENT)),
            annotations: Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_string(), hash)])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container(lake, spec, endpoints)],
            volumes: Some(vec![Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: name(lake),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            security_context: Some(pod_security(NESSIE_UID)),
            ..Default::default()
        }),
    };
    let template = catalog_pod_overrides(template, spec)?;
    Ok(rolling_deployment(
        lake,
        name(lake),
        COMPONENT,
        spec.replicas,
        template,
    ))
}

/// The Nessie Service (`<lake>-nessie`: HTTP 19120, management 9000).
pub fn service(lake: &DataLake) -> Service {
    cluster_service(
        lake,
        name(lake),
        COMPONENT,
        vec![
            service_port("http", PORT),
            service_port("management", MANAGEMENT_PORT),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::connection::tests::lake;

    const NESSIE: &str = "  storage:\n    managed: {}\n  zones: [{name: raw}, {name: curated}]\n  catalog:\n    managed: {}\n    databases: [{name: sales, zone: curated}]\n";

    fn managed(l: &DataLake) -> &ManagedCatalog {
        l.spec
            .catalog
            .as_ref()
            .and_then(|c| c.managed.as_ref())
            .expect("managed catalog")
    }

    #[test]
    fn properties_name_the_store_warehouse_and_s3_but_no_secret() {
        let l = lake(NESSIE);
        let p = properties(&l, &LakeEndpoints::for_lake(&l));
        for line in [
            "nessie.version.store.type=JDBC2",
            "quarkus.datasource.postgresql.jdbc.url=jdbc:postgresql://sales-catalog-pg.team.svc.cluster.local:5432/catalog",
            "quarkus.datasource.postgresql.password=${CATALOG_DB_PASSWORD}",
            "nessie.catalog.default-warehouse=sales",
            "nessie.catalog.warehouses.sales.location=s3://sales-curated/warehouse/",
            "nessie.catalog.service.s3.default-options.endpoint=http://sales-minio.team.svc.cluster.local:9000",
            "nessie.catalog.service.s3.default-options.request-signing-enabled=false",
            "lakeform.s3.secret=${LAKE_S3_SECRET_KEY}",
        ] {
            assert!(p.lines().any(|l| l == line), "{line} missing from\n{p}");
        }
    }

    #[test]
    fn deployment_mounts_the_config_and_rolls_when_it_changes() {
        let l = lake(NESSIE);
        let ep = LakeEndpoints::for_lake(&l);
        let d = deployment(&l, managed(&l), &ep).expect("builds");
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod");
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("ghcr.io/projectnessie/nessie:0.99.0")
        );
        assert_eq!(
            c.volume_mounts.as_ref().expect("mounts")[0].mount_path,
            CONFIG_DIR
        );
        let hash = |d: &Deployment| {
            d.spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .map(|a| a[CONFIG_HASH_ANNOTATION].clone())
        };
        let other = lake(&NESSIE.replace("zone: curated", "zone: raw"));
        let moved =
            deployment(&other, managed(&other), &LakeEndpoints::for_lake(&other)).expect("builds");
        assert_ne!(hash(&d), hash(&moved));
        assert_eq!(
            catalog_uri(&l),
            "http://sales-nessie.team.svc.cluster.local:19120/iceberg"
        );
    }
}
