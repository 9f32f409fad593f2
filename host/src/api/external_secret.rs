//! `ExternalSecret`: which KMS secrets (or OOS parameters) to copy into which Kubernetes Secret.
//!
//! Field names are ack-secret-manager's (v0.5 and v0.6), so its manifests apply unchanged;
//! kmsync's additions (`rules`, `refreshPolicy`, `target.creationPolicy`,
//! `target.deletionPolicy`, `target.immutable`, and status fields) are all optional. No field
//! has a schema default: effective defaults live in the accessors below, so GitOps tools never
//! see server-filled fields drift.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CONDITION_READY, Condition, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, SECRET_KEY_PATTERN,
    find_condition, non_empty,
};
use super::duration::{DurationError, GO_DURATION_PATTERN, parse_go_duration};

/// Upper bounds on list sizes. They keep the API server's cost estimate for the CEL rules
/// below its limits and are far above what real manifests use.
pub const MAX_DATA_ITEMS: u32 = 500;
/// See [`MAX_DATA_ITEMS`].
pub const MAX_DATA_PROCESS_ITEMS: u32 = 100;
/// See [`MAX_DATA_ITEMS`].
pub const MAX_RULES: u32 = 16;

/// Desired state of an ExternalSecret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "alibabacloud.com",
    version = "v1alpha1",
    kind = "ExternalSecret",
    namespaced,
    status = "ExternalSecretStatus",
    shortname = "es",
    category = "kmsync",
    derive = "PartialEq",
    doc = "An ExternalSecret names secrets in Alibaba Cloud KMS Secrets Manager (or OOS encrypted parameters) and the Kubernetes Secret kmsync keeps in step with them. The Secret is named after the ExternalSecret unless `spec.target.name` says otherwise.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Last Sync","type":"date","jsonPath":".status.refreshTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","priority":1,"jsonPath":".status.binding.name"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.rotationInterval) || !has(self.refreshPolicy) || self.refreshPolicy == 'Periodic'",
     "message": "rotationInterval only applies with refreshPolicy Periodic"}
]))]
pub struct ExternalSecretSpec {
    /// Where the data comes from: `kms` (KMS Secrets Manager, the default) or `oos` (OOS
    /// encrypted parameters). One provider per object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Remote secrets to copy. Each entry becomes one Secret key (`name`, or `key` when `name`
    /// is unset), or one key per `jmesPath` item.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DATA_ITEMS))]
    pub data: Option<Vec<DataSource>>,
    /// Remote JSON/YAML secrets whose top-level keys all become Secret keys (`extract`),
    /// optionally renamed by `replaceRule`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DATA_PROCESS_ITEMS))]
    pub data_process: Option<Vec<DataProcess>>,
    /// Type of the Secret, e.g. `Opaque` (the default) or `kubernetes.io/tls`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The Secret to write and how kmsync may treat it (ack-secret-manager v0.6 plus kmsync's
    /// ownership policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<ExternalSecretTarget>,
    /// How often to re-read the remote secrets, as a Go duration (`30s`, `5m`, `1h30m`), at
    /// least 1s. Unset: the controller's `--polling-interval` (default 120s).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub rotation_interval: Option<String>,
    /// kmsync addition; see [`RefreshPolicy`] (the CRD shows that text). Default `Periodic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_policy: Option<RefreshPolicy>,
    /// kmsync addition: WebAssembly rule modules run on the fetched data, in order, after the
    /// built-in `jmesPath`/`dataProcess` handling: `transform` maps data to Secret keys,
    /// `filter` drops keys, `rotate` decides whether a change is rolled out now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_RULES))]
    pub rules: Option<Vec<Rule>>,
}

/// Where the data comes from: `kms` (KMS Secrets Manager, the default) or `oos` (OOS
/// encrypted parameters). One provider per object; any other value, `KMS` included, is refused.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Provider {
    /// KMS Secrets Manager.
    #[serde(rename = "kms")]
    Kms,
    /// OOS encrypted parameters.
    #[serde(rename = "oos")]
    Oos,
}

