//! The resource types the server serves: the built-in ones and one per served version of
//! every established CustomResourceDefinition.
//!
//! Names, short names, categories, verbs and scopes are those of kube-apiserver 1.33's
//! discovery documents for the same resources.

use std::sync::Arc;

use serde_json::Value;

use super::status::{ApiError, Cause};

/// What the server knows about one kind, beyond the generic object handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// `v1 Namespace`: lifecycle (`Active` / `Terminating`), content deleted on delete.
    Namespace,
    /// `v1 Secret`: `stringData`, key and size validation, immutability.
    Secret,
    /// `v1 ConfigMap`: key validation, immutability.
    ConfigMap,
    /// `v1 ServiceAccount`: `token` subresource.
    ServiceAccount,
    /// `v1 Event` (storage shape of both Event APIs).
    CoreEvent,
    /// `events.k8s.io/v1 Event`: converted to and from the core shape.
    EventsV1Event,
    /// `coordination.k8s.io/v1 Lease`.
    Lease,
    /// `apiextensions.k8s.io/v1 CustomResourceDefinition`.
    Crd,
    /// A custom resource served from a CRD.
    Custom,
}

/// A printer column (CRD `additionalPrinterColumns` or a built-in printer's column).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    /// OpenAPI format (`name` for the name column).
    pub format: String,
    /// Column description.
    pub description: String,
    /// 0 for default columns, 1+ for `-o wide`.
    pub priority: i64,
    /// Simple JSONPath (`.status.phase`) for CRD columns; empty for built-in printers.
    pub json_path: String,
}

/// One served version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    /// `v1`, `v1alpha1`, ...
    pub name: String,
    /// Printer columns for `as=Table` (CRDs: `additionalPrinterColumns`, defaulted to `Age`).
    pub columns: Vec<Column>,
    /// CRD `openAPIV3Schema`, used for pruning and list/map types.
    pub schema: Option<Value>,
    /// Whether this version has the `status` subresource.
    pub status: bool,
}

/// A resource (group + plural) and how it is served.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// Served versions, preferred (storage) version first.
    pub versions: Vec<VersionInfo>,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// List kind, e.g. `SecretList`.
    pub list_kind: String,
    /// Plural resource name, e.g. `secrets`.
    pub plural: String,
    /// Singular resource name, e.g. `secret`.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`cm`, `ns`, `sa`, `ev`, `crd`).
    pub short_names: Vec<String>,
    /// Categories (`all`, `api-extensions`).
    pub categories: Vec<String>,
    /// Field selector keys accepted besides `metadata.name` and `metadata.namespace`.
    pub selectable_fields: Vec<String>,
    /// Kind-specific rules.
    pub behaviour: Behaviour,
    /// Name of the CRD that defines this resource (custom resources only).
    pub crd_name: Option<String>,
    /// Resource whose storage this one shares (events.k8s.io Events live with core Events).
    pub storage: StorageKey,
}

/// Where objects of a resource are stored: group + plural.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

/// The verbs every resource here supports.
pub const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// `v1` for core, `group/version` otherwise.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The served version with this name.
    pub fn version(&self, name: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// The preferred version's name.
    pub fn preferred_version(&self) -> &str {
        &self.versions[0].name
    }

    /// Whether `version` of this resource has a status subresource.
    pub fn has_status(&self, version: &str) -> bool {
        self.version(version).is_some_and(|v| v.status)
    }

    /// Whether writes to the main resource ignore `.status` (status subresource enabled).
    pub fn status_is_subresource(&self) -> bool {
        self.versions.iter().any(|v| v.status)
    }

    /// Subresources offered, for discovery: `(name, kind, group, version, verbs)`.
    pub fn subresources(&self, version: &str) -> Vec<(String, String, String, String, Vec<&str>)> {
        let mut out = Vec::new();
        if self.has_status(version) {
            out.push((
                "status".to_string(),
                self.kind.clone(),
                self.group.clone(),
                version.to_string(),
                vec!["get", "patch", "update"],
            ));
        }
        match self.behaviour {
            Behaviour::ServiceAccount => out.push((
                "token".to_string(),
                "TokenRequest".to_string(),
                "authentication.k8s.io".to_string(),
                "v1".to_string(),
                vec!["create"],
            )),
            Behaviour::Namespace => out.push((
                "finalize".to_string(),
                "Namespace".to_string(),
                String::new(),
                "v1".to_string(),
                vec!["update"],
            )),
            _ => {}
        }
        out
    }
}

fn column(name: &str, type_: &str, priority: i64, description: &str) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: if name == "Name" {
            "name".into()
        } else {
            String::new()
        },
        description: description.into(),
        priority,
        json_path: String::new(),
    }
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short_names: &[&str],
    behaviour: Behaviour,
    columns: Vec<Column>,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        versions: vec![VersionInfo {
            name: version.into(),
            columns,
            schema: None,
            status: behaviour == Behaviour::Namespace || behaviour == Behaviour::Crd,
        }],
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        selectable_fields: Vec::new(),
        behaviour,
        crd_name: None,
        storage: StorageKey {
            group: group.into(),
            resource: plural.into(),
        },
    }
}

