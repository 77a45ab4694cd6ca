//! Managed catalog, after the apply: wait for the server's Deployment to have an available
//! replica. Nessie is then ready (its warehouse is configuration, desired/nessie.rs); Lakekeeper
//! is bootstrapped and given the lake's warehouse through its management API
//! (`catalog::lakekeeper`; Lakekeeper v0.9.5, see desired/lakekeeper.rs).

use lakeform_api::datalake::{CatalogServer, DataLake, ManagedCatalog};

use super::super::context::Context;
use super::super::error::{Error, Refusal, namespace};
use super::objects::deployment_available;
use super::outcome::{RETRY, Stop};
use super::{STARTING_RECHECK, storage};
use crate::catalog::lakekeeper::bootstrap_with_warehouse;
use crate::desired::connection::{LakeEndpoints, warehouse_bucket};
use crate::desired::lake::{Invalid, Part};
use crate::desired::{lakekeeper, nessie};

fn refused(refusal: Refusal) -> Stop {
    Stop::refused(Part::Catalog, "ConnectCatalog", refusal)
}

/// Wait for the catalog server; bootstrap Lakekeeper and create its warehouse (both
/// idempotent). Nessie has its warehouse in its configuration: nothing to call.
pub async fn ensure(
    lake: &DataLake,
    spec: &ManagedCatalog,
    ctx: &Context,
    invalid: &Invalid,
) -> Result<Result<(), Stop>, Error> {
    if let Some(message) = invalid.get(Part::Catalog) {
        return Ok(Err(refused(Refusal::new("InvalidSpec", message))));
    }
    let ns = namespace(lake)?;
    let (server, name) = match spec.server {
        CatalogServer::Nessie => ("Nessie", nessie::name(lake)),
        CatalogServer::Lakekeeper => ("Lakekeeper", lakekeeper::name(lake)),
    };
    if deployment_available(ctx, &ns, &name).await? < 1 {
        let message = format!("{server} Deployment {name}: no available replica yet");
        let stop = Stop::starting(Part::Catalog, "CatalogStarting", message, STARTING_RECHECK);
        return Ok(Err(stop));
    }
    match spec.server {
        CatalogServer::Nessie => Ok(Ok(())),
        CatalogServer::Lakekeeper => bootstrap(lake, ctx, &ns).await,
    }
}

/// Bootstrap Lakekeeper and create the lake's warehouse with the storage credentials.
async fn bootstrap(lake: &DataLake, ctx: &Context, ns: &str) -> Result<Result<(), Stop>, Error> {
    let endpoints = LakeEndpoints::for_lake(lake);
    let c = &endpoints.credentials;
    let keys = (
        c.access_key_id_key.as_str(),
        c.secret_access_key_key.as_str(),
    );
    let (access, secret) = match storage::credentials(ctx, ns, &c.secret_name, keys).await? {
        Ok(pair) => pair,
        Err(refusal) => return Ok(Err(refused(refusal))),
    };
    let warehouse = lakekeeper::warehouse_request(
        &lakekeeper::warehouse_name(lake),
        &warehouse_bucket(lake),
        Some("warehouse"),
        &endpoints,
        &access,
        &secret,
    );
    Ok(bootstrap_with_warehouse(&lakekeeper::uri(lake), warehouse)
        .await
        .map_err(|e| refused(Refusal::new(e.reason(), e.to_string()).retry_after(RETRY))))
}
