//! The rule ABI v1 JSON shapes: one definition shared by guests (this SDK) and the kmsync host.
//!
//! Every hook receives one JSON document (its *input*) and answers with one JSON document, the
//! *envelope*: `{"ok": <output>}` or `{"error": {"code": "...", "message": "..."}}`.
//! `docs/rules-abi.md` is the normative description; the doc comments here give each field's
//! meaning. Field names are camelCase on the wire. Inputs may gain optional fields within ABI 1.x,
//! so guests must ignore unknown fields (these types do).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::SecretValue;

/// ABI version implemented by this SDK, as written in the metadata section (`"major.minor"`).
pub const ABI_VERSION: &str = "1.0";
/// ABI major version. A host refuses modules of another major version.
pub const ABI_MAJOR: u32 = 1;
/// ABI minor version. A host refuses modules that need a newer minor than it implements.
pub const ABI_MINOR: u32 = 0;
/// Name of the marker export (a function with no parameters and no results).
pub const MARKER_EXPORT: &str = "kmsync_abi_v1";
/// Prefix shared by every ABI marker export (`kmsync_abi_v<N>`).
pub const MARKER_PREFIX: &str = "kmsync_abi_v";
/// Name of the allocator export: `(len: i32) -> i32`, returns a pointer to `len` writable bytes or 0.
pub const ALLOC_EXPORT: &str = "kmsync_alloc";
/// Name of the exported linear memory.
pub const MEMORY_EXPORT: &str = "memory";
/// The only module name imports may come from.
pub const IMPORT_MODULE: &str = "kmsync";
/// Name of the custom section holding the [`Metadata`] JSON.
pub const METADATA_SECTION: &str = "kmsync.metadata";

/// The hooks a rule module may implement. Each is exported under [`Hook::export_name`] with the
/// signature `(ptr: i32, len: i32) -> i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// KMS secret -> Secret data. Input [`TransformInput`], output [`TransformOutput`].
    Transform,
    /// Which Secret keys to keep. Input [`FilterInput`], output [`FilterOutput`].
    Filter,
    /// Whether to roll a new version out now. Input [`RotateInput`], output [`RotateDecision`].
    Rotate,
    /// Checks a rule's config once, when an ExternalSecret is admitted or changed.
    /// Input [`ValidateConfigInput`], output [`ValidateConfigOutput`].
    ValidateConfig,
}

impl Hook {
    /// Every hook, in ABI order.
    pub const ALL: [Hook; 4] = [
        Hook::Transform,
        Hook::Filter,
        Hook::Rotate,
        Hook::ValidateConfig,
    ];

    /// The export name (also the name used in metadata and on the command line).
    pub fn export_name(self) -> &'static str {
        match self {
            Hook::Transform => "transform",
            Hook::Filter => "filter",
            Hook::Rotate => "rotate",
            Hook::ValidateConfig => "validate_config",
        }
    }

    /// Parses an export name; `None` for anything that is not a hook.
    pub fn from_name(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.export_name() == name)
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.export_name())
    }
}

/// What the host tells a hook about the ExternalSecret being synced (never secret values).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// Namespace of the ExternalSecret.
    pub namespace: String,
    /// Name of the ExternalSecret.
    pub external_secret: String,
    /// Labels of the ExternalSecret.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the ExternalSecret.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The spec entry this call is about.
    pub item: Item,
}

/// One entry of the ExternalSecret spec: `spec.<field>[<index>]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// `data` or `dataProcess`.
    pub field: String,
    /// Index in that list, from 0.
    pub index: u32,
    /// The KMS secret name (`key`).
    pub key: String,
    /// The Secret key named by the entry (`name`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// KMS `SecretDataType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// `data` is the secret text.
    #[default]
    Text,
    /// `data` is the base64 text KMS returns for a binary secret.
    Binary,
}

