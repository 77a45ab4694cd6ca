//! The crawler corpus: every format and layout the crawler knows, generated here with the
//! expected row counts and column sums of each table it should become.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Fields};

/// Expected content of one table.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    pub rows: u64,
    pub sums: BTreeMap<String, f64>,
}

impl Expected {
    fn add(&mut self, col: &str, v: f64) {
        *self.sums.entry(col.to_string()).or_default() += v;
    }
}

pub struct Corpus {
    /// (key below the corpus prefix, body)
    pub objects: Vec<(String, Vec<u8>)>,
    pub tables: BTreeMap<String, Expected>,
    /// keys (below the prefix) that must be reported as errors
    pub bad: Vec<String>,
    /// objects no classifier should claim
    pub unclassified: usize,
}

pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// `orders`: Hive partitions `year=…`, CSV with a header, the second file gzip-compressed.
fn orders(c: &mut Corpus) -> Result<()> {
    let mut e = Expected::default();
    for (year, n, start, gz) in [(2024, 50, 0, false), (2025, 30, 50, true)] {
        let mut text = String::from("id,customer,amount,day\n");
        for i in start..start + n {
            let amount = (i % 17) as f64 * 1.25;
            text.push_str(&format!(
                "{i},cust-{},{amount},{year}-01-{:02}\n",
                i % 7,
                1 + i % 28
            ));
            e.add("id", i as f64);
            e.add("amount", amount);
            e.add("year", year as f64);
        }
        e.rows += n as u64;
        let (key, body) = if gz {
            (
                format!("orders/year={year}/part-1.csv.gz"),
                gzip(text.as_bytes())?,
            )
        } else {
            (format!("orders/year={year}/part-0.csv"), text.into_bytes())
        };
        c.objects.push((key, body));
    }
    c.tables.insert("orders".into(), e);
    Ok(())
}

/// The file added later: one more column (`discount`), in a new partition.
pub fn orders_with_discount() -> (String, Vec<u8>, u64, f64) {
    let mut text = String::from("id,customer,amount,day,discount\n");
    let mut sum = 0.0;
    for i in 100..110 {
        let d = (i % 3) as f64 * 0.5;
        sum += d;
        text.push_str(&format!("{i},cust-x,2.5,2026-02-01,{d}\n"));
    }
    (
        "orders/year=2026/part-2.csv".into(),
        text.into_bytes(),
        10,
        sum,
    )
}

/// `events`: JSON lines under unnamed folders `2024/01`, nested objects, int then double.
fn events(c: &mut Corpus) {
    let mut e = Expected::default();
    for month in [1, 2] {
        let mut text = String::new();
        for i in 0..20 {
            let id = month * 100 + i;
            let line = if month == 1 {
                format!(
                    r#"{{"id":{id},"user":{{"name":"u{i}","age":{}}},"score":{i}}}"#,
                    20 + i
                )
            } else {
                format!(r#"{{"id":{id},"user":{{"name":"u{i}"}},"score":{i}.5,"tags":["a","b"]}}"#)
            };
            text.push_str(&line);
            text.push('\n');
            e.add("id", id as f64);
            e.add("score", if month == 1 { i as f64 } else { i as f64 + 0.5 });
            e.add("partition_0", 2024.0);
            e.add("partition_1", month as f64);
        }
        e.rows += 20;
        c.objects
            .push((format!("events/2024/{month:02}/e.jsonl"), text.into_bytes()));
    }
    c.tables.insert("events".into(), e);
}

fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None)?;
    w.write(batch)?;
    w.close()?;
    Ok(out)
}

