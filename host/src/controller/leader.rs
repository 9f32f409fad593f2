//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics:
//!
//! * A candidate reads the Lease every `retry_period`. It takes the Lease when it does not
//!   exist (create), when nobody holds it (`holderIdentity` empty, as after a graceful
//!   release), or when the holder's record has not changed for `leaseDurationSeconds` as
//!   observed by this replica's own clock (so clock skew between nodes does not matter).
//!   Every write carries the `resourceVersion` it read, so two candidates cannot both win.
//! * The leader renews `renewTime` every `retry_period`. If it cannot renew for
//!   `renew_deadline` (API server unreachable, conflicts), or finds someone else holding the
//!   Lease, it has lost: [`Role::Lost`] is final and the controller stops (the pod restarts
//!   as a candidate), so two replicas never write at once.
//! * On shutdown the leader releases the Lease (empty holder, 1 s duration), so a standby
//!   takes over at its next retry instead of waiting out the lease.
//!
//! Verbs used: `get`, `create`, `update` on the one Lease (what the chart's Role grants).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use super::settings::LeaderSettings;
use super::shutdown::Shutdown;

/// This replica's part in the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Waiting for the Lease (a standby).
    Standby,
    /// Holding the Lease: reconcile.
    Leader,
    /// Held the Lease and lost it: stop reconciling and exit.
    Lost,
}

/// Why an election step failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API call failed.
    #[error("{action} Lease {namespace}/{name} failed")]
    Api {
        /// `reading`, `creating`, `renewing`, `taking over`, `releasing`.
        action: &'static str,
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The kube error.
        #[source]
        source: kube::Error,
    },
}

/// The record a candidate watches for change: who holds it, and when they last renewed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    resource_version: Option<String>,
}

/// Runs the election for one Lease (see the module docs).
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaderSettings,
    observed: Option<(Observed, Instant)>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field(
                "lease",
                &format!("{}/{}", self.settings.namespace, self.settings.name),
            )
            .field("identity", &self.settings.identity)
            .finish()
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaderElector {
    /// An elector for `settings.namespace/settings.name`.
    pub fn new(client: kube::Client, settings: LeaderSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    fn api_error(&self, action: &'static str, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            action,
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            source,
        }
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.settings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One step: acquire or renew. `Ok(true)` when this replica holds the Lease afterwards,
    /// `Ok(false)` when someone else does (or won a race).
    ///
    /// # Errors
    /// [`LeaderError`] when the API server could not be asked or refused the write for a
    /// reason other than a lost race.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let name = self.settings.name.clone();
        let me = self.settings.identity.clone();
        let current = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| self.api_error("reading", e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(self.lease_seconds()),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(self.api_error("creating", e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let observed = Observed {
            holder: holder.clone(),
            renew_time: spec.renew_time.clone(),
            resource_version: lease.metadata.resource_version.clone(),
        };
        let observed_at = match &self.observed {
            Some((o, at)) if *o == observed => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((observed, at));
                at
            }
        };
        let duration = std::time::Duration::from_secs(
            u64::try_from(
                spec.lease_duration_seconds
                    .unwrap_or(self.lease_seconds())
                    .max(1),
            )
            .unwrap_or(1),
        );
        let mine = holder.as_deref() == Some(me.as_str());
        let expired = holder.is_none() || observed_at + duration <= Instant::now();
        if !mine && !expired {
            return Ok(false);
        }
        let mut new_spec = spec.clone();
        new_spec.renew_time = Some(now());
        new_spec.lease_duration_seconds = Some(self.lease_seconds());
        if !mine {
            new_spec.holder_identity = Some(me.clone());
            new_spec.acquire_time = Some(now());
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                if !mine {
                    tracing::info!(lease = %name, previous = ?holder, "took over the Lease");
                }
                // Our own write is the record we observe now.
                self.observed = Some((
                    Observed {
                        holder: Some(me),
                        renew_time: written.spec.as_ref().and_then(|s| s.renew_time.clone()),
                        resource_version: written.metadata.resource_version.clone(),
                    },
                    Instant::now(),
                ));
                Ok(true)
            }
            Err(e) if is_conflict(&e) && !mine => Ok(false),
            Err(e) => Err(self.api_error(if mine { "renewing" } else { "taking over" }, e)),
        }
    }

    /// Gives the Lease up if this replica holds it: empty holder, 1 s duration.
    ///
    /// # Errors
    /// [`LeaderError`] when the Lease could not be read or written.
    pub async fn release(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|e| self.api_error("reading", e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.api_error("releasing", e))?;
        Ok(())
    }

    /// Runs the election until `shutdown` (releasing the Lease if held) or until leadership
    /// is lost. The returned channel carries the current [`Role`].
    pub fn spawn(
        mut self,
        shutdown: Shutdown,
    ) -> (watch::Receiver<Role>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(Role::Standby);
        let task = tokio::spawn(async move {
            let mut last_renew: Option<Instant> = None;
            loop {
                let leading = *tx.borrow() == Role::Leader;
                match self.try_acquire_or_renew().await {
                    Ok(true) => {
                        last_renew = Some(Instant::now());
                        if !leading {
                            tracing::info!(identity = %self.settings.identity, lease = %self.settings.name, "became the leader");
                            let _ = tx.send(Role::Leader);
                        }
                    }
                    Ok(false) if leading => {
                        tracing::error!(lease = %self.settings.name, "another replica holds the Lease; stopping");
                        let _ = tx.send(Role::Lost);
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let error = crate::credentials::error_chain(&e);
                        match last_renew {
                            Some(at) if leading && at.elapsed() >= self.settings.renew_deadline => {
                                tracing::error!(%error, "could not renew the Lease within the renew deadline; stopping");
                                let _ = tx.send(Role::Lost);
                                return;
                            }
                            _ => tracing::warn!(%error, "leader election step failed; retrying"),
                        }
                    }
                }
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep(self.settings.retry_period) => {}
                }
            }
            if *tx.borrow() == Role::Leader {
                match self.release().await {
                    Ok(()) => tracing::info!(lease = %self.settings.name, "released the Lease"),
                    Err(e) => {
                        tracing::warn!(error = %crate::credentials::error_chain(&e), "could not release the Lease")
                    }
                }
                let _ = tx.send(Role::Standby);
            }
        });
        (rx, task)
    }
}
