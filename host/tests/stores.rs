//! Store resolution against the in-process emulator: AccessKey, KMS instance (ClientKey) and
//! OOS stores become working fetchers, readiness checks say what the `Ready` condition should,
//! fetchers are cached per store generation, endpoints pass the SSRF policy even when
//! redirected, and the pipeline's fetch cache makes one call per secret however many
//! concurrent syncs ask.

use std::sync::Arc;
use std::time::Duration;

use kmsync::alibaba::{ClientConfig, EndpointPolicy, RetryPolicy};
use kmsync::api::{ExternalSecret, Provider};
use kmsync::credentials::MemorySecrets;
use kmsync::emulator::{Emulator, EmulatorHandle, Seed};
use kmsync::fetch::{FetchRequest, ProbeAnswer};
use kmsync::rules::{RuleEngine, RuleLimits};
use kmsync::stores::{
    FetcherProvider, Redirect, StoreError, StoreObject, StoreResolver, StoreResolverConfig,
    StoreSelector,
};
use kmsync::sync::{DigestKey, FetchCache, FetchCacheConfig, MemoryEnv, Pipeline, PipelineConfig};
use kmsync::value::SecretBytes;

const SEED: &str = r#"
access_keys:
  - {id: ak, secret: ak-secret-marker}
secrets:
  - {name: app/db, text: db-value-marker}
  - {name: shared, text: shared-value}
client_keys:
  - {key_id: KAAP.reader}
oos_parameters:
  - {name: /prod/db/password, versions: [oos-v1, oos-v2]}
"#;

async fn emulator() -> EmulatorHandle {
    Emulator::builder(Seed::from_yaml_str(SEED).unwrap())
        .tls(true)
        .start()
        .await
        .unwrap()
}

fn fast() -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            max_attempts: 2,
        },
        ..ClientConfig::default()
    }
}

/// Credential Secrets: `creds` (the AccessKey) and `client-key` (the generated ClientKey).
fn secrets(emu: &EmulatorHandle) -> Arc<MemorySecrets> {
    let s = Arc::new(MemorySecrets::new());
    s.insert(
        "team-a",
        "creds",
        [
            ("id".to_owned(), SecretBytes::from("ak")),
            ("secret".to_owned(), SecretBytes::from("ak-secret-marker")),
            ("wrong".to_owned(), SecretBytes::from("not-the-secret")),
        ],
        Some("1"),
    );
    let key = emu.client_key("KAAP.reader").unwrap();
    s.insert(
        "team-a",
        "client-key",
        [
            ("clientKey".to_owned(), SecretBytes::from(key.json.expose())),
            (
                "password".to_owned(),
                SecretBytes::from(key.password.expose()),
            ),
        ],
        Some("1"),
    );
    s
}

fn resolver(emu: &EmulatorHandle, secrets: Arc<MemorySecrets>) -> StoreResolver {
    StoreResolver::builder(
        StoreResolverConfig {
            client: fast(),
            redirect: Some(Redirect::new(emu.kms_url().as_str(), emu.ca_pem())),
            ..StoreResolverConfig::default()
        },
        secrets,
    )
    .build()
    .unwrap()
}

fn store(yaml_spec: &str, generation: i64) -> StoreObject {
    let mut s: kmsync::api::SecretStore = serde_yaml_ng::from_str(&format!(
        "apiVersion: alibabacloud.com/v1alpha1\nkind: SecretStore\nmetadata: {{name: s, namespace: team-a}}\nspec:\n{yaml_spec}"
    ))
    .unwrap();
    s.metadata.generation = Some(generation);
    s.metadata.uid = Some("uid-1".into());
    StoreObject::from(s)
}

const AK_STORE: &str = "  KMS:\n    KMSAuth:\n      accessKey: {name: creds, key: id}\n      accessKeySecret: {name: creds, key: secret}\n";

