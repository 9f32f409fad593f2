//! The default credential chain: what a store without credentials (`KMSAuth: {}` or unset) and
//! the `kmsync kms` debugging commands use. Order, as the official SDKs
//! (`shared/docs/alibaba-cloud-protocol.md`, "Default credential chain"; `credentials-go`
//! `providers/default.go`):
//!
//! 1. `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` / `_SECURITY_TOKEN`;
//! 2. RRSA from `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`,
//!    `ALIBABA_CLOUD_OIDC_TOKEN_FILE` (all three set; session `ALIBABA_CLOUD_ROLE_SESSION_NAME`);
//! 3. the CLI profile `~/.aliyun/config.json` (unless `ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true`);
//! 4. the credentials file `~/.alibabacloud/credentials`;
//! 5. the ECS instance role — only when the operator enables it (`--enable-worker-role`) and
//!    `ALIBABA_CLOUD_ECS_METADATA_DISABLED` is not `true`.
//!
//! Members are tried in order until one yields credentials; that member is then used alone
//! (the SDKs' `reuse_last_provider`). Environment variables are read once, when the chain is
//! built; profile files when first needed.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::builder::ProviderContext;
use super::ecs::{ENV_ECS_METADATA_DISABLED, EcsMetadataConfig, EcsRamRole};
use super::oidc::{OidcRole, OidcToken};
use super::profile::{ProfileSpec, cli_profile, ini_profile};
use super::refresh::Refreshing;
use super::{
    Credentials, CredentialsError, CredentialsProvider, ENV_ACCESS_KEY_ID, StaticCredentials,
};
use crate::api::DEFAULT_SESSION_NAME;

/// `ALIBABA_CLOUD_ROLE_ARN`.
pub const ENV_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
/// `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`.
pub const ENV_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
/// `ALIBABA_CLOUD_OIDC_TOKEN_FILE`.
pub const ENV_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
/// `ALIBABA_CLOUD_ROLE_SESSION_NAME`.
pub const ENV_ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
/// `ALIBABA_CLOUD_PROFILE`: profile name in both profile files.
pub const ENV_PROFILE: &str = "ALIBABA_CLOUD_PROFILE";
/// `ALIBABA_CLOUD_CREDENTIALS_FILE`: the INI credentials file.
pub const ENV_CREDENTIALS_FILE: &str = "ALIBABA_CLOUD_CREDENTIALS_FILE";
/// `ALIBABA_CLOUD_CONFIG_FILE`: the CLI configuration file.
pub const ENV_CONFIG_FILE: &str = "ALIBABA_CLOUD_CONFIG_FILE";
/// `ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true` skips the CLI configuration.
pub const ENV_CLI_PROFILE_DISABLED: &str = "ALIBABA_CLOUD_CLI_PROFILE_DISABLED";

/// Inputs of the default chain.
#[derive(Clone, Debug, Default)]
pub struct DefaultChainConfig {
    /// Environment snapshot (variable -> value); see [`from_process_env`](Self::from_process_env).
    pub env: HashMap<String, String>,
    /// Home directory for `~/.aliyun` and `~/.alibabacloud` (`None`: skip both unless the
    /// `*_FILE` variables name files).
    pub home: Option<PathBuf>,
    /// Include the ECS instance role (`--enable-worker-role`).
    pub enable_ecs_role: bool,
}

