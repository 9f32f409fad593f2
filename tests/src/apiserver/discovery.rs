//! Discovery and OpenAPI documents built from the resource registry:
//! - `/version`;
//! - legacy discovery: `/api` (`APIVersions`), `/api/v1` and `/apis/<g>/<v>`
//!   (`APIResourceList`), `/apis` (`APIGroupList`), `/apis/<g>` (`APIGroup`);
//! - aggregated discovery (`apidiscovery.k8s.io/v2 APIGroupDiscoveryList`) for `/api` and
//!   `/apis` when the `Accept` header asks for it, as kubectl 1.30+ and client-go do first;
//! - OpenAPI v3: the root `/openapi/v3` listing one document per group-version, and those
//!   documents with a path per resource whose PATCH operation declares the `fieldValidation`
//!   query parameter and `x-kubernetes-group-version-kind` — which is how kubectl decides to
//!   use server-side field validation instead of downloading schemas.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::resources::{Registry, ResourceType, VERBS};

/// Build facts reported by `/version`.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// e.g. `v1.33.0`.
    pub git_version: String,
}

impl VersionInfo {
    /// The `/version` body (`version.Info`).
    pub fn to_json(&self) -> Value {
        let v = self.git_version.trim_start_matches('v');
        let mut parts = v.split('.');
        let major = parts.next().unwrap_or("1").to_string();
        let minor = parts.next().unwrap_or("33").to_string();
        let min_minor = minor
            .parse::<u32>()
            .map(|m| m.saturating_sub(1).to_string())
            .unwrap_or_default();
        json!({
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": min_minor,
            "gitVersion": self.git_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }
}

fn resource_entries(rt: &ResourceType, version: &str) -> Vec<Value> {
    let mut main = json!({
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": VERBS,
    });
    if !rt.short_names.is_empty() {
        main["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        main["categories"] = json!(rt.categories);
    }
    let hash = Sha256::digest(format!("{}/{}/{}", rt.group, version, rt.kind));
    main["storageVersionHash"] = json!(base64_std(&hash[..8]));
    let mut out = vec![main];
    for (sub, kind, group, ver, verbs) in rt.subresources(version) {
        let mut e = json!({
            "name": format!("{}/{sub}", rt.plural),
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        if group != rt.group || ver != version {
            e["group"] = json!(group);
            e["version"] = json!(ver);
        }
        out.push(e);
    }
    out
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `/api/v1` or `/apis/<g>/<v>`: `APIResourceList`, or `None` if nothing is served there.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version(version).is_some())
        .flat_map(|t| resource_entries(t, version))
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut doc = json!({"kind": "APIResourceList", "groupVersion": gv, "resources": resources});
    if !group.is_empty() {
        doc["apiVersion"] = json!("v1");
    }
    Some(doc)
}

/// `/api`: `APIVersions`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

/// `/apis`: `APIGroupList`.
pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<g>`: `APIGroup`.
pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let (g, vs) = reg.groups().into_iter().find(|(g, _)| g == name)?;
    let mut doc = group_json(&g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// Content type of aggregated discovery responses.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// The older (1.26–1.29) aggregated discovery content type.
pub const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated discovery version (`v2`, `v2beta1`) the `Accept` header prefers, if any.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        if params.first() != Some(&"application/json") {
            // The first acceptable plain type wins over later aggregated ones.
            if params
                .first()
                .is_some_and(|m| *m == "*/*" || *m == "application/*")
            {
                return None;
            }
            continue;
        }
        let has = |p: &str| params.contains(&p);
        if has("g=apidiscovery.k8s.io") && has("as=APIGroupDiscoveryList") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
            continue;
        }
        return None;
    }
    None
}

fn aggregated_resource(rt: &ResourceType, version: &str) -> Value {
    let mut r = json!({
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": version, "kind": rt.kind},
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": VERBS,
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    let subs: Vec<Value> = rt
        .subresources(version)
        .into_iter()
        .map(|(sub, kind, group, ver, verbs)| {
            json!({"subresource": sub, "responseKind": {"group": group, "version": ver, "kind": kind}, "verbs": verbs})
        })
        .collect();
    if !subs.is_empty() {
        r["subresources"] = json!(subs);
    }
    r
}

/// `/api` or `/apis` as `APIGroupDiscoveryList` (`core` selects `/api`).
pub fn aggregated(reg: &Registry, core: bool, api_version: &str) -> Value {
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        reg.groups()
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = reg
                        .all()
                        .iter()
                        .filter(|t| t.group == *g && t.version(v).is_some())
                        .map(|t| aggregated_resource(t, v))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": vs})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{api_version}"),
        "metadata": {},
        "items": items,
    })
}

fn gvk(rt: &ResourceType, version: &str) -> Value {
    json!({"group": rt.group, "version": version, "kind": rt.kind})
}

fn op(action: &str, id: &str, rt: &ResourceType, version: &str, query: &[&str], ok: &str) -> Value {
    let params: Vec<Value> = query
        .iter()
        .map(|q| json!({"name": q, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    let schema_ref = json!({"$ref": format!("#/components/schemas/{}", schema_name(rt, version))});
    let mut o = json!({
        "operationId": id,
        "parameters": params,
        "responses": {ok: {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(rt, version),
    });
    if matches!(action, "patch" | "put" | "post") {
        // Custom resources do not take strategic merge patches; kubectl's client-side apply
        // reads this list to choose between a strategic and a JSON merge patch.
        let types: &[&str] = match action {
            "patch" if rt.behaviour == super::resources::Behaviour::Custom => &[
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
            ],
            "patch" => &[
                "application/apply-patch+yaml",
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ],
            _ => &["application/json"],
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": {"type": "object"}})))
            .collect();
        o["requestBody"] = json!({"content": content, "required": true});
    }
    o
}

fn schema_name(rt: &ResourceType, version: &str) -> String {
    let group = if rt.group.is_empty() {
        "core".to_string()
    } else {
        rt.group.clone()
    };
    let mut rev: Vec<&str> = group.split('.').collect();
    rev.reverse();
    format!("{}.{version}.{}", rev.join("."), rt.kind)
}

/// `/openapi/v3/<api|apis/g>/<v>` documents, keyed by their root path entry.
pub fn openapi_v3_docs(reg: &Registry, git_version: &str) -> Vec<(String, Value)> {
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".to_string())];
    for (g, vs) in reg.groups() {
        for v in vs {
            gvs.push((g.clone(), v));
        }
    }
    gvs.into_iter()
        .map(|(g, v)| {
            let key = if g.is_empty() { format!("api/{v}") } else { format!("apis/{g}/{v}") };
            let mut paths = Map::new();
            let mut schemas = Map::new();
            for rt in reg.all().iter().filter(|t| t.group == g && t.version(&v).is_some()) {
                let base = if g.is_empty() { "/api/v1".to_string() } else { format!("/apis/{g}/{v}") };
                let coll = if rt.namespaced {
                    format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
                } else {
                    format!("{base}/{}", rt.plural)
                };
                let id = |verb: &str| format!("{verb}{}", rt.kind);
                let write = ["dryRun", "fieldManager", "fieldValidation"];
                paths.insert(coll.clone(), json!({
                    "get": op("list", &id("list"), rt, &v, &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "resourceVersionMatch", "watch", "allowWatchBookmarks", "sendInitialEvents", "timeoutSeconds"], "200"),
                    "post": op("post", &id("create"), rt, &v, &write, "201"),
                    "delete": op("deletecollection", &id("deletecollection"), rt, &v, &["labelSelector", "fieldSelector", "dryRun", "propagationPolicy"], "200"),
                }));
                paths.insert(format!("{coll}/{{name}}"), json!({
                    "get": op("get", &id("read"), rt, &v, &[], "200"),
                    "put": op("put", &id("replace"), rt, &v, &write, "200"),
                    "patch": op("patch", &id("patch"), rt, &v, &["dryRun", "fieldManager", "fieldValidation", "force"], "200"),
                    "delete": op("delete", &id("delete"), rt, &v, &["dryRun", "gracePeriodSeconds", "propagationPolicy"], "200"),
                }));
                if rt.has_status(&v) {
                    paths.insert(format!("{coll}/{{name}}/status"), json!({
                        "get": op("get", &id("readStatus"), rt, &v, &[], "200"),
                        "put": op("put", &id("replaceStatus"), rt, &v, &write, "200"),
                        "patch": op("patch", &id("patchStatus"), rt, &v, &["dryRun", "fieldManager", "fieldValidation", "force"], "200"),
                    }));
                }
                let mut schema = match rt.version(&v).and_then(|vi| vi.schema.clone()) {
                    // As apiextensions-apiserver publishes CRD schemas: with the type and
                    // object metadata fields added.
                    Some(mut crd_schema) => {
                        if let Some(props) = crd_schema
                            .as_object_mut()
                            .map(|m| m.entry("properties").or_insert_with(|| json!({})))
                            .and_then(Value::as_object_mut)
                        {
                            props.insert("apiVersion".into(), json!({"type": "string"}));
                            props.insert("kind".into(), json!({"type": "string"}));
                            props.insert("metadata".into(), object_meta_schema());
                        }
                        crd_schema
                    }
                    None => builtin_schema(&rt.kind),
                };
                schema["x-kubernetes-group-version-kind"] = json!([gvk(rt, &v)]);
                schemas.insert(schema_name(rt, &v), schema);
            }
            let doc = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": git_version},
                "paths": paths,
                "components": {"schemas": schemas},
            });
            (key, doc)
        })
        .collect()
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}})
}

fn object_reference_schema() -> Value {
    let props: Map<String, Value> = [
        "apiVersion",
        "fieldPath",
        "kind",
        "name",
        "namespace",
        "resourceVersion",
        "uid",
    ]
    .iter()
    .map(|k| (k.to_string(), json!({"type": "string"})))
    .collect();
    json!({"type": "object", "properties": props, "x-kubernetes-map-type": "atomic"})
}

/// `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`, inlined, with the patch strategies
/// kubectl's client-side apply reads (`finalizers` merge as a set, `ownerReferences` by `uid`).
fn object_meta_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "annotations": string_map(),
            "creationTimestamp": {"type": "string", "format": "date-time"},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
            "deletionTimestamp": {"type": "string", "format": "date-time"},
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
            "generateName": {"type": "string"},
            "generation": {"type": "integer", "format": "int64"},
            "labels": string_map(),
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "ownerReferences": {"type": "array",
                "items": {"type": "object", "required": ["apiVersion", "kind", "name", "uid"], "properties": {
                    "apiVersion": {"type": "string"}, "blockOwnerDeletion": {"type": "boolean"},
                    "controller": {"type": "boolean"}, "kind": {"type": "string"},
                    "name": {"type": "string"}, "uid": {"type": "string"}},
                    "x-kubernetes-map-type": "atomic"},
                "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"},
            "resourceVersion": {"type": "string"},
            "selfLink": {"type": "string"},
            "uid": {"type": "string"},
        },
    })
}

fn with_type_meta(mut props: Value) -> Value {
    if let Some(m) = props.as_object_mut() {
        m.insert("apiVersion".into(), json!({"type": "string"}));
        m.insert("kind".into(), json!({"type": "string"}));
        m.insert("metadata".into(), object_meta_schema());
    }
    json!({"type": "object", "properties": props})
}

fn loose_object() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// Schemas of the built-in kinds (the fields this server models; nested parts it does not
/// model are open objects).
fn builtin_schema(kind: &str) -> Value {
    let time = || json!({"type": "string", "format": "date-time"});
    let s = || json!({"type": "string"});
    let int = || json!({"type": "integer", "format": "int32"});
    match kind {
        "Secret" => with_type_meta(json!({
            "data": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
            "immutable": {"type": "boolean"},
            "stringData": string_map(),
            "type": s(),
        })),
        "ConfigMap" => with_type_meta(json!({
            "binaryData": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
            "data": string_map(),
            "immutable": {"type": "boolean"},
        })),
        "ServiceAccount" => with_type_meta(json!({
            "automountServiceAccountToken": {"type": "boolean"},
            "imagePullSecrets": {"type": "array", "items": {"type": "object", "properties": {"name": s()}, "x-kubernetes-map-type": "atomic"}},
            "secrets": {"type": "array", "items": object_reference_schema(),
                "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"},
        })),
        "Namespace" => with_type_meta(json!({
            "spec": {"type": "object", "properties": {"finalizers": {"type": "array", "items": s(), "x-kubernetes-list-type": "atomic"}}},
            "status": {"type": "object", "properties": {"phase": s(), "conditions": {"type": "array", "items": loose_object(),
                "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge"}}},
        })),
        "Lease" => with_type_meta(json!({
            "spec": {"type": "object", "properties": {
                "acquireTime": time(), "holderIdentity": s(), "leaseDurationSeconds": int(),
                "leaseTransitions": int(), "preferredHolder": s(), "renewTime": time(), "strategy": s()}},
        })),
        "Event" => with_type_meta(json!({
            "action": s(), "count": int(), "deprecatedCount": int(), "deprecatedFirstTimestamp": time(),
            "deprecatedLastTimestamp": time(), "deprecatedSource": loose_object(), "eventTime": time(),
            "firstTimestamp": time(), "involvedObject": object_reference_schema(), "lastTimestamp": time(),
            "message": s(), "note": s(), "reason": s(), "regarding": object_reference_schema(),
            "related": object_reference_schema(), "reportingComponent": s(), "reportingController": s(),
            "reportingInstance": s(), "series": loose_object(), "source": loose_object(), "type": s(),
        })),
        _ => with_type_meta(json!({"spec": loose_object(), "status": loose_object()})),
    }
}

/// Hash used in `serverRelativeURL` (uppercase hex SHA-512-sized, like the real one).
pub fn doc_hash(doc: &Value) -> String {
    let d = Sha256::digest(doc.to_string());
    d.iter().map(|b| format!("{b:02X}")).collect()
}

/// `/openapi/v3`: the root listing every group-version document.
pub fn openapi_v3_root(docs: &[(String, Value)]) -> Value {
    let paths: Map<String, Value> = docs
        .iter()
        .map(|(k, d)| {
            (
                k.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", doc_hash(d))}),
            )
        })
        .collect();
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_selects_aggregated_discovery() {
        assert_eq!(
            wants_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2")
        );
        assert_eq!(
            wants_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2beta1")
        );
        assert_eq!(wants_aggregated("application/json"), None);
        assert_eq!(wants_aggregated(""), None);
    }

    #[test]
    fn core_resource_list_has_token_subresource_in_authentication_group() {
        let reg = Registry::with_builtins();
        let doc = resource_list(&reg, "", "v1").unwrap();
        let token = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "serviceaccounts/token")
            .unwrap();
        assert_eq!(token["group"], "authentication.k8s.io");
        assert_eq!(token["kind"], "TokenRequest");
        assert!(doc.get("apiVersion").is_none());
    }
}
