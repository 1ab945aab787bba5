//! Property tests of the SLA business calendar against a slow, independent
//! reference that steps minute by minute, plus explicit holiday and time
//! zone cases.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use hotline::tickets::calendar::{BusinessCalendar, CalendarSpec};
use hotline::tickets::model::CustomerLevel;
use hotline::tickets::sla::{SlaClock, SlaPolicy};
use proptest::prelude::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn hm(text: &str) -> NaiveTime {
    NaiveTime::parse_from_str(text, "%H:%M").unwrap()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// Working time by definition, minute by minute: the minute starting at
/// `u` is working when the furthest wall-clock reading so far, `m`, is
/// inside the working hours of a working day. (Using the running maximum
/// makes an opening or closing mean "the first time the wall clock reads
/// it or later", which is how the calendar resolves DST gaps and folds.)
struct Reference {
    spec: CalendarSpec,
}

impl Reference {
    fn working_day(&self, day: NaiveDate) -> bool {
        self.spec.workdays.contains(&day)
            || (!self.spec.weekend.contains(&day.weekday()) && !self.spec.holidays.contains(&day))
    }

    fn working_wall(&self, wall: NaiveDateTime) -> bool {
        let (open, close) = self.spec.working_hours;
        let time = wall.time();
        let in_break = self
            .spec
            .lunch_break
            .is_some_and(|(start, end)| start <= time && time < end);
        self.working_day(wall.date()) && open <= time && time < close && !in_break
    }

    fn wall(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.spec.timezone).naive_local()
    }

    /// The running maximum of the wall clock at `at`, looking back 3 hours
    /// (longer than any DST fold).
    fn max_wall(&self, at: DateTime<Utc>) -> NaiveDateTime {
        (0..=180)
            .map(|m| self.wall(at - Duration::minutes(m)))
            .max()
            .unwrap()
    }

    fn working_minute(&self, at: DateTime<Utc>) -> bool {
        self.working_wall(self.max_wall(at))
    }

    /// The end of the `minutes`-th working minute at or after `start`.
    fn add(&self, start: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
        let mut max_wall = self.max_wall(start);
        let mut at = start;
        let mut counted = 0;
        for _ in 0..60 * 24 * 60 {
            max_wall = max_wall.max(self.wall(at));
            if self.working_wall(max_wall) {
                counted += 1;
                if counted == minutes {
                    return at + Duration::minutes(1);
                }
            }
            at += Duration::minutes(1);
        }
        panic!("reference found no working time in 60 days");
    }

    fn day_minutes(&self) -> i64 {
        let (open, close) = self.spec.working_hours;
        let lunch = self
            .spec
            .lunch_break
            .map_or(Duration::zero(), |(start, end)| end - start);
        (close - open - lunch).num_minutes()
    }
}

/// A calendar under test and starts that exercise it.
#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    spec: CalendarSpec,
    /// Starts are generated within ±3 days of these instants.
    around: Vec<DateTime<Utc>>,
}

fn spec(tz: Tz, hours: (&str, &str), weekend: &[Weekday]) -> CalendarSpec {
    CalendarSpec {
        timezone: tz,
        working_hours: (hm(hours.0), hm(hours.1)),
        lunch_break: None,
        weekend: weekend.to_vec(),
        holidays: Vec::new(),
        workdays: Vec::new(),
    }
}

