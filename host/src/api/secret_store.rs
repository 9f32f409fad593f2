//! `SecretStore` and `ClusterSecretStore`: how kmsync authenticates to KMS or OOS.
//!
//! Field names are ack-secret-manager's (`KMS`, `OOS`, `KMSAuth`, `OOSAuth`,
//! `dedicatedKMSAuth`, `ramRoleARN`, `oidcProviderARN`, ...), so its manifests apply unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CONDITION_READY, Condition, NamespaceCondition, SecretKeyRef, ServiceAccountRef,
    find_condition, non_empty,
};
use super::duration::parse_go_duration;

/// Which Alibaba Cloud service a store reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// KMS Secrets Manager (`GetSecretValue`).
    Kms,
    /// OOS encrypted parameters (`GetSecretParameter`).
    Oos,
}

/// Desired state of a SecretStore: exactly one of `KMS` or `OOS`, each holding how to
/// authenticate.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "alibabacloud.com",
    version = "v1alpha1",
    kind = "SecretStore",
    namespaced,
    status = "SecretStoreStatus",
    shortname = "ss",
    category = "kmsync",
    derive = "PartialEq",
    doc = "A SecretStore says how kmsync authenticates to Alibaba Cloud KMS Secrets Manager (`spec.KMS`) or OOS encrypted parameters (`spec.OOS`). ExternalSecrets in the same namespace name it in `secretStoreRef`.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.KMS) != has(self.OOS)", "message": "set exactly one of spec.KMS or spec.OOS"}
]))]
pub struct SecretStoreSpec {
    /// Read secrets from KMS Secrets Manager.
    #[serde(rename = "KMS", skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsProvider>,
    /// Read encrypted parameters from OOS (CloudOps Orchestration Service).
    #[serde(rename = "OOS", skip_serializing_if = "Option::is_none")]
    pub oos: Option<OosProvider>,
}

/// Desired state of a ClusterSecretStore: like a SecretStore, plus `conditions` limiting which
/// namespaces may use it and an optional `keyNamePolicy` limiting which remote keys each
/// namespace may read through it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "alibabacloud.com",
    version = "v1alpha1",
    kind = "ClusterSecretStore",
    status = "SecretStoreStatus",
    shortname = "css",
    category = "kmsync",
    derive = "PartialEq",
    doc = "A ClusterSecretStore is a cluster-wide SecretStore: ExternalSecrets in any namespace allowed by `spec.conditions` may name it with `secretStoreRef.kind: ClusterSecretStore`. References to credential Secrets and ServiceAccounts must name their namespace.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.KMS) != has(self.OOS)", "message": "set exactly one of spec.KMS or spec.OOS"}
]))]
pub struct ClusterSecretStoreSpec {
    /// Read secrets from KMS Secrets Manager.
    #[serde(rename = "KMS", skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsProvider>,
    /// Read encrypted parameters from OOS.
    #[serde(rename = "OOS", skip_serializing_if = "Option::is_none")]
    pub oos: Option<OosProvider>,
    /// Namespaces allowed to use this store; the conditions are ORed. Unset: every namespace
    /// may use it (as in ack-secret-manager) — set it unless that is really meant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<NamespaceCondition>>,
    /// kmsync addition: which remote keys (KMS secret names, OOS parameter names) each
    /// namespace may read through this store. Unset: any key the store's credential can read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name_policy: Option<KeyNamePolicy>,
}

/// `spec.KMS`: authenticate to KMS with either the shared gateway credentials (`KMSAuth`) or a
/// dedicated KMS instance's application access point (`dedicatedKMSAuth`), not both. `KMS: {}`
/// means the controller's own credentials (environment, or the node's RAM role when enabled).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.KMSAuth) && has(self.dedicatedKMSAuth))", "message": "set at most one of KMSAuth or dedicatedKMSAuth"}
]))]
pub struct KmsProvider {
    /// Credentials for the KMS API (shared or dedicated gateway endpoints).
    #[serde(rename = "KMSAuth", skip_serializing_if = "Option::is_none")]
    pub kms_auth: Option<CloudAuth>,
    /// Client key of a KMS instance application access point (AAP). Present in
    /// ack-secret-manager v0.5, removed in v0.6, supported again by kmsync.
    #[serde(rename = "dedicatedKMSAuth", skip_serializing_if = "Option::is_none")]
    pub dedicated_kms_auth: Option<DedicatedKmsAuth>,
}

