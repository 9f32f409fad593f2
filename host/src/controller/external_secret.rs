//! The ExternalSecret reconciler.
//!
//! ```text
//!  reconcile(es)
//!   ├─ strip ack-secret-manager's finalizer (migration aid)
//!   └─ finalizer(kmsync.io/finalizer)
//!       ├─ Apply ──▶ target Secret: cache (or GET) ─▶ ownership ─▶ due? ──no──▶ requeue at the
//!       │            next refresh (no KMS call, no write)
//!       │                         │ yes (new/changed object, interval elapsed, force-sync,
//!       │                         ▼      Secret missing or edited by hand, last sync failed)
//!       │            pipeline.sync ─▶ drift vs. Secret ─▶ apply / replace / nothing
//!       │                         ─▶ status (only if it changed), Event (only on a write/error)
//!       └─ Cleanup ─▶ deletionPolicy: Delete → delete the Secret; Retain → drop the owner
//!                     reference so garbage collection keeps it
//! ```
//!
//! A failed fetch or rule never touches the Secret: the last good data stays and `Ready=False`
//! carries the reason and the sanitised error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};

use super::Error;
use super::context::{Context, Shared};
use super::events::{EventSpec, EventType};
use super::index::{ObjectKey, StoreKey, external_secret_stores};
use super::metrics::WriteLabels;
use super::observed::ObservedSecret;
use super::target::{self, Drift, FIELD_MANAGER, Ownership, current_state, data_matches_digest};
use crate::api::{
    Condition, ConditionStatus, CreationPolicy, DataSyncResult, DeletionPolicy, ExternalSecret,
    ExternalSecretStatus, RefreshPolicy, SecretBinding, set_condition,
};
use crate::stores::StoreObject;
use crate::sync::{RotationAction, SourceId, SyncError, SyncOutput};

/// kmsync's finalizer on ExternalSecrets.
pub const FINALIZER: &str = "kmsync.io/finalizer";
/// ack-secret-manager's finalizer, stripped from objects kmsync reconciles (nothing else
/// removes it once ack-secret-manager is gone, so they could never be deleted).
pub const ACK_FINALIZER: &str = "finalizer.ack.secrets-manager.alibabacloud.com";
/// Changing this annotation (any value) syncs at once, bypassing the fetch cache.
pub const FORCE_SYNC_ANNOTATION: &str = "kmsync.io/force-sync";

/// `Ready=True`: the Secret holds the current data (or, with `creationPolicy: None`, the data
/// was read and checked).
pub const REASON_SYNCED: &str = "SecretSynced";
/// `Ready=False`: the target Secret exists and is not kmsync's to write.
pub const REASON_CONFLICT: &str = "SecretConflict";
/// `Ready=False`: `creationPolicy: Merge` and the Secret does not exist.
pub const REASON_MISSING: &str = "SecretMissing";
/// `Ready=False`: writing the Secret failed.
pub const REASON_WRITE_FAILED: &str = "SecretSyncedError";
/// Normal Event: the Secret was written and a rotate rule asked for the workloads using it to
/// be restarted (recorded as [`target::RESTART_REQUESTED_ANNOTATION`]; kmsync restarts
/// nothing).
pub const REASON_RESTART_REQUESTED: &str = "RestartRequested";

/// What one reconcile did, for metrics and the scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `written`, `unchanged`, `checked` (no sync was due), `deleted`, `released`,
    /// `finalizer`, or the failure reason.
    pub result: &'static str,
    /// Whether it succeeded.
    pub ok: bool,
    /// When to run again (`None`: only on a change).
    pub next: Option<Duration>,
}

impl Report {
    pub(crate) fn ok(result: &'static str, next: Option<Duration>) -> Self {
        Self {
            result,
            ok: true,
            next,
        }
    }
}

fn api_error(action: &'static str, object: String, source: kube::Error) -> Error {
    Error::Api {
        action,
        object,
        source: Box::new(source),
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Reconciles the ExternalSecret `key` (see the module docs).
///
/// # Errors
/// [`Error::Api`] when the API server refused a finalizer or status write (retried with
/// backoff); sync failures are reported in the status, not here.
pub async fn reconcile(ctx: &Context, es: Arc<ExternalSecret>) -> Result<Report, Error> {
    let ns = es.metadata.namespace.clone().unwrap_or_default();
    let name = es.metadata.name.clone().unwrap_or_default();
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &ns);
    if strip_ack_finalizer(&api, &es).await? {
        return Ok(Report::ok("finalizer", None));
    }
    let slot: Mutex<Option<Report>> = Mutex::new(None);
    let result = finalizer(&api, FINALIZER, es, |event| async {
        let report = match event {
            FinalizerEvent::Apply(es) => apply(ctx, &es).await?,
            FinalizerEvent::Cleanup(es) => cleanup(ctx, &es).await?,
        };
        *slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report);
        Ok::<Action, Error>(Action::await_change())
    })
    .await;
    match result {
        Ok(_) => Ok(slot
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            // The helper added or removed the finalizer itself: the watch brings the change.
            .unwrap_or_else(|| Report::ok("finalizer", None))),
        Err(kube::runtime::finalizer::Error::ApplyFailed(e))
        | Err(kube::runtime::finalizer::Error::CleanupFailed(e)) => Err(e),
        Err(e) => Err(Error::Finalizer {
            object: format!("ExternalSecret {ns}/{name}"),
            source: Box::new(e),
        }),
    }
}

