//! Every credential provider against the in-process emulator (STS `AssumeRole` and
//! `AssumeRoleWithOIDC`, the ECS metadata server, KMS accepting the results): the builder from
//! `CloudAuth`, the registry, refresh before expiry, one refresh for concurrent callers, revoked
//! roles, bad inputs, the default chain, and a scan of logs, errors and `Debug` output for
//! credential values.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmsync::alibaba::{
    ClientConfig, EndpointPolicy, EndpointSource, RetryPolicy, RpcClient, Service,
};
use kmsync::api::{CloudAuth, SecretKeyRef, ServiceAccountRef};
use kmsync::credentials::builder::ProviderContext;
use kmsync::credentials::sts::{AssumeRoleRequest, AssumeRoleWithOidcRequest};
use kmsync::credentials::{
    AssumeRole, BuildError, CredentialsError, CredentialsFactory, CredentialsProvider,
    CredentialsRegistry, DefaultChain, DefaultChainConfig, EcsMetadataConfig, EcsRamRole,
    FactoryConfig, MemorySecrets, MemoryServiceAccounts, RefreshPolicy, Refreshing,
    ServiceAccountInfo, ServiceAccountToken, StaticCredentials, StoreRef, StsClient,
    StsEndpointConfig, error_chain,
};
use kmsync::emulator::{
    Emulator, EmulatorHandle, MetadataMode, MintTokenRequest, Revocation, Seed,
};
use kmsync::kms::{GetSecretValueRequest, KmsClient, KmsError};
use kmsync::value::SecretBytes;

const ACCOUNT: &str = "1234567890123456";
const READER: &str = "acs:ram::1234567890123456:role/reader";
const SHORT: &str = "acs:ram::1234567890123456:role/short";
const REMOTE: &str = "acs:ram::1234567890123456:role/remote";
const PROVIDER: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1";
const ISSUER: &str = "https://oidc-ack-cn-hangzhou.test/c1";
/// Marker values: they must never show up in logs, errors or `Debug` output.
const AK_ID: &str = "LTAI5tMarkerAccessKeyId01";
const AK_SECRET: &str = "MARKER-access-key-secret-7f3e9a";

fn seed() -> Seed {
    Seed::from_yaml_str(&format!(
        r#"
account_id: "{ACCOUNT}"
access_keys:
  - id: {AK_ID}
    secret: {AK_SECRET}
    assumable_roles: ["{READER}", "{SHORT}", "{REMOTE}"]
  - id: no-roles
    secret: no-roles-secret
oidc_providers:
  - arn: {PROVIDER}
    issuer: {ISSUER}
roles:
  - arn: {READER}
    allowed_secrets: ["db/*"]
    assumable_roles: ["{REMOTE}"]
    oidc_trust:
      - provider: {PROVIDER}
        subjects: ["system:serviceaccount:team-a:*"]
  - arn: {SHORT}
    min_session_duration: 1
  - arn: {REMOTE}
    allowed_secrets: ["remote/*"]
  - arn: acs:ram::{ACCOUNT}:role/worker
    allowed_secrets: ["db/*"]
instance_role:
  role_arn: acs:ram::{ACCOUNT}:role/worker
secrets:
  - {{name: db/password, text: db-value}}
  - {{name: remote/api-key, text: remote-value}}
  - {{name: other, text: other-value}}
"#
    ))
    .expect("test seed is valid")
}

async fn start() -> EmulatorHandle {
    start_with(seed()).await
}

async fn start_with(seed: Seed) -> EmulatorHandle {
    Emulator::builder(seed)
        .metadata_listen(Some("127.0.0.1:0".parse().unwrap()))
        .start()
        .await
        .expect("emulator starts")
}

