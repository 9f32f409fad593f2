//! `kmsync rules ...` as an author runs it: exit codes and what is printed.

use std::path::Path;
use std::process::{Command, Output};

fn kmsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kmsync"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn rules_test_passes_the_builtin_case_files_and_exits_0() {
    let out = kmsync(&[
        "rules",
        "test",
        "rules/jmespath/cases.yaml",
        "rules/filter/cases.yaml",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("  ok    ack's README example [transform"),
        "{stdout}"
    );
    assert!(stdout.ends_with("11 passed, 0 failed\n"), "{stdout}");
}

#[test]
fn rules_test_shows_a_diff_and_exits_1_on_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.yaml");
    std::fs::write(
        &file,
        "module: builtin:extract\ncases:\n  - name: off by one\n    secretJson: {a: \"1\"}\n    expect:\n      output: {data: {a: \"2\"}}\n",
    )
    .unwrap();
    let out = kmsync(&["rules", "test", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("  FAIL  off by one [transform]"),
        "{stdout}"
    );
    assert!(stdout.contains("        -     \"a\": \"2\"\n"), "{stdout}");
    assert!(stdout.contains("        +     \"a\": \"1\"\n"), "{stdout}");
    assert!(stdout.ends_with("0 passed, 1 failed\n"), "{stdout}");
}

#[test]
fn rules_run_prints_output_logs_and_stats_and_reports_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(&input, "{}").unwrap();

    let out = kmsync(&[
        "rules",
        "run",
        "host/tests/fixtures/rules/ok.wat",
        "--hook",
        "transform",
        "--input",
        input.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json, serde_json::json!({"data": {"greeting": "hello"}}));
    assert!(stderr.contains("log [info] hello world"), "{stderr}");
    assert!(stderr.contains("peak memory: 0.1 MiB"), "{stderr}");

    let out = kmsync(&[
        "rules",
        "run",
        "host/tests/fixtures/rules/loop.wat",
        "--hook",
        "transform",
        "--input",
        input.to_str().unwrap(),
        "--deadline-ms",
        "30",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error (timeout): rule loop exceeded its 30 ms deadline"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rules_inspect_shows_metadata_or_why_a_module_is_refused() {
    let out = kmsync(&["rules", "inspect", "builtin:rotate-default"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("name:        rotate-default"), "{stdout}");
    assert!(
        stdout.contains("hooks:       rotate, validate_config"),
        "{stdout}"
    );

    let out = kmsync(&["rules", "inspect", "host/tests/fixtures/rules/wasi.wat"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout)
            .contains("status:      refused: the module imports `wasi_snapshot_preview1.fd_write`"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn rules_envelope_builds_an_input_from_a_sample_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("db-account.json");
    std::fs::write(&secret, r#"{"AccountName":"app","AccountPassword":"pw"}"#).unwrap();
    let out = kmsync(&[
        "rules",
        "envelope",
        "--secret-json",
        secret.to_str().unwrap(),
        "--secret-type",
        "Rds",
        "--namespace",
        "shop",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["secret"]["name"], "db-account");
    assert_eq!(doc["secret"]["type"], "Rds");
    assert_eq!(doc["context"]["namespace"], "shop");

    let out = kmsync(&[
        "rules",
        "envelope",
        "--hook",
        "filter",
        "--secret-json",
        secret.to_str().unwrap(),
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["keys"],
        serde_json::json!(["AccountName", "AccountPassword"])
    );
    assert!(
        !text(&out.stdout).contains("\"pw\""),
        "filter inputs carry no values"
    );
}

#[test]
fn rules_envelope_builds_the_context_and_config_from_an_external_secret_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("value.json");
    std::fs::write(
        &secret,
        r#"{"name":"tom","friends":[{"name":"lily"},{"name":"mark"}]}"#,
    )
    .unwrap();
    let manifests = "examples/quickstart/external-secrets.yaml";
    let envelope = |extra: &[&str]| {
        let mut args = vec![
            "rules",
            "envelope",
            "--secret-json",
            secret.to_str().unwrap(),
            "--external-secret-file",
            manifests,
        ];
        args.extend_from_slice(extra);
        kmsync(&args)
    };

    // The jmesPath entry: its context, key, version and the built-in jmespath config.
    let out = envelope(&["--external-secret", "es-json-demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["secret"]["name"], "test1");
    assert_eq!(doc["secret"]["versionId"], "v1");
    assert_eq!(
        doc["context"],
        serde_json::json!({"namespace": "default", "externalSecret": "es-json-demo",
            "labels": {}, "annotations": {},
            "item": {"field": "data", "index": 0, "key": "test1"}})
    );
    assert_eq!(
        doc["config"],
        serde_json::json!({"jmesPath": [{"path": "name", "objectAlias": "name"},
            {"path": "friends[0].name", "objectAlias": "friendname"}]})
    );
    assert!(text(&out.stderr).contains("config: the built-in jmespath rule's, from spec.data[0]"));
    // ... which the built-in rule runs as the pipeline would.
    let input = dir.path().join("input.json");
    std::fs::write(&input, &out.stdout).unwrap();
    let run = kmsync(&[
        "rules",
        "run",
        "builtin:jmespath",
        "--hook",
        "transform",
        "--input",
        input.to_str().unwrap(),
    ]);
    let result: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        result,
        serde_json::json!({"data": {"name": "tom", "friendname": "lily"}})
    );

    // A dataProcess entry gets the extract config; --rule picks a spec.rules config.
    let out = envelope(&[
        "--external-secret",
        "extract-secret",
        "--item",
        "dataProcess[0]",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["context"]["item"]["field"], "dataProcess");
    assert_eq!(doc["config"]["replaceRule"][1]["target"], "ack");
    let out = envelope(&["--external-secret", "database", "--rule", "rds-account"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["secret"]["name"], "rds-app");
    assert_eq!(doc["config"]["keys"]["password"], "DB_PASSWORD");
    assert_eq!(doc["context"]["item"]["name"], "rds-app");

    // Mistakes are named.
    let out = envelope(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("5 ExternalSecrets; pick one with --external-secret NAME"),
        "{}",
        text(&out.stderr)
    );
    let out = envelope(&["--external-secret", "plain", "--item", "data[7]"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ExternalSecret default/plain has no spec.data[7]"),
        "{}",
        text(&out.stderr)
    );
    let out = envelope(&["--external-secret", "plain", "--item", "things[0]"]);
    assert!(
        text(&out.stderr).contains("--item \"things[0]\": expected data[N] or dataProcess[N]"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rules_list_names_every_builtin() {
    let out = kmsync(&["rules", "list"]);
    let stdout = text(&out.stdout);
    for name in [
        "extract",
        "filter",
        "jmespath",
        "managed-credentials",
        "rotate-default",
    ] {
        assert!(stdout.contains(&format!("builtin:{name} ")), "{stdout}");
    }
}
