//! Lifecycle rules: the spec's form ↔ the S3 API's, compared in one normal form so that
//! nothing is written when nothing differs.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule as S3Rule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    Transition, TransitionStorageClass,
};
use lakeform_api::datalake::LifecycleRule;

/// One rule in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NormalRule {
    pub id: String,
    pub prefix: String,
    pub expire_days: Option<i32>,
    pub noncurrent_days: Option<i32>,
    pub abort_days: Option<i32>,
    pub transition: Option<(i32, String)>,
}

/// The spec's rules as they are sent to the endpoint. MinIO has no
/// `AbortIncompleteMultipartUpload` action (it removes stale multipart uploads itself, after
/// 24 h by default), so on MinIO that action is left out, and a rule with nothing else is
/// skipped.
pub(crate) fn from_spec(rules: &[LifecycleRule], is_minio: bool) -> Vec<NormalRule> {
    let mut out: Vec<NormalRule> = rules
        .iter()
        .map(|r| NormalRule {
            id: r.id.clone(),
            prefix: r.prefix.clone(),
            expire_days: r.expire_after_days,
            noncurrent_days: r.noncurrent_expire_after_days,
            abort_days: r.abort_incomplete_multipart_after_days,
            transition: r
                .transition
                .as_ref()
                .map(|t| (t.after_days, t.tier.clone())),
        })
        .map(|mut r| {
            if is_minio {
                r.abort_days = None;
            }
            r
        })
        .filter(|r| {
            r.expire_days.is_some()
                || r.noncurrent_days.is_some()
                || r.abort_days.is_some()
                || r.transition.is_some()
        })
        .collect();
    out.sort();
    out
}

pub(crate) fn from_s3(rules: &[S3Rule]) -> Vec<NormalRule> {
    let mut out: Vec<NormalRule> = rules
        .iter()
        .filter(|r| r.status == ExpirationStatus::Enabled)
        .map(|r| {
            #[allow(deprecated)]
            let legacy_prefix = r.prefix.clone();
            let prefix = r
                .filter
                .as_ref()
                .and_then(|f| f.prefix.clone())
                .or(legacy_prefix)
                .unwrap_or_default();
            NormalRule {
                id: r.id.clone().unwrap_or_default(),
                prefix,
                expire_days: r.expiration.as_ref().and_then(|e| e.days),
                noncurrent_days: r
                    .noncurrent_version_expiration
                    .as_ref()
                    .and_then(|n| n.noncurrent_days),
                abort_days: r
                    .abort_incomplete_multipart_upload
                    .as_ref()
                    .and_then(|a| a.days_after_initiation),
                transition: r
                    .transitions
                    .as_ref()
                    .and_then(|ts| ts.first())
                    .and_then(|t| Some((t.days?, t.storage_class.as_ref()?.as_str().to_string()))),
            }
        })
        .collect();
    out.sort();
    out
}

pub(crate) fn to_s3(rules: &[NormalRule]) -> Result<BucketLifecycleConfiguration, String> {
    let mut s3_rules = Vec::with_capacity(rules.len());
    for r in rules {
        let mut b = S3Rule::builder()
            .id(&r.id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build());
        if let Some(days) = r.expire_days {
            b = b.expiration(LifecycleExpiration::builder().days(days).build());
        }
        if let Some(days) = r.noncurrent_days {
            b = b.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(days)
                    .build(),
            );
        }
        if let Some(days) = r.abort_days {
            b = b.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(days)
                    .build(),
            );
        }
        if let Some((days, tier)) = &r.transition {
            b = b.transitions(
                Transition::builder()
                    .days(*days)
                    .storage_class(TransitionStorageClass::from(tier.as_str()))
                    .build(),
            );
        }
        s3_rules.push(b.build().map_err(|e| e.to_string())?);
    }
    BucketLifecycleConfiguration::builder()
        .set_rules(Some(s3_rules))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakeform_api::datalake::Transition as SpecTransition;

    #[test]
    fn spec_and_s3_forms_round_trip() {
        let spec = vec![
            LifecycleRule {
                id: "tmp".into(),
                prefix: "tmp/".into(),
                expire_after_days: Some(7),
                ..Default::default()
            },
            LifecycleRule {
                id: "archive".into(),
                transition: Some(SpecTransition {
                    after_days: 30,
                    tier: "COLD".into(),
                }),
                noncurrent_expire_after_days: Some(90),
                abort_incomplete_multipart_after_days: Some(2),
                ..Default::default()
            },
        ];
        let normal = from_spec(&spec, false);
        let s3 = to_s3(&normal).expect("builds");
        assert_eq!(from_s3(s3.rules()), normal);
    }

    #[test]
    fn minio_drops_multipart_abort() {
        let spec = vec![
            LifecycleRule {
                id: "uploads".into(),
                abort_incomplete_multipart_after_days: Some(2),
                ..Default::default()
            },
            LifecycleRule {
                id: "tmp".into(),
                expire_after_days: Some(1),
                abort_incomplete_multipart_after_days: Some(2),
                ..Default::default()
            },
        ];
        let normal = from_spec(&spec, true);
        assert_eq!(normal.len(), 1);
        assert_eq!((normal[0].id.as_str(), normal[0].abort_days), ("tmp", None));
        assert_eq!(from_spec(&spec, false).len(), 2);
    }
}
