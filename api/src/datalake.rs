//! `DataLake`: the lake's infrastructure — storage, zones (buckets), catalog, query engine.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Conditions, FreeForm, LocalRef, S3CredentialsRef, SecretKeyRef};

/// A data lake: object storage with one bucket per zone, an Iceberg REST catalog with one
/// namespace per database, and optionally a Trino query engine wired to both.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lakeform.dev",
    version = "v1alpha1",
    kind = "DataLake",
    plural = "datalakes",
    shortname = "dl",
    category = "lakeform",
    namespaced,
    status = "DataLakeStatus",
    doc = "A data lake: storage zones (buckets), an Iceberg REST catalog and a query engine.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"S3","type":"string","jsonPath":".status.endpoints.s3"}"#,
    printcolumn = r#"{"name":"Catalog","type":"string","jsonPath":".status.endpoints.catalog","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.catalog) || self.catalog.databases.all(d, self.zones.exists(z, z.name == d.zone))"
).message("spec.catalog.databases[].zone must name a zone listed in spec.zones").field_path(".catalog.databases"))]
pub struct DataLakeSpec {
    /// Where the lake's objects live: a MinIO the operator runs, or an external S3 endpoint.
    pub storage: StorageSpec,
    /// Storage zones (raw, curated, …). Each zone is one bucket with its own versioning,
    /// object lock, lifecycle, quota and notification settings. Zone names are unique.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub zones: Vec<ZoneSpec>,
    /// The Iceberg REST catalog (the lake's Glue Data Catalog) and its databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogSpec>,
    /// The query engine (Trino) wired to the catalog and storage. Absent: no query engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_engine: Option<QueryEngineSpec>,
    /// Stop reconciling: nothing is created, changed or deleted while true.
    #[serde(default)]
    pub paused: bool,
}

/// Object storage for the lake. Set exactly one of `managed` or `external`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)")
    .message("exactly one of spec.storage.managed or spec.storage.external must be set"))]
pub struct StorageSpec {
    /// A MinIO StatefulSet run by the operator in the lake's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedStorage>,
    /// An existing S3-compatible endpoint (AWS S3, MinIO, Ceph RGW, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStorage>,
    /// What happens to buckets and their data when the DataLake is deleted: `Retain` (default)
    /// keeps them, `Delete` empties and removes them. Workloads, Services and ConfigMaps are
    /// always removed; under `Retain` the generated credentials (Secrets) and the managed
    /// components' volumes (PVCs) stay too, so that a DataLake re-created with the same name
    /// reaches the same data and catalog. `Delete` removes them as well.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to data outside Kubernetes when its owner is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep buckets, objects and catalog entries, and the managed components' credentials
    /// (Secrets) and volumes (PVCs).
    #[default]
    Retain,
    /// Empty and remove buckets; drop empty catalog namespaces; remove the managed components'
    /// credentials and volumes.
    Delete,
}

/// A MinIO deployment managed by the operator.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.replicas == 1 || self.replicas >= 4")
    .message("spec.storage.managed.replicas must be 1 (single node) or at least 4 (distributed erasure-coded mode)"))]
pub struct ManagedStorage {
    /// MinIO container image.
    #[serde(default = "default_minio_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Number of MinIO servers: 1, or 4 and more for distributed (erasure-coded) mode.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 32))]
    pub replicas: i32,
    /// Size of each server's data volume.
    #[serde(default = "default_volume_size")]
    pub volume_size: Quantity,
    /// StorageClass of the data volumes. Unset: the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// CPU and memory requests and limits of each MinIO server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// A PodTemplateSpec merged over the generated one (escape hatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<FreeForm>,
}

fn default_minio_image() -> String {
    "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z".into()
}

fn default_volume_size() -> Quantity {
    Quantity("10Gi".into())
}

fn one() -> i32 {
    1
}

/// An existing S3-compatible endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalStorage {
    /// Endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://minio.data:9000`.
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/]+(/.*)?$")
    )]
    pub endpoint: String,
    /// Region to sign requests for.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Use path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted style.
    /// MinIO and most on-premises stores need `true`.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Secret with the access key pair the operator and the lake's jobs use.
    pub credentials: S3CredentialsRef,
}

