//! Cloud credentials behind one trait, so every Alibaba Cloud client can take any source.
//!
//! ```text
//!  store's CloudAuth ──CredentialsFactory::resolve──▶ ResolvedAuth ──build──▶ provider stack
//!  (+ namespace, flags)   (cross-namespace rules,       (AccessKey read,        │
//!                          Secret / ServiceAccount      fingerprint of           ▼
//!                          lookups)                     resourceVersions)   Arc<dyn CredentialsProvider>
//!
//!  provider stacks (each temporary layer is a `Refreshing` cache):
//!    StaticCredentials (AccessKey from a Secret)
//!    Refreshing<AssumeRole>  ── on top of any provider (ramRoleARN, remoteRamRoleARN)
//!    Refreshing<OidcRole>    ── RRSA: token file, or a ServiceAccount's TokenRequest token
//!    Refreshing<EcsRamRole>  ── instance metadata (only with --enable-worker-role)
//!    DefaultChain            ── env AK -> OIDC env -> ~/.aliyun/config.json ->
//!                               ~/.alibabacloud/credentials -> ECS metadata (when enabled)
//!
//!  CredentialsRegistry: one provider per store generation + referenced resourceVersions
//! ```
//!
//! Wire facts: `shared/docs/alibaba-cloud-protocol.md` (STS, ECS metadata, default chain) and
//! the official credential libraries (`aliyun/credentials-go`, `aliyun/credentials-python`);
//! field names and order: `shared/docs/ack-compat.md`. Nothing here formats a secret: error
//! messages, logs and `Debug` carry names, ARNs, paths and codes only. User-facing
//! documentation: `docs/credentials.md`.

pub mod arn;
pub mod assume_role;
pub mod builder;
pub mod chain;
pub mod ecs;
pub mod oidc;
pub mod profile;
pub mod references;
pub mod refresh;
pub mod registry;
pub mod source;
pub mod sts;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use arn::{ArnError, OidcProviderArn, RoleArn};
pub use assume_role::AssumeRole;
pub use builder::{
    BuildError, CredentialsFactory, FactoryConfig, ResolvedAuth, StoreKind, StoreRef,
};
pub use chain::{ChainFailures, DefaultChain, DefaultChainConfig};
pub use ecs::{EcsMetadataConfig, EcsRamRole};
pub use oidc::{OidcRole, OidcToken};
pub use references::{ReferenceError, StoreScope, check_auth_references, reference_namespace};
pub use refresh::{CredentialsFetcher, RefreshPolicy, Refreshing};
pub use registry::{CredentialsRegistry, ProviderStatus};
pub use source::{
    MemorySecrets, MemoryServiceAccounts, SecretKeyValue, SecretSource, ServiceAccountInfo,
    ServiceAccountToken, ServiceAccountTokens, SourceError,
};
pub use sts::{StsClient, StsEndpointConfig};

use crate::alibaba::sign::SigningCredentials;
use crate::alibaba::{BodyProblem, RpcError};
use crate::value::SecretString;

/// `ALIBABA_CLOUD_ACCESS_KEY_ID`
pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
/// `ALIBABA_CLOUD_ACCESS_KEY_SECRET`
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
/// `ALIBABA_CLOUD_SECURITY_TOKEN`
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";

/// One set of credentials: a permanent AccessKey pair, or temporary STS credentials.
///
/// `Debug` shows the AccessKeyId shortened and nothing of the secret or token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// AccessKeyId (`LTAI…` for RAM users, `STS.…` for temporary credentials).
    pub access_key_id: String,
    /// AccessKeySecret.
    pub access_key_secret: SecretString,
    /// STS SecurityToken, for temporary credentials.
    pub security_token: Option<SecretString>,
    /// When temporary credentials stop working (UTC); `None` for permanent keys.
    pub expiration: Option<DateTime<Utc>>,
}

impl Credentials {
    /// A permanent AccessKey pair.
    pub fn access_key(id: impl Into<String>, secret: impl Into<SecretString>) -> Self {
        Self {
            access_key_id: id.into(),
            access_key_secret: secret.into(),
            security_token: None,
            expiration: None,
        }
    }

