//! Issue 19: the crawler on real public data files — CSV, TSV and JSON documents of flights,
//! weather, airports, stock prices, cars, penguins, movies… from the pinned npm package
//! vega-datasets (`e2e/setup` step `real-data`; nobody here wrote them). Each file goes into a
//! folder of its own, one crawl makes one table per folder, and each table's row and column
//! counts (read back by PyIceberg) must equal DuckDB's reading of the same file; no table may
//! be `col_N` fragments or empty while its file has rows. The score is printed per file.
//! Generated files add what the package lacks: `NA` after row 5,500 of a numeric column, a
//! CloudTrail-shaped `{"Records": [...]}` document, and a CSV over the whole-read cap whose
//! last row breaks its column's type (reported, and no empty table made for it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use lakeform_e2e::{Env, lake};
use lakeform_worker::crawl::crawl;
use serde_json::Value;

use super::{cleanup, input_at, stats, summary};

const PREFIX: &str = "real/";

/// The files (paths in the package's `data/`): 17 CSV/TSV and 14 JSON documents, in every
/// layout the package has (arrays on one line, one record per line, pretty-printed; nested
/// records; keys missing from some records; nulls; CRLF; no final newline; over 1 MiB).
const FILES: [&str; 31] = [
    "airports.csv",
    "birdstrikes.csv",
    "co2-concentration.csv",
    "flights-airport.csv",
    "github.csv",
    "global-temp.csv",
    "la-riots.csv",
    "seattle-weather.csv",
    "seattle-weather-hourly-normals.csv",
    "sp500-2000.csv",
    "stocks.csv",
    "species.csv",
    "unemployment.tsv",
    "us-employment.csv",
    "weather.csv",
    "windvectors.csv",
    "zipcodes.csv",
    "flights-2k.json",
    "flights-20k.json",
    "cars.json",
    "penguins.json",
    "movies.json",
    "football.json",
    "barley.json",
    "population.json",
    "unemployment-across-industries.json",
    "countries.json",
    "weekly-weather.json",
    "political-contributions.json",
    "ohlc.json",
    "monarchs.json",
];

/// Where `e2e/setup` unpacked the package's `data/`.
fn data_dir() -> PathBuf {
    lakeform_e2e::env::cache_dir().join("data/vega-datasets/data")
}

/// The table (and folder) name of a file: its stem in lower case, `_` for anything else.
fn table_name(file: &str) -> String {
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    stem.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_world_files_become_the_tables_duckdb_reads() -> Result<()> {
    lake::install_rustls_provider();
    let mut env = Env::load()?;
    let dir = data_dir();
    ensure!(
        dir.join(FILES[0]).is_file(),
        "{} is missing: run e2e/setup (step real-data)",
        dir.display()
    );
    let bucket = lake::unique_name("lakeform-real");
    let server = lakeform_e2e::catalog_server::CatalogServer::start(&env, &bucket).await?;
    env.catalog_uri = server.uri.clone();
    let s3 = lake::s3_client(&env);
    let database = bucket.replace('-', "_");
    lake::create_bucket(&s3, &bucket).await?;
    let result = scenario(&env, &s3, &bucket, &database, &dir).await;
    cleanup(&env, &s3, &bucket, &database).await;
    result
}

async fn scenario(
    env: &Env,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    database: &str,
    dir: &Path,
) -> Result<()> {
    for file in FILES {
        let body = std::fs::read(dir.join(file)).with_context(|| format!("reading {file}"))?;
        let key = format!("{PREFIX}{}/{file}", table_name(file));
        lake::put_object(s3, bucket, &key, body).await?;
    }
    for (key, body) in generated() {
        lake::put_object(s3, bucket, &format!("{PREFIX}{key}"), body).await?;
    }
    let outcome = crawl(&input_at(env, bucket, database, PREFIX)?)
        .await
        .context("crawling the real files")?;
    eprintln!("real-world crawl: {}", summary(&outcome));
    let made: Vec<&str> = outcome.tables.iter().map(|t| t.name.as_str()).collect();
    let tables: Vec<String> = FILES.iter().map(|f| table_name(f)).collect();
    let present: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| made.contains(t))
        .collect();
    let ours = stats(env, "pyiceberg", database, &present).await?;
    let theirs = duckdb_files(env, dir).await?;
    let mut failures = Vec::new();
    for file in FILES {
        let table = table_name(file);
        let want = &theirs[file];
        let verdict = compare(ours.get(&table), want);
        println!("real-world: {file:<38} duckdb {want} → {verdict}");
        if verdict != "same" {
            failures.push(format!("{file}: {verdict}"));
        }
    }
    println!(
        "real-world: score {}/{} files as DuckDB reads them",
        FILES.len() - failures.len(),
        FILES.len()
    );
    failures.extend(check_generated(env, database, &outcome, bucket).await?);
    failures.extend(check_decisions(&outcome));
    if !failures.is_empty() {
        bail!(
            "tables that differ from DuckDB's reading:\n{}",
            failures.join("\n")
        );
    }
    Ok(())
}

/// Rows of the generated NA file; its `NA` is at row 5,500.
const NA_ROWS: usize = 8000;

