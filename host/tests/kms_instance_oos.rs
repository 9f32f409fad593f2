//! The KMS instance client (ClientKey), the RAM-credential client at an instance endpoint and
//! the OOS client against the in-process emulator: values, versions, TLS pinning with the
//! instance host name, typed errors (not found, signature, unknown key, clock skew, unknown
//! CA), `ignoreSSL` warnings, retries and the store readiness checks.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use kmsync::alibaba::{
    ClientConfig, EndpointPolicy, EndpointSource, RetryPolicy, RpcClient, Service,
    SignatureVersion, TlsRoots,
};
use kmsync::credentials::StaticCredentials;
use kmsync::dkms::{
    ClientKey, InstanceClient, InstanceClientConfig, InstanceError, InstanceTrust,
    generate_client_key,
};
use kmsync::emulator::{Emulator, EmulatorHandle, FaultRule, Seed};
use kmsync::fetch::{FetchRequest, ProbeAnswer, SecretFetcher, Source};
use kmsync::kms::{GetSecretValueRequest, KmsClient, SecretDataType};
use kmsync::oos::{GetSecretParameterRequest, OosClient};
use kmsync::value::{SecretBytes, SecretString};

const INSTANCE_HOST: &str = "kst-test0123456789.cryptoservice.kms.aliyuncs.com";
const SEED: &str = r#"
access_keys:
  - {id: ak, secret: ak-secret-marker}
secrets:
  - {name: app/db, text: db-value-marker}
  - {name: app/bin, binary_base64: AAEC/w==}
  - name: rotating
    versions:
      - {id: v1, text: old-marker, stages: [ACSPrevious]}
      - {id: v2, text: new-marker, stages: [ACSCurrent]}
client_keys:
  - {key_id: KAAP.reader, password: pw-marker-reader}
  - {key_id: KAAP.limited, allowed_secrets: ["app/*"]}
oos_parameters:
  - {name: /prod/db/password, versions: [oos-v1-marker, oos-v2-marker], key_id: key-demo, tags: {env: prod}}
  - {name: plain, value: plain-marker}
"#;

/// Every value, password and key fragment that must never show up in errors or logs.
const MARKERS: [&str; 9] = [
    "db-value-marker",
    "old-marker",
    "new-marker",
    "oos-v1-marker",
    "oos-v2-marker",
    "plain-marker",
    "pw-marker",
    "ak-secret-marker",
    "PRIVATE KEY",
];

fn assert_clean(text: &str) {
    for m in MARKERS {
        assert!(!text.contains(m), "{m} leaked into {text}");
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
        max_attempts: 4,
    }
}

async fn emulator(seed: Seed) -> EmulatorHandle {
    Emulator::builder(seed)
        .tls(true)
        .start()
        .await
        .expect("emulator starts")
}

fn pinned(emu: &EmulatorHandle) -> InstanceTrust {
    InstanceTrust::pinned_pem(emu.ca_pem().unwrap().as_bytes()).unwrap()
}

fn load_key(emu: &EmulatorHandle, key_id: &str) -> Arc<ClientKey> {
    let generated = emu.client_key(key_id).expect("generated key");
    Arc::new(
        ClientKey::from_json(
            &SecretBytes::from(generated.json.expose()),
            &generated.password,
        )
        .unwrap(),
    )
}

fn instance_client(
    emu: &EmulatorHandle,
    key: Arc<ClientKey>,
    trust: InstanceTrust,
    tweak: impl FnOnce(&mut InstanceClientConfig),
) -> InstanceClient {
    let port = emu.service_addr().port();
    let endpoint = EndpointPolicy::default()
        .resolve(
            Service::Kms,
            &EndpointSource::Url(format!("https://{INSTANCE_HOST}:{port}")),
        )
        .unwrap();
    let mut config = InstanceClientConfig::new(trust);
    config.retry = fast_retries();
    config.resolve = vec![(INSTANCE_HOST.to_owned(), emu.service_addr())];
    tweak(&mut config);
    InstanceClient::new(endpoint, key, config).unwrap()
}

fn api(err: &InstanceError) -> (&str, u16) {
    (
        err.code().unwrap_or("<none>"),
        err.http_status().unwrap_or(0),
    )
}

