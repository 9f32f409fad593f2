//! STS `AssumeRole` on top of another provider: a store's AccessKey plus `ramRoleARN`, and the
//! cross-account hop `remoteRamRoleARN` on top of any method (`shared/docs/ack-compat.md`,
//! "Credential order").

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::refresh::CredentialsFetcher;
use super::sts::{AssumeRoleRequest, StsClient};
use super::{Credentials, CredentialsError, CredentialsProvider};

/// Fetches a session of `role_arn` by calling `AssumeRole` signed with the upstream provider's
/// credentials. Wrap it in [`Refreshing`](super::Refreshing).
pub struct AssumeRole {
    sts: StsClient,
    upstream: Arc<dyn CredentialsProvider>,
    request: AssumeRoleRequest,
    name: &'static str,
}

impl fmt::Debug for AssumeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRole")
            .field("name", &self.name)
            .field("role_arn", &self.request.role_arn)
            .field("role_session_name", &self.request.role_session_name)
            .field("duration_seconds", &self.request.duration_seconds)
            .field("upstream", &self.upstream.name())
            .field("sts", &self.sts)
            .finish()
    }
}

impl AssumeRole {
    /// `AssumeRole` into `request.role_arn` with `upstream`'s credentials. `name` is the
    /// provider name reported in logs, errors and metrics (`assume_role` for `ramRoleARN`,
    /// `remote_role` for `remoteRamRoleARN`).
    pub fn new(
        sts: StsClient,
        upstream: Arc<dyn CredentialsProvider>,
        request: AssumeRoleRequest,
        name: &'static str,
    ) -> Self {
        Self {
            sts,
            upstream,
            request,
            name,
        }
    }

    /// The role assumed.
    pub fn role_arn(&self) -> &str {
        &self.request.role_arn
    }
}

#[async_trait]
impl CredentialsFetcher for AssumeRole {
    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let creds =
            self.upstream
                .credentials()
                .await
                .map_err(|source| CredentialsError::Upstream {
                    provider: self.name,
                    upstream: self.upstream.name(),
                    source: Box::new(source),
                })?;
        let assumed = self
            .sts
            .assume_role(&creds, &self.request)
            .await
            .map_err(|source| CredentialsError::Sts {
                action: "AssumeRole",
                role_arn: self.request.role_arn.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(
            provider = self.name,
            role_arn = %self.request.role_arn,
            session = %self.request.role_session_name,
            expiration = ?assumed.credentials.expiration,
            "assumed role"
        );
        Ok(assumed.credentials)
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn upstream(&self) -> Option<&Arc<dyn CredentialsProvider>> {
        Some(&self.upstream)
    }
}
