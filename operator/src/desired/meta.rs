//! Names, labels, owner references and override merging shared by every builder.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
    StatefulSetPersistentVolumeClaimRetentionPolicy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service,
    ServicePort, ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use lakeform_api::common::{LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY};
use lakeform_api::datalake::{DeletionPolicy, ManagedCatalog};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::BuildError;

/// Labels every object of a lake carries; `component` says which part it belongs to.
pub fn labels(lake: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_PART_OF.to_string(), lake.to_string()),
        ("app.kubernetes.io/instance".to_string(), lake.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

/// Labels that select the pods of one component (a subset of [`labels`]).
pub fn selector(lake: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/instance".to_string(), lake.to_string()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}

/// Metadata of an object owned (as controller) by `owner`.
pub fn owned_meta<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: String,
    component: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: owner.namespace(),
        labels: Some(labels(&owner.name_any(), component)),
        owner_references: owner_reference(owner).map(|o| vec![o]),
        ..Default::default()
    }
}

/// Metadata of an object the lake made that must outlive it under `deletionPolicy: Retain`: the
/// generated credentials of its stores. Labelled like every other object of the lake, but
/// without an owner reference, so the garbage collector leaves it; with `Delete`, the
/// DataLake's cleanup removes it (`lake::kept_secrets`).
pub fn kept_meta<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: String,
    component: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: owner.namespace(),
        labels: Some(labels(&owner.name_any(), component)),
        ..Default::default()
    }
}

/// What happens to a StatefulSet's volumes when it is deleted: kept under `Retain` (a DataLake
/// re-created with the same name mounts them again), deleted with it under `Delete`.
pub fn volume_policy(policy: &DeletionPolicy) -> StatefulSetPersistentVolumeClaimRetentionPolicy {
    let when_deleted = match policy {
        DeletionPolicy::Delete => "Delete",
        DeletionPolicy::Retain => "Retain",
    };
    StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some(when_deleted.into()),
        when_scaled: Some("Retain".into()),
    }
}

fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    owner.controller_owner_ref(&())
}

/// RFC 7386 JSON merge patch: objects merge key by key, `null` deletes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// `template` with a managed catalog's `podOverrides` applied (its server's pods: Nessie,
/// Lakekeeper and Lakekeeper's migration Job).
pub fn catalog_pod_overrides(
    template: PodTemplateSpec,
    spec: &ManagedCatalog,
) -> Result<PodTemplateSpec, BuildError> {
    let overrides = spec.pod_overrides.as_ref().map(|o| &o.0);
    with_pod_overrides(template, overrides, "spec.catalog.managed.podOverrides")
}

/// `template` with `overrides` (a strategic-merge-like JSON merge, see [`merge`]) applied;
/// `field` names the overrides in the error.
pub fn with_pod_overrides(
    template: PodTemplateSpec,
    overrides: Option<&Value>,
    field: &'static str,
) -> Result<PodTemplateSpec, BuildError> {
    let Some(overrides) = overrides else {
        return Ok(template);
    };
    let invalid = |source| BuildError::PodOverrides { field, source };
    let mut value = serde_json::to_value(&template).map_err(invalid)?;
    merge(&mut value, overrides);
    serde_json::from_value(value).map_err(invalid)
}

/// The `data` volume claim of a StatefulSet: one ReadWriteOnce volume of `size`.
pub fn data_claim(storage_class: Option<String>, size: Quantity) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage_class,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), size)])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container that may not escalate, runs as non-root and drops every capability (the
/// `restricted` Pod Security Standard).
pub fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A pod running as `uid` (user, group and volume group), non-root, with the runtime's default
/// seccomp profile.
pub fn pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A TCP Service port `port` named `name`, targeting the same container port.
pub fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// A Deployment of `replicas` pods of `template`, owned by the lake, named `name`, selecting the
/// lake's `component` pods; rolling updates that never take a ready pod away first.
pub fn rolling_deployment<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: String,
    component: &str,
    replicas: i32,
    template: PodTemplateSpec,
) -> Deployment {
    Deployment {
        metadata: owned_meta(owner, name, component),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector(&owner.name_any(), component)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A ClusterIP Service `name` in front of the lake's `component` pods, owned by the lake.
pub fn cluster_service<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: String,
    component: &str,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata: owned_meta(owner, name, component),
        spec: Some(ServiceSpec {
            selector: Some(selector(&owner.name_any(), component)),
            ports: Some(ports),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An HTTP GET probe of `path` on `port`: every 10 s, 5 s timeout, after `initial` seconds,
/// failing after `failures` misses.
pub fn http_probe(path: &str, port: i32, initial: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The first `len` hex digits of the SHA-256 of `text`.
pub fn short_hash(text: &str, len: usize) -> String {
    let mut h = hex::encode(Sha256::digest(text.as_bytes()));
    h.truncate(len);
    h
}

/// `<base><suffix>`, or when longer than `max`, `base` cut and made unique with a hash of it.
pub fn bounded(base: &str, suffix: &str, max: usize) -> String {
    let name = format!("{base}{suffix}");
    if name.len() <= max {
        return name;
    }
    let hash = short_hash(base, 8);
    let keep = max.saturating_sub(suffix.len() + hash.len() + 1);
    let mut cut: String = base.chars().take(keep).collect();
    while cut.ends_with(['-', '.']) {
        cut.pop();
    }
    format!("{cut}-{hash}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_follows_rfc7386() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "list": [1, 2], "gone": true});
        merge(
            &mut doc,
            &json!({"a": {"c": 3, "d": 4}, "list": [9], "gone": null}),
        );
        assert_eq!(doc, json!({"a": {"b": 1, "c": 3, "d": 4}, "list": [9]}));
    }
}
