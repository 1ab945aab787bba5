//! SLA policy (服务时限): the deadlines of a fault ticket's process clocks,
//! from the telecom after-sales rules. Pure: the caller passes the start of
//! each clock; nothing here reads the clock or the database (except
//! [`SlaPolicy::load`], which reads the policy file).
//!
//! # Clocks
//!
//! | clock      | 中文     | starts at (chosen by the caller)      | default |
//! |------------|----------|---------------------------------------|---------|
//! | `dispatch` | 派单     | ticket creation (受理)                 | 15 min  |
//! | `accept`   | 接单     | dispatch                              | 30 min  |
//! | `feedback` | 反馈     | ticket creation; only some categories | 1 working day |
//! | `repair`   | 修复     | ticket creation (受理)                 | by category and customer level |
//! | `confirm`  | 修复确认 | repair (resolved)                     | 15 min  |
//!
//! # Limits
//!
//! A [`Limit`] is written as a whole number and a unit: `m`, `h`, `d` are
//! 24×7 elapsed time (`d` = 24 h); `wh` is working hours and `wd` working
//! days, both counted over the [`BusinessCalendar`]. The counting rules
//! (working days, make-up days, start outside working hours, deadline at
//! closing, DST, the search bound) are documented in
//! [`crate::tickets::calendar`]. In short: working time counts only inside
//! the working hours of working days; a start outside working hours counts
//! from the next opening; N working days are N × the length of one working
//! day of working time (Friday 16:00 + `1wd` with 09:00–18:00 is Monday
//! 16:00; Saturday + `1wd` is Monday 18:00); a deadline that falls exactly at
//! closing stays at closing. Limits are at most one year (366 d, 8784 wh or
//! 366 wd) and greater than zero.
//!
//! # The policy file
//!
//! `sla.toml` (the shipped one is built in, see [`SlaPolicy::builtin`])
//! documents every key. [`SlaPolicy::from_toml`] reports every problem in
//! the file at once, each with the file name and line.
//!
//! Each category may also list `keywords`: the words customers use for its
//! products ("专线", "800", "leased line"), by which a text that reports a
//! fault gets its category ([`SlaPolicy::category_named_in`], rules in
//! [`crate::tickets::product_words`]). A word may belong to one category
//! only.

pub use super::calendar::{BusinessCalendar, CalendarError, CalendarSpec, MAX_SEARCH_DAYS};
use super::model::{CustomerLevel, UnknownCode};
use super::product_words::{self, ProductWords};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use thiserror::Error;

/// One of a ticket's SLA clocks (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlaClock {
    /// 派单时限: from creation to dispatch.
    Dispatch,
    /// 接单时限: from dispatch to acceptance.
    Accept,
    /// 反馈时限: from creation to the first feedback to the customer; only
    /// categories that set it.
    Feedback,
    /// 修复时限: from creation to resolution; by category and level.
    Repair,
    /// 修复确认时限: from resolution to the restoration being confirmed.
    Confirm,
}

impl SlaClock {
    pub const ALL: &'static [SlaClock] = &[
        SlaClock::Dispatch,
        SlaClock::Accept,
        SlaClock::Feedback,
        SlaClock::Repair,
        SlaClock::Confirm,
    ];

    /// The stable code used in files, the database and the API.
    pub fn code(self) -> &'static str {
        match self {
            SlaClock::Dispatch => "dispatch",
            SlaClock::Accept => "accept",
            SlaClock::Feedback => "feedback",
            SlaClock::Repair => "repair",
            SlaClock::Confirm => "confirm",
        }
    }

    /// The Chinese name staff know it by.
    pub fn chinese_name(self) -> &'static str {
        match self {
            SlaClock::Dispatch => "派单",
            SlaClock::Accept => "接单",
            SlaClock::Feedback => "反馈",
            SlaClock::Repair => "修复",
            SlaClock::Confirm => "修复确认",
        }
    }

    /// Whether every category must have this clock (all but `feedback`).
    pub fn is_required(self) -> bool {
        self != SlaClock::Feedback
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for SlaClock {
    type Err = UnknownCode;

    fn from_str(value: &str) -> Result<Self, UnknownCode> {
        SlaClock::ALL
            .iter()
            .copied()
            .find(|c| c.code() == value || c.chinese_name() == value)
            .ok_or_else(|| UnknownCode {
                kind: "SLA clock",
                value: value.to_string(),
                expected: codes(SlaClock::ALL.iter().map(|c| c.code())),
            })
    }
}

impl fmt::Display for SlaClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

fn codes<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn level_index(level: CustomerLevel) -> usize {
    CustomerLevel::ALL
        .iter()
        .position(|&l| l == level)
        .expect("every level is in ALL")
}

/// How long a clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// 24×7 elapsed time (`15m`, `20h`, `2d`).
    Elapsed(Duration),
    /// Working time over the business calendar (`8wh`).
    WorkingHours(Duration),
    /// Working days over the business calendar (`3wd`): N × the length of
    /// one working day of working time.
    WorkingDays(u32),
}

/// Why a limit string is not a [`Limit`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ParseLimitError(String);

const MAX_DAYS: i64 = 366;

impl Limit {
    /// The deadline of a clock with this limit that starts at `start`.
    pub fn deadline(self, start: DateTime<Utc>, calendar: &BusinessCalendar) -> DateTime<Utc> {
        match self {
            Limit::Elapsed(duration) => start
                .checked_add_signed(duration)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Limit::WorkingHours(duration) => calendar.add_working_time(start, duration),
            Limit::WorkingDays(days) => calendar.add_working_days(start, days),
        }
    }

    /// Whether this limit is counted over the business calendar.
    pub fn is_working_time(self) -> bool {
        !matches!(self, Limit::Elapsed(_))
    }
}

impl FromStr for Limit {
    type Err = ParseLimitError;