#[tokio::test]
async fn client_keys_read_text_binary_and_versioned_secrets_over_the_pinned_instance_host() {
    let emu = emulator(Seed::from_yaml_str(SEED).unwrap()).await;
    let client = instance_client(&emu, load_key(&emu, "KAAP.reader"), pinned(&emu), |_| {});
    assert!(client.warnings().is_empty());

    let v = client
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap();
    assert_eq!(v.data.expose(), b"db-value-marker");
    assert_eq!(
        (v.secret_name.as_str(), v.version_id.as_str()),
        ("app/db", "v1")
    );
    assert_eq!(v.data_type, SecretDataType::Text);
    assert_eq!(v.version_stages, vec!["ACSCurrent"]);
    assert!(v.request_id.is_some());
    assert_clean(&format!("{v:?}"));

    let b = client
        .get_secret_value(&GetSecretValueRequest::new("app/bin"))
        .await
        .unwrap();
    assert_eq!(
        (b.data_type, b.data.expose()),
        (SecretDataType::Binary, &[0u8, 1, 2, 255][..])
    );

    let prev = client
        .get_secret_value(&GetSecretValueRequest::new("rotating").version_stage("ACSPrevious"))
        .await
        .unwrap();
    assert_eq!(
        (prev.version_id.as_str(), prev.data.expose()),
        ("v1", &b"old-marker"[..])
    );
    let by_id = client
        .get_secret_value(&GetSecretValueRequest::new("rotating").version_id("v2"))
        .await
        .unwrap();
    assert_eq!(by_id.data.expose(), b"new-marker");
    let arn = client
        .get_secret_value(&GetSecretValueRequest::new(
            "acs:kms:cn-hangzhou:1234567890123456:secret/rotating",
        ))
        .await
        .unwrap();
    assert_eq!(
        (arn.secret_name.as_str(), arn.version_id.as_str()),
        ("rotating", "v2")
    );

    let counters = emu.counters();
    assert_eq!(counters.action("GetSecretValue"), 5);
    assert_eq!(
        counters.authenticated_by_signature.get("client_key"),
        Some(&5)
    );
}

