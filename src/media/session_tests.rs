//! Media session behaviour, driven by datagrams and instants.

use super::*;
use crate::media::playback::PlayItem;
use crate::media::prompt::Prompt;
use crate::media::srtp::SrtpSession;
use std::sync::Arc;

const CALLER: &str = "127.0.0.1:40000";

fn params(telephone_event: Option<u8>) -> MediaParams {
    MediaParams {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: telephone_event,
        ptime_ms: 20,
        remote: Some(CALLER.parse().unwrap()),
        direction: Direction::SendRecv,
        srtp: None,
    }
}

fn new_session(telephone_event: Option<u8>) -> (MediaSession, Instant) {
    let now = Instant::now();
    (
        MediaSession::new(params(telephone_event), true, Duration::from_secs(5), now),
        now,
    )
}

fn rtp(payload_type: u8, sequence: u16, timestamp: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(payload_type)
        .ssrc(0x1234_5678)
        .sequence(Seq::from(sequence))
        .timestamp(timestamp)
        .marked(marker)
        .payload(payload)
        .build()
        .unwrap()
}

fn sent(session: &mut MediaSession) -> (Vec<u8>, SocketAddr) {
    let mut out = [0u8; MAX_PACKET];
    let (len, to) = session.next_packet(&mut out).expect("a packet");
    (out[..len].to_vec(), to)
}

fn events(session: &mut MediaSession) -> Vec<MediaEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn tone(digit: char, ms: usize, amplitude: f64) -> Vec<i16> {
    let (low, high) = match digit {
        '1' => (697.0, 1209.0),
        '5' => (770.0, 1336.0),
        '9' => (852.0, 1477.0),
        _ => (941.0, 1336.0),
    };
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let v = amplitude
                * ((2.0 * std::f64::consts::PI * low * t).sin()
                    + (2.0 * std::f64::consts::PI * high * t).sin());
            v as i16
        })
        .collect()
}

/// Sends PCM to the session as 20 ms µ-law packets.
fn feed_pcm(
    session: &mut MediaSession,
    pcm: &[i16],
    sequence: &mut u16,
    timestamp: &mut u32,
    now: Instant,
) {
    let mut encoded = Vec::new();
    for chunk in pcm.chunks(160) {
        g711::encode(Codec::Pcmu, chunk, &mut encoded);
        session.on_datagram(
            &rtp(0, *sequence, *timestamp, false, &encoded),
            CALLER.parse().unwrap(),
            now,
        );
        *sequence = sequence.wrapping_add(1);
        *timestamp = timestamp.wrapping_add(160);
    }
}

#[test]
fn silence_packets_carry_consecutive_sequence_numbers_and_timestamps() {
    let (mut session, _) = new_session(Some(101));
    let packets: Vec<_> = (0..5).map(|_| sent(&mut session).0).collect();
    for (i, packet) in packets.iter().enumerate() {
        let reader = RtpReader::new(packet).unwrap();
        let first = RtpReader::new(&packets[0]).unwrap();
        assert_eq!(reader.payload_type(), 0);
        assert_eq!(reader.mark(), i == 0, "marker on the first packet only");
        assert_eq!(reader.ssrc(), first.ssrc());
        assert_eq!(
            u16::from(reader.sequence_number()),
            u16::from(first.sequence_number()).wrapping_add(i as u16)
        );
        assert_eq!(
            reader.timestamp(),
            first.timestamp().wrapping_add(160 * i as u32)
        );
        assert!(reader.payload().iter().all(|&b| b == 0xFF));
    }
}

#[test]
fn a_prompt_is_sent_in_order_and_its_end_is_reported_once() {
    let (mut session, _) = new_session(Some(101));
    let samples: Vec<i16> = (0..400).map(|n| ((n % 50) * 300) as i16).collect();
    let prompt = Arc::new(Prompt::from_samples("test", samples));
    session.play(Playlist {
        items: vec![PlayItem::Prompt(prompt.clone())],
        looping: false,
        barge_in: true,
    });
    let mut heard = Vec::new();
    for _ in 0..3 {
        let (packet, _) = sent(&mut session);
        heard.extend_from_slice(RtpReader::new(&packet).unwrap().payload());
    }
    let expected = prompt.encoded(Codec::Pcmu);
    assert_eq!(&heard[..400], &expected[..]);
    assert!(
        heard[400..].iter().all(|&b| b == 0xFF),
        "padded with silence"
    );
    assert_eq!(
        events(&mut session),
        vec![MediaEvent::PlaybackDone { interrupted: false }]
    );
    sent(&mut session);
    assert!(events(&mut session).is_empty());
}

