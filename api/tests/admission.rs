//! Every invalid fixture is rejected, and every example accepted, by the rules the generated
//! CRDs carry — evaluated offline (schema, list-map keys, CEL). `e2e/run controlplane` applies
//! the same files to a real API server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the test failing

mod support;

use support::{admission_errors, load, workspace_root, yaml_files};

#[test]
fn invalid_fixtures_are_rejected_with_a_message_naming_the_field() {
    let files = yaml_files(&workspace_root().join("e2e/invalid"));
    assert!(
        files.len() >= 25,
        "expected at least 25 invalid fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let f = load(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (Some(rule), Some(expect)) = (&f.rule, &f.expect) else {
            failures.push(format!(
                "{name}: needs '# rule:' and '# expect:' header comments"
            ));
            continue;
        };
        assert!(!rule.is_empty());
        let (last, setup) = f
            .docs
            .split_last()
            .unwrap_or_else(|| panic!("{name}: no documents"));
        for doc in setup {
            let errs = admission_errors(doc, None);
            if !errs.is_empty() {
                failures.push(format!(
                    "{name}: setup document should be accepted, got {errs:?}"
                ));
            }
        }
        let old = setup.iter().rev().find(|d| {
            d["metadata"]["name"] == last["metadata"]["name"] && d["kind"] == last["kind"]
        });
        let errs = admission_errors(last, old);
        if errs.is_empty() {
            failures.push(format!("{name}: accepted, but it breaks the rule {rule:?}"));
        } else if !errs.iter().any(|e| e.contains(expect.as_str())) {
            failures.push(format!(
                "{name}: rejected, but no message contains {expect:?}: {errs:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{} invalid fixtures rejected offline", files.len());
}

#[test]
fn examples_are_accepted() {
    let files = yaml_files(&workspace_root().join("examples"));
    assert!(!files.is_empty());
    let mut count = 0;
    for path in &files {
        for doc in load(path).docs {
            if doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("lakeform.dev/"))
            {
                let errs = admission_errors(&doc, None);
                assert!(errs.is_empty(), "{}: {errs:?}", path.display());
                count += 1;
            }
        }
    }
    println!("{count} example objects accepted offline");
}
