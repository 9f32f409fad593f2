//! [`Settings`]: everything `kmsync controller` is told on its command line, as plain values
//! (the clap definitions live in `cli::controller`; `docs/operations.md` is the reference).

use std::net::SocketAddr;
use std::time::Duration;

use crate::rules::RuleLimits;

/// Which namespaces the controller serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceScope {
    /// `--watch-namespaces` / `WATCH_NAMESPACE`: only these (sorted, deduplicated). Empty: the
    /// whole cluster (and the cluster-scoped kinds are served too).
    pub watch: Vec<String>,
    /// `--exclude-namespaces`: never these (sorted, deduplicated).
    pub exclude: Vec<String>,
}

impl NamespaceScope {
    /// A scope from the raw lists: blanks dropped, sorted, deduplicated.
    ///
    /// # Errors
    /// A namespace in both lists (the message names it).
    pub fn new(
        watch: impl IntoIterator<Item = String>,
        exclude: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let clean = |list: &mut dyn Iterator<Item = String>| {
            let mut v: Vec<String> = list
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let watch = clean(&mut watch.into_iter());
        let exclude = clean(&mut exclude.into_iter());
        if let Some(both) = watch.iter().find(|ns| exclude.contains(ns)) {
            return Err(format!(
                "namespace {both:?} is both watched (--watch-namespaces) and excluded (--exclude-namespaces)"
            ));
        }
        Ok(Self { watch, exclude })
    }

    /// True when the whole cluster is watched (the cluster-scoped kinds are served).
    pub fn cluster_wide(&self) -> bool {
        self.watch.is_empty()
    }

    /// True when objects in `namespace` are served.
    pub fn contains(&self, namespace: &str) -> bool {
        (self.watch.is_empty() || self.watch.iter().any(|n| n == namespace))
            && !self.exclude.iter().any(|n| n == namespace)
    }

    /// The field selector that keeps excluded namespaces out of cluster-wide lists and
    /// watches (`metadata.namespace!=a,metadata.namespace!=b`), if any.
    pub fn exclude_field_selector(&self) -> Option<String> {
        (!self.exclude.is_empty()).then(|| {
            self.exclude
                .iter()
                .map(|ns| format!("metadata.namespace!={ns}"))
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// Lease leader election (`--leader-elect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity in `spec.holderIdentity` (`$POD_NAME`, else host name + pid).
    pub identity: String,
    /// How long a Lease lasts without renewal before another replica may take it
    /// (`spec.leaseDurationSeconds`). Default 15 s.
    pub lease_duration: Duration,
    /// How often the holder renews, and how often a candidate retries. Default 2 s.
    pub retry_period: Duration,
    /// A holder that could not renew for this long stops reconciling (it may have lost the
    /// Lease to another replica). Default 10 s; less than `lease_duration`.
    pub renew_deadline: Duration,
}

/// Everything the controller runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--region` / `ALIBABA_CLOUD_REGION_ID`.
    pub region: Option<String>,
    /// `--kms-endpoint`: default KMS endpoint (host or URL).
    pub kms_endpoint: Option<String>,
    /// `--polling-interval`: how often remote data is re-read. Default 120 s.
    pub polling_interval: Duration,
    /// `--disable-polling`: no periodic re-reads.
    pub disable_polling: bool,
    /// `--reconcile-period`: base delay of the error backoff. Default 5 s.
    pub reconcile_period: Duration,
    /// `--reconcile-count`: objects reconciled at once. Default 1.
    pub reconcile_count: usize,
    /// `--max-concurrent-kms-secret-pulls`: KMS reads in flight at once. Default 10.
    pub max_concurrent_kms_pulls: usize,
    /// `--max-concurrent-oos-secret-pulls`: OOS reads in flight at once. Default 10.
    pub max_concurrent_oos_pulls: usize,
    /// `--watch-namespaces`, `--exclude-namespaces`.
    pub namespaces: NamespaceScope,
    /// `--enable-cross-namespace-secret-store`.
    pub cross_namespace_secret_store: bool,
    /// `--enable-cross-namespace-auth-ref`.
    pub cross_namespace_auth_ref: bool,
    /// `--enable-worker-role`.
    pub enable_worker_role: bool,
    /// `--enable-service-account-token`.
    pub enable_service_account_token: bool,
    /// `--allowed-endpoints`: extra endpoint URLs an administrator trusts.
    pub allowed_endpoints: Vec<String>,
    /// `--allowed-oidc-token-paths`: files a store's `oidcTokenFilePath` may name besides the
    /// default token files (absolute paths).
    pub allowed_oidc_token_paths: Vec<std::path::PathBuf>,
    /// `--kms-qps`: requests per second per store (token bucket). Default 100.
    pub kms_qps: u32,
    /// `--leader-elect` and its settings; `None` without leader election.
    pub leader: Option<LeaderSettings>,
    /// `--metrics-bind-address`.
    pub metrics_addr: SocketAddr,
    /// `--health-probe-bind-address`.
    pub health_addr: SocketAddr,
    /// `--rule-timeout`, `--rule-memory-limit`, `--rule-max-concurrency`.
    pub rule_limits: RuleLimits,
    /// `--digest-key-secret`: name of the HMAC key Secret in [`Settings::pod_namespace`].
    pub digest_key_secret: String,
    /// `$POD_NAMESPACE`: the controller's own namespace (digest key; default Lease namespace).
    pub pod_namespace: String,
    /// Hidden `--disable-fetch-cache`: fetch every remote key for every object (the baseline
    /// of the scale benchmark).
    pub disable_fetch_cache: bool,
    /// Hidden `--redirect-endpoint`: send every cloud call (KMS, KMS instance, OOS, STS) to
    /// this origin after the endpoint policy approved what stores and entries ask for (a local
    /// emulator in tests and demos), trusting only the PEM CA of `--redirect-ca-file`.
    pub redirect: Option<crate::stores::Redirect>,
    /// Hidden `--rrsa-oidc-provider-arn`: OIDC provider for `serviceAccountRef` stores that name
    /// none.
    pub rrsa_oidc_provider_arn: Option<String>,
    /// Hidden `--request-timeout`: per-attempt timeout of cloud calls. Default 10 s.
    pub request_timeout: Duration,
    /// Hidden `--request-attempts`: attempts per cloud call (retries of throttling, 5xx and
    /// connection failures included). Default 6, as the official SDKs.
    pub request_attempts: u32,
    /// Hidden `--shutdown-timeout`: how long in-flight syncs may take after SIGTERM. Default 25 s
    /// (the pod's termination grace period is 30 s).
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// Settings with every documented default, for tests and embedding: cluster-wide, no
    /// leader election, loopback listeners on ephemeral ports, namespace `kmsync-system`.
    pub fn for_tests() -> Self {
        Self {
            region: None,
            kms_endpoint: None,
            polling_interval: Duration::from_secs(120),
            disable_polling: false,
            reconcile_period: Duration::from_secs(5),
            reconcile_count: 1,
            max_concurrent_kms_pulls: 10,
            max_concurrent_oos_pulls: 10,
            namespaces: NamespaceScope::default(),
            cross_namespace_secret_store: false,
            cross_namespace_auth_ref: false,
            enable_worker_role: false,
            enable_service_account_token: false,
            allowed_endpoints: Vec::new(),
            allowed_oidc_token_paths: Vec::new(),
            kms_qps: 100,
            leader: None,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            health_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            rule_limits: RuleLimits {
                log_to_host: false,
                ..RuleLimits::default()
            },
            digest_key_secret: "kmsync-digest-key".into(),
            pod_namespace: "kmsync-system".into(),
            disable_fetch_cache: false,
            redirect: None,
            rrsa_oidc_provider_arn: None,
            request_timeout: Duration::from_secs(10),
            request_attempts: 6,
            shutdown_timeout: Duration::from_secs(25),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_scope_cleans_its_lists_and_refuses_overlap() {
        let scope = NamespaceScope::new(
            [
                "team-b".to_owned(),
                " team-a".into(),
                "team-b".into(),
                "".into(),
            ],
            ["kube-system".to_owned()],
        )
        .unwrap();
        assert_eq!(scope.watch, ["team-a", "team-b"]);
        assert!(scope.contains("team-a"));
        assert!(!scope.contains("default"));
        assert!(!scope.cluster_wide());
        let err = NamespaceScope::new(["a".to_owned()], ["a".to_owned()]).unwrap_err();
        assert!(err.contains("\"a\" is both watched"), "{err}");
    }

    #[test]
    fn excluded_namespaces_become_a_field_selector() {
        let scope =
            NamespaceScope::new([], ["kube-system".to_owned(), "kube-public".into()]).unwrap();
        assert!(scope.cluster_wide());
        assert!(!scope.contains("kube-system"));
        assert!(scope.contains("default"));
        assert_eq!(
            scope.exclude_field_selector().as_deref(),
            Some("metadata.namespace!=kube-public,metadata.namespace!=kube-system")
        );
        assert_eq!(NamespaceScope::default().exclude_field_selector(), None);
    }
}
