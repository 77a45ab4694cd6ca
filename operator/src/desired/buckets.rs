//! Zones → the buckets they need, with versioning, object lock, lifecycle and quota.

use lakeform_api::datalake::{DataLake, LifecycleRule, ObjectLockMode};

/// A bucket as a zone asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredBucket {
    /// Zone name.
    pub zone: String,
    /// Bucket name.
    pub name: String,
    /// Versioning enabled.
    pub versioning: bool,
    /// Object lock mode and default retention days, when requested.
    pub object_lock: Option<(ObjectLockMode, Option<i32>)>,
    /// Lifecycle rules, sorted by id.
    pub lifecycle: Vec<LifecycleRule>,
    /// Hard quota in bytes.
    pub quota_bytes: Option<u64>,
}

/// Parse a Kubernetes quantity (`500Gi`, `1T`, `1000`) into bytes.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let split = q
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return None,
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(multiplier);
    }
    let value: f64 = number.parse().ok()?;
    let bytes = value * multiplier as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then(|| bytes.round() as u64)
}

/// The buckets of a DataLake, in zone order.
pub fn desired_buckets(lake: &DataLake) -> Vec<DesiredBucket> {
    lake.spec
        .zones
        .iter()
        .map(|zone| {
            let mut lifecycle = zone.lifecycle.clone();
            lifecycle.sort_by(|a, b| a.id.cmp(&b.id));
            DesiredBucket {
                zone: zone.name.clone(),
                name: lake.bucket_name(zone),
                versioning: zone.versioning,
                object_lock: zone
                    .object_lock
                    .as_ref()
                    .map(|l| (l.mode, l.retention_days)),
                lifecycle,
                quota_bytes: zone.quota.as_ref().and_then(|q| quantity_bytes(&q.0)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("1000"), Some(1000));
        assert_eq!(quantity_bytes("1Ki"), Some(1024));
        assert_eq!(quantity_bytes("500Gi"), Some(500 << 30));
        assert_eq!(quantity_bytes("1.5G"), Some(1_500_000_000));
        assert_eq!(quantity_bytes("2Xi"), None);
    }

    #[test]
    fn buckets_default_to_lake_dash_zone() {
        let lake: DataLake = serde_yaml::from_str(
            r#"
apiVersion: lakeform.dev/v1alpha1
kind: DataLake
metadata: {name: sales, namespace: team}
spec:
  storage: {external: {endpoint: "http://s3:9000", credentials: {secretName: s3}}}
  zones:
    - name: raw
      quota: 10Gi
      lifecycle:
        - {id: z, expireAfterDays: 3}
        - {id: a, abortIncompleteMultipartAfterDays: 1}
    - name: curated
      bucket: sales-gold
      versioning: true
      objectLock: {mode: Compliance, retentionDays: 7}
"#,
        )
        .expect("fixture parses");
        let b = desired_buckets(&lake);
        assert_eq!(b[0].name, "sales-raw");
        assert_eq!(b[0].quota_bytes, Some(10 << 30));
        assert_eq!(
            b[0].lifecycle
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "z"]
        );
        assert_eq!(b[1].name, "sales-gold");
        assert_eq!(
            b[1].object_lock,
            Some((ObjectLockMode::Compliance, Some(7)))
        );
    }
}
