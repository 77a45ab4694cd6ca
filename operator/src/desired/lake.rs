//! Everything Kubernetes runs for one DataLake, as one [`DesiredSet`]: managed MinIO, a managed
//! catalog (Nessie or Lakekeeper, and its PostgreSQL), Trino and the connection-info ConfigMap.
//! (The S3 identities' Secrets are a set of their own, `identity::desired_set`, applied once
//! MinIO knows their keys.)
//! The per-component builders (`minio`, `postgres`, `nessie`, `lakekeeper`, `trino`,
//! `connection`) stay the place where objects are made;
//! this module only gathers them and says which components the set speaks for (prunes).
//!
//! A component whose builder fails (bad `podOverrides`, `configOverrides`, workgroups) keeps its
//! live objects: it is left out of the set's ownership and reported in [`LakeObjects::invalid`].
//! Storage objects are never pruned (MinIO holds the lake's data; a lake switched to external
//! storage keeps its MinIO until it is deleted), nor is a catalog the spec dropped altogether —
//! both as the DataLake controller always did.

use kube::ResourceExt;
use lakeform_api::common::{LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY};
use lakeform_api::datalake::{CatalogServer, DataLake, ManagedCatalog};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};

use super::connection::{self, LakeEndpoints};
use super::set::{DesiredSet, Ownership};
use super::{lakekeeper, minio, nessie, postgres, trino};

/// A part of the lake with its own condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `StorageReady`: MinIO.
    Storage,
    /// `CatalogReady`: the managed catalog server, the namespaces.
    Catalog,
    /// `QueryEngineReady`: Trino.
    QueryEngine,
}

/// The lake's desired set and the parts that could not be built.
#[derive(Debug)]
pub struct LakeObjects {
    /// What to apply, create once and prune.
    pub set: DesiredSet,
    /// Parts whose objects could not be built.
    pub invalid: Invalid,
}

/// Parts whose objects could not be built, with the builder's message (a field path).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invalid(pub Vec<(Part, String)>);

impl Invalid {
    /// Why `part` could not be built, if it could not.
    pub fn get(&self, part: Part) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, m)| m.as_str())
    }
}

/// What one part contributes: objects (in a set without ownership), the components it speaks
/// for, and a build error.
struct Contribution {
    set: DesiredSet,
    owned: Vec<&'static str>,
    invalid: Option<(Part, String)>,
}

impl Contribution {
    fn new() -> Self {
        Contribution {
            set: DesiredSet::new(None),
            owned: Vec::new(),
            invalid: None,
        }
    }
}

/// Every object of `lake` (already validated). `webhook`: where managed MinIOs deliver bucket
/// notifications, if the operator runs a receiver; `access`: Trino's access rules compiled from
/// the lake's Grants (`trino_access::rules`).
pub fn objects(
    lake: &DataLake,
    endpoints: &LakeEndpoints,
    webhook: Option<&minio::Webhook>,
    access: &serde_json::Value,
) -> Result<LakeObjects, serde_json::Error> {
    let parts = [
        storage(lake, webhook)?,
        catalog(lake, endpoints)?,
        query_engine(lake, endpoints, access)?,
    ];
    let mut owned = Vec::new();
    let mut invalid = Vec::new();
    let mut all = DesiredSet::new(None);
    for part in parts {
        all.extend(part.set);
        owned.extend(part.owned);
        invalid.extend(part.invalid);
    }
    all.add(&connection::config_map(lake, endpoints))?;
    let mut set = DesiredSet::new(ownership(lake, &owned));
    set.extend(all);
    Ok(LakeObjects {
        set,
        invalid: Invalid(invalid),
    })
}

/// The live objects of `components` of `lake`, found by the labels every builder sets
/// (`meta::labels`), of the kinds the lake's builders make (Secrets are never pruned).
fn ownership(lake: &DataLake, components: &[&str]) -> Option<Ownership> {
    if components.is_empty() {
        return None;
    }
    let selector = format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_PART_OF}={},app.kubernetes.io/component in ({})",
        lake.name_any(),
        components.join(",")
    );
    Some(
        Ownership::new(selector)
            .kind::<Deployment>()
            .kind::<StatefulSet>()
            .kind::<Service>()
            .kind::<ConfigMap>()
            .kind::<Job>(),
    )
}

