//! CSV: dialect sniffing (delimiter, header, BOM, record boundaries) with the `csv` crate and
//! type inference with arrow-csv's `Format::infer_schema`, extended for time zones.

use std::io::Cursor;
use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use lakeform_api::crawler::HeaderMode;
use regex::Regex;

use crate::crawl::dates;
use crate::crawl::error::ObjectFailure;
use crate::crawl::model::CsvDialect;
use crate::lake::schema::{UTC, normalize};

/// Delimiters tried when none is configured, in order of preference on ties.
pub const DELIMITERS: [u8; 4] = [b',', b'\t', b'|', b';'];

/// Records looked at for sniffing.
const SNIFF_RECORDS: usize = 200;

/// Values that mean "no value" in a column that is not text: empty, `NA`, `N/A`, `NULL`,
/// `null`, `\N` (MySQL and PostgreSQL dumps), `-`, `NaN` and `nan`. Type inference skips them,
/// so a numeric column with `NA` stays numeric; ingestion turns them into nulls in such
/// columns only (a text column keeps the string `NA`).
pub const NULL_TOKENS: [&str; 9] = ["", "NA", "N/A", "NULL", "null", "\\N", "-", "NaN", "nan"];

/// [`NULL_TOKENS`] as one anchored regex (what arrow-csv's inference takes), compiled once.
static NULL_TOKEN_REGEX: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let alternatives: Vec<String> = NULL_TOKENS.iter().map(|t| regex::escape(t)).collect();
    Regex::new(&format!("^(?:{})$", alternatives.join("|"))).ok()
});

/// Whether `v` is one of the [`NULL_TOKENS`].
pub fn is_null_token(v: &str) -> bool {
    NULL_TOKENS.contains(&v)
}

/// What the crawler's classifiers say about CSV.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    pub delimiter: Option<u8>,
    pub quote: u8,
    pub header: HeaderMode,
    pub columns: Vec<String>,
    /// Rows used for type inference.
    pub sample_rows: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: None,
            quote: b'"',
            header: HeaderMode::Detect,
            columns: Vec::new(),
            sample_rows: 1000,
        }
    }
}

/// The text without a UTF-8 byte order mark.
pub fn strip_bom(text: &[u8]) -> &[u8] {
    text.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(text)
}

/// Parsed records of a sample, and where the last complete one ends.
fn records(text: &[u8], delimiter: u8, quote: u8, limit: usize) -> (Vec<csv::StringRecord>, usize) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .quote(quote)
        .from_reader(text);
    let mut out = Vec::new();
    let mut end = 0usize;
    let mut record = csv::StringRecord::new();
    while out.len() < limit {
        match reader.read_record(&mut record) {
            Ok(true) => {
                end = reader.position().byte() as usize;
                out.push(record.clone());
            }
            Ok(false) | Err(_) => break,
        }
    }
    (out, end)
}

/// Score of a delimiter: (share of records with the most common field count, that count).
fn delimiter_score(recs: &[csv::StringRecord]) -> (f64, usize) {
    let mut counts = std::collections::BTreeMap::<usize, usize>::new();
    for r in recs {
        *counts.entry(r.len()).or_default() += 1;
    }
    let Some((&fields, &n)) = counts.iter().max_by_key(|(f, n)| (**n, **f)) else {
        return (0.0, 0);
    };
    (n as f64 / recs.len() as f64, fields)
}

/// A value's kind, for header detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Empty,
    Bool,
    Int,
    Float,
    Date,
    Timestamp,
    Text,
}

static INT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[-+]?\d+$").ok());
static FLOAT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-+]?(\d*\.\d+|\d+\.\d*)([eE][-+]?\d+)?$").ok());
static DATE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^\d{4}-\d\d-\d\d$").ok());
static TS: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?").ok());
static ZONED: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(Z|[+-]\d\d:?\d\d)$").ok());
static NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_ .\-]*$").ok());

fn is(re: &LazyLock<Option<Regex>>, v: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(v))
}

fn kind(v: &str) -> Kind {
    let v = v.trim();
    if v.is_empty() {
        Kind::Empty
    } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
        Kind::Bool
    } else if is(&INT, v) {
        Kind::Int
    } else if is(&FLOAT, v) {
        Kind::Float
    } else if is(&DATE, v) {
        Kind::Date
    } else if is(&TS, v) {
        Kind::Timestamp
    } else {
        Kind::Text
    }
}

