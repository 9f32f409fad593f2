//! Built-in rule `managed-credentials`: managed KMS secrets -> conventional Secret keys.
//!
//! | `SecretType`               | secret JSON fields                  | Secret keys                     |
//! |----------------------------|-------------------------------------|---------------------------------|
//! | `Rds`, `PolarDB`, `Redis`  | `AccountName`, `AccountPassword`    | `username`, `password`          |
//! | `RAMCredentials`           | `AccessKeyId`, `AccessKeySecret`    | `AccessKeyId`, `AccessKeySecret`|
//!
//! (Field names as in Alibaba Cloud's secrets-manager JDBC driver and managed-credentials
//! providers.) Other fields (`GenerateTimestamp`, ...) are dropped.
//!
//! Config (optional): `{"secretType": "Rds", "keys": {"username": "DB_USER"}}` —
//! `secretType` treats the secret as that type (e.g. a `Generic` secret holding the same JSON);
//! `keys` renames output keys (conventional name -> your name).

use std::collections::BTreeMap;

use kmsync_guest_sdk::{
    DataType, DataValue, RuleError, TransformInput, TransformOutput, Value, is_valid_secret_key,
    rule,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    secret_type: Option<String>,
    #[serde(default)]
    keys: BTreeMap<String, String>,
}

/// (secret JSON field, conventional Secret key) for each supported type.
fn mapping(secret_type: &str) -> Option<&'static [(&'static str, &'static str)]> {
    const ACCOUNT: &[(&str, &str)] =
        &[("AccountName", "username"), ("AccountPassword", "password")];
    const RAM: &[(&str, &str)] = &[
        ("AccessKeyId", "AccessKeyId"),
        ("AccessKeySecret", "AccessKeySecret"),
    ];
    match secret_type {
        "Rds" | "PolarDB" | "Redis" => Some(ACCOUNT),
        "RAMCredentials" => Some(RAM),
        _ => None,
    }
}

const SUPPORTED: &str = "Rds, PolarDB, Redis, RAMCredentials";

fn parse_config(config: Value) -> Result<Config, RuleError> {
    let config: Config = if config.is_null() {
        Config::default()
    } else {
        serde_json::from_value(config).map_err(|e| {
            RuleError::invalid_config(format!(
                "expected {{\"secretType\": string, \"keys\": {{conventional: name}}}}: {e}"
            ))
        })?
    };
    if let Some(t) = &config.secret_type
        && mapping(t).is_none()
    {
        return Err(RuleError::invalid_config(format!(
            "secretType {t:?} is not supported (supported: {SUPPORTED})"
        )));
    }
    let conventional = ["username", "password", "AccessKeyId", "AccessKeySecret"];
    for (from, to) in &config.keys {
        if !conventional.contains(&from.as_str()) {
            return Err(RuleError::invalid_config(format!(
                "keys.{from}: not an output key (one of {})",
                conventional.join(", ")
            )));
        }
        if !is_valid_secret_key(to) {
            return Err(RuleError::invalid_config(format!(
                "keys.{from}: {to:?} is not a valid Secret key"
            )));
        }
    }
    Ok(config)
}

fn transform(input: TransformInput) -> Result<TransformOutput, RuleError> {
    let config = parse_config(input.config)?;
    let secret = &input.secret;
    let secret_type = config.secret_type.as_deref().unwrap_or(&secret.secret_type);
    let Some(fields) = mapping(secret_type) else {
        return Err(RuleError::new(
            "unsupported_type",
            format!(
                "secret {} has type {secret_type:?}; supported: {SUPPORTED} (set config.secretType to treat a Generic secret as one of them)",
                secret.name
            ),
        ));
    };
    if secret.data_type != DataType::Text {
        return Err(RuleError::invalid_input(format!(
            "secret {} is binary; managed credentials are JSON text",
            secret.name
        )));
    }
    let object: serde_json::Map<String, Value> = serde_json::from_str(secret.data.expose())
        .map_err(|e| {
            RuleError::new(
                "not_json_object",
                format!(
                    "secret {} is not a JSON object ({})",
                    secret.name,
                    kmsync_guest_sdk::__private::describe_json_error(&e)
                ),
            )
        })?;
    let mut out = TransformOutput::default();
    for (field, key) in fields {
        let value = match object.get(*field) {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(RuleError::new(
                    "invalid_field",
                    format!("field {field} of secret {} is not a string", secret.name),
                ));
            }
            None => {
                return Err(RuleError::new(
                    "missing_field",
                    format!(
                        "secret {} (type {secret_type}) has no field {field}",
                        secret.name
                    ),
                ));
            }
        };
        let key = config.keys.get(*key).map(String::as_str).unwrap_or(key);
        out.data.insert(key.to_owned(), DataValue::text(value));
    }
    Ok(out)
}

