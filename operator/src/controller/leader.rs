//! Leader election with a `coordination.k8s.io/v1` Lease, so that two replicas never both write.
//!
//! The holder renews the lease every `renew`; a lease not renewed for `duration` may be taken
//! over. Updates use the Lease's resourceVersion (optimistic concurrency), so two candidates
//! racing for an expired lease cannot both win.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// Settings of one election.
#[derive(Debug, Clone)]
pub struct Election {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This candidate's identity.
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the holder renews (and candidates retry).
    pub renew: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Outcome of one attempt.
enum Attempt {
    Leader,
    Follower(String),
}

impl Election {
    fn api(&self, client: &Client) -> Api<Lease> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    fn err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    fn spec(&self, now: Timestamp, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    async fn try_acquire(&self, client: &Client) -> Result<Attempt, LeaderError> {
        let api = self.api(client);
        let now = Timestamp::now();
        let Some(mut lease) = api.get_opt(&self.name).await.map_err(|e| self.err(e))? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, 0, None)),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leader),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Follower(String::new())),
                Err(e) => Err(self.err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec
            .renew_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let valid_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        let expired =
            now.as_millisecond() - renewed.as_millisecond() > valid_for.as_millis() as i64;
        if holder != self.identity && !holder.is_empty() && !expired {
            return Ok(Attempt::Follower(holder));
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.identity);
        let acquired = (holder == self.identity)
            .then_some(spec.acquire_time)
            .flatten();
        lease.spec = Some(self.spec(now, transitions, acquired));
        match api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Leader),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Follower(holder)),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Block until this candidate holds the lease, then keep renewing it in the background.
    /// The returned receiver turns `false` when leadership is lost (the caller must stop).
    pub async fn acquire(self, client: Client) -> watch::Receiver<bool> {
        loop {
            match self.try_acquire(&client).await {
                Ok(Attempt::Leader) => break,
                Ok(Attempt::Follower(holder)) => {
                    tracing::info!(lease = %self.name, %holder, "waiting for leadership");
                }
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.renew).await;
        }
        tracing::info!(lease = %self.name, identity = %self.identity, "acquired leadership");
        let (tx, rx) = watch::channel(true);
        tokio::spawn(async move {
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(self.renew).await;
                match self.try_acquire(&client).await {
                    Ok(Attempt::Leader) => last_renewed = tokio::time::Instant::now(),
                    Ok(Attempt::Follower(holder)) => {
                        tracing::error!(%holder, "lost leadership to another replica");
                        let _ = tx.send(false);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lease renewal failed");
                        if last_renewed.elapsed() > self.duration {
                            tracing::error!("lease expired without renewal; stopping");
                            let _ = tx.send(false);
                            return;
                        }
                    }
                }
            }
        });
        rx
    }
}
