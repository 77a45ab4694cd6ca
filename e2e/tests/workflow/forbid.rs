//! `concurrencyPolicy: Forbid` (the default): an every-minute schedule whose run takes longer
//! than a minute skips the fire that finds it still running, and an on-demand request made
//! meanwhile is refused too — runs of the workflow never overlap.

use std::time::Duration;

use anyhow::{Result, ensure};
use kube::api::{ListParams, Patch, PatchParams};
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::{Phase, WorkflowRun};
use lakeform_e2e::{TestContext, wait_for};

use super::common::{lakeform_step, wait_finished, wait_ready_reason};
use crate::crawler_controller::common::{Needs, ready_lake, staged};
use crate::storage::common::{apply, wait_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_fires_while_a_run_is_active() -> Result<()> {
    staged(
        "wf-forbid",
        "wf",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        scenario,
    )
    .await
}

async fn runs(ctx: &TestContext) -> Result<Vec<WorkflowRun>> {
    let mut r = ctx
        .api::<WorkflowRun>()
        .list(&ListParams::default().labels("lakeform.dev/workflow=slow"))
        .await?
        .items;
    r.sort_by_key(|r| r.metadata.creation_timestamp.clone().map(|t| t.0));
    Ok(r)
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    let step = lakeform_step("work", "", &["debug", "sleep", "75"]);
    apply(
        ctx,
        &format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: slow}}
spec:
  lakeRef: {{name: {lake_name}}}
  concurrencyPolicy: Forbid
  triggers: [{{name: tick, schedule: {{cron: '* * * * *'}}}}, {{name: manual, onDemand: {{}}}}]
  steps:
{step}"
        ),
    )
    .await?;
    wait_ready_reason(ctx, "slow", "Ready").await?;

    // the first fire starts a run that outlives the next minute
    let first = wait_for(
        &ctx.api::<Workflow>(),
        "slow",
        "the first scheduled run",
        Duration::from_secs(90),
        |w: Option<&Workflow>| {
            w.and_then(|w| w.status.as_ref())
                .is_some_and(|s| !s.active_runs.is_empty())
        },
    )
    .await?
    .status
    .map(|s| s.active_runs[0].clone())
    .unwrap_or_default();
    // an on-demand request meanwhile is refused as well
    ctx.api::<Workflow>()
        .patch(
            "slow",
            &PatchParams::default(),
            &Patch::Merge(
                &serde_json::json!({"metadata": {"annotations": {"lakeform.dev/run": "now"}}}),
            ),
        )
        .await?;
    let run = wait_finished(ctx, &first).await?;
    ensure!(
        run.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded),
        "{:?}",
        run.status
    );
    // the run spanned a minute boundary, the trigger moved past it, and no run was started
    // for it (kube's event recorder folds repeated RunSkipped events into one series, so the
    // runs themselves are the evidence)
    let st = run.status.clone().unwrap_or_default();
    let (Some(started), Some(ended)) = (st.start_time.clone(), st.completion_time.clone()) else {
        anyhow::bail!("run times missing: {st:?}");
    };
    let boundary = (started.0.as_second() / 60 + 1) * 60;
    ensure!(
        ended.0.as_second() > boundary,
        "the run crossed a minute boundary"
    );
    let next = ctx
        .api::<Workflow>()
        .get("slow")
        .await?
        .status
        .and_then(|s| s.next_schedule_times.get("tick").cloned())
        .map(|t| t.0.as_second())
        .unwrap_or_default();
    ensure!(next > boundary, "the schedule moved past the skipped fire");
    let reported = |m: &str| m.contains("concurrencyPolicy Forbid") && m.contains(&first);
    let skipped: Vec<String> = wait_events(ctx, "slow", "a RunSkipped event", |evs| {
        evs.iter().any(|(_, r, m)| r == "RunSkipped" && reported(m))
    })
    .await?
    .into_iter()
    .filter(|(_, r, _)| r == "RunSkipped")
    .map(|(_, _, m)| m)
    .collect();
    ensure!(
        skipped
            .iter()
            .any(|m| m.contains("concurrencyPolicy Forbid") && m.contains(&first)),
        "skips while {first} ran are reported: {skipped:?}"
    );
    let all = runs(ctx).await?;
    ensure!(
        all.len() == 1,
        "neither the fire at the boundary nor the on-demand request started a run: {:?}",
        all.iter().map(|r| &r.metadata.name).collect::<Vec<_>>()
    );
    // no two runs were ever active together (checked again with the next run, if it started)
    tokio::time::sleep(Duration::from_secs(5)).await;
    let all = runs(ctx).await?;
    for pair in all.windows(2) {
        let end = pair[0]
            .status
            .as_ref()
            .and_then(|s| s.completion_time.clone());
        let start = pair[1].metadata.creation_timestamp.clone();
        ensure!(
            matches!((&end, &start), (Some(e), Some(s)) if s.0 >= e.0),
            "{:?} started before {:?} ended",
            pair[1].metadata.name,
            pair[0].metadata.name
        );
    }
    println!(
        "Forbid: {first} ran 75 s across a minute boundary; that fire and an on-demand request \
         started nothing ({} RunSkipped event series)",
        skipped.len()
    );
    Ok(())
}
