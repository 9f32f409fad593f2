//! [`SyncError`]: why a sync produced no Secret, naming the entry, the remote secret and the
//! reason — never a value.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::cache::FetchFailure;
use super::env::EnvError;
use crate::api::{DataSyncResult, Problem, SYNC_FAILED};
use crate::rules::{CallError, LoadError};
use crate::stores::{StoreError, StoreIdentity};

/// Which list an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryField {
    /// `spec.data[]`.
    Data,
    /// `spec.dataProcess[].extract`.
    DataProcess,
}

/// One entry of the spec: `spec.data[2]` or `spec.dataProcess[0].extract`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryRef {
    /// The list.
    pub field: EntryField,
    /// Index in it, from 0.
    pub index: usize,
}

impl EntryRef {
    /// `spec.data[index]`.
    pub fn data(index: usize) -> Self {
        Self {
            field: EntryField::Data,
            index,
        }
    }

    /// `spec.dataProcess[index].extract`.
    pub fn data_process(index: usize) -> Self {
        Self {
            field: EntryField::DataProcess,
            index,
        }
    }

    /// `data` or `dataProcess` (the rule ABI's `item.field`).
    pub fn field_name(&self) -> &'static str {
        match self.field {
            EntryField::Data => "data",
            EntryField::DataProcess => "dataProcess",
        }
    }

    /// The field path of the data source: `spec.data[2]` or `spec.dataProcess[0].extract`.
    pub fn path(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            EntryField::Data => write!(f, "spec.data[{}]", self.index),
            EntryField::DataProcess => write!(f, "spec.dataProcess[{}].extract", self.index),
        }
    }
}

/// Who wrote a Secret key: an entry (through its built-in mapping), or a user rule applied to
/// an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The entry's own mapping (`name`/`key`, `jmesPath`, `extract` + `replaceRule`).
    Entry(EntryRef),
    /// `spec.rules[rule]`'s transform of an entry.
    Rule {
        /// Index in `spec.rules`.
        rule: usize,
        /// Its display name.
        name: String,
        /// The entry it transformed.
        entry: EntryRef,
    },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Entry(e) => write!(f, "{e}"),
            Self::Rule { rule, name, entry } => {
                write!(f, "spec.rules[{rule}] ({name}) on {entry}")
            }
        }
    }
}

/// Where a rule ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulePlace {
    /// A built-in compatibility rule (`jmespath` for `jmesPath`, `extract` for
    /// `dataProcess`) on an entry.
    Compat(EntryRef),
    /// `spec.rules[index]`, optionally on one entry (transform).
    User {
        /// Index in `spec.rules`.
        index: usize,
        /// Its display name.
        name: String,
        /// The entry, for transforms.
        entry: Option<EntryRef>,
    },
}

impl fmt::Display for RulePlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Compat(e) => write!(f, "{e}"),
            Self::User {
                index,
                name,
                entry: Some(e),
            } => write!(f, "spec.rules[{index}] ({name}) on {e}"),
            Self::User {
                index,
                name,
                entry: None,
            } => write!(f, "spec.rules[{index}] ({name})"),
        }
    }
}

/// What went wrong with a rule module.
#[derive(Debug, thiserror::Error)]
pub enum RuleProblem {
    /// The module could not be loaded (unknown built-in, not wasm, ABI checks, ...).
    #[error(transparent)]
    Load(LoadError),
    /// `configMap` names a ConfigMap that does not exist.
    #[error("ConfigMap {namespace}/{name} does not exist")]
    ConfigMapNotFound {
        /// Namespace (the ExternalSecret's).
        namespace: String,
        /// Name.
        name: String,
    },
    /// The ConfigMap has no such key.
    #[error("ConfigMap {namespace}/{name} has no key {key:?} (in binaryData or data)")]
    ConfigMapKeyNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The key.
        key: String,
    },
    /// The module bytes do not have the pinned digest.
    #[error(
        "the module in ConfigMap {namespace}/{name} key {key:?} has sha256 {actual}, but module.sha256 pins {expected}; refusing it"
    )]
    DigestMismatch {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The key.
        key: String,
        /// What the rule pins.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// `hooks` names a hook the module does not export.
    #[error("hooks lists {hook}, but module {module} does not export it")]
    HookNotExported {
        /// The hook.
        hook: &'static str,
        /// The module's name.
        module: String,
    },
    /// The module (or `config`) refused its config (`validate_config`).
    #[error("config is refused: {0}")]
    Config(CallError),
    /// A hook call failed (timeout, trap, panic, the rule's error, bad output, ...).
    #[error(transparent)]
    Call(CallError),
    /// The secret's data can not be handed to a rule as text.
    #[error(
        "secret {secret:?} is a text secret whose value is not valid UTF-8, so rules can not read it"
    )]
    NotUtf8 {
        /// The remote key.
        secret: String,
    },
}

