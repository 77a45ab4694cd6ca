//! Managed catalog: a Lakekeeper Iceberg REST catalog, its migrations Job and its PostgreSQL.
//!
//! Targets **Lakekeeper v0.9.5** (`quay.io/lakekeeper/catalog:v0.9.5`, the API default), checked
//! against the 0.9.x documentation:
//! - configuration (env vars): <https://docs.lakekeeper.io/docs/0.9.x/configuration/> —
//!   `LAKEKEEPER__PG_DATABASE_URL_READ` / `_WRITE` (connection strings take precedence over the
//!   `LAKEKEEPER__PG_*` parts), `LAKEKEEPER__PG_HOST_R` / `_W`, `LAKEKEEPER__PG_PORT`,
//!   `LAKEKEEPER__PG_USER`, `LAKEKEEPER__PG_PASSWORD`, `LAKEKEEPER__PG_DATABASE`,
//!   `LAKEKEEPER__PG_ENCRYPTION_KEY` (encrypts stored storage credentials with the default
//!   `postgres` secret backend), `LAKEKEEPER__LISTEN_PORT` (default 8181),
//!   `LAKEKEEPER__METRICS_PORT` (default 9000). `LAKEKEEPER__BASE_URI` is optional since 0.7
//!   (links follow the `Host` / `x-forwarded-*` headers), so it is left unset.
//! - commands `serve`, `migrate`, `wait-for-db -d -m -r <retries> -b <backoff>` and the `/health`
//!   endpoint on 8181: the binary's CLI and the official chart
//!   (`lakekeeper/lakekeeper-charts`, `charts/lakekeeper/templates/{catalog/catalog-deployment,
//!   db-migration,_pods}.yaml`).
//! - bootstrap: <https://docs.lakekeeper.io/docs/0.9.x/bootstrap/> (`POST /management/v1/bootstrap`
//!   with `accept-terms-of-use`, `is-operator`).
//! - warehouse / S3 storage profile: <https://docs.lakekeeper.io/docs/0.9.x/storage/>
//!   (`POST /management/v1/warehouse`; profile `type: s3`, `bucket`, `region`, `sts-enabled`
//!   (required), `key-prefix`, `endpoint`, `flavor` = `aws` | `s3-compat`, `path-style-access`;
//!   credential `type: s3`, `credential-type: access-key`, `aws-access-key-id`,
//!   `aws-secret-access-key`).
//!
//! The Iceberg REST API is served under `/catalog`, the management API under `/management`.
//! Secret values (database password, encryption key, S3 keys) are only ever passed in as
//! arguments and end up in Secrets or in request bodies, never in other built objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use lakeform_api::datalake::{DataLake, ManagedCatalog};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::BuildError;
use super::connection::{LakeEndpoints, plain_env, secret_env};
use super::meta::{
    catalog_pod_overrides, cluster_service, http_probe, kept_meta, labels, owned_meta,
    pod_security, restricted, rolling_deployment, service_port,
};
use super::postgres;

/// Component label of the catalog server.
pub const COMPONENT: &str = "catalog";
/// Component label of the migrations Job.
pub const MIGRATE_COMPONENT: &str = "catalog-migrate";
/// Lakekeeper HTTP port (Iceberg REST, management API, `/health`).
pub const PORT: i32 = 8181;
/// Lakekeeper Prometheus metrics port.
pub const METRICS_PORT: i32 = 9000;
/// Secret key of the encryption key.
pub const ENCRYPTION_KEY_KEY: &str = "encryptionKey";
/// Health endpoint.
pub const HEALTH_PATH: &str = "/health";
/// Bootstrap endpoint (relative to [`uri`]).
pub const BOOTSTRAP_PATH: &str = "/management/v1/bootstrap";
/// Warehouse-creation endpoint (relative to [`uri`]).
pub const WAREHOUSE_PATH: &str = "/management/v1/warehouse";
/// The user the Lakekeeper image (distroless `nonroot`) runs as.
const LAKEKEEPER_UID: i64 = 65532;

/// Name of the Deployment and Service.
pub fn name(lake: &DataLake) -> String {
    format!("{}-lakekeeper", lake.name_any())
}