/// Whether the first record looks like a header over the rest.
fn detect_header(recs: &[csv::StringRecord]) -> bool {
    let Some(first) = recs.first() else {
        return false;
    };
    let names: Vec<&str> = first.iter().map(str::trim).collect();
    let distinct = names.iter().collect::<std::collections::HashSet<_>>().len() == names.len();
    if !distinct || names.iter().any(|n| n.is_empty()) {
        return false;
    }
    if names.iter().any(|n| kind(n) != Kind::Text) {
        return false;
    }
    let rest = &recs[1..];
    if rest.is_empty() {
        return names.iter().all(|n| is(&NAME, n));
    }
    // A typed column whose first value is text: header.
    for col in 0..names.len() {
        let kinds: Vec<Kind> = rest
            .iter()
            .filter_map(|r| r.get(col))
            .map(kind)
            .filter(|k| *k != Kind::Empty)
            .collect();
        if !kinds.is_empty() && kinds.iter().all(|k| *k != Kind::Text) {
            return true;
        }
    }
    // All-text columns: a header of name-like values that never repeat below.
    names.iter().all(|n| is(&NAME, n))
        && (0..names.len()).all(|col| {
            rest.iter()
                .all(|r| r.get(col).map(str::trim) != Some(names[col]))
        })
}

/// Unique, non-empty column names.
fn column_names(raw: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, name) in raw.into_iter().enumerate() {
        let mut name = name.trim().to_string();
        if name.is_empty() {
            name = format!("col_{i}");
        }
        let base = name.clone();
        let mut n = 1;
        while out.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        out.push(name);
    }
    out
}

/// Result of sniffing a CSV sample.
#[derive(Clone, Debug)]
pub struct CsvInference {
    pub dialect: CsvDialect,
    pub schema: Schema,
    /// Data rows used.
    pub rows: u64,
    /// How sure we are this is CSV (0..=1).
    pub certainty: f64,
    /// Text columns whose sampled values were mostly numbers or dates: why each stayed text.
    pub text_columns: Vec<String>,
}

/// Sniffs the dialect of `text` (a sample; `complete` when it is the whole object) and infers
/// the column types.
pub fn infer(
    text: &[u8],
    complete: bool,
    opts: &CsvOptions,
) -> Result<CsvInference, ObjectFailure> {
    let text = strip_bom(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(ObjectFailure::Csv("empty object".into()));
    }
    if text.contains(&0) {
        return Err(ObjectFailure::Csv("binary content".into()));
    }
    let Sniffed {
        share,
        fields,
        delimiter,
        records: recs,
    } = sniff_delimiter(text, complete, opts)?;
    let header = match opts.header {
        HeaderMode::Present => true,
        HeaderMode::Absent => false,
        HeaderMode::Detect => detect_header(&recs),
    };
    let names = if header {
        column_names(
            recs.first()
                .map(|r| r.iter().map(String::from).collect())
                .unwrap_or_default(),
        )
    } else if !opts.columns.is_empty() {
        column_names(opts.columns.clone())
    } else {
        (0..fields).map(|i| format!("col_{i}")).collect()
    };

    let usable = complete_records(text, complete, delimiter, header, opts);
    let mut format = arrow_csv::reader::Format::default()
        .with_header(header)
        .with_delimiter(delimiter)
        .with_quote(opts.quote)
        .with_truncated_rows(true);
    if let Some(nulls) = NULL_TOKEN_REGEX.as_ref() {
        format = format.with_null_regex(nulls.clone());
    }
    let (inferred, rows) = format
        .infer_schema(Cursor::new(usable), Some(opts.sample_rows))
        .map_err(|e| ObjectFailure::Csv(e.to_string()))?;
    let data_rows: Vec<&csv::StringRecord> = recs.iter().skip(usize::from(header)).collect();
    let schema = dated(
        &normalize(&Schema::new(zoned_fields(&inferred, &names, &data_rows))),
        &data_rows,
    );
    let certainty = if fields_count(&schema) >= 2 {
        0.6 + 0.3 * share
    } else {
        0.3
    };
    let text_columns = fallbacks(&schema, &data_rows);
    Ok(CsvInference {
        text_columns,
        dialect: CsvDialect {
            delimiter,
            quote: opts.quote,
            header,
            columns: names,
        },
        schema,
        rows: rows as u64,
        certainty,
    })
}

