//! Transaction and dialog behaviour of the endpoint, driven by bytes and a
//! fake clock: every test feeds SIP text in, moves time forward by calling
//! `handle_timeout` at each `poll_timeout` instant, and checks what came out.

use super::*;
use crate::sip::admission::AdmissionPolicy;
use crate::sip::headers::NameAddr;
use crate::sip::message::{Message, StartLine};
use crate::sip::transaction::TimerValues;

const CALL_ID: &str = "a84b4c76e66710@127.0.0.1";
const CALLER_TAG: &str = "1928301774";
const CALLER_CONTACT: &str = "<sip:alice@127.0.0.1:5061>";

const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
const ANSWER: &str = "v=0\r\no=hotline 1 1 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
const HOLD_OFFER: &str = "v=0\r\no=alice 2890844526 2890844527 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";
const HOLD_ANSWER: &str = "v=0\r\no=hotline 1 2 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n";

/// The 2xx (timer E/G style) retransmission schedule over UDP: T1, then
/// doubling up to T2, until 64·T1.
const BACKOFF_MS: [u64; 10] = [
    500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> EndpointConfig {
    EndpointConfig {
        timers: TimerValues::default(),
        user_agent: "hotline-test".into(),
        admission: AdmissionPolicy {
            trusted_networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            max_calls: 10,
            invites_per_second_per_source: 0,
        },
    }
}

fn udp_flow() -> Flow {
    Flow {
        transport: Transport::Udp,
        listener: 0,
        connection: None,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: "127.0.0.1:5061".parse().unwrap(),
    }
}

fn tcp_flow(connection: u64) -> Flow {
    Flow {
        transport: Transport::Tcp,
        listener: 0,
        connection: Some(connection),
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: "127.0.0.1:40123".parse().unwrap(),
    }
}

/// Where responses to requests on `tcp_flow` go: the same connection, and
/// the Via port of the caller should that connection be gone.
fn tcp_reply_flow(connection: u64) -> Flow {
    Flow {
        remote: "127.0.0.1:5061".parse().unwrap(),
        ..tcp_flow(connection)
    }
}

// ---------------------------------------------------------------------------
// Requests as the caller would send them.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Req {
    method: String,
    uri: String,
    version: String,
    via: Option<String>,
    from: String,
    to: String,
    call_id: Option<String>,
    cseq: u32,
    max_forwards: Option<String>,
    contact: Option<String>,
    headers: Vec<String>,
    body: Option<(String, String)>,
}

fn request(method: &str, branch: &str) -> Req {
    Req {
        method: method.to_string(),
        uri: "sip:10000@127.0.0.1:5060".to_string(),
        version: "SIP/2.0".to_string(),
        via: Some(format!("SIP/2.0/UDP 127.0.0.1:5061;branch={branch}")),
        from: format!("\"Alice\" <sip:alice@127.0.0.1:5061>;tag={CALLER_TAG}"),
        to: "<sip:10000@127.0.0.1:5060>".to_string(),
        call_id: Some(CALL_ID.to_string()),
        cseq: 1,
        max_forwards: Some("70".to_string()),
        contact: None,
        headers: Vec::new(),
        body: None,
    }
}

impl Req {
    fn with_to_tag(mut self, tag: &str) -> Req {
        self.to = format!("<sip:10000@127.0.0.1:5060>;tag={tag}");
        self
    }

    fn cseq(mut self, seq: u32) -> Req {
        self.cseq = seq;
        self
    }

    fn call_id(mut self, call_id: &str) -> Req {
        self.call_id = Some(call_id.to_string());
        self
    }

    fn without_call_id(mut self) -> Req {
        self.call_id = None;
        self
    }

    fn max_forwards(mut self, value: Option<&str>) -> Req {
        self.max_forwards = value.map(str::to_string);
        self
    }

    fn via(mut self, value: &str) -> Req {
        self.via = Some(value.to_string());
        self
    }

    fn from(mut self, value: &str) -> Req {
        self.from = value.to_string();
        self
    }

    fn uri(mut self, uri: &str) -> Req {
        self.uri = uri.to_string();
        self
    }

    fn version(mut self, version: &str) -> Req {
        self.version = version.to_string();
        self
    }

    fn contact(mut self, contact: &str) -> Req {
        self.contact = Some(contact.to_string());
        self
    }

    fn header(mut self, line: &str) -> Req {
        self.headers.push(line.to_string());
        self
    }

    fn body(mut self, content_type: &str, body: &str) -> Req {
        self.body = Some((content_type.to_string(), body.to_string()));
        self
    }

    fn text(&self) -> String {
        let mut out = format!("{} {} {}\r\n", self.method, self.uri, self.version);
        if let Some(via) = &self.via {
            out.push_str(&format!("Via: {via}\r\n"));
        }
        if let Some(max_forwards) = &self.max_forwards {
            out.push_str(&format!("Max-Forwards: {max_forwards}\r\n"));
        }
        out.push_str(&format!("From: {}\r\nTo: {}\r\n", self.from, self.to));
        if let Some(call_id) = &self.call_id {
            out.push_str(&format!("Call-ID: {call_id}\r\n"));
        }
        out.push_str(&format!("CSeq: {} {}\r\n", self.cseq, self.method));
        if let Some(contact) = &self.contact {
            out.push_str(&format!("Contact: {contact}\r\n"));
        }
        for line in &self.headers {
            out.push_str(line);
            out.push_str("\r\n");
        }
        let body = match &self.body {
            Some((content_type, body)) => {
                out.push_str(&format!("Content-Type: {content_type}\r\n"));
                body.as_str()
            }
            None => "",
        };
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        out
    }
}

fn invite(branch: &str) -> Req {
    request("INVITE", branch)
        .contact(CALLER_CONTACT)
        .body("application/sdp", OFFER)
}

fn reinvite(branch: &str, our_tag: &str, cseq: u32, sdp: &str) -> Req {
    invite(branch)
        .with_to_tag(our_tag)
        .cseq(cseq)
        .body("application/sdp", sdp)
}

fn ack(branch: &str, our_tag: &str, cseq: u32) -> Req {
    request("ACK", branch).with_to_tag(our_tag).cseq(cseq)
}

fn bye(branch: &str, our_tag: &str, cseq: u32) -> Req {
    request("BYE", branch).with_to_tag(our_tag).cseq(cseq)
}

fn cancel(branch: &str) -> Req {
    request("CANCEL", branch)
}

fn options(branch: &str) -> Req {
    request("OPTIONS", branch).header("Accept: application/sdp")
}

fn info(branch: &str, our_tag: &str, cseq: u32) -> Req {
    request("INFO", branch)
        .with_to_tag(our_tag)
        .cseq(cseq)
        .body("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
}

fn update(branch: &str, our_tag: &str, cseq: u32, sdp: &str) -> Req {
    request("UPDATE", branch)
        .with_to_tag(our_tag)
        .cseq(cseq)
        .contact(CALLER_CONTACT)
        .body("application/sdp", sdp)
}

/// What a UAC sends back for a request of ours (a 200 to our BYE).
fn response_for(request: &Message, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in request.header_lines("Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", request.header(name).unwrap()));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

// ---------------------------------------------------------------------------
// Reading what came out.
// ---------------------------------------------------------------------------

fn status(message: &Message) -> u16 {
    message
        .status()
        .unwrap_or_else(|| panic!("expected a response, got {message:?}"))
}

fn statuses(messages: &[Message]) -> Vec<u16> {
    messages.iter().map(status).collect()
}

fn tag_of(header: Option<&str>) -> Option<String> {
    NameAddr::parse(header?).ok()?.tag().map(str::to_string)
}

fn to_tag(message: &Message) -> Option<String> {
    tag_of(message.header("To"))
}

fn cseq_method(message: &Message) -> String {
    message
        .header("CSeq")
        .and_then(|c| c.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string()
}

fn is_response(message: &Message, code: u16, method: &str) -> bool {
    message.status() == Some(code) && cseq_method(message) == method
}

fn is_request(message: &Message, method: &str) -> bool {
    message.method().map(Method::as_str) == Some(method)
}

fn body(message: &Message) -> &str {
    std::str::from_utf8(&message.body).unwrap()
}

/// One transmit seen while the clock moved: when (since the harness
/// started), on which flow, and what.
#[derive(Debug)]
struct Sent {
    at: Duration,
    flow: Flow,
    message: Message,
    bytes: Bytes,
}

/// The offsets in milliseconds of the transmits that match `which`.
fn offsets(log: &[Sent], which: impl Fn(&Message) -> bool) -> Vec<u64> {
    log.iter()
        .filter(|s| which(&s.message))
        .map(|s| s.at.as_millis() as u64)
        .collect()
}

// ---------------------------------------------------------------------------
// The harness: an endpoint, a fake clock and the caller's default flow.
// ---------------------------------------------------------------------------

struct Harness {
    endpoint: Endpoint,
    t0: Instant,
    now: Instant,
    flow: Flow,
}

/// An answered and acknowledged call.
struct Established {
    call: CallHandle,
    our_tag: String,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(config())
    }

    fn with_config(config: EndpointConfig) -> Harness {
        let t0 = Instant::now();
        Harness {
            endpoint: Endpoint::new(config),
            t0,
            now: t0,
            flow: udp_flow(),
        }
    }

    fn over(flow: Flow) -> Harness {
        Harness {
            flow,
            ..Harness::new()
        }
    }

    fn receive(&mut self, request: &Req) {
        let flow = self.flow;
        self.receive_on(request, flow);
    }

    fn receive_on(&mut self, request: &Req, flow: Flow) {
        self.endpoint
            .handle_message(request.text().as_bytes(), flow, self.now);
    }

    fn receive_bytes(&mut self, bytes: &[u8]) {
        self.endpoint.handle_message(bytes, self.flow, self.now);
    }

    /// Drains every transmit, parsed, with its flow and raw bytes.
    fn transmits(&mut self) -> Vec<Sent> {
        let at = self.now - self.t0;
        std::iter::from_fn(|| self.endpoint.poll_transmit())
            .map(|t| Sent {
                at,
                flow: t.flow,
                message: Message::parse(&t.bytes)
                    .unwrap_or_else(|e| panic!("we sent something unparseable ({e}): {t:?}")),
                bytes: t.bytes,
            })
            .collect()
    }

    /// Drains every transmit, parsed.
    fn sent(&mut self) -> Vec<Message> {
        self.transmits().into_iter().map(|s| s.message).collect()
    }

    /// Drains the transmits, which must be exactly one.
    fn one_sent(&mut self) -> Message {
        let mut sent = self.sent();
        assert_eq!(sent.len(), 1, "expected exactly one transmit: {sent:#?}");
        sent.remove(0)
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.endpoint.poll_event()).collect()
    }

    /// Moves the clock to `offset` after the harness started, firing every
    /// timer on the way at its own instant, and returns what was sent
    /// (including anything still queued from before).
    fn advance_to(&mut self, offset: Duration) -> Vec<Sent> {
        let target = self.t0 + offset;
        assert!(target >= self.now, "the fake clock only moves forward");
        let mut log = self.transmits();
        for _ in 0..100_000 {
            match self.endpoint.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.endpoint.handle_timeout(self.now);
                    log.extend(self.transmits());
                }
                _ => {
                    self.now = target;
                    return log;
                }
            }
        }
        panic!("timers keep firing without the clock reaching {offset:?}");
    }

    /// Sends `invite`, checks the immediate 100 and the IncomingCall event.
    fn offer(&mut self, invite: &Req) -> CallHandle {
        self.receive(invite);
        let trying = self.one_sent();
        assert_eq!(status(&trying), 100);
        let events = self.events();
        match events.as_slice() {
            [Event::IncomingCall(incoming)] => incoming.call,
            other => panic!("expected one IncomingCall, got {other:#?}"),
        }
    }

    /// Accepts the pending offer with `sdp` and returns the 200 sent.
    fn accept_with(&mut self, call: CallHandle, sdp: &str) -> Message {
        self.endpoint
            .accept(call, Bytes::copy_from_slice(sdp.as_bytes()), self.now)
            .expect("accept");
        let ok = self.one_sent();
        assert_eq!(status(&ok), 200);
        ok
    }

    fn accept(&mut self, call: CallHandle) -> Message {
        self.accept_with(call, ANSWER)
    }

    /// INVITE (branch `z9hG4bK-invite`, CSeq 1), 200 and ACK, all at the
    /// current instant, with every output drained.
    fn establish(&mut self) -> Established {
        let call = self.offer(&invite("z9hG4bK-invite"));
        let ok = self.accept(call);
        let our_tag = to_tag(&ok).expect("our 200 has a To tag");
        self.receive(&ack("z9hG4bK-ack", &our_tag, 1));
        assert!(self.sent().is_empty(), "an ACK is never answered");
        let events = self.events();
        assert!(
            matches!(events.as_slice(), [Event::CallConfirmed { call: c, .. }] if *c == call),
            "{events:#?}"
        );
        Established { call, our_tag }
    }

    /// The reason of the single CallEnded event among `events`.
    fn ended(events: &[Event], call: CallHandle) -> Option<EndReason> {
        let ends: Vec<EndReason> = events
            .iter()
            .filter_map(|e| match e {
                Event::CallEnded { call: c, reason } if *c == call => Some(*reason),
                _ => None,
            })
            .collect();
        assert!(ends.len() <= 1, "a call ends once: {events:#?}");
        ends.first().copied()
    }
}

