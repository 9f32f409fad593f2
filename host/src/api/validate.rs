//! Pure validation: every problem with an object, each with its field path, before any I/O.
//!
//! The API server already enforces the CRD schema and its CEL rules; these checks repeat the
//! important ones (so `kmsync render` catches them offline, and objects applied while an older
//! CRD was installed are still caught) and add what a schema cannot say: JMESPath and regex
//! syntax, duplicate Secret keys, ARN shapes, duration ranges, base64 CA bundles.
//!
//! ```
//! use kmsync::api::{ExternalSecret, Validate};
//! let es: ExternalSecret = serde_yaml_ng::from_str(r#"
//! apiVersion: alibabacloud.com/v1alpha1
//! kind: ExternalSecret
//! metadata: {name: app, namespace: default}
//! spec:
//!   data:
//!     - {key: db, name: "a b"}
//! "#).unwrap();
//! let err = es.validate().unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     r#"ExternalSecret default/app: spec.data[0].name: "a b" is not a valid Secret key (1-253 characters of [-._a-zA-Z0-9], not "." or starting with "..")"#
//! );
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use base64::Engine as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::cluster_external_secret::ClusterExternalSecret;
use super::common::{
    NamespaceCondition, SecretKeyRef, ServiceAccountRef, is_dns_label, is_dns_subdomain,
    is_valid_secret_key, non_empty,
};
use super::duration::{DurationError, parse_go_duration};
use super::external_secret::{
    DataSource, ExternalSecret, ExternalSecretSpec, MIN_ROTATION_INTERVAL, Provider, RuleModule,
};
use super::secret_store::{
    CloudAuth, ClusterSecretStore, DedicatedKmsAuth, KeyNamePolicy, MAX_ROLE_SESSION_EXPIRATION,
    MIN_ROLE_SESSION_EXPIRATION, NAMESPACE_PLACEHOLDER, SecretStore, StoreProvider,
};

