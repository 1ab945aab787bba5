//! A token bucket: `capacity` tokens at most, refilled at `rate` per
//! second. Pure: the caller passes "now".

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(capacity: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: capacity,
            updated: now,
        }
    }

    /// Takes one token if there is one after refilling up to `now`.
    pub fn try_take(&mut self, capacity: f64, rate: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.updated = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// How long after its last refill the bucket has a whole token, at
    /// `rate` tokens a second (zero when it has one).
    pub fn until_token(&self, rate: f64) -> std::time::Duration {
        if self.tokens >= 1.0 || rate <= 0.0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64((1.0 - self.tokens) / rate)
    }

    /// When the bucket was last refilled.
    pub fn updated(&self) -> Instant {
        self.updated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_of_capacity_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(3.0, start);
        assert!((0..3).all(|_| bucket.try_take(3.0, 2.0, start)));
        assert!(!bucket.try_take(3.0, 2.0, start));
        assert!(!bucket.try_take(3.0, 2.0, start + Duration::from_millis(400)));
        assert!(bucket.try_take(3.0, 2.0, start + Duration::from_millis(500)));
        // A long pause refills to the capacity, not beyond.
        let later = start + Duration::from_secs(60);
        assert_eq!(
            (0..10).filter(|_| bucket.try_take(3.0, 2.0, later)).count(),
            3
        );
    }
}
