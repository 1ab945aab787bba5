//! Property tests for the SMS core: no text makes the command parser panic,
//! full-width typing changes nothing, any valid ticket number however it is
//! spaced is read back, any single-digit typo is reported as mistyped, and
//! a cut reply always fits in its segments.

use hotline::sms::command::{parse, Command, TicketRef};
use hotline::sms::segments::{fit, segments};
use hotline::tickets::number::{damm_digit, TicketNumber, LENGTH};
use proptest::prelude::*;

/// A valid ticket number's digits from nine arbitrary leading digits.
fn valid_digits() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=9, proptest::collection::vec(0u8..=9, LENGTH - 2)).prop_map(|(first, rest)| {
        let mut digits = vec![first];
        digits.extend(rest);
        let check = damm_digit(digits.iter().copied());
        digits.push(check);
        digits
    })
}

fn text(digits: &[u8]) -> String {
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// Printable ASCII rewritten in full width, space as U+3000.
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

/// `digits` written with a separator (none, spaces, hyphens) after each
/// digit but the last, each digit in ASCII or full width.
fn written(digits: &[u8], gaps: &[&str], wide: &[bool]) -> String {
    let mut out = String::new();
    for (index, digit) in digits.iter().enumerate() {
        let ascii = char::from(b'0' + digit);
        if wide[index] {
            out.push_str(&full_width(&ascii.to_string()));
        } else {
            out.push(ascii);
        }
        if index + 1 < digits.len() {
            out.push_str(gaps[index]);
        }
    }
    out
}

fn gaps() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(
        prop_oneof![
            4 => Just(""),
            1 => Just(" "),
            1 => Just("-"),
            1 => Just(" - "),
            1 => Just("\u{3000}"),
        ],
        LENGTH - 1,
    )
}

/// ASCII messages that hit the commands' paths: a keyword in some case,
/// words and punctuation around it, maybe a number.
fn ascii_command() -> impl Strategy<Value = String> {
    (
        "[a-z ]{0,12}",
        prop_oneof![
            Just("status"),
            Just("STATUS"),
            Just("Fault"),
            Just("complaint"),
            Just("cancel"),
            Just("help"),
            Just("yes"),
            Just("N"),
            Just("1"),
            Just("?"),
            Just("statuses"),
        ],
        "[ :,.!-]{0,3}",
        "[0-9 -]{0,16}",
        "[ -~]{0,20}",
    )
        .prop_map(|(before, keyword, punctuation, number, after)| {
            format!("{before}{keyword}{punctuation}{number}{after}")
        })
}

/// Characters a reply is made of: GSM-7 letters, spaces and extension
/// characters, Latin letters outside GSM-7, Chinese, and emoji.
const ALPHABET: [char; 24] = [
    'a', 'b', 'c', 'x', 'y', 'z', 'A', '0', '9', ' ', ' ', '.', '€', '[', '~', '^', '|', 'é', 'á',
    '工', '单', '号', '😀', '🙏',
];

/// Mostly-GSM texts, sometimes with a non-GSM character, up to 600 long.
/// (Indices into an alphabet: generating each char from a union strategy
/// is ten times slower.)
fn sms_text() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(0usize..18, 0..600),
        proptest::collection::vec((0usize..600, 0usize..ALPHABET.len()), 0..3),
    )
        .prop_map(|(gsm, others)| {
            let mut chars: Vec<char> = gsm.into_iter().map(|index| ALPHABET[index]).collect();
            for (position, index) in others {
                chars.insert(position.min(chars.len()), ALPHABET[index]);
            }
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_text_parses_without_panicking(message in any::<String>()) {
        let _ = parse(&message);
    }

    #[test]
    fn texts_made_of_keywords_digits_and_punctuation_parse_without_panicking(
        message in "(查询|报障|投诉|取消|帮助|status|fault|cancel|help|是|否|[0-9０-９]|[ \\-，。：？?、]|ﬁ|\u{200B}|.){0,40}"
    ) {
        let _ = parse(&message);
    }

    #[test]
    fn full_width_typing_reads_the_same(message in ascii_command()) {
        prop_assert_eq!(parse(&full_width(&message)), parse(&message), "{}", message);
    }

    #[test]
    fn full_width_printable_ascii_reads_the_same(message in "[ -~]{0,80}") {
        prop_assert_eq!(parse(&full_width(&message)), parse(&message), "{}", message);
    }

    #[test]
    fn a_valid_number_however_spaced_is_read(
        digits in valid_digits(),
        gaps in gaps(),
        wide in proptest::collection::vec(any::<bool>(), LENGTH),
        template in 0usize..7,
        after in 0usize..4,
    ) {
        let number: TicketNumber = text(&digits).parse().map_err(|error| {
            TestCaseError::fail(format!("{error}"))
        })?;
        let written = written(&digits, &gaps, &wide);
        let befores = ["查询 ", "查询", "请帮我查询 ", "status ", "STATUS ", "Status of ticket ", "ｓｔａｔｕｓ："];
        let afters = ["", "，谢谢", " please", "?"];
        let message = format!("{}{written}{}", befores[template], afters[after]);
        prop_assert_eq!(
            parse(&message).command,
            Command::Status(Some(TicketRef::Valid(number))),
            "{}", message
        );
    }

    #[test]
    fn any_single_digit_change_is_mistyped(
        digits in valid_digits(),
        position in 0..LENGTH,
        shift in 1u8..=9,
        gaps in gaps(),
        chinese in any::<bool>(),
    ) {
        let mut wrong = digits.clone();
        wrong[position] = (wrong[position] + shift) % 10;
        let keyword = if chinese { "查询 " } else { "status " };
        let message = format!("{keyword}{}", written(&wrong, &gaps, &[false; LENGTH]));
        prop_assert_eq!(
            parse(&message).command,
            Command::Status(Some(TicketRef::Mistyped(text(&wrong)))),
            "{}", message
        );
    }

    #[test]
    fn a_cut_reply_fits(message in sms_text(), max in 0usize..5) {
        let fitted = fit(&message, max);
        prop_assert!(segments(&fitted) <= max, "{} segments > {}", segments(&fitted), max);
        if segments(&message) <= max {
            prop_assert_eq!(&fitted, &message);
        } else if max > 0 {
            let kept = fitted
                .strip_suffix("...")
                .or_else(|| fitted.strip_suffix('…'))
                .ok_or_else(|| TestCaseError::fail("a cut reply ends in a mark"))?;
            prop_assert!(message.starts_with(kept));
        }
    }
}
