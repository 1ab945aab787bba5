//! How many refused calls get a call record. A flood of INVITEs refused
//! with 503 or 403 would otherwise turn into as many database writes (and
//! tasks waiting for them) as the flood has packets: after a burst, at
//! most a steady rate of refusals is recorded, and the rest are only
//! counted (every refusal is in `hotline_calls_refused_total` anyway) and
//! reported in the log now and then. Pure: the caller passes "now".

use crate::token_bucket::TokenBucket;
use std::time::{Duration, Instant};

/// Refusals recorded in a burst.
const BURST: f64 = 100.0;
/// Refusals recorded per second after the burst.
const PER_SECOND: f64 = 10.0;
/// How often the count of unrecorded refusals is logged, at most.
const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct RefusedRecords {
    bucket: TokenBucket,
    unrecorded: u64,
    last_report: Option<Instant>,
}

/// What to do with one refused call.
#[derive(Debug, PartialEq, Eq)]
pub enum RefusedRecord {
    /// Write its call record.
    Write,
    /// Do not; when `Some(n)`, log that `n` refusals were not recorded
    /// since the last such line.
    Skip(Option<u64>),
}

impl RefusedRecords {
    pub fn new(now: Instant) -> RefusedRecords {
        RefusedRecords {
            bucket: TokenBucket::full(BURST, now),
            unrecorded: 0,
            last_report: None,
        }
    }

    pub fn decide(&mut self, now: Instant) -> RefusedRecord {
        if self.bucket.try_take(BURST, PER_SECOND, now) {
            return RefusedRecord::Write;
        }
        self.unrecorded += 1;
        let due = self
            .last_report
            .is_none_or(|last| now.saturating_duration_since(last) >= REPORT_EVERY);
        if !due {
            return RefusedRecord::Skip(None);
        }
        self.last_report = Some(now);
        RefusedRecord::Skip(Some(std::mem::take(&mut self.unrecorded)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_recorded_at_the_steady_rate_and_reported_every_ten_seconds() {
        let start = Instant::now();
        let mut records = RefusedRecords::new(start);
        let mut written = 0;
        let mut reported = Vec::new();
        // 1,000 refusals a second for 30 seconds.
        for tick in 0..30_000u64 {
            let now = start + Duration::from_millis(tick);
            match records.decide(now) {
                RefusedRecord::Write => written += 1,
                RefusedRecord::Skip(Some(n)) => reported.push(n),
                RefusedRecord::Skip(None) => {}
            }
        }
        // The burst, then ten a second.
        assert!((395..=402).contains(&written), "{written} written");
        // The first refusal not recorded is logged at once, then the
        // count every ten seconds.
        assert_eq!(reported.len(), 3, "{reported:?}");
        assert_eq!(reported[0], 1);
        let unrecorded: u64 = reported.iter().sum();
        assert!(unrecorded <= 30_000 - written);
        assert!(unrecorded > 19_000, "{reported:?}");
    }

    #[test]
    fn ordinary_refusals_are_all_recorded() {
        let start = Instant::now();
        let mut records = RefusedRecords::new(start);
        // One a second for ten minutes: never more than the rate.
        assert!((0..600u64)
            .all(|s| records.decide(start + Duration::from_secs(s)) == RefusedRecord::Write));
    }
}
