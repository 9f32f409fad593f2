//! Turning response bodies into typed values, with errors that describe the body's shape but
//! never its content (a 2xx body may hold a secret value; serde's own messages quote values).

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::BodyProblem;

/// Parses `body` as JSON into `T` (whose fields should be `Option` so that presence is checked by
/// [`required`], and which ignores unknown fields).
///
/// # Errors
/// A [`BodyProblem`]: `Empty`, `Html`, `NotJson`, `Truncated`, `InvalidJson` (position only),
/// `InvalidField` (path only) or `UnexpectedShape`.
pub fn parse_json<T: DeserializeOwned>(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<T, BodyProblem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(value) => match de.end() {
            Ok(()) => Ok(value),
            Err(_) => Err(BodyProblem::NotJson {
                content_type: content_type.map(str::to_owned),
            }),
        },
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            Err(classify(body, content_type, &inner, &path))
        }
    }
}

fn classify(
    body: &[u8],
    content_type: Option<&str>,
    err: &serde_json::Error,
    path: &str,
) -> BodyProblem {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    let looks_html = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("html"))
        || (first == Some(b'<')
            && body
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b"<html") || w.eq_ignore_ascii_case(b"<!doc")));
    match err.classify() {
        serde_json::error::Category::Eof if first.is_none() => BodyProblem::Empty,
        serde_json::error::Category::Eof => BodyProblem::Truncated,
        _ if looks_html => BodyProblem::Html,
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
            if matches!(first, Some(b'{') | Some(b'[')) {
                BodyProblem::InvalidJson {
                    line: err.line(),
                    column: err.column(),
                }
            } else {
                BodyProblem::NotJson {
                    content_type: content_type.map(str::to_owned),
                }
            }
        }
        // Serde reads structs from arrays too, so an array at the root shows up as "[0]".
        serde_json::error::Category::Data
            if path.is_empty() || path == "." || path.starts_with('[') =>
        {
            BodyProblem::UnexpectedShape
        }
        serde_json::error::Category::Data => BodyProblem::InvalidField {
            field: path.to_owned(),
        },
    }
}

/// Returns the value of a required field, or `MissingField { field }`.
///
/// # Errors
/// [`BodyProblem::MissingField`] when `value` is `None`.
pub fn required<T>(value: Option<T>, field: &str) -> Result<T, BodyProblem> {
    value.ok_or_else(|| BodyProblem::MissingField {
        field: field.to_owned(),
    })
}

/// The error body of Alibaba Cloud APIs. Both capitalised and lowercase names are accepted (the
/// Python SDK reads `Code`/`code`, `Message`/`message`, `RequestId`/`requestId`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// Error code.
    #[serde(rename = "Code", alias = "code", default)]
    pub code: Option<String>,
    /// Message.
    #[serde(rename = "Message", alias = "message", default)]
    pub message: Option<String>,
    /// RequestId.
    #[serde(rename = "RequestId", alias = "requestId", default)]
    pub request_id: Option<String>,
}

/// Parses an error body; `None` when the body is not a JSON object with a string `Code`.
pub fn parse_error_body(body: &[u8]) -> Option<ErrorBody> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    parsed.code.as_ref()?;
    Some(parsed)
}