/// What is wrong at one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// A required value is missing or empty.
    #[error("is required")]
    Required,
    /// Not usable as a key in a Secret's `data`.
    #[error(
        "{value:?} is not a valid Secret key (1-253 characters of [-._a-zA-Z0-9], not \".\" or starting with \"..\")"
    )]
    InvalidSecretKey {
        /// The value as written.
        value: String,
    },
    /// A data entry without `name` whose remote key cannot be a Secret key.
    #[error(
        "no name is set, and the key {key:?} is not a valid Secret key (1-253 characters of [-._a-zA-Z0-9]); set name"
    )]
    KeyNeedsName {
        /// The remote key.
        key: String,
    },
    /// Not an RFC 1123 DNS subdomain (object names).
    #[error(
        "{value:?} is not a valid object name (lowercase RFC 1123 subdomain, at most 253 characters)"
    )]
    InvalidName {
        /// The value as written.
        value: String,
    },
    /// Not an RFC 1123 DNS label (namespace names, rule and builtin names).
    #[error("{value:?} is not a valid name (lowercase RFC 1123 label, at most 63 characters)")]
    InvalidLabelName {
        /// The value as written.
        value: String,
    },
    /// Exactly one of several fields must be set.
    #[error("set exactly one of {fields}")]
    ExactlyOneOf {
        /// The fields, e.g. `KMS, OOS`.
        fields: &'static str,
    },
    /// At most one of several fields may be set.
    #[error("set at most one of {fields}")]
    AtMostOneOf {
        /// The fields.
        fields: &'static str,
    },
    /// This field needs another one.
    #[error("requires {other} to be set as well")]
    Requires {
        /// The missing companion field.
        other: &'static str,
    },
    /// Two fields say different things.
    #[error("conflicts with {other}: {detail}")]
    Conflict {
        /// The other field (path).
        other: String,
        /// Why.
        detail: &'static str,
    },
    /// Two entries write the same Secret key.
    #[error("Secret key {key:?} is also written by {first}")]
    DuplicateSecretKey {
        /// The key.
        key: String,
        /// Path of the entry that writes it first.
        first: String,
    },
    /// The same value appears twice where values must be unique.
    #[error("{value:?} appears more than once")]
    Duplicate {
        /// The value.
        value: String,
    },
    /// A duration string that does not parse.
    #[error(transparent)]
    Duration(DurationError),
    /// A duration outside the allowed range.
    #[error("{value:?} is out of range ({range})")]
    OutOfRange {
        /// The value as written.
        value: String,
        /// The allowed range, e.g. `at least 1s`.
        range: &'static str,
    },
    /// A JMESPath expression that does not compile.
    #[error("invalid JMESPath expression {expression:?}: {reason}")]
    InvalidJmesPath {
        /// The expression.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// A regular expression that does not compile.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    InvalidRegex {
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// An ARN of the wrong shape.
    #[error("{value:?} is not a RAM {expected} ARN (acs:ram::<account-id>:{expected}/<name>)")]
    InvalidArn {
        /// The value as written.
        value: String,
        /// `role` or `oidc-provider`.
        expected: &'static str,
    },
    /// A field that the chosen provider does not use.
    #[error("is not used with provider {provider}")]
    NotForProvider {
        /// `oos`.
        provider: &'static str,
    },
    /// A value that is not one of the accepted ones.
    #[error("{value:?} is not supported; use {expected}")]
    Unsupported {
        /// The value as written.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// A sha256 digest that is not 64 lowercase hex characters.
    #[error("{value:?} is not a sha256 digest (64 lowercase hex characters)")]
    InvalidSha256 {
        /// The value as written.
        value: String,
    },
    /// A CA bundle that is not base64-encoded PEM.
    #[error("is not base64-encoded PEM (expected \"-----BEGIN CERTIFICATE-----\" after decoding)")]
    InvalidCaBundle,
    /// A session name STS would refuse.
    #[error("{value:?} is not a valid session name (2-64 characters of [A-Za-z0-9.@_-])")]
    InvalidSessionName {
        /// The value as written.
        value: String,
    },
    /// A path that must be absolute is not.
    #[error("{value:?} is not an absolute path")]
    NotAbsolute {
        /// The value as written.
        value: String,
    },
    /// A hostname or endpoint with characters no host can have.
    #[error("{value:?} is not a host name or https URL")]
    InvalidEndpoint {
        /// The value as written.
        value: String,
    },
    /// An ExternalSecret that reads nothing.
    #[error("reads nothing: set data, dataProcess or target.template")]
    NoData,
    /// A namespace condition with no field set (it would match nothing).
    #[error("matches nothing: set namespaceSelector, namespaces or namespaceRegexes")]
    EmptyCondition,
    /// An invalid label selector requirement.
    #[error("operator {operator:?} {detail}")]
    InvalidSelector {
        /// The operator as written.
        operator: String,
        /// What is wrong.
        detail: &'static str,
    },
    /// A key-name policy pattern with an unknown `{placeholder}`.
    #[error("{value:?} has an unknown placeholder; only {{namespace}} is supported")]
    UnknownPlaceholder {
        /// The pattern.
        value: String,
    },
}

/// One problem: the field path (e.g. `spec.data[1].name`) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the field, from the object root.
    pub path: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)
    }
}

/// Every problem found in one object. `Display` prints one line per problem, each naming the
/// object: `ExternalSecret default/app: spec.data[1].name: "a b" is not a valid Secret key ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The object's kind, e.g. `ExternalSecret`.
    pub kind: &'static str,
    /// `namespace/name`, or `name` for cluster-scoped or namespace-less objects.
    pub object: String,
    /// The problems, in field order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{} {}: {}", self.kind, self.object, p)?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// Objects that can check themselves. `Err` holds every problem, not just the first.
pub trait Validate {
    /// Checks the object without any I/O.
    fn validate(&self) -> Result<(), Invalid>;
}

impl Validate for ExternalSecret {
    fn validate(&self) -> Result<(), Invalid> {
        validate_external_secret(self)
    }
}

impl Validate for SecretStore {
    fn validate(&self) -> Result<(), Invalid> {
        validate_secret_store(self)
    }
}

impl Validate for ClusterSecretStore {
    fn validate(&self) -> Result<(), Invalid> {
        validate_cluster_secret_store(self)
    }
}

impl Validate for ClusterExternalSecret {
    fn validate(&self) -> Result<(), Invalid> {
        validate_cluster_external_secret(self)
    }
}

