//! Crawler status: the `Ready` and `Running` conditions, `observedGeneration` and
//! `lastRunToken`. Written with server-side apply under its own field manager and only when
//! something differs, so a quiet resync writes nothing and the fields the crawl itself writes
//! (`lastRun`, `tables`, `tableCount`) are never touched here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use lakeform_api::common::{
    CONDITION_READY, Conditions, condition, keep_transition_times, set_condition,
};
use lakeform_api::crawler::Crawler;
use serde_json::json;

use super::super::context::Context;

/// Field manager of the controller's status writes (the crawl writes as `lakeform`).
pub const FIELD_MANAGER: &str = "lakeform-crawler-controller";
/// Condition type that is true while a run's Job is active.
pub const RUNNING: &str = "Running";
/// Condition type present while `spec.paused` is true.
pub const PAUSED: &str = "Paused";

/// The fields of the status this controller owns.
#[derive(Debug, Clone, PartialEq, Default)]
struct Owned {
    conditions: Conditions,
    observed_generation: Option<i64>,
    last_run_token: Option<String>,
}

impl Owned {
    fn of(crawler: &Crawler) -> Self {
        let s = crawler.status.clone().unwrap_or_default();
        Owned {
            conditions: s.conditions,
            observed_generation: s.observed_generation,
            last_run_token: s.last_run_token,
        }
    }
}

/// Accumulates the new status during a reconcile.
pub struct StatusBuilder {
    owned: Owned,
    generation: Option<i64>,
    now: Time,
}

impl StatusBuilder {
    pub fn new(crawler: &Crawler) -> Self {
        StatusBuilder {
            owned: Owned::of(crawler),
            generation: crawler.metadata.generation,
            now: Time(jiff::Timestamp::now()),
        }
    }

    fn set(&mut self, type_: &str, ok: bool, reason: &str, message: String) {
        set_condition(
            &mut self.owned.conditions,
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

    /// The `Ready` verdict.
    pub fn ready(&mut self, ok: bool, reason: &str, message: String) {
        self.set(CONDITION_READY, ok, reason, message);
    }

    /// `Running`: true while one of `active` (Job names) runs.
    pub fn running(&mut self, active: &[String], waiting: Option<&str>) {
        if active.is_empty() {
            self.set(RUNNING, false, "Idle", "no crawl is running".into());
        } else {
            let mut message = format!("Job {} is running", active.join(", "));
            if let Some(token) = waiting {
                message.push_str(&format!(
                    "; the on-demand run {token:?} starts when it is done"
                ));
            }
            self.set(RUNNING, true, "JobActive", message);
        }
    }

    /// The on-demand run of `token` has started (or was found already started).
    pub fn run_token(&mut self, token: &str) {
        self.owned.last_run_token = Some(token.to_string());
    }

    /// Reconciliation is paused.
    pub fn paused(&mut self) {
        self.set(
            PAUSED,
            true,
            "ReconciliationPaused",
            "spec.paused is true: the schedule is suspended and no run starts".into(),
        );
    }

    /// The current `Ready` condition, as (status, reason).
    #[cfg(test)]
    fn ready_condition(&self) -> Option<(String, String)> {
        lakeform_api::common::find_condition(&self.owned.conditions, CONDITION_READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    fn finish(&mut self, crawler: &Crawler) -> bool {
        if !crawler.spec.paused {
            self.owned.conditions.retain(|c| c.type_ != PAUSED);
        }
        self.owned.observed_generation = self.generation;
        self.owned != Owned::of(crawler)
    }

    /// Write the status if it differs from the live one. Returns true when a write was sent.
    pub async fn write(mut self, crawler: &Crawler, ctx: &Context) -> Result<bool, kube::Error> {
        if !self.finish(crawler) {
            return Ok(false);
        }
        let api: Api<Crawler> =
            Api::namespaced(ctx.client.clone(), &crawler.namespace().unwrap_or_default());
        // The cached object may predate our own last write (the watch lags the write): compare
        // with the live status before writing, keeping transition times that still hold.
        if let Some(live) = api.get_opt(&crawler.name_any()).await? {
            let live = Owned::of(&live);
            keep_transition_times(&mut self.owned.conditions, &live.conditions);
            if self.owned == live {
                return Ok(false);
            }
        }
        let mut status = json!({
            "conditions": self.owned.conditions,
            "observedGeneration": self.owned.observed_generation,
        });
        if let Some(token) = &self.owned.last_run_token {
            status["lastRunToken"] = json!(token);
        }
        let patch = json!({
            "apiVersion": "lakeform.dev/v1alpha1",
            "kind": "Crawler",
            "status": status,
        });
        api.patch_status(
            &crawler.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crawler(status: &str) -> Crawler {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Crawler\nmetadata: {{name: c, namespace: n, generation: 2}}\nspec:\n  lakeRef: {{name: l}}\n  database: d\n  targets: [{{zone: raw}}]\n{status}"
        );
        serde_yaml::from_str(&doc).expect("fixture parses")
    }

    #[test]
    fn unchanged_status_is_not_written() {
        let first = crawler("");
        let mut b = StatusBuilder::new(&first);
        b.ready(true, "OnDemand", "runs on demand".into());
        b.running(&[], None);
        assert!(b.finish(&first));
        assert_eq!(
            b.ready_condition(),
            Some(("True".into(), "OnDemand".into()))
        );
        // the written status, plus fields of the crawl, read back
        let mut live = first.clone();
        let mut status = live.status.clone().unwrap_or_default();
        status.conditions = b.owned.conditions.clone();
        status.observed_generation = Some(2);
        status.table_count = Some(4);
        live.status = Some(status);
        let mut again = StatusBuilder::new(&live);
        again.ready(true, "OnDemand", "runs on demand".into());
        again.running(&[], None);
        assert!(!again.finish(&live), "same verdict: nothing to write");
        let mut token = StatusBuilder::new(&live);
        token.run_token("t1");
        assert!(token.finish(&live), "a new token is written");
    }

    #[test]
    fn running_names_the_active_jobs() {
        let c = crawler("");
        let mut b = StatusBuilder::new(&c);
        b.running(&["c-run-1".into()], Some("t2"));
        let running = b
            .owned
            .conditions
            .iter()
            .find(|c| c.type_ == RUNNING)
            .expect("Running");
        assert_eq!(running.status, "True");
        assert!(running.message.contains("c-run-1") && running.message.contains("t2"));
    }
}