fn cases() -> Vec<Case> {
    use chrono_tz::{America::New_York, Asia::Shanghai, Europe::London};
    use Weekday::*;
    let ny_dst = vec![utc("2026-03-08T07:00:00Z"), utc("2026-11-01T06:00:00Z")];
    let london_dst = vec![utc("2026-03-29T01:00:00Z"), utc("2026-10-25T01:00:00Z")];
    let builtin = SlaPolicy::builtin().calendar().spec().clone();
    vec![
        Case {
            name: "built-in Shanghai, holidays around Spring Festival and National Day",
            spec: builtin,
            around: vec![
                utc("2026-02-13T00:00:00Z"),
                utc("2026-04-03T00:00:00Z"),
                utc("2026-09-30T16:00:00Z"),
                utc("2026-12-31T16:00:00Z"),
            ],
        },
        Case {
            name: "Shanghai with a lunch break, Sunday off",
            spec: CalendarSpec {
                lunch_break: Some((hm("12:00"), hm("13:30"))),
                holidays: vec![date("2026-05-01"), date("2026-05-04")],
                ..spec(Shanghai, ("08:30", "17:30"), &[Sun])
            },
            around: vec![utc("2026-05-01T00:00:00Z")],
        },
        Case {
            name: "New York, DST transitions inside working hours",
            spec: spec(New_York, ("00:30", "10:00"), &[Fri, Sat]),
            around: ny_dst.clone(),
        },
        Case {
            name: "New York, opening in the spring gap",
            spec: spec(New_York, ("02:30", "11:00"), &[Sat]),
            around: ny_dst.clone(),
        },
        Case {
            name: "New York, opening in the autumn fold",
            spec: spec(New_York, ("01:30", "09:00"), &[Sat]),
            around: ny_dst,
        },
        Case {
            name: "London, DST inside working hours",
            spec: spec(London, ("00:30", "09:00"), &[Sat]),
            around: london_dst.clone(),
        },
        Case {
            name: "London, opening in the gap and the fold",
            spec: CalendarSpec {
                lunch_break: Some((hm("12:00"), hm("13:00"))),
                ..spec(London, ("01:30", "17:00"), &[Sat])
            },
            around: london_dst,
        },
        Case {
            name: "London office hours with a bank holiday and a make-up Saturday",
            spec: CalendarSpec {
                holidays: vec![date("2026-05-04"), date("2026-05-25")],
                workdays: vec![date("2026-05-09")],
                ..spec(London, ("09:00", "17:30"), &[Sat, Sun])
            },
            around: vec![utc("2026-05-04T00:00:00Z"), utc("2026-05-25T00:00:00Z")],
        },
    ]
}

/// (case index, start) with starts on whole minutes.
fn case_and_start() -> impl Strategy<Value = (usize, DateTime<Utc>)> {
    let count = cases().len();
    (0..count, 0usize..4, -3 * 24 * 60i64..=3 * 24 * 60).prop_map(|(case, around, offset)| {
        let all = cases();
        let anchors = &all[case].around;
        (
            case,
            anchors[around % anchors.len()] + Duration::minutes(offset),
        )
    })
}

/// Either working minutes or working days.
#[derive(Debug, Clone, Copy)]
enum Amount {
    Minutes(i64),
    Days(u32),
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        (1i64..=30 * 60).prop_map(Amount::Minutes),
        (1u32..=3).prop_map(Amount::Days),
    ]
}

fn apply(calendar: &BusinessCalendar, start: DateTime<Utc>, amount: Amount) -> DateTime<Utc> {
    match amount {
        Amount::Minutes(m) => calendar.add_working_time(start, Duration::minutes(m)),
        Amount::Days(d) => calendar.add_working_days(start, d),
    }
}

fn minutes_of(reference: &Reference, amount: Amount) -> i64 {
    match amount {
        Amount::Minutes(m) => m,
        Amount::Days(d) => i64::from(d) * reference.day_minutes(),
    }
}