/// The built-in resources, in discovery order.
pub fn builtins() -> Vec<ResourceType> {
    let name = || column("Name", "string", 0, NAME_DOC);
    let age = || column("Age", "string", 0, AGE_DOC);
    let mut namespaces = builtin(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        Behaviour::Namespace,
        vec![
            name(),
            column("Status", "string", 0, "The status of the namespace"),
            age(),
        ],
    );
    namespaces.selectable_fields = vec!["status.phase".into()];
    let mut secrets = builtin(
        "",
        "v1",
        "Secret",
        "secrets",
        true,
        &[],
        Behaviour::Secret,
        vec![
            name(),
            column("Type", "string", 0, "The type of the secret"),
            column("Data", "string", 0, "The number of entries in the secret"),
            age(),
        ],
    );
    secrets.selectable_fields = vec!["type".into()];
    let configmaps = builtin(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        Behaviour::ConfigMap,
        vec![
            name(),
            column(
                "Data",
                "string",
                0,
                "The number of entries in the configmap",
            ),
            age(),
        ],
    );
    let serviceaccounts = builtin(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        Behaviour::ServiceAccount,
        vec![
            name(),
            column("Secrets", "string", 0, "The number of secrets"),
            age(),
        ],
    );
    let event_columns = vec![
        column(
            "Last Seen",
            "string",
            0,
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        column(
            "Type",
            "string",
            0,
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        column(
            "Reason",
            "string",
            0,
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        column(
            "Object",
            "string",
            0,
            "The object that this event is about.",
        ),
        column(
            "Subobject",
            "string",
            1,
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go-field access statement, such as desiredState.manifest.containers[2].",
        ),
        column(
            "Source",
            "string",
            1,
            "The component reporting this event. Should be a short machine understandable string.",
        ),
        column(
            "Message",
            "string",
            0,
            "A human-readable description of the status of this operation.",
        ),
        column(
            "First Seen",
            "string",
            1,
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        ),
        column(
            "Count",
            "string",
            1,
            "The number of times this event has occurred.",
        ),
        Column {
            format: "name".into(),
            ..column("Name", "string", 1, NAME_DOC)
        },
    ];
    let mut events = builtin(
        "",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        Behaviour::CoreEvent,
        event_columns.clone(),
    );
    events.selectable_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut events_v1 = builtin(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &[],
        Behaviour::EventsV1Event,
        event_columns,
    );
    events_v1.storage = StorageKey {
        group: String::new(),
        resource: "events".into(),
    };
    events_v1.selectable_fields = [
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "type",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let leases = builtin(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        Behaviour::Lease,
        vec![
            name(),
            column("Holder", "string", 0, "The holder of the lease"),
            age(),
        ],
    );
    let mut crds = builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        Behaviour::Crd,
        vec![name(), column("Created At", "date", 0, AGE_DOC)],
    );
    crds.categories = vec!["api-extensions".into()];
    vec![
        namespaces,
        configmaps,
        events,
        secrets,
        serviceaccounts,
        leases,
        events_v1,
        crds,
    ]
}

/// Parses a CRD object into the resource type it defines, validating the parts the
/// server relies on (422 `CustomResourceDefinition "<name>" is invalid` otherwise).
pub fn from_crd(crd: &Value) -> Result<ResourceType, ApiError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let invalid = |causes: Vec<Cause>| {
        ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            causes,
        )
    };
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let s = |p: &str| {
        spec.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let group = s("/group");
    let plural = s("/names/plural");
    let kind = s("/names/kind");
    let scope = s("/scope");
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    } else if !group.contains('.') {
        causes.push(Cause::invalid(
            "spec.group",
            &Value::String(group.clone()),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {scope:?}: supported values: \"Cluster\", \"Namespaced\""
            ),
            field: "spec.scope".into(),
        });
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &Value::String(name.to_string()),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::invalid(
            "spec.versions",
            &Value::Array(vec![]),
            "must have exactly one version marked as storage version",
        ));
    }
    let storage_count = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage_count != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    if !causes.is_empty() {
        return Err(invalid(causes));
    }
    let mut served: Vec<VersionInfo> = Vec::new();
    let mut storage_first: Option<VersionInfo> = None;
    for v in &versions {
        let vname = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let mut columns = Vec::new();
        for c in v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let g = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            columns.push(Column {
                name: g("name"),
                type_: g("type"),
                format: g("format"),
                description: if g("description").is_empty() {
                    format!(
                        "Custom resource definition column (in JSONPath format): {}",
                        g("jsonPath")
                    )
                } else {
                    g("description")
                },
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                json_path: g("jsonPath"),
            });
        }
        if columns.is_empty() {
            columns.push(Column {
                name: "Age".into(),
                type_: "date".into(),
                format: String::new(),
                description: AGE_DOC.into(),
                priority: 0,
                json_path: ".metadata.creationTimestamp".into(),
            });
        }
        columns.insert(0, column("Name", "string", 0, NAME_DOC));
        let info = VersionInfo {
            name: vname,
            columns,
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            status: v.pointer("/subresources/status").is_some(),
        };
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage_first = Some(info);
        } else {
            served.push(info);
        }
    }
    // Discovery orders versions by kube-aware priority; the first is the preferred version.
    if let Some(st) = storage_first {
        served.insert(0, st);
    }
    served.sort_by_key(|v| std::cmp::Reverse(version_priority(&v.name)));
    if served.is_empty() {
        return Err(invalid(vec![Cause::invalid(
            "spec.versions",
            &Value::Array(versions),
            "must have at least one served version",
        )]));
    }
    let strs = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let singular = {
        let s = s("/names/singular");
        if s.is_empty() { kind.to_lowercase() } else { s }
    };
    let list_kind = {
        let s = s("/names/listKind");
        if s.is_empty() {
            format!("{kind}List")
        } else {
            s
        }
    };
    let selectable_fields = versions
        .iter()
        .flat_map(|v| {
            v.get("selectableFields")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|f| {
            f.get("jsonPath")
                .and_then(Value::as_str)
                .map(|p| p.trim_start_matches('.').to_string())
        })
        .collect();
    Ok(ResourceType {
        group: group.clone(),
        versions: served,
        kind,
        list_kind,
        plural: plural.clone(),
        singular,
        namespaced: scope == "Namespaced",
        short_names: strs("/names/shortNames"),
        categories: strs("/names/categories"),
        selectable_fields,
        behaviour: Behaviour::Custom,
        crd_name: Some(name.to_string()),
        storage: StorageKey {
            group,
            resource: plural,
        },
    })
}

