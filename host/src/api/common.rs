//! Types shared by several kinds: references to Secrets and ServiceAccounts, status conditions,
//! namespace conditions (who may use a cluster-scoped object), and the name checks Kubernetes
//! applies to Secret keys and object names.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// JSON-schema pattern for a key in a Secret's `data` (Kubernetes' `IsConfigMapKey`).
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// JSON-schema pattern for an RFC 1123 DNS subdomain (Secret, ConfigMap and store names).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// JSON-schema pattern for an RFC 1123 DNS label (namespace names).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// True when `key` may be used as a key in a Secret's `data`: 1–253 characters from
/// `[-._a-zA-Z0-9]`, and not `.`, `..` or starting with `..` (the rules of Kubernetes'
/// `IsConfigMapKey`, which the API server applies to Secrets).
pub fn is_valid_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && key != "."
        && !key.starts_with("..")
}

/// True when `name` is an RFC 1123 DNS label: at most 63 lowercase alphanumerics or `-`,
/// starting and ending with an alphanumeric (namespace names).
pub fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// True when `name` is an RFC 1123 DNS subdomain: at most 253 characters, dot-separated DNS
/// labels (names of Secrets, ConfigMaps, ServiceAccounts and stores).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// A key in a Kubernetes Secret (ack-secret-manager's `SecretRef`), e.g. an AccessKey ID.
///
/// For a SecretStore the Secret lives in the store's namespace unless `namespace` says otherwise
/// (cross-namespace references are refused unless the controller runs with
/// `--enable-cross-namespace-auth-ref`). For a ClusterSecretStore `namespace` is required.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the Secret. Optional for a SecretStore (defaults to the store's namespace);
    /// required for a ClusterSecretStore. ack-secret-manager v0.5 required it everywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
    /// Key within the Secret's `data`.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

/// A ServiceAccount whose token is exchanged for STS credentials (RRSA): kmsync requests a
/// short-lived token through the TokenRequest API and assumes the role named by the
/// ServiceAccount's `ack.alibabacloud.com/role-arn` annotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ServiceAccountRef {
    /// Name of the ServiceAccount.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the ServiceAccount. Optional for a SecretStore (defaults to the store's
    /// namespace); required for a ClusterSecretStore.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
    /// Audiences of the requested token. Unset means `["sts.aliyuncs.com"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
}

/// The audience kmsync requests for RRSA tokens when `audiences` is not set.
pub const DEFAULT_TOKEN_AUDIENCE: &str = "sts.aliyuncs.com";

impl ServiceAccountRef {
    /// Effective audiences: `audiences` when set and non-empty, else `["sts.aliyuncs.com"]`.
    pub fn audiences(&self) -> Vec<&str> {
        match &self.audiences {
            Some(list) if !list.is_empty() => list.iter().map(String::as_str).collect(),
            _ => vec![DEFAULT_TOKEN_AUDIENCE],
        }
    }
}

/// Whether the condition holds: `True`, `False` or `Unknown` (Kubernetes'
/// `metav1.ConditionStatus`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// It is not known (yet) whether the condition holds.
    Unknown,
}

/// A status condition in Kubernetes' standard shape (`metav1.Condition`). kmsync writes one of
/// type `Ready` on every kind. `reason`, `message` and `lastTransitionTime` are optional here
/// only so that status left behind by ack-secret-manager still reads; kmsync always sets them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable CamelCase reason for the last transition, e.g. `Synced`,
    /// `FetchFailed`, `InvalidSpec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail: the real (sanitised) error, never a secret value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `metadata.generation` of the object when this condition was last set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// The condition type kmsync maintains on every kind.
pub const CONDITION_READY: &str = "Ready";

/// The current time as a status time: whole seconds. Kubernetes keeps a `metav1.Time` to the
/// second (RFC 3339 without fraction, k8s-openapi serialises it so too), so a status read back
/// from the API server equals the one written only if no fraction was there to lose.
pub fn status_time_now() -> Time {
    status_time(k8s_openapi::jiff::Timestamp::now())
}

/// `t` cut to whole seconds (see [`status_time_now`]).
pub fn status_time(t: k8s_openapi::jiff::Timestamp) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// Finds the condition of type `type_` in a list.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

impl Condition {
    /// A `Ready` condition with every field set, as the controller writes it.
    pub fn ready(
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
        observed_generation: Option<i64>,
        now: Time,
    ) -> Self {
        Self {
            type_: CONDITION_READY.to_owned(),
            status,
            reason: Some(reason.into()),
            message: Some(message.into()),
            observed_generation,
            last_transition_time: Some(now),
        }
    }
}