#[tokio::test]
async fn missing_secrets_versions_and_forbidden_names_are_typed_errors_and_the_store_check_passes()
{
    let emu = emulator(Seed::from_yaml_str(SEED).unwrap()).await;
    let client = instance_client(&emu, load_key(&emu, "KAAP.reader"), pinned(&emu), |_| {});
    for request in [
        GetSecretValueRequest::new("nope"),
        GetSecretValueRequest::new("rotating").version_id("v9"),
        GetSecretValueRequest::new("rotating").version_stage("Custom"),
    ] {
        let err = client.get_secret_value(&request).await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(api(&err), ("Forbidden.ResourceNotFound", 404));
        assert!(!err.is_retryable());
    }
    let err = client
        .get_secret_value(&GetSecretValueRequest::new("nope"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("GetSecretValue failed: Forbidden.ResourceNotFound (HTTP 404, RequestId "),
        "{err}"
    );

    let check = Source::KmsInstance(client).check().await.unwrap();
    assert_eq!(
        (check.source_kind, check.answer),
        ("kms-instance", ProbeAnswer::NotFound)
    );
    assert!(check.warnings.is_empty());

    let limited = instance_client(&emu, load_key(&emu, "KAAP.limited"), pinned(&emu), |_| {});
    let err = limited
        .get_secret_value(&GetSecretValueRequest::new("rotating"))
        .await
        .unwrap_err();
    assert_eq!(api(&err), ("Forbidden.NoPermission", 403));
    let ok = limited
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap();
    assert_eq!(ok.data.expose(), b"db-value-marker");
    let check = Source::KmsInstance(limited).check().await.unwrap();
    assert_eq!(check.answer, ProbeAnswer::NoPermission);
}

#[tokio::test]
async fn wrong_signatures_unknown_key_ids_and_skewed_clocks_are_refused_with_the_gateway_codes() {
    let pw = SecretString::from("pw-marker-other");
    let other = generate_client_key("KAAP.other", &pw).unwrap();
    // The instance knows KAAP.other by the certificate of a *different* key pair.
    let impostor_cert = generate_client_key("KAAP.impostor", &pw).unwrap();
    let seed =
        Seed::from_yaml_str(SEED)
            .unwrap()
            .with_client_key(kmsync::emulator::SeedClientKey {
                key_id: "KAAP.other".into(),
                certificate_pem: Some(impostor_cert.certificate_pem.clone()),
                password: None,
                allowed_secrets: None,
            });
    let emu = emulator(seed).await;

    let key = Arc::new(ClientKey::from_json(&SecretBytes::from(other.json.expose()), &pw).unwrap());
    let client = instance_client(&emu, key, pinned(&emu), |_| {});
    let err = client
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap_err();
    assert_eq!(api(&err), ("SignatureNotMatch", 401));
    assert!(err.is_auth_failure() && !err.is_retryable());
    let check = Source::KmsInstance(client).check().await.unwrap_err();
    assert_eq!(check.code(), Some("SignatureNotMatch"));

    // A ClientKey whose KeyId the instance does not know.
    let mut json: serde_json::Value = serde_json::from_str(other.json.expose()).unwrap();
    json["KeyId"] = "KAAP.unknown".into();
    let unknown =
        Arc::new(ClientKey::from_json(&SecretBytes::from(json.to_string().as_str()), &pw).unwrap());
    let err = instance_client(&emu, unknown, pinned(&emu), |_| {})
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap_err();
    assert_eq!(api(&err), ("Unauthorized", 404));
    assert_eq!(
        err.to_string().split(": ").last(),
        Some("The AccessKey ID \"KAAP.unknown\" does not exist in our records.")
    );

    // A clock 20 minutes fast.
    let skewed = instance_client(&emu, load_key(&emu, "KAAP.reader"), pinned(&emu), |c| {
        c.clock_offset = TimeDelta::minutes(20);
    });
    let err = skewed
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap_err();
    assert_eq!(api(&err), ("RequestTimeTooSkewed", 400));
    assert!(
        err.to_string()
            .ends_with("Request time exceeds server time more than 15 minutes.")
    );
    assert!(err.is_auth_failure());
    // Within the window is fine.
    let slightly = instance_client(&emu, load_key(&emu, "KAAP.reader"), pinned(&emu), |c| {
        c.clock_offset = TimeDelta::minutes(-10);
    });
    slightly
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap();
    assert_clean(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn an_unknown_ca_is_refused_and_ignore_ssl_connects_with_a_warning() {
    let emu = emulator(Seed::from_yaml_str(SEED).unwrap()).await;
    let key = load_key(&emu, "KAAP.reader");
    // Some other CA (not the emulator's) pinned: the gateway's certificate must be refused.
    let other_ca = rcgen::generate_simple_self_signed(vec!["other-ca.test".into()]).unwrap();
    let wrong = instance_client(
        &emu,
        key.clone(),
        InstanceTrust::pinned_pem(other_ca.cert.pem().as_bytes()).unwrap(),
        |_| {},
    );
    let err = wrong
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, InstanceError::UntrustedCertificate { .. }),
        "{err:?}"
    );
    assert_eq!(err.metric_label(), "untrusted_certificate");
    assert!(
        err.to_string()
            .contains(&format!("the TLS certificate of {INSTANCE_HOST}:")),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        emu.counters().action("GetSecretValue"),
        0,
        "no request may pass an untrusted TLS handshake"
    );

    let insecure = instance_client(&emu, key, InstanceTrust::InsecureSkipVerify, |_| {});
    assert_eq!(insecure.warnings().len(), 1);
    assert_eq!(insecure.warnings()[0].reason, "InsecureSkipTLSVerify");
    let v = insecure
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap();
    assert_eq!(v.data.expose(), b"db-value-marker");
    let check = Source::KmsInstance(insecure).check().await.unwrap();
    assert_eq!(check.warnings.len(), 1);
    assert!(check.warnings[0].message.starts_with("ignoreSSL is true"));
}

#[tokio::test]
async fn instance_throttling_is_retried_with_fresh_signatures() {
    let emu = emulator(Seed::from_yaml_str(SEED).unwrap()).await;
    emu.state()
        .set_faults(vec![FaultRule::throttle().times(2)])
        .unwrap();
    let client = instance_client(&emu, load_key(&emu, "KAAP.reader"), pinned(&emu), |_| {});
    let v = client
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap();
    assert_eq!(v.data.expose(), b"db-value-marker");
    let c = emu.counters();
    assert_eq!(c.action("GetSecretValue"), 3);
    assert_eq!(c.errors("Rejected.Throttling"), 2);

    emu.state().set_faults(vec![FaultRule::throttle()]).unwrap();
    let err = client
        .get_secret_value(&GetSecretValueRequest::new("app/db"))
        .await
        .unwrap_err();
    assert_eq!(api(&err), ("Rejected.Throttling", 429));
    assert_eq!(emu.counters().action("GetSecretValue"), 3 + 4);
}

#[tokio::test]
async fn ram_credentials_reach_the_instance_endpoint_through_the_pinned_ca() {
    let emu = emulator(Seed::from_yaml_str(SEED).unwrap()).await;
    let port = emu.service_addr().port();
    let endpoint = EndpointPolicy::default()
        .resolve(
            Service::Kms,
            &EndpointSource::Url(format!("https://{INSTANCE_HOST}:{port}")),
        )
        .unwrap();
    let rpc = RpcClient::new(ClientConfig {
        tls_roots: TlsRoots::pinned_pem(emu.ca_pem().unwrap().as_bytes()).unwrap(),
        resolve: vec![(INSTANCE_HOST.to_owned(), emu.service_addr())],
        retry: fast_retries(),
        ..ClientConfig::default()
    })
    .unwrap();
    let kms = KmsClient::new(
        rpc,
        endpoint,
        Arc::new(StaticCredentials::access_key("ak", "ak-secret-marker").unwrap()),
    )
    .unwrap();
    let v = kms
        .get_secret_value(&GetSecretValueRequest::new("rotating"))
        .await
        .unwrap();
    assert_eq!(v.data.expose(), b"new-marker");
    let check = Source::Kms(kms).check().await.unwrap();
    assert_eq!(
        (check.source_kind, check.answer),
        ("kms", ProbeAnswer::NotFound)
    );
    assert_eq!(
        emu.counters().authenticated_by_signature.get("v3"),
        Some(&2)
    );
}

fn oos_client(emu: &EmulatorHandle, signature: SignatureVersion, secret: &str) -> OosClient {
    let endpoint = EndpointPolicy::default()
        .resolve(
            Service::Oos,
            &EndpointSource::Url(emu.oos_url().to_string()),
        )
        .unwrap();
    let rpc = RpcClient::new(ClientConfig {
        tls_roots: TlsRoots::pinned_pem(emu.ca_pem().unwrap().as_bytes()).unwrap(),
        retry: fast_retries(),
        signature,
        ..ClientConfig::default()
    })
    .unwrap();
    OosClient::new(
        rpc,
        endpoint,
        Arc::new(StaticCredentials::access_key("ak", secret).unwrap()),
    )
    .unwrap()
}

#[tokio::test]
async fn oos_parameters_are_read_decrypted_by_latest_and_by_version_with_both_signatures() {
    let emu = emulator(Seed::from_yaml_str(SEED).unwrap()).await;
    for signature in [SignatureVersion::V3, SignatureVersion::V1] {
        let oos = oos_client(&emu, signature, "ak-secret-marker");
        let latest = oos
            .get_secret_parameter(&GetSecretParameterRequest::new("/prod/db/password"))
            .await
            .unwrap();
        assert_eq!(latest.value.expose(), b"oos-v2-marker");
        assert_eq!(latest.parameter_version, 2);
        assert_eq!(latest.name, "/prod/db/password");
        assert_eq!(latest.parameter_type.as_deref(), Some("Secret"));
        assert_eq!(latest.key_id.as_deref(), Some("key-demo"));
        assert_eq!(latest.tags.get("env").map(String::as_str), Some("prod"));
        assert_clean(&format!("{latest:?}"));
        let first = oos
            .get_secret_parameter(&GetSecretParameterRequest::new("/prod/db/password").version(1))
            .await
            .unwrap();
        assert_eq!(
            (first.value.expose(), first.parameter_version),
            (&b"oos-v1-marker"[..], 1)
        );

        for missing in [
            GetSecretParameterRequest::new("/prod/nope"),
            GetSecretParameterRequest::new("plain").version(2),
        ] {
            let err = oos.get_secret_parameter(&missing).await.unwrap_err();
            assert!(err.is_not_found(), "{err:?}");
            assert_eq!(err.http_status(), Some(404));
            assert_eq!(err.code(), Some("EntityNotExists.Parameter"));
        }
    }
    let c = emu.counters();
    assert_eq!(c.action("GetSecretParameter"), 8);
    assert_eq!(c.authenticated_by_signature.get("v1"), Some(&4));

    let source = Source::Oos(oos_client(&emu, SignatureVersion::V3, "ak-secret-marker"));
    let v = source
        .fetch(&FetchRequest::new("/prod/db/password").version_id("1"))
        .await
        .unwrap();
    assert_eq!(
        (v.data.expose(), v.version_id.as_str()),
        (&b"oos-v1-marker"[..], "1")
    );
    let check = source.check().await.unwrap();
    assert_eq!(
        (check.source_kind, check.answer),
        ("oos", ProbeAnswer::NotFound)
    );

    let bad = Source::Oos(oos_client(&emu, SignatureVersion::V3, "wrong-secret"));
    let err = bad.check().await.unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    assert_clean(&format!("{err} {err:?}"));
}
