//! Emulated OOS (CloudOps Orchestration Service, API version `2019-06-01`): the encrypted
//! parameter action `GetSecretParameter`.
//!
//! Request: `Name` (required), `WithDecryption` (`true` returns the value; otherwise `Value` is
//! left out, as the service returns null), `ParameterVersion` (1.., default latest),
//! `RegionId` (accepted). Answer `{RequestId, Parameter: {Id, Name, Type: "Secret", Value,
//! ParameterVersion, KeyId, Description, CreatedDate, UpdatedDate, CreatedBy, UpdatedBy,
//! ShareType, Tags, Constraints, ResourceGroupId}}` (fields of the Python SDK model
//! `GetSecretParameterResponseBodyParameter`). Errors use the gateway body:
//! `EntityNotExists.Parameter` 404 for an unknown name or version, `MissingName` 400,
//! `InvalidParameter` 400 for a malformed `ParameterVersion` or `WithDecryption`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::Caller;
use super::protocol::{EmuError, RpcCall};
use super::seed::SeedError;
use super::service::RpcService;
use super::state::State;
use crate::alibaba::sign::format_timestamp;
use crate::oos::OOS_API_VERSION;
use crate::value::SecretString;

/// An OOS encrypted parameter: one value (version 1) or several versions. `Debug` omits values.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOosParameter {
    /// Parameter name (1–180 characters), e.g. `/prod/db/password` or `db-password`.
    pub name: String,
    /// Shorthand for a single version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Versions, numbered from 1; the highest is the current one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
    /// `KeyId` of the KMS key said to encrypt it (echoed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `Description` (echoed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `Tags` (echoed as an object).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// `CreatedDate` (default: emulator start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SeedOosParameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedOosParameter")
            .field("name", &self.name)
            .field(
                "versions",
                &self.value.iter().count().max(self.versions.len()),
            )
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SeedOosParameter {
    /// A parameter with one version (builder style, for tests).
    pub fn text(name: &str, value: &str) -> Self {
        Self {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            versions: Vec::new(),
            key_id: None,
            description: None,
            tags: BTreeMap::new(),
            create_time: None,
        }
    }

    /// A parameter with these versions, 1 first (builder style, for tests).
    pub fn versioned(name: &str, values: &[&str]) -> Self {
        Self {
            value: None,
            versions: values.iter().map(|v| (*v).to_owned()).collect(),
            ..Self::text(name, "")
        }
    }
}

/// A parameter as the emulator holds it.
#[derive(Debug)]
pub(crate) struct OosParameter {
    pub id: String,
    pub name: String,
    pub versions: Vec<SecretString>,
    pub key_id: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub created: DateTime<Utc>,
}

/// Checks a seed entry and builds the parameter.
pub(crate) fn build_parameter(
    seed: &SeedOosParameter,
    now: DateTime<Utc>,
) -> Result<OosParameter, SeedError> {
    let what = format!("OOS parameter {:?}", seed.name);
    let invalid = |reason: &str| SeedError::Invalid {
        what: what.clone(),
        reason: reason.to_owned(),
    };
    if seed.name.is_empty() || seed.name.chars().count() > 180 {
        return Err(invalid("name must be 1 to 180 characters"));
    }
    let versions: Vec<SecretString> = match (&seed.value, seed.versions.is_empty()) {
        (Some(v), true) => vec![SecretString::from(v.as_str())],
        (None, false) => seed
            .versions
            .iter()
            .map(|v| SecretString::from(v.as_str()))
            .collect(),
        _ => return Err(invalid("needs exactly one of value or versions")),
    };
    Ok(OosParameter {
        id: format!("p-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
        name: seed.name.clone(),
        versions,
        key_id: seed
            .key_id
            .clone()
            .unwrap_or_else(|| "alias/acs/oos".to_owned()),
        description: seed.description.clone().unwrap_or_default(),
        tags: seed.tags.clone(),
        created: seed.create_time.unwrap_or(now),
    })
}

/// The OOS service.
#[derive(Debug, Default)]
pub(crate) struct OosService;

impl RpcService for OosService {
    fn version(&self) -> &'static str {
        OOS_API_VERSION
    }

    fn has_action(&self, action: &str) -> bool {
        action == "GetSecretParameter"
    }

    fn handle(
        &self,
        state: &State,
        call: &RpcCall,
        _caller: Option<&Caller>,
        _now: DateTime<Utc>,
    ) -> Result<Value, EmuError> {
        get_secret_parameter(state, call)
    }
}

fn not_found(name: &str) -> EmuError {
    EmuError::gateway(
        404,
        "EntityNotExists.Parameter",
        format!("The Parameter ({name}) does not exist."),
    )
}

fn get_secret_parameter(state: &State, call: &RpcCall) -> Result<Value, EmuError> {
    let name = call
        .param("Name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| EmuError::missing("Name"))?;
    let decrypt = match call.param("WithDecryption") {
        None | Some("") => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => {
            return Err(EmuError::gateway(
                400,
                "InvalidParameter",
                "The parameter WithDecryption must be true or false.",
            ));
        }
    };
    let p = state
        .oos_parameters
        .get(name)
        .ok_or_else(|| not_found(name))?;
    let version = match call.param("ParameterVersion").filter(|v| !v.is_empty()) {
        None => p.versions.len(),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            EmuError::gateway(
                400,
                "InvalidParameter",
                "The parameter ParameterVersion must be a positive integer.",
            )
        })?,
    };
    let value = p.versions.get(version - 1).ok_or_else(|| not_found(name))?;
    let created = format_timestamp(p.created);
    let mut parameter = json!({
        "Id": p.id,
        "Name": p.name,
        "Type": "Secret",
        "ParameterVersion": version,
        "KeyId": p.key_id,
        "Description": p.description,
        "CreatedDate": created,
        "UpdatedDate": created,
        "CreatedBy": format!("{}", state.account_id),
        "UpdatedBy": format!("{}", state.account_id),
        "ShareType": "Private",
        "Tags": p.tags,
        "Constraints": "{}",
        "ResourceGroupId": "rg-emulator",
    });
    if decrypt && let Value::Object(map) = &mut parameter {
        map.insert("Value".into(), json!(value.expose()));
    }
    Ok(json!({ "Parameter": parameter }))
}
