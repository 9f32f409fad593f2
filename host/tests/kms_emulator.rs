//! The Rust KMS client against the in-process emulator: every action, both signatures, paging,
//! retries, timeouts, dropped connections, STS credentials, rotation and TLS pinning.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use kmsync::alibaba::sign::{SigningCredentials, sign_v1};
use kmsync::alibaba::{
    BodyProblem, ClientConfig, EndpointPolicy, EndpointSource, RetryPolicy, RpcClient, RpcError,
    RpcRequest, Service, SignatureVersion, TlsRoots,
};
use kmsync::credentials::{Credentials, CredentialsProvider, StaticCredentials};
use kmsync::emulator::{
    Emulator, EmulatorHandle, FaultRule, NewVersion, STS_API_VERSION, Seed, SeedSecret,
};
use kmsync::kms::{
    GetSecretValueRequest, KmsClient, KmsError, ListSecretsRequest, SecretDataType, SecretFilter,
    SecretType,
};
use kmsync::value::SecretString;

const SEED: &str = include_str!("../../examples/quickstart/kms-seed.yaml");
const READER_ROLE: &str = "acs:ram::1234567890123456:role/kmsync-reader";

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        max_attempts: 4,
    }
}

fn config(signature: SignatureVersion) -> ClientConfig {
    ClientConfig {
        retry: fast_retries(),
        request_timeout: Duration::from_secs(5),
        signature,
        ..ClientConfig::default()
    }
}

async fn start(seed: Seed) -> EmulatorHandle {
    Emulator::builder(seed)
        .start()
        .await
        .expect("emulator starts")
}

async fn quickstart() -> EmulatorHandle {
    start(Seed::from_yaml_str(SEED).unwrap()).await
}

fn provider(id: &str, secret: &str) -> Arc<dyn CredentialsProvider> {
    Arc::new(StaticCredentials::access_key(id, secret).unwrap())
}

fn client_with(
    emu: &EmulatorHandle,
    config: ClientConfig,
    creds: Arc<dyn CredentialsProvider>,
) -> KmsClient {
    let endpoint = EndpointPolicy::default()
        .resolve(
            Service::Kms,
            &EndpointSource::Url(emu.kms_url().to_string()),
        )
        .unwrap();
    KmsClient::new(RpcClient::new(config).unwrap(), endpoint, creds).unwrap()
}

fn client(emu: &EmulatorHandle, signature: SignatureVersion) -> KmsClient {
    client_with(
        emu,
        config(signature),
        provider("quickstart", "quickstart-secret-not-real"),
    )
}

