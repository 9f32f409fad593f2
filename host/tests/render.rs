//! The real `kmsync render` binary: the quickstart with exact values, redaction, every bad
//! input as one clear stderr line with exit code 1, ack-secret-manager's README examples,
//! one KMS call per distinct secret, and no secret value in any output.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_kmsync");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs `kmsync render ARGS` in the repository root with a clean credential environment.
fn render(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("render")
        .args(args)
        .current_dir(repo_root())
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
        .env_remove("ALIBABA_CLOUD_REGION_ID")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kmsync render starts");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().expect("kmsync render finishes")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The Secrets of a `-o json` run, by name: data values decoded.
fn secrets_by_name(
    out: &Output,
) -> BTreeMap<String, (serde_json::Value, BTreeMap<String, Vec<u8>>)> {
    let list: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)));
    assert_eq!(list["kind"], "List");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let data = s["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap())
                        .unwrap();
                    (k.clone(), bytes)
                })
                .collect();
            (
                s["metadata"]["name"].as_str().unwrap().to_owned(),
                (s.clone(), data),
            )
        })
        .collect()
}

fn text_data(data: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&str, String> {
    data.iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8(v.clone()).unwrap()))
        .collect()
}

const QUICKSTART: &str = "examples/quickstart";
const QUICKSTART_SEED: &str = "examples/quickstart/kms-seed.yaml";

