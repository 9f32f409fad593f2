//! The SecretStore / ClusterSecretStore reconciler: checks that the store works (spec,
//! credentials, endpoint, one cheap authenticated call — `StoreResolver::check`) and reports
//! it in the `Ready` condition; a TLS warning (`ignoreSSL: true`) is a second condition of its
//! own type next to `Ready=True`. When readiness changes, the ExternalSecrets using the store
//! are woken (they sync as soon as it works, and report `StoreNotReady` at once when it stops
//! working). A deleted store's cached credentials and values are forgotten.
//!
//! Stores are checked again every `--polling-interval` (a revoked role or deleted AccessKey
//! shows up there), after failures with backoff, and whenever the store, a credential Secret
//! or a ServiceAccount it names changes.

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};

use super::Error;
use super::context::Context;
use super::events::{EventSpec, EventType};
use super::external_secret::{Report, strip_ack_finalizer};
use super::index::StoreKey;
use super::metrics::CloudCallLabels;
use crate::api::{
    ClusterSecretStore, Condition, ConditionStatus, SecretStore, SecretStoreStatus,
    StoreCapabilities, set_condition,
};
use crate::stores::StoreObject;
use crate::sync::SourceId;

/// Condition type reported next to `Ready` while TLS verification is off (`ignoreSSL`).
pub const CONDITION_TLS: &str = "InsecureSkipTLSVerify";
/// Event reason when a store starts working.
pub const REASON_READY: &str = "StoreReady";

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

fn wake_users(ctx: &Context, key: &StoreKey) {
    for es in ctx.shared.index().external_secrets_of_store(key) {
        ctx.shared.queues.external_secrets.urgent(es);
    }
}

