//! [`InstanceClient`]: `GetSecretValue` through a KMS instance gateway, signed with a ClientKey.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{TimeDelta, Utc};
use prost::Message as _;
use zeroize::Zeroizing;

use super::client_key::ClientKey;
use super::error::{InstanceBodyProblem, InstanceError};
use super::proto;
use super::sign::{bearer, request_headers, string_to_sign};
use super::tls::{InstanceTrust, TlsWarning, client_config};
use crate::alibaba::error::sanitize_message;
use crate::alibaba::retry::retry_after;
use crate::alibaba::transport::{
    BodyError, HttpSettings, TransportKind, classify, http_client, read_capped, with_retries,
};
use crate::alibaba::{ApiError, Endpoint, RetryPolicy, Service};
use crate::kms::{GetSecretValueRequest, SecretDataType, SecretType, SecretValue};
use crate::value::SecretBytes;

/// The only API name this client calls.
const GET_SECRET_VALUE: &str = "GetSecretValue";

/// Settings of an [`InstanceClient`].
#[derive(Clone, Debug)]
pub struct InstanceClientConfig {
    /// Which server certificates are accepted.
    pub trust: InstanceTrust,
    /// TCP + TLS connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Whole-request timeout per attempt (default 10 s).
    pub request_timeout: Duration,
    /// Retries of throttling, 5xx and connection failures: the shared KMS policy
    /// (`alibaba::retry`; the instance SDKs retry `Rejected.Throttling` as well).
    pub retry: RetryPolicy,
    /// Largest answer accepted, in bytes (default 1 MiB; a secret is at most 64 KiB).
    pub max_body_bytes: usize,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Host names resolved to fixed addresses instead of DNS, e.g.
    /// `("kst-test.cryptoservice.kms.aliyuncs.com", 127.0.0.1:8443)` to reach an emulator on
    /// loopback while TLS still checks the instance host name (tests, `--resolve`).
    pub resolve: Vec<(String, SocketAddr)>,
    /// Added to the local clock for the `date` header (default zero). The gateway refuses
    /// dates more than 15 minutes off (`RequestTimeTooSkewed`).
    pub clock_offset: TimeDelta,
}

impl InstanceClientConfig {
    /// Defaults with the given trust.
    pub fn new(trust: InstanceTrust) -> Self {
        Self {
            trust,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_body_bytes: 1024 * 1024,
            user_agent: format!("kmsync/{}", env!("CARGO_PKG_VERSION")),
            resolve: Vec::new(),
            clock_offset: TimeDelta::zero(),
        }
    }
}

/// A client of one KMS instance gateway with one ClientKey. Cheap to clone.
#[derive(Clone, Debug)]
pub struct InstanceClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    key: Arc<ClientKey>,
    config: Arc<InstanceClientConfig>,
    warnings: Vec<TlsWarning>,
}

impl InstanceClient {
    /// Builds a client for `endpoint` (resolved for [`Service::Kms`], normally from
    /// `EndpointSource::KmsInstance`). A [`TlsWarning`] for `ignoreSSL` is logged here and
    /// kept in [`warnings`](Self::warnings).
    ///
    /// # Errors
    /// [`InstanceError::InvalidRequest`] for an endpoint of another service;
    /// [`InstanceError::TlsSetup`] / [`InstanceError::Tls`] / [`InstanceError::ClientBuild`].
    pub fn new(
        endpoint: Endpoint,
        key: Arc<ClientKey>,
        config: InstanceClientConfig,
    ) -> Result<Self, InstanceError> {
        if endpoint.service() != Service::Kms {
            return Err(InstanceError::InvalidRequest {
                field: "endpoint",
                reason: "was resolved for another service than KMS",
            });
        }
        let http = http_client(HttpSettings {
            tls: client_config(&config.trust)?,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            user_agent: Some(&config.user_agent),
            resolve: &config.resolve,
        })
        .map_err(|source| InstanceError::ClientBuild { source })?;
        let warnings: Vec<TlsWarning> = config.trust.warning().into_iter().collect();
        for w in &warnings {
            tracing::warn!(endpoint = %endpoint, key_id = key.key_id(), reason = w.reason, "{}", w.message);
        }
        Ok(Self {
            http,
            endpoint,
            key,
            config: Arc::new(config),
            warnings,
        })
    }

