//! The KMS instance client's error type.

use std::time::Duration;

use crate::alibaba::ApiError;
use crate::alibaba::transport::Retryable;

use super::client_key::ClientKeyError;

/// What was wrong with a gateway answer that could not be used. Never includes the body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstanceBodyProblem {
    /// An HTML page (a proxy or load balancer error page).
    #[error("an HTML page instead of protobuf (a proxy or gateway error page?)")]
    Html,
    /// Not a decodable protobuf message of the expected type.
    #[error("a body that is not a protobuf {message} message")]
    NotProtobuf {
        /// The message type expected (`GetSecretValueResponse`, `Error`).
        message: &'static str,
    },
    /// A required field is empty.
    #[error("required field {field} is empty")]
    MissingField {
        /// Field name.
        field: &'static str,
    },
    /// Larger than the client's limit.
    #[error("a body larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Why a call to a KMS instance gateway failed. Carries codes, statuses, request ids, host
/// names and secret names — never secret values, key material or passwords.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The gateway answered with an error (`Error` protobuf body): e.g.
    /// `Forbidden.ResourceNotFound` (404), `Forbidden.NoPermission` (403), `SignatureNotMatch`
    /// (401), `Unauthorized` (404, unknown KeyId), `RequestTimeTooSkewed` (400),
    /// `Rejected.Throttling` (429).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The answer could not be used.
    #[error("{action}: unusable HTTP {http_status} response from {host}: {problem}")]
    UnexpectedResponse {
        /// API name.
        action: &'static str,
        /// Host of the endpoint.
        host: String,
        /// HTTP status.
        http_status: u16,
        /// Request id (header or body), when present.
        request_id: Option<String>,
        /// What was wrong.
        problem: InstanceBodyProblem,
    },
    /// The server's certificate was not accepted: it does not chain to the pinned CA, names
    /// another host, or has expired.
    #[error(
        "{action}: the TLS certificate of {host} is not trusted (it must chain to the pinned KMS instance CA and name the instance host)"
    )]
    UntrustedCertificate {
        /// API name.
        action: &'static str,
        /// Host of the endpoint.
        host: String,
        /// reqwest error without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// No connection could be made (DNS, refused, TLS handshake, connect timeout).
    #[error("{action}: could not connect to {host}")]
    Connect {
        /// API name.
        action: &'static str,
        /// Host of the endpoint.
        host: String,
        /// reqwest error without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// The connection broke before a full answer arrived.
    #[error("{action}: connection to {host} failed before a full response arrived")]
    Connection {
        /// API name.
        action: &'static str,
        /// Host of the endpoint.
        host: String,
        /// reqwest error without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// The request timeout elapsed.
    #[error("{action}: no complete response from {host} within {timeout:?}")]
    Timeout {
        /// API name.
        action: &'static str,
        /// Host of the endpoint.
        host: String,
        /// The configured timeout.
        timeout: Duration,
        /// reqwest error without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// Signing with the ClientKey failed.
    #[error("could not sign the request")]
    Sign(#[source] ClientKeyError),
    /// The TLS trust settings are unusable.
    #[error("KMS instance TLS setup: {reason}")]
    TlsSetup {
        /// What is wrong (no CA, unusable CA bundle, unknown region).
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("could not build the TLS configuration")]
    Tls {
        /// rustls error.
        #[source]
        source: rustls::Error,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client")]
    ClientBuild {
        /// reqwest error.
        #[source]
        source: reqwest::Error,
    },
    /// A request the client refuses to send.
    #[error("invalid KMS instance request: {field} {reason}")]
    InvalidRequest {
        /// Field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A binary secret whose data is not standard base64.
    #[error(
        "SecretData of binary secret {secret_name:?} version {version_id:?} is not valid base64"
    )]
    InvalidBinaryData {
        /// Secret name.
        secret_name: String,
        /// Version id.
        version_id: String,
    },
    /// `SecretDataType` other than `text` or `binary`.
    #[error("secret {secret_name:?} has unknown SecretDataType {data_type:?}")]
    UnknownDataType {
        /// Secret name.
        secret_name: String,
        /// The type received.
        data_type: String,
    },
}

impl InstanceError {
    /// The gateway's error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    /// HTTP status, when an answer arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Api(e) => Some(e.http_status),
            Self::UnexpectedResponse { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// Request id, when the answer carried one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api(e) => e.request_id.as_deref(),
            Self::UnexpectedResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// `Forbidden.ResourceNotFound`: no such secret, version or stage.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("Forbidden.ResourceNotFound")
    }

    /// The ClientKey was refused: unknown KeyId (`Unauthorized`), bad signature
    /// (`SignatureNotMatch`), or a clock too far off (`RequestTimeTooSkewed`).
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self.code(),
            Some("Unauthorized" | "SignatureNotMatch" | "RequestTimeTooSkewed")
        )
    }

    /// Whether the call may succeed if repeated: throttling, 5xx, failed connects, broken
    /// connections (the retry policy of `alibaba::retry`).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(e) => e.is_retryable(),
            Self::UnexpectedResponse { http_status, .. } => (500..600).contains(http_status),
            Self::Connect { .. } | Self::Connection { .. } => true,
            _ => false,
        }
    }

    /// Server-requested delay before a retry.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(e) => e.retry_after,
            _ => None,
        }
    }

    /// Bounded label for metrics: `api_throttled`, `api_server_error`, `api_client_error`,
    /// else the variant name in snake case.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Api(e) => e.metric_label(),
            Self::UnexpectedResponse { .. } => "unexpected_response",
            Self::UntrustedCertificate { .. } => "untrusted_certificate",
            Self::Connect { .. } => "connect",
            Self::Connection { .. } => "connection",
            Self::Timeout { .. } => "timeout",
            Self::Sign(_) => "sign",
            Self::TlsSetup { .. } => "tls_setup",
            Self::Tls { .. } => "tls",
            Self::ClientBuild { .. } => "client_build",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::InvalidBinaryData { .. } => "invalid_binary_data",
            Self::UnknownDataType { .. } => "unknown_data_type",
        }
    }
}

impl Retryable for InstanceError {
    fn is_retryable(&self) -> bool {
        InstanceError::is_retryable(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        InstanceError::retry_after(self)
    }
    fn metric_label(&self) -> &'static str {
        InstanceError::metric_label(self)
    }
    fn code(&self) -> Option<&str> {
        InstanceError::code(self)
    }
}
