//! What the schema cannot check: each semantic fixture is accepted by the API server's rules
//! (so only the reconciler can catch it) and rejected by the pure Rust validators with a message
//! naming the field. Every example passes those validators and deserializes into the typed API.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the test failing

mod support;

use std::collections::BTreeMap;

use lakeform_api::validate::{
    SpecErrors, validate_blueprint, validate_crawler, validate_datalake, validate_workflow,
};
use lakeform_api::{Blueprint, Crawler, DataLake, DataLakeSpec, Workflow, WorkflowRun};
use serde_json::Value;
use support::{admission_errors, load, workspace_root, yaml_files};

/// Deserialize every lakeform object of `docs` and run its validator; DataLakes named by
/// `lakeRef` are looked up in `lakes`.
fn validate_doc(doc: &Value, lakes: &BTreeMap<String, DataLakeSpec>) -> Result<(), String> {
    let typed = |e: serde_json::Error| format!("does not deserialize into the typed API: {e}");
    let run = |r: Result<(), SpecErrors>| r.map_err(|e| e.to_string());
    match doc["kind"].as_str().unwrap_or_default() {
        "DataLake" => run(validate_datalake(
            &serde_json::from_value::<DataLake>(doc.clone()).map_err(typed)?,
        )),
        "Crawler" => {
            let c: Crawler = serde_json::from_value(doc.clone()).map_err(typed)?;
            run(validate_crawler(&c.spec, lakes.get(&c.spec.lake_ref.name)))
        }
        "Workflow" => {
            let w: Workflow = serde_json::from_value(doc.clone()).map_err(typed)?;
            run(validate_workflow(&w.spec, lakes.get(&w.spec.lake_ref.name)))
        }
        "Blueprint" => run(validate_blueprint(
            &serde_json::from_value::<Blueprint>(doc.clone())
                .map_err(typed)?
                .spec,
        )),
        "Grant" => {
            let g: lakeform_api::Grant = serde_json::from_value(doc.clone()).map_err(typed)?;
            let lake = lakes
                .get(&g.spec.lake_ref.name)
                .ok_or_else(|| format!("no example DataLake {}", g.spec.lake_ref.name))?;
            let dbs: Vec<&str> = lake
                .catalog
                .iter()
                .flat_map(|c| c.databases.iter().map(|d| d.name.as_str()))
                .collect();
            match g.spec.resource.database.as_deref() {
                Some(db) if !dbs.contains(&db) => {
                    Err(format!("database {db} is not one of the lake's {dbs:?}"))
                }
                _ => Ok(()),
            }
        }
        "WorkflowRun" => serde_json::from_value::<WorkflowRun>(doc.clone())
            .map(drop)
            .map_err(typed),
        other => Err(format!("unexpected kind {other:?}")),
    }
}

fn lakes_in(docs: &[Value]) -> BTreeMap<String, DataLakeSpec> {
    docs.iter()
        .filter(|d| d["kind"] == "DataLake")
        .filter_map(|d| serde_json::from_value::<DataLake>(d.clone()).ok())
        .map(|l| (l.metadata.name.clone().unwrap_or_default(), l.spec))
        .collect()
}

#[test]
fn semantic_fixtures_pass_admission_but_fail_validation() {
    let files = yaml_files(&workspace_root().join("api/tests/fixtures/semantic"));
    assert!(files.len() >= 10, "found {}", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let f = load(path);
        let name = path.display().to_string();
        let expect = f
            .expect
            .clone()
            .unwrap_or_else(|| panic!("{name}: no '# expect:' header"));
        let (last, setup) = f
            .docs
            .split_last()
            .unwrap_or_else(|| panic!("{name}: empty"));
        for doc in &f.docs {
            let errs = admission_errors(doc, None);
            if !errs.is_empty() {
                failures.push(format!(
                    "{name}: the API server would already reject it: {errs:?}"
                ));
            }
        }
        let lakes = lakes_in(setup);
        for doc in setup {
            if let Err(e) = validate_doc(doc, &lakes) {
                failures.push(format!("{name}: setup document is invalid: {e}"));
            }
        }
        match validate_doc(last, &lakes) {
            Ok(()) => failures.push(format!(
                "{name}: passed validation, but breaks {:?}",
                f.rule
            )),
            Err(e) if !e.contains(&expect) => {
                failures.push(format!("{name}: message {e:?} lacks {expect:?}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn examples_deserialize_and_validate() {
    let files = yaml_files(&workspace_root().join("examples"));
    let docs: Vec<Value> = files
        .iter()
        .flat_map(|p| load(p).docs)
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("lakeform.dev/"))
        })
        .collect();
    let lakes = lakes_in(&docs);
    assert!(lakes.len() >= 2);
    for doc in &docs {
        let name = format!("{}/{}", doc["kind"], doc["metadata"]["name"]);
        validate_doc(doc, &lakes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Every kind has at least one example.
    for kind in [
        "DataLake",
        "Crawler",
        "Workflow",
        "WorkflowRun",
        "Blueprint",
        "Grant",
    ] {
        assert!(
            docs.iter().any(|d| d["kind"] == kind),
            "no example of {kind}"
        );
    }
}

#[test]
fn blueprint_example_expands_into_a_valid_crawler() {
    let docs = load(&workspace_root().join("examples/blueprint/log-files.yaml")).docs;
    let bp: Blueprint = serde_json::from_value(docs[0].clone()).expect("blueprint");
    let wf: Workflow = serde_json::from_value(docs[1].clone()).expect("workflow");
    let bref = wf.spec.blueprint_ref.as_ref().expect("blueprintRef");
    let params = lakeform_api::validate::resolve_parameters(
        &bp.spec,
        &bref.parameters,
        "spec.blueprintRef.parameters",
    )
    .expect("parameters resolve");
    let rendered =
        lakeform_api::validate::render_blueprint(&bp.spec, &params, "web-logs", "team-a")
            .expect("renders");
    assert_eq!(rendered.len(), 1);
    let crawler = &rendered[0];
    assert!(
        admission_errors(crawler, None).is_empty(),
        "{:?}",
        admission_errors(crawler, None)
    );
    let c: Crawler = serde_json::from_value(crawler.clone()).expect("typed crawler");
    assert_eq!(c.metadata.name.as_deref(), Some("web-logs-logs"));
    assert_eq!(c.metadata.namespace.as_deref(), Some("team-a"));
    assert_eq!(c.spec.targets[0].prefix, "logs/web/");
    assert_eq!(
        c.spec.schedule.as_ref().map(|s| s.cron.as_str()),
        Some("15 * * * *")
    );
    assert_eq!(c.spec.classifiers[0].name, "access");
}
