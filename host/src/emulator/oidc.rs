//! OIDC tokens for the emulated `AssumeRoleWithOIDC`: RS256 JWT verification against a
//! provider's keys, and minting with the emulator's built-in **TEST ONLY** key
//! (`testdata/oidc-test-key.pem`, published in the source tree, so never trust it anywhere).
//!
//! A JWT is `base64url(header).base64url(claims).base64url(signature)` (RFC 7519); kmsync
//! checks what STS checks (error codes from the STS error-code reference,
//! `AuthenticationFail.OIDCToken.*`): three parts, base64url, `alg` `RS256`, the signature
//! (by `kid` when given), `iss` equal to the provider's issuer, `aud` among its client ids,
//! `exp` in the future, a non-empty `sub`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::protocol::EmuError;

/// The built-in signing key: TEST ONLY, see the file's header.
const TEST_KEY_PEM: &str = include_str!("testdata/oidc-test-key.pem");
/// `kid` of the built-in key.
pub const TEST_KEY_ID: &str = "kmsync-emulator-test-key";

/// A public RSA key a provider trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

/// The built-in signer.
pub(crate) struct TestSigner {
    key: RsaKeyPair,
    public: VerifyKey,
}

impl std::fmt::Debug for TestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestSigner")
            .field("kid", &TEST_KEY_ID)
            .finish_non_exhaustive()
    }
}

/// Reads `(n, e)` from a DER `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`).
fn rsa_public_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let mut len = 0usize;
            for &b in &rest[..count] {
                len = (len << 8) | usize::from(b);
            }
            rest = &rest[count..];
            len
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let strip = |v: &[u8]| {
        let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
        v[start..].to_vec()
    };
    let (seq, _) = read_tlv(der, 0x30)?;
    let (n, rest) = read_tlv(seq, 0x02)?;
    let (e, _) = read_tlv(rest, 0x02)?;
    Some((strip(n), strip(e)))
}

impl TestSigner {
    /// The built-in TEST ONLY key.
    pub fn builtin() -> Self {
        let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_KEY_PEM.as_bytes())
            .expect("the built-in test key is a PKCS#8 PEM");
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .expect("the built-in test key is an RSA key ring accepts");
        let (n, e) = rsa_public_components(key.public().as_ref())
            .expect("ring serialises RSA public keys as DER RSAPublicKey");
        Self {
            key,
            public: VerifyKey {
                kid: Some(TEST_KEY_ID.to_owned()),
                n,
                e,
            },
        }
    }

    /// The public key.
    pub fn public(&self) -> &VerifyKey {
        &self.public
    }

    /// The JWKS (RFC 7517) of the built-in key.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": TEST_KEY_ID,
            "n": URL_SAFE_NO_PAD.encode(&self.public.n),
            "e": URL_SAFE_NO_PAD.encode(&self.public.e),
        }]})
    }

    /// Signs `claims` as an RS256 JWT with `kid` [`TEST_KEY_ID`].
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": TEST_KEY_ID});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing with a valid key and buffer succeeds");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Parses a JWKS object (`{"keys": [{"kty": "RSA", "n", "e", "kid"?}]}`) into keys; other key
/// types are skipped.
///
/// # Errors
/// A reason when the JWKS has no usable RSA key or a key's `n`/`e` is not base64url.
pub(crate) fn keys_from_jwks(jwks: &Value) -> Result<Vec<VerifyKey>, &'static str> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be an object with a keys array")?;
    let mut out = Vec::new();
    for k in keys {
        if k.get("kty").and_then(Value::as_str) != Some("RSA") {
            continue;
        }
        let field = |name: &str| {
            k.get(name)
                .and_then(Value::as_str)
                .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
                .ok_or("an RSA key needs base64url n and e")
        };
        out.push(VerifyKey {
            kid: k.get("kid").and_then(Value::as_str).map(str::to_owned),
            n: field("n")?,
            e: field("e")?,
        });
    }
    if out.is_empty() {
        return Err("jwks has no RSA key");
    }
    Ok(out)
}

/// The claims kmsync checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claims {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub expiration: DateTime<Utc>,
    pub issued_at: Option<DateTime<Utc>>,
}

fn invalid(message: &str) -> EmuError {
    EmuError::gateway(401, "AuthenticationFail.OIDCToken.Invalid", message)
}

