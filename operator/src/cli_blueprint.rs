//! `lakeform blueprint list|render`: the built-in blueprints (the files under `blueprints/`,
//! compiled in) and a preview of what an instance would create, without a cluster — for
//! GitOps reviews. Rendering goes through the same expansion and checks as the operator
//! ([`crate::desired::blueprint::expand`]); only the API server's dry-run is left out.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use lakeform_api::blueprint::{Blueprint, BlueprintSpec, ClusterBlueprint};
use lakeform_api::workflow::{BlueprintKind, BlueprintRef, Workflow, WorkflowSpec};
use serde::Deserialize;

use crate::desired::blueprint::{Source, expand};

/// The built-in blueprints, as shipped in `blueprints/` (ClusterBlueprints).
pub const BUILT_IN: [(&str, &str); 4] = [
    (
        "database-snapshot",
        include_str!("../../blueprints/database-snapshot.yaml"),
    ),
    (
        "database-incremental",
        include_str!("../../blueprints/database-incremental.yaml"),
    ),
    ("log-files", include_str!("../../blueprints/log-files.yaml")),
    (
        "landing-zone",
        include_str!("../../blueprints/landing-zone.yaml"),
    ),
];

/// Arguments of `lakeform blueprint render`.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// A built-in blueprint (`lakeform blueprint list`). Or use `-f`.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub blueprint: Option<String>,
    /// A file holding a Blueprint or ClusterBlueprint (the first one in a multi-document file).
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// A parameter value, `name=value` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// The instance (Workflow) name.
    #[arg(long, default_value = "preview")]
    pub name: String,
    /// The instance's namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The instance's DataLake (`spec.lakeRef.name`).
    #[arg(long, default_value = "main")]
    pub lake: String,
}

/// A blueprint read from a built-in or a file: its kind, name, generation and spec.
struct Loaded {
    kind: BlueprintKind,
    name: String,
    spec: BlueprintSpec,
}

/// The first Blueprint or ClusterBlueprint document of `text`.
fn parse(text: &str, origin: &str) -> anyhow::Result<Loaded> {
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value =
            serde_yaml::Value::deserialize(doc).with_context(|| format!("{origin}: not YAML"))?;
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        let (kind, name, spec) = match kind {
            "Blueprint" => {
                let b: Blueprint = serde_yaml::from_value(value)
                    .with_context(|| format!("{origin}: not a valid Blueprint"))?;
                (BlueprintKind::Blueprint, b.metadata.name, b.spec)
            }
            "ClusterBlueprint" => {
                let b: ClusterBlueprint = serde_yaml::from_value(value)
                    .with_context(|| format!("{origin}: not a valid ClusterBlueprint"))?;
                (
                    BlueprintKind::ClusterBlueprint,
                    b.metadata.name,
                    b.spec.blueprint,
                )
            }
            _ => continue,
        };
        return Ok(Loaded {
            kind,
            name: name.unwrap_or_default(),
            spec,
        });
    }
    anyhow::bail!("{origin}: no Blueprint or ClusterBlueprint in it")
}

/// `lakeform blueprint list`: each built-in with its description and parameters.
pub fn list(out: &mut impl Write) -> anyhow::Result<()> {
    for (name, text) in BUILT_IN {
        let b = parse(text, name)?;
        writeln!(out, "{name}\n  {}", b.spec.description)?;
        for p in &b.spec.parameters {
            let need = match (&p.default, p.required) {
                (_, true) => "required".to_string(),
                (Some(d), false) => format!("default {d:?}"),
                (None, false) => "optional".to_string(),
            };
            writeln!(
                out,
                "  - {} ({:?}, {need}): {}",
                p.name, p.type_, p.description
            )?;
        }
    }
    Ok(())
}

/// `lakeform blueprint render`: the children an instance would create, as YAML documents.
pub fn render(args: &RenderArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let loaded = match (&args.blueprint, &args.file) {
        (_, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            parse(&text, &file.display().to_string())?
        }
        (Some(name), None) => {
            let (_, text) = BUILT_IN.iter().find(|(n, _)| n == name).with_context(|| {
                let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                format!(
                    "no built-in blueprint {name:?}; built-ins: {}",
                    names.join(", ")
                )
            })?;
            parse(text, name)?
        }
        (None, None) => anyhow::bail!("name a built-in blueprint or give -f FILE"),
    };
    let mut parameters = BTreeMap::new();
    for pair in &args.set {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--set {pair:?}: expected NAME=VALUE"))?;
        parameters.insert(k.to_string(), v.to_string());
    }
    let instance = instance(args, &loaded, parameters)?;
    let source = Source {
        kind: loaded.kind,
        name: &loaded.name,
        generation: 1,
        spec: &loaded.spec,
    };
    let expansion = expand(&instance, source).map_err(|e| {
        anyhow::anyhow!(
            "{} {}: {}",
            loaded.kind,
            loaded.name,
            e.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    })?;
    for obj in expansion.set.objects() {
        let mut body = obj.body.clone();
        // owned by the instance once applied; its uid is not known here
        if let Some(meta) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("ownerReferences");
        }
        writeln!(
            out,
            "---\n# owned by Workflow {}/{}\n{}",
            args.namespace,
            args.name,
            serde_yaml::to_string(&body)?.trim_end()
        )?;
    }
    Ok(())
}

