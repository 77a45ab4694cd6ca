//! Blueprint checks, parameter resolution and rendering (minijinja).

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use regex::Regex;

use super::{Collector, FieldError, SpecErrors, parse_cron};
use crate::blueprint::{BlueprintParameter, BlueprintSpec, ParameterType};

/// Variables a template may use besides `params`: the instantiating object's name and namespace.
const GLOBALS: [&str; 2] = ["name", "namespace"];

/// Instructions one render may execute (minijinja fuel): ample for manifests, finite for a
/// template that loops.
const FUEL: u64 = 200_000;

/// Largest rendered manifest, in bytes.
const MAX_RENDERED: usize = 256 * 1024;

/// Parameter values as templates see them: numbers, booleans, strings and lists of strings.
pub type Params = BTreeMap<String, serde_json::Value>;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// The items of a `List` value: comma-separated, trimmed, empty items dropped.
fn list_items(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Check one text against a parameter's enum and pattern.
fn check_text(p: &BlueprintParameter, value: &str) -> Result<(), String> {
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

/// Check one value against a parameter's type, enum and pattern; the value as templates see it.
fn typed_value(p: &BlueprintParameter, value: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    let typed = match p.type_ {
        ParameterType::String => Value::from(value),
        ParameterType::Integer => Value::from(
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{value:?} is not an integer"))?,
        ),
        ParameterType::Double => {
            let d = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|d| d.is_finite())
                .ok_or_else(|| format!("{value:?} is not a number"))?;
            Value::from(d)
        }
        ParameterType::Boolean => match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("{value:?} is not true or false")),
        },
        ParameterType::Cron => {
            parse_cron(value)?;
            Value::from(value)
        }
        ParameterType::S3Location => {
            let rest = value
                .strip_prefix("s3://")
                .ok_or_else(|| format!("{value:?} is not an S3 location (s3://bucket/prefix)"))?;
            let bucket = rest.split('/').next().unwrap_or_default();
            let ok = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !ok {
                return Err(format!("{value:?}: {bucket:?} is not a bucket name"));
            }
            Value::from(value)
        }
        ParameterType::List => {
            let items = list_items(value);
            for item in &items {
                check_text(p, item)?;
            }
            return Ok(Value::from(items));
        }
    };
    if matches!(p.type_, ParameterType::String | ParameterType::S3Location) {
        check_text(p, value)?;
    }
    Ok(typed)
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
        ParameterType::Double => "0.5".into(),
        ParameterType::Boolean => "true".into(),
        ParameterType::Cron => "0 * * * *".into(),
        ParameterType::S3Location => "s3://sample/prefix/".into(),
        ParameterType::List => format!("sample-{}", p.name.to_lowercase().replace('_', "-")),
    }
}

/// Sample values for every parameter (defaults, first enum values, or type samples), as a
/// `blueprint render` without `--set` and the Blueprint's own check use them.
pub fn sample_parameters(spec: &BlueprintSpec) -> BTreeMap<String, String> {
    spec.parameters
        .iter()
        .map(|p| (p.name.clone(), sample_value(p)))
        .collect()
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
            c.check(
                format!("spec.parameters[{i}].default"),
                typed_value(p, d).map(drop),
            );
        }
        if spec.parameters[..i].iter().any(|q| q.name == p.name) {
            c.add(format!("spec.parameters[{i}].name"), "declared twice");
        }
    }
    let declared: Vec<&str> = spec.parameters.iter().map(|p| p.name.as_str()).collect();
    let samples = resolve_parameters(spec, &sample_parameters(spec), "sample");
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
        if let Ok(samples) = &samples
            && let Err(e) = render_one(&env, &res.template, samples, "sample", "sample-ns")
        {
            c.add(&path, format!("with sample values: {e}"));
        }
    }
    c.finish()
}

