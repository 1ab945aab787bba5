//! Background jobs that run every so often until the server stops (the
//! SLA breach check, the recordings' retention): the ticker, missed ticks
//! delayed rather than bunched, and the stop signal, in one place.

use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Runs `job` every `period` (the first at once) until `stop` turns true.
pub async fn every<F, Fut>(period: Duration, mut stop: watch::Receiver<bool>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        job().await;
    }
}
