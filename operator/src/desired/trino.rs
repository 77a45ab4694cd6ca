//! Query engine: a Trino coordinator and workers wired to the lake's Iceberg REST catalog and S3.
//!
//! Every property name below was checked against the Trino documentation of the pinned image
//! `trinodb/trino:478` (<https://trino.io/docs/478/>):
//! - `config.properties` (`coordinator`, `node-scheduler.include-coordinator`,
//!   `http-server.http.port`, `discovery.uri`), `node.properties` (`node.environment`,
//!   `node.data-dir`, `node.id`), `jvm.config`, `log.properties`:
//!   <https://trino.io/docs/478/installation/deployment.html>;
//!   `http-server.process-forwarded`:
//!   <https://trino.io/docs/478/admin/properties-http-server.html>. `node.id` is left out of
//!   `node.properties`: the image's `/usr/lib/trino/bin/run-trino` then starts the launcher with
//!   `-Dnode.id=${HOSTNAME}`, i.e. the pod name.
//! - Iceberg connector on a REST catalog (`connector.name=iceberg`, `iceberg.catalog.type=rest`,
//!   `iceberg.rest-catalog.uri`, `iceberg.rest-catalog.warehouse`,
//!   `iceberg.rest-catalog.security=OAUTH2`, `iceberg.rest-catalog.oauth2.credential`,
//!   `iceberg.rest-catalog.oauth2.server-uri`, `iceberg.rest-catalog.oauth2.scope`):
//!   <https://trino.io/docs/478/connector/iceberg.html> and
//!   <https://trino.io/docs/478/object-storage/metastores.html#iceberg-rest-catalog>.
//! - Native S3 (`fs.native-s3.enabled`, `s3.endpoint`, `s3.region`, `s3.path-style-access`,
//!   `s3.aws-access-key`, `s3.aws-secret-key`):
//!   <https://trino.io/docs/478/object-storage/file-system-s3.html>. Later releases (after the
//!   legacy file systems were removed in 481) call the switch `fs.s3.enabled`; revisit this file
//!   when the image moves past 480.
//! - `${ENV:NAME}` substitution of secrets in property files:
//!   <https://trino.io/docs/478/security/secrets.html>.
//! - Resource groups (`resource-groups.configuration-manager=file`,
//!   `resource-groups.config-file`; JSON `rootGroups[]` with `name`, `softMemoryLimit`,
//!   `hardConcurrencyLimit`, `maxQueued`; `selectors[]` with `user`, `group`):
//!   <https://trino.io/docs/478/admin/resource-groups.html>.
//! - Session property manager (`session-property-config.configuration-manager=file`,
//!   `session-property-manager.config-file`; JSON list of rules with `group` and
//!   `sessionProperties`): <https://trino.io/docs/478/admin/session-property-managers.html>;
//!   the scan limit is the `query_max_scan_physical_bytes` session property of
//!   `query.max-scan-physical-bytes`:
//!   <https://trino.io/docs/478/admin/properties-query-management.html>.
//!
//! Credentials never appear in rendered files: the catalog file says
//! `s3.aws-access-key=${ENV:LAKE_S3_ACCESS_KEY}` and the pods get that variable from the lake's
//! S3 Secret through `secretKeyRef`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, SecretVolumeSource,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use lakeform_api::datalake::{DataLake, QueryEngineSpec, TrinoRole, TrinoSpec, Workgroup};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::BuildError;
use super::buckets::quantity_bytes;
use super::connection::{LakeEndpoints, secret_env};
use super::meta::{http_probe, labels, owned_meta, restricted, selector, with_pod_overrides};
use super::{trino_access, trino_auth};

/// Component label of the coordinator.
pub const COORDINATOR_COMPONENT: &str = "trino-coordinator";
/// Component label of the workers.
pub const WORKER_COMPONENT: &str = "trino-worker";
/// Trino HTTP port (clients, discovery, internal communication).
pub const HTTP_PORT: i32 = 8080;
/// Pod-template annotation holding the hash of the rendered configuration it mounts.
pub const CONFIG_HASH_ANNOTATION: &str = "lakeform.dev/config-hash";
/// Environment variable carrying the S3 access key id (from the lake's S3 Secret).
pub const ENV_S3_ACCESS_KEY: &str = "LAKE_S3_ACCESS_KEY";
/// Environment variable carrying the S3 secret access key (from the lake's S3 Secret).
pub const ENV_S3_SECRET_KEY: &str = "LAKE_S3_SECRET_KEY";
/// Environment variable carrying an external catalog's OAuth2 client id.
pub const ENV_CATALOG_CLIENT_ID: &str = "LAKE_CATALOG_CLIENT_ID";
/// Environment variable carrying an external catalog's OAuth2 client secret.
pub const ENV_CATALOG_CLIENT_SECRET: &str = "LAKE_CATALOG_CLIENT_SECRET";
/// Secret keys of an external catalog's OAuth2 client credentials.
pub const OAUTH2_CLIENT_ID_KEY: &str = "clientId";
/// Secret key of the OAuth2 client secret.
pub const OAUTH2_CLIENT_SECRET_KEY: &str = "clientSecret";
/// Workers when `workers.replicas` is unset.
pub const DEFAULT_WORKERS: i32 = 2;
/// Resource group for users no workgroup lists.
pub const DEFAULT_GROUP: &str = "default";
/// Configuration directory of the image (`run-trino` passes `--etc-dir /etc/trino`).
pub const ETC_DIR: &str = "/etc/trino";
/// Data directory (an emptyDir).
pub const DATA_DIR: &str = "/data/trino";