    /// Temporary STS credentials.
    pub fn sts(
        id: impl Into<String>,
        secret: impl Into<SecretString>,
        token: impl Into<SecretString>,
        expiration: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            access_key_id: id.into(),
            access_key_secret: secret.into(),
            security_token: Some(token.into()),
            expiration,
        }
    }

    /// The borrowed view the signers need.
    pub fn signing(&self) -> SigningCredentials<'_> {
        SigningCredentials {
            access_key_id: &self.access_key_id,
            access_key_secret: &self.access_key_secret,
            security_token: self.security_token.as_ref(),
        }
    }

    /// True when `expiration` is set and not after `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_some_and(|exp| exp <= now)
    }

    /// The AccessKeyId with its middle hidden (`LTAI****abcd`), for logs and errors.
    pub fn masked_id(&self) -> String {
        mask_id(&self.access_key_id)
    }
}

/// Keeps the first 4 and last 4 characters of an id (or only `****` when it is short).
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 12 {
        return "****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.masked_id())
            .field("access_key_secret", &self.access_key_secret)
            .field("security_token", &self.security_token)
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// Why no credentials could be produced. Messages name sources, variables, paths, roles and
/// codes — never a value. The full chain ([`error_chain`]) is meant for a store's `Ready`
/// condition message.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A required environment variable is unset or empty.
    #[error("environment variable {variable} is not set")]
    MissingEnv {
        /// Variable name.
        variable: &'static str,
    },
    /// A value is present but unusable (empty, or with surrounding whitespace).
    #[error("credential field {field} from {source_name} is invalid: {reason}")]
    Invalid {
        /// Where the value came from (e.g. `environment`, `static`).
        source_name: &'static str,
        /// Which field (`AccessKeyId`, ...).
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Temporary credentials whose expiration has passed.
    #[error("credentials from {source_name} expired at {expiration}")]
    Expired {
        /// Provider name.
        source_name: &'static str,
        /// When they expired.
        expiration: DateTime<Utc>,
    },
    /// No OIDC token file exists at any of the paths.
    #[error("OIDC token file not found (looked for {})", display_paths(paths))]
    TokenFileMissing {
        /// Paths tried, in order.
        paths: Vec<PathBuf>,
    },
    /// The OIDC token file exists but cannot be read (permissions, a directory, not UTF-8).
    #[error("OIDC token file {} could not be read", path.display())]
    TokenFileUnreadable {
        /// The file.
        path: PathBuf,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The OIDC token file is empty (or only whitespace).
    #[error("OIDC token file {} is empty", path.display())]
    TokenFileEmpty {
        /// The file.
        path: PathBuf,
    },
    /// The TokenRequest for a ServiceAccount failed.
    #[error("could not get a token for ServiceAccount {namespace}/{name}")]
    ServiceAccountToken {
        /// Namespace.
        namespace: String,
        /// ServiceAccount name.
        name: String,
        /// Why.
        #[source]
        source: Box<SourceError>,
    },
    /// An STS call failed (its code, HTTP status and RequestId are in the source).
    #[error("STS {action} for role {role_arn} failed")]
    Sts {
        /// `AssumeRole` or `AssumeRoleWithOIDC`.
        action: &'static str,
        /// The role asked for.
        role_arn: String,
        /// The RPC error.
        #[source]
        source: Box<RpcError>,
    },
    /// The credentials a provider builds on could not be obtained.
    #[error("{provider} could not get the credentials it builds on from {upstream}")]
    Upstream {
        /// This provider.
        provider: &'static str,
        /// The provider below it.
        upstream: &'static str,
        /// Its error.
        #[source]
        source: Box<CredentialsError>,
    },
    /// The metadata server base URL is unusable.
    #[error("ECS metadata URL {url:?} is unusable: {reason}")]
    MetadataConfig {
        /// The URL as configured.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The metadata server could not be reached or did not answer in time.
    #[error("ECS metadata server {url} did not answer the {step} request")]
    MetadataUnreachable {
        /// Base URL.
        url: String,
        /// `token`, `role name` or `credentials`.
        step: &'static str,
        /// reqwest error (without URL).
        #[source]
        source: reqwest::Error,
    },
    /// The metadata server answered with a non-2xx status.
    #[error("ECS metadata server answered the {step} request with HTTP {status}")]
    MetadataStatus {
        /// `token`, `role name` or `credentials`.
        step: &'static str,
        /// HTTP status.
        status: u16,
    },
    /// The metadata server's answer was unusable.
    #[error("ECS metadata server sent an unusable {step} answer: {problem}")]
    MetadataResponse {
        /// `token`, `role name` or `credentials`.
        step: &'static str,
        /// What was wrong (never the body).
        problem: BodyProblem,
    },
    /// The metadata credentials answer had a `Code` other than `Success`.
    #[error("ECS metadata server returned Code {code:?} instead of Success")]
    MetadataCode {
        /// The code.
        code: String,
    },
    /// A credentials profile file (`~/.alibabacloud/credentials`, `~/.aliyun/config.json`) could
    /// not be read.
    #[error("credentials profile file {} could not be read", path.display())]
    ProfileIo {
        /// The file.
        path: PathBuf,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A credentials profile is unusable.
    #[error("profile {profile:?} in {}: {reason}", path.display())]
    Profile {
        /// The file.
        path: PathBuf,
        /// Profile (section) name.
        profile: String,
        /// What is wrong (names fields and types, never values).
        reason: String,
    },
    /// Every member of the default chain failed.
    #[error("no credentials found in the default chain: {failures}")]
    ChainExhausted {
        /// Each member's failure, in order.
        failures: ChainFailures,
    },
    /// Refreshing temporary credentials failed and no still-valid ones are cached.
    #[error("refreshing {provider} credentials failed")]
    RefreshFailed {
        /// Provider name.
        provider: &'static str,
        /// The failure.
        #[source]
        source: Arc<CredentialsError>,
    },
    /// A recent refresh failed; the provider waits before trying again and has no still-valid
    /// credentials meanwhile.
    #[error("{provider} credentials are unavailable; the next refresh attempt is in {}s", retry_in.as_secs().max(1))]
    BackingOff {
        /// Provider name.
        provider: &'static str,
        /// Time until the next attempt.
        retry_in: Duration,
        /// The last failure.
        #[source]
        source: Arc<CredentialsError>,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl CredentialsError {
    /// Whether asking again later may succeed without anyone changing a store or a Secret:
    /// an STS call that failed retryably (throttling, 5xx, connection), an unreachable or
    /// 5xx/429-answering metadata server, or a refresh that failed for one of these reasons.
    /// Configuration problems (missing files, bad values, refused roles) are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Sts { source, .. } => source.is_retryable(),
            Self::MetadataUnreachable { .. } => true,
            Self::MetadataStatus { status, .. } => *status == 429 || *status >= 500,
            Self::Upstream { source, .. } => source.is_retryable(),
            Self::RefreshFailed { source, .. } | Self::BackingOff { source, .. } => {
                source.is_retryable()
            }
            _ => false,
        }
    }

    /// Bounded label for metrics: the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingEnv { .. } => "missing_env",
            Self::Invalid { .. } => "invalid",
            Self::Expired { .. } => "expired",
            Self::TokenFileMissing { .. } => "token_file_missing",
            Self::TokenFileUnreadable { .. } => "token_file_unreadable",
            Self::TokenFileEmpty { .. } => "token_file_empty",
            Self::ServiceAccountToken { .. } => "service_account_token",
            Self::Sts { .. } => "sts",
            Self::Upstream { .. } => "upstream",
            Self::MetadataConfig { .. } => "metadata_config",
            Self::MetadataUnreachable { .. } => "metadata_unreachable",
            Self::MetadataStatus { .. } => "metadata_status",
            Self::MetadataResponse { .. } => "metadata_response",
            Self::MetadataCode { .. } => "metadata_code",
            Self::ProfileIo { .. } => "profile_io",
            Self::Profile { .. } => "profile",
            Self::ChainExhausted { .. } => "chain_exhausted",
            Self::RefreshFailed { .. } => "refresh_failed",
            Self::BackingOff { .. } => "backing_off",
        }
    }

    /// The STS or RPC error code at the root of this error, if any (e.g. `EntityNotExist.Role`).
    pub fn code(&self) -> Option<&str> {
        let mut current: &Self = self;
        loop {
            match current {
                Self::Sts { source, .. } => return source.code(),
                Self::MetadataCode { code } => return Some(code),
                Self::Upstream { source, .. } => current = source,
                Self::RefreshFailed { source, .. } | Self::BackingOff { source, .. } => {
                    current = source
                }
                _ => return None,
            }
        }
    }
}

/// `err` and its sources joined with `": "`, the form used for condition messages and logs
/// (every level's message is value-free, so the whole chain is).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A source of credentials. Object-safe: store it as `Arc<dyn CredentialsProvider>`.
///
/// Implementations that fetch temporary credentials cache them and refresh ahead of expiry
/// (180 s before, as the official SDKs do); callers ask again before every call.
#[async_trait]
pub trait CredentialsProvider: Send + Sync + fmt::Debug {
    /// Current credentials.
    ///
    /// # Errors
    /// [`CredentialsError`] when none can be produced (missing, invalid, expired, or — for later
    /// providers — a failed STS/metadata call).
    async fn credentials(&self) -> Result<Credentials, CredentialsError>;

    /// Short provider name for logs, status and metrics (`static`, `env`, `assume_role`,
    /// `oidc_role`, `service_account_role`, `ecs_ram_role`, `remote_role`, `default_chain`).
    fn name(&self) -> &'static str;

    /// The error of the last failed refresh of this provider or one it builds on, while it has
    /// not been followed by a successful one (for a store's `Ready` condition). `None` for
    /// providers that never refresh.
    fn last_refresh_error(&self) -> Option<Arc<CredentialsError>> {
        None
    }
}

/// Fixed credentials: an AccessKey pair, or an STS triple (refused once expired).
#[derive(Clone, Debug)]
pub struct StaticCredentials {
    credentials: Credentials,
    name: &'static str,
}

impl StaticCredentials {
    /// Wraps credentials after checking that id and secret are non-empty and trimmed.
    ///
    /// # Errors
    /// [`CredentialsError::Invalid`].
    pub fn new(credentials: Credentials) -> Result<Self, CredentialsError> {
        Self::with_name(credentials, "static")
    }

    /// Like [`new`](Self::new), reporting `name` as the provider name (e.g. `access_key` for a
    /// store's AccessKey Secret).
    ///
    /// # Errors
    /// [`CredentialsError::Invalid`] (naming `name` as the source).
    pub fn with_name(
        credentials: Credentials,
        name: &'static str,
    ) -> Result<Self, CredentialsError> {
        check_field(name, "AccessKeyId", &credentials.access_key_id)?;
        check_field(
            name,
            "AccessKeySecret",
            credentials.access_key_secret.expose(),
        )?;
        if let Some(token) = &credentials.security_token {
            check_field(name, "SecurityToken", token.expose())?;
        }
        Ok(Self { credentials, name })
    }

    /// An AccessKey pair.
    ///
    /// # Errors
    /// [`CredentialsError::Invalid`] for empty or untrimmed values.
    pub fn access_key(
        id: impl Into<String>,
        secret: impl Into<SecretString>,
    ) -> Result<Self, CredentialsError> {
        Self::new(Credentials::access_key(id, secret))
    }

    /// An STS triple with its expiry, if known.
    ///
    /// # Errors
    /// [`CredentialsError::Invalid`] for empty or untrimmed values.
    pub fn sts(
        id: impl Into<String>,
        secret: impl Into<SecretString>,
        token: impl Into<SecretString>,
        expiration: Option<DateTime<Utc>>,
    ) -> Result<Self, CredentialsError> {
        Self::new(Credentials::sts(id, secret, token, expiration))
    }

    /// Reads `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET` and, if set and
    /// non-empty, `ALIBABA_CLOUD_SECURITY_TOKEN`.
    ///
    /// # Errors
    /// [`CredentialsError::MissingEnv`] naming the first missing variable;
    /// [`CredentialsError::Invalid`] for untrimmed values.
    pub fn from_env() -> Result<Self, CredentialsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with an injectable lookup (for tests).
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let get = |variable: &'static str| {
            lookup(variable)
                .filter(|v| !v.is_empty())
                .ok_or(CredentialsError::MissingEnv { variable })
        };
        let id = get(ENV_ACCESS_KEY_ID)?;
        let secret = SecretString::new(get(ENV_ACCESS_KEY_SECRET)?);
        let token = lookup(ENV_SECURITY_TOKEN)
            .filter(|v| !v.is_empty())
            .map(SecretString::new);
        Self::with_name(
            Credentials {
                access_key_id: id,
                access_key_secret: secret,
                security_token: token,
                expiration: None,
            },
            "env",
        )
    }
}

