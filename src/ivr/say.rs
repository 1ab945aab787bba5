//! Speaking values: digits, cardinal numbers, money, dates, times of day and
//! durations become sequences of prompt names (paths under `prompts/`
//! without `.wav`, e.g. `zh/digits/1`, `en/numbers/20`) that a player
//! concatenates. Pure: no I/O, no clock.
//!
//! Prompt layout, per language (see [`required_prompts`] for the full list):
//!
//! | prompts | zh | en |
//! |---|---|---|
//! | `<l>/digits/0..9`, `star`, `pound` | 零 幺 二 … 九, 星, 井 | zero … nine, star, pound |
//! | `<l>/numbers/…` | `0..10` 零 一 … 十, `hundred` 百, `thousand` 千, `wan` 万, `yi` 亿, `liang` 两 | `0..19`, `20`, `30` … `90`, `hundred`, `thousand`, `million`, `billion`, `oh` |
//! | `<l>/money/…` | `yuan` 元, `jiao` 角, `fen` 分, `zheng` 整 | `yuan`, `fen` |
//! | `zh/date/…`, `en/months/1..12`, `en/ordinals/1..31` | `year` 年, `month` 月, `day` 日 | January …, first … thirty-first |
//! | `<l>/time/…` | `dawn` 凌晨, `am` 上午, `noon` 中午, `pm` 下午, `evening` 晚上, `hour` 点, `minute` 分 | `am`, `pm`, `oclock` |
//! | `<l>/duration/…` | `hours` 小时, `minutes` 分钟, `seconds` 秒 | `hour(s)`, `minute(s)`, `second(s)` |
//!
//! Mandarin choices:
//! - Digit strings (phone and ticket numbers) read 1 as 幺 (`zh/digits/1`);
//!   numbers and years read it as 一 (`zh/numbers/1`).
//! - Cardinals group by 万 and 亿, say one 零 for any run of zeros inside
//!   the number (1005 一千零五, 10010 一万零一十, 100000000 一亿), and drop
//!   the 一 of a leading 十 (10 十, 15 十五, 100000 十万, but 110 一百一十).
//! - 2 is 二 in cardinals, except 两 when it is the first digit spoken and
//!   comes before 千, 万 or 亿 (2000 两千, 20000 两万, 200000000 两亿,
//!   but 200 二百, 2200 两千二百, 22000 两万二千). A count of exactly 2
//!   in front of a unit is 两 (两点, 两小时, 两分钟, 两秒, 两元, 两角,
//!   两分), as Mandarin requires.
//! - Money: N元M角P分; 零 for a missing 角 before 分 (十二元零五分); 整
//!   after whole yuan (十二元整, 零元整).
//! - Dates: year digit by digit (二零二六年), then 十一月二十三日.
//! - Times: a period of the day, then the 12-hour clock: 凌晨 0–5 h,
//!   上午 6–11 h, 中午 12 h, 下午 13–17 h, 晚上 18–23 h; midnight is
//!   凌晨零点; minutes 1–9 take 零 (上午十点零五分), minute 0 is omitted
//!   (上午十点).
//! - Durations: the non-zero parts of hours, minutes and seconds, with 零
//!   for a missing minutes part between them (一小时零三十秒); zero is
//!   零秒. Sub-second parts are dropped.
//!
//! English choices:
//! - Cardinals without "and": "one hundred twenty three".
//! - Money in yuan and fen: "twelve yuan fifty fen", "fifty fen",
//!   "twelve yuan", "zero yuan". Both words are invariant.
//! - Dates: "November twenty-third, twenty twenty six": years read in
//!   pairs ("nineteen ninety nine", "nineteen hundred", "nineteen oh five",
//!   "twenty twenty six"), except x000–x009 and years below 1000, which are
//!   read as cardinals ("two thousand five").
//! - Times on the 12-hour clock: "ten thirty a m", "ten oh five a m",
//!   "twelve o'clock p m" (noon), "twelve o'clock a m" (midnight).
//! - Durations: the non-zero parts, singular for 1: "one hour thirty
//!   seconds"; zero is "zero seconds". Sub-second parts are dropped.

