//! Listeners and HTTP plumbing: the service listener (plain or TLS, with connections that a fault
//! can drop) dispatching signed RPC calls to the [`RpcService`]s, and the admin listener.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State as AxumState};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::auth::authenticate;
use super::faults::Terminal;
use super::kms::{KmsService, secret_name_of};
use super::protocol::{
    EmuError, ErrorStyle, RpcCall, error_response, html_error_page, json_response, new_request_id,
};
use super::service::RpcService;
use super::state::{State, lock};
use super::sts::StsService;

/// Largest request body accepted.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Per-connection information handed to handlers: the peer and a switch that kills the
/// connection (used by the `drop_connection` fault).
#[derive(Clone, Debug)]
pub(crate) struct ConnMeta {
    #[allow(dead_code)]
    pub remote: SocketAddr,
    kill: Arc<AtomicBool>,
}

impl ConnMeta {
    /// After this, every read and write on the connection fails, so hyper closes it without
    /// sending the response.
    pub fn kill(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

enum IoInner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A plain or TLS connection with a kill switch.
pub(crate) struct EmuIo {
    inner: IoInner,
    killed: Arc<AtomicBool>,
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by fault injection",
    )
}

impl AsyncRead for EmuIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(aborted()));
        }
        match &mut self.inner {
            IoInner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            IoInner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EmuIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(aborted()));
        }
        match &mut self.inner {
            IoInner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            IoInner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed.load(Ordering::SeqCst) {
            return Poll::Ready(Err(aborted()));
        }
        match &mut self.inner {
            IoInner::Plain(s) => Pin::new(s).poll_flush(cx),
            IoInner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            IoInner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            IoInner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An axum listener fed by an accept task (which also runs TLS handshakes off the accept path).
pub(crate) struct EmuListener {
    rx: mpsc::Receiver<(EmuIo, ConnMeta)>,
    local: SocketAddr,
}

impl EmuListener {
    /// Starts accepting on `tcp`; returns the listener and the accept task.
    pub fn start(
        tcp: TcpListener,
        tls: Option<TlsAcceptor>,
    ) -> io::Result<(Self, tokio::task::JoinHandle<()>)> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(tcp, tls, tx));
        Ok((Self { rx, local }, task))
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    tx: mpsc::Sender<(EmuIo, ConnMeta)>,
) {
    loop {
        let (stream, remote) = match tcp.accept().await {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(error = %err, "emulator accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let kill = Arc::new(AtomicBool::new(false));
        let meta = ConnMeta {
            remote,
            kill: kill.clone(),
        };
        match &tls {
            None => {
                if tx
                    .send((
                        EmuIo {
                            inner: IoInner::Plain(stream),
                            killed: kill,
                        },
                        meta,
                    ))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls_stream)) => {
                            let io = EmuIo {
                                inner: IoInner::Tls(Box::new(tls_stream)),
                                killed: kill,
                            };
                            let _ = tx.send((io, meta)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(error = %err, %remote, "emulator TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%remote, "emulator TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

impl axum::serve::Listener for EmuListener {
    type Io = EmuIo;
    type Addr = ConnMeta;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task ended (shutdown): never yield another connection.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnMeta {
            remote: self.local,
            kill: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, EmuListener>>
    for ConnMeta
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, EmuListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// What the service handlers share.
pub(crate) struct App {
    pub state: Arc<State>,
    pub services: Vec<Arc<dyn RpcService>>,
}

impl App {
    /// The products served today: KMS, STS and OOS (the KMS instance API is routed by
    /// `x-kms-apiname` in the handler).
    pub fn new(state: Arc<State>) -> Self {
        Self {
            state,
            services: vec![
                Arc::new(KmsService),
                Arc::new(StsService),
                Arc::new(super::oos::OosService),
            ],
        }
    }
}

/// The service router: every signed RPC call is `GET` or `POST /`.
pub(crate) fn service_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", axum::routing::any(rpc_handler))
        .fallback(|req: Request| async move {
            let err = EmuError::gateway(
                404,
                "InvalidAction.NotFound",
                format!("No API at path {}.", req.uri().path()),
            );
            error_response(&err, &new_request_id(), "")
        })
        .with_state(app)
}

fn dispatch(app: &App, call: &RpcCall, now: DateTime<Utc>) -> Result<Value, EmuError> {
    if let Some(name) = &call.duplicate {
        return Err(EmuError::invalid_parameter(format!(
            "The parameter {name} is given more than once."
        )));
    }
    if call.version.is_empty() {
        return Err(EmuError::missing("Version"));
    }
    if call.action.is_empty() {
        return Err(EmuError::missing("Action"));
    }
    let service = app
        .services
        .iter()
        .find(|s| s.version() == call.version)
        .ok_or_else(|| {
            EmuError::gateway(
                400,
                "InvalidVersion",
                format!(
                    "Specified parameter Version {:?} is not valid.",
                    call.version
                ),
            )
        })?;
    if !service.has_action(&call.action) {
        return Err(EmuError::gateway(
            404,
            "InvalidAction.NotFound",
            format!(
                "Specified api {} is not found for version {}.",
                call.action, call.version
            ),
        ));
    }
    let caller = if service.is_anonymous(&call.action) {
        None
    } else {
        Some(authenticate(
            &app.state,
            call,
            now,
            service.expired_token_style(),
        )?)
    };
    service.handle(&app.state, call, caller.as_ref(), now)
}

async fn rpc_handler(
    AxumState(app): AxumState<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<ConnMeta>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = new_request_id();
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let err = EmuError::gateway(
                413,
                "RequestEntityTooLarge",
                "The request body is too large.",
            );
            return error_response(&err, &request_id, &host);
        }
    };
    if parts.headers.contains_key("x-kms-apiname") {
        return super::instance::handle(&app.state, &conn, &parts.method, &parts.headers, &body)
            .await;
    }
    let call = RpcCall::parse(
        parts.method,
        parts.uri.path(),
        parts.uri.query(),
        parts.headers,
        body,
    );
    let state = &app.state;

    let counted_secret = if call.action == "GetSecretValue" {
        call.param("SecretName")
            .map(|p| secret_name_of(state, p).unwrap_or_else(|_| p.to_owned()))
    } else {
        None
    };
    lock(&state.counters).record_call(
        &call.action,
        counted_secret.as_deref(),
        state.secret_counter_names,
    );

    let outcome = lock(&state.faults).evaluate(&call.action, Instant::now());
    if outcome.fired > 0 {
        lock(&state.counters).faults_injected += outcome.fired;
    }
    if !outcome.delay.is_zero() {
        tokio::time::sleep(outcome.delay).await;
    }
    let style = if call.version == crate::kms::KMS_API_VERSION {
        ErrorStyle::Kms
    } else {
        ErrorStyle::Gateway
    };
    let result = match outcome.terminal {
        Some(Terminal::Drop) => {
            tracing::debug!(action = %call.action, "emulator dropping connection (fault)");
            conn.kill();
            return Response::new(Body::empty());
        }
        Some(Terminal::Throttle { retry_after_ms }) => Err(EmuError {
            status: 429,
            code: "Rejected.Throttling".into(),
            message: "QPS Limit Exceeded".into(),
            style,
            retry_after_ms,
        }),
        Some(Terminal::Error { status, code, html }) => {
            if html {
                lock(&state.counters).record_error(&format!("HTTP {status}"));
                return html_error_page(status);
            }
            Err(EmuError {
                status,
                code,
                message: "The request processing has failed due to some unknown error.".into(),
                style,
                retry_after_ms: None,
            })
        }
        None => dispatch(&app, &call, Utc::now()),
    };
    match result {
        Ok(mut value) => {
            if let Value::Object(map) = &mut value {
                map.insert("RequestId".into(), json!(request_id));
            }
            tracing::debug!(action = %call.action, status = 200, "emulator answered");
            json_response(&value, &request_id)
        }
        Err(err) => {
            lock(&state.counters).record_error(&err.code);
            tracing::debug!(action = %call.action, status = err.status, code = %err.code, "emulator answered with an error");
            error_response(&err, &request_id, &host)
        }
    }
}
