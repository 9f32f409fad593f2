//! A fake kube-apiserver for tests: HTTP on 127.0.0.1, JSON, in-process.
//!
//! ```text
//!  kube-rs / kubectl ──HTTP──► http (route, faults, log, Accept) ──► registry (generic REST)
//!                                     │                                  │
//!                                     └── watch streams ◄── store (rv, history, broadcast)
//!                                                               ▲
//!                              controllers (GC, namespaces) ────┘  (after every write)
//! ```
//!
//! Start it with [`FakeApiServer::start`]; the returned [`Handle`] gives the URL, writes a
//! kubeconfig, exposes the request log and the fault switches, and shuts the server down.
//! `tests/README.md` lists what is faithful and what is simplified.

pub mod controllers;
pub mod discovery;
pub mod fields;
pub mod http;
pub mod journal;
pub mod patch;
pub mod proto;
pub mod registry;
pub mod resources;
pub mod selector;
pub mod status;
pub mod store;
pub mod table;
pub mod validation;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use journal::{Fault, RequestRecord};
pub use status::ApiError;

use journal::Journal;
use registry::{State, Target, WriteOpts};

/// How to start the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Files and directories of CRD YAML (multi-document allowed) to load at start.
    pub crd_paths: Vec<PathBuf>,
    /// CRD YAML documents to load at start.
    pub crd_yaml: Vec<String>,
    /// How many changes the history keeps; watches and lists from older resourceVersions
    /// get `410 Gone`. Default 10 000.
    pub history_limit: usize,
    /// How often open watches with `allowWatchBookmarks=true` get a BOOKMARK. Default 5 s
    /// (kube-apiserver: about a minute).
    pub bookmark_interval: Duration,
    /// `gitVersion` reported by `/version`. Default `v1.33.0` (matches k8s-openapi `v1_33`).
    pub kube_version: String,
    /// Port on 127.0.0.1; 0 (default) picks an ephemeral one.
    pub port: u16,
    /// Issuer (and default audience) of ServiceAccount tokens.
    pub issuer: String,
    /// RSA key (PKCS#8 PEM) and key id to sign ServiceAccount tokens with (`RS256`), as a real
    /// API server does; unset: `HS256` with a random per-server key.
    pub token_rsa_key: Option<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            crd_paths: Vec::new(),
            crd_yaml: Vec::new(),
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(5),
            kube_version: "v1.33.0".into(),
            port: 0,
            issuer: "https://kubernetes.default.svc.cluster.local".into(),
            token_rsa_key: None,
        }
    }
}