/// The Workflow an instance would be (a placeholder uid: the owner of the previewed children).
fn instance(
    args: &RenderArgs,
    loaded: &Loaded,
    parameters: BTreeMap<String, String>,
) -> anyhow::Result<Workflow> {
    let mut wf = Workflow::new(
        &args.name,
        WorkflowSpec {
            lake_ref: lakeform_api::common::LocalRef {
                name: args.lake.clone(),
            },
            steps: Vec::new(),
            blueprint_ref: Some(BlueprintRef {
                kind: loaded.kind,
                name: loaded.name.clone(),
                parameters,
            }),
            triggers: Vec::new(),
            parameters: BTreeMap::new(),
            concurrency_policy: Default::default(),
            history_limit: 10,
            paused: false,
        },
    );
    wf.metadata.namespace = Some(args.namespace.clone());
    wf.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    wf.metadata.generation = Some(1);
    Ok(wf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_to_string(args: RenderArgs) -> anyhow::Result<String> {
        let mut out = Vec::new();
        render(&args, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    fn args(blueprint: &str, set: &[&str]) -> RenderArgs {
        RenderArgs {
            blueprint: Some(blueprint.into()),
            file: None,
            set: set.iter().map(|s| s.to_string()).collect(),
            name: "nightly".into(),
            namespace: "team".into(),
            lake: "main".into(),
        }
    }

    #[test]
    fn every_built_in_is_valid_and_renders() {
        for (name, text) in BUILT_IN {
            let b = parse(text, name).expect("parses");
            assert_eq!(b.name, name);
            assert_eq!(
                lakeform_api::validate::validate_blueprint(&b.spec),
                Ok(()),
                "{name}"
            );
        }
        let mut listed = Vec::new();
        list(&mut listed).expect("lists");
        let listed = String::from_utf8(listed).expect("utf-8");
        assert!(listed.contains("database-incremental") && listed.contains("bookmarks (List"));
    }

    #[test]
    fn incremental_bookmarks_render_as_compound_keys() {
        let out = render_to_string(args(
            "database-incremental",
            &[
                "connectionSecret=shop-db",
                "tables=shop/public/%",
                "bookmarks=public.orders=id, public.events=day+seq:desc",
                "targetDatabase=shop",
                "partitions=public.events=day, public.orders=region+day",
            ],
        ))
        .expect("renders");
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&out)
            .map(|d| serde_yaml::Value::deserialize(d).expect("yaml"))
            .collect();
        assert_eq!(docs.len(), 1, "{out}");
        let marks = &docs[0]["spec"]["steps"][0]["extract"]["bookmarks"];
        assert_eq!(marks[0]["table"], "public.orders");
        assert_eq!(marks[1]["columns"][1], "seq");
        assert_eq!(marks[1]["order"], "Descending");
        let parts = &docs[0]["spec"]["steps"][0]["extract"]["partitions"];
        assert_eq!(parts[0]["table"], "public.events");
        assert_eq!(parts[1]["columns"][1], "day");
        assert_eq!(docs[0]["metadata"]["name"], "nightly-load");
        assert_eq!(docs[0]["spec"]["lakeRef"]["name"], "main");
    }

    #[test]
    fn log_and_landing_blueprints_render_crawler_and_workflow() {
        let out = render_to_string(args(
            "log-files",
            &["prefix=logs/web/", "database=logs", "table=requests"],
        ))
        .expect("renders");
        assert!(
            out.contains("kind: Crawler") && out.contains("FROM logs.web"),
            "{out}"
        );
        let out = render_to_string(args(
            "landing-zone",
            &[
                "prefix=landing/orders/",
                "database=sales",
                "table=orders",
                "mergeKeys=id",
            ],
        ))
        .expect("renders");
        assert!(
            out.contains("mode: Merge") && out.contains("FROM sales.orders"),
            "{out}"
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_parameter() {
        let err = render_to_string(args("database-snapshot", &["tables=shop/public/%"]))
            .expect_err("missing");
        let text = format!("{err:#}");
        assert!(
            text.contains("parameters.connectionSecret: required"),
            "{text}"
        );
        let err = render_to_string(args(
            "database-snapshot",
            &["connectionSecret=db", "tables=shop", "targetDatabase=shop"],
        ))
        .expect_err("pattern");
        assert!(format!("{err:#}").contains("parameters.tables"), "{err:#}");
        assert!(render_to_string(args("nope", &[])).is_err());
    }
}
