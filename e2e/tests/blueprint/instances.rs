//! A blueprint instance against the real API server and operator: children created with
//! server-side apply, owned and labelled; parameters changed → re-rendered and the child no
//! longer rendered pruned; a blueprint edited later → `UpToDate=False` until the instance asks
//! to re-expand; every kind of bad input refused naming it, with nothing created; deleting the
//! instance removes its children (the garbage collector, through owner references).

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams};
use lakeform_api::Blueprint;
use lakeform_api::workflow::Workflow;
use lakeform_e2e::TestContext;
use lakeform_e2e::operator::Operator;
use serde_json::json;

use super::common::{children, message, wait_condition};
use crate::storage::common::{apply, eventually, wait_event};
use crate::workflow::common::RUN;

const BLUEPRINT: &str = r#"apiVersion: lakeform.dev/v1alpha1
kind: Blueprint
metadata: {name: bp}
spec:
  description: a settings ConfigMap and a crawler per source
  parameters:
    - {name: source, required: true, pattern: "[a-z]+"}
    - {name: count, type: Integer, default: "1"}
    - {name: tables, type: List, default: "a"}
  resources:
    - name: settings
      template: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: "{{ name }}-settings"}
        data: {source: "{{ params.source }}", next: "{{ params.count + 1 }}", tables: '{{ params.tables | tojson }}'}
    - name: crawler
      template: |
        apiVersion: lakeform.dev/v1alpha1
        kind: Crawler
        metadata: {name: "{{ name }}-{{ params.source }}"}
        spec:
          database: {{ params.source }}
          targets: [{zone: raw, prefix: "{{ params.source }}/"}]
"#;

/// A Blueprint whose crawler only the API server can refuse (its schema: sampleSize ≥ 1).
const REJECTED: &str = r#"apiVersion: lakeform.dev/v1alpha1
kind: Blueprint
metadata: {name: rejected}
spec:
  resources:
    - name: crawler
      template: |
        apiVersion: lakeform.dev/v1alpha1
        kind: Crawler
        metadata: {name: "{{ name }}-c"}
        spec:
          database: d
          sampleSize: 0
          targets: [{zone: raw}]
"#;

