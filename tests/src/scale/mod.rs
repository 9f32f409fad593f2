//! The scale and cost scenario (issue #8): thousands of ExternalSecrets against the emulator
//! and the fake apiserver, with the real `kmsync controller` binary as a subprocess.
//!
//! ```text
//!  scale-bench / smoke test
//!   ├─ World (crate::world): fake apiserver ── change tap ──▶ Observer (ready times, values)
//!   │                        emulator ──────── counters ────▶ sampler (reads per store, 100 ms)
//!   │                        kmsync controller (subprocess) ─▶ /proc (CPU, VmHWM), /metrics
//!   └─ phases: first sync ─▶ idle ─▶ rotation ─▶ throttling ─▶ stop
//! ```
//!
//! 1. **First sync**: create S SecretStores (with credential Secrets), then N ExternalSecrets
//!    (D distinct ~1 KiB JSON secrets, 1–3 per object, a third through a built-in rule),
//!    `create_concurrency` requests in flight; time until every one is `Ready=True`, and per
//!    object from its creation to its readiness.
//! 2. **Idle**: `idle_intervals` polling intervals with nothing changed: KMS reads (per
//!    secret) and Kubernetes requests, writes above all.
//! 3. **Rotation**: a new version of `rotate` secrets at one instant; per affected Secret, the
//!    time until it holds every new value.
//! 4. **Throttling**: the emulator answers `Rejected.Throttling` beyond `throttle.qps` calls
//!    per second while a batch of new ExternalSecrets (new secrets, all through store 0) is
//!    created and for at least `throttle.hold`; then the limit is lifted. Objects that went
//!    `Ready=False`, time until everything is ready again, and the highest read rate of any
//!    store (attempts, as the emulator counts them) against `--kms-qps`.
//!
//! [`Mode::Baseline`] runs the same with `--disable-fetch-cache` (every object reads every
//! remote key itself, as the peer operators do). The report is plain data ([`RunReport`]);
//! `scale-bench` prints and compares, the smoke test asserts correctness only.

pub mod layout;
pub mod observe;
pub mod procstat;
pub mod report;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use kmsync::emulator::{FaultRule, SeedSecret, State as EmuState, VersionData};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::Value;

use crate::RequestRecord;
use crate::apiserver::Config;
use crate::world::{World, WorldOptions, by_controller, http_get};
pub use layout::Sizes;
use layout::store_of_secret;
use observe::{Key, Observer};
pub use report::{
    FirstSync, Idle, Resources, Rotation, RunReport, Throttle, percentile, requests_by,
};

/// Which controller configuration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// kmsync as shipped (shared fetch cache).
    Kmsync,
    /// `--disable-fetch-cache`: one read per object and remote key per refresh.
    Baseline,
}

impl Mode {
    /// `kmsync` or `baseline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Kmsync => "kmsync",
            Mode::Baseline => "baseline",
        }
    }
}

/// The throttling phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ThrottleConfig {
    /// Calls per second the emulator answers (all actions, all keys) before throttling.
    pub qps: u32,
    /// New remote secrets of the batch (all read through store 0).
    pub secrets: usize,
    /// New ExternalSecrets of the batch.
    pub external_secrets: usize,
    /// Throttling lasts at least this long (and until the batch is ready).
    #[serde(with = "secs")]
    pub hold: Duration,
}

