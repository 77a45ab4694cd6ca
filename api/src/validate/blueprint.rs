//! Blueprint checks, parameter resolution and rendering (minijinja).

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use regex::Regex;

use super::{Collector, FieldError, SpecErrors, parse_cron};
use crate::blueprint::{BlueprintParameter, BlueprintSpec, ParameterType};

/// Variables a template may use besides `params`: the instantiating object's name and namespace.
const GLOBALS: [&str; 2] = ["name", "namespace"];

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Check one value against a parameter's type, enum and pattern.
fn check_value(p: &BlueprintParameter, value: &str) -> Result<(), String> {
    match p.type_ {
        ParameterType::String => {}
        ParameterType::Integer => {
            value
                .parse::<i64>()
                .map_err(|_| format!("{value:?} is not an integer"))?;
        }
        ParameterType::Boolean => {
            if value != "true" && value != "false" {
                return Err(format!("{value:?} is not true or false"));
            }
        }
        ParameterType::Cron => {
            parse_cron(value)?;
        }
    }
    if !p.enum_.is_empty() && !p.enum_.iter().any(|e| e == value) {
        return Err(format!("{value:?} is not one of {}", p.enum_.join(", ")));
    }
    if let Some(pattern) = &p.pattern {
        let re = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("pattern {pattern:?} does not compile: {e}"))?;
        if !re.is_match(value) {
            return Err(format!("{value:?} does not match the pattern {pattern:?}"));
        }
    }
    Ok(())
}

/// A value of the right type for rendering a template when checking it.
fn sample_value(p: &BlueprintParameter) -> String {
    if let Some(d) = &p.default {
        return d.clone();
    }
    if let Some(first) = p.enum_.first() {
        return first.clone();
    }
    match p.type_ {
        ParameterType::String => format!("sample-{}", p.name.to_lowercase().replace('_', "-")),
        ParameterType::Integer => "1".into(),
        ParameterType::Boolean => "true".into(),
        ParameterType::Cron => "0 * * * *".into(),
    }
}

/// Check a Blueprint: parameter patterns and defaults, and every template parses, uses only
/// declared parameters, and renders (with sample values) to a manifest with apiVersion, kind
/// and metadata.name.
pub fn validate_blueprint(spec: &BlueprintSpec) -> Result<(), SpecErrors> {
    let mut c = Collector::default();
    for (i, p) in spec.parameters.iter().enumerate() {
        if let Some(pattern) = &p.pattern
            && let Err(e) = Regex::new(pattern)
        {
            c.add(
                format!("spec.parameters[{i}].pattern"),
                format!("{pattern:?} does not compile: {e}"),
            );
        }
        if let Some(d) = &p.default {
            c.check(format!("spec.parameters[{i}].default"), check_value(p, d));
        }
    }
    let declared: Vec<&str> = spec.parameters.iter().map(|p| p.name.as_str()).collect();
    let samples: BTreeMap<String, String> = spec
        .parameters
        .iter()
        .map(|p| (p.name.clone(), sample_value(p)))
        .collect();
    let env = environment();
    for (i, res) in spec.resources.iter().enumerate() {
        let path = format!("spec.resources[{i}].template");
        let template = match env.template_from_str(&res.template) {
            Ok(t) => t,
            Err(e) => {
                c.add(path, format!("template does not parse: {e}"));
                continue;
            }
        };
        let mut used: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        used.sort();
        for var in used {
            let known = match var.strip_prefix("params.") {
                Some(param) => declared.contains(&param),
                None => var == "params" || GLOBALS.contains(&var.as_str()),
            };
            if !known {
                c.add(
                    &path,
                    format!("uses {var:?}, which is not a declared parameter (params.<name>) or one of name, namespace"),
                );
            }
        }
        if let Err(e) = render_one(&env, &res.template, &samples, "sample", "sample-ns") {
            c.add(&path, e);
        }
    }
    c.finish()
}

/// Fill defaults and check the given values against a Blueprint's parameters.
pub fn resolve_parameters(
    spec: &BlueprintSpec,
    values: &BTreeMap<String, String>,
    field: &str,
) -> Result<BTreeMap<String, String>, SpecErrors> {
    let mut c = Collector::default();
    for name in values.keys() {
        if !spec.parameters.iter().any(|p| &p.name == name) {
            c.add(
                format!("{field}.{name}"),
                "the blueprint declares no such parameter",
            );
        }
    }
    let mut resolved = BTreeMap::new();
    for p in &spec.parameters {
        match values.get(&p.name).or(p.default.as_ref()) {
            Some(v) => {
                c.check(format!("{field}.{}", p.name), check_value(p, v));
                resolved.insert(p.name.clone(), v.clone());
            }
            None if p.required => c.add(
                format!("{field}.{}", p.name),
                "required parameter is missing",
            ),
            None => {}
        }
    }
    c.finish().map(|()| resolved)
}

