//! The generic REST storage: get, list, create, update, patch, apply, delete and
//! deletecollection over the store, with the metadata rules of `k8s.io/apiserver`'s generic
//! registry (uid, creationTimestamp, generation, resourceVersion preconditions, finalizers and
//! deletionTimestamp, status subresource scoping, managedFields) and the kind-specific rules
//! from [`validation`](super::validation).
//!
//! Every operation runs synchronously under the server's single state lock, so each write is
//! atomic and gets the next global resourceVersion.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::fields::{self, Schema, Scope, Writer};
use super::patch::{self, PatchType};
use super::resources::{self, Behaviour, Registry, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{self, ApiError, Cause};
use super::store::{Store, object_key};
use super::validation;

/// Mutable server state behind one lock.
pub struct State {
    /// Objects, revision and history.
    pub store: Store,
    /// Served resource types (built-ins + CRDs).
    pub registry: Registry,
    /// `Warning` headers for the response of the request being served.
    pub warnings: Vec<String>,
}

/// The resource a request addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resource type.
    pub rt: Arc<ResourceType>,
    /// Requested version.
    pub version: String,
    /// Namespace (`""` for cluster-scoped or all-namespaces).
    pub namespace: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// `status`, `token`, `finalize`, or none.
    pub subresource: Option<String>,
}

/// Write options from the query string.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `fieldManager` (or the User-Agent's product, as the real server defaults it).
    pub manager: String,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `force=true` (apply only).
    pub force: bool,
    /// `fieldValidation`: `Ignore`, `Warn` (the default) or `Strict`.
    pub field_validation: String,
    /// Whether the write is a (non-apply) patch, which reports unknown fields differently.
    pub is_patch: bool,
}

/// The current time as kube-apiserver writes `metav1.Time` (RFC 3339, seconds, `Z`).
pub fn now_str(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `metav1.MicroTime`.
pub fn micro_str(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn meta_str<'v>(obj: &'v Value, field: &str) -> Option<&'v str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Converts a stored (core-shaped) Event to `events.k8s.io/v1` and back.
const EVENT_RENAMES: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// Renames Event fields between the core (`to_v1 = false`) and events.k8s.io shapes.
pub fn rename_fields(obj: &mut Value, to_v1: bool) {
    let Some(m) = obj.as_object_mut() else { return };
    for (core, v1) in EVENT_RENAMES {
        let (from, to) = if to_v1 { (core, v1) } else { (v1, core) };
        if let Some(v) = m.remove(from) {
            m.insert(to.to_string(), v);
        }
    }
}

/// The object as a client of `target`'s version sees it.
pub fn present(rt: &ResourceType, version: &str, stored: &Value) -> Value {
    let mut out = stored.clone();
    if rt.behaviour == Behaviour::EventsV1Event {
        rename_fields(&mut out, true);
    }
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version(version)));
        m.insert("kind".into(), json!(rt.kind));
    }
    out
}

fn to_storage(rt: &ResourceType, mut obj: Value) -> Value {
    if rt.behaviour == Behaviour::EventsV1Event {
        rename_fields(&mut obj, false);
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), json!("v1"));
        }
    }
    obj
}

/// `resourceVersion` as a number (400 for garbage, like the real server).
pub fn parse_rv(rv: &str) -> Result<u64, ApiError> {
    rv.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
        ))
    })
}

fn body_object(body: &[u8], rt: &ResourceType) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal into Go value of type {}",
            rt.kind,
            rt.preferred_version(),
            rt.kind,
            rt.kind
        )));
    }
    Ok(v)
}

fn check_type_meta(obj: &Value, t: &Target) -> Result<(), ApiError> {
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && !kind.is_empty()
        && kind != t.rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind on the URL ({})",
            t.rt.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        let want = t.rt.api_version(&t.version);
        let group_of = |s: &str| {
            s.rsplit_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default()
        };
        if !av.is_empty() && group_of(av) != t.rt.group && av != want {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want})"
            )));
        }
    }
    Ok(())
}

