//! The environment `e2e/up` describes in `$LAKEFORM_CACHE/run/env`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// Endpoints and credentials of the running e2e environment.
///
/// Each value comes from the process environment when set there (`e2e/run` sources the env
/// file), otherwise from `$LAKEFORM_CACHE/run/env`.
#[derive(Clone, Debug)]
pub struct Env {
    pub cache: PathBuf,
    pub kubeconfig: PathBuf,
    pub apiserver: String,
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key: String,
    pub s3_secret_key: String,
    pub catalog_uri: String,
    pub catalog_warehouse: String,
    pub pg_url: String,
    /// `mysql://user:pass@ip:port/lakeform` of the e2e MariaDB (`LAKEFORM_MYSQL_URL`); `None`
    /// in an environment an older `e2e/up` started (rerun it).
    pub mysql_url: Option<String>,
    pub python: PathBuf,
    pub kubectl: PathBuf,
    /// Where MinIO's webhook target `LAKEFORM` delivers bucket notifications: `ip:port` of
    /// the events Service of the one operator a test installs with the receiver.
    pub events_address: Option<String>,
    /// The bearer token that webhook target sends.
    pub events_token: Option<String>,
    /// The node's name (the machine's hostname) and address: every endpoint above listens on
    /// that address, so pods and the host reach it alike.
    pub node_name: String,
    pub node_ip: String,
    /// The node's containerd socket (`ctr --address`).
    pub containerd_sock: String,
    /// The lakeform image built from the commit under test and imported into the node's
    /// containerd (`e2e/run` builds it; `LAKEFORM_E2E_IMAGE`).
    pub image: String,
}

/// The image `e2e/run` builds from the binary under test, unless `LAKEFORM_E2E_IMAGE` says
/// otherwise.
pub const DEFAULT_E2E_IMAGE: &str = "ghcr.io/lakeform/lakeform:e2e";

/// The lakeform image under test: `LAKEFORM_E2E_IMAGE`, else [`DEFAULT_E2E_IMAGE`].
pub fn e2e_image() -> String {
    std::env::var("LAKEFORM_E2E_IMAGE")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_E2E_IMAGE.to_string())
}

/// `$LAKEFORM_CACHE`, defaulting to `$HOME/.cache/lakeform` like `e2e/lib.sh`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LAKEFORM_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/lakeform")
}

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The locally built `lakeform` binary: `$LAKEFORM_BIN`, else `$CARGO_TARGET_DIR/debug/lakeform`,
/// else `<repo>/target/debug/lakeform`.
pub fn lakeform_bin() -> Result<PathBuf> {
    let path = if let Some(bin) = std::env::var_os("LAKEFORM_BIN").filter(|v| !v.is_empty()) {
        PathBuf::from(bin)
    } else if let Some(target) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        PathBuf::from(target).join("debug/lakeform")
    } else {
        repo_root().join("target/debug/lakeform")
    };
    if !path.is_file() {
        bail!(
            "the lakeform binary was expected at {} but is not there; build it with \
             `cargo build -p lakeform-operator` or set LAKEFORM_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// Parses the `export K=V` lines `e2e/up` writes. Values may be single- or double-quoted.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        out.insert(key.trim().to_string(), unquote(value.trim()));
    }
    out
}

fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        // Shell single quotes; `'\''` is how a quote is embedded.
        return value[1..value.len() - 1].replace("'\\''", "'");
    }
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        let inner = &value[1..value.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    value.to_string()
}

impl Env {
    /// Path of the env file `e2e/up` writes.
    pub fn file() -> PathBuf {
        cache_dir().join("run/env")
    }

    /// Loads the environment; fails with a message that says how to start it.
    pub fn load() -> Result<Env> {
        let file = Self::file();
        let from_file = match std::fs::read_to_string(&file) {
            Ok(text) => parse_env_file(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => {
                return Err(err).with_context(|| format!("reading {}", file.display()));
            }
        };
        let get = |key: &str| -> Result<String> {
            if let Some(v) = std::env::var(key).ok().filter(|v| !v.is_empty()) {
                return Ok(v);
            }
            from_file.get(key).cloned().with_context(|| {
                format!(
                    "{key} is neither in the environment nor in {} — is the e2e environment up? \
                     Run `e2e/up` (or `e2e/run`, which starts it)",
                    file.display()
                )
            })
        };
        Ok(Env {
            cache: get("LAKEFORM_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|_| cache_dir()),
            kubeconfig: get("KUBECONFIG")?.into(),
            apiserver: get("LAKEFORM_APISERVER")?,
            s3_endpoint: get("LAKEFORM_S3_ENDPOINT")?,
            s3_region: get("LAKEFORM_S3_REGION")?,
            s3_access_key: get("LAKEFORM_S3_ACCESS_KEY")?,
            s3_secret_key: get("LAKEFORM_S3_SECRET_KEY")?,
            catalog_uri: get("LAKEFORM_CATALOG_URI")?,
            catalog_warehouse: get("LAKEFORM_CATALOG_WAREHOUSE")?,
            pg_url: get("LAKEFORM_PG_URL")?,
            mysql_url: get("LAKEFORM_MYSQL_URL").ok(),
            python: get("LAKEFORM_PYTHON")?.into(),
            kubectl: get("LAKEFORM_KUBECTL")?.into(),
            events_address: get("LAKEFORM_EVENTS_ADDRESS").ok(),
            events_token: get("LAKEFORM_EVENTS_TOKEN").ok(),
            node_name: get("LAKEFORM_NODE_NAME")?,
            node_ip: get("LAKEFORM_NODE_IP")?,
            containerd_sock: get("LAKEFORM_CONTAINERD_SOCK")?,
            image: e2e_image(),
        })
    }

    /// A kube client for the admin kubeconfig.
    pub async fn kube_config(&self) -> Result<kube::Config> {
        // rustls has both ring and aws-lc-rs here (see lake.rs); pick one before kube builds TLS.
        crate::lake::install_rustls_provider();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .with_context(|| format!("reading kubeconfig {}", self.kubeconfig.display()))?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .with_context(|| format!("loading kubeconfig {}", self.kubeconfig.display()))
    }

    /// A kube client for the admin kubeconfig.
    pub async fn client(&self) -> Result<kube::Client> {
        let config = self.kube_config().await?;
        kube::Client::try_from(config).context("building the kube client")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_export_lines() {
        let env = parse_env_file(
            "# written by e2e/up\nexport A=1\nexport B='x y'\nexport C=\"q\\\"z\"\nD=plain\n\nexport E='it'\\''s'\n",
        );
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x y");
        assert_eq!(env["C"], "q\"z");
        assert_eq!(env["D"], "plain");
        assert_eq!(env["E"], "it's");
    }
}
