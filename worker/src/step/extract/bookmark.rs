//! Bookmarks of incremental extracts: per table, the bookmark key (one column or several,
//! and its order) and the last key loaded, kept in a ConfigMap owned by the Workflow (the
//! operator creates and resets it; the step reads it and records new values after each
//! successful commit). A single ascending column is written as `{"column", "value"}`, the form
//! earlier versions wrote and read; any other key as `{"columns", "values", "order"}`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use lakeform_api::workflow::BookmarkOrder;
use serde::{Deserialize, Serialize};

use crate::step::error::StepError;

/// Field manager of the step's writes to the ConfigMap.
const MANAGER: &str = "lakeform-step";

/// One bookmark: the key columns, their order and the last key loaded (each value in the
/// source's text form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub columns: Vec<String>,
    pub order: BookmarkOrder,
    pub values: Vec<String>,
}

/// A [`Mark`] as the ConfigMap holds it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    order: Option<BookmarkOrder>,
}

impl Mark {
    fn store(&self) -> Stored {
        match (self.columns.as_slice(), self.values.as_slice(), self.order) {
            ([c], [v], BookmarkOrder::Ascending) => Stored {
                column: Some(c.clone()),
                value: Some(v.clone()),
                ..Default::default()
            },
            _ => Stored {
                columns: self.columns.clone(),
                values: self.values.clone(),
                order: Some(self.order),
                ..Default::default()
            },
        }
    }

    fn from_stored(s: Stored) -> Mark {
        match (s.column, s.value) {
            (Some(c), Some(v)) => Mark {
                columns: vec![c],
                order: s.order.unwrap_or_default(),
                values: vec![v],
            },
            _ => Mark {
                columns: s.columns,
                order: s.order.unwrap_or_default(),
                values: s.values,
            },
        }
    }
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

    /// The last key loaded for `key`, if it was taken on `columns` in `order` (another key
    /// starts over).
    pub fn get(&self, key: &str, columns: &[String], order: BookmarkOrder) -> Option<Vec<String>> {
        let stored: Stored = serde_json::from_str(self.data.get(key)?).ok()?;
        let mark = Mark::from_stored(stored);
        if mark.columns == columns && mark.order == order && mark.values.len() == columns.len() {
            Some(mark.values)
        } else {
            tracing::warn!(key, old = ?mark.columns, new = ?columns, "bookmark key or order changed: loading from the start");
            None
        }
    }

    /// Records a new value.
    pub async fn set(&mut self, key: &str, mark: &Mark) -> Result<(), StepError> {
        let text = serde_json::to_string(&mark.store())?;
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

    fn id() -> Vec<String> {
        vec!["id".to_string()]
    }

    #[test]
    fn a_bookmark_on_another_key_is_not_used() {
        let mut b = Bookmarks::in_memory();
        // the form earlier versions wrote
        b.data
            .insert("s.public.t".into(), r#"{"column":"id","value":"7"}"#.into());
        let asc = BookmarkOrder::Ascending;
        assert_eq!(b.get("s.public.t", &id(), asc), Some(vec!["7".to_string()]));
        assert_eq!(b.get("s.public.t", &["updated_at".to_string()], asc), None);
        assert_eq!(b.get("s.public.t", &id(), BookmarkOrder::Descending), None);
        assert_eq!(b.get("s.public.other", &id(), asc), None);
    }

    #[tokio::test]
    async fn compound_and_descending_marks_round_trip() {
        let mut b = Bookmarks::in_memory();
        let single = Mark {
            columns: id(),
            order: BookmarkOrder::Ascending,
            values: vec!["9".into()],
        };
        b.set("s.a", &single).await.expect("set");
        assert_eq!(b.data["s.a"], r#"{"column":"id","value":"9"}"#);
        let compound = Mark {
            columns: vec!["day".into(), "line".into()],
            order: BookmarkOrder::Descending,
            values: vec!["2024-01-02".into(), "3".into()],
        };
        b.set("s.b", &compound).await.expect("set");
        assert_eq!(
            b.get("s.b", &compound.columns, BookmarkOrder::Descending),
            Some(compound.values.clone())
        );
        assert_eq!(
            b.get("s.b", &compound.columns[..1], BookmarkOrder::Descending),
            None
        );
    }
}