/// A fetched KMS secret version, as `GetSecretValue` returned it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretInput {
    /// `SecretName`.
    pub name: String,
    /// `SecretType`: `Generic`, `Rds`, `RAMCredentials`, `ECS`, `Redis`, `PolarDB`, ...
    #[serde(rename = "type")]
    pub secret_type: String,
    /// `SecretDataType`.
    pub data_type: DataType,
    /// `SecretData`: the value (text, or base64 for binary secrets).
    pub data: SecretValue,
    /// `VersionId`.
    pub version_id: String,
    /// `VersionStages`, e.g. `["ACSCurrent"]`.
    #[serde(default)]
    pub version_stages: Vec<String>,
    /// `CreateTime` (RFC 3339, UTC), when KMS gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// `ExtendedConfig` of managed secrets (already parsed JSON), when fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_config: Option<Value>,
}

/// Input of `transform`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformInput {
    /// The fetched secret.
    pub secret: SecretInput,
    /// Where the call comes from.
    pub context: Context,
    /// The rule's config from the ExternalSecret (`null` when none was given).
    #[serde(default)]
    pub config: Value,
}

/// One output value of `transform`: UTF-8 text, or arbitrary bytes as `{"base64": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataValue {
    /// Stored as the UTF-8 bytes of the string.
    Text(SecretValue),
    /// Standard base64 (RFC 4648, with padding) of the bytes to store.
    Base64(SecretValue),
}

impl DataValue {
    /// A text value.
    pub fn text(value: impl Into<String>) -> Self {
        DataValue::Text(SecretValue::new(value.into()))
    }
}

impl Serialize for DataValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            DataValue::Text(v) => serializer.serialize_str(v.expose()),
            DataValue::Base64(v) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("base64", v.expose())?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for DataValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DataValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an object {\"base64\": string}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DataValue, E> {
                Ok(DataValue::Text(SecretValue::new(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<DataValue, E> {
                Ok(DataValue::Text(SecretValue::new(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataValue, A::Error> {
                let mut out = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k != "base64" || out.is_some() {
                        return Err(de::Error::custom(
                            "a binary value must be exactly {\"base64\": string}",
                        ));
                    }
                    out = Some(map.next_value::<SecretValue>()?);
                }
                out.map(DataValue::Base64)
                    .ok_or_else(|| de::Error::missing_field("base64"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Output of `transform`: Secret key -> value. Keys must be valid Secret keys
/// (`[-._a-zA-Z0-9]+`, at most 253 characters); the host checks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformOutput {
    /// The Secret data this rule produces.
    pub data: BTreeMap<String, DataValue>,
}

/// Input of `filter`: the Secret keys produced so far (names only, never values).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterInput {
    /// Candidate keys, sorted.
    pub keys: Vec<String>,
    /// Where the call comes from.
    pub context: Context,
    /// The rule's config.
    #[serde(default)]
    pub config: Value,
}

/// Output of `filter`: the keys to keep, a subset of the input keys (the host checks).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterOutput {
    /// Keys to keep.
    pub keep: Vec<String>,
}

/// The version currently synced into the Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncedVersion {
    /// KMS `VersionId` last written.
    pub version_id: String,
    /// Opaque keyed digest of the data last written; compare for equality only.
    pub digest: String,
    /// When it was written (RFC 3339, UTC).
    pub synced_at: String,
}

/// The version that could be rolled out now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateVersion {
    /// KMS `VersionId`.
    pub version_id: String,
    /// KMS `VersionStages`.
    #[serde(default)]
    pub version_stages: Vec<String>,
    /// Opaque keyed digest of the data that would be written (same key as
    /// [`SyncedVersion::digest`]).
    pub digest: String,
    /// KMS `CreateTime` of the version (RFC 3339, UTC), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
}

/// Input of `rotate`. Rules see digests of the data, never values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateInput {
    /// What the Secret holds now; `null` when the Secret does not exist yet.
    #[serde(default)]
    pub current: Option<SyncedVersion>,
    /// What it would hold after this sync.
    pub candidate: CandidateVersion,
    /// The host's clock (RFC 3339, UTC): guests have no clock of their own.
    pub now: String,
    /// Where the call comes from.
    pub context: Context,
    /// The rule's config.
    #[serde(default)]
    pub config: Value,
}

/// What `rotate` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotateAction {
    /// Write the candidate now.
    Sync,
    /// Do not write this candidate (asked again when a different candidate appears).
    Skip,
    /// Not now: ask again after `requeueAfter` seconds.
    Defer,
}

/// Output of `rotate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateDecision {
    /// The decision.
    pub action: RotateAction,
    /// Seconds until the host should ask again; required for `defer`, at most 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeue_after: Option<u64>,
    /// After a `sync`, restart workloads that use the Secret (pod-template annotation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
    /// Human-readable reason, shown in status and Events (no secret values!).
    pub reason: String,
}

/// Input of `validate_config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateConfigInput {
    /// The config to check.
    #[serde(default)]
    pub config: Value,
}

/// Output of `validate_config` (`{}`): the config is acceptable. Problems are reported as an
/// error envelope with code `invalid_config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidateConfigOutput {}

/// A rule's error: `{"code": "snake_case_code", "message": "human text"}`.
///
/// Codes are short machine-readable strings (at most 64 bytes; the host truncates longer ones);
/// messages at most 1024 bytes. Never put secret values in either.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleError {
    /// Machine-readable code, e.g. `invalid_config`, `invalid_input`, `path_not_found`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

impl RuleError {
    /// An error with a code of the rule's choosing.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    /// `invalid_config`: the rule's config is wrong.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new("invalid_config", message)
    }

    /// `invalid_input`: the secret (or other input) is not what the rule can handle.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new("invalid_input", message)
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RuleError {}

/// The answer of every hook: `{"ok": output}` or `{"error": RuleError}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Envelope<T> {
    /// Success.
    #[serde(rename = "ok")]
    Ok(T),
    /// The rule refused or failed.
    #[serde(rename = "error")]
    Error(RuleError),
}