fn rpc() -> RpcClient {
    RpcClient::new(ClientConfig {
        retry: RetryPolicy {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
            max_attempts: 2,
        },
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn fast_refresh() -> RefreshPolicy {
    RefreshPolicy {
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        ..RefreshPolicy::default()
    }
}

fn sts_config(emu: &EmulatorHandle) -> StsEndpointConfig {
    StsEndpointConfig {
        url: Some(emu.sts_url().to_string()),
        ..StsEndpointConfig::default()
    }
}

fn metadata_config(emu: &EmulatorHandle) -> EcsMetadataConfig {
    EcsMetadataConfig {
        base_url: emu.metadata_url().unwrap().to_string(),
        ..EcsMetadataConfig::default()
    }
}

fn sts(emu: &EmulatorHandle) -> StsClient {
    let endpoint = sts_config(emu).resolve(&EndpointPolicy::default()).unwrap();
    StsClient::new(rpc(), endpoint)
}

fn kms(emu: &EmulatorHandle, creds: Arc<dyn CredentialsProvider>) -> KmsClient {
    let endpoint = EndpointPolicy::default()
        .resolve(
            Service::Kms,
            &EndpointSource::Url(emu.kms_url().to_string()),
        )
        .unwrap();
    KmsClient::new(rpc(), endpoint, creds).unwrap()
}

async fn read(client: &KmsClient, name: &str) -> Result<String, KmsError> {
    let v = client
        .get_secret_value(&GetSecretValueRequest::new(name))
        .await?;
    Ok(String::from_utf8(v.data.expose().to_vec()).unwrap())
}

fn secrets() -> Arc<MemorySecrets> {
    let s = MemorySecrets::new();
    s.insert(
        "team-a",
        "alibaba-ak",
        [
            ("id".to_owned(), SecretBytes::from(AK_ID)),
            ("secret".to_owned(), SecretBytes::from(AK_SECRET)),
        ],
        Some("100"),
    );
    Arc::new(s)
}

/// Service accounts whose tokens the emulator mints (as a kube-apiserver's TokenRequest would).
fn service_accounts(emu: &EmulatorHandle) -> Arc<MemoryServiceAccounts> {
    let state = emu.state().clone();
    let sa = MemoryServiceAccounts::new(move |ns, name, audiences, seconds| {
        let token = state.mint_oidc_token(&MintTokenRequest {
            provider_arn: PROVIDER.into(),
            subject: format!("system:serviceaccount:{ns}:{name}"),
            audience: Some(audiences.to_vec()),
            expires_in_seconds: Some(i64::from(seconds)),
            issuer: None,
        })?;
        Ok(ServiceAccountToken {
            token: token.into(),
            expiration: None,
        })
    });
    let annotated = |role: &str| ServiceAccountInfo {
        annotations: [("ack.alibabacloud.com/role-arn".to_owned(), role.to_owned())].into(),
        resource_version: Some("7".into()),
    };
    sa.insert("team-a", "app", annotated(READER));
    sa.insert("team-b", "app", annotated(READER));
    sa.insert("team-a", "plain", ServiceAccountInfo::default());
    Arc::new(sa)
}

fn factory(emu: &EmulatorHandle, config: FactoryConfig) -> CredentialsFactory {
    let config = FactoryConfig {
        sts: sts_config(emu),
        metadata: metadata_config(emu),
        refresh: fast_refresh(),
        ..config
    };
    let f = CredentialsFactory::new(rpc(), EndpointPolicy::default(), config, secrets()).unwrap();
    let sa = service_accounts(emu);
    // The ambient chain sees no process environment and no home directory: tests must not
    // depend on the machine.
    let chain = DefaultChain::new(
        &DefaultChainConfig {
            enable_ecs_role: f.config().enable_worker_role,
            ..DefaultChainConfig::default()
        },
        f.context().clone(),
    );
    f.with_service_accounts(sa).with_ambient(Arc::new(chain))
}

fn ak_ref(key: &str) -> Option<SecretKeyRef> {
    Some(SecretKeyRef {
        name: "alibaba-ak".into(),
        namespace: None,
        key: key.into(),
    })
}

fn ak_auth() -> CloudAuth {
    CloudAuth {
        access_key: ak_ref("id"),
        access_key_secret: ak_ref("secret"),
        ..CloudAuth::default()
    }
}

fn store() -> StoreRef {
    StoreRef::secret_store("team-a", "kms").with_identity(Some("uid-1"), Some(1))
}

fn mint(emu: &EmulatorHandle, subject: &str, expires_in: i64) -> String {
    emu.mint_oidc_token(&MintTokenRequest {
        provider_arn: PROVIDER.into(),
        subject: subject.into(),
        audience: None,
        expires_in_seconds: Some(expires_in),
        issuer: None,
    })
    .unwrap()
}

fn write_token(path: &Path, token: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(token.as_bytes()).unwrap();
}

#[tokio::test]
async fn a_plain_access_key_from_a_secret_reads_kms() {
    let emu = start().await;
    let f = factory(&emu, FactoryConfig::default());
    let p = f.provider(&store(), Some(&ak_auth())).await.unwrap();
    assert_eq!(p.name(), "access_key");
    let client = kms(&emu, p);
    assert_eq!(read(&client, "other").await.unwrap(), "other-value");
    assert_eq!(emu.counters().action("AssumeRole"), 0);
}

#[tokio::test]
async fn an_access_key_with_a_role_reads_kms_as_the_role_and_caches_the_session() {
    let emu = start().await;
    let f = factory(&emu, FactoryConfig::default());
    let auth = CloudAuth {
        ram_role_arn: Some(READER.into()),
        ram_role_session_name: Some("team-a-kms".into()),
        role_session_expiration: Some("15m".into()),
        ..ak_auth()
    };
    let p = f.provider(&store(), Some(&auth)).await.unwrap();
    let client = kms(&emu, p.clone());
    assert_eq!(read(&client, "db/password").await.unwrap(), "db-value");
    assert_eq!(read(&client, "db/password").await.unwrap(), "db-value");
    // The role's allowed_secrets apply: the session is the role's, not the key's.
    let err = read(&client, "other").await.unwrap_err();
    assert!(err.to_string().contains("Forbidden.NoPermission"), "{err}");
    assert_eq!(
        emu.counters().action("AssumeRole"),
        1,
        "one session, reused"
    );
    let c = p.credentials().await.unwrap();
    assert!(c.access_key_id.starts_with("STS."));
    let lifetime = c.expiration.unwrap() - chrono::Utc::now();
    assert!(
        lifetime <= chrono::Duration::seconds(900) && lifetime > chrono::Duration::seconds(800),
        "roleSessionExpiration 15m was sent: {lifetime}"
    );
}

#[tokio::test]
async fn rrsa_rereads_the_token_file_on_every_refresh() {
    let emu = start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    // Every call refreshes (3600 s sessions, 3600 s window), so each one reads the file.
    let f = factory(&emu, FactoryConfig::default());
    let f = CredentialsFactory::new(
        rpc(),
        EndpointPolicy::default(),
        FactoryConfig {
            refresh: RefreshPolicy {
                refresh_before: Duration::from_secs(3600),
                ..fast_refresh()
            },
            ..f.config().clone()
        },
        secrets(),
    )
    .unwrap();
    let auth = CloudAuth {
        oidc_provider_arn: Some(PROVIDER.into()),
        ram_role_arn: Some(READER.into()),
        oidc_token_file_path: Some(token_file.display().to_string()),
        ..CloudAuth::default()
    };
    let p = f.provider(&store(), Some(&auth)).await.unwrap();
    assert_eq!(p.name(), "oidc_role");

    write_token(
        &token_file,
        &mint(&emu, "system:serviceaccount:team-a:kmsync", 600),
    );
    assert_eq!(
        read(&kms(&emu, p.clone()), "db/password").await.unwrap(),
        "db-value"
    );
    let first = p.credentials().await.unwrap();

    // A rotated (here: broken) token is noticed at the next refresh; the still-valid session is
    // kept and the error reported.
    write_token(&token_file, "not-a-jwt");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let kept = p.credentials().await.unwrap();
    assert_eq!(kept.access_key_id, first.access_key_id);
    let err = p.last_refresh_error().expect("refresh error recorded");
    assert_eq!(err.code(), Some("AuthenticationFail.OIDCToken.Invalid"));

    write_token(
        &token_file,
        &mint(&emu, "system:serviceaccount:team-a:kmsync", 600),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let next = p.credentials().await.unwrap();
    assert_ne!(next.access_key_id, first.access_key_id);
    assert!(p.last_refresh_error().is_none());
    let counters = emu.counters();
    assert!(counters.action("AssumeRoleWithOIDC") >= 3);
    assert!(
        counters.authenticated_by_signature.values().sum::<u64>() <= 1,
        "AssumeRoleWithOIDC is unsigned: only the KMS call was signed: {counters:?}"
    );
}

#[tokio::test]
async fn service_account_rrsa_takes_the_role_from_the_annotation_and_a_token_per_refresh() {
    let emu = start().await;
    let sa = service_accounts(&emu);
    let f = factory(
        &emu,
        FactoryConfig {
            default_oidc_provider_arn: Some(PROVIDER.into()),
            ..FactoryConfig::default()
        },
    )
    .with_service_accounts(sa.clone());
    let auth = |name: &str| CloudAuth {
        service_account_ref: Some(ServiceAccountRef {
            name: name.into(),
            namespace: None,
            audiences: None,
        }),
        ..CloudAuth::default()
    };
    let p = f.provider(&store(), Some(&auth("app"))).await.unwrap();
    assert_eq!(p.name(), "service_account_role");
    let client = kms(&emu, p.clone());
    assert_eq!(read(&client, "db/password").await.unwrap(), "db-value");
    assert_eq!(read(&client, "db/password").await.unwrap(), "db-value");
    assert_eq!(sa.token_requests(), 1);
    assert_eq!(emu.counters().action("AssumeRoleWithOIDC"), 1);

    // team-b's ServiceAccount is not trusted by the role (subjects team-a:*).
    let store_b = StoreRef::secret_store("team-b", "kms");
    let p = f.provider(&store_b, Some(&auth("app"))).await.unwrap();
    let err = p.credentials().await.unwrap_err();
    assert_eq!(err.code(), Some("AuthenticationFail.NoPermission"));
    assert!(
        error_chain(&err).contains(
            "STS AssumeRoleWithOIDC for role acs:ram::1234567890123456:role/reader failed"
        ),
        "{}",
        error_chain(&err)
    );

    // A ServiceAccount without the annotation is a build error naming it.
    let err = f
        .provider(&store(), Some(&auth("plain")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::MissingRoleAnnotation { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn the_ecs_instance_role_is_used_only_when_enabled() {
    let emu = start().await;
    let disabled = factory(&emu, FactoryConfig::default());
    let err = disabled
        .provider(&store(), None)
        .await
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialsError::ChainExhausted { .. }),
        "{err}"
    );
    assert!(error_chain(&err).contains("nothing is configured"), "{err}");
    assert_eq!(emu.counters().metadata("credentials"), 0);

    let enabled = factory(
        &emu,
        FactoryConfig {
            enable_worker_role: true,
            ..FactoryConfig::default()
        },
    );
    let p = enabled
        .provider(&store(), Some(&CloudAuth::default()))
        .await
        .unwrap();
    assert_eq!(p.name(), "default_chain");
    assert_eq!(
        read(&kms(&emu, p.clone()), "db/password").await.unwrap(),
        "db-value"
    );
    let c = emu.counters();
    assert_eq!(
        (
            c.metadata("token"),
            c.metadata("role-name"),
            c.metadata("credentials")
        ),
        (1, 1, 1),
        "IMDSv2 token, role name, credentials"
    );
}

#[tokio::test]
async fn the_metadata_provider_uses_imdsv2_tokens_and_falls_back_without_them() {
    // A server that requires tokens: success proves the token was sent.
    let mut strict = seed();
    strict.instance_role.as_mut().unwrap().require_token = true;
    let emu = start_with(strict).await;
    let p = Refreshing::new(
        EcsRamRole::new(metadata_config(&emu)).unwrap(),
        fast_refresh(),
    );
    assert!(p.credentials().await.unwrap().security_token.is_some());

    // A server without IMDSv2: the token request fails and the provider continues without one.
    let mut old = seed();
    old.instance_role.as_mut().unwrap().tokens_unsupported = true;
    let emu = start_with(old).await;
    let p = Refreshing::new(
        EcsRamRole::new(metadata_config(&emu)).unwrap(),
        fast_refresh(),
    );
    assert_eq!(
        read(&kms(&emu, Arc::new(p)), "db/password").await.unwrap(),
        "db-value"
    );

    // ... unless IMDSv1 is disabled on the client side.
    let p = EcsRamRole::new(EcsMetadataConfig {
        imds_v1_disabled: true,
        ..metadata_config(&emu)
    })
    .unwrap();
    let err = Refreshing::new(p, fast_refresh())
        .credentials()
        .await
        .unwrap_err();
    assert!(
        error_chain(&err).contains("answered the token request with HTTP 404"),
        "{}",
        error_chain(&err)
    );
}

#[tokio::test]
async fn a_metadata_server_that_is_down_or_failing_is_a_clear_error() {
    let emu = start().await;
    emu.state().set_metadata_mode(MetadataMode::Down).unwrap();
    let p = Refreshing::new(
        EcsRamRole::new(metadata_config(&emu)).unwrap(),
        fast_refresh(),
    );
    let err = p.credentials().await.unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.contains("did not answer the role name request"),
        "{text}"
    );

    emu.state()
        .set_metadata_mode(MetadataMode::Error { status: 503 })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let err = p.credentials().await.unwrap_err();
    assert!(
        error_chain(&err).contains("answered the role name request with HTTP 503"),
        "{}",
        error_chain(&err)
    );

    // A server that is not there at all.
    let nobody = EcsRamRole::new(EcsMetadataConfig {
        base_url: "http://127.0.0.1:9".into(),
        ..EcsMetadataConfig::default()
    })
    .unwrap();
    let err = Refreshing::new(nobody, fast_refresh())
        .credentials()
        .await
        .unwrap_err();
    assert!(error_chain(&err).contains("ECS metadata server http://127.0.0.1:9/ did not answer"));

    emu.state().set_metadata_mode(MetadataMode::Up).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(p.credentials().await.is_ok());
}

#[tokio::test]
async fn a_remote_role_is_assumed_on_top_of_each_method() {
    let emu = start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    write_token(
        &token_file,
        &mint(&emu, "system:serviceaccount:team-a:kmsync", 600),
    );
    let f = factory(
        &emu,
        FactoryConfig {
            enable_worker_role: true,
            default_oidc_provider_arn: Some(PROVIDER.into()),
            ..FactoryConfig::default()
        },
    );
    let remote = |base: CloudAuth| CloudAuth {
        remote_ram_role_arn: Some(REMOTE.into()),
        remote_ram_role_session_name: Some("cross-account".into()),
        ..base
    };
    let methods = [
        ("access_key+remote_role", ak_auth()),
        (
            "access_key_assume_role+remote_role",
            CloudAuth {
                ram_role_arn: Some(READER.into()),
                ..ak_auth()
            },
        ),
        (
            "rrsa_oidc+remote_role",
            CloudAuth {
                oidc_provider_arn: Some(PROVIDER.into()),
                ram_role_arn: Some(READER.into()),
                oidc_token_file_path: Some(token_file.display().to_string()),
                ..CloudAuth::default()
            },
        ),
        (
            "rrsa_service_account+remote_role",
            CloudAuth {
                service_account_ref: Some(ServiceAccountRef {
                    name: "app".into(),
                    namespace: None,
                    audiences: None,
                }),
                ..CloudAuth::default()
            },
        ),
    ];
    for (method, base) in methods {
        let auth = remote(base);
        let resolved = f.resolve(&store(), Some(&auth)).await.unwrap();
        assert_eq!(resolved.method(), method);
        let p = f.build(&resolved).unwrap();
        assert_eq!(p.name(), "remote_role");
        let client = kms(&emu, p);
        assert_eq!(
            read(&client, "remote/api-key").await.unwrap(),
            "remote-value",
            "{method}"
        );
        let err = read(&client, "db/password").await.unwrap_err();
        assert!(
            err.to_string().contains("Forbidden.NoPermission"),
            "{method}: {err}"
        );
    }
    // The default chain's instance role cannot chain into the remote role (not in its
    // assumable_roles): a clear NoPermission.
    let p = f
        .provider(&store(), Some(&remote(CloudAuth::default())))
        .await
        .unwrap();
    let err = p.credentials().await.unwrap_err();
    assert_eq!(err.code(), Some("NoPermission"), "{}", error_chain(&err));
}

#[tokio::test]
async fn sts_credentials_expiring_mid_test_are_refreshed_before_use() {
    let emu = start().await;
    let ak: Arc<dyn CredentialsProvider> =
        Arc::new(StaticCredentials::access_key(AK_ID, AK_SECRET).unwrap());
    // 3-second sessions (the seed lets this role go below STS's 900 s minimum), refreshed when
    // less than 1.5 s remain.
    let p: Arc<dyn CredentialsProvider> = Arc::new(Refreshing::new(
        AssumeRole::new(
            sts(&emu),
            ak,
            AssumeRoleRequest {
                role_arn: SHORT.into(),
                role_session_name: "short".into(),
                duration_seconds: Some(3),
                policy: None,
                external_id: None,
            },
            "assume_role",
        ),
        RefreshPolicy {
            refresh_before: Duration::from_millis(1500),
            min_remaining: Duration::from_millis(500),
            ..fast_refresh()
        },
    ));
    let client = kms(&emu, p.clone());
    let mut ids = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        read(&client, "other")
            .await
            .expect("no KMS call fails for an expired token");
        let id = p.credentials().await.unwrap().access_key_id;
        if ids.last() != Some(&id) {
            ids.push(id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = emu.counters();
    assert!(ids.len() >= 3, "sessions used: {ids:?}");
    assert_eq!(c.action("AssumeRole"), ids.len() as u64);
    assert_eq!(c.errors("InvalidAccessKeyId.NotFound"), 0, "{c:?}");
    assert!(c.errors_by_code.is_empty(), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_trigger_exactly_one_sts_call() {
    let emu = start().await;
    let f = factory(&emu, FactoryConfig::default());
    let registry = Arc::new(CredentialsRegistry::new(f));
    let auth = CloudAuth {
        ram_role_arn: Some(READER.into()),
        ..ak_auth()
    };
    // Slow STS down so that all callers arrive while the first refresh is in flight.
    emu.state()
        .set_faults(vec![
            serde_json::from_value(
                serde_json::json!({"kind": "latency", "ms": 300, "action": "AssumeRole"}),
            )
            .unwrap(),
        ])
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let registry = registry.clone();
            let auth = auth.clone();
            let emu_kms = emu.kms_url().to_string();
            tokio::spawn(async move {
                let p = registry.provider(&store(), Some(&auth)).await.unwrap();
                let endpoint = EndpointPolicy::default()
                    .resolve(Service::Kms, &EndpointSource::Url(emu_kms))
                    .unwrap();
                let client = KmsClient::new(rpc(), endpoint, p).unwrap();
                read(&client, "db/password").await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "db-value");
    }
    let c = emu.counters();
    assert_eq!(c.action("AssumeRole"), 1, "{c:?}");
    assert_eq!(c.action("GetSecretValue"), 32);
    assert_eq!(registry.len(), 1);
}

#[tokio::test]
async fn a_revoked_role_gives_a_clear_error_for_the_store_condition() {
    let emu = start().await;
    let f = factory(&emu, FactoryConfig::default());
    let registry = CredentialsRegistry::new(f);
    let auth = CloudAuth {
        ram_role_arn: Some(READER.into()),
        ..ak_auth()
    };
    let p = registry.provider(&store(), Some(&auth)).await.unwrap();
    assert_eq!(
        read(&kms(&emu, p.clone()), "db/password").await.unwrap(),
        "db-value"
    );

    // Deleted: the next session request fails with EntityNotExist.Role, and the sessions issued
    // before lose their permissions.
    emu.state().revoke_role(READER, Revocation::Delete).unwrap();
    emu.state().expire_sts_sessions();
    let next = store().with_identity(Some("uid-1"), Some(2));
    let p = registry.provider(&next, Some(&auth)).await.unwrap();
    let err = p.credentials().await.unwrap_err();
    assert_eq!(err.code(), Some("EntityNotExist.Role"));
    let status = registry.status(&next).unwrap();
    let message = error_chain(status.last_refresh_error.as_deref().unwrap());
    assert!(
        message.starts_with(
            "STS AssumeRole for role acs:ram::1234567890123456:role/reader failed: AssumeRole failed: EntityNotExist.Role (HTTP 404"
        ),
        "{message}"
    );
    assert!(
        message.ends_with("The specified Role not exists."),
        "{message}"
    );

    // Denied (trust removed): NoPermission.
    emu.state().restore_role(READER).unwrap();
    emu.state().revoke_role(READER, Revocation::Deny).unwrap();
    let again = store().with_identity(Some("uid-1"), Some(3));
    let err = registry
        .provider(&again, Some(&auth))
        .await
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoPermission"));
    assert!(
        error_chain(&err)
            .starts_with("refreshing assume_role credentials failed: STS AssumeRole for role"),
        "{}",
        error_chain(&err)
    );
}

#[tokio::test]
async fn bad_inputs_are_typed_errors_not_panics() {
    let emu = start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = factory(&emu, FactoryConfig::default());
    let oidc = |path: &Path| CloudAuth {
        oidc_provider_arn: Some(PROVIDER.into()),
        ram_role_arn: Some(READER.into()),
        oidc_token_file_path: Some(path.display().to_string()),
        ..CloudAuth::default()
    };
    let fetch = |auth: CloudAuth| {
        let f = f.clone();
        async move {
            f.provider(&store(), Some(&auth))
                .await
                .unwrap()
                .credentials()
                .await
                .unwrap_err()
        }
    };

    // Missing, empty and unreadable token files.
    let missing = dir.path().join("missing");
    let err = fetch(oidc(&missing)).await;
    assert!(
        matches!(&err, CredentialsError::RefreshFailed { source, .. } if matches!(**source, CredentialsError::TokenFileMissing { .. })),
        "{err}"
    );
    let empty = dir.path().join("empty");
    write_token(&empty, "");
    let err = error_chain(&fetch(oidc(&empty)).await);
    assert!(
        err.ends_with(&format!("OIDC token file {} is empty", empty.display())),
        "{err}"
    );
    let err = error_chain(&fetch(oidc(dir.path())).await);
    assert!(err.contains("could not be read"), "{err}");

    // STS error codes for bad tokens.
    let cases = [
        (
            mint(&emu, "system:serviceaccount:team-a:x", -60),
            "AuthenticationFail.OIDCToken.Expired",
        ),
        (
            emu.mint_oidc_token(&MintTokenRequest {
                provider_arn: PROVIDER.into(),
                subject: "system:serviceaccount:team-a:x".into(),
                audience: Some(vec!["kubernetes".into()]),
                expires_in_seconds: None,
                issuer: None,
            })
            .unwrap(),
            "AuthenticationFail.OIDCToken.AudienceNotMatch",
        ),
        (
            emu.mint_oidc_token(&MintTokenRequest {
                provider_arn: PROVIDER.into(),
                subject: "system:serviceaccount:team-a:x".into(),
                audience: None,
                expires_in_seconds: None,
                issuer: Some("https://elsewhere".into()),
            })
            .unwrap(),
            "AuthenticationFail.OIDCToken.Invalid",
        ),
        ("a.b.c".to_owned(), "AuthenticationFail.OIDCToken.Invalid"),
    ];
    for (i, (token, code)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("t{i}"));
        write_token(&path, &token);
        let err = fetch(oidc(&path)).await;
        assert_eq!(err.code(), Some(code), "{}", error_chain(&err));
    }
    let path = dir.path().join("good");
    write_token(&path, &mint(&emu, "system:serviceaccount:team-a:x", 600));
    let unknown_provider = CloudAuth {
        oidc_provider_arn: Some("acs:ram::1234567890123456:oidc-provider/nope".into()),
        ..oidc(&path)
    };
    assert_eq!(
        fetch(unknown_provider).await.code(),
        Some("AuthenticationFail.NoPermission")
    );
    let unknown_role = CloudAuth {
        ram_role_arn: Some("acs:ram::1234567890123456:role/nope".into()),
        ..oidc(&path)
    };
    assert_eq!(
        fetch(unknown_role).await.code(),
        Some("EntityNotExist.Role")
    );

    // A key that may not assume the role; a wrong secret.
    let mut s = MemorySecrets::new();
    s.insert(
        "team-a",
        "alibaba-ak",
        [
            ("id".to_owned(), SecretBytes::from("no-roles")),
            ("secret".to_owned(), SecretBytes::from("no-roles-secret")),
        ],
        None,
    );
    let no_roles = CredentialsFactory::new(
        rpc(),
        EndpointPolicy::default(),
        f.config().clone(),
        Arc::new(s),
    )
    .unwrap();
    let err = no_roles
        .provider(
            &store(),
            Some(&CloudAuth {
                ram_role_arn: Some(READER.into()),
                ..ak_auth()
            }),
        )
        .await
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoPermission"));
    s = MemorySecrets::new();
    s.insert(
        "team-a",
        "alibaba-ak",
        [
            ("id".to_owned(), SecretBytes::from(AK_ID)),
            ("secret".to_owned(), SecretBytes::from("wrong-secret")),
        ],
        None,
    );
    let wrong = CredentialsFactory::new(
        rpc(),
        EndpointPolicy::default(),
        f.config().clone(),
        Arc::new(s),
    )
    .unwrap();
    let err = wrong
        .provider(
            &store(),
            Some(&CloudAuth {
                ram_role_arn: Some(READER.into()),
                ..ak_auth()
            }),
        )
        .await
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));

    // Malformed ARNs and a malformed duration are build errors naming the field.
    let err = f
        .provider(
            &store(),
            Some(&CloudAuth {
                ram_role_arn: Some("acs:ram::123:role/".into()),
                ..ak_auth()
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Arn { .. }), "{err}");
    assert!(
        err.to_string().starts_with("spec.KMS.KMSAuth.ramRoleARN: "),
        "{err}"
    );
}

#[tokio::test]
async fn the_sts_client_sends_assume_role_with_oidc_unsigned() {
    let emu = start().await;
    let assumed = sts(&emu)
        .assume_role_with_oidc(&AssumeRoleWithOidcRequest {
            role_arn: READER.into(),
            oidc_provider_arn: PROVIDER.into(),
            oidc_token: mint(&emu, "system:serviceaccount:team-a:x", 600).into(),
            role_session_name: "direct".into(),
            duration_seconds: Some(900),
            policy: None,
        })
        .await
        .unwrap();
    assert!(assumed.credentials.access_key_id.starts_with("STS."));
    assert_eq!(
        assumed.assumed_role_arn.as_deref(),
        Some("acs:ram::1234567890123456:assumed-role/reader/direct")
    );
    let c = emu.counters();
    assert_eq!(c.action("AssumeRoleWithOIDC"), 1);
    assert!(c.authenticated_by_signature.is_empty(), "{c:?}");
}

#[tokio::test]
async fn the_default_chain_prefers_env_then_oidc_env_then_profiles() {
    let emu = start().await;
    let ctx = ProviderContext {
        rpc: rpc(),
        policy: EndpointPolicy::default(),
        sts: sts_config(&emu),
        refresh: fast_refresh(),
        metadata: metadata_config(&emu),
    };
    let home = tempfile::tempdir().unwrap();
    let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };

    // 1. Environment AccessKey.
    let chain = DefaultChain::new(
        &DefaultChainConfig {
            env: env(&[
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", AK_ID),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", AK_SECRET),
            ]),
            home: Some(home.path().to_owned()),
            enable_ecs_role: true,
        },
        ctx.clone(),
    );
    assert_eq!(
        chain.member_names(),
        vec!["env", "cli_profile", "profile", "ecs_ram_role"]
    );
    assert_eq!(chain.credentials().await.unwrap().access_key_id, AK_ID);

    // 2. OIDC environment.
    let token = home.path().join("token");
    write_token(&token, &mint(&emu, "system:serviceaccount:team-a:env", 600));
    let token_path = token.display().to_string();
    let chain = DefaultChain::new(
        &DefaultChainConfig {
            env: env(&[
                ("ALIBABA_CLOUD_ROLE_ARN", READER),
                ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", PROVIDER),
                ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_path),
            ]),
            home: None,
            enable_ecs_role: false,
        },
        ctx.clone(),
    );
    assert_eq!(chain.member_names(), vec!["oidc_env"]);
    assert_eq!(
        read(&kms(&emu, Arc::new(chain)), "db/password")
            .await
            .unwrap(),
        "db-value"
    );

    // 3. ~/.aliyun/config.json (current profile: RamRoleArn).
    std::fs::create_dir_all(home.path().join(".aliyun")).unwrap();
    std::fs::write(
        home.path().join(".aliyun/config.json"),
        format!(
            r#"{{"current": "ram", "profiles": [{{"name": "ram", "mode": "RamRoleArn",
                "access_key_id": "{AK_ID}", "access_key_secret": "{AK_SECRET}", "ram_role_arn": "{READER}"}}]}}"#
        ),
    )
    .unwrap();
    let chain = DefaultChain::new(
        &DefaultChainConfig {
            home: Some(home.path().to_owned()),
            ..DefaultChainConfig::default()
        },
        ctx.clone(),
    );
    let before = emu.counters().action("AssumeRole");
    assert_eq!(
        read(&kms(&emu, Arc::new(chain)), "db/password")
            .await
            .unwrap(),
        "db-value"
    );
    assert_eq!(emu.counters().action("AssumeRole"), before + 1);

    // 4. ~/.alibabacloud/credentials when the CLI profile is disabled.
    std::fs::create_dir_all(home.path().join(".alibabacloud")).unwrap();
    std::fs::write(
        home.path().join(".alibabacloud/credentials"),
        format!("[default]\ntype = access_key\naccess_key_id = {AK_ID}\naccess_key_secret = {AK_SECRET}\n"),
    )
    .unwrap();
    let chain = DefaultChain::new(
        &DefaultChainConfig {
            env: env(&[("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")]),
            home: Some(home.path().to_owned()),
            enable_ecs_role: false,
        },
        ctx.clone(),
    );
    assert_eq!(chain.member_names(), vec!["profile"]);
    assert_eq!(chain.credentials().await.unwrap().access_key_id, AK_ID);

    // A broken profile is reported with the file and field, and the chain moves on to ECS.
    std::fs::write(
        home.path().join(".alibabacloud/credentials"),
        "[default]\ntype = access_key\naccess_key_id = x\n",
    )
    .unwrap();
    let chain = DefaultChain::new(
        &DefaultChainConfig {
            env: env(&[("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")]),
            home: Some(home.path().to_owned()),
            enable_ecs_role: true,
        },
        ctx,
    );
    let c = chain.credentials().await.unwrap();
    assert!(
        c.access_key_id.starts_with("STS."),
        "from the instance role"
    );
}

