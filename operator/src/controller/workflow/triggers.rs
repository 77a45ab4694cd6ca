//! When a Workflow starts a run, as a pure function: given the Workflow (spec, annotations and
//! the status it last wrote), its runs, the newest finished run of each upstream workflow and
//! `now`, say which runs to start, how the `concurrencyPolicy` admits each, when schedules
//! fire next and which finished runs history trimming deletes. No client, no clock: `now` is
//! an argument; the reconciler reads the state, asks [`plan`] and carries the [`Plan`] out.
//!
//! Triggers are decided in this order, and runs start in it: the event batch a batcher handed
//! over, the on-demand token, each schedule, each `afterWorkflow` trigger. The active runs are
//! those of the start of the pass: runs started in the same pass do not hold each other back.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use lakeform_api::validate::{next_fire, parse_cron};
use lakeform_api::workflow::{ConcurrencyPolicy, When, Workflow};
use lakeform_api::workflow_run::{Phase, WorkflowRun};

use crate::desired::workflow::{self as build, SCHEDULED_ANNOTATION};
use crate::desired::workflow_events;

/// How often an event batch waiting for an active run (`Forbid`) looks again.
pub const BATCH_RECHECK: Duration = Duration::from_secs(5);

/// What the decisions are made from.
pub struct Inputs<'a> {
    pub workflow: &'a Workflow,
    /// The workflow's own runs, oldest first.
    pub runs: &'a [WorkflowRun],
    /// The newest finished run of each workflow an `afterWorkflow` trigger names, by that
    /// workflow's name (absent: it has no finished run).
    pub upstream: &'a BTreeMap<String, WorkflowRun>,
    pub now: jiff::Timestamp,
}

/// Why a run starts, and what the status records once it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An event batch (`trigger`, `token`): once its run exists, the batch's keys ConfigMap
    /// goes with the run and `lastEventBatch` records it.
    Batch { trigger: String, token: String },
    /// The on-demand token: recorded in `lastRunToken` whether the run started or not.
    OnDemand { token: String },
    /// A schedule trigger's due time.
    Schedule,
    /// An upstream workflow's run ended in the state the trigger asks for.
    After,
}

/// What `concurrencyPolicy` says about starting a run while others are active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Start it (no run is active, or `Allow`).
    Start,
    /// `Forbid`: do not start it; the message says why (a `RunSkipped` event).
    Skip(String),
    /// `Replace`: ask these active runs to cancel, then start it.
    ReplaceFirst(Vec<String>),
}

/// A run to start (unless it exists already: then nothing is done, whatever the admission).
#[derive(Clone, Debug)]
pub struct Start {
    pub run: WorkflowRun,
    pub cause: Cause,
    pub admission: Admission,
}

/// What one pass decided.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Runs to start, in order.
    pub starts: Vec<Start>,
    /// A handed-over event batch waits for the active run to end (`Forbid`).
    pub batch_waits: bool,
    /// The next start of each schedule trigger (`status.nextScheduleTimes`).
    pub next_schedule_times: BTreeMap<String, Time>,
    /// The earliest next start of any schedule (unix seconds).
    pub wake_at: Option<i64>,
    /// Finished runs beyond `historyLimit`, oldest first: delete them.
    pub trim: Vec<String>,
}

impl Plan {
    /// How long until the workflow should be looked at again: the next schedule, sooner while
    /// an event batch waits, never later than `resync`.
    pub fn requeue_after(
        &self,
        now: jiff::Timestamp,
        batch_waits: bool,
        resync: Duration,
    ) -> Duration {
        let t = now.as_second();
        let until = self
            .wake_at
            .map(|w| Duration::from_secs(u64::try_from(w - t).unwrap_or(0).max(1)))
            .unwrap_or(resync);
        let until = if batch_waits {
            until.min(BATCH_RECHECK)
        } else {
            until
        };
        until.min(resync)
    }
}

/// Whether a run has finished.
pub fn finished(run: &WorkflowRun) -> bool {
    run.status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(Phase::is_final)
}

/// The names of the runs that have not finished.
pub fn active(runs: &[WorkflowRun]) -> Vec<String> {
    runs.iter()
        .filter(|r| !finished(r))
        .map(|r| r.name_any())
        .collect()
}

