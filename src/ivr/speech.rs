//! Turning a node's `say` list into what is played: templates (`${name}`)
//! filled from the call's variables, prompt names made language-specific,
//! and values read out with `say`.

use super::dialplan::{SayItem, Speech};
use super::say;
use crate::tickets::model::Language;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;

/// One thing to play: a prompt from the library, or a pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Utterance {
    /// A full prompt name, e.g. `zh/welcome`.
    Prompt(String),
    Silence(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpeechError {
    #[error("variable \"{0}\" is not set")]
    Unset(String),
    #[error("unterminated ${{ in \"{0}\"")]
    Unterminated(String),
    #[error("cannot say {kind} \"{value}\": {reason}")]
    Value {
        kind: &'static str,
        value: String,
        reason: String,
    },
}

/// Fills every `${name}` in `template` from `variables`.
pub fn render(template: &str, variables: &BTreeMap<String, String>) -> Result<String, SpeechError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| SpeechError::Unterminated(template.to_string()))?;
        let name = &after[..end];
        let value = variables
            .get(name)
            .ok_or_else(|| SpeechError::Unset(name.to_string()))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What a `say` list comes to: the utterances, and the items that could
/// not be spoken (skipped, so one unset value does not silence the rest).
#[derive(Debug, Default)]
pub struct Spoken {
    pub utterances: Vec<Utterance>,
    pub skipped: Vec<SpeechError>,
}

/// The utterances of a `say` list in `language`. Times are read in `zone`.
pub fn utterances(
    items: &[Speech],
    language: Language,
    variables: &BTreeMap<String, String>,
    zone: Tz,
) -> Spoken {
    let mut spoken = Spoken::default();
    for item in items {
        let said = match item {
            Speech::Prompt(name) => render(name, variables)
                .map(|name| vec![Utterance::Prompt(format!("{}/{name}", language.code()))]),
            Speech::Say(SayItem::SilenceMs(ms)) => Ok(vec![Utterance::Silence(
                Duration::from_millis(u64::from(*ms)),
            )]),
            Speech::Say(item) => say_value(item, language, variables, zone)
                .map(|names| names.into_iter().map(Utterance::Prompt).collect()),
        };
        match said {
            Ok(utterances) => spoken.utterances.extend(utterances),
            Err(e) => spoken.skipped.push(e),
        }
    }
    spoken
}

fn say_value(
    item: &SayItem,
    language: Language,
    variables: &BTreeMap<String, String>,
    zone: Tz,
) -> Result<Vec<String>, SpeechError> {
    let (kind, template) = match item {
        SayItem::Digits(t) => ("digits", t),
        SayItem::Number(t) => ("a number", t),
        SayItem::Money(t) => ("money", t),
        SayItem::Date(t) => ("a date", t),
        SayItem::Time(t) => ("a time", t),
        SayItem::Duration(t) => ("a duration", t),
        SayItem::SilenceMs(_) => return Ok(Vec::new()),
    };
    let value = render(template, variables)?;
    let bad = |reason: String| SpeechError::Value {
        kind,
        value: value.clone(),
        reason,
    };
    let local = |value: &str| {
        DateTime::parse_from_rfc3339(value)
            .map(|at| at.with_timezone(&Utc).with_timezone(&zone))
            .map_err(|e| bad(format!("not an RFC 3339 time: {e}")))
    };
    let said = match item {
        SayItem::Digits(_) => say::digits(language, &value),
        SayItem::Number(_) => {
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| bad("not a whole number".into()))?;
            say::number(language, n)
        }
        SayItem::Money(_) => say::money(
            language,
            parse_cents(&value).ok_or_else(|| bad("not an amount like 12.50".into()))?,
        ),
        SayItem::Date(_) => say::date(language, local(&value)?.date_naive()),
        SayItem::Time(_) => say::time(language, local(&value)?.time()),
        SayItem::Duration(_) => {
            let seconds: u64 = value
                .trim()
                .parse()
                .map_err(|_| bad("not whole seconds".into()))?;
            say::duration(language, Duration::from_secs(seconds))
        }
        SayItem::SilenceMs(_) => Ok(Vec::new()),
    };
    said.map_err(|e| bad(e.to_string()))
}

/// "12.5" or "12.50" yuan as fen (cents).
fn parse_cents(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let fraction: u64 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn templates_fill_from_variables() {
        let v = vars(&[("ticket.status", "new"), ("caller", "138")]);
        assert_eq!(render("status/${ticket.status}", &v).unwrap(), "status/new");
        assert_eq!(render("${caller}-${caller}", &v).unwrap(), "138-138");
        assert_eq!(
            render("x/${nope}", &v),
            Err(SpeechError::Unset("nope".into()))
        );
        assert!(matches!(
            render("x/${caller", &v),
            Err(SpeechError::Unterminated(_))
        ));
    }

    #[test]
    fn prompts_become_language_specific_and_values_are_said() {
        let v = vars(&[("n", "1205"), ("due", "2026-11-23T10:30:00Z")]);
        let items = [
            Speech::Prompt("your_number".into()),
            Speech::Say(SayItem::Digits("${n}".into())),
            Speech::Say(SayItem::SilenceMs(250)),
            Speech::Say(SayItem::Time("${due}".into())),
        ];
        let spoken = utterances(&items, Language::Zh, &v, chrono_tz::Asia::Shanghai);
        assert!(spoken.skipped.is_empty());
        let said = spoken.utterances;
        assert_eq!(said[0], Utterance::Prompt("zh/your_number".into()));
        assert_eq!(said[1], Utterance::Prompt("zh/digits/1".into()));
        assert_eq!(said[5], Utterance::Silence(Duration::from_millis(250)));
        // 10:30 UTC is 18:30 in Shanghai: evening.
        assert_eq!(said[6], Utterance::Prompt("zh/time/evening".into()));
    }

    #[test]
    fn amounts_parse_as_cents() {
        assert_eq!(parse_cents("12.5"), Some(1250));
        assert_eq!(parse_cents("12.05"), Some(1205));
        assert_eq!(parse_cents("7"), Some(700));
        assert_eq!(parse_cents("1.234"), None);
        assert_eq!(parse_cents(".5"), None);
    }

    #[test]
    fn a_bad_value_is_skipped_and_named_and_the_rest_is_spoken() {
        let v = vars(&[("n", "abc")]);
        let spoken = utterances(
            &[
                Speech::Prompt("before".into()),
                Speech::Say(SayItem::Number("${n}".into())),
                Speech::Say(SayItem::Date("${unset}".into())),
                Speech::Prompt("after".into()),
            ],
            Language::En,
            &v,
            chrono_tz::UTC,
        );
        assert_eq!(
            spoken.utterances,
            [
                Utterance::Prompt("en/before".into()),
                Utterance::Prompt("en/after".into())
            ]
        );
        let reasons: Vec<String> = spoken.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                "cannot say a number \"abc\": not a whole number",
                "variable \"unset\" is not set"
            ]
        );
    }
}