/// One remote secret copied into the Secret (`spec.data[]`, also `dataProcess[].extract`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// The store whose credentials are used. Unset: the controller's own credentials (if the
    /// operator enabled them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_store_ref: Option<SecretStoreRef>,
    /// Name of the KMS secret (or OOS parameter, e.g. `/prod/db/password`).
    #[schemars(length(min = 1, max = 1024))]
    pub key: String,
    /// Key in the Kubernetes Secret. Unset: `key` is used, which must then be a valid Secret
    /// key. Not used with `jmesPath` or in `dataProcess[].extract`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub name: Option<String>,
    /// Version stage to read, e.g. `ACSCurrent` (KMS's default) or `ACSPrevious`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stage: Option<String>,
    /// Version ID to read. Unset: the current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Values to pick out of a JSON (or YAML) secret, each stored under its own Secret key.
    /// A path that matches nothing fails the sync (ack stored the whole secret instead).
    #[serde(rename = "jmesPath", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub jmes_path: Option<Vec<JmesPathItem>>,
    /// Endpoint for this entry only (ack-secret-manager v0.6), e.g.
    /// `kms-vpc.cn-beijing.aliyuncs.com` or `<instance-id>.cryptoservice.kms.aliyuncs.com`.
    /// Must be an Alibaba Cloud KMS host or one the operator allowed. KMS only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_endpoint: Option<String>,
}

/// `jmesPath[]`: evaluate `path` on the secret's JSON and store the result under `objectAlias`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JmesPathItem {
    /// JMESPath expression, e.g. `name` or `friends[0].name`.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Secret key for the result.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub object_alias: String,
}

/// Which store an entry uses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretStoreRef {
    /// Name of the SecretStore or ClusterSecretStore.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of a SecretStore. Unset: the ExternalSecret's namespace. Another namespace is
    /// refused unless the controller runs with `--enable-cross-namespace-secret-store`.
    /// Ignored for a ClusterSecretStore. (ack-secret-manager v0.5 required it.)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
    /// `SecretStore` (default) or `ClusterSecretStore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<StoreKind>,
}

/// Kind of the referenced store: `SecretStore` (default) or `ClusterSecretStore`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum StoreKind {
    /// A namespaced SecretStore.
    SecretStore,
    /// A cluster-scoped ClusterSecretStore.
    ClusterSecretStore,
}

impl SecretStoreRef {
    /// Effective kind; default [`StoreKind::SecretStore`].
    pub fn kind(&self) -> StoreKind {
        self.kind.unwrap_or(StoreKind::SecretStore)
    }

    /// Namespace of the referenced SecretStore given the ExternalSecret's namespace; `None`
    /// for a ClusterSecretStore.
    pub fn store_namespace<'a>(&'a self, external_secret_namespace: &'a str) -> Option<&'a str> {
        match self.kind() {
            StoreKind::ClusterSecretStore => None,
            StoreKind::SecretStore => {
                Some(non_empty(&self.namespace).unwrap_or(external_secret_namespace))
            }
        }
    }
}

impl DataSource {
    /// The Secret key this entry writes when it has no `jmesPath`: `name`, else `key`.
    /// `None` when `jmesPath` items decide the keys instead.
    pub fn secret_key(&self) -> Option<&str> {
        if self.jmes_path.as_ref().is_some_and(|j| !j.is_empty()) {
            return None;
        }
        Some(non_empty(&self.name).unwrap_or(&self.key))
    }

    /// The `jmesPath` items (empty when unset).
    pub fn jmes_path(&self) -> &[JmesPathItem] {
        self.jmes_path.as_deref().unwrap_or_default()
    }

    /// The per-entry endpoint, if set and non-empty.
    pub fn kms_endpoint(&self) -> Option<&str> {
        non_empty(&self.kms_endpoint)
    }