/// The delimiter that splits the sample's records most consistently.
struct Sniffed {
    /// Share of records with the most common field count.
    share: f64,
    /// That field count.
    fields: usize,
    delimiter: u8,
    /// The sample's (complete) records split with it.
    records: Vec<csv::StringRecord>,
}

/// Tries the given delimiter, or each usual one, and keeps the most consistent; fails when
/// none splits the lines, or not consistently enough.
fn sniff_delimiter(
    text: &[u8],
    complete: bool,
    opts: &CsvOptions,
) -> Result<Sniffed, ObjectFailure> {
    let candidates: Vec<u8> = match opts.delimiter {
        Some(d) => vec![d],
        None => DELIMITERS.to_vec(),
    };
    let mut best: Option<Sniffed> = None;
    for d in candidates {
        let (recs, _) = records(text, d, opts.quote, SNIFF_RECORDS);
        // a truncated sample may end in a partial record: leave it out
        let recs_used = if complete || recs.len() < 2 {
            recs
        } else {
            recs[..recs.len() - 1].to_vec()
        };
        let (share, fields) = delimiter_score(&recs_used);
        if fields < 2 && opts.delimiter.is_none() {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|b| (share, fields) > (b.share, b.fields))
        {
            best = Some(Sniffed {
                share,
                fields,
                delimiter: d,
                records: recs_used,
            });
        }
    }
    let Some(best) = best else {
        return Err(ObjectFailure::Csv(
            "no delimiter among , tab | ; splits the lines".into(),
        ));
    };
    if best.share < 0.8 {
        return Err(ObjectFailure::Csv(format!(
            "inconsistent field counts with delimiter {:?}",
            best.delimiter as char
        )));
    }
    Ok(best)
}

/// The complete records of the sample only (up to `sample_rows` data rows), or all of a
/// complete object.
fn complete_records<'t>(
    text: &'t [u8],
    complete: bool,
    delimiter: u8,
    header: bool,
    opts: &CsvOptions,
) -> &'t [u8] {
    if complete {
        return text;
    }
    let (all, _) = records(text, delimiter, opts.quote, usize::MAX);
    let keep = all
        .len()
        .saturating_sub(1)
        .min(opts.sample_rows + usize::from(header));
    let (_, end) = records(text, delimiter, opts.quote, keep);
    &text[..end]
}

/// The inferred fields under their column names, with time zones: arrow-csv infers timestamps
/// without zone; a column with zoned values is timestamptz.
fn zoned_fields(
    inferred: &Schema,
    names: &[String],
    data_rows: &[&csv::StringRecord],
) -> Vec<Field> {
    inferred
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = names.get(i).cloned().unwrap_or_else(|| format!("col_{i}"));
            let dt = match f.data_type() {
                DataType::Timestamp(_, _) => {
                    let zoned = data_rows
                        .iter()
                        .filter_map(|r| r.get(i))
                        .filter(|v| !v.trim().is_empty())
                        .any(|v| is(&ZONED, v.trim()));
                    DataType::Timestamp(TimeUnit::Microsecond, zoned.then(|| Arc::from(UTC)))
                }
                other => other.clone(),
            };
            Field::new(name, dt, true)
        })
        .collect()
}

/// Text columns whose sampled values all have one date or timestamp shape
/// ([`crate::crawl::dates`]) typed so, their shape in the field's metadata.
fn dated(schema: &Schema, data_rows: &[&csv::StringRecord]) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let shaped = (f.data_type() == &DataType::Utf8)
                .then(|| dates::infer(data_rows.iter().filter_map(|r| r.get(i))))
                .flatten();
            match shaped {
                Some((dt, format)) => dates::with_format(f, dt, format),
                None => f.as_ref().clone(),
            }
        })
        .collect();
    Schema::new(fields)
}

