//! A blueprint instance's desired set: the blueprint's templates rendered with the instance's
//! parameters, each object checked (an allowed kind, in the instance's namespace, its spec
//! deserialized and validated like the kind's controller will), labelled with the instance and
//! owned by it. Pure: the controller dry-runs and applies the set; `lakeform blueprint render`
//! prints it.
//!
//! Allowed kinds are Crawler, Workflow and ConfigMap: a blueprint cannot create anything its
//! instance's author could not, nor anything that runs code with other credentials than a
//! Workflow's steps. A rendered Workflow cannot itself use a blueprint (no nesting) nor take the
//! instance's own name. A rendered Crawler or Workflow without `spec.lakeRef` gets the
//! instance's.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ApiResource;
use kube::{Resource, ResourceExt};
use lakeform_api::blueprint::BlueprintSpec;
use lakeform_api::common::{LABEL_MANAGED_BY, MANAGED_BY};
use lakeform_api::crawler::Crawler;
use lakeform_api::validate::{
    FieldError, SpecErrors, render_blueprint, resolve_parameters, validate_crawler,
    validate_workflow,
};
use lakeform_api::workflow::{BlueprintKind, ChildRef, ExpandedFrom, Workflow};
use serde_json::{Value, json};

use super::set::{DesiredSet, Ownership};
use super::workflow::label_value;

/// Label on every child: the instance (Workflow) that created it.
pub const LABEL_INSTANCE: &str = "lakeform.dev/blueprint-instance";
/// Annotation on every child: `<Kind>/<name>@<generation>` of the blueprint it came from.
pub const BLUEPRINT_ANNOTATION: &str = "lakeform.dev/blueprint";
/// Annotation on an instance asking to re-expand from the blueprint's current generation (the
/// value is a token; each new token re-expands once).
pub const RE_EXPAND_ANNOTATION: &str = "lakeform.dev/re-expand";

/// The blueprint an instance is expanded from.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// Blueprint or ClusterBlueprint.
    pub kind: BlueprintKind,
    /// Its name.
    pub name: &'a str,
    /// Its `metadata.generation`.
    pub generation: i64,
    /// Its templates and parameters.
    pub spec: &'a BlueprintSpec,
}

/// What an expansion wants applied, and the status that records it.
#[derive(Debug)]
pub struct Expansion {
    /// The children, owned by the instance's label.
    pub set: DesiredSet,
    /// `kind`/`name` of each child, in template order.
    pub children: Vec<ChildRef>,
    /// Where they came from.
    pub expanded_from: ExpandedFrom,
}

/// The live objects an instance speaks for: its label, on the kinds a blueprint may create.
pub fn ownership(instance: &Workflow) -> Ownership {
    Ownership::new(format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_INSTANCE}={}",
        label_value(&instance.name_any())
    ))
    .kind::<Crawler>()
    .kind::<Workflow>()
    .kind::<ConfigMap>()
}

/// The kinds a template may render: `(apiVersion, kind)` → its API resource.
fn allowed(api_version: &str, kind: &str) -> Option<ApiResource> {
    match (api_version, kind) {
        ("lakeform.dev/v1alpha1", "Crawler") => Some(ApiResource::erase::<Crawler>(&())),
        ("lakeform.dev/v1alpha1", "Workflow") => Some(ApiResource::erase::<Workflow>(&())),
        ("v1", "ConfigMap") => Some(ApiResource::erase::<ConfigMap>(&())),
        _ => None,
    }
}

