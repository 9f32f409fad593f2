//! HTTP plumbing shared by every Alibaba Cloud client ([`super::RpcClient`], the KMS instance
//! client, the ECS metadata provider): how the `reqwest` client is built, how a reply body is
//! read within a size limit, how transport failures are told apart, and the retry loop.
//!
//! Each client keeps its own error type; they meet here through [`Retryable`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use zeroize::Zeroizing;

use super::retry::RetryPolicy;

/// Settings of a `reqwest` client.
pub(crate) struct HttpSettings<'a> {
    /// TLS configuration (roots, provider, ALPN).
    pub tls: rustls::ClientConfig,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout per attempt.
    pub request_timeout: Duration,
    /// `User-Agent` header, if any.
    pub user_agent: Option<&'a str>,
    /// Host names resolved to fixed addresses instead of DNS.
    pub resolve: &'a [(String, SocketAddr)],
}

/// How a TLS client checks the server's certificate.
pub(crate) enum ServerTrust {
    /// Chains to one of these roots (public or pinned).
    Roots(rustls::RootCertStore),
    /// A custom verifier (the KMS instance client's `ignoreSSL`).
    Verifier(std::sync::Arc<dyn rustls::client::danger::ServerCertVerifier>),
}

/// The crypto provider of every TLS client (ring).
pub(crate) fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// A root store of exactly `certs`.
///
/// # Errors
/// When a certificate is not usable as a trust anchor.
pub(crate) fn root_store(
    certs: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<rustls::RootCertStore, rustls::Error> {
    let mut store = rustls::RootCertStore::empty();
    for cert in certs {
        store.add(cert.clone())?;
    }
    Ok(store)
}

/// The TLS client configuration of every client: `provider` (from [`crypto_provider`]), its
/// safe default protocol versions, no client certificate, HTTP/1.1 offered by ALPN.
///
/// # Errors
/// When the provider supports none of the default protocol versions.
pub(crate) fn tls_client_config(
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
    trust: ServerTrust,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let mut config = match trust {
        ServerTrust::Roots(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        ServerTrust::Verifier(verifier) => builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A `reqwest` client that never follows redirects and ignores proxy environment variables:
/// a request goes to the endpoint that was approved, nowhere else.
pub(crate) fn http_client(settings: HttpSettings<'_>) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(settings.tls)
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(agent) = settings.user_agent {
        builder = builder.user_agent(agent);
    }
    for (host, addr) in settings.resolve {
        builder = builder.resolve(host, *addr);
    }
    builder.build()
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the limit (announced by `Content-Length`, or received).
    TooLarge,
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

/// Reads the whole body of `response`, refusing more than `limit` bytes (before reading when
/// `Content-Length` announces more). The bytes are zeroed on drop: a body may hold a secret.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, BodyError> {
    if response
        .content_length()
        .is_some_and(|announced| announced > limit as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What kind of transport failure a `reqwest` error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransportKind {
    /// The server's certificate was not accepted (untrusted, wrong name, expired).
    UntrustedCertificate,
    /// No connection could be made (DNS, refused, handshake, connect timeout).
    Connect,
    /// The request timeout elapsed after connecting.
    Timeout,
    /// The connection broke before a full response arrived.
    Connection,
}

/// Classifies a `reqwest` error.
pub(crate) fn classify(e: &reqwest::Error) -> TransportKind {
    if is_certificate_error(e) {
        TransportKind::UntrustedCertificate
    } else if e.is_connect() {
        TransportKind::Connect
    } else if e.is_timeout() {
        TransportKind::Timeout
    } else {
        TransportKind::Connection
    }
}

/// True when a rustls certificate verification failure is somewhere in the cause chain. rustls
/// errors travel inside (possibly nested) `io::Error`s, whose `source()` skips the wrapped
/// error itself, so those are unwrapped with `get_ref`.
pub(crate) fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        current = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// What the retry loop needs to know about a client's error.
pub(crate) trait Retryable {
    /// Whether the call may succeed if repeated.
    fn is_retryable(&self) -> bool;
    /// Server-requested delay before a retry.
    fn retry_after(&self) -> Option<Duration>;
    /// Bounded label for logs and metrics.
    fn metric_label(&self) -> &'static str;
    /// The service's error code, when it answered with one.
    fn code(&self) -> Option<&str>;
}

/// Runs `attempt(1)`, `attempt(2)`, ... until one succeeds, fails for good, or `policy` allows
/// no more attempts; waits [`RetryPolicy::delay`] between attempts. Each attempt must build and
/// sign its request afresh (servers refuse a reused nonce).
pub(crate) async fn with_retries<T, E, F, Fut>(
    policy: &RetryPolicy,
    action: &str,
    host: &str,
    mut attempt: F,
) -> Result<T, E>
where
    E: Retryable,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let max = policy.max_attempts.max(1);
    let mut n = 1;
    loop {
        match attempt(n).await {
            Err(err) if err.is_retryable() && n < max => {
                let delay = policy.delay(n, err.retry_after());
                tracing::debug!(
                    action,
                    host,
                    attempt = n,
                    error = err.metric_label(),
                    code = err.code().unwrap_or(""),
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "retrying Alibaba Cloud call"
                );
                tokio::time::sleep(delay).await;
                n += 1;
            }
            done => return done,
        }
    }
}

/// Test support: a loopback HTTP/1.1 server that answers every request with `head` followed by
/// `body_bytes` bytes of `x` sent in chunks (chunked transfer encoding when `head` says so).
#[cfg(test)]
pub(crate) async fn serve_body(head: &'static str, body_bytes: usize) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let chunked = head.contains("chunked");
                let _ = socket.write_all(head.as_bytes()).await;
                let chunk = vec![b'x'; 16 * 1024];
                let mut left = body_bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    let sent = if chunked {
                        socket
                            .write_all(format!("{n:x}\r\n").as_bytes())
                            .await
                            .is_ok()
                            && socket.write_all(&chunk[..n]).await.is_ok()
                            && socket.write_all(b"\r\n").await.is_ok()
                    } else {
                        socket.write_all(&chunk[..n]).await.is_ok()
                    };
                    if !sent {
                        return;
                    }
                    left -= n;
                }
                if chunked {
                    let _ = socket.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const CHUNKED: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

    #[test]
    fn every_tls_client_offers_http1_only_and_refuses_a_non_certificate_as_a_root() {
        let config = tls_client_config(
            crypto_provider(),
            ServerTrust::Roots(rustls::RootCertStore::empty()),
        )
        .unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(root_store(&[rustls::pki_types::CertificateDer::from(vec![1, 2, 3])]).is_err());
        assert!(root_store(&[]).unwrap().is_empty());
    }

    async fn get(addr: SocketAddr) -> reqwest::Response {
        let tls = super::super::client::tls_config(&super::super::TlsRoots::WebPki).unwrap();
        let http = http_client(HttpSettings {
            tls,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            user_agent: None,
            resolve: &[],
        })
        .unwrap();
        http.get(format!("http://{addr}/")).send().await.unwrap()
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole() {
        let addr = serve_body(CHUNKED, 40_000).await;
        let body = read_capped(&mut get(addr).await, 40_000).await.unwrap();
        assert_eq!(body.len(), 40_000);
    }

    #[tokio::test]
    async fn endless_bodies_stop_at_the_limit() {
        let addr = serve_body(CHUNKED, 64 << 20).await;
        let err = read_capped(&mut get(addr).await, 64 * 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge), "{err:?}");
    }

    #[tokio::test]
    async fn an_announced_oversized_body_is_refused_before_reading() {
        let addr = serve_body("HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n", 0).await;
        let err = read_capped(&mut get(addr).await, 1000).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge), "{err:?}");
    }

    #[derive(Debug)]
    struct Failure {
        retryable: bool,
    }

    impl Retryable for Failure {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            Some(Duration::from_millis(1))
        }
        fn metric_label(&self) -> &'static str {
            "test"
        }
        fn code(&self) -> Option<&str> {
            None
        }
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            ..RetryPolicy::default()
        }
    }

    #[tokio::test]
    async fn retryable_failures_are_repeated_up_to_the_attempt_limit() {
        let calls = AtomicU32::new(0);
        let out: Result<(), Failure> = with_retries(&policy(3), "A", "h", |n| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                assert!(n <= 3);
                Err(Failure { retryable: true })
            }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn final_failures_and_successes_end_the_loop_at_once() {
        let calls = AtomicU32::new(0);
        let out: Result<(), Failure> = with_retries(&policy(5), "A", "h", |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err(Failure { retryable: false }) }
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);

        let out: Result<u32, Failure> = with_retries(&policy(5), "A", "h", |n| async move {
            if n < 2 {
                Err(Failure { retryable: true })
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(out.unwrap(), 2);
    }
}
