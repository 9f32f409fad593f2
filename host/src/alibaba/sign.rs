//! Request signatures for Alibaba Cloud RPC-style APIs, as pure functions.
//!
//! * **V1** (`SignatureVersion=1.0`, HMAC-SHA1): every parameter but `Signature` is sorted by
//!   name, RFC 3986-encoded, joined with `&`; `StringToSign = METHOD&%2F&enc(canonical query)`;
//!   the key is `AccessKeySecret + "&"`; the signature is base64.
//! * **V3** (`ACS3-HMAC-SHA256`): a canonical request of method, path, sorted encoded query,
//!   signed headers (`host`, `content-type`, every `x-acs-*`) and the hex SHA-256 of the body;
//!   `StringToSign = "ACS3-HMAC-SHA256\n" + hex(sha256(canonical request))`; the key is the raw
//!   secret; the signature is lowercase hex, sent in `Authorization`.
//!
//! Sources: `shared/docs/alibaba-cloud-protocol.md` (both algorithms and the vectors in the
//! tests below) and the Python SDK `alibabacloud_tea_openapi` (`do_rpcrequest` for V1,
//! `do_request` / `Utils.get_authorization` for V3), which is what current official clients send.
//!
//! The same functions verify signatures in the emulator, so client and server agree by
//! construction; the published vectors and the official Python SDK (tests/conformance) keep
//! both honest.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::encode::percent_encode;
use crate::value::SecretString;

/// Which signature algorithm a client uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SignatureVersion {
    /// RPC signature version 1.0 (HMAC-SHA1, parameters in the query). Older SDKs, and the
    /// Python SDK when `signature_algorithm='v2'` is set.
    V1,
    /// `ACS3-HMAC-SHA256`, the default of current official SDKs.
    #[default]
    V3,
}

impl SignatureVersion {
    /// Short name used in flags and logs: `v1` or `v3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V3 => "v3",
        }
    }
}

/// The V3 algorithm name, first line of the string to sign and prefix of `Authorization`.
pub const ACS3_HMAC_SHA256: &str = "ACS3-HMAC-SHA256";

/// Timestamp format for `Timestamp` (V1) and `x-acs-date` (V3): `YYYY-MM-DDThh:mm:ssZ`, UTC.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Formats `t` as `YYYY-MM-DDThh:mm:ssZ` (see [`TIMESTAMP_FORMAT`]).
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format(TIMESTAMP_FORMAT).to_string()
}

/// What a signature needs from a credential: borrowed, so no secret is copied.
///
/// `credentials::Credentials::signing()` produces one; the emulator builds one from its seed.
#[derive(Clone, Copy, Debug)]
pub struct SigningCredentials<'a> {
    /// AccessKeyId (not secret; it is sent in clear in every request).
    pub access_key_id: &'a str,
    /// AccessKeySecret: the HMAC key.
    pub access_key_secret: &'a SecretString,
    /// STS SecurityToken, sent as `SecurityToken` (V1) or `x-acs-security-token` (V3).
    pub security_token: Option<&'a SecretString>,
}

/// Lowercase hex SHA-256 of `bytes` (the V3 `x-acs-content-sha256` value; empty body gives
/// `e3b0c442...b855`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ---------------------------------------------------------------------------------------------
// V1
// ---------------------------------------------------------------------------------------------

/// V1 canonical query: every `(name, value)` except `Signature`, sorted by name (byte order),
/// each part RFC 3986-encoded, joined with `&`. Empty values stay as `name=`.
pub fn v1_canonical_query(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params
        .iter()
        .filter(|(name, _)| name != "Signature")
        .collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::new();
    for (name, value) in sorted {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&percent_encode(name));
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    out
}

/// V1 string to sign: `METHOD + "&%2F&" + percentEncode(canonical query)`.
pub fn v1_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!(
        "{}&%2F&{}",
        method.to_ascii_uppercase(),
        percent_encode(&v1_canonical_query(params))
    )
}

