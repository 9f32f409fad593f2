//! Reading multi-document YAML (as `kubectl apply -f` takes it) into typed objects.
//!
//! Each document is one Kubernetes object. kmsync's four kinds become typed values; any other
//! object (ConfigMap, Secret, ServiceAccount, ...) is kept as JSON. `kind: List` documents (what
//! `kubectl get -o yaml` prints) are expanded into their items. Empty documents (only comments)
//! are skipped. Malformed input is an error naming the document and, once known, the kind and
//! name — never a panic.

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{API_VERSION, ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore};

/// One object read from a manifest stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Manifest {
    /// An `alibabacloud.com/v1alpha1` ExternalSecret.
    ExternalSecret(Box<ExternalSecret>),
    /// An `alibabacloud.com/v1alpha1` SecretStore.
    SecretStore(Box<SecretStore>),
    /// An `alibabacloud.com/v1alpha1` ClusterSecretStore.
    ClusterSecretStore(Box<ClusterSecretStore>),
    /// An `alibabacloud.com/v1alpha1` ClusterExternalSecret.
    ClusterExternalSecret(Box<ClusterExternalSecret>),
    /// Any other object, as JSON (deserialise it further with `serde_json::from_value`).
    Other {
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
        /// The whole object.
        object: serde_json::Value,
    },
}

impl Manifest {
    /// The object's kind.
    pub fn kind(&self) -> &str {
        match self {
            Manifest::ExternalSecret(_) => "ExternalSecret",
            Manifest::SecretStore(_) => "SecretStore",
            Manifest::ClusterSecretStore(_) => "ClusterSecretStore",
            Manifest::ClusterExternalSecret(_) => "ClusterExternalSecret",
            Manifest::Other { kind, .. } => kind,
        }
    }

    /// The object's `metadata.name`, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Manifest::ExternalSecret(o) => o.metadata.name.as_deref(),
            Manifest::SecretStore(o) => o.metadata.name.as_deref(),
            Manifest::ClusterSecretStore(o) => o.metadata.name.as_deref(),
            Manifest::ClusterExternalSecret(o) => o.metadata.name.as_deref(),
            Manifest::Other { object, .. } => object["metadata"]["name"].as_str(),
        }
    }

    /// The object's `metadata.namespace`, if any (never set on cluster-scoped kinds).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Manifest::ExternalSecret(o) => o.metadata.namespace.as_deref(),
            Manifest::SecretStore(o) => o.metadata.namespace.as_deref(),
            Manifest::ClusterSecretStore(o) => o.metadata.namespace.as_deref(),
            Manifest::ClusterExternalSecret(o) => o.metadata.namespace.as_deref(),
            Manifest::Other { object, .. } => object["metadata"]["namespace"].as_str(),
        }
    }
}

/// Why a manifest stream could not be read. Document numbers count from 1 in the order the
/// documents appear, empty ones included.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The YAML itself is malformed (reading stops here).
    #[error("document {document}: invalid YAML: {source}")]
    Yaml {
        /// Document number.
        document: usize,
        /// The parser's error, with line and column.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// The document is not a mapping.
    #[error(
        "document {document}: expected a Kubernetes object (a mapping with apiVersion and kind), found {found}"
    )]
    NotAnObject {
        /// Document number.
        document: usize,
        /// What was found instead, e.g. `a sequence`.
        found: &'static str,
    },
    /// `apiVersion` or `kind` is missing or not a string.
    #[error("document {document}{item}: missing or non-string {field}")]
    MissingTypeMeta {
        /// Document number.
        document: usize,
        /// ` items[3]` for a List item, else empty.
        item: String,
        /// `apiVersion` or `kind`.
        field: &'static str,
    },
    /// One of kmsync's kinds under another version of the group.
    #[error(
        "document {document}{item} ({kind} {name}): apiVersion {api_version:?} is not served; use {API_VERSION}"
    )]
    UnsupportedVersion {
        /// Document number.
        document: usize,
        /// ` items[3]` for a List item, else empty.
        item: String,
        /// The kind.
        kind: String,
        /// The object's name, or `<unnamed>`.
        name: String,
        /// The apiVersion as written.
        api_version: String,
    },
    /// A kmsync object whose fields do not match the schema.
    #[error("document {document}{item} ({kind} {name}): {message}")]
    Invalid {
        /// Document number.
        document: usize,
        /// ` items[3]` for a List item, else empty.
        item: String,
        /// The kind.
        kind: String,
        /// The object's name, or `<unnamed>`.
        name: String,
        /// The deserialiser's message: field path, problem, line and column when known.
        message: String,
    },
}

