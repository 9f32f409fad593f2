//! Caching and refreshing temporary credentials: [`Refreshing`] wraps a
//! [`CredentialsFetcher`] (one STS or metadata call, no caching) into a
//! [`CredentialsProvider`].
//!
//! ```text
//!   callers ──credentials()──▶ fresh cached value? ──yes──▶ return it (no await, no lock)
//!                                   │ no
//!                                   ▼
//!                     refresh lock (one refresh in flight; the others wait for it)
//!                                   │
//!              fresh now? ──yes──▶ return it   (a concurrent caller refreshed meanwhile)
//!                                   │ no
//!              backing off? ──yes──▶ still-valid cached value, or BackingOff(last error)
//!                                   │ no
//!                             fetcher.fetch()
//!                        ok ──▶ cache, clear error, reset backoff
//!                     error ──▶ remember error, back off exponentially (capped);
//!                               return the still-valid cached value if any, else the error
//! ```
//!
//! "Fresh" means more than [`RefreshPolicy::refresh_before`] (default 180 s, as the official SDKs:
//! `credentials-go` `needUpdateCredential`) before `Expiration`; "still valid" means more than
//! [`RefreshPolicy::min_remaining`] before it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rand::Rng;
use tokio::time::Instant;

use super::{Credentials, CredentialsError, CredentialsProvider};

/// When to refresh and how to back off. `Default`: refresh 180 s before expiry, keep using
/// credentials until 10 s before expiry, back off 1 s, 2 s, 4 s, ... up to 60 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Refresh when less than this remains before `Expiration`.
    pub refresh_before: Duration,
    /// Credentials with less than this left are not handed out, even when a refresh failed
    /// (a request signed now must still be valid when it arrives).
    pub min_remaining: Duration,
    /// Delay after the first failed refresh; doubled after each further failure.
    pub backoff_base: Duration,
    /// Longest delay between failed refreshes.
    pub backoff_max: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            refresh_before: Duration::from_secs(180),
            min_remaining: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl RefreshPolicy {
    /// The delay after `failures` consecutive failures (1-based): `backoff_base * 2^(failures-1)`
    /// capped at `backoff_max`, minus up to 20 % random jitter (so that providers that failed
    /// together do not retry in lockstep).
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let full = self
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        let jitter = rand::rng().random_range(0.0..0.2);
        full.mul_f64(1.0 - jitter)
    }
}

/// One fetch of fresh credentials (an STS call, a metadata read), without caching.
#[async_trait]
pub trait CredentialsFetcher: Send + Sync + fmt::Debug {
    /// Fetches new credentials.
    ///
    /// # Errors
    /// [`CredentialsError`] describing the failed step.
    async fn fetch(&self) -> Result<Credentials, CredentialsError>;

    /// Short provider name (`assume_role`, `oidc_role`, `ecs_ram_role`, ...).
    fn name(&self) -> &'static str;

    /// The provider this one builds on (e.g. the credentials `AssumeRole` is signed with).
    fn upstream(&self) -> Option<&Arc<dyn CredentialsProvider>> {
        None
    }
}

#[derive(Default)]
struct CacheState {
    current: Option<Credentials>,
    last_error: Option<Arc<CredentialsError>>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// A caching, refreshing [`CredentialsProvider`] around a [`CredentialsFetcher`] (see the
/// module docs). Counts fetch attempts ([`fetches`](Self::fetches)).
pub struct Refreshing<F> {
    fetcher: F,
    policy: RefreshPolicy,
    state: Mutex<CacheState>,
    refresh_lock: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl<F: CredentialsFetcher> fmt::Debug for Refreshing<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Refreshing")
            .field("fetcher", &self.fetcher)
            .field("policy", &self.policy)
            .field(
                "expiration",
                &state.current.as_ref().and_then(|c| c.expiration),
            )
            .field("failures", &state.failures)
            .finish_non_exhaustive()
    }
}

