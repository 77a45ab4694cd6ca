//! The few REST catalog calls iceberg-rust 0.10.1 does not offer: updating namespace
//! properties (`RestCatalog::update_namespace` returns FeatureUnsupported), used to remember
//! objects a crawler could not use so a re-run does not read them again.

use std::collections::HashMap;

use crate::crawl::catalog::CatalogConn;
use crate::crawl::error::CrawlError;

fn err(context: &str) -> impl FnOnce(reqwest::Error) -> CrawlError + '_ {
    move |e| CrawlError::Rest {
        context: context.to_string(),
        message: e.to_string(),
    }
}

/// `{uri}/v1/{prefix}` from the catalog's `/v1/config` overrides.
async fn base(http: &reqwest::Client, conn: &CatalogConn) -> Result<String, CrawlError> {
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
    Ok(
        match config.pointer("/overrides/prefix").and_then(|p| p.as_str()) {
            Some(p) if !p.is_empty() => format!("{uri}/v1/{p}"),
            _ => format!("{uri}/v1"),
        },
    )
}

/// Sets and removes properties of a namespace (one level).
pub async fn update_namespace_properties(
    conn: &CatalogConn,
    namespace: &str,
    updates: HashMap<String, String>,
    removals: Vec<String>,
) -> Result<(), CrawlError> {
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

/// Type promotions Iceberg allows (int→long, float→double, decimal precision), committed as a
/// new schema through the REST commit endpoint: iceberg-rust 0.10.1's `UpdateSchemaAction`
/// only adds and deletes columns, and its `TableCommit` cannot be built outside the crate.
/// `columns`: dotted paths of primitive fields and their new types.
pub async fn widen_columns(
    conn: &CatalogConn,
    table: &iceberg::table::Table,
    columns: &[(String, iceberg::spec::PrimitiveType)],
) -> Result<(), CrawlError> {
    use iceberg::spec::{NestedField, NestedFieldRef, Schema, StructType, Type};
    use iceberg::{TableRequirement, TableUpdate};

    fn rebuild(
        prefix: &str,
        fields: &[NestedFieldRef],
        columns: &[(String, iceberg::spec::PrimitiveType)],
    ) -> Vec<NestedFieldRef> {
        fields
            .iter()
            .map(|f| {
                let path = if prefix.is_empty() {
                    f.name.clone()
                } else {
                    format!("{prefix}.{}", f.name)
                };
                let mut nf: NestedField = f.as_ref().clone();
                match f.field_type.as_ref() {
                    Type::Primitive(_) => {
                        if let Some((_, t)) = columns.iter().find(|(p, _)| *p == path) {
                            nf.field_type = Box::new(Type::Primitive(t.clone()));
                        }
                    }
                    Type::Struct(s) => {
                        nf.field_type = Box::new(Type::Struct(StructType::new(rebuild(
                            &path,
                            s.fields(),
                            columns,
                        ))));
                    }
                    _ => {}
                }
                std::sync::Arc::new(nf)
            })
            .collect()
    }

    let metadata = table.metadata();
    let current = metadata.current_schema();
    let next_id = metadata
        .schemas_iter()
        .map(|s| s.schema_id())
        .max()
        .unwrap_or(0)
        + 1;
    let schema = Schema::builder()
        .with_schema_id(next_id)
        .with_identifier_field_ids(current.identifier_field_ids())
        .with_fields(rebuild("", current.as_struct().fields(), columns))
        .build()
        .map_err(|e| CrawlError::Rest {
            context: format!("widened schema of {}", table.identifier()),
            message: e.to_string(),
        })?;
    commit_table(
        conn,
        table.identifier(),
        serde_json::json!([TableRequirement::CurrentSchemaIdMatch {
            current_schema_id: current.schema_id()
        }]),
        serde_json::json!([
            TableUpdate::AddSchema { schema },
            TableUpdate::SetCurrentSchema { schema_id: -1 }
        ]),
        &format!("widening columns of {}", table.identifier()),
    )
    .await
}

/// Commits `updates` to a table if `requirements` hold (the REST `POST …/tables/{table}`
/// endpoint), for changes iceberg-rust 0.10.1's transactions cannot express.
pub async fn commit_table(
    conn: &CatalogConn,
    ident: &iceberg::TableIdent,
    requirements: serde_json::Value,
    updates: serde_json::Value,
    what: &str,
) -> Result<(), CrawlError> {
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
        return Err(CrawlError::Rest {
            context: what.to_string(),
            message: format!("{status}: {}", text.chars().take(500).collect::<String>()),
        });
    }
    Ok(())
}
