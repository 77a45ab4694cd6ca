//! Managed storage: the MinIO StatefulSet, its Services and its root-credentials Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, Secret, SecretKeySelector,
    SecurityContext, Service, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use lakeform_api::datalake::{DataLake, ManagedStorage};

use super::BuildError;
use super::meta::{
    data_claim, http_probe, kept_meta, owned_meta, selector, service_port, volume_policy,
    with_pod_overrides,
};

/// Component label of the storage objects.
pub const COMPONENT: &str = "storage";
/// S3 API port.
pub const API_PORT: i32 = 9000;
/// Console port.
pub const CONSOLE_PORT: i32 = 9001;
/// Secret keys of the root credentials.
pub const USER_KEY: &str = lakeform_api::connection::MANAGED_ACCESS_KEY_ID_KEY;
/// Secret key of the root password.
pub const PASSWORD_KEY: &str = lakeform_api::connection::MANAGED_SECRET_ACCESS_KEY_KEY;

/// Name of the StatefulSet and the client Service.
pub fn name(lake: &DataLake) -> String {
    format!("{}-minio", lake.name_any())
}

/// Name of the headless Service.
pub fn headless_name(lake: &DataLake) -> String {
    format!("{}-minio-hl", lake.name_any())
}

/// Name of the root-credentials Secret.
pub fn secret_name(lake: &DataLake) -> String {
    lakeform_api::connection::managed_secret_name(lake)
}

/// The in-cluster S3 endpoint of the managed MinIO.
pub fn endpoint(lake: &DataLake) -> String {
    format!(
        "http://{}.{}.svc.cluster.local:{API_PORT}",
        name(lake),
        lake.namespace().unwrap_or_default()
    )
}

