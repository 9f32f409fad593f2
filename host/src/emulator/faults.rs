//! Fault injection: throttling (every Nth call or above a QPS), 5xx answers, added latency and
//! dropped connections, optionally limited to one action and a number of occurrences.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `429 Rejected.Throttling` ("QPS Limit Exceeded"), with `x-acs-retry-after` when
    /// `retry_after_ms` is set.
    Throttle,
    /// Throttle calls beyond `qps` within each one-second window.
    ThrottleQps,
    /// Answer with HTTP `status` and `code` (default by status: 500 `InternalFailure`, 503
    /// `ServiceUnavailableTemporary`, else `InternalError`), or with an HTML page when `html`.
    Error,
    /// Wait `ms` milliseconds before handling the call (combines with other rules).
    Latency,
    /// Close the connection without answering.
    DropConnection,
}

/// One fault rule (admin API `PUT /v1/faults` takes `{"rules": [...]}`).
///
/// Matching calls are counted per rule; the rule fires on every `every_nth` matching call
/// (every call when absent), at most `times` times (unlimited when absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// What to do.
    pub kind: FaultKind,
    /// Only calls of this action (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Fire on calls N, 2N, 3N, ... of the matching calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_nth: Option<u64>,
    /// Fire at most this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// `throttle_qps`: calls allowed per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qps: Option<u32>,
    /// `throttle`, `throttle_qps`: value of `x-acs-retry-after` (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// `error`: HTTP status (400–599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `error`: error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `error`: answer with an HTML page (as a proxy would) instead of JSON.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub html: bool,
    /// `latency`: delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
}

impl FaultRule {
    /// A rule of `kind` with every option unset.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            action: None,
            every_nth: None,
            times: None,
            qps: None,
            retry_after_ms: None,
            status: None,
            code: None,
            html: false,
            ms: None,
        }
    }

    /// Throttle every matching call.
    pub fn throttle() -> Self {
        Self::new(FaultKind::Throttle)
    }

    /// Throttle above `qps` calls per second.
    pub fn throttle_qps(qps: u32) -> Self {
        Self {
            qps: Some(qps),
            ..Self::new(FaultKind::ThrottleQps)
        }
    }

    /// Answer with `status` (and the default code for it).
    pub fn error(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::new(FaultKind::Error)
        }
    }

    /// Add `ms` milliseconds of latency.
    pub fn latency(ms: u64) -> Self {
        Self {
            ms: Some(ms),
            ..Self::new(FaultKind::Latency)
        }
    }

    /// Drop the connection.
    pub fn drop_connection() -> Self {
        Self::new(FaultKind::DropConnection)
    }

    /// Only for `action`.
    pub fn for_action(mut self, action: &str) -> Self {
        self.action = Some(action.to_owned());
        self
    }

    /// Fire on every `n`th matching call.
    pub fn every_nth(mut self, n: u64) -> Self {
        self.every_nth = Some(n);
        self
    }

    /// Fire at most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Send `x-acs-retry-after: ms`.
    pub fn retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// Checks that the fields the kind needs are present and sane.
    ///
    /// # Errors
    /// A static description of the problem.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.every_nth == Some(0) {
            return Err("every_nth must be at least 1");
        }
        match self.kind {
            FaultKind::ThrottleQps if self.qps.is_none() => Err("throttle_qps needs qps"),
            FaultKind::Error => match self.status {
                Some(s) if (400..600).contains(&s) => Ok(()),
                _ => Err("error needs a status from 400 to 599"),
            },
            FaultKind::Latency if self.ms.is_none() => Err("latency needs ms"),
            _ => Ok(()),
        }
    }
}

/// What the emulator must do to one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultOutcome {
    pub delay: Duration,
    pub terminal: Option<Terminal>,
    pub fired: u64,
}

/// A fault that replaces the normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Terminal {
    Throttle {
        retry_after_ms: Option<u64>,
    },
    Error {
        status: u16,
        code: String,
        html: bool,
    },
    Drop,
}

#[derive(Debug)]
struct RuleState {
    rule: FaultRule,
    seen: u64,
    fired: u64,
    window_start: Option<Instant>,
    window_count: u32,
}

/// The active rules and their counters.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    rules: Vec<RuleState>,
}

impl FaultState {
    pub fn set(&mut self, rules: Vec<FaultRule>) {
        self.rules = rules
            .into_iter()
            .map(|rule| RuleState {
                rule,
                seen: 0,
                fired: 0,
                window_start: None,
                window_count: 0,
            })
            .collect();
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules.iter().map(|r| r.rule.clone()).collect()
    }

