//! One interface over the three secret sources, for the sync pipeline and the controller:
//! KMS with RAM credentials ([`KmsClient`], also at a KMS instance endpoint), a KMS instance
//! with a ClientKey ([`InstanceClient`]), and OOS encrypted parameters ([`OosClient`]).
//!
//! Every source answers a [`FetchRequest`] (ack-secret-manager's `key`, `versionStage`,
//! `versionId`) with the same [`SecretValue`], so the pipeline treats them alike, and offers a
//! cheap authenticated [`SecretFetcher::check`] for the store's `Ready` condition.
//!
//! ```text
//!   controller ── Source::{Kms, KmsInstance, Oos} ──(SecretFetcher)──► fetch(): SecretValue
//!                                                                     check(): StoreCheck
//! ```
//!
//! The readiness check asks for a secret that should not exist ([`PROBE_NAME`]): a
//! "not found" (or "no permission" for that name) answer proves the credentials, signature,
//! endpoint and TLS all work without reading any real secret; an authentication or
//! connection failure is returned as the error the condition should show.

use async_trait::async_trait;

use crate::dkms::{InstanceClient, InstanceError, TlsWarning};
use crate::kms::{
    GetSecretValueRequest, KmsClient, KmsError, SecretDataType, SecretType, SecretValue,
};
use crate::oos::{GetSecretParameterRequest, OosClient, OosError};

/// The name the readiness check asks for.
pub const PROBE_NAME: &str = "kmsync-store-readiness-probe";

/// What to fetch: the remote key and which version. The same shape as KMS `GetSecretValue`;
/// for OOS `version_id` must be a parameter version number and `version_stage` is refused.
pub type FetchRequest = GetSecretValueRequest;

/// Why a fetch or a check failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// KMS (RAM credentials).
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// KMS instance (ClientKey).
    #[error(transparent)]
    Instance(#[from] InstanceError),
    /// OOS.
    #[error(transparent)]
    Oos(#[from] OosError),
    /// A request field the source cannot honour.
    #[error("{source_kind} does not support {field}: {reason}")]
    Unsupported {
        /// `oos`, ...
        source_kind: &'static str,
        /// Field, e.g. `versionStage`.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl FetchError {
    /// No such secret / parameter / version / stage.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Kms(e) => e.is_not_found(),
            Self::Instance(e) => e.is_not_found(),
            Self::Oos(e) => e.is_not_found(),
            Self::Unsupported { .. } => false,
        }
    }

    /// Whether repeating later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Kms(e) => e.is_retryable(),
            Self::Instance(e) => e.is_retryable(),
            Self::Oos(e) => e.is_retryable(),
            Self::Unsupported { .. } => false,
        }
    }

    /// The service's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Kms(e) => e.code(),
            Self::Instance(e) => e.code(),
            Self::Oos(e) => e.code(),
            Self::Unsupported { .. } => None,
        }
    }

    /// Bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kms(e) => e.metric_label(),
            Self::Instance(e) => e.metric_label(),
            Self::Oos(e) => e.metric_label(),
            Self::Unsupported { .. } => "unsupported",
        }
    }
}

/// What the probe call answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// Not found: authenticated, and the probe name does not exist (the usual case).
    NotFound,
    /// Authenticated, but the credential may not read the probe name (a policy limited to
    /// some names): fine for readiness.
    NoPermission,
    /// Someone created a secret with the probe name; authenticated all the same.
    Found,
}

/// A successful readiness check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreCheck {
    /// `kms`, `kms-instance` or `oos`.
    pub source_kind: &'static str,
    /// What the probe answered.
    pub answer: ProbeAnswer,
    /// Conditions to surface with `Ready=True` (e.g. `InsecureSkipTLSVerify`).
    pub warnings: Vec<TlsWarning>,
}

/// A secret source. Object-safe: `Arc<dyn SecretFetcher>` in the pipeline, fakes in tests.
#[async_trait]
pub trait SecretFetcher: Send + Sync + std::fmt::Debug {
    /// Fetches one value.
    ///
    /// # Errors
    /// [`FetchError`]; [`FetchError::is_not_found`] for a missing key or version.
    async fn fetch(&self, request: &FetchRequest) -> Result<SecretValue, FetchError>;

    /// The cheap authenticated readiness call (see the module docs).
    ///
    /// # Errors
    /// [`FetchError`] when the store cannot be used (bad credentials, signature, clock,
    /// endpoint, TLS, throttling after retries).
    async fn check(&self) -> Result<StoreCheck, FetchError>;

    /// `kms`, `kms-instance` or `oos`.
    fn source_kind(&self) -> &'static str;
}

/// The three sources.
#[derive(Clone, Debug)]
pub enum Source {
    /// KMS `GetSecretValue` with RAM credentials (shared gateway or instance endpoint).
    Kms(KmsClient),
    /// KMS instance with a ClientKey (`dedicatedKMSAuth`).
    KmsInstance(InstanceClient),
    /// OOS `GetSecretParameter`.
    Oos(OosClient),
}

