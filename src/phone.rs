//! One phone identity for the whole gateway. The store, the IVR, the SMS
//! channel, the staff API and the console all read a number through
//! [`PhoneNumber`], so that `+86 138-0013-8000`, `8613800138000`,
//! `008613800138000` and `13800138000` are one customer and one ticket
//! search. Pure.
//!
//! The normal form is the one operators read and dial in mainland China:
//! - a mainland mobile (11 digits, `13`–`19`) in its 11-digit national
//!   form: `13800138000`;
//! - a mainland fixed line with its trunk `0` and area code:
//!   `+86 10 1234 5678` and `+86 (0)10 …` are `01012345678`;
//! - mainland service numbers as dialled (`10000`, `95555`, `4008001234`);
//! - any other country's number in `+` form: `0014155550100` is
//!   `+14155550100`;
//! - anything else (local numbers, extensions) as written.
//!
//! Separators (spaces, `-`, `.`, brackets) never matter. A bare `86`
//! prefix counts as the country code only where no mainland national number
//! could start with it (12 digits and more). Rows written before the normal
//! form existed may hold other spellings, so lookups match every spelling
//! of a number ([`PhoneNumber::spellings`]).

use std::fmt;
use thiserror::Error;

/// The longest number accepted, in digits (E.164 allows 15; longer input
/// is refused rather than cut).
const MAX_DIGITS: usize = 15;
/// The fewest digits of a number a person can be called back on: a
/// mainland local number has 7 or 8; extensions and service codes fewer.
const MIN_DIALABLE_DIGITS: usize = 7;

/// A phone number in the gateway's one normal form (see the module
/// documentation). Any number of 1 to 15 digits is an identity (an
/// extension `8001` is one); [`PhoneNumber::is_dialable`] says whether it
/// can be called back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why text is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PhoneError {
    #[error("{0:?} is not a phone number (digits, optionally after +)")]
    NotANumber(String),
    #[error("{0:?} cannot be called back (an extension or a service code, not a phone number)")]
    NotDialable(String),
}

