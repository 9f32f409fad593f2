//! Everything shared by kmsync's Alibaba Cloud RPC clients (KMS, STS, OOS).
//!
//! ```text
//!  caller (kms::KmsClient, later sts / oos)
//!     │  RpcRequest { version, action, params }
//!     ▼
//!  client::RpcClient ── endpoint::Endpoint (checked by EndpointPolicy)
//!     │  sign::sign_v3 / sign::sign_v1  (pure functions, published test vectors)
//!     │  retry::RetryPolicy (full jitter, retry-after headers)
//!     ▼
//!  reqwest + rustls (ring) ──► response ──► error::RpcError (Code, HTTP status, RequestId)
//! ```
//!
//! Wire facts come from `shared/docs/alibaba-cloud-protocol.md` and the official SDKs
//! (`alibabacloud-tea-openapi` for Python, `tea-openapi` for Go); each item says which.

pub mod client;
pub mod encode;
pub mod endpoint;
pub mod error;
pub mod response;
pub mod retry;
pub mod sign;
pub(crate) mod transport;

pub use client::{ClientConfig, RpcClient, RpcRequest, RpcResponse, TlsRoots};
pub use endpoint::{Endpoint, EndpointError, EndpointPolicy, EndpointSource, Network, Service};
pub use error::{ApiError, BodyProblem, RpcError};
pub use retry::RetryPolicy;
pub use sign::SignatureVersion;
