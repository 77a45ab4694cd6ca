//! The event receiver: MinIO's webhook target POSTs notification documents here; each key
//! goes to the batchers whose sources hold it.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;

use super::{Subscriptions, WEBHOOK_PATH};
use crate::storage::notify::parse_webhook;

/// The event receiver's state.
#[derive(Clone)]
struct Receiver {
    subscriptions: Arc<Subscriptions>,
    /// Bearer token MinIO's webhook target sends (its `auth_token`); `None`: no check.
    token: Option<String>,
}

/// Serve the event receiver on `listener`: MinIO's webhook target POSTs notification
/// documents to [`WEBHOOK_PATH`]; other methods (MinIO's reachability checks) get 200.
pub async fn serve(
    listener: tokio::net::TcpListener,
    subscriptions: Arc<Subscriptions>,
    token: Option<String>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(WEBHOOK_PATH, any(receive))
        .with_state(Receiver {
            subscriptions,
            token,
        });
    tracing::info!(addr = ?listener.local_addr(), path = WEBHOOK_PATH, "receiving bucket notifications");
    axum::serve(listener, app).await
}

/// Whether `given` equals `secret`, in time that does not depend on where they differ (a
/// token guessed byte by byte learns nothing from the answer's timing).
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    use hmac::Mac;
    // Compare HMACs of both under one key: equal-length digests, compared in constant time.
    let mac = |data: &[u8]| {
        hmac::Hmac::<sha2::Sha256>::new_from_slice(b"lakeform-event-token").map(|mut m| {
            m.update(data);
            m
        })
    };
    match (mac(given), mac(secret)) {
        (Ok(g), Ok(s)) => g.verify_slice(&s.finalize().into_bytes()).is_ok(),
        _ => false,
    }
}

async fn receive(
    State(r): State<Receiver>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    if let Some(token) = &r.token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
            return (StatusCode::UNAUTHORIZED, "bad or missing token\n".into());
        }
    }
    if method != axum::http::Method::POST || body.is_empty() {
        return (StatusCode::OK, String::new());
    }
    match parse_webhook(&body) {
        Ok(records) => {
            let mut taken = 0;
            for (bucket, key) in &records {
                taken += r.subscriptions.deliver(bucket, key);
            }
            tracing::debug!(
                records = records.len(),
                taken,
                "bucket notifications received"
            );
            (StatusCode::OK, String::new())
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("not a bucket notification document: {e}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_secret(b"s3cret-token", b"s3cret-token"));
        assert!(!same_secret(b"s3cret-tokem", b"s3cret-token"));
        assert!(!same_secret(b"s3cret", b"s3cret-token"));
        assert!(!same_secret(b"", b"s3cret-token"));
    }
}