/// Removes ack-secret-manager's finalizer. Returns true when it patched (the watch brings the
/// updated object).
pub(super) async fn strip_ack_finalizer<K>(api: &Api<K>, obj: &K) -> Result<bool, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Some(index) = obj
        .meta()
        .finalizers
        .iter()
        .flatten()
        .position(|f| f == ACK_FINALIZER)
    else {
        return Ok(false);
    };
    let name = obj.meta().name.clone().unwrap_or_default();
    let path = format!("/metadata/finalizers/{index}");
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "test", "path": path, "value": ACK_FINALIZER},
        {"op": "remove", "path": path},
    ]))
    .map_err(|source| Error::Patch {
        object: name.clone(),
        source,
    })?;
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => {
            tracing::info!(object = %name, "removed ack-secret-manager's leftover finalizer");
            Ok(true)
        }
        Err(e) if is_status(&e, 404) => Ok(true),
        Err(e) => Err(api_error(
            "removing ack-secret-manager's finalizer from",
            name,
            e,
        )),
    }
}

/// Picks the newer of two copies of a Secret by resourceVersion (numeric where possible).
fn newer(
    a: Option<Arc<ObservedSecret>>,
    b: Option<Arc<ObservedSecret>>,
) -> (Option<Arc<ObservedSecret>>, bool) {
    let rv = |s: &Arc<ObservedSecret>| s.resource_version().and_then(|v| v.parse::<u64>().ok());
    match (a, b) {
        (Some(cached), Some(written)) => match (rv(&cached), rv(&written)) {
            (Some(c), Some(w)) if w > c => (Some(written), false),
            _ => (Some(cached), true),
        },
        (cached, None) => (cached, false),
        (None, written) => (written, false),
    }
}

/// The target Secret as it is now: the managed cache (or what kmsync just wrote, if the cache
/// lags behind), else a `get` (a Secret kmsync does not manage, or none). Values are never
/// kept: [`ObservedSecret`].
async fn target_secret(
    ctx: &Context,
    key: &ObjectKey,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<ObservedSecret>>, Error> {
    let shared = &ctx.shared;
    let cached = shared.caches.managed_secret(namespace, name);
    if cached.is_some() {
        let written = shared.memo(key).last_written;
        let (current, caught_up) = newer(cached, written);
        if caught_up {
            shared.with_memo(key, |m| m.last_written = None);
        }
        return Ok(current);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    api.get_opt(name)
        .await
        .map(|s| s.map(|s| Arc::new(ObservedSecret::observe(s, FIELD_MANAGER))))
        .map_err(|e| api_error("reading", format!("Secret {namespace}/{name}"), e))
}

/// Why a full sync is needed, or `None`.
/// Why a sync is due when only its timer says so.
const REASON_INTERVAL: &str = "the refresh interval elapsed";

/// What is known about the last sync: by this process (its memory) or, after a restart, from
/// the status. The memory wins because the cached object may not show the status kmsync has
/// just written.
#[derive(Clone, Copy, Debug, Default)]
struct LastSync<'a> {
    /// When the remote data was last read successfully.
    refreshed: Option<DateTime<Utc>>,
    /// The revision last synced successfully (`syncedResourceVersion`).
    revision: Option<&'a str>,
    /// Whether the last attempt failed.
    failed: bool,
}

impl<'a> LastSync<'a> {
    fn of(es: &'a ExternalSecret, memo: &'a super::context::EsMemo) -> Self {
        let status = es.status.as_ref();
        let from_status = || {
            status?
                .refresh_time
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
        };
        Self {
            refreshed: memo.last_refresh.or_else(from_status),
            revision: memo
                .synced_revision
                .as_deref()
                .or_else(|| status?.synced_resource_version.as_deref()),
            failed: if memo.seen {
                memo.failures > 0
            } else {
                status
                    .and_then(|s| s.ready())
                    .is_some_and(|c| c.status != ConditionStatus::True)
            },
        }
    }
}

fn sync_reason(
    timing: &super::schedule::Timing,
    es: &ExternalSecret,
    secret: Option<&ObservedSecret>,
    policy: CreationPolicy,
    now: DateTime<Utc>,
    last: LastSync<'_>,
    digest_key: &crate::sync::DigestKey,
) -> Option<&'static str> {
    let last_refresh = last.refreshed;
    let failed = last.failed;
    if last_refresh.is_none() {
        return Some("first sync");
    }
    if failed {
        return Some("the last sync failed");
    }
    let policy_refresh = es.spec.refresh_policy();
    if policy != CreationPolicy::None {
        match secret {
            None => return Some("the Secret does not exist"),
            Some(s) => {
                if !data_matches_digest(s, digest_key) {
                    return Some("the Secret's data was changed outside kmsync");
                }
                if policy != CreationPolicy::Merge && !target::is_managed(s) {
                    return Some("the Secret lost its managed-by label");
                }
                if policy == CreationPolicy::Owner {
                    let uid = es.metadata.uid.as_deref().unwrap_or_default();
                    let owned_by_es = s.owners().iter().any(|o| *o.uid == *uid && o.controller);
                    if !owned_by_es {
                        return Some("the Secret lost its owner reference");
                    }
                }
            }
        }
    }
    if policy_refresh == RefreshPolicy::CreatedOnce {
        return None;
    }
    if last.revision != Some(es.resource_revision().as_str()) {
        return Some("the ExternalSecret changed");
    }
    if let (Some(interval), Some(last)) = (timing.refresh_interval(es), last_refresh) {
        let elapsed = (now - last).to_std().unwrap_or_default();
        if elapsed >= interval {
            return Some(REASON_INTERVAL);
        }
    }
    None
}