fn build(case: usize) -> (Case, BusinessCalendar, Reference) {
    let case = cases().swap_remove(case);
    let calendar = BusinessCalendar::new(case.spec.clone()).expect(case.name);
    let reference = Reference {
        spec: case.spec.clone(),
    };
    (case, calendar, reference)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// (1) + (2): the result is inside working hours or exactly at a
    /// closing, the working time up to it is the amount asked for, and it
    /// is the same instant as the minute-stepping reference.
    #[test]
    fn adding_working_time_matches_the_reference((case, start) in case_and_start(), amount in amount()) {
        let (case, calendar, reference) = build(case);
        let due = apply(&calendar, start, amount);
        let minutes = minutes_of(&reference, amount);

        let at_closing = !calendar.is_working_time(due) && calendar.is_working_time(due - Duration::seconds(1));
        prop_assert!(calendar.is_working_time(due) || at_closing, "{}: {start} + {amount:?} = {due}", case.name);
        prop_assert!(reference.working_minute(due - Duration::minutes(1)), "{}: {due}", case.name);
        prop_assert_eq!(calendar.working_time_between(start, due), Duration::minutes(minutes), "{}", case.name);
        prop_assert_eq!(due, reference.add(start, minutes), "{}: {} + {:?}", case.name, start, amount);
    }

    /// `is_working_time` agrees with the reference definition.
    #[test]
    fn working_time_matches_the_reference((case, at) in case_and_start()) {
        let (case, calendar, reference) = build(case);
        prop_assert_eq!(calendar.is_working_time(at), reference.working_minute(at), "{}: {}", case.name, at);
    }

    /// (5) Later starts and larger amounts never give earlier deadlines.
    #[test]
    fn results_are_monotonic(
        (case, start) in case_and_start(),
        later in 0i64..3 * 24 * 60,
        amount in amount(),
        more in 0i64..600,
    ) {
        let (case, calendar, _) = build(case);
        let due = apply(&calendar, start, amount);
        let later_due = apply(&calendar, start + Duration::minutes(later), amount);
        prop_assert!(due <= later_due, "{}: {start} -> {due}, +{later}m -> {later_due}", case.name);
        let bigger = match amount {
            Amount::Minutes(m) => Amount::Minutes(m + more),
            Amount::Days(d) => Amount::Days(d + u32::from(more > 300)),
        };
        prop_assert!(due <= apply(&calendar, start, bigger), "{}", case.name);
    }

    /// Sub-minute starts: the result moves with the start inside working
    /// hours and never lands outside them.
    #[test]
    fn seconds_are_kept((case, start) in case_and_start(), seconds in 1i64..60, minutes in 1i64..600) {
        let (case, calendar, _) = build(case);
        let start = start + Duration::seconds(seconds);
        let due = calendar.add_working_time(start, Duration::minutes(minutes));
        prop_assert_eq!(calendar.working_time_between(start, due), Duration::minutes(minutes), "{}", case.name);
        prop_assert!(calendar.is_working_time(due) || calendar.is_working_time(due - Duration::seconds(1)));
    }
}

fn repair_deadline(policy: &SlaPolicy, start: &str) -> DateTime<Utc> {
    policy
        .deadline(
            SlaClock::Repair,
            utc(start),
            "industry_app",
            CustomerLevel::LocalB,
        )
        .unwrap()
}

