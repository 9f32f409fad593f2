//! HTTP front end: parses kube-apiserver URLs into a request info (verb, group, version,
//! namespace, resource, name, subresource), applies fault switches and latency, negotiates the
//! response form (`Accept`: plain JSON, `as=Table`, `as=PartialObjectMetadata[List]`,
//! aggregated discovery), dispatches to the registry, streams watches, and logs every request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::response::Response;
use chrono::Utc;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Inner;
use super::discovery;
use super::journal::RequestRecord;
use super::patch::{self, PatchType};
use super::registry::{ListQuery, Target, WriteOpts, parse_rv, present};
use super::resources::Behaviour;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Change, EventType};
use super::table::{self, IncludeObject};

/// Largest request body kube-apiserver accepts (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// What a URL addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    OpenApiV2,
    OpenApiV3Root,
    OpenApiV3Doc(String),
    Resource(ResourcePath),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ResourcePath {
    group: String,
    version: String,
    namespace: String,
    resource: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_route(path: &str) -> Route {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "livez" | "readyz", ..] => return Route::Health,
        ["api"] => return Route::Api,
        ["apis"] => return Route::Apis,
        ["openapi", "v2"] => return Route::OpenApiV2,
        ["openapi", "v3"] => return Route::OpenApiV3Root,
        ["openapi", "v3", rest @ ..] => return Route::OpenApiV3Doc(rest.join("/")),
        ["apis", g] => return Route::Group(g.to_string()),
        ["api", v] => return Route::GroupVersion(String::new(), v.to_string()),
        ["apis", g, v] => return Route::GroupVersion(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest.to_vec()),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest.to_vec()),
        _ => return Route::Unknown,
    };
    let mut namespace = String::new();
    let mut rest = rest;
    if rest.first() == Some(&"namespaces")
        && rest.len() > 2
        && !["status", "finalize"].contains(&rest[2])
    {
        namespace = rest[1].to_string();
        rest = rest[2..].to_vec();
    }
    let s = |i: usize| rest.get(i).map(|s| s.to_string());
    if rest.is_empty() || rest.len() > 3 {
        return Route::Unknown;
    }
    Route::Resource(ResourcePath {
        group,
        version,
        namespace,
        resource: rest[0].to_string(),
        name: s(1),
        subresource: s(2),
    })
}

fn verb_of(method: &Method, rp: &ResourcePath, query: &HashMap<String, String>) -> &'static str {
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match *method {
        Method::GET | Method::HEAD if rp.name.is_none() && watch => "watch",
        Method::GET | Method::HEAD if rp.name.is_none() => "list",
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if rp.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

/// How the response body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Json,
    Table(&'static str),
    Partial(&'static str),
}

fn negotiate(accept: &str) -> Result<Output, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        let base = params.first().copied().unwrap_or_default();
        if !matches!(base, "application/json" | "*/*" | "application/*") {
            continue;
        }
        let get = |k: &str| params.iter().find_map(|p| p.strip_prefix(k));
        let version = match get("v=") {
            Some("v1") => "v1",
            Some("v1beta1") => "v1beta1",
            Some(_) => continue,
            None => "v1",
        };
        match get("as=") {
            None => return Ok(Output::Json),
            Some("Table") if get("g=") == Some("meta.k8s.io") => return Ok(Output::Table(version)),
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if get("g=") == Some("meta.k8s.io") =>
            {
                return Ok(Output::Partial(version));
            }
            Some(_) => continue,
        }
    }
    Err(ApiError::not_acceptable(
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
    ))
}

fn json_response(code: u16, body: &Value) -> Response {
    json_response_typed(code, body, "application/json")
}

fn json_response_typed(code: u16, body: &Value, content_type: &str) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, content_type)
        .header("Audit-Id", uuid::Uuid::new_v4().to_string())
        .header("Cache-Control", "no-cache, private")
        .body(Body::from(bytes))
        .unwrap_or_default()
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.to_status());
    if e.code == 429 || e.code == 503 || e.code == 504 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    }
    r
}

