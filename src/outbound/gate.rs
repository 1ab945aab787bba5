//! The caps on one trunk's outbound calls: at most `max_concurrent` calls
//! up (ringing or answered) at once, and at most `calls_per_second` new
//! calls a second (a burst of one second's worth). Pure: the caller passes
//! "now". A trunk's caps hold per gateway instance; with N instances
//! sharing a trunk, set each to its share.

use crate::token_bucket::TokenBucket;
use std::collections::HashMap;
use std::time::Instant;

/// One trunk's caps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrunkCaps {
    pub max_concurrent: u32,
    pub calls_per_second: f64,
}

/// The calls each trunk has up and its rate bucket.
#[derive(Debug, Default)]
pub struct TrunkGates {
    gates: HashMap<String, Gate>,
}

#[derive(Debug)]
struct Gate {
    active: u32,
    bucket: TokenBucket,
}

impl TrunkGates {
    /// Whether a new call may start on `trunk` now; if so it counts as up
    /// until [`TrunkGates::finished`].
    pub fn try_start(&mut self, trunk: &str, caps: TrunkCaps, now: Instant) -> bool {
        let burst = caps.calls_per_second.max(1.0);
        let gate = self.gates.entry(trunk.to_string()).or_insert_with(|| Gate {
            active: 0,
            bucket: TokenBucket::full(burst, now),
        });
        if gate.active >= caps.max_concurrent {
            return false;
        }
        if !gate.bucket.try_take(burst, caps.calls_per_second, now) {
            return false;
        }
        gate.active += 1;
        true
    }

    /// A call on `trunk` ended (any way).
    pub fn finished(&mut self, trunk: &str) {
        if let Some(gate) = self.gates.get_mut(trunk) {
            gate.active = gate.active.saturating_sub(1);
        }
    }

    /// Calls up on `trunk` now.
    pub fn active(&self, trunk: &str) -> u32 {
        self.gates.get(trunk).map_or(0, |gate| gate.active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const CAPS: TrunkCaps = TrunkCaps {
        max_concurrent: 3,
        calls_per_second: 2.0,
    };

    #[test]
    fn the_rate_cap_allows_a_second_worth_then_the_rate() {
        let mut gates = TrunkGates::default();
        let start = Instant::now();
        let roomy = TrunkCaps {
            max_concurrent: 100,
            ..CAPS
        };
        let started = (0..10)
            .filter(|_| gates.try_start("t1", roomy, start))
            .count();
        assert_eq!(started, 2);
        assert!(!gates.try_start("t1", roomy, start + Duration::from_millis(400)));
        assert!(gates.try_start("t1", roomy, start + Duration::from_millis(500)));
        assert!(gates.try_start("t2", roomy, start), "trunks apart");
    }

    #[test]
    fn the_concurrency_cap_waits_for_calls_to_end() {
        let mut gates = TrunkGates::default();
        let mut now = Instant::now();
        for _ in 0..3 {
            now += Duration::from_secs(1);
            assert!(gates.try_start("t1", CAPS, now));
        }
        now += Duration::from_secs(1);
        assert!(!gates.try_start("t1", CAPS, now), "three calls are up");
        assert_eq!(gates.active("t1"), 3);
        gates.finished("t1");
        assert!(gates.try_start("t1", CAPS, now));
        gates.finished("nobody");
        assert_eq!(gates.active("nobody"), 0);
    }

    #[test]
    fn a_refused_start_uses_no_token() {
        let mut gates = TrunkGates::default();
        let now = Instant::now();
        let one = TrunkCaps {
            max_concurrent: 1,
            calls_per_second: 1.0,
        };
        assert!(gates.try_start("t1", one, now));
        assert!(!gates.try_start("t1", one, now + Duration::from_secs(5)));
        gates.finished("t1");
        assert!(gates.try_start("t1", one, now + Duration::from_secs(5)));
    }
}