/// Reconciles store `key` (see the module docs).
///
/// # Errors
/// [`Error::Api`] when the status could not be written.
pub async fn reconcile(ctx: &Context, key: &StoreKey) -> Result<Report, Error> {
    let shared = &ctx.shared;
    let store = match &key.namespace {
        Some(ns) => shared
            .caches
            .secret_store(ns, &key.name)
            .map(StoreObject::SecretStore),
        None => shared
            .caches
            .cluster_secret_store(&key.name)
            .map(StoreObject::ClusterSecretStore),
    };
    let Some(store) = store else {
        let memo = shared
            .store_memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        if let Some(identity) = memo.and_then(|m| m.identity) {
            ctx.resolver.forget(&identity);
            ctx.pipeline
                .cache()
                .invalidate_source(&SourceId::Store(identity));
        }
        ctx.buckets.remove(&key.label());
        wake_users(ctx, key);
        return Ok(Report::ok("deleted", None));
    };
    let stripped = match &store {
        StoreObject::SecretStore(s) => {
            let api: Api<SecretStore> = Api::namespaced(
                ctx.client.clone(),
                key.namespace.as_deref().unwrap_or_default(),
            );
            strip_ack_finalizer(&api, s.as_ref()).await
        }
        StoreObject::ClusterSecretStore(s) => {
            let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
            strip_ack_finalizer(&api, s.as_ref()).await
        }
    };
    match stripped {
        Ok(true) => return Ok(Report::ok("finalizer", None)),
        Ok(false) => {}
        // A migration aid only (RBAC written by hand may lack `patch` on stores): the store is
        // still checked and reported.
        Err(e) => {
            tracing::warn!(store = %key.label(), error = %crate::credentials::error_chain(&e), "could not remove ack-secret-manager's finalizer")
        }
    }
    let identity = store.identity();
    let previous = shared.with_store_memo(key, |m| {
        let previous = m.identity.replace(identity.clone());
        previous.filter(|p| p.uid != identity.uid)
    });
    if let Some(old) = previous {
        // Deleted and re-created under the same name: the old credentials are gone.
        ctx.resolver.forget(&old);
    }

    let per_service_account = store
        .provider()
        .cloud_auth()
        .is_some_and(|a| matches!(a.method(), crate::api::AuthMethod::ServiceAccount(_)));
    let readiness = if per_service_account && !shared.settings.enable_service_account_token {
        // Say which flag, rather than the resolver's generic "not available here".
        let path = if store.provider().oos.is_some() {
            "spec.OOS.OOSAuth"
        } else {
            "spec.KMS.KMSAuth"
        };
        crate::stores::StoreReadiness {
            ready: false,
            reason: "CredentialsUnavailable",
            message: format!(
                "{identity}: {path}.serviceAccountRef: per-ServiceAccount RRSA is disabled in this installation (start the controller with --enable-service-account-token; chart value command.enableServiceAccountToken)"
            ),
            warnings: Vec::new(),
            method: None,
            observed_generation: identity.generation,
        }
    } else {
        ctx.resolver.check(&store).await
    };
    if !readiness.ready && readiness.reason == "AuthenticationFailed" {
        // Cached temporary credentials the service no longer accepts (expired or revoked
        // session): the next check starts from the store's spec again (a new STS call).
        ctx.resolver.forget(&identity);
    }
    shared
        .metrics
        .cloud_calls
        .get_or_create(&CloudCallLabels {
            service: match store.provider().backend() {
                Some(crate::api::Backend::Oos) => "oos",
                _ if store.provider().dedicated_kms().is_some() => "kms-instance",
                _ => "kms",
            },
            action: "ReadinessProbe",
            code: if readiness.ready {
                "Success".to_owned()
            } else {
                readiness.reason.to_owned()
            },
        })
        .inc();

    let now = crate::api::status_time_now();
    let (meta, old_status) = match &store {
        StoreObject::SecretStore(s) => (s.meta().clone(), s.status.clone()),
        StoreObject::ClusterSecretStore(s) => (s.meta().clone(), s.status.clone()),
    };
    let old_status = old_status.unwrap_or_default();
    let was_ready = old_status
        .ready()
        .map(|c| c.status == ConditionStatus::True);
    let mut conditions = old_status.conditions.clone().unwrap_or_default();
    set_condition(&mut conditions, readiness.condition(now.clone()));
    conditions.retain(|c| c.type_ != CONDITION_TLS);
    if let Some(w) = readiness.warnings.first() {
        let mut tls = Condition::ready(
            ConditionStatus::True,
            w.reason,
            w.message.clone(),
            meta.generation,
            now.clone(),
        );
        tls.type_ = CONDITION_TLS.to_owned();
        if let Some(old) = old_status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == CONDITION_TLS)
        {
            tls.last_transition_time = old.last_transition_time.clone();
        }
        conditions.push(tls);
    }
    let status = SecretStoreStatus {
        conditions: Some(conditions),
        capabilities: Some(StoreCapabilities::ReadOnly),
        observed_generation: meta.generation,
    };
    if status != old_status {
        let patch = serde_json::json!({ "status": status });
        let name = key.name.as_str();
        let result = match &store {
            StoreObject::SecretStore(_) => {
                let api: Api<SecretStore> = Api::namespaced(
                    ctx.client.clone(),
                    key.namespace.as_deref().unwrap_or_default(),
                );
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
            StoreObject::ClusterSecretStore(_) => {
                let api: Api<ClusterSecretStore> = Api::all(ctx.client.clone());
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                return Err(Error::Api {
                    action: "writing the status of",
                    object: key.label(),
                    source: Box::new(e),
                });
            }
        }
    }

    let known = shared
        .store_ready(key)
        .map(|(ready, _)| ready)
        .or(was_ready);
    let failures = shared.with_store_memo(key, |m| {
        m.ready = Some((readiness.ready, readiness.message.clone()));
        m.failures = if readiness.ready {
            0
        } else {
            m.failures.saturating_add(1)
        };
        m.failures
    });
    let reference = match &store {
        StoreObject::SecretStore(s) => s.object_ref(&()),
        StoreObject::ClusterSecretStore(s) => s.object_ref(&()),
    };
    if known != Some(readiness.ready) {
        wake_users(ctx, key);
    }
    if readiness.ready {
        tracing::debug!(store = %key.label(), method = ?readiness.method, "store is ready");
        if known == Some(false) || was_ready != Some(true) {
            ctx.events
                .publish(
                    &reference,
                    EventSpec {
                        type_: EventType::Normal,
                        reason: REASON_READY,
                        action: "Check",
                        note: readiness.message.clone(),
                    },
                )
                .await;
        }
        let next = (!shared.settings.disable_polling).then_some(shared.settings.polling_interval);
        Ok(Report::ok("ready", next))
    } else {
        tracing::info!(store = %key.label(), reason = readiness.reason, error = %readiness.message, "store is not ready");
        ctx.events
            .publish(
                &reference,
                EventSpec {
                    type_: EventType::Warning,
                    reason: readiness.reason,
                    action: "Check",
                    note: readiness.message.clone(),
                },
            )
            .await;
        Ok(Report {
            result: readiness.reason,
            ok: false,
            next: Some(shared.timing.backoff(key, failures)),
        })
    }
}
