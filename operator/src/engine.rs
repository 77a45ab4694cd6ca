//! The query engine's own API, as the operator reads it: whether a Trino coordinator has
//! finished starting (`GET /v1/info` answers `"starting": true` while plugins and catalogs still
//! load; queries are refused with `SERVER_STARTING_UP` until then).

use std::time::Duration;

use serde::Deserialize;

#[derive(Deserialize)]
struct Info {
    starting: bool,
}

/// Whether the Trino coordinator at `uri` (`http://host:port`) accepts queries: `Ok(false)`
/// while it starts, `Err` with the reason when it cannot be asked.
pub async fn trino_started(uri: &str) -> Result<bool, String> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/v1/info", uri.trim_end_matches('/'));
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", resp.status()));
    }
    let info: Info = resp
        .json()
        .await
        .map_err(|e| format!("GET {url}: not Trino's info: {e}"))?;
    Ok(!info.starting)
}
