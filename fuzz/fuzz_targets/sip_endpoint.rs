//! Bytes from the wire to the SIP endpoint: any input, as datagrams or
//! through TCP framing, with the application answering calls, re-offers and
//! transfers and the timers firing in between, must never panic.
//!
//! Input: one control byte, then messages separated by NUL bytes. The
//! control byte picks the transport (bit 0: every message over UDP, or all
//! of them as one TCP stream read in chunks of 1 to 64 bytes, as the
//! transport's read loop would see them), whether calls are accepted or
//! rejected (bit 1), whether a confirmed call is transferred by REFER
//! (bit 2) or hung up by us (bit 3), and how much time passes between
//! messages (bits 4-7, up to 32 s, so that timers fire in the middle of a
//! dialog). The literal `$tag` in a message is replaced by the To tag of
//! the last 2xx we sent, so the fuzzer can reach in-dialog requests (ACK,
//! BYE, re-INVITE, UPDATE, INFO, NOTIFY) whose tag it could never guess.

#![no_main]

use hotline::media::dtmf_info;
use hotline::sip::admission::AdmissionPolicy;
use hotline::sip::endpoint::{Endpoint, EndpointConfig, Event, Flow, Transport};
use hotline::sip::headers::NameAddr;
use hotline::sip::message::{stream_frame_len, Message};
use hotline::sip::transaction::TimerValues;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

const ANSWER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 10000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

struct Harness {
    endpoint: Endpoint,
    now: Instant,
    control: u8,
    /// The To tag of the last 2xx we sent.
    tag: Option<String>,
}

impl Harness {
    fn feed(&mut self, bytes: &[u8], flow: Flow) {
        let bytes = self.with_tag(bytes);
        self.endpoint.handle_message(&bytes, flow, self.now);
        self.settle();
        let step = u64::from(self.control >> 4) * 2_000;
        self.run_timers(self.now + Duration::from_millis(step));
    }

    fn with_tag(&self, bytes: &[u8]) -> Vec<u8> {
        let Some(tag) = &self.tag else {
            return bytes.to_vec();
        };
        let mut out = Vec::with_capacity(bytes.len() + 16);
        let mut rest = bytes;
        while let Some(at) = rest.windows(4).position(|w| w == b"$tag") {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(tag.as_bytes());
            rest = &rest[at + 4..];
        }
        out.extend_from_slice(rest);
        out
    }