// ---------------------------------------------------------------------------
// INVITE, 2xx and ACK.
// ---------------------------------------------------------------------------

#[test]
fn invite_gets_100_trying_at_once_then_an_incoming_call() {
    let mut h = Harness::new();
    h.receive(&invite("z9hG4bK-invite"));
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    let trying = &sent[0].message;
    assert_eq!(status(trying), 100);
    assert_eq!(trying.header("CSeq"), Some("1 INVITE"));
    assert_eq!(trying.header("Call-ID"), Some(CALL_ID));
    assert_eq!(
        trying.header("Via"),
        Some("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-invite")
    );
    assert_eq!(to_tag(trying), None, "100 Trying carries no To tag");
    assert_eq!(sent[0].flow, udp_flow());
    let events = h.events();
    let [Event::IncomingCall(incoming)] = events.as_slice() else {
        panic!("expected one IncomingCall, got {events:#?}");
    };
    assert_eq!(incoming.call_id, CALL_ID);
    assert_eq!(incoming.dialled.as_deref(), Some("10000"));
    assert_eq!(incoming.caller.as_deref(), Some("alice"));
    assert_eq!(incoming.offer.as_deref(), Some(OFFER.as_bytes()));
    assert_eq!(h.endpoint.active_calls(), 1);
}

#[test]
fn accept_sends_200_with_our_to_tag_contact_and_sdp() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    let ok = h.accept(call);
    assert_eq!(ok.header("CSeq"), Some("1 INVITE"));
    assert_eq!(
        tag_of(ok.header("From")).as_deref(),
        Some(CALLER_TAG),
        "From is copied"
    );
    let our_tag = to_tag(&ok).expect("To tag on the 2xx");
    assert!(!our_tag.is_empty());
    assert!(ok
        .header("To")
        .unwrap()
        .starts_with("<sip:10000@127.0.0.1:5060>"));
    assert_eq!(ok.header("Contact"), Some("<sip:10000@127.0.0.1:5060>"));
    assert_eq!(ok.header("Content-Type"), Some("application/sdp"));
    assert_eq!(body(&ok), ANSWER);
    assert_eq!(ok.header("Allow"), Some(ALLOW));
    assert_eq!(ok.header("Server"), Some("hotline-test"));
}

#[test]
fn the_200_carries_the_record_route_of_the_invite() {
    let mut h = Harness::new();
    let call = h.offer(
        &invite("z9hG4bK-invite")
            .header("Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>")
            .header("Record-Route: <sip:p3.example.com;lr>"),
    );
    let ok = h.accept(call);
    assert_eq!(
        ok.header_lines("Record-Route").collect::<Vec<_>>(),
        vec![
            "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
            "<sip:p3.example.com;lr>"
        ]
    );
}

#[test]
fn unacknowledged_200_is_retransmitted_at_t1_doubling_up_to_t2() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    let first = h
        .endpoint
        .accept(call, Bytes::from_static(ANSWER.as_bytes()), h.now);
    assert!(first.is_ok());
    let log = h.advance_to(ms(31_999));
    let first_ok = &log[0];
    assert_eq!(first_ok.at, Duration::ZERO);
    let mut expected = vec![0];
    expected.extend(BACKOFF_MS);
    assert_eq!(offsets(&log, |m| is_response(m, 200, "INVITE")), expected);
    assert!(
        log.iter().all(|s| s.bytes == first_ok.bytes),
        "every retransmission is the same 200"
    );
    assert!(log.iter().all(|s| s.flow == udp_flow()));
    assert!(h.events().is_empty());
}

#[test]
fn ack_timeout_after_64_t1_sends_bye_and_ends_the_call() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    let ok = h.accept(call);
    let our_tag = to_tag(&ok).unwrap();
    let log = h.advance_to(ms(31_999));
    assert_eq!(offsets(&log, |m| m.status() == Some(200)), BACKOFF_MS);
    assert!(h.events().is_empty(), "the call lives until 64*T1");

    let log = h.advance_to(ms(40_000));
    assert!(
        offsets(&log, |m| m.status() == Some(200)).is_empty(),
        "no 200 after the ACK timeout"
    );
    let byes: Vec<&Sent> = log
        .iter()
        .filter(|s| is_request(&s.message, "BYE"))
        .collect();
    assert_eq!(byes[0].at, ms(32_000), "BYE at 64*T1");
    let bye = &byes[0].message;
    assert_eq!(tag_of(bye.header("From")), Some(our_tag));
    assert_eq!(tag_of(bye.header("To")).as_deref(), Some(CALLER_TAG));
    let events = h.events();
    assert_eq!(
        Harness::ended(&events, call),
        Some(EndReason::AckTimeout),
        "{events:#?}"
    );
    assert_eq!(h.endpoint.active_calls(), 0);
}

#[test]
fn ack_stops_200_retransmissions_and_confirms_the_call() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    let ok = h.accept(call);
    let our_tag = to_tag(&ok).unwrap();
    let log = h.advance_to(ms(1_000));
    assert_eq!(offsets(&log, |m| m.status() == Some(200)), vec![500]);

    // The ACK for a 2xx is its own transaction: new branch, our To tag,
    // the INVITE's CSeq number.
    h.receive(&ack("z9hG4bK-ack", &our_tag, 1));
    assert!(h.sent().is_empty(), "an ACK is never answered");
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [Event::CallConfirmed { call: c, sdp: None }] if *c == call),
        "{events:#?}"
    );

    let log = h.advance_to(ms(60_000));
    assert!(log.is_empty(), "nothing after the ACK: {log:#?}");
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.active_calls(), 1, "the call goes on");
}

#[test]
fn ack_with_another_cseq_or_to_tag_does_not_stop_the_200() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    let our_tag = to_tag(&h.accept(call)).unwrap();
    h.receive(&ack("z9hG4bK-ack1", &our_tag, 2));
    h.receive(&ack("z9hG4bK-ack2", "not-our-tag", 1));
    assert!(h.sent().is_empty());
    assert!(h.events().is_empty(), "neither ACK confirms the call");
    let log = h.advance_to(ms(4_000));
    assert_eq!(
        offsets(&log, |m| m.status() == Some(200)),
        vec![500, 1500, 3500]
    );
}

#[test]
fn retransmitted_ack_confirms_the_call_only_once() {
    let mut h = Harness::new();
    let established = h.establish();
    h.receive(&ack("z9hG4bK-ack", &established.our_tag, 1));
    assert!(h.sent().is_empty());
    assert!(h.events().is_empty());
}

#[test]
fn retransmitted_invite_before_the_answer_gets_the_100_again() {
    let mut h = Harness::new();
    h.offer(&invite("z9hG4bK-invite"));
    h.advance_to(ms(500));
    h.receive(&invite("z9hG4bK-invite"));
    let again = h.one_sent();
    assert_eq!(status(&again), 100);
    assert!(h.events().is_empty(), "no second IncomingCall");
    assert_eq!(h.endpoint.active_calls(), 1);
    assert!(
        h.advance_to(ms(10_000)).is_empty(),
        "a 1xx is never retransmitted by timer"
    );
}

#[test]
fn retransmitted_invite_is_absorbed_after_the_2xx() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    h.accept(call);
    h.advance_to(ms(700));
    h.receive(&invite("z9hG4bK-invite"));
    assert!(
        h.sent().is_empty(),
        "RFC 6026 Accepted state absorbs the retransmission"
    );
    assert!(h.events().is_empty(), "no second IncomingCall");
    h.advance_to(ms(2_000));
    h.receive(&invite("z9hG4bK-invite"));
    let log = h.advance_to(ms(4_000));
    assert_eq!(
        offsets(&log, |_| true),
        vec![3500],
        "only the core's own 2xx retransmissions: {log:#?}"
    );
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.stats().calls_offered, 1);
}

#[test]
fn retransmitted_invite_is_absorbed_after_the_ack() {
    let mut h = Harness::new();
    h.establish();
    h.advance_to(ms(2_000));
    h.receive(&invite("z9hG4bK-invite"));
    assert!(h.sent().is_empty());
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.active_calls(), 1);
}

#[test]
fn hangup_before_the_ack_waits_for_the_ack_then_sends_bye() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    let our_tag = to_tag(&h.accept(call)).unwrap();
    h.endpoint.hangup(call, h.now).unwrap();
    assert!(h.sent().is_empty(), "no BYE before the ACK");
    assert!(h.events().is_empty());
    h.advance_to(ms(600));
    h.receive(&ack("z9hG4bK-ack", &our_tag, 1));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert!(is_request(&sent[0], "BYE"));
    let events = h.events();
    assert!(matches!(events[0], Event::CallConfirmed { .. }));
    assert_eq!(Harness::ended(&events, call), Some(EndReason::LocalHangup));
}

// ---------------------------------------------------------------------------
// Rejection: the non-2xx final response belongs to the INVITE transaction.
// ---------------------------------------------------------------------------