/// `spec.OOS`: credentials for OOS encrypted parameters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct OosProvider {
    /// Credentials for the OOS API; `{}` or unset means the controller's own credentials.
    #[serde(rename = "OOSAuth", skip_serializing_if = "Option::is_none")]
    pub oos_auth: Option<CloudAuth>,
}

/// How to obtain Alibaba Cloud credentials (`KMSAuth` / `OOSAuth`). When several methods are
/// set, kmsync uses the first that applies: `serviceAccountRef` (RRSA with that
/// ServiceAccount's token), `oidcProviderARN` + `ramRoleARN` (RRSA with the controller's token
/// file), `accessKey` + `ramRoleARN` (AssumeRole), plain `accessKey`. A `remoteRamRoleARN` is
/// then assumed on top of the result (cross-account).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudAuth {
    /// Secret key holding the AccessKey ID. Set together with `accessKeySecret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<SecretKeyRef>,
    /// Secret key holding the AccessKey secret. Set together with `accessKey`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<SecretKeyRef>,
    /// RAM role to assume, `acs:ram::<account>:role/<name>`: with `oidcProviderARN` via
    /// AssumeRoleWithOIDC (RRSA), with an AccessKey via AssumeRole.
    #[serde(rename = "ramRoleARN", skip_serializing_if = "Option::is_none")]
    pub ram_role_arn: Option<String>,
    /// Session name for the assumed role (2–64 characters of `[A-Za-z0-9.@_-]`); default
    /// `kmsync`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ram_role_session_name: Option<String>,
    /// RAM OIDC provider, `acs:ram::<account>:oidc-provider/<name>` (RRSA).
    #[serde(rename = "oidcProviderARN", skip_serializing_if = "Option::is_none")]
    pub oidc_provider_arn: Option<String>,
    /// Path of the OIDC token file inside the controller pod; default
    /// `$ALIBABA_CLOUD_OIDC_TOKEN_FILE`, else the first that exists of
    /// `/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token` (ACK RRSA) and
    /// `/var/run/secrets/tokens/ack-secret-manager` (honoured by kmsync; ack ignored it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_token_file_path: Option<String>,
    /// Lifetime of assumed-role credentials: whole seconds (`"3600"`) or a Go duration
    /// (`"1h"`), 900s–43200s; default 3600s (honoured by kmsync; ack ignored it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_session_expiration: Option<String>,
    /// Cross-account role assumed with the credentials the other fields produce,
    /// `acs:ram::<other-account>:role/<name>`.
    #[serde(rename = "remoteRamRoleARN", skip_serializing_if = "Option::is_none")]
    pub remote_ram_role_arn: Option<String>,
    /// Accepted alias of `remoteRamRoleARN`, spelled as in ack-secret-manager's README (ack
    /// itself silently ignored this spelling). If both are set they must be equal.
    #[serde(rename = "remoteRamRoleArn", skip_serializing_if = "Option::is_none")]
    pub remote_ram_role_arn_alias: Option<String>,
    /// Session name for the cross-account role; default `kmsync`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ram_role_session_name: Option<String>,
    /// ServiceAccount whose token is exchanged for credentials (RRSA per ServiceAccount); the
    /// role comes from its `ack.alibabacloud.com/role-arn` annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountRef>,
}