#[tokio::test]
async fn an_access_key_store_reads_secrets_and_reports_ready() {
    let emu = emulator().await;
    let r = resolver(&emu, secrets(&emu));
    let s = store(AK_STORE, 1);
    let fetcher = r
        .fetcher(StoreSelector::Store(&s), Provider::Kms, None)
        .await
        .unwrap();
    let v = fetcher.fetch(&FetchRequest::new("app/db")).await.unwrap();
    assert_eq!(v.data.expose(), b"db-value-marker");
    let ready = r.check(&s).await;
    assert!(ready.ready, "{ready:?}");
    assert_eq!(ready.reason, "Valid");
    assert_eq!(ready.method.as_deref(), Some("access_key"));
    assert_eq!(ready.observed_generation, Some(1));
    let condition = ready.condition(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    assert_eq!(condition.reason.as_deref(), Some("Valid"));
    assert!(
        condition
            .message
            .unwrap()
            .starts_with("SecretStore team-a/s: authenticated kms call succeeded"),
    );
}

#[tokio::test]
async fn a_wrong_access_key_secret_is_an_authentication_failure_without_the_secret() {
    let emu = emulator().await;
    let r = resolver(&emu, secrets(&emu));
    let s = store(
        "  KMS:\n    KMSAuth:\n      accessKey: {name: creds, key: id}\n      accessKeySecret: {name: creds, key: wrong}\n",
        1,
    );
    let ready = r.check(&s).await;
    assert!(!ready.ready);
    assert_eq!(ready.reason, "AuthenticationFailed");
    assert!(
        ready.message.contains("SignatureDoesNotMatch"),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains("not-the-secret"));

    let missing = store(
        "  KMS:\n    KMSAuth:\n      accessKey: {name: nope, key: id}\n      accessKeySecret: {name: nope, key: secret}\n",
        1,
    );
    let ready = r.check(&missing).await;
    assert_eq!(ready.reason, "CredentialsUnavailable");
    assert_eq!(
        ready.message,
        "SecretStore team-a/s: credentials could not be set up: spec.KMS.KMSAuth.accessKey: Secret team-a/nope does not exist"
    );
    let invalid = store("  KMS: {}\n  OOS: {}\n", 1);
    let ready = r.check(&invalid).await;
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready
            .message
            .starts_with("SecretStore team-a/s: spec: set exactly one of KMS, OOS"),
        "{}",
        ready.message
    );
}

#[tokio::test]
async fn a_kms_instance_store_reads_through_its_client_key_at_the_instance_host() {
    let emu = emulator().await;
    let r = resolver(&emu, secrets(&emu));
    let s = store(
        "  KMS:\n    dedicatedKMSAuth:\n      protocol: https\n      endpoint: kst-test0123456789\n      clientKeyContent: {name: client-key, key: clientKey}\n      password: {name: client-key, key: password}\n",
        1,
    );
    let fetcher = r
        .fetcher(StoreSelector::Store(&s), Provider::Kms, None)
        .await
        .unwrap();
    assert_eq!(fetcher.source_kind(), "kms-instance");
    assert!(format!("{fetcher:?}").contains("kst-test0123456789.cryptoservice.kms.aliyuncs.com"));
    let v = fetcher.fetch(&FetchRequest::new("shared")).await.unwrap();
    assert_eq!(v.data.expose(), b"shared-value");
    let ready = r.check(&s).await;
    assert!(ready.ready, "{ready:?}");
    assert_eq!(ready.method.as_deref(), Some("client_key"));

    let bad = store(
        "  KMS:\n    dedicatedKMSAuth:\n      protocol: https\n      endpoint: kst-test0123456789\n      clientKeyContent: {name: client-key, key: password}\n      password: {name: client-key, key: password}\n",
        1,
    );
    let ready = r.check(&bad).await;
    assert_eq!(ready.reason, "ClientKeyInvalid");
    assert!(
        ready.message.starts_with(
            "SecretStore team-a/s: spec.KMS.dedicatedKMSAuth.clientKeyContent could not be loaded"
        ),
        "{}",
        ready.message
    );
}

#[tokio::test]
async fn an_oos_store_reads_parameters_by_version_number() {
    let emu = emulator().await;
    let r = resolver(&emu, secrets(&emu));
    let s = store(
        "  OOS:\n    OOSAuth:\n      accessKey: {name: creds, key: id}\n      accessKeySecret: {name: creds, key: secret}\n",
        1,
    );
    let fetcher = r
        .fetcher(StoreSelector::Store(&s), Provider::Oos, None)
        .await
        .unwrap();
    let v = fetcher
        .fetch(&FetchRequest::new("/prod/db/password").version_id("1"))
        .await
        .unwrap();
    assert_eq!(
        (v.data.expose(), v.version_id.as_str()),
        (&b"oos-v1"[..], "1")
    );
    let err = r
        .fetcher(StoreSelector::Store(&s), Provider::Kms, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ProviderMismatch { .. }), "{err}");
}

