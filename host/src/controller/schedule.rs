//! When each object runs next: refresh intervals with jitter, and capped exponential backoff
//! after errors. Pure functions of settings, object and clock, so they are tested without I/O.
//!
//! * **Refresh.** An ExternalSecret with `refreshPolicy: Periodic` (the default) re-reads its
//!   remote data every `spec.rotationInterval`, else every `--polling-interval`, counted from
//!   the time the data was read (in this process: when the oldest value the last sync used was
//!   read from KMS, which is earlier than the sync when the value came from the fetch cache;
//!   after a restart: `status.refreshTime`, so a restart keeps the rhythm instead of
//!   refreshing everything at once). Counting from the read aligns every object that shares a
//!   cached value on the moment it expires: the first of them reads it again and the rest use
//!   that read, so a remote secret costs one call per interval and a new version reaches
//!   every object within one interval (plus the jitter and the queue), not up to two. Each
//!   due time is pushed back by a jitter of up to [`JITTER_FRACTION`] of the interval but at
//!   most [`MAX_REFRESH_JITTER`], fixed per object and refresh. Objects already overdue when
//!   the controller starts are spread over the whole [`JITTER_FRACTION`] window.
//!   `OnChange`, `CreatedOnce` and `--disable-polling` have no refresh timer.
//! * **Backoff.** After a failed sync the object is retried after `--reconcile-period`, then
//!   twice that, and so on, capped at [`MAX_BACKOFF`] (never below the base); the retry time
//!   also gets up to 10 % jitter so that many objects failing on one outage do not retry in
//!   lockstep.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::api::{ExternalSecret, RefreshPolicy};

/// Largest jitter added to a refresh, as a fraction of its interval.
pub const JITTER_FRACTION: f64 = 0.1;
/// Largest jitter added to a regular refresh (the rotation delay it adds is bounded by this).
pub const MAX_REFRESH_JITTER: Duration = Duration::from_secs(1);
/// Longest wait between retries of a failing object (unless `--reconcile-period` is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The timing settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `--polling-interval`.
    pub polling_interval: Duration,
    /// `--disable-polling`.
    pub disable_polling: bool,
    /// `--reconcile-period`: the first retry delay.
    pub reconcile_period: Duration,
}

