//! Zone objects for SQL: `s3://<bucket>/…` locations (e.g. `CREATE EXTERNAL TABLE … STORED AS
//! CSV LOCATION 's3://lake-raw/landing/'`) resolve to the lake's S3 with its credentials, one
//! object_store client per bucket, created on first use. Nothing else is reachable: no local
//! files, no other endpoints.

use std::sync::Arc;

use dashmap::DashMap;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreRegistry;
use lakeform_api::connection::S3Connection;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use url::Url;

/// Buckets of the lake's S3, by `s3://<bucket>`.
pub struct LakeStores {
    s3: S3Connection,
    stores: DashMap<String, Arc<dyn ObjectStore>>,
}

impl std::fmt::Debug for LakeStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeStores")
            .field("endpoint", &self.s3.endpoint)
            .finish_non_exhaustive()
    }
}

impl LakeStores {
    pub fn new(s3: S3Connection) -> LakeStores {
        LakeStores {
            s3,
            stores: DashMap::new(),
        }
    }

    fn key(url: &Url) -> Result<String> {
        match (url.scheme(), url.host_str()) {
            ("s3" | "s3a", Some(bucket)) => Ok(format!("s3://{bucket}")),
            _ => Err(DataFusionError::Plan(format!(
                "{url}: sql steps read s3://<bucket>/… locations of the lake's storage only"
            ))),
        }
    }

    fn build(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let store = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(&self.s3.endpoint)
            .with_region(&self.s3.region)
            .with_access_key_id(&self.s3.access_key)
            .with_secret_access_key(&self.s3.secret_key)
            .with_virtual_hosted_style_request(!self.s3.path_style)
            .with_allow_http(self.s3.endpoint.starts_with("http://"))
            .build()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Arc::new(store))
    }
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        let key = Self::key(url).ok()?;
        self.stores.insert(key, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let key = Self::key(url)?;
        self.stores
            .remove(&key)
            .map(|(_, s)| s)
            .ok_or_else(|| DataFusionError::Plan(format!("no object store for {url}")))
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let key = Self::key(url)?;
        if let Some(s) = self.stores.get(&key) {
            return Ok(s.clone());
        }
        let bucket = url.host_str().unwrap_or_default();
        let store = self.build(bucket)?;
        self.stores.insert(key, store.clone());
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stores() -> LakeStores {
        LakeStores::new(S3Connection {
            endpoint: "http://127.0.0.1:9000".into(),
            region: "us-east-1".into(),
            path_style: true,
            access_key: "a".into(),
            secret_key: "b".into(),
        })
    }

    #[test]
    fn one_store_per_bucket_and_nothing_but_s3() {
        let s = stores();
        let a = s
            .get_store(&Url::parse("s3://raw/x/y.csv").expect("url"))
            .expect("store");
        let b = s
            .get_store(&Url::parse("s3://raw/other").expect("url"))
            .expect("store");
        assert!(Arc::ptr_eq(&a, &b));
        let e = s
            .get_store(&Url::parse("file:///etc/passwd").expect("url"))
            .expect_err("no files");
        assert!(e.to_string().contains("s3://<bucket>"), "{e}");
    }
}
