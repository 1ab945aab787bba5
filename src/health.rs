//! Readiness (`GET /readyz`): whether a load balancer should send this
//! gateway new calls and webhooks. Ready only while the SIP sockets are
//! bound, the dialplans are loaded, the gateway is not draining, and the
//! database answers a query now. It also names the instance and the
//! version of its loaded dialplans, so that instances behind one proxy can
//! be compared after a reload. `/healthz` (in `http`) only says the
//! process serves HTTP.

use crate::tickets::store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// How long the database may take to answer a readiness check.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the server knows about its own state, shared with `/readyz`.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness(Arc<Flags>);

#[derive(Default)]
struct Flags {
    sip_bound: AtomicBool,
    dialplans_loaded: AtomicBool,
    draining: AtomicBool,
    dialplan_version: Mutex<String>,
    instance: OnceLock<String>,
}

impl Readiness {
    pub fn set_sip_bound(&self, bound: bool) {
        self.0.sip_bound.store(bound, Ordering::Relaxed);
    }

    /// Dialplans of `version` are loaded (at start, and on each reload).
    pub fn set_dialplans_loaded(&self, version: &str) {
        *self
            .0
            .dialplan_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = version.to_string();
        self.0.dialplans_loaded.store(true, Ordering::Relaxed);
    }

    /// The loaded dialplans' version (empty before they are loaded).
    pub fn dialplan_version(&self) -> String {
        self.0
            .dialplan_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// This instance's name, shown by `/readyz`; set once.
    pub fn set_instance(&self, name: &str) {
        let _ = self.0.instance.set(name.to_string());
    }

    pub fn draining(&self) -> bool {
        self.0.draining.load(Ordering::Relaxed)
    }

    /// The gateway stopped taking calls (SIGTERM).
    pub fn set_draining(&self) {
        self.0.draining.store(true, Ordering::Relaxed);
    }
}

/// The answer of `/readyz`: each check, and the problems (empty when
/// ready).
#[derive(Debug, Serialize)]
struct Report {
    ready: bool,
    problems: Vec<String>,
    instance: String,
    dialplan_version: String,
}

pub fn router(store: Store, readiness: Readiness) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .with_state((store, readiness))
}

async fn readyz(
    State((store, readiness)): State<(Store, Readiness)>,
) -> (StatusCode, Json<Report>) {
    let flags = &readiness.0;
    let mut problems = Vec::new();
    if !flags.sip_bound.load(Ordering::Relaxed) {
        problems.push("SIP sockets are not bound".to_string());
    }
    if !flags.dialplans_loaded.load(Ordering::Relaxed) {
        problems.push("dialplans are not loaded".to_string());
    }
    if flags.draining.load(Ordering::Relaxed) {
        problems.push("draining: the gateway is stopping".to_string());
    }
    match tokio::time::timeout(DATABASE_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("database: {e}")),
        Err(_) => problems.push(format!(
            "database: no answer within {} s",
            DATABASE_TIMEOUT.as_secs()
        )),
    }
    let ready = problems.is_empty();
    if !ready {
        tracing::debug!(?problems, "not ready");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let report = Report {
        ready,
        problems,
        instance: flags.instance.get().cloned().unwrap_or_default(),
        dialplan_version: readiness.dialplan_version(),
    };
    (status, Json(report))
}