use crate::tickets::model::Language;
use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};
use std::time::Duration;
use thiserror::Error;

/// The largest number [`number`] speaks: 9999亿9999万9999.
pub const MAX_NUMBER: u64 = 999_999_999_999;

/// The years [`date`] speaks.
pub const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// A value that cannot be spoken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SayError {
    #[error("{0} is too large to speak (the largest is {MAX_NUMBER})")]
    NumberTooLarge(u64),
    #[error("{0:?} is not a digit, '*' or '#'")]
    NotADigit(char),
    #[error("year {0} is out of range (1 to 9999)")]
    YearOutOfRange(i32),
}

/// Each character of `text` separately: ASCII digits, `*` and `#`
/// (zh: 零 幺 二 … 九, 星, 井; en: zero … nine, star, pound). For phone and
/// ticket numbers. An empty string says nothing.
pub fn digits(lang: Language, text: &str) -> Result<Vec<String>, SayError> {
    text.chars()
        .map(|c| match c {
            '0'..='9' => Ok(prompt(lang, "digits", c)),
            '*' => Ok(prompt(lang, "digits", "star")),
            '#' => Ok(prompt(lang, "digits", "pound")),
            other => Err(SayError::NotADigit(other)),
        })
        .collect()
}

/// The cardinal `n`, up to [`MAX_NUMBER`].
pub fn number(lang: Language, n: u64) -> Result<Vec<String>, SayError> {
    if n > MAX_NUMBER {
        return Err(SayError::NumberTooLarge(n));
    }
    let mut out = Vec::new();
    match lang {
        Language::Zh => zh_number(&mut out, n),
        Language::En => en_number(&mut out, n),
    }
    Ok(out)
}

/// An amount of yuan given in fen (hundredths of a yuan): zh 十二元五角,
/// 十二元零五分, 十二元整; en "twelve yuan fifty fen".
pub fn money(lang: Language, cents: u64) -> Result<Vec<String>, SayError> {
    let (yuan, fen) = (cents / 100, cents % 100);
    if yuan > MAX_NUMBER {
        return Err(SayError::NumberTooLarge(yuan));
    }
    let mut out = Vec::new();
    match lang {
        Language::Zh => {
            let (jiao, fen) = (fen / 10, fen % 10);
            if yuan > 0 || cents == 0 {
                zh_count(&mut out, yuan);
                out.push(zh("money", "yuan"));
            }
            if jiao > 0 {
                zh_count(&mut out, jiao);
                out.push(zh("money", "jiao"));
            }
            if fen > 0 {
                if yuan > 0 && jiao == 0 {
                    out.push(zh("numbers", 0));
                }
                zh_count(&mut out, fen);
                out.push(zh("money", "fen"));
            }
            if cents % 100 == 0 {
                out.push(zh("money", "zheng"));
            }
        }
        Language::En => {
            if yuan > 0 || cents == 0 {
                en_number(&mut out, yuan);
                out.push(en("money", "yuan"));
            }
            if fen > 0 {
                en_number(&mut out, fen);
                out.push(en("money", "fen"));
            }
        }
    }
    Ok(out)
}

/// A calendar date: zh 二零二六年十一月二十三日; en "November twenty-third,
/// twenty twenty six". Years from 1 to 9999.
pub fn date(lang: Language, date: NaiveDate) -> Result<Vec<String>, SayError> {
    let year = date.year();
    if !YEARS.contains(&year) {
        return Err(SayError::YearOutOfRange(year));
    }
    let mut out = Vec::new();
    match lang {
        Language::Zh => {
            for d in year.to_string().bytes() {
                out.push(zh("numbers", char::from(d)));
            }
            out.push(zh("date", "year"));
            zh_number(&mut out, date.month().into());
            out.push(zh("date", "month"));
            zh_number(&mut out, date.day().into());
            out.push(zh("date", "day"));
        }
        Language::En => {
            out.push(en("months", date.month()));
            out.push(en("ordinals", date.day()));
            en_year(&mut out, year as u64);
        }
    }
    Ok(out)
}