#[test]
fn rejected_invite_gets_486_retransmitted_on_timer_g() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    h.endpoint.reject(call, 486, h.now).unwrap();
    let busy = h.one_sent();
    assert_eq!(status(&busy), 486);
    assert!(to_tag(&busy).is_some(), "a final response carries a To tag");
    let events = h.events();
    assert_eq!(
        Harness::ended(&events, call),
        Some(EndReason::Rejected(486))
    );
    let log = h.advance_to(ms(12_000));
    assert_eq!(
        offsets(&log, |m| m.status() == Some(486)),
        vec![500, 1500, 3500, 7500, 11500]
    );
    assert!(log.iter().all(|s| s.message == busy));
}

#[test]
fn ack_on_the_invite_branch_stops_the_486() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    h.endpoint.reject(call, 486, h.now).unwrap();
    let busy = h.one_sent();
    let log = h.advance_to(ms(2_000));
    assert_eq!(offsets(&log, |_| true), vec![500, 1500]);
    // The ACK for a non-2xx is part of the INVITE transaction: same branch.
    h.receive(&ack("z9hG4bK-invite", &to_tag(&busy).unwrap(), 1));
    assert!(h.sent().is_empty());
    let log = h.advance_to(ms(60_000));
    assert!(log.is_empty(), "no 486 after the ACK: {log:#?}");
    assert_eq!(h.endpoint.active_transactions(), 0, "timer I ended it");
}

#[test]
fn timer_h_ends_the_486_retransmissions_without_an_ack() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    h.endpoint.reject(call, 486, h.now).unwrap();
    h.one_sent();
    let log = h.advance_to(ms(120_000));
    assert_eq!(offsets(&log, |m| m.status() == Some(486)), BACKOFF_MS);
    assert_eq!(h.endpoint.active_transactions(), 0, "timer H ended it");
}

#[test]
fn retransmitted_invite_after_the_reject_gets_the_486_again() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    h.endpoint.reject(call, 486, h.now).unwrap();
    let busy = h.one_sent();
    h.advance_to(ms(200));
    h.receive(&invite("z9hG4bK-invite"));
    assert_eq!(h.one_sent(), busy);
    let events = h.events();
    assert!(
        !events.iter().any(|e| matches!(e, Event::IncomingCall(_))),
        "{events:#?}"
    );
}

#[test]
fn hangup_before_the_answer_rejects_with_480() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    h.endpoint.hangup(call, h.now).unwrap();
    assert_eq!(status(&h.one_sent()), 480);
    let events = h.events();
    assert_eq!(
        Harness::ended(&events, call),
        Some(EndReason::Rejected(480))
    );
}

// ---------------------------------------------------------------------------
// CANCEL.
// ---------------------------------------------------------------------------

#[test]
fn cancel_before_the_answer_gets_200_and_the_invite_487() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    h.advance_to(ms(300));
    h.receive(&cancel("z9hG4bK-invite"));
    let sent = h.sent();
    assert_eq!(statuses(&sent), vec![200, 487], "{sent:#?}");
    assert_eq!(sent[0].header("CSeq"), Some("1 CANCEL"));
    assert_eq!(sent[1].header("CSeq"), Some("1 INVITE"));
    let events = h.events();
    assert_eq!(Harness::ended(&events, call), Some(EndReason::Cancelled));
    assert_eq!(h.endpoint.active_calls(), 0);

    // The 487 is retransmitted on timer G until the ACK on the INVITE branch.
    let terminated = sent[1].clone();
    let log = h.advance_to(ms(1_000));
    assert_eq!(offsets(&log, |m| m.status() == Some(487)), vec![800]);
    h.receive(&ack("z9hG4bK-invite", &to_tag(&terminated).unwrap(), 1));
    assert!(h.advance_to(ms(40_000)).is_empty());
}

#[test]
fn cancel_response_carries_the_same_to_tag_as_the_487() {
    // RFC 3261 §9.2: the To tags of the two responses SHOULD be the same.
    let mut h = Harness::new();
    h.offer(&invite("z9hG4bK-invite"));
    h.receive(&cancel("z9hG4bK-invite"));
    let sent = h.sent();
    assert_eq!(statuses(&sent), vec![200, 487]);
    assert!(to_tag(&sent[0]).is_some());
    assert_eq!(to_tag(&sent[0]), to_tag(&sent[1]));
}

#[test]
fn retransmitted_cancel_gets_the_same_200() {
    let mut h = Harness::new();
    h.offer(&invite("z9hG4bK-invite"));
    h.receive(&cancel("z9hG4bK-invite"));
    let first = h.sent();
    h.advance_to(ms(500));
    h.receive(&cancel("z9hG4bK-invite"));
    let again = h.sent();
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0], first[0]);
}

#[test]
fn cancel_racing_the_200_changes_nothing_and_the_ack_confirms_the_call() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    let our_tag = to_tag(&h.accept(call)).unwrap();
    h.advance_to(ms(100));
    h.receive(&cancel("z9hG4bK-invite"));
    let sent = h.sent();
    assert_eq!(statuses(&sent), vec![200], "no 487 after a 2xx: {sent:#?}");
    assert_eq!(cseq_method(&sent[0]), "CANCEL");
    assert!(h.events().is_empty(), "the call is not ended");
    h.receive(&ack("z9hG4bK-ack", &our_tag, 1));
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [Event::CallConfirmed { call: c, .. }] if *c == call),
        "{events:#?}"
    );
    assert!(h.advance_to(ms(40_000)).is_empty());
    assert_eq!(h.endpoint.active_calls(), 1);
}

#[test]
fn cancel_without_a_matching_invite_gets_481() {
    let mut h = Harness::new();
    h.receive(&cancel("z9hG4bK-nothing"));
    let response = h.one_sent();
    assert_eq!(status(&response), 481);
    assert_eq!(response.header("CSeq"), Some("1 CANCEL"));
    assert!(h.events().is_empty());
}

#[test]
fn cancel_of_a_reinvite_ends_only_the_reinvite() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER));
    h.sent();
    h.events();
    h.receive(&cancel("z9hG4bK-reinvite").with_to_tag(&e.our_tag).cseq(2));
    let sent = h.sent();
    assert_eq!(statuses(&sent), vec![200, 487], "{sent:#?}");
    let events = h.events();
    assert_eq!(
        Harness::ended(&events, e.call),
        None,
        "a cancelled re-INVITE leaves the session as it was: {events:#?}"
    );
    assert_eq!(h.endpoint.active_calls(), 1);
    // The dialog still works.
    h.receive(&ack("z9hG4bK-reinvite", &e.our_tag, 2));
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 3));
    assert_eq!(statuses(&h.sent()), vec![200]);
    assert_eq!(
        Harness::ended(&h.events(), e.call),
        Some(EndReason::RemoteBye)
    );
}

// ---------------------------------------------------------------------------
// BYE from the caller.
// ---------------------------------------------------------------------------

#[test]
fn bye_from_the_caller_gets_200_and_ends_the_call() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 2));
    let ok = h.one_sent();
    assert!(is_response(&ok, 200, "BYE"));
    assert_eq!(to_tag(&ok), Some(e.our_tag.clone()));
    let events = h.events();
    assert_eq!(Harness::ended(&events, e.call), Some(EndReason::RemoteBye));
    assert_eq!(h.endpoint.active_calls(), 0);
}

#[test]
fn retransmitted_bye_gets_the_same_200() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 2));
    let ok = h.one_sent();
    h.events();
    h.advance_to(ms(500));
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 2));
    assert_eq!(h.one_sent(), ok);
    assert!(h.events().is_empty(), "the call ends once");
    h.advance_to(ms(31_000));
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 2));
    assert_eq!(h.one_sent(), ok, "still within timer J");
}

#[test]
fn timer_j_forgets_the_bye_after_32_seconds() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 2));
    h.one_sent();
    let log = h.advance_to(ms(32_001));
    assert!(
        log.is_empty(),
        "a non-INVITE response is never retransmitted by timer"
    );
    assert_eq!(h.endpoint.active_transactions(), 0);
    // The dialog is gone too, so a late copy is now a new request.
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 2));
    assert_eq!(status(&h.one_sent()), 481);
}

// ---------------------------------------------------------------------------
// BYE from us.
// ---------------------------------------------------------------------------

/// Establishes a call, hangs up and returns the BYE sent.
fn hung_up(h: &mut Harness) -> (Established, Sent) {
    let e = h.establish();
    h.endpoint.hangup(e.call, h.now).unwrap();
    let mut sent = h.transmits();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    (e, sent.remove(0))
}

#[test]
fn hangup_sends_bye_within_the_dialog() {
    let mut h = Harness::new();
    let (e, bye) = hung_up(&mut h);
    let message = &bye.message;
    assert!(is_request(message, "BYE"));
    assert_eq!(message.request_uri(), Some("sip:alice@127.0.0.1:5061"));
    assert_eq!(
        message.header("To"),
        Some("\"Alice\" <sip:alice@127.0.0.1:5061>;tag=1928301774")
    );
    assert_eq!(tag_of(message.header("From")), Some(e.our_tag.clone()));
    assert!(message
        .header("From")
        .unwrap()
        .starts_with("<sip:10000@127.0.0.1:5060>"));
    assert_eq!(message.header("Call-ID"), Some(CALL_ID));
    assert_eq!(cseq_method(message), "BYE");
    let via = Via::parse(message.header("Via").unwrap()).unwrap();
    assert!(via.has_rfc3261_branch());
    assert_ne!(via.branch(), Some("z9hG4bK-invite"));
    assert_eq!(via.sent_by(), "127.0.0.1:5060");
    assert_eq!(bye.flow.remote, "127.0.0.1:5061".parse().unwrap());
    assert_eq!(bye.flow.transport, Transport::Udp);
    let events = h.events();
    assert_eq!(
        Harness::ended(&events, e.call),
        Some(EndReason::LocalHangup)
    );
}

#[test]
fn bye_is_retransmitted_on_timer_e_until_a_200() {
    let mut h = Harness::new();
    let (_, bye) = hung_up(&mut h);
    let log = h.advance_to(ms(12_000));
    assert_eq!(
        offsets(&log, |m| is_request(m, "BYE")),
        vec![500, 1500, 3500, 7500, 11500]
    );
    assert!(log.iter().all(|s| s.bytes == bye.bytes));
    h.endpoint.handle_message(
        response_for(&bye.message, 200, "OK").as_bytes(),
        udp_flow(),
        h.now,
    );
    assert!(h.sent().is_empty(), "a response is never answered");
    let log = h.advance_to(ms(60_000));
    assert!(log.is_empty(), "no BYE after its 200: {log:#?}");
    assert_eq!(h.endpoint.active_transactions(), 0, "timer K ended it");
}

#[test]
fn timer_f_gives_up_on_an_unanswered_bye() {
    let mut h = Harness::new();
    hung_up(&mut h);
    let log = h.advance_to(ms(120_000));
    assert_eq!(offsets(&log, |m| is_request(m, "BYE")), BACKOFF_MS);
    assert_eq!(h.endpoint.active_transactions(), 0);
}