impl DefaultChainConfig {
    /// The process environment (`ALIBABA_CLOUD_*` variables) and `$HOME`.
    pub fn from_process_env(enable_ecs_role: bool) -> Self {
        Self {
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("ALIBABA_CLOUD_"))
                .collect(),
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            enable_ecs_role,
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn is_true(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Each chain member's failure, in order (`Display`: `member: error chain; ...`).
#[derive(Debug, Default)]
pub struct ChainFailures(pub Vec<(&'static str, CredentialsError)>);

impl fmt::Display for ChainFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(
                "nothing is configured (set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, the ALIBABA_CLOUD_ROLE_ARN / ALIBABA_CLOUD_OIDC_PROVIDER_ARN / ALIBABA_CLOUD_OIDC_TOKEN_FILE trio, a credentials profile, or enable the worker role)",
            );
        }
        for (i, (name, err)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{name}: {}", super::error_chain(err))?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProfileKind {
    Cli,
    Ini,
}

/// A profile file read on first use.
struct LazyProfile {
    kind: ProfileKind,
    path: PathBuf,
    profile: Option<String>,
    provider: OnceCell<Arc<dyn CredentialsProvider>>,
}

enum Member {
    Ready(&'static str, Arc<dyn CredentialsProvider>),
    Failed(&'static str, Arc<CredentialsError>),
    Profile(&'static str, LazyProfile),
}

impl Member {
    fn name(&self) -> &'static str {
        match self {
            Self::Ready(n, _) | Self::Failed(n, _) | Self::Profile(n, _) => n,
        }
    }
}

/// The default chain (see the module docs).
pub struct DefaultChain {
    members: Vec<Member>,
    last_used: Mutex<Option<usize>>,
    ctx: ProviderContext,
}

impl fmt::Debug for DefaultChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.members.iter().map(Member::name).collect();
        f.debug_struct("DefaultChain")
            .field("members", &names)
            .field("last_used", &self.last_used.lock().ok().and_then(|g| *g))
            .finish()
    }
}

impl DefaultChain {
    /// Builds the chain from `config`; STS calls and the instance role use `ctx`.
    pub fn new(config: &DefaultChainConfig, ctx: ProviderContext) -> Self {
        let mut members = Vec::new();
        if config.get(ENV_ACCESS_KEY_ID).is_some() {
            let env = config.env.clone();
            members.push(
                match StaticCredentials::from_lookup(|k| env.get(k).cloned()) {
                    Ok(p) => Member::Ready("env", Arc::new(p)),
                    Err(e) => Member::Failed("env", Arc::new(e)),
                },
            );
        }
        if let (Some(role), Some(provider), Some(file)) = (
            config.get(ENV_ROLE_ARN),
            config.get(ENV_OIDC_PROVIDER_ARN),
            config.get(ENV_OIDC_TOKEN_FILE),
        ) {
            let session = config
                .get(ENV_ROLE_SESSION_NAME)
                .unwrap_or(DEFAULT_SESSION_NAME);
            members.push(match ctx.sts_client(&Default::default()) {
                Ok(sts) => Member::Ready(
                    "oidc_env",
                    Arc::new(Refreshing::new(
                        OidcRole::new(
                            sts,
                            OidcToken::File(vec![PathBuf::from(file)]),
                            role,
                            provider,
                            session,
                            None,
                        ),
                        ctx.refresh,
                    )),
                ),
                Err(_) => Member::Failed(
                    "oidc_env",
                    Arc::new(CredentialsError::Invalid {
                        source_name: "oidc_env",
                        field: "STS endpoint",
                        reason: "the configured STS endpoint is not allowed",
                    }),
                ),
            });
        }
        let profile = config.get(ENV_PROFILE).map(str::to_owned);
        let home = |rel: &str| config.home.as_ref().map(|h| h.join(rel));
        if !config.is_true(ENV_CLI_PROFILE_DISABLED)
            && let Some(path) = config
                .get(ENV_CONFIG_FILE)
                .map(PathBuf::from)
                .or_else(|| home(".aliyun/config.json"))
        {
            members.push(Member::Profile(
                "cli_profile",
                LazyProfile {
                    kind: ProfileKind::Cli,
                    path,
                    profile: profile.clone(),
                    provider: OnceCell::new(),
                },
            ));
        }
        if let Some(path) = config
            .get(ENV_CREDENTIALS_FILE)
            .map(PathBuf::from)
            .or_else(|| home(".alibabacloud/credentials"))
        {
            members.push(Member::Profile(
                "profile",
                LazyProfile {
                    kind: ProfileKind::Ini,
                    path,
                    profile,
                    provider: OnceCell::new(),
                },
            ));
        }
        if config.enable_ecs_role && !config.is_true(ENV_ECS_METADATA_DISABLED) {
            let metadata = EcsMetadataConfig {
                role_name: ctx
                    .metadata
                    .role_name
                    .clone()
                    .or_else(|| config.get(super::ecs::ENV_ECS_METADATA).map(str::to_owned)),
                ..ctx.metadata.clone()
            };
            members.push(match EcsRamRole::new(metadata) {
                Ok(f) => Member::Ready("ecs_ram_role", Arc::new(Refreshing::new(f, ctx.refresh))),
                Err(e) => Member::Failed("ecs_ram_role", Arc::new(e)),
            });
        }
        Self {
            members,
            last_used: Mutex::new(None),
            ctx,
        }
    }

    /// Names of the members, in order (`env`, `oidc_env`, `cli_profile`, `profile`,
    /// `ecs_ram_role`).
    pub fn member_names(&self) -> Vec<&'static str> {
        self.members.iter().map(Member::name).collect()
    }

    async fn member_provider(
        &self,
        member: &Member,
    ) -> Result<Option<Arc<dyn CredentialsProvider>>, CredentialsError> {
        match member {
            Member::Ready(_, p) => Ok(Some(p.clone())),
            Member::Failed(name, e) => Err(CredentialsError::RefreshFailed {
                provider: name,
                source: e.clone(),
            }),
            Member::Profile(_, lazy) => {
                if let Some(p) = lazy.provider.get() {
                    return Ok(Some(p.clone()));
                }
                let text = match tokio::fs::read(&lazy.path).await {
                    Ok(bytes) => zeroize::Zeroizing::new(bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => {
                        return Err(CredentialsError::ProfileIo {
                            path: lazy.path.clone(),
                            source,
                        });
                    }
                };
                let text = std::str::from_utf8(&text).map_err(|_| CredentialsError::ProfileIo {
                    path: lazy.path.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"),
                })?;
                let (spec, label): (ProfileSpec, String) = match lazy.kind {
                    ProfileKind::Cli => (
                        cli_profile(&lazy.path, text, lazy.profile.as_deref())?,
                        lazy.profile.clone().unwrap_or_else(|| "current".into()),
                    ),
                    ProfileKind::Ini => {
                        let name = lazy.profile.as_deref().unwrap_or("default");
                        (ini_profile(&lazy.path, text, name)?, name.to_owned())
                    }
                };
                let provider = spec.into_provider(&self.ctx, &lazy.path, &label)?;
                let _ = lazy.provider.set(provider.clone());
                Ok(Some(provider))
            }
        }
    }
}

#[async_trait]
impl CredentialsProvider for DefaultChain {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let last = *self
            .last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = last
            && let Some(Some(p)) = self.member_provider(&self.members[i]).await.ok()
        {
            return p.credentials().await;
        }
        let mut failures = ChainFailures::default();
        for (i, member) in self.members.iter().enumerate() {
            let provider = match self.member_provider(member).await {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    failures.0.push((member.name(), e));
                    continue;
                }
            };
            match provider.credentials().await {
                Ok(c) => {
                    tracing::info!(member = member.name(), "default credential chain resolved");
                    *self
                        .last_used
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(i);
                    return Ok(c);
                }
                Err(e) => failures.0.push((member.name(), e)),
            }
        }
        Err(CredentialsError::ChainExhausted { failures })
    }

    fn name(&self) -> &'static str {
        "default_chain"
    }

    fn last_refresh_error(&self) -> Option<Arc<CredentialsError>> {
        let last = (*self.last_used.lock().ok()?)?;
        match &self.members[last] {
            Member::Ready(_, p) => p.last_refresh_error(),
            Member::Profile(_, lazy) => lazy.provider.get()?.last_refresh_error(),
            Member::Failed(..) => None,
        }
    }
}
