//! Request signing of the KMS instance gateway: headers, string to sign, content hash.
//!
//! Wire facts (`shared/docs/alibaba-cloud-protocol.md`, "KMS instance API with ClientKey", checked
//! against `openapi/client.py` and `openapi_util/client.py` of the official Python SDK
//! `alibabacloud-dkms-gcs` and the Go SDK's `openapi-util/client.go`):
//!
//! * headers: `accept` and `content-type` `application/x-protobuf`, `content-length`, `date`
//!   (RFC 1123, GMT), `host`, `user-agent`, `x-kms-apiversion: dkms-gcs-0.2`,
//!   `x-kms-apiname`, `x-kms-signaturemethod: RSA_PKCS1_SHA_256`, `x-kms-acccesskeyid`
//!   (three c's, as the SDKs spell it), `content-sha256` (UPPERCASE hex SHA-256 of the body),
//!   `authorization: Bearer <base64 signature>`;
//! * string to sign: `METHOD\n` + content-sha256 + `\n` + content-type + `\n` + date + `\n` +
//!   every header whose (lowercase) name starts with `x-kms-`, sorted by name, as
//!   `name:trimmed value\n`, + `/` (the SDKs always sign the resource `/`);
//! * signature: RSASSA-PKCS1-v1_5 with SHA-256 of the UTF-8 string to sign, by the ClientKey's
//!   private key.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

/// `x-kms-apiversion` value the SDKs send.
pub const API_VERSION: &str = "dkms-gcs-0.2";
/// `x-kms-signaturemethod` value the SDKs send.
pub const SIGNATURE_METHOD: &str = "RSA_PKCS1_SHA_256";
/// `accept` and `content-type` of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// The access key id header, spelled as the official SDKs spell it (`acccess`, sic).
pub const ACCESS_KEY_ID_HEADER: &str = "x-kms-acccesskeyid";
/// Prefix of the headers covered by the signature.
pub const SIGNED_HEADER_PREFIX: &str = "x-kms-";

/// UPPERCASE hex SHA-256 of `body` (the `content-sha256` header).
pub fn content_sha256(body: &[u8]) -> String {
    hex::encode_upper(Sha256::digest(body))
}

