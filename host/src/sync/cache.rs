//! The fetch cache shared by every ExternalSecret: one remote call per distinct secret version
//! per polling interval, however many ExternalSecrets name it.
//!
//! ```text
//!  get_or_fetch(key, fetch) ─▶ fresh value cached?  ──yes──▶ Arc<SecretValue>      (hit)
//!                                  │ no
//!                                  ▼
//!                      a call for this key in flight? ──yes──▶ wait for its result (coalesced)
//!                                  │ no
//!                                  ▼
//!               take a pull permit (per provider) ─▶ fetch() ─▶ Ok: cached for max_age
//!                                                              Err: shared with the callers
//!                                                                   waiting now, not cached
//! ```
//!
//! The key is the store identity (kind, namespace, name, uid, generation — an edited store
//! never serves another generation's values), the endpoint override, the secret name, the
//! version id / stage and whether `ExtendedConfig` was asked for. Time is tokio's clock, so
//! tests can pause it.
//!
//! [`FetchCache::disabled`] bypasses everything (no caching, no coalescing, still the pull
//! limits): the baseline the scale benchmark compares against.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use super::env::EnvError;
use crate::api::Provider;
use crate::fetch::FetchError;
use crate::kms::SecretValue;
use crate::stores::StoreIdentity;

/// Whose credentials a cached value was read with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceId {
    /// A SecretStore or ClusterSecretStore (with uid and generation).
    Store(StoreIdentity),
    /// The controller's own credentials.
    Ambient,
}

/// Identity of one remote read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FetchKey {
    /// Whose credentials.
    pub source: SourceId,
    /// KMS or OOS.
    pub provider: ProviderKey,
    /// The entry's `kmsEndpoint`, when it overrides the default.
    pub endpoint: Option<String>,
    /// KMS secret name / OOS parameter name.
    pub secret_name: String,
    /// `versionId`, when set.
    pub version_id: Option<String>,
    /// `versionStage`, when set.
    pub version_stage: Option<String>,
    /// `FetchExtendedConfig`.
    pub fetch_extended_config: bool,
}

/// [`Provider`] with `Hash`/`Ord` (for cache keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKey {
    /// KMS Secrets Manager.
    Kms,
    /// OOS encrypted parameters.
    Oos,
}

impl From<Provider> for ProviderKey {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Kms => Self::Kms,
            Provider::Oos => Self::Oos,
        }
    }
}

/// Why a read failed: no fetcher could be had for the store, or the remote call failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchFailure {
    /// The environment could not give a fetcher (store credentials, endpoint, backend).
    #[error(transparent)]
    Unavailable(EnvError),
    /// The remote call failed.
    #[error(transparent)]
    Fetch(FetchError),
}

/// Settings of a [`FetchCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchCacheConfig {
    /// How long a value is served from the cache (the controller uses its polling interval,
    /// so each distinct secret costs one call per interval). Zero disables caching and
    /// coalescing.
    pub max_age: Duration,
    /// KMS calls in flight at once (`--max-concurrent-kms-secret-pulls`, default 10).
    pub max_concurrent_kms: usize,
    /// OOS calls in flight at once (`--max-concurrent-oos-secret-pulls`, default 10).
    pub max_concurrent_oos: usize,
}

impl Default for FetchCacheConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(120),
            max_concurrent_kms: 10,
            max_concurrent_oos: 10,
        }
    }
}

/// Counters of a [`FetchCache`] (monotonic since creation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Answered from a fresh cached value.
    pub hits: u64,
    /// Answered by waiting for a call another caller had started.
    pub coalesced: u64,
    /// Remote calls made.
    pub fetches: u64,
    /// Remote calls that failed.
    pub failures: u64,
    /// Values held now (fresh or not yet purged).
    pub entries: usize,
}

/// A value from [`FetchCache::get_or_fetch`] and when it was read.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The value (shared with every caller the same call answered).
    pub value: Arc<SecretValue>,
    /// When the remote call that read it returned (tokio's clock). A cached value is up to
    /// [`FetchCacheConfig::max_age`] old; callers schedule their next refresh from here so
    /// that every user of one value refreshes right after it expires.
    pub read_at: Instant,
}

type Outcome = (Result<Arc<SecretValue>, Arc<FetchFailure>>, Instant);

struct Cell {
    once: OnceCell<Outcome>,
}

/// See the module docs. Share one per process (`Arc<FetchCache>`).
pub struct FetchCache {
    config: FetchCacheConfig,
    enabled: bool,
    cells: Mutex<HashMap<FetchKey, Arc<Cell>>>,
    next_purge: Mutex<Instant>,
    kms_permits: Arc<Semaphore>,
    oos_permits: Arc<Semaphore>,
    hits: AtomicU64,
    coalesced: AtomicU64,
    fetches: AtomicU64,
    failures: AtomicU64,
}

