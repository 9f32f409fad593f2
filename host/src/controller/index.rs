//! Who refers to whom, so that a change to one object wakes exactly the objects that depend on
//! it. Pure and synchronous (tested without a cluster); the watch handlers keep it current.
//!
//! ```text
//!  ExternalSecret ──secretStoreRef──▶ SecretStore / ClusterSecretStore ──▶ credential Secret
//!        │                                                             └─▶ ServiceAccount
//!        └──target──▶ Secret (namespace/name)
//! ```
//!
//! Lookups go backwards: a credential Secret changed → the stores naming it; a store changed
//! (or became ready) → the ExternalSecrets using it; a Secret appeared or changed → the
//! ExternalSecrets targeting it; a namespace's labels changed → its ExternalSecrets that use a
//! ClusterSecretStore.

use std::collections::{BTreeSet, HashMap};

use crate::api::{ExternalSecret, SecretStoreRef, StoreKind, StoreProvider};
use crate::credentials::{StoreScope, reference_namespace};

/// A namespaced (`namespace: Some`) or cluster-scoped object of one kind: the queue key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A namespaced key.
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        Self {
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }

    /// A cluster-scoped key.
    pub fn cluster(name: &str) -> Self {
        Self {
            namespace: None,
            name: name.to_owned(),
        }
    }

    /// The key of a Kubernetes object (namespace from its metadata).
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        Self {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A SecretStore (`namespace: Some`) or ClusterSecretStore (`namespace: None`): the key of
/// the store queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey {
    /// Namespace of a SecretStore; `None` for a ClusterSecretStore.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl StoreKey {
    /// A SecretStore.
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        Self {
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        }
    }

    /// A ClusterSecretStore.
    pub fn cluster(name: &str) -> Self {
        Self {
            namespace: None,
            name: name.to_owned(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> StoreKind {
        if self.namespace.is_some() {
            StoreKind::SecretStore
        } else {
            StoreKind::ClusterSecretStore
        }
    }

    /// The store an entry of an ExternalSecret in `namespace` names.
    pub fn from_ref(r: &SecretStoreRef, namespace: &str) -> Self {
        match r.store_namespace(namespace) {
            Some(ns) => Self::namespaced(ns, &r.name),
            None => Self::cluster(&r.name),
        }
    }

    /// A stable text form for rate-limit buckets and logs: `SecretStore ns/name`,
    /// `ClusterSecretStore name`.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("SecretStore {ns}/{}", self.name),
            None => format!("ClusterSecretStore {}", self.name),
        }
    }
}

/// `(namespace, name)` of a Secret or ServiceAccount.
pub type NamespacedName = (String, String);

/// Every object a store's spec refers to: credential Secrets and ServiceAccounts, with their
/// namespaces resolved (references a policy would refuse are indexed all the same: if the
/// operator allows them later, a change must still wake the store).
pub fn store_references(
    provider: StoreProvider<'_>,
    namespace: Option<&str>,
) -> (Vec<NamespacedName>, Vec<NamespacedName>) {
    let scope = match namespace {
        Some(ns) => StoreScope::Namespaced { namespace: ns },
        None => StoreScope::Cluster,
    };
    let resolve = |ns: Option<&str>| reference_namespace(scope, "", ns, true).ok();
    let mut secrets = Vec::new();
    let mut accounts = Vec::new();
    if let Some(auth) = provider.cloud_auth() {
        for r in [&auth.access_key, &auth.access_key_secret]
            .into_iter()
            .flatten()
        {
            if let Some(ns) = resolve(r.namespace.as_deref()) {
                secrets.push((ns, r.name.clone()));
            }
        }
        if let Some(sa) = &auth.service_account_ref
            && let Some(ns) = resolve(sa.namespace.as_deref())
        {
            accounts.push((ns, sa.name.clone()));
        }
    }
    if let Some(d) = provider.dedicated_kms() {
        for r in [&d.client_key_content, &d.password] {
            if let Some(ns) = resolve(r.namespace.as_deref()) {
                secrets.push((ns, r.name.clone()));
            }
        }
    }
    secrets.sort();
    secrets.dedup();
    accounts.sort();
    accounts.dedup();
    (secrets, accounts)
}

/// The stores an ExternalSecret's entries name (sorted, deduplicated; entries without
/// `secretStoreRef` use the controller's own credentials and name none).
pub fn external_secret_stores(es: &ExternalSecret) -> Vec<StoreKey> {
    let namespace = es.metadata.namespace.as_deref().unwrap_or_default();
    let mut stores: Vec<StoreKey> = es
        .spec
        .sources()
        .filter_map(|s| s.secret_store_ref.as_ref())
        .map(|r| StoreKey::from_ref(r, namespace))
        .collect();
    stores.sort();
    stores.dedup();
    stores
}

/// A set of referrers in a reverse map.
trait Referrers<B>: Default {
    fn add(&mut self, b: B);
    fn drop_one(&mut self, b: &B);
    fn none(&self) -> bool;
}

