//! Lakekeeper's management API, for a managed catalog: the one-time bootstrap and the lake's
//! warehouse. Both calls are idempotent here: "already done" (409) answers are success.
//! Request bodies are built by `desired::lakekeeper` (they hold S3 keys: sent, never logged).

use reqwest::StatusCode;
use serde_json::Value;

use crate::desired::lakekeeper::{BOOTSTRAP_PATH, WAREHOUSE_PATH, bootstrap_request};

/// Why a management call failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// No answer (refused, timeout, DNS).
    #[error("POST {url}: {message}")]
    Unreachable { url: String, message: String },
    /// An error answer other than 409 (the first 300 characters of its body).
    #[error("POST {url}: {status}: {body}")]
    Failed {
        url: String,
        status: StatusCode,
        body: String,
    },
}

impl ManagementError {
    /// Condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ManagementError::Unreachable { .. } => "CatalogUnreachable",
            ManagementError::Failed { .. } => "CatalogError",
        }
    }
}

/// Bootstrap the Lakekeeper at `base` (its in-cluster URI) and create the warehouse described
/// by `warehouse` (a `desired::lakekeeper::warehouse_request` body), in that order.
pub async fn bootstrap_with_warehouse(base: &str, warehouse: Value) -> Result<(), ManagementError> {
    let http = reqwest::Client::new();
    let calls = [
        (BOOTSTRAP_PATH, bootstrap_request()),
        (WAREHOUSE_PATH, warehouse),
    ];
    for (path, body) in calls {
        let url = format!("{base}{path}");
        let resp =
            http.post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| ManagementError::Unreachable {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
        let status = resp.status();
        // 409: already bootstrapped / warehouse exists.
        if !(status.is_success() || status == StatusCode::CONFLICT) {
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(ManagementError::Failed { url, status, body });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_reasons_as_the_controller_reported_them() {
        let e = ManagementError::Failed {
            url: "http://lk:8181/management/v1/warehouse".into(),
            status: StatusCode::BAD_REQUEST,
            body: "bad profile".into(),
        };
        assert_eq!(e.reason(), "CatalogError");
        assert_eq!(
            e.to_string(),
            "POST http://lk:8181/management/v1/warehouse: 400 Bad Request: bad profile"
        );
        let e = ManagementError::Unreachable {
            url: "http://lk:8181/management/v1/bootstrap".into(),
            message: "connection refused".into(),
        };
        assert_eq!(e.reason(), "CatalogUnreachable");
    }
}
