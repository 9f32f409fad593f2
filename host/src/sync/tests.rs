//! Pipeline tests with a fake environment and fake fetchers (no HTTP, no Kubernetes).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest as _, Sha256};

use super::*;
use crate::api::{ExternalSecret, Provider};
use crate::fetch::{FetchError, FetchRequest, SecretFetcher, StoreCheck};
use crate::kms::{KmsError, SecretDataType, SecretType, SecretValue};
use crate::rules::{RuleEngine, RuleLimits};
use crate::stores::{FetcherProvider, StoreError, StoreObject, StoreSelector};
use crate::value::SecretBytes;

/// One remote version.
#[derive(Clone)]
struct Version {
    id: &'static str,
    stages: Vec<&'static str>,
    data: Vec<u8>,
    binary: bool,
    secret_type: &'static str,
    create_time: &'static str,
}

/// A fake secret source: secrets by name, each with versions; counts calls per name.
#[derive(Default)]
struct FakeKms {
    secrets: Mutex<HashMap<String, Vec<Version>>>,
    calls: Mutex<HashMap<String, u64>>,
    total: AtomicU64,
    delay: Option<Duration>,
}

impl std::fmt::Debug for FakeKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeKms")
    }
}

impl FakeKms {
    fn with(self, name: &str, versions: Vec<Version>) -> Self {
        self.secrets.lock().unwrap().insert(name.into(), versions);
        self
    }

    fn text(self, name: &str, text: &str) -> Self {
        self.with(name, vec![text_version("v1", &["ACSCurrent"], text)])
    }

    fn set(&self, name: &str, versions: Vec<Version>) {
        self.secrets.lock().unwrap().insert(name.into(), versions);
    }

    fn calls(&self, name: &str) -> u64 {
        self.calls.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

fn text_version(id: &'static str, stages: &[&'static str], text: &str) -> Version {
    Version {
        id,
        stages: stages.to_vec(),
        data: text.as_bytes().to_vec(),
        binary: false,
        secret_type: "Generic",
        create_time: "2026-01-01T00:00:00Z",
    }
}

fn not_found(name: &str) -> FetchError {
    FetchError::Kms(KmsError::Rpc(crate::alibaba::RpcError::Api(Box::new(
        crate::alibaba::ApiError {
            action: "GetSecretValue",
            code: "Forbidden.ResourceNotFound".into(),
            message: format!("The resource {name} was not found"),
            http_status: 404,
            request_id: None,
            retry_after: None,
        },
    ))))
}

#[async_trait]
impl SecretFetcher for FakeKms {
    async fn fetch(&self, request: &FetchRequest) -> Result<SecretValue, FetchError> {
        self.total.fetch_add(1, Ordering::SeqCst);
        *self
            .calls
            .lock()
            .unwrap()
            .entry(request.secret_name.clone())
            .or_default() += 1;
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let secrets = self.secrets.lock().unwrap();
        let versions = secrets
            .get(&request.secret_name)
            .ok_or_else(|| not_found(&request.secret_name))?;
        let stage = request.version_stage.as_deref().unwrap_or("ACSCurrent");
        let v = versions
            .iter()
            .find(|v| match &request.version_id {
                Some(id) => v.id == id,
                None => v.stages.contains(&stage),
            })
            .ok_or_else(|| not_found(&request.secret_name))?;
        Ok(SecretValue {
            request_id: None,
            secret_name: request.secret_name.clone(),
            secret_type: SecretType::from_wire(v.secret_type),
            data_type: if v.binary {
                SecretDataType::Binary
            } else {
                SecretDataType::Text
            },
            data: SecretBytes::new(v.data.clone()),
            version_id: v.id.into(),
            version_stages: v.stages.iter().map(|s| (*s).to_owned()).collect(),
            create_time: Some(v.create_time.into()),
            extended_config: None,
            automatic_rotation: None,
            rotation_interval: None,
            last_rotation_date: None,
            next_rotation_date: None,
        })
    }

    async fn check(&self) -> Result<StoreCheck, FetchError> {
        unreachable!("not used by the pipeline")
    }

    fn source_kind(&self) -> &'static str {
        "kms"
    }
}

/// Every store (and the ambient credentials) reads from the same fake; stores named
/// `broken` fail to give a fetcher.
struct FakeProvider(Arc<FakeKms>);

