//! Pure pieces of the pod runner: which images we run, the argv of a container, its environment
//! resolved the way the kubelet does (`pkg/kubelet/kubelet_pods.go`, `makeEnvironmentVariables`),
//! and the kubelet's `$(VAR)` expansion (`third_party/forked/golang/expansion`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod};

/// Name of the binary (and of the last image path segment) the pod runner runs.
pub const LAKEFORM: &str = "lakeform";

/// Loopback address the pod runner reports as pod and host IP (the processes run on this host).
pub const LOCAL_IP: &str = "127.0.0.1";

/// True when the image is ours: its repository path ends with `lakeform`
/// (`ghcr.io/lakeform/lakeform:0.1.0`, `lakeform:dev`, `localhost:5000/lakeform@sha256:…`).
pub fn is_lakeform_image(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let repo = last.split(':').next().unwrap_or(last);
    repo == LAKEFORM
}

/// The arguments to pass to the local `lakeform` binary for a container whose command and args
/// are already expanded. `Err` explains why the container cannot run as `lakeform`.
pub fn lakeform_argv(command: &[String], args: &[String]) -> Result<Vec<String>, String> {
    let Some(first) = command.first() else {
        // The image's entrypoint is `lakeform`; args are its arguments.
        return Ok(args.to_vec());
    };
    if first == LAKEFORM || first.ends_with("/lakeform") {
        Ok(command[1..].iter().chain(args).cloned().collect())
    } else {
        Err(format!(
            "the pod runner only runs the lakeform binary, but the container's command starts \
             with {first:?} (expected \"lakeform\" or a path ending in /lakeform)"
        ))
    }
}

