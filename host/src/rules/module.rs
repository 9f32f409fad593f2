//! [`RuleModule`]: a compiled, checked rule module and its typed hook calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use kmsync_guest_sdk::abi::{
    Envelope, FilterInput, FilterOutput, RotateAction, RotateDecision, RotateInput, TransformInput,
    TransformOutput, ValidateConfigInput, ValidateConfigOutput,
};
use kmsync_guest_sdk::{DataValue, Hook, Metadata, is_valid_secret_key};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::ModuleExport;
use zeroize::Zeroizing;

use super::call::{self, CallContext, CallError, CallStats, truncate};
use super::engine::Shared;
use super::load::ModuleInfo;
use crate::value::SecretBytes;

/// Longest `requeueAfter` a rotate hook may ask for, seconds (7 days).
pub const MAX_REQUEUE_SECONDS: u64 = 7 * 24 * 3600;

/// A loaded rule module: compiled once (per sha256), instantiated fresh for every call.
/// Share it as `Arc<RuleModule>`; calls may run concurrently (bounded by the engine).
pub struct RuleModule {
    pub(crate) name: Arc<str>,
    pub(crate) sha256: [u8; 32],
    pub(crate) metadata: Metadata,
    pub(crate) info: ModuleInfo,
    pub(crate) ctx: CallContext,
    pub(crate) hooks: BTreeMap<Hook, ModuleExport>,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for RuleModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleModule")
            .field("name", &self.name)
            .field("sha256", &self.sha256_hex())
            .field("hooks", &self.hooks.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The data a `transform` produced, as Secret bytes (base64 values decoded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransformResult {
    /// Secret key -> value. Keys are valid Secret keys.
    pub data: BTreeMap<String, SecretBytes>,
}

/// A hook call's raw result, for tools (`kmsync rules run` / `test`): the validated output
/// JSON (the envelope's `ok` value) or the error, and what the call used.
#[derive(Debug)]
pub struct RawCall {
    /// The hook's output, after the same checks as the typed calls.
    pub result: Result<serde_json::Value, CallError>,
    /// Time, memory, logs.
    pub stats: CallStats,
}

fn cut_key(key: &str) -> String {
    truncate(key.to_owned(), 64)
}

impl RuleModule {
    /// Display name: the metadata name (e.g. `jmespath`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// sha256 of the module bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// sha256 as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The module's metadata section.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Imports, exports, sizes.
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// True when the module implements `hook`.
    pub fn implements(&self, hook: Hook) -> bool {
        self.hooks.contains_key(&hook)
    }

    /// Runs `transform`. Output keys are checked to be valid Secret keys and base64 values
    /// decoded.
    ///
    /// Errors: any [`CallError`]; `InvalidKey` for a bad key, `BadOutput` for bad base64.
    pub async fn transform(&self, input: &TransformInput) -> Result<TransformResult, CallError> {
        let (out, _) = self
            .call_typed::<_, TransformOutput>(Hook::Transform, input)
            .await;
        self.check_transform(out?)
    }

    /// Runs `filter`; the kept keys are checked to be a subset of `input.keys` (duplicates
    /// removed, input order kept).
    pub async fn filter(&self, input: &FilterInput) -> Result<FilterOutput, CallError> {
        let (out, _) = self
            .call_typed::<_, FilterOutput>(Hook::Filter, input)
            .await;
        self.check_filter(input, out?)
    }

    /// Runs `rotate`; `defer` must carry `requeueAfter` in 1..=7 days.
    pub async fn rotate(&self, input: &RotateInput) -> Result<RotateDecision, CallError> {
        let (out, _) = self
            .call_typed::<_, RotateDecision>(Hook::Rotate, input)
            .await;
        self.check_rotate(out?)
    }

    /// Runs `validate_config`. A module without the hook accepts every config.
    pub async fn validate_config(&self, config: &serde_json::Value) -> Result<(), CallError> {
        if !self.implements(Hook::ValidateConfig) {
            return Ok(());
        }
        let input = ValidateConfigInput {
            config: config.clone(),
        };
        let (out, _) = self
            .call_typed::<_, ValidateConfigOutput>(Hook::ValidateConfig, &input)
            .await;
        out.map(|_| ())
    }

    /// Runs `hook` on a raw input document (any JSON; the guest checks its shape) and applies
    /// the same output checks as the typed calls. For tools; the sync pipeline uses the typed
    /// methods.
    pub async fn call_json(&self, hook: Hook, input: &serde_json::Value) -> RawCall {
        let (out, stats) = self.call_typed::<_, serde_json::Value>(hook, input).await;
        let result = out.and_then(|value| self.check_value(hook, input, value));
        RawCall { result, stats }
    }

    fn check_value(
        &self,
        hook: Hook,
        input: &serde_json::Value,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        let bad = |e: serde_json::Error| CallError::BadOutput {
            rule: self.name.clone(),
            hook,
            detail: kmsync_guest_sdk::__private::describe_json_error(&e),
        };
        match hook {
            Hook::Transform => {
                let out: TransformOutput = serde_json::from_value(value).map_err(bad)?;
                self.check_transform(out.clone())?;
                serde_json::to_value(&out).map_err(bad)
            }
            Hook::Filter => {
                let out: FilterOutput = serde_json::from_value(value).map_err(bad)?;
                let keys = input
                    .get("keys")
                    .cloned()
                    .and_then(|k| serde_json::from_value::<Vec<String>>(k).ok())
                    .unwrap_or_default();
                let filter_input = FilterInput {
                    keys,
                    ..Default::default()
                };
                let out = self.check_filter(&filter_input, out)?;
                serde_json::to_value(&out).map_err(bad)
            }
            Hook::Rotate => {
                let out: RotateDecision = serde_json::from_value(value).map_err(bad)?;
                let out = self.check_rotate(out)?;
                serde_json::to_value(&out).map_err(bad)
            }
            Hook::ValidateConfig => {
                let out: ValidateConfigOutput = serde_json::from_value(value).map_err(bad)?;
                serde_json::to_value(&out).map_err(bad)
            }
        }
    }

    fn check_transform(&self, out: TransformOutput) -> Result<TransformResult, CallError> {
        let mut data = BTreeMap::new();
        for (key, value) in out.data {
            if !is_valid_secret_key(&key) {
                return Err(CallError::InvalidKey {
                    rule: self.name.clone(),
                    key: cut_key(&key),
                });
            }
            let bytes = match &value {
                DataValue::Text(v) => v.expose().as_bytes().to_vec(),
                DataValue::Base64(v) => base64::engine::general_purpose::STANDARD
                    .decode(v.expose())
                    .map_err(|_| CallError::BadOutput {
                        rule: self.name.clone(),
                        hook: Hook::Transform,
                        detail: format!("the value of key {:?} is not valid base64", cut_key(&key)),
                    })?,
            };
            data.insert(key, SecretBytes::new(bytes));
        }
        Ok(TransformResult { data })
    }

    fn check_filter(
        &self,
        input: &FilterInput,
        out: FilterOutput,
    ) -> Result<FilterOutput, CallError> {
        let given: BTreeSet<&str> = input.keys.iter().map(String::as_str).collect();
        let mut seen = BTreeSet::new();
        let mut keep = Vec::with_capacity(out.keep.len());
        for key in out.keep {
            if !given.contains(key.as_str()) {
                return Err(CallError::UnknownKey {
                    rule: self.name.clone(),
                    key: cut_key(&key),
                });
            }
            if seen.insert(key.clone()) {
                keep.push(key);
            }
        }
        Ok(FilterOutput { keep })
    }

    fn check_rotate(&self, out: RotateDecision) -> Result<RotateDecision, CallError> {
        let bad = |detail: String| CallError::BadOutput {
            rule: self.name.clone(),
            hook: Hook::Rotate,
            detail,
        };
        match (out.action, out.requeue_after) {
            (RotateAction::Defer, None) => {
                return Err(bad("`defer` needs requeueAfter (seconds)".into()));
            }
            (_, Some(0)) => return Err(bad("requeueAfter must be at least 1 second".into())),
            (_, Some(s)) if s > MAX_REQUEUE_SECONDS => {
                return Err(bad(format!(
                    "requeueAfter {s} is over the limit of {MAX_REQUEUE_SECONDS} seconds (7 days)"
                )));
            }
            _ => {}
        }
        Ok(RotateDecision {
            reason: truncate(out.reason, 1024),
            ..out
        })
    }

    /// Serialises `input`, runs the hook, parses the envelope as `O`.
    async fn call_typed<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        hook: Hook,
        input: &I,
    ) -> (Result<O, CallError>, CallStats) {
        let Some(export) = self.hooks.get(&hook).cloned() else {
            return (
                Err(CallError::HookNotImplemented {
                    rule: self.name.clone(),
                    hook,
                }),
                CallStats::default(),
            );
        };
        let input = match serde_json::to_vec(input) {
            Ok(v) => Zeroizing::new(v),
            Err(_) => {
                return (
                    Err(CallError::Input {
                        rule: self.name.clone(),
                        hook,
                    }),
                    CallStats::default(),
                );
            }
        };
        let (raw, stats) = self.invoke(hook, export, input).await;
        let out = raw.and_then(|bytes| self.parse_envelope::<O>(hook, &bytes));
        if let Some(observe) = self.shared.observer.get() {
            observe(hook, out.as_ref().err(), &stats);
        }
        (out, stats)
    }

    fn parse_envelope<O: DeserializeOwned>(
        &self,
        hook: Hook,
        bytes: &[u8],
    ) -> Result<O, CallError> {
        match serde_json::from_slice::<Envelope<O>>(bytes) {
            Ok(Envelope::Ok(o)) => Ok(o),
            Ok(Envelope::Error(e)) => Err(CallError::Rule {
                rule: self.name.clone(),
                code: truncate(e.code, 64),
                message: truncate(e.message, 1024),
            }),
            Err(e) => Err(CallError::BadOutput {
                rule: self.name.clone(),
                hook,
                detail: kmsync_guest_sdk::__private::describe_json_error(&e),
            }),
        }
    }

    /// Takes a concurrency permit, then runs the call on a blocking thread.
    async fn invoke(
        &self,
        hook: Hook,
        export: ModuleExport,
        input: Zeroizing<Vec<u8>>,
    ) -> (Result<Zeroizing<Vec<u8>>, CallError>, CallStats) {
        let permit = match self.shared.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => {
                return (
                    Err(CallError::Engine {
                        rule: self.name.clone(),
                        detail: "the rule engine is shut down".into(),
                    }),
                    CallStats::default(),
                );
            }
        };
        let ctx = self.ctx.clone();
        let span = tracing::debug_span!("rule_call", rule = %self.name, %hook);
        let task = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let out = call::run(&ctx, hook, &export, &input);
            drop(permit);
            out
        });
        match task.await {
            Ok(out) => out,
            Err(e) => (
                Err(CallError::Engine {
                    rule: self.name.clone(),
                    detail: format!("the call's thread failed: {e}"),
                }),
                CallStats::default(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn modules_and_results_can_cross_threads() {
        assert_send_sync::<RuleModule>();
        assert_send_sync::<TransformResult>();
        assert_send_sync::<CallError>();
        assert_send_sync::<super::super::RuleEngine>();
    }
}