/// `metrics`: Parquet registered in place, Hive partitions `region=…`, nested struct and list
/// columns; plus a truncated file that must be reported, not fail the run.
fn metrics(c: &mut Corpus) -> Result<()> {
    let mut e = Expected::default();
    for (region, n, start) in [("eu", 40i64, 0i64), ("us", 60, 1000)] {
        let ids: Vec<i64> = (start..start + n).collect();
        let values: Vec<f64> = ids.iter().map(|i| (*i % 13) as f64 / 4.0).collect();
        let counts: Vec<i32> = ids.iter().map(|i| (*i % 5) as i32).collect();
        let hosts: Vec<String> = ids.iter().map(|i| format!("h{}", i % 3)).collect();
        let cpus: Vec<f64> = ids.iter().map(|i| (*i % 10) as f64 / 10.0).collect();
        let mut tags = ListBuilder::new(StringBuilder::new());
        for i in &ids {
            tags.values().append_value(format!("t{}", i % 4));
            tags.append(true);
        }
        let info = StructArray::new(
            Fields::from(vec![
                Field::new("host", DataType::Utf8, true),
                Field::new("cpu", DataType::Float64, true),
            ]),
            vec![
                Arc::new(StringArray::from(hosts)) as ArrayRef,
                Arc::new(Float64Array::from(cpus)) as ArrayRef,
            ],
            None,
        );
        let at: Vec<i64> = ids
            .iter()
            .map(|i| 1_700_000_000_000_000 + i * 1_000_000)
            .collect();
        let batch = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
            (
                "value",
                Arc::new(Float64Array::from(values.clone())) as ArrayRef,
            ),
            (
                "count",
                Arc::new(Int32Array::from(counts.clone())) as ArrayRef,
            ),
            ("info", Arc::new(info) as ArrayRef),
            ("tags", Arc::new(tags.finish()) as ArrayRef),
            (
                "at",
                Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")) as ArrayRef,
            ),
        ])?;
        e.rows += n as u64;
        for i in 0..n as usize {
            e.add("id", ids[i] as f64);
            e.add("value", values[i]);
            e.add("count", counts[i] as f64);
        }
        let bytes = parquet_bytes(&batch).context("writing parquet")?;
        if region == "eu" {
            c.objects.push((
                "metrics/region=eu/bad.parquet".into(),
                bytes[..bytes.len() / 2].to_vec(),
            ));
            c.bad.push("metrics/region=eu/bad.parquet".into());
        }
        c.objects
            .push((format!("metrics/region={region}/m.parquet"), bytes));
    }
    c.tables.insert("metrics".into(), e);
    Ok(())
}

/// `people`: headerless, pipe-delimited, with a BOM and a quoted newline.
fn people(c: &mut Corpus) {
    let mut e = Expected::default();
    let mut text = String::from("\u{feff}");
    for i in 1..=10 {
        let name = if i == 3 {
            "\"Ann\nMarie\"".to_string()
        } else {
            format!("person {i}")
        };
        text.push_str(&format!("{i}|{name}|{}\n", 20 + i));
        e.add("col_0", i as f64);
        e.add("col_2", (20 + i) as f64);
    }
    e.rows = 10;
    c.objects
        .push(("people/people.psv".into(), text.into_bytes()));
    c.tables.insert("people".into(), e);
}

/// `avro`: an Avro container file (ingested as Parquet).
fn avro(c: &mut Corpus) -> Result<()> {
    use apache_avro::types::{Record, Value};
    let raw = r#"{"type":"record","name":"reading","fields":[
        {"name":"id","type":"long"},
        {"name":"kind","type":["null","string"],"default":null},
        {"name":"score","type":"double"},
        {"name":"geo","type":{"type":"record","name":"geo","fields":[{"name":"lat","type":"double"}]}}
    ]}"#;
    let schema = apache_avro::Schema::parse_str(raw)?;
    let mut w = apache_avro::Writer::new(&schema, Vec::new());
    let mut e = Expected::default();
    for i in 0..25i64 {
        let mut r = Record::new(&schema).context("avro record")?;
        r.put("id", i);
        r.put(
            "kind",
            Value::Union(1, Box::new(Value::String(format!("k{}", i % 3)))),
        );
        r.put("score", i as f64 * 0.25);
        r.put(
            "geo",
            Value::Record(vec![("lat".into(), Value::Double(45.0))]),
        );
        w.append(r)?;
        e.add("id", i as f64);
        e.add("score", i as f64 * 0.25);
    }
    e.rows = 25;
    c.objects
        .push(("avro/readings.avro".into(), w.into_inner()?));
    c.tables.insert("avro".into(), e);
    Ok(())
}

