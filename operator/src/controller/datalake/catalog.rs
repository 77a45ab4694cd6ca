//! The catalog stage: connect to the Iceberg REST catalog and keep one namespace per database,
//! with its description and location in the zone's bucket.

use std::collections::BTreeMap;

use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use lakeform_api::datalake::{CatalogSpec, DataLake, DeletionPolicy};

use super::super::context::Context;
use super::super::error::{Error, Refusal, namespace};
use super::super::lake::{secret, secret_value};
use super::super::metrics::WriteLabels;
use super::outcome::{RETRY, Stop};
use super::status::StatusBuilder;
use crate::catalog::{
    Catalog, CatalogError, OAuth2, OWNER_PROPERTY, property_diff, with_managed_keys,
};
use crate::desired::connection::{LakeEndpoints, managed_catalog_uri};
use crate::desired::lake::{Invalid, Part};

fn owner(lake: &DataLake) -> String {
    format!(
        "{}/{}",
        lake.namespace().unwrap_or_default(),
        lake.name_any()
    )
}

/// Namespace properties a database asks for.
pub fn desired_properties(
    lake: &DataLake,
    catalog: &CatalogSpec,
) -> BTreeMap<String, BTreeMap<String, String>> {
    catalog
        .databases
        .iter()
        .map(|db| {
            let mut props = db.properties.clone();
            if let Some(bucket) = lake.zone_bucket(&db.zone) {
                props.insert("location".into(), format!("s3://{bucket}/{}", db.name));
            }
            if let Some(d) = &db.description {
                props.insert("comment".into(), d.clone());
            }
            props.insert(OWNER_PROPERTY.into(), owner(lake));
            (db.name.clone(), props)
        })
        .collect()
}

/// The external catalog's OAuth2 client credentials, if it has any; refused (reason
/// `SecretNotFound`, as the catalog condition always said) when the Secret or a key is missing.
async fn oauth(
    lake: &DataLake,
    ctx: &Context,
    catalog: &CatalogSpec,
) -> Result<Result<Option<OAuth2>, Refusal>, Error> {
    let Some(o) = catalog.external.as_ref().and_then(|e| e.oauth2.as_ref()) else {
        return Ok(Ok(None));
    };
    let ns = namespace(lake)?;
    let Some(secret) = secret(&ctx.client, &ns, &o.secret_name).await? else {
        let message = format!(
            "Secret {ns}/{} with the catalog's OAuth2 credentials does not exist",
            o.secret_name
        );
        return Ok(Err(Refusal::new("SecretNotFound", message)));
    };
    match (
        secret_value(&secret, "clientId"),
        secret_value(&secret, "clientSecret"),
    ) {
        (Some(client_id), Some(client_secret)) => Ok(Ok(Some(OAuth2 {
            client_id,
            client_secret,
            token_uri: o.token_uri.clone(),
            scope: o.scope.clone(),
        }))),
        _ => {
            let message = format!(
                "Secret {ns}/{} needs keys clientId and clientSecret",
                o.secret_name
            );
            Ok(Err(Refusal::new("SecretNotFound", message)))
        }
    }
}

/// The catalog cannot be reached: retried.
fn connect_refused(reason: &'static str, message: String) -> Stop {
    let refusal = Refusal::new(reason, message).retry_after(RETRY);
    Stop::refused(Part::Catalog, "ConnectCatalog", refusal)
}

/// A client of the lake's catalog: the managed server once it runs (Lakekeeper bootstrapped), or
/// the external catalog with its OAuth2 credentials.
async fn connect(
    lake: &DataLake,
    ctx: &Context,
    catalog: &CatalogSpec,
    invalid: &Invalid,
) -> Result<Result<Catalog, Stop>, Error> {
    let Some(ext) = &catalog.external else {
        let Some(managed) = &catalog.managed else {
            return Err(Error::Other(
                "catalog has neither managed nor external".into(),
            ));
        };
        if let Err(stop) = super::managed_catalog::ensure(lake, managed, ctx, invalid).await? {
            return Ok(Err(stop));
        }
        let uri = managed_catalog_uri(lake, managed.server);
        return Ok(Catalog::connect(&uri, Some(&lake.name_any()), None)
            .await
            .map_err(|e| connect_refused(e.reason(), e.to_string())));
    };
    let oauth = match oauth(lake, ctx, catalog).await? {
        Ok(o) => o,
        Err(refusal) => return Ok(Err(connect_refused(refusal.reason, refusal.message))),
    };
    Ok(
        Catalog::connect(&ext.uri, ext.warehouse.as_deref(), oauth.as_ref())
            .await
            .map_err(|e| connect_refused(e.reason(), e.to_string())),
    )
}

