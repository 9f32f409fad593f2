//! The end-to-end world: the fake kube-apiserver and the kmsync emulator in-process, and the
//! real `kmsync controller` binary as a subprocess talking to both.
//!
//! ```text
//!  test ──kube client (UA kube-rs)──▶ fake apiserver ◀──(UA kmsync-controller)── kmsync controller
//!    │                                  ▲  request log                            │ (subprocess,
//!    └──admin (counters, faults, rotation)──▶ emulator ◀──KMS/STS/OOS (redirect)───┘  JSON logs)
//! ```
//!
//! [`World::finish`] stops the controllers, then checks what every test must hold: no marker
//! value (secret values, AccessKey secrets, passwords) in the controller's logs, metrics,
//! Events, statuses or Secret metadata; and it writes the controller's requests (verb, group,
//! resource, subresource, namespace, name) to `$KMSYNC_E2E_REQUESTS/<test>.json`, with the
//! chart values matching the flags the test used, for the RBAC check in
//! `tests/chart/test_rbac_e2e.py`.
//!
//! Waits use generous deadlines only as hang guards: no timing decides a test.
//!
//! Used by the e2e suite (`tests/e2e/`) and by the scale benchmark (`scale-bench`, [`crate::scale`]),
//! which starts the fake apiserver and the emulator on runtimes of their own
//! ([`WorldOptions::api_runtime`], [`WorldOptions::emulator_runtime`]) so that their CPU time
//! can be told apart.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::apiserver::{Config, FakeApiServer, Handle};
use k8s_openapi::api::core::v1::Secret;
use kmsync::api::{ClusterExternalSecret, ClusterSecretStore, ExternalSecret, SecretStore};
use kmsync::emulator::{Emulator, EmulatorHandle, Seed};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The controller's namespace (Lease, digest key).
pub const SYSTEM: &str = "kmsync-system";
/// The tenant namespace most tests use.
pub const TEAM: &str = "team-a";
/// User-Agent prefix of the controller's requests.
pub const CONTROLLER_UA: &str = "kmsync-controller/";

/// True when `record` is a request of a kmsync controller (by its [`CONTROLLER_UA`] user agent).
pub fn by_controller(record: &crate::RequestRecord) -> bool {
    record
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with(CONTROLLER_UA))
}

/// Hang guard for waits.
pub const WAIT: Duration = Duration::from_secs(60);
/// The AccessKey the default seed knows.
pub const AK_ID: &str = "LTAI5tE2eTestKey0001";
/// Its secret: a marker that must never be printed.
pub const AK_SECRET: &str = "marker-ak-secret-7f3a9c";

/// The kmsync binary: `$KMSYNC_BIN`, else the one of the same profile as the running
/// executable — next to it (a binary such as `target/release/scale-bench`) or one directory up
/// (a test binary in `target/debug/deps/`), as built by `cargo build -p kmsync`.
pub fn kmsync_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KMSYNC_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let here = exe.parent().expect("executable directory");
    let candidates = [Some(here), here.parent()];
    let found = candidates
        .iter()
        .flatten()
        .map(|dir| dir.join("kmsync"))
        .find(|bin| bin.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "no kmsync binary next to {}: build it with `cargo build -p kmsync` (--release for a release executable), or set KMSYNC_BIN",
            exe.display()
        )
    })
}

/// The default emulator seed: one AccessKey (allowed to assume the reader role), a few
/// secrets with marker values, roles and an OIDC provider for RRSA.
pub fn default_seed() -> String {
    format!(
        r#"
region: cn-hangzhou
access_keys:
  - id: {AK_ID}
    secret: {AK_SECRET}
    assumable_roles: ["acs:ram::1234567890123456:role/kms-reader"]
  - id: LTAI5tE2eRotatedKey02
    secret: marker-ak-secret-rotated-41d2
roles:
  - arn: acs:ram::1234567890123456:role/kms-reader
    min_session_duration: 1
    oidc_trust:
      - provider: acs:ram::1234567890123456:oidc-provider/ack-rrsa-e2e
        subjects: ["system:serviceaccount:team-a:*", "system:serviceaccount:kmsync-system:*"]
oidc_providers:
  - arn: acs:ram::1234567890123456:oidc-provider/ack-rrsa-e2e
    issuer: https://oidc.e2e.example
secrets:
  - name: db-password
    text: marker-db-password-91c2
    version_id: v1
  - name: app-config
    json: {{user: app, password: marker-app-password-55e1}}
    version_id: v1
  - name: api-token
    text: marker-api-token-0b7d
    version_id: v1
"#
    )
}