#[test]
fn symmetric_rtp_latches_on_the_first_packet_and_drops_other_sources() {
    let (mut session, now) = new_session(Some(101));
    let natted: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    session.on_datagram(&rtp(0, 1, 0, false, &[0xFF; 160]), natted, now);
    assert_eq!(
        sent(&mut session).1,
        natted,
        "we answer where the packets come from"
    );
    session.on_datagram(
        &rtp(0, 2, 160, false, &[0xFF; 160]),
        "127.0.0.1:50002".parse().unwrap(),
        now,
    );
    session.on_datagram(
        &rtp(0, 3, 320, false, &[0xFF; 160]),
        "127.0.0.2:50000".parse().unwrap(),
        now,
    );
    let stats = session.stats();
    assert_eq!(stats.packets_received, 1);
    assert_eq!(stats.dropped_source, 2);
}

#[test]
fn without_symmetric_rtp_we_send_to_the_sdp_address() {
    let now = Instant::now();
    let mut session = MediaSession::new(params(Some(101)), false, Duration::ZERO, now);
    session.on_datagram(
        &rtp(0, 1, 0, false, &[0xFF; 160]),
        "127.0.0.1:50000".parse().unwrap(),
        now,
    );
    assert_eq!(sent(&mut session).1, CALLER.parse().unwrap());
}

#[test]
fn wrong_payload_types_malformed_packets_and_rtcp_are_dropped_and_counted() {
    let (mut session, now) = new_session(Some(101));
    let caller = CALLER.parse().unwrap();
    session.on_datagram(&rtp(8, 1, 0, false, &[0xD5; 160]), caller, now);
    session.on_datagram(&[0x80, 0x00, 0x01], caller, now);
    let receiver_report = [0x81, 201, 0x00, 0x07, 0, 0, 0, 1];
    session.on_datagram(&receiver_report, caller, now);
    let stats = session.stats();
    assert_eq!(
        (
            stats.dropped_payload_type,
            stats.dropped_malformed,
            stats.rtcp_received
        ),
        (1, 1, 1)
    );
    assert_eq!(stats.packets_received, 0);
}

#[test]
fn an_rfc4733_key_is_reported_once_and_stops_a_barge_in_prompt() {
    let (mut session, now) = new_session(Some(101));
    let prompt = Arc::new(Prompt::from_samples("long", vec![1000; 8000]));
    session.play(Playlist {
        items: vec![PlayItem::Prompt(prompt)],
        looping: false,
        barge_in: true,
    });
    sent(&mut session);
    let caller = CALLER.parse().unwrap();
    let packets = rfc4733::press_packets('5', 8000, 100, 20).unwrap();
    for (i, packet) in packets.iter().enumerate() {
        session.on_datagram(
            &rtp(
                101,
                i as u16,
                packet.timestamp,
                packet.marker,
                &packet.payload,
            ),
            caller,
            now,
        );
    }
    assert_eq!(
        events(&mut session),
        vec![
            MediaEvent::Dtmf {
                digit: '5',
                source: DtmfSource::Rfc4733
            },
            MediaEvent::PlaybackDone { interrupted: true },
        ]
    );
    let (packet, _) = sent(&mut session);
    assert!(
        RtpReader::new(&packet)
            .unwrap()
            .payload()
            .iter()
            .all(|&b| b == 0xFF),
        "prompt stopped"
    );
}

