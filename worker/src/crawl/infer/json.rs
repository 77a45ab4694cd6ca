//! JSON: JSON lines (one object per line) or documents with records at a JSON path, with
//! arrow-json's inference (nested objects → structs, int → double → string widening).

use std::io::{BufReader, Cursor};

use arrow_schema::Schema;

use crate::crawl::error::ObjectFailure;
use crate::crawl::infer::csv::strip_bom;
use crate::lake::schema::normalize;

/// Result of inferring a JSON sample.
#[derive(Clone, Debug)]
pub struct JsonInference {
    pub schema: Schema,
    pub rows: u64,
    pub certainty: f64,
}

/// Share of the first non-empty lines that are JSON objects (0 when none).
pub fn lines_certainty(text: &[u8], complete: bool) -> f64 {
    let text = strip_bom(text);
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(50)
        .collect();
    // a truncated sample ends in a partial line
    let n = if complete || lines.len() < 2 {
        lines.len()
    } else {
        lines.len() - 1
    };
    if n == 0 {
        return 0.0;
    }
    let ok = lines[..n]
        .iter()
        .filter(|l| {
            matches!(
                serde_json::from_slice::<serde_json::Value>(l),
                Ok(serde_json::Value::Object(_))
            )
        })
        .count();
    ok as f64 / n as f64
}

/// The sample up to its last complete line.
fn complete_lines(text: &[u8], complete: bool) -> &[u8] {
    if complete {
        return text;
    }
    match text.iter().rposition(|b| *b == b'\n') {
        Some(i) => &text[..=i],
        None => &text[..0],
    }
}

/// Infers the schema of JSON lines.
pub fn infer_lines(
    text: &[u8],
    complete: bool,
    sample_rows: usize,
) -> Result<JsonInference, ObjectFailure> {
    let text = complete_lines(strip_bom(text), complete);
    let certainty = lines_certainty(text, true);
    if certainty < 0.9 {
        return Err(ObjectFailure::Json("not JSON lines".into()));
    }
    let (schema, rows) =
        arrow_json::reader::infer_json_schema(BufReader::new(Cursor::new(text)), Some(sample_rows))
            .map_err(|e| ObjectFailure::Json(e.to_string()))?;
    Ok(JsonInference {
        schema: normalize(&schema),
        rows: rows as u64,
        certainty,
    })
}

/// Parses a JSON path of the form `$.a.b[*]` / `$[*]` into object keys.
pub fn parse_path(path: &str) -> Result<Vec<String>, ObjectFailure> {
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| ObjectFailure::Json(format!("JSON path {path:?} must start with $")))?;
    let rest = rest.strip_suffix("[*]").unwrap_or(rest);
    Ok(rest
        .split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

/// The records of a whole JSON document at `path` (an array there, or a single object).
pub fn records_at(text: &[u8], path: &[String]) -> Result<Vec<serde_json::Value>, ObjectFailure> {
    let doc: serde_json::Value =
        serde_json::from_slice(strip_bom(text)).map_err(|e| ObjectFailure::Json(e.to_string()))?;
    let mut node = &doc;
    for key in path {
        node = node
            .get(key)
            .ok_or_else(|| ObjectFailure::Json(format!("no key {key:?} on the JSON path")))?;
    }
    match node {
        serde_json::Value::Array(items) => Ok(items.clone()),
        serde_json::Value::Object(_) => Ok(vec![node.clone()]),
        _ => Err(ObjectFailure::Json(
            "the JSON path does not lead to records".into(),
        )),
    }
}

/// Infers the schema of the records at a JSON path of a whole document.
pub fn infer_path(
    text: &[u8],
    path: &[String],
    sample_rows: usize,
) -> Result<JsonInference, ObjectFailure> {
    let records = records_at(text, path)?;
    if records.is_empty() {
        return Err(ObjectFailure::Json("no records at the JSON path".into()));
    }
    let schema = arrow_json::reader::infer_json_schema_from_iterator(
        records.iter().take(sample_rows).map(|v| Ok(v.clone())),
    )
    .map_err(|e| ObjectFailure::Json(e.to_string()))?;
    Ok(JsonInference {
        schema: normalize(&schema),
        rows: records.len() as u64,
        certainty: 1.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field};

    #[test]
    fn nested_objects_become_structs() {
        let text = br#"{"id":1,"user":{"name":"a","age":3},"tags":["x"]}
{"id":2,"user":{"name":"b","city":"c"},"tags":[]}
"#;
        let i = infer_lines(text, true, 100).expect("json");
        assert_eq!(i.rows, 2);
        let field = |n: &str| i.schema.field_with_name(n).expect(n).data_type().clone();
        assert_eq!(field("id"), DataType::Int64);
        let DataType::Struct(user) = field("user") else {
            panic!("user is not a struct: {:?}", i.schema)
        };
        let names: Vec<&str> = user.iter().map(|f| f.name().as_str()).collect();
        assert!(names.contains(&"age") && names.contains(&"city"));
        assert!(matches!(field("tags"), DataType::List(_)));
    }

    #[test]
    fn mixed_types_widen() {
        let text = b"{\"a\":1,\"b\":1}\n{\"a\":2.5,\"b\":\"x\"}\n";
        let i = infer_lines(text, true, 100).expect("json");
        assert_eq!(
            i.schema.field_with_name("a").map(Field::data_type).ok(),
            Some(&DataType::Float64)
        );
        assert_eq!(
            i.schema.field_with_name("b").map(Field::data_type).ok(),
            Some(&DataType::Utf8)
        );
    }

    #[test]
    fn truncated_sample_and_prose() {
        let text = b"{\"a\":1}\n{\"a\":2}\n{\"a\":";
        assert_eq!(infer_lines(text, false, 100).expect("json").rows, 2);
        assert!(infer_lines(b"hello\nworld\n", true, 100).is_err());
        assert!(infer_lines(b"", true, 100).is_err());
    }

    #[test]
    fn records_at_a_path() {
        let doc = br#"{"records":[{"x":1},{"x":2,"y":"z"}]}"#;
        let path = parse_path("$.records[*]").expect("path");
        assert_eq!(path, vec!["records"]);
        let i = infer_path(doc, &path, 10).expect("json path");
        assert_eq!(i.rows, 2);
        assert_eq!(i.schema.fields().len(), 2);
    }
}
