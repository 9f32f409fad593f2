//! `meta.k8s.io/v1 Table` output (what `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): the built-in printers' columns for
//! built-in kinds, `additionalPrinterColumns` evaluated with simple JSONPath for custom
//! resources (after `apiextensions-apiserver`'s `tableconvertor`), and ages rendered with
//! `duration.HumanDuration`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::resources::{Behaviour, Column, ResourceType};

/// What each row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
    /// Nothing.
    None,
}

/// `duration.HumanDuration`: `5s`, `3m20s`, `15m`, `2h5m`, `3d4h`, `2y`...
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(ts: Option<&Value>, now: DateTime<Utc>) -> String {
    match ts
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    {
        Some(t) => human_duration((now - t.with_timezone(&Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

/// One step of a simple JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Filter(String, Value),
    All,
}

/// Parses the JSONPath subset printer columns use: `.a.b`, `['a.b']`, `[0]`, `[*]`,
/// `[?(@.type=="Ready")]`.
fn parse_json_path(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                if i > start {
                    steps.push(Step::Field(chars[start..i].iter().collect()));
                }
            }
            '[' => {
                let end = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|s| s.strip_suffix(')'))
                {
                    let (k, v) = f.split_once("==")?;
                    let v = v.trim();
                    let v = if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                        Value::String(s.to_string())
                    } else if let Some(s) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))
                    {
                        Value::String(s.to_string())
                    } else {
                        serde_json::from_str(v).ok()?
                    };
                    steps.push(Step::Filter(k.trim().to_string(), v));
                } else {
                    let key = inner.trim_matches(|c| c == '\'' || c == '"');
                    steps.push(Step::Field(key.to_string()));
                }
                i = end + 1;
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    Some(steps)
}

/// Evaluates a simple JSONPath, returning every match.
pub fn eval_json_path<'v>(obj: &'v Value, path: &str) -> Vec<&'v Value> {
    let Some(steps) = parse_json_path(path) else {
        return Vec::new();
    };
    let mut cur = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(n) => next.extend(v.as_array().and_then(|a| a.get(*n))),
                Step::All => next.extend(v.as_array().into_iter().flatten()),
                Step::Filter(k, want) => next.extend(
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter(|i| i.get(k.as_str()) == Some(want)),
                ),
            }
        }
        cur = next;
    }
    cur
}

