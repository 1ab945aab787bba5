//! When an outbound call (回访 confirmation, callback, survey) may be placed
//! and what happens after an attempt: the calling window in the SLA
//! calendar's time zone (and holidays), the retry delay by cause, the
//! attempts allowed, and the next trunk after a trunk's failure. Pure: the
//! caller passes the time.

use crate::tickets::calendar::BusinessCalendar;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};

/// How far ahead a window search looks (a campaign that never opens, such
/// as holidays every day, is not waited for forever).
const MAX_SEARCH_DAYS: i64 = 366;

/// Why an outbound call exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// 修复确认 / 回访: "is your service restored? 1 yes, 2 no".
    Confirm,
    /// 回呼: a caller who found every agent busy asked to be called back.
    Callback,
    /// 满意度调查: a survey after the ticket is closed.
    Survey,
}

impl Purpose {
    pub const ALL: [Purpose; 3] = [Purpose::Confirm, Purpose::Callback, Purpose::Survey];

    pub fn code(self) -> &'static str {
        match self {
            Purpose::Confirm => "confirm",
            Purpose::Callback => "callback",
            Purpose::Survey => "survey",
        }
    }

    pub fn parse(code: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.code() == code)
    }
}

/// How one attempt ended, as far as the schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Answered and the call did its job (a key pressed, a bridge made).
    Completed,
    /// Answered, but no key after the prompt played twice (an answering
    /// machine, or someone who said nothing): retried as no answer.
    AnsweredSilent,
    /// 486 Busy Here, 600 Busy Everywhere.
    Busy,
    /// No answer within the ring timeout (we sent CANCEL), 480, 408.
    NoAnswer,
    /// 603 Decline: the customer refused; never called again.
    Declined,
    /// 404, 484, 410, 604: the number does not exist; never called again.
    Unreachable,
    /// The trunk failed: another 4xx, a 5xx, no response, a transport error.
    TrunkFailure,
    /// Not placed: the calling window does not open within a year.
    NoWindow,
}

impl Cause {
    /// The cause of a final response `status` to our INVITE (not 2xx).
    pub fn of_status(status: u16) -> Cause {
        match status {
            486 | 600 => Cause::Busy,
            408 | 480 | 487 => Cause::NoAnswer,
            603 => Cause::Declined,
            404 | 410 | 484 | 604 => Cause::Unreachable,
            _ => Cause::TrunkFailure,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Cause::Completed => "completed",
            Cause::AnsweredSilent => "answered_silent",
            Cause::Busy => "busy",
            Cause::NoAnswer => "no_answer",
            Cause::Declined => "declined",
            Cause::Unreachable => "unreachable",
            Cause::TrunkFailure => "trunk_failure",
            Cause::NoWindow => "no_window",
        }
    }
}

/// One purpose's campaign rules (config `[outbound.<purpose>]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRules {
    /// Local calling hours, every day, in the SLA calendar's zone.
    pub window: (NaiveTime, NaiveTime),
    /// Never call on the calendar's holidays.
    pub skip_holidays: bool,
    /// Attempts in all.
    pub attempts: u32,
    /// Delay after busy.
    pub busy_retry: Duration,
    /// Delay after no answer (or an answer without a key).
    pub no_answer_retry: Duration,
    /// Delay after a trunk failure when there is no other trunk to try.
    pub failure_retry: Duration,
    /// Trunks (transfer-style targets) tried in order after failures.
    pub trunks: usize,
    /// From queueing to the first attempt (a callback waits for the
    /// caller to hang up).
    pub first_delay: Duration,
}

impl Default for CampaignRules {
    /// 09:00–20:00, holidays allowed, 3 attempts; busy 10 min, no answer
    /// 60 min, trunk failure 5 min; one trunk.
    fn default() -> Self {
        CampaignRules {
            window: (hm(9, 0), hm(20, 0)),
            skip_holidays: false,
            attempts: 3,
            busy_retry: Duration::minutes(10),
            no_answer_retry: Duration::minutes(60),
            failure_retry: Duration::minutes(5),
            trunks: 1,
            first_delay: Duration::zero(),
        }
    }
}

