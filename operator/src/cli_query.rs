//! `lakeform query NS/LAKE "SQL"`: the lake's SQL, answered by its Trino coordinator — the
//! Athena of the lake, from wherever `kubectl` works.
//!
//! The statement goes through the API server's service proxy
//! (`/api/v1/namespaces/<ns>/services/<lake>-trino:8080/proxy/v1/statement`), so it needs no
//! port-forward and no route into the cluster: only `get` on `services/proxy` in the lake's
//! namespace. It speaks Trino's client protocol (<https://trino.io/docs/current/develop/client-protocol.html>):
//! `POST /v1/statement` with the SQL and `X-Trino-User` (the user that selects the workgroup),
//! then `GET` each `nextUri` — rewritten onto the proxy, as the coordinator names itself by its
//! in-cluster address — until there is none. Rows are printed as they arrive, tab-separated
//! under a header line; a failed query prints Trino's own error and exits non-zero.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::Api;
use lakeform_api::datalake::DataLake;
use serde::Deserialize;
use serde_json::Value;

use crate::desired::trino;

/// Arguments of `lakeform query`.
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The DataLake, as `<namespace>/<name>`.
    pub lake: String,
    /// The SQL statement.
    pub sql: String,
    /// Trino user the query runs as (it selects the workgroup: `spec.queryEngine.workgroups[].users`).
    #[arg(long, default_value = "lakeform")]
    pub user: String,
    /// Default schema (a catalog database) for unqualified table names.
    #[arg(long)]
    pub schema: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Path to a kubeconfig (default: in-cluster or `$KUBECONFIG`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// One page of Trino's client protocol.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Page {
    next_uri: Option<String>,
    #[serde(default)]
    columns: Option<Vec<Column>>,
    #[serde(default)]
    data: Option<Vec<Vec<Value>>>,
    error: Option<QueryError>,
}

#[derive(Deserialize, Debug)]
struct Column {
    name: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct QueryError {
    message: String,
    error_name: Option<String>,
}

/// Run `args.sql` on the lake's Trino and print its rows to `out`.
pub async fn run(args: &QueryArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let (ns, name) = crate::cli::split_ref("DataLake", &args.lake)?;
    let client = crate::cli::kube_client(args.kubeconfig.as_ref()).await?;
    let lake = Api::<DataLake>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("reading DataLake {ns}/{name}"))?;
    let Some(engine) = lake
        .spec
        .query_engine
        .as_ref()
        .and_then(|q| q.trino.as_ref())
    else {
        bail!("DataLake {ns}/{name} has no query engine (spec.queryEngine.trino)");
    };
    let proxy = format!(
        "/api/v1/namespaces/{ns}/services/{}:{}/proxy",
        trino::service_name(&lake),
        trino::HTTP_PORT
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let first = http::Request::post(format!("{proxy}/v1/statement"))
        .header("X-Trino-User", &args.user)
        .header("X-Trino-Catalog", &engine.catalog_name)
        .header("X-Trino-Source", "lakeform-cli");
    let first = match &args.schema {
        Some(schema) => first.header("X-Trino-Schema", schema),
        None => first,
    };
    let mut page = send(&client, first.body(args.sql.clone().into_bytes())?).await?;
    let mut header = false;
    loop {
        if let Some(e) = &page.error {
            let name = e.error_name.as_deref().unwrap_or("QUERY_FAILED");
            bail!("Trino refused the query: {name}: {}", e.message);
        }
        print_page(&page, &mut header, out)?;
        let Some(next) = page.next_uri.take() else {
            return Ok(());
        };
        if Instant::now() > deadline {
            bail!("the query did not finish within {} s", args.timeout);
        }
        let path = proxied(&proxy, &next)?;
        let request = http::Request::get(path).header("X-Trino-User", &args.user);
        page = send(&client, request.body(Vec::new())?).await?;
    }
}

/// `next` (the coordinator's own absolute URI) as a path under the service proxy.
fn proxied(proxy: &str, next: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(next).with_context(|| format!("Trino's nextUri {next:?}"))?;
    Ok(match url.query() {
        Some(q) => format!("{proxy}{}?{q}", url.path()),
        None => format!("{proxy}{}", url.path()),
    })
}

async fn send(client: &kube::Client, request: http::Request<Vec<u8>>) -> anyhow::Result<Page> {
    let uri = request.uri().to_string();
    let text = client.request_text(request).await.map_err(|e| match e {
        // A proxied error page (Trino's or the API server's): its first line says it.
        kube::Error::Api(status) => anyhow::anyhow!(
            "calling Trino through the API server ({uri}): HTTP {}: {}",
            status.code,
            status.message.lines().next().unwrap_or_default()
        ),
        other => anyhow::Error::new(other)
            .context(format!("calling Trino through the API server ({uri})")),
    })?;
    serde_json::from_str(&text).with_context(|| {
        let start: String = text.chars().take(200).collect();
        format!("Trino's answer is not a protocol page: {start}")
    })
}

/// The header (once, when the columns are known) and the page's rows, tab-separated.
fn print_page(page: &Page, header: &mut bool, out: &mut impl Write) -> anyhow::Result<()> {
    if let (false, Some(columns)) = (*header, &page.columns) {
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        writeln!(out, "{}", names.join("\t"))?;
        *header = true;
    }
    for row in page.data.iter().flatten() {
        let cells: Vec<String> = row.iter().map(cell).collect();
        writeln!(out, "{}", cells.join("\t"))?;
    }
    Ok(())
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_uris_are_rewritten_onto_the_proxy() {
        let proxy = "/api/v1/namespaces/team/services/sales-trino:8080/proxy";
        assert_eq!(
            proxied(
                proxy,
                "http://sales-trino.team.svc.cluster.local:8080/v1/statement/queued/20261201_1/y1?a=1"
            )
            .expect("parses"),
            format!("{proxy}/v1/statement/queued/20261201_1/y1?a=1")
        );
    }

    #[test]
    fn pages_print_a_header_once_then_rows() {
        let pages = [
            r#"{"id":"q","nextUri":"http://x/v1/statement/executing/q/1","stats":{"state":"QUEUED"}}"#,
            r#"{"id":"q","columns":[{"name":"n","type":"bigint"},{"name":"s","type":"varchar"}],"data":[[3,"a"],[null,"b"]]}"#,
        ];
        let mut out = Vec::new();
        let mut header = false;
        for p in pages {
            let page: Page = serde_json::from_str(p).expect("a page");
            print_page(&page, &mut header, &mut out).expect("prints");
        }
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "n\ts\n3\ta\nNULL\tb\n"
        );
    }
}
