//! The emulator's seed file: access keys, RAM roles and secrets (YAML; see `docs/emulator.md`).
//!
//! ```yaml
//! region: cn-hangzhou              # default cn-hangzhou
//! account_id: "1234567890123456"   # default 1234567890123456
//! access_keys:
//!   - id: quickstart
//!     secret: quickstart-secret-not-real
//!     assumable_roles: ["acs:ram::1234567890123456:role/kmsync-reader"]
//!     allowed_secrets: ["*"]       # optional: names or prefixes ending in `*`
//! roles:
//!   - arn: acs:ram::1234567890123456:role/kmsync-reader
//!     allowed_secrets: ["app/*"]
//!     max_session_duration: 3600
//! secrets:
//!   - name: test1
//!     json: {name: demo}           # or text: / binary_base64: (one version, id `v1`)
//!     version_id: v1
//!     tags: {env: dev}
//!   - name: rotating
//!     versions:
//!       - {id: v1, text: old, stages: [ACSPrevious]}
//!       - {id: v2, text: new, stages: [ACSCurrent]}
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::instance::SeedClientKey;
pub use super::oos::SeedOosParameter;

/// Default region of a seed.
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// Default account id of a seed.
pub const DEFAULT_ACCOUNT_ID: &str = "1234567890123456";
/// The stage KMS returns by default.
pub const ACS_CURRENT: &str = "ACSCurrent";
/// The stage of the version before the current one.
pub const ACS_PREVIOUS: &str = "ACSPrevious";

/// Why a seed was refused.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file could not be read.
    #[error("could not read seed file {path}")]
    Io {
        /// File path.
        path: String,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid YAML of the seed shape.
    #[error("seed is not valid YAML of the expected shape")]
    Yaml {
        /// Parser error (positions and field names; seeds hold only fake test data).
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A semantic problem: duplicate names, a bad stage layout, unknown role, bad base64.
    #[error("invalid seed: {what}: {reason}")]
    Invalid {
        /// The object concerned (`secret "db"`, `access key "quickstart"`).
        what: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> SeedError {
    SeedError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

fn default_region() -> String {
    DEFAULT_REGION.to_owned()
}
fn default_account() -> String {
    DEFAULT_ACCOUNT_ID.to_owned()
}
fn default_type() -> String {
    "Generic".to_owned()
}
fn default_session() -> u64 {
    3600
}

/// The whole seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Region id used in ARNs.
    #[serde(default = "default_region")]
    pub region: String,
    /// Account id used in ARNs.
    #[serde(default = "default_account")]
    pub account_id: String,
    /// Permanent AccessKey pairs.
    #[serde(default)]
    pub access_keys: Vec<SeedAccessKey>,
    /// RAM roles that keys may assume through STS `AssumeRole`.
    #[serde(default)]
    pub roles: Vec<SeedRole>,
    /// KMS secrets.
    #[serde(default)]
    pub secrets: Vec<SeedSecret>,
    /// ClientKeys accepted by the emulated KMS instance gateway.
    #[serde(default)]
    pub client_keys: Vec<SeedClientKey>,
    /// OOS encrypted parameters.
    #[serde(default)]
    pub oos_parameters: Vec<SeedOosParameter>,
    /// OIDC identity providers for STS `AssumeRoleWithOIDC` (RRSA).
    #[serde(default)]
    pub oidc_providers: Vec<SeedOidcProvider>,
    /// The role the ECS metadata server hands out (`--metadata-listen`).
    #[serde(default)]
    pub instance_role: Option<SeedInstanceRole>,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            region: default_region(),
            account_id: default_account(),
            access_keys: Vec::new(),
            roles: Vec::new(),
            secrets: Vec::new(),
            client_keys: Vec::new(),
            oos_parameters: Vec::new(),
            oidc_providers: Vec::new(),
            instance_role: None,
        }
    }
}

fn default_client_ids() -> Vec<String> {
    vec![crate::api::DEFAULT_TOKEN_AUDIENCE.to_owned()]
}
fn any_subject() -> Vec<String> {
    vec!["*".to_owned()]
}
fn default_min_session() -> u64 {
    900
}

/// A RAM OIDC identity provider (e.g. an ACK cluster's RRSA provider).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOidcProvider {
    /// `acs:ram::<account>:oidc-provider/<name>`.
    pub arn: String,
    /// The issuer URL tokens must carry in `iss`.
    pub issuer: String,
    /// Accepted audiences (`aud`), default `["sts.aliyuncs.com"]`.
    #[serde(default = "default_client_ids")]
    pub client_ids: Vec<String>,
    /// Public keys as a JWKS object (`{"keys": [{"kty": "RSA", "n", "e", "kid"}]}`). Absent:
    /// the emulator's built-in TEST ONLY key, with which the admin API mints tokens.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
}