/// Kubelet `$(VAR)` expansion: `$(NAME)` is replaced when `lookup` knows NAME and kept verbatim
/// otherwise; `$$` is an escaped `$`; any other `$` is kept.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let (read, is_var, advance) = try_read_variable_name(&input[cursor + 1..]);
            if is_var {
                match lookup(&read) {
                    Some(value) => out.push_str(&value),
                    None => {
                        out.push_str("$(");
                        out.push_str(&read);
                        out.push(')');
                    }
                }
            } else {
                out.push_str(&read);
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// Port of the Go `tryReadVariableName`: input starts right after a `$`.
/// Returns (text, is_variable_name, bytes consumed after the `$`).
fn try_read_variable_name(input: &str) -> (String, bool, usize) {
    let mut chars = input.chars();
    match chars.next() {
        // Escaped operator.
        Some('$') => ("$".to_string(), false, 1),
        Some('(') => match input[1..].find(')') {
            Some(close) => (input[1..close + 1].to_string(), true, close + 2),
            // Incomplete reference: keep "$(" and continue after it.
            None => ("$(".to_string(), false, 1),
        },
        // A `$` that does not start an expression: keep it and the next character.
        Some(other) => (format!("${other}"), false, other.len_utf8()),
        None => ("$".to_string(), false, 0),
    }
}

/// ConfigMaps and Secrets a container's env refers to (`env[].valueFrom` and `envFrom`).
#[derive(Debug, Default, PartialEq)]
pub struct EnvReferences {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

pub fn env_references(container: &Container) -> EnvReferences {
    let mut refs = EnvReferences::default();
    for from in container.env_from.iter().flatten() {
        if let Some(cm) = &from.config_map_ref {
            refs.config_maps.insert(cm.name.clone());
        }
        if let Some(s) = &from.secret_ref {
            refs.secrets.insert(s.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(from) = &var.value_from {
            if let Some(cm) = &from.config_map_key_ref {
                refs.config_maps.insert(cm.name.clone());
            }
            if let Some(s) = &from.secret_key_ref {
                refs.secrets.insert(s.name.clone());
            }
        }
    }
    refs
}

/// A Secret's values, decoded; a value that is not UTF-8 is kept as `Err(())`.
pub type SecretValues = BTreeMap<String, Result<String, ()>>;

/// The data of the referenced objects; `None` = the object does not exist.
#[derive(Debug, Default)]
pub struct EnvSources {
    pub config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    pub secrets: BTreeMap<String, Option<SecretValues>>,
}

/// Resolves a container's environment in Kubernetes order: `envFrom` sources first (later ones
/// win), then `env` entries in order, each `value` `$(VAR)`-expanded against what is defined so
/// far. `Err` carries a kubelet-like message (the container cannot be created).
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    sources: &EnvSources,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    // Keep the order of first definition for a stable process environment.
    let mut order: Vec<String> = Vec::new();
    let mut set = |env: &mut BTreeMap<String, String>, k: String, v: String| {
        if !env.contains_key(&k) {
            order.push(k.clone());
        }
        env.insert(k, v);
    };

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        if let Some(cm_ref) = &from.config_map_ref {
            match sources
                .config_maps
                .get(&cm_ref.name)
                .and_then(Option::as_ref)
            {
                Some(data) => {
                    for (k, v) in data {
                        let key = format!("{prefix}{k}");
                        if valid_env_name(&key) {
                            set(&mut env, key, v.clone());
                        }
                    }
                }
                None if cm_ref.optional == Some(true) => {}
                None => {
                    return Err(format!(
                        "couldn't get configMap {ns}/{}: configmap \"{}\" not found",
                        cm_ref.name, cm_ref.name
                    ));
                }
            }
        }
        if let Some(s_ref) = &from.secret_ref {
            match sources.secrets.get(&s_ref.name).and_then(Option::as_ref) {
                Some(data) => {
                    for (k, v) in data {
                        let key = format!("{prefix}{k}");
                        if !valid_env_name(&key) {
                            continue;
                        }
                        let v = v.clone().map_err(|()| {
                            format!(
                                "key {k} in Secret {ns}/{} is not UTF-8; the pod runner passes \
                                 env values as text",
                                s_ref.name
                            )
                        })?;
                        set(&mut env, key, v);
                    }
                }
                None if s_ref.optional == Some(true) => {}
                None => {
                    return Err(format!(
                        "couldn't get secret {ns}/{}: secret \"{}\" not found",
                        s_ref.name, s_ref.name
                    ));
                }
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = if let Some(value) = var.value.as_deref().filter(|v| !v.is_empty()) {
            expand(value, |name| env.get(name).cloned())
        } else if let Some(from) = &var.value_from {
            if let Some(field) = &from.field_ref {
                field_value(pod, field)?
            } else if from.resource_field_ref.is_some() {
                return Err(format!(
                    "env {}: valueFrom.resourceFieldRef is not supported by the pod runner",
                    var.name
                ));
            } else if let Some(key_ref) = &from.config_map_key_ref {
                let data = sources
                    .config_maps
                    .get(&key_ref.name)
                    .and_then(Option::as_ref);
                let optional = key_ref.optional == Some(true);
                match data {
                    None if optional => continue,
                    None => {
                        return Err(format!(
                            "couldn't get configMap {ns}/{}: configmap \"{}\" not found",
                            key_ref.name, key_ref.name
                        ));
                    }
                    Some(data) => match data.get(&key_ref.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                key_ref.key, key_ref.name
                            ));
                        }
                    },
                }
            } else if let Some(key_ref) = &from.secret_key_ref {
                let data = sources.secrets.get(&key_ref.name).and_then(Option::as_ref);
                let optional = key_ref.optional == Some(true);
                match data {
                    None if optional => continue,
                    None => {
                        return Err(format!(
                            "couldn't get secret {ns}/{}: secret \"{}\" not found",
                            key_ref.name, key_ref.name
                        ));
                    }
                    Some(data) => match data.get(&key_ref.key) {
                        Some(Ok(v)) => v.clone(),
                        Some(Err(())) => {
                            return Err(format!(
                                "key {} in Secret {ns}/{} is not UTF-8; the pod runner passes \
                                 env values as text",
                                key_ref.key, key_ref.name
                            ));
                        }
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                key_ref.key, key_ref.name
                            ));
                        }
                    },
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut env, var.name.clone(), value);
    }

    Ok(order
        .into_iter()
        .filter_map(|k| env.get(&k).map(|v| (k.clone(), v.clone())))
        .collect())
}

