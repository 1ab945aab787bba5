//! The business calendar (工作日历) that working-time SLA limits are counted
//! over: working hours, weekends, public holidays (法定节假日) and make-up
//! working days (调休上班). Pure: no clock, no I/O.
//!
//! # Semantics
//!
//! * Working hours are local wall-clock times in the calendar's time zone,
//!   the same on every working day, optionally split by a lunch break. They
//!   never cross midnight.
//! * A date is a working day if it is a make-up working day, or if it is
//!   neither a weekend day nor a holiday.
//! * Working time is the time inside the working hours of working days, as
//!   half-open intervals `[open, close)`.
//! * [`BusinessCalendar::add_working_time`] counts from `start` if that is
//!   working time, otherwise from the next opening. The result is never
//!   moved off a closing time: a deadline that falls exactly at closing
//!   stays at closing, it does not become the next morning's opening.
//! * [`BusinessCalendar::add_working_days`]: N working days are N × the
//!   length of one (nominal) working day of working time. With 09:00–18:00,
//!   a ticket created Friday 16:00 with one working day is due Monday 16:00,
//!   and one created on Saturday is due at Monday's closing, 18:00.
//! * Daylight saving time: an opening or closing time is resolved to the
//!   first instant at which the local wall clock reads that time or later.
//!   So a time that occurs twice (clocks going back) means its first
//!   occurrence, and a time skipped by clocks going forward means the
//!   instant the clocks jump (e.g. 02:30 on a spring-forward night in
//!   America/New_York is 03:00 EDT). A working day that contains a
//!   transition is therefore longer or shorter in real time; working time is
//!   always real elapsed time inside the resolved intervals.
//! * Termination: a calendar must have at least one working day of the week
//!   (all seven days as weekend is rejected by [`BusinessCalendar::new`]).
//!   The search for working time still stops after [`MAX_SEARCH_DAYS`]
//!   days; if the working time requested is not found by then (only
//!   possible with thousands of listed holidays), the result saturates at
//!   `start + MAX_SEARCH_DAYS` days.

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use std::collections::BTreeSet;
use thiserror::Error;

/// How many days ahead a working-time search looks before giving up and
/// saturating (see the module documentation).
pub const MAX_SEARCH_DAYS: u32 = 3660;

/// The description a [`BusinessCalendar`] is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarSpec {
    /// Working hours are wall-clock times in this zone.
    pub timezone: Tz,
    /// Opening and closing time of every working day.
    pub working_hours: (NaiveTime, NaiveTime),
    /// An optional break (午休) strictly inside the working hours.
    pub lunch_break: Option<(NaiveTime, NaiveTime)>,
    /// Days of the week that are not working days (unless a make-up day).
    pub weekend: Vec<Weekday>,
    /// Dates that are not working days (unless also a make-up day, which
    /// [`BusinessCalendar::new`] rejects).
    pub holidays: Vec<NaiveDate>,
    /// Make-up working days (调休上班): working even though on the weekend.
    pub workdays: Vec<NaiveDate>,
}

impl Default for CalendarSpec {
    /// Asia/Shanghai, 09:00–18:00, Saturday and Sunday off, no holidays.
    fn default() -> Self {
        CalendarSpec {
            timezone: chrono_tz::Asia::Shanghai,
            working_hours: (hm(9, 0), hm(18, 0)),
            lunch_break: None,
            weekend: vec![Weekday::Sat, Weekday::Sun],
            holidays: Vec::new(),
            workdays: Vec::new(),
        }
    }
}

fn hm(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).expect("valid time")
}

fn short(time: &NaiveTime) -> String {
    if time.format("%S").to_string() == "00" {
        time.format("%H:%M").to_string()
    } else {
        time.format("%H:%M:%S").to_string()
    }
}

/// Why a [`CalendarSpec`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CalendarError {
    #[error("working hours end {} is not after their start {}", short(.end), short(.start))]
    EmptyWorkingHours { start: NaiveTime, end: NaiveTime },
    #[error(
        "lunch break {}–{} must end after it starts and lie strictly inside the working hours {}–{}",
        short(.start), short(.end), short(.open), short(.close)
    )]
    BadLunchBreak {
        start: NaiveTime,
        end: NaiveTime,
        open: NaiveTime,
        close: NaiveTime,
    },
    #[error("the weekend lists all seven days of the week, so there would be no working day")]
    NoWorkingWeekday,
    #[error("{0} is both a holiday and a make-up working day")]
    HolidayAndWorkday(NaiveDate),
    #[error("make-up working day {date} is a {weekday}, not a weekend day (a typo?)")]
    WorkdayNotWeekend { date: NaiveDate, weekday: Weekday },
}