/// Puts `new` into `conditions`, replacing the condition of the same type (or appending it).
///
/// Following the Kubernetes convention, `lastTransitionTime` says when the *status* last
/// changed: when the old condition had the same status and a transition time, that time is
/// kept. Returns true when anything visible changed (so the caller knows whether a status
/// write is needed).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status && old.last_transition_time.is_some() {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = *old != new;
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Selects namespaces (ack-secret-manager v0.6 `ClusterSecretStoreCondition` /
/// `ClusterExternalSecretCondition`). Within one condition every field that is set must match
/// (ANDed); a list of conditions is ORed. A condition with no field set matches nothing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceCondition {
    /// Matches namespaces by their labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Matches namespaces by exact name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(inner(length(min = 1, max = 63), regex(pattern = DNS_LABEL_PATTERN)))]
    pub namespaces: Option<Vec<String>>,
    /// Matches namespaces whose whole name matches one of these regular expressions
    /// (`prod-.*`, not `prod-`). An invalid expression matches nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_regexes: Option<Vec<String>>,
}

impl NamespaceCondition {
    /// True when no field is set (such a condition matches nothing).
    pub fn is_empty(&self) -> bool {
        self.namespace_selector.is_none()
            && self.namespaces.as_ref().is_none_or(Vec::is_empty)
            && self.namespace_regexes.as_ref().is_none_or(Vec::is_empty)
    }

    /// True when the namespace `name` with `labels` satisfies this condition: every field that
    /// is set matches (names exactly, regexes anchored at both ends, the label selector per
    /// Kubernetes' rules). Invalid regexes or selectors match nothing (fail closed).
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.is_empty() {
            return false;
        }
        if let Some(names) = self.namespaces.as_ref().filter(|n| !n.is_empty())
            && !names.iter().any(|n| n == name)
        {
            return false;
        }
        if let Some(regexes) = self.namespace_regexes.as_ref().filter(|r| !r.is_empty())
            && !regexes.iter().any(|r| full_match(r, name))
        {
            return false;
        }
        if let Some(selector) = &self.namespace_selector
            && !label_selector_matches(selector, labels)
        {
            return false;
        }
        true
    }
}

/// True when `pattern` (Rust `regex` syntax, which accepts the RE2 subset Go uses) matches the
/// whole of `text`. An invalid pattern matches nothing.
pub(crate) fn full_match(pattern: &str, text: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(text))
}

