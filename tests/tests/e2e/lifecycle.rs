//! Object and process life cycles: deleting ExternalSecrets (Retain, Delete), ack-secret-
//! manager's leftover finalizer, a controller killed mid-sync, leader election, SIGTERM.

use std::collections::BTreeMap;

use kmsync::emulator::FaultRule;
use serde_json::{Value, json};

use crate::fixtures::{external_secret, store_with_access_key};
use crate::harness::{SYSTEM, TEAM, World, WorldOptions, http_get, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_external_secret_keeps_its_secret_with_retain_and_deletes_it_with_delete() {
    let mut w = World::start("deletion").await;
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret("keep", "db-password", "")).await;
    w.apply(&external_secret(
        "drop",
        "db-password",
        "  target: {creationPolicy: Owner, deletionPolicy: Delete}",
    ))
    .await;
    // Left behind by ack-secret-manager: nothing but kmsync removes it now.
    w.apply(&format!(
        r#"
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata:
  name: migrated
  namespace: {TEAM}
  finalizers: [finalizer.ack.secrets-manager.alibabacloud.com]
spec:
  data: [{{key: api-token, name: token, secretStoreRef: {{name: kms}}}}]
"#
    ))
    .await;
    w.apply(&format!(
        r#"
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata:
  name: migrated-store
  namespace: {TEAM}
  finalizers: [finalizer.ack.secrets-manager.alibabacloud.com]
spec:
  KMS: {{}}
"#
    ))
    .await;
    w.spawn_controller(&[]).await;
    wait_for("ack's finalizer to leave the SecretStore", || async {
        w.secret_store(TEAM, "migrated-store")?
            .metadata
            .finalizers
            .unwrap_or_default()
            .is_empty()
            .then_some(())
    })
    .await;
    for name in ["keep", "drop", "migrated"] {
        w.wait_es(TEAM, name, "True", "SecretSynced").await;
    }
    let migrated = w.external_secret(TEAM, "migrated").unwrap();
    assert_eq!(
        migrated.metadata.finalizers.unwrap(),
        ["kmsync.io/finalizer"],
        "ack-secret-manager's finalizer is gone, kmsync's is there"
    );

    w.delete(
        "alibabacloud.com/v1alpha1",
        "ExternalSecret",
        Some(TEAM),
        "keep",
    )
    .await;
    w.delete(
        "alibabacloud.com/v1alpha1",
        "ExternalSecret",
        Some(TEAM),
        "drop",
    )
    .await;
    wait_for("both ExternalSecrets to be gone", || async {
        (w.external_secret(TEAM, "keep").is_none() && w.external_secret(TEAM, "drop").is_none())
            .then_some(())
    })
    .await;
    wait_for("the Delete Secret to be gone", || async {
        w.secret(TEAM, "drop").is_none().then_some(())
    })
    .await;
    let kept = w.secret(TEAM, "keep").expect("Retain keeps the Secret");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "no owner reference is left for the garbage collector"
    );
    assert_eq!(
        w.secret_value(TEAM, "keep", "password").as_deref(),
        Some("marker-db-password-91c2")
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_sync_and_restarted_neither_loses_nor_repeats_writes() {
    let mut w = World::start("kill-restart").await;
    w.apply(&store_with_access_key()).await;
    let names: Vec<String> = (0..12).map(|i| format!("app-{i}")).collect();
    for name in &names {
        w.apply(&external_secret(name, "db-password", "")).await;
    }
    // Slow KMS, one sync at a time: the kill lands in the middle of the work.
    w.emu
        .state()
        .set_faults(vec![FaultRule::latency(150)])
        .unwrap();
    let first = w
        .spawn_controller(&[
            "--reconcile-count=1",
            "--max-concurrent-kms-secret-pulls=1",
            "--disable-fetch-cache",
        ])
        .await;
    wait_for("some Secrets written", || async {
        (names.iter().filter(|n| w.secret(TEAM, n).is_some()).count() >= 3).then_some(())
    })
    .await;
    w.controllers[first].signal(libc::SIGKILL);
    w.controllers[first].wait_exit().await;
    let written_before: usize = names.iter().filter(|n| w.secret(TEAM, n).is_some()).count();
    assert!(written_before < names.len(), "the kill came mid-sync");

    w.emu.state().clear_faults();
    w.spawn_controller(&[]).await;
    for name in &names {
        w.wait_es(TEAM, name, "True", "SecretSynced").await;
        assert_eq!(
            w.secret_value(TEAM, name, "password").as_deref(),
            Some("marker-db-password-91c2"),
            "{name}"
        );
        assert_eq!(
            w.controller_writes("secrets", TEAM, name),
            1,
            "{name} is written exactly once across both processes"
        );
    }
    w.finish().await;
}

fn lease(w: &World) -> Value {
    w.api
        .object("coordination.k8s.io", "leases", SYSTEM, "kmsync-leader")
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leader_election_only_the_leader_writes_and_a_standby_takes_over() {
    let mut w = World::start_with(
        "leader-election",
        WorldOptions {
            chart_values: json!({"leaderElection": {"enabled": true}}),
            ..WorldOptions::default()
        },
    )
    .await;
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret("one", "db-password", "")).await;
    let flags = [
        "--leader-elect",
        "--leader-election-namespace=kmsync-system",
        "--leader-election-id=kmsync-leader",
        "--leader-election-lease-duration=3s",
        "--leader-election-renew-deadline=2s",
        "--leader-election-retry-period=300ms",
    ];
    let a = w.spawn_controller(&flags).await;
    w.wait_es(TEAM, "one", "True", "SecretSynced").await;
    let b = w.spawn_controller(&flags).await;
    let (name_a, name_b) = (w.controllers[a].name.clone(), w.controllers[b].name.clone());
    assert_eq!(lease(&w)["spec"]["holderIdentity"], name_a.as_str());
    // The standby is ready (rolling updates need it) and writes nothing but Lease reads.
    assert_eq!(
        http_get(w.controllers[b].health, "/readyz")
            .await
            .map(|r| r.0),
        Some(200)
    );
    w.apply(&external_secret("two", "api-token", "")).await;
    w.wait_es(TEAM, "two", "True", "SecretSynced").await;
    assert!(
        w.writes_by(&name_b).iter().all(|r| r.resource == "leases"),
        "the standby wrote {:?}",
        w.writes_by(&name_b)
    );
    let metrics = http_get(w.controllers[b].metrics, "/metrics")
        .await
        .unwrap()
        .1;
    assert!(metrics.contains("kmsync_leader 0"), "{metrics}");

    // The leader dies without a word: the standby takes the Lease once it expires.
    w.controllers[a].signal(libc::SIGKILL);
    w.controllers[a].wait_exit().await;
    let after_kill = w.writes_by(&name_a).len();
    wait_for("the standby to take over", || async {
        (lease(&w)["spec"]["holderIdentity"] == name_b.as_str()).then_some(())
    })
    .await;
    w.apply(&external_secret("three", "app-config", "")).await;
    w.wait_es(TEAM, "three", "True", "SecretSynced").await;
    assert!(
        w.writes_by(&name_b)
            .iter()
            .any(|r| r.resource == "secrets" && r.name == "three")
    );
    assert_eq!(w.writes_by(&name_a).len(), after_kill);
    assert_eq!(lease(&w)["spec"]["leaseTransitions"], 1);

    // SIGTERM: in-flight work finishes, the Lease is released, exit 0.
    assert_eq!(w.stop_controller(b).await, Some(0));
    let released = lease(&w);
    assert!(
        released["spec"]["holderIdentity"].is_null() || released["spec"]["holderIdentity"] == "",
        "{released}"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_none_merge_and_immutable_policies_write_as_their_names_say() {
    let mut w = World::start("policies").await;
    w.apply(&store_with_access_key()).await;
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    w.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: shared, namespace: {TEAM}, labels: {{owner: someone}}}}
data: {{theirs: {theirs}}}
"#,
        theirs = b64("their-value")
    ))
    .await;
    w.apply(&external_secret(
        "orphan",
        "db-password",
        "  target: {creationPolicy: Orphan}",
    ))
    .await;
    w.apply(&external_secret(
        "dry",
        "db-password",
        "  target: {creationPolicy: None}",
    ))
    .await;
    w.apply(&external_secret(
        "merge",
        "api-token",
        "  target: {name: shared, creationPolicy: Merge}",
    ))
    .await;
    w.apply(&external_secret(
        "merge-missing",
        "api-token",
        "  target: {name: absent, creationPolicy: Merge}",
    ))
    .await;
    w.apply(&external_secret(
        "frozen",
        "db-password",
        "  target: {immutable: true}",
    ))
    .await;
    w.spawn_controller(&["--polling-interval=10m"]).await;

    w.wait_es(TEAM, "orphan", "True", "SecretSynced").await;
    let orphan = w.secret(TEAM, "orphan").unwrap();
    assert!(orphan.metadata.owner_references.is_none());
    assert_eq!(
        orphan.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "kmsync"
    );

    let message = w.wait_es(TEAM, "dry", "True", "SecretSynced").await;
    assert!(message.contains("no Secret is written"), "{message}");
    assert!(w.secret(TEAM, "dry").is_none());

    w.wait_es(TEAM, "merge", "True", "SecretSynced").await;
    let shared = w.secret(TEAM, "shared").unwrap();
    let keys: BTreeMap<_, _> = shared
        .data
        .clone()
        .unwrap()
        .into_keys()
        .map(|k| (k, ()))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(
        w.secret_value(TEAM, "shared", "theirs").as_deref(),
        Some("their-value")
    );
    assert_eq!(
        w.secret_value(TEAM, "shared", "password").as_deref(),
        Some("marker-api-token-0b7d")
    );
    assert!(shared.metadata.owner_references.is_none());
    assert_eq!(shared.metadata.labels.unwrap()["owner"], "someone");
    let message = w
        .wait_es(TEAM, "merge-missing", "False", "SecretMissing")
        .await;
    assert!(message.contains("does not create it"), "{message}");
    assert!(w.secret(TEAM, "absent").is_none());

    // Immutable: replaced (a new object) when its data must change, and only then.
    w.wait_es(TEAM, "frozen", "True", "SecretSynced").await;
    let frozen = w.secret(TEAM, "frozen").unwrap();
    assert_eq!(frozen.immutable, Some(true));
    w.emu
        .state()
        .add_new_version(
            "db-password",
            &serde_json::from_value(json!({"version_id": "v2", "text": "marker-frozen-v2-61f0"}))
                .unwrap(),
        )
        .unwrap();
    w.markers.push("marker-frozen-v2-61f0".into());
    w.merge_patch(
        "alibabacloud.com/v1alpha1",
        "ExternalSecret",
        Some(TEAM),
        "frozen",
        json!({"metadata": {"annotations": {"kmsync.io/force-sync": "1"}}}),
    )
    .await;
    let replaced = wait_for("the immutable Secret to be replaced", || async {
        w.secret(TEAM, "frozen")
            .filter(|s| s.metadata.uid != frozen.metadata.uid)
    })
    .await;
    assert_eq!(replaced.immutable, Some(true));
    assert_eq!(
        w.secret_value(TEAM, "frozen", "password").as_deref(),
        Some("marker-frozen-v2-61f0"),
        "force-sync read the new version despite the 10 minute interval"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_neither_reads_nor_writes_anything_for_objects_not_yet_due() {
    let mut w = World::start("restart-quiet").await;
    w.apply(&store_with_access_key()).await;
    let names: Vec<String> = (0..10).map(|i| format!("app-{i}")).collect();
    for name in &names {
        w.apply(&external_secret(name, "db-password", "")).await;
    }
    let first = w.spawn_controller(&["--polling-interval=10m"]).await;
    for name in &names {
        w.wait_es(TEAM, name, "True", "SecretSynced").await;
    }
    assert_eq!(w.stop_controller(first).await, Some(0));
    let reads = w.kms_reads("db-password");

    let second = w.spawn_controller(&["--polling-interval=10m"]).await;
    let pod = w.controllers[second].name.clone();
    // Every object is looked at once (its Secret is intact) and then waits for its time.
    wait_for("every ExternalSecret to be checked", || async {
        let metrics = http_get(w.controllers[second].metrics, "/metrics").await?.1;
        let checked: u64 = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"kmsync_syncs_total{kind="ExternalSecret",result="checked"} "#)
            })?
            .parse()
            .ok()?;
        (checked >= 10).then_some(())
    })
    .await;
    assert_eq!(
        w.kms_reads("db-password"),
        reads,
        "no KMS read after a restart"
    );
    assert!(
        w.writes_by(&pod).is_empty(),
        "no write after a restart: {:?}",
        w.writes_by(&pod)
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_finds_another_holder_on_its_lease_stops_with_an_error() {
    let mut w = World::start_with(
        "lost-lease",
        WorldOptions {
            chart_values: json!({"leaderElection": {"enabled": true}}),
            ..WorldOptions::default()
        },
    )
    .await;
    let leader = w
        .spawn_controller(&[
            "--leader-elect",
            "--leader-election-namespace=kmsync-system",
            "--leader-election-id=kmsync-leader",
            "--leader-election-lease-duration=3s",
            "--leader-election-renew-deadline=2s",
            "--leader-election-retry-period=300ms",
        ])
        .await;
    let name = w.controllers[leader].name.clone();
    wait_for("the Lease to be held", || async {
        (lease(&w)["spec"]["holderIdentity"] == name.as_str()).then_some(())
    })
    .await;
    // Someone else takes the Lease (as a replica with a wrong clock might): the leader must
    // not go on writing.
    w.merge_patch(
        "coordination.k8s.io/v1",
        "Lease",
        Some(SYSTEM),
        "kmsync-leader",
        json!({"spec": {"holderIdentity": "someone-else"}}),
    )
    .await;
    let code = w.controllers[leader].wait_exit().await;
    assert_eq!(code, Some(1), "{}", w.controllers[leader].log_text());
    assert!(
        w.controllers[leader]
            .log_text()
            .contains("leadership was lost")
    );
    w.finish().await;
}