impl CalendarSpec {
    /// Everything wrong with this spec (empty when it is usable).
    pub fn problems(&self) -> Vec<CalendarError> {
        let mut problems = Vec::new();
        let (open, close) = self.working_hours;
        if close <= open {
            problems.push(CalendarError::EmptyWorkingHours {
                start: open,
                end: close,
            });
        } else if let Some((start, end)) = self.lunch_break {
            if !(open < start && start < end && end < close) {
                problems.push(CalendarError::BadLunchBreak {
                    start,
                    end,
                    open,
                    close,
                });
            }
        }
        let weekend = weekend_mask(&self.weekend);
        if weekend.iter().all(|&off| off) {
            problems.push(CalendarError::NoWorkingWeekday);
        }
        let holidays: BTreeSet<NaiveDate> = self.holidays.iter().copied().collect();
        let mut seen = BTreeSet::new();
        for &date in &self.workdays {
            if !seen.insert(date) {
                continue;
            }
            if holidays.contains(&date) {
                problems.push(CalendarError::HolidayAndWorkday(date));
            } else if !weekend[date.weekday().num_days_from_monday() as usize] {
                problems.push(CalendarError::WorkdayNotWeekend {
                    date,
                    weekday: date.weekday(),
                });
            }
        }
        problems
    }
}

fn weekend_mask(days: &[Weekday]) -> [bool; 7] {
    let mut mask = [false; 7];
    for day in days {
        mask[day.num_days_from_monday() as usize] = true;
    }
    mask
}

/// A validated business calendar. See the module documentation for the
/// counting rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    spec: CalendarSpec,
    /// Local working intervals of one working day, in order.
    segments: Vec<(NaiveTime, NaiveTime)>,
    weekend: [bool; 7],
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    day_length: Duration,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        BusinessCalendar::new(CalendarSpec::default()).expect("the default calendar is valid")
    }
}

impl BusinessCalendar {
    /// Validates `spec` (see [`CalendarSpec::problems`]).
    pub fn new(spec: CalendarSpec) -> Result<BusinessCalendar, Vec<CalendarError>> {
        let problems = spec.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        let (open, close) = spec.working_hours;
        let segments = match spec.lunch_break {
            Some((start, end)) => vec![(open, start), (end, close)],
            None => vec![(open, close)],
        };
        let day_length = segments
            .iter()
            .fold(Duration::zero(), |sum, &(a, b)| sum + (b - a));
        Ok(BusinessCalendar {
            weekend: weekend_mask(&spec.weekend),
            holidays: spec.holidays.iter().copied().collect(),
            workdays: spec.workdays.iter().copied().collect(),
            segments,
            day_length,
            spec,
        })
    }

    pub fn spec(&self) -> &CalendarSpec {
        &self.spec
    }

    pub fn timezone(&self) -> Tz {
        self.spec.timezone
    }

    /// The nominal (wall-clock) length of one working day: closing minus
    /// opening, minus the lunch break.
    pub fn working_day_length(&self) -> Duration {
        self.day_length
    }

