//! What the pipeline needs from the world, behind one trait: stores, namespace labels,
//! fetchers and ConfigMap bytes. The controller implements it with reflector caches and the
//! Kubernetes API, `kmsync render` with manifests ([`MemoryEnv`]), tests with fakes.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::api::{Provider, StoreKind};
use crate::fetch::SecretFetcher;
use crate::stores::{FetcherProvider, StoreError, StoreObject, StoreSelector};

/// A boxed error from an environment's backend (kube client error, I/O error, ...).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why the environment could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The store could not be turned into a fetcher (credentials, endpoint, client).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backend failed (API error, permission denied, unreadable file).
    #[error("reading {what} failed")]
    Backend {
        /// What was being read, e.g. `SecretStore team-a/kms`, `ConfigMap team-a/rules`.
        what: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

/// One key of a ConfigMap holding a rule module.
#[derive(Clone, PartialEq, Eq)]
pub enum ConfigMapKey {
    /// The bytes of `binaryData[key]` (or the UTF-8 bytes of `data[key]`).
    Found(Vec<u8>),
    /// No ConfigMap of that name.
    NoConfigMap,
    /// The ConfigMap exists but has no such key.
    NoKey,
}

impl fmt::Debug for ConfigMapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Found(b) => write!(f, "Found(<{} bytes>)", b.len()),
            Self::NoConfigMap => f.write_str("NoConfigMap"),
            Self::NoKey => f.write_str("NoKey"),
        }
    }
}

/// The pipeline's view of the world. Every method is a read; none may return secret values
/// except through the fetcher.
#[async_trait]
pub trait SyncEnv: Send + Sync {
    /// The store `kind` `namespace/name` (`namespace` is `None` for a ClusterSecretStore);
    /// `Ok(None)` when it does not exist.
    ///
    /// # Errors
    /// [`EnvError::Backend`].
    async fn store(
        &self,
        kind: StoreKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<StoreObject>, EnvError>;

    /// Labels of namespace `name` (for ClusterSecretStore `conditions`); `Ok(None)` when the
    /// namespace is unknown (treated as having no labels).
    ///
    /// # Errors
    /// [`EnvError::Backend`].
    async fn namespace_labels(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EnvError>;

    /// A fetcher for `store` (or the ambient credentials), calling `endpoint` (an entry's
    /// `kmsEndpoint`) instead of the default when given.
    ///
    /// # Errors
    /// [`EnvError::Store`] when the store cannot be used; [`EnvError::Backend`].
    async fn fetcher(
        &self,
        store: StoreSelector<'_>,
        provider: Provider,
        endpoint: Option<&str>,
    ) -> Result<Arc<dyn SecretFetcher>, EnvError>;

    /// `binaryData[key]` (or `data[key]`) of ConfigMap `namespace/name` (rule modules).
    ///
    /// # Errors
    /// [`EnvError::Backend`].
    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<ConfigMapKey, EnvError>;
}

/// An environment held in memory: stores, namespace labels and ConfigMaps given up front,
/// fetchers from a [`FetcherProvider`] (a [`crate::stores::StoreResolver`], or a fake). Used
/// by `kmsync render` (objects from manifests) and by tests.
pub struct MemoryEnv {
    stores: HashMap<(StoreKind, Option<String>, String), StoreObject>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
    config_maps: HashMap<(String, String), HashMap<String, Vec<u8>>>,
    fetchers: Arc<dyn FetcherProvider>,
}

impl fmt::Debug for MemoryEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut stores: Vec<String> = self
            .stores
            .values()
            .map(|s| s.identity().to_string())
            .collect();
        stores.sort();
        f.debug_struct("MemoryEnv")
            .field("stores", &stores)
            .field("namespaces", &self.namespaces.len())
            .field("config_maps", &self.config_maps.len())
            .finish_non_exhaustive()
    }
}

impl MemoryEnv {
    /// An empty environment whose fetchers come from `fetchers`.
    pub fn new(fetchers: Arc<dyn FetcherProvider>) -> Self {
        Self {
            stores: HashMap::new(),
            namespaces: HashMap::new(),
            config_maps: HashMap::new(),
            fetchers,
        }
    }

    /// Adds (or replaces) a store.
    pub fn insert_store(&mut self, store: StoreObject) {
        let id = store.identity();
        self.stores.insert((id.kind, id.namespace, id.name), store);
    }

    /// Sets a namespace's labels.
    pub fn insert_namespace(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces.insert(name.to_owned(), labels);
    }

    /// Adds (or replaces) a ConfigMap's keys (`binaryData` decoded, and `data` as UTF-8).
    pub fn insert_config_map(
        &mut self,
        namespace: &str,
        name: &str,
        keys: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) {
        self.config_maps.insert(
            (namespace.to_owned(), name.to_owned()),
            keys.into_iter().collect(),
        );
    }
}

#[async_trait]
impl SyncEnv for MemoryEnv {
    async fn store(
        &self,
        kind: StoreKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<StoreObject>, EnvError> {
        let namespace = match kind {
            StoreKind::SecretStore => Some(namespace.unwrap_or_default().to_owned()),
            StoreKind::ClusterSecretStore => None,
        };
        Ok(self
            .stores
            .get(&(kind, namespace, name.to_owned()))
            .cloned())
    }

    async fn namespace_labels(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        Ok(self.namespaces.get(name).cloned())
    }

    async fn fetcher(
        &self,
        store: StoreSelector<'_>,
        provider: Provider,
        endpoint: Option<&str>,
    ) -> Result<Arc<dyn SecretFetcher>, EnvError> {
        Ok(self.fetchers.fetcher(store, provider, endpoint).await?)
    }

    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<ConfigMapKey, EnvError> {
        Ok(
            match self
                .config_maps
                .get(&(namespace.to_owned(), name.to_owned()))
            {
                None => ConfigMapKey::NoConfigMap,
                Some(keys) => match keys.get(key) {
                    Some(bytes) => ConfigMapKey::Found(bytes.clone()),
                    None => ConfigMapKey::NoKey,
                },
            },
        )
    }
}
