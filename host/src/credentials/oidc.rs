//! RRSA ("RAM Roles for Service Accounts"): STS `AssumeRoleWithOIDC` with a Kubernetes
//! ServiceAccount token, either
//!
//! * read from a projected token file ([`OidcToken::File`]) — re-read on **every** refresh,
//!   because the kubelet rotates it; or
//! * requested for a named ServiceAccount through the TokenRequest API
//!   ([`OidcToken::ServiceAccount`], ack-secret-manager v0.6 `serviceAccountRef`).
//!
//! Wire facts: `shared/docs/alibaba-cloud-protocol.md` ("STS"); token file handling as the
//! official providers (`credentials-go` `providers/oidc.go` reads the file on each refresh;
//! `OIDCToken` is 4–20000 characters per the STS API reference).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::refresh::CredentialsFetcher;
use super::source::ServiceAccountTokens;
use super::sts::{AssumeRoleWithOidcRequest, StsClient};
use super::{Credentials, CredentialsError};
use crate::value::SecretString;

/// Where ACK's RRSA webhook mounts the ServiceAccount token (and what it puts in
/// `ALIBABA_CLOUD_OIDC_TOKEN_FILE`).
pub const ACK_RRSA_TOKEN_FILE: &str = "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token";
/// Where ack-secret-manager's Helm chart projects its token (`rrsa.enable`).
pub const ACK_SECRET_MANAGER_TOKEN_FILE: &str = "/var/run/secrets/tokens/ack-secret-manager";
/// The default token files, tried in this order when `oidcTokenFilePath` is not set.
pub const DEFAULT_TOKEN_FILES: [&str; 2] = [ACK_RRSA_TOKEN_FILE, ACK_SECRET_MANAGER_TOKEN_FILE];
/// Longest `OIDCToken` STS accepts, in characters.
pub const MAX_OIDC_TOKEN_CHARS: usize = 20_000;
/// Lifetime requested for ServiceAccount tokens, in seconds (the TokenRequest minimum is 600;
/// the token is used once, right away).
pub const SERVICE_ACCOUNT_TOKEN_SECONDS: u32 = 600;

/// Where the OIDC token comes from.
#[derive(Clone)]
pub enum OidcToken {
    /// The first of these files that exists (one path when `oidcTokenFilePath` is set;
    /// [`DEFAULT_TOKEN_FILES`] otherwise).
    File(Vec<PathBuf>),
    /// A fresh token for this ServiceAccount, requested on every refresh.
    ServiceAccount {
        /// The TokenRequest implementation.
        tokens: Arc<dyn ServiceAccountTokens>,
        /// ServiceAccount namespace.
        namespace: String,
        /// ServiceAccount name.
        name: String,
        /// Token audiences (default `["sts.aliyuncs.com"]`).
        audiences: Vec<String>,
    },
}

impl fmt::Debug for OidcToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(paths) => f.debug_tuple("File").field(paths).finish(),
            Self::ServiceAccount {
                namespace,
                name,
                audiences,
                ..
            } => f
                .debug_struct("ServiceAccount")
                .field("namespace", namespace)
                .field("name", name)
                .field("audiences", audiences)
                .finish_non_exhaustive(),
        }
    }
}

/// Reads the OIDC token from the first existing file of `paths`.
///
/// # Errors
/// [`CredentialsError::TokenFileMissing`] when none exists,
/// [`CredentialsError::TokenFileUnreadable`] (permissions, a directory, invalid UTF-8),
/// [`CredentialsError::TokenFileEmpty`], or [`CredentialsError::Invalid`] for a token longer
/// than [`MAX_OIDC_TOKEN_CHARS`]. Surrounding whitespace (a trailing newline) is removed.
pub async fn read_token_file(paths: &[PathBuf]) -> Result<SecretString, CredentialsError> {
    for path in paths {
        match read_bounded(path).await {
            Ok(Some(bytes)) => return token_from_bytes(path, bytes),
            Ok(None) => return Err(too_long()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(CredentialsError::TokenFileUnreadable {
                    path: path.clone(),
                    source,
                });
            }
        }
    }
    Err(CredentialsError::TokenFileMissing {
        paths: paths.to_vec(),
    })
}

/// Most bytes read from a token file: [`MAX_OIDC_TOKEN_CHARS`] characters of up to 4 UTF-8
/// bytes each, plus room for surrounding whitespace.
const MAX_TOKEN_FILE_BYTES: u64 = MAX_OIDC_TOKEN_CHARS as u64 * 4 + 1024;

/// Reads a regular file of at most [`MAX_TOKEN_FILE_BYTES`]; `Ok(None)` when it is longer.
/// The path comes from a store (`oidcTokenFilePath`), so it may name anything the controller
/// can open: a device such as `/dev/zero` would otherwise be read until memory runs out, and
/// a FIFO would block a thread.
async fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt as _;
    if !tokio::fs::metadata(path).await?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let file = tokio::fs::File::open(path).await?;
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Ok(None);
    }
    Ok(Some(std::mem::take(&mut *bytes)))
}

fn too_long() -> CredentialsError {
    CredentialsError::Invalid {
        source_name: "oidc_role",
        field: "OIDCToken",
        reason: "is longer than the 20000 characters STS accepts",
    }
}

