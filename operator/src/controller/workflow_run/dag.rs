//! The state machine of a run, as a pure function: given the workflow's steps, the run's step
//! statuses and what the current attempt of each running step did, advance the statuses and
//! say which attempts to start. No client, no clock: `now` is an argument.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lakeform_api::validate::topological_order;
use lakeform_api::workflow::{Step, When};
use lakeform_api::workflow_run::{Phase, StepStatus};

/// First retry delay; each further retry doubles it, up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What the Job of a step's current attempt did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Still running (or not created yet).
    Running,
    Succeeded,
    /// Failed, with the reason to report.
    Failed(String),
    /// The Job is gone although the step is running (deleted by hand).
    Missing,
}

/// An attempt to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub step: String,
    /// 1 for the first attempt.
    pub attempt: i32,
}

/// A step's phase changed (for events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub step: String,
    pub phase: Phase,
    pub message: String,
}

/// What one pass decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub starts: Vec<Start>,
    pub transitions: Vec<Transition>,
    /// The earliest time a retrying step may start (the run should look again then).
    pub wake_at: Option<jiff::Timestamp>,
}

/// Delay before attempt `next` (2 = the first retry).
pub fn backoff(next: i32) -> Duration {
    let doublings = u32::try_from(next.saturating_sub(2)).unwrap_or(0).min(16);
    BASE_BACKOFF
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_BACKOFF)
}

/// The statuses of a new run: every step `Pending`, except the steps that succeeded in the run
/// it resumes (`resumed`), which keep that result.
pub fn initial(steps: &[Step], resumed: Option<(&str, &[StepStatus])>) -> Vec<StepStatus> {
    steps
        .iter()
        .map(|s| {
            let earlier = resumed.and_then(|(run, old)| {
                old.iter()
                    .find(|o| o.name == s.name && o.phase == Phase::Succeeded)
                    .map(|o| StepStatus {
                        message: Some(format!("succeeded in run {run}; not run again")),
                        ..o.clone()
                    })
            });
            earlier.unwrap_or_else(|| StepStatus {
                name: s.name.clone(),
                ..Default::default()
            })
        })
        .collect()
}

/// Advance `status` (one entry per step, as [`initial`] made them) with what the Jobs did
/// (`attempts`: running steps' current attempt), and decide which attempts start now.
pub fn advance(
    steps: &[Step],
    status: &mut [StepStatus],
    attempts: &BTreeMap<String, Attempt>,
    now: jiff::Timestamp,
) -> Result<Decision, String> {
    let nodes: Vec<(&str, Vec<&str>)> = steps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let order = topological_order(&nodes)?;
    let by_name: BTreeMap<&str, &Step> = steps.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut d = Decision::default();
    for name in order {
        let step = by_name[name];
        let Some(i) = status.iter().position(|s| s.name == name) else {
            return Err(format!("the run has no status for step {name:?}"));
        };
        match status[i].phase {
            Phase::Running => {
                let outcome = attempts.get(name).cloned().unwrap_or(Attempt::Running);
                running(step, &mut status[i], outcome, now, &mut d);
            }
            Phase::Retrying => {
                let due = status[i]
                    .next_attempt_time
                    .as_ref()
                    .is_none_or(|t| t.0 <= now);
                if due {
                    start(&mut status[i], now, &mut d);
                } else if let Some(t) = &status[i].next_attempt_time {
                    d.wake_at = Some(d.wake_at.map_or(t.0, |w| w.min(t.0)));
                }
            }
            Phase::Pending => {
                let deps: Vec<Phase> = step
                    .depends_on
                    .iter()
                    .filter_map(|dep| status.iter().find(|s| &s.name == dep).map(|s| s.phase))
                    .collect();
                if !deps.iter().all(|p| p.is_final()) {
                    continue;
                }
                let satisfied = match step.when {
                    When::Succeeded => deps.iter().all(|p| *p == Phase::Succeeded),
                    When::Failed => deps.iter().all(|p| *p == Phase::Failed),
                    When::Completed => deps
                        .iter()
                        .all(|p| matches!(p, Phase::Succeeded | Phase::Failed)),
                };
                if satisfied {
                    start(&mut status[i], now, &mut d);
                } else {
                    let message = format!(
                        "skipped: it runs when {} {}",
                        step.depends_on.join(", "),
                        match step.when {
                            When::Succeeded => "succeeded",
                            When::Failed => "failed",
                            When::Completed => "finished",
                        }
                    );
                    finish(&mut status[i], Phase::Skipped, message, now, &mut d);
                }
            }
            Phase::Succeeded | Phase::Failed | Phase::Skipped | Phase::Cancelled => {}
        }
    }
    Ok(d)
}

