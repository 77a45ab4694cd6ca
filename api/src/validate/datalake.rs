//! DataLake checks that need the object's name or span several fields.

use std::collections::BTreeMap;

use regex::Regex;

use super::{Collector, SpecErrors};
use crate::datalake::DataLake;

/// Bucket name rules (S3): 3–63 characters of lowercase letters, digits, dots and hyphens,
/// starting and ending with a letter or digit, no `..`, not an IP address.
pub(crate) fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let looks_like_ip = name.split('.').count() == 4
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !(3..=63).contains(&name.len())
        || !ok_chars
        || !ends_ok(name.chars().next())
        || !ends_ok(name.chars().last())
        || name.contains("..")
        || looks_like_ip
    {
        return Err(format!(
            "{name:?} is not a valid bucket name (3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, not an IP address)"
        ));
    }
    Ok(())
}

/// Checks of a DataLake that its schema cannot express: bucket names derived from the lake's
/// name, buckets shared by two zones, quantities.
pub fn validate_datalake(lake: &DataLake) -> Result<(), SpecErrors> {
    let mut c = Collector::default();
    let quantity =
        Regex::new(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$").map_err(|e| {
            SpecErrors(vec![super::FieldError {
                path: "spec".into(),
                message: e.to_string(),
            }])
        })?;
    let mut owners: BTreeMap<String, &str> = BTreeMap::new();
    for (i, zone) in lake.spec.zones.iter().enumerate() {
        let bucket = lake.bucket_name(zone);
        let field = if zone.bucket.is_some() {
            format!("spec.zones[{i}].bucket")
        } else {
            format!("spec.zones[{i}].name")
        };
        if let Err(e) = check_bucket_name(&bucket) {
            let hint = if zone.bucket.is_none() {
                " (derived as <lake>-<zone>; set spec.zones[].bucket explicitly)"
            } else {
                ""
            };
            c.add(&field, format!("{e}{hint}"));
        }
        if let Some(other) = owners.insert(bucket.clone(), &zone.name) {
            c.add(
                &field,
                format!("bucket {bucket:?} is already used by zone {other:?}; each zone needs its own bucket"),
            );
        }
        if let Some(q) = &zone.quota
            && !quantity.is_match(&q.0)
        {
            c.add(
                format!("spec.zones[{i}].quota"),
                format!("{:?} is not a size such as 500Gi", q.0),
            );
        }
    }
    if let Some(managed) = &lake.spec.storage.managed
        && !quantity.is_match(&managed.volume_size.0)
    {
        c.add(
            "spec.storage.managed.volumeSize",
            format!("{:?} is not a size such as 10Gi", managed.volume_size.0),
        );
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["raw", "lake-raw", "my.lake.raw", "a1b"] {
            assert!(check_bucket_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Raw",
            "-raw",
            "raw-",
            "a..b",
            "192.168.1.1",
            &"x".repeat(64),
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
