//! When things go wrong: the cloud misbehaves, or the manifests are wrong. The Secret is never
//! touched, the condition says why, and nothing is retried into an Event storm.

use std::collections::BTreeMap;

use base64::Engine as _;
use kmsync::emulator::{FaultRule, NewVersion};
use serde_json::json;

use crate::fixtures::{external_secret, store_with_access_key};
use crate::harness::{TEAM, World, WorldOptions, wait_for};

fn rotate(w: &World, name: &str, version: &str, value: &str) {
    w.emu
        .state()
        .add_new_version(
            name,
            &serde_json::from_value::<NewVersion>(json!({"version_id": version, "text": value}))
                .unwrap(),
        )
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_server_errors_and_timeouts_leave_the_secret_alone_say_why_and_recover() {
    let mut w = World::start("faults").await;
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret("db", "db-password", "")).await;
    w.spawn_controller(&[
        "--polling-interval=1s",
        "--reconcile-period=100ms",
        "--request-attempts=2",
        "--request-timeout=1s",
    ])
    .await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    let writes = w.controller_writes("secrets", TEAM, "db");
    // A new version waits in KMS: any successful read now would change the Secret.
    rotate(&w, "db-password", "v2", "marker-db-password-v2-a81f");
    w.markers.push("marker-db-password-v2-a81f".into());
    w.emu
        .state()
        .set_faults(vec![FaultRule::throttle()])
        .unwrap();
    let faults: [(FaultRule, &str); 3] = [
        (FaultRule::throttle(), "Throttling"),
        (FaultRule::error(503), "ServiceUnavailableTemporary"),
        (FaultRule::latency(2500), "within"),
    ];
    for (fault, expect) in faults {
        w.emu.state().set_faults(vec![fault]).unwrap();
        let message = wait_for(&format!("a condition naming {expect}"), || async {
            let (status, _, message) = w.es_ready(TEAM, "db")?;
            (status == "False" && message.contains(expect)).then_some(message)
        })
        .await;
        assert_eq!(
            w.secret_value(TEAM, "db", "password").as_deref(),
            Some("marker-db-password-91c2"),
            "the last good value stays ({message})"
        );
        assert_eq!(w.controller_writes("secrets", TEAM, "db"), writes);
    }
    w.emu.state().clear_faults();
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    wait_for("the new version", || async {
        (w.secret_value(TEAM, "db", "password").as_deref() == Some("marker-db-password-v2-a81f"))
            .then_some(())
    })
    .await;
    assert_eq!(w.controller_writes("secrets", TEAM, "db"), writes + 1);
    // One Warning Event per distinct problem (FetchFailed or StoreNotReady for each fault
    // kind), however many attempts failed: request ids do not make a repeat a new Event.
    let warnings = w
        .events_about("db")
        .into_iter()
        .filter(|e| e.0 == "Warning")
        .count();
    let failed_calls = w.emu.counters().faults_injected;
    assert!(
        (3..=6).contains(&warnings) && failed_calls > warnings as u64,
        "{warnings} Warning Events for {failed_calls} failed calls: {:#?}",
        w.events_about("db")
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_condition_and_changes_no_secret() {
    let mut w = World::start_with(
        "bad-input",
        WorldOptions {
            namespaces: vec!["team-b".into()],
            ..WorldOptions::default()
        },
    )
    .await;
    w.markers.push("marker-wrong-ak-secret-0c11".into());
    w.apply(&store_with_access_key()).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    w.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: wrong-ak, namespace: {TEAM}}}
stringData: {{id: LTAI5tE2eTestKey0001, secret: marker-wrong-ak-secret-0c11}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: wrong, namespace: {TEAM}}}
spec:
  KMS:
    KMSAuth:
      accessKey: {{name: wrong-ak, key: id}}
      accessKeySecret: {{name: wrong-ak, key: secret}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: kms, namespace: team-b}}
spec:
  KMS:
    KMSAuth:
      accessKey: {{name: alibaba-ak, key: id}}
      accessKeySecret: {{name: alibaba-ak, key: secret}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: sa-store, namespace: {TEAM}}}
spec:
  KMS:
    KMSAuth:
      serviceAccountRef: {{name: default}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: per-sa, namespace: {TEAM}}}
