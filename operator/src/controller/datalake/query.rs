//! The query-engine stage: Trino coordinator and workers wired to the lake's catalog and
//! storage; removed again when the spec drops it.

use kube::ResourceExt;
use lakeform_api::datalake::DataLake;

use super::super::apply::apply;
use super::super::context::Context;
use super::status::StatusBuilder;
use super::storage::Outcome;
use super::{Error, STARTING_RECHECK, objects};
use crate::desired::connection::LakeEndpoints;
use crate::desired::trino;

/// Converge Trino; record `QueryEngineReady` and the endpoint.
pub async fn reconcile(
    lake: &DataLake,
    ctx: &Context,
    status: &mut StatusBuilder,
    endpoints: &LakeEndpoints,
) -> Result<Outcome, Error> {
    let built = match trino::objects(lake, endpoints) {
        Ok(b) => b,
        Err(e) => {
            status.query_engine(false, "InvalidSpec", e.to_string());
            return Ok(Outcome::Failed {
                reason: "InvalidSpec",
                retry: false,
            });
        }
    };
    let Some(objs) = built else {
        for component in [trino::COORDINATOR_COMPONENT, trino::WORKER_COMPONENT] {
            objects::prune(lake, ctx, component, &[]).await?;
        }
        return Ok(Outcome::Ready);
    };
    let ns = lake.namespace().ok_or(Error::NoNamespace)?;
    for cm in objs.config_maps {
        apply(&ctx.client, cm).await?;
    }
    apply(&ctx.client, objs.service).await?;
    for d in objs.deployments {
        apply(&ctx.client, d).await?;
    }
    status.trino_endpoint(&trino::uri(lake));
    let coordinator = trino::name(lake, trino::Role::Coordinator);
    let available = objects::deployment_available(ctx, &ns, &coordinator).await?;
    if available < 1 {
        status.query_engine(
            false,
            "QueryEngineStarting",
            format!("Trino coordinator Deployment {coordinator} has no available replica yet"),
        );
        return Ok(Outcome::Waiting(STARTING_RECHECK));
    }
    status.query_engine(
        true,
        "QueryEngineReady",
        format!("Trino coordinator available at {}", trino::uri(lake)),
    );
    Ok(Outcome::Ready)
}