fn validate_config(config: Value) -> Result<(), RuleError> {
    parse_config(config).map(|_| ())
}

rule! {
    name: "managed-credentials",
    description: "Managed RDS/PolarDB/Redis secrets to username/password, RAM secrets to AccessKeyId/AccessKeySecret",
    config_schema: r#"{"type":["object","null"],"additionalProperties":false,"properties":{"secretType":{"enum":["Rds","PolarDB","Redis","RAMCredentials"]},"keys":{"type":"object","propertyNames":{"enum":["username","password","AccessKeyId","AccessKeySecret"]},"additionalProperties":{"type":"string","pattern":"^[-._a-zA-Z0-9]+$"}}}}"#,
    hooks: { transform: transform, validate_config: validate_config },
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsync_guest_sdk::testing::{self, secret, text};
    use serde_json::json;

    fn run(secret_type: &str, data: &str, config: Value) -> Result<TransformOutput, RuleError> {
        let mut input = secret(data);
        input.secret.secret_type = secret_type.into();
        input.config = config;
        testing::transform(&KMSYNC_RULE, &input)
    }

    #[test]
    fn metadata_is_valid() {
        assert_eq!(
            testing::check_metadata(&KMSYNC_RULE).name,
            "managed-credentials"
        );
    }

    #[test]
    fn rds_secrets_become_username_and_password() {
        let out = run(
            "Rds",
            r#"{"AccountName":"app","AccountPassword":"pw"}"#,
            Value::Null,
        )
        .unwrap();
        assert_eq!(text(&out, "username"), "app");
        assert_eq!(text(&out, "password"), "pw");
        assert_eq!(out.data.len(), 2);
    }

    #[test]
    fn ram_secrets_keep_the_access_key_pair_only() {
        let out = run(
            "RAMCredentials",
            r#"{"AccessKeyId":"LTAIexample","AccessKeySecret":"s","GenerateTimestamp":"2026-01-01 00:00:00","ExpireTimestamp":"2026-02-01 00:00:00"}"#,
            Value::Null,
        )
        .unwrap();
        assert_eq!(
            out.data.keys().collect::<Vec<_>>(),
            ["AccessKeyId", "AccessKeySecret"]
        );
        assert_eq!(text(&out, "AccessKeyId"), "LTAIexample");
    }

    #[test]
    fn keys_can_be_renamed_and_generic_secrets_typed_by_config() {
        let out = run(
            "Generic",
            r#"{"AccountName":"app","AccountPassword":"pw"}"#,
            json!({"secretType": "Rds", "keys": {"username": "DB_USER", "password": "DB_PASS"}}),
        )
        .unwrap();
        assert_eq!(text(&out, "DB_USER"), "app");
        assert_eq!(text(&out, "DB_PASS"), "pw");
    }

    #[test]
    fn unsupported_types_and_missing_fields_are_explained_without_values() {
        let err = run("Generic", r#"{"a":"b"}"#, Value::Null).unwrap_err();
        assert_eq!(err.code, "unsupported_type");
        let err = run("Rds", r#"{"AccountName":"app-user-value"}"#, Value::Null).unwrap_err();
        assert_eq!(err.code, "missing_field");
        assert!(err.message.contains("AccountPassword"));
        assert!(!err.message.contains("app-user-value"));
        let err = run(
            "Rds",
            r#"{"AccountName":1,"AccountPassword":"x"}"#,
            Value::Null,
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid_field");
    }

    #[test]
    fn bad_configs_are_rejected() {
        for config in [
            json!({"secretType": "ECS"}),
            json!({"keys": {"user": "x"}}),
            json!({"keys": {"username": "bad key"}}),
            json!({"other": 1}),
        ] {
            let err = testing::validate_config(&KMSYNC_RULE, config.clone()).unwrap_err();
            assert_eq!(err.code, "invalid_config", "{config}");
        }
    }
}
