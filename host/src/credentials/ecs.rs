//! The ECS instance RAM role ("worker role") from the instance metadata server, only when the
//! operator enables it (`--enable-worker-role`).
//!
//! Protocol (`shared/docs/alibaba-cloud-protocol.md`, "ECS instance RAM role"; the official
//! `credentials-go` `providers/ecs_ram_role.go` and `alibabacloud_credentials`
//! `provider/ecs_ram_role.py`):
//!
//! 1. `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds: 21600` → a token
//!    (IMDSv2). If that fails, continue without a token unless IMDSv1 is disabled.
//! 2. `GET /latest/meta-data/ram/security-credentials/` → the role name (unless configured).
//! 3. `GET /latest/meta-data/ram/security-credentials/<role>` with
//!    `X-aliyun-ecs-metadata-token` → `{"Code":"Success","AccessKeyId","AccessKeySecret",
//!    "SecurityToken","Expiration","LastUpdated"}`.
//!
//! Connect and read timeouts are 1 s each, as in the SDKs. The base URL is configurable for tests
//! (the emulator's `--metadata-listen`); it is an administrator setting, not a store field.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use super::refresh::CredentialsFetcher;
use super::sts::parse_expiration;
use super::{Credentials, CredentialsError};
use crate::alibaba::BodyProblem;
use crate::alibaba::response::{parse_json, required};
use crate::alibaba::transport::{BodyError, HttpSettings, http_client, read_capped};
use crate::value::SecretString;

/// The metadata server every ECS instance reaches.
pub const DEFAULT_METADATA_URL: &str = "http://100.100.100.200";
/// `ALIBABA_CLOUD_ECS_METADATA`: the role name (skips step 2).
pub const ENV_ECS_METADATA: &str = "ALIBABA_CLOUD_ECS_METADATA";
/// `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true` turns the provider off.
pub const ENV_ECS_METADATA_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";
/// `ALIBABA_CLOUD_IMDSV1_DISABLED=true`: a token is required (no fallback).
pub const ENV_IMDSV1_DISABLED: &str = "ALIBABA_CLOUD_IMDSV1_DISABLED";
/// Metadata token lifetime requested, in seconds (the SDKs' `defaultMetadataTokenDuration`).
pub const METADATA_TOKEN_TTL_SECONDS: u32 = 21600;

/// Largest metadata answer read, in bytes (a credentials document is well under 4 KiB).
pub const MAX_METADATA_BODY_BYTES: usize = 64 * 1024;

const TOKEN_PATH: &str = "/latest/api/token";
const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/";

/// How to reach the metadata server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsMetadataConfig {
    /// Base URL, default `http://100.100.100.200`.
    pub base_url: String,
    /// The role name; `None` asks the server (step 2).
    pub role_name: Option<String>,
    /// Require an IMDSv2 token (no fallback to token-less requests).
    pub imds_v1_disabled: bool,
    /// Connect timeout and, separately, whole-request timeout (1 s each by default).
    pub timeout: Duration,
}

impl Default for EcsMetadataConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_METADATA_URL.to_owned(),
            role_name: None,
            imds_v1_disabled: false,
            timeout: Duration::from_secs(1),
        }
    }
}

impl EcsMetadataConfig {
    /// Defaults plus `ALIBABA_CLOUD_ECS_METADATA` (role name) and
    /// `ALIBABA_CLOUD_IMDSV1_DISABLED`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            role_name: lookup(ENV_ECS_METADATA).filter(|r| !r.is_empty()),
            imds_v1_disabled: lookup(ENV_IMDSV1_DISABLED)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            ..Self::default()
        }
    }
}

/// Fetches the instance role's credentials from the metadata server. Wrap it in
/// [`Refreshing`](super::Refreshing).
pub struct EcsRamRole {
    http: reqwest::Client,
    base: Url,
    config: EcsMetadataConfig,
}