fn default_region() -> String {
    crate::connection::DEFAULT_REGION.into()
}

fn yes() -> bool {
    true
}

/// A storage zone: one bucket and its policies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.objectLock) || self.versioning")
        .message("spec.zones[].objectLock requires versioning: true on the same zone"),
    validation = Rule::new("has(self.bucket) == has(oldSelf.bucket) && (!has(self.bucket) || self.bucket == oldSelf.bucket)")
        .message("spec.zones[].bucket is immutable: a zone's bucket cannot be set, changed or removed after creation"),
    validation = Rule::new("has(self.objectLock) == has(oldSelf.objectLock) && (!has(self.objectLock) || self.objectLock.mode == oldSelf.objectLock.mode)")
        .message("spec.zones[].objectLock can only be chosen when the zone is created; its mode cannot change later"),
)]
pub struct ZoneSpec {
    /// Zone name (`raw`, `curated`, …): a DNS label, unique within the lake.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Bucket name. Defaults to `<lake>-<zone>`. Follows S3 bucket naming rules (3–63
    /// characters, lowercase letters, digits, dots and hyphens). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    #[x_kube(validation = Rule::new("!self.contains('..') && !self.startsWith('xn--') && !self.endsWith('-s3alias') && !self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')")
        .message("spec.zones[].bucket must not contain '..', look like an IP address, start with 'xn--' or end with '-s3alias'"))]
    pub bucket: Option<String>,
    /// Keep every version of every object. Required for object lock.
    #[serde(default)]
    pub versioning: bool,
    /// Write-once-read-many retention. Only chosen when the bucket is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    /// Lifecycle rules: expiration and tiering by prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    pub lifecycle: Vec<LifecycleRule>,
    /// Hard quota for the bucket (MinIO only), e.g. `500Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quantity>,
    /// Bucket notifications that can trigger crawlers and workflows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub notifications: Vec<BucketNotification>,
}

/// Object lock settings of a bucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLock {
    /// Retention mode of the default retention rule.
    #[serde(default)]
    pub mode: ObjectLockMode,
    /// Default retention in days for new objects. Unset: no default retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: Option<i32>,
}

/// Object lock retention mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ObjectLockMode {
    /// Users with special permission may still delete or shorten retention.
    #[default]
    Governance,
    /// Nobody, not even the root user, can delete a locked version before retention ends.
    Compliance,
}

/// One lifecycle rule. At least one action must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "has(self.expireAfterDays) || has(self.noncurrentExpireAfterDays) || has(self.abortIncompleteMultipartAfterDays) || has(self.transition)"
).message("spec.zones[].lifecycle[] needs at least one action: expireAfterDays, noncurrentExpireAfterDays, abortIncompleteMultipartAfterDays or transition"))]
#[x_kube(validation = Rule::new(
    "!has(self.expireAfterDays) || !has(self.transition) || self.transition.afterDays < self.expireAfterDays"
).message("spec.zones[].lifecycle[].transition.afterDays must be less than expireAfterDays"))]
pub struct LifecycleRule {
    /// Rule identifier, unique within the zone.
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[A-Za-z0-9][-_.A-Za-z0-9]*$")
    )]
    pub id: String,
    /// Object key prefix the rule applies to. Empty: the whole bucket.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub prefix: String,
    /// Delete current object versions this many days after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub expire_after_days: Option<i32>,
    /// Delete noncurrent versions this many days after they became noncurrent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub noncurrent_expire_after_days: Option<i32>,
    /// Abort multipart uploads not completed within this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub abort_incomplete_multipart_after_days: Option<i32>,
    /// Move objects to another storage tier after some days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
}

/// Tiering action of a lifecycle rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Days after creation when objects move.
    #[schemars(range(min = 0, max = 36500))]
    pub after_days: i32,
    /// Target tier: an S3 storage class (`GLACIER`, `STANDARD_IA`, …) or a MinIO remote tier name.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub tier: String,
}

/// Bucket notification: which object events under which keys are published to the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketNotification {
    /// Event kinds to publish.
    #[schemars(length(min = 1, max = 4))]
    pub events: Vec<BucketEvent>,
    /// Only keys with this prefix.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub prefix: String,
    /// Only keys with this suffix (e.g. `.parquet`).
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub suffix: String,
}

