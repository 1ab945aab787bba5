//! Reading an inbound text message as a command, in Chinese or English.
//! Pure: it decides what the sender asked for and in which language, and
//! leaves the ticket lookups and the reply wording to its callers.
//!
//! | message | command |
//! |---|---|
//! | `查询 <ticket>` / `STATUS <ticket>` | [`Command::Status`] with the number |
//! | `查询` / `STATUS` alone | [`Command::Status`] without one: the sender's open tickets |
//! | `报障 <text>` / `FAULT <text>` | [`Command::Fault`] with the description |
//! | `投诉 <text>` / `COMPLAINT <text>` | [`Command::Complaint`] with the description |
//! | `取消 <ticket>` / `CANCEL <ticket>` | [`Command::Cancel`], or [`Command::CancelWithoutNumber`] |
//! | only `1`, `是`, `Y`, `YES` / only `2`, `否`, `N`, `NO` | [`Command::Answer`] `true` / `false` |
//! | `帮助` / `HELP` / only `?` | [`Command::Help`] |
//! | anything else | [`Command::Unknown`] |
//!
//! Rules:
//! - Text is folded first ([`crate::sms::text`]): width, case, Unicode
//!   spaces and Chinese punctuation don't matter.
//! - Words around a keyword are ignored ("请帮我查询 555-1234-567，谢谢",
//!   "Status of ticket 5551234567 please").
//! - An English keyword counts only as a whole word: letters on either side
//!   make another word ("statuses", "helpful" are not keywords), while
//!   digits, spaces, punctuation or Chinese may touch it ("STATUS5551234567").
//!   A Chinese keyword counts anywhere, since Chinese has no spaces.
//! - When a message has several keywords the first one wins ("查询 … 取消"
//!   is a status query, "help me cancel 5551234567" is a help request).
//! - An answer (1/2, 是/否, Y/N, YES/NO) is the whole message, punctuation
//!   and spaces aside: "1." is an answer, "1 more thing" is not.
//! - The ticket number of `查询`/`STATUS`/`取消`/`CANCEL` is the first run of
//!   digits after the keyword, or else before it ("5551234567 查询一下").
//!   Digit groups separated by spaces or hyphens are one run
//!   ("555-1234-567", "555 1234 567"); so two numbers written one after the
//!   other with only spaces between them read as one malformed number.
//!   Ten digits with a wrong check digit are [`TicketRef::Mistyped`], not a
//!   number to look up; any other count of digits is
//!   [`TicketRef::Malformed`].
//! - A description (`报障`, `投诉`) is the original text after the keyword,
//!   tidied ([`crate::sms::text::tidy`]: NFKC, so full-width letters and
//!   punctuation such as "，" become ASCII; spaces collapsed; case kept) and
//!   stripped of leading punctuation; it may be empty.
//! - The language is Chinese when a Chinese keyword was used or the message
//!   has any Chinese character ([`crate::sms::text::is_chinese`]); English
//!   otherwise. A message without a single letter or Chinese character (a
//!   bare "1" or "2", a number alone) says nothing about its language: it
//!   is English only by default ([`ParsedCommand::language_is_default`]),
//!   and a reply may follow what the message answers instead.

use crate::sms::text::{self, FoldedChar};
use crate::tickets::model::Language;
use crate::tickets::number::{TicketNumber, TicketNumberError};

/// What a text message asks for, and the language to reply in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommand {
    pub command: Command,
    pub language: Language,
    /// The message has no letter and no Chinese character (digits and
    /// punctuation only), so `language` is the default, not the sender's
    /// choice.
    pub language_is_default: bool,
}

/// What a text message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The status of one ticket, or (without a number) of the sender's open
    /// tickets.
    Status(Option<TicketRef>),
    /// Report a fault, with the description (possibly empty).
    Fault(String),
    /// Make a complaint, with the description (possibly empty).
    Complaint(String),
    /// Cancel a ticket.
    Cancel(TicketRef),
    /// `取消`/`CANCEL` without a ticket number.
    CancelWithoutNumber,
    /// An answer to a yes/no question ("reply 1 if service is restored, 2
    /// if not"): `true` for 1/是/Y/YES.
    Answer(bool),
    Help,
    Unknown,
}

