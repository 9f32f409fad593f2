//! What the credential providers need from Kubernetes, behind two small traits so that the
//! controller (kube API), `render` (manifests on disk) and tests can each supply it:
//!
//! * [`SecretSource`]: one key of one Secret (AccessKey ID and secret for `accessKey` /
//!   `accessKeySecret`).
//! * [`ServiceAccountTokens`]: a ServiceAccount's annotations (the RRSA role in
//!   `ack.alibabacloud.com/role-arn`) and a fresh token for it (the TokenRequest API,
//!   `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`).
//!
//! [`MemorySecrets`] and [`MemoryServiceAccounts`] are in-memory implementations for offline
//! tools and tests. Namespaces handed to these traits have already passed the cross-namespace
//! rules ([`super::references`]).

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;

use crate::value::{SecretBytes, SecretString};

/// The ServiceAccount annotation naming the RAM role of RRSA (ACK's convention, used by
/// ack-secret-manager v0.6 `serviceAccountRef`).
pub const ROLE_ARN_ANNOTATION: &str = "ack.alibabacloud.com/role-arn";

/// A boxed error from a backend (kube client error, I/O error, ...).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a Secret key, a ServiceAccount or a token could not be obtained. Messages name the
/// object (`namespace/name`) and key, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No Secret of that name.
    #[error("Secret {namespace}/{name} does not exist")]
    SecretNotFound {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The Secret exists but has no such key in `data` (or `stringData`).
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    KeyNotFound {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The key asked for.
        key: String,
    },
    /// No ServiceAccount of that name.
    #[error("ServiceAccount {namespace}/{name} does not exist")]
    ServiceAccountNotFound {
        /// Namespace.
        namespace: String,
        /// ServiceAccount name.
        name: String,
    },
    /// The backend failed (API error, permission denied, unreadable file, ...).
    #[error("reading {kind} {namespace}/{name} failed")]
    Backend {
        /// `Secret` or `ServiceAccount`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The TokenRequest failed (e.g. the ServiceAccount was deleted, RBAC forbids `create` on
    /// `serviceaccounts/token`, or the audience is not accepted).
    #[error("TokenRequest for ServiceAccount {namespace}/{name} failed")]
    TokenRequest {
        /// Namespace.
        namespace: String,
        /// ServiceAccount name.
        name: String,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl SourceError {
    /// Bounded label for metrics: the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::SecretNotFound { .. } => "secret_not_found",
            Self::KeyNotFound { .. } => "key_not_found",
            Self::ServiceAccountNotFound { .. } => "service_account_not_found",
            Self::Backend { .. } => "backend",
            Self::TokenRequest { .. } => "token_request",
        }
    }
}

/// One key of a Secret with the Secret's `metadata.resourceVersion` (which the credentials
/// registry uses to notice a rotated AccessKey). `Debug` hides the value.
#[derive(Clone, Debug)]
pub struct SecretKeyValue {
    /// The decoded bytes of `data[key]`.
    pub value: SecretBytes,
    /// `metadata.resourceVersion` of the Secret, when known (manifests on disk have none).
    pub resource_version: Option<String>,
}

/// Reads one key of one Secret. Implemented by the controller (reflector cache or API `GET`),
/// by `render` (Secrets from manifest files) and by tests ([`MemorySecrets`]).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// `data[key]` of Secret `namespace/name`.
    ///
    /// # Errors
    /// [`SourceError::SecretNotFound`], [`SourceError::KeyNotFound`] (distinct, so that the
    /// message tells a missing Secret from a typo in `key`), or [`SourceError::Backend`].
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretKeyValue, SourceError>;
}

/// What the RRSA provider needs to know about a ServiceAccount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    /// `metadata.annotations` (the role is under [`ROLE_ARN_ANNOTATION`]).
    pub annotations: BTreeMap<String, String>,
    /// `metadata.resourceVersion`, when known (a changed annotation yields a new provider).
    pub resource_version: Option<String>,
}

/// A token from the TokenRequest API. `Debug` hides the token.
#[derive(Clone, Debug)]
pub struct ServiceAccountToken {
    /// The JWT (`status.token`).
    pub token: SecretString,
    /// `status.expirationTimestamp`, when reported.
    pub expiration: Option<DateTime<Utc>>,
}