/// Default session name for assumed roles.
pub const DEFAULT_SESSION_NAME: &str = "kmsync";
/// The OIDC token file ack-secret-manager's chart projects the token to (the credentials
/// builder tries `$ALIBABA_CLOUD_OIDC_TOKEN_FILE` and ACK's RRSA mount first; see
/// `credentials::oidc::DEFAULT_TOKEN_FILES`).
pub const DEFAULT_OIDC_TOKEN_FILE: &str = "/var/run/secrets/tokens/ack-secret-manager";
/// Default lifetime of assumed-role credentials.
pub const DEFAULT_ROLE_SESSION_EXPIRATION: Duration = Duration::from_secs(3600);
/// Shortest lifetime STS grants.
pub const MIN_ROLE_SESSION_EXPIRATION: Duration = Duration::from_secs(900);
/// Longest lifetime STS grants (the role's own maximum may be lower).
pub const MAX_ROLE_SESSION_EXPIRATION: Duration = Duration::from_secs(43200);

/// The credential method [`CloudAuth::method`] picks, in kmsync's order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod<'a> {
    /// RRSA with a token for this ServiceAccount (TokenRequest API).
    ServiceAccount(&'a ServiceAccountRef),
    /// RRSA with the controller's projected token file.
    Oidc {
        /// OIDC provider ARN.
        provider_arn: &'a str,
        /// Role to assume.
        role_arn: &'a str,
    },
    /// AccessKey, then AssumeRole into `role_arn`.
    AccessKeyAssumeRole {
        /// AccessKey ID reference.
        access_key: &'a SecretKeyRef,
        /// AccessKey secret reference.
        access_key_secret: &'a SecretKeyRef,
        /// Role to assume.
        role_arn: &'a str,
    },
    /// Plain AccessKey.
    AccessKey {
        /// AccessKey ID reference.
        access_key: &'a SecretKeyRef,
        /// AccessKey secret reference.
        access_key_secret: &'a SecretKeyRef,
    },
    /// Nothing configured: the controller's own credentials (if the operator enabled them).
    Ambient,
}

impl CloudAuth {
    /// The method kmsync uses, following the documented order of preference.
    pub fn method(&self) -> AuthMethod<'_> {
        if let Some(sa) = &self.service_account_ref {
            return AuthMethod::ServiceAccount(sa);
        }
        let role = non_empty(&self.ram_role_arn);
        if let (Some(provider_arn), Some(role_arn)) = (non_empty(&self.oidc_provider_arn), role) {
            return AuthMethod::Oidc {
                provider_arn,
                role_arn,
            };
        }
        if let (Some(access_key), Some(access_key_secret)) =
            (&self.access_key, &self.access_key_secret)
        {
            return match role {
                Some(role_arn) => AuthMethod::AccessKeyAssumeRole {
                    access_key,
                    access_key_secret,
                    role_arn,
                },
                None => AuthMethod::AccessKey {
                    access_key,
                    access_key_secret,
                },
            };
        }
        AuthMethod::Ambient
    }

    /// Effective cross-account role: `remoteRamRoleARN`, else the README spelling
    /// `remoteRamRoleArn`, else none.
    pub fn remote_role_arn(&self) -> Option<&str> {
        non_empty(&self.remote_ram_role_arn).or_else(|| non_empty(&self.remote_ram_role_arn_alias))
    }

    /// Effective session name for `ramRoleARN`; default [`DEFAULT_SESSION_NAME`].
    pub fn role_session_name(&self) -> &str {
        non_empty(&self.ram_role_session_name).unwrap_or(DEFAULT_SESSION_NAME)
    }

    /// Effective session name for the cross-account role; default [`DEFAULT_SESSION_NAME`].
    pub fn remote_role_session_name(&self) -> &str {
        non_empty(&self.remote_ram_role_session_name).unwrap_or(DEFAULT_SESSION_NAME)
    }

    /// The OIDC token file path, or [`DEFAULT_OIDC_TOKEN_FILE`] (ack-secret-manager's). The
    /// credentials builder resolves an unset path to a list of candidates instead.
    pub fn oidc_token_file_path(&self) -> &str {
        non_empty(&self.oidc_token_file_path).unwrap_or(DEFAULT_OIDC_TOKEN_FILE)
    }

    /// Effective lifetime of assumed-role credentials (default one hour). Errors name the
    /// input; the 900s–43200s range is checked by validation, not here.
    pub fn role_session_expiration(&self) -> Result<Duration, RoleSessionExpirationError> {
        match non_empty(&self.role_session_expiration) {
            None => Ok(DEFAULT_ROLE_SESSION_EXPIRATION),
            Some(s) => parse_session_expiration(s),
        }
    }
}

