//! How a lake's S3 storage is reached: the one place that knows the defaults of managed storage
//! (region, path-style addressing, the root-credentials Secret and its keys), used by the
//! operator and by the worker.
//!
//! [`storage_endpoint`] derives where the storage is and which Secret keys sign for it, from
//! plain inputs: the caller says where managed storage answers. The operator passes the
//! address it gives its MinIO Service; the worker passes what the DataLake's status reports,
//! because it must not crawl a lake whose storage the operator has not brought up yet.
//!
//! Secret values are resolved by the callers, each its own way (the operator and a cluster
//! crawl read the Secret object, a step Job and a file-mode crawl read environment variables);
//! [`StorageEndpoint::connection`] then adds them. Nothing here reads a Secret.

use kube::ResourceExt;

use crate::common::S3CredentialsRef;
use crate::datalake::DataLake;

/// Signing region of managed storage, and of external storage that names none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Key of the access key id in the managed storage's root-credentials Secret.
pub const MANAGED_ACCESS_KEY_ID_KEY: &str = "accessKeyId";
/// Key of the secret access key in the managed storage's root-credentials Secret.
pub const MANAGED_SECRET_ACCESS_KEY_KEY: &str = "secretAccessKey";

/// Key of the access key id in an identity's Secret (the operator's `desired::identity`: one
/// MinIO user per Crawler and per principal with data-location Grants), as AWS SDKs name it.
pub const IDENTITY_ACCESS_KEY_KEY: &str = "AWS_ACCESS_KEY_ID";
/// Key of the secret access key in an identity's Secret.
pub const IDENTITY_SECRET_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// The environment variable that names the Secret a crawl pod signs with, when it is not the
/// lake's (a managed lake's crawls get an identity of their own, never the root keys).
pub const ENV_CREDENTIALS_SECRET: &str = "LAKEFORM_S3_CREDENTIALS_SECRET";

/// The Secret (name and keys) of an identity.
pub fn identity_credentials(secret_name: &str) -> S3CredentialsRef {
    S3CredentialsRef {
        secret_name: secret_name.to_string(),
        access_key_id_key: IDENTITY_ACCESS_KEY_KEY.into(),
        secret_access_key_key: IDENTITY_SECRET_KEY_KEY.into(),
    }
}

/// Name of the managed storage's root-credentials Secret (`<lake>-minio-root`).
pub fn managed_secret_name(lake: &DataLake) -> String {
    format!("{}-minio-root", lake.name_any())
}

/// Where and how to reach an S3 endpoint, with the access key pair. The keys come from a
/// Secret (or the environment it was mounted into) and never leave memory: `Debug` leaves
/// them out.
#[derive(Clone)]
pub struct S3Connection {
    /// Endpoint URL (`http://host:port`).
    pub endpoint: String,
    /// Signing region.
    pub region: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl std::fmt::Debug for S3Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Connection")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

/// Where a lake's S3 is and which Secret holds the key pair that signs for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageEndpoint {
    /// Endpoint URL.
    pub endpoint: String,
    /// Signing region.
    pub region: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// Secret (name and keys) with the access key pair.
    pub credentials: S3CredentialsRef,
}

impl StorageEndpoint {
    /// The connection signed with the key pair the caller read from [`Self::credentials`].
    pub fn connection(self, access_key: String, secret_key: String) -> S3Connection {
        S3Connection {
            endpoint: self.endpoint,
            region: self.region,
            path_style: self.path_style,
            access_key,
            secret_key,
        }
    }
}

/// The Secret (name and keys) with the lake's S3 key pair: the external storage's, or the
/// managed storage's root credentials.
pub fn storage_credentials(lake: &DataLake) -> S3CredentialsRef {
    match &lake.spec.storage.external {
        Some(ext) => ext.credentials.clone(),
        None => S3CredentialsRef {
            secret_name: managed_secret_name(lake),
            access_key_id_key: MANAGED_ACCESS_KEY_ID_KEY.into(),
            secret_access_key_key: MANAGED_SECRET_ACCESS_KEY_KEY.into(),
        },
    }
}

/// Where the lake's S3 is: external storage as its spec says; managed storage at the endpoint
/// `managed_endpoint` returns (called only for managed storage; its error is passed on), in
/// [`DEFAULT_REGION`], path-style, signed with the root credentials.
pub fn storage_endpoint<E>(
    lake: &DataLake,
    managed_endpoint: impl FnOnce() -> Result<String, E>,
) -> Result<StorageEndpoint, E> {
    let credentials = storage_credentials(lake);
    Ok(match &lake.spec.storage.external {
        Some(ext) => StorageEndpoint {
            endpoint: ext.endpoint.clone(),
            region: ext.region.clone(),
            path_style: ext.path_style,
            credentials,
        },
        None => StorageEndpoint {
            endpoint: managed_endpoint()?,
            region: DEFAULT_REGION.into(),
            path_style: true,
            credentials,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn lake(storage: &str) -> DataLake {
        serde_yaml::from_str(&format!(
            "apiVersion: lakeform.dev/v1alpha1\nkind: DataLake\nmetadata: {{name: sales, namespace: team}}\nspec:\n  storage:\n{storage}  zones: [{{name: raw}}]\n"
        ))
        .expect("fixture parses")
    }

    #[test]
    fn external_storage_as_its_spec_says() {
        let l = lake(
            "    external:\n      endpoint: https://s3.example\n      credentials: {secretName: creds, accessKeyIdKey: id}\n",
        );
        let ep = storage_endpoint(&l, || Err("not asked for external storage"))
            .expect("external storage needs no managed endpoint");
        assert_eq!(ep.endpoint, "https://s3.example");
        assert_eq!(ep.region, DEFAULT_REGION);
        assert!(ep.path_style);
        assert_eq!(ep.credentials.secret_name, "creds");
        assert_eq!(ep.credentials.access_key_id_key, "id");
        assert_eq!(ep.credentials.secret_access_key_key, "secretAccessKey");
    }

    #[test]
    fn managed_storage_at_the_given_endpoint_with_root_credentials() {
        let l = lake("    managed: {}\n");
        let ep = storage_endpoint(&l, || Ok::<_, Infallible>("http://m:9000".into()))
            .expect("infallible");
        assert_eq!(ep.endpoint, "http://m:9000");
        assert_eq!(ep.region, "us-east-1");
        assert!(ep.path_style);
        assert_eq!(ep.credentials.secret_name, "sales-minio-root");
        assert_eq!(ep.credentials.access_key_id_key, "accessKeyId");
        assert_eq!(ep.credentials.secret_access_key_key, "secretAccessKey");
        assert_eq!(
            storage_endpoint(&l, || Err::<String, _>("no endpoint yet")),
            Err("no endpoint yet")
        );
    }

    #[test]
    fn connection_debug_leaves_the_keys_out() {
        let c = StorageEndpoint::default().connection("AKIA-ID".into(), "s3cr3t".into());
        let text = format!("{c:?}");
        assert!(!text.contains("AKIA-ID") && !text.contains("s3cr3t"));
    }
}