    /// Plays the application: answers what the endpoint asks and drains
    /// what it sends.
    fn settle(&mut self) {
        for _ in 0..16 {
            let mut busy = false;
            while let Some(event) = self.endpoint.poll_event() {
                busy = true;
                self.on_event(event);
            }
            while let Some(transmit) = self.endpoint.poll_transmit() {
                busy = true;
                if trace() {
                    let first = transmit.bytes.split(|&b| b == b'\r').next();
                    eprintln!(
                        "sent {}",
                        String::from_utf8_lossy(first.unwrap_or_default())
                    );
                }
                self.note_tag(&transmit.bytes);
            }
            if !busy {
                return;
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        if trace() {
            eprintln!(
                "event {}",
                format!("{event:?}").chars().take(120).collect::<String>()
            );
        }
        let now = self.now;
        match event {
            Event::IncomingCall(call) => {
                let _ = if self.control & 2 == 0 {
                    self.endpoint.accept(call.call, ANSWER.into(), now)
                } else {
                    self.endpoint.reject(call.call, 486, now)
                };
            }
            Event::Reoffer { call, sdp } => {
                let _ = match sdp {
                    Some(_) => self.endpoint.accept(call, ANSWER.into(), now),
                    None => self.endpoint.reject(call, 488, now),
                };
            }
            Event::CallConfirmed { call, .. } => {
                if self.control & 4 != 0 {
                    let _ = self.endpoint.refer(
                        call,
                        "<sip:agent@127.0.0.1:5080>",
                        Duration::from_secs(10),
                        now,
                    );
                }
                if self.control & 8 != 0 {
                    let _ = self.endpoint.hangup(call, now);
                }
            }
            Event::Info {
                content_type, body, ..
            } => {
                let _ = dtmf_info::parse(&content_type, &body);
            }
            _ => {}
        }
    }

    fn note_tag(&mut self, bytes: &[u8]) {
        let Ok(message) = Message::parse(bytes) else {
            panic!("the endpoint sent something it cannot parse itself");
        };
        if message
            .status()
            .is_some_and(|code| (200..300).contains(&code))
        {
            if let Some(tag) = message
                .header("To")
                .and_then(|to| NameAddr::parse(to).ok())
                .and_then(|to| to.tag().map(str::to_string))
            {
                self.tag = Some(tag);
            }
        }
    }

    fn run_timers(&mut self, until: Instant) {
        for _ in 0..64 {
            match self.endpoint.poll_timeout() {
                Some(at) if at <= until => {
                    self.now = at.max(self.now);
                    self.endpoint.handle_timeout(self.now);
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = until.max(self.now);
    }
}

/// `FUZZ_TRACE=1` prints what the endpoint sends and reports, to see
/// what an input (a crash, a seed) does.
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let mut harness = Harness {
        endpoint: Endpoint::new(EndpointConfig {
            timers: TimerValues::default(),
            user_agent: "fuzz".into(),
            admission: AdmissionPolicy {
                trusted_networks: vec!["127.0.0.0/8".parse().unwrap()],
                max_calls: 4,
                invites_per_second_per_source: 0,
            },
        }),
        now: Instant::now(),
        control,
        tag: None,
    };
    let udp = Flow {
        transport: Transport::Udp,
        listener: 0,
        connection: None,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: "127.0.0.1:5061".parse().unwrap(),
    };
    if control & 1 == 0 {
        for datagram in data.split(|&b| b == 0) {
            harness.feed(datagram, udp);
        }
    } else {
        let tcp = Flow {
            transport: Transport::Tcp,
            connection: Some(1),
            ..udp
        };
        let stream: Vec<u8> = data.iter().copied().filter(|&b| b != 0).collect();
        read_stream(&mut harness, &stream, tcp, data.len());
    }
    // Whatever state the calls are in, the endpoint must wind down.
    let end = harness.now + Duration::from_secs(300);
    harness.endpoint.hangup_all(harness.now);
    harness.settle();
    harness.run_timers(end);
});

/// The TCP transport's read loop: bytes arrive in chunks; leading CRLF
/// keep-alives are dropped; each complete message goes to the endpoint;
/// unframeable input is handed over whole and the connection closed.
fn read_stream(harness: &mut Harness, stream: &[u8], flow: Flow, seed: usize) {
    let mut buf: Vec<u8> = Vec::new();
    let mut offset = 0;
    let mut chunk = seed % 64 + 1;
    while offset < stream.len() {
        let end = (offset + chunk).min(stream.len());
        buf.extend_from_slice(&stream[offset..end]);
        offset = end;
        chunk = chunk * 7 % 64 + 1;
        loop {
            let blank = buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            buf.drain(..blank);
            match stream_frame_len(&buf) {
                Ok(Some(len)) => {
                    // Framing must not depend on how the bytes were split:
                    // more bytes never change the first message's length.
                    let whole = stream_frame_len(&stream[offset - buf.len()..]);
                    assert_eq!(whole, Ok(Some(len)), "framing depends on the read size");
                    let message: Vec<u8> = buf.drain(..len).collect();
                    harness.feed(&message, flow);
                }
                Ok(None) => break,
                Err(_) => {
                    harness.feed(&buf, flow);
                    harness
                        .endpoint
                        .handle_tcp_failure(flow.remote, harness.now);
                    harness.settle();
                    return;
                }
            }
        }
    }
}