/// Collects problems under a path prefix.
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn new() -> Self {
        Self {
            problems: Vec::new(),
        }
    }

    fn push(&mut self, path: impl Into<String>, kind: ProblemKind) {
        self.problems.push(Problem {
            path: path.into(),
            kind,
        });
    }

    fn finish(self, kind: &'static str, meta: &ObjectMeta) -> Result<(), Invalid> {
        if self.problems.is_empty() {
            return Ok(());
        }
        let name = meta.name.as_deref().unwrap_or("<unnamed>");
        let object = match meta.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_owned(),
        };
        Err(Invalid {
            kind,
            object,
            problems: self.problems,
        })
    }

    fn name(&mut self, path: &str, meta: &ObjectMeta) {
        match meta.name.as_deref() {
            None | Some("") => self.push(format!("{path}.name"), ProblemKind::Required),
            Some(n) if !is_dns_subdomain(n) => self.push(
                format!("{path}.name"),
                ProblemKind::InvalidName { value: n.into() },
            ),
            Some(_) => {}
        }
    }

    fn secret_key(&mut self, path: String, value: &str) {
        if !is_valid_secret_key(value) {
            self.push(
                path,
                ProblemKind::InvalidSecretKey {
                    value: value.into(),
                },
            );
        }
    }

    fn object_name(&mut self, path: String, value: &str) {
        if value.is_empty() {
            self.push(path, ProblemKind::Required);
        } else if !is_dns_subdomain(value) {
            self.push(
                path,
                ProblemKind::InvalidName {
                    value: value.into(),
                },
            );
        }
    }

    fn label_name(&mut self, path: String, value: &str) {
        if value.is_empty() {
            self.push(path, ProblemKind::Required);
        } else if !is_dns_label(value) {
            self.push(
                path,
                ProblemKind::InvalidLabelName {
                    value: value.into(),
                },
            );
        }
    }

    fn interval(&mut self, path: String, value: &Option<String>) {
        let Some(value) = value else { return };
        match parse_go_duration(value) {
            Err(e) => self.push(path, ProblemKind::Duration(e)),
            Ok(d) if d < MIN_ROTATION_INTERVAL => self.push(
                path,
                ProblemKind::OutOfRange {
                    value: value.clone(),
                    range: "at least 1s",
                },
            ),
            Ok(_) => {}
        }
    }

    fn regex(&mut self, path: String, pattern: &str) {
        if let Err(e) = regex::Regex::new(pattern) {
            self.push(
                path,
                ProblemKind::InvalidRegex {
                    pattern: pattern.into(),
                    reason: first_line(&e.to_string()),
                },
            );
        }
    }
}