/// Render `source` for `instance` and check every object; all problems at once.
pub fn expand(instance: &Workflow, source: Source<'_>) -> Result<Expansion, SpecErrors> {
    let values = instance
        .spec
        .blueprint_ref
        .as_ref()
        .map(|b| b.parameters.clone())
        .unwrap_or_default();
    let params = resolve_parameters(source.spec, &values, "spec.blueprintRef.parameters")?;
    let namespace = instance.namespace().unwrap_or_default();
    let manifests = render_blueprint(source.spec, &params, &instance.name_any(), &namespace)?;
    let mut set = DesiredSet::new(Some(ownership(instance)));
    let mut children = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, manifest) in manifests.into_iter().enumerate() {
        let path = format!(
            "spec.resources[{i}] ({})",
            source.spec.resources.get(i).map_or("", |r| r.name.as_str())
        );
        match child(instance, source, manifest) {
            Ok((resource, name, body)) => {
                if !seen.insert((resource.kind.clone(), name.clone())) {
                    errors.push(FieldError {
                        path,
                        message: format!("renders {} {name} a second time", resource.kind),
                    });
                    continue;
                }
                children.push(ChildRef {
                    kind: resource.kind.clone(),
                    name: name.clone(),
                });
                if let Err(e) = set.add_value(resource, name, body) {
                    errors.push(FieldError {
                        path,
                        message: format!("cannot be serialized: {e}"),
                    });
                }
            }
            Err(message) => errors.push(FieldError { path, message }),
        }
    }
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    Ok(Expansion {
        set,
        children,
        expanded_from: ExpandedFrom {
            kind: source.kind,
            name: source.name.to_string(),
            generation: source.generation,
            instance_generation: instance.metadata.generation.unwrap_or_default(),
        },
    })
}

/// One rendered manifest made a child: checked, namespaced, labelled, annotated and owned.
fn child(
    instance: &Workflow,
    source: Source<'_>,
    mut body: Value,
) -> Result<(ApiResource, String, Value), String> {
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (api_version, kind, name) = (
        text("/apiVersion").to_string(),
        text("/kind").to_string(),
        text("/metadata/name").to_string(),
    );
    let resource = allowed(&api_version, &kind).ok_or_else(|| {
        format!(
            "renders {api_version} {kind}, which a blueprint may not create (Crawler, Workflow \
             or ConfigMap only)"
        )
    })?;
    let namespace = instance.namespace().unwrap_or_default();
    let own_ns = text("/metadata/namespace");
    if !own_ns.is_empty() && own_ns != namespace {
        return Err(format!(
            "renders {kind} {name} in namespace {own_ns}; children live in the instance's \
             namespace {namespace}"
        ));
    }
    if kind != "ConfigMap"
        && body.pointer("/spec/lakeRef").is_none()
        && let Some(spec) = body.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert(
            "lakeRef".into(),
            json!({"name": instance.spec.lake_ref.name}),
        );
    }
    check_kind(instance, &kind, &name, &body)?;
    let meta = body
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("renders {kind} {name} whose metadata is not a mapping"))?;
    meta.insert("namespace".into(), namespace.into());
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Some(l) = labels.as_object_mut() {
        l.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
        l.insert(
            LABEL_INSTANCE.into(),
            label_value(&instance.name_any()).into(),
        );
    }
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            BLUEPRINT_ANNOTATION.into(),
            format!("{}/{}@{}", source.kind, source.name, source.generation).into(),
        );
    }
    let owner = instance
        .controller_owner_ref(&())
        .ok_or_else(|| "the instance has no uid yet".to_string())?;
    meta.insert(
        "ownerReferences".into(),
        serde_json::to_value(vec![owner]).map_err(|e| e.to_string())?,
    );
    Ok((resource, name, body))
}

