//! OOS (CloudOps Orchestration Service) encrypted parameters: `GetSecretParameter` over the
//! shared signed-RPC client — the client behind `spec.OOS` stores and `provider: oos`.
//!
//! Wire facts: `shared/docs/alibaba-cloud-protocol.md` ("OOS encrypted parameters") and the
//! official Python SDK `alibabacloud-oos20190601` (`get_secret_parameter_with_options`: RPC
//! style, `POST /`, action `GetSecretParameter`, version `2019-06-01`, parameters `Name`,
//! `ParameterVersion`, `RegionId`, `WithDecryption` in the query, signed like every
//! `alibabacloud-tea-openapi` client: V3 by default, V1 with `signature_algorithm='v2'`). The
//! answer is `{RequestId, Parameter: {Name, Value, Type, ParameterVersion, KeyId, ...}}`;
//! without `WithDecryption=true` `Value` is null, so this client always sends it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kmsync::alibaba::{ClientConfig, EndpointPolicy, EndpointSource, Network, RpcClient, Service};
//! use kmsync::credentials::StaticCredentials;
//! use kmsync::oos::{GetSecretParameterRequest, OosClient};
//!
//! let endpoint = EndpointPolicy::default().resolve(
//!     Service::Oos,
//!     &EndpointSource::Region { region: "cn-hangzhou".into(), network: Network::Public },
//! )?;
//! let client = OosClient::new(
//!     RpcClient::new(ClientConfig::default())?,
//!     endpoint,
//!     Arc::new(StaticCredentials::from_env()?),
//! )?;
//! let p = client
//!     .get_secret_parameter(&GetSecretParameterRequest::new("/prod/db/password"))
//!     .await?;
//! println!("version {} of {}: {} bytes", p.parameter_version, p.name, p.value.len());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::alibaba::response::lenient_u64;
use crate::alibaba::{BodyProblem, Endpoint, RpcClient, RpcError, RpcRequest, Service};
use crate::credentials::{CredentialsError, CredentialsProvider};
use crate::value::SecretBytes;

/// OOS API version.
pub const OOS_API_VERSION: &str = "2019-06-01";
/// The error code of an unknown parameter (or parameter version).
pub const NOT_FOUND_CODE: &str = "EntityNotExists.Parameter";
/// Longest parameter name OOS accepts, in characters.
pub const MAX_NAME_CHARS: usize = 180;

/// Why an OOS call failed. Carries codes, statuses, request ids and names — never values.
#[derive(Debug, thiserror::Error)]
pub enum OosError {
    /// The RPC failed: an OOS error code, an unusable answer, or a connection problem.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The credentials provider could not produce credentials.
    #[error("no credentials for OOS (provider {provider})")]
    Credentials {
        /// Provider name.
        provider: &'static str,
        /// Why.
        #[source]
        source: CredentialsError,
    },
    /// A request the client refuses to send.
    #[error("invalid OOS request: {field} {reason}")]
    InvalidRequest {
        /// Parameter name.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The endpoint was approved for another service.
    #[error("endpoint {endpoint} was resolved for {service}, not OOS")]
    WrongService {
        /// Endpoint URL.
        endpoint: String,
        /// The service it was resolved for.
        service: Service,
    },
}

impl OosError {
    /// OOS error code, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Rpc(e) => e.code(),
            _ => None,
        }
    }

    /// HTTP status, when an answer arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Rpc(e) => e.http_status(),
            _ => None,
        }
    }

    /// True for `EntityNotExists.Parameter` (no such parameter or version).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(NOT_FOUND_CODE)
    }

    /// Whether repeating later may succeed (throttling, 5xx, connection failures,
    /// credentials that could not be had for such a reason).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rpc(e) => e.is_retryable(),
            Self::Credentials { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    /// Bounded metric label: the RPC label for RPC errors, else the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Rpc(e) => e.metric_label(),
            Self::Credentials { .. } => "credentials",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::WrongService { .. } => "wrong_service",
        }
    }
}

/// Parameters of `GetSecretParameter` (`WithDecryption=true` is always sent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetSecretParameterRequest {
    /// Parameter name (1–180 characters).
    pub name: String,
    /// `ParameterVersion` (1..); the latest when `None`.
    pub parameter_version: Option<u32>,
}

impl GetSecretParameterRequest {
    /// The latest version of `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            parameter_version: None,
        }
    }

    /// Selects a version.
    pub fn version(mut self, version: u32) -> Self {
        self.parameter_version = Some(version);
        self
    }
}

/// One version of an encrypted parameter, decrypted. `Debug` never shows the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretParameter {
    /// `RequestId`.
    pub request_id: Option<String>,
    /// `Parameter.Name`.
    pub name: String,
    /// `Parameter.Value`: the UTF-8 bytes of the decrypted value.
    pub value: SecretBytes,
    /// `Parameter.ParameterVersion`.
    pub parameter_version: u64,
    /// `Parameter.Type` (`Secret`).
    pub parameter_type: Option<String>,
    /// `Parameter.Id`.
    pub id: Option<String>,
    /// `Parameter.KeyId`: the KMS key that encrypts it.
    pub key_id: Option<String>,
    /// `Parameter.Description`.
    pub description: Option<String>,
    /// `Parameter.CreatedDate`.
    pub created_date: Option<String>,
    /// `Parameter.UpdatedDate`.
    pub updated_date: Option<String>,
    /// `Parameter.Tags` (string values only).
    pub tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ResponseWire {
    #[serde(rename = "RequestId")]
    request_id: Option<String>,
    #[serde(rename = "Parameter")]
    parameter: Option<ParameterWire>,
}