/// (3) Three working days over weekends, holidays and make-up days of the
/// built-in 2026 calendar (09:00–18:00 Asia/Shanghai).
#[test]
fn three_working_days_over_weekends_and_holidays() {
    let policy = SlaPolicy::builtin();
    // Wed 30 Sep 10:00: 8 h, National Day 1–7 Oct, Thu 8 and Fri 9 Oct
    // (18 h), 1 h on the make-up Saturday 10 Oct.
    assert_eq!(
        repair_deadline(&policy, "2026-09-30T10:00:00+08:00"),
        utc("2026-10-10T10:00:00+08:00")
    );
    // Fri 3 Apr 15:00: 3 h, Qingming Sat 4–Mon 6 Apr, Tue and Wed (18 h),
    // 6 h on Thu 9 Apr.
    assert_eq!(
        repair_deadline(&policy, "2026-04-03T15:00:00+08:00"),
        utc("2026-04-09T15:00:00+08:00")
    );
    // Fri 13 Feb 10:00: 8 h, make-up Saturday 14 Feb (9 h), Spring Festival
    // 15–23 Feb, Tue 24 Feb (9 h), 1 h on Wed 25 Feb.
    assert_eq!(
        repair_deadline(&policy, "2026-02-13T10:00:00+08:00"),
        utc("2026-02-25T10:00:00+08:00")
    );
    // Created on the Labour Day holiday: counts from Wed 6 May and ends at
    // Friday's closing.
    assert_eq!(
        repair_deadline(&policy, "2026-05-02T11:00:00+08:00"),
        utc("2026-05-08T18:00:00+08:00")
    );
    // An ordinary weekend: Fri 16:00 + 3 working days = Wed 16:00.
    assert_eq!(
        repair_deadline(&policy, "2026-03-06T16:00:00+08:00"),
        utc("2026-03-11T16:00:00+08:00")
    );
    // Feedback, one working day: Friday 16:00 -> Monday 16:00; Saturday ->
    // Monday's closing.
    let feedback = |start: &str| {
        policy
            .deadline(
                SlaClock::Feedback,
                utc(start),
                "industry_app",
                CustomerLevel::Group,
            )
            .unwrap()
    };
    assert_eq!(
        feedback("2026-03-06T16:00:00+08:00"),
        utc("2026-03-09T16:00:00+08:00")
    );
    assert_eq!(
        feedback("2026-03-07T09:30:00+08:00"),
        utc("2026-03-09T18:00:00+08:00")
    );
}

/// (4) Time zone edges.
#[test]
fn new_york_dst_days_are_shorter_and_longer() {
    use chrono_tz::America::New_York;
    let calendar =
        BusinessCalendar::new(spec(New_York, ("00:30", "10:00"), &[Weekday::Sat])).unwrap();
    // Sun 8 Mar 2026: 00:30 EST (05:30Z) to 10:00 EDT (14:00Z) is 8.5 h, so
    // a 9.5 h working day ends 1 h into Monday (opening 00:30 EDT = 04:30Z).
    let open = utc("2026-03-08T05:30:00Z");
    assert_eq!(
        calendar.working_time_between(open, utc("2026-03-09T00:00:00Z")),
        Duration::minutes(510)
    );
    assert_eq!(
        calendar.add_working_days(open, 1),
        utc("2026-03-09T05:30:00Z")
    );
    // Sun 1 Nov 2026: 00:30 EDT (04:30Z) to 10:00 EST (15:00Z) is 10.5 h.
    let open = utc("2026-11-01T04:30:00Z");
    assert_eq!(
        calendar.add_working_days(open, 1),
        utc("2026-11-01T14:00:00Z")
    );
    assert_eq!(
        calendar.add_working_time(open, Duration::minutes(630)),
        utc("2026-11-01T15:00:00Z")
    );
    // Both 01:15 EDT and 01:15 EST are working time.
    assert!(calendar.is_working_time(utc("2026-11-01T05:15:00Z")));
    assert!(calendar.is_working_time(utc("2026-11-01T06:15:00Z")));

    // Opening inside the spring gap opens when the clocks jump (03:00 EDT).
    let calendar =
        BusinessCalendar::new(spec(New_York, ("02:30", "11:00"), &[Weekday::Sat])).unwrap();
    assert_eq!(
        calendar.add_working_time(utc("2026-03-08T05:00:00Z"), Duration::minutes(1)),
        utc("2026-03-08T07:01:00Z")
    );
    // Opening inside the autumn fold opens at its first occurrence (EDT).
    let calendar =
        BusinessCalendar::new(spec(New_York, ("01:30", "09:00"), &[Weekday::Sat])).unwrap();
    assert_eq!(
        calendar.add_working_time(utc("2026-11-01T04:00:00Z"), Duration::minutes(1)),
        utc("2026-11-01T05:31:00Z")
    );
}