/// `weblogs`: an Apache combined access log.
fn weblogs(c: &mut Corpus) {
    let mut e = Expected::default();
    let mut text = String::new();
    for i in 0..12 {
        let status = if i % 4 == 0 { 404 } else { 200 };
        let bytes = 100 * i;
        text.push_str(&format!(
            "10.0.0.{i} - - [10/Oct/2024:13:55:{:02} +0000] \"GET /page/{i} HTTP/1.1\" {status} {bytes} \"-\" \"curl/8.{i}\"\n",
            i
        ));
        e.add("response", status as f64);
        e.add("bytes", bytes as f64);
    }
    e.rows = 12;
    c.objects
        .push(("weblogs/access.log".into(), text.into_bytes()));
    c.tables.insert("weblogs".into(), e);
}

/// `mixed`: a CSV and a JSON file in one folder become two tables; `misc`: objects nobody
/// classifies (empty, binary).
fn mixed(c: &mut Corpus) {
    let mut csv = Expected::default();
    let mut text = String::from("id,name\n");
    for i in 0..5 {
        text.push_str(&format!("{i},n{i}\n"));
        csv.add("id", i as f64);
    }
    csv.rows = 5;
    c.objects.push(("mixed/a.csv".into(), text.into_bytes()));
    let mut json = Expected::default();
    let mut text = String::new();
    for i in 0..4 {
        text.push_str(&format!("{{\"x\":{i}.5,\"label\":\"l{i}\"}}\n"));
        json.add("x", i as f64 + 0.5);
    }
    json.rows = 4;
    c.objects.push(("mixed/b.jsonl".into(), text.into_bytes()));
    c.tables.insert("mixed_csv".into(), csv);
    c.tables.insert("mixed_json".into(), json);

    c.objects.push(("misc/empty.csv".into(), Vec::new()));
    c.objects.push((
        "misc/noise.bin".into(),
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect(),
    ));
    c.unclassified = 2;
    // never data: a marker file and an excluded scratch folder
    c.objects.push(("orders/_SUCCESS".into(), Vec::new()));
    c.objects
        .push(("scratch/tmp.csv".into(), b"a,b\n1,2\n".to_vec()));
}

pub fn generate() -> Result<Corpus> {
    let mut c = Corpus {
        objects: Vec::new(),
        tables: BTreeMap::new(),
        bad: Vec::new(),
        unclassified: 0,
    };
    orders(&mut c)?;
    events(&mut c);
    metrics(&mut c)?;
    people(&mut c);
    avro(&mut c)?;
    weblogs(&mut c);
    mixed(&mut c);
    Ok(c)
}

/// A later Parquet file for `metrics`: `count` written as int64 (the table has int) and a new
/// column `note`. Returns (key, body, rows, sum of id, sum of count).
pub fn metrics_widened() -> Result<(String, Vec<u8>, u64, f64, f64)> {
    let ids: Vec<i64> = (5000..5008).collect();
    let counts: Vec<i64> = ids.iter().map(|i| 3_000_000_000 + i).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
        (
            "value",
            Arc::new(Float64Array::from(vec![0.0; ids.len()])) as ArrayRef,
        ),
        (
            "count",
            Arc::new(Int64Array::from(counts.clone())) as ArrayRef,
        ),
        (
            "note",
            Arc::new(StringArray::from(vec!["new"; ids.len()])) as ArrayRef,
        ),
    ])?;
    Ok((
        "metrics/region=ap/m.parquet".into(),
        parquet_bytes(&batch)?,
        ids.len() as u64,
        ids.iter().sum::<i64>() as f64,
        counts.iter().sum::<i64>() as f64,
    ))
}