/// A client of the lake's catalog for reads: no managed catalog is started or bootstrapped
/// here (the catalog stage does that).
pub async fn reader(lake: &DataLake, ctx: &Context) -> Result<Catalog, String> {
    let catalog = lake
        .spec
        .catalog
        .as_ref()
        .ok_or("the lake has no catalog")?;
    if let Some(managed) = &catalog.managed {
        let uri = managed_catalog_uri(lake, managed.server);
        return Catalog::connect(&uri, Some(&lake.name_any()), None)
            .await
            .map_err(|e| e.to_string());
    }
    let ext = catalog
        .external
        .as_ref()
        .ok_or("the catalog is neither managed nor external")?;
    let oauth = match oauth(lake, ctx, catalog).await {
        Ok(Ok(o)) => o,
        Ok(Err(refusal)) => return Err(refusal.message),
        Err(e) => return Err(e.to_string()),
    };
    Catalog::connect(&ext.uri, ext.warehouse.as_deref(), oauth.as_ref())
        .await
        .map_err(|e| e.to_string())
}

/// Converge the catalog's namespaces; record `CatalogReady` and the endpoint.
pub async fn reconcile(
    lake: &DataLake,
    ctx: &Context,
    invalid: &Invalid,
    status: &mut StatusBuilder,
) -> Result<Option<Stop>, Error> {
    let Some(catalog) = &lake.spec.catalog else {
        return Ok(None);
    };
    match &catalog.external {
        Some(ext) => status.catalog_endpoint(&ext.uri),
        None => status.catalog_endpoint(
            &LakeEndpoints::for_lake(lake)
                .catalog_uri
                .unwrap_or_default(),
        ),
    }
    let client = match connect(lake, ctx, catalog, invalid).await? {
        Ok(c) => c,
        Err(stop) => return Ok(Some(stop)),
    };
    let desired = desired_properties(lake, catalog);
    let converged = async {
        for (name, props) in &desired {
            ensure_namespace(&client, lake, ctx, name, props).await?;
        }
        if lake.spec.storage.deletion_policy == DeletionPolicy::Delete {
            drop_removed(&client, lake, ctx, &desired).await?;
        }
        Ok::<(), CatalogError>(())
    };
    match converged.await {
        Ok(()) => {
            let message = format!("{} namespace(s) in the catalog", desired.len());
            status.catalog(true, "NamespacesReady", message);
            Ok(None)
        }
        Err(e) => {
            let refusal = Refusal::new(e.reason(), e.to_string()).retry_after(RETRY);
            Ok(Some(Stop::refused(
                Part::Catalog,
                "ReconcileCatalog",
                refusal,
            )))
        }
    }
}

/// Create the namespace `name` or bring its properties to `props`.
async fn ensure_namespace(
    client: &Catalog,
    lake: &DataLake,
    ctx: &Context,
    name: &str,
    props: &BTreeMap<String, String>,
) -> Result<(), CatalogError> {
    let reference = lake.object_ref(&());
    let count = |what: &str| {
        let labels = WriteLabels { what: what.into() };
        ctx.metrics.catalog_writes.get_or_create(&labels).inc();
    };
    let Some(current) = client.namespace(name).await? else {
        client
            .create_namespace(name, &with_managed_keys(props))
            .await?;
        count("namespace");
        let note = format!("catalog namespace {name} created");
        ctx.event(
            &reference,
            EventType::Normal,
            "NamespaceCreated",
            "CreateNamespace",
            note,
        )
        .await;
        return Ok(());
    };
    let (updates, removals) = property_diff(&current, props);
    if !updates.is_empty() || !removals.is_empty() {
        client.update_properties(name, &updates, &removals).await?;
        count("properties");
        let note = format!("catalog namespace {name}: properties updated");
        ctx.event(
            &reference,
            EventType::Normal,
            "NamespaceUpdated",
            "UpdateNamespace",
            note,
        )
        .await;
    }
    Ok(())
}

/// Drop namespaces this lake created that are no longer in the spec — only when empty.
async fn drop_removed(
    client: &Catalog,
    lake: &DataLake,
    ctx: &Context,
    desired: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), CatalogError> {
    let me = owner(lake);
    for name in client.list_namespaces().await? {
        if desired.contains_key(&name) {
            continue;
        }
        let ours = client
            .namespace(&name)
            .await?
            .is_some_and(|p| p.get(OWNER_PROPERTY) == Some(&me));
        if ours && client.is_empty(&name).await? {
            client.drop_namespace(&name).await?;
            ctx.metrics
                .catalog_writes
                .get_or_create(&WriteLabels {
                    what: "drop".into(),
                })
                .inc();
            ctx.event(
                &lake.object_ref(&()),
                EventType::Normal,
                "NamespaceDropped",
                "DropNamespace",
                format!(
                    "catalog namespace {name} was removed from the spec and was empty: dropped"
                ),
            )
            .await;
        }
    }
    Ok(())
}

/// On deletion with `deletionPolicy: Delete`: drop this lake's empty namespaces. Namespaces
/// that still hold tables are kept (and reported).
pub async fn delete_namespaces(lake: &DataLake, ctx: &Context) -> Result<(), String> {
    let Some(catalog) = &lake.spec.catalog else {
        return Ok(());
    };
    let client = match connect(lake, ctx, catalog, &Invalid::default())
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(c) => c,
        Err(stop) => return Err(stop.refusal.message),
    };
    drop_removed(&client, lake, ctx, &BTreeMap::new())
        .await
        .map_err(|e| e.to_string())
}
