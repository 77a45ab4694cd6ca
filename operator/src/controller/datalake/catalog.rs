//! The catalog stage: connect to the Iceberg REST catalog and keep one namespace per database,
//! with its description and location in the zone's bucket.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::datalake::{CatalogSpec, DataLake, DeletionPolicy};

use super::super::context::Context;
use super::super::metrics::WriteLabels;
use super::Error;
use super::status::StatusBuilder;
use super::storage::Outcome;
use crate::catalog::{
    Catalog, CatalogError, OAuth2, OWNER_PROPERTY, property_diff, with_managed_keys,
};
use crate::desired::lakekeeper;

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
            if let Some(zone) = lake.spec.zones.iter().find(|z| z.name == db.zone) {
                props.insert(
                    "location".into(),
                    format!("s3://{}/{}", lake.bucket_name(zone), db.name),
                );
            }
            if let Some(d) = &db.description {
                props.insert("comment".into(), d.clone());
            }
            props.insert(OWNER_PROPERTY.into(), owner(lake));
            (db.name.clone(), props)
        })
        .collect()
}

async fn oauth(
    lake: &DataLake,
    ctx: &Context,
    catalog: &CatalogSpec,
) -> Result<Result<Option<OAuth2>, String>, Error> {
    let Some(o) = catalog.external.as_ref().and_then(|e| e.oauth2.as_ref()) else {
        return Ok(Ok(None));
    };
    let ns = lake.namespace().ok_or(Error::NoNamespace)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(secret) = secrets.get_opt(&o.secret_name).await? else {
        return Ok(Err(format!(
            "Secret {ns}/{} with the catalog's OAuth2 credentials does not exist",
            o.secret_name
        )));
    };
    let value = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    match (value("clientId"), value("clientSecret")) {
        (Some(client_id), Some(client_secret)) => Ok(Ok(Some(OAuth2 {
            client_id,
            client_secret,
            token_uri: o.token_uri.clone(),
            scope: o.scope.clone(),
        }))),
        _ => Ok(Err(format!(
            "Secret {ns}/{} needs keys clientId and clientSecret",
            o.secret_name
        ))),
    }
}

async fn connect(
    lake: &DataLake,
    ctx: &Context,
    catalog: &CatalogSpec,
) -> Result<Result<Catalog, (&'static str, String)>, Error> {
    let Some(ext) = &catalog.external else {
        let Some(managed) = &catalog.managed else {
            return Err(Error::Internal(
                "catalog has neither managed nor external".into(),
            ));
        };
        if let Err(e) = super::managed_catalog::ensure(lake, ctx, managed).await? {
            return Ok(Err(e));
        }
        let uri = crate::desired::lakekeeper::catalog_uri(lake);
        let warehouse = crate::desired::lakekeeper::warehouse_name(lake);
        return Ok(Catalog::connect(&uri, Some(&warehouse), None)
            .await
            .map_err(|e| (e.reason(), e.to_string())));
    };
    let oauth = match oauth(lake, ctx, catalog).await? {
        Ok(o) => o,
        Err(message) => return Ok(Err(("SecretNotFound", message))),
    };
    match Catalog::connect(&ext.uri, ext.warehouse.as_deref(), oauth.as_ref()).await {
        Ok(c) => Ok(Ok(c)),
        Err(e) => Ok(Err((e.reason(), e.to_string()))),
    }
}

/// Converge the catalog's namespaces; record `CatalogReady` and the endpoint.
pub async fn reconcile(
    lake: &DataLake,
    ctx: &Context,
    status: &mut StatusBuilder,
) -> Result<Outcome, Error> {
    let Some(catalog) = &lake.spec.catalog else {
        return Ok(Outcome::Ready);
    };
    let reference = lake.object_ref(&());
    match &catalog.external {
        Some(ext) => {
            status.catalog_endpoint(&ext.uri);
            let components = [
                lakekeeper::COMPONENT,
                lakekeeper::MIGRATE_COMPONENT,
                lakekeeper::DB_COMPONENT,
            ];
            for component in components {
                super::objects::prune(lake, ctx, component, &[]).await?;
            }
        }
        None => status.catalog_endpoint(&lakekeeper::catalog_uri(lake)),
    }
    let client = match connect(lake, ctx, catalog).await? {
        Ok(c) => c,
        Err((reason, message)) => {
            status.catalog(false, reason, message.clone());
            if reason == "CatalogStarting" {
                return Ok(Outcome::Waiting(super::STARTING_RECHECK));
            }
            ctx.event(
                &reference,
                EventType::Warning,
                reason,
                "ConnectCatalog",
                message,
            )
            .await;
            return Ok(Outcome::Failed {
                reason,
                retry: reason != "InvalidSpec",
            });
        }
    };
    let desired = desired_properties(lake, catalog);
    let result: Result<(), CatalogError> = async {
        for (name, props) in &desired {
            match client.namespace(name).await? {
                None => {
                    client
                        .create_namespace(name, &with_managed_keys(props))
                        .await?;
                    ctx.metrics
                        .catalog_writes
                        .get_or_create(&WriteLabels {
                            what: "namespace".into(),
                        })
                        .inc();
                    ctx.event(
                        &reference,
                        EventType::Normal,
                        "NamespaceCreated",
                        "CreateNamespace",
                        format!("catalog namespace {name} created"),
                    )
                    .await;
                }
                Some(current) => {
                    let (updates, removals) = property_diff(&current, props);
                    if !updates.is_empty() || !removals.is_empty() {
                        client.update_properties(name, &updates, &removals).await?;
                        ctx.metrics
                            .catalog_writes
                            .get_or_create(&WriteLabels {
                                what: "properties".into(),
                            })
                            .inc();
                        ctx.event(
                            &reference,
                            EventType::Normal,
                            "NamespaceUpdated",
                            "UpdateNamespace",
                            format!("catalog namespace {name}: properties updated"),
                        )
                        .await;
                    }
                }
            }
        }
        if lake.spec.storage.deletion_policy == DeletionPolicy::Delete {
            drop_removed(&client, lake, ctx, &desired).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            status.catalog(
                true,
                "NamespacesReady",
                format!("{} namespace(s) in the catalog", desired.len()),
            );
            Ok(Outcome::Ready)
        }
        Err(e) => {
            status.catalog(false, e.reason(), e.to_string());
            ctx.event(
                &reference,
                EventType::Warning,
                e.reason(),
                "ReconcileCatalog",
                e.to_string(),
            )
            .await;
            Ok(Outcome::Failed {
                reason: e.reason(),
                retry: true,
            })
        }
    }
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
    let client = match connect(lake, ctx, catalog)
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(c) => c,
        Err((_, message)) => return Err(message),
    };
    drop_removed(&client, lake, ctx, &BTreeMap::new())
        .await
        .map_err(|e| e.to_string())
}