#[test]
fn provisional_response_to_our_bye_keeps_it_going_at_t2() {
    let mut h = Harness::new();
    let (_, bye) = hung_up(&mut h);
    h.advance_to(ms(100));
    h.endpoint.handle_message(
        response_for(&bye.message, 100, "Trying").as_bytes(),
        udp_flow(),
        h.now,
    );
    let log = h.advance_to(ms(13_000));
    assert_eq!(
        offsets(&log, |m| is_request(m, "BYE")),
        vec![500, 4500, 8500, 12500]
    );
}

#[test]
fn hangup_all_sends_bye_to_answered_calls_and_503_to_unanswered_ones() {
    let mut h = Harness::new();
    let answered = h.establish();
    let ringing = h.offer(&invite("z9hG4bK-second").call_id("second-call"));
    h.endpoint.hangup_all(h.now);
    let sent = h.sent();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent.iter().any(|m| is_request(m, "BYE")));
    assert!(sent.iter().any(|m| is_response(m, 503, "INVITE")));
    let events = h.events();
    assert_eq!(
        Harness::ended(&events, answered.call),
        Some(EndReason::LocalHangup)
    );
    assert_eq!(
        Harness::ended(&events, ringing),
        Some(EndReason::Rejected(503))
    );
    assert_eq!(h.endpoint.active_calls(), 0);
}

#[test]
fn request_with_a_malformed_via_still_gets_400() {
    let mut h = Harness::new();
    h.receive(&options("z9hG4bK-options").via("SIP/2.0/UDP"));
    let response = h.one_sent();
    assert_eq!(status(&response), 400);
    assert_eq!(response.header("Via"), Some("SIP/2.0/UDP"));
}

// ---------------------------------------------------------------------------
// Requests the core refuses.
// ---------------------------------------------------------------------------

#[test]
fn bye_with_an_unknown_to_tag_gets_481() {
    let mut h = Harness::new();
    h.establish();
    h.receive(&bye("z9hG4bK-bye", "unknown-tag", 2));
    assert_eq!(status(&h.one_sent()), 481);
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.active_calls(), 1);
}

#[test]
fn info_with_an_unknown_to_tag_gets_481() {
    let mut h = Harness::new();
    h.receive(&info("z9hG4bK-info", "unknown-tag", 2));
    assert_eq!(status(&h.one_sent()), 481);
    assert!(h.events().is_empty());
}

#[test]
fn unknown_method_gets_501() {
    let mut h = Harness::new();
    h.receive(&request("NEWMETHOD", "z9hG4bK-new"));
    let response = h.one_sent();
    assert_eq!(status(&response), 501);
    assert_eq!(response.header("CSeq"), Some("1 NEWMETHOD"));
    assert!(to_tag(&response).is_some());
}

#[test]
fn register_gets_405_with_allow() {
    let mut h = Harness::new();
    h.receive(&request("REGISTER", "z9hG4bK-reg").uri("sip:127.0.0.1"));
    let response = h.one_sent();
    assert_eq!(status(&response), 405);
    assert_eq!(response.header("Allow"), Some(ALLOW));
}

#[test]
fn invite_requiring_an_unknown_extension_gets_420_with_unsupported() {
    let mut h = Harness::new();
    h.receive(&invite("z9hG4bK-invite").header("Require: foo"));
    let response = h.one_sent();
    assert_eq!(status(&response), 420);
    assert_eq!(response.header("Unsupported"), Some("foo"));
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.active_calls(), 0);
}

#[test]
fn reinvite_requiring_an_unknown_extension_gets_420_and_the_call_goes_on() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER).header("Require: foo"));
    let response = h.one_sent();
    assert_eq!(status(&response), 420);
    assert_eq!(response.header("Unsupported"), Some("foo"));
    assert!(h.events().is_empty(), "no Reoffer");
}

#[test]
fn invite_with_max_forwards_zero_gets_483() {
    let mut h = Harness::new();
    h.receive(&invite("z9hG4bK-invite").max_forwards(Some("0")));
    assert_eq!(status(&h.one_sent()), 483);
    assert!(h.events().is_empty());
}

#[test]
fn options_with_max_forwards_zero_gets_200() {
    let mut h = Harness::new();
    h.receive(&options("z9hG4bK-options").max_forwards(Some("0")));
    assert_eq!(status(&h.one_sent()), 200);
}

#[test]
fn merged_invite_on_another_branch_gets_482() {
    let mut h = Harness::new();
    h.offer(&invite("z9hG4bK-invite"));
    h.receive(&invite("z9hG4bK-forked-copy"));
    let response = h.one_sent();
    assert_eq!(status(&response), 482);
    assert_eq!(
        response.header("Via"),
        Some("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-forked-copy")
    );
    assert!(h.events().is_empty(), "no second IncomingCall");
    assert_eq!(h.endpoint.active_calls(), 1);
}

#[test]
fn request_with_another_sip_version_gets_505() {
    let mut h = Harness::new();
    h.receive(&invite("z9hG4bK-invite").version("SIP/3.0"));
    let response = h.one_sent();
    assert_eq!(status(&response), 505);
    assert!(
        to_tag(&response).is_some(),
        "a final response carries a To tag"
    );
    assert!(h.events().is_empty());
}

#[test]
fn request_without_call_id_gets_400_naming_the_missing_header() {
    let mut h = Harness::new();
    h.receive(&invite("z9hG4bK-invite").without_call_id());
    let response = h.one_sent();
    assert_eq!(status(&response), 400);
    let StartLine::Response { reason, .. } = &response.start else {
        unreachable!()
    };
    assert_eq!(reason, "Missing Call-ID header");
    assert_eq!(response.header("CSeq"), Some("1 INVITE"));
    assert!(
        to_tag(&response).is_some(),
        "a final response carries a To tag"
    );
    assert!(h.events().is_empty());
}

#[test]
fn unknown_request_uri_scheme_gets_416() {
    let mut h = Harness::new();
    h.receive(&invite("z9hG4bK-invite").uri("soap.beep://192.0.2.1:3002"));
    assert_eq!(status(&h.one_sent()), 416);
    assert!(h.events().is_empty());
}

#[test]
fn stateless_error_responses_carry_a_to_tag_that_is_stable_across_retransmissions() {
    let mut h = Harness::new();
    let bad = invite("z9hG4bK-invite").version("SIP/3.0");
    h.receive(&bad);
    let first = h.one_sent();
    h.receive(&bad);
    let again = h.one_sent();
    assert!(to_tag(&first).is_some());
    assert_eq!(to_tag(&first), to_tag(&again));
    h.receive(&invite("z9hG4bK-other").version("SIP/3.0"));
    assert_ne!(
        to_tag(&h.one_sent()),
        to_tag(&first),
        "another request gets another tag"
    );
}

#[test]
fn in_dialog_request_with_a_lower_cseq_gets_500() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&info("z9hG4bK-info5", &e.our_tag, 5));
    assert_eq!(status(&h.one_sent()), 200);
    h.events();
    h.receive(&info("z9hG4bK-info3", &e.our_tag, 3));
    let response = h.one_sent();
    assert_eq!(status(&response), 500);
    assert!(
        h.events().is_empty(),
        "no Info event for an out-of-order INFO"
    );
    assert_eq!(h.endpoint.active_calls(), 1);
}

// ---------------------------------------------------------------------------
// OPTIONS.
// ---------------------------------------------------------------------------

fn assert_capabilities(response: &Message) {
    assert_eq!(status(response), 200);
    assert_eq!(response.header("Allow"), Some(ALLOW));
    assert_eq!(response.header("Accept"), Some(ACCEPT));
    assert!(response.has_header("Supported"));
    assert_eq!(cseq_method(response), "OPTIONS");
}

#[test]
fn options_outside_a_dialog_gets_200_with_capabilities() {
    let mut h = Harness::new();
    h.receive(&options("z9hG4bK-options"));
    let response = h.one_sent();
    assert_capabilities(&response);
    assert!(to_tag(&response).is_some());
    assert!(h.events().is_empty());
}

#[test]
fn options_inside_a_dialog_gets_200_with_capabilities() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&options("z9hG4bK-options").with_to_tag(&e.our_tag).cseq(2));
    let response = h.one_sent();
    assert_capabilities(&response);
    assert_eq!(to_tag(&response), Some(e.our_tag));
    assert!(h.events().is_empty());
}

// ---------------------------------------------------------------------------
// Re-offers and INFO inside the dialog.
// ---------------------------------------------------------------------------

#[test]
fn reinvite_with_sendonly_sdp_raises_a_reoffer_and_accept_answers_with_the_new_sdp() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER));
    let sent = h.sent();
    assert!(
        sent.iter().all(|m| status(m) == 100),
        "nothing final before the application answers: {sent:#?}"
    );
    let events = h.events();
    let [Event::Reoffer {
        call,
        sdp: Some(sdp),
    }] = events.as_slice()
    else {
        panic!("expected a Reoffer with SDP, got {events:#?}");
    };
    assert_eq!(*call, e.call);
    assert!(std::str::from_utf8(sdp).unwrap().contains("a=sendonly"));

    let ok = h.accept_with(e.call, HOLD_ANSWER);
    assert!(is_response(&ok, 200, "INVITE"));
    assert_eq!(ok.header("CSeq"), Some("2 INVITE"));
    assert_eq!(to_tag(&ok), Some(e.our_tag.clone()));
    assert_eq!(body(&ok), HOLD_ANSWER);
    assert!(ok.has_header("Contact"));
}

#[test]
fn reinvite_gets_100_trying_and_its_retransmission_gets_it_again() {
    // RFC 3261 §17.2.1: the application answers asynchronously, so the
    // INVITE server transaction sends 100 Trying itself.
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER));
    let trying = h.one_sent();
    assert!(is_response(&trying, 100, "INVITE"));
    h.events();
    h.advance_to(ms(500));
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER));
    assert_eq!(h.one_sent(), trying);
    assert!(h.events().is_empty(), "no second Reoffer");
}

#[test]
fn reinvite_200_is_retransmitted_until_the_ack() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER));
    h.sent();
    h.events();
    h.accept_with(e.call, HOLD_ANSWER);
    let log = h.advance_to(ms(4_000));
    assert_eq!(
        offsets(&log, |m| is_response(m, 200, "INVITE")),
        vec![500, 1500, 3500]
    );
    assert!(log.iter().all(|s| body(&s.message) == HOLD_ANSWER));
    h.receive(&ack("z9hG4bK-reack", &e.our_tag, 2));
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [Event::CallConfirmed { call, .. }] if *call == e.call),
        "{events:#?}"
    );
    assert!(h.advance_to(ms(60_000)).is_empty());
    assert_eq!(h.endpoint.active_calls(), 1);
}

#[test]
fn rejected_reinvite_keeps_the_call_and_its_488_stops_on_ack() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER));
    h.sent();
    h.events();
    h.endpoint.reject(e.call, 488, h.now).unwrap();
    let refused = h.one_sent();
    assert!(is_response(&refused, 488, "INVITE"));
    assert!(h.events().is_empty(), "the call goes on");
    let log = h.advance_to(ms(1_000));
    assert_eq!(offsets(&log, |m| m.status() == Some(488)), vec![500]);
    h.receive(&ack("z9hG4bK-reinvite", &e.our_tag, 2));
    assert!(h.advance_to(ms(40_000)).is_empty());
    assert_eq!(h.endpoint.active_calls(), 1);
}

