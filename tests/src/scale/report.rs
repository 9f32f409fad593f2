//! The report of one run (plain data, serialised to the JSON report), the comparison table
//! of two runs, and the targets of issue #8.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Mode, ScaleConfig};
use crate::RequestRecord;

/// The `q`-th percentile (nearest rank) of sorted `values`; 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Requests counted by `verb resource[/subresource]`.
pub fn requests_by(records: &[&RequestRecord]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        let what = if r.subresource.is_empty() {
            format!("{} {}", r.verb, r.resource)
        } else {
            format!("{} {}/{}", r.verb, r.resource, r.subresource)
        };
        *out.entry(what).or_default() += 1;
    }
    out
}

/// Phase 1.
#[derive(Clone, Debug, Serialize)]
pub struct FirstSync {
    /// ExternalSecrets created.
    pub objects: usize,
    /// From the first create to the last create answered.
    pub created_s: f64,
    /// From the first create to the last ExternalSecret `Ready=True`.
    pub all_ready_s: f64,
    /// Per object, from its creation to its readiness.
    pub p50_ms: f64,
    /// Same, 99th percentile.
    pub p99_ms: f64,
    /// Same, slowest.
    pub max_ms: f64,
    /// Objects that were `Ready=False` at some point.
    pub objects_failed_on_the_way: usize,
    /// KMS calls by action (all attempts).
    pub kms_calls: BTreeMap<String, u64>,
    /// `GetSecretValue` calls for the scenario's secrets (data reads).
    pub secret_reads: u64,
    /// `GetSecretValue` calls for the store readiness probe (one per store and check).
    pub store_checks: u64,
    /// The controller's Kubernetes requests by verb and resource.
    pub kube_requests: BTreeMap<String, u64>,
    /// Of which writes.
    pub kube_writes: usize,
    /// Controller CPU seconds in this phase.
    pub controller_cpu_s: f64,
}

/// Phase 2.
#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    /// Length of the window.
    pub window_s: f64,
    /// The window in polling intervals.
    pub intervals: f64,
    /// `GetSecretValue` calls in the window (data reads and store checks).
    pub get_secret_value: u64,
    /// Of which reads of the scenario's secrets.
    pub secret_reads: u64,
    /// Of which store readiness checks (one per store and polling interval).
    pub store_checks: u64,
    /// Secret reads per polling interval.
    pub per_interval: f64,
    /// Fewest reads of one secret in the window.
    pub per_secret_min: u64,
    /// Most reads of one secret in the window.
    pub per_secret_max: u64,
    /// KMS calls by action.
    pub kms_calls: BTreeMap<String, u64>,
    /// The controller's Kubernetes requests by verb and resource.
    pub kube_requests: BTreeMap<String, u64>,
    /// Of which successful writes.
    pub kube_writes: usize,
    /// Controller CPU seconds in this phase.
    pub controller_cpu_s: f64,
}

/// Phase 3.
#[derive(Clone, Debug, Serialize)]
pub struct Rotation {
    /// Remote secrets rotated.
    pub secrets: usize,
    /// Secrets that must change.
    pub affected_secrets: usize,
    /// Of which changed.
    pub propagated: usize,
    /// From the rotation to the Secret holding every new value.
    pub p50_ms: f64,
    /// Same, 99th percentile.
    pub p99_ms: f64,
    /// Same, slowest.
    pub max_ms: f64,
    /// Length of the phase.
    pub window_s: f64,
    /// `GetSecretValue` calls in the phase.
    pub get_secret_value: u64,
    /// Writes to Secrets.
    pub secret_writes: usize,
    /// The controller's Kubernetes requests by verb and resource.
    pub kube_requests: BTreeMap<String, u64>,
    /// Controller CPU seconds in this phase.
    pub controller_cpu_s: f64,
}

