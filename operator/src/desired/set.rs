//! The desired set: every object one reconcile wants, built at once by pure builders and handed
//! to the applier (`controller::apply::Applier`) in one piece.
//!
//! A set holds three things:
//! - **objects**, applied by server-side apply (each with the hash of what the builder made, so
//!   the applier can skip objects that are already as desired);
//! - **generated Secrets**, created once when missing and never rewritten (random credentials:
//!   the applier supplies the randomness, so builders stay pure);
//! - **ownership**: the label selector that finds the live objects this set speaks for, and the
//!   kinds to look at. Live objects that match and are not in the set are pruned.
//!
//! ```ignore
//! // A crawler's objects: its CronJob and RBAC, found again by its label.
//! let ownership = Ownership::new("app.kubernetes.io/managed-by=lakeform,lakeform.dev/crawler=orders")
//!     .kind::<CronJob>().kind::<ServiceAccount>().kind::<Role>().kind::<RoleBinding>();
//! let mut set = DesiredSet::new(Some(ownership));
//! set.add(&build::service_account(crawler, lake))?;
//! set.add(&build::cronjob(crawler, lake, image)?)?; // applied after the RBAC objects
//! ```

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::ApiResource;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash the applier stores on an applied object: the first 12 bytes (hex) of the SHA-256 of
/// the object as serialized (before the hash annotation is added).
pub fn content_hash<K: Serialize>(obj: &K) -> Result<String, serde_json::Error> {
    let body = serde_json::to_vec(obj)?;
    Ok(hex::encode(&Sha256::digest(&body)[..12]))
}

/// One object to apply, of any kind.
#[derive(Clone, Debug)]
pub struct DesiredObject {
    /// Its kind, as the dynamic API needs it.
    pub resource: ApiResource,
    /// Its name.
    pub name: String,
    /// The object as JSON (`apiVersion`, `kind`, `metadata`, …), without the hash annotation.
    pub body: serde_json::Value,
    /// [`content_hash`] of the object.
    pub hash: String,
}

impl DesiredObject {
    /// Workloads (they start pods that read the other objects) go last.
    pub fn is_workload(&self) -> bool {
        matches!(
            self.resource.kind.as_str(),
            "StatefulSet" | "Deployment" | "DaemonSet" | "ReplicaSet" | "Job" | "CronJob"
        )
    }
}

/// Random tokens for generated credentials: `len` letters and digits. Supplied by the applier.
pub type Tokens<'a> = &'a mut dyn FnMut(usize) -> String;

/// A Secret created once, when missing, from freshly generated tokens; never rewritten.
pub struct GeneratedSecret {
    /// The Secret's name (checked before anything is generated).
    pub name: String,
    /// Builds the Secret; called only when it is missing.
    pub make: Box<dyn FnOnce(Tokens<'_>) -> Secret + Send + Sync>,
}

impl std::fmt::Debug for GeneratedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedSecret")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Which live objects a set speaks for: those matching `selector`, of the kinds listed.
#[derive(Clone, Debug)]
pub struct Ownership {
    /// Label selector (`k=v,k2 in (a,b)`).
    pub selector: String,
    /// Kinds to prune. Kinds not listed (e.g. generated Secrets) are never deleted.
    pub kinds: Vec<ApiResource>,
}

impl Ownership {
    /// Ownership of the objects matching `selector`; add kinds with [`Ownership::kind`].
    pub fn new(selector: impl Into<String>) -> Self {
        Ownership {
            selector: selector.into(),
            kinds: Vec::new(),
        }
    }

    /// Whether `labels` match the selector (equality terms `k=v`, comma-separated).
    pub fn covers(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.selector
            .split(',')
            .all(|term| match term.split_once('=') {
                Some((k, v)) => labels.get(k.trim()).map(String::as_str) == Some(v.trim()),
                None => false,
            })
    }

    /// Also prune objects of kind `K`.
    pub fn kind<K: kube::Resource<DynamicType = ()>>(mut self) -> Self {
        self.kinds.push(ApiResource::erase::<K>(&()));
        self
    }
}

/// Every object one reconcile wants.
#[derive(Debug, Default)]
pub struct DesiredSet {
    objects: Vec<DesiredObject>,
    generated: Vec<GeneratedSecret>,
    ownership: Option<Ownership>,
}

impl DesiredSet {
    /// An empty set; with `ownership`, live objects it covers that are not added are pruned.
    pub fn new(ownership: Option<Ownership>) -> Self {
        DesiredSet {
            ownership,
            ..Default::default()
        }
    }

