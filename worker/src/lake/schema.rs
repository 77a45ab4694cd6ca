//! Arrow schemas normalized to the types Iceberg has: what the crawler infers and what steps
//! write both pass through [`normalize`] before they become table columns.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// Time zone written for `timestamptz` columns (what iceberg-rust maps `timestamptz` to).
pub const UTC: &str = "+00:00";

/// Maps an arrow type onto the closest type Iceberg can hold.
pub fn normalize_type(dt: &DataType) -> DataType {
    use DataType::*;
    match dt {
        Int8 | Int16 | Int32 | UInt8 | UInt16 => Int32,
        UInt32 | Int64 | UInt64 => Int64,
        Float16 | Float32 => Float32,
        Float64 => Float64,
        Boolean => Boolean,
        Utf8 | LargeUtf8 | Utf8View | Null => Utf8,
        Binary | LargeBinary | BinaryView => Binary,
        FixedSizeBinary(n) => FixedSizeBinary(*n),
        Date32 | Date64 => Date32,
        Timestamp(_, tz) => Timestamp(TimeUnit::Microsecond, tz.as_ref().map(|_| UTC.into())),
        Time32(_) | Time64(_) => Time64(TimeUnit::Microsecond),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) if *p <= 38 => Decimal128(*p, *s),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            List(Arc::new(normalize_field(f)))
        }
        Struct(fields) => Struct(fields.iter().map(|f| normalize_field(f)).collect()),
        Map(entries, sorted) => Map(Arc::new(normalize_field(entries)), *sorted),
        Dictionary(_, value) => normalize_type(value),
        RunEndEncoded(_, value) => normalize_type(value.data_type()),
        _ => Utf8,
    }
}

/// A field with a normalized type, always nullable (crawled data promises nothing), and no
/// metadata (field ids are assigned by the catalog).
pub fn normalize_field(f: &Field) -> Field {
    Field::new(f.name(), normalize_type(f.data_type()), true)
}

/// A schema with normalized fields.
pub fn normalize(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| normalize_field(f))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_iceberg_types() {
        assert_eq!(normalize_type(&DataType::Int16), DataType::Int32);
        assert_eq!(normalize_type(&DataType::LargeUtf8), DataType::Utf8);
        assert_eq!(
            normalize_type(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("UTC".into())
            )),
            DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
        );
        assert_eq!(normalize_type(&DataType::Null), DataType::Utf8);
    }
}
