//! Call counters: per action, per secret for `GetSecretValue`, per error code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Distinct names kept per counter map; calls naming further actions or secrets (request
/// input, counted before authentication) are counted under [`OTHER`], so a client cannot grow
/// the maps without bound.
pub const MAX_COUNTER_NAMES: usize = 1024;
/// The name counting everything past [`MAX_COUNTER_NAMES`].
pub const OTHER: &str = "<other>";

/// Adds one to `name` in `map`, or to [`OTHER`] once the map holds [`MAX_COUNTER_NAMES`] names.
fn bump(map: &mut BTreeMap<String, u64>, name: &str) {
    bump_within(map, name, MAX_COUNTER_NAMES);
}

/// Adds one to `name` in `map`, or to [`OTHER`] once the map holds `limit` names.
fn bump_within(map: &mut BTreeMap<String, u64>, name: &str, limit: usize) {
    let key = if map.contains_key(name) || map.len() < limit {
        name
    } else {
        OTHER
    };
    *map.entry(key.to_owned()).or_default() += 1;
}

/// A snapshot of the counters (also the admin API's `GET /v1/counters` body).
///
/// Every request that reaches the service listener is counted once under its action, before
/// faults or authentication decide its fate, so "exactly N KMS calls" holds whatever the
/// answers were.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    /// All requests.
    pub total: u64,
    /// Requests per action (`GetSecretValue`, `AssumeRole`, ...; `""` when none was given;
    /// at most [`MAX_COUNTER_NAMES`] names, then [`OTHER`]).
    pub by_action: BTreeMap<String, u64>,
    /// `GetSecretValue` requests per `SecretName` parameter as sent (ARNs are counted under the
    /// name they point to; at most [`MAX_COUNTER_NAMES`] names — or the limit set with
    /// `EmulatorBuilder::counter_names` — then [`OTHER`]).
    pub get_secret_value_by_secret: BTreeMap<String, u64>,
    /// Error answers per code (including injected faults).
    pub errors_by_code: BTreeMap<String, u64>,
    /// Faults injected (throttles, errors, drops, delays).
    pub faults_injected: u64,
    /// Requests that passed authentication, per signature version (`v1`, `v3`).
    pub authenticated_by_signature: BTreeMap<String, u64>,
    /// Requests to the ECS metadata listener per endpoint (`token`, `role-name`,
    /// `credentials`, `other`), counted before its fault mode applies.
    #[serde(default)]
    pub metadata_requests: BTreeMap<String, u64>,
}

impl CounterSnapshot {
    /// Requests of `action`.
    pub fn action(&self, action: &str) -> u64 {
        self.by_action.get(action).copied().unwrap_or(0)
    }

    /// `GetSecretValue` requests for `secret_name`.
    pub fn secret(&self, secret_name: &str) -> u64 {
        self.get_secret_value_by_secret
            .get(secret_name)
            .copied()
            .unwrap_or(0)
    }

    /// Error answers with `code`.
    pub fn errors(&self, code: &str) -> u64 {
        self.errors_by_code.get(code).copied().unwrap_or(0)
    }

    /// Counts a call; `secret_names` bounds the per-secret map.
    pub(crate) fn record_call(
        &mut self,
        action: &str,
        secret_name: Option<&str>,
        secret_names: usize,
    ) {
        self.total += 1;
        bump(&mut self.by_action, action);
        if let Some(name) = secret_name {
            bump_within(&mut self.get_secret_value_by_secret, name, secret_names);
        }
    }

    pub(crate) fn record_signature(&mut self, version: &str) {
        bump(&mut self.authenticated_by_signature, version);
    }

    /// Metadata requests to `endpoint`.
    pub fn metadata(&self, endpoint: &str) -> u64 {
        self.metadata_requests.get(endpoint).copied().unwrap_or(0)
    }

    pub(crate) fn record_metadata(&mut self, endpoint: &str) {
        bump(&mut self.metadata_requests, endpoint);
    }

    pub(crate) fn record_error(&mut self, code: &str) {
        bump(&mut self.errors_by_code, code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_limit_are_counted_together() {
        let mut c = CounterSnapshot::default();
        for i in 0..MAX_COUNTER_NAMES + 10 {
            c.record_call("GetSecretValue", Some(&format!("s{i}")), MAX_COUNTER_NAMES);
            c.record_call(&format!("Action{i}"), None, MAX_COUNTER_NAMES);
        }
        c.record_call("GetSecretValue", Some("s0"), MAX_COUNTER_NAMES);
        assert_eq!(c.get_secret_value_by_secret.len(), MAX_COUNTER_NAMES + 1);
        assert_eq!(c.by_action.len(), MAX_COUNTER_NAMES + 1);
        assert_eq!(c.secret("s0"), 2);
        assert_eq!(c.secret(OTHER), 10);
        assert_eq!(c.action("GetSecretValue"), MAX_COUNTER_NAMES as u64 + 11);
        assert_eq!(c.total, 2 * (MAX_COUNTER_NAMES as u64 + 10) + 1);
    }
}