/// Our kinds, as recognised from `apiVersion`/`kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OurKind {
    ExternalSecret,
    SecretStore,
    ClusterSecretStore,
    ClusterExternalSecret,
}

impl OurKind {
    fn from_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            "ExternalSecret" => Self::ExternalSecret,
            "SecretStore" => Self::SecretStore,
            "ClusterSecretStore" => Self::ClusterSecretStore,
            "ClusterExternalSecret" => Self::ClusterExternalSecret,
            _ => return None,
        })
    }
}

/// What the first pass learnt about a document.
enum Plan {
    Skip,
    Ours { kind: OurKind, name: String },
    Other(Manifest),
    List(Vec<Manifest>),
}

/// Parses a multi-document YAML stream into objects, in order.
///
/// Errors name the document (counting from 1), and for kmsync's kinds the kind, the object's
/// name, the field path and the line and column, e.g.
/// `document 2 (ExternalSecret es-demo): spec.data[0]: missing field `key` at line 9 column 7`.
pub fn parse_manifests(input: &str) -> Result<Vec<Manifest>, ManifestError> {
    // First pass: each document as an untyped value, to learn its kind and name.
    let mut plans = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(input).enumerate() {
        let document = i + 1;
        let value =
            Value::deserialize(doc).map_err(|source| ManifestError::Yaml { document, source })?;
        plans.push(plan(document, value)?);
    }
    if !plans.iter().any(|p| matches!(p, Plan::Ours { .. })) {
        return Ok(flatten(plans, Vec::new()));
    }
    // Second pass: deserialise kmsync's kinds straight from the YAML, so errors carry the
    // field path and the line and column.
    let mut typed = Vec::new();
    for (i, (doc, plan)) in serde_yaml_ng::Deserializer::from_str(input)
        .zip(plans.iter())
        .enumerate()
    {
        if let Plan::Ours { kind, name } = plan {
            let invalid = |e: serde_yaml_ng::Error| ManifestError::Invalid {
                document: i + 1,
                item: String::new(),
                kind: format!("{kind:?}"),
                name: name.clone(),
                message: e.to_string(),
            };
            typed.push(match kind {
                OurKind::ExternalSecret => Manifest::ExternalSecret(Box::new(
                    ExternalSecret::deserialize(doc).map_err(invalid)?,
                )),
                OurKind::SecretStore => {
                    Manifest::SecretStore(Box::new(SecretStore::deserialize(doc).map_err(invalid)?))
                }
                OurKind::ClusterSecretStore => Manifest::ClusterSecretStore(Box::new(
                    ClusterSecretStore::deserialize(doc).map_err(invalid)?,
                )),
                OurKind::ClusterExternalSecret => Manifest::ClusterExternalSecret(Box::new(
                    ClusterExternalSecret::deserialize(doc).map_err(invalid)?,
                )),
            });
        }
    }
    Ok(flatten(plans, typed))
}