/// Kind of object event.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BucketEvent {
    /// An object was written (put, post, copy, multipart completion).
    ObjectCreated,
    /// An object (or version) was deleted.
    ObjectRemoved,
}

/// The Iceberg REST catalog. Set exactly one of `managed` or `external`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)")
    .message("exactly one of spec.catalog.managed or spec.catalog.external must be set"))]
pub struct CatalogSpec {
    /// A catalog (Nessie or Lakekeeper, with its PostgreSQL) run by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedCatalog>,
    /// An existing Iceberg REST catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalCatalog>,
    /// Databases: one catalog namespace each, located in a zone's bucket. Names are unique.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub databases: Vec<DatabaseSpec>,
}

/// An Iceberg REST catalog run by the operator, with its metadata in PostgreSQL.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.server != 'Nessie' || !has(self.database) || !has(self.database.existing)")
    .message("spec.catalog.managed.database.existing is not supported with server Nessie yet: use a managed database (omit database.existing) or server Lakekeeper"))]
pub struct ManagedCatalog {
    /// Which catalog server runs: `Nessie` (Project Nessie's Iceberg REST catalog, the
    /// default) or `Lakekeeper`.
    #[serde(default)]
    pub server: CatalogServer,
    /// Container image of the catalog server. Default: `ghcr.io/projectnessie/nessie:0.99.0`
    /// for Nessie, `quay.io/lakekeeper/catalog:v0.9.5` for Lakekeeper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Number of catalog servers.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub replicas: i32,
    /// CPU and memory of each catalog server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The catalog's PostgreSQL: a StatefulSet run by the operator (default) or an existing
    /// database.
    #[serde(default)]
    pub database: CatalogDatabase,
    /// A PodTemplateSpec merged over the generated one (escape hatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<FreeForm>,
}

impl ManagedCatalog {
    /// The image to run: `image`, else the server's default.
    pub fn image(&self) -> String {
        self.image.clone().unwrap_or_else(|| match self.server {
            CatalogServer::Nessie => "ghcr.io/projectnessie/nessie:0.99.0".into(),
            CatalogServer::Lakekeeper => "quay.io/lakekeeper/catalog:v0.9.5".into(),
        })
    }
}

/// The Iceberg REST catalog server a managed catalog runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CatalogServer {
    /// Project Nessie (Iceberg REST under `/iceberg`), metadata in PostgreSQL (JDBC2 store);
    /// the lake's warehouse is part of its configuration.
    #[default]
    Nessie,
    /// Lakekeeper (Iceberg REST under `/catalog`), bootstrapped and given the lake's warehouse
    /// through its management API.
    Lakekeeper,
}

/// The catalog's metadata database. Set at most one of `managed` or `existing`;
/// none means a managed PostgreSQL with defaults.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.managed) && has(self.existing))")
    .message("set at most one of spec.catalog.managed.database.managed or .existing"))]
pub struct CatalogDatabase {
    /// A PostgreSQL StatefulSet run by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedPostgres>,
    /// An existing PostgreSQL: a Secret key holding its connection URL
    /// (`postgresql://user:password@host:5432/db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<SecretKeyRef>,
}

/// A PostgreSQL StatefulSet for the catalog.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedPostgres {
    /// PostgreSQL container image.
    #[serde(default = "default_postgres_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Size of the data volume.
    #[serde(default = "default_pg_volume_size")]
    pub volume_size: Quantity,
    /// StorageClass of the data volume. Unset: the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// CPU and memory of the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedPostgres {
    /// The same values as the serde defaults of an empty `managed: {}`.
    fn default() -> Self {
        ManagedPostgres {
            image: default_postgres_image(),
            volume_size: default_pg_volume_size(),
            storage_class: None,
            resources: None,
        }
    }
}

fn default_postgres_image() -> String {
    "docker.io/library/postgres:17".into()
}

fn default_pg_volume_size() -> Quantity {
    Quantity("5Gi".into())
}

/// An existing Iceberg REST catalog.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalCatalog {
    /// Base URI of the REST catalog (the part before `/v1/config`).
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/]+(/.*)?$")
    )]
    pub uri: String,
    /// Warehouse identifier or location passed to `/v1/config`, e.g. `s3://lake-warehouse/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub warehouse: Option<String>,
    /// OAuth2 client credentials, when the catalog requires them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Credentials>,
}

