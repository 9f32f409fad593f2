//! The built-in rules and the example, as compiled wasm, through the real engine: every
//! `rules/<name>/cases.yaml` passes, and the typed API the sync pipeline uses works.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kmsync::rules::cases::{self, CaseReport};
use kmsync::rules::{
    Hook, RotateAction, RuleEngine, RuleLimits, TransformInput, builtin, read_metadata,
};
use serde_json::json;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// An engine with the default limits but a deadline no loaded machine misses: these tests
/// check what the rules compute, not how fast (the deadline itself is tested in
/// `rules_hostile.rs`).
fn engine() -> RuleEngine {
    RuleEngine::new(RuleLimits {
        deadline: Duration::from_secs(10),
        ..RuleLimits::default()
    })
    .unwrap()
}

fn explain(report: &CaseReport) -> String {
    report
        .outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("FAIL {}\n{}", o.name, o.detail.as_deref().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_passes_its_case_file() {
    let engine = engine();
    let files = cases::builtin_case_files(&workspace());
    assert_eq!(
        files.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [
            "extract",
            "filter",
            "jmespath",
            "managed-credentials",
            "rotate-default"
        ]
    );
    for (name, file) in files {
        let report = cases::run_file(&engine, &file, None).await.unwrap();
        assert!(report.outcomes.len() >= 4, "{name}: too few cases");
        assert_eq!(report.failed(), 0, "{name}:\n{}", explain(&report));
        assert_eq!(report.module, format!("builtin:{name}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_rule_passes_its_case_file() {
    let engine = engine();
    let module = concat!(env!("OUT_DIR"), "/kmsync_example_connection_string.wasm");
    let file = workspace().join("rules/examples/connection-string/cases.yaml");
    let report = cases::run_file(&engine, &file, Some(module)).await.unwrap();
    assert_eq!(report.outcomes.len(), 4);
    assert_eq!(report.failed(), 0, "{}", explain(&report));
    // The rule logs one line per transform, without the password.
    let logs = &report.outcomes[0].stats.logs;
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].message,
        "built DATABASE_URL for pg.internal:5432 database orders (secret version v2)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_case_is_reported_with_a_diff() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.yaml");
    std::fs::write(
        &file,
        r#"
module: builtin:extract
cases:
  - name: wrong expectation
    secretJson: {a: "1", b: "2"}
    expect:
      output: {data: {a: "1", b: "3"}}
  - name: expected an error
    secretJson: {a: "1"}
    expect:
      error: {kind: rule}
"#,
    )
    .unwrap();
    let report = cases::run_file(&engine, &file, None).await.unwrap();
    assert_eq!((report.passed(), report.failed()), (0, 2));
    assert_eq!(
        report.outcomes[0].detail.as_deref().unwrap(),
        "--- expected\n+++ actual\n  {\n    \"data\": {\n      \"a\": \"1\",\n-     \"b\": \"3\"\n+     \"b\": \"2\"\n    }\n  }\n"
    );
    assert!(
        report.outcomes[1]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("expected an error, got the output:")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_load_with_matching_metadata() {
    let engine = engine();
    for name in builtin::names() {
        let wasm = builtin::wasm(name).unwrap();
        let meta = read_metadata(wasm).unwrap();
        assert_eq!(meta.name, name);
        assert_eq!(meta.abi, "1.0");
        let module = engine.builtin(name).await.unwrap();
        assert_eq!(module.name(), name);
        assert_eq!(module.metadata(), &meta);
        let imports = &module.info().imports;
        assert!(
            imports.contains(&"kmsync.panic".to_owned()),
            "{name}: {imports:?}"
        );
        assert!(
            imports
                .iter()
                .all(|i| i == "kmsync.panic" || i == "kmsync.log"),
            "{name}: {imports:?}"
        );
        assert!(module.implements(Hook::ValidateConfig), "{name}");
        assert!(wasm.len() < 400 << 10, "{name} is {} bytes", wasm.len());
    }
    let err = engine.builtin("nope").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "there is no built-in rule named `nope` (built-ins: extract, filter, jmespath, managed-credentials, rotate-default)"
    );
    engine.preload_builtins().await.unwrap();
    assert_eq!(engine.cached_modules(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_api_returns_secret_bytes_and_decisions() {
    let engine = engine();
    let jmespath = engine.builtin("jmespath").await.unwrap();
    let mut input: TransformInput =
        kmsync_guest_sdk::testing::secret(r#"{"name":"tom","friends":[{"name":"lily"}]}"#);
    input.config = json!({"jmesPath": [
        {"path": "name", "objectAlias": "name"},
        {"path": "friends[0].name", "objectAlias": "friendname"}
    ]});
    let out = jmespath.transform(&input).await.unwrap();
    assert_eq!(out.data.len(), 2);
    assert_eq!(out.data["friendname"].expose(), b"lily");
    assert_eq!(
        format!("{:?}", out.data["name"]),
        "SecretBytes(<redacted, 3 bytes>)"
    );

    let err = jmespath
        .validate_config(&json!({"jmesPath": [{"path": "a[", "objectAlias": "x"}]}))
        .await
        .unwrap_err();
    assert_eq!(err.rule_code(), Some("invalid_config"));

    let rotate = engine.builtin("rotate-default").await.unwrap();
    let decision = rotate
        .rotate(
            &serde_json::from_value(json!({
                "current": {"versionId": "v1", "digest": "a", "syncedAt": "2026-01-01T00:00:00Z"},
                "candidate": {"versionId": "v2", "versionStages": ["ACSCurrent"], "digest": "b"},
                "now": "2026-01-02T00:00:00Z",
                "context": kmsync_guest_sdk::testing::context(),
                "config": {"restart": true}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(decision.action, RotateAction::Sync);
    assert!(decision.restart);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_errors_never_carry_secret_values() {
    let engine = engine();
    let marker = "MARKER-hunter2-value";
    let cases = [
        (
            "jmespath",
            format!(r#"{{"a":"{marker}"}}"#),
            json!({"jmesPath": [{"path": "b", "objectAlias": "b"}]}),
        ),
        (
            "jmespath",
            format!("not json {marker}"),
            json!({"jmesPath": [{"path": "b", "objectAlias": "b"}]}),
        ),
        (
            "extract",
            format!(r#"{{"bad key":"{marker}"}}"#),
            json!(null),
        ),
        ("extract", format!("[\"{marker}\"]"), json!(null)),
        (
            "managed-credentials",
            format!(r#"{{"AccountName":"{marker}"}}"#),
            json!({"secretType": "Rds"}),
        ),
        (
            "managed-credentials",
            format!(r#"{{"AccountName":1,"AccountPassword":"{marker}"}}"#),
            json!({"secretType": "Rds"}),
        ),
    ];
    for (rule, data, config) in cases {
        let module = engine.builtin(rule).await.unwrap();
        let mut input = kmsync_guest_sdk::testing::secret(&data);
        input.config = config;
        let err = module.transform(&input).await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{rule}: {text}");
    }
}
