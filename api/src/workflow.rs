//! `Workflow`: a DAG of steps (crawls, SQL, extracts, containers, Spark) with triggers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Conditions, FreeForm, LocalRef, SecretKeyRef};

/// A workflow: steps run as Jobs in dependency order, started by schedules, on demand, by bucket
/// events or by other workflows. Either hand-written `steps` or a `blueprintRef`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lakeform.dev",
    version = "v1alpha1",
    kind = "Workflow",
    plural = "workflows",
    shortname = "wf",
    category = "lakeform",
    namespaced,
    status = "WorkflowStatus",
    doc = "A workflow is a DAG of steps run as Jobs, with triggers; each execution is a WorkflowRun.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Blueprint","type":"string","jsonPath":".spec.blueprintRef.name"}"#,
    printcolumn = r#"{"name":"Last Run","type":"string","jsonPath":".status.lastRun.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.lastRun.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.blueprintRef) != (size(self.steps) > 0)")
    .message("set exactly one of spec.steps or spec.blueprintRef"))]
#[x_kube(validation = Rule::new("!has(self.blueprintRef) || !has(self.triggers) || size(self.triggers) == 0")
    .message("spec.triggers: a blueprint instance has no triggers of its own; its blueprint renders workflows with theirs"))]
#[x_kube(validation = Rule::new("self.steps.all(s, s.dependsOn.all(d, self.steps.exists(t, t.name == d)))")
    .message("spec.steps[].dependsOn must name steps of this workflow").field_path(".steps"))]
#[x_kube(validation = Rule::new("self.steps.all(s, !(s.name in s.dependsOn))")
    .message("spec.steps[].dependsOn: a step cannot depend on itself").field_path(".steps"))]
pub struct WorkflowSpec {
    /// The DataLake the workflow's steps read and write.
    pub lake_ref: LocalRef,
    /// The steps. Names are unique; `dependsOn` forms a DAG (cycles are reported as
    /// `Ready=False`, reason `InvalidSpec`).
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub steps: Vec<Step>,
    /// Expand a Blueprint into this workflow's steps instead of writing them by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint_ref: Option<BlueprintRef>,
    /// What starts a run, besides a WorkflowRun created by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub triggers: Vec<Trigger>,
    /// Default run parameters, overridden by a WorkflowRun's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// What a trigger does while a run is active: `Allow` another, `Forbid` (skip) or `Replace`.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Finished runs kept; older ones are deleted with their Jobs.
    #[serde(default = "default_history")]
    #[schemars(range(min = 0, max = 1000))]
    pub history_limit: i32,
    /// Stop reconciling: no triggers fire and no steps start while true.
    #[serde(default)]
    pub paused: bool,
}

fn default_history() -> i32 {
    10
}

/// Run concurrency.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Runs may overlap.
    Allow,
    /// A trigger firing while a run is active is skipped.
    #[default]
    Forbid,
    /// The active run is cancelled and a new one starts.
    Replace,
}

/// Reference to a Blueprint or ClusterBlueprint and the values of its parameters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueprintRef {
    /// `Blueprint` (in the workflow's namespace) or `ClusterBlueprint` (the built-ins).
    #[serde(default)]
    pub kind: BlueprintKind,
    /// Blueprint name (a Blueprint in the same namespace, or a ClusterBlueprint).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Parameter values, checked against the Blueprint's parameter types.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// Which kind of blueprint a `blueprintRef` names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BlueprintKind {
    /// A Blueprint in the instance's namespace.
    #[default]
    Blueprint,
    /// A cluster-scoped ClusterBlueprint.
    ClusterBlueprint,
}

impl std::fmt::Display for BlueprintKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlueprintKind::Blueprint => "Blueprint",
            BlueprintKind::ClusterBlueprint => "ClusterBlueprint",
        })
    }
}

/// One step. Set exactly one of `crawl`, `sql`, `extract`, `container` or `spark`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.crawl), has(self.sql), has(self.extract), has(self.container), has(self.spark)].filter(x, x).size() == 1"
).message("spec.steps[] must set exactly one step kind: crawl, sql, extract, container or spark"))]
pub struct Step {
    /// Step name: a DNS label, unique within the workflow.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Steps that must reach the `when` state before this one starts.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub depends_on: Vec<String>,
    /// State the dependencies must reach: `Succeeded` (default), `Failed` or `Completed` (either).
    #[serde(default)]
    pub when: When,
    /// Run a Crawler's crawl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crawl: Option<CrawlStep>,
    /// Run SQL over catalog tables and write the result to a table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlStep>,
    /// Copy tables from a relational database into the lake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<ExtractStep>,
    /// Run a user container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerStep>,
    /// Submit a SparkApplication (needs the Kubeflow Spark Operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark: Option<SparkStep>,
    /// Attempts after the first failure, with exponential backoff.
    #[serde(default)]
    #[schemars(range(min = 0, max = 20))]
    pub retries: i32,
    /// Maximum duration of one attempt, e.g. `30m` or `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(h|m|s))+$"), length(max = 32))]
    pub timeout: Option<String>,
}