/// A time of day to the minute (seconds are dropped): zh 上午十点三十分;
/// en "ten thirty a m".
pub fn time(lang: Language, time: NaiveTime) -> Result<Vec<String>, SayError> {
    let (hour, minute) = (u64::from(time.hour()), u64::from(time.minute()));
    let mut out = Vec::new();
    match lang {
        Language::Zh => {
            let period = match hour {
                0..=5 => "dawn",
                6..=11 => "am",
                12 => "noon",
                13..=17 => "pm",
                _ => "evening",
            };
            out.push(zh("time", period));
            zh_count(&mut out, if hour > 12 { hour - 12 } else { hour });
            out.push(zh("time", "hour"));
            if minute > 0 {
                if minute < 10 {
                    out.push(zh("numbers", 0));
                }
                zh_number(&mut out, minute);
                out.push(zh("time", "minute"));
            }
        }
        Language::En => {
            en_number(&mut out, if hour % 12 == 0 { 12 } else { hour % 12 });
            match minute {
                0 => out.push(en("time", "oclock")),
                1..=9 => {
                    out.push(en("numbers", "oh"));
                    en_number(&mut out, minute);
                }
                _ => en_number(&mut out, minute),
            }
            out.push(en("time", if hour < 12 { "am" } else { "pm" }));
        }
    }
    Ok(out)
}

/// A length of time in hours, minutes and seconds (sub-second parts are
/// dropped): zh 一小时零三十秒; en "one hour thirty seconds".
pub fn duration(lang: Language, d: Duration) -> Result<Vec<String>, SayError> {
    let total = d.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > MAX_NUMBER {
        return Err(SayError::NumberTooLarge(hours));
    }
    let mut out = Vec::new();
    match lang {
        Language::Zh => {
            let parts = [(hours, "hours"), (minutes, "minutes"), (seconds, "seconds")];
            let mut zero_pending = false;
            for (value, unit) in parts {
                if value == 0 {
                    zero_pending |= !out.is_empty();
                    continue;
                }
                if zero_pending {
                    out.push(zh("numbers", 0));
                    zero_pending = false;
                }
                zh_count(&mut out, value);
                out.push(zh("duration", unit));
            }
            if out.is_empty() {
                out.push(zh("numbers", 0));
                out.push(zh("duration", "seconds"));
            }
        }
        Language::En => {
            let parts = [
                (hours, "hour", "hours"),
                (minutes, "minute", "minutes"),
                (seconds, "second", "seconds"),
            ];
            for (value, one, many) in parts {
                if value > 0 {
                    en_number(&mut out, value);
                    out.push(en("duration", if value == 1 { one } else { many }));
                }
            }
            if out.is_empty() {
                out.push(en("numbers", 0));
                out.push(en("duration", "seconds"));
            }
        }
    }
    Ok(out)
}