/// The object deserializes as its kind and passes the checks its controller will make (those
/// that need no other object).
fn check_kind(instance: &Workflow, kind: &str, name: &str, body: &Value) -> Result<(), String> {
    let invalid = |e: &dyn std::fmt::Display| format!("renders an invalid {kind} {name}: {e}");
    match kind {
        "Crawler" => {
            let c: Crawler = serde_json::from_value(body.clone()).map_err(|e| invalid(&e))?;
            validate_crawler(&c.spec, None).map_err(|e| invalid(&e))
        }
        "Workflow" => {
            let w: Workflow = serde_json::from_value(body.clone()).map_err(|e| invalid(&e))?;
            if w.spec.blueprint_ref.is_some() {
                return Err(invalid(&"spec.blueprintRef: blueprints do not nest"));
            }
            if name == instance.name_any() {
                return Err(invalid(&"it has the instance's own name"));
            }
            validate_workflow(&w.spec, None).map_err(|e| invalid(&e))
        }
        _ => serde_json::from_value::<ConfigMap>(body.clone())
            .map(drop)
            .map_err(|e| invalid(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(params: &str) -> Workflow {
        let mut w: Workflow = serde_yaml::from_str(&format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: Workflow\nmetadata: {{name: nightly, namespace: team, uid: u1, generation: 3}}\nspec:\n  lakeRef: {{name: main}}\n  blueprintRef:\n    name: bp\n    parameters: {params}\n"
        ))
        .expect("instance");
        w.metadata.generation = Some(3);
        w
    }

    fn blueprint(resources: &str) -> BlueprintSpec {
        serde_yaml::from_str(&format!(
            "parameters:\n- {{name: source, required: true}}\n- {{name: zone, default: raw}}\nresources:\n{resources}"
        ))
        .expect("blueprint")
    }

    const CRAWLER: &str = "- name: crawler\n  template: |\n    apiVersion: lakeform.dev/v1alpha1\n    kind: Crawler\n    metadata: {name: '{{ name }}-{{ params.source }}'}\n    spec:\n      targets: [{zone: '{{ params.zone }}', prefix: '{{ params.source }}/'}]\n      database: '{{ params.source }}'\n";

    fn source(spec: &BlueprintSpec) -> Source<'_> {
        Source {
            kind: BlueprintKind::ClusterBlueprint,
            name: "bp",
            generation: 7,
            spec,
        }
    }

    #[test]
    fn children_are_labelled_owned_and_given_the_lake() {
        let spec = blueprint(CRAWLER);
        let e = expand(&instance("{source: orders}"), source(&spec)).expect("expands");
        assert_eq!(
            e.children,
            [ChildRef {
                kind: "Crawler".into(),
                name: "nightly-orders".into()
            }]
        );
        let obj = e.set.objects()[0];
        assert_eq!(obj.body["metadata"]["namespace"], "team");
        assert_eq!(obj.body["metadata"]["labels"][LABEL_INSTANCE], "nightly");
        assert_eq!(
            obj.body["metadata"]["annotations"][BLUEPRINT_ANNOTATION],
            "ClusterBlueprint/bp@7"
        );
        assert_eq!(obj.body["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(obj.body["spec"]["lakeRef"]["name"], "main");
        assert_eq!(e.expanded_from.generation, 7);
        assert_eq!(e.expanded_from.instance_generation, 3);
    }

    #[test]
    fn bad_parameters_and_bad_children_are_named() {
        let spec = blueprint(CRAWLER);
        let err = expand(&instance("{}"), source(&spec)).expect_err("missing");
        assert!(
            err.to_string()
                .contains("spec.blueprintRef.parameters.source: required"),
            "{err}"
        );
        let err = expand(&instance("{source: a, sourse: b}"), source(&spec)).expect_err("typo");
        assert!(err.to_string().contains("parameters.sourse"), "{err}");

        let role = "- name: role\n  template: |\n    apiVersion: rbac.authorization.k8s.io/v1\n    kind: Role\n    metadata: {name: x}\n";
        let err = expand(&instance("{source: a}"), source(&blueprint(role))).expect_err("kind");
        assert!(
            err.to_string()
                .contains("spec.resources[0] (role): renders rbac.authorization.k8s.io/v1 Role"),
            "{err}"
        );
        let bad_zone = CRAWLER.replace("prefix: '{{ params.source }}/'", "prefix: 5");
        let err =
            expand(&instance("{source: a}"), source(&blueprint(&bad_zone))).expect_err("type");
        assert!(
            err.to_string().contains("renders an invalid Crawler"),
            "{err}"
        );
        let twice = format!(
            "{CRAWLER}{}",
            CRAWLER.replace("name: crawler", "name: again")
        );
        let err = expand(&instance("{source: a}"), source(&blueprint(&twice))).expect_err("dup");
        assert!(err.to_string().contains("a second time"), "{err}");
    }

    #[test]
    fn workflows_do_not_nest_nor_replace_the_instance() {
        let wf = |name: &str, extra: &str| {
            format!(
                "- name: wf\n  template: |\n    apiVersion: lakeform.dev/v1alpha1\n    kind: Workflow\n    metadata: {{name: {name}}}\n    spec:\n{extra}"
            )
        };
        let nested = wf("inner", "      blueprintRef: {name: other}\n");
        let err = expand(&instance("{source: a}"), source(&blueprint(&nested))).expect_err("nest");
        assert!(err.to_string().contains("do not nest"), "{err}");
        let own = wf(
            "nightly",
            "      steps: [{name: s, container: {image: busybox}}]\n",
        );
        let err = expand(&instance("{source: a}"), source(&blueprint(&own))).expect_err("own");
        assert!(err.to_string().contains("instance's own name"), "{err}");
    }
}