/// Every marker of [`default_seed`].
pub fn default_markers() -> Vec<String> {
    [
        AK_SECRET,
        "marker-ak-secret-rotated-41d2",
        "marker-db-password-91c2",
        "marker-app-password-55e1",
        "marker-api-token-0b7d",
    ]
    .map(String::from)
    .to_vec()
}

/// A running `kmsync controller`.
pub struct Controller {
    /// The child process.
    pub child: tokio::process::Child,
    /// Its stderr (JSON logs).
    pub log: PathBuf,
    /// `/metrics` address.
    pub metrics: SocketAddr,
    /// `/healthz`, `/readyz` address.
    pub health: SocketAddr,
    /// `POD_NAME`.
    pub name: String,
}

impl Controller {
    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a pid of our own child.
            unsafe {
                libc::kill(pid as i32, signal);
            }
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit; its status code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("controller exits in time")
            .ok()
            .and_then(|s| s.code())
    }
}

/// A plain HTTP/1.0 GET; status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// Polls `check` until it returns `Some`; panics naming `what` after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What to start.
pub struct WorldOptions {
    /// Emulator seed YAML.
    pub seed: String,
    /// Serve the emulator over HTTPS (KMS instance tests).
    pub tls: bool,
    /// The fake apiserver's configuration.
    pub api: Config,
    /// Namespaces to create besides [`SYSTEM`] and [`TEAM`].
    pub namespaces: Vec<String>,
    /// Chart values equivalent to the flags the test passes (for the RBAC check).
    pub chart_values: Value,
    /// Runtime to run the fake apiserver on (default: the caller's).
    pub api_runtime: Option<tokio::runtime::Handle>,
    /// Runtime to run the emulator on (default: the caller's).
    pub emulator_runtime: Option<tokio::runtime::Handle>,
    /// Distinct names per emulator counter map (default: the emulator's bound); the scale
    /// benchmark counts reads per secret for thousands of secrets.
    pub emulator_counter_names: Option<usize>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            seed: default_seed(),
            tls: false,
            api: Config::default().kmsync_crds(),
            namespaces: Vec::new(),
            chart_values: json!({}),
            api_runtime: None,
            emulator_runtime: None,
            emulator_counter_names: None,
        }
    }
}

/// One test's world (see the module docs).
pub struct World {
    /// Test name (log and dump file names).
    pub name: String,
    /// The fake apiserver.
    pub api: Handle,
    /// A kube client for the test itself.
    pub client: kube::Client,
    /// The emulator.
    pub emu: EmulatorHandle,
    /// Scratch directory (kubeconfig, logs, token files).
    pub dir: tempfile::TempDir,
    /// Running controllers.
    pub controllers: Vec<Controller>,
    /// Values that must never appear outside Secret data.
    pub markers: Vec<String>,
    /// Chart values for the RBAC check.
    pub chart_values: Value,
    kubeconfig: PathBuf,
    spawned: usize,
}

fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Secret" => "secrets",
        "ServiceAccount" => "serviceaccounts",
        "Namespace" => "namespaces",
        "ConfigMap" => "configmaps",
        "ExternalSecret" => "externalsecrets",
        "SecretStore" => "secretstores",
        "ClusterSecretStore" => "clustersecretstores",
        "ClusterExternalSecret" => "clusterexternalsecrets",
        "Lease" => "leases",
        other => panic!("the harness does not know kind {other}"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

impl World {
    /// Starts the apiserver and the emulator with the defaults.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, WorldOptions::default()).await
    }

    /// Starts the apiserver and the emulator.
    pub async fn start_with(name: &str, options: WorldOptions) -> Self {
        let api = match &options.api_runtime {
            Some(rt) => rt
                .spawn(FakeApiServer::start(options.api))
                .await
                .expect("fake apiserver start task"),
            None => FakeApiServer::start(options.api).await,
        }
        .expect("fake apiserver starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let mut cfg = kube::Config::new(api.url().parse().expect("url"));
        cfg.default_namespace = "default".into();
        let client = kube::Client::try_from(cfg).expect("client");
        let seed = Seed::from_yaml_str(&options.seed).expect("seed parses");
        let mut builder = Emulator::builder(seed).tls(options.tls);
        if let Some(n) = options.emulator_counter_names {
            builder = builder.counter_names(n);
        }
        let emu = match &options.emulator_runtime {
            Some(rt) => rt
                .spawn(builder.start())
                .await
                .expect("emulator start task"),
            None => builder.start().await,
        }
        .expect("emulator starts");
        let world = Self {
            name: name.to_owned(),
            api,
            client,
            emu,
            dir,
            controllers: Vec::new(),
            markers: default_markers(),
            chart_values: options.chart_values,
            kubeconfig,
            spawned: 0,
        };
        for ns in [SYSTEM, TEAM]
            .into_iter()
            .map(String::from)
            .chain(options.namespaces)
        {
            world
                .apply(&format!(
                    "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
                ))
                .await;
        }
        world
    }

    /// The flags every controller of this world gets (before `extra`).
    pub fn base_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "controller",
            "--log-format=json",
            "--log-level=debug",
            "--region=cn-hangzhou",
            "--polling-interval=3s",
            "--reconcile-period=200ms",
            "--reconcile-count=4",
            "--metrics-bind-address=127.0.0.1:0",
            "--health-probe-bind-address=127.0.0.1:0",
            "--shutdown-timeout=10s",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--redirect-endpoint={}", self.emu.kms_url()));
        args
    }

    /// Starts a controller with the base flags and `extra`; waits until it serves `/readyz`.
    pub async fn spawn_controller(&mut self, extra: &[&str]) -> usize {
        let mut args = self.base_args();
        // A flag in `extra` replaces the base flag of the same name.
        let flag = |a: &str| a.split('=').next().unwrap_or(a).to_owned();
        args.retain(|a| {
            !extra
                .iter()
                .any(|e| flag(e) == flag(a) && a.starts_with("--"))
        });
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        self.spawn_controller_args(args, &[]).await
    }

    /// Starts a controller with exactly `args` and extra environment; waits until `/readyz`.
    pub async fn spawn_controller_args(
        &mut self,
        args: Vec<String>,
        env: &[(&str, &str)],
    ) -> usize {
        self.spawned += 1;
        let name = format!("kmsync-{}-{}", self.name, self.spawned);
        let log = self.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = tokio::process::Command::new(kmsync_bin());
        cmd.args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("POD_NAMESPACE", SYSTEM)
            .env("POD_NAME", &name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("kmsync controller starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        let addrs = |text: &str| {
            text.lines().find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                let f = v.get("fields")?;
                (f.get("message")?.as_str()? == "kmsync controller starting").then(|| {
                    let addr = |k: &str| f.get(k)?.as_str()?.parse::<SocketAddr>().ok();
                    Some((addr("metrics")?, addr("health")?))
                })?
            })
        };
        let (metrics, health) = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(a) = addrs(&text) {
                break a;
            }
            let exited = child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && tokio::time::Instant::now() < deadline,
                "the controller did not start (exit: {exited:?}); its log:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        loop {
            if matches!(http_get(health, "/readyz").await, Some((200, _))) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the controller did not become ready; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.controllers.push(Controller {
            child,
            log,
            metrics,
            health,
            name,
        });
        self.controllers.len() - 1
    }

    /// Applies (server-side, field manager `e2e-test`) every document of `yaml`.
    pub async fn apply(&self, yaml: &str) {
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            let value: Value = serde::Deserialize::deserialize(doc).expect("YAML document");
            if value.is_null() {
                continue;
            }
            let ar = api_resource(
                value["apiVersion"].as_str().expect("apiVersion"),
                value["kind"].as_str().expect("kind"),
            );
            let name = value["metadata"]["name"].as_str().expect("name").to_owned();
            let api: Api<DynamicObject> = match value["metadata"]["namespace"].as_str() {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
                None => Api::all_with(self.client.clone(), &ar),
            };
            api.patch(
                &name,
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&value),
            )
            .await
            .unwrap_or_else(|e| panic!("applying {} {name}: {e}", ar.kind));
        }
    }

    /// Deletes an object (background propagation).
    pub async fn delete(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) {
        let ar = api_resource(api_version, kind);
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        api.delete(name, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("deleting {kind} {name}: {e}"));
    }

    /// Merge-patches an object as a person with kubectl would (field manager `kubectl-edit`).
    pub async fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: Value,
    ) {
        let ar = api_resource(api_version, kind);
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        api.patch(
            name,
            &PatchParams::apply("kubectl-edit"),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap_or_else(|e| panic!("patching {kind} {name}: {e}"));
    }

    /// A Secret, read without going through the request log.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.api
            .object("", "secrets", namespace, name)
            .map(|v| serde_json::from_value(v).expect("Secret"))
    }

    /// A Secret's `data[key]` as text.
    pub fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let s = self.secret(namespace, name)?;
        let v = s.data?.get(key)?.0.clone();
        Some(String::from_utf8(v).expect("UTF-8 value"))
    }

    /// An ExternalSecret, read without going through the request log.
    pub fn external_secret(&self, namespace: &str, name: &str) -> Option<ExternalSecret> {
        self.api
            .object("alibabacloud.com", "externalsecrets", namespace, name)
            .map(|v| serde_json::from_value(v).expect("ExternalSecret"))
    }

    /// A SecretStore, read without going through the request log.
    pub fn secret_store(&self, namespace: &str, name: &str) -> Option<SecretStore> {
        self.api
            .object("alibabacloud.com", "secretstores", namespace, name)
            .map(|v| serde_json::from_value(v).expect("SecretStore"))
    }

    /// A ClusterSecretStore.
    pub fn cluster_secret_store(&self, name: &str) -> Option<ClusterSecretStore> {
        self.api
            .object("alibabacloud.com", "clustersecretstores", "", name)
            .map(|v| serde_json::from_value(v).expect("ClusterSecretStore"))
    }

    /// A ClusterExternalSecret.
    pub fn cluster_external_secret(&self, name: &str) -> Option<ClusterExternalSecret> {
        self.api
            .object("alibabacloud.com", "clusterexternalsecrets", "", name)
            .map(|v| serde_json::from_value(v).expect("ClusterExternalSecret"))
    }

    /// The `Ready` condition of an ExternalSecret: (status, reason, message).
    pub fn es_ready(&self, namespace: &str, name: &str) -> Option<(String, String, String)> {
        let es = self.external_secret(namespace, name)?;
        let c = es.ready()?;
        Some((
            format!("{:?}", c.status),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        ))
    }

    /// Waits until the ExternalSecret's `Ready` condition has `status` and `reason`, and was
    /// set for its current generation; returns the message.
    pub async fn wait_es(&self, namespace: &str, name: &str, status: &str, reason: &str) -> String {
        wait_for(
            &format!("ExternalSecret {namespace}/{name} Ready={status} {reason}"),
            || async move {
                let es = self.external_secret(namespace, name)?;
                let c = es.ready()?;
                (format!("{:?}", c.status) == status
                    && c.reason.as_deref() == Some(reason)
                    && c.observed_generation == es.metadata.generation)
                    .then(|| c.message.clone().unwrap_or_default())
            },
        )
        .await
    }

    /// The successful writes of the controller whose `POD_NAME` is `pod`.
    pub fn writes_by(&self, pod: &str) -> Vec<crate::RequestRecord> {
        let tag = format!("({pod})");
        self.all_controller_writes()
            .into_iter()
            .filter(|r| r.user_agent.as_deref().is_some_and(|ua| ua.ends_with(&tag)))
            .collect()
    }

    /// Events about the object named `name` (stored in the core `v1` shape): (type, reason,
    /// message, count).
    pub fn events_about(&self, name: &str) -> Vec<(String, String, String, i64)> {
        self.api
            .objects("events.k8s.io", "events")
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == name || e["regarding"]["name"] == name)
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                let count = e["series"]["count"]
                    .as_i64()
                    .or_else(|| e["count"].as_i64())
                    .unwrap_or(1);
                (text("type"), text("reason"), text("message"), count)
            })
            .collect()
    }

    /// The controller's successful writes (create/update/patch/delete) to one object.
    pub fn controller_writes(&self, resource: &str, namespace: &str, name: &str) -> usize {
        self.api
            .writes()
            .iter()
            .filter(|r| {
                by_controller(r)
                    && r.resource == resource
                    && r.subresource.is_empty()
                    && r.namespace == namespace
                    && r.name == name
            })
            .count()
    }

    /// Every successful write by a controller.
    pub fn all_controller_writes(&self) -> Vec<crate::RequestRecord> {
        self.api
            .writes()
            .into_iter()
            .filter(by_controller)
            .collect()
    }

    /// `GetSecretValue` calls the emulator served for `secret`.
    pub fn kms_reads(&self, secret: &str) -> u64 {
        self.emu.counters().secret(secret)
    }

    /// Waits until the controller's watches are all open again (e.g. after starting).
    pub async fn stop_controller(&mut self, index: usize) -> Option<i32> {
        let c = &mut self.controllers[index];
        c.signal(libc::SIGTERM);
        c.wait_exit().await
    }

    /// Stops every controller, runs the marker scan, writes the request dump.
    pub async fn finish(mut self) {
        let mut texts: Vec<(String, String)> = Vec::new();
        for c in &self.controllers {
            if let Some((_, body)) = http_get(c.metrics, "/metrics").await {
                texts.push((format!("{} /metrics", c.name), body));
            }
        }
        for i in 0..self.controllers.len() {
            if self.controllers[i].child.id().is_some() {
                self.controllers[i].signal(libc::SIGTERM);
                let _ = tokio::time::timeout(WAIT, self.controllers[i].child.wait()).await;
            }
        }
        for c in &self.controllers {
            texts.push((format!("{} log", c.name), c.log_text()));
        }
        for (group, resource) in [
            ("events.k8s.io", "events"),
            ("alibabacloud.com", "externalsecrets"),
            ("alibabacloud.com", "secretstores"),
            ("alibabacloud.com", "clustersecretstores"),
            ("alibabacloud.com", "clusterexternalsecrets"),
        ] {
            for obj in self.api.objects(group, resource) {
                texts.push((format!("{resource} object"), obj.to_string()));
            }
        }
        for mut s in self.api.objects("", "secrets") {
            // Secret data legitimately holds values; everything else must not.
            s.as_object_mut().map(|o| o.remove("data"));
            texts.push(("Secret metadata".into(), s.to_string()));
        }
        for marker in &self.markers {
            for (source, text) in &texts {
                assert!(
                    !text.contains(marker.as_str()),
                    "marker {marker:?} leaked into {source}"
                );
            }
        }
        if let Ok(dir) = std::env::var("KMSYNC_E2E_REQUESTS") {
            let requests: Vec<Value> = self
                .api
                .requests()
                .into_iter()
                .filter(by_controller)
                .map(|r| {
                    json!({
                        "verb": r.verb, "group": r.api_group, "resource": r.resource,
                        "subresource": r.subresource, "namespace": r.namespace,
                        "name": r.name, "status": r.status,
                    })
                })
                .collect();
            let dump =
                json!({"test": self.name, "values": self.chart_values, "requests": requests});
            std::fs::create_dir_all(&dir).expect("request dump directory");
            std::fs::write(
                Path::new(&dir).join(format!("{}.json", self.name)),
                serde_json::to_vec_pretty(&dump).expect("JSON"),
            )
            .expect("request dump");
        }
        self.controllers.clear();
    }
}
