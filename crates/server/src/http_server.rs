//! The HTTP listener: how connections are accepted, kept and ended.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so a client trickling
//! header bytes holds a socket forever and a thousand of them exhaust the file
//! descriptors. Here every connection is HTTP/1.1 (HTTP/2 belongs to the reverse proxy in
//! front) with a deadline for each request head — counted from when the connection opens
//! or the previous answer ends, so it also ends idle keep-alive connections — and at most
//! `max_connections` are open at once: past that, accepting waits for one to end. On
//! shutdown, in-flight requests get `shutdown_grace` to finish; what is left is dropped.

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
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time allowed to send a request head, from connection open or the previous answer.
    pub header_read_timeout: Duration,
    /// Longest wait for in-flight requests once shutdown starts.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    /// The configured limits; an unset connection cap is sized from the descriptor limit
    /// now in force (raised at start by `resources::raise_fd_limit`).
    pub fn from_config(limits: &crate::config::Limits) -> Self {
        let sizing = crate::resources::size_client_connections(crate::resources::max_fds(), limits.max_connections);
        if let Some(warning) = &sizing.warning {
            tracing::warn!("{warning}");
        }
        Self {
            max_connections: sizing.max_connections,
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
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut accept_errors = AcceptErrors::default();
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
                    accept_errors.record(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
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
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
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

/// Accept failures, logged at most once a second with a count of the ones in between.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<std::time::Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn record(&mut self, error: &std::io::Error) {
        let now = std::time::Instant::now();
        if self
            .last_logged
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::error!(error = %error, suppressed = self.suppressed, "accepting a connection failed");
        self.last_logged = Some(now);
        self.suppressed = 0;
    }
}
