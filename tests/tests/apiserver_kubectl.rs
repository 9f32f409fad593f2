//! The fake apiserver checked against a client nobody here wrote: `kubectl`, run as a
//! subprocess with the kubeconfig the handle writes. These tests need `kubectl` on `PATH` (or
//! in `$KUBECTL`) and fail loudly without it.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::start;
use kmsync_tests::apiserver::Handle;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// kubectl pointed at one fake apiserver, with its own discovery cache.
struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a kubectl run printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn kubectl_binary() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

impl Kubectl {
    fn new(h: &Handle) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        h.write_kubeconfig(&kubeconfig).expect("kubeconfig written");
        let cache = dir.path().join("cache");
        Kubectl {
            kubeconfig,
            cache,
            _dir: dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_binary());
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        c.env_remove("KUBECONFIG").kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None).await
    }

    async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut c = self.command(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| {
            panic!("cannot run {}: {e}; these tests need a real kubectl (the machine image ships one; Debian: kubernetes-client)", kubectl_binary())
        });
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin piped");
            pipe.write_all(input.as_bytes())
                .await
                .expect("stdin written");
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finished")
            .expect("kubectl ran");
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args).await;
        assert!(r.ok, "kubectl {args:?} failed:\n{}\n{}", r.stdout, r.stderr);
        r.stdout
    }
}

fn widgets(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    Api::default_namespaced_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

const WIDGET: &str = "apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  labels: {app: demo}
spec:
  size: 3
  color: red
";

/// Splits `kubectl get` output into rows of whitespace-separated cells.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

async fn kubectl_gets_builtins_and_custom_resources_through_discovery(kube_version: &str) {
    let (h, _client) = start(common::config().kube_version(kube_version)).await;
    let k = Kubectl::new(&h);
    k.run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(WIDGET))
        .await;
    let out = k.ok(&["get", "widgets"]).await;
    let r = rows(&out);
    assert_eq!(r[0], ["NAME", "SIZE", "READY", "AGE"]);
    assert_eq!(&r[1][..2], ["w1", "3"]);
    let out = k
        .ok(&[
            "get",
            "wg",
            "w1",
            "-o",
            "jsonpath={.spec.size} {.metadata.labels.app}",
        ])
        .await;
    assert_eq!(out, "3 demo");
    let out = k.ok(&["get", "namespaces"]).await;
    let names: Vec<String> = rows(&out)
        .into_iter()
        .skip(1)
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert_eq!(rows(&out)[0], ["NAME", "STATUS", "AGE"]);
    let out = k.ok(&["get", "crd"]).await;
    assert!(
        out.contains("widgets.example.com") && out.contains("CREATED AT"),
        "{out}"
    );
    let out = k.ok(&["get", "gadgets"]).await;
    assert!(out.is_empty(), "{out}");
    let out = k.ok(&["api-resources", "--api-group=example.com"]).await;
    assert!(
        out.contains("widgets") && out.contains("wg") && out.contains("Widget"),
        "{out}"
    );
    let missing = k.run(&["get", "widget", "nope"]).await;
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains(r#"widgets.example.com "nope" not found"#),
        "{}",
        missing.stderr
    );
    assert!(
        h.requests()
            .iter()
            .any(|r| r.path == "/openapi/v3" || r.path == "/api"),
        "kubectl used discovery"
    );
}

async fn kubectl_get_watch_streams_a_change(kube_version: &str) {
    let (h, client) = start(common::config().kube_version(kube_version)).await;
    let k = Kubectl::new(&h);
    k.run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(WIDGET))
        .await;
    let mut child = k
        .command(&["get", "widgets", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("kubectl printed a line")
            .expect("read")
            .expect("kubectl still running")
    };
    assert_eq!(
        next().await.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "SIZE", "READY", "AGE"]
    );
    assert!(next().await.starts_with("w1 "));
    // The watch request is open once kubectl has printed the list; change the object.
    assert!(
        h.wait_for_watches("widgets", 1, Duration::from_secs(20))
            .await,
        "kubectl's watch"
    );
    widgets(&client)
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 7}})),
        )
        .await
        .unwrap();
    let changed = next().await;
    assert_eq!(
        changed.split_whitespace().take(2).collect::<Vec<_>>(),
        ["w1", "7"],
        "{changed}"
    );
    child.kill().await.expect("kubectl stopped");
}

