//! RFC 4475 torture messages against a running gateway.
//!
//! Every message of RFC 4475 §3 (`tests/data/rfc4475/`, byte-exact from the
//! RFC's archive) is sent to an in-process server, and the first final
//! response is checked against [`CASES`]: what the RFC expects of an
//! endpoint (UAS) for that message, narrowed by the gateway's documented
//! policies where the RFC leaves a choice. At the end the server must still
//! answer an OPTIONS and shut down promptly (no call left behind).
//!
//! Before a message is sent it is rewritten, and nothing else is touched:
//!
//! * the top Via sent-by becomes the test socket's own address, so that
//!   responses come back to the test (branch and parameters untouched);
//! * addresses from 192.0.2.0/24 anywhere, and any other non-loopback IPv4
//!   address used as a Via sent-by or in an SDP `c=` line, become
//!   127.0.0.1: no test traffic, and no RTP from the gateway, ever leaves
//!   loopback;
//! * when the message's Content-Length was exact and the body rewrite
//!   changed the body length, Content-Length follows (a deliberately wrong
//!   Content-Length, as in `clerr`, `ncl`, `mcl01` or `dblreq`, is kept).
//!
//! Transport: a message whose top Via says TCP (`intmeth`, `esc02`,
//! `longreq`, `scalar02`, `scalarlg`, `trws`, `unkscm`, `novelsc`,
//! `regaut01`) goes over TCP to the TCP listener, one connection per
//! message, with its ACK and BYE on the same connection; everything else
//! goes over UDP, with a non-UDP Via transport (`bext01`'s TLS) rewritten
//! to UDP.
//!
//! Besides the status, each final response must belong to the request (top
//! Via branch, Call-ID, CSeq) and carry what RFC 3261 requires of it: a To
//! tag, Allow on 405, the unknown option tags in Unsupported on 420, Accept
//! on 415, an SDP answer and a Contact on a 200 to INVITE.
//!
//! Messages run concurrently, each from its own socket, so that their
//! transactions cannot interfere (several share a branch). Answered INVITEs
//! are ACKed and hung up with BYE; other final responses to INVITEs get the
//! ACK of RFC 3261 §17.1.1.3. A failing run lists every message whose
//! outcome differs from the table, not just the first.

use hotline::config::Config;
use hotline::server::Server;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// How long a message may take to be answered (and how long a message that
/// must not be answered is watched).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// After the exchange, how long to keep listening for stray responses.
const LINGER: Duration = Duration::from_millis(400);

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly this final status.
    Status(u16),
    /// Any of these final statuses: the RFC permits each of them.
    OneOf(&'static [u16]),
    /// No response at all, and no crash.
    NoReply,
}

struct Case {
    file: &'static str,
    section: &'static str,
    expect: Expect,
}

const fn case(file: &'static str, section: &'static str, expect: Expect) -> Case {
    Case {
        file,
        section,
        expect,
    }
}

use Expect::{NoReply, OneOf, Status};

