//! Limits on calls to the cloud: a token bucket per store (`--kms-qps`) and semaphores on reads
//! in flight (`--max-concurrent-kms-secret-pulls`, `--max-concurrent-oos-secret-pulls`).
//!
//! The bucket counts real API calls (what KMS's quota counts), not reconciles: a reconcile
//! answered from the fetch cache takes no token. A call waits for its token rather than
//! failing; throttling answers from the service are retried with backoff by the clients on
//! top of this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, holding at most `burst`. Waiters reserve their
/// token up front (the level may go negative), so they are served in arrival order and none
/// starves.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket: `rate` per second (at least 1), burst of one second's worth.
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            burst: rate,
            state: Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes one token, waiting until it is available.
    pub async fn acquire(&self) {
        let wait = {
            let mut s = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
            s.0 = (s.0 + elapsed * self.rate).min(self.burst);
            s.1 = now;
            s.0 -= 1.0;
            if s.0 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.0 / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One bucket per store, created on first use.
#[derive(Debug)]
pub struct StoreBuckets {
    rate: u32,
    buckets: Mutex<HashMap<String, Arc<TokenBucket>>>,
}

impl StoreBuckets {
    /// Buckets of `rate` requests per second each.
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket of the store identified by `key` (`kind/namespace/name`).
    pub fn bucket(&self, key: &str) -> Arc<TokenBucket> {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(TokenBucket::new(self.rate)))
            .clone()
    }

    /// Drops the bucket of a deleted store.
    pub fn remove(&self, key: &str) {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_allows_a_burst_then_paces_calls_at_the_rate() {
        let bucket = TokenBucket::new(10);
        let start = Instant::now();
        for _ in 0..10 {
            bucket.acquire().await;
        }
        assert_eq!(Instant::now(), start, "one second's worth passes at once");
        for _ in 0..20 {
            bucket.acquire().await;
        }
        let took = Instant::now() - start;
        assert!(
            took >= Duration::from_millis(1999) && took <= Duration::from_millis(2001),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_the_rate() {
        let bucket = Arc::new(TokenBucket::new(5));
        let start = Instant::now();
        let tasks: Vec<_> = (0..15)
            .map(|_| {
                let b = bucket.clone();
                tokio::spawn(async move {
                    b.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap() - start);
        }
        done.sort();
        assert_eq!(done[4], Duration::ZERO);
        assert!(done[14] >= Duration::from_millis(1999), "{:?}", done[14]);
    }

    #[tokio::test(start_paused = true)]
    async fn stores_get_separate_buckets() {
        let buckets = StoreBuckets::new(1);
        let a = buckets.bucket("SecretStore/ns/a");
        let b = buckets.bucket("SecretStore/ns/b");
        let start = Instant::now();
        a.acquire().await;
        b.acquire().await;
        assert_eq!(Instant::now(), start);
        assert!(Arc::ptr_eq(&a, &buckets.bucket("SecretStore/ns/a")));
    }
}
