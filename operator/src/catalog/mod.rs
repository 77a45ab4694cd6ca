//! Iceberg REST catalog client for what the operator manages: `/v1/config`, namespaces and
//! their properties (the REST spec's namespace endpoints), with optional OAuth2 client
//! credentials. Tables are the crawler's and the workflows' business. A managed catalog's
//! own management API (Lakekeeper's bootstrap and warehouse) is in [`lakekeeper`].

pub mod lakekeeper;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// Why a catalog call failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog did not answer (refused, timeout, not an Iceberg REST server).
    #[error("catalog {uri} unreachable: {message}")]
    Unreachable { uri: String, message: String },
    /// Credentials were refused.
    #[error("catalog {uri} refused the credentials ({status}): {message}")]
    Unauthorized {
        uri: String,
        status: u16,
        message: String,
    },
    /// Any other error answer.
    #[error("{operation} on catalog {uri} failed ({status}): {message}")]
    Failed {
        operation: &'static str,
        uri: String,
        status: u16,
        message: String,
    },
}

impl CatalogError {
    /// Condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            CatalogError::Unreachable { .. } => "CatalogUnreachable",
            CatalogError::Unauthorized { .. } => "Unauthorized",
            CatalogError::Failed { .. } => "CatalogError",
        }
    }
}

/// OAuth2 client credentials.
#[derive(Clone)]
pub struct OAuth2 {
    pub client_id: String,
    pub client_secret: String,
    pub token_uri: Option<String>,
    pub scope: Option<String>,
}

/// A connected catalog (after `/v1/config`).
pub struct Catalog {
    http: reqwest::Client,
    uri: String,
    /// `uri/v1/` plus the server's `prefix` override, if any.
    base: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorModel>,
}

