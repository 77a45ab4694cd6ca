//! Offline admission: what the API server checks for our kinds, evaluated without one.
//!
//! Three layers, the same ones the API server applies to a custom resource: the OpenAPI schema
//! (types, enums, patterns, bounds, required fields — with the `jsonschema` crate), list-map key
//! uniqueness (`x-kubernetes-list-type: map`), and the CEL `x-kubernetes-validations` rules
//! (with kube-cel, defaults applied first, `oldSelf` for updates).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A YAML file split into documents, with its `# rule:` and `# expect:` header comments.
pub struct Fixture {
    pub path: PathBuf,
    pub rule: Option<String>,
    pub expect: Option<String>,
    pub docs: Vec<Value>,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn load(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = |key: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("# {key}:"))
                .map(|v| v.trim().to_string())
        })
    };
    let docs = serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: Value = serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
            v
        })
        .filter(|v| !v.is_null())
        .collect();
    Fixture {
        path: path.to_path_buf(),
        rule: header("rule"),
        expect: header("expect"),
        docs,
    }
}

/// Every `*.yaml` below `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = entry.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Turn a JSON pointer (`/spec/zones/0/bucket`) into the API server's path style
/// (`spec.zones[0].bucket`).
fn k8s_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Duplicate keys in `x-kubernetes-list-type: map` lists, reported like the API server does.
fn list_map_duplicates(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(s) = schema.pointer(&format!("/properties/{k}")) {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    list_map_duplicates(s, v, &p, out);
                } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object())
                {
                    list_map_duplicates(s, v, &format!("{path}[{k}]"), out);
                }
            }
        }
        Value::Array(items) => {
            let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
            if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut seen = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let key: Vec<Value> = keys
                        .iter()
                        .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
                        .collect();
                    if seen.contains(&key) {
                        out.push(format!("{path}[{i}]: Duplicate value: {key:?}"));
                    }
                    seen.push(key);
                }
            }
            if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        out.push(format!("{path}[{i}]: Duplicate value: {item}"));
                    }
                }
            }
            for (i, item) in items.iter().enumerate() {
                list_map_duplicates(&item_schema, item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Errors the API server would report for `doc` (an update of `old` when given), as
/// `path: message` lines. Empty: accepted.
pub fn admission_errors(doc: &Value, old: Option<&Value>) -> Vec<String> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let schema =
        lakeform_api::crd::schema_of(kind).unwrap_or_else(|| panic!("no CRD for kind {kind:?}"));
    let mut errors = Vec::new();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for e in validator.iter_errors(doc) {
        let mut path = k8s_path(&e.instance_path().to_string());
        let message = e.to_string();
        // The API server names the missing field itself: `spec.lakeRef: Required value`.
        if let Some(field) = message
            .strip_prefix('"')
            .and_then(|m| m.strip_suffix("\" is a required property"))
        {
            path = if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
        }
        errors.push(format!("{path}: {message}"));
    }
    list_map_duplicates(&schema, doc, "", &mut errors);
    if errors.is_empty()
        && let Err(cel) = kube::core::cel::Validator::new().validate(&schema, doc, old)
    {
        for e in cel.into_vec() {
            errors.push(format!("{}: {}", e.field_path, e.message));
        }
    }
    errors
}
