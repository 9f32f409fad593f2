//! Example rule `connection-string`: turns a database account secret into a ready-to-use
//! `DATABASE_URL` (plus `username` / `password`), e.g. for a managed RDS secret
//! `{"AccountName": "app", "AccountPassword": "p@ss"}` and config
//! `{"host": "pg.internal", "database": "orders"}`:
//!
//! ```text
//! DATABASE_URL = postgresql://app:p%40ss@pg.internal:5432/orders
//! ```
//!
//! It shows the parts of a rule: a typed config with defaults, `validate_config`, a
//! `transform`, errors with codes, a log line without secret values, and native tests.
//! `docs/writing-rules.md` walks through it.

use kmsync_guest_sdk::{
    DataValue, RuleError, TransformInput, TransformOutput, Value, is_valid_secret_key, log, rule,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    host: String,
    database: String,
    #[serde(default = "default_scheme")]
    scheme: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default = "default_key")]
    key: String,
    /// Query parameters appended in order, e.g. `[["sslmode", "require"]]`.
    #[serde(default)]
    params: Vec<(String, String)>,
}

fn default_scheme() -> String {
    "postgresql".into()
}

fn default_key() -> String {
    "DATABASE_URL".into()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgresql" | "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" | "rediss" => Some(6379),
        "sqlserver" => Some(1433),
        _ => None,
    }
}

fn parse_config(config: Value) -> Result<Config, RuleError> {
    let c: Config = serde_json::from_value(config).map_err(|e| {
        RuleError::invalid_config(format!(
            "expected {{\"host\", \"database\", \"scheme\"?, \"port\"?, \"key\"?, \"params\"?}}: {e}"
        ))
    })?;
    if c.host.is_empty() || c.host.contains(['/', '@', ' ', '?', '#']) {
        return Err(RuleError::invalid_config(format!(
            "host {:?} is not a host name",
            c.host
        )));
    }
    if !c
        .scheme
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'+')
        || c.scheme.is_empty()
    {
        return Err(RuleError::invalid_config(format!(
            "scheme {:?} is not a URL scheme",
            c.scheme
        )));
    }
    if c.port.is_none() && default_port(&c.scheme).is_none() {
        return Err(RuleError::invalid_config(format!(
            "scheme {:?} has no default port; set port",
            c.scheme
        )));
    }
    if !is_valid_secret_key(&c.key) {
        return Err(RuleError::invalid_config(format!(
            "key {:?} is not a valid Secret key",
            c.key
        )));
    }
    Ok(c)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads the account from `AccountName`/`AccountPassword` (managed RDS secrets) or
/// `username`/`password` (a Generic secret).
fn account(secret: &serde_json::Map<String, Value>) -> Option<(&str, &str)> {
    let get = |k: &str| secret.get(k).and_then(Value::as_str);
    get("AccountName")
        .zip(get("AccountPassword"))
        .or_else(|| get("username").zip(get("password")))
}

fn transform(input: TransformInput) -> Result<TransformOutput, RuleError> {
    let config = parse_config(input.config)?;
    let secret: serde_json::Map<String, Value> = serde_json::from_str(input.secret.data.expose())
        .map_err(|_| {
        RuleError::new(
            "not_json_object",
            format!("secret {} is not a JSON object", input.secret.name),
        )
    })?;
    let (user, password) = account(&secret).ok_or_else(|| {
        RuleError::new(
            "missing_field",
            format!(
                "secret {} has neither AccountName/AccountPassword nor username/password",
                input.secret.name
            ),
        )
    })?;
    let port = config
        .port
        .or(default_port(&config.scheme))
        .unwrap_or_default();
    let mut url = format!(
        "{}://{}:{}@{}:{}/{}",
        config.scheme,
        encode(user),
        encode(password),
        config.host,
        port,
        encode(&config.database)
    );
    for (i, (k, v)) in config.params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&encode(k));
        url.push('=');
        url.push_str(&encode(v));
    }
    // Names and sizes only: never log the password or the URL.
    log::info(&format!(
        "built {} for {}:{} database {} (secret version {})",
        config.key, config.host, port, config.database, input.secret.version_id
    ));
    let mut out = TransformOutput::default();
    out.data.insert(config.key, DataValue::text(url));
    out.data.insert("username".into(), DataValue::text(user));
    out.data
        .insert("password".into(), DataValue::text(password));
    Ok(out)
}

fn validate_config(config: Value) -> Result<(), RuleError> {
    parse_config(config).map(|_| ())
}

rule! {
    name: "connection-string",
    description: "Example: build DATABASE_URL (and username/password) from a database account secret",
    config_schema: r#"{"type":"object","required":["host","database"],"additionalProperties":false,"properties":{"host":{"type":"string"},"database":{"type":"string"},"scheme":{"type":"string","default":"postgresql"},"port":{"type":"integer","minimum":1,"maximum":65535},"key":{"type":"string","default":"DATABASE_URL"},"params":{"type":"array","items":{"type":"array","prefixItems":[{"type":"string"},{"type":"string"}],"minItems":2,"maxItems":2}}}}"#,
    hooks: { transform: transform, validate_config: validate_config },
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsync_guest_sdk::log::Level;
    use kmsync_guest_sdk::testing::{self, secret, text};
    use serde_json::json;

    fn run(data: &str, config: Value) -> Result<TransformOutput, RuleError> {
        let mut input = secret(data);
        input.config = config;
        testing::transform(&KMSYNC_RULE, &input)
    }

    #[test]
    fn metadata_is_valid() {
        assert_eq!(
            testing::check_metadata(&KMSYNC_RULE).name,
            "connection-string"
        );
    }

    #[test]
    fn builds_an_encoded_url_from_an_rds_secret() {
        let out = run(
            r#"{"AccountName":"app","AccountPassword":"p@ss/w:rd"}"#,
            json!({"host": "pg.internal", "database": "orders", "params": [["sslmode", "require"]]}),
        )
        .unwrap();
        assert_eq!(
            text(&out, "DATABASE_URL"),
            "postgresql://app:p%40ss%2Fw%3Ard@pg.internal:5432/orders?sslmode=require"
        );
        assert_eq!(text(&out, "password"), "p@ss/w:rd");
        let logs = testing::take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, Level::Info);
        assert!(!logs[0].1.contains("p@ss"), "the password is never logged");
    }

    #[test]
    fn scheme_port_and_key_are_configurable() {
        let out = run(
            r#"{"username":"u","password":"p"}"#,
            json!({"host": "db", "database": "d", "scheme": "mysql", "key": "MYSQL_URL"}),
        )
        .unwrap();
        assert_eq!(text(&out, "MYSQL_URL"), "mysql://u:p@db:3306/d");
    }

    #[test]
    fn problems_are_reported_with_codes() {
        assert_eq!(
            run("{}", json!({"host": "db", "database": "d"}))
                .unwrap_err()
                .code,
            "missing_field"
        );
        assert_eq!(
            run("nope", json!({"host": "db", "database": "d"}))
                .unwrap_err()
                .code,
            "not_json_object"
        );
        for config in [
            json!({"database": "d"}),
            json!({"host": "a/b", "database": "d"}),
            json!({"host": "db", "database": "d", "scheme": "ftp"}),
            json!({"host": "db", "database": "d", "key": "not valid"}),
        ] {
            assert_eq!(
                testing::validate_config(&KMSYNC_RULE, config.clone())
                    .unwrap_err()
                    .code,
                "invalid_config",
                "{config}"
            );
        }
    }
}