fn parse_query(q: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The one handler behind every path.
pub async fn handle(AxState(inner): AxState<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let query = parse_query(&raw_query);
    let route = parse_route(&path);
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        verb: parts.method.as_str().to_lowercase(),
        api_group: String::new(),
        api_version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        status: 0,
        field_manager: query.get("fieldManager").cloned(),
        content_type: header_str(&parts.headers, header::CONTENT_TYPE),
        user_agent: header_str(&parts.headers, header::USER_AGENT),
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        injected: false,
    };
    if let Route::Resource(rp) = &route {
        record.verb = verb_of(&parts.method, rp, &query).to_string();
        record.api_group = rp.group.clone();
        record.api_version = rp.version.clone();
        record.resource = rp.resource.clone();
        record.subresource = rp.subresource.clone().unwrap_or_default();
        record.namespace = rp.namespace.clone();
        record.name = rp.name.clone().unwrap_or_default();
    }

    let latency = inner.journal.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(f) = inner
        .journal
        .take_fault(&record.verb, &record.resource, &record.subresource)
    {
        let message = if f.message.is_empty() {
            format!("injected fault: {} {}", record.verb, record.resource)
        } else {
            f.message.clone()
        };
        let e = ApiError::for_code(f.status, message);
        record.status = f.status;
        record.injected = true;
        inner.journal.record(record);
        return error_response(&e);
    }

    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: limit is {MAX_BODY}"),
            );
            record.status = 413;
            inner.journal.record(record);
            return error_response(&e);
        }
    };
    let accept = header_str(&parts.headers, header::ACCEPT).unwrap_or_default();
    let response = match route {
        Route::Resource(rp) => {
            handle_resource(
                &inner,
                &parts.method,
                &parts.headers,
                rp,
                &query,
                &accept,
                body,
            )
            .await
        }
        other => handle_nonresource(&inner, &parts.method, other, &accept),
    };
    record.status = response.status().as_u16();
    let is_write = record.is_write() && record.status < 300;
    inner.journal.record(record);
    if is_write {
        inner.kick.notify_one();
    }
    response
}

fn handle_nonresource(inner: &Inner, method: &Method, route: Route, accept: &str) -> Response {
    if *method != Method::GET && *method != Method::HEAD {
        return error_response(&ApiError::method_not_allowed("", ""));
    }
    let st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let reg = &st.registry;
    match route {
        Route::Version => json_response(200, &inner.version.to_json()),
        Route::Health => Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from("ok"))
            .unwrap_or_default(),
        Route::Api | Route::Apis => {
            let core = route == Route::Api;
            match discovery::wants_aggregated(accept) {
                Some(v) => {
                    let ct = if v == "v2" {
                        discovery::AGGREGATED_V2
                    } else {
                        discovery::AGGREGATED_V2BETA1
                    };
                    json_response_typed(200, &discovery::aggregated(reg, core, v), ct)
                }
                None if core => {
                    json_response(200, &discovery::core_versions(&inner.addr.to_string()))
                }
                None => json_response(200, &discovery::group_list(reg)),
            }
        }
        Route::Group(g) => match discovery::group(reg, &g) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::no_such_resource()),
        },
        Route::GroupVersion(g, v) => match discovery::resource_list(reg, &g, &v) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::no_such_resource()),
        },
        Route::OpenApiV3Root => {
            let docs = discovery::openapi_v3_docs(reg, &inner.version.git_version);
            json_response(200, &discovery::openapi_v3_root(&docs))
        }
        Route::OpenApiV3Doc(key) => {
            let docs = discovery::openapi_v3_docs(reg, &inner.version.git_version);
            match docs.into_iter().find(|(k, _)| *k == key) {
                Some((_, doc)) => json_response(200, &doc),
                None => error_response(&ApiError::new(404, "NotFound", "404 page not found")),
            }
        }
        Route::OpenApiV2 => error_response(&ApiError::not_acceptable(
            "this server serves OpenAPI v3 only (/openapi/v3)",
        )),
        Route::Resource(_) | Route::Unknown => Response::builder()
            .status(404)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from("404 page not found\n"))
            .unwrap_or_default(),
    }
}