    /// Whether the local `date` is a working day: a make-up working day, or
    /// neither a weekend day nor a holiday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.workdays.contains(&date)
            || (!self.weekend[date.weekday().num_days_from_monday() as usize]
                && !self.holidays.contains(&date))
    }

    /// Whether the local `date` is one of the listed holidays (a make-up
    /// working day never is).
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays.contains(&date) && !self.workdays.contains(&date)
    }

    /// Whether `at` is inside `[open, close)` of a working day.
    pub fn is_working_time(&self, at: DateTime<Utc>) -> bool {
        let date = self.local_date(at);
        [date.pred_opt(), Some(date), date.succ_opt()]
            .into_iter()
            .flatten()
            .filter(|&d| self.is_working_day(d))
            .any(|d| self.intervals(d).any(|(a, b)| a <= at && at < b))
    }

    /// The instant `amount` of working time after `start` (see the module
    /// documentation). A zero or negative `amount` returns `start`
    /// unchanged.
    pub fn add_working_time(&self, start: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        if amount <= Duration::zero() {
            return start;
        }
        let mut remaining = amount;
        let mut cursor = start;
        let first = self.local_date(start);
        let mut date = first.pred_opt().unwrap_or(first);
        for _ in 0..=MAX_SEARCH_DAYS + 1 {
            if self.is_working_day(date) {
                for (open, close) in self.intervals(date) {
                    if close <= cursor {
                        continue;
                    }
                    let from = open.max(cursor);
                    let available = close - from;
                    if remaining <= available {
                        return from + remaining;
                    }
                    remaining -= available;
                    cursor = close;
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        start
            .checked_add_signed(Duration::days(i64::from(MAX_SEARCH_DAYS)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `days` working days after `start`: `days` × [`working_day_length`]
    /// of working time.
    ///
    /// [`working_day_length`]: BusinessCalendar::working_day_length
    pub fn add_working_days(&self, start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        self.add_working_time(start, self.day_length * days as i32)
    }

    /// The working time inside `[from, to)`; zero when `to <= from`. Useful
    /// for "time used / time left" displays.
    pub fn working_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let mut total = Duration::zero();
        let first = self.local_date(from);
        let last = self.local_date(to);
        let mut date = first.pred_opt().unwrap_or(first);
        loop {
            if self.is_working_day(date) {
                for (a, b) in self.intervals(date) {
                    let (a, b) = (a.max(from), b.min(to));
                    if a < b {
                        total += b - a;
                    }
                }
            }
            if date > last {
                break;
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        total
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.spec.timezone).date_naive()
    }

    /// The non-empty working intervals of `date` as instants, in order.
    fn intervals(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        self.segments.iter().filter_map(move |&(open, close)| {
            let a = self.first_instant_at_or_after(date.and_time(open));
            let b = self.first_instant_at_or_after(date.and_time(close));
            (a < b).then_some((a, b))
        })
    }

    /// The first instant at which the local wall clock reads `local` or
    /// later (see the module documentation on DST).
    fn first_instant_at_or_after(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let tz = self.spec.timezone;
        match tz.from_local_datetime(&local) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
            LocalResult::None => {
                // Inside a gap. Offsets are well under 36 hours, so the
                // wall clock reads before `local` at `lo` and after it at
                // `hi`; bisect on whole seconds (transitions are on whole
                // seconds).
                let base = local.and_utc().timestamp();
                let (mut lo, mut hi) = (base - 36 * 3600, base + 36 * 3600);
                let wall = |seconds: i64| {
                    DateTime::from_timestamp(seconds, 0)
                        .map(|at| at.with_timezone(&tz).naive_local())
                };
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    match wall(mid) {
                        Some(reading) if reading >= local => hi = mid,
                        Some(_) => lo = mid,
                        None => break,
                    }
                }
                DateTime::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn friday_afternoon_plus_one_working_day_is_monday_afternoon() {
        let calendar = BusinessCalendar::default();
        // 2026-03-06 is a Friday; 16:00 CST is 08:00 UTC.
        let due = calendar.add_working_days(utc("2026-03-06T16:00:00+08:00"), 1);
        assert_eq!(due, utc("2026-03-09T16:00:00+08:00"));
    }

    #[test]
    fn saturday_plus_one_working_day_is_monday_closing() {
        let calendar = BusinessCalendar::default();
        let due = calendar.add_working_days(utc("2026-03-07T11:00:00+08:00"), 1);
        assert_eq!(due, utc("2026-03-09T18:00:00+08:00"));
        assert!(!calendar.is_working_time(due));
    }

    #[test]
    fn a_deadline_at_closing_stays_at_closing() {
        let calendar = BusinessCalendar::default();
        let due = calendar.add_working_time(utc("2026-03-09T09:00:00+08:00"), Duration::hours(9));
        assert_eq!(due, utc("2026-03-09T18:00:00+08:00"));
        // Starting exactly at closing counts from the next opening.
        let due = calendar.add_working_time(utc("2026-03-09T18:00:00+08:00"), Duration::hours(1));
        assert_eq!(due, utc("2026-03-10T10:00:00+08:00"));
    }

    #[test]
    fn holidays_are_skipped_and_make_up_days_count() {
        let spec = CalendarSpec {
            holidays: vec![date("2026-10-01"), date("2026-10-02"), date("2026-10-05")],
            workdays: vec![date("2026-10-10")],
            ..CalendarSpec::default()
        };
        let calendar = BusinessCalendar::new(spec).unwrap();
        assert!(!calendar.is_working_day(date("2026-10-01")));
        assert!(calendar.is_working_day(date("2026-10-06")));
        assert!(calendar.is_working_day(date("2026-10-10")));
        assert!(!calendar.is_working_day(date("2026-10-11")));
        // Wed 30 Sep 17:00 + 2 working days (18 h): 1 h on Wed, 9 h on Tue 6
        // Oct, 8 h on Wed 7 Oct.
        let due = calendar.add_working_days(utc("2026-09-30T17:00:00+08:00"), 2);
        assert_eq!(due, utc("2026-10-07T17:00:00+08:00"));
    }

    #[test]
    fn lunch_break_is_not_working_time() {
        let spec = CalendarSpec {
            lunch_break: Some((hm(12, 0), hm(13, 30))),
            ..CalendarSpec::default()
        };
        let calendar = BusinessCalendar::new(spec).unwrap();
        assert_eq!(calendar.working_day_length(), Duration::minutes(450));
        assert!(!calendar.is_working_time(utc("2026-03-09T12:30:00+08:00")));
        let due = calendar.add_working_time(utc("2026-03-09T11:00:00+08:00"), Duration::hours(2));
        assert_eq!(due, utc("2026-03-09T14:30:00+08:00"));
        let due = calendar.add_working_time(utc("2026-03-09T11:00:00+08:00"), Duration::hours(1));
        assert_eq!(due, utc("2026-03-09T12:00:00+08:00"));
    }

    #[test]
    fn bad_specs_are_rejected() {
        let spec = CalendarSpec {
            working_hours: (hm(18, 0), hm(9, 0)),
            weekend: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ],
            ..CalendarSpec::default()
        };
        let problems = BusinessCalendar::new(spec).unwrap_err();
        assert_eq!(
            problems,
            vec![
                CalendarError::EmptyWorkingHours {
                    start: hm(18, 0),
                    end: hm(9, 0)
                },
                CalendarError::NoWorkingWeekday,
            ]
        );
        let spec = CalendarSpec {
            holidays: vec![date("2026-02-14")],
            workdays: vec![date("2026-02-14"), date("2026-02-16")],
            ..CalendarSpec::default()
        };
        let problems = BusinessCalendar::new(spec).unwrap_err();
        assert_eq!(
            problems[0].to_string(),
            "2026-02-14 is both a holiday and a make-up working day"
        );
        assert_eq!(
            problems[1].to_string(),
            "make-up working day 2026-02-16 is a Mon, not a weekend day (a typo?)"
        );
    }

    #[test]
    fn spring_forward_gap_at_opening_opens_when_the_clocks_jump() {
        let spec = CalendarSpec {
            timezone: chrono_tz::America::New_York,
            working_hours: (hm(2, 30), hm(10, 0)),
            ..CalendarSpec::default()
        };
        let calendar = BusinessCalendar::new(spec).unwrap();
        // Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let (open, close) = calendar.intervals(date("2026-03-08")).next().unwrap();
        assert_eq!(open, utc("2026-03-08T07:00:00Z"));
        assert_eq!(close, utc("2026-03-08T14:00:00Z"));
    }

    #[test]
    fn fall_back_fold_at_opening_uses_the_first_occurrence() {
        let spec = CalendarSpec {
            timezone: chrono_tz::America::New_York,
            working_hours: (hm(1, 30), hm(10, 0)),
            weekend: vec![Weekday::Sat],
            ..CalendarSpec::default()
        };
        let calendar = BusinessCalendar::new(spec).unwrap();
        // Sunday 2026-11-01: 02:00 EDT goes back to 01:00 EST.
        let (open, close) = calendar.intervals(date("2026-11-01")).next().unwrap();
        assert_eq!(open, utc("2026-11-01T05:30:00Z"));
        assert_eq!(close, utc("2026-11-01T15:00:00Z"));
        assert_eq!(close - open, Duration::minutes(570));
    }
}
