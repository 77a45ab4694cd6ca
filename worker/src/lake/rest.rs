//! The few REST catalog calls iceberg-rust 0.10.1 does not offer: updating namespace
//! properties (`RestCatalog::update_namespace` returns FeatureUnsupported; the crawler remembers
//! objects it could not use there) and committing table updates its transactions cannot
//! express (the crawler's type promotions, the steps' overwrites).

use std::collections::HashMap;

use crate::lake::catalog::CatalogConn;
use crate::lake::error::LakeError;

fn err(context: &str) -> impl FnOnce(reqwest::Error) -> LakeError + '_ {
    move |e| LakeError::Rest {
        context: context.to_string(),
        message: e.to_string(),
    }
}

/// The `prefix` a `/v1/config` answer sets: from `overrides`, else from `defaults`, as clients
/// merge them (iceberg-rust: defaults < client properties < overrides). Nessie puts its prefix
/// (`main%7C<warehouse>`, already percent-encoded) in `defaults` only; a base without it hits
/// `/v1/namespaces/…`, which Nessie answers 404 with an empty body.
fn config_prefix(config: &serde_json::Value) -> Option<&str> {
    ["/overrides/prefix", "/defaults/prefix"]
        .into_iter()
        .find_map(|p| config.pointer(p).and_then(|v| v.as_str()))
}

/// `{uri}/v1/{prefix}` from the catalog's `/v1/config` answer.
async fn base(http: &reqwest::Client, conn: &CatalogConn) -> Result<String, LakeError> {
    let uri = conn.uri.trim_end_matches('/');
    let mut req = http.get(format!("{uri}/v1/config"));
    if let Some(w) = &conn.warehouse {
        req = req.query(&[("warehouse", w)]);
    }
    let config: serde_json::Value = req
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(err("GET /v1/config"))?
        .json()
        .await
        .map_err(err("GET /v1/config"))?;
    Ok(match config_prefix(&config) {
        Some(p) if !p.is_empty() => format!("{uri}/v1/{p}"),
        _ => format!("{uri}/v1"),
    })
}

/// Sets and removes properties of a namespace (one level).
pub async fn update_namespace_properties(
    conn: &CatalogConn,
    namespace: &str,
    updates: HashMap<String, String>,
    removals: Vec<String>,
) -> Result<(), LakeError> {
    let http = reqwest::Client::new();
    let base = base(&http, conn).await?;
    let body = serde_json::json!({ "updates": updates, "removals": removals });
    http.post(format!("{base}/namespaces/{namespace}/properties"))
        .json(&body)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(err("POST namespace properties"))?;
    Ok(())
}

/// Commits `updates` to a table if `requirements` hold (the REST `POST …/tables/{table}`
/// endpoint), for changes iceberg-rust 0.10.1's transactions cannot express.
pub async fn commit_table(
    conn: &CatalogConn,
    ident: &iceberg::TableIdent,
    requirements: serde_json::Value,
    updates: serde_json::Value,
    what: &str,
) -> Result<(), LakeError> {
    let body = serde_json::json!({
        "identifier": { "namespace": ident.namespace().as_ref(), "name": ident.name() },
        "requirements": requirements,
        "updates": updates,
    });
    let http = reqwest::Client::new();
    let base = base(&http, conn).await?;
    let ns = ident.namespace().as_ref().join("\u{1f}");
    let url = format!("{base}/namespaces/{ns}/tables/{}", ident.name());
    let resp = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(err("POST table commit"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(LakeError::Rest {
            context: what.to_string(),
            message: format!("{status}: {}", text.chars().take(500).collect::<String>()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::config_prefix;

    #[test]
    fn prefix_from_overrides_then_defaults() {
        // Nessie 0.99.0's answer to `GET /iceberg/v1/config?warehouse=ml` (trimmed).
        let nessie = serde_json::json!({
            "defaults": { "prefix": "main%7Cml", "warehouse": "s3://b/warehouse" },
            "overrides": { "nessie.prefix-pattern": "{ref}|{warehouse}" },
        });
        assert_eq!(config_prefix(&nessie), Some("main%7Cml"));
        let both = serde_json::json!({
            "defaults": { "prefix": "d" }, "overrides": { "prefix": "o" },
        });
        assert_eq!(config_prefix(&both), Some("o"));
        let none = serde_json::json!({ "defaults": {}, "overrides": {} });
        assert_eq!(config_prefix(&none), None);
    }
}
