//! The Grants stage of a lake: its Grants (same namespace, `lakeRef` naming it) compiled into
//! Trino's access rules before the desired set is built (`desired::trino_access`; data
//! locations become MinIO identities, `identities`), and each Grant's status — `Ready`,
//! `enforcedBy` — written after the rules were applied and MinIO synced.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::{CONDITION_READY, FIELD_MANAGER, condition, keep_transition_times};
use lakeform_api::datalake::DataLake;
use lakeform_api::grant::Grant;
use serde_json::{Value, json};

use super::super::context::Context;
use super::super::error::{Error, KubeResultExt, namespace};
use super::outcome::key;
use crate::desired::identity::{Identities, LocationOutcome};
use crate::desired::trino_access::{self, Enforcement, TableColumns};

/// The lake's Grants and what Trino's rules make of them.
pub struct LakeGrants {
    grants: Vec<Grant>,
    /// Trino's access rules (`rules.json`).
    pub rules: Value,
    outcome: BTreeMap<String, Enforcement>,
}

impl LakeGrants {
    /// The lake's live Grants.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
}

/// List the lake's Grants, read the columns their column filters need, compile the rules.
pub async fn compile(lake: &DataLake, ctx: &Context) -> Result<LakeGrants, Error> {
    let ns = namespace(lake)?;
    let api: Api<Grant> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = match api.list(&ListParams::default()).await {
        // The Grant CRD is not installed (Helm does not add CRDs on upgrade): no Grants.
        Err(kube::Error::Api(e)) if e.code == 404 => {
            tracing::warn!(datalake = %key(lake), "the Grant CRD is not installed: no access rules");
            Vec::new()
        }
        listed => {
            listed
                .during(|| format!("listing the Grants in {ns}"))?
                .items
        }
    };
    let grants: Vec<Grant> = listed
        .into_iter()
        .filter(|g| {
            g.spec.lake_ref.name == lake.name_any() && g.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let columns = columns(lake, ctx, &grants).await;
    let (rules, outcome) = trino_access::rules(&grants, &columns);
    Ok(LakeGrants {
        grants,
        rules,
        outcome,
    })
}

/// Columns of the tables whose Grants include columns by name, from the lake's catalog; a
/// table the catalog cannot give is left out (its Grant is refused with `TableNotFound`).
async fn columns(lake: &DataLake, ctx: &Context, grants: &[Grant]) -> TableColumns {
    let mut out = TableColumns::new();
    let wanted: Vec<(String, String)> = grants
        .iter()
        .filter(|g| {
            g.spec
                .resource
                .columns
                .as_ref()
                .is_some_and(|c| c.include.is_some())
        })
        .filter_map(|g| {
            Some((
                g.spec.resource.database.clone()?,
                g.spec.resource.table.clone()?,
            ))
        })
        .collect();
    if wanted.is_empty() {
        return out;
    }
    let catalog = match super::catalog::reader(lake, ctx).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(datalake = %key(lake), error = %e, "catalog unreachable for Grants");
            return out;
        }
    };
    for (db, table) in wanted {
        if let Ok(Some(cols)) = catalog.table_columns(&db, &table).await {
            out.insert((db, table), cols);
        }
    }
    out
}

/// What a Grant's status says: ready, reason, message, and the engine enforcing it.
type Verdict = (bool, &'static str, String, Option<&'static str>);

/// Write each Grant's status (only when it changed); a refused Grant also gets a Warning event.
/// `storage_ready`: the lake's storage stage (buckets and MinIO's users) went through.
pub async fn report(
    lake: &DataLake,
    ctx: &Context,
    grants: &LakeGrants,
    identities: &Identities,
    storage_ready: bool,
) -> Result<(), Error> {
    let has_trino = lake
        .spec
        .query_engine
        .as_ref()
        .is_some_and(|q| q.trino.is_some());
    for grant in &grants.grants {
        let name = grant.name_any();
        let (ready, reason, message, by) = match grants.outcome.get(&name) {
            Some(Enforcement::NotApplicable) | None => {
                location_verdict(identities.locations.get(&name), storage_ready)
            }
            Some(enforcement) => trino_verdict(enforcement, has_trino),
        };
        if write_status(ctx, grant, ready, reason, &message, by).await? && !ready {
            ctx.event(
                &grant.object_ref(&()),
                EventType::Warning,
                reason,
                "Compile",
                message,
            )
            .await;
        }
    }
    Ok(())
}

/// A database or table Grant: enforced by Trino's rules, when the lake has Trino.
fn trino_verdict(enforcement: &Enforcement, has_trino: bool) -> Verdict {
    match (enforcement, has_trino) {
        (Enforcement::Enforced, true) => (
            true,
            "Enforced",
            format!(
                "compiled into Trino's access rules (re-read every {} s)",
                trino_access::REFRESH_SECONDS
            ),
            Some("Trino"),
        ),
        (Enforcement::Enforced, false) => (
            false,
            "NoQueryEngine",
            "the lake has no query engine (spec.queryEngine.trino) to enforce it".into(),
            None,
        ),
        (Enforcement::Refused(reason, message), _) => (false, *reason, message.clone(), None),
        (Enforcement::NotApplicable, _) => (
            false,
            "NotEnforced",
            "no engine enforces this Grant".into(),
            None,
        ),
    }
}

/// A data-location Grant: enforced by MinIO once the principal's user holds its policy.
fn location_verdict(outcome: Option<&LocationOutcome>, storage_ready: bool) -> Verdict {
    match (outcome, storage_ready) {
        (
            Some(LocationOutcome::Enforced {
                access_key,
                secret,
                location,
            }),
            true,
        ) => (
            true,
            "Enforced",
            format!(
                "MinIO user {access_key} may use {location} as granted; its keys are in Secret {secret}, readable only by the principal"
            ),
            Some("MinIO"),
        ),
        (Some(LocationOutcome::Enforced { access_key, .. }), false) => (
            false,
            "IdentityPending",
            format!(
                "waiting for the lake's storage to take MinIO user {access_key} (see the DataLake's StorageReady)"
            ),
            None,
        ),
        (Some(LocationOutcome::Refused(reason, message)), _) => {
            (false, *reason, message.clone(), None)
        }
        (None, _) => (
            false,
            "NotEnforced",
            "no engine enforces this Grant".into(),
            None,
        ),
    }
}

/// Apply the Grant's status unless the live one already says it; whether it was written.
async fn write_status(
    ctx: &Context,
    grant: &Grant,
    ready: bool,
    reason: &str,
    message: &str,
    enforced_by: Option<&str>,
) -> Result<bool, Error> {
    let ns = grant.namespace().unwrap_or_default();
    let api: Api<Grant> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = grant.metadata.generation;
    let now = Time(jiff::Timestamp::now());
    let mut conditions = vec![condition(
        CONDITION_READY,
        ready,
        reason,
        message,
        generation,
        now,
    )];
    let live = grant.status.clone().unwrap_or_default();
    keep_transition_times(&mut conditions, &live.conditions);
    if live.conditions == conditions
        && live.observed_generation == generation
        && live.enforced_by.as_deref() == enforced_by
    {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": "lakeform.dev/v1alpha1",
        "kind": "Grant",
        "status": {"conditions": conditions, "observedGeneration": generation, "enforcedBy": enforced_by},
    });
    api.patch_status(
        &grant.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .during(|| format!("writing the status of Grant {ns}/{}", grant.name_any()))?;
    Ok(true)
}
