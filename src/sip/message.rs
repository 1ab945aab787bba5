//! SIP messages: a tolerant parser and a serialiser.
//!
//! The parser accepts everything RFC 3261 §25 allows (header folding, compact
//! names, any whitespace around `:`, extension methods, escaped URIs) and only
//! fails when it cannot find a start line and headers at all. Semantic checks
//! that decide between `400`, `416`, `505` and friends live in `validate.rs`,
//! so that even a bad request still yields enough headers to build a response.
//!
//! Header values are kept as text; typed views (`Via`, `NameAddr`, `CSeq`) are
//! parsed on demand by `headers.rs`. No I/O happens here.

use bytes::Bytes;
use std::fmt;

/// Largest message the gateway accepts on any transport. RFC 3261 sets no
/// limit; 64 KiB is far above any real signalling message and bounds memory.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

/// A SIP request method; extension methods are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Refer,
    Notify,
    Subscribe,
    Message,
    Prack,
    Publish,
    Extension(String),
}

impl Method {
    /// Parses a method token (case-sensitive, as RFC 3261 §7.1 requires).
    pub fn from_token(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PRACK" => Method::Prack,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Prack => "PRACK",
            Method::Publish => "PUBLISH",
            Method::Extension(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        uri: String,
        version: String,
    },
    Response {
        version: String,
        code: u16,
        reason: String,
    },
}

/// One header field: its name (compact forms expanded to the full name) and
/// its unfolded value with surrounding whitespace trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Bytes,
}

/// Why bytes could not be read as a SIP message at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message is incomplete")]
    Incomplete,
    #[error("message is larger than {MAX_MESSAGE_SIZE} bytes")]
    TooLarge,
    #[error("{0}")]
    Malformed(&'static str),
}

/// Full header names for the compact forms of RFC 3261 §7.3.3 and extensions.
fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        _ => return None,
    })
}

/// Canonical spelling of well-known header names, so that what we send looks
/// like what every other SIP stack sends, whatever case the peer used.
fn canonical_name(name: &str) -> String {
    const KNOWN: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
        "Route",
        "Record-Route",
        "Require",
        "Supported",
        "Unsupported",
        "Allow",
        "Accept",
        "User-Agent",
        "Server",
        "Retry-After",
        "Proxy-Require",
        "Event",
        "Refer-To",
        "Referred-By",
        "Subscription-State",
        "Warning",
        "Reason",
    ];
    if let Some(full) = expand_compact(name) {
        return full.to_string();
    }
    KNOWN
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |known| (*known).to_string())
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True when `s` is a non-empty RFC 3261 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Finds the end of the header section: the index just past the empty line.
/// Accepts CRLFCRLF and, tolerantly, bare LFLF.
pub fn header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(pos) = memchr::memchr(b'\n', &buf[i..]) {
        let nl = i + pos;
        let rest = &buf[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        if rest.starts_with(b"\n") {
            return Some(nl + 2);
        }
        i = nl + 1;
    }
    None
}

/// Splits the header section into logical lines, joining folded
/// continuation lines (RFC 3261 §7.3.1) with a single space.
fn unfold_lines(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::with_capacity(16);
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                let continued = line.trim();
                if !continued.is_empty() {
                    last.push(' ');
                    last.push_str(continued);
                }
                continue;
            }
        }
        lines.push(line.to_string());
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let mut parts = rest.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts
            .next()
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok())
            // "099" is three digits but no status (classes are 1xx-6xx);
            // it would be written back as "99".
            .filter(|&code| code >= 100)
            .ok_or(ParseError::Malformed("bad status code"))?;
        let reason = parts.next().unwrap_or_default();
        return Ok(StartLine::Response {
            version: format!("SIP/{version}"),
            code,
            reason: reason.to_string(),
        });
    }
    let (method, rest) = line
        .split_once(' ')
        .ok_or(ParseError::Malformed("bad request line"))?;
    let (uri, version) = rest
        .rsplit_once(' ')
        .ok_or(ParseError::Malformed("bad request line"))?;
    if !is_token(method) {
        return Err(ParseError::Malformed("bad method"));
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.to_string(),
        version: version.to_string(),
    })
}

