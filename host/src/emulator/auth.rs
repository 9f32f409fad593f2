//! Request authentication: V1 and V3 signatures, timestamps (±15 minutes), nonce reuse, and STS
//! tokens with their expiry. Codes and statuses from `shared/docs/alibaba-cloud-protocol.md`
//! ("Gateway errors", KMS error table).

use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, Utc};

use super::protocol::{EmuError, RpcCall};
use super::state::{State, lock};
use crate::alibaba::sign::{
    ACS3_HMAC_SHA256, TIMESTAMP_FORMAT, parse_v3_authorization, sha256_hex, signatures_equal,
    v1_sign_string, v1_string_to_sign, v3_canonical_request, v3_sign_string, v3_string_to_sign,
};
use crate::value::SecretString;

/// Largest accepted difference between a request's timestamp and the emulator's clock.
pub(crate) const MAX_SKEW_MINUTES: i64 = 15;

/// Who signed a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A permanent AccessKey of the seed.
    User { access_key_id: String },
    /// An STS session issued by `AssumeRole`.
    Role {
        access_key_id: String,
        role_arn: String,
    },
}

impl Caller {
    /// Secret name patterns this caller may read (`None` = all).
    pub fn allowed_secrets(&self, state: &State) -> Option<Vec<String>> {
        match self {
            Self::User { access_key_id } => state
                .keys
                .get(access_key_id)
                .and_then(|k| k.allowed_secrets.clone()),
            // A deleted role's sessions lose every permission.
            Self::Role { role_arn, .. }
                if state.identity.revocation(role_arn)
                    == Some(super::identity::Revocation::Delete) =>
            {
                Some(Vec::new())
            }
            Self::Role { role_arn, .. } => state
                .roles
                .get(&role_arn.to_ascii_lowercase())
                .and_then(|r| r.allowed_secrets.clone()),
        }
    }
}

/// How a service reports an expired STS token: KMS answers `404 InvalidAccessKeyId.NotFound`
/// (KMS error table), other services `400 InvalidSecurityToken.Expired` (gateway errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExpiredTokenStyle {
    Kms,
    Gateway,
}

fn signature_mismatch(string_to_sign: &str) -> EmuError {
    EmuError::gateway(
        400,
        "SignatureDoesNotMatch",
        format!(
            "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
        ),
    )
}

fn incomplete(message: &str) -> EmuError {
    EmuError::gateway(
        400,
        "IncompleteSignature",
        format!("The request signature does not conform to Aliyun standards. {message}"),
    )
}

/// The key material of an AccessKeyId: permanent keys from the seed, STS sessions by id.
struct Principal {
    caller: Caller,
    secret: SecretString,
    token: Option<(SecretString, DateTime<Utc>)>,
}

fn principal(state: &State, access_key_id: &str) -> Result<Principal, EmuError> {
    if let Some(key) = state.keys.get(access_key_id) {
        return Ok(Principal {
            caller: Caller::User {
                access_key_id: access_key_id.to_owned(),
            },
            secret: key.secret.clone(),
            token: None,
        });
    }
    if let Some(session) = lock(&state.sessions).get(access_key_id) {
        return Ok(Principal {
            caller: Caller::Role {
                access_key_id: access_key_id.to_owned(),
                role_arn: session.role_arn.clone(),
            },
            secret: session.secret.clone(),
            token: Some((session.token.clone(), session.expiration)),
        });
    }
    Err(EmuError::gateway(
        404,
        "InvalidAccessKeyId.NotFound",
        "Specified access key is not found.",
    ))
}