fn probe_outcome(
    source_kind: &'static str,
    result: Result<(), FetchError>,
    warnings: Vec<TlsWarning>,
) -> Result<StoreCheck, FetchError> {
    let answer = match result {
        Ok(()) => ProbeAnswer::Found,
        Err(e) if e.is_not_found() => ProbeAnswer::NotFound,
        Err(e) if e.code() == Some("Forbidden.NoPermission") => ProbeAnswer::NoPermission,
        Err(e) => return Err(e),
    };
    Ok(StoreCheck {
        source_kind,
        answer,
        warnings,
    })
}

/// Maps a parameter to the common value shape: `VersionId` is the parameter version,
/// `SecretType` `Other("OOS:<Type>")`, data type text, no stages.
fn parameter_value(p: crate::oos::SecretParameter) -> SecretValue {
    SecretValue {
        request_id: p.request_id,
        secret_name: p.name,
        secret_type: SecretType::Other(format!(
            "OOS:{}",
            p.parameter_type.as_deref().unwrap_or("Secret")
        )),
        data_type: SecretDataType::Text,
        data: p.value,
        version_id: p.parameter_version.to_string(),
        version_stages: Vec::new(),
        create_time: p.updated_date.or(p.created_date),
        extended_config: None,
        automatic_rotation: None,
        rotation_interval: None,
        last_rotation_date: None,
        next_rotation_date: None,
    }
}

fn oos_request(request: &FetchRequest) -> Result<GetSecretParameterRequest, FetchError> {
    if request
        .version_stage
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(FetchError::Unsupported {
            source_kind: "oos",
            field: "versionStage",
            reason: "OOS parameters have numbered versions only; use versionId",
        });
    }
    let version = match request.version_id.as_deref().filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or(
            FetchError::Unsupported {
                source_kind: "oos",
                field: "versionId",
                reason: "an OOS parameter version is a number from 1",
            },
        )?),
    };
    Ok(GetSecretParameterRequest {
        name: request.secret_name.clone(),
        parameter_version: version,
    })
}

#[async_trait]
impl SecretFetcher for Source {
    async fn fetch(&self, request: &FetchRequest) -> Result<SecretValue, FetchError> {
        match self {
            Self::Kms(c) => Ok(c.get_secret_value(request).await?),
            Self::KmsInstance(c) => Ok(c.get_secret_value(request).await?),
            Self::Oos(c) => {
                let r = oos_request(request)?;
                Ok(parameter_value(c.get_secret_parameter(&r).await?))
            }
        }
    }

    async fn check(&self) -> Result<StoreCheck, FetchError> {
        let probe = GetSecretValueRequest::new(PROBE_NAME);
        let (result, warnings) = match self {
            Self::Kms(c) => (
                c.get_secret_value(&probe)
                    .await
                    .map(drop)
                    .map_err(FetchError::from),
                Vec::new(),
            ),
            Self::KmsInstance(c) => (
                c.get_secret_value(&probe)
                    .await
                    .map(drop)
                    .map_err(FetchError::from),
                c.warnings().to_vec(),
            ),
            Self::Oos(c) => (
                c.get_secret_parameter(&GetSecretParameterRequest::new(PROBE_NAME))
                    .await
                    .map(drop)
                    .map_err(FetchError::from),
                Vec::new(),
            ),
        };
        probe_outcome(self.source_kind(), result, warnings)
    }

    fn source_kind(&self) -> &'static str {
        match self {
            Self::Kms(_) => "kms",
            Self::KmsInstance(_) => "kms-instance",
            Self::Oos(_) => "oos",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oos_requests_take_numeric_version_ids_and_refuse_stages() {
        let r = oos_request(&FetchRequest::new("/p").version_id("2")).unwrap();
        assert_eq!(r.parameter_version, Some(2));
        assert_eq!(
            oos_request(&FetchRequest::new("/p"))
                .unwrap()
                .parameter_version,
            None
        );
        let e = oos_request(&FetchRequest::new("/p").version_stage("ACSCurrent")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "oos does not support versionStage: OOS parameters have numbered versions only; use versionId"
        );
        assert!(oos_request(&FetchRequest::new("/p").version_id("v1")).is_err());
        assert!(oos_request(&FetchRequest::new("/p").version_id("0")).is_err());
    }

    #[test]
    fn parameters_become_text_secret_values_versioned_by_number() {
        let v = parameter_value(crate::oos::SecretParameter {
            request_id: Some("r".into()),
            name: "/p".into(),
            value: crate::value::SecretBytes::from("v-marker"),
            parameter_version: 3,
            parameter_type: Some("Secret".into()),
            id: None,
            key_id: None,
            description: None,
            created_date: Some("2024-01-01T00:00:00Z".into()),
            updated_date: None,
            tags: Default::default(),
        });
        assert_eq!(v.version_id, "3");
        assert_eq!(v.secret_type, SecretType::Other("OOS:Secret".into()));
        assert_eq!(v.data.expose(), b"v-marker");
        assert_eq!(v.create_time.as_deref(), Some("2024-01-01T00:00:00Z"));
    }
}
