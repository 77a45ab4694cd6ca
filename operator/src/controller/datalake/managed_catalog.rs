//! Managed catalog: Lakekeeper with its PostgreSQL (or an existing database), migrations, and
//! — once it runs — the bootstrap and the lake's warehouse through its management API.
//! Lakekeeper v0.9.5 (see desired/lakekeeper.rs).

use kube::ResourceExt;
use lakeform_api::datalake::{DataLake, ManagedCatalog};
use reqwest::StatusCode;

use super::super::apply::apply;
use super::super::context::Context;
use super::{Error, objects, storage};
use crate::desired::connection::LakeEndpoints;
use crate::desired::lakekeeper;

/// Apply every object of the managed catalog. Returns `Ok(None)` when Lakekeeper is not
/// available yet, `Ok(Some(message))` when it is (after bootstrap and warehouse creation).
pub async fn ensure(
    lake: &DataLake,
    ctx: &Context,
    spec: &ManagedCatalog,
) -> Result<Result<(), (&'static str, String)>, Error> {
    let ns = lake.namespace().ok_or(Error::NoNamespace)?;
    let invalid = |e: lakekeeper::BuildError| ("InvalidSpec", e.to_string());
    objects::create_once(lake, ctx, &lakekeeper::encryption_secret_name(lake), || {
        Ok(lakekeeper::encryption_secret(
            lake,
            &objects::random_token(48)?,
        ))
    })
    .await?;
    match lakekeeper::managed_postgres(spec) {
        Some(pg) => {
            objects::create_once(lake, ctx, &lakekeeper::db_secret_name(lake), || {
                Ok(lakekeeper::db_secret(lake, &objects::random_token(32)?))
            })
            .await?;
            apply(&ctx.client, lakekeeper::db_service(lake)).await?;
            apply(&ctx.client, lakekeeper::db_statefulset(lake, &pg)).await?;
        }
        None => {
            objects::prune(lake, ctx, lakekeeper::DB_COMPONENT, &[]).await?;
        }
    }
    let job = match lakekeeper::migrate_job(lake, spec) {
        Ok(j) => j,
        Err(e) => return Ok(Err(invalid(e))),
    };
    // A new image means a new migrations Job; the old one goes.
    objects::prune(lake, ctx, lakekeeper::MIGRATE_COMPONENT, &[job.name_any()]).await?;
    apply(&ctx.client, job).await?;
    let deployment = match lakekeeper::deployment(lake, spec) {
        Ok(d) => d,
        Err(e) => return Ok(Err(invalid(e))),
    };
    apply(&ctx.client, lakekeeper::service(lake)).await?;
    apply(&ctx.client, deployment).await?;
    let available = objects::deployment_available(ctx, &ns, &lakekeeper::name(lake)).await?;
    if available < 1 {
        return Ok(Err((
            "CatalogStarting",
            format!(
                "Lakekeeper Deployment {}: no available replica yet",
                lakekeeper::name(lake)
            ),
        )));
    }
    bootstrap(lake, ctx).await
}

/// Bootstrap Lakekeeper and create the lake's warehouse (both idempotent: "already done"
/// answers are success).
async fn bootstrap(
    lake: &DataLake,
    ctx: &Context,
) -> Result<Result<(), (&'static str, String)>, Error> {
    let endpoints = LakeEndpoints::for_lake(lake);
    let ns = lake.namespace().ok_or(Error::NoNamespace)?;
    let c = &endpoints.credentials;
    let (access, secret) = match storage::credentials(
        ctx,
        &ns,
        &c.secret_name,
        (&c.access_key_id_key, &c.secret_access_key_key),
    )
    .await?
    {
        Ok(pair) => pair,
        Err(no) => return Ok(Err((no.reason, no.message))),
    };
    let bucket = lake
        .spec
        .catalog
        .as_ref()
        .and_then(|cat| cat.databases.first())
        .and_then(|db| lake.spec.zones.iter().find(|z| z.name == db.zone))
        .or(lake.spec.zones.first())
        .map(|z| lake.bucket_name(z))
        .unwrap_or_default();
    let base = lakekeeper::uri(lake);
    let http = reqwest::Client::new();
    let calls = [
        (lakekeeper::BOOTSTRAP_PATH, lakekeeper::bootstrap_request()),
        (
            lakekeeper::WAREHOUSE_PATH,
            lakekeeper::warehouse_request(
                &lakekeeper::warehouse_name(lake),
                &bucket,
                Some("warehouse"),
                &endpoints,
                &access,
                &secret,
            ),
        ),
    ];
    for (path, body) in calls {
        let resp = match http.post(format!("{base}{path}")).json(&body).send().await {
            Ok(r) => r,
            Err(e) => {
                return Ok(Err((
                    "CatalogUnreachable",
                    format!("POST {base}{path}: {e}"),
                )));
            }
        };
        let status = resp.status();
        // 409: already bootstrapped / warehouse exists.
        if !(status.is_success() || status == StatusCode::CONFLICT) {
            let text: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Ok(Err((
                "CatalogError",
                format!("POST {base}{path}: {status}: {text}"),
            )));
        }
    }
    Ok(Ok(()))
}
