//! What the scale scenario creates: namespaces, stores, remote secrets and ExternalSecrets, as
//! pure functions of the sizes, so that every run (and the baseline) builds the same world.
//!
//! ```text
//!  namespace scale-00 ── SecretStore kms (AccessKey LTAI5tScaleKey0000, reads s00-*)
//!     │                    └─ ExternalSecrets es-00000, es-00020, ... naming s00-0000 ... s00-0099
//!  namespace scale-01 ── SecretStore kms (AccessKey LTAI5tScaleKey0001, reads s01-*)
//!     ...                  (one store per namespace; each remote secret is read through one store)
//! ```
//!
//! ExternalSecret `k` lives in namespace `k % S` and names 1–3 of its store's secrets
//! (`1 + (k / 3) % 3`); every third (`k % 3 == 0`) maps its first secret with a built-in
//! compatibility rule, alternating `jmesPath` and `dataProcess.extract`. Remote secrets are
//! flat JSON objects of about 1 KiB whose `password` changes on rotation, so a rotated value is
//! visible in every Secret whatever its rule: the whole JSON (plain keys), the `password` key
//! (`jmesPath`, `extract`).

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The sizes of one scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sizes {
    /// SecretStores (= namespaces).
    pub stores: usize,
    /// Distinct remote secrets.
    pub secrets: usize,
    /// ExternalSecrets.
    pub external_secrets: usize,
    /// Bytes of each remote secret's JSON (about).
    pub secret_bytes: usize,
}

/// How an ExternalSecret maps its first remote secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// `spec.data[]` with `name`: the whole JSON under one key.
    Plain,
    /// `jmesPath`: `password` and `username`.
    JmesPath,
    /// `dataProcess[].extract`: every top-level key.
    Extract,
}

/// One ExternalSecret of the scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsPlan {
    /// Namespace.
    pub namespace: String,
    /// Name (also the target Secret's).
    pub name: String,
    /// Remote secrets it names, the first one mapped by `mapping`.
    pub secrets: Vec<String>,
    /// The first secret's mapping.
    pub mapping: Mapping,
}

/// Namespace of store `i`.
pub fn namespace(store: usize) -> String {
    format!("scale-{store:02}")
}

/// The AccessKey id of store `i`.
pub fn access_key_id(store: usize) -> String {
    format!("LTAI5tScaleKey{store:04}")
}

/// The AccessKey secret of store `i` (never printed; a marker for the leak scan).
pub fn access_key_secret(store: usize) -> String {
    format!("marker-scale-ak-{store:04}-5e0c")
}

/// Name of remote secret `j` of store `i`.
pub fn secret_name(store: usize, j: usize) -> String {
    format!("s{store:02}-{j:04}")
}

/// Name of remote secret `j` of the throttle phase's batch (store 0).
pub fn batch_secret_name(j: usize) -> String {
    format!("s00-t{j:04}")
}

/// Remote secrets of store `i` (secret `d` belongs to store `d % S`).
pub fn secrets_of_store(sizes: &Sizes, store: usize) -> usize {
    (sizes.secrets + sizes.stores - 1 - store) / sizes.stores
}

/// Every remote secret name, store by store.
pub fn all_secret_names(sizes: &Sizes) -> Vec<String> {
    (0..sizes.stores)
        .flat_map(|s| (0..secrets_of_store(sizes, s)).map(move |j| secret_name(s, j)))
        .collect()
}

/// The store a remote secret belongs to (from its name).
pub fn store_of_secret(name: &str) -> Option<usize> {
    name.strip_prefix('s')?.get(..2)?.parse().ok()
}

/// The `password` of a secret at a version: unique per secret and version, so a Secret
/// holding it proves which version it was written from.
pub fn password(secret: &str, version: &str) -> String {
    format!("pw-{secret}-{version}-7d1e")
}

