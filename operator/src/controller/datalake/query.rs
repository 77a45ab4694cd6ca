//! The query-engine stage, after the apply: Trino's coordinator must have an available
//! replica that has finished starting (`engine::trino_started`); record `QueryEngineReady` and
//! the endpoint.

use lakeform_api::datalake::DataLake;

use super::super::context::Context;
use super::super::error::{Error, Refusal, namespace};
use super::STARTING_RECHECK;
use super::objects::deployment_available;
use super::outcome::Stop;
use super::status::StatusBuilder;
use crate::desired::lake::{Invalid, Part};
use crate::desired::{trino, trino_auth};

/// Check Trino (when the spec asks for one); record `QueryEngineReady` and the endpoint.
pub async fn reconcile(
    lake: &DataLake,
    ctx: &Context,
    invalid: &Invalid,
    status: &mut StatusBuilder,
) -> Result<Option<Stop>, Error> {
    if let Some(message) = invalid.get(Part::QueryEngine) {
        let refusal = Refusal::new("InvalidSpec", message);
        return Ok(Some(Stop::refused(
            Part::QueryEngine,
            "BuildQueryEngine",
            refusal,
        )));
    }
    let wanted = lake
        .spec
        .query_engine
        .as_ref()
        .is_some_and(|q| q.trino.is_some());
    if !wanted {
        return Ok(None);
    }
    let ns = namespace(lake)?;
    status.trino_endpoint(&trino_auth::https_uri(lake));
    let coordinator = trino::name(lake, trino::Role::Coordinator);
    if deployment_available(ctx, &ns, &coordinator).await? < 1 {
        let message =
            format!("Trino coordinator Deployment {coordinator} has no available replica yet");
        return Ok(Some(starting(message)));
    }
    // Available pods may still be loading catalogs: Trino refuses queries until it says so.
    let started = crate::engine::trino_started(&trino::uri(lake)).await;
    if started != Ok(true) {
        let why = started
            .err()
            .unwrap_or_else(|| "it is still initializing".into());
        let message =
            format!("Trino coordinator {coordinator} is not accepting queries yet: {why}");
        return Ok(Some(starting(message)));
    }
    status.query_engine(
        true,
        "QueryEngineReady",
        format!("Trino coordinator available at {}", trino::uri(lake)),
    );
    Ok(None)
}

/// Trino is starting: `QueryEngineStarting`, checked again soon.
fn starting(message: String) -> Stop {
    Stop::starting(
        Part::QueryEngine,
        "QueryEngineStarting",
        message,
        STARTING_RECHECK,
    )
}