/// Who may assume a role with an OIDC token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedOidcTrust {
    /// The OIDC provider ARN (must be in `oidc_providers`).
    pub provider: String,
    /// Token subjects (`sub`) allowed: exact, or prefixes ending in `*`
    /// (`system:serviceaccount:team-a:*`). Default `["*"]`: any subject of the provider.
    #[serde(default = "any_subject")]
    pub subjects: Vec<String>,
}

/// The ECS instance role served by the metadata server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedInstanceRole {
    /// The role (must be in `roles`); the metadata server reports its name.
    pub role_arn: String,
    /// Lifetime of the credentials it hands out, in seconds (default 3600; at least the role's
    /// `min_session_duration`). A new set is issued once less than half of it remains.
    #[serde(default = "default_session")]
    pub session_duration: u64,
    /// Refuse requests without an IMDSv2 token (IMDSv1 disabled).
    #[serde(default)]
    pub require_token: bool,
    /// Act like a server without IMDSv2: `PUT /latest/api/token` answers 404 (clients must
    /// fall back to requests without a token).
    #[serde(default)]
    pub tokens_unsupported: bool,
}

/// An AccessKey pair of a RAM user. `Debug` omits the secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAccessKey {
    /// AccessKeyId.
    pub id: String,
    /// AccessKeySecret (fake; seeds are test data).
    pub secret: String,
    /// Role ARNs this key may assume.
    #[serde(default)]
    pub assumable_roles: Vec<String>,
    /// Secret names (or prefixes ending in `*`) this key may read; all when absent.
    #[serde(default)]
    pub allowed_secrets: Option<Vec<String>>,
}

/// A RAM role.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRole {
    /// `acs:ram::<account>:role/<name>`.
    pub arn: String,
    /// Secret names (or prefixes ending in `*`) sessions of this role may read; all when absent.
    #[serde(default)]
    pub allowed_secrets: Option<Vec<String>>,
    /// Longest `DurationSeconds` accepted, in seconds (900–43200, default 3600).
    #[serde(default = "default_session")]
    pub max_session_duration: u64,
    /// Shortest `DurationSeconds` accepted, in seconds: 900 like STS (default), or lower
    /// (down to 1) — TEST ONLY, so that tests can watch credentials expire.
    #[serde(default = "default_min_session")]
    pub min_session_duration: u64,
    /// Roles that sessions of this role may assume with `AssumeRole` (role chaining, e.g. a
    /// `remoteRamRoleARN` hop).
    #[serde(default)]
    pub assumable_roles: Vec<String>,
    /// OIDC providers (and subjects) trusted to assume this role with `AssumeRoleWithOIDC`.
    #[serde(default)]
    pub oidc_trust: Vec<SeedOidcTrust>,
}

/// The value of one version: exactly one of `text`, `json` (stored as its JSON text) or
/// `binary_base64`. `Debug` omits the value.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedData {
    /// A text value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A JSON value, stored and returned as compact JSON text (`SecretDataType` `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// A binary value in standard base64 (`SecretDataType` `binary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_base64: Option<String>,
}

impl SeedVersion {
    /// The version's value fields.
    pub fn data(&self) -> SeedData {
        SeedData {
            text: self.text.clone(),
            json: self.json.clone(),
            binary_base64: self.binary_base64.clone(),
        }
    }
}

impl std::fmt::Debug for SeedAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedAccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("assumable_roles", &self.assumable_roles)
            .field("allowed_secrets", &self.allowed_secrets)
            .finish()
    }
}

fn value_kind(text: bool, json: bool, binary: bool) -> &'static str {
    match (text, json, binary) {
        (false, false, false) => "<none>",
        (true, false, false) => "<redacted text>",
        (false, true, false) => "<redacted json>",
        (false, false, true) => "<redacted binary>",
        _ => "<several values>",
    }
}