fn check_field(
    source_name: &'static str,
    field: &'static str,
    value: &str,
) -> Result<(), CredentialsError> {
    if value.is_empty() {
        return Err(CredentialsError::Invalid {
            source_name,
            field,
            reason: "empty",
        });
    }
    if value.trim() != value {
        return Err(CredentialsError::Invalid {
            source_name,
            field,
            reason: "has leading or trailing whitespace",
        });
    }
    Ok(())
}

#[async_trait]
impl CredentialsProvider for StaticCredentials {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        if let Some(expiration) = self.credentials.expiration
            && expiration <= Utc::now()
        {
            return Err(CredentialsError::Expired {
                source_name: self.name,
                expiration,
            });
        }
        Ok(self.credentials.clone())
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_passing_failures_are_retryable() {
        let sts = |code: &str, status: u16| CredentialsError::Sts {
            action: "AssumeRole",
            role_arn: "acs:ram::1:role/r".into(),
            source: Box::new(RpcError::Api(Box::new(crate::alibaba::ApiError {
                action: "AssumeRole",
                code: code.into(),
                message: String::new(),
                http_status: status,
                request_id: None,
                retry_after: None,
            }))),
        };
        assert!(sts("Throttling.User", 503).is_retryable());
        assert!(!sts("EntityNotExist.Role", 404).is_retryable());
        let backing_off = CredentialsError::BackingOff {
            provider: "assume_role",
            retry_in: std::time::Duration::from_secs(1),
            source: Arc::new(CredentialsError::Upstream {
                provider: "assume_role",
                upstream: "ecs_ram_role",
                source: Box::new(CredentialsError::MetadataStatus {
                    step: "credentials",
                    status: 502,
                }),
            }),
        };
        assert!(backing_off.is_retryable());
        let refused = CredentialsError::RefreshFailed {
            provider: "oidc_role",
            source: Arc::new(sts("AuthenticationFail.OIDCToken.Expired", 401)),
        };
        assert!(!refused.is_retryable());
        assert!(!CredentialsError::TokenFileEmpty { path: "/t".into() }.is_retryable());
    }

