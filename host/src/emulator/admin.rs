//! The admin API, served on its own listener (never on the KMS/STS surface), and the same
//! operations as Rust methods on [`State`] for in-process tests.
//!
//! | Method and path | Body | Effect |
//! |---|---|---|
//! | `GET /healthz` | | `ok` |
//! | `GET /v1/counters` | | [`CounterSnapshot`] as JSON |
//! | `POST /v1/counters/reset` | | zero all counters |
//! | `GET /v1/faults` | | `{"rules": [...]}` |
//! | `PUT /v1/faults` | `{"rules": [FaultRule...]}` | replace the fault rules |
//! | `DELETE /v1/faults` | | remove all fault rules |
//! | `POST /v1/secrets` | a seed secret (JSON) | create a secret |
//! | `GET /v1/secrets/{name}/versions` | | `[{"version_id","stages"}]` |
//! | `POST /v1/secrets/{name}/versions` | [`NewVersion`] | add a version (rotation) |
//! | `PUT /v1/secrets/{name}/stages/{stage}` | `{"version_id": "v2"}` | move a stage |
//! | `POST /v1/sts/expire` | | expire every STS session issued so far |
//! | `POST /v1/oidc/token` | [`MintTokenRequest`] | `{"token": "<JWT>"}` signed with the TEST ONLY key |
//! | `GET /v1/oidc/jwks` | | the TEST ONLY key as a JWKS |
//! | `POST /v1/roles/revoke` | [`RevokeRole`] | revoke a role (`delete` or `deny`) |
//! | `POST /v1/roles/restore` | `{"role_arn": "..."}` | undo a revocation |
//! | `GET /v1/metadata` | | the metadata server's [`MetadataMode`] |
//! | `PUT /v1/metadata` | [`MetadataMode`] | `{"mode": "up"}`, `{"mode": "down"}`, `{"mode": "error", "status": 503}` |
//!
//! Errors are `{"error": "<message>"}` with 400, 404 or 409.

use std::sync::Arc;

use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::counters::CounterSnapshot;
use super::faults::FaultRule;
use super::identity::{MetadataMode, RevokeRole};
use super::oidc::MintTokenRequest;
use super::seed::{SeedData, SeedSecret};
use super::state::{AdminError, State, lock};

/// Body of `POST /v1/secrets/{name}/versions`. `Debug` omits the value.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// New VersionId.
    pub version_id: String,
    /// Text value.
    #[serde(default)]
    pub text: Option<String>,
    /// JSON value (stored as compact JSON text).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Binary value, standard base64.
    #[serde(default)]
    pub binary_base64: Option<String>,
    /// Stages for the new version (default `["ACSCurrent"]`, which rotates the old current
    /// version to `ACSPrevious`).
    #[serde(default)]
    pub stages: Option<Vec<String>>,
}

impl std::fmt::Debug for NewVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewVersion")
            .field("version_id", &self.version_id)
            .field("value", &"<redacted>")
            .field("stages", &self.stages)
            .finish()
    }
}

/// Body of `PUT /v1/faults`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultList {
    /// Rules, evaluated in order.
    pub rules: Vec<FaultRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveStage {
    version_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreRole {
    role_arn: String,
}

impl State {
    /// Current counters.
    pub fn counters(&self) -> CounterSnapshot {
        lock(&self.counters).clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        *lock(&self.counters) = CounterSnapshot::default();
    }

    /// Replaces the fault rules (their occurrence counters start from zero).
    ///
    /// # Errors
    /// [`AdminError::InvalidFault`] naming the first bad rule; nothing changes then.
    pub fn set_faults(&self, rules: Vec<FaultRule>) -> Result<(), AdminError> {
        for (index, rule) in rules.iter().enumerate() {
            rule.validate()
                .map_err(|reason| AdminError::InvalidFault { index, reason })?;
        }
        lock(&self.faults).set(rules);
        Ok(())
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.faults).set(Vec::new());
    }

    /// The active fault rules.
    pub fn faults(&self) -> Vec<FaultRule> {
        lock(&self.faults).rules()
    }

    /// Adds a version from an admin request (see [`State::add_version`]).
    ///
    /// # Errors
    /// [`AdminError`].
    pub fn add_new_version(&self, name: &str, v: &NewVersion) -> Result<(), AdminError> {
        let data = SeedData {
            text: v.text.clone(),
            json: v.json.clone(),
            binary_base64: v.binary_base64.clone(),
        }
        .decode(&format!("secret {name:?} version {:?}", v.version_id))?;
        self.add_version(name, &v.version_id, data, v.stages.clone())
    }
}

