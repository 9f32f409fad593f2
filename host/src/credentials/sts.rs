//! STS (API version `2015-04-01`): endpoint selection, `AssumeRole` (signed) and
//! `AssumeRoleWithOIDC` (unsigned).
//!
//! Endpoint selection follows the official credential providers (Go
//! `credentials-go/credentials/providers/{ram_role_arn,oidc}.go`, Python
//! `alibabacloud_credentials/provider/{ram_role_arn,oidc}.py`): an explicit endpoint wins;
//! otherwise the prefix is `sts-vpc` when VPC endpoints are enabled
//! (`ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true`, case-insensitive) and `sts` otherwise, and the host
//! is `<prefix>.<region>.aliyuncs.com` when a region is known (explicitly, or
//! `ALIBABA_CLOUD_STS_REGION`), else the global `sts.aliyuncs.com` (without a region the VPC
//! setting has no effect, as in the SDKs). Every endpoint goes through
//! [`EndpointPolicy`](crate::alibaba::EndpointPolicy).
//!
//! Parameters and response shape: `shared/docs/alibaba-cloud-protocol.md` ("STS").

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::Credentials;
use crate::alibaba::response::required;
use crate::alibaba::sign::TIMESTAMP_FORMAT;
use crate::alibaba::{
    BodyProblem, Endpoint, EndpointError, EndpointPolicy, EndpointSource, Network, RpcClient,
    RpcError, RpcRequest, RpcResponse, Service,
};
use crate::value::SecretString;

/// STS API version.
pub const STS_API_VERSION: &str = "2015-04-01";
/// The global STS endpoint.
pub const GLOBAL_STS_HOST: &str = "sts.aliyuncs.com";
/// `ALIBABA_CLOUD_STS_REGION`: region of the STS endpoint.
pub const ENV_STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";
/// `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`: `true` selects `sts-vpc.<region>.aliyuncs.com`.
pub const ENV_VPC_ENDPOINT_ENABLED: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";
/// STS's shortest session, in seconds (`DurationSeconds` minimum).
pub const MIN_DURATION_SECONDS: u64 = 900;
/// STS's default session, in seconds.
pub const DEFAULT_DURATION_SECONDS: u64 = 3600;

/// Where STS is. `Default` is the global endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StsEndpointConfig {
    /// An explicit endpoint (URL or host), e.g. an administrator's `--sts-endpoint` or a local
    /// emulator; wins over `region` and `vpc`.
    pub url: Option<String>,
    /// Region of a regional endpoint (`sts.<region>.aliyuncs.com`).
    pub region: Option<String>,
    /// Use the VPC endpoint `sts-vpc.<region>.aliyuncs.com` (only with a region).
    pub vpc: bool,
}

impl StsEndpointConfig {
    /// Reads `ALIBABA_CLOUD_STS_REGION` and `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with an injectable lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            url: None,
            region: lookup(ENV_STS_REGION).filter(|r| !r.is_empty()),
            vpc: lookup(ENV_VPC_ENDPOINT_ENABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }

    /// Fills what `self` leaves unset from `fallback` (explicit settings win over the
    /// environment): `url` and `region` when `None`, `vpc` when false.
    pub fn or(self, fallback: &Self) -> Self {
        Self {
            url: self.url.or_else(|| fallback.url.clone()),
            region: self.region.or_else(|| fallback.region.clone()),
            vpc: self.vpc || fallback.vpc,
        }
    }

    /// The endpoint source these settings select (see the module docs).
    pub fn source(&self) -> EndpointSource {
        if let Some(url) = self.url.as_deref().filter(|u| !u.is_empty()) {
            return EndpointSource::Url(url.to_owned());
        }
        match self.region.as_deref().filter(|r| !r.is_empty()) {
            Some(region) => EndpointSource::Region {
                region: region.to_owned(),
                network: if self.vpc {
                    Network::Vpc
                } else {
                    Network::Public
                },
            },
            None => EndpointSource::Url(format!("https://{GLOBAL_STS_HOST}")),
        }
    }