fn instance(name: &str, blueprint: &str, params: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n  lakeRef: {{name: lake}}\n  blueprintRef: {{name: {blueprint}, parameters: {params}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_expands_prunes_follows_versions_and_refuses_bad_input() -> Result<()> {
    let ctx = TestContext::new("bp-instance").await?;
    let _op = Operator::start(&ctx, "3s")?;
    apply(&ctx, BLUEPRINT).await?;
    apply(&ctx, REJECTED).await?;
    refusals(&ctx).await?;
    lifecycle(&ctx).await
}

/// Each bad input: Ready=False with the reason, a message naming it, a Warning event, and no
/// child created.
async fn refusals(ctx: &TestContext) -> Result<()> {
    // a ConfigMap of that name that is not the instance's
    apply(
        ctx,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: taken-settings}\ndata: {mine: 'yes'}\n",
    )
    .await?;
    let cases = [
        (
            "missing",
            "bp",
            "{}",
            "InvalidParameters",
            "spec.blueprintRef.parameters.source: required parameter is missing",
        ),
        (
            "wrongtype",
            "bp",
            "{source: a, count: many}",
            "InvalidParameters",
            "parameters.count (Integer): \"many\" is not an integer",
        ),
        (
            "nomatch",
            "bp",
            "{source: A1}",
            "InvalidParameters",
            "does not match the pattern",
        ),
        (
            "unknown",
            "bp",
            "{source: a, sorce: b}",
            "InvalidParameters",
            "parameters.sorce: the blueprint declares no such parameter",
        ),
        (
            "invalid",
            "rejected",
            "{}",
            "ChildRejected",
            "Crawler invalid-c",
        ),
        (
            "nosuch",
            "nosuch",
            "{}",
            "BlueprintNotFound",
            "Blueprint nosuch (spec.blueprintRef) does not exist",
        ),
        (
            "taken",
            "bp",
            "{source: a}",
            "ChildRejected",
            "ConfigMap taken-settings: it already exists and is not",
        ),
    ];
    for (name, blueprint, params, _, _) in cases {
        apply(ctx, &instance(name, blueprint, params)).await?;
    }
    for (name, _, _, reason, want) in cases {
        let status = wait_condition(ctx, name, "Ready", reason).await?;
        let m = message(&status, "Ready");
        ensure!(m.contains(want), "{name}: {m:?} does not say {want:?}");
        ensure!(
            m.contains("nothing applied") || reason == "BlueprintNotFound",
            "{name}: {m}"
        );
        wait_event(ctx, name, "Warning", reason).await?;
        ensure!(
            children(ctx, name).await?.is_empty(),
            "{name} created children"
        );
    }
    let cm = ctx.api::<ConfigMap>().get("taken-settings").await?;
    ensure!(cm.data.unwrap_or_default().get("mine").map(String::as_str) == Some("yes"));
    println!(
        "{} bad inputs refused with a message naming them, nothing created",
        cases.len()
    );
    Ok(())
}

async fn lifecycle(ctx: &TestContext) -> Result<()> {
    apply(
        ctx,
        &instance(
            "nightly",
            "bp",
            "{source: orders, count: '4', tables: 'x, y'}",
        ),
    )
    .await?;
    let status = wait_condition(ctx, "nightly", "Ready", "Expanded").await?;
    ensure!(
        children(ctx, "nightly").await? == ["ConfigMap/nightly-settings", "Crawler/nightly-orders"],
        "{:?}",
        children(ctx, "nightly").await?
    );
    let from = status.expanded_from.clone().unwrap_or_default();
    ensure!(from.name == "bp" && from.generation == 1, "{from:?}");
    ensure!(status.children.len() == 2, "{:?}", status.children);
    let cm = ctx.api::<ConfigMap>().get("nightly-settings").await?;
    let data = cm.data.clone().unwrap_or_default();
    ensure!(
        data.get("next").map(String::as_str) == Some("5"),
        "{data:?}"
    );
    ensure!(
        data.get("tables").map(String::as_str) == Some(r#"["x", "y"]"#),
        "{data:?}"
    );
    let owner = cm.metadata.owner_references.unwrap_or_default();
    ensure!(owner.len() == 1 && owner[0].kind == "Workflow" && owner[0].name == "nightly");
    let crawler = ctx
        .api::<lakeform_api::Crawler>()
        .get("nightly-orders")
        .await?;
    ensure!(
        crawler.spec.lake_ref.name == "lake",
        "lakeRef from the instance"
    );

    // parameters change: re-rendered, the crawler no longer rendered is pruned
    apply(ctx, &instance("nightly", "bp", "{source: sales}")).await?;
    eventually(
        "nightly-orders pruned, nightly-sales created",
        RUN,
        || async {
            children(ctx, "nightly")
                .await
                .is_ok_and(|c| c == ["ConfigMap/nightly-settings", "Crawler/nightly-sales"])
        },
    )
    .await?;
    wait_event(ctx, "nightly", "Normal", "Expanded").await?;

    // the blueprint changes: the instance is not rewritten until asked
    let bps = ctx.api::<Blueprint>();
    let mut bp = bps.get("bp").await?;
    bp.spec.resources[0].template = bp.spec.resources[0].template.replace(
        "source: \"{{ params.source }}\"",
        "source: \"v2-{{ params.source }}\"",
    );
    bp.metadata.managed_fields = None;
    bps.replace("bp", &Default::default(), &bp).await?;
    let status = wait_condition(ctx, "nightly", "UpToDate", "BlueprintChanged").await?;
    ensure!(
        message(&status, "UpToDate").contains("lakeform.dev/re-expand"),
        "{status:?}"
    );
    let source = |cm: ConfigMap| cm.data.unwrap_or_default().get("source").cloned();
    ensure!(source(ctx.api::<ConfigMap>().get("nightly-settings").await?) == Some("sales".into()));
    ctx.api::<Workflow>()
        .patch(
            "nightly",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"lakeform.dev/re-expand": "1"}}})),
        )
        .await?;
    wait_condition(ctx, "nightly", "UpToDate", "Expanded").await?;
    ensure!(
        source(ctx.api::<ConfigMap>().get("nightly-settings").await?) == Some("v2-sales".into())
    );
    let bp = bps.get("bp").await?;
    let counted = bp.status.map(|s| (s.instances, s.outdated_instances));
    println!("blueprint status (instances, outdated): {counted:?}");

    // deleting the instance deletes its children
    ctx.api::<Workflow>()
        .delete("nightly", &DeleteParams::default())
        .await?;
    eventually("the children garbage-collected", RUN, || async {
        children(ctx, "nightly").await.is_ok_and(|c| c.is_empty())
    })
    .await?;
    println!(
        "instance: expanded, re-rendered with a prune, held at generation 1 until re-expanded, deleted with its children"
    );
    Ok(())
}