/// The root-credentials Secret with the given (generated) values. Created once; never
/// rewritten by a reconcile. Not owned by the lake (`meta::kept_meta`): under `Retain` the
/// volumes it opens outlive the DataLake, and so must it.
pub fn secret(lake: &DataLake, user: &str, password: &str) -> Secret {
    Secret {
        metadata: kept_meta(lake, secret_name(lake), COMPONENT),
        string_data: Some(BTreeMap::from([
            (USER_KEY.to_string(), user.to_string()),
            (PASSWORD_KEY.to_string(), password.to_string()),
        ])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The client Service (`<lake>-minio`) and the headless Service the StatefulSet's pods use.
pub fn services(lake: &DataLake) -> [Service; 2] {
    let sel = selector(&lake.name_any(), COMPONENT);
    let client = Service {
        metadata: owned_meta(lake, name(lake), COMPONENT),
        spec: Some(ServiceSpec {
            selector: Some(sel.clone()),
            ports: Some(vec![
                service_port("s3", API_PORT),
                service_port("console", CONSOLE_PORT),
            ]),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let headless = Service {
        metadata: owned_meta(lake, headless_name(lake), COMPONENT),
        spec: Some(ServiceSpec {
            selector: Some(sel),
            ports: Some(vec![service_port("s3", API_PORT)]),
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    [client, headless]
}

fn secret_env(lake: &DataLake, var: &str, key: &str) -> EnvVar {
    EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret_name(lake),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `minio server` arguments: one local drive, or every pod's drive in distributed mode
/// (MinIO needs at least 4 drives for erasure coding, so 4+ replicas).
pub fn server_args(lake: &DataLake, spec: &ManagedStorage) -> Vec<String> {
    let volume = if spec.replicas >= 4 {
        format!(
            "http://{}-{{0...{}}}.{}.{}.svc.cluster.local/data",
            name(lake),
            spec.replicas - 1,
            headless_name(lake),
            lake.namespace().unwrap_or_default()
        )
    } else {
        "/data".to_string()
    };
    vec![
        "server".into(),
        volume,
        "--address".into(),
        format!(":{API_PORT}"),
        "--console-address".into(),
        format!(":{CONSOLE_PORT}"),
    ]
}

/// The webhook target a managed MinIO delivers bucket notifications through: the operator's
/// event receiver (DESIGN.md §7, `runOnEvents`). MinIO loads targets only at start, so it is
/// part of the pod's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Target id (`MINIO_NOTIFY_WEBHOOK_*_<ID>`, ARN `arn:minio:sqs::<id>:webhook`).
    pub id: String,
    /// URL the MinIO pods POST notifications to.
    pub endpoint: String,
    /// Bearer token the receiver expects; kept in [`events_secret`], never in the pod spec.
    pub token: Option<String>,
}

/// Where the webhook target queues notifications while the receiver is down (an emptyDir).
pub const EVENTS_QUEUE_DIR: &str = "/var/lib/minio-events";
/// Secret key of the webhook target's token.
pub const EVENTS_TOKEN_KEY: &str = "token";

/// Name of the Secret holding the webhook target's token.
pub fn events_secret_name(lake: &DataLake) -> String {
    format!("{}-minio-events", lake.name_any())
}

/// The Secret with the webhook target's token (applied every reconcile: the token is the
/// operator's setting, not generated here).
pub fn events_secret(lake: &DataLake, token: &str) -> Secret {
    Secret {
        metadata: owned_meta(lake, events_secret_name(lake), COMPONENT),
        string_data: Some(BTreeMap::from([(
            EVENTS_TOKEN_KEY.to_string(),
            token.to_string(),
        )])),
        ..Default::default()
    }
}

/// Environment and volume of the webhook target `webhook`.
fn webhook_env(lake: &DataLake, webhook: &Webhook) -> Vec<EnvVar> {
    let var = |setting: &str| format!("MINIO_NOTIFY_WEBHOOK_{setting}_{}", webhook.id);
    let plain = |setting: &str, value: &str| EnvVar {
        name: var(setting),
        value: Some(value.to_string()),
        ..Default::default()
    };
    let mut env = vec![
        plain("ENABLE", "on"),
        plain("ENDPOINT", &webhook.endpoint),
        plain("QUEUE_DIR", EVENTS_QUEUE_DIR),
    ];
    if webhook.token.is_some() {
        env.push(EnvVar {
            name: var("AUTH_TOKEN"),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: events_secret_name(lake),
                    key: EVENTS_TOKEN_KEY.into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    env
}

/// The MinIO StatefulSet; with `webhook`, its servers deliver bucket notifications to the
/// operator's event receiver.
pub fn statefulset(
    lake: &DataLake,
    spec: &ManagedStorage,
    webhook: Option<&Webhook>,
) -> Result<StatefulSet, BuildError> {
    let sel = selector(&lake.name_any(), COMPONENT);
    let mut env = vec![
        secret_env(lake, "MINIO_ROOT_USER", USER_KEY),
        secret_env(lake, "MINIO_ROOT_PASSWORD", PASSWORD_KEY),
    ];
    let mut volume_mounts = vec![VolumeMount {
        name: "data".into(),
        mount_path: "/data".into(),
        ..Default::default()
    }];
    let mut volumes = Vec::new();
    if let Some(w) = webhook {
        env.extend(webhook_env(lake, w));
        volume_mounts.push(VolumeMount {
            name: "events-queue".into(),
            mount_path: EVENTS_QUEUE_DIR.into(),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "events-queue".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    let container = Container {
        name: "minio".into(),
        image: Some(spec.image.clone()),
        args: Some(server_args(lake, spec)),
        env: Some(env),
        ports: Some(vec![
            ContainerPort {
                name: Some("s3".into()),
                container_port: API_PORT,
                ..Default::default()
            },
            ContainerPort {
                name: Some("console".into()),
                container_port: CONSOLE_PORT,
                ..Default::default()
            },
        ]),
        volume_mounts: Some(volume_mounts),
        liveness_probe: Some(http_probe("/minio/health/live", API_PORT, 10, 3)),
        readiness_probe: Some(http_probe("/minio/health/ready", API_PORT, 5, 3)),
        resources: spec.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(
                owned_meta(lake, String::new(), COMPONENT)
                    .labels
                    .unwrap_or_default(),
            ),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: (!volumes.is_empty()).then_some(volumes),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(1000),
                fs_group: Some(1000),
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
    let overrides = spec.pod_overrides.as_ref().map(|o| &o.0);
    let template = with_pod_overrides(template, overrides, "spec.storage.managed.podOverrides")?;
    let claim = data_claim(spec.storage_class.clone(), spec.volume_size.clone());
    Ok(StatefulSet {
        metadata: owned_meta(lake, name(lake), COMPONENT),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(headless_name(lake)),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(sel),
                ..Default::default()
            },
            template,
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(volume_policy(
                &lake.spec.storage.deletion_policy,
            )),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake(yaml_spec: &str) -> DataLake {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: DataLake\nmetadata: {{name: sales, namespace: team, uid: 1234}}\nspec:\n{yaml_spec}"
        );
        serde_yaml::from_str(&doc).expect("fixture parses")
    }

    fn managed(l: &DataLake) -> &ManagedStorage {
        l.spec.storage.managed.as_ref().expect("managed")
    }

    const SINGLE: &str = "  storage:\n    managed:\n      volumeSize: 20Gi\n      storageClass: fast\n  zones: [{name: raw}]\n";

    #[test]
    fn single_node_statefulset() {
        let l = lake(SINGLE);
        let sts = statefulset(&l, managed(&l), None).expect("builds");
        let spec = sts.spec.as_ref().expect("spec");
        assert_eq!(sts.metadata.name.as_deref(), Some("sales-minio"));
        assert_eq!(sts.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.service_name.as_deref(), Some("sales-minio-hl"));
        let pod = spec.template.spec.as_ref().expect("pod");
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_ref().expect("args")[..2],
            ["server".to_string(), "/data".to_string()]
        );
        assert_eq!(
            c.image.as_deref(),
            Some("quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z")
        );
        let env = c.env.as_ref().expect("env");
        assert_eq!(env[0].name, "MINIO_ROOT_USER");
        assert_eq!(
            env[0]
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|s| s.name.as_str()),
            Some("sales-minio-root")
        );
        assert!(
            env.iter().all(|e| e.value.is_none()),
            "no credential inlined"
        );
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.as_deref()),
            Some("/minio/health/ready")
        );
        let claim = &spec.volume_claim_templates.as_ref().expect("pvc")[0];
        let claim_spec = claim.spec.as_ref().expect("pvc spec");
        assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            claim_spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .map(|r| r["storage"].0.as_str()),
            Some("20Gi")
        );
        let owner = &sts.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("DataLake", "sales", Some(true))
        );
        let labels = sts.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "lakeform");
        assert_eq!(labels["app.kubernetes.io/part-of"], "sales");
        let sel = spec.selector.match_labels.as_ref().expect("selector");
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .expect("pod labels");
        assert!(
            sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
            "selector matches pod labels"
        );
    }

    #[test]
    fn distributed_mode_lists_every_pod() {
        let l = lake("  storage:\n    managed:\n      replicas: 4\n  zones: [{name: raw}]\n");
        let args = server_args(&l, managed(&l));
        assert_eq!(
            args[1],
            "http://sales-minio-{0...3}.sales-minio-hl.team.svc.cluster.local/data"
        );
    }

    #[test]
    fn pod_overrides_merge_over_the_template() {
        let l = lake(
            "  storage:\n    managed:\n      podOverrides:\n        spec:\n          nodeSelector: {disk: ssd}\n          priorityClassName: storage\n  zones: [{name: raw}]\n",
        );
        let sts = statefulset(&l, managed(&l), None).expect("builds");
        let pod = sts.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(
            pod.node_selector.as_ref().map(|n| n["disk"].as_str()),
            Some("ssd")
        );
        assert_eq!(pod.priority_class_name.as_deref(), Some("storage"));
        assert_eq!(pod.containers.len(), 1, "containers kept");
    }

    #[test]
    fn services_and_secret() {
        let l = lake(SINGLE);
        let [client, headless] = services(&l);
        assert_eq!(client.metadata.name.as_deref(), Some("sales-minio"));
        assert_eq!(
            headless.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
            Some("None")
        );
        let s = secret(&l, "root", "pw");
        assert_eq!(s.metadata.name.as_deref(), Some("sales-minio-root"));
        assert_eq!(
            endpoint(&l),
            "http://sales-minio.team.svc.cluster.local:9000"
        );
    }

    #[test]
    fn webhook_target_in_env_with_the_token_from_a_secret() {
        let l = lake(SINGLE);
        let w = Webhook {
            id: "LAKEFORM".into(),
            endpoint: "http://lakeform-events.lakeform-system.svc:8081/minio/events".into(),
            token: Some("s3cr3t-token".into()),
        };
        let sts = statefulset(&l, managed(&l), Some(&w)).expect("builds");
        let pod = sts.spec.and_then(|s| s.template.spec).expect("pod");
        let c = &pod.containers[0];
        let env = c.env.as_ref().expect("env");
        let value = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(
            value("MINIO_NOTIFY_WEBHOOK_ENABLE_LAKEFORM").as_deref(),
            Some("on")
        );
        assert_eq!(
            value("MINIO_NOTIFY_WEBHOOK_ENDPOINT_LAKEFORM").as_deref(),
            Some(w.endpoint.as_str())
        );
        assert_eq!(
            value("MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_LAKEFORM").as_deref(),
            Some(EVENTS_QUEUE_DIR)
        );
        let token = env
            .iter()
            .find(|e| e.name == "MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_LAKEFORM")
            .expect("token env");
        assert!(token.value.is_none(), "the token is never inline");
        let key = token
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secret ref");
        assert_eq!(key.name, "sales-minio-events");
        assert!(
            !serde_json::to_string(&pod)
                .expect("json")
                .contains("s3cr3t-token")
        );
        assert!(
            c.volume_mounts
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| m.mount_path == EVENTS_QUEUE_DIR)),
            "the queue dir is writable (the root filesystem is read-only)"
        );
        assert_eq!(
            pod.volumes.as_ref().map(|v| v[0].empty_dir.is_some()),
            Some(true)
        );
        let secret = events_secret(&l, "s3cr3t-token");
        assert_eq!(secret.metadata.name.as_deref(), Some("sales-minio-events"));

        let without = statefulset(&l, managed(&l), None).expect("builds");
        let env = without
            .spec
            .and_then(|s| s.template.spec)
            .map(|p| p.containers[0].env.clone().unwrap_or_default())
            .unwrap_or_default();
        assert!(env.iter().all(|e| !e.name.starts_with("MINIO_NOTIFY")));
    }
}