impl std::fmt::Debug for SeedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(value_kind(
            self.text.is_some(),
            self.json.is_some(),
            self.binary_base64.is_some(),
        ))
    }
}

impl std::fmt::Debug for SeedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedVersion")
            .field("id", &self.id)
            .field("value", &self.data())
            .field("stages", &self.stages)
            .field("create_time", &self.create_time)
            .finish()
    }
}

impl std::fmt::Debug for SeedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedSecret")
            .field("name", &self.name)
            .field("secret_type", &self.secret_type)
            .field("value", &self.data())
            .field("version_id", &self.version_id)
            .field("versions", &self.versions)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

/// A decoded version value.
#[derive(Clone, PartialEq, Eq)]
pub enum VersionData {
    /// Text (`SecretDataType=text`).
    Text(crate::value::SecretString),
    /// Bytes (`SecretDataType=binary`, base64 on the wire).
    Binary(crate::value::SecretBytes),
}

impl std::fmt::Debug for VersionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(_) => f.write_str("Text(<redacted>)"),
            Self::Binary(b) => write!(f, "Binary(<redacted, {} bytes>)", b.len()),
        }
    }
}

impl SeedData {
    /// Decodes into [`VersionData`].
    ///
    /// # Errors
    /// [`SeedError::Invalid`] unless exactly one field is set and base64 is valid.
    pub fn decode(&self, what: &str) -> Result<VersionData, SeedError> {
        match (&self.text, &self.json, &self.binary_base64) {
            (Some(t), None, None) => Ok(VersionData::Text(t.clone().into())),
            (None, Some(j), None) => Ok(VersionData::Text(j.to_string().into())),
            (None, None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map(|bytes| VersionData::Binary(bytes.into()))
                .map_err(|_| invalid(what, "binary_base64 is not valid standard base64")),
            _ => Err(invalid(
                what,
                "needs exactly one of text, json, binary_base64",
            )),
        }
    }

    fn is_empty(&self) -> bool {
        self.text.is_none() && self.json.is_none() && self.binary_base64.is_none()
    }
}

/// One version of a secret. `Debug` omits the value.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedVersion {
    /// VersionId.
    pub id: String,
    /// A text value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A JSON value (stored as compact JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// A binary value in standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_base64: Option<String>,
    /// Stages (`ACSCurrent`, `ACSPrevious`, custom). A stage may label one version only.
    #[serde(default)]
    pub stages: Vec<String>,
    /// CreateTime (default: the secret's create time).
    #[serde(default)]
    pub create_time: Option<DateTime<Utc>>,
}

/// Rotation metadata of a managed secret (returned, not acted upon).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRotation {
    /// `AutomaticRotation`: `Enabled`, `Disabled` or `Invalid`.
    #[serde(default = "enabled")]
    pub automatic_rotation: String,
    /// `RotationInterval`, e.g. `604800s`.
    #[serde(default)]
    pub rotation_interval: Option<String>,
    /// `LastRotationDate`.
    #[serde(default)]
    pub last_rotation_date: Option<DateTime<Utc>>,
    /// `NextRotationDate`.
    #[serde(default)]
    pub next_rotation_date: Option<DateTime<Utc>>,
}

fn enabled() -> String {
    "Enabled".to_owned()
}

/// A secret. `Debug` omits values.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSecret {
    /// SecretName.
    pub name: String,
    /// SecretType: `Generic` (default), `Rds`, `Redis`, `RAMCredentials`, `ECS`, `PolarDB`.
    #[serde(rename = "type", default = "default_type")]
    pub secret_type: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// CreateTime (default: when the emulator started).
    #[serde(default)]
    pub create_time: Option<DateTime<Utc>>,
    /// ExtendedConfig of a managed secret: a JSON object (or its text).
    #[serde(default)]
    pub extended_config: Option<serde_json::Value>,
    /// Rotation metadata (managed secrets).
    #[serde(default)]
    pub rotation: Option<SeedRotation>,
    /// DKMSInstanceId.
    #[serde(default)]
    pub dkms_instance_id: Option<String>,
    /// EncryptionKeyId.
    #[serde(default)]
    pub encryption_key_id: Option<String>,
    /// OwingService (managed secrets, e.g. `rds`).
    #[serde(default)]
    pub owing_service: Option<String>,
    /// PlannedDeleteTime.
    #[serde(default)]
    pub planned_delete_time: Option<DateTime<Utc>>,
    /// Shorthand for a single version: a text value ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// ... or a JSON value (stored as compact JSON text) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// ... or a binary value in standard base64 ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_base64: Option<String>,
    /// ... and its id (default `v1`).
    #[serde(default)]
    pub version_id: Option<String>,
    /// Versions (instead of the shorthand).
    #[serde(default)]
    pub versions: Vec<SeedVersion>,
}

