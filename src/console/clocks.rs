//! A ticket's SLA clocks as the console shows them: which are running,
//! which were met, which are breached, and the next deadline. Pure: the
//! time is passed in. A clock runs from when its deadline is set until it
//! is met, while the ticket is open (the confirm clock only while it is
//! resolved), as in the store's work-queue query.

use crate::tickets::model::Status;
use crate::tickets::sla::SlaClock;
use crate::tickets::store::Ticket;
use chrono::{DateTime, Utc};

/// One clock of one ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ClockView {
    pub clock: SlaClock,
    pub due: DateTime<Utc>,
    pub met: Option<DateTime<Utc>>,
    pub running: bool,
    /// Met late, or still running past its deadline.
    pub breached: bool,
}

/// The clocks that have a deadline, in lifecycle order.
pub(super) fn clocks(ticket: &Ticket, now: DateTime<Utc>) -> Vec<ClockView> {
    let finished = matches!(ticket.status, Status::Closed | Status::Cancelled);
    SlaClock::ALL
        .iter()
        .filter_map(|&clock| {
            let (due, met) = ticket.clock(clock);
            let due = due?;
            let running = met.is_none()
                && !finished
                && (clock != SlaClock::Confirm || ticket.status == Status::Resolved);
            let breached = match met {
                Some(met) => met > due,
                None => running && now > due,
            };
            Some(ClockView {
                clock,
                due,
                met,
                running,
                breached,
            })
        })
        .collect()
}

/// The earliest deadline among the running clocks.
pub(super) fn next_deadline(clocks: &[ClockView]) -> Option<ClockView> {
    clocks
        .iter()
        .filter(|c| c.running)
        .min_by_key(|c| c.due)
        .copied()
}

/// "in 2h 05m" or "3m 10s overdue": what the countdown script shows too.
pub(super) fn countdown_text(due: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (due - now).num_seconds();
    let span = secs.unsigned_abs();
    let (d, h, m, s) = (
        span / 86_400,
        span % 86_400 / 3_600,
        span % 3_600 / 60,
        span % 60,
    );
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {s:02}s")
    };
    if secs < 0 {
        format!("{text} overdue")
    } else {
        format!("in {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn countdowns_read_like_the_script() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let at = |secs| now + chrono::Duration::seconds(secs);
        assert_eq!(countdown_text(at(7_500), now), "in 2h 05m");
        assert_eq!(countdown_text(at(70), now), "in 1m 10s");
        assert_eq!(countdown_text(at(-190), now), "3m 10s overdue");
        assert_eq!(countdown_text(at(2 * 86_400 + 3_600), now), "in 2d 1h");
    }
}
