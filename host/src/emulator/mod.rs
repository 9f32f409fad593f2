//! `kmsync emulator`: a signature-checking stand-in for Alibaba Cloud KMS and STS (and the ECS
//! metadata server), for local development and tests (CLI, or in-process from Rust tests).
//!
//! ```text
//!  service listener (http or https, 127.0.0.1:<port>)          admin listener (http)
//!    GET|POST /  ─ count ─ faults ─ dispatch by Version          /v1/counters, /v1/faults,
//!                                    │                            /v1/secrets/..., /v1/sts/expire,
//!                     ┌──────────────┴─────────────┐              /v1/oidc/..., /v1/roles/...,
//!               2016-01-20 KmsService      2015-04-01 StsService  /v1/metadata
//!                     └──── auth: V1 / V3, ±15 min, nonce, STS token ┘  (AssumeRoleWithOIDC:
//!                                    │                                  unsigned, JWT checks)
//!                               State (seed, versions, sessions, counters, faults, identity)
//!                                    │
//!  metadata listener (optional, http): /latest/api/token, /latest/meta-data/ram/...
//! ```
//! OOS and the KMS instance API plug in through `service.rs`.
//!
//! In Rust tests:
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kmsync::emulator::{Emulator, Seed, SeedSecret};
//! let seed = Seed::default().with_access_key("ak", "sk").with_secret(SeedSecret::text("db", "pw"));
//! let emu = Emulator::builder(seed).tls(true).start().await?;
//! println!("{} (admin {})", emu.kms_url(), emu.admin_url());
//! assert_eq!(emu.state().counters().action("GetSecretValue"), 0);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//! See `docs/emulator.md` for the seed format and the admin API.

mod admin;
mod auth;
mod counters;
mod faults;
mod identity;
mod instance;
mod kms;
mod metadata;
mod oidc;
mod oos;
mod protocol;
mod seed;
mod server;
mod service;
mod state;
mod sts;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

pub use admin::{FaultList, NewVersion};
pub use counters::{CounterSnapshot, MAX_COUNTER_NAMES};
pub use faults::{FaultKind, FaultRule};
pub use identity::{MetadataMode, Revocation, RevokeRole};
pub use oidc::{MintTokenRequest, TEST_KEY_ID};
pub use seed::{
    ACS_CURRENT, ACS_PREVIOUS, Seed, SeedAccessKey, SeedClientKey, SeedData, SeedError,
    SeedInstanceRole, SeedOidcProvider, SeedOidcTrust, SeedOosParameter, SeedRole, SeedRotation,
    SeedSecret, SeedVersion, VersionData,
};
pub use state::{AdminError, State};
pub use sts::STS_API_VERSION;
pub use tls::{INSTANCE_HOST_WILDCARD, TlsSetupError};

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The seed is invalid.
    #[error(transparent)]
    Seed(#[from] SeedError),
    /// TLS material could not be made.
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// A listener could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Entry point: `Emulator::builder(seed)`.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder serving `seed` on `127.0.0.1:0` (service) and `127.0.0.1:0` (admin), plain HTTP.
    pub fn builder(seed: Seed) -> EmulatorBuilder {
        EmulatorBuilder {
            seed,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            metadata_listen: None,
            counter_names: MAX_COUNTER_NAMES,
        }
    }
}

/// Configures and starts an emulator.
#[derive(Debug)]
pub struct EmulatorBuilder {
    seed: Seed,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    tls: bool,
    metadata_listen: Option<SocketAddr>,
    counter_names: usize,
}

impl EmulatorBuilder {
    /// Counts `GetSecretValue` per secret for up to `n` distinct names (default
    /// [`MAX_COUNTER_NAMES`]), e.g. for a benchmark reading thousands of secrets.
    /// The bound exists because names come from unauthenticated requests; raise it only for
    /// trusted clients.
    pub fn counter_names(mut self, n: usize) -> Self {
        self.counter_names = n;
        self
    }

    /// Also serve the ECS instance metadata endpoints (plain HTTP) on `addr` (port 0 picks a
    /// free port); see [`EmulatorHandle::metadata_url`].
    pub fn metadata_listen(mut self, addr: Option<SocketAddr>) -> Self {
        self.metadata_listen = addr;
        self
    }

    /// Address of the KMS/STS listener (port 0 picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Address of the admin listener (port 0 picks a free port).
    pub fn admin_listen(mut self, addr: SocketAddr) -> Self {
        self.admin_listen = addr;
        self
    }