impl Config {
    /// Loads every CRD in this file or directory (`*.yaml`, `*.yml`, `*.json`) at start.
    pub fn crds_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.crd_paths.push(path.into());
        self
    }

    /// Loads the project's generated CRDs (`charts/kmsync/crds/`) at start; starting fails if
    /// the directory is missing.
    pub fn kmsync_crds(self) -> Self {
        self.crds_from(Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/kmsync/crds"))
    }

    /// Loads the CRDs in this YAML text at start.
    pub fn crd_yaml(mut self, yaml: impl Into<String>) -> Self {
        self.crd_yaml.push(yaml.into());
        self
    }

    /// Sets the history size.
    pub fn history_limit(mut self, n: usize) -> Self {
        self.history_limit = n;
        self
    }

    /// Sets the bookmark interval.
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.bookmark_interval = d;
        self
    }

    /// Sets the issuer (`iss`, and the default audience) of ServiceAccount tokens.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Signs ServiceAccount tokens with this RSA key (PKCS#8 PEM, `RS256`) under key id `kid`,
    /// so that an OIDC verifier trusting the key (e.g. the kmsync emulator's RRSA provider)
    /// accepts them.
    pub fn token_rsa_key(mut self, pkcs8_pem: impl Into<String>, kid: impl Into<String>) -> Self {
        self.token_rsa_key = Some((pkcs8_pem.into(), kid.into()));
        self
    }

    /// Sets the reported Kubernetes version.
    pub fn kube_version(mut self, v: impl Into<String>) -> Self {
        self.kube_version = v.into();
        self
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A CRD file or directory could not be read.
    #[error("reading {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A CRD document is not YAML.
    #[error("parsing YAML in {origin}")]
    Yaml {
        /// File path or `inline`.
        origin: String,
        /// Cause.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A document is not a CustomResourceDefinition, or the server rejected it.
    #[error("loading CRD from {origin}")]
    Crd {
        /// File path or `inline`.
        origin: String,
        /// The rejection.
        #[source]
        source: ApiError,
    },
    /// The token signing key is not an RSA PKCS#8 PEM key.
    #[error("the ServiceAccount token key is unusable: {reason}")]
    TokenKey {
        /// Why.
        reason: String,
    },
    /// The listening socket.
    #[error("binding 127.0.0.1:{port}")]
    Bind {
        /// Requested port.
        port: u16,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Shared by the HTTP handlers, the controllers and the handle.
pub struct Inner {
    state: Mutex<State>,
    journal: Journal,
    kick: Notify,
    drop_watches: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    token_key: Vec<u8>,
    token_signer: registry::TokenSigner,
    issuer: String,
    version: discovery::VersionInfo,
    bookmark_interval: Duration,
    addr: SocketAddr,
    /// Open watch streams by resource (plural).
    open_watches: Mutex<std::collections::HashMap<String, usize>>,
}

impl Inner {
    fn current_rv(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .store
            .current_rv()
    }
}

/// The fake kube-apiserver.
pub struct FakeApiServer;

impl FakeApiServer {
    /// Binds 127.0.0.1, loads the configured CRDs and serves until the handle is shut down
    /// or dropped.
    pub async fn start(config: Config) -> Result<Handle, StartError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| StartError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?;
        let now = Utc::now();
        let mut state = State::new(config.history_limit, now);
        for (origin, doc) in crd_documents(&config)? {
            load_crd(&mut state, &origin, doc)?;
        }
        let token_key = rand::random::<[u8; 32]>().to_vec();
        let token_signer = match &config.token_rsa_key {
            None => registry::TokenSigner::hs256(token_key.clone()),
            Some((pem, kid)) => registry::TokenSigner::rs256(pem, kid)
                .map_err(|reason| StartError::TokenKey { reason })?,
        };
        let (drop_tx, _) = watch::channel(0u64);
        let (shutdown_tx, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            journal: Journal::default(),
            kick: Notify::new(),
            drop_watches: drop_tx,
            shutdown: shutdown_tx,
            token_key,
            token_signer,
            issuer: config.issuer.clone(),
            version: discovery::VersionInfo {
                git_version: config.kube_version.clone(),
            },
            bookmark_interval: config.bookmark_interval,
            addr,
            open_watches: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(inner.clone());
        let mut shutdown_rx = inner.shutdown.subscribe();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.wait_for(|s| *s).await;
                })
                .await;
        });
        let controllers = tokio::spawn(run_controllers(inner.clone()));
        tracing::debug!(%addr, "fake kube-apiserver listening");
        Ok(Handle {
            inner,
            server: Some(server),
            controllers: Some(controllers),
        })
    }
}

fn crd_documents(config: &Config) -> Result<Vec<(String, Value)>, StartError> {
    let mut texts: Vec<(String, String)> = Vec::new();
    for path in &config.crd_paths {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| StartError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| StartError::Read {
                    path: path.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| ["yaml", "yml", "json"].contains(&e))
                })
                .collect();
            files.sort();
            for f in files {
                texts.push((f.display().to_string(), read(&f)?));
            }
        } else {
            texts.push((path.display().to_string(), read(path)?));
        }
    }
    for y in &config.crd_yaml {
        texts.push(("inline".into(), y.clone()));
    }
    let mut docs = Vec::new();
    for (origin, text) in texts {
        for de in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value =
                serde::Deserialize::deserialize(de).map_err(|source| StartError::Yaml {
                    origin: origin.clone(),
                    source,
                })?;
            if !v.is_null() {
                docs.push((origin.clone(), v));
            }
        }
    }
    Ok(docs)
}