#[test]
fn reinvite_while_one_is_pending_gets_500_with_retry_after() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER));
    h.sent();
    h.events();
    h.receive(&reinvite("z9hG4bK-reinvite2", &e.our_tag, 3, OFFER));
    let response = h.one_sent();
    assert_eq!(status(&response), 500);
    assert!(response.has_header("Retry-After"));
    assert!(h.events().is_empty());
}

#[test]
fn update_with_sdp_raises_a_reoffer_and_accept_answers_200_with_sdp() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&update("z9hG4bK-update", &e.our_tag, 2, HOLD_OFFER));
    assert!(h.sent().is_empty());
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [Event::Reoffer { call, sdp: Some(_) }] if *call == e.call),
        "{events:#?}"
    );
    let ok = h.accept_with(e.call, HOLD_ANSWER);
    assert!(is_response(&ok, 200, "UPDATE"));
    assert_eq!(body(&ok), HOLD_ANSWER);
    assert_eq!(ok.header("Content-Type"), Some("application/sdp"));
    assert!(ok.has_header("Contact"), "UPDATE is a target refresh");
    assert!(
        h.advance_to(ms(40_000)).is_empty(),
        "a non-INVITE 200 is not retransmitted by timer"
    );
}

#[test]
fn pending_update_gets_487_when_the_caller_hangs_up() {
    // RFC 3261 §15.1.2: requests pending on a dialog that ends still get a
    // final response, and their transactions end.
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&update("z9hG4bK-update", &e.our_tag, 2, HOLD_OFFER));
    h.events();
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 3));
    let sent = h.sent();
    let codes: Vec<(u16, String)> = sent.iter().map(|m| (status(m), cseq_method(m))).collect();
    assert!(codes.contains(&(200, "BYE".to_string())), "{codes:?}");
    assert!(codes.contains(&(487, "UPDATE".to_string())), "{codes:?}");
    h.advance_to(ms(40_000));
    assert_eq!(h.endpoint.active_transactions(), 0);
}

#[test]
fn pending_reinvite_gets_487_when_we_hang_up() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&reinvite("z9hG4bK-reinvite", &e.our_tag, 2, HOLD_OFFER));
    h.sent();
    h.events();
    h.endpoint.hangup(e.call, h.now).unwrap();
    let sent = h.sent();
    assert!(
        sent.iter().any(|m| is_response(m, 487, "INVITE")),
        "{sent:#?}"
    );
    assert!(sent.iter().any(|m| is_request(m, "BYE")), "{sent:#?}");
}

#[test]
fn info_with_dtmf_relay_gets_200_and_an_info_event() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&info("z9hG4bK-info", &e.our_tag, 2));
    let ok = h.one_sent();
    assert!(is_response(&ok, 200, "INFO"));
    let events = h.events();
    let [Event::Info {
        call,
        content_type,
        body,
    }] = events.as_slice()
    else {
        panic!("expected one Info event, got {events:#?}");
    };
    assert_eq!(*call, e.call);
    assert_eq!(content_type, "application/dtmf-relay");
    assert_eq!(&body[..], b"Signal=5\r\nDuration=160\r\n");
}

#[test]
fn info_with_a_text_plain_body_gets_415() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&info("z9hG4bK-info", &e.our_tag, 2).body("text/plain", "hello"));
    let response = h.one_sent();
    assert_eq!(status(&response), 415);
    assert_eq!(response.header("Accept"), Some(ACCEPT));
    assert!(h.events().is_empty());
}

// ---------------------------------------------------------------------------
// Admission.
// ---------------------------------------------------------------------------

#[test]
fn untrusted_source_gets_a_bare_403() {
    let stranger = Flow {
        remote: "192.0.2.10:5060".parse().unwrap(),
        ..udp_flow()
    };
    let mut h = Harness::over(stranger);
    h.receive(&invite("z9hG4bK-invite").via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-x"));
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    let forbidden = &sent[0].message;
    assert_eq!(status(forbidden), 403);
    assert!(
        !forbidden.has_header("Server"),
        "no product token to strangers"
    );
    assert!(!forbidden.has_header("Allow"));
    assert!(
        to_tag(forbidden).is_some(),
        "a final response carries a To tag"
    );
    assert_eq!(sent[0].flow.remote, stranger.remote);
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.stats().refused_acl, 1);

    h.receive(&ack("z9hG4bK-x", "t", 1).via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-x"));
    assert!(h.sent().is_empty(), "an ACK is never answered");
    h.receive(&options("z9hG4bK-o").via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-o"));
    assert_eq!(status(&h.one_sent()), 403);
    assert_eq!(
        h.endpoint.stats().refused_acl,
        1,
        "the ACK and the OPTIONS are no refused calls"
    );
    h.receive_bytes(b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\nno colon\r\n\r\n");
    assert!(h.sent().is_empty(), "no 400 to strangers");
}

#[test]
fn invite_beyond_max_calls_gets_503_with_retry_after() {
    let mut h = Harness::new();
    for n in 0..10 {
        let call_id = format!("call-{n}");
        h.offer(&invite(&format!("z9hG4bK-{n}")).call_id(&call_id));
    }
    h.receive(&invite("z9hG4bK-eleventh").call_id("call-10"));
    let response = h.one_sent();
    assert_eq!(status(&response), 503);
    assert!(response.has_header("Retry-After"));
    let events = h.events();
    let [Event::CallRefused(refused)] = events.as_slice() else {
        panic!("expected the refusal for the call record, got {events:#?}");
    };
    assert_eq!(refused.call_id, "call-10");
    assert_eq!(refused.reason, "503 capacity");
    assert_eq!(h.endpoint.active_calls(), 10);
    assert_eq!(h.endpoint.stats().refused_capacity, 1);
}

#[test]
fn draining_refuses_new_calls_with_503_and_keeps_live_ones() {
    let mut h = Harness::new();
    let e = h.establish();
    h.endpoint.set_draining(true);
    h.receive(&invite("z9hG4bK-new").call_id("another-call"));
    let response = h.one_sent();
    assert_eq!(status(&response), 503);
    assert!(response.has_header("Retry-After"));
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [Event::CallRefused(refused)]
            if refused.call_id == "another-call" && refused.reason == "503 draining"),
        "{events:#?}"
    );
    h.receive(&bye("z9hG4bK-bye", &e.our_tag, 2));
    assert_eq!(status(&h.one_sent()), 200);
    assert_eq!(
        Harness::ended(&h.events(), e.call),
        Some(EndReason::RemoteBye)
    );
}

// ---------------------------------------------------------------------------
// TCP.
// ---------------------------------------------------------------------------

fn tcp_invite(branch: &str) -> Req {
    invite(branch)
        .via(&format!("SIP/2.0/TCP 127.0.0.1:5061;branch={branch}"))
        .contact("<sip:alice@127.0.0.1:5061;transport=tcp>")
}

#[test]
fn tcp_responses_go_back_on_the_same_connection() {
    let mut h = Harness::over(tcp_flow(7));
    h.receive(&tcp_invite("z9hG4bK-invite"));
    let sent = h.transmits();
    assert_eq!(
        statuses(&sent.iter().map(|s| s.message.clone()).collect::<Vec<_>>()),
        vec![100]
    );
    assert_eq!(sent[0].flow, tcp_reply_flow(7));
    let call = match h.events().as_slice() {
        [Event::IncomingCall(incoming)] => incoming.call,
        other => panic!("{other:#?}"),
    };
    h.endpoint
        .accept(call, Bytes::from_static(ANSWER.as_bytes()), h.now)
        .unwrap();
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(status(&sent[0].message), 200);
    assert_eq!(sent[0].flow, tcp_reply_flow(7));
    assert_eq!(
        sent[0].message.header("Contact"),
        Some("<sip:10000@127.0.0.1:5060;transport=tcp>")
    );
}

#[test]
fn tcp_rejection_is_not_retransmitted() {
    let mut h = Harness::over(tcp_flow(7));
    h.receive(&tcp_invite("z9hG4bK-invite"));
    h.sent();
    let call = match h.events().as_slice() {
        [Event::IncomingCall(incoming)] => incoming.call,
        other => panic!("{other:#?}"),
    };
    h.endpoint.reject(call, 486, h.now).unwrap();
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].flow.connection, Some(7));
    let log = h.advance_to(ms(60_000));
    assert!(log.is_empty(), "no timer G over TCP: {log:#?}");
    assert_eq!(h.endpoint.active_transactions(), 0, "timer H ended it");
}

#[test]
fn tcp_200_is_still_retransmitted_end_to_end_until_the_ack() {
    // RFC 3261 §13.3.1.4: the UAS core retransmits the 2xx "even if the
    // transport at the UAS is reliable", since hops further on may be UDP.
    let mut h = Harness::over(tcp_flow(7));
    h.receive(&tcp_invite("z9hG4bK-invite"));
    h.sent();
    let call = match h.events().as_slice() {
        [Event::IncomingCall(incoming)] => incoming.call,
        other => panic!("{other:#?}"),
    };
    let ok = h.accept(call);
    let log = h.advance_to(ms(4_000));
    assert_eq!(
        offsets(&log, |m| m.status() == Some(200)),
        vec![500, 1500, 3500]
    );
    assert!(log.iter().all(|s| s.flow == tcp_reply_flow(7)));
    let ack = ack("z9hG4bK-ack", &to_tag(&ok).unwrap(), 1)
        .via("SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK-ack");
    h.receive(&ack);
    assert!(matches!(
        h.events().as_slice(),
        [Event::CallConfirmed { .. }]
    ));
    assert!(h.advance_to(ms(60_000)).is_empty());
    assert_eq!(h.endpoint.active_calls(), 1);
}

#[test]
fn tcp_ack_timeout_still_ends_the_call_with_bye() {
    let mut h = Harness::over(tcp_flow(7));
    h.receive(&tcp_invite("z9hG4bK-invite"));
    h.sent();
    let call = match h.events().as_slice() {
        [Event::IncomingCall(incoming)] => incoming.call,
        other => panic!("{other:#?}"),
    };
    h.accept(call);
    let log = h.advance_to(ms(32_000));
    let byes: Vec<&Sent> = log
        .iter()
        .filter(|s| is_request(&s.message, "BYE"))
        .collect();
    assert_eq!(byes.len(), 1, "one BYE and no timer E over TCP");
    assert_eq!(byes[0].at, ms(32_000));
    assert_eq!(byes[0].flow.transport, Transport::Tcp);
    assert_eq!(
        Harness::ended(&h.events(), call),
        Some(EndReason::AckTimeout)
    );
}

#[test]
fn a_call_keeps_its_connection_in_use_until_it_ends() {
    let mut h = Harness::over(tcp_flow(7));
    let call = h.offer(&tcp_invite("z9hG4bK-invite"));
    let ok = h.accept(call);
    let our_tag = to_tag(&ok).unwrap();
    h.receive(
        &ack("z9hG4bK-ack", &our_tag, 1).via("SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK-ack"),
    );
    // An OPTIONS on another connection uses it only while it is answered.
    h.receive_on(
        &options("z9hG4bK-options").via("SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK-options"),
        tcp_flow(9),
    );
    h.advance_to(ms(1_000));
    let in_use = h.endpoint.connections_in_use();
    assert_eq!(in_use.ids, HashSet::from([7]));
    assert!(in_use.remotes.is_empty());
    h.receive(
        &bye("z9hG4bK-bye", &our_tag, 2).via("SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK-bye"),
    );
    // The INVITE transaction absorbs retransmissions for timer L (64·T1).
    h.advance_to(ms(40_000));
    assert_eq!(h.endpoint.connections_in_use(), ConnectionsInUse::default());
}

