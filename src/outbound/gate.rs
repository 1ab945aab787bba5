//! The caps on one trunk's outbound calls: at most `max_concurrent` calls
//! up (ringing or answered) at once, and new calls paced `1 /
//! calls_per_second` apart (no burst: a carrier's calls-per-second limit
//! holds over any second). Pure: the caller passes "now". A trunk's caps hold per gateway instance; with N instances
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

/// Whether a call may start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// It counts as up until [`TrunkGates::finished`].
    Started,
    /// `max_concurrent` calls are up.
    Full,
    /// Too soon after the last call: try again after this long.
    Wait(std::time::Duration),
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
    /// Whether a new call may start on `trunk` now.
    pub fn try_start(&mut self, trunk: &str, caps: TrunkCaps, now: Instant) -> Start {
        let gate = self.gates.entry(trunk.to_string()).or_insert_with(|| Gate {
            active: 0,
            bucket: TokenBucket::full(1.0, now),
        });
        if gate.active >= caps.max_concurrent {
            return Start::Full;
        }
        if !gate.bucket.try_take(1.0, caps.calls_per_second, now) {
            return Start::Wait(gate.bucket.until_token(caps.calls_per_second));
        }
        gate.active += 1;
        Start::Started
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
    fn the_rate_cap_paces_calls_without_a_burst() {
        let mut gates = TrunkGates::default();
        let start = Instant::now();
        let roomy = TrunkCaps {
            max_concurrent: 100,
            ..CAPS
        };
        let started = (0..10)
            .filter(|_| gates.try_start("t1", roomy, start) == Start::Started)
            .count();
        assert_eq!(started, 1, "one call, then one every 500 ms");
        let Start::Wait(wait) = gates.try_start("t1", roomy, start + Duration::from_millis(400))
        else {
            panic!("too soon");
        };
        assert!((99..=101).contains(&wait.as_millis()), "{wait:?}");
        assert_eq!(
            gates.try_start("t1", roomy, start + Duration::from_millis(500)),
            Start::Started
        );
        assert_eq!(
            gates.try_start("t2", roomy, start),
            Start::Started,
            "trunks apart"
        );
    }

    #[test]
    fn the_concurrency_cap_waits_for_calls_to_end() {
        let mut gates = TrunkGates::default();
        let mut now = Instant::now();
        for _ in 0..3 {
            now += Duration::from_secs(1);
            assert_eq!(gates.try_start("t1", CAPS, now), Start::Started);
        }
        now += Duration::from_secs(1);
        assert_eq!(
            gates.try_start("t1", CAPS, now),
            Start::Full,
            "three calls are up"
        );
        assert_eq!(gates.active("t1"), 3);
        gates.finished("t1");
        assert_eq!(gates.try_start("t1", CAPS, now), Start::Started);
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
        assert_eq!(gates.try_start("t1", one, now), Start::Started);
        assert_eq!(
            gates.try_start("t1", one, now + Duration::from_secs(5)),
            Start::Full
        );
        gates.finished("t1");
        assert_eq!(
            gates.try_start("t1", one, now + Duration::from_secs(5)),
            Start::Started
        );
    }
}
