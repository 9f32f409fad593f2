//! One provider per store generation: [`CredentialsRegistry`] caches the provider stack of each
//! store, keyed by kind, namespace, name and uid, and rebuilds it when the store's generation,
//! a referenced Secret's or ServiceAccount's resourceVersion, or the AccessKey itself changes.
//! Reusing the instance is what keeps temporary credentials cached across reconciles.
//!
//! ```text
//!  reconcile(store) ─▶ registry.provider(store, auth)
//!                          │ resolve (reads Secrets / ServiceAccount, cheap with a reflector)
//!                          ▼
//!             same generation + fingerprint as the cached entry? ─yes─▶ cached provider
//!                          │ no
//!                          ▼
//!                    build a new stack, replace the entry
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::builder::{BuildError, CredentialsFactory, ObjectVersion, StoreKind, StoreRef};
use super::{CredentialsError, CredentialsProvider};
use crate::api::CloudAuth;

/// Identity of a store in the registry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct StoreKey {
    kind: StoreKind,
    namespace: Option<String>,
    name: String,
    uid: Option<String>,
}

impl From<&StoreRef> for StoreKey {
    fn from(s: &StoreRef) -> Self {
        Self {
            kind: s.kind,
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            uid: s.uid.clone(),
        }
    }
}

#[derive(PartialEq, Eq)]
struct Version {
    generation: Option<i64>,
    auth_path: String,
    fingerprint: Vec<ObjectVersion>,
    access_key_digest: Option<[u8; 32]>,
}

struct Entry {
    version: Version,
    method: String,
    provider: Arc<dyn CredentialsProvider>,
}

/// What the registry knows about a store's credentials (for its `Ready` condition and metrics).
#[derive(Clone, Debug)]
pub struct ProviderStatus {
    /// The method (`access_key`, `rrsa_oidc+remote_role`, ...; see
    /// [`ResolvedAuth::method`](super::ResolvedAuth::method)).
    pub method: String,
    /// The store generation the provider was built for.
    pub generation: Option<i64>,
    /// The last refresh error not yet followed by a success.
    pub last_refresh_error: Option<Arc<CredentialsError>>,
}

/// Caches one provider stack per store generation (see the module docs).
pub struct CredentialsRegistry {
    factory: CredentialsFactory,
    entries: Mutex<HashMap<StoreKey, Entry>>,
}

impl fmt::Debug for CredentialsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsRegistry")
            .field("stores", &self.len())
            .finish_non_exhaustive()
    }
}

