//! The HTTP listener: how connections are accepted, kept and ended.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so a client trickling
//! header bytes holds a socket forever and a thousand of them exhaust the file
//! descriptors. Here every connection is HTTP/1.1 (HTTP/2 belongs to the reverse proxy in
//! front) with a deadline for each request head — counted from when the connection opens
//! or the previous answer ends, so it also ends idle keep-alive connections — and at most
//! `max_connections` are open at once: past that, accepting waits for one to end. One
//! address may hold at most `max_connections_per_ip` of them (trusted proxies excepted),
//! and a connection beyond that is closed as soon as it is accepted, so a single client
//! cannot fill the table and starve everyone else (health probes included). On
//! shutdown, in-flight requests get `shutdown_grace` to finish; what is left is dropped.
//!
//! With a TLS acceptor (the cluster listener under mutual TLS) the handshake runs in the
//! connection's own task, bounded by the same header deadline, so a peer that stalls in
//! the handshake holds only its own slot.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How connections are bounded (from `limits` in the configuration).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections one peer address may hold (an IPv6 peer counts per /64).
    pub max_connections_per_ip: usize,
    /// Peers exempt from the per-address cap (reverse proxies carry many clients).
    pub trusted_proxies: tenantry_config::proxies::TrustedProxies,
    /// Time allowed to send a request head, from connection open or the previous answer.
    pub header_read_timeout: Duration,
    /// Longest wait for in-flight requests once shutdown starts.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    /// The configured limits; an unset connection cap is sized from the descriptor limit
    /// now in force (raised at start by `resources::raise_fd_limit`).
    pub fn from_config(config: &tenantry_config::Config) -> Self {
        let limits = &config.limits;
        let sizing = tenantry_config::resources::size_client_connections(
            tenantry_config::resources::max_fds(),
            limits.max_connections,
        );
        if let Some(warning) = &sizing.warning {
            tracing::warn!("{warning}");
        }
        Self {
            max_connections: sizing.max_connections,
            max_connections_per_ip: limits.max_connections_per_ip,
            trusted_proxies: config.trusted_proxies.clone(),
            header_read_timeout: limits.header_read_timeout,
            shutdown_grace: limits.shutdown_grace,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains for at most
/// `limits.shutdown_grace`.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    run_with_tls(listener, app, limits, None, shutdown).await
}

/// [`run`], with every connection first completing a TLS handshake through `tls`.
pub async fn run_with_tls(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let per_peer = Arc::new(PeerCounts::default());
    let accept_errors = tenantry_errors::LogThrottle::new(Duration::from_secs(1));
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning on the error.
                    if let Some(suppressed) = accept_errors.allow() {
                        tracing::error!(error = %e, suppressed, "accepting a connection failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(peer_slot) = per_peer.enter(&limits, peer.ip()) else {
            // Over its share: closed at once, before any byte is read.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // The peer address feeds the per-IP attempt limits (`extract::ClientIp`).
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let Ok(response) = app.oneshot(request.map(axum::body::Body::new)).await;
                Ok::<_, Infallible>(response)
            }
        });
        let watcher = graceful.watcher();
        let (builder, tls) = (builder.clone(), tls.clone());
        let handshake_deadline = limits.header_read_timeout;
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => match tokio::time::timeout(handshake_deadline, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        watcher
                            .watch(builder.serve_connection(TokioIo::new(stream), service))
                            .await
                    }
                    Ok(Err(e)) => {
                        metrics::counter!("tls_handshake_failures_total").increment(1);
                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        metrics::counter!("tls_handshake_failures_total").increment(1);
                        tracing::debug!(peer = %peer, "TLS handshake timed out");
                        Ok(())
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(peer_slot);
            drop(permit);
        });
    }

    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(open, "draining connections");
    }
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = limits.shutdown_grace.as_secs(),
            "connections still open after the shutdown grace period were dropped"
        );
    }
    Ok(())
}

/// Open connections per peer address (IPv6 per /64, which one subscriber usually holds).
#[derive(Default)]
struct PeerCounts(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl PeerCounts {
    /// A slot for one more connection of `ip`, or `None` when it holds its share already.
    fn enter(self: &Arc<Self>, limits: &ConnectionLimits, ip: std::net::IpAddr) -> Option<PeerSlot> {
        if limits.trusted_proxies.contains(ip) {
            return Some(PeerSlot(None));
        }
        let key = tenantry_accounts::ratelimit::address_bucket(ip);
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(key).or_default();
        if *count >= limits.max_connections_per_ip {
            return None;
        }
        *count += 1;
        Some(PeerSlot(Some((self.clone(), key))))
    }
}

/// One connection's place in [`PeerCounts`], given back when the connection ends.
struct PeerSlot(Option<(Arc<PeerCounts>, std::net::IpAddr)>);

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Some((counts, key)) = self.0.take() {
            let mut counts = counts.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}