fn load_crd(state: &mut State, origin: &str, doc: Value) -> Result<(), StartError> {
    let err = |source| StartError::Crd {
        origin: origin.to_string(),
        source,
    };
    if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        return Err(err(ApiError::bad_request(format!(
            "expected kind CustomResourceDefinition, found {}",
            doc.get("kind").and_then(Value::as_str).unwrap_or("nothing")
        ))));
    }
    let rt = state
        .registry
        .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CRDs are built in");
    let t = Target {
        rt,
        version: "v1".into(),
        namespace: String::new(),
        name: None,
        subresource: None,
    };
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    let opts = WriteOpts {
        manager: "fake-apiserver".into(),
        ..Default::default()
    };
    state
        .create(&t, &body, &opts, Utc::now())
        .map(|_| ())
        .map_err(err)
}

/// Runs the garbage collector and namespace controller after writes (and every 200 ms).
///
/// A pass scans every stored object under the state lock, so on a large store (tens of
/// thousands of objects in the scale benchmark) a pass after every write would make each
/// write cost O(objects). After a pass that took `t`, the next one waits `9t` (at most 1 s): a
/// small store (every functional test) still runs a pass right after each write, a large one
/// spends at most a tenth of a core on the scans, and no write is missed (a kick during the
/// pause is kept by the `Notify` and runs the next pass).
async fn run_controllers(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut pause = Duration::ZERO;
    loop {
        if pause >= Duration::from_millis(1) {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = inner.kick.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let started;
        {
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            started = std::time::Instant::now();
            // Bounded: each pass makes one change; a cluster this size settles well before.
            for _ in 0..10_000 {
                if !controllers::reconcile(&mut st, Utc::now()) {
                    break;
                }
            }
        }
        pause = (started.elapsed() * 9).min(Duration::from_secs(1));
    }
}

/// A running server.
pub struct Handle {
    inner: Arc<Inner>,
    server: Option<JoinHandle<()>>,
    controllers: Option<JoinHandle<()>>,
}

impl Handle {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// A kubeconfig (context `fake`, namespace `default`, no credentials) for this server.
    pub fn kubeconfig_yaml(&self) -> String {
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
            "current-context": "fake",
            "preferences": {},
        });
        serde_yaml_ng::to_string(&cfg).unwrap_or_default()
    }

    /// Writes [`kubeconfig_yaml`](Self::kubeconfig_yaml) to `path` (for `--kubeconfig` /
    /// `KUBECONFIG`).
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Every request served so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.journal.snapshot()
    }

    /// How many requests were served so far (the log's length; see [`Self::requests_since`]).
    pub fn request_count(&self) -> usize {
        self.inner.journal.len()
    }

    /// The requests served after the first `from` (e.g. a [`Self::request_count`] taken
    /// earlier), in order.
    pub fn requests_since(&self, from: usize) -> Vec<RequestRecord> {
        self.inner.journal.since(from)
    }

    /// Requests that changed state (create/update/patch/delete/deletecollection, 2xx).
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_write() && r.status < 300)
            .collect()
    }

    /// How many requests had this verb and resource (plural), any outcome.
    pub fn count(&self, verb: &str, resource: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.verb == verb && r.resource == resource)
            .count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.inner.journal.clear();
    }

    /// Arms a fault: the next matching requests fail with its status.
    pub fn inject(&self, fault: Fault) {
        self.inner.journal.add_fault(fault);
    }

    /// Fails the next `n` requests, whatever they are, with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.inject(Fault::new(status, n));
    }

    /// Disarms every pending fault.
    pub fn clear_faults(&self) {
        self.inner.journal.clear_faults();
    }

    /// Adds `latency` before every request (zero to stop).
    pub fn set_latency(&self, latency: Duration) {
        self.inner.journal.set_latency(latency);
    }

    /// How many watch streams on `resource` (plural, e.g. `secrets`) are open right now.
    pub fn open_watches(&self, resource: &str) -> usize {
        let open = self
            .inner
            .open_watches
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.get(resource).copied().unwrap_or(0)
    }

    /// Waits until at least `n` watches on `resource` are open (e.g. a controller under test
    /// has started), polling; `false` if `timeout` passes first.
    pub async fn wait_for_watches(&self, resource: &str, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.open_watches(resource) < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Ends every open watch stream (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.inner.drop_watches.send_modify(|g| *g += 1);
    }

    /// Forgets the whole change history (as an etcd compaction would): watches and
    /// `Exact` lists from any resourceVersion before now get `410 Gone`.
    pub fn compact(&self) {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .store
            .compact_all();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.current_rv()
    }

    /// Reads an object directly (not logged): `group` `""` for core, `resource` plural,
    /// `namespace` `""` for cluster-scoped. Objects are returned as stored (events in their
    /// core shape).
    pub fn object(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let rt = st.registry.find_any(group, resource)?;
        st.store
            .get(&rt.storage, namespace, name)
            .map(|v| (*v).clone())
    }

    /// Every stored object of a resource (not logged).
    pub fn objects(&self, group: &str, resource: &str) -> Vec<Value> {
        let st = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rt) = st.registry.find_any(group, resource) else {
            return Vec::new();
        };
        st.store
            .list(&rt.storage)
            .iter()
            .map(|v| (**v).clone())
            .collect()
    }

    /// Records every change committed from now on, with its commit time, for an observer in
    /// this process that must see each one (the scale benchmark times objects becoming
    /// ready); see [`store::ChangeTap`].
    pub fn tap(&self) -> store::ChangeTap {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .store
            .tap()
    }

    /// The HMAC-SHA256 key ServiceAccount tokens are signed with (`alg: HS256`).
    pub fn token_key(&self) -> &[u8] {
        &self.inner.token_key
    }

    /// Stops serving: open watches end, the listener closes, controllers stop.
    pub async fn shutdown(mut self) {
        self.inner.shutdown.send_replace(true);
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
        if let Some(c) = self.controllers.take() {
            let _ = c.await;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod robustness {
    //! Arbitrary input to every parser must produce a value or an error, never a panic.

    use serde_json::json;

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn random_text(state: &mut u64, len: usize) -> String {
        const ALPHABET: &[&str] = &[
            "a", "b", "=", "!", ",", "(", ")", " ", "in", "notin", ".", "[", "]", "?", "@", "\"",
            "'", "*", "0", "9", "-", "/", "€", "é", "{", "}", ":", "$", ">", "<", "\\",
        ];
        (0..len)
            .map(|_| ALPHABET[(xorshift(state) % ALPHABET.len() as u64) as usize])
            .collect()
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_input() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let doc = json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "status": {"conditions": [{"type": "Ready"}]}});
        for round in 0..3000 {
            let text = random_text(&mut state, round % 40);
            let _ = super::selector::LabelSelector::parse(&text);
            let _ = super::selector::FieldSelector::parse(&text, &["type".into()]);
            let _ = super::table::eval_json_path(&doc, &text);
            let _ = super::patch::strategic_merge_patch(&doc, text.as_bytes());
            let _ = super::patch::json_patch(&doc, text.as_bytes());
            let _ = super::patch::merge_patch(&doc, text.as_bytes());
            let bytes: Vec<u8> = (0..round % 64)
                .map(|_| xorshift(&mut state) as u8)
                .collect();
            let mut body = super::proto::MAGIC.to_vec();
            body.extend(&bytes);
            let _ = super::proto::decode(&body);
            let _ =
                super::fields::FieldSet::from_json(&json!({ text.clone(): {"." : {}, "k:{": {}} }));
            let _ = super::fields::path_string(&[
                text.clone(),
                format!("k:{text}"),
                format!("v:{text}"),
            ]);
        }
    }
}
