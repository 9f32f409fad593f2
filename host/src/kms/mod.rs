//! KMS Secrets Manager client (API version `2016-01-20`): `GetSecretValue`, `ListSecrets`,
//! `DescribeSecret`, `ListSecretVersionIds`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kmsync::alibaba::{ClientConfig, EndpointPolicy, EndpointSource, RpcClient, Service};
//! use kmsync::credentials::StaticCredentials;
//! use kmsync::kms::{GetSecretValueRequest, KmsClient};
//!
//! let endpoint = EndpointPolicy::default()
//!     .resolve(Service::Kms, &EndpointSource::Url("http://127.0.0.1:8443".into()))?;
//! let client = KmsClient::new(
//!     RpcClient::new(ClientConfig::default())?,
//!     endpoint,
//!     Arc::new(StaticCredentials::from_env()?),
//! )?;
//! let value = client.get_secret_value(&GetSecretValueRequest::new("test1")).await?;
//! println!("{} {} bytes", value.version_id, value.data.len());
//! # Ok(()) }
//! ```
//!
//! Wire facts: `shared/docs/alibaba-cloud-protocol.md` ("KMS") and the response models of the
//! official Python SDK `alibabacloud_kms20160120.models`. Unknown response fields are ignored;
//! missing required ones are [`KmsError`]s naming the field.

mod client;
mod error;
mod model;

pub use client::KmsClient;
pub use error::KmsError;
pub use model::{
    GetSecretValueRequest, KMS_API_VERSION, ListSecretsPage, ListSecretsRequest, SecretDataType,
    SecretFilter, SecretMetadata, SecretSummary, SecretType, SecretValue, SecretVersion, Tag,
};
