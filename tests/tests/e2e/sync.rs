//! Syncing: create, rotate, repair; and what is *not* done when nothing changed.

use base64::Engine as _;
use kmsync::emulator::NewVersion;
use serde_json::json;

use crate::fixtures::{external_secret, store_with_access_key};
use crate::harness::{TEAM, World, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_and_an_external_secret_give_an_owned_labelled_secret_that_is_ready() {
    let mut w = World::start("create").await;
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret("db", "db-password", "")).await;
    w.spawn_controller(&[]).await;

    let secret = wait_for("Secret team-a/db", || async { w.secret(TEAM, "db") }).await;
    let es = w.external_secret(TEAM, "db").unwrap();
    assert_eq!(
        w.secret_value(TEAM, "db", "password").as_deref(),
        Some("marker-db-password-91c2")
    );
    assert_eq!(
        secret.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "kmsync"
    );
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("ExternalSecret", "db", Some(true))
    );
    assert_eq!(Some(&owner.uid), es.metadata.uid.as_ref());
    let annotations = secret.metadata.annotations.as_ref().unwrap();
    assert!(annotations["kmsync.io/digest"].starts_with("hmac-sha256:"));
    assert_eq!(annotations["kmsync.io/versions"], "v1");
    assert_eq!(annotations["kmsync.io/external-secret"], "db");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));

    let message = w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    assert!(message.contains("Secret db"), "{message}");
    let es = w.external_secret(TEAM, "db").unwrap();
    let status = es.status.unwrap();
    assert_eq!(status.binding.unwrap().name, "db");
    assert!(status.refresh_time.is_some());
    assert_eq!(status.observed_generation, es.metadata.generation);
    let results = status.data_sync_results.unwrap();
    assert_eq!(
        results[0].external_secret_key.as_deref(),
        Some("db-password")
    );
    assert_eq!(results[0].status.as_deref(), Some("Succeeded"));
    assert_eq!(results[0].version_id.as_deref(), Some("v1"));
    assert!(
        es.metadata
            .finalizers
            .unwrap()
            .contains(&"kmsync.io/finalizer".to_owned())
    );
    let store = w.secret_store(TEAM, "kms").unwrap();
    let ready = store.status.unwrap();
    let ready = ready.ready().unwrap();
    assert_eq!(ready.reason.as_deref(), Some("Valid"));

    // A real client agrees: kubectl waits on the condition through discovery and a watch.
    let kubeconfig = w.dir.path().join("kubeconfig");
    let out = tokio::process::Command::new(std::env::var("KUBECTL").unwrap_or("kubectl".into()))
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--cache-dir"])
        .arg(w.dir.path().join("kubectl-cache"))
        .args([
            "-n",
            TEAM,
            "wait",
            "--for=condition=Ready",
            "externalsecret/db",
            "--timeout=60s",
        ])
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl wait failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_is_picked_up_and_nothing_is_written_or_fetched_while_it_is_unchanged() {
    let mut w = World::start("rotate").await;
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret("db", "db-password", "")).await;
    w.spawn_controller(&["--polling-interval=1s"]).await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    // The Events of the first sync and the first store check (published after the status).
    for (name, reason) in [("db", "SecretSynced"), ("kms", "StoreReady")] {
        wait_for(&format!("the {reason} Event"), || async {
            w.events_about(name)
                .into_iter()
                .any(|e| e.1 == reason)
                .then_some(())
        })
        .await;
    }

    // Three refreshes with nothing new: one read each, no writes at all.
    let secret_writes = w.controller_writes("secrets", TEAM, "db");
    let status_writes = w
        .all_controller_writes()
        .iter()
        .filter(|r| r.resource == "externalsecrets")
        .count();
    let events = w.api.objects("events.k8s.io", "events").len();
    let reads = w.kms_reads("db-password");
    for n in 1..=3 {
        wait_for("a periodic refresh", || async {
            (w.kms_reads("db-password") >= reads + n).then_some(())
        })
        .await;
    }
    assert_eq!(
        w.kms_reads("db-password"),
        reads + 3,
        "one read per interval"
    );
    assert_eq!(w.controller_writes("secrets", TEAM, "db"), secret_writes);
    assert_eq!(
        w.all_controller_writes()
            .iter()
            .filter(|r| r.resource == "externalsecrets")
            .count(),
        status_writes,
        "no status write while nothing changes"
    );
    assert_eq!(
        w.api.objects("events.k8s.io", "events").len(),
        events,
        "{:#?}",
        w.api.objects("events.k8s.io", "events")
    );

    // Rotate in KMS: the next refresh writes the new value, once.
    w.emu
        .state()
        .add_new_version(
            "db-password",
            &serde_json::from_value::<NewVersion>(
                json!({"version_id": "v2", "text": "marker-db-password-rotated-e4a0"}),
            )
            .unwrap(),
        )
        .unwrap();
    w.markers.push("marker-db-password-rotated-e4a0".into());
    wait_for("the rotated value", || async {
        (w.secret_value(TEAM, "db", "password").as_deref()
            == Some("marker-db-password-rotated-e4a0"))
        .then_some(())
    })
    .await;
    assert_eq!(
        w.controller_writes("secrets", TEAM, "db"),
        secret_writes + 1
    );
    let secret = w.secret(TEAM, "db").unwrap();
    assert_eq!(
        secret.metadata.annotations.unwrap()["kmsync.io/versions"],
        "v2"
    );
    let reads = w.kms_reads("db-password");
    wait_for("one more refresh", || async {
        (w.kms_reads("db-password") > reads).then_some(())
    })
    .await;
    assert_eq!(
        w.controller_writes("secrets", TEAM, "db"),
        secret_writes + 1,
        "the same version is not written twice"
    );
    let results = w
        .external_secret(TEAM, "db")
        .unwrap()
        .status
        .unwrap()
        .data_sync_results
        .unwrap();
    assert_eq!(results[0].version_id.as_deref(), Some("v2"));
    let metrics = crate::harness::http_get(w.controllers[0].metrics, "/metrics")
        .await
        .unwrap()
        .1;
    for series in [
        r#"kmsync_syncs_total{kind="ExternalSecret",result="written"} 2"#,
        r#"kmsync_syncs_total{kind="ExternalSecret",result="unchanged"}"#,
        r#"kmsync_cloud_calls_total{service="kms",action="GetSecretValue",code="Success"}"#,
        r#"kmsync_secret_writes_total{operation="apply"} 2"#,
        r#"kmsync_last_success_timestamp_seconds{kind="ExternalSecret"}"#,
        r#"kmsync_queue_pending{kind="ExternalSecret"} 1"#,
        "kmsync_leader 1",
        "kmsync_fetch_cache_misses_total",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    assert!(!metrics.contains("team-a"), "no object names in labels");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotate_rules_restart_request_is_recorded_on_the_secret_and_in_an_event() {
    let mut w = World::start("restart-requested").await;
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret(
        "db",
        "db-password",
        "  rules:\n    - module: {builtin: rotate-default}\n      config: {restart: true}\n",
    ))
    .await;
    w.spawn_controller(&["--polling-interval=1s"]).await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    // The first write is an initial sync, not a rotation: nothing to restart.
    let secret = w.secret(TEAM, "db").unwrap();
    assert!(
        !secret
            .metadata
            .annotations
            .unwrap()
            .contains_key("kmsync.io/restart-requested")
    );

    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    w.emu
        .state()
        .add_new_version(
            "db-password",
            &serde_json::from_value::<NewVersion>(
                json!({"version_id": "v2", "text": "marker-db-password-restart-5b7e"}),
            )
            .unwrap(),
        )
        .unwrap();
    w.markers.push("marker-db-password-restart-5b7e".into());
    let stamp = wait_for("the restart annotation", || async {
        let secret = w.secret(TEAM, "db")?;
        (secret.data.as_ref()?.get("password")?.0 == b"marker-db-password-restart-5b7e")
            .then_some(())?;
        secret
            .metadata
            .annotations?
            .get("kmsync.io/restart-requested")
            .cloned()
    })
    .await;
    let at = chrono::DateTime::parse_from_rfc3339(&stamp).unwrap();
    assert!(at >= before && at <= chrono::Utc::now(), "{stamp}");
    let event = wait_for("the RestartRequested Event", || async {
        w.events_about("db")
            .into_iter()
            .find(|e| e.1 == "RestartRequested")
    })
    .await;
    assert_eq!(event.0, "Normal");
    assert!(
        event.2.starts_with(
            "Secret db was written (versions v2) and a rotate rule asked for the workloads using it to be restarted"
        ),
        "{}",
        event.2
    );
    assert_eq!(
        w.events_about("db")
            .iter()
            .filter(|e| e.1 == "RestartRequested")
            .count(),
        1
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_is_recreated_and_an_edited_key_restored_without_reading_kms_again() {
    let mut w = World::start("repair").await;
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret("db", "db-password", "")).await;
    // A long interval: every read below would be a repair's.
    w.spawn_controller(&["--polling-interval=10m"]).await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    let first = w.secret(TEAM, "db").unwrap();
    let reads = w.kms_reads("db-password");

    w.delete("v1", "Secret", Some(TEAM), "db").await;
    let again = wait_for("the Secret to come back", || async {
        w.secret(TEAM, "db")
            .filter(|s| s.metadata.uid != first.metadata.uid)
    })
    .await;
    assert_eq!(
        w.secret_value(TEAM, "db", "password").as_deref(),
        Some("marker-db-password-91c2")
    );
    assert!(again.metadata.owner_references.is_some());

    // Someone edits kmsync's key by hand and adds one of their own.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    w.merge_patch(
        "v1",
        "Secret",
        Some(TEAM),
        "db",
        json!({"data": {"password": b64("tampered"), "note": b64("mine")}}),
    )
    .await;
    wait_for("the edited key to be restored", || async {
        (w.secret_value(TEAM, "db", "password").as_deref() == Some("marker-db-password-91c2"))
            .then_some(())
    })
    .await;
    assert_eq!(
        w.secret_value(TEAM, "db", "note").as_deref(),
        Some("mine"),
        "a key kmsync does not own is left alone"
    );
    assert_eq!(
        w.kms_reads("db-password"),
        reads,
        "repairs are served from the fetch cache"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_external_secrets_naming_one_secret_cost_one_kms_read_unless_the_cache_is_off() {
    for (cache_off, expected) in [(false, 1), (true, 20)] {
        let mut w = World::start(if cache_off {
            "no-fetch-cache"
        } else {
            "fetch-cache"
        })
        .await;
        w.apply(&store_with_access_key()).await;
        for i in 0..20 {
            w.apply(&external_secret(&format!("app-{i}"), "db-password", ""))
                .await;
        }
        let mut flags = vec!["--polling-interval=10m"];
        if cache_off {
            flags.push("--disable-fetch-cache");
        }
        w.spawn_controller(&flags).await;
        for i in 0..20 {
            w.wait_es(TEAM, &format!("app-{i}"), "True", "SecretSynced")
                .await;
        }
        assert_eq!(
            w.kms_reads("db-password"),
            expected,
            "cache off: {cache_off}"
        );
        w.finish().await;
    }
}
