//! The sync pipeline's environment in the controller ([`KubeEnv`], a [`SyncEnv`]): stores and
//! namespace labels from the reflector caches, rule modules from ConfigMaps (a `get`), and
//! fetchers from the [`StoreResolver`] wrapped in [`Limited`] — the per-store token bucket
//! (`--kms-qps`) and the cloud-call metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::caches::Caches;
use super::index::StoreKey;
use super::metrics::{CloudCallLabels, Metrics, code_label};
use super::ratelimit::{StoreBuckets, TokenBucket};
use crate::api::{Provider, StoreKind};
use crate::fetch::{FetchError, FetchRequest, SecretFetcher, StoreCheck};
use crate::kms::SecretValue;
use crate::stores::{FetcherProvider, StoreObject, StoreResolver, StoreSelector};
use crate::sync::{ConfigMapKey, EnvError, SyncEnv};

/// A fetcher that waits for its store's token before every call and counts the calls.
#[derive(Debug)]
pub struct Limited {
    inner: Arc<dyn SecretFetcher>,
    bucket: Arc<TokenBucket>,
    metrics: Arc<Metrics>,
}

impl Limited {
    /// Wraps `inner`.
    pub fn new(
        inner: Arc<dyn SecretFetcher>,
        bucket: Arc<TokenBucket>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner,
            bucket,
            metrics,
        }
    }

    fn record<T>(&self, action: &'static str, result: &Result<T, FetchError>) {
        let code = match result {
            Ok(_) => "Success".to_owned(),
            Err(e) => code_label(e.code(), e.metric_label()),
        };
        self.metrics
            .cloud_calls
            .get_or_create(&CloudCallLabels {
                service: self.inner.source_kind(),
                action,
                code,
            })
            .inc();
    }
}

#[async_trait]
impl SecretFetcher for Limited {
    async fn fetch(&self, request: &FetchRequest) -> Result<SecretValue, FetchError> {
        self.bucket.acquire().await;
        let result = self.inner.fetch(request).await;
        let action = if self.inner.source_kind() == "oos" {
            "GetSecretParameter"
        } else {
            "GetSecretValue"
        };
        self.record(action, &result);
        result
    }

    async fn check(&self) -> Result<StoreCheck, FetchError> {
        self.bucket.acquire().await;
        let result = self.inner.check().await;
        self.record("ReadinessProbe", &result);
        result
    }

    fn source_kind(&self) -> &'static str {
        self.inner.source_kind()
    }
}

/// The controller's [`SyncEnv`] (see the module docs).
pub struct KubeEnv {
    client: kube::Client,
    caches: Arc<Caches>,
    resolver: Arc<StoreResolver>,
    buckets: Arc<StoreBuckets>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for KubeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeEnv").finish_non_exhaustive()
    }
}

impl KubeEnv {
    /// An environment over the caches and the resolver.
    pub fn new(
        client: kube::Client,
        caches: Arc<Caches>,
        resolver: Arc<StoreResolver>,
        buckets: Arc<StoreBuckets>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            caches,
            resolver,
            buckets,
            metrics,
        }
    }

    /// The bucket of the store `selector` names (`ambient` for the controller's own
    /// credentials).
    fn bucket(&self, selector: &StoreSelector<'_>) -> Arc<TokenBucket> {
        let label = match selector {
            StoreSelector::Store(store) => {
                let id = store.identity();
                match id.namespace {
                    Some(ns) => StoreKey::namespaced(&ns, &id.name).label(),
                    None => StoreKey::cluster(&id.name).label(),
                }
            }
            StoreSelector::Ambient(_) => "ambient".to_owned(),
        };
        self.buckets.bucket(&label)
    }

    /// A rate-limited, counted fetcher for `selector` (used by the store readiness check too).
    ///
    /// # Errors
    /// [`EnvError::Store`].
    pub async fn limited_fetcher(
        &self,
        selector: StoreSelector<'_>,
        provider: Provider,
        endpoint: Option<&str>,
    ) -> Result<Arc<dyn SecretFetcher>, EnvError> {
        let inner = self.resolver.fetcher(selector, provider, endpoint).await?;
        Ok(Arc::new(Limited::new(
            inner,
            self.bucket(&selector),
            self.metrics.clone(),
        )))
    }
}

#[async_trait]
impl SyncEnv for KubeEnv {
    async fn store(
        &self,
        kind: StoreKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<StoreObject>, EnvError> {
        Ok(match kind {
            StoreKind::SecretStore => self
                .caches
                .secret_store(namespace.unwrap_or_default(), name)
                .map(StoreObject::SecretStore),
            StoreKind::ClusterSecretStore => self
                .caches
                .cluster_secret_store(name)
                .map(StoreObject::ClusterSecretStore),
        })
    }

    async fn namespace_labels(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EnvError> {
        Ok(self.caches.namespace_labels(name))
    }

    async fn fetcher(
        &self,
        store: StoreSelector<'_>,
        provider: Provider,
        endpoint: Option<&str>,
    ) -> Result<Arc<dyn SecretFetcher>, EnvError> {
        self.limited_fetcher(store, provider, endpoint).await
    }

    async fn config_map_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<ConfigMapKey, EnvError> {
        let started = Instant::now();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let cm = api.get_opt(name).await.map_err(|e| EnvError::Backend {
            what: format!("ConfigMap {namespace}/{name}"),
            source: Box::new(e),
        })?;
        tracing::debug!(configmap = %format!("{namespace}/{name}"), took = ?started.elapsed(), "read a rule module");
        let Some(cm) = cm else {
            return Ok(ConfigMapKey::NoConfigMap);
        };
        if let Some(bytes) = cm.binary_data.as_ref().and_then(|d| d.get(key)) {
            return Ok(ConfigMapKey::Found(bytes.0.clone()));
        }
        if let Some(text) = cm.data.as_ref().and_then(|d| d.get(key)) {
            return Ok(ConfigMapKey::Found(text.as_bytes().to_vec()));
        }
        Ok(ConfigMapKey::NoKey)
    }
}
