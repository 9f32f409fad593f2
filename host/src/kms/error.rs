//! The KMS client's error type.

use crate::alibaba::RpcError;
use crate::credentials::CredentialsError;

/// Why a KMS call failed. Carries codes, statuses, request ids and names — never secret values.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The RPC failed: a KMS error code, an unusable response, or a connection problem.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The credentials provider could not produce credentials.
    #[error("no credentials for KMS (provider {provider})")]
    Credentials {
        /// Provider name.
        provider: &'static str,
        /// Why.
        #[source]
        source: CredentialsError,
    },
    /// A binary secret whose `SecretData` is not standard base64. (The decoder's own error is
    /// not kept: it quotes the offending byte.)
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
    /// A request the client refuses to send.
    #[error("invalid KMS request: {field} {reason}")]
    InvalidRequest {
        /// Parameter name.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Paging did not reach the end within the limit (a server that keeps returning pages).
    #[error("{action} paging did not finish after {pages} pages")]
    PagingLimit {
        /// Action being paged.
        action: &'static str,
        /// Pages fetched.
        pages: u64,
    },
    /// A paged listing did not advance: the server answered another page than the one asked
    /// for, exactly the items of the previous page again, or more items than the page size.
    /// Paging stops here instead of asking again and again (see also
    /// [`PagingLimit`](Self::PagingLimit)).
    #[error("{action} page {page}: {problem}; paging stopped (the server does not page correctly)")]
    PagingInconsistent {
        /// Action being paged.
        action: &'static str,
        /// The page asked for (1-based).
        page: u64,
        /// What was wrong with the answer.
        problem: String,
    },
    /// The endpoint was approved for another service.
    #[error("endpoint {endpoint} was resolved for {service}, not KMS")]
    WrongService {
        /// Endpoint URL.
        endpoint: String,
        /// The service it was resolved for.
        service: crate::alibaba::Service,
    },
}

impl KmsError {
    /// KMS error code (`Forbidden.ResourceNotFound`, ...), when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Rpc(e) => e.code(),
            _ => None,
        }
    }

    /// HTTP status, when a response arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Rpc(e) => e.http_status(),
            _ => None,
        }
    }

    /// RequestId, when the response carried one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Rpc(e) => e.request_id(),
            _ => None,
        }
    }

    /// Whether repeating the call later may succeed (throttling, 5xx, connection failures,
    /// credentials that could not be had for such a reason).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rpc(e) => e.is_retryable(),
            Self::Credentials { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    /// True for `Forbidden.ResourceNotFound` (no such secret, version or stage).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("Forbidden.ResourceNotFound")
    }

    /// Bounded metric label: the RPC label for RPC errors, else the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Rpc(e) => e.metric_label(),
            Self::Credentials { .. } => "credentials",
            Self::InvalidBinaryData { .. } => "invalid_binary_data",
            Self::UnknownDataType { .. } => "unknown_data_type",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::PagingLimit { .. } => "paging_limit",
            Self::PagingInconsistent { .. } => "paging_inconsistent",
            Self::WrongService { .. } => "wrong_service",
        }
    }
}
