//! Errors of Alibaba Cloud RPC calls: the service's answer (Code, HTTP status, RequestId), or why
//! there was no usable answer.
//!
//! Nothing here ever holds a response body, a secret value, a credential or a request URL
//! (reqwest errors are stored with [`reqwest::Error::without_url`], because V1 puts the
//! `SecurityToken` in the query). Server messages are sanitised by [`sanitize_message`].

use std::fmt;
use std::time::Duration;

use super::retry::is_retryable_api_error;
use super::transport::{Retryable, is_certificate_error};

/// An error answer from the service: the JSON `{Code, Message, RequestId, HttpStatus?, HostId?,
/// Recommend?}` body of a non-2xx response (`shared/docs/alibaba-cloud-protocol.md`, "Gateway
/// errors" and "KMS error body").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// API action that failed, e.g. `GetSecretValue`.
    pub action: &'static str,
    /// Error code, e.g. `Forbidden.ResourceNotFound`, `Rejected.Throttling`.
    pub code: String,
    /// The server's message, sanitised (no string to sign, no credentials, at most 300 chars).
    pub message: String,
    /// HTTP status of the response.
    pub http_status: u16,
    /// `RequestId` from the body, or the `x-acs-request-id` header.
    pub request_id: Option<String>,
    /// Server-requested delay (`x-acs-retry-after`, `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// Retryable per [`super::retry`]: throttling, internal failures, temporary unavailability,
    /// or any 5xx.
    pub fn is_retryable(&self) -> bool {
        is_retryable_api_error(&self.code, self.http_status)
    }

    /// A short, bounded label for metrics: `api_throttled` (`Rejected.Throttling` or HTTP
    /// 429), `api_server_error` (5xx) or `api_client_error`.
    pub fn metric_label(&self) -> &'static str {
        if self.code == "Rejected.Throttling" || self.http_status == 429 {
            "api_throttled"
        } else if self.http_status >= 500 {
            "api_server_error"
        } else {
            "api_client_error"
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} (HTTP {}",
            self.action, self.code, self.http_status
        )?;
        if let Some(id) = &self.request_id {
            write!(f, ", RequestId {id}")?;
        }
        f.write_str(")")?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// What was wrong with a response body that could not be used. Never includes the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyProblem {
    /// Zero bytes where JSON was expected.
    Empty,
    /// An HTML page (typically a proxy or load balancer error page).
    Html,
    /// Something that is not JSON at all.
    NotJson {
        /// The `Content-Type` header, if any.
        content_type: Option<String>,
    },
    /// JSON that ends early (a cut-off body).
    Truncated,
    /// JSON with a syntax error at this position.
    InvalidJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A field the call needs is absent or null.
    MissingField {
        /// JSON path of the field, e.g. `SecretData` or `SecretList.Secret`.
        field: String,
    },
    /// A field has the wrong JSON type (the value itself is not reported).
    InvalidField {
        /// JSON path of the field.
        field: String,
    },
    /// Valid JSON but not the expected shape (e.g. an array instead of an object).
    UnexpectedShape,
    /// Larger than the client's limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for BodyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty body"),
            Self::Html => {
                f.write_str("an HTML page instead of JSON (a proxy or gateway error page?)")
            }
            Self::NotJson {
                content_type: Some(ct),
            } => {
                write!(f, "a body that is not JSON (content-type {ct:?})")
            }
            Self::NotJson { content_type: None } => f.write_str("a body that is not JSON"),
            Self::Truncated => f.write_str("a truncated JSON body"),
            Self::InvalidJson { line, column } => {
                write!(f, "invalid JSON at line {line} column {column}")
            }
            Self::MissingField { field } => write!(f, "required field {field} is missing"),
            Self::InvalidField { field } => write!(f, "field {field} has an unexpected type"),
            Self::UnexpectedShape => f.write_str("JSON of an unexpected shape"),
            Self::TooLarge { limit } => write!(f, "a body larger than {limit} bytes"),
        }
    }
}