/// A policy refused a store reference (`shared/docs/security.md`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDenial {
    /// A SecretStore in another namespace, while `--enable-cross-namespace-secret-store` is off.
    #[error(
        "secretStoreRef names {store}, but an ExternalSecret in namespace {namespace:?} may only use SecretStores in its own namespace (start kmsync with --enable-cross-namespace-secret-store to allow this)"
    )]
    CrossNamespaceStore {
        /// The store.
        store: StoreIdentity,
        /// The ExternalSecret's namespace.
        namespace: String,
    },
    /// A ClusterSecretStore whose `conditions` do not select the namespace.
    #[error(
        "{store} may not be used from namespace {namespace:?} (its spec.conditions do not select it)"
    )]
    NamespaceNotAllowed {
        /// The store.
        store: StoreIdentity,
        /// The ExternalSecret's namespace.
        namespace: String,
    },
    /// A ClusterSecretStore whose `keyNamePolicy` does not allow the key in this namespace.
    #[error(
        "{store} does not let namespace {namespace:?} read key {key:?} (spec.keyNamePolicy.allowedKeys)"
    )]
    KeyNotAllowed {
        /// The store.
        store: StoreIdentity,
        /// The ExternalSecret's namespace.
        namespace: String,
        /// The remote key.
        key: String,
    },
}

/// A version selector, for messages: `""`, ` version "v1"`, ` stage "ACSPrevious"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionSelector {
    /// `versionId`.
    pub version_id: Option<String>,
    /// `versionStage`.
    pub version_stage: Option<String>,
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = &self.version_id {
            write!(f, " version {id:?}")?;
        }
        if let Some(stage) = &self.version_stage {
            write!(f, " stage {stage:?}")?;
        }
        Ok(())
    }
}

/// Why a sync produced no Secret. The pipeline never produces a partial Secret: any failed
/// entry fails the whole sync (ack-secret-manager fault #1), and the last good Secret stays.
///
/// `Display` is one line naming the field (`spec.data[2]`), the remote secret and what went
/// wrong; [`SyncError::message`] adds the causes (`a: b: c`), for conditions and the CLI.
/// No message contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The ExternalSecret's spec is invalid (every problem, joined with `; `).
    #[error("{}", join_problems(problems))]
    InvalidSpec {
        /// The problems, each with its field path.
        problems: Vec<Problem>,
    },
    /// A field kmsync does not implement (Go templates of ack v0.6).
    #[error("{field}: {what} is not supported by kmsync; {hint}")]
    Unsupported {
        /// The field path, e.g. `spec.target.template.data`.
        field: String,
        /// What it is.
        what: &'static str,
        /// What to do instead.
        hint: &'static str,
    },
    /// The referenced store does not exist.
    #[error("{entry}.secretStoreRef: {store} does not exist")]
    StoreNotFound {
        /// The entry.
        entry: EntryRef,
        /// The store asked for.
        store: Box<StoreIdentity>,
    },
    /// A policy refused the reference.
    #[error("{entry}: {denial}")]
    PolicyDenied {
        /// The entry.
        entry: EntryRef,
        /// Which policy.
        denial: Box<PolicyDenial>,
    },
    /// The store's spec does not fit the entry (invalid store, or a store of the other
    /// provider).
    #[error("{entry}.secretStoreRef: {store} can not be used")]
    StoreInvalid {
        /// The entry.
        entry: EntryRef,
        /// The store.
        store: Box<StoreIdentity>,
        /// Why: [`StoreError::Invalid`] or [`StoreError::ProviderMismatch`].
        #[source]
        source: StoreError,
    },
    /// The store can not be used: credentials, endpoint or client could not be set up.
    #[error("{entry}: {store} is not ready")]
    StoreNotReady {
        /// The entry.
        entry: EntryRef,
        /// `SecretStore ns/name`, `ClusterSecretStore name` or `ambient credentials`.
        store: String,
        /// Why.
        #[source]
        source: Arc<FetchFailure>,
    },
    /// The remote secret, version or stage does not exist.
    #[error("{entry}: secret {key:?}{version} not found")]
    SecretNotFound {
        /// The entry.
        entry: EntryRef,
        /// The remote key.
        key: String,
        /// The version asked for.
        version: VersionSelector,
        /// The service's answer.
        #[source]
        source: Arc<FetchFailure>,
    },
    /// Reading the remote secret failed otherwise (authentication, permission, throttling
    /// after retries, network).
    #[error("{entry}: reading secret {key:?}{version} failed")]
    FetchFailed {
        /// The entry.
        entry: EntryRef,
        /// The remote key.
        key: String,
        /// The version asked for.
        version: VersionSelector,
        /// Why.
        #[source]
        source: Arc<FetchFailure>,
    },
    /// A rule failed (module missing or refused, digest mismatch, timeout, the rule's own
    /// error such as a jmesPath matching nothing).
    #[error("{place}{}: {problem}", on_secret(secret))]
    RuleError {
        /// Where it ran.
        place: RulePlace,
        /// The rule's name.
        rule: String,
        /// The remote key the rule was reading, when it was reading one.
        secret: Option<String>,
        /// What went wrong (its text is part of this error's message; it names the rule).
        problem: Box<RuleProblem>,
    },
    /// Two sources write the same Secret key.
    #[error("Secret key {key:?} is written by both {first} and {second}")]
    KeyConflict {
        /// The key.
        key: String,
        /// Who wrote it first.
        first: Box<KeySource>,
        /// Who wrote it again.
        second: Box<KeySource>,
    },
    /// Reading something from the environment (store, namespace, ConfigMap) failed.
    #[error("{what}: lookup failed")]
    Lookup {
        /// What, e.g. `spec.data[0].secretStoreRef`.
        what: String,
        /// Why.
        #[source]
        source: EnvError,
    },
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn on_secret(secret: &Option<String>) -> String {
    match secret {
        Some(s) => format!(" (secret {s:?})"),
        None => String::new(),
    }
}

