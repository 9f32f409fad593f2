//! Credentials profile files of the default chain, parsed into a [`ProfileSpec`] (pure) and
//! turned into providers by [`ProfileSpec::into_provider`]:
//!
//! * `~/.alibabacloud/credentials` (or `ALIBABA_CLOUD_CREDENTIALS_FILE`): INI, section
//!   `ALIBABA_CLOUD_PROFILE` or `default`, `type` = `access_key`, `ram_role_arn`,
//!   `oidc_role_arn` or `ecs_ram_role` (`credentials-go` `providers/profile.go`,
//!   `alibabacloud_credentials/provider/profile.py`; `rsa_key_pair` is not supported).
//! * `~/.aliyun/config.json` (or `ALIBABA_CLOUD_CONFIG_FILE`): the Alibaba Cloud CLI's
//!   configuration, profile `ALIBABA_CLOUD_PROFILE` or `current`, `mode` = `AK`, `StsToken`,
//!   `RamRoleArn`, `EcsRamRole`, `OIDC` or `ChainableRamRoleArn` (`credentials-go`
//!   `providers/cli_profile.go`; CloudSSO, OAuth and External are not supported).
//!
//! Errors name the file, the profile and the field, never a value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::assume_role::AssumeRole;
use super::builder::ProviderContext;
use super::ecs::{EcsMetadataConfig, EcsRamRole};
use super::oidc::{OidcRole, OidcToken};
use super::refresh::Refreshing;
use super::sts::{AssumeRoleRequest, StsEndpointConfig};
use super::{Credentials, CredentialsError, CredentialsProvider, StaticCredentials};
use crate::api::DEFAULT_SESSION_NAME;
use crate::value::SecretString;

/// One parsed profile. `Debug` hides secrets.
#[derive(Clone, Debug)]
pub enum ProfileSpec {
    /// A permanent AccessKey.
    AccessKey {
        /// AccessKeyId.
        id: String,
        /// AccessKeySecret.
        secret: SecretString,
    },
    /// Fixed STS credentials.
    StsToken {
        /// AccessKeyId.
        id: String,
        /// AccessKeySecret.
        secret: SecretString,
        /// SecurityToken.
        token: SecretString,
    },
    /// `AssumeRole` with the credentials of `source`.
    RamRoleArn {
        /// The profile whose credentials sign the call.
        source: Box<ProfileSpec>,
        /// Role ARN.
        role_arn: String,
        /// Session name (default `kmsync`).
        session_name: Option<String>,
        /// DurationSeconds.
        duration_seconds: Option<u64>,
        /// STS region / VPC endpoint of this profile.
        sts: StsEndpointConfig,
        /// Policy.
        policy: Option<String>,
        /// ExternalId.
        external_id: Option<String>,
    },
    /// `AssumeRoleWithOIDC` with a token file.
    Oidc {
        /// Role ARN.
        role_arn: String,
        /// OIDC provider ARN.
        oidc_provider_arn: String,
        /// Token file.
        token_file: PathBuf,
        /// Session name.
        session_name: Option<String>,
        /// DurationSeconds.
        duration_seconds: Option<u64>,
        /// STS region / VPC endpoint of this profile.
        sts: StsEndpointConfig,
    },
    /// The ECS instance role.
    EcsRamRole {
        /// Role name; `None` asks the metadata server.
        role_name: Option<String>,
    },
}

fn profile_error(path: &Path, profile: &str, reason: impl Into<String>) -> CredentialsError {
    CredentialsError::Profile {
        path: path.to_owned(),
        profile: profile.to_owned(),
        reason: reason.into(),
    }
}

/// Parses INI text into sections of `key = value` (keys lower-cased, values trimmed, text after
/// ` #` or ` ;` dropped as in Python's reader, `#`/`;` comment lines skipped).
///
/// # Errors
/// The 1-based number of the first line that is neither a section, a pair, a comment nor blank.
pub fn parse_ini(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, usize> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (Some(section), Some((key, value))) = (&current, line.split_once('=')) else {
            return Err(i + 1);
        };
        let value = value.split(" #").next().unwrap_or_default();
        let value = value.split(" ;").next().unwrap_or_default();
        sections
            .entry(section.clone())
            .or_default()
            .insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    Ok(sections)
}

