//! What controllers need about a DataLake they reference: the values of its Secrets and the
//! S3 connection its storage is reached through.
//!
//! Secret values are read here and handed to clients in memory; they never reach status,
//! events or logs (the refusals below name the Secret and its keys, never a value).

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use lakeform_api::datalake::DataLake;

use super::error::{Error, KubeResultExt, Refusal, namespace};
use crate::desired::connection::LakeEndpoints;
use crate::storage::S3Connection;

/// The value of `key` in `secret` (`data`, else `stringData`), if it is UTF-8.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

/// The Secret `ns/name`, if it exists.
pub async fn secret(client: &kube::Client, ns: &str, name: &str) -> Result<Option<Secret>, Error> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .during(|| format!("reading Secret {ns}/{name}"))
}

/// The S3 connection of `lake` as a workload of the lake sees it: the endpoint the spec
/// defines and the access key pair from the credentials Secret (values trimmed). Refused with
/// `SecretNotFound` when the Secret is missing and `InvalidSecret` when a key is missing or
/// empty; both wait for a change (a caller that watches nothing sets its own retry).
pub async fn s3_connection(
    lake: &DataLake,
    client: &kube::Client,
) -> Result<Result<S3Connection, Refusal>, Error> {
    let ns = namespace(lake)?;
    let ep = LakeEndpoints::for_lake(lake);
    let c = &ep.credentials;
    let Some(secret) = secret(client, &ns, &c.secret_name).await? else {
        return Ok(Err(Refusal::new(
            "SecretNotFound",
            format!(
                "Secret {ns}/{} with the lake's storage credentials does not exist",
                c.secret_name
            ),
        )));
    };
    let value = |key: &str| {
        secret_value(&secret, key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (value(&c.access_key_id_key), value(&c.secret_access_key_key)) {
        (Some(access_key), Some(secret_key)) => Ok(Ok(S3Connection {
            endpoint: ep.s3_endpoint,
            region: ep.region,
            path_style: ep.path_style,
            access_key,
            secret_key,
        })),
        _ => Ok(Err(Refusal::new(
            "InvalidSecret",
            format!(
                "Secret {ns}/{} needs non-empty keys {:?} and {:?}",
                c.secret_name, c.access_key_id_key, c.secret_access_key_key
            ),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn data_wins_over_string_data_and_non_utf8_is_none() {
        let secret = Secret {
            data: Some(BTreeMap::from([
                ("a".to_string(), ByteString(b"from-data".to_vec())),
                ("bad".to_string(), ByteString(vec![0xff, 0xfe])),
            ])),
            string_data: Some(BTreeMap::from([
                ("a".to_string(), "from-string-data".to_string()),
                ("b".to_string(), "only-string-data".to_string()),
            ])),
            ..Default::default()
        };
        assert_eq!(secret_value(&secret, "a").as_deref(), Some("from-data"));
        assert_eq!(secret_value(&secret, "bad"), None);
        assert_eq!(secret_value(&secret, "missing"), None);
        let only_string = Secret {
            string_data: secret.string_data.clone(),
            ..Default::default()
        };
        assert_eq!(
            secret_value(&only_string, "b").as_deref(),
            Some("only-string-data")
        );
    }
}