impl fmt::Debug for EcsRamRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcsRamRole")
            .field("base", &self.base.as_str())
            .field("role_name", &self.config.role_name)
            .field("imds_v1_disabled", &self.config.imds_v1_disabled)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct MetadataCredentials {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "AccessKeyId")]
    access_key_id: Option<String>,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: Option<String>,
    #[serde(rename = "SecurityToken")]
    security_token: Option<String>,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
}

impl EcsRamRole {
    /// A provider for `config`.
    ///
    /// # Errors
    /// [`CredentialsError::MetadataConfig`] when the base URL is not an `http(s)` origin or the
    /// HTTP client cannot be built.
    pub fn new(config: EcsMetadataConfig) -> Result<Self, CredentialsError> {
        let bad = |reason: &'static str| CredentialsError::MetadataConfig {
            url: config.base_url.clone(),
            reason,
        };
        let base = Url::parse(&config.base_url).map_err(|_| bad("not a valid URL"))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.host_str().is_none()
            || !matches!(base.path(), "" | "/")
            || base.query().is_some()
        {
            return Err(bad("must be an http(s) origin without path or query"));
        }
        let tls = crate::alibaba::client::tls_config(&crate::alibaba::TlsRoots::WebPki)
            .map_err(|_| bad("the TLS configuration could not be built"))?;
        let http = http_client(HttpSettings {
            tls,
            connect_timeout: config.timeout,
            request_timeout: config.timeout,
            user_agent: None,
            resolve: &[],
        })
        .map_err(|_| bad("the HTTP client could not be built"))?;
        Ok(Self { http, base, config })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    fn unreachable(&self, step: &'static str, source: reqwest::Error) -> CredentialsError {
        CredentialsError::MetadataUnreachable {
            url: self.base.to_string(),
            step,
            source: source.without_url(),
        }
    }

