//! From a store's `CloudAuth` to a provider stack.
//!
//! [`CredentialsFactory::resolve`] applies the cross-namespace rules, picks the method in
//! ack-secret-manager's order (`shared/docs/ack-compat.md`, "Credential order") and reads what
//! the method needs from Kubernetes; [`CredentialsFactory::build`] assembles the providers:
//!
//! | `CloudAuth` | Stack (bottom → top) |
//! |---|---|
//! | `serviceAccountRef` (+ `ramRoleARN`?, `oidcProviderARN`?) | TokenRequest token → `AssumeRoleWithOIDC` |
//! | `oidcProviderARN` + `ramRoleARN` | token file → `AssumeRoleWithOIDC` |
//! | `accessKey` + `accessKeySecret` + `ramRoleARN` | AccessKey → `AssumeRole` |
//! | `accessKey` + `accessKeySecret` | AccessKey |
//! | nothing | the default chain (env, OIDC env, profiles, ECS role when enabled) |
//! | … + `remoteRamRoleARN` | … → `AssumeRole` into the remote role |
//!
//! Incomplete or contradictory settings are [`BuildError`]s naming the field.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::arn::{ArnError, OidcProviderArn, RoleArn, is_valid_session_name};
use super::assume_role::AssumeRole;
use super::chain::{DefaultChain, DefaultChainConfig};
use super::ecs::EcsMetadataConfig;
use super::oidc::{DEFAULT_TOKEN_FILES, OidcRole, OidcToken};
use super::references::{ReferenceError, StoreScope, reference_namespace};
use super::refresh::{RefreshPolicy, Refreshing};
use super::source::{ROLE_ARN_ANNOTATION, SecretSource, ServiceAccountTokens, SourceError};
use super::sts::{AssumeRoleRequest, StsClient, StsEndpointConfig};
use super::{Credentials, CredentialsProvider, StaticCredentials};
use crate::alibaba::{EndpointError, EndpointPolicy, RpcClient};
use crate::api::{CloudAuth, MAX_ROLE_SESSION_EXPIRATION, MIN_ROLE_SESSION_EXPIRATION, non_empty};
use crate::value::SecretString;

/// Why a store's credentials could not be set up. Messages name the store field and the
/// objects involved, never a value; they are meant for the store's `Ready` condition.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A reference breaks the cross-namespace rules.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A referenced Secret, key or ServiceAccount could not be read.
    #[error("{field}: {source}")]
    Source {
        /// The field holding the reference.
        field: String,
        /// Why.
        #[source]
        source: SourceError,
    },
    /// A field needs another one that is not set.
    #[error("{field} is set but {requires} is not")]
    Incomplete {
        /// The field that is set.
        field: String,
        /// What it needs.
        requires: &'static str,
    },
    /// Two fields disagree.
    #[error("{field} conflicts with {other}: {detail}")]
    Contradictory {
        /// One field.
        field: String,
        /// The other.
        other: String,
        /// Why.
        detail: &'static str,
    },
    /// A malformed ARN.
    #[error("{field}: {source}")]
    Arn {
        /// The field (or `ServiceAccount ns/name annotation ack.alibabacloud.com/role-arn`).
        field: String,
        /// Why.
        #[source]
        source: ArnError,
    },
    /// A value out of range or of the wrong form (session names, expirations, AccessKeys).
    #[error("{field} is invalid: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// `serviceAccountRef` names a ServiceAccount without the role annotation (and no
    /// `ramRoleARN` is set).
    #[error(
        "ServiceAccount {namespace}/{name} has no annotation ack.alibabacloud.com/role-arn (annotate it with the RAM role to assume, or set ramRoleARN)"
    )]
    MissingRoleAnnotation {
        /// Namespace.
        namespace: String,
        /// ServiceAccount name.
        name: String,
    },
    /// `serviceAccountRef` without any OIDC provider ARN (neither the store's
    /// `oidcProviderARN` nor the controller's default).
    #[error(
        "{field} needs an OIDC provider: set oidcProviderARN on the store, or start the controller with --rrsa-oidc-provider-arn"
    )]
    MissingOidcProvider {
        /// The `serviceAccountRef` field.
        field: String,
    },
    /// `serviceAccountRef` while this process has no TokenRequest access (e.g. `render`).
    #[error("{field}: ServiceAccount tokens are not available here")]
    ServiceAccountsUnavailable {
        /// The `serviceAccountRef` field.
        field: String,
    },
    /// The STS endpoint is not allowed by the endpoint policy.
    #[error("the STS endpoint is not usable")]
    StsEndpoint(#[source] EndpointError),
    /// `oidcTokenFilePath` names a file the administrator did not allow
    /// ([`FactoryConfig::allowed_token_files`]): the store could otherwise make the controller
    /// read any file it can read (its own Kubernetes ServiceAccount token, say) and present it
    /// to STS for a role of the store's choosing.
    #[error(
        "{field} is {path:?}, which is not an allowed OIDC token file (allowed: {}); an administrator can allow it with --allowed-oidc-token-paths",
        display_paths(allowed)
    )]
    TokenFileNotAllowed {
        /// The field, e.g. `spec.KMS.KMSAuth.oidcTokenFilePath`.
        field: String,
        /// The path as written.
        path: PathBuf,
        /// What is allowed.
        allowed: Vec<PathBuf>,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl BuildError {
    /// Bounded label for metrics: the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Reference(_) => "reference",
            Self::Source { .. } => "source",
            Self::Incomplete { .. } => "incomplete",
            Self::Contradictory { .. } => "contradictory",
            Self::Arn { .. } => "arn",
            Self::Invalid { .. } => "invalid",
            Self::MissingRoleAnnotation { .. } => "missing_role_annotation",
            Self::MissingOidcProvider { .. } => "missing_oidc_provider",
            Self::ServiceAccountsUnavailable { .. } => "service_accounts_unavailable",
            Self::StsEndpoint(_) => "sts_endpoint",
            Self::TokenFileNotAllowed { .. } => "token_file_not_allowed",
        }
    }
}