fn write_opts(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    apply: bool,
) -> Result<WriteOpts, ApiError> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}; only \"All\" is supported"
            )));
        }
    };
    match query.get("fieldValidation").map(String::as_str) {
        None | Some("" | "Ignore" | "Warn" | "Strict") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid fieldValidation value: {other:?}; valid values are Ignore, Warn, Strict"
            )));
        }
    }
    let field_validation = query
        .get("fieldValidation")
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "Warn".into());
    let force = match query.get("force").map(String::as_str) {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid force value {other:?}"
            )));
        }
    };
    let manager = match query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.clone(),
        _ if apply => String::new(),
        _ => {
            // The real server names the manager after the User-Agent's product token.
            let ua = header_str(headers, header::USER_AGENT).unwrap_or_default();
            let product = ua.split('/').next().unwrap_or_default().trim().to_string();
            if product.is_empty() {
                "unknown".to_string()
            } else {
                product
            }
        }
    };
    if manager.len() > 128 {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            vec![super::status::Cause::too_long("fieldManager", 128)],
        ));
    }
    Ok(WriteOpts {
        manager,
        dry_run,
        force,
        field_validation,
        is_patch: false,
    })
}

fn list_query(query: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let limit = match query.get("limit") {
        None => None,
        Some(l) if l.is_empty() => None,
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
        ),
    };
    Ok(ListQuery {
        label_selector: query.get("labelSelector").cloned().unwrap_or_default(),
        field_selector: query.get("fieldSelector").cloned().unwrap_or_default(),
        limit,
        cont: query.get("continue").filter(|c| !c.is_empty()).cloned(),
        rv: query.get("resourceVersion").cloned(),
        rv_match: query
            .get("resourceVersionMatch")
            .filter(|m| !m.is_empty())
            .cloned(),
    })
}

fn include_object(query: &HashMap<String, String>) -> Result<IncludeObject, ApiError> {
    match query.get("includeObject").map(String::as_str) {
        None | Some("" | "Metadata") => Ok(IncludeObject::Metadata),
        Some("Object") => Ok(IncludeObject::Object),
        Some("None") => Ok(IncludeObject::None),
        Some(other) => Err(ApiError::bad_request(format!(
            "unrecognized includeObject value: {other:?}"
        ))),
    }
}

async fn handle_resource(
    inner: &Arc<Inner>,
    method: &Method,
    headers: &HeaderMap,
    rp: ResourcePath,
    query: &HashMap<String, String>,
    accept: &str,
    body: Bytes,
) -> Response {
    match resource_inner(inner, method, headers, rp, query, accept, body) {
        Ok(Handled::Done(r)) => r,
        Ok(Handled::Watch(w)) => start_watch(inner.clone(), *w),
        Err(e) => error_response(&e),
    }
}

enum Handled {
    Done(Response),
    Watch(Box<WatchSetup>),
}