fn first_line(s: &str) -> String {
    // regex errors span several lines with a caret diagram; the last line says what is wrong.
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

/// Validates an ExternalSecret: its name, and every check of [`validate_external_secret_spec`]
/// under `spec`.
pub fn validate_external_secret(es: &ExternalSecret) -> Result<(), Invalid> {
    let mut c = Checker::new();
    c.name("metadata", &es.metadata);
    check_external_secret_spec(&mut c, "spec", &es.spec);
    c.finish("ExternalSecret", &es.metadata)
}

/// The problems of an ExternalSecret spec, with paths under `prefix` (e.g. `spec` or
/// `spec.externalSecretSpec`).
pub fn validate_external_secret_spec(prefix: &str, spec: &ExternalSecretSpec) -> Vec<Problem> {
    let mut c = Checker::new();
    check_external_secret_spec(&mut c, prefix, spec);
    c.problems
}

fn check_external_secret_spec(c: &mut Checker, p: &str, spec: &ExternalSecretSpec) {
    let provider = spec.provider();
    // Secret key -> path of the entry that writes it first.
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |c: &mut Checker, key: &str, path: String| {
        if !is_valid_secret_key(key) {
            return;
        }
        match written.get(key) {
            Some(first) => c.push(
                path,
                ProblemKind::DuplicateSecretKey {
                    key: key.into(),
                    first: first.clone(),
                },
            ),
            None => {
                written.insert(key.into(), path);
            }
        }
    };

    for (i, d) in spec.data().iter().enumerate() {
        let dp = format!("{p}.data[{i}]");
        check_data_source(c, &dp, d, provider);
        if let Some(name) = &d.name {
            c.secret_key(format!("{dp}.name"), name);
        }
        match (d.secret_key(), d.name.as_deref()) {
            (Some(key), Some(name)) if !name.is_empty() => claim(c, key, format!("{dp}.name")),
            (Some(key), _) => {
                if !d.key.is_empty() && !is_valid_secret_key(key) {
                    c.push(
                        dp.clone(),
                        ProblemKind::KeyNeedsName {
                            key: key.to_owned(),
                        },
                    );
                }
                claim(c, key, format!("{dp}.key"));
            }
            (None, _) => {}
        }
        for (j, item) in d.jmes_path().iter().enumerate() {
            claim(
                c,
                &item.object_alias,
                format!("{dp}.jmesPath[{j}].objectAlias"),
            );
        }
    }

    for (i, proc) in spec.data_process().iter().enumerate() {
        let pp = format!("{p}.dataProcess[{i}]");
        match &proc.extract {
            None => c.push(format!("{pp}.extract"), ProblemKind::Required),
            Some(d) => {
                check_data_source(c, &format!("{pp}.extract"), d, provider);
                for (j, item) in d.jmes_path().iter().enumerate() {
                    claim(
                        c,
                        &item.object_alias,
                        format!("{pp}.extract.jmesPath[{j}].objectAlias"),
                    );
                }
            }
        }
        for (j, rule) in proc.replace_rule.iter().flatten().enumerate() {
            c.regex(format!("{pp}.replaceRule[{j}].source"), &rule.source);
        }
    }

    let target = spec.target.as_ref();
    let template = target.and_then(|t| t.template.as_ref());
    if spec.data().is_empty() && spec.data_process().is_empty() && template.is_none() {
        c.push(p.to_owned(), ProblemKind::NoData);
    }

    if let (Some(outer), Some(inner)) = (
        spec.type_.as_deref().filter(|t| !t.is_empty()),
        template
            .and_then(|t| t.type_.as_deref())
            .filter(|t| !t.is_empty()),
    ) && outer != inner
    {
        c.push(
            format!("{p}.type"),
            ProblemKind::Conflict {
                other: format!("{p}.target.template.type"),
                detail: "the two Secret types differ",
            },
        );
    }

    c.interval(format!("{p}.rotationInterval"), &spec.rotation_interval);
    if spec.rotation_interval.is_some()
        && let Some(policy) = spec.refresh_policy
        && policy != super::external_secret::RefreshPolicy::Periodic
    {
        c.push(
            format!("{p}.rotationInterval"),
            ProblemKind::Conflict {
                other: format!("{p}.refreshPolicy"),
                detail: "rotationInterval only applies with refreshPolicy Periodic",
            },
        );
    }

    if let Some(t) = target {
        let tp = format!("{p}.target");
        if let Some(name) = &t.name {
            c.object_name(format!("{tp}.name"), name);
        }
        if t.deletion_policy == Some(super::external_secret::DeletionPolicy::Delete)
            && t.creation_policy
                .is_some_and(|cp| cp != super::external_secret::CreationPolicy::Owner)
        {
            c.push(
                format!("{tp}.deletionPolicy"),
                ProblemKind::Conflict {
                    other: format!("{tp}.creationPolicy"),
                    detail: "deletionPolicy Delete requires creationPolicy Owner: kmsync only deletes Secrets it created",
                },
            );
        }
        if let Some(tpl) = &t.template {
            let tt = format!("{tp}.template");
            for key in tpl.data.iter().flat_map(|m| m.keys()) {
                c.secret_key(format!("{tt}.data[{key:?}]"), key);
            }
            for (i, from) in tpl.template_from.iter().flatten().enumerate() {
                let fp = format!("{tt}.templateFrom[{i}]");
                let set = [
                    from.config_map.is_some(),
                    from.secret.is_some(),
                    from.literal.is_some(),
                ];
                if set.iter().filter(|s| **s).count() != 1 {
                    c.push(
                        fp.clone(),
                        ProblemKind::ExactlyOneOf {
                            fields: "configMap, secret, literal",
                        },
                    );
                }
                for (field, r) in [("configMap", &from.config_map), ("secret", &from.secret)] {
                    let Some(r) = r else { continue };
                    c.object_name(format!("{fp}.{field}.name"), &r.name);
                    if r.items.is_empty() {
                        c.push(format!("{fp}.{field}.items"), ProblemKind::Required);
                    }
                    for (j, item) in r.items.iter().enumerate() {
                        c.secret_key(format!("{fp}.{field}.items[{j}].key"), &item.key);
                    }
                }
            }
        }
    }

    let mut rule_names = HashSet::new();
    for (i, rule) in spec.rules().iter().enumerate() {
        let rp = format!("{p}.rules[{i}]");
        if let Some(name) = &rule.name {
            c.label_name(format!("{rp}.name"), name);
        }
        if !rule_names.insert(rule.display_name()) {
            c.push(
                format!("{rp}.name"),
                ProblemKind::Duplicate {
                    value: rule.display_name(),
                },
            );
        }
        check_rule_module(c, &format!("{rp}.module"), &rule.module);
        if let Some(hooks) = &rule.hooks {
            if hooks.is_empty() {
                c.push(format!("{rp}.hooks"), ProblemKind::Required);
            }
            let mut seen = HashSet::new();
            for (j, h) in hooks.iter().enumerate() {
                if !seen.insert(*h) {
                    c.push(
                        format!("{rp}.hooks[{j}]"),
                        ProblemKind::Duplicate {
                            value: format!("{h:?}").to_lowercase(),
                        },
                    );
                }
            }
        }
    }
}

fn check_rule_module(c: &mut Checker, mp: &str, m: &RuleModule) {
    match (&m.builtin, &m.config_map) {
        (Some(_), Some(_)) | (None, None) => c.push(
            mp.to_owned(),
            ProblemKind::ExactlyOneOf {
                fields: "builtin, configMap",
            },
        ),
        _ => {}
    }
    if let Some(b) = &m.builtin {
        c.label_name(format!("{mp}.builtin"), b);
        if m.sha256.is_some() {
            c.push(
                format!("{mp}.sha256"),
                ProblemKind::Conflict {
                    other: format!("{mp}.builtin"),
                    detail: "built-in modules are not pinned by digest",
                },
            );
        }
    }
    if let Some(cm) = &m.config_map {
        c.object_name(format!("{mp}.configMap.name"), &cm.name);
        c.secret_key(format!("{mp}.configMap.key"), &cm.key);
        match &m.sha256 {
            None => c.push(format!("{mp}.sha256"), ProblemKind::Required),
            Some(s) if !is_sha256_hex(s) => c.push(
                format!("{mp}.sha256"),
                ProblemKind::InvalidSha256 { value: s.clone() },
            ),
            Some(_) => {}
        }
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_data_source(c: &mut Checker, dp: &str, d: &DataSource, provider: Provider) {
    if d.key.is_empty() {
        c.push(format!("{dp}.key"), ProblemKind::Required);
    }
    if let Some(r) = &d.secret_store_ref {
        c.object_name(format!("{dp}.secretStoreRef.name"), &r.name);
        if let Some(ns) = &r.namespace {
            c.label_name(format!("{dp}.secretStoreRef.namespace"), ns);
        }
    }
    for (j, item) in d.jmes_path().iter().enumerate() {
        let jp = format!("{dp}.jmesPath[{j}]");
        if item.path.is_empty() {
            c.push(format!("{jp}.path"), ProblemKind::Required);
        } else if let Err(e) = jmespath::compile(&item.path) {
            c.push(
                format!("{jp}.path"),
                ProblemKind::InvalidJmesPath {
                    expression: item.path.clone(),
                    reason: e.to_string().lines().next().unwrap_or_default().to_owned(),
                },
            );
        }
        c.secret_key(format!("{jp}.objectAlias"), &item.object_alias);
    }
    if let Some(ep) = &d.kms_endpoint {
        if provider == Provider::Oos {
            c.push(
                format!("{dp}.kmsEndpoint"),
                ProblemKind::NotForProvider { provider: "oos" },
            );
        } else if !is_endpoint_shaped(ep) {
            c.push(
                format!("{dp}.kmsEndpoint"),
                ProblemKind::InvalidEndpoint { value: ep.clone() },
            );
        }
    }
}

/// A host[:port] or https://host[:port][/] — the endpoint policy (allowed hosts) is applied
/// by the Alibaba client, not here.
fn is_endpoint_shaped(ep: &str) -> bool {
    let rest = ep
        .strip_prefix("https://")
        .or_else(|| ep.strip_prefix("http://"))
        .unwrap_or(ep);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':')
}

/// Validates a SecretStore.
pub fn validate_secret_store(store: &SecretStore) -> Result<(), Invalid> {
    let mut c = Checker::new();
    c.name("metadata", &store.metadata);
    check_store_provider(&mut c, store.spec.provider(), false);
    c.finish("SecretStore", &store.metadata)
}

/// Validates a ClusterSecretStore: as a SecretStore, plus namespaces required on every
/// reference, `conditions` and `keyNamePolicy`.
pub fn validate_cluster_secret_store(store: &ClusterSecretStore) -> Result<(), Invalid> {
    let mut c = Checker::new();
    c.name("metadata", &store.metadata);
    check_store_provider(&mut c, store.spec.provider(), true);
    check_conditions(&mut c, "spec.conditions", store.spec.conditions.as_deref());
    if let Some(policy) = &store.spec.key_name_policy {
        check_key_name_policy(&mut c, "spec.keyNamePolicy", policy);
    }
    c.finish("ClusterSecretStore", &store.metadata)
}

/// Validates a ClusterExternalSecret, including its embedded ExternalSecret spec.
pub fn validate_cluster_external_secret(ces: &ClusterExternalSecret) -> Result<(), Invalid> {
    let mut c = Checker::new();
    c.name("metadata", &ces.metadata);
    check_external_secret_spec(
        &mut c,
        "spec.externalSecretSpec",
        &ces.spec.external_secret_spec,
    );
    if let Some(name) = &ces.spec.external_secret_name {
        c.object_name("spec.externalSecretName".into(), name);
    }
    for (i, sel) in ces.spec.namespace_selectors.iter().flatten().enumerate() {
        check_selector(&mut c, &format!("spec.namespaceSelectors[{i}]"), sel);
    }
    check_conditions(&mut c, "spec.conditions", ces.spec.conditions.as_deref());
    c.interval("spec.rotationInterval".into(), &ces.spec.rotation_interval);
    c.finish("ClusterExternalSecret", &ces.metadata)
}

fn check_store_provider(c: &mut Checker, provider: StoreProvider<'_>, cluster: bool) {
    match (provider.kms, provider.oos) {
        (Some(_), Some(_)) | (None, None) => {
            c.push("spec", ProblemKind::ExactlyOneOf { fields: "KMS, OOS" })
        }
        _ => {}
    }
    if let Some(kms) = provider.kms {
        if kms.kms_auth.is_some() && kms.dedicated_kms_auth.is_some() {
            c.push(
                "spec.KMS",
                ProblemKind::AtMostOneOf {
                    fields: "KMSAuth, dedicatedKMSAuth",
                },
            );
        }
        if let Some(auth) = &kms.kms_auth {
            check_cloud_auth(c, "spec.KMS.KMSAuth", auth, cluster);
        }
        if let Some(dedicated) = &kms.dedicated_kms_auth {
            check_dedicated(c, "spec.KMS.dedicatedKMSAuth", dedicated, cluster);
        }
    }
    if let Some(auth) = provider.oos.and_then(|o| o.oos_auth.as_ref()) {
        check_cloud_auth(c, "spec.OOS.OOSAuth", auth, cluster);
    }
}

fn check_secret_ref(c: &mut Checker, path: &str, r: &SecretKeyRef, cluster: bool) {
    c.object_name(format!("{path}.name"), &r.name);
    c.secret_key(format!("{path}.key"), &r.key);
    match &r.namespace {
        Some(ns) => c.label_name(format!("{path}.namespace"), ns),
        None if cluster => c.push(format!("{path}.namespace"), ProblemKind::Required),
        None => {}
    }
}

fn check_service_account_ref(c: &mut Checker, path: &str, r: &ServiceAccountRef, cluster: bool) {
    c.object_name(format!("{path}.name"), &r.name);
    match &r.namespace {
        Some(ns) => c.label_name(format!("{path}.namespace"), ns),
        None if cluster => c.push(format!("{path}.namespace"), ProblemKind::Required),
        None => {}
    }
    for (i, aud) in r.audiences.iter().flatten().enumerate() {
        if aud.is_empty() {
            c.push(format!("{path}.audiences[{i}]"), ProblemKind::Required);
        }
    }
}

fn check_arn(c: &mut Checker, path: String, value: &str, expected: &'static str) {
    let ok = value
        .strip_prefix("acs:ram::")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(account, rest)| {
            let name = rest.strip_prefix(expected)?.strip_prefix('/')?;
            (!account.is_empty() && !name.is_empty()).then_some(())
        })
        .is_some();
    if !ok {
        c.push(
            path,
            ProblemKind::InvalidArn {
                value: value.into(),
                expected,
            },
        );
    }
}

fn check_session_name(c: &mut Checker, path: String, value: &str) {
    let ok = (2..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !ok {
        c.push(
            path,
            ProblemKind::InvalidSessionName {
                value: value.into(),
            },
        );
    }
}

fn check_cloud_auth(c: &mut Checker, ap: &str, a: &CloudAuth, cluster: bool) {
    match (&a.access_key, &a.access_key_secret) {
        (Some(_), None) => c.push(
            format!("{ap}.accessKey"),
            ProblemKind::Requires {
                other: "accessKeySecret",
            },
        ),
        (None, Some(_)) => c.push(
            format!("{ap}.accessKeySecret"),
            ProblemKind::Requires { other: "accessKey" },
        ),
        _ => {}
    }
    if let Some(r) = &a.access_key {
        check_secret_ref(c, &format!("{ap}.accessKey"), r, cluster);
    }
    if let Some(r) = &a.access_key_secret {
        check_secret_ref(c, &format!("{ap}.accessKeySecret"), r, cluster);
    }
    let set = non_empty;
    if let Some(arn) = set(&a.ram_role_arn) {
        check_arn(c, format!("{ap}.ramRoleARN"), arn, "role");
    }
    if let Some(arn) = set(&a.oidc_provider_arn) {
        check_arn(c, format!("{ap}.oidcProviderARN"), arn, "oidc-provider");
        if set(&a.ram_role_arn).is_none() {
            c.push(
                format!("{ap}.oidcProviderARN"),
                ProblemKind::Requires {
                    other: "ramRoleARN",
                },
            );
        }
    }
    if let Some(arn) = set(&a.remote_ram_role_arn) {
        check_arn(c, format!("{ap}.remoteRamRoleARN"), arn, "role");
    }
    if let Some(arn) = set(&a.remote_ram_role_arn_alias) {
        check_arn(c, format!("{ap}.remoteRamRoleArn"), arn, "role");
        if let Some(canonical) = set(&a.remote_ram_role_arn)
            && canonical != arn
        {
            c.push(
                format!("{ap}.remoteRamRoleArn"),
                ProblemKind::Conflict {
                    other: format!("{ap}.remoteRamRoleARN"),
                    detail: "the two spellings name different roles",
                },
            );
        }
    }
    if let Some(name) = set(&a.ram_role_session_name) {
        check_session_name(c, format!("{ap}.ramRoleSessionName"), name);
    }
    if let Some(name) = set(&a.remote_ram_role_session_name) {
        check_session_name(c, format!("{ap}.remoteRamRoleSessionName"), name);
    }
    if let Some(path) = set(&a.oidc_token_file_path)
        && !path.starts_with('/')
    {
        c.push(
            format!("{ap}.oidcTokenFilePath"),
            ProblemKind::NotAbsolute { value: path.into() },
        );
    }
    if let Some(value) = set(&a.role_session_expiration) {
        match a.role_session_expiration() {
            Err(_) => c.push(
                format!("{ap}.roleSessionExpiration"),
                ProblemKind::Unsupported {
                    value: value.into(),
                    expected: "whole seconds (\"3600\") or a duration (\"1h\")",
                },
            ),
            Ok(d) if !(MIN_ROLE_SESSION_EXPIRATION..=MAX_ROLE_SESSION_EXPIRATION).contains(&d) => c
                .push(
                    format!("{ap}.roleSessionExpiration"),
                    ProblemKind::OutOfRange {
                        value: value.into(),
                        range: "900s to 43200s",
                    },
                ),
            Ok(_) => {}
        }
    }
    if let Some(sa) = &a.service_account_ref {
        check_service_account_ref(c, &format!("{ap}.serviceAccountRef"), sa, cluster);
    }
}

fn check_dedicated(c: &mut Checker, dp: &str, d: &DedicatedKmsAuth, cluster: bool) {
    if !d.protocol.eq_ignore_ascii_case("https") {
        c.push(
            format!("{dp}.protocol"),
            ProblemKind::Unsupported {
                value: d.protocol.clone(),
                expected: "https",
            },
        );
    }
    if d.endpoint.is_empty() {
        c.push(format!("{dp}.endpoint"), ProblemKind::Required);
    } else if !is_endpoint_shaped(&d.endpoint) {
        c.push(
            format!("{dp}.endpoint"),
            ProblemKind::InvalidEndpoint {
                value: d.endpoint.clone(),
            },
        );
    }
    if let Some(ca) = d.ca.as_deref().filter(|s| !s.is_empty()) {
        let compact: String = ca.chars().filter(|ch| !ch.is_whitespace()).collect();
        let pem = base64::engine::general_purpose::STANDARD.decode(compact);
        if !pem.is_ok_and(|b| String::from_utf8_lossy(&b).contains("-----BEGIN CERTIFICATE-----")) {
            c.push(format!("{dp}.ca"), ProblemKind::InvalidCaBundle);
        }
    }
    check_secret_ref(
        c,
        &format!("{dp}.clientKeyContent"),
        &d.client_key_content,
        cluster,
    );
    check_secret_ref(c, &format!("{dp}.password"), &d.password, cluster);
}

fn check_conditions(c: &mut Checker, path: &str, conds: Option<&[NamespaceCondition]>) {
    for (i, cond) in conds.into_iter().flatten().enumerate() {
        let cp = format!("{path}[{i}]");
        if cond.is_empty() {
            c.push(cp.clone(), ProblemKind::EmptyCondition);
        }
        for (j, ns) in cond.namespaces.iter().flatten().enumerate() {
            c.label_name(format!("{cp}.namespaces[{j}]"), ns);
        }
        for (j, re) in cond.namespace_regexes.iter().flatten().enumerate() {
            c.regex(format!("{cp}.namespaceRegexes[{j}]"), re);
        }
        if let Some(sel) = &cond.namespace_selector {
            check_selector(c, &format!("{cp}.namespaceSelector"), sel);
        }
    }
}

fn check_selector(c: &mut Checker, path: &str, sel: &LabelSelector) {
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        let rp = format!("{path}.matchExpressions[{i}]");
        let has_values = req.values.as_ref().is_some_and(|v| !v.is_empty());
        let detail = match req.operator.as_str() {
            "In" | "NotIn" if !has_values => Some("needs at least one value"),
            "Exists" | "DoesNotExist" if has_values => Some("takes no values"),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => None,
            _ => Some("is unknown; use In, NotIn, Exists or DoesNotExist"),
        };
        if let Some(detail) = detail {
            c.push(
                format!("{rp}.operator"),
                ProblemKind::InvalidSelector {
                    operator: req.operator.clone(),
                    detail,
                },
            );
        }
    }
}

fn check_key_name_policy(c: &mut Checker, path: &str, policy: &KeyNamePolicy) {
    if policy.allowed_keys.is_empty() {
        c.push(format!("{path}.allowedKeys"), ProblemKind::Required);
    }
    for (i, pattern) in policy.allowed_keys.iter().enumerate() {
        let pp = format!("{path}.allowedKeys[{i}]");
        if pattern.is_empty() {
            c.push(pp, ProblemKind::Required);
            continue;
        }
        let stripped = pattern.replace(NAMESPACE_PLACEHOLDER, "");
        if stripped.contains('{') || stripped.contains('}') {
            c.push(
                pp,
                ProblemKind::UnknownPlaceholder {
                    value: pattern.clone(),
                },
            );
        }
    }
}
