//! Built-in rule `jmespath`: ack-secret-manager's `jmesPath` on a JSON secret.
//!
//! Config: `{"jmesPath": [{"path": "friends[0].name", "objectAlias": "friendname"}, ...]}`.
//! Each path is evaluated on the secret's JSON; the result is stored under `objectAlias`:
//! a string result as-is, any other result serialised as compact JSON (as ack does).
//! Unlike ack (fault #4), a path that matches nothing (`null`) is an error
//! (`path_not_found`), never a silent dump of the whole secret.

use std::collections::BTreeSet;

use kmsync_guest_sdk::{
    DataType, DataValue, RuleError, TransformInput, TransformOutput, Value, is_valid_secret_key,
    rule,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    jmes_path: Vec<PathEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PathEntry {
    path: String,
    object_alias: String,
}

/// A runtime for `paths` (built per call: every call is a fresh instance). The standard
/// functions (`length(...)`, `join(...)`, ...) are registered only when some expression may
/// call one — a call needs `(` — since registering them is a large part of a small call.
fn runtime(paths: &[&str]) -> jmespath::Runtime {
    let mut runtime = jmespath::Runtime::new();
    if paths.iter().any(|p| p.contains('(')) {
        runtime.register_builtin_functions();
    }
    runtime
}

type Compiled<'r> = Vec<(String, jmespath::Expression<'r>)>;

fn parse_config(config: Value) -> Result<Config, RuleError> {
    serde_json::from_value(config).map_err(|e| {
        RuleError::invalid_config(format!(
            "expected {{\"jmesPath\": [{{\"path\", \"objectAlias\"}}, ...]}}: {e}"
        ))
    })
}

fn compile(config: Config, runtime: &jmespath::Runtime) -> Result<Compiled<'_>, RuleError> {
    if config.jmes_path.is_empty() {
        return Err(RuleError::invalid_config("jmesPath is empty"));
    }
    let mut seen = BTreeSet::new();
    let mut compiled = Vec::with_capacity(config.jmes_path.len());
    for (i, entry) in config.jmes_path.into_iter().enumerate() {
        if !is_valid_secret_key(&entry.object_alias) {
            return Err(RuleError::invalid_config(format!(
                "jmesPath[{i}].objectAlias {:?} is not a valid Secret key ([-._a-zA-Z0-9]+, at most 253 characters)",
                entry.object_alias
            )));
        }
        if !seen.insert(entry.object_alias.clone()) {
            return Err(RuleError::invalid_config(format!(
                "jmesPath[{i}].objectAlias {:?} is used twice",
                entry.object_alias
            )));
        }
        let expr = runtime.compile(&entry.path).map_err(|e| {
            RuleError::invalid_config(format!("jmesPath[{i}].path is not valid JMESPath: {e}"))
        })?;
        compiled.push((entry.object_alias, expr));
    }
    Ok(compiled)
}

fn transform(input: TransformInput) -> Result<TransformOutput, RuleError> {
    let config = parse_config(input.config)?;
    let runtime = runtime(
        &config
            .jmes_path
            .iter()
            .map(|e| e.path.as_str())
            .collect::<Vec<_>>(),
    );
    let paths = compile(config, &runtime)?;
    let secret = &input.secret;
    if secret.data_type != DataType::Text {
        return Err(RuleError::invalid_input(format!(
            "secret {} is binary; jmesPath needs a text secret holding JSON",
            secret.name
        )));
    }
    let doc: jmespath::Variable = serde_json::from_str(secret.data.expose()).map_err(|e| {
        RuleError::new(
            "not_json",
            format!(
                "secret {} is not JSON ({}), so jmesPath can not be applied",
                secret.name,
                kmsync_guest_sdk::__private::describe_json_error(&e)
            ),
        )
    })?;
    // `interpret` on the shared document: `Expression::search` would copy it for every path.
    let doc: jmespath::Rcvar = std::rc::Rc::new(doc);
    let mut out = TransformOutput::default();
    for (i, (alias, expr)) in paths.iter().enumerate() {
        let mut ctx = jmespath::Context::new(expr.as_str(), &runtime);
        let found = jmespath::interpret(&doc, expr.as_ast(), &mut ctx).map_err(|e| {
            RuleError::new(
                "path_failed",
                format!(
                    "jmesPath[{i}].path {:?} failed: {}",
                    expr.as_str(),
                    e.reason
                ),
            )
        })?;
        let value = match &*found {
            jmespath::Variable::Null => {
                return Err(RuleError::new(
                    "path_not_found",
                    format!(
                        "jmesPath[{i}].path {:?} matched nothing in secret {} (objectAlias {alias})",
                        expr.as_str(),
                        secret.name
                    ),
                ));
            }
            jmespath::Variable::String(s) => s.clone(),
            other => serde_json::to_string(other).map_err(|_| {
                RuleError::new("internal", "a jmesPath result could not be serialised")
            })?,
        };
        out.data.insert(alias.clone(), DataValue::text(value));
    }
    Ok(out)
}

fn validate_config(config: Value) -> Result<(), RuleError> {
    let config = parse_config(config)?;
    let runtime = runtime(
        &config
            .jmes_path
            .iter()
            .map(|e| e.path.as_str())
            .collect::<Vec<_>>(),
    );
    compile(config, &runtime).map(|_| ())
}

