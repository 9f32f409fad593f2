//! The scale scenario of `scale-bench` in small (kmsync_tests::scale): correctness only —
//! every object ready, one KMS read per distinct secret per interval, nothing written while
//! nothing changes, rotations reach every Secret, throttling ends with every object ready.
//! Never timing: the benchmark prints the figures.

use std::time::Duration;

use kmsync_tests::scale::{self, Mode, Runtimes, ScaleConfig, Sizes, ThrottleConfig};

fn small() -> ScaleConfig {
    ScaleConfig {
        sizes: Sizes {
            stores: 5,
            secrets: 60,
            external_secrets: 300,
            secret_bytes: 1024,
        },
        polling_interval: Duration::from_secs(10),
        reconcile_count: 4,
        kms_qps: 20,
        idle_intervals: 2,
        rotate: 10,
        throttle: ThrottleConfig {
            qps: 10,
            secrets: 20,
            external_secrets: 40,
            hold: Duration::from_secs(4),
        },
        create_concurrency: 8,
        controller_args: vec!["--reconcile-period=500ms".into()],
        wait_limit: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_scale_run_reads_each_secret_once_per_interval_and_writes_nothing_when_idle() {
    let config = small();
    let run = scale::run(&config, Mode::Kmsync, &Runtimes::default())
        .await
        .expect("the scenario runs");
    eprintln!("{}", scale::report::table(&run, None));
    eprintln!("{}", serde_json::to_string_pretty(&run).unwrap());
    let d = config.sizes.secrets as u64;
    assert_eq!(run.first_sync.objects, 300);
    // One read per distinct secret and polling interval the first sync spans (one interval
    // unless this machine is very slow).
    let spanned = 1 + (run.first_sync.all_ready_s / config.polling_interval.as_secs_f64()) as u64;
    assert!(
        (d..=d * spanned).contains(&run.first_sync.secret_reads),
        "{} reads of {d} secrets over {spanned} intervals",
        run.first_sync.secret_reads
    );
    // Idle (two intervals): every secret refreshed, never more than once per interval (a
    // read lands at interval + jitter + queueing, so a window of exactly two intervals holds
    // one or two reads of a secret, never three), nothing written.
    let intervals = u64::from(config.idle_intervals);
    assert!(run.idle.per_secret_min >= 1, "{:?}", run.idle);
    assert!(run.idle.per_secret_max <= intervals, "{:?}", run.idle);
    assert!(run.idle.secret_reads <= d * intervals, "{:?}", run.idle);
    assert_eq!(run.idle.kube_writes, 0, "{:?}", run.idle.kube_requests);
    assert_eq!(
        run.idle.kms_calls.keys().collect::<Vec<_>>(),
        ["GetSecretValue"]
    );
    // Rotation reaches every affected Secret, each written once per rotated secret it names
    // at most (1–3; two rotated secrets read at different moments are two writes).
    let affected = run.rotation.affected_secrets;
    assert_eq!(run.rotation.propagated, affected);
    assert!(
        (affected..=3 * affected).contains(&run.rotation.secret_writes),
        "{:?}",
        run.rotation
    );
    assert!(run.throttle.converged && run.throttle.objects_not_ready_at_end == 0);
    assert!(
        run.throttle.throttled_answers > 0,
        "the throttle phase throttled"
    );
}
