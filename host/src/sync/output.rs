//! What a sync produces: the desired Secret, its keyed digest, per-entry results for
//! `status.dataSyncResults`, and the rotation decision.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::error::{EntryRef, to_timestamp};
use crate::api::{DataSyncResult, SYNC_SUCCEEDED};
use crate::value::SecretBytes;

/// The Secret a sync wants to exist. `Debug` shows key names and sizes, never values.
#[derive(Clone, PartialEq, Eq)]
pub struct DesiredSecret {
    /// Namespace (the ExternalSecret's).
    pub namespace: String,
    /// Name: `spec.target.name`, else the ExternalSecret's name.
    pub name: String,
    /// `type`: `target.template.type`, else `spec.type`, else `Opaque`.
    pub type_: String,
    /// The data, by Secret key (keys valid per Kubernetes' rules).
    pub data: BTreeMap<String, SecretBytes>,
    /// Labels from `target.template.metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Annotations from `target.template.metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `target.immutable`.
    pub immutable: bool,
}

impl fmt::Debug for DesiredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes: BTreeMap<&str, usize> = self
            .data
            .iter()
            .map(|(k, v)| (k.as_str(), v.len()))
            .collect();
        f.debug_struct("DesiredSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("type_", &self.type_)
            .field("data_sizes", &sizes)
            .field("labels", &self.labels)
            .field("annotations", &self.annotations)
            .field("immutable", &self.immutable)
            .finish()
    }
}

impl DesiredSecret {
    /// A `v1 Secret` with this name, namespace, type, data, labels, annotations and
    /// `immutable` (only when true). Ownership metadata (owner references, the controller's
    /// labels and annotations) is the caller's business. The result holds the values: never
    /// format it with `Debug`.
    pub fn to_secret(&self) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: (!self.labels.is_empty()).then(|| self.labels.clone()),
                annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
                ..ObjectMeta::default()
            },
            type_: Some(self.type_.clone()),
            data: Some(
                self.data
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
                    .collect(),
            ),
            immutable: self.immutable.then_some(true),
            string_data: None,
        }
    }

    /// Total size of the values, bytes (Kubernetes refuses Secrets over 1 MiB in total).
    pub fn data_bytes(&self) -> usize {
        self.data.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// What one entry read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryResult {
    /// The entry.
    pub entry: EntryRef,
    /// The remote key (KMS secret name, OOS parameter name).
    pub key: String,
    /// The version read (`VersionId`; the parameter version for OOS).
    pub version_id: String,
    /// Its stages (`VersionStages`; empty for OOS).
    pub version_stages: Vec<String>,
    /// `CreateTime` of the version, as KMS sent it.
    pub create_time: Option<String>,
    /// The Secret keys this entry produced (after rules and filters), sorted.
    pub secret_keys: Vec<String>,
}

impl EntryResult {
    /// The `status.dataSyncResults[]` entry (ack v0.6 shape, plus kmsync's `versionId`).
    pub fn data_sync_result(&self, now: DateTime<Utc>) -> DataSyncResult {
        DataSyncResult {
            external_secret_key: Some(self.key.clone()),
            status: Some(SYNC_SUCCEEDED.to_owned()),
            reason: None,
            synchronization_time: Some(Time(to_timestamp(now))),
            version_id: Some(self.version_id.clone()),
        }
    }
}

/// What the existing Secret holds, as recorded by the controller at its last write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentState {
    /// The digest recorded with the data last written ([`SyncOutput::digest`]); `None` when
    /// the Secret exists but carries none (then any candidate counts as a change).
    pub digest: Option<String>,
    /// The version label recorded at the last write ([`SyncOutput::version`]).
    pub version: Option<String>,
    /// When the data was last written.
    pub synced_at: Option<DateTime<Utc>>,
}

/// What to do with the candidate data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationAction {
    /// Write it now (first sync, changed data, or a rule said so).
    Sync,
    /// The Secret already holds exactly this data (same digest): nothing to write.
    Unchanged,
    /// A rule declined this candidate; ask again at the next regular sync.
    Skip,
    /// A rule said not now; ask again after `requeue_after`.
    Defer,
}

impl RotationAction {
    /// `sync`, `unchanged`, `skip`, `defer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Unchanged => "unchanged",
            Self::Skip => "skip",
            Self::Defer => "defer",
        }
    }
}

/// The rotation decision (the `rotate` hooks of the ExternalSecret's rules, or the default:
/// sync when the digest differs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationDecision {
    /// The action.
    pub action: RotationAction,
    /// Why (the rule's reason, or the default's); for status and Events.
    pub reason: String,
    /// Ask again after this long (required for `Defer`; an earlier re-check otherwise).
    pub requeue_after: Option<Duration>,
    /// After writing, restart the workloads that use the Secret.
    pub restart: bool,
    /// The rule that decided (`spec.rules[1] (canary)`), `None` for the default.
    pub decided_by: Option<String>,
}

impl RotationDecision {
    /// True when the Secret should be written now.
    pub fn should_write(&self) -> bool {
        self.action == RotationAction::Sync
    }
}

/// The result of a successful sync.
#[derive(Clone, Debug)]
pub struct SyncOutput {
    /// The Secret to write (whether to write it now: [`SyncOutput::rotation`]).
    pub secret: DesiredSecret,
    /// Keyed digest of `secret.data`, `hmac-sha256:<hex>` (record it with the Secret and hand
    /// it back in [`CurrentState::digest`]).
    pub digest: String,
    /// The version label of what was read: the entries' version ids in spec order joined
    /// with `,` (`v2`, or `v1,3,v7`). Record it and hand it back in [`CurrentState::version`];
    /// it is the `versionId` rotate hooks see.
    pub version: String,
    /// Per-entry results, in spec order (`data[]` then `dataProcess[]`).
    pub entries: Vec<EntryResult>,
    /// Whether to write the Secret now.
    pub rotation: RotationDecision,
    /// How long before the end of the sync the oldest value it used was read from the
    /// provider: zero when this sync read everything itself, up to the fetch cache's max age
    /// when it used cached values. The controller counts the next refresh interval from then,
    /// so every object that shares a cached value refreshes right after the value expires and
    /// a rotation reaches them all within one interval.
    pub data_age: Duration,
}

impl SyncOutput {
    /// `status.dataSyncResults[]`: one `Succeeded` entry per spec entry.
    pub fn data_sync_results(&self, now: DateTime<Utc>) -> Vec<DataSyncResult> {
        self.entries
            .iter()
            .map(|e| e.data_sync_result(now))
            .collect()
    }
}
