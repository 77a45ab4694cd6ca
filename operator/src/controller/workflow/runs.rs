//! The Workflow's runs as the API server has them: read them (its own, and the upstream runs
//! `afterWorkflow` triggers wait for), carry out a [`Plan`] (create runs as the concurrency
//! policy admits them, hand event batches' keys over, delete trimmed history).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::WorkflowRun;
use serde_json::json;

use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, namespace};
use super::status::Status;
use super::triggers::{self, Admission, Cause, Plan, Start};
use crate::controller::apply::merge_params;
use crate::desired::workflow::{self as build, CANCEL_ANNOTATION, LABEL_WORKFLOW};
use crate::desired::workflow_events;

/// The runs labelled as runs of the workflow `name` in `ns`.
async fn labelled(api: &Api<WorkflowRun>, name: &str) -> Result<Vec<WorkflowRun>, Error> {
    let selector = format!("{LABEL_WORKFLOW}={}", build::label_value(name));
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await
        .during(|| format!("listing the runs of Workflow {name}"))?
        .items)
}

/// The runs of a workflow (owned by it), oldest first.
pub async fn own(wf: &Workflow, ctx: &Context) -> Result<Vec<WorkflowRun>, Error> {
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &namespace(wf)?);
    let mut runs: Vec<WorkflowRun> = labelled(&api, &wf.name_any())
        .await?
        .into_iter()
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == wf.uid().as_ref())
        })
        .collect();
    runs.sort_by_key(|r| (r.creation_timestamp().map(|t| t.0), r.name_any()));
    Ok(runs)
}

/// The newest finished run of each workflow an `afterWorkflow` trigger of `wf` names.
pub async fn upstream(
    wf: &Workflow,
    ctx: &Context,
) -> Result<BTreeMap<String, WorkflowRun>, Error> {
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &namespace(wf)?);
    let mut newest = BTreeMap::new();
    for trigger in &wf.spec.triggers {
        let Some(after) = &trigger.after_workflow else {
            continue;
        };
        if newest.contains_key(&after.name) {
            continue;
        }
        let runs = labelled(&api, &after.name).await?;
        if let Some(run) = triggers::newest_finished(&after.name, &runs) {
            newest.insert(after.name.clone(), run.clone());
        }
    }
    Ok(newest)
}

/// Start the plan's runs in order, recording what the status keeps of them. Returns whether a
/// handed-over event batch still waits.
pub async fn start_all(
    wf: &Workflow,
    plan: &Plan,
    ctx: &Context,
    status: &mut Status,
) -> Result<bool, Error> {
    let mut batch_waits = plan.batch_waits;
    for start in &plan.starts {
        let started = start_one(wf, start, ctx, status).await?;
        match &start.cause {
            Cause::Batch { trigger, token } if started => {
                let name = start.run.name_any();
                hand_over_keys(wf, &name, ctx).await?;
                status.fields().last_event_batch =
                    Some(workflow_events::batch_value(trigger, token));
            }
            Cause::Batch { .. } => batch_waits = true,
            // an on-demand token is a request: it is recorded whether it ran or was forbidden
            Cause::OnDemand { token } => status.fields().last_run_token = Some(token.clone()),
            Cause::Schedule | Cause::After => {}
        }
    }
    Ok(batch_waits)
}

/// Start one run unless the concurrency policy forbids it now. Returns whether the run exists
/// now (created, or created before).
async fn start_one(
    wf: &Workflow,
    start: &Start,
    ctx: &Context,
    status: &mut Status,
) -> Result<bool, Error> {
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &namespace(wf)?);
    let name = start.run.name_any();
    if api
        .get_opt(&name)
        .await
        .during(|| format!("reading WorkflowRun {name}"))?
        .is_some()
    {
        return Ok(true);
    }
    match &start.admission {
        Admission::Skip(message) => {
            status.event(EventType::Normal, "RunSkipped", message.clone());
            return Ok(false);
        }
        Admission::ReplaceFirst(active) => {
            for old in active {
                let patch = json!({"metadata": {"annotations": {
                    CANCEL_ANNOTATION: format!("replaced by run {name}")
                }}});
                api.patch(old, &merge_params(), &Patch::Merge(&patch))
                    .await
                    .during(|| format!("cancelling WorkflowRun {old} (replaced by {name})"))?;
            }
        }
        Admission::Start => {}
    }
    match api.create(&PostParams::default(), &start.run).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(true),
        Err(e) => return Err(e).during(|| format!("creating WorkflowRun {name}")),
    }
    status.event(
        EventType::Normal,
        "RunCreated",
        format!("started run {name}"),
    );
    Ok(true)
}

/// The batch's keys ConfigMap goes with the run it started (history trimming deletes both).
async fn hand_over_keys(wf: &Workflow, name: &str, ctx: &Context) -> Result<(), Error> {
    let ns = namespace(wf)?;
    let Some(run) = Api::<WorkflowRun>::namespaced(ctx.client.clone(), &ns)
        .get_opt(name)
        .await
        .during(|| format!("reading WorkflowRun {name}"))?
    else {
        return Ok(());
    };
    let Some(owner) = run.controller_owner_ref(&()) else {
        return Ok(());
    };
    let owner = OwnerReference {
        controller: Some(false),
        ..owner
    };
    let patch = json!({"metadata": {"ownerReferences": [owner]}});
    match Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(name, &merge_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).during(|| format!("handing the keys ConfigMap {name} to its run")),
    }
}

/// Delete the runs history trimming chose (their Jobs go with them).
pub async fn trim(wf: &Workflow, names: &[String], ctx: &Context) -> Result<(), Error> {
    let api: Api<WorkflowRun> = Api::namespaced(ctx.client.clone(), &namespace(wf)?);
    for name in names {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).during(|| format!("deleting WorkflowRun {name} (history)")),
        }
    }
    Ok(())
}