    fn from_str(text: &str) -> Result<Limit, ParseLimitError> {
        let expected =
            || ParseLimitError("expected a number followed by m, h, d, wh or wd".to_string());
        let text = text.trim();
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        if number.is_empty() {
            return Err(expected());
        }
        let number: i64 = number
            .parse()
            .map_err(|_| ParseLimitError("number too large".into()))?;
        if number == 0 {
            return Err(ParseLimitError("a limit must be greater than zero".into()));
        }
        let too_long = || ParseLimitError("too long: a limit is at most one year".into());
        match unit.trim() {
            "m" if number <= MAX_DAYS * 24 * 60 => Ok(Limit::Elapsed(Duration::minutes(number))),
            "h" if number <= MAX_DAYS * 24 => Ok(Limit::Elapsed(Duration::hours(number))),
            "d" if number <= MAX_DAYS => Ok(Limit::Elapsed(Duration::days(number))),
            "wh" if number <= MAX_DAYS * 24 => Ok(Limit::WorkingHours(Duration::hours(number))),
            "wd" if number <= MAX_DAYS => Ok(Limit::WorkingDays(number as u32)),
            "m" | "h" | "d" | "wh" | "wd" => Err(too_long()),
            _ => Err(expected()),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Whole hours as `h`, else whole minutes as `m`, else seconds.
        fn time(f: &mut fmt::Formatter<'_>, d: Duration, working: &str) -> fmt::Result {
            let (minutes, seconds) = (d.num_minutes(), d.num_seconds());
            if d == Duration::hours(d.num_hours()) {
                write!(f, "{}{working}h", d.num_hours())
            } else if d == Duration::minutes(minutes) {
                write!(f, "{minutes}{working}m")
            } else {
                write!(f, "{seconds}{working}s")
            }
        }
        match *self {
            Limit::Elapsed(d) => time(f, d, ""),
            Limit::WorkingHours(d) => time(f, d, "w"),
            Limit::WorkingDays(n) => write!(f, "{n}wd"),
        }
    }
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaProblem {
    /// The file name given to [`SlaPolicy::from_toml`].
    pub origin: String,
    /// 1-based; `None` when the problem has no place (a missing top-level key).
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for SlaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {}: {}", self.origin, line, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

/// A policy that cannot be loaded.
#[derive(Debug, Error)]
pub enum SlaError {
    #[error("cannot read SLA policy {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, in file order; displayed one per line.
    #[error("{}", problems_text(.0))]
    Invalid(Vec<SlaProblem>),
}

fn problems_text(problems: &[SlaProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl SlaError {
    /// The problems found in the file (empty for [`SlaError::Read`]).
    pub fn problems(&self) -> &[SlaProblem] {
        match self {
            SlaError::Read { .. } => &[],
            SlaError::Invalid(problems) => problems,
        }
    }
}

/// Limits of every clock for one category, by clock then level.
type ClockTable = [Option<[Limit; 5]>; 5];

#[derive(Debug, Clone, PartialEq)]
struct Category {
    code: String,
    name: String,
    clocks: ClockTable,
}

/// The SLA policy: the business calendar and the limits of every clock per
/// product category and customer level.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    calendar: BusinessCalendar,
    default_category: String,
    categories: Vec<Category>,
    product_words: ProductWords,
}

/// The shipped policy file.
pub const BUILTIN_TOML: &str = include_str!("../../sla.toml");

impl SlaPolicy {
    /// Parses policy text; `origin` (a file name) prefixes every problem.
    pub fn from_toml(text: &str, origin: &str) -> Result<SlaPolicy, SlaError> {
        let mut checker = Checker {
            text,
            origin,
            problems: Vec::new(),
        };
        let policy = match raw::parse(text) {
            Ok(root) => checker.policy(&root),
            Err(error) => {
                let span = error.span();
                checker.report(&span, error.message().trim_end().to_string());
                None
            }
        };
        match policy {
            Some(policy) if checker.problems.is_empty() => Ok(policy),
            _ => {
                checker.problems.sort_by_key(|p| p.line);
                Err(SlaError::Invalid(checker.problems))
            }
        }
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<SlaPolicy, SlaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SlaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        SlaPolicy::from_toml(&text, &path.display().to_string())
    }

    /// The shipped defaults ([`BUILTIN_TOML`], the repository's `sla.toml`).
    pub fn builtin() -> SlaPolicy {
        static BUILTIN: OnceLock<SlaPolicy> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                SlaPolicy::from_toml(BUILTIN_TOML, "sla.toml (built in)")
                    .unwrap_or_else(|error| panic!("the built-in sla.toml is invalid:\n{error}"))
            })
            .clone()
    }

    /// Category codes known to the policy, in file order.
    pub fn categories(&self) -> Vec<&str> {
        self.categories.iter().map(|c| c.code.as_str()).collect()
    }

    pub fn has_category(&self, code: &str) -> bool {
        self.categories.iter().any(|c| c.code == code)
    }

    /// The category used for unknown category codes.
    pub fn default_category(&self) -> &str {
        &self.default_category
    }

    /// The category whose product word comes first in `text` (a customer's
    /// description of a fault), if any word does; see
    /// [`crate::tickets::product_words`].
    pub fn category_named_in(&self, text: &str) -> Option<&str> {
        self.product_words.category_in(text)
    }

    /// The display name of a category (its `name` key, else its code).
    pub fn category_name(&self, code: &str) -> Option<&str> {
        self.categories
            .iter()
            .find(|c| c.code == code)
            .map(|c| c.name.as_str())
    }

    fn category(&self, code: &str) -> &Category {
        self.categories
            .iter()
            .find(|c| c.code == code)
            .or_else(|| {
                self.categories
                    .iter()
                    .find(|c| c.code == self.default_category)
            })
            .expect("the default category exists")
    }

    /// The limit of `clock` for a ticket of `category` (unknown codes use
    /// the default category) and `level`; `None` when the clock does not
    /// apply.
    pub fn limit(&self, clock: SlaClock, category: &str, level: CustomerLevel) -> Option<Limit> {
        self.category(category).clocks[clock.index()].map(|levels| levels[level_index(level)])
    }

    /// The deadline of `clock` that starts at `start`, for a ticket of
    /// `category` and `level`. `None` when the clock does not apply (e.g.
    /// `Feedback` for a category without a feedback limit). An unknown
    /// category uses the policy's `default_category`.
    pub fn deadline(
        &self,
        clock: SlaClock,
        start: DateTime<Utc>,
        category: &str,
        level: CustomerLevel,
    ) -> Option<DateTime<Utc>> {
        self.limit(clock, category, level)
            .map(|limit| limit.deadline(start, &self.calendar))
    }

    pub fn calendar(&self) -> &BusinessCalendar {
        &self.calendar
    }
}

/// A category's product word: (word as written, category code).
type ProductWord = (String, String);

/// Walks the spanned TOML tree, collecting problems.
struct Checker<'a> {
    text: &'a str,
    origin: &'a str,
    problems: Vec<SlaProblem>,
}

type Span = Option<Range<usize>>;
type Entries = [(raw::Key, raw::Node)];

const TOP_KEYS: &[&str] = &[
    "timezone",
    "default_category",
    "calendar",
    "clocks",
    "categories",
];
const CALENDAR_KEYS: &[&str] = &[
    "working_hours",
    "lunch_break",
    "weekend",
    "holidays",
    "workdays",
];

impl Checker<'_> {
    fn report(&mut self, span: &Span, message: String) {
        let line = span.as_ref().map(|span| {
            let end = span.start.min(self.text.len());
            self.text.as_bytes()[..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        self.problems.push(SlaProblem {
            origin: self.origin.to_string(),
            line,
            message,
        });
    }

    /// `node` as a table; reports keys not in `allowed` (when given).
    fn table<'n>(
        &mut self,
        node: &'n raw::Node,
        what: &str,
        allowed: Option<&[&str]>,
    ) -> Option<&'n Entries> {
        let raw::Value::Table(entries) = &node.value else {
            self.report(
                &node.span,
                format!("{what} must be a table, found {}", node.value.kind()),
            );
            return None;
        };
        if let Some(allowed) = allowed {
            for (key, _) in entries {
                if !allowed.contains(&key.name.as_str()) {
                    self.report(
                        &key.span,
                        format!(
                            "unknown key \"{}\" in {what} (expected one of: {})",
                            key.name,
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        Some(entries)
    }

    fn string<'n>(&mut self, node: &'n raw::Node, what: &str) -> Option<&'n str> {
        match &node.value {
            raw::Value::String(text) | raw::Value::Datetime(text) => Some(text),
            other => {
                self.report(
                    &node.span,
                    format!("{what} must be a string, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn array<'n>(&mut self, node: &'n raw::Node, what: &str) -> Option<&'n [raw::Node]> {
        match &node.value {
            raw::Value::Array(items) => Some(items),
            other => {
                self.report(
                    &node.span,
                    format!("{what} must be an array, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn policy(&mut self, root: &raw::Node) -> Option<SlaPolicy> {
        let entries = self.table(root, "the top level", Some(TOP_KEYS))?;
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name);

        let timezone = match get("timezone") {
            None => Some(chrono_tz::Asia::Shanghai),
            Some((_, node)) => self.string(node, "timezone").and_then(|name| {
                match name.parse::<Tz>() {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        self.report(
                            &node.span,
                            format!(
                                "unknown time zone \"{name}\" (expected an IANA name such as \"Asia/Shanghai\")"
                            ),
                        );
                        None
                    }
                }
            }),
        };

        let calendar = match get("calendar") {
            Some((_, node)) => self.calendar(node, timezone),
            None => {
                self.report(
                    &None,
                    "missing [calendar] table (at least working_hours)".into(),
                );
                None
            }
        };

        let defaults = match get("clocks") {
            Some((_, node)) => self
                .clocks(node, "in [clocks]", &[])
                .and_then(|(table, _, ok)| ok.then_some(table)),
            None => Some(Default::default()),
        };

        let categories = match get("categories") {
            Some((key, node)) => self.categories(key, node, defaults.as_ref()),
            None => {
                self.report(&None, "missing [categories] table".into());
                None
            }
        };
        let (categories, product_words) = match categories {
            Some((categories, words)) => (Some(categories), Some(ProductWords::new(words))),
            None => (None, None),
        };

        let default_category = match get("default_category") {
            None => {
                self.report(&None, "missing key \"default_category\"".into());
                None
            }
            Some((_, node)) => {
                let code = self.string(node, "default_category")?;
                // Checked against the keys as written, so that it is
                // reported even when a category has problems of its own.
                let known: Vec<&str> = match get("categories").map(|(_, n)| &n.value) {
                    Some(raw::Value::Table(entries)) => {
                        entries.iter().map(|(k, _)| k.name.as_str()).collect()
                    }
                    _ => Vec::new(),
                };
                if !known.is_empty() && !known.contains(&code) {
                    self.report(
                        &node.span,
                        format!(
                            "default_category \"{code}\" is not a category (expected one of: {})",
                            known.join(", ")
                        ),
                    );
                    return None;
                }
                Some(code.to_string())
            }
        };

        Some(SlaPolicy {
            calendar: calendar?,
            default_category: default_category?,
            categories: categories?,
            product_words: product_words?,
        })
    }

    fn calendar(&mut self, node: &raw::Node, timezone: Option<Tz>) -> Option<BusinessCalendar> {
        let entries = self.table(node, "[calendar]", Some(CALENDAR_KEYS))?;
        let get = |name: &str| entries.iter().find(|(k, _)| k.name == name);
        let mut ok = timezone.is_some();
        let mut spec = CalendarSpec {
            timezone: timezone.unwrap_or(chrono_tz::Asia::Shanghai),
            ..CalendarSpec::default()
        };

        let hours_span = match get("working_hours") {
            Some((_, node)) => {
                match self.time_pair(node, "working_hours") {
                    Some(pair) => spec.working_hours = pair,
                    None => ok = false,
                }
                node.span.clone()
            }
            None => {
                self.report(
                    &node.span,
                    "[calendar] is missing working_hours, e.g. working_hours = [\"09:00\", \"18:00\"]"
                        .into(),
                );
                ok = false;
                None
            }
        };
        let break_span = get("lunch_break").and_then(|(_, node)| {
            match self.time_pair(node, "lunch_break") {
                Some(pair) => spec.lunch_break = Some(pair),
                None => ok = false,
            }
            node.span.clone()
        });
        let weekend_span = get("weekend").and_then(|(_, node)| {
            match self.weekdays(node) {
                Some(days) => spec.weekend = days,
                None => ok = false,
            }
            node.span.clone()
        });
        let mut date_spans: BTreeMap<NaiveDate, Span> = BTreeMap::new();
        if let Some((_, node)) = get("holidays") {
            match self.dates(node, "holiday", &mut date_spans) {
                Some(dates) => spec.holidays = dates,
                None => ok = false,
            }
        }
        let mut workday_spans: BTreeMap<NaiveDate, Span> = BTreeMap::new();
        if let Some((_, node)) = get("workdays") {
            match self.dates(node, "make-up working day", &mut workday_spans) {
                Some(dates) => spec.workdays = dates,
                None => ok = false,
            }
        }

        for problem in spec.problems() {
            let span = match &problem {
                CalendarError::EmptyWorkingHours { .. } => hours_span.clone(),
                CalendarError::BadLunchBreak { .. } => break_span.clone(),
                CalendarError::NoWorkingWeekday => weekend_span.clone(),
                CalendarError::HolidayAndWorkday(date)
                | CalendarError::WorkdayNotWeekend { date, .. } => {
                    workday_spans.get(date).cloned().flatten()
                }
            };
            self.report(&span, format!("[calendar]: {problem}"));
            ok = false;
        }
        if !ok {
            return None;
        }
        BusinessCalendar::new(spec).ok()
    }

    fn time_pair(&mut self, node: &raw::Node, what: &str) -> Option<(NaiveTime, NaiveTime)> {
        let items = self.array(node, what)?;
        if items.len() != 2 {
            self.report(
                &node.span,
                format!(
                    "{what} must be two times, [\"start\", \"end\"], e.g. [\"09:00\", \"18:00\"]"
                ),
            );
            return None;
        }
        let start = self.time(&items[0], what);
        let end = self.time(&items[1], what);
        Some((start?, end?))
    }

    fn time(&mut self, node: &raw::Node, what: &str) -> Option<NaiveTime> {
        let text = self.string(node, what)?;
        match NaiveTime::parse_from_str(text, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        {
            Ok(time) => Some(time),
            Err(_) => {
                self.report(
                    &node.span,
                    format!(
                        "{what}: \"{text}\" is not a time of day (expected HH:MM, 00:00 to 23:59)"
                    ),
                );
                None
            }
        }
    }

    fn weekdays(&mut self, node: &raw::Node) -> Option<Vec<Weekday>> {
        let items = self.array(node, "weekend")?;
        let mut days = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(text) = self.string(item, "a weekend day") else {
                ok = false;
                continue;
            };
            match weekday(text) {
                Some(day) => days.push(day),
                None => {
                    self.report(
                        &item.span,
                        format!("weekend: unknown day \"{text}\" (expected mon, tue, wed, thu, fri, sat or sun)"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(days)
    }

    /// A list of dates and inclusive ranges `"A..B"`; records each date's span.
    fn dates(
        &mut self,
        node: &raw::Node,
        what: &str,
        spans: &mut BTreeMap<NaiveDate, Span>,
    ) -> Option<Vec<NaiveDate>> {
        let items = self.array(node, &format!("the {what} list"))?;
        let mut dates = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(text) = self.string(item, what) else {
                ok = false;
                continue;
            };
            match date_range(text) {
                Ok(range) => {
                    for date in range {
                        spans.entry(date).or_insert_with(|| item.span.clone());
                        dates.push(date);
                    }
                }
                Err(reason) => {
                    self.report(&item.span, format!("{what} \"{text}\": {reason}"));
                    ok = false;
                }
            }
        }
        ok.then_some(dates)
    }

    /// The `[clocks]` table or a category's clock keys. `extra` are other
    /// keys allowed (a category's `name`).
    /// Returns the limits found, which clocks were given (valid or not)
    /// and whether all was well; `None` when `node` is not a table.
    fn clocks(
        &mut self,
        node: &raw::Node,
        context: &str,
        extra: &[&str],
    ) -> Option<(ClockTable, [bool; 5], bool)> {
        let what = if context == "in [clocks]" {
            "[clocks]".to_string()
        } else {
            context.trim_start_matches("for ").to_string()
        };
        let allowed: Vec<&str> = SlaClock::ALL
            .iter()
            .map(|c| c.code())
            .chain(extra.iter().copied())
            .collect();
        let entries = self.table(node, &what, None)?;
        let mut table: ClockTable = Default::default();
        let mut present = [false; 5];
        let mut ok = true;
        for (key, value) in entries {
            if extra.contains(&key.name.as_str()) {
                continue;
            }
            match SlaClock::from_str(&key.name) {
                Ok(clock) if clock.code() == key.name => {
                    present[clock.index()] = true;
                    match self.level_limits(value, clock, context) {
                        Some(levels) => table[clock.index()] = Some(levels),
                        None => ok = false,
                    }
                }
                _ => {
                    self.report(
                        &key.span,
                        format!(
                            "unknown key \"{}\" {} (expected one of: {})",
                            key.name,
                            if context == "in [clocks]" {
                                context.to_string()
                            } else {
                                format!("in {what}")
                            },
                            allowed.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        Some((table, present, ok))
    }

    /// One limit for every level, or a table by level with an optional
    /// `default`.
    fn level_limits(
        &mut self,
        node: &raw::Node,
        clock: SlaClock,
        context: &str,
    ) -> Option<[Limit; 5]> {
        let parse = |checker: &mut Self, node: &raw::Node, level: Option<&str>| {
            let text = match &node.value {
                raw::Value::String(text) => text,
                other => {
                    checker.report(
                        &node.span,
                        format!(
                            "{clock} limit {context}{}: expected a string such as \"15m\", \"20h\" or \"3wd\", found {}",
                            level.map(|l| format!(" ({l})")).unwrap_or_default(),
                            other.kind()
                        ),
                    );
                    return None;
                }
            };
            match text.parse::<Limit>() {
                Ok(limit) => Some(limit),
                Err(error) => {
                    checker.report(
                        &node.span,
                        format!(
                            "{clock} limit \"{text}\" {context}{}: {error}",
                            level.map(|l| format!(" ({l})")).unwrap_or_default()
                        ),
                    );
                    None
                }
            }
        };
        let raw::Value::Table(entries) = &node.value else {
            return parse(self, node, None).map(|limit| [limit; 5]);
        };
        let mut levels: [Option<Limit>; 5] = [None; 5];
        let mut default = None;
        let mut ok = true;
        for (key, value) in entries {
            if key.name == "default" {
                match parse(self, value, Some("default")) {
                    Some(limit) => default = Some(limit),
                    None => ok = false,
                }
                continue;
            }
            let level = match key.name.parse::<CustomerLevel>() {
                Ok(level) => level,
                Err(error) => {
                    self.report(
                        &key.span,
                        format!("{clock} limit {context}: {error}, or default"),
                    );
                    ok = false;
                    continue;
                }
            };
            let slot = level_index(level);
            if levels[slot].is_some() {
                self.report(
                    &key.span,
                    format!("{clock} limit {context}: level {level} is given twice"),
                );
                ok = false;
                continue;
            }
            match parse(self, value, Some(level.code())) {
                Some(limit) => levels[slot] = Some(limit),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let missing: Vec<&str> = CustomerLevel::ALL
            .iter()
            .filter(|&&l| levels[level_index(l)].is_none())
            .map(|l| l.code())
            .collect();
        if default.is_none() && !missing.is_empty() {
            self.report(
                &node.span,
                format!(
                    "{clock} limit {context} has no value for {} and no default",
                    missing.join(", ")
                ),
            );
            return None;
        }
        Some(levels.map(|limit| limit.or(default).expect("checked above")))
    }

    /// The categories, and every category's product words as (word as
    /// written, category code).
    fn categories(
        &mut self,
        key: &raw::Key,
        node: &raw::Node,
        defaults: Option<&ClockTable>,
    ) -> Option<(Vec<Category>, Vec<ProductWord>)> {
        let entries = self.table(node, "[categories]", None)?;
        if entries.is_empty() {
            self.report(&key.span, "[categories] lists no category".into());
            return None;
        }
        let mut categories = Vec::new();
        let mut words = Vec::new();
        // Folded word → the category that listed it first.
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        let mut ok = true;
        for (key, node) in entries {
            match self.keywords(key, node, &mut owners) {
                Some(found) => words.extend(found),
                None => ok = false,
            }
            match self.category(key, node, defaults) {
                Some(category) => categories.push(category),
                None => ok = false,
            }
        }
        ok.then_some((categories, words))
    }

    /// A category's `keywords`: strings, none empty once folded, none
    /// listed before (by any category, `owners`).
    fn keywords(
        &mut self,
        key: &raw::Key,
        node: &raw::Node,
        owners: &mut BTreeMap<String, String>,
    ) -> Option<Vec<ProductWord>> {
        let code = key.name.as_str();
        let raw::Value::Table(entries) = &node.value else {
            return Some(Vec::new());
        };
        let Some((_, list)) = entries.iter().find(|(k, _)| k.name == "keywords") else {
            return Some(Vec::new());
        };
        let items = self.array(list, &format!("the keywords of category \"{code}\""))?;
        let mut words = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(word) = self.string(item, &format!("a keyword of category \"{code}\"")) else {
                ok = false;
                continue;
            };
            let folded = product_words::folded(word);
            if folded.is_empty() {
                self.report(
                    &item.span,
                    format!("keyword \"{word}\" of category \"{code}\" is empty"),
                );
                ok = false;
                continue;
            }
            match owners.get(&folded) {
                Some(owner) if owner == code => {
                    self.report(
                        &item.span,
                        format!("keyword \"{word}\" is listed twice for category \"{code}\""),
                    );
                    ok = false;
                }
                Some(owner) => {
                    self.report(
                        &item.span,
                        format!(
                            "keyword \"{word}\" of category \"{code}\" is already a keyword of category \"{owner}\" (a word can name one category only)"
                        ),
                    );
                    ok = false;
                }
                None => {
                    owners.insert(folded, code.to_string());
                    words.push((word.to_string(), code.to_string()));
                }
            }
        }
        ok.then_some(words)
    }

    fn category(
        &mut self,
        key: &raw::Key,
        node: &raw::Node,
        defaults: Option<&ClockTable>,
    ) -> Option<Category> {
        let code = key.name.as_str();
        let mut ok = true;
        if !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            self.report(
                &key.span,
                format!("category code \"{code}\" must be lowercase ASCII letters, digits and _"),
            );
            ok = false;
        }
        let context = format!("for category \"{code}\"");
        let clocks = self.clocks(node, &context, &["name", "keywords"]);
        let mut name = code.to_string();
        if let raw::Value::Table(entries) = &node.value {
            if let Some((_, value)) = entries.iter().find(|(k, _)| k.name == "name") {
                match self.string(value, &format!("the name of category \"{code}\"")) {
                    Some(text) => name = text.to_string(),
                    None => ok = false,
                }
            }
        }
        let (mut clocks, present, clocks_ok) = clocks?;
        ok &= clocks_ok;
        // Without usable defaults the missing-clock check would only echo
        // the [clocks] problems.
        let defaults = defaults?;
        for &clock in SlaClock::ALL {
            let slot = clock.index();
            if clocks[slot].is_none() {
                clocks[slot] = defaults[slot];
            }
            if !present[slot] && clocks[slot].is_none() && clock.is_required() {
                self.report(
                    &key.span,
                    format!(
                        "category \"{code}\" has no {clock} limit (set {clock} in [categories.{code}] or in [clocks])"
                    ),
                );
                ok = false;
            }
        }
        ok.then(|| Category {
            code: code.to_string(),
            name,
            clocks,
        })
    }
}

fn weekday(text: &str) -> Option<Weekday> {
    let lower = text.trim().to_ascii_lowercase();
    let day = match lower.as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    };
    Some(day)
}

/// `"2026-10-01"` or the inclusive range `"2026-10-01..2026-10-07"`.
fn date_range(text: &str) -> Result<Vec<NaiveDate>, String> {
    let parse = |part: &str| {
        NaiveDate::parse_from_str(part.trim(), "%Y-%m-%d").map_err(|_| {
            "not a date (expected YYYY-MM-DD or an inclusive range YYYY-MM-DD..YYYY-MM-DD)"
                .to_string()
        })
    };
    let (first, last) = match text.split_once("..") {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let date = parse(text)?;
            (date, date)
        }
    };
    if last < first {
        return Err("the range ends before it starts".into());
    }
    if (last - first).num_days() > 366 {
        return Err("the range is longer than a year".into());
    }
    Ok(first.iter_days().take_while(|d| *d <= last).collect())
}

/// A TOML tree that keeps the byte span of every key and value, so that
/// problems can be reported with their line. Speaks the `toml` crate's
/// `Spanned` and datetime serde conventions directly (the same field names
/// `toml::Spanned` and `toml::value::Datetime` use), because a generic tree
/// cannot be built out of `toml::Spanned<T>` (a datetime's inner key is not
/// spanned). The unit test `every_problem_has_its_line` guards this.
mod raw {
    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;
    use std::ops::Range;

    const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
    const SPANNED_START: &str = "$__serde_spanned_private_start";
    const SPANNED_END: &str = "$__serde_spanned_private_end";
    const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
    const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
    const DATETIME_FIELD: &str = "$__toml_private_datetime";

    #[derive(Debug, Clone)]
    pub(super) struct Node {
        pub span: Option<Range<usize>>,
        pub value: Value,
    }

    #[derive(Debug, Clone)]
    pub(super) enum Value {
        String(String),
        // Only strings, arrays and tables are meaningful in sla.toml; other
        // values are kept just to name them in errors.
        Integer,
        Float,
        Boolean,
        /// A TOML date/time literal, as written (e.g. `2026-01-01`).
        Datetime(String),
        Array(Vec<Node>),
        /// In document order.
        Table(Vec<(Key, Node)>),
    }

    impl Value {
        pub(super) fn kind(&self) -> &'static str {
            match self {
                Value::String(_) => "a string",
                Value::Integer => "an integer",
                Value::Float => "a float",
                Value::Boolean => "a boolean",
                Value::Datetime(_) => "a date/time",
                Value::Array(_) => "an array",
                Value::Table(_) => "a table",
            }
        }
    }

    #[derive(Debug, Clone)]
    pub(super) struct Key {
        pub name: String,
        pub span: Option<Range<usize>>,
    }

    pub(super) fn parse(text: &str) -> Result<Node, toml::de::Error> {
        de::Deserialize::deserialize(toml::Deserializer::new(text))
    }

    fn bare(value: Value) -> Node {
        Node { span: None, value }
    }

    impl<'de> de::Deserialize<'de> for Node {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
            deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
        }
    }

    /// Deserializes the value inside a span (never asks for a span again).
    struct Inner;

    impl<'de> DeserializeSeed<'de> for Inner {
        type Value = Node;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
            deserializer.deserialize_any(NodeVisitor)
        }
    }

    struct NodeVisitor;

    impl<'de> Visitor<'de> for NodeVisitor {
        type Value = Node;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a TOML value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
            Ok(bare(Value::Boolean))
        }

        fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
            Ok(bare(Value::Integer))
        }

        fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
            Ok(bare(Value::Integer))
        }

        fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
            Ok(bare(Value::Float))
        }

        fn visit_str<E>(self, v: &str) -> Result<Node, E> {
            Ok(bare(Value::String(v.to_string())))
        }

        fn visit_string<E>(self, v: String) -> Result<Node, E> {
            Ok(bare(Value::String(v)))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Node>()? {
                items.push(item);
            }
            Ok(bare(Value::Array(items)))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
            let Some(first) = map.next_key_seed(KeySeed)? else {
                return Ok(bare(Value::Table(Vec::new())));
            };
            if first.name == SPANNED_START {
                let start: usize = map.next_value()?;
                map.next_key_seed(KeySeed)?;
                let end: usize = map.next_value()?;
                map.next_key_seed(KeySeed)?;
                let mut node = map.next_value_seed(Inner)?;
                node.span = Some(start..end);
                return Ok(node);
            }
            if first.name == DATETIME_FIELD {
                let text: String = map.next_value()?;
                return Ok(bare(Value::Datetime(text)));
            }
            let mut entries = vec![(first, map.next_value::<Node>()?)];
            while let Some(key) = map.next_key_seed(KeySeed)? {
                let value = map.next_value::<Node>()?;
                entries.push((key, value));
            }
            Ok(bare(Value::Table(entries)))
        }
    }

    struct KeySeed;

    impl<'de> DeserializeSeed<'de> for KeySeed {
        type Value = Key;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
            deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
        }
    }

    struct KeyVisitor;

    impl<'de> Visitor<'de> for KeyVisitor {
        type Value = Key;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a TOML key")
        }

        fn visit_str<E>(self, v: &str) -> Result<Key, E> {
            Ok(Key {
                name: v.to_string(),
                span: None,
            })
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
            let mut start = None;
            let mut end = None;
            let mut name = None;
            while let Some(field) = map.next_key::<String>()? {
                match field.as_str() {
                    SPANNED_START => start = Some(map.next_value::<usize>()?),
                    SPANNED_END => end = Some(map.next_value::<usize>()?),
                    _ => name = Some(map.next_value::<String>()?),
                }
            }
            let name = name.ok_or_else(|| de::Error::custom("a spanned key without a value"))?;
            Ok(Key {
                name,
                span: start.zip(end).map(|(start, end)| start..end),
            })
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

    /// A small valid policy; tests break one line at a time.
    const SMALL: &str = r#"timezone = "Asia/Shanghai"
default_category = "ict"

[calendar]
working_hours = ["09:00", "18:00"]
weekend = ["sat", "sun"]
holidays = ["2026-10-01..2026-10-07", 2026-01-01]
workdays = ["2026-10-10"]

[clocks]
dispatch = "15m"
accept = "30m"
confirm = "15m"

[categories.ict]
repair = "24h"

[categories.bandwidth]
name = "带宽"
repair = { group = "4h", provincial = "4h", default = "8h" }

[categories.industry_app]
feedback = "1wd"
repair = "3wd"
"#;

    fn problems(text: &str) -> Vec<String> {
        match SlaPolicy::from_toml(text, "sla.toml") {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(error) => {
                let lines: Vec<String> = error.to_string().lines().map(String::from).collect();
                assert_eq!(lines.len(), error.problems().len());
                lines
            }
        }
    }

    #[test]
    fn limits_parse_and_display() {
        assert_eq!("15m".parse(), Ok(Limit::Elapsed(Duration::minutes(15))));
        assert_eq!("20h".parse(), Ok(Limit::Elapsed(Duration::hours(20))));
        assert_eq!("2d".parse(), Ok(Limit::Elapsed(Duration::hours(48))));
        assert_eq!("8wh".parse(), Ok(Limit::WorkingHours(Duration::hours(8))));
        assert_eq!("3wd".parse(), Ok(Limit::WorkingDays(3)));
        for text in ["15m", "20h", "8wh", "3wd", "90m"] {
            assert_eq!(text.parse::<Limit>().unwrap().to_string(), text);
        }
        assert_eq!("2d".parse::<Limit>().unwrap().to_string(), "48h");
        for bad in ["", "3x", "h", "-1h", "1.5h", "3 days"] {
            assert_eq!(
                bad.parse::<Limit>().unwrap_err().to_string(),
                "expected a number followed by m, h, d, wh or wd",
                "{bad:?}"
            );
        }
        assert!("0h".parse::<Limit>().is_err());
        assert!("367d".parse::<Limit>().is_err());
        assert!("99999999999999999999h".parse::<Limit>().is_err());
    }

    #[test]
    fn clocks_have_codes() {
        for clock in SlaClock::ALL {
            assert_eq!(clock.code().parse::<SlaClock>(), Ok(*clock));
            assert_eq!(clock.to_string(), clock.code());
        }
        assert_eq!("修复".parse::<SlaClock>(), Ok(SlaClock::Repair));
        assert!("resolve".parse::<SlaClock>().is_err());
    }

    #[test]
    fn small_policy_parses() {
        let policy = SlaPolicy::from_toml(SMALL, "sla.toml").unwrap();
        assert_eq!(policy.categories(), ["ict", "bandwidth", "industry_app"]);
        assert_eq!(policy.category_name("bandwidth"), Some("带宽"));
        assert_eq!(policy.category_name("ict"), Some("ict"));
        let limit = |clock, category, level| policy.limit(clock, category, level);
        assert_eq!(
            limit(SlaClock::Repair, "bandwidth", CustomerLevel::Provincial),
            Some(Limit::Elapsed(Duration::hours(4)))
        );
        assert_eq!(
            limit(SlaClock::Repair, "bandwidth", CustomerLevel::LocalC),
            Some(Limit::Elapsed(Duration::hours(8)))
        );
        assert_eq!(limit(SlaClock::Feedback, "ict", CustomerLevel::Group), None);
        assert_eq!(
            limit(SlaClock::Feedback, "industry_app", CustomerLevel::Group),
            Some(Limit::WorkingDays(1))
        );
        // Unknown categories use the default category.
        assert_eq!(
            limit(SlaClock::Repair, "no_such", CustomerLevel::Group),
            Some(Limit::Elapsed(Duration::hours(24)))
        );
        let calendar = policy.calendar();
        assert!(!calendar.is_working_day("2026-01-01".parse().unwrap()));
        assert!(!calendar.is_working_day("2026-10-05".parse().unwrap()));
        assert!(calendar.is_working_day("2026-10-10".parse().unwrap()));
    }

    #[test]
    fn deadlines_follow_the_clock_kind() {
        let policy = SlaPolicy::from_toml(SMALL, "sla.toml").unwrap();
        let level = CustomerLevel::LocalB;
        // Friday 2026-03-06 16:00 CST.
        let friday = utc("2026-03-06T16:00:00+08:00");
        assert_eq!(
            policy.deadline(SlaClock::Dispatch, friday, "ict", level),
            Some(utc("2026-03-06T16:15:00+08:00"))
        );
        assert_eq!(
            policy.deadline(SlaClock::Feedback, friday, "industry_app", level),
            Some(utc("2026-03-09T16:00:00+08:00"))
        );
        assert_eq!(
            policy.deadline(SlaClock::Feedback, friday, "ict", level),
            None
        );
        let saturday = utc("2026-03-07T10:00:00+08:00");
        assert_eq!(
            policy.deadline(SlaClock::Feedback, saturday, "industry_app", level),
            Some(utc("2026-03-09T18:00:00+08:00"))
        );
        // Three working days from Wed 30 Sep 10:00 over National Day: 8 h on
        // Wed, 9 h on Thu 8 and Fri 9 Oct, 1 h on the make-up Saturday.
        assert_eq!(
            policy.deadline(
                SlaClock::Repair,
                utc("2026-09-30T10:00:00+08:00"),
                "industry_app",
                level
            ),
            Some(utc("2026-10-10T10:00:00+08:00"))
        );
    }

    #[test]
    fn builtin_policy_loads() {
        let policy = SlaPolicy::builtin();
        assert_eq!(policy.default_category(), "ict");
        for code in [
            "virtual_network",
            "toll_free",
            "industry_app",
            "ict",
            "bandwidth",
        ] {
            assert!(policy.has_category(code), "{code}");
        }
        let start = utc("2026-03-07T03:00:00Z");
        let due = |category, level| policy.deadline(SlaClock::Repair, start, category, level);
        assert_eq!(
            due("virtual_network", CustomerLevel::LocalC),
            Some(start + Duration::hours(48))
        );
        assert_eq!(
            due("virtual_network", CustomerLevel::Group),
            Some(start + Duration::hours(20))
        );
        assert_eq!(
            due("toll_free", CustomerLevel::LocalA),
            Some(start + Duration::hours(12))
        );
        assert_eq!(
            due("toll_free", CustomerLevel::LocalB),
            Some(start + Duration::hours(24))
        );
        for category in policy.categories() {
            for &level in CustomerLevel::ALL {
                for &clock in SlaClock::ALL {
                    let applies = policy.deadline(clock, start, category, level).is_some();
                    assert!(
                        applies || clock == SlaClock::Feedback,
                        "{category} {level} {clock}"
                    );
                }
            }
        }
        // The built-in 2026 calendar: Spring Festival and its make-up days.
        let calendar = policy.calendar();
        assert!(!calendar.is_working_day("2026-02-16".parse().unwrap()));
        assert!(calendar.is_working_day("2026-02-14".parse().unwrap()));
        assert!(calendar.is_working_day("2026-02-28".parse().unwrap()));
    }

    #[test]
    fn every_problem_has_its_line() {
        let text = SMALL
            .replace("repair = { group = \"4h\"", "repair = { group = \"3x\"")
            .replace("accept = \"30m\"", "accept = \"30m\"\nescalate = \"1h\"")
            .replace("[\"sat\", \"sun\"]", "[\"sat\", \"sunday\", \"caturday\"]")
            .replace("\"2026-10-10\"", "\"2026-10-10\", \"2026-02-30\"")
            .replace("feedback = \"1wd\"", "feedback = 1");
        assert_eq!(
            problems(&text),
            [
                "sla.toml line 6: weekend: unknown day \"caturday\" (expected mon, tue, wed, thu, fri, sat or sun)",
                "sla.toml line 8: make-up working day \"2026-02-30\": not a date (expected YYYY-MM-DD or an inclusive range YYYY-MM-DD..YYYY-MM-DD)",
                "sla.toml line 13: unknown key \"escalate\" in [clocks] (expected one of: dispatch, accept, feedback, repair, confirm)",
                "sla.toml line 21: repair limit \"3x\" for category \"bandwidth\" (group): expected a number followed by m, h, d, wh or wd",
                "sla.toml line 24: feedback limit for category \"industry_app\": expected a string such as \"15m\", \"20h\" or \"3wd\", found an integer",
            ]
        );
    }

    #[test]
    fn single_limit_error_matches_the_documented_format() {
        let text = SMALL.replace(
            "repair = { group = \"4h\", provincial = \"4h\", default = \"8h\" }",
            "repair = \"3x\"",
        );
        assert_eq!(
            problems(&text),
            ["sla.toml line 20: repair limit \"3x\" for category \"bandwidth\": expected a number followed by m, h, d, wh or wd"]
        );
    }

    #[test]
    fn keywords_name_their_category() {
        let text = SMALL.replace(
            "name = \"带宽\"\n",
            "name = \"带宽\"\nkeywords = [\"宽带\", \"专线\", \"leased line\"]\n",
        );
        let policy = SlaPolicy::from_toml(&text, "sla.toml").unwrap();
        assert_eq!(policy.category_named_in("专线中断"), Some("bandwidth"));
        assert_eq!(
            policy.category_named_in("Leased line down"),
            Some("bandwidth")
        );
        assert_eq!(policy.category_named_in("no dial tone"), None);
        let none = SlaPolicy::from_toml(SMALL, "sla.toml").unwrap();
        assert_eq!(none.category_named_in("专线中断"), None);
    }

    #[test]
    fn the_shipped_keywords_name_the_products_of_the_domain() {
        let policy = SlaPolicy::builtin();
        for (text, category) in [
            ("专线中断", "bandwidth"),
            ("宽带断了", "bandwidth"),
            ("the broadband is down", "bandwidth"),
            ("leased line flapping", "bandwidth"),
            ("800号码打不进来", "toll_free"),
            ("4008热线无人接听", "toll_free"),
            ("虚拟网短号拨不通", "virtual_network"),
            ("企业彩铃不响", "virtual_network"),
            ("物流E通登录失败", "industry_app"),
            ("全球眼看不到画面", "ict"),
            ("无线宽带没信号", "ict"),
        ] {
            assert_eq!(policy.category_named_in(text), Some(category), "{text}");
            assert!(policy.has_category(category));
        }
        assert_eq!(policy.category_named_in("电话没有拨号音"), None);
        assert_eq!(policy.category_named_in("call me on 18001234567"), None);
    }

    #[test]
    fn bad_keywords_are_reported_with_their_lines() {
        let text = SMALL
            .replace(
                "[categories.ict]\nrepair = \"24h\"\n",
                "[categories.ict]\nrepair = \"24h\"\nkeywords = [\"ICT\", \"宽带\", 5, \"  \", \"ict\"]\n",
            )
            .replace(
                "name = \"带宽\"\n",
                "name = \"带宽\"\nkeywords = [\"ＩＣＴ\", \"宽带\"]\n",
            );
        let error = SlaPolicy::from_toml(&text, "sla.toml").unwrap_err();
        let messages: Vec<String> = error.problems().iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "sla.toml line 17: a keyword of category \"ict\" must be a string, found an integer",
                "sla.toml line 17: keyword \"  \" of category \"ict\" is empty",
                "sla.toml line 17: keyword \"ict\" is listed twice for category \"ict\"",
                "sla.toml line 21: keyword \"ＩＣＴ\" of category \"bandwidth\" is already a keyword of category \"ict\" (a word can name one category only)",
                "sla.toml line 21: keyword \"宽带\" of category \"bandwidth\" is already a keyword of category \"ict\" (a word can name one category only)",
            ]
        );
        let text = SMALL.replace(
            "name = \"带宽\"\n",
            "name = \"带宽\"\nkeywords = \"宽带\"\n",
        );
        let error = SlaPolicy::from_toml(&text, "sla.toml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "sla.toml line 20: the keywords of category \"bandwidth\" must be an array, found a string"
        );
    }

    #[test]
    fn structural_problems_are_all_reported() {
        let text = SMALL
            .replace("Asia/Shanghai", "Asia/Shangai")
            .replace("default_category = \"ict\"", "default_category = \"nope\"")
            .replace("[\"09:00\", \"18:00\"]", "[\"18:00\", \"09:00\"]")
            .replace(", default = \"8h\" }", ", vip = \"1h\" }")
            .replace("[categories.ict]\n", "[categories.ict]\ncolour = \"red\"\n")
            .replace("repair = \"24h\"", "");
        assert_eq!(
            problems(&text),
            [
                "sla.toml line 1: unknown time zone \"Asia/Shangai\" (expected an IANA name such as \"Asia/Shanghai\")",
                "sla.toml line 2: default_category \"nope\" is not a category (expected one of: ict, bandwidth, industry_app)",
                "sla.toml line 5: [calendar]: working hours end 09:00 is not after their start 18:00",
                "sla.toml line 15: category \"ict\" has no repair limit (set repair in [categories.ict] or in [clocks])",
                "sla.toml line 16: unknown key \"colour\" in category \"ict\" (expected one of: dispatch, accept, feedback, repair, confirm, name, keywords)",
                "sla.toml line 21: repair limit for category \"bandwidth\": unknown customer level \"vip\" (expected one of: group, provincial, local_a, local_b, local_c), or default",
            ]
        );
    }

    #[test]
    fn missing_levels_and_calendar_conflicts() {
        let text = SMALL
            .replace(", default = \"8h\" }", " }")
            .replace(
                "weekend = [\"sat\", \"sun\"]",
                "weekend = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]",
            )
            .replace("workdays = [\"2026-10-10\"]", "workdays = [\"2026-10-03\"]");
        assert_eq!(
            problems(&text),
            [
                "sla.toml line 6: [calendar]: the weekend lists all seven days of the week, so there would be no working day",
                "sla.toml line 8: [calendar]: 2026-10-03 is both a holiday and a make-up working day",
                "sla.toml line 20: repair limit for category \"bandwidth\" has no value for local_a, local_b, local_c and no default",
            ]
        );
        let text = SMALL.replace("workdays = [\"2026-10-10\"]", "workdays = [\"2026-10-12\"]");
        assert_eq!(
            problems(&text),
            ["sla.toml line 8: [calendar]: make-up working day 2026-10-12 is a Mon, not a weekend day (a typo?)"]
        );
    }

    #[test]
    fn syntax_errors_and_missing_keys() {
        let text = SMALL.replace("accept = \"30m\"", "accept = \"30m");
        let lines = problems(&text);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("sla.toml line 12: "), "{lines:?}");
        let text = SMALL.replace("default_category = \"ict\"\n", "");
        assert_eq!(
            problems(&text),
            ["sla.toml: missing key \"default_category\""]
        );
        let text = SMALL.replace("confirm = \"15m\"\n", "");
        assert_eq!(
            problems(&text),
            [
                "sla.toml line 14: category \"ict\" has no confirm limit (set confirm in [categories.ict] or in [clocks])",
                "sla.toml line 17: category \"bandwidth\" has no confirm limit (set confirm in [categories.bandwidth] or in [clocks])",
                "sla.toml line 21: category \"industry_app\" has no confirm limit (set confirm in [categories.industry_app] or in [clocks])",
            ]
        );
    }

    #[test]
    fn load_reports_the_path() {
        let error = SlaPolicy::load(Path::new("/nonexistent/sla.toml")).unwrap_err();
        assert!(error
            .to_string()
            .starts_with("cannot read SLA policy /nonexistent/sla.toml: "));
    }
}
