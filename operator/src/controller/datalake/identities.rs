//! The identities stage of a managed lake: before the build, its S3 identities are compiled
//! (`desired::identity`: the data-location Grants' principals, the lake's Crawlers and
//! Workflows, keys derived from the root secret key); once the buckets are ready, MinIO is made
//! to agree (`storage::iam::sync`), with an event for every user made, re-keyed or removed, and
//! only then are their Secrets and reader Roles applied (`identity::desired_set`): a Job never
//! starts with keys MinIO does not know yet.

use kube::api::ListParams;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::crawler::Crawler;
use lakeform_api::datalake::DataLake;
use lakeform_api::grant::Grant;
use lakeform_api::workflow::Workflow;

use super::super::apply::Applier;
use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, Refusal, namespace};
use super::super::lake::{secret, secret_value};
use super::outcome::{RETRY, Stop, key};
use crate::desired::identity::{self, Identities, Keyring};
use crate::desired::lake::Part;
use crate::desired::minio;
use crate::storage::{Storage, iam};

/// The lake's identities: none but refusals for external storage; for managed storage, one
/// per principal of `grants` with a data location, one per Crawler and one per Workflow.
pub async fn compile(
    lake: &DataLake,
    ctx: &Context,
    grants: &[Grant],
) -> Result<Identities, Error> {
    if lake.spec.storage.external.is_some() {
        return Ok(identity::compile(lake, grants, &[], &[], None));
    }
    let ns = namespace(lake)?;
    let crawlers: Vec<Crawler> =
        of_lake(lake, ctx, &ns, |c: &Crawler| &c.spec.lake_ref.name).await?;
    let workflows: Vec<Workflow> =
        of_lake(lake, ctx, &ns, |w: &Workflow| &w.spec.lake_ref.name).await?;
    let root = secret(&ctx.client, &ns, &minio::secret_name(lake))
        .await?
        .and_then(|s| secret_value(&s, minio::PASSWORD_KEY));
    let keyring = root.as_deref().and_then(Keyring::new);
    Ok(identity::compile(
        lake,
        grants,
        &crawlers,
        &workflows,
        keyring.as_ref(),
    ))
}

/// The live objects of kind `K` in `ns` whose `lakeRef` names `lake` (none when the CRD is
/// missing).
async fn of_lake<K>(
    lake: &DataLake,
    ctx: &Context,
    ns: &str,
    lake_ref: impl Fn(&K) -> &String,
) -> Result<Vec<K>, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let listed = match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        listed => listed.during(|| format!("listing the {} in {ns}", K::plural(&())))?,
    };
    Ok(listed
        .items
        .into_iter()
        .filter(|o| lake_ref(o) == &lake.name_any())
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .collect())
}

/// Make the lake's MinIO hold exactly its identities, then apply their Secrets; why not, if it
/// could not.
pub async fn sync(
    lake: &DataLake,
    ctx: &Context,
    st: &Storage,
    identities: &Identities,
) -> Option<Stop> {
    if !identities.managed {
        return None;
    }
    let report = match iam::sync(st, &identities.list).await {
        Ok(report) => report,
        Err(e) => {
            tracing::warn!(datalake = %key(lake), error = %e, "syncing identities");
            let refusal = Refusal::new(e.reason(), e.to_string()).retry_after(RETRY);
            return Some(Stop::refused(Part::Storage, "SyncIdentities", refusal));
        }
    };
    if let Err(e) = apply_objects(lake, ctx, identities).await {
        let refusal = Refusal::new("IdentitySecrets", e.to_string()).retry_after(RETRY);
        return Some(Stop::refused(Part::Storage, "SyncIdentities", refusal));
    }
    announce(lake, ctx, identities, &report).await;
    None
}

/// Apply the identities' Secrets and reader Roles as one set (pruning the rest).
async fn apply_objects(
    lake: &DataLake,
    ctx: &Context,
    identities: &Identities,
) -> Result<(), Error> {
    let ns = namespace(lake)?;
    let set = identity::desired_set(lake, identities).map_err(|e| {
        Error::Other(format!(
            "serializing the identities of DataLake {}: {e}",
            key(lake)
        ))
    })?;
    Applier::new(&ctx.client, &ns).apply(set).await.map(drop)
}

/// An event for every MinIO user made, re-keyed or removed.
async fn announce(
    lake: &DataLake,
    ctx: &Context,
    identities: &Identities,
    report: &iam::IamReport,
) {
    let of = |access_key: &str| {
        identities
            .list
            .iter()
            .find(|i| i.access_key == access_key)
            .map_or_else(String::new, |i| format!(" for {}", i.of))
    };
    let reference = lake.object_ref(&());
    for (keys, reason, verb) in [
        (&report.created, "IdentityCreated", "created"),
        (&report.updated, "IdentityUpdated", "updated"),
        (&report.removed, "IdentityRemoved", "removed"),
    ] {
        for k in keys {
            let note = format!("MinIO user {k}{} {verb}", of(k));
            ctx.event(
                &reference,
                EventType::Normal,
                reason,
                "SyncIdentities",
                note,
            )
            .await;
        }
    }
}
