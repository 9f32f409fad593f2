//! The ClusterExternalSecret reconciler: the same ExternalSecret in every namespace the object
//! selects (`spec.conditions`, deprecated `spec.namespaceSelectors`), applied with the field
//! manager `kmsync` and controlled by the ClusterExternalSecret (so deleting it deletes them,
//! each through its own finalizer); removed from namespaces that stop matching. An existing
//! ExternalSecret of that name that it does not control is left alone and reported in
//! `status.failedNamespaces`.
//!
//! Runs again when the object changes, a namespace appears or changes labels, one of its
//! ExternalSecrets changes or disappears, and every `spec.rotationInterval` (else
//! `--polling-interval`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use super::Error;
use super::context::Context;
use super::events::{EventSpec, EventType};
use super::external_secret::Report;
use super::index::ObjectKey;
use super::target::FIELD_MANAGER;
use crate::api::{
    ClusterExternalSecret, ClusterExternalSecretStatus, Condition, ConditionStatus, ExternalSecret,
    NamespaceFailure, set_condition,
};

/// `Ready=True`: every selected namespace holds the current ExternalSecret.
pub const REASON_PROVISIONED: &str = "Provisioned";
/// `Ready=False`: some namespaces could not be provisioned.
pub const REASON_NAMESPACES_FAILED: &str = "NamespacesFailed";

