//! The shared signed-RPC HTTP client: one `reqwest` client (rustls with the ring provider, no
//! proxies, no redirects), V3 or V1 signing, timeouts, retries.
//!
//! Every attempt is signed afresh (new `x-acs-date`/`Timestamp` and nonce), because servers
//! reject a reused nonce. Requests are `POST /` with the parameters in the query and an empty
//! body, as the official SDKs send them for KMS, STS and OOS (`shared/docs/alibaba-cloud-protocol.md`;
//! Python `alibabacloud_tea_openapi.client.do_request` / `do_rpcrequest`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use zeroize::Zeroizing;

use super::encode::encode_pairs;
use super::endpoint::Endpoint;
use super::error::{ApiError, BodyProblem, RpcError, sanitize_message};
use super::response::{parse_error_body, parse_json};
use super::retry::{RetryPolicy, retry_after};
use super::sign::{SignatureVersion, SigningCredentials, sign_v1, sign_v3};
use super::transport::{
    BodyError, HttpSettings, ServerTrust, TransportKind, classify, crypto_provider, http_client,
    read_capped, root_store, tls_client_config, with_retries,
};

/// Which certificate authorities the client trusts.
#[derive(Clone, Debug, Default)]
pub enum TlsRoots {
    /// The Mozilla root program (`webpki-roots`): public endpoints.
    #[default]
    WebPki,
    /// Only these CAs (a KMS instance's regional private CA, or the emulator's CA).
    Pinned(Vec<CertificateDer<'static>>),
}

impl TlsRoots {
    /// Pins the certificates of a PEM bundle.
    ///
    /// # Errors
    /// [`RpcError::InvalidCaBundle`] when the PEM has no certificate or cannot be parsed.
    pub fn pinned_pem(pem: &[u8]) -> Result<Self, RpcError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|_| RpcError::InvalidCaBundle {
                reason: "the PEM could not be parsed",
            })?;
        if certs.is_empty() {
            return Err(RpcError::InvalidCaBundle {
                reason: "no CERTIFICATE block found",
            });
        }
        Ok(Self::Pinned(certs))
    }
}

/// Settings of an [`RpcClient`]. `Default` follows the official SDKs where they have a value.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// TCP + TLS connect timeout (default 5 s, the Python SDK's `DEFAULT_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Whole-request timeout per attempt, from connect to the last body byte (default 10 s, the
    /// Python SDK's `DEFAULT_READ_TIMEOUT`).
    pub request_timeout: Duration,
    /// Retry policy (see [`super::retry`]).
    pub retry: RetryPolicy,
    /// Signature algorithm (default V3, like current official SDKs).
    pub signature: SignatureVersion,
    /// Trusted CAs.
    pub tls_roots: TlsRoots,
    /// Largest response body accepted, in bytes (default 8 MiB; a KMS secret is at most 64 KiB).
    pub max_body_bytes: usize,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Host names resolved to fixed addresses instead of DNS (the URL's port is kept), e.g.
    /// `kst-x.cryptoservice.kms.aliyuncs.com` to an emulator on loopback so that TLS still
    /// checks the instance host name. Empty by default.
    pub resolve: Vec<(String, std::net::SocketAddr)>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            signature: SignatureVersion::default(),
            tls_roots: TlsRoots::default(),
            max_body_bytes: 8 * 1024 * 1024,
            user_agent: format!("kmsync/{}", env!("CARGO_PKG_VERSION")),
            resolve: Vec::new(),
        }
    }
}

/// One RPC call: API version, action and the action's own parameters (common parameters and
/// signatures are added by the client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcRequest {
    /// API version, e.g. `2016-01-20` (KMS).
    pub version: &'static str,
    /// Action, e.g. `GetSecretValue`.
    pub action: &'static str,
    /// Action parameters by name.
    pub params: BTreeMap<String, String>,
}