impl SeedSecret {
    /// The single-version shorthand's value fields.
    pub fn data(&self) -> SeedData {
        SeedData {
            text: self.text.clone(),
            json: self.json.clone(),
            binary_base64: self.binary_base64.clone(),
        }
    }

    /// A Generic text secret with one version `v1` labelled `ACSCurrent`.
    pub fn text(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self::with_data(
            name,
            SeedData {
                text: Some(text.into()),
                ..SeedData::default()
            },
        )
    }

    /// A Generic binary secret with one version `v1` labelled `ACSCurrent`.
    pub fn binary(name: impl Into<String>, bytes: &[u8]) -> Self {
        Self::with_data(
            name,
            SeedData {
                binary_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                ..SeedData::default()
            },
        )
    }

    fn with_data(name: impl Into<String>, data: SeedData) -> Self {
        let SeedData {
            text,
            json,
            binary_base64,
        } = data;
        Self {
            name: name.into(),
            secret_type: default_type(),
            description: None,
            tags: BTreeMap::new(),
            create_time: None,
            extended_config: None,
            rotation: None,
            dkms_instance_id: None,
            encryption_key_id: None,
            owing_service: None,
            planned_delete_time: None,
            text,
            json,
            binary_base64,
            version_id: None,
            versions: Vec::new(),
        }
    }

    /// The versions, with the single-version shorthand expanded (`v1`, `ACSCurrent`).
    ///
    /// # Errors
    /// [`SeedError::Invalid`] when both or neither forms are used.
    pub fn expanded_versions(&self) -> Result<Vec<SeedVersion>, SeedError> {
        let what = format!("secret {:?}", self.name);
        match (self.data().is_empty(), self.versions.is_empty()) {
            (false, true) => Ok(vec![SeedVersion {
                id: self.version_id.clone().unwrap_or_else(|| "v1".to_owned()),
                text: self.text.clone(),
                json: self.json.clone(),
                binary_base64: self.binary_base64.clone(),
                stages: vec![ACS_CURRENT.to_owned()],
                create_time: self.create_time,
            }]),
            (true, false) => {
                if self.version_id.is_some() {
                    return Err(invalid(
                        what,
                        "version_id is only for the single-version form",
                    ));
                }
                let mut versions = self.versions.clone();
                if versions.len() == 1 && versions[0].stages.is_empty() {
                    versions[0].stages.push(ACS_CURRENT.to_owned());
                }
                Ok(versions)
            }
            (false, false) => Err(invalid(
                what,
                "use either a value (text/json/binary_base64) or versions, not both",
            )),
            (true, true) => Err(invalid(what, "has no value and no versions")),
        }
    }
}

impl Seed {
    /// Parses and validates YAML.
    ///
    /// # Errors
    /// [`SeedError::Yaml`] or [`SeedError::Invalid`].
    pub fn from_yaml_str(yaml: &str) -> Result<Self, SeedError> {
        let seed: Seed =
            serde_yaml_ng::from_str(yaml).map_err(|source| SeedError::Yaml { source })?;
        seed.validate()?;
        Ok(seed)
    }

    /// Reads, parses and validates a YAML file.
    ///
    /// # Errors
    /// [`SeedError`].
    pub fn from_file(path: &Path) -> Result<Self, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    /// Adds an access key (builder style, for tests).
    pub fn with_access_key(mut self, id: &str, secret: &str) -> Self {
        self.access_keys.push(SeedAccessKey {
            id: id.to_owned(),
            secret: secret.to_owned(),
            assumable_roles: Vec::new(),
            allowed_secrets: None,
        });
        self
    }