/// Name of the encryption-key Secret.
pub fn encryption_secret_name(lake: &DataLake) -> String {
    format!("{}-lakekeeper-encryption", lake.name_any())
}

/// First 10 hex digits of the SHA-256 of `s`.
fn short_hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))[..10].to_string()
}

/// Name of the migrations Job: one per image, so a new image runs `migrate` again.
pub fn migrate_job_name(lake: &DataLake, spec: &ManagedCatalog) -> String {
    format!(
        "{}-lakekeeper-migrate-{}",
        lake.name_any(),
        short_hash(&spec.image())
    )
}

/// In-cluster base URI of Lakekeeper (management API under `/management`).
pub fn uri(lake: &DataLake) -> String {
    format!(
        "http://{}.{}.svc.cluster.local:{PORT}",
        name(lake),
        lake.namespace().unwrap_or_default()
    )
}

/// In-cluster Iceberg REST catalog URI (what clients use as `uri`).
pub fn catalog_uri(lake: &DataLake) -> String {
    format!("{}/catalog", uri(lake))
}

/// Name of the lake's warehouse in Lakekeeper (what clients pass as `warehouse`).
pub fn warehouse_name(lake: &DataLake) -> String {
    lake.name_any()
}

/// The encryption-key Secret (`LAKEKEEPER__PG_ENCRYPTION_KEY`). The controller generates the
/// key once; changing it later makes stored storage credentials unreadable.
pub fn encryption_secret(lake: &DataLake, key: &str) -> Secret {
    Secret {
        metadata: kept_meta(lake, encryption_secret_name(lake), COMPONENT),
        string_data: Some(BTreeMap::from([(
            ENCRYPTION_KEY_KEY.to_string(),
            key.to_string(),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// Lakekeeper's environment: the database (the managed PostgreSQL's parts, or the existing
/// database's URL from its Secret) and the encryption key, all by `secretKeyRef`.
pub fn env(lake: &DataLake, spec: &ManagedCatalog) -> Vec<EnvVar> {
    let mut env = match &spec.database.existing {
        Some(existing) => vec![
            secret_env(
                "LAKEKEEPER__PG_DATABASE_URL_WRITE",
                &existing.name,
                &existing.key,
            ),
            secret_env(
                "LAKEKEEPER__PG_DATABASE_URL_READ",
                &existing.name,
                &existing.key,
            ),
        ],
        None => vec![
            plain_env("LAKEKEEPER__PG_HOST_W", postgres::host(lake)),
            plain_env("LAKEKEEPER__PG_HOST_R", postgres::host(lake)),
            plain_env("LAKEKEEPER__PG_PORT", postgres::PG_PORT.to_string()),
            plain_env("LAKEKEEPER__PG_DATABASE", postgres::PG_DATABASE),
            secret_env(
                "LAKEKEEPER__PG_USER",
                &postgres::secret_name(lake),
                postgres::PG_USER_KEY,
            ),
            secret_env(
                "LAKEKEEPER__PG_PASSWORD",
                &postgres::secret_name(lake),
                postgres::PG_PASSWORD_KEY,
            ),
        ],
    };
    env.push(secret_env(
        "LAKEKEEPER__PG_ENCRYPTION_KEY",
        &encryption_secret_name(lake),
        ENCRYPTION_KEY_KEY,
    ));
    env
}

fn lakekeeper_container(
    lake: &DataLake,
    spec: &ManagedCatalog,
    name: &str,
    args: &[&str],
) -> Container {
    Container {
        name: name.into(),
        image: Some(spec.image()),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        env: Some(env(lake, spec)),
        resources: spec.resources.clone(),
        security_context: Some(restricted()),
        ..Default::default()
    }
}

fn pod_labels(lake: &DataLake, component: &str) -> BTreeMap<String, String> {
    labels(&lake.name_any(), component)
}

/// The Lakekeeper Deployment (`serve`). An init container waits until the database is up and
/// migrated (`wait-for-db -dm`), so pods never serve an old schema.
pub fn deployment(lake: &DataLake, spec: &ManagedCatalog) -> Result<Deployment, BuildError> {
    let mut server = lakekeeper_container(lake, spec, "lakekeeper", &["serve"]);
    server.ports = Some(vec![
        ContainerPort {
            name: Some("http".into()),
            container_port: PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        },
        ContainerPort {
            name: Some("metrics".into()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        },
    ]);
    server.readiness_probe = Some(http_probe(HEALTH_PATH, PORT, 2, 3));
    server.liveness_probe = Some(http_probe(HEALTH_PATH, PORT, 10, 3));
    let wait = lakekeeper_container(
        lake,
        spec,
        "wait-for-db",
        &["wait-for-db", "-dm", "-r", "100", "-b", "2"],
    );
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels(lake, COMPONENT)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            init_containers: Some(vec![wait]),
            containers: vec![server],
            security_context: Some(pod_security(LAKEKEEPER_UID)),
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

/// The Lakekeeper Service (`<lake>-lakekeeper`, port 8181 and metrics 9000).
pub fn service(lake: &DataLake) -> Service {
    cluster_service(
        lake,
        name(lake),
        COMPONENT,
        vec![
            service_port("http", PORT),
            service_port("metrics", METRICS_PORT),
        ],
    )
}

/// The migrations Job (`migrate`), named after the image so a new image migrates again. Owned
/// by the lake; the controller deletes Jobs of previous images as no longer desired.
pub fn migrate_job(lake: &DataLake, spec: &ManagedCatalog) -> Result<Job, BuildError> {
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels(lake, MIGRATE_COMPONENT)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("OnFailure".into()),
            containers: vec![lakekeeper_container(lake, spec, "migrate", &["migrate"])],
            security_context: Some(pod_security(LAKEKEEPER_UID)),
            ..Default::default()
        }),
    };
    let template = catalog_pod_overrides(template, spec)?;
    Ok(Job {
        metadata: owned_meta(lake, migrate_job_name(lake, spec), MIGRATE_COMPONENT),
        spec: Some(JobSpec {
            backoff_limit: Some(10),
            template,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Body of `POST /management/v1/bootstrap`: accept the terms of use and make the caller (the
/// operator) an operator of the server. Lakekeeper can be bootstrapped once; a second call
/// answers with an error the controller treats as "already bootstrapped".
pub fn bootstrap_request() -> Value {
    json!({
        "accept-terms-of-use": true,
        "is-operator": true,
    })
}

/// S3 flavor for the storage profile: `aws` for Amazon S3 endpoints, `s3-compat` otherwise.
pub fn s3_flavor(endpoint: &str) -> &'static str {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    if host.ends_with(".amazonaws.com") || host == "amazonaws.com" {
        "aws"
    } else {
        "s3-compat"
    }
}

/// Body of `POST /management/v1/warehouse`: a warehouse named `name` in `bucket` (under
/// `key_prefix`) on the lake's S3 endpoint, with the access key pair passed in. The body holds
/// secret values: send it, never log or store it. STS (vended credentials) stays off: not every
/// S3-compatible store has STS, and engines here use their own credentials (remote signing
/// still works).
pub fn warehouse_request(
    name: &str,
    bucket: &str,
    key_prefix: Option<&str>,
    endpoints: &LakeEndpoints,
    access_key_id: &str,
    secret_access_key: &str,
) -> Value {
    let mut profile = json!({
        "type": "s3",
        "bucket": bucket,
        "region": endpoints.region,
        "endpoint": endpoints.s3_endpoint,
        "path-style-access": endpoints.path_style,
        "flavor": s3_flavor(&endpoints.s3_endpoint),
        "sts-enabled": false,
    });
    if let Some(prefix) = key_prefix.filter(|p| !p.is_empty()) {
        profile["key-prefix"] = Value::String(prefix.to_string());
    }
    json!({
        "warehouse-name": name,
        "storage-profile": profile,
        "storage-credential": {
            "type": "s3",
            "credential-type": "access-key",
            "aws-access-key-id": access_key_id,
            "aws-secret-access-key": secret_access_key,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::connection::tests::lake;

    const MANAGED: &str = "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  catalog:\n    managed:\n      server: Lakekeeper\n      replicas: 2\n      database:\n        managed: {volumeSize: 8Gi, storageClass: fast}\n";
    const EXISTING: &str = "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  catalog:\n    managed:\n      server: Lakekeeper\n      database:\n        existing: {name: pg-url, key: url}\n";

    fn managed(l: &DataLake) -> &ManagedCatalog {
        l.spec
            .catalog
            .as_ref()
            .and_then(|c| c.managed.as_ref())
            .expect("managed catalog")
    }

    fn env_names(env: &[EnvVar]) -> Vec<&str> {
        env.iter().map(|e| e.name.as_str()).collect()
    }

    fn secret_ref(env: &[EnvVar], var: &str) -> (String, String) {
        let e = env.iter().find(|e| e.name == var).expect(var);
        let r = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secretKeyRef");
        (r.name.clone(), r.key.clone())
    }

    #[test]
    fn deployment_serves_on_8181_with_secrets_by_reference() {
        let l = lake(MANAGED);
        let d = deployment(&l, managed(&l)).expect("builds");
        assert_eq!(d.metadata.name.as_deref(), Some("sales-lakekeeper"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("team"));
        let owner = &d.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("DataLake", "sales", Some(true))
        );
        let spec = d.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(2));
        let sel = spec.selector.match_labels.as_ref().expect("selector");
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .expect("pod labels");
        assert!(sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        assert_eq!(pod_labels["app.kubernetes.io/component"], "catalog");
        let pod = spec.template.spec.as_ref().expect("pod");
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("quay.io/lakekeeper/catalog:v0.9.5")
        );
        assert_eq!(c.args.as_deref(), Some(&["serve".to_string()][..]));
        let ports: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
        assert_eq!(ports, [8181, 9000]);
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .map(|h| (h.path.as_deref(), h.port.clone())),
            Some((
                Some("/health"),
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8181)
            ))
        );
        let env = c.env.as_ref().expect("env");
        assert_eq!(
            env_names(env),
            [
                "LAKEKEEPER__PG_HOST_W",
                "LAKEKEEPER__PG_HOST_R",
                "LAKEKEEPER__PG_PORT",
                "LAKEKEEPER__PG_DATABASE",
                "LAKEKEEPER__PG_USER",
                "LAKEKEEPER__PG_PASSWORD",
                "LAKEKEEPER__PG_ENCRYPTION_KEY",
            ]
        );
        assert_eq!(
            env[0].value.as_deref(),
            Some("sales-catalog-pg.team.svc.cluster.local")
        );
        assert_eq!(
            secret_ref(env, "LAKEKEEPER__PG_PASSWORD"),
            ("sales-catalog-pg".into(), "password".into())
        );
        assert_eq!(
            secret_ref(env, "LAKEKEEPER__PG_ENCRYPTION_KEY"),
            ("sales-lakekeeper-encryption".into(), "encryptionKey".into())
        );
        let init = &pod.init_containers.as_ref().expect("init")[0];
        assert_eq!(
            init.args.as_ref().expect("args")[..2],
            ["wait-for-db".to_string(), "-dm".to_string()]
        );
    }

    #[test]
    fn existing_database_url_comes_from_its_secret() {
        let l = lake(EXISTING);
        let spec = managed(&l);
        let env = env(&l, spec);
        assert_eq!(
            env_names(&env),
            [
                "LAKEKEEPER__PG_DATABASE_URL_WRITE",
                "LAKEKEEPER__PG_DATABASE_URL_READ",
                "LAKEKEEPER__PG_ENCRYPTION_KEY",
            ]
        );
        assert_eq!(
            secret_ref(&env, "LAKEKEEPER__PG_DATABASE_URL_WRITE"),
            ("pg-url".into(), "url".into())
        );
        assert!(env.iter().all(|e| e.value.is_none()));
        assert_eq!(postgres::managed(spec), None, "no PostgreSQL is built");
    }

    #[test]
    fn migrate_job_is_named_after_the_image() {
        let l = lake(MANAGED);
        let spec = managed(&l).clone();
        let job = migrate_job(&l, &spec).expect("builds");
        let job_name = job.metadata.name.clone().expect("name");
        assert!(job_name.starts_with("sales-lakekeeper-migrate-"));
        assert_eq!(job_name.len(), "sales-lakekeeper-migrate-".len() + 10);
        assert!(job.metadata.owner_references.is_some());
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
        assert_eq!(
            pod.containers[0].args.as_deref(),
            Some(&["migrate".to_string()][..])
        );
        assert_eq!(migrate_job_name(&l, &spec), job_name, "stable");
        let newer = ManagedCatalog {
            image: Some("quay.io/lakekeeper/catalog:v0.9.6".into()),
            ..spec
        };
        assert_ne!(
            migrate_job_name(&l, &newer),
            job_name,
            "re-run on new image"
        );
    }

    #[test]
    fn service_and_uris() {
        let l = lake(MANAGED);
        let svc = service(&l);
        assert_eq!(svc.metadata.name.as_deref(), Some("sales-lakekeeper"));
        let ports: Vec<i32> = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .expect("ports")
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, [8181, 9000]);
        assert_eq!(
            catalog_uri(&l),
            "http://sales-lakekeeper.team.svc.cluster.local:8181/catalog"
        );
        assert_eq!(warehouse_name(&l), "sales");
    }

    #[test]
    fn secret_values_only_in_secrets() {
        let l = lake(MANAGED);
        let spec = managed(&l);
        let (password, key) = ("pg-PASSWORD-123", "ENCRYPTION-KEY-456");
        let s = postgres::secret(&l, password);
        assert_eq!(s.metadata.name.as_deref(), Some("sales-catalog-pg"));
        assert_eq!(s.string_data.as_ref().expect("data")["password"], password);
        let e = encryption_secret(&l, key);
        assert_eq!(e.string_data.as_ref().expect("data")["encryptionKey"], key);
        let pg = postgres::managed(spec).expect("pg");
        let others = [
            serde_yaml::to_string(&deployment(&l, spec).expect("deployment")),
            serde_yaml::to_string(&migrate_job(&l, spec).expect("job")),
            serde_yaml::to_string(&postgres::statefulset(&l, &pg)),
            serde_yaml::to_string(&service(&l)),
            serde_yaml::to_string(&postgres::service(&l)),
        ];
        for yaml in others {
            let yaml = yaml.expect("serializes");
            assert!(!yaml.contains(password) && !yaml.contains(key));
        }
    }

    #[test]
    fn pod_overrides_merge_over_the_template() {
        let l = lake(
            "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  catalog:\n    managed:\n      server: Lakekeeper\n      podOverrides:\n        spec:\n          nodeSelector: {pool: catalog}\n",
        );
        let d = deployment(&l, managed(&l)).expect("builds");
        let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(
            pod.node_selector.as_ref().map(|n| n["pool"].as_str()),
            Some("catalog")
        );
        assert_eq!(pod.containers.len(), 1);
    }

    #[test]
    fn management_request_bodies() {
        assert_eq!(
            bootstrap_request(),
            json!({"accept-terms-of-use": true, "is-operator": true})
        );
        let l = lake(MANAGED);
        let ep = LakeEndpoints::for_lake(&l);
        let body = warehouse_request("sales", "sales-raw", Some("warehouse"), &ep, "AK", "SK");
        assert_eq!(body["warehouse-name"], "sales");
        let p = &body["storage-profile"];
        assert_eq!(p["type"], "s3");
        assert_eq!(p["bucket"], "sales-raw");
        assert_eq!(p["key-prefix"], "warehouse");
        assert_eq!(
            p["endpoint"],
            "http://sales-minio.team.svc.cluster.local:9000"
        );
        assert_eq!(p["region"], "us-east-1");
        assert_eq!(p["path-style-access"], true);
        assert_eq!(p["flavor"], "s3-compat");
        assert_eq!(p["sts-enabled"], false);
        let c = &body["storage-credential"];
        assert_eq!(c["type"], "s3");
        assert_eq!(c["credential-type"], "access-key");
        assert_eq!(c["aws-access-key-id"], "AK");
        assert_eq!(c["aws-secret-access-key"], "SK");
        let no_prefix = warehouse_request("w", "b", None, &ep, "AK", "SK");
        assert!(no_prefix["storage-profile"].get("key-prefix").is_none());
        assert_eq!(s3_flavor("https://s3.eu-west-1.amazonaws.com"), "aws");
        assert_eq!(s3_flavor("http://minio.data:9000"), "s3-compat");
    }
}
