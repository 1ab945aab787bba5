//! Where a per-sender rate limit keeps its buckets: in this process's
//! memory ([`SenderLimits`]) when the store is SQLite, which one gateway
//! owns, or in PostgreSQL when several gateways may share the store, so a
//! sender writing to two of them gets the limit once
//! ([`Store::take_sms_token`]). Both follow the same rules.

use crate::sms::limits::{RateLimit, SenderLimits, Taken};
use crate::tickets::store::{Backend, SharedTake, Store, StoreError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a gateway deletes shared buckets that have refilled.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// One limit (texts per minute, or new tickets per hour) for every sender.
pub enum SenderLimit {
    Local(Mutex<SenderLimits>),
    Shared(SharedLimit),
}

/// A limit whose buckets are rows in the store.
pub struct SharedLimit {
    store: Store,
    limit: RateLimit,
    capacity: u32,
    period: Duration,
    next_purge: Mutex<Instant>,
}

impl SenderLimit {
    /// `capacity` texts per `period` per sender (0: no limit), kept where
    /// `store`'s backend calls for.
    pub fn new(store: &Store, limit: RateLimit, capacity: u32, period: Duration) -> SenderLimit {
        match store.backend() {
            Backend::Sqlite => SenderLimit::Local(Mutex::new(SenderLimits::new(capacity, period))),
            Backend::Postgres => SenderLimit::Shared(SharedLimit {
                store: store.clone(),
                limit,
                capacity,
                period,
                next_purge: Mutex::new(Instant::now() + PURGE_EVERY),
            }),
        }
    }

    /// Counts message `id` from `sender`; the inner `Err` is how long until
    /// the sender may send again.
    pub async fn take(
        &self,
        sender: &str,
        id: &str,
        now: Instant,
    ) -> Result<Result<Taken, Duration>, StoreError> {
        match self {
            SenderLimit::Local(limits) => Ok(lock(limits).take(sender, id, now)),
            SenderLimit::Shared(shared) => shared.take(sender, id, now).await,
        }
    }

    /// Returns the token message `id` took: it was a retry.
    pub async fn give_back(&self, sender: &str, id: &str) -> Result<(), StoreError> {
        match self {
            SenderLimit::Local(limits) => {
                lock(limits).give_back(sender, id);
                Ok(())
            }
            SenderLimit::Shared(shared) => {
                shared
                    .store
                    .give_back_sms_token(shared.limit.code(), sender, id, shared.capacity)
                    .await
            }
        }
    }

    /// Whether this refusal is the first since the sender's last accepted
    /// text (and so gets the "too many texts" reply).
    pub async fn tell(&self, sender: &str) -> Result<bool, StoreError> {
        match self {
            SenderLimit::Local(limits) => Ok(lock(limits).tell(sender)),
            SenderLimit::Shared(shared) => {
                shared
                    .store
                    .tell_sms_sender(shared.limit.code(), sender)
                    .await
            }
        }
    }
}

impl SharedLimit {
    async fn take(
        &self,
        sender: &str,
        id: &str,
        now: Instant,
    ) -> Result<Result<Taken, Duration>, StoreError> {
        if self.capacity == 0 {
            return Ok(Ok(Taken::Free));
        }
        self.purge_now_and_then(now);
        let taken = self
            .store
            .take_sms_token(self.limit.code(), sender, id, self.capacity, self.period)
            .await?;
        Ok(match taken {
            SharedTake::Token => Ok(Taken::Token),
            SharedTake::Free => Ok(Taken::Free),
            SharedTake::Refused(wait) => Err(wait),
        })
    }

    /// Once a minute, in the background: buckets untouched for a whole
    /// period are full again and need no row.
    fn purge_now_and_then(&self, now: Instant) {
        {
            let mut next = lock(&self.next_purge);
            if now < *next {
                return;
            }
            *next = now + PURGE_EVERY;
        }
        let store = self.store.clone();
        let limit = self.limit.code();
        let Ok(period) = chrono::Duration::from_std(self.period) else {
            return;
        };
        tokio::spawn(async move {
            let before = store.now() - period;
            if let Err(e) = store.purge_sms_limits(limit, before).await {
                tracing::warn!(limit, error = %e, "cannot purge refilled SMS limit buckets");
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