fn hm(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or_default()
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The job is done.
    Done,
    /// Try again at `at` (inside the window) on trunk `trunk`.
    Retry { at: DateTime<Utc>, trunk: usize },
    /// No more attempts: the attempts are spent, or the cause forbids more.
    GiveUp(GiveUp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Every attempt was made; the last ended with this cause.
    Exhausted(Cause),
    /// Declined or unreachable: never again.
    Final(Cause),
    /// The window never opens within a year.
    NoWindow,
}

impl CampaignRules {
    /// When a job queued at `now` is first called: after the first delay,
    /// in the window (or then, if the window never opens: the worker gives
    /// the job up as `no_window`).
    pub fn first_attempt_at(
        &self,
        calendar: &BusinessCalendar,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let at = now + self.first_delay;
        self.in_window(calendar, at).unwrap_or(at)
    }

    /// The earliest instant at or after `at` inside the calling window.
    pub fn in_window(
        &self,
        calendar: &BusinessCalendar,
        at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let zone = calendar.timezone();
        let (open, close) = self.window;
        let first = at.with_timezone(&zone).date_naive();
        for offset in 0..MAX_SEARCH_DAYS {
            let date = first + Duration::days(offset);
            if self.skip_holidays && calendar.is_holiday(date) {
                continue;
            }
            let local = |time: NaiveTime| {
                zone.from_local_datetime(&date.and_time(time))
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            };
            let (Some(start), Some(end)) = (local(open), local(close)) else {
                continue;
            };
            if at < end {
                return Some(at.max(start));
            }
        }
        None
    }

    /// After attempt number `made` (1 for the first) on trunk `trunk` ended
    /// with `cause` at `now`: done, when to retry and where, or give up.
    pub fn after_attempt(
        &self,
        calendar: &BusinessCalendar,
        cause: Cause,
        made: u32,
        trunk: usize,
        now: DateTime<Utc>,
    ) -> Next {
        let delay = match cause {
            Cause::Completed => return Next::Done,
            Cause::Declined | Cause::Unreachable => return Next::GiveUp(GiveUp::Final(cause)),
            Cause::NoWindow => return Next::GiveUp(GiveUp::NoWindow),
            Cause::Busy => self.busy_retry,
            Cause::NoAnswer | Cause::AnsweredSilent => self.no_answer_retry,
            Cause::TrunkFailure if trunk + 1 < self.trunks => Duration::zero(),
            Cause::TrunkFailure => self.failure_retry,
        };
        if made >= self.attempts {
            return Next::GiveUp(GiveUp::Exhausted(cause));
        }
        let next_trunk = match cause {
            Cause::TrunkFailure if trunk + 1 < self.trunks => trunk + 1,
            Cause::TrunkFailure => 0,
            _ => trunk,
        };
        match self.in_window(calendar, now + delay) {
            Some(at) => Next::Retry {
                at,
                trunk: next_trunk,
            },
            None => Next::GiveUp(GiveUp::NoWindow),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::calendar::CalendarSpec;
    use chrono::NaiveDate;

    /// Shanghai local time on 2026-12-`day` (a Friday on the 4th).
    fn local(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 12, day, hour, minute, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn calendar_with_holiday(day: u32) -> BusinessCalendar {
        BusinessCalendar::new(CalendarSpec {
            holidays: vec![NaiveDate::from_ymd_opt(2026, 12, day).unwrap()],
            ..CalendarSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn the_window_is_local_time_every_day() {
        let rules = CampaignRules::default();
        let calendar = BusinessCalendar::default();
        assert_eq!(
            rules.in_window(&calendar, local(4, 10, 0)),
            Some(local(4, 10, 0))
        );
        assert_eq!(
            rules.in_window(&calendar, local(4, 7, 30)),
            Some(local(4, 9, 0))
        );
        assert_eq!(
            rules.in_window(&calendar, local(4, 20, 0)),
            Some(local(5, 9, 0))
        );
        assert_eq!(
            rules.in_window(&calendar, local(5, 19, 59)),
            Some(local(5, 19, 59)),
            "weekends are calling days"
        );
    }

    #[test]
    fn holidays_are_skipped_only_when_asked() {
        let calendar = calendar_with_holiday(5);
        let mut rules = CampaignRules::default();
        assert_eq!(
            rules.in_window(&calendar, local(4, 21, 0)),
            Some(local(5, 9, 0))
        );
        rules.skip_holidays = true;
        assert_eq!(
            rules.in_window(&calendar, local(4, 21, 0)),
            Some(local(6, 9, 0))
        );
        assert_eq!(
            rules.in_window(&calendar, local(5, 12, 0)),
            Some(local(6, 9, 0))
        );
    }

    #[test]
    fn retries_wait_by_cause_and_stay_in_the_window() {
        let rules = CampaignRules::default();
        let calendar = BusinessCalendar::default();
        let now = local(4, 10, 0);
        let retry = |cause| rules.after_attempt(&calendar, cause, 1, 0, now);
        assert_eq!(retry(Cause::Completed), Next::Done);
        assert_eq!(
            retry(Cause::Busy),
            Next::Retry {
                at: local(4, 10, 10),
                trunk: 0
            }
        );
        assert_eq!(
            retry(Cause::NoAnswer),
            Next::Retry {
                at: local(4, 11, 0),
                trunk: 0
            }
        );
        assert_eq!(
            retry(Cause::AnsweredSilent),
            retry(Cause::NoAnswer),
            "an answer without a key counts as no answer"
        );
        assert_eq!(
            retry(Cause::Declined),
            Next::GiveUp(GiveUp::Final(Cause::Declined))
        );
        assert_eq!(
            retry(Cause::Unreachable),
            Next::GiveUp(GiveUp::Final(Cause::Unreachable))
        );
        assert_eq!(retry(Cause::NoWindow), Next::GiveUp(GiveUp::NoWindow));
        // A no answer at 19:30 is retried at tomorrow's opening.
        assert_eq!(
            rules.after_attempt(&calendar, Cause::NoAnswer, 1, 0, local(4, 19, 30)),
            Next::Retry {
                at: local(5, 9, 0),
                trunk: 0
            }
        );
    }

    #[test]
    fn the_attempts_are_a_limit() {
        let rules = CampaignRules::default();
        let calendar = BusinessCalendar::default();
        let now = local(4, 10, 0);
        assert!(matches!(
            rules.after_attempt(&calendar, Cause::Busy, 2, 0, now),
            Next::Retry { .. }
        ));
        assert_eq!(
            rules.after_attempt(&calendar, Cause::Busy, 3, 0, now),
            Next::GiveUp(GiveUp::Exhausted(Cause::Busy))
        );
        assert_eq!(
            rules.after_attempt(&calendar, Cause::Completed, 3, 0, now),
            Next::Done
        );
    }

    #[test]
    fn a_trunk_failure_moves_to_the_next_trunk_at_once() {
        let rules = CampaignRules {
            trunks: 2,
            ..CampaignRules::default()
        };
        let calendar = BusinessCalendar::default();
        let now = local(4, 10, 0);
        assert_eq!(
            rules.after_attempt(&calendar, Cause::TrunkFailure, 1, 0, now),
            Next::Retry { at: now, trunk: 1 }
        );
        assert_eq!(
            rules.after_attempt(&calendar, Cause::TrunkFailure, 2, 1, now),
            Next::Retry {
                at: local(4, 10, 5),
                trunk: 0
            },
            "the last trunk failed: back to the first after the delay"
        );
        assert_eq!(
            rules.after_attempt(&calendar, Cause::Busy, 1, 1, now),
            Next::Retry {
                at: local(4, 10, 10),
                trunk: 1
            },
            "a busy customer is tried again on the trunk that reached them"
        );
    }

    #[test]
    fn statuses_map_to_causes() {
        assert_eq!(Cause::of_status(486), Cause::Busy);
        assert_eq!(Cause::of_status(600), Cause::Busy);
        assert_eq!(Cause::of_status(487), Cause::NoAnswer);
        assert_eq!(Cause::of_status(480), Cause::NoAnswer);
        assert_eq!(Cause::of_status(603), Cause::Declined);
        assert_eq!(Cause::of_status(404), Cause::Unreachable);
        assert_eq!(Cause::of_status(484), Cause::Unreachable);
        assert_eq!(Cause::of_status(503), Cause::TrunkFailure);
        assert_eq!(Cause::of_status(403), Cause::TrunkFailure);
    }

    #[test]
    fn a_window_that_never_opens_gives_up() {
        let calendar = BusinessCalendar::new(CalendarSpec {
            holidays: (0..400)
                .map(|d| NaiveDate::from_ymd_opt(2026, 12, 1).unwrap() + Duration::days(d))
                .collect(),
            ..CalendarSpec::default()
        })
        .unwrap();
        let rules = CampaignRules {
            skip_holidays: true,
            ..CampaignRules::default()
        };
        assert_eq!(rules.in_window(&calendar, local(4, 10, 0)), None);
        assert_eq!(
            rules.after_attempt(&calendar, Cause::Busy, 1, 0, local(4, 10, 0)),
            Next::GiveUp(GiveUp::NoWindow)
        );
    }
}
