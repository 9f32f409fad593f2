//! [`StoreResolver`]: endpoints, credentials and clients per store, cached per store generation.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hmac::Mac as _;

use super::{
    FetcherProvider, Redirect, StoreError, StoreIdentity, StoreObject, StoreReadiness,
    StoreResolverConfig, StoreSelector,
};
use crate::alibaba::{
    ClientConfig, Endpoint, EndpointPolicy, EndpointSource, Network, RpcClient, Service, TlsRoots,
};
use crate::api::{Backend, CloudAuth, Provider, StoreKind};
use crate::credentials::{
    CredentialsFactory, CredentialsProvider, CredentialsRegistry, SecretSource,
    ServiceAccountTokens, StoreRef, StoreScope, reference_namespace,
};
use crate::dkms::{ClientKey, InstanceClient, InstanceClientConfig, InstanceTrust};
use crate::fetch::{SecretFetcher, Source};
use crate::kms::KmsClient;
use crate::oos::OosClient;
use crate::value::{SecretBytes, SecretString};

/// What a cached fetcher was built from; a different value means "rebuild".
#[derive(Clone, PartialEq, Eq)]
enum Basis {
    /// Data pointer of the credentials provider the registry returned (it returns the same
    /// instance while nothing changed).
    Credentials(usize),
    /// Keyed digest of the ClientKey content and password, plus their resourceVersions.
    ClientKey {
        digest: [u8; 32],
        versions: Vec<Option<String>>,
    },
}

/// Cache key: which credentials, which service, which endpoint override. The store's
/// generation is compared separately so that an edited store replaces its entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FetcherKey {
    source: SourceKey,
    provider: ProviderKey,
    endpoint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum SourceKey {
    Store {
        kind: StoreKind,
        namespace: Option<String>,
        name: String,
        uid: Option<String>,
    },
    Ambient,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ProviderKey {
    Kms,
    Oos,
}

impl From<Provider> for ProviderKey {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Kms => Self::Kms,
            Provider::Oos => Self::Oos,
        }
    }
}

struct Cached {
    generation: Option<i64>,
    basis: Basis,
    fetcher: Arc<Source>,
}

/// Where a [`Redirect`] sends calls.
#[derive(Clone, Debug)]
struct RedirectTarget {
    url: String,
    addr: SocketAddr,
    ca_pem: Option<String>,
}

/// Turns stores into fetchers (see the module docs). Cheap to share behind an `Arc`; every
/// method takes `&self`.
pub struct StoreResolver {
    region: Option<String>,
    kms_endpoint: Option<String>,
    policy: EndpointPolicy,
    client: ClientConfig,
    rpc: RpcClient,
    registry: CredentialsRegistry,
    secrets: Arc<dyn SecretSource>,
    allow_cross_namespace_auth_ref: bool,
    redirect: Option<RedirectTarget>,
    fetchers: Mutex<HashMap<FetcherKey, Cached>>,
    digest_key: [u8; 32],
}

impl fmt::Debug for StoreResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreResolver")
            .field("region", &self.region)
            .field("kms_endpoint", &self.kms_endpoint)
            .field("redirect", &self.redirect.as_ref().map(|r| &r.url))
            .field("cached_fetchers", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`StoreResolver`]; see [`StoreResolver::builder`].
pub struct StoreResolverBuilder {
    config: StoreResolverConfig,
    secrets: Arc<dyn SecretSource>,
    service_accounts: Option<Arc<dyn ServiceAccountTokens>>,
    ambient: Option<Arc<dyn CredentialsProvider>>,
}

impl fmt::Debug for StoreResolverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreResolverBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StoreResolverBuilder {
    /// Supplies TokenRequest access for `serviceAccountRef` stores (the controller with
    /// `--enable-service-account-token`). Without it such stores fail with
    /// `ServiceAccount tokens are not available here`.
    pub fn service_accounts(mut self, tokens: Arc<dyn ServiceAccountTokens>) -> Self {
        self.service_accounts = Some(tokens);
        self
    }

