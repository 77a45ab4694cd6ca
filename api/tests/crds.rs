//! The committed `crds/` folder matches what the types generate, and the CRDs have the names,
//! short names, status subresources and printer columns the docs promise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the test failing

use std::collections::BTreeSet;
use std::path::Path;

use lakeform_api::crd;

/// Assert that `folder` (relative to the repository root) holds exactly the files
/// `lakeform crds` generates, each with the generated text.
fn assert_holds_generated_crds(folder: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(folder);
    let mut expected = BTreeSet::new();
    for c in crd::all() {
        let name = crd::file_name(&c);
        let generated = crd::to_yaml(&c).expect("serializes");
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == generated,
            "{folder}/{name} is out of date: run `make crds`"
        );
        expected.insert(name);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{folder}/ is readable: {e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    assert_eq!(
        present, expected,
        "{folder}/ holds files no type generates (or misses some): run `make crds`"
    );
}

#[test]
fn committed_crds_are_up_to_date() {
    assert_holds_generated_crds("crds");
}

/// Helm installs a chart's `crds/` before its templates: the chart must carry the same CRDs.
#[test]
fn chart_crds_are_up_to_date() {
    assert_holds_generated_crds("charts/lakeform/crds");
}

/// The chart installs the built-in blueprints from its own copy of `blueprints/`.
#[test]
fn chart_blueprints_are_the_built_ins() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = |dir: &str| -> BTreeSet<(String, String)> {
        std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}/ is readable: {e}"))
            .filter_map(|e| e.ok())
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).expect("readable");
                (e.file_name().to_string_lossy().to_string(), text)
            })
            .collect()
    };
    let built_in = files("blueprints");
    assert_eq!(built_in.len(), 4, "four built-ins");
    assert!(
        files("charts/lakeform/blueprints") == built_in,
        "charts/lakeform/blueprints/ differs from blueprints/: cp blueprints/*.yaml charts/lakeform/blueprints/"
    );
}

#[test]
fn crds_have_short_names_status_and_printer_columns() {
    let want = [
        ("DataLake", "dl"),
        ("Crawler", "crawler"),
        ("Workflow", "wf"),
        ("WorkflowRun", "wfr"),
        ("Blueprint", "bp"),
        ("ClusterBlueprint", "cbp"),
    ];
    for (kind, short) in want {
        let c = crd::all()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .expect(kind);
        assert_eq!(c.spec.group, "lakeform.dev");
        let scope = if kind.starts_with("Cluster") {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(c.spec.scope, scope, "{kind}");
        assert!(
            c.spec
                .names
                .short_names
                .clone()
                .unwrap_or_default()
                .contains(&short.to_string()),
            "{kind}"
        );
        let v = &c.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} status subresource"
        );
        let cols: Vec<String> = v
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert!(cols.contains(&"Age".to_string()), "{kind}: {cols:?}");
    }
}

/// Every property in every schema has a description (it is `kubectl explain` text).
#[test]
fn every_field_is_documented() {
    fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, s) in props {
                let p = format!("{path}.{k}");
                if s.get("description").is_none() {
                    missing.push(p.clone());
                }
                walk(s, &p, missing);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(s) = v.get(key).filter(|s| s.is_object()) {
                walk(s, &format!("{path}[]"), missing);
            }
        }
    }
    let mut missing = Vec::new();
    for c in crd::all() {
        let schema = crd::schema_of(&c.spec.names.kind).expect("schema");
        walk(&schema, &c.spec.names.kind, &mut missing);
    }
    assert!(
        missing.is_empty(),
        "fields without a doc comment: {missing:?}"
    );
}
