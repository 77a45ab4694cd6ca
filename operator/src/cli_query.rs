//! `lakeform query NS/LAKE "SQL"`: the lake's SQL, answered by its Trino coordinator — the
//! Athena of the lake, from wherever `kubectl` works.
//!
//! - **Who you are**: Trino authenticates every user by password (`desired::trino_auth`).
//!   `--user U` logs in as U with the password from U's login Secret in the lake's namespace
//!   (`<lake>-trino-user-<U>`, `<lake>-trino-admin` for the default admin, …), which only U
//!   may read — or with `$LAKEFORM_TRINO_PASSWORD` when set. Reading the Secret needs `get` on
//!   it; the rest needs `get configmaps`, `list pods` and `create pods/portforward` in the
//!   lake's namespace.
//! - **How it gets there**: HTTPS through a port-forward to the coordinator pod's port 8443
//!   (`cli_forward`; the API server's service proxy would strip the `Authorization` header),
//!   verified with the lake's CA certificate from the ConfigMap `<lake>-trino-ca` against the
//!   Service's DNS name.
//! - **What it speaks**: Trino's client protocol
//!   (<https://trino.io/docs/current/develop/client-protocol.html>): `POST /v1/statement` with
//!   the SQL, then `GET` each `nextUri` — rewritten onto the forward, as the coordinator names
//!   itself by its in-cluster address — until there is none. Rows are printed as they arrive,
//!   tab-separated under a header line; a failed query prints Trino's own error and exits
//!   non-zero.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use lakeform_api::datalake::DataLake;
use serde::Deserialize;
use serde_json::Value;

use crate::desired::{meta, trino, trino_auth};

/// Environment variable with a password to use instead of the login Secret's.
pub const PASSWORD_ENV: &str = "LAKEFORM_TRINO_PASSWORD";

/// How long one HTTP exchange with Trino may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of `lakeform query`.
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// The DataLake, as `<namespace>/<name>`.
    pub lake: String,
    /// The SQL statement.
    pub sql: String,
    /// Trino user the query runs as: `lakeform` (the admin), a user name, `group/<name>` or
    /// `system:serviceaccount:<ns>:<name>`. Its password is read from its login Secret (or
    /// `$LAKEFORM_TRINO_PASSWORD`); it selects the workgroup (`spec.queryEngine.workgroups[].users`).
    #[arg(long, default_value = trino_auth::ADMIN_USER)]
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

/// A Trino login: basic-authentication name and password.
struct Credentials {
    login: String,
    password: String,
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
    let credentials = credentials(&client, &lake, ns, &args.user).await?;
    let selector = meta::selector(name, trino::COORDINATOR_COMPONENT)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let port = u16::try_from(trino_auth::HTTPS_PORT)?;
    let forward = crate::cli_forward::start(&client, ns, &selector, port).await?;
    // The certificate names the Service: connect to that name, resolved to the forward.
    let host = trino_auth::dns_names(&lake).pop().unwrap_or_default();
    let base = format!("https://{host}:{}", forward.addr.port());
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca_certificate(&client, &lake, ns).await?)
        .resolve(&host, forward.addr)
        .build()
        .context("building the HTTP client")?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let request = |r: reqwest::RequestBuilder| {
        r.basic_auth(&credentials.login, Some(&credentials.password))
            .header("X-Trino-User", &args.user)
    };
    let first = request(http.post(format!("{base}/v1/statement")))
        .header("X-Trino-Catalog", &engine.catalog_name)
        .header("X-Trino-Source", "lakeform-cli");
    let first = match &args.schema {
        Some(schema) => first.header("X-Trino-Schema", schema),
        None => first,
    };
    let mut page = send(first.body(args.sql.clone()), &credentials).await?;
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
        let url = forwarded(&base, &next)?;
        page = send(request(http.get(url)), &credentials).await?;
    }
}