#[derive(Deserialize)]
struct ErrorModel {
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct ConfigResponse {
    #[serde(default)]
    overrides: BTreeMap<String, String>,
    #[serde(default)]
    defaults: BTreeMap<String, String>,
}

/// The part of a LoadTable response `table_columns` reads.
#[derive(Deserialize)]
struct LoadTable {
    metadata: TableMetadata,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TableMetadata {
    current_schema_id: Option<i64>,
    #[serde(default)]
    schemas: Vec<TableSchema>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct TableSchema {
    schema_id: i64,
    #[serde(default)]
    fields: Vec<SchemaField>,
}

#[derive(Deserialize)]
struct SchemaField {
    name: String,
}

#[derive(Deserialize)]
struct NamespaceResponse {
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ListNamespaces {
    #[serde(default)]
    namespaces: Vec<Vec<String>>,
    #[serde(default, rename = "next-page-token")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ListTables {
    #[serde(default)]
    identifiers: Vec<serde_json::Value>,
}

fn encode(segment: &str) -> String {
    // Namespace names are lowercase identifiers (schema-validated); encode the few reserved
    // characters anyway.
    segment
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace(' ', "%20")
        .replace('\u{1f}', "%1F")
}

impl Catalog {
    /// Connect: fetch a token when OAuth2 is configured, then `GET /v1/config`.
    pub async fn connect(
        uri: &str,
        warehouse: Option<&str>,
        oauth: Option<&OAuth2>,
    ) -> Result<Catalog, CatalogError> {
        let uri = uri.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CatalogError::Unreachable {
                uri: uri.clone(),
                message: e.to_string(),
            })?;
        let mut catalog = Catalog {
            http,
            base: format!("{uri}/v1/"),
            uri,
            token: None,
        };
        if let Some(o) = oauth {
            catalog.token = Some(catalog.fetch_token(o).await?);
        }
        let mut req = catalog.http.get(format!("{}/v1/config", catalog.uri));
        if let Some(w) = warehouse {
            req = req.query(&[("warehouse", w)]);
        }
        let config: ConfigResponse = catalog.send("GetConfig", req).await?.unwrap_or_default();
        if let Some(prefix) = config
            .overrides
            .get("prefix")
            .or(config.defaults.get("prefix"))
        {
            catalog.base = format!("{}/v1/{}/", catalog.uri, prefix.trim_matches('/'));
        }
        Ok(catalog)
    }

    async fn fetch_token(&self, o: &OAuth2) -> Result<String, CatalogError> {
        let url = o
            .token_uri
            .clone()
            .unwrap_or_else(|| format!("{}/v1/oauth/tokens", self.uri));
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", o.client_id.clone()),
            ("client_secret", o.client_secret.clone()),
        ];
        if let Some(s) = &o.scope {
            form.push(("scope", s.clone()));
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
        }
        let req = self.http.post(url).form(&form);
        let token: Option<Token> = self.send("OAuth2Token", req).await?;
        token
            .map(|t| t.access_token)
            .ok_or_else(|| CatalogError::Unauthorized {
                uri: self.uri.clone(),
                status: 200,
                message: "the token endpoint returned no access_token".into(),
            })
    }

    /// Send a request; `Ok(None)` for 404 and empty bodies.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        mut req: reqwest::RequestBuilder,
    ) -> Result<Option<T>, CatalogError> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| CatalogError::Unreachable {
            uri: self.uri.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| CatalogError::Unreachable {
            uri: self.uri.clone(),
            message: e.to_string(),
        })?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .ok()
                .and_then(|b| b.error)
                .and_then(|e| e.message)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CatalogError::Unauthorized {
                    uri: self.uri.clone(),
                    status: status.as_u16(),
                    message,
                },
                StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT => CatalogError::Unreachable {
                    uri: self.uri.clone(),
                    message: format!("{status}: {message}"),
                },
                _ => CatalogError::Failed {
                    operation,
                    uri: self.uri.clone(),
                    status: status.as_u16(),
                    message,
                },
            });
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CatalogError::Unreachable {
                uri: self.uri.clone(),
                message: format!("{operation}: not an Iceberg REST response: {e}"),
            })
    }

    /// Properties of a namespace; `None` when it does not exist.
    pub async fn namespace(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, CatalogError> {
        let req = self
            .http
            .get(format!("{}namespaces/{}", self.base, encode(name)));
        Ok(self
            .send::<NamespaceResponse>("LoadNamespace", req)
            .await?
            .map(|n| n.properties))
    }

    /// Create a namespace with properties.
    pub async fn create_namespace(
        &self,
        name: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<(), CatalogError> {
        let req = self
            .http
            .post(format!("{}namespaces", self.base))
            .json(&json!({ "namespace": [name], "properties": properties }));
        self.send::<serde_json::Value>("CreateNamespace", req)
            .await
            .map(drop)
    }

    /// Set and remove namespace properties.
    pub async fn update_properties(
        &self,
        name: &str,
        updates: &BTreeMap<String, String>,
        removals: &[String],
    ) -> Result<(), CatalogError> {
        let req = self
            .http
            .post(format!(
                "{}namespaces/{}/properties",
                self.base,
                encode(name)
            ))
            .json(&json!({ "updates": updates, "removals": removals }));
        self.send::<serde_json::Value>("UpdateNamespaceProperties", req)
            .await
            .map(drop)
    }

    /// Top-level namespaces.
    pub async fn list_namespaces(&self) -> Result<Vec<String>, CatalogError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self.http.get(format!("{}namespaces", self.base));
            if let Some(t) = &token {
                req = req.query(&[("pageToken", t)]);
            }
            let page: ListNamespaces =
                self.send("ListNamespaces", req)
                    .await?
                    .unwrap_or(ListNamespaces {
                        namespaces: Vec::new(),
                        next_page_token: None,
                    });
            out.extend(
                page.namespaces
                    .into_iter()
                    .filter_map(|n| n.into_iter().next()),
            );
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Top-level column names of a table's current schema; `None` when the table does not exist.
    pub async fn table_columns(
        &self,
        namespace: &str,
        table: &str,
    ) -> Result<Option<Vec<String>>, CatalogError> {
        let req = self.http.get(format!(
            "{}namespaces/{}/tables/{}",
            self.base,
            encode(namespace),
            encode(table)
        ));
        let Some(loaded) = self.send::<LoadTable>("LoadTable", req).await? else {
            return Ok(None);
        };
        let m = loaded.metadata;
        let schema = m
            .schemas
            .iter()
            .find(|s| Some(s.schema_id) == m.current_schema_id)
            .or(m.schemas.last());
        Ok(Some(
            schema
                .map(|s| s.fields.iter().map(|f| f.name.clone()).collect())
                .unwrap_or_default(),
        ))
    }

    /// Whether a namespace holds no tables.
    pub async fn is_empty(&self, name: &str) -> Result<bool, CatalogError> {
        let req = self
            .http
            .get(format!("{}namespaces/{}/tables", self.base, encode(name)));
        Ok(self
            .send::<ListTables>("ListTables", req)
            .await?
            .is_none_or(|t| t.identifiers.is_empty()))
    }

    /// Drop an (empty) namespace.
    pub async fn drop_namespace(&self, name: &str) -> Result<(), CatalogError> {
        let req = self
            .http
            .delete(format!("{}namespaces/{}", self.base, encode(name)));
        self.send::<serde_json::Value>("DropNamespace", req)
            .await
            .map(drop)
    }
}

/// Property naming the DataLake (`<namespace>/<name>`) that manages a catalog namespace.
pub const OWNER_PROPERTY: &str = "lakeform.dev/owner";
/// Property listing the keys lakeform set, so that keys removed from the spec are removed.
pub const MANAGED_KEYS_PROPERTY: &str = "lakeform.dev/managed-keys";

/// What to change on an existing namespace: (updates, removals). Empty: nothing differs.
pub fn property_diff(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut want = desired.clone();
    let keys: Vec<&str> = desired.keys().map(String::as_str).collect();
    want.insert(MANAGED_KEYS_PROPERTY.into(), keys.join(","));
    let updates: BTreeMap<String, String> = want
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let removals: Vec<String> = current
        .get(MANAGED_KEYS_PROPERTY)
        .map(|s| {
            s.split(',')
                .filter(|k| !k.is_empty() && !want.contains_key(*k))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (updates, removals)
}

/// The properties to create a namespace with (desired + the managed-keys record).
pub fn with_managed_keys(desired: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let (updates, _) = property_diff(&BTreeMap::new(), desired);
    updates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn diff_updates_changed_and_removes_dropped_keys() {
        let desired = map(&[("comment", "new"), ("location", "s3://b/db")]);
        let current = map(&[
            ("comment", "old"),
            ("location", "s3://b/db"),
            ("owner", "x"),
            ("extra", "1"),
            (MANAGED_KEYS_PROPERTY, "comment,location,owner"),
        ]);
        let (updates, removals) = property_diff(&current, &desired);
        assert_eq!(updates.get("comment").map(String::as_str), Some("new"));
        assert!(!updates.contains_key("location"));
        assert_eq!(
            updates.get(MANAGED_KEYS_PROPERTY).map(String::as_str),
            Some("comment,location")
        );
        assert_eq!(
            removals,
            vec!["owner".to_string()],
            "extra keys set by others stay"
        );
    }

    #[test]
    fn nothing_to_do_when_equal() {
        let desired = map(&[("comment", "c")]);
        let current = with_managed_keys(&desired);
        let (u, r) = property_diff(&current, &desired);
        assert!(u.is_empty() && r.is_empty());
    }
}