async fn kubectl_server_side_apply_conflicts_with_another_manager_until_forced(kube_version: &str) {
    let (h, client) = start(common::config().kube_version(kube_version)).await;
    let k = Kubectl::new(&h);
    let r = k
        .run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(WIDGET))
        .await;
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "widget.example.com/w1 serverside-applied");
    let changed = WIDGET.replace("size: 3", "size: 4");
    let r = k
        .run_with_stdin(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "-f",
                "-",
            ],
            Some(&changed),
        )
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.size"#),
        "{}",
        r.stderr
    );
    let r = k
        .run_with_stdin(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "other",
                "--force-conflicts",
                "-f",
                "-",
            ],
            Some(&changed),
        )
        .await;
    assert!(r.ok, "{}", r.stderr);
    let w = widgets(&client).get("w1").await.unwrap();
    assert_eq!(w.data["spec"]["size"], 4);
    let managers: Vec<String> = w
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["kubectl", "other"]);
    let apply = h
        .requests()
        .into_iter()
        .find(|r| r.verb == "patch" && r.field_manager.as_deref() == Some("other"))
        .unwrap();
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );

    // Secrets through apply: stringData lands in data.
    let secret =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  user: admin\n";
    let r = k
        .run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(secret))
        .await;
    assert!(r.ok, "{}", r.stderr);
    let out = k
        .ok(&["get", "secret", "creds", "-o", "jsonpath={.data.user}"])
        .await;
    assert_eq!(out, "YWRtaW4=");
    let out = k.ok(&["get", "secrets"]).await;
    assert_eq!(rows(&out)[0], ["NAME", "TYPE", "DATA", "AGE"]);
    assert_eq!(&rows(&out)[1][..3], ["creds", "Opaque", "1"]);
}

async fn kubectl_patches_and_deletes(kube_version: &str) {
    let (h, client) = start(common::config().kube_version(kube_version)).await;
    let k = Kubectl::new(&h);
    k.run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(WIDGET))
        .await;
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels: {a: '1'}\ndata:\n  k: dg==\n";
    k.run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(secret))
        .await;
    // Strategic merge patch (kubectl's default) on a built-in type.
    let out = k
        .ok(&[
            "patch",
            "secret",
            "s",
            "-p",
            r#"{"metadata":{"labels":{"a":null,"b":"2"}}}"#,
        ])
        .await;
    assert_eq!(out.trim(), "secret/s patched");
    assert_eq!(
        k.ok(&["get", "secret", "s", "-o", "jsonpath={.metadata.labels}"])
            .await,
        r#"{"b":"2"}"#
    );
    // Custom resources refuse strategic merge patch, as a real cluster does.
    let r = k
        .run(&["patch", "widget", "w1", "-p", r#"{"spec":{"size":5}}"#])
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains("the body of the request was in an unknown format"),
        "{}",
        r.stderr
    );
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ])
    .await;
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/color","value":"blue"}]"#,
    ])
    .await;
    let w = widgets(&client).get("w1").await.unwrap();
    assert_eq!(
        (
            w.data["spec"]["size"].as_i64(),
            w.data["spec"]["color"].as_str()
        ),
        (Some(5), Some("blue"))
    );
    assert_eq!(w.metadata.generation, Some(3));
    let r = k
        .run(&[
            "patch",
            "widget",
            "w1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"color":"pink"}}"#,
        ])
        .await;
    assert!(!r.ok);
    assert!(r.stderr.contains("Unsupported value"), "{}", r.stderr);

    let out = k.ok(&["delete", "widget", "w1"]).await;
    assert_eq!(out.trim(), r#"widget.example.com "w1" deleted"#);
    assert!(widgets(&client).get_opt("w1").await.unwrap().is_none());
    let out = k.ok(&["delete", "secret", "s"]).await;
    assert_eq!(out.trim(), r#"secret "s" deleted"#);
    let delete = h
        .requests()
        .into_iter()
        .find(|r| r.verb == "delete" && r.resource == "secrets")
        .unwrap();
    assert_eq!(
        (
            delete.namespace.as_str(),
            delete.name.as_str(),
            delete.status
        ),
        ("default", "s", 200)
    );
}

async fn kubectl_wait_returns_when_the_condition_is_ready(kube_version: &str) {
    let (h, client) = start(common::config().kube_version(kube_version)).await;
    let k = Kubectl::new(&h);
    k.run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(WIDGET))
        .await;
    let waiter = k
        .command(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    assert!(
        h.wait_for_watches("widgets", 1, Duration::from_secs(20))
            .await,
        "kubectl wait to watch"
    );
    let status =
        json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Done"}]}});
    widgets(&client)
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(40), waiter.wait_with_output())
        .await
        .expect("wait finished")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "widget.example.com/w1 condition met"
    );
}

