//! `Blueprint` and `ClusterBlueprint`: parameterised templates that expand into Crawlers,
//! Workflows and ConfigMaps. A Workflow with `spec.blueprintRef` is an instance: the operator
//! renders the templates with its parameters and keeps the rendered objects (its children) in
//! step. A `Blueprint` serves its own namespace; a `ClusterBlueprint` (the built-ins under
//! `blueprints/`) serves every namespace.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Conditions;

/// A parameterised template (Lake Formation blueprint). Its `resources` are rendered with the
/// parameter values (`{{ params.name }}`, minijinja syntax) into manifests.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lakeform.dev",
    version = "v1alpha1",
    kind = "Blueprint",
    plural = "blueprints",
    shortname = "bp",
    category = "lakeform",
    namespaced,
    status = "BlueprintStatus",
    doc = "A parameterised template that expands into Crawlers, Workflows and other objects.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Instances","type":"integer","jsonPath":".status.instances"}"#,
    printcolumn = r#"{"name":"Description","type":"string","jsonPath":".spec.description","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BlueprintSpec {
    /// What the blueprint builds, for humans.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub description: String,
    /// Parameters the templates may use. Names are unique.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub parameters: Vec<BlueprintParameter>,
    /// Templates of the objects the blueprint creates. Each renders to one YAML manifest of a
    /// Crawler, a Workflow (without a `blueprintRef` of its own) or a ConfigMap, in the
    /// instance's namespace; no other kinds (a blueprint cannot grant itself more than its
    /// instance's author could write).
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub resources: Vec<ResourceTemplate>,
}

/// `ClusterBlueprint`'s spec: the same as a Blueprint's, for every namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "lakeform.dev",
    version = "v1alpha1",
    kind = "ClusterBlueprint",
    plural = "clusterblueprints",
    shortname = "cbp",
    category = "lakeform",
    status = "BlueprintStatus",
    doc = "A parameterised template usable from every namespace (the built-in blueprints are ClusterBlueprints).",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Instances","type":"integer","jsonPath":".status.instances"}"#,
    printcolumn = r#"{"name":"Description","type":"string","jsonPath":".spec.description","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ClusterBlueprintSpec {
    /// Description, parameters and resource templates, as in a Blueprint.
    #[serde(flatten)]
    pub blueprint: BlueprintSpec,
}

/// A blueprint parameter. (Glue's `defaultValue` is `default`, `allowedValues` is `enum`.)
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.required && has(self.default))")
    .message("spec.parameters[]: a required parameter cannot have a default"))]
#[x_kube(validation = Rule::new("!has(self.default) || size(self.enum) == 0 || self.type != 'String' || self.default in self.enum")
    .message("spec.parameters[].default must be one of the parameter's enum values"))]
#[x_kube(validation = Rule::new("size(self.enum) == 0 || self.type in ['String', 'List']")
    .message("spec.parameters[].enum is only allowed for types String and List"))]
#[x_kube(validation = Rule::new("!has(self.pattern) || self.type in ['String', 'List', 'S3Location']")
    .message("spec.parameters[].pattern is only allowed for types String, List and S3Location"))]
pub struct BlueprintParameter {
    /// Name used in templates as `params.<name>`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    )]
    pub name: String,
    /// Value type, checked before rendering.
    #[serde(rename = "type", default)]
    pub type_: ParameterType,
    /// Whether a value must be given.
    #[serde(default)]
    pub required: bool,
    /// Value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub default: Option<String>,
    /// What the parameter means.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub description: String,
    /// Allowed values (types String and List; Glue's `allowedValues`).
    #[serde(default, rename = "enum")]
    #[schemars(length(max = 64))]
    pub enum_: Vec<String>,
    /// Regular expression values must match (whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub pattern: Option<String>,
}

/// Type of a blueprint parameter. Values are always written as strings in `blueprintRef`;
/// templates see them typed (`params.x` is a number, a boolean or a list).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ParameterType {
    /// Any text.
    #[default]
    String,
    /// A whole number (a number in templates).
    Integer,
    /// A decimal number such as `0.5` (a number in templates).
    Double,
    /// `true` or `false` (a boolean in templates).
    Boolean,
    /// A five-field cron expression.
    Cron,
    /// An S3 location `s3://bucket/prefix/`.
    S3Location,
    /// Comma-separated values (`a, b, c`); a list of strings in templates (render it with
    /// `{{ params.x | tojson }}`). `pattern` and `enum` apply to each item.
    List,
}

/// One object template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplate {
    /// Template name, unique within the blueprint.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// A YAML manifest with minijinja placeholders, e.g. `name: {{ params.source }}-crawler`.
    #[schemars(length(min = 1, max = 65536))]
    pub template: String,
}

/// Observed state of a Blueprint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueprintStatus {
    /// `Ready` (templates parse and use only declared parameters), with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Workflows expanded from this blueprint (for a ClusterBlueprint: in the namespaces the
    /// operator watches).
    #[serde(default)]
    pub instances: i32,
    /// Instances expanded from an older generation (`UpToDate=False`).
    #[serde(default)]
    pub outdated_instances: i32,
}