    /// Add an object to apply.
    pub fn add<K>(&mut self, obj: &K) -> Result<(), serde_json::Error>
    where
        K: kube::Resource<DynamicType = ()> + Serialize,
    {
        self.objects.push(DesiredObject {
            resource: ApiResource::erase::<K>(&()),
            name: obj.name_any(),
            body: serde_json::to_value(obj)?,
            hash: content_hash(obj)?,
        });
        Ok(())
    }

    /// Add an object given as JSON (`apiVersion`, `kind`, `metadata`, …) of kind `resource`.
    pub fn add_value(
        &mut self,
        resource: ApiResource,
        name: String,
        body: serde_json::Value,
    ) -> Result<(), serde_json::Error> {
        let hash = content_hash(&body)?;
        self.objects.push(DesiredObject {
            resource,
            name,
            body,
            hash,
        });
        Ok(())
    }

    /// Add a Secret created once from generated tokens.
    pub fn generate(
        &mut self,
        name: String,
        make: impl FnOnce(Tokens<'_>) -> Secret + Send + Sync + 'static,
    ) {
        self.generated.push(GeneratedSecret {
            name,
            make: Box::new(make),
        });
    }

    /// The objects in apply order: everything else first, workloads last (stable otherwise).
    pub fn objects(&self) -> Vec<&DesiredObject> {
        let mut objects: Vec<&DesiredObject> = self.objects.iter().collect();
        objects.sort_by(|a, b| match (a.is_workload(), b.is_workload()) {
            (false, true) => Ordering::Less,
            (true, false) => Ordering::Greater,
            _ => Ordering::Equal,
        });
        objects
    }

    /// Whether an object of `kind` named `name` is in the set.
    pub fn contains(&self, kind: &ApiResource, name: &str) -> bool {
        self.objects
            .iter()
            .any(|o| &o.resource == kind && o.name == name)
    }

    /// Take the generated Secrets out (they are created before the objects).
    pub fn take_generated(&mut self) -> Vec<GeneratedSecret> {
        std::mem::take(&mut self.generated)
    }

    /// What the set speaks for, if anything.
    pub fn ownership(&self) -> Option<&Ownership> {
        self.ownership.as_ref()
    }

    /// Move everything of `other` into this set (ownership stays this set's).
    pub fn extend(&mut self, other: DesiredSet) {
        self.objects.extend(other.objects);
        self.generated.extend(other.generated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn named<K: Default + kube::Resource>(name: &str) -> K {
        let mut k = K::default();
        *k.meta_mut() = ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        };
        k
    }

    #[test]
    fn workloads_go_last_in_builder_order() {
        let mut set = DesiredSet::default();
        set.add(&named::<StatefulSet>("minio")).unwrap();
        set.add(&named::<Service>("minio")).unwrap();
        set.add(&named::<Job>("migrate")).unwrap();
        set.add(&named::<ConfigMap>("trino")).unwrap();
        set.add(&named::<Deployment>("trino")).unwrap();
        set.add(&named::<Secret>("events")).unwrap();
        let order: Vec<String> = set
            .objects()
            .iter()
            .map(|o| format!("{}/{}", o.resource.kind, o.name))
            .collect();
        assert_eq!(
            order,
            [
                "Service/minio",
                "ConfigMap/trino",
                "Secret/events",
                "StatefulSet/minio",
                "Job/migrate",
                "Deployment/trino",
            ]
        );
    }

    #[test]
    fn the_hash_is_that_of_the_typed_object() {
        let cm = named::<ConfigMap>("x");
        let mut set = DesiredSet::default();
        set.add(&cm).unwrap();
        let body = serde_json::to_vec(&cm).unwrap();
        assert_eq!(
            set.objects()[0].hash,
            hex::encode(&Sha256::digest(&body)[..12])
        );
        assert!(set.contains(&ApiResource::erase::<ConfigMap>(&()), "x"));
        assert!(!set.contains(&ApiResource::erase::<Service>(&()), "x"));
    }
}
