//! The reflector caches the controller reads instead of the API server: every object of the
//! served kinds, namespace labels (metadata only), and the Secrets kmsync manages (label
//! `app.kubernetes.io/managed-by=kmsync` only, so memory does not grow with unrelated Secrets).
//!
//! A namespaced kind has one cache for the whole cluster, or one per watched namespace
//! (`--watch-namespaces`): [`Scoped`] hides the difference.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{Lookup, ObjectRef, Store};

use super::observed::ObservedSecret;

use crate::api::{ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore};

/// Reflector stores of one namespaced kind: `None` = the whole cluster, else one namespace.
#[derive(Clone)]
pub struct Scoped<K: Lookup<DynamicType = ()> + Clone + 'static> {
    stores: Vec<(Option<String>, Store<K>)>,
}

impl<K: Lookup<DynamicType = ()> + Clone + 'static> std::fmt::Debug for Scoped<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("scopes", &self.stores.len())
            .field("objects", &self.len())
            .finish()
    }
}

impl<K: Lookup<DynamicType = ()> + Clone + 'static> Scoped<K> {
    /// Stores by scope.
    pub fn new(stores: Vec<(Option<String>, Store<K>)>) -> Self {
        Self { stores }
    }

    /// The object `namespace/name`, if cached.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = ObjectRef::new(name).within(namespace);
        self.stores
            .iter()
            .filter(|(scope, _)| scope.as_deref().is_none_or(|s| s == namespace))
            .find_map(|(_, store)| store.get(&key))
    }

    /// Every cached object.
    pub fn all(&self) -> Vec<Arc<K>> {
        self.stores.iter().flat_map(|(_, s)| s.state()).collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.stores.iter().map(|(_, s)| s.len()).sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every cache the controller reads.
#[derive(Clone, Debug)]
pub struct Caches {
    /// ExternalSecrets.
    pub external_secrets: Scoped<ExternalSecret>,
    /// SecretStores.
    pub secret_stores: Scoped<SecretStore>,
    /// Managed Secrets (label-selected), reduced to what the controller reads: no values.
    pub managed_secrets: Scoped<ObservedSecret>,
    /// ClusterSecretStores (cluster-wide installs only).
    pub cluster_secret_stores: Option<Store<ClusterSecretStore>>,
    /// ClusterExternalSecrets (cluster-wide installs only).
    pub cluster_external_secrets: Option<Store<ClusterExternalSecret>>,
    /// Namespace metadata (cluster-wide installs only).
    pub namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
}

impl Caches {
    /// The SecretStore `namespace/name`.
    pub fn secret_store(&self, namespace: &str, name: &str) -> Option<Arc<SecretStore>> {
        self.secret_stores.get(namespace, name)
    }

    /// The ClusterSecretStore `name` (`None` as well when cluster kinds are not served).
    pub fn cluster_secret_store(&self, name: &str) -> Option<Arc<ClusterSecretStore>> {
        self.cluster_secret_stores
            .as_ref()?
            .get(&ObjectRef::new(name))
    }

    /// The ExternalSecret `namespace/name`.
    pub fn external_secret(&self, namespace: &str, name: &str) -> Option<Arc<ExternalSecret>> {
        self.external_secrets.get(namespace, name)
    }

    /// The ClusterExternalSecret `name`.
    pub fn cluster_external_secret(&self, name: &str) -> Option<Arc<ClusterExternalSecret>> {
        self.cluster_external_secrets
            .as_ref()?
            .get(&ObjectRef::new(name))
    }

    /// The managed Secret `namespace/name`.
    pub fn managed_secret(&self, namespace: &str, name: &str) -> Option<Arc<ObservedSecret>> {
        self.managed_secrets.get(namespace, name)
    }

    /// Labels of namespace `name`, when namespaces are watched and it exists.
    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let ns = self.namespaces.as_ref()?.get(&ObjectRef::new(name))?;
        Some(ns.metadata.labels.clone().unwrap_or_default())
    }

    /// Every namespace (name, labels), when namespaces are watched.
    pub fn namespaces(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.namespaces
            .iter()
            .flat_map(|s| s.state())
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .map(|ns| {
                (
                    ns.metadata.name.clone().unwrap_or_default(),
                    ns.metadata.labels.clone().unwrap_or_default(),
                )
            })
            .collect()
    }
}