/// File → expected outcome for a UAS. The gateway implements INVITE, ACK,
/// BYE, CANCEL, OPTIONS, INFO and UPDATE; other known methods get 405,
/// unknown ones 501. Valid INVITEs with an acceptable offer are answered
/// 200 (the test then ACKs and hangs up).
const CASES: &[Case] = &[
    // §3.1.1 Valid messages: each must be processed, never answered 400.
    //
    // An INVITE with a To tag for a dialog we do not have: 481
    // (RFC 3261 §12.2.2), after parsing all the odd whitespace.
    case("wsinv", "3.1.1.1", Status(481)),
    // An unknown (extension) method: 501 (RFC 3261 §8.2.1).
    case("intmeth", "3.1.1.2", Status(501)),
    case("esc01", "3.1.1.3", Status(200)),
    // REGISTER is known but not implemented: 405 with Allow.
    case("escnull", "3.1.1.4", Status(405)),
    // `RE%47IST%45R` is not REGISTER but an unknown method: 501.
    case("esc02", "3.1.1.5", Status(501)),
    case("lwsdisp", "3.1.1.6", Status(200)),
    case("longreq", "3.1.1.7", Status(200)),
    // The REGISTER is answered (405); the INVITE after Content-Length 0
    // in the same datagram is ignored (checked: no response for it).
    case("dblreq", "3.1.1.8", Status(405)),
    case("semiuri", "3.1.1.9", Status(200)),
    case("transports", "3.1.1.10", Status(200)),
    // MESSAGE is known but not implemented.
    case("mpart01", "3.1.1.11", Status(405)),
    // Responses that match no transaction are dropped.
    case("unreason", "3.1.1.12", NoReply),
    case("noreason", "3.1.1.13", NoReply),
    // §3.1.2 Invalid messages.
    case("badinv01", "3.1.2.1", Status(400)),
    // Content-Length larger than the datagram: 400 over UDP.
    case("clerr", "3.1.2.2", Status(400)),
    case("ncl", "3.1.2.3", Status(400)),
    // "should respond with a 400 Bad Request due to the CSeq error".
    case("scalar02", "3.1.2.4", Status(400)),
    case("scalarlg", "3.1.2.5", NoReply),
    case("quotbal", "3.1.2.6", Status(400)),
    case("ltgtruri", "3.1.2.7", Status(400)),
    case("lwsruri", "3.1.2.8", Status(400)),
    // Extra SP in the Request-Line: rejecting as malformed and ignoring
    // the extra SP are both acceptable.
    case("lwsstart", "3.1.2.9", OneOf(&[400, 200])),
    case("trws", "3.1.2.10", OneOf(&[400, 200])),
    // Escaped headers in the Request-URI: reject, or ignore them.
    case("escruri", "3.1.2.11", OneOf(&[400, 200])),
    // Non-GMT Date: reject, or ignore the Date header.
    case("baddate", "3.1.2.12", OneOf(&[400, 200])),
    // A REGISTER with a broken Contact: 400 if the syntax is noticed
    // first, 405 if the method is.
    case("regbadct", "3.1.2.13", OneOf(&[400, 405])),
    case("badaspec", "3.1.2.14", Status(400)),
    case("baddn", "3.1.2.15", Status(400)),
    case("badvers", "3.1.2.16", Status(505)),
    case("mismatch01", "3.1.2.17", Status(400)),
    // "should respond with 501 ... a 400 is also acceptable".
    case("mismatch02", "3.1.2.18", OneOf(&[501, 400])),
    case("bigcode", "3.1.2.19", NoReply),
    // §3.2 Transaction layer: a branch of just the magic cookie may be
    // rejected with 400 or processed.
    case("badbranch", "3.2.1", OneOf(&[400, 200])),
    // §3.3 Application layer.
    case("insuf", "3.3.1", Status(400)),
    case("unkscm", "3.3.2", Status(416)),
    case("novelsc", "3.3.3", Status(416)),
    // Unknown schemes in To/From/Contact are fine; REGISTER is not
    // implemented.
    case("unksm2", "3.3.4", Status(405)),
    // Require with unknown option tags: 420 listing them in Unsupported;
    // Proxy-Require is for proxies.
    case("bext01", "3.3.5", Status(420)),
    case("invut", "3.3.6", Status(415)),
    case("regaut01", "3.3.7", Status(405)),
    case("multi01", "3.3.8", Status(400)),
    case("mcl01", "3.3.9", Status(400)),
    // A response: dropped. (Its second Via, 255.255.255.255, is rewritten
    // to loopback like every other Via address; a UAS never routes
    // responses by Via anyway.)
    case("bcast", "3.3.10", NoReply),
    // Max-Forwards 0 on OPTIONS: an endpoint processes it.
    case("zeromf", "3.3.11", Status(200)),
    case("cparam01", "3.3.12", Status(405)),
    case("cparam02", "3.3.13", Status(405)),
    case("regescrt", "3.3.14", Status(405)),
    // Accept without application/sdp: 406.
    case("sdp01", "3.3.15", Status(406)),
    // §3.4 Backward compatibility: an RFC 2543 INVITE is accepted.
    case("inv2543", "3.4.1", Status(200)),
];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Udp,
    Tcp,
}

// ---------------------------------------------------------------------------
// Looking into raw messages.

/// One header in a raw header section: its name and the byte range of its
/// value, continuation lines included.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    start: usize,
    end: usize,
}

/// Splits raw bytes into the header section (including the empty line)
/// and the body. Without an empty line (`baddn`) it is all headers.
fn split_message(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => bytes.split_at(i + 4),
        None => (bytes, &bytes[bytes.len()..]),
    }
}