/// Reads ServiceAccounts and requests tokens for them (RRSA per ServiceAccount). Implemented by
/// the controller with the kube API (`get serviceaccounts`, `create serviceaccounts/token`) and
/// by tests ([`MemoryServiceAccounts`]).
#[async_trait]
pub trait ServiceAccountTokens: Send + Sync {
    /// The ServiceAccount's annotations and resourceVersion.
    ///
    /// # Errors
    /// [`SourceError::ServiceAccountNotFound`] or [`SourceError::Backend`].
    async fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ServiceAccountInfo, SourceError>;

    /// A new token for `namespace/name` with these `audiences`, valid for
    /// `expiration_seconds` (the API server's minimum is 600).
    ///
    /// # Errors
    /// [`SourceError::ServiceAccountNotFound`] or [`SourceError::TokenRequest`].
    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: u32,
    ) -> Result<ServiceAccountToken, SourceError>;
}

/// Secrets held in memory, keyed by namespace and name. For `render` (Secrets read from
/// manifests) and tests.
#[derive(Default)]
pub struct MemorySecrets {
    secrets: Mutex<HashMap<(String, String), StoredSecret>>,
    reads: AtomicU64,
}

struct StoredSecret {
    data: BTreeMap<String, SecretBytes>,
    resource_version: Option<String>,
}

impl std::fmt::Debug for MemorySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut names: Vec<String> = secrets.keys().map(|(ns, n)| format!("{ns}/{n}")).collect();
        names.sort();
        f.debug_struct("MemorySecrets")
            .field("secrets", &names)
            .finish_non_exhaustive()
    }
}

impl MemorySecrets {
    /// No Secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces Secret `namespace/name` with `data` (key -> bytes).
    pub fn insert(
        &self,
        namespace: &str,
        name: &str,
        data: impl IntoIterator<Item = (String, SecretBytes)>,
        resource_version: Option<&str>,
    ) {
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                (namespace.to_owned(), name.to_owned()),
                StoredSecret {
                    data: data.into_iter().collect(),
                    resource_version: resource_version.map(str::to_owned),
                },
            );
    }

    /// Adds or replaces a Kubernetes Secret object: `data` (already decoded bytes) and
    /// `stringData` (which wins for a key in both, as the API server merges it). A Secret without
    /// namespace goes to `default_namespace`.
    pub fn insert_secret(&self, secret: &Secret, default_namespace: &str) {
        let mut data: BTreeMap<String, SecretBytes> = BTreeMap::new();
        for (k, v) in secret.data.iter().flatten() {
            data.insert(k.clone(), SecretBytes::new(v.0.clone()));
        }
        for (k, v) in secret.string_data.iter().flatten() {
            data.insert(k.clone(), SecretBytes::new(v.as_bytes().to_vec()));
        }
        let namespace = secret
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(default_namespace);
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        self.insert(
            namespace,
            name,
            data,
            secret.metadata.resource_version.as_deref(),
        );
    }

    /// Removes Secret `namespace/name`.
    pub fn remove(&self, namespace: &str, name: &str) {
        self.secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// How many keys were read so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl SecretSource for MemorySecrets {
    async fn secret_key(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<SecretKeyValue, SourceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let secrets = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let secret = secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| SourceError::SecretNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
        let value = secret
            .data
            .get(key)
            .ok_or_else(|| SourceError::KeyNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key: key.to_owned(),
            })?;
        Ok(SecretKeyValue {
            value: value.clone(),
            resource_version: secret.resource_version.clone(),
        })
    }
}

/// Makes a token for `(namespace, name, audiences, expiration_seconds)`.
pub type TokenMinter =
    dyn Fn(&str, &str, &[String], u32) -> Result<ServiceAccountToken, BoxError> + Send + Sync;

/// ServiceAccounts held in memory, with tokens made by a function (in tests, the emulator's
/// OIDC token minter). Counts token requests.
pub struct MemoryServiceAccounts {
    accounts: Mutex<HashMap<(String, String), ServiceAccountInfo>>,
    minter: Box<TokenMinter>,
    token_requests: AtomicU64,
}

