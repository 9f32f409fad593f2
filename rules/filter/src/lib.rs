//! Built-in rule `filter`: keep Secret keys by regex.
//!
//! Config: `{"include": ["^DB_"], "exclude": ["_OLD$"]}` (both optional). A key is kept when it
//! matches at least one `include` pattern (or `include` is empty) and no `exclude` pattern.
//! Patterns are unanchored (`regex-lite` syntax); anchor them with `^`/`$` as needed.

use kmsync_guest_sdk::{FilterInput, FilterOutput, RuleError, Value, rule};
use regex_lite::Regex;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

struct Compiled {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

fn compile(field: &str, patterns: &[String]) -> Result<Vec<Regex>, RuleError> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Regex::new(p).map_err(|e| {
                RuleError::invalid_config(format!("{field}[{i}] is not a valid regex: {e}"))
            })
        })
        .collect()
}

fn parse_config(config: Value) -> Result<Compiled, RuleError> {
    let config: Config = if config.is_null() {
        Config::default()
    } else {
        serde_json::from_value(config).map_err(|e| {
            RuleError::invalid_config(format!(
                "expected {{\"include\": [regex], \"exclude\": [regex]}}: {e}"
            ))
        })?
    };
    Ok(Compiled {
        include: compile("include", &config.include)?,
        exclude: compile("exclude", &config.exclude)?,
    })
}

fn filter(input: FilterInput) -> Result<FilterOutput, RuleError> {
    let c = parse_config(input.config)?;
    let keep = input
        .keys
        .into_iter()
        .filter(|k| {
            (c.include.is_empty() || c.include.iter().any(|re| re.is_match(k)))
                && !c.exclude.iter().any(|re| re.is_match(k))
        })
        .collect();
    Ok(FilterOutput { keep })
}

fn validate_config(config: Value) -> Result<(), RuleError> {
    parse_config(config).map(|_| ())
}

rule! {
    name: "filter",
    description: "Keep Secret keys that match an include regex (any, when none is given) and no exclude regex",
    config_schema: r#"{"type":["object","null"],"additionalProperties":false,"properties":{"include":{"type":"array","items":{"type":"string","format":"regex"}},"exclude":{"type":"array","items":{"type":"string","format":"regex"}}}}"#,
    hooks: { filter: filter, validate_config: validate_config },
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsync_guest_sdk::testing;
    use serde_json::json;

    fn run(keys: &[&str], config: Value) -> Result<Vec<String>, RuleError> {
        let input = FilterInput {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            context: testing::context(),
            config,
        };
        testing::filter(&KMSYNC_RULE, &input).map(|o| o.keep)
    }

    #[test]
    fn metadata_is_valid() {
        assert_eq!(testing::check_metadata(&KMSYNC_RULE).hooks.len(), 2);
    }

    #[test]
    fn no_config_keeps_every_key() {
        assert_eq!(run(&["a", "b"], Value::Null).unwrap(), ["a", "b"]);
    }

    #[test]
    fn include_then_exclude() {
        let keys = ["DB_USER", "DB_PASS", "DB_PASS_OLD", "API_KEY"];
        assert_eq!(
            run(&keys, json!({"include": ["^DB_"], "exclude": ["_OLD$"]})).unwrap(),
            ["DB_USER", "DB_PASS"]
        );
        assert_eq!(
            run(&keys, json!({"exclude": ["^DB_"]})).unwrap(),
            ["API_KEY"]
        );
        assert_eq!(
            run(&keys, json!({"include": ["USER", "KEY"]})).unwrap(),
            ["DB_USER", "API_KEY"]
        );
    }

    #[test]
    fn bad_patterns_name_the_field() {
        let err = run(&["a"], json!({"exclude": ["ok", "(("]})).unwrap_err();
        assert_eq!(err.code, "invalid_config");
        assert!(err.message.starts_with("exclude[1]"), "{}", err.message);
        let err = testing::validate_config(&KMSYNC_RULE, json!({"includes": []})).unwrap_err();
        assert!(err.message.contains("includes"), "{}", err.message);
    }
}