async fn every_action_returns_the_seeded_data(signature: SignatureVersion) {
    let emu = quickstart().await;
    let kms = client(&emu, signature);

    let v = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap();
    assert_eq!(v.secret_name, "test1");
    assert_eq!(v.version_id, "v1");
    assert_eq!(v.version_stages, vec!["ACSCurrent"]);
    assert_eq!(v.data_type, SecretDataType::Text);
    let json: serde_json::Value = serde_json::from_slice(v.data.expose()).unwrap();
    assert_eq!(json["name"], "tom");
    assert_eq!(json["friends"][0]["name"], "lily");
    assert!(v.request_id.is_some());

    let b = kms
        .get_secret_value(&GetSecretValueRequest::new("binary-blob"))
        .await
        .unwrap();
    assert_eq!(b.data_type, SecretDataType::Binary);
    assert_eq!(b.data.expose(), b"\x00\x01\x02\xfe\xffkmsync");

    let t = kms
        .get_secret_value(&GetSecretValueRequest::new("plain-text"))
        .await
        .unwrap();
    assert_eq!(t.data.expose(), b"hello from the kmsync emulator");

    let prev = kms
        .get_secret_value(
            &GetSecretValueRequest::new("app/database-url").version_stage("ACSPrevious"),
        )
        .await
        .unwrap();
    assert_eq!(prev.version_id, "v1");
    assert_eq!(
        prev.data.expose(),
        b"postgres://app:old-password@db:5432/app"
    );
    let by_id = kms
        .get_secret_value(&GetSecretValueRequest::new("app/database-url").version_id("v2"))
        .await
        .unwrap();
    assert_eq!(by_id.version_stages, vec!["ACSCurrent"]);

    let arn = "acs:kms:cn-hangzhou:1234567890123456:secret/rds-app";
    let rds = kms
        .get_secret_value(&GetSecretValueRequest::new(arn).fetch_extended_config(true))
        .await
        .unwrap();
    assert_eq!(rds.secret_name, "rds-app");
    assert_eq!(rds.secret_type, SecretType::Rds);
    let ext: serde_json::Value =
        serde_json::from_str(rds.extended_config.as_deref().unwrap()).unwrap();
    assert_eq!(ext["DBInstanceId"], "rm-uf6demo0001");
    assert_eq!(rds.automatic_rotation.as_deref(), Some("Enabled"));
    assert_eq!(rds.rotation_interval.as_deref(), Some("604800s"));
    let account: serde_json::Value = serde_json::from_slice(rds.data.expose()).unwrap();
    assert_eq!(account["AccountName"], "app_user");
    let no_ext = kms
        .get_secret_value(&GetSecretValueRequest::new("rds-app"))
        .await
        .unwrap();
    assert_eq!(no_ext.extended_config, None);

    let all = kms
        .list_secrets(&ListSecretsRequest::default())
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.secret_name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "test1",
            "plain-text",
            "binary-blob",
            "rds-app",
            "app/database-url"
        ]
    );
    assert!(
        all[0]
            .tags
            .iter()
            .any(|t| t.key == "team" && t.value == "demo")
    );
    let prod = kms
        .list_secrets(&ListSecretsRequest {
            filters: vec![SecretFilter::new("TagValue", ["prod"])],
            ..ListSecretsRequest::default()
        })
        .await
        .unwrap();
    let names: Vec<&str> = prod.iter().map(|s| s.secret_name.as_str()).collect();
    assert_eq!(names, vec!["binary-blob", "app/database-url"]);

    let meta = kms.describe_secret("rds-app", true).await.unwrap();
    assert_eq!(meta.arn.as_deref(), Some(arn));
    assert_eq!(meta.owing_service.as_deref(), Some("rds"));
    assert!(meta.extended_config.is_some());
    let meta = kms.describe_secret("test1", true).await.unwrap();
    assert_eq!(
        meta.description.as_deref(),
        Some("JSON secret from the ack-secret-manager example")
    );
    assert_eq!(meta.tags.len(), 2);

    let versions = kms
        .list_secret_version_ids("app/database-url", false)
        .await
        .unwrap();
    let ids: Vec<(&str, Vec<&str>)> = versions
        .iter()
        .map(|v| {
            (
                v.version_id.as_str(),
                v.version_stages.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![("v1", vec!["ACSPrevious"]), ("v2", vec!["ACSCurrent"])]
    );

    let c = emu.counters();
    assert_eq!(c.action("GetSecretValue"), 7);
    assert_eq!(c.secret("rds-app"), 2);
    assert_eq!(c.action("ListSecrets"), 2);
    assert_eq!(c.action("DescribeSecret"), 2);
    assert_eq!(c.action("ListSecretVersionIds"), 1);
    assert!(c.errors_by_code.is_empty(), "{:?}", c.errors_by_code);
    assert_eq!(
        c.authenticated_by_signature.get(signature.as_str()),
        Some(&12)
    );
    assert_eq!(c.authenticated_by_signature.len(), 1);
}

#[tokio::test]
async fn every_action_returns_the_seeded_data_with_v3_signatures() {
    every_action_returns_the_seeded_data(SignatureVersion::V3).await;
}

#[tokio::test]
async fn every_action_returns_the_seeded_data_with_v1_signatures() {
    every_action_returns_the_seeded_data(SignatureVersion::V1).await;
}

#[tokio::test]
async fn list_secrets_pages_through_more_than_a_hundred_secrets() {
    let mut seed = Seed::default().with_access_key("ak", "sk");
    for i in 0..235 {
        let mut s = SeedSecret::text(format!("bulk-{i:03}"), format!("value-{i}"));
        s.create_time = Some(Utc::now() - ChronoDuration::seconds(1000 - i));
        if i % 2 == 0 {
            s.tags.insert("parity".into(), "even".into());
        }
        seed = seed.with_secret(s);
    }
    let emu = start(seed).await;
    let kms = client_with(&emu, config(SignatureVersion::V3), provider("ak", "sk"));
    let all = kms
        .list_secrets(&ListSecretsRequest::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 235);
    assert_eq!(all[0].secret_name, "bulk-000");
    assert_eq!(all[234].secret_name, "bulk-234");
    assert_eq!(emu.counters().action("ListSecrets"), 3);

    let page = kms
        .list_secrets_page(&ListSecretsRequest::default(), 3)
        .await
        .unwrap();
    assert_eq!(
        (page.page_number, page.page_size, page.total_count),
        (3, 100, 235)
    );
    assert_eq!(page.secrets.len(), 35);

    let even = kms
        .list_secrets(&ListSecretsRequest {
            filters: vec![SecretFilter::new("TagKey", ["parity"])],
            page_size: 50,
            ..ListSecretsRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(even.len(), 118);
    assert_eq!(emu.counters().action("ListSecrets"), 4 + 3);
}

/// A stub KMS that answers every call with `answer(requested page number)` and counts calls.
async fn stub_kms(
    answer: impl Fn(u64) -> String + Clone + Send + Sync + 'static,
) -> (KmsClient, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().fallback(
        move |query: axum::extract::RawQuery, body: axum::body::Bytes| {
            let answer = answer.clone();
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let params = format!(
                    "{}&{}",
                    query.0.unwrap_or_default(),
                    String::from_utf8_lossy(&body)
                );
                let page = params
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("PageNumber="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                ([("content-type", "application/json")], answer(page))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let endpoint = EndpointPolicy::default()
        .resolve(Service::Kms, &EndpointSource::Url(url))
        .unwrap();
    let kms = KmsClient::new(
        RpcClient::new(config(SignatureVersion::V3)).unwrap(),
        endpoint,
        provider("ak", "sk"),
    )
    .unwrap();
    (kms, calls)
}

/// A `ListSecrets` page body: `names`, claiming page `page_number` (omitted when `None`).
fn list_page(page_number: Option<u64>, total: u64, names: &[String]) -> String {
    serde_json::json!({
        "RequestId": "stub",
        "PageNumber": page_number,
        "PageSize": 100,
        "TotalCount": total,
        "SecretList": {"Secret": names.iter().map(|n| serde_json::json!({"SecretName": n})).collect::<Vec<_>>()},
    })
    .to_string()
}

fn names(from: u64, count: u64) -> Vec<String> {
    (from..from + count).map(|i| format!("s-{i:04}")).collect()
}

#[tokio::test]
async fn list_secrets_stops_when_the_server_does_not_advance() {
    // Answers page 1 whatever is asked, and says so.
    let (kms, calls) = stub_kms(|_| list_page(Some(1), 5000, &names(0, 100))).await;
    let err = kms
        .list_secrets(&ListSecretsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ListSecrets page 2: the server answered page 1; paging stopped (the server does not page correctly)"
    );
    assert_eq!(err.metric_label(), "paging_inconsistent");
    assert!(!err.is_retryable());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);

    // No PageNumber in the answers, the same items every time.
    let (kms, calls) = stub_kms(|_| list_page(None, 5000, &names(0, 100))).await;
    let err = kms
        .list_secrets(&ListSecretsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ListSecrets page 2: the server answered the same 100 items as page 1; paging stopped (the server does not page correctly)"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);

    // More items than asked for.
    let (kms, _) = stub_kms(|page| list_page(Some(page), 5000, &names(page * 1000, 150))).await;
    let err = kms
        .list_secrets(&ListSecretsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ListSecrets page 1: the server answered 150 items, more than the page size 100; paging stopped (the server does not page correctly)"
    );

    // A server that pages correctly (TotalCount 250 over three pages) is read to the end.
    let (kms, calls) = stub_kms(|page| {
        let count = match page {
            1 | 2 => 100,
            3 => 50,
            _ => 0,
        };
        list_page(Some(page), 250, &names((page - 1) * 100, count))
    })
    .await;
    let all = kms
        .list_secrets(&ListSecretsRequest::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|s| s.secret_name.clone())
            .collect::<Vec<_>>(),
        names(0, 250)
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    let emu = quickstart().await;
    emu.state()
        .set_faults(vec![
            FaultRule::throttle()
                .for_action("GetSecretValue")
                .times(2)
                .retry_after_ms(15),
        ])
        .unwrap();
    let kms = client(&emu, SignatureVersion::V3);
    let v = kms
        .get_secret_value(&GetSecretValueRequest::new("plain-text"))
        .await
        .unwrap();
    assert_eq!(v.data.expose(), b"hello from the kmsync emulator");
    let c = emu.counters();
    assert_eq!(c.secret("plain-text"), 3);
    assert_eq!(c.errors("Rejected.Throttling"), 2);
}

#[tokio::test]
async fn persistent_throttling_gives_up_after_max_attempts_with_the_code() {
    let emu = quickstart().await;
    emu.state().set_faults(vec![FaultRule::throttle()]).unwrap();
    let kms = client(&emu, SignatureVersion::V1);
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("plain-text"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("Rejected.Throttling"));
    assert_eq!(err.http_status(), Some(429));
    assert!(err.is_retryable());
    assert_eq!(err.metric_label(), "api_throttled");
    assert!(err.request_id().is_some());
    assert_eq!(emu.counters().action("GetSecretValue"), 4);
}

#[tokio::test]
async fn throttling_every_third_call_hits_only_those_calls() {
    let emu = quickstart().await;
    emu.state()
        .set_faults(vec![
            FaultRule::throttle()
                .every_nth(3)
                .for_action("DescribeSecret"),
        ])
        .unwrap();
    let kms = client_with(
        &emu,
        ClientConfig {
            retry: RetryPolicy::no_retries(),
            ..config(SignatureVersion::V3)
        },
        provider("quickstart", "quickstart-secret-not-real"),
    );
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(kms.describe_secret("test1", false).await.is_ok());
    }
    assert_eq!(outcomes, vec![true, true, false, true, true, false]);
    assert!(
        kms.get_secret_value(&GetSecretValueRequest::new("test1"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_missing_secret_is_not_retried() {
    let emu = quickstart().await;
    let kms = client(&emu, SignatureVersion::V3);
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("nope"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.http_status(), Some(404));
    assert!(!err.is_retryable());
    assert_eq!(err.metric_label(), "api_client_error");
    assert_eq!(emu.counters().secret("nope"), 1);
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("test1").version_stage("NoSuchStage"))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    let err = kms.describe_secret("nope", false).await.unwrap_err();
    assert_eq!(err.code(), Some("Forbidden.ResourceNotFound"));
    assert_eq!(emu.counters().total, 3);
}

#[tokio::test]
async fn a_wrong_access_key_secret_gets_signature_does_not_match_once() {
    let emu = quickstart().await;
    for sig in [SignatureVersion::V3, SignatureVersion::V1] {
        let kms = client_with(
            &emu,
            config(sig),
            provider("quickstart", "wrong-secret-marker"),
        );
        let err = kms
            .get_secret_value(&GetSecretValueRequest::new("test1"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{sig:?}");
        assert_eq!(err.http_status(), Some(400));
        let text = format!("{err} {err:?}");
        assert!(!text.contains("wrong-secret-marker"), "{text}");
        assert!(!text.contains("%2F&"), "string to sign leaked: {text}");
    }
    let kms = client_with(&emu, config(SignatureVersion::V3), provider("unknown", "x"));
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidAccessKeyId.NotFound"));
    assert_eq!(err.http_status(), Some(404));
    let c = emu.counters();
    assert_eq!(c.action("GetSecretValue"), 3);
    assert_eq!(c.errors("SignatureDoesNotMatch"), 2);
}

#[tokio::test]
async fn secrets_outside_a_keys_allow_list_are_forbidden() {
    let emu = quickstart().await;
    let kms = client_with(
        &emu,
        config(SignatureVersion::V3),
        provider("app-only", "app-only-secret-not-real"),
    );
    let ok = kms
        .get_secret_value(&GetSecretValueRequest::new("app/database-url"))
        .await
        .unwrap();
    assert_eq!(ok.version_id, "v2");
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("Forbidden.NoPermission"));
    assert_eq!(err.http_status(), Some(403));
    let listed = kms
        .list_secrets(&ListSecretsRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn server_errors_and_proxy_html_pages_are_retried() {
    let emu = quickstart().await;
    emu.state()
        .set_faults(vec![
            FaultRule::error(503).times(1),
            FaultRule {
                html: true,
                ..FaultRule::error(502).times(1)
            },
        ])
        .unwrap();
    let kms = client(&emu, SignatureVersion::V3);
    let v = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap();
    assert_eq!(v.version_id, "v1");
    let c = emu.counters();
    assert_eq!(c.action("GetSecretValue"), 3);
    assert_eq!(c.errors("ServiceUnavailableTemporary"), 1);
    assert_eq!(c.errors("HTTP 502"), 1);

    emu.state()
        .set_faults(vec![FaultRule {
            html: true,
            ..FaultRule::error(502)
        }])
        .unwrap();
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap_err();
    match &err {
        KmsError::Rpc(RpcError::UnexpectedResponse {
            http_status: 502,
            problem: BodyProblem::Html,
            ..
        }) => {}
        other => panic!("expected an HTML 502 error, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(emu.counters().action("GetSecretValue"), 3 + 4);
}

#[tokio::test]
async fn a_response_slower_than_the_request_timeout_is_a_timeout_error() {
    let emu = quickstart().await;
    emu.state()
        .set_faults(vec![FaultRule::latency(3_000)])
        .unwrap();
    let kms = client_with(
        &emu,
        ClientConfig {
            request_timeout: Duration::from_millis(300),
            ..config(SignatureVersion::V3)
        },
        provider("quickstart", "quickstart-secret-not-real"),
    );
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap_err();
    match &err {
        KmsError::Rpc(RpcError::Timeout { timeout, .. }) => {
            assert_eq!(*timeout, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(err.metric_label(), "timeout");
    assert_eq!(emu.counters().action("GetSecretValue"), 1);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let emu = quickstart().await;
    emu.state()
        .set_faults(vec![FaultRule::drop_connection().times(2)])
        .unwrap();
    let kms = client(&emu, SignatureVersion::V3);
    let v = kms
        .get_secret_value(&GetSecretValueRequest::new("binary-blob"))
        .await
        .unwrap();
    assert_eq!(v.data.len(), 11);
    let c = emu.counters();
    assert_eq!(c.secret("binary-blob"), 3);
    assert_eq!(c.faults_injected, 2);

    emu.state()
        .set_faults(vec![FaultRule::drop_connection()])
        .unwrap();
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("binary-blob"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KmsError::Rpc(RpcError::Connection { .. })),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(emu.counters().secret("binary-blob"), 3 + 4);
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_connect_error() {
    let emu = quickstart().await;
    let kms = client(&emu, SignatureVersion::V3);
    emu.shutdown().await;
    let err = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KmsError::Rpc(RpcError::Connect { .. })),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.metric_label(), "connect");
}

async fn assume_role(
    emu: &EmulatorHandle,
    rpc: &RpcClient,
    duration: Option<&str>,
) -> Result<Credentials, RpcError> {
    let endpoint = EndpointPolicy::default()
        .resolve(
            Service::Sts,
            &EndpointSource::Url(emu.sts_url().to_string()),
        )
        .unwrap();
    let secret = SecretString::from("quickstart-secret-not-real");
    let creds = SigningCredentials {
        access_key_id: "quickstart",
        access_key_secret: &secret,
        security_token: None,
    };
    let request = RpcRequest::new(STS_API_VERSION, "AssumeRole")
        .param("RoleArn", READER_ROLE)
        .param("RoleSessionName", "kmsync-test")
        .opt_param("DurationSeconds", duration);
    let response = rpc.call(&endpoint, creds, &request).await?;
    let body: serde_json::Value = response.json()?;
    let c = &body["Credentials"];
    let arn = body["AssumedRoleUser"]["Arn"].as_str().unwrap();
    assert_eq!(
        arn,
        "acs:ram::1234567890123456:assumed-role/kmsync-reader/kmsync-test"
    );
    let expiration = chrono::DateTime::parse_from_rfc3339(c["Expiration"].as_str().unwrap())
        .unwrap()
        .to_utc();
    Ok(Credentials::sts(
        c["AccessKeyId"].as_str().unwrap(),
        c["AccessKeySecret"].as_str().unwrap(),
        c["SecurityToken"].as_str().unwrap(),
        Some(expiration),
    ))
}

#[tokio::test]
async fn sts_credentials_from_assume_role_are_accepted_until_they_expire() {
    let emu = quickstart().await;
    for sig in [SignatureVersion::V3, SignatureVersion::V1] {
        let rpc = RpcClient::new(config(sig)).unwrap();
        let creds = assume_role(&emu, &rpc, Some("900")).await.unwrap();
        assert!(creds.access_key_id.starts_with("STS."));
        let exp = creds.expiration.unwrap();
        assert!(exp > Utc::now() + ChronoDuration::seconds(800));
        assert!(exp <= Utc::now() + ChronoDuration::seconds(900));
        let kms = client_with(
            &emu,
            config(sig),
            Arc::new(StaticCredentials::new(creds).unwrap()),
        );
        let v = kms
            .get_secret_value(&GetSecretValueRequest::new("test1"))
            .await
            .unwrap();
        assert_eq!(v.version_id, "v1");

        assert!(emu.state().expire_sts_sessions() >= 1);
        let err = kms
            .get_secret_value(&GetSecretValueRequest::new("test1"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidAccessKeyId.NotFound"), "{sig:?}");
        assert_eq!(err.http_status(), Some(404));
    }
    let rpc = RpcClient::new(config(SignatureVersion::V3)).unwrap();
    let err = assume_role(&emu, &rpc, Some("60")).await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameter.DurationSeconds"));
    assert_eq!(emu.counters().action("AssumeRole"), 3);
}

#[tokio::test]
async fn rotation_through_the_admin_api_moves_current_and_previous() {
    let emu = quickstart().await;
    let kms = client(&emu, SignatureVersion::V3);
    emu.state()
        .add_new_version(
            "test1",
            &NewVersion {
                version_id: "v2".into(),
                text: None,
                json: Some(serde_json::json!({"name": "tom", "friends": []})),
                binary_base64: None,
                stages: None,
            },
        )
        .unwrap();
    let current = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap();
    assert_eq!(current.version_id, "v2");
    assert_eq!(current.data.expose(), br#"{"friends":[],"name":"tom"}"#);
    let previous = kms
        .get_secret_value(&GetSecretValueRequest::new("test1").version_stage("ACSPrevious"))
        .await
        .unwrap();
    assert_eq!(previous.version_id, "v1");

    emu.state().move_stage("test1", "ACSCurrent", "v1").unwrap();
    let back = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap();
    assert_eq!(back.version_id, "v1");
    let versions = kms.list_secret_version_ids("test1", true).await.unwrap();
    assert_eq!(versions.len(), 2);
}

#[tokio::test]
async fn the_admin_http_api_sets_faults_rotates_and_reports_counters() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = quickstart().await;
    let admin = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = emu.admin_url().clone();
    let health = admin
        .get(base.join("healthz").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");

    let r = admin
        .put(base.join("v1/faults").unwrap())
        .json(&serde_json::json!({"rules": [{"kind": "throttle", "action": "GetSecretValue", "times": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let bad = admin
        .put(base.join("v1/faults").unwrap())
        .json(&serde_json::json!({"rules": [{"kind": "error", "status": 200}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let r = admin
        .post(base.join("v1/secrets/plain-text/versions").unwrap())
        .json(&serde_json::json!({"version_id": "v2", "text": "rotated"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let missing = admin
        .post(base.join("v1/secrets/none/versions").unwrap())
        .json(&serde_json::json!({"version_id": "v2", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let r = admin
        .post(base.join("v1/secrets").unwrap())
        .json(&serde_json::json!({"name": "created", "binary_base64": "AQID"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin
        .put(
            base.join("v1/secrets/app%2Fdatabase-url/stages/ACSCurrent")
                .unwrap(),
        )
        .json(&serde_json::json!({"version_id": "v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let kms = client(&emu, SignatureVersion::V3);
    let v = kms
        .get_secret_value(&GetSecretValueRequest::new("plain-text"))
        .await
        .unwrap();
    assert_eq!(v.data.expose(), b"rotated");
    let created = kms
        .get_secret_value(&GetSecretValueRequest::new("created"))
        .await
        .unwrap();
    assert_eq!(created.data.expose(), &[1, 2, 3]);
    let moved = kms
        .get_secret_value(&GetSecretValueRequest::new("app/database-url"))
        .await;
    assert_eq!(moved.unwrap().version_id, "v1");

    let counters: serde_json::Value = admin
        .get(base.join("v1/counters").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["by_action"]["GetSecretValue"], 4);
    assert_eq!(counters["get_secret_value_by_secret"]["plain-text"], 2);
    assert_eq!(counters["errors_by_code"]["Rejected.Throttling"], 1);

    let r = admin
        .post(base.join("v1/counters/reset").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(emu.counters().total, 0);
    // The admin API is not reachable through the KMS listener.
    let r = admin
        .get(emu.kms_url().join("v1/counters").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn tls_works_with_the_pinned_ca_and_is_refused_without_it() {
    let seed = Seed::from_yaml_str(SEED).unwrap();
    let emu = Emulator::builder(seed).tls(true).start().await.unwrap();
    assert_eq!(emu.kms_url().scheme(), "https");
    let pem = emu.ca_pem().unwrap().to_owned();
    let pinned = ClientConfig {
        tls_roots: TlsRoots::pinned_pem(pem.as_bytes()).unwrap(),
        ..config(SignatureVersion::V3)
    };
    let kms = client_with(
        &emu,
        pinned,
        provider("quickstart", "quickstart-secret-not-real"),
    );
    let v = kms
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap();
    assert_eq!(v.version_id, "v1");

    let public_roots = client(&emu, SignatureVersion::V3);
    let err = public_roots
        .get_secret_value(&GetSecretValueRequest::new("test1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KmsError::Rpc(RpcError::Connect { .. })),
        "{err:?}"
    );
    let mut chain = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(&err);
    while let Some(c) = cause {
        chain.push_str(&c.to_string());
        chain.push_str(" | ");
        cause = c.source();
    }
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    // An untrusted certificate stays untrusted: repeating the handshake would only delay the
    // error by the whole backoff.
    assert!(!err.is_retryable(), "{err:?}");
    // Only the successful call got through the TLS handshake.
    assert_eq!(emu.counters().action("GetSecretValue"), 1);
}

async fn send_v1(
    emu: &EmulatorHandle,
    now: chrono::DateTime<Utc>,
    nonce: &str,
) -> (u16, serde_json::Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secret = SecretString::from("quickstart-secret-not-real");
    let creds = SigningCredentials {
        access_key_id: "quickstart",
        access_key_secret: &secret,
        security_token: None,
    };
    let mut params = std::collections::BTreeMap::new();
    params.insert("SecretName".to_owned(), "test1".to_owned());
    let signed = sign_v1(
        "POST",
        "GetSecretValue",
        "2016-01-20",
        &params,
        creds,
        now,
        nonce,
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(emu.kms_url().clone())
        .form(&signed)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn expired_timestamps_and_reused_nonces_are_rejected_with_the_real_codes() {
    let emu = quickstart().await;
    let (status, body) = send_v1(&emu, Utc::now() - ChronoDuration::minutes(16), "n-old").await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("InvalidTimeStamp.Expired"))
    );
    let (status, body) = send_v1(&emu, Utc::now() + ChronoDuration::minutes(16), "n-future").await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("InvalidTimeStamp.Expired"))
    );

    // Parameters in a form body are signed like query parameters.
    let (status, body) = send_v1(&emu, Utc::now(), "n-once").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["SecretName"], "test1");
    let (status, body) = send_v1(&emu, Utc::now(), "n-once").await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("SignatureNonceUsed"))
    );
    assert!(body["RequestId"].is_string());
    assert!(body["HostId"].is_string());
    assert!(body["Recommend"].is_string());
}
