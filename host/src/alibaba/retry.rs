//! Retry policy: which failures are retried, and how long to wait.
//!
//! Retried (official advice in `shared/docs/alibaba-cloud-protocol.md`, "Quotas"): the error codes
//! `Rejected.Throttling`, `InternalFailure`, `ServiceUnavailableTemporary`, any other HTTP 5xx,
//! and failures to connect or a connection dropped before a full response. Nothing else — in
//! particular no 4xx other than throttling, no malformed 2xx bodies, and no request timeouts
//! (the attempt already used its whole deadline; the controller's requeue backoff takes over).
//!
//! Delay before retry *n* (n = 1, 2, ...) is "full jitter": uniform in
//! `[0, min(cap, base * 2^(n-1))]`. When the server sends `x-acs-retry-after` (milliseconds, as
//! the Python SDK reads it in `Utils.get_throttling_time_left`) or a standard `Retry-After`
//! (seconds or an HTTP date, RFC 9110), that delay is used instead, limited to `cap`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use rand::Rng;

/// Backoff settings. Defaults follow the official secret clients: base 2 s, cap 10 s, up to
/// 5 retries (6 attempts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff window.
    pub base: Duration,
    /// Largest single wait, also the limit for server-requested waits.
    pub cap: Duration,
    /// Total attempts including the first (1 disables retries).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(10),
            max_attempts: 6,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Upper bound of the full-jitter window before retry number `retry` (1-based).
    pub fn window(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let window = self.base.saturating_mul(1u32 << exp);
        window.min(self.cap)
    }

    /// The wait before retry number `retry` (1-based): the server's retry-after limited to `cap`
    /// when given, else a uniformly random duration in `[0, window(retry)]`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.cap);
        }
        let window_ms = u64::try_from(self.window(retry).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=window_ms))
    }
}

/// Error codes that are retried whatever their HTTP status.
pub const RETRYABLE_CODES: [&str; 3] = [
    "Rejected.Throttling",
    "InternalFailure",
    "ServiceUnavailableTemporary",
];

/// Whether an API error with this code and HTTP status is retried (see module docs).
pub fn is_retryable_api_error(code: &str, http_status: u16) -> bool {
    RETRYABLE_CODES.contains(&code) || (500..600).contains(&http_status)
}

/// Reads a server-requested delay: `x-acs-retry-after` in milliseconds (positive integers only),
/// else `Retry-After` as seconds or an HTTP date relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(ms) = headers
        .get("x-acs-retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
    {
        return Some(Duration::from_millis(ms));
    }
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use http::HeaderValue;

    use super::*;

    #[test]
    fn retryable_codes_and_statuses_follow_the_official_advice() {
        assert!(is_retryable_api_error("Rejected.Throttling", 429));
        assert!(is_retryable_api_error("InternalFailure", 500));
        assert!(is_retryable_api_error("ServiceUnavailableTemporary", 503));
        assert!(is_retryable_api_error("SomethingNew", 502));
        assert!(!is_retryable_api_error("Forbidden.ResourceNotFound", 404));
        assert!(!is_retryable_api_error("SignatureDoesNotMatch", 400));
        assert!(!is_retryable_api_error("Forbidden.NoPermission", 403));
        assert!(!is_retryable_api_error("InvalidParameter", 400));
    }

    #[test]
    fn full_jitter_window_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(700),
            max_attempts: 10,
        };
        assert_eq!(p.window(1), Duration::from_millis(100));
        assert_eq!(p.window(2), Duration::from_millis(200));
        assert_eq!(p.window(3), Duration::from_millis(400));
        assert_eq!(p.window(4), Duration::from_millis(700));
        assert_eq!(p.window(40), Duration::from_millis(700));
        for retry in 1..6 {
            for _ in 0..50 {
                assert!(p.delay(retry, None) <= p.window(retry));
            }
        }
    }

    #[test]
    fn server_retry_after_wins_but_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_millis(1500))),
            Duration::from_millis(1500)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retry_after_headers_are_read_in_their_units() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert("x-acs-retry-after", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
        h.insert("x-acs-retry-after", HeaderValue::from_static("0"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Mon, 01 Jan 2024 00:00:05 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(5)));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }
}