    /// The version ID, if set and non-empty.
    pub fn version_id(&self) -> Option<&str> {
        non_empty(&self.version_id)
    }

    /// The version stage, if set and non-empty.
    pub fn version_stage(&self) -> Option<&str> {
        non_empty(&self.version_stage)
    }
}

/// `dataProcess[]`: expand a JSON/YAML secret into one Secret key per top-level key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataProcess {
    /// The remote secret to expand (`name` is not used here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extract: Option<DataSource>,
    /// Renames applied, in order, to the extracted key names (never to values).
    #[serde(rename = "replaceRule", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub replace_rule: Option<Vec<ReplaceRule>>,
}

/// `replaceRule[]`: replace every match of `source` in an extracted key name with `target`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ReplaceRule {
    /// Regular expression (RE2 syntax), e.g. `^n.*e$` or `\.`.
    pub source: String,
    /// Replacement text.
    pub target: String,
}

/// `spec.target`: the Secret kmsync writes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.deletionPolicy) || self.deletionPolicy != 'Delete' || !has(self.creationPolicy) || self.creationPolicy == 'Owner'",
     "message": "deletionPolicy Delete requires creationPolicy Owner: kmsync only deletes Secrets it created"}
]))]
pub struct ExternalSecretTarget {
    /// Name of the Secret. Unset: the ExternalSecret's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: Option<String>,
    /// Go-template rendering of the Secret (ack-secret-manager v0.6). Accepted and stored;
    /// see the CRD reference for what kmsync renders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<ExternalSecretTemplate>,
    /// kmsync addition; see [`CreationPolicy`] (the CRD shows that text). Default `Owner`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_policy: Option<CreationPolicy>,
    /// kmsync addition; see [`DeletionPolicy`] (the CRD shows that text). Default `Retain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// kmsync addition: create the Secret with `immutable: true`. An immutable Secret is
    /// replaced (deleted and created) when its data must change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

/// kmsync addition: whether kmsync may create the Secret and take over an existing one.
/// `Owner` (default): create it and own it; an existing Secret not created by this
/// ExternalSecret is never adopted or overwritten. `Orphan`: create and update it, never delete
/// it. `Merge`: never create; merge keys into an existing Secret in the same namespace.
/// `None`: write nothing (status only).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CreationPolicy {
    /// Create the Secret and own it (default).
    Owner,
    /// Create and update the Secret, but never delete it.
    Orphan,
    /// Merge keys into an existing Secret; never create one.
    Merge,
    /// Do not write any Secret.
    None,
}

/// kmsync addition: what happens to the Secret when this ExternalSecret is deleted.
/// `Retain` (default): keep it. `Delete`: delete it (only with creationPolicy `Owner`). A failed
/// fetch never deletes or blanks the Secret, whatever this says.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the Secret when the ExternalSecret is deleted (default).
    Retain,
    /// Delete the Secret with the ExternalSecret (creationPolicy `Owner` only).
    Delete,
}

/// kmsync addition: when to sync. `Periodic` (default): every `rotationInterval`.
/// `OnChange`: only when this ExternalSecret's spec, labels or annotations change.
/// `CreatedOnce`: once, then never again while the Secret exists.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RefreshPolicy {
    /// Re-read every `rotationInterval` (default).
    Periodic,
    /// Re-read only when the ExternalSecret changes.
    OnChange,
    /// Read once; never update the Secret afterwards.
    CreatedOnce,
}

/// `target.template` (ack-secret-manager v0.6).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTemplate {
    /// Secret keys and the Go templates that produce their values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    /// Templates read from ConfigMaps, Secrets or literals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_from: Option<Vec<TemplateFrom>>,
    /// Labels and annotations for the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Type of the Secret; overrides `spec.type` (the two must not disagree).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `Replace` (default): the Secret holds only the template output. `Merge`: template
    /// output is merged over the fetched data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_policy: Option<MergePolicy>,
}