async fn kubectl_create_sends_protobuf_for_builtin_types_and_the_server_reads_it(
    kube_version: &str,
) {
    let (h, client) = start(common::config().kube_version(kube_version)).await;
    let k = Kubectl::new(&h);
    let out = k
        .ok(&[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=user=admin",
            "--from-literal=pw=s3cret",
        ])
        .await;
    assert_eq!(out.trim(), "secret/db created");
    let create = h
        .requests()
        .into_iter()
        .find(|r| r.verb == "create" && r.resource == "secrets")
        .unwrap();
    assert_eq!(
        create.content_type.as_deref(),
        Some("application/vnd.kubernetes.protobuf")
    );
    let s = Api::<k8s_openapi::api::core::v1::Secret>::default_namespaced(client.clone())
        .get("db")
        .await
        .unwrap();
    assert_eq!(
        s.data.unwrap()["pw"],
        k8s_openapi::ByteString(b"s3cret".to_vec())
    );
    k.ok(&["create", "configmap", "cfg", "--from-literal=k=v"])
        .await;
    assert_eq!(
        k.ok(&["get", "configmap", "cfg", "-o", "jsonpath={.data.k}"])
            .await,
        "v"
    );
    k.ok(&["create", "namespace", "team-a"]).await;
    k.ok(&["create", "serviceaccount", "robot", "-n", "team-a"])
        .await;
    let token = k
        .ok(&[
            "create",
            "token",
            "robot",
            "-n",
            "team-a",
            "--audience",
            "sts.aliyuncs.com",
            "--duration",
            "1h",
        ])
        .await;
    let claims = token.trim().split('.').nth(1).expect("JWT has claims");
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], json!(["sts.aliyuncs.com"]));
    assert_eq!(claims["sub"], "system:serviceaccount:team-a:robot");
    let bad = k
        .run(&[
            "create",
            "secret",
            "generic",
            "bad",
            "--from-literal=bad key=x",
        ])
        .await;
    assert!(!bad.ok, "kubectl validates the key too: {}", bad.stdout);
}

async fn kubectl_strict_field_validation_rejects_unknown_fields(kube_version: &str) {
    let (h, _client) = start(common::config().kube_version(kube_version)).await;
    let k = Kubectl::new(&h);
    let typo = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 1, sise: 2}\n";
    let r = k.run_with_stdin(&["create", "-f", "-"], Some(typo)).await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains(r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.sise""#),
        "{}",
        r.stderr
    );
    let r = k
        .run_with_stdin(&["apply", "--server-side", "-f", "-"], Some(typo))
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr
            .contains(".spec.sise: field not declared in schema"),
        "{}",
        r.stderr
    );
    let r = k
        .run_with_stdin(&["create", "--validate=warn", "-f", "-"], Some(typo))
        .await;
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stderr.contains(r#"Warning: unknown field "spec.sise""#),
        "{}",
        r.stderr
    );
    assert_eq!(
        k.ok(&["get", "widget", "w2", "-o", "jsonpath={.spec}"])
            .await,
        r#"{"size":1}"#
    );
}

