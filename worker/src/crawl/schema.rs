//! Arrow schemas as the crawler uses them: merged with widening and compared for layout
//! decisions (normalizing to Iceberg types is [`crate::lake::schema`]'s).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};

use crate::lake::schema::UTC;

/// How two types may be merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Widening {
    /// Only promotions Iceberg allows in schema evolution: int→long, float→double,
    /// decimal precision, plus nested merges.
    Iceberg,
    /// Also what text formats need: int→double, date→timestamp, anything scalar→string.
    Text,
}

/// The type both `a` and `b` fit in, or `None` when there is none under `mode`.
pub fn merge_type(a: &DataType, b: &DataType, mode: Widening) -> Option<DataType> {
    use DataType::*;
    if a == b {
        return Some(a.clone());
    }
    let merged = match (a, b) {
        (Null, x) | (x, Null) => Some(x.clone()),
        (Int32, Int64) | (Int64, Int32) => Some(Int64),
        (Float32, Float64) | (Float64, Float32) => Some(Float64),
        (Decimal128(p1, s1), Decimal128(p2, s2)) if s1 == s2 => Some(Decimal128(*p1.max(p2), *s1)),
        (Struct(fa), Struct(fb)) => merge_fields(fa, fb, mode).map(Struct),
        (List(fa), List(fb)) => merge_type(fa.data_type(), fb.data_type(), mode)
            .map(|t| List(Arc::new(Field::new(fa.name(), t, true)))),
        _ => None,
    };
    if merged.is_some() || mode == Widening::Iceberg {
        return merged;
    }
    match (a, b) {
        (Int32 | Int64 | Float32 | Float64, Int32 | Int64 | Float32 | Float64) => Some(Float64),
        (Date32, Timestamp(u, tz)) | (Timestamp(u, tz), Date32) => Some(Timestamp(*u, tz.clone())),
        (Timestamp(u, _), Timestamp(_, _)) => Some(Timestamp(*u, Some(UTC.into()))),
        (Struct(_) | List(_) | Map(_, _), _) | (_, Struct(_) | List(_) | Map(_, _)) => None,
        _ => Some(Utf8),
    }
}

/// Union of two field lists by name (order: `a`'s fields, then `b`'s new ones), merging
/// the types of common fields.
pub fn merge_fields(a: &Fields, b: &Fields, mode: Widening) -> Option<Fields> {
    let mut out: Vec<Field> = Vec::with_capacity(a.len() + b.len());
    for fa in a.iter() {
        match b.iter().find(|fb| fb.name() == fa.name()) {
            Some(fb) => out.push(Field::new(
                fa.name(),
                merge_type(fa.data_type(), fb.data_type(), mode)?,
                true,
            )),
            None => out.push(fa.as_ref().clone()),
        }
    }
    for fb in b.iter() {
        if !a.iter().any(|fa| fa.name() == fb.name()) {
            out.push(fb.as_ref().clone());
        }
    }
    Some(out.into())
}

/// Union of two schemas; see [`merge_fields`].
pub fn merge(a: &Schema, b: &Schema, mode: Widening) -> Option<Schema> {
    merge_fields(a.fields(), b.fields(), mode).map(Schema::new)
}

/// Share of columns two schemas have in common (0..=1, by name over the union).
pub fn similarity(a: &Schema, b: &Schema) -> f64 {
    let common = a
        .fields()
        .iter()
        .filter(|f| b.field_with_name(f.name()).is_ok())
        .count();
    let union = a.fields().len() + b.fields().len() - common;
    if union == 0 {
        1.0
    } else {
        common as f64 / union as f64
    }
}

/// Whether `b` only adds to `a`: every column of `a` stays and keeps its type or widens within
/// what Iceberg allows. Returns the columns added and the columns widened.
pub fn diff(current: &Schema, merged: &Schema) -> SchemaDiff {
    let mut d = SchemaDiff::default();
    for f in merged.fields() {
        match current.field_with_name(f.name()) {
            Err(_) => d.added.push(f.as_ref().clone()),
            Ok(old) if old.data_type() != f.data_type() => {
                d.widened.push((old.clone(), f.as_ref().clone()))
            }
            Ok(_) => {}
        }
    }
    d
}

/// What evolving a table from one schema to another involves.
#[derive(Debug, Default, PartialEq)]
pub struct SchemaDiff {
    pub added: Vec<Field>,
    /// (old, new) of top-level columns whose type changed (including nested additions).
    pub widened: Vec<(Field, Field)>,
}

impl SchemaDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.widened.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> Schema {
        Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn iceberg_widening_is_strict() {
        use DataType::*;
        assert_eq!(merge_type(&Int32, &Int64, Widening::Iceberg), Some(Int64));
        assert_eq!(merge_type(&Int64, &Float64, Widening::Iceberg), None);
        assert_eq!(merge_type(&Int64, &Float64, Widening::Text), Some(Float64));
        assert_eq!(merge_type(&Int64, &Utf8, Widening::Text), Some(Utf8));
        assert_eq!(merge_type(&Boolean, &Int64, Widening::Iceberg), None);
    }

    #[test]
    fn merges_nested_structs_and_adds_columns() {
        use DataType::*;
        let a = schema(&[
            ("id", Int64),
            ("u", Struct(vec![Field::new("name", Utf8, true)].into())),
        ]);
        let b = schema(&[
            ("id", Int32),
            ("u", Struct(vec![Field::new("age", Int64, true)].into())),
            ("extra", Boolean),
        ]);
        let m = merge(&a, &b, Widening::Iceberg).expect("mergeable");
        assert_eq!(m.fields().len(), 3);
        assert_eq!(
            m.field(1).data_type(),
            &Struct(
                vec![
                    Field::new("name", Utf8, true),
                    Field::new("age", Int64, true)
                ]
                .into()
            )
        );
        let d = diff(&a, &m);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.widened.len(), 1);
        assert!((similarity(&a, &b) - 2.0 / 3.0).abs() < 1e-9);
    }
}
