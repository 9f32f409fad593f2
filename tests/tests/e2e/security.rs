//! What tenants can not make the controller do: reach its own pod's ports through `kmsEndpoint`,
//! or read files of its choosing through `oidcTokenFilePath`.

use kmsync::emulator::MintTokenRequest;
use serde_json::json;

use crate::fixtures::{external_secret, store_with_access_key};
use crate::harness::{SYSTEM, TEAM, World, WorldOptions, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_kms_endpoint_is_refused_unless_the_administrator_allowed_its_origin() {
    let allowed = "http://127.0.0.1:8443";
    let mut w = World::start_with(
        "loopback-endpoint",
        WorldOptions {
            chart_values: json!({"command": {"allowedEndpoints": [allowed]}}),
            ..WorldOptions::default()
        },
    )
    .await;
    w.apply(&store_with_access_key()).await;
    let with_endpoint = |name: &str, endpoint: &str| {
        external_secret(name, "db-password", "").replace(
            "secretStoreRef: {name: kms}",
            &format!("secretStoreRef: {{name: kms}}, kmsEndpoint: \"{endpoint}\""),
        )
    };
    // Port 9 (discard) on the controller's own loopback, and localhost: not listed.
    w.apply(&with_endpoint("own-port", "http://127.0.0.1:9"))
        .await;
    w.apply(&with_endpoint("localhost", "http://localhost:8443"))
        .await;
    // The listed origin: accepted (and, in this suite, redirected to the emulator).
    w.apply(&with_endpoint("listed", allowed)).await;
    w.spawn_controller(&[&format!("--allowed-endpoints={allowed}")])
        .await;

    w.wait_es(TEAM, "listed", "True", "SecretSynced").await;
    assert_eq!(
        w.secret_value(TEAM, "listed", "password").as_deref(),
        Some("marker-db-password-91c2")
    );
    for (name, endpoint) in [
        ("own-port", "http://127.0.0.1:9"),
        ("localhost", "http://localhost:8443"),
    ] {
        let message = w.wait_es(TEAM, name, "False", "StoreNotReady").await;
        let expected = format!(
            "kmsEndpoint: endpoint \"{endpoint}\" is not an Alibaba Cloud KMS endpoint (loopback addresses are refused); an administrator can allow it with --allowed-endpoints"
        );
        assert!(message.contains(&expected), "{name}: {message}");
        wait_for(&format!("a Warning Event for {name}"), || async {
            w.events_about(name)
                .into_iter()
                .find(|e| e.0 == "Warning" && e.2.contains(&expected))
        })
        .await;
        assert!(w.secret(TEAM, name).is_none(), "{name}");
    }
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_the_administrator_did_not_list_is_never_read() {
    const PROVIDER: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-e2e";
    const ROLE: &str = "acs:ram::1234567890123456:role/kms-reader";
    let mut w = World::start("token-file-not-allowed").await;
    // A valid token (STS would accept it) in a file of the controller's, standing for its own
    // ServiceAccount token, and the same token in a file the administrator listed.
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
    let own = w.dir.path().join("own-token");
    let listed = w.dir.path().join("listed-token");
    std::fs::write(&own, &token).unwrap();
    std::fs::write(&listed, &token).unwrap();
    let store = |name: &str, path: &std::path::Path| {
        format!(
            r#"
apiVersion: alibabacloud.com/v1alpha1
kind: SecretStore
metadata: {{name: {name}, namespace: {TEAM}}}
spec:
  KMS:
    KMSAuth:
      oidcProviderARN: {PROVIDER}
      ramRoleARN: {ROLE}
      oidcTokenFilePath: {}
"#,
            path.display()
        )
    };
    let with_store = |es: &str, store: &str| {
        external_secret(es, "db-password", "").replace(
            "secretStoreRef: {name: kms}",
            &format!("secretStoreRef: {{name: {store}}}"),
        )
    };
    w.apply(&store("own", &own)).await;
    w.apply(&store("listed", &listed)).await;
    w.apply(&with_store("via-own", "own")).await;
    w.apply(&with_store("via-listed", "listed")).await;
    w.spawn_controller(&[&format!("--allowed-oidc-token-paths={}", listed.display())])
        .await;

    w.wait_es(TEAM, "via-listed", "True", "SecretSynced").await;
    assert_eq!(
        w.secret_value(TEAM, "via-listed", "password").as_deref(),
        Some("marker-db-password-91c2")
    );
    let message = w.wait_es(TEAM, "via-own", "False", "StoreNotReady").await;
    let expected = format!(
        "spec.KMS.KMSAuth.oidcTokenFilePath is {:?}, which is not an allowed OIDC token file",
        own.display().to_string()
    );
    assert!(message.contains(&expected), "{message}");
    assert!(
        message.contains("an administrator can allow it with --allowed-oidc-token-paths"),
        "{message}"
    );
    assert!(w.secret(TEAM, "via-own").is_none());
    // Only the listed store's token went to STS.
    assert_eq!(w.emu.counters().action("AssumeRoleWithOIDC"), 1);
    w.finish().await;
}
