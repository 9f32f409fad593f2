//! The real `kmsync` binary: `kmsync emulator` prints its address when ready, and
//! `kmsync kms get-secret-value` against it redacts the value unless `--show-value`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_kmsync");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A running `kmsync emulator`, killed on drop.
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

fn start_emulator(extra: &[&str]) -> EmulatorProcess {
    let seed = repo_root().join("examples/quickstart/kms-seed.yaml");
    let mut child = Command::new(BIN)
        .arg("emulator")
        .arg("--seed")
        .arg(&seed)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kmsync emulator starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the ready line is printed");
    // Documented format: `kmsync emulator ready kms=<url> admin=<url>`
    let rest = line
        .trim()
        .strip_prefix("kmsync emulator ready ")
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
    let mut kms_url = None;
    let mut admin_url = None;
    for part in rest.split(' ') {
        match part.split_once('=') {
            Some(("kms", v)) => kms_url = Some(v.to_owned()),
            Some(("admin", v)) => admin_url = Some(v.to_owned()),
            _ => panic!("unexpected field {part:?} in {line:?}"),
        }
    }
    EmulatorProcess {
        child,
        kms_url: kms_url.unwrap(),
        admin_url: admin_url.unwrap(),
    }
}

fn get_secret_value(args: &[&str], key_secret: &str) -> Output {
    Command::new(BIN)
        .args(["kms", "get-secret-value"])
        .args(args)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "quickstart")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", key_secret)
        .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
        .env("RUST_LOG", "debug")
        .output()
        .expect("kmsync kms get-secret-value runs")
}

fn json_stdout(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn get_secret_value_against_the_emulator_redacts_unless_show_value() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let emu = start_emulator(&["--tls", "--ca-out", ca.to_str().unwrap()]);
    assert!(
        emu.kms_url.starts_with("https://127.0.0.1:"),
        "{}",
        emu.kms_url
    );
    assert!(
        emu.admin_url.starts_with("http://127.0.0.1:"),
        "{}",
        emu.admin_url
    );
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let secret = "quickstart-secret-not-real";
    let base = [
        "--endpoint",
        emu.kms_url.as_str(),
        "--ca-file",
        ca.to_str().unwrap(),
    ];

    let out = get_secret_value(&[&base[..], &["--secret-name", "test1"]].concat(), secret);
    let redacted = json_stdout(&out);
    assert_eq!(redacted["SecretName"], "test1");
    assert_eq!(redacted["VersionId"], "v1");
    assert_eq!(redacted["SecretDataType"], "text");
    assert_eq!(redacted["VersionStages"], serde_json::json!(["ACSCurrent"]));
    let data = redacted["SecretData"].as_str().unwrap();
    assert!(data.starts_with("<redacted: "), "{data}");
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !everything.contains("lily"),
        "the value leaked: {everything}"
    );
    assert!(
        !everything.contains(secret),
        "the AccessKeySecret leaked: {everything}"
    );

    let out = get_secret_value(
        &[&base[..], &["--secret-name", "test1", "--show-value"]].concat(),
        secret,
    );
    let shown = json_stdout(&out);
    let value: serde_json::Value =
        serde_json::from_str(shown["SecretData"].as_str().unwrap()).unwrap();
    assert_eq!(value["friends"][0]["name"], "lily");

    let out = get_secret_value(
        &[
            &base[..],
            &[
                "--secret-name",
                "binary-blob",
                "--show-value",
                "--signature-version",
                "v1",
            ],
        ]
        .concat(),
        secret,
    );
    let binary = json_stdout(&out);
    assert_eq!(binary["SecretDataType"], "binary");
    assert_eq!(binary["SecretData"], "AAEC/v9rbXN5bmM=");

    let out = get_secret_value(
        &[
            &base[..],
            &[
                "--secret-name",
                "app/database-url",
                "--version-stage",
                "ACSPrevious",
            ],
        ]
        .concat(),
        secret,
    );
    assert_eq!(json_stdout(&out)["VersionId"], "v1");

    let out = get_secret_value(
        &[&base[..], &["--secret-name", "test1"]].concat(),
        "wrong-secret-marker",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    assert!(!stderr.contains("wrong-secret-marker"), "{stderr}");

    // Without the pinned CA the emulator's certificate is not trusted.
    let out = get_secret_value(
        &[
            "--endpoint",
            emu.kms_url.as_str(),
            "--secret-name",
            "test1",
            "--max-attempts",
            "1",
        ],
        secret,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not connect"));
}

#[test]
fn get_secret_value_names_missing_credentials_and_refuses_non_alibaba_endpoints() {
    let out = Command::new(BIN)
        .args([
            "kms",
            "get-secret-value",
            "--endpoint",
            "http://127.0.0.1:9",
            "--secret-name",
            "x",
        ])
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ALIBABA_CLOUD_ACCESS_KEY_ID"), "{stderr}");

    let out = get_secret_value(
        &["--endpoint", "http://169.254.169.254", "--secret-name", "x"],
        "s",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only allowed for loopback"), "{stderr}");
}

#[test]
fn the_emulator_serves_plain_http_by_default() {
    let emu = start_emulator(&[]);
    assert!(
        emu.kms_url.starts_with("http://127.0.0.1:"),
        "{}",
        emu.kms_url
    );
    let out = get_secret_value(
        &[
            "--endpoint",
            emu.kms_url.as_str(),
            "--secret-name",
            "plain-text",
            "--show-value",
        ],
        "quickstart-secret-not-real",
    );
    assert_eq!(
        json_stdout(&out)["SecretData"],
        "hello from the kmsync emulator"
    );
}