#[test]
fn a_prompt_without_barge_in_keeps_playing_through_a_key() {
    let (mut session, _) = new_session(None);
    let prompt = Arc::new(Prompt::from_samples("p", vec![1000; 8000]));
    session.play(Playlist {
        items: vec![PlayItem::Prompt(prompt)],
        looping: false,
        barge_in: false,
    });
    session.key_from_signalling('9');
    assert_eq!(
        events(&mut session),
        vec![MediaEvent::Dtmf {
            digit: '9',
            source: DtmfSource::SipInfo
        }]
    );
}

#[test]
fn inband_tones_are_read_when_the_call_has_no_telephone_event() {
    let (mut session, now) = new_session(None);
    let (mut sequence, mut timestamp) = (0u16, 0u32);
    let mut audio = Vec::new();
    for digit in ['1', '5', '9'] {
        audio.extend(tone(digit, 100, 6000.0));
        audio.extend(vec![0i16; 800]);
    }
    feed_pcm(&mut session, &audio, &mut sequence, &mut timestamp, now);
    let digits: Vec<char> = events(&mut session)
        .into_iter()
        .filter_map(|e| match e {
            MediaEvent::Dtmf {
                digit,
                source: DtmfSource::Inband,
            } => Some(digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec!['1', '5', '9']);
}

#[test]
fn inband_detection_is_off_when_telephone_event_was_negotiated() {
    let (mut session, now) = new_session(Some(101));
    let (mut sequence, mut timestamp) = (0u16, 0u32);
    feed_pcm(
        &mut session,
        &tone('5', 200, 6000.0),
        &mut sequence,
        &mut timestamp,
        now,
    );
    assert!(
        events(&mut session).is_empty(),
        "a key must not count twice"
    );
}

#[test]
fn media_timeout_fires_only_while_the_caller_should_be_sending() {
    let (mut session, t0) = new_session(Some(101));
    assert!(!session.timed_out(t0 + Duration::from_secs(4)));
    session.on_datagram(
        &rtp(0, 1, 0, false, &[0xFF; 160]),
        CALLER.parse().unwrap(),
        t0 + Duration::from_secs(4),
    );
    assert!(!session.timed_out(t0 + Duration::from_secs(8)));
    assert!(session.timed_out(t0 + Duration::from_secs(9)));
    let mut hold = params(Some(101));
    hold.direction = Direction::RecvOnly;
    session.update(hold, t0 + Duration::from_secs(9));
    assert!(
        !session.timed_out(t0 + Duration::from_secs(60)),
        "no timeout while the caller holds"
    );
}

#[test]
fn we_send_nothing_while_the_caller_has_us_on_hold() {
    let (mut session, now) = new_session(Some(101));
    let mut held = params(Some(101));
    held.direction = Direction::Inactive;
    session.update(held, now);
    let mut out = [0u8; MAX_PACKET];
    assert!(session.next_packet(&mut out).is_none());
}

#[test]
fn a_key_we_send_goes_out_as_rfc4733_events_with_marker_and_three_end_packets() {
    let (mut session, _) = new_session(Some(101));
    sent(&mut session);
    assert!(session.send_dtmf('7'));
    let mut events_sent = Vec::new();
    for _ in 0..10 {
        let (packet, _) = sent(&mut session);
        let reader = RtpReader::new(&packet).unwrap();
        if reader.payload_type() == 101 {
            events_sent.push((reader.mark(), reader.timestamp(), reader.payload().to_vec()));
        }
    }
    assert!(events_sent.len() >= 4);
    assert!(events_sent[0].0, "marker on the first event packet");
    assert!(events_sent[1..].iter().all(|(marker, _, _)| !marker));
    assert!(
        events_sent.iter().all(|(_, ts, _)| *ts == events_sent[0].1),
        "one timestamp per event"
    );
    assert_eq!(events_sent[0].2[0], 7);
    let ends = events_sent
        .iter()
        .filter(|(_, _, p)| p[1] & 0x80 != 0)
        .count();
    assert_eq!(ends, 3);
    let (mut plain, _) = new_session(None);
    assert!(!plain.send_dtmf('7'), "no telephone-event negotiated");
}

#[test]
fn packets_behind_the_newest_sequence_number_are_late_across_the_wrap() {
    let (mut session, now) = new_session(Some(101));
    let caller = CALLER.parse().unwrap();
    for sequence in [65_534u16, 65_535, 1, 0, 2, 65_533] {
        session.on_datagram(&rtp(0, sequence, 0, false, &[0xFF; 160]), caller, now);
    }
    let stats = session.stats();
    assert_eq!((stats.packets_received, stats.late), (6, 2));
}

fn srtp_keys() -> (SrtpKeys, SrtpKeys) {
    use crate::sip::sdes::{CryptoSuite, MasterKey};
    let (ours, theirs) = (MasterKey::generate(), MasterKey::generate());
    let session = SrtpKeys {
        suite: CryptoSuite::AesCm128HmacSha1_80,
        local: ours,
        remote: theirs,
    };
    let peer = SrtpKeys {
        suite: CryptoSuite::AesCm128HmacSha1_80,
        local: theirs,
        remote: ours,
    };
    (session, peer)
}

fn srtp_session(keys: SrtpKeys) -> (MediaSession, Instant) {
    let now = Instant::now();
    let params = MediaParams {
        srtp: Some(keys),
        ..params(Some(101))
    };
    (
        MediaSession::new(params, true, Duration::from_secs(5), now),
        now,
    )
}

#[test]
fn an_srtp_call_sends_protected_packets_and_reads_keys_only_from_authentic_ones() {
    let (keys, peer_keys) = srtp_keys();
    let (mut session, now) = srtp_session(keys);
    let mut peer = SrtpSession::new(peer_keys).unwrap();
    let samples: Vec<i16> = (0..1600).map(|n| ((n % 40) * 500) as i16).collect();
    let prompt = Arc::new(Prompt::from_samples("test", samples));
    session.play(Playlist {
        items: vec![PlayItem::Prompt(prompt.clone())],
        looping: false,
        barge_in: true,
    });
    let (packet, _) = sent(&mut session);
    assert_eq!(
        packet.len(),
        12 + 160 + 10,
        "an 80-bit tag follows the payload"
    );
    assert_ne!(
        &packet[12..172],
        &prompt.encoded(Codec::Pcmu)[..160],
        "payload encrypted"
    );
    let plain = peer.unprotect_rtp(&packet).expect("authentic");
    assert_eq!(
        RtpReader::new(&plain).unwrap().payload(),
        &prompt.encoded(Codec::Pcmu)[..160]
    );

    // A key press from the peer, protected with its key.
    let protect = |peer: &mut SrtpSession, plain: Vec<u8>| {
        let mut buffer = plain.clone();
        buffer.resize(plain.len() + 10, 0);
        let len = peer.protect_rtp(&mut buffer, plain.len()).unwrap();
        buffer.truncate(len);
        buffer
    };
    let press = rfc4733::press_packets('5', 1000, 100, 20).unwrap();
    let first = protect(
        &mut peer,
        rtp(
            101,
            1,
            press[0].timestamp,
            press[0].marker,
            &press[0].payload,
        ),
    );
    // Tampered and unprotected copies are dropped and counted, not read.
    let mut tampered = first.clone();
    tampered[14] ^= 0x01;
    let other: SocketAddr = "127.0.0.9:7000".parse().unwrap();
    session.on_datagram(&tampered, other, now);
    session.on_datagram(
        &rtp(
            101,
            1,
            press[0].timestamp,
            press[0].marker,
            &press[0].payload,
        ),
        other,
        now,
    );
    assert!(events(&mut session).is_empty());
    assert_eq!(
        sent(&mut session).1,
        CALLER.parse().unwrap(),
        "forgeries do not latch"
    );
    for (index, event) in press.iter().enumerate() {
        let packet = protect(
            &mut peer,
            rtp(
                101,
                1 + index as u16,
                event.timestamp,
                event.marker,
                &event.payload,
            ),
        );
        session.on_datagram(&packet, "127.0.0.1:40002".parse().unwrap(), now);
    }
    session.on_datagram(&first, "127.0.0.1:40002".parse().unwrap(), now);
    assert_eq!(
        events(&mut session),
        vec![
            MediaEvent::Dtmf {
                digit: '5',
                source: DtmfSource::Rfc4733
            },
            MediaEvent::PlaybackDone { interrupted: true }
        ]
    );
    assert_eq!(
        sent(&mut session).1,
        "127.0.0.1:40002".parse().unwrap(),
        "latched"
    );
    let stats = session.stats();
    assert_eq!(stats.dropped_unauthenticated, 2);
    assert_eq!(stats.dropped_replayed, 1);
    assert_eq!(stats.packets_received, press.len() as u64);
}

#[test]
fn srtcp_is_counted_only_when_it_authenticates() {
    let (keys, peer_keys) = srtp_keys();
    let (mut session, now) = srtp_session(keys);
    let mut peer = libsrtp::SendSession::new();
    peer.add_stream(
        None,
        &libsrtp::StreamConfig::new(
            vec![libsrtp::MasterKey::new(
                peer_keys.local.key(),
                peer_keys.local.salt(),
                &None,
            )],
            &libsrtp::ProtectionProfile::Aes128CmHmacSha180,
            &libsrtp::ProtectionProfile::Aes128CmHmacSha180,
        ),
    )
    .unwrap();
    let report = vec![0x80, 201, 0, 1, 0, 0, 0, 42];
    let protected = peer.rtcp_protect(report.clone()).unwrap();
    session.on_datagram(&protected, CALLER.parse().unwrap(), now);
    session.on_datagram(&report, CALLER.parse().unwrap(), now);
    let stats = session.stats();
    assert_eq!(stats.rtcp_received, 1);
    assert_eq!(stats.dropped_unauthenticated, 1);
}

#[test]
fn symmetric_rtp_latches_to_the_signalling_peer_or_across_families() {
    // Behind NAT: SDP names a private address, RTP comes from the peer's.
    let (mut session, now) = new_session(Some(101));
    session.set_signalling_peer("203.0.113.5".parse().unwrap());
    session.on_datagram(
        &rtp(0, 1, 0, false, &[0xFF; 160]),
        "198.51.100.1:4000".parse().unwrap(),
        now,
    );
    assert_eq!(
        session.stats().dropped_source,
        1,
        "a third address is not latched"
    );
    session.on_datagram(
        &rtp(0, 2, 160, false, &[0xFF; 160]),
        "203.0.113.5:61000".parse().unwrap(),
        now,
    );
    assert_eq!(sent(&mut session).1, "203.0.113.5:61000".parse().unwrap());

    // SDP says IPv6 while the RTP arrives over IPv4 (and the reverse).
    for (sdp, source) in [
        ("[fd00::2]:7078", "127.0.0.1:7078"),
        ("127.0.0.1:7078", "[::1]:7080"),
    ] {
        let now = Instant::now();
        let params = MediaParams {
            remote: Some(sdp.parse().unwrap()),
            ..params(Some(101))
        };
        let mut session = MediaSession::new(params, true, Duration::from_secs(5), now);
        session.on_datagram(
            &rtp(0, 1, 0, false, &[0xFF; 160]),
            source.parse().unwrap(),
            now,
        );
        assert_eq!(
            sent(&mut session).1,
            source.parse().unwrap(),
            "{sdp} from {source}"
        );
        // Without symmetric RTP nothing is learnt.
        let mut strict = MediaSession::new(params, false, Duration::from_secs(5), now);
        strict.on_datagram(
            &rtp(0, 1, 0, false, &[0xFF; 160]),
            source.parse().unwrap(),
            now,
        );
        assert_eq!(strict.stats().dropped_source, 1);
    }
}

#[test]
fn a_recording_keeps_what_the_caller_sent_and_ends_after_their_silence() {
    use crate::media::recorder::{RecordEnd, RecordSpec};
    // telephone-event negotiated: no in-band detector, the recorder alone
    // decodes.
    let (mut session, now) = new_session(Some(101));
    session.start_recording(RecordSpec {
        max: Duration::from_secs(20),
        silence: Duration::from_secs(1),
        no_speech: Duration::from_secs(5),
        level: 300,
    });
    let (mut sequence, mut timestamp) = (1u16, 0u32);
    let speech = tone('5', 2000, 6000.0);
    feed_pcm(&mut session, &speech, &mut sequence, &mut timestamp, now);
    assert_eq!(events(&mut session), [MediaEvent::SpeechStarted]);
    feed_pcm(
        &mut session,
        &vec![0; 8 * 1500],
        &mut sequence,
        &mut timestamp,
        now,
    );
    let ended = events(&mut session);
    let [MediaEvent::Recorded(recording)] = &ended[..] else {
        panic!("one recording: {ended:?}");
    };
    assert_eq!(recording.end, RecordEnd::Silence);
    // What arrived, through µ-law and back, and a half-second tail.
    let expected: Vec<i16> = speech
        .iter()
        .map(|s| g711::ulaw_decode(g711::ulaw_encode(*s)))
        .collect();
    assert_eq!(recording.samples.len(), 8 * 2500);
    assert_eq!(&recording.samples[..expected.len()], &expected[..]);
    // The recorder is done: more audio records nothing.
    feed_pcm(&mut session, &speech, &mut sequence, &mut timestamp, now);
    assert!(events(&mut session).is_empty());
}

#[test]
fn stopping_a_recording_delivers_it_at_once() {
    let (mut session, now) = new_session(None);
    session.start_recording(crate::media::recorder::RecordSpec {
        max: Duration::from_secs(20),
        silence: Duration::from_secs(3),
        no_speech: Duration::from_secs(5),
        level: 300,
    });
    let (mut sequence, mut timestamp) = (1u16, 0u32);
    feed_pcm(
        &mut session,
        &tone('1', 500, 6000.0),
        &mut sequence,
        &mut timestamp,
        now,
    );
    session.stop_recording();
    session.stop_recording();
    let ended = events(&mut session);
    assert!(
        matches!(&ended[..], [.., MediaEvent::Recorded(r)] if r.heard_speech),
        "{ended:?}"
    );
    assert_eq!(
        ended
            .iter()
            .filter(|e| matches!(e, MediaEvent::Recorded(_)))
            .count(),
        1
    );
}

#[test]
fn a_tapped_leg_keeps_at_most_two_seconds_between_takes() {
    let (mut session, now) = new_session(Some(101));
    session.start_relay();
    session.start_tap();
    let (mut sequence, mut timestamp) = (1u16, 0u32);
    // Five seconds arriving at once, as a peer sending too fast would.
    feed_pcm(
        &mut session,
        &tone('5', 5000, 6000.0),
        &mut sequence,
        &mut timestamp,
        now,
    );
    let taken = session.take_tap();
    assert_eq!(taken.len(), 16_000);
    assert!(session.take_tap().is_empty(), "taken");
}

#[test]
fn a_recorded_ivr_leg_keeps_both_directions_as_heard() {
    let (mut session, now) = new_session(Some(101));
    session.start_taps();
    let samples: Vec<i16> = (0..480).map(|n| ((n % 40) * 400) as i16 - 8000).collect();
    let prompt = Arc::new(Prompt::from_samples("notice", samples.clone()));
    session.play(Playlist {
        items: vec![PlayItem::Prompt(prompt)],
        looping: false,
        barge_in: false,
    });
    let (mut sequence, mut timestamp) = (1u16, 0u32);
    let spoken = tone('9', 60, 6000.0);
    feed_pcm(&mut session, &spoken, &mut sequence, &mut timestamp, now);
    for _ in 0..4 {
        sent(&mut session);
    }
    let round_trip = |pcm: &[i16]| -> Vec<i16> {
        pcm.iter()
            .map(|s| g711::ulaw_decode(g711::ulaw_encode(*s)))
            .collect()
    };
    assert_eq!(
        session.take_tap(),
        round_trip(&spoken),
        "what the caller said"
    );
    let played = session.take_sent_tap();
    assert_eq!(played.len(), 4 * 160, "one frame per packet sent");
    assert_eq!(&played[..480], &round_trip(&samples)[..], "what it heard");
    assert!(played[480..].iter().all(|&s| s == 0), "then silence");
    assert!(session.take_sent_tap().is_empty(), "taken");
    session.stop_sent_tap();
    sent(&mut session);
    assert!(session.take_sent_tap().is_empty(), "stopped");
    assert!(session.is_tapped() && !session.is_sent_tapped());
}