impl State {
    /// A store with the built-in resources and the system namespaces.
    pub fn new(history_limit: usize, now: DateTime<Utc>) -> Self {
        let mut st = State {
            store: Store::new(history_limit),
            registry: Registry::with_builtins(),
            warnings: Vec::new(),
        };
        let ns = st
            .registry
            .find("", "v1", "namespaces")
            .expect("namespaces are built in");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let t = Target {
                rt: ns.clone(),
                version: "v1".into(),
                namespace: String::new(),
                name: None,
                subresource: None,
            };
            let body =
                serde_json::to_vec(&json!({"metadata": {"name": name}})).expect("static JSON");
            st.create(
                &t,
                &body,
                &WriteOpts {
                    manager: "kube-apiserver".into(),
                    ..Default::default()
                },
                now,
            )
            .expect("system namespaces are valid");
        }
        st
    }

    fn get_stored(&self, t: &Target, name: &str) -> Result<Arc<Value>, ApiError> {
        self.store
            .get(&t.rt.storage, &t.namespace, name)
            .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.plural, name))
    }

    /// GET of one object.
    pub fn get(&self, t: &Target, name: &str) -> Result<Value, ApiError> {
        Ok(present(&t.rt, &t.version, &*self.get_stored(t, name)?))
    }

    fn namespace_check(&self, t: &Target) -> Result<(), ApiError> {
        if !t.rt.namespaced {
            return Ok(());
        }
        match self.store.get(
            &resources::StorageKey {
                group: String::new(),
                resource: "namespaces".into(),
            },
            "",
            &t.namespace,
        ) {
            None => Err(ApiError::not_found("", "namespaces", &t.namespace)),
            Some(ns) if ns.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::forbidden(
                    &t.rt.group,
                    &t.rt.plural,
                    "",
                    &format!(
                        "unable to create new content in namespace {} because it is being terminated",
                        t.namespace
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// POST: creates an object (`409 AlreadyExists`, `generateName`, namespace must exist).
    pub fn create(
        &mut self,
        t: &Target,
        body: &[u8],
        opts: &WriteOpts,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut obj = body_object(body, &t.rt)?;
        check_type_meta(&obj, t)?;
        self.create_object(t, &mut obj, opts, now, None)
    }

    fn create_object(
        &mut self,
        t: &Target,
        obj: &mut Value,
        opts: &WriteOpts,
        now: DateTime<Utc>,
        applied: Option<(&Value, bool)>,
    ) -> Result<Value, ApiError> {
        let rt = t.rt.clone();
        let meta = meta_mut(obj);
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != t.namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(t.namespace));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    vec![Cause::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
            // names.SimpleNameGenerator: 5 random lowercase alphanumerics, prefix capped.
            const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String = (0..5)
                .map(|_| ALNUM[rand::random_range(0..ALNUM.len())] as char)
                .collect();
            let max = 63 - 5;
            let mut cut = prefix.len().min(max);
            while !prefix.is_char_boundary(cut) {
                cut -= 1;
            }
            let prefix = &prefix[..cut];
            name = format!("{prefix}{suffix}");
            meta.insert("name".into(), json!(name));
        }
        if let Some(n) = &t.name
            && *n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({n})"
            )));
        }
        let causes = validation::name_causes(&name, rt.behaviour == Behaviour::Namespace);
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes));
        }
        self.namespace_check(t)?;
        if self.store.get(&rt.storage, &t.namespace, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        // System-owned metadata.
        let meta = meta_mut(obj);
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
            "managedFields",
        ] {
            meta.remove(k);
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(now_str(now)));
        if matches!(rt.behaviour, Behaviour::Custom | Behaviour::Crd) {
            meta.insert("generation".into(), json!(1));
        }
        if rt.status_is_subresource() && rt.behaviour == Behaviour::Custom {
            // Create cannot set status when the status subresource is enabled.
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        let mut obj = to_storage(&rt, obj.clone());
        let pruned = self.normalize(&rt, &t.version, &mut obj, None, now)?;
        if applied.is_none() {
            self.unknown_fields(&rt, &t.version, &name, &obj, &pruned, opts)?;
        }
        let schema_v = rt.version(&t.version).and_then(|v| v.schema.clone());
        let schema = Schema(schema_v.as_ref());
        let scope = if rt.status_is_subresource() {
            Scope::NoStatus
        } else {
            Scope::Whole
        };
        let writer = Writer {
            manager: &opts.manager,
            subresource: "",
            api_version: &rt.api_version(&t.version),
            now: &now_str(now),
        };
        match applied {
            Some((cfg, force)) => {
                let mut result = fields::apply(None, cfg, schema, scope, force, writer)?;
                // Keep the system metadata set above.
                let m = meta_mut(&mut result);
                for k in [
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "namespace",
                    "name",
                ] {
                    if let Some(v) = obj.pointer(&format!("/metadata/{k}")) {
                        m.insert(k.into(), v.clone());
                    }
                }
                result["apiVersion"] = obj["apiVersion"].clone();
                result["kind"] = obj["kind"].clone();
                let mut r = to_storage(&rt, result);
                self.normalize(&rt, &t.version, &mut r, None, now)?;
                obj = r;
            }
            None => fields::record_update(None, &mut obj, schema, scope, writer),
        }
        self.validate(&rt, &t.version, &obj, None)?;
        if rt.behaviour == Behaviour::Crd {
            let ct = resources::from_crd(&obj)?;
            self.check_crd_names(&ct)?;
        }
        if opts.dry_run {
            return Ok(present(&rt, &t.version, &obj));
        }
        meta_mut(&mut obj).insert(
            "resourceVersion".into(),
            json!(self.store.next_rv().to_string()),
        );
        let stored = self.store.put(&rt.storage, obj);
        self.after_write(&rt, &stored, now)?;
        let latest = self
            .store
            .get(&rt.storage, &t.namespace, &name)
            .unwrap_or(stored);
        Ok(present(&rt, &t.version, &latest))
    }

    fn check_crd_names(&self, ct: &ResourceType) -> Result<(), ApiError> {
        if let Some(existing) = self.registry.find_any(&ct.group, &ct.plural)
            && existing.crd_name != ct.crd_name
        {
            return Err(ApiError::invalid(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                ct.crd_name.as_deref().unwrap_or_default(),
                vec![Cause::invalid(
                    "spec.names.plural",
                    &json!(ct.plural),
                    "is already in use",
                )],
            ));
        }
        Ok(())
    }

    /// Kind-specific normalisation before field tracking and validation. Empty maps and
    /// lists in `omitempty` fields of typed objects disappear, as Go's encoding drops them.
    fn normalize(
        &self,
        rt: &ResourceType,
        version: &str,
        obj: &mut Value,
        old: Option<&Value>,
        _now: DateTime<Utc>,
    ) -> Result<Vec<String>, ApiError> {
        let mut pruned = Vec::new();
        let mut omit_empty: Vec<&str> = vec![
            "labels",
            "annotations",
            "finalizers",
            "ownerReferences",
            "managedFields",
        ];
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, v| {
                !(omit_empty.contains(&k.as_str())
                    && (v.is_null()
                        || v.as_object().is_some_and(Map::is_empty)
                        || v.as_array().is_some_and(Vec::is_empty)))
            });
        }
        omit_empty = match rt.behaviour {
            Behaviour::Secret => vec!["data", "stringData"],
            Behaviour::ConfigMap => vec!["data", "binaryData"],
            Behaviour::ServiceAccount => vec!["secrets", "imagePullSecrets"],
            _ => vec![],
        };
        if let Some(m) = obj.as_object_mut() {
            m.retain(|k, v| {
                !(omit_empty.contains(&k.as_str())
                    && (v.is_null()
                        || v.as_object().is_some_and(Map::is_empty)
                        || v.as_array().is_some_and(Vec::is_empty)))
            });
        }
        match rt.behaviour {
            Behaviour::Secret => {
                validation::normalize_secret(obj)?;
            }
            Behaviour::Namespace => {
                let name = meta_str(obj, "name").unwrap_or_default().to_string();
                let meta = meta_mut(obj);
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
                if old.is_none() {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                    obj["status"] = json!({"phase": "Active"});
                }
            }
            Behaviour::Custom => {
                if let Some(schema) = rt.version(version).and_then(|v| v.schema.as_ref()) {
                    pruned = validation::prune(obj, schema);
                    validation::apply_defaults(obj, schema);
                }
            }
            _ => {}
        }
        Ok(pruned)
    }

    /// Applies `fieldValidation` to fields pruning dropped: `Strict` fails the request the
    /// way kube-apiserver does for a create/update (400) or patch (422); `Warn` (default)
    /// adds a `Warning` header per field; `Ignore` drops them silently.
    fn unknown_fields(
        &mut self,
        rt: &ResourceType,
        version: &str,
        name: &str,
        obj: &Value,
        pruned: &[String],
        opts: &WriteOpts,
    ) -> Result<(), ApiError> {
        if pruned.is_empty() {
            return Ok(());
        }
        let errs: Vec<String> = pruned
            .iter()
            .map(|p| format!("unknown field {p:?}"))
            .collect();
        match opts.field_validation.as_str() {
            "Ignore" => Ok(()),
            "Strict" if opts.is_patch => Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                name,
                vec![Cause::invalid(
                    "patch",
                    &json!(obj.to_string()),
                    &format!("strict decoding error: {}", errs.join(", ")),
                )],
            )),
            "Strict" => Err(ApiError::bad_request(format!(
                "{} in version {version:?} cannot be handled as a {}: strict decoding error: {}",
                rt.kind,
                rt.kind,
                errs.join(", ")
            ))),
            _ => {
                self.warnings.extend(errs);
                Ok(())
            }
        }
    }

    fn validate(
        &self,
        rt: &ResourceType,
        version: &str,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let name = meta_str(obj, "name").unwrap_or_default();
        let mut causes = validation::label_causes(obj);
        // apimachinery's ValidateFinalizerName: a qualified name. Names without a domain
        // prefix (ack-secret-manager's `finalizer.ack.secrets-manager.alibabacloud.com`) are
        // accepted; kube-apiserver only warns about them.
        for f in finalizers(obj) {
            if let Some(problem) = qualified_name_problem(&f) {
                causes.push(Cause::invalid("metadata.finalizers", &json!(f), &problem));
            }
        }
        match rt.behaviour {
            Behaviour::Secret => {
                let sizes: Vec<(String, usize)> = obj
                    .get("data")
                    .and_then(Value::as_object)
                    .map(|d| {
                        d.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str()
                                        .and_then(|s| STANDARD.decode(s).ok())
                                        .map_or(0, |b| b.len()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                causes.extend(validation::secret_causes(obj, &sizes, old));
            }
            Behaviour::ConfigMap => causes.extend(validation::configmap_causes(obj, old)?),
            Behaviour::Custom => {
                if let Some(schema) = rt.version(version).and_then(|v| v.schema.as_ref()) {
                    causes.extend(validation::schema_causes(obj, schema));
                }
            }
            Behaviour::EventsV1Event if old.is_none() => {
                // events.k8s.io/v1 requires the fields the new Event API is built on.
                if obj.get("eventTime").is_none_or(Value::is_null) {
                    causes.push(Cause::required("eventTime", ""));
                }
                for (core, v1) in [
                    ("reportingComponent", "reportingController"),
                    ("reportingInstance", "reportingInstance"),
                    ("action", "action"),
                    ("reason", "reason"),
                ] {
                    if obj
                        .get(core)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        causes.push(Cause::required(v1, ""));
                    }
                }
            }
            _ => {}
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, name, causes));
        }
        Ok(())
    }

    /// PUT: replaces an object (404 if missing, 409 on a stale resourceVersion).
    pub fn update(
        &mut self,
        t: &Target,
        body: &[u8],
        opts: &WriteOpts,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let name = t.name.clone().unwrap_or_default();
        let obj = body_object(body, &t.rt)?;
        check_type_meta(&obj, t)?;
        let body_name = meta_str(&obj, "name").unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let old = self.get_stored(t, &name)?;
        self.write_over(t, &old, obj, opts, now, None)
    }

    /// PATCH of any type; apply patches create missing objects.
    pub fn patch(
        &mut self,
        t: &Target,
        ty: PatchType,
        body: &[u8],
        opts: &WriteOpts,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let name = t.name.clone().unwrap_or_default();
        if ty != PatchType::Apply && opts.force {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        if ty == PatchType::Strategic
            && matches!(t.rt.behaviour, Behaviour::Custom | Behaviour::Crd)
        {
            return Err(ApiError::unsupported_media_type(&patch::CUSTOM_PATCH_TYPES));
        }
        if ty == PatchType::Apply {
            if opts.manager.is_empty() {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    vec![Cause::required(
                        "fieldManager",
                        "is required for apply patch",
                    )],
                ));
            }
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            let mut applied: Value = serde_yaml_ng::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !applied.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding YAML: the applied configuration must be an object",
                ));
            }
            check_type_meta(&applied, t)?;
            if applied
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
                || applied
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request("invalid object type: /, Kind="));
            }
            let applied_name = meta_str(&applied, "name").unwrap_or_default().to_string();
            if applied_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({name})"
                )));
            }
            let mut applied_storage = to_storage(&t.rt, applied.clone());
            if t.rt.behaviour == Behaviour::Secret {
                validation::normalize_secret(&mut applied_storage)?;
                // `type` defaults to Opaque only on the object, not in what the manager applied.
                if applied.get("type").is_none()
                    && let Some(m) = applied_storage.as_object_mut()
                {
                    m.remove("type");
                }
            }
            applied = applied_storage;
            if let Some(schema) = t.rt.version(&t.version).and_then(|v| v.schema.as_ref()) {
                let undeclared = validation::prune(&mut applied.clone(), schema);
                if !undeclared.is_empty() {
                    // structured-merge-diff rejects the applied object; the apiserver reports
                    // that error as an untyped 500.
                    let gvk = format!("{}, Kind={}", t.rt.api_version(&t.version), t.rt.kind);
                    let nn = if t.namespace.is_empty() {
                        name.clone()
                    } else {
                        format!("{}/{name}", t.namespace)
                    };
                    let errs: Vec<String> = undeclared
                        .iter()
                        .map(|p| format!(".{p}: field not declared in schema"))
                        .collect();
                    return Err(ApiError::new(
                        500,
                        "",
                        format!(
                            "failed to create typed patch object ({nn}; {gvk}): {}",
                            errs.join("\n")
                        ),
                    ));
                }
            }
            return match self.store.get(&t.rt.storage, &t.namespace, &name) {
                None => {
                    if t.subresource.is_some() {
                        return Err(ApiError::not_found(&t.rt.group, &t.rt.plural, &name));
                    }
                    let mut obj = applied.clone();
                    self.create_object(t, &mut obj, opts, now, Some((&applied, opts.force)))
                }
                Some(old) => {
                    self.write_over(t, &old.clone(), Value::Null, opts, now, Some(&applied))
                }
            };
        }
        let old = self.get_stored(t, &name)?;
        let current = present(&t.rt, &t.version, &old);
        let patched = match ty {
            PatchType::Json => patch::json_patch(&current, body)?,
            PatchType::Merge => patch::merge_patch(&current, body)?,
            PatchType::Strategic => patch::strategic_merge_patch(&current, body)?,
            PatchType::Apply => unreachable!("handled above"),
        };
        if !patched.is_object() {
            return Err(patch::unprocessable("the patch did not produce an object"));
        }
        let patched_name = meta_str(&patched, "name").unwrap_or_default();
        if patched_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({patched_name}) does not match the name on the URL ({name})"
            )));
        }
        self.write_over(t, &old, patched, opts, now, None)
    }

    /// Update path shared by PUT, patches and apply: scoping to the (sub)resource, system
    /// metadata, generation, finalizer rules, managedFields, validation and the no-op check.
    fn write_over(
        &mut self,
        t: &Target,
        old: &Arc<Value>,
        incoming: Value,
        opts: &WriteOpts,
        now: DateTime<Utc>,
        applied: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let rt = t.rt.clone();
        let old_v: &Value = old;
        let name = meta_str(old_v, "name").unwrap_or_default().to_string();
        let sub = t.subresource.as_deref().unwrap_or_default();
        let scope = if sub == "status" {
            Scope::StatusOnly
        } else if rt.status_is_subresource() {
            Scope::NoStatus
        } else {
            Scope::Whole
        };
        let schema_v = rt.version(&t.version).and_then(|v| v.schema.clone());
        let schema = Schema(schema_v.as_ref());
        let api_version = rt.api_version(&t.version);
        let now_s = now_str(now);
        let writer = Writer {
            manager: &opts.manager,
            subresource: sub,
            api_version: &api_version,
            now: &now_s,
        };

        let mut new = match applied {
            Some(cfg) => {
                if let Some(rv) = meta_str(cfg, "resourceVersion")
                    && !rv.is_empty()
                    && Some(rv) != meta_str(old_v, "resourceVersion")
                {
                    return Err(ApiError::stale(&rt.group, &rt.plural, &name));
                }
                fields::apply(Some(old_v), cfg, schema, scope, opts.force, writer)?
            }
            None => {
                let mut n = to_storage(&rt, incoming);
                if let Some(rv) = meta_str(&n, "resourceVersion")
                    && !rv.is_empty()
                    && Some(rv) != meta_str(old_v, "resourceVersion")
                {
                    return Err(ApiError::stale(&rt.group, &rt.plural, &name));
                }
                let pruned = self.normalize(&rt, &t.version, &mut n, Some(old_v), now)?;
                self.unknown_fields(&rt, &t.version, &name, &n, &pruned, opts)?;
                n
            }
        };
        if applied.is_some() {
            self.normalize(&rt, &t.version, &mut new, Some(old_v), now)?;
        }

        // Scope the write: status subresource writes change only status; main-resource
        // writes keep the stored status when the status subresource exists.
        match scope {
            Scope::StatusOnly => {
                let status = new.get("status").cloned();
                let mf = new.pointer("/metadata/managedFields").cloned();
                let mut scoped = old_v.clone();
                match status {
                    Some(s) => scoped["status"] = s,
                    None => {
                        if let Some(m) = scoped.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                let meta = meta_mut(&mut scoped);
                match mf {
                    Some(mf) => meta.insert("managedFields".into(), mf),
                    None => meta.remove("managedFields"),
                };
                new = scoped;
            }
            Scope::NoStatus => match old_v.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            Scope::Whole => {}
        }

        // System metadata is the server's.
        {
            let old_meta = old_v.get("metadata").cloned().unwrap_or_default();
            let meta = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
                "generateName",
            ] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            meta.insert(
                "resourceVersion".into(),
                old_meta.get("resourceVersion").cloned().unwrap_or_default(),
            );
        }
        new["apiVersion"] = old_v["apiVersion"].clone();
        new["kind"] = old_v["kind"].clone();

        // Finalizers cannot be added to an object that is being deleted.
        if old_v.pointer("/metadata/deletionTimestamp").is_some() {
            let before = finalizers(old_v);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &name,
                    vec![Cause::forbidden(
                        "metadata.finalizers",
                        &format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }

        if applied.is_none() {
            // Managed fields: a client-sent list replaces the stored one (as the real server
            // allows), then this write is recorded as an Update.
            let base = match new.pointer("/metadata/managedFields") {
                Some(Value::Array(list)) if !list.is_empty() => {
                    let mut b = old_v.clone();
                    meta_mut(&mut b).insert("managedFields".into(), Value::Array(list.clone()));
                    b
                }
                Some(Value::Array(_)) => {
                    let mut b = old_v.clone();
                    meta_mut(&mut b).remove("managedFields");
                    b
                }
                _ => old_v.clone(),
            };
            fields::record_update(Some(&base), &mut new, schema, scope, writer);
        }

        self.validate(&rt, &t.version, &new, Some(old_v))?;

        // generation: bumped when anything but metadata and status changes.
        if matches!(rt.behaviour, Behaviour::Custom | Behaviour::Crd) {
            let strip = |v: &Value| {
                let mut c = v.clone();
                if let Some(m) = c.as_object_mut() {
                    m.remove("metadata");
                    m.remove("status");
                }
                c
            };
            if strip(&new) != strip(old_v) {
                let g = old_v
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                meta_mut(&mut new).insert("generation".into(), json!(g + 1));
            }
        }
        if rt.behaviour == Behaviour::Crd {
            let ct = resources::from_crd(&new)?;
            self.check_crd_names(&ct)?;
            let old_scope = old_v.pointer("/spec/scope");
            if new.pointer("/spec/scope") != old_scope
                || new.pointer("/spec/group") != old_v.pointer("/spec/group")
                || new.pointer("/spec/names/plural") != old_v.pointer("/spec/names/plural")
            {
                return Err(ApiError::invalid(
                    "apiextensions.k8s.io",
                    "CustomResourceDefinition",
                    &name,
                    vec![Cause::invalid("spec", &Value::Null, "field is immutable")],
                ));
            }
        }

        // No-op writes do not bump the resourceVersion or produce events.
        let unchanged = {
            let strip_times = |v: &Value| {
                let mut c = v.clone();
                if let Some(list) = c
                    .pointer_mut("/metadata/managedFields")
                    .and_then(Value::as_array_mut)
                {
                    for e in list {
                        if let Some(m) = e.as_object_mut() {
                            m.remove("time");
                        }
                    }
                }
                c
            };
            strip_times(&new) == strip_times(old_v)
        };
        if unchanged {
            return Ok(present(&rt, &t.version, old_v));
        }

        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        if opts.dry_run {
            return Ok(present(&rt, &t.version, &new));
        }
        meta_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(self.store.next_rv().to_string()),
        );
        let stored = self.store.put(&rt.storage, new);
        if deleting && finalizers(&stored).is_empty() {
            let gone = self.remove_now(&rt, &stored)?;
            return Ok(present(&rt, &t.version, &gone));
        }
        self.after_write(&rt, &stored, now)?;
        Ok(present(&rt, &t.version, &stored))
    }

    /// Removes an object from storage (finalizers are done) and runs removal hooks.
    fn remove_now(&mut self, rt: &ResourceType, obj: &Value) -> Result<Value, ApiError> {
        let mut last = obj.clone();
        meta_mut(&mut last).insert(
            "resourceVersion".into(),
            json!(self.store.next_rv().to_string()),
        );
        let last = self.store.remove(&rt.storage, last);
        if rt.behaviour == Behaviour::Crd {
            let name = meta_str(&last, "name").unwrap_or_default().to_string();
            if let Some(ct) = self.registry.remove_custom(&name) {
                // The CRD's objects go with it.
                for o in self.store.list(&ct.storage) {
                    let mut l = (*o).clone();
                    meta_mut(&mut l).insert(
                        "resourceVersion".into(),
                        json!(self.store.next_rv().to_string()),
                    );
                    self.store.remove(&ct.storage, l);
                }
            }
        }
        Ok((*last).clone())
    }

    /// Hooks after a create/update is stored: CRDs become served resources.
    fn after_write(
        &mut self,
        rt: &ResourceType,
        stored: &Arc<Value>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        if rt.behaviour != Behaviour::Crd || stored.pointer("/metadata/deletionTimestamp").is_some()
        {
            return Ok(());
        }
        let ct = resources::from_crd(stored)?;
        let names = stored.pointer("/spec/names").cloned().unwrap_or_default();
        let storage_version = ct.versions.iter().find(|_| true).map(|v| v.name.clone());
        let stored_versions: Vec<String> = stored
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
            .chain(storage_version)
            .take(1)
            .collect();
        self.registry.set_custom(ct);
        let mut accepted = names.clone();
        if let Some(m) = accepted.as_object_mut() {
            let kind = m
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            m.entry("singular")
                .or_insert_with(|| json!(kind.to_lowercase()));
            m.entry("listKind")
                .or_insert_with(|| json!(format!("{kind}List")));
        }
        let want_status = json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now_str(now), "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": now_str(now), "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
            ],
            "acceptedNames": accepted,
            "storedVersions": stored_versions,
        });
        let same = stored.pointer("/status/acceptedNames") == want_status.get("acceptedNames")
            && stored
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| c.len() == 2);
        if !same {
            let mut updated = (**stored).clone();
            updated["status"] = want_status;
            meta_mut(&mut updated).insert(
                "resourceVersion".into(),
                json!(self.store.next_rv().to_string()),
            );
            self.store.put(&rt.storage, updated);
        }
        Ok(())
    }

    /// DELETE: honours preconditions, finalizers (sets deletionTimestamp), and
    /// `propagationPolicy` (`Orphan` / `Foreground` add the matching finalizer; dependents are
    /// then handled by the garbage collector).
    pub fn delete(
        &mut self,
        t: &Target,
        body: &[u8],
        query_policy: Option<&str>,
        opts: &WriteOpts,
        now: DateTime<Utc>,
    ) -> Result<(u16, Value), ApiError> {
        let name = t.name.clone().unwrap_or_default();
        let old = self.get_stored(t, &name)?;
        let delete_opts: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            })?
        };
        // kubectl sends `dryRun` in the DeleteOptions body rather than the query.
        let body_dry_run = match delete_opts.get("dryRun") {
            None | Some(Value::Null) => false,
            Some(Value::Array(v)) if v.is_empty() => false,
            Some(Value::Array(v)) if v.iter().all(|d| d.as_str() == Some("All")) => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {other}; only \"All\" is supported"
                )));
            }
        };
        let dry = WriteOpts {
            dry_run: opts.dry_run || body_dry_run,
            ..opts.clone()
        };
        let opts = &dry;
        if let Some(uid) = delete_opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &t.rt.group,
                &t.rt.plural,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = delete_opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &t.rt.group,
                &t.rt.plural,
                &name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
            ));
        }
        let policy = delete_opts
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or(query_policy)
            .map(str::to_string)
            .or_else(
                || match delete_opts.get("orphanDependents").and_then(Value::as_bool) {
                    Some(true) => Some("Orphan".to_string()),
                    Some(false) => Some("Background".to_string()),
                    None => None,
                },
            );
        if let Some(p) = &policy
            && !["Orphan", "Foreground", "Background"].contains(&p.as_str())
        {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![Cause {
                    reason: "FieldValueNotSupported",
                    message: format!(
                        "Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                    field: "propagationPolicy".into(),
                }],
            ));
        }
        let mut fins = finalizers(&old);
        match policy.as_deref() {
            Some("Orphan") if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
            Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => {
                fins.push("foregroundDeletion".into())
            }
            _ => {}
        }
        if t.rt.behaviour == Behaviour::Namespace {
            // The namespace controller removes its content, then the `kubernetes` finalizer.
            let mut new = (*old).clone();
            if new.pointer("/metadata/deletionTimestamp").is_none() {
                let meta = meta_mut(&mut new);
                meta.insert("deletionTimestamp".into(), json!(now_str(now)));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
                new["status"] = json!({"phase": "Terminating"});
                if !opts.dry_run {
                    meta_mut(&mut new).insert(
                        "resourceVersion".into(),
                        json!(self.store.next_rv().to_string()),
                    );
                    self.store.put(&t.rt.storage, new.clone());
                }
            }
            return Ok((200, present(&t.rt, &t.version, &new)));
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            // Already being deleted: only a newly requested policy finalizer changes anything.
            if fins != finalizers(&old) && !opts.dry_run {
                let mut new = (*old).clone();
                meta_mut(&mut new).insert("finalizers".into(), json!(fins));
                meta_mut(&mut new).insert(
                    "resourceVersion".into(),
                    json!(self.store.next_rv().to_string()),
                );
                let stored = self.store.put(&t.rt.storage, new);
                return Ok((200, present(&t.rt, &t.version, &stored)));
            }
            return Ok((200, present(&t.rt, &t.version, &old)));
        }
        if fins.is_empty() {
            if opts.dry_run {
                return Ok((
                    200,
                    status::delete_success(
                        &t.rt.group,
                        &t.rt.plural,
                        &name,
                        meta_str(&old, "uid").unwrap_or_default(),
                    ),
                ));
            }
            let gone = self.remove_now(&t.rt, &old)?;
            return Ok((
                200,
                status::delete_success(
                    &t.rt.group,
                    &t.rt.plural,
                    &name,
                    meta_str(&gone, "uid").unwrap_or_default(),
                ),
            ));
        }
        let mut new = (*old).clone();
        let meta = meta_mut(&mut new);
        meta.insert("finalizers".into(), json!(fins));
        meta.insert("deletionTimestamp".into(), json!(now_str(now)));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        if matches!(t.rt.behaviour, Behaviour::Custom | Behaviour::Crd) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta.insert("generation".into(), json!(g + 1));
        }
        if opts.dry_run {
            return Ok((200, present(&t.rt, &t.version, &new)));
        }
        meta_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(self.store.next_rv().to_string()),
        );
        let stored = self.store.put(&t.rt.storage, new);
        let code = if policy.as_deref() == Some("Foreground") {
            202
        } else {
            200
        };
        Ok((code, present(&t.rt, &t.version, &stored)))
    }

    /// Objects of `t`'s resource in its namespace (or all namespaces) at `rv` (None: now).
    pub fn snapshot(&self, t: &Target, rv: Option<u64>) -> Result<Vec<Arc<Value>>, ApiError> {
        let all = match rv {
            Some(rv) => self.store.list_at(&t.rt.storage, rv)?,
            None => self.store.list(&t.rt.storage),
        };
        Ok(all
            .into_iter()
            .filter(|o| {
                t.namespace.is_empty()
                    || !t.rt.namespaced
                    || meta_str(o, "namespace") == Some(t.namespace.as_str())
            })
            .collect())
    }

    /// Decides which revision a list reads, per `resourceVersion`, `resourceVersionMatch` and
    /// `continue`; returns `(rv to read at or None for latest, start-after key)`.
    pub fn list_revision(&self, q: &ListQuery) -> Result<(Option<u64>, Option<String>), ApiError> {
        let invalid = |c: Cause| ApiError::invalid("meta.k8s.io", "ListOptions", "", vec![c]);
        if let Some(m) = &q.rv_match {
            if q.rv.is_none() {
                return Err(invalid(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                )));
            }
            if q.cont.is_some() {
                return Err(invalid(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                )));
            }
            if m == "Exact" && q.rv.as_deref() == Some("0") {
                return Err(invalid(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                )));
            }
            if m != "Exact" && m != "NotOlderThan" {
                return Err(invalid(Cause {
                    reason: "FieldValueNotSupported",
                    message: format!(
                        "Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                    ),
                    field: "resourceVersionMatch".into(),
                }));
            }
        }
        if let Some(token) = &q.cont {
            if q.rv
                .as_deref()
                .is_some_and(|rv| !rv.is_empty() && rv != "0")
            {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, start) = decode_continue(token)?;
            if rv < self.store.compacted_rv() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                ));
            }
            return Ok((Some(rv), Some(start)));
        }
        match (q.rv.as_deref(), q.rv_match.as_deref()) {
            (None | Some(""), _) | (Some("0"), _) => Ok((None, None)),
            (Some(rv), Some("Exact")) => Ok((Some(parse_rv(rv)?), None)),
            (Some(rv), _) => {
                let n = parse_rv(rv)?;
                if n > self.store.current_rv() {
                    let mut e = ApiError::new(
                        504,
                        "Timeout",
                        format!(
                            "Timeout: Too large resource version: {n}, current: {}",
                            self.store.current_rv()
                        ),
                    );
                    e.details = Some(
                        json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                    );
                    return Err(e);
                }
                Ok((None, None))
            }
        }
    }

    /// LIST: selectors, paging; returns `(items, list metadata)` with items as stored.
    pub fn list(&self, t: &Target, q: &ListQuery) -> Result<ListPage, ApiError> {
        let labels = LabelSelector::parse(&q.label_selector)?;
        let fields_sel = FieldSelector::parse(&q.field_selector, &t.rt.selectable_fields)?;
        let (at, start) = self.list_revision(q)?;
        let rv = at.unwrap_or_else(|| self.store.current_rv());
        let mut items: Vec<Arc<Value>> = self
            .snapshot(t, at)?
            .into_iter()
            .filter(|o| {
                let view = present(&t.rt, &t.version, o);
                labels.matches(&view) && fields_sel.matches(&view)
            })
            .collect();
        if let Some(start) = &start {
            items.retain(|o| {
                let (ns, n) = object_key(o);
                format!("{ns}/{n}") > *start
            });
        }
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        if let Some(limit) = q.limit.filter(|l| *l > 0)
            && items.len() > limit
        {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let (ns, n) = object_key(items.last().expect("limit > 0"));
            meta.insert(
                "continue".into(),
                json!(encode_continue(rv, &format!("{ns}/{n}"))),
            );
            if labels.is_empty() && fields_sel.is_empty() {
                meta.insert("remainingItemCount".into(), json!(remaining));
            }
        }
        Ok((items, meta))
    }

    /// DELETE on a collection: deletes every matching object; returns them as a list.
    pub fn delete_collection(
        &mut self,
        t: &Target,
        q: &ListQuery,
        body: &[u8],
        opts: &WriteOpts,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let q = ListQuery {
            limit: None,
            cont: None,
            ..q.clone()
        };
        let (items, _) = self.list(t, &q)?;
        let mut out = Vec::new();
        for o in items {
            let (ns, name) = object_key(&o);
            let target = Target {
                namespace: ns,
                name: Some(name.clone()),
                ..t.clone()
            };
            match self.delete(&target, body, None, opts, now) {
                Ok((_, v)) if v.get("kind").and_then(Value::as_str) != Some("Status") => {
                    out.push(v)
                }
                Ok(_) => out.push(present(&t.rt, &t.version, &o)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "kind": t.rt.list_kind,
            "apiVersion": t.rt.api_version(&t.version),
            "metadata": {"resourceVersion": self.store.current_rv().to_string()},
            "items": out,
        }))
    }

    /// POST `serviceaccounts/<name>/token`: a TokenRequest answered with a signed JWT.
    pub fn token_request(
        &self,
        t: &Target,
        body: &[u8],
        signer: &TokenSigner,
        issuer: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let name = t.name.clone().unwrap_or_default();
        let sa = self.get_stored(t, &name)?;
        let mut req: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
            })?
        };
        if !req.is_object() {
            return Err(ApiError::bad_request(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest",
            ));
        }
        let expiration = req
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        let mut causes = Vec::new();
        if expiration < 600 {
            causes.push(Cause::invalid(
                "spec.expirationSeconds",
                &json!(expiration),
                "may not specify a duration less than 10 minutes",
            ));
        }
        if expiration > 1 << 32 {
            causes.push(Cause::invalid(
                "spec.expirationSeconds",
                &json!(expiration),
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                "authentication.k8s.io",
                "TokenRequest",
                &name,
                causes,
            ));
        }
        let mut audiences: Vec<String> = req
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if audiences.is_empty() {
            audiences.push(issuer.to_string());
        }
        let exp = now + Duration::seconds(expiration);
        let mut k8s = json!({
            "namespace": t.namespace,
            "serviceaccount": {"name": name, "uid": meta_str(&sa, "uid").unwrap_or_default()},
        });
        if let Some(bound) = req
            .pointer("/spec/boundObjectRef")
            .filter(|b| b.is_object())
        {
            let kind = bound
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            k8s[kind] = json!({"name": bound.get("name"), "uid": bound.get("uid")});
        }
        let claims = json!({
            "aud": audiences,
            "exp": exp.timestamp(),
            "iat": now.timestamp(),
            "iss": issuer,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": k8s,
            "nbf": now.timestamp(),
            "sub": format!("system:serviceaccount:{}:{name}", t.namespace),
        });
        let token = signer.sign(&claims);
        let spec = json!({"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": req.pointer("/spec/boundObjectRef").cloned().unwrap_or(Value::Null)});
        req["apiVersion"] = json!("authentication.k8s.io/v1");
        req["kind"] = json!("TokenRequest");
        let meta = meta_mut(&mut req);
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(t.namespace));
        meta.insert("creationTimestamp".into(), Value::Null);
        req["spec"] = spec;
        req["status"] = json!({"token": token, "expirationTimestamp": now_str(exp)});
        Ok(req)
    }

    /// The served resource types.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Deletes an object as a controller does (background propagation), ignoring 404s.
    pub fn controller_delete(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let t = Target {
            rt: rt.clone(),
            version: rt.preferred_version().to_string(),
            namespace: ns.to_string(),
            name: Some(name.to_string()),
            subresource: None,
        };
        match self.delete(
            &t,
            b"",
            Some("Background"),
            &WriteOpts {
                manager: "kube-controller-manager".into(),
                ..Default::default()
            },
            now,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Replaces an object's metadata field as a controller does (finalizer removal,
    /// ownerReference cleanup), recording the change for `manager`.
    pub fn controller_set_meta(
        &mut self,
        rt: &Arc<ResourceType>,
        obj: &Value,
        field: &str,
        value: Value,
        manager: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let (ns, name) = object_key(obj);
        let t = Target {
            rt: rt.clone(),
            version: rt.preferred_version().to_string(),
            namespace: ns,
            name: Some(name.clone()),
            subresource: None,
        };
        let Some(current) = self.store.get(&rt.storage, &t.namespace, &name) else {
            return Ok(());
        };
        let mut new = present(rt, &t.version, &current);
        let meta = meta_mut(&mut new);
        if value.is_null() || value.as_array().is_some_and(Vec::is_empty) {
            meta.remove(field);
        } else {
            meta.insert(field.into(), value);
        }
        self.write_over(
            &t,
            &current,
            new,
            &WriteOpts {
                manager: manager.into(),
                ..Default::default()
            },
            now,
            None,
        )
        .map(|_| ())
    }

    /// Creates the `default` ServiceAccount of a namespace, as the ServiceAccount controller does.
    pub fn create_default_service_account(
        &mut self,
        rt: &Arc<ResourceType>,
        ns: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let t = Target {
            rt: rt.clone(),
            version: "v1".into(),
            namespace: ns.to_string(),
            name: None,
            subresource: None,
        };
        let body =
            serde_json::to_vec(&json!({"metadata": {"name": "default"}})).unwrap_or_default();
        let opts = WriteOpts {
            manager: "kube-controller-manager".into(),
            ..Default::default()
        };
        self.create(&t, &body, &opts, now).map(|_| ())
    }

    /// Finishes a namespace whose content is gone: its `kubernetes` finalizer
    /// (`spec.finalizers`) is removed, and the namespace with it unless other
    /// `metadata.finalizers` still hold it (their removal deletes it then).
    pub fn finish_namespace(&mut self, ns: &Value) -> Result<bool, ApiError> {
        let rt = self
            .registry
            .find("", "v1", "namespaces")
            .expect("built in");
        if finalizers(ns).is_empty() {
            return self.remove_now(&rt, ns).map(|_| true);
        }
        if ns
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            return Ok(false);
        }
        let mut new = ns.clone();
        new["spec"] = json!({});
        meta_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(self.store.next_rv().to_string()),
        );
        self.store.put(&rt.storage, new);
        Ok(true)
    }
}