fn check_token(
    p: &Principal,
    presented: Option<&str>,
    now: DateTime<Utc>,
    style: ExpiredTokenStyle,
) -> Result<(), EmuError> {
    let Some((token, expiration)) = &p.token else {
        return Ok(());
    };
    let Some(presented) = presented.filter(|t| !t.is_empty()) else {
        return Err(EmuError::gateway(
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            "The security token you provided does not match the access key.",
        ));
    };
    if !signatures_equal(presented, token.expose()) {
        return Err(EmuError::gateway(
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            "The security token you provided does not match the access key.",
        ));
    }
    if *expiration <= now {
        return Err(match style {
            ExpiredTokenStyle::Kms => EmuError::kms(
                404,
                "InvalidAccessKeyId.NotFound",
                "The specified access key is not found or the security token has expired.",
            ),
            ExpiredTokenStyle::Gateway => EmuError::gateway(
                400,
                "InvalidSecurityToken.Expired",
                "Specified SecurityToken is expired.",
            ),
        });
    }
    Ok(())
}

fn check_timestamp(value: &str, now: DateTime<Utc>) -> Result<(), EmuError> {
    let parsed = NaiveDateTime::parse_from_str(value, TIMESTAMP_FORMAT)
        .map(|t| t.and_utc())
        .map_err(|_| {
            EmuError::gateway(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        })?;
    if (now - parsed).abs() > ChronoDuration::minutes(MAX_SKEW_MINUTES) {
        return Err(EmuError::gateway(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        ));
    }
    Ok(())
}

fn check_nonce(
    state: &State,
    access_key_id: &str,
    nonce: &str,
    now: DateTime<Utc>,
) -> Result<(), EmuError> {
    if lock(&state.nonces).insert(access_key_id, nonce, now) {
        Ok(())
    } else {
        Err(EmuError::gateway(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ))
    }
}

/// Authenticates `call` at `now`.
pub(crate) fn authenticate(
    state: &State,
    call: &RpcCall,
    now: DateTime<Utc>,
    style: ExpiredTokenStyle,
) -> Result<Caller, EmuError> {
    match call.header("authorization") {
        Some(auth) if auth.trim_start().starts_with("ACS3-") => {
            authenticate_v3(state, call, auth, now, style)
        }
        Some(_) if !call.params.contains_key("Signature") => {
            Err(incomplete("Unsupported Authorization header."))
        }
        _ => authenticate_v1(state, call, now, style),
    }
}

fn authenticate_v1(
    state: &State,
    call: &RpcCall,
    now: DateTime<Utc>,
    style: ExpiredTokenStyle,
) -> Result<Caller, EmuError> {
    for name in [
        "Signature",
        "AccessKeyId",
        "SignatureMethod",
        "SignatureNonce",
        "Timestamp",
    ] {
        if call.param(name).is_none_or(str::is_empty) {
            return Err(EmuError::missing(name));
        }
    }
    // V1 signs the parameters only: the action and version that run must be the signed
    // ones, not an `x-acs-action` / `x-acs-version` header added next to them.
    if call.param("Action") != Some(call.action.as_str())
        || call.param("Version") != Some(call.version.as_str())
    {
        return Err(incomplete(
            "The Action and Version parameters must be signed and match the x-acs-action and x-acs-version headers.",
        ));
    }
    let method = call.param("SignatureMethod").unwrap_or_default();
    if method != "HMAC-SHA1" {
        return Err(EmuError::gateway(
            400,
            "InvalidSignatureMethod",
            format!("Specified signature method {method:?} is not supported."),
        ));
    }
    if let Some(version) = call.param("SignatureVersion")
        && version != "1.0"
    {
        return Err(EmuError::gateway(
            400,
            "InvalidSignatureVersion",
            format!("Specified signature version {version:?} is not supported."),
        ));
    }
    let access_key_id = call.param("AccessKeyId").unwrap_or_default();
    let p = principal(state, access_key_id)?;
    check_token(&p, call.param("SecurityToken"), now, style)?;
    let pairs = call.all_pairs();
    let string_to_sign = v1_string_to_sign(call.method.as_str(), &pairs);
    let expected = v1_sign_string(&p.secret, &string_to_sign);
    if !signatures_equal(&expected, call.param("Signature").unwrap_or_default()) {
        return Err(signature_mismatch(&string_to_sign));
    }
    check_timestamp(call.param("Timestamp").unwrap_or_default(), now)?;
    check_nonce(
        state,
        access_key_id,
        call.param("SignatureNonce").unwrap_or_default(),
        now,
    )?;
    lock(&state.counters).record_signature("v1");
    Ok(p.caller)
}

fn authenticate_v3(
    state: &State,
    call: &RpcCall,
    authorization: &str,
    now: DateTime<Utc>,
    style: ExpiredTokenStyle,
) -> Result<Caller, EmuError> {
    let auth = parse_v3_authorization(authorization)
        .ok_or_else(|| incomplete("The Authorization header is malformed."))?;
    if auth.algorithm != ACS3_HMAC_SHA256 {
        return Err(incomplete(&format!(
            "Signature algorithm {:?} is not supported.",
            auth.algorithm
        )));
    }
    for name in [
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
        "x-acs-action",
        "x-acs-version",
    ] {
        if call.header(name).is_none_or(str::is_empty) {
            return Err(incomplete(&format!("Header {name} is missing.")));
        }
    }
    // host and every x-acs-* header present must be signed.
    let mut must_sign: Vec<String> = vec!["host".to_owned()];
    for name in call.headers.keys() {
        if name.as_str().starts_with("x-acs-") {
            must_sign.push(name.as_str().to_owned());
        }
    }
    if let Some(unsigned) = must_sign.iter().find(|h| !auth.signed_headers.contains(h)) {
        return Err(incomplete(&format!("Header {unsigned} must be signed.")));
    }
    if let Some(id) = call.header("x-acs-accesskey-id")
        && id != auth.access_key_id
    {
        return Err(incomplete(
            "x-acs-accesskey-id does not match the Credential.",
        ));
    }
    let p = principal(state, &auth.access_key_id)?;
    check_token(&p, call.header("x-acs-security-token"), now, style)?;

    let declared_hash = call.header("x-acs-content-sha256").unwrap_or_default();
    if !declared_hash.eq_ignore_ascii_case(&sha256_hex(&call.body)) {
        return Err(EmuError::gateway(
            400,
            "SignatureDoesNotMatch",
            "x-acs-content-sha256 does not match the SHA-256 of the request body.",
        ));
    }
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        let values: Vec<&str> = call
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(incomplete(&format!(
                "Signed header {name} is not in the request."
            )));
        }
        for v in values {
            signed.push((name.clone(), v.to_owned()));
        }
    }
    let canonical = v3_canonical_request(
        call.method.as_str(),
        &call.path,
        &call.query,
        &signed,
        declared_hash,
    );
    let string_to_sign = v3_string_to_sign(&canonical.canonical_request);
    let expected = v3_sign_string(&p.secret, &string_to_sign);
    if !signatures_equal(&expected, &auth.signature.to_ascii_lowercase()) {
        return Err(signature_mismatch(&string_to_sign));
    }
    check_timestamp(call.header("x-acs-date").unwrap_or_default(), now)?;
    check_nonce(
        state,
        &auth.access_key_id,
        call.header("x-acs-signature-nonce").unwrap_or_default(),
        now,
    )?;
    lock(&state.counters).record_signature("v3");
    Ok(p.caller)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
    use bytes::Bytes;

    use super::*;
    use crate::alibaba::sign::{SigningCredentials, sign_v1, sign_v3};
    use crate::emulator::seed::Seed;

    fn state() -> State {
        let seed = Seed::default().with_access_key("ak", "sk");
        State::from_seed(&seed).unwrap()
    }

    /// Encodes like Python's `urllib.parse.urlencode` (spaces as `+`), as the official SDK does.
    fn urlencode_plus(pairs: &[(String, String)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish()
    }

    fn v1_call(params: &BTreeMap<String, String>, secret: &str, token: Option<&str>) -> RpcCall {
        let secret = SecretString::from(secret);
        let token = token.map(SecretString::from);
        let creds = SigningCredentials {
            access_key_id: "ak",
            access_key_secret: &secret,
            security_token: token.as_ref(),
        };
        let nonce = uuid::Uuid::new_v4().to_string();
        let signed = sign_v1(
            "POST",
            "ListSecrets",
            "2016-01-20",
            params,
            creds,
            Utc::now(),
            &nonce,
        );
        let query = urlencode_plus(&signed);
        RpcCall::parse(
            Method::POST,
            "/",
            Some(&query),
            HeaderMap::new(),
            Bytes::new(),
        )
    }

    #[test]
    fn v1_accepts_plus_encoded_spaces_and_literal_plus_signs() {
        let st = state();
        let mut params = BTreeMap::new();
        params.insert(
            "Filters".to_owned(),
            r#"[{"Key": "SecretName", "Values": ["a+b c"]}]"#.to_owned(),
        );
        let call = v1_call(&params, "sk", None);
        assert!(call.query.iter().any(|(_, v)| v.contains("a+b c")));
        let caller = authenticate(&st, &call, Utc::now(), ExpiredTokenStyle::Kms).unwrap();
        assert_eq!(
            caller,
            Caller::User {
                access_key_id: "ak".into()
            }
        );
    }

    #[test]
    fn v1_with_a_wrong_secret_reports_the_servers_string_to_sign() {
        let st = state();
        let call = v1_call(&BTreeMap::new(), "wrong", None);
        let err = authenticate(&st, &call, Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (400, "SignatureDoesNotMatch")
        );
        assert!(
            err.message
                .contains("server string to sign is:POST&%2F&AccessKeyId%3Dak")
        );
    }

    #[test]
    fn v1_requests_run_the_signed_action_not_an_unsigned_header() {
        let st = state();
        let mut call = v1_call(&BTreeMap::new(), "sk", None);
        call.headers.insert(
            "x-acs-action",
            axum::http::HeaderValue::from_static("GetSecretValue"),
        );
        let call = RpcCall::parse(
            call.method,
            "/",
            Some(&urlencode_plus(&call.query)),
            call.headers,
            call.body,
        );
        assert_eq!(call.action, "GetSecretValue");
        let err = authenticate(&st, &call, Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(err.code, "IncompleteSignature", "{}", err.message);
    }

    #[test]
    fn v1_missing_parameters_are_named() {
        let st = state();
        let call = RpcCall::parse(
            Method::GET,
            "/",
            Some("Action=ListSecrets&Version=2016-01-20&Signature=x&AccessKeyId=ak"),
            HeaderMap::new(),
            Bytes::new(),
        );
        let err = authenticate(&st, &call, Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(err.code, "MissingSignatureMethod");
    }

    fn v3_call(mutate: impl FnOnce(&mut Vec<(String, String)>), body: &'static [u8]) -> RpcCall {
        let secret = SecretString::from("sk");
        let creds = SigningCredentials {
            access_key_id: "ak",
            access_key_secret: &secret,
            security_token: None,
        };
        let query = vec![("SecretName".to_owned(), "a b".to_owned())];
        let nonce = uuid::Uuid::new_v4().to_string();
        let mut headers = sign_v3(
            "POST",
            "127.0.0.1:1",
            "GetSecretValue",
            "2016-01-20",
            &query,
            b"",
            creds,
            Utc::now(),
            &nonce,
        );
        mutate(&mut headers);
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(&v).unwrap(),
            );
        }
        RpcCall::parse(
            Method::POST,
            "/",
            Some("SecretName=a+b"),
            map,
            Bytes::from_static(body),
        )
    }

    #[test]
    fn v3_requests_signed_by_the_client_are_accepted() {
        let st = state();
        let call = v3_call(|_| {}, b"");
        assert!(authenticate(&st, &call, Utc::now(), ExpiredTokenStyle::Kms).is_ok());
        // Replaying the very same request reuses its nonce.
        let err = authenticate(&st, &call, Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(err.code, "SignatureNonceUsed");
    }

    #[test]
    fn v3_unsigned_acs_headers_body_mismatch_and_bad_algorithms_are_refused() {
        let st = state();
        let extra = v3_call(|h| h.push(("x-acs-extra".into(), "1".into())), b"");
        let err = authenticate(&st, &extra, Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(err.code, "IncompleteSignature");
        assert!(
            err.message.contains("x-acs-extra must be signed"),
            "{}",
            err.message
        );

        let body = v3_call(|_| {}, b"tampered");
        let err = authenticate(&st, &body, Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(err.code, "SignatureDoesNotMatch");

        let sm3 = v3_call(
            |h| {
                let auth = h.last_mut().unwrap();
                auth.1 = auth.1.replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3");
            },
            b"",
        );
        let err = authenticate(&st, &sm3, Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(err.code, "IncompleteSignature");

        let tampered = v3_call(|h| h[1].1 = "ListSecrets".into(), b"");
        let err = authenticate(&st, &tampered, Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(err.code, "SignatureDoesNotMatch");
    }

    #[test]
    fn sts_tokens_must_match_and_be_unexpired() {
        let st = state();
        lock(&st.sessions).insert(
            "STS.x".into(),
            super::super::state::StsSession {
                secret: "stssecret".into(),
                token: "tok".into(),
                expiration: Utc::now() + ChronoDuration::minutes(10),
                role_arn: "acs:ram::1:role/r".into(),
            },
        );
        let call_with = |token: Option<&str>| {
            let secret = SecretString::from("stssecret");
            let token = token.map(SecretString::from);
            let creds = SigningCredentials {
                access_key_id: "STS.x",
                access_key_secret: &secret,
                security_token: token.as_ref(),
            };
            let nonce = uuid::Uuid::new_v4().to_string();
            let signed = sign_v1(
                "POST",
                "ListSecrets",
                "2016-01-20",
                &BTreeMap::new(),
                creds,
                Utc::now(),
                &nonce,
            );
            RpcCall::parse(
                Method::POST,
                "/",
                Some(&urlencode_plus(&signed)),
                HeaderMap::new(),
                Bytes::new(),
            )
        };
        let ok = authenticate(
            &st,
            &call_with(Some("tok")),
            Utc::now(),
            ExpiredTokenStyle::Kms,
        )
        .unwrap();
        assert!(matches!(ok, Caller::Role { .. }));
        let err = authenticate(
            &st,
            &call_with(Some("other")),
            Utc::now(),
            ExpiredTokenStyle::Kms,
        )
        .unwrap_err();
        assert_eq!(err.code, "InvalidSecurityToken.MismatchWithAccessKey");
        let err =
            authenticate(&st, &call_with(None), Utc::now(), ExpiredTokenStyle::Kms).unwrap_err();
        assert_eq!(err.code, "InvalidSecurityToken.MismatchWithAccessKey");

        st.expire_sts_sessions();
        let err = authenticate(
            &st,
            &call_with(Some("tok")),
            Utc::now(),
            ExpiredTokenStyle::Kms,
        )
        .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (404, "InvalidAccessKeyId.NotFound")
        );
        let err = authenticate(
            &st,
            &call_with(Some("tok")),
            Utc::now(),
            ExpiredTokenStyle::Gateway,
        )
        .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (400, "InvalidSecurityToken.Expired")
        );
    }

    #[test]
    fn timestamps_must_be_well_formed_and_within_fifteen_minutes() {
        let now = Utc::now();
        assert!(check_timestamp(&crate::alibaba::sign::format_timestamp(now), now).is_ok());
        let late = crate::alibaba::sign::format_timestamp(now - ChronoDuration::minutes(14));
        assert!(check_timestamp(&late, now).is_ok());
        let old = crate::alibaba::sign::format_timestamp(now - ChronoDuration::minutes(16));
        assert_eq!(
            check_timestamp(&old, now).unwrap_err().code,
            "InvalidTimeStamp.Expired"
        );
        assert_eq!(
            check_timestamp("yesterday", now).unwrap_err().code,
            "InvalidTimeStamp.Format"
        );
    }
}
