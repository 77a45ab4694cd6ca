//! Waiting for objects with timeouts, by watching (no sleep loops).

use std::{fmt::Debug, time::Duration};

use anyhow::{Context, Result, anyhow};
use kube::{
    Api, Resource,
    runtime::wait::{Condition, await_condition, conditions},
};
use serde::{Serialize, de::DeserializeOwned};

/// Waits until `cond` holds for the object `name`, at most `timeout`.
///
/// On timeout the error names what was awaited and shows the object as it was last seen
/// (its `status` when it has one), which is usually what explains the failure.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> Result<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => Err(anyhow!(
            "{what}: the object {name} does not exist (or was deleted) although the condition \
             expected it"
        )),
        Ok(Err(err)) => Err(err).with_context(|| format!("watching {name} for: {what}")),
        Err(_) => {
            let seen = match api.get_opt(name).await {
                Ok(Some(obj)) => describe(&obj),
                Ok(None) => "the object does not exist".to_string(),
                Err(err) => format!("could not read it: {err}"),
            };
            Err(anyhow!(
                "timed out after {}s waiting for {what} ({name}); last seen:\n{seen}",
                timeout.as_secs()
            ))
        }
    }
}

/// Waits until the object with this uid is gone.
pub async fn wait_for_deleted<K>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    what: &str,
    timeout: Duration,
) -> Result<()>
where
    K: Clone + Debug + Send + DeserializeOwned + Serialize + Resource + 'static,
{
    match tokio::time::timeout(
        timeout,
        await_condition(api.clone(), name, conditions::is_deleted::<K>(uid)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err).with_context(|| format!("watching {name} for: {what}")),
        Err(_) => {
            let seen = match api.get_opt(name).await {
                Ok(Some(obj)) => describe(&obj),
                Ok(None) => "the object does not exist".to_string(),
                Err(err) => format!("could not read it: {err}"),
            };
            Err(anyhow!(
                "timed out after {}s waiting for {what} ({name}); it still exists:\n{seen}",
                timeout.as_secs()
            ))
        }
    }
}

/// Waits until some object in `api`'s scope satisfies `pred` (a watch, not polling), at most
/// `timeout`; returns the first such object.
pub async fn wait_for_any<K>(
    api: &Api<K>,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&K) -> bool,
) -> Result<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    use futures::TryStreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
    let found = async {
        let mut stream = std::pin::pin!(stream);
        while let Some(obj) = stream.try_next().await? {
            if pred(&obj) {
                return Ok::<_, watcher::Error>(Some(obj));
            }
        }
        Ok(None)
    };
    match tokio::time::timeout(timeout, found).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => Err(anyhow!("the watch ended before {what}")),
        Ok(Err(err)) => Err(err).with_context(|| format!("watching for {what}")),
        Err(_) => Err(anyhow!(
            "timed out after {}s waiting for {what}",
            timeout.as_secs()
        )),
    }
}

/// YAML of the object's metadata essentials and status (or the whole object when it has no
/// status), for error messages.
pub fn describe<K: Serialize>(obj: &K) -> String {
    let Ok(value) = serde_json::to_value(obj) else {
        return "<unserializable>".into();
    };
    let mut shown = serde_json::Map::new();
    if let Some(meta) = value.get("metadata") {
        let mut m = serde_json::Map::new();
        for key in [
            "name",
            "namespace",
            "uid",
            "deletionTimestamp",
            "finalizers",
            "ownerReferences",
        ] {
            if let Some(v) = meta.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
        shown.insert("metadata".into(), m.into());
    }
    match value.get("status") {
        Some(status) => {
            shown.insert("status".into(), status.clone());
        }
        None => return serde_yaml::to_string(&value).unwrap_or_default(),
    }
    serde_yaml::to_string(&shown).unwrap_or_default()
}

/// A condition on `status.conditions[type == ctype].status == "True"` for any object whose
/// status has Kubernetes-style conditions (works on typed objects through their JSON form).
pub fn has_condition<K: Serialize>(obj: &K, ctype: &str) -> bool {
    let Ok(value) = serde_json::to_value(obj) else {
        return false;
    };
    value
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|conds| {
            conds.iter().any(|c| {
                c.get("type").and_then(|t| t.as_str()) == Some(ctype)
                    && c.get("status").and_then(|s| s.as_str()) == Some("True")
            })
        })
}