async fn kubectl_client_side_apply_and_server_dry_run(kube_version: &str) {
    let (h, client) = start(common::config().kube_version(kube_version)).await;
    let k = Kubectl::new(&h);
    // Client-side apply: a strategic merge patch for built-ins, a JSON merge patch for custom
    // resources (chosen from the OpenAPI v3 documents), without warnings.
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: csa\n  labels: {a: '1'}\nstringData: {k: v}\n";
    let r = k.run_with_stdin(&["apply", "-f", "-"], Some(secret)).await;
    assert!(r.ok && r.stderr.is_empty(), "{}", r.stderr);
    let r = k
        .run_with_stdin(
            &["apply", "-f", "-"],
            Some(&secret.replace("a: '1'", "b: '2'")),
        )
        .await;
    assert!(r.ok && r.stderr.is_empty(), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "secret/csa configured");
    assert_eq!(
        k.ok(&["get", "secret", "csa", "-o", "jsonpath={.metadata.labels}"])
            .await,
        r#"{"b":"2"}"#
    );
    let r = k.run_with_stdin(&["apply", "-f", "-"], Some(WIDGET)).await;
    assert!(r.ok, "{}", r.stderr);
    let r = k
        .run_with_stdin(
            &["apply", "-f", "-"],
            Some(&WIDGET.replace("size: 3", "size: 6")),
        )
        .await;
    assert!(r.ok && r.stderr.is_empty(), "{}", r.stderr);
    assert_eq!(
        widgets(&client).get("w1").await.unwrap().data["spec"]["size"],
        6
    );
    let kinds: Vec<(String, String)> = h
        .requests()
        .into_iter()
        .filter(|r| r.verb == "patch")
        .map(|r| (r.resource, r.content_type.unwrap_or_default()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "secrets".to_string(),
                "application/strategic-merge-patch+json".to_string()
            ),
            (
                "widgets".to_string(),
                "application/merge-patch+json".to_string()
            )
        ]
    );
    // Server-side dry run changes nothing.
    let out = k.ok(&["delete", "secret", "csa", "--dry-run=server"]).await;
    assert_eq!(out.trim(), r#"secret "csa" deleted (server dry run)"#);
    k.ok(&["get", "secret", "csa"]).await;
    k.ok(&[
        "patch",
        "widget",
        "w1",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":9}}"#,
        "--dry-run=server",
    ])
    .await;
    assert_eq!(
        widgets(&client).get("w1").await.unwrap().data["spec"]["size"],
        6
    );
}

/// Runs a kubectl check against a server claiming each version: the machine's kubectl is a
/// dispatcher that picks the client matching the server (1.32 and 1.33 here).
macro_rules! for_versions {
    ($($check:ident),* $(,)?) => {
        mod v1_32 {
            $(#[tokio::test]
            async fn $check() {
                super::$check("v1.32.0").await
            })*
        }
        mod v1_33 {
            $(#[tokio::test]
            async fn $check() {
                super::$check("v1.33.0").await
            })*
        }
    };
}

for_versions!(
    kubectl_client_side_apply_and_server_dry_run,
    kubectl_gets_builtins_and_custom_resources_through_discovery,
    kubectl_get_watch_streams_a_change,
    kubectl_server_side_apply_conflicts_with_another_manager_until_forced,
    kubectl_patches_and_deletes,
    kubectl_wait_returns_when_the_condition_is_ready,
    kubectl_create_sends_protobuf_for_builtin_types_and_the_server_reads_it,
    kubectl_strict_field_validation_rejects_unknown_fields,
);
