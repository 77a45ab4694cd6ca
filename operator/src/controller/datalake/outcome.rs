//! How a DataLake reconcile ends: every stage that could not finish leaves a [`Stop`] (a
//! [`Refusal`] of one part of the lake), and [`conclude`] turns them — in one place — into
//! the parts' `Ready=False` conditions, Warning events, the reconcile metric, the status
//! write and the next action.
//!
//! Refusals keep the shared meaning of [`Retry`]: `OnChange` waits for a change of the lake;
//! `After` may recover by itself. For a `Refused` stop the DataLake retries with its
//! exponential backoff (2 s, 4 s, … 5 min) instead of the refusal's interval; a `Starting`
//! stop (pods coming up) looks again after its interval and is not a warning.

use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use lakeform_api::datalake::DataLake;

use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, Refusal, Retry};
use super::status::StatusBuilder;
use crate::desired::lake::Part;

/// The interval refusals that may recover carry; the lake's backoff replaces it.
pub const RETRY: Duration = Duration::from_secs(2);

/// Whether a stop is a wait or a refusal the user should hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something is starting: no Warning event, counted as `waiting`.
    Starting,
    /// The part is refused: a Warning event each reconcile.
    Refused,
    /// The spec is invalid: a Warning event when the status changed.
    Invalid,
}

/// A part of the lake that could not be made Ready this time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    /// Which condition it sets.
    pub part: Part,
    /// Reason, message and when to look again.
    pub refusal: Refusal,
    /// The event's action (`ConnectStorage`, `ReconcileCatalog`, …).
    pub action: &'static str,
    /// Wait, refusal or invalid spec.
    pub kind: Kind,
}

impl Stop {
    /// A refusal of `part`, announced with `action`.
    pub fn refused(part: Part, action: &'static str, refusal: Refusal) -> Self {
        Stop {
            part,
            refusal,
            action,
            kind: Kind::Refused,
        }
    }

    /// `part` is starting; look again after `after`.
    pub fn starting(part: Part, reason: &'static str, message: String, after: Duration) -> Self {
        Stop {
            part,
            refusal: Refusal::new(reason, message).retry_after(after),
            action: "Wait",
            kind: Kind::Starting,
        }
    }
}

/// What to do after a reconcile, decided from its stops alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Everything is Ready: resync later, forget the backoff.
    Ready,
    /// Only waits: look again after the shortest.
    Waiting(Duration),
    /// A refusal that may recover: retry with backoff. The reason is the metric's result.
    Backoff(&'static str),
    /// Only a change can help.
    AwaitChange(&'static str),
}

/// The next step after `stops`: refusals win over waits; the first refusal names the result;
/// any refusal that may recover makes the lake retry.
pub fn next(stops: &[Stop]) -> Next {
    let refused: Vec<&Stop> = stops.iter().filter(|s| s.kind != Kind::Starting).collect();
    if let Some(first) = refused.first() {
        let reason = first.refusal.reason;
        return match refused
            .iter()
            .any(|s| matches!(s.refusal.retry, Retry::After(_)))
        {
            true => Next::Backoff(reason),
            false => Next::AwaitChange(reason),
        };
    }
    let waits = stops.iter().filter_map(|s| match s.refusal.retry {
        Retry::After(d) => Some(d),
        Retry::OnChange => None,
    });
    match waits.min() {
        Some(d) => Next::Waiting(d),
        None if stops.is_empty() => Next::Ready,
        None => Next::AwaitChange("waiting"),
    }
}

/// Set each stop's condition, write the status, tell the user and count the result once, and
/// return the next action.
pub async fn conclude(
    lake: &DataLake,
    ctx: &Context,
    mut status: StatusBuilder,
    stops: Vec<Stop>,
) -> Result<Action, Error> {
    for stop in &stops {
        status.part(
            stop.part,
            false,
            stop.refusal.reason,
            stop.refusal.message.clone(),
        );
    }
    let changed = status
        .write(lake, ctx)
        .await
        .during(|| format!("writing the status of DataLake {}", key(lake)))?;
    let reference = lake.object_ref(&());
    // The first refusal is the reconcile's result (counted once); every announced one is an
    // event.
    let first = stops.iter().position(|s| s.kind != Kind::Starting);
    for (i, stop) in stops.iter().enumerate() {
        let announce = match stop.kind {
            Kind::Starting => false,
            Kind::Refused => true,
            Kind::Invalid => changed,
        };
        let r = &stop.refusal;
        match (announce, Some(i) == first) {
            (true, true) => r.publish(ctx, &reference, "DataLake", stop.action).await,
            (true, false) => {
                let warning = kube::runtime::events::EventType::Warning;
                ctx.event(
                    &reference,
                    warning,
                    r.reason,
                    stop.action,
                    r.message.clone(),
                )
                .await
            }
            (false, true) => ctx.metrics.reconciled("DataLake", r.reason),
            (false, false) => {}
        }
    }
    let k = key(lake);
    Ok(match next(&stops) {
        Next::Ready => {
            ctx.reset_backoff(&k);
            ctx.metrics.reconciled("DataLake", "ok");
            Action::requeue(ctx.resync)
        }
        Next::Waiting(after) => {
            ctx.metrics.reconciled("DataLake", "waiting");
            Action::requeue(after)
        }
        Next::Backoff(_) => Action::requeue(ctx.backoff(&k)),
        // Only refusals that wait for a change: the first one's own action.
        Next::AwaitChange(_) => first
            .map(|i| stops[i].refusal.action())
            .unwrap_or_else(Action::await_change),
    })
}

/// `namespace/name` of a lake (backoff key, logs).
pub fn key(lake: &DataLake) -> String {
    format!(
        "{}/{}",
        lake.namespace().unwrap_or_default(),
        lake.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(reason: &'static str, retry: bool) -> Stop {
        let r = Refusal::new(reason, "m");
        Stop::refused(
            Part::Storage,
            "Test",
            if retry { r.retry_after(RETRY) } else { r },
        )
    }

    fn starting(secs: u64) -> Stop {
        Stop::starting(
            Part::Storage,
            "Starting",
            "m".into(),
            Duration::from_secs(secs),
        )
    }

    #[test]
    fn stops_combine_worst_first() {
        let s = Duration::from_secs;
        assert_eq!(next(&[]), Next::Ready);
        assert_eq!(next(&[starting(5)]), Next::Waiting(s(5)));
        assert_eq!(next(&[starting(9), starting(5)]), Next::Waiting(s(5)));
        assert_eq!(
            next(&[starting(1), refused("X", false)]),
            Next::AwaitChange("X")
        );
        assert_eq!(
            next(&[refused("A", false), refused("B", true)]),
            Next::Backoff("A")
        );
    }
}