/// The delay until `es` is due for its next refresh (`None`: no timer).
fn next_refresh(
    shared: &Shared,
    key: &ObjectKey,
    es: &ExternalSecret,
    last_refresh: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    spread: bool,
) -> Option<Duration> {
    let interval = shared.timing.refresh_interval(es)?;
    let last = last_refresh.unwrap_or(now);
    let since = (now - last).to_std().unwrap_or_default();
    let salt = u64::try_from(last.timestamp()).unwrap_or_default();
    Some(
        shared
            .timing
            .until_refresh(key, salt, interval, since, spread)
            .max(Duration::from_millis(100)),
    )
}

/// The new status after a sync attempt: `Ready`, generation, revision, binding, results.
/// `refreshTime` and result times move only when something else in the status changes, so
/// an unchanged object costs no status write.
struct StatusUpdate {
    condition: Condition,
    synced_revision: Option<String>,
    binding: Option<String>,
    results: Option<Vec<DataSyncResult>>,
    refreshed: bool,
}

fn same_result(a: &DataSyncResult, b: &DataSyncResult) -> bool {
    a.external_secret_key == b.external_secret_key
        && a.status == b.status
        && a.reason == b.reason
        && a.version_id == b.version_id
}

/// `old` is the status as last written (this process's memory, else the cached object's).
fn merged_status(
    es: &ExternalSecret,
    old: Option<&ExternalSecretStatus>,
    update: StatusUpdate,
    now: Time,
) -> ExternalSecretStatus {
    let old = old.cloned().unwrap_or_default();
    let mut new = old.clone();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    set_condition(&mut conditions, update.condition);
    new.conditions = Some(conditions);
    new.observed_generation = es.metadata.generation;
    if let Some(rev) = update.synced_revision {
        new.synced_resource_version = Some(rev);
    }
    if let Some(b) = update.binding {
        new.binding = Some(SecretBinding { name: b });
    }
    if let Some(mut results) = update.results {
        // Keep the old time of a result that did not change.
        let previous = old.data_sync_results.clone().unwrap_or_default();
        for r in &mut results {
            if let Some(p) = previous.iter().find(|p| same_result(p, r)) {
                r.synchronization_time = p.synchronization_time.clone();
            }
        }
        new.data_sync_results = Some(results);
    }
    if update.refreshed && (new != old || old.refresh_time.is_none()) {
        new.refresh_time = Some(now);
    }
    new
}

async fn write_status(
    ctx: &Context,
    es: &ExternalSecret,
    key: &ObjectKey,
    status: ExternalSecretStatus,
) -> Result<bool, Error> {
    if current_status(&ctx.shared, es, key).as_ref() == Some(&status) {
        return Ok(false);
    }
    let ns = es.metadata.namespace.as_deref().unwrap_or_default();
    let name = es.metadata.name.as_deref().unwrap_or_default();
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({ "status": status });
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            let cached = ctx.shared.caches.external_secret(ns, name);
            let shown = cached.as_ref().and_then(|c| c.status.as_ref());
            let remembered = remember_status(shown, status);
            ctx.shared.with_memo(key, |m| m.last_status = remembered);
            Ok(true)
        }
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(api_error(
            "writing the status of",
            format!("ExternalSecret {ns}/{name}"),
            e,
        )),
    }
}

/// The status as kmsync last wrote it (the cached object may not show it yet), else the
/// cached object's. Once the cached object shows that status, the memory of it is dropped
/// (one copy per object, not two).
///
/// "The cached object" is the one in the cache now, not `es` (taken when the reconcile
/// began): the watch may drop the memory meanwhile, and an older `es` would then bring back
/// the status before kmsync's last write.
fn current_status(
    shared: &Shared,
    es: &ExternalSecret,
    key: &ObjectKey,
) -> Option<ExternalSecretStatus> {
    let ns = es.metadata.namespace.as_deref().unwrap_or_default();
    let name = es.metadata.name.as_deref().unwrap_or_default();
    let cached = shared.caches.external_secret(ns, name);
    let shown = match &cached {
        Some(c) => c.status.as_ref(),
        None => es.status.as_ref(),
    };
    shared.with_memo(key, |m| recall_status(&mut m.last_status, shown))
}

/// [`current_status`] given the memory of the last status written and the status the cache
/// shows: the memory while the cache does not show it, dropping it once it does.
fn recall_status(
    remembered: &mut Option<Box<ExternalSecretStatus>>,
    shown: Option<&ExternalSecretStatus>,
) -> Option<ExternalSecretStatus> {
    match remembered.take() {
        Some(written) if shown == Some(&*written) => Some(*written),
        Some(written) => {
            let status = (*written).clone();
            *remembered = Some(written);
            Some(status)
        }
        None => shown.cloned(),
    }
}

/// What to remember after writing `written` when the cache shows `shown`: nothing if it shows
/// it already (the watch was quicker than the reply), else `written` — replacing any older
/// memory either way.
fn remember_status(
    shown: Option<&ExternalSecretStatus>,
    written: ExternalSecretStatus,
) -> Option<Box<ExternalSecretStatus>> {
    (shown != Some(&written)).then(|| Box::new(written))
}

fn reference(es: &ExternalSecret) -> k8s_openapi::api::core::v1::ObjectReference {
    es.object_ref(&())
}

