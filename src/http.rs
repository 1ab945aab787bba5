//! The gateway's HTTP side: builds the one axum `Router` from the config
//! and the store, and serves it until the server stops. Routes belong to
//! their modules (`sms::webhook` for the inbound SMS webhooks,
//! `sms::status` for delivery-status callbacks, `api` for the staff REST
//! API under `/api/v1`, `console` for the staff web console under
//! `/console`); this file
//! only puts them together, binds nothing itself and decides nothing about
//! a request.

use crate::config::Config;
use crate::ivr::runner::LiveCalls;
use crate::tickets::store::Store;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Every HTTP route of the gateway. `live_calls` is the IVR's view of the
/// calls in progress, for the staff API.
pub fn router(config: &Config, store: Store, live_calls: LiveCalls) -> Router {
    // The one place where each part's routes join: add other modules'
    // routers (the console, metrics) to this list.
    let parts = [
        crate::sms::webhook::router(&config.sms, store.clone()),
        crate::sms::status::router(store.clone(), config.sms_outbox.clone()),
        crate::metrics::router(store.clone()),
        crate::api::router(store.clone(), live_calls.clone()),
        crate::console::router(store, live_calls),
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
