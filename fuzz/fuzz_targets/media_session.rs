//! Datagrams from the network into a call's media session: RTP audio,
//! RFC 4733 telephone events, RTCP and garbage, from the caller's address
//! and from others, interleaved with our packet clock, renegotiations,
//! keys we send and a bridge to a second session. Nothing may panic; every
//! key reported is a DTMF key; every packet we send is RTP version 2 with
//! a negotiated payload type and fits the buffer.
//!
//! Input: a setup byte (codec, telephone-event or in-band detection,
//! ptime, symmetric RTP, bridged, SRTP with fixed keys — so most of what
//! arrives then fails authentication, as forged packets would), then records of a control byte, a
//! length byte and that many bytes of datagram.

#![no_main]

use hotline::media::session::{MediaEvent, MediaParams, MediaSession, MAX_PACKET};
use hotline::media::srtp::SrtpKeys;
use hotline::sip::sdes::{CryptoSuite, MasterKey};
use hotline::sip::sdp::{Codec, Direction};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DIRECTIONS: [Direction; 4] = [
    Direction::SendRecv,
    Direction::SendOnly,
    Direction::RecvOnly,
    Direction::Inactive,
];

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut records)) = data.split_first() else {
        return;
    };
    let caller: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let sources: [SocketAddr; 4] = [
        caller,
        "127.0.0.1:40002".parse().unwrap(),
        "192.0.2.9:40000".parse().unwrap(),
        "[::1]:40000".parse().unwrap(),
    ];
    let codec = if setup & 1 == 0 {
        Codec::Pcmu
    } else {
        Codec::Pcma
    };
    let mut params = MediaParams {
        codec,
        payload_type: codec.payload_type(),
        telephone_event_pt: (setup & 2 == 0).then_some(101),
        ptime_ms: [10, 20, 30, 60][usize::from(setup >> 2 & 3)],
        remote: Some(caller),
        direction: Direction::SendRecv,
        srtp: (setup & 64 != 0).then(|| SrtpKeys {
            suite: CryptoSuite::AesCm128HmacSha1_80,
            local: MasterKey::from_bytes([7; 30]),
            remote: MasterKey::from_bytes([9; 30]),
        }),
    };
    let symmetric = setup & 16 != 0;
    let mut now = Instant::now();
    let timeout = Duration::from_secs(5);
    let mut session = MediaSession::new(params, symmetric, timeout, now);
    let mut agent = MediaSession::new(params, symmetric, timeout, now);
    if setup & 32 != 0 {
        session.start_relay();
        agent.start_relay();
    }
    let mut out = [0u8; MAX_PACKET];
    while let [control, len, rest @ ..] = records {
        let len = usize::from(*len).min(rest.len());
        let (datagram, tail) = rest.split_at(len);
        records = tail;
        let source = sources[usize::from(control & 3)];
        session.on_datagram(datagram, source, now);
        if control & 4 != 0 {
            now += Duration::from_millis(u64::from(params.ptime_ms));
            MediaSession::exchange_audio(&mut session, &mut agent);
            for media in [&mut session, &mut agent] {
                if let Some((sent, _)) = media.next_packet(&mut out) {
                    check_packet(&out[..sent], media.params());
                }
            }
        }
        if control & 8 != 0 {
            // A re-INVITE: hold, resume, a new address or event type.
            params.direction = DIRECTIONS[usize::from(control >> 4 & 3)];
            params.remote = match control >> 6 {
                0 => None,
                1 => Some(sources[1]),
                _ => Some(caller),
            };
            params.telephone_event_pt = params.telephone_event_pt.xor(Some(96));
            session.update(params, now);
        }
        if control & 0xf0 == 0x30 {
            let digit = ['1', '#', '*', 'D', 'x'][usize::from(control & 7) % 5];
            let _ = session.send_dtmf(digit);
        }
        if control & 0xf0 == 0xf0 {
            now += Duration::from_secs(6);
            let _ = session.timed_out(now);
        }
        while let Some(event) = session.poll_event() {
            if let MediaEvent::Dtmf { digit, .. } = event {
                assert!(
                    matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D'),
                    "not a key: {digit:?}"
                );
            }
        }
    }
});

fn check_packet(packet: &[u8], params: &MediaParams) {
    assert!(packet.len() >= 12, "an RTP header");
    assert_eq!(packet[0] >> 6, 2, "RTP version 2");
    let payload_type = packet[1] & 0x7f;
    assert!(
        payload_type == params.payload_type || Some(payload_type) == params.telephone_event_pt,
        "payload type {payload_type} was not negotiated"
    );
}