/// One page of a list: the items (as stored) and the list metadata.
pub type ListPage = (Vec<Arc<Value>>, Map<String, Value>);

/// The list parameters of the query string.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `labelSelector`.
    pub label_selector: String,
    /// `fieldSelector`.
    pub field_selector: String,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub cont: Option<String>,
    /// `resourceVersion`.
    pub rv: Option<String>,
    /// `resourceVersionMatch`.
    pub rv_match: Option<String>,
}

/// Continue tokens look like the real ones: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}`.
pub fn encode_continue(rv: u64, last_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last_key}\u{0}")});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, String), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(bad());
    }
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, start.trim_end_matches('\u{0}').to_string()))
}

/// Why `value` is not a Kubernetes qualified name (`[prefix/]name`: an optional DNS
/// subdomain prefix, and a name of at most 63 characters of `[-A-Za-z0-9_.]` starting and
/// ending alphanumeric), as apimachinery's `IsQualifiedName` says; `None` when it is one.
pub fn qualified_name_problem(value: &str) -> Option<String> {
    let (prefix, name) = match value.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    if name.contains('/') {
        return Some("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character with an optional DNS subdomain prefix and '/'".into());
    }
    if let Some(p) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if p.is_empty() || p.len() > 253 || !p.split('.').all(label_ok) {
            return Some("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
        }
    }
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let bytes = name.as_bytes();
    if name.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !alnum(bytes[0])
        || !alnum(bytes[bytes.len() - 1])
        || !bytes.iter().all(|b| alnum(*b) || b"-_.".contains(b))
    {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into());
    }
    None
}

