//! JSON documents that are not JSON lines: one array of records (`[{…},{…}]`, on one line,
//! one record per line or pretty-printed) or an object holding one array of records
//! (`{"Records": […]}`, CloudTrail's shape). A byte scanner finds each record's span without
//! building the document (memory: two integers per record), so inference parses only the
//! records it samples and ingestion feeds the spans to arrow's JSON decoder one by one. A
//! sample that ends inside the document yields its complete records.

use std::ops::Range;

use arrow_schema::Schema;

use crate::crawl::error::ObjectFailure;
use crate::crawl::infer::csv::strip_bom;
use crate::crawl::infer::json::JsonInference;
use crate::lake::schema::normalize;

/// Certainty of a document whose records are all objects: above any CSV reading (at most
/// 0.9) and equal to a perfect JSON-lines reading, which it precedes (ties go to the first).
pub const CERTAINTY: f64 = 1.0;

/// Where the records of a JSON document are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// `None`: the document is the array; `Some(key)`: the array under that top-level key.
    pub key: Option<String>,
    /// Byte ranges of the records (complete ones only).
    pub spans: Vec<Range<usize>>,
    /// Whether the scan reached the end of the array.
    pub finished: bool,
}

/// The records of `text` if it is a JSON document of records; `None` when it is not (JSON
/// lines, a single object without an array of records, CSV, prose …). `complete`: `text` is
/// the whole object (else a prefix, whose unfinished last record is left out).
pub fn records(text: &[u8], complete: bool) -> Option<Records> {
    let text = strip_bom(text);
    let mut s = Scanner { text, at: 0 };
    s.skip_ws();
    match s.peek()? {
        b'[' => {
            let (spans, finished) = s.array_elements()?;
            let done = finished && (s.skip_ws(), s.at == text.len()).1;
            (!spans.is_empty() && (done || (!complete && !finished))).then_some(Records {
                key: None,
                spans,
                finished,
            })
        }
        b'{' => wrapper(&mut s, complete),
        _ => None,
    }
}

/// `{"key": [records], …}`: exactly one top-level key holds an array of objects (in a
/// prefix: the first such key reached).
fn wrapper(s: &mut Scanner<'_>, complete: bool) -> Option<Records> {
    s.at += 1;
    let mut found: Option<Records> = None;
    loop {
        s.skip_ws();
        match s.peek() {
            Some(b'}') => {
                // one object and nothing after it: else this is JSON lines (or not JSON)
                s.at += 1;
                s.skip_ws();
                return found.filter(|_| s.at == s.text.len());
            }
            Some(b',') => {
                s.at += 1;
                continue;
            }
            Some(b'"') => {}
            _ => return (!complete).then_some(found?),
        }
        let key_span = s.string()?;
        let key: String = serde_json::from_slice(&s.text[key_span]).ok()?;
        s.skip_ws();
        (s.peek()? == b':').then_some(())?;
        s.at += 1;
        s.skip_ws();
        let start = s.at;
        if s.peek() == Some(b'[') {
            let (spans, finished) = s.array_elements()?;
            if !spans.is_empty() {
                if found.is_some() {
                    return None; // two arrays of records: not one table
                }
                found = Some(Records {
                    key: Some(key),
                    spans,
                    finished,
                });
            }
            if !finished {
                return (!complete).then_some(found?);
            }
        } else {
            s.at = start;
            if s.value().is_none() {
                return (!complete).then_some(found?);
            }
        }
    }
}

/// Infers the schema of a document's records from the first `sample_rows` of them.
pub fn infer(
    text: &[u8],
    records: &Records,
    sample_rows: usize,
) -> Result<JsonInference, ObjectFailure> {
    let text = strip_bom(text);
    let values = records
        .spans
        .iter()
        .take(sample_rows)
        .map(|r| serde_json::from_slice::<serde_json::Value>(&text[r.clone()]))
        .map(|v| v.map_err(|e| arrow_schema::ArrowError::JsonError(e.to_string())));
    let schema: Schema = arrow_json::reader::infer_json_schema_from_iterator(values)
        .map_err(|e| ObjectFailure::Json(e.to_string()))?;
    Ok(JsonInference {
        schema: normalize(&schema),
        rows: records.spans.len() as u64,
        certainty: CERTAINTY,
    })
}

/// The record spans of a whole document whose records are under `key` (or the array itself).
pub fn spans(text: &[u8], key: Option<&str>) -> Result<Vec<Range<usize>>, ObjectFailure> {
    let found = records(text, true)
        .ok_or_else(|| ObjectFailure::Json("not a JSON document of records".into()))?;
    if found.key.as_deref() != key || !found.finished {
        return Err(ObjectFailure::Json(format!(
            "the document's records are no longer at {}",
            key.map_or("the top level".into(), |k| format!("key {k:?}"))
        )));
    }
    Ok(found.spans)
}

