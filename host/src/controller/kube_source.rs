//! The credential providers' view of Kubernetes, over the API server:
//!
//! * [`KubeSecrets`] ([`SecretSource`]): credential Secrets named by stores (`accessKey`,
//!   `accessKeySecret`, `clientKeyContent`, `password`). Each Secret read is kept in memory
//!   with its `resourceVersion` until the Secret watch says it changed
//!   ([`KubeSecrets::observe`]) or it is [`STALE_AFTER`] old, so resolving a store costs no API
//!   call while nothing changed, and only Secrets some store names are held.
//! * [`KubeServiceAccounts`] ([`ServiceAccountTokens`]): a ServiceAccount's annotations
//!   (`get serviceaccounts`) and a fresh token for it (`create serviceaccounts/token`).
//!
//! Namespaces reaching these have already passed the cross-namespace rules
//! (`credentials::references`); errors name objects, never values.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use crate::credentials::{
    SecretKeyValue, SecretSource, ServiceAccountInfo, ServiceAccountToken, ServiceAccountTokens,
    SourceError,
};
use crate::value::SecretBytes;

/// How long a cached credential Secret is trusted without a watch event.
pub const STALE_AFTER: Duration = Duration::from_secs(600);

struct Cached {
    resource_version: Option<String>,
    data: BTreeMap<String, SecretBytes>,
    read_at: Instant,
}

/// Credential Secrets from the API server, cached per Secret (see the module docs).
pub struct KubeSecrets {
    client: kube::Client,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl std::fmt::Debug for KubeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSecrets")
            .field("cached", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl KubeSecrets {
    /// An empty cache over `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The Secret watch saw `namespace/name` at `resource_version` (`None`: deleted). Returns
    /// true when a cached copy was dropped because it is out of date — a store using it must
    /// be resolved again.
    pub fn observe(&self, namespace: &str, name: &str, resource_version: Option<&str>) -> bool {
        let mut cache = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        match cache.get(&key) {
            Some(c) if c.resource_version.as_deref() == resource_version => false,
            Some(_) => {
                cache.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Whether `namespace/name` is cached (tests, metrics).
    pub fn is_cached(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .contains_key(&(namespace.to_owned(), name.to_owned()))
    }

    /// Drops everything (after the watch restarted and may have missed changes).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

fn backend(kind: &'static str, namespace: &str, name: &str, source: kube::Error) -> SourceError {
    SourceError::Backend {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source: Box::new(source),
    }
}

#[async_trait]
impl SecretSource for KubeSecrets {
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretKeyValue, SourceError> {
        let cache_key = (namespace.to_owned(), name.to_owned());
        let fresh = |c: &Cached| c.read_at.elapsed() < STALE_AFTER;
        let hit = self
            .lock()
            .get(&cache_key)
            .filter(|c| fresh(c))
            .map(|c| (c.data.get(key).cloned(), c.resource_version.clone()));
        let (value, resource_version) = match hit {
            Some(found) => found,
            None => {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                let secret = api
                    .get_opt(name)
                    .await
                    .map_err(|e| backend("Secret", namespace, name, e))?
                    .ok_or_else(|| SourceError::SecretNotFound {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                    })?;
                let resource_version = secret.metadata.resource_version.clone();
                let data: BTreeMap<String, SecretBytes> = secret
                    .data
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k, SecretBytes::new(v.0)))
                    .collect();
                let value = data.get(key).cloned();
                self.lock().insert(
                    cache_key,
                    Cached {
                        resource_version: resource_version.clone(),
                        data,
                        read_at: Instant::now(),
                    },
                );
                (value, resource_version)
            }
        };
        let value = value.ok_or_else(|| SourceError::KeyNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        })?;
        Ok(SecretKeyValue {
            value,
            resource_version,
        })
    }
}

/// ServiceAccounts and their tokens from the API server (only wired with
/// `--enable-service-account-token`).
#[derive(Clone)]
pub struct KubeServiceAccounts {
    client: kube::Client,
}

impl std::fmt::Debug for KubeServiceAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeServiceAccounts")
            .finish_non_exhaustive()
    }
}

impl KubeServiceAccounts {
    /// Over `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ServiceAccountTokens for KubeServiceAccounts {
    async fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ServiceAccountInfo, SourceError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let sa = api
            .get_opt(name)
            .await
            .map_err(|e| backend("ServiceAccount", namespace, name, e))?
            .ok_or_else(|| SourceError::ServiceAccountNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
        Ok(ServiceAccountInfo {
            annotations: sa.metadata.annotations.unwrap_or_default(),
            resource_version: sa.metadata.resource_version,
        })
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: u32,
    ) -> Result<ServiceAccountToken, SourceError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audiences.to_vec(),
                expiration_seconds: Some(i64::from(expiration_seconds)),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let answer = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| match &e {
                kube::Error::Api(s) if s.code == 404 => SourceError::ServiceAccountNotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                },
                _ => SourceError::TokenRequest {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    source: Box::new(e),
                },
            })?;
        let status = answer.status.ok_or_else(|| SourceError::TokenRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: "the TokenRequest answer has no status".into(),
        })?;
        let expiration =
            chrono::DateTime::from_timestamp(status.expiration_timestamp.0.as_second(), 0);
        Ok(ServiceAccountToken {
            token: crate::value::SecretString::new(status.token),
            expiration,
        })
    }
}
