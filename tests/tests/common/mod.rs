//! Helpers shared by the fake apiserver's integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kmsync_tests::apiserver::{Config, FakeApiServer, Handle};

/// The test CRDs (`widgets.example.com`, `gadgets.example.com`).
pub fn fixture_crds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/crds")
}

/// A config that loads the test CRDs.
pub fn config() -> Config {
    Config::default().crds_from(fixture_crds())
}

/// Starts a server and a kube-rs client for it (default namespace `default`).
pub async fn start(config: Config) -> (Handle, kube::Client) {
    let handle = FakeApiServer::start(config)
        .await
        .expect("fake apiserver starts");
    let client = client_for(&handle);
    (handle, client)
}

/// A kube-rs client for a running server.
pub fn client_for(handle: &Handle) -> kube::Client {
    let mut cfg = kube::Config::new(handle.url().parse().expect("server URL parses"));
    cfg.default_namespace = "default".into();
    kube::Client::try_from(cfg).expect("client builds")
}

/// Polls `check` until it returns `Some`, failing the test after `secs` seconds. The limit
/// only guards against hangs; it is not a timing assertion.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Unwraps a kube API error into its Status, failing on other errors or success.
pub fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}
