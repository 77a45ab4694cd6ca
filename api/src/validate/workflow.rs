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