/// Labels and annotations applied to the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TemplateMetadata {
    /// Annotations to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// How template output combines with the fetched data: `Replace` (default; the Secret holds
/// only the template output) or `Merge` (template output is merged over the fetched data).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MergePolicy {
    /// The Secret holds only the template output (default).
    Replace,
    /// Template output is merged over the fetched data.
    Merge,
}

/// `templateFrom[]`: exactly one of `configMap`, `secret` or `literal`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    /// Templates from keys of a ConfigMap in the ExternalSecret's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<TemplateRef>,
    /// Templates from keys of a Secret in the ExternalSecret's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<TemplateRef>,
    /// Where the output goes: `Data` (default), `Annotations` or `Labels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TemplateTarget>,
    /// An inline template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
}

impl TemplateFrom {
    /// Effective target; default [`TemplateTarget::Data`].
    pub fn target(&self) -> TemplateTarget {
        self.target.unwrap_or(TemplateTarget::Data)
    }
}

/// A ConfigMap or Secret holding templates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TemplateRef {
    /// Name of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Keys holding templates.
    pub items: Vec<TemplateRefItem>,
}

/// One template key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    /// Key in the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
    /// `Values` (default): the output is the value of Secret key `key`. `KeysAndValues`: the
    /// output is parsed as `key=value` lines, one Secret key each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_as: Option<TemplateScope>,
}

impl TemplateRefItem {
    /// Effective scope; default [`TemplateScope::Values`].
    pub fn template_as(&self) -> TemplateScope {
        self.template_as.unwrap_or(TemplateScope::Values)
    }
}

/// Where a template's output goes: `Data` (default), `Annotations` or `Labels`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TemplateTarget {
    /// Secret data (default).
    Data,
    /// Secret annotations.
    Annotations,
    /// Secret labels.
    Labels,
}

/// How a template key is used: `Values` (default; the output is the value of Secret key
/// `key`) or `KeysAndValues` (the output is parsed as `key=value` lines, one Secret key each).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TemplateScope {
    /// The output is one value (default).
    Values,
    /// The output is `key=value` lines.
    KeysAndValues,
}

/// `spec.rules[]` (kmsync addition): one WebAssembly rule module and its configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Rule {
    /// Name used in status, Events and errors. Unset: the builtin name, or
    /// `<configMap>/<key>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: Option<String>,
    /// The module: a built-in one, or one stored in a ConfigMap and pinned by sha256.
    pub module: RuleModule,
    /// Hooks of the module to run, a subset of `transform`, `filter`, `rotate`. Unset: every
    /// hook the module exports.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 3), extend("x-kubernetes-list-type" = "set"))]
    pub hooks: Option<Vec<RuleHook>>,
    /// Free-form JSON passed to the module as `config`; its shape is the module's business
    /// (modules publish a JSON Schema for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_json")]
    pub config: Option<serde_json::Value>,
}

fn free_form_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Free-form JSON passed to the module as `config`; its shape is the module's business (modules publish a JSON Schema for it).",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// `rules[].module`: exactly one of `builtin` or `configMap`; `sha256` is required with
/// `configMap` and not allowed with `builtin`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.builtin) != has(self.configMap)", "message": "set exactly one of builtin or configMap"},
    {"rule": "has(self.configMap) == has(self.sha256)", "message": "sha256 is required with configMap and not allowed with builtin"}
]))]
pub struct RuleModule {
    /// A module shipped inside kmsync, e.g. `jmespath`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub builtin: Option<String>,
    /// A `.wasm` module stored under `key` (in `binaryData`) of a ConfigMap in the
    /// ExternalSecret's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ModuleConfigMapRef>,
    /// Lowercase hex SHA-256 of the module bytes (64 characters). A module whose digest
    /// differs is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
}

/// A ConfigMap key holding a rule module.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ModuleConfigMapRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key in the ConfigMap's `binaryData`.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

