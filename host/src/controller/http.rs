//! The controller's HTTP endpoints: `/metrics` (Prometheus text) on the metrics address,
//! `/healthz` and `/readyz` on the health address.
//!
//! * `/healthz` answers 200 while a heartbeat task on the runtime keeps ticking (a wedged
//!   runtime stops it, and the kubelet restarts the pod), 500 otherwise.
//! * `/readyz` answers 200 once the watches have listed everything (on every replica: a
//!   standby that waits for the Lease is ready too, see `docs/operations.md`), 503 before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::shutdown::Shutdown;

/// A `/healthz` heartbeat older than this fails the check.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(30);

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Binding the address failed.
    #[error("could not listen on {addr} for {what}")]
    Bind {
        /// `metrics` or `health probes`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Shared state behind the probes.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// Milliseconds since the process started at the last heartbeat.
    heartbeat_ms: AtomicU64,
    started: std::sync::OnceLock<std::time::Instant>,
}

impl Health {
    fn started(&self) -> std::time::Instant {
        *self.started.get_or_init(std::time::Instant::now)
    }

    /// Marks the process ready (watches synced).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Records a heartbeat now.
    pub fn beat(&self) {
        let ms = self.started().elapsed().as_millis();
        self.heartbeat_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Whether the last heartbeat is recent.
    pub fn is_alive(&self) -> bool {
        let last = Duration::from_millis(self.heartbeat_ms.load(Ordering::SeqCst));
        self.started().elapsed().saturating_sub(last) < HEARTBEAT_STALE
    }
}

async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    if health.is_alive() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "runtime heartbeat is stale\n",
        )
    }
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    if health.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "watches are not synced yet\n",
        )
    }
}

async fn metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { what, addr, source })
}

/// The two listeners, bound; [`Servers::serve`] runs them.
#[derive(Debug)]
pub struct Servers {
    metrics: TcpListener,
    health: TcpListener,
}

impl Servers {
    /// Binds both addresses (so a port clash fails start-up, not later).
    ///
    /// # Errors
    /// [`HttpError::Bind`].
    pub async fn bind(
        metrics_addr: SocketAddr,
        health_addr: SocketAddr,
    ) -> Result<Self, HttpError> {
        Ok(Self {
            metrics: bind("metrics", metrics_addr).await?,
            health: bind("health probes", health_addr).await?,
        })
    }

    /// The bound metrics and health addresses (port 0 resolved).
    pub fn addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        (
            self.metrics.local_addr().ok(),
            self.health.local_addr().ok(),
        )
    }

    /// Serves until `shutdown`, and beats the heartbeat every second meanwhile.
    pub fn serve(
        self,
        registry: Arc<Registry>,
        health: Arc<Health>,
        shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        health.beat();
        let metrics_app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(registry);
        let health_app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(health.clone());
        tokio::spawn(async move {
            let beat = {
                let health = health.clone();
                let shutdown = shutdown.clone();
                async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    loop {
                        tokio::select! {
                            () = shutdown.wait() => break,
                            _ = tick.tick() => health.beat(),
                        }
                    }
                }
            };
            let m = {
                let s = shutdown.clone();
                async move {
                    axum::serve(self.metrics, metrics_app)
                        .with_graceful_shutdown(async move { s.wait().await })
                        .await
                }
            };
            let h = {
                let s = shutdown.clone();
                async move {
                    axum::serve(self.health, health_app)
                        .with_graceful_shutdown(async move { s.wait().await })
                        .await
                }
            };
            let (rm, rh, ()) = tokio::join!(m, h, beat);
            for r in [rm, rh] {
                if let Err(e) = r {
                    tracing::error!(error = %e, "HTTP listener failed");
                }
            }
        })
    }
}
