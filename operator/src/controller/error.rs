//! How a reconcile ends when it does not end well — one shape for every controller.
//!
//! - [`Error`]: the API server or an external service failed *us* (a request failed, a write
//!   conflicted). The object's spec may be fine; the reconcile is retried with backoff and the
//!   error is logged with what was being done.
//! - [`Refusal`]: the object cannot be made Ready as it stands (bad reference, missing Secret,
//!   storage that refuses our keys). The user is told — `Ready=False` with the refusal's reason
//!   and message, a Warning event with the same, the reason as the reconcile metric's result —
//!   and the refusal says when to look again ([`Retry`]).
//!
//! A stage that can refuse returns `Result<Result<T, Refusal>, Error>`: the outer `Err` is ours,
//! the inner one the object's.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::apply::ApplyError;
use super::context::Context;

/// Errors that end a reconcile without a verdict on the object; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done (`listing the Jobs of crawler x`).
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Server-side apply of a desired object failed (the error names the object).
    #[error(transparent)]
    Apply(Box<ApplyError>),
    /// The object is namespaced but came without a namespace (a watch of a broken client).
    #[error("{kind} {name} has no namespace")]
    NoNamespace { kind: &'static str, name: String },
    /// Anything else, said in full.
    #[error("{0}")]
    Other(String),
}

impl From<ApplyError> for Error {
    fn from(e: ApplyError) -> Self {
        Error::Apply(Box::new(e))
    }
}

impl From<kube::Error> for Error {
    /// A bare API error; prefer [`KubeResultExt::during`], which says what was being done.
    fn from(e: kube::Error) -> Self {
        Error::Kube {
            what: "Kubernetes API request".into(),
            source: Box::new(e),
        }
    }
}

/// The namespace of a namespaced object (every kind lakeform reconciles is namespaced).
pub fn namespace<K: Resource<DynamicType = ()>>(object: &K) -> Result<String, Error> {
    object
        .meta()
        .namespace
        .clone()
        .ok_or_else(|| Error::NoNamespace {
            kind: match K::kind(&()) {
                std::borrow::Cow::Borrowed(kind) => kind,
                std::borrow::Cow::Owned(_) => "object",
            },
            name: object.meta().name.clone().unwrap_or_default(),
        })
}

/// Adds what was being done to a failed API request.
pub trait KubeResultExt<T> {
    /// `api.list(..).await.during(|| format!("listing the Jobs of {name}"))?`
    fn during<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, Error>;
}

impl<T> KubeResultExt<T> for Result<T, kube::Error> {
    fn during<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, Error> {
        self.map_err(|source| Error::Kube {
            what: what().into(),
            source: Box::new(source),
        })
    }
}

/// When a refused object is looked at again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Only a change of the object (or of what it watches) can help: no requeue.
    OnChange,
    /// Something outside may change by itself (a Secret appears, storage comes back).
    After(Duration),
}

/// Why an object cannot be made Ready: its condition reason, a message for the user, and
/// when to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// CamelCase condition reason (`LakeNotFound`, `SecretNotFound`, …).
    pub reason: &'static str,
    /// What is wrong and what to do about it.
    pub message: String,
    /// When to look again.
    pub retry: Retry,
}

impl Refusal {
    /// A refusal that only a change can lift.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
            retry: Retry::OnChange,
        }
    }

    /// The same refusal, looked at again after `after`.
    pub fn retry_after(self, after: Duration) -> Self {
        Refusal {
            retry: Retry::After(after),
            ..self
        }
    }

    /// The controller's next action: requeue after the retry interval, or wait for a change.
    pub fn action(&self) -> Action {
        match self.retry {
            Retry::OnChange => Action::await_change(),
            Retry::After(d) => Action::requeue(d),
        }
    }

    /// Tell the world: a Warning event on `object` (action `action`) and the reason counted as
    /// the result of a reconcile of `kind`. The condition is the status stage's to write.
    pub async fn publish(&self, ctx: &Context, object: &ObjectReference, kind: &str, action: &str) {
        ctx.metrics.reconciled(kind, self.reason);
        self.event(ctx, object, action).await;
    }

    /// The Warning event alone (for a controller that publishes only when the condition is
    /// news, i.e. its status write changed something).
    pub async fn event(&self, ctx: &Context, object: &ObjectReference, action: &str) {
        ctx.event(
            object,
            EventType::Warning,
            self.reason,
            action,
            self.message.clone(),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_waits_for_a_change_unless_told_to_retry() {
        let r = Refusal::new("LakeNotFound", "DataLake main does not exist");
        assert_eq!(r.action(), Action::await_change());
        let r = r.retry_after(Duration::from_secs(30));
        assert_eq!(r.retry, Retry::After(Duration::from_secs(30)));
        assert_eq!(r.action(), Action::requeue(Duration::from_secs(30)));
    }

    #[test]
    fn api_errors_say_what_was_being_done() {
        let failed: Result<(), kube::Error> = Err(kube::Error::LinesCodecMaxLineLengthExceeded);
        let e = failed
            .during(|| "listing the Jobs of crawler sales")
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("listing the Jobs of crawler sales: "),
            "{e}"
        );
    }
}