/// The source of a rule module, as [`RuleModule::source`] resolves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleSource<'a> {
    /// A built-in module by name.
    Builtin(&'a str),
    /// A module in a ConfigMap, pinned by digest.
    ConfigMap {
        /// ConfigMap name.
        name: &'a str,
        /// Key in `binaryData`.
        key: &'a str,
        /// Expected lowercase hex SHA-256.
        sha256: &'a str,
    },
}

impl RuleModule {
    /// The module source, or `None` when the module names neither or both sources, or a
    /// ConfigMap without a digest (validation reports which).
    pub fn source(&self) -> Option<ModuleSource<'_>> {
        match (&self.builtin, &self.config_map, &self.sha256) {
            (Some(b), None, None) => Some(ModuleSource::Builtin(b)),
            (None, Some(cm), Some(sha256)) => Some(ModuleSource::ConfigMap {
                name: &cm.name,
                key: &cm.key,
                sha256,
            }),
            _ => None,
        }
    }
}

impl Rule {
    /// Name for messages: `name`, else the builtin name, else `<configMap>/<key>`.
    pub fn display_name(&self) -> String {
        if let Some(name) = non_empty(&self.name) {
            return name.to_owned();
        }
        match (&self.module.builtin, &self.module.config_map) {
            (Some(b), _) => b.clone(),
            (None, Some(cm)) => format!("{}/{}", cm.name, cm.key),
            (None, None) => "<unnamed>".to_owned(),
        }
    }

    /// The hooks to run, or `None` for "every hook the module exports".
    pub fn hooks(&self) -> Option<&[RuleHook]> {
        self.hooks.as_deref()
    }
}

/// A rule hook, named as the module exports it: `transform` (map fetched data to Secret keys),
/// `filter` (drop keys) or `rotate` (decide whether a change is rolled out now).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleHook {
    /// Map fetched data to Secret keys.
    Transform,
    /// Drop keys.
    Filter,
    /// Decide whether a change is rolled out now.
    Rotate,
}

/// What an ExternalSecret reports (`status`). Written by the controller only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    /// `Ready`: whether the Secret holds the current data; on failure the reason and the real
    /// (sanitised) error, never a value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// `metadata.generation` last processed by the controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the remote data was last read successfully.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_time: Option<Time>,
    /// `<generation>-<digest of labels and annotations>` of this ExternalSecret at the last
    /// successful sync; `OnChange` and `CreatedOnce` compare against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_resource_version: Option<String>,
    /// The Secret this ExternalSecret writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<SecretBinding>,
    /// Per remote key results (ack-secret-manager v0.6 shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_sync_results: Option<Vec<DataSyncResult>>,
}

impl ExternalSecretStatus {
    /// The `Ready` condition, if reported.
    pub fn ready(&self) -> Option<&Condition> {
        find_condition(
            self.conditions.as_deref().unwrap_or_default(),
            CONDITION_READY,
        )
    }
}

/// `status.binding`: the target Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretBinding {
    /// Name of the Secret, in the ExternalSecret's namespace.
    pub name: String,
}

/// `status.dataSyncResults[]` (ack-secret-manager v0.6 wire names, including the capitalised
/// `ExternalSecretKey`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSyncResult {
    /// The remote key (KMS secret name or OOS parameter name).
    #[serde(rename = "ExternalSecretKey", skip_serializing_if = "Option::is_none")]
    pub external_secret_key: Option<String>,
    /// `Succeeded` or `Failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why it failed (sanitised error; never a value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When this result was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronization_time: Option<Time>,
    /// kmsync addition: the remote version ID that was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// `DataSyncResult.status` value for a key that was read.
pub const SYNC_SUCCEEDED: &str = "Succeeded";
/// `DataSyncResult.status` value for a key that could not be read.
pub const SYNC_FAILED: &str = "Failed";

/// The Secret type used when none is given.
pub const DEFAULT_SECRET_TYPE: &str = "Opaque";
/// Shortest `rotationInterval` kmsync accepts.
pub const MIN_ROTATION_INTERVAL: Duration = Duration::from_secs(1);

