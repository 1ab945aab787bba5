//! Calls transferred into the IVR by an agent (to `survey`, `status`, …):
//! what their INVITE says about where they come from. A pure function of
//! the message; the runner looks the ticket up and the engine loads it
//! before the first node.
//!
//! The ticket number is taken from the first of these that is present:
//! 1. the `X-Ticket-Number` header;
//! 2. the Request-URI parameter `ticket` (`sip:survey@gw;ticket=…`);
//! 3. the `User-to-User` header (RFC 7433; hex, the payload either the
//!    number or `ticket=<number>`, after an optional ISDN protocol
//!    discriminator byte).
//!
//! A number whose check digit is wrong is kept as `Mistyped` and never
//! looked up; later sources are not consulted then, so that one INVITE
//! cannot name two tickets. `Referred-By` (RFC 3892) says who transferred
//! the call. Nothing here trusts the peer: every value is bounded and
//! anything unreadable is simply absent.

use crate::sip::headers::{NameAddr, Uri};
use crate::sip::message::Message;
use crate::tickets::number::{TicketNumber, TicketNumberError};
use std::fmt;

/// Longest ticket reference or transferrer kept from the INVITE.
const MAX_TEXT: usize = 128;

/// What a transferred-in call's INVITE says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransferContext {
    pub ticket: TicketReference,
    /// Who transferred the call: the Referred-By URI's user part (an agent
    /// id such as `agent7`), or the whole URI when it has none.
    pub referred_by: Option<String>,
}

/// The ticket an INVITE names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TicketReference {
    #[default]
    None,
    Valid(TicketNumber),
    /// Named, but not a ticket number (wrong check digit, length or
    /// characters): `text` as given (bounded), and why.
    Mistyped {
        source: &'static str,
        text: String,
        reason: TicketNumberError,
    },
}

impl fmt::Display for TicketReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TicketReference::None => f.write_str("-"),
            TicketReference::Valid(number) => write!(f, "{number}"),
            TicketReference::Mistyped {
                source,
                text,
                reason,
            } => write!(f, "{text:?} in {source} ({reason})"),
        }
    }
}

impl TransferContext {
    /// Whether the INVITE said anything that makes it a transferred call.
    pub fn is_transfer(&self) -> bool {
        self.ticket != TicketReference::None || self.referred_by.is_some()
    }
}

/// Reads the transfer context of an INVITE.
pub fn from_invite(invite: &Message) -> TransferContext {
    TransferContext {
        ticket: ticket_reference(invite),
        referred_by: invite.header("Referred-By").and_then(referred_by),
    }
}

