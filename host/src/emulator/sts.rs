//! Emulated STS (API version `2015-04-01`): `AssumeRole`, issuing short-lived credentials that
//! the emulated KMS then accepts.
//!
//! Parameters and response shape from `shared/docs/alibaba-cloud-protocol.md` ("STS") and the
//! Python SDK `alibabacloud_sts20150401` (`RoleArn`, `RoleSessionName`, `DurationSeconds`,
//! `Policy`, `ExternalId`; `DurationSeconds` 900 up to the role's maximum, default 3600).
//! `Policy` and `ExternalId` are accepted but not evaluated.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use super::auth::Caller;
use super::protocol::{EmuError, RpcCall};
use super::service::RpcService;
use super::state::{State, StsSession, lock};
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
        action == "AssumeRole"
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

fn assume_role(
    state: &State,
    call: &RpcCall,
    caller: Option<&Caller>,
    now: DateTime<Utc>,
) -> Result<Value, EmuError> {
    let role_arn = call
        .param("RoleArn")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EmuError::missing("RoleArn"))?;
    let session_name = call
        .param("RoleSessionName")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EmuError::missing("RoleSessionName"))?;
    if !valid_session_name(session_name) {
        return Err(EmuError::gateway(
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName must be 2 to 64 characters of letters, digits and . @ - _",
        ));
    }
    let Some(Caller::User { access_key_id }) = caller else {
        return Err(EmuError::gateway(
            403,
            "NoPermission",
            "You are not authorized to do this action. STS sessions cannot assume roles in this emulator.",
        ));
    };
    let role = state
        .roles
        .get(&role_arn.to_ascii_lowercase())
        .ok_or_else(|| {
            EmuError::gateway(404, "EntityNotExist.Role", "The specified Role not exists.")
        })?;
    let may_assume = state
        .keys
        .get(access_key_id)
        .is_some_and(|k| k.assumable_roles.contains(&role_arn.to_ascii_lowercase()));
    if !may_assume {
        return Err(EmuError::gateway(
            403,
            "NoPermission",
            "You are not authorized to do this action. You should be authorized by RAM.",
        ));
    }
    let duration = match call.param("DurationSeconds").filter(|s| !s.is_empty()) {
        None => 3600.min(role.max_session_duration),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|d| (900..=role.max_session_duration).contains(d))
            .ok_or_else(|| {
                EmuError::gateway(
                    400,
                    "InvalidParameter.DurationSeconds",
                    format!(
                        "The DurationSeconds must be between 900 and {} seconds.",
                        role.max_session_duration
                    ),
                )
            })?,
    };
    let expiration = now + ChronoDuration::seconds(i64::try_from(duration).unwrap_or(3600));
    let sts_id = format!("STS.NU{}", random(24));
    let secret = random(44);
    let token = format!("CAIS{}", random(220));
    lock(&state.sessions).insert(
        sts_id.clone(),
        StsSession {
            secret: secret.clone().into(),
            token: token.clone().into(),
            expiration,
            role_arn: role.arn.clone(),
        },
    );
    let role_name = role.arn.rsplit('/').next().unwrap_or_default();
    let role_id = format!("3{}", random(18).to_ascii_lowercase());
    Ok(json!({
        "AssumedRoleUser": {
            "AssumedRoleId": format!("{role_id}:{session_name}"),
            "Arn": format!("acs:ram::{}:assumed-role/{role_name}/{session_name}", state.account_id),
        },
        "Credentials": {
            "AccessKeyId": sts_id,
            "AccessKeySecret": secret,
            "SecurityToken": token,
            "Expiration": format_timestamp(expiration),
        },
    }))
}
