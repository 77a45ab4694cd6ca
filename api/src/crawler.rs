//! `Crawler`: keeps catalog tables in step with the objects under some prefixes (a Glue crawler).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Conditions, LocalRef};

/// A crawler: lists objects under zone prefixes, infers their schemas and partitions, and
/// registers or updates tables in one catalog database.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lakeform.dev",
    version = "v1alpha1",
    kind = "Crawler",
    plural = "crawlers",
    shortname = "crawler",
    shortname = "cr",
    category = "lakeform",
    namespaced,
    status = "CrawlerStatus",
    doc = "A crawler keeps catalog tables in step with the objects under some zone prefixes.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".spec.database"}"#,
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule.cron"}"#,
    printcolumn = r#"{"name":"Last Result","type":"string","jsonPath":".status.lastRun.result"}"#,
    printcolumn = r#"{"name":"Tables","type":"integer","jsonPath":".status.tableCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.recrawlPolicy != 'Events' || has(self.runOnEvents)")
    .message("spec.recrawlPolicy: Events needs spec.runOnEvents (batch size and window)"))]
pub struct CrawlerSpec {
    /// The DataLake whose zones and catalog this crawler uses.
    pub lake_ref: LocalRef,
    /// Catalog database (a name from the lake's `spec.catalog.databases`) the tables go to.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub database: String,
    /// Where to look: zone + prefix pairs.
    #[schemars(length(min = 1, max = 32))]
    pub targets: Vec<CrawlTarget>,
    /// When to crawl on a timetable. Unset: only on demand or on events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<CrawlSchedule>,
    /// Crawl when objects arrive (bucket notifications), batching keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_on_events: Option<EventBatching>,
    /// Custom classifiers, tried in order before the built-in ones. A `builtin` entry limits the
    /// built-in classifiers to the ones listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub classifiers: Vec<Classifier>,
    /// How folders map to tables.
    #[serde(default)]
    pub grouping: Grouping,
    /// What to do when a schema changes or a table's data disappears.
    #[serde(default)]
    pub schema_change_policy: SchemaChangePolicy,
    /// Which objects a run looks at.
    #[serde(default)]
    pub recrawl_policy: RecrawlPolicy,
    /// Rows (CSV/JSON) and files per folder sampled for classification and schema inference.
    /// A CSV or JSON object with more rows, up to 16 MiB, then has its column types inferred
    /// from every row, so that a null token (`NA`, `N/A`, `NULL`, `\N`, `-`, empty) or a
    /// wider value after the sample widens the column instead of failing the object.
    #[serde(default = "default_sample_size")]
    #[schemars(range(min = 1, max = 1000000))]
    pub sample_size: i32,
    /// Prefix added to every table name the crawler creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[a-z0-9_]*$"))]
    pub table_prefix: Option<String>,
    /// Longest one crawl run may take, in seconds (its Job's `activeDeadlineSeconds`): a hung
    /// crawl is stopped and reported failed instead of blocking every later run. Default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 86400))]
    pub timeout_seconds: Option<i64>,
    /// Fail the run, creating nothing, when it would create more tables than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub table_threshold: Option<i32>,
    /// Stop reconciling: no CronJob changes and no new runs while true.
    #[serde(default)]
    pub paused: bool,
}

fn default_sample_size() -> i32 {
    1000
}

/// One place to crawl.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawlTarget {
    /// Zone name from the lake's `spec.zones`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub zone: String,
    /// Key prefix inside the zone's bucket (no leading `/`). Empty: the whole bucket. A prefix
    /// naming a single object crawls that object.
    #[serde(default)]
    #[schemars(length(max = 1024), regex(pattern = r"^[^/].*$|^$"))]
    pub prefix: String,
    /// Glob patterns, relative to the prefix, of keys to skip: `*` one level, `**` any depth,
    /// `?`, `[a-z]`, `{a,b}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub exclude: Vec<String>,
}

/// Cron timetable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawlSchedule {
    /// Standard five-field cron expression (`minute hour day-of-month month day-of-week`) or a
    /// macro such as `@hourly`.
    #[schemars(length(min = 1, max = 128))]
    pub cron: String,
    /// IANA time zone the cron expression is read in, e.g. `Europe/Paris`. Unset: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
    /// Keep the schedule but start no runs.
    #[serde(default)]
    pub suspend: bool,
}

/// How bucket events are batched into runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBatching {
    /// Start a run once this many new keys were notified.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: i32,
    /// Start a run this many seconds after the first key of a batch, even if the batch is not full.
    #[serde(default = "default_batch_window")]
    #[schemars(range(min = 1, max = 86400))]
    pub batch_window_seconds: i32,
}

fn default_batch_size() -> i32 {
    100
}

fn default_batch_window() -> i32 {
    300
}

/// A classifier. Set exactly one of `builtin`, `csv`, `grok` or `json`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.builtin), has(self.csv), has(self.grok), has(self.json)].filter(x, x).size() == 1"
).message("spec.classifiers[] must set exactly one of builtin, csv, grok or json"))]
pub struct Classifier {
    /// Classifier name, unique within the crawler.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// A built-in classifier, by format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<DataFormat>,
    /// A CSV dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvClassifier>,
    /// A grok pattern for text logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grok: Option<GrokClassifier>,
    /// JSON documents whose records are found at a JSON path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonClassifier>,
}