/// What `policy` says about starting `run` while `active` runs are.
pub fn admission(policy: ConcurrencyPolicy, active: &[String], run: &str) -> Admission {
    if active.is_empty() {
        return Admission::Start;
    }
    match policy {
        ConcurrencyPolicy::Forbid => Admission::Skip(format!(
            "run {run} not started: {} still active (concurrencyPolicy Forbid)",
            active.join(", ")
        )),
        ConcurrencyPolicy::Replace => Admission::ReplaceFirst(active.to_vec()),
        ConcurrencyPolicy::Allow => Admission::Start,
    }
}

/// Decide this pass's starts, schedule times and history trimming.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let wf = inputs.workflow;
    let active = active(inputs.runs);
    let mut plan = Plan::default();
    let mut causes = Vec::new();
    match event_batch(wf) {
        Some(_)
            if wf.spec.concurrency_policy == ConcurrencyPolicy::Forbid && !active.is_empty() =>
        {
            // the keys wait for the active run to end (the batcher holds new keys meanwhile)
            plan.batch_waits = true;
        }
        Some(start) => causes.push(start),
        None => {}
    }
    causes.extend(on_demand(wf));
    let (due, next, wake_at) = schedules(wf, inputs.now.as_second());
    causes.extend(due);
    plan.next_schedule_times = next;
    plan.wake_at = wake_at;
    causes.extend(after_workflows(wf, inputs.upstream));
    plan.starts = causes
        .into_iter()
        .map(|(run, cause)| Start {
            admission: admission(wf.spec.concurrency_policy, &active, &run.name_any()),
            run,
            cause,
        })
        .collect();
    plan.trim = history_to_trim(wf.spec.history_limit, inputs.runs);
    plan
}

/// The run of the event batch a trigger's batcher handed over (the `lakeform.dev/event-batch`
/// annotation), unless the status says it was taken.
fn event_batch(wf: &Workflow) -> Option<(WorkflowRun, Cause)> {
    let (trigger, token) = workflow_events::pending_batch(wf)?;
    let name = workflow_events::batch_name(wf, &token);
    let run = build::run(
        wf,
        name.clone(),
        &format!("event-{trigger}"),
        BTreeMap::new(),
        BTreeMap::from([(workflow_events::BATCH_ANNOTATION.to_string(), name)]),
    );
    Some((run, Cause::Batch { trigger, token }))
}

/// The run of a new on-demand token (the `lakeform.dev/run` annotation), with the parameters
/// of the first `onDemand` trigger.
fn on_demand(wf: &Workflow) -> Option<(WorkflowRun, Cause)> {
    let token = build::pending_token(wf)?;
    let params = wf
        .spec
        .triggers
        .iter()
        .find_map(|t| t.on_demand.as_ref())
        .map(|o| o.parameters.clone())
        .unwrap_or_default();
    let run = build::run(
        wf,
        build::on_demand_run_name(wf, &token),
        "on-demand",
        params,
        BTreeMap::from([(
            crate::desired::crawler::RUN_ANNOTATION.to_string(),
            token.clone(),
        )]),
    );
    Some((run, Cause::OnDemand { token }))
}

type Schedules = (
    Vec<(WorkflowRun, Cause)>,
    BTreeMap<String, Time>,
    Option<i64>,
);

