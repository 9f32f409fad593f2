//! Which namespace a store's credential references point into, and whether that is allowed
//! (pure functions; `shared/docs/security.md`, "Tenant names another namespace's ... credential
//! Secret").
//!
//! | Store | Reference without `namespace` | Reference with `namespace: X` |
//! |---|---|---|
//! | SecretStore in `ns` | `ns` | `ns` if `X == ns`; `X` only with `--enable-cross-namespace-auth-ref`, else [`ReferenceError::CrossNamespace`] |
//! | ClusterSecretStore | [`ReferenceError::NamespaceRequired`] | `X` |
//!
//! ack-secret-manager allowed cross-namespace references by default (its known fault 3); kmsync
//! refuses them unless the operator opts in.

use crate::api::CloudAuth;

/// The scope of the store that holds a reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreScope<'a> {
    /// A namespaced `SecretStore` in this namespace.
    Namespaced {
        /// The store's namespace.
        namespace: &'a str,
    },
    /// A cluster-scoped `ClusterSecretStore`.
    Cluster,
}

/// A reference that breaks the cross-namespace rules. Messages name the field and namespaces.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// A SecretStore names another namespace while cross-namespace references are disabled.
    #[error(
        "{field}.namespace is {namespace:?}, but a SecretStore in namespace {store_namespace:?} may only reference objects in its own namespace (start the controller with --enable-cross-namespace-auth-ref to allow this)"
    )]
    CrossNamespace {
        /// Field path of the reference, e.g. `spec.KMS.KMSAuth.accessKey`.
        field: String,
        /// The store's namespace.
        store_namespace: String,
        /// The namespace the reference names.
        namespace: String,
    },
    /// A ClusterSecretStore reference without `namespace`.
    #[error(
        "{field}.namespace is required: a ClusterSecretStore must name the namespace of every object it references"
    )]
    NamespaceRequired {
        /// Field path of the reference.
        field: String,
    },
}

impl ReferenceError {
    /// Bounded label for metrics: the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::CrossNamespace { .. } => "cross_namespace",
            Self::NamespaceRequired { .. } => "namespace_required",
        }
    }
}

/// The namespace a reference at `field` (e.g. `spec.KMS.KMSAuth.accessKey`) resolves to.
/// Usable for every credential reference kind (Secret keys, ServiceAccounts, client keys).
///
/// # Errors
/// [`ReferenceError`] per the table in the module docs.
pub fn reference_namespace(
    scope: StoreScope<'_>,
    field: &str,
    namespace: Option<&str>,
    allow_cross_namespace: bool,
) -> Result<String, ReferenceError> {
    let namespace = namespace.filter(|ns| !ns.is_empty());
    match (scope, namespace) {
        (StoreScope::Cluster, Some(ns)) => Ok(ns.to_owned()),
        (StoreScope::Cluster, None) => Err(ReferenceError::NamespaceRequired {
            field: field.to_owned(),
        }),
        (StoreScope::Namespaced { namespace: store }, None) => Ok(store.to_owned()),
        (StoreScope::Namespaced { namespace: store }, Some(ns)) => {
            if ns == store || allow_cross_namespace {
                Ok(ns.to_owned())
            } else {
                Err(ReferenceError::CrossNamespace {
                    field: field.to_owned(),
                    store_namespace: store.to_owned(),
                    namespace: ns.to_owned(),
                })
            }
        }
    }
}

