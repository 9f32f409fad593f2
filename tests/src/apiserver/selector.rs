//! Label selectors (`k8s.io/apimachinery/pkg/labels` syntax) and field selectors
//! (`k8s.io/apimachinery/pkg/fields`), parsed from query strings and matched against objects.

use std::collections::BTreeSet;

use serde_json::Value;

use super::status::ApiError;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    /// `key=value` / `key==value`, or `key in (a,b)`.
    In(String, BTreeSet<String>),
    /// `key!=value`, or `key notin (a,b)` (also true when the key is absent).
    NotIn(String, BTreeSet<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
    /// `key>n` / `key<n` (integer comparison).
    Gt(String, i64),
    /// `key<n`.
    Lt(String, i64),
}

/// A conjunction of label requirements; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelReq>);

fn parse_error(input: &str, detail: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: {detail} (in {input:?})"
    ))
}

fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

impl LabelSelector {
    /// Parses `labelSelector`; a malformed selector is a 400 like the real server's.
    pub fn parse(input: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if input.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for raw in split_top_level(input) {
            let part = raw.trim();
            if part.is_empty() {
                return Err(parse_error(input, "found '', expected: identifier"));
            }
            let check_key = |k: &str| -> Result<String, ApiError> {
                let k = k.trim();
                if valid_label_key(k) {
                    Ok(k.to_string())
                } else {
                    Err(parse_error(input, &format!("invalid label key {k:?}")))
                }
            };
            let check_value = |v: &str| -> Result<String, ApiError> {
                let v = v.trim();
                if valid_label_value(v) {
                    Ok(v.to_string())
                } else {
                    Err(parse_error(input, &format!("invalid label value: {v:?}")))
                }
            };
            if let Some(k) = part.strip_prefix('!') {
                reqs.push(LabelReq::DoesNotExist(check_key(k)?));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(LabelReq::NotIn(check_key(k)?, [check_value(v)?].into()));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                reqs.push(LabelReq::In(check_key(k)?, [check_value(v)?].into()));
            } else if let Some((k, v)) = part.split_once('>') {
                let n = v.trim().parse().map_err(|_| {
                    parse_error(
                        input,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                })?;
                reqs.push(LabelReq::Gt(check_key(k)?, n));
            } else if let Some((k, v)) = part.split_once('<') {
                let n = v.trim().parse().map_err(|_| {
                    parse_error(
                        input,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                })?;
                reqs.push(LabelReq::Lt(check_key(k)?, n));
            } else if let Some(open) = part.find('(') {
                let head = part[..open].trim();
                let Some(inner) = part[open + 1..].strip_suffix(')') else {
                    return Err(parse_error(input, "found '', expected: ')'"));
                };
                let (key, op) = head
                    .rsplit_once(char::is_whitespace)
                    .ok_or_else(|| parse_error(input, "expected: in, notin"))?;
                let values = inner
                    .split(',')
                    .map(check_value)
                    .collect::<Result<BTreeSet<_>, _>>()?;
                match op.trim() {
                    "in" => reqs.push(LabelReq::In(check_key(key)?, values)),
                    "notin" => reqs.push(LabelReq::NotIn(check_key(key)?, values)),
                    other => {
                        return Err(parse_error(
                            input,
                            &format!("found '{other}', expected: in, notin, =, ==, !=, gt, lt"),
                        ));
                    }
                }
            } else if part.contains(char::is_whitespace) {
                return Err(parse_error(input, "found unexpected whitespace"));
            } else {
                reqs.push(LabelReq::Exists(check_key(part)?));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(v)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::DoesNotExist(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One field requirement: `path=value` (`==`) or `path!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReq {
    /// Dotted path, e.g. `metadata.name`.
    pub path: String,
    /// Whether the comparison is `!=`.
    pub negated: bool,
    /// The value compared with.
    pub value: String,
}

/// A conjunction of field requirements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldReq>);

impl FieldSelector {
    /// Parses `fieldSelector`, accepting only `metadata.name`, `metadata.namespace` and the
    /// resource's own selectable fields (400 `field label not supported: x` otherwise).
    pub fn parse(input: &str, extra_fields: &[String]) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if input.trim().is_empty() {
            return Ok(FieldSelector(reqs));
        }
        for part in input.split(',') {
            let (path, negated, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                )));
            };
            let path = path.trim().to_string();
            if path != "metadata.name"
                && path != "metadata.namespace"
                && !extra_fields.contains(&path)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
            reqs.push(FieldReq {
                path,
                negated,
                value: value.trim().to_string(),
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the object satisfies every requirement (missing fields read as `""`).
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let mut cur = obj;
            let mut found = true;
            for seg in r.path.split('.') {
                match cur.get(seg) {
                    Some(v) => cur = v,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            let actual = if !found {
                String::new()
            } else {
                match cur {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                }
            };
            (actual == r.value) != r.negated
        })
    }

    /// The name this selector pins with `metadata.name=x`, if any.
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.path == "metadata.name" && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "type": "Opaque"})
    }

    #[test]
    fn label_selector_supports_every_operator() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,api)", true),
            ("app notin (web,api)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier in (front)", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n<4", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn malformed_label_selector_is_a_bad_request() {
        let e = LabelSelector::parse("app in (a").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(LabelSelector::parse("a b").unwrap_err().code, 400);
        assert_eq!(LabelSelector::parse("=x").unwrap_err().code, 400);
    }

    #[test]
    fn field_selector_rejects_unsupported_fields() {
        let e = FieldSelector::parse("spec.foo=bar", &[]).unwrap_err();
        assert_eq!(e.message, "field label not supported: spec.foo");
        let s = FieldSelector::parse("metadata.name=a,type!=kubernetes.io/tls", &["type".into()])
            .unwrap();
        assert!(s.matches(&obj(json!({}))));
        assert_eq!(s.pinned_name(), Some("a"));
    }
}