/// The kind of store holding a `CloudAuth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// A namespaced `SecretStore`.
    SecretStore,
    /// A cluster-scoped `ClusterSecretStore`.
    ClusterSecretStore,
}

/// Which store a `CloudAuth` belongs to (identity and generation), and which field path it is
/// at (`spec.KMS.KMSAuth` or `spec.OOS.OOSAuth`, for messages).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreRef {
    /// SecretStore or ClusterSecretStore.
    pub kind: StoreKind,
    /// Namespace (SecretStores only).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `metadata.uid` (a deleted and re-created store is a different store).
    pub uid: Option<String>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Field path of the auth block, e.g. `spec.KMS.KMSAuth`.
    pub auth_path: String,
}

impl StoreRef {
    /// A SecretStore `namespace/name` with its KMS auth at `spec.KMS.KMSAuth`.
    pub fn secret_store(namespace: &str, name: &str) -> Self {
        Self {
            kind: StoreKind::SecretStore,
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
            uid: None,
            generation: None,
            auth_path: "spec.KMS.KMSAuth".to_owned(),
        }
    }

    /// A ClusterSecretStore `name` with its KMS auth at `spec.KMS.KMSAuth`.
    pub fn cluster_secret_store(name: &str) -> Self {
        Self {
            kind: StoreKind::ClusterSecretStore,
            namespace: None,
            name: name.to_owned(),
            uid: None,
            generation: None,
            auth_path: "spec.KMS.KMSAuth".to_owned(),
        }
    }

    /// Sets uid and generation.
    pub fn with_identity(mut self, uid: Option<&str>, generation: Option<i64>) -> Self {
        self.uid = uid.map(str::to_owned);
        self.generation = generation;
        self
    }

    /// Sets the auth block's field path (e.g. `spec.OOS.OOSAuth`).
    pub fn with_auth_path(mut self, path: &str) -> Self {
        path.clone_into(&mut self.auth_path);
        self
    }

    /// The scope for the cross-namespace rules.
    pub fn scope(&self) -> StoreScope<'_> {
        match (self.kind, &self.namespace) {
            (StoreKind::SecretStore, Some(ns)) => StoreScope::Namespaced { namespace: ns },
            // A SecretStore without namespace cannot exist; treat it as strictly as possible.
            (StoreKind::SecretStore, None) => StoreScope::Namespaced { namespace: "" },
            (StoreKind::ClusterSecretStore, _) => StoreScope::Cluster,
        }
    }
}

impl fmt::Display for StoreRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.namespace) {
            (StoreKind::SecretStore, Some(ns)) => write!(f, "SecretStore {ns}/{}", self.name),
            (StoreKind::SecretStore, None) => write!(f, "SecretStore {}", self.name),
            (StoreKind::ClusterSecretStore, _) => write!(f, "ClusterSecretStore {}", self.name),
        }
    }
}

/// Controller-wide settings (flags).
#[derive(Clone, Debug)]
pub struct FactoryConfig {
    /// Where STS is (flags, then `ALIBABA_CLOUD_STS_REGION` / `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`).
    pub sts: StsEndpointConfig,
    /// Refresh and backoff timing of every temporary-credentials provider.
    pub refresh: RefreshPolicy,
    /// `--enable-worker-role`: the default chain may use the ECS instance role.
    pub enable_worker_role: bool,
    /// Metadata server settings (base URL configurable for tests).
    pub metadata: EcsMetadataConfig,
    /// `--enable-cross-namespace-auth-ref`.
    pub allow_cross_namespace_auth_ref: bool,
    /// OIDC provider for `serviceAccountRef` stores without `oidcProviderARN`
    /// (`--rrsa-oidc-provider-arn`, e.g. `acs:ram::<account>:oidc-provider/ack-rrsa-<cluster-id>`).
    pub default_oidc_provider_arn: Option<String>,
    /// Token files for `oidcProviderARN` stores without `oidcTokenFilePath`, first existing wins
    /// (default: `ALIBABA_CLOUD_OIDC_TOKEN_FILE` if set, then [`DEFAULT_TOKEN_FILES`]).
    pub default_token_files: Vec<PathBuf>,
    /// `--allowed-oidc-token-paths`: the files a store's `oidcTokenFilePath` may name besides
    /// the default token files (which a store reads anyway by leaving the field empty), for
    /// SecretStores and ClusterSecretStores alike. Compared as paths, component by component
    /// (`/a//b/` is `/a/b`; `..` is not resolved, so `/a/../b` is not `/b`). Anything else is
    /// [`BuildError::TokenFileNotAllowed`]. `None`: any path (local tools such as `render`,
    /// whose user writes every input).
    pub allowed_token_files: Option<Vec<PathBuf>>,
}

impl Default for FactoryConfig {
    fn default() -> Self {
        Self {
            sts: StsEndpointConfig::default(),
            refresh: RefreshPolicy::default(),
            enable_worker_role: false,
            metadata: EcsMetadataConfig::default(),
            allow_cross_namespace_auth_ref: false,
            default_oidc_provider_arn: None,
            default_token_files: DEFAULT_TOKEN_FILES.iter().map(PathBuf::from).collect(),
            allowed_token_files: None,
        }
    }
}

/// What providers need to call STS and the metadata server.
#[derive(Clone, Debug)]
pub struct ProviderContext {
    /// The signed-RPC client.
    pub rpc: RpcClient,
    /// The endpoint policy STS endpoints must pass.
    pub policy: EndpointPolicy,
    /// The STS endpoint settings.
    pub sts: StsEndpointConfig,
    /// Refresh timing.
    pub refresh: RefreshPolicy,
    /// Metadata server settings.
    pub metadata: EcsMetadataConfig,
}

impl ProviderContext {
    /// An STS client for `overrides` (a profile's own region / VPC setting) on top of the
    /// context's settings. An explicit URL in the context wins over everything.
    ///
    /// # Errors
    /// [`EndpointError`] when the policy refuses the endpoint.
    pub fn sts_client(&self, overrides: &StsEndpointConfig) -> Result<StsClient, EndpointError> {
        let config = if self.sts.url.is_some() {
            self.sts.clone()
        } else {
            overrides.clone().or(&self.sts)
        };
        Ok(StsClient::new(
            self.rpc.clone(),
            config.resolve(&self.policy)?,
        ))
    }
}