#[test]
fn the_quickstart_renders_the_exact_secret_values() {
    let out = render(
        &[
            "-f",
            QUICKSTART,
            "--emulator",
            QUICKSTART_SEED,
            "--show-values",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let secrets = secrets_by_name(&out);
    assert_eq!(
        secrets.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "database-credentials",
            "database-url",
            "es-json-demo",
            "extract-secret",
            "plain"
        ]
    );
    let (plain, data) = &secrets["plain"];
    assert_eq!(plain["type"], "Opaque");
    assert_eq!(plain["metadata"]["namespace"], "default");
    assert_eq!(data["greeting"], b"hello from the kmsync emulator");
    assert_eq!(data["blob.bin"], b"\x00\x01\x02\xfe\xffkmsync");
    assert_eq!(
        text_data(&secrets["es-json-demo"].1),
        BTreeMap::from([
            ("friendname", "lily".to_owned()),
            ("name", "tom".to_owned())
        ])
    );
    assert_eq!(
        text_data(&secrets["extract-secret"].1),
        BTreeMap::from([
            ("ack", r#"[{"name":"lily"},{"name":"mark"}]"#.to_owned()),
            ("alibabacloud", "tom".to_owned()),
        ])
    );
    let (db, data) = &secrets["database-credentials"];
    assert_eq!(
        text_data(data),
        BTreeMap::from([("DB_PASSWORD", "rds-password-not-real".to_owned())])
    );
    assert_eq!(db["metadata"]["labels"]["app"], "web");
    assert_eq!(
        text_data(&secrets["database-url"].1),
        BTreeMap::from([
            ("url", "postgres://app:new-password@db:5432/app".to_owned()),
            (
                "url-previous",
                "postgres://app:old-password@db:5432/app".to_owned()
            ),
            (
                "url-v2",
                "postgres://app:new-password@db:5432/app".to_owned()
            ),
        ])
    );
}

/// Every value of the quickstart, as bytes.
const QUICKSTART_VALUES: &[&[u8]] = &[
    b"hello from the kmsync emulator",
    b"\x00\x01\x02\xfe\xffkmsync",
    b"lily",
    b"rds-password-not-real",
    b"postgres://app:new-password@db:5432/app",
    b"postgres://app:old-password@db:5432/app",
    br#"[{"name":"lily"},{"name":"mark"}]"#,
];

#[test]
fn without_show_values_output_holds_key_names_and_sizes_but_no_value_bytes() {
    for format in ["yaml", "json"] {
        let out = render(
            &[
                "-f",
                QUICKSTART,
                "--emulator",
                QUICKSTART_SEED,
                "-o",
                format,
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let text = format!("{}{}", stdout(&out), stderr(&out));
        for value in QUICKSTART_VALUES {
            let plain = String::from_utf8_lossy(value);
            assert!(
                !text.contains(plain.as_ref()),
                "{format}: {plain:?} leaked:\n{text}"
            );
            assert!(
                !text.contains(&b64(value)),
                "{format}: base64 of {plain:?} leaked"
            );
        }
        assert!(text.contains("<redacted: 30 bytes>"), "{text}");
        assert!(text.contains("greeting"), "{text}");
        assert!(text.contains("url-previous"), "{text}");
        if format == "yaml" {
            assert!(text.contains("# values redacted; run with --show-values to print them"));
        }
    }
}

#[test]
fn the_readme_command_prints_exactly_what_the_readme_shows() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let command = "cargo run -p kmsync -- render -f examples/quickstart --emulator examples/quickstart/kms-seed.yaml";
    assert!(readme.contains(command), "README does not show {command}");
    // The block after the command holds the expected output.
    let after = &readme[readme.find(command).unwrap()..];
    let start = after.find("```yaml\n").expect("an expected-output block") + "```yaml\n".len();
    let expected = &after[start..start + after[start..].find("```").unwrap()];
    let out = render(&["-f", QUICKSTART, "--emulator", QUICKSTART_SEED], None);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), expected);
}

/// A seed with values that must never show up in errors or logs.
const MARKER_SEED: &str = r#"
access_keys:
  - {id: render-ak, secret: render-sk-marker-0}
secrets:
  - {name: json-doc, json: {user: app, password: pw-marker-1}}
  - {name: not-json, text: "password=pw-marker-2"}
  - {name: bad-keys, json: {"a b": pw-marker-3}}
  - name: staged
    versions:
      - {id: v1, text: old-marker-4, stages: [ACSPrevious]}
      - {id: v2, text: new-marker-5, stages: [ACSCurrent]}
"#;

const MARKERS: &[&str] = &[
    "render-sk-marker-0",
    "pw-marker-1",
    "pw-marker-2",
    "pw-marker-3",
    "old-marker-4",
    "new-marker-5",
];

fn bad_input_manifests(dir: &Path) {
    let looping = wat::parse_file(format!(
        "{}/tests/fixtures/rules/loop.wat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let loop_sha = hex::encode(Sha256::digest(&looping));
    let es = |name: &str, ns: &str, spec: &str| {
        format!(
            "---\napiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}"
        )
    };
    let mut docs = vec![
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: default}}\nstringData: {{id: render-ak, secret: render-sk-marker-0}}\n"
        ),
        "---\napiVersion: alibabacloud.com/v1alpha1\nkind: SecretStore\nmetadata: {name: s, namespace: default}\nspec:\n  KMS:\n    KMSAuth:\n      accessKey: {name: creds, key: id}\n      accessKeySecret: {name: creds, key: secret}\n".to_owned(),
        "---\napiVersion: alibabacloud.com/v1alpha1\nkind: SecretStore\nmetadata: {name: no-secret, namespace: default}\nspec:\n  KMS:\n    KMSAuth:\n      accessKey: {name: missing, key: id}\n      accessKeySecret: {name: missing, key: secret}\n".to_owned(),
        "---\napiVersion: alibabacloud.com/v1alpha1\nkind: SecretStore\nmetadata: {name: no-key, namespace: default}\nspec:\n  KMS:\n    KMSAuth:\n      accessKey: {name: creds, key: id}\n      accessKeySecret: {name: creds, key: nope}\n".to_owned(),
        format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: rules, namespace: default}}\nbinaryData: {{loop.wasm: {}}}\n",
            b64(&looping)
        ),
        es("good", "default", "  data:\n    - {key: json-doc, name: doc, secretStoreRef: {name: s}}\n"),
        es("unknown-store", "default", "  data:\n    - {key: json-doc, secretStoreRef: {name: nope}}\n"),
        es("cross-namespace", "team-a", "  data:\n    - {key: json-doc, secretStoreRef: {name: s, namespace: default}}\n"),
        es("missing-credential-secret", "default", "  data:\n    - {key: json-doc, secretStoreRef: {name: no-secret}}\n"),
        es("missing-credential-key", "default", "  data:\n    - {key: json-doc, secretStoreRef: {name: no-key}}\n"),
        es("secret-not-found", "default", "  data:\n    - {key: json-doc, secretStoreRef: {name: s}}\n    - {key: no-such-secret, name: x, secretStoreRef: {name: s}}\n"),
        es("stage-not-found", "default", "  data:\n    - {key: staged, versionStage: ACSPending, secretStoreRef: {name: s}}\n"),
        es("not-json", "default", "  data:\n    - key: not-json\n      secretStoreRef: {name: s}\n      jmesPath: [{path: password, objectAlias: password}]\n"),
        es("path-matches-nothing", "default", "  data:\n    - key: json-doc\n      secretStoreRef: {name: s}\n      jmesPath: [{path: db.host, objectAlias: host}]\n"),
        es("bad-regex", "default", "  dataProcess:\n    - extract: {key: json-doc, secretStoreRef: {name: s}}\n      replaceRule: [{source: \"(\", target: x}]\n"),
        es("bad-key", "default", "  dataProcess:\n    - extract: {key: bad-keys, secretStoreRef: {name: s}}\n"),
        es("same-key", "default", "  data:\n    - {key: staged, name: user, secretStoreRef: {name: s}}\n  dataProcess:\n    - extract: {key: json-doc, secretStoreRef: {name: s}}\n"),
        es("module-missing", "default", &format!("  data:\n    - {{key: json-doc, secretStoreRef: {{name: s}}}}\n  rules:\n    - module: {{configMap: {{name: absent, key: loop.wasm}}, sha256: \"{loop_sha}\"}}\n")),
        es("sha-mismatch", "default", &format!("  data:\n    - {{key: json-doc, secretStoreRef: {{name: s}}}}\n  rules:\n    - module: {{configMap: {{name: rules, key: loop.wasm}}, sha256: \"{}\"}}\n", "ab".repeat(32))),
        es("rule-timeout", "default", &format!("  data:\n    - {{key: json-doc, secretStoreRef: {{name: s}}}}\n  rules:\n    - name: spin\n      module: {{configMap: {{name: rules, key: loop.wasm}}, sha256: \"{loop_sha}\"}}\n")),
    ];
    docs.push(String::new());
    std::fs::write(dir.join("bad.yaml"), docs.join("")).unwrap();
    std::fs::write(dir.join("seed.yml.txt"), MARKER_SEED).unwrap();
}

