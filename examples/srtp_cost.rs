//! What SRTP adds to one packet on the media path: the CPU time of
//! `MediaSession::next_packet` (build and, with SRTP, protect) and
//! `MediaSession::on_datagram` (with SRTP, authenticate and decrypt; then
//! read) for a 20 ms PCMU packet, plain and SRTP (AES_CM_128_HMAC_SHA1_80),
//! on one thread with no sockets.
//!
//!     cargo run --release --example srtp_cost -- [PACKETS] [RUNS]
//!
//! Prints one line per direction with the median over RUNS of the µs per
//! packet, plain and SRTP, and the difference.

use hotline::media::session::{MediaParams, MediaSession, MAX_PACKET};
use hotline::media::srtp::{SrtpKeys, SrtpSession};
use hotline::sip::sdes::{CryptoSuite, MasterKey};
use hotline::sip::sdp::{Codec, Direction};
use std::time::{Duration, Instant};

fn params(srtp: Option<SrtpKeys>) -> MediaParams {
    MediaParams {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        ptime_ms: 20,
        remote: Some("127.0.0.1:40000".parse().expect("literal")),
        direction: Direction::SendRecv,
        srtp,
    }
}

fn session(srtp: Option<SrtpKeys>) -> MediaSession {
    MediaSession::new(params(srtp), true, Duration::ZERO, Instant::now())
}

/// µs per packet to send `count` packets.
fn send(srtp: Option<SrtpKeys>, count: usize) -> f64 {
    let mut session = session(srtp);
    let mut out = [0u8; MAX_PACKET];
    let start = Instant::now();
    for _ in 0..count {
        std::hint::black_box(session.next_packet(&mut out));
    }
    start.elapsed().as_secs_f64() * 1e6 / count as f64
}

/// `count` packets as the caller sends them, protected when `srtp` is set.
fn caller_packets(srtp: Option<SrtpKeys>, count: usize) -> Vec<Vec<u8>> {
    let peer_keys = srtp.map(|keys| SrtpKeys {
        suite: keys.suite,
        local: keys.remote,
        remote: keys.local,
    });
    let mut caller = session(peer_keys);
    let mut out = [0u8; MAX_PACKET];
    (0..count)
        .map(|_| {
            let (len, _) = caller.next_packet(&mut out).expect("a packet");
            out[..len].to_vec()
        })
        .collect()
}

/// µs per packet to receive `packets`.
fn receive(srtp: Option<SrtpKeys>, packets: &[Vec<u8>]) -> f64 {
    let mut session = session(srtp);
    let source = "127.0.0.1:40000".parse().expect("literal");
    let now = Instant::now();
    let start = Instant::now();
    for packet in packets {
        session.on_datagram(packet, source, now);
    }
    let took = start.elapsed().as_secs_f64() * 1e6 / packets.len() as f64;
    assert_eq!(session.stats().packets_received, packets.len() as u64);
    took
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let keys = SrtpKeys {
        suite: CryptoSuite::AesCm128HmacSha1_80,
        local: MasterKey::generate(),
        remote: MasterKey::generate(),
    };
    // The transform on its own, for reference.
    let _ = SrtpSession::new(keys).expect("keys are well-formed");

    let plain_in = caller_packets(None, count);
    let srtp_in = caller_packets(Some(keys), count);
    let (mut send_plain, mut send_srtp, mut receive_plain, mut receive_srtp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        send_plain.push(send(None, count));
        send_srtp.push(send(Some(keys), count));
        receive_plain.push(receive(None, &plain_in));
        receive_srtp.push(receive(Some(keys), &srtp_in));
    }
    let (sp, ss, rp, rs) = (
        median(send_plain),
        median(send_srtp),
        median(receive_plain),
        median(receive_srtp),
    );
    println!(
        "send: plain={sp:.3}us srtp={ss:.3}us added={:.3}us per packet ({count} packets, median of {runs})",
        ss - sp
    );
    println!(
        "receive: plain={rp:.3}us srtp={rs:.3}us added={:.3}us per packet ({count} packets, median of {runs})",
        rs - rp
    );
}
