//! Classification with certainty: custom classifiers first (in order), then the built-ins;
//! the highest certainty wins, ties go to the earlier classifier; nothing above
//! [`MIN_CERTAINTY`] means unclassified. Pure: works on the bytes it is given.

use std::sync::Arc;

use arrow_schema::Schema;
use lakeform_api::crawler::CrawlerSpec;

use crate::crawl::error::{CrawlError, ObjectFailure};
use crate::crawl::infer::csv::CsvOptions;
use crate::crawl::infer::log::Grok;
use crate::crawl::infer::{csv, document, json, log};
use crate::crawl::model::{Decision, Dialect, Format, Inferred, LogDialect};

/// Below this no classifier claims an object.
pub const MIN_CERTAINTY: f64 = 0.5;

#[derive(Clone, Debug)]
enum Custom {
    Csv(CsvOptions),
    Grok(String, Grok),
    JsonPath(Vec<String>),
}

/// The classifiers of a crawler.
#[derive(Clone, Debug)]
pub struct Classifiers {
    custom: Vec<Custom>,
    /// Built-ins allowed (`builtin` entries in the spec); `None`: all.
    builtins: Option<Vec<Format>>,
    builtin_logs: Vec<(String, Grok)>,
    pub sample_rows: usize,
}

impl Classifiers {
    pub fn from_spec(spec: &CrawlerSpec) -> Result<Classifiers, CrawlError> {
        let sample_rows = spec.sample_size.max(1) as usize;
        let mut custom = Vec::new();
        let mut builtins: Option<Vec<Format>> = None;
        for c in &spec.classifiers {
            if let Some(b) = c.builtin {
                builtins.get_or_insert_with(Vec::new).push(b.into());
            } else if let Some(csv) = &c.csv {
                let one = |s: &Option<String>, what: &str| -> Result<Option<u8>, CrawlError> {
                    match s.as_deref().map(str::as_bytes) {
                        None => Ok(None),
                        Some([b]) => Ok(Some(*b)),
                        Some(_) => Err(CrawlError::Config(format!(
                            "classifier {}: {what} must be one ASCII character",
                            c.name
                        ))),
                    }
                };
                custom.push(Custom::Csv(CsvOptions {
                    delimiter: one(&csv.delimiter, "delimiter")?,
                    quote: one(&Some(csv.quote.clone()), "quote")?.unwrap_or(b'"'),
                    header: csv.header,
                    columns: csv.columns.clone(),
                    sample_rows,
                }));
            } else if let Some(g) = &c.grok {
                let grok = log::compile(&g.pattern, g.custom_patterns.as_deref())
                    .map_err(|e| CrawlError::Config(format!("classifier {}: {e}", c.name)))?;
                custom.push(Custom::Grok(g.classification.clone(), grok));
            } else if let Some(j) = &c.json {
                let path = json::parse_path(&j.json_path)
                    .map_err(|e| CrawlError::Config(format!("classifier {}: {e}", c.name)))?;
                custom.push(Custom::JsonPath(path));
            }
        }
        let mut builtin_logs = Vec::new();
        for (name, pattern) in [
            ("apache-combined", "%{COMBINEDAPACHELOG}"),
            ("apache-common", "%{COMMONAPACHELOG}"),
        ] {
            let grok = log::compile(pattern, None)
                .map_err(|e| CrawlError::Config(format!("built-in grok {name}: {e}")))?;
            builtin_logs.push((name.to_string(), grok));
        }
        Ok(Classifiers {
            custom,
            builtins,
            builtin_logs,
            sample_rows,
        })
    }

    pub fn allows(&self, f: Format) -> bool {
        self.builtins.as_ref().is_none_or(|b| b.contains(&f))
    }

    /// Whether a custom JSON-path classifier needs whole documents.
    pub fn needs_whole_documents(&self) -> bool {
        self.custom.iter().any(|c| matches!(c, Custom::JsonPath(_)))
    }
}

/// Classifies and infers a text sample (already decompressed). `complete`: the sample is the
/// whole object. `Ok(None)`: no classifier is sure enough. Custom classifiers go first; a
/// certain one wins outright, otherwise the built-in ones compete too.
pub fn classify_text(
    text: &[u8],
    complete: bool,
    cls: &Classifiers,
) -> Result<Option<Inferred>, ObjectFailure> {
    let mut contest = Contest {
        text,
        complete,
        body: complete.then(|| bytes::Bytes::copy_from_slice(text)),
        best: None,
        last_error: None,
    };
    contest.custom(cls);
    if contest.best.as_ref().is_some_and(|(c, _)| *c >= 1.0) {
        return Ok(contest.best.map(|(_, i)| i));
    }
    contest.builtin(cls);
    contest.verdict()
}

/// What a classifier made of a sample.
struct Reading {
    format: Format,
    schema: Schema,
    dialect: Dialect,
    rows: u64,
    text_columns: Vec<String>,
}

impl Reading {
    fn csv(i: csv::CsvInference) -> Reading {
        Reading {
            format: Format::Csv,
            schema: i.schema,
            dialect: Dialect::Csv(i.dialect),
            rows: i.rows,
            text_columns: i.text_columns,
        }
    }

