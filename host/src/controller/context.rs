//! The state reconcilers share.
//!
//! * [`Shared`] exists from start-up on every replica: settings, metrics, caches, the reference
//!   index, the work queues and what this process remembers about each object. The watch
//!   handlers fill the queues even on a standby, so a new leader starts with a full queue.
//! * [`Context`] exists only while this replica leads: the Kubernetes client for writes, the
//!   sync pipeline (with the digest key, read or created once leading), the store resolver,
//!   the Event recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::caches::Caches;
use super::env::KubeEnv;
use super::events::EventRecorder;
use super::http::Health;
use super::index::{Index, ObjectKey, StoreKey};
use super::kube_source::KubeSecrets;
use super::metrics::{KindLabels, Metrics};
use super::observed::ObservedSecret;
use super::queue::WorkQueue;
use super::ratelimit::StoreBuckets;
use super::schedule::Timing;
use super::settings::Settings;
use crate::stores::{StoreIdentity, StoreResolver};
use crate::sync::Pipeline;

/// Queue and metric name of each controller.
pub mod kind {
    /// ExternalSecret.
    pub const EXTERNAL_SECRET: &str = "ExternalSecret";
    /// SecretStore and ClusterSecretStore share a queue.
    pub const STORE: &str = "SecretStore";
    /// ClusterExternalSecret.
    pub const CLUSTER_EXTERNAL_SECRET: &str = "ClusterExternalSecret";
}

/// What changes about an object wake its reconciler: spec (generation), labels and
/// annotations (`kmsync.io/force-sync`), deletion, finalizers. Status-only updates — mostly
/// the controller's own — do not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Digest of labels and annotations.
    pub revision: String,
    /// `deletionTimestamp` is set.
    pub deleting: bool,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
}

impl Trigger {
    /// The trigger of an object's metadata.
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        use sha2::{Digest, Sha256};
        let text = serde_json::json!({"l": meta.labels, "a": meta.annotations}).to_string();
        Self {
            generation: meta.generation,
            revision: hex::encode(&Sha256::digest(text.as_bytes())[..8]),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        }
    }
}

/// What this process remembers about one ExternalSecret (lost on restart; everything here can
/// be recomputed from the object, its status and its Secret).
#[derive(Clone, Debug, Default)]
pub struct EsMemo {
    /// The last trigger seen by the watch.
    pub trigger: Option<Trigger>,
    /// Failed syncs in a row (drives the backoff).
    pub failures: u32,
    /// Reconciled at least once by this process.
    pub seen: bool,
    /// When the remote data was last read successfully by this process.
    pub last_refresh: Option<DateTime<Utc>>,
    /// The target Secret as kmsync last wrote it (until the cache catches up), to tell the
    /// controller's own write from someone else's edit and to avoid acting on a stale cache.
    pub last_written: Option<Arc<ObservedSecret>>,
    /// The last `kmsync.io/force-sync` value acted on.
    pub force_value: Option<String>,
    /// The revision (`syncedResourceVersion`) this process last synced successfully.
    pub synced_revision: Option<String>,
    /// The status this process last wrote, until the cached object shows it.
    pub last_status: Option<Box<crate::api::ExternalSecretStatus>>,
}

/// What this process remembers about one store.
#[derive(Clone, Debug, Default)]
pub struct StoreMemo {
    /// The last trigger seen by the watch.
    pub trigger: Option<Trigger>,
    /// Failed checks in a row.
    pub failures: u32,
    /// The last readiness found (`None` before the first check), with its message.
    pub ready: Option<(bool, String)>,
    /// Identity of the store last checked (to forget its credentials when it goes).
    pub identity: Option<StoreIdentity>,
    /// The resourceVersions of ServiceAccounts it uses, as last seen.
    pub accounts: HashMap<(String, String), String>,
}

/// The work queues, one per controller.
#[derive(Debug, Default)]
pub struct Queues {
    /// ExternalSecrets.
    pub external_secrets: WorkQueue<ObjectKey>,
    /// SecretStores and ClusterSecretStores.
    pub stores: WorkQueue<StoreKey>,
    /// ClusterExternalSecrets.
    pub cluster_external_secrets: WorkQueue<ObjectKey>,
}

impl Queues {
    /// Closes every queue (shutdown).
    pub fn close(&self) {
        self.external_secrets.close();
        self.stores.close();
        self.cluster_external_secrets.close();
    }
}