#[test]
fn every_bad_input_is_one_line_naming_the_object_and_field_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    bad_input_manifests(dir.path());
    let seed = dir.path().join("seed.yml.txt");
    let out = render(
        &[
            "-f",
            dir.path().to_str().unwrap(),
            "--emulator",
            seed.to_str().unwrap(),
            "--rule-timeout",
            "50ms",
            "--show-values",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    // The good one is still rendered.
    let secrets = secrets_by_name(&out);
    assert_eq!(secrets.keys().collect::<Vec<_>>(), ["good"]);
    assert_eq!(
        String::from_utf8(secrets["good"].1["doc"].clone()).unwrap(),
        r#"{"password":"pw-marker-1","user":"app"}"#
    );

    let err = stderr(&out);
    let lines: BTreeMap<&str, &str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("error: ExternalSecret "))
        .map(|l| l.split_once(": ").unwrap())
        .collect();
    let expect = |object: &str, prefix: &str| {
        let line = lines
            .get(object)
            .unwrap_or_else(|| panic!("no error line for {object}:\n{err}"));
        assert!(
            line.starts_with(prefix),
            "{object}:\n  got      {line}\n  expected {prefix}..."
        );
    };
    expect(
        "default/unknown-store",
        "spec.data[0].secretStoreRef: SecretStore default/nope does not exist",
    );
    expect(
        "team-a/cross-namespace",
        "spec.data[0]: secretStoreRef names SecretStore default/s, but an ExternalSecret in namespace \"team-a\" may only use SecretStores in its own namespace (start kmsync with --enable-cross-namespace-secret-store to allow this)",
    );
    expect(
        "default/missing-credential-secret",
        "spec.data[0]: SecretStore default/no-secret is not ready: credentials could not be set up: spec.KMS.KMSAuth.accessKey: Secret default/missing does not exist",
    );
    expect(
        "default/missing-credential-key",
        "spec.data[0]: SecretStore default/no-key is not ready: credentials could not be set up: spec.KMS.KMSAuth.accessKeySecret: Secret default/creds has no key \"nope\"",
    );
    expect(
        "default/secret-not-found",
        "spec.data[1]: secret \"no-such-secret\" not found: ",
    );
    expect(
        "default/stage-not-found",
        "spec.data[0]: secret \"staged\" stage \"ACSPending\" not found: ",
    );
    expect(
        "default/not-json",
        "spec.data[0] (secret \"not-json\"): rule jmespath failed: not_json: secret not-json is not JSON (expected value at line 1 column 1), so jmesPath can not be applied",
    );
    expect(
        "default/path-matches-nothing",
        "spec.data[0] (secret \"json-doc\"): rule jmespath failed: path_not_found: jmesPath[0].path \"db.host\" matched nothing in secret json-doc (objectAlias host)",
    );
    expect(
        "default/bad-regex",
        "spec.dataProcess[0].replaceRule[0].source: invalid regular expression \"(\": unclosed group",
    );
    expect(
        "default/bad-key",
        "spec.dataProcess[0].extract (secret \"bad-keys\"): rule extract failed: invalid_key: key \"a b\" of secret bad-keys becomes \"a b\", which is not a valid Secret key",
    );
    expect(
        "default/same-key",
        "Secret key \"user\" is written by both spec.data[0] and spec.dataProcess[0].extract",
    );
    expect(
        "default/module-missing",
        "spec.rules[0] (absent/loop.wasm): ConfigMap default/absent does not exist",
    );
    expect(
        "default/sha-mismatch",
        &format!(
            "spec.rules[0] (rules/loop.wasm): the module in ConfigMap default/rules key \"loop.wasm\" has sha256 {}, but module.sha256 pins {}; refusing it",
            hex::encode(Sha256::digest(
                wat::parse_file(format!(
                    "{}/tests/fixtures/rules/loop.wat",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap()
            )),
            "ab".repeat(32)
        ),
    );
    expect(
        "default/rule-timeout",
        "spec.rules[0] (spin) on spec.data[0] (secret \"json-doc\"): rule loop exceeded its 50 ms deadline",
    );
    assert_eq!(lines.len(), 14, "{err}");
    for line in err.lines().filter(|l| l.starts_with("error: ")) {
        for marker in MARKERS {
            assert!(!line.contains(marker), "{marker} leaked: {line}");
        }
    }
}

#[test]
fn no_secret_value_appears_in_errors_or_debug_logs() {
    let dir = tempfile::tempdir().unwrap();
    bad_input_manifests(dir.path());
    let seed = dir.path().join("seed.yml.txt");
    let out = Command::new(BIN)
        .args([
            "render",
            "-f",
            dir.path().to_str().unwrap(),
            "--emulator",
            seed.to_str().unwrap(),
            "--rule-timeout",
            "50ms",
        ])
        // Everything kmsync logs, at every level; the engine's compiler internals stay quiet.
        .env("RUST_LOG", "trace,cranelift_frontend=warn,cranelift_codegen=warn,wasmtime=warn,wasmtime_cranelift=warn")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let everything = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        everything.contains("TRACE") || everything.contains("DEBUG"),
        "logs are on"
    );
    for marker in MARKERS {
        assert!(!everything.contains(marker), "{marker} leaked");
        assert!(
            !everything.contains(&b64(marker.as_bytes())),
            "base64 of {marker} leaked"
        );
    }
}

#[test]
fn manifests_are_read_from_stdin_and_usage_errors_exit_2() {
    let manifests =
        std::fs::read_to_string(repo_root().join("examples/quickstart/external-secrets.yaml"))
            .unwrap()
            + "\n---\n"
            + &std::fs::read_to_string(repo_root().join("examples/quickstart/secret-store.yaml"))
                .unwrap()
            + "\n---\n"
            + &std::fs::read_to_string(repo_root().join("examples/quickstart/credentials.yaml"))
                .unwrap();
    let out = render(
        &[
            "-f",
            "-",
            "--emulator",
            QUICKSTART_SEED,
            "--show-values",
            "-o",
            "json",
        ],
        Some(&manifests),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(secrets_by_name(&out).len(), 5);

    let out = render(&["--emulator", QUICKSTART_SEED], None);
    assert_eq!(out.status.code(), Some(2), "no -f is a usage error");
    let out = render(&["-f", QUICKSTART, "-o", "xml"], None);
    assert_eq!(out.status.code(), Some(2));

    let out = render(&["-f", "does/not/exist.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: reading does/not/exist.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_cluster_external_secret_renders_once_per_selected_namespace_through_a_cluster_store() {
    let manifests = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {tier: apps}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b, labels: {tier: apps}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: kmsync}
stringData: {id: quickstart, secret: quickstart-secret-not-real}
---
apiVersion: alibabacloud.com/v1alpha1
kind: ClusterSecretStore
metadata: {name: shared}
spec:
  conditions:
    - namespaceSelector: {matchLabels: {tier: apps}}
  keyNamePolicy: {allowedKeys: ["plain-text"]}
  KMS:
    KMSAuth:
      accessKey: {name: creds, namespace: kmsync, key: id}
      accessKeySecret: {name: creds, namespace: kmsync, key: secret}
---
apiVersion: alibabacloud.com/v1alpha1
kind: ClusterExternalSecret
metadata: {name: greeting}
spec:
  externalSecretName: hello
  externalSecretMetadata: {labels: {stamped: "yes"}}
  namespaceSelectors:
    - matchLabels: {tier: apps}
  externalSecretSpec:
    data:
      - {key: plain-text, name: greeting, secretStoreRef: {name: shared, kind: ClusterSecretStore}}
"#;
    let out = render(
        &[
            "-f",
            "-",
            "--emulator",
            QUICKSTART_SEED,
            "--show-values",
            "-o",
            "json",
        ],
        Some(manifests),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let placed: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metadata"]["namespace"].as_str().unwrap().to_owned(),
                s["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            ("team-a".to_owned(), "hello".to_owned()),
            ("team-b".to_owned(), "hello".to_owned())
        ]
    );
    assert_eq!(
        list["items"][0]["data"]["greeting"],
        b64(b"hello from the kmsync emulator")
    );

    // The store's conditions are enforced for namespaces it does not select.
    let out = render(
        &["-f", "-", "--emulator", QUICKSTART_SEED],
        Some(&manifests.replace(
            "- matchLabels: {tier: apps}\n  externalSecretSpec",
            "- matchLabels: {}\n  externalSecretSpec",
        )),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("error: ExternalSecret kube-system/hello: spec.data[0]: ClusterSecretStore shared may not be used from namespace \"kube-system\" (its spec.conditions do not select it)"),
        "{}",
        stderr(&out)
    );
}

/// A running `kmsync emulator` (plain HTTP), killed on drop.
struct EmulatorProcess {
    child: Child,
    kms_url: String,
    admin_url: String,
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator(seed: &Path) -> EmulatorProcess {
    let mut child = Command::new(BIN)
        .args(["emulator", "--seed"])
        .arg(seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let mut kms_url = String::new();
    let mut admin_url = String::new();
    for part in line
        .trim()
        .trim_start_matches("kmsync emulator ready ")
        .split(' ')
    {
        match part.split_once('=') {
            Some(("kms", v)) => kms_url = v.to_owned(),
            Some(("admin", v)) => admin_url = v.to_owned(),
            _ => {}
        }
    }
    EmulatorProcess {
        child,
        kms_url,
        admin_url,
    }
}

#[test]
fn fifty_external_secrets_naming_five_secrets_make_five_get_secret_value_calls() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = String::from("access_keys:\n  - {id: ak, secret: sk}\nsecrets:\n");
    for i in 0..5 {
        seed.push_str(&format!("  - {{name: shared-{i}, text: value-{i}}}\n"));
    }
    std::fs::write(dir.path().join("seed.txt"), &seed).unwrap();
    let emu = start_emulator(&dir.path().join("seed.txt"));
    let mut docs = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {id: ak, secret: sk}\n---\napiVersion: alibabacloud.com/v1alpha1\nkind: SecretStore\nmetadata: {name: s}\nspec:\n  KMS:\n    KMSAuth:\n      accessKey: {name: creds, key: id}\n      accessKeySecret: {name: creds, key: secret}\n",
    );
    for i in 0..50 {
        docs.push_str(&format!(
            "---\napiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata: {{name: es-{i:02}}}\nspec:\n  data:\n    - {{key: shared-{}, name: value, secretStoreRef: {{name: s}}}}\n",
            i % 5
        ));
    }
    std::fs::write(dir.path().join("many.yaml"), docs).unwrap();
    let out = render(
        &[
            "-f",
            dir.path().join("many.yaml").to_str().unwrap(),
            "--kms-endpoint",
            emu.kms_url.as_str(),
            "--show-values",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let secrets = secrets_by_name(&out);
    assert_eq!(secrets.len(), 50);
    assert_eq!(secrets["es-07"].1["value"], b"value-2");
    let counters = get_json(&format!("{}v1/counters", emu.admin_url));
    assert_eq!(counters["by_action"]["GetSecretValue"], 5, "{counters}");
    for i in 0..5 {
        assert_eq!(
            counters["get_secret_value_by_secret"][format!("shared-{i}")],
            1
        );
    }
}

/// A plain HTTP/1.0 GET of a JSON document (the admin API is plain HTTP on loopback).
fn get_json(url: &str) -> serde_json::Value {
    use std::io::Read as _;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    serde_json::from_str(body).unwrap()
}