/// One assumed role in a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleHop {
    /// Role ARN.
    pub role_arn: RoleArn,
    /// Session name.
    pub session_name: String,
    /// DurationSeconds.
    pub duration_seconds: u64,
}

/// The bottom of a provider stack. `Debug` masks the AccessKeyId and hides the secret.
#[derive(Clone)]
pub enum BasePlan {
    /// The controller's default chain.
    Ambient,
    /// An AccessKey read from Secrets (`Debug` hides the secret), optionally assumed into a role.
    AccessKey {
        /// AccessKeyId.
        id: String,
        /// AccessKeySecret.
        secret: SecretString,
        /// `ramRoleARN`, when set.
        role: Option<RoleHop>,
    },
    /// RRSA with a token file.
    OidcFile {
        /// OIDC provider ARN.
        provider_arn: OidcProviderArn,
        /// Token files, first existing wins.
        token_files: Vec<PathBuf>,
        /// The role.
        role: RoleHop,
    },
    /// RRSA with a ServiceAccount's token.
    ServiceAccount {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Audiences.
        audiences: Vec<String>,
        /// OIDC provider ARN.
        provider_arn: OidcProviderArn,
        /// The role.
        role: RoleHop,
    },
}

impl fmt::Debug for BasePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ambient => f.write_str("Ambient"),
            Self::AccessKey { id, secret, role } => f
                .debug_struct("AccessKey")
                .field("id", &super::mask_id(id))
                .field("secret", secret)
                .field("role", role)
                .finish(),
            Self::OidcFile {
                provider_arn,
                token_files,
                role,
            } => f
                .debug_struct("OidcFile")
                .field("provider_arn", provider_arn)
                .field("token_files", token_files)
                .field("role", role)
                .finish(),
            Self::ServiceAccount {
                namespace,
                name,
                audiences,
                provider_arn,
                role,
            } => f
                .debug_struct("ServiceAccount")
                .field("namespace", namespace)
                .field("name", name)
                .field("audiences", audiences)
                .field("provider_arn", provider_arn)
                .field("role", role)
                .finish(),
        }
    }
}

/// One object a plan was resolved from, with its resourceVersion.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectVersion {
    /// `Secret` or `ServiceAccount`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.resourceVersion` (`None` when the source has none, e.g. files).
    pub resource_version: Option<String>,
}

/// A resolved plan: everything needed to build the provider stack, plus the resourceVersions
/// of the objects read (the registry rebuilds when they change). `Debug` hides secrets.
#[derive(Clone, Debug)]
pub struct ResolvedAuth {
    /// The bottom of the stack.
    pub base: BasePlan,
    /// `remoteRamRoleARN`, when set.
    pub remote: Option<RoleHop>,
    /// Objects read, sorted.
    pub fingerprint: Vec<ObjectVersion>,
    /// With `base == AccessKey`: a digest of the AccessKey pair, so that a Secret source
    /// without resourceVersions still notices a rotated key. Keyed per process; never shown.
    pub(crate) access_key_digest: Option<[u8; 32]>,
}

impl ResolvedAuth {
    /// The method, in ack's terms: `rrsa_service_account`, `rrsa_oidc`,
    /// `access_key_assume_role`, `access_key`, `ambient`; with `+remote_role` when a remote role
    /// is assumed on top.
    pub fn method(&self) -> String {
        let base = match &self.base {
            BasePlan::ServiceAccount { .. } => "rrsa_service_account",
            BasePlan::OidcFile { .. } => "rrsa_oidc",
            BasePlan::AccessKey { role: Some(_), .. } => "access_key_assume_role",
            BasePlan::AccessKey { role: None, .. } => "access_key",
            BasePlan::Ambient => "ambient",
        };
        match self.remote {
            Some(_) => format!("{base}+remote_role"),
            None => base.to_owned(),
        }
    }
}

/// Builds provider stacks for stores. Cheap to clone.
#[derive(Clone)]
pub struct CredentialsFactory {
    ctx: ProviderContext,
    config: FactoryConfig,
    secrets: Arc<dyn SecretSource>,
    service_accounts: Option<Arc<dyn ServiceAccountTokens>>,
    ambient: Arc<dyn CredentialsProvider>,
    digest_key: [u8; 32],
}

impl fmt::Debug for CredentialsFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsFactory")
            .field("config", &self.config)
            .field("ambient", &self.ambient)
            .field("service_accounts", &self.service_accounts.is_some())
            .finish_non_exhaustive()
    }
}