/// Data formats the crawler knows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// Apache Parquet (schema from the footer).
    Parquet,
    /// Apache Avro object container files (schema from the header).
    Avro,
    /// Apache ORC.
    Orc,
    /// JSON lines.
    Json,
    /// Delimited text.
    Csv,
    /// Text logs matched by grok patterns (Apache access logs, …).
    Log,
}

/// A custom CSV dialect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CsvClassifier {
    /// Field delimiter (one character). Unset: sniffed among `,` `|` tab `;`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1))]
    pub delimiter: Option<String>,
    /// Quote character (one character).
    #[serde(default = "default_quote")]
    #[schemars(length(min = 1, max = 1))]
    pub quote: String,
    /// Whether the first line holds column names.
    #[serde(default)]
    pub header: HeaderMode,
    /// Column names to use when the file has no header.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

fn default_quote() -> String {
    "\"".into()
}

/// Header handling of CSV files.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum HeaderMode {
    /// Decide from the data (a first row of strings over typed rows is a header).
    #[default]
    Detect,
    /// The first line is a header.
    Present,
    /// There is no header; columns are named `col_0…` or from `columns`.
    Absent,
}

/// A grok classifier.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrokClassifier {
    /// Classification written to the table (e.g. `apache-access`).
    #[schemars(length(min = 1, max = 63))]
    pub classification: String,
    /// The grok pattern matched against each line, e.g. `%{COMBINEDAPACHELOG}`.
    #[schemars(length(min = 1, max = 4096))]
    pub pattern: String,
    /// Extra named patterns, one `NAME regex` per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub custom_patterns: Option<String>,
}

/// A JSON classifier.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JsonClassifier {
    /// JSON path of the records inside each document, e.g. `$.records[*]`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^\$"))]
    pub json_path: String,
}

/// Folder-to-table mapping.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Grouping {
    /// Folder depth below the target prefix that is a table (1 = each first-level folder).
    /// Unset: decided from the layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub table_level: Option<i32>,
    /// Union compatible schemas under one prefix into one table instead of one table per folder.
    #[serde(default)]
    pub combine_compatible_schemas: bool,
}

/// What a crawl does with schema changes and vanished data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaChangePolicy {
    /// `Update` evolves the table schema (add columns, widen types); `Log` only reports.
    #[serde(default)]
    pub update: UpdateBehavior,
    /// When a table's data is gone: `Deprecate` marks the table, `Delete` drops it, `Log` reports.
    #[serde(default)]
    pub delete: DeleteBehavior,
}

/// Schema update behaviour.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpdateBehavior {
    /// Evolve the table schema.
    #[default]
    Update,
    /// Report only.
    Log,
}

/// Behaviour when a table's objects are gone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeleteBehavior {
    /// Drop the table from the catalog.
    Delete,
    /// Mark the table deprecated (a table property).
    #[default]
    Deprecate,
    /// Report only.
    Log,
}

/// Which objects a run reads.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RecrawlPolicy {
    /// Every object under the targets (objects already ingested are still skipped).
    #[default]
    Everything,
    /// Only folders not seen before; a run with nothing new costs only LIST requests.
    NewFoldersOnly,
    /// Only the keys named by bucket notifications (needs `runOnEvents`).
    Events,
}

/// Observed state of a Crawler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawlerStatus {
    /// `Ready` (the crawler is scheduled) and `Running` (a run is active), with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The most recent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<CrawlRun>,
    /// Tables the crawler maintains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<CrawledTable>,
    /// Number of tables (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_count: Option<i32>,
    /// The last on-demand run token (`lakeform.dev/run` annotation) that started a Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_token: Option<String>,
}

/// Outcome of one crawl.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RunResult {
    /// Still running.
    Running,
    /// Finished; individual bad objects may be listed as errors.
    Succeeded,
    /// The run itself failed.
    Failed,
}

/// Report of one crawl.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawlRun {
    /// Name of the Job that ran the crawl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// Tables created.
    #[serde(default)]
    pub tables_created: i64,
    /// Tables whose schema or data changed.
    #[serde(default)]
    pub tables_updated: i64,
    /// Tables marked deprecated.
    #[serde(default)]
    pub tables_deprecated: i64,
    /// Tables dropped.
    #[serde(default)]
    pub tables_deleted: i64,
    /// Objects listed.
    #[serde(default)]
    pub objects_scanned: i64,
    /// Bytes read (ranged GETs and ingested objects).
    #[serde(default)]
    pub bytes_read: i64,
    /// Objects no classifier recognised.
    #[serde(default)]
    pub unclassified_objects: i64,
    /// Objects that failed (corrupt, unreadable), with their keys; at most 50 are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ObjectError>,
    /// Summary or failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An object a crawl could not use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectError {
    /// `bucket/key` of the object.
    pub key: String,
    /// What went wrong.
    pub message: String,
}

/// A table maintained by the crawler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawledTable {
    /// Table name in the crawler's database.
    pub name: String,
    /// Source data format (`parquet`, `csv`, …).
    pub format: String,
    /// Table location (`s3://bucket/prefix`).
    pub location: String,
    /// Partition columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
    /// Current Iceberg schema id.
    #[serde(default)]
    pub schema_version: i32,
    /// The classifier that read the table's first objects (the least certain of them) and
    /// its certainty, e.g. `json-document (certainty 1.00)` or `csv (certainty 0.90)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
    /// Decisions worth knowing: columns typed from a date shape (`day: dates of shape
    /// %Y/%m/%d`) and columns that fell back to text, with the file and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<String>,
    /// True when the table's data is gone and it was marked deprecated.
    #[serde(default)]
    pub deprecated: bool,
}
