//! Call counters: per action, per secret for `GetSecretValue`, per error code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A snapshot of the counters (also the admin API's `GET /v1/counters` body).
///
/// Every request that reaches the service listener is counted once under its action, before
/// faults or authentication decide its fate, so "exactly N KMS calls" holds whatever the
/// answers were.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    /// All requests.
    pub total: u64,
    /// Requests per action (`GetSecretValue`, `AssumeRole`, ...; `""` when none was given).
    pub by_action: BTreeMap<String, u64>,
    /// `GetSecretValue` requests per `SecretName` parameter as sent (ARNs are counted under the
    /// name they point to).
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

    pub(crate) fn record_call(&mut self, action: &str, secret_name: Option<&str>) {
        self.total += 1;
        *self.by_action.entry(action.to_owned()).or_default() += 1;
        if let Some(name) = secret_name {
            *self
                .get_secret_value_by_secret
                .entry(name.to_owned())
                .or_default() += 1;
        }
    }

    pub(crate) fn record_signature(&mut self, version: &str) {
        *self
            .authenticated_by_signature
            .entry(version.to_owned())
            .or_default() += 1;
    }

    /// Metadata requests to `endpoint`.
    pub fn metadata(&self, endpoint: &str) -> u64 {
        self.metadata_requests.get(endpoint).copied().unwrap_or(0)
    }

    pub(crate) fn record_metadata(&mut self, endpoint: &str) {
        *self
            .metadata_requests
            .entry(endpoint.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn record_error(&mut self, code: &str) {
        *self.errors_by_code.entry(code.to_owned()).or_default() += 1;
    }
}