#[tokio::test]
async fn fetchers_are_cached_per_store_generation() {
    let emu = emulator().await;
    let r = resolver(&emu, secrets(&emu));
    let ptr = |f: &Arc<dyn kmsync::fetch::SecretFetcher>| Arc::as_ptr(f).cast::<()>() as usize;
    let one = r
        .fetcher(
            StoreSelector::Store(&store(AK_STORE, 1)),
            Provider::Kms,
            None,
        )
        .await
        .unwrap();
    let again = r
        .fetcher(
            StoreSelector::Store(&store(AK_STORE, 1)),
            Provider::Kms,
            None,
        )
        .await
        .unwrap();
    assert_eq!(ptr(&one), ptr(&again));
    let next = r
        .fetcher(
            StoreSelector::Store(&store(AK_STORE, 2)),
            Provider::Kms,
            None,
        )
        .await
        .unwrap();
    assert_ne!(ptr(&one), ptr(&next));
    assert_eq!(
        r.cached_fetchers(),
        1,
        "the new generation replaced the old"
    );
    r.forget(&store(AK_STORE, 2).identity());
    assert_eq!(r.cached_fetchers(), 0);
}

#[tokio::test]
async fn entry_endpoints_must_pass_the_endpoint_policy_even_when_redirected() {
    let emu = emulator().await;
    let r = resolver(&emu, secrets(&emu));
    let s = store(AK_STORE, 1);
    for bait in [
        "http://100.100.100.200",
        "https://internal.example.com",
        "http://10.0.0.1:8080",
    ] {
        let err = r
            .fetcher(StoreSelector::Store(&s), Provider::Kms, Some(bait))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Endpoint { field, .. } if field == "kmsEndpoint"),
            "{bait}: {err}"
        );
    }
    // An Alibaba Cloud KMS host is accepted (and, here, redirected to the emulator).
    let f = r
        .fetcher(
            StoreSelector::Store(&s),
            Provider::Kms,
            Some("kms-vpc.cn-beijing.aliyuncs.com"),
        )
        .await
        .unwrap();
    assert_eq!(
        f.fetch(&FetchRequest::new("app/db"))
            .await
            .unwrap()
            .data
            .expose(),
        b"db-value-marker"
    );
}

#[tokio::test]
async fn without_a_redirect_the_region_or_kms_endpoint_flag_picks_the_endpoint() {
    let secrets = Arc::new(MemorySecrets::new());
    let r = StoreResolver::builder(StoreResolverConfig::default(), secrets.clone())
        .build()
        .unwrap();
    let err = r
        .fetcher(StoreSelector::Ambient(Provider::Kms), Provider::Kms, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no KMS endpoint is configured: start kmsync with --region (or --kms-endpoint for KMS), or set kmsEndpoint on the entry"
    );
    let r = StoreResolver::builder(
        StoreResolverConfig {
            region: Some("cn-hangzhou".into()),
            ..StoreResolverConfig::default()
        },
        secrets.clone(),
    )
    .build()
    .unwrap();
    let f = r
        .fetcher(StoreSelector::Ambient(Provider::Kms), Provider::Kms, None)
        .await
        .unwrap();
    assert!(
        format!("{f:?}").contains("https://kms.cn-hangzhou.aliyuncs.com/"),
        "{f:?}"
    );
    let f = r
        .fetcher(StoreSelector::Ambient(Provider::Oos), Provider::Oos, None)
        .await
        .unwrap();
    assert!(
        format!("{f:?}").contains("https://oos.cn-hangzhou.aliyuncs.com/"),
        "{f:?}"
    );
    let r = StoreResolver::builder(
        StoreResolverConfig {
            region: Some("cn-hangzhou".into()),
            kms_endpoint: Some("kms-vpc.cn-hangzhou.aliyuncs.com".into()),
            ..StoreResolverConfig::default()
        },
        secrets,
    )
    .build()
    .unwrap();
    let f = r
        .fetcher(StoreSelector::Ambient(Provider::Kms), Provider::Kms, None)
        .await
        .unwrap();
    assert!(
        format!("{f:?}").contains("https://kms-vpc.cn-hangzhou.aliyuncs.com/"),
        "{f:?}"
    );
}

