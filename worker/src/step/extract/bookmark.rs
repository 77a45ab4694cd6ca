//! Bookmarks of incremental extracts: per table, the bookmark column and the last value
//! loaded, kept in a ConfigMap owned by the Workflow (the operator creates and resets it; the
//! step reads it and records new values after each successful commit).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};

use crate::step::error::StepError;

/// Field manager of the step's writes to the ConfigMap.
const MANAGER: &str = "lakeform-step";

/// One bookmark: the column and the last value loaded (PostgreSQL text form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub column: String,
    pub value: String,
}

/// ConfigMap key of a table's bookmark in a step: `<step>.<schema>.<table>` with characters
/// a key may not hold replaced by `_`.
pub fn key(step: &str, schema: &str, table: &str) -> String {
    format!("{step}.{schema}.{table}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The bookmarks of a workflow.
pub struct Bookmarks {
    api: Option<Api<ConfigMap>>,
    name: String,
    data: BTreeMap<String, String>,
}

impl Bookmarks {
    /// Reads ConfigMap `name` in `namespace`.
    pub async fn load(
        client: kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Bookmarks, StepError> {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let cm = api.get(name).await.map_err(|source| StepError::Bookmarks {
            context: format!("reading ConfigMap {namespace}/{name}"),
            source: Box::new(source),
        })?;
        Ok(Bookmarks {
            api: Some(api),
            name: name.to_string(),
            data: cm.data.unwrap_or_default(),
        })
    }

    /// Bookmarks kept in memory only (no cluster: `lakeform step` run by hand).
    pub fn in_memory() -> Bookmarks {
        Bookmarks {
            api: None,
            name: String::new(),
            data: BTreeMap::new(),
        }
    }

    /// The last value for `key`, if it was taken on `column` (a changed column starts over).
    pub fn get(&self, key: &str, column: &str) -> Option<String> {
        let mark: Mark = serde_json::from_str(self.data.get(key)?).ok()?;
        if mark.column == column {
            Some(mark.value)
        } else {
            tracing::warn!(key, old = %mark.column, new = column, "bookmark column changed: loading from the start");
            None
        }
    }

    /// Records a new value.
    pub async fn set(&mut self, key: &str, mark: Mark) -> Result<(), StepError> {
        let text = serde_json::to_string(&mark)?;
        self.data.insert(key.to_string(), text.clone());
        if let Some(api) = &self.api {
            let patch = serde_json::json!({ "data": { key: text } });
            api.patch(
                &self.name,
                &PatchParams::apply(MANAGER),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|source| StepError::Bookmarks {
                context: format!("recording {key} in ConfigMap {}", self.name),
                source: Box::new(source),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_configmap_keys() {
        assert_eq!(key("load", "public", "orders"), "load.public.orders");
        assert_eq!(key("load", "Sales Data", "é"), "load.Sales_Data._");
    }

    #[test]
    fn a_bookmark_on_another_column_is_not_used() {
        let mut b = Bookmarks::in_memory();
        b.data.insert(
            "s.public.t".into(),
            serde_json::to_string(&Mark {
                column: "id".into(),
                value: "7".into(),
            })
            .expect("json"),
        );
        assert_eq!(b.get("s.public.t", "id").as_deref(), Some("7"));
        assert_eq!(b.get("s.public.t", "updated_at"), None);
        assert_eq!(b.get("s.public.other", "id"), None);
    }
}