/// The first store `es` may use (by the cross-namespace and ClusterSecretStore `conditions`
/// rules — a refused reference is the pipeline's to report) that is known not to be ready.
fn unready_store(shared: &Shared, es: &ExternalSecret) -> Option<(StoreKey, String)> {
    let ns = es.metadata.namespace.as_deref().unwrap_or_default();
    external_secret_stores(es).into_iter().find_map(|key| {
        let usable = match &key.namespace {
            Some(store_ns) => store_ns == ns || shared.settings.cross_namespace_secret_store,
            None => shared
                .caches
                .cluster_secret_store(&key.name)
                .is_some_and(|css| {
                    let labels = shared.caches.namespace_labels(ns).unwrap_or_default();
                    css.spec.namespace_allowed(ns, &labels)
                }),
        };
        match shared.store_ready(&key) {
            Some((false, message)) if usable => Some((key, message)),
            _ => None,
        }
    })
}

/// Forgets cached values of every store `es` reads through (force-sync, short intervals).
fn invalidate_sources(ctx: &Context, es: &ExternalSecret) {
    let ns = es.metadata.namespace.as_deref().unwrap_or_default();
    let cache = ctx.pipeline.cache();
    let mut ambient = false;
    for source in es.spec.sources() {
        match &source.secret_store_ref {
            None => ambient = true,
            Some(r) => {
                let store = match StoreKey::from_ref(r, ns).namespace {
                    Some(sns) => ctx
                        .shared
                        .caches
                        .secret_store(&sns, &r.name)
                        .map(StoreObject::SecretStore),
                    None => ctx
                        .shared
                        .caches
                        .cluster_secret_store(&r.name)
                        .map(StoreObject::ClusterSecretStore),
                };
                if let Some(store) = store {
                    cache.invalidate_source(&SourceId::Store(store.identity()));
                }
            }
        }
    }
    if ambient {
        cache.invalidate_source(&SourceId::Ambient);
    }
}

/// The remote key of the entry an error is about.
fn failed_key(es: &ExternalSecret, err: &SyncError) -> Option<String> {
    let entry = err.entry()?;
    crate::sync::entries(es)
        .into_iter()
        .find(|(e, _)| *e == entry)
        .map(|(_, source)| source.key.clone())
}

async fn apply(ctx: &Context, es: &ExternalSecret) -> Result<Report, Error> {
    let shared = &ctx.shared;
    let key = ObjectKey::of(&es.metadata);
    let ns = key.namespace.clone().unwrap_or_default();
    let target_name = es.target_name().to_owned();
    let policy = es.spec.creation_policy();
    let now = Utc::now();
    let memo = shared.memo(&key);
    let first_seen = !memo.seen;
    let last = LastSync::of(es, &memo);
    let last_refresh = last.refreshed;
    shared.with_memo(&key, |m| m.seen = true);
    let force_value = es
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FORCE_SYNC_ANNOTATION))
        .cloned();
    let forced = force_value.is_some() && force_value != memo.force_value;

    // The Secret and whether kmsync may write it.
    let secret = if policy == CreationPolicy::None {
        None
    } else {
        target_secret(ctx, &key, &ns, &target_name).await?
    };
    match target::ownership(secret.as_deref(), es, policy) {
        Ownership::Foreign(message) if policy != CreationPolicy::None => {
            return failure(ctx, es, &key, REASON_CONFLICT, message, None).await;
        }
        Ownership::Missing if policy == CreationPolicy::Merge => {
            let message = format!(
                "creationPolicy Merge writes into an existing Secret, and Secret {ns}/{target_name} does not exist (kmsync does not create it)"
            );
            return failure(ctx, es, &key, REASON_MISSING, message, None).await;
        }
        _ => {}
    }

    let reason = if forced {
        Some("kmsync.io/force-sync changed")
    } else {
        sync_reason(
            &shared.timing,
            es,
            secret.as_deref(),
            policy,
            now,
            last,
            ctx.pipeline.digest_key(),
        )
    };
    // Only overdue, and seen for the first time (a restart): spread such objects over the
    // jitter window instead of reading them all at once.
    let spread_overdue = first_seen && reason == Some(REASON_INTERVAL);
    let Some(reason) = reason.filter(|_| !spread_overdue) else {
        return Ok(Report::ok(
            "checked",
            next_refresh(shared, &key, es, last_refresh, now, first_seen),
        ));
    };
    tracing::debug!(externalsecret = %key, reason, "syncing");

    if let Some((store, message)) = unready_store(shared, es) {
        // No point calling KMS through a store known to be broken; its reconcile wakes us.
        let message = format!("{} is not ready: {message}", store.label());
        return failure(ctx, es, &key, "StoreNotReady", message, None).await;
    }
    let short_interval = shared
        .timing
        .refresh_interval(es)
        .is_some_and(|i| i < shared.settings.polling_interval);
    if forced || (short_interval && reason == REASON_INTERVAL) {
        invalidate_sources(ctx, es);
    }
    let current = secret.as_deref().map(current_state);
    let out = match ctx.pipeline.sync(es, &ctx.env, current.as_ref()).await {
        Ok(out) => out,
        Err(err) => {
            if err.reason() == "StoreNotReady" || err.reason() == "FetchFailed" {
                // Perhaps the store broke (revoked role, rotated key): check it again.
                for store in external_secret_stores(es) {
                    shared.queues.stores.urgent(store);
                }
            }
            let result = failed_key(es, &err).map(|k| vec![err.data_sync_result(&k, now)]);
            return failure(ctx, es, &key, err.reason(), err.message(), result).await;
        }
    };
    // The data is as old as the oldest value used: count the next interval from when that
    // value was read, so that every object sharing a cached value refreshes right after it
    // expires (one read per value and interval, and a rotation reaches them all within one
    // interval instead of up to two).
    // `data_age` is measured when the pipeline returns: count back from that moment, not
    // from `now` (taken before the fetches, which may have waited for a pull permit).
    let synced_at = Utc::now();
    let data_time = synced_at
        - chrono::TimeDelta::from_std(out.data_age).unwrap_or_else(|_| chrono::TimeDelta::zero());
    shared.with_memo(&key, |m| {
        m.last_refresh = Some(data_time);
        m.force_value = force_value.clone();
    });
    let revision = es.resource_revision();

    let written = if policy == CreationPolicy::None {
        None
    } else {
        match write(ctx, es, &key, secret.as_deref(), &out, policy, now).await {
            Ok(w) => w,
            Err(message) => {
                return failure(ctx, es, &key, REASON_WRITE_FAILED, message, None).await;
            }
        }
    };
    // The condition describes the state (stable while nothing changes, so no status write);
    // the Event says what was done.
    let message = match (&written, policy, out.rotation.action) {
        (_, CreationPolicy::None, _) => format!(
            "creationPolicy None: the data was read (versions {}); no Secret is written",
            out.version
        ),
        (None, _, RotationAction::Skip | RotationAction::Defer) => format!(
            "Secret {target_name} keeps versions {}: a rule decided {} for versions {} ({})",
            current
                .as_ref()
                .and_then(|c| c.version.as_deref())
                .unwrap_or("unknown"),
            out.rotation.action.as_str(),
            out.version,
            out.rotation.reason
        ),
        _ => format!("Secret {target_name} is in sync (versions {})", out.version),
    };
    let note = match &written {
        Some(op) => format!("Secret {target_name} {op} (versions {})", out.version),
        None => message.clone(),
    };
    let status = merged_status(
        es,
        current_status(shared, es, &key).as_ref(),
        StatusUpdate {
            condition: Condition::ready(
                ConditionStatus::True,
                REASON_SYNCED,
                message.clone(),
                es.metadata.generation,
                crate::api::status_time_now(),
            ),
            synced_revision: Some(revision.clone()),
            binding: (policy != CreationPolicy::None).then(|| target_name.clone()),
            results: Some(out.data_sync_results(now)),
            refreshed: true,
        },
        crate::api::status_time_now(),
    );
    let was_failing = last.failed;
    write_status(ctx, es, &key, status).await?;
    shared.with_memo(&key, |m| {
        m.failures = 0;
        m.synced_revision = Some(revision);
    });
    if written.is_some() || was_failing {
        ctx.events
            .publish(
                &reference(es),
                EventSpec {
                    type_: EventType::Normal,
                    reason: REASON_SYNCED,
                    action: "Sync",
                    note,
                },
            )
            .await;
    }
    if written.is_some() && target::restart_requested(&out) {
        ctx.events
            .publish(
                &reference(es),
                EventSpec {
                    type_: EventType::Normal,
                    reason: REASON_RESTART_REQUESTED,
                    action: "Sync",
                    note: format!(
                        "Secret {target_name} was written (versions {}) and a rotate rule asked for the workloads using it to be restarted; kmsync does not restart them, it records the request in the annotation {}",
                        out.version,
                        target::RESTART_REQUESTED_ANNOTATION
                    ),
                },
            )
            .await;
    }
    let mut next = next_refresh(shared, &key, es, Some(data_time), Utc::now(), false);
    if let Some(after) = out.rotation.requeue_after {
        next = Some(next.map_or(after, |n| n.min(after)));
    }
    Ok(Report::ok(
        if written.is_some() {
            "written"
        } else {
            "unchanged"
        },
        next,
    ))
}

