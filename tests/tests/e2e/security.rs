//! What tenants can not make the controller do: reach its own pod's ports through `kmsEndpoint`,
//! or read files of its choosing through `oidcTokenFilePath`.

use serde_json::json;

use crate::fixtures::{external_secret, store_with_access_key};
use crate::harness::{TEAM, World, WorldOptions, wait_for};

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