/// Kubernetes version priority (`v1` > `v1beta2` > `v1beta1` > `v1alpha1` > other), as
/// `version.CompareKubeAwareVersionStrings` orders them.
pub fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(major) = digits.parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    match num.parse::<u64>() {
        Ok(n) => (level, major, n),
        Err(_) => (0, 0, 0),
    }
}

/// All resource types currently served.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: Vec<Arc<ResourceType>>,
}

impl Registry {
    /// A registry of the built-in resources only.
    pub fn with_builtins() -> Self {
        Registry {
            types: builtins().into_iter().map(Arc::new).collect(),
        }
    }

    /// All types, built-ins first.
    pub fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// The type serving `group/version` `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.version(version).is_some())
            .cloned()
    }

    /// The type with this group and plural (any version).
    pub fn find_any(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
    }

    /// The type for `apiVersion` + `kind` (used by the garbage collector and TokenRequest).
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.types
            .iter()
            .find(|t| t.group == group && t.kind == kind && t.version(version).is_some())
            .cloned()
    }

    /// Adds (or replaces) the resource type defined by CRD `crd_name`.
    pub fn set_custom(&mut self, rt: ResourceType) {
        self.types.retain(|t| t.crd_name != rt.crd_name);
        self.types.push(Arc::new(rt));
    }

    /// Removes the resource type defined by CRD `crd_name`.
    pub fn remove_custom(&mut self, crd_name: &str) -> Option<Arc<ResourceType>> {
        let pos = self
            .types
            .iter()
            .position(|t| t.crd_name.as_deref() == Some(crd_name))?;
        Some(self.types.remove(pos))
    }

    /// Groups with their versions, preferred version first, in discovery order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            if t.group.is_empty() {
                continue;
            }
            let entry = match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some(e) => e,
                None => {
                    out.push((t.group.clone(), Vec::new()));
                    out.last_mut().expect("just pushed")
                }
            };
            for v in &t.versions {
                if !entry.1.contains(&v.name) {
                    entry.1.push(v.name.clone());
                }
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_priority_orders_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "v1beta1", "foo"];
        v.sort_by_key(|s| std::cmp::Reverse(version_priority(s)));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn crd_without_printer_columns_gets_name_and_age() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}
        });
        let rt = from_crd(&crd).unwrap();
        let cols: Vec<_> = rt.versions[0]
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["Name", "Age"]);
        assert_eq!(rt.list_kind, "WidgetList");
        assert_eq!(rt.singular, "widget");
    }

    #[test]
    fn crd_whose_name_does_not_match_is_invalid() {
        let crd = json!({
            "metadata": {"name": "wrong"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}
        });
        let e = from_crd(&crd).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(
            e.message.contains("must be spec.names.plural"),
            "{}",
            e.message
        );
    }
}