/// Reports a failed sync: `Ready=False` with `reason` and `message`, a Warning Event (folded
/// into a series when repeated), and a retry after the backoff. The Secret is not touched.
async fn failure(
    ctx: &Context,
    es: &ExternalSecret,
    key: &ObjectKey,
    reason: &'static str,
    message: String,
    results: Option<Vec<DataSyncResult>>,
) -> Result<Report, Error> {
    let failures = ctx.shared.with_memo(key, |m| {
        m.failures = m.failures.saturating_add(1);
        m.failures
    });
    tracing::info!(externalsecret = %key, reason, error = %message, "sync failed");
    let now = crate::api::status_time_now();
    let status = merged_status(
        es,
        current_status(&ctx.shared, es, key).as_ref(),
        StatusUpdate {
            condition: Condition::ready(
                ConditionStatus::False,
                reason,
                message.clone(),
                es.metadata.generation,
                now.clone(),
            ),
            synced_revision: None,
            binding: None,
            results,
            refreshed: false,
        },
        now,
    );
    write_status(ctx, es, key, status).await?;
    ctx.events
        .publish(
            &reference(es),
            EventSpec {
                type_: EventType::Warning,
                reason,
                action: "Sync",
                note: message,
            },
        )
        .await;
    Ok(Report {
        result: reason,
        ok: false,
        next: Some(ctx.shared.timing.backoff(key, failures)),
    })
}