/// Every prompt name the functions of this module can produce for `lang`,
/// sorted, for checking that a prompt set is complete.
pub fn required_prompts(lang: Language) -> Vec<String> {
    fn add<T: std::fmt::Display>(
        names: &mut Vec<String>,
        lang: Language,
        category: &str,
        items: impl IntoIterator<Item = T>,
    ) {
        names.extend(items.into_iter().map(|item| prompt(lang, category, item)));
    }
    let mut names = Vec::new();
    let n = &mut names;
    add(n, lang, "digits", 0..=9);
    add(n, lang, "digits", ["star", "pound"]);
    match lang {
        Language::Zh => {
            add(n, lang, "numbers", 0..=10);
            add(
                n,
                lang,
                "numbers",
                ["hundred", "thousand", "wan", "yi", "liang"],
            );
            add(n, lang, "money", ["yuan", "jiao", "fen", "zheng"]);
            add(n, lang, "date", ["year", "month", "day"]);
            let time = ["dawn", "am", "noon", "pm", "evening", "hour", "minute"];
            add(n, lang, "time", time);
            add(n, lang, "duration", ["hours", "minutes", "seconds"]);
        }
        Language::En => {
            add(n, lang, "numbers", (0..=19).chain((20..=90).step_by(10)));
            let scales = ["hundred", "thousand", "million", "billion", "oh"];
            add(n, lang, "numbers", scales);
            add(n, lang, "ordinals", 1..=31);
            add(n, lang, "months", 1..=12);
            add(n, lang, "money", ["yuan", "fen"]);
            add(n, lang, "time", ["am", "pm", "oclock"]);
            let units = ["hour", "hours", "minute", "minutes", "second", "seconds"];
            add(n, lang, "duration", units);
        }
    }
    names.sort();
    names
}

fn prompt(lang: Language, category: &str, item: impl std::fmt::Display) -> String {
    format!("{}/{category}/{item}", lang.code())
}

fn zh(category: &str, item: impl std::fmt::Display) -> String {
    prompt(Language::Zh, category, item)
}

fn en(category: &str, item: impl std::fmt::Display) -> String {
    prompt(Language::En, category, item)
}

/// A Mandarin cardinal (`n <= MAX_NUMBER`).
fn zh_number(out: &mut Vec<String>, n: u64) {
    if n == 0 {
        out.push(zh("numbers", 0));
        return;
    }
    let sections = [
        (n / 100_000_000, Some("yi")),
        (n / 10_000 % 10_000, Some("wan")),
        (n % 10_000, None),
    ];
    let start = out.len();
    let mut zero_pending = false;
    for (section, suffix) in sections {
        let spoken = out.len() > start;
        if section == 0 {
            zero_pending |= spoken;
            continue;
        }
        if zero_pending || (spoken && section < 1000) {
            out.push(zh("numbers", 0));
            zero_pending = false;
        }
        zh_section(out, section, !spoken, suffix.is_some());
        if let Some(suffix) = suffix {
            out.push(zh("numbers", suffix));
        }
    }
}

/// One four-digit section (1..=9999) of a Mandarin cardinal. `leading`:
/// nothing of the number has been spoken yet; `suffixed`: 万 or 亿 follows.
fn zh_section(out: &mut Vec<String>, section: u64, leading: bool, suffixed: bool) {
    let places = [
        (1000, Some("thousand")),
        (100, Some("hundred")),
        (10, Some("10")),
        (1, None),
    ];
    let mut started = false;
    let mut zero_pending = false;
    for (place, unit) in places {
        let d = section / place % 10;
        if d == 0 {
            zero_pending |= started;
            continue;
        }
        if zero_pending {
            out.push(zh("numbers", 0));
            zero_pending = false;
        }
        let first = leading && !started;
        if first && place == 10 && d == 1 {
            // 十, 十五, 十万: no 一 before a leading 十.
        } else if first && d == 2 && (place == 1000 || (place == 1 && suffixed)) {
            out.push(zh("numbers", "liang"));
        } else {
            out.push(zh("numbers", d));
        }
        if let Some(unit) = unit {
            out.push(zh("numbers", unit));
        }
        started = true;
    }
}

/// A Mandarin count before a unit (点, 小时, 元, …): like [`zh_number`],
/// but 2 is 两.
fn zh_count(out: &mut Vec<String>, n: u64) {
    if n == 2 {
        out.push(zh("numbers", "liang"));
    } else {
        zh_number(out, n);
    }
}