#[derive(Deserialize)]
struct ParameterWire {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Value")]
    value: Option<String>,
    #[serde(rename = "ParameterVersion", default, deserialize_with = "lenient_u64")]
    parameter_version: Option<u64>,
    #[serde(rename = "Type")]
    parameter_type: Option<String>,
    #[serde(rename = "Id")]
    id: Option<String>,
    #[serde(rename = "KeyId")]
    key_id: Option<String>,
    #[serde(rename = "Description")]
    description: Option<String>,
    #[serde(rename = "CreatedDate")]
    created_date: Option<String>,
    #[serde(rename = "UpdatedDate")]
    updated_date: Option<String>,
    #[serde(rename = "Tags")]
    tags: Option<serde_json::Value>,
}

/// An OOS client bound to one endpoint and one credentials provider. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OosClient {
    rpc: RpcClient,
    endpoint: Endpoint,
    credentials: Arc<dyn CredentialsProvider>,
}

impl OosClient {
    /// A client calling `endpoint` (resolved for [`Service::Oos`]) with `credentials`.
    ///
    /// # Errors
    /// [`OosError::WrongService`] when the endpoint was resolved for another service.
    pub fn new(
        rpc: RpcClient,
        endpoint: Endpoint,
        credentials: Arc<dyn CredentialsProvider>,
    ) -> Result<Self, OosError> {
        if endpoint.service() != Service::Oos {
            return Err(OosError::WrongService {
                endpoint: endpoint.to_string(),
                service: endpoint.service(),
            });
        }
        Ok(Self {
            rpc,
            endpoint,
            credentials,
        })
    }

    /// The endpoint this client calls.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GetSecretParameter` with `WithDecryption=true`.
    ///
    /// # Errors
    /// [`OosError`]: `EntityNotExists.Parameter` ([`OosError::is_not_found`]), other OOS codes,
    /// throttling after retries, an answer without `Parameter.Value`, `Name` or
    /// `ParameterVersion`; [`OosError::InvalidRequest`] for an empty or too long name or
    /// version 0.
    pub async fn get_secret_parameter(
        &self,
        request: &GetSecretParameterRequest,
    ) -> Result<SecretParameter, OosError> {
        let rpc = build_request(request)?;
        let creds =
            self.credentials
                .credentials()
                .await
                .map_err(|source| OosError::Credentials {
                    provider: self.credentials.name(),
                    source,
                })?;
        let response = self.rpc.call(&self.endpoint, creds.signing(), &rpc).await?;
        let wire: ResponseWire = response.json()?;
        let missing = |field: &str| {
            OosError::Rpc(response.unexpected(BodyProblem::MissingField {
                field: field.to_owned(),
            }))
        };
        let p = wire.parameter.ok_or_else(|| missing("Parameter"))?;
        let name = p.name.ok_or_else(|| missing("Parameter.Name"))?;
        let value = zeroize::Zeroizing::new(p.value.ok_or_else(|| missing("Parameter.Value"))?);
        let parameter_version = p
            .parameter_version
            .ok_or_else(|| missing("Parameter.ParameterVersion"))?;
        let tags = match p.tags {
            Some(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(SecretParameter {
            request_id: wire.request_id.or_else(|| response.request_id.clone()),
            name,
            value: SecretBytes::new(value.as_bytes().to_vec()),
            parameter_version,
            parameter_type: p.parameter_type,
            id: p.id,
            key_id: p.key_id,
            description: p.description,
            created_date: p.created_date,
            updated_date: p.updated_date,
            tags,
        })
    }
}

/// The RPC request for `GetSecretParameter`.
pub(crate) fn build_request(r: &GetSecretParameterRequest) -> Result<RpcRequest, OosError> {
    if r.name.is_empty() {
        return Err(OosError::InvalidRequest {
            field: "Name",
            reason: "is empty",
        });
    }
    if r.name.chars().count() > MAX_NAME_CHARS {
        return Err(OosError::InvalidRequest {
            field: "Name",
            reason: "is longer than 180 characters",
        });
    }
    if r.parameter_version == Some(0) {
        return Err(OosError::InvalidRequest {
            field: "ParameterVersion",
            reason: "starts at 1",
        });
    }
    Ok(RpcRequest::new(OOS_API_VERSION, "GetSecretParameter")
        .param("Name", r.name.clone())
        .param("WithDecryption", "true")
        .opt_param(
            "ParameterVersion",
            r.parameter_version.map(|v| v.to_string()),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_always_ask_for_decryption_and_carry_the_version() {
        let r = build_request(&GetSecretParameterRequest::new("/prod/db").version(3)).unwrap();
        assert_eq!((r.version, r.action), ("2019-06-01", "GetSecretParameter"));
        let params: Vec<(&str, &str)> = r
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("Name", "/prod/db"),
                ("ParameterVersion", "3"),
                ("WithDecryption", "true")
            ]
        );
        let latest = build_request(&GetSecretParameterRequest::new("p")).unwrap();
        assert!(!latest.params.contains_key("ParameterVersion"));
        for bad in [
            GetSecretParameterRequest::new(""),
            GetSecretParameterRequest::new("x".repeat(181)),
            GetSecretParameterRequest::new("p").version(0),
        ] {
            assert!(matches!(
                build_request(&bad),
                Err(OosError::InvalidRequest { .. })
            ));
        }
    }
}