impl Message {
    /// Parses one complete message. For datagrams, bytes past the declared
    /// Content-Length are ignored (RFC 3261 §18.3); a body shorter than the
    /// declared length is left short and reported by validation.
    pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge);
        }
        let start = buf
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .ok_or(ParseError::Incomplete)?;
        let buf = &buf[start..];
        let (head, body) = match header_end(buf) {
            Some(end) => (&buf[..end], &buf[end..]),
            // A datagram may end right after its last header without the
            // empty line (RFC 4475 baddn); treat it as having no body.
            None => (buf, &buf[buf.len()..]),
        };
        let head = std::str::from_utf8(head)
            .map_err(|_| ParseError::Malformed("headers are not UTF-8"))?;
        let mut lines = unfold_lines(head).into_iter();
        let first = lines.next().ok_or(ParseError::Incomplete)?;
        let start = parse_start_line(&first)?;
        let mut headers = Vec::with_capacity(16);
        for line in lines {
            if line.is_empty() {
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or(ParseError::Malformed("header line without a colon"))?;
            let name = name.trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return Err(ParseError::Malformed("bad header name"));
            }
            headers.push(Header {
                name: canonical_name(name),
                value: value.trim_matches([' ', '\t']).to_string(),
            });
        }
        let mut message = Message {
            start,
            headers,
            body: Bytes::new(),
        };
        let body = match message.declared_content_length() {
            Some(Ok(len)) if len <= body.len() => &body[..len],
            _ => body,
        };
        message.body = Bytes::copy_from_slice(body);
        Ok(message)
    }

    /// The Content-Length header: `None` when absent, `Some(Err)` when it is
    /// not a plain decimal number that fits.
    pub fn declared_content_length(&self) -> Option<Result<usize, ()>> {
        let value = self.header("Content-Length")?;
        Some(
            value
                .parse::<usize>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(()),
        )
    }

    /// A new request with the given start line and no headers.
    pub fn request(method: Method, uri: impl Into<String>) -> Message {
        Message {
            start: StartLine::Request {
                method,
                uri: uri.into(),
                version: "SIP/2.0".to_string(),
            },
            headers: Vec::with_capacity(12),
            body: Bytes::new(),
        }
    }

    /// A new response with the given status and no headers.
    pub fn response(code: u16, reason: impl Into<String>) -> Message {
        Message {
            start: StartLine::Response {
                version: "SIP/2.0".to_string(),
                code,
                reason: reason.into(),
            },
            headers: Vec::with_capacity(12),
            body: Bytes::new(),
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every header line with this name, in order.
    pub fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated value of a list header (Via, Route, Contact, …),
    /// across all its lines, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_lines(name).flat_map(split_list)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn push_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push(Header {
            name: name.to_string(),
            value: value.into(),
        });
    }

    /// Replaces every header of this name with one value (or adds it).
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .headers
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name))
        {
            Some(first) => {
                self.headers[first].value = value;
                let mut index = 0;
                self.headers.retain(|h| {
                    index += 1;
                    index - 1 == first || !h.name.eq_ignore_ascii_case(name)
                });
            }
            None => self.push_header(name, value),
        }
    }

    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// Sets the body and its Content-Type.
    pub fn set_body(&mut self, content_type: &str, body: impl Into<Bytes>) {
        self.set_header("Content-Type", content_type);
        self.body = body.into();
    }

    /// Serialises the message; Content-Length is always written from the
    /// body actually carried.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(512 + self.body.len());
        match &self.start {
            StartLine::Request {
                method,
                uri,
                version,
            } => {
                out.extend_from_slice(method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(uri.as_bytes());
                out.push(b' ');
                out.extend_from_slice(version.as_bytes());
            }
            StartLine::Response {
                version,
                code,
                reason,
            } => {
                out.extend_from_slice(version.as_bytes());
                out.extend_from_slice(format!(" {code} ").as_bytes());
                out.extend_from_slice(reason.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        for header in &self.headers {
            if header.name.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.extend_from_slice(header.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(header.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }
}

/// The media type of a Content-Type or Accept value, without parameters,
/// lower-cased: `Application/SDP; charset=x` → `application/sdp`.
pub fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Splits a header value on commas that are outside quotes and angle
/// brackets, trimming each element; empty elements are kept so that
/// validation can reject them.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    split_outside_quotes(value, ',', true)
        .into_iter()
        .map(str::trim)
}

/// Splits `text` at `separator` where it is not inside a quoted string
/// (honouring backslash escapes) nor, when `brackets` is set, inside
/// `<…>`. Parts are not trimmed.
pub fn split_outside_quotes(text: &str, separator: char, brackets: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if brackets && !in_quotes => in_angle = true,
            '>' if brackets && !in_quotes => in_angle = false,
            c if c == separator && !in_quotes && !in_angle => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// How a stream transport finds message boundaries: the length of the first
/// complete message in `buf`, or `None` if more bytes are needed.
/// Leading CRLF keep-alives (RFC 5626) are counted into the message length
/// and skipped by the parser.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(end) = header_end(buf) else {
        if buf.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge);
        }
        return Ok(None);
    };
    let total = message_len(&buf[..end])?;
    Ok((buf.len() >= total).then_some(total))
}

/// The whole length of a message whose head (start line and headers, up
/// to and including the blank line) is `head`: the head plus its
/// Content-Length (0 when absent). Errs when that exceeds the size limit
/// or the Content-Length is not a number.
pub fn message_len(head: &[u8]) -> Result<usize, ParseError> {
    let mut content_length = 0usize;
    // The start line is no header, whatever it holds (a method may well
    // be "Content-Length"); keep-alive CRLFs may come before it.
    let lines = head
        .split(|&b| b == b'\n')
        .skip_while(|line| line.trim_ascii().is_empty())
        .skip(1);
    for line in lines {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = std::str::from_utf8(line[colon + 1..].trim_ascii())
                .map_err(|_| ParseError::Malformed("bad Content-Length"))?;
            content_length = value
                .parse()
                .map_err(|_| ParseError::Malformed("bad Content-Length"))?;
        }
    }
    head.len()
        .checked_add(content_length)
        .filter(|&t| t <= MAX_MESSAGE_SIZE)
        .ok_or(ParseError::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:10000@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:10000@127.0.0.1>\r\n\
        Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn parses_a_plain_request() {
        let msg = Message::parse(OPTIONS.as_bytes()).unwrap();
        assert_eq!(msg.method(), Some(&Method::Options));
        assert_eq!(msg.request_uri(), Some("sip:10000@127.0.0.1"));
        assert_eq!(msg.header("call-id"), Some("c1"));
        assert_eq!(msg.header("CSEQ"), Some("1 OPTIONS"));
        assert!(msg.body.is_empty());
    }

    #[test]
    fn unfolds_continuation_lines_and_expands_compact_names() {
        let text = "INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h\r\n ;branch=z9hG4bKx\r\ni: abc\r\nl: 0\r\n\r\n";
        let msg = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(msg.header("Via"), Some("SIP/2.0/UDP h ;branch=z9hG4bKx"));
        assert_eq!(msg.header("Call-ID"), Some("abc"));
        assert_eq!(msg.headers[1].name, "Call-ID");
    }

    #[test]
    fn keeps_extension_methods() {
        let text = "NEWMETHOD sip:a@b SIP/2.0\r\nl: 0\r\n\r\n";
        let msg = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(msg.method(), Some(&Method::Extension("NEWMETHOD".into())));
    }

    #[test]
    fn datagram_bytes_beyond_content_length_are_ignored() {
        let text = "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcdef";
        let msg = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(&msg.body[..], b"abc");
    }

    #[test]
    fn parses_a_response() {
        let text = "SIP/2.0 180 Ringing\r\nl: 0\r\n\r\n";
        let msg = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(msg.status(), Some(180));
    }

    #[test]
    fn a_status_code_below_100_is_malformed() {
        // Found by the sip_message fuzz target: "099" was read as 99 and
        // serialised as "SIP/2.0 99", which no longer parsed.
        let response = b"SIP/2.0 099 Odd\r\nCall-ID: c\r\n\r\n";
        assert_eq!(
            Message::parse(response),
            Err(ParseError::Malformed("bad status code"))
        );
        let response = Message::parse(b"SIP/2.0 100 Trying\r\n\r\n").unwrap();
        assert_eq!(response.status(), Some(100));
    }

    #[test]
    fn rejects_header_without_colon() {
        let text = "OPTIONS sip:a@b SIP/2.0\r\nnot a header\r\n\r\n";
        assert!(matches!(
            Message::parse(text.as_bytes()),
            Err(ParseError::Malformed(_))
        ));
    }

    #[test]
    fn serialises_with_fresh_content_length() {
        let mut msg = Message::parse(OPTIONS.as_bytes()).unwrap();
        msg.set_body("text/plain", Bytes::from_static(b"hello"));
        let again = Message::parse(&msg.to_bytes()).unwrap();
        assert_eq!(again.header("Content-Length"), Some("5"));
        assert_eq!(&again.body[..], b"hello");
    }

    #[test]
    fn splits_lists_outside_quotes_and_brackets() {
        let parts: Vec<_> = split_list(r#""a, b" <sip:x;p=1,2>, <sip:y>"#).collect();
        assert_eq!(parts, vec![r#""a, b" <sip:x;p=1,2>"#, "<sip:y>"]);
    }

    #[test]
    fn frames_several_messages_and_partial_reads() {
        let two = format!("{OPTIONS}{OPTIONS}");
        let len = stream_frame_len(two.as_bytes()).unwrap().unwrap();
        assert_eq!(len, OPTIONS.len());
        assert_eq!(stream_frame_len(&OPTIONS.as_bytes()[..40]).unwrap(), None);
        let with_body = "MESSAGE sip:a@b SIP/2.0\r\nl: 4\r\n\r\nab";
        assert_eq!(stream_frame_len(with_body.as_bytes()).unwrap(), None);
    }

    #[test]
    fn framing_ignores_the_start_line() {
        // Found by the sip_message fuzz target: a request whose method is
        // "Content-Length" and whose URI starts with a colon was framed by
        // its start line and refused as "bad Content-Length".
        let request = b"\r\nContent-Length :17 x\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(stream_frame_len(request), Ok(Some(request.len())));
        assert!(Message::parse(request).is_ok());
    }

    #[test]
    fn set_header_replaces_all_lines() {
        let mut msg = Message::request(Method::Info, "sip:a@b");
        msg.push_header("X", "1");
        msg.push_header("Y", "2");
        msg.push_header("x", "3");
        msg.set_header("X", "9");
        assert_eq!(msg.header_lines("X").collect::<Vec<_>>(), vec!["9"]);
        assert_eq!(msg.headers.len(), 2);
    }
}