impl ExternalSecretSpec {
    /// Effective provider; default [`Provider::Kms`].
    pub fn provider(&self) -> Provider {
        self.provider.unwrap_or(Provider::Kms)
    }

    /// Effective Secret type: `target.template.type`, else `type`, else `Opaque`.
    pub fn secret_type(&self) -> &str {
        self.target
            .as_ref()
            .and_then(|t| t.template.as_ref())
            .and_then(|t| non_empty(&t.type_))
            .or_else(|| non_empty(&self.type_))
            .unwrap_or(DEFAULT_SECRET_TYPE)
    }

    /// Effective creation policy; default [`CreationPolicy::Owner`].
    pub fn creation_policy(&self) -> CreationPolicy {
        self.target
            .as_ref()
            .and_then(|t| t.creation_policy)
            .unwrap_or(CreationPolicy::Owner)
    }

    /// Effective deletion policy; default [`DeletionPolicy::Retain`].
    pub fn deletion_policy(&self) -> DeletionPolicy {
        self.target
            .as_ref()
            .and_then(|t| t.deletion_policy)
            .unwrap_or(DeletionPolicy::Retain)
    }

    /// Whether the Secret is created immutable; default false.
    pub fn immutable(&self) -> bool {
        self.target.as_ref().and_then(|t| t.immutable) == Some(true)
    }

    /// Effective refresh policy; default [`RefreshPolicy::Periodic`].
    pub fn refresh_policy(&self) -> RefreshPolicy {
        self.refresh_policy.unwrap_or(RefreshPolicy::Periodic)
    }

    /// Effective template merge policy; default [`MergePolicy::Replace`].
    pub fn merge_policy(&self) -> MergePolicy {
        self.target
            .as_ref()
            .and_then(|t| t.template.as_ref())
            .and_then(|t| t.merge_policy)
            .unwrap_or(MergePolicy::Replace)
    }

    /// `rotationInterval` parsed; `Ok(None)` when unset (use the controller's polling
    /// interval).
    pub fn rotation_interval(&self) -> Result<Option<Duration>, DurationError> {
        non_empty(&self.rotation_interval)
            .map(parse_go_duration)
            .transpose()
    }

    /// The `data` entries (empty when unset).
    pub fn data(&self) -> &[DataSource] {
        self.data.as_deref().unwrap_or_default()
    }

    /// The `dataProcess` entries (empty when unset).
    pub fn data_process(&self) -> &[DataProcess] {
        self.data_process.as_deref().unwrap_or_default()
    }

    /// The `rules` (empty when unset).
    pub fn rules(&self) -> &[Rule] {
        self.rules.as_deref().unwrap_or_default()
    }

    /// Every remote source this spec reads: `data[]` then `dataProcess[].extract`.
    pub fn sources(&self) -> impl Iterator<Item = &DataSource> {
        self.data().iter().chain(
            self.data_process()
                .iter()
                .filter_map(|p| p.extract.as_ref()),
        )
    }
}

