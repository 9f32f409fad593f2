//! From a SecretStore / ClusterSecretStore to a working secret source: endpoint, credentials,
//! client, readiness. Used by `kmsync render` and by the controller alike.
//!
//! ```text
//!  StoreObject (SecretStore | ClusterSecretStore)        controller flags (StoreResolverConfig):
//!        │   + entry kmsEndpoint override                 region, --kms-endpoint, allowed
//!        ▼                                                endpoints, worker role, cross-ns refs
//!  StoreResolver::fetcher ──┬─ spec.KMS.KMSAuth / KMS: {} ─▶ CredentialsRegistry ─▶ Source::Kms
//!   (cached per store       ├─ spec.KMS.dedicatedKMSAuth ─▶ ClientKey + ca (SecretSource) ─▶ Source::KmsInstance
//!    generation)            └─ spec.OOS.OOSAuth ─────────▶ CredentialsRegistry ─▶ Source::Oos
//!                                     │
//!                                     ▼
//!                         Arc<dyn SecretFetcher>   (fetch / check)
//!
//!  StoreResolver::check(store) ─▶ StoreReadiness  (what the store's Ready condition shows)
//! ```
//!
//! Nothing here talks to Kubernetes: credential Secrets are read through the caller's
//! [`SecretSource`] (a reflector in the controller, manifests in `render`), ServiceAccount
//! tokens through [`ServiceAccountTokens`]. HTTP clients are built here but no call is made
//! until a fetcher is used.
//!
//! Endpoints, in order of precedence: an entry's `kmsEndpoint` (user-controlled, so it must pass
//! the [`EndpointPolicy`]: Alibaba Cloud hosts, or `--allowed-endpoints`; loopback only where
//! the policy allows it, i.e. not in the controller), the controller's `--kms-endpoint`
//! (administrator-set: loopback allowed), then the public endpoint of `--region`. A
//! `dedicatedKMSAuth` store talks to `<instance id>.cryptoservice.kms.aliyuncs.com`; an OOS
//! store to `oos.<region>.aliyuncs.com`.
//!
//! A [`Redirect`] sends every call (KMS, KMS instance, OOS, STS) to one origin instead — the
//! in-process emulator of `kmsync render --emulator` and of tests — after the normal endpoint
//! policy has been applied to what the store and entries ask for, so an endpoint that would be
//! refused in production is refused there too.

mod resolver;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::alibaba::{ClientConfig, EndpointError, EndpointPolicy, RpcError, Service};
use crate::api::{
    Backend, ClusterSecretStore, Condition, ConditionStatus, Invalid, Provider, SecretStore,
    StoreKind, StoreProvider,
};
use crate::credentials::{BuildError, FactoryConfig, ReferenceError, SourceError};
use crate::dkms::{ClientKeyError, InstanceError, TlsWarning};
use crate::fetch::{FetchError, ProbeAnswer, SecretFetcher};
use crate::kms::KmsError;
use crate::oos::OosError;

pub use resolver::StoreResolver;

/// A store object as read from the cluster or from manifests.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreObject {
    /// A namespaced SecretStore.
    SecretStore(Arc<SecretStore>),
    /// A cluster-scoped ClusterSecretStore.
    ClusterSecretStore(Arc<ClusterSecretStore>),
}

impl StoreObject {
    /// Kind, namespace, name, uid and generation.
    pub fn identity(&self) -> StoreIdentity {
        let (kind, meta) = match self {
            Self::SecretStore(s) => (StoreKind::SecretStore, &s.metadata),
            Self::ClusterSecretStore(s) => (StoreKind::ClusterSecretStore, &s.metadata),
        };
        StoreIdentity {
            kind,
            namespace: match kind {
                StoreKind::SecretStore => Some(meta.namespace.clone().unwrap_or_default()),
                StoreKind::ClusterSecretStore => None,
            },
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            generation: meta.generation,
        }
    }

