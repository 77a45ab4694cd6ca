//! Bring one bucket to its desired state, reading first and writing only what differs.

use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use lakeform_api::datalake::ObjectLockMode;

use super::error::StorageError;
use super::{Storage, lifecycle};
use crate::desired::buckets::DesiredBucket;

/// What `ensure_bucket` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BucketReport {
    /// The bucket was created.
    pub created: bool,
    /// Settings that were changed (`versioning`, `lifecycle`, `objectLock`, `quota`).
    pub changed: Vec<&'static str>,
}

fn lock_mode(mode: ObjectLockMode) -> ObjectLockRetentionMode {
    match mode {
        ObjectLockMode::Governance => ObjectLockRetentionMode::Governance,
        ObjectLockMode::Compliance => ObjectLockRetentionMode::Compliance,
    }
}

/// Create the bucket if missing and converge versioning, object lock retention, lifecycle and
/// quota. Reads each setting first; a bucket already as desired gets no write.
pub async fn ensure_bucket(
    st: &Storage,
    want: &DesiredBucket,
) -> Result<BucketReport, StorageError> {
    let bucket = want.name.as_str();
    let mut report = BucketReport::default();

    let exists = match st.s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => true,
        Err(e) => {
            let not_found = e.as_service_error().is_some_and(|s| s.is_not_found())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
            if !not_found {
                return Err(st.err("HeadBucket", bucket, e));
            }
            false
        }
    };
    if !exists {
        let mut req = st.s3.create_bucket().bucket(bucket);
        if want.object_lock.is_some() {
            req = req.object_lock_enabled_for_bucket(true);
        }
        match req.send().await {
            Ok(_) => report.created = true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(st.err("CreateBucket", bucket, e)),
        }
    }

    // Object lock: only at creation. A lock wanted on an unlocked bucket is refused.
    let lock = match st
        .s3
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out.object_lock_configuration,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => None,
        Err(e) => {
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or_default()
                .to_string();
            if code.contains("ObjectLockConfigurationNotFound") {
                None
            } else {
                return Err(st.err("GetObjectLockConfiguration", bucket, e));
            }
        }
    };
    let lock_enabled = lock
        .as_ref()
        .is_some_and(|l| l.object_lock_enabled == Some(ObjectLockEnabled::Enabled));
    if let Some((mode, days)) = want.object_lock {
        if !lock_enabled {
            return Err(StorageError::ObjectLockImmutable {
                bucket: bucket.to_string(),
            });
        }
        let current = lock
            .as_ref()
            .and_then(|l| l.rule.as_ref())
            .and_then(|r| r.default_retention.as_ref())
            .map(|d| (d.mode.clone(), d.days));
        let desired = days.map(|d| (Some(lock_mode(mode)), Some(d)));
        if current != desired {
            let mut cfg =
                ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled);
            if let Some(d) = days {
                cfg = cfg.rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(lock_mode(mode))
                                .days(d)
                                .build(),
                        )
                        .build(),
                );
            }
            st.s3
                .put_object_lock_configuration()
                .bucket(bucket)
                .object_lock_configuration(cfg.build())
                .send()
                .await
                .map_err(|e| st.err("PutObjectLockConfiguration", bucket, e))?;
            report.changed.push("objectLock");
        }
    }

    // Versioning: Enabled when asked (object lock implies it); Suspended when turned off after
    // having been on; never touched on a bucket that never had it.
    let status = st
        .s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| st.err("GetBucketVersioning", bucket, e))?
        .status;
    let wanted_status = if want.versioning || want.object_lock.is_some() {
        Some(BucketVersioningStatus::Enabled)
    } else if status == Some(BucketVersioningStatus::Enabled) {
        Some(BucketVersioningStatus::Suspended)
    } else {
        None
    };
    if let Some(wanted) = wanted_status
        && status.as_ref() != Some(&wanted)
        && !(lock_enabled && wanted == BucketVersioningStatus::Suspended)
    {
        st.s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(VersioningConfiguration::builder().status(wanted).build())
            .send()
            .await
            .map_err(|e| st.err("PutBucketVersioning", bucket, e))?;
        report.changed.push("versioning");
    }

    // Lifecycle.
    let current = match st
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => lifecycle::from_s3(out.rules()),
        Err(e) => {
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or_default()
                .to_string();
            if code == "NoSuchLifecycleConfiguration" {
                Vec::new()
            } else {
                return Err(st.err("GetBucketLifecycleConfiguration", bucket, e));
            }
        }
    };
    let desired = lifecycle::from_spec(&want.lifecycle, st.is_minio);
    if current != desired {
        if desired.is_empty() {
            st.s3
                .delete_bucket_lifecycle()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| st.err("DeleteBucketLifecycle", bucket, e))?;
        } else {
            let cfg = lifecycle::to_s3(&desired).map_err(|message| StorageError::Other {
                operation: "PutBucketLifecycleConfiguration",
                bucket: bucket.to_string(),
                message,
            })?;
            st.s3
                .put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(cfg)
                .send()
                .await
                .map_err(|e| st.err("PutBucketLifecycleConfiguration", bucket, e))?;
        }
        report.changed.push("lifecycle");
    }

    // Quota: MinIO's admin API. Other endpoints have no bucket quotas.
    if st.is_minio {
        let current_quota = st.admin.get_quota(bucket).await?;
        let desired_quota = want.quota_bytes.unwrap_or(0);
        if current_quota != desired_quota {
            st.admin.set_quota(bucket, desired_quota).await?;
            report.changed.push("quota");
        }
    } else if want.quota_bytes.is_some() {
        return Err(StorageError::Other {
            operation: "SetBucketQuota",
            bucket: bucket.to_string(),
            message:
                "bucket quotas need a MinIO endpoint (its admin API); this endpoint is not MinIO"
                    .into(),
        });
    }
    Ok(report)
}