#[test]
fn london_dst_days() {
    use chrono_tz::Europe::London;
    let calendar =
        BusinessCalendar::new(spec(London, ("00:30", "09:00"), &[Weekday::Sat])).unwrap();
    // Sun 29 Mar 2026: 00:30 GMT to 09:00 BST (08:00Z) is 7.5 h.
    let open = utc("2026-03-29T00:30:00Z");
    assert_eq!(
        calendar.add_working_time(open, Duration::minutes(450)),
        utc("2026-03-29T08:00:00Z")
    );
    // …and the next working time is Monday 00:30 BST (Sunday 23:30Z).
    assert_eq!(
        calendar.add_working_time(open, Duration::minutes(451)),
        utc("2026-03-29T23:31:00Z")
    );
    // Sun 25 Oct 2026: 00:30 BST (23:30Z the day before) to 09:00 GMT is 9.5 h.
    let open = utc("2026-10-24T23:30:00Z");
    assert_eq!(
        calendar.add_working_time(open, Duration::minutes(570)),
        utc("2026-10-25T09:00:00Z")
    );
}

#[test]
fn starts_exactly_at_opening_and_closing() {
    let calendar = BusinessCalendar::default();
    let open = utc("2026-03-09T09:00:00+08:00");
    let close = utc("2026-03-09T18:00:00+08:00");
    assert!(calendar.is_working_time(open));
    assert!(!calendar.is_working_time(close));
    assert!(calendar.is_working_time(close - Duration::nanoseconds(1)));
    assert_eq!(
        calendar.add_working_time(open, Duration::hours(1)),
        utc("2026-03-09T10:00:00+08:00")
    );
    assert_eq!(calendar.add_working_days(open, 1), close);
    assert_eq!(
        calendar.add_working_time(close, Duration::hours(1)),
        utc("2026-03-10T10:00:00+08:00")
    );
    assert_eq!(
        calendar.add_working_days(close, 1),
        utc("2026-03-10T18:00:00+08:00")
    );
    // Friday closing + 1 working day is Monday closing, not Tuesday opening.
    let friday_close = utc("2026-03-06T18:00:00+08:00");
    assert_eq!(
        calendar.add_working_days(friday_close, 1),
        utc("2026-03-09T18:00:00+08:00")
    );
}

#[test]
fn shanghai_is_eight_hours_ahead_of_utc_midnight() {
    let calendar = BusinessCalendar::default();
    // Midnight UTC Monday is 08:00 CST: counts from 09:00 CST (01:00Z).
    assert_eq!(
        calendar.add_working_time(utc("2026-03-09T00:00:00Z"), Duration::hours(1)),
        utc("2026-03-09T02:00:00Z")
    );
    // 16:00Z Sunday is Monday 00:00 CST: one working day ends Monday 18:00 CST.
    assert_eq!(
        calendar.add_working_days(utc("2026-03-08T16:00:00Z"), 1),
        utc("2026-03-09T10:00:00Z")
    );
    // 15:59Z Friday is Friday 23:59 CST: the UTC date is Friday either way,
    // but the local day is over.
    assert_eq!(
        calendar.add_working_days(utc("2026-03-06T15:59:00Z"), 1),
        utc("2026-03-09T10:00:00Z")
    );
    // 23:30Z Sunday is already Monday 07:30 CST.
    assert_eq!(
        calendar.add_working_time(utc("2026-03-08T23:30:00Z"), Duration::minutes(30)),
        utc("2026-03-09T01:30:00Z")
    );
    // A 24×7 limit is plain elapsed time, whatever the calendar.
    let policy = SlaPolicy::builtin();
    let start = utc("2026-10-01T00:00:00Z");
    assert_eq!(
        policy.deadline(
            SlaClock::Repair,
            start,
            "virtual_network",
            CustomerLevel::LocalC
        ),
        Some(start + Duration::hours(48))
    );
}

#[test]
fn an_unknown_category_still_gets_every_required_clock() {
    let policy = SlaPolicy::builtin();
    let start = utc("2026-03-09T01:00:00Z");
    for &clock in SlaClock::ALL {
        let got = policy.deadline(clock, start, "no_such_category", CustomerLevel::LocalC);
        assert_eq!(got.is_some(), clock != SlaClock::Feedback, "{clock}");
    }
}