/// The JSON text of `secret` at `version`: flat string fields padded to about `bytes`.
pub fn secret_json(secret: &str, version: &str, bytes: usize) -> String {
    let mut m = Map::new();
    m.insert("username".into(), json!(format!("app-{secret}")));
    m.insert("password".into(), json!(password(secret, version)));
    m.insert("host".into(), json!(format!("{secret}.db.internal")));
    m.insert("port".into(), json!("5432"));
    let mut i = 0;
    while serde_json::to_string(&m).map_or(0, |t| t.len()) + 40 < bytes {
        m.insert(
            format!("field{i:02}"),
            json!(format!("{secret}-value-{i:02}-padding-padding")),
        );
        i += 1;
    }
    Value::Object(m).to_string()
}

/// The ExternalSecrets, in creation order (round-robin over namespaces).
pub fn external_secrets(sizes: &Sizes) -> Vec<EsPlan> {
    (0..sizes.external_secrets)
        .map(|k| {
            let store = k % sizes.stores;
            let local = k / sizes.stores;
            let pool = secrets_of_store(sizes, store).max(1);
            let count = (1 + (k / 3) % 3).min(pool);
            let mut picks: Vec<usize> = vec![local % pool];
            let mut step = 1;
            while picks.len() < count {
                let candidate = (local * 7 + 13 * step) % pool;
                if !picks.contains(&candidate) {
                    picks.push(candidate);
                }
                step += 1;
            }
            let mapping = match k % 6 {
                0 => Mapping::JmesPath,
                3 => Mapping::Extract,
                _ => Mapping::Plain,
            };
            EsPlan {
                namespace: namespace(store),
                name: format!("es-{k:05}"),
                secrets: picks.into_iter().map(|j| secret_name(store, j)).collect(),
                mapping,
            }
        })
        .collect()
}

/// The throttle phase's batch: `n` ExternalSecrets in store 0's namespace naming the `d` new
/// secrets of [`batch_secret_name`] (1–3 each, all plain).
pub fn batch_external_secrets(n: usize, d: usize) -> Vec<EsPlan> {
    let d = d.max(1);
    (0..n)
        .map(|k| {
            let count = (1 + k % 3).min(d);
            let mut picks = vec![k % d];
            let mut step = 1;
            while picks.len() < count {
                let candidate = (k * 7 + 13 * step) % d;
                if !picks.contains(&candidate) {
                    picks.push(candidate);
                }
                step += 1;
            }
            EsPlan {
                namespace: namespace(0),
                name: format!("batch-{k:05}"),
                secrets: picks.into_iter().map(batch_secret_name).collect(),
                mapping: Mapping::Plain,
            }
        })
        .collect()
}

/// The emulator seed: one AccessKey per store, allowed to read only its store's secrets.
pub fn seed_yaml(sizes: &Sizes) -> String {
    let mut y = String::from("region: cn-hangzhou\naccess_keys:\n");
    for s in 0..sizes.stores {
        y.push_str(&format!(
            "  - id: {}\n    secret: {}\n    allowed_secrets: [\"s{s:02}-*\"]\n",
            access_key_id(s),
            access_key_secret(s)
        ));
    }
    y.push_str("secrets:\n");
    for name in all_secret_names(sizes) {
        // A JSON string is a valid YAML scalar.
        let text = Value::String(secret_json(&name, "v1", sizes.secret_bytes)).to_string();
        y.push_str(&format!(
            "  - name: {name}\n    text: {text}\n    version_id: v1\n"
        ));
    }
    y
}

/// The namespace, credential Secret and SecretStore of store `i`, as API objects.
pub fn store_objects(store: usize) -> Vec<Value> {
    let ns = namespace(store);
    vec![
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "alibaba-ak", "namespace": ns},
               "stringData": {"id": access_key_id(store), "secret": access_key_secret(store)}}),
        json!({"apiVersion": "alibabacloud.com/v1alpha1", "kind": "SecretStore",
               "metadata": {"name": "kms", "namespace": ns},
               "spec": {"KMS": {"KMSAuth": {
                   "accessKey": {"name": "alibaba-ak", "key": "id"},
                   "accessKeySecret": {"name": "alibaba-ak", "key": "secret"}}}}}),
    ]
}

