//! The controller's Prometheus metrics (`/metrics`, prefix `kmsync_`). Label values come from
//! small fixed sets (kinds, results, condition reasons, service actions, error codes from an
//! allow-list) — never object names, namespaces or remote key names, so the number of series
//! does not grow with the number of objects. `docs/operations.md` lists them.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `kind` label: which controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `ExternalSecret`, `SecretStore`, `ClusterSecretStore`, `ClusterExternalSecret`.
    pub kind: &'static str,
}

/// Labels of `kmsync_syncs_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// The controller.
    pub kind: &'static str,
    /// `written` (a Secret write), `unchanged` (nothing to write), or the condition reason of
    /// a failure (`StoreNotReady`, `RuleError`, ...).
    pub result: &'static str,
}

/// Labels of `kmsync_cloud_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudCallLabels {
    /// `kms`, `kms-instance` or `oos`.
    pub service: &'static str,
    /// `GetSecretValue`, `GetSecretParameter` or `ReadinessProbe`.
    pub action: &'static str,
    /// `Success`, a known service error code, or an error class (`timeout`, `connect`, ...).
    pub code: String,
}

/// Labels of the rule metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// `transform`, `filter`, `rotate`, `validate_config`.
    pub hook: &'static str,
    /// `ok` or the error class.
    pub result: &'static str,
}

/// Labels of `kmsync_secret_writes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `apply`, `replace` (immutable Secret re-created), `delete`, `release` (owner reference
    /// removed).
    pub operation: &'static str,
}