/// Kubernetes 1.34 accepts any printable ASCII except `=` in env names.
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// `valueFrom.fieldRef` as the kubelet resolves it.
fn field_value(pod: &Pod, field: &ObjectFieldSelector) -> Result<String, String> {
    let path = field.field_path.as_str();
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let map_entry = |map: &Option<BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path
            .strip_prefix(prefix)?
            .strip_suffix("']")
            .or_else(|| path.strip_prefix(prefix)?.strip_suffix("\"]"))?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    let format_map = |map: &Option<BTreeMap<String, String>>| -> String {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.hostIP" => status
            .and_then(|s| {
                if path == "status.podIP" {
                    s.pod_ip.clone()
                } else {
                    s.host_ip.clone()
                }
            })
            .unwrap_or_else(|| LOCAL_IP.to_string()),
        "status.podIPs" | "status.hostIPs" => LOCAL_IP.to_string(),
        _ => {
            if let Some(v) = map_entry(&meta.labels, "metadata.labels['")
                .or_else(|| map_entry(&meta.labels, "metadata.labels[\""))
            {
                v
            } else if let Some(v) = map_entry(&meta.annotations, "metadata.annotations['")
                .or_else(|| map_entry(&meta.annotations, "metadata.annotations[\""))
            {
                v
            } else {
                return Err(format!(
                    "valueFrom.fieldRef.fieldPath {path:?} is not supported by the pod runner"
                ));
            }
        }
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, PodSpec,
        SecretKeySelector,
    };
    use kube::api::ObjectMeta;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_matches_the_kubelet() {
        assert_eq!(expand("x$(A)y", lookup), "xay");
        assert_eq!(expand("$(A)$(A)", lookup), "aa");
        assert_eq!(expand("$(MISSING)", lookup), "$(MISSING)");
        assert_eq!(expand("$$(A)", lookup), "$(A)");
        assert_eq!(expand("$$$(A)", lookup), "$a");
        assert_eq!(expand("$A", lookup), "$A");
        assert_eq!(expand("a$", lookup), "a$");
        assert_eq!(expand("$(A", lookup), "$(A");
        assert_eq!(expand("$()", lookup), "$()");
        assert_eq!(expand("$(EMPTY)!", lookup), "!");
        assert_eq!(expand("ünï$(A)cödé", lookup), "ünïacödé");
        assert_eq!(expand("$ü", lookup), "$ü");
    }

    #[test]
    fn images() {
        assert!(is_lakeform_image("ghcr.io/lakeform/lakeform:0.1.0"));
        assert!(is_lakeform_image("lakeform:dev"));
        assert!(is_lakeform_image("lakeform"));
        assert!(is_lakeform_image("localhost:5000/lakeform@sha256:abc"));
        assert!(!is_lakeform_image("busybox"));
        assert!(!is_lakeform_image("ghcr.io/lakeform/lakeform-worker:1"));
        assert!(!is_lakeform_image("lakeform/busybox:lakeform"));
    }

    #[test]
    fn argv() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            lakeform_argv(&s(&["lakeform", "version"]), &s(&["-v"])),
            Ok(s(&["version", "-v"]))
        );
        assert_eq!(
            lakeform_argv(&s(&["/usr/bin/lakeform"]), &s(&["crawl"])),
            Ok(s(&["crawl"]))
        );
        assert_eq!(lakeform_argv(&[], &s(&["run"])), Ok(s(&["run"])));
        assert!(lakeform_argv(&s(&["sh", "-c", "x"]), &[]).is_err());
    }

    #[test]
    fn env_in_kubernetes_order() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                labels: Some([("app".to_string(), "x".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        let var = |name: &str, value: &str| EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        };
        let from = |name: &str, source: EnvVarSource| EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        };
        let container = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cm".into(),
                    optional: None,
                }),
                prefix: Some("CM_".into()),
                secret_ref: None,
            }]),
            env: Some(vec![
                from(
                    "SECRET",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "s".into(),
                            key: "password".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                var("URL", "http://$(CM_host):$(PORT)/$(SECRET)"),
                var("PORT", "9000"),
                from(
                    "OPT",
                    EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "missing".into(),
                            key: "k".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "NAME",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.labels['app']".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
            ]),
            ..Default::default()
        };
        let mut sources = EnvSources::default();
        sources.config_maps.insert(
            "cm".into(),
            Some([("host".to_string(), "minio".to_string())].into()),
        );
        sources.config_maps.insert("missing".into(), None);
        sources.secrets.insert(
            "s".into(),
            Some([("password".to_string(), Ok("pw".to_string()))].into()),
        );
        let env = resolve_env(&pod, &container, &sources).unwrap();
        assert_eq!(
            env,
            vec![
                ("CM_host".to_string(), "minio".to_string()),
                ("SECRET".to_string(), "pw".to_string()),
                // PORT is defined after URL, so it is not expanded (as in Kubernetes).
                ("URL".to_string(), "http://minio:$(PORT)/pw".to_string()),
                ("PORT".to_string(), "9000".to_string()),
                ("NAME".to_string(), "x".to_string()),
            ]
        );

        sources.secrets.insert("s".into(), None);
        let err = resolve_env(&pod, &container, &sources).unwrap_err();
        assert!(err.contains("secret \"s\" not found"), "{err}");
    }
}