impl CredentialsFactory {
    /// A factory reading Secrets from `secrets`. The ambient provider (for stores without
    /// credentials) is the default chain built from the process environment and
    /// `config.enable_worker_role`; replace it with [`with_ambient`](Self::with_ambient).
    ///
    /// # Errors
    /// [`BuildError::StsEndpoint`] when the configured STS endpoint is refused by `policy`.
    pub fn new(
        rpc: RpcClient,
        policy: EndpointPolicy,
        config: FactoryConfig,
        secrets: Arc<dyn SecretSource>,
    ) -> Result<Self, BuildError> {
        let ctx = ProviderContext {
            rpc,
            policy,
            sts: config.sts.clone(),
            refresh: config.refresh,
            metadata: config.metadata.clone(),
        };
        // Fail early on an unusable endpoint rather than at the first store.
        ctx.sts_client(&StsEndpointConfig::default())
            .map_err(BuildError::StsEndpoint)?;
        let chain = DefaultChain::new(
            &DefaultChainConfig::from_process_env(config.enable_worker_role),
            ctx.clone(),
        );
        let mut digest_key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut digest_key);
        Ok(Self {
            ctx,
            config,
            secrets,
            service_accounts: None,
            ambient: Arc::new(chain),
            digest_key,
        })
    }

    /// Supplies TokenRequest access (needed for `serviceAccountRef` stores).
    pub fn with_service_accounts(mut self, tokens: Arc<dyn ServiceAccountTokens>) -> Self {
        self.service_accounts = Some(tokens);
        self
    }

    /// Replaces the ambient provider (the default chain) used by stores without credentials.
    pub fn with_ambient(mut self, ambient: Arc<dyn CredentialsProvider>) -> Self {
        self.ambient = ambient;
        self
    }

    /// The ambient provider.
    pub fn ambient(&self) -> &Arc<dyn CredentialsProvider> {
        &self.ambient
    }

    /// The provider context (RPC client, policy, STS and metadata settings).
    pub fn context(&self) -> &ProviderContext {
        &self.ctx
    }

    /// The settings.
    pub fn config(&self) -> &FactoryConfig {
        &self.config
    }

    /// Resolves `auth` (a store's `KMSAuth`/`OOSAuth`; `None` = unset) for `store`.
    ///
    /// # Errors
    /// [`BuildError`]: cross-namespace violations, missing Secrets/keys/ServiceAccounts,
    /// incomplete or contradictory fields, malformed ARNs, out-of-range expirations.
    pub async fn resolve(
        &self,
        store: &StoreRef,
        auth: Option<&CloudAuth>,
    ) -> Result<ResolvedAuth, BuildError> {
        let default = CloudAuth::default();
        let auth = auth.unwrap_or(&default);
        let p = store.auth_path.as_str();
        check_consistency(p, auth)?;
        let scope = store.scope();
        let allow = self.config.allow_cross_namespace_auth_ref;
        let duration = session_duration(p, auth)?;
        let remote = match auth.remote_role_arn() {
            Some(arn) => Some(hop(
                &format!("{p}.remoteRamRoleARN"),
                arn,
                &format!("{p}.remoteRamRoleSessionName"),
                auth.remote_role_session_name(),
                duration,
            )?),
            None => None,
        };
        let mut fingerprint = Vec::new();
        let mut access_key_digest = None;

        let base = if let Some(sa) = &auth.service_account_ref {
            let field = format!("{p}.serviceAccountRef");
            let namespace = reference_namespace(scope, &field, sa.namespace.as_deref(), allow)?;
            let tokens = self.service_accounts.clone().ok_or_else(|| {
                BuildError::ServiceAccountsUnavailable {
                    field: field.clone(),
                }
            })?;
            let info = tokens
                .service_account(&namespace, &sa.name)
                .await
                .map_err(|source| BuildError::Source {
                    field: field.clone(),
                    source,
                })?;
            fingerprint.push(ObjectVersion {
                kind: "ServiceAccount",
                namespace: namespace.clone(),
                name: sa.name.clone(),
                resource_version: info.resource_version.clone(),
            });
            let (role_field, role_text) = match non_empty(&auth.ram_role_arn) {
                Some(arn) => (format!("{p}.ramRoleARN"), arn.to_owned()),
                None => match info.annotations.get(ROLE_ARN_ANNOTATION).map(|s| s.trim()) {
                    Some(arn) if !arn.is_empty() => (
                        format!(
                            "ServiceAccount {namespace}/{} annotation {ROLE_ARN_ANNOTATION}",
                            sa.name
                        ),
                        arn.to_owned(),
                    ),
                    _ => {
                        return Err(BuildError::MissingRoleAnnotation {
                            namespace,
                            name: sa.name.clone(),
                        });
                    }
                },
            };
            let provider_text = non_empty(&auth.oidc_provider_arn)
                .map(|a| (format!("{p}.oidcProviderARN"), a.to_owned()))
                .or_else(|| {
                    self.config
                        .default_oidc_provider_arn
                        .clone()
                        .map(|a| ("--rrsa-oidc-provider-arn".to_owned(), a))
                })
                .ok_or_else(|| BuildError::MissingOidcProvider {
                    field: field.clone(),
                })?;
            BasePlan::ServiceAccount {
                namespace,
                name: sa.name.clone(),
                audiences: sa.audiences().into_iter().map(str::to_owned).collect(),
                provider_arn: OidcProviderArn::parse(&provider_text.1).map_err(|source| {
                    BuildError::Arn {
                        field: provider_text.0,
                        source,
                    }
                })?,
                role: hop(
                    &role_field,
                    &role_text,
                    &format!("{p}.ramRoleSessionName"),
                    auth.role_session_name(),
                    duration,
                )?,
            }
        } else if let (Some(provider), Some(role)) = (
            non_empty(&auth.oidc_provider_arn),
            non_empty(&auth.ram_role_arn),
        ) {
            let token_files = match non_empty(&auth.oidc_token_file_path) {
                Some(path) => {
                    let path = PathBuf::from(path);
                    self.check_token_file(&format!("{p}.oidcTokenFilePath"), &path)?;
                    vec![path]
                }
                None => self.default_token_files(),
            };
            BasePlan::OidcFile {
                provider_arn: OidcProviderArn::parse(provider).map_err(|source| {
                    BuildError::Arn {
                        field: format!("{p}.oidcProviderARN"),
                        source,
                    }
                })?,
                token_files,
                role: hop(
                    &format!("{p}.ramRoleARN"),
                    role,
                    &format!("{p}.ramRoleSessionName"),
                    auth.role_session_name(),
                    duration,
                )?,
            }
        } else if let (Some(id_ref), Some(secret_ref)) = (&auth.access_key, &auth.access_key_secret)
        {
            let id_field = format!("{p}.accessKey");
            let secret_field = format!("{p}.accessKeySecret");
            let id_ns = reference_namespace(scope, &id_field, id_ref.namespace.as_deref(), allow)?;
            let secret_ns =
                reference_namespace(scope, &secret_field, secret_ref.namespace.as_deref(), allow)?;
            let id = self
                .read_key(
                    &id_field,
                    &id_ns,
                    &id_ref.name,
                    &id_ref.key,
                    &mut fingerprint,
                )
                .await?;
            let secret = self
                .read_key(
                    &secret_field,
                    &secret_ns,
                    &secret_ref.name,
                    &secret_ref.key,
                    &mut fingerprint,
                )
                .await?;
            let id = utf8_key(&id_field, id)?;
            let secret = utf8_key(&secret_field, secret)?;
            // Validate early so a bad Secret is a build error with the field name.
            StaticCredentials::with_name(
                Credentials::access_key(id.expose(), secret.clone()),
                "access_key",
            )
            .map_err(|e| BuildError::Invalid {
                field: format!("{id_field} / {secret_field}"),
                reason: super::error_chain(&e),
            })?;
            access_key_digest = Some(self.digest(&[id.expose(), secret.expose()]));
            let role = match non_empty(&auth.ram_role_arn) {
                Some(arn) => Some(hop(
                    &format!("{p}.ramRoleARN"),
                    arn,
                    &format!("{p}.ramRoleSessionName"),
                    auth.role_session_name(),
                    duration,
                )?),
                None => None,
            };
            BasePlan::AccessKey {
                id: id.expose().to_owned(),
                secret,
                role,
            }
        } else {
            BasePlan::Ambient
        };
        fingerprint.sort();
        fingerprint.dedup();
        Ok(ResolvedAuth {
            base,
            remote,
            fingerprint,
            access_key_digest,
        })
    }

    /// Refuses a store-named token file the administrator did not allow (see
    /// [`FactoryConfig::allowed_token_files`]); checked before anything is read.
    fn check_token_file(&self, field: &str, path: &std::path::Path) -> Result<(), BuildError> {
        let Some(extra) = &self.config.allowed_token_files else {
            return Ok(());
        };
        let mut allowed = self.default_token_files();
        for f in extra {
            if !allowed.contains(f) {
                allowed.push(f.clone());
            }
        }
        if allowed.iter().any(|a| a.as_path() == path) {
            return Ok(());
        }
        Err(BuildError::TokenFileNotAllowed {
            field: field.to_owned(),
            path: path.to_owned(),
            allowed,
        })
    }

    fn default_token_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if let Ok(env) = std::env::var(super::chain::ENV_OIDC_TOKEN_FILE)
            && !env.is_empty()
        {
            files.push(PathBuf::from(env));
        }
        for f in &self.config.default_token_files {
            if !files.contains(f) {
                files.push(f.clone());
            }
        }
        files
    }

    fn digest(&self, parts: &[&str]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.digest_key)
            .expect("HMAC accepts any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    async fn read_key(
        &self,
        field: &str,
        namespace: &str,
        name: &str,
        key: &str,
        fingerprint: &mut Vec<ObjectVersion>,
    ) -> Result<crate::value::SecretBytes, BuildError> {
        let v = self
            .secrets
            .secret_key(namespace, name, key)
            .await
            .map_err(|source| BuildError::Source {
                field: field.to_owned(),
                source,
            })?;
        fingerprint.push(ObjectVersion {
            kind: "Secret",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            resource_version: v.resource_version,
        });
        Ok(v.value)
    }

    /// Assembles the provider stack of `resolved`.
    ///
    /// # Errors
    /// [`BuildError::StsEndpoint`] when the STS endpoint is refused (cannot happen after
    /// [`new`](Self::new) succeeded, kept for safety); [`BuildError::Invalid`] for an unusable
    /// AccessKey.
    pub fn build(
        &self,
        resolved: &ResolvedAuth,
    ) -> Result<Arc<dyn CredentialsProvider>, BuildError> {
        let sts = || {
            self.ctx
                .sts_client(&StsEndpointConfig::default())
                .map_err(BuildError::StsEndpoint)
        };
        let refresh = self.ctx.refresh;
        let base: Arc<dyn CredentialsProvider> = match &resolved.base {
            BasePlan::Ambient => self.ambient.clone(),
            BasePlan::AccessKey { id, secret, role } => {
                let ak: Arc<dyn CredentialsProvider> = Arc::new(
                    StaticCredentials::with_name(
                        Credentials::access_key(id.clone(), secret.clone()),
                        "access_key",
                    )
                    .map_err(|e| BuildError::Invalid {
                        field: "accessKey / accessKeySecret".into(),
                        reason: super::error_chain(&e),
                    })?,
                );
                match role {
                    None => ak,
                    Some(hop) => Arc::new(Refreshing::new(
                        AssumeRole::new(sts()?, ak, hop.request(), "assume_role"),
                        refresh,
                    )),
                }
            }
            BasePlan::OidcFile {
                provider_arn,
                token_files,
                role,
            } => Arc::new(Refreshing::new(
                OidcRole::new(
                    sts()?,
                    OidcToken::File(token_files.clone()),
                    role.role_arn.as_str(),
                    provider_arn.as_str(),
                    role.session_name.clone(),
                    Some(role.duration_seconds),
                ),
                refresh,
            )),
            BasePlan::ServiceAccount {
                namespace,
                name,
                audiences,
                provider_arn,
                role,
            } => {
                let tokens = self.service_accounts.clone().ok_or_else(|| {
                    BuildError::ServiceAccountsUnavailable {
                        field: "serviceAccountRef".into(),
                    }
                })?;
                Arc::new(Refreshing::new(
                    OidcRole::new(
                        sts()?,
                        OidcToken::ServiceAccount {
                            tokens,
                            namespace: namespace.clone(),
                            name: name.clone(),
                            audiences: audiences.clone(),
                        },
                        role.role_arn.as_str(),
                        provider_arn.as_str(),
                        role.session_name.clone(),
                        Some(role.duration_seconds),
                    ),
                    refresh,
                ))
            }
        };
        Ok(match &resolved.remote {
            None => base,
            Some(hop) => Arc::new(Refreshing::new(
                AssumeRole::new(sts()?, base, hop.request(), "remote_role"),
                refresh,
            )),
        })
    }

    /// [`resolve`](Self::resolve) then [`build`](Self::build).
    ///
    /// # Errors
    /// As both.
    pub async fn provider(
        &self,
        store: &StoreRef,
        auth: Option<&CloudAuth>,
    ) -> Result<Arc<dyn CredentialsProvider>, BuildError> {
        let resolved = self.resolve(store, auth).await?;
        self.build(&resolved)
    }
}

