//! Emulated KMS instance gateway: protobuf `GetSecretValue` authenticated by ClientKey
//! signatures (`shared/docs/alibaba-cloud-protocol.md`, "KMS instance API with ClientKey"; error
//! codes from the instance API's common error table).
//!
//! A request carrying `x-kms-apiname` on the service listener is an instance call. In order it
//! is: counted (under its API name), subjected to fault rules, and checked:
//!
//! | Check | Answer |
//! |---|---|
//! | no signed header (`content-sha256`, `content-type`, `date`, `x-kms-*`) given twice | `400 InvalidParam` |
//! | `x-kms-apiversion` is `dkms-gcs-0.2` | `400 InvalidApiVersion` |
//! | `x-kms-apiname` is `GetSecretValue` | `400 InvalidApiName` |
//! | `date` is RFC 1123 | `400 InvalidParam` ("The Param Date is invalid.") |
//! | `date` within 15 minutes of the emulator's clock | `400 RequestTimeTooSkewed` |
//! | `x-kms-signaturemethod` is `RSA_PKCS1_SHA_256` | `400 InvalidParam` |
//! | `x-kms-acccesskeyid` present / a seeded client key | `400 MissingParameter` / `404 Unauthorized` |
//! | `content-sha256` matches the body, `authorization: Bearer` verifies with the key's certificate | `401 SignatureNotMatch` |
//! | body is a `GetSecretValueRequest` with a `SecretName` | `400 InvalidParameter` |
//! | name allowed for the key (`allowed_secrets`) | `403 Forbidden.NoPermission` |
//! | secret, version and stage exist | `404 Forbidden.ResourceNotFound` |
//!
//! Errors are `Error` protobuf bodies; answers are `GetSecretValueResponse`.

use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use prost::Message as _;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::faults::Terminal;
use super::protocol::{EmuError, RpcCall, new_request_id};
use super::seed::SeedError;
use super::server::ConnMeta;
use super::state::{State, lock};
use crate::alibaba::encode::encode_pairs;
use crate::dkms::{GeneratedClientKey, proto, sign};
use crate::value::SecretString;

/// Largest clock difference accepted, as the gateway documents.
const MAX_SKEW_MINUTES: i64 = 15;

/// A ClientKey the emulated instance accepts. `Debug` omits the password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedClientKey {
    /// KeyId, e.g. `KAAP.2bb9b1a4-6a45-4c34-a2b8-3f3bd1c6a1f0`.
    pub key_id: String,
    /// PEM certificate whose public key verifies the key's signatures. When absent the
    /// emulator generates a key pair at start and can hand out the ClientKey JSON and password
    /// ([`crate::emulator::EmulatorHandle::client_key`], `kmsync emulator --write-client-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// Password for the generated ClientKey (default: random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Secret names (or prefixes ending in `*`) the key may read; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_secrets: Option<Vec<String>>,
}

impl std::fmt::Debug for SeedClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedClientKey")
            .field("key_id", &self.key_id)
            .field(
                "certificate_pem",
                &self.certificate_pem.as_ref().map(|_| "<PEM>"),
            )
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("allowed_secrets", &self.allowed_secrets)
            .finish()
    }
}

impl SeedClientKey {
    /// A key the emulator generates (builder style, for tests).
    pub fn generated(key_id: &str) -> Self {
        Self {
            key_id: key_id.to_owned(),
            certificate_pem: None,
            password: None,
            allowed_secrets: None,
        }
    }
}

/// A client key as the emulator holds it.
#[derive(Debug)]
pub(crate) struct InstanceKey {
    /// `RSAPublicKey` DER of the certificate.
    pub public_key: Vec<u8>,
    pub allowed_secrets: Option<Vec<String>>,
    /// Present when the emulator generated the key.
    pub generated: Option<GeneratedClientKey>,
}