impl CredentialsRegistry {
    /// An empty registry building with `factory`.
    pub fn new(factory: CredentialsFactory) -> Self {
        Self {
            factory,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The factory.
    pub fn factory(&self) -> &CredentialsFactory {
        &self.factory
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StoreKey, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The provider for `store` with `auth` (its `KMSAuth`/`OOSAuth`): the cached one when
    /// nothing changed, else a new one (which replaces the cached one). Concurrent calls for an
    /// unchanged store return the same instance.
    ///
    /// # Errors
    /// [`BuildError`] from resolving or building; the cached entry is kept (and not returned).
    pub async fn provider(
        &self,
        store: &StoreRef,
        auth: Option<&CloudAuth>,
    ) -> Result<Arc<dyn CredentialsProvider>, BuildError> {
        let resolved = self.factory.resolve(store, auth).await?;
        let version = Version {
            generation: store.generation,
            auth_path: store.auth_path.clone(),
            fingerprint: resolved.fingerprint.clone(),
            access_key_digest: resolved.access_key_digest,
        };
        let key = StoreKey::from(store);
        if let Some(entry) = self.lock().get(&key)
            && entry.version == version
        {
            return Ok(entry.provider.clone());
        }
        // Building does no I/O; it runs under the lock so that racing callers share one stack.
        let mut entries = self.lock();
        if let Some(entry) = entries.get(&key)
            && entry.version == version
        {
            return Ok(entry.provider.clone());
        }
        let provider = self.factory.build(&resolved)?;
        let method = resolved.method();
        tracing::info!(
            store = %store,
            generation = ?store.generation,
            method = %method,
            provider = provider.name(),
            replaced = entries.contains_key(&key),
            "built credentials provider"
        );
        entries.insert(
            key,
            Entry {
                version,
                method,
                provider: provider.clone(),
            },
        );
        Ok(provider)
    }

    /// Status of `store`'s cached provider, if any.
    pub fn status(&self, store: &StoreRef) -> Option<ProviderStatus> {
        let entries = self.lock();
        let entry = entries.get(&StoreKey::from(store))?;
        Some(ProviderStatus {
            method: entry.method.clone(),
            generation: entry.version.generation,
            last_refresh_error: entry.provider.last_refresh_error(),
        })
    }

    /// Forgets `store` (when it is deleted). Returns whether it was cached.
    pub fn remove(&self, store: &StoreRef) -> bool {
        self.lock().remove(&StoreKey::from(store)).is_some()
    }

    /// Number of cached stores.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alibaba::{ClientConfig, EndpointPolicy, RpcClient};
    use crate::api::SecretKeyRef;
    use crate::credentials::builder::FactoryConfig;
    use crate::credentials::source::MemorySecrets;
    use crate::value::SecretBytes;

    fn setup() -> (Arc<MemorySecrets>, CredentialsRegistry) {
        let secrets = Arc::new(MemorySecrets::new());
        let put = |rv: &str, secret: &str| {
            secrets.insert(
                "ns",
                "ak",
                [
                    ("id".to_owned(), SecretBytes::from("LTAI5tExampleId01")),
                    ("secret".to_owned(), SecretBytes::from(secret)),
                ],
                Some(rv),
            )
        };
        put("1", "first");
        let factory = CredentialsFactory::new(
            RpcClient::new(ClientConfig::default()).unwrap(),
            EndpointPolicy::default(),
            FactoryConfig::default(),
            secrets.clone(),
        )
        .unwrap();
        (secrets, CredentialsRegistry::new(factory))
    }

    fn auth() -> CloudAuth {
        let r = |key: &str| SecretKeyRef {
            name: "ak".into(),
            namespace: None,
            key: key.into(),
        };
        CloudAuth {
            access_key: Some(r("id")),
            access_key_secret: Some(r("secret")),
            ..CloudAuth::default()
        }
    }

    #[tokio::test]
    async fn the_same_generation_reuses_the_provider_and_changes_rebuild_it() {
        let (secrets, registry) = setup();
        let store = StoreRef::secret_store("ns", "s").with_identity(Some("uid-1"), Some(1));
        let a = registry.provider(&store, Some(&auth())).await.unwrap();
        let b = registry.provider(&store, Some(&auth())).await.unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(registry.status(&store).unwrap().method, "access_key");

        // A rotated AccessKey Secret (new resourceVersion) yields a new provider.
        secrets.insert(
            "ns",
            "ak",
            [
                ("id".to_owned(), SecretBytes::from("LTAI5tExampleId01")),
                ("secret".to_owned(), SecretBytes::from("second")),
            ],
            Some("2"),
        );
        let c = registry.provider(&store, Some(&auth())).await.unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(
            c.credentials().await.unwrap().access_key_secret.expose(),
            "second"
        );

        // A new generation does too; a re-created store (new uid) is another entry.
        let next = store.clone().with_identity(Some("uid-1"), Some(2));
        let d = registry.provider(&next, Some(&auth())).await.unwrap();
        assert!(!Arc::ptr_eq(&c, &d));
        let recreated = store.clone().with_identity(Some("uid-2"), Some(1));
        registry.provider(&recreated, Some(&auth())).await.unwrap();
        assert_eq!(registry.len(), 2);
        assert!(registry.remove(&recreated));
        assert_eq!(registry.len(), 1);
    }

    #[tokio::test]
    async fn a_changed_key_without_resource_versions_still_rebuilds() {
        let (secrets, registry) = setup();
        let store = StoreRef::secret_store("ns", "s");
        let a = registry.provider(&store, Some(&auth())).await.unwrap();
        secrets.insert(
            "ns",
            "ak",
            [
                ("id".to_owned(), SecretBytes::from("LTAI5tExampleId01")),
                ("secret".to_owned(), SecretBytes::from("rotated")),
            ],
            Some("1"),
        );
        let b = registry.provider(&store, Some(&auth())).await.unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[tokio::test]
    async fn a_failed_resolve_keeps_the_old_entry_but_returns_the_error() {
        let (secrets, registry) = setup();
        let store = StoreRef::secret_store("ns", "s");
        registry.provider(&store, Some(&auth())).await.unwrap();
        secrets.remove("ns", "ak");
        let err = registry.provider(&store, Some(&auth())).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.KMS.KMSAuth.accessKey: Secret ns/ak does not exist"
        );
        assert_eq!(registry.len(), 1);
    }
}