/// How ServiceAccount tokens are signed.
pub enum TokenSigner {
    /// HMAC-SHA256 with a shared key (the default: nothing outside the server verifies them).
    Hs256(Vec<u8>),
    /// RSA PKCS#1 v1.5 SHA-256 with a key id, as a real API server's issuer signs them.
    Rs256 {
        /// The key pair.
        key: Box<ring::signature::RsaKeyPair>,
        /// `kid` in the header.
        kid: String,
    },
}

impl TokenSigner {
    /// HS256 with `key`.
    pub fn hs256(key: Vec<u8>) -> Self {
        Self::Hs256(key)
    }

    /// RS256 with an RSA key in PKCS#8 PEM (text around the PEM block is ignored).
    pub fn rs256(pem: &str, kid: &str) -> Result<Self, String> {
        use base64::engine::general_purpose::STANDARD;
        let begin = "-----BEGIN PRIVATE KEY-----";
        let end = "-----END PRIVATE KEY-----";
        let start = pem.find(begin).ok_or("no PKCS#8 PEM block")? + begin.len();
        let stop = pem[start..].find(end).ok_or("unterminated PEM block")? + start;
        let b64: String = pem[start..stop].split_whitespace().collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|e| format!("PEM body is not base64: {e}"))?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("not an RSA PKCS#8 key: {e}"))?;
        Ok(Self::Rs256 {
            key: Box::new(key),
            kid: kid.to_owned(),
        })
    }

    /// Signs `claims` into a compact JWT.
    pub fn sign(&self, claims: &Value) -> String {
        match self {
            Self::Hs256(key) => sign_jwt(claims, key),
            Self::Rs256 { key, kid } => {
                let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
                let signing_input = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                );
                let mut sig = vec![0u8; key.public().modulus_len()];
                key.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    signing_input.as_bytes(),
                    &mut sig,
                )
                .expect("RSA signing with a valid key does not fail");
                format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
            }
        }
    }
}

