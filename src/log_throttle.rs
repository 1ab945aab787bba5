//! Keeps floods out of the log: an event is logged once per key (a
//! source address, say) and window, and the ones held back are counted
//! and reported with the next line. Pure: the caller passes "now". The
//! metrics count every event; the log only shows that they happen.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Lets an event through to the log once per key and window, and counts
/// the ones it holds back (pure: the caller passes "now"). At most
/// `capacity` keys are remembered; events of further keys within a window
/// are held back too.
#[derive(Debug)]
pub struct LogThrottle<K> {
    window: Duration,
    capacity: usize,
    keys: HashMap<K, (Instant, u64)>,
    last_sweep: Option<Instant>,
}

impl<K: Hash + Eq> LogThrottle<K> {
    pub fn new(window: Duration, capacity: usize) -> LogThrottle<K> {
        LogThrottle {
            window,
            capacity,
            keys: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Notes one event for `key`: `Some(n)` when it should be logged now,
    /// `n` being how many of this key's events were held back since its
    /// last line; `None` when it is held back.
    pub fn note(&mut self, key: K, now: Instant) -> Option<u64> {
        if let Some((since, held)) = self.keys.get_mut(&key) {
            if now.saturating_duration_since(*since) < self.window {
                *held += 1;
                return None;
            }
            let before = *held;
            *since = now;
            *held = 0;
            return Some(before);
        }
        if self.keys.len() >= self.capacity {
            self.sweep(now);
            if self.keys.len() >= self.capacity {
                return None;
            }
        }
        self.keys.insert(key, (now, 0));
        Some(0)
    }

    /// Forgets keys whose window is over, at most once a second.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let window = self.window;
        self.keys
            .retain(|_, (since, _)| now.saturating_duration_since(*since) < window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_is_logged_once_per_window_with_what_was_held_back() {
        let mut throttle = LogThrottle::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let source = ip("127.0.0.1");
        assert_eq!(throttle.note(source, t0), Some(0));
        for s in 1..=59 {
            assert_eq!(throttle.note(source, t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(
            throttle.note(ip("127.0.0.2"), t0 + Duration::from_secs(1)),
            Some(0)
        );
        assert_eq!(
            throttle.note(source, t0 + Duration::from_secs(60)),
            Some(59)
        );
        assert_eq!(throttle.note(source, t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn the_throttle_remembers_a_bounded_number_of_sources() {
        let mut throttle = LogThrottle::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        assert_eq!(throttle.note(1, t0), Some(0));
        assert_eq!(throttle.note(2, t0), Some(0));
        assert_eq!(throttle.note(3, t0), None, "full: held back");
        assert_eq!(throttle.keys.len(), 2);
        // Once the first windows are over their keys make room.
        assert_eq!(throttle.note(3, t0 + Duration::from_secs(61)), Some(0));
        assert_eq!(throttle.keys.len(), 1);
    }
}