/// The controller's policy: loopback refused, an administrator's URL (the plain-http
/// emulator) allowed by exact origin, `--kms-endpoint` (the administrator's own) loopback too.
#[tokio::test]
async fn with_loopback_refused_only_listed_loopback_origins_and_the_kms_endpoint_flag_are_used() {
    let emu = Emulator::builder(Seed::from_yaml_str(SEED).unwrap())
        .start()
        .await
        .unwrap();
    let url = emu.kms_url().as_str().trim_end_matches('/').to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let controller = |trusted: Option<&str>, kms_endpoint: Option<String>| {
        let mut policy = EndpointPolicy::default().allow_loopback(false);
        if let Some(t) = trusted {
            policy = policy.trust_url(t).unwrap();
        }
        StoreResolver::builder(
            StoreResolverConfig {
                region: Some("cn-hangzhou".into()),
                kms_endpoint,
                policy,
                client: fast(),
                ..StoreResolverConfig::default()
            },
            secrets(&emu),
        )
        .build()
        .unwrap()
    };
    let s = store(AK_STORE, 1);

    // Not listed: refused before any call, with a message that says how to allow it.
    let r = controller(None, None);
    for bait in [url.as_str(), "http://127.0.0.1:9", "http://localhost:8081"] {
        let err = r
            .fetcher(StoreSelector::Store(&s), Provider::Kms, Some(bait))
            .await
            .unwrap_err();
        let message = kmsync::credentials::error_chain(&err);
        assert!(
            message.starts_with(&format!(
                "kmsEndpoint: endpoint {bait:?} is not an Alibaba Cloud KMS endpoint"
            )) && message.ends_with("an administrator can allow it with --allowed-endpoints"),
            "{message}"
        );
    }
    assert_eq!(emu.counters().secret("app/db"), 0);

    // Listed in --allowed-endpoints: used.
    let r = controller(Some(&url), None);
    let f = r
        .fetcher(StoreSelector::Store(&s), Provider::Kms, Some(&url))
        .await
        .unwrap();
    assert_eq!(
        f.fetch(&FetchRequest::new("app/db"))
            .await
            .unwrap()
            .data
            .expose(),
        b"db-value-marker"
    );
    assert!(
        r.fetcher(
            StoreSelector::Store(&s),
            Provider::Kms,
            Some("http://127.0.0.1:9")
        )
        .await
        .is_err()
    );

    // --kms-endpoint is the administrator's: loopback without listing it.
    let r = controller(None, Some(url.clone()));
    let f = r
        .fetcher(StoreSelector::Store(&s), Provider::Kms, None)
        .await
        .unwrap();
    assert_eq!(
        f.fetch(&FetchRequest::new("app/db"))
            .await
            .unwrap()
            .data
            .expose(),
        b"db-value-marker"
    );
}

fn es(name: &str, key: &str) -> ExternalSecret {
    serde_yaml_ng::from_str(&format!(
        "apiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: team-a}}\nspec:\n  data:\n    - {{key: {key}, name: v, secretStoreRef: {{name: s}}}}\n"
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_syncs_of_one_secret_make_one_kms_call_and_a_disabled_cache_makes_one_each() {
    let emu = emulator().await;
    let resolver = Arc::new(resolver(&emu, secrets(&emu)));
    let mut env = MemoryEnv::new(resolver.clone());
    env.insert_store(store(AK_STORE, 1));
    let engine = Arc::new(RuleEngine::new(RuleLimits::default()).unwrap());
    let cached = Pipeline::new(
        engine.clone(),
        Arc::new(FetchCache::new(FetchCacheConfig::default())),
        DigestKey::random(),
        PipelineConfig::default(),
    );
    let specs: Vec<ExternalSecret> = (0..20).map(|i| es(&format!("es-{i}"), "shared")).collect();
    let outs = futures::future::join_all(specs.iter().map(|e| cached.sync(e, &env, None))).await;
    for out in outs {
        assert_eq!(out.unwrap().secret.data["v"].expose(), b"shared-value");
    }
    assert_eq!(emu.counters().secret("shared"), 1);

    let baseline = Pipeline::new(
        engine,
        Arc::new(FetchCache::disabled()),
        DigestKey::random(),
        PipelineConfig::default(),
    );
    let outs = futures::future::join_all(specs.iter().map(|e| baseline.sync(e, &env, None))).await;
    assert!(outs.iter().all(Result::is_ok));
    assert_eq!(emu.counters().secret("shared"), 1 + 20);
}

#[tokio::test]
async fn a_missing_secret_and_its_store_are_reported_as_the_readiness_probe_expects() {
    let emu = emulator().await;
    let r = resolver(&emu, secrets(&emu));
    let f = r
        .fetcher(
            StoreSelector::Store(&store(AK_STORE, 1)),
            Provider::Kms,
            None,
        )
        .await
        .unwrap();
    let check = f.check().await.unwrap();
    assert_eq!(check.answer, ProbeAnswer::NotFound);
    let err = f.fetch(&FetchRequest::new("nope")).await.unwrap_err();
    assert!(err.is_not_found());
}