/// The metadata custom section ([`METADATA_SECTION`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Rule name (`[a-z0-9][-a-z0-9]*`, at most 63 bytes).
    pub name: String,
    /// Rule version (the crate version, semver).
    pub version: String,
    /// ABI version the module was built for, `"major.minor"`.
    pub abi: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Hooks the module implements; each must be exported.
    pub hooks: Vec<Hook>,
    /// JSON Schema of `config` (`{}` when the rule takes none).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config_schema: Value,
}

impl Metadata {
    /// Checks the fields a host relies on: name `[a-z0-9][-a-z0-9]*` (at most 63 bytes), a
    /// non-empty version, `abi` of the form `major.minor`, at least one hook and no duplicates,
    /// `configSchema` absent, an object or a boolean. The error says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self.name.as_bytes()[0] != b'-'
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(format!(
                "name {:?} must match [a-z0-9][-a-z0-9]* and be at most 63 bytes",
                self.name
            ));
        }
        if self.version.trim().is_empty() {
            return Err("version is empty".into());
        }
        if self.abi_version().is_none() {
            return Err(format!(
                "abi {:?} is not of the form \"major.minor\"",
                self.abi
            ));
        }
        if self.hooks.is_empty() {
            return Err("hooks is empty: a rule must implement at least one hook".into());
        }
        let mut seen = Vec::new();
        for h in &self.hooks {
            if seen.contains(h) {
                return Err(format!("hook {h} is listed twice"));
            }
            seen.push(*h);
        }
        if !matches!(
            self.config_schema,
            Value::Null | Value::Object(_) | Value::Bool(_)
        ) {
            return Err("configSchema must be a JSON Schema (an object or a boolean)".into());
        }
        Ok(())
    }

    /// Parses `abi` as `(major, minor)`.
    pub fn abi_version(&self) -> Option<(u32, u32)> {
        let (major, minor) = self.abi.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    }
}

