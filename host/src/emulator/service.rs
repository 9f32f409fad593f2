//! The extension point for emulated products.
//!
//! Each product implements [`RpcService`] for its API version; the server dispatches a signed RPC
//! call by `Version` (`x-acs-version`) to the service, after counting it, applying faults and
//! authenticating it. Adding OOS (`2019-06-01`, `GetSecretParameter`) is one more
//! implementation; an unsigned action such as STS `AssumeRoleWithOIDC` answers `true` from
//! [`RpcService::is_anonymous`]. Non-RPC surfaces (ECS metadata paths, the KMS instance protobuf
//! API selected by `x-kms-apiname`) are separate routes in `server.rs`.

use chrono::{DateTime, Utc};

use super::auth::{Caller, ExpiredTokenStyle};
use super::protocol::{EmuError, RpcCall};
use super::state::State;

/// One emulated RPC product.
pub(crate) trait RpcService: Send + Sync + 'static {
    /// API version served, e.g. `2016-01-20`.
    fn version(&self) -> &'static str;

    /// How an expired STS token is reported to this product's callers.
    fn expired_token_style(&self) -> ExpiredTokenStyle {
        ExpiredTokenStyle::Gateway
    }

    /// Whether `action` is served without a signature.
    fn is_anonymous(&self, _action: &str) -> bool {
        false
    }

    /// Whether the service has `action` (unknown ones get `404 InvalidAction.NotFound`).
    fn has_action(&self, action: &str) -> bool;

    /// Handles an authenticated call (`caller` is `None` only for anonymous actions).
    fn handle(
        &self,
        state: &State,
        call: &RpcCall,
        caller: Option<&Caller>,
        now: DateTime<Utc>,
    ) -> Result<serde_json::Value, EmuError>;
}
