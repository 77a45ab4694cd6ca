//! Server-side apply with one field manager, skipping objects that are already as desired.
//!
//! Each applied object carries the hash of what we applied in an annotation; when the live
//! object still has that hash, nothing is sent — so a resync with nothing changed writes
//! nothing. A change made by hand to fields we own is put back on the next change of ours or
//! when the hash annotation is removed.
//!
//! [`Applier`] applies a whole [`DesiredSet`] (in the spirit of Stackable's
//! `ClusterResources`): generated Secrets created once, then every object (workloads last),
//! then the live objects the set owns by label but no longer wants are deleted. [`apply`]
//! applies a single object.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use kube::core::ApiResource;
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::FIELD_MANAGER;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{Error, KubeResultExt};
use crate::desired::set::{DesiredObject, DesiredSet, content_hash};

/// Annotation holding the hash of the applied object.
pub const HASH_ANNOTATION: &str = "lakeform.dev/applied-hash";

/// Errors of applying an object.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("applying {kind} {namespace}/{name}: {source}")]
    Api {
        kind: String,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("serializing {kind} {name}: {source}")]
    Serialize {
        kind: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Parameters of the merge patches the operator sends besides server-side apply (annotations,
/// owner references, a suspended CronJob): the one field manager, so every write is ours.
pub fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// Apply `obj` (namespaced) unless the live object already carries the same hash.
/// Returns whether a write was sent.
pub async fn apply<K>(client: &kube::Client, mut obj: K) -> Result<bool, ApplyError>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let kind = K::kind(&()).to_string();
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let hash = content_hash(&obj).map_err(|source| ApplyError::Serialize {
        kind: kind.clone(),
        name: name.clone(),
        source,
    })?;
    obj.annotations_mut()
        .insert(HASH_ANNOTATION.into(), hash.clone());
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let err = |source| ApplyError::Api {
        kind: kind.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    if let Some(live) = api.get_opt(&name).await.map_err(err)?
        && live.annotations().get(HASH_ANNOTATION) == Some(&hash)
    {
        return Ok(false);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&obj))
        .await
        .map_err(err)?;
    Ok(true)
}

/// Applies [`DesiredSet`]s in one namespace with the one field manager.
///
/// ```ignore
/// // A crawler's CronJob and RBAC, owned by its label; objects it no longer wants are deleted.
/// let ownership = Ownership::new(format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_CRAWLER}={name}"))
///     .kind::<CronJob>().kind::<ServiceAccount>().kind::<Role>().kind::<RoleBinding>();
/// let mut set = DesiredSet::new(Some(ownership));
/// set.add(&build::service_account(crawler, lake))?;
/// set.add(&build::role(crawler, lake))?;
/// set.add(&build::role_binding(crawler, lake))?;
/// set.add(&build::cronjob(crawler, lake, image)?)?;
/// let applied = Applier::new(&ctx.client, &ns).apply(set).await?;
/// tracing::debug!(writes = applied.writes, pruned = ?applied.pruned, "applied");
/// ```
pub struct Applier<'a> {
    client: &'a kube::Client,
    namespace: &'a str,
}

/// What an [`Applier::apply`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Objects sent to the API server (created once, applied or deleted).
    pub writes: usize,
    /// Names of the generated Secrets created this time.
    pub generated: Vec<String>,
    /// `Kind/name` of the objects deleted as no longer desired.
    pub pruned: Vec<String>,
}

impl<'a> Applier<'a> {
    /// An applier for `namespace`.
    pub fn new(client: &'a kube::Client, namespace: &'a str) -> Self {
        Applier { client, namespace }
    }

    /// Create the set's missing generated Secrets, apply its objects (workloads last, objects
    /// whose live hash matches skipped), then prune what its ownership covers but it does not
    /// hold. A quiet resync writes nothing.
    pub async fn apply(&self, mut set: DesiredSet) -> Result<Applied, Error> {
        let mut applied = Applied::default();
        for generated in set.take_generated() {
            let name = generated.name.clone();
            if self.create_once(generated).await? {
                applied.writes += 1;
                applied.generated.push(name);
            }
        }
        for obj in set.objects() {
            if self.apply_one(obj).await? {
                applied.writes += 1;
            }
        }
        if let Some(ownership) = set.ownership() {
            for kind in &ownership.kinds {
                let api = self.api(kind);
                let live = api
                    .list(&ListParams::default().labels(&ownership.selector))
                    .await
                    .during(|| format!("listing {} in {}", kind.plural, self.namespace))?;
                for name in prunable(&set, kind, &live.items) {
                    if self
                        .delete(&api, &name)
                        .await
                        .during(|| format!("deleting {} {}/{name}", kind.kind, self.namespace))?
                    {
                        applied.writes += 1;
                        applied.pruned.push(format!("{}/{name}", kind.kind));
                    }
                }
            }
        }
        Ok(applied)
    }