rule! {
    name: "jmespath",
    description: "ack-secret-manager jmesPath: evaluate JMESPath expressions on a JSON secret and store each result under objectAlias; a path matching nothing is an error",
    config_schema: r#"{"type":"object","required":["jmesPath"],"additionalProperties":false,"properties":{"jmesPath":{"type":"array","minItems":1,"items":{"type":"object","required":["path","objectAlias"],"additionalProperties":false,"properties":{"path":{"type":"string"},"objectAlias":{"type":"string","pattern":"^[-._a-zA-Z0-9]+$","maxLength":253}}}}}}"#,
    hooks: { transform: transform, validate_config: validate_config },
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsync_guest_sdk::testing::{self, secret, text};
    use serde_json::json;

    const DOC: &str = r#"{"name":"alice","age":42,"admin":true,"friends":[{"name":"bob"},{"name":"carol"}],"db":{"host":"h","port":5432}}"#;

    fn run(config: Value) -> Result<TransformOutput, RuleError> {
        let mut input = secret(DOC);
        input.config = config;
        testing::transform(&KMSYNC_RULE, &input)
    }

    #[test]
    fn metadata_is_valid_and_lists_both_hooks() {
        let m = testing::check_metadata(&KMSYNC_RULE);
        assert_eq!(m.name, "jmespath");
        assert_eq!(m.config_schema["required"], json!(["jmesPath"]));
    }

    #[test]
    fn string_results_are_stored_as_is_and_others_as_json() {
        let out = run(json!({"jmesPath": [
            {"path": "name", "objectAlias": "name"},
            {"path": "friends[0].name", "objectAlias": "friendname"},
            {"path": "age", "objectAlias": "age"},
            {"path": "admin", "objectAlias": "admin"},
            {"path": "db", "objectAlias": "db"},
            {"path": "friends[*].name", "objectAlias": "names"},
        ]}))
        .unwrap();
        assert_eq!(text(&out, "name"), "alice");
        assert_eq!(text(&out, "friendname"), "bob");
        assert_eq!(text(&out, "age"), "42");
        assert_eq!(text(&out, "admin"), "true");
        assert_eq!(text(&out, "db"), r#"{"host":"h","port":5432}"#);
        assert_eq!(text(&out, "names"), r#"["bob","carol"]"#);
        assert_eq!(out.data.len(), 6);
    }

    #[test]
    fn functions_work_when_an_expression_calls_one() {
        let out = run(json!({"jmesPath": [
            {"path": "length(friends)", "objectAlias": "count"},
            {"path": "join(',', friends[*].name)", "objectAlias": "names"},
        ]}))
        .unwrap();
        assert_eq!(text(&out, "count"), "2");
        assert_eq!(text(&out, "names"), "bob,carol");
    }

    #[test]
    fn a_path_matching_nothing_is_an_error_not_the_whole_secret() {
        let err =
            run(json!({"jmesPath": [{"path": "nope.missing", "objectAlias": "x"}]})).unwrap_err();
        assert_eq!(err.code, "path_not_found");
        assert!(err.message.contains("nope.missing"), "{}", err.message);
        assert!(!err.message.contains("alice"), "no values in messages");
    }

    #[test]
    fn a_secret_that_is_not_json_is_reported_without_its_value() {
        let mut input = secret("password=hunter2");
        input.config = json!({"jmesPath": [{"path": "a", "objectAlias": "a"}]});
        let err = testing::transform(&KMSYNC_RULE, &input).unwrap_err();
        assert_eq!(err.code, "not_json");
        assert!(!err.message.contains("hunter2"));
    }

    #[test]
    fn binary_secrets_are_refused() {
        let mut input = secret("AAEC");
        input.secret.data_type = kmsync_guest_sdk::DataType::Binary;
        input.config = json!({"jmesPath": [{"path": "a", "objectAlias": "a"}]});
        assert_eq!(
            testing::transform(&KMSYNC_RULE, &input).unwrap_err().code,
            "invalid_input"
        );
    }

    #[test]
    fn bad_configs_are_rejected_with_the_field_named() {
        let cases = [
            (json!(null), "jmesPath"),
            (json!({"jmesPath": []}), "empty"),
            (
                json!({"jmesPath": [{"path": "a", "objectAlias": "a/b"}]}),
                "objectAlias",
            ),
            (
                json!({"jmesPath": [{"path": "a", "objectAlias": "x"}, {"path": "b", "objectAlias": "x"}]}),
                "twice",
            ),
            (
                json!({"jmesPath": [{"path": "a[", "objectAlias": "x"}]}),
                "jmesPath[0].path",
            ),
            (
                json!({"jmesPath": [{"path": "a", "objectAlias": "x", "extra": 1}]}),
                "extra",
            ),
        ];
        for (config, needle) in cases {
            let err = testing::validate_config(&KMSYNC_RULE, config.clone()).unwrap_err();
            assert_eq!(err.code, "invalid_config", "{config}");
            assert!(err.message.contains(needle), "{config}: {}", err.message);
        }
        testing::validate_config(
            &KMSYNC_RULE,
            json!({"jmesPath": [{"path": "a.b", "objectAlias": "ab"}]}),
        )
        .unwrap();
    }
}