impl std::fmt::Debug for MemoryServiceAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryServiceAccounts")
            .field("token_requests", &self.token_requests())
            .finish_non_exhaustive()
    }
}

impl MemoryServiceAccounts {
    /// No ServiceAccounts; tokens come from `minter`.
    pub fn new(
        minter: impl Fn(&str, &str, &[String], u32) -> Result<ServiceAccountToken, BoxError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            accounts: Mutex::new(HashMap::new()),
            minter: Box::new(minter),
            token_requests: AtomicU64::new(0),
        }
    }

    /// Adds or replaces ServiceAccount `namespace/name`.
    pub fn insert(&self, namespace: &str, name: &str, info: ServiceAccountInfo) {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((namespace.to_owned(), name.to_owned()), info);
    }

    /// How many tokens were requested so far.
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    fn get(&self, namespace: &str, name: &str) -> Result<ServiceAccountInfo, SourceError> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| SourceError::ServiceAccountNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }
}

#[async_trait]
impl ServiceAccountTokens for MemoryServiceAccounts {
    async fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ServiceAccountInfo, SourceError> {
        self.get(namespace, name)
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
        expiration_seconds: u32,
    ) -> Result<ServiceAccountToken, SourceError> {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        self.get(namespace, name)?;
        (self.minter)(namespace, name, audiences, expiration_seconds).map_err(|source| {
            SourceError::TokenRequest {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;

    use super::*;

    #[tokio::test]
    async fn missing_secrets_and_missing_keys_are_distinct_errors() {
        let s = MemorySecrets::new();
        s.insert(
            "team-a",
            "ak",
            [("id".to_owned(), SecretBytes::from("LTAIexample"))],
            Some("7"),
        );
        let v = s.secret_key("team-a", "ak", "id").await.unwrap();
        assert_eq!(v.value.expose(), b"LTAIexample");
        assert_eq!(v.resource_version.as_deref(), Some("7"));

        let err = s.secret_key("team-a", "nope", "id").await.unwrap_err();
        assert_eq!(err.to_string(), "Secret team-a/nope does not exist");
        assert_eq!(err.metric_label(), "secret_not_found");
        let err = s.secret_key("team-a", "ak", "secret").await.unwrap_err();
        assert_eq!(err.to_string(), "Secret team-a/ak has no key \"secret\"");
        assert_eq!(s.reads(), 3);
    }

    #[tokio::test]
    async fn kubernetes_secret_objects_merge_data_and_string_data() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("ak".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            data: Some(
                [
                    ("id".to_owned(), ByteString(b"from-data".to_vec())),
                    ("both".to_owned(), ByteString(b"data".to_vec())),
                ]
                .into(),
            ),
            string_data: Some([("both".to_owned(), "stringData".to_owned())].into()),
            ..Secret::default()
        };
        let s = MemorySecrets::new();
        s.insert_secret(&secret, "default");
        assert_eq!(
            s.secret_key("default", "ak", "id")
                .await
                .unwrap()
                .value
                .expose(),
            b"from-data"
        );
        let both = s.secret_key("default", "ak", "both").await.unwrap();
        assert_eq!(both.value.expose(), b"stringData");
        assert_eq!(both.resource_version.as_deref(), Some("42"));
        assert!(!format!("{both:?}").contains("stringData"));
    }

    #[tokio::test]
    async fn token_requests_check_the_service_account_and_count() {
        let sa = MemoryServiceAccounts::new(|ns, name, aud, secs| {
            Ok(ServiceAccountToken {
                token: format!("{ns}.{name}.{}.{secs}", aud.join(",")).into(),
                expiration: None,
            })
        });
        sa.insert("team-a", "app", ServiceAccountInfo::default());
        let t = sa
            .request_token("team-a", "app", &["sts.aliyuncs.com".to_owned()], 600)
            .await
            .unwrap();
        assert_eq!(t.token.expose(), "team-a.app.sts.aliyuncs.com.600");
        let err = sa
            .request_token("team-a", "other", &[], 600)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ServiceAccount team-a/other does not exist"
        );
        assert_eq!(sa.token_requests(), 2);
    }
}