    /// What the API server would refuse in `set`, without writing anything: an object that
    /// exists but is not the set's (by its ownership labels), or one that a server-side
    /// dry-run apply rejects (schema, CEL, admission). Objects already as desired (their hash)
    /// are not dry-run, so a quiet resync sends only reads. One line per refused object.
    pub async fn check(&self, set: &DesiredSet) -> Result<Vec<String>, Error> {
        let mut refused = Vec::new();
        for obj in set.objects() {
            let api = self.api(&obj.resource);
            let what = || {
                format!(
                    "reading {} {}/{}",
                    obj.resource.kind, self.namespace, obj.name
                )
            };
            if let Some(live) = api.get_opt(&obj.name).await.during(what)? {
                if !set.ownership().is_some_and(|o| o.covers(live.labels())) {
                    refused.push(format!(
                        "{} {}: it already exists and is not this set's to manage",
                        obj.resource.kind, obj.name
                    ));
                    continue;
                }
                // already as desired: `apply` will send nothing, so there is nothing to check
                if live.annotations().get(HASH_ANNOTATION) == Some(&obj.hash) {
                    continue;
                }
            }
            let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
            match api
                .patch(&obj.name, &params, &Patch::Apply(&obj.body))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => {
                    refused.push(format!("{} {}: {}", obj.resource.kind, obj.name, s.message));
                }
                Err(e) => {
                    return Err(e).during(|| {
                        format!(
                            "dry-running {} {}/{}",
                            obj.resource.kind, self.namespace, obj.name
                        )
                    });
                }
            }
        }
        Ok(refused)
    }

    fn api(&self, kind: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), self.namespace, kind)
    }

    /// Create a generated Secret unless one of that name exists (never rotated). Returns
    /// whether it was created.
    async fn create_once(
        &self,
        generated: crate::desired::set::GeneratedSecret,
    ) -> Result<bool, Error> {
        let name = generated.name;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
        let what = || format!("creating Secret {}/{name}", self.namespace);
        if secrets.get_opt(&name).await.during(what)?.is_some() {
            return Ok(false);
        }
        let mut failed = None;
        let secret = (generated.make)(&mut |len| {
            random_token(len).unwrap_or_else(|e| {
                failed.get_or_insert(e);
                String::new()
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e).during(what),
        }
    }

    /// Server-side apply `obj` unless the live object carries its hash.
    async fn apply_one(&self, obj: &DesiredObject) -> Result<bool, Error> {
        let api = self.api(&obj.resource);
        let err = |source| ApplyError::Api {
            kind: obj.resource.kind.clone(),
            namespace: self.namespace.to_string(),
            name: obj.name.clone(),
            source,
        };
        if let Some(live) = api.get_opt(&obj.name).await.map_err(err)?
            && live.annotations().get(HASH_ANNOTATION) == Some(&obj.hash)
        {
            return Ok(false);
        }
        let mut body = obj.body.clone();
        if let Some(meta) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(HASH_ANNOTATION.into(), obj.hash.clone().into());
            }
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&obj.name, &params, &Patch::Apply(&body))
            .await
            .map_err(err)?;
        Ok(true)
    }

    /// Delete `name` in the background; false when it was already gone.
    async fn delete(&self, api: &Api<DynamicObject>, name: &str) -> Result<bool, kube::Error> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The live objects of `kind` (found by the set's ownership) that the set does not hold and
/// that are not already being deleted.
pub fn prunable(set: &DesiredSet, kind: &ApiResource, live: &[DynamicObject]) -> Vec<String> {
    live.iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .map(|o| o.name_any())
        .filter(|name| !set.contains(kind, name))
        .collect()
}

/// A random token of letters and digits (generated credentials and keys).
pub fn random_token(len: usize) -> Result<String, Error> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Other(format!("no randomness for credentials: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod applier_tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn live(kind: &ApiResource, name: &str, deleting: bool) -> DynamicObject {
        let mut o = DynamicObject::new(name, kind);
        o.metadata.deletion_timestamp = deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH));
        o
    }

    fn service(name: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn prunes_owned_objects_the_set_no_longer_holds() {
        let svc = ApiResource::erase::<Service>(&());
        let deploy = ApiResource::erase::<Deployment>(&());
        let mut set = DesiredSet::default();
        set.add(&service("keep")).expect("serializes");
        let live_services = [
            live(&svc, "keep", false),
            live(&svc, "old", false),
            live(&svc, "going", true),
        ];
        assert_eq!(prunable(&set, &svc, &live_services), ["old"]);
        // Same name, other kind: not desired.
        assert_eq!(
            prunable(&set, &deploy, &[live(&deploy, "keep", false)]),
            ["keep"]
        );
    }

    #[test]
    fn ownership_covers_objects_with_every_selector_label() {
        let o = crate::desired::set::Ownership::new("app=lakeform, instance=nightly");
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert!(o.covers(&labels(&[
            ("app", "lakeform"),
            ("instance", "nightly"),
            ("x", "y")
        ])));
        assert!(!o.covers(&labels(&[("app", "lakeform"), ("instance", "other")])));
        assert!(!o.covers(&labels(&[("app", "lakeform")])));
    }

    #[test]
    fn tokens_use_the_alphabet() {
        let t = random_token(40).expect("randomness");
        assert_eq!(t.len(), 40);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