    /// Resolves the endpoint under `policy`.
    ///
    /// # Errors
    /// [`EndpointError`] for an invalid region or a URL the policy refuses.
    pub fn resolve(&self, policy: &EndpointPolicy) -> Result<Endpoint, EndpointError> {
        policy.resolve(Service::Sts, &self.source())
    }
}

/// `AssumeRole` parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName` (2–64 of `[A-Za-z0-9.@_-]`).
    pub role_session_name: String,
    /// `DurationSeconds` (STS: 900 up to the role's maximum; default 3600).
    pub duration_seconds: Option<u64>,
    /// `Policy`: an inline policy narrowing the session.
    pub policy: Option<String>,
    /// `ExternalId`.
    pub external_id: Option<String>,
}

/// `AssumeRoleWithOIDC` parameters. `Debug` hides the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleWithOidcRequest {
    /// `RoleArn`.
    pub role_arn: String,
    /// `OIDCProviderArn`.
    pub oidc_provider_arn: String,
    /// `OIDCToken`: the JWT as read (4–20000 characters).
    pub oidc_token: SecretString,
    /// `RoleSessionName`.
    pub role_session_name: String,
    /// `DurationSeconds`.
    pub duration_seconds: Option<u64>,
    /// `Policy`.
    pub policy: Option<String>,
}

/// What STS returned: the session's credentials and who it is.
#[derive(Clone, Debug)]
pub struct AssumedRole {
    /// `Credentials` (`AccessKeyId` `STS.…`, secret, token, `Expiration`).
    pub credentials: Credentials,
    /// `AssumedRoleUser.Arn`, e.g. `acs:ram::<account>:assumed-role/<role>/<session>`.
    pub assumed_role_arn: Option<String>,
    /// `AssumedRoleUser.AssumedRoleId`.
    pub assumed_role_id: Option<String>,
}

/// An STS client for one endpoint. Cheap to clone.
#[derive(Clone)]
pub struct StsClient {
    rpc: RpcClient,
    endpoint: Endpoint,
}

impl fmt::Debug for StsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl StsClient {
    /// A client for `endpoint` (resolved for [`Service::Sts`]).
    pub fn new(rpc: RpcClient, endpoint: Endpoint) -> Self {
        Self { rpc, endpoint }
    }

    /// The endpoint called.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `AssumeRole`, signed with `creds`.
    ///
    /// # Errors
    /// [`RpcError`]: STS codes such as `EntityNotExist.Role` (404), `NoPermission` (403),
    /// `InvalidParameter.DurationSeconds`, `InvalidSecurityToken.Expired`; connection problems;
    /// a response without `Credentials.*` ([`RpcError::UnexpectedResponse`]).
    pub async fn assume_role(
        &self,
        creds: &Credentials,
        request: &AssumeRoleRequest,
    ) -> Result<AssumedRole, RpcError> {
        let rpc = RpcRequest::new(STS_API_VERSION, "AssumeRole")
            .param("RoleArn", request.role_arn.clone())
            .param("RoleSessionName", request.role_session_name.clone())
            .opt_param(
                "DurationSeconds",
                request.duration_seconds.map(|d| d.to_string()),
            )
            .opt_param("Policy", request.policy.clone())
            .opt_param("ExternalId", request.external_id.clone());
        let response = self.rpc.call(&self.endpoint, creds.signing(), &rpc).await?;
        parse_assumed_role(&response)
    }

