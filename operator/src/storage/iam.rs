//! MinIO users and policies for a lake's identities (`desired::identity`), through the admin
//! API with the root credentials. Bodies that carry secrets (`add-user`, `list-users`) are
//! encrypted with the root secret key ([`super::madmin`]), as `mc admin` does.
//!
//! [`sync`] makes MinIO hold exactly the desired identities among the users lakeform made
//! (access keys of the identities' shape whose policy is one of ours): one `list-users` when
//! nothing changed; a user whose attached policy name differs (the policy or the secret key
//! changed) is re-keyed and re-attached; a user no longer desired is removed with its policy.
//! Users and policies anyone else made are never touched.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::admin::{MinioAdmin, admin_error, encode};
use super::error::StorageError;
use crate::desired::identity::{Identity, POLICY_PREFIX, is_identity_key};

/// What [`sync`] changed, by access key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IamReport {
    /// Users made.
    pub created: Vec<String>,
    /// Users re-keyed or given a new policy.
    pub updated: Vec<String>,
    /// Users removed (no identity wants them).
    pub removed: Vec<String>,
}

/// A user as `list-users` describes it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// Attached policies, comma-separated.
    #[serde(default)]
    pub policy_name: String,
    /// `enabled` or `disabled`.
    #[serde(default)]
    pub status: String,
}

impl UserInfo {
    /// The attached policies.
    fn policies(&self) -> impl Iterator<Item = &str> {
        self.policy_name.split(',').filter(|p| !p.is_empty())
    }
}

/// Make the MinIO behind `st` hold exactly the `desired` lakeform users.
pub async fn sync(st: &super::Storage, desired: &[Identity]) -> Result<IamReport, StorageError> {
    let admin = &st.admin;
    let users = admin.users().await?;
    let mut report = IamReport::default();
    for id in desired {
        let want = id.policy_name();
        let live = users.get(&id.access_key);
        if live.is_some_and(|u| u.policy_name == want && u.status == "enabled") {
            continue;
        }
        admin.add_policy(&want, &id.policy).await?;
        admin.add_user(&id.access_key, &id.secret_key).await?;
        admin.attach(&want, &id.access_key).await?;
        match live {
            Some(old) => {
                for stale in ours(&id.access_key, old).filter(|p| *p != want) {
                    admin.remove_policy(stale).await?;
                }
                report.updated.push(id.access_key.clone());
            }
            None => report.created.push(id.access_key.clone()),
        }
    }
    for (access_key, user) in &users {
        let wanted = desired.iter().any(|d| &d.access_key == access_key);
        if wanted || !is_identity_key(access_key) || ours(access_key, user).next().is_none() {
            continue;
        }
        admin.remove_user(access_key).await?;
        for policy in ours(access_key, user) {
            admin.remove_policy(policy).await?;
        }
        report.removed.push(access_key.clone());
    }
    Ok(report)
}

/// The policies of `user` that lakeform named for `access_key`.
fn ours<'a>(access_key: &'a str, user: &'a UserInfo) -> impl Iterator<Item = &'a str> + 'a {
    user.policies().filter(move |p| {
        p.strip_prefix(POLICY_PREFIX)
            .is_some_and(|r| r.starts_with(access_key))
    })
}

impl MinioAdmin {
    /// Every user with its policies (`list-users`; the response is encrypted).
    pub(crate) async fn users(&self) -> Result<BTreeMap<String, UserInfo>, StorageError> {
        let body = self.iam("GET", "list-users", "", "", Vec::new()).await?;
        if body.is_empty() {
            return Ok(BTreeMap::new());
        }
        let plain = super::madmin::decrypt(self.secret_key(), &body)
            .map_err(|e| iam_error("ListUsers", "", format!("decrypting the answer: {e}")))?;
        serde_json::from_slice(&plain)
            .map_err(|e| iam_error("ListUsers", "", format!("unexpected answer: {e}")))
    }

    /// Create `access_key`, or set its secret key (`add-user`; the body is encrypted).
    pub(crate) async fn add_user(
        &self,
        access_key: &str,
        secret_key: &str,
    ) -> Result<(), StorageError> {
        let body = json!({"secretKey": secret_key, "status": "enabled"}).to_string();
        let sealed = super::madmin::encrypt(self.secret_key(), body.as_bytes())
            .map_err(|e| iam_error("AddUser", access_key, format!("encrypting: {e}")))?;
        let query = format!("accessKey={}", encode(access_key));
        self.iam("PUT", "add-user", &query, access_key, sealed)
            .await
            .map(drop)
    }

    /// Create or replace the canned policy `name`.
    pub(crate) async fn add_policy(
        &self,
        name: &str,
        policy: &serde_json::Value,
    ) -> Result<(), StorageError> {
        let query = format!("name={}", encode(name));
        let body = policy.to_string().into_bytes();
        self.iam("PUT", "add-canned-policy", &query, name, body)
            .await
            .map(drop)
    }

    /// Make `policy` the one policy of `user`.
    pub(crate) async fn attach(&self, policy: &str, user: &str) -> Result<(), StorageError> {
        let query = format!(
            "isGroup=false&policyName={}&userOrGroup={}",
            encode(policy),
            encode(user)
        );
        self.iam("PUT", "set-user-or-group-policy", &query, user, Vec::new())
            .await
            .map(drop)
    }

    /// Remove the user `access_key`.
    pub(crate) async fn remove_user(&self, access_key: &str) -> Result<(), StorageError> {
        let query = format!("accessKey={}", encode(access_key));
        self.iam("DELETE", "remove-user", &query, access_key, Vec::new())
            .await
            .map(drop)
    }

    /// Remove the canned policy `name`.
    pub(crate) async fn remove_policy(&self, name: &str) -> Result<(), StorageError> {
        let query = format!("name={}", encode(name));
        self.iam("DELETE", "remove-canned-policy", &query, name, Vec::new())
            .await
            .map(drop)
    }

    /// One IAM call; the body of a success, or the error classified (`subject`: whom it was
    /// about, for the message).
    async fn iam(
        &self,
        method: &str,
        api: &'static str,
        query: &str,
        subject: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, StorageError> {
        let (status, bytes) = self.exchange(method, api, query, body).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        let (code, message) = admin_error(status, &bytes);
        match StorageError::from_code(api, None, self.endpoint(), &code, message.clone()) {
            e @ StorageError::AccessDenied { .. } => Err(e),
            _ => Err(iam_error(api, subject, format!("{code}: {message}"))),
        }
    }
}

fn iam_error(operation: &'static str, subject: &str, message: String) -> StorageError {
    StorageError::Identity {
        operation,
        subject: subject.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_policies_named_for_the_user_are_ours() {
        let user = UserInfo {
            policy_name: "readwrite,lf-lf0123456789abcdef01-aa,lf-lfffffffffffffffffff-bb".into(),
            status: "enabled".into(),
        };
        let mine: Vec<&str> = ours("lf0123456789abcdef01", &user).collect();
        assert_eq!(mine, ["lf-lf0123456789abcdef01-aa"]);
        let none = UserInfo::default();
        assert_eq!(ours("lf0123456789abcdef01", &none).count(), 0);
    }

    #[test]
    fn list_users_answers_parse() {
        let answer = r#"{"lf0123456789abcdef01":{"policyName":"lf-lf0123456789abcdef01-aa","status":"enabled","memberOf":null},"alice":{"status":"disabled"}}"#;
        let users: BTreeMap<String, UserInfo> = serde_json::from_str(answer).expect("parses");
        assert_eq!(users["alice"].policy_name, "");
        assert_eq!(users["lf0123456789abcdef01"].status, "enabled");
    }
}