/// Managed MinIO: root credentials (generated once), Services, the events Secret when the
/// operator has a webhook token, and the StatefulSet.
fn storage(
    lake: &DataLake,
    webhook: Option<&minio::Webhook>,
) -> Result<Contribution, serde_json::Error> {
    let mut c = Contribution::new();
    let Some(spec) = lake.spec.storage.managed.as_ref() else {
        return Ok(c);
    };
    let owner = lake.clone();
    c.set.generate(minio::secret_name(lake), move |token| {
        let user = token(8);
        minio::secret(&owner, &format!("lakeform-{user}"), &token(40))
    });
    for svc in minio::services(lake) {
        c.set.add(&svc)?;
    }
    if let Some(token) = webhook.and_then(|w| w.token.as_deref()) {
        c.set.add(&minio::events_secret(lake, token))?;
    }
    match minio::statefulset(lake, spec, webhook) {
        Ok(sts) => c.set.add(&sts)?,
        Err(e) => c.invalid = Some((Part::Storage, e.to_string())),
    }
    Ok(c)
}

/// Components of a managed catalog (both servers), pruned when no longer desired.
const CATALOG_COMPONENTS: [&str; 3] = [
    lakekeeper::COMPONENT,
    lakekeeper::MIGRATE_COMPONENT,
    postgres::COMPONENT,
];

/// The catalog: nothing for an external one (and its managed components pruned); for a
/// managed one its PostgreSQL (or none, for an existing database) and the server: Nessie with
/// its configuration, or Lakekeeper with its generated encryption key and migrations Job.
fn catalog(lake: &DataLake, endpoints: &LakeEndpoints) -> Result<Contribution, serde_json::Error> {
    let mut c = Contribution::new();
    let Some(catalog) = &lake.spec.catalog else {
        return Ok(c);
    };
    match (&catalog.external, &catalog.managed) {
        (Some(_), _) => c.owned = CATALOG_COMPONENTS.to_vec(),
        (None, Some(spec)) => {
            c.owned = CATALOG_COMPONENTS.to_vec();
            catalog_database(lake, spec, &mut c)?;
            match spec.server {
                CatalogServer::Nessie => nessie(lake, spec, endpoints, &mut c)?,
                CatalogServer::Lakekeeper => lakekeeper(lake, spec, &mut c)?,
            }
            if c.invalid.is_some() {
                // the server's live objects stay as they are
                c.owned = vec![postgres::COMPONENT];
            }
        }
        (None, None) => {}
    }
    Ok(c)
}

/// The managed PostgreSQL and its generated password, unless an existing database is used.
fn catalog_database(
    lake: &DataLake,
    spec: &ManagedCatalog,
    c: &mut Contribution,
) -> Result<(), serde_json::Error> {
    if let Some(pg) = postgres::managed(spec) {
        let owner = lake.clone();
        c.set.generate(postgres::secret_name(lake), move |token| {
            postgres::secret(&owner, &token(32))
        });
        c.set.add(&postgres::service(lake))?;
        c.set.add(&postgres::statefulset(lake, &pg))?;
    }
    Ok(())
}

fn nessie(
    lake: &DataLake,
    spec: &ManagedCatalog,
    endpoints: &LakeEndpoints,
    c: &mut Contribution,
) -> Result<(), serde_json::Error> {
    match nessie::deployment(lake, spec, endpoints) {
        Ok(deployment) => {
            c.set.add(&nessie::config_map(lake, endpoints))?;
            c.set.add(&nessie::service(lake))?;
            c.set.add(&deployment)?;
        }
        Err(e) => c.invalid = Some((Part::Catalog, e.to_string())),
    }
    Ok(())
}

fn lakekeeper(
    lake: &DataLake,
    spec: &ManagedCatalog,
    c: &mut Contribution,
) -> Result<(), serde_json::Error> {
    let owner = lake.clone();
    c.set
        .generate(lakekeeper::encryption_secret_name(lake), move |token| {
            lakekeeper::encryption_secret(&owner, &token(48))
        });
    // One migrations Job per image: the Jobs of previous images are pruned.
    let built = lakekeeper::migrate_job(lake, spec)
        .and_then(|job| Ok((job, lakekeeper::deployment(lake, spec)?)));
    match built {
        Ok((job, deployment)) => {
            c.set.add(&job)?;
            c.set.add(&lakekeeper::service(lake))?;
            c.set.add(&deployment)?;
        }
        Err(e) => c.invalid = Some((Part::Catalog, e.to_string())),
    }
    Ok(())
}