/// An English cardinal (`n <= MAX_NUMBER`).
fn en_number(out: &mut Vec<String>, n: u64) {
    if n == 0 {
        out.push(en("numbers", 0));
        return;
    }
    let groups = [
        (n / 1_000_000_000, Some("billion")),
        (n / 1_000_000 % 1000, Some("million")),
        (n / 1000 % 1000, Some("thousand")),
        (n % 1000, None),
    ];
    for (group, scale) in groups {
        if group == 0 {
            continue;
        }
        en_below_thousand(out, group);
        if let Some(scale) = scale {
            out.push(en("numbers", scale));
        }
    }
}

/// 1..=999 in English.
fn en_below_thousand(out: &mut Vec<String>, n: u64) {
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        out.push(en("numbers", hundreds));
        out.push(en("numbers", "hundred"));
    }
    match rest {
        0 => {}
        1..=19 => out.push(en("numbers", rest)),
        _ => {
            out.push(en("numbers", rest / 10 * 10));
            if rest % 10 > 0 {
                out.push(en("numbers", rest % 10));
            }
        }
    }
}

/// An English year (1..=9999) read in pairs.
fn en_year(out: &mut Vec<String>, year: u64) {
    let (high, low) = (year / 100, year % 100);
    if year < 1000 || (high % 10 == 0 && low < 10) {
        en_number(out, year);
    } else {
        en_below_thousand(out, high);
        match low {
            0 => out.push(en("numbers", "hundred")),
            1..=9 => {
                out.push(en("numbers", "oh"));
                out.push(en("numbers", low));
            }
            _ => en_below_thousand(out, low),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Mandarin prompt names as the characters they say, to keep the
    /// tables readable.
    fn zh_text(result: Result<Vec<String>, SayError>) -> String {
        let chars = |name: &str| -> &'static str {
            let (category, item) = name.strip_prefix("zh/").unwrap().split_once('/').unwrap();
            match (category, item) {
                ("digits", "1") => "幺",
                ("digits", "star") => "星",
                ("digits", "pound") => "井",
                (_, "0") => "零",
                (_, "1") => "一",
                (_, "2") => "二",
                (_, "3") => "三",
                (_, "4") => "四",
                (_, "5") => "五",
                (_, "6") => "六",
                (_, "7") => "七",
                (_, "8") => "八",
                (_, "9") => "九",
                (_, "10") => "十",
                (_, "hundred") => "百",
                (_, "thousand") => "千",
                (_, "wan") => "万",
                (_, "yi") => "亿",
                (_, "liang") => "两",
                (_, "yuan") => "元",
                (_, "jiao") => "角",
                (_, "fen") | (_, "minute") => "分",
                (_, "zheng") => "整",
                (_, "year") => "年",
                (_, "month") => "月",
                (_, "day") => "日",
                (_, "dawn") => "凌晨",
                (_, "am") => "上午",
                (_, "noon") => "中午",
                (_, "pm") => "下午",
                (_, "evening") => "晚上",
                (_, "hour") => "点",
                (_, "hours") => "小时",
                (_, "minutes") => "分钟",
                (_, "seconds") => "秒",
                _ => panic!("no text for {name}"),
            }
        };
        result.unwrap().iter().map(|name| chars(name)).collect()
    }

    /// English names with the common `en/numbers/` prefix dropped.
    fn en_text(result: Result<Vec<String>, SayError>) -> String {
        result
            .unwrap()
            .iter()
            .map(|n| {
                let n = n.strip_prefix("en/").unwrap();
                n.strip_prefix("numbers/").unwrap_or(n).to_string()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn zh_numbers() {
        let cases: &[(u64, &str)] = &[
            (0, "零"),
            (1, "一"),
            (2, "二"),
            (10, "十"),
            (11, "十一"),
            (15, "十五"),
            (20, "二十"),
            (22, "二十二"),
            (99, "九十九"),
            (100, "一百"),
            (105, "一百零五"),
            (110, "一百一十"),
            (115, "一百一十五"),
            (200, "二百"),
            (1000, "一千"),
            (1005, "一千零五"),
            (1010, "一千零一十"),
            (1050, "一千零五十"),
            (1500, "一千五百"),
            (2000, "两千"),
            (2200, "两千二百"),
            (9999, "九千九百九十九"),
            (10_000, "一万"),
            (10_010, "一万零一十"),
            (10_100, "一万零一百"),
            (11_000, "一万一千"),
            (20_000, "两万"),
            (22_000, "两万二千"),
            (100_000, "十万"),
            (110_000, "十一万"),
            (120_000, "十二万"),
            (1_000_000, "一百万"),
            (1_001_000, "一百万一千"),
            (1_000_100, "一百万零一百"),
            (10_000_000, "一千万"),
            (100_000_000, "一亿"),
            (100_000_001, "一亿零一"),
            (100_010_000, "一亿零一万"),
            (101_000_000, "一亿零一百万"),
            (110_000_000, "一亿一千万"),
            (200_000_000, "两亿"),
            (1_000_000_000, "十亿"),
            (1_001_000_000, "十亿零一百万"),
            (100_000_000_000, "一千亿"),
            (
                123_456_789_012,
                "一千二百三十四亿五千六百七十八万九千零一十二",
            ),
            (
                999_999_999_999,
                "九千九百九十九亿九千九百九十九万九千九百九十九",
            ),
        ];
        for &(n, want) in cases {
            assert_eq!(zh_text(number(Language::Zh, n)), want, "{n}");
        }
    }

    #[test]
    fn en_numbers() {
        let cases: &[(u64, &str)] = &[
            (0, "0"),
            (7, "7"),
            (13, "13"),
            (20, "20"),
            (21, "20 1"),
            (99, "90 9"),
            (100, "1 hundred"),
            (115, "1 hundred 15"),
            (123, "1 hundred 20 3"),
            (1001, "1 thousand 1"),
            (1_000_000, "1 million"),
            (1_234_567, "1 million 2 hundred 30 4 thousand 5 hundred 60 7"),
            (1_000_000_010, "1 billion 10"),
            (999_999_999_999, "9 hundred 90 9 billion 9 hundred 90 9 million 9 hundred 90 9 thousand 9 hundred 90 9"),
        ];
        for &(n, want) in cases {
            assert_eq!(en_text(number(Language::En, n)), want, "{n}");
        }
    }

    #[test]
    fn numbers_too_large_are_refused() {
        for lang in Language::ALL {
            assert_eq!(
                number(*lang, MAX_NUMBER + 1),
                Err(SayError::NumberTooLarge(MAX_NUMBER + 1))
            );
            assert_eq!(
                money(*lang, (MAX_NUMBER + 1) * 100),
                Err(SayError::NumberTooLarge(MAX_NUMBER + 1))
            );
            assert!(money(*lang, MAX_NUMBER * 100 + 99).is_ok());
            assert!(duration(*lang, Duration::MAX).is_err());
        }
    }

    #[test]
    fn digits_read_each_character() {
        assert_eq!(
            zh_text(digits(Language::Zh, "13800138000")),
            "幺三八零零幺三八零零零"
        );
        assert_eq!(zh_text(digits(Language::Zh, "2*9#")), "二星九井");
        assert_eq!(
            digits(Language::En, "10*#").unwrap(),
            [
                "en/digits/1",
                "en/digits/0",
                "en/digits/star",
                "en/digits/pound"
            ]
        );
        assert_eq!(digits(Language::En, ""), Ok(vec![]));
        assert_eq!(digits(Language::Zh, "12-3"), Err(SayError::NotADigit('-')));
        assert_eq!(digits(Language::En, "１"), Err(SayError::NotADigit('１')));
    }

    #[test]
    fn money_in_both_languages() {
        let cases: &[(u64, &str, &str)] = &[
            (0, "零元整", "0 money/yuan"),
            (1, "一分", "1 money/fen"),
            (2, "两分", "2 money/fen"),
            (20, "两角", "20 money/fen"),
            (50, "五角", "50 money/fen"),
            (55, "五角五分", "50 5 money/fen"),
            (100, "一元整", "1 money/yuan"),
            (200, "两元整", "2 money/yuan"),
            (1200, "十二元整", "12 money/yuan"),
            (1205, "十二元零五分", "12 money/yuan 5 money/fen"),
            (1250, "十二元五角", "12 money/yuan 50 money/fen"),
            (1258, "十二元五角八分", "12 money/yuan 50 8 money/fen"),
            (200_000, "两千元整", "2 thousand money/yuan"),
            (
                1_000_001,
                "一万元零一分",
                "10 thousand money/yuan 1 money/fen",
            ),
        ];
        for &(cents, zh, en) in cases {
            assert_eq!(zh_text(money(Language::Zh, cents)), zh, "{cents}");
            assert_eq!(en_text(money(Language::En, cents)), en, "{cents}");
        }
    }

    #[test]
    fn dates_in_both_languages() {
        let cases: &[((i32, u32, u32), &str, &str)] = &[
            (
                (2026, 11, 23),
                "二零二六年十一月二十三日",
                "months/11 ordinals/23 20 20 6",
            ),
            (
                (2000, 1, 1),
                "二零零零年一月一日",
                "months/1 ordinals/1 2 thousand",
            ),
            (
                (2005, 2, 2),
                "二零零五年二月二日",
                "months/2 ordinals/2 2 thousand 5",
            ),
            (
                (2010, 12, 31),
                "二零一零年十二月三十一日",
                "months/12 ordinals/31 20 10",
            ),
            (
                (1999, 10, 10),
                "一九九九年十月十日",
                "months/10 ordinals/10 19 90 9",
            ),
            (
                (1900, 3, 20),
                "一九零零年三月二十日",
                "months/3 ordinals/20 19 hundred",
            ),
            (
                (1905, 3, 21),
                "一九零五年三月二十一日",
                "months/3 ordinals/21 19 oh 5",
            ),
            (
                (2100, 7, 4),
                "二一零零年七月四日",
                "months/7 ordinals/4 20 1 hundred",
            ),
            (
                (800, 5, 5),
                "八零零年五月五日",
                "months/5 ordinals/5 8 hundred",
            ),
        ];
        for &((y, m, d), zh, en) in cases {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(zh_text(date(Language::Zh, day)), zh, "{day}");
            assert_eq!(en_text(date(Language::En, day)), en, "{day}");
        }
        let too_late = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
        let too_early = NaiveDate::from_ymd_opt(0, 1, 1).unwrap();
        for lang in Language::ALL {
            assert_eq!(date(*lang, too_late), Err(SayError::YearOutOfRange(10_000)));
            assert_eq!(date(*lang, too_early), Err(SayError::YearOutOfRange(0)));
        }
    }

    #[test]
    fn times_in_both_languages() {
        let cases: &[((u32, u32), &str, &str)] = &[
            ((0, 0), "凌晨零点", "12 time/oclock time/am"),
            ((0, 30), "凌晨零点三十分", "12 30 time/am"),
            ((2, 5), "凌晨两点零五分", "2 oh 5 time/am"),
            ((6, 0), "上午六点", "6 time/oclock time/am"),
            ((10, 30), "上午十点三十分", "10 30 time/am"),
            ((11, 59), "上午十一点五十九分", "11 50 9 time/am"),
            ((12, 0), "中午十二点", "12 time/oclock time/pm"),
            ((12, 15), "中午十二点十五分", "12 15 time/pm"),
            ((13, 2), "下午一点零二分", "1 oh 2 time/pm"),
            ((14, 10), "下午两点十分", "2 10 time/pm"),
            ((18, 45), "晚上六点四十五分", "6 40 5 time/pm"),
            ((23, 59), "晚上十一点五十九分", "11 50 9 time/pm"),
        ];
        for &((h, m), zh, en) in cases {
            let t = NaiveTime::from_hms_opt(h, m, 42).unwrap();
            assert_eq!(zh_text(time(Language::Zh, t)), zh, "{t}");
            assert_eq!(en_text(time(Language::En, t)), en, "{t}");
        }
    }

    #[test]
    fn durations_in_both_languages() {
        let cases: &[(u64, &str, &str)] = &[
            (0, "零秒", "0 duration/seconds"),
            (1, "一秒", "1 duration/second"),
            (2, "两秒", "2 duration/seconds"),
            (60, "一分钟", "1 duration/minute"),
            (120, "两分钟", "2 duration/minutes"),
            (90, "一分钟三十秒", "1 duration/minute 30 duration/seconds"),
            (3600, "一小时", "1 duration/hour"),
            (
                3630,
                "一小时零三十秒",
                "1 duration/hour 30 duration/seconds",
            ),
            (7200, "两小时", "2 duration/hours"),
            (
                7322,
                "两小时两分钟两秒",
                "2 duration/hours 2 duration/minutes 2 duration/seconds",
            ),
            (
                36_000 + 61,
                "十小时一分钟一秒",
                "10 duration/hours 1 duration/minute 1 duration/second",
            ),
            (100 * 3600, "一百小时", "1 hundred duration/hours"),
        ];
        for &(secs, zh, en) in cases {
            let d = Duration::from_millis(secs * 1000 + 999);
            assert_eq!(zh_text(duration(Language::Zh, d)), zh, "{secs}");
            assert_eq!(en_text(duration(Language::En, d)), en, "{secs}");
        }
    }

    /// Everything every function says, over inputs that reach every branch.
    fn everything_said(lang: Language) -> BTreeSet<String> {
        let mut said = BTreeSet::new();
        said.extend(digits(lang, "0123456789*#").unwrap());
        let mut numbers: Vec<u64> = (0..=2100).collect();
        numbers.extend([
            10_010,
            20_000,
            22_000,
            100_000,
            1_000_000,
            100_000_000,
            200_000_000,
            1_000_000_000,
            123_456_789_012,
            MAX_NUMBER,
        ]);
        for &n in &numbers {
            said.extend(number(lang, n).unwrap());
            said.extend(money(lang, n).unwrap());
            said.extend(duration(lang, Duration::from_secs(n * 7)).unwrap());
        }
        let mut day = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        while day <= last {
            said.extend(date(lang, day).unwrap());
            day += chrono::Duration::days(97);
        }
        for day in NaiveDate::from_ymd_opt(2024, 1, 1)
            .unwrap()
            .iter_days()
            .take(366)
        {
            said.extend(date(lang, day).unwrap());
        }
        for minute in 0..24 * 60 {
            let t = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0).unwrap();
            said.extend(time(lang, t).unwrap());
        }
        said
    }

    #[test]
    fn required_prompts_are_exactly_what_is_said() {
        for lang in Language::ALL {
            let required = required_prompts(*lang);
            let set: BTreeSet<String> = required.iter().cloned().collect();
            assert_eq!(set.len(), required.len(), "duplicates in {lang}");
            assert!(required.is_sorted());
            assert!(required
                .iter()
                .all(|n| n.starts_with(&format!("{}/", lang.code()))));
            assert_eq!(everything_said(*lang), set, "{lang}");
        }
    }

    #[test]
    fn every_required_prompt_exists() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let manifest = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
        for lang in Language::ALL {
            for name in required_prompts(*lang) {
                let wav = dir.join(format!("{name}.wav"));
                assert!(wav.is_file(), "{} is missing", wav.display());
                assert!(
                    manifest.contains(&format!("name = \"{name}\"\n")),
                    "{name} is not in prompts/manifest.toml"
                );
            }
        }
    }
}