fn invalid(what: &str, reason: impl Into<String>) -> SeedError {
    SeedError::Invalid {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

/// Checks a seed entry and builds (or generates) the key.
pub(crate) fn build_key(seed: &SeedClientKey) -> Result<InstanceKey, SeedError> {
    let what = format!("client key {:?}", seed.key_id);
    if seed.key_id.trim().is_empty() || seed.key_id.trim() != seed.key_id {
        return Err(invalid(&what, "key_id must be non-empty and trimmed"));
    }
    match &seed.certificate_pem {
        Some(pem) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject as _;
            let der = CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|_| invalid(&what, "certificate_pem is not a PEM certificate"))?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|_| invalid(&what, "certificate_pem is not an X.509 certificate"))?;
            Ok(InstanceKey {
                public_key: cert.public_key().subject_public_key.data.to_vec(),
                allowed_secrets: seed.allowed_secrets.clone(),
                generated: None,
            })
        }
        None => {
            let password = seed
                .password
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            let generated =
                crate::dkms::generate_client_key(&seed.key_id, &SecretString::from(password))
                    .map_err(|e| invalid(&what, e.to_string()))?;
            let (_, cert) = x509_parser::parse_x509_certificate(&generated.certificate_der)
                .map_err(|_| invalid(&what, "generated certificate does not parse"))?;
            Ok(InstanceKey {
                public_key: cert.public_key().subject_public_key.data.to_vec(),
                allowed_secrets: seed.allowed_secrets.clone(),
                generated: Some(generated),
            })
        }
    }
}

/// Handles one instance call (see the module docs).
pub(crate) async fn handle(
    state: &State,
    conn: &ConnMeta,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let request_id = new_request_id();
    let api = header(headers, "x-kms-apiname")
        .unwrap_or_default()
        .to_owned();
    let secret_for_count = if api == "GetSecretValue" {
        proto::GetSecretValueRequest::decode(body.as_ref())
            .ok()
            .map(|r| r.secret_name)
            .filter(|n| !n.is_empty())
    } else {
        None
    };
    lock(&state.counters).record_call(
        &api,
        secret_for_count.as_deref(),
        state.secret_counter_names,
    );

    let outcome = lock(&state.faults).evaluate(&api, Instant::now());
    if outcome.fired > 0 {
        lock(&state.counters).faults_injected += outcome.fired;
    }
    if !outcome.delay.is_zero() {
        tokio::time::sleep(outcome.delay).await;
    }
    let result = match outcome.terminal {
        Some(Terminal::Drop) => {
            conn.kill();
            return Response::new(Body::empty());
        }
        Some(Terminal::Throttle { retry_after_ms }) => Err(EmuError {
            retry_after_ms,
            ..EmuError::kms(429, "Rejected.Throttling", "QPS Limit Exceeded")
        }),
        Some(Terminal::Error { status, code, html }) => {
            if html {
                lock(&state.counters).record_error(&format!("HTTP {status}"));
                return super::protocol::html_error_page(status);
            }
            Err(EmuError::kms(
                status,
                &code,
                "The request processing has failed due to some unknown error.",
            ))
        }
        None => serve(state, method, headers, body, Utc::now()),
    };
    match result {
        Ok(mut answer) => {
            answer.request_id = request_id;
            tracing::debug!(api = %api, status = 200, "emulator instance answered");
            protobuf_response(StatusCode::OK, answer.encode_to_vec(), None)
        }
        Err(err) => {
            lock(&state.counters).record_error(&err.code);
            tracing::debug!(api = %api, status = err.status, code = %err.code, "emulator instance answered with an error");
            let body = proto::Error {
                status_code: i32::from(err.status),
                error_code: err.code.clone(),
                error_message: err.message.clone(),
                request_id,
            };
            protobuf_response(
                StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body.encode_to_vec(),
                err.retry_after_ms,
            )
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn protobuf_response(status: StatusCode, body: Vec<u8>, retry_after_ms: Option<u64>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(sign::CONTENT_TYPE),
    );
    if let Some(ms) = retry_after_ms
        && let Ok(v) = HeaderValue::from_str(&ms.to_string())
    {
        response.headers_mut().insert("x-acs-retry-after", v);
    }
    response
}

/// The first header that takes part in the signature (`content-sha256`, `content-type`,
/// `date`, `x-kms-*`) and appears more than once.
fn repeated_signed_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| {
            matches!(*name, "content-sha256" | "content-type" | "date")
                || name.starts_with(sign::SIGNED_HEADER_PREFIX)
        })
        .find(|name| headers.get_all(*name).iter().nth(1).is_some())
}