impl<F: CredentialsFetcher> Refreshing<F> {
    /// Wraps `fetcher`; nothing is fetched until the first [`credentials`] call.
    ///
    /// [`credentials`]: CredentialsProvider::credentials
    pub fn new(fetcher: F, policy: RefreshPolicy) -> Self {
        Self {
            fetcher,
            policy,
            state: Mutex::new(CacheState::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The wrapped fetcher.
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// How many fetches were attempted (successful or not).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached credentials if at least `margin` remains before they expire.
    fn cached_with(&self, margin: Duration) -> Option<Credentials> {
        let state = self.lock();
        let c = state.current.as_ref()?;
        match c.expiration {
            None => Some(c.clone()),
            Some(exp) => {
                let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
                (exp - Utc::now() > margin).then(|| c.clone())
            }
        }
    }
}

#[async_trait]
impl<F: CredentialsFetcher> CredentialsProvider for Refreshing<F> {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        if let Some(c) = self.cached_with(self.policy.refresh_before) {
            return Ok(c);
        }
        let _guard = self.refresh_lock.lock().await;
        if let Some(c) = self.cached_with(self.policy.refresh_before) {
            return Ok(c);
        }
        let backing_off = {
            let state = self.lock();
            match (state.retry_at, &state.last_error) {
                (Some(at), Some(err)) if Instant::now() < at => {
                    Some((at - Instant::now(), err.clone()))
                }
                _ => None,
            }
        };
        if let Some((retry_in, source)) = backing_off {
            return match self.cached_with(self.policy.min_remaining) {
                Some(c) => Ok(c),
                None => Err(CredentialsError::BackingOff {
                    provider: self.fetcher.name(),
                    retry_in,
                    source,
                }),
            };
        }

        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetcher.fetch().await {
            Ok(c) => {
                tracing::debug!(
                    provider = self.fetcher.name(),
                    access_key_id = %c.masked_id(),
                    expiration = ?c.expiration,
                    "fetched credentials"
                );
                let mut state = self.lock();
                state.current = Some(c.clone());
                state.last_error = None;
                state.failures = 0;
                state.retry_at = None;
                Ok(c)
            }
            Err(err) => {
                let err = Arc::new(err);
                let delay = {
                    let mut state = self.lock();
                    state.failures = state.failures.saturating_add(1);
                    let delay = self.policy.backoff(state.failures);
                    state.retry_at = Some(Instant::now() + delay);
                    state.last_error = Some(err.clone());
                    delay
                };
                let still_valid = self.cached_with(self.policy.min_remaining);
                tracing::warn!(
                    provider = self.fetcher.name(),
                    error = %super::error_chain(err.as_ref()),
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    using_cached = still_valid.is_some(),
                    "credentials refresh failed"
                );
                match still_valid {
                    Some(c) => Ok(c),
                    None => Err(CredentialsError::RefreshFailed {
                        provider: self.fetcher.name(),
                        source: err,
                    }),
                }
            }
        }
    }

    fn name(&self) -> &'static str {
        self.fetcher.name()
    }

    fn last_refresh_error(&self) -> Option<Arc<CredentialsError>> {
        self.lock()
            .last_error
            .clone()
            .or_else(|| self.fetcher.upstream().and_then(|u| u.last_refresh_error()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use chrono::DateTime;

    use super::*;

    /// Hands out credentials valid for `lifetime`, or fails while `fail` is set.
    #[derive(Debug)]
    struct Scripted {
        lifetime: chrono::Duration,
        fail: std::sync::atomic::AtomicBool,
        calls: AtomicU32,
        delay: Duration,
    }

    impl Scripted {
        fn new(lifetime_secs: i64) -> Self {
            Self {
                lifetime: chrono::Duration::seconds(lifetime_secs),
                fail: false.into(),
                calls: AtomicU32::new(0),
                delay: Duration::ZERO,
            }
        }
    }

    #[async_trait]
    impl CredentialsFetcher for Scripted {
        async fn fetch(&self) -> Result<Credentials, CredentialsError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(CredentialsError::MissingEnv {
                    variable: "SCRIPTED_FAILURE",
                });
            }
            let exp: DateTime<Utc> = Utc::now() + self.lifetime;
            Ok(Credentials::sts(
                format!("STS.call{n}"),
                "s",
                "t",
                Some(exp),
            ))
        }

        fn name(&self) -> &'static str {
            "scripted"
        }
    }

    fn policy() -> RefreshPolicy {
        RefreshPolicy {
            refresh_before: Duration::from_secs(180),
            min_remaining: Duration::from_secs(10),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(600),
        }
    }

    #[tokio::test]
    async fn fresh_credentials_are_served_from_the_cache() {
        let p = Refreshing::new(Scripted::new(3600), policy());
        assert_eq!(p.credentials().await.unwrap().access_key_id, "STS.call1");
        assert_eq!(p.credentials().await.unwrap().access_key_id, "STS.call1");
        assert_eq!(p.fetches(), 1);
    }

    #[tokio::test]
    async fn credentials_inside_the_refresh_window_are_refreshed_before_use() {
        // 100 s left < 180 s window: every call refreshes.
        let p = Refreshing::new(Scripted::new(100), policy());
        assert_eq!(p.credentials().await.unwrap().access_key_id, "STS.call1");
        assert_eq!(p.credentials().await.unwrap().access_key_id, "STS.call2");
        assert_eq!(p.fetches(), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_still_valid_credentials_and_reports_the_error() {
        let p = Refreshing::new(Scripted::new(100), policy());
        p.credentials().await.unwrap();
        p.fetcher().fail.store(true, Ordering::SeqCst);
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id, "STS.call1", "the still-valid credentials");
        let err = p.last_refresh_error().expect("error recorded");
        assert_eq!(
            err.to_string(),
            "environment variable SCRIPTED_FAILURE is not set"
        );
        // Backing off: no new fetch, still the cached credentials.
        assert_eq!(p.credentials().await.unwrap().access_key_id, "STS.call1");
        assert_eq!(p.fetches(), 2);
    }

    #[tokio::test]
    async fn without_usable_credentials_a_failure_is_returned_then_backed_off() {
        let fetcher = Scripted::new(3600);
        fetcher.fail.store(true, Ordering::SeqCst);
        let p = Refreshing::new(fetcher, policy());
        let err = p.credentials().await.unwrap_err();
        assert!(
            matches!(err, CredentialsError::RefreshFailed { .. }),
            "{err}"
        );
        assert_eq!(
            super::super::error_chain(&err),
            "refreshing scripted credentials failed: environment variable SCRIPTED_FAILURE is not set"
        );
        let err = p.credentials().await.unwrap_err();
        assert!(
            matches!(
                err,
                CredentialsError::BackingOff {
                    provider: "scripted",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(p.fetches(), 1, "no fetch while backing off");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_and_a_success_resets_it() {
        let fetcher = Scripted::new(3600);
        fetcher.fail.store(true, Ordering::SeqCst);
        let p = Refreshing::new(
            fetcher,
            RefreshPolicy {
                backoff_base: Duration::from_secs(10),
                backoff_max: Duration::from_secs(25),
                ..policy()
            },
        );
        p.credentials().await.unwrap_err();
        tokio::time::advance(Duration::from_secs(10)).await;
        p.credentials().await.unwrap_err();
        assert_eq!(p.fetches(), 2);
        // Second delay is 16–20 s: not over after 15 s.
        tokio::time::advance(Duration::from_secs(15)).await;
        p.credentials().await.unwrap_err();
        assert_eq!(p.fetches(), 2);
        tokio::time::advance(Duration::from_secs(6)).await;
        p.fetcher().fail.store(false, Ordering::SeqCst);
        assert_eq!(p.credentials().await.unwrap().access_key_id, "STS.call3");
        assert!(p.last_refresh_error().is_none());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RefreshPolicy {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            ..RefreshPolicy::default()
        };
        for (failures, full) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)] {
            let d = p.backoff(failures);
            let full = Duration::from_secs(full);
            assert!(d <= full && d >= full.mul_f64(0.8), "{failures}: {d:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_refresh() {
        let mut fetcher = Scripted::new(3600);
        fetcher.delay = Duration::from_millis(200);
        let p = Arc::new(Refreshing::new(fetcher, policy()));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { p.credentials().await.unwrap().access_key_id })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "STS.call1");
        }
        assert_eq!(p.fetches(), 1);
    }
}