/// A ticket number as the sender wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketRef {
    /// A number whose check digit is right: worth looking up.
    Valid(TicketNumber),
    /// Ten digits whose check digit is wrong: a typo, not an unknown ticket.
    /// The digits as read (ASCII, separators dropped).
    Mistyped(String),
    /// Digits, but not ten of them. The digits as read (ASCII, separators
    /// dropped).
    Malformed(String),
}

impl TicketRef {
    /// Reads the ASCII digits of a number written without separators.
    fn from_digits(digits: String) -> TicketRef {
        match digits.parse::<TicketNumber>() {
            Ok(number) => TicketRef::Valid(number),
            Err(TicketNumberError::CheckDigit) => TicketRef::Mistyped(digits),
            Err(TicketNumberError::WrongLength(_) | TicketNumberError::NotDigits) => {
                TicketRef::Malformed(digits)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Status,
    Fault,
    Complaint,
    Cancel,
    Help,
}

/// Chinese keywords, matched anywhere.
const CHINESE_KEYWORDS: [(&str, Keyword); 5] = [
    ("查询", Keyword::Status),
    ("报障", Keyword::Fault),
    ("投诉", Keyword::Complaint),
    ("取消", Keyword::Cancel),
    ("帮助", Keyword::Help),
];

/// English keywords (folded to lowercase), matched as whole words.
const ENGLISH_KEYWORDS: [(&str, Keyword); 5] = [
    ("status", Keyword::Status),
    ("fault", Keyword::Fault),
    ("complaint", Keyword::Complaint),
    ("cancel", Keyword::Cancel),
    ("help", Keyword::Help),
];

/// Reads `text` as a command. Never fails: what it cannot read is
/// [`Command::Unknown`].
pub fn parse(text: &str) -> ParsedCommand {
    let folded = text::fold_with_origins(text);
    let chars: Vec<char> = folded
        .iter()
        .map(|folded_char| folded_char.folded)
        .collect();
    let (command, chinese_keyword) = read_command(text, &folded, &chars);
    let language = if chinese_keyword || text.chars().any(text::is_chinese) {
        Language::Zh
    } else {
        Language::En
    };
    let language_is_default = language == Language::En && !chars.iter().any(|c| c.is_alphabetic());
    ParsedCommand {
        command,
        language,
        language_is_default,
    }
}

/// The command, and whether a Chinese keyword named it.
fn read_command(text: &str, folded: &[FoldedChar], chars: &[char]) -> (Command, bool) {
    if !chars.is_empty() && chars.iter().all(|&c| c == '?' || c == ' ') {
        return (Command::Help, false);
    }
    if let Some(answer) = read_answer(chars) {
        return (Command::Answer(answer), false);
    }
    let Some((keyword, start, end, chinese)) = first_keyword(chars) else {
        return (Command::Unknown, false);
    };
    let command = match keyword {
        Keyword::Status => Command::Status(ticket_ref_near(chars, start, end)),
        Keyword::Cancel => match ticket_ref_near(chars, start, end) {
            Some(ticket) => Command::Cancel(ticket),
            None => Command::CancelWithoutNumber,
        },
        Keyword::Fault => Command::Fault(description_after(text, &folded[end - 1])),
        Keyword::Complaint => Command::Complaint(description_after(text, &folded[end - 1])),
        Keyword::Help => Command::Help,
    };
    (command, chinese)
}

fn read_answer(chars: &[char]) -> Option<bool> {
    let word: String = chars
        .iter()
        .filter(|&&c| c != ' ' && !c.is_ascii_punctuation())
        .collect();
    match word.as_str() {
        "1" | "是" | "y" | "yes" => Some(true),
        "2" | "否" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// The first keyword in the folded text: which, where it starts and ends
/// (folded char indices), and whether it is a Chinese one.
fn first_keyword(chars: &[char]) -> Option<(Keyword, usize, usize, bool)> {
    (0..chars.len()).find_map(|start| {
        let chinese = CHINESE_KEYWORDS.iter().find_map(|&(word, keyword)| {
            let end = matches_at(chars, start, word)?;
            Some((keyword, start, end, true))
        });
        chinese.or_else(|| {
            ENGLISH_KEYWORDS.iter().find_map(|&(word, keyword)| {
                let end = matches_at(chars, start, word)?;
                let starts_word = start == 0 || !is_letter(chars[start - 1]);
                let ends_word = chars.get(end).is_none_or(|&next| !is_letter(next));
                (starts_word && ends_word).then_some((keyword, start, end, false))
            })
        })
    })
}

/// The end of `word` if the folded text has it at `start`.
fn matches_at(chars: &[char], start: usize, word: &str) -> Option<usize> {
    let mut end = start;
    for expected in word.chars() {
        if chars.get(end) != Some(&expected) {
            return None;
        }
        end += 1;
    }
    Some(end)
}

/// A letter of a word that is not Chinese (Chinese touches keywords freely).
fn is_letter(c: char) -> bool {
    c.is_alphabetic() && !text::is_chinese(c)
}

/// The first ticket number after the keyword, or else before it.
fn ticket_ref_near(chars: &[char], start: usize, end: usize) -> Option<TicketRef> {
    first_digit_run(&chars[end..])
        .or_else(|| first_digit_run(&chars[..start]))
        .map(TicketRef::from_digits)
}

/// The digits of the first run of digit groups joined by spaces or hyphens.
fn first_digit_run(chars: &[char]) -> Option<String> {
    let first = chars.iter().position(char::is_ascii_digit)?;
    let mut digits = String::new();
    let mut position = first;
    while let Some(&c) = chars.get(position) {
        if c.is_ascii_digit() {
            digits.push(c);
            position += 1;
            continue;
        }
        let gap = chars[position..]
            .iter()
            .take_while(|&&c| c == ' ' || c == '-')
            .count();
        if gap > 0 && chars.get(position + gap).is_some_and(char::is_ascii_digit) {
            position += gap;
        } else {
            break;
        }
    }
    Some(digits)
}

/// The original text after the keyword's last character, tidied and
/// without leading punctuation.
fn description_after(text: &str, keyword_last: &FoldedChar) -> String {
    let rest = text::tidy(&text[keyword_last.origin.end..]);
    let is_punctuation =
        |c: char| c.is_ascii_punctuation() || (text::is_chinese(c) && !c.is_alphabetic());
    rest.trim_start_matches(|c: char| c == ' ' || is_punctuation(c))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::number::damm_digit;

    /// 555123456 with its Damm check digit.
    fn number() -> String {
        let digits = "555123456";
        let check = damm_digit(digits.bytes().map(|b| b - b'0'));
        format!("{digits}{check}")
    }

    fn valid() -> TicketRef {
        match number().parse() {
            Ok(number) => TicketRef::Valid(number),
            Err(error) => panic!("test number does not parse: {error}"),
        }
    }

    fn command(text: &str) -> Command {
        parse(text).command
    }

    fn full_width(ascii: &str) -> String {
        ascii
            .chars()
            .map(|c| match c {
                ' ' => '\u{3000}',
                '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
                _ => c,
            })
            .collect()
    }

    #[test]
    fn a_status_query_reads_the_ticket_number() {
        let n = number();
        assert_eq!(
            parse(&format!("查询 {n}")),
            ParsedCommand {
                command: Command::Status(Some(valid())),
                language: Language::Zh,
                language_is_default: false
            }
        );
        assert_eq!(
            parse(&format!("STATUS {n}")),
            ParsedCommand {
                command: Command::Status(Some(valid())),
                language: Language::En,
                language_is_default: false
            }
        );
    }

    #[test]
    fn a_full_width_ticket_number_is_read() {
        let n = number();
        let grouped = format!("{}-{}-{}", &n[..3], &n[3..7], &n[7..]);
        assert_eq!(
            parse(&format!("请帮我查询 {}，谢谢", full_width(&grouped))),
            ParsedCommand {
                command: Command::Status(Some(valid())),
                language: Language::Zh,
                language_is_default: false
            }
        );
        assert_eq!(
            command(&full_width(&format!("status {n}"))),
            Command::Status(Some(valid()))
        );
    }

    #[test]
    fn words_around_the_keyword_are_ignored() {
        let n = number();
        assert_eq!(
            command(&format!("Status of ticket {n} please")),
            Command::Status(Some(valid()))
        );
        assert_eq!(
            command(&format!("Hi! Can you check the STATUS: #{n}?")),
            Command::Status(Some(valid()))
        );
        assert_eq!(
            command(&format!("工单{n}查询一下")),
            Command::Status(Some(valid()))
        );
    }

    #[test]
    fn spaced_and_hyphenated_numbers_are_one_number() {
        let n = number();
        for written in [
            format!("{}-{}-{}", &n[..3], &n[3..7], &n[7..]),
            format!("{} {} {}", &n[..3], &n[3..7], &n[7..]),
            format!("{} - {} - {}", &n[..3], &n[3..7], &n[7..]),
            format!("{}\u{3000}{}", &n[..5], &n[5..]),
        ] {
            assert_eq!(
                command(&format!("查询 {written}")),
                Command::Status(Some(valid())),
                "{written}"
            );
        }
    }

    #[test]
    fn a_bare_status_query_asks_for_open_tickets() {
        assert_eq!(command("查询"), Command::Status(None));
        assert_eq!(command("status"), Command::Status(None));
        assert_eq!(command("  Status?  "), Command::Status(None));
        assert_eq!(parse("我的工单怎么样了，查询").language, Language::Zh);
    }

    #[test]
    fn a_wrong_check_digit_looks_mistyped_not_unknown() {
        let n = number();
        let last = n.as_bytes()[9] - b'0';
        let wrong = format!("{}{}", &n[..9], (last + 1) % 10);
        assert_eq!(
            command(&format!("status {wrong}")),
            Command::Status(Some(TicketRef::Mistyped(wrong.clone())))
        );
        assert_eq!(
            command(&format!("取消 {wrong}")),
            Command::Cancel(TicketRef::Mistyped(wrong))
        );
    }

    #[test]
    fn too_few_or_too_many_digits_are_malformed() {
        assert_eq!(
            command("status 555-1234"),
            Command::Status(Some(TicketRef::Malformed("5551234".to_string())))
        );
        let n = number();
        assert_eq!(
            command(&format!("status {n} {n}")),
            Command::Status(Some(TicketRef::Malformed(format!("{n}{n}"))))
        );
        assert_eq!(
            command(&format!("status {n}, {n}")),
            Command::Status(Some(valid()))
        );
    }

    #[test]
    fn a_fault_keeps_its_description() {
        assert_eq!(
            parse("报障：宽带断了，灯一直闪"),
            ParsedCommand {
                command: Command::Fault("宽带断了,灯一直闪".to_string()),
                language: Language::Zh,
                language_is_default: false
            }
        );
        assert_eq!(
            command("FAULT - Router is DOWN since 9am"),
            Command::Fault("Router is DOWN since 9am".to_string())
        );
        assert_eq!(
            command("ｆａｕｌｔ　ｎｏ　ｄｉａｌ　ｔｏｎｅ"),
            Command::Fault("no dial tone".to_string())
        );
        assert_eq!(command("报障"), Command::Fault(String::new()));
        assert_eq!(command("fault:  "), Command::Fault(String::new()));
    }

    #[test]
    fn a_complaint_keeps_its_description() {
        assert_eq!(
            command("我要投诉。。。维修员没来"),
            Command::Complaint("维修员没来".to_string())
        );
        assert_eq!(
            command("Complaint: nobody came"),
            Command::Complaint("nobody came".to_string())
        );
    }

    #[test]
    fn a_cancel_needs_a_number() {
        let n = number();
        assert_eq!(command(&format!("CANCEL {n}")), Command::Cancel(valid()));
        assert_eq!(command("取消"), Command::CancelWithoutNumber);
        assert_eq!(command("please cancel it"), Command::CancelWithoutNumber);
    }

    #[test]
    fn a_bare_yes_or_no_is_an_answer() {
        for yes in [
            "1",
            " 1。",
            "１",
            "是",
            "是！",
            "y",
            "Y",
            "yes",
            "YES!",
            "ｙｅｓ",
        ] {
            assert_eq!(command(yes), Command::Answer(true), "{yes}");
        }
        for no in ["2", "２.", "否", "否。", "n", "N", "no", "No.", "ＮＯ"] {
            assert_eq!(command(no), Command::Answer(false), "{no}");
        }
        for not_an_answer in ["12", "1 more thing", "yes please", "none", "3"] {
            assert!(
                !matches!(command(not_an_answer), Command::Answer(_)),
                "{not_an_answer}"
            );
        }
        assert_eq!(parse("是").language, Language::Zh);
        assert_eq!(parse("1").language, Language::En);
    }

    #[test]
    fn help_is_a_keyword_or_a_question_mark() {
        for help in ["帮助", "HELP", "help me", "?", "？", "??", "需要帮助"] {
            assert_eq!(command(help), Command::Help, "{help}");
        }
        assert_eq!(parse("？").language, Language::En);
        assert_eq!(parse("需要帮助").language, Language::Zh);
    }

    #[test]
    fn english_keywords_are_whole_words_only() {
        assert_eq!(command("statuses"), Command::Unknown);
        assert_eq!(command("helpful staff"), Command::Unknown);
        assert_eq!(command("default settings"), Command::Unknown);
        assert_eq!(command("cancelled"), Command::Unknown);
        let n = number();
        assert_eq!(
            command(&format!("STATUS{n}")),
            Command::Status(Some(valid()))
        );
        assert_eq!(
            command(&format!("查询status{n}")),
            Command::Status(Some(valid()))
        );
    }

    #[test]
    fn the_first_keyword_wins() {
        let n = number();
        assert_eq!(
            command(&format!("查询 {n} 不要取消")),
            Command::Status(Some(valid()))
        );
        assert_eq!(command(&format!("help me cancel {n}")), Command::Help);
        assert_eq!(
            command("fault: status light is red"),
            Command::Fault("status light is red".to_string())
        );
    }

    #[test]
    fn anything_else_is_unknown() {
        assert_eq!(
            parse(""),
            ParsedCommand {
                command: Command::Unknown,
                language: Language::En,
                language_is_default: true
            }
        );
        assert_eq!(command("   "), Command::Unknown);
        assert_eq!(parse("你好").language, Language::Zh);
        assert_eq!(command("你好"), Command::Unknown);
        assert_eq!(command(&number()), Command::Unknown);
    }

    #[test]
    fn digits_alone_do_not_say_which_language() {
        for neutral in ["1", "2", " 1. ", "２", &number()] {
            let parsed = parse(neutral);
            assert_eq!(parsed.language, Language::En, "{neutral}");
            assert!(parsed.language_is_default, "{neutral}");
        }
        for (chosen, language) in [
            ("是", Language::Zh),
            ("否", Language::Zh),
            ("1 谢谢", Language::Zh),
            ("yes", Language::En),
            ("N", Language::En),
            ("STATUS", Language::En),
        ] {
            let parsed = parse(chosen);
            assert_eq!(parsed.language, language, "{chosen}");
            assert!(!parsed.language_is_default, "{chosen}");
        }
    }
}
