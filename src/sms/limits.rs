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
//! all get the same answer. A delivery that turns out to be a retry of a
//! text already answered gives its token back ([`SenderLimits::give_back`]).
//!
//! A refused sender is told so once per run of refusals ([`SenderLimits::tell`]):
//! the first refused text since its last accepted one gets the "too many
//! texts" reply, later ones none, so that a flood (or two auto-responders
//! answering each other) is not answered text for text.
//!
//! Senders whose bucket has refilled are forgotten once the map has grown
//! to twice its size after the last such pruning (at least
//! [`PRUNE_ABOVE`]), so a flood of new senders costs amortized constant
//! time per text rather than a scan of every bucket on every text.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Message ids remembered per sender, for not counting retries twice.
const REMEMBERED_IDS: usize = 16;
/// Past this many senders, full buckets are dropped on the next take.
const PRUNE_ABOVE: usize = 10_000;

/// Which limit refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// `max_per_sender_per_minute`: texts of any kind.
    Texts,
    /// `max_new_tickets_per_sender_per_hour`: texts that open a ticket.
    NewTickets,
}

impl RateLimit {
    /// The limit's name in metrics and logs.
    pub fn code(self) -> &'static str {
        match self {
            RateLimit::Texts => "texts",
            RateLimit::NewTickets => "new_tickets",
        }
    }
}

/// Whether a take used a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A new message id: one token used.
    Token,
    /// No token used: no limit, or this message id was counted already.
    Free,
}

/// Token buckets, one per sender.
#[derive(Debug)]
pub struct SenderLimits {
    capacity: u32,
    period: Duration,
    buckets: HashMap<String, Bucket>,
    /// The next take prunes when there are more senders than this.
    prune_above: usize,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    recent_ids: VecDeque<String>,
    /// The sender was told it is over the limit since its last token.
    told: bool,
}

impl SenderLimits {
    /// `capacity` texts per `period` per sender, in a burst or spread out;
    /// 0 means no limit.
    pub fn new(capacity: u32, period: Duration) -> SenderLimits {
        SenderLimits {
            capacity,
            period,
            buckets: HashMap::new(),
            prune_above: PRUNE_ABOVE,
        }
    }

    /// Counts message `id` from `sender` at `now`. `Err` carries how long
    /// until the sender may send again.
    pub fn take(&mut self, sender: &str, id: &str, now: Instant) -> Result<Taken, Duration> {
        if self.capacity == 0 {
            return Ok(Taken::Free);
        }
        if self.buckets.len() > self.prune_above {
            self.prune(now);
            self.prune_above = PRUNE_ABOVE.max(2 * self.buckets.len());
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
                told: false,
            });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        if bucket.recent_ids.iter().any(|seen| seen == id) {
            return Ok(Taken::Free);
        }
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) / rate;
            return Err(Duration::from_secs_f64(wait.max(0.001)));
        }
        bucket.tokens -= 1.0;
        bucket.told = false;
        if bucket.recent_ids.len() == REMEMBERED_IDS {
            bucket.recent_ids.pop_front();
        }
        bucket.recent_ids.push_back(id.to_string());
        Ok(Taken::Token)
    }

    /// Returns the token that message `id` from `sender` took
    /// ([`Taken::Token`]), which turned out to be a retry of a text already
    /// answered: the id is forgotten again and the token is back.
    pub fn give_back(&mut self, sender: &str, id: &str) {
        let capacity = f64::from(self.capacity);
        if let Some(bucket) = self.buckets.get_mut(sender) {
            if let Some(position) = bucket.recent_ids.iter().position(|seen| seen == id) {
                bucket.recent_ids.remove(position);
                bucket.tokens = (bucket.tokens + 1.0).min(capacity);
            }
        }
    }

    /// Whether a text from `sender` that this limit refused should be
    /// answered with "too many texts": only the first refusal since the
    /// sender's last accepted text is.
    pub fn tell(&mut self, sender: &str) -> bool {
        match self.buckets.get_mut(sender) {
            Some(bucket) => !std::mem::replace(&mut bucket.told, true),
            None => true,
        }
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
            assert_eq!(limits.take("138", id, start), Ok(Taken::Token));
        }
        let wait = limits.take("138", "d", start).unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20));
        assert_eq!(
            limits.take("139", "d", start),
            Ok(Taken::Token),
            "others are apart"
        );
        assert_eq!(
            limits.take("138", "d", start + Duration::from_secs(20)),
            Ok(Taken::Token)
        );
    }

    #[test]
    fn a_retried_message_id_is_counted_once() {
        let mut limits = SenderLimits::new(1, MINUTE);
        let now = Instant::now();
        assert_eq!(limits.take("138", "SM1", now), Ok(Taken::Token));
        for _ in 0..4 {
            assert_eq!(limits.take("138", "SM1", now), Ok(Taken::Free));
        }
        assert!(limits.take("138", "SM2", now).is_err());
    }

    #[test]
    fn a_token_given_back_can_be_used_again() {
        let mut limits = SenderLimits::new(1, MINUTE);
        let now = Instant::now();
        assert_eq!(limits.take("138", "SM1", now), Ok(Taken::Token));
        assert!(limits.take("138", "SM2", now).is_err());
        limits.give_back("138", "SM1");
        limits.give_back("138", "SM1");
        assert_eq!(limits.take("138", "SM2", now), Ok(Taken::Token));
        assert!(
            limits.take("138", "SM1", now).is_err(),
            "one token back only"
        );
    }

    #[test]
    fn a_refused_sender_is_told_once_per_run_of_refusals() {
        let mut limits = SenderLimits::new(1, MINUTE);
        let start = Instant::now();
        assert_eq!(limits.take("138", "a", start), Ok(Taken::Token));
        assert!(limits.take("138", "b", start).is_err());
        assert!(limits.tell("138"), "the first refusal is told");
        assert!(limits.take("138", "c", start).is_err());
        assert!(!limits.tell("138"), "later ones are not");
        assert!(limits.tell("139"), "others apart");
        let later = start + MINUTE;
        assert_eq!(limits.take("138", "d", later), Ok(Taken::Token));
        assert!(limits.take("138", "e", later).is_err());
        assert!(limits.tell("138"), "a new run after an accepted text");
    }

    #[test]
    fn zero_means_no_limit() {
        let mut limits = SenderLimits::new(0, MINUTE);
        let now = Instant::now();
        for n in 0..100 {
            assert_eq!(limits.take("138", &n.to_string(), now), Ok(Taken::Free));
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

    #[test]
    fn senders_within_their_period_are_scanned_rarely() {
        let mut limits = SenderLimits::new(1, MINUTE);
        let start = Instant::now();
        for n in 0..=PRUNE_ABOVE {
            let _ = limits.take(&n.to_string(), "x", start);
        }
        // Nobody has refilled: the scan keeps all and waits for twice as many.
        let _ = limits.take("one more", "x", start);
        assert_eq!(limits.prune_above, 2 * (PRUNE_ABOVE + 1));
        for n in 0..PRUNE_ABOVE {
            let _ = limits.take(&format!("b{n}"), "x", start);
        }
        assert_eq!(limits.prune_above, 2 * (PRUNE_ABOVE + 1), "no scan since");
    }
}
