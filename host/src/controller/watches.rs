//! The watches, and what each change wakes.
//!
//! | Watch | Cached | A change wakes |
//! |---|---|---|
//! | ExternalSecrets | yes | the ExternalSecret (spec, labels, annotations, deletion, finalizers — not status); its ClusterExternalSecret |
//! | SecretStores, ClusterSecretStores | yes | the store |
//! | ClusterExternalSecrets | yes | the ClusterExternalSecret |
//! | Namespaces (metadata) | yes | every ClusterExternalSecret; ExternalSecrets there using a ClusterSecretStore |
//! | Secrets labelled `app.kubernetes.io/managed-by=kmsync` | yes | the ExternalSecret writing it, unless the change is kmsync's own write |
//! | all Secrets (metadata only, not cached) | no | stores naming it as a credential (a rotated AccessKey); ExternalSecrets targeting it that do not manage it (conflicts, `Merge`) |
//! | ServiceAccounts (metadata, with `--enable-service-account-token`) | no | stores naming it |
//!
//! With `--watch-namespaces` every namespaced watch runs once per namespace and the
//! cluster-scoped kinds are not watched; `--exclude-namespaces` becomes a field selector.
//! Watches restart with backoff after errors; `/readyz` turns ready once each has listed
//! everything once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::Resource;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Lookup, store::Writer};
use kube::runtime::watcher::{self, Event, watcher};

use super::caches::{Caches, Scoped};
use super::context::{Shared, Trigger};
use super::index::{ObjectKey, StoreKey};
use super::observed::ObservedSecret;
use super::settings::Settings;
use super::shutdown::Shutdown;
use super::target::{FIELD_MANAGER, MANAGED_SELECTOR, writer_of};
use crate::api::{ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore};

/// Initial lists not yet complete, by watch; `/readyz` waits for none.
#[derive(Debug, Default)]
struct Pending(Mutex<HashSet<String>>);

/// The scopes of namespaced watches: `None` (cluster-wide) or each watched namespace.
fn scopes(settings: &Settings) -> Vec<Option<String>> {
    if settings.namespaces.cluster_wide() {
        vec![None]
    } else {
        settings
            .namespaces
            .watch
            .iter()
            .cloned()
            .map(Some)
            .collect()
    }
}