    /// The provider part of the spec (`KMS` / `OOS`).
    pub fn provider(&self) -> StoreProvider<'_> {
        match self {
            Self::SecretStore(s) => s.spec.provider(),
            Self::ClusterSecretStore(s) => s.spec.provider(),
        }
    }

    /// The ClusterSecretStore, if this is one.
    pub fn as_cluster(&self) -> Option<&ClusterSecretStore> {
        match self {
            Self::ClusterSecretStore(s) => Some(s),
            Self::SecretStore(_) => None,
        }
    }

    /// Checks the store's spec without I/O (see [`crate::api::Validate`]).
    ///
    /// # Errors
    /// [`Invalid`] with every problem found.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            Self::SecretStore(s) => crate::api::validate_secret_store(s),
            Self::ClusterSecretStore(s) => crate::api::validate_cluster_secret_store(s),
        }
    }
}

impl StoreObject {
    /// Checks, without I/O, that this store can serve an ExternalSecret of `provider`: its
    /// spec is valid and it reads from that service (`spec.KMS` for `kms`, `spec.OOS` for
    /// `oos`).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] or [`StoreError::ProviderMismatch`].
    pub fn check_provider(&self, provider: Provider) -> Result<(), StoreError> {
        self.validate().map_err(StoreError::Invalid)?;
        let backend = self.provider().backend();
        let wanted = match provider {
            Provider::Kms => Backend::Kms,
            Provider::Oos => Backend::Oos,
        };
        if backend == Some(wanted) {
            return Ok(());
        }
        Err(StoreError::ProviderMismatch {
            store: self.identity().to_string(),
            backend: match backend {
                Some(Backend::Oos) => "OOS",
                _ => "KMS",
            },
            provider: match provider {
                Provider::Kms => "kms",
                Provider::Oos => "oos",
            },
        })
    }
}

impl From<SecretStore> for StoreObject {
    fn from(s: SecretStore) -> Self {
        Self::SecretStore(Arc::new(s))
    }
}

impl From<ClusterSecretStore> for StoreObject {
    fn from(s: ClusterSecretStore) -> Self {
        Self::ClusterSecretStore(Arc::new(s))
    }
}

/// Which store, exactly: kind, namespace (SecretStores only), name, and the uid and generation
/// that make a re-created or edited store a different one (for caches).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreIdentity {
    /// `SecretStore` or `ClusterSecretStore`.
    pub kind: StoreKind,
    /// Namespace of a SecretStore; `None` for a ClusterSecretStore.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` (absent in manifests).
    pub uid: Option<String>,
    /// `metadata.generation` (absent in manifests).
    pub generation: Option<i64>,
}

impl fmt::Display for StoreIdentity {
    /// `SecretStore team-a/kms` or `ClusterSecretStore shared`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.namespace) {
            (StoreKind::SecretStore, Some(ns)) => write!(f, "SecretStore {ns}/{}", self.name),
            (StoreKind::SecretStore, None) => write!(f, "SecretStore {}", self.name),
            (StoreKind::ClusterSecretStore, _) => write!(f, "ClusterSecretStore {}", self.name),
        }
    }
}

/// Where a fetcher's credentials come from: a store, or — for entries without
/// `secretStoreRef` — the controller's own ("ambient") credentials.
#[derive(Clone, Copy, Debug)]
pub enum StoreSelector<'a> {
    /// A SecretStore or ClusterSecretStore.
    Store(&'a StoreObject),
    /// The controller's own credentials (environment, RRSA, profiles; the ECS role only with
    /// `--enable-worker-role`), for KMS or OOS.
    Ambient(Provider),
}

/// Sends every call to one origin instead of the endpoints stores and entries name (which
/// are still checked against the endpoint policy first). For the in-process emulator:
/// `Redirect::new(emu.kms_url().as_str(), emu.ca_pem())`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The origin, e.g. `https://127.0.0.1:41234/`. Plain `http` only to loopback.
    pub url: String,
    /// PEM of the only CA to trust for it (`None`: plain http, or the usual roots).
    pub ca_pem: Option<String>,
}

