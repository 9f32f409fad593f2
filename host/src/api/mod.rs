//! The custom resources kmsync serves, in group `alibabacloud.com`, version `v1alpha1`:
//! [`ExternalSecret`], [`SecretStore`], [`ClusterSecretStore`] and [`ClusterExternalSecret`].
//!
//! They keep ack-secret-manager's wire names (v0.5 and v0.6) so its manifests apply unchanged,
//! and add kmsync's fields (rules, ownership and refresh policies, key-name policy, richer
//! status). Nothing here does I/O:
//!
//! ```text
//! YAML ──parse_manifests──▶ Manifest::{ExternalSecret, SecretStore, ...}
//!                              │
//!                              ├─ accessors: effective defaults (provider(), creation_policy(), ...)
//!                              └─ Validate::validate(): every problem, with its field path
//! ```
//!
//! Optional fields carry no schema `default` (defaults written by the API server show up as
//! drift in GitOps tools); effective defaults live in the accessors. The CRD YAML is generated
//! from these types by [`crds_yaml`] and committed at `charts/kmsync/crds/kmsync-crds.yaml`.

mod cluster_external_secret;
mod common;
mod duration;
mod external_secret;
mod manifest;
mod secret_store;
mod validate;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use cluster_external_secret::*;
pub use common::*;
pub use duration::*;
pub use external_secret::*;
pub use manifest::*;
pub use secret_store::*;
pub use validate::*;

/// API group of every kind.
pub const GROUP: &str = "alibabacloud.com";
/// API version of every kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every kind.
pub const API_VERSION: &str = "alibabacloud.com/v1alpha1";

/// The four CustomResourceDefinitions, in a fixed order: ExternalSecret, SecretStore,
/// ClusterSecretStore, ClusterExternalSecret.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ExternalSecret::crd(),
        SecretStore::crd(),
        ClusterSecretStore::crd(),
        ClusterExternalSecret::crd(),
    ]
}

/// All four CRDs as one multi-document YAML stream (deterministic: same types, same bytes),
/// each document starting with `---`. This is what `charts/kmsync/crds/kmsync-crds.yaml` holds.
pub fn crds_yaml() -> String {
    let mut out = String::from(
        "# Generated from the Rust types in host/src/api by `cargo run -p kmsync --example crdgen`.\n\
         # Do not edit by hand.\n",
    );
    for crd in crds() {
        out.push_str("---\n");
        // Serialising these plain data types cannot fail.
        out.push_str(&serde_yaml_ng::to_string(&crd).expect("CRD serialises to YAML"));
    }
    out
}

#[cfg(test)]
mod tests;
