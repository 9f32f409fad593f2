//! Identity state beyond access keys: OIDC providers (RRSA), role revocation, the ECS instance
//! role and the metadata server's switch, with their admin operations on [`State`].

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::oidc::{MintTokenRequest, TestSigner, VerifyKey, keys_from_jwks, mint_claims};
use super::seed::Seed;
use super::state::{AdminError, State, lock};

/// A RAM OIDC provider.
#[derive(Clone, Debug)]
pub(crate) struct OidcProvider {
    pub arn: String,
    pub issuer: String,
    pub client_ids: Vec<String>,
    pub keys: Vec<VerifyKey>,
}

/// How a role was revoked through the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// As if deleted: assuming it answers `404 EntityNotExist.Role`, and sessions issued before
    /// lose every permission (KMS answers `403 Forbidden.NoPermission`).
    Delete,
    /// Its trust policy no longer lets anyone assume it: `AssumeRole` answers `403
    /// NoPermission`, `AssumeRoleWithOIDC` `401 AuthenticationFail.NoPermission`. Sessions
    /// issued before keep working until they expire.
    Deny,
}

/// Body of `POST /v1/roles/revoke`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRole {
    /// The role.
    pub role_arn: String,
    /// How (default `delete`).
    #[serde(default = "default_revocation")]
    pub mode: Revocation,
}

fn default_revocation() -> Revocation {
    Revocation::Delete
}

/// The instance role as configured.
#[derive(Clone, Debug)]
pub(crate) struct InstanceRole {
    pub role_arn: String,
    pub role_name: String,
    pub session_duration: u64,
    pub require_token: bool,
    pub tokens_unsupported: bool,
}

/// What the metadata listener does with requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum MetadataMode {
    /// Answer normally.
    #[default]
    Up,
    /// Answer every request with this HTTP status (default 500) and a plain-text body.
    Error {
        /// HTTP status, 400–599.
        #[serde(default = "default_error_status")]
        status: u16,
    },
    /// Close every connection without answering (the server looks down).
    Down,
}

fn default_error_status() -> u16 {
    500
}

/// The metadata server's mutable state.
#[derive(Debug, Default)]
pub(crate) struct MetadataState {
    pub mode: MetadataMode,
    /// IMDSv2 tokens and when they expire.
    pub tokens: HashMap<String, DateTime<Utc>>,
    /// The STS session currently handed out: `(AccessKeyId, issued)`.
    pub current: Option<(String, DateTime<Utc>)>,
}

/// Identity state (see the module docs).
#[derive(Debug)]
pub(crate) struct Identity {
    pub oidc_providers: HashMap<String, OidcProvider>,
    pub signer: TestSigner,
    pub revoked: Mutex<HashMap<String, Revocation>>,
    pub instance_role: Option<InstanceRole>,
    pub metadata: Mutex<MetadataState>,
}

impl Identity {
    /// From a validated seed.
    pub fn from_seed(seed: &Seed) -> Self {
        let signer = TestSigner::builtin();
        let oidc_providers = seed
            .oidc_providers
            .iter()
            .map(|p| {
                let keys = match &p.jwks {
                    // Validated by the seed checks.
                    Some(jwks) => keys_from_jwks(jwks).unwrap_or_default(),
                    None => vec![signer.public().clone()],
                };
                (
                    p.arn.to_ascii_lowercase(),
                    OidcProvider {
                        arn: p.arn.clone(),
                        issuer: p.issuer.clone(),
                        client_ids: p.client_ids.clone(),
                        keys,
                    },
                )
            })
            .collect();
        let instance_role = seed.instance_role.as_ref().map(|r| InstanceRole {
            role_arn: r.role_arn.clone(),
            role_name: r.role_arn.rsplit('/').next().unwrap_or_default().to_owned(),
            session_duration: r.session_duration,
            require_token: r.require_token,
            tokens_unsupported: r.tokens_unsupported,
        });
        Self {
            oidc_providers,
            signer,
            revoked: Mutex::new(HashMap::new()),
            instance_role,
            metadata: Mutex::new(MetadataState::default()),
        }
    }

    /// How `role_arn` is revoked, if it is.
    pub fn revocation(&self, role_arn: &str) -> Option<Revocation> {
        lock(&self.revoked)
            .get(&role_arn.to_ascii_lowercase())
            .copied()
    }
}

impl State {
    /// Revokes a role (see [`Revocation`]).
    ///
    /// # Errors
    /// [`AdminError::RoleNotFound`].
    pub fn revoke_role(&self, role_arn: &str, mode: Revocation) -> Result<(), AdminError> {
        let key = role_arn.to_ascii_lowercase();
        if !self.roles.contains_key(&key) {
            return Err(AdminError::RoleNotFound {
                arn: role_arn.to_owned(),
            });
        }
        lock(&self.identity.revoked).insert(key, mode);
        Ok(())
    }

    /// Undoes [`revoke_role`](Self::revoke_role).
    ///
    /// # Errors
    /// [`AdminError::RoleNotFound`].
    pub fn restore_role(&self, role_arn: &str) -> Result<(), AdminError> {
        let key = role_arn.to_ascii_lowercase();
        if !self.roles.contains_key(&key) {
            return Err(AdminError::RoleNotFound {
                arn: role_arn.to_owned(),
            });
        }
        lock(&self.identity.revoked).remove(&key);
        Ok(())
    }

    /// A JWT for `request`, signed with the built-in TEST ONLY key (which providers without
    /// `jwks` trust).
    ///
    /// # Errors
    /// [`AdminError::OidcProviderNotFound`].
    pub fn mint_oidc_token(&self, request: &MintTokenRequest) -> Result<String, AdminError> {
        let provider = self
            .identity
            .oidc_providers
            .get(&request.provider_arn.to_ascii_lowercase())
            .ok_or_else(|| AdminError::OidcProviderNotFound {
                arn: request.provider_arn.clone(),
            })?;
        let claims = mint_claims(
            request,
            &provider.issuer,
            provider
                .client_ids
                .first()
                .map(String::as_str)
                .unwrap_or(crate::api::DEFAULT_TOKEN_AUDIENCE),
            Utc::now(),
        );
        Ok(self.identity.signer.sign(&claims))
    }

    /// The JWKS of the built-in TEST ONLY key.
    pub fn oidc_jwks(&self) -> serde_json::Value {
        self.identity.signer.jwks()
    }

    /// Sets what the metadata listener does.
    ///
    /// # Errors
    /// [`AdminError::InvalidMetadataMode`] for an error status outside 400–599.
    pub fn set_metadata_mode(&self, mode: MetadataMode) -> Result<(), AdminError> {
        if let MetadataMode::Error { status } = mode
            && !(400..=599).contains(&status)
        {
            return Err(AdminError::InvalidMetadataMode {
                reason: "status must be 400 to 599",
            });
        }
        lock(&self.identity.metadata).mode = mode;
        Ok(())
    }

    /// What the metadata listener does.
    pub fn metadata_mode(&self) -> MetadataMode {
        lock(&self.identity.metadata).mode
    }
}
