//! Request and response types of the four KMS secret actions, and their JSON wire shapes.
//!
//! Field names on the wire are those of `shared/docs/alibaba-cloud-protocol.md` and the Python
//! SDK models (`GetSecretValueResponseBody`, `ListSecretsResponseBody`,
//! `DescribeSecretResponseBody`, `ListSecretVersionIdsResponseBody`). Times are kept as the
//! strings KMS sends (`YYYY-MM-DDThh:mm:ssZ`, UTC).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::alibaba::response::lenient_u64;
use crate::value::{SecretBytes, SecretString};

/// KMS API version.
pub const KMS_API_VERSION: &str = "2016-01-20";

/// `SecretType`: generic, or a secret managed (and rotated) by another service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretType {
    /// `Generic`
    Generic,
    /// `Rds` (ApsaraDB RDS account)
    Rds,
    /// `Redis`
    Redis,
    /// `RAMCredentials` (RAM user AccessKey)
    RamCredentials,
    /// `ECS` (ECS instance login)
    Ecs,
    /// `PolarDB`
    PolarDb,
    /// A type this client does not know yet, kept as sent.
    Other(String),
}

impl SecretType {
    /// Parses the wire name (exact spelling, as KMS sends it).
    pub fn from_wire(s: &str) -> Self {
        match s {
            "Generic" => Self::Generic,
            "Rds" => Self::Rds,
            "Redis" => Self::Redis,
            "RAMCredentials" => Self::RamCredentials,
            "ECS" => Self::Ecs,
            "PolarDB" => Self::PolarDb,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Generic => "Generic",
            Self::Rds => "Rds",
            Self::Redis => "Redis",
            Self::RamCredentials => "RAMCredentials",
            Self::Ecs => "ECS",
            Self::PolarDb => "PolarDB",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for SecretType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `SecretDataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretDataType {
    /// `text`: `SecretData` is the value itself.
    Text,
    /// `binary`: `SecretData` is standard base64 of the value.
    Binary,
}

impl SecretDataType {
    /// The wire name, `text` or `binary`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Binary => "binary",
        }
    }
}

/// Parameters of `GetSecretValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetSecretValueRequest {
    /// Secret name, or its ARN `acs:kms:<region>:<account>:secret/<name>`.
    pub secret_name: String,
    /// `VersionStage` (KMS defaults to `ACSCurrent`).
    pub version_stage: Option<String>,
    /// `VersionId`.
    pub version_id: Option<String>,
    /// `FetchExtendedConfig=true`: also return `ExtendedConfig` of managed secrets.
    pub fetch_extended_config: bool,
}

impl GetSecretValueRequest {
    /// The current version of `secret_name`.
    pub fn new(secret_name: impl Into<String>) -> Self {
        Self {
            secret_name: secret_name.into(),
            ..Self::default()
        }
    }

    /// Selects a version stage (`ACSCurrent`, `ACSPrevious`, or a custom stage).
    pub fn version_stage(mut self, stage: impl Into<String>) -> Self {
        self.version_stage = Some(stage.into());
        self
    }

    /// Selects a version id.
    pub fn version_id(mut self, id: impl Into<String>) -> Self {
        self.version_id = Some(id.into());
        self
    }

    /// Asks for `ExtendedConfig`.
    pub fn fetch_extended_config(mut self, fetch: bool) -> Self {
        self.fetch_extended_config = fetch;
        self
    }
}

/// One version of a secret, with its value. `Debug` never shows the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretValue {
    /// `RequestId` of the response.
    pub request_id: Option<String>,
    /// `SecretName` (the name, also when the request used an ARN).
    pub secret_name: String,
    /// `SecretType`.
    pub secret_type: SecretType,
    /// `SecretDataType`.
    pub data_type: SecretDataType,
    /// The value: the UTF-8 bytes of a text secret, or the base64-decoded bytes of a binary one.
    pub data: SecretBytes,
    /// `VersionId`.
    pub version_id: String,
    /// `VersionStages.VersionStage`.
    pub version_stages: Vec<String>,
    /// `CreateTime` of the version.
    pub create_time: Option<String>,
    /// `ExtendedConfig` (JSON text), only when asked for and the secret is managed.
    pub extended_config: Option<String>,
    /// `AutomaticRotation` (`Enabled`, `Disabled`, `Invalid`), managed secrets only.
    pub automatic_rotation: Option<String>,
    /// `RotationInterval`, e.g. `604800s`.
    pub rotation_interval: Option<String>,
    /// `LastRotationDate`.
    pub last_rotation_date: Option<String>,
    /// `NextRotationDate`.
    pub next_rotation_date: Option<String>,
}

/// A `ListSecrets` filter: `{"Key": ..., "Values": [...]}`; values are ORed, filters ANDed.
/// Keys: `SecretName`, `Description`, `TagKey`, `TagValue`, `DKMSInstanceId`, `SecretType`,
/// `Creator`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFilter {
    /// Filter key.
    #[serde(rename = "Key")]
    pub key: String,
    /// Accepted values.
    #[serde(rename = "Values")]
    pub values: Vec<String>,
}

impl SecretFilter {
    /// A filter on `key` matching any of `values`.
    pub fn new(
        key: impl Into<String>,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            key: key.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

/// Parameters of `ListSecrets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListSecretsRequest {
    /// Filters, sent as the JSON string `Filters` (omitted when empty).
    pub filters: Vec<SecretFilter>,
    /// `FetchTags=true`: include each secret's tags.
    pub fetch_tags: bool,
    /// `PageSize`, 1–100 (default 100 here; KMS's own default is 10).
    pub page_size: u32,
}

impl Default for ListSecretsRequest {
    fn default() -> Self {
        Self {
            filters: Vec::new(),
            fetch_tags: true,
            page_size: 100,
        }
    }
}

/// A tag of a secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// `TagKey`
    #[serde(rename = "TagKey", default)]
    pub key: String,
    /// `TagValue`
    #[serde(rename = "TagValue", default)]
    pub value: String,
}

/// One secret in a `ListSecrets` page (metadata only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSummary {
    /// `SecretName`.
    pub secret_name: String,
    /// `SecretType`.
    pub secret_type: Option<SecretType>,
    /// `CreateTime`.
    pub create_time: Option<String>,
    /// `UpdateTime`.
    pub update_time: Option<String>,
    /// `PlannedDeleteTime` (set while the secret is scheduled for deletion).
    pub planned_delete_time: Option<String>,
    /// `OwingService` (for managed secrets).
    pub owing_service: Option<String>,
    /// `Tags.Tag` (only with `FetchTags=true`).
    pub tags: Vec<Tag>,
}

