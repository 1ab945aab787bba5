//! Background work on the store: the SLA breach check, run periodically
//! until the server stops. Safe to run in every gateway sharing one
//! database (see `store::sla_job`).

use super::store::Store;
use std::time::Duration;
use tokio::sync::watch;

/// Marks passed deadlines every `period` until `stop` turns true.
pub async fn mark_breaches_every(store: Store, period: Duration, stop: watch::Receiver<bool>) {
    crate::periodic::every(period, stop, || async {
        match store.mark_breaches(store.now()).await {
            Ok(breaches) => {
                for breach in &breaches {
                    tracing::warn!(
                        ticket = %breach.number,
                        clock = %breach.clock,
                        due = %breach.due,
                        "SLA deadline breached"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "SLA breach check failed"),
        }
    })
    .await;
}
