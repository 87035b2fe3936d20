//! One test bed per cluster: a `coordination.k8s.io` Lease held by the test bed's holder identity.
//!
//! The holder identity is created by `up` and kept in the state file, so every later harness command of
//! the same test bed (`apply`, the scenario processes, `upgrade`) renews the same lock, and `down` releases
//! it. Another test bed on the same cluster gets [`LockError::Held`] naming the holder. A holder that
//! stopped renewing loses the lock when the lease expires.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

use crate::client::{api_message, is_conflict, is_not_found};
use crate::{LABEL_MANAGED_BY, MANAGED_BY_VALUE};

pub const LEASE_NAME: &str = "cnp-harness";
pub const LEASE_NAMESPACE: &str = "kube-system";
/// Long enough to span the gap between `harness up`, `apply` and a scenario run, which renew it.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another harness run holds this cluster: {holder} (lease {LEASE_NAMESPACE}/{LEASE_NAME}, last renewed {renewed}, expires {expires}); \
         wait for it to finish or, if it is gone, run `harness down` from its checkout or delete that Lease"
    )]
    Held {
        holder: String,
        renewed: String,
        expires: String,
    },
    #[error("cannot take the lease {LEASE_NAMESPACE}/{LEASE_NAME}: {0}")]
    Api(String),
    #[error("lost the lease {LEASE_NAMESPACE}/{LEASE_NAME}: {0}")]
    Lost(String),
}

/// A holder identity for a new test bed: user, host, process and start time.
pub fn new_holder_identity() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into());
    format!(
        "{user}@{host} pid {} started {}",
        std::process::id(),
        Timestamp::now()
    )
}

/// What to do with the lease as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    Create,
    Renew,
    /// It expired; take it over from `previous`.
    TakeOver {
        previous: String,
    },
    Held {
        holder: String,
        renewed: Option<Timestamp>,
        expires: Option<Timestamp>,
    },
}