/// State shared by watch handlers and reconcilers on every replica (see the module docs).
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub settings: Settings,
    /// Refresh and backoff timing.
    pub timing: Timing,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Reflector caches.
    pub caches: Arc<Caches>,
    /// Who refers to whom.
    pub index: Mutex<Index>,
    /// The queues.
    pub queues: Queues,
    /// Per ExternalSecret memory.
    pub memo: Mutex<HashMap<ObjectKey, EsMemo>>,
    /// Per store memory.
    pub store_memo: Mutex<HashMap<StoreKey, StoreMemo>>,
    /// Per ClusterExternalSecret triggers and failures.
    pub ces_memo: Mutex<HashMap<ObjectKey, (Option<Trigger>, u32)>>,
    /// Credential Secrets read by stores.
    pub secrets: Arc<KubeSecrets>,
    /// Probe state.
    pub health: Arc<Health>,
    /// The fetch cache, once leading (its counters feed the metrics).
    pub fetch_cache: std::sync::OnceLock<Arc<crate::sync::FetchCache>>,
    /// Cache counters already exported: (hits + coalesced, fetches).
    pub exported_cache: Mutex<(u64, u64)>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// The index, locked.
    pub fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        locked(&self.index)
    }

    /// Runs `f` on the memory of ExternalSecret `key` (created on first use).
    pub fn with_memo<R>(&self, key: &ObjectKey, f: impl FnOnce(&mut EsMemo) -> R) -> R {
        f(locked(&self.memo).entry(key.clone()).or_default())
    }

    /// A copy of the memory of ExternalSecret `key`.
    pub fn memo(&self, key: &ObjectKey) -> EsMemo {
        locked(&self.memo).get(key).cloned().unwrap_or_default()
    }

    /// Forgets ExternalSecret `key`.
    pub fn forget_memo(&self, key: &ObjectKey) {
        locked(&self.memo).remove(key);
    }

    /// Runs `f` on the memory of store `key` (created on first use).
    pub fn with_store_memo<R>(&self, key: &StoreKey, f: impl FnOnce(&mut StoreMemo) -> R) -> R {
        f(locked(&self.store_memo).entry(key.clone()).or_default())
    }

    /// Runs `f` on the trigger and failure count of ClusterExternalSecret `key`.
    pub fn with_ces_memo<R>(
        &self,
        key: &ObjectKey,
        f: impl FnOnce(&mut (Option<Trigger>, u32)) -> R,
    ) -> R {
        f(locked(&self.ces_memo).entry(key.clone()).or_default())
    }

    /// The last readiness of store `key`, if checked.
    pub fn store_ready(&self, key: &StoreKey) -> Option<(bool, String)> {
        locked(&self.store_memo)
            .get(key)
            .and_then(|m| m.ready.clone())
    }

    /// Updates the queue gauges and the fetch-cache counters.
    pub fn export_queue_metrics(&self) {
        if let Some(cache) = self.fetch_cache.get() {
            let stats = cache.stats();
            let mut last = locked(&self.exported_cache);
            let hits = stats.hits + stats.coalesced;
            self.metrics
                .fetch_cache_hits
                .inc_by(hits.saturating_sub(last.0));
            self.metrics
                .fetch_cache_misses
                .inc_by(stats.fetches.saturating_sub(last.1));
            *last = (hits.max(last.0), stats.fetches.max(last.1));
        }
        let q = &self.queues;
        for (kind, ready, pending) in [
            (
                kind::EXTERNAL_SECRET,
                q.external_secrets.ready(),
                q.external_secrets.pending(),
            ),
            (kind::STORE, q.stores.ready(), q.stores.pending()),
            (
                kind::CLUSTER_EXTERNAL_SECRET,
                q.cluster_external_secrets.ready(),
                q.cluster_external_secrets.pending(),
            ),
        ] {
            let labels = KindLabels { kind };
            self.metrics
                .queue_depth
                .get_or_create(&labels)
                .set(i64::try_from(ready).unwrap_or(i64::MAX));
            self.metrics
                .queue_pending
                .get_or_create(&labels)
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
    }
}

/// What reconcilers use while this replica leads (see the module docs).
pub struct Context {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The sync pipeline.
    pub pipeline: Pipeline,
    /// Stores to fetchers and readiness.
    pub resolver: Arc<StoreResolver>,
    /// The pipeline's environment.
    pub env: KubeEnv,
    /// Events.
    pub events: EventRecorder,
    /// Per-store token buckets.
    pub buckets: Arc<StoreBuckets>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("pipeline", &self.pipeline)
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}