impl<B: Ord> Referrers<B> for BTreeSet<B> {
    fn add(&mut self, b: B) {
        self.insert(b);
    }
    fn drop_one(&mut self, b: &B) {
        self.remove(b);
    }
    fn none(&self) -> bool {
        self.is_empty()
    }
}

/// A sorted vector: for sets that nearly always hold one member (the ExternalSecrets
/// writing one Secret), where a B-tree would cost a whole node per set.
impl<B: Ord> Referrers<B> for Vec<B> {
    fn add(&mut self, b: B) {
        if let Err(i) = self.binary_search(&b) {
            self.insert(i, b);
        }
    }
    fn drop_one(&mut self, b: &B) {
        if let Ok(i) = self.binary_search(b) {
            self.remove(i);
        }
    }
    fn none(&self) -> bool {
        self.is_empty()
    }
}

fn link<A: Clone + Eq + std::hash::Hash, B: Clone + Ord, S: Referrers<B>>(
    reverse: &mut HashMap<A, S>,
    from: &B,
    old: &[A],
    new: &[A],
) {
    for a in old {
        if let Some(set) = reverse.get_mut(a) {
            set.drop_one(from);
            if set.none() {
                reverse.remove(a);
            }
        }
    }
    for a in new {
        reverse.entry(a.clone()).or_default().add(from.clone());
    }
}

/// The reference index (see the module docs).
#[derive(Debug, Default)]
pub struct Index {
    es_stores: HashMap<ObjectKey, Vec<StoreKey>>,
    store_es: HashMap<StoreKey, BTreeSet<ObjectKey>>,
    es_target: HashMap<ObjectKey, NamespacedName>,
    target_es: HashMap<NamespacedName, Vec<ObjectKey>>,
    store_secrets: HashMap<StoreKey, Vec<NamespacedName>>,
    secret_stores: HashMap<NamespacedName, BTreeSet<StoreKey>>,
    store_accounts: HashMap<StoreKey, Vec<NamespacedName>>,
    account_stores: HashMap<NamespacedName, BTreeSet<StoreKey>>,
}

impl Index {
    /// Records (or replaces) what ExternalSecret `key` refers to.
    pub fn set_external_secret(&mut self, key: &ObjectKey, es: &ExternalSecret) {
        let stores = external_secret_stores(es);
        let old = self
            .es_stores
            .insert(key.clone(), stores.clone())
            .unwrap_or_default();
        link(&mut self.store_es, key, &old, &stores);
        let target = (
            key.namespace.clone().unwrap_or_default(),
            es.target_name().to_owned(),
        );
        let old: Vec<_> = self
            .es_target
            .insert(key.clone(), target.clone())
            .into_iter()
            .collect();
        link(&mut self.target_es, key, &old, &[target]);
    }

    /// Forgets ExternalSecret `key`.
    pub fn remove_external_secret(&mut self, key: &ObjectKey) {
        let old = self.es_stores.remove(key).unwrap_or_default();
        link(&mut self.store_es, key, &old, &[]);
        let old: Vec<_> = self.es_target.remove(key).into_iter().collect();
        link(&mut self.target_es, key, &old, &[]);
    }

    /// Records (or replaces) what store `key` refers to.
    pub fn set_store(&mut self, key: &StoreKey, provider: StoreProvider<'_>) {
        let (secrets, accounts) = store_references(provider, key.namespace.as_deref());
        let old = self
            .store_secrets
            .insert(key.clone(), secrets.clone())
            .unwrap_or_default();
        link(&mut self.secret_stores, key, &old, &secrets);
        let old = self
            .store_accounts
            .insert(key.clone(), accounts.clone())
            .unwrap_or_default();
        link(&mut self.account_stores, key, &old, &accounts);
    }

    /// Forgets store `key` (the ExternalSecrets naming it stay indexed).
    pub fn remove_store(&mut self, key: &StoreKey) {
        let old = self.store_secrets.remove(key).unwrap_or_default();
        link(&mut self.secret_stores, key, &old, &[]);
        let old = self.store_accounts.remove(key).unwrap_or_default();
        link(&mut self.account_stores, key, &old, &[]);
    }

