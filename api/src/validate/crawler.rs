//! Crawler checks: cron, time zone, exclude globs, and references into its DataLake.

use globset::Glob;

use super::{Collector, SpecErrors, parse_cron, parse_time_zone};
use crate::crawler::CrawlerSpec;
use crate::datalake::DataLakeSpec;

/// Check a Crawler's spec; with its DataLake, also that targets name zones of the lake and the
/// database is one of the lake's catalog databases.
pub fn validate_crawler(spec: &CrawlerSpec, lake: Option<&DataLakeSpec>) -> Result<(), SpecErrors> {
    let mut c = Collector::default();
    if let Some(schedule) = &spec.schedule {
        c.check("spec.schedule.cron", parse_cron(&schedule.cron).map(drop));
        if let Some(tz) = &schedule.time_zone {
            c.check("spec.schedule.timeZone", parse_time_zone(tz).map(drop));
        }
    }
    for (i, target) in spec.targets.iter().enumerate() {
        for (j, pattern) in target.exclude.iter().enumerate() {
            c.check(
                format!("spec.targets[{i}].exclude[{j}]"),
                Glob::new(pattern)
                    .map(drop)
                    .map_err(|e| format!("{pattern:?} is not a valid glob: {e}")),
            );
        }
        if let Some(lake) = lake
            && !lake.zones.iter().any(|z| z.name == target.zone)
        {
            c.add(
                format!("spec.targets[{i}].zone"),
                format!(
                    "zone {:?} does not exist in the DataLake (zones: {})",
                    target.zone,
                    zone_names(lake)
                ),
            );
        }
    }
    if let Some(lake) = lake {
        let databases: Vec<&str> = lake
            .catalog
            .iter()
            .flat_map(|cat| cat.databases.iter().map(|d| d.name.as_str()))
            .collect();
        if !databases.contains(&spec.database.as_str()) {
            c.add(
                "spec.database",
                format!(
                    "database {:?} is not declared in the DataLake's spec.catalog.databases (declared: {})",
                    spec.database,
                    if databases.is_empty() { "none".to_string() } else { databases.join(", ") }
                ),
            );
        }
    }
    c.finish()
}

pub(crate) fn zone_names(lake: &DataLakeSpec) -> String {
    lake.zones
        .iter()
        .map(|z| z.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