impl PhoneNumber {
    /// Reads `raw` as a phone number: separators removed, the
    /// international prefix (`+`, `00`) understood, mainland numbers in
    /// their national form.
    pub fn parse(raw: &str) -> Result<PhoneNumber, PhoneError> {
        let refuse = || PhoneError::NotANumber(raw.to_string());
        let compact: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '-' | '.' | '(' | ')'))
            .collect();
        let (international, digits) = match compact.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => match compact.strip_prefix("00") {
                Some(rest) if !rest.is_empty() => (true, rest),
                _ => (false, compact.as_str()),
            },
        };
        if digits.is_empty()
            || digits.len() > MAX_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(refuse());
        }
        let normal = match digits.strip_prefix("86") {
            Some(national) if international => mainland(national),
            Some(national) if digits.len() >= 12 => mainland(national),
            _ if international => format!("+{digits}"),
            _ => digits.to_string(),
        };
        // A normal form starting with 00 would read back as an international
        // number (`00` is the international prefix): only nonsense such as
        // "+86 000000" (a national number starting with 0 after the trunk
        // zero) gets here, and it is refused rather than stored in a form
        // that does not find itself again.
        if normal.is_empty() || normal.starts_with("00") {
            return Err(refuse());
        }
        Ok(PhoneNumber(normal))
    }

    /// A number a ticket can carry as its contact: one that [`parse`]s
    /// and [`is_dialable`].
    ///
    /// [`parse`]: PhoneNumber::parse
    /// [`is_dialable`]: PhoneNumber::is_dialable
    pub fn contact(raw: &str) -> Result<PhoneNumber, PhoneError> {
        let phone = PhoneNumber::parse(raw)?;
        if phone.is_dialable() {
            Ok(phone)
        } else {
            Err(PhoneError::NotDialable(raw.trim().to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a person can be called back on this number: at least 7
    /// digits (a mainland local number), so PBX extensions (`8001`) and
    /// service codes (`10000`) are not.
    pub fn is_dialable(&self) -> bool {
        self.digits().len() >= MIN_DIALABLE_DIGITS
    }

    /// Whether a text can reach this number: a mainland mobile, or another
    /// country's number (which may be a mobile; the provider says if not).
    /// Mainland fixed lines get no SMS: a provider would only bounce it.
    pub fn can_receive_sms(&self) -> bool {
        is_mainland_mobile(&self.0) || self.0.starts_with('+')
    }

    /// Every spelling this number may be stored under by rows written
    /// before the normal form (which kept caller IDs and imports as they
    /// came, separators removed): the normal form first.
    pub fn spellings(&self) -> Vec<String> {
        let normal = self.0.as_str();
        let mut all = vec![normal.to_string()];
        let national = if is_mainland_mobile(normal) {
            Some(normal)
        } else {
            fixed_line_number(normal)
        };
        if let Some(national) = national {
            all.push(format!("+86{national}"));
            // Without + or 00, 86 is read as the country code only in front
            // of 10 digits or more (a shorter "86…" is a local number).
            if national.len() >= 10 {
                all.push(format!("86{national}"));
            }
            all.push(format!("0086{national}"));
            if normal.starts_with('0') {
                all.push(format!("+86{normal}"));
            }
        } else if let Some(digits) = normal.strip_prefix('+') {
            all.push(format!("00{digits}"));
        }
        all
    }

    /// The number in E.164 form (`+8613800138000`, `+861012345678`), when
    /// it is a whole international number: mainland mobiles and fixed
    /// lines with their area code, and `+` numbers. Local numbers,
    /// extensions and service codes have none.
    pub fn e164(&self) -> Option<String> {
        let normal = self.0.as_str();
        if normal.starts_with('+') {
            return Some(normal.to_string());
        }
        if is_mainland_mobile(normal) {
            return Some(format!("+86{normal}"));
        }
        fixed_line_number(normal).map(|national| format!("+86{national}"))
    }

    fn digits(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The spellings a search for `raw` matches: those of its normal form;
/// none for text that is no phone number.
pub fn search_spellings(raw: &str) -> Vec<String> {
    PhoneNumber::parse(raw)
        .map(|phone| phone.spellings())
        .unwrap_or_default()
}

/// The national form of a mainland number given after its country code:
/// a mobile as is, a fixed line with the trunk `0` (a `(0)` written after
/// the country code is dropped first), service numbers as dialled.
fn mainland(national: &str) -> String {
    let national = match national.strip_prefix('0') {
        Some(rest) if !rest.is_empty() => rest,
        _ => national,
    };
    // Beijing's area code is 10: its 8-digit lines are the only fixed
    // lines whose national number starts with 1; 10000, 12345, 95555 and
    // the 400/800 numbers are dialled as they are.
    let beijing = national.starts_with("10") && national.len() == 10;
    let service = national.len() <= 6
        || (national.starts_with('1') && !beijing)
        || (national.len() == 10 && (national.starts_with("400") || national.starts_with("800")));
    if service || is_mainland_mobile(national) {
        national.to_string()
    } else {
        format!("0{national}")
    }
}

/// A mainland fixed line's number without its trunk `0` (area code and
/// line, 9 to 11 digits), when `normal` is one: what `+86` precedes in its
/// international form, and reads back as `normal`.
fn fixed_line_number(normal: &str) -> Option<&str> {
    let rest = normal.strip_prefix('0')?;
    let plausible = (9..=11).contains(&rest.len()) && !rest.starts_with('0');
    (plausible && mainland(rest) == normal).then_some(rest)
}

fn is_mainland_mobile(digits: &str) -> bool {
    digits.len() == 11
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(raw: &str) -> String {
        PhoneNumber::parse(raw).unwrap().to_string()
    }

    #[test]
    fn every_spelling_of_a_mainland_mobile_is_one_number() {
        for raw in [
            "13800138000",
            "+8613800138000",
            "8613800138000",
            "008613800138000",
            " 138-0013-8000 ",
            "+86 138 0013 8000",
            "(+86) 138.0013.8000",
        ] {
            assert_eq!(normal(raw), "13800138000", "{raw}");
        }
    }

    #[test]
    fn mainland_fixed_lines_keep_their_trunk_zero() {
        for raw in [
            "010 1234 5678",
            "01012345678",
            "+86 10 1234 5678",
            "+86 (0)10 1234 5678",
            "861012345678",
            "00861012345678",
        ] {
            assert_eq!(normal(raw), "01012345678", "{raw}");
        }
        assert_eq!(normal("+86 571 8888 6666"), "057188886666");
    }

    /// The `sms_webhook` fuzz campaign's find: "+86000000" became "00000",
    /// which reads back as the international "+000".
    #[test]
    fn no_normal_form_reads_back_as_another_number() {
        for raw in [
            "+86000000",
            "86000000000000",
            "+86 0 0571 8888",
            "0086000",
            "0831001380",
        ] {
            if let Ok(phone) = PhoneNumber::parse(raw) {
                for spelling in phone.spellings() {
                    assert_eq!(
                        PhoneNumber::parse(&spelling),
                        Ok(phone.clone()),
                        "{raw}: {spelling}"
                    );
                }
            }
        }
        assert!(PhoneNumber::parse("+86000000").is_err());
        // A short fixed line: "86" + its 9 digits is a local number, not it.
        let short = PhoneNumber::parse("0831001380").unwrap();
        assert!(!short.spellings().contains(&"86831001380".to_string()));
    }

    #[test]
    fn service_numbers_and_local_numbers_stay_as_dialled() {
        assert_eq!(normal("+86 10000"), "10000");
        assert_eq!(normal("10000"), "10000");
        assert_eq!(normal("+86 400 800 1234"), "4008001234");
        assert_eq!(normal("55512345"), "55512345");
        assert_eq!(normal("8612345"), "8612345");
        assert_eq!(normal("8001"), "8001");
    }

    #[test]
    fn other_countries_are_in_plus_form() {
        assert_eq!(normal("+1 415 555 0100"), "+14155550100");
        assert_eq!(normal("0014155550100"), "+14155550100");
    }

    #[test]
    fn text_that_is_no_number_is_refused() {
        for raw in [
            "",
            "+",
            "sipp",
            "anonymous",
            "138a",
            "1234567890123456",
            "+-",
        ] {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw:?}");
        }
        assert_eq!(
            PhoneNumber::parse("sipp").unwrap_err().to_string(),
            "\"sipp\" is not a phone number (digits, optionally after +)"
        );
    }

    #[test]
    fn extensions_and_service_codes_cannot_be_called_back() {
        for raw in ["8001", "10000", "+86 10000", "95555"] {
            assert!(!PhoneNumber::parse(raw).unwrap().is_dialable(), "{raw}");
            assert!(matches!(
                PhoneNumber::contact(raw),
                Err(PhoneError::NotDialable(_))
            ));
        }
        for raw in ["13800138000", "55512345", "01012345678", "+14155550100"] {
            assert!(PhoneNumber::contact(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn mobiles_and_foreign_numbers_get_texts_fixed_lines_do_not() {
        for raw in [
            "13800138000",
            "+8613800138000",
            "008619912345678",
            "+14155550100",
        ] {
            assert!(PhoneNumber::parse(raw).unwrap().can_receive_sms(), "{raw}");
        }
        for raw in [
            "01012345678",
            "55512345",
            "+861012345678",
            "12800138000",
            "1380013800",
        ] {
            assert!(!PhoneNumber::parse(raw).unwrap().can_receive_sms(), "{raw}");
        }
    }

    #[test]
    fn a_number_is_looked_up_under_every_older_spelling() {
        let mobile = PhoneNumber::parse("+8613800138000").unwrap();
        assert_eq!(
            mobile.spellings(),
            [
                "13800138000",
                "+8613800138000",
                "8613800138000",
                "008613800138000"
            ]
        );
        let fixed = PhoneNumber::parse("01012345678").unwrap();
        assert_eq!(
            fixed.spellings(),
            [
                "01012345678",
                "+861012345678",
                "861012345678",
                "00861012345678",
                "+8601012345678"
            ]
        );
        let foreign = PhoneNumber::parse("+14155550100").unwrap();
        assert_eq!(foreign.spellings(), ["+14155550100", "0014155550100"]);
        assert_eq!(PhoneNumber::parse("8001").unwrap().spellings(), ["8001"]);
        for spelling in mobile.spellings().iter().chain(&fixed.spellings()) {
            let again = PhoneNumber::parse(spelling).unwrap();
            assert!(again == mobile || again == fixed, "{spelling}");
        }
    }

    #[test]
    fn whole_numbers_have_an_e164_form() {
        let e164 = |raw: &str| PhoneNumber::parse(raw).unwrap().e164();
        assert_eq!(e164("13800138000").as_deref(), Some("+8613800138000"));
        assert_eq!(e164("010 1234 5678").as_deref(), Some("+861012345678"));
        assert_eq!(e164("+14155550100").as_deref(), Some("+14155550100"));
        assert_eq!(e164("55512345"), None);
        assert_eq!(e164("10000"), None);
    }

    #[test]
    fn a_search_for_text_that_is_no_number_matches_nothing() {
        assert!(search_spellings(" abc ").is_empty());
        assert!(search_spellings("").is_empty());
        assert_eq!(search_spellings("+86 13800138000").len(), 4);
    }
}
