//! Emulated STS (API version `2015-04-01`): `AssumeRole` (signed; by permanent keys, or by
//! sessions of roles that may chain into the target) and `AssumeRoleWithOIDC` (unsigned; RRSA),
//! issuing short-lived credentials that the emulated KMS then accepts.
//!
//! Parameters and response shape from `shared/docs/alibaba-cloud-protocol.md` ("STS") and the
//! Python SDK `alibabacloud_sts20150401` (`RoleArn`, `RoleSessionName`, `DurationSeconds`,
//! `Policy`, `ExternalId`, `OIDCProviderArn`, `OIDCToken`; `DurationSeconds` 900 up to the
//! role's maximum, default 3600). `Policy` and `ExternalId` are accepted but not evaluated.
//! OIDC error codes from the STS error-code reference (`AuthenticationFail.*`, 401).

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use super::auth::Caller;
use super::identity::Revocation;
use super::protocol::{EmuError, RpcCall};
use super::service::RpcService;
use super::state::{Role, State, StsSession, lock};
use crate::alibaba::sign::format_timestamp;

/// STS API version.
pub const STS_API_VERSION: &str = "2015-04-01";

/// The STS service.
#[derive(Debug, Default)]
pub(crate) struct StsService;

impl RpcService for StsService {
    fn version(&self) -> &'static str {
        STS_API_VERSION
    }

    fn has_action(&self, action: &str) -> bool {
        matches!(action, "AssumeRole" | "AssumeRoleWithOIDC")
    }

    fn is_anonymous(&self, action: &str) -> bool {
        action == "AssumeRoleWithOIDC"
    }

    fn handle(
        &self,
        state: &State,
        call: &RpcCall,
        caller: Option<&Caller>,
        now: DateTime<Utc>,
    ) -> Result<Value, EmuError> {
        match call.action.as_str() {
            "AssumeRole" => assume_role(state, call, caller, now),
            "AssumeRoleWithOIDC" => assume_role_with_oidc(state, call, now),
            other => Err(EmuError::gateway(
                404,
                "InvalidAction.NotFound",
                format!("Specified api {other} is not found."),
            )),
        }
    }
}

fn random(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn valid_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fn required<'a>(call: &'a RpcCall, name: &str) -> Result<&'a str, EmuError> {
    call.param(name)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EmuError::missing(name))
}

fn session_name(call: &RpcCall) -> Result<&str, EmuError> {
    let name = required(call, "RoleSessionName")?;
    if !valid_session_name(name) {
        return Err(EmuError::gateway(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName must be 2 to 64 characters of letters, digits and . @ - _",
        ));
    }
    Ok(name)
}

fn entity_not_exist() -> EmuError {
    EmuError::gateway(404, "EntityNotExist.Role", "The specified Role not exists.")
}

/// The role named by `RoleArn`, unless it does not exist or was deleted through the admin API.
fn target_role<'a>(state: &'a State, role_arn: &str) -> Result<&'a Role, EmuError> {
    let role = state
        .roles
        .get(&role_arn.to_ascii_lowercase())
        .ok_or_else(entity_not_exist)?;
    if state.identity.revocation(role_arn) == Some(Revocation::Delete) {
        return Err(entity_not_exist());
    }
    Ok(role)
}

/// `DurationSeconds`: the role's minimum (900 unless a test seed lowers it) up to its maximum,
/// default 3600 (capped by the maximum).
fn duration(call: &RpcCall, role: &Role) -> Result<u64, EmuError> {
    match call.param("DurationSeconds").filter(|s| !s.is_empty()) {
        None => Ok(3600.min(role.max_session_duration)),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|d| (role.min_session_duration..=role.max_session_duration).contains(d))
            .ok_or_else(|| {
                EmuError::gateway(
                    400,
                    "InvalidParameter.DurationSeconds",
                    format!(
                        "The DurationSeconds must be between {} and {} seconds.",
                        role.min_session_duration, role.max_session_duration
                    ),
                )
            }),
    }
}

/// Minutes an expired STS session is still recognised (and answered as expired).
const SESSION_KEPT_AFTER_EXPIRY_MINUTES: i64 = 60;

/// Issues an STS session of `role` valid for `duration` seconds from `now`; returns the
/// `Credentials` object and the `AssumedRoleUser` object of the answer.
pub(crate) fn issue_session(
    state: &State,
    role: &Role,
    session_name: &str,
    duration: u64,
    now: DateTime<Utc>,
) -> (Value, Value, DateTime<Utc>) {
    let expiration = now + ChronoDuration::seconds(i64::try_from(duration).unwrap_or(3600));
    let sts_id = format!("STS.NU{}", random(24));
    let secret = random(44);
    let token = format!("CAIS{}", random(220));
    {
        let mut sessions = lock(&state.sessions);
        // Sessions are kept a while after they expire (so callers hear "expired" rather than
        // "unknown key"), then dropped: the map does not grow with every AssumeRole forever.
        let forget_before = now - ChronoDuration::minutes(SESSION_KEPT_AFTER_EXPIRY_MINUTES);
        sessions.retain(|_, s| s.expiration > forget_before);
        sessions.insert(
            sts_id.clone(),
            StsSession {
                secret: secret.clone().into(),
                token: token.clone().into(),
                expiration,
                role_arn: role.arn.clone(),
            },
        );
    }
    let role_name = role.arn.rsplit('/').next().unwrap_or_default();
    let role_id = format!("3{}", random(18).to_ascii_lowercase());
    (
        json!({
            "AccessKeyId": sts_id,
            "AccessKeySecret": secret,
            "SecurityToken": token,
            "Expiration": format_timestamp(expiration),
        }),
        json!({
            "AssumedRoleId": format!("{role_id}:{session_name}"),
            "Arn": format!("acs:ram::{}:assumed-role/{role_name}/{session_name}", state.account_id),
        }),
        expiration,
    )
}