    /// `AssumeRoleWithOIDC` (unsigned; the OIDC token is the proof).
    ///
    /// # Errors
    /// [`RpcError`]: STS codes such as `AuthenticationFail.OIDCToken.Expired`,
    /// `AuthenticationFail.OIDCToken.InvalidSignature`, `AuthenticationFail.NoPermission`,
    /// `EntityNotExist.Role`; connection problems; an unusable response.
    pub async fn assume_role_with_oidc(
        &self,
        request: &AssumeRoleWithOidcRequest,
    ) -> Result<AssumedRole, RpcError> {
        let rpc = RpcRequest::new(STS_API_VERSION, "AssumeRoleWithOIDC")
            .param("RoleArn", request.role_arn.clone())
            .param("OIDCProviderArn", request.oidc_provider_arn.clone())
            .param("OIDCToken", request.oidc_token.expose())
            .param("RoleSessionName", request.role_session_name.clone())
            .opt_param(
                "DurationSeconds",
                request.duration_seconds.map(|d| d.to_string()),
            )
            .opt_param("Policy", request.policy.clone());
        let response = self
            .rpc
            .call_unsigned(&self.endpoint, &rpc, &[request.oidc_token.expose()])
            .await;
        // The request held the token in a plain String; nothing else keeps it.
        drop(rpc);
        parse_assumed_role(&response?)
    }
}

#[derive(Deserialize)]
struct AssumeRoleWire {
    #[serde(rename = "Credentials")]
    credentials: Option<CredentialsWire>,
    #[serde(rename = "AssumedRoleUser")]
    assumed_role_user: Option<AssumedRoleUserWire>,
}

#[derive(Deserialize)]
struct CredentialsWire {
    #[serde(rename = "AccessKeyId")]
    access_key_id: Option<String>,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: Option<String>,
    #[serde(rename = "SecurityToken")]
    security_token: Option<String>,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
}

#[derive(Deserialize)]
struct AssumedRoleUserWire {
    #[serde(rename = "Arn")]
    arn: Option<String>,
    #[serde(rename = "AssumedRoleId")]
    assumed_role_id: Option<String>,
}