/// V1 signature of a string to sign: `base64(HMAC-SHA1(AccessKeySecret + "&", string_to_sign))`.
pub fn v1_sign_string(access_key_secret: &SecretString, string_to_sign: &str) -> String {
    let mut key = Zeroizing::new(Vec::with_capacity(access_key_secret.expose().len() + 1));
    key.extend_from_slice(access_key_secret.expose().as_bytes());
    key.push(b'&');
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// V1 signature of a request: [`v1_sign_string`] over [`v1_string_to_sign`].
pub fn v1_signature(method: &str, params: &[(String, String)], secret: &SecretString) -> String {
    v1_sign_string(secret, &v1_string_to_sign(method, params))
}

/// Builds the full, signed V1 parameter list of one call: the caller's `params` plus `Action`,
/// `Version`, `Format=JSON`, `AccessKeyId`, `SignatureMethod=HMAC-SHA1`,
/// `SignatureVersion=1.0`, `SignatureNonce`, `Timestamp`, `SecurityToken` (STS only) and
/// finally `Signature`. Caller parameters with the same names as common ones are overridden.
/// The result is sorted by name; send it as the query string of a POST or GET.
pub fn sign_v1(
    method: &str,
    action: &str,
    version: &str,
    params: &BTreeMap<String, String>,
    creds: SigningCredentials<'_>,
    now: DateTime<Utc>,
    nonce: &str,
) -> Vec<(String, String)> {
    let mut all: BTreeMap<String, String> = params.clone();
    let common = [
        ("Action", action),
        ("Version", version),
        ("Format", "JSON"),
        ("AccessKeyId", creds.access_key_id),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
    ];
    for (name, value) in common {
        all.insert(name.to_owned(), value.to_owned());
    }
    all.insert("Timestamp".to_owned(), format_timestamp(now));
    if let Some(token) = creds.security_token {
        all.insert("SecurityToken".to_owned(), token.expose().to_owned());
    }
    all.remove("Signature");
    let mut pairs: Vec<(String, String)> = all.into_iter().collect();
    let signature = v1_signature(method, &pairs, creds.access_key_secret);
    pairs.push(("Signature".to_owned(), signature));
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

// ---------------------------------------------------------------------------------------------
// V3
// ---------------------------------------------------------------------------------------------

/// A V3 canonical request and the `SignedHeaders` list it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Canonical {
    /// `METHOD\nPATH\nQUERY\nHEADERS\nSIGNED_HEADERS\nHASHED_PAYLOAD`.
    pub canonical_request: String,
    /// Lowercase header names joined by `;`, sorted.
    pub signed_headers: String,
}

/// Builds the V3 canonical request.
///
/// * `query`: decoded `(name, value)` pairs; sorted by name, RFC 3986-encoded, `name=` when empty.
/// * `headers`: the headers to sign (names in any case; several values of one name are joined
///   with `,` after sorting, as the Python SDK does); values are trimmed.
/// * `hashed_payload`: lowercase hex SHA-256 of the body ([`sha256_hex`]).
pub fn v3_canonical_request(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    hashed_payload: &str,
) -> V3Canonical {
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(n, v)| (percent_encode(n), percent_encode(v)))
        .collect();
    q.sort();
    let canonical_query = q
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        grouped
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_owned());
    }
    let mut canonical_headers = String::new();
    for (name, values) in &mut grouped {
        values.sort();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let signed_headers = grouped.keys().cloned().collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        if path.is_empty() { "/" } else { path },
        canonical_query,
        canonical_headers,
        signed_headers,
        hashed_payload
    );
    V3Canonical {
        canonical_request,
        signed_headers,
    }
}

/// V3 string to sign: `"ACS3-HMAC-SHA256\n" + hex(sha256(canonical_request))`.
pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ACS3_HMAC_SHA256}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// V3 signature: lowercase hex `HMAC-SHA256(AccessKeySecret, string_to_sign)` (raw key, no `&`).
pub fn v3_sign_string(access_key_secret: &SecretString, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(access_key_secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `Authorization` header value:
/// `ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<names>,Signature=<hex>`.
pub fn v3_authorization(access_key_id: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ACS3_HMAC_SHA256} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"
    )
}

/// Builds every header a V3 request needs, `Authorization` last.
///
/// `host` is the `Host` header value (`kms.cn-hangzhou.aliyuncs.com`, or `127.0.0.1:8443` with a
/// port). Returned headers: `host`, `x-acs-action`, `x-acs-version`, `x-acs-date`,
/// `x-acs-signature-nonce`, `x-acs-content-sha256`, with STS credentials `x-acs-accesskey-id` and
/// `x-acs-security-token`, then `authorization`. All but `authorization` are signed. Send the
/// `query` pairs as the query string and `body` as the body.
#[allow(clippy::too_many_arguments)]
pub fn sign_v3(
    method: &str,
    host: &str,
    action: &str,
    version: &str,
    query: &[(String, String)],
    body: &[u8],
    creds: SigningCredentials<'_>,
    now: DateTime<Utc>,
    nonce: &str,
) -> Vec<(String, String)> {
    let hashed = sha256_hex(body);
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host.to_owned()),
        ("x-acs-action".into(), action.to_owned()),
        ("x-acs-version".into(), version.to_owned()),
        ("x-acs-date".into(), format_timestamp(now)),
        ("x-acs-signature-nonce".into(), nonce.to_owned()),
        ("x-acs-content-sha256".into(), hashed.clone()),
    ];
    if let Some(token) = creds.security_token {
        headers.push(("x-acs-accesskey-id".into(), creds.access_key_id.to_owned()));
        headers.push(("x-acs-security-token".into(), token.expose().to_owned()));
    }
    let canonical = v3_canonical_request(method, "/", query, &headers, &hashed);
    let signature = v3_sign_string(
        creds.access_key_secret,
        &v3_string_to_sign(&canonical.canonical_request),
    );
    headers.push((
        "authorization".into(),
        v3_authorization(creds.access_key_id, &canonical.signed_headers, &signature),
    ));
    headers
}