/// Render every resource template with resolved parameters into manifests.
pub fn render_blueprint(
    spec: &BlueprintSpec,
    params: &BTreeMap<String, String>,
    name: &str,
    namespace: &str,
) -> Result<Vec<serde_json::Value>, SpecErrors> {
    let env = environment();
    let mut out = Vec::with_capacity(spec.resources.len());
    let mut errors = Vec::new();
    for (i, res) in spec.resources.iter().enumerate() {
        match render_one(&env, &res.template, params, name, namespace) {
            Ok(v) => out.push(v),
            Err(message) => errors.push(FieldError {
                path: format!("spec.resources[{i}].template"),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(SpecErrors(errors))
    }
}

fn render_one(
    env: &Environment<'static>,
    source: &str,
    params: &BTreeMap<String, String>,
    name: &str,
    namespace: &str,
) -> Result<serde_json::Value, String> {
    let ctx = minijinja::context! { params => params, name => name, namespace => namespace };
    let text = env
        .render_str(source, ctx)
        .map_err(|e| format!("template does not render: {e}"))?;
    let value: serde_json::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("rendered template is not YAML: {e}"))?;
    let has = |p: &str| {
        value
            .pointer(p)
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.is_empty())
    };
    if !(has("/apiVersion") && has("/kind") && has("/metadata/name")) {
        return Err(
            "rendered template must be a manifest with apiVersion, kind and metadata.name".into(),
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::ResourceTemplate;

    fn bp(template: &str) -> BlueprintSpec {
        BlueprintSpec {
            description: String::new(),
            parameters: vec![
                BlueprintParameter {
                    name: "source".into(),
                    required: true,
                    ..Default::default()
                },
                BlueprintParameter {
                    name: "schedule".into(),
                    type_: ParameterType::Cron,
                    default: Some("0 2 * * *".into()),
                    ..Default::default()
                },
            ],
            resources: vec![ResourceTemplate {
                name: "crawler".into(),
                template: template.into(),
            }],
        }
    }

    const GOOD: &str = "apiVersion: lakeform.dev/v1alpha1\nkind: Crawler\nmetadata:\n  name: {{ name }}-{{ params.source }}\nspec:\n  schedule:\n    cron: \"{{ params.schedule }}\"\n";

    #[test]
    fn good_template_renders() {
        let spec = bp(GOOD);
        assert_eq!(validate_blueprint(&spec), Ok(()));
        let values = BTreeMap::from([("source".to_string(), "orders".to_string())]);
        let params =
            resolve_parameters(&spec, &values, "spec.blueprintRef.parameters").expect("resolves");
        let out = render_blueprint(&spec, &params, "wf", "ns").expect("renders");
        assert_eq!(out[0]["metadata"]["name"], "wf-orders");
        assert_eq!(out[0]["spec"]["schedule"]["cron"], "0 2 * * *");
    }

    #[test]
    fn undeclared_parameter_is_reported() {
        let err = validate_blueprint(&bp(&GOOD.replace("params.source", "params.sorce")))
            .expect_err("typo");
        assert!(err.to_string().contains("params.sorce"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let err = validate_blueprint(&bp("kind: {{ params.source ")).expect_err("syntax");
        assert!(err.to_string().contains("does not parse"), "{err}");
    }

    #[test]
    fn parameters_are_type_checked() {
        let spec = bp(GOOD);
        let err = resolve_parameters(&spec, &BTreeMap::new(), "p").expect_err("missing");
        assert!(err.to_string().contains("p.source: required"), "{err}");
        let values = BTreeMap::from([
            ("source".to_string(), "x".to_string()),
            ("schedule".to_string(), "every day".to_string()),
            ("extra".to_string(), "1".to_string()),
        ]);
        let err = resolve_parameters(&spec, &values, "p").expect_err("bad values");
        let text = err.to_string();
        assert!(
            text.contains("p.schedule") && text.contains("p.extra"),
            "{text}"
        );
    }
}