    /// The endpoint called.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The ClientKey's KeyId.
    pub fn key_id(&self) -> &str {
        self.key.key_id()
    }

    /// Conditions to surface (today only `InsecureSkipTLSVerify`).
    pub fn warnings(&self) -> &[TlsWarning] {
        &self.warnings
    }

    /// `GetSecretValue` by name (or ARN), stage or version id, as the shared KMS API. Binary
    /// secrets are base64-decoded; the result is the same [`SecretValue`] the RAM-credential
    /// [`crate::kms::KmsClient`] returns.
    ///
    /// # Errors
    /// [`InstanceError`]: an API error (`Forbidden.ResourceNotFound`, `SignatureNotMatch`,
    /// `Unauthorized`, `RequestTimeTooSkewed`, `Forbidden.NoPermission`, throttling after
    /// retries), an unusable answer, an untrusted certificate, a connection failure.
    pub async fn get_secret_value(
        &self,
        request: &GetSecretValueRequest,
    ) -> Result<SecretValue, InstanceError> {
        if request.secret_name.is_empty() {
            return Err(InstanceError::InvalidRequest {
                field: "SecretName",
                reason: "is empty",
            });
        }
        let body = proto::GetSecretValueRequest {
            secret_name: request.secret_name.clone(),
            version_stage: request.version_stage.clone().unwrap_or_default(),
            version_id: request.version_id.clone().unwrap_or_default(),
            fetch_extended_config: request.fetch_extended_config,
        }
        .encode_to_vec();
        let (status, request_id, bytes) = self.call(GET_SECRET_VALUE, body).await?;
        let host = self.endpoint.host_header();
        let unexpected = |problem| InstanceError::UnexpectedResponse {
            action: GET_SECRET_VALUE,
            host: host.clone(),
            http_status: status,
            request_id: request_id.clone(),
            problem,
        };
        let mut wire = proto::GetSecretValueResponse::decode(bytes.as_slice()).map_err(|_| {
            unexpected(InstanceBodyProblem::NotProtobuf {
                message: "GetSecretValueResponse",
            })
        })?;
        let data = Zeroizing::new(std::mem::take(&mut wire.secret_data));
        if wire.secret_name.is_empty() {
            return Err(unexpected(InstanceBodyProblem::MissingField {
                field: "SecretName",
            }));
        }
        if wire.version_id.is_empty() {
            return Err(unexpected(InstanceBodyProblem::MissingField {
                field: "VersionId",
            }));
        }
        let data_type = match wire.secret_data_type.as_str() {
            "" | "text" => SecretDataType::Text,
            "binary" => SecretDataType::Binary,
            other => {
                return Err(InstanceError::UnknownDataType {
                    secret_name: wire.secret_name,
                    data_type: other.to_owned(),
                });
            }
        };
        let value = match data_type {
            SecretDataType::Text => SecretBytes::new(data.as_bytes().to_vec()),
            SecretDataType::Binary => {
                let mut buf = Zeroizing::new(Vec::new());
                base64::engine::general_purpose::STANDARD
                    .decode_vec(data.trim().as_bytes(), &mut buf)
                    .map_err(|_| InstanceError::InvalidBinaryData {
                        secret_name: wire.secret_name.clone(),
                        version_id: wire.version_id.clone(),
                    })?;
                SecretBytes::new(std::mem::take(&mut *buf))
            }
        };
        let opt = |s: String| Some(s).filter(|s| !s.is_empty());
        Ok(SecretValue {
            request_id: opt(wire.request_id).or(request_id),
            secret_name: wire.secret_name,
            secret_type: if wire.secret_type.is_empty() {
                SecretType::Generic
            } else {
                SecretType::from_wire(&wire.secret_type)
            },
            data_type,
            data: value,
            version_id: wire.version_id,
            version_stages: wire.version_stages,
            create_time: opt(wire.create_time),
            extended_config: opt(wire.extended_config),
            automatic_rotation: opt(wire.automatic_rotation),
            rotation_interval: opt(wire.rotation_interval),
            last_rotation_date: opt(wire.last_rotation_date),
            next_rotation_date: opt(wire.next_rotation_date),
        })
    }

