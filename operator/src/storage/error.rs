//! Storage errors, classified into the reasons a DataLake's status reports.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Credentials were refused (bad key, bad signature, no permission).
    #[error("{operation} on {endpoint}: access denied ({code}): {message}")]
    AccessDenied {
        operation: &'static str,
        endpoint: String,
        code: String,
        message: String,
    },
    /// The endpoint could not be reached (refused, DNS, TLS, timeout).
    #[error("{operation} on {endpoint}: endpoint unreachable: {message}")]
    EndpointUnreachable {
        operation: &'static str,
        endpoint: String,
        message: String,
    },
    /// The bucket name is taken by someone else.
    #[error("bucket {bucket:?} already exists and belongs to another account")]
    BucketConflict { bucket: String },
    /// Object lock was requested for a bucket created without it.
    #[error(
        "bucket {bucket:?} was created without object lock; object lock can only be enabled when a bucket is created"
    )]
    ObjectLockImmutable { bucket: String },
    /// A lifecycle transition names a tier the endpoint does not know.
    #[error(
        "bucket {bucket:?}: lifecycle transition tier is not configured on the endpoint: {message}"
    )]
    TierNotFound { bucket: String, message: String },
    /// A user or policy call failed (identities).
    #[error("{operation} {subject:?}: {message}")]
    Identity {
        operation: &'static str,
        subject: String,
        message: String,
    },
    /// Any other failure.
    #[error("{operation} on bucket {bucket:?}: {message}")]
    Other {
        operation: &'static str,
        bucket: String,
        message: String,
    },
}

impl StorageError {
    /// The status condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            StorageError::AccessDenied { .. } => "AccessDenied",
            StorageError::EndpointUnreachable { .. } => "EndpointUnreachable",
            StorageError::BucketConflict { .. } => "BucketConflict",
            StorageError::ObjectLockImmutable { .. } => "ObjectLockImmutable",
            StorageError::TierNotFound { .. } => "TierNotFound",
            StorageError::Identity { .. } => "IdentitySyncFailed",
            StorageError::Other { .. } => "StorageError",
        }
    }

    /// True for errors that retrying cannot fix without a spec change.
    pub fn needs_spec_change(&self) -> bool {
        matches!(
            self,
            StorageError::BucketConflict { .. } | StorageError::ObjectLockImmutable { .. }
        )
    }

    /// Classify an SDK error.
    pub(crate) fn from_sdk<E, R>(
        operation: &'static str,
        bucket: Option<&str>,
        endpoint: &str,
        err: SdkError<E, R>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().unwrap_or_default().to_string();
        let message = err
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                return StorageError::EndpointUnreachable {
                    operation,
                    endpoint: endpoint.to_string(),
                    message: DisplayErrorContext(&err).to_string(),
                };
            }
            SdkError::ResponseError(_) => {
                return StorageError::EndpointUnreachable {
                    operation,
                    endpoint: endpoint.to_string(),
                    message: format!("not an S3 response: {}", DisplayErrorContext(&err)),
                };
            }
            _ => {}
        }
        Self::from_code(operation, bucket, endpoint, &code, message)
    }

    /// Classify by S3 error code.
    pub(crate) fn from_code(
        operation: &'static str,
        bucket: Option<&str>,
        endpoint: &str,
        code: &str,
        message: String,
    ) -> Self {
        match code {
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "XMinioAdminNotAllowed" => StorageError::AccessDenied {
                operation,
                endpoint: endpoint.to_string(),
                code: code.to_string(),
                message,
            },
            "BucketAlreadyExists" => StorageError::BucketConflict {
                bucket: bucket.unwrap_or_default().to_string(),
            },
            "XMinioAdminTierNotFound" | "InvalidStorageClass" => StorageError::TierNotFound {
                bucket: bucket.unwrap_or_default().to_string(),
                message,
            },
            _ => StorageError::Other {
                operation,
                bucket: bucket.unwrap_or_default().to_string(),
                message: if code.is_empty() {
                    message
                } else {
                    format!("{code}: {message}")
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_condition_reasons() {
        let e =
            |code: &str| StorageError::from_code("Op", Some("b"), "http://s3", code, "m".into());
        assert_eq!(e("AccessDenied").reason(), "AccessDenied");
        assert_eq!(e("InvalidAccessKeyId").reason(), "AccessDenied");
        assert_eq!(e("SignatureDoesNotMatch").reason(), "AccessDenied");
        assert_eq!(e("BucketAlreadyExists").reason(), "BucketConflict");
        assert!(e("BucketAlreadyExists").needs_spec_change());
        assert_eq!(e("XMinioAdminTierNotFound").reason(), "TierNotFound");
        let other = e("SlowDown");
        assert_eq!(other.reason(), "StorageError");
        assert!(!other.needs_spec_change());
        assert!(other.to_string().contains("SlowDown: m"), "{other}");
    }
}