impl ExternalSecret {
    /// Name of the Secret to write: `spec.target.name`, else `metadata.name` (empty when the
    /// object has no name, which validation reports).
    pub fn target_name(&self) -> &str {
        self.spec
            .target
            .as_ref()
            .and_then(|t| non_empty(&t.name))
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The `Ready` condition, if reported.
    pub fn ready(&self) -> Option<&Condition> {
        self.status.as_ref().and_then(ExternalSecretStatus::ready)
    }

    /// The value `status.syncedResourceVersion` takes when this object is synced now:
    /// `<metadata.generation>-<first 16 hex digits of the SHA-256 of its labels and
    /// annotations>` (without kubectl's `last-applied-configuration`). It changes when the spec (generation), a label or an annotation
    /// changes, and only then — which is what `refreshPolicy: OnChange` waits for.
    pub fn resource_revision(&self) -> String {
        use sha2::{Digest, Sha256};
        // kubectl's copy of the last applied object changes with the spec (counted by the
        // generation) and is dropped from the controller's cache: it is left out.
        let annotations = self.metadata.annotations.as_ref().map(|a| {
            a.iter()
                .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
                .collect::<std::collections::BTreeMap<_, _>>()
        });
        let meta = serde_json::json!({
            "labels": self.metadata.labels,
            "annotations": annotations,
        });
        let digest = Sha256::digest(meta.to_string().as_bytes());
        format!(
            "{}-{}",
            self.metadata.generation.unwrap_or(0),
            &hex::encode(digest)[..16]
        )
    }

    /// True when the last successful sync was of this exact revision (see
    /// [`ExternalSecret::resource_revision`]).
    pub fn synced_current_revision(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.synced_resource_version.as_deref())
            == Some(self.resource_revision().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ExternalSecretSpec {
        ExternalSecretSpec {
            provider: None,
            data: None,
            data_process: None,
            type_: None,
            target: None,
            rotation_interval: None,
            refresh_policy: None,
            rules: None,
        }
    }

    fn source(key: &str) -> DataSource {
        DataSource {
            secret_store_ref: None,
            key: key.into(),
            name: None,
            version_stage: None,
            version_id: None,
            jmes_path: None,
            kms_endpoint: None,
        }
    }

    #[test]
    fn unset_fields_take_the_documented_defaults() {
        let es = ExternalSecret::new("app", spec());
        assert_eq!(es.spec.provider(), Provider::Kms);
        assert_eq!(es.spec.secret_type(), "Opaque");
        assert_eq!(es.spec.creation_policy(), CreationPolicy::Owner);
        assert_eq!(es.spec.deletion_policy(), DeletionPolicy::Retain);
        assert_eq!(es.spec.refresh_policy(), RefreshPolicy::Periodic);
        assert_eq!(es.spec.merge_policy(), MergePolicy::Replace);
        assert!(!es.spec.immutable());
        assert_eq!(es.spec.rotation_interval(), Ok(None));
        assert_eq!(es.target_name(), "app");
        assert!(es.ready().is_none());
    }

    #[test]
    fn set_fields_override_the_defaults() {
        let mut s = spec();
        s.provider = Some(Provider::Oos);
        s.type_ = Some("kubernetes.io/tls".into());
        s.rotation_interval = Some("1h30m".into());
        s.target = Some(ExternalSecretTarget {
            name: Some("other".into()),
            creation_policy: Some(CreationPolicy::Merge),
            deletion_policy: Some(DeletionPolicy::Delete),
            immutable: Some(true),
            template: None,
        });
        let es = ExternalSecret::new("app", s);
        assert_eq!(es.spec.provider(), Provider::Oos);
        assert_eq!(es.spec.secret_type(), "kubernetes.io/tls");
        assert_eq!(es.spec.creation_policy(), CreationPolicy::Merge);
        assert_eq!(es.spec.deletion_policy(), DeletionPolicy::Delete);
        assert!(es.spec.immutable());
        assert_eq!(
            es.spec.rotation_interval(),
            Ok(Some(Duration::from_secs(5400)))
        );
        assert_eq!(es.target_name(), "other");
    }

    #[test]
    fn template_type_wins_over_spec_type() {
        let mut s = spec();
        s.type_ = Some("Opaque".into());
        s.target = Some(ExternalSecretTarget {
            template: Some(ExternalSecretTemplate {
                type_: Some("kubernetes.io/tls".into()),
                ..ExternalSecretTemplate::default()
            }),
            ..ExternalSecretTarget::default()
        });
        assert_eq!(s.secret_type(), "kubernetes.io/tls");
    }

    #[test]
    fn data_entry_writes_name_else_key_unless_jmespath_decides() {
        let mut d = source("db-password");
        assert_eq!(d.secret_key(), Some("db-password"));
        d.name = Some(String::new());
        assert_eq!(
            d.secret_key(),
            Some("db-password"),
            "empty name counts as unset, as in ack"
        );
        d.name = Some("password".into());
        assert_eq!(d.secret_key(), Some("password"));
        d.jmes_path = Some(vec![JmesPathItem {
            path: "a".into(),
            object_alias: "a".into(),
        }]);
        assert_eq!(d.secret_key(), None);
    }

    #[test]
    fn store_ref_defaults_to_a_secret_store_in_the_same_namespace() {
        let mut r = SecretStoreRef {
            name: "s".into(),
            namespace: None,
            kind: None,
        };
        assert_eq!(r.kind(), StoreKind::SecretStore);
        assert_eq!(r.store_namespace("team-a"), Some("team-a"));
        r.namespace = Some("shared".into());
        assert_eq!(r.store_namespace("team-a"), Some("shared"));
        r.kind = Some(StoreKind::ClusterSecretStore);
        assert_eq!(r.store_namespace("team-a"), None);
    }

    #[test]
    fn module_source_requires_exactly_one_source_and_a_digest_for_configmaps() {
        let sha = "a".repeat(64);
        let cm = ModuleConfigMapRef {
            name: "rules".into(),
            key: "r.wasm".into(),
        };
        let builtin = RuleModule {
            builtin: Some("jmespath".into()),
            config_map: None,
            sha256: None,
        };
        assert_eq!(builtin.source(), Some(ModuleSource::Builtin("jmespath")));
        let from_cm = RuleModule {
            builtin: None,
            config_map: Some(cm.clone()),
            sha256: Some(sha.clone()),
        };
        assert_eq!(
            from_cm.source(),
            Some(ModuleSource::ConfigMap {
                name: "rules",
                key: "r.wasm",
                sha256: &sha
            })
        );
        let no_digest = RuleModule {
            sha256: None,
            ..from_cm.clone()
        };
        assert_eq!(no_digest.source(), None);
        let both = RuleModule {
            builtin: Some("jmespath".into()),
            ..from_cm
        };
        assert_eq!(both.source(), None);
    }

    #[test]
    fn rule_display_name_falls_back_to_the_module() {
        let mut rule = Rule {
            name: None,
            module: RuleModule {
                builtin: None,
                config_map: Some(ModuleConfigMapRef {
                    name: "rules".into(),
                    key: "r.wasm".into(),
                }),
                sha256: Some("0".repeat(64)),
            },
            hooks: None,
            config: None,
        };
        assert_eq!(rule.display_name(), "rules/r.wasm");
        rule.name = Some("mask".into());
        assert_eq!(rule.display_name(), "mask");
    }

    #[test]
    fn resource_revision_follows_generation_labels_and_annotations_only() {
        let mut es = ExternalSecret::new("app", spec());
        es.metadata.generation = Some(3);
        let base = es.resource_revision();
        assert!(base.starts_with("3-"), "{base}");
        assert_eq!(base.len(), "3-".len() + 16);
        es.status = Some(ExternalSecretStatus {
            synced_resource_version: Some(base.clone()),
            refresh_time: None,
            ..ExternalSecretStatus::default()
        });
        assert!(es.synced_current_revision());
        // Status and resourceVersion churn do not change the revision.
        es.metadata.resource_version = Some("999".into());
        assert_eq!(es.resource_revision(), base);
        es.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        assert_ne!(es.resource_revision(), base);
        assert!(!es.synced_current_revision());
        es.metadata.labels = None;
        es.metadata.generation = Some(4);
        assert!(es.resource_revision().starts_with("4-"));
    }

    #[test]
    fn sources_lists_data_then_extracts() {
        let mut s = spec();
        s.data = Some(vec![source("a")]);
        s.data_process = Some(vec![
            DataProcess {
                extract: Some(source("b")),
                replace_rule: None,
            },
            DataProcess {
                extract: None,
                replace_rule: None,
            },
        ]);
        let keys: Vec<_> = s.sources().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
