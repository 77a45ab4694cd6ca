//! Server-side apply of YAML manifests of any kind, through discovery and `DynamicObject`.

use std::{collections::HashMap, fmt, path::Path};

use anyhow::{Context, Result, anyhow};
use kube::{
    Api, Client,
    api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
    core::TypeMeta,
    discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind},
};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Field manager the suite applies with.
pub const FIELD_MANAGER: &str = "lakeform-e2e";

/// How to apply.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Namespace for namespaced objects (it replaces a namespace written in the manifest, so
    /// every test stays in its own namespace).
    pub namespace: String,
    /// `dryRun=All`: admission and validation run, nothing is persisted.
    pub dry_run: bool,
}

impl ApplyOptions {
    pub fn new(namespace: &str) -> Self {
        ApplyOptions {
            namespace: namespace.to_string(),
            dry_run: false,
        }
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
}

/// Why applying one document failed.
#[derive(Debug)]
pub enum ApplyError {
    /// The API server answered with an error status (validation, admission, conflict …).
    Rejected {
        code: u16,
        reason: String,
        message: String,
    },
    /// Anything else: a malformed document, an unknown kind, a transport error.
    Other(anyhow::Error),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Rejected {
                code,
                reason,
                message,
            } => write!(f, "rejected by the API server ({code} {reason}): {message}"),
            ApplyError::Other(err) => write!(f, "{err:#}"),
        }
    }
}

impl std::error::Error for ApplyError {}

impl From<kube::Error> for ApplyError {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => ApplyError::Rejected {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => ApplyError::Other(other.into()),
        }
    }
}

/// Splits a (multi-document) YAML text into its non-empty documents.
pub fn split_documents(text: &str) -> Result<Vec<serde_json::Value>> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(de)
            .with_context(|| format!("parsing YAML document {}", i + 1))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Applies documents, caching discovery per kind.
pub struct Applier {
    client: Client,
    kinds: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

impl Applier {
    pub fn new(client: Client) -> Self {
        Applier {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    async fn resolve(&self, gvk: &GroupVersionKind) -> Result<(ApiResource, ApiCapabilities)> {
        let mut kinds = self.kinds.lock().await;
        if let Some(found) = kinds.get(gvk) {
            return Ok(found.clone());
        }
        let found = pinned_kind(&self.client, gvk).await.with_context(|| {
            format!(
                "the API server does not serve kind {} in {}/{} — are the CRDs installed \
                 (`kubectl apply --server-side -f crds/`)?",
                gvk.kind, gvk.group, gvk.version
            )
        })?;
        kinds.insert(gvk.clone(), found.clone());
        Ok(found)
    }

    /// The `Api` for a document's kind and scope, and the document as an object placed in the
    /// options' namespace.
    async fn target(
        &self,
        doc: &serde_json::Value,
        opts: &ApplyOptions,
    ) -> Result<(Api<DynamicObject>, DynamicObject, String), ApplyError> {
        let mut obj: DynamicObject = serde_json::from_value(doc.clone())
            .context("the document is not a Kubernetes object")
            .map_err(ApplyError::Other)?;
        let types: &TypeMeta = obj
            .types
            .as_ref()
            .ok_or_else(|| ApplyError::Other(anyhow!("the document has no apiVersion/kind")))?;
        let gvk = GroupVersionKind::try_from(types)
            .map_err(|e| ApplyError::Other(anyhow!("bad apiVersion/kind: {e}")))?;
        let (resource, caps) = self.resolve(&gvk).await.map_err(ApplyError::Other)?;
        let name =
            obj.metadata.name.clone().ok_or_else(|| {
                ApplyError::Other(anyhow!("the {} has no metadata.name", gvk.kind))
            })?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                obj.metadata.namespace = Some(opts.namespace.clone());
                Api::namespaced_with(self.client.clone(), &opts.namespace, &resource)
            }
            Scope::Cluster => {
                obj.metadata.namespace = None;
                Api::all_with(self.client.clone(), &resource)
            }
        };
        Ok((api, obj, name))
    }

    /// Server-side applies one document (force, field manager [`FIELD_MANAGER`]) — what
    /// `kubectl apply --server-side` does.
    pub async fn apply(
        &self,
        doc: &serde_json::Value,
        opts: &ApplyOptions,
    ) -> Result<DynamicObject, ApplyError> {
        let (api, obj, name) = self.target(doc, opts).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if opts.dry_run {
            params = params.dry_run();
        }
        Ok(api.patch(&name, &params, &Patch::Apply(&obj)).await?)
    }

    /// Creates the object (POST), or updates it (PUT, at the current resourceVersion) when it
    /// exists — what `kubectl create` / `kubectl replace` do. Unlike server-side apply, this
    /// reaches the API server's validation even for duplicate keys in map-type lists (server-side
    /// apply refuses those earlier, with a 500 and no field index).
    pub async fn create_or_replace(
        &self,
        doc: &serde_json::Value,
        opts: &ApplyOptions,
    ) -> Result<DynamicObject, ApplyError> {
        let (api, mut obj, name) = self.target(doc, opts).await?;
        let params = PostParams {
            dry_run: opts.dry_run,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        match api.get_opt(&name).await? {
            Some(existing) => {
                obj.metadata.resource_version = existing.metadata.resource_version;
                Ok(api.replace(&name, &params, &obj).await?)
            }
            None => Ok(api.create(&params, &obj).await?),
        }
    }
}

/// Applies every document of a YAML text, in order; stops at the first failure.
pub async fn apply_yaml_str(
    client: &Client,
    text: &str,
    opts: &ApplyOptions,
) -> Result<Vec<DynamicObject>> {
    let applier = Applier::new(client.clone());
    let mut out = Vec::new();
    for (i, doc) in split_documents(text)?.iter().enumerate() {
        let obj = applier
            .apply(doc, opts)
            .await
            .with_context(|| format!("applying document {}", i + 1))?;
        out.push(obj);
    }
    Ok(out)
}

/// [`apply_yaml_str`] for a file.
pub async fn apply_yaml_file(
    client: &Client,
    path: &Path,
    opts: &ApplyOptions,
) -> Result<Vec<DynamicObject>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    apply_yaml_str(client, &text, opts)
        .await
        .with_context(|| format!("applying {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_skips_empty_documents() {
        let docs = split_documents("# c\n---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"], 2);
    }
}
