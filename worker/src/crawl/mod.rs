//! The crawler engine (DESIGN.md §7): `lakeform crawl`.
//!
//! Library entry points: [`CrawlArgs`] (the subcommand's arguments), [`run`] (async) and
//! [`run_blocking`] (starts its own tokio runtime). The stages live in their own modules:
//! [`listing`] → [`examine`] ([`classify`], [`infer`], [`compression`]) → [`layout`] →
//! [`register`] ([`catalog`], [`evolve`], [`datafile`] for Parquet in place, [`ingest`] for
//! CSV/JSON/log/Avro) → report; [`engine`] runs them as a pipeline. S3, the catalog client,
//! REST commits and the Parquet writer are [`crate::lake`]'s, shared with the workflow steps.

pub mod catalog;
pub mod classify;
pub mod compression;
pub mod datafile;
pub mod dates;
pub mod engine;
pub mod error;
pub mod evolve;
pub mod examine;
pub mod infer;
pub mod ingest;
pub mod layout;
pub mod listing;
pub mod model;
pub mod register;
pub mod schema;
pub mod source;

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lakeform_api::crawler::{CrawlRun, RunResult};

pub use engine::{CrawlInput, CrawlOutcome, crawl, dry_run};
pub use error::CrawlError;

/// `lakeform crawl`: crawl once and print the run report (JSON) on stdout.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["crawler", "crawler_file"])))]
pub struct CrawlArgs {
    /// The Crawler to run, as `<namespace>/<name>`; its status gets the report.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub crawler: Option<String>,
    /// File mode: a Crawler manifest (no cluster needed).
    #[arg(long, value_name = "FILE", requires = "lake_file")]
    pub crawler_file: Option<PathBuf>,
    /// File mode: the DataLake manifest the Crawler refers to. Credentials come from
    /// LAKEFORM_S3_ACCESS_KEY and LAKEFORM_S3_SECRET_KEY.
    #[arg(long, value_name = "FILE", requires = "crawler_file")]
    pub lake_file: Option<PathBuf>,
    /// Name of the Job running the crawl, recorded in the report.
    #[arg(long, env = "LAKEFORM_JOB_NAME")]
    pub job_name: Option<String>,
    /// List, classify, infer and group only: print the tables a crawl would create, write
    /// nothing (no catalog, no status).
    #[arg(long)]
    pub dry_run: bool,
    /// Examine only these objects, one `bucket/key` per line (a batch of bucket notifications;
    /// event-batch Jobs set it from the batch's ConfigMap). Objects already in tables are
    /// considered as usual; other new objects wait for a later run.
    #[arg(long, env = KEYS_ENV, value_name = "LINES")]
    pub keys: Option<String>,
}

/// Environment variable of [`CrawlArgs::keys`].
pub const KEYS_ENV: &str = "LAKEFORM_CRAWL_KEYS";

/// The non-empty lines of a `--keys` value.
pub fn parse_keys(lines: &str) -> BTreeSet<String> {
    lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Runs a crawl: prints the report and, for a Crawler object, writes it to its status. A run
/// that failed as a whole is reported (result `Failed`) and returned as an error.
pub async fn run(args: CrawlArgs) -> Result<CrawlOutcome, CrawlError> {
    // kube (ring) and opendal's reqwest (aws-lc-rs) both enable rustls providers: pick one
    let _ = rustls::crypto::ring::default_provider().install_default();
    let start = now();
    let (mut input, cluster) = match (&args.crawler, &args.crawler_file, &args.lake_file) {
        (Some(r), _, _) => {
            let (ns, name) = source::parse_ref(r)?;
            let client = kube::Client::try_default().await?;
            let input = source::from_cluster(&client, &ns, &name).await?;
            (input, Some((client, ns, name)))
        }
        (None, Some(c), Some(l)) => (source::from_files(c, l)?, None),
        _ => {
            return Err(CrawlError::Config(
                "give --crawler, or --crawler-file with --lake-file".into(),
            ));
        }
    };
    input.only_keys = args.keys.as_deref().map(parse_keys);
    let result = if args.dry_run {
        engine::dry_run(&input).await
    } else {
        crawl(&input).await
    };
    let (mut outcome, failure) = match result {
        Ok(o) => (o, None),
        Err(e) => (
            CrawlOutcome {
                run: CrawlRun {
                    message: Some(e.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            },
            Some(e),
        ),
    };
    outcome.run.job_name = args.job_name.clone();
    outcome.run.start_time = Some(start);
    outcome.run.completion_time = Some(now());
    outcome.run.result = Some(if failure.is_some() {
        RunResult::Failed
    } else {
        RunResult::Succeeded
    });
    println!("{}", serde_json::to_string_pretty(&outcome.run)?);
    if args.dry_run {
        eprintln!("{}", serde_json::to_string_pretty(&outcome.tables)?);
        eprintln!("S3 requests: {} GET, {} LIST", outcome.gets, outcome.lists);
        return match failure {
            Some(e) => Err(e),
            None => Ok(outcome),
        };
    }
    tracing::info!(
        gets = outcome.gets,
        lists = outcome.lists,
        "S3 requests of the crawl"
    );
    if let Some((client, ns, name)) = cluster {
        // on failure keep the table list of the previous run
        let tables = if failure.is_some() {
            kube::Api::<lakeform_api::crawler::Crawler>::namespaced(client.clone(), &ns)
                .get_status(&name)
                .await
                .ok()
                .and_then(|c| c.status)
                .map(|s| s.tables)
                .unwrap_or_default()
        } else {
            outcome.tables.clone()
        };
        source::write_status(&client, &ns, &name, &outcome.run, &tables).await?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(outcome),
    }
}

/// [`run`] on a new multi-threaded tokio runtime (for the synchronous CLI).
pub fn run_blocking(args: CrawlArgs) -> Result<CrawlOutcome, CrawlError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CrawlError::Runtime)?
        .block_on(run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_trimmed_non_empty_lines() {
        let keys = parse_keys("raw/a.csv\n\n  raw/b c.csv \r\nraw/a.csv\n");
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            vec!["raw/a.csv".to_string(), "raw/b c.csv".to_string()]
        );
    }
}