/// Evaluates a Kubernetes label selector against a label set. `matchLabels` and every
/// `matchExpressions` entry must hold. Unknown operators, or `In`/`NotIn` without values,
/// make the selector match nothing (fail closed). An empty selector matches everything.
pub fn label_selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(match_labels) = &selector.match_labels
        && !match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.as_deref().unwrap_or_default();
        let value = labels.get(&req.key);
        let ok = match req.operator.as_str() {
            "In" => !values.is_empty() && value.is_some_and(|v| values.contains(v)),
            "NotIn" => !values.is_empty() && value.is_none_or(|v| !values.contains(v)),
            "Exists" => values.is_empty() && value.is_some(),
            "DoesNotExist" => values.is_empty() && value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Returns `Some(s)` when the optional string is set and non-empty. ack-secret-manager's Go
/// types use `omitempty` strings, so an empty string there means "not set"; kmsync reads them
/// the same way.
pub(crate) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secret_keys_follow_kubernetes_rules() {
        for ok in ["a", "db-password", "tls.crt", "A_b-9.x", ".hidden", "a..b"] {
            assert!(is_valid_secret_key(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", ".", "..", "..x", "ü", &"a".repeat(254)] {
            assert!(!is_valid_secret_key(bad), "{bad}");
        }
    }

    #[test]
    fn dns_names_follow_rfc_1123() {
        assert!(is_dns_label("prod-1"));
        assert!(!is_dns_label("Prod"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("my.secret-1"));
        assert!(!is_dns_subdomain("my..secret"));
        assert!(!is_dns_subdomain("my_secret"));
    }

    #[test]
    fn namespace_condition_ands_its_fields() {
        let cond = NamespaceCondition {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(labels(&[("env", "prod")])),
                match_expressions: None,
            }),
            namespaces: None,
            namespace_regexes: Some(vec!["team-.*".into()]),
        };
        assert!(cond.matches("team-a", &labels(&[("env", "prod")])));
        assert!(!cond.matches("team-a", &labels(&[("env", "dev")])));
        assert!(!cond.matches("other", &labels(&[("env", "prod")])));
    }

    #[test]
    fn namespace_regexes_must_match_the_whole_name() {
        let cond = NamespaceCondition {
            namespace_selector: None,
            namespaces: None,
            namespace_regexes: Some(vec!["prod-".into()]),
        };
        assert!(!cond.matches("prod-a", &BTreeMap::new()));
        let cond = NamespaceCondition {
            namespace_regexes: Some(vec!["prod-.*".into(), "(".into()]),
            ..cond
        };
        assert!(cond.matches("prod-a", &BTreeMap::new()));
        assert!(!cond.matches("xprod-a", &BTreeMap::new()));
    }

    #[test]
    fn empty_condition_and_invalid_selector_match_nothing() {
        let empty = NamespaceCondition {
            namespace_selector: None,
            namespaces: Some(vec![]),
            namespace_regexes: None,
        };
        assert!(!empty.matches("default", &BTreeMap::new()));
        let bad_op = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "Like".into(),
                values: Some(vec!["prod".into()]),
            }]),
        };
        assert!(!label_selector_matches(
            &bad_op,
            &labels(&[("env", "prod")])
        ));
    }

    #[test]
    fn label_selector_operators_behave_like_kubernetes() {
        let req = |op: &str, values: &[&str]| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: op.into(),
                values: (!values.is_empty())
                    .then(|| values.iter().map(|v| v.to_string()).collect()),
            }]),
        };
        let prod = labels(&[("env", "prod")]);
        let none = BTreeMap::new();
        assert!(label_selector_matches(&req("In", &["prod", "stg"]), &prod));
        assert!(!label_selector_matches(&req("In", &["stg"]), &prod));
        assert!(label_selector_matches(&req("NotIn", &["stg"]), &prod));
        assert!(label_selector_matches(&req("NotIn", &["stg"]), &none));
        assert!(label_selector_matches(&req("Exists", &[]), &prod));
        assert!(!label_selector_matches(&req("Exists", &[]), &none));
        assert!(label_selector_matches(&req("DoesNotExist", &[]), &none));
        assert!(label_selector_matches(&LabelSelector::default(), &none));
    }

    #[test]
    fn status_times_are_whole_seconds_and_survive_a_round_trip() {
        let t = k8s_openapi::jiff::Timestamp::new(1_700_000_000, 987_654_321).unwrap();
        let time = status_time(t);
        assert_eq!(time, at(1_700_000_000));
        let back: Time = serde_json::from_value(serde_json::to_value(&time).unwrap()).unwrap();
        assert_eq!(back, time);
        assert_eq!(status_time_now().0.subsec_nanosecond(), 0);
    }

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn set_condition_keeps_the_transition_time_while_the_status_holds() {
        let mut conds = Vec::new();
        let first = Condition::ready(
            ConditionStatus::False,
            "FetchFailed",
            "boom",
            Some(1),
            at(100),
        );
        assert!(set_condition(&mut conds, first.clone()));
        // Same status, new message: the message changes, the transition time does not.
        let again = Condition::ready(
            ConditionStatus::False,
            "FetchFailed",
            "boom 2",
            Some(2),
            at(200),
        );
        assert!(set_condition(&mut conds, again));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].message.as_deref(), Some("boom 2"));
        assert_eq!(conds[0].last_transition_time, Some(at(100)));
        // Identical rewrite: nothing visible changes.
        let same = Condition::ready(
            ConditionStatus::False,
            "FetchFailed",
            "boom 2",
            Some(2),
            at(300),
        );
        assert!(!set_condition(&mut conds, same));
        // A new status moves the transition time.
        let ok = Condition::ready(ConditionStatus::True, "Synced", "ok", Some(2), at(400));
        assert!(set_condition(&mut conds, ok));
        assert_eq!(conds[0].last_transition_time, Some(at(400)));
        assert_eq!(
            find_condition(&conds, "Ready").unwrap().status,
            ConditionStatus::True
        );
    }

    #[test]
    fn service_account_audiences_default_to_sts() {
        let mut sa = ServiceAccountRef {
            name: "sa".into(),
            namespace: None,
            audiences: None,
        };
        assert_eq!(sa.audiences(), vec!["sts.aliyuncs.com"]);
        sa.audiences = Some(vec!["a".into(), "b".into()]);
        assert_eq!(sa.audiences(), vec!["a", "b"]);
    }
}