/// Writes the Secret if it differs from the sync's output. `Ok(Some(what))` after a write
/// (`created`, `updated`, `replaced`), `Ok(None)` when nothing had to change; `Err` carries the
/// message for the condition.
async fn write(
    ctx: &Context,
    es: &ExternalSecret,
    key: &ObjectKey,
    secret: Option<&ObservedSecret>,
    out: &SyncOutput,
    policy: CreationPolicy,
    now: DateTime<Utc>,
) -> Result<Option<&'static str>, String> {
    let mut intent = target::intent(es, out, policy, now);
    target::stamp_restart(&mut intent, out, secret, now);
    let drift = match secret {
        None => Drift::Apply("missing"),
        Some(s) => target::drift(s, &intent),
    };
    let wanted = match out.rotation.action {
        RotationAction::Sync | RotationAction::Unchanged => true,
        // A rule holds the new data back; only a missing Secret is written now.
        RotationAction::Skip | RotationAction::Defer => secret.is_none(),
    };
    if drift == Drift::None || !wanted {
        return Ok(None);
    }
    let ns = out.secret.namespace.as_str();
    let name = out.secret.name.as_str();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let metrics = &ctx.shared.metrics;
    let mut op = if secret.is_none() {
        "created"
    } else {
        "updated"
    };
    if let (Drift::Replace(why), Some(existing)) = (&drift, secret) {
        tracing::info!(secret = %format!("{ns}/{name}"), why, "replacing the Secret");
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: existing.uid().map(str::to_owned),
                resource_version: existing.resource_version().map(str::to_owned),
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                return Err(format!(
                    "replacing Secret {name} ({why}): deleting it failed: {}",
                    crate::credentials::error_chain(&e)
                ));
            }
        }
        metrics
            .secret_writes
            .get_or_create(&WriteLabels {
                operation: "replace",
            })
            .inc();
        op = "replaced";
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(name, &params, &Patch::Apply(&intent)).await {
        Ok(written) => {
            let written = ObservedSecret::observe(written, FIELD_MANAGER);
            metrics
                .secret_writes
                .get_or_create(&WriteLabels { operation: "apply" })
                .inc();
            tracing::info!(secret = %format!("{ns}/{name}"), op, versions = %out.version, "wrote the Secret");
            ctx.shared
                .with_memo(key, |m| m.last_written = Some(Arc::new(written)));
            Ok(Some(op))
        }
        Err(e) => Err(format!(
            "writing Secret {name} failed: {}",
            crate::credentials::error_chain(&e)
        )),
    }
}