/// Dependency condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum When {
    /// All dependencies succeeded.
    #[default]
    Succeeded,
    /// All dependencies failed (error-handling branches).
    Failed,
    /// All dependencies finished, either way.
    Completed,
}

/// A crawl step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrawlStep {
    /// The Crawler to run.
    pub crawler_ref: LocalRef,
}

/// A SQL step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'Merge' || size(self.mergeKeys) > 0")
    .message("spec.steps[].sql.mergeKeys must list key columns when mode is Merge"))]
pub struct SqlStep {
    /// SQL statements; the last one is a query whose result is written to `target`.
    /// Tables are named `<database>.<table>`.
    #[schemars(length(min = 1, max = 64))]
    pub statements: Vec<String>,
    /// The table written; created if absent.
    pub target: TableRef,
    /// `Append` rows, `Overwrite` the table, or `Merge` (upsert) on `mergeKeys`.
    #[serde(default)]
    pub mode: WriteMode,
    /// Key columns for `Merge`.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub merge_keys: Vec<String>,
    /// Columns of the query's result the target table is partitioned on (identity partitions:
    /// one set of data files per distinct value), e.g. `[day]` for a `day` date column —
    /// "partitioned by day". At most 4 distinct column names (letters, digits, `_`; not
    /// starting with a digit), each a column of the query's result. A table the step creates
    /// is partitioned so; an existing table must already have exactly this partition spec
    /// (empty: unpartitioned) — the step fails rather than re-partition it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 4),
        inner(
            length(min = 1, max = 128),
            regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub partition_by: Vec<String>,
}

/// A table in the lake's catalog.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableRef {
    /// Database (catalog namespace).
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub database: String,
    /// Table name.
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[a-z_][a-z0-9_]*$"))]
    pub table: String,
}

/// How results are written.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WriteMode {
    /// Add the rows.
    #[default]
    Append,
    /// Replace the table's contents.
    Overwrite,
    /// Update rows with matching keys, insert the others.
    Merge,
}

/// An extract step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode == 'Incremental' || !has(self.bookmarks) || size(self.bookmarks) == 0")
    .message("spec.steps[].extract.bookmarks only apply when mode is Incremental"))]
pub struct ExtractStep {
    /// The source database.
    pub source: ExtractSource,
    /// Tables to copy, as `database/schema/table` patterns where `%` matches any characters
    /// (Lake Formation style), e.g. `shop/public/%`. MySQL has no schemas inside a database:
    /// there the database and the schema are both the MySQL database (schema), so
    /// `shop/shop/%` is every table of database `shop`, and `%/%/orders` the `orders` table of
    /// every database the user can read (system databases excluded).
    #[schemars(length(min = 1, max = 64))]
    pub tables: Vec<String>,
    /// Patterns of tables to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub exclude: Vec<String>,
    /// `Snapshot` copies everything each run; `Incremental` copies rows past a bookmark.
    #[serde(default)]
    pub mode: ExtractMode,
    /// Bookmark key per table for `Incremental`. A table without one is compared with a full
    /// snapshot diff on its primary key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub bookmarks: Vec<Bookmark>,
    /// Catalog database the tables land in.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub target_database: String,
    /// Prefix for the created table names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[a-z0-9_]*$"))]
    pub table_prefix: Option<String>,
    /// How target tables are partitioned, per source table: identity partitions on the listed
    /// columns (e.g. `{table: public.events, columns: [day]}` — partitioned by day). A table
    /// the step creates is partitioned so; an existing one must already be (the step fails
    /// rather than re-partition it). Tables not listed are unpartitioned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["table".into()]))]
    pub partitions: Vec<TablePartitioning>,
}

/// The partition columns of one extracted table.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TablePartitioning {
    /// Source table, as `schema.table` (as in `bookmarks`).
    #[schemars(length(min = 1, max = 255))]
    pub table: String,
    /// Columns of the table to partition on (identity), at most four.
    #[schemars(
        length(min = 1, max = 4),
        inner(
            length(min = 1, max = 128),
            regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
        )
    )]
    pub columns: Vec<String>,
}

/// Source database of an extract.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtractSource {
    /// Database engine.
    pub engine: SourceEngine,
    /// Secret key holding the connection URL: `postgresql://user:pass@host:5432/db` for
    /// `Postgres`, `mysql://user:pass@host:3306/db` for `Mysql`.
    pub connection_secret_ref: SecretKeyRef,
}

/// Supported source engines.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SourceEngine {
    /// PostgreSQL.
    #[default]
    Postgres,
    /// MySQL / MariaDB.
    Mysql,
}

/// Extract mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExtractMode {
    /// Copy whole tables.
    #[default]
    Snapshot,
    /// Copy new and changed rows since the last run.
    Incremental,
}

/// Bookmark of one table: the column (or columns) whose values say which rows were loaded
/// (Glue's `jobBookmarkKeys` and `jobBookmarkKeysSortOrder`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.column) != has(self.columns)")
    .message("a bookmark names either column or columns, exactly one of them"))]
