//! A private Iceberg REST catalog for one test (same pinned fixture `e2e/up` runs), so a test
//! can stop and restart it to simulate an outage without disturbing the shared one.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::env::Env;

/// A running catalog process; killed when dropped.
pub struct CatalogServer {
    child: Option<Child>,
    /// Base URI (`http://127.0.0.1:PORT`).
    pub uri: String,
    port: u16,
    db: PathBuf,
    log: PathBuf,
    jar: PathBuf,
    launcher: PathBuf,
    env: Env,
}

/// SQLite settings of the fixture's catalog database (sqlite-jdbc reads pragmas from the URL):
/// WAL lets readers and the writer of the server's connection pool work side by side, and a
/// busy timeout makes a writer wait for a lock instead of failing with SQLITE_BUSY at once.
/// `e2e/up` uses the same for the shared catalog.
pub const SQLITE_PRAGMAS: &str = "journal_mode=WAL&busy_timeout=30000";

impl CatalogServer {
    /// Start a catalog with its warehouse in the shared MinIO and its metadata in a SQLite file
    /// of its own (kept across [`CatalogServer::restart`]).
    pub async fn start(env: &Env, name: &str) -> Result<CatalogServer> {
        let lib = env.cache.join("lib");
        let jar = std::fs::read_dir(&lib)
            .with_context(|| format!("reading {}", lib.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("iceberg-open-api-") && n.ends_with(".jar"))
            })
            .context("the Iceberg REST fixture jar is missing (run e2e/setup)")?;
        // on the node's address, so crawl and step pods reach it too
        let port = std::net::TcpListener::bind((env.node_ip.as_str(), 0))?
            .local_addr()?
            .port();
        let dir = env.cache.join("run").join("test-catalogs");
        std::fs::create_dir_all(&dir)?;
        let mut s = CatalogServer {
            child: None,
            uri: format!("http://{}:{port}", env.node_ip),
            port,
            db: dir.join(format!("{name}.db")),
            log: env.cache.join("logs").join(format!("catalog-{name}.log")),
            jar,
            launcher: lib.join("iceberg-rest-launcher"),
            env: env.clone(),
        };
        s.spawn().await?;
        Ok(s)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let classpath = format!("{}:{}", self.launcher.display(), self.jar.display());
        let child = Command::new("java")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", &self.env.s3_access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.env.s3_secret_key)
            .env("AWS_REGION", &self.env.s3_region)
            .env("CATALOG_WAREHOUSE", &self.env.catalog_warehouse)
            .env("CATALOG_IO__IMPL", "org.apache.iceberg.aws.s3.S3FileIO")
            .env("CATALOG_S3_ENDPOINT", &self.env.s3_endpoint)
            .env("CATALOG_S3_PATH__STYLE__ACCESS", "true")
            .env("CATALOG_REST_PORT", self.port.to_string())
            .env(
                "CATALOG_URI",
                format!("jdbc:sqlite:file:{}?{SQLITE_PRAGMAS}", self.db.display()),
            )
            .args([
                "-Xms32m",
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ])
            .arg(format!("-Dlakeform.rest.host={}", self.env.node_ip))
            .args([
                "-cp",
                &classpath,
                "org.apache.iceberg.rest.LakeformLoopbackCatalogServer",
            ])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the Iceberg REST catalog (java)")?;
        self.child = Some(child);
        for _ in 0..120 {
            let address = (self.env.node_ip.as_str(), self.port);
            if let Ok(mut stream) = tokio::net::TcpStream::connect(address).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                stream.write_all(b"GET /v1/config HTTP/1.0\r\n\r\n").await?;
                let mut buf = String::new();
                stream.read_to_string(&mut buf).await.ok();
                if buf.contains("defaults") {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "the test catalog did not answer on {} within 30s; log: {}",
            self.uri,
            self.log.display()
        )
    }

    /// Stop the process (an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port with the same metadata.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn().await
    }
}

impl Drop for CatalogServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.db);
    }
}