/// Decides from the current lease (if any), our identity and the time.
pub fn decide(existing: Option<&Lease>, holder: &str, now: Timestamp) -> LeaseDecision {
    let Some(lease) = existing else {
        return LeaseDecision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let current = spec.holder_identity.unwrap_or_default();
    if current.is_empty() || current == holder {
        return LeaseDecision::Renew;
    }
    let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let expires = renewed.and_then(|r| r.checked_add(duration).ok());
    match expires {
        Some(e) if e <= now => LeaseDecision::TakeOver { previous: current },
        _ => LeaseDecision::Held {
            holder: current,
            renewed,
            expires,
        },
    }
}

fn lease_for(
    holder: &str,
    duration: Duration,
    now: Timestamp,
    previous: Option<&Lease>,
    take_over: bool,
) -> Lease {
    let old = previous.and_then(|l| l.spec.clone()).unwrap_or_default();
    let transitions = old.lease_transitions.unwrap_or(0) + i32::from(take_over);
    let mut metadata = previous
        .map(|l| l.metadata.clone())
        .unwrap_or_else(|| ObjectMeta {
            name: Some(LEASE_NAME.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            ..Default::default()
        });
    metadata
        .labels
        .get_or_insert_default()
        .insert(LABEL_MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    let acquire_time = if previous.is_none() || take_over {
        Some(MicroTime(now))
    } else {
        old.acquire_time
    };
    Lease {
        metadata,
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(duration.as_secs().min(i32::MAX as u64) as i32),
            acquire_time,
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    }
}

/// Takes or renews the lease once.
pub async fn acquire(client: &Client, holder: &str, duration: Duration) -> Result<(), LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    // A few rounds: a concurrent writer makes create/replace fail with a conflict, then we re-read.
    for _ in 0..5 {
        let existing = api
            .get_opt(LEASE_NAME)
            .await
            .map_err(|e| LockError::Api(api_message(&e)))?;
        let now = Timestamp::now();
        let result = match decide(existing.as_ref(), holder, now) {
            LeaseDecision::Create => {
                api.create(
                    &PostParams::default(),
                    &lease_for(holder, duration, now, None, false),
                )
                .await
            }
            LeaseDecision::Renew => {
                api.replace(
                    LEASE_NAME,
                    &PostParams::default(),
                    &lease_for(holder, duration, now, existing.as_ref(), false),
                )
                .await
            }
            LeaseDecision::TakeOver { .. } => {
                api.replace(
                    LEASE_NAME,
                    &PostParams::default(),
                    &lease_for(holder, duration, now, existing.as_ref(), true),
                )
                .await
            }
            LeaseDecision::Held {
                holder,
                renewed,
                expires,
            } => {
                let text = |t: Option<Timestamp>| {
                    t.map(|t| t.to_string()).unwrap_or_else(|| "never".into())
                };
                return Err(LockError::Held {
                    holder,
                    renewed: text(renewed),
                    expires: text(expires),
                });
            }
        };
        match result {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(LockError::Api(api_message(&e))),
        }
    }
    Err(LockError::Api(
        "the lease kept changing under us; try again".into(),
    ))
}

/// Deletes the lease if we hold it (a lease held by someone else is left alone).
pub async fn release(client: &Client, holder: &str) -> Result<(), LockError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    match api
        .get_opt(LEASE_NAME)
        .await
        .map_err(|e| LockError::Api(api_message(&e)))?
    {
        Some(l) if l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(holder) => {
            match api.delete(LEASE_NAME, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(LockError::Api(api_message(&e))),
            }
        }
        _ => Ok(()),
    }
}

/// Holds the lease for the life of a command: takes it, then renews it every third of its duration until
/// dropped.
pub struct LockGuard {
    task: tokio::task::JoinHandle<()>,
    lost: Arc<Mutex<Option<String>>>,
}

impl LockGuard {
    pub async fn acquire(
        client: &Client,
        holder: &str,
        duration: Duration,
    ) -> Result<Self, LockError> {
        acquire(client, holder, duration).await?;
        let lost = Arc::new(Mutex::new(None));
        let (client, holder, flag) = (client.clone(), holder.to_string(), lost.clone());
        let period = (duration / 3).max(Duration::from_secs(1));
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticker.tick().await;
                if let Err(e) = acquire(&client, &holder, duration).await {
                    *flag.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    return;
                }
            }
        });
        Ok(Self { task, lost })
    }

    /// Fails if a renewal failed (someone else may hold the cluster now).
    pub fn check(&self) -> Result<(), LockError> {
        match self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(why) => Err(LockError::Lost(why)),
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: Timestamp, secs: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(secs),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn lease_is_created_when_absent_and_renewed_by_its_holder() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "me", now), LeaseDecision::Create);
        assert_eq!(
            decide(Some(&lease("me", now, 60)), "me", now),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn live_lease_of_another_holder_is_held_and_names_it() {
        let now = Timestamp::now();
        let renewed = now.checked_sub(SignedDuration::from_secs(10)).unwrap();
        match decide(Some(&lease("ci@runner pid 7", renewed, 60)), "me", now) {
            LeaseDecision::Held {
                holder,
                renewed: r,
                expires,
            } => {
                assert_eq!(holder, "ci@runner pid 7");
                assert_eq!(r, Some(renewed));
                assert_eq!(
                    expires,
                    Some(renewed.checked_add(SignedDuration::from_secs(60)).unwrap())
                );
            }
            other => panic!("expected Held, got {other:?}"),
        }
    }

    #[test]
    fn expired_lease_of_another_holder_is_taken_over() {
        let now = Timestamp::now();
        let renewed = now.checked_sub(SignedDuration::from_secs(120)).unwrap();
        assert_eq!(
            decide(Some(&lease("old", renewed, 60)), "me", now),
            LeaseDecision::TakeOver {
                previous: "old".into()
            }
        );
    }

    #[test]
    fn take_over_counts_a_transition_and_resets_acquire_time() {
        let now = Timestamp::now();
        let old = lease(
            "old",
            now.checked_sub(SignedDuration::from_secs(120)).unwrap(),
            60,
        );
        let new = lease_for("me", Duration::from_secs(30), now, Some(&old), true);
        let spec = new.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_duration_seconds, Some(30));
        assert_eq!(
            new.metadata.labels.unwrap()[LABEL_MANAGED_BY],
            MANAGED_BY_VALUE
        );
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::fake_api::{self, not_found};

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

    #[tokio::test]
    async fn acquire_creates_the_lease_when_absent() {
        let (client, log) = fake_api::client(|r| match r.method.as_str() {
            "GET" => not_found(),
            _ => (201, r.body.clone()),
        });
        acquire(&client, "me@host", Duration::from_secs(60))
            .await
            .unwrap();
        let reqs = fake_api::requests(&log);
        assert!(reqs[0].is("GET", &format!("{PATH}/{LEASE_NAME}")));
        assert!(reqs[1].is("POST", PATH), "{:?}", reqs[1]);
        assert_eq!(reqs[1].body["spec"]["holderIdentity"], "me@host");
        assert_eq!(reqs[1].body["spec"]["leaseDurationSeconds"], 60);
    }

    #[tokio::test]
    async fn acquire_fails_naming_the_holder_of_a_live_lease_and_writes_nothing() {
        let held = serde_json::to_value(Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("ci@runner pid 9".into()),
                renew_time: Some(MicroTime(Timestamp::now())),
                lease_duration_seconds: Some(3600),
                ..Default::default()
            }),
        })
        .unwrap();
        let (client, log) = fake_api::client(move |_| (200, held.clone()));
        let err = acquire(&client, "me@host", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("ci@runner pid 9"), "{err}");
        assert!(fake_api::requests(&log).iter().all(|r| r.method == "GET"));
    }

    #[tokio::test]
    async fn release_leaves_a_lease_held_by_someone_else() {
        let held = serde_json::json!({"metadata": {"name": LEASE_NAME}, "spec": {"holderIdentity": "other"}});
        let (client, log) = fake_api::client(move |_| (200, held.clone()));
        release(&client, "me").await.unwrap();
        assert!(fake_api::requests(&log).iter().all(|r| r.method == "GET"));
    }
}
