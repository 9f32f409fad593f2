//! Validation and normalisation the real apiserver applies on write: object names, labels,
//! Secret and ConfigMap rules (keys, 1 MiB, `stringData`, immutability, typed Secrets), and
//! custom resources against their CRD's structural schema (pruning, types, `required`, `enum`).
//! Messages are those of `k8s.io/apimachinery/pkg/util/validation` and
//! `pkg/apis/core/validation`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::status::{ApiError, Cause};

/// Largest Secret / ConfigMap payload (`MaxSecretSize`, `MaxConfigMapSize`).
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const LABEL_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Validates a name: RFC 1123 label for namespaces, subdomain for everything else.
pub fn name_causes(name: &str, dns_label: bool) -> Vec<Cause> {
    let v = Value::String(name.to_string());
    if dns_label {
        if name.len() > 63 {
            return vec![Cause::invalid(
                "metadata.name",
                &v,
                "must be no more than 63 characters",
            )];
        }
        if !is_dns_label(name) {
            return vec![Cause::invalid("metadata.name", &v, DNS1123_LABEL_MSG)];
        }
    } else {
        if name.len() > 253 {
            return vec![Cause::invalid(
                "metadata.name",
                &v,
                "must be no more than 253 characters",
            )];
        }
        if !is_dns_subdomain(name) {
            return vec![Cause::invalid("metadata.name", &v, DNS1123_SUBDOMAIN_MSG)];
        }
    }
    Vec::new()
}

/// Validates `metadata.labels` keys and values.
pub fn label_causes(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(labels) = obj.pointer("/metadata/labels") else {
        return out;
    };
    let Some(labels) = labels.as_object() else {
        return vec![Cause::invalid(
            "metadata.labels",
            labels,
            "must be a map of strings",
        )];
    };
    for (k, v) in labels {
        let name = k.rsplit_once('/').map_or(k.as_str(), |(_, n)| n);
        let prefix_ok = k.rsplit_once('/').is_none_or(|(p, _)| is_dns_subdomain(p));
        if !is_qualified_name_part(name) || !prefix_ok {
            out.push(Cause::invalid("metadata.labels", &json!(k), LABEL_NAME_MSG));
        }
        match v.as_str() {
            Some(s) if s.is_empty() || is_qualified_name_part(s) => {}
            Some(s) => out.push(Cause::invalid(
                "metadata.labels",
                &json!(s),
                LABEL_VALUE_MSG,
            )),
            None => out.push(Cause::invalid("metadata.labels", v, "must be a string")),
        }
    }
    out
}

/// `IsConfigMapKey`: the rule for Secret and ConfigMap keys.
pub fn config_key_causes(field: &str, key: &str) -> Vec<Cause> {
    let path = format!("{field}[{key}]");
    let v = json!(key);
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push(Cause::invalid(
            &path,
            &v,
            "must be no more than 253 characters",
        ));
    }
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        out.push(Cause::invalid(&path, &v, CONFIG_KEY_MSG));
    }
    if key == "." {
        out.push(Cause::invalid(&path, &v, "must not be '.'"));
    } else if key == ".." {
        out.push(Cause::invalid(&path, &v, "must not be '..'"));
    } else if key.starts_with("..") {
        out.push(Cause::invalid(&path, &v, "must not start with '..'"));
    }
    out
}

/// Moves `stringData` into `data` (base64-encoding it; `stringData` wins), as the v1 → internal
/// conversion does, and checks that `data` values are base64 (400 otherwise, like a decode
/// failure). Returns decoded sizes by key.
pub fn normalize_secret(obj: &mut Value) -> Result<Vec<(String, usize)>, ApiError> {
    let Some(m) = obj.as_object_mut() else {
        return Ok(Vec::new());
    };
    let string_data = m.remove("stringData");
    let mut sizes = Vec::new();
    let mut data = match m.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(d)) => d,
        Some(_) => {
            return Err(ApiError::bad_request(
                "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal into Go struct field Secret.data of type map[string][]uint8",
            ));
        }
    };
    for (k, v) in &data {
        let Some(s) = v.as_str() else {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal {} into Go struct field Secret.data of type []uint8",
                if v.is_number() { "number" } else { "value" }
            )));
        };
        match STANDARD.decode(s) {
            Ok(bytes) => sizes.push((k.clone(), bytes.len())),
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: {e}"
                )));
            }
        }
    }
    match string_data {
        None | Some(Value::Null) => {}
        Some(Value::Object(sd)) => {
            for (k, v) in sd {
                let s = v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::bad_request(
                        "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal into Go struct field Secret.stringData of type string",
                    )
                })?;
                sizes.retain(|(key, _)| *key != k);
                sizes.push((k.clone(), s.len()));
                data.insert(k, Value::String(STANDARD.encode(s.as_bytes())));
            }
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal into Go struct field Secret.stringData of type map[string]string",
            ));
        }
    }
    if !data.is_empty() {
        m.insert("data".into(), Value::Object(data));
    }
    if m.get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        m.insert("type".into(), json!("Opaque"));
    }
    Ok(sizes)
}

