//! [`ObservedSecret`]: what the controller keeps of a Secret it manages, in the managed-Secret
//! cache and in the memory of its own last write.
//!
//! A full `Secret` as the API server returns it is mostly what the controller never reads:
//! `managedFields` (a tree per field manager), timestamps and, above all, the values. The
//! controller needs the metadata that decides ownership and drift, the type, `immutable`,
//! which data keys kmsync's field manager owns, and whether each value is the one it wants.
//! For the last it keeps the SHA-256 [`Fingerprint`] of each value, never the value: at 10,000
//! Secrets this is a fraction of the memory, and the cache of managed Secrets holds no secret
//! plaintext (the only values the controller keeps between syncs are those of the fetch cache,
//! each remote secret once for one polling interval). The recorded digest can still be checked
//! without the values ([`crate::sync::DigestKey::digest_fingerprints`]).
//!
//! Fingerprints are not keyed: a keyed one would need the installation's digest key before
//! the watches start, and a standby replica caches Secrets before it may create that key.
//! They never leave the process (`Debug` omits them); whoever can read the process's memory
//! can read the fetch cache and the digest key too.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::Lookup;

use crate::sync::{Fingerprint, fingerprint};

/// kubectl's copy of the last applied object: never read, and it can hold the values.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Secret reduced to what the controller reads (see the module docs). Built only by
/// [`ObservedSecret::observe`]; `Debug` shows the data keys, never the fingerprints.
///
/// Strings are boxed and maps are sorted slices: at 10,000 Secrets a map with a handful of
/// entries costs a full B-tree node each, several times the entries themselves.
#[derive(Clone, PartialEq, Eq)]
pub struct ObservedSecret {
    name: Box<str>,
    namespace: Box<str>,
    uid: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    labels: Pairs,
    /// Without `kubectl.kubernetes.io/last-applied-configuration`.
    annotations: Pairs,
    owners: Box<[Owner]>,
    type_: Option<Box<str>>,
    immutable: Option<bool>,
    /// Every data key with the fingerprint of its value, in byte order of the keys.
    data: Box<[(Box<str>, Fingerprint)]>,
    /// The data keys kmsync's field manager owns by server-side apply (from
    /// `managedFields`), in byte order.
    owned: Box<[Box<str>]>,
}

/// Key/value pairs in byte order of the keys (from a `BTreeMap`).
type Pairs = Box<[(Box<str>, Box<str>)]>;

fn pairs(map: Option<std::collections::BTreeMap<String, String>>) -> Pairs {
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
        .collect()
}

fn lookup<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs
        .binary_search_by(|(k, _)| (**k).cmp(key))
        .ok()
        .map(|i| &*pairs[i].1)
}

/// One entry of `metadata.ownerReferences`, as far as the controller reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `kind`.
    pub kind: Box<str>,
    /// `name`.
    pub name: Box<str>,
    /// `uid`.
    pub uid: Box<str>,
    /// `controller: true`.
    pub controller: bool,
}

impl fmt::Debug for ObservedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservedSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("resource_version", &self.resource_version)
            .field("labels", &self.labels)
            .field("annotations", &self.annotations)
            .field("owners", &self.owners)
            .field("type_", &self.type_)
            .field("immutable", &self.immutable)
            .field(
                "keys",
                &self.data.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("owned", &self.owned)
            .finish()
    }
}

