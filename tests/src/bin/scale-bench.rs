//! The scale and cost benchmark (issue #8): S SecretStores, D remote secrets and N
//! ExternalSecrets against the kmsync emulator and the fake kube-apiserver on loopback, with
//! the real `kmsync controller` as a subprocess; first, kmsync as shipped, then the same with
//! `--disable-fetch-cache` (the peers' behaviour) as the baseline. Prints a Markdown table and
//! the targets, writes a JSON report. The scenario: `kmsync_tests::scale`.
//!
//! ```sh
//! cargo build --release -p kmsync -p kmsync-tests --bin kmsync --bin scale-bench
//! target/release/scale-bench --report scale-bench.json
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kmsync_tests::scale::{self, Mode, Runtimes, ScaleConfig, Sizes, ThrottleConfig};
use serde_json::json;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    about = "kmsync scale and cost benchmark: kmsync vs. one read per object (--disable-fetch-cache)"
)]
struct Args {
    /// SecretStores (one per namespace), 1 to 99.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=99))]
    stores: u64,
    /// Distinct remote secrets (~1 KiB JSON each).
    #[arg(long, default_value_t = 2000)]
    secrets: usize,
    /// ExternalSecrets (1–3 secrets each, a third through jmesPath or extract).
    #[arg(long, default_value_t = 10_000)]
    external_secrets: usize,
    /// Size of each remote secret's JSON, bytes.
    #[arg(long, default_value_t = 1024)]
    secret_bytes: usize,
    /// The controller's --polling-interval, seconds (1 to 3600).
    #[arg(long, default_value_t = 30.0, value_parser = seconds(1.0, 3600.0))]
    polling_interval: f64,
    /// The controller's --reconcile-count (at least 1).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    reconcile_count: u64,
    /// The controller's --kms-qps (per store, at least 1).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    kms_qps: u32,
    /// Polling intervals of the idle phase.
    #[arg(long, default_value_t = 2)]
    idle_intervals: u32,
    /// Remote secrets rotated at once.
    #[arg(long, default_value_t = 100)]
    rotate: usize,
    /// Emulator limit during the throttle phase, calls per second.
    #[arg(long, default_value_t = 30)]
    throttle_qps: u32,
    /// New remote secrets in the throttle phase (all through one store).
    #[arg(long, default_value_t = 200)]
    throttle_secrets: usize,
    /// New ExternalSecrets in the throttle phase.
    #[arg(long, default_value_t = 1000)]
    throttle_external_secrets: usize,
    /// Minimum duration of the throttling, seconds, 0 to 3600 (default: one polling interval).
    #[arg(long, value_parser = seconds(0.0, 3600.0))]
    throttle_hold: Option<f64>,
    /// Create requests in flight at once.
    #[arg(long, default_value_t = 16)]
    create_concurrency: usize,
    /// Hang guard of each wait, seconds (1 to 86400).
    #[arg(long, default_value_t = 300.0, value_parser = seconds(1.0, 86400.0))]
    wait_limit: f64,
    /// A further controller flag (e.g. --controller-arg=--rule-max-concurrency=2); repeatable.
    #[arg(long = "controller-arg", allow_hyphen_values = true)]
    controller_args: Vec<String>,
    /// Run only kmsync, or only the baseline.
    #[arg(long, value_parser = ["kmsync", "baseline"])]
    only: Option<String>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "scale-bench.json")]
    report: PathBuf,
}

/// A parser of seconds within `min..=max` (finite: no NaN, no infinity).
fn seconds(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |text| {
        let v: f64 = text
            .parse()
            .map_err(|_| format!("{text:?} is not a number of seconds"))?;
        if v.is_finite() && (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(format!("must be between {min} and {max} seconds"))
        }
    }
}

fn runtime(name: &str, threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Cores, load, kernel and CPU model: what the figures depend on.
fn machine() -> serde_json::Value {
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "loadavg": read("/proc/loadavg").trim(),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "memory_kib": read("/proc/meminfo").lines().next().unwrap_or_default(),
        "controller": kmsync_tests::world::kmsync_bin(),
    })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let stores = usize::try_from(args.stores)?;
    if args.secrets < stores {
        anyhow::bail!(
            "--secrets {} must be at least --stores {stores}: every store reads its own secrets",
            args.secrets
        );
    }
    // Fail now, not after a ten-minute run, if the report cannot be written.
    std::fs::write(&args.report, b"{}")
        .with_context(|| format!("--report {}: cannot write it", args.report.display()))?;
    if args.external_secrets == 0 {
        anyhow::bail!("--external-secrets must be at least 1");
    }
    if args.throttle_external_secrets > 0 && args.throttle_secrets == 0 {
        anyhow::bail!(
            "--throttle-secrets must be at least 1 when --throttle-external-secrets is not 0"
        );
    }
    let p = Duration::from_secs_f64(args.polling_interval);
    let config = ScaleConfig {
        sizes: Sizes {
            stores,
            secrets: args.secrets,
            external_secrets: args.external_secrets,
            secret_bytes: args.secret_bytes,
        },
        polling_interval: p,
        reconcile_count: usize::try_from(args.reconcile_count)?,
        kms_qps: args.kms_qps,
        idle_intervals: args.idle_intervals,
        rotate: args.rotate,
        throttle: ThrottleConfig {
            qps: args.throttle_qps,
            secrets: args.throttle_secrets,
            external_secrets: args.throttle_external_secrets,
            hold: args.throttle_hold.map_or(p, Duration::from_secs_f64),
        },
        create_concurrency: args.create_concurrency,
        controller_args: args.controller_args.clone(),
        wait_limit: Duration::from_secs_f64(args.wait_limit),
    };
    let api = runtime("apiserver", 2)?;
    let emulator = runtime("emulator", 2)?;
    let driver = runtime("driver", 2)?;
    let runtimes = Runtimes {
        api: Some(api.handle().clone()),
        emulator: Some(emulator.handle().clone()),
    };
    let before = machine();
    eprintln!("machine: {before}");
    let modes: Vec<Mode> = match args.only.as_deref() {
        Some("kmsync") => vec![Mode::Kmsync],
        Some(_) => vec![Mode::Baseline],
        None => vec![Mode::Kmsync, Mode::Baseline],
    };
    let mut runs = Vec::new();
    for mode in modes {
        eprintln!("running {} ...", mode.as_str());
        let report = driver.block_on(scale::run(&config, mode, &runtimes))?;
        eprintln!(
            "{}: all Ready in {:.1} s, wall {:.0} s",
            mode.as_str(),
            report.first_sync.all_ready_s,
            report.resources.wall_s
        );
        runs.push(report);
    }
    let kmsync = runs.iter().find(|r| r.mode == Mode::Kmsync);
    let baseline = runs.iter().find(|r| r.mode == Mode::Baseline);
    let main = kmsync.or(baseline).context("no run")?;
    let table = scale::report::table(main, kmsync.and(baseline));
    println!("{table}");
    let checks = kmsync
        .map(|k| scale::report::targets(&config, k, baseline))
        .unwrap_or_default();
    for c in &checks {
        println!(
            "[{}] {}: {} — {}",
            if c.pass { "met" } else { "MISSED" },
            c.name,
            c.target,
            c.value
        );
    }
    let doc = json!({
        "command": std::env::args().collect::<Vec<_>>(),
        "machine_before": before,
        "machine_after": machine(),
        "config": config,
        "runs": runs,
        "targets": checks,
        "table": table,
    });
    std::fs::write(&args.report, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", args.report.display()))?;
    eprintln!("report written to {}", args.report.display());
    drop(driver);
    drop(emulator);
    drop(api);
    Ok(())
}
