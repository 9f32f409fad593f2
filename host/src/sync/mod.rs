//! The sync pipeline: one ExternalSecret in, the desired Secret out. Pure — it reaches the
//! world only through [`SyncEnv`] (stores, namespace labels, fetchers, ConfigMaps), so the
//! controller, `kmsync render` and tests drive the same code.
//!
//! ```text
//!  ExternalSecret
//!     │ 1. validate (field paths); refuse target.template data/templateFrom (Go templates)
//!     │ 2. resolve entries: spec.data[i], spec.dataProcess[j].extract
//!     │      secretStoreRef (kind default SecretStore, namespace default the object's)
//!     │ 3. policy: cross-namespace SecretStore refused unless allowed; ClusterSecretStore
//!     │      only where spec.conditions select the namespace and keyNamePolicy allows the key
//!     │ 4. fetch every entry through the FetchCache (shared, single-flight, max age)
//!     │      ── any failure fails the whole sync: never a partial Secret
//!     │ 5. map each entry to Secret keys:
//!     │      jmesPath ─▶ built-in `jmespath`; dataProcess ─▶ built-in `extract` (+replaceRule);
//!     │      plain entry ─▶ spec.rules transforms if any, else `name` (or `key`) = the value
//!     │      duplicate keys ─▶ KeyConflict naming both writers
//!     │ 6. spec.rules filters (key names only), in order
//!     │ 7. keyed digest (HMAC-SHA256) of the data
//!     │ 8. rotation: spec.rules rotate hooks, else "sync when the digest changed"
//!     ▼
//!  SyncOutput { secret: DesiredSecret, digest, version, entries, rotation }
//! ```
//!
//! `spec.rules` semantics: a rule runs every hook it exports unless `hooks` narrows them.
//! Transforms apply to each `spec.data[]` entry without `jmesPath` (entries with `jmesPath`
//! and `dataProcess` entries keep their built-in mapping); the outputs of several transform
//! rules are merged (a key written twice is a conflict). Filters then see the names of all
//! keys and keep a subset. Rotate hooks are asked in order; the first that does not say
//! `sync` decides; `restart` is the OR of the `sync` answers. The context `item` of filter and
//! rotate calls is the first entry.

mod cache;
mod digest;
mod env;
mod error;
mod output;
mod pipeline;

pub use cache::{
    CacheStats, FetchCache, FetchCacheConfig, FetchFailure, FetchKey, Fetched, ProviderKey,
    SourceId,
};
pub use digest::{
    DIGEST_PREFIX, DigestKey, DigestKeyError, Fingerprint, GENERATED_DIGEST_KEY_BYTES,
    MIN_DIGEST_KEY_BYTES, fingerprint,
};
pub use env::{BoxError, ConfigMapKey, EnvError, MemoryEnv, SyncEnv};
pub use error::{
    EntryField, EntryRef, KeySource, PolicyDenial, RulePlace, RuleProblem, SyncError,
    VersionSelector,
};
pub use output::{
    CurrentState, DesiredSecret, EntryResult, RotationAction, RotationDecision, SyncOutput,
};
pub use pipeline::{Pipeline, PipelineConfig, compat_rule, entries, rule_context};

#[cfg(test)]
mod tests;