/// Parses an `Expiration` / `Timestamp`-style UTC time (`YYYY-MM-DDThh:mm:ssZ`).
pub fn parse_expiration(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// Turns the `Credentials` object of an STS (or ECS metadata) answer into [`Credentials`].
fn credentials_from_wire(c: CredentialsWire) -> Result<Credentials, BodyProblem> {
    let id = required(c.access_key_id, "Credentials.AccessKeyId")?;
    let secret = SecretString::new(required(
        c.access_key_secret,
        "Credentials.AccessKeySecret",
    )?);
    let token = SecretString::new(required(c.security_token, "Credentials.SecurityToken")?);
    let expiration = required(c.expiration, "Credentials.Expiration")?;
    let expiration = parse_expiration(&expiration).ok_or(BodyProblem::InvalidField {
        field: "Credentials.Expiration".into(),
    })?;
    Ok(Credentials::sts(id, secret, token, Some(expiration)))
}

fn parse_assumed_role(response: &RpcResponse) -> Result<AssumedRole, RpcError> {
    let wire: AssumeRoleWire = response.json()?;
    let creds = required(wire.credentials, "Credentials").map_err(|p| response.unexpected(p))?;
    let credentials = credentials_from_wire(creds).map_err(|p| response.unexpected(p))?;
    let (assumed_role_arn, assumed_role_id) = match wire.assumed_role_user {
        Some(u) => (u.arn, u.assumed_role_id),
        None => (None, None),
    };
    Ok(AssumedRole {
        credentials,
        assumed_role_arn,
        assumed_role_id,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> StsEndpointConfig {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StsEndpointConfig::from_lookup(|k| map.get(k).cloned())
    }

    fn host(c: &StsEndpointConfig) -> String {
        c.resolve(&EndpointPolicy::default())
            .unwrap()
            .url()
            .to_string()
    }

    #[test]
    fn endpoints_follow_the_official_sdks() {
        assert_eq!(host(&env(&[])), "https://sts.aliyuncs.com/");
        assert_eq!(
            host(&env(&[(ENV_STS_REGION, "cn-hangzhou")])),
            "https://sts.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(
            host(&env(&[
                (ENV_STS_REGION, "cn-hangzhou"),
                (ENV_VPC_ENDPOINT_ENABLED, "TRUE")
            ])),
            "https://sts-vpc.cn-hangzhou.aliyuncs.com/"
        );
        // Without a region the VPC switch has no effect (as in credentials-go and -python).
        assert_eq!(
            host(&env(&[(ENV_VPC_ENDPOINT_ENABLED, "true")])),
            "https://sts.aliyuncs.com/"
        );
        assert_eq!(
            host(&env(&[
                (ENV_STS_REGION, "cn-hangzhou"),
                (ENV_VPC_ENDPOINT_ENABLED, "yes")
            ])),
            "https://sts.cn-hangzhou.aliyuncs.com/"
        );
    }

    #[test]
    fn explicit_settings_win_over_the_environment() {
        let from_env = env(&[(ENV_STS_REGION, "cn-hangzhou")]);
        let explicit = StsEndpointConfig {
            region: Some("ap-southeast-1".into()),
            vpc: true,
            url: None,
        };
        assert_eq!(
            host(&explicit.clone().or(&from_env)),
            "https://sts-vpc.ap-southeast-1.aliyuncs.com/"
        );
        let url = StsEndpointConfig {
            url: Some("http://127.0.0.1:8443".into()),
            ..explicit
        };
        assert_eq!(host(&url.or(&from_env)), "http://127.0.0.1:8443/");
    }

    #[test]
    fn endpoints_outside_the_policy_are_refused() {
        let bad = StsEndpointConfig {
            url: Some("https://evil.example.com".into()),
            ..StsEndpointConfig::default()
        };
        assert!(matches!(
            bad.resolve(&EndpointPolicy::default()),
            Err(EndpointError::HostNotAllowed { .. })
        ));
        let bad_region = StsEndpointConfig {
            region: Some("cn-hangzhou.evil.com".into()),
            ..StsEndpointConfig::default()
        };
        assert!(matches!(
            bad_region.resolve(&EndpointPolicy::default()),
            Err(EndpointError::InvalidRegion { .. })
        ));
    }

    fn response(body: &str) -> RpcResponse {
        RpcResponse::from_parts(
            "AssumeRole",
            "sts.aliyuncs.com",
            200,
            Some("req-1".into()),
            Some("application/json".into()),
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn assume_role_answers_become_sts_credentials() {
        let r = response(
            r#"{"RequestId":"r","AssumedRoleUser":{"AssumedRoleId":"3xx:s","Arn":"acs:ram::1:assumed-role/r/s"},
                "Credentials":{"AccessKeyId":"STS.NUid","AccessKeySecret":"sec-marker","SecurityToken":"tok-marker","Expiration":"2030-01-02T03:04:05Z"}}"#,
        );
        let a = parse_assumed_role(&r).unwrap();
        assert_eq!(a.credentials.access_key_id, "STS.NUid");
        assert_eq!(a.credentials.access_key_secret.expose(), "sec-marker");
        assert_eq!(
            a.credentials.expiration.unwrap().to_rfc3339(),
            "2030-01-02T03:04:05+00:00"
        );
        assert_eq!(
            a.assumed_role_arn.as_deref(),
            Some("acs:ram::1:assumed-role/r/s")
        );
    }

    #[test]
    fn incomplete_answers_name_the_missing_field_without_values() {
        let r = response(
            r#"{"Credentials":{"AccessKeyId":"STS.NUid","AccessKeySecret":"sec-marker","Expiration":"2030-01-02T03:04:05Z"}}"#,
        );
        let err = parse_assumed_role(&r).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("required field Credentials.SecurityToken is missing"),
            "{text}"
        );
        assert!(!text.contains("sec-marker"));
        let r = response(
            r#"{"Credentials":{"AccessKeyId":"a","AccessKeySecret":"sec-marker","SecurityToken":"t","Expiration":"tomorrow"}}"#,
        );
        let text = parse_assumed_role(&r).unwrap_err().to_string();
        assert!(
            text.contains("field Credentials.Expiration has an unexpected type"),
            "{text}"
        );
        assert!(!text.contains("tomorrow"));
    }
}