impl Redirect {
    /// Everything to `url`, trusting only `ca_pem` when given.
    pub fn new(url: impl Into<String>, ca_pem: Option<&str>) -> Self {
        Self {
            url: url.into(),
            ca_pem: ca_pem.map(str::to_owned),
        }
    }
}

/// Controller-wide settings of the [`StoreResolver`] (the flags of `docs/operations.md`).
#[derive(Clone, Debug, Default)]
pub struct StoreResolverConfig {
    /// `--region`: region of the default KMS, OOS (and STS) endpoints, e.g. `cn-hangzhou`.
    pub region: Option<String>,
    /// `--kms-endpoint`: default KMS endpoint (host or `https://` URL), checked against
    /// `policy` like any other.
    pub kms_endpoint: Option<String>,
    /// The SSRF policy every endpoint must pass: Alibaba Cloud hosts, the URLs of
    /// `--allowed-endpoints` ([`EndpointPolicy::trust_url`]), and loopback when it allows it
    /// (the controller does not; `--kms-endpoint`, set by the administrator, may always be
    /// loopback).
    pub policy: EndpointPolicy,
    /// HTTP settings of the KMS, OOS and STS clients (timeouts, retries, signature, TLS
    /// roots). KMS instance clients use its timeouts and retries.
    pub client: ClientConfig,
    /// Credentials settings: STS endpoint, refresh timing, `--enable-worker-role`,
    /// `--enable-cross-namespace-auth-ref` (also applied to `dedicatedKMSAuth` references).
    pub credentials: FactoryConfig,
    /// Send every call to one origin (emulator); see [`Redirect`].
    pub redirect: Option<Redirect>,
}