/// Files `configOverrides` may name (besides `catalog/<catalogName>.properties`).
pub const OVERRIDABLE_FILES: [&str; 4] = [
    "config.properties",
    "jvm.config",
    "node.properties",
    "log.properties",
];

const TRINO_UID: i64 = 1000;
const DEFAULT_CONCURRENCY: i64 = 100;
const DEFAULT_QUEUED: i64 = 1000;
const SCAN_PROPERTY: &str = "query_max_scan_physical_bytes";

/// Coordinator or workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The single coordinator.
    Coordinator,
    /// The workers.
    Worker,
}

impl Role {
    /// Component label of the role.
    pub fn component(self) -> &'static str {
        match self {
            Role::Coordinator => COORDINATOR_COMPONENT,
            Role::Worker => WORKER_COMPONENT,
        }
    }
}

/// Name of the coordinator Service (clients and workers use it).
pub fn service_name(lake: &DataLake) -> String {
    format!("{}-trino", lake.name_any())
}

/// Name of a role's Deployment and ConfigMap.
pub fn name(lake: &DataLake, role: Role) -> String {
    format!("{}-{}", lake.name_any(), role.component())
}

/// In-cluster URI of the coordinator (clients and `discovery.uri`).
pub fn uri(lake: &DataLake) -> String {
    format!(
        "http://{}.{}.svc.cluster.local:{HTTP_PORT}",
        service_name(lake),
        lake.namespace().unwrap_or_default()
    )
}

/// Number of workers (`workers.replicas`, default 2).
pub fn worker_replicas(trino: &TrinoSpec) -> i32 {
    trino.workers.replicas.unwrap_or(DEFAULT_WORKERS)
}

/// Path (relative to `/etc/trino`) of the lake's catalog file.
pub fn catalog_file(trino: &TrinoSpec) -> String {
    format!("catalog/{}.properties", trino.catalog_name)
}

/// ConfigMap key of a rendered file (keys cannot hold `/`; the volume maps them back).
pub fn config_key(path: &str) -> String {
    match path.strip_prefix("catalog/") {
        Some(file) => format!("catalog-{file}"),
        None => path.to_string(),
    }
}

/// Path (relative to `/etc/trino`) of a ConfigMap key: the inverse of [`config_key`]. No other
/// rendered file starts with `catalog-`, and catalog names cannot contain `-` or `/`.
pub fn config_path(key: &str) -> String {
    match key.strip_prefix("catalog-") {
        Some(file) => format!("catalog/{file}"),
        None => key.to_string(),
    }
}