fn assume_role(
    state: &State,
    call: &RpcCall,
    caller: Option<&Caller>,
    now: DateTime<Utc>,
) -> Result<Value, EmuError> {
    let role_arn = required(call, "RoleArn")?;
    let session_name = session_name(call)?;
    let no_permission = || {
        EmuError::gateway(
            403,
            "NoPermission",
            "You are not authorized to do this action. You should be authorized by RAM.",
        )
    };
    let role = target_role(state, role_arn)?;
    let target = role_arn.to_ascii_lowercase();
    let may_assume = match caller {
        Some(Caller::User { access_key_id }) => state
            .keys
            .get(access_key_id)
            .is_some_and(|k| k.assumable_roles.contains(&target)),
        // Role chaining: the caller's role must list the target in `assumable_roles`, and must
        // itself still exist.
        Some(Caller::Role {
            role_arn: source, ..
        }) => {
            state.identity.revocation(source) != Some(Revocation::Delete)
                && state
                    .roles
                    .get(&source.to_ascii_lowercase())
                    .is_some_and(|r| r.assumable_roles.contains(&target))
        }
        None => false,
    };
    if !may_assume || state.identity.revocation(role_arn) == Some(Revocation::Deny) {
        return Err(no_permission());
    }
    let duration = duration(call, role)?;
    let (credentials, user, _) = issue_session(state, role, session_name, duration, now);
    Ok(json!({
        "AssumedRoleUser": user,
        "Credentials": credentials,
    }))
}

/// Whether `subject` matches one of `patterns` (exact, or a prefix ending in `*`).
fn subject_allowed(patterns: &[String], subject: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => subject.starts_with(prefix),
        None => p == subject,
    })
}

/// `AssumeRoleWithOIDC`: unsigned; the token is verified against the provider's keys, issuer and
/// client ids, and the role must trust the provider and the token's subject.
fn assume_role_with_oidc(
    state: &State,
    call: &RpcCall,
    now: DateTime<Utc>,
) -> Result<Value, EmuError> {
    let role_arn = required(call, "RoleArn")?;
    let provider_arn = required(call, "OIDCProviderArn")?;
    let token = call.param("OIDCToken").unwrap_or_default();
    let session_name = session_name(call)?;
    let no_permission = |message: &str| {
        EmuError::gateway(401, "AuthenticationFail.NoPermission", message.to_owned())
    };
    let provider = state
        .identity
        .oidc_providers
        .get(&provider_arn.to_ascii_lowercase())
        .ok_or_else(|| no_permission("No such OIDC Provider registered."))?;
    let claims = super::oidc::verify(
        token,
        &provider.keys,
        &provider.issuer,
        &provider.client_ids,
        now,
    )?;
    let role = target_role(state, role_arn)?;
    let provider_key = provider.arn.to_ascii_lowercase();
    let trusted = role
        .oidc_trust
        .iter()
        .any(|(p, subjects)| *p == provider_key && subject_allowed(subjects, &claims.subject));
    if !trusted || state.identity.revocation(role_arn) == Some(Revocation::Deny) {
        return Err(no_permission("There is no permission"));
    }
    let duration = duration(call, role)?;
    let (credentials, user, _) = issue_session(state, role, session_name, duration, now);
    Ok(json!({
        "AssumedRoleUser": user,
        "Credentials": credentials,
        "OIDCTokenInfo": {
            "Subject": claims.subject,
            "Issuer": claims.issuer,
            "ClientIds": claims.audiences.join(","),
            "ExpirationTime": format_timestamp(claims.expiration),
            "IssuanceTime": claims.issued_at.map(format_timestamp),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> Role {
        Role {
            arn: "acs:ram::1:role/r".into(),
            allowed_secrets: None,
            max_session_duration: 3600,
            min_session_duration: 900,
            assumable_roles: Vec::new(),
            oidc_trust: Vec::new(),
        }
    }

    #[test]
    fn sessions_long_expired_are_forgotten_when_new_ones_are_issued() {
        let state = State::from_seed(&crate::emulator::Seed::default()).unwrap();
        let start = Utc::now();
        for _ in 0..3 {
            issue_session(&state, &role(), "s", 900, start);
        }
        let (creds, _, _) =
            issue_session(&state, &role(), "s", 900, start + ChronoDuration::hours(1));
        assert_eq!(
            lock(&state.sessions).len(),
            4,
            "recently expired sessions are kept"
        );
        issue_session(&state, &role(), "s", 900, start + ChronoDuration::hours(2));
        let sessions = lock(&state.sessions);
        assert_eq!(
            sessions.len(),
            2,
            "sessions expired over an hour ago are dropped"
        );
        assert!(sessions.contains_key(creds["AccessKeyId"].as_str().unwrap()));
    }
}