fn token_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<SecretString, CredentialsError> {
    let text = String::from_utf8(bytes).map_err(|e| {
        let mut bytes = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut bytes);
        CredentialsError::TokenFileUnreadable {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"),
        }
    })?;
    let text = SecretString::new(text);
    let trimmed = text.expose().trim();
    if trimmed.is_empty() {
        return Err(CredentialsError::TokenFileEmpty {
            path: path.to_owned(),
        });
    }
    if trimmed.chars().count() > MAX_OIDC_TOKEN_CHARS {
        return Err(too_long());
    }
    if trimmed.len() == text.expose().len() {
        Ok(text)
    } else {
        Ok(SecretString::from(trimmed))
    }
}

/// Fetches a session of a role with `AssumeRoleWithOIDC`. Wrap it in
/// [`Refreshing`](super::Refreshing).
#[derive(Debug)]
pub struct OidcRole {
    sts: StsClient,
    token: OidcToken,
    role_arn: String,
    oidc_provider_arn: String,
    role_session_name: String,
    duration_seconds: Option<u64>,
}

impl OidcRole {
    /// `AssumeRoleWithOIDC` into `role_arn` via `oidc_provider_arn` with tokens from `token`.
    pub fn new(
        sts: StsClient,
        token: OidcToken,
        role_arn: impl Into<String>,
        oidc_provider_arn: impl Into<String>,
        role_session_name: impl Into<String>,
        duration_seconds: Option<u64>,
    ) -> Self {
        Self {
            sts,
            token,
            role_arn: role_arn.into(),
            oidc_provider_arn: oidc_provider_arn.into(),
            role_session_name: role_session_name.into(),
            duration_seconds,
        }
    }

    async fn token(&self) -> Result<SecretString, CredentialsError> {
        match &self.token {
            OidcToken::File(paths) => read_token_file(paths).await,
            OidcToken::ServiceAccount {
                tokens,
                namespace,
                name,
                audiences,
            } => {
                let t = tokens
                    .request_token(namespace, name, audiences, SERVICE_ACCOUNT_TOKEN_SECONDS)
                    .await
                    .map_err(|source| CredentialsError::ServiceAccountToken {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        source: Box::new(source),
                    })?;
                if t.token.expose().trim().is_empty() {
                    return Err(CredentialsError::Invalid {
                        source_name: "service_account_role",
                        field: "TokenRequest status.token",
                        reason: "empty",
                    });
                }
                Ok(t.token)
            }
        }
    }
}

#[async_trait]
impl CredentialsFetcher for OidcRole {
    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let token = self.token().await?;
        let request = AssumeRoleWithOidcRequest {
            role_arn: self.role_arn.clone(),
            oidc_provider_arn: self.oidc_provider_arn.clone(),
            oidc_token: token,
            role_session_name: self.role_session_name.clone(),
            duration_seconds: self.duration_seconds,
            policy: None,
        };
        let assumed = self
            .sts
            .assume_role_with_oidc(&request)
            .await
            .map_err(|source| CredentialsError::Sts {
                action: "AssumeRoleWithOIDC",
                role_arn: self.role_arn.clone(),
                source: Box::new(source),
            })?;
        tracing::info!(
            provider = self.name(),
            role_arn = %self.role_arn,
            oidc_provider_arn = %self.oidc_provider_arn,
            expiration = ?assumed.credentials.expiration,
            "assumed role with OIDC token"
        );
        Ok(assumed.credentials)
    }

    fn name(&self) -> &'static str {
        match self.token {
            OidcToken::File(_) => "oidc_role",
            OidcToken::ServiceAccount { .. } => "service_account_role",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_existing_token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let present = dir.path().join("token");
        std::fs::write(&present, "header.payload.signature\n").unwrap();
        let t = read_token_file(&[missing.clone(), present]).await.unwrap();
        assert_eq!(t.expose(), "header.payload.signature");

        let err = read_token_file(std::slice::from_ref(&missing))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "OIDC token file not found (looked for {})",
                missing.display()
            )
        );
    }

    #[tokio::test]
    async fn devices_and_huge_files_are_refused_without_reading_them_whole() {
        // A store may name any path: /dev/zero never ends.
        let dev_zero = [PathBuf::from("/dev/zero")];
        let read = read_token_file(&dev_zero);
        let err = tokio::time::timeout(std::time::Duration::from_secs(30), read)
            .await
            .expect("a device is refused, not read")
            .unwrap_err();
        assert!(
            matches!(err, CredentialsError::TokenFileUnreadable { .. }),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let huge = dir.path().join("huge");
        std::fs::write(&huge, vec![b'x'; 4 << 20]).unwrap();
        let err = read_token_file(std::slice::from_ref(&huge))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CredentialsError::Invalid {
                    field: "OIDCToken",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn empty_unreadable_and_oversized_token_files_are_distinct_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let err = read_token_file(std::slice::from_ref(&empty))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CredentialsError::TokenFileEmpty { .. }),
            "{err}"
        );
        assert_eq!(err.metric_label(), "token_file_empty");

        // A directory cannot be read as a file.
        let err = read_token_file(&[dir.path().to_path_buf()])
            .await
            .unwrap_err();
        assert!(
            matches!(err, CredentialsError::TokenFileUnreadable { .. }),
            "{err}"
        );

        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let err = read_token_file(std::slice::from_ref(&binary))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CredentialsError::TokenFileUnreadable { .. }),
            "{err}"
        );

        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(MAX_OIDC_TOKEN_CHARS + 1)).unwrap();
        let err = read_token_file(std::slice::from_ref(&big))
            .await
            .unwrap_err();
        assert!(matches!(err, CredentialsError::Invalid { .. }), "{err}");
    }
}