impl RoleHop {
    fn request(&self) -> AssumeRoleRequest {
        AssumeRoleRequest {
            role_arn: self.role_arn.as_str().to_owned(),
            role_session_name: self.session_name.clone(),
            duration_seconds: Some(self.duration_seconds),
            policy: None,
            external_id: None,
        }
    }
}

fn utf8_key(field: &str, bytes: crate::value::SecretBytes) -> Result<SecretString, BuildError> {
    std::str::from_utf8(bytes.expose())
        .map(SecretString::from)
        .map_err(|_| BuildError::Invalid {
            field: field.to_owned(),
            reason: "the Secret value is not valid UTF-8".into(),
        })
}

fn hop(
    field: &str,
    arn: &str,
    session_field: &str,
    session_name: &str,
    duration: Duration,
) -> Result<RoleHop, BuildError> {
    let role_arn = RoleArn::parse(arn.trim()).map_err(|source| BuildError::Arn {
        field: field.to_owned(),
        source,
    })?;
    if !is_valid_session_name(session_name) {
        return Err(BuildError::Invalid {
            field: session_field.to_owned(),
            reason: format!(
                "{session_name:?} must be 2 to 64 characters of letters, digits and . @ - _"
            ),
        });
    }
    Ok(RoleHop {
        role_arn,
        session_name: session_name.to_owned(),
        duration_seconds: duration.as_secs(),
    })
}

