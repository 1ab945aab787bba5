//! The staff web console under `/console`: login with an API token into a
//! server-side session, a ticket board by status with SLA countdowns, a
//! ticket page with its timeline and actions, the calls in the IVR now and
//! a dashboard of the centre's indicators.
//!
//! Pages are HTML rendered on the server with maud (which escapes every
//! spliced value); the few assets (a stylesheet and a countdown script)
//! are compiled into the binary, so the console needs nothing from the
//! internet. Every form is a POST carrying the session's CSRF token
//! (`session::CsrfForm`). Actions go through the same store calls as the
//! staff API, so a transition queues the customer's text the same way.

mod board;
mod charts;
mod clocks;
mod dashboard;
mod live;
mod page;
mod session;
mod ticket;

use crate::instances::Cluster;
use crate::recordings::Recordings;
use crate::tickets::store::Store;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

/// What every console handler can reach.
#[derive(Clone)]
struct ConsoleState {
    store: Store,
    cluster: Cluster,
    recordings: Recordings,
}

/// The console's routes, to be merged into the gateway's router.
pub fn router(store: Store, cluster: Cluster, recordings: Recordings) -> Router {
    let console = Router::new()
        .route("/", get(|| async { Redirect::to("/console/board") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/board", get(board::show))
        .route("/tickets/{number}", get(ticket::show))
        .route("/tickets/{number}/transition", post(ticket::transition))
        .route("/tickets/{number}/note", post(ticket::note))
        .route("/tickets/{number}/assign", post(ticket::assign))
        .route("/recordings/{token}", get(ticket::recording))
        .route("/calls/live", get(live::show))
        .route("/dashboard", get(dashboard::show))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .route("/assets/favicon.svg", get(icon))
        .fallback(|| async { page::ConsoleError::not_found("no such console page") })
        .with_state(ConsoleState {
            store,
            cluster,
            recordings,
        })
        .layer(axum::middleware::map_response(protect));
    Router::new().nest("/console", console)
}

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");
const ICON: &str = include_str!("assets/favicon.svg");

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        text,
    )
        .into_response()
}

/// Headers on every console answer: scripts, styles and images only from
/// the console itself (no inline script can run even if some text escaped
/// escaping), forms only to it, no framing (clickjacking), no sniffing,
/// and pages never cached (they hold ticket data and CSRF tokens).
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