    fn json(schema: Schema, dialect: Dialect, rows: u64) -> Reading {
        Reading {
            format: Format::Json,
            schema,
            dialect,
            rows,
            text_columns: Vec::new(),
        }
    }
}

/// Classifiers competing for one text sample: the most certain (at least
/// [`MIN_CERTAINTY`]) wins; the last parse error may explain why none did.
struct Contest<'t> {
    text: &'t [u8],
    complete: bool,
    /// The whole object, kept for ingestion when the sample is complete.
    body: Option<bytes::Bytes>,
    best: Option<(f64, Inferred)>,
    last_error: Option<ObjectFailure>,
}

impl Contest<'_> {
    /// `inferred` (a reading by classifier `name`) if it is the most certain so far.
    fn consider(&mut self, name: String, certainty: f64, reading: Reading) {
        let Reading {
            format,
            schema,
            dialect,
            rows,
            text_columns,
        } = reading;
        let inferred = Inferred {
            format,
            schema: Arc::new(schema),
            dialect,
            parquet: None,
            body: self.body.clone(),
            rows: Some(rows),
            decision: Decision {
                classifier: name,
                certainty,
                text_columns,
            },
        };
        if certainty >= MIN_CERTAINTY && self.best.as_ref().is_none_or(|(c, _)| certainty > *c) {
            self.best = Some((certainty, inferred));
        }
    }

    /// The spec's classifiers, in order.
    fn custom(&mut self, cls: &Classifiers) {
        let (text, complete) = (self.text, self.complete);
        for c in &cls.custom {
            match c {
                Custom::Csv(opts) => match csv::infer(text, complete, opts) {
                    Ok(i) => {
                        let certainty = if i.certainty >= 0.8 { 1.0 } else { i.certainty };
                        self.consider("custom csv".into(), certainty, Reading::csv(i))
                    }
                    Err(e) => self.last_error = Some(e),
                },
                Custom::Grok(name, grok) => self.log(name, grok),
                Custom::JsonPath(path) if complete => {
                    match json::infer_path(text, path, cls.sample_rows) {
                        Ok(i) => {
                            let dialect = Dialect::JsonPath(path.clone());
                            let reading = Reading::json(i.schema, dialect, i.rows);
                            self.consider("custom json-path".into(), 1.0, reading)
                        }
                        Err(e) => self.last_error = Some(e),
                    }
                }
                Custom::JsonPath(_) => {}
            }
        }
    }

    /// A log pattern, scored by how many lines it matches.
    fn log(&mut self, name: &str, grok: &Grok) {
        let certainty = log::certainty(grok, self.text, self.complete);
        let dialect = Dialect::Log(LogDialect {
            classification: name.to_string(),
            regex: grok.regex.clone(),
        });
        let reading = Reading {
            format: Format::Log,
            schema: grok.schema.clone(),
            dialect,
            rows: 0,
            text_columns: Vec::new(),
        };
        self.consider(format!("grok:{name}"), certainty, reading);
    }

    /// The built-in formats the spec allows: JSON documents of records, JSON lines, the
    /// built-in log patterns, and CSV when nothing else matched (so a JSON document can never
    /// become a table of `col_N` fragments).
    fn builtin(&mut self, cls: &Classifiers) {
        let (text, complete) = (self.text, self.complete);
        if cls.allows(Format::Json)
            && let Some(records) = document::records(text, complete)
        {
            match document::infer(text, &records, cls.sample_rows) {
                Ok(i) => {
                    let name = match &records.key {
                        None => "json-document".to_string(),
                        Some(k) => format!("json-document ($.{k}[*])"),
                    };
                    let dialect = Dialect::JsonDocument(records.key);
                    self.consider(name, i.certainty, Reading::json(i.schema, dialect, i.rows))
                }
                Err(e) => self.last_error = Some(e),
            }
        }
        if cls.allows(Format::Json) && json::lines_certainty(text, complete) >= 0.9 {
            match json::infer_lines(text, complete, cls.sample_rows) {
                Ok(i) => {
                    let reading = Reading::json(i.schema, Dialect::None, i.rows);
                    self.consider("json-lines".into(), i.certainty, reading)
                }
                Err(e) => self.last_error = Some(e),
            }
        }
        if cls.allows(Format::Log) {
            for (name, grok) in &cls.builtin_logs {
                self.log(name, grok);
            }
        }
        if cls.allows(Format::Csv) && self.best.is_none() {
            let opts = CsvOptions {
                sample_rows: cls.sample_rows,
                ..CsvOptions::default()
            };
            if let Ok(i) = csv::infer(text, complete, &opts) {
                self.consider("csv".into(), i.certainty, Reading::csv(i));
            }
        }
    }

    /// The winner, or none; a custom classifier that matched the shape but failed to parse
    /// explains why.
    fn verdict(self) -> Result<Option<Inferred>, ObjectFailure> {
        match self.best {
            Some((_, i)) => Ok(Some(i)),
            None => match self.last_error {
                Some(ObjectFailure::Json(m)) if self.text.trim_ascii_start().starts_with(b"{") => {
                    Err(ObjectFailure::Json(m))
                }
                _ => Ok(None),
            },
        }
    }
}

