//! Text logs matched by grok patterns (`%{NAME:field:type}`), compiled to a `regex::Regex` with
//! named groups. Built-in: Apache common and combined access logs.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use regex::Regex;

use crate::crawl::error::ObjectFailure;

/// Base patterns, a subset of Logstash's, written for the `regex` crate (no look-around).
const BASE: &[(&str, &str)] = &[
    ("USERNAME", r"[a-zA-Z0-9._-]+"),
    ("USER", r"%{USERNAME}"),
    ("INT", r"[+-]?[0-9]+"),
    ("NUMBER", r"[+-]?[0-9]+(?:\.[0-9]+)?"),
    ("WORD", r"\b\w+\b"),
    ("NOTSPACE", r"\S+"),
    ("SPACE", r"\s*"),
    ("DATA", r".*?"),
    ("GREEDYDATA", r".*"),
    ("QS", r#""(?:[^"\\]|\\.)*""#),
    (
        "IP",
        r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*",
    ),
    ("HOSTNAME", r"[0-9A-Za-z][0-9A-Za-z._-]*"),
    ("IPORHOST", r"(?:%{IP}|%{HOSTNAME})"),
    (
        "HTTPDATE",
        r"[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
    ),
    (
        "COMMONAPACHELOG",
        r#"%{IPORHOST:clientip} %{USER:ident} %{USER:auth} \[%{HTTPDATE:timestamp}\] "(?:%{WORD:verb} %{NOTSPACE:request}(?: HTTP/%{NUMBER:httpversion})?|%{DATA:rawrequest})" %{INT:response:int} (?:%{INT:bytes:int}|-)"#,
    ),
    (
        "COMBINEDAPACHELOG",
        r#"%{COMMONAPACHELOG} "%{DATA:referrer}" "%{DATA:agent}""#,
    ),
];

/// A compiled grok pattern: the regex and the typed columns it yields, in order.
#[derive(Clone, Debug)]
pub struct Grok {
    pub regex: Regex,
    pub schema: Schema,
}

/// Compiles `pattern` with the base patterns plus `custom` (`NAME regex` per line).
pub fn compile(pattern: &str, custom: Option<&str>) -> Result<Grok, ObjectFailure> {
    let mut defs: HashMap<String, String> = BASE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for line in custom.unwrap_or_default().lines() {
        if let Some((name, re)) = line.trim().split_once(char::is_whitespace) {
            defs.insert(name.to_string(), re.trim().to_string());
        }
    }
    let mut fields = Vec::new();
    let expanded = expand(pattern, &defs, &mut fields, 0)?;
    let regex = Regex::new(&format!("^{expanded}$"))
        .map_err(|e| ObjectFailure::Log(format!("grok pattern does not compile: {e}")))?;
    Ok(Grok {
        regex,
        schema: Schema::new(fields),
    })
}

fn expand(
    pattern: &str,
    defs: &HashMap<String, String>,
    fields: &mut Vec<Field>,
    depth: usize,
) -> Result<String, ObjectFailure> {
    if depth > 16 {
        return Err(ObjectFailure::Log("grok patterns nest too deep".into()));
    }
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ObjectFailure::Log(format!("unclosed %{{ in {pattern:?}")))?;
        let spec: Vec<&str> = after[..end].split(':').collect();
        let def = defs
            .get(spec[0])
            .ok_or_else(|| ObjectFailure::Log(format!("unknown grok pattern {}", spec[0])))?;
        let inner = expand(def, defs, fields, depth + 1)?;
        match spec.get(1) {
            Some(name) if !fields.iter().any(|f| f.name() == name) => {
                let dt = match spec.get(2) {
                    Some(&"int") => DataType::Int64,
                    Some(&"float") => DataType::Float64,
                    _ => DataType::Utf8,
                };
                fields.push(Field::new(*name, dt, true));
                out.push_str(&format!("(?P<{name}>{inner})"));
            }
            _ => out.push_str(&format!("(?:{inner})")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Share of the sample's first non-empty lines the pattern matches.
pub fn certainty(grok: &Grok, text: &[u8], complete: bool) -> f64 {
    let text = String::from_utf8_lossy(text);
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(50)
        .collect();
    if !complete && lines.len() > 1 {
        lines.pop();
    }
    if lines.is_empty() {
        return 0.0;
    }
    lines.iter().filter(|l| grok.regex.is_match(l)).count() as f64 / lines.len() as f64
}

/// Parses every matching line into a batch with `grok.schema`; lines that do not match are
/// counted and skipped.
pub fn parse(grok: &Grok, text: &[u8]) -> Result<(RecordBatch, usize), ObjectFailure> {
    let text = String::from_utf8_lossy(text);
    let names: Vec<String> = grok
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    let mut skipped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some(caps) = grok.regex.captures(line) else {
            skipped += 1;
            continue;
        };
        for (i, name) in names.iter().enumerate() {
            cols[i].push(caps.name(name).map(|m| m.as_str().to_string()));
        }
    }
    let arrays: Vec<ArrayRef> = cols
        .into_iter()
        .zip(grok.schema.fields())
        .map(|(values, f)| {
            let strings: ArrayRef = Arc::new(StringArray::from(values));
            arrow_cast::cast(&strings, f.data_type()).map_err(|e| ObjectFailure::Log(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let batch = RecordBatch::try_new(Arc::new(grok.schema.clone()), arrays)
        .map_err(|e| ObjectFailure::Log(e.to_string()))?;
    Ok((batch, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const COMBINED: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"
10.0.0.2 - - [10/Oct/2000:13:55:37 -0700] "POST /api HTTP/1.1" 404 - "-" "curl/8.0"
"#;

    #[test]
    fn combined_apache_log() {
        let g = compile("%{COMBINEDAPACHELOG}", None).expect("grok");
        assert_eq!(certainty(&g, COMBINED.as_bytes(), true), 1.0);
        let (batch, skipped) = parse(&g, COMBINED.as_bytes()).expect("parse");
        assert_eq!(skipped, 0);
        assert_eq!(batch.num_rows(), 2);
        let response = batch.column_by_name("response").expect("response column");
        assert_eq!(response.data_type(), &DataType::Int64);
        let c = compile("%{COMMONAPACHELOG}", None).expect("grok");
        assert_eq!(certainty(&c, b"not a log line\n", true), 0.0);
    }

    #[test]
    fn custom_patterns() {
        let g = compile(
            "%{LEVEL:level} %{GREEDYDATA:msg}",
            Some("LEVEL (INFO|WARN|ERROR)"),
        )
        .expect("grok");
        assert_eq!(certainty(&g, b"INFO started\nWARN slow\n", true), 1.0);
        assert!(compile("%{NOPE:x}", None).is_err());
    }
}
