//! Helpers for the blueprint tests.

use anyhow::{Context, Result};
use kube::api::ListParams;
use lakeform_api::workflow::{Workflow, WorkflowStatus};
use lakeform_e2e::{TestContext, wait_for};

use crate::workflow::common::RUN;

/// The instance's status once its condition `type_` has `reason`.
pub async fn wait_condition(
    ctx: &TestContext,
    name: &str,
    type_: &str,
    reason: &str,
) -> Result<WorkflowStatus> {
    let (t, r) = (type_.to_string(), reason.to_string());
    let wf = wait_for(
        &ctx.api::<Workflow>(),
        name,
        &format!("Workflow {name} condition {type_} with reason {reason}"),
        RUN,
        move |w: Option<&Workflow>| {
            w.and_then(|w| w.status.as_ref()).is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == t
                        && c.reason == r
                        && s.observed_generation == w.and_then(|w| w.metadata.generation)
                })
            })
        },
    )
    .await?;
    wf.status.context("no status")
}

/// The message of condition `type_`.
pub fn message(status: &WorkflowStatus, type_: &str) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// `Kind/name` of every object labelled as a child of `instance`, sorted.
pub async fn children(ctx: &TestContext, instance: &str) -> Result<Vec<String>> {
    let lp = ListParams::default().labels(&format!("lakeform.dev/blueprint-instance={instance}"));
    let mut out = Vec::new();
    for c in ctx.api::<lakeform_api::Crawler>().list(&lp).await?.items {
        out.push(format!("Crawler/{}", c.metadata.name.unwrap_or_default()));
    }
    for w in ctx.api::<Workflow>().list(&lp).await?.items {
        out.push(format!("Workflow/{}", w.metadata.name.unwrap_or_default()));
    }
    for m in ctx
        .api::<k8s_openapi::api::core::v1::ConfigMap>()
        .list(&lp)
        .await?
        .items
    {
        out.push(format!("ConfigMap/{}", m.metadata.name.unwrap_or_default()));
    }
    out.sort();
    Ok(out)
}
