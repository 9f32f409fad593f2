//! Emulated KMS Secrets Manager (API version `2016-01-20`): `GetSecretValue`, `ListSecrets`,
//! `DescribeSecret`, `ListSecretVersionIds`.
//!
//! Response bodies, error codes and statuses follow `shared/docs/alibaba-cloud-protocol.md`
//! ("KMS") and the Python SDK response models.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, ExpiredTokenStyle};
use super::protocol::{EmuError, RpcCall};
use super::seed::{ACS_CURRENT, VersionData};
use super::service::RpcService;
use super::state::{Secret, State, Version, lock};
use crate::alibaba::sign::format_timestamp;

/// The KMS service.
#[derive(Debug, Default)]
pub(crate) struct KmsService;

const ACTIONS: [&str; 4] = [
    "GetSecretValue",
    "ListSecrets",
    "DescribeSecret",
    "ListSecretVersionIds",
];

impl RpcService for KmsService {
    fn version(&self) -> &'static str {
        crate::kms::KMS_API_VERSION
    }

    fn expired_token_style(&self) -> ExpiredTokenStyle {
        ExpiredTokenStyle::Kms
    }

    fn has_action(&self, action: &str) -> bool {
        ACTIONS.contains(&action)
    }

    fn handle(
        &self,
        state: &State,
        call: &RpcCall,
        caller: Option<&Caller>,
        _now: DateTime<Utc>,
    ) -> Result<Value, EmuError> {
        let allowed = caller.and_then(|c| c.allowed_secrets(state));
        match call.action.as_str() {
            "GetSecretValue" => get_secret_value(state, call, allowed.as_deref()),
            "ListSecrets" => list_secrets(state, call, allowed.as_deref()),
            "DescribeSecret" => describe_secret(state, call, allowed.as_deref()),
            "ListSecretVersionIds" => list_secret_version_ids(state, call, allowed.as_deref()),
            other => Err(EmuError::gateway(
                404,
                "InvalidAction.NotFound",
                format!("Specified api {other} is not found."),
            )),
        }
    }
}

fn not_found() -> EmuError {
    EmuError::kms(
        404,
        "Forbidden.ResourceNotFound",
        "The resource is not found.",
    )
}

/// Whether `name` matches one of `patterns` (exact names, or prefixes ending in `*`).
pub(crate) fn name_allowed(patterns: Option<&[String]>, name: &str) -> bool {
    patterns.is_none_or(|ps| {
        ps.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
    })
}

/// Turns a `SecretName` parameter (name or ARN) into a name.
pub(crate) fn secret_name_of(state: &State, param: &str) -> Result<String, EmuError> {
    let Some(rest) = param.strip_prefix("acs:kms:") else {
        return Ok(param.to_owned());
    };
    // <region>:<account>:secret/<name>
    let mut parts = rest.splitn(3, ':');
    let (region, account, resource) = (parts.next(), parts.next(), parts.next());
    match (
        region,
        account,
        resource.and_then(|r| r.strip_prefix("secret/")),
    ) {
        (Some(r), Some(a), Some(name))
            if r == state.region && a == state.account_id && !name.is_empty() =>
        {
            Ok(name.to_owned())
        }
        (Some(_), Some(_), Some(_)) => Err(not_found()),
        _ => Err(EmuError::invalid_parameter(
            "The SecretName is not a valid secret ARN.",
        )),
    }
}

fn arn(state: &State, name: &str) -> String {
    format!(
        "acs:kms:{}:{}:secret/{}",
        state.region, state.account_id, name
    )
}

fn required_name(
    state: &State,
    call: &RpcCall,
    allowed: Option<&[String]>,
) -> Result<String, EmuError> {
    let param = call
        .param("SecretName")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EmuError::missing("SecretName"))?;
    let name = secret_name_of(state, param)?;
    if !name_allowed(allowed, &name) {
        return Err(EmuError::kms(
            403,
            "Forbidden.NoPermission",
            "This operation is forbidden by permission system.",
        ));
    }
    Ok(name)
}

fn bool_param(call: &RpcCall, name: &str) -> Result<bool, EmuError> {
    match call.param(name) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(EmuError::invalid_parameter(format!(
            "The parameter {name} must be true or false."
        ))),
    }
}

fn page_params(call: &RpcCall, default_size: u64) -> Result<(u64, u64), EmuError> {
    let parse = |name: &str, default: u64| -> Result<u64, EmuError> {
        match call.param(name) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                EmuError::invalid_parameter(format!("The parameter {name} is invalid."))
            }),
        }
    };
    let number = parse("PageNumber", 1)?;
    let size = parse("PageSize", default_size)?;
    if size > 100 {
        return Err(EmuError::invalid_parameter(
            "The parameter PageSize must be between 1 and 100.",
        ));
    }
    Ok((number, size))
}