#[allow(clippy::too_many_arguments)]
fn resource_inner(
    inner: &Arc<Inner>,
    method: &Method,
    headers: &HeaderMap,
    rp: ResourcePath,
    query: &HashMap<String, String>,
    accept: &str,
    body: Bytes,
) -> Result<Handled, ApiError> {
    let now = Utc::now();
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    st.warnings.clear();
    let rt = st
        .registry
        .find(&rp.group, &rp.version, &rp.resource)
        .ok_or_else(ApiError::no_such_resource)?;
    let verb = verb_of(method, &rp, query);
    if !rt.namespaced && !rp.namespace.is_empty() {
        return Err(ApiError::no_such_resource());
    }
    if rt.namespaced && rp.namespace.is_empty() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::no_such_resource());
    }
    if let Some(sub) = &rp.subresource {
        let (exists, verb_ok) = match sub.as_str() {
            "status" => (
                rt.has_status(&rp.version),
                matches!(verb, "get" | "update" | "patch"),
            ),
            "token" => (rt.behaviour == Behaviour::ServiceAccount, verb == "create"),
            "finalize" => (rt.behaviour == Behaviour::Namespace, verb == "update"),
            _ => (false, false),
        };
        if !exists || rp.name.is_none() {
            return Err(ApiError::no_such_resource());
        }
        if !verb_ok {
            return Err(ApiError::method_not_allowed(&rt.group, &rt.plural));
        }
    }
    let output = negotiate(accept)?;
    let target = Target {
        rt: rt.clone(),
        version: rp.version.clone(),
        namespace: rp.namespace.clone(),
        name: rp.name.clone(),
        subresource: rp.subresource.clone(),
    };
    let mut content_type = header_str(headers, header::CONTENT_TYPE).unwrap_or_default();
    let body = if content_type.starts_with(super::proto::CONTENT_TYPE)
        && verb != "patch"
        && !body.is_empty()
    {
        let obj = super::proto::decode(&body)?;
        content_type = "application/json".into();
        Bytes::from(serde_json::to_vec(&obj).unwrap_or_default())
    } else {
        body
    };
    let render_one = |obj: &Value, st_rv: Option<&str>| -> Result<Value, ApiError> {
        Ok(match output {
            Output::Json => obj.clone(),
            Output::Partial(v) => table::partial_metadata(obj, v),
            Output::Table(v) => {
                let mut meta = Map::new();
                if let Some(rv) = st_rv {
                    meta.insert("resourceVersion".into(), json!(rv));
                }
                table::table(
                    &rt,
                    &rp.version,
                    v,
                    &[obj],
                    meta,
                    include_object(query)?,
                    true,
                    Utc::now(),
                )
            }
        })
    };
    let resp = match verb {
        "get" => {
            let name = rp.name.clone().unwrap_or_default();
            let obj = st.get(&target, &name)?;
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            json_response(200, &render_one(&obj, rv.as_deref())?)
        }
        "list" => {
            if query.contains_key("sendInitialEvents") {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "ListOptions",
                    "",
                    vec![super::status::Cause::forbidden(
                        "sendInitialEvents",
                        "sendInitialEvents is forbidden for list",
                    )],
                ));
            }
            let q = list_query(query)?;
            let (items, meta) = st.list(&target, &q)?;
            let views: Vec<Value> = items.iter().map(|o| present(&rt, &rp.version, o)).collect();
            let body = match output {
                Output::Json => {
                    let custom = rt.behaviour == Behaviour::Custom;
                    let items: Vec<Value> = views
                        .into_iter()
                        .map(|mut v| {
                            if !custom && let Some(m) = v.as_object_mut() {
                                // Typed lists omit each item's apiVersion and kind.
                                m.remove("apiVersion");
                                m.remove("kind");
                            }
                            v
                        })
                        .collect();
                    json!({"kind": rt.list_kind, "apiVersion": rt.api_version(&rp.version), "metadata": meta, "items": items})
                }
                Output::Partial(v) => json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": format!("meta.k8s.io/{v}"),
                    "metadata": meta,
                    "items": views.iter().map(|o| table::partial_metadata(o, v)).collect::<Vec<_>>(),
                }),
                Output::Table(v) => {
                    let refs: Vec<&Value> = views.iter().collect();
                    table::table(
                        &rt,
                        &rp.version,
                        v,
                        &refs,
                        meta,
                        include_object(query)?,
                        true,
                        now,
                    )
                }
            };
            json_response(200, &body)
        }
        "watch" => {
            let setup = prepare_watch(&st, &target, query, output, inner.bookmark_interval)?;
            return Ok(Handled::Watch(Box::new(setup)));
        }
        "create" => {
            if rp.subresource.as_deref() == Some("token") {
                let out =
                    st.token_request(&target, &body, &inner.token_signer, &inner.issuer, now)?;
                return Ok(Handled::Done(json_response(201, &out)));
            }
            if !content_type.is_empty()
                && !content_type.starts_with("application/json")
                && !content_type.starts_with("*/*")
            {
                return Err(ApiError::unsupported_media_type(&[
                    "application/json",
                    "application/yaml",
                    "application/vnd.kubernetes.protobuf",
                ]));
            }
            let opts = write_opts(query, headers, false)?;
            let created = st.create(&target, &body, &opts, now)?;
            json_response(201, &render_one(&created, None)?)
        }
        "update" => {
            let opts = write_opts(query, headers, false)?;
            let updated = if rp.subresource.as_deref() == Some("finalize") {
                let t = Target {
                    subresource: None,
                    ..target.clone()
                };
                st.update(&t, &body, &opts, now)?
            } else {
                st.update(&target, &body, &opts, now)?
            };
            json_response(200, &render_one(&updated, None)?)
        }
        "patch" => {
            let Some(ty) = PatchType::from_content_type(&content_type) else {
                let accepted: &[&str] = if rt.behaviour == Behaviour::Custom {
                    &patch::CUSTOM_PATCH_TYPES
                } else {
                    &patch::BUILTIN_PATCH_TYPES
                };
                return Err(ApiError::unsupported_media_type(accepted));
            };
            let mut opts = write_opts(query, headers, ty == PatchType::Apply)?;
            opts.is_patch = true;
            let existed = st
                .store
                .get(
                    &rt.storage,
                    &rp.namespace,
                    rp.name.as_deref().unwrap_or_default(),
                )
                .is_some();
            let out = st.patch(&target, ty, &body, &opts, now)?;
            json_response(if existed { 200 } else { 201 }, &render_one(&out, None)?)
        }
        "delete" => {
            let opts = write_opts(query, headers, false)?;
            let mut body = body.to_vec();
            if let Some(g) = query.get("gracePeriodSeconds")
                && g.parse::<i64>().is_err()
            {
                return Err(ApiError::bad_request(format!(
                    "invalid gracePeriodSeconds {g:?}"
                )));
            }
            if body.is_empty() {
                body = b"{}".to_vec();
            }
            let (code, out) = st.delete(
                &target,
                &body,
                query.get("propagationPolicy").map(String::as_str),
                &opts,
                now,
            )?;
            json_response(code, &out)
        }
        "deletecollection" => {
            if rt.namespaced && rp.namespace.is_empty() {
                return Err(ApiError::no_such_resource());
            }
            let opts = write_opts(query, headers, false)?;
            let q = list_query(query)?;
            let out = st.delete_collection(&target, &q, &body, &opts, now)?;
            json_response(200, &out)
        }
        _ => return Err(ApiError::method_not_allowed(&rt.group, &rt.plural)),
    };
    let mut resp = resp;
    for w in std::mem::take(&mut st.warnings) {
        // RFC 7234 warn-code 299, as kube-apiserver sends them.
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - {w:?}")) {
            resp.headers_mut().append("Warning", v);
        }
    }
    Ok(Handled::Done(resp))
}

