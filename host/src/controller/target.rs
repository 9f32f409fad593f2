//! The target Secret: whose it is, what kmsync wants it to hold, and whether a write is needed.
//! Pure functions over Secret objects (the writes themselves are in `external_secret`).
//!
//! What kmsync puts on a Secret it writes (besides the data, `type` and the template's labels
//! and annotations):
//!
//! | Where | Key | Value | Policies |
//! |---|---|---|---|
//! | label | `app.kubernetes.io/managed-by` | `kmsync` | Owner, Orphan |
//! | annotation | `kmsync.io/external-secret` | the ExternalSecret's name | Owner, Orphan, Merge |
//! | annotation | `kmsync.io/digest` | keyed digest of kmsync's data (`hmac-sha256:…`) | Owner, Orphan, Merge |
//! | annotation | `kmsync.io/versions` | remote version ids, in spec order | Owner, Orphan, Merge |
//! | annotation | `kmsync.io/synced-at` | when the data was last written (RFC 3339) | Owner, Orphan, Merge |
//! | annotation | `kmsync.io/restart-requested` | when a rotate rule last asked for the workloads using the Secret to be restarted (RFC 3339; kmsync restarts nothing) | Owner, Orphan, Merge |
//! | ownerReference | the ExternalSecret, `controller: true` | | Owner |
//!
//! Ownership rules (ack-secret-manager fault 2): a Secret is kmsync's to write for an
//! ExternalSecret when it carries the label and names that ExternalSecret, and (Owner) has no
//! controller other than it. An existing Secret that is not is never adopted or overwritten
//! ([`Ownership::Foreign`], condition `SecretConflict`) — except with `creationPolicy: Merge`,
//! which writes only kmsync's keys into a Secret someone else created.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::observed::ObservedSecret;
use crate::api::{CreationPolicy, ExternalSecret};
use crate::sync::{CurrentState, SyncOutput, fingerprint};

/// The field manager of every kmsync write.
pub const FIELD_MANAGER: &str = "kmsync";
/// Label on Secrets kmsync created (Owner, Orphan).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "kmsync";
/// The label selector of the managed-Secret watch.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=kmsync";
/// Annotation naming the ExternalSecret that writes the Secret.
pub const EXTERNAL_SECRET_ANNOTATION: &str = "kmsync.io/external-secret";
/// Annotation holding the keyed digest of the data kmsync wrote.
pub const DIGEST_ANNOTATION: &str = "kmsync.io/digest";
/// Annotation holding the remote version ids of the data kmsync wrote.
pub const VERSIONS_ANNOTATION: &str = "kmsync.io/versions";
/// Annotation holding when kmsync last wrote the data.
pub const SYNCED_AT_ANNOTATION: &str = "kmsync.io/synced-at";
/// Annotation holding when a write last came with a rotate rule's request to restart the
/// workloads that use the Secret (RFC 3339). kmsync restarts nothing itself; tools that roll
/// workloads on Secret changes (Stakater Reloader, ...) can act on the write.
pub const RESTART_REQUESTED_ANNOTATION: &str = "kmsync.io/restart-requested";

/// Whose the existing target Secret is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// There is no Secret of that name.
    Missing,
    /// kmsync writes it for this ExternalSecret.
    Ours,
    /// Someone else's; the message says why (never a value).
    Foreign(String),
}

/// True when `secret` carries kmsync's managed-by label.
pub fn is_managed(secret: &ObservedSecret) -> bool {
    secret.label(MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE)
}

/// The name of the ExternalSecret a Secret says it is written by.
pub fn writer_of(secret: &ObservedSecret) -> Option<&str> {
    secret.annotation(EXTERNAL_SECRET_ANNOTATION)
}