fn api_in<K>(client: &kube::Client, scope: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn config(settings: &Settings, scope: &Option<String>) -> watcher::Config {
    let c = watcher::Config::default();
    match (scope, settings.namespaces.exclude_field_selector()) {
        (None, Some(fields)) => c.fields(&fields),
        _ => c,
    }
}

/// Drops what the controller never reads from a cached object, before it is cached:
/// `metadata.managedFields` (on a busy object several KiB of field trees, most of the cache's
/// memory) and kubectl's `last-applied-configuration` annotation (a second copy of the spec).
fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// A watch event's object as an [`ObservedSecret`] (managed Secrets are cached that way:
/// fingerprints instead of values, only the metadata the controller reads).
fn observe_event(event: Event<Secret>) -> Event<ObservedSecret> {
    let observe = |s| ObservedSecret::observe(s, FIELD_MANAGER);
    match event {
        Event::Apply(s) => Event::Apply(observe(s)),
        Event::Delete(s) => Event::Delete(observe(s)),
        Event::InitApply(s) => Event::InitApply(observe(s)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Reflector writers and APIs for every cached watch, ready to be spawned once the shared
/// state exists.
pub struct Feeds {
    client: kube::Client,
    settings: Settings,
    external_secrets: ScopedWriters<ExternalSecret>,
    secret_stores: ScopedWriters<SecretStore>,
    managed_secrets: ScopedWriters<ObservedSecret>,
    cluster_secret_stores: Option<Writer<ClusterSecretStore>>,
    cluster_external_secrets: Option<Writer<ClusterExternalSecret>>,
    namespaces: Option<Writer<PartialObjectMeta<Namespace>>>,
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds").finish_non_exhaustive()
    }
}

/// Reflector writers by scope (`None`: the whole cluster).
type ScopedWriters<K> = Vec<(Option<String>, Writer<K>)>;

fn scoped<K>(settings: &Settings) -> (Scoped<K>, ScopedWriters<K>)
where
    K: Lookup<DynamicType = ()> + Clone + 'static,
{
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for scope in scopes(settings) {
        let (reader, writer) = reflector::store();
        readers.push((scope.clone(), reader));
        writers.push((scope, writer));
    }
    (Scoped::new(readers), writers)
}

/// Creates the caches (empty until the watches run) and their feeds.
pub fn prepare(client: &kube::Client, settings: &Settings) -> (Caches, Feeds) {
    let (external_secrets, es_w) = scoped(settings);
    let (secret_stores, ss_w) = scoped(settings);
    let (managed_secrets, ms_w) = scoped(settings);
    let cluster = settings.namespaces.cluster_wide();
    let (css_r, css_w) = if cluster {
        let (r, w) = reflector::store();
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let (ces_r, ces_w) = if cluster {
        let (r, w) = reflector::store();
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let (ns_r, ns_w) = if cluster {
        let (r, w) = reflector::store();
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    (
        Caches {
            external_secrets,
            secret_stores,
            managed_secrets,
            cluster_secret_stores: css_r,
            cluster_external_secrets: ces_r,
            namespaces: ns_r,
        },
        Feeds {
            client: client.clone(),
            settings: settings.clone(),
            external_secrets: es_w,
            secret_stores: ss_w,
            managed_secrets: ms_w,
            cluster_secret_stores: css_w,
            cluster_external_secrets: ces_w,
            namespaces: ns_w,
        },
    )
}

/// Drives one watch stream until `stop`, handing every event to `handle`.
async fn drive<K, S>(
    name: String,
    stream: S,
    shared: Arc<Shared>,
    pending: Arc<Pending>,
    stop: Shutdown,
    handle: impl Fn(&Shared, Event<K>),
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    futures::pin_mut!(stream);
    loop {
        let next = tokio::select! {
            () = stop.wait() => break,
            next = stream.next() => next,
        };
        match next {
            None => break,
            Some(Ok(event)) => {
                let done = matches!(event, Event::InitDone);
                handle(&shared, event);
                if done {
                    let mut p = pending
                        .0
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if p.remove(&name) {
                        tracing::debug!(watch = %name, "initial list complete");
                    }
                    if p.is_empty() {
                        shared.health.set_ready(true);
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!(watch = %name, error = %e, "watch failed; retrying with backoff")
            }
        }
    }
}

impl Feeds {
    /// Spawns every watch; they run until `stop`.
    pub fn spawn(self, shared: Arc<Shared>, stop: Shutdown) -> Vec<tokio::task::JoinHandle<()>> {
        let mut spawner = Spawner {
            shared,
            pending: Arc::new(Pending::default()),
            stop,
            tasks: Vec::new(),
        };
        let client = self.client.clone();
        let settings = &self.settings;
        let scope_name = |kind: &str, scope: &Option<String>| match scope {
            Some(ns) => format!("{kind}@{ns}"),
            None => kind.to_owned(),
        };

        for (scope, writer) in self.external_secrets {
            let api: Api<ExternalSecret> = api_in(&client, &scope);
            let stream = watcher(api, config(settings, &scope))
                .default_backoff()
                .modify(slim)
                .reflect(writer);
            spawner.watch(
                scope_name("externalsecrets", &scope),
                stream,
                on_external_secret,
            );
        }
        for (scope, writer) in self.secret_stores {
            let api: Api<SecretStore> = api_in(&client, &scope);
            let stream = watcher(api, config(settings, &scope))
                .default_backoff()
                .modify(slim)
                .reflect(writer);
            spawner.watch(scope_name("secretstores", &scope), stream, on_secret_store);
        }
        for (scope, writer) in self.managed_secrets {
            let api: Api<Secret> = api_in(&client, &scope);
            let stream = reflector::reflector(
                writer,
                watcher(api, config(settings, &scope).labels(MANAGED_SELECTOR))
                    .default_backoff()
                    .map_ok(observe_event),
            );
            spawner.watch(
                scope_name("secrets(managed)", &scope),
                stream,
                on_managed_secret,
            );
        }
        for scope in scopes(settings) {
            let api: Api<PartialObjectMeta<Secret>> = api_in(&client, &scope);
            let stream = watcher(api, config(settings, &scope)).default_backoff();
            spawner.watch(
                scope_name("secrets(metadata)", &scope),
                stream,
                on_any_secret,
            );
            if settings.enable_service_account_token {
                let api: Api<PartialObjectMeta<ServiceAccount>> = api_in(&client, &scope);
                let stream = watcher(api, config(settings, &scope)).default_backoff();
                spawner.watch(
                    scope_name("serviceaccounts(metadata)", &scope),
                    stream,
                    on_service_account,
                );
            }
        }
        if let Some(writer) = self.cluster_secret_stores {
            let api: Api<ClusterSecretStore> = Api::all(client.clone());
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(slim)
                .reflect(writer);
            spawner.watch(
                "clustersecretstores".into(),
                stream,
                on_cluster_secret_store,
            );
        }
        if let Some(writer) = self.cluster_external_secrets {
            let api: Api<ClusterExternalSecret> = Api::all(client.clone());
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(slim)
                .reflect(writer);
            spawner.watch(
                "clusterexternalsecrets".into(),
                stream,
                on_cluster_external_secret,
            );
        }
        if let Some(writer) = self.namespaces {
            let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer);
            spawner.watch("namespaces".into(), stream, on_namespace);
        }
        spawner.tasks
    }
}

/// Starts the watch tasks of [`Feeds::spawn`]; each name is pending until its initial list.
struct Spawner {
    shared: Arc<Shared>,
    pending: Arc<Pending>,
    stop: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Spawner {
    /// Registers `name` as pending and spawns [`drive`] over `stream` with `handle`.
    fn watch<K, S>(&mut self, name: String, stream: S, handle: fn(&Shared, Event<K>))
    where
        K: Send + 'static,
        S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    {
        self.pending
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.clone());
        self.tasks.push(tokio::spawn(drive(
            name,
            stream,
            self.shared.clone(),
            self.pending.clone(),
            self.stop.clone(),
            handle,
        )));
    }
}

/// The ClusterExternalSecret controlling `meta`, if any.
fn ces_owner(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjectKey> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == "ClusterExternalSecret")
        .map(|o| ObjectKey::cluster(&o.name))
}

/// An ExternalSecret was added or changed (`cached`: the reflector already stores it).
fn external_secret_seen(shared: &Shared, es: &ExternalSecret, cached: bool) {
    let key = ObjectKey::of(&es.metadata);
    shared.index().set_external_secret(&key, es);
    let trigger = Trigger::of(&es.metadata);
    let changed = shared.with_memo(&key, |m| {
        let changed = m.trigger.as_ref() != Some(&trigger);
        m.trigger = Some(trigger);
        // The cache now shows the status kmsync wrote: one copy of it, not two. Not on
        // `InitApply`, which the reflector stores only at `InitDone`.
        if cached
            && m.last_status
                .as_deref()
                .is_some_and(|s| es.status.as_ref() == Some(s))
        {
            m.last_status = None;
        }
        changed
    });
    if changed {
        shared.queues.external_secrets.urgent(key);
        if let Some(ces) = ces_owner(&es.metadata) {
            shared.queues.cluster_external_secrets.urgent(ces);
        }
    }
}

fn on_external_secret(shared: &Shared, event: Event<ExternalSecret>) {
    match event {
        Event::Apply(es) => external_secret_seen(shared, &es, true),
        Event::InitApply(es) => external_secret_seen(shared, &es, false),
        Event::Delete(es) => {
            let key = ObjectKey::of(&es.metadata);
            shared.queues.external_secrets.forget(&key);
            shared.index().remove_external_secret(&key);
            shared.forget_memo(&key);
            if let Some(ces) = ces_owner(&es.metadata) {
                shared.queues.cluster_external_secrets.urgent(ces);
            }
        }
        Event::InitDone => {
            // Objects deleted while the watch was down left no Delete event: drop their state.
            let live: HashSet<ObjectKey> = shared
                .caches
                .external_secrets
                .all()
                .iter()
                .map(|es| ObjectKey::of(&es.metadata))
                .collect();
            let gone: Vec<ObjectKey> = shared
                .memo
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .keys()
                .filter(|k| !live.contains(*k))
                .cloned()
                .collect();
            for key in gone {
                shared.index().remove_external_secret(&key);
                shared.forget_memo(&key);
            }
        }
        Event::Init => {}
    }
}

fn store_changed(
    shared: &Shared,
    key: StoreKey,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) {
    let trigger = Trigger::of(meta);
    let (changed, spec_changed) = shared.with_store_memo(&key, |m| {
        let changed = m.trigger.as_ref() != Some(&trigger);
        let spec_changed = m
            .trigger
            .as_ref()
            .is_some_and(|t| t.generation != trigger.generation);
        m.trigger = Some(trigger);
        (changed, spec_changed)
    });
    if changed {
        shared.queues.stores.urgent(key.clone());
    }
    if spec_changed {
        // New credentials, conditions or key policy: its users sync again.
        for es in shared.index().external_secrets_of_store(&key) {
            shared.queues.external_secrets.urgent(es);
        }
    }
}

fn store_deleted(shared: &Shared, key: StoreKey) {
    shared.index().remove_store(&key);
    // The reconciler sees it gone: forgets its credentials and wakes its users.
    shared.queues.stores.urgent(key);
}

fn on_secret_store(shared: &Shared, event: Event<SecretStore>) {
    match event {
        Event::Apply(s) | Event::InitApply(s) => {
            let key = StoreKey::namespaced(
                s.metadata.namespace.as_deref().unwrap_or_default(),
                s.metadata.name.as_deref().unwrap_or_default(),
            );
            shared.index().set_store(&key, s.spec.provider());
            store_changed(shared, key, &s.metadata);
        }
        Event::Delete(s) => store_deleted(
            shared,
            StoreKey::namespaced(
                s.metadata.namespace.as_deref().unwrap_or_default(),
                s.metadata.name.as_deref().unwrap_or_default(),
            ),
        ),
        Event::Init | Event::InitDone => {}
    }
}

fn on_cluster_secret_store(shared: &Shared, event: Event<ClusterSecretStore>) {
    match event {
        Event::Apply(s) | Event::InitApply(s) => {
            let key = StoreKey::cluster(s.metadata.name.as_deref().unwrap_or_default());
            shared.index().set_store(&key, s.spec.provider());
            store_changed(shared, key, &s.metadata);
        }
        Event::Delete(s) => store_deleted(
            shared,
            StoreKey::cluster(s.metadata.name.as_deref().unwrap_or_default()),
        ),
        Event::Init | Event::InitDone => {}
    }
}

fn on_cluster_external_secret(shared: &Shared, event: Event<ClusterExternalSecret>) {
    match event {
        Event::Apply(c) | Event::InitApply(c) => {
            let key = ObjectKey::of(&c.metadata);
            let trigger = Trigger::of(&c.metadata);
            let changed = shared.with_ces_memo(&key, |m| {
                let changed = m.0.as_ref() != Some(&trigger);
                m.0 = Some(trigger);
                changed
            });
            if changed {
                shared.queues.cluster_external_secrets.urgent(key);
            }
        }
        Event::Delete(c) => {
            let key = ObjectKey::of(&c.metadata);
            shared.queues.cluster_external_secrets.forget(&key);
            shared
                .ces_memo
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key);
        }
        Event::Init | Event::InitDone => {}
    }
}

fn on_namespace(shared: &Shared, event: Event<PartialObjectMeta<Namespace>>) {
    let ns = match event {
        Event::Apply(ns) | Event::InitApply(ns) | Event::Delete(ns) => ns,
        Event::Init | Event::InitDone => return,
    };
    let name = ns.metadata.name.clone().unwrap_or_default();
    // Every ClusterExternalSecret may now select (or drop) it.
    if let Some(store) = &shared.caches.cluster_external_secrets {
        for ces in store.state() {
            shared
                .queues
                .cluster_external_secrets
                .urgent(ObjectKey::of(&ces.metadata));
        }
    }
    for es in shared.index().cluster_store_users_in(&name) {
        shared.queues.external_secrets.urgent(es);
    }
}

/// The ExternalSecret writing a managed Secret: the annotation, else the controller owner.
fn writer_key(secret: &ObservedSecret) -> Option<ObjectKey> {
    let ns = Some(secret.namespace()).filter(|ns| !ns.is_empty())?;
    if let Some(w) = writer_of(secret) {
        return Some(ObjectKey::namespaced(ns, w));
    }
    secret
        .owners()
        .iter()
        .find(|o| o.controller && &*o.kind == "ExternalSecret")
        .map(|o| ObjectKey::namespaced(ns, &o.name))
}

/// True when `resource_version` is what kmsync itself last wrote for `es`. With `cached`
/// (an `Apply` event of the managed-Secret watch, which the reflector has already stored),
/// the cache now holds that write and the memory of it is dropped: one copy of each Secret,
/// not two. Not on `InitApply`: during a relist the reflector stores nothing until
/// `InitDone`, so the cache may still hold an older version.
fn own_write(
    shared: &Shared,
    es: &ObjectKey,
    resource_version: Option<&str>,
    cached: bool,
) -> bool {
    resource_version.is_some()
        && shared.with_memo(es, |m| {
            let own =
                m.last_written.as_ref().and_then(|s| s.resource_version()) == resource_version;
            if own && cached {
                m.last_written = None;
            }
            own
        })
}

/// A managed Secret was added or changed (`cached`: the reflector already stores it).
fn managed_secret_seen(shared: &Shared, s: &ObservedSecret, cached: bool) {
    if let Some(es) = writer_key(s)
        && !own_write(shared, &es, s.resource_version(), cached)
    {
        shared.queues.external_secrets.urgent(es);
    }
}

fn on_managed_secret(shared: &Shared, event: Event<ObservedSecret>) {
    match event {
        Event::Apply(s) => managed_secret_seen(shared, &s, true),
        Event::InitApply(s) => managed_secret_seen(shared, &s, false),
        Event::Delete(s) => {
            if let Some(es) = writer_key(&s) {
                shared.queues.external_secrets.urgent(es);
            }
        }
        Event::Init | Event::InitDone => {}
    }
}

fn on_any_secret(shared: &Shared, event: Event<PartialObjectMeta<Secret>>) {
    let (meta, deleted) = match event {
        Event::Apply(m) | Event::InitApply(m) => (m.metadata, false),
        Event::Delete(m) => (m.metadata, true),
        Event::Init | Event::InitDone => return,
    };
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return;
    };
    let rv = meta.resource_version.as_deref().filter(|_| !deleted);
    let stores = shared.index().stores_of_secret(ns, name);
    if !stores.is_empty() {
        shared.secrets.observe(ns, name, rv);
        if !shared.secrets.is_cached(ns, name) {
            for store in stores {
                shared.queues.stores.urgent(store);
            }
        }
    }
    let managed = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(super::target::MANAGED_BY_LABEL))
        .is_some_and(|v| v == super::target::MANAGED_BY_VALUE);
    if !managed || deleted {
        for es in shared.index().external_secrets_targeting(ns, name) {
            if deleted || !own_write(shared, &es, rv, false) {
                shared.queues.external_secrets.urgent(es);
            }
        }
    }
}

fn on_service_account(shared: &Shared, event: Event<PartialObjectMeta<ServiceAccount>>) {
    let (meta, deleted) = match event {
        Event::Apply(m) | Event::InitApply(m) => (m.metadata, false),
        Event::Delete(m) => (m.metadata, true),
        Event::Init | Event::InitDone => return,
    };
    let (Some(ns), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
        return;
    };
    let rv = if deleted {
        String::new()
    } else {
        meta.resource_version.clone().unwrap_or_default()
    };
    for store in shared.index().stores_of_service_account(&ns, &name) {
        let changed = shared.with_store_memo(&store, |m| {
            let key = (ns.clone(), name.clone());
            let changed = m.accounts.get(&key) != Some(&rv);
            m.accounts.insert(key, rv.clone());
            changed
        });
        if changed {
            shared.queues.stores.urgent(store);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_managed_secret_names_its_writer_by_annotation_or_owner() {
        let observe = |s: &Secret| ObservedSecret::observe(s.clone(), FIELD_MANAGER);
        let mut s = Secret::default();
        assert_eq!(writer_key(&observe(&s)), None);
        s.metadata.namespace = Some("ns".into());
        assert_eq!(writer_key(&observe(&s)), None);
        s.metadata.owner_references = Some(vec![super::super::target::owner_reference(&{
            let mut es: ExternalSecret = serde_json::from_value(serde_json::json!({
                "apiVersion": "alibabacloud.com/v1alpha1", "kind": "ExternalSecret",
                "metadata": {"name": "by-owner", "namespace": "ns", "uid": "u"}, "spec": {}
            }))
            .unwrap();
            es.metadata.uid = Some("u".into());
            es
        })]);
        assert_eq!(
            writer_key(&observe(&s)),
            Some(ObjectKey::namespaced("ns", "by-owner"))
        );
        s.metadata.annotations = Some(
            [(
                super::super::target::EXTERNAL_SECRET_ANNOTATION.to_owned(),
                "by-annotation".to_owned(),
            )]
            .into(),
        );
        assert_eq!(
            writer_key(&observe(&s)),
            Some(ObjectKey::namespaced("ns", "by-annotation"))
        );
        assert!(!super::super::target::is_managed(&observe(&s)));
    }
}
