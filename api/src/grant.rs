//! `Grant`: a Lake Formation permission as a Kubernetes object — who (a principal) may do what
//! (permissions) on which part of a lake (a database, a table with a column list and a row
//! filter, or a data location).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Conditions, LocalRef};

/// A permission on part of a DataLake for one principal.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lakeform.dev",
    version = "v1alpha1",
    kind = "Grant",
    plural = "grants",
    shortname = "grant",
    shortname = "gr",
    category = "lakeform",
    namespaced,
    status = "GrantStatus",
    doc = "A permission on a DataLake's database, table (columns, rows) or data location for one principal.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Lake","type":"string","jsonPath":".spec.lakeRef.name"}"#,
    printcolumn = r#"{"name":"Principal","type":"string","jsonPath":".spec.principal.name"}"#,
    printcolumn = r#"{"name":"Database","type":"string","jsonPath":".spec.resource.database"}"#,
    printcolumn = r#"{"name":"Table","type":"string","jsonPath":".spec.resource.table"}"#,
    printcolumn = r#"{"name":"Enforced By","type":"string","jsonPath":".status.enforcedBy"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.permissions.exists(p, p == 'CREATE_TABLE') || !has(self.resource.table)")
    .message("spec.permissions: CREATE_TABLE is granted on a database, not on spec.resource.table"))]
#[x_kube(validation = Rule::new("!has(self.resource.columns) && !has(self.resource.rowFilter) || self.permissions.all(p, p == 'SELECT' || p == 'DESCRIBE')")
    .message("spec.resource.columns and spec.resource.rowFilter limit reads: spec.permissions may then hold only SELECT and DESCRIBE"))]
pub struct GrantSpec {
    /// The DataLake this grant is part of (in the same namespace).
    pub lake_ref: LocalRef,
    /// Who is granted the permissions.
    pub principal: Principal,
    /// What the permissions apply to.
    pub resource: GrantResource,
    /// The permissions: `SELECT`, `INSERT`, `DELETE`, `ALTER`, `DROP`, `DESCRIBE`,
    /// `CREATE_TABLE` or `ALL`.
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub permissions: Vec<Permission>,
    /// The principal may grant these permissions on to others (Trino `GRANT_SELECT` for
    /// `SELECT`).
    #[serde(default)]
    pub grantable: bool,
}

/// A principal: a Kubernetes ServiceAccount, user or group. Each gets a Trino login whose
/// password is in the Secret `<lake>-trino-<user|group|sa>-<name>` that only the principal may
/// read (`TRINO_USER`, `TRINO_PASSWORD`, `TRINO_URI`). In Trino a `User` is the user name
/// itself (no `:` in it: basic authentication cannot carry one), a `ServiceAccount` the user
/// `system:serviceaccount:<namespace>:<name>` (as the API server names it; `namespace`
/// defaults to the Grant's; it logs in as `system/serviceaccount/<namespace>/<name>`), a
/// `Group` one login shared by its members, the user `group/<name>`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' || !has(self.__namespace__)")
    .message("spec.principal.namespace is only for kind ServiceAccount"))]
#[x_kube(validation = Rule::new("self.kind != 'ServiceAccount' || self.name.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')")
    .message("spec.principal.name of a ServiceAccount must be a DNS subdomain name"))]
pub struct Principal {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: PrincipalKind,
    /// The user, group or ServiceAccount name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9_.@]*$")
    )]
    pub name: String,
    /// Namespace of a ServiceAccount. Default: the Grant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
}

/// Kinds of principal.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PrincipalKind {
    /// A user name, as clients authenticate to the query engine.
    User,
    /// A group of users.
    Group,
    /// A Kubernetes ServiceAccount (its workloads' identity).
    ServiceAccount,
}

/// The part of the lake a grant covers: a catalog database (optionally one table of it, with a
/// column list and a row filter), or a data location (a zone and prefix).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.database) != has(self.dataLocation)")
    .message("spec.resource: set exactly one of database or dataLocation"))]
#[x_kube(validation = Rule::new("has(self.table) || !has(self.columns) && !has(self.rowFilter)")
    .message("spec.resource.columns and spec.resource.rowFilter need spec.resource.table"))]
#[x_kube(validation = Rule::new("has(self.database) || !has(self.table)")
    .message("spec.resource.table needs spec.resource.database"))]
pub struct GrantResource {
    /// A catalog database of the lake (`spec.catalog.databases[].name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub database: Option<String>,
    /// A table of `database`. Unset: every table of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[a-z_][a-z0-9_]*$"))]
    pub table: Option<String>,
    /// Which columns of `table` may be read (Lake Formation's column filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<ColumnFilter>,
    /// A SQL predicate over `table`'s columns; only rows where it is true are visible (Lake
    /// Formation's row filter), e.g. `country = 'DE'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = Rule::new("!self.contains(';')")
        .message("spec.resource.rowFilter is one predicate: no ';'"))]
    pub row_filter: Option<String>,
    /// Objects under a zone's prefix (Lake Formation's data-location permission). In managed
    /// storage the principal gets a MinIO user limited to it, its keys in the Secret
    /// `<lake>-s3-<user|group|sa>-<name>` that only the principal may read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_location: Option<DataLocation>,
}

/// Columns of a table: the ones included, or all but the ones excluded.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.include) != has(self.exclude)")
    .message("spec.resource.columns: set exactly one of include or exclude"))]
pub struct ColumnFilter {
    /// Only these columns may be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub include: Option<Vec<String>>,
    /// Every column but these may be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub exclude: Option<Vec<String>>,
}

/// A zone and a prefix of its bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataLocation {
    /// Zone name (`spec.zones[].name` of the lake).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub zone: String,
    /// Key prefix inside the zone's bucket (`""`: the whole bucket).
    #[serde(default)]
    #[schemars(length(max = 1024), regex(pattern = r"^([^/].*/)?$"))]
    pub prefix: String,
}

/// A permission, as Lake Formation names them.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// Read rows (Trino `SELECT`).
    Select,
    /// Add rows.
    Insert,
    /// Remove rows.
    Delete,
    /// Change a table's schema or properties.
    Alter,
    /// Drop tables.
    Drop,
    /// See that tables and columns exist (metadata only).
    Describe,
    /// Create tables in the database.
    CreateTable,
    /// Every permission above.
    All,
}

/// Observed state of a Grant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantStatus {
    /// `Ready`: the grant is compiled into every engine that enforces it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the grant is enforced, e.g. `Trino`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_by: Option<String>,
}
