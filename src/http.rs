//! The gateway's HTTP side: builds the one axum `Router` from the config
//! and the store, and serves it until the server stops. Routes belong to
//! their modules (`sms::webhook` for the inbound SMS webhooks,
//! `sms::status` for delivery-status callbacks, `api` for the staff REST
//! API under `/api/v1`, `console` for the staff web console under
//! `/console`); this file
//! only puts them together, binds nothing itself and decides nothing about
//! a request. It caps the connections served at once (`http.max_connections`,
//! part of the descriptor budget in `resources`), so that no flood of HTTP
//! connections can take the descriptors calls need.

use crate::config::Config;
use crate::instances::Cluster;
use crate::log_throttle::LogThrottle;
use crate::recordings::Recordings;
use crate::tickets::store::Store;
use axum::routing::get;
use axum::Router;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Every HTTP route of the gateway. `cluster` is the view of the
/// instances sharing the store and the calls in their IVRs, for staff.
pub fn router(config: &Config, store: Store, cluster: Cluster, recordings: Recordings) -> Router {
    // The one place where each part's routes join: add other modules'
    // routers (the console, metrics) to this list.
    let parts = [
        crate::sms::webhook::router(&config.sms, store.clone()),
        crate::sms::status::router(store.clone(), config.sms_outbox.clone()),
        crate::metrics::router(store.clone()),
        crate::api::router(store.clone(), cluster.clone(), recordings.clone()),
        crate::console::router(store, cluster, recordings),
    ];
    parts
        .into_iter()
        .fold(Router::new().route("/healthz", get(healthz)), Router::merge)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Serves `router` on `listener`, at most `max_connections` connections
/// at once, until `stop` turns true (or its sender is dropped); then
/// finishes the requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    max_connections: usize,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = async move {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    let listener = CappedListener {
        inner: listener,
        open: Arc::new(AtomicUsize::new(0)),
        max: max_connections,
        refusals: LogThrottle::new(Duration::from_secs(60), 1),
    };
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(%error, "HTTP server failed");
    }
    tracing::info!("HTTP stopped");
}

/// A listener that serves at most `max` connections at once and closes
/// the others as soon as they are accepted (a reset, nothing read).
/// Accept errors are handled by axum's listener (it pauses a second).
struct CappedListener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    max: usize,
    refusals: LogThrottle<()>,
}

impl axum::serve::Listener for CappedListener {
    type Io = CountedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, remote) = axum::serve::Listener::accept(&mut self.inner).await;
            if self.open.fetch_add(1, Ordering::Relaxed) < self.max {
                let open = self.open.clone();
                return (CountedStream { stream, open }, remote);
            }
            self.open.fetch_sub(1, Ordering::Relaxed);
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
            if let Some(held_back) = self.refusals.note((), Instant::now()) {
                tracing::warn!(%remote, limit = self.max, held_back, "HTTP connection refused: http.max_connections are open (logged once a minute)");
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A served HTTP connection; dropping it frees its place.
struct CountedStream {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