/// Accepts a JSON number or a numeric string (some gateways quote integers).
pub fn lenient_u64<'de, D>(de: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrString {
        Num(u64),
        Str(String),
    }
    match Option::<NumOrString>::deserialize(de)? {
        None => Ok(None),
        Some(NumOrString::Num(n)) => Ok(Some(n)),
        Some(NumOrString::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(rename = "Name")]
        name: Option<String>,
        #[serde(rename = "Count", default, deserialize_with = "lenient_u64")]
        count: Option<u64>,
        #[serde(rename = "Inner")]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    struct Inner {
        #[serde(rename = "Value")]
        value: Option<String>,
    }

    #[test]
    fn unknown_fields_are_ignored_and_numbers_may_be_quoted() {
        let b: Body = parse_json(
            br#"{"Name":"n","Count":"12","Extra":{"x":[1,2]},"Inner":{"Value":"v","New":1}}"#,
            None,
        )
        .unwrap();
        assert_eq!(b.name.as_deref(), Some("n"));
        assert_eq!(b.count, Some(12));
        assert_eq!(b.inner.unwrap().value.as_deref(), Some("v"));
    }

    #[test]
    fn missing_fields_are_reported_by_name() {
        let b: Body = parse_json(br#"{"Count":1}"#, None).unwrap();
        assert_eq!(
            required(b.name, "Name").unwrap_err(),
            BodyProblem::MissingField {
                field: "Name".into()
            }
        );
    }

    #[test]
    fn wrong_types_report_the_path_but_not_the_value() {
        let err = parse_json::<Body>(br#"{"Inner":{"Value":12345678}}"#, None).unwrap_err();
        assert_eq!(
            err,
            BodyProblem::InvalidField {
                field: "Inner.Value".into()
            }
        );
        assert!(!err.to_string().contains("12345678"));
        let err =
            parse_json::<Body>(br#"{"Name":"hunter2-marker","Count":"x"}"#, None).unwrap_err();
        assert_eq!(
            err,
            BodyProblem::InvalidField {
                field: "Count".into()
            }
        );
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn empty_truncated_html_and_non_json_bodies_are_told_apart() {
        assert_eq!(
            parse_json::<Body>(b"", None).unwrap_err(),
            BodyProblem::Empty
        );
        assert_eq!(
            parse_json::<Body>(b"  \n", None).unwrap_err(),
            BodyProblem::Empty
        );
        assert_eq!(
            parse_json::<Body>(br#"{"Name":"hunter2-mar"#, None).unwrap_err(),
            BodyProblem::Truncated
        );
        let html = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center></body></html>";
        assert_eq!(
            parse_json::<Body>(html, Some("text/html")).unwrap_err(),
            BodyProblem::Html
        );
        assert_eq!(
            parse_json::<Body>(html, None).unwrap_err(),
            BodyProblem::Html
        );
        assert_eq!(
            parse_json::<Body>(b"upstream connect error", Some("text/plain")).unwrap_err(),
            BodyProblem::NotJson {
                content_type: Some("text/plain".into())
            }
        );
        assert_eq!(
            parse_json::<Body>(br#"{"Name" "x"}"#, None).unwrap_err(),
            BodyProblem::InvalidJson { line: 1, column: 9 }
        );
        assert_eq!(
            parse_json::<Body>(b"[1,2]", None).unwrap_err(),
            BodyProblem::UnexpectedShape
        );
        assert_eq!(
            parse_json::<Body>(br#"{"Name":"x"} trailing"#, None).unwrap_err(),
            BodyProblem::NotJson { content_type: None }
        );
    }

    #[test]
    fn error_bodies_accept_both_spellings_and_need_a_code() {
        let kms = parse_error_body(
            br#"{"HttpStatus":404,"Code":"Forbidden.ResourceNotFound","Message":"The resource is not found.","RequestId":"r1"}"#,
        )
        .unwrap();
        assert_eq!(kms.code.as_deref(), Some("Forbidden.ResourceNotFound"));
        assert_eq!(kms.request_id.as_deref(), Some("r1"));
        let lower = parse_error_body(br#"{"code":"X","message":"m","requestId":"r"}"#).unwrap();
        assert_eq!(lower.code.as_deref(), Some("X"));
        assert_eq!(lower.message.as_deref(), Some("m"));
        assert!(parse_error_body(br#"{"Message":"no code"}"#).is_none());
        assert!(parse_error_body(b"<html></html>").is_none());
        assert!(parse_error_body(br#"{"Code":1}"#).is_none());
    }
}