/// `roleSessionExpiration` could not be read as seconds or as a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "roleSessionExpiration {value:?} is neither whole seconds (\"3600\") nor a duration (\"1h\")"
)]
pub struct RoleSessionExpirationError {
    /// The value as written.
    pub value: String,
}

fn parse_session_expiration(s: &str) -> Result<Duration, RoleSessionExpirationError> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| RoleSessionExpirationError { value: s.into() });
    }
    parse_go_duration(s).map_err(|_| RoleSessionExpirationError { value: s.into() })
}

/// `dedicatedKMSAuth`: a dedicated KMS instance reached through its application access point
/// with a client key (ack-secret-manager v0.5 field names).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DedicatedKmsAuth {
    /// Always `https` (the only protocol the instance gateway speaks).
    pub protocol: String,
    /// The KMS instance ID, e.g. `kst-hzz6...`; kmsync connects to
    /// `<endpoint>.cryptoservice.kms.aliyuncs.com`.
    #[schemars(length(min = 1))]
    pub endpoint: String,
    /// CA certificate(s) of the instance, base64-encoded PEM. Unset: the instance CA of the
    /// region that kmsync ships.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Skip TLS certificate verification. Dangerous; kmsync only honours it when set to true
    /// explicitly and reports a warning condition while it is on.
    #[serde(rename = "ignoreSSL", skip_serializing_if = "Option::is_none")]
    pub ignore_ssl: Option<bool>,
    /// Secret key holding the client key file content (JSON with `KeyId` and
    /// `PrivateKeyData`).
    pub client_key_content: SecretKeyRef,
    /// Secret key holding the client key password.
    pub password: SecretKeyRef,
}

impl DedicatedKmsAuth {
    /// True only when `ignoreSSL: true` was written explicitly.
    pub fn ignore_ssl(&self) -> bool {
        self.ignore_ssl == Some(true)
    }
}

/// kmsync addition on ClusterSecretStores: the remote keys a namespace may read.
///
/// A key is allowed when it matches one of `allowedKeys`. A pattern is matched against the
/// whole key (KMS secret name or OOS parameter name): `*` matches any run of characters
/// (including `/`), `?` exactly one, and `{namespace}` is replaced by the ExternalSecret's
/// namespace first. Example: `["{namespace}/*", "shared-*"]` lets namespace `team-a` read
/// `team-a/db` and `shared-ca` but not `team-b/db`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyNamePolicy {
    /// Glob patterns of the remote keys a namespace may read (1–64). Each is matched against
    /// the whole key: `*` matches any run of characters (including `/`), `?` exactly one, and
    /// `{namespace}` is first replaced by the ExternalSecret's namespace. Example:
    /// `["{namespace}/*", "shared-*"]` lets `team-a` read `team-a/db` and `shared-ca`, not
    /// `team-b/db`.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 512)))]
    pub allowed_keys: Vec<String>,
}

/// Placeholder in [`KeyNamePolicy`] patterns replaced by the ExternalSecret's namespace.
pub const NAMESPACE_PLACEHOLDER: &str = "{namespace}";

impl KeyNamePolicy {
    /// True when `namespace` may read `key` through the store.
    pub fn allows(&self, namespace: &str, key: &str) -> bool {
        self.allowed_keys.iter().any(|p| {
            let pattern = p.replace(NAMESPACE_PLACEHOLDER, namespace);
            glob_match(pattern.as_bytes(), key.as_bytes())
        })
    }
}