/// Generated Secrets of the lake that carry no owner reference (`meta::kept_meta`): kept under
/// `deletionPolicy: Retain`, deleted by the DataLake's cleanup under `Delete`.
pub fn kept_secrets(lake: &DataLake) -> Vec<String> {
    vec![
        minio::secret_name(lake),
        postgres::secret_name(lake),
        lakekeeper::encryption_secret_name(lake),
    ]
}

/// Trino's ConfigMaps, Service and Deployments; with no query engine, its components pruned.
fn query_engine(
    lake: &DataLake,
    endpoints: &LakeEndpoints,
    access: &serde_json::Value,
) -> Result<Contribution, serde_json::Error> {
    let mut c = Contribution::new();
    match trino::objects(lake, endpoints, access) {
        Err(e) => c.invalid = Some((Part::QueryEngine, e.to_string())),
        Ok(None) => c.owned = vec![trino::COORDINATOR_COMPONENT, trino::WORKER_COMPONENT],
        Ok(Some(objs)) => {
            for cm in &objs.config_maps {
                c.set.add(cm)?;
            }
            c.set.add(&objs.service)?;
            for d in &objs.deployments {
                c.set.add(d)?;
            }
            c.owned = vec![trino::COORDINATOR_COMPONENT, trino::WORKER_COMPONENT];
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::connection::tests::lake;

    fn names(objs: &LakeObjects) -> Vec<String> {
        objs.set
            .objects()
            .iter()
            .map(|o| format!("{}/{}", o.resource.kind, o.name))
            .collect()
    }

    fn build(spec: &str) -> LakeObjects {
        let l = lake(spec);
        objects(
            &l,
            &LakeEndpoints::for_lake(&l),
            None,
            &serde_json::json!({}),
        )
        .expect("serializes")
    }

    #[test]
    fn a_managed_lake_is_one_set_with_workloads_last() {
        let objs = build(
            "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  catalog:\n    managed: {}\n  queryEngine:\n    trino: {}\n",
        );
        assert_eq!(objs.invalid, Invalid::default());
        let names = names(&objs);
        let first_workload = names
            .iter()
            .position(|n| n.starts_with("StatefulSet/"))
            .expect("a StatefulSet");
        assert!(names[first_workload..].iter().all(|n| {
            ["StatefulSet/", "Deployment/", "Job/"]
                .iter()
                .any(|k| n.starts_with(k))
        }));
        for want in [
            "Service/sales-minio",
            "ConfigMap/sales-connection",
            "StatefulSet/sales-minio",
            "StatefulSet/sales-catalog-pg",
            "ConfigMap/sales-nessie",
            "Deployment/sales-nessie",
        ] {
            assert!(names.contains(&want.to_string()), "{want} in {names:?}");
        }
        let selector = &objs.set.ownership().expect("ownership").selector;
        assert_eq!(
            selector,
            "app.kubernetes.io/managed-by=lakeform,app.kubernetes.io/part-of=sales,\
             app.kubernetes.io/component in (catalog,catalog-migrate,catalog-db,trino-coordinator,trino-worker)"
        );
    }

    #[test]
    fn an_external_lake_prunes_the_managed_catalog_and_never_storage() {
        let objs = build(
            "  storage:\n    external:\n      endpoint: http://minio.data:9000\n      credentials: {secretName: s3}\n  zones: [{name: raw}]\n  catalog:\n    external: {uri: 'http://rest:8181'}\n",
        );
        assert_eq!(names(&objs), ["ConfigMap/sales-connection"]);
        let selector = &objs.set.ownership().expect("ownership").selector;
        assert!(selector.ends_with(
            "component in (catalog,catalog-migrate,catalog-db,trino-coordinator,trino-worker)"
        ));
        assert!(!selector.contains("storage"));
    }

    #[test]
    fn a_part_that_cannot_be_built_keeps_its_live_objects() {
        let objs = build(
            "  storage:\n    managed: {}\n  zones: [{name: raw}]\n  queryEngine:\n    trino:\n      configOverrides: {nonsense.properties: {a: b}}\n",
        );
        assert!(objs.invalid.get(Part::QueryEngine).is_some());
        assert_eq!(objs.invalid.get(Part::Storage), None);
        // Nothing of Trino is built, and nothing of it is pruned.
        assert!(objs.set.ownership().is_none());
        assert!(!names(&objs).iter().any(|n| n.contains("trino")));
    }
}
