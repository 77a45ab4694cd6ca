//! Workflow checks: the step DAG, cron triggers, timeouts, references into the DataLake.

use super::crawler::zone_names;
use super::{
    Collector, SpecErrors, parse_cron, parse_duration, parse_time_zone, topological_order,
};
use crate::datalake::DataLakeSpec;
use crate::workflow::{Step, WorkflowSpec};

/// Check a Workflow's spec (with `steps` already expanded when it uses a blueprint); with its
/// DataLake, also that zones and databases it names exist.
pub fn validate_workflow(
    spec: &WorkflowSpec,
    lake: Option<&DataLakeSpec>,
) -> Result<(), SpecErrors> {
    let mut c = Collector::default();
    validate_steps(&spec.steps, lake, &mut c);
    for (i, trigger) in spec.triggers.iter().enumerate() {
        if let Some(s) = &trigger.schedule {
            c.check(
                format!("spec.triggers[{i}].schedule.cron"),
                parse_cron(&s.cron).map(drop),
            );
            if let Some(tz) = &s.time_zone {
                c.check(
                    format!("spec.triggers[{i}].schedule.timeZone"),
                    parse_time_zone(tz).map(drop),
                );
            }
        }
        if let (Some(e), Some(lake)) = (&trigger.event, lake)
            && !lake.zones.iter().any(|z| z.name == e.zone)
        {
            c.add(
                format!("spec.triggers[{i}].event.zone"),
                format!(
                    "zone {:?} does not exist in the DataLake (zones: {})",
                    e.zone,
                    zone_names(lake)
                ),
            );
        }
    }
    c.finish()
}

/// Most columns a `sql` step may partition its target on.
const MAX_PARTITION_COLUMNS: usize = 4;

/// Whether `name` can be a `partitionBy` column: letters, digits and `_`, not starting with a
/// digit (what an unquoted SQL identifier holds).
fn is_column_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// `spec.steps[i].sql.partitionBy` (and an extract's `partitions[k].columns`): at most four
/// distinct column identifiers — the schema's checks repeated, so `lakeform blueprint render`
/// and a blueprint instance's own check refuse a bad child before the API server sees it.
fn check_partition_by(path: String, columns: &[String], c: &mut Collector) {
    if columns.len() > MAX_PARTITION_COLUMNS {
        c.add(
            path.clone(),
            format!(
                "{} columns; a table is partitioned on at most {MAX_PARTITION_COLUMNS}",
                columns.len()
            ),
        );
    }
    for (j, name) in columns.iter().enumerate() {
        if !is_column_identifier(name) {
            c.add(
                format!("{path}[{j}]"),
                format!("{name:?} is not a column name (letters, digits and _, not starting with a digit)"),
            );
        } else if columns[..j].contains(name) {
            c.add(format!("{path}[{j}]"), format!("{name:?} is listed twice"));
        }
    }
}

fn validate_steps(steps: &[Step], lake: Option<&DataLakeSpec>, c: &mut Collector) {
    let nodes: Vec<(&str, Vec<&str>)> = steps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    c.check("spec.steps", topological_order(&nodes).map(drop));
    let databases: Vec<&str> = lake
        .and_then(|l| l.catalog.as_ref())
        .map(|cat| cat.databases.iter().map(|d| d.name.as_str()).collect())
        .unwrap_or_default();
    let mut check_database = |path: String, db: &str| {
        if lake.is_some() && !databases.contains(&db) {
            c.add(
                path,
                format!("database {db:?} is not declared in the DataLake's spec.catalog.databases"),
            );
        }
    };
    for (i, step) in steps.iter().enumerate() {
        if let Some(sql) = &step.sql {
            check_database(
                format!("spec.steps[{i}].sql.target.database"),
                &sql.target.database,
            );
        }
        if let Some(extract) = &step.extract {
            check_database(
                format!("spec.steps[{i}].extract.targetDatabase"),
                &extract.target_database,
            );
        }
    }
    for (i, step) in steps.iter().enumerate() {
        if let Some(sql) = &step.sql {
            check_partition_by(
                format!("spec.steps[{i}].sql.partitionBy"),
                &sql.partition_by,
                c,
            );
        }
        for (k, p) in step
            .extract
            .iter()
            .flat_map(|x| x.partitions.iter().enumerate())
        {
            check_partition_by(
                format!("spec.steps[{i}].extract.partitions[{k}].columns"),
                &p.columns,
                c,
            );
        }
        if let Some(t) = &step.timeout {
            c.check(
                format!("spec.steps[{i}].timeout"),
                parse_duration(t).map(drop),
            );
        }
        if let Some(extract) = &step.extract {
            let lists = [("tables", &extract.tables), ("exclude", &extract.exclude)];
            for (field, patterns) in lists {
                for (j, pattern) in patterns.iter().enumerate() {
                    if pattern.split('/').count() != 3 || pattern.split('/').any(str::is_empty) {
                        c.add(
                            format!("spec.steps[{i}].extract.{field}[{j}]"),
                            format!("{pattern:?} must have the form database/schema/table (use % as a wildcard)"),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(columns: &[&str]) -> Vec<String> {
        let mut c = Collector::default();
        let columns: Vec<String> = columns.iter().map(|s| s.to_string()).collect();
        check_partition_by("spec.steps[2].sql.partitionBy".into(), &columns, &mut c);
        c.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn partition_by_takes_up_to_four_distinct_column_names() {
        assert!(errors(&[]).is_empty());
        assert!(errors(&["day", "Region_2", "_x"]).is_empty());
        assert_eq!(
            errors(&["day", "2day", "a-b", "day"]),
            [
                "spec.steps[2].sql.partitionBy[1]: \"2day\" is not a column name (letters, digits and _, not starting with a digit)",
                "spec.steps[2].sql.partitionBy[2]: \"a-b\" is not a column name (letters, digits and _, not starting with a digit)",
                "spec.steps[2].sql.partitionBy[3]: \"day\" is listed twice",
            ]
        );
        let five = errors(&["a", "b", "c", "d", "e"]);
        assert_eq!(five.len(), 1);
        assert!(five[0].starts_with("spec.steps[2].sql.partitionBy: 5 columns"));
    }
}