    use std::collections::HashMap;
    use std::sync::Arc;

    use chrono::Duration;

    use super::*;

    #[tokio::test]
    async fn access_key_pairs_are_returned_as_given() {
        let p: Arc<dyn CredentialsProvider> =
            Arc::new(StaticCredentials::access_key("LTAI5tExampleId01", "s3cr3t-marker").unwrap());
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id, "LTAI5tExampleId01");
        assert_eq!(c.access_key_secret.expose(), "s3cr3t-marker");
        assert!(c.security_token.is_none());
        assert_eq!(p.name(), "static");
    }

    #[tokio::test]
    async fn sts_triples_work_until_they_expire() {
        let future = Utc::now() + Duration::hours(1);
        let p = StaticCredentials::sts("STS.abc", "sec", "tok", Some(future)).unwrap();
        let c = p.credentials().await.unwrap();
        assert_eq!(c.security_token.as_ref().unwrap().expose(), "tok");
        assert_eq!(c.signing().security_token.unwrap().expose(), "tok");

        let past = Utc::now() - Duration::seconds(1);
        let p = StaticCredentials::sts("STS.abc", "sec", "tok", Some(past)).unwrap();
        let err = p.credentials().await.unwrap_err();
        assert!(matches!(err, CredentialsError::Expired { .. }));
        assert_eq!(err.metric_label(), "expired");
    }

    #[test]
    fn empty_or_untrimmed_values_are_refused_without_echoing_them() {
        let err = StaticCredentials::access_key("id", "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential field AccessKeySecret from static is invalid: empty"
        );
        let err = StaticCredentials::access_key("id", " secret-marker ").unwrap_err();
        assert!(!err.to_string().contains("secret-marker"));
    }

    #[test]
    fn environment_lookup_reads_the_standard_variables() {
        let env: HashMap<&str, &str> = [
            (ENV_ACCESS_KEY_ID, "LTAI5tEnvironment"),
            (ENV_ACCESS_KEY_SECRET, "env-secret"),
            (ENV_SECURITY_TOKEN, ""),
        ]
        .into();
        let p = StaticCredentials::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(p.name(), "env");
        assert!(p.credentials.security_token.is_none());

        let env: HashMap<&str, &str> = [(ENV_ACCESS_KEY_ID, "LTAI5tEnvironment")].into();
        let err =
            StaticCredentials::from_lookup(|k| env.get(k).map(|v| (*v).to_owned())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"
        );
    }

    #[test]
    fn debug_output_masks_the_id_and_hides_secret_and_token() {
        let c = Credentials::sts(
            "STS.NUxyzVeryLongId42",
            "secret-marker",
            "token-marker",
            None,
        );
        let dbg = format!("{c:?}");
        assert!(dbg.contains("STS.****Id42"), "{dbg}");
        assert!(
            !dbg.contains("secret-marker") && !dbg.contains("token-marker"),
            "{dbg}"
        );
        assert_eq!(mask_id("short"), "****");
    }
}