/// Delete every object version and delete marker, then the bucket. A missing bucket is fine.
pub async fn delete_bucket_and_contents(st: &Storage, bucket: &str) -> Result<(), StorageError> {
    loop {
        let page = match st
            .s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(1000)
            .send()
            .await
        {
            Ok(p) => p,
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    aws_sdk_s3::error::ProvideErrorMetadata::code(s) == Some("NoSuchBucket")
                }) =>
            {
                return Ok(());
            }
            Err(e) => return Err(st.err("ListObjectVersions", bucket, e)),
        };
        let mut ids = Vec::new();
        for v in page.versions() {
            if let Some(key) = v.key() {
                ids.push(
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(v.version_id().map(str::to_string))
                        .build(),
                );
            }
        }
        for m in page.delete_markers() {
            if let Some(key) = m.key() {
                ids.push(
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(m.version_id().map(str::to_string))
                        .build(),
                );
            }
        }
        let ids: Vec<ObjectIdentifier> = ids.into_iter().filter_map(Result::ok).collect();
        if ids.is_empty() {
            break;
        }
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| StorageError::Other {
                operation: "DeleteObjects",
                bucket: bucket.to_string(),
                message: e.to_string(),
            })?;
        let out = st
            .s3
            .delete_objects()
            .bucket(bucket)
            .bypass_governance_retention(true)
            .delete(delete)
            .send()
            .await
            .map_err(|e| st.err("DeleteObjects", bucket, e))?;
        if let Some(err) = out.errors().first() {
            return Err(StorageError::Other {
                operation: "DeleteObjects",
                bucket: bucket.to_string(),
                message: format!(
                    "{} errors, first: {} {}",
                    out.errors().len(),
                    err.key().unwrap_or_default(),
                    err.message().unwrap_or_default()
                ),
            });
        }
    }
    match st.s3.delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) if aws_sdk_s3::error::ProvideErrorMetadata::code(&e) == Some("NoSuchBucket") => {
            Ok(())
        }
        Err(e) => Err(st.err("DeleteBucket", bucket, e)),
    }
}