/// The headers of a raw header section, compact names expanded, lower case.
fn header_spans(head: &[u8]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut pos = 0;
    let mut first = true;
    while pos < head.len() {
        let line_end = head[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len(), |i| pos + i + 1);
        let mut content_end = line_end;
        while content_end > pos && matches!(head[content_end - 1], b'\r' | b'\n') {
            content_end -= 1;
        }
        let line = &head[pos..content_end];
        if first {
            first = false;
        } else if line.is_empty() {
            break;
        } else if matches!(line[0], b' ' | b'\t') {
            if let Some(last) = spans.last_mut() {
                last.end = content_end;
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon])
                .trim()
                .to_ascii_lowercase();
            spans.push(Span {
                name: expand_compact(&name).to_string(),
                start: pos + colon + 1,
                end: content_end,
            });
        }
        pos = line_end;
    }
    spans
}

fn expand_compact(name: &str) -> &str {
    match name {
        "i" => "call-id",
        "f" => "from",
        "t" => "to",
        "v" => "via",
        "l" => "content-length",
        "c" => "content-type",
        "m" => "contact",
        "k" => "supported",
        other => other,
    }
}

/// A header value with folding undone the way RFC 3261 §7.3.1 reads it:
/// each line break with its surrounding whitespace becomes one space.
fn unfold(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if i == 0 {
            out.push_str(line.trim());
        } else if !line.trim().is_empty() {
            out.push(' ');
            out.push_str(line.trim());
        }
    }
    out
}

fn header<'a>(spans: &'a [Span], name: &str) -> Option<&'a Span> {
    spans.iter().find(|s| s.name == name)
}

fn branch_of(via: &str) -> Option<String> {
    via.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| value.trim().to_string())
    })
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Byte ranges of the transport token and of the sent-by in a raw Via
/// value (`SIP / 2.0 / UDP host:port;...`, any LWS around the slashes).
fn via_parts(value: &[u8]) -> Option<((usize, usize), (usize, usize))> {
    let skip_lws = |mut i: usize| {
        while i < value.len() && is_lws(value[i]) {
            i += 1;
        }
        i
    };
    let skip_until = |mut i: usize, stop: &dyn Fn(u8) -> bool| {
        while i < value.len() && !stop(value[i]) {
            i += 1;
        }
        i
    };
    let mut i = skip_lws(0);
    i = skip_until(i, &|b| b == b'/' || is_lws(b)); // SIP
    i = skip_lws(i);
    (value.get(i) == Some(&b'/')).then_some(())?;
    i = skip_lws(i + 1);
    i = skip_until(i, &|b| b == b'/' || is_lws(b)); // version
    i = skip_lws(i);
    (value.get(i) == Some(&b'/')).then_some(())?;
    let transport_start = skip_lws(i + 1);
    let transport_end = skip_until(transport_start, &is_lws);
    let sent_by_start = skip_lws(transport_end);
    let sent_by_end = if value.get(sent_by_start) == Some(&b'[') {
        let close = skip_until(sent_by_start, &|b| b == b']');
        skip_until(close, &|b| b == b';' || b == b',' || is_lws(b))
    } else {
        skip_until(sent_by_start, &|b| b == b';' || b == b',' || is_lws(b))
    };
    (transport_end > transport_start && sent_by_end > sent_by_start).then_some((
        (transport_start, transport_end),
        (sent_by_start, sent_by_end),
    ))
}

/// Dotted-quad IPv4 literals in `bytes`, with their ranges.
fn ipv4_literals(bytes: &[u8]) -> Vec<(usize, usize, Ipv4Addr)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
            end += 1;
        }
        let followed_by_name = bytes.get(end).is_some_and(|b| b.is_ascii_alphabetic());
        let text = std::str::from_utf8(&bytes[i..end]).unwrap_or_default();
        if let (false, Ok(ip)) = (followed_by_name, text.parse::<Ipv4Addr>()) {
            found.push((i, end, ip));
        }
        i = end;
    }
    found
}

fn replace_ranges(bytes: &[u8], mut edits: Vec<(usize, usize, Vec<u8>)>) -> Vec<u8> {
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    for (start, end, with) in edits {
        out.extend_from_slice(&bytes[pos..start]);
        out.extend_from_slice(&with);
        pos = end;
    }
    out.extend_from_slice(&bytes[pos..]);
    out
}

fn rewrite_ips(bytes: &[u8], targets: &BTreeSet<Ipv4Addr>) -> Vec<u8> {
    let edits = ipv4_literals(bytes)
        .into_iter()
        .filter(|(_, _, ip)| targets.contains(ip))
        .map(|(start, end, _)| (start, end, b"127.0.0.1".to_vec()))
        .collect();
    replace_ranges(bytes, edits)
}

