//! Avro object container files: the writer schema from the header only.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema as Avro;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};

use crate::crawl::error::ObjectFailure;
use crate::lake::schema::{UTC, normalize};

/// The magic bytes every Avro container file starts with.
pub const MAGIC: &[u8] = b"Obj\x01";

/// Reads the writer schema from the head of a container file. `Ok(None)` means the head is too
/// short to hold the whole header (read more and retry).
pub fn infer_head(head: &[u8]) -> Result<Option<Schema>, ObjectFailure> {
    if !head.starts_with(MAGIC) {
        return Err(ObjectFailure::Avro("missing Obj\\x01 magic".into()));
    }
    match apache_avro::Reader::new(head) {
        Ok(reader) => to_arrow(reader.writer_schema()).map(Some),
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("failed to fill whole buffer") || msg.to_lowercase().contains("eof") {
                Ok(None)
            } else {
                Err(ObjectFailure::Avro(msg))
            }
        }
    }
}

/// The arrow schema of a record writer schema.
pub fn to_arrow(schema: &Avro) -> Result<Schema, ObjectFailure> {
    let mut names = HashMap::new();
    collect_names(schema, &mut names);
    match schema {
        Avro::Record(r) => {
            let fields: Vec<Field> = r
                .fields
                .iter()
                .map(|f| Ok(Field::new(&f.name, to_type(&f.schema, &names)?, true)))
                .collect::<Result<_, ObjectFailure>>()?;
            Ok(normalize(&Schema::new(fields)))
        }
        other => Err(ObjectFailure::Avro(format!(
            "top-level schema is not a record: {other:?}"
        ))),
    }
}

fn collect_names<'a>(schema: &'a Avro, names: &mut HashMap<String, &'a Avro>) {
    match schema {
        Avro::Record(r) => {
            names.insert(r.name.fullname(None), schema);
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Avro::Enum(e) => {
            names.insert(e.name.fullname(None), schema);
        }
        Avro::Fixed(f) => {
            names.insert(f.name.fullname(None), schema);
        }
        Avro::Array(a) => collect_names(&a.items, names),
        Avro::Map(m) => collect_names(&m.types, names),
        Avro::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

fn to_type(schema: &Avro, names: &HashMap<String, &Avro>) -> Result<DataType, ObjectFailure> {
    Ok(match schema {
        Avro::Null => DataType::Null,
        Avro::Boolean => DataType::Boolean,
        Avro::Int => DataType::Int32,
        Avro::Long => DataType::Int64,
        Avro::Float => DataType::Float32,
        Avro::Double => DataType::Float64,
        Avro::Bytes | Avro::Duration => DataType::Binary,
        Avro::String | Avro::Uuid | Avro::Enum(_) | Avro::BigDecimal => DataType::Utf8,
        Avro::Fixed(f) => DataType::FixedSizeBinary(f.size as i32),
        Avro::Decimal(d) => DataType::Decimal128(d.precision as u8, d.scale as i8),
        Avro::Date => DataType::Date32,
        Avro::TimeMillis | Avro::TimeMicros => DataType::Time64(TimeUnit::Microsecond),
        Avro::TimestampMillis | Avro::TimestampMicros | Avro::TimestampNanos => {
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
        }
        Avro::LocalTimestampMillis | Avro::LocalTimestampMicros | Avro::LocalTimestampNanos => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        Avro::Array(a) => DataType::List(Arc::new(Field::new(
            "element",
            to_type(&a.items, names)?,
            true,
        ))),
        Avro::Map(m) => DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", to_type(&m.types, names)?, true),
                ])),
                false,
            )),
            false,
        ),
        Avro::Union(u) => {
            let non_null: Vec<&Avro> = u.variants().iter().filter(|v| **v != Avro::Null).collect();
            match non_null.as_slice() {
                [one] => to_type(one, names)?,
                [] => DataType::Null,
                _ => DataType::Utf8,
            }
        }
        Avro::Record(r) => DataType::Struct(
            r.fields
                .iter()
                .map(|f| Ok(Field::new(&f.name, to_type(&f.schema, names)?, true)))
                .collect::<Result<Vec<_>, ObjectFailure>>()?
                .into(),
        ),
        Avro::Ref { name } => match names.get(&name.fullname(None)) {
            Some(s) => to_type(s, names)?,
            None => return Err(ObjectFailure::Avro(format!("unknown named type {name:?}"))),
        },
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use apache_avro::types::Record;

    /// An Avro container file with a nested record, an optional field and an array.
    pub fn sample_file(rows: i64) -> Vec<u8> {
        let raw = r#"{"type":"record","name":"event","fields":[
            {"name":"id","type":"long"},
            {"name":"kind","type":["null","string"],"default":null},
            {"name":"score","type":"double"},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"geo","type":{"type":"record","name":"geo","fields":[{"name":"lat","type":"double"}]}}
        ]}"#;
        let schema = Avro::parse_str(raw).expect("avro schema");
        let mut writer = apache_avro::Writer::new(&schema, Vec::new());
        for i in 0..rows {
            let mut r = Record::new(&schema).expect("record");
            r.put("id", i);
            r.put(
                "kind",
                apache_avro::types::Value::Union(1, Box::new(format!("k{i}").into())),
            );
            r.put("score", i as f64 * 0.5);
            r.put(
                "at",
                apache_avro::types::Value::TimestampMicros(1_700_000_000_000_000 + i),
            );
            r.put("tags", apache_avro::types::Value::Array(vec!["a".into()]));
            r.put(
                "geo",
                apache_avro::types::Value::Record(vec![("lat".into(), 1.5f64.into())]),
            );
            writer.append(r).expect("append");
        }
        writer.into_inner().expect("avro bytes")
    }

    #[test]
    fn schema_from_header() {
        let file = sample_file(10);
        let schema = infer_head(&file).expect("avro").expect("complete header");
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["id", "kind", "score", "at", "tags", "geo"]);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert!(matches!(schema.field(5).data_type(), DataType::Struct(_)));
        assert_eq!(infer_head(&file[..20]).expect("short head"), None);
        assert!(infer_head(b"not avro").is_err());
    }
}