impl RpcRequest {
    /// A request without parameters.
    pub fn new(version: &'static str, action: &'static str) -> Self {
        Self {
            version,
            action,
            params: BTreeMap::new(),
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.insert(name.to_owned(), value.into());
        self
    }

    /// Adds a parameter when `value` is `Some`.
    pub fn opt_param(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.param(name, v),
            None => self,
        }
    }
}

/// A successful (2xx) response. The body is zeroed on drop (it may hold a secret value).
pub struct RpcResponse {
    action: &'static str,
    host: String,
    /// HTTP status (2xx).
    pub http_status: u16,
    /// `x-acs-request-id` header, when present.
    pub request_id: Option<String>,
    /// Attempts it took (1 = no retry).
    pub attempts: u32,
    content_type: Option<String>,
    body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for RpcResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcResponse")
            .field("action", &self.action)
            .field("host", &self.host)
            .field("http_status", &self.http_status)
            .field("request_id", &self.request_id)
            .field("attempts", &self.attempts)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .finish()
    }
}

impl RpcResponse {
    /// Assembles a response from its parts (for tests and alternative transports).
    pub fn from_parts(
        action: &'static str,
        host: impl Into<String>,
        http_status: u16,
        request_id: Option<String>,
        content_type: Option<String>,
        body: Vec<u8>,
    ) -> Self {
        Self {
            action,
            host: host.into(),
            http_status,
            request_id,
            attempts: 1,
            content_type,
            body: Zeroizing::new(body),
        }
    }

    /// The raw body. Callers must not log it.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Parses the body as JSON into `T` (see [`super::response::parse_json`]).
    ///
    /// # Errors
    /// [`RpcError::UnexpectedResponse`] describing the body's shape, never its content.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, RpcError> {
        parse_json(&self.body, self.content_type.as_deref()).map_err(|p| self.unexpected(p))
    }

    /// An [`RpcError::UnexpectedResponse`] for this response (e.g. a missing required field).
    pub fn unexpected(&self, problem: BodyProblem) -> RpcError {
        RpcError::UnexpectedResponse {
            action: self.action,
            host: self.host.clone(),
            http_status: self.http_status,
            request_id: self.request_id.clone(),
            problem,
        }
    }
}

/// How one call is authenticated.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// Signed with these credentials (V3 or V1, per the configuration).
    Signed(SigningCredentials<'a>),
    /// Not signed; `sensitive` parameter values are redacted from server messages.
    Anonymous { sensitive: &'a [&'a str] },
}

/// The signed-RPC client. Cheap to clone (shares one connection pool).
#[derive(Clone, Debug)]
pub struct RpcClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
}