    /// One call with retries: `(HTTP status, x-kms request id, body)` of a 2xx answer.
    async fn call(
        &self,
        api_name: &'static str,
        body: Vec<u8>,
    ) -> Result<(u16, Option<String>, Zeroizing<Vec<u8>>), InstanceError> {
        with_retries(
            &self.config.retry,
            api_name,
            &self.endpoint.host_header(),
            |_| self.attempt(api_name, &body),
        )
        .await
    }

    async fn attempt(
        &self,
        api_name: &'static str,
        body: &[u8],
    ) -> Result<(u16, Option<String>, Zeroizing<Vec<u8>>), InstanceError> {
        let host = self.endpoint.host_header();
        let now = Utc::now() + self.config.clock_offset;
        let headers = request_headers(api_name, self.key.key_id(), body, now);
        let to_sign = string_to_sign("POST", headers.iter().map(|(n, v)| (*n, v.as_str())));
        let signature = self.key.sign(&to_sign).map_err(InstanceError::Sign)?;
        let mut builder = self.http.post(self.endpoint.url().clone());
        for (name, value) in &headers {
            builder = builder.header(*name, value);
        }
        let mut response = builder
            .header("authorization", bearer(&signature))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| self.transport_error(api_name, &host, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let header_request_id = ["x-kms-request-id", "x-acs-request-id"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
            .map(str::to_owned);
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let limit = self.config.max_body_bytes;
        let bytes = match read_capped(&mut response, limit).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge) => {
                return Err(InstanceError::UnexpectedResponse {
                    action: api_name,
                    host,
                    http_status: status,
                    request_id: header_request_id,
                    problem: InstanceBodyProblem::TooLarge { limit },
                });
            }
            Err(BodyError::Transport(e)) => {
                return Err(self.transport_error(api_name, &host, e));
            }
        };
        tracing::debug!(api = api_name, host = %host, status, bytes = bytes.len(), "KMS instance response");
        let is_html = content_type
            .as_deref()
            .is_some_and(|ct| ct.contains("html"))
            || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        if (200..300).contains(&status) {
            if is_html {
                return Err(InstanceError::UnexpectedResponse {
                    action: api_name,
                    host,
                    http_status: status,
                    request_id: header_request_id,
                    problem: InstanceBodyProblem::Html,
                });
            }
            return Ok((status, header_request_id, bytes));
        }
        let decoded = if is_html {
            None
        } else {
            proto::Error::decode(bytes.as_slice())
                .ok()
                .filter(|e| !e.error_code.is_empty())
        };
        match decoded {
            Some(e) => Err(InstanceError::Api(Box::new(ApiError {
                action: api_name,
                code: e.error_code,
                message: sanitize_message(&e.error_message, &[]),
                http_status: status,
                request_id: Some(e.request_id)
                    .filter(|r| !r.is_empty())
                    .or(header_request_id),
                retry_after: retry_after(&headers, Utc::now()),
            }))),
            None => Err(InstanceError::UnexpectedResponse {
                action: api_name,
                host,
                http_status: status,
                request_id: header_request_id,
                problem: if is_html {
                    InstanceBodyProblem::Html
                } else {
                    InstanceBodyProblem::NotProtobuf { message: "Error" }
                },
            }),
        }
    }

    fn transport_error(
        &self,
        action: &'static str,
        host: &str,
        e: reqwest::Error,
    ) -> InstanceError {
        let host = host.to_owned();
        let kind = classify(&e);
        let source = e.without_url();
        match kind {
            TransportKind::UntrustedCertificate => InstanceError::UntrustedCertificate {
                action,
                host,
                source,
            },
            TransportKind::Connect => InstanceError::Connect {
                action,
                host,
                source,
            },
            TransportKind::Timeout => InstanceError::Timeout {
                action,
                host,
                timeout: self.config.request_timeout,
                source,
            },
            TransportKind::Connection => InstanceError::Connection {
                action,
                host,
                source,
            },
        }
    }
}