    /// Replaces the ambient credentials (default: the default chain built from the process
    /// environment), e.g. fixed credentials in tests.
    pub fn ambient(mut self, provider: Arc<dyn CredentialsProvider>) -> Self {
        self.ambient = Some(provider);
        self
    }

    /// Builds the HTTP client and the credentials factory.
    ///
    /// # Errors
    /// [`StoreError::Endpoint`] for an unusable redirect or STS endpoint,
    /// [`StoreError::Client`] for an unusable CA bundle or TLS setup.
    pub fn build(self) -> Result<StoreResolver, StoreError> {
        let StoreResolverConfig {
            region,
            kms_endpoint,
            mut policy,
            mut client,
            mut credentials,
            redirect,
        } = self.config;
        let redirect = match redirect {
            None => None,
            Some(r) => {
                let target = redirect_target(&r)?;
                policy = policy
                    .trust_url(&r.url)
                    .map_err(|source| StoreError::Endpoint {
                        field: "redirect".into(),
                        value: r.url.clone(),
                        source: Box::new(source),
                    })?;
                if let Some(pem) = &r.ca_pem {
                    client.tls_roots = TlsRoots::pinned_pem(pem.as_bytes())
                        .map_err(|e| StoreError::Client(Box::new(e)))?;
                }
                credentials.sts.url = Some(r.url.clone());
                Some(target)
            }
        };
        let allow_cross_namespace_auth_ref = credentials.allow_cross_namespace_auth_ref;
        let rpc = RpcClient::new(client.clone()).map_err(|e| StoreError::Client(Box::new(e)))?;
        let mut factory = CredentialsFactory::new(
            rpc.clone(),
            policy.clone(),
            credentials,
            self.secrets.clone(),
        )
        .map_err(|source| StoreError::Credentials {
            store: "kmsync".into(),
            source: Box::new(source),
        })?;
        if let Some(tokens) = self.service_accounts {
            factory = factory.with_service_accounts(tokens);
        }
        if let Some(ambient) = self.ambient {
            factory = factory.with_ambient(ambient);
        }
        let mut digest_key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut digest_key);
        Ok(StoreResolver {
            region,
            kms_endpoint,
            policy,
            client,
            rpc,
            registry: CredentialsRegistry::new(factory),
            secrets: self.secrets,
            allow_cross_namespace_auth_ref,
            redirect,
            fetchers: Mutex::new(HashMap::new()),
            digest_key,
        })
    }
}

fn redirect_target(r: &Redirect) -> Result<RedirectTarget, StoreError> {
    let bad = |source| StoreError::Endpoint {
        field: "redirect".into(),
        value: r.url.clone(),
        source: Box::new(source),
    };
    // Approve it like an administrator's URL first (origin only, http only to loopback).
    let endpoint = EndpointPolicy::default()
        .trust_url(&r.url)
        .and_then(|p| p.resolve(Service::Kms, &EndpointSource::Url(r.url.clone())))
        .map_err(bad)?;
    let url = endpoint.url();
    let host = url.host_str().unwrap_or_default();
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let port = url.port_or_known_default().unwrap_or(443);
    Ok(RedirectTarget {
        url: url.to_string(),
        addr: SocketAddr::new(ip, port),
        ca_pem: r.ca_pem.clone(),
    })
}

impl StoreResolver {
    /// A builder for `config`, reading credential Secrets (AccessKeys, ClientKeys) through
    /// `secrets`.
    pub fn builder(
        config: StoreResolverConfig,
        secrets: Arc<dyn SecretSource>,
    ) -> StoreResolverBuilder {
        StoreResolverBuilder {
            config,
            secrets,
            service_accounts: None,
            ambient: None,
        }
    }