    /// The body of a metadata answer, at most [`MAX_METADATA_BODY_BYTES`].
    async fn body(
        &self,
        step: &'static str,
        response: &mut reqwest::Response,
    ) -> Result<Zeroizing<Vec<u8>>, CredentialsError> {
        read_capped(response, MAX_METADATA_BODY_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => CredentialsError::MetadataResponse {
                    step,
                    problem: BodyProblem::TooLarge {
                        limit: MAX_METADATA_BODY_BYTES,
                    },
                },
                BodyError::Transport(e) => self.unreachable(step, e),
            })
    }

    /// Step 1. `Ok(None)` when falling back to requests without a token.
    async fn metadata_token(&self) -> Result<Option<SecretString>, CredentialsError> {
        let result = self
            .http
            .put(self.url(TOKEN_PATH))
            .header(
                "X-aliyun-ecs-metadata-token-ttl-seconds",
                METADATA_TOKEN_TTL_SECONDS.to_string(),
            )
            .send()
            .await;
        let outcome = match result {
            Ok(mut r) if r.status().is_success() => match self.body("token", &mut r).await {
                Ok(body) => {
                    let text = String::from_utf8_lossy(&body);
                    if !text.trim().is_empty() {
                        return Ok(Some(SecretString::new(text.into_owned())));
                    }
                    Err(CredentialsError::MetadataResponse {
                        step: "token",
                        problem: BodyProblem::Empty,
                    })
                }
                Err(e) => Err(e),
            },
            Ok(r) => Err(CredentialsError::MetadataStatus {
                step: "token",
                status: r.status().as_u16(),
            }),
            Err(e) => Err(self.unreachable("token", e)),
        };
        match outcome {
            Err(e) if self.config.imds_v1_disabled => Err(e),
            Err(e) => {
                tracing::debug!(error = %super::error_chain(&e), "no IMDSv2 token; continuing without one");
                Ok(None)
            }
            Ok(never) => Ok(never),
        }
    }

    async fn get(
        &self,
        step: &'static str,
        path: &str,
        token: Option<&SecretString>,
    ) -> Result<reqwest::Response, CredentialsError> {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.header("X-aliyun-ecs-metadata-token", t.expose());
        }
        let response = req.send().await.map_err(|e| self.unreachable(step, e))?;
        if !response.status().is_success() {
            return Err(CredentialsError::MetadataStatus {
                step,
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    async fn role_name(&self, token: Option<&SecretString>) -> Result<String, CredentialsError> {
        if let Some(name) = &self.config.role_name {
            return Ok(name.clone());
        }
        let mut response = self.get("role name", ROLE_PATH, token).await?;
        let body = self.body("role name", &mut response).await?;
        let text = String::from_utf8_lossy(&body);
        let name = text.trim();
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
        if !valid {
            return Err(CredentialsError::MetadataResponse {
                step: "role name",
                problem: if name.is_empty() {
                    BodyProblem::Empty
                } else {
                    BodyProblem::UnexpectedShape
                },
            });
        }
        Ok(name.to_owned())
    }
}

#[async_trait]
impl CredentialsFetcher for EcsRamRole {
    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let token = self.metadata_token().await?;
        let role = self.role_name(token.as_ref()).await?;
        let mut response = self
            .get("credentials", &format!("{ROLE_PATH}{role}"), token.as_ref())
            .await?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.body("credentials", &mut response).await?;
        let problem = |problem| CredentialsError::MetadataResponse {
            step: "credentials",
            problem,
        };
        let wire: MetadataCredentials =
            parse_json(&body, content_type.as_deref()).map_err(problem)?;
        let code = required(wire.code, "Code").map_err(problem)?;
        if code != "Success" {
            return Err(CredentialsError::MetadataCode { code });
        }
        let id = required(wire.access_key_id, "AccessKeyId").map_err(problem)?;
        let secret = SecretString::new(
            required(wire.access_key_secret, "AccessKeySecret").map_err(problem)?,
        );
        let token =
            SecretString::new(required(wire.security_token, "SecurityToken").map_err(problem)?);
        let expiration = required(wire.expiration, "Expiration").map_err(problem)?;
        let expiration = parse_expiration(&expiration).ok_or_else(|| {
            problem(BodyProblem::InvalidField {
                field: "Expiration".into(),
            })
        })?;
        tracing::info!(role = %role, expiration = %expiration, "fetched ECS instance role credentials");
        Ok(Credentials::sts(id, secret, token, Some(expiration)))
    }

    fn name(&self) -> &'static str {
        "ecs_ram_role"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_http_origins() {
        for bad in [
            "ftp://1.2.3.4",
            "http://h/path",
            "not a url",
            "http://h/?q=1",
        ] {
            let err = EcsRamRole::new(EcsMetadataConfig {
                base_url: bad.into(),
                ..EcsMetadataConfig::default()
            })
            .unwrap_err();
            assert!(
                matches!(err, CredentialsError::MetadataConfig { .. }),
                "{bad}: {err}"
            );
        }
        EcsRamRole::new(EcsMetadataConfig::default()).unwrap();
    }

    #[tokio::test]
    async fn oversized_metadata_answers_are_refused_without_reading_them_whole() {
        let addr = crate::alibaba::transport::serve_body(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            64 << 20,
        )
        .await;
        let role = EcsRamRole::new(EcsMetadataConfig {
            base_url: format!("http://{addr}"),
            timeout: Duration::from_secs(30),
            ..EcsMetadataConfig::default()
        })
        .unwrap();
        let err = role.fetch().await.unwrap_err();
        assert!(
            matches!(
                err,
                CredentialsError::MetadataResponse {
                    step: "role name",
                    problem: BodyProblem::TooLarge {
                        limit: MAX_METADATA_BODY_BYTES
                    },
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn environment_sets_role_name_and_imds_v1() {
        let c = EcsMetadataConfig::from_lookup(|k| match k {
            ENV_ECS_METADATA => Some("worker".into()),
            ENV_IMDSV1_DISABLED => Some("True".into()),
            _ => None,
        });
        assert_eq!(c.role_name.as_deref(), Some("worker"));
        assert!(c.imds_v1_disabled);
        assert_eq!(c.base_url, DEFAULT_METADATA_URL);
    }
}