/// Collects everything a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_credential_value_appears_in_logs_errors_or_debug_output() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emu = start().await;
    let mut markers: Vec<String> = vec![AK_SECRET.to_owned()];
    let mut output: Vec<String> = Vec::new();
    let sa = service_accounts(&emu);
    let f = factory(
        &emu,
        FactoryConfig {
            enable_worker_role: true,
            default_oidc_provider_arn: Some(PROVIDER.into()),
            ..FactoryConfig::default()
        },
    )
    .with_service_accounts(sa);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let oidc_token = mint(&emu, "system:serviceaccount:team-a:kmsync", 600);
    markers.push(oidc_token.clone());
    markers.push(oidc_token.rsplit('.').next().unwrap().to_owned());
    write_token(&token_file, &oidc_token);

    let auths = vec![
        ak_auth(),
        CloudAuth {
            ram_role_arn: Some(READER.into()),
            remote_ram_role_arn: Some(REMOTE.into()),
            ..ak_auth()
        },
        CloudAuth {
            oidc_provider_arn: Some(PROVIDER.into()),
            ram_role_arn: Some(READER.into()),
            oidc_token_file_path: Some(token_file.display().to_string()),
            ..CloudAuth::default()
        },
        CloudAuth {
            service_account_ref: Some(ServiceAccountRef {
                name: "app".into(),
                namespace: None,
                audiences: None,
            }),
            ..CloudAuth::default()
        },
        CloudAuth::default(),
    ];
    for auth in &auths {
        let resolved = f.resolve(&store(), Some(auth)).await.unwrap();
        output.push(format!("{resolved:?}"));
        let p = f.build(&resolved).unwrap();
        let c = p.credentials().await.unwrap();
        markers.push(c.access_key_secret.expose().to_owned());
        if let Some(t) = &c.security_token {
            markers.push(t.expose().to_owned());
        }
        output.push(format!("{p:?}"));
        output.push(format!("{c:?}"));
        let client = kms(&emu, p);
        output.push(format!("{client:?}"));
        match read(&client, "other").await {
            Ok(_) => {}
            Err(e) => {
                output.push(e.to_string());
                output.push(format!("{e:?}"));
            }
        }
    }

    // Failures carrying marker values: a wrong secret, a token the role does not trust, an
    // expired session used against KMS.
    let wrong: Arc<dyn CredentialsProvider> =
        Arc::new(StaticCredentials::access_key(AK_ID, "MARKER-wrong-secret-11").unwrap());
    markers.push("MARKER-wrong-secret-11".into());
    let err = read(&kms(&emu, wrong.clone()), "other").await.unwrap_err();
    output.push(error_chain(&err));
    output.push(format!("{err:?}"));
    let untrusted = mint(&emu, "system:serviceaccount:team-z:app", 600);
    markers.push(untrusted.clone());
    let err = sts(&emu)
        .assume_role_with_oidc(&AssumeRoleWithOidcRequest {
            role_arn: READER.into(),
            oidc_provider_arn: PROVIDER.into(),
            oidc_token: untrusted.into(),
            role_session_name: "x1".into(),
            duration_seconds: None,
            policy: None,
        })
        .await
        .unwrap_err();
    output.push(error_chain(&err));
    output.push(format!("{err:?}"));
    let assumed = Refreshing::new(
        AssumeRole::new(
            sts(&emu),
            wrong,
            AssumeRoleRequest {
                role_arn: READER.into(),
                role_session_name: "x1".into(),
                duration_seconds: None,
                policy: None,
                external_id: None,
            },
            "assume_role",
        ),
        fast_refresh(),
    );
    let err = assumed.credentials().await.unwrap_err();
    output.push(error_chain(&err));
    output.push(format!("{err:?}"));
    output.push(format!("{assumed:?}"));
    emu.state().expire_sts_sessions();
    let p = f.provider(&store(), Some(&auths[1])).await.unwrap();
    if let Err(e) = read(&kms(&emu, p), "remote/api-key").await {
        output.push(error_chain(&e));
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("assumed role") && logs.contains("fetched ECS instance role credentials"),
        "the providers did log:\n{logs}"
    );
    output.push(logs);
    let all = output.join("\n");
    for marker in &markers {
        assert!(marker.len() >= 8);
        assert!(
            !all.contains(marker.as_str()),
            "a credential value leaked: {}…",
            &marker[..8]
        );
    }
    // The AccessKeyId only appears masked.
    assert!(!all.contains(AK_ID), "the full AccessKeyId leaked");
}