/// Each schedule trigger: the run of the time the status armed, when it is due (one run, however
/// many fires were missed since), and the next fire time (the armed one while it is ahead,
/// else the cron's next after `t`). Triggers whose cron or time zone does not parse are left
/// out (validation refuses them earlier).
fn schedules(wf: &Workflow, t: i64) -> Schedules {
    let armed = wf.status.as_ref().map(|s| &s.next_schedule_times);
    let mut runs = Vec::new();
    let mut next_times = BTreeMap::new();
    let mut wake: Option<i64> = None;
    for trigger in &wf.spec.triggers {
        let Some(s) = &trigger.schedule else { continue };
        let Ok(cron) = parse_cron(&s.cron) else {
            continue;
        };
        let stored = armed
            .and_then(|a| a.get(&trigger.name))
            .map(|x| x.0.as_second());
        if let Some(due) = stored
            && due <= t
        {
            let run = build::run(
                wf,
                build::scheduled_run_name(wf, &trigger.name, due),
                &format!("schedule-{}", trigger.name),
                BTreeMap::new(),
                BTreeMap::from([(
                    SCHEDULED_ANNOTATION.to_string(),
                    jiff::Timestamp::from_second(due)
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                )]),
            );
            runs.push((run, Cause::Schedule));
        }
        let next = match stored {
            Some(due) if due > t => due,
            _ => match next_fire(&cron, s.time_zone.as_deref(), t) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Ok(ts) = jiff::Timestamp::from_second(next) {
            next_times.insert(trigger.name.clone(), Time(ts));
        }
        wake = Some(wake.map_or(next, |w| w.min(next)));
    }
    (runs, next_times, wake)
}

/// After other workflows: the newest finished run of the upstream, if it ended after this
/// workflow was created and in the state the trigger asks for, starts one run (named after it,
/// so it starts only one).
fn after_workflows(
    wf: &Workflow,
    upstream: &BTreeMap<String, WorkflowRun>,
) -> Vec<(WorkflowRun, Cause)> {
    let created = wf.creation_timestamp().map(|t| t.0);
    let mut runs = Vec::new();
    for trigger in &wf.spec.triggers {
        let Some(after) = &trigger.after_workflow else {
            continue;
        };
        let Some(up) = upstream.get(&after.name) else {
            continue;
        };
        let status = up.status.as_ref();
        let ended = status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0);
        let fires = matches!(
            (after.state, status.and_then(|s| s.phase)),
            (When::Succeeded, Some(Phase::Succeeded))
                | (When::Failed, Some(Phase::Failed))
                | (When::Completed, Some(Phase::Succeeded | Phase::Failed))
        );
        if !fires || ended < created {
            continue;
        }
        let run = build::run(
            wf,
            build::after_run_name(wf, up),
            &format!("after-{}", trigger.name),
            BTreeMap::new(),
            BTreeMap::from([(build::AFTER_ANNOTATION.to_string(), up.name_any())]),
        );
        runs.push((run, Cause::After));
    }
    runs
}

/// Of the runs of the workflow `name` (any listing), the finished one that completed last.
pub fn newest_finished<'a>(
    name: &str,
    runs: impl IntoIterator<Item = &'a WorkflowRun>,
) -> Option<&'a WorkflowRun> {
    runs.into_iter()
        .filter(|r| r.spec.workflow_ref.name == name && finished(r))
        .max_by_key(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0)
        })
}

/// The finished runs beyond `history_limit` (of `runs`, oldest first): the oldest go.
pub fn history_to_trim(history_limit: i32, runs: &[WorkflowRun]) -> Vec<String> {
    let done: Vec<&WorkflowRun> = runs.iter().filter(|r| finished(r)).collect();
    let limit = usize::try_from(history_limit.max(0)).unwrap_or(0);
    done.iter()
        .take(done.len().saturating_sub(limit))
        .map(|r| r.name_any())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn workflow(extra: &str) -> Workflow {
        serde_yaml::from_str(&format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: Workflow
metadata:
  name: nightly
  namespace: team
  uid: w-1
  creationTimestamp: '2027-01-15T08:00:00Z'
{extra}"
        ))
        .expect("workflow parses")
    }

    const SPEC: &str = "spec:
  lakeRef: {name: sales}
  steps: [{name: a, container: {image: x}}]
  historyLimit: 2
  triggers:
    - {name: hourly, schedule: {cron: '0 * * * *'}}
    - {name: manual, onDemand: {parameters: {day: today}}}
    - {name: after-load, afterWorkflow: {name: load, state: Succeeded}}
