//! Triggers and validation: a cron schedule creates runs on the minute, the history limit
//! trims finished runs; a cycle, a bad cron expression, a missing DataLake and a blueprintRef
//! to a blueprint that does not exist each give `Ready=False` with a reason and a message
//! naming the field, and no runs.

use std::time::Duration;

use anyhow::{Result, ensure};
use kube::api::ListParams;
use lakeform_api::workflow::Workflow;
use lakeform_api::workflow_run::{Phase, WorkflowRun};
use lakeform_e2e::{TestContext, wait_for};

use super::common::lakeform_step;
use crate::crawler_controller::common::{Needs, ready_lake, staged};
use crate::storage::common::{apply, events, eventually};

/// Long enough for two minute boundaries and their runs.
const TWO_MINUTES: Duration = Duration::from_secs(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_trigger_runs_on_schedule_and_history_is_trimmed() -> Result<()> {
    staged(
        "wf-cron",
        "wc",
        Needs {
            jobs: true,
            ..Needs::default()
        },
        scenario,
    )
    .await
}

fn workflow_yaml(name: &str, lake: &str, extra: &str, steps: &str) -> String {
    format!(
        "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  lakeRef: {{name: {lake}}}
{extra}  steps:
{steps}"
    )
}

async fn runs_of(ctx: &TestContext, workflow: &str) -> Result<Vec<WorkflowRun>> {
    Ok(ctx
        .api::<WorkflowRun>()
        .list(&ListParams::default().labels(&format!("lakeform.dev/workflow={workflow}")))
        .await?
        .items)
}

async fn ready_is(ctx: &TestContext, name: &str, reason: &str) -> Result<String> {
    let want = reason.to_string();
    let wf = wait_for(
        &ctx.api::<Workflow>(),
        name,
        &format!("Workflow Ready=False ({reason})"),
        Duration::from_secs(60),
        move |w: Option<&Workflow>| {
            w.and_then(|w| w.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == want)
            })
        },
    )
    .await?;
    Ok(wf
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default())
}

async fn scenario(ctx: &TestContext, catalog: &str, lake_name: &str, database: &str) -> Result<()> {
    ready_lake(ctx, catalog, lake_name, database).await?;
    let step = lakeform_step("hello", "", &["debug", "env", "LAKEFORM_RUN_ID"]);

    // invalid and unsupported workflows: a reason, a message naming the field, no runs
    let cycle = format!(
        "{}{}",
        lakeform_step("a", "      dependsOn: [b]\n", &["version"]),
        lakeform_step("b", "      dependsOn: [a]\n", &["version"])
    );
    apply(ctx, &workflow_yaml("cycle", lake_name, "", &cycle)).await?;
    let m = ready_is(ctx, "cycle", "InvalidSpec").await?;
    ensure!(m.contains("spec.steps") && m.contains("cycle"), "{m}");
    apply(
        ctx,
        &workflow_yaml(
            "badcron",
            lake_name,
            "  triggers: [{name: nightly, schedule: {cron: '61 * * * *'}}]\n",
            &step,
        ),
    )
    .await?;
    let m = ready_is(ctx, "badcron", "InvalidSpec").await?;
    ensure!(m.contains("spec.triggers[0].schedule.cron"), "{m}");
    apply(ctx, &workflow_yaml("nolake", "no-such-lake", "", &step)).await?;
    let m = ready_is(ctx, "nolake", "LakeNotFound").await?;
    ensure!(m.contains("no-such-lake"), "{m}");
    apply(
        ctx,
        &format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata: {{name: fromblueprint}}
spec:
  lakeRef: {{name: {lake_name}}}
  blueprintRef: {{name: nightly-snapshot}}
"
        ),
    )
    .await?;
    let m = ready_is(ctx, "fromblueprint", "BlueprintNotFound").await?;
    ensure!(
        m.contains("Blueprint nightly-snapshot (spec.blueprintRef)"),
        "{m}"
    );
    for (name, reason) in [
        ("cycle", "InvalidSpec"),
        ("nolake", "LakeNotFound"),
        ("fromblueprint", "BlueprintNotFound"),
    ] {
        eventually(
            &format!("a Warning {reason} event for {name}"),
            Duration::from_secs(30),
            || async move {
                events(ctx, name)
                    .await
                    .is_ok_and(|e| e.iter().any(|(t, r, _)| t == "Warning" && r == reason))
            },
        )
        .await?;
    }

    // every minute, one finished run kept
    apply(
        ctx,
        &workflow_yaml(
            "ticker",
            lake_name,
            "  historyLimit: 1\n  triggers: [{name: every, schedule: {cron: '* * * * *'}}]\n",
            &step,
        ),
    )
    .await?;
    let wf = wait_for(
        &ctx.api::<Workflow>(),
        "ticker",
        "the schedule to be armed",
        Duration::from_secs(60),
        |w: Option<&Workflow>| {
            w.and_then(|w| w.status.as_ref())
                .is_some_and(|s| s.next_schedule_times.contains_key("every"))
        },
    )
    .await?;
    let next = wf
        .status
        .and_then(|s| s.next_schedule_times.get("every").cloned())
        .map(|t| t.0.as_second())
        .unwrap_or_default();
    ensure!(
        next % 60 == 0,
        "next schedule time on a minute boundary: {next}"
    );

    // two scheduled runs finish; the older one is deleted by the history limit
    let deadline = tokio::time::Instant::now() + TWO_MINUTES;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let runs = runs_of(ctx, "ticker").await?;
        for r in &runs {
            if let Some(n) = &r.metadata.name {
                seen.insert(n.clone());
            }
        }
        let finished: Vec<&WorkflowRun> = runs
            .iter()
            .filter(|r| {
                r.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p == Phase::Succeeded)
            })
            .collect();
        if seen.len() >= 2 && finished.len() == 1 && runs.len() == 1 {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "after {TWO_MINUTES:?}: runs seen {seen:?}, now {:?}",
            runs.iter()
                .map(|r| (&r.metadata.name, r.status.as_ref().and_then(|s| s.phase)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    ensure!(
        seen.iter().all(|n| n.starts_with("ticker-every-")),
        "scheduled runs are named after their trigger and minute: {seen:?}"
    );
    for name in ["cycle", "badcron", "nolake", "fromblueprint"] {
        ensure!(runs_of(ctx, name).await?.is_empty(), "{name} started a run");
    }
    Ok(())
}