    /// Evaluates every rule for one call of `action` at `now`. Latencies add up; the first
    /// terminal fault wins (later rules still count the call).
    pub fn evaluate(&mut self, action: &str, now: Instant) -> FaultOutcome {
        let mut out = FaultOutcome::default();
        for st in &mut self.rules {
            if st.rule.action.as_deref().is_some_and(|a| a != action) {
                continue;
            }
            st.seen += 1;
            if st.rule.times.is_some_and(|t| st.fired >= t) {
                continue;
            }
            let fires = match st.rule.kind {
                FaultKind::ThrottleQps => {
                    let fresh = st
                        .window_start
                        .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1));
                    if fresh {
                        st.window_start = Some(now);
                        st.window_count = 0;
                    }
                    st.window_count = st.window_count.saturating_add(1);
                    st.window_count > st.rule.qps.unwrap_or(u32::MAX)
                }
                _ => st.rule.every_nth.is_none_or(|n| st.seen % n == 0),
            };
            if !fires {
                continue;
            }
            let terminal = match st.rule.kind {
                FaultKind::Latency => {
                    st.fired += 1;
                    out.fired += 1;
                    out.delay += Duration::from_millis(st.rule.ms.unwrap_or(0));
                    continue;
                }
                FaultKind::Throttle | FaultKind::ThrottleQps => Terminal::Throttle {
                    retry_after_ms: st.rule.retry_after_ms,
                },
                FaultKind::Error => {
                    let status = st.rule.status.unwrap_or(500);
                    let code = st.rule.code.clone().unwrap_or_else(|| {
                        match status {
                            500 => "InternalFailure",
                            503 => "ServiceUnavailableTemporary",
                            _ => "InternalError",
                        }
                        .to_owned()
                    });
                    Terminal::Error {
                        status,
                        code,
                        html: st.rule.html,
                    }
                }
                FaultKind::DropConnection => Terminal::Drop,
            };
            if out.terminal.is_none() {
                st.fired += 1;
                out.fired += 1;
                out.terminal = Some(terminal);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_and_times_limit_when_rules_fire() {
        let mut f = FaultState::default();
        f.set(vec![
            FaultRule::throttle()
                .every_nth(2)
                .times(2)
                .for_action("GetSecretValue"),
        ]);
        let now = Instant::now();
        let fired: Vec<bool> = (0..8)
            .map(|_| f.evaluate("GetSecretValue", now).terminal.is_some())
            .collect();
        assert_eq!(
            fired,
            vec![false, true, false, true, false, false, false, false]
        );
        assert!(f.evaluate("ListSecrets", now).terminal.is_none());
    }

    #[test]
    fn qps_throttling_counts_per_one_second_window() {
        let mut f = FaultState::default();
        f.set(vec![FaultRule::throttle_qps(2)]);
        let t0 = Instant::now();
        let fired: Vec<bool> = (0..4)
            .map(|_| f.evaluate("A", t0).terminal.is_some())
            .collect();
        assert_eq!(fired, vec![false, false, true, true]);
        assert!(
            f.evaluate("A", t0 + Duration::from_millis(1001))
                .terminal
                .is_none()
        );
    }

    #[test]
    fn latency_adds_up_and_the_first_terminal_fault_wins() {
        let mut f = FaultState::default();
        f.set(vec![
            FaultRule::latency(30),
            FaultRule::error(503),
            FaultRule::drop_connection(),
            FaultRule::latency(20),
        ]);
        let out = f.evaluate("A", Instant::now());
        assert_eq!(out.delay, Duration::from_millis(50));
        assert_eq!(
            out.terminal,
            Some(Terminal::Error {
                status: 503,
                code: "ServiceUnavailableTemporary".into(),
                html: false
            })
        );
    }

    #[test]
    fn rules_are_validated() {
        assert!(FaultRule::error(200).validate().is_err());
        assert!(FaultRule::new(FaultKind::Latency).validate().is_err());
        assert!(FaultRule::throttle().every_nth(0).validate().is_err());
        assert!(FaultRule::throttle_qps(5).validate().is_ok());
        let parsed: FaultRule =
            serde_json::from_str(r#"{"kind":"error","status":502,"html":true,"times":1}"#).unwrap();
        assert_eq!(parsed.kind, FaultKind::Error);
        assert!(parsed.html);
    }
}