impl RpcClient {
    /// Builds a client.
    ///
    /// # Errors
    /// [`RpcError::InvalidCaBundle`] / [`RpcError::Tls`] for an unusable TLS setup,
    /// [`RpcError::ClientBuild`] when reqwest refuses the configuration.
    pub fn new(config: ClientConfig) -> Result<Self, RpcError> {
        let http = http_client(HttpSettings {
            tls: tls_config(&config.tls_roots)?,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            user_agent: Some(&config.user_agent),
            resolve: &config.resolve,
        })
        .map_err(|source| RpcError::ClientBuild { source })?;
        Ok(Self {
            http,
            config: Arc::new(config),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends `request` to `endpoint`, signed with `creds`, retrying per the policy.
    ///
    /// # Errors
    /// [`RpcError`]: the service's error answer ([`RpcError::Api`]), an unusable answer, or a
    /// connection problem — the last one seen when retries ran out.
    pub async fn call(
        &self,
        endpoint: &Endpoint,
        creds: SigningCredentials<'_>,
        request: &RpcRequest,
    ) -> Result<RpcResponse, RpcError> {
        self.call_with(endpoint, Auth::Signed(creds), request).await
    }

    /// Sends `request` to `endpoint` **unsigned**, retrying per the policy: for the few actions
    /// that take no credentials, such as STS `AssumeRoleWithOIDC`
    /// (`shared/docs/alibaba-cloud-protocol.md`, "STS").
    ///
    /// The common parameters `Action`, `Version`, `Format=JSON` and `Timestamp` travel in the
    /// query; the action's own parameters in an `application/x-www-form-urlencoded` body (as the
    /// Go `credentials-go` OIDC provider sends them), so a token parameter never lands in a URL.
    /// `sensitive` values (e.g. the OIDC token) are redacted from server messages.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn call_unsigned(
        &self,
        endpoint: &Endpoint,
        request: &RpcRequest,
        sensitive: &[&str],
    ) -> Result<RpcResponse, RpcError> {
        self.call_with(endpoint, Auth::Anonymous { sensitive }, request)
            .await
    }

    async fn call_with(
        &self,
        endpoint: &Endpoint,
        auth: Auth<'_>,
        request: &RpcRequest,
    ) -> Result<RpcResponse, RpcError> {
        with_retries(
            &self.config.retry,
            request.action,
            &endpoint.host_header(),
            |attempt| self.attempt(endpoint, auth, request, attempt),
        )
        .await
    }

    async fn attempt(
        &self,
        endpoint: &Endpoint,
        auth: Auth<'_>,
        request: &RpcRequest,
        attempt: u32,
    ) -> Result<RpcResponse, RpcError> {
        let host = endpoint.host_header();
        let now = Utc::now();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut url = endpoint.url().clone();
        let mut builder;
        let (creds, sensitive) = match auth {
            Auth::Signed(creds) => (Some(creds), &[][..]),
            Auth::Anonymous { sensitive } => (None, sensitive),
        };
        match (creds, self.config.signature) {
            (None, _) => {
                let timestamp = super::sign::format_timestamp(now);
                url.set_query(Some(&encode_pairs([
                    ("Action", request.action),
                    ("Format", "JSON"),
                    ("Timestamp", timestamp.as_str()),
                    ("Version", request.version),
                ])));
                let form =
                    encode_pairs(request.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                builder = self
                    .http
                    .post(url)
                    .header("host", &host)
                    .header("x-acs-action", request.action)
                    .header("x-acs-version", request.version)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.into_bytes());
            }
            (Some(creds), SignatureVersion::V3) => {
                let query: Vec<(String, String)> = request
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                url.set_query(Some(&encode_pairs(
                    query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )));
                let headers = sign_v3(
                    "POST",
                    &host,
                    request.action,
                    request.version,
                    &query,
                    b"",
                    creds,
                    now,
                    &nonce,
                );
                builder = self.http.post(url);
                for (name, value) in headers {
                    builder = builder.header(name, value);
                }
            }
            (Some(creds), SignatureVersion::V1) => {
                let params = sign_v1(
                    "POST",
                    request.action,
                    request.version,
                    &request.params,
                    creds,
                    now,
                    &nonce,
                );
                url.set_query(Some(&encode_pairs(
                    params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )));
                builder = self
                    .http
                    .post(url)
                    .header("host", &host)
                    .header("x-acs-action", request.action)
                    .header("x-acs-version", request.version);
            }
        }
        // Signed calls carry everything in the query and an empty body.
        let builder = match creds {
            Some(_) => builder.body(Vec::<u8>::new()),
            None => builder,
        }
        .header("accept", "application/json");

        let action = request.action;
        let mut response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(action, &host, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let header_request_id = headers
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);

        let limit = self.config.max_body_bytes;
        let body = match read_capped(&mut response, limit).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return Err(RpcError::UnexpectedResponse {
                    action,
                    host,
                    http_status: status,
                    request_id: header_request_id,
                    problem: BodyProblem::TooLarge { limit },
                });
            }
            Err(BodyError::Transport(e)) => return Err(self.transport_error(action, &host, e)),
        };
        tracing::debug!(action, host = %host, attempt, status, bytes = body.len(), "Alibaba Cloud response");

        if (200..300).contains(&status) {
            return Ok(RpcResponse {
                action,
                host,
                http_status: status,
                request_id: header_request_id,
                attempts: attempt,
                content_type,
                body,
            });
        }
        let secrets: Vec<&str> = creds
            .iter()
            .flat_map(|c| {
                std::iter::once(c.access_key_secret.expose())
                    .chain(c.security_token.map(|t| t.expose()))
            })
            .chain(sensitive.iter().copied())
            .collect();
        Err(error_response(
            action, host, status, &headers, &body, &secrets,
        ))
    }

