//! JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch for the
//! built-in types, with kube-apiserver's error shapes.
//!
//! Strategic merge patch knows the patch strategies of the fields this server's built-in
//! types have (`metadata.finalizers`: merge as a set; `metadata.ownerReferences`: merge by
//! `uid`; `conditions`: merge by `type`; everything else: replace) and the directives
//! `$patch: replace|delete|merge`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`
//! and `$retainKeys`. Custom resources reject it with 415, as kube-apiserver does.

use serde_json::{Map, Value, json};

use super::status::ApiError;

/// The patch types the server accepts (by `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml`.
    Apply,
}

impl PatchType {
    /// Recognises a patch `Content-Type` (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Media types listed in a 415 for built-in resources.
pub const BUILTIN_PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
];

/// Media types listed in a 415 for custom resources.
pub const CUSTOM_PATCH_TYPES: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// The 422 kube-apiserver answers when a patch cannot be applied to the object.
pub fn unprocessable(detail: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    );
    e.details = Some(
        json!({ "causes": [{ "reason": "UnexpectedServerResponse", "message": detail.into() }] }),
    );
    e
}

/// Applies an RFC 6902 patch.
pub fn json_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = doc.clone();
    for op in &patch.0 {
        // Like evanphx/json-patch (which kube-apiserver uses), `test` of `null` succeeds on a
        // missing path; kube-runtime's finalizer helper relies on this.
        if let json_patch::PatchOperation::Test(t) = op
            && t.value.is_null()
            && t.path.resolve(&out).is_err()
        {
            continue;
        }
        json_patch::patch(&mut out, std::slice::from_ref(op))
            .map_err(|e| unprocessable(e.to_string()))?;
    }
    Ok(out)
}

/// Applies an RFC 7386 merge patch.
pub fn merge_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal into Go value of type map[string]interface {}",
        ));
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, &patch);
    Ok(out)
}

/// Applies a strategic merge patch to a built-in type's object.
pub fn strategic_merge_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let Value::Object(p) = patch else {
        return Err(ApiError::bad_request("invalid JSON document"));
    };
    let mut out = doc.clone();
    smp_map(&mut out, &p, &mut Vec::new())?;
    Ok(out)
}

/// Merge strategy of a list field, from the built-in types' `patchStrategy` tags.
fn merge_key(names: &[String]) -> Option<Option<&'static str>> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    match refs.as_slice() {
        ["metadata", "finalizers"] => Some(None),
        ["metadata", "ownerReferences"] => Some(Some("uid")),
        [.., "conditions"] => Some(Some("type")),
        ["secrets"] | ["imagePullSecrets"] => Some(Some("name")),
        _ => None,
    }
}

fn smp_map(
    target: &mut Value,
    patch: &Map<String, Value>,
    names: &mut Vec<String>,
) -> Result<(), ApiError> {
    if let Some(directive) = patch.get("$patch").and_then(Value::as_str) {
        match directive {
            "replace" => {
                let mut p = patch.clone();
                p.remove("$patch");
                *target = Value::Object(p);
                return Ok(());
            }
            "delete" => {
                *target = Value::Null;
                return Ok(());
            }
            "merge" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unable to find patch directive {other:?}"
                )));
            }
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    if let Some(keys) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let Some(remove) = pv.as_array() else {
                return Err(ApiError::bad_request(
                    "invalid patch format for primitive list: expected a list",
                ));
            };
            if let Some(Value::Array(items)) = t.get_mut(field) {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        names.push(k.clone());
        match pv {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(pm) => {
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                smp_map(entry, pm, names)?;
                if entry.is_null() {
                    t.remove(k);
                }
            }
            Value::Array(pl) => match merge_key(names) {
                None => {
                    t.insert(k.clone(), pv.clone());
                }
                Some(key) => {
                    let entry = t.entry(k.clone()).or_insert_with(|| json!([]));
                    if !entry.is_array() {
                        *entry = json!([]);
                    }
                    smp_list(entry, pl, key, names)?;
                }
            },
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
        names.pop();
    }
    Ok(())
}

fn smp_list(
    target: &mut Value,
    patch: &[Value],
    key: Option<&str>,
    names: &mut Vec<String>,
) -> Result<(), ApiError> {
    let Value::Array(items) = target else {
        return Ok(());
    };
    // `[{"$patch": "replace"}, ...]` replaces the whole list.
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *items = patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .cloned()
            .collect();
        return Ok(());
    }
    match key {
        None => {
            for p in patch {
                if !items.contains(p) {
                    items.push(p.clone());
                }
            }
        }
        Some(key) => {
            for p in patch {
                let Some(pm) = p.as_object() else {
                    return Err(unprocessable(format!(
                        "merging an object in json but data type is not struct, instead is: {}",
                        kind_name(p)
                    )));
                };
                let Some(kv) = pm.get(key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {p} does not contain declared merge key: {key}"
                    )));
                };
                let pos = items.iter().position(|i| i.get(key) == Some(kv));
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        items.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => smp_map(&mut items[i], pm, names)?,
                    None => {
                        let mut fresh = Value::Object(Map::new());
                        smp_map(&mut fresh, pm, names)?;
                        items.push(fresh);
                    }
                }
            }
        }
    }
    Ok(())
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_patch_merges_finalizers_and_deletes_by_directive() {
        let doc = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}}});
        let out = strategic_merge_patch(
            &doc,
            br#"{"metadata": {"finalizers": ["b"], "labels": {"y": null, "z": "3"}}}"#,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(out["metadata"]["labels"], json!({"x": "1", "z": "3"}));
        let out = strategic_merge_patch(
            &out,
            br#"{"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}"#,
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn strategic_merge_patch_merges_conditions_by_type() {
        let doc = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "B", "status": "False"}]}});
        let out = strategic_merge_patch(
            &doc,
            br#"{"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "$patch": "delete"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "A", "status": "True"}])
        );
    }

    #[test]
    fn failing_json_patch_test_is_unprocessable() {
        let doc = json!({"data": {"a": "1"}});
        let e = json_patch(
            &doc,
            br#"[{"op": "test", "path": "/data/a", "value": "2"}]"#,
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        let ok = json_patch(&doc, br#"[{"op": "add", "path": "/data/b", "value": "2"}]"#).unwrap();
        assert_eq!(ok["data"]["b"], "2");
        let ok = json_patch(
            &doc,
            br#"[{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata", "value": {"finalizers": ["f"]}}]"#,
        )
        .unwrap();
        assert_eq!(ok["metadata"]["finalizers"], json!(["f"]));
        assert_eq!(json_patch(&doc, b"{").unwrap_err().code, 400);
    }
}