/// `node.environment`: the lake name as lowercase alphanumerics and underscores.
pub fn node_environment(lake: &DataLake) -> String {
    lake.name_any()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `key=value` lines: defaults in order, each overridden in place, then new keys sorted.
fn properties(defaults: &[(&str, String)], overrides: Option<&BTreeMap<String, String>>) -> String {
    let mut lines: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for (k, v) in overrides.into_iter().flatten() {
        match lines.iter_mut().find(|(key, _)| key == k) {
            Some(line) => line.1 = v.clone(),
            None => lines.push((k.clone(), v.clone())),
        }
    }
    lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// Default JVM options: the deployment guide's starting point, with the heap sized from the
/// container's memory limit (`-XX:MaxRAMPercentage`) instead of a fixed `-Xmx`.
const JVM_DEFAULTS: [&str; 14] = [
    "-server",
    "-XX:InitialRAMPercentage=80",
    "-XX:MaxRAMPercentage=80",
    "-XX:G1HeapRegionSize=32M",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:+HeapDumpOnOutOfMemoryError",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:ReservedCodeCacheSize=512M",
    "-XX:PerMethodRecompilationCutoff=10000",
    "-XX:PerBytecodeRecompilationCutoff=10000",
    "-Djdk.attach.allowAttachSelf=true",
    "-Djdk.nio.maxCachedBufferSize=2000000",
    "-Dfile.encoding=UTF-8",
];

/// `jvm.config`: one option per line. An override `K: V` renders as the line `KV` and replaces
/// every default line starting with `K` (`{"-XX:MaxRAMPercentage=": "70"}`,
/// `{"-Xmx": "8G"}`, `{"-XX:+UseZGC": ""}`).
fn jvm_config(overrides: Option<&BTreeMap<String, String>>) -> String {
    let mut lines: Vec<String> = JVM_DEFAULTS.iter().map(|l| l.to_string()).collect();
    for (k, v) in overrides.into_iter().flatten() {
        lines.retain(|l| !l.starts_with(k.as_str()));
        lines.push(format!("{k}{v}"));
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Escape a literal for a Java regular expression.
pub(crate) fn java_regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.[]{}()<>*+-=!?^$|".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `resource-groups.json`: one root group per workgroup (concurrency and queue limits) plus a
/// `default` group, selectors by user in workgroup order, then a catch-all to `default`.
pub fn resource_groups(workgroups: &[Workgroup]) -> Value {
    let mut groups: Vec<Value> = workgroups
        .iter()
        .map(|w| {
            json!({
                "name": w.name,
                "softMemoryLimit": "100%",
                "hardConcurrencyLimit": w.max_concurrent_queries.map_or(DEFAULT_CONCURRENCY, i64::from),
                "maxQueued": w.max_queued_queries.map_or(DEFAULT_QUEUED, i64::from),
            })
        })
        .collect();
    if !workgroups.iter().any(|w| w.name == DEFAULT_GROUP) {
        groups.push(json!({
            "name": DEFAULT_GROUP,
            "softMemoryLimit": "100%",
            "hardConcurrencyLimit": DEFAULT_CONCURRENCY,
            "maxQueued": DEFAULT_QUEUED,
        }));
    }
    let mut selectors: Vec<Value> = workgroups
        .iter()
        .filter(|w| !w.users.is_empty())
        .map(|w| {
            let users: Vec<String> = w.users.iter().map(|u| java_regex_literal(u)).collect();
            json!({"user": format!("^({})$", users.join("|")), "group": w.name})
        })
        .collect();
    selectors.push(json!({"group": DEFAULT_GROUP}));
    json!({"rootGroups": groups, "selectors": selectors})
}

/// `session-property-config.json`: `query_max_scan_physical_bytes` for queries routed to each
/// workgroup with `maxScanBytes`. Empty when no workgroup sets one.
pub fn session_properties(workgroups: &[Workgroup]) -> Result<Value, BuildError> {
    let mut rules = Vec::new();
    for w in workgroups {
        let Some(q) = &w.max_scan_bytes else { continue };
        let bytes = quantity_bytes(&q.0).ok_or_else(|| BuildError::ScanBytes {
            workgroup: w.name.clone(),
            value: q.0.clone(),
        })?;
        rules.push(json!({
            "group": format!("^{}$", java_regex_literal(&w.name)),
            "sessionProperties": {SCAN_PROPERTY: format!("{bytes}B")},
        }));
    }
    Ok(Value::Array(rules))
}

/// The catalog file: Iceberg on the lake's REST catalog, native S3 with credentials from the
/// environment. `None` when the lake has no catalog.
fn catalog_properties(
    endpoints: &LakeEndpoints,
    overrides: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let catalog_uri = endpoints.catalog_uri.as_ref()?;
    let mut props: Vec<(&str, String)> = vec![
        ("connector.name", "iceberg".into()),
        ("iceberg.catalog.type", "rest".into()),
        ("iceberg.rest-catalog.uri", catalog_uri.clone()),
    ];
    if let Some(w) = &endpoints.warehouse {
        props.push(("iceberg.rest-catalog.warehouse", w.clone()));
    }
    if let Some(o) = &endpoints.catalog_oauth2 {
        props.push(("iceberg.rest-catalog.security", "OAUTH2".into()));
        props.push((
            "iceberg.rest-catalog.oauth2.credential",
            format!("${{ENV:{ENV_CATALOG_CLIENT_ID}}}:${{ENV:{ENV_CATALOG_CLIENT_SECRET}}}"),
        ));
        if let Some(t) = &o.token_uri {
            props.push(("iceberg.rest-catalog.oauth2.server-uri", t.clone()));
        }
        if let Some(s) = &o.scope {
            props.push(("iceberg.rest-catalog.oauth2.scope", s.clone()));
        }
    }
    props.extend([
        ("fs.native-s3.enabled", "true".to_string()),
        ("s3.endpoint", endpoints.s3_endpoint.clone()),
        ("s3.region", endpoints.region.clone()),
        ("s3.path-style-access", endpoints.path_style.to_string()),
        ("s3.aws-access-key", format!("${{ENV:{ENV_S3_ACCESS_KEY}}}")),
        ("s3.aws-secret-key", format!("${{ENV:{ENV_S3_SECRET_KEY}}}")),
    ]);
    Some(properties(&props, overrides))
}

/// Every rendered file of a role, by path relative to `/etc/trino`.
pub fn render(
    lake: &DataLake,
    engine: &QueryEngineSpec,
    trino: &TrinoSpec,
    endpoints: &LakeEndpoints,
    role: Role,
) -> Result<BTreeMap<String, String>, BuildError> {
    let catalog_path = catalog_file(trino);
    let has_catalog = endpoints.catalog_uri.is_some();
    for file in trino.config_overrides.keys() {
        let known =
            OVERRIDABLE_FILES.contains(&file.as_str()) || (has_catalog && *file == catalog_path);
        if !known {
            let mut expected: Vec<String> =
                OVERRIDABLE_FILES.iter().map(|f| f.to_string()).collect();
            if has_catalog {
                expected.push(catalog_path.clone());
            }
            return Err(BuildError::UnknownOverrideFile {
                file: file.clone(),
                expected: expected.join(", "),
            });
        }
    }
    let over = |file: &str| trino.config_overrides.get(file);
    let discovery = uri(lake);
    let config = match role {
        Role::Coordinator => {
            // With no workers the coordinator must run the splits itself.
            let include = worker_replicas(trino) == 0;
            properties(
                &[
                    ("coordinator", "true".into()),
                    ("node-scheduler.include-coordinator", include.to_string()),
                    ("http-server.http.port", HTTP_PORT.to_string()),
                    ("discovery.uri", discovery),
                    // Clients reach the coordinator through proxies that add X-Forwarded-*
                    // (the API server's service proxy of `lakeform query`, ingresses); without
                    // this Trino answers them 406.
                    ("http-server.process-forwarded", "true".into()),
                ]
                .into_iter()
                .chain(trino_auth::properties(role))
                .collect::<Vec<_>>(),
                over("config.properties"),
            )
        }
        Role::Worker => properties(
            &[
                ("coordinator", "false".into()),
                ("http-server.http.port", HTTP_PORT.to_string()),
                ("discovery.uri", discovery),
            ]
            .into_iter()
            .chain(trino_auth::properties(role))
            .collect::<Vec<_>>(),
            over("config.properties"),
        ),
    };
    let mut files = BTreeMap::from([
        ("config.properties".to_string(), config),
        (
            "node.properties".to_string(),
            properties(
                &[
                    ("node.environment", node_environment(lake)),
                    ("node.data-dir", DATA_DIR.into()),
                ],
                over("node.properties"),
            ),
        ),
        ("jvm.config".to_string(), jvm_config(over("jvm.config"))),
        (
            "log.properties".to_string(),
            properties(&[("io.trino", "INFO".into())], over("log.properties")),
        ),
    ]);
    if let Some(catalog) = catalog_properties(endpoints, over(&catalog_path)) {
        files.insert(catalog_path, catalog);
    }
    if role == Role::Coordinator {
        files.insert(
            "access-control.properties".into(),
            properties(&trino_access::properties(), None),
        );
        files.insert(
            "password-authenticator.properties".into(),
            properties(&trino_auth::authenticator_properties(), None),
        );
        files.insert(
            trino_auth::USER_MAPPING_FILE.into(),
            format!("{:#}", trino_auth::user_mapping()),
        );
    }
    if role == Role::Coordinator && !engine.workgroups.is_empty() {
        let groups = resource_groups(&engine.workgroups);
        files.insert(
            "resource-groups.properties".into(),
            properties(
                &[
                    ("resource-groups.configuration-manager", "file".into()),
                    (
                        "resource-groups.config-file",
                        format!("{ETC_DIR}/resource-groups.json"),
                    ),
                ],
                None,
            ),
        );
        files.insert("resource-groups.json".into(), format!("{groups:#}"));
        let session = session_properties(&engine.workgroups)?;
        if session.as_array().is_some_and(|rules| !rules.is_empty()) {
            files.insert(
                "session-property-config.properties".into(),
                properties(
                    &[
                        (
                            "session-property-config.configuration-manager",
                            "file".into(),
                        ),
                        (
                            "session-property-manager.config-file",
                            format!("{ETC_DIR}/session-property-config.json"),
                        ),
                    ],
                    None,
                ),
            );
            files.insert(
                "session-property-config.json".into(),
                format!("{session:#}"),
            );
        }
    }
    Ok(files)
}

/// A role's ConfigMap (`<lake>-trino-coordinator` / `<lake>-trino-worker`); keys are
/// [`config_key`]s of the rendered paths.
pub fn config_map(
    lake: &DataLake,
    engine: &QueryEngineSpec,
    trino: &TrinoSpec,
    endpoints: &LakeEndpoints,
    role: Role,
) -> Result<ConfigMap, BuildError> {
    let files = render(lake, engine, trino, endpoints, role)?;
    Ok(ConfigMap {
        metadata: owned_meta(lake, name(lake, role), role.component()),
        data: Some(
            files
                .into_iter()
                .map(|(path, content)| (config_key(&path), content))
                .collect(),
        ),
        ..Default::default()
    })
}

/// Hash of a ConfigMap's data (first 16 hex digits of SHA-256 over its sorted JSON form).
pub fn config_hash(config: &ConfigMap) -> String {
    let data = config.data.clone().unwrap_or_default();
    let json = serde_json::to_string(&data).unwrap_or_default();
    hex::encode(Sha256::digest(json.as_bytes()))[..16].to_string()
}

fn config_volume(config: &ConfigMap) -> Volume {
    let items = config
        .data
        .iter()
        .flatten()
        .map(|(key, _)| KeyToPath {
            key: key.clone(),
            path: config_path(key),
            ..Default::default()
        })
        .collect();
    Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config.metadata.name.clone().unwrap_or_default(),
            items: Some(items),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The rendered configuration at `/etc/trino`, the data directory, and on the coordinator the
/// access rules at `/etc/trino-access` (a whole-directory mount: the kubelet updates it in place).
fn mounts(role: Role) -> Vec<VolumeMount> {
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let mut mounts = vec![
        mount("config", ETC_DIR, true),
        mount("data", DATA_DIR, false),
    ];
    if role == Role::Coordinator {
        mounts.push(mount("access", trino_access::ACCESS_DIR, true));
        mounts.push(mount("auth", trino_auth::AUTH_DIR, true));
        mounts.push(mount("tls", trino_auth::TLS_DIR, true));
    }
    mounts
}

/// The volumes [`mounts`] mounts.
fn volumes(lake: &DataLake, role: Role, config: &ConfigMap) -> Vec<Volume> {
    let mut volumes = vec![
        config_volume(config),
        Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    if role == Role::Coordinator {
        volumes.push(Volume {
            name: "access".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: trino_access::config_map_name(lake),
                ..Default::default()
            }),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "auth".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(trino_auth::password_secret_name(lake)),
                ..Default::default()
            }),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(trino_auth::key_secret_name(lake)),
                items: Some(vec![KeyToPath {
                    key: trino_auth::KEYSTORE_FILE.into(),
                    path: trino_auth::KEYSTORE_FILE.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    volumes
}

/// Pod environment: the S3 key pair, the internal shared secret (and an external catalog's
/// OAuth2 client) by `secretKeyRef`.
pub fn env(lake: &DataLake, endpoints: &LakeEndpoints) -> Vec<EnvVar> {
    let c = &endpoints.credentials;
    let mut env = vec![
        secret_env(ENV_S3_ACCESS_KEY, &c.secret_name, &c.access_key_id_key),
        secret_env(ENV_S3_SECRET_KEY, &c.secret_name, &c.secret_access_key_key),
        secret_env(
            trino_auth::ENV_SHARED_SECRET,
            &trino_auth::key_secret_name(lake),
            trino_auth::KEY_SECRET_KEY,
        ),
    ];
    if let Some(o) = &endpoints.catalog_oauth2 {
        env.push(secret_env(
            ENV_CATALOG_CLIENT_ID,
            &o.secret_name,
            OAUTH2_CLIENT_ID_KEY,
        ));
        env.push(secret_env(
            ENV_CATALOG_CLIENT_SECRET,
            &o.secret_name,
            OAUTH2_CLIENT_SECRET_KEY,
        ));
    }
    env
}

/// A role's Deployment: 1 coordinator or `workers.replicas` workers, mounting `config` (the
/// role's ConfigMap from [`config_map`]) at `/etc/trino`, with the config hash on the pod
/// template so a configuration change rolls the pods.
pub fn deployment(
    lake: &DataLake,
    trino: &TrinoSpec,
    endpoints: &LakeEndpoints,
    role: Role,
    config: &ConfigMap,
) -> Result<Deployment, BuildError> {
    let (replicas, spec_role): (i32, &TrinoRole) = match role {
        Role::Coordinator => (1, &trino.coordinator),
        Role::Worker => (worker_replicas(trino), &trino.workers),
    };
    let container = Container {
        name: "trino".into(),
        image: Some(trino.image.clone()),
        env: Some(env(lake, endpoints)),
        ports: Some(ports(role)),
        volume_mounts: Some(mounts(role)),
        readiness_probe: Some(http_probe("/v1/info", HTTP_PORT, 10, 3)),
        liveness_probe: Some(http_probe("/v1/info", HTTP_PORT, 60, 6)),
        resources: spec_role.resources.clone(),
        security_context: Some(restricted()),
        ..Default::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&lake.name_any(), role.component())),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                config_hash(config),
            )])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes(lake, role, config)),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(TRINO_UID),
                run_as_group: Some(TRINO_UID),
                fs_group: Some(TRINO_UID),
                run_as_non_root: Some(true),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let overrides = trino.pod_overrides.as_ref().map(|o| &o.0);
    let template = with_pod_overrides(template, overrides, "spec.queryEngine.trino.podOverrides")?;
    Ok(Deployment {
        metadata: owned_meta(lake, name(lake, role), role.component()),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector(&lake.name_any(), role.component())),
                ..Default::default()
            },
            // Never two coordinators at once: workers would register with either.
            strategy: (role == Role::Coordinator).then(|| DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            template,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A role's container ports: `http` (8080), and on the coordinator `https` (clients).
fn ports(role: Role) -> Vec<ContainerPort> {
    let port = |name: &str, number: i32| ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    match role {
        Role::Coordinator => vec![
            port("http", HTTP_PORT),
            port("https", trino_auth::HTTPS_PORT),
        ],
        Role::Worker => vec![port("http", HTTP_PORT)],
    }
}

/// The coordinator Service (`<lake>-trino`): `https` (8443) for clients with passwords, `http`
/// (8080) for `discovery.uri`, the workers and `/v1/info`.
pub fn service(lake: &DataLake) -> Service {
    let port = |name: &str, number: i32| ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Service {
        metadata: owned_meta(lake, service_name(lake), COORDINATOR_COMPONENT),
        spec: Some(ServiceSpec {
            selector: Some(selector(&lake.name_any(), COORDINATOR_COMPONENT)),
            ports: Some(vec![
                port("http", HTTP_PORT),
                port("https", trino_auth::HTTPS_PORT),
            ]),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Every object of the query engine.
#[derive(Clone, Debug)]
pub struct TrinoObjects {
    /// Coordinator and worker ConfigMaps, and the coordinator's access rules.
    pub config_maps: [ConfigMap; 3],
    /// The coordinator Service.
    pub service: Service,
    /// Coordinator and worker Deployments (apply last).
    pub deployments: [Deployment; 2],
}

/// All objects of `spec.queryEngine.trino`, or `None` when no Trino is requested.
pub fn objects(
    lake: &DataLake,
    endpoints: &LakeEndpoints,
    access: &Value,
) -> Result<Option<TrinoObjects>, BuildError> {
    let Some(engine) = &lake.spec.query_engine else {
        return Ok(None);
    };
    let Some(trino) = &engine.trino else {
        return Ok(None);
    };
    let coordinator = config_map(lake, engine, trino, endpoints, Role::Coordinator)?;
    let worker = config_map(lake, engine, trino, endpoints, Role::Worker)?;
    let deployments = [
        deployment(lake, trino, endpoints, Role::Coordinator, &coordinator)?,
        deployment(lake, trino, endpoints, Role::Worker, &worker)?,
    ];
    Ok(Some(TrinoObjects {
        config_maps: [coordinator, worker, trino_access::config_map(lake, access)],
        service: service(lake),
        deployments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::connection::tests::lake;

    const BASE: &str = "  storage:\n    external:\n      endpoint: http://minio.data:9000\n      region: eu-1\n      credentials: {secretName: s3-creds}\n  zones: [{name: raw}]\n  catalog:\n    external: {uri: 'http://rest.data:8181', warehouse: 's3://wh/'}\n";

    fn with_engine(engine: &str) -> DataLake {
        lake(&format!("{BASE}  queryEngine:\n{engine}"))
    }

    const FULL: &str = "    trino:\n      workers: {replicas: 3}\n    workgroups:\n      - {name: analysts, users: [alice, bob.smith], maxScanBytes: 10Gi, maxConcurrentQueries: 5, maxQueuedQueries: 50}\n      - {name: etl, users: [airflow]}\n";

    fn build(l: &DataLake) -> TrinoObjects {
        objects(l, &LakeEndpoints::for_lake(l), &serde_json::json!({}))
            .expect("builds")
            .expect("trino requested")
    }

    fn file(cm: &ConfigMap, key: &str) -> String {
        cm.data.as_ref().expect("data")[key].clone()
    }

    fn lines(content: &str) -> Vec<&str> {
        content.lines().collect()
    }

    fn hash(d: &Deployment) -> String {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .expect("annotations")[CONFIG_HASH_ANNOTATION]
            .clone()
    }

    #[test]
    fn deployments_services_and_selectors() {
        let l = with_engine(FULL);
        let o = build(&l);
        let [coord, workers] = &o.deployments;
        assert_eq!(
            coord.metadata.name.as_deref(),
            Some("sales-trino-coordinator")
        );
        assert_eq!(workers.metadata.name.as_deref(), Some("sales-trino-worker"));
        assert_eq!(coord.spec.as_ref().and_then(|s| s.replicas), Some(1));
        assert_eq!(
            coord
                .spec
                .as_ref()
                .and_then(|s| s.strategy.as_ref())
                .and_then(|s| s.type_.as_deref()),
            Some("Recreate")
        );
        assert_eq!(workers.spec.as_ref().and_then(|s| s.replicas), Some(3));
        for d in [coord, workers] {
            let owner = &d.metadata.owner_references.as_ref().expect("owner")[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), owner.controller),
                ("DataLake", "sales", Some(true))
            );
            let spec = d.spec.as_ref().expect("spec");
            let sel = spec.selector.match_labels.as_ref().expect("selector");
            let pod_labels = spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.as_ref())
                .expect("labels");
            assert!(sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
            assert_eq!(pod_labels["app.kubernetes.io/managed-by"], "lakeform");
            let pod = spec.template.spec.as_ref().expect("pod");
            let c = &pod.containers[0];
            assert_eq!(c.image.as_deref(), Some("trinodb/trino:478"));
            assert_eq!(c.ports.as_ref().expect("ports")[0].container_port, 8080);
            let mount = &c.volume_mounts.as_ref().expect("mounts")[0];
            assert_eq!(mount.mount_path, "/etc/trino");
            let items = pod.volumes.as_ref().expect("volumes")[0]
                .config_map
                .as_ref()
                .and_then(|c| c.items.clone())
                .expect("items");
            assert!(
                items
                    .iter()
                    .any(|i| i.key == "catalog-lake.properties"
                        && i.path == "catalog/lake.properties")
            );
        }
        // Coordinator and workers select disjoint pods.
        let cs = coord.spec.as_ref().unwrap().selector.match_labels.clone();
        let ws = workers.spec.as_ref().unwrap().selector.match_labels.clone();
        assert_ne!(cs, ws);
        let svc = &o.service;
        assert_eq!(svc.metadata.name.as_deref(), Some("sales-trino"));
        let svc_spec = svc.spec.as_ref().expect("spec");
        assert_eq!(svc_spec.ports.as_ref().expect("ports")[0].port, 8080);
        assert_eq!(svc_spec.selector, cs);
    }

    #[test]
    fn nothing_without_a_query_engine() {
        let l = lake(BASE);
        assert!(
            objects(&l, &LakeEndpoints::for_lake(&l), &json!({}))
                .expect("builds")
                .is_none()
        );
        assert_eq!(
            config_path(&config_key("catalog/lake.properties")),
            "catalog/lake.properties"
        );
        assert_eq!(config_path(&config_key("jvm.config")), "jvm.config");
    }

    #[test]
    fn default_worker_count_is_two() {
        let l = with_engine("    trino: {}\n");
        let o = build(&l);
        assert_eq!(
            o.deployments[1].spec.as_ref().and_then(|s| s.replicas),
            Some(2)
        );
        assert!(
            !o.config_maps[0]
                .data
                .as_ref()
                .expect("data")
                .contains_key("resource-groups.json"),
            "no workgroups, no resource groups"
        );
    }

    #[test]
    fn property_files() {
        let l = with_engine(FULL);
        let o = build(&l);
        let [coord, worker, _access] = &o.config_maps;
        assert_eq!(
            coord.metadata.name.as_deref(),
            Some("sales-trino-coordinator")
        );
        let config = file(coord, "config.properties");
        assert_eq!(
            lines(&config),
            [
                "coordinator=true",
                "node-scheduler.include-coordinator=false",
                "http-server.http.port=8080",
                "discovery.uri=http://sales-trino.team.svc.cluster.local:8080",
                "http-server.process-forwarded=true",
                "http-server.authentication.type=PASSWORD",
                "http-server.https.enabled=true",
                "http-server.https.port=8443",
                "http-server.https.keystore.path=/etc/trino-tls/keystore.pem",
                "http-server.authentication.password.user-mapping.file=/etc/trino/user-mapping.json",
                "internal-communication.shared-secret=${ENV:LAKE_TRINO_SHARED_SECRET}",
            ]
        );
        assert_eq!(
            lines(&file(worker, "config.properties")),
            [
                "coordinator=false",
                "http-server.http.port=8080",
                "discovery.uri=http://sales-trino.team.svc.cluster.local:8080",
                "internal-communication.shared-secret=${ENV:LAKE_TRINO_SHARED_SECRET}",
            ]
        );
        assert_eq!(
            lines(&file(coord, "password-authenticator.properties")),
            [
                "password-authenticator.name=file",
                "file.password-file=/etc/trino-auth/password.db",
                "file.refresh-period=5s",
            ]
        );
        let node = file(worker, "node.properties");
        assert_eq!(
            lines(&node),
            ["node.environment=sales", "node.data-dir=/data/trino"]
        );
        assert!(!node.contains("node.id"), "node.id comes from the pod name");
        assert!(file(worker, "jvm.config").contains("-XX:MaxRAMPercentage=80\n"));
        assert_eq!(file(worker, "log.properties"), "io.trino=INFO\n");
        let catalog = file(worker, "catalog-lake.properties");
        assert_eq!(catalog, file(coord, "catalog-lake.properties"));
        assert_eq!(
            lines(&catalog),
            [
                "connector.name=iceberg",
                "iceberg.catalog.type=rest",
                "iceberg.rest-catalog.uri=http://rest.data:8181",
                "iceberg.rest-catalog.warehouse=s3://wh/",
                "fs.native-s3.enabled=true",
                "s3.endpoint=http://minio.data:9000",
                "s3.region=eu-1",
                "s3.path-style-access=true",
                "s3.aws-access-key=${ENV:LAKE_S3_ACCESS_KEY}",
                "s3.aws-secret-key=${ENV:LAKE_S3_SECRET_KEY}",
            ]
        );
        assert!(
            !worker
                .data
                .as_ref()
                .unwrap()
                .contains_key("resource-groups.json"),
            "resource groups live on the coordinator"
        );
        assert_eq!(
            lines(&file(coord, "resource-groups.properties")),
            [
                "resource-groups.configuration-manager=file",
                "resource-groups.config-file=/etc/trino/resource-groups.json",
            ]
        );
        assert_eq!(
            lines(&file(coord, "session-property-config.properties")),
            [
                "session-property-config.configuration-manager=file",
                "session-property-manager.config-file=/etc/trino/session-property-config.json",
            ]
        );
    }

    #[test]
    fn resource_groups_and_scan_limits_parse_back() {
        let l = with_engine(FULL);
        let o = build(&l);
        let coord = &o.config_maps[0];
        let groups: Value =
            serde_json::from_str(&file(coord, "resource-groups.json")).expect("valid JSON");
        let roots = groups["rootGroups"].as_array().expect("rootGroups");
        assert_eq!(roots.len(), 3);
        assert_eq!(roots[0]["name"], "analysts");
        assert_eq!(roots[0]["hardConcurrencyLimit"], 5);
        assert_eq!(roots[0]["maxQueued"], 50);
        assert_eq!(roots[0]["softMemoryLimit"], "100%");
        assert_eq!(roots[1]["name"], "etl");
        assert_eq!(roots[1]["hardConcurrencyLimit"], 100);
        assert_eq!(roots[1]["maxQueued"], 1000);
        assert_eq!(roots[2]["name"], "default");
        let selectors = groups["selectors"].as_array().expect("selectors");
        assert_eq!(selectors[0]["user"], "^(alice|bob\\.smith)$");
        assert_eq!(selectors[0]["group"], "analysts");
        assert_eq!(selectors[1]["user"], "^(airflow)$");
        assert_eq!(selectors[2], json!({"group": "default"}), "catch-all last");

        let session: Value =
            serde_json::from_str(&file(coord, "session-property-config.json")).expect("valid JSON");
        assert_eq!(
            session,
            json!([{
                "group": "^analysts$",
                "sessionProperties": {"query_max_scan_physical_bytes": "10737418240B"}
            }])
        );
    }

    #[test]
    fn bad_scan_quantity_is_reported() {
        let l =
            with_engine("    trino: {}\n    workgroups:\n      - {name: x, maxScanBytes: lots}\n");
        let err = objects(&l, &LakeEndpoints::for_lake(&l), &json!({})).expect_err("invalid");
        assert!(err.to_string().contains("workgroups[x].maxScanBytes"));
    }

    #[test]
    fn config_overrides_merge_per_file() {
        let l = with_engine(
            "    trino:\n      configOverrides:\n        config.properties: {query.max-memory: 4GB, http-server.http.port: '8080'}\n        jvm.config: {'-XX:MaxRAMPercentage=': '70', '-XX:+UseZGC': ''}\n        catalog/lake.properties: {iceberg.file-format: ORC}\n",
        );
        let o = build(&l);
        let worker = &o.config_maps[1];
        let config = file(worker, "config.properties");
        assert!(config.ends_with("query.max-memory=4GB\n"));
        assert_eq!(config.matches("http-server.http.port=").count(), 1);
        let jvm = file(worker, "jvm.config");
        assert!(jvm.contains("-XX:MaxRAMPercentage=70\n"));
        assert!(!jvm.contains("-XX:MaxRAMPercentage=80"));
        assert!(jvm.contains("-XX:+UseZGC\n"));
        assert!(file(worker, "catalog-lake.properties").ends_with("iceberg.file-format=ORC\n"));

        let bad = with_engine("    trino:\n      configOverrides:\n        hosts.txt: {a: b}\n");
        let err =
            objects(&bad, &LakeEndpoints::for_lake(&bad), &json!({})).expect_err("unknown file");
        assert!(err.to_string().contains("hosts.txt"));
        assert!(err.to_string().contains("catalog/lake.properties"));
    }

    #[test]
    fn config_hash_follows_rendered_config() {
        let base = build(&with_engine(FULL));
        let same = build(&with_engine(FULL));
        assert_eq!(hash(&base.deployments[0]), hash(&same.deployments[0]));
        assert_eq!(hash(&base.deployments[1]), hash(&same.deployments[1]));

        // A catalog setting changes both roles.
        let mut other_catalog = with_engine(FULL);
        let mut ep = LakeEndpoints::for_lake(&other_catalog);
        ep.warehouse = Some("s3://elsewhere/".into());
        let changed = objects(&other_catalog, &ep, &json!({}))
            .expect("builds")
            .expect("trino");
        assert_ne!(hash(&base.deployments[0]), hash(&changed.deployments[0]));
        assert_ne!(hash(&base.deployments[1]), hash(&changed.deployments[1]));
        other_catalog
            .spec
            .catalog
            .as_mut()
            .unwrap()
            .external
            .as_mut()
            .unwrap()
            .uri = "http://rest2.data:8181".into();
        let changed = build(&other_catalog);
        assert_ne!(hash(&base.deployments[1]), hash(&changed.deployments[1]));

        // A configOverride changes the hash.
        let overridden = build(&with_engine(
            "    trino:\n      workers: {replicas: 3}\n      configOverrides:\n        log.properties: {io.trino: DEBUG}\n    workgroups:\n      - {name: analysts, users: [alice, bob.smith], maxScanBytes: 10Gi, maxConcurrentQueries: 5, maxQueuedQueries: 50}\n      - {name: etl, users: [airflow]}\n",
        ));
        assert_ne!(hash(&base.deployments[1]), hash(&overridden.deployments[1]));

        // A workgroup limit changes the coordinator only.
        let limits = build(&with_engine(
            &FULL.replace("maxConcurrentQueries: 5", "maxConcurrentQueries: 6"),
        ));
        assert_ne!(hash(&base.deployments[0]), hash(&limits.deployments[0]));
        assert_eq!(hash(&base.deployments[1]), hash(&limits.deployments[1]));

        // Worker count: scaling 3 -> 5 restarts nothing; dropping to 0 workers makes the
        // coordinator schedule work on itself, which changes its configuration.
        let more = build(&with_engine(&FULL.replace("replicas: 3", "replicas: 5")));
        assert_eq!(hash(&base.deployments[0]), hash(&more.deployments[0]));
        assert_eq!(hash(&base.deployments[1]), hash(&more.deployments[1]));
        let none = build(&with_engine(&FULL.replace("replicas: 3", "replicas: 0")));
        assert_ne!(hash(&base.deployments[0]), hash(&none.deployments[0]));
        assert!(
            file(&none.config_maps[0], "config.properties")
                .contains("node-scheduler.include-coordinator=true\n")
        );
    }

    #[test]
    fn credentials_only_by_reference() {
        let l = with_engine(FULL);
        let o = build(&l);
        for d in &o.deployments {
            let c = &d
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0];
            let env = c.env.as_ref().expect("env");
            assert!(env.iter().all(|e| e.value.is_none()), "nothing inlined");
            let refs: Vec<(&str, &str, &str)> = env
                .iter()
                .map(|e| {
                    let r = e
                        .value_from
                        .as_ref()
                        .and_then(|v| v.secret_key_ref.as_ref())
                        .expect("secretKeyRef");
                    (e.name.as_str(), r.name.as_str(), r.key.as_str())
                })
                .collect();
            assert_eq!(
                refs,
                [
                    ("LAKE_S3_ACCESS_KEY", "s3-creds", "accessKeyId"),
                    ("LAKE_S3_SECRET_KEY", "s3-creds", "secretAccessKey"),
                    ("LAKE_TRINO_SHARED_SECRET", "sales-trino-auth", "key"),
                ]
            );
        }
    }

    #[test]
    fn external_catalog_oauth2_from_secret() {
        let l = lake(&format!(
            "{}  queryEngine:\n    trino: {{}}\n",
            BASE.replace(
                "warehouse: 's3://wh/'}",
                "warehouse: 's3://wh/', oauth2: {secretName: rest-client, tokenUri: 'https://idp/token', scope: 'PRINCIPAL_ROLE:ALL'}}"
            )
        ));
        let o = build(&l);
        let catalog = file(&o.config_maps[1], "catalog-lake.properties");
        assert!(catalog.contains("iceberg.rest-catalog.security=OAUTH2\n"));
        assert!(catalog.contains(
            "iceberg.rest-catalog.oauth2.credential=${ENV:LAKE_CATALOG_CLIENT_ID}:${ENV:LAKE_CATALOG_CLIENT_SECRET}\n"
        ));
        assert!(catalog.contains("iceberg.rest-catalog.oauth2.server-uri=https://idp/token\n"));
        assert!(catalog.contains("iceberg.rest-catalog.oauth2.scope=PRINCIPAL_ROLE:ALL\n"));
        let env = env(&l, &LakeEndpoints::for_lake(&l));
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "LAKE_S3_ACCESS_KEY",
                "LAKE_S3_SECRET_KEY",
                "LAKE_TRINO_SHARED_SECRET",
                "LAKE_CATALOG_CLIENT_ID",
                "LAKE_CATALOG_CLIENT_SECRET",
            ]
        );
    }

    #[test]
    fn pod_overrides_merge_over_both_roles() {
        let l = with_engine(
            "    trino:\n      podOverrides:\n        spec:\n          nodeSelector: {pool: query}\n",
        );
        let o = build(&l);
        for d in &o.deployments {
            let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            assert_eq!(
                pod.node_selector.as_ref().map(|n| n["pool"].as_str()),
                Some("query")
            );
            assert_eq!(pod.containers.len(), 1);
            assert!(
                d.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .metadata
                    .as_ref()
                    .unwrap()
                    .annotations
                    .is_some(),
                "hash annotation kept"
            );
        }
    }
}