/// Why a store could not be turned into a working fetcher. Messages name the store, the field
/// and the objects involved, never a value; they are meant for the `Ready` condition of the
/// store and of the ExternalSecrets that use it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's spec is invalid (every problem, joined with `; `).
    #[error("{}", one_line(.0))]
    Invalid(Invalid),
    /// The store reads from another service than the ExternalSecret's `provider`.
    #[error("{store} reads from {backend}, but the ExternalSecret's provider is {provider}")]
    ProviderMismatch {
        /// The store (`SecretStore ns/name`, `ClusterSecretStore name`).
        store: String,
        /// `KMS` or `OOS` (the store's `spec` key).
        backend: &'static str,
        /// `kms` or `oos`.
        provider: &'static str,
    },
    /// Credentials could not be set up (missing Secret or key, cross-namespace reference,
    /// incomplete auth, malformed ARN, ...).
    #[error("credentials could not be set up")]
    Credentials {
        /// The store (`ambient credentials` for entries without a store).
        store: String,
        /// Why (names the field).
        #[source]
        source: Box<BuildError>,
    },
    /// A `dedicatedKMSAuth` reference breaks the cross-namespace rules.
    #[error("{source}")]
    Reference {
        /// The store (`SecretStore ns/name`, `ClusterSecretStore name`).
        store: String,
        /// Which rule.
        #[source]
        source: Box<ReferenceError>,
    },
    /// A `dedicatedKMSAuth` Secret or key could not be read.
    #[error("{field}: {source}")]
    SecretRef {
        /// The store (`SecretStore ns/name`, `ClusterSecretStore name`).
        store: String,
        /// `spec.KMS.dedicatedKMSAuth.clientKeyContent` or `...password`.
        field: String,
        /// Why.
        #[source]
        source: Box<SourceError>,
    },
    /// The ClientKey could not be loaded (wrong password, not a ClientKey, ...).
    #[error("spec.KMS.dedicatedKMSAuth.clientKeyContent could not be loaded")]
    ClientKey {
        /// The store (`SecretStore ns/name`, `ClusterSecretStore name`).
        store: String,
        /// Why.
        #[source]
        source: Box<ClientKeyError>,
    },
    /// Loading the ClientKey (run off the async workers, see [`ClientKey::from_json`]) did not
    /// finish: the blocking task panicked or was cancelled (shutdown). The panic's message is
    /// not kept: it could quote the key material being parsed.
    ///
    /// [`ClientKey::from_json`]: crate::dkms::ClientKey::from_json
    #[error(
        "spec.KMS.dedicatedKMSAuth.clientKeyContent could not be loaded: the loading task {}",
        if *.panicked { "panicked (a kmsync bug)" } else { "was cancelled" }
    )]
    ClientKeyTask {
        /// The store (`SecretStore ns/name`, `ClusterSecretStore name`).
        store: String,
        /// True when the task panicked; false when it was cancelled.
        panicked: bool,
    },
    /// No endpoint can be derived: no `--region`, no `--kms-endpoint`, no override.
    #[error(
        "no {service} endpoint is configured: start kmsync with --region (or --kms-endpoint for KMS), or set kmsEndpoint on the entry"
    )]
    NoEndpoint {
        /// The service.
        service: Service,
    },
    /// An endpoint was refused by the endpoint policy (or is malformed). The message is the
    /// field and the policy's reason, e.g. `kmsEndpoint: endpoint "http://127.0.0.1:9" is not
    /// an Alibaba Cloud KMS endpoint (loopback addresses are refused); an administrator can
    /// allow it with --allowed-endpoints`.
    #[error("{field}: {source}")]
    Endpoint {
        /// Where it came from: `kmsEndpoint`, `--kms-endpoint`, `--region`,
        /// `spec.KMS.dedicatedKMSAuth.endpoint`, `redirect`.
        field: String,
        /// The endpoint as written.
        value: String,
        /// The policy's reason.
        #[source]
        source: Box<EndpointError>,
    },
    /// The HTTP client could not be built (bad CA bundle, TLS setup).
    #[error("the HTTP client could not be built")]
    Client(#[source] Box<RpcError>),
    /// The KMS instance client could not be built (`ca` missing or not base64 PEM, TLS).
    #[error("the KMS instance client could not be built")]
    Instance {
        /// The store (`SecretStore ns/name`, `ClusterSecretStore name`).
        store: String,
        /// Why.
        #[source]
        source: Box<InstanceError>,
    },
    /// A KMS client could not be made for the endpoint.
    #[error("the KMS client could not be built")]
    Kms(#[source] Box<KmsError>),
    /// An OOS client could not be made for the endpoint.
    #[error("the OOS client could not be built")]
    Oos(#[source] Box<OosError>),
}

impl StoreError {
    /// Bounded label for metrics and condition reasons: the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::ProviderMismatch { .. } => "provider_mismatch",
            Self::Credentials { .. } => "credentials",
            Self::Reference { .. } => "reference",
            Self::SecretRef { .. } => "secret_ref",
            Self::ClientKey { .. } => "client_key",
            Self::ClientKeyTask { .. } => "client_key_task",
            Self::NoEndpoint { .. } => "no_endpoint",
            Self::Endpoint { .. } => "endpoint",
            Self::Client(_) => "client",
            Self::Instance { .. } => "instance",
            Self::Kms(_) => "kms",
            Self::Oos(_) => "oos",
        }
    }

    /// True when the store's own spec is at fault (invalid or of the wrong provider), as
    /// opposed to something it references or the environment.
    pub fn is_spec_error(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::ProviderMismatch { .. })
    }
}