/// Longest Secret key Kubernetes accepts.
pub const MAX_SECRET_KEY_LEN: usize = 253;

/// True when `key` is a valid Kubernetes Secret data key: `[-._a-zA-Z0-9]+`, at most 253 bytes.
/// (Kubernetes additionally rejects `.` and `..`; so does this.)
pub fn is_valid_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_SECRET_KEY_LEN
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_value_round_trips_text_and_base64() {
        let out: TransformOutput =
            serde_json::from_value(json!({"data": {"a": "x", "b": {"base64": "AAE="}}})).unwrap();
        assert_eq!(out.data["a"], DataValue::text("x"));
        assert_eq!(out.data["b"], DataValue::Base64("AAE=".into()));
        let back = serde_json::to_value(&out).unwrap();
        assert_eq!(back, json!({"data": {"a": "x", "b": {"base64": "AAE="}}}));
    }

    #[test]
    fn data_value_rejects_other_shapes() {
        for bad in [json!(1), json!({"hex": "00"}), json!({}), json!(null)] {
            assert!(
                serde_json::from_value::<DataValue>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn envelope_is_externally_tagged() {
        let ok: Envelope<FilterOutput> = Envelope::Ok(FilterOutput {
            keep: vec!["a".into()],
        });
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            json!({"ok": {"keep": ["a"]}})
        );
        let err: Envelope<FilterOutput> =
            serde_json::from_value(json!({"error": {"code": "x", "message": "y"}})).unwrap();
        assert_eq!(err, Envelope::Error(RuleError::new("x", "y")));
    }

    #[test]
    fn rotate_decision_uses_camel_case_and_omits_defaults() {
        let d = RotateDecision {
            action: RotateAction::Defer,
            requeue_after: Some(60),
            restart: false,
            reason: "later".into(),
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"action": "defer", "requeueAfter": 60, "reason": "later"})
        );
    }

    #[test]
    fn secret_key_names_follow_kubernetes() {
        for ok in ["a", "A-b_c.d", "0", &"x".repeat(253)] {
            assert!(is_valid_secret_key(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(254)] {
            assert!(!is_valid_secret_key(bad), "{bad}");
        }
    }

    #[test]
    fn metadata_validation_names_the_wrong_field() {
        let good = Metadata {
            name: "my-rule".into(),
            version: "0.1.0".into(),
            abi: "1.0".into(),
            description: String::new(),
            hooks: vec![Hook::Transform],
            config_schema: json!({"type": "object"}),
        };
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(good.abi_version(), Some((1, 0)));
        let bad_name = Metadata {
            name: "My Rule".into(),
            ..good.clone()
        };
        assert!(bad_name.validate().unwrap_err().contains("name"));
        let bad_abi = Metadata {
            abi: "one".into(),
            ..good.clone()
        };
        assert!(bad_abi.validate().unwrap_err().contains("abi"));
        let no_hooks = Metadata {
            hooks: vec![],
            ..good.clone()
        };
        assert!(no_hooks.validate().unwrap_err().contains("hooks"));
        let twice = Metadata {
            hooks: vec![Hook::Filter, Hook::Filter],
            ..good.clone()
        };
        assert!(twice.validate().unwrap_err().contains("twice"));
        let schema = Metadata {
            config_schema: json!(3),
            ..good
        };
        assert!(schema.validate().unwrap_err().contains("configSchema"));
    }

    #[test]
    fn hook_names_round_trip() {
        for h in Hook::ALL {
            assert_eq!(Hook::from_name(h.export_name()), Some(h));
            assert_eq!(serde_json::to_value(h).unwrap(), json!(h.export_name()));
        }
        assert_eq!(Hook::from_name("main"), None);
    }
}
