//! Built-in rule `extract`: ack-secret-manager's `dataProcess.extract` with `replaceRule`.
//!
//! Every top-level key of the secret's JSON object becomes a Secret key; string values are
//! stored as-is, other values as compact JSON. `replaceRule` (`[{source, target}]`, applied in
//! order) rewrites key names with regex replacement (`$1` / `${name}` expand as in Go's
//! `ReplaceAllString`). Unlike ack v0.6 (fault #8) the rules never touch values.
//! Two keys renamed to the same Secret key, or a renamed key that is not a valid Secret key,
//! are errors rather than silent overwrites.
//!
//! Config: `{"replaceRule": [{"source": "^n.*e$", "target": "alibabacloud"}]}` (optional).

use std::collections::BTreeMap;

use kmsync_guest_sdk::{
    DataType, DataValue, RuleError, TransformInput, TransformOutput, Value, is_valid_secret_key,
    rule,
};
use regex_lite::Regex;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    replace_rule: Vec<ReplaceRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceRule {
    source: String,
    target: String,
}

fn parse_config(config: Value) -> Result<Vec<(Regex, String)>, RuleError> {
    let config: Config = if config.is_null() {
        Config::default()
    } else {
        serde_json::from_value(config).map_err(|e| {
            RuleError::invalid_config(format!(
                "expected {{\"replaceRule\": [{{\"source\", \"target\"}}, ...]}}: {e}"
            ))
        })?
    };
    config
        .replace_rule
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            Regex::new(&r.source).map(|re| (re, r.target)).map_err(|e| {
                RuleError::invalid_config(format!(
                    "replaceRule[{i}].source is not a valid regex: {e}"
                ))
            })
        })
        .collect()
}

fn rename(key: &str, rules: &[(Regex, String)]) -> String {
    let mut key = key.to_owned();
    for (re, target) in rules {
        key = re.replace_all(&key, target.as_str()).into_owned();
    }
    key
}

fn transform(input: TransformInput) -> Result<TransformOutput, RuleError> {
    let rules = parse_config(input.config)?;
    let secret = &input.secret;
    if secret.data_type != DataType::Text {
        return Err(RuleError::invalid_input(format!(
            "secret {} is binary; extract needs a text secret holding a JSON object",
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
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in object {
        let new_key = rename(&key, &rules);
        if !is_valid_secret_key(&new_key) {
            return Err(RuleError::new(
                "invalid_key",
                format!(
                    "key {key:?} of secret {} becomes {new_key:?}, which is not a valid Secret key ([-._a-zA-Z0-9]+, at most 253 characters); add a replaceRule",
                    secret.name
                ),
            ));
        }
        if let Some(first) = origin.get(&new_key) {
            return Err(RuleError::new(
                "duplicate_key",
                format!("keys {first:?} and {key:?} both become Secret key {new_key:?}"),
            ));
        }
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        out.data.insert(new_key.clone(), DataValue::text(text));
        origin.insert(new_key, key);
    }
    Ok(out)
}

fn validate_config(config: Value) -> Result<(), RuleError> {
    parse_config(config).map(|_| ())
}

rule! {
    name: "extract",
    description: "ack-secret-manager dataProcess.extract: every top-level JSON key becomes a Secret key; replaceRule renames keys (never values)",
    config_schema: r#"{"type":["object","null"],"additionalProperties":false,"properties":{"replaceRule":{"type":"array","items":{"type":"object","required":["source","target"],"additionalProperties":false,"properties":{"source":{"type":"string","format":"regex"},"target":{"type":"string"}}}}}}"#,
    hooks: { transform: transform, validate_config: validate_config },
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsync_guest_sdk::testing::{self, secret, text};
    use serde_json::json;

    fn run(data: &str, config: Value) -> Result<TransformOutput, RuleError> {
        let mut input = secret(data);
        input.config = config;
        testing::transform(&KMSYNC_RULE, &input)
    }

    #[test]
    fn metadata_is_valid() {
        assert_eq!(testing::check_metadata(&KMSYNC_RULE).name, "extract");
    }

    #[test]
    fn top_level_keys_become_secret_keys_with_non_strings_as_json() {
        let out = run(
            r#"{"user":"u","port":5432,"tls":false,"tags":["a","b"],"nested":{"x":1},"none":null}"#,
            Value::Null,
        )
        .unwrap();
        assert_eq!(text(&out, "user"), "u");
        assert_eq!(text(&out, "port"), "5432");
        assert_eq!(text(&out, "tls"), "false");
        assert_eq!(text(&out, "tags"), r#"["a","b"]"#);
        assert_eq!(text(&out, "nested"), r#"{"x":1}"#);
        assert_eq!(text(&out, "none"), "null");
    }

    #[test]
    fn replace_rules_rename_keys_in_order_and_never_touch_values() {
        // ack's README example: keys matching ^n.*e$ become "alibabacloud".
        let out = run(
            r#"{"name":"name-value-stays","friends":"nine"}"#,
            json!({"replaceRule": [{"source": "^n.*e$", "target": "alibabacloud"}]}),
        )
        .unwrap();
        assert_eq!(text(&out, "alibabacloud"), "name-value-stays");
        assert_eq!(text(&out, "friends"), "nine");

        let out = run(
            r#"{"db.user":"x","db.pass":"y"}"#,
            json!({"replaceRule": [
                {"source": "^db\\.(.*)$", "target": "DB_$1"},
                {"source": "pass", "target": "password"}
            ]}),
        )
        .unwrap();
        assert_eq!(
            out.data.keys().collect::<Vec<_>>(),
            ["DB_password", "DB_user"]
        );
        assert_eq!(text(&out, "DB_password"), "y");
    }

    #[test]
    fn keys_that_collide_or_become_invalid_are_errors() {
        let err = run(
            r#"{"a1":"x","a2":"y"}"#,
            json!({"replaceRule": [{"source": "\\d", "target": ""}]}),
        )
        .unwrap_err();
        assert_eq!(err.code, "duplicate_key");
        assert!(
            err.message.contains("\"a1\"") && err.message.contains("\"a2\""),
            "{}",
            err.message
        );

        let err = run(r#"{"a b":"secret-value"}"#, Value::Null).unwrap_err();
        assert_eq!(err.code, "invalid_key");
        assert!(!err.message.contains("secret-value"));
    }

    #[test]
    fn non_objects_and_bad_regexes_are_rejected() {
        assert_eq!(
            run("[1,2]", Value::Null).unwrap_err().code,
            "not_json_object"
        );
        assert_eq!(
            run("plain text", Value::Null).unwrap_err().code,
            "not_json_object"
        );
        let err = testing::validate_config(
            &KMSYNC_RULE,
            json!({"replaceRule": [{"source": "(", "target": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid_config");
        assert!(
            err.message.contains("replaceRule[0].source"),
            "{}",
            err.message
        );
        testing::validate_config(&KMSYNC_RULE, Value::Null).unwrap();
    }
}
