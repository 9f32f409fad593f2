//! KMS instance gateway ("dedicated KMS") with ClientKey authentication: the client behind
//! `spec.KMS.dedicatedKMSAuth`.
//!
//! ```text
//!  ClientKey::from_json(json, password)     InstanceTrust::from_store(ca, ignoreSSL)
//!          │ (PKCS#12 → RSA key + cert)             │ (pinned CA, or none + warning)
//!          ▼                                        ▼
//!  InstanceClient::new(endpoint <kst-id>.cryptoservice.kms.aliyuncs.com, key, config)
//!          │  POST /  protobuf body, x-kms-* headers, RSA-SHA256 `Bearer` signature (sign.rs)
//!          ▼
//!  GetSecretValueResponse ──► kms::SecretValue (the same type the RAM-credential client returns)
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kmsync::alibaba::{EndpointPolicy, EndpointSource, Service};
//! use kmsync::dkms::{ClientKey, InstanceClient, InstanceClientConfig, InstanceTrust};
//! use kmsync::kms::GetSecretValueRequest;
//! use kmsync::value::{SecretBytes, SecretString};
//!
//! let key = ClientKey::from_json(
//!     &SecretBytes::from(std::fs::read("clientKey_KAAP.json")?),
//!     &SecretString::from(std::fs::read_to_string("clientKey_KAAP_Password.txt")?),
//! )?;
//! let endpoint = EndpointPolicy::default().resolve(
//!     Service::Kms,
//!     &EndpointSource::KmsInstance { instance_id: "kst-hzz62ee817bvyyr5x8gvq".into() },
//! )?;
//! let trust = InstanceTrust::from_store(Some(&std::fs::read_to_string("instance-ca.pem.b64")?), false)?;
//! let client = InstanceClient::new(endpoint, Arc::new(key), InstanceClientConfig::new(trust))?;
//! let value = client.get_secret_value(&GetSecretValueRequest::new("db-password")).await?;
//! println!("{} {} bytes", value.version_id, value.data.len());
//! # Ok(()) }
//! ```
//!
//! Wire facts: `shared/docs/alibaba-cloud-protocol.md` ("KMS instance API with ClientKey") and
//! the official instance SDKs `alibabacloud-dkms-gcs` (Python, Go); see each file.

mod client;
mod client_key;
mod error;
pub mod proto;
pub mod sign;
mod tls;

pub use client::{InstanceClient, InstanceClientConfig};
pub use client_key::{
    ClientKey, ClientKeyError, GeneratedClientKey, MAX_PKCS12_BYTES, generate_client_key,
    write_client_key_json,
};
pub use error::{InstanceBodyProblem, InstanceError};
pub use tls::{InstanceTrust, TlsWarning};
