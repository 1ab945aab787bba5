//! Request checks that decide the status of a request that cannot be
//! processed as it stands (RFC 3261 §8.2 and the RFC 4475 torture cases):
//! `505` for another SIP version, `416` for an unknown Request-URI scheme,
//! `400` with a precise reason for malformed headers.
//!
//! These checks run before transaction matching; method, dialog and
//! extension checks (`405`, `501`, `481`, `482`, `420`) need state and live in
//! the endpoint.

use super::headers::{CSeq, NameAddr, Uri, Via};
use super::message::Message;

/// A request the gateway answers with an error without going further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: u16,
    pub reason: String,
}

impl Rejection {
    fn bad(reason: impl Into<String>) -> Rejection {
        Rejection {
            code: 400,
            reason: reason.into(),
        }
    }
}

/// Headers that may appear at most once in a request.
const SINGLE_VALUED: &[&str] = &[
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

/// Headers without which no response can be routed or matched.
const MANDATORY: &[&str] = &["Via", "From", "To", "Call-ID", "CSeq"];

/// Checks a parsed request. `stream` is true for TCP, where the framing
/// already guaranteed the body length.
pub fn check_request(msg: &Message) -> Result<(), Rejection> {
    let (method, uri, version) = match &msg.start {
        super::message::StartLine::Request {
            method,
            uri,
            version,
        } => (method, uri, version),
        super::message::StartLine::Response { .. } => return Err(Rejection::bad("Not a request")),
    };
    // The version first: another version's request is judged by that
    // version's rules (its Via may well say SIP/7.0 too; RFC 4475 badvers).
    // Only a well-formed SIP-Version earns 505; anything else (trailing
    // SP, RFC 4475 trws) makes the Request-Line malformed.
    if !is_sip_version(version) {
        return Err(Rejection::bad("Malformed Request-Line"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(Rejection {
            code: 505,
            reason: "Version Not Supported".to_string(),
        });
    }
    for name in MANDATORY {
        if !msg.has_header(name) {
            return Err(Rejection::bad(format!("Missing {name} header")));
        }
    }
    for name in SINGLE_VALUED {
        if msg.header_lines(name).nth(1).is_some() {
            return Err(Rejection::bad(format!("Multiple {name} headers")));
        }
    }
    for value in msg.header_values("Via") {
        Via::parse(value).map_err(|reason| Rejection::bad(format!("Bad Via header: {reason}")))?;
    }
    for name in ["From", "To"] {
        let value = msg.header(name).unwrap_or_default();
        NameAddr::parse(value)
            .map_err(|reason| Rejection::bad(format!("Bad {name} header: {reason}")))?;
    }
    if msg.header("Call-ID").is_some_and(str::is_empty) {
        return Err(Rejection::bad("Empty Call-ID header"));
    }
    let cseq = CSeq::parse(msg.header("CSeq").unwrap_or_default())
        .map_err(|reason| Rejection::bad(format!("Bad CSeq header: {reason}")))?;
    if cseq.method != method.as_str() {
        return Err(Rejection::bad(
            "CSeq method does not match the request method",
        ));
    }
    if let Some(max_forwards) = msg.header("Max-Forwards") {
        let valid = !max_forwards.is_empty()
            && max_forwards.bytes().all(|b| b.is_ascii_digit())
            && max_forwards.parse::<u8>().is_ok();
        if !valid {
            return Err(Rejection::bad("Bad Max-Forwards header"));
        }
    }
    match msg.declared_content_length() {
        Some(Err(())) => return Err(Rejection::bad("Bad Content-Length header")),
        Some(Ok(len)) if len > msg.body.len() => {
            return Err(Rejection::bad("Content-Length is larger than the body"));
        }
        _ => {}
    }
    for name in ["Contact", "Route", "Record-Route"] {
        for value in msg.header_values(name) {
            NameAddr::parse(value)
                .map_err(|reason| Rejection::bad(format!("Bad {name} header: {reason}")))?;
        }
    }
    let request_uri =
        Uri::parse(uri).map_err(|reason| Rejection::bad(format!("Bad Request-URI: {reason}")))?;
    if !request_uri.is_sip() && request_uri.scheme != "tel" {
        return Err(Rejection {
            code: 416,
            reason: "Unsupported URI Scheme".to_string(),
        });
    }
    if request_uri.headers.is_some() {
        return Err(Rejection::bad("Request-URI must not carry headers"));
    }
    Ok(())
}

/// `SIP/` 1*DIGIT `.` 1*DIGIT (RFC 3261 §25.1; "SIP" is case-insensitive).
fn is_sip_version(version: &str) -> bool {
    let Some((major, minor)) = version
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and_then(|_| version[4..].split_once('.'))
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// Checks a response before it is matched to a client transaction; a bad
/// response is dropped, never answered.
pub fn check_response(msg: &Message) -> Result<(), &'static str> {
    for name in MANDATORY {
        if !msg.has_header(name) {
            return Err("response misses a mandatory header");
        }
    }
    let top_via = msg
        .header_values("Via")
        .next()
        .ok_or("response without Via")?;
    Via::parse(top_via)?;
    CSeq::parse(msg.header("CSeq").unwrap_or_default())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: &str, start: &str) -> Message {
        let text = format!(
            "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
             To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).unwrap()
    }

    fn status(extra: &str, start: &str) -> Result<(), u16> {
        check_request(&request(extra, start)).map_err(|r| r.code)
    }

    #[test]
    fn accepts_a_good_request() {
        assert_eq!(status("", "OPTIONS sip:c@d SIP/2.0"), Ok(()));
    }

    #[test]
    fn answers_505_for_another_version() {
        assert_eq!(status("", "OPTIONS sip:c@d SIP/7.0"), Err(505));
    }

    #[test]
    fn version_is_judged_before_the_headers() {
        // RFC 4475 badvers: the Via says SIP/7.0 as well.
        let msg = Message::parse(
            b"OPTIONS sip:t@example.org SIP/7.0\r\nVia: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n\
              From: <sip:a@b>;tag=1\r\nTo: <sip:t@example.org>\r\nCall-ID: v\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(check_request(&msg).map_err(|r| r.code), Err(505));
    }

    #[test]
    fn answers_400_for_a_malformed_version() {
        // RFC 4475 trws: SP after the version leaves an empty version.
        assert_eq!(status("", "OPTIONS sip:c@d SIP/2.0  "), Err(400));
        assert_eq!(status("", "OPTIONS sip:c@d SIP/2"), Err(400));
        assert_eq!(status("", "OPTIONS sip:c@d sip/2.0"), Ok(()));
    }

    #[test]
    fn answers_416_for_an_unknown_scheme() {
        assert_eq!(
            status("", "OPTIONS soap.beep://192.0.2.1:3002 SIP/2.0"),
            Err(416)
        );
    }

    #[test]
    fn answers_400_for_a_mismatched_cseq_or_duplicate_header() {
        assert_eq!(status("", "INFO sip:c@d SIP/2.0"), Err(400));
        assert_eq!(
            status("Call-ID: y\r\n", "OPTIONS sip:c@d SIP/2.0"),
            Err(400)
        );
        assert_eq!(status("", "OPTIONS <sip:c@d> SIP/2.0"), Err(400));
        assert_eq!(status("", "OPTIONS sip:c@d; lr SIP/2.0"), Err(400));
    }

    #[test]
    fn reason_names_the_missing_header() {
        let msg = Message::parse(
            b"OPTIONS sip:c@d SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        let rejection = check_request(&msg).unwrap_err();
        assert_eq!(rejection.reason, "Missing From header");
    }
}