impl fmt::Debug for FetchCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchCache")
            .field("config", &self.config)
            .field("enabled", &self.enabled)
            .field("stats", &self.stats())
            .finish()
    }
}

impl FetchCache {
    /// A cache with `config` (a zero `max_age` disables it).
    pub fn new(config: FetchCacheConfig) -> Self {
        Self {
            enabled: !config.max_age.is_zero(),
            config,
            cells: Mutex::new(HashMap::new()),
            next_purge: Mutex::new(Instant::now() + config.max_age),
            kms_permits: Arc::new(Semaphore::new(config.max_concurrent_kms.max(1))),
            oos_permits: Arc::new(Semaphore::new(config.max_concurrent_oos.max(1))),
            hits: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// No caching and no coalescing: every request is a remote call (the pull limits still
    /// apply). The benchmark baseline.
    pub fn disabled() -> Self {
        Self::new(FetchCacheConfig {
            max_age: Duration::ZERO,
            ..FetchCacheConfig::default()
        })
    }

    /// The settings.
    pub fn config(&self) -> FetchCacheConfig {
        self.config
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            fetches: self.fetches.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            entries: self.lock().len(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FetchKey, Arc<Cell>>> {
        self.cells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value for `key`: a fresh cached one, the result of a call already in flight for
    /// the same key, or the result of `fetch()` (run at most once per key at a time, under the
    /// provider's pull limit). Successful values are kept for `max_age`; failures are handed
    /// to the callers waiting at that moment and then forgotten.
    ///
    /// # Errors
    /// The [`FetchFailure`] of the call that answered this request (shared between the
    /// callers that waited for it).
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: &FetchKey,
        fetch: F,
    ) -> Result<Fetched, Arc<FetchFailure>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretValue, FetchFailure>>,
    {
        if !self.enabled {
            let (result, read_at) = self.call(key.provider, fetch).await;
            return result.map(|value| Fetched { value, read_at });
        }
        self.purge_if_due();
        let (cell, was_ready) = {
            let now = Instant::now();
            let mut cells = self.lock();
            match cells.get(key) {
                Some(cell) if self.usable(cell, now) => (cell.clone(), cell.once.initialized()),
                _ => {
                    let cell = Arc::new(Cell {
                        once: OnceCell::new(),
                    });
                    cells.insert(key.clone(), cell.clone());
                    (cell, false)
                }
            }
        };
        let mut ran = false;
        let (result, read_at) = cell
            .once
            .get_or_init(|| {
                ran = true;
                self.call(key.provider, fetch)
            })
            .await;
        if !ran {
            let counter = if was_ready {
                &self.hits
            } else {
                &self.coalesced
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if result.is_err() {
            let mut cells = self.lock();
            if cells.get(key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                cells.remove(key);
            }
        }
        result.clone().map(|value| Fetched {
            value,
            read_at: *read_at,
        })
    }

    /// Fresh and successful, or still in flight.
    fn usable(&self, cell: &Cell, now: Instant) -> bool {
        match cell.once.get() {
            None => true,
            Some((Ok(_), at)) => now.saturating_duration_since(*at) < self.config.max_age,
            Some((Err(_), _)) => false,
        }
    }

    async fn call<F, Fut>(&self, provider: ProviderKey, fetch: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretValue, FetchFailure>>,
    {
        let permits = match provider {
            ProviderKey::Kms => &self.kms_permits,
            ProviderKey::Oos => &self.oos_permits,
        };
        // The semaphore is never closed.
        let _permit = permits.acquire().await;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = fetch().await;
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        (result.map(Arc::new).map_err(Arc::new), Instant::now())
    }

    fn purge_if_due(&self) {
        let now = Instant::now();
        {
            let mut next = self
                .next_purge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if now < *next {
                return;
            }
            *next = now + self.config.max_age;
        }
        self.lock().retain(|_, cell| self.usable(cell, now));
    }

    /// Forgets the value of one key (the next request makes a call).
    pub fn invalidate(&self, key: &FetchKey) {
        self.lock().remove(key);
    }

    /// Forgets every value read through `source` (a store was edited, deleted or its
    /// credentials rotated).
    pub fn invalidate_source(&self, source: &SourceId) {
        self.lock().retain(|k, _| &k.source != source);
    }

    /// Forgets every value read with `store`'s name, whatever its uid or generation.
    pub fn invalidate_store(&self, store: &StoreIdentity) {
        self.lock().retain(|k, _| match &k.source {
            SourceId::Store(s) => {
                !(s.kind == store.kind && s.namespace == store.namespace && s.name == store.name)
            }
            SourceId::Ambient => true,
        });
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.lock().clear();
    }
}
