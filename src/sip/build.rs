//! Building responses and outgoing Via headers, and deciding where a
//! response goes (RFC 3261 §8.2.6, §18.2.2 and RFC 3581 `rport`).

use super::headers::{Param, Via};
use super::message::Message;
use std::net::SocketAddr;

/// Standard reason phrases for the statuses the gateway sends.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// A fresh random token for tags and branches.
pub fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The To tag for a response sent without a transaction. RFC 3261
/// §8.2.6.2 wants a tag on every final response to a request without one,
/// and §8.2.7 wants a stateless UAS to give the same request the same tag,
/// so it is derived from the request (with a per-process random key).
pub fn stateless_tag(request: &Message) -> String {
    use std::hash::{BuildHasher, Hash, Hasher};
    use std::sync::OnceLock;
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut hasher = KEY.get_or_init(Default::default).build_hasher();
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        request.header(name).hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

/// A new RFC 3261 branch with the magic cookie.
pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_token())
}

/// The Via we put on requests we send.
pub fn our_via(transport: &str, local: SocketAddr, branch: &str) -> String {
    format!("SIP/2.0/{transport} {local};branch={branch};rport")
}

/// Writes a Via back, with `received` and `rport` filled in for the source
/// the request really came from (RFC 3261 §18.2.1, RFC 3581 §4).
fn stamp_via(value: &str, source: SocketAddr) -> String {
    let Ok(mut via) = Via::parse(value) else {
        return value.to_string();
    };
    let source_ip = source.ip().to_string();
    let mut stamped = false;
    for param in &mut via.params {
        if param.name.eq_ignore_ascii_case("rport") && param.value.is_none() {
            param.value = Some(source.port().to_string());
            stamped = true;
        }
    }
    let host_matches = via.host.trim_start_matches('[').trim_end_matches(']') == source_ip;
    if (stamped || !host_matches) && !via.has_param("received") {
        via.params.push(Param {
            name: "received".to_string(),
            value: Some(source_ip),
        });
    }
    let mut out = format!("SIP/2.0/{} {}", via.transport, via.sent_by());
    for param in &via.params {
        out.push(';');
        out.push_str(&param.name);
        if let Some(value) = &param.value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// Builds a response to `request` (RFC 3261 §8.2.6.2): Via, From, To,
/// Call-ID and CSeq copied, our tag added to To when the request had none.
/// Headers the request lacks are left out, so that even a broken request
/// gets an answer.
pub fn response_to(
    request: &Message,
    source: SocketAddr,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> Message {
    let mut response = Message::response(code, reason);
    let mut first = true;
    for via in request.header_values("Via") {
        let value = if first {
            stamp_via(via, source)
        } else {
            via.to_string()
        };
        first = false;
        response.push_header("Via", value);
    }
    for name in ["From", "Call-ID", "CSeq"] {
        if let Some(value) = request.header(name) {
            response.push_header(name, value);
        }
    }
    if let Some(to) = request.header("To") {
        let has_tag = super::headers::NameAddr::parse(to).is_ok_and(|t| t.tag().is_some());
        match to_tag {
            Some(tag) if !has_tag && code > 100 => {
                response.push_header("To", format!("{to};tag={tag}"))
            }
            _ => response.push_header("To", to),
        }
    }
    response
}

/// Where to send a response to a request that arrived from `source`:
/// over UDP to the source address, at the `rport`/source port when the
/// client asked for it (RFC 3581) or else at the Via port. Over TCP the
/// response goes on the request's connection (the caller keeps its id);
/// the address returned is where to reconnect if that connection is gone:
/// the source IP at the Via port (RFC 3261 §18.2.2).
pub fn response_destination(source: SocketAddr, top_via: &Via, reliable: bool) -> SocketAddr {
    if !reliable && top_via.has_param("rport") {
        return source;
    }
    let default_port = if top_via.transport.eq_ignore_ascii_case("TLS") {
        5061
    } else {
        5060
    };
    SocketAddr::new(source.ip(), top_via.port.unwrap_or(default_port))
}

/// A last-resort header scan for bytes the parser refused: if they start
/// with a request line and carry a Via, returns a `400` naming the reason,
/// built from whatever Via/From/To/Call-ID/CSeq lines can be found.
pub fn scan_for_bad_request(bytes: &[u8], source: SocketAddr, reason: &str) -> Option<Message> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let first = lines.next()?.trim_end();
    if first.starts_with("SIP/") || !first.ends_with("SIP/2.0") || first.starts_with("ACK ") {
        return None;
    }
    let mut request = Message::request(super::message::Method::Options, "sip:invalid");
    for line in lines.take_while(|l| !l.trim().is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => "Via",
            "from" | "f" => "From",
            "to" | "t" => "To",
            "call-id" | "i" => "Call-ID",
            "cseq" => "CSeq",
            _ => continue,
        };
        request.push_header(name, value.trim());
    }
    request
        .header_values("Via")
        .next()
        .and_then(|v| Via::parse(v).ok())?;
    let tag = stateless_tag(&request);
    Some(response_to(&request, source, 400, reason, Some(&tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[test]
    fn rport_and_received_are_stamped_on_the_top_via() {
        let stamped = stamp_via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport", source());
        assert_eq!(
            stamped,
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=40000;received=127.0.0.1"
        );
        let same_host = stamp_via("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1", source());
        assert_eq!(same_host, "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1");
    }

    #[test]
    fn response_copies_the_dialog_headers_and_adds_a_tag() {
        let request = Message::parse(
            b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP p\r\n\
              From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        let response = response_to(&request, source(), 200, "OK", Some("t9"));
        assert_eq!(response.header_lines("Via").count(), 2);
        assert_eq!(response.header("To"), Some("<sip:a@b>;tag=t9"));
        assert_eq!(response.header("CSeq"), Some("2 BYE"));
        let trying = response_to(&request, source(), 100, "Trying", Some("t9"));
        assert_eq!(trying.header("To"), Some("<sip:a@b>"));
    }

    #[test]
    fn responses_go_to_the_via_port_unless_rport() {
        let via = Via::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1").unwrap();
        assert_eq!(response_destination(source(), &via, false).port(), 5070);
        let via = Via::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(response_destination(source(), &via, false).port(), 40000);
        assert_eq!(
            response_destination(source(), &via, true).port(),
            5070,
            "over TCP a lost connection is reopened to the Via port"
        );
    }

    #[test]
    fn scan_builds_a_400_from_a_broken_request() {
        let bytes = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\ngarbage line\r\nCall-ID: c\r\n\r\n";
        let response =
            scan_for_bad_request(bytes, source(), "Header line without a colon").unwrap();
        assert_eq!(response.status(), Some(400));
        assert_eq!(response.header("Call-ID"), Some("c"));
        assert!(scan_for_bad_request(b"\x00\x01garbage", source(), "x").is_none());
    }
}