/// The ExternalSecret object of a plan.
pub fn external_secret_object(plan: &EsPlan) -> Value {
    let store_ref = json!({"name": "kms"});
    let mut data = Vec::new();
    let mut data_process = Vec::new();
    for (i, secret) in plan.secrets.iter().enumerate() {
        match (i, plan.mapping) {
            (0, Mapping::JmesPath) => data.push(json!({
                "key": secret, "secretStoreRef": store_ref,
                "jmesPath": [{"path": "password", "objectAlias": "password"},
                             {"path": "username", "objectAlias": "username"}]})),
            (0, Mapping::Extract) => data_process.push(json!({
                "extract": {"key": secret, "name": "extract", "secretStoreRef": store_ref}})),
            _ => data.push(json!({"key": secret, "name": secret, "secretStoreRef": store_ref})),
        }
    }
    let mut spec = Map::new();
    if !data.is_empty() {
        spec.insert("data".into(), Value::Array(data));
    }
    if !data_process.is_empty() {
        spec.insert("dataProcess".into(), Value::Array(data_process));
    }
    json!({"apiVersion": "alibabacloud.com/v1alpha1", "kind": "ExternalSecret",
           "metadata": {"name": plan.name, "namespace": plan.namespace},
           "spec": Value::Object(spec)})
}

/// True when a stored Secret (JSON as the API server holds it: base64 `data`) holds every
/// `needle` in one of its values.
pub fn secret_holds(secret: &Value, needles: &[String]) -> bool {
    let Some(data) = secret.get("data").and_then(Value::as_object) else {
        return false;
    };
    let values: Vec<Vec<u8>> = data
        .values()
        .filter_map(Value::as_str)
        .filter_map(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .collect();
    needles.iter().all(|n| {
        values
            .iter()
            .any(|v| v.windows(n.len()).any(|w| w == n.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes() -> Sizes {
        Sizes {
            stores: 5,
            secrets: 60,
            external_secrets: 300,
            secret_bytes: 1024,
        }
    }

    #[test]
    fn every_secret_is_named_by_some_external_secret_of_its_own_store() {
        let s = sizes();
        let plans = external_secrets(&s);
        let named: std::collections::BTreeSet<&str> = plans
            .iter()
            .flat_map(|p| p.secrets.iter().map(String::as_str))
            .collect();
        assert_eq!(named.len(), s.secrets);
        for p in &plans {
            let store = store_of_secret(&p.secrets[0]).unwrap();
            assert_eq!(p.namespace, namespace(store));
            assert!((1..=3).contains(&p.secrets.len()));
            let distinct: std::collections::BTreeSet<_> = p.secrets.iter().collect();
            assert_eq!(distinct.len(), p.secrets.len());
        }
        let with_rule = plans.iter().filter(|p| p.mapping != Mapping::Plain).count();
        assert_eq!(with_rule, s.external_secrets / 3);
    }

    #[test]
    fn a_secret_is_about_a_kibibyte_of_flat_json_with_its_password() {
        let text = secret_json("s01-0002", "v1", 1024);
        assert!((900..=1100).contains(&text.len()), "{}", text.len());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["password"], password("s01-0002", "v1"));
        assert!(v.as_object().unwrap().values().all(Value::is_string));
    }

    #[test]
    fn the_seed_parses_and_holds_every_secret() {
        let seed = kmsync::emulator::Seed::from_yaml_str(&seed_yaml(&sizes())).unwrap();
        assert_eq!(seed.secrets.len(), 60);
        assert_eq!(seed.access_keys.len(), 5);
    }

    #[test]
    fn a_secret_holding_the_needles_in_its_values_is_recognised() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secret = json!({"data": {"a": enc("{\"password\":\"pw-1\"}"), "b": enc("pw-2")}});
        assert!(secret_holds(&secret, &["pw-1".into(), "pw-2".into()]));
        assert!(!secret_holds(&secret, &["pw-3".into()]));
    }
}