    /// Adds a secret (builder style, for tests).
    pub fn with_secret(mut self, secret: SeedSecret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Adds a KMS instance ClientKey (builder style, for tests).
    pub fn with_client_key(mut self, key: SeedClientKey) -> Self {
        self.client_keys.push(key);
        self
    }

    /// Adds an OOS parameter (builder style, for tests).
    pub fn with_oos_parameter(mut self, parameter: SeedOosParameter) -> Self {
        self.oos_parameters.push(parameter);
        self
    }

    /// Checks names, stages, roles and values.
    ///
    /// # Errors
    /// [`SeedError::Invalid`] naming the object and the problem.
    pub fn validate(&self) -> Result<(), SeedError> {
        let mut role_arns = HashSet::new();
        for role in &self.roles {
            let what = format!("role {:?}", role.arn);
            let prefix = format!("acs:ram::{}:role/", self.account_id);
            if !role.arn.starts_with(&prefix) || role.arn.len() == prefix.len() {
                return Err(invalid(what, format!("ARN must look like {prefix}<name>")));
            }
            if !(900..=43200).contains(&role.max_session_duration) {
                return Err(invalid(
                    what,
                    "max_session_duration must be 900 to 43200 seconds",
                ));
            }
            if !(1..=900).contains(&role.min_session_duration) {
                return Err(invalid(
                    what,
                    "min_session_duration must be 1 to 900 seconds",
                ));
            }
            if !role_arns.insert(role.arn.to_ascii_lowercase()) {
                return Err(invalid(what, "is defined twice"));
            }
        }
        self.validate_identity(&role_arns)?;
        let mut key_ids = HashSet::new();
        for key in &self.access_keys {
            let what = format!("access key {:?}", key.id);
            if key.id.is_empty() || key.secret.is_empty() {
                return Err(invalid(what, "id and secret must not be empty"));
            }
            if key.id.starts_with("STS.") {
                return Err(invalid(
                    what,
                    "ids starting with STS. are reserved for STS credentials",
                ));
            }
            if !key_ids.insert(key.id.clone()) {
                return Err(invalid(what, "is defined twice"));
            }
            for role in &key.assumable_roles {
                if !role_arns.contains(&role.to_ascii_lowercase()) {
                    return Err(invalid(
                        what,
                        format!("may assume {role:?}, which is not in roles"),
                    ));
                }
            }
        }
        let mut client_key_ids = HashSet::new();
        for key in &self.client_keys {
            let what = format!("client key {:?}", key.key_id);
            if key.key_id.trim().is_empty() || key.key_id.trim() != key.key_id {
                return Err(invalid(what, "key_id must be non-empty and trimmed"));
            }
            if !client_key_ids.insert(key.key_id.clone()) {
                return Err(invalid(what, "is defined twice"));
            }
            if key.certificate_pem.is_some() && key.password.is_some() {
                return Err(invalid(
                    what,
                    "password is only for keys the emulator generates (without certificate_pem)",
                ));
            }
        }
        let mut parameter_names = HashSet::new();
        for parameter in &self.oos_parameters {
            super::oos::build_parameter(parameter, Utc::now())?;
            if !parameter_names.insert(parameter.name.clone()) {
                return Err(invalid(
                    format!("OOS parameter {:?}", parameter.name),
                    "is defined twice",
                ));
            }
        }
        let mut names = HashSet::new();
        for secret in &self.secrets {
            validate_secret(secret)?;
            if !names.insert(secret.name.clone()) {
                return Err(invalid(
                    format!("secret {:?}", secret.name),
                    "is defined twice",
                ));
            }
        }
        Ok(())
    }
}

impl Seed {
    /// Checks OIDC providers, role chaining and trust, and the instance role.
    fn validate_identity(&self, role_arns: &HashSet<String>) -> Result<(), SeedError> {
        let mut providers = HashSet::new();
        for p in &self.oidc_providers {
            let what = format!("oidc provider {:?}", p.arn);
            let prefix = format!("acs:ram::{}:oidc-provider/", self.account_id);
            if !p.arn.starts_with(&prefix) || p.arn.len() == prefix.len() {
                return Err(invalid(what, format!("ARN must look like {prefix}<name>")));
            }
            if p.issuer.is_empty() || p.client_ids.is_empty() {
                return Err(invalid(what, "issuer and client_ids must not be empty"));
            }
            if let Some(jwks) = &p.jwks {
                super::oidc::keys_from_jwks(jwks).map_err(|reason| invalid(&what, reason))?;
            }
            if !providers.insert(p.arn.to_ascii_lowercase()) {
                return Err(invalid(what, "is defined twice"));
            }
        }
        for role in &self.roles {
            let what = format!("role {:?}", role.arn);
            for target in &role.assumable_roles {
                if !role_arns.contains(&target.to_ascii_lowercase()) {
                    return Err(invalid(
                        &what,
                        format!("may assume {target:?}, which is not in roles"),
                    ));
                }
            }
            for trust in &role.oidc_trust {
                if !providers.contains(&trust.provider.to_ascii_lowercase()) {
                    return Err(invalid(
                        &what,
                        format!(
                            "trusts {:?}, which is not in oidc_providers",
                            trust.provider
                        ),
                    ));
                }
            }
        }
        if let Some(ir) = &self.instance_role {
            let what = "instance_role";
            let Some(role) = self
                .roles
                .iter()
                .find(|r| r.arn.eq_ignore_ascii_case(&ir.role_arn))
            else {
                return Err(invalid(
                    what,
                    format!("role {:?} is not in roles", ir.role_arn),
                ));
            };
            if ir.session_duration < role.min_session_duration || ir.session_duration > 43200 {
                return Err(invalid(
                    what,
                    "session_duration must be between the role's min_session_duration and 43200",
                ));
            }
        }
        Ok(())
    }
}

/// Validates one secret on its own (also used by the admin API).
///
/// # Errors
/// [`SeedError::Invalid`].
pub fn validate_secret(secret: &SeedSecret) -> Result<(), SeedError> {
    let what = format!("secret {:?}", secret.name);
    if secret.name.is_empty() || secret.name.len() > 192 {
        return Err(invalid(what, "name must be 1 to 192 characters"));
    }
    let versions = secret.expanded_versions()?;
    let mut ids = HashSet::new();
    let mut stages = HashSet::new();
    for v in &versions {
        let vwhat = format!("{what} version {:?}", v.id);
        if v.id.is_empty() || !ids.insert(v.id.clone()) {
            return Err(invalid(vwhat, "version ids must be non-empty and unique"));
        }
        v.data().decode(&vwhat)?;
        for stage in &v.stages {
            if !stages.insert(stage.clone()) {
                return Err(invalid(
                    vwhat,
                    format!("stage {stage:?} labels more than one version"),
                ));
            }
        }
    }
    if !stages.contains(ACS_CURRENT) {
        return Err(invalid(what, "no version is labelled ACSCurrent"));
    }
    if let Some(serde_json::Value::String(s)) = &secret.extended_config
        && serde_json::from_str::<serde_json::Value>(s).is_err()
    {
        return Err(invalid(what, "extended_config text is not JSON"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_and_versioned_secrets_parse() {
        let seed = Seed::from_yaml_str(
            r#"
access_keys:
  - {id: ak1, secret: s1}
secrets:
  - name: test1
    json: {name: demo, friends: [{name: a}]}
    version_id: v1
    tags: {env: dev}
  - name: bin
    binary_base64: AAEC
  - name: two
    versions:
      - {id: v1, text: old, stages: [ACSPrevious]}
      - {id: v2, text: new, stages: [ACSCurrent]}
"#,
        )
        .unwrap();
        assert_eq!(seed.region, "cn-hangzhou");
        let v = seed.secrets[0].expanded_versions().unwrap();
        assert_eq!(v[0].id, "v1");
        assert_eq!(v[0].stages, vec!["ACSCurrent"]);
        match v[0].data().decode("x").unwrap() {
            VersionData::Text(t) => {
                assert_eq!(t.expose(), r#"{"friends":[{"name":"a"}],"name":"demo"}"#)
            }
            VersionData::Binary(_) => panic!("expected text"),
        }
        match seed.secrets[1].expanded_versions().unwrap()[0]
            .data()
            .decode("x")
            .unwrap()
        {
            VersionData::Binary(b) => assert_eq!(b.expose(), &[0, 1, 2]),
            VersionData::Text(_) => panic!("expected binary"),
        }
        assert_eq!(seed.secrets[2].expanded_versions().unwrap().len(), 2);
    }

    #[test]
    fn invalid_seeds_are_refused_with_the_object_named() {
        let cases = [
            ("secrets: [{name: a}]", "has no value and no versions"),
            (
                "secrets: [{name: a, text: x, binary_base64: AA==}]",
                "exactly one",
            ),
            ("secrets: [{name: a, binary_base64: '!!'}]", "base64"),
            ("secrets: [{name: a, text: x}, {name: a, text: y}]", "twice"),
            (
                "secrets: [{name: a, versions: [{id: v1, text: x, stages: [ACSCurrent]}, {id: v2, text: y, stages: [ACSCurrent]}]}]",
                "more than one version",
            ),
            (
                "secrets: [{name: a, versions: [{id: v1, text: x, stages: [Custom]}]}]",
                "ACSCurrent",
            ),
            (
                "access_keys: [{id: k, secret: s, assumable_roles: [nope]}]",
                "not in roles",
            ),
            ("roles: [{arn: 'acs:ram::1:role/x'}]", "ARN must look like"),
            (
                "client_keys: [{key_id: KAAP.a}, {key_id: KAAP.a}]",
                "client key \"KAAP.a\": is defined twice",
            ),
            (
                "client_keys: [{key_id: KAAP.a, certificate_pem: x, password: p}]",
                "password is only for keys the emulator generates",
            ),
            (
                "oos_parameters: [{name: p, value: a, versions: [b]}]",
                "needs exactly one of value or versions",
            ),
            (
                "oos_parameters: [{name: p, value: a}, {name: p, value: b}]",
                "is defined twice",
            ),
            (
                "roles: [{arn: 'acs:ram::1234567890123456:role/x', min_session_duration: 0}]",
                "min_session_duration must be 1 to 900",
            ),
            (
                "roles: [{arn: 'acs:ram::1234567890123456:role/x', assumable_roles: [nope]}]",
                "may assume \"nope\", which is not in roles",
            ),
            (
                "roles: [{arn: 'acs:ram::1234567890123456:role/x', oidc_trust: [{provider: p}]}]",
                "not in oidc_providers",
            ),
            (
                "oidc_providers: [{arn: 'acs:ram::1:oidc-provider/p', issuer: i}]",
                "ARN must look like acs:ram::1234567890123456:oidc-provider/",
            ),
            (
                "oidc_providers: [{arn: 'acs:ram::1234567890123456:oidc-provider/p', issuer: i, jwks: {keys: []}}]",
                "jwks has no RSA key",
            ),
            (
                "instance_role: {role_arn: 'acs:ram::1234567890123456:role/none'}",
                "is not in roles",
            ),
            (
                "roles: [{arn: 'acs:ram::1234567890123456:role/x'}]\ninstance_role: {role_arn: 'acs:ram::1234567890123456:role/x', session_duration: 60}",
                "session_duration must be between",
            ),
        ];
        for (yaml, needle) in cases {
            let err = Seed::from_yaml_str(yaml).unwrap_err();
            assert!(err.to_string().contains(needle), "{yaml}: {err}");
        }
        assert!(matches!(
            Seed::from_yaml_str("secrets: [{name: a, txt: x}]"),
            Err(SeedError::Yaml { .. })
        ));
    }

    #[test]
    fn seed_debug_output_never_contains_secrets_or_values() {
        let seed = Seed::from_yaml_str(
            "access_keys: [{id: ak, secret: key-marker}]\nsecrets:\n  - {name: a, text: value-marker}\n  - {name: b, versions: [{id: v1, json: {x: json-marker}}]}\n",
        )
        .unwrap();
        let dbg = format!("{seed:?}");
        for marker in ["key-marker", "value-marker", "json-marker"] {
            assert!(!dbg.contains(marker), "{dbg}");
        }
        assert!(dbg.contains("<redacted text>"), "{dbg}");
    }

    #[test]
    fn version_data_debug_is_redacted() {
        let d = SeedData {
            text: Some("hunter2-marker".into()),
            ..SeedData::default()
        }
        .decode("x")
        .unwrap();
        assert!(!format!("{d:?}").contains("hunter2"));
    }
}