fn stages_json(v: &Version) -> Value {
    json!({ "VersionStage": v.stages })
}

fn tags_json(s: &Secret) -> Value {
    let tags: Vec<Value> = s
        .tags
        .iter()
        .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
        .collect();
    json!({ "Tag": tags })
}

fn insert_rotation(out: &mut serde_json::Map<String, Value>, s: &Secret) {
    if let Some(r) = s.rotation.as_ref().filter(|_| s.is_managed()) {
        out.insert("AutomaticRotation".into(), json!(r.automatic_rotation));
        if let Some(i) = &r.rotation_interval {
            out.insert("RotationInterval".into(), json!(i));
        }
        if let Some(t) = r.last_rotation_date {
            out.insert("LastRotationDate".into(), json!(format_timestamp(t)));
        }
        if let Some(t) = r.next_rotation_date {
            out.insert("NextRotationDate".into(), json!(format_timestamp(t)));
        }
    }
}

pub(crate) fn get_secret_value(
    state: &State,
    call: &RpcCall,
    allowed: Option<&[String]>,
) -> Result<Value, EmuError> {
    let name = required_name(state, call, allowed)?;
    let fetch_extended = bool_param(call, "FetchExtendedConfig")?;
    let _dry_run = bool_param(call, "DryRun")?;
    let secrets = lock(&state.secrets);
    let secret = secrets.get(&name).ok_or_else(not_found)?;
    let stage = call.param("VersionStage").filter(|s| !s.is_empty());
    let version = match call.param("VersionId").filter(|s| !s.is_empty()) {
        Some(id) => {
            let v = secret
                .versions
                .iter()
                .find(|v| v.id == id)
                .ok_or_else(not_found)?;
            if stage.is_some_and(|st| !v.stages.iter().any(|s| s == st)) {
                return Err(not_found());
            }
            v
        }
        None => {
            let st = stage.unwrap_or(ACS_CURRENT);
            secret
                .versions
                .iter()
                .find(|v| v.stages.iter().any(|s| s == st))
                .ok_or_else(not_found)?
        }
    };
    let (data, data_type) = match &version.data {
        VersionData::Text(t) => (t.expose().to_owned(), "text"),
        VersionData::Binary(b) => (
            base64::engine::general_purpose::STANDARD.encode(b.expose()),
            "binary",
        ),
    };
    let mut out = serde_json::Map::new();
    out.insert("SecretName".into(), json!(secret.name));
    out.insert("SecretType".into(), json!(secret.secret_type));
    out.insert("SecretData".into(), json!(data));
    out.insert("SecretDataType".into(), json!(data_type));
    out.insert("VersionId".into(), json!(version.id));
    out.insert("VersionStages".into(), stages_json(version));
    out.insert(
        "CreateTime".into(),
        json!(format_timestamp(version.create_time)),
    );
    if fetch_extended
        && secret.is_managed()
        && let Some(ec) = &secret.extended_config
    {
        out.insert("ExtendedConfig".into(), json!(ec));
    }
    insert_rotation(&mut out, secret);
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
struct FilterWire {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Values", default)]
    values: Vec<String>,
}

const FILTER_KEYS: [&str; 7] = [
    "SecretName",
    "Description",
    "TagKey",
    "TagValue",
    "DKMSInstanceId",
    "SecretType",
    "Creator",
];

/// `Filters`: keys ANDed, values ORed. `SecretName` and `Description` match substrings; the
/// others match exactly (`Creator` matches the secret's `OwingService`, or `""` for user-made
/// secrets).
fn filter_matches(f: &FilterWire, s: &Secret) -> bool {
    f.values.iter().any(|v| match f.key.as_str() {
        "SecretName" => s.name.contains(v.as_str()),
        "Description" => s.description.as_deref().unwrap_or("").contains(v.as_str()),
        "TagKey" => s.tags.contains_key(v),
        "TagValue" => s.tags.values().any(|t| t == v),
        "DKMSInstanceId" => s.dkms_instance_id.as_deref() == Some(v.as_str()),
        "SecretType" => s.secret_type == *v,
        "Creator" => s.owing_service.as_deref().unwrap_or("") == v,
        _ => false,
    })
}

fn list_secrets(
    state: &State,
    call: &RpcCall,
    allowed: Option<&[String]>,
) -> Result<Value, EmuError> {
    let (page, size) = page_params(call, 10)?;
    let fetch_tags = bool_param(call, "FetchTags")?;
    let filters: Vec<FilterWire> = match call.param("Filters").filter(|f| !f.is_empty()) {
        None => Vec::new(),
        Some(text) => serde_json::from_str(text).map_err(|_| {
            EmuError::invalid_parameter(
                "The parameter Filters is not valid JSON of [{Key, Values}].",
            )
        })?,
    };
    if filters.len() > 10
        || filters.iter().any(|f| {
            !FILTER_KEYS.contains(&f.key.as_str()) || f.values.is_empty() || f.values.len() > 10
        })
    {
        return Err(EmuError::invalid_parameter(
            "The parameter Filters is invalid.",
        ));
    }
    let secrets = lock(&state.secrets);
    let mut matching: Vec<&Secret> = secrets
        .values()
        .filter(|s| name_allowed(allowed, &s.name))
        .filter(|s| filters.iter().all(|f| filter_matches(f, s)))
        .collect();
    matching.sort_by(|a, b| {
        a.create_time
            .cmp(&b.create_time)
            .then_with(|| a.name.cmp(&b.name))
    });
    let total = matching.len();
    let start = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let list: Vec<Value> = matching
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(100))
        .map(|s| {
            let mut o = serde_json::Map::new();
            o.insert("SecretName".into(), json!(s.name));
            o.insert("SecretType".into(), json!(s.secret_type));
            o.insert("CreateTime".into(), json!(format_timestamp(s.create_time)));
            o.insert("UpdateTime".into(), json!(format_timestamp(s.update_time)));
            if let Some(t) = s.planned_delete_time {
                o.insert("PlannedDeleteTime".into(), json!(format_timestamp(t)));
            }
            if let Some(os) = &s.owing_service {
                o.insert("OwingService".into(), json!(os));
            }
            if fetch_tags {
                o.insert("Tags".into(), tags_json(s));
            }
            Value::Object(o)
        })
        .collect();
    Ok(json!({
        "PageNumber": page,
        "PageSize": size,
        "TotalCount": total,
        "SecretList": { "Secret": list },
    }))
}