/// Failure of one RPC call (after retries, when retryable).
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The service answered with an error code.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The service (or something in between) answered with a body that could not be used.
    #[error("{action}: unusable HTTP {http_status} response from {host}: {problem}")]
    UnexpectedResponse {
        /// API action.
        action: &'static str,
        /// `Host` of the endpoint.
        host: String,
        /// HTTP status.
        http_status: u16,
        /// `x-acs-request-id` header or body `RequestId`, when present.
        request_id: Option<String>,
        /// What was wrong.
        problem: BodyProblem,
    },
    /// No connection could be made (DNS, refused, TLS handshake, certificate not trusted,
    /// connect timeout). Retryable, except when the certificate was not trusted.
    #[error("{action}: could not connect to {host}")]
    Connect {
        /// API action.
        action: &'static str,
        /// `Host` of the endpoint.
        host: String,
        /// reqwest error without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// The connection broke before a full response arrived (reset, closed, incomplete body).
    #[error("{action}: connection to {host} failed before a full response arrived")]
    Connection {
        /// API action.
        action: &'static str,
        /// `Host` of the endpoint.
        host: String,
        /// reqwest error without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// The request timeout elapsed.
    #[error("{action}: no complete response from {host} within {timeout:?}")]
    Timeout {
        /// API action.
        action: &'static str,
        /// `Host` of the endpoint.
        host: String,
        /// The configured request timeout.
        timeout: Duration,
        /// reqwest error without the URL.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client")]
    ClientBuild {
        /// reqwest error.
        #[source]
        source: reqwest::Error,
    },
    /// A CA bundle given for pinning could not be used.
    #[error("CA bundle for TLS pinning is unusable: {reason}")]
    InvalidCaBundle {
        /// What was wrong (no certificates, bad PEM, rejected certificate).
        reason: &'static str,
    },
    /// The TLS configuration could not be built.
    #[error("could not build the TLS configuration")]
    Tls {
        /// rustls error.
        #[source]
        source: rustls::Error,
    },
}

impl RpcError {
    /// The service's error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    /// HTTP status, when a response arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Api(e) => Some(e.http_status),
            Self::UnexpectedResponse { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// RequestId, when a response carried one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api(e) => e.request_id.as_deref(),
            Self::UnexpectedResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Server-requested delay before a retry.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(e) => e.retry_after,
            _ => None,
        }
    }

    /// Whether the call may succeed if repeated (see [`super::retry`]): throttling, 5xx, failed
    /// connects and broken connections. Unusable 5xx bodies (an HTML 502 page) count as 5xx.
    /// A certificate that is not trusted is not retried: it will not be trusted next time.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(e) => e.is_retryable(),
            Self::UnexpectedResponse { http_status, .. } => (500..600).contains(http_status),
            Self::Connect { source, .. } => !is_certificate_error(source),
            Self::Connection { .. } => true,
            Self::Timeout { .. }
            | Self::ClientBuild { .. }
            | Self::InvalidCaBundle { .. }
            | Self::Tls { .. } => false,
        }
    }

    /// A short, bounded label for metrics: `api_throttled`, `api_server_error`,
    /// `api_client_error`, `unexpected_response`, `connect`, `connection`, `timeout`,
    /// `client_build`, `invalid_ca_bundle`, `tls`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Api(e) => e.metric_label(),
            Self::UnexpectedResponse { .. } => "unexpected_response",
            Self::Connect { .. } => "connect",
            Self::Connection { .. } => "connection",
            Self::Timeout { .. } => "timeout",
            Self::ClientBuild { .. } => "client_build",
            Self::InvalidCaBundle { .. } => "invalid_ca_bundle",
            Self::Tls { .. } => "tls",
        }
    }
}

impl Retryable for RpcError {
    fn is_retryable(&self) -> bool {
        RpcError::is_retryable(self)
    }
    fn retry_after(&self) -> Option<Duration> {
        RpcError::retry_after(self)
    }
    fn metric_label(&self) -> &'static str {
        RpcError::metric_label(self)
    }
    fn code(&self) -> Option<&str> {
        RpcError::code(self)
    }
}