/// Decides whether `es` (with `policy`) may write the existing `secret`.
pub fn ownership(
    secret: Option<&ObservedSecret>,
    es: &ExternalSecret,
    policy: CreationPolicy,
) -> Ownership {
    let Some(secret) = secret else {
        return Ownership::Missing;
    };
    let name = secret.name();
    let es_name = es.metadata.name.as_deref().unwrap_or_default();
    let writer = writer_of(secret);
    if let Some(w) = writer
        && w != es_name
    {
        return Ownership::Foreign(format!(
            "Secret {name} is written by ExternalSecret {w}; two ExternalSecrets cannot write one Secret"
        ));
    }
    if policy == CreationPolicy::Merge {
        return Ownership::Ours;
    }
    if !is_managed(secret) || writer.is_none() {
        return Ownership::Foreign(format!(
            "Secret {name} already exists and was not created by kmsync for this ExternalSecret; kmsync does not take over existing Secrets (delete it, or set spec.target.creationPolicy: Merge to write into it)"
        ));
    }
    let uid = es.metadata.uid.as_deref().unwrap_or_default();
    if let Some(other) = secret
        .owners()
        .iter()
        .find(|o| o.controller && *o.uid != *uid)
    {
        return Ownership::Foreign(format!(
            "Secret {name} is controlled by {} {} (uid {})",
            other.kind, other.name, other.uid
        ));
    }
    Ownership::Ours
}