/// Phase 4.
#[derive(Clone, Debug, Serialize)]
pub struct Throttle {
    /// The emulator's limit (calls per second).
    pub emulator_qps: u32,
    /// The controller's `--kms-qps` (per store).
    pub kms_qps: u32,
    /// New ExternalSecrets.
    pub batch_external_secrets: usize,
    /// New remote secrets (all through one store).
    pub batch_secrets: usize,
    /// Whether all of them became ready.
    pub batch_ready: bool,
    /// Per new object, creation to readiness.
    pub batch_p50_ms: f64,
    /// Same, 99th percentile.
    pub batch_p99_ms: f64,
    /// From the throttle on to the batch ready.
    pub batch_ready_s: f64,
    /// How long the throttle was on.
    pub throttled_s: f64,
    /// Whether every object was ready again in time.
    pub converged: bool,
    /// From lifting the throttle to every object ready.
    pub converged_after_lift_s: f64,
    /// Objects not ready at the end.
    pub objects_not_ready_at_end: usize,
    /// Objects that went `Ready=False` during the phase.
    pub objects_failed: usize,
    /// Their reasons (transitions).
    pub failure_reasons: BTreeMap<String, u64>,
    /// `GetSecretValue` requests the emulator saw (throttled ones included).
    pub get_secret_value_attempts: u64,
    /// Answered `Rejected.Throttling`.
    pub throttled_answers: u64,
    /// Most `GetSecretValue` attempts of one store in any 1 s (sampled every 100 ms).
    pub max_store_calls_1s: u64,
    /// Most in any 5 s.
    pub max_store_calls_5s: u64,
    /// Most of one store in any 1 s over the whole run.
    pub max_store_calls_1s_whole_run: u64,
    /// The controller's Kubernetes requests by verb and resource.
    pub kube_requests: BTreeMap<String, u64>,
    /// Of which successful writes.
    pub kube_writes: usize,
    /// Controller CPU seconds in this phase.
    pub controller_cpu_s: f64,
}

/// Processes.
#[derive(Clone, Debug, Serialize)]
pub struct Resources {
    /// Controller `VmHWM`.
    pub controller_peak_rss_mib: f64,
    /// Controller `VmRSS` once ready (empty cluster).
    pub controller_rss_ready_mib: f64,
    /// Controller `VmRSS` at the end.
    pub controller_rss_end_mib: f64,
    /// Of it, file-backed pages at the end (`RssFile`: the mapped executable and libraries,
    /// clean and shared; the rest is the heap and stacks, `RssAnon`).
    pub controller_rss_file_end_mib: f64,
    /// Controller CPU (user + system) from ready to the end.
    pub controller_cpu_s: f64,
    /// The fake apiserver's threads.
    pub apiserver_cpu_s: f64,
    /// The emulator's threads.
    pub emulator_cpu_s: f64,
    /// The rest of the benchmark process (driver, observer, sampler).
    pub driver_cpu_s: f64,
    /// Wall time of the run.
    pub wall_s: f64,
}

/// One run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// kmsync or the baseline.
    pub mode: Mode,
    /// Phase 1.
    pub first_sync: FirstSync,
    /// Phase 2.
    pub idle: Idle,
    /// Phase 3.
    pub rotation: Rotation,
    /// Phase 4.
    pub throttle: Throttle,
    /// Processes.
    pub resources: Resources,
    /// Selected controller metrics at the end (summed over labels).
    pub metrics: BTreeMap<String, f64>,
    /// Every request of the controller.
    pub controller_requests_total: usize,
    /// The controller's exit code after SIGTERM.
    pub controller_exit: Option<i32>,
}

/// A target of issue #8 and whether a run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// The target, in words.
    pub target: String,
    /// The measured value, in words.
    pub value: String,
    /// Met.
    pub pass: bool,
}

fn check(name: &str, target: String, value: String, pass: bool) -> Check {
    Check {
        name: name.to_owned(),
        target,
        value,
        pass,
    }
}