    /// The ExternalSecrets naming store `key`.
    pub fn external_secrets_of_store(&self, key: &StoreKey) -> Vec<ObjectKey> {
        self.store_es
            .get(key)
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The ExternalSecrets writing Secret `namespace/name`.
    pub fn external_secrets_targeting(&self, namespace: &str, name: &str) -> Vec<ObjectKey> {
        self.target_es
            .get(&(namespace.to_owned(), name.to_owned()))
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The stores naming credential Secret `namespace/name`.
    pub fn stores_of_secret(&self, namespace: &str, name: &str) -> Vec<StoreKey> {
        self.secret_stores
            .get(&(namespace.to_owned(), name.to_owned()))
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The stores naming ServiceAccount `namespace/name`.
    pub fn stores_of_service_account(&self, namespace: &str, name: &str) -> Vec<StoreKey> {
        self.account_stores
            .get(&(namespace.to_owned(), name.to_owned()))
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The ExternalSecrets in `namespace` that use a ClusterSecretStore (whose `conditions`
    /// may depend on the namespace's labels).
    pub fn cluster_store_users_in(&self, namespace: &str) -> Vec<ObjectKey> {
        self.es_stores
            .iter()
            .filter(|(k, stores)| {
                k.namespace.as_deref() == Some(namespace)
                    && stores.iter().any(|s| s.namespace.is_none())
            })
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ClusterSecretStore, SecretStore};

    fn es(yaml: &str) -> ExternalSecret {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn external_secrets_are_found_by_store_and_target() {
        let mut index = Index::default();
        let a = es(r#"
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {name: a, namespace: team}
spec:
  data:
    - {key: k1, secretStoreRef: {name: kms}}
    - {key: k2, secretStoreRef: {name: shared, kind: ClusterSecretStore}}
  dataProcess:
    - extract: {key: k3, secretStoreRef: {name: kms}}
  target: {name: app-secret}
"#);
        let key = ObjectKey::namespaced("team", "a");
        index.set_external_secret(&key, &a);
        assert_eq!(
            index.external_secrets_of_store(&StoreKey::namespaced("team", "kms")),
            std::slice::from_ref(&key)
        );
        assert_eq!(
            index.external_secrets_of_store(&StoreKey::cluster("shared")),
            std::slice::from_ref(&key)
        );
        assert_eq!(
            index.external_secrets_targeting("team", "app-secret"),
            std::slice::from_ref(&key)
        );
        assert_eq!(
            index.cluster_store_users_in("team"),
            std::slice::from_ref(&key)
        );
        assert!(index.cluster_store_users_in("other").is_empty());

        // Edited: the old references go.
        let mut b = a.clone();
        b.spec.data = None;
        b.spec.target = None;
        index.set_external_secret(&key, &b);
        assert!(
            index
                .external_secrets_of_store(&StoreKey::cluster("shared"))
                .is_empty()
        );
        assert!(
            index
                .external_secrets_targeting("team", "app-secret")
                .is_empty()
        );
        assert_eq!(
            index.external_secrets_targeting("team", "a"),
            std::slice::from_ref(&key)
        );
        index.remove_external_secret(&key);
        assert!(
            index
                .external_secrets_of_store(&StoreKey::namespaced("team", "kms"))
                .is_empty()
        );
        assert!(index.external_secrets_targeting("team", "a").is_empty());
    }

    #[test]
    fn every_external_secret_targeting_one_secret_is_found_until_it_goes() {
        let mut index = Index::default();
        let targeting = |name: &str| {
            es(&format!(
                "apiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: team}}\nspec: {{target: {{name: shared}}}}"
            ))
        };
        let (b, a) = (
            ObjectKey::namespaced("team", "b"),
            ObjectKey::namespaced("team", "a"),
        );
        index.set_external_secret(&b, &targeting("b"));
        index.set_external_secret(&a, &targeting("a"));
        // Set again: still listed once.
        index.set_external_secret(&a, &targeting("a"));
        assert_eq!(
            index.external_secrets_targeting("team", "shared"),
            [a.clone(), b.clone()]
        );
        index.remove_external_secret(&a);
        assert_eq!(
            index.external_secrets_targeting("team", "shared"),
            std::slice::from_ref(&b)
        );
        index.remove_external_secret(&b);
        assert!(
            index
                .external_secrets_targeting("team", "shared")
                .is_empty()
        );
        assert!(index.target_es.is_empty());
    }

    #[test]
    fn stores_are_found_by_their_credential_secrets_and_service_accounts() {
        let mut index = Index::default();
        let ss: SecretStore = serde_yaml_ng::from_str(
            r#"
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {name: kms, namespace: team}
spec:
  KMS:
    KMSAuth:
      accessKey: {name: ak, key: id}
      accessKeySecret: {name: ak, key: secret}
      serviceAccountRef: {name: reader}
"#,
        )
        .unwrap();
        let key = StoreKey::namespaced("team", "kms");
        index.set_store(&key, ss.spec.provider());
        assert_eq!(
            index.stores_of_secret("team", "ak"),
            std::slice::from_ref(&key)
        );
        assert_eq!(
            index.stores_of_service_account("team", "reader"),
            std::slice::from_ref(&key)
        );
        let css: ClusterSecretStore = serde_yaml_ng::from_str(
            r#"
apiVersion: alibabacloud.com/v1alpha1
kind: ClusterSecretStore
metadata: {name: shared}
spec:
  KMS:
    dedicatedKMSAuth:
      protocol: https
      endpoint: kst-1
      clientKeyContent: {name: ck, namespace: ops, key: key}
      password: {name: ck, key: password}
"#,
        )
        .unwrap();
        let ckey = StoreKey::cluster("shared");
        index.set_store(&ckey, css.spec.provider());
        // The reference without a namespace cannot be resolved for a cluster store.
        assert_eq!(
            index.stores_of_secret("ops", "ck"),
            std::slice::from_ref(&ckey)
        );
        index.remove_store(&key);
        assert!(index.stores_of_secret("team", "ak").is_empty());
        assert!(index.stores_of_service_account("team", "reader").is_empty());
    }
}