    /// Serve HTTPS with a freshly generated CA (see [`EmulatorHandle::ca_pem`]).
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Binds both listeners and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// [`EmulatorError`] for an invalid seed, a TLS setup failure or a bind failure.
    pub async fn start(self) -> Result<EmulatorHandle, EmulatorError> {
        let mut state = State::from_seed(&self.seed)?;
        state.secret_counter_names = self.counter_names;
        let state = Arc::new(state);
        let tls = if self.tls {
            Some(tls::generate()?)
        } else {
            None
        };
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| EmulatorError::Bind { addr, source })
        };
        let service_tcp = bind(self.listen).await?;
        let admin_tcp = bind(self.admin_listen).await?;
        let service_addr = service_tcp
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: self.listen,
                source,
            })?;
        let admin_addr = admin_tcp
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: self.admin_listen,
                source,
            })?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config.clone()));
        let (listener, accept_task) =
            server::EmuListener::start(service_tcp, acceptor).map_err(|source| {
                EmulatorError::Bind {
                    addr: self.listen,
                    source,
                }
            })?;
        let app = Arc::new(server::App::new(state.clone()));
        let router = server::service_router(app);
        let service_task = tokio::spawn({
            let signal = signal(shutdown_rx.clone());
            async move {
                let make = router.into_make_service_with_connect_info::<server::ConnMeta>();
                if let Err(err) = axum::serve(listener, make)
                    .with_graceful_shutdown(signal)
                    .await
                {
                    tracing::warn!(error = %err, "emulator service listener stopped");
                }
            }
        });
        let admin_task = tokio::spawn({
            let signal = signal(shutdown_rx);
            let router = admin::admin_router(state.clone());
            async move {
                if let Err(err) = axum::serve(admin_tcp, router)
                    .with_graceful_shutdown(signal)
                    .await
                {
                    tracing::warn!(error = %err, "emulator admin listener stopped");
                }
            }
        });
        let mut serve_tasks = vec![service_task, admin_task];
        let mut metadata_url = None;
        let mut accept_tasks = vec![accept_task];
        if let Some(addr) = self.metadata_listen {
            let tcp = bind(addr).await?;
            let local = tcp
                .local_addr()
                .map_err(|source| EmulatorError::Bind { addr, source })?;
            let (listener, task) = server::EmuListener::start(tcp, None)
                .map_err(|source| EmulatorError::Bind { addr, source })?;
            accept_tasks.push(task);
            let router = metadata::metadata_router(state.clone());
            let signal = signal(shutdown_tx.subscribe());
            serve_tasks.push(tokio::spawn(async move {
                let make = router.into_make_service_with_connect_info::<server::ConnMeta>();
                if let Err(err) = axum::serve(listener, make)
                    .with_graceful_shutdown(signal)
                    .await
                {
                    tracing::warn!(error = %err, "emulator metadata listener stopped");
                }
            }));
            metadata_url = Some(
                Url::parse(&format!("http://{local}/"))
                    .expect("a socket address makes a valid URL"),
            );
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = |scheme: &str, addr: SocketAddr| {
            Url::parse(&format!("{scheme}://{addr}/")).expect("a socket address makes a valid URL")
        };
        Ok(EmulatorHandle {
            service_url: url(scheme, service_addr),
            admin_url: url("http", admin_addr),
            ca_pem: tls.map(|t| t.ca_pem),
            metadata_url,
            state,
            shutdown: shutdown_tx,
            accept_tasks,
            serve_tasks,
        })
    }
}

/// A running emulator. Dropping it stops it; [`shutdown`](Self::shutdown) stops it and waits.
#[derive(Debug)]
pub struct EmulatorHandle {
    service_url: Url,
    admin_url: Url,
    ca_pem: Option<String>,
    metadata_url: Option<Url>,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
    serve_tasks: Vec<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// URL of the KMS API (`http://127.0.0.1:<port>/`, or `https://` with TLS).
    pub fn kms_url(&self) -> &Url {
        &self.service_url
    }

    /// URL of the STS API (the same listener as KMS; calls are told apart by `Version`).
    pub fn sts_url(&self) -> &Url {
        &self.service_url
    }

    /// URL of the OOS API (the same listener; calls are told apart by `Version`).
    pub fn oos_url(&self) -> &Url {
        &self.service_url
    }

    /// The listener's socket address, e.g. for resolving a KMS instance host name
    /// (`kst-x.cryptoservice.kms.aliyuncs.com`) to the emulator, whose TLS certificate covers
    /// `*.cryptoservice.kms.aliyuncs.com`. The instance API shares the listener.
    pub fn service_addr(&self) -> std::net::SocketAddr {
        let host = self.service_url.host_str().unwrap_or("127.0.0.1");
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        std::net::SocketAddr::new(ip, self.service_url.port().unwrap_or(0))
    }

    /// The ClientKey JSON and password of a generated KMS instance key (see
    /// [`SeedClientKey::certificate_pem`]).
    pub fn client_key(&self, key_id: &str) -> Option<&crate::dkms::GeneratedClientKey> {
        self.state.client_key(key_id)
    }

    /// URL of the admin API (always plain HTTP on its own listener).
    pub fn admin_url(&self) -> &Url {
        &self.admin_url
    }

    /// URL of the ECS metadata server (`http://127.0.0.1:<port>/`), when enabled.
    pub fn metadata_url(&self) -> Option<&Url> {
        self.metadata_url.as_ref()
    }

    /// A JWT for `request` signed with the built-in TEST ONLY key (see
    /// [`State::mint_oidc_token`]).
    ///
    /// # Errors
    /// [`AdminError::OidcProviderNotFound`].
    pub fn mint_oidc_token(&self, request: &MintTokenRequest) -> Result<String, AdminError> {
        self.state.mint_oidc_token(request)
    }

    /// The CA certificate (PEM) to pin, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The emulator's state, with the admin operations (counters, faults, rotation, STS expiry).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Current call counters.
    pub fn counters(&self) -> CounterSnapshot {
        self.state.counters()
    }

    /// Stops both listeners, letting in-flight requests finish for up to 2 seconds.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.accept_tasks {
            task.abort();
        }
        for task in std::mem::take(&mut self.serve_tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.accept_tasks {
            task.abort();
        }
        for task in &self.serve_tasks {
            task.abort();
        }
    }
}