#[test]
fn udp_calls_use_no_connection() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    h.accept(call);
    assert_eq!(h.endpoint.connections_in_use(), ConnectionsInUse::default());
}

// ---------------------------------------------------------------------------
// RFC 2543 peers.
// ---------------------------------------------------------------------------

#[test]
fn rfc2543_invite_is_answered_and_its_retransmission_matched() {
    const OLD_VIA: &str = "SIP/2.0/UDP 127.0.0.1:5061";
    let old = |method: &str| {
        request(method, "unused")
            .via(OLD_VIA)
            .from("<sip:alice@127.0.0.1:5061>")
            .max_forwards(None)
    };
    let old_invite = old("INVITE")
        .contact(CALLER_CONTACT)
        .body("application/sdp", OFFER);
    let mut h = Harness::new();
    let call = h.offer(&old_invite);

    h.advance_to(ms(500));
    h.receive(&old_invite);
    assert_eq!(status(&h.one_sent()), 100, "matched without a branch");
    assert!(h.events().is_empty(), "no second IncomingCall");

    let ok = h.accept(call);
    let our_tag = to_tag(&ok).expect("we tag the To even for RFC 2543 peers");
    assert_eq!(ok.header("From"), Some("<sip:alice@127.0.0.1:5061>"));
    h.receive(&old_invite);
    assert!(h.sent().is_empty(), "absorbed after the 2xx");

    h.receive(&old("ACK").with_to_tag(&our_tag));
    let events = h.events();
    assert!(
        matches!(events.as_slice(), [Event::CallConfirmed { call: c, .. }] if *c == call),
        "{events:#?}"
    );
    let log = h.advance_to(ms(40_000));
    assert!(
        offsets(&log, |m| m.status() == Some(200)).is_empty(),
        "the ACK stopped the 2xx: {log:#?}"
    );

    h.receive(&old("BYE").with_to_tag(&our_tag).cseq(2));
    assert!(is_response(&h.one_sent(), 200, "BYE"));
    assert_eq!(
        Harness::ended(&h.events(), call),
        Some(EndReason::RemoteBye)
    );
}

// ---------------------------------------------------------------------------
// Bytes that are not SIP.
// ---------------------------------------------------------------------------