/// The lake's CA certificate, from its public ConfigMap `<lake>-trino-ca`.
async fn ca_certificate(
    client: &kube::Client,
    lake: &DataLake,
    ns: &str,
) -> anyhow::Result<reqwest::Certificate> {
    let name = trino_auth::ca_config_map_name(lake);
    let map = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(&name)
        .await
        .with_context(|| format!("reading the lake's CA certificate (ConfigMap {ns}/{name})"))?;
    let pem = map
        .data
        .as_ref()
        .and_then(|d| d.get(trino_auth::CA_FILE))
        .with_context(|| format!("ConfigMap {ns}/{name} has no {}", trino_auth::CA_FILE))?;
    reqwest::Certificate::from_pem(pem.as_bytes())
        .with_context(|| format!("the CA certificate in ConfigMap {ns}/{name}"))
}

/// The login of `user` and its password: `$LAKEFORM_TRINO_PASSWORD`, or its login Secret's.
async fn credentials(
    client: &kube::Client,
    lake: &DataLake,
    ns: &str,
    user: &str,
) -> anyhow::Result<Credentials> {
    let principal = trino_auth::principal_of_user(user);
    let (login, secret_name) = match user == trino_auth::ADMIN_USER {
        true => (user.to_string(), trino_auth::admin_secret_name(lake)),
        false => match trino_auth::login_name(&principal) {
            Some(login) => (login, trino_auth::login_secret_name(lake, &principal)),
            None => bail!(
                "{user:?} cannot log in to Trino: basic authentication carries no ':' in a user name, and system/… and group/… are reserved"
            ),
        },
    };
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(Credentials { login, password });
    }
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(&secret_name)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 403 => anyhow::anyhow!(
                "you may not read the Trino login Secret {ns}/{secret_name} of user {user}: only that principal may (or set {PASSWORD_ENV})"
            ),
            other => anyhow::Error::new(other)
                .context(format!("reading the Trino login Secret {ns}/{secret_name}")),
        })?;
    let Some(secret) = secret else {
        bail!(
            "user {user} has no Trino login in this lake (no Secret {ns}/{secret_name}): logins are made for the admin, the users of workgroups and the principals of Grants"
        );
    };
    let value = |key: &str| crate::controller::lake::secret_value(&secret, key);
    match (value(trino_auth::USER_KEY), value(trino_auth::PASSWORD_KEY)) {
        (Some(login), Some(password)) => Ok(Credentials { login, password }),
        _ => bail!(
            "Secret {ns}/{secret_name} lacks {} or {}",
            trino_auth::USER_KEY,
            trino_auth::PASSWORD_KEY
        ),
    }
}

/// `next` (the coordinator's own absolute URI) on the forward's `base`.
fn forwarded(base: &str, next: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(next).with_context(|| format!("Trino's nextUri {next:?}"))?;
    Ok(match url.query() {
        Some(q) => format!("{base}{}?{q}", url.path()),
        None => format!("{base}{}", url.path()),
    })
}

/// Send one request; a refused login or an error page becomes a one-line error.
async fn send(request: reqwest::RequestBuilder, credentials: &Credentials) -> anyhow::Result<Page> {
    let response = request.send().await.context("calling Trino")?;
    let status = response.status();
    let text = response.text().await.context("reading Trino's answer")?;
    if status == reqwest::StatusCode::UNAUTHORIZED {
        bail!(
            "Trino refused the credentials of login {} (HTTP 401)",
            credentials.login
        );
    }
    if !status.is_success() {
        bail!(
            "Trino answered HTTP {status}: {}",
            text.lines().next().unwrap_or_default()
        );
    }
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
    fn next_uris_are_rewritten_onto_the_forward() {
        let base = "http://127.0.0.1:40123";
        assert_eq!(
            forwarded(
                base,
                "http://sales-trino.team.svc.cluster.local:8080/v1/statement/queued/20261201_1/y1?a=1"
            )
            .expect("parses"),
            format!("{base}/v1/statement/queued/20261201_1/y1?a=1")
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