/// One `ListSecrets` page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListSecretsPage {
    /// `RequestId`.
    pub request_id: Option<String>,
    /// `PageNumber` (1-based).
    pub page_number: u64,
    /// `PageSize`.
    pub page_size: u64,
    /// `TotalCount` over all pages.
    pub total_count: u64,
    /// `SecretList.Secret`.
    pub secrets: Vec<SecretSummary>,
}

/// `DescribeSecret` result: metadata of one secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMetadata {
    /// `RequestId`.
    pub request_id: Option<String>,
    /// `SecretName`.
    pub secret_name: String,
    /// `Arn`.
    pub arn: Option<String>,
    /// `SecretType`.
    pub secret_type: Option<SecretType>,
    /// `Description`.
    pub description: Option<String>,
    /// `CreateTime`.
    pub create_time: Option<String>,
    /// `UpdateTime`.
    pub update_time: Option<String>,
    /// `PlannedDeleteTime`.
    pub planned_delete_time: Option<String>,
    /// `EncryptionKeyId`.
    pub encryption_key_id: Option<String>,
    /// `DKMSInstanceId`.
    pub dkms_instance_id: Option<String>,
    /// `OwingService`.
    pub owing_service: Option<String>,
    /// `AutomaticRotation`.
    pub automatic_rotation: Option<String>,
    /// `RotationInterval`.
    pub rotation_interval: Option<String>,
    /// `LastRotationDate`.
    pub last_rotation_date: Option<String>,
    /// `NextRotationDate`.
    pub next_rotation_date: Option<String>,
    /// `ExtendedConfig` (JSON text).
    pub extended_config: Option<String>,
    /// `Tags.Tag` (only with `FetchTags=true`).
    pub tags: Vec<Tag>,
}

/// One entry of `ListSecretVersionIds`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersion {
    /// `VersionId`.
    pub version_id: String,
    /// `CreateTime`.
    pub create_time: Option<String>,
    /// `VersionStages.VersionStage` (empty for deprecated versions).
    pub version_stages: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Wire shapes (every field optional; presence of required ones is checked by the client).
// ---------------------------------------------------------------------------------------------

fn secret_string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(de)?.map(SecretString::new))
}