fn start(s: &mut StepStatus, now: jiff::Timestamp, d: &mut Decision) {
    s.attempts += 1;
    s.phase = Phase::Running;
    s.next_attempt_time = None;
    if s.start_time.is_none() {
        s.start_time = Some(Time(now));
    }
    d.starts.push(Start {
        step: s.name.clone(),
        attempt: s.attempts,
    });
    d.transitions.push(Transition {
        step: s.name.clone(),
        phase: Phase::Running,
        message: format!("attempt {} started", s.attempts),
    });
}

fn finish(
    s: &mut StepStatus,
    phase: Phase,
    message: String,
    now: jiff::Timestamp,
    d: &mut Decision,
) {
    s.phase = phase;
    s.completion_time = Some(Time(now));
    s.message = Some(message.clone());
    d.transitions.push(Transition {
        step: s.name.clone(),
        phase,
        message,
    });
}

fn running(
    step: &Step,
    s: &mut StepStatus,
    outcome: Attempt,
    now: jiff::Timestamp,
    d: &mut Decision,
) {
    let why = match outcome {
        Attempt::Running => return,
        Attempt::Succeeded => {
            let message = format!("succeeded after {} attempt(s)", s.attempts);
            finish(s, Phase::Succeeded, message, now, d);
            return;
        }
        Attempt::Failed(why) => why,
        Attempt::Missing => "its Job disappeared".to_string(),
    };
    let allowed = 1 + step.retries.max(0);
    if s.attempts < allowed {
        let delay = backoff(s.attempts + 1);
        let at = now
            .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
            .unwrap_or(now);
        s.phase = Phase::Retrying;
        s.next_attempt_time = Some(Time(at));
        let message = format!(
            "attempt {} of {allowed} failed ({why}); retrying in {}s",
            s.attempts,
            delay.as_secs()
        );
        s.message = Some(message.clone());
        d.wake_at = Some(d.wake_at.map_or(at, |w| w.min(at)));
        d.transitions.push(Transition {
            step: s.name.clone(),
            phase: Phase::Retrying,
            message,
        });
    } else {
        let message = format!("failed after {} attempt(s): {why}", s.attempts);
        finish(s, Phase::Failed, message, now, d);
    }
}