/// The namespaces of every reference in `auth` (at field path `auth_path`, e.g.
/// `spec.KMS.KMSAuth`): `accessKey`, `accessKeySecret`, `serviceAccountRef`, in that order,
/// as `(field, namespace)` pairs for the references that are set.
///
/// # Errors
/// The first [`ReferenceError`] found, in the order above.
pub fn check_auth_references(
    scope: StoreScope<'_>,
    auth_path: &str,
    auth: &CloudAuth,
    allow_cross_namespace: bool,
) -> Result<Vec<(String, String)>, ReferenceError> {
    let mut out = Vec::new();
    let refs = [
        ("accessKey", auth.access_key.as_ref().map(|r| &r.namespace)),
        (
            "accessKeySecret",
            auth.access_key_secret.as_ref().map(|r| &r.namespace),
        ),
        (
            "serviceAccountRef",
            auth.service_account_ref.as_ref().map(|r| &r.namespace),
        ),
    ];
    for (leaf, ns) in refs {
        if let Some(ns) = ns {
            let field = format!("{auth_path}.{leaf}");
            let resolved =
                reference_namespace(scope, &field, ns.as_deref(), allow_cross_namespace)?;
            out.push((field, resolved));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SecretKeyRef, ServiceAccountRef};

    const NS: StoreScope<'static> = StoreScope::Namespaced {
        namespace: "team-a",
    };

    #[test]
    fn a_namespaced_store_defaults_to_its_own_namespace() {
        assert_eq!(reference_namespace(NS, "f", None, false).unwrap(), "team-a");
        assert_eq!(
            reference_namespace(NS, "f", Some(""), false).unwrap(),
            "team-a"
        );
        assert_eq!(
            reference_namespace(NS, "f", Some("team-a"), false).unwrap(),
            "team-a"
        );
    }

    #[test]
    fn a_namespaced_store_may_not_reach_into_another_namespace_unless_allowed() {
        let err = reference_namespace(NS, "spec.KMS.KMSAuth.accessKey", Some("kube-system"), false)
            .unwrap_err();
        assert_eq!(
            err,
            ReferenceError::CrossNamespace {
                field: "spec.KMS.KMSAuth.accessKey".into(),
                store_namespace: "team-a".into(),
                namespace: "kube-system".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.KMS.KMSAuth.accessKey.namespace is \"kube-system\", but a SecretStore in namespace \"team-a\" may only reference objects in its own namespace (start the controller with --enable-cross-namespace-auth-ref to allow this)"
        );
        assert_eq!(err.metric_label(), "cross_namespace");
        assert_eq!(
            reference_namespace(NS, "f", Some("kube-system"), true).unwrap(),
            "kube-system"
        );
    }

    #[test]
    fn a_cluster_store_must_name_the_namespace_of_each_reference() {
        let err = reference_namespace(
            StoreScope::Cluster,
            "spec.OOS.OOSAuth.serviceAccountRef",
            None,
            true,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.OOS.OOSAuth.serviceAccountRef.namespace is required: a ClusterSecretStore must name the namespace of every object it references"
        );
        assert_eq!(
            reference_namespace(StoreScope::Cluster, "f", Some("ops"), false).unwrap(),
            "ops"
        );
    }

    #[test]
    fn every_reference_of_an_auth_block_is_checked_in_order() {
        let sref = |ns: Option<&str>| SecretKeyRef {
            name: "ak".into(),
            namespace: ns.map(str::to_owned),
            key: "k".into(),
        };
        let auth = CloudAuth {
            access_key: Some(sref(None)),
            access_key_secret: Some(sref(Some("other"))),
            service_account_ref: Some(ServiceAccountRef {
                name: "sa".into(),
                namespace: None,
                audiences: None,
            }),
            ..CloudAuth::default()
        };
        let err = check_auth_references(NS, "spec.KMS.KMSAuth", &auth, false).unwrap_err();
        assert!(
            matches!(&err, ReferenceError::CrossNamespace { field, .. } if field == "spec.KMS.KMSAuth.accessKeySecret"),
            "{err}"
        );
        let ok = check_auth_references(NS, "spec.KMS.KMSAuth", &auth, true).unwrap();
        assert_eq!(
            ok,
            vec![
                ("spec.KMS.KMSAuth.accessKey".to_owned(), "team-a".to_owned()),
                (
                    "spec.KMS.KMSAuth.accessKeySecret".to_owned(),
                    "other".to_owned()
                ),
                (
                    "spec.KMS.KMSAuth.serviceAccountRef".to_owned(),
                    "team-a".to_owned()
                ),
            ]
        );
        let err = check_auth_references(StoreScope::Cluster, "spec.KMS.KMSAuth", &auth, true)
            .unwrap_err();
        assert_eq!(
            err,
            ReferenceError::NamespaceRequired {
                field: "spec.KMS.KMSAuth.accessKey".into()
            }
        );
        assert!(
            check_auth_references(StoreScope::Cluster, "p", &CloudAuth::default(), false)
                .unwrap()
                .is_empty()
        );
    }
}