/// The targets, for kmsync's run (`base`: the baseline's, for the ratios).
pub fn targets(config: &ScaleConfig, run: &RunReport, base: Option<&RunReport>) -> Vec<Check> {
    // Distinct secrets the ExternalSecrets name (all of them, unless there are too few
    // ExternalSecrets to name every secret).
    let d = super::layout::external_secrets(&config.sizes)
        .iter()
        .flat_map(|plan| plan.secrets.iter())
        .collect::<std::collections::HashSet<_>>()
        .len() as f64;
    let p = config.polling_interval.as_secs_f64();
    let mut out = vec![
        check(
            "first sync",
            "all Ready within 30 s".into(),
            format!(
                "{:.1} s for {}",
                run.first_sync.all_ready_s, run.first_sync.objects
            ),
            run.first_sync.all_ready_s <= 30.0,
        ),
        check(
            "memory",
            "controller peak RSS < 128 MiB".into(),
            format!("{:.1} MiB", run.resources.controller_peak_rss_mib),
            run.resources.controller_peak_rss_mib < 128.0,
        ),
        check(
            "KMS reads per interval",
            format!("GetSecretValue per interval = distinct secrets ({d})"),
            format!(
                "{:.0} per interval ({} in {:.1} intervals; each secret {}–{} times; plus {} store checks)",
                run.idle.per_interval,
                run.idle.secret_reads,
                run.idle.intervals,
                run.idle.per_secret_min,
                run.idle.per_secret_max,
                run.idle.store_checks
            ),
            (run.idle.per_interval - d).abs() <= d * 0.02
                && run.idle.per_secret_max <= run.idle.intervals.ceil() as u64,
        ),
        check(
            "idle writes",
            "no Kubernetes writes when nothing changed".into(),
            format!("{}", run.idle.kube_writes),
            run.idle.kube_writes == 0,
        ),
        {
            let extra: u64 = run
                .idle
                .kms_calls
                .iter()
                .filter(|(a, _)| *a != "GetSecretValue")
                .map(|(_, n)| n)
                .sum();
            check(
                "idle KMS calls",
                "no KMS call besides one read per distinct secret per interval".into(),
                format!("{extra} other calls ({:?})", run.idle.kms_calls),
                extra == 0,
            )
        },
        check(
            "rotation",
            format!("p99 ≤ polling interval + 2 s ({:.0} s)", p + 2.0),
            format!(
                "p50 {:.1} s, p99 {:.1} s, {} of {} Secrets",
                run.rotation.p50_ms / 1000.0,
                run.rotation.p99_ms / 1000.0,
                run.rotation.propagated,
                run.rotation.affected_secrets
            ),
            run.rotation.propagated == run.rotation.affected_secrets
                && run.rotation.p99_ms <= (p + 2.0) * 1000.0,
        ),
        check(
            "throttling",
            "every object ends ready".into(),
            format!(
                "{} not ready at the end; {} went Ready=False on the way {:?}; ready {:.1} s after the throttle lifted",
                run.throttle.objects_not_ready_at_end,
                run.throttle.objects_failed,
                run.throttle.failure_reasons,
                run.throttle.converged_after_lift_s
            ),
            run.throttle.converged && run.throttle.objects_not_ready_at_end == 0,
        ),
        {
            let q = u64::from(config.kms_qps);
            check(
                "KMS rate",
                format!(
                    "per store ≤ --kms-qps {q}/s (token bucket: ≤ {} in any 1 s, ≤ {} in any 5 s)",
                    2 * q,
                    6 * q
                ),
                format!(
                    "max {} in 1 s, {} in 5 s (throttle phase); {} in 1 s over the run",
                    run.throttle.max_store_calls_1s,
                    run.throttle.max_store_calls_5s,
                    run.throttle.max_store_calls_1s_whole_run
                ),
                run.throttle.max_store_calls_1s_whole_run <= 2 * q
                    && run.throttle.max_store_calls_5s <= 6 * q,
            )
        },
    ];
    if let Some(b) = base {
        let ratio = b.idle.secret_reads as f64 / run.idle.secret_reads.max(1) as f64;
        out.push(check(
            "KMS reads vs baseline",
            "baseline / kmsync ≥ 5 (secret reads while idle)".into(),
            format!(
                "{ratio:.1}× ({} vs {})",
                b.idle.secret_reads, run.idle.secret_reads
            ),
            ratio >= 5.0,
        ));
    }
    out
}