impl SyncError {
    /// Stable CamelCase reason for the `Ready` condition (and a bounded metric label):
    /// `InvalidSpec`, `Unsupported`, `StoreNotFound`, `PolicyDenied`, `StoreNotReady`,
    /// `SecretNotFound`, `FetchFailed`, `RuleError`, `KeyConflict`, `LookupFailed`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSpec { .. } | Self::StoreInvalid { .. } => "InvalidSpec",
            Self::Unsupported { .. } => "Unsupported",
            Self::StoreNotFound { .. } => "StoreNotFound",
            Self::PolicyDenied { .. } => "PolicyDenied",
            Self::StoreNotReady { .. } => "StoreNotReady",
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::FetchFailed { .. } => "FetchFailed",
            Self::RuleError { .. } => "RuleError",
            Self::KeyConflict { .. } => "KeyConflict",
            Self::Lookup { .. } => "LookupFailed",
        }
    }

    /// Whether retrying later may help without anyone changing the ExternalSecret or its
    /// store (network, throttling, a store or Secret that may appear). The controller
    /// retries either way; this only picks the backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::FetchFailed { source, .. } => match source.as_ref() {
                FetchFailure::Fetch(e) => e.is_retryable(),
                FetchFailure::Unavailable(_) => true,
            },
            Self::StoreNotReady { .. } | Self::Lookup { .. } | Self::StoreNotFound { .. } => true,
            Self::RuleError { problem, .. } => {
                matches!(
                    problem.as_ref(),
                    RuleProblem::Call(CallError::Timeout { .. })
                )
            }
            _ => false,
        }
    }

    /// The entry the error is about, when it is about one.
    pub fn entry(&self) -> Option<EntryRef> {
        match self {
            Self::StoreNotFound { entry, .. }
            | Self::PolicyDenied { entry, .. }
            | Self::StoreInvalid { entry, .. }
            | Self::StoreNotReady { entry, .. }
            | Self::SecretNotFound { entry, .. }
            | Self::FetchFailed { entry, .. } => Some(*entry),
            Self::RuleError { place, .. } => match place {
                RulePlace::Compat(e) => Some(*e),
                RulePlace::User { entry, .. } => *entry,
            },
            _ => None,
        }
    }

    /// Cuts the author-controlled text of a rule failure (see
    /// [`CallError::limit_author_text`]) to at most `max_chars` characters; other errors are
    /// left as they are.
    pub fn limit_rule_text(&mut self, max_chars: usize) {
        if let Self::RuleError { problem, .. } = self
            && let RuleProblem::Call(e) | RuleProblem::Config(e) = problem.as_mut()
        {
            e.limit_author_text(max_chars);
        }
    }

    /// The whole chain on one line: this error and its causes joined with `: `. Meant for
    /// the `Ready` condition message, Events and the CLI; it holds no secret values.
    pub fn message(&self) -> String {
        crate::credentials::error_chain(self)
    }

    /// The `status.dataSyncResults[]` entry of the failed entry (ack v0.6 shape), for
    /// errors about one entry whose remote key is `key`.
    pub fn data_sync_result(&self, key: &str, now: DateTime<Utc>) -> DataSyncResult {
        DataSyncResult {
            external_secret_key: Some(key.to_owned()),
            status: Some(SYNC_FAILED.to_owned()),
            reason: Some(self.message()),
            synchronization_time: Some(Time(to_timestamp(now))),
            version_id: None,
        }
    }
}

/// `t` as a status time: whole seconds, as Kubernetes keeps it
/// ([`crate::api::status_time_now`]).
pub(crate) fn to_timestamp(t: DateTime<Utc>) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}
