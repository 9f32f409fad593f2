//! `ClusterExternalSecret`: one ExternalSecret spec stamped into every matching namespace
//! (ack-secret-manager v0.6).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CONDITION_READY, Condition, DNS_SUBDOMAIN_PATTERN, NamespaceCondition, find_condition,
    label_selector_matches, non_empty,
};
use super::duration::{DurationError, GO_DURATION_PATTERN, parse_go_duration};
use super::external_secret::ExternalSecretSpec;

/// Desired state of a ClusterExternalSecret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "alibabacloud.com",
    version = "v1alpha1",
    kind = "ClusterExternalSecret",
    status = "ClusterExternalSecretStatus",
    shortname = "ces",
    category = "kmsync",
    derive = "PartialEq",
    doc = "A ClusterExternalSecret creates the same ExternalSecret in every namespace matched by `spec.conditions` (or the deprecated `spec.namespaceSelectors`), and removes it from namespaces that stop matching.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretSpec {
    /// Spec of the ExternalSecret created in each namespace.
    pub external_secret_spec: ExternalSecretSpec,
    /// Name of the created ExternalSecrets. Unset: this object's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub external_secret_name: Option<String>,
    /// Labels and annotations for the created ExternalSecrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_secret_metadata: Option<ExternalSecretMetadata>,
    /// Deprecated (use `conditions`): label selectors for target namespaces, ORed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selectors: Option<Vec<LabelSelector>>,
    /// Target namespaces: a namespace is used when any condition matches. When neither this
    /// nor `namespaceSelectors` is set, every namespace is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<NamespaceCondition>>,
    /// How often to re-check namespaces, as a Go duration; default the controller's polling
    /// interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = GO_DURATION_PATTERN))]
    pub rotation_interval: Option<String>,
}

/// Labels and annotations for the ExternalSecrets a ClusterExternalSecret creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ExternalSecretMetadata {
    /// Annotations to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// What a ClusterExternalSecret reports (`status`). Written by the controller only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretStatus {
    /// Name of the created ExternalSecrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_secret_name: Option<String>,
    /// Namespaces where creating or updating the ExternalSecret failed, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_namespaces: Option<Vec<NamespaceFailure>>,
    /// Namespaces that hold the ExternalSecret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_namespaces: Option<Vec<String>>,
    /// `Ready`: every matching namespace holds the current ExternalSecret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// `metadata.generation` last processed by the controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl ClusterExternalSecretStatus {
    /// The `Ready` condition, if reported.
    pub fn ready(&self) -> Option<&Condition> {
        find_condition(
            self.conditions.as_deref().unwrap_or_default(),
            CONDITION_READY,
        )
    }
}

/// A namespace where provisioning failed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct NamespaceFailure {
    /// The namespace.
    pub namespace: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ClusterExternalSecretSpec {
    /// `rotationInterval` parsed; `Ok(None)` when unset.
    pub fn rotation_interval(&self) -> Result<Option<Duration>, DurationError> {
        non_empty(&self.rotation_interval)
            .map(parse_go_duration)
            .transpose()
    }

    /// True when the namespace `name` with `labels` should hold the ExternalSecret: any
    /// `conditions` entry or any `namespaceSelectors` entry matches; when neither list is set,
    /// every namespace matches (ack-secret-manager's behaviour). Once either is set, a
    /// namespace matching none is excluded.
    pub fn selects_namespace(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.conditions.is_none() && self.namespace_selectors.is_none() {
            return true;
        }
        self.conditions
            .iter()
            .flatten()
            .any(|c| c.matches(name, labels))
            || self
                .namespace_selectors
                .iter()
                .flatten()
                .any(|s| label_selector_matches(s, labels))
    }
}

impl ClusterExternalSecret {
    /// Name of the ExternalSecrets to create: `spec.externalSecretName`, else this object's
    /// name.
    pub fn external_secret_name(&self) -> &str {
        non_empty(&self.spec.external_secret_name)
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ces(conditions: Option<Vec<NamespaceCondition>>) -> ClusterExternalSecret {
        ClusterExternalSecret::new(
            "db",
            ClusterExternalSecretSpec {
                external_secret_spec: ExternalSecretSpec {
                    provider: None,
                    data: None,
                    data_process: None,
                    type_: None,
                    target: None,
                    rotation_interval: None,
                    refresh_policy: None,
                    rules: None,
                },
                external_secret_name: None,
                external_secret_metadata: None,
                namespace_selectors: None,
                conditions,
                rotation_interval: Some("2m".into()),
            },
        )
    }

    #[test]
    fn without_selectors_every_namespace_is_selected() {
        let c = ces(None);
        assert!(c.spec.selects_namespace("anything", &BTreeMap::new()));
        assert_eq!(c.external_secret_name(), "db");
        assert_eq!(
            c.spec.rotation_interval(),
            Ok(Some(Duration::from_secs(120)))
        );
    }

    #[test]
    fn conditions_fail_closed_for_unmatched_namespaces() {
        let c = ces(Some(vec![NamespaceCondition {
            namespace_selector: None,
            namespaces: Some(vec!["prod".into()]),
            namespace_regexes: None,
        }]));
        assert!(c.spec.selects_namespace("prod", &BTreeMap::new()));
        assert!(!c.spec.selects_namespace("dev", &BTreeMap::new()));
        let none = ces(Some(vec![]));
        assert!(!none.spec.selects_namespace("prod", &BTreeMap::new()));
    }

    #[test]
    fn deprecated_namespace_selectors_are_ored_with_conditions() {
        let mut c = ces(Some(vec![]));
        c.spec.namespace_selectors = Some(vec![LabelSelector {
            match_labels: Some([("env".to_string(), "prod".to_string())].into()),
            match_expressions: None,
        }]);
        let prod: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
        assert!(c.spec.selects_namespace("x", &prod));
        assert!(!c.spec.selects_namespace("x", &BTreeMap::new()));
    }
}
