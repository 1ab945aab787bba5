//! Blind transfer by REFER (RFC 3515) as pure text functions: the
//! Refer-To value that carries the call's context as URI headers (escaped
//! as RFC 3261 §19.1.1 asks), the User-to-User value of RFC 7433, and
//! reading what the transferee reports back in NOTIFY (`Event: refer`,
//! `Subscription-State`, a `message/sipfrag` status line).
//!
//! The endpoint keeps each transfer's state; nothing here keeps any, and
//! nothing here panics on what a peer sends.

use std::fmt::Write;

/// Escapes a URI header name or value: every byte but the unreserved and
/// `hnv-unreserved` characters of RFC 3261 §25.1 becomes `%XX`, so `;`,
/// `=`, `&`, `%`, `@`, `,`, `<`, `>`, spaces and non-ASCII text are all
/// carried safely inside the Refer-To.
pub fn escape_uri_header(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The Refer-To value `<target?Name=value&…>`: the target URI with
/// `headers` added as escaped URI headers (after any it already has).
pub fn refer_to(target: &str, headers: &[(&str, String)]) -> String {
    let mut uri = target.to_string();
    let mut separator = if target.contains('?') { '&' } else { '?' };
    for (name, value) in headers {
        uri.push(separator);
        separator = '&';
        uri.push_str(&escape_uri_header(name));
        uri.push('=');
        uri.push_str(&escape_uri_header(value));
    }
    format!("<{uri}>")
}

/// A User-to-User header value (RFC 7433): `data` hex-encoded, with
/// `;encoding=hex`.
pub fn user_to_user(data: &str) -> String {
    let mut out = String::with_capacity(data.len() * 2 + 13);
    for byte in data.bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out.push_str(";encoding=hex");
    out
}

/// Whether an Event value names the refer package (`refer`, `refer;id=7`).
pub fn is_refer_event(value: &str) -> bool {
    first_token_is(value, "refer")
}

/// Whether a Subscription-State value says the subscription has ended
/// (`terminated;reason=noresource`).
pub fn is_terminated(value: &str) -> bool {
    first_token_is(value, "terminated")
}

fn first_token_is(value: &str, token: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|first| first.trim().eq_ignore_ascii_case(token))
}

/// The status code of a `message/sipfrag` body's status line
/// (`SIP/2.0 486 Busy Here`); `None` when the body does not start with one.
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.trim_start().lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::headers::{percent_decode, NameAddr, Uri};

    #[test]
    fn uri_header_values_escape_separators_and_keep_hnv_unreserved() {
        assert_eq!(escape_uri_header("0123abc"), "0123abc");
        assert_eq!(escape_uri_header("a;b=c&d"), "a%3Bb%3Dc%26d");
        assert_eq!(escape_uri_header("100%"), "100%25");
        assert_eq!(escape_uri_header("a b,<c>@d"), "a%20b%2C%3Cc%3E%40d");
        assert_eq!(escape_uri_header("[x]/y?z:+$"), "[x]/y?z:+$");
        assert_eq!(escape_uri_header("张"), "%E5%BC%A0");
    }

    #[test]
    fn refer_to_carries_the_context_as_uri_headers_that_parse_back() {
        let value = refer_to(
            "sip:queue@127.0.0.1:5070",
            &[
                ("X-Ticket-Number", "2611230001".to_string()),
                ("User-to-User", user_to_user("ab")),
            ],
        );
        assert_eq!(
            value,
            "<sip:queue@127.0.0.1:5070?X-Ticket-Number=2611230001&User-to-User=6162%3Bencoding%3Dhex>"
        );
        let address = NameAddr::parse(&value).unwrap();
        let uri = Uri::parse(&address.uri).unwrap();
        assert_eq!(uri.host, "127.0.0.1");
        assert_eq!(uri.port, Some(5070));
        let headers = uri.headers.unwrap();
        let uui = headers.split('&').nth(1).unwrap();
        assert_eq!(
            percent_decode(uui).as_deref(),
            Some("User-to-User=6162;encoding=hex")
        );
    }

    #[test]
    fn refer_to_appends_to_headers_the_target_already_has() {
        assert_eq!(
            refer_to("sip:q@h?Priority=urgent", &[("X-A", "1".to_string())]),
            "<sip:q@h?Priority=urgent&X-A=1>"
        );
        assert_eq!(refer_to("sip:q@h", &[]), "<sip:q@h>");
    }

    #[test]
    fn notify_headers_and_sipfrag_status_lines_are_read_leniently() {
        assert!(is_refer_event("refer"));
        assert!(is_refer_event("Refer ; id=93809824"));
        assert!(!is_refer_event("dialog"));
        assert!(!is_refer_event("referral"));
        assert!(is_terminated("terminated;reason=noresource"));
        assert!(!is_terminated("active;expires=60"));
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_status(b"\r\nSIP/2.0 486 Busy Here"), Some(486));
        assert_eq!(
            sipfrag_status(b"SIP/2.0 100 Trying\r\nX: y\r\n\r\n"),
            Some(100)
        );
        assert_eq!(sipfrag_status(b"SIP/2.0 99 Low"), None);
        assert_eq!(sipfrag_status(b"INVITE sip:a@b SIP/2.0"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0"), None);
        assert_eq!(sipfrag_status(b"\xff\xfe"), None);
        assert_eq!(sipfrag_status(b""), None);
    }
}
