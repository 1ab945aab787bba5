//! Dialplans: the voice menus operators write in `dialplans/*.toml`, parsed
//! into a typed model. Parsing reports schema errors with file and line,
//! one per node, so a file with several mistakes shows them all; the
//! checker (`check`) then looks at the plan as a whole.
//!
//! Prompt names in a dialplan are relative to the call's language: `welcome`
//! plays `prompts/zh/welcome.wav` or `prompts/en/welcome.wav`.

use crate::tickets::model::{CustomerLevel, Language, TicketType};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use thiserror::Error;

/// One problem in a dialplan file, where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in one or more dialplan files.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct DialplanError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for DialplanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A parsed dialplan.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialplan {
    /// The file it came from (for messages).
    pub file: String,
    pub name: String,
    /// Dialled numbers (Request-URI user parts) and the node each starts at.
    pub entries: BTreeMap<String, String>,
    /// The language a call starts in, and every language it may switch to
    /// (each needs every prompt).
    pub language: Language,
    pub languages: Vec<Language>,
    pub nodes: BTreeMap<String, Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub line: usize,
    pub kind: NodeKind,
}

/// Something spoken: a prompt, a value read out, or a pause.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Speech {
    /// A prompt name, relative to the call's language.
    Prompt(String),
    /// A value read out, e.g. `{ digits = "${ticket.number}" }`.
    Say(SayItem),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SayItem {
    Digits(String),
    Number(String),
    Money(String),
    Date(String),
    Time(String),
    Duration(String),
    /// A pause, in milliseconds.
    SilenceMs(u32),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeKind {
    Play(Play),
    Menu(Menu),
    Collect(Collect),
    Branch(Branch),
    SetLanguage(SetLanguage),
    Set(SetVariable),
    TicketCreate(TicketCreate),
    TicketLookup(TicketLookup),
    TicketNote(TicketNote),
    TicketSurvey(TicketSurvey),
    TicketAction(TicketAction),
    CallbackRequest(CallbackRequest),
    Record(Record),
    Transfer(Transfer),
    Hangup(Hangup),
    Goto(Goto),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Play {
    pub say: Vec<Speech>,
    /// Stop at a key press (the key is kept for the next menu or collect).
    #[serde(default)]
    pub barge_in: bool,
    pub next: String,
}

fn default_timeout() -> u32 {
    5
}
fn default_retries() -> u32 {
    3
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    pub say: Vec<Speech>,
    /// Key ("0"–"9", "*", "#") → node.
    pub keys: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// Attempts after the first before `on_failure`.
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub invalid: Vec<Speech>,
    #[serde(default)]
    pub no_input: Vec<Speech>,
    pub on_failure: String,
    /// Key → phrases a caller may say instead of pressing it, when speech
    /// recognition is on (`[speech]`): another way to press, never the
    /// only one.
    #[serde(default)]
    pub listen: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// Only the length limits.
    None,
    /// A ticket number with a correct check digit.
    TicketNumber,
    /// A phone number that can be called back (`crate::phone`): at least 7
    /// digits, so an extension or a service code is asked for again.
    Phone,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// Said before the digits are read back ("you entered").
    pub before: Vec<Speech>,
    /// Said after ("press 1 to confirm, 2 to re-enter").
    pub after: Vec<Speech>,
    #[serde(default = "default_yes")]
    pub yes: String,
    #[serde(default = "default_no")]
    pub no: String,
}

fn default_yes() -> String {
    "1".into()
}
fn default_no() -> String {
    "2".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    pub say: Vec<Speech>,
    /// The variable the digits are stored in.
    pub variable: String,
    pub min_digits: u32,
    pub max_digits: u32,
    /// Ends the input early ("#"); not stored.
    #[serde(default)]
    pub terminator: Option<String>,
    #[serde(default = "default_first_digit")]
    pub first_digit_timeout_secs: u32,
    #[serde(default = "default_inter_digit")]
    pub inter_digit_timeout_secs: u32,
    #[serde(default = "default_validation")]
    pub validate: Validation,
    /// Digits the input must start with (any of them), e.g. ["1"] for mobiles.
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub confirm: Option<Confirm>,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub invalid: Vec<Speech>,
    #[serde(default)]
    pub no_input: Vec<Speech>,
    pub next: String,
    pub on_failure: String,
}

fn default_first_digit() -> u32 {
    8
}
fn default_inter_digit() -> u32 {
    4
}
fn default_validation() -> Validation {
    Validation::None
}

/// One condition of a branch; exactly one field is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// The caller's number belongs to a customer on file.
    #[serde(default)]
    pub caller_known: Option<bool>,
    /// The customer's level is one of these (unknown callers are local_c).
    #[serde(default)]
    pub level: Option<Vec<CustomerLevel>>,
    /// Inside the SLA calendar's working hours (true) or outside (false).
    #[serde(default)]
    pub business_hours: Option<bool>,
    /// "working", "weekend" or "holiday", by the SLA calendar.
    #[serde(default)]
    pub day: Option<String>,
    /// Local time of day range "HH:MM-HH:MM" (may wrap midnight).
    #[serde(default)]
    pub time: Option<String>,
    /// A variable's value: `variable` with `equals`, `is_set` or
    /// `is_phone`.
    #[serde(default)]
    pub variable: Option<String>,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub is_set: Option<bool>,
    /// The variable holds a phone number that can be called back (true),
    /// or is unset or holds anything else (false).
    #[serde(default)]
    pub is_phone: Option<bool>,
    pub goto: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    pub cases: Vec<Case>,
    #[serde(rename = "else")]
    pub otherwise: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLanguage {
    pub language: Language,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVariable {
    pub variable: String,
    /// A template: text with `${name}` references.
    pub value: String,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketCreate {
    #[serde(rename = "type")]
    pub ticket_type: TicketType,
    /// Template; a product category code from sla.toml.
    pub category: String,
    #[serde(default)]
    pub service_number: Option<String>,
    pub description: String,
    pub next: String,
    pub on_error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupBy {
    /// The number in `number` (a template).
    Number,
    /// The caller's latest open ticket.
    Caller,
    /// The caller's open ticket after the one a `caller` or `caller_next`
    /// lookup found last (`not_found` after the oldest).
    CallerNext,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketLookup {
    pub by: LookupBy,
    #[serde(default)]
    pub number: Option<String>,
    pub found: String,
    pub not_found: String,
    pub on_error: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketNote {
    pub text: String,
    pub next: String,
    pub on_error: String,
}

/// A satisfaction score for the current ticket (`ticket.number`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketSurvey {
    /// A template that must come out as one digit, 1 to 5.
    pub score: String,
    pub next: String,
    /// No ticket, a score that is not 1–5, or the store failed.
    pub on_error: String,
}

/// The caller's answer about the current ticket (`ticket.number`), as a
/// lifecycle action taken as the customer: the confirmation call's
/// "restored" or "not restored".
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketAction {
    pub action: CustomerAction,
    pub next: String,
    /// No ticket, a ticket whose state does not allow the action (already
    /// confirmed, closed), or the store failed.
    pub on_error: String,
}

/// The gateway is to call the caller back (回呼) about the current ticket
/// (`ticket.number`) on the `contact` number, and bridge them to the
/// agents (`[outbound.callback]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    pub next: String,
    /// No ticket, no number to call back, or the store failed.
    pub on_error: String,
}

/// Records what the caller says after `say` (which ends with a beep): a
/// fault description kept on the current ticket (`ticket.number`, or the
/// ticket the call creates next). The recording ends after `silence_secs`
/// of silence once the caller has spoken, at `max_secs`, at
/// `finish_key`, or when the caller hangs up; `finish_key` during the
/// prompt skips it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub say: Vec<Speech>,
    #[serde(default = "default_record_max_secs")]
    pub max_secs: u32,
    #[serde(default = "default_record_silence_secs")]
    pub silence_secs: u32,
    /// Nothing said for this long: `on_empty`.
    #[serde(default = "default_record_no_speech_secs")]
    pub no_speech_secs: u32,
    /// Mean absolute amplitude (16-bit PCM, 20 ms frames) from which a
    /// frame counts as speech.
    #[serde(default = "default_record_speech_level")]
    pub speech_level: u16,
    #[serde(default = "default_record_finish_key")]
    pub finish_key: String,
    /// "Press 1 to keep it, 2 to record again" after the recording; no
    /// answer keeps it.
    #[serde(default)]
    pub review: Option<Review>,
    /// Said once the recording is stored.
    #[serde(default)]
    pub after: Vec<Speech>,
    pub next: String,
    /// Nothing was said, or the caller skipped with `finish_key`.
    pub on_empty: String,
    /// The recording could not be stored.
    pub on_error: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub say: Vec<Speech>,
    #[serde(default = "default_yes")]
    pub keep: String,
    #[serde(default = "default_no")]
    pub again: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
}

/// Longest recording a plan may ask for.
pub const MAX_RECORD_SECS: u32 = 300;

fn default_record_max_secs() -> u32 {
    60
}
fn default_record_silence_secs() -> u32 {
    3
}
fn default_record_no_speech_secs() -> u32 {
    6
}
fn default_record_speech_level() -> u16 {
    300
}
fn default_record_finish_key() -> String {
    "#".into()
}

/// What a caller may do to a ticket from a dialplan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerAction {
    /// Service restored: the ticket is confirmed (the `confirm` clock met).
    Confirm,
    /// Not restored: the ticket is reopened.
    Reopen,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// A target name from the transfer configuration.
    pub target: String,
    #[serde(default)]
    pub say: Vec<Speech>,
    pub on_failure: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hangup {
    #[serde(default)]
    pub say: Vec<Speech>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goto {
    pub next: String,
}

impl NodeKind {
    /// The nodes this one can go to, with the field that names each.
    pub fn targets(&self) -> Vec<(&'static str, &str)> {
        let mut targets = Vec::new();
        match self {
            NodeKind::Play(n) => targets.push(("next", n.next.as_str())),
            NodeKind::Menu(n) => {
                targets.extend(n.keys.values().map(|t| ("keys", t.as_str())));
                targets.push(("on_failure", n.on_failure.as_str()));
            }
            NodeKind::Collect(n) => {
                targets.push(("next", n.next.as_str()));
                targets.push(("on_failure", n.on_failure.as_str()));
            }
            NodeKind::Branch(n) => {
                targets.extend(n.cases.iter().map(|c| ("goto", c.goto.as_str())));
                targets.push(("else", n.otherwise.as_str()));
            }
            NodeKind::SetLanguage(n) => targets.push(("next", n.next.as_str())),
            NodeKind::Set(n) => targets.push(("next", n.next.as_str())),
            NodeKind::TicketCreate(n) => {
                targets.push(("next", n.next.as_str()));
                targets.push(("on_error", n.on_error.as_str()));
            }
            NodeKind::TicketLookup(n) => {
                targets.push(("found", n.found.as_str()));
                targets.push(("not_found", n.not_found.as_str()));
                targets.push(("on_error", n.on_error.as_str()));
            }
            NodeKind::TicketNote(n) => {
                targets.push(("next", n.next.as_str()));
                targets.push(("on_error", n.on_error.as_str()));
            }
            NodeKind::TicketSurvey(n) => {
                targets.push(("next", n.next.as_str()));
                targets.push(("on_error", n.on_error.as_str()));
            }
            NodeKind::TicketAction(n) => {
                targets.push(("next", n.next.as_str()));
                targets.push(("on_error", n.on_error.as_str()));
            }
            NodeKind::CallbackRequest(n) => {
                targets.push(("next", n.next.as_str()));
                targets.push(("on_error", n.on_error.as_str()));
            }
            NodeKind::Record(n) => {
                targets.push(("next", n.next.as_str()));
                targets.push(("on_empty", n.on_empty.as_str()));
                targets.push(("on_error", n.on_error.as_str()));
            }
            NodeKind::Transfer(n) => targets.push(("on_failure", n.on_failure.as_str())),
            NodeKind::Hangup(_) => {}
            NodeKind::Goto(n) => targets.push(("next", n.next.as_str())),
        }
        targets
    }

    /// Whether the node waits for the caller (so a loop through it is fine).
    pub fn waits_for_input(&self) -> bool {
        matches!(
            self,
            NodeKind::Menu(_) | NodeKind::Collect(_) | NodeKind::Record(_)
        )
    }

    /// Everything this node may say, for the prompt check.
    pub fn speech(&self) -> Vec<&Speech> {
        let mut all: Vec<&Speech> = Vec::new();
        match self {
            NodeKind::Play(n) => all.extend(&n.say),
            NodeKind::Menu(n) => {
                all.extend(&n.say);
                all.extend(&n.invalid);
                all.extend(&n.no_input);
            }
            NodeKind::Collect(n) => {
                all.extend(&n.say);
                all.extend(&n.invalid);
                all.extend(&n.no_input);
                if let Some(confirm) = &n.confirm {
                    all.extend(&confirm.before);
                    all.extend(&confirm.after);
                }
            }
            NodeKind::Record(n) => {
                all.extend(&n.say);
                all.extend(&n.after);
                if let Some(review) = &n.review {
                    all.extend(&review.say);
                }
            }
            NodeKind::Transfer(n) => all.extend(&n.say),
            NodeKind::Hangup(n) => all.extend(&n.say),
            _ => {}
        }
        all
    }
}

/// The `[dialplan]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    /// Dialled number → start node.
    entries: BTreeMap<String, String>,
    #[serde(default = "default_language")]
    language: Language,
    #[serde(default)]
    languages: Vec<Language>,
}

fn default_language() -> Language {
    Language::Zh
}

/// The document before its nodes are typed: each node is kept as a value
/// with its position, so that every node's errors can be reported.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    dialplan: toml::Spanned<toml::Value>,
    #[serde(default)]
    nodes: BTreeMap<toml::Spanned<String>, toml::Spanned<toml::Value>>,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line inside `range` of `text` where `key` is assigned, if found:
/// serde names the field but not its place.
fn key_line(text: &str, range: std::ops::Range<usize>, key: &str) -> Option<usize> {
    let start = range.start.min(text.len());
    let end = range.end.min(text.len());
    let mut offset = start;
    for line in text[start..end].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(line_of(text, offset));
            }
        }
        offset += line.len();
    }
    None
}

/// The field a serde error message names, e.g. "unknown field `nxt`".
fn field_in_message(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(&message[start..end])
}

impl Dialplan {
    /// Reads and parses one file.
    pub fn load(path: &Path) -> Result<Dialplan, DialplanError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DialplanError {
            problems: vec![Problem {
                file: file.clone(),
                line: None,
                message: format!("cannot read: {e}"),
            }],
        })?;
        Dialplan::parse(&text, &file)
    }

    /// Parses a dialplan's text; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<Dialplan, DialplanError> {
        let problem = |line: Option<usize>, message: String| Problem {
            file: file.to_string(),
            line,
            message,
        };
        let document: Document = toml::from_str(text).map_err(|e| DialplanError {
            problems: vec![problem(
                e.span().map(|s| line_of(text, s.start)),
                e.message().trim().to_string(),
            )],
        })?;
        let mut problems = Vec::new();
        let header_span = document.dialplan.span();
        let header = Header::deserialize(document.dialplan.into_inner()).map_err(|e| {
            let message = e.to_string();
            let line = field_in_message(&message)
                .and_then(|key| key_line(text, header_span.clone(), key))
                .or(Some(line_of(text, header_span.start)));
            problem(line, format!("[dialplan]: {}", message.trim()))
        });
        let mut nodes = BTreeMap::new();
        for (name, value) in document.nodes {
            let span = value.span();
            let line = line_of(text, name.span().start);
            let name = name.into_inner();
            match NodeKind::deserialize(value.into_inner()) {
                Ok(kind) => {
                    nodes.insert(name.clone(), Node { name, line, kind });
                }
                Err(e) => {
                    let message = e.to_string();
                    let at = field_in_message(&message)
                        .and_then(|key| key_line(text, span.clone(), key))
                        .unwrap_or(line);
                    problems.push(problem(
                        Some(at),
                        format!("node \"{name}\": {}", message.trim()),
                    ));
                }
            }
        }
        let header = match header {
            Ok(header) => Some(header),
            Err(p) => {
                problems.push(p);
                None
            }
        };
        match header {
            Some(header) if problems.is_empty() => {
                let mut languages = header.languages;
                if !languages.contains(&header.language) {
                    languages.insert(0, header.language);
                }
                Ok(Dialplan {
                    file: file.to_string(),
                    name: header.name,
                    entries: header.entries,
                    language: header.language,
                    languages,
                    nodes,
                })
            }
            _ => {
                problems.sort_by_key(|p| p.line);
                Err(DialplanError { problems })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
[dialplan]
name = "small"
entries = { "10000" = "welcome" }
languages = ["zh", "en"]

[nodes.welcome]
kind = "play"
say = ["welcome", { digits = "${caller}" }, { silence_ms = 300 }]
barge_in = true
next = "main"

[nodes.main]
kind = "menu"
say = ["main_menu"]
keys = { "1" = "bye", "9" = "bye" }
on_failure = "bye"

[nodes.bye]
kind = "hangup"
say = ["goodbye"]
"#;

    #[test]
    fn a_small_plan_parses_into_typed_nodes() {
        let plan = Dialplan::parse(SMALL, "small.toml").unwrap();
        assert_eq!(plan.entries["10000"], "welcome");
        assert_eq!(plan.languages, [Language::Zh, Language::En]);
        let welcome = &plan.nodes["welcome"];
        assert_eq!(welcome.line, 7);
        let NodeKind::Play(play) = &welcome.kind else {
            panic!("not a play node");
        };
        assert!(play.barge_in);
        assert_eq!(
            play.say,
            [
                Speech::Prompt("welcome".into()),
                Speech::Say(SayItem::Digits("${caller}".into())),
                Speech::Say(SayItem::SilenceMs(300)),
            ]
        );
        let NodeKind::Menu(menu) = &plan.nodes["main"].kind else {
            panic!("not a menu");
        };
        assert_eq!(menu.timeout_secs, 5);
        assert_eq!(menu.retries, 3);
        assert_eq!(
            plan.nodes["main"].kind.targets(),
            [("keys", "bye"), ("keys", "bye"), ("on_failure", "bye")]
        );
    }

    #[test]
    fn every_bad_node_is_reported_with_its_line() {
        let text = SMALL
            .replace("next = \"main\"", "nxt = \"main\"")
            .replace("kind = \"hangup\"", "kind = \"hang_up\"");
        let error = Dialplan::parse(&text, "small.toml").unwrap_err();
        let lines: Vec<String> = error.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("small.toml line 11: node \"welcome\": unknown field `nxt`"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("small.toml line 19: node \"bye\": unknown variant `hang_up`"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn a_ticket_action_other_than_confirm_or_reopen_is_refused_with_its_line() {
        let good = r#"
[dialplan]
name = "outbound"
entries = { "confirm" = "yes" }

[nodes.yes]
kind = "ticket_action"
action = "confirm"
next = "bye"
on_error = "bye"

[nodes.bye]
kind = "hangup"
"#;
        let plan = Dialplan::parse(good, "outbound.toml").unwrap();
        assert_eq!(
            plan.nodes["yes"].kind.targets(),
            [("next", "bye"), ("on_error", "bye")]
        );
        let bad = good.replace("action = \"confirm\"", "action = \"close\"");
        let error = Dialplan::parse(&bad, "outbound.toml").unwrap_err();
        let message = error.problems[0].to_string();
        assert!(
            message.starts_with("outbound.toml line 6: node \"yes\": unknown variant `close`, expected `confirm` or `reopen`"),
            "{message}"
        );
    }

    #[test]
    fn a_toml_syntax_error_has_its_line() {
        let text = SMALL.replace("barge_in = true", "barge_in = ");
        let error = Dialplan::parse(&text, "small.toml").unwrap_err();
        assert_eq!(error.problems.len(), 1);
        assert_eq!(error.problems[0].line, Some(10));
    }

    #[test]
    fn a_missing_field_names_the_node() {
        let text = SMALL.replace("on_failure = \"bye\"\n", "");
        let error = Dialplan::parse(&text, "small.toml").unwrap_err();
        assert_eq!(error.problems.len(), 1);
        let message = error.problems[0].to_string();
        assert!(
            message.starts_with("small.toml line 13: node \"main\": missing field `on_failure`"),
            "{message}"
        );
    }

    #[test]
    fn a_key_used_twice_in_a_menu_is_reported_with_its_line() {
        let text = SMALL.replace(r#""9" = "bye""#, r#""1" = "main""#);
        let error = Dialplan::parse(&text, "small.toml").unwrap_err();
        let lines: Vec<String> = error.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines, ["small.toml line 16: duplicate key `1`"]);
    }
}