/// The profile `name` of an INI credentials file (`text` read from `path`).
///
/// # Errors
/// [`CredentialsError::Profile`]: syntax error, no such section, missing or empty field,
/// unsupported `type`.
pub fn ini_profile(path: &Path, text: &str, name: &str) -> Result<ProfileSpec, CredentialsError> {
    let sections = parse_ini(text)
        .map_err(|line| profile_error(path, name, format!("line {line} is not valid INI")))?;
    let section = sections
        .get(name)
        .ok_or_else(|| profile_error(path, name, "no such section"))?;
    let get = |key: &'static str| {
        section
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| profile_error(path, name, format!("{key} is missing or empty")))
    };
    let opt = |key: &str| section.get(key).filter(|v| !v.is_empty()).cloned();
    let kind = get("type")?;
    match kind.as_str() {
        "access_key" => Ok(ProfileSpec::AccessKey {
            id: get("access_key_id")?,
            secret: get("access_key_secret")?.into(),
        }),
        "ram_role_arn" => Ok(ProfileSpec::RamRoleArn {
            source: Box::new(ProfileSpec::AccessKey {
                id: get("access_key_id")?,
                secret: get("access_key_secret")?.into(),
            }),
            role_arn: get("role_arn")?,
            session_name: opt("role_session_name"),
            duration_seconds: None,
            sts: StsEndpointConfig::default(),
            policy: opt("policy"),
            external_id: None,
        }),
        "oidc_role_arn" => Ok(ProfileSpec::Oidc {
            role_arn: get("role_arn")?,
            oidc_provider_arn: get("oidc_provider_arn")?,
            token_file: get("oidc_token_file_path")?.into(),
            session_name: opt("role_session_name"),
            duration_seconds: None,
            sts: StsEndpointConfig::default(),
        }),
        "ecs_ram_role" => Ok(ProfileSpec::EcsRamRole {
            role_name: opt("role_name"),
        }),
        other => Err(profile_error(
            path,
            name,
            format!(
                "type {other:?} is not supported (use access_key, ram_role_arn, oidc_role_arn or ecs_ram_role)"
            ),
        )),
    }
}

