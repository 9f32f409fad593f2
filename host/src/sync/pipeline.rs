//! [`Pipeline`]: the steps of the module docs.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::cache::FetchCache;
use super::digest::DigestKey;
use super::env::SyncEnv;
use super::error::{EntryRef, SyncError};
use super::output::{CurrentState, SyncOutput};
use crate::api::{DataSource, ExternalSecret};
use crate::rules::{Context, RuleEngine};

/// Controller-wide policy of the pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineConfig {
    /// `--enable-cross-namespace-secret-store`: an ExternalSecret may name a SecretStore in
    /// another namespace. Off by default (ack-secret-manager fault #3).
    pub allow_cross_namespace_store: bool,
}

/// The sync pipeline (see the module docs). Share one per process; `sync` takes `&self` and
/// may run concurrently for many ExternalSecrets.
#[derive(Debug)]
pub struct Pipeline {
    engine: Arc<RuleEngine>,
    cache: Arc<FetchCache>,
    digest_key: DigestKey,
    config: PipelineConfig,
}

impl Pipeline {
    /// A pipeline running rules on `engine`, reading through `cache`, digesting with
    /// `digest_key`.
    pub fn new(
        engine: Arc<RuleEngine>,
        cache: Arc<FetchCache>,
        digest_key: DigestKey,
        config: PipelineConfig,
    ) -> Self {
        Self {
            engine,
            cache,
            digest_key,
            config,
        }
    }

    /// The rule engine.
    pub fn engine(&self) -> &Arc<RuleEngine> {
        &self.engine
    }

    /// The fetch cache.
    pub fn cache(&self) -> &Arc<FetchCache> {
        &self.cache
    }

    /// The digest key.
    pub fn digest_key(&self) -> &DigestKey {
        &self.digest_key
    }

    /// The policy settings.
    pub fn config(&self) -> PipelineConfig {
        self.config
    }

    /// Syncs `es` now: the desired Secret, or why there is none. `current` is what the
    /// existing Secret holds (`None` when there is no Secret yet).
    ///
    /// # Errors
    /// [`SyncError`]; see [`SyncError::reason`]. A failure never yields a partial Secret.
    pub async fn sync(
        &self,
        es: &ExternalSecret,
        env: &dyn SyncEnv,
        current: Option<&CurrentState>,
    ) -> Result<SyncOutput, SyncError> {
        self.sync_at(es, env, current, Utc::now()).await
    }

    /// [`sync`](Self::sync) with the clock given (`now` is what rotate hooks see).
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub async fn sync_at(
        &self,
        es: &ExternalSecret,
        env: &dyn SyncEnv,
        current: Option<&CurrentState>,
        now: DateTime<Utc>,
    ) -> Result<SyncOutput, SyncError> {
        let _ = (es, env, current, now);
        todo!("sync pipeline")
    }
}

/// The entries of `es` in spec order: `spec.data[]`, then `spec.dataProcess[].extract` (a
/// `dataProcess` item without `extract` is skipped; validation reports it).
pub fn entries(es: &ExternalSecret) -> Vec<(EntryRef, &DataSource)> {
    let _ = es;
    todo!()
}

/// The built-in compatibility rule an entry runs and its config: `("jmespath",
/// {"jmesPath": [...]})` for a `data[]` entry with `jmesPath`, `("extract", {"replaceRule":
/// [...]})` for a `dataProcess` entry, `None` for a plain entry.
pub fn compat_rule(es: &ExternalSecret, entry: EntryRef) -> Option<(&'static str, Value)> {
    let _ = (es, entry);
    todo!()
}

/// The rule-ABI `context` of a call about `entry` of `es` (namespace, name, labels,
/// annotations, item); `None` when `es` has no such entry.
pub fn rule_context(es: &ExternalSecret, entry: EntryRef) -> Option<Context> {
    let _ = (es, entry);
    todo!()
}