fn controller_ref(ces: &ClusterExternalSecret) -> OwnerReference {
    OwnerReference {
        api_version: ClusterExternalSecret::api_version(&()).into_owned(),
        kind: ClusterExternalSecret::kind(&()).into_owned(),
        name: ces.metadata.name.clone().unwrap_or_default(),
        uid: ces.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn controlled_by(es: &ExternalSecret, uid: &str) -> bool {
    es.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

fn subset(
    want: &Option<BTreeMap<String, String>>,
    have: &Option<BTreeMap<String, String>>,
) -> bool {
    want.iter()
        .flatten()
        .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
}

/// Reconciles ClusterExternalSecret `key` (see the module docs).
///
/// # Errors
/// [`Error::Api`] when the status could not be written.
pub async fn reconcile(ctx: &Context, key: &ObjectKey) -> Result<Report, Error> {
    let shared = &ctx.shared;
    let Some(ces) = shared.caches.cluster_external_secret(&key.name) else {
        return Ok(Report::ok("deleted", None));
    };
    if ces.metadata.deletion_timestamp.is_some() {
        // Its ExternalSecrets go with it (garbage collection, then their finalizers).
        return Ok(Report::ok("deleting", None));
    }
    let uid = ces.metadata.uid.clone().unwrap_or_default();
    let es_name = ces.external_secret_name().to_owned();
    let mut selected: Vec<String> = shared
        .caches
        .namespaces()
        .into_iter()
        .filter(|(name, labels)| {
            shared.settings.namespaces.contains(name) && ces.spec.selects_namespace(name, labels)
        })
        .map(|(name, _)| name)
        .collect();
    selected.sort();
    let metadata = ces
        .spec
        .external_secret_metadata
        .clone()
        .unwrap_or_default();
    let mut provisioned = Vec::new();
    let mut failed = Vec::new();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for ns in &selected {
        if let Some(existing) = shared.caches.external_secret(ns, &es_name) {
            if !controlled_by(&existing, &uid) {
                failed.push(NamespaceFailure {
                    namespace: ns.clone(),
                    reason: Some(format!(
                        "ExternalSecret {ns}/{es_name} already exists and is not managed by this ClusterExternalSecret"
                    )),
                });
                continue;
            }
            if existing.spec == ces.spec.external_secret_spec
                && subset(&metadata.labels, &existing.metadata.labels)
                && subset(&metadata.annotations, &existing.metadata.annotations)
            {
                provisioned.push(ns.clone());
                continue;
            }
        }
        let mut meta = serde_json::json!({
            "name": es_name,
            "namespace": ns,
            "ownerReferences": [controller_ref(&ces)],
        });
        if let Some(labels) = &metadata.labels {
            meta["labels"] = serde_json::json!(labels);
        }
        if let Some(annotations) = &metadata.annotations {
            meta["annotations"] = serde_json::json!(annotations);
        }
        let desired = serde_json::json!({
            "apiVersion": ExternalSecret::api_version(&()),
            "kind": ExternalSecret::kind(&()),
            "metadata": meta,
            "spec": ces.spec.external_secret_spec,
        });
        let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), ns);
        match api.patch(&es_name, &params, &Patch::Apply(&desired)).await {
            Ok(_) => {
                tracing::info!(clusterexternalsecret = %key, namespace = %ns, "applied the ExternalSecret");
                provisioned.push(ns.clone());
            }
            Err(e) => failed.push(NamespaceFailure {
                namespace: ns.clone(),
                reason: Some(crate::credentials::error_chain(&e)),
            }),
        }
    }
    // Namespaces that no longer match (or an old externalSecretName): remove.
    for es in shared.caches.external_secrets.all() {
        if !controlled_by(&es, &uid) || es.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ns = es.metadata.namespace.clone().unwrap_or_default();
        let name = es.metadata.name.clone().unwrap_or_default();
        if name == es_name && selected.contains(&ns) {
            continue;
        }
        let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &ns);
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(clusterexternalsecret = %key, namespace = %ns, "removed the ExternalSecret from a namespace no longer selected");
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => failed.push(NamespaceFailure {
                namespace: ns.clone(),
                reason: Some(format!(
                    "removing ExternalSecret {ns}/{name}: {}",
                    crate::credentials::error_chain(&e)
                )),
            }),
        }
    }

    let now = crate::api::status_time_now();
    let old = ces.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let ready = failed.is_empty();
    let message = if ready {
        format!(
            "ExternalSecret {es_name} is in {} namespace(s)",
            provisioned.len()
        )
    } else {
        format!(
            "{} namespace(s) failed: {}",
            failed.len(),
            failed
                .iter()
                .map(|f| format!("{}: {}", f.namespace, f.reason.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    set_condition(
        &mut conditions,
        Condition::ready(
            if ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            if ready {
                REASON_PROVISIONED
            } else {
                REASON_NAMESPACES_FAILED
            },
            message.clone(),
            ces.metadata.generation,
            now,
        ),
    );
    let status = ClusterExternalSecretStatus {
        external_secret_name: Some(es_name),
        failed_namespaces: (!failed.is_empty()).then_some(failed),
        provisioned_namespaces: Some(provisioned),
        conditions: Some(conditions),
        observed_generation: ces.metadata.generation,
    };
    if ces.status.as_ref() != Some(&status) {
        let api: Api<ClusterExternalSecret> = Api::all(ctx.client.clone());
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(Error::Api {
                    action: "writing the status of",
                    object: format!("ClusterExternalSecret {}", key.name),
                    source: Box::new(e),
                });
            }
        }
        if !ready {
            ctx.events
                .publish(
                    &ces.object_ref(&()),
                    EventSpec {
                        type_: EventType::Warning,
                        reason: REASON_NAMESPACES_FAILED,
                        action: "Provision",
                        note: message,
                    },
                )
                .await;
        }
    }
    let failures = shared.with_ces_memo(key, |m| {
        m.1 = if ready { 0 } else { m.1.saturating_add(1) };
        m.1
    });
    let interval = ces
        .spec
        .rotation_interval()
        .ok()
        .flatten()
        .unwrap_or(shared.settings.polling_interval);
    Ok(if ready {
        Report::ok("provisioned", Some(interval))
    } else {
        Report {
            result: REASON_NAMESPACES_FAILED,
            ok: false,
            next: Some(shared.timing.backoff(key, failures).min(interval)),
        }
    })
}