/// The parts of a V3 `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Authorization {
    /// Algorithm, e.g. `ACS3-HMAC-SHA256`.
    pub algorithm: String,
    /// AccessKeyId from `Credential=`.
    pub access_key_id: String,
    /// Lowercase header names from `SignedHeaders=`, in the order given.
    pub signed_headers: Vec<String>,
    /// Hex signature from `Signature=`.
    pub signature: String,
}

/// Parses `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=a;b,Signature=..`; `None` when any part
/// is missing or empty. Whitespace after commas is tolerated.
pub fn parse_v3_authorization(value: &str) -> Option<V3Authorization> {
    let (algorithm, rest) = value.trim().split_once(' ')?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.to_owned()),
            "Signature" => signature = Some(v.to_owned()),
            _ => {}
        }
    }
    let (credential, signed, signature) = (credential?, signed?, signature?);
    if credential.is_empty() || signed.is_empty() || signature.is_empty() {
        return None;
    }
    Some(V3Authorization {
        algorithm: algorithm.to_owned(),
        access_key_id: credential,
        signed_headers: signed
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature,
    })
}

/// Compares two signatures in constant time (for the emulator's verification).
pub fn signatures_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn describe_regions_params() -> Vec<(String, String)> {
        pairs(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ])
    }

    #[test]
    fn v1_describe_regions_vector_matches_string_to_sign_and_signature() {
        let params = describe_regions_params();
        assert_eq!(
            v1_string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        let secret = SecretString::from("testsecret");
        assert_eq!(
            v1_signature("GET", &params, &secret),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn v1_describe_regions_vector_with_post() {
        let secret = SecretString::from("testsecret");
        assert_eq!(
            v1_signature("POST", &describe_regions_params(), &secret),
            "MxbnVAM4w6sft9xjVpe/GCKueuk="
        );
    }

    #[test]
    fn v1_parameter_order_does_not_matter_and_signature_param_is_ignored() {
        let mut params = describe_regions_params();
        params.reverse();
        params.push(("Signature".into(), "anything".into()));
        let secret = SecretString::from("testsecret");
        assert_eq!(
            v1_signature("get", &params, &secret),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    fn mock_params() -> Vec<(String, String)> {
        pairs(&[
            ("AccessKeyId", "accessKeyId"),
            ("Action", ""),
            ("Format", "JSON"),
            ("RegionId", "regionId"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "MOCK_UUID"),
            ("SignatureType", ""),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "mock date"),
            ("Version", ""),
        ])
    }

    #[test]
    fn v1_sdk_vector_with_empty_values_and_a_space() {
        let secret = SecretString::from("accessKeySecret");
        assert_eq!(
            v1_signature("GET", &mock_params(), &secret),
            "7loPmFjvDnzOVnQeQNj85S6nFGY="
        );
    }

    #[test]
    fn v1_sdk_vector_with_sts_security_token() {
        let mut params = mock_params();
        params.push(("SecurityToken".into(), "accessKeyStsToken".into()));
        let secret = SecretString::from("accessKeySecret");
        assert_eq!(
            v1_signature("GET", &params, &secret),
            "5Nxdcler+ihqWqv0Hr2On4PsBf4="
        );
    }

    fn kms_vector_params() -> Vec<(String, String)> {
        pairs(&[
            ("AccessKeyId", "testid"),
            ("Action", "GetSecretValue"),
            ("Format", "JSON"),
            ("SecretName", "my secret*~/x"),
            ("SecurityToken", "STS.tok+en/="),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2024-01-01T00:00:00Z"),
            ("Version", "2016-01-20"),
        ])
    }

    #[test]
    fn v1_kms_vector_with_space_star_tilde_slash_plus_and_sts_token() {
        let params = kms_vector_params();
        let sts = v1_string_to_sign("POST", &params);
        assert!(
            sts.contains("SecretName%3Dmy%2520secret%252A~%252Fx"),
            "{sts}"
        );
        assert!(
            sts.contains("SecurityToken%3DSTS.tok%252Ben%252F%253D"),
            "{sts}"
        );
        let secret = SecretString::from("testsecret");
        assert_eq!(
            v1_signature("POST", &params, &secret),
            "YuOESWA+hS3rEKVs/M9qHu05KLA="
        );
    }

    #[test]
    fn sign_v1_adds_common_parameters_and_reproduces_the_kms_vector() {
        let mut params = BTreeMap::new();
        params.insert("SecretName".to_owned(), "my secret*~/x".to_owned());
        let secret = SecretString::from("testsecret");
        let token = SecretString::from("STS.tok+en/=");
        let creds = SigningCredentials {
            access_key_id: "testid",
            access_key_secret: &secret,
            security_token: Some(&token),
        };
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let signed = sign_v1(
            "POST",
            "GetSecretValue",
            "2016-01-20",
            &params,
            creds,
            now,
            "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        );
        let mut expected = kms_vector_params();
        expected.push(("Signature".into(), "YuOESWA+hS3rEKVs/M9qHu05KLA=".into()));
        expected.sort();
        assert_eq!(signed, expected);
    }

    #[test]
    fn v1_non_ascii_values_are_signed_over_their_utf8_bytes() {
        let mut params = describe_regions_params();
        params.push(("SecretName".into(), "密钥 é".into()));
        let sts = v1_string_to_sign("GET", &params);
        // `%E5` in the canonical query is encoded again to `%25E5` in the string to sign.
        assert!(
            sts.contains("SecretName%3D%25E5%25AF%2586%25E9%2592%25A5%2520%25C3%25A9"),
            "{sts}"
        );
        let secret = SecretString::from("testsecret");
        let sig = v1_signature("GET", &params, &secret);
        assert_ne!(sig, "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
        assert_eq!(sig, v1_sign_string(&secret, &sts));
    }

    #[test]
    fn v1_empty_secret_still_signs_with_the_ampersand_key() {
        // HMAC-SHA1 with key "&" differs from an empty key: the `&` is always appended.
        let params = describe_regions_params();
        let with_empty = v1_signature("GET", &params, &SecretString::from(""));
        let mut mac = Hmac::<Sha1>::new_from_slice(b"").unwrap();
        mac.update(v1_string_to_sign("GET", &params).as_bytes());
        let empty_key =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_ne!(with_empty, empty_key);
        assert_eq!(with_empty.len(), 28);
    }

    fn run_instances_headers() -> Vec<(String, String)> {
        pairs(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", "2023-10-26T10:22:32Z"),
            ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
            ("x-acs-content-sha256", &sha256_hex(b"")),
        ])
    }

    fn run_instances_query() -> Vec<(String, String)> {
        pairs(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ])
    }

    #[test]
    fn v3_run_instances_vector_matches_hashed_canonical_request_and_signature() {
        let c = v3_canonical_request(
            "POST",
            "/",
            &run_instances_query(),
            &run_instances_headers(),
            &sha256_hex(b""),
        );
        assert_eq!(
            c.signed_headers,
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        assert_eq!(
            sha256_hex(c.canonical_request.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let sts = v3_string_to_sign(&c.canonical_request);
        let secret = SecretString::from("YourAccessKeySecret");
        assert_eq!(
            v3_sign_string(&secret, &sts),
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn v3_header_order_and_case_do_not_matter() {
        let mut headers = run_instances_headers();
        headers.reverse();
        for h in &mut headers {
            h.0 = h.0.to_ascii_uppercase();
            h.1 = format!("  {}  ", h.1);
        }
        let c = v3_canonical_request(
            "post",
            "",
            &run_instances_query(),
            &headers,
            &sha256_hex(b""),
        );
        assert_eq!(
            sha256_hex(c.canonical_request.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
    }

    #[test]
    fn sign_v3_reproduces_the_published_vector_end_to_end() {
        let secret = SecretString::from("YourAccessKeySecret");
        let creds = SigningCredentials {
            access_key_id: "YourAccessKeyId",
            access_key_secret: &secret,
            security_token: None,
        };
        let now = Utc.with_ymd_and_hms(2023, 10, 26, 10, 22, 32).unwrap();
        let headers = sign_v3(
            "POST",
            "ecs.cn-shanghai.aliyuncs.com",
            "RunInstances",
            "2014-05-26",
            &run_instances_query(),
            b"",
            creds,
            now,
            "3156853299f313e23d1673dc12e1703d",
        );
        let auth = &headers.last().unwrap().1;
        assert_eq!(
            auth,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    #[test]
    fn v3_canonical_query_encodes_space_star_tilde_slash_plus_empty_and_non_ascii() {
        let query = pairs(&[
            ("SecretName", "my secret*~/x+y"),
            ("Empty", ""),
            ("Unicode", "密钥"),
        ]);
        let c = v3_canonical_request("GET", "/", &query, &[], &sha256_hex(b""));
        let lines: Vec<&str> = c.canonical_request.split('\n').collect();
        assert_eq!(lines[0], "GET");
        assert_eq!(lines[1], "/");
        assert_eq!(
            lines[2],
            "Empty=&SecretName=my%20secret%2A~%2Fx%2By&Unicode=%E5%AF%86%E9%92%A5"
        );
    }

    #[test]
    fn v3_with_sts_token_signs_the_token_and_access_key_headers() {
        let secret = SecretString::from("stssecret");
        let token = SecretString::from("CAIS+tok/en=");
        let creds = SigningCredentials {
            access_key_id: "STS.abc",
            access_key_secret: &secret,
            security_token: Some(&token),
        };
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let query = pairs(&[("SecretName", "db")]);
        let headers = sign_v3(
            "POST",
            "kms.cn-hangzhou.aliyuncs.com",
            "GetSecretValue",
            "2016-01-20",
            &query,
            b"",
            creds,
            now,
            "n1",
        );
        let auth = parse_v3_authorization(&headers.last().unwrap().1).unwrap();
        assert_eq!(auth.access_key_id, "STS.abc");
        assert!(
            auth.signed_headers
                .contains(&"x-acs-security-token".to_owned())
        );
        assert!(
            auth.signed_headers
                .contains(&"x-acs-accesskey-id".to_owned())
        );
        // Recompute independently from the header list.
        let signed: Vec<(String, String)> = headers[..headers.len() - 1].to_vec();
        let c = v3_canonical_request("POST", "/", &query, &signed, &sha256_hex(b""));
        assert!(
            c.canonical_request
                .contains("x-acs-security-token:CAIS+tok/en=\n")
        );
        let expected = v3_sign_string(&secret, &v3_string_to_sign(&c.canonical_request));
        assert_eq!(auth.signature, expected);
        // A different token gives a different signature.
        let other = SecretString::from("CAIS+other");
        let creds2 = SigningCredentials {
            security_token: Some(&other),
            ..creds
        };
        let headers2 = sign_v3(
            "POST",
            "kms.cn-hangzhou.aliyuncs.com",
            "GetSecretValue",
            "2016-01-20",
            &query,
            b"",
            creds2,
            now,
            "n1",
        );
        assert_ne!(headers2.last(), headers.last());
    }

    #[test]
    fn v3_body_hash_is_part_of_the_signature() {
        let secret = SecretString::from("s");
        let creds = SigningCredentials {
            access_key_id: "id",
            access_key_secret: &secret,
            security_token: None,
        };
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let a = sign_v3("POST", "h", "A", "1", &[], b"", creds, now, "n");
        let b = sign_v3("POST", "h", "A", "1", &[], b"x=1", creds, now, "n");
        assert_eq!(
            a[5].1,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(a.last(), b.last());
    }

    #[test]
    fn parse_v3_authorization_reads_every_part_and_rejects_incomplete_values() {
        let a = parse_v3_authorization(
            "ACS3-HMAC-SHA256 Credential=ak, SignedHeaders=Host;x-acs-date,Signature=ab12",
        )
        .unwrap();
        assert_eq!(a.algorithm, "ACS3-HMAC-SHA256");
        assert_eq!(a.access_key_id, "ak");
        assert_eq!(a.signed_headers, vec!["host", "x-acs-date"]);
        assert_eq!(a.signature, "ab12");
        assert!(parse_v3_authorization("ACS3-HMAC-SHA256 Credential=ak,Signature=ab").is_none());
        assert!(parse_v3_authorization("ACS3-HMAC-SHA256").is_none());
        assert!(
            parse_v3_authorization("ACS3-HMAC-SHA256 Credential=,SignedHeaders=h,Signature=x")
                .is_none()
        );
    }

    #[test]
    fn constant_time_comparison_matches_equality() {
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }
}