/// A string field that some responses carry as a JSON object: objects are re-serialised.
fn json_text<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(de)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct VersionStagesWire {
    #[serde(rename = "VersionStage", default)]
    pub version_stage: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TagsWire {
    #[serde(rename = "Tag", default)]
    pub tag: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
pub(crate) struct GetSecretValueWire {
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "SecretName", default)]
    pub secret_name: Option<String>,
    #[serde(rename = "SecretType", default)]
    pub secret_type: Option<String>,
    #[serde(rename = "SecretData", default, deserialize_with = "secret_string")]
    pub secret_data: Option<SecretString>,
    #[serde(rename = "SecretDataType", default)]
    pub secret_data_type: Option<String>,
    #[serde(rename = "VersionId", default)]
    pub version_id: Option<String>,
    #[serde(rename = "VersionStages", default)]
    pub version_stages: Option<VersionStagesWire>,
    #[serde(rename = "CreateTime", default)]
    pub create_time: Option<String>,
    #[serde(rename = "ExtendedConfig", default, deserialize_with = "json_text")]
    pub extended_config: Option<String>,
    #[serde(rename = "AutomaticRotation", default)]
    pub automatic_rotation: Option<String>,
    #[serde(rename = "RotationInterval", default)]
    pub rotation_interval: Option<String>,
    #[serde(rename = "LastRotationDate", default)]
    pub last_rotation_date: Option<String>,
    #[serde(rename = "NextRotationDate", default)]
    pub next_rotation_date: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SecretSummaryWire {
    #[serde(rename = "SecretName", default)]
    pub secret_name: Option<String>,
    #[serde(rename = "SecretType", default)]
    pub secret_type: Option<String>,
    #[serde(rename = "CreateTime", default)]
    pub create_time: Option<String>,
    #[serde(rename = "UpdateTime", default)]
    pub update_time: Option<String>,
    #[serde(rename = "PlannedDeleteTime", default)]
    pub planned_delete_time: Option<String>,
    #[serde(rename = "OwingService", default)]
    pub owing_service: Option<String>,
    #[serde(rename = "Tags", default)]
    pub tags: Option<TagsWire>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SecretListWire {
    #[serde(rename = "Secret", default)]
    pub secret: Option<Vec<SecretSummaryWire>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListSecretsWire {
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "PageNumber", default, deserialize_with = "lenient_u64")]
    pub page_number: Option<u64>,
    #[serde(rename = "PageSize", default, deserialize_with = "lenient_u64")]
    pub page_size: Option<u64>,
    #[serde(rename = "TotalCount", default, deserialize_with = "lenient_u64")]
    pub total_count: Option<u64>,
    #[serde(rename = "SecretList", default)]
    pub secret_list: Option<SecretListWire>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DescribeSecretWire {
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "SecretName", default)]
    pub secret_name: Option<String>,
    #[serde(rename = "Arn", default)]
    pub arn: Option<String>,
    #[serde(rename = "SecretType", default)]
    pub secret_type: Option<String>,
    #[serde(rename = "Description", default)]
    pub description: Option<String>,
    #[serde(rename = "CreateTime", default)]
    pub create_time: Option<String>,
    #[serde(rename = "UpdateTime", default)]
    pub update_time: Option<String>,
    #[serde(rename = "PlannedDeleteTime", default)]
    pub planned_delete_time: Option<String>,
    #[serde(rename = "EncryptionKeyId", default)]
    pub encryption_key_id: Option<String>,
    #[serde(rename = "DKMSInstanceId", default)]
    pub dkms_instance_id: Option<String>,
    #[serde(rename = "OwingService", default)]
    pub owing_service: Option<String>,
    #[serde(rename = "AutomaticRotation", default)]
    pub automatic_rotation: Option<String>,
    #[serde(rename = "RotationInterval", default)]
    pub rotation_interval: Option<String>,
    #[serde(rename = "LastRotationDate", default)]
    pub last_rotation_date: Option<String>,
    #[serde(rename = "NextRotationDate", default)]
    pub next_rotation_date: Option<String>,
    #[serde(rename = "ExtendedConfig", default, deserialize_with = "json_text")]
    pub extended_config: Option<String>,
    #[serde(rename = "Tags", default)]
    pub tags: Option<TagsWire>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VersionIdWire {
    #[serde(rename = "VersionId", default)]
    pub version_id: Option<String>,
    #[serde(rename = "CreateTime", default)]
    pub create_time: Option<String>,
    #[serde(rename = "VersionStages", default)]
    pub version_stages: Option<VersionStagesWire>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct VersionIdsWire {
    #[serde(rename = "VersionId", default)]
    pub version_id: Option<Vec<VersionIdWire>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListSecretVersionIdsWire {
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "PageNumber", default, deserialize_with = "lenient_u64")]
    pub page_number: Option<u64>,
    #[serde(rename = "TotalCount", default, deserialize_with = "lenient_u64")]
    pub total_count: Option<u64>,
    #[serde(rename = "VersionIds", default)]
    pub version_ids: Option<VersionIdsWire>,
}