impl ObservedSecret {
    /// Reduces `secret`, taking the data keys owned by the server-side apply entries of
    /// field manager `manager` from `metadata.managedFields`. The values are dropped here.
    pub fn observe(secret: Secret, manager: &str) -> Self {
        let Secret {
            metadata,
            type_,
            immutable,
            data,
            ..
        } = secret;
        let owned = owned_keys(&metadata, manager);
        let ObjectMeta {
            name,
            namespace,
            uid,
            resource_version,
            labels,
            mut annotations,
            owner_references,
            ..
        } = metadata;
        if let Some(a) = annotations.as_mut() {
            a.remove(LAST_APPLIED);
        }
        Self {
            name: name.unwrap_or_default().into_boxed_str(),
            namespace: namespace.unwrap_or_default().into_boxed_str(),
            uid: uid.map(String::into_boxed_str),
            resource_version: resource_version.map(String::into_boxed_str),
            labels: pairs(labels),
            annotations: pairs(annotations),
            owners: owner_references
                .into_iter()
                .flatten()
                .map(|o| Owner {
                    kind: o.kind.into_boxed_str(),
                    name: o.name.into_boxed_str(),
                    uid: o.uid.into_boxed_str(),
                    controller: o.controller == Some(true),
                })
                .collect(),
            type_: type_.map(String::into_boxed_str),
            immutable,
            // A BTreeMap iterates in byte order of its keys.
            data: data
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.into_boxed_str(), fingerprint(&v.0)))
                .collect(),
            owned,
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.namespace`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        lookup(&self.labels, key)
    }

    /// The value of annotation `key` (never kubectl's last-applied configuration).
    pub fn annotation(&self, key: &str) -> Option<&str> {
        lookup(&self.annotations, key)
    }

    /// `metadata.ownerReferences`, in order.
    pub fn owners(&self) -> &[Owner] {
        &self.owners
    }

    /// `type`; `Opaque` when the server gave none.
    pub fn type_(&self) -> &str {
        self.type_.as_deref().unwrap_or("Opaque")
    }

    /// `immutable: true`.
    pub fn immutable(&self) -> bool {
        self.immutable == Some(true)
    }

    /// The fingerprint of the value of data key `key`, if the Secret has it.
    pub fn fingerprint(&self, key: &str) -> Option<&Fingerprint> {
        self.data
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &self.data[i].1)
    }

    /// True when the Secret has data key `key`.
    pub fn has_key(&self, key: &str) -> bool {
        self.fingerprint(key).is_some()
    }

    /// The data keys kmsync's field manager owns, in byte order.
    pub fn owned_keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.owned.iter().map(|k| &**k)
    }
}

/// The data keys field manager `manager` owns through server-side apply, sorted and unique.
fn owned_keys(meta: &ObjectMeta, manager: &str) -> Box<[Box<str>]> {
    let mut keys = std::collections::BTreeSet::new();
    for entry in meta.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(manager) || entry.operation.as_deref() != Some("Apply")
        {
            continue;
        }
        let Some(fields) = &entry.fields_v1 else {
            continue;
        };
        if let Some(data) = fields.0.get("f:data").and_then(|d| d.as_object()) {
            keys.extend(data.keys().filter_map(|k| k.strip_prefix("f:")));
        }
    }
    keys.into_iter().map(Box::from).collect()
}

impl Lookup for ObservedSecret {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        "Secret".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "secrets".into()
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.namespace))
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        self.resource_version.as_deref().map(Cow::Borrowed)
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        self.uid.as_deref().map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        FieldsV1, ManagedFieldsEntry, OwnerReference,
    };

    use super::*;

    fn entry(manager: &str, operation: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    fn secret() -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("team".into()),
                uid: Some("u1".into()),
                resource_version: Some("7".into()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".into(),
                    "kmsync".into(),
                )])),
                owner_references: Some(vec![
                    OwnerReference {
                        kind: "ConfigMap".into(),
                        name: "cm".into(),
                        uid: "u8".into(),
                        ..OwnerReference::default()
                    },
                    OwnerReference {
                        kind: "ExternalSecret".into(),
                        name: "app".into(),
                        uid: "u9".into(),
                        controller: Some(true),
                        ..OwnerReference::default()
                    },
                ]),
                annotations: Some(BTreeMap::from([
                    ("kmsync.io/digest".into(), "hmac-sha256:00".into()),
                    (
                        LAST_APPLIED.into(),
                        r#"{"data":{"password":"aHVudGVyMg=="}}"#.into(),
                    ),
                ])),
                managed_fields: Some(vec![
                    entry(
                        "kmsync",
                        "Apply",
                        serde_json::json!({"f:data": {"f:password": {}, "f:user": {}}, "f:metadata": {}}),
                    ),
                    entry(
                        "kmsync",
                        "Update",
                        serde_json::json!({"f:data": {"f:other": {}}}),
                    ),
                    entry(
                        "kubectl",
                        "Apply",
                        serde_json::json!({"f:data": {"f:extra": {}}}),
                    ),
                ]),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                ("user".into(), ByteString(b"app".to_vec())),
                ("password".into(), ByteString(b"hunter2".to_vec())),
                ("extra".into(), ByteString(b"x".to_vec())),
            ])),
            ..Secret::default()
        }
    }

    #[test]
    fn values_become_fingerprints_and_only_kmsync_apply_keys_are_owned() {
        let o = ObservedSecret::observe(secret(), "kmsync");
        assert_eq!(o.owned_keys().collect::<Vec<_>>(), ["password", "user"]);
        assert_eq!(o.fingerprint("password"), Some(&fingerprint(b"hunter2")));
        assert_eq!(o.fingerprint("extra"), Some(&fingerprint(b"x")));
        assert!(o.has_key("user"));
        assert!(!o.has_key("other"));
        assert_eq!(o.fingerprint("zzz"), None);
        assert_eq!(o.type_(), "Opaque");
        assert!(!o.immutable());
        assert_eq!(o.resource_version(), Some("7"));
        assert_eq!(o.uid(), Some("u1"));
        assert_eq!((o.namespace(), o.name()), ("team", "db"));
        assert_eq!(o.annotation("kmsync.io/digest"), Some("hmac-sha256:00"));
        assert_eq!(o.annotation(LAST_APPLIED), None);
        assert_eq!(o.annotations.len(), 1);
        assert_eq!(o.label("app.kubernetes.io/managed-by"), Some("kmsync"));
        assert_eq!(o.label("any"), None);
        let owners: Vec<_> = o
            .owners()
            .iter()
            .map(|w| (&*w.kind, &*w.name, &*w.uid, w.controller))
            .collect();
        assert_eq!(
            owners,
            [
                ("ConfigMap", "cm", "u8", false),
                ("ExternalSecret", "app", "u9", true)
            ]
        );
    }

    #[test]
    fn debug_shows_keys_but_neither_values_nor_fingerprints() {
        let o = ObservedSecret::observe(secret(), "kmsync");
        let text = format!("{o:?}");
        assert!(text.contains("\"password\""), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let fp = fingerprint(b"hunter2");
        assert!(!text.contains(&hex::encode(fp)), "{text}");
        assert!(!text.contains(&format!("{fp:?}")), "{text}");
    }

    #[test]
    fn the_cache_key_is_the_secret_name_and_namespace() {
        let o = ObservedSecret::observe(secret(), "kmsync");
        let r = o.to_object_ref(());
        assert_eq!(r.name, "db");
        assert_eq!(r.namespace.as_deref(), Some("team"));
        assert_eq!(ObservedSecret::plural(&()), "secrets");
    }
}