fn one_line(invalid: &Invalid) -> String {
    invalid
        .problems
        .iter()
        .map(|p| format!("{} {}: {p}", invalid.kind, invalid.object))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Gives fetchers for stores: the interface the sync pipeline's environment needs, implemented
/// by [`StoreResolver`] (and by fakes in tests).
#[async_trait]
pub trait FetcherProvider: Send + Sync {
    /// A fetcher reading through `store` (or the ambient credentials for `provider`), calling
    /// `endpoint` when given (an entry's `kmsEndpoint`; KMS only) instead of the default.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn fetcher(
        &self,
        store: StoreSelector<'_>,
        provider: Provider,
        endpoint: Option<&str>,
    ) -> Result<Arc<dyn SecretFetcher>, StoreError>;
}

/// The result of a store readiness check: what the store's `Ready` condition should say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreReadiness {
    /// Whether the store can be used.
    pub ready: bool,
    /// CamelCase condition reason: `Valid` (ready), `InvalidSpec`, `CredentialsUnavailable`,
    /// `EndpointRefused`, `ClientKeyInvalid`, `AuthenticationFailed`, `Unreachable`.
    pub reason: &'static str,
    /// One line for people: what was checked, or the real (sanitised) error chain.
    pub message: String,
    /// Conditions to surface next to `Ready=True` (e.g. `InsecureSkipTLSVerify`).
    pub warnings: Vec<TlsWarning>,
    /// The credential method in use (`access_key`, `rrsa_oidc+remote_role`, `client_key`,
    /// ...), when known.
    pub method: Option<String>,
    /// The store's `metadata.generation` that was checked.
    pub observed_generation: Option<i64>,
}

impl StoreReadiness {
    /// The `Ready` condition (type `Ready`, status `True`/`False`, this reason and message).
    pub fn condition(&self, now: Time) -> Condition {
        Condition::ready(
            if self.ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            self.reason,
            self.message.clone(),
            self.observed_generation,
            now,
        )
    }

    pub(crate) fn from_check(
        identity: &StoreIdentity,
        method: Option<String>,
        result: Result<crate::fetch::StoreCheck, FetchError>,
    ) -> Self {
        match result {
            Ok(check) => Self {
                ready: true,
                reason: "Valid",
                message: format!(
                    "{identity}: authenticated {} call succeeded ({})",
                    check.source_kind,
                    match check.answer {
                        ProbeAnswer::NotFound => "the probe secret does not exist, as expected",
                        ProbeAnswer::NoPermission =>
                            "no permission for the probe secret, which is fine",
                        ProbeAnswer::Found => "the probe secret exists",
                    }
                ),
                warnings: check.warnings,
                method,
                observed_generation: identity.generation,
            },
            Err(e) => Self {
                ready: false,
                reason: if e.is_retryable() {
                    "Unreachable"
                } else {
                    "AuthenticationFailed"
                },
                message: format!(
                    "{identity}: readiness check failed: {}",
                    crate::credentials::error_chain(&e)
                ),
                warnings: Vec::new(),
                method,
                observed_generation: identity.generation,
            },
        }
    }

    pub(crate) fn from_error(identity: &StoreIdentity, err: &StoreError) -> Self {
        let reason = match err {
            StoreError::Invalid(_) | StoreError::ProviderMismatch { .. } => "InvalidSpec",
            StoreError::Credentials { .. }
            | StoreError::Reference { .. }
            | StoreError::SecretRef { .. } => "CredentialsUnavailable",
            StoreError::ClientKey { .. } => "ClientKeyInvalid",
            StoreError::NoEndpoint { .. } | StoreError::Endpoint { .. } => "EndpointRefused",
            StoreError::Client(_)
            | StoreError::Instance { .. }
            | StoreError::ClientKeyTask { .. }
            | StoreError::Kms(_)
            | StoreError::Oos(_) => "ClientSetupFailed",
        };
        let chain = crate::credentials::error_chain(err);
        Self {
            ready: false,
            reason,
            message: if chain.starts_with(&identity.to_string()) {
                chain
            } else {
                format!("{identity}: {chain}")
            },
            warnings: Vec::new(),
            method: None,
            observed_generation: identity.generation,
        }
    }
}