#[test]
fn garbage_bytes_produce_no_transmit_and_no_panic() {
    let mut h = Harness::new();
    let garbage: [&[u8]; 7] = [
        b"",
        b"\r\n\r\n",
        b"\x00\x01\x02\x03\xff\xfe",
        b"hello world",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"INVITE\r\n\r\n",
        b"SIP/2.0 200\r\n\r\n",
    ];
    for bytes in garbage {
        h.receive_bytes(bytes);
        let sent = h.sent();
        assert!(
            sent.is_empty(),
            "{:?} got {sent:#?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert!(h.events().is_empty());
    assert!(h.advance_to(ms(60_000)).is_empty());
}

#[test]
fn stray_responses_are_ignored() {
    let mut h = Harness::new();
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnothing\r\n\
        From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: x\r\n\
        CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    h.receive_bytes(stray.as_bytes());
    assert!(h.sent().is_empty());
    assert!(h.events().is_empty());
}

#[test]
fn header_line_without_a_colon_gets_400_when_a_via_is_found() {
    let mut h = Harness::new();
    h.receive_bytes(
        b"INVITE sip:10000@127.0.0.1 SIP/2.0\r\n\
          Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-broken\r\n\
          From: <sip:alice@127.0.0.1>;tag=1\r\n\
          To: <sip:10000@127.0.0.1>\r\n\
          this line has no colon\r\n\
          Call-ID: broken@127.0.0.1\r\n\
          CSeq: 1 INVITE\r\n\
          Content-Length: 0\r\n\r\n",
    );
    let response = h.one_sent();
    assert_eq!(status(&response), 400);
    let StartLine::Response { reason, .. } = &response.start else {
        unreachable!()
    };
    assert_eq!(reason, "Header line without a colon");
    assert_eq!(response.header("Call-ID"), Some("broken@127.0.0.1"));
    assert_eq!(response.header("CSeq"), Some("1 INVITE"));
    assert!(
        to_tag(&response).is_some(),
        "a final response carries a To tag"
    );
    assert!(h.events().is_empty());
    assert_eq!(h.endpoint.stats().malformed, 1);
}

// ---------------------------------------------------------------------------
// Blind transfer: REFER to the caller, its answer, and NOTIFY (RFC 3515).
// ---------------------------------------------------------------------------

const REFER_TO: &str =
    "<sip:queue@127.0.0.1:5070?X-Ticket-Number=2611230001&User-to-User=6162%3Bencoding%3Dhex>";
const TRANSFER_LIMIT: Duration = Duration::from_secs(20);

/// Starts a transfer on an established call and returns the REFER sent.
fn referred(h: &mut Harness) -> (Established, Sent) {
    let e = h.establish();
    h.endpoint
        .refer(e.call, REFER_TO, TRANSFER_LIMIT, h.now)
        .expect("refer");
    let mut sent = h.transmits();
    assert_eq!(sent.len(), 1, "one REFER: {sent:#?}");
    (e, sent.remove(0))
}

/// What the caller's stack reports on the REFER it accepted.
fn notify(branch: &str, our_tag: &str, cseq: u32, sipfrag: &str, state: &str) -> Req {
    request("NOTIFY", branch)
        .with_to_tag(our_tag)
        .cseq(cseq)
        .contact(CALLER_CONTACT)
        .header("Event: refer")
        .header(&format!("Subscription-State: {state}"))
        .body("message/sipfrag", sipfrag)
}

fn answer_refer(h: &mut Harness, refer: &Message, code: u16, reason: &str) {
    h.endpoint.handle_message(
        response_for(refer, code, reason).as_bytes(),
        udp_flow(),
        h.now,
    );
}

/// The transfer outcomes among `events`.
fn transfer_outcomes(events: &[Event]) -> Vec<Option<TransferFailure>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TransferSucceeded { .. } => Some(None),
            Event::TransferFailed { reason, .. } => Some(Some(*reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn refer_goes_to_the_callers_contact_in_the_dialog_with_refer_to_and_referred_by() {
    let mut h = Harness::new();
    let (e, refer) = referred(&mut h);
    let message = &refer.message;
    assert!(is_request(message, "REFER"));
    assert_eq!(message.request_uri(), Some("sip:alice@127.0.0.1:5061"));
    assert_eq!(refer.flow.remote, "127.0.0.1:5061".parse().unwrap());
    assert_eq!(tag_of(message.header("From")), Some(e.our_tag.clone()));
    assert_eq!(tag_of(message.header("To")).as_deref(), Some(CALLER_TAG));
    assert_eq!(message.header("Call-ID"), Some(CALL_ID));
    assert_eq!(cseq_method(message), "REFER");
    assert_eq!(message.header("Refer-To"), Some(REFER_TO));
    assert_eq!(
        message.header("Referred-By"),
        Some("<sip:10000@127.0.0.1:5060>")
    );
    assert_eq!(
        message.header("Contact"),
        Some("<sip:10000@127.0.0.1:5060>")
    );
    let refer_to = NameAddr::parse(message.header("Refer-To").unwrap()).unwrap();
    let uri = Uri::parse(&refer_to.uri).unwrap();
    assert_eq!((uri.host.as_str(), uri.port), ("127.0.0.1", Some(5070)));
    assert!(h.events().is_empty());
}

#[test]
fn accepted_refer_and_a_200_sipfrag_notify_succeed_and_hangup_sends_bye() {
    let mut h = Harness::new();
    let (e, refer) = referred(&mut h);
    answer_refer(&mut h, &refer.message, 202, "Accepted");
    assert!(h.sent().is_empty());
    assert!(h.events().is_empty(), "accepted is not yet done");

    h.receive(&notify(
        "z9hG4bK-n1",
        &e.our_tag,
        2,
        "SIP/2.0 100 Trying\r\n",
        "active;expires=60",
    ));
    assert!(is_response(&h.one_sent(), 200, "NOTIFY"));
    assert!(h.events().is_empty(), "100 is progress only");

    h.receive(&notify(
        "z9hG4bK-n2",
        &e.our_tag,
        3,
        "SIP/2.0 200 OK\r\n",
        "terminated;reason=noresource",
    ));
    assert!(is_response(&h.one_sent(), 200, "NOTIFY"));
    let events = h.events();
    assert_eq!(transfer_outcomes(&events), vec![None], "{events:#?}");
    assert_eq!(h.endpoint.active_calls(), 1, "the caller leg is still up");

    h.endpoint.hangup(e.call, h.now).unwrap();
    assert!(is_request(&h.one_sent(), "BYE"));
    let log = h.advance_to(ms(60_000));
    assert!(
        log.iter().all(|s| is_request(&s.message, "BYE")),
        "only BYE retransmissions: {log:#?}"
    );
    let events = h.events();
    assert!(
        transfer_outcomes(&events).is_empty(),
        "no late timeout: {events:#?}"
    );
}

#[test]
fn a_486_sipfrag_fails_the_transfer_and_the_call_goes_on() {
    let mut h = Harness::new();
    let (e, refer) = referred(&mut h);
    answer_refer(&mut h, &refer.message, 202, "Accepted");
    h.receive(&notify(
        "z9hG4bK-n1",
        &e.our_tag,
        2,
        "SIP/2.0 486 Busy Here\r\n",
        "terminated;reason=noresource",
    ));
    assert!(is_response(&h.one_sent(), 200, "NOTIFY"));
    let events = h.events();
    assert_eq!(
        transfer_outcomes(&events),
        vec![Some(TransferFailure::TargetFailed(486))]
    );
    assert_eq!(h.endpoint.active_calls(), 1);
    // A second transfer may start once the first one is over.
    h.endpoint
        .refer(e.call, REFER_TO, TRANSFER_LIMIT, h.now)
        .expect("a new transfer");
    assert!(is_request(&h.one_sent(), "REFER"));
}

#[test]
fn refer_refused_with_an_error_fails_the_transfer() {
    for code in [405, 481, 603] {
        let mut h = Harness::new();
        let (_, refer) = referred(&mut h);
        answer_refer(&mut h, &refer.message, 100, "Trying");
        assert!(h.events().is_empty());
        answer_refer(&mut h, &refer.message, code, "No");
        let events = h.events();
        assert_eq!(
            transfer_outcomes(&events),
            vec![Some(TransferFailure::Refused(code))],
            "{code}"
        );
        assert_eq!(h.endpoint.active_calls(), 1);
    }
}

#[test]
fn unanswered_refer_is_retransmitted_and_fails_at_timer_f() {
    let mut h = Harness::new();
    let e = h.establish();
    h.endpoint
        .refer(e.call, REFER_TO, Duration::from_secs(60), h.now)
        .unwrap();
    let log = h.advance_to(ms(31_999));
    let mut expected = vec![0];
    expected.extend(BACKOFF_MS);
    assert_eq!(offsets(&log, |m| is_request(m, "REFER")), expected);
    assert!(h.events().is_empty());
    h.advance_to(ms(32_000));
    assert_eq!(
        transfer_outcomes(&h.events()),
        vec![Some(TransferFailure::NoAnswer)]
    );
    h.advance_to(ms(120_000));
    assert!(h.events().is_empty(), "reported once");
}

#[test]
fn no_final_notify_within_the_limit_fails_the_transfer() {
    let mut h = Harness::new();
    let (e, refer) = referred(&mut h);
    answer_refer(&mut h, &refer.message, 202, "Accepted");
    h.receive(&notify(
        "z9hG4bK-n1",
        &e.our_tag,
        2,
        "SIP/2.0 180 Ringing\r\n",
        "active;expires=60",
    ));
    h.sent();
    h.advance_to(TRANSFER_LIMIT - ms(1));
    assert!(h.events().is_empty());
    h.advance_to(TRANSFER_LIMIT);
    assert_eq!(
        transfer_outcomes(&h.events()),
        vec![Some(TransferFailure::TimedOut)]
    );
    // A final NOTIFY after that is answered and changes nothing.
    h.receive(&notify(
        "z9hG4bK-n2",
        &e.our_tag,
        3,
        "SIP/2.0 200 OK\r\n",
        "terminated",
    ));
    assert!(is_response(&h.one_sent(), 200, "NOTIFY"));
    assert!(h.events().is_empty());
}

#[test]
fn notify_before_the_202_counts_as_acceptance() {
    let mut h = Harness::new();
    let (e, refer) = referred(&mut h);
    h.receive(&notify(
        "z9hG4bK-n1",
        &e.our_tag,
        2,
        "SIP/2.0 100 Trying\r\n",
        "active",
    ));
    assert!(is_response(&h.one_sent(), 200, "NOTIFY"));
    answer_refer(&mut h, &refer.message, 202, "Accepted");
    h.receive(&notify(
        "z9hG4bK-n2",
        &e.our_tag,
        3,
        "SIP/2.0 200 OK\r\n",
        "terminated",
    ));
    h.sent();
    assert_eq!(transfer_outcomes(&h.events()), vec![None]);
}

#[test]
fn subscription_terminated_without_a_final_status_fails_the_transfer() {
    let mut h = Harness::new();
    let (e, refer) = referred(&mut h);
    answer_refer(&mut h, &refer.message, 202, "Accepted");
    h.receive(&notify(
        "z9hG4bK-n1",
        &e.our_tag,
        2,
        "SIP/2.0 100 Trying\r\n",
        "terminated;reason=timeout",
    ));
    assert!(is_response(&h.one_sent(), 200, "NOTIFY"));
    assert_eq!(
        transfer_outcomes(&h.events()),
        vec![Some(TransferFailure::Abandoned)]
    );
}

#[test]
fn notify_without_our_refer_gets_481_and_other_packages_489() {
    let mut h = Harness::new();
    let e = h.establish();
    h.receive(&notify(
        "z9hG4bK-n1",
        &e.our_tag,
        2,
        "SIP/2.0 200 OK\r\n",
        "terminated",
    ));
    assert!(is_response(&h.one_sent(), 481, "NOTIFY"));
    h.endpoint
        .refer(e.call, REFER_TO, TRANSFER_LIMIT, h.now)
        .unwrap();
    h.sent();
    let dialog_event = request("NOTIFY", "z9hG4bK-n2")
        .with_to_tag(&e.our_tag)
        .cseq(3)
        .header("Event: dialog")
        .header("Subscription-State: active");
    h.receive(&dialog_event);
    let refused = h.one_sent();
    assert!(is_response(&refused, 489, "NOTIFY"));
    assert_eq!(refused.header("Allow-Events"), Some("refer"));
    // Out of any dialog there is no subscription either.
    h.receive(
        &request("NOTIFY", "z9hG4bK-n3")
            .call_id("another-call")
            .header("Event: refer"),
    );
    assert!(is_response(&h.one_sent(), 481, "NOTIFY"));
    assert!(h.events().is_empty());
}

#[test]
fn notify_with_another_body_gets_415_and_a_broken_sipfrag_400() {
    let mut h = Harness::new();
    let (e, _) = referred(&mut h);
    h.receive(
        &notify("z9hG4bK-n1", &e.our_tag, 2, "SIP/2.0 200 OK", "active").body("text/plain", "done"),
    );
    let refused = h.one_sent();
    assert!(is_response(&refused, 415, "NOTIFY"));
    assert_eq!(refused.header("Accept"), Some("message/sipfrag"));
    h.receive(&notify(
        "z9hG4bK-n2",
        &e.our_tag,
        3,
        "all good",
        "terminated",
    ));
    assert!(is_response(&h.one_sent(), 400, "NOTIFY"));
    assert!(h.events().is_empty(), "neither ends the transfer");
}

#[test]
fn refer_needs_an_established_call_and_one_transfer_at_a_time() {
    let mut h = Harness::new();
    let call = h.offer(&invite("z9hG4bK-invite"));
    assert_eq!(
        h.endpoint.refer(call, REFER_TO, TRANSFER_LIMIT, h.now),
        Err(CallError::NotEstablished)
    );
    let mut h = Harness::new();
    let (e, _) = referred(&mut h);
    assert_eq!(
        h.endpoint.refer(e.call, REFER_TO, TRANSFER_LIMIT, h.now),
        Err(CallError::TransferInProgress)
    );
    assert_eq!(
        h.endpoint
            .refer(CallHandle(999), REFER_TO, TRANSFER_LIMIT, h.now),
        Err(CallError::NoSuchCall)
    );
    assert!(h.sent().is_empty());
}

// ---------------------------------------------------------------------------
// Calls we place (bridged transfers): the INVITE client side.
// ---------------------------------------------------------------------------

const AGENT: &str = "sip:agents@127.0.0.1:5070";
const AGENT_ADDRESS: &str = "127.0.0.1:5070";

fn agent_flow() -> Flow {
    Flow {
        remote: "127.0.0.1:5070".parse().unwrap(),
        ..udp_flow()
    }
}

impl Harness {
    /// Places a call to the agent on behalf of an established call and
    /// returns the leg and the INVITE sent.
    fn call_agent(&mut self, ring_timeout: Duration) -> (CallHandle, Message) {
        let caller = self.establish().call;
        let leg = self
            .endpoint
            .call_out(
                OutgoingRequest {
                    target: AGENT.into(),
                    addresses: vec![AGENT_ADDRESS.parse().unwrap()],
                    from_user: "13800138000".into(),
                    headers: vec![("X-Caller".into(), "13800138000".into())],
                    sdp: Bytes::from_static(ANSWER.as_bytes()),
                    credentials: None,
                    ring_timeout,
                    origin: Origin::Call(caller),
                },
                self.now,
            )
            .expect("call_out");
        let invite = self.one_sent();
        (leg, invite)
    }

    /// The agent's response to `invite`, with its tag and Contact.
    fn agent_answers(&mut self, invite: &Message, code: u16, sdp: Option<&str>) {
        let mut text = format!("SIP/2.0 {code} Whatever\r\n");
        for via in invite.header_lines("Via") {
            text.push_str(&format!("Via: {via}\r\n"));
        }
        for name in ["From", "Call-ID", "CSeq"] {
            text.push_str(&format!("{name}: {}\r\n", invite.header(name).unwrap()));
        }
        text.push_str(&format!(
            "To: {};tag=agent\r\n",
            invite.header("To").unwrap()
        ));
        text.push_str("Contact: <sip:a7@127.0.0.1:5071>\r\n");
        match sdp {
            Some(sdp) => text.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )),
            None => text.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.endpoint
            .handle_message(text.as_bytes(), agent_flow(), self.now);
    }
}

#[test]
fn an_outgoing_invite_is_sent_to_the_target_and_retransmitted_on_timer_a_until_timer_b() {
    let mut h = Harness::new();
    let (leg, invite) = h.call_agent(ms(60_000));
    assert_eq!(invite.request_uri(), Some(AGENT));
    assert_eq!(invite.header("X-Caller"), Some("13800138000"));
    assert!(invite
        .header("From")
        .is_some_and(|f| f.starts_with("<sip:13800138000@127.0.0.1:5060>;tag=")));
    assert_eq!(invite.header("CSeq"), Some("1 INVITE"));
    assert_eq!(body(&invite), ANSWER);
    let log = h.advance_to(ms(40_000));
    assert!(log.iter().all(|s| s.flow.remote == agent_flow().remote));
    // Timer A: T1 doubling (no T2 cap for INVITE), until timer B at 64·T1.
    assert_eq!(
        offsets(&log, |m| is_request(m, "INVITE")),
        vec![500, 1500, 3500, 7500, 15500, 31500]
    );
    let events = h.events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::OutgoingFailed { leg: l, failure: UacFailure::Unreachable } if *l == leg
        )),
        "{events:#?}"
    );
}

#[test]
fn an_answered_outgoing_call_is_acked_again_for_each_2xx_and_ended_with_bye() {
    let mut h = Harness::new();
    let (leg, invite) = h.call_agent(ms(60_000));
    h.agent_answers(&invite, 180, None);
    assert!(h.sent().is_empty());
    h.agent_answers(&invite, 200, Some(OFFER));
    let ack = h.one_sent();
    assert!(is_request(&ack, "ACK"));
    assert_eq!(ack.request_uri(), Some("sip:a7@127.0.0.1:5071"));
    assert_eq!(ack.header("CSeq"), Some("1 ACK"));
    assert_eq!(to_tag(&ack).as_deref(), Some("agent"));
    assert!(
        matches!(h.events().as_slice(), [Event::OutgoingAnswered { leg: l, sdp }] if *l == leg && sdp == OFFER.as_bytes())
    );
    // The 2xx again (our ACK was lost): the same ACK again, no new event.
    h.agent_answers(&invite, 200, Some(OFFER));
    assert_eq!(h.one_sent().to_bytes(), ack.to_bytes());
    assert!(h.events().is_empty());
    // The ring timeout passing changes nothing now.
    let log = h.advance_to(ms(61_000));
    assert!(offsets(&log, |m| is_request(m, "CANCEL")).is_empty());
    h.endpoint.hangup(leg, h.now).unwrap();
    let bye = h.one_sent();
    assert!(is_request(&bye, "BYE"));
    assert_eq!(bye.header("CSeq"), Some("2 BYE"));
    assert_eq!(bye.header("Call-ID"), invite.header("Call-ID"));
    assert_eq!(
        Harness::ended(&h.events(), leg),
        Some(EndReason::LocalHangup)
    );
}