/// `date` header value: RFC 1123 in GMT, e.g. `Mon, 01 Jan 2024 00:00:00 GMT`.
pub fn http_date(now: DateTime<Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Parses an RFC 1123 / RFC 2822 `date` header.
pub fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    let v = value.trim();
    // RFC 2822 parsing wants a numeric zone or "GMT"/"UT"; chrono accepts "GMT".
    DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The string to sign for a request with these headers (`(lowercase name, value)` pairs; any
/// others than `content-sha256`, `content-type`, `date` and `x-kms-*` are ignored). Missing
/// ones count as empty, as in the SDKs.
pub fn string_to_sign<'a>(
    method: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut content_sha = "";
    let mut content_type = "";
    let mut date = "";
    let mut kms: Vec<(&str, &str)> = Vec::new();
    for (name, value) in headers {
        match name {
            "content-sha256" => content_sha = value,
            "content-type" => content_type = value,
            "date" => date = value,
            n if n.starts_with(SIGNED_HEADER_PREFIX) => kms.push((n, value)),
            _ => {}
        }
    }
    kms.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = format!("{method}\n{content_sha}\n{content_type}\n{date}\n");
    for (name, value) in kms {
        out.push_str(name);
        out.push(':');
        out.push_str(value.trim());
        out.push('\n');
    }
    out.push('/');
    out
}

/// The headers of one request, in the order the SDKs set them, without `host`, `user-agent`
/// and `authorization` (the transport adds the first two; the caller signs
/// [`string_to_sign`] of these and adds the third).
pub fn request_headers(
    api_name: &str,
    key_id: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    vec![
        ("accept", CONTENT_TYPE.to_owned()),
        ("date", http_date(now)),
        ("x-kms-apiversion", API_VERSION.to_owned()),
        ("x-kms-apiname", api_name.to_owned()),
        ("x-kms-signaturemethod", SIGNATURE_METHOD.to_owned()),
        (ACCESS_KEY_ID_HEADER, key_id.to_owned()),
        ("content-type", CONTENT_TYPE.to_owned()),
        ("content-length", body.len().to_string()),
        ("content-sha256", content_sha256(body)),
    ]
}

/// The `authorization` header value for a base64 signature.
pub fn bearer(signature_b64: &str) -> String {
    format!("Bearer {signature_b64}")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn content_sha256_of_the_documented_example_is_uppercase_hex() {
        let body = hex::decode("0a09736563726574303031").unwrap();
        assert_eq!(
            content_sha256(&body),
            "252D740A8EDEBA6A6BB5D7265F46CEB7F5C70E163BA5C99ACBE30AFA69374574"
        );
    }

    #[test]
    fn dates_are_rfc_1123_in_gmt_and_parse_back() {
        let t = Utc.with_ymd_and_hms(2024, 2, 21, 15, 39, 26).unwrap();
        assert_eq!(http_date(t), "Wed, 21 Feb 2024 15:39:26 GMT");
        assert_eq!(parse_http_date("Wed, 21 Feb 2024 15:39:26 GMT"), Some(t));
        assert_eq!(parse_http_date("2024-02-21T15:39:26Z"), None);
    }

    #[test]
    fn the_header_set_is_exactly_what_the_sdks_send() {
        let t = Utc.with_ymd_and_hms(2024, 2, 21, 15, 39, 26).unwrap();
        let body = hex::decode("0a09736563726574303031").unwrap();
        let h = request_headers("GetSecretValue", "KAAP.0000-test", &body, t);
        let names: Vec<&str> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "accept",
                "date",
                "x-kms-apiversion",
                "x-kms-apiname",
                "x-kms-signaturemethod",
                "x-kms-acccesskeyid",
                "content-type",
                "content-length",
                "content-sha256"
            ]
        );
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).unwrap().1.as_str();
        assert_eq!(get("accept"), "application/x-protobuf");
        assert_eq!(get("content-type"), "application/x-protobuf");
        assert_eq!(get("content-length"), "11");
        assert_eq!(get("x-kms-apiversion"), "dkms-gcs-0.2");
        assert_eq!(get("x-kms-signaturemethod"), "RSA_PKCS1_SHA_256");
        assert_eq!(get("x-kms-acccesskeyid"), "KAAP.0000-test");
        assert_eq!(
            get("content-sha256"),
            "252D740A8EDEBA6A6BB5D7265F46CEB7F5C70E163BA5C99ACBE30AFA69374574"
        );
    }

    #[test]
    fn string_to_sign_sorts_and_trims_kms_headers_and_ends_with_the_resource() {
        let t = Utc.with_ymd_and_hms(2024, 2, 21, 15, 39, 26).unwrap();
        let body = hex::decode("0a09736563726574303031").unwrap();
        let mut h = request_headers("GetSecretValue", "KAAP.0000-test", &body, t);
        h.push(("x-kms-custom", "  padded value \t".to_owned()));
        h.push(("user-agent", "ignored".to_owned()));
        let s = string_to_sign("POST", h.iter().map(|(n, v)| (*n, v.as_str())));
        assert_eq!(
            s,
            "POST\n\
             252D740A8EDEBA6A6BB5D7265F46CEB7F5C70E163BA5C99ACBE30AFA69374574\n\
             application/x-protobuf\n\
             Wed, 21 Feb 2024 15:39:26 GMT\n\
             x-kms-acccesskeyid:KAAP.0000-test\n\
             x-kms-apiname:GetSecretValue\n\
             x-kms-apiversion:dkms-gcs-0.2\n\
             x-kms-custom:padded value\n\
             x-kms-signaturemethod:RSA_PKCS1_SHA_256\n\
             /"
        );
        assert_eq!(string_to_sign("POST", []), "POST\n\n\n\n/");
    }
}
