//! `metav1.Status` error bodies, shaped like the ones kube-apiserver writes.
//!
//! Messages follow `k8s.io/apimachinery/pkg/api/errors` (`NewNotFound`, `NewAlreadyExists`,
//! `NewConflict`, `NewInvalid`, `NewResourceExpired`, `NewApplyConflict`) so that clients that
//! match on reason, code or message text behave as they would against a real cluster.

use serde_json::{Map, Value, json};

/// One entry of `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`,
    /// `FieldValueTooLong`, `FieldManagerConflict`, ...
    pub reason: &'static str,
    /// Human text, e.g. `Invalid value: "a b": ...`.
    pub message: String,
    /// Field path, e.g. `data[a b]` or `.data.key`.
    pub field: String,
}

impl Cause {
    /// A `FieldValueInvalid` cause: `field: Invalid value: <value>: detail`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {detail}", render_value(value)),
            field: field.into(),
        }
    }

    /// A `FieldValueRequired` cause.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired",
            message,
            field: field.into(),
        }
    }

    /// A `FieldValueForbidden` cause.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }

    /// A `FieldValueTooLong` cause (`Too long: may not be more than N bytes`).
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max} bytes"),
            field: field.into(),
        }
    }

    /// The text `field.ErrorList.ToAggregate()` prints for this cause.
    fn error_text(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// How `field.Error` renders a bad value: strings quoted, numbers and bools bare.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// A failed request, rendered as a `Status` object with the real HTTP code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code (and `Status.code`).
    pub code: u16,
    /// `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`, ...).
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when the real server fills it.
    pub details: Option<Value>,
}

/// Names the resource in `details`: `group` is omitted for the core group.
fn details(group: &str, kind: &str, name: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(kind));
    Value::Object(d)
}

/// `secrets` for the core group, `widgets.example.com` otherwise (`GroupResource.String()`).
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    /// A bare status with this code, reason and message.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 `<resource> "<name>" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} {name:?} not found", qualified(group, resource)),
            details: Some(details(group, resource, name)),
        }
    }

    /// 404 for a path that names no known resource.
    pub fn no_such_resource() -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    /// 409 `<resource> "<name>" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} {name:?} already exists", qualified(group, resource)),
            details: Some(details(group, resource, name)),
        }
    }

    /// 409 `Operation cannot be fulfilled on <resource> "<name>": <why>`.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(group, resource)
            ),
            details: Some(details(group, resource, name)),
        }
    }

    /// The optimistic-concurrency conflict every stale write gets.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `<Kind> "<name>" is invalid: ...` with one cause per field error.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let text = match causes.as_slice() {
            [one] => one.error_text(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(Cause::error_text)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut d = details(group, kind, name);
        d["causes"] = causes_json(&causes);
        // `GroupKind.String()`: `Secret`, `Widget.example.com`.
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified_kind} {name:?} is invalid: {text}"),
            details: Some(d),
        }
    }

    /// 409 from server-side apply: another manager owns a field with a different value.
    pub fn apply_conflict(causes: Vec<Cause>, message: String) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message,
            details: Some(json!({ "causes": causes_json(&causes) })),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410 Expired (`too old resource version`, expired continue tokens).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 403 Forbidden.
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let message = if name.is_empty() {
            format!("{} is forbidden: {why}", qualified(group, resource))
        } else {
            format!(
                "{} {name:?} is forbidden: {why}",
                qualified(group, resource)
            )
        };
        ApiError {
            code: 403,
            reason: "Forbidden",
            message,
            details: Some(details(group, resource, name)),
        }
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(group: &str, resource: &str) -> Self {
        let mut e = Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        );
        e.details = Some(details(group, resource, ""));
        e
    }

    /// 415 UnsupportedMediaType, listing what the endpoint accepts.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        );
        e.details = Some(json!({ "causes": [{ "message": message }] }));
        e
    }

    /// A status for an arbitrary code, with the reason kube-apiserver uses for it
    /// (fault injection).
    pub fn for_code(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            406 => "NotAcceptable",
            409 => "Conflict",
            410 => "Expired",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        Self::new(code, reason, message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        });
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s["code"] = json!(self.code);
        s
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(
        causes
            .iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect(),
    )
}

/// The `Status` a successful delete returns when the object is gone at once.
pub fn delete_success(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    let mut d = details(group, resource, name);
    d["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_group_qualified_resource() {
        let e = ApiError::not_found("example.com", "widgets", "w1");
        assert_eq!(e.message, r#"widgets.example.com "w1" not found"#);
        let s = e.to_status();
        assert_eq!(
            s["details"],
            json!({"name": "w1", "group": "example.com", "kind": "widgets"})
        );
        assert_eq!(s["code"], 404);
    }

    #[test]
    fn invalid_with_two_causes_lists_both_in_brackets() {
        let e = ApiError::invalid(
            "",
            "Secret",
            "s",
            vec![
                Cause::invalid("data[a b]", &json!("a b"), "bad"),
                Cause::required("type", ""),
            ],
        );
        assert_eq!(
            e.message,
            r#"Secret "s" is invalid: [data[a b]: Invalid value: "a b": bad, type: Required value]"#
        );
        assert_eq!(
            e.to_status()["details"]["causes"][1]["reason"],
            "FieldValueRequired"
        );
    }
}