#[derive(Deserialize)]
struct CliConfig {
    #[serde(default)]
    current: String,
    #[serde(default)]
    profiles: Vec<CliProfile>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CliProfile {
    name: String,
    mode: String,
    access_key_id: String,
    access_key_secret: String,
    sts_token: String,
    ram_role_arn: String,
    ram_session_name: String,
    expired_seconds: u64,
    sts_region: String,
    enable_vpc: bool,
    source_profile: String,
    ram_role_name: String,
    oidc_token_file: String,
    oidc_provider_arn: String,
    policy: String,
    external_id: String,
}

/// The profile `name` (default: the file's `current`) of an Alibaba Cloud CLI `config.json`.
///
/// # Errors
/// [`CredentialsError::Profile`]: invalid JSON (position only), no such profile, missing
/// fields, unsupported mode, a `ChainableRamRoleArn` cycle.
pub fn cli_profile(
    path: &Path,
    text: &str,
    name: Option<&str>,
) -> Result<ProfileSpec, CredentialsError> {
    let config: CliConfig = serde_json::from_str(text).map_err(|e| {
        profile_error(
            path,
            name.unwrap_or(""),
            format!(
                "not valid CLI configuration JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let name = name
        .filter(|n| !n.is_empty())
        .unwrap_or(config.current.as_str())
        .to_owned();
    cli_spec(path, &config, &name, 0)
}

fn cli_spec(
    path: &Path,
    config: &CliConfig,
    name: &str,
    depth: usize,
) -> Result<ProfileSpec, CredentialsError> {
    if depth > 8 {
        return Err(profile_error(
            path,
            name,
            "ChainableRamRoleArn source_profile chain is longer than 8 (a cycle?)",
        ));
    }
    let p = config
        .profiles
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| profile_error(path, name, "no such profile"))?;
    let need = |field: &'static str, value: &str| {
        if value.is_empty() {
            Err(profile_error(
                path,
                name,
                format!("{field} is missing or empty"),
            ))
        } else {
            Ok(value.to_owned())
        }
    };
    let opt = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let sts = StsEndpointConfig {
        url: None,
        region: opt(&p.sts_region),
        vpc: p.enable_vpc,
    };
    let duration = (p.expired_seconds > 0).then_some(p.expired_seconds);
    match p.mode.as_str() {
        "AK" => Ok(ProfileSpec::AccessKey {
            id: need("access_key_id", &p.access_key_id)?,
            secret: need("access_key_secret", &p.access_key_secret)?.into(),
        }),
        "StsToken" => Ok(ProfileSpec::StsToken {
            id: need("access_key_id", &p.access_key_id)?,
            secret: need("access_key_secret", &p.access_key_secret)?.into(),
            token: need("sts_token", &p.sts_token)?.into(),
        }),
        "RamRoleArn" => Ok(ProfileSpec::RamRoleArn {
            source: Box::new(ProfileSpec::AccessKey {
                id: need("access_key_id", &p.access_key_id)?,
                secret: need("access_key_secret", &p.access_key_secret)?.into(),
            }),
            role_arn: need("ram_role_arn", &p.ram_role_arn)?,
            session_name: opt(&p.ram_session_name),
            duration_seconds: duration,
            sts,
            policy: opt(&p.policy),
            external_id: opt(&p.external_id),
        }),
        "ChainableRamRoleArn" => Ok(ProfileSpec::RamRoleArn {
            source: Box::new(cli_spec(
                path,
                config,
                &need("source_profile", &p.source_profile)?,
                depth + 1,
            )?),
            role_arn: need("ram_role_arn", &p.ram_role_arn)?,
            session_name: opt(&p.ram_session_name),
            duration_seconds: duration,
            sts,
            policy: opt(&p.policy),
            external_id: opt(&p.external_id),
        }),
        "OIDC" => Ok(ProfileSpec::Oidc {
            role_arn: need("ram_role_arn", &p.ram_role_arn)?,
            oidc_provider_arn: need("oidc_provider_arn", &p.oidc_provider_arn)?,
            token_file: need("oidc_token_file", &p.oidc_token_file)?.into(),
            session_name: opt(&p.ram_session_name),
            duration_seconds: duration,
            sts,
        }),
        "EcsRamRole" => Ok(ProfileSpec::EcsRamRole {
            role_name: opt(&p.ram_role_name),
        }),
        other => Err(profile_error(
            path,
            name,
            format!(
                "mode {other:?} is not supported (use AK, StsToken, RamRoleArn, ChainableRamRoleArn, OIDC or EcsRamRole)"
            ),
        )),
    }
}

impl ProfileSpec {
    /// The provider stack for this profile. `path`/`profile` only label errors.
    ///
    /// # Errors
    /// [`CredentialsError::Profile`] when a value is unusable (untrimmed key, bad STS region);
    /// [`CredentialsError::MetadataConfig`] for a bad metadata URL.
    pub fn into_provider(
        self,
        ctx: &ProviderContext,
        path: &Path,
        profile: &str,
    ) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
        let wrap = |e: CredentialsError| profile_error(path, profile, super::error_chain(&e));
        Ok(match self {
            Self::AccessKey { id, secret } => Arc::new(
                StaticCredentials::with_name(Credentials::access_key(id, secret), "profile")
                    .map_err(wrap)?,
            ),
            Self::StsToken { id, secret, token } => Arc::new(
                StaticCredentials::with_name(Credentials::sts(id, secret, token, None), "profile")
                    .map_err(wrap)?,
            ),
            Self::RamRoleArn {
                source,
                role_arn,
                session_name,
                duration_seconds,
                sts,
                policy,
                external_id,
            } => {
                let upstream = source.into_provider(ctx, path, profile)?;
                let client = ctx
                    .sts_client(&sts)
                    .map_err(|e| profile_error(path, profile, e.to_string()))?;
                Arc::new(Refreshing::new(
                    AssumeRole::new(
                        client,
                        upstream,
                        AssumeRoleRequest {
                            role_arn,
                            role_session_name: session_name
                                .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned()),
                            duration_seconds,
                            policy,
                            external_id,
                        },
                        "assume_role",
                    ),
                    ctx.refresh,
                ))
            }
            Self::Oidc {
                role_arn,
                oidc_provider_arn,
                token_file,
                session_name,
                duration_seconds,
                sts,
            } => {
                let client = ctx
                    .sts_client(&sts)
                    .map_err(|e| profile_error(path, profile, e.to_string()))?;
                Arc::new(Refreshing::new(
                    OidcRole::new(
                        client,
                        OidcToken::File(vec![token_file]),
                        role_arn,
                        oidc_provider_arn,
                        session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned()),
                        duration_seconds,
                    ),
                    ctx.refresh,
                ))
            }
            Self::EcsRamRole { role_name } => {
                let config = EcsMetadataConfig {
                    role_name: role_name.or_else(|| ctx.metadata.role_name.clone()),
                    ..ctx.metadata.clone()
                };
                Arc::new(Refreshing::new(EcsRamRole::new(config)?, ctx.refresh))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INI: &str = "\
# a comment
[default]
enable = true
type = access_key
access_key_id = foo
access_key_secret = bar-marker   # trailing comment

[ram]
type = ram_role_arn
access_key_id = foo
access_key_secret = bar
role_arn = acs:ram::1:role/r
role_session_name = s

[oidc]
type = oidc_role_arn
role_arn = acs:ram::1:role/r
oidc_provider_arn = acs:ram::1:oidc-provider/p
oidc_token_file_path = /tmp/token

[ecs]
type = ecs_ram_role
role_name = worker

[emptyak]
type = access_key
access_key_id =
access_key_secret = bar

[rsa]
type = rsa_key_pair
";

    fn p() -> &'static Path {
        Path::new("/home/u/.alibabacloud/credentials")
    }

    #[test]
    fn ini_profiles_of_every_supported_type_parse() {
        match ini_profile(p(), INI, "default").unwrap() {
            ProfileSpec::AccessKey { id, secret } => {
                assert_eq!(id, "foo");
                assert_eq!(secret.expose(), "bar-marker");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ini_profile(p(), INI, "ram").unwrap(),
            ProfileSpec::RamRoleArn { ref role_arn, ref session_name, .. }
                if role_arn == "acs:ram::1:role/r" && session_name.as_deref() == Some("s")
        ));
        assert!(matches!(
            ini_profile(p(), INI, "oidc").unwrap(),
            ProfileSpec::Oidc { ref token_file, .. } if token_file == Path::new("/tmp/token")
        ));
        assert!(matches!(
            ini_profile(p(), INI, "ecs").unwrap(),
            ProfileSpec::EcsRamRole { role_name: Some(ref r) } if r == "worker"
        ));
    }

    #[test]
    fn bad_ini_profiles_name_file_profile_and_field_only() {
        let err = ini_profile(p(), INI, "emptyak").unwrap_err();
        assert_eq!(
            err.to_string(),
            "profile \"emptyak\" in /home/u/.alibabacloud/credentials: access_key_id is missing or empty"
        );
        let err = ini_profile(p(), INI, "rsa").unwrap_err().to_string();
        assert!(
            err.contains("type \"rsa_key_pair\" is not supported"),
            "{err}"
        );
        let err = ini_profile(p(), INI, "nope").unwrap_err().to_string();
        assert!(err.ends_with("no such section"), "{err}");
        let err = ini_profile(p(), "[a]\nnot a pair\n", "a")
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("line 2 is not valid INI"), "{err}");
        assert!(!format!("{:?}", ini_profile(p(), INI, "default").unwrap()).contains("bar-marker"));
    }

    const CLI: &str = r#"{
        "current": "AK",
        "profiles": [
            {"name": "AK", "mode": "AK", "access_key_id": "akid", "access_key_secret": "secret"},
            {"name": "Sts", "mode": "StsToken", "access_key_id": "a", "access_key_secret": "b", "sts_token": "c"},
            {"name": "Ram", "mode": "RamRoleArn", "access_key_id": "a", "access_key_secret": "b",
             "ram_role_arn": "acs:ram::1:role/r", "sts_region": "cn-hangzhou", "enable_vpc": true},
            {"name": "Chain", "mode": "ChainableRamRoleArn", "source_profile": "Ram", "ram_role_arn": "acs:ram::2:role/x"},
            {"name": "Loop", "mode": "ChainableRamRoleArn", "source_profile": "Loop", "ram_role_arn": "acs:ram::2:role/x"},
            {"name": "Oidc", "mode": "OIDC", "ram_role_arn": "acs:ram::1:role/r", "oidc_provider_arn": "acs:ram::1:oidc-provider/p", "oidc_token_file": "/t"},
            {"name": "Ecs", "mode": "EcsRamRole", "ram_role_name": "worker"},
            {"name": "Sso", "mode": "CloudSSO"}
        ]
    }"#;

    #[test]
    fn cli_profiles_follow_current_and_chain_sources() {
        let path = Path::new("/home/u/.aliyun/config.json");
        assert!(matches!(
            cli_profile(path, CLI, None).unwrap(),
            ProfileSpec::AccessKey { ref id, .. } if id == "akid"
        ));
        assert!(matches!(
            cli_profile(path, CLI, Some("Sts")).unwrap(),
            ProfileSpec::StsToken { .. }
        ));
        match cli_profile(path, CLI, Some("Chain")).unwrap() {
            ProfileSpec::RamRoleArn {
                source, role_arn, ..
            } => {
                assert_eq!(role_arn, "acs:ram::2:role/x");
                match *source {
                    ProfileSpec::RamRoleArn { sts, .. } => {
                        assert_eq!(sts.region.as_deref(), Some("cn-hangzhou"));
                        assert!(sts.vpc);
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        let err = cli_profile(path, CLI, Some("Loop"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than 8"), "{err}");
        let err = cli_profile(path, CLI, Some("Sso")).unwrap_err().to_string();
        assert!(err.contains("mode \"CloudSSO\" is not supported"), "{err}");
        assert!(matches!(
            cli_profile(path, CLI, Some("Oidc")).unwrap(),
            ProfileSpec::Oidc { .. }
        ));
        assert!(matches!(
            cli_profile(path, CLI, Some("Ecs")).unwrap(),
            ProfileSpec::EcsRamRole { .. }
        ));
        let err = cli_profile(path, "{", None).unwrap_err().to_string();
        assert!(err.contains("not valid CLI configuration JSON"), "{err}");
    }
}