/// A position in a JSON text.
struct Scanner<'t> {
    text: &'t [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// The elements of the array at the cursor that are objects; `(spans, finished)`. `None`
    /// when an element is not an object or the text is not JSON. Unfinished: the text ended
    /// inside the array (its last, partial element is dropped).
    fn array_elements(&mut self) -> Option<(Vec<Range<usize>>, bool)> {
        self.at += 1;
        let mut spans = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => return Some((spans, false)),
                Some(b']') if spans.is_empty() => {
                    self.at += 1;
                    return Some((spans, true));
                }
                Some(b'{') => {}
                Some(_) => return None,
            }
            let Some(span) = self.value() else {
                return (self.at >= self.text.len()).then_some((spans, false));
            };
            spans.push(span);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Some((spans, true));
                }
                None => return Some((spans, false)),
                Some(_) => return None,
            }
        }
    }

    /// The span of the value at the cursor (balanced brackets, strings with escapes); `None`
    /// when the text ends first or is malformed. Scalars end at a delimiter.
    fn value(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                    if depth == 0 {
                        return Some(start..self.at);
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return Some(start..self.at),
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Some(start..self.at);
                    }
                }
                b',' if depth == 0 => return Some(start..self.at),
                b if depth == 0 && b.is_ascii_whitespace() => return Some(start..self.at),
                _ => {}
            }
            self.at += 1;
        }
    }

    /// The span of the string at the cursor, quotes included.
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        self.at += 1;
        loop {
            match self.peek()? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return Some(start..self.at);
                }
                _ => self.at += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &[u8], r: &Records) -> Vec<String> {
        r.spans
            .iter()
            .map(|s| String::from_utf8_lossy(&text[s.clone()]).into_owned())
            .collect()
    }

    #[test]
    fn arrays_in_every_layout() {
        let one_line = br#"[{"a":1,"b":"x,y"},{"a":2,"b":"]"}]"#;
        let per_line = b"[\n{\"a\":1},\n{\"a\":2}\n]\n";
        let pretty =
            b"[\n  {\n    \"a\": 1,\n    \"c\": {\"d\": [1, 2]}\n  },\n  {\n    \"a\": 2\n  }\n]";
        for text in [&one_line[..], per_line, pretty] {
            let r = records(text, true).expect("a document of records");
            assert_eq!(
                (r.key.as_deref(), r.spans.len(), r.finished),
                (None, 2, true)
            );
        }
        let r = records(one_line, true).expect("records");
        assert_eq!(texts(one_line, &r)[1], r#"{"a":2,"b":"]"}"#);
    }

    #[test]
    fn an_object_holding_one_array_of_records() {
        let text = br#"{"Records": [{"eventName":"a"},{"eventName":"b"}], "count": 2}"#;
        let r = records(text, true).expect("records");
        assert_eq!((r.key.as_deref(), r.spans.len()), (Some("Records"), 2));
        assert_eq!(spans(text, Some("Records")).expect("spans").len(), 2);
        // two arrays of records, or none: not one table
        assert!(records(br#"{"nodes":[{"a":1}],"links":[{"b":2}]}"#, true).is_none());
        assert!(records(br#"{"type":"Topology","arcs":[[1,2]]}"#, true).is_none());
        assert!(records(br#"{"a":1}"#, true).is_none());
        // JSON lines whose records hold an array of objects stay JSON lines
        let lines = b"{\"id\":1,\"items\":[{\"sku\":\"a\"}]}\n{\"id\":2,\"items\":[]}\n";
        assert!(records(lines, true).is_none());
        assert!(records(lines, false).is_none());
    }

    #[test]
    fn a_prefix_keeps_its_complete_records() {
        let text = br#"[{"a":1},{"a":2},{"a":"#;
        assert!(
            records(text, true).is_none(),
            "a whole object must be well formed"
        );
        let r = records(text, false).expect("records");
        assert_eq!((r.spans.len(), r.finished), (2, false));
        let text = br#"{"Records":[{"a":1},{"a""#;
        let r = records(text, false).expect("records");
        assert_eq!((r.key.as_deref(), r.spans.len()), (Some("Records"), 1));
    }

    #[test]
    fn not_documents_of_records() {
        for text in [
            &b"{\"a\":1}\n{\"a\":2}\n"[..],
            b"a,b\n1,2\n",
            b"[1,2,3]",
            b"[[1,2],[3]]",
            b"[]",
            b"",
            b"[{\"a\":1}] trailing",
        ] {
            assert!(
                records(text, true).is_none(),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn inference_reads_only_the_sampled_records() {
        let text = br#"[{"id":1,"when":"2020-01-01"},{"id":2.5,"extra":true},{"id":"x"}]"#;
        let r = records(text, true).expect("records");
        let i = infer(text, &r, 2).expect("inferred");
        assert_eq!(i.rows, 3);
        let names: Vec<&str> = i
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", "when", "extra"]);
        assert_eq!(
            i.schema.field(0).data_type(),
            &arrow_schema::DataType::Float64
        );
    }
}