fn session_duration(p: &str, auth: &CloudAuth) -> Result<Duration, BuildError> {
    let d = auth
        .role_session_expiration()
        .map_err(|e| BuildError::Invalid {
            field: format!("{p}.roleSessionExpiration"),
            reason: format!(
                "{:?} is neither whole seconds (\"3600\") nor a duration (\"1h\")",
                e.value
            ),
        })?;
    if !(MIN_ROLE_SESSION_EXPIRATION..=MAX_ROLE_SESSION_EXPIRATION).contains(&d) {
        return Err(BuildError::Invalid {
            field: format!("{p}.roleSessionExpiration"),
            reason: format!("{}s is outside 900s to 43200s", d.as_secs()),
        });
    }
    Ok(d)
}

/// Incomplete or contradictory combinations (ack's order decides between complete methods).
fn check_consistency(p: &str, a: &CloudAuth) -> Result<(), BuildError> {
    match (&a.access_key, &a.access_key_secret) {
        (Some(_), None) => {
            return Err(BuildError::Incomplete {
                field: format!("{p}.accessKey"),
                requires: "accessKeySecret",
            });
        }
        (None, Some(_)) => {
            return Err(BuildError::Incomplete {
                field: format!("{p}.accessKeySecret"),
                requires: "accessKey",
            });
        }
        _ => {}
    }
    let has_ak = a.access_key.is_some();
    let has_sa = a.service_account_ref.is_some();
    let role = non_empty(&a.ram_role_arn);
    let oidc = non_empty(&a.oidc_provider_arn);
    if oidc.is_some() && role.is_none() && !has_sa {
        return Err(BuildError::Incomplete {
            field: format!("{p}.oidcProviderARN"),
            requires: "ramRoleARN",
        });
    }
    if role.is_some() && oidc.is_none() && !has_ak && !has_sa {
        return Err(BuildError::Incomplete {
            field: format!("{p}.ramRoleARN"),
            requires: "accessKey and accessKeySecret, oidcProviderARN, or serviceAccountRef",
        });
    }
    if let (Some(canonical), Some(alias)) = (
        non_empty(&a.remote_ram_role_arn),
        non_empty(&a.remote_ram_role_arn_alias),
    ) && canonical != alias
    {
        return Err(BuildError::Contradictory {
            field: format!("{p}.remoteRamRoleARN"),
            other: format!("{p}.remoteRamRoleArn"),
            detail: "the two spellings name different roles",
        });
    }
    if non_empty(&a.remote_ram_role_session_name).is_some() && a.remote_role_arn().is_none() {
        return Err(BuildError::Incomplete {
            field: format!("{p}.remoteRamRoleSessionName"),
            requires: "remoteRamRoleARN",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alibaba::ClientConfig;
    use crate::api::{SecretKeyRef, ServiceAccountRef};
    use crate::credentials::source::{MemorySecrets, MemoryServiceAccounts, ServiceAccountInfo};
    use crate::value::SecretBytes;
    use std::path::Path;

    fn factory(secrets: Arc<MemorySecrets>, config: FactoryConfig) -> CredentialsFactory {
        CredentialsFactory::new(
            RpcClient::new(ClientConfig::default()).unwrap(),
            EndpointPolicy::default(),
            config,
            secrets,
        )
        .unwrap()
    }

    fn sref(name: &str, key: &str, ns: Option<&str>) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            namespace: ns.map(str::to_owned),
            key: key.into(),
        }
    }

    fn secrets() -> Arc<MemorySecrets> {
        let s = MemorySecrets::new();
        s.insert(
            "team-a",
            "ak",
            [
                ("id".to_owned(), SecretBytes::from("LTAI5tExampleId01")),
                ("secret".to_owned(), SecretBytes::from("secret-marker")),
                ("padded".to_owned(), SecretBytes::from("secret-marker\n")),
            ],
            Some("1"),
        );
        Arc::new(s)
    }

    fn ak_auth() -> CloudAuth {
        CloudAuth {
            access_key: Some(sref("ak", "id", None)),
            access_key_secret: Some(sref("ak", "secret", None)),
            ..CloudAuth::default()
        }
    }

    #[tokio::test]
    async fn an_access_key_store_resolves_to_the_secret_values() {
        let f = factory(secrets(), FactoryConfig::default());
        let store = StoreRef::secret_store("team-a", "s");
        let r = f.resolve(&store, Some(&ak_auth())).await.unwrap();
        assert_eq!(r.method(), "access_key");
        assert_eq!(
            r.fingerprint,
            vec![ObjectVersion {
                kind: "Secret",
                namespace: "team-a".into(),
                name: "ak".into(),
                resource_version: Some("1".into())
            }]
        );
        assert!(!format!("{r:?}").contains("secret-marker"));
        let p = f.build(&r).unwrap();
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id, "LTAI5tExampleId01");
        assert_eq!(c.access_key_secret.expose(), "secret-marker");
        assert_eq!(p.name(), "access_key");
    }

    #[tokio::test]
    async fn methods_follow_acks_order() {
        let f = factory(secrets(), FactoryConfig::default());
        let store = StoreRef::secret_store("team-a", "s");
        let mut auth = ak_auth();
        auth.ram_role_arn = Some("acs:ram::1234567890123456:role/r".into());
        assert_eq!(
            f.resolve(&store, Some(&auth)).await.unwrap().method(),
            "access_key_assume_role"
        );
        auth.oidc_provider_arn = Some("acs:ram::1234567890123456:oidc-provider/p".into());
        auth.remote_ram_role_arn = Some("acs:ram::2234567890123456:role/remote".into());
        let r = f.resolve(&store, Some(&auth)).await.unwrap();
        assert_eq!(r.method(), "rrsa_oidc+remote_role");
        assert!(r.fingerprint.is_empty(), "no Secret read for OIDC");
        assert_eq!(f.resolve(&store, None).await.unwrap().method(), "ambient");
    }

    #[tokio::test]
    async fn missing_secrets_and_keys_name_the_field_and_object() {
        let f = factory(secrets(), FactoryConfig::default());
        let store = StoreRef::secret_store("team-a", "s");
        let mut auth = ak_auth();
        auth.access_key_secret = Some(sref("ak", "nope", None));
        let err = f.resolve(&store, Some(&auth)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.KMS.KMSAuth.accessKeySecret: Secret team-a/ak has no key \"nope\""
        );
        auth.access_key = Some(sref("gone", "id", None));
        let err = f.resolve(&store, Some(&auth)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.KMS.KMSAuth.accessKey: Secret team-a/gone does not exist"
        );
        auth.access_key = Some(sref("ak", "id", None));
        auth.access_key_secret = Some(sref("ak", "padded", None));
        let err = f.resolve(&store, Some(&auth)).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("has leading or trailing whitespace"),
            "{err}"
        );
        assert!(!err.to_string().contains("secret-marker"));
    }

    #[tokio::test]
    async fn incomplete_and_contradictory_auth_is_refused() {
        let f = factory(secrets(), FactoryConfig::default());
        let store = StoreRef::secret_store("team-a", "s");
        let cases: Vec<(CloudAuth, &str)> = vec![
            (
                CloudAuth {
                    access_key: Some(sref("ak", "id", None)),
                    ..CloudAuth::default()
                },
                "spec.KMS.KMSAuth.accessKey is set but accessKeySecret is not",
            ),
            (
                CloudAuth {
                    oidc_provider_arn: Some("acs:ram::1:oidc-provider/p".into()),
                    ..CloudAuth::default()
                },
                "spec.KMS.KMSAuth.oidcProviderARN is set but ramRoleARN is not",
            ),
            (
                CloudAuth {
                    ram_role_arn: Some("acs:ram::1:role/r".into()),
                    ..CloudAuth::default()
                },
                "spec.KMS.KMSAuth.ramRoleARN is set but accessKey and accessKeySecret, oidcProviderARN, or serviceAccountRef is not",
            ),
            (
                CloudAuth {
                    remote_ram_role_arn: Some("acs:ram::1:role/a".into()),
                    remote_ram_role_arn_alias: Some("acs:ram::1:role/b".into()),
                    ..CloudAuth::default()
                },
                "spec.KMS.KMSAuth.remoteRamRoleARN conflicts with spec.KMS.KMSAuth.remoteRamRoleArn: the two spellings name different roles",
            ),
            (
                CloudAuth {
                    remote_ram_role_session_name: Some("x1".into()),
                    ..CloudAuth::default()
                },
                "spec.KMS.KMSAuth.remoteRamRoleSessionName is set but remoteRamRoleARN is not",
            ),
            (
                CloudAuth {
                    ram_role_arn: Some("arn:bad".into()),
                    ..ak_auth()
                },
                "spec.KMS.KMSAuth.ramRoleARN: \"arn:bad\" is not a RAM role ARN (expected acs:ram::<account-id>:role/<name>)",
            ),
            (
                CloudAuth {
                    ram_role_arn: Some("acs:ram::1:role/r".into()),
                    ram_role_session_name: Some("bad name".into()),
                    ..ak_auth()
                },
                "spec.KMS.KMSAuth.ramRoleSessionName is invalid: \"bad name\" must be 2 to 64 characters of letters, digits and . @ - _",
            ),
            (
                CloudAuth {
                    role_session_expiration: Some("60".into()),
                    ..ak_auth()
                },
                "spec.KMS.KMSAuth.roleSessionExpiration is invalid: 60s is outside 900s to 43200s",
            ),
        ];
        for (auth, message) in cases {
            let err = f.resolve(&store, Some(&auth)).await.unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[tokio::test]
    async fn cross_namespace_references_follow_the_flag() {
        let s = secrets();
        s.insert(
            "other",
            "ak",
            [
                ("id".to_owned(), SecretBytes::from("LTAI5tExampleId02")),
                ("secret".to_owned(), SecretBytes::from("secret-marker")),
            ],
            None,
        );
        let mut auth = ak_auth();
        auth.access_key = Some(sref("ak", "id", Some("other")));
        auth.access_key_secret = Some(sref("ak", "secret", Some("other")));
        let store = StoreRef::secret_store("team-a", "s");
        let strict = factory(s.clone(), FactoryConfig::default());
        let err = strict.resolve(&store, Some(&auth)).await.unwrap_err();
        assert!(matches!(
            err,
            BuildError::Reference(ReferenceError::CrossNamespace { .. })
        ));
        assert_eq!(s.reads(), 0, "nothing read before the check");
        let lax = factory(
            s.clone(),
            FactoryConfig {
                allow_cross_namespace_auth_ref: true,
                ..FactoryConfig::default()
            },
        );
        let r = lax.resolve(&store, Some(&auth)).await.unwrap();
        assert_eq!(r.fingerprint[0].namespace, "other");
        let cluster = StoreRef::cluster_secret_store("c");
        let err = strict
            .resolve(&cluster, Some(&ak_auth()))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.KMS.KMSAuth.accessKey.namespace is required: a ClusterSecretStore must name the namespace of every object it references"
        );
    }

    #[tokio::test]
    async fn service_account_stores_take_the_role_from_the_annotation_unless_given() {
        let sa = Arc::new(MemoryServiceAccounts::new(|_, _, _, _| {
            Err("not used".into())
        }));
        sa.insert(
            "team-a",
            "annotated",
            ServiceAccountInfo {
                annotations: [(
                    ROLE_ARN_ANNOTATION.to_owned(),
                    "acs:ram::1234567890123456:role/from-annotation".to_owned(),
                )]
                .into(),
                resource_version: Some("5".into()),
            },
        );
        sa.insert("team-a", "plain", ServiceAccountInfo::default());
        let f = factory(
            secrets(),
            FactoryConfig {
                default_oidc_provider_arn: Some(
                    "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1".into(),
                ),
                ..FactoryConfig::default()
            },
        )
        .with_service_accounts(sa);
        let store = StoreRef::secret_store("team-a", "s");
        let auth = |name: &str, role: Option<&str>| CloudAuth {
            service_account_ref: Some(ServiceAccountRef {
                name: name.into(),
                namespace: None,
                audiences: None,
            }),
            ram_role_arn: role.map(str::to_owned),
            ..CloudAuth::default()
        };
        let r = f
            .resolve(&store, Some(&auth("annotated", None)))
            .await
            .unwrap();
        match &r.base {
            BasePlan::ServiceAccount {
                role,
                audiences,
                provider_arn,
                ..
            } => {
                assert_eq!(role.role_arn.name(), "from-annotation");
                assert_eq!(audiences, &["sts.aliyuncs.com".to_owned()]);
                assert_eq!(
                    provider_arn.as_str(),
                    "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.fingerprint[0].resource_version.as_deref(), Some("5"));
        let r = f
            .resolve(
                &store,
                Some(&auth(
                    "plain",
                    Some("acs:ram::1234567890123456:role/explicit"),
                )),
            )
            .await
            .unwrap();
        assert!(
            matches!(&r.base, BasePlan::ServiceAccount { role, .. } if role.role_arn.name() == "explicit")
        );
        let err = f
            .resolve(&store, Some(&auth("plain", None)))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ServiceAccount team-a/plain has no annotation ack.alibabacloud.com/role-arn (annotate it with the RAM role to assume, or set ramRoleARN)"
        );
        let err = f
            .resolve(&store, Some(&auth("ghost", None)))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.KMS.KMSAuth.serviceAccountRef: ServiceAccount team-a/ghost does not exist"
        );
        let without_tokens = factory(secrets(), FactoryConfig::default());
        let err = without_tokens
            .resolve(&store, Some(&auth("annotated", None)))
            .await
            .unwrap_err();
        assert!(matches!(err, BuildError::ServiceAccountsUnavailable { .. }));
    }

    #[tokio::test]
    async fn store_token_files_must_be_a_default_or_an_allowed_one_when_a_list_is_configured() {
        let auth = |path: Option<&str>| CloudAuth {
            oidc_provider_arn: Some("acs:ram::1234567890123456:oidc-provider/p".into()),
            ram_role_arn: Some("acs:ram::1234567890123456:role/r".into()),
            oidc_token_file_path: path.map(str::to_owned),
            ..CloudAuth::default()
        };
        let token_files = |r: &ResolvedAuth| match &r.base {
            BasePlan::OidcFile { token_files, .. } => token_files.clone(),
            other => panic!("{other:?}"),
        };
        // Local tools (no list): any path.
        let open = factory(secrets(), FactoryConfig::default());
        let store = StoreRef::secret_store("team-a", "s");
        let r = open
            .resolve(&store, Some(&auth(Some("/etc/hostname"))))
            .await
            .unwrap();
        assert_eq!(token_files(&r), [PathBuf::from("/etc/hostname")]);

        let f = factory(
            secrets(),
            FactoryConfig {
                allowed_token_files: Some(vec![PathBuf::from("/var/run/secrets/tokens/team-a")]),
                ..FactoryConfig::default()
            },
        );
        let cluster = StoreRef::cluster_secret_store("c");
        for store in [&store, &cluster] {
            for ok in [
                // The defaults (what an empty oidcTokenFilePath reads anyway)...
                "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token",
                "/var/run/secrets/tokens/ack-secret-manager",
                // ...and the listed file, also spelled with a redundant slash.
                "/var/run/secrets/tokens/team-a",
                "/var/run/secrets//tokens/team-a/",
            ] {
                let r = f.resolve(store, Some(&auth(Some(ok)))).await;
                assert!(r.is_ok(), "{ok}: {r:?}");
            }
            // The controller's own Kubernetes ServiceAccount token, a traversal and anything
            // else: refused before any file is read.
            for bad in [
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                "/var/run/secrets/tokens/team-a/../../kubernetes.io/serviceaccount/token",
                "/var/run/secrets/tokens/../tokens/team-a",
                "/etc/hostname",
            ] {
                let err = f.resolve(store, Some(&auth(Some(bad)))).await.unwrap_err();
                assert!(
                    matches!(&err, BuildError::TokenFileNotAllowed { path, .. } if path == Path::new(bad)),
                    "{bad}: {err}"
                );
                assert_eq!(err.metric_label(), "token_file_not_allowed");
            }
        }
        let err = f
            .resolve(
                &store,
                Some(&auth(Some(
                    "/var/run/secrets/kubernetes.io/serviceaccount/token",
                ))),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.KMS.KMSAuth.oidcTokenFilePath is \"/var/run/secrets/kubernetes.io/serviceaccount/token\", which is not an allowed OIDC token file (allowed: /var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token, /var/run/secrets/tokens/ack-secret-manager, /var/run/secrets/tokens/team-a); an administrator can allow it with --allowed-oidc-token-paths"
        );
        // Without a path the default files are used, as before.
        let r = f.resolve(&store, Some(&auth(None))).await.unwrap();
        assert!(token_files(&r).contains(&PathBuf::from(
            "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token"
        )));
    }
}
