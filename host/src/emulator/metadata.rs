//! The ECS instance metadata server (`--metadata-listen`), plain HTTP like the real one at
//! `http://100.100.100.200` (`shared/docs/alibaba-cloud-protocol.md`, "ECS instance RAM role"):
//!
//! | Request | Answer |
//! |---|---|
//! | `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds: 1..21600` | a token (text) |
//! | `GET /latest/meta-data/ram/security-credentials/` | the role name (text) |
//! | `GET /latest/meta-data/ram/security-credentials/<role>` | `{"Code":"Success","AccessKeyId","AccessKeySecret","SecurityToken","Expiration","LastUpdated"}` |
//!
//! A request carrying `X-aliyun-ecs-metadata-token` must carry a valid, unexpired token
//! (else 401); without one it is served unless the seed's `instance_role.require_token` is set
//! (IMDSv1 disabled: 401). With `instance_role.tokens_unsupported` the token endpoint answers
//! 404, like a server without IMDSv2. The credentials are an STS session of the instance role that KMS
//! accepts; the same session is returned until less than half of its lifetime remains. The admin
//! API's `PUT /v1/metadata` makes the server answer errors or drop connections.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State as AxumState};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use chrono::{Duration as ChronoDuration, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;

use super::identity::MetadataMode;
use super::server::ConnMeta;
use super::state::{State, lock};
use crate::alibaba::sign::format_timestamp;

const TOKEN_PATH: &str = "/latest/api/token";
const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/";
const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
const TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";

/// The metadata router.
pub(crate) fn metadata_router(state: Arc<State>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

fn endpoint(method: &Method, path: &str) -> &'static str {
    match (method, path) {
        (&Method::PUT, TOKEN_PATH) => "token",
        (&Method::GET, ROLE_PATH) => "role-name",
        (&Method::GET, p) if p.starts_with(ROLE_PATH) => "credentials",
        _ => "other",
    }
}

async fn handle(
    AxumState(state): AxumState<Arc<State>>,
    ConnectInfo(conn): ConnectInfo<ConnMeta>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let which = endpoint(&method, &path);
    lock(&state.counters).record_metadata(which);
    match state.metadata_mode() {
        MetadataMode::Up => {}
        MetadataMode::Down => {
            tracing::debug!(path = %path, "metadata server dropping connection (admin switch)");
            conn.kill();
            return Response::new(Body::empty());
        }
        MetadataMode::Error { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text(status, "metadata server error (emulated)");
        }
    }
    let Some(role) = state.identity.instance_role.clone() else {
        return text(StatusCode::NOT_FOUND, "no instance role is attached");
    };
    let now = Utc::now();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };

    if which == "token" {
        if role.tokens_unsupported {
            return text(StatusCode::NOT_FOUND, "not found");
        }
        let ttl = header(TTL_HEADER).and_then(|t| t.trim().parse::<i64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21600).contains(t)) else {
            return text(
                StatusCode::BAD_REQUEST,
                "X-aliyun-ecs-metadata-token-ttl-seconds must be 1 to 21600",
            );
        };
        let token: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(56)
            .map(char::from)
            .collect();
        let mut md = lock(&state.identity.metadata);
        md.tokens.retain(|_, exp| *exp > now);
        md.tokens
            .insert(token.clone(), now + ChronoDuration::seconds(ttl));
        return text(StatusCode::OK, token);
    }

    match header(TOKEN_HEADER) {
        Some(t) => {
            let valid = lock(&state.identity.metadata)
                .tokens
                .get(&t)
                .is_some_and(|exp| *exp > now);
            if !valid {
                return text(
                    StatusCode::UNAUTHORIZED,
                    "invalid or expired metadata token",
                );
            }
        }
        None if role.require_token => {
            return text(
                StatusCode::UNAUTHORIZED,
                "a metadata token is required (IMDSv1 is disabled)",
            );
        }
        None => {}
    }

    match which {
        "role-name" => text(StatusCode::OK, role.role_name.clone()),
        "credentials" if path[ROLE_PATH.len()..] == role.role_name => {
            credentials(&state, &role, now)
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn credentials(
    state: &State,
    role: &super::identity::InstanceRole,
    now: chrono::DateTime<Utc>,
) -> Response {
    let Some(seed_role) = state.roles.get(&role.role_arn.to_ascii_lowercase()) else {
        return text(StatusCode::NOT_FOUND, "the instance role does not exist");
    };
    let half = ChronoDuration::seconds(i64::try_from(role.session_duration / 2).unwrap_or(0));
    let mut md = lock(&state.identity.metadata);
    let reuse = md.current.as_ref().and_then(|(id, issued)| {
        lock(&state.sessions)
            .get(id)
            .filter(|s| s.expiration - now > half)
            .map(|s| {
                (
                    id.clone(),
                    s.secret.clone(),
                    s.token.clone(),
                    *issued,
                    s.expiration,
                )
            })
    });
    let (id, secret, token, issued, expiration) = match reuse {
        Some(r) => r,
        None => {
            let (creds, _, expiration) = super::sts::issue_session(
                state,
                seed_role,
                "ecs-instance",
                role.session_duration,
                now,
            );
            let id = creds["AccessKeyId"].as_str().unwrap_or_default().to_owned();
            md.current = Some((id.clone(), now));
            let session = lock(&state.sessions).get(&id).cloned();
            match session {
                Some(s) => (id, s.secret, s.token, now, expiration),
                None => return text(StatusCode::INTERNAL_SERVER_ERROR, "session vanished"),
            }
        }
    };
    let body = json!({
        "Code": "Success",
        "AccessKeyId": id,
        "AccessKeySecret": secret.expose(),
        "SecurityToken": token.expose(),
        "Expiration": format_timestamp(expiration),
        "LastUpdated": format_timestamp(issued),
    });
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