/// OAuth2 client-credentials flow for a REST catalog.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Credentials {
    /// Secret holding `clientId` and `clientSecret` keys.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub secret_name: String,
    /// Token endpoint. Unset: the catalog's `/v1/oauth/tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub token_uri: Option<String>,
    /// Scope requested with the token, e.g. `PRINCIPAL_ROLE:ALL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A database: an Iceberg namespace whose tables live in one zone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Namespace name: lowercase letters, digits and underscores, starting with a letter.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub name: String,
    /// Zone whose bucket holds the database's tables.
    #[schemars(length(min = 1, max = 40))]
    pub zone: String,
    /// Human-readable description, stored as the namespace's `comment` property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Extra namespace properties.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// Query engine settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueryEngineSpec {
    /// A Trino coordinator and workers using the lake's catalog and storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trino: Option<TrinoSpec>,
    /// Workgroups: named limits for groups of users (Trino resource groups and session limits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub workgroups: Vec<Workgroup>,
}

/// A Trino cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrinoSpec {
    /// Trino container image.
    #[serde(default = "default_trino_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Name of the Iceberg catalog inside Trino (`SELECT … FROM <catalogName>.<db>.<table>`).
    #[serde(default = "default_trino_catalog")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z][a-z0-9_]*$"))]
    pub catalog_name: String,
    /// The coordinator.
    #[serde(default)]
    pub coordinator: TrinoRole,
    /// The workers.
    #[serde(default)]
    pub workers: TrinoRole,
    /// Extra lines for rendered property files, by file name (`config.properties`,
    /// `jvm.config`, …) then key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_overrides: BTreeMap<String, BTreeMap<String, String>>,
    /// A PodTemplateSpec merged over the generated ones (escape hatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<FreeForm>,
}

fn default_trino_image() -> String {
    "trinodb/trino:478".into()
}

fn default_trino_catalog() -> String {
    "lake".into()
}

/// One Trino role (coordinator or workers).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrinoRole {
    /// Number of pods. The coordinator always runs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 200))]
    pub replicas: Option<i32>,
    /// CPU and memory of each pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// A workgroup: a Trino resource group with limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workgroup {
    /// Workgroup name, unique within the lake.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Users (Trino user names) placed in this workgroup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Maximum bytes one query may scan (e.g. `10Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_scan_bytes: Option<Quantity>,
    /// Maximum queries running at once in this workgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_concurrent_queries: Option<i32>,
    /// Maximum queries waiting in this workgroup's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub max_queued_queries: Option<i32>,
}

/// Observed state of a DataLake.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataLakeStatus {
    /// `StorageReady`, `CatalogReady`, `QueryEngineReady` and `Ready`, each with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where clients reach the lake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// State of each zone's bucket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneStatus>,
    /// ConfigMap with connection info (endpoints, bucket names) for workloads to mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_config_map: Option<LocalRef>,
}

/// Endpoints of the lake's services.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// S3 endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<String>,
    /// Iceberg REST catalog URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<String>,
    /// Trino coordinator URI for clients: HTTPS, verified with the CA certificate in the
    /// ConfigMap `<lake>-trino-ca`; logins are in the `<lake>-trino-*` Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trino: Option<String>,
}

/// State of one zone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    /// Zone name.
    pub name: String,
    /// Bucket name.
    pub bucket: String,
    /// Whether the bucket exists with the requested settings.
    pub ready: bool,
    /// Why the bucket is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl DataLake {
    /// Bucket name of the zone called `zone`, if the lake has it.
    pub fn zone_bucket(&self, zone: &str) -> Option<String> {
        self.spec
            .zones
            .iter()
            .find(|z| z.name == zone)
            .map(|z| self.bucket_name(z))
    }

    /// Bucket name of a zone: the explicit one, else `<lake>-<zone>`.
    pub fn bucket_name(&self, zone: &ZoneSpec) -> String {
        zone.bucket.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                self.metadata.name.as_deref().unwrap_or_default(),
                zone.name
            )
        })
    }
}