fn err(status: u16, code: &str, message: impl Into<String>) -> EmuError {
    EmuError::kms(status, code, message)
}

fn signature_not_match() -> EmuError {
    err(401, "SignatureNotMatch", "Signature is not matched.")
}

/// The checks and the answer, without counting or faults.
fn serve(
    state: &State,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    now: DateTime<Utc>,
) -> Result<proto::GetSecretValueResponse, EmuError> {
    // The checks below read the first value of a header, the string to sign its last one: a
    // signed header given twice would let a request pass with a fresh `date` or a new body's
    // `content-sha256` next to the values that were really signed.
    if let Some(name) = repeated_signed_header(headers) {
        return Err(err(
            400,
            "InvalidParam",
            format!("The Param {name} is given more than once."),
        ));
    }
    let version = header(headers, "x-kms-apiversion").unwrap_or_default();
    if version != sign::API_VERSION {
        return Err(err(
            400,
            "InvalidApiVersion",
            format!("The ApiVersion \"{version}\" is invalid."),
        ));
    }
    let api = header(headers, "x-kms-apiname").unwrap_or_default();
    if api != "GetSecretValue" {
        return Err(err(
            400,
            "InvalidApiName",
            format!("The ApiName \"{api}\" is invalid."),
        ));
    }
    let date = header(headers, "date")
        .and_then(sign::parse_http_date)
        .ok_or_else(|| err(400, "InvalidParam", "The Param Date is invalid."))?;
    if (date - now).abs() > ChronoDuration::minutes(MAX_SKEW_MINUTES) {
        return Err(err(
            400,
            "RequestTimeTooSkewed",
            "Request time exceeds server time more than 15 minutes.",
        ));
    }
    match header(headers, "x-kms-signaturemethod") {
        Some(sign::SIGNATURE_METHOD) => {}
        None => {
            return Err(err(
                400,
                "InvalidParam",
                "The Param x-kms-signaturemethod is invalid.",
            ));
        }
        Some(other) => {
            return Err(err(
                400,
                "InvalidParam",
                format!("The Param x-kms-signaturemethod is invalid. message:\"{other}\"."),
            ));
        }
    }
    let key_id = header(headers, sign::ACCESS_KEY_ID_HEADER)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            err(
                400,
                "MissingParameter",
                "Parameter x-kms-acccesskeyid does not exist in http header or body.",
            )
        })?;
    let key = state.client_keys.get(key_id).ok_or_else(|| {
        err(
            404,
            "Unauthorized",
            format!("The AccessKey ID \"{key_id}\" does not exist in our records."),
        )
    })?;
    if header(headers, "content-sha256") != Some(sign::content_sha256(body).as_str()) {
        return Err(signature_not_match());
    }
    let signature = header(headers, "authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .ok_or_else(signature_not_match)?;
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let to_sign = sign::string_to_sign(method.as_str(), pairs);
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &key.public_key)
        .verify(to_sign.as_bytes(), &signature)
        .map_err(|_| signature_not_match())?;
    lock(&state.counters).record_signature("client_key");

    let request = proto::GetSecretValueRequest::decode(body.as_ref()).map_err(|_| {
        err(
            400,
            "InvalidParameter",
            "The specified parameter is not valid.",
        )
    })?;
    if request.secret_name.is_empty() {
        return Err(err(
            400,
            "InvalidParameter",
            "The parameter SecretName is mandatory.",
        ));
    }
    // Reuse the KMS API's lookup (names, ARNs, stages, versions, permissions).
    let mut params: Vec<(&str, &str)> = vec![("SecretName", request.secret_name.as_str())];
    if !request.version_stage.is_empty() {
        params.push(("VersionStage", request.version_stage.as_str()));
    }
    if !request.version_id.is_empty() {
        params.push(("VersionId", request.version_id.as_str()));
    }
    if request.fetch_extended_config {
        params.push(("FetchExtendedConfig", "true"));
    }
    let call = RpcCall::parse(
        Method::POST,
        "/",
        Some(&encode_pairs(params)),
        HeaderMap::new(),
        Bytes::new(),
    );
    let json = super::kms::get_secret_value(state, &call, key.allowed_secrets.as_deref())?;
    let text = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(proto::GetSecretValueResponse {
        secret_name: text("SecretName"),
        secret_type: text("SecretType"),
        secret_data: text("SecretData"),
        secret_data_type: text("SecretDataType"),
        version_stages: json
            .pointer("/VersionStages/VersionStage")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        version_id: text("VersionId"),
        create_time: text("CreateTime"),
        request_id: String::new(),
        last_rotation_date: text("LastRotationDate"),
        next_rotation_date: text("NextRotationDate"),
        extended_config: text("ExtendedConfig"),
        automatic_rotation: text("AutomaticRotation"),
        rotation_interval: text("RotationInterval"),
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderName;

    use super::*;
    use crate::dkms::ClientKey;
    use crate::emulator::{Seed, SeedSecret};
    use crate::value::SecretBytes;

    const KEY_ID: &str = "KAAP.test";

    fn state() -> State {
        let seed = Seed::default()
            .with_client_key(SeedClientKey::generated(KEY_ID))
            .with_secret(SeedSecret::text("allowed", "value-a"))
            .with_secret(SeedSecret::text("other", "value-b"));
        State::from_seed(&seed).unwrap()
    }

    fn client_key(state: &State) -> ClientKey {
        let generated = state.client_keys[KEY_ID].generated.as_ref().unwrap();
        ClientKey::from_json(
            &SecretBytes::from(generated.json.expose()),
            &generated.password,
        )
        .unwrap()
    }

    fn body(secret_name: &str) -> Vec<u8> {
        proto::GetSecretValueRequest {
            secret_name: secret_name.into(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// The headers of a request for `body` signed at `at`, as the instance client sends them.
    fn signed(key: &ClientKey, body: &[u8], at: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let mut headers = sign::request_headers("GetSecretValue", KEY_ID, body, at);
        let to_sign = sign::string_to_sign("POST", headers.iter().map(|(n, v)| (*n, v.as_str())));
        headers.push(("authorization", sign::bearer(&key.sign(&to_sign).unwrap())));
        headers
    }

    fn header_map(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn a_signed_request_is_answered() {
        let st = state();
        let body = body("allowed");
        let headers = header_map(&signed(&client_key(&st), &body, Utc::now()));
        let answer = serve(&st, &Method::POST, &headers, &Bytes::from(body), Utc::now()).unwrap();
        assert_eq!(answer.secret_data, "value-a");
    }

    #[test]
    fn a_second_content_sha256_can_not_swap_the_body_under_a_signature() {
        let st = state();
        let original = body("allowed");
        let swapped = body("other");
        let mut pairs = vec![("content-sha256", sign::content_sha256(&swapped))];
        pairs.extend(signed(&client_key(&st), &original, Utc::now()));
        let headers = header_map(&pairs);
        let e = serve(
            &st,
            &Method::POST,
            &headers,
            &Bytes::from(swapped),
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "InvalidParam"), "{e:?}");
    }

    #[test]
    fn a_second_date_can_not_revive_a_stale_signature() {
        let st = state();
        let now = Utc::now();
        let body = body("allowed");
        let mut pairs = vec![("date", sign::http_date(now))];
        pairs.extend(signed(
            &client_key(&st),
            &body,
            now - ChronoDuration::hours(1),
        ));
        let headers = header_map(&pairs);
        let e = serve(&st, &Method::POST, &headers, &Bytes::from(body), now).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "InvalidParam"), "{e:?}");
    }
}