";

    fn run(
        name: &str,
        workflow: &str,
        phase: Option<&str>,
        completed: Option<&str>,
    ) -> WorkflowRun {
        let mut yaml = format!(
            "apiVersion: lakeform.dev/v1alpha1
kind: WorkflowRun
metadata: {{name: {name}, namespace: team, uid: u-{name}}}
spec: {{workflowRef: {{name: {workflow}}}}}
"
        );
        if let Some(p) = phase {
            yaml.push_str(&format!("status:\n  phase: {p}\n"));
            if let Some(c) = completed {
                yaml.push_str(&format!("  completionTime: '{c}'\n"));
            }
        }
        serde_yaml::from_str(&yaml).expect("run parses")
    }

    fn inputs<'a>(
        wf: &'a Workflow,
        runs: &'a [WorkflowRun],
        upstream: &'a BTreeMap<String, WorkflowRun>,
        now: jiff::Timestamp,
    ) -> Inputs<'a> {
        Inputs {
            workflow: wf,
            runs,
            upstream,
            now,
        }
    }

    fn causes(plan: &Plan) -> Vec<&Cause> {
        plan.starts.iter().map(|s| &s.cause).collect()
    }

    #[test]
    fn a_new_schedule_is_armed_not_fired() {
        let wf = workflow(SPEC);
        let none = BTreeMap::new();
        let plan = plan(&inputs(&wf, &[], &none, t(0)));
        assert!(plan.starts.is_empty());
        let next = plan.next_schedule_times["hourly"].0.as_second();
        assert!(next > t(0).as_second() && next <= t(3600).as_second());
        assert_eq!(next % 3600, 0, "on the hour");
        assert_eq!(plan.wake_at, Some(next));
    }

    #[test]
    fn a_due_schedule_fires_once_however_many_fires_were_missed() {
        let armed = t(0).as_second() / 3600 * 3600;
        let at = jiff::Timestamp::from_second(armed).expect("ts");
        let wf = workflow(&format!(
            "{SPEC}status: {{nextScheduleTimes: {{hourly: '{at}'}}}}\n"
        ));
        let none = BTreeMap::new();
        // three hours late: one run, for the armed time
        let now = jiff::Timestamp::from_second(armed + 3 * 3600 + 10).expect("ts");
        let plan = plan(&inputs(&wf, &[], &none, now));
        assert_eq!(causes(&plan), vec![&Cause::Schedule]);
        let run = &plan.starts[0].run;
        assert_eq!(
            run.name_any(),
            build::scheduled_run_name(&wf, "hourly", armed)
        );
        assert_eq!(
            run.annotations().get(SCHEDULED_ANNOTATION),
            Some(&at.to_string())
        );
        // the next fire is the cron's next after now, not the missed ones
        assert_eq!(
            plan.next_schedule_times["hourly"].0.as_second(),
            armed + 4 * 3600
        );
        // not due yet: armed time kept, nothing starts
        let early = jiff::Timestamp::from_second(armed - 10).expect("ts");
        let plan = super::plan(&inputs(&wf, &[], &none, early));
        assert!(plan.starts.is_empty());
        assert_eq!(plan.next_schedule_times["hourly"].0.as_second(), armed);
        assert_eq!(
            plan.requeue_after(early, false, Duration::from_secs(300)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn an_on_demand_token_starts_one_run_with_the_trigger_parameters() {
        let wf = workflow(&format!(
            "  annotations: {{lakeform.dev/run: go-1}}\n{SPEC}"
        ));
        let none = BTreeMap::new();
        let plan = plan(&inputs(&wf, &[], &none, t(0)));
        assert_eq!(
            causes(&plan),
            vec![&Cause::OnDemand {
                token: "go-1".into()
            }]
        );
        let run = &plan.starts[0].run;
        assert_eq!(run.name_any(), build::on_demand_run_name(&wf, "go-1"));
        assert_eq!(
            run.spec.parameters.get("day").map(String::as_str),
            Some("today")
        );
        // once recorded, the token starts nothing
        let done = workflow(&format!(
            "  annotations: {{lakeform.dev/run: go-1}}\n{SPEC}status: {{lastRunToken: go-1}}\n"
        ));
        assert!(
            super::plan(&inputs(&done, &[], &none, t(0)))
                .starts
                .is_empty()
        );
    }

    #[test]
    fn after_workflow_fires_for_a_matching_run_that_ended_after_creation() {
        let wf = workflow(SPEC);
        let ok = run(
            "load-1",
            "load",
            Some("Succeeded"),
            Some("2027-01-15T09:00:00Z"),
        );
        let upstream = BTreeMap::from([("load".to_string(), ok.clone())]);
        let plan = plan(&inputs(&wf, &[], &upstream, t(0)));
        assert_eq!(causes(&plan), vec![&Cause::After]);
        assert_eq!(
            plan.starts[0].run.name_any(),
            build::after_run_name(&wf, &ok)
        );
        // wrong state, or ended before the workflow existed: nothing
        let failed = run(
            "load-2",
            "load",
            Some("Failed"),
            Some("2027-01-15T09:00:00Z"),
        );
        let old = run(
            "load-0",
            "load",
            Some("Succeeded"),
            Some("2027-01-15T07:00:00Z"),
        );
        for up in [failed, old] {
            let upstream = BTreeMap::from([("load".to_string(), up)]);
            assert!(
                super::plan(&inputs(&wf, &[], &upstream, t(0)))
                    .starts
                    .is_empty()
            );
        }
    }

    #[test]
    fn the_newest_finished_upstream_run_counts() {
        let runs = [
            run(
                "load-1",
                "load",
                Some("Succeeded"),
                Some("2027-01-15T09:00:00Z"),
            ),
            run(
                "load-2",
                "load",
                Some("Failed"),
                Some("2027-01-15T10:00:00Z"),
            ),
            run("load-3", "load", Some("Running"), None),
            run(
                "other-1",
                "other",
                Some("Succeeded"),
                Some("2027-01-15T11:00:00Z"),
            ),
        ];
        let newest = newest_finished("load", &runs).map(|r| r.name_any());
        assert_eq!(newest.as_deref(), Some("load-2"));
        assert!(newest_finished("none", &runs).is_none());
    }

    #[test]
    fn concurrency_policy_decides_on_active_runs() {
        let active = vec!["r1".to_string()];
        assert_eq!(
            admission(ConcurrencyPolicy::Forbid, &[], "r2"),
            Admission::Start
        );
        assert_eq!(
            admission(ConcurrencyPolicy::Allow, &active, "r2"),
            Admission::Start
        );
        assert_eq!(
            admission(ConcurrencyPolicy::Forbid, &active, "r2"),
            Admission::Skip(
                "run r2 not started: r1 still active (concurrencyPolicy Forbid)".into()
            )
        );
        assert_eq!(
            admission(ConcurrencyPolicy::Replace, &active, "r2"),
            Admission::ReplaceFirst(active.clone())
        );
    }

    #[test]
    fn an_event_batch_waits_for_the_active_run_under_forbid() {
        let spec = SPEC.replace(
            "historyLimit: 2",
            "historyLimit: 2\n  concurrencyPolicy: Forbid",
        );
        let wf = workflow(&format!(
            "  annotations: {{lakeform.dev/event-batch: landed/b7}}\n{spec}"
        ));
        let none = BTreeMap::new();
        let busy = [run("r1", "nightly", Some("Running"), None)];
        let plan = plan(&inputs(&wf, &busy, &none, t(0)));
        assert!(plan.batch_waits);
        assert!(plan.starts.is_empty());
        assert_eq!(
            plan.requeue_after(t(0), true, Duration::from_secs(300)),
            BATCH_RECHECK
        );
        let idle = [run("r1", "nightly", Some("Succeeded"), None)];
        let plan = super::plan(&inputs(&wf, &idle, &none, t(0)));
        assert!(!plan.batch_waits);
        assert_eq!(
            causes(&plan),
            vec![&Cause::Batch {
                trigger: "landed".into(),
                token: "b7".into()
            }]
        );
        assert_eq!(plan.starts[0].admission, Admission::Start);
        assert_eq!(
            plan.starts[0].run.name_any(),
            workflow_events::batch_name(&wf, "b7")
        );
    }

    #[test]
    fn history_keeps_the_newest_finished_runs() {
        let runs = [
            run("r1", "nightly", Some("Succeeded"), None),
            run("r2", "nightly", Some("Failed"), None),
            run("r3", "nightly", Some("Running"), None),
            run("r4", "nightly", Some("Succeeded"), None),
            run("r5", "nightly", None, None),
        ];
        assert_eq!(history_to_trim(2, &runs), vec!["r1".to_string()]);
        assert_eq!(history_to_trim(0, &runs), vec!["r1", "r2", "r4"]);
        assert!(history_to_trim(5, &runs).is_empty());
        assert_eq!(active(&runs), vec!["r3", "r5"]);
    }
}