/// Everything a watch stream needs, computed atomically under the state lock.
struct WatchSetup {
    target: Target,
    output: Output,
    include: IncludeObject,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Events to send first (synthetic ADDED and/or history backlog), already rendered
    /// as (rv, type, object) — or an error event.
    initial: Vec<(u64, &'static str, Value)>,
    /// Send the `k8s.io/initial-events-end` bookmark at this rv after `initial`.
    initial_end: Option<u64>,
    error: Option<ApiError>,
    rx: Option<broadcast::Receiver<Arc<Change>>>,
    last_rv: u64,
    bookmarks: bool,
    bookmark_interval: Duration,
    timeout: Duration,
}

fn prepare_watch(
    st: &super::registry::State,
    t: &Target,
    query: &HashMap<String, String>,
    output: Output,
    bookmark_interval: Duration,
) -> Result<WatchSetup, ApiError> {
    let bool_param = |k: &str| query.get(k).map(|v| v == "true" || v == "1");
    let labels = LabelSelector::parse(
        query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )?;
    let mut fields = FieldSelector::parse(
        query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
        &t.rt.selectable_fields,
    )?;
    // The deprecated single-object form `GET .../<name>?watch=1` watches that name only.
    if let Some(name) = &t.name {
        fields.0.push(super::selector::FieldReq {
            path: "metadata.name".into(),
            negated: false,
            value: name.clone(),
        });
    }
    let bookmarks = bool_param("allowWatchBookmarks").unwrap_or(false);
    let send_initial = bool_param("sendInitialEvents");
    let rv_match = query.get("resourceVersionMatch").filter(|m| !m.is_empty());
    let invalid = |c| ApiError::invalid("meta.k8s.io", "ListOptions", "", vec![c]);
    use super::status::Cause;
    match (send_initial, rv_match.map(String::as_str)) {
        (Some(_), Some("NotOlderThan")) | (None, None) => {}
        (Some(_), _) => {
            return Err(invalid(Cause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )));
        }
        (None, Some(_)) => {
            return Err(invalid(Cause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )));
        }
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(invalid(Cause::forbidden(
            "allowWatchBookmarks",
            "allowWatchBookmarks must be set to true when sendInitialEvents is set",
        )));
    }
    let timeout = match query.get("timeoutSeconds") {
        Some(s) => Duration::from_secs(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {s:?}")))?,
        ),
        None => Duration::from_secs(1800),
    };
    let include = include_object(query)?;
    let rv_param = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or_default();
    let current = st.store.current_rv();
    let matches = |o: &Value| {
        let view = present(&t.rt, &t.version, o);
        labels.matches(&view) && fields.matches(&view)
    };
    let synthetic =
        |st: &super::registry::State| -> Result<Vec<(u64, &'static str, Value)>, ApiError> {
            Ok(st
                .snapshot(t, None)?
                .into_iter()
                .filter(|o| matches(o))
                .map(|o| (current, "ADDED", (*o).clone()))
                .collect())
        };
    let mut setup = WatchSetup {
        target: t.clone(),
        output,
        include,
        labels: labels.clone(),
        fields: fields.clone(),
        initial: Vec::new(),
        initial_end: None,
        error: None,
        rx: None,
        last_rv: current,
        bookmarks,
        bookmark_interval,
        timeout,
    };
    let from_rv = match (send_initial, rv_param) {
        (Some(true), _) => {
            setup.initial = synthetic(st)?;
            setup.initial_end = Some(current);
            current
        }
        (Some(false), "" | "0") => current,
        (None, "" | "0") => {
            setup.initial = synthetic(st)?;
            current
        }
        (_, rv) => {
            let n = parse_rv(rv)?;
            if n > current {
                // Too new: like the watch cache after its wait, an error event.
                let mut e = ApiError::new(
                    504,
                    "Timeout",
                    format!("Timeout: Too large resource version: {n}, current: {current}"),
                );
                e.details = Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
                );
                setup.error = Some(e);
                return Ok(setup);
            }
            n
        }
    };
    match st.store.subscribe_from(from_rv) {
        Ok((backlog, rx)) => {
            for c in backlog {
                if let Some(ev) = filter_change(&c, t, &matches) {
                    setup.initial.push(ev);
                }
            }
            setup.last_rv = current.max(from_rv);
            setup.rx = Some(rx);
        }
        // Too old: the real server answers 200 and sends an ERROR event with the 410 Status.
        Err(e) => setup.error = Some(e),
    }
    Ok(setup)
}

