//! The emulator's view of one incoming RPC request, and how answers are written.
//!
//! Error bodies follow `shared/docs/alibaba-cloud-protocol.md`: the API gateway answers
//! `{RequestId, HostId, Code, Message, Recommend}`; KMS itself answers
//! `{HttpStatus, Code, Message, RequestId}`. Every answer carries `x-acs-request-id`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::alibaba::encode::decode_form;

/// One decoded request.
#[derive(Debug)]
pub(crate) struct RpcCall {
    pub method: Method,
    pub path: String,
    /// Query parameters, decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    /// Form body parameters, decoded (only for `application/x-www-form-urlencoded`).
    pub form: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Query and form parameters by name.
    pub params: BTreeMap<String, String>,
    /// A parameter given twice, if any.
    pub duplicate: Option<String>,
    /// `x-acs-action` header, else the `Action` parameter.
    pub action: String,
    /// `x-acs-version` header, else the `Version` parameter.
    pub version: String,
}

impl RpcCall {
    pub fn parse(
        method: Method,
        path: &str,
        raw_query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        let query = decode_form(raw_query.unwrap_or("").as_bytes());
        let is_form = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let form = if is_form {
            decode_form(&body)
        } else {
            Vec::new()
        };
        let mut params = BTreeMap::new();
        let mut duplicate = None;
        for (k, v) in query.iter().chain(form.iter()) {
            if params.insert(k.clone(), v.clone()).is_some() && duplicate.is_none() {
                duplicate = Some(k.clone());
            }
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let action = header("x-acs-action")
            .or_else(|| params.get("Action").cloned())
            .unwrap_or_default();
        let version = header("x-acs-version")
            .or_else(|| params.get("Version").cloned())
            .unwrap_or_default();
        Self {
            method,
            path: path.to_owned(),
            query,
            form,
            headers,
            body,
            params,
            duplicate,
            action,
            version,
        }
    }

    /// A parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All query and form pairs (for V1 signatures).
    pub fn all_pairs(&self) -> Vec<(String, String)> {
        self.query.iter().chain(self.form.iter()).cloned().collect()
    }
}

/// Which error body shape to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorStyle {
    /// API gateway: `{RequestId, HostId, Code, Message, Recommend}`.
    Gateway,
    /// KMS: `{HttpStatus, Code, Message, RequestId}`.
    Kms,
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EmuError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub style: ErrorStyle,
    pub retry_after_ms: Option<u64>,
}

impl EmuError {
    pub fn gateway(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            style: ErrorStyle::Gateway,
            retry_after_ms: None,
        }
    }

    pub fn kms(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            style: ErrorStyle::Kms,
            retry_after_ms: None,
        }
    }

    /// `400 Missing<Name>`: the gateway's answer for a missing required parameter.
    pub fn missing(name: &str) -> Self {
        Self::gateway(
            400,
            &format!("Missing{name}"),
            format!("{name} is mandatory for this action."),
        )
    }

    /// `400 InvalidParameter` (KMS).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::kms(400, "InvalidParameter", message)
    }
}

/// A fresh RequestId (uppercase UUID, as Alibaba Cloud gateways send).
pub(crate) fn new_request_id() -> String {
    uuid::Uuid::new_v4()
        .hyphenated()
        .to_string()
        .to_ascii_uppercase()
}

fn with_common_headers(
    mut response: Response,
    request_id: &str,
    content_type: &'static str,
) -> Response {
    let h = response.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-acs-request-id", v);
    }
    response
}

/// A 200 JSON answer.
pub(crate) fn json_response(body: &serde_json::Value, request_id: &str) -> Response {
    let response = Response::new(Body::from(body.to_string()));
    with_common_headers(response, request_id, "application/json;charset=utf-8")
}

/// An error answer in the requested style.
pub(crate) fn error_response(err: &EmuError, request_id: &str, host: &str) -> Response {
    let body = match err.style {
        ErrorStyle::Gateway => serde_json::json!({
            "RequestId": request_id,
            "HostId": host,
            "Code": err.code,
            "Message": err.message,
            "Recommend": format!("https://api.aliyun.com/troubleshoot?q={}", err.code),
        }),
        ErrorStyle::Kms => serde_json::json!({
            "HttpStatus": err.status,
            "Code": err.code,
            "Message": err.message,
            "RequestId": request_id,
        }),
    };
    let mut response = json_response(&body, request_id);
    *response.status_mut() =
        StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ms) = err.retry_after_ms
        && let Ok(v) = HeaderValue::from_str(&ms.to_string())
    {
        response.headers_mut().insert("x-acs-retry-after", v);
    }
    response
}

/// An HTML error page as a reverse proxy sends it (for the `html` fault).
pub(crate) fn html_error_page(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let reason = code.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(Body::from(page));
    *response.status_mut() = code;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_form_action_and_version() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let call = RpcCall::parse(
            Method::POST,
            "/",
            Some("Action=GetSecretValue&Version=2016-01-20&SecretName=a+b%2Fc"),
            headers,
            Bytes::from_static(b"VersionStage=ACSCurrent"),
        );
        assert_eq!(call.action, "GetSecretValue");
        assert_eq!(call.version, "2016-01-20");
        assert_eq!(call.param("SecretName"), Some("a b/c"));
        assert_eq!(call.param("VersionStage"), Some("ACSCurrent"));
        assert_eq!(call.duplicate, None);
        assert_eq!(call.all_pairs().len(), 4);
    }

    #[test]
    fn headers_win_for_v3_and_duplicates_are_noticed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-acs-action", HeaderValue::from_static("ListSecrets"));
        headers.insert("x-acs-version", HeaderValue::from_static("2016-01-20"));
        let call = RpcCall::parse(Method::GET, "/", Some("A=1&A=2"), headers, Bytes::new());
        assert_eq!(call.action, "ListSecrets");
        assert_eq!(call.duplicate.as_deref(), Some("A"));
    }
}