/// Text columns most of whose sampled values are numbers, booleans or dates: the column fell
/// back to text because of the others (`price: 3 of 200 sampled values are not numbers, e.g.
/// "call"`).
fn fallbacks(schema: &Schema, data_rows: &[&csv::StringRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if f.data_type() != &DataType::Utf8 {
            continue;
        }
        let values: Vec<&str> = data_rows
            .iter()
            .filter_map(|r| r.get(i))
            .map(str::trim)
            .filter(|v| !is_null_token(v))
            .collect();
        let typed = |v: &str| !matches!(kind(v), Kind::Text | Kind::Empty);
        let n_typed = values.iter().filter(|v| typed(v)).count();
        let odd = values.iter().find(|v| !typed(v));
        if let Some(odd) = odd.filter(|_| n_typed * 2 >= values.len()) {
            out.push(format!(
                "{}: {} of {} sampled values are not numbers, booleans or dates, e.g. {odd:?}",
                f.name(),
                values.len() - n_typed,
                values.len()
            ));
        }
    }
    out
}

fn fields_count(s: &Schema) -> usize {
    s.fields().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer_ok(text: &str) -> CsvInference {
        infer(text.as_bytes(), true, &CsvOptions::default()).expect("csv")
    }

    fn types(i: &CsvInference) -> Vec<(String, DataType)> {
        i.schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    }

    #[test]
    fn comma_with_header_and_types() {
        let i = infer_ok(
            "id,name,amount,day,active\n1,alice,1.5,2024-01-02,true\n2,bob,,2024-01-03,false\n",
        );
        assert!(i.dialect.header);
        assert_eq!(i.dialect.delimiter, b',');
        assert_eq!(
            types(&i),
            vec![
                ("id".into(), DataType::Int64),
                ("name".into(), DataType::Utf8),
                ("amount".into(), DataType::Float64),
                ("day".into(), DataType::Date32),
                ("active".into(), DataType::Boolean),
            ]
        );
        assert_eq!(i.rows, 2);
    }

    #[test]
    fn dialects_tab_pipe_semicolon() {
        for d in ['\t', '|', ';'] {
            let text = format!("a{d}b{d}c\n1{d}x{d}2.5\n2{d}y{d}3\n");
            let i = infer_ok(&text);
            assert_eq!(i.dialect.delimiter, d as u8, "{d:?}");
            assert_eq!(i.dialect.columns, vec!["a", "b", "c"]);
            assert_eq!(i.schema.field(2).data_type(), &DataType::Float64);
        }
    }

    #[test]
    fn headerless_gets_col_names() {
        let i = infer_ok("1,alice,3.5\n2,bob,4\n3,carol,5\n");
        assert!(!i.dialect.header);
        assert_eq!(i.dialect.columns, vec!["col_0", "col_1", "col_2"]);
        assert_eq!(i.schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(i.rows, 3);
    }

    #[test]
    fn bom_and_quoted_newlines() {
        let i = infer_ok("\u{feff}id,comment\n1,\"line one\nline two\"\n2,\"a, b\"\n");
        assert_eq!(i.dialect.columns, vec!["id", "comment"]);
        assert_eq!(i.rows, 2);
        assert_eq!(i.schema.field(0).data_type(), &DataType::Int64);
    }

    #[test]
    fn zoned_and_naive_timestamps() {
        let i = infer_ok(
            "id,at,local\n1,2024-01-02T10:00:00Z,2024-01-02 10:00:00\n2,2024-01-02T11:00:00+02:00,2024-01-03 10:00:00.123\n",
        );
        assert_eq!(
            i.schema.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
        );
        assert_eq!(
            i.schema.field(2).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
    }

    #[test]
    fn truncated_sample_drops_partial_record() {
        let mut text = String::from("id,v\n");
        for n in 0..100 {
            text.push_str(&format!("{n},{n}.5\n"));
        }
        let cut = &text.as_bytes()[..text.len() - 3];
        let i = infer(cut, false, &CsvOptions::default()).expect("csv");
        assert_eq!(i.schema.field(1).data_type(), &DataType::Float64);
        assert_eq!(i.rows, 99);
    }

    #[test]
    fn empty_and_non_csv_are_rejected() {
        assert!(infer(b"", true, &CsvOptions::default()).is_err());
        assert!(
            infer(
                b"just one line of prose\nand another\n",
                true,
                &CsvOptions::default()
            )
            .is_err()
        );
    }

    #[test]
    fn all_null_column_is_string() {
        let i = infer_ok("a,b\n1,\n2,\n");
        assert_eq!(i.schema.field(1).data_type(), &DataType::Utf8);
    }
}