fn cell_for(column: &Column, obj: &Value, now: DateTime<Utc>) -> Value {
    let results = eval_json_path(obj, &column.json_path);
    let Some(v) = results.first() else {
        return Value::Null;
    };
    match column.type_.as_str() {
        "string" => match v {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
        "integer" => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map_or(Value::Null, |i| json!(i)),
        "number" => v.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => v.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => match v.as_str() {
            Some(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => json!(human_duration((now - t.with_timezone(&Utc)).num_seconds())),
                Err(_) => json!("<invalid>"),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

fn count(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_object).map_or(0, |m| m.len() as i64)
}

/// The cells of one row.
pub fn cells(rt: &ResourceType, version: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    let age = || json!(age_of(obj.pointer("/metadata/creationTimestamp"), now));
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match rt.behaviour {
        Behaviour::Namespace => vec![name, json!(s("/status/phase")), age()],
        Behaviour::Secret => vec![
            name,
            json!(s("/type")),
            json!(count(obj.get("data"))),
            age(),
        ],
        Behaviour::ConfigMap => vec![
            name,
            json!(count(obj.get("data")) + count(obj.get("binaryData"))),
            age(),
        ],
        Behaviour::ServiceAccount => vec![
            name,
            json!(
                obj.get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            age(),
        ],
        Behaviour::Lease => vec![name, json!(s("/spec/holderIdentity")), age()],
        Behaviour::EventsV1Event => {
            // The events.k8s.io printer converts to the core shape first.
            let mut core = obj.clone();
            super::registry::rename_fields(&mut core, false);
            let core_rt = ResourceType {
                behaviour: Behaviour::CoreEvent,
                ..rt.clone()
            };
            cells(&core_rt, version, &core, now)
        }
        Behaviour::CoreEvent => {
            let last = obj
                .pointer("/series/lastObservedTime")
                .or_else(|| obj.get("lastTimestamp").filter(|v| !v.is_null()))
                .or_else(|| obj.get("eventTime").filter(|v| !v.is_null()));
            let first = obj
                .get("firstTimestamp")
                .filter(|v| !v.is_null())
                .or_else(|| obj.get("eventTime").filter(|v| !v.is_null()));
            let kind = s("/involvedObject/kind").to_lowercase();
            let object = format!("{kind}/{}", s("/involvedObject/name"));
            let mut source = s("/source/component");
            if source.is_empty() {
                source = s("/reportingComponent");
            }
            let host = s("/source/host");
            if !host.is_empty() {
                source = format!("{source}, {host}");
            }
            let count = obj
                .pointer("/series/count")
                .or_else(|| obj.get("count"))
                .and_then(Value::as_i64)
                .unwrap_or(1);
            vec![
                json!(age_of(last, now)),
                json!(s("/type")),
                json!(s("/reason")),
                json!(object),
                json!(s("/involvedObject/fieldPath")),
                json!(source),
                json!(s("/message").trim()),
                json!(age_of(first, now)),
                json!(count.to_string()),
                name,
            ]
        }
        Behaviour::Crd => {
            let created = obj
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default();
            vec![name, json!(created)]
        }
        Behaviour::Custom => {
            let columns = rt
                .version(version)
                .map(|v| v.columns.as_slice())
                .unwrap_or_default();
            let mut out = vec![name];
            out.extend(columns.iter().skip(1).map(|c| cell_for(c, obj, now)));
            out
        }
    }
}

/// The `columnDefinitions` of a resource version.
pub fn column_definitions(rt: &ResourceType, version: &str) -> Value {
    let columns = rt
        .version(version)
        .map(|v| v.columns.clone())
        .unwrap_or_default();
    Value::Array(
        columns
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// `PartialObjectMetadata` of an object (metadata only), as `meta.k8s.io/<v>`.
pub fn partial_metadata(obj: &Value, meta_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{meta_version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Builds a Table from objects. `headers` is false for watch events after the first.
#[allow(clippy::too_many_arguments)]
pub fn table(
    rt: &ResourceType,
    version: &str,
    meta_version: &str,
    objects: &[&Value],
    list_meta: Map<String, Value>,
    include: IncludeObject,
    headers: bool,
    now: DateTime<Utc>,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({ "cells": cells(rt, version, o, now) });
            match include {
                IncludeObject::Metadata => row["object"] = partial_metadata(o, meta_version),
                IncludeObject::Object => row["object"] = (*o).clone(),
                IncludeObject::None => {}
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{meta_version}"),
        "metadata": Value::Object(list_meta),
        "columnDefinitions": if headers { column_definitions(rt, version) } else { Value::Null },
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_apimachinery() {
        for (secs, want) in [
            (-5, "<invalid>"),
            (0, "0s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn events_k8s_io_rows_are_printed_from_the_core_shape() {
        let rt = super::super::resources::builtins()
            .into_iter()
            .find(|t| t.behaviour == Behaviour::EventsV1Event)
            .unwrap();
        let ev = json!({"metadata": {"name": "e1"}, "type": "Normal", "reason": "Synced",
            "regarding": {"kind": "ConfigMap", "name": "cm"}, "note": "done", "reportingController": "kmsync"});
        let now = Utc::now();
        let c = cells(&rt, "v1", &ev, now);
        assert_eq!(
            &c[1..7],
            &[
                json!("Normal"),
                json!("Synced"),
                json!("configmap/cm"),
                json!(""),
                json!("kmsync"),
                json!("done")
            ]
        );
    }

    #[test]
    fn json_path_filters_conditions_by_type() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]},
            "metadata": {"labels": {"a.b/c": "x"}}});
        let r = eval_json_path(&o, r#".status.conditions[?(@.type=="Ready")].status"#);
        assert_eq!(r, vec![&json!("True")]);
        assert_eq!(
            eval_json_path(&o, ".status.conditions[0].type"),
            vec![&json!("A")]
        );
        assert_eq!(
            eval_json_path(&o, ".metadata.labels['a.b/c']"),
            vec![&json!("x")]
        );
        assert!(eval_json_path(&o, ".spec.missing").is_empty());
    }
}