/// Verifies `token` with `keys` and checks `issuer`, `client_ids` and expiry at `now`.
///
/// # Errors
/// The STS error answer: `AuthenticationFail.OIDCToken.Invalid`, `.InvalidSignature`,
/// `.AudienceNotMatch`, `.Expired` (all 401).
pub(crate) fn verify(
    token: &str,
    keys: &[VerifyKey],
    issuer: &str,
    client_ids: &[String],
    now: DateTime<Utc>,
) -> Result<Claims, EmuError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(invalid("The OIDCToken can not empty."));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, claims_b64, signature_b64] = parts[..] else {
        return Err(invalid(
            "The number of Jwt field should be divided into 3 parts with '.' .",
        ));
    };
    let decode = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid("Cannot decode base64 encoded response(format invalided)."))
    };
    let header: Value = serde_json::from_slice(&decode(header_b64)?)
        .map_err(|_| invalid("The Jwt content is invalid that cannot be recognized."))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "RS256" {
        return Err(invalid(&format!(
            "The algorithm {alg} that be specified in Jwt header is unknown."
        )));
    }
    let signature = decode(signature_b64)?;
    let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
    let kid = header.get("kid").and_then(Value::as_str);
    let verified = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        .any(|k| {
            RsaPublicKeyComponents { n: &k.n, e: &k.e }
                .verify(
                    &RSA_PKCS1_2048_8192_SHA256,
                    signing_input.as_bytes(),
                    &signature,
                )
                .is_ok()
        });
    if !verified {
        return Err(EmuError::gateway(
            401,
            "AuthenticationFail.OIDCToken.InvalidSignature",
            "OIDC token validate failed: invalid signature.",
        ));
    }
    let claims: Value = serde_json::from_slice(&decode(claims_b64)?)
        .map_err(|_| invalid("The Jwt content is invalid that cannot be recognized."))?;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != issuer {
        return Err(invalid(
            "The issuer of the OIDC token does not match the issuer URL of the OIDC provider.",
        ));
    }
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if !audiences.iter().any(|a| client_ids.contains(a)) {
        return Err(EmuError::gateway(
            401,
            "AuthenticationFail.OIDCToken.AudienceNotMatch",
            "Invalid audience.",
        ));
    }
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .and_then(|s| DateTime::from_timestamp(s, 0))
    };
    let expiration = time("exp").ok_or_else(|| invalid("The Jwt has no exp claim."))?;
    if expiration <= now {
        return Err(EmuError::gateway(
            401,
            "AuthenticationFail.OIDCToken.Expired",
            "This JsonWebToken is expired.",
        ));
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("The Jwt has no sub claim."))?
        .to_owned();
    Ok(Claims {
        issuer: iss.to_owned(),
        subject,
        audiences,
        expiration,
        issued_at: time("iat"),
    })
}

/// Body of the admin API's `POST /v1/oidc/token`: what to put in a test token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintTokenRequest {
    /// The OIDC provider (its issuer and first client id are the defaults below).
    pub provider_arn: String,
    /// `sub`, e.g. `system:serviceaccount:team-a:app`.
    pub subject: String,
    /// `aud` (default: the provider's first client id, `sts.aliyuncs.com`).
    #[serde(default)]
    pub audience: Option<Vec<String>>,
    /// Seconds until `exp` (default 3600; negative for an already expired token).
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
    /// `iss` (default: the provider's issuer).
    #[serde(default)]
    pub issuer: Option<String>,
}

/// The claims of a minted token.
pub(crate) fn mint_claims(
    request: &MintTokenRequest,
    issuer: &str,
    default_audience: &str,
    now: DateTime<Utc>,
) -> Value {
    let exp = now + ChronoDuration::seconds(request.expires_in_seconds.unwrap_or(3600));
    let aud = request
        .audience
        .clone()
        .unwrap_or_else(|| vec![default_audience.to_owned()]);
    json!({
        "iss": request.issuer.as_deref().unwrap_or(issuer),
        "sub": request.subject,
        "aud": aud,
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": exp.timestamp(),
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> Value {
        let now = Utc::now();
        json!({"iss": "https://oidc.test", "sub": "system:serviceaccount:a:b",
               "aud": ["sts.aliyuncs.com"], "exp": now.timestamp() + exp_in, "iat": now.timestamp()})
    }

    fn ids() -> Vec<String> {
        vec!["sts.aliyuncs.com".to_owned()]
    }

    #[test]
    fn tokens_signed_with_the_builtin_key_verify_and_yield_their_claims() {
        let signer = TestSigner::builtin();
        let token = signer.sign(&claims(600));
        let keys = keys_from_jwks(&signer.jwks()).unwrap();
        assert_eq!(keys, vec![signer.public().clone()]);
        let c = verify(&token, &keys, "https://oidc.test", &ids(), Utc::now()).unwrap();
        assert_eq!(c.subject, "system:serviceaccount:a:b");
        assert_eq!(c.audiences, ids());
    }

    #[test]
    fn every_check_has_its_sts_error_code() {
        let signer = TestSigner::builtin();
        let keys = vec![signer.public().clone()];
        let now = Utc::now();
        let code =
            |token: &str, issuer: &str| verify(token, &keys, issuer, &ids(), now).unwrap_err().code;
        assert_eq!(
            code("", "https://oidc.test"),
            "AuthenticationFail.OIDCToken.Invalid"
        );
        assert_eq!(
            code("a.b", "https://oidc.test"),
            "AuthenticationFail.OIDCToken.Invalid"
        );
        assert_eq!(
            code("a.b.c!", "https://oidc.test"),
            "AuthenticationFail.OIDCToken.Invalid"
        );
        let good = signer.sign(&claims(600));
        assert_eq!(
            code(&good, "https://other"),
            "AuthenticationFail.OIDCToken.Invalid"
        );
        let expired = signer.sign(&claims(-5));
        assert_eq!(
            code(&expired, "https://oidc.test"),
            "AuthenticationFail.OIDCToken.Expired"
        );
        let mut c = claims(600);
        c["aud"] = json!("someone-else");
        assert_eq!(
            code(&signer.sign(&c), "https://oidc.test"),
            "AuthenticationFail.OIDCToken.AudienceNotMatch"
        );
        // Tamper with the claims: the signature no longer matches.
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims(99999).to_string()),
            parts[2]
        );
        assert_eq!(
            code(&forged, "https://oidc.test"),
            "AuthenticationFail.OIDCToken.InvalidSignature"
        );
        let hs256 = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            parts[1],
            parts[2]
        );
        let err = verify(&hs256, &keys, "https://oidc.test", &ids(), now).unwrap_err();
        assert_eq!(
            err.message,
            "The algorithm HS256 that be specified in Jwt header is unknown."
        );
    }

    #[test]
    fn jwks_without_rsa_keys_are_refused() {
        assert!(keys_from_jwks(&json!({"keys": [{"kty": "EC"}]})).is_err());
        assert!(keys_from_jwks(&json!({})).is_err());
        assert!(
            keys_from_jwks(&json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]})).is_err()
        );
    }
}
