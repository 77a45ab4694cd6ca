//! The real API server rejects every `e2e/invalid/*.yaml` with a message naming the offending
//! field, and accepts every `examples/**` manifest.
//!
//! Fixture format: a first line `# rule: …`, a line `# expect: <substring of the rejection
//! message>`, one or more YAML documents. The last document is the one that must be rejected;
//! earlier documents are applied first (for real, in a namespace of their own) and must be
//! accepted — they set up e.g. an update that must then be refused. The rejected document is
//! submitted as a create (or an update when the setup created it), with `dryRun=All`; examples
//! are submitted with server-side apply, `dryRun=All`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lakeform_e2e::{
    TestContext,
    apply::{Applier, ApplyError, ApplyOptions},
    repo_root, split_documents,
};

struct Fixture {
    path: PathBuf,
    rule: String,
    expect: String,
    docs: Vec<serde_json::Value>,
}

fn parse_fixture(path: &Path) -> Result<Fixture> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let first = text.lines().next().unwrap_or_default();
    let rule = first
        .strip_prefix("# rule:")
        .map(|r| r.trim().to_string())
        .with_context(|| format!("{}: the first line must be `# rule: …`", path.display()))?;
    let expect = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect:"))
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .with_context(|| format!("{}: no `# expect: <substring>` line", path.display()))?;
    let docs = split_documents(&text).with_context(|| format!("parsing {}", path.display()))?;
    if docs.is_empty() {
        bail!("{}: no YAML document", path.display());
    }
    Ok(Fixture {
        path: path.to_path_buf(),
        rule,
        expect,
        docs,
    })
}

fn yaml_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            if recursive {
                yaml_files(&path, true, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// Two fixtures of our own with built-in kinds, used only when `e2e/invalid/` is empty so the
/// checking code still runs.
fn builtin_fixtures(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = [
        (
            "deployment-negative-replicas.yaml",
            "# rule: replicas cannot be negative\n# expect: spec.replicas\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: neg\nspec:\n  replicas: -1\n  \
             selector:\n    matchLabels: {app: neg}\n  template:\n    metadata:\n      labels: {app: neg}\n    \
             spec:\n      containers:\n        - name: c\n          image: ghcr.io/lakeform/lakeform:dev\n",
        ),
        (
            "configmap-immutable-update.yaml",
            "# rule: an immutable ConfigMap's data cannot change (update)\n# expect: data: Forbidden\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  a: \"1\"\n\
             ---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  a: \"2\"\n",
        ),
    ];
    let mut out = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        out.push(path);
    }
    Ok(out)
}

/// Checks one fixture; `Ok(message)` is the rejection message, `Err` says what went wrong.
async fn check_fixture(ctx: &TestContext, fixture: &Fixture) -> Result<String> {
    let applier = Applier::new(ctx.client.clone());
    let (setup, last) = fixture.docs.split_at(fixture.docs.len() - 1);
    // Setup documents get a namespace of their own (fixtures reuse names).
    let own;
    let ns = if setup.is_empty() {
        ctx.ns.as_str()
    } else {
        let stem = fixture
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        own = TestContext::new(&format!("inv-{stem}")).await?;
        own.ns.as_str()
    };
    for (i, doc) in setup.iter().enumerate() {
        applier
            .apply(doc, &ApplyOptions::new(ns))
            .await
            .with_context(|| format!("setup document {} must be accepted but was not", i + 1))?;
    }
    // Create (or update, after the setup documents) with a server-side dry run: validation and
    // admission run in full, nothing is stored.
    match applier
        .create_or_replace(&last[0], &ApplyOptions::new(ns).dry_run())
        .await
    {
        Ok(_) => bail!("the API server accepted it"),
        Err(ApplyError::Rejected { message, .. }) if message.contains(&fixture.expect) => {
            Ok(message)
        }
        Err(ApplyError::Rejected { code, message, .. }) => bail!(
            "rejected ({code}), but the message does not contain {:?}: {message}",
            fixture.expect
        ),
        Err(ApplyError::Other(err)) => Err(err.context("could not be submitted")),
    }
}

#[tokio::test]
async fn invalid_manifests_are_rejected_and_examples_accepted() -> Result<()> {
    let ctx = TestContext::new("invalid").await?;
    let root = repo_root();

    let mut paths = Vec::new();
    yaml_files(&root.join("e2e/invalid"), false, &mut paths)?;
    let scratch;
    if paths.is_empty() {
        scratch = std::env::temp_dir().join(format!("lakeform-e2e-fixtures-{}", ctx.ns));
        std::fs::create_dir_all(&scratch)?;
        eprintln!(
            "e2e/invalid/ has no fixtures yet: checking two built-in ones from {}",
            scratch.display()
        );
        paths = builtin_fixtures(&scratch)?;
    }

    // LAKEFORM_E2E_VERBOSE=1 prints each rejection message.
    let verbose = std::env::var_os("LAKEFORM_E2E_VERBOSE").is_some_and(|v| v != "0");
    let mut failures = Vec::new();
    let mut rejected = 0;
    for path in &paths {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let fixture = match parse_fixture(path) {
            Ok(f) => f,
            Err(err) => {
                failures.push(format!("{name}: {err:#}"));
                continue;
            }
        };
        match check_fixture(&ctx, &fixture).await {
            Ok(message) => {
                rejected += 1;
                if verbose {
                    println!("rejected  {name} ({}): {message}", fixture.rule);
                }
            }
            Err(err) => failures.push(format!(
                "{name} (rule: {}; expect: {}): {err:#}",
                fixture.rule, fixture.expect
            )),
        }
    }

    let mut examples = Vec::new();
    yaml_files(&root.join("examples"), true, &mut examples)?;
    let applier = Applier::new(ctx.client.clone());
    let mut accepted = 0;
    let mut example_docs = 0;
    for path in &examples {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(path)?;
        let docs = match split_documents(&text) {
            Ok(docs) => docs,
            Err(err) => {
                failures.push(format!("{name}: {err:#}"));
                continue;
            }
        };
        for (i, doc) in docs.iter().enumerate() {
            example_docs += 1;
            match applier
                .apply(doc, &ApplyOptions::new(&ctx.ns).dry_run())
                .await
            {
                Ok(_) => accepted += 1,
                Err(err) => failures.push(format!(
                    "{name} document {}: should be accepted: {err}",
                    i + 1
                )),
            }
        }
    }

    println!(
        "invalid fixtures: {rejected} of {} rejected with the expected message; examples: \
         {accepted} of {example_docs} documents in {} files accepted (server-side dry run)",
        paths.len(),
        examples.len()
    );
    if !failures.is_empty() {
        bail!(
            "{} problem(s):\n- {}",
            failures.len(),
            failures.join("\n- ")
        );
    }
    Ok(())
}