/// Matches `text` against a glob with `*` (any run) and `?` (one byte); other bytes literal.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) && pattern[p] != b'*'
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// What a store reports (`status`). Written by the controller only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreStatus {
    /// `Ready`: whether the credentials could be resolved and used (reason, message,
    /// observedGeneration, lastTransitionTime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// ack-secret-manager v0.6 field; kmsync always reports `ReadOnly`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<StoreCapabilities>,
    /// `metadata.generation` last processed by the controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl SecretStoreStatus {
    /// The `Ready` condition, if reported.
    pub fn ready(&self) -> Option<&Condition> {
        find_condition(
            self.conditions.as_deref().unwrap_or_default(),
            CONDITION_READY,
        )
    }
}

/// What the store can do (ack-secret-manager v0.6 field): `ReadOnly`, `WriteOnly` or
/// `ReadWrite`. kmsync stores are always `ReadOnly`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StoreCapabilities {
    /// Secrets can be read.
    ReadOnly,
    /// Secrets can be written.
    WriteOnly,
    /// Both.
    ReadWrite,
}

/// The parts of a store's spec that SecretStore and ClusterSecretStore share, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct StoreProvider<'a> {
    /// `spec.KMS`.
    pub kms: Option<&'a KmsProvider>,
    /// `spec.OOS`.
    pub oos: Option<&'a OosProvider>,
}

impl<'a> StoreProvider<'a> {
    /// The backend this store reads from; `None` when neither or both of `KMS`/`OOS` are set
    /// (an invalid store).
    pub fn backend(&self) -> Option<Backend> {
        match (self.kms, self.oos) {
            (Some(_), None) => Some(Backend::Kms),
            (None, Some(_)) => Some(Backend::Oos),
            _ => None,
        }
    }

    /// The shared-gateway credentials (`KMSAuth` or `OOSAuth`), if any.
    pub fn cloud_auth(&self) -> Option<&'a CloudAuth> {
        match (self.kms, self.oos) {
            (Some(kms), None) => kms.kms_auth.as_ref(),
            (None, Some(oos)) => oos.oos_auth.as_ref(),
            _ => None,
        }
    }

    /// The dedicated KMS instance settings, if any.
    pub fn dedicated_kms(&self) -> Option<&'a DedicatedKmsAuth> {
        self.kms.and_then(|k| k.dedicated_kms_auth.as_ref())
    }
}

impl SecretStoreSpec {
    /// The provider part of the spec.
    pub fn provider(&self) -> StoreProvider<'_> {
        StoreProvider {
            kms: self.kms.as_ref(),
            oos: self.oos.as_ref(),
        }
    }
}