/// Fill defaults and check the given values against a Blueprint's parameters: the values as
/// templates see them (typed).
pub fn resolve_parameters(
    spec: &BlueprintSpec,
    values: &BTreeMap<String, String>,
    field: &str,
) -> Result<Params, SpecErrors> {
    let mut c = Collector::default();
    for name in values.keys() {
        if !spec.parameters.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = spec.parameters.iter().map(|p| p.name.as_str()).collect();
            c.add(
                format!("{field}.{name}"),
                format!(
                    "the blueprint declares no such parameter (it has: {})",
                    known.join(", ")
                ),
            );
        }
    }
    let mut resolved = Params::new();
    for p in &spec.parameters {
        match values.get(&p.name).or(p.default.as_ref()) {
            Some(v) => match typed_value(p, v) {
                Ok(typed) => {
                    resolved.insert(p.name.clone(), typed);
                }
                Err(e) => c.add(format!("{field}.{} ({:?})", p.name, p.type_), e),
            },
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
    params: &Params,
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
                path: format!("spec.resources[{i}] ({}).template", res.name),
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
    params: &Params,
    name: &str,
    namespace: &str,
) -> Result<serde_json::Value, String> {
    let params = minijinja::Value::from(minijinja::value::Serde(params));
    let ctx = minijinja::context! { params => params, name => name, namespace => namespace };
    let text = env
        .render_str(source, ctx)
        .map_err(|e| format!("template does not render: {e}"))?;
    if text.len() > MAX_RENDERED {
        return Err(format!(
            "the rendered manifest has {} bytes, more than {MAX_RENDERED}",
            text.len()
        ));
    }
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

    fn param(name: &str, type_: ParameterType) -> BlueprintParameter {
        BlueprintParameter {
            name: name.into(),
            type_,
            ..Default::default()
        }
    }

    #[test]
    fn values_are_typed_for_templates() {
        let mut tables = param("tables", ParameterType::List);
        tables.pattern = Some("[a-z%/]+".into());
        let spec = BlueprintSpec {
            description: String::new(),
            parameters: vec![
                param("workers", ParameterType::Integer),
                param("ratio", ParameterType::Double),
                param("merge", ParameterType::Boolean),
                param("where", ParameterType::S3Location),
                tables,
            ],
            resources: vec![ResourceTemplate {
                name: "cm".into(),
                template: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  \
                    sum: '{{ params.workers + 1 }}'\n  half: '{{ params.ratio * 2 }}'\n  \
                    merge: '{{ not params.merge }}'\n  tables: '{{ params.tables | tojson }}'\n  \
                    first: '{{ params.tables[0] }}'\n"
                    .into(),
            }],
        };
        assert_eq!(validate_blueprint(&spec), Ok(()));
        let values: BTreeMap<String, String> = [
            ("workers", "4"),
            ("ratio", "0.25"),
            ("merge", "true"),
            ("where", "s3://raw/logs/"),
            ("tables", "shop/public/%, shop/public/orders"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let params = resolve_parameters(&spec, &values, "p").expect("valid");
        let out = render_blueprint(&spec, &params, "wf", "ns").expect("renders");
        let data = &out[0]["data"];
        assert_eq!(data["sum"], "5");
        assert_eq!(data["half"], "0.5");
        assert_eq!(data["merge"], "False"); // Jinja spelling; YAML reads it as a boolean
        assert_eq!(data["tables"], r#"["shop/public/%", "shop/public/orders"]"#);
        assert_eq!(data["first"], "shop/public/%");
    }

    #[test]
    fn each_type_rejects_what_it_is_not() {
        let cases = [
            (ParameterType::Integer, "1.5", "not an integer"),
            (ParameterType::Double, "NaN", "not a number"),
            (ParameterType::Boolean, "yes", "not true or false"),
            (ParameterType::S3Location, "/tmp/x", "not an S3 location"),
            (ParameterType::S3Location, "s3://A_B/x", "not a bucket name"),
            (ParameterType::Cron, "61 * * * *", ""),
        ];
        for (type_, value, want) in cases {
            let err = typed_value(&param("x", type_), value).expect_err(value);
            assert!(err.contains(want), "{type_:?} {value}: {err}");
        }
        let mut list = param("x", ParameterType::List);
        list.enum_ = vec!["a".into(), "b".into()];
        assert!(typed_value(&list, "a, b").is_ok());
        let err = typed_value(&list, "a, c").expect_err("c");
        assert!(err.contains("\"c\" is not one of a, b"), "{err}");
    }

    #[test]
    fn a_looping_template_runs_out_of_fuel() {
        let spec =
            bp("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}");
        let err = validate_blueprint(&spec).expect_err("fuel");
        assert!(err.to_string().contains("fuel"), "{err}");
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