/// Generated objects, by key under the prefix: the classes the package lacks.
fn generated() -> Vec<(String, Vec<u8>)> {
    let mut na = String::from("id,price,country\n");
    for r in 0..NA_ROWS {
        let price = if r == 5500 {
            "NA".to_string()
        } else {
            format!("{}.25", r % 97)
        };
        na.push_str(&format!("{r},{price},DE\n"));
    }
    let records: Vec<String> = (0..50)
        .map(|r| format!("{{\"eventName\":\"Get{r}\",\"awsRegion\":\"eu-1\",\"requestParameters\":{{\"bucketName\":\"b{r}\"}}}}"))
        .collect();
    let trail = format!("{{\"Records\": [{}]}}", records.join(",\n"));
    // over the 16 MiB the crawler reads whole: the sample says integers, the last row does not
    let mut late = String::from("id,n\n");
    let mut r = 0u64;
    while late.len() < 17 << 20 {
        late.push_str(&format!("{r},{}\n", r % 1000));
        r += 1;
    }
    late.push_str("-1,not-a-number\n");
    vec![
        ("na_after_sample/prices.csv".into(), na.into_bytes()),
        ("cloudtrail/trail.json".into(), trail.into_bytes()),
        ("late_conflict/big.csv".into(), late.into_bytes()),
    ]
}

/// The generated objects' tables: every NA row ingested with a null price; the CloudTrail
/// records as rows; no table for the unreadable big file, its key reported.
async fn check_generated(
    env: &Env,
    database: &str,
    outcome: &lakeform_worker::crawl::CrawlOutcome,
    bucket: &str,
) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let got = stats(
        env,
        "pyiceberg",
        database,
        &["na_after_sample", "cloudtrail"],
    )
    .await?;
    let na = &got["na_after_sample"];
    println!("real-world: generated NA after row 5500: {na}");
    if na["rows"] != NA_ROWS || na["nulls"]["price"] != 1 || na["sums"].get("price").is_none() {
        failures.push(format!("na_after_sample: {na}"));
    }
    let trail = &got["cloudtrail"];
    println!("real-world: generated CloudTrail document: {trail}");
    if trail["rows"] != 50 || trail["nulls"].as_object().map(|m| m.len()) != Some(3) {
        failures.push(format!("cloudtrail: {trail}"));
    }
    let big = format!("{bucket}/{PREFIX}late_conflict/big.csv");
    let reported = outcome.run.errors.iter().find(|e| e.key == big);
    println!("real-world: generated late conflict over the cap: {reported:?}");
    if outcome.tables.iter().any(|t| t.name == "late_conflict") || reported.is_none() {
        failures.push(format!(
            "late_conflict: a table, or no error: {:?}",
            outcome.run.errors
        ));
    }
    Ok(failures)
}

/// The run says which classifier read each table and which columns got a date shape.
fn check_decisions(outcome: &lakeform_worker::crawl::CrawlOutcome) -> Vec<String> {
    let want = [
        ("flights_2k", "json-document (certainty 1.00)", None),
        (
            "cloudtrail",
            "json-document ($.Records[*]) (certainty 1.00)",
            None,
        ),
        (
            "github",
            "csv (certainty 0.90)",
            Some("time: dates of shape %Y/%m/%d %H:%M:%S"),
        ),
        (
            "stocks",
            "csv (certainty 0.90)",
            Some("date: dates of shape %b %d %Y"),
        ),
    ];
    let mut failures = Vec::new();
    for (table, classifier, decision) in want {
        let t = outcome.tables.iter().find(|t| t.name == table);
        let ok = t.is_some_and(|t| {
            t.classifier.as_deref() == Some(classifier)
                && decision.is_none_or(|d| t.decisions.iter().any(|x| x == d))
        });
        println!(
            "real-world: {table}: {:?} {:?}",
            t.and_then(|t| t.classifier.clone()),
            t.map(|t| &t.decisions)
        );
        if !ok {
            failures.push(format!("{table}: expected {classifier} and {decision:?}"));
        }
    }
    failures
}

/// `same`, or how our table differs: missing, empty, `col_N` fragments, other counts.
fn compare(ours: Option<&Value>, want: &Value) -> String {
    let Some(ours) = ours else {
        return "no table".into();
    };
    let rows = ours["rows"].as_u64().unwrap_or(0);
    let columns: Vec<&String> = ours["nulls"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let fragments = !columns.is_empty()
        && columns.iter().all(|c| {
            c.strip_prefix("col_")
                .is_some_and(|n| n.chars().all(|d| d.is_ascii_digit()))
        });
    let (want_rows, want_columns) = (want["rows"].as_u64(), want["columns"].as_u64());
    if fragments {
        format!("col_N fragments ({rows} rows × {} columns)", columns.len())
    } else if rows == 0 && want_rows.is_some_and(|r| r > 0) {
        "an empty table".into()
    } else if Some(rows) != want_rows || Some(columns.len() as u64) != want_columns {
        format!("{rows} rows × {} columns", columns.len())
    } else {
        "same".into()
    }
}

/// DuckDB's rows and columns of every file (`e2e/py/file_stats.py`), by file name.
async fn duckdb_files(env: &Env, dir: &Path) -> Result<BTreeMap<String, Value>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/file_stats.py");
    let out = tokio::process::Command::new(&env.python)
        .arg(&script)
        .args(FILES.iter().map(|f| dir.join(f)))
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(
        out.status.success(),
        "file_stats.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_path: BTreeMap<String, Value> = serde_json::from_slice(&out.stdout)?;
    let mut by_file = BTreeMap::new();
    for (path, stats) in by_path {
        ensure!(
            stats.get("error").is_none(),
            "DuckDB cannot read {path}: {stats}"
        );
        let file = Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(path);
        by_file.insert(file, stats);
    }
    Ok(by_file)
}