#[test]
fn an_unanswered_outgoing_call_is_cancelled_at_the_ring_timeout_and_its_487_acked() {
    let mut h = Harness::new();
    let (leg, invite) = h.call_agent(ms(2_000));
    h.agent_answers(&invite, 180, None);
    let log = h.advance_to(ms(2_000));
    let cancels: Vec<&Message> = log
        .iter()
        .map(|s| &s.message)
        .filter(|m| is_request(m, "CANCEL"))
        .collect();
    assert_eq!(cancels.len(), 1, "{log:#?}");
    assert_eq!(cancels[0].header("Via"), invite.header("Via"));
    assert_eq!(cancels[0].header("CSeq"), Some("1 CANCEL"));
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::OutgoingFailed { leg: l, failure: UacFailure::NotAnswered } if *l == leg
    )));
    h.agent_answers(&invite, 487, None);
    let ack = h.one_sent();
    assert!(is_request(&ack, "ACK"));
    assert_eq!(ack.header("Via"), invite.header("Via"));
    assert!(h.events().is_empty(), "the failure was reported once");
}

#[test]
fn a_busy_target_is_acked_and_reported_and_a_bad_target_refused() {
    let mut h = Harness::new();
    let (leg, invite) = h.call_agent(ms(60_000));
    h.agent_answers(&invite, 486, None);
    let ack = h.one_sent();
    assert!(is_request(&ack, "ACK"));
    assert!(matches!(
        h.events().as_slice(),
        [Event::OutgoingFailed { leg: l, failure: UacFailure::Busy(486) }] if *l == leg
    ));
    // A retransmitted 486 gets the same ACK.
    h.agent_answers(&invite, 486, None);
    assert_eq!(h.one_sent().to_bytes(), ack.to_bytes());

    let caller = h.endpoint.calls().next().unwrap();
    let request = |target: &str, address: &str| OutgoingRequest {
        target: target.into(),
        addresses: address.parse().into_iter().collect(),
        from_user: String::new(),
        headers: Vec::new(),
        sdp: Bytes::new(),
        credentials: None,
        ring_timeout: ms(1000),
        origin: Origin::Call(caller),
    };
    // A name nobody resolved, a tel: URI, and only an address of the other
    // family than the caller's call.
    for (bad, address) in [
        ("sip:agents@pbx.example.com", ""),
        ("tel:+8610", "127.0.0.1:5060"),
        ("sip:a@[::1]:5070", "[::1]:5070"),
    ] {
        assert_eq!(
            h.endpoint.call_out(request(bad, address), h.now).err(),
            Some(CallError::BadTarget),
            "{bad}"
        );
    }
}

#[test]
fn a_target_with_transport_tcp_is_called_over_tcp() {
    let mut h = Harness::new();
    let caller = h.establish().call;
    h.endpoint
        .call_out(
            OutgoingRequest {
                target: "sip:agents@127.0.0.1:5070;transport=tcp".into(),
                addresses: vec!["127.0.0.1:5070".parse().unwrap()],
                from_user: "13800138000".into(),
                headers: Vec::new(),
                sdp: Bytes::from_static(ANSWER.as_bytes()),
                credentials: None,
                ring_timeout: ms(10_000),
                origin: Origin::Call(caller),
            },
            h.now,
        )
        .unwrap();
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].flow.transport, Transport::Tcp);
    assert_eq!(sent[0].flow.connection, None, "a new connection");
    assert_eq!(sent[0].flow.remote, "127.0.0.1:5070".parse().unwrap());
    let invite = &sent[0].message;
    assert!(invite
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TCP ")));
    assert!(invite
        .header("Contact")
        .is_some_and(|c| c.ends_with(";transport=tcp>")));
    // Reliable transport: no timer A retransmissions.
    let log = h.advance_to(ms(5_000));
    assert!(offsets(&log, |m| is_request(m, "INVITE")).is_empty());
}

#[test]
fn a_tcp_target_that_cannot_be_reached_fails_the_call_at_once() {
    let mut h = Harness::new();
    let caller = h.establish().call;
    let target: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let leg = h
        .endpoint
        .call_out(
            OutgoingRequest {
                target: "sip:agents@127.0.0.1:5070;transport=tcp".into(),
                addresses: vec![target],
                from_user: "13800138000".into(),
                headers: Vec::new(),
                sdp: Bytes::from_static(ANSWER.as_bytes()),
                credentials: None,
                ring_timeout: ms(60_000),
                origin: Origin::Call(caller),
            },
            h.now,
        )
        .unwrap();
    let _ = h.transmits();
    // A connection to some other peer failing changes nothing.
    h.endpoint
        .handle_tcp_failure("127.0.0.1:5099".parse().unwrap(), h.now);
    assert!(!h
        .events()
        .iter()
        .any(|e| matches!(e, Event::OutgoingFailed { .. })));
    h.endpoint.handle_tcp_failure(target, h.now);
    let events = h.events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::OutgoingFailed { leg: l, failure: UacFailure::Unreachable } if *l == leg
        )),
        "{events:#?}"
    );
    assert!(!h.endpoint.has_client_transactions());
}

#[path = "tls_tests.rs"]
mod tls;

// ---------------------------------------------------------------------------
// Behind a proxy (Kamailio): Contact per instance, route sets, OPTIONS
// probes, requests that name the proxy.
// ---------------------------------------------------------------------------

const PROXY: &str = "127.0.0.9:5070";
const PROXY_ROUTE: &str = "<sip:127.0.0.9:5070;lr;ftag=1928301774>";

/// A gateway instance at `local` whose requests come through the proxy.
fn behind_proxy(local: &str) -> Harness {
    Harness::over(Flow {
        local: local.parse().unwrap(),
        remote: PROXY.parse().unwrap(),
        ..udp_flow()
    })
}

/// A request as the proxy relays it: its Via on top of the caller's.
fn via_proxy(request: Req, branch: &str) -> Req {
    request.via(&format!(
        "SIP/2.0/UDP {PROXY};branch=z9hG4bK-proxy-{branch}, SIP/2.0/UDP 127.0.0.1:5061;branch={branch}"
    ))
}

/// An INVITE the proxy record-routed, answered and acknowledged through it.
fn establish_via_proxy(h: &mut Harness) -> Established {
    let invite = via_proxy(invite("z9hG4bK-invite"), "z9hG4bK-invite")
        .uri(&format!("sip:10000@{PROXY}"))
        .header(&format!("Record-Route: {PROXY_ROUTE}"));
    let call = h.offer(&invite);
    let ok = h.accept(call);
    assert_eq!(ok.header("Record-Route"), Some(PROXY_ROUTE));
    let our_tag = to_tag(&ok).expect("our 200 has a To tag");
    h.receive(&via_proxy(ack("z9hG4bK-ack", &our_tag, 1), "z9hG4bK-ack"));
    h.events();
    Established { call, our_tag }
}

#[test]
fn each_instance_puts_its_own_advertised_address_in_contact_and_via() {
    for local in ["127.0.0.2:5060", "127.0.0.3:5062"] {
        let mut h = behind_proxy(local);
        let e = establish_via_proxy(&mut h);
        h.endpoint.hangup(e.call, h.now).unwrap();
        let bye = h.one_sent();
        assert!(is_request(&bye, "BYE"));
        assert!(
            bye.header("Via").unwrap().contains(local),
            "{:?}",
            bye.header("Via")
        );
        assert_eq!(
            bye.header("Contact"),
            None,
            "a BYE needs no Contact; the 200 carried ours"
        );
        let mut h = behind_proxy(local);
        let call = h.offer(&via_proxy(invite("z9hG4bK-i2"), "z9hG4bK-i2"));
        let ok = h.accept(call);
        assert_eq!(
            ok.header("Contact"),
            Some(format!("<sip:10000@{local}>").as_str())
        );
    }
}

#[test]
fn requests_we_send_in_the_dialog_follow_the_record_route_through_the_proxy() {
    let mut h = behind_proxy("127.0.0.2:5060");
    let e = establish_via_proxy(&mut h);
    h.endpoint
        .refer(e.call, REFER_TO, TRANSFER_LIMIT, h.now)
        .unwrap();
    let bye_and_refer = {
        let refer = h.transmits().remove(0);
        h.endpoint.hangup(e.call, h.now).unwrap();
        let bye = h.transmits().remove(0);
        [refer, bye]
    };
    for sent in bye_and_refer {
        let method = sent.message.method().unwrap().as_str().to_string();
        // Loose routing: the caller's Contact stays the Request-URI, the
        // proxy's Record-Route becomes the Route, and the request goes to
        // the proxy, not straight to the caller.
        assert_eq!(
            sent.message.request_uri(),
            Some("sip:alice@127.0.0.1:5061"),
            "{method}"
        );
        assert_eq!(
            sent.message.header_values("Route").collect::<Vec<_>>(),
            vec![PROXY_ROUTE],
            "{method}"
        );
        assert_eq!(sent.flow.remote, PROXY.parse().unwrap(), "{method}");
    }
}

#[test]
fn options_probes_get_503_with_retry_after_while_draining() {
    let mut h = behind_proxy("127.0.0.2:5060");
    let e = establish_via_proxy(&mut h);
    h.receive(&via_proxy(
        options("z9hG4bK-o1").call_id("probe-o1"),
        "z9hG4bK-o1",
    ));
    assert_capabilities(&h.one_sent());
    h.endpoint.set_draining(true);
    h.receive(&via_proxy(
        options("z9hG4bK-o2").call_id("probe-o2"),
        "z9hG4bK-o2",
    ));
    let probe = h.one_sent();
    assert_eq!(status(&probe), 503);
    assert_eq!(probe.header("Retry-After"), Some(DRAINING_RETRY_AFTER));
    // The live call's own OPTIONS (a session keep-alive) is still 200.
    h.receive(&via_proxy(
        options("z9hG4bK-o3").with_to_tag(&e.our_tag).cseq(2),
        "z9hG4bK-o3",
    ));
    assert_capabilities(&h.one_sent());
    h.endpoint.set_draining(false);
    h.receive(&via_proxy(
        options("z9hG4bK-o4").call_id("probe-o4"),
        "z9hG4bK-o4",
    ));
    assert_capabilities(&h.one_sent());
}

#[test]
fn requests_that_name_the_proxy_are_served_and_our_own_top_route_is_removed() {
    let routes_seen = |h: &mut Harness, request: &Req| {
        h.receive(request);
        assert_eq!(status(&h.one_sent()), 100);
        let events = h.events();
        let [Event::IncomingCall(incoming)] = events.as_slice() else {
            panic!("{events:#?}");
        };
        assert_eq!(incoming.dialled.as_deref(), Some("10000"));
        incoming
            .invite
            .header_values("Route")
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // The Request-URI keeps the proxy's host (the dispatcher sets only the
    // destination) and the top Route names the proxy: served all the same.
    let mut h = behind_proxy("127.0.0.2:5060");
    let naming_the_proxy = via_proxy(invite("z9hG4bK-i1"), "z9hG4bK-i1")
        .uri(&format!("sip:10000@{PROXY}"))
        .header(&format!("Route: {PROXY_ROUTE}"));
    assert_eq!(routes_seen(&mut h, &naming_the_proxy), vec![PROXY_ROUTE]);
    // A top Route naming us is taken off (loose routing, RFC 3261 §16.4).
    let mut h = behind_proxy("127.0.0.2:5060");
    let naming_us = via_proxy(invite("z9hG4bK-i2"), "z9hG4bK-i2")
        .header("Route: <sip:127.0.0.2;lr>, <sip:127.0.0.8;lr>");
    assert_eq!(routes_seen(&mut h, &naming_us), vec!["<sip:127.0.0.8;lr>"]);
}
