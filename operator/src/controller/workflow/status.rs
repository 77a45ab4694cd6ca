//! Workflow status: `Ready`, `lastRun`, `activeRuns`, `nextScheduleTimes` and the tokens
//! acted on, and the events of the pass. Written with server-side apply of the whole status
//! under the one field manager ([`FIELD_MANAGER`]) and only when something differs, so a quiet
//! resync writes nothing; a field left out (no active run any more) is removed because we own
//! it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::{
    CONDITION_READY, FIELD_MANAGER, condition, find_condition, keep_transition_times, set_condition,
};
use lakeform_api::workflow::{RunSummary, Workflow, WorkflowStatus};
use lakeform_api::workflow_run::{Phase, WorkflowRun};
use serde_json::json;

use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, Refusal, namespace};
use super::triggers;

/// The action of every Workflow event.
const ACTION: &str = "Trigger";

/// Accumulated status, and the events to publish after writing it.
pub struct Status {
    status: WorkflowStatus,
    events: Vec<(EventType, &'static str, String)>,
    /// The refusal of this pass, and whether its verdict is new (then it is published).
    refusal: Option<(Refusal, bool)>,
    generation: Option<i64>,
    now: Time,
}

impl Status {
    /// The status last written, with `activeRuns` and `lastRun` from `runs` (oldest first).
    pub fn new(wf: &Workflow, runs: &[WorkflowRun], now: jiff::Timestamp) -> Self {
        let mut status = wf.status.clone().unwrap_or_default();
        status.active_runs = triggers::active(runs);
        status.last_run = runs.last().map(|r| {
            let s = r.status.clone().unwrap_or_default();
            RunSummary {
                name: r.name_any(),
                phase: format!("{:?}", s.phase.unwrap_or(Phase::Pending)),
                start_time: s.start_time,
                completion_time: s.completion_time,
            }
        });
        Status {
            status,
            events: Vec::new(),
            refusal: None,
            generation: wf.metadata.generation,
            now: Time(now),
        }
    }

    /// The `Ready` verdict.
    pub fn ready(&mut self, ok: bool, reason: &str, message: String) {
        self.condition(CONDITION_READY, ok, reason, message);
    }

    /// Any other condition (`UpToDate` of a blueprint instance).
    pub fn condition(&mut self, type_: &str, ok: bool, reason: &str, message: String) {
        set_condition(
            &mut self.status.conditions,
            condition(
                type_,
                ok,
                reason,
                message,
                self.generation,
                self.now.clone(),
            ),
        );
    }

    /// Whether condition `type_` already has `reason` (a verdict that is not news).
    pub fn has(&self, type_: &str, reason: &str) -> bool {
        find_condition(&self.status.conditions, type_).is_some_and(|c| c.reason == reason)
    }

    /// `spec.paused`: nothing fires.
    pub fn paused(&mut self) {
        self.ready(false, "Paused", "spec.paused: no trigger fires".into());
    }

    /// `Ready=False` with the refusal's reason and message; its Warning event is published
    /// when that verdict is new.
    pub fn refuse(&mut self, refusal: Refusal) {
        let known = matches!(
            find_condition(&self.status.conditions, CONDITION_READY),
            Some(c) if c.reason == refusal.reason && c.message == refusal.message
        );
        self.ready(false, refusal.reason, refusal.message.clone());
        self.refusal = Some((refusal, !known));
    }

    /// An event to publish after the write.
    pub fn event(&mut self, type_: EventType, reason: &'static str, note: String) {
        self.events.push((type_, reason, note));
    }

    /// The status being built (for the fields the trigger stage records).
    pub fn fields(&mut self) -> &mut WorkflowStatus {
        &mut self.status
    }

    /// Write the status if it differs from the live one, then publish the events (and the
    /// refusal: its event when new, its reason as the reconcile's metric result).
    pub async fn write(mut self, wf: &Workflow, ctx: &Context) -> Result<(), Error> {
        self.status.observed_generation = self.generation;
        if wf.status.as_ref() != Some(&self.status) {
            self.apply(wf, ctx).await?;
        }
        let reference = wf.object_ref(&());
        for (type_, reason, note) in self.events {
            ctx.event(&reference, type_, reason, ACTION, note).await;
        }
        match self.refusal {
            Some((refusal, true)) => refusal.publish(ctx, &reference, "Workflow", ACTION).await,
            Some((refusal, false)) => ctx.metrics.reconciled("Workflow", refusal.reason),
            None => {}
        }
        Ok(())
    }

    async fn apply(&mut self, wf: &Workflow, ctx: &Context) -> Result<(), Error> {
        let name = wf.name_any();
        let api: Api<Workflow> = Api::namespaced(ctx.client.clone(), &namespace(wf)?);
        // The cached object may predate our own last write (the watch lags the write):
        // compare with the live status, keeping transition times that still hold.
        let live = api
            .get_opt(&name)
            .await
            .during(|| format!("reading Workflow {name}"))?
            .and_then(|w| w.status);
        if let Some(l) = &live {
            keep_transition_times(&mut self.status.conditions, &l.conditions);
        }
        if live.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let patch = json!({
            "apiVersion": Workflow::api_version(&()),
            "kind": Workflow::kind(&()),
            "status": self.status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .during(|| format!("writing the status of Workflow {name}"))?;
        Ok(())
    }
}
