//! Types shared by several kinds: references, status conditions, overrides, labels.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// API group of every lakeform kind.
pub const GROUP: &str = "lakeform.dev";
/// API version of every lakeform kind.
pub const VERSION: &str = "v1alpha1";
/// Label on every object the operator creates.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "lakeform";
/// Label naming the DataLake an object belongs to.
pub const LABEL_PART_OF: &str = "app.kubernetes.io/part-of";
/// Field manager used for every server-side apply.
pub const FIELD_MANAGER: &str = "lakeform";

/// Condition type that sums up whether an object is fully reconciled.
pub const CONDITION_READY: &str = "Ready";

/// Reference to another lakeform object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Name of the referenced object, in the same namespace as the referrer.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// Reference to one key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the referrer.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// S3-style access key pair read from a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsRef {
    /// Name of the Secret holding the access key pair. Its values are never copied into
    /// status, logs or events.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub secret_name: String,
    /// Key of the access key id inside the Secret.
    #[serde(default = "default_access_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_id_key: String,
    /// Key of the secret access key inside the Secret.
    #[serde(default = "default_secret_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_access_key_key: String,
}

fn default_access_key_key() -> String {
    "accessKeyId".into()
}

fn default_secret_key_key() -> String {
    "secretAccessKey".into()
}

/// Free-form object kept as given (a PodTemplateSpec patch, a SparkApplication spec, …).
///
/// The API server keeps unknown fields below this point; the operator validates the content
/// when it merges it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct FreeForm(pub Value);

impl JsonSchema for FreeForm {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FreeForm".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

/// Conditions as Kubernetes API conventions define them (`type`, `status`, `reason`,
/// `message`, `lastTransitionTime`, `observedGeneration`), keyed by type.
pub type Conditions = Vec<Condition>;

/// Set `condition` in `conditions`, keeping `lastTransitionTime` when the status did not change.
/// Returns true when anything changed.
/// Keeps the `lastTransitionTime` of `live` conditions whose status did not change, so a
/// status computed from a stale cached object does not restamp conditions that already hold.
pub fn keep_transition_times(conditions: &mut Conditions, live: &Conditions) {
    for c in conditions.iter_mut() {
        if let Some(l) = live
            .iter()
            .find(|l| l.type_ == c.type_ && l.status == c.status)
        {
            c.last_transition_time = l.last_transition_time.clone();
        }
    }
}

pub fn set_condition(conditions: &mut Conditions, condition: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            let transition = if existing.status == condition.status {
                existing.last_transition_time.clone()
            } else {
                condition.last_transition_time.clone()
            };
            let updated = Condition {
                last_transition_time: transition,
                ..condition
            };
            let changed = existing.status != updated.status
                || existing.reason != updated.reason
                || existing.message != updated.message
                || existing.observed_generation != updated.observed_generation;
            *existing = updated;
            changed
        }
        None => {
            conditions.push(condition);
            true
        }
    }
}

/// The condition of `type_` in `conditions`, if any.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Build a condition with the given status (`True`/`False`/`Unknown`), reason and message.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation,
        last_transition_time: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn set_condition_keeps_transition_time_when_status_is_unchanged() {
        let mut conds = vec![condition("Ready", true, "Ok", "fine", Some(1), at(10))];
        let changed = set_condition(
            &mut conds,
            condition("Ready", true, "Ok", "fine", Some(1), at(20)),
        );
        assert!(!changed);
        assert_eq!(conds[0].last_transition_time, at(10));

        let changed = set_condition(
            &mut conds,
            condition("Ready", false, "Broken", "bad", Some(2), at(30)),
        );
        assert!(changed);
        assert_eq!(conds[0].last_transition_time, at(30));
        assert_eq!(conds[0].reason, "Broken");
        assert_eq!(conds.len(), 1);
    }

    #[test]
    fn live_transition_times_win_when_the_status_still_holds() {
        let live = vec![
            condition("Ready", true, "Ok", "fine", Some(1), at(10)),
            condition("StorageReady", false, "Down", "no", Some(1), at(10)),
        ];
        // computed from a stale object without conditions: everything stamped "now"
        let mut conds = vec![
            condition("Ready", true, "Ok", "fine", Some(1), at(20)),
            condition("StorageReady", true, "Up", "yes", Some(1), at(20)),
        ];
        keep_transition_times(&mut conds, &live);
        assert_eq!(conds[0], live[0]);
        assert_eq!(conds[1].last_transition_time, at(20));
    }

    #[test]
    fn set_condition_appends_new_types() {
        let mut conds = vec![];
        assert!(set_condition(
            &mut conds,
            condition("StorageReady", true, "Ok", "", None, at(1))
        ));
        assert!(set_condition(
            &mut conds,
            condition("Ready", false, "Waiting", "", None, at(1))
        ));
        assert_eq!(conds.len(), 2);
        assert_eq!(
            find_condition(&conds, "Ready").map(|c| c.status.as_str()),
            Some("False")
        );
    }
}