/// Maps a storage change onto the watch event this watcher sees, if any (objects entering
/// or leaving the selector become ADDED / DELETED, as with the watch cache).
fn filter_change(
    c: &Change,
    t: &Target,
    matches: &(dyn Fn(&Value) -> bool + Sync),
) -> Option<(u64, &'static str, Value)> {
    if c.key != t.rt.storage {
        return None;
    }
    if t.rt.namespaced
        && !t.namespace.is_empty()
        && c.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            != Some(t.namespace.as_str())
    {
        return None;
    }
    let now_matches = matches(&c.object);
    let before = c.prev.as_ref().is_some_and(|p| matches(p));
    let ty = match c.kind {
        EventType::Added if now_matches => "ADDED",
        EventType::Deleted if before || now_matches => "DELETED",
        EventType::Modified => match (before, now_matches) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
        _ => return None,
    };
    Some((c.rv, ty, (*c.object).clone()))
}

fn start_watch(inner: Arc<Inner>, setup: WatchSetup) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    tokio::spawn(run_watch(inner, setup, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Audit-Id", uuid::Uuid::new_v4().to_string())
        .header("Cache-Control", "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

struct Renderer {
    target: Target,
    output: Output,
    include: IncludeObject,
    headers_sent: bool,
}

impl Renderer {
    fn event(&mut self, ty: &str, obj: &Value) -> Bytes {
        let view = present(&self.target.rt, &self.target.version, obj);
        let object = match self.output {
            Output::Json => view,
            Output::Partial(v) => table::partial_metadata(&view, v),
            Output::Table(v) => {
                let mut meta = Map::new();
                if let Some(rv) = view.pointer("/metadata/resourceVersion") {
                    meta.insert("resourceVersion".into(), rv.clone());
                }
                let headers = !self.headers_sent;
                self.headers_sent = true;
                table::table(
                    &self.target.rt,
                    &self.target.version,
                    v,
                    &[&view],
                    meta,
                    self.include,
                    headers,
                    Utc::now(),
                )
            }
        };
        line(&json!({"type": ty, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let (kind, api_version) = match self.output {
            Output::Partial(v) => (
                "PartialObjectMetadata".to_string(),
                format!("meta.k8s.io/{v}"),
            ),
            _ => (
                self.target.rt.kind.clone(),
                self.target.rt.api_version(&self.target.version),
            ),
        };
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            &json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": meta}}),
        )
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// Counts a watch as open for its lifetime (see [`super::Handle::open_watches`]).
struct OpenWatch {
    inner: Arc<Inner>,
    resource: String,
}

impl OpenWatch {
    fn new(inner: Arc<Inner>, resource: &str) -> Self {
        let mut open = inner.open_watches.lock().unwrap_or_else(|e| e.into_inner());
        *open.entry(resource.to_string()).or_default() += 1;
        drop(open);
        OpenWatch {
            inner,
            resource: resource.to_string(),
        }
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        let mut open = self
            .inner
            .open_watches
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.resource) {
            *n = n.saturating_sub(1);
        }
    }
}

async fn run_watch(inner: Arc<Inner>, mut s: WatchSetup, tx: mpsc::Sender<Bytes>) {
    let _open = OpenWatch::new(inner.clone(), &s.target.rt.plural);
    let mut r = Renderer {
        target: s.target.clone(),
        output: s.output,
        include: s.include,
        headers_sent: false,
    };
    if let Some(e) = &s.error {
        let _ = tx
            .send(line(&json!({"type": "ERROR", "object": e.to_status()})))
            .await;
        return;
    }
    for (_, ty, obj) in std::mem::take(&mut s.initial) {
        if tx.send(r.event(ty, &obj)).await.is_err() {
            return;
        }
    }
    if let Some(rv) = s.initial_end
        && tx.send(r.bookmark(rv, true)).await.is_err()
    {
        return;
    }
    let Some(mut rx) = s.rx.take() else { return };
    let mut drop_rx = inner.drop_watches.subscribe();
    let mut shutdown = inner.shutdown.subscribe();
    let deadline = tokio::time::sleep(s.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(s.bookmark_interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticker.tick().await;
    let labels = s.labels.clone();
    let fields = s.fields.clone();
    let target = s.target.clone();
    let matches = move |o: &Value| {
        let view = present(&target.rt, &target.version, o);
        labels.matches(&view) && fields.matches(&view)
    };
    loop {
        tokio::select! {
            _ = drop_rx.changed() => return,
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
            _ = &mut deadline => {
                if s.bookmarks {
                    let rv = inner.current_rv();
                    let _ = drain(&mut rx, &mut r, &s.target, &matches, &mut s.last_rv, &tx).await;
                    let _ = tx.send(r.bookmark(rv.max(s.last_rv), false)).await;
                }
                return;
            }
            _ = ticker.tick(), if s.bookmarks => {
                let rv = inner.current_rv();
                if !drain(&mut rx, &mut r, &s.target, &matches, &mut s.last_rv, &tx).await {
                    return;
                }
                s.last_rv = s.last_rv.max(rv);
                if tx.send(r.bookmark(s.last_rv, false)).await.is_err() {
                    return;
                }
            }
            msg = rx.recv() => match msg {
                Ok(c) => {
                    if c.rv <= s.last_rv {
                        continue;
                    }
                    s.last_rv = c.rv;
                    if let Some((_, ty, obj)) = filter_change(&c, &s.target, &matches)
                        && tx.send(r.event(ty, &obj)).await.is_err()
                    {
                        return;
                    }
                }
                // A watcher that falls too far behind is closed, as the real server closes
                // slow watchers; the client re-watches from its last resourceVersion.
                Err(_) => return,
            },
        }
    }
}

/// Sends every change already queued for this watcher; false if the client went away.
async fn drain(
    rx: &mut broadcast::Receiver<Arc<Change>>,
    r: &mut Renderer,
    t: &Target,
    matches: &(dyn Fn(&Value) -> bool + Sync),
    last_rv: &mut u64,
    tx: &mpsc::Sender<Bytes>,
) -> bool {
    loop {
        match rx.try_recv() {
            Ok(c) => {
                if c.rv <= *last_rv {
                    continue;
                }
                *last_rv = c.rv;
                if let Some((_, ty, obj)) = filter_change(&c, t, matches)
                    && tx.send(r.event(ty, &obj)).await.is_err()
                {
                    return false;
                }
            }
            Err(broadcast::error::TryRecvError::Empty) => return true,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_request_info_rules() {
        let r = parse_route("/api/v1/namespaces/ns/secrets/s");
        assert_eq!(
            r,
            Route::Resource(ResourcePath {
                group: String::new(),
                version: "v1".into(),
                namespace: "ns".into(),
                resource: "secrets".into(),
                name: Some("s".into()),
                subresource: None
            })
        );
        let Route::Resource(ns) = parse_route("/api/v1/namespaces/ns/status") else {
            panic!()
        };
        assert_eq!(
            (
                ns.resource.as_str(),
                ns.name.as_deref(),
                ns.subresource.as_deref()
            ),
            ("namespaces", Some("ns"), Some("status"))
        );
        let Route::Resource(all) = parse_route("/apis/example.com/v1/widgets") else {
            panic!()
        };
        assert_eq!(
            (all.namespace.as_str(), all.resource.as_str()),
            ("", "widgets")
        );
        assert_eq!(
            parse_route("/apis/example.com/v1"),
            Route::GroupVersion("example.com".into(), "v1".into())
        );
        assert_eq!(parse_route("/nope"), Route::Unknown);
    }

    #[test]
    fn kubectl_accept_header_negotiates_a_v1_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(accept).unwrap(), Output::Table("v1"));
        assert_eq!(
            negotiate("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").unwrap(),
            Output::Partial("v1")
        );
        assert_eq!(
            negotiate("application/vnd.kubernetes.protobuf")
                .unwrap_err()
                .code,
            406
        );
    }
}
