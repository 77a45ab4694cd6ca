//! `event` triggers: route the trigger's zone bucket and prefix to the operator's event
//! receiver and keep one batcher per trigger (the crawler's machinery, [`Owner::Workflow`]);
//! start the run of a batch the batcher handed over.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use lakeform_api::datalake::DataLake;
use lakeform_api::workflow::{EventTrigger, Workflow};
use lakeform_worker::crawl::listing::Excludes;

use super::super::context::Context;
use super::super::error::{Error, Refusal};
use super::super::lake::s3_connection;
use super::super::notifications::{
    self as events, Owner, Plan, Source, Subscriptions, workflow_key_prefix,
};

/// What the Workflow controller needs for event triggers.
pub struct Events {
    pub subscriptions: Arc<Subscriptions>,
    /// The MinIO webhook target id; `None` when the operator runs no event receiver.
    pub target: Option<String>,
    /// Image of step Jobs (part of a batcher's identity).
    pub image: String,
}

/// How often a workflow whose event triggers cannot listen looks again.
const RECHECK: Duration = Duration::from_secs(15);

/// Why event triggers cannot listen (`EventsUnavailable`, looked at again after [`RECHECK`]).
fn unavailable(message: String) -> Refusal {
    Refusal::new("EventsUnavailable", message).retry_after(RECHECK)
}

/// What the trigger `name` listens to: its zone's bucket, under its prefix.
fn sources(lake: &DataLake, name: &str, e: &EventTrigger) -> Result<Vec<Source>, Refusal> {
    let Some(bucket) = lake.zone_bucket(&e.zone) else {
        return Err(unavailable(format!(
            "trigger {name}: zone {} is not a zone of DataLake {}",
            e.zone,
            lake.name_any()
        )));
    };
    let excludes = Excludes::new(&[]).map_err(|err| unavailable(err.to_string()))?;
    Ok(vec![Source {
        bucket,
        prefix: e.prefix.clone(),
        excludes,
    }])
}

/// Route and batch every `event` trigger of `wf`; stop batchers of triggers that are gone.
/// `Ok(Ok(text))` says what is listened to (`None`: no event trigger), `Ok(Err(refusal))` why
/// it cannot be.
pub async fn listen(
    wf: &Workflow,
    lake: &DataLake,
    events: &Events,
    ctx: &Arc<Context>,
) -> Result<Result<Option<String>, Refusal>, Error> {
    let prefix = workflow_key_prefix(wf);
    let triggers: Vec<_> = wf
        .spec
        .triggers
        .iter()
        .filter_map(|t| t.event.as_ref().map(|e| (t.name.clone(), e)))
        .collect();
    if triggers.is_empty() {
        events.subscriptions.stop_others(&prefix, &[]);
        return Ok(Ok(None));
    }
    let Some(target) = &events.target else {
        events.subscriptions.stop_others(&prefix, &[]);
        return Ok(Err(unavailable(
            "event triggers need the operator's event receiver (lakeform run --events-address); none is configured"
                .into(),
        )));
    };
    let conn = match s3_connection(lake, &ctx.client).await? {
        Ok(c) => c,
        Err(refusal) => {
            events.subscriptions.stop_others(&prefix, &[]);
            let why = refusal.message;
            return Ok(Err(unavailable(format!(
                "cannot route bucket notifications: {why}"
            ))));
        }
    };
    let mut keep = Vec::new();
    let mut described = Vec::new();
    for (name, e) in triggers {
        let sources = match sources(lake, &name, e) {
            Ok(s) => s,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let owner = Owner::Workflow {
            workflow: wf.clone(),
            trigger: name.clone(),
        };
        described.push(format!(
            "{name}: {}/{} in batches of {} key(s) or {}s",
            sources[0].bucket, e.prefix, e.batch_size, e.batch_window_seconds
        ));
        if let Err(err) = events::route(&owner, &conn, &sources, target).await {
            events.subscriptions.stop_others(&prefix, &[]);
            return Ok(Err(unavailable(format!(
                "cannot route bucket notifications to the operator: {err}"
            ))));
        }
        keep.push(owner.key());
        events.subscriptions.ensure(
            Plan::new(
                owner,
                lake.clone(),
                sources,
                e.batch_size,
                e.batch_window_seconds,
                events.image.clone(),
            ),
            ctx.clone(),
        );
    }
    events.subscriptions.stop_others(&prefix, &keep);
    Ok(Ok(Some(format!("event triggers {}", described.join("; ")))))
}
