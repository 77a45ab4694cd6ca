//! DataLake status: component conditions, the summary `Ready` condition, zones and endpoints.
//! Written only when something differs, so a quiet resync writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use lakeform_api::common::{
    CONDITION_READY, FIELD_MANAGER, condition, find_condition, keep_transition_times, set_condition,
};
use lakeform_api::datalake::{DataLake, DataLakeStatus, Endpoints, ZoneStatus};
use serde_json::json;

use super::super::context::Context;
use crate::desired::lake::Part;

/// Condition type of the storage component.
pub const STORAGE_READY: &str = "StorageReady";
/// Condition type of the catalog component.
pub const CATALOG_READY: &str = "CatalogReady";
/// Condition type of the query engine component.
pub const QUERY_ENGINE_READY: &str = "QueryEngineReady";

/// Accumulates the new status during a reconcile.
pub struct StatusBuilder {
    status: DataLakeStatus,
    generation: Option<i64>,
    now: Time,
}

impl StatusBuilder {
    pub fn new(lake: &DataLake) -> Self {
        StatusBuilder {
            status: lake.status.clone().unwrap_or_default(),
            generation: lake.metadata.generation,
            now: Time(jiff::Timestamp::now()),
        }
    }

    fn set(&mut self, type_: &str, ok: bool, reason: &str, message: String) {
        set_condition(
            &mut self.status.conditions,
            condition(
                type_,
                ok,
                reason,
                message,
                self.generation,
                self.now.clone(),
            ),
        );
    }

    /// Storage verdict.
    pub fn storage(&mut self, ok: bool, reason: &str, message: String) {
        self.set(STORAGE_READY, ok, reason, message);
    }

    /// Catalog verdict.
    pub fn catalog(&mut self, ok: bool, reason: &str, message: String) {
        self.set(CATALOG_READY, ok, reason, message);
    }

    /// The catalog URI clients use.
    pub fn catalog_endpoint(&mut self, uri: &str) {
        self.status
            .endpoints
            .get_or_insert_with(Endpoints::default)
            .catalog = Some(uri.to_string());
    }

    /// Query engine verdict.
    pub fn query_engine(&mut self, ok: bool, reason: &str, message: String) {
        self.set(QUERY_ENGINE_READY, ok, reason, message);
    }

    /// The Trino URI clients use.
    pub fn trino_endpoint(&mut self, uri: &str) {
        self.status
            .endpoints
            .get_or_insert_with(Endpoints::default)
            .trino = Some(uri.to_string());
    }

    /// The connection-info ConfigMap.
    pub fn connection_config_map(&mut self, name: &str) {
        self.status.connection_config_map = Some(lakeform_api::common::LocalRef {
            name: name.to_string(),
        });
    }

    /// The S3 endpoint clients use.
    pub fn s3_endpoint(&mut self, endpoint: &str) {
        self.status
            .endpoints
            .get_or_insert_with(Endpoints::default)
            .s3 = Some(endpoint.to_string());
    }

    /// Zone states, replacing the previous list.
    pub fn zones(&mut self, zones: Vec<ZoneStatus>) {
        self.status.zones = zones;
    }

    /// The verdict of one part of the lake.
    pub fn part(&mut self, part: Part, ok: bool, reason: &str, message: String) {
        match part {
            Part::Storage => self.storage(ok, reason, message),
            Part::Catalog => self.catalog(ok, reason, message),
            Part::QueryEngine => self.query_engine(ok, reason, message),
        }
    }

    /// Reconciliation is paused.
    pub fn paused(&mut self) {
        self.set(
            "Paused",
            true,
            "ReconciliationPaused",
            "spec.paused is true: nothing is created, changed or deleted".into(),
        );
    }

    /// Compute `Ready` and write the status if it differs from the live one.
    /// Returns true when a write was sent.
    pub async fn write(mut self, lake: &DataLake, ctx: &Context) -> Result<bool, kube::Error> {
        if !lake.spec.paused {
            self.status.conditions.retain(|c| c.type_ != "Paused");
        }
        let mut components = vec![STORAGE_READY];
        if lake.spec.catalog.is_some() {
            components.push(CATALOG_READY);
        } else {
            self.status.conditions.retain(|c| c.type_ != CATALOG_READY);
            if let Some(e) = self.status.endpoints.as_mut() {
                e.catalog = None;
            }
        }
        if lake
            .spec
            .query_engine
            .as_ref()
            .is_some_and(|q| q.trino.is_some())
        {
            components.push(QUERY_ENGINE_READY);
        } else {
            self.status
                .conditions
                .retain(|c| c.type_ != QUERY_ENGINE_READY);
            if let Some(e) = self.status.endpoints.as_mut() {
                e.trino = None;
            }
        }
        let failing = components
            .iter()
            .filter_map(|t| find_condition(&self.status.conditions, t))
            .find(|c| c.status != "True")
            .cloned();
        let (ok, reason, message) = match failing {
            Some(c) => (false, c.reason, format!("{}: {}", c.type_, c.message)),
            None => (
                true,
                "Reconciled".to_string(),
                "all components are ready".to_string(),
            ),
        };
        if !lake.spec.paused {
            self.set(CONDITION_READY, ok, &reason, message);
        }
        self.status.observed_generation = self.generation;
        if lake.status.as_ref() == Some(&self.status) {
            return Ok(false);
        }
        let api: Api<DataLake> =
            Api::namespaced(ctx.client.clone(), &lake.namespace().unwrap_or_default());
        // The cached object may predate our own last write (the watch lags the write): compare
        // with the live status before writing, keeping transition times that still hold.
        if let Some(live) = api.get_opt(&lake.name_any()).await?.and_then(|l| l.status) {
            keep_transition_times(&mut self.status.conditions, &live.conditions);
            if live == self.status {
                return Ok(false);
            }
        }
        let patch = json!({
            "apiVersion": "lakeform.dev/v1alpha1",
            "kind": "DataLake",
            "status": self.status,
        });
        api.patch_status(
            &lake.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(true)
    }
}