/// What the first bytes of an object say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    Parquet,
    Avro,
    Orc,
    Text,
}

pub fn magic(head: &[u8]) -> Magic {
    if head.starts_with(b"PAR1") {
        Magic::Parquet
    } else if head.starts_with(crate::crawl::infer::avro::MAGIC) {
        Magic::Avro
    } else if head.starts_with(b"ORC") {
        Magic::Orc
    } else {
        Magic::Text
    }
}

/// The format a key's extension promises (after the compression suffix).
pub fn by_extension(key: &str) -> Option<Format> {
    let base = crate::crawl::compression::strip_suffix(key).to_ascii_lowercase();
    let ext = base.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "parquet" | "parq" | "pqt" => Format::Parquet,
        "avro" => Format::Avro,
        "orc" => Format::Orc,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeform_api::crawler::{Classifier, CsvClassifier, GrokClassifier, HeaderMode};

    fn spec(classifiers: Vec<Classifier>) -> CrawlerSpec {
        serde_yaml::from_str::<CrawlerSpec>(
            "lakeRef: {name: lake}\ndatabase: db\ntargets: [{zone: raw}]\n",
        )
        .map(|mut s| {
            s.classifiers = classifiers;
            s
        })
        .expect("spec")
    }

    #[test]
    fn a_json_document_never_becomes_csv_fragments() {
        let cls = Classifiers::from_spec(&spec(vec![])).expect("classifiers");
        // one line (the CSV sniffer would split it on commas) and one record per line
        for text in [
            &br#"[{"yield":27,"site":"A"},{"yield":48.8,"site":"B"}]"#[..],
            b"[{\"yield\":27,\"site\":\"A\"},\n{\"yield\":48.8,\"site\":\"B\"}\n]\n",
        ] {
            let i = classify_text(text, true, &cls)
                .expect("ok")
                .expect("classified");
            assert_eq!(i.format, Format::Json);
            assert_eq!(i.rows, Some(2));
            let mut names: Vec<&str> = i
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            names.sort_unstable();
            assert_eq!(names, ["site", "yield"]);
        }
    }

    #[test]
    fn builtins_pick_json_csv_log() {
        let cls = Classifiers::from_spec(&spec(vec![])).expect("classifiers");
        let j = classify_text(b"{\"a\":1}\n{\"a\":2}\n", true, &cls)
            .expect("ok")
            .expect("json");
        assert_eq!(j.format, Format::Json);
        let c = classify_text(b"a,b\n1,2\n", true, &cls)
            .expect("ok")
            .expect("csv");
        assert_eq!(c.format, Format::Csv);
        let l = classify_text(
            b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2326\n",
            true,
            &cls,
        )
        .expect("ok")
        .expect("log");
        assert_eq!(l.format, Format::Log);
        assert!(classify_text(b"", true, &cls).expect("ok").is_none());
        assert!(
            classify_text(b"plain prose here\nmore\n", true, &cls)
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn custom_classifiers_come_first_and_builtin_lists_limit() {
        let cls = Classifiers::from_spec(&spec(vec![
            Classifier {
                name: "semi".into(),
                csv: Some(CsvClassifier {
                    delimiter: Some(";".into()),
                    quote: "'".into(),
                    header: HeaderMode::Absent,
                    columns: vec!["x".into(), "y".into()],
                }),
                ..Default::default()
            },
            Classifier {
                name: "lvl".into(),
                grok: Some(GrokClassifier {
                    classification: "app".into(),
                    pattern: "%{WORD:level}: %{GREEDYDATA:msg}".into(),
                    custom_patterns: None,
                }),
                ..Default::default()
            },
        ]))
        .expect("classifiers");
        let c = classify_text(b"1;'a;b'\n2;c\n", true, &cls)
            .expect("ok")
            .expect("csv");
        let Dialect::Csv(d) = &c.dialect else {
            panic!("not csv")
        };
        assert_eq!(d.columns, vec!["x", "y"]);
        assert_eq!(c.rows, Some(2));
        let l = classify_text(b"INFO: up\nWARN: slow\n", true, &cls)
            .expect("ok")
            .expect("log");
        assert_eq!(l.format, Format::Log);

        let only_parquet = Classifiers::from_spec(&spec(vec![Classifier {
            name: "p".into(),
            builtin: Some(lakeform_api::crawler::DataFormat::Parquet),
            ..Default::default()
        }]))
        .expect("classifiers");
        assert!(
            classify_text(b"a,b\n1,2\n", true, &only_parquet)
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn magic_and_extensions() {
        assert_eq!(magic(b"PAR1xxxx"), Magic::Parquet);
        assert_eq!(magic(b"Obj\x01"), Magic::Avro);
        assert_eq!(magic(b"ORC"), Magic::Orc);
        assert_eq!(by_extension("a/b.parquet"), Some(Format::Parquet));
        assert_eq!(by_extension("a/b.avro"), Some(Format::Avro));
        assert_eq!(by_extension("a/b.csv.gz"), None);
    }
}
