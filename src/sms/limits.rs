//! Per-sender rate limits on inbound texts: a token bucket per sender
//! number, refilled evenly over its period. Sans-IO: time is an input.
//!
//! The buckets live in memory, per gateway instance. That is acceptable
//! because they are a brake, not an account: behind a load balancer of N
//! instances a sender gets at most N times the limit, still far from a
//! flood, and guessing a ticket number (9 random digits) stays hopeless.
//! A restart forgets them, which costs at most one more period's worth.
//!
//! A message id already counted for a sender is not counted again, so a
//! provider's retries of one text (even concurrent ones) use one token and
//! all get the same answer.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Message ids remembered per sender, for not counting retries twice.
const REMEMBERED_IDS: usize = 16;
/// Past this many senders, full buckets are dropped on the next take.
const PRUNE_ABOVE: usize = 10_000;

/// Token buckets, one per sender.
#[derive(Debug)]
pub struct SenderLimits {
    capacity: u32,
    period: Duration,
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    recent_ids: VecDeque<String>,
}

impl SenderLimits {
    /// `capacity` texts per `period` per sender, in a burst or spread out;
    /// 0 means no limit.
    pub fn new(capacity: u32, period: Duration) -> SenderLimits {
        SenderLimits {
            capacity,
            period,
            buckets: HashMap::new(),
        }
    }

    /// Counts message `id` from `sender` at `now`. `Err` carries how long
    /// until the sender may send again.
    pub fn take(&mut self, sender: &str, id: &str, now: Instant) -> Result<(), Duration> {
        if self.capacity == 0 {
            return Ok(());
        }
        if self.buckets.len() > PRUNE_ABOVE {
            self.prune(now);
        }
        let capacity = f64::from(self.capacity);
        let rate = capacity / self.period.as_secs_f64();
        let bucket = self
            .buckets
            .entry(sender.to_string())
            .or_insert_with(|| Bucket {
                tokens: capacity,
                updated: now,
                recent_ids: VecDeque::new(),
            });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        if bucket.recent_ids.iter().any(|seen| seen == id) {
            return Ok(());
        }
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) / rate;
            return Err(Duration::from_secs_f64(wait.max(0.001)));
        }
        bucket.tokens -= 1.0;
        if bucket.recent_ids.len() == REMEMBERED_IDS {
            bucket.recent_ids.pop_front();
        }
        bucket.recent_ids.push_back(id.to_string());
        Ok(())
    }

    /// Forgets senders whose bucket has refilled: they are as if new.
    fn prune(&mut self, now: Instant) {
        let period = self.period;
        self.buckets
            .retain(|_, bucket| now.saturating_duration_since(bucket.updated) < period);
    }

    #[cfg(test)]
    fn senders(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_burst_up_to_the_capacity_passes_then_waits_for_a_refill() {
        let mut limits = SenderLimits::new(3, MINUTE);
        let start = Instant::now();
        for id in ["a", "b", "c"] {
            assert_eq!(limits.take("138", id, start), Ok(()));
        }
        let wait = limits.take("138", "d", start).unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20));
        assert_eq!(limits.take("139", "d", start), Ok(()), "others are apart");
        assert_eq!(
            limits.take("138", "d", start + Duration::from_secs(20)),
            Ok(())
        );
    }

    #[test]
    fn a_retried_message_id_is_counted_once() {
        let mut limits = SenderLimits::new(1, MINUTE);
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(limits.take("138", "SM1", now), Ok(()));
        }
        assert!(limits.take("138", "SM2", now).is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        let mut limits = SenderLimits::new(0, MINUTE);
        let now = Instant::now();
        for n in 0..100 {
            assert_eq!(limits.take("138", &n.to_string(), now), Ok(()));
        }
    }

    #[test]
    fn refilled_senders_are_pruned() {
        let mut limits = SenderLimits::new(1, MINUTE);
        let start = Instant::now();
        for n in 0..=PRUNE_ABOVE {
            let _ = limits.take(&n.to_string(), "x", start);
        }
        assert_eq!(limits.senders(), PRUNE_ABOVE + 1);
        let _ = limits.take("new", "x", start + MINUTE);
        assert_eq!(limits.senders(), 1);
    }
}