spec:
  data: [{{key: db-password, name: password, secretStoreRef: {{name: sa-store}}}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: taken, namespace: {TEAM}}}
data: {{app: {app}}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: wrong-creds, namespace: {TEAM}}}
spec:
  data: [{{key: db-password, name: password, secretStoreRef: {{name: wrong}}}}]
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: no-store, namespace: {TEAM}}}
spec:
  data: [{{key: db-password, name: password, secretStoreRef: {{name: nope}}}}]
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: bad-path, namespace: {TEAM}}}
spec:
  data:
    - key: app-config
      secretStoreRef: {{name: kms}}
      jmesPath: [{{path: "no.such.field", objectAlias: user}}]
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: conflict, namespace: {TEAM}}}
spec:
  target: {{name: taken}}
  data: [{{key: db-password, name: password, secretStoreRef: {{name: kms}}}}]
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: cross-ns, namespace: {TEAM}}}
spec:
  data: [{{key: db-password, name: password, secretStoreRef: {{name: kms, namespace: team-b}}}}]
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: duplicate-key, namespace: {TEAM}}}
spec:
  data:
    - {{key: db-password, name: password, secretStoreRef: {{name: kms}}}}
    - {{key: api-token, name: password, secretStoreRef: {{name: kms}}}}
"#,
        app = b64("owned-by-someone-else"),
    ))
    .await;
    let taken_before = w.secret(TEAM, "taken").unwrap();
    w.spawn_controller(&[]).await;

    let cases = [
        ("wrong-creds", "StoreNotReady", "SignatureDoesNotMatch"),
        (
            "no-store",
            "StoreNotFound",
            "SecretStore team-a/nope does not exist",
        ),
        ("bad-path", "RuleError", "no.such.field"),
        ("conflict", "SecretConflict", "was not created by kmsync"),
        (
            "cross-ns",
            "PolicyDenied",
            "--enable-cross-namespace-secret-store",
        ),
        ("duplicate-key", "InvalidSpec", "password"),
        ("per-sa", "StoreNotReady", "--enable-service-account-token"),
    ];
    for (name, reason, detail) in cases {
        // The condition settles on the reason and names the problem (a first attempt may
        // report the same reason with a less specific message, e.g. before the store's check).
        wait_for(
            &format!("{name}: Ready=False {reason} naming {detail:?}"),
            || async {
                let (status, r, message) = w.es_ready(TEAM, name)?;
                (status == "False" && r == reason && message.contains(detail)).then_some(())
            },
        )
        .await;
        wait_for(
            &format!("a Warning Event for {name} naming {detail:?}"),
            || async {
                w.events_about(name)
                    .into_iter()
                    .find(|e| e.0 == "Warning" && e.1 == reason && e.2.contains(detail))
            },
        )
        .await;
    }
    // The store with the wrong key says why, too.
    let store = wait_for("store wrong to be checked", || async {
        let s = w.secret_store(TEAM, "wrong")?;
        let c = s.status?.ready()?.clone();
        (c.reason.as_deref() == Some("AuthenticationFailed")).then_some(c)
    })
    .await;
    assert!(store.message.unwrap().contains("SignatureDoesNotMatch"));
    // No Secret was created for any of them, and the foreign one is untouched.
    for name in [
        "wrong-creds",
        "no-store",
        "bad-path",
        "cross-ns",
        "duplicate-key",
    ] {
        assert!(w.secret(TEAM, name).is_none(), "{name}");
    }
    let taken = w.secret(TEAM, "taken").unwrap();
    assert_eq!(
        taken.metadata.resource_version,
        taken_before.metadata.resource_version
    );
    // The only Secret the controller wrote is its own digest key.
    assert!(
        w.all_controller_writes()
            .iter()
            .all(|r| r.resource != "secrets" || r.namespace == "kmsync-system"),
        "{:?}",
        w.all_controller_writes()
    );
    let results: BTreeMap<String, String> = w
        .external_secret(TEAM, "bad-path")
        .unwrap()
        .status
        .unwrap()
        .data_sync_results
        .unwrap()
        .into_iter()
        .map(|r| (r.external_secret_key.unwrap(), r.status.unwrap()))
        .collect();
    assert_eq!(
        results.get("app-config").map(String::as_str),
        Some("Failed")
    );
    w.finish().await;
}