/// A number in `[0, 1)` that is fixed for `(key, salt)`: the jitter of one object's refresh.
pub fn unit_hash(key: &impl Hash, salt: u64) -> f64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    salt.hash(&mut h);
    // 53 random bits -> [0, 1).
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl Timing {
    /// The refresh interval of `es`, or `None` when it is not refreshed on a timer
    /// (`--disable-polling`, `refreshPolicy` other than `Periodic`). An unreadable
    /// `rotationInterval` falls back to the polling interval (validation reports it).
    pub fn refresh_interval(&self, es: &ExternalSecret) -> Option<Duration> {
        if self.disable_polling || es.spec.refresh_policy() != RefreshPolicy::Periodic {
            return None;
        }
        Some(
            es.spec
                .rotation_interval()
                .ok()
                .flatten()
                .unwrap_or(self.polling_interval),
        )
    }

    /// The jitter for one refresh of the object `key`: up to [`JITTER_FRACTION`] of
    /// `interval`, fixed for `(key, salt)`; callers pass the last refresh time as the salt.
    pub fn jitter(&self, key: &impl Hash, salt: u64, interval: Duration) -> Duration {
        interval.mul_f64(JITTER_FRACTION * unit_hash(key, salt))
    }

    /// The jitter of a regular refresh: like [`jitter`](Self::jitter) but within
    /// `min(JITTER_FRACTION × interval, MAX_REFRESH_JITTER)`.
    pub fn refresh_jitter(&self, key: &impl Hash, salt: u64, interval: Duration) -> Duration {
        interval
            .mul_f64(JITTER_FRACTION)
            .min(MAX_REFRESH_JITTER)
            .mul_f64(unit_hash(key, salt))
    }

    /// How long after `since_refresh` has elapsed the next refresh is due: `interval` minus
    /// the elapsed time, plus the [`refresh_jitter`](Self::refresh_jitter) (zero when overdue and `spread` is false; with
    /// `spread`, an overdue object — seen for the first time after a restart — is placed
    /// somewhere in the jitter window instead of now).
    pub fn until_refresh(
        &self,
        key: &impl Hash,
        salt: u64,
        interval: Duration,
        since_refresh: Duration,
        spread: bool,
    ) -> Duration {
        match interval.checked_sub(since_refresh) {
            Some(left) => left + self.refresh_jitter(key, salt, interval),
            None if spread => self.jitter(key, salt, interval),
            None => Duration::ZERO,
        }
    }

    /// Delay before retry number `failures` (1 for the first failure): the base doubled per
    /// failure, capped at `max(MAX_BACKOFF, base)`, plus up to 10 % jitter fixed for
    /// `(key, failures)`.
    pub fn backoff(&self, key: &impl Hash, failures: u32) -> Duration {
        let base = self.reconcile_period;
        let cap = MAX_BACKOFF.max(base);
        let exp = failures.saturating_sub(1).min(30);
        let delay = base.saturating_mul(1u32 << exp).min(cap);
        delay + delay.mul_f64(0.1 * unit_hash(key, u64::from(failures)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ExternalSecretSpec;

    fn timing() -> Timing {
        Timing {
            polling_interval: Duration::from_secs(120),
            disable_polling: false,
            reconcile_period: Duration::from_secs(5),
        }
    }

    fn es(policy: Option<RefreshPolicy>, interval: Option<&str>) -> ExternalSecret {
        let spec: ExternalSecretSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        let mut es = ExternalSecret::new("app", spec);
        es.spec.refresh_policy = policy;
        es.spec.rotation_interval = interval.map(Into::into);
        es
    }

    #[test]
    fn periodic_objects_use_their_rotation_interval_else_the_polling_interval() {
        let t = timing();
        assert_eq!(
            t.refresh_interval(&es(None, None)),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            t.refresh_interval(&es(Some(RefreshPolicy::Periodic), Some("30s"))),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            t.refresh_interval(&es(Some(RefreshPolicy::OnChange), None)),
            None
        );
        assert_eq!(
            t.refresh_interval(&es(Some(RefreshPolicy::CreatedOnce), None)),
            None
        );
        let off = Timing {
            disable_polling: true,
            ..t
        };
        assert_eq!(off.refresh_interval(&es(None, Some("30s"))), None);
    }

    #[test]
    fn jitter_stays_within_a_tenth_and_differs_between_objects() {
        let t = timing();
        let interval = Duration::from_secs(100);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let j = t.jitter(&format!("ns/es-{i}"), 7, interval);
            assert!(j < Duration::from_secs(10), "{j:?}");
            seen.insert(j.as_millis() / 500);
        }
        // 200 objects land in many different half-second buckets of the 10 s window.
        assert!(seen.len() > 15, "{}", seen.len());
        assert_eq!(t.jitter(&"a", 1, interval), t.jitter(&"a", 1, interval));
    }

    #[test]
    fn refresh_is_due_an_interval_after_the_last_one_plus_jitter() {
        let t = timing();
        let interval = Duration::from_secs(100);
        let jitter = t.jitter(&"k", 3, interval);
        let small = t.refresh_jitter(&"k", 3, interval);
        assert!(
            small < MAX_REFRESH_JITTER && small < jitter,
            "{small:?} {jitter:?}"
        );
        assert_eq!(small, MAX_REFRESH_JITTER.mul_f64(unit_hash(&"k", 3)));
        assert_eq!(
            t.until_refresh(&"k", 3, interval, Duration::from_secs(40), false),
            Duration::from_secs(60) + small
        );
        // Short intervals: a tenth of the interval.
        let short = Duration::from_secs(4);
        assert_eq!(
            t.refresh_jitter(&"k", 3, short),
            short.mul_f64(0.1 * unit_hash(&"k", 3))
        );
        assert_eq!(
            t.until_refresh(&"k", 3, interval, Duration::from_secs(400), false),
            Duration::ZERO
        );
        assert_eq!(
            t.until_refresh(&"k", 3, interval, Duration::from_secs(400), true),
            jitter
        );
    }

    #[test]
    fn backoff_doubles_from_the_reconcile_period_and_is_capped() {
        let t = timing();
        let within = |d: Duration, base: u64| {
            d >= Duration::from_secs(base) && d <= Duration::from_secs(base).mul_f64(1.1)
        };
        assert!(within(t.backoff(&"k", 1), 5));
        assert!(within(t.backoff(&"k", 2), 10));
        assert!(within(t.backoff(&"k", 3), 20));
        assert!(within(t.backoff(&"k", 10), 300));
        assert!(within(t.backoff(&"k", u32::MAX), 300));
        let slow = Timing {
            reconcile_period: Duration::from_secs(600),
            ..t
        };
        assert!(
            within(slow.backoff(&"k", 4), 600),
            "the cap never undercuts the base"
        );
    }
}
