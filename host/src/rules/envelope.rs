//! Realistic hook inputs built from a sample secret, for `kmsync rules envelope`, `rules test`
//! defaults, and benchmarks. Shapes are those of `docs/rules-abi.md`.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    CandidateVersion, Context, DataType, FilterInput, Hook, Item, RotateInput, SecretInput,
    SecretValue, SyncedVersion, TransformInput, ValidateConfigInput,
};

/// Where a sample call comes from. `Default`: ExternalSecret `default/sample`, entry
/// `spec.data[0]` whose key is the secret name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleContext {
    /// Namespace of the ExternalSecret.
    pub namespace: String,
    /// Name of the ExternalSecret.
    pub external_secret: String,
    /// `data` or `dataProcess`.
    pub field: String,
    /// Index of the entry.
    pub index: u32,
    /// The entry's `name` (Secret key), if any.
    pub item_name: Option<String>,
}

impl Default for SampleContext {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            external_secret: "sample".into(),
            field: "data".into(),
            index: 0,
            item_name: None,
        }
    }
}

/// A sample KMS secret version.
#[derive(Clone, Debug)]
pub struct SampleSecret {
    /// `SecretName`.
    pub name: String,
    /// `SecretType` (`Generic`, `Rds`, `RAMCredentials`, ...).
    pub secret_type: String,
    /// `SecretDataType`.
    pub data_type: DataType,
    /// `SecretData` (base64 text for binary secrets).
    pub data: SecretValue,
    /// `VersionId`.
    pub version_id: String,
    /// `VersionStages`.
    pub version_stages: Vec<String>,
    /// `CreateTime` (RFC 3339).
    pub create_time: String,
}

impl SampleSecret {
    /// A `Generic` text secret `sample`, version `v2` in `ACSCurrent`, created
    /// `2026-01-01T00:00:00Z`.
    pub fn text(data: impl Into<String>) -> Self {
        Self {
            name: "sample".into(),
            secret_type: "Generic".into(),
            data_type: DataType::Text,
            data: SecretValue::new(data.into()),
            version_id: "v2".into(),
            version_stages: vec!["ACSCurrent".into()],
            create_time: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn input(&self) -> SecretInput {
        SecretInput {
            name: self.name.clone(),
            secret_type: self.secret_type.clone(),
            data_type: self.data_type,
            data: self.data.clone(),
            version_id: self.version_id.clone(),
            version_stages: self.version_stages.clone(),
            create_time: Some(self.create_time.clone()),
            extended_config: None,
        }
    }

    /// A sample digest of the data (the real pipeline uses a keyed HMAC; rules compare
    /// digests for equality only).
    pub fn digest(&self) -> String {
        format!(
            "sample-sha256:{}",
            hex::encode(Sha256::digest(self.data.expose().as_bytes()))
        )
    }

    /// The Secret keys `extract` would produce: the top-level keys of the JSON object (or the
    /// secret name when the data is not a JSON object), sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = match serde_json::from_str::<Map<String, Value>>(self.data.expose()) {
            Ok(m) => m.keys().cloned().collect(),
            Err(_) => vec![self.name.clone()],
        };
        keys.sort();
        keys
    }
}

fn context(secret: &SampleSecret, c: &SampleContext) -> Context {
    Context {
        namespace: c.namespace.clone(),
        external_secret: c.external_secret.clone(),
        labels: Default::default(),
        annotations: Default::default(),
        item: Item {
            field: c.field.clone(),
            index: c.index,
            key: secret.name.clone(),
            name: c.item_name.clone(),
        },
    }
}

/// The input document of `hook` for `secret` and `config`:
/// - `transform`: the secret as fetched;
/// - `filter`: the secret's top-level JSON keys;
/// - `rotate`: `current` = an older version with a different digest, synced a day before
///   `candidate.createTime`; `candidate` = this secret; `now` = one hour after `createTime`;
/// - `validate_config`: just the config.
pub fn build(hook: Hook, secret: &SampleSecret, ctx: &SampleContext, config: Value) -> Value {
    let context = context(secret, ctx);
    let doc = match hook {
        Hook::Transform => serde_json::to_value(TransformInput {
            secret: secret.input(),
            context,
            config,
        }),
        Hook::Filter => serde_json::to_value(FilterInput {
            keys: secret.keys(),
            context,
            config,
        }),
        Hook::Rotate => {
            let created = kmsync_guest_sdk::time::parse_rfc3339(&secret.create_time).unwrap_or(0);
            let at = kmsync_guest_sdk::time::format_rfc3339;
            serde_json::to_value(RotateInput {
                current: Some(SyncedVersion {
                    version_id: "v1".into(),
                    digest: format!("sample-sha256:{}", "0".repeat(64)),
                    synced_at: at(created - 86_400),
                }),
                candidate: CandidateVersion {
                    version_id: secret.version_id.clone(),
                    version_stages: secret.version_stages.clone(),
                    digest: secret.digest(),
                    create_time: Some(secret.create_time.clone()),
                },
                now: at(created + 3600),
                context,
                config,
            })
        }
        Hook::ValidateConfig => serde_json::to_value(ValidateConfigInput { config }),
    };
    doc.unwrap_or_else(|_| json!({}))
}

/// Merges `patch` into `base`: objects merge key by key (recursively), anything else replaces.
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, p) => *b = p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_envelopes_carry_the_secret_and_context() {
        let s = SampleSecret::text(r#"{"a":1,"b":"x"}"#);
        let doc = build(
            Hook::Transform,
            &s,
            &SampleContext::default(),
            json!({"k": 1}),
        );
        assert_eq!(doc["secret"]["data"], r#"{"a":1,"b":"x"}"#);
        assert_eq!(doc["secret"]["type"], "Generic");
        assert_eq!(doc["secret"]["dataType"], "text");
        assert_eq!(doc["secret"]["versionStages"], json!(["ACSCurrent"]));
        assert_eq!(doc["context"]["namespace"], "default");
        assert_eq!(
            doc["context"]["item"],
            json!({"field": "data", "index": 0, "key": "sample"})
        );
        assert_eq!(doc["config"], json!({"k": 1}));
    }

    #[test]
    fn filter_and_rotate_envelopes_hold_no_values() {
        let s = SampleSecret::text(r#"{"user":"u","pass":"hunter2"}"#);
        let f = build(Hook::Filter, &s, &SampleContext::default(), Value::Null);
        assert_eq!(f["keys"], json!(["pass", "user"]));
        let r = build(Hook::Rotate, &s, &SampleContext::default(), Value::Null);
        assert_eq!(r["now"], "2026-01-01T01:00:00Z");
        assert_eq!(r["current"]["syncedAt"], "2025-12-31T00:00:00Z");
        assert_ne!(r["current"]["digest"], r["candidate"]["digest"]);
        for doc in [f, r] {
            assert!(!doc.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn merge_is_deep_for_objects_only() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge(
            &mut base,
            json!({"a": {"c": [3], "e": null}, "d": {"x": 1}}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 1, "c": [3], "e": null}, "d": {"x": 1}})
        );
    }
}