fn ticket_reference(invite: &Message) -> TicketReference {
    let sources: [(&'static str, Option<String>); 3] = [
        (
            "X-Ticket-Number",
            invite.header("X-Ticket-Number").map(str::to_string),
        ),
        ("Request-URI ticket", uri_ticket(invite)),
        (
            "User-to-User",
            invite.header("User-to-User").and_then(user_to_user),
        ),
    ];
    let Some((source, text)) = sources
        .into_iter()
        .find_map(|(source, text)| text.map(|t| (source, t)))
    else {
        return TicketReference::None;
    };
    match text.parse::<TicketNumber>() {
        Ok(number) => TicketReference::Valid(number),
        Err(reason) => TicketReference::Mistyped {
            source,
            text: text.chars().take(MAX_TEXT).collect(),
            reason,
        },
    }
}

fn uri_ticket(invite: &Message) -> Option<String> {
    let uri = Uri::parse(invite.request_uri()?).ok()?;
    uri.param("ticket")?.value.clone()
}

/// The ticket number in a `User-to-User` value, if it carries one.
fn user_to_user(value: &str) -> Option<String> {
    let (data, params) = value.split_once(';').unwrap_or((value, ""));
    let hex = params
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("encoding"))
        .is_none_or(|(_, encoding)| encoding.trim().eq_ignore_ascii_case("hex"));
    if !hex {
        return None;
    }
    let data = data.trim().trim_matches('"');
    if data.len() % 2 != 0 || data.len() > 2 * MAX_TEXT {
        return None;
    }
    let mut bytes = (0..data.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(data.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    // ISDN UUI starts with a protocol discriminator (4 = IA5 text).
    if bytes.first().is_some_and(|b| *b < 0x20) {
        bytes.remove(0);
    }
    let text = String::from_utf8(bytes).ok()?;
    let text = text.trim();
    let number = text
        .split(['&', ';'])
        .find_map(|pair| pair.trim().strip_prefix("ticket="))
        .unwrap_or(text);
    (!number.is_empty()).then(|| number.to_string())
}

fn referred_by(value: &str) -> Option<String> {
    let address = NameAddr::parse(value).ok()?;
    let uri = Uri::parse(&address.uri).ok()?;
    let who = uri.user.filter(|u| !u.is_empty()).unwrap_or(address.uri);
    let printable = who.chars().all(|c| !c.is_control());
    (printable && !who.is_empty() && who.chars().count() <= MAX_TEXT).then_some(who)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::number::damm_digit;

    /// A valid number: 123456789 and its check digit.
    fn valid() -> String {
        format!("123456789{}", damm_digit([1, 2, 3, 4, 5, 6, 7, 8, 9]))
    }

    fn mistyped() -> String {
        let check = damm_digit([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        format!("123456789{}", (check + 1) % 10)
    }

    fn invite(uri: &str, headers: &[&str]) -> Message {
        let mut text = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:13800138000@10.0.0.1>;tag=a\r\nTo: <{uri}>\r\nCall-ID: c1\r\n\
             CSeq: 1 INVITE\r\n"
        );
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(text.as_bytes()).expect("test INVITE parses")
    }

    fn number(text: &str) -> TicketReference {
        TicketReference::Valid(text.parse().unwrap())
    }

    #[test]
    fn a_plain_call_has_no_transfer_context() {
        let context = from_invite(&invite("sip:10000@gw", &[]));
        assert_eq!(context, TransferContext::default());
        assert!(!context.is_transfer());
    }

    #[test]
    fn the_ticket_header_and_referred_by_are_read() {
        let context = from_invite(&invite(
            "sip:survey@gw",
            &[
                format!("X-Ticket-Number: {}", valid()).as_str(),
                "Referred-By: \"Agent Seven\" <sip:agent7@pbx.example>;cid=1",
            ],
        ));
        assert_eq!(context.ticket, number(&valid()));
        assert_eq!(context.referred_by.as_deref(), Some("agent7"));
        assert!(context.is_transfer());
    }

    #[test]
    fn the_compact_referred_by_and_a_uri_without_user_are_read() {
        let context = from_invite(&invite("sip:survey@gw", &["b: <sip:pbx.example>"]));
        assert_eq!(context.referred_by.as_deref(), Some("sip:pbx.example"));
        assert_eq!(context.ticket, TicketReference::None);
        assert!(context.is_transfer());
    }

    #[test]
    fn a_number_written_with_hyphens_is_accepted() {
        let v = valid();
        let context = from_invite(&invite(
            "sip:survey@gw",
            &[format!("x-ticket-number:  {}-{}-{} ", &v[..3], &v[3..7], &v[7..]).as_str()],
        ));
        assert_eq!(context.ticket, number(&v));
    }

    #[test]
    fn the_request_uri_parameter_is_used_without_a_header() {
        let context = from_invite(&invite(&format!("sip:survey@gw;ticket={}", valid()), &[]));
        assert_eq!(context.ticket, number(&valid()));
    }

    #[test]
    fn user_to_user_carries_the_number_in_hex() {
        let hex = |text: &str| text.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        for (value, expected) in [
            (hex(&valid()), Some(valid())),
            (format!("04{}", hex(&valid())), Some(valid())),
            (
                format!(
                    "{};encoding=hex;purpose=isdn-uui",
                    hex(&format!("ticket={}", valid()))
                ),
                Some(valid()),
            ),
            (format!("{};encoding=base64", hex(&valid())), None),
            ("zz".to_string(), None),
            ("abc".to_string(), None),
        ] {
            let context = from_invite(&invite(
                "sip:survey@gw",
                &[format!("User-to-User: {value}").as_str()],
            ));
            let want = expected.map_or(TicketReference::None, |n| number(&n));
            assert_eq!(context.ticket, want, "{value}");
        }
    }

    #[test]
    fn the_header_wins_over_the_uri_even_when_mistyped() {
        let context = from_invite(&invite(
            &format!("sip:survey@gw;ticket={}", valid()),
            &[format!("X-Ticket-Number: {}", mistyped()).as_str()],
        ));
        assert_eq!(
            context.ticket,
            TicketReference::Mistyped {
                source: "X-Ticket-Number",
                text: mistyped(),
                reason: TicketNumberError::CheckDigit,
            }
        );
    }

    #[test]
    fn garbage_is_mistyped_and_bounded() {
        let long = "9".repeat(5_000);
        let context = from_invite(&invite(
            "sip:survey@gw",
            &[format!("X-Ticket-Number: {long}").as_str()],
        ));
        let TicketReference::Mistyped { text, reason, .. } = context.ticket else {
            panic!("not mistyped: {:?}", context.ticket);
        };
        assert_eq!(text.len(), MAX_TEXT);
        assert_eq!(reason, TicketNumberError::WrongLength(5_000));
        let context = from_invite(&invite("sip:survey@gw", &["X-Ticket-Number: 12ab"]));
        assert!(matches!(
            context.ticket,
            TicketReference::Mistyped {
                reason: TicketNumberError::NotDigits,
                ..
            }
        ));
    }

    #[test]
    fn an_unreadable_referred_by_is_absent() {
        let long = format!("<sip:{}@pbx>", "a".repeat(200));
        for value in ["not an address", "<sip:agent7@pbx", long.as_str()] {
            let header = format!("Referred-By: {value}");
            let context = from_invite(&invite("sip:survey@gw", &[header.as_str()]));
            assert_eq!(context.referred_by, None, "{value}");
        }
    }
}
