//! The gateway's HTTP side: builds the one axum `Router` from the config
//! and the store, and serves it until the server stops. Routes belong to
//! their modules (`sms::webhook` for the inbound SMS webhooks,
//! `sms::status` for delivery-status callbacks); this file
//! only puts them together, binds nothing itself and decides nothing about
//! a request.

use crate::config::Config;
use crate::tickets::store::Store;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Every HTTP route of the gateway.
pub fn router(config: &Config, store: Store) -> Router {
    // The one place where each part's routes join: add other modules'
    // routers (the SMS outbox's delivery-status callback, the staff API)
    // to this list.
    let parts = [
        crate::sms::webhook::router(&config.sms, store.clone()),
        crate::sms::status::router(store, config.sms_outbox.clone()),
    ];
    parts
        .into_iter()
        .fold(Router::new().route("/healthz", get(healthz)), Router::merge)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Serves `router` on `listener` until `stop` turns true (or its sender is
/// dropped); then finishes the requests in flight and returns.
pub async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let stopped = async move {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(%error, "HTTP server failed");
    }
    tracing::info!("HTTP stopped");
}