#[async_trait]
impl FetcherProvider for FakeProvider {
    async fn fetcher(
        &self,
        store: StoreSelector<'_>,
        _provider: Provider,
        _endpoint: Option<&str>,
    ) -> Result<Arc<dyn SecretFetcher>, StoreError> {
        if let StoreSelector::Store(s) = store
            && s.identity().name == "broken"
        {
            return Err(StoreError::NoEndpoint {
                service: crate::alibaba::Service::Kms,
            });
        }
        Ok(self.0.clone())
    }
}

fn store_yaml(kind: &str, namespace: Option<&str>, name: &str, extra: &str) -> StoreObject {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "apiVersion: alibabacloud.com/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\n{ns}spec:\n  KMS: {{}}\n{extra}"
    );
    match kind {
        "SecretStore" => {
            StoreObject::from(serde_yaml_ng::from_str::<crate::api::SecretStore>(&yaml).unwrap())
        }
        _ => StoreObject::from(
            serde_yaml_ng::from_str::<crate::api::ClusterSecretStore>(&yaml).unwrap(),
        ),
    }
}

struct Fixture {
    kms: Arc<FakeKms>,
    env: MemoryEnv,
    pipeline: Pipeline,
}

fn fixture(kms: FakeKms) -> Fixture {
    fixture_with(
        kms,
        PipelineConfig::default(),
        FetchCache::new(FetchCacheConfig::default()),
    )
}

fn fixture_with(kms: FakeKms, config: PipelineConfig, cache: FetchCache) -> Fixture {
    let kms = Arc::new(kms);
    let mut env = MemoryEnv::new(Arc::new(FakeProvider(kms.clone())));
    env.insert_store(store_yaml("SecretStore", Some("default"), "kms", ""));
    env.insert_store(store_yaml("SecretStore", Some("other"), "theirs", ""));
    env.insert_store(store_yaml("SecretStore", Some("default"), "broken", ""));
    env.insert_store(store_yaml(
        "ClusterSecretStore",
        None,
        "shared",
        "  conditions:\n    - namespaces: [default]\n  keyNamePolicy:\n    allowedKeys: [\"{namespace}/*\", \"test1\"]\n",
    ));
    let engine = Arc::new(RuleEngine::new(RuleLimits::default()).unwrap());
    let pipeline = Pipeline::new(
        engine,
        Arc::new(cache),
        DigestKey::from_bytes(&[42u8; 32]).unwrap(),
        config,
    );
    Fixture { kms, env, pipeline }
}

fn es(yaml_spec: &str) -> ExternalSecret {
    es_in("default", yaml_spec)
}

fn es_in(namespace: &str, yaml_spec: &str) -> ExternalSecret {
    serde_yaml_ng::from_str(&format!(
        "apiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata:\n  name: app\n  namespace: {namespace}\n  labels: {{team: a}}\nspec:\n{yaml_spec}"
    ))
    .unwrap()
}

fn text(out: &SyncOutput, key: &str) -> String {
    String::from_utf8(
        out.secret
            .data
            .get(key)
            .unwrap_or_else(|| panic!("no key {key}: {:?}", out.secret))
            .expose()
            .to_vec(),
    )
    .unwrap()
}

fn keys(out: &SyncOutput) -> Vec<&str> {
    out.secret.data.keys().map(String::as_str).collect()
}

const TEST1: &str = r#"{"name":"tom","age":"14","friends":[{"name":"lili"},{"name":"edf"}]}"#;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

#[tokio::test]
async fn a_plain_entry_writes_the_whole_value_under_its_name_and_reports_the_version() {
    let f = fixture(FakeKms::default().text("db", "pw-marker"));
    let out = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: db, name: password, secretStoreRef: {name: kms}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out), ["password"]);
    assert_eq!(text(&out, "password"), "pw-marker");
    assert_eq!(out.secret.name, "app");
    assert_eq!(out.secret.namespace, "default");
    assert_eq!(out.secret.type_, "Opaque");
    assert_eq!(out.version, "v1");
    assert_eq!(out.entries.len(), 1);
    assert_eq!(out.entries[0].entry.to_string(), "spec.data[0]");
    assert_eq!(out.entries[0].secret_keys, ["password"]);
    assert_eq!(out.rotation.action, RotationAction::Sync);
    let result = out.data_sync_results(at(0));
    assert_eq!(result[0].external_secret_key.as_deref(), Some("db"));
    assert_eq!(result[0].status.as_deref(), Some("Succeeded"));
    assert_eq!(result[0].version_id.as_deref(), Some("v1"));
}