/// The run's phase from its steps: running while any step is not finished (pending when
/// none started), then `Failed` if a step failed, `Cancelled` if one was cancelled, else
/// `Succeeded`.
pub fn run_phase(status: &[StepStatus]) -> Phase {
    if status.iter().any(|s| !s.phase.is_final()) {
        if status.iter().all(|s| s.phase == Phase::Pending) {
            return Phase::Pending;
        }
        return Phase::Running;
    }
    if status.iter().any(|s| s.phase == Phase::Failed) {
        Phase::Failed
    } else if status.iter().any(|s| s.phase == Phase::Cancelled) {
        Phase::Cancelled
    } else {
        Phase::Succeeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(yaml: &str) -> Vec<Step> {
        serde_yaml::from_str(yaml).expect("steps parse")
    }

    const DAG: &str = "
- {name: a, container: {image: x}}
- {name: b, dependsOn: [a], retries: 1, container: {image: x}}
- {name: c, dependsOn: [a], container: {image: x}}
- {name: d, dependsOn: [b, c], container: {image: x}}
- {name: on-failure, dependsOn: [b], when: Failed, container: {image: x}}
";

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn phases(status: &[StepStatus]) -> Vec<(String, Phase)> {
        status.iter().map(|s| (s.name.clone(), s.phase)).collect()
    }

    fn started(d: &Decision) -> Vec<(&str, i32)> {
        d.starts
            .iter()
            .map(|s| (s.step.as_str(), s.attempt))
            .collect()
    }

    #[test]
    fn steps_start_in_dependency_order() {
        let s = steps(DAG);
        let mut st = initial(&s, None);
        let d = advance(&s, &mut st, &BTreeMap::new(), t(0)).expect("valid");
        assert_eq!(started(&d), vec![("a", 1)]);
        assert_eq!(run_phase(&st), Phase::Running);
        // a still running: nothing new
        let d = advance(&s, &mut st, &BTreeMap::new(), t(1)).expect("valid");
        assert!(d.starts.is_empty());
        let done = BTreeMap::from([("a".to_string(), Attempt::Succeeded)]);
        let d = advance(&s, &mut st, &done, t(2)).expect("valid");
        assert_eq!(started(&d), vec![("b", 1), ("c", 1)]);
        let both = BTreeMap::from([
            ("b".to_string(), Attempt::Succeeded),
            ("c".to_string(), Attempt::Succeeded),
        ]);
        let d = advance(&s, &mut st, &both, t(3)).expect("valid");
        assert_eq!(started(&d), vec![("d", 1)]);
        assert_eq!(
            phases(&st)[4],
            ("on-failure".to_string(), Phase::Skipped),
            "the failure branch is skipped when b succeeded"
        );
        let last = BTreeMap::from([("d".to_string(), Attempt::Succeeded)]);
        advance(&s, &mut st, &last, t(4)).expect("valid");
        assert_eq!(run_phase(&st), Phase::Succeeded);
        assert_eq!(st[0].start_time, Some(Time(t(0))));
        assert_eq!(st[0].completion_time, Some(Time(t(2))));
    }

    #[test]
    fn failures_are_retried_with_backoff_then_fail_and_skip_downstream() {
        let s = steps(DAG);
        let mut st = initial(&s, None);
        advance(&s, &mut st, &BTreeMap::new(), t(0)).expect("valid");
        let a = BTreeMap::from([("a".to_string(), Attempt::Succeeded)]);
        advance(&s, &mut st, &a, t(1)).expect("valid");
        let b_fails = BTreeMap::from([
            ("b".to_string(), Attempt::Failed("exit code 3".into())),
            ("c".to_string(), Attempt::Succeeded),
        ]);
        let d = advance(&s, &mut st, &b_fails, t(10)).expect("valid");
        assert_eq!(st[1].phase, Phase::Retrying);
        assert_eq!(d.wake_at, Some(t(15)), "first retry after 5s");
        assert!(
            st[1]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("exit code 3"))
        );
        // not yet due
        let d = advance(&s, &mut st, &BTreeMap::new(), t(12)).expect("valid");
        assert!(d.starts.is_empty());
        assert_eq!(d.wake_at, Some(t(15)));
        let d = advance(&s, &mut st, &BTreeMap::new(), t(15)).expect("valid");
        assert_eq!(started(&d), vec![("b", 2)]);
        // the second attempt fails too: retries (1) used up
        let again = BTreeMap::from([("b".to_string(), Attempt::Failed("exit code 3".into()))]);
        let d = advance(&s, &mut st, &again, t(20)).expect("valid");
        assert_eq!(st[1].phase, Phase::Failed);
        assert_eq!(st[1].attempts, 2);
        assert_eq!(st[3].phase, Phase::Skipped, "d needs b");
        assert_eq!(
            started(&d),
            vec![("on-failure", 1)],
            "the failure branch runs"
        );
        let handled = BTreeMap::from([("on-failure".to_string(), Attempt::Succeeded)]);
        advance(&s, &mut st, &handled, t(21)).expect("valid");
        assert_eq!(run_phase(&st), Phase::Failed);
    }

    #[test]
    fn resumed_runs_keep_earlier_successes() {
        let s = steps(DAG);
        let old = vec![
            StepStatus {
                name: "a".into(),
                phase: Phase::Succeeded,
                job_name: Some("r1-a-1".into()),
                attempts: 1,
                ..Default::default()
            },
            StepStatus {
                name: "b".into(),
                phase: Phase::Failed,
                attempts: 2,
                ..Default::default()
            },
            StepStatus {
                name: "c".into(),
                phase: Phase::Succeeded,
                attempts: 1,
                ..Default::default()
            },
        ];
        let mut st = initial(&s, Some(("r1", &old)));
        assert_eq!(st[0].phase, Phase::Succeeded);
        assert_eq!(st[0].job_name.as_deref(), Some("r1-a-1"));
        assert_eq!(st[1].phase, Phase::Pending);
        assert_eq!(st[1].attempts, 0);
        let d = advance(&s, &mut st, &BTreeMap::new(), t(0)).expect("valid");
        assert_eq!(
            started(&d),
            vec![("b", 1)],
            "only the failed branch runs again"
        );
    }

    #[test]
    fn missing_jobs_count_as_failed_attempts_and_cycles_are_errors() {
        let s = steps("- {name: a, container: {image: x}}\n");
        let mut st = initial(&s, None);
        advance(&s, &mut st, &BTreeMap::new(), t(0)).expect("valid");
        let gone = BTreeMap::from([("a".to_string(), Attempt::Missing)]);
        advance(&s, &mut st, &gone, t(1)).expect("valid");
        assert_eq!(st[0].phase, Phase::Failed);
        assert!(
            st[0]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("disappeared"))
        );

        let cyc = steps(
            "- {name: a, dependsOn: [b], container: {image: x}}\n- {name: b, dependsOn: [a], container: {image: x}}\n",
        );
        let mut st = initial(&cyc, None);
        assert!(advance(&cyc, &mut st, &BTreeMap::new(), t(0)).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(2), Duration::from_secs(5));
        assert_eq!(backoff(3), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(20));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