/// Everything one run needs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScaleConfig {
    /// S, D, N and the secret size.
    pub sizes: Sizes,
    /// `--polling-interval`.
    #[serde(with = "secs")]
    pub polling_interval: Duration,
    /// `--reconcile-count`.
    pub reconcile_count: usize,
    /// `--kms-qps` (per store).
    pub kms_qps: u32,
    /// Polling intervals of the idle phase.
    pub idle_intervals: u32,
    /// Remote secrets rotated at once.
    pub rotate: usize,
    /// The throttling phase.
    pub throttle: ThrottleConfig,
    /// Create requests in flight at once.
    pub create_concurrency: usize,
    /// Further controller flags (they replace defaults of the same name).
    pub controller_args: Vec<String>,
    /// Hang guard of each wait.
    #[serde(with = "secs")]
    pub wait_limit: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl ScaleConfig {
    /// The flags the controller runs with in `mode`.
    pub fn controller_args(&self, mode: Mode, redirect: &str) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "controller".into(),
            "--log-format=json".into(),
            "--log-level=info".into(),
            "--region=cn-hangzhou".into(),
            format!("--polling-interval={}ms", self.polling_interval.as_millis()),
            format!("--reconcile-count={}", self.reconcile_count),
            format!("--kms-qps={}", self.kms_qps),
            "--metrics-bind-address=127.0.0.1:0".into(),
            "--health-probe-bind-address=127.0.0.1:0".into(),
            "--shutdown-timeout=10s".into(),
            format!("--redirect-endpoint={redirect}"),
        ];
        if mode == Mode::Baseline {
            args.push("--disable-fetch-cache".into());
        }
        let flag = |a: &str| a.split('=').next().unwrap_or(a).to_owned();
        args.retain(|a| !self.controller_args.iter().any(|e| flag(e) == flag(a)));
        args.extend(self.controller_args.iter().cloned());
        args
    }
}

/// Runtimes to run the stand-ins on (so that their CPU time shows under their thread names);
/// `None`: the caller's runtime.
#[derive(Clone, Debug, Default)]
pub struct Runtimes {
    /// The fake apiserver's.
    pub api: Option<tokio::runtime::Handle>,
    /// The emulator's.
    pub emulator: Option<tokio::runtime::Handle>,
}

/// Reads per store over time, sampled from the emulator's counters.
#[derive(Debug, Default)]
struct Samples {
    /// (when, `GetSecretValue` calls per store so far).
    points: Vec<(Instant, Vec<u64>)>,
}

impl Samples {
    /// The most calls any store made in any window of `window` between `from` and `to`
    /// (sample resolution: the sampler's period).
    fn max_in_window(&self, from: Instant, to: Instant, window: Duration) -> u64 {
        let pts: Vec<&(Instant, Vec<u64>)> = self
            .points
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        let mut best = 0;
        let mut j = 0;
        for i in 0..pts.len() {
            while j < pts.len() && pts[j].0 <= pts[i].0 + window {
                j += 1;
            }
            let end = &pts[j - 1].1;
            for (s, count) in end.iter().enumerate() {
                best = best.max(count.saturating_sub(pts[i].1[s]));
            }
        }
        best
    }
}