/// Longest server message kept, in characters.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Cleans a server `Message` before it goes into an error:
/// * cuts it at "string to sign" (the `SignatureDoesNotMatch` message echoes the server's string
///   to sign, which holds every parameter including a V1 `SecurityToken`);
/// * replaces each of `secrets` (raw, and RFC 3986-encoded once and twice) with `<redacted>`;
/// * replaces control characters with spaces and keeps at most [`MAX_MESSAGE_CHARS`] characters.
pub fn sanitize_message(message: &str, secrets: &[&str]) -> String {
    let lower = message.to_ascii_lowercase();
    let cut = ["string to sign", "stringtosign"]
        .iter()
        .filter_map(|needle| lower.find(needle))
        .min()
        .unwrap_or(message.len());
    let mut out = message[..cut].to_owned();
    if cut < message.len() {
        out.push_str("string to sign <omitted>");
    }
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        let once = super::encode::percent_encode(secret);
        let twice = super::encode::percent_encode(&once);
        for form in [secret.to_string(), once, twice] {
            if out.contains(&form) {
                out = out.replace(&form, "<redacted>");
            }
        }
    }
    let cleaned: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    cleaned.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_and_credentials_never_survive_sanitising() {
        let msg = "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3Dak%26SecurityToken%3DCAIStoken";
        let out = sanitize_message(msg, &["CAIStoken"]);
        assert_eq!(
            out,
            "Specified signature is not matched with our calculation. server string to sign <omitted>"
        );
        let out = sanitize_message(
            "token CAIS+tok/en= and CAIS%2Btok%2Fen%3D",
            &["CAIS+tok/en="],
        );
        assert_eq!(out, "token <redacted> and <redacted>");
    }

    #[test]
    fn long_messages_are_capped_and_control_characters_removed() {
        let long = "x".repeat(1000);
        assert_eq!(sanitize_message(&long, &[]).len(), MAX_MESSAGE_CHARS);
        assert_eq!(sanitize_message("a\nb\tc", &[]), "a b c");
    }

    #[test]
    fn api_errors_report_code_status_request_id_and_retryability() {
        let e = RpcError::Api(Box::new(ApiError {
            action: "GetSecretValue",
            code: "Rejected.Throttling".into(),
            message: "QPS Limit Exceeded".into(),
            http_status: 429,
            request_id: Some("req-1".into()),
            retry_after: Some(Duration::from_millis(20)),
        }));
        assert_eq!(e.code(), Some("Rejected.Throttling"));
        assert_eq!(e.http_status(), Some(429));
        assert_eq!(e.request_id(), Some("req-1"));
        assert!(e.is_retryable());
        assert_eq!(e.metric_label(), "api_throttled");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(20)));
        assert_eq!(
            e.to_string(),
            "GetSecretValue failed: Rejected.Throttling (HTTP 429, RequestId req-1): QPS Limit Exceeded"
        );
        let nf = RpcError::Api(Box::new(ApiError {
            action: "GetSecretValue",
            code: "Forbidden.ResourceNotFound".into(),
            message: String::new(),
            http_status: 404,
            request_id: None,
            retry_after: None,
        }));
        assert!(!nf.is_retryable());
        assert_eq!(nf.metric_label(), "api_client_error");
        assert_eq!(
            nf.to_string(),
            "GetSecretValue failed: Forbidden.ResourceNotFound (HTTP 404)"
        );
    }

    #[test]
    fn unusable_5xx_bodies_are_retryable_and_2xx_ones_are_not() {
        let html = RpcError::UnexpectedResponse {
            action: "ListSecrets",
            host: "kms.cn-hangzhou.aliyuncs.com".into(),
            http_status: 502,
            request_id: None,
            problem: BodyProblem::Html,
        };
        assert!(html.is_retryable());
        assert_eq!(html.http_status(), Some(502));
        assert_eq!(
            html.to_string(),
            "ListSecrets: unusable HTTP 502 response from kms.cn-hangzhou.aliyuncs.com: an HTML page instead of JSON (a proxy or gateway error page?)"
        );
        let truncated = RpcError::UnexpectedResponse {
            action: "GetSecretValue",
            host: "h".into(),
            http_status: 200,
            request_id: None,
            problem: BodyProblem::Truncated,
        };
        assert!(!truncated.is_retryable());
        assert_eq!(truncated.metric_label(), "unexpected_response");
    }
}