fn describe_secret(
    state: &State,
    call: &RpcCall,
    allowed: Option<&[String]>,
) -> Result<Value, EmuError> {
    let name = required_name(state, call, allowed)?;
    let fetch_tags = bool_param(call, "FetchTags")?;
    let secrets = lock(&state.secrets);
    let s = secrets.get(&name).ok_or_else(not_found)?;
    let mut o = serde_json::Map::new();
    o.insert("Arn".into(), json!(arn(state, &s.name)));
    o.insert("SecretName".into(), json!(s.name));
    o.insert("SecretType".into(), json!(s.secret_type));
    o.insert(
        "Description".into(),
        json!(s.description.clone().unwrap_or_default()),
    );
    o.insert("CreateTime".into(), json!(format_timestamp(s.create_time)));
    o.insert("UpdateTime".into(), json!(format_timestamp(s.update_time)));
    if let Some(k) = &s.encryption_key_id {
        o.insert("EncryptionKeyId".into(), json!(k));
    }
    if let Some(d) = &s.dkms_instance_id {
        o.insert("DKMSInstanceId".into(), json!(d));
    }
    if let Some(os) = &s.owing_service {
        o.insert("OwingService".into(), json!(os));
    }
    if let Some(t) = s.planned_delete_time {
        o.insert("PlannedDeleteTime".into(), json!(format_timestamp(t)));
    }
    if s.is_managed()
        && let Some(ec) = &s.extended_config
    {
        o.insert("ExtendedConfig".into(), json!(ec));
    }
    insert_rotation(&mut o, s);
    if fetch_tags {
        o.insert("Tags".into(), tags_json(s));
    }
    Ok(Value::Object(o))
}

fn list_secret_version_ids(
    state: &State,
    call: &RpcCall,
    allowed: Option<&[String]>,
) -> Result<Value, EmuError> {
    let name = required_name(state, call, allowed)?;
    let include_deprecated = bool_param(call, "IncludeDeprecated")?;
    let (page, size) = page_params(call, 20)?;
    let secrets = lock(&state.secrets);
    let s = secrets.get(&name).ok_or_else(not_found)?;
    let versions: Vec<&Version> = s
        .versions
        .iter()
        .filter(|v| include_deprecated || !v.stages.is_empty())
        .collect();
    let total = versions.len();
    let start = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let list: Vec<Value> = versions
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(100))
        .map(|v| {
            json!({
                "VersionId": v.id,
                "CreateTime": format_timestamp(v.create_time),
                "VersionStages": stages_json(v),
            })
        })
        .collect();
    Ok(json!({
        "SecretName": s.name,
        "PageNumber": page,
        "PageSize": size,
        "TotalCount": total,
        "VersionIds": { "VersionId": list },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns_match_exact_names_and_prefixes() {
        let ps = vec!["app/*".to_owned(), "db".to_owned()];
        assert!(name_allowed(Some(&ps), "app/x"));
        assert!(name_allowed(Some(&ps), "db"));
        assert!(!name_allowed(Some(&ps), "db2"));
        assert!(!name_allowed(Some(&ps), "other"));
        assert!(name_allowed(None, "anything"));
        assert!(name_allowed(Some(&["*".to_owned()]), "anything"));
    }
}