/// An HS256 JWT (`header.claims.signature`, base64url without padding).
pub fn sign_jwt(claims: &Value, key: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let header = json!({"alg": "HS256", "kid": "fake-apiserver", "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let sig = mac.finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizer_names_are_qualified_names_with_or_without_a_domain_prefix() {
        for ok in [
            "kmsync.io/finalizer",
            "finalizer.ack.secrets-manager.alibabacloud.com",
            "kubernetes",
            "foregroundDeletion",
        ] {
            assert_eq!(qualified_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a/b/c",
            "Bad_Prefix/x",
            "x/",
            &"a".repeat(64),
            "with space",
        ] {
            assert!(qualified_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn rs256_tokens_verify_with_the_signing_keys_public_half() {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../host/src/emulator/testdata/oidc-test-key.pem"
        ))
        .unwrap();
        let signer = TokenSigner::rs256(&pem, "k1").unwrap();
        let token = signer.sign(&json!({"sub": "system:serviceaccount:a:b"}));
        let parts: Vec<&str> = token.split('.').collect();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "k1");
        let TokenSigner::Rs256 { key, .. } = &signer else {
            panic!("RS256 signer expected")
        };
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            key.public().as_ref(),
        );
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        assert!(TokenSigner::rs256("not a key", "k").is_err());
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "ns/name");
        assert_eq!(decode_continue(&t).unwrap(), (42, "ns/name".to_string()));
        assert_eq!(decode_continue("garbage!").unwrap_err().code, 400);
    }

    #[test]
    fn events_v1_fields_map_onto_core_fields() {
        let mut e =
            json!({"regarding": {"kind": "Secret"}, "note": "hi", "reportingController": "c"});
        rename_fields(&mut e, false);
        assert_eq!(
            e,
            json!({"involvedObject": {"kind": "Secret"}, "message": "hi", "reportingComponent": "c"})
        );
    }
}