fn decoded(obj: &Value, key: &str) -> Option<Vec<u8>> {
    obj.pointer("/data")?
        .get(key)?
        .as_str()
        .and_then(|s| STANDARD.decode(s).ok())
}

/// Validates a (normalised) Secret; `old` is the stored one on update.
pub fn secret_causes(obj: &Value, sizes: &[(String, usize)], old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    let mut total = 0;
    for (k, size) in sizes {
        out.extend(config_key_causes("data", k));
        total += size;
    }
    if total > MAX_DATA_SIZE {
        out.push(Cause::too_long("data", MAX_DATA_SIZE));
    }
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("Opaque");
    let has = |k: &str| obj.pointer("/data").and_then(|d| d.get(k)).is_some();
    match ty {
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    out.push(Cause::required(format!("data[{k}]"), ""));
                }
            }
        }
        "kubernetes.io/dockerconfigjson" => match decoded(obj, ".dockerconfigjson") {
            None => out.push(Cause::required("data[.dockerconfigjson]", "")),
            Some(b) => {
                if let Err(e) = serde_json::from_slice::<Value>(&b) {
                    out.push(Cause::invalid(
                        "data[.dockerconfigjson]",
                        &json!("<secret contents redacted>"),
                        &e.to_string(),
                    ));
                }
            }
        },
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            out.push(Cause::required("data[.dockercfg]", ""));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            out.push(Cause::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            out.push(Cause::required("data[username]", ""));
            out.push(Cause::required("data[password]", ""));
        }
        "kubernetes.io/service-account-token" => {
            let ann = obj.pointer("/metadata/annotations/kubernetes.io~1service-account.name");
            if ann.and_then(Value::as_str).is_none_or(str::is_empty) {
                out.push(Cause::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        out.extend(immutability_causes(obj, old, &["data"]));
        let old_ty = old.get("type").and_then(Value::as_str).unwrap_or("Opaque");
        if old_ty != ty {
            out.push(Cause::invalid("type", &json!(ty), "field is immutable"));
        }
    }
    out
}

fn immutability_causes(obj: &Value, old: &Value, fields: &[&str]) -> Vec<Cause> {
    let mut out = Vec::new();
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return out;
    }
    for f in fields {
        if obj.get(*f) != old.get(*f) {
            out.push(Cause::forbidden(
                *f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
    if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
        out.push(Cause::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    out
}

/// Validates a ConfigMap; `old` is the stored one on update.
pub fn configmap_causes(obj: &Value, old: Option<&Value>) -> Result<Vec<Cause>, ApiError> {
    let mut out = Vec::new();
    let mut total = 0;
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    for (k, v) in data.into_iter().flatten() {
        out.extend(config_key_causes("data", k));
        let Some(s) = v.as_str() else {
            return Err(ApiError::bad_request(
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal into Go struct field ConfigMap.data of type string",
            ));
        };
        total += s.len();
        if binary.is_some_and(|b| b.contains_key(k)) {
            out.push(Cause::invalid(
                format!("data[{k}]"),
                &json!(k),
                "duplicate of key present in binaryData",
            ));
        }
    }
    for (k, v) in binary.into_iter().flatten() {
        out.extend(config_key_causes("binaryData", k));
        let bytes = v.as_str().and_then(|s| STANDARD.decode(s).ok()).ok_or_else(|| {
            ApiError::bad_request(
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: illegal base64 data",
            )
        })?;
        total += bytes.len();
    }
    if total > MAX_DATA_SIZE {
        out.push(Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: must have at most {MAX_DATA_SIZE} bytes"),
            field: String::new(),
        });
    }
    if let Some(old) = old {
        out.extend(immutability_causes(obj, old, &["data", "binaryData"]));
    }
    Ok(out)
}

/// Drops fields the structural schema does not declare (unless
/// `x-kubernetes-preserve-unknown-fields`), as CRD pruning does, and returns their paths
/// (`spec.foo`, `spec.items[0].bar`) for strict field validation. `apiVersion`, `kind` and
/// `metadata` at the root are always kept.
pub fn prune(obj: &mut Value, schema: &Value) -> Vec<String> {
    fn join(path: &str, k: &str) -> String {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    }
    fn go(v: &mut Value, s: &Value, path: &str, out: &mut Vec<String>) {
        let preserve = s
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        match v {
            Value::Object(m) => {
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    if !preserve {
                        let unknown: Vec<String> = m
                            .keys()
                            .filter(|k| !props.contains_key(*k))
                            .cloned()
                            .collect();
                        for k in unknown {
                            m.remove(&k);
                            out.push(join(path, &k));
                        }
                    }
                    for (k, child) in m.iter_mut() {
                        if let Some(cs) = props.get(k) {
                            go(child, cs, &join(path, k), out);
                        }
                    }
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    for (k, child) in m.iter_mut() {
                        go(child, ap, &join(path, k), out);
                    }
                } else if !preserve
                    && s.get("x-kubernetes-embedded-resource")
                        .and_then(Value::as_bool)
                        != Some(true)
                {
                    for k in m.keys() {
                        out.push(join(path, k));
                    }
                    m.clear();
                }
            }
            Value::Array(items) => {
                if let Some(is) = s.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        go(item, is, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let Some(m) = obj.as_object_mut() else {
        return out;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let unknown: Vec<String> = m
        .keys()
        .filter(|k| {
            !(*k == "apiVersion"
                || *k == "kind"
                || *k == "metadata"
                || preserve
                || props.is_some_and(|p| p.contains_key(*k)))
        })
        .cloned()
        .collect();
    for k in unknown {
        m.remove(&k);
        out.push(k);
    }
    for (k, child) in m.iter_mut() {
        if k == "metadata" || k == "apiVersion" || k == "kind" {
            continue;
        }
        if let Some(cs) = props.and_then(|p| p.get(k)) {
            go(child, cs, k, &mut out);
        }
    }
    out
}

/// Structural defaulting: absent fields get their schema `default`; `null` in a field that is
/// not `nullable` is replaced by the default or dropped (as apiextensions-apiserver prunes
/// such nulls before validation — typed clients often send `null` for unset options).
pub fn apply_defaults(obj: &mut Value, schema: &Value) {
    fn fill(m: &mut Map<String, Value>, props: &Map<String, Value>, skip_meta: bool) {
        for (k, ps) in props {
            if skip_meta && (k == "metadata" || k == "apiVersion" || k == "kind") {
                continue;
            }
            let nullable = ps.get("nullable").and_then(Value::as_bool) == Some(true);
            match (m.get(k), ps.get("default")) {
                (None, Some(d)) => {
                    m.insert(k.clone(), d.clone());
                }
                (Some(Value::Null), Some(d)) if !nullable => {
                    m.insert(k.clone(), d.clone());
                }
                (Some(Value::Null), None) if !nullable => {
                    m.remove(k);
                }
                _ => {}
            }
            if let Some(child) = m.get_mut(k) {
                go(child, ps);
            }
        }
    }
    fn go(v: &mut Value, s: &Value) {
        match v {
            Value::Object(m) => {
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    fill(m, props, false);
                }
            }
            Value::Array(items) => {
                if let Some(is) = s.get("items") {
                    for i in items {
                        go(i, is);
                    }
                }
            }
            _ => {}
        }
    }
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let Some(m) = obj.as_object_mut() else { return };
    fill(m, props, true);
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks a custom resource against its schema: `type`, `required`, `enum`, `nullable`.
/// Messages follow kube-openapi's validator (`spec.size in body must be of type integer: "string"`).
pub fn schema_causes(obj: &Value, schema: &Value) -> Vec<Cause> {
    fn go(v: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
        if v.is_null() && s.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            if !(v.is_string() || v.is_i64() || v.is_u64()) {
                out.push(Cause::invalid(
                    path,
                    v,
                    &format!("{path} in body must be of type integer-or-string"),
                ));
            }
            return;
        }
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            let actual = type_name(v);
            let ok = actual == t || (t == "number" && actual == "integer");
            if !ok {
                out.push(Cause {
                    reason: "FieldValueTypeInvalid",
                    message: format!(
                        "Invalid value: {:?}: {path} in body must be of type {t}: {:?}",
                        actual, actual
                    ),
                    field: path.to_string(),
                });
                return;
            }
        }
        if let Some(options) = s.get("enum").and_then(Value::as_array)
            && !options.contains(v)
        {
            let supported: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            out.push(Cause {
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {v}: supported values: {}",
                    supported.join(", ")
                ),
                field: path.to_string(),
            });
        }
        match v {
            Value::Object(m) => {
                for r in s
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(r) = r.as_str()
                        && !m.contains_key(r)
                    {
                        out.push(Cause::required(join(path, r), ""));
                    }
                }
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    for (k, child) in m {
                        if let Some(cs) = props.get(k) {
                            go(child, cs, &join(path, k), out);
                        }
                    }
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    for (k, child) in m {
                        go(child, ap, &format!("{path}[{k}]"), out);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(is) = s.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        go(item, is, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
    fn join(path: &str, k: &str) -> String {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    }
    let mut out = Vec::new();
    let Some(m) = obj.as_object() else { return out };
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = r.as_str()
            && !m.contains_key(r)
        {
            out.push(Cause::required(r, ""));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, child) in m {
            if k == "metadata" || k == "apiVersion" || k == "kind" {
                continue;
            }
            if let Some(cs) = props.get(k) {
                go(child, cs, k, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_follow_the_config_key_rule() {
        let c = config_key_causes("data", "bad key");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "data[bad key]");
        assert!(
            c[0].message
                .starts_with("Invalid value: \"bad key\": a valid config key")
        );
        assert!(config_key_causes("data", "ok-key_1.txt").is_empty());
        assert_eq!(
            config_key_causes("data", "..x")[0].message,
            "Invalid value: \"..x\": must not start with '..'"
        );
    }

    #[test]
    fn string_data_is_merged_into_data_and_wins() {
        let mut s = json!({"data": {"a": "eA=="}, "stringData": {"a": "y", "b": "z"}});
        let sizes = normalize_secret(&mut s).unwrap();
        assert_eq!(
            s,
            json!({"data": {"a": "eQ==", "b": "eg=="}, "type": "Opaque"})
        );
        assert_eq!(sizes, vec![("a".to_string(), 1), ("b".to_string(), 1)]);
        assert_eq!(
            normalize_secret(&mut json!({"data": {"a": "!!"}}))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn immutable_secret_rejects_data_changes() {
        let old = json!({"immutable": true, "data": {"a": "eA=="}, "type": "Opaque"});
        let new = json!({"immutable": true, "data": {"a": "eQ=="}, "type": "Opaque"});
        let c = secret_causes(&new, &[("a".into(), 1)], Some(&old));
        assert_eq!(
            c,
            vec![Cause::forbidden(
                "data",
                "field is immutable when `immutable` is set"
            )]
        );
    }

    #[test]
    fn pruning_drops_undeclared_fields_and_keeps_preserved_ones() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"}, "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
        let mut o = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "junk": 1,
            "spec": {"a": "1", "b": 2, "free": {"anything": true}}, "status": {"s": 1}});
        prune(&mut o, &schema);
        assert_eq!(
            o,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"a": "1", "free": {"anything": true}}, "status": {"s": 1}})
        );
    }

    #[test]
    fn nulls_in_non_nullable_fields_are_dropped_or_defaulted() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "a": {"type": "string"}, "b": {"type": "string", "default": "x"},
            "c": {"type": "string", "nullable": true}, "d": {"type": "integer", "default": 3}}}}});
        let mut o = json!({"spec": {"a": null, "b": null, "c": null}});
        apply_defaults(&mut o, &schema);
        assert_eq!(o, json!({"spec": {"b": "x", "c": null, "d": 3}}));
        assert!(schema_causes(&o, &schema).is_empty());
    }

    #[test]
    fn schema_type_errors_name_the_field() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"],
            "properties": {"size": {"type": "integer"}, "mode": {"type": "string", "enum": ["a", "b"]}}}}});
        let c = schema_causes(&json!({"spec": {"size": "x", "mode": "c"}}), &schema);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].field, "spec.mode");
        assert_eq!(c[1].field, "spec.size");
        let c = schema_causes(&json!({"spec": {}}), &schema);
        assert_eq!(c, vec![Cause::required("spec.size", "")]);
    }
}