struct ApiError(AdminError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::BAD_REQUEST);
        (
            status,
            Json(serde_json::json!({ "error": self.0.to_string() })),
        )
            .into_response()
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        Self(e)
    }
}

type Shared = AxumState<Arc<State>>;

/// The admin router.
pub(crate) fn admin_router(state: Arc<State>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/counters", get(|AxumState(s): Shared| async move { Json(s.counters()) }))
        .route(
            "/v1/counters/reset",
            post(|AxumState(s): Shared| async move {
                s.reset_counters();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/v1/faults",
            get(|AxumState(s): Shared| async move { Json(FaultList { rules: s.faults() }) })
                .put(|AxumState(s): Shared, Json(list): Json<FaultList>| async move {
                    s.set_faults(list.rules).map_err(ApiError)?;
                    Ok::<_, ApiError>(StatusCode::NO_CONTENT)
                })
                .delete(|AxumState(s): Shared| async move {
                    s.clear_faults();
                    StatusCode::NO_CONTENT
                }),
        )
        .route(
            "/v1/secrets",
            post(|AxumState(s): Shared, Json(secret): Json<SeedSecret>| async move {
                s.create_secret(&secret).map_err(ApiError)?;
                Ok::<_, ApiError>(StatusCode::CREATED)
            }),
        )
        .route(
            "/v1/secrets/{name}/versions",
            get(|AxumState(s): Shared, Path(name): Path<String>| async move {
                let versions = s
                    .version_stages(&name)
                    .ok_or(ApiError(AdminError::SecretNotFound { name }))?;
                let list: Vec<serde_json::Value> = versions
                    .into_iter()
                    .map(|(id, stages)| serde_json::json!({"version_id": id, "stages": stages}))
                    .collect();
                Ok::<_, ApiError>(Json(list))
            })
            .post(|AxumState(s): Shared, Path(name): Path<String>, Json(v): Json<NewVersion>| async move {
                s.add_new_version(&name, &v).map_err(ApiError)?;
                Ok::<_, ApiError>(StatusCode::CREATED)
            }),
        )
        .route(
            "/v1/secrets/{name}/stages/{stage}",
            put(|AxumState(s): Shared, Path((name, stage)): Path<(String, String)>, Json(m): Json<MoveStage>| async move {
                s.move_stage(&name, &stage, &m.version_id).map_err(ApiError)?;
                Ok::<_, ApiError>(StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/sts/expire",
            post(|AxumState(s): Shared| async move {
                let n = s.expire_sts_sessions();
                Json(serde_json::json!({ "expired": n }))
            }),
        )
        .route(
            "/v1/oidc/token",
            post(|AxumState(s): Shared, Json(r): Json<MintTokenRequest>| async move {
                let token = s.mint_oidc_token(&r).map_err(ApiError)?;
                Ok::<_, ApiError>(Json(serde_json::json!({ "token": token })))
            }),
        )
        .route("/v1/oidc/jwks", get(|AxumState(s): Shared| async move { Json(s.oidc_jwks()) }))
        .route(
            "/v1/roles/revoke",
            post(|AxumState(s): Shared, Json(r): Json<RevokeRole>| async move {
                s.revoke_role(&r.role_arn, r.mode).map_err(ApiError)?;
                Ok::<_, ApiError>(StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/roles/restore",
            post(|AxumState(s): Shared, Json(r): Json<RestoreRole>| async move {
                s.restore_role(&r.role_arn).map_err(ApiError)?;
                Ok::<_, ApiError>(StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/v1/metadata",
            get(|AxumState(s): Shared| async move { Json(s.metadata_mode()) }).put(
                |AxumState(s): Shared, Json(m): Json<MetadataMode>| async move {
                    s.set_metadata_mode(m).map_err(ApiError)?;
                    Ok::<_, ApiError>(StatusCode::NO_CONTENT)
                },
            ),
        )
        .with_state(state)
}