pub struct Bookmark {
    /// Table, as `schema.table` (for MySQL, the schema is the database).
    #[schemars(length(min = 1, max = 255))]
    pub table: String,
    /// Monotonic column (an increasing id or an update timestamp). Either this or `columns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub column: Option<String>,
    /// Compound bookmark key: the columns' values are compared as a tuple, lexicographically
    /// (the first column first, the next breaking ties), e.g. `[batch_date, line]`. Either this
    /// or `column`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 8))]
    pub columns: Vec<String>,
    /// Which way the key grows. `Ascending` (default): the bookmark is the largest key loaded
    /// and each run loads the rows above it. `Descending`: the bookmark is the smallest key
    /// loaded and each run loads the rows below it (a key that counts down). Rows whose key
    /// holds a NULL are never loaded incrementally.
    #[serde(default)]
    pub order: BookmarkOrder,
}

impl Bookmark {
    /// The bookmark's key columns: `[column]` or `columns`.
    pub fn key_columns(&self) -> Vec<String> {
        match &self.column {
            Some(c) => vec![c.clone()],
            None => self.columns.clone(),
        }
    }
}

/// Which way a bookmark key grows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BookmarkOrder {
    /// New rows have larger keys: the bookmark is the largest key loaded.
    #[default]
    Ascending,
    /// New rows have smaller keys: the bookmark is the smallest key loaded.
    Descending,
}

/// A user container step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStep {
    /// Container image.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Entrypoint. Unset: the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables, added to the lake connection variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// CPU and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// A Spark step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SparkStep {
    /// The `spec` of a `sparkoperator.k8s.io/v1beta2` SparkApplication.
    pub application: FreeForm,
}

/// What starts runs. Set exactly one of `schedule`, `onDemand`, `event` or `afterWorkflow`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.schedule), has(self.onDemand), has(self.event), has(self.afterWorkflow)].filter(x, x).size() == 1"
).message("spec.triggers[] must set exactly one of schedule, onDemand, event or afterWorkflow"))]
pub struct Trigger {
    /// Trigger name, unique within the workflow.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Run on a cron timetable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleTrigger>,
    /// Run when the `lakeform.dev/run` annotation gets a new value (a WorkflowRun created by hand
    /// always works).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<OnDemandTrigger>,
    /// Run when objects arrive under a zone prefix, batched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventTrigger>,
    /// Run when another workflow's run ends in a given state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_workflow: Option<AfterWorkflowTrigger>,
}

/// Cron trigger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleTrigger {
    /// Five-field cron expression or a macro such as `@daily`.
    #[schemars(length(min = 1, max = 128))]
    pub cron: String,
    /// IANA time zone, e.g. `America/New_York`. Unset: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,
}

/// On-demand trigger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnDemandTrigger {
    /// Parameters for runs started by this trigger.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// Bucket event trigger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTrigger {
    /// Zone whose bucket is watched.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub zone: String,
    /// Key prefix.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub prefix: String,
    /// Start a run once this many objects arrived.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: i32,
    /// Start a run this many seconds after the first object of a batch, even if not full.
    #[serde(default = "default_window")]
    #[schemars(range(min = 1, max = 86400))]
    pub batch_window_seconds: i32,
}

fn one() -> i32 {
    1
}

fn default_window() -> i32 {
    900
}

/// Trigger on another workflow's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AfterWorkflowTrigger {
    /// The other workflow, in the same namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Its run's final state that fires this trigger.
    #[serde(default)]
    pub state: When,
}

/// Observed state of a Workflow.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// `Ready` (valid and triggers armed), with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The most recent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunSummary>,
    /// Runs not finished yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_runs: Vec<String>,
    /// Next scheduled start, per schedule trigger.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub next_schedule_times: BTreeMap<String, Time>,
    /// The last on-demand token (`lakeform.dev/run` annotation) that started a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_token: Option<String>,
    /// The last `lakeform.dev/reset-bookmarks` token acted on: the bookmarks of incremental
    /// extracts were cleared, so the next run loads every row again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_bookmark_reset: Option<String>,
    /// The last event batch (`<trigger>/<token>`, the `lakeform.dev/event-batch` annotation)
    /// that started a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_batch: Option<String>,
    /// The blueprint (and its generation) a blueprint instance was last expanded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expanded_from: Option<ExpandedFrom>,
    /// What a blueprint instance's expansion created (its children), in apply order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildRef>,
    /// The last `lakeform.dev/re-expand` token acted on (a blueprint instance re-expands from
    /// the blueprint's current generation once per new token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_re_expand: Option<String>,
}

/// Where a blueprint instance's children came from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpandedFrom {
    /// `Blueprint` or `ClusterBlueprint`.
    pub kind: BlueprintKind,
    /// Its name.
    pub name: String,
    /// Its `metadata.generation` when the instance was expanded.
    pub generation: i64,
    /// The instance's own `metadata.generation` (its parameters) at that expansion.
    pub instance_generation: i64,
}

/// One object created by a blueprint instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildRef {
    /// Its kind (`Crawler`, `Workflow` or `ConfigMap`).
    pub kind: String,
    /// Its name, in the instance's namespace.
    pub name: String,
}

/// Short summary of a run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// WorkflowRun name.
    pub name: String,
    /// Its phase.
    pub phase: String,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}