#[tokio::test]
async fn the_ack_compat_example_maps_jmespath_and_extract_with_replace_rules() {
    let f =
        fixture(FakeKms::default().with("test1", vec![text_version("v1", &["ACSCurrent"], TEST1)]));
    let out = f
        .pipeline
        .sync(
            &es(r#"  provider: kms
  data:
    - key: test1
      name: test1
      versionId: v1
      secretStoreRef: {name: kms, namespace: default}
      jmesPath:
        - {path: "name", objectAlias: "name"}
        - {path: "friends[0].name", objectAlias: "friendname"}
  dataProcess:
    - extract:
        key: test1
        name: extract
        versionId: v1
        secretStoreRef: {name: kms, namespace: default}
      replaceRule:
        - {source: "^n.*e$", target: "alibabacloud"}
"#),
            &f.env,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&out),
        ["age", "alibabacloud", "friendname", "friends", "name"]
    );
    assert_eq!(text(&out, "name"), "tom");
    assert_eq!(text(&out, "friendname"), "lili");
    assert_eq!(
        text(&out, "alibabacloud"),
        "tom",
        "replaceRule renames keys, not values"
    );
    assert_eq!(text(&out, "age"), "14");
    assert_eq!(text(&out, "friends"), r#"[{"name":"lili"},{"name":"edf"}]"#);
    // One remote read for the two entries naming the same version.
    assert_eq!(f.kms.calls("test1"), 1);
    assert_eq!(out.version, "v1,v1");
    assert_eq!(
        out.entries[1].secret_keys,
        ["age", "alibabacloud", "friends"]
    );
}

#[tokio::test]
async fn a_failing_entry_fails_the_whole_sync_naming_the_entry_and_secret() {
    let f = fixture(FakeKms::default().text("a", "one"));
    let err = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: a, secretStoreRef: {name: kms}}\n    - {key: missing, versionStage: ACSPrevious, secretStoreRef: {name: kms}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "SecretNotFound");
    assert_eq!(err.entry(), Some(EntryRef::data(1)));
    assert_eq!(
        err.to_string(),
        r#"spec.data[1]: secret "missing" stage "ACSPrevious" not found"#
    );
    assert!(
        err.message().contains("Forbidden.ResourceNotFound"),
        "{}",
        err.message()
    );
    let result = err.data_sync_result("missing", at(0));
    assert_eq!(result.status.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn a_version_stage_that_does_not_exist_is_not_found_while_others_are_read() {
    let f = fixture(FakeKms::default().with(
        "rot",
        vec![
            text_version("v1", &["ACSPrevious"], "old"),
            text_version("v2", &["ACSCurrent"], "new"),
        ],
    ));
    let ok = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: rot, name: cur, secretStoreRef: {name: kms}}\n    - {key: rot, name: prev, versionStage: ACSPrevious, secretStoreRef: {name: kms}}\n    - {key: rot, name: first, versionId: v1, secretStoreRef: {name: kms}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap();
    assert_eq!(text(&ok, "cur"), "new");
    assert_eq!(text(&ok, "prev"), "old");
    assert_eq!(text(&ok, "first"), "old");
    assert_eq!(ok.version, "v2,v1,v1");
    let err = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: rot, versionStage: Nope, secretStoreRef: {name: kms}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "SecretNotFound");
    assert!(err.to_string().contains(r#"stage "Nope""#), "{err}");
}

#[tokio::test]
async fn two_entries_writing_one_key_are_a_conflict_naming_both() {
    let f = fixture(
        FakeKms::default()
            .text("a", r#"{"user":"x"}"#)
            .text("b", r#"{"user":"y"}"#),
    );
    let err = f
        .pipeline
        .sync(
            &es("  dataProcess:\n    - extract: {key: a, secretStoreRef: {name: kms}}\n    - extract: {key: b, secretStoreRef: {name: kms}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "KeyConflict");
    assert_eq!(
        err.to_string(),
        r#"Secret key "user" is written by both spec.dataProcess[0].extract and spec.dataProcess[1].extract"#
    );
}

#[tokio::test]
async fn cross_namespace_stores_are_refused_unless_allowed() {
    let yaml = "  data:\n    - {key: a, secretStoreRef: {name: theirs, namespace: other}}\n";
    let f = fixture(FakeKms::default().text("a", "v"));
    let err = f.pipeline.sync(&es(yaml), &f.env, None).await.unwrap_err();
    assert_eq!(err.reason(), "PolicyDenied");
    assert!(
        err.to_string().starts_with(
            r#"spec.data[0]: secretStoreRef names SecretStore other/theirs, but an ExternalSecret in namespace "default" may only use SecretStores in its own namespace"#
        ),
        "{err}"
    );
    assert_eq!(
        f.kms.total.load(Ordering::SeqCst),
        0,
        "refused before any call"
    );

    let allowed = fixture_with(
        FakeKms::default().text("a", "v"),
        PipelineConfig {
            allow_cross_namespace_store: true,
            ..PipelineConfig::default()
        },
        FetchCache::new(FetchCacheConfig::default()),
    );
    let out = allowed
        .pipeline
        .sync(&es(yaml), &allowed.env, None)
        .await
        .unwrap();
    assert_eq!(text(&out, "a"), "v");
}

#[tokio::test]
async fn cluster_stores_apply_their_namespace_conditions_and_key_policy() {
    let f = fixture(
        FakeKms::default()
            .text("test1", "t")
            .text("default/db", "d")
            .text("other/db", "o"),
    );
    let spec = |key: &str| {
        format!(
            "  data:\n    - {{key: {key}, name: v, secretStoreRef: {{name: shared, kind: ClusterSecretStore}}}}\n"
        )
    };
    let out = f
        .pipeline
        .sync(&es(&spec("default/db")), &f.env, None)
        .await
        .unwrap();
    assert_eq!(text(&out, "v"), "d");
    let out = f
        .pipeline
        .sync(&es(&spec("test1")), &f.env, None)
        .await
        .unwrap();
    assert_eq!(text(&out, "v"), "t");

    let err = f
        .pipeline
        .sync(&es(&spec("other/db")), &f.env, None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "PolicyDenied");
    assert_eq!(
        err.to_string(),
        r#"spec.data[0]: ClusterSecretStore shared does not let namespace "default" read key "other/db" (spec.keyNamePolicy.allowedKeys)"#
    );
    let err = f
        .pipeline
        .sync(&es_in("team-b", &spec("test1")), &f.env, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"spec.data[0]: ClusterSecretStore shared may not be used from namespace "team-b" (its spec.conditions do not select it)"#
    );
    assert_eq!(f.kms.calls("other/db"), 0);
}

#[tokio::test]
async fn unknown_unusable_and_mismatched_stores_are_named() {
    let f = fixture(FakeKms::default().text("a", "v"));
    let err = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: a, secretStoreRef: {name: nope}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "StoreNotFound");
    assert_eq!(
        err.to_string(),
        "spec.data[0].secretStoreRef: SecretStore default/nope does not exist"
    );
    let err = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: a, secretStoreRef: {name: broken}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "StoreNotReady");
    assert!(
        err.message().starts_with(
            "spec.data[0]: SecretStore default/broken is not ready: no KMS endpoint is configured"
        ),
        "{}",
        err.message()
    );
    let err = f
        .pipeline
        .sync(
            &es("  provider: oos\n  data:\n    - {key: a, secretStoreRef: {name: kms}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
    assert_eq!(
        err.message(),
        "spec.data[0].secretStoreRef: SecretStore default/kms can not be used: SecretStore default/kms reads from KMS, but the ExternalSecret's provider is oos"
    );
}

#[tokio::test]
async fn invalid_specs_and_go_templates_are_refused_before_any_call() {
    let f = fixture(FakeKms::default().text("a", "v"));
    let err = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: a, name: \"a b\"}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
    assert!(
        err.to_string()
            .starts_with(r#"spec.data[0].name: "a b" is not a valid Secret key"#),
        "{err}"
    );
    let err = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: a, secretStoreRef: {name: kms}}\n  target:\n    template:\n      data: {url: \"{{ .a }}\"}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "Unsupported");
    assert!(err.to_string().starts_with("spec.target.template.data: Go-template rendering (ack-secret-manager v0.6) is not supported by kmsync"), "{err}");
    assert_eq!(f.kms.total.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn target_metadata_type_and_immutable_reach_the_desired_secret() {
    let f = fixture(FakeKms::default().text("a", "v"));
    let out = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: a, secretStoreRef: {name: kms}}\n  target:\n    name: app-secret\n    immutable: true\n    template:\n      type: kubernetes.io/basic-auth\n      metadata:\n        labels: {app: web}\n        annotations: {note: hi}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap();
    let s = &out.secret;
    assert_eq!(s.name, "app-secret");
    assert_eq!(s.type_, "kubernetes.io/basic-auth");
    assert!(s.immutable);
    assert_eq!(s.labels["app"], "web");
    assert_eq!(s.annotations["note"], "hi");
    let k = s.to_secret();
    assert_eq!(k.immutable, Some(true));
    assert_eq!(k.data.unwrap()["a"].0, b"v");
}

#[tokio::test]
async fn binary_secrets_are_written_as_their_bytes() {
    let f = fixture(FakeKms::default().with(
        "bin",
        vec![Version {
            binary: true,
            data: vec![0, 1, 0xfe, 0xff],
            ..text_version("v1", &["ACSCurrent"], "")
        }],
    ));
    let out = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: bin, name: blob, secretStoreRef: {name: kms}}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.secret.data["blob"].expose(), [0, 1, 0xfe, 0xff]);
}

#[tokio::test]
async fn user_transform_and_filter_rules_shape_plain_entries() {
    let f = fixture(FakeKms::default().with(
        "rds",
        vec![Version {
            secret_type: "Rds",
            ..text_version(
                "v3",
                &["ACSCurrent"],
                r#"{"AccountName":"app","AccountPassword":"pw"}"#,
            )
        }],
    ));
    let out = f
        .pipeline
        .sync(
            &es("  data:\n    - {key: rds, name: ignored, secretStoreRef: {name: kms}}\n  rules:\n    - module: {builtin: managed-credentials}\n    - name: drop-user\n      module: {builtin: filter}\n      config: {exclude: [\"^user\"]}\n"),
            &f.env,
            None,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out), ["password"]);
    assert_eq!(text(&out, "password"), "pw");
    assert_eq!(out.entries[0].secret_keys, ["password"]);
}

#[tokio::test]
async fn a_rule_error_names_the_rule_the_entry_and_the_secret_but_no_value() {
    let f = fixture(FakeKms::default().text("cfg", "password=hunter2-marker"));
    let err = f
        .pipeline
        .sync(
            &es("  data:\n    - key: cfg\n      secretStoreRef: {name: kms}\n      jmesPath: [{path: a, objectAlias: a}]\n"),
            &f.env,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "RuleError");
    assert!(
        err.to_string().starts_with(
            r#"spec.data[0] (secret "cfg"): rule jmespath failed: not_json: secret cfg is not JSON"#
        ),
        "{err}"
    );
    let msg = err.message();
    assert!(msg.contains("not_json"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!format!("{err:?}").contains("hunter2"));
}

/// A module named `leaky` whose `hook` returns `envelope` whatever its input.
fn fixed_envelope_module(hook: &str, envelope: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (memory (export "memory") 2)
  (func (export "kmsync_abi_v1"))
  (func (export "kmsync_alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "{hook}") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {len})))
  (data (i32.const 16) "{data}")
  (@custom "kmsync.metadata" "{{\"name\":\"leaky\",\"version\":\"1.0.0\",\"abi\":\"1.0\",\"hooks\":[\"{hook}\"]}}")
)"#,
        len = envelope.len(),
        data = envelope.replace('"', "\\\""),
    );
    wat::parse_str(&wat).unwrap()
}

/// Syncs ExternalSecret `app` (entry `a`, the rule `wasm` from a ConfigMap) with `config`.
async fn sync_with_module(
    config: PipelineConfig,
    wasm: Vec<u8>,
    current: Option<&CurrentState>,
) -> Result<SyncOutput, SyncError> {
    let sha = hex::encode(Sha256::digest(&wasm));
    let spec = format!(
        "  data:\n    - {{key: a, secretStoreRef: {{name: kms}}}}\n  rules:\n    - module: {{configMap: {{name: rules, key: leaky.wasm}}, sha256: \"{sha}\"}}\n"
    );
    let mut f = fixture_with(
        FakeKms::default().text("a", "v"),
        config,
        FetchCache::new(FetchCacheConfig::default()),
    );
    f.env
        .insert_config_map("default", "rules", [("leaky.wasm".to_owned(), wasm)]);
    f.pipeline.sync(&es(&spec), &f.env, current).await
}

#[tokio::test]
async fn the_controller_cuts_a_rules_own_texts_to_the_limit() {
    let limited = PipelineConfig {
        rule_text_limit: Some(256),
        ..PipelineConfig::default()
    };
    // Texts that go on and on (here: 300 two-byte characters, then what a careless author
    // might append, such as the value the rule was given).
    let long = format!("{}value=hunter2-marker", "é".repeat(300));
    let cut = format!("{}…", "é".repeat(256));

    // An error envelope's message.
    let failing = fixed_envelope_module(
        "transform",
        &format!(r#"{{"error":{{"code":"leak","message":"{long}"}}}}"#),
    );
    let err = sync_with_module(limited, failing.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "RuleError");
    assert!(
        err.message()
            .ends_with(&format!("rule leaky failed: leak: {cut}")),
        "{}",
        err.message()
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"));
    // Without a limit (`render`): the whole message.
    let err = sync_with_module(PipelineConfig::default(), failing, None)
        .await
        .unwrap_err();
    assert!(
        err.message().ends_with(&format!("leak: {long}")),
        "{}",
        err.message()
    );

    // A rotate decision's reason (shown in the condition and Events when it holds data back).
    let skipping = fixed_envelope_module(
        "rotate",
        &format!(r#"{{"ok":{{"action":"skip","reason":"{long}"}}}}"#),
    );
    let current = CurrentState {
        digest: Some("hmac-sha256:old".into()),
        version: Some("v1".into()),
        synced_at: Some(at(0)),
    };
    let out = sync_with_module(limited, skipping.clone(), Some(&current))
        .await
        .unwrap();
    assert_eq!(out.rotation.action, RotationAction::Skip);
    assert_eq!(out.rotation.reason, cut);
    let out = sync_with_module(PipelineConfig::default(), skipping, Some(&current))
        .await
        .unwrap();
    assert_eq!(out.rotation.reason, long);
}

#[tokio::test]
async fn config_map_modules_are_pinned_by_digest() {
    let mut f = fixture(FakeKms::default().text("a", "v"));
    let wasm = crate::rules::builtin::wasm("filter").unwrap().to_vec();
    let sha = hex::encode(Sha256::digest(&wasm));
    f.env
        .insert_config_map("default", "rules", [("filter.wasm".to_owned(), wasm)]);
    let spec = |cm: &str, key: &str, sha: &str| {
        format!(
            "  data:\n    - {{key: a, secretStoreRef: {{name: kms}}}}\n  rules:\n    - module: {{configMap: {{name: {cm}, key: {key}}}, sha256: \"{sha}\"}}\n"
        )
    };
    let wrong = "0".repeat(64);
    let err = f
        .pipeline
        .sync(&es(&spec("rules", "filter.wasm", &wrong)), &f.env, None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "RuleError");
    assert_eq!(
        err.message(),
        format!(
            "spec.rules[0] (rules/filter.wasm): the module in ConfigMap default/rules key \"filter.wasm\" has sha256 {sha}, but module.sha256 pins {wrong}; refusing it"
        )
    );
    let err = f
        .pipeline
        .sync(&es(&spec("nope", "filter.wasm", &sha)), &f.env, None)
        .await;
    // The module is not compiled yet under this digest: the ConfigMap is read, and is missing.
    assert!(
        err.as_ref().is_err_and(|e| e
            .message()
            .ends_with("ConfigMap default/nope does not exist")),
        "{:?}",
        err.map(|o| o.secret)
    );
    let err = f
        .pipeline
        .sync(&es(&spec("rules", "other.wasm", &sha)), &f.env, None)
        .await
        .unwrap_err();
    assert!(
        err.message().ends_with(
            r#"ConfigMap default/rules has no key "other.wasm" (in binaryData or data)"#
        ),
        "{}",
        err.message()
    );
    let out = f
        .pipeline
        .sync(&es(&spec("rules", "filter.wasm", &sha)), &f.env, None)
        .await
        .unwrap();
    assert_eq!(keys(&out), ["a"]);
}

#[tokio::test]
async fn the_digest_is_keyed_stable_and_over_the_final_data() {
    let f = fixture(FakeKms::default().text("a", "v"));
    let spec = es("  data:\n    - {key: a, name: k, secretStoreRef: {name: kms}}\n");
    let one = f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    let two = f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    assert_eq!(one.digest, two.digest);
    let expected = DigestKey::from_bytes(&[42u8; 32])
        .unwrap()
        .digest(&BTreeMap::from([("k".to_owned(), SecretBytes::from("v"))]));
    assert_eq!(one.digest, expected);
    let other_key = DigestKey::from_bytes(&[1u8; 32])
        .unwrap()
        .digest(&BTreeMap::from([("k".to_owned(), SecretBytes::from("v"))]));
    assert_ne!(one.digest, other_key);
}

#[tokio::test]
async fn rotation_syncs_first_and_on_change_and_reports_unchanged_data() {
    let f = fixture(FakeKms::default().text("a", "v1-data"));
    let spec = es("  data:\n    - {key: a, secretStoreRef: {name: kms}}\n");
    let first = f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    assert_eq!(first.rotation.action, RotationAction::Sync);
    assert_eq!(
        first.rotation.reason,
        "initial sync: the Secret does not exist yet"
    );
    let current = CurrentState {
        digest: Some(first.digest.clone()),
        version: Some(first.version.clone()),
        synced_at: Some(at(1_000)),
    };
    let same = f
        .pipeline
        .sync(&spec, &f.env, Some(&current))
        .await
        .unwrap();
    assert_eq!(same.rotation.action, RotationAction::Unchanged);
    assert!(!same.rotation.should_write());

    f.kms
        .set("a", vec![text_version("v2", &["ACSCurrent"], "v2-data")]);
    f.pipeline.cache().clear();
    let changed = f
        .pipeline
        .sync(&spec, &f.env, Some(&current))
        .await
        .unwrap();
    assert_eq!(changed.rotation.action, RotationAction::Sync);
    assert_eq!(changed.rotation.reason, "data changed");
    assert_eq!(changed.version, "v2");
}

#[tokio::test]
async fn a_rotate_rule_can_defer_a_young_version_and_skip_an_unstaged_one() {
    let f = fixture(FakeKms::default().with(
        "a",
        vec![Version {
            create_time: "2026-01-01T00:00:00Z",
            ..text_version("v2", &["ACSCurrent"], "new")
        }],
    ));
    let spec = es(
        "  data:\n    - {key: a, secretStoreRef: {name: kms}}\n  rules:\n    - name: canary\n      module: {builtin: rotate-default}\n      config: {minAgeMinutes: 90}\n",
    );
    let current = CurrentState {
        digest: Some("hmac-sha256:old".into()),
        version: Some("v1".into()),
        synced_at: Some(at(0)),
    };
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
    let out = f
        .pipeline
        .sync_at(&spec, &f.env, Some(&current), now)
        .await
        .unwrap();
    assert_eq!(out.rotation.action, RotationAction::Defer);
    assert_eq!(out.rotation.requeue_after, Some(Duration::from_secs(1800)));
    assert_eq!(
        out.rotation.decided_by.as_deref(),
        Some("spec.rules[0] (canary)")
    );
    assert!(
        out.rotation
            .reason
            .starts_with("version v2 is younger than 90 minutes"),
        "{}",
        out.rotation.reason
    );
    // Later it syncs; and the first sync is never held back.
    let later = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
    let out = f
        .pipeline
        .sync_at(&spec, &f.env, Some(&current), later)
        .await
        .unwrap();
    assert_eq!(out.rotation.action, RotationAction::Sync);
    let out = f.pipeline.sync_at(&spec, &f.env, None, now).await.unwrap();
    assert_eq!(out.rotation.action, RotationAction::Sync);

    let staged = es(
        "  data:\n    - {key: a, secretStoreRef: {name: kms}}\n  rules:\n    - module: {builtin: rotate-default}\n      config: {requireStage: ACSPending}\n",
    );
    let out = f
        .pipeline
        .sync_at(&staged, &f.env, Some(&current), later)
        .await
        .unwrap();
    assert_eq!(out.rotation.action, RotationAction::Skip);
    assert_eq!(out.rotation.reason, "version v2 is not in stage ACSPending");
}

#[tokio::test]
async fn many_external_secrets_naming_few_secrets_make_one_call_per_secret() {
    let mut kms = FakeKms::default();
    for i in 0..5 {
        kms = kms.text(&format!("s{i}"), "x");
    }
    let f = fixture(kms);
    let specs: Vec<ExternalSecret> = (0..50)
        .map(|i| {
            es(&format!(
                "  data:\n    - {{key: s{}, secretStoreRef: {{name: kms}}}}\n",
                i % 5
            ))
        })
        .collect();
    let syncs = specs.iter().map(|e| f.pipeline.sync(e, &f.env, None));
    for r in futures::future::join_all(syncs).await {
        r.unwrap();
    }
    assert_eq!(f.kms.total.load(Ordering::SeqCst), 5);
    for i in 0..5 {
        assert_eq!(f.kms.calls(&format!("s{i}")), 1);
    }
    let stats = f.pipeline.cache().stats();
    assert_eq!(stats.fetches, 5);
    assert_eq!(stats.hits + stats.coalesced, 45);
}

#[tokio::test(start_paused = true)]
async fn concurrent_syncs_of_one_key_share_one_call_and_values_expire_after_max_age() {
    let kms = FakeKms {
        delay: Some(Duration::from_millis(500)),
        ..FakeKms::default()
    }
    .text("slow", "v");
    let f = fixture_with(
        kms,
        PipelineConfig::default(),
        FetchCache::new(FetchCacheConfig {
            max_age: Duration::from_secs(60),
            ..FetchCacheConfig::default()
        }),
    );
    let spec = es("  data:\n    - {key: slow, secretStoreRef: {name: kms}}\n");
    let (a, b, c) = tokio::join!(
        f.pipeline.sync(&spec, &f.env, None),
        f.pipeline.sync(&spec, &f.env, None),
        f.pipeline.sync(&spec, &f.env, None)
    );
    for r in [a, b, c] {
        assert_eq!(text(&r.unwrap(), "slow"), "v");
    }
    assert_eq!(f.kms.calls("slow"), 1);
    assert_eq!(f.pipeline.cache().stats().coalesced, 2);
    tokio::time::advance(Duration::from_secs(30)).await;
    f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    assert_eq!(f.kms.calls("slow"), 1, "still fresh");
    tokio::time::advance(Duration::from_secs(31)).await;
    f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    assert_eq!(f.kms.calls("slow"), 2, "expired after max_age");
}

#[tokio::test]
async fn a_disabled_cache_calls_every_time_and_failures_are_not_cached() {
    let f = fixture_with(
        FakeKms::default().text("a", "v"),
        PipelineConfig::default(),
        FetchCache::disabled(),
    );
    let spec = es("  data:\n    - {key: a, secretStoreRef: {name: kms}}\n");
    for _ in 0..3 {
        f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    }
    assert_eq!(f.kms.calls("a"), 3);

    let f = fixture(FakeKms::default());
    let spec = es("  data:\n    - {key: later, secretStoreRef: {name: kms}}\n");
    assert!(f.pipeline.sync(&spec, &f.env, None).await.is_err());
    f.kms
        .set("later", vec![text_version("v1", &["ACSCurrent"], "now")]);
    let out = f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    assert_eq!(text(&out, "later"), "now");
    assert_eq!(f.kms.calls("later"), 2);
}

#[tokio::test]
async fn invalidating_a_store_forgets_its_values() {
    let f = fixture(FakeKms::default().text("a", "v"));
    let spec = es("  data:\n    - {key: a, secretStoreRef: {name: kms}}\n");
    f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    assert_eq!(f.kms.calls("a"), 1);
    f.pipeline
        .cache()
        .invalidate_store(&crate::stores::StoreIdentity {
            kind: crate::api::StoreKind::SecretStore,
            namespace: Some("default".into()),
            name: "kms".into(),
            uid: None,
            generation: None,
        });
    f.pipeline.sync(&spec, &f.env, None).await.unwrap();
    assert_eq!(f.kms.calls("a"), 2);
}

#[tokio::test]
async fn rule_contexts_and_compat_configs_describe_the_entry() {
    let e = es(
        "  data:\n    - {key: db, name: pw}\n  dataProcess:\n    - extract: {key: env}\n      replaceRule: [{source: a, target: b}]\n",
    );
    let ctx = rule_context(&e, EntryRef::data(0)).unwrap();
    assert_eq!(ctx.namespace, "default");
    assert_eq!(ctx.external_secret, "app");
    assert_eq!(ctx.labels["team"], "a");
    assert_eq!(ctx.item.field, "data");
    assert_eq!(ctx.item.key, "db");
    assert_eq!(ctx.item.name.as_deref(), Some("pw"));
    let ctx = rule_context(&e, EntryRef::data_process(0)).unwrap();
    assert_eq!(
        (ctx.item.field.as_str(), ctx.item.index, ctx.item.name),
        ("dataProcess", 0, None)
    );
    assert!(rule_context(&e, EntryRef::data(5)).is_none());
    assert_eq!(compat_rule(&e, EntryRef::data(0)), None);
    assert_eq!(
        compat_rule(&e, EntryRef::data_process(0)),
        Some((
            "extract",
            serde_json::json!({"replaceRule": [{"source": "a", "target": "b"}]})
        ))
    );
}

#[tokio::test]
async fn syncs_run_on_spawned_tasks_as_the_controller_runs_them() {
    let f = fixture(FakeKms::default().text("a", "v"));
    let pipeline = Arc::new(f.pipeline);
    let env = Arc::new(f.env);
    let spec = es("  data:\n    - {key: a, secretStoreRef: {name: kms}}\n");
    let task = tokio::spawn({
        let (pipeline, env) = (pipeline.clone(), env.clone());
        async move { pipeline.sync(&spec, env.as_ref(), None).await }
    });
    let out = task.await.unwrap().unwrap();
    assert_eq!(text(&out, "a"), "v");
}