fn spawn_sampler(
    state: Arc<EmuState>,
    stores: usize,
    samples: Arc<Mutex<Samples>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let counters = state.counters();
            let mut per_store = vec![0u64; stores];
            for (name, n) in &counters.get_secret_value_by_secret {
                if let Some(s) = store_of_secret(name).filter(|s| *s < stores) {
                    per_store[s] += n;
                }
            }
            samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .points
                .push((Instant::now(), per_store));
        }
    })
}

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Creates `objects` (plain `create`, as `kubectl create` / a GitOps tool would), `concurrency`
/// at a time.
async fn create_all(
    client: &kube::Client,
    objects: Vec<Value>,
    concurrency: usize,
) -> anyhow::Result<()> {
    futures::stream::iter(objects.into_iter().map(|obj| {
        let client = client.clone();
        async move {
            let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
            let plural = match kind.as_str() {
                "Secret" => "secrets",
                "SecretStore" => "secretstores",
                "ExternalSecret" => "externalsecrets",
                other => bail!("unexpected kind {other}"),
            };
            let ar = resource(
                obj["apiVersion"].as_str().unwrap_or_default(),
                &kind,
                plural,
            );
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let dynamic: DynamicObject = serde_json::from_value(obj)?;
            Api::<DynamicObject>::namespaced_with(client, &ns, &ar)
                .create(&PostParams::default(), &dynamic)
                .await
                .with_context(|| format!("creating {kind} {ns}/{:?}", dynamic.metadata.name))?;
            Ok(())
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await
    .map(|_| ())
}

/// The controller's requests among `records`.
fn controller_requests(records: &[RequestRecord]) -> Vec<&RequestRecord> {
    records.iter().filter(|r| by_controller(r)).collect()
}

/// Waits until the controller has made no write for `quiet` (its trailing Events and status
/// writes are done), polling the request log from index `from`; the new log length.
async fn settle(world: &World, mut from: usize, quiet: Duration, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut last_write = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let new = world.api.requests_since(from);
        from += new.len();
        if controller_requests(&new)
            .iter()
            .any(|r| r.is_write() && r.status < 300)
        {
            last_write = Instant::now();
        }
        if last_write.elapsed() >= quiet || Instant::now() >= deadline {
            return from;
        }
    }
}

fn counter_diff(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A controller metric's value (sum over its label sets) from Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs the scenario once (see the module docs) and stops everything it started.
///
/// # Errors
/// When the world cannot be built, a request of the driver fails, or a phase does not finish
/// within `wait_limit` (the report so far is in the error's context).
pub async fn run(
    config: &ScaleConfig,
    mode: Mode,
    runtimes: &Runtimes,
) -> anyhow::Result<RunReport> {
    let sizes = config.sizes;
    let p = config.polling_interval;
    let started = Instant::now();
    let namespaces: Vec<String> = (0..sizes.stores).map(layout::namespace).collect();
    let options = WorldOptions {
        seed: layout::seed_yaml(&sizes),
        // Watches resume from the history: keep a few minutes' worth of changes, as the
        // watch cache and etcd (compaction every 5 minutes) do.
        api: Config::default().kmsync_crds().history_limit(
            (sizes.external_secrets + config.throttle.external_secrets) * 20 + 10_000,
        ),
        namespaces,
        api_runtime: runtimes.api.clone(),
        emulator_runtime: runtimes.emulator.clone(),
        emulator_counter_names: Some(sizes.secrets + config.throttle.secrets + 64),
        ..WorldOptions::default()
    };
    let mut world = World::start_with(&format!("scale-{}", mode.as_str()), options).await;
    for s in 0..sizes.stores {
        world.markers.push(layout::access_key_secret(s));
    }
    let emu = world.emu.state().clone();
    let observer = Observer::start(world.api.tap());
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = spawn_sampler(emu.clone(), sizes.stores, samples.clone());

    let args = config.controller_args(mode, world.emu.kms_url().as_str());
    world.spawn_controller_args(args, &[]).await;
    let pid = world.controllers[0].child.id().context("controller pid")?;
    let cpu = || procstat::process_cpu(pid).unwrap_or(0.0);
    let threads_at_start = procstat::own_threads_cpu();
    let cpu_ready = cpu();
    let rss_ready = procstat::rss(pid).unwrap_or(0);
    emu.reset_counters();
    let plans = layout::external_secrets(&sizes);
    let plan_keys: Vec<Key> = plans
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();

    // 1. First sync.
    let req0 = world.api.request_count();
    let t0 = Instant::now();
    let stores: Vec<Value> = (0..sizes.stores).flat_map(layout::store_objects).collect();
    create_all(&world.client, stores, config.create_concurrency).await?;
    let objects: Vec<Value> = plans.iter().map(layout::external_secret_object).collect();
    create_all(&world.client, objects, config.create_concurrency).await?;
    let created = t0.elapsed();
    let all_ready = observer
        .wait(config.wait_limit, |o| {
            plan_keys.iter().all(|k| o.first_ready.contains_key(k))
        })
        .await;
    let ready_at = Instant::now();
    if !all_ready {
        let missing = observer.with(|o| o.not_ready(&plan_keys));
        bail!(
            "{}: {} of {} ExternalSecrets not ready after {:?} (e.g. {:?})",
            mode.as_str(),
            missing.len(),
            plan_keys.len(),
            config.wait_limit,
            missing.first()
        );
    }
    let (latencies, last_ready) = observer.with(|o| {
        let mut l: Vec<f64> = plan_keys
            .iter()
            .filter_map(|k| Some(ms(o.first_ready[k].checked_duration_since(o.created[k])?)))
            .collect();
        l.sort_by(f64::total_cmp);
        let last = plan_keys.iter().map(|k| o.first_ready[k]).max();
        (l, last.unwrap_or(ready_at))
    });
    let failures_first = observer.with(|o| observe::failed_since(o, t0).len());
    let req1 = settle(&world, req0, Duration::from_secs(1), config.wait_limit).await;
    let kms1 = emu.counters();
    let reqs = world.api.requests_since(req0);
    let first_reqs = controller_requests(&reqs[..req1 - req0]);
    let cpu_first = cpu();
    let first = FirstSync {
        objects: plan_keys.len(),
        created_s: created.as_secs_f64(),
        all_ready_s: last_ready.duration_since(t0).as_secs_f64(),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        objects_failed_on_the_way: failures_first,
        kms_calls: kms1.by_action.clone(),
        secret_reads: secret_reads(&sizes, None, &kms1),
        store_checks: kms1.secret(kmsync::fetch::PROBE_NAME),
        kube_requests: requests_by(&first_reqs),
        kube_writes: first_reqs.iter().filter(|r| r.is_write()).count(),
        controller_cpu_s: cpu_first - cpu_ready,
    };

    // 2. Idle: nothing changes for a few polling intervals.
    let window = p * config.idle_intervals;
    let kms_before_idle = emu.counters();
    let req_idle0 = world.api.request_count();
    let t_idle = Instant::now();
    tokio::time::sleep(window).await;
    let idle_elapsed = t_idle.elapsed();
    let kms_after_idle = emu.counters();
    let idle_reqs_all = world.api.requests_since(req_idle0);
    let idle_reqs = controller_requests(&idle_reqs_all);
    let per_secret: Vec<u64> = layout::all_secret_names(&sizes)
        .iter()
        .map(|n| kms_after_idle.secret(n) - kms_before_idle.secret(n))
        .collect();
    let gsv_idle =
        kms_after_idle.action("GetSecretValue") - kms_before_idle.action("GetSecretValue");
    let reads_idle = secret_reads(&sizes, Some(&kms_before_idle), &kms_after_idle);
    let cpu_idle = cpu();
    let idle = Idle {
        window_s: idle_elapsed.as_secs_f64(),
        intervals: idle_elapsed.as_secs_f64() / p.as_secs_f64(),
        get_secret_value: gsv_idle,
        secret_reads: reads_idle,
        store_checks: kms_after_idle.secret(kmsync::fetch::PROBE_NAME)
            - kms_before_idle.secret(kmsync::fetch::PROBE_NAME),
        per_interval: reads_idle as f64 * p.as_secs_f64() / idle_elapsed.as_secs_f64(),
        per_secret_min: per_secret.iter().copied().min().unwrap_or(0),
        per_secret_max: per_secret.iter().copied().max().unwrap_or(0),
        kms_calls: counter_diff(&kms_before_idle.by_action, &kms_after_idle.by_action),
        kube_requests: requests_by(&idle_reqs),
        kube_writes: idle_reqs
            .iter()
            .filter(|r| r.is_write() && r.status < 300)
            .count(),
        controller_cpu_s: cpu_idle - cpu_first,
    };

    // 3. Rotation: new versions of `rotate` secrets at one instant.
    let names = layout::all_secret_names(&sizes);
    let step = (names.len() / config.rotate.max(1)).max(1);
    let rotated: Vec<String> = names
        .iter()
        .step_by(step)
        .take(config.rotate)
        .cloned()
        .collect();
    let rotated_set: HashSet<&str> = rotated.iter().map(String::as_str).collect();
    let expect: HashMap<Key, Vec<String>> = plans
        .iter()
        .filter_map(|p| {
            let needles: Vec<String> = p
                .secrets
                .iter()
                .filter(|s| rotated_set.contains(s.as_str()))
                .map(|s| layout::password(s, "v2"))
                .collect();
            (!needles.is_empty()).then(|| ((p.namespace.clone(), p.name.clone()), needles))
        })
        .collect();
    let affected = expect.len();
    observer.expect(expect);
    let kms_before_rot = emu.counters();
    let req_rot0 = world.api.request_count();
    let t_rot = Instant::now();
    for name in &rotated {
        emu.add_version(
            name,
            "v2",
            VersionData::Text(layout::secret_json(name, "v2", sizes.secret_bytes).into()),
            None,
        )
        .with_context(|| format!("rotating {name}"))?;
    }
    let rotation_limit = p * 3 + config.wait_limit;
    let propagated = observer
        .wait(rotation_limit, |o| o.holds_since.len() >= affected)
        .await;
    let mut rot_lat: Vec<f64> = observer.with(|o| {
        o.holds_since
            .values()
            .map(|t| ms(t.saturating_duration_since(t_rot)))
            .collect()
    });
    rot_lat.sort_by(f64::total_cmp);
    let req_rot1 = settle(&world, req_rot0, Duration::from_secs(1), config.wait_limit).await;
    let kms_after_rot = emu.counters();
    let rot_reqs_all = world.api.requests_since(req_rot0);
    let rot_reqs = controller_requests(&rot_reqs_all[..req_rot1 - req_rot0]);
    let cpu_rot = cpu();
    let rotation = Rotation {
        secrets: rotated.len(),
        affected_secrets: affected,
        propagated: rot_lat.len(),
        p50_ms: percentile(&rot_lat, 50.0),
        p99_ms: percentile(&rot_lat, 99.0),
        max_ms: rot_lat.last().copied().unwrap_or(0.0),
        window_s: t_rot.elapsed().as_secs_f64(),
        get_secret_value: kms_after_rot.action("GetSecretValue")
            - kms_before_rot.action("GetSecretValue"),
        secret_writes: rot_reqs
            .iter()
            .filter(|r| r.is_write() && r.status < 300 && r.resource == "secrets")
            .count(),
        kube_requests: requests_by(&rot_reqs),
        controller_cpu_s: cpu_rot - cpu_idle,
    };
    if !propagated {
        tracing::warn!(
            affected,
            propagated = rotation.propagated,
            "not every rotated value reached its Secret in time"
        );
    }

    // 4. Throttling while a batch of new objects arrives.
    let th = config.throttle;
    let batch = layout::batch_external_secrets(th.external_secrets, th.secrets);
    let batch_keys: Vec<Key> = batch
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    let kms_before_th = emu.counters();
    let req_th0 = world.api.request_count();
    let t_th = Instant::now();
    emu.set_faults(vec![FaultRule::throttle_qps(th.qps)])
        .context("setting the throttle")?;
    for j in 0..th.secrets {
        let name = layout::batch_secret_name(j);
        emu.create_secret(&SeedSecret::text(
            &name,
            layout::secret_json(&name, "v1", sizes.secret_bytes),
        ))
        .with_context(|| format!("creating {name}"))?;
    }
    let objects: Vec<Value> = batch.iter().map(layout::external_secret_object).collect();
    create_all(&world.client, objects, config.create_concurrency).await?;
    let batch_ready = observer
        .wait(config.wait_limit, |o| {
            batch_keys.iter().all(|k| o.first_ready.contains_key(k))
        })
        .await;
    let t_batch = Instant::now();
    if let Some(rest) = th.hold.checked_sub(t_th.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    emu.clear_faults();
    let t_lift = Instant::now();
    let all_keys: Vec<Key> = plan_keys.iter().chain(&batch_keys).cloned().collect();
    let converged = observer
        .wait(config.wait_limit + p, |o| o.not_ready(&all_keys).is_empty())
        .await;
    let t_conv = Instant::now();
    let req_th1 = settle(&world, req_th0, Duration::from_secs(1), config.wait_limit).await;
    let kms_after_th = emu.counters();
    let th_reqs_all = world.api.requests_since(req_th0);
    let th_reqs = controller_requests(&th_reqs_all[..req_th1 - req_th0]);
    let (mut batch_lat, failed, reasons, still_failing) = observer.with(|o| {
        let lat: Vec<f64> = batch_keys
            .iter()
            .filter_map(|k| {
                Some(ms(o
                    .first_ready
                    .get(k)?
                    .checked_duration_since(*o.created.get(k)?)?))
            })
            .collect();
        let failed = observe::failed_since(o, t_th);
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for f in o.failures.iter().filter(|f| f.0 >= t_th) {
            *reasons.entry(f.2.clone()).or_default() += 1;
        }
        (lat, failed.len(), reasons, o.not_ready(&all_keys).len())
    });
    batch_lat.sort_by(f64::total_cmp);
    let (max_1s, max_5s, max_1s_run) = {
        let sampled = samples.lock().unwrap_or_else(|e| e.into_inner());
        (
            sampled.max_in_window(t_th, t_conv, Duration::from_secs(1)),
            sampled.max_in_window(t_th, t_conv, Duration::from_secs(5)),
            sampled.max_in_window(t0, Instant::now(), Duration::from_secs(1)),
        )
    };
    let cpu_th = cpu();
    let throttle = Throttle {
        emulator_qps: th.qps,
        kms_qps: config.kms_qps,
        batch_external_secrets: batch_keys.len(),
        batch_secrets: th.secrets,
        batch_ready,
        batch_p50_ms: percentile(&batch_lat, 50.0),
        batch_p99_ms: percentile(&batch_lat, 99.0),
        batch_ready_s: t_batch.duration_since(t_th).as_secs_f64(),
        throttled_s: t_lift.duration_since(t_th).as_secs_f64(),
        converged,
        converged_after_lift_s: t_conv.duration_since(t_lift).as_secs_f64(),
        objects_not_ready_at_end: still_failing,
        objects_failed: failed,
        failure_reasons: reasons,
        get_secret_value_attempts: kms_after_th.action("GetSecretValue")
            - kms_before_th.action("GetSecretValue"),
        throttled_answers: kms_after_th.errors("Rejected.Throttling")
            - kms_before_th.errors("Rejected.Throttling"),
        max_store_calls_1s: max_1s,
        max_store_calls_5s: max_5s,
        max_store_calls_1s_whole_run: max_1s_run,
        kube_requests: requests_by(&th_reqs),
        kube_writes: th_reqs
            .iter()
            .filter(|r| r.is_write() && r.status < 300)
            .count(),
        controller_cpu_s: cpu_th - cpu_rot,
    };

    // Resources, metrics, stop.
    let metrics = match http_get(world.controllers[0].metrics, "/metrics").await {
        Some((200, text)) => [
            "kmsync_fetch_cache_hits_total",
            "kmsync_fetch_cache_misses_total",
            "kmsync_secret_writes_total",
            "kmsync_events_total",
        ]
        .iter()
        .map(|m| ((*m).to_owned(), metric_sum(&text, m)))
        .collect(),
        _ => BTreeMap::new(),
    };
    let peak = procstat::peak_rss(pid).unwrap_or(0);
    let rss_end = procstat::rss(pid).unwrap_or(0);
    let rss_file_end = procstat::rss_file(pid).unwrap_or(0);
    let cpu_end = cpu();
    let threads = procstat::own_threads_cpu();
    let delta = |k: &str| threads.get(k).unwrap_or(&0.0) - threads_at_start.get(k).unwrap_or(&0.0);
    let api_cpu = delta("apiserver");
    let emu_cpu = delta("emulator");
    let resources = Resources {
        controller_peak_rss_mib: peak as f64 / 1048576.0,
        controller_rss_ready_mib: rss_ready as f64 / 1048576.0,
        controller_rss_end_mib: rss_end as f64 / 1048576.0,
        controller_rss_file_end_mib: rss_file_end as f64 / 1048576.0,
        controller_cpu_s: cpu_end - cpu_ready,
        apiserver_cpu_s: api_cpu,
        emulator_cpu_s: emu_cpu,
        driver_cpu_s: delta("total") - api_cpu - emu_cpu,
        wall_s: started.elapsed().as_secs_f64(),
    };
    sampler.abort();
    let exit = world.stop_controller(0).await;
    let kube_total = world
        .api
        .requests()
        .iter()
        .filter(|r| by_controller(r))
        .count();
    let report = RunReport {
        mode,
        first_sync: first,
        idle,
        rotation,
        throttle,
        resources,
        metrics,
        controller_requests_total: kube_total,
        controller_exit: exit,
    };
    // The leak scan and the request dump of the e2e suite apply here too.
    world.finish().await;
    Ok(report)
}

/// `GetSecretValue` calls for the scenario's secrets between two counter snapshots (`None`:
/// since the reset).
fn secret_reads(
    sizes: &Sizes,
    before: Option<&kmsync::emulator::CounterSnapshot>,
    after: &kmsync::emulator::CounterSnapshot,
) -> u64 {
    layout::all_secret_names(sizes)
        .iter()
        .map(|n| after.secret(n) - before.map_or(0, |b| b.secret(n)))
        .sum()
}