async fn cleanup(ctx: &Context, es: &ExternalSecret) -> Result<Report, Error> {
    let key = ObjectKey::of(&es.metadata);
    let ns = key.namespace.clone().unwrap_or_default();
    let target_name = es.target_name().to_owned();
    let policy = es.spec.creation_policy();
    let uid = es.metadata.uid.clone().unwrap_or_default();
    let mut result = "retained";
    if policy == CreationPolicy::Owner
        && let Some(secret) = target_secret(ctx, &key, &ns, &target_name).await?
        && target::ownership(Some(&secret), es, policy) == Ownership::Ours
    {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let metrics = &ctx.shared.metrics;
        match es.spec.deletion_policy() {
            DeletionPolicy::Delete => {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: secret.uid().map(str::to_owned),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&target_name, &dp).await {
                    Ok(_) => {}
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => {
                        return Err(api_error(
                            "deleting",
                            format!("Secret {ns}/{target_name}"),
                            e,
                        ));
                    }
                }
                metrics
                    .secret_writes
                    .get_or_create(&WriteLabels {
                        operation: "delete",
                    })
                    .inc();
                tracing::info!(secret = %format!("{ns}/{target_name}"), "deleted the Secret (deletionPolicy Delete)");
                result = "deleted";
            }
            DeletionPolicy::Retain => {
                if let Some(index) = secret.owners().iter().position(|o| *o.uid == *uid) {
                    // Without this the garbage collector would delete the Secret with its owner.
                    let path = format!("/metadata/ownerReferences/{index}/uid");
                    let remove = format!("/metadata/ownerReferences/{index}");
                    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
                        {"op": "test", "path": path, "value": uid},
                        {"op": "remove", "path": remove},
                    ]))
                    .map_err(|source| Error::Patch {
                        object: format!("Secret {ns}/{target_name}"),
                        source,
                    })?;
                    match api
                        .patch(
                            &target_name,
                            &PatchParams::default(),
                            &Patch::Json::<()>(patch),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if is_status(&e, 404) => {}
                        Err(e) => {
                            return Err(api_error(
                                "removing the owner reference from",
                                format!("Secret {ns}/{target_name}"),
                                e,
                            ));
                        }
                    }
                    metrics
                        .secret_writes
                        .get_or_create(&WriteLabels {
                            operation: "release",
                        })
                        .inc();
                    tracing::info!(secret = %format!("{ns}/{target_name}"), "kept the Secret and removed its owner reference (deletionPolicy Retain)");
                    result = "released";
                }
            }
        }
    }
    ctx.shared.forget_memo(&key);
    ctx.events.forget(&uid);
    Ok(Report::ok(result, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(rv: &str) -> Arc<ObservedSecret> {
        let mut s = Secret::default();
        s.metadata.resource_version = Some(rv.into());
        Arc::new(ObservedSecret::observe(s, FIELD_MANAGER))
    }

    #[test]
    fn the_newer_copy_of_the_secret_wins_and_a_caught_up_cache_is_reported() {
        let (s, caught_up) = newer(Some(secret("10")), Some(secret("12")));
        assert_eq!(s.unwrap().resource_version(), Some("12"));
        assert!(!caught_up);
        let (s, caught_up) = newer(Some(secret("12")), Some(secret("12")));
        assert_eq!(s.unwrap().resource_version(), Some("12"));
        assert!(caught_up);
        let (s, _) = newer(Some(secret("13")), None);
        assert_eq!(s.unwrap().resource_version(), Some("13"));
    }

    #[test]
    fn the_memory_of_a_written_status_lasts_until_the_cache_shows_it() {
        let status = |message: &str| ExternalSecretStatus {
            conditions: Some(vec![Condition::ready(
                ConditionStatus::True,
                REASON_SYNCED,
                message,
                Some(1),
                crate::api::status_time_now(),
            )]),
            ..Default::default()
        };
        let (old, new) = (status("old"), status("new"));
        // Written while the cache still shows the old status: remembered, and recalled until
        // the cache shows it.
        let mut memory = remember_status(Some(&old), new.clone());
        assert_eq!(recall_status(&mut memory, Some(&old)), Some(new.clone()));
        assert!(memory.is_some());
        assert_eq!(recall_status(&mut memory, Some(&new)), Some(new.clone()));
        assert!(memory.is_none());
        // Then the cache is what counts.
        assert_eq!(recall_status(&mut memory, Some(&new)), Some(new.clone()));
        assert_eq!(recall_status(&mut memory, None), None);
        // The watch was quicker than the reply: nothing to remember (the memory is replaced
        // by this, so an older one goes too).
        assert!(remember_status(Some(&new), new.clone()).is_none());
        assert_eq!(
            remember_status(Some(&old), new.clone()).as_deref(),
            Some(&new)
        );
    }

    mod due {
        use super::super::*;
        use crate::controller::schedule::Timing;
        use crate::sync::{DesiredSecret, DigestKey, RotationDecision};
        use crate::value::SecretBytes;

        fn timing() -> Timing {
            Timing {
                polling_interval: Duration::from_secs(120),
                disable_polling: false,
                reconcile_period: Duration::from_secs(5),
            }
        }

        fn key() -> DigestKey {
            DigestKey::from_bytes(&[3u8; 32]).unwrap()
        }

        fn observe(s: Secret) -> ObservedSecret {
            ObservedSecret::observe(s, FIELD_MANAGER)
        }

        /// A synced ExternalSecret (status of this revision, Ready) and the Secret it wrote.
        fn synced(policy: &str, refresh: Option<&str>) -> (ExternalSecret, Secret) {
            let mut es: ExternalSecret = serde_json::from_value(serde_json::json!({
                "apiVersion": "alibabacloud.com/v1alpha1", "kind": "ExternalSecret",
                "metadata": {"name": "app", "namespace": "ns", "uid": "u1", "generation": 1},
                "spec": {"refreshPolicy": refresh, "target": {"creationPolicy": policy}}
            }))
            .unwrap();
            let data: std::collections::BTreeMap<String, SecretBytes> =
                [("k".to_owned(), SecretBytes::from("v"))]
                    .into_iter()
                    .collect();
            let out = SyncOutput {
                secret: DesiredSecret {
                    namespace: "ns".into(),
                    name: "app".into(),
                    type_: "Opaque".into(),
                    data: data.clone(),
                    labels: Default::default(),
                    annotations: Default::default(),
                    immutable: false,
                },
                digest: key().digest(&data),
                version: "v1".into(),
                entries: Vec::new(),
                rotation: RotationDecision {
                    action: RotationAction::Sync,
                    reason: String::new(),
                    requeue_after: None,
                    restart: false,
                    decided_by: None,
                },
                data_age: std::time::Duration::ZERO,
            };
            let policy = es.spec.creation_policy();
            let mut secret = target::intent(&es, &out, policy, Utc::now());
            secret.metadata.managed_fields = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry {
                    manager: Some(FIELD_MANAGER.into()),
                    operation: Some("Apply".into()),
                    fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                        serde_json::json!({"f:data": {"f:k": {}}}),
                    )),
                    ..Default::default()
                },
            ]);
            es.status = Some(ExternalSecretStatus {
                conditions: Some(vec![Condition::ready(
                    ConditionStatus::True,
                    REASON_SYNCED,
                    "ok",
                    Some(1),
                    crate::api::status_time_now(),
                )]),
                synced_resource_version: Some(es.resource_revision()),
                ..Default::default()
            });
            (es, secret)
        }

        fn reason(
            es: &ExternalSecret,
            secret: Option<&Secret>,
            since_refresh: Option<i64>,
        ) -> Option<&'static str> {
            let now = Utc::now();
            // As after a restart: what the status says.
            let fresh = crate::controller::context::EsMemo::default();
            let mut last = LastSync::of(es, &fresh);
            last.refreshed = since_refresh.map(|s| now - chrono::Duration::seconds(s));
            let secret = secret.map(|s| observe(s.clone()));
            sync_reason(
                &timing(),
                es,
                secret.as_ref(),
                es.spec.creation_policy(),
                now,
                last,
                &key(),
            )
        }

        #[test]
        fn this_processs_memory_wins_over_a_status_the_cache_has_not_caught_up_with() {
            let (mut es, secret) = synced("Owner", None);
            let revision = es.resource_revision();
            // The cache still shows the object before kmsync's status write.
            es.status = None;
            let memo = crate::controller::context::EsMemo {
                seen: true,
                last_refresh: Some(Utc::now()),
                synced_revision: Some(revision),
                ..Default::default()
            };
            let now = Utc::now();
            let last = LastSync::of(&es, &memo);
            assert_eq!(
                sync_reason(
                    &timing(),
                    &es,
                    Some(&observe(secret.clone())),
                    CreationPolicy::Owner,
                    now,
                    last,
                    &key()
                ),
                None
            );
            // A failure remembered by this process is retried whatever the cached status says.
            let failed = crate::controller::context::EsMemo {
                failures: 1,
                ..memo
            };
            let last = LastSync::of(&es, &failed);
            assert_eq!(
                sync_reason(
                    &timing(),
                    &es,
                    Some(&observe(secret.clone())),
                    CreationPolicy::Owner,
                    now,
                    last,
                    &key()
                ),
                Some("the last sync failed")
            );
        }

        #[test]
        fn a_synced_object_within_its_interval_needs_no_sync_and_no_kms_call() {
            let (es, secret) = synced("Owner", None);
            assert_eq!(reason(&es, Some(&secret), Some(30)), None);
            assert_eq!(reason(&es, Some(&secret), Some(121)), Some(REASON_INTERVAL));
            assert_eq!(reason(&es, Some(&secret), None), Some("first sync"));
        }

        #[test]
        fn a_missing_or_hand_edited_secret_is_repaired_between_refreshes() {
            let (es, secret) = synced("Owner", None);
            assert_eq!(
                reason(&es, None, Some(30)),
                Some("the Secret does not exist")
            );
            let mut edited = secret.clone();
            edited
                .data
                .as_mut()
                .unwrap()
                .insert("k".into(), k8s_openapi::ByteString(b"changed".to_vec()));
            assert_eq!(
                reason(&es, Some(&edited), Some(30)),
                Some("the Secret's data was changed outside kmsync")
            );
            let mut released = secret.clone();
            released.metadata.owner_references = None;
            assert_eq!(
                reason(&es, Some(&released), Some(30)),
                Some("the Secret lost its owner reference")
            );
            let (orphan, orphan_secret) = synced("Orphan", None);
            assert_eq!(reason(&orphan, Some(&orphan_secret), Some(30)), None);
        }

        #[test]
        fn a_changed_or_failed_object_syncs_at_once() {
            let (mut es, secret) = synced("Owner", None);
            es.metadata.annotations =
                Some([(FORCE_SYNC_ANNOTATION.to_owned(), "2".to_owned())].into());
            assert_eq!(
                reason(&es, Some(&secret), Some(1)),
                Some("the ExternalSecret changed")
            );
            let (mut es, secret) = synced("Owner", None);
            es.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status =
                ConditionStatus::False;
            assert_eq!(
                reason(&es, Some(&secret), Some(1)),
                Some("the last sync failed")
            );
        }

        #[test]
        fn on_change_and_created_once_do_not_refresh_on_a_timer() {
            let (es, secret) = synced("Owner", Some("OnChange"));
            assert_eq!(reason(&es, Some(&secret), Some(100_000)), None);
            let (mut es, secret) = synced("Owner", Some("CreatedOnce"));
            assert_eq!(reason(&es, Some(&secret), Some(100_000)), None);
            // Not even for a spec change, as long as the Secret exists...
            es.metadata.generation = Some(2);
            assert_eq!(reason(&es, Some(&secret), Some(1)), None);
            // ...but a deleted Secret is created again.
            assert_eq!(
                reason(&es, None, Some(1)),
                Some("the Secret does not exist")
            );
        }

        #[test]
        fn creation_policy_none_never_looks_at_a_secret() {
            let (es, _) = synced("None", None);
            assert_eq!(reason(&es, None, Some(30)), None);
        }
    }

    fn es_with_status(status: ExternalSecretStatus) -> ExternalSecret {
        let mut es: ExternalSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "alibabacloud.com/v1alpha1", "kind": "ExternalSecret",
            "metadata": {"name": "a", "namespace": "ns", "generation": 2}, "spec": {}
        }))
        .unwrap();
        es.status = Some(status);
        es
    }

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn an_unchanged_sync_leaves_the_status_as_it_was() {
        let result = DataSyncResult {
            external_secret_key: Some("db".into()),
            status: Some("Succeeded".into()),
            reason: None,
            synchronization_time: Some(at(100)),
            version_id: Some("v1".into()),
        };
        let ready = Condition::ready(ConditionStatus::True, REASON_SYNCED, "ok", Some(2), at(100));
        let es = es_with_status(ExternalSecretStatus {
            conditions: Some(vec![ready.clone()]),
            observed_generation: Some(2),
            refresh_time: Some(at(100)),
            synced_resource_version: Some("r".into()),
            binding: Some(SecretBinding { name: "a".into() }),
            data_sync_results: Some(vec![result.clone()]),
        });
        let again = merged_status(
            &es,
            es.status.as_ref(),
            StatusUpdate {
                condition: Condition::ready(
                    ConditionStatus::True,
                    REASON_SYNCED,
                    "ok",
                    Some(2),
                    at(500),
                ),
                synced_revision: Some("r".into()),
                binding: Some("a".into()),
                results: Some(vec![DataSyncResult {
                    synchronization_time: Some(at(500)),
                    ..result.clone()
                }]),
                refreshed: true,
            },
            at(500),
        );
        assert_eq!(
            Some(&again),
            es.status.as_ref(),
            "no status write when nothing changed"
        );

        // A new version: the result, its time and refreshTime move.
        let changed = merged_status(
            &es,
            es.status.as_ref(),
            StatusUpdate {
                condition: Condition::ready(
                    ConditionStatus::True,
                    REASON_SYNCED,
                    "ok v2",
                    Some(2),
                    at(600),
                ),
                synced_revision: Some("r".into()),
                binding: Some("a".into()),
                results: Some(vec![DataSyncResult {
                    version_id: Some("v2".into()),
                    synchronization_time: Some(at(600)),
                    ..result
                }]),
                refreshed: true,
            },
            at(600),
        );
        assert_eq!(changed.refresh_time, Some(at(600)));
        assert_eq!(
            changed.data_sync_results.unwrap()[0].synchronization_time,
            Some(at(600))
        );
        // The condition stayed True: its transition time is kept.
        assert_eq!(
            changed.conditions.unwrap()[0].last_transition_time,
            Some(at(100))
        );
    }
}
