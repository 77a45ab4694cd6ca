//! A crawler's runs: the Jobs of its CronJob and its on-demand Jobs — which are active, which
//! failed (reported once each), starting the run of an on-demand token exactly once, and the
//! history limit of on-demand Jobs.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;

use kube::api::{DeleteParams, ListParams, Patch, PostParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use lakeform_api::crawler::Crawler;
use lakeform_api::datalake::DataLake;
use serde_json::json;

use super::super::context::Context;
use super::super::error::{Error, namespace};
use super::super::jobs::{JobState, job_event, job_state};
use crate::controller::apply::merge_params;
use crate::desired::crawler::{
    HISTORY_LIMIT, LABEL_CRAWLER, LABEL_TRIGGER, RUN_ANNOTATION, TRIGGER_EVENTS, belongs_to,
    label_value, run_job, run_job_name,
};

/// Annotation put on a failed Job once its `CrawlFailed` event was published.
pub const FAILURE_REPORTED: &str = "lakeform.dev/failure-reported";

/// The runs of one crawler, as listed at the start of a reconcile.
pub struct Runs {
    pub jobs: Vec<Job>,
}

impl Runs {
    /// List the crawler's Jobs.
    pub async fn list(crawler: &Crawler, ctx: &Context) -> Result<Runs, Error> {
        let ns = namespace(crawler)?;
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        let selector = format!("{LABEL_CRAWLER}={}", label_value(&crawler.name_any()));
        let jobs = api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items
            .into_iter()
            .filter(|j| belongs_to(j, crawler))
            .collect();
        Ok(Runs { jobs })
    }

    /// Names of the Jobs still running.
    pub fn active(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| job_state(j) == JobState::Active)
            .map(|j| j.name_any())
            .collect();
        names.sort();
        names
    }

    /// Publish a `CrawlFailed` Warning event for each failed Job not reported yet, and mark it
    /// so that it is reported once.
    pub async fn report_failures(&self, crawler: &Crawler, ctx: &Context) -> Result<(), Error> {
        let ns = namespace(crawler)?;
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        for job in &self.jobs {
            if job_state(job) != JobState::Failed
                || job.annotations().contains_key(FAILURE_REPORTED)
            {
                continue;
            }
            let name = job.name_any();
            // mark first: a failed publish loses one event rather than repeating it forever
            let patch = json!({"metadata": {"annotations": {FAILURE_REPORTED: "true"}}});
            match api
                .patch(&name, &merge_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => continue,
                Err(e) => return Err(e.into()),
            }
            job_event(
                ctx,
                crawler,
                &name,
                EventType::Warning,
                ("CrawlFailed", "Crawl"),
                failure_message(job, crawler),
            )
            .await;
        }
        Ok(())
    }

    /// The Job this crawler ran for `token`, if it is still there.
    fn for_token(&self, crawler: &Crawler, token: &str) -> Option<&Job> {
        let name = run_job_name(crawler, token);
        self.jobs.iter().find(|j| j.name_any() == name)
    }

    /// Delete finished on-demand and event-batch Jobs beyond the history limit of each kind,
    /// oldest first (the CronJob controller does the same for scheduled ones).
    pub async fn prune_on_demand(&self, crawler: &Crawler, ctx: &Context) -> Result<(), Error> {
        let ns = namespace(crawler)?;
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        for trigger in ["on-demand", TRIGGER_EVENTS] {
            let mut finished: Vec<&Job> = self
                .jobs
                .iter()
                .filter(|j| j.labels().get(LABEL_TRIGGER).map(String::as_str) == Some(trigger))
                .filter(|j| job_state(j) != JobState::Active)
                .collect();
            finished.sort_by_key(|j| j.creation_timestamp().map(|t| t.0));
            let excess = finished.len().saturating_sub(HISTORY_LIMIT as usize);
            for job in finished.into_iter().take(excess) {
                match api
                    .delete(&job.name_any(), &DeleteParams::background())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

fn failure_message(job: &Job, crawler: &Crawler) -> String {
    let name = job.name_any();
    let reason = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed"))
        .map(|c| {
            format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let report = crawler
        .status
        .as_ref()
        .and_then(|s| s.last_run.as_ref())
        .filter(|r| r.job_name.as_deref() == Some(name.as_str()))
        .and_then(|r| r.message.clone());
    match report {
        Some(m) => format!("crawl Job {name} failed ({reason}); the run reported: {m}"),
        None => format!("crawl Job {name} failed ({reason}); see its pod's log"),
    }
}

/// What the on-demand step did.
#[derive(Debug, PartialEq, Eq)]
pub enum OnDemand {
    /// The token's Job was created now (or found created by an earlier attempt).
    Started { job: String, created: bool },
    /// Another run is active; the token's run starts after it.
    Waiting,
}

/// The on-demand token of `crawler` that has not started a run yet.
pub fn pending_token(crawler: &Crawler) -> Option<String> {
    let token = crawler
        .annotations()
        .get(RUN_ANNOTATION)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())?;
    let done = crawler
        .status
        .as_ref()
        .and_then(|s| s.last_run_token.as_deref());
    (done != Some(token.as_str())).then_some(token)
}

/// Start the run of `token`: create its Job unless it exists (created before the status
/// write of an earlier attempt was lost) or another run is active.
pub async fn start_on_demand(
    crawler: &Crawler,
    lake: &DataLake,
    runs: &Runs,
    token: &str,
    image: &str,
    ctx: &Context,
) -> Result<OnDemand, Error> {
    if let Some(job) = runs.for_token(crawler, token) {
        return Ok(OnDemand::Started {
            job: job.name_any(),
            created: false,
        });
    }
    if !runs.active().is_empty() {
        return Ok(OnDemand::Waiting);
    }
    let ns = namespace(crawler)?;
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = run_job(crawler, lake, token, image);
    let name = job.name_any();
    let created = match api.create(&PostParams::default(), &job).await {
        Ok(_) => true,
        Err(kube::Error::Api(s)) if s.code == 409 => false,
        Err(e) => return Err(e.into()),
    };
    Ok(OnDemand::Started { job: name, created })
}

/// Labels → counts, for log lines.
pub fn summary(runs: &Runs) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for j in &runs.jobs {
        let k = match job_state(j) {
            JobState::Active => "active",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crawler(extra_meta: &str, status: &str) -> Crawler {
        let doc = format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Crawler\nmetadata: {{name: c, namespace: n, uid: u-1{extra_meta}}}\nspec:\n  lakeRef: {{name: l}}\n  database: d\n  targets: [{{zone: raw}}]\n{status}"
        );
        serde_yaml::from_str(&doc).expect("fixture parses")
    }

    fn job(yaml: &str) -> Job {
        serde_yaml::from_str(yaml).expect("job parses")
    }

    #[test]
    fn ownership_by_crawler_or_its_cronjob() {
        let c = crawler("", "");
        let own = job(
            "metadata: {name: a, ownerReferences: [{apiVersion: lakeform.dev/v1alpha1, kind: Crawler, name: c, uid: u-1}]}\n",
        );
        let cron = job(
            "metadata: {name: b, ownerReferences: [{apiVersion: batch/v1, kind: CronJob, name: c-crawl, uid: x}]}\n",
        );
        let old = job(
            "metadata: {name: c, ownerReferences: [{apiVersion: lakeform.dev/v1alpha1, kind: Crawler, name: c, uid: u-0}]}\n",
        );
        let other = job(
            "metadata: {name: d, ownerReferences: [{apiVersion: batch/v1, kind: CronJob, name: d-crawl, uid: y}]}\n",
        );
        assert!(belongs_to(&own, &c));
        assert!(belongs_to(&cron, &c));
        assert!(
            !belongs_to(&old, &c),
            "a Job of a deleted crawler of the same name"
        );
        assert!(!belongs_to(&other, &c));
    }

    #[test]
    fn a_token_is_pending_until_recorded() {
        assert_eq!(pending_token(&crawler("", "")), None);
        let annotated = crawler(", annotations: {lakeform.dev/run: t1}", "");
        assert_eq!(pending_token(&annotated), Some("t1".into()));
        let done = crawler(
            ", annotations: {lakeform.dev/run: t1}",
            "status: {lastRunToken: t1}\n",
        );
        assert_eq!(pending_token(&done), None);
        let next = crawler(
            ", annotations: {lakeform.dev/run: t2}",
            "status: {lastRunToken: t1}\n",
        );
        assert_eq!(pending_token(&next), Some("t2".into()));
        let blank = crawler(", annotations: {lakeform.dev/run: ' '}", "");
        assert_eq!(pending_token(&blank), None);
    }

    #[test]
    fn failure_message_quotes_the_run_report_of_that_job() {
        let c = crawler(
            "",
            "status: {lastRun: {jobName: c-run-1, result: Failed, message: 'catalog unreachable'}}\n",
        );
        let j = job(
            "metadata: {name: c-run-1}\nstatus: {conditions: [{type: Failed, status: 'True', reason: BackoffLimitExceeded, message: Job has reached the specified backoff limit}]}\n",
        );
        let m = failure_message(&j, &c);
        assert!(
            m.contains("c-run-1") && m.contains("catalog unreachable"),
            "{m}"
        );
        assert!(m.contains("BackoffLimitExceeded"), "{m}");
        let other = job("metadata: {name: c-crawl-29}\n");
        assert!(failure_message(&other, &c).contains("see its pod's log"));
    }
}