/// Labels of `kmsync_events_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `Normal` or `Warning`.
    pub r#type: &'static str,
    /// The Event reason.
    pub reason: &'static str,
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    /// Reconciles by kind and result.
    pub syncs: Family<SyncLabels, Counter>,
    /// Reconcile wall time by kind.
    pub sync_duration: Family<KindLabels, Histogram>,
    /// Calls to KMS / OOS by service, action and answer code.
    pub cloud_calls: Family<CloudCallLabels, Counter>,
    /// Remote reads answered from the fetch cache.
    pub fetch_cache_hits: Counter,
    /// Remote reads that went to the service.
    pub fetch_cache_misses: Counter,
    /// Rule calls by hook and result.
    pub rule_calls: Family<RuleLabels, Counter>,
    /// Rule call wall time by hook.
    pub rule_duration: Family<RuleLabels, Histogram>,
    /// Secret writes by operation.
    pub secret_writes: Family<WriteLabels, Counter>,
    /// Events emitted by type and reason.
    pub events: Family<EventLabels, Counter>,
    /// Objects ready to reconcile now, by kind.
    pub queue_depth: Family<KindLabels, Gauge>,
    /// Objects waiting in the queue (ready or scheduled), by kind.
    pub queue_pending: Family<KindLabels, Gauge>,
    /// Unix time of the last successful reconcile, by kind.
    pub last_success: Family<KindLabels, Gauge<f64, AtomicU64>>,
    /// 1 while this replica holds the Lease (or runs without leader election).
    pub leader: Gauge<i64, AtomicI64>,
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under the prefix `kmsync`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            syncs: Family::default(),
            sync_duration: Family::new_with_constructor(duration_histogram),
            cloud_calls: Family::default(),
            fetch_cache_hits: Counter::default(),
            fetch_cache_misses: Counter::default(),
            rule_calls: Family::default(),
            rule_duration: Family::new_with_constructor(duration_histogram),
            secret_writes: Family::default(),
            events: Family::default(),
            queue_depth: Family::default(),
            queue_pending: Family::default(),
            last_success: Family::default(),
            leader: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("kmsync");
        r.register("syncs", "Reconciles by kind and result", m.syncs.clone());
        r.register(
            "sync_duration_seconds",
            "Reconcile wall time by kind",
            m.sync_duration.clone(),
        );
        r.register(
            "cloud_calls",
            "Calls to KMS, the KMS instance gateway and OOS by service, action and answer code",
            m.cloud_calls.clone(),
        );
        r.register(
            "fetch_cache_hits",
            "Remote reads answered from the per-interval fetch cache",
            m.fetch_cache_hits.clone(),
        );
        r.register(
            "fetch_cache_misses",
            "Remote reads that called the service",
            m.fetch_cache_misses.clone(),
        );
        r.register(
            "rule_calls",
            "Rule calls by hook and result",
            m.rule_calls.clone(),
        );
        r.register(
            "rule_call_duration_seconds",
            "Rule call wall time by hook",
            m.rule_duration.clone(),
        );
        r.register(
            "secret_writes",
            "Writes to target Secrets by operation",
            m.secret_writes.clone(),
        );
        r.register(
            "events",
            "Events emitted by type and reason",
            m.events.clone(),
        );
        r.register(
            "queue_depth",
            "Objects ready to reconcile now, by kind",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_pending",
            "Objects in the queue (ready or waiting for their time), by kind",
            m.queue_pending.clone(),
        );
        r.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful reconcile, by kind",
            m.last_success.clone(),
        );
        r.register(
            "leader",
            "1 while this replica reconciles (holds the Lease, or runs without leader election)",
            m.leader.clone(),
        );
        m
    }

    /// Records one reconcile of `kind` that took `took` and ended with `result`.
    pub fn sync(&self, kind: &'static str, result: &'static str, took: Duration, ok: bool) {
        self.syncs.get_or_create(&SyncLabels { kind, result }).inc();
        self.sync_duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            self.last_success
                .get_or_create(&KindLabels { kind })
                .set(now);
        }
    }

    /// Records a rule call.
    pub fn rule_call(&self, hook: &'static str, result: &'static str, took: Duration) {
        let labels = RuleLabels { hook, result };
        self.rule_calls.get_or_create(&labels).inc();
        self.rule_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

/// The error codes that appear as themselves in `kmsync_cloud_calls_total{code}`; any other
/// code is counted as `other` (a hostile endpoint must not create unbounded series).
pub const KNOWN_CODES: &[&str] = &[
    "Forbidden.ResourceNotFound",
    "Forbidden.NoPermission",
    "Rejected.Throttling",
    "Throttling",
    "Throttling.User",
    "ServiceUnavailableTemporary",
    "InternalFailure",
    "InternalError",
    "InvalidAccessKeyId.NotFound",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidTimeStamp.Expired",
    "SignatureNonceUsed",
    "InvalidSecurityToken.Expired",
    "InvalidSecurityToken.MismatchWithAccessKey",
    "InvalidParameter",
    "EntityNotExists.Parameter",
    "SignatureNotMatch",
    "Unauthorized",
    "RequestTimeTooSkewed",
];

/// The `code` label for an answer: `Success`, a [`KNOWN_CODES`] code, `other`, or (without a
/// code) the bounded error class.
pub fn code_label(code: Option<&str>, class: &'static str) -> String {
    match code {
        Some(c) if KNOWN_CODES.contains(&c) => c.to_owned(),
        Some(_) => "other".to_owned(),
        None => class.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_the_kmsync_prefix_and_bounded_labels() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.sync("ExternalSecret", "written", Duration::from_millis(3), true);
        m.cloud_calls
            .get_or_create(&CloudCallLabels {
                service: "kms",
                action: "GetSecretValue",
                code: code_label(Some("made-up-by-a-hostile-endpoint"), "api"),
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"kmsync_syncs_total{kind="ExternalSecret",result="written"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kmsync_cloud_calls_total{service="kms",action="GetSecretValue",code="other"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("kmsync_last_success_timestamp_seconds"));
    }

    #[test]
    fn code_labels_keep_known_codes_only() {
        assert_eq!(code_label(None, "timeout"), "timeout");
        assert_eq!(
            code_label(Some("Rejected.Throttling"), "api"),
            "Rejected.Throttling"
        );
        assert_eq!(code_label(Some("x".repeat(500).as_str()), "api"), "other");
    }
}
