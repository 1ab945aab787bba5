//! The SMS outbox worker: delivers the notifications the store queued with
//! the ticket changes that caused them. Each round it claims a batch of due
//! notifications under a lease (`Store::claim_notifications`), sends them
//! concurrently through the configured [`Provider`], and records each
//! outcome: sent (with the provider's id), a retry after an exponential
//! backoff with full jitter, or failed (refused for good, or out of
//! attempts).
//!
//! Delivery is **at least once**. Every attempt carries the notification's
//! dedup key as its idempotency key; a gateway that dies between the
//! provider's 2xx and our mark resends, after the lease, with the same key,
//! which a deduplicating provider recognises. Any number of workers (one per
//! gateway) may share a database: claims skip each other's rows.
//!
//! This module owns the loop and the retry policy. It builds no texts and
//! writes no SQL (the store's outbox module does), and it speaks HTTP only
//! through the provider.

use crate::config::SmsOutboxConfig;
use crate::sms::provider::{OutboundMessage, Provider, SendError};
use crate::tickets::store::{ClaimedNotification, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

/// When to try again and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a notification is marked failed.
    pub max_attempts: u32,
    /// The longest first delay; doubled per attempt.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &SmsOutboxConfig) -> RetryPolicy {
        RetryPolicy {
            max_attempts: config.max_attempts,
            base: Duration::from_millis(config.backoff_base_ms),
            max: Duration::from_secs(config.backoff_max_secs),
        }
    }

    /// The longest wait after failed attempt `attempt` (1 for the first):
    /// `base * 2^(attempt - 1)`, capped at `max`.
    pub fn ceiling(&self, attempt: i64) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 31)).unwrap_or(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// The wait after failed attempt `attempt`, "full jitter": `unit` (drawn
    /// uniformly from [0, 1)) of the ceiling, so that many notifications
    /// failing together do not come back together.
    pub fn delay(&self, attempt: i64, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Whether attempt `attempt` was the last one allowed.
    pub fn exhausted(&self, attempt: i64) -> bool {
        attempt >= i64::from(self.max_attempts)
    }
}

/// Starts the outbox worker for `config`, or nothing when no provider is
/// configured (`provider = "none"`: notifications stay queued). The worker
/// stops when `stop` turns true (or its sender goes away), after the sends
/// in flight have finished.
pub fn spawn_worker(
    store: Store,
    config: SmsOutboxConfig,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    let provider = match Provider::from_config(&config) {
        Ok(Some(provider)) => provider,
        Ok(None) => {
            tracing::info!("no SMS provider configured: notifications stay queued");
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "SMS outbox worker not started");
            return None;
        }
    };
    tracing::info!(provider = provider.name(), "SMS outbox worker started");
    let worker = Worker {
        store,
        provider: Arc::new(provider),
        policy: RetryPolicy::from_config(&config),
        batch_size: config.batch_size.max(1),
        lease: Duration::from_secs(config.lease_secs),
        poll_interval: Duration::from_millis(config.poll_interval_ms),
    };
    Some(tokio::spawn(worker.run(stop)))
}

struct Worker {
    store: Store,
    provider: Arc<Provider>,
    policy: RetryPolicy,
    batch_size: usize,
    lease: Duration,
    poll_interval: Duration,
}

impl Worker {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            let claimed = match self
                .store
                .claim_notifications(self.store.now(), self.batch_size, self.lease)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %e, "claiming notifications failed");
                    Vec::new()
                }
            };
            let full = claimed.len() >= self.batch_size;
            let mut sends = JoinSet::new();
            for claim in claimed {
                let span = tracing::info_span!(
                    "notification",
                    key = %claim.dedup_key,
                    kind = %claim.kind,
                    attempt = claim.attempt,
                );
                let send = deliver(
                    self.store.clone(),
                    self.provider.clone(),
                    self.policy,
                    claim,
                );
                sends.spawn(send.instrument(span));
            }
            // Each send is bounded by the request timeout.
            while let Some(result) = sends.join_next().await {
                if let Err(e) = result {
                    tracing::error!(error = %e, "a notification send panicked");
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = stop.wait_for(|stopping| *stopping) => break,
            }
        }
        tracing::info!("SMS outbox worker stopped");
    }
}

/// Sends one claimed notification and records the outcome.
async fn deliver(
    store: Store,
    provider: Arc<Provider>,
    policy: RetryPolicy,
    claim: ClaimedNotification,
) {
    let message = OutboundMessage {
        key: &claim.dedup_key,
        to: &claim.recipient,
        body: &claim.body,
        ticket: claim.ticket_number.as_deref(),
    };
    let recorded = match provider.send(&message).await {
        Ok(sent) => {
            tracing::info!(
                provider_message_id = sent.provider_message_id.as_deref().unwrap_or(""),
                "notification sent"
            );
            crate::metrics::sms_sent();
            store.mark_sent(&claim, sent.provider_message_id).await
        }
        Err(SendError::Permanent(reason)) => {
            tracing::warn!(%reason, "notification refused by the provider; marked failed");
            crate::metrics::sms_failed();
            store.mark_failed(&claim, reason).await
        }
        Err(SendError::Transient(reason)) if policy.exhausted(claim.attempt) => {
            tracing::warn!(%reason, "notification failed after its last attempt; marked failed");
            let reason = format!("gave up after {} attempts: {reason}", claim.attempt);
            crate::metrics::sms_failed();
            store.mark_failed(&claim, reason).await
        }
        Err(SendError::Transient(reason)) => {
            let delay = policy.delay(claim.attempt, rand::random::<f64>());
            tracing::info!(%reason, retry_in_ms = delay.as_millis() as u64, "notification will be retried");
            let next = chrono::Duration::from_std(delay)
                .ok()
                .and_then(|delay| store.now().checked_add_signed(delay))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
            store.mark_retry(&claim, next, reason).await
        }
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::info!("the notification changed meanwhile; outcome not recorded"),
        // The claim stays until its lease ends; then it is sent again.
        Err(e) => tracing::error!(error = %e, "recording a notification's outcome failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(1000),
            max: Duration::from_secs(600),
        }
    }

    #[test]
    fn the_ceiling_doubles_per_attempt_up_to_the_cap() {
        let p = policy();
        let ceilings: Vec<u128> = (1..=12).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(
            ceilings,
            [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 512000, 600000, 600000]
        );
        assert_eq!(p.ceiling(1_000_000), Duration::from_secs(600));
        assert_eq!(p.ceiling(0), Duration::from_millis(1000));
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_ceiling() {
        let p = policy();
        assert_eq!(p.delay(3, 0.0), Duration::ZERO);
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(2000));
        assert!(p.delay(3, 0.999_999) < Duration::from_millis(4000));
        assert_eq!(p.delay(3, 7.0), Duration::from_millis(4000));
    }

    #[test]
    fn the_last_attempt_is_max_attempts() {
        let p = policy();
        assert!(!p.exhausted(7));
        assert!(p.exhausted(8));
    }
}
