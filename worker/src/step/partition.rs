//! `partitionBy` of `sql` steps: the identity partitions a step asks for, checked against the
//! query's columns (a table the step creates) and against the partition spec of the table it
//! writes (never changed: a step fails rather than re-partition a table).

use arrow_schema::Schema;
use iceberg::spec::Transform;
use iceberg::table::Table;

use crate::lake::catalog::PartitionColumn;
use crate::step::error::StepError;

/// The partitioning a step asks for.
#[derive(Clone, Copy, Debug)]
pub struct PartitionBy<'a> {
    /// Columns of the query's result, in order (empty: unpartitioned).
    pub columns: &'a [String],
    /// The field that asks, for errors: `spec.steps[2].sql.partitionBy`.
    pub field: &'a str,
}

impl PartitionBy<'_> {
    fn error(&self, message: String) -> StepError {
        StepError::Spec {
            field: self.field.to_string(),
            message,
        }
    }

    /// An error about entry `j`.
    fn error_at(&self, j: usize, message: String) -> StepError {
        StepError::Spec {
            field: format!("{}[{j}]", self.field),
            message,
        }
    }
}

/// The partition columns of a table created for a query with `schema` (normalized): each must
/// be a top-level column of the result with a primitive type.
pub fn columns(schema: &Schema, by: &PartitionBy<'_>) -> Result<Vec<PartitionColumn>, StepError> {
    by.columns
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let f = schema.field_with_name(name).map_err(|_| {
                let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                by.error_at(
                    j,
                    format!(
                        "{name:?} is not a column of the query's result (columns: {})",
                        have.join(", ")
                    ),
                )
            })?;
            if f.data_type().is_nested() {
                return Err(by.error_at(
                    j,
                    format!(
                        "column {name:?} has type {}: identity partitions need a primitive column",
                        f.data_type()
                    ),
                ));
            }
            Ok(PartitionColumn {
                name: name.clone(),
                data_type: f.data_type().clone(),
            })
        })
        .collect()
}

/// The table's default partition spec in `partitionBy` terms: the column of each identity
/// field, `transform(column)` for the others.
pub fn spec_columns(table: &Table) -> Vec<String> {
    let metadata = table.metadata();
    let schema = metadata.current_schema();
    metadata
        .default_partition_spec()
        .fields()
        .iter()
        .map(|pf| {
            let source = schema
                .name_by_field_id(pf.source_id)
                .map(str::to_string)
                .unwrap_or_else(|| format!("field {}", pf.source_id));
            match pf.transform {
                Transform::Identity => source,
                t => format!("{t}({source})"),
            }
        })
        .collect()
}

/// Fails unless the table's default spec is exactly identity partitions on `by.columns`, in
/// order (no columns: unpartitioned).
pub fn check_table(table: &Table, by: &PartitionBy<'_>) -> Result<(), StepError> {
    let has = spec_columns(table);
    if has == by.columns {
        return Ok(());
    }
    let list = |c: &[String]| match c {
        [] => "nothing (unpartitioned)".to_string(),
        c => format!("[{}]", c.join(", ")),
    };
    Err(by.error(format!(
        "table {} is partitioned by {} but the step asks for {}; a step never re-partitions \
         a table: set partitionBy to the table's partitioning, or write to a new table",
        table.identifier(),
        list(&has),
        list(by.columns)
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field};

    use super::*;
    use crate::lake::writer::tests::memory_table as table;

    fn by(columns: &[String]) -> PartitionBy<'_> {
        PartitionBy {
            columns,
            field: "spec.steps[1].sql.partitionBy",
        }
    }

    fn names(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn the_same_spec_passes_another_fails_naming_the_field() {
        let t = table(&[("day", Transform::Identity)]);
        assert_eq!(spec_columns(&t), ["day"]);
        check_table(&t, &by(&names(&["day"]))).expect("same spec");
        for other in [names(&["region"]), names(&[]), names(&["day", "region"])] {
            let err = check_table(&t, &by(&other)).expect_err("another spec");
            let msg = err.to_string();
            assert!(
                msg.starts_with(
                    "spec.steps[1].sql.partitionBy: table db.t is partitioned by [day]"
                ),
                "{msg}"
            );
            assert!(msg.contains("never re-partitions"), "{msg}");
        }
        let plain = table(&[]);
        check_table(&plain, &by(&[])).expect("unpartitioned");
        let err = check_table(&plain, &by(&names(&["day"]))).expect_err("unpartitioned table");
        assert!(
            err.to_string()
                .contains("partitioned by nothing (unpartitioned) but the step asks for [day]"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_transform_other_than_identity_is_another_spec() {
        let t = table(&[("day", Transform::Month), ("region", Transform::Identity)]);
        assert_eq!(spec_columns(&t), ["month(day)", "region"]);
        let err = check_table(&t, &by(&names(&["day", "region"]))).expect_err("month");
        assert!(err.to_string().contains("[month(day), region]"), "{err}");
    }

    #[test]
    fn partition_columns_come_from_the_querys_result() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("day", DataType::Date32, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ]);
        let cols = columns(&schema, &by(&names(&["day"]))).expect("day");
        assert_eq!(
            cols,
            [PartitionColumn {
                name: "day".into(),
                data_type: DataType::Date32
            }]
        );
        let err = columns(&schema, &by(&names(&["id", "dy"]))).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "spec.steps[1].sql.partitionBy[1]: \"dy\" is not a column of the query's result \
             (columns: id, day, tags)"
        );
        let err = columns(&schema, &by(&names(&["tags"]))).expect_err("nested");
        assert!(err.to_string().contains("need a primitive column"), "{err}");
    }
}