fn is_documentation(ip: Ipv4Addr) -> bool {
    ip.octets()[..3] == [192, 0, 2]
}

/// The transport a raw message goes over: TCP if its top Via says TCP.
fn kind_of(raw: &[u8]) -> Kind {
    let (head, _) = split_message(raw);
    let spans = header_spans(head);
    let Some(via) = header(&spans, "via") else {
        return Kind::Udp;
    };
    let value = &head[via.start..via.end];
    match via_parts(value) {
        Some(((t0, t1), _)) if value[t0..t1].eq_ignore_ascii_case(b"TCP") => Kind::Tcp,
        _ => Kind::Udp,
    }
}

/// A message ready to send, and what the test needs to know about it.
struct Prepared {
    bytes: Vec<u8>,
    is_request: bool,
    method: String,
    request_uri: String,
    call_id: Option<String>,
    cseq: Option<String>,
    top_via: Option<String>,
    to_has_tag: bool,
    require: Vec<String>,
}

/// Applies the rewrites described at the top of this file.
fn prepare(raw: &[u8], local: SocketAddr, kind: Kind) -> Prepared {
    let (head, body) = split_message(raw);
    let spans = header_spans(head);

    // Which addresses to take off the wire.
    let mut targets: BTreeSet<Ipv4Addr> = ipv4_literals(raw)
        .into_iter()
        .map(|(_, _, ip)| ip)
        .filter(|&ip| is_documentation(ip))
        .collect();
    for via in spans.iter().filter(|s| s.name == "via") {
        targets.extend(
            ipv4_literals(&head[via.start..via.end])
                .into_iter()
                .map(|(_, _, ip)| ip)
                .filter(|ip| !ip.is_loopback()),
        );
    }
    for line in body.split(|&b| b == b'\n').filter(|l| l.starts_with(b"c=")) {
        targets.extend(
            ipv4_literals(line)
                .into_iter()
                .map(|(_, _, ip)| ip)
                .filter(|ip| !ip.is_loopback()),
        );
    }

    // The top Via: our address, and UDP unless we really use TCP.
    let mut edits = Vec::new();
    if let Some(via) = header(&spans, "via") {
        if let Some(((t0, t1), (s0, s1))) = via_parts(&head[via.start..via.end]) {
            let transport = &head[via.start + t0..via.start + t1];
            let wanted: &[u8] = if kind == Kind::Tcp { b"TCP" } else { b"UDP" };
            if !transport.eq_ignore_ascii_case(wanted) {
                edits.push((via.start + t0, via.start + t1, wanted.to_vec()));
            }
            edits.push((
                via.start + s0,
                via.start + s1,
                local.to_string().into_bytes(),
            ));
        }
    }
    let new_head = rewrite_ips(&replace_ranges(head, edits), &targets);
    let new_body = rewrite_ips(body, &targets);

    // Content-Length follows the body only where it was exact.
    let mut new_head = new_head;
    let declared = header(&spans, "content-length")
        .map(|s| unfold(&head[s.start..s.end]))
        .and_then(|v| v.parse::<usize>().ok());
    if declared == Some(body.len()) && new_body.len() != body.len() {
        let spans = header_spans(&new_head);
        let cl = header(&spans, "content-length").expect("Content-Length is still there");
        let value = &new_head[cl.start..cl.end];
        let digits_start = cl.start + value.iter().take_while(|b| is_lws(**b)).count();
        let digits_end = digits_start
            + new_head[digits_start..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        new_head = replace_ranges(
            &new_head,
            vec![(
                digits_start,
                digits_end,
                new_body.len().to_string().into_bytes(),
            )],
        );
    }

    let mut bytes = new_head;
    bytes.extend_from_slice(&new_body);
    for (_, _, ip) in ipv4_literals(&bytes) {
        assert!(
            !is_documentation(ip),
            "rewrite left {ip} in the message for {local}"
        );
    }
    describe(bytes)
}

/// What the test needs to know about a (rewritten) message.
fn describe(bytes: Vec<u8>) -> Prepared {
    let (head, _) = split_message(&bytes);
    let spans = header_spans(head);
    let start_line = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or(b""))
        .trim()
        .to_string();
    let mut words = start_line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let request_uri = words.next().unwrap_or_default().to_string();
    let value = |name: &str| header(&spans, name).map(|s| unfold(&head[s.start..s.end]));
    let top_via = value("via").map(|v| v.split(',').next().unwrap_or_default().trim().to_string());
    let require = spans
        .iter()
        .filter(|s| s.name == "require")
        .flat_map(|s| {
            unfold(&head[s.start..s.end])
                .split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    Prepared {
        is_request: !start_line.starts_with("SIP/"),
        method,
        request_uri,
        call_id: value("call-id"),
        cseq: value("cseq"),
        to_has_tag: value("to").is_some_and(|to| has_tag(&to)),
        top_via,
        require,
        bytes,
    }
}

fn has_tag(name_addr: &str) -> bool {
    // Parameters of the header follow the closing '>' (or the whole value
    // for an addr-spec).
    let params = name_addr.rsplit_once('>').map_or(name_addr, |(_, p)| p);
    params.split(';').skip(1).any(|p| {
        p.split_once('=')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("tag"))
    })
}

// ---------------------------------------------------------------------------
// Responses, read independently of the gateway's own parser.

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(bytes: &[u8]) -> Option<Response> {
        let (head, body) = split_message(bytes);
        let spans = header_spans(head);
        let first = head.split(|&b| b == b'\n').next()?;
        let first = std::str::from_utf8(first).ok()?;
        let mut words = first.split_whitespace();
        if !words.next()?.eq_ignore_ascii_case("SIP/2.0") {
            return None;
        }
        let status = words.next()?.parse().ok()?;
        Some(Response {
            status,
            headers: spans
                .iter()
                .map(|s| (s.name.clone(), unfold(&head[s.start..s.end])))
                .collect(),
            body: body.to_vec(),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn cseq_is(&self, cseq: &str) -> bool {
        let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        self.header("cseq").map(words) == Some(words(cseq))
    }

    /// True when this response belongs to the request (RFC 3261 §17.1.3:
    /// top Via branch and CSeq; Call-ID too for good measure).
    fn answers(&self, request: &Prepared) -> bool {
        let same_call = match &request.call_id {
            Some(call_id) => self.header("call-id") == Some(call_id.as_str()),
            None => true,
        };
        let same_cseq = request.cseq.as_deref().is_none_or(|c| self.cseq_is(c));
        let same_branch = match request.top_via.as_deref().and_then(branch_of) {
            Some(branch) => self.header("via").and_then(branch_of) == Some(branch),
            None => true,
        };
        same_call && same_cseq && same_branch
    }
}

/// The URI inside a Contact value.
fn contact_uri(contact: &str) -> Option<&str> {
    let start = contact.find('<')? + 1;
    let end = start + contact[start..].find('>')?;
    Some(&contact[start..end])
}

// ---------------------------------------------------------------------------
// The test's end of the wire.

/// Where the gateway listens.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    udp: SocketAddr,
    tcp: SocketAddr,
}

enum Link {
    Udp {
        socket: UdpSocket,
        server: SocketAddr,
    },
    Tcp {
        stream: TcpStream,
        buffer: Vec<u8>,
    },
}

impl Link {
    async fn open(kind: Kind, server: Addrs) -> Link {
        match kind {
            Kind::Udp => Link::Udp {
                socket: UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP"),
                server: server.udp,
            },
            Kind::Tcp => Link::Tcp {
                stream: TcpStream::connect(server.tcp).await.expect("connect TCP"),
                buffer: Vec::new(),
            },
        }
    }

    fn local_addr(&self) -> SocketAddr {
        match self {
            Link::Udp { socket, .. } => socket.local_addr(),
            Link::Tcp { stream, .. } => stream.local_addr(),
        }
        .expect("local address")
    }

    fn via_transport(&self) -> &'static str {
        match self {
            Link::Udp { .. } => "UDP",
            Link::Tcp { .. } => "TCP",
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        match self {
            Link::Udp { socket, server } => {
                assert!(server.ip().is_loopback());
                socket.send_to(bytes, *server).await.expect("send UDP");
            }
            Link::Tcp { stream, .. } => stream.write_all(bytes).await.expect("send TCP"),
        }
    }

    /// The next message, or `None` at the deadline (or when the
    /// connection closes).
    async fn recv(&mut self, deadline: Instant) -> Option<Vec<u8>> {
        match self {
            Link::Udp { socket, server } => loop {
                let mut buf = vec![0u8; 65_536];
                let (len, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                if from == *server {
                    buf.truncate(len);
                    return Some(buf);
                }
            },
            Link::Tcp { stream, buffer } => loop {
                if let Some(len) = frame_len(buffer) {
                    return Some(buffer.drain(..len).collect());
                }
                let mut chunk = [0u8; 8192];
                let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
                    .await
                    .ok()?
                    .ok()?;
                if read == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..read]);
            },
        }
    }
}

/// Length of the first complete message in a stream buffer.
fn frame_len(buffer: &[u8]) -> Option<usize> {
    let end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let spans = header_spans(&buffer[..end]);
    let length = header(&spans, "content-length")
        .map(|s| unfold(&buffer[s.start..s.end]))
        .map_or(Some(0), |v| v.parse::<usize>().ok())?;
    (buffer.len() >= end + length).then_some(end + length)
}

// ---------------------------------------------------------------------------
// Running one message.

#[derive(Debug)]
struct Outcome {
    status: Option<u16>,
    problems: Vec<String>,
}

impl Outcome {
    fn matches(&self, expect: Expect) -> bool {
        let status_ok = match expect {
            Status(code) => self.status == Some(code),
            OneOf(codes) => self.status.is_some_and(|s| codes.contains(&s)),
            NoReply => self.status.is_none(),
        };
        status_ok && self.problems.is_empty()
    }
}

async fn run_case(case: &Case, server: Addrs) -> Outcome {
    let raw = std::fs::read(data_dir().join(format!("{}.dat", case.file))).expect("read message");
    let kind = kind_of(&raw);
    let mut link = Link::open(kind, server).await;
    let request = prepare(&raw, link.local_addr(), kind);
    let mut problems = Vec::new();
    link.send(&request.bytes).await;

    // The first final response, 100 Trying ignored.
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut last = None;
    while let Some(bytes) = link.recv(deadline).await {
        let Some(response) = Response::parse(&bytes) else {
            problems.push(format!(
                "received something that is not a response: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
            ));
            continue;
        };
        if !request.is_request || !response.answers(&request) {
            problems.push(format!(
                "unexpected {} (Call-ID {:?}, CSeq {:?})",
                response.status,
                response.header("call-id"),
                response.header("cseq"),
            ));
            continue;
        }
        if response.status >= 200 {
            last = Some(response);
            break;
        }
    }
    let Some(response) = last else {
        return Outcome {
            status: None,
            problems,
        };
    };
    check_response(&request, &response, &mut problems);

    // Close the INVITE transaction, and the call if there is one.
    if request.method == "INVITE" {
        if response.status < 300 {
            hang_up(&mut link, &request, &response, &mut problems).await;
        } else {
            ack_failure(&mut link, &request, &response).await;
        }
    }

    // Anything else arriving now is a stray (e.g. an answer to the INVITE
    // hidden in dblreq's body). Retransmissions of what we had are fine.
    let deadline = Instant::now() + LINGER;
    while let Some(bytes) = link.recv(deadline).await {
        match Response::parse(&bytes) {
            Some(again) if again.answers(&request) && again.status == response.status => {}
            Some(again) if again.header("cseq").is_some_and(|c| c.ends_with("BYE")) => {}
            Some(other) => problems.push(format!(
                "stray {} (Call-ID {:?}, CSeq {:?}) after the final response",
                other.status,
                other.header("call-id"),
                other.header("cseq"),
            )),
            None => problems.push("stray non-response after the final response".to_string()),
        }
    }
    Outcome {
        status: Some(response.status),
        problems,
    }
}

/// What RFC 3261 requires of particular responses.
fn check_response(request: &Prepared, response: &Response, problems: &mut Vec<String>) {
    let status = response.status;
    // §8.2.6.2: a tag on every final response to a request without one.
    if request.cseq.is_some()
        && !request.to_has_tag
        && response.header("to").is_some_and(|to| !has_tag(to))
    {
        problems.push(format!("{status} without a To tag"));
    }
    match status {
        // §8.2.1: 405 lists the allowed methods.
        405 if response.header("allow").is_none() => {
            problems.push("405 without Allow".to_string());
        }
        // §8.2.2.3: 420 lists the unsupported option tags.
        420 => {
            let unsupported = response.header("unsupported").unwrap_or_default();
            for tag in &request.require {
                if !unsupported.split(',').any(|t| t.trim() == tag) {
                    problems.push(format!("420 does not list {tag} in Unsupported"));
                }
            }
        }
        // §8.2.3 and §21.4.13: 415 says what is accepted.
        415 if response.header("accept").is_none() => {
            problems.push("415 without Accept".to_string());
        }
        200 if request.method == "INVITE" => {
            let sdp = response
                .header("content-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("application/sdp"));
            if !sdp || response.body.is_empty() {
                problems.push("200 to INVITE without an SDP answer".to_string());
            }
            if response.header("contact").and_then(contact_uri).is_none() {
                problems.push("200 to INVITE without a Contact".to_string());
            }
        }
        _ => {}
    }
}

/// ACKs a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3): same
/// Request-URI and top Via as the INVITE. Best effort: a malformed INVITE
/// makes for a malformed ACK, which the gateway ignores.
async fn ack_failure(link: &mut Link, request: &Prepared, response: &Response) {
    let (Some(via), Some(from), Some(to), Some(call_id), Some(cseq)) = (
        request.top_via.as_deref(),
        response.header("from"),
        response.header("to"),
        response.header("call-id"),
        response.header("cseq"),
    ) else {
        return;
    };
    let seq = cseq.split_whitespace().next().unwrap_or("1");
    let ack = format!(
        "ACK {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {seq} ACK\r\nContent-Length: 0\r\n\r\n",
        request.request_uri
    );
    link.send(ack.as_bytes()).await;
}

/// ACKs a 2xx to an INVITE and ends the call with BYE, which must get 200.
async fn hang_up(
    link: &mut Link,
    request: &Prepared,
    response: &Response,
    problems: &mut Vec<String>,
) {
    let (Some(target), Some(from), Some(to), Some(call_id), Some(cseq)) = (
        response.header("contact").and_then(contact_uri),
        response.header("from"),
        response.header("to"),
        response.header("call-id"),
        response.header("cseq"),
    ) else {
        problems.push("cannot hang up: the 200 lacks dialog headers".to_string());
        return;
    };
    let Some(seq) = cseq
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<u32>().ok())
    else {
        problems.push(format!("cannot hang up: bad CSeq {cseq:?} in the 200"));
        return;
    };
    let local = link.local_addr();
    let transport = link.via_transport();
    let in_dialog = |method: &str, seq: u32| {
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK-rfc4475-{method}-{seq}\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    link.send(in_dialog("ACK", seq).as_bytes()).await;
    let bye_cseq = format!("{} BYE", seq + 1);
    link.send(in_dialog("BYE", seq + 1).as_bytes()).await;
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while let Some(bytes) = link.recv(deadline).await {
        let Some(answer) = Response::parse(&bytes) else {
            continue;
        };
        if answer.cseq_is(&bye_cseq) && answer.status >= 200 {
            if answer.status != 200 {
                problems.push(format!("BYE answered {}", answer.status));
            }
            return;
        }
        // Anything else here: a 200 retransmission crossing our ACK.
        if !(answer.answers(request) && answer.status == response.status) {
            problems.push(format!(
                "stray {} (CSeq {:?}) while hanging up",
                answer.status,
                answer.header("cseq")
            ));
        }
    }
    problems.push("BYE not answered".to_string());
}

// ---------------------------------------------------------------------------

fn test_config() -> Config {
    let mut config = Config::default();
    config.sip.udp = vec!["127.0.0.1:0".parse().unwrap()];
    config.sip.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    config.media.rtp_bind = "127.0.0.1".parse().unwrap();
    // These messages dial all sorts of users: no dialplans, so none is
    // refused with 404; and a scratch database.
    config.ivr.dialplans_dir = "/nonexistent/hotline-dialplans".into();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.database.url = format!(
        "sqlite://{}/hotline-rfc4475-{}.db",
        std::env::temp_dir().display(),
        std::process::id()
    );
    config
}

#[test]
fn the_table_covers_every_message_once() {
    let mut on_disk: Vec<String> = std::fs::read_dir(data_dir())
        .expect("test data directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".dat").map(str::to_string))
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = CASES.iter().map(|c| c.file.to_string()).collect();
    in_table.sort();
    assert_eq!(on_disk.len(), 49);
    assert_eq!(in_table, on_disk);
}

#[test]
fn rewrite_takes_every_address_off_the_wire_and_keeps_lengths_right() {
    let local: SocketAddr = "127.0.0.1:40404".parse().unwrap();
    for case in CASES {
        let raw = std::fs::read(data_dir().join(format!("{}.dat", case.file))).unwrap();
        let kind = kind_of(&raw);
        let prepared = prepare(&raw, local, kind);
        let (head, body) = split_message(&prepared.bytes);
        let spans = header_spans(head);
        // Every address in a Via or an SDP c= line is loopback now.
        let vias = spans.iter().filter(|s| s.name == "via");
        let c_lines = body.split(|&b| b == b'\n').filter(|l| l.starts_with(b"c="));
        for text in vias.map(|s| &head[s.start..s.end]).chain(c_lines) {
            for (_, _, ip) in ipv4_literals(text) {
                assert!(ip.is_loopback(), "{}: {ip} left in place", case.file);
            }
        }
        // The top Via names our socket.
        let top = prepared.top_via.as_deref().unwrap_or_default();
        assert!(
            top.contains("127.0.0.1:40404"),
            "{}: top Via {top}",
            case.file
        );
        let expected_transport = if kind == Kind::Tcp { "TCP" } else { "UDP" };
        assert!(
            top.replace([' ', '\t'], "")
                .contains(&format!("/{expected_transport}127.0.0.1")),
            "{}: top Via {top}",
            case.file
        );
        // An exact Content-Length stays exact.
        let (raw_head, raw_body) = split_message(&raw);
        let length = |head: &[u8]| {
            let spans = header_spans(head);
            header(&spans, "content-length").map(|s| unfold(&head[s.start..s.end]))
        };
        if length(raw_head) == Some(raw_body.len().to_string()) {
            assert_eq!(length(head), Some(body.len().to_string()), "{}", case.file);
        } else {
            assert_eq!(length(head), length(raw_head), "{}", case.file);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_torture_messages() {
    let server = Server::start(test_config()).await.expect("server starts");
    assert!(server.udp_addrs[0].ip().is_loopback());
    assert!(server.tcp_addrs[0].ip().is_loopback());
    let addrs = Addrs {
        udp: server.udp_addrs[0],
        tcp: server.tcp_addrs[0],
    };

    let mut tasks = tokio::task::JoinSet::new();
    for (index, case) in CASES.iter().enumerate() {
        tasks.spawn(async move { (index, run_case(case, addrs).await) });
    }
    let mut outcomes: Vec<Option<Outcome>> = CASES.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, outcome) = joined.expect("case task");
        outcomes[index] = Some(outcome);
    }

    let mut failures = Vec::new();
    for (case, outcome) in CASES.iter().zip(outcomes) {
        let outcome = outcome.expect("every case ran");
        let seen = outcome
            .status
            .map_or_else(|| "no reply".to_string(), |s| s.to_string());
        if outcome.matches(case.expect) {
            eprintln!("ok    {:<11} §{:<9} {seen}", case.file, case.section);
        } else {
            eprintln!(
                "FAIL  {:<11} §{:<9} {seen} {:?}",
                case.file, case.section, outcome.problems
            );
            failures.push(format!(
                "{} (§{}): expected {:?}, got {seen}{}",
                case.file,
                case.section,
                case.expect,
                if outcome.problems.is_empty() {
                    String::new()
                } else {
                    format!("; {}", outcome.problems.join("; "))
                }
            ));
        }
    }

    // Still alive: a plain OPTIONS is answered.
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = probe.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:probe@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-rfc4475-probe\r\n\
         Max-Forwards: 70\r\nFrom: <sip:test@{local}>;tag=probe\r\nTo: <sip:probe@{server}>\r\n\
         Call-ID: rfc4475-probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        server = server.udp_addrs[0]
    );
    probe
        .send_to(options.as_bytes(), server.udp_addrs[0])
        .await
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    let alive = tokio::time::timeout(ANSWER_TIMEOUT, async {
        loop {
            let (len, _) = probe.recv_from(&mut buf).await.ok()?;
            let response = Response::parse(&buf[..len])?;
            if response.status >= 200 {
                return Some(response.status);
            }
        }
    })
    .await
    .ok()
    .flatten();
    if alive != Some(200) {
        failures.push(format!(
            "the gateway no longer answers OPTIONS (got {alive:?})"
        ));
    }

    // No call was left behind: with none active, shutdown is immediate
    // instead of waiting out the drain timeout.
    let stopped = tokio::time::timeout(Duration::from_secs(10), server.shutdown()).await;
    if stopped.is_err() {
        failures.push("shutdown took over 10 s: a call was left behind".to_string());
    }

    assert!(
        failures.is_empty(),
        "{} of {} RFC 4475 messages were not handled as expected:\n  {}",
        failures.len(),
        CASES.len(),
        failures.join("\n  ")
    );
}