/// A figure for the table; infinite: a wait that hit `--wait-limit` (no figure).
fn f(v: f64) -> String {
    if !v.is_finite() {
        "not reached (wait limit)".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// baseline / kmsync; `∞` when kmsync's figure shows as zero and the baseline's does not, `–`
/// when both do (a ratio of figures printed as 0.00 means nothing).
fn ratio(kmsync: f64, base: f64) -> String {
    const SHOWN_AS_ZERO: f64 = 0.005;
    if !kmsync.is_finite() || !base.is_finite() {
        return "–".into();
    }
    match (kmsync >= SHOWN_AS_ZERO, base >= SHOWN_AS_ZERO) {
        (true, _) => format!("{:.1}×", base / kmsync),
        (false, true) => "∞".into(),
        (false, false) => "–".into(),
    }
}

/// The comparison table (Markdown): kmsync, the baseline and baseline / kmsync.
pub fn table(run: &RunReport, base: Option<&RunReport>) -> String {
    let kms_total = |r: &RunReport| r.first_sync.kms_calls.values().sum::<u64>() as f64;
    let kms_other = |r: &RunReport| {
        r.idle
            .kms_calls
            .iter()
            .filter(|(a, _)| *a != "GetSecretValue")
            .map(|(_, n)| *n)
            .sum::<u64>() as f64
    };
    let kube = |m: &BTreeMap<String, u64>| m.values().sum::<u64>() as f64;
    #[allow(clippy::type_complexity)]
    let rows: Vec<(&str, Box<dyn Fn(&RunReport) -> f64>)> = vec![
        (
            "first sync: all Ready (s)",
            Box::new(|r| r.first_sync.all_ready_s),
        ),
        (
            "first sync: per object p50 (ms)",
            Box::new(|r| r.first_sync.p50_ms),
        ),
        (
            "first sync: per object p99 (ms)",
            Box::new(|r| r.first_sync.p99_ms),
        ),
        (
            "first sync: secret reads",
            Box::new(|r| r.first_sync.secret_reads as f64),
        ),
        (
            "first sync: store checks",
            Box::new(|r| r.first_sync.store_checks as f64),
        ),
        ("first sync: KMS calls (all)", Box::new(kms_total)),
        (
            "first sync: Kubernetes requests",
            Box::new(move |r| kube(&r.first_sync.kube_requests)),
        ),
        (
            "first sync: Kubernetes writes",
            Box::new(|r| r.first_sync.kube_writes as f64),
        ),
        (
            "first sync: controller CPU (s)",
            Box::new(|r| r.first_sync.controller_cpu_s),
        ),
        (
            "idle: secret reads per interval",
            Box::new(|r| r.idle.per_interval),
        ),
        (
            "idle: store checks",
            Box::new(|r| r.idle.store_checks as f64),
        ),
        ("idle: other KMS calls", Box::new(kms_other)),
        (
            "idle: Kubernetes requests",
            Box::new(move |r| kube(&r.idle.kube_requests)),
        ),
        (
            "idle: Kubernetes writes",
            Box::new(|r| r.idle.kube_writes as f64),
        ),
        (
            "idle: controller CPU (s)",
            Box::new(|r| r.idle.controller_cpu_s),
        ),
        ("rotation: p50 (ms)", Box::new(|r| r.rotation.p50_ms)),
        ("rotation: p99 (ms)", Box::new(|r| r.rotation.p99_ms)),
        (
            "rotation: GetSecretValue",
            Box::new(|r| r.rotation.get_secret_value as f64),
        ),
        (
            "rotation: Secret writes",
            Box::new(|r| r.rotation.secret_writes as f64),
        ),
        (
            "throttle: batch ready (s)",
            Box::new(|r| {
                if r.throttle.batch_ready {
                    r.throttle.batch_ready_s
                } else {
                    f64::INFINITY
                }
            }),
        ),
        (
            "throttle: objects Ready=False",
            Box::new(|r| r.throttle.objects_failed as f64),
        ),
        (
            "throttle: ready after lift (s)",
            Box::new(|r| r.throttle.converged_after_lift_s),
        ),
        (
            "throttle: GetSecretValue attempts",
            Box::new(|r| r.throttle.get_secret_value_attempts as f64),
        ),
        (
            "throttle: throttled answers",
            Box::new(|r| r.throttle.throttled_answers as f64),
        ),
        (
            "throttle: max store calls in 1 s",
            Box::new(|r| r.throttle.max_store_calls_1s as f64),
        ),
        (
            "controller peak RSS (MiB)",
            Box::new(|r| r.resources.controller_peak_rss_mib),
        ),
        (
            "controller RSS at the end (MiB)",
            Box::new(|r| r.resources.controller_rss_end_mib),
        ),
        (
            "… of it file-backed: executable (MiB)",
            Box::new(|r| r.resources.controller_rss_file_end_mib),
        ),
        (
            "controller CPU, whole run (s)",
            Box::new(|r| r.resources.controller_cpu_s),
        ),
        (
            "fake apiserver CPU (s)",
            Box::new(|r| r.resources.apiserver_cpu_s),
        ),
        ("emulator CPU (s)", Box::new(|r| r.resources.emulator_cpu_s)),
        (
            "bench driver CPU (s)",
            Box::new(|r| r.resources.driver_cpu_s),
        ),
    ];
    let mut out = String::new();
    match base {
        Some(_) => {
            out.push_str("| | kmsync | baseline (`--disable-fetch-cache`) | baseline / kmsync |\n");
            out.push_str("|---|---:|---:|---:|\n");
        }
        None => {
            out.push_str(&format!("| | {} |\n|---|---:|\n", run.mode.as_str()));
        }
    }
    for (name, get) in &rows {
        let k = get(run);
        match base {
            Some(b) => {
                let v = get(b);
                let _ = writeln!(out, "| {name} | {} | {} | {} |", f(k), f(v), ratio(k, v));
            }
            None => {
                let _ = writeln!(out, "| {name} | {} |", f(k));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn ratios_of_figures_shown_as_zero_or_missing_mean_nothing() {
        assert_eq!(ratio(2.0, 20.0), "10.0×");
        assert_eq!(ratio(0.003, 82.3), "∞");
        assert_eq!(ratio(0.0, 0.004), "–");
        assert_eq!(ratio(15.0, f64::INFINITY), "–");
        assert_eq!(f(f64::INFINITY), "not reached (wait limit)");
        assert_eq!(f(0.004), "0.00");
        assert_eq!(f(122.4), "122");
    }
}