fn flatten(plans: Vec<Plan>, typed: Vec<Manifest>) -> Vec<Manifest> {
    let mut typed = typed.into_iter();
    let mut out = Vec::new();
    for p in plans {
        match p {
            Plan::Skip => {}
            Plan::Ours { .. } => out.extend(typed.next()),
            Plan::Other(m) => out.push(m),
            Plan::List(items) => out.extend(items),
        }
    }
    out
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn string_field<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

fn object_name(value: &Value) -> String {
    value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_owned()
}

/// Classifies one document (and expands Lists, whose items carry no line numbers).
fn plan(document: usize, value: Value) -> Result<Plan, ManifestError> {
    if value.is_null() {
        return Ok(Plan::Skip);
    }
    if !value.is_mapping() {
        return Err(ManifestError::NotAnObject {
            document,
            found: describe(&value),
        });
    }
    let (api_version, kind) = type_meta(document, "", &value)?;
    if kind == "List" && api_version == "v1" {
        let items = match value.get("items") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => items.clone(),
            Some(other) => {
                return Err(ManifestError::NotAnObject {
                    document,
                    found: describe(other),
                });
            }
        };
        let mut out = Vec::new();
        for (j, item) in items.into_iter().enumerate() {
            let label = format!(" items[{j}]");
            if !item.is_mapping() {
                return Err(ManifestError::NotAnObject {
                    document,
                    found: describe(&item),
                });
            }
            out.push(from_value(document, &label, item)?);
        }
        return Ok(Plan::List(out));
    }
    match ours(document, "", &api_version, &kind, &value)? {
        Some(our) => Ok(Plan::Ours {
            kind: our,
            name: object_name(&value),
        }),
        None => Ok(Plan::Other(other(document, "", api_version, kind, &value)?)),
    }
}

fn type_meta(
    document: usize,
    item: &str,
    value: &Value,
) -> Result<(String, String), ManifestError> {
    let missing = |field| ManifestError::MissingTypeMeta {
        document,
        item: item.to_owned(),
        field,
    };
    let api_version = string_field(value, "apiVersion").ok_or_else(|| missing("apiVersion"))?;
    let kind = string_field(value, "kind").ok_or_else(|| missing("kind"))?;
    Ok((api_version.to_owned(), kind.to_owned()))
}

/// `Some(kind)` for kmsync's kinds at the served version; an error for them at another version
/// of the group; `None` for anything else.
fn ours(
    document: usize,
    item: &str,
    api_version: &str,
    kind: &str,
    value: &Value,
) -> Result<Option<OurKind>, ManifestError> {
    let Some(our) = OurKind::from_kind(kind) else {
        return Ok(None);
    };
    if api_version == API_VERSION {
        return Ok(Some(our));
    }
    if api_version.split('/').next() == Some(super::GROUP) {
        return Err(ManifestError::UnsupportedVersion {
            document,
            item: item.to_owned(),
            kind: kind.to_owned(),
            name: object_name(value),
            api_version: api_version.to_owned(),
        });
    }
    Ok(None)
}

fn other(
    document: usize,
    item: &str,
    api_version: String,
    kind: String,
    value: &Value,
) -> Result<Manifest, ManifestError> {
    let object = serde_json::to_value(value).map_err(|e| ManifestError::Invalid {
        document,
        item: item.to_owned(),
        kind: kind.clone(),
        name: object_name(value),
        message: e.to_string(),
    })?;
    Ok(Manifest::Other {
        api_version,
        kind,
        object,
    })
}

/// Converts a List item (no source positions are left by then).
fn from_value(document: usize, item: &str, value: Value) -> Result<Manifest, ManifestError> {
    let (api_version, kind) = type_meta(document, item, &value)?;
    let Some(our) = ours(document, item, &api_version, &kind, &value)? else {
        return other(document, item, api_version, kind, &value);
    };
    let name = object_name(&value);
    let invalid = |e: serde_yaml_ng::Error| ManifestError::Invalid {
        document,
        item: item.to_owned(),
        kind: kind.clone(),
        name: name.clone(),
        message: e.to_string(),
    };
    Ok(match our {
        OurKind::ExternalSecret => {
            Manifest::ExternalSecret(Box::new(serde_yaml_ng::from_value(value).map_err(invalid)?))
        }
        OurKind::SecretStore => {
            Manifest::SecretStore(Box::new(serde_yaml_ng::from_value(value).map_err(invalid)?))
        }
        OurKind::ClusterSecretStore => Manifest::ClusterSecretStore(Box::new(
            serde_yaml_ng::from_value(value).map_err(invalid)?,
        )),
        OurKind::ClusterExternalSecret => Manifest::ClusterExternalSecret(Box::new(
            serde_yaml_ng::from_value(value).map_err(invalid)?,
        )),
    })
}
