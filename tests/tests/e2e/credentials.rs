//! Credentials end to end (issue #6): a rotated AccessKey, a revoked role, RRSA with a token
//! file and with a per-ServiceAccount TokenRequest.

use kmsync::emulator::{MintTokenRequest, NewVersion, Revocation, TEST_KEY_ID};
use kmsync_tests::apiserver::Config;
use serde_json::json;

use crate::fixtures::{external_secret, store_with_access_key};
use crate::harness::{SYSTEM, TEAM, World, WorldOptions, wait_for};

const ROLE: &str = "acs:ram::1234567890123456:role/kms-reader";
const PROVIDER: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-e2e";

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

/// Waits until store `name` in [`TEAM`] reports `Ready` with `reason`; its message.
async fn wait_store(w: &World, name: &str, reason: &str) -> String {
    wait_for(&format!("SecretStore {name} {reason}"), || async {
        let c = w.secret_store(TEAM, name)?.status?.ready()?.clone();
        (c.reason.as_deref() == Some(reason)).then(|| c.message.unwrap_or_default())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_access_key_in_the_credential_secret_is_picked_up_without_a_restart() {
    let mut w = World::start("rotated-ak").await;
    w.markers.push("marker-revoked-ak-secret-9a0b".into());
    w.apply(&store_with_access_key()).await;
    w.apply(&external_secret("db", "db-password", "")).await;
    w.spawn_controller(&["--polling-interval=1s"]).await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    wait_store(&w, "kms", "Valid").await;

    // The key is replaced by one KMS does not accept: the store says so at once.
    w.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: alibaba-ak, namespace: {TEAM}}}\nstringData: {{id: LTAI5tE2eTestKey0001, secret: marker-revoked-ak-secret-9a0b}}\n"
    ))
    .await;
    let message = wait_store(&w, "kms", "AuthenticationFailed").await;
    assert!(message.contains("SignatureDoesNotMatch"), "{message}");

    // The new key pair: the store works again and syncs go on with it.
    w.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: alibaba-ak, namespace: {TEAM}}}\nstringData: {{id: LTAI5tE2eRotatedKey02, secret: marker-ak-secret-rotated-41d2}}\n"
    ))
    .await;
    wait_store(&w, "kms", "Valid").await;
    rotate(&w, "db-password", "v2", "marker-after-key-rotation-5e2c");
    w.markers.push("marker-after-key-rotation-5e2c".into());
    wait_for("a sync with the new key", || async {
        (w.secret_value(TEAM, "db", "password").as_deref()
            == Some("marker-after-key-rotation-5e2c"))
        .then_some(())
    })
    .await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_role_makes_the_store_and_its_external_secrets_not_ready_until_restored() {
    let mut w = World::start("revoked-role").await;
    w.apply(&store_with_access_key()).await;
    w.apply(&format!(
        r#"
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: role, namespace: {TEAM}}}
spec:
  KMS:
    KMSAuth:
      accessKey: {{name: alibaba-ak, key: id}}
      accessKeySecret: {{name: alibaba-ak, key: secret}}
      ramRoleARN: {ROLE}
      roleSessionExpiration: "900"
"#
    ))
    .await;
    w.apply(&external_secret("db", "db-password", "").replace(
        "secretStoreRef: {name: kms}",
        "secretStoreRef: {name: role}",
    ))
    .await;
    w.spawn_controller(&["--polling-interval=1s"]).await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    let message = wait_store(&w, "role", "Valid").await;
    assert!(message.contains("SecretStore team-a/role"), "{message}");

    w.emu.state().revoke_role(ROLE, Revocation::Delete).unwrap();
    w.emu.state().expire_sts_sessions();
    w.wait_es(TEAM, "db", "False", "StoreNotReady").await;
    // Expired sessions are dropped and the role assumed again, which now fails for good.
    let message = wait_for("the ExternalSecret to name the revoked role", || async {
        let (_, reason, message) = w.es_ready(TEAM, "db")?;
        (reason == "StoreNotReady" && message.contains("EntityNotExist.Role")).then_some(message)
    })
    .await;
    assert!(message.contains(ROLE), "{message}");
    assert_eq!(
        w.secret_value(TEAM, "db", "password").as_deref(),
        Some("marker-db-password-91c2"),
        "the Secret keeps its last good data"
    );

    w.emu.state().restore_role(ROLE).unwrap();
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    wait_store(&w, "role", "Valid").await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rrsa_with_a_token_file_syncs() {
    let mut w = World::start("rrsa-token-file").await;
    let token = w
        .emu
        .mint_oidc_token(&MintTokenRequest {
            provider_arn: PROVIDER.into(),
            subject: format!("system:serviceaccount:{SYSTEM}:kmsync"),
            audience: None,
            expires_in_seconds: None,
            issuer: None,
        })
        .unwrap();
    w.markers.push(token.clone());
    let path = w.dir.path().join("rrsa-token");
    std::fs::write(&path, &token).unwrap();
    w.apply(&format!(
        r#"
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: rrsa, namespace: {TEAM}}}
spec:
  KMS:
    KMSAuth:
      oidcProviderARN: {PROVIDER}
      ramRoleARN: {ROLE}
      oidcTokenFilePath: {}
"#,
        path.display()
    ))
    .await;
    w.apply(&external_secret("db", "db-password", "").replace(
        "secretStoreRef: {name: kms}",
        "secretStoreRef: {name: rrsa}",
    ))
    .await;
    // Not one of the default token files: the administrator lists it.
    w.spawn_controller(&[&format!("--allowed-oidc-token-paths={}", path.display())])
        .await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    assert_eq!(
        w.secret_value(TEAM, "db", "password").as_deref(),
        Some("marker-db-password-91c2")
    );
    assert!(w.emu.counters().action("AssumeRoleWithOIDC") >= 1);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rrsa_with_a_service_accounts_token_request_syncs() {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../host/src/emulator/testdata/oidc-test-key.pem"
    ))
    .unwrap();
    // The API server signs ServiceAccount tokens with the key the emulator's OIDC provider
    // trusts, under the provider's issuer: as ACK's RRSA is set up.
    let mut w = World::start_with(
        "rrsa-service-account",
        WorldOptions {
            api: Config::default()
                .kmsync_crds()
                .issuer("https://oidc.e2e.example")
                .token_rsa_key(pem, TEST_KEY_ID),
            chart_values: json!({"command": {"enableServiceAccountToken": true}}),
            ..WorldOptions::default()
        },
    )
    .await;
    w.apply(&format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata:
  name: reader
  namespace: {TEAM}
  annotations: {{ack.alibabacloud.com/role-arn: "{ROLE}"}}
---
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: per-sa, namespace: {TEAM}}}
spec:
  KMS:
    KMSAuth:
      serviceAccountRef: {{name: reader}}
"#
    ))
    .await;
    w.apply(&external_secret("db", "db-password", "").replace(
        "secretStoreRef: {name: kms}",
        "secretStoreRef: {name: per-sa}",
    ))
    .await;
    w.spawn_controller(&[
        "--enable-service-account-token",
        &format!("--rrsa-oidc-provider-arn={PROVIDER}"),
    ])
    .await;
    w.wait_es(TEAM, "db", "True", "SecretSynced").await;
    assert_eq!(
        w.secret_value(TEAM, "db", "password").as_deref(),
        Some("marker-db-password-91c2")
    );
    assert!(
        w.api.count("create", "serviceaccounts") >= 1,
        "a TokenRequest was made"
    );
    assert!(w.emu.counters().action("AssumeRoleWithOIDC") >= 1);
    w.finish().await;
}