impl ClusterSecretStoreSpec {
    /// The provider part of the spec.
    pub fn provider(&self) -> StoreProvider<'_> {
        StoreProvider {
            kms: self.kms.as_ref(),
            oos: self.oos.as_ref(),
        }
    }

    /// True when an ExternalSecret in namespace `name` (with `labels`) may use this store: no
    /// `conditions` set, or any condition matches.
    pub fn namespace_allowed(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        match &self.conditions {
            None => true,
            Some(conds) => conds.iter().any(|c| c.matches(name, labels)),
        }
    }

    /// True when namespace `namespace` may read remote key `key` through this store: no
    /// `keyNamePolicy`, or the policy allows it.
    pub fn key_allowed(&self, namespace: &str, key: &str) -> bool {
        self.key_name_policy
            .as_ref()
            .is_none_or(|p| p.allows(namespace, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sref(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            namespace: None,
            key: key.into(),
        }
    }

    #[test]
    fn auth_method_follows_the_documented_order() {
        let mut auth = CloudAuth {
            access_key: Some(sref("ak", "id")),
            access_key_secret: Some(sref("ak", "secret")),
            ..CloudAuth::default()
        };
        assert!(matches!(auth.method(), AuthMethod::AccessKey { .. }));
        auth.ram_role_arn = Some("acs:ram::1:role/r".into());
        assert!(matches!(
            auth.method(),
            AuthMethod::AccessKeyAssumeRole {
                role_arn: "acs:ram::1:role/r",
                ..
            }
        ));
        auth.oidc_provider_arn = Some("acs:ram::1:oidc-provider/p".into());
        assert!(matches!(auth.method(), AuthMethod::Oidc { .. }));
        auth.service_account_ref = Some(ServiceAccountRef {
            name: "sa".into(),
            namespace: None,
            audiences: None,
        });
        assert!(matches!(auth.method(), AuthMethod::ServiceAccount(sa) if sa.name == "sa"));
        assert_eq!(CloudAuth::default().method(), AuthMethod::Ambient);
    }

    #[test]
    fn empty_strings_count_as_unset_like_in_ack() {
        let auth = CloudAuth {
            ram_role_arn: Some(String::new()),
            oidc_provider_arn: Some("acs:ram::1:oidc-provider/p".into()),
            ram_role_session_name: Some(String::new()),
            remote_ram_role_session_name: Some(String::new()),
            ..CloudAuth::default()
        };
        assert_eq!(auth.method(), AuthMethod::Ambient);
        assert_eq!(auth.role_session_name(), "kmsync");
        assert_eq!(auth.remote_role_session_name(), "kmsync");
        assert_eq!(auth.oidc_token_file_path(), DEFAULT_OIDC_TOKEN_FILE);
    }

    #[test]
    fn remote_role_accepts_the_readme_spelling() {
        let mut auth = CloudAuth {
            remote_ram_role_arn_alias: Some("acs:ram::2:role/x".into()),
            ..CloudAuth::default()
        };
        assert_eq!(auth.remote_role_arn(), Some("acs:ram::2:role/x"));
        auth.remote_ram_role_arn = Some("acs:ram::2:role/y".into());
        assert_eq!(auth.remote_role_arn(), Some("acs:ram::2:role/y"));
    }

    #[test]
    fn role_session_expiration_reads_seconds_or_durations() {
        let with = |s: &str| CloudAuth {
            role_session_expiration: Some(s.into()),
            ..CloudAuth::default()
        };
        assert_eq!(
            CloudAuth::default().role_session_expiration(),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            with("1800").role_session_expiration(),
            Ok(Duration::from_secs(1800))
        );
        assert_eq!(
            with("2h").role_session_expiration(),
            Ok(Duration::from_secs(7200))
        );
        assert_eq!(
            with("soon").role_session_expiration(),
            Err(RoleSessionExpirationError {
                value: "soon".into()
            })
        );
    }

    #[test]
    fn key_name_policy_substitutes_the_namespace() {
        let policy = KeyNamePolicy {
            allowed_keys: vec!["{namespace}/*".into(), "shared-?a".into()],
        };
        assert!(policy.allows("team-a", "team-a/db"));
        assert!(policy.allows("team-a", "team-a/nested/db"));
        assert!(!policy.allows("team-a", "team-b/db"));
        assert!(!policy.allows("team-a", "team-a"));
        assert!(policy.allows("team-b", "shared-ca"));
        assert!(!policy.allows("team-b", "shared-ca2"));
    }

    #[test]
    fn glob_handles_multiple_stars_and_literals() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(glob_match(b"a*b*c", b"abbbc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(glob_match(b"**x", b"x"));
        assert!(!glob_match(b"abc", b"abd"));
    }

    #[test]
    fn cluster_store_without_conditions_or_policy_allows_everything() {
        let spec = ClusterSecretStoreSpec {
            kms: Some(KmsProvider {
                kms_auth: None,
                dedicated_kms_auth: None,
            }),
            oos: None,
            conditions: None,
            key_name_policy: None,
        };
        assert!(spec.namespace_allowed("any", &BTreeMap::new()));
        assert!(spec.key_allowed("any", "any/key"));
        assert_eq!(spec.provider().backend(), Some(Backend::Kms));
        let spec = ClusterSecretStoreSpec {
            conditions: Some(vec![NamespaceCondition {
                namespace_selector: None,
                namespaces: Some(vec!["prod".into()]),
                namespace_regexes: None,
            }]),
            ..spec
        };
        assert!(spec.namespace_allowed("prod", &BTreeMap::new()));
        assert!(!spec.namespace_allowed("dev", &BTreeMap::new()));
    }
}