    fn transport_error(&self, action: &'static str, host: &str, e: reqwest::Error) -> RpcError {
        let host = host.to_owned();
        let kind = classify(&e);
        let source = e.without_url();
        match kind {
            // An untrusted certificate stays a `Connect` error (the handshake failed); its
            // source tells `RpcError::is_retryable` not to repeat it.
            TransportKind::UntrustedCertificate | TransportKind::Connect => RpcError::Connect {
                action,
                host,
                source,
            },
            TransportKind::Timeout => RpcError::Timeout {
                action,
                host,
                timeout: self.config.request_timeout,
                source,
            },
            TransportKind::Connection => RpcError::Connection {
                action,
                host,
                source,
            },
        }
    }
}

/// Maps a non-2xx response to an [`RpcError`]: [`RpcError::Api`] when the body is an Alibaba
/// Cloud error object (message sanitised against `secrets`), else
/// [`RpcError::UnexpectedResponse`] describing the body's shape.
pub fn error_response(
    action: &'static str,
    host: String,
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> RpcError {
    let header_request_id = headers
        .get("x-acs-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    match parse_error_body(body) {
        Some(err) => RpcError::Api(Box::new(ApiError {
            action,
            code: err.code.unwrap_or_default(),
            message: sanitize_message(err.message.as_deref().unwrap_or(""), secrets),
            http_status: status,
            request_id: err.request_id.or(header_request_id),
            retry_after: retry_after(headers, Utc::now()),
        })),
        None => {
            let problem = match parse_json::<serde_json::Value>(body, content_type) {
                Ok(_) => BodyProblem::MissingField {
                    field: "Code".into(),
                },
                Err(p) => p,
            };
            RpcError::UnexpectedResponse {
                action,
                host,
                http_status: status,
                request_id: header_request_id,
                problem,
            }
        }
    }
}

/// A rustls client configuration (see [`tls_client_config`]) trusting `roots`.
pub(crate) fn tls_config(roots: &TlsRoots) -> Result<rustls::ClientConfig, RpcError> {
    let store = match roots {
        TlsRoots::WebPki => {
            let mut store = rustls::RootCertStore::empty();
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            store
        }
        TlsRoots::Pinned(certs) => root_store(certs).map_err(|_| RpcError::InvalidCaBundle {
            reason: "a certificate was rejected as a trust anchor",
        })?,
    };
    tls_client_config(crypto_provider(), ServerTrust::Roots(store))
        .map_err(|source| RpcError::Tls { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_collect_parameters_and_skip_absent_ones() {
        let r = RpcRequest::new("2016-01-20", "GetSecretValue")
            .param("SecretName", "db")
            .opt_param("VersionId", None::<String>)
            .opt_param("VersionStage", Some("ACSCurrent"));
        assert_eq!(r.params.len(), 2);
        assert_eq!(r.params["VersionStage"], "ACSCurrent");
        assert!(!r.params.contains_key("VersionId"));
    }

    #[test]
    fn pinned_pem_bundles_must_hold_a_certificate() {
        assert!(matches!(
            TlsRoots::pinned_pem(b"not a pem"),
            Err(RpcError::InvalidCaBundle { .. })
        ));
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pem = cert.cert.pem();
        match TlsRoots::pinned_pem(pem.as_bytes()).unwrap() {
            TlsRoots::Pinned(certs) => assert_eq!(certs.len(), 1),
            TlsRoots::WebPki => panic!("expected pinned roots"),
        }
    }

    #[test]
    fn clients_build_with_public_and_pinned_roots() {
        RpcClient::new(ClientConfig::default()).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let roots = TlsRoots::pinned_pem(cert.cert.pem().as_bytes()).unwrap();
        RpcClient::new(ClientConfig {
            tls_roots: roots,
            ..ClientConfig::default()
        })
        .unwrap();
    }

    fn headers(list: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in list {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn kms_error_bodies_become_api_errors_with_code_status_and_request_id() {
        let body = br#"{"HttpStatus":404,"Code":"Forbidden.ResourceNotFound","Message":"The resource is not found.","RequestId":"r-404","Extra":true}"#;
        let err = error_response("GetSecretValue", "h".into(), 404, &headers(&[]), body, &[]);
        assert_eq!(err.code(), Some("Forbidden.ResourceNotFound"));
        assert_eq!(err.http_status(), Some(404));
        assert_eq!(err.request_id(), Some("r-404"));
        assert!(!err.is_retryable());
    }

    #[test]
    fn gateway_error_bodies_keep_the_header_request_id_and_retry_after() {
        let body = br#"{"RequestId":null,"HostId":"kms.cn-hangzhou.aliyuncs.com","Code":"Rejected.Throttling","Message":"QPS Limit Exceeded","Recommend":"https://api.aliyun.com"}"#;
        let err = error_response(
            "GetSecretValue",
            "h".into(),
            429,
            &headers(&[("x-acs-request-id", "hdr-1"), ("x-acs-retry-after", "1200")]),
            body,
            &[],
        );
        assert_eq!(err.request_id(), Some("hdr-1"));
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1200)));
        assert!(err.is_retryable());
    }

    #[test]
    fn signature_errors_never_echo_the_token_or_string_to_sign() {
        let body = br#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:POST&%2F&SecurityToken%3Dtok-marker-123"}"#;
        let err = error_response(
            "GetSecretValue",
            "h".into(),
            400,
            &headers(&[]),
            body,
            &["tok-marker-123"],
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains("tok-marker"), "{text}");
        assert!(text.contains("SignatureDoesNotMatch"));
    }

    #[test]
    fn html_502_pages_and_other_bodies_become_retryable_unexpected_responses() {
        let html = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
        let err = error_response(
            "ListSecrets",
            "kms.cn-hangzhou.aliyuncs.com".into(),
            502,
            &headers(&[("content-type", "text/html")]),
            html,
            &[],
        );
        assert!(matches!(
            err,
            RpcError::UnexpectedResponse {
                problem: BodyProblem::Html,
                http_status: 502,
                ..
            }
        ));
        assert!(err.is_retryable());
        let err = error_response("ListSecrets", "h".into(), 400, &headers(&[]), b"", &[]);
        assert!(matches!(
            err,
            RpcError::UnexpectedResponse {
                problem: BodyProblem::Empty,
                ..
            }
        ));
        assert!(!err.is_retryable());
        let err = error_response(
            "ListSecrets",
            "h".into(),
            500,
            &headers(&[]),
            br#"{"Code":"Intern"#,
            &[],
        );
        assert!(matches!(
            err,
            RpcError::UnexpectedResponse {
                problem: BodyProblem::Truncated,
                ..
            }
        ));
        let err = error_response(
            "ListSecrets",
            "h".into(),
            403,
            &headers(&[]),
            br#"{"Message":"m"}"#,
            &[],
        );
        assert!(matches!(
            err,
            RpcError::UnexpectedResponse {
                problem: BodyProblem::MissingField { .. },
                ..
            }
        ));
    }

    #[test]
    fn response_debug_shows_only_the_body_length() {
        let r = RpcResponse {
            action: "GetSecretValue",
            host: "h".into(),
            http_status: 200,
            request_id: None,
            attempts: 1,
            content_type: None,
            body: Zeroizing::new(b"{\"SecretData\":\"hunter2-marker\"}".to_vec()),
        };
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("<31 bytes>"), "{dbg}");
    }
}
