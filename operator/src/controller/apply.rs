//! Server-side apply with one field manager, skipping objects that are already as desired.
//!
//! Each applied object carries the hash of what we applied in an annotation; when the live
//! object still has that hash, nothing is sent — so a resync with nothing changed writes
//! nothing. A change made by hand to fields we own is put back on the next change of ours or
//! when the hash annotation is removed.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use lakeform_api::common::FIELD_MANAGER;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

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
    let body = serde_json::to_vec(&obj).map_err(|source| ApplyError::Serialize {
        kind: kind.clone(),
        name: name.clone(),
        source,
    })?;
    let hash = hex::encode(&Sha256::digest(&body)[..12]);
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

/// A JSON merge patch that turns `old` into `new` at the top level: the keys of `new`, and
/// `null` for every key of `old` that `new` left out (a field that became empty is skipped when
/// serialised, and a merge patch without it would keep the old value).
pub fn replacing_patch(old: &serde_json::Value, new: serde_json::Value) -> serde_json::Value {
    let mut patch = new;
    if let (Some(old), Some(map)) = (old.as_object(), patch.as_object_mut()) {
        for key in old.keys() {
            map.entry(key.clone()).or_insert(serde_json::Value::Null);
        }
    }
    patch
}

#[cfg(test)]
mod replacing_patch_tests {
    use super::replacing_patch;
    use serde_json::json;

    #[test]
    fn keys_left_out_become_null() {
        let old = json!({"activeRuns": ["r1"], "lastRun": {"name": "r1"}, "keep": 1});
        let new = json!({"lastRun": {"name": "r1", "phase": "Succeeded"}, "keep": 1});
        assert_eq!(
            replacing_patch(&old, new),
            json!({"activeRuns": null, "lastRun": {"name": "r1", "phase": "Succeeded"}, "keep": 1})
        );
        assert_eq!(
            replacing_patch(&json!(null), json!({"a": 1})),
            json!({"a": 1})
        );
    }
}
