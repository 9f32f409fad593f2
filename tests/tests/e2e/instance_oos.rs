//! KMS instance gateway (ClientKey, pinned CA) and OOS encrypted parameters end to end
//! (issue #9).

use base64::Engine as _;

use crate::harness::{AK_ID, AK_SECRET, TEAM, World, WorldOptions, default_seed, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_instance_store_with_a_client_key_and_a_pinned_ca_syncs() {
    let seed = format!(
        "{}\nclient_keys:\n  - key_id: KAAP.e2e\n",
        default_seed().replace(
            "secrets:\n",
            "secrets:\n  - name: instance-secret\n    text: marker-instance-secret-3d9e\n",
        )
    );
    let mut w = World::start_with(
        "kms-instance",
        WorldOptions {
            seed,
            tls: true,
            ..WorldOptions::default()
        },
    )
    .await;
    let key = w.emu.client_key("KAAP.e2e").expect("generated client key");
    let json = key.json.expose().to_owned();
    let password = key.password.expose().to_owned();
    let private: serde_json::Value = serde_json::from_str(&json).unwrap();
    w.markers.extend([
        "marker-instance-secret-3d9e".to_owned(),
        password.clone(),
        private["PrivateKeyData"].as_str().unwrap().to_owned(),
    ]);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ca = b64(w.emu.ca_pem().expect("TLS emulator CA"));
    w.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: client-key, namespace: {TEAM}}}
data: {{clientKey: {ck}, password: {pw}, wrong: {wrong}}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: instance, namespace: {TEAM}}}
spec:
  KMS:
    dedicatedKMSAuth:
      protocol: https
      endpoint: kst-e2e0001
      ca: {ca}
      clientKeyContent: {{name: client-key, key: clientKey}}
      password: {{name: client-key, key: password}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: insecure, namespace: {TEAM}}}
spec:
  KMS:
    dedicatedKMSAuth:
      protocol: https
      endpoint: kst-e2e0001
      ignoreSSL: true
      clientKeyContent: {{name: client-key, key: clientKey}}
      password: {{name: client-key, key: password}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: wrong-password, namespace: {TEAM}}}
spec:
  KMS:
    dedicatedKMSAuth:
      protocol: https
      endpoint: kst-e2e0001
      ca: {ca}
      clientKeyContent: {{name: client-key, key: clientKey}}
      password: {{name: client-key, key: wrong}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: instance, namespace: {TEAM}}}
spec:
  data: [{{key: instance-secret, name: value, secretStoreRef: {{name: instance}}}}]
"#,
        ck = b64(&json),
        pw = b64(&password),
        wrong = b64("not-the-password"),
    ))
    .await;
    w.spawn_controller(&[]).await;

    w.wait_es(TEAM, "instance", "True", "SecretSynced").await;
    assert_eq!(
        w.secret_value(TEAM, "instance", "value").as_deref(),
        Some("marker-instance-secret-3d9e")
    );
    assert!(
        w.emu
            .counters()
            .authenticated_by_signature
            .get("client_key")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    // ignoreSSL works but says so next to Ready=True.
    let insecure = wait_for("the insecure store's conditions", || async {
        let status = w.secret_store(TEAM, "insecure")?.status?;
        let ready = status.ready()?.clone();
        let warning = status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "InsecureSkipTLSVerify")?;
        (ready.reason.as_deref() == Some("Valid")).then_some(warning)
    })
    .await;
    assert!(insecure.message.unwrap().contains("not verified"));
    let wrong = wait_for("the wrong-password store's condition", || async {
        let c = w
            .secret_store(TEAM, "wrong-password")?
            .status?
            .ready()?
            .clone();
        (c.reason.as_deref() == Some("ClientKeyInvalid")).then_some(c)
    })
    .await;
    assert!(
        wrong.message.unwrap().contains("wrong password"),
        "the message names the problem"
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oos_store_syncs_encrypted_parameters_by_version() {
    let seed = format!(
        "{}\noos_parameters:\n  - name: /prod/db/password\n    versions: [marker-oos-first-77a1, marker-oos-second-2b6c]\n",
        default_seed()
    );
    let mut w = World::start_with(
        "oos",
        WorldOptions {
            seed,
            ..WorldOptions::default()
        },
    )
    .await;
    w.markers.extend([
        "marker-oos-first-77a1".into(),
        "marker-oos-second-2b6c".into(),
    ]);
    w.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: oos-ak, namespace: {TEAM}}}
stringData: {{id: {AK_ID}, secret: {AK_SECRET}}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: oos, namespace: {TEAM}}}
spec:
  OOS:
    OOSAuth:
      accessKey: {{name: oos-ak, key: id}}
      accessKeySecret: {{name: oos-ak, key: secret}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {{name: params, namespace: {TEAM}}}
spec:
  provider: oos
  data:
    - {{key: /prod/db/password, name: latest, secretStoreRef: {{name: oos}}}}
    - {{key: /prod/db/password, name: first, versionId: "1", secretStoreRef: {{name: oos}}}}
"#
    ))
    .await;
    w.spawn_controller(&[]).await;
    w.wait_es(TEAM, "params", "True", "SecretSynced").await;
    assert_eq!(
        w.secret_value(TEAM, "params", "latest").as_deref(),
        Some("marker-oos-second-2b6c")
    );
    assert_eq!(
        w.secret_value(TEAM, "params", "first").as_deref(),
        Some("marker-oos-first-77a1")
    );
    let secret = w.secret(TEAM, "params").unwrap();
    assert_eq!(
        secret.metadata.annotations.unwrap()["kmsync.io/versions"],
        "2,1"
    );
    assert!(w.emu.counters().action("GetSecretParameter") >= 2);
    let store = w.secret_store(TEAM, "oos").unwrap().status.unwrap();
    assert_eq!(store.ready().unwrap().reason.as_deref(), Some("Valid"));
    w.finish().await;
}