/// What the Secret holds according to kmsync's annotations (for the pipeline's rotation
/// decision).
pub fn current_state(secret: &ObservedSecret) -> CurrentState {
    CurrentState {
        digest: secret.annotation(DIGEST_ANNOTATION).map(str::to_owned),
        version: secret.annotation(VERSIONS_ANNOTATION).map(str::to_owned),
        synced_at: secret
            .annotation(SYNCED_AT_ANNOTATION)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// The controller owner reference kmsync sets on an Owner Secret.
pub fn owner_reference(es: &ExternalSecret) -> OwnerReference {
    OwnerReference {
        api_version: ExternalSecret::api_version(&()).into_owned(),
        kind: ExternalSecret::kind(&()).into_owned(),
        name: es.metadata.name.clone().unwrap_or_default(),
        uid: es.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The server-side apply body for `es` writing `out` under `policy` (Owner, Orphan or Merge),
/// stamped `synced_at`. Holds the values: never format it.
pub fn intent(
    es: &ExternalSecret,
    out: &SyncOutput,
    policy: CreationPolicy,
    synced_at: DateTime<Utc>,
) -> Secret {
    let desired = &out.secret;
    let mut labels = desired.labels.clone();
    let mut annotations = desired.annotations.clone();
    if policy != CreationPolicy::Merge {
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    }
    annotations.insert(
        EXTERNAL_SECRET_ANNOTATION.into(),
        es.metadata.name.clone().unwrap_or_default(),
    );
    annotations.insert(DIGEST_ANNOTATION.into(), out.digest.clone());
    annotations.insert(VERSIONS_ANNOTATION.into(), out.version.clone());
    annotations.insert(
        SYNCED_AT_ANNOTATION.into(),
        synced_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    Secret {
        metadata: ObjectMeta {
            name: Some(desired.name.clone()),
            namespace: Some(desired.namespace.clone()),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: Some(annotations),
            owner_references: (policy == CreationPolicy::Owner).then(|| vec![owner_reference(es)]),
            ..ObjectMeta::default()
        },
        // Merge writes keys only: the type is the existing Secret's business.
        type_: (policy != CreationPolicy::Merge).then(|| desired.type_.clone()),
        data: Some(
            desired
                .data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
                .collect(),
        ),
        immutable: (desired.immutable && policy != CreationPolicy::Merge).then_some(true),
        string_data: None,
    }
}

/// True when `out` writes new data and a rotate rule asked for a restart with it.
pub fn restart_requested(out: &SyncOutput) -> bool {
    out.rotation.restart && out.rotation.should_write()
}

/// Puts [`RESTART_REQUESTED_ANNOTATION`] on `intent`: `now` when [`restart_requested`], else
/// the time already on `existing`, if any — server-side apply would otherwise remove it at the
/// next write, losing the record of the last request.
pub fn stamp_restart(
    intent: &mut Secret,
    out: &SyncOutput,
    existing: Option<&ObservedSecret>,
    now: DateTime<Utc>,
) {
    let value = if restart_requested(out) {
        Some(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    } else {
        existing
            .and_then(|s| s.annotation(RESTART_REQUESTED_ANNOTATION))
            .map(str::to_owned)
    };
    if let Some(value) = value {
        intent
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(RESTART_REQUESTED_ANNOTATION.into(), value);
    }
}

/// How the existing Secret differs from the intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// Nothing to write.
    None,
    /// Data, labels, annotations or the owner reference differ: apply.
    Apply(&'static str),
    /// The Secret must be deleted and created again: it is immutable and its data must
    /// change, or its type must change (Kubernetes refuses both in place).
    Replace(&'static str),
}

/// Compares `actual` with `intent` (ignoring `kmsync.io/synced-at`, which only changes with a
/// write). Values are compared by fingerprint. A data key kmsync applied before
/// ([`ObservedSecret::owned_keys`]) and no longer wants must go.
pub fn drift(actual: &ObservedSecret, intent: &Secret) -> Drift {
    let empty = BTreeMap::new();
    let intent_data = intent.data.as_ref().unwrap_or(&empty);
    let data_differs = intent_data
        .iter()
        .any(|(k, v)| actual.fingerprint(k) != Some(&fingerprint(&v.0)))
        || actual
            .owned_keys()
            .any(|k| !intent_data.contains_key(k) && actual.has_key(k));
    if let Some(t) = &intent.type_
        && t != actual.type_()
    {
        return Drift::Replace("the Secret type changes");
    }
    let immutable = actual.immutable();
    if immutable && data_differs {
        return Drift::Replace("the Secret is immutable and its data changes");
    }
    if immutable && intent.immutable != Some(true) {
        return Drift::Replace("the Secret is immutable and must become mutable");
    }
    if data_differs {
        return Drift::Apply("data");
    }
    fn map_differs<'a>(
        want: &Option<BTreeMap<String, String>>,
        have: impl Fn(&str) -> Option<&'a str>,
    ) -> bool {
        want.iter()
            .flatten()
            .any(|(k, v)| k != SYNCED_AT_ANNOTATION && have(k) != Some(v.as_str()))
    }
    if map_differs(&intent.metadata.labels, |k| actual.label(k)) {
        return Drift::Apply("labels");
    }
    if map_differs(&intent.metadata.annotations, |k| actual.annotation(k)) {
        return Drift::Apply("annotations");
    }
    for want in intent.metadata.owner_references.iter().flatten() {
        let present = actual
            .owners()
            .iter()
            .any(|o| *o.uid == *want.uid && o.controller == (want.controller == Some(true)));
        if !present {
            return Drift::Apply("owner reference");
        }
    }
    if intent.immutable == Some(true) && !immutable {
        return Drift::Apply("immutable");
    }
    Drift::None
}

/// True when the Secret's data for kmsync's keys matches the digest recorded on it, i.e.
/// nobody changed kmsync's values by hand. Used between refreshes, where no desired data is
/// at hand: the recorded digest is recomputed from the fingerprints of the keys kmsync owns.
pub fn data_matches_digest(secret: &ObservedSecret, key: &crate::sync::DigestKey) -> bool {
    let Some(recorded) = secret.annotation(DIGEST_ANNOTATION) else {
        return false;
    };
    let mut ours = Vec::with_capacity(secret.owned_keys().len());
    for k in secret.owned_keys() {
        match secret.fingerprint(k) {
            Some(fp) => ours.push((k, *fp)),
            None => return false,
        }
    }
    key.digest_fingerprints(ours.into_iter()) == recorded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{DesiredSecret, RotationAction, RotationDecision};
    use crate::value::SecretBytes;
    use chrono::TimeZone as _;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    fn es(name: &str, uid: &str) -> ExternalSecret {
        let mut es: ExternalSecret = serde_yaml_ng::from_str(&format!(
            "apiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: ns}}\nspec: {{}}"
        ))
        .unwrap();
        es.metadata.uid = Some(uid.into());
        es
    }

    fn output(data: &[(&str, &str)]) -> SyncOutput {
        SyncOutput {
            secret: DesiredSecret {
                namespace: "ns".into(),
                name: "app".into(),
                type_: "Opaque".into(),
                data: data
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), SecretBytes::from(*v)))
                    .collect(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                immutable: false,
            },
            digest: "hmac-sha256:00".into(),
            version: "v1".into(),
            entries: Vec::new(),
            rotation: RotationDecision {
                action: RotationAction::Sync,
                reason: "changed".into(),
                requeue_after: None,
                restart: false,
                decided_by: None,
            },
            data_age: std::time::Duration::ZERO,
        }
    }

    /// The Secret `es` wrote with `data`, as the API server returns it.
    fn written_secret(
        es: &ExternalSecret,
        data: &[(&str, &str)],
        policy: CreationPolicy,
    ) -> Secret {
        let mut s = intent(es, &output(data), policy, Utc::now());
        s.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({
                "f:data": data.iter().map(|(k, _)| (format!("f:{k}"), serde_json::json!({}))).collect::<serde_json::Map<_, _>>()
            }))),
            ..ManagedFieldsEntry::default()
        }]);
        s
    }

    fn written(
        es: &ExternalSecret,
        data: &[(&str, &str)],
        policy: CreationPolicy,
    ) -> ObservedSecret {
        ObservedSecret::observe(written_secret(es, data, policy), FIELD_MANAGER)
    }

    fn observe(s: Secret) -> ObservedSecret {
        ObservedSecret::observe(s, FIELD_MANAGER)
    }

    #[test]
    fn a_requested_restart_is_stamped_on_the_write_and_kept_by_later_ones() {
        let e = es("app", "u1");
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 30, 0).unwrap();
        let stamped = |out: &SyncOutput, existing: Option<&ObservedSecret>| {
            let mut s = intent(&e, out, CreationPolicy::Owner, now);
            stamp_restart(&mut s, out, existing, now);
            s.metadata
                .annotations
                .unwrap()
                .get(RESTART_REQUESTED_ANNOTATION)
                .cloned()
        };
        let mut out = output(&[("a", "1")]);
        // No request: no annotation.
        assert!(!restart_requested(&out));
        assert_eq!(stamped(&out, None), None);
        // A sync that asks for a restart: the write's time.
        out.rotation.restart = true;
        assert!(restart_requested(&out));
        assert_eq!(stamped(&out, None).as_deref(), Some("2026-03-01T12:30:00Z"));
        // A later write without a request keeps the last one (and so does not drift on it).
        let mut existing = written_secret(&e, &[("a", "1")], CreationPolicy::Owner);
        existing.metadata.annotations.as_mut().unwrap().insert(
            RESTART_REQUESTED_ANNOTATION.into(),
            "2026-02-01T00:00:00Z".into(),
        );
        let existing = observe(existing);
        out.rotation.restart = false;
        assert_eq!(
            stamped(&out, Some(&existing)).as_deref(),
            Some("2026-02-01T00:00:00Z")
        );
        // A deferred version writes nothing now: no new request even if the rule set restart.
        out.rotation.restart = true;
        out.rotation.action = RotationAction::Defer;
        assert!(!restart_requested(&out));
        assert_eq!(
            stamped(&out, Some(&existing)).as_deref(),
            Some("2026-02-01T00:00:00Z")
        );
    }

    #[test]
    fn an_unlabelled_secret_is_never_taken_over_unless_merging() {
        let e = es("app", "u1");
        let foreign = observe(Secret {
            metadata: ObjectMeta {
                name: Some("app".into()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        });
        assert!(matches!(
            ownership(Some(&foreign), &e, CreationPolicy::Owner),
            Ownership::Foreign(m) if m.contains("was not created by kmsync")
        ));
        assert!(matches!(
            ownership(Some(&foreign), &e, CreationPolicy::Orphan),
            Ownership::Foreign(_)
        ));
        assert_eq!(
            ownership(Some(&foreign), &e, CreationPolicy::Merge),
            Ownership::Ours
        );
        assert_eq!(
            ownership(None, &e, CreationPolicy::Owner),
            Ownership::Missing
        );
    }

    #[test]
    fn a_secret_written_for_another_external_secret_or_controlled_by_another_object_is_foreign() {
        let mine = es("app", "u1");
        let theirs = es("other", "u2");
        let secret = written_secret(&theirs, &[("a", "1")], CreationPolicy::Owner);
        let s = observe(secret.clone());
        assert!(matches!(
            ownership(Some(&s), &mine, CreationPolicy::Owner),
            Ownership::Foreign(m) if m.contains("ExternalSecret other")
        ));
        // Same name, different uid (deleted and re-created while still controlled): foreign.
        let recreated = es("other", "u3");
        assert!(matches!(
            ownership(Some(&s), &recreated, CreationPolicy::Owner),
            Ownership::Foreign(m) if m.contains("controlled by")
        ));
        assert_eq!(
            ownership(Some(&s), &theirs, CreationPolicy::Owner),
            Ownership::Ours
        );
        // Retained (owner reference removed) then re-created: taken back.
        let mut retained = secret;
        retained.metadata.owner_references = None;
        let retained = observe(retained);
        assert_eq!(
            ownership(Some(&retained), &recreated, CreationPolicy::Owner),
            Ownership::Ours
        );
    }

    #[test]
    fn the_intent_carries_label_annotations_and_owner_by_policy() {
        let e = es("app", "u1");
        let owner = intent(
            &e,
            &output(&[("a", "1")]),
            CreationPolicy::Owner,
            Utc::now(),
        );
        assert_eq!(
            owner.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
            MANAGED_BY_VALUE
        );
        let refs = owner.metadata.owner_references.as_ref().unwrap();
        assert_eq!(refs[0].uid, "u1");
        assert_eq!(refs[0].kind, "ExternalSecret");
        assert_eq!(refs[0].controller, Some(true));
        assert_eq!(
            owner.metadata.annotations.as_ref().unwrap()[DIGEST_ANNOTATION],
            "hmac-sha256:00"
        );
        let orphan = intent(
            &e,
            &output(&[("a", "1")]),
            CreationPolicy::Orphan,
            Utc::now(),
        );
        assert!(orphan.metadata.owner_references.is_none());
        let merge = intent(
            &e,
            &output(&[("a", "1")]),
            CreationPolicy::Merge,
            Utc::now(),
        );
        assert!(merge.metadata.labels.is_none());
        assert!(merge.type_.is_none());
    }

    #[test]
    fn drift_sees_changed_values_removed_keys_and_lost_metadata_but_not_foreign_keys() {
        let e = es("app", "u1");
        let want = intent(
            &e,
            &output(&[("a", "1"), ("b", "2")]),
            CreationPolicy::Owner,
            Utc::now(),
        );
        let original = written_secret(&e, &[("a", "1"), ("b", "2")], CreationPolicy::Owner);
        let mut actual = original.clone();
        let clean = observe(actual.clone());
        assert_eq!(clean.owned_keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(drift(&clean, &want), Drift::None);

        // Someone adds their own key: not kmsync's business.
        actual
            .data
            .as_mut()
            .unwrap()
            .insert("theirs".into(), ByteString(b"x".to_vec()));
        assert_eq!(drift(&observe(actual.clone()), &want), Drift::None);
        // Someone edits kmsync's key: restore.
        actual
            .data
            .as_mut()
            .unwrap()
            .insert("a".into(), ByteString(b"hacked".to_vec()));
        assert_eq!(drift(&observe(actual.clone()), &want), Drift::Apply("data"));
        // Someone deletes kmsync's key: restore.
        actual.data.as_mut().unwrap().remove("a");
        assert_eq!(drift(&observe(actual), &want), Drift::Apply("data"));
        // A key kmsync wrote and no longer wants: remove it.
        let fewer = intent(
            &e,
            &output(&[("b", "2")]),
            CreationPolicy::Owner,
            Utc::now(),
        );
        assert_eq!(drift(&clean, &fewer), Drift::Apply("data"));
        // ... unless it is gone already.
        let mut gone = written_secret(&e, &[("a", "1"), ("b", "2")], CreationPolicy::Owner);
        gone.data.as_mut().unwrap().remove("a");
        assert_eq!(drift(&observe(gone), &fewer), Drift::None);
        // The owner reference was stripped.
        let mut orphaned = original.clone();
        orphaned.metadata.owner_references = None;
        assert_eq!(
            drift(&observe(orphaned), &want),
            Drift::Apply("owner reference")
        );
        // The label was removed.
        let mut unlabelled = original.clone();
        unlabelled.metadata.labels = None;
        assert_eq!(drift(&observe(unlabelled), &want), Drift::Apply("labels"));
        // An annotation kmsync sets was changed.
        let mut relabelled = original;
        relabelled
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(VERSIONS_ANNOTATION.into(), "other".into());
        assert_eq!(
            drift(&observe(relabelled), &want),
            Drift::Apply("annotations")
        );
    }

    #[test]
    fn immutable_secrets_and_type_changes_need_a_replacement() {
        let e = es("app", "u1");
        let mut out = output(&[("a", "1")]);
        out.secret.immutable = true;
        let want = intent(&e, &out, CreationPolicy::Owner, Utc::now());
        let mut actual = written_secret(&e, &[("a", "0")], CreationPolicy::Owner);
        actual.immutable = Some(true);
        assert!(matches!(drift(&observe(actual), &want), Drift::Replace(_)));
        // Same data: nothing to do, even though it is immutable.
        let same = {
            let mut s = written_secret(&e, &[("a", "1")], CreationPolicy::Owner);
            s.immutable = Some(true);
            observe(s)
        };
        assert_eq!(drift(&same, &want), Drift::None);
        let mut tls = output(&[("a", "1")]);
        tls.secret.type_ = "kubernetes.io/tls".into();
        let want_tls = intent(&e, &tls, CreationPolicy::Owner, Utc::now());
        let plain = written(&e, &[("a", "1")], CreationPolicy::Owner);
        assert_eq!(
            drift(&plain, &want_tls),
            Drift::Replace("the Secret type changes")
        );
    }

    #[test]
    fn the_recorded_digest_detects_hand_edits_without_the_desired_data() {
        let key = crate::sync::DigestKey::from_bytes(&[7u8; 32]).unwrap();
        let e = es("app", "u1");
        let data: BTreeMap<String, SecretBytes> = [
            ("a".to_owned(), SecretBytes::from("1")),
            ("b".to_owned(), SecretBytes::from("2")),
        ]
        .into_iter()
        .collect();
        let mut out = output(&[("a", "1"), ("b", "2")]);
        out.digest = key.digest(&data);
        let mut s = written_secret(&e, &[("a", "1"), ("b", "2")], CreationPolicy::Owner);
        s.metadata.annotations = intent(&e, &out, CreationPolicy::Owner, Utc::now())
            .metadata
            .annotations;
        assert!(data_matches_digest(&observe(s.clone()), &key));
        // A key of someone else's does not count.
        let mut theirs = s.clone();
        theirs
            .data
            .as_mut()
            .unwrap()
            .insert("c".into(), ByteString(b"3".to_vec()));
        assert!(data_matches_digest(&observe(theirs), &key));
        // Another key gives another digest.
        let other = crate::sync::DigestKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(!data_matches_digest(&observe(s.clone()), &other));
        let mut edited = s.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("a".into(), ByteString(b"2".to_vec()));
        assert!(!data_matches_digest(&observe(edited), &key));
        let mut removed = s.clone();
        removed.data.as_mut().unwrap().remove("a");
        assert!(!data_matches_digest(&observe(removed), &key));
        let mut unrecorded = s.clone();
        unrecorded
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(DIGEST_ANNOTATION);
        assert!(!data_matches_digest(&observe(unrecorded), &key));
        let state = current_state(&observe(s));
        assert_eq!(state.digest.as_deref(), Some(out.digest.as_str()));
        assert_eq!(state.version.as_deref(), Some("v1"));
        assert!(state.synced_at.is_some());
    }
}