    /// The credentials registry (one provider stack per store generation), e.g. for metrics.
    pub fn registry(&self) -> &CredentialsRegistry {
        &self.registry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FetcherKey, Cached>> {
        self.fetchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks that `store` works: its spec is valid, its credentials and client can be set
    /// up, and one cheap authenticated call succeeds ([`SecretFetcher::check`]). Never fails:
    /// the answer is what the store's `Ready` condition should say.
    pub async fn check(&self, store: &StoreObject) -> StoreReadiness {
        let identity = store.identity();
        if let Err(invalid) = store.validate() {
            return StoreReadiness::from_error(&identity, &StoreError::Invalid(invalid));
        }
        let provider = match store.provider().backend() {
            Some(Backend::Oos) => Provider::Oos,
            _ => Provider::Kms,
        };
        let fetcher = match self
            .fetcher(StoreSelector::Store(store), provider, None)
            .await
        {
            Ok(f) => f,
            Err(e) => return StoreReadiness::from_error(&identity, &e),
        };
        let method = if store.provider().dedicated_kms().is_some() {
            Some("client_key".to_owned())
        } else {
            self.registry
                .status(&registry_ref(&identity, provider))
                .map(|s| s.method)
        };
        StoreReadiness::from_check(&identity, method, fetcher.check().await)
    }

    /// Forgets everything cached for the store (call when it is deleted).
    pub fn forget(&self, identity: &StoreIdentity) {
        for provider in [Provider::Kms, Provider::Oos] {
            self.registry.remove(&registry_ref(identity, provider));
        }
        let source = source_key(identity);
        self.lock().retain(|k, _| k.source != source);
    }

    /// Number of cached fetchers (for metrics and tests).
    pub fn cached_fetchers(&self) -> usize {
        self.lock().len()
    }

    fn cached(
        &self,
        key: &FetcherKey,
        generation: Option<i64>,
        basis: &Basis,
    ) -> Option<Arc<Source>> {
        let entries = self.lock();
        let entry = entries.get(key)?;
        (entry.generation == generation && entry.basis == *basis).then(|| entry.fetcher.clone())
    }

    fn remember(
        &self,
        key: FetcherKey,
        generation: Option<i64>,
        basis: Basis,
        fetcher: Arc<Source>,
    ) -> Arc<Source> {
        let mut entries = self.lock();
        // A racing caller may have built the same fetcher: keep the first one.
        if let Some(e) = entries.get(&key)
            && e.generation == generation
            && e.basis == basis
        {
            return e.fetcher.clone();
        }
        entries.insert(
            key,
            Cached {
                generation,
                basis,
                fetcher: fetcher.clone(),
            },
        );
        fetcher
    }

    /// The endpoint of `service` for `override_` (an entry's `kmsEndpoint`): the override, or
    /// `--kms-endpoint` (KMS), or the region's public endpoint — each through the policy —
    /// then redirected when a redirect is configured.
    fn endpoint(&self, service: Service, override_: Option<&str>) -> Result<Endpoint, StoreError> {
        let resolve = |field: &str, source: EndpointSource, value: String| {
            self.policy
                .resolve(service, &source)
                .map_err(|source| StoreError::Endpoint {
                    field: field.to_owned(),
                    value,
                    source: Box::new(source),
                })
        };
        let configured = match (override_, service) {
            (Some(ep), _) => Some(resolve(
                "kmsEndpoint",
                EndpointSource::Url(ep.to_owned()),
                ep.to_owned(),
            )?),
            (None, Service::Kms) if self.kms_endpoint.is_some() => {
                // Set by the administrator, not a tenant: loopback (a local proxy) is fine.
                let ep = self.kms_endpoint.clone().unwrap_or_default();
                Some(
                    self.policy
                        .clone()
                        .allow_loopback(true)
                        .resolve(service, &EndpointSource::Url(ep.clone()))
                        .map_err(|source| StoreError::Endpoint {
                            field: "--kms-endpoint".into(),
                            value: ep,
                            source: Box::new(source),
                        })?,
                )
            }
            (None, _) => match &self.region {
                Some(region) => Some(resolve(
                    "--region",
                    EndpointSource::Region {
                        region: region.clone(),
                        network: Network::Public,
                    },
                    region.clone(),
                )?),
                None => None,
            },
        };
        match (&self.redirect, configured) {
            (Some(r), _) => resolve(
                "redirect",
                EndpointSource::Url(r.url.clone()),
                r.url.clone(),
            ),
            (None, Some(ep)) => Ok(ep),
            (None, None) => Err(StoreError::NoEndpoint { service }),
        }
    }

    async fn credentials(
        &self,
        identity: &StoreIdentity,
        provider: Provider,
        auth: Option<&CloudAuth>,
    ) -> Result<Arc<dyn CredentialsProvider>, StoreError> {
        self.registry
            .provider(&registry_ref(identity, provider), auth)
            .await
            .map_err(|source| StoreError::Credentials {
                store: identity.to_string(),
                source: Box::new(source),
            })
    }

    fn rpc_fetcher(
        &self,
        provider: Provider,
        endpoint_override: Option<&str>,
        credentials: Arc<dyn CredentialsProvider>,
    ) -> Result<Source, StoreError> {
        Ok(match provider {
            Provider::Kms => Source::Kms(
                KmsClient::new(
                    self.rpc.clone(),
                    self.endpoint(Service::Kms, endpoint_override)?,
                    credentials,
                )
                .map_err(|e| StoreError::Kms(Box::new(e)))?,
            ),
            Provider::Oos => Source::Oos(
                OosClient::new(
                    self.rpc.clone(),
                    self.endpoint(Service::Oos, None)?,
                    credentials,
                )
                .map_err(|e| StoreError::Oos(Box::new(e)))?,
            ),
        })
    }

    async fn store_fetcher(
        &self,
        store: &StoreObject,
        provider: Provider,
        endpoint: Option<&str>,
    ) -> Result<Arc<Source>, StoreError> {
        let identity = store.identity();
        store.check_provider(provider)?;
        let spec = store.provider();
        let key = FetcherKey {
            source: source_key(&identity),
            provider: provider.into(),
            endpoint: endpoint.map(str::to_owned),
        };
        if let Some(dedicated) = spec.dedicated_kms() {
            return self
                .instance_fetcher(&identity, dedicated, endpoint, key)
                .await;
        }
        let credentials = self
            .credentials(&identity, provider, spec.cloud_auth())
            .await?;
        let basis = Basis::Credentials(data_ptr(&credentials));
        if let Some(f) = self.cached(&key, identity.generation, &basis) {
            return Ok(f);
        }
        let fetcher = Arc::new(self.rpc_fetcher(provider, endpoint, credentials)?);
        Ok(self.remember(key, identity.generation, basis, fetcher))
    }

    async fn instance_fetcher(
        &self,
        identity: &StoreIdentity,
        dedicated: &crate::api::DedicatedKmsAuth,
        endpoint_override: Option<&str>,
        key: FetcherKey,
    ) -> Result<Arc<Source>, StoreError> {
        let scope = match &identity.namespace {
            Some(ns) => StoreScope::Namespaced { namespace: ns },
            None => StoreScope::Cluster,
        };
        let base = "spec.KMS.dedicatedKMSAuth";
        let mut read = Vec::new();
        for (leaf, r) in [
            ("clientKeyContent", &dedicated.client_key_content),
            ("password", &dedicated.password),
        ] {
            let field = format!("{base}.{leaf}");
            let namespace = reference_namespace(
                scope,
                &field,
                r.namespace.as_deref(),
                self.allow_cross_namespace_auth_ref,
            )
            .map_err(|source| StoreError::Reference {
                store: identity.to_string(),
                source: Box::new(source),
            })?;
            let value = self
                .secrets
                .secret_key(&namespace, &r.name, &r.key)
                .await
                .map_err(|source| StoreError::SecretRef {
                    store: identity.to_string(),
                    field,
                    source: Box::new(source),
                })?;
            read.push(value);
        }
        let (content, password) = (&read[0], &read[1]);
        let basis = Basis::ClientKey {
            digest: self.digest(&[content.value.expose(), password.value.expose()]),
            versions: read.iter().map(|v| v.resource_version.clone()).collect(),
        };
        if let Some(f) = self.cached(&key, identity.generation, &basis) {
            return Ok(f);
        }
        let password_text =
            SecretString::new(String::from_utf8_lossy(password.value.expose()).into_owned());
        let content = SecretBytes::new(content.value.expose().to_vec());
        // PKCS#12 decryption and RSA key parsing take milliseconds of CPU: on the blocking
        // pool, not on the async workers that serve every other object.
        let loaded =
            tokio::task::spawn_blocking(move || ClientKey::from_json(&content, &password_text))
                .await;
        let client_key = match loaded {
            Ok(Ok(key)) => key,
            Ok(Err(source)) => {
                return Err(StoreError::ClientKey {
                    store: identity.to_string(),
                    source: Box::new(source),
                });
            }
            Err(join) => return Err(client_key_task_error(identity, &join)),
        };
        let instance_err = |source| StoreError::Instance {
            store: identity.to_string(),
            source: Box::new(source),
        };
        let real = match endpoint_override {
            Some(ep) => self
                .policy
                .resolve(Service::Kms, &EndpointSource::Url(ep.to_owned()))
                .map_err(|source| StoreError::Endpoint {
                    field: "kmsEndpoint".into(),
                    value: ep.to_owned(),
                    source: Box::new(source),
                })?,
            None => self
                .policy
                .resolve(
                    Service::Kms,
                    &EndpointSource::KmsInstance {
                        instance_id: dedicated.endpoint.clone(),
                    },
                )
                .map_err(|source| StoreError::Endpoint {
                    field: format!("{base}.endpoint"),
                    value: dedicated.endpoint.clone(),
                    source: Box::new(source),
                })?,
        };
        let mut config = InstanceClientConfig::new(InstanceTrust::InsecureSkipVerify);
        config.connect_timeout = self.client.connect_timeout;
        config.request_timeout = self.client.request_timeout;
        config.retry = self.client.retry;
        let endpoint = match &self.redirect {
            None => {
                config.trust =
                    InstanceTrust::from_store(dedicated.ca.as_deref(), dedicated.ignore_ssl())
                        .map_err(instance_err)?;
                real
            }
            Some(r) => {
                // Keep the instance host name (the emulator's certificate covers
                // *.cryptoservice.kms.aliyuncs.com) and resolve it to the redirect's address.
                config.trust = match &r.ca_pem {
                    Some(pem) => InstanceTrust::pinned_pem(pem.as_bytes()).map_err(instance_err)?,
                    None => {
                        InstanceTrust::from_store(dedicated.ca.as_deref(), dedicated.ignore_ssl())
                            .map_err(instance_err)?
                    }
                };
                let host = real.url().host_str().unwrap_or_default().to_owned();
                let url = format!("https://{host}:{}/", r.addr.port());
                config.resolve = vec![(host, r.addr)];
                EndpointPolicy::default()
                    .trust_url(&url)
                    .and_then(|p| p.resolve(Service::Kms, &EndpointSource::Url(url.clone())))
                    .map_err(|source| StoreError::Endpoint {
                        field: "redirect".into(),
                        value: url.clone(),
                        source: Box::new(source),
                    })?
            }
        };
        let client =
            InstanceClient::new(endpoint, Arc::new(client_key), config).map_err(instance_err)?;
        let fetcher = Arc::new(Source::KmsInstance(client));
        Ok(self.remember(key, identity.generation, basis, fetcher))
    }

    fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.digest_key)
            .expect("HMAC accepts any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[async_trait]
impl FetcherProvider for StoreResolver {
    async fn fetcher(
        &self,
        store: StoreSelector<'_>,
        provider: Provider,
        endpoint: Option<&str>,
    ) -> Result<Arc<dyn SecretFetcher>, StoreError> {
        // kmsEndpoint is a KMS field (validation refuses it with provider oos).
        let endpoint = endpoint.filter(|_| provider == Provider::Kms);
        match store {
            StoreSelector::Store(store) => {
                let f: Arc<dyn SecretFetcher> =
                    self.store_fetcher(store, provider, endpoint).await?;
                Ok(f)
            }
            StoreSelector::Ambient(_) => {
                let credentials = self.registry.factory().ambient().clone();
                let key = FetcherKey {
                    source: SourceKey::Ambient,
                    provider: provider.into(),
                    endpoint: endpoint.map(str::to_owned),
                };
                let basis = Basis::Credentials(data_ptr(&credentials));
                if let Some(f) = self.cached(&key, None, &basis) {
                    return Ok(f);
                }
                let fetcher = Arc::new(self.rpc_fetcher(provider, endpoint, credentials)?);
                Ok(self.remember(key, None, basis, fetcher))
            }
        }
    }
}

fn data_ptr(p: &Arc<dyn CredentialsProvider>) -> usize {
    Arc::as_ptr(p).cast::<()>() as usize
}

fn source_key(identity: &StoreIdentity) -> SourceKey {
    SourceKey::Store {
        kind: identity.kind,
        namespace: identity.namespace.clone(),
        name: identity.name.clone(),
        uid: identity.uid.clone(),
    }
}

fn registry_ref(identity: &StoreIdentity, provider: Provider) -> StoreRef {
    let base = match identity.kind {
        StoreKind::SecretStore => StoreRef::secret_store(
            identity.namespace.as_deref().unwrap_or_default(),
            &identity.name,
        ),
        StoreKind::ClusterSecretStore => StoreRef::cluster_secret_store(&identity.name),
    };
    base.with_identity(identity.uid.as_deref(), identity.generation)
        .with_auth_path(match provider {
            Provider::Kms => "spec.KMS.KMSAuth",
            Provider::Oos => "spec.OOS.OOSAuth",
        })
}

/// A ClientKey loading task that did not finish (panicked, or cancelled at shutdown). Only
/// whether it panicked is kept: a panic message could quote the key material.
fn client_key_task_error(identity: &StoreIdentity, join: &tokio::task::JoinError) -> StoreError {
    StoreError::ClientKeyTask {
        store: identity.to_string(),
        panicked: join.is_panic(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::StoreReadiness;

    #[tokio::test]
    async fn a_client_key_task_that_does_not_finish_is_a_clear_error_without_its_panic_text() {
        let identity = StoreIdentity {
            kind: StoreKind::SecretStore,
            namespace: Some("team-a".into()),
            name: "instance".into(),
            uid: None,
            generation: Some(3),
        };
        // A panic whose message quotes what was being parsed.
        let panicked = tokio::task::spawn_blocking(|| -> u8 {
            std::panic::panic_any("PrivateKeyData MIIKmarker-p12".to_owned())
        })
        .await
        .unwrap_err();
        let err = client_key_task_error(&identity, &panicked);
        assert_eq!(err.metric_label(), "client_key_task");
        let status = StoreReadiness::from_error(&identity, &err);
        assert_eq!(status.reason, "ClientSetupFailed");
        assert_eq!(
            status.message,
            "SecretStore team-a/instance: spec.KMS.dedicatedKMSAuth.clientKeyContent could not be loaded: the loading task panicked (a kmsync bug)"
        );
        assert!(!format!("{err:?}").contains("marker-p12"));

        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        let cancelled = task.await.unwrap_err();
        assert_eq!(
            client_key_task_error(&identity, &cancelled).to_string(),
            "spec.KMS.dedicatedKMSAuth.clientKeyContent could not be loaded: the loading task was cancelled"
        );
    }
}
