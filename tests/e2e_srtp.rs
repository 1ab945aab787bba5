//! End-to-end SRTP: the test client offers `RTP/SAVP` with SDES keys over
//! real loopback sockets, decrypts what the gateway sends with `libsrtp` (an
//! independent SRTP implementation, not the gateway's) and must hear the
//! prompt byte for byte; its keys go out as SRTP RFC 4733 events and are
//! read once; tampered and replayed packets are dropped and counted; the
//! SRTP mode refuses what it must with 488 and a Warning.

mod support;

use hotline::call::CallEvent;
use hotline::media::g711;
use hotline::sip::sdes::{CryptoAttribute, CryptoSuite, MasterKey};
use hotline::sip::sdp::{self, Codec, SrtpMode};
use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::{http_get, start, test_config, Client, Dialog};
use tokio::sync::broadcast;

/// A prompt directory with one 1 s tone sweep.
fn prompt_dir() -> (tempfile::TempDir, Vec<i16>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("test")).unwrap();
    let samples: Vec<i16> = (0..8_000)
        .map(|n| {
            let t = n as f64 / 8000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * (300.0 + 1500.0 * t) * t).sin()) as i16
        })
        .collect();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(dir.path().join("test/sweep.wav"), spec).unwrap();
    for &s in &samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    (dir, samples)
}

fn srtp_config(dir: &Path, mode: SrtpMode) -> hotline::config::Config {
    let mut config = test_config();
    config.prompts.dir = dir.to_path_buf();
    config.calls.greeting = vec!["test/sweep".to_string()];
    config.media.srtp = mode;
    config
}

/// Our SRTP offer: PCMU and telephone-event over `profile` with one crypto
/// line carrying `key`.
fn srtp_offer(client: &Client, profile: &str, suite: CryptoSuite, key: &MasterKey) -> String {
    client
        .offer(
            "0 101",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
            &format!(
                "a=crypto:{}\r\na=sendrecv\r\n",
                CryptoAttribute::ours(1, suite, key)
            ),
        )
        .replace("RTP/AVP", profile)
}

fn libsrtp_config(suite: CryptoSuite, key: &MasterKey) -> libsrtp::StreamConfig {
    let profile = match suite {
        CryptoSuite::AesCm128HmacSha1_80 => libsrtp::ProtectionProfile::Aes128CmHmacSha180,
        CryptoSuite::AesCm128HmacSha1_32 => libsrtp::ProtectionProfile::Aes128CmHmacSha132,
    };
    libsrtp::StreamConfig::new(
        vec![libsrtp::MasterKey::new(key.key(), key.salt(), &None)],
        &profile,
        &libsrtp::ProtectionProfile::Aes128CmHmacSha180,
    )
}

/// The caller's two SRTP directions, with libsrtp.
struct CallerSrtp {
    send: libsrtp::SendSession,
    receive: libsrtp::RecvSession,
}

impl CallerSrtp {
    fn new(suite: CryptoSuite, ours: &MasterKey, gateways: &MasterKey) -> CallerSrtp {
        let mut send = libsrtp::SendSession::new();
        send.add_stream(None, &libsrtp_config(suite, ours)).unwrap();
        let mut receive = libsrtp::RecvSession::new();
        receive
            .add_stream(None, &libsrtp_config(suite, gateways))
            .unwrap();
        CallerSrtp { send, receive }
    }
}

/// Places the SRTP call; the gateway's RTP address, its crypto line and
/// the caller's SRTP contexts.
async fn srtp_call(client: &mut Client, suite: CryptoSuite) -> (Dialog, SocketAddr, CallerSrtp) {
    let ours = MasterKey::generate();
    let offer = srtp_offer(client, "RTP/SAVP", suite, &ours);
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    let answer = sdp::parse_body(&response.body).unwrap();
    let audio = answer.audio_streams.first().cloned().unwrap();
    assert_eq!(audio.protocol, "RTP/SAVP");
    assert_eq!(audio.crypto.len(), 1, "one crypto line in the answer");
    assert_eq!(audio.crypto[0].tag, 1, "our tag echoed");
    let (answered_suite, gateways) = audio.crypto[0].usable().expect("a usable crypto line");
    assert_eq!(answered_suite, suite);
    assert_ne!(gateways, ours, "the gateway sends with its own key");
    let rtp = SocketAddr::new(audio.connection.unwrap(), audio.port);
    (dialog, rtp, CallerSrtp::new(suite, &ours, &gateways))
}

/// Receives `count` packets; returns them as they came off the wire.
async fn receive(client: &Client, count: usize) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 2048];
    let mut packets = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while packets.len() < count {
        match tokio::time::timeout_at(deadline, client.rtp.recv_from(&mut buf)).await {
            Ok(Ok((len, _))) => packets.push(buf[..len].to_vec()),
            _ => break,
        }
    }
    packets
}

/// The keys' RTP event packets, protected with the caller's key.
fn key_packets(
    srtp: &mut CallerSrtp,
    keys: &str,
    sequence: &mut u16,
    timestamp: &mut u32,
) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    for key in keys.chars() {
        for event in hotline::media::rfc4733::press_packets(key, *timestamp, 100, 20).unwrap() {
            let plain = RtpPacketBuilder::new()
                .payload_type(101)
                .ssrc(0xC0FFEE)
                .sequence(Seq::from(*sequence))
                .timestamp(event.timestamp)
                .marked(event.marker)
                .payload(&event.payload)
                .build()
                .unwrap();
            packets.push(srtp.send.rtp_protect(plain).unwrap());
            *sequence = sequence.wrapping_add(1);
        }
        *timestamp = timestamp.wrapping_add(1600);
    }
    packets
}

async fn send_all(client: &Client, to: SocketAddr, packets: &[Vec<u8>]) {
    for packet in packets {
        client.rtp.send_to(packet, to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Keys reported within `window`.
async fn keys_read(events: &mut broadcast::Receiver<CallEvent>, window: Duration) -> String {
    let mut digits = String::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let CallEvent::Dtmf { digit, .. } = event {
            digits.push(digit);
        }
    }
    digits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srtp_caller_hears_the_prompt_byte_for_byte_and_its_keys_are_read() {
    let (dir, samples) = prompt_dir();
    let server = start(srtp_config(dir.path(), SrtpMode::Optional)).await;
    let mut events = server.events();
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let (mut dialog, gateway, mut srtp) =
        srtp_call(&mut client, CryptoSuite::AesCm128HmacSha1_80).await;

    let packets = receive(&client, 60).await;
    assert!(packets.len() >= 50, "got {} packets", packets.len());
    let mut prompt = Vec::new();
    g711::encode(Codec::Pcmu, &samples, &mut prompt);
    let mut heard = Vec::new();
    for packet in packets {
        // On the wire: RTP header in the clear, payload not the prompt's G.711.
        let wire = RtpReader::new(&packet).unwrap();
        assert_eq!(wire.payload_type(), 0);
        let wire_payload = &packet[12..packet.len() - 10];
        assert!(
            !prompt.windows(160).any(|w| w == wire_payload),
            "payload is encrypted"
        );
        let plain = srtp
            .receive
            .rtp_unprotect(packet)
            .expect("libsrtp authenticates the gateway's SRTP");
        heard.extend_from_slice(RtpReader::new(&plain).unwrap().payload());
    }
    let start = heard
        .windows(160)
        .position(|w| w == &prompt[..160])
        .expect("the prompt's first 20 ms are in the stream");
    let available = (heard.len() - start).min(prompt.len());
    assert!(
        available >= 7_000,
        "most of the prompt was heard ({available})"
    );
    assert_eq!(
        &heard[start..start + available],
        &prompt[..available],
        "byte for byte"
    );

    let (mut sequence, mut timestamp) = (40_000u16, 1_000u32);
    let keys = key_packets(&mut srtp, "9#1", &mut sequence, &mut timestamp);
    send_all(&client, gateway, &keys).await;
    assert_eq!(keys_read(&mut events, Duration::from_secs(2)).await, "9#1");
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_works_over_tcp_signalling_with_the_short_tag_and_savpf() {
    let (dir, _) = prompt_dir();
    let server = start(srtp_config(dir.path(), SrtpMode::Required)).await;
    let mut events = server.events();
    let mut client = Client::tcp(server.tcp_addrs[0]).await;
    let ours = MasterKey::generate();
    let offer = srtp_offer(
        &client,
        "RTP/SAVPF",
        CryptoSuite::AesCm128HmacSha1_32,
        &ours,
    );
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio_streams[0].clone();
    assert_eq!(audio.protocol, "RTP/SAVPF");
    let (suite, gateways) = audio.crypto[0].usable().unwrap();
    assert_eq!(suite, CryptoSuite::AesCm128HmacSha1_32);
    let mut srtp = CallerSrtp::new(suite, &ours, &gateways);
    let packets = receive(&client, 10).await;
    assert_eq!(packets.len(), 10);
    for packet in packets {
        let len = packet.len();
        let plain = srtp.receive.rtp_unprotect(packet).expect("authentic");
        assert_eq!(plain.len() + 4, len, "a 32-bit tag");
    }
    let gateway = SocketAddr::new(audio.connection.unwrap(), audio.port);
    let (mut sequence, mut timestamp) = (7u16, 9_000u32);
    let keys = key_packets(&mut srtp, "5", &mut sequence, &mut timestamp);
    send_all(&client, gateway, &keys).await;
    assert_eq!(keys_read(&mut events, Duration::from_secs(2)).await, "5");
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_srtp_mode_refuses_with_488_and_says_why() {
    let (dir, _) = prompt_dir();
    let required = start(srtp_config(dir.path(), SrtpMode::Required)).await;
    let mut client = Client::udp(required.udp_addrs[0]).await;
    let plain = client.g711_offer();
    let (response, _) = client.invite("10000", Some(plain.clone())).await;
    assert_eq!(response.status(), Some(488));
    let warning = response.header("Warning").unwrap_or_default().to_string();
    assert!(
        warning.starts_with("302 hotline \"SRTP is required"),
        "{warning}"
    );
    // An SRTP offer whose only crypto line we cannot run.
    let unusable = srtp_offer(
        &client,
        "RTP/SAVP",
        CryptoSuite::AesCm128HmacSha1_80,
        &MasterKey::generate(),
    )
    .replace("AES_CM_128_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_80");
    let (response, _) = client.invite("10000", Some(unusable)).await;
    assert_eq!(response.status(), Some(488));
    let warning = response.header("Warning").unwrap_or_default().to_string();
    assert!(
        warning.contains("AES_256_CM_HMAC_SHA1_80 is not supported"),
        "{warning}"
    );
    required.shutdown().await;

    let off = start(srtp_config(dir.path(), SrtpMode::Off)).await;
    let mut client = Client::udp(off.udp_addrs[0]).await;
    let secure = srtp_offer(
        &client,
        "RTP/SAVP",
        CryptoSuite::AesCm128HmacSha1_80,
        &MasterKey::generate(),
    );
    let (response, _) = client.invite("10000", Some(secure)).await;
    assert_eq!(response.status(), Some(488));
    let warning = response.header("Warning").unwrap_or_default().to_string();
    assert!(
        warning.starts_with("302 hotline \"SRTP is off"),
        "{warning}"
    );
    let (response, mut dialog) = client.invite("10000", Some(plain)).await;
    assert_eq!(
        response.status(),
        Some(200),
        "plain RTP is fine when SRTP is off"
    );
    client.ack(&mut dialog).await;
    assert_eq!(client.bye(&mut dialog).await, 200);
    off.shutdown().await;
}

/// The value of `hotline_rtp_packets_dropped_total{reason="<reason>"}`.
fn dropped(scrape: &str, reason: &str) -> f64 {
    let prefix = format!("hotline_rtp_packets_dropped_total{{reason=\"{reason}\"}} ");
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_replayed_packets_are_dropped_and_counted() {
    let (dir, _) = prompt_dir();
    let server = start(srtp_config(dir.path(), SrtpMode::Optional)).await;
    let mut events = server.events();
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let (mut dialog, gateway, mut srtp) =
        srtp_call(&mut client, CryptoSuite::AesCm128HmacSha1_80).await;
    let (mut sequence, mut timestamp) = (100u16, 0u32);

    // Key 1, every packet with one payload bit flipped: none authenticates.
    let mut tampered = key_packets(&mut srtp, "1", &mut sequence, &mut timestamp);
    for packet in &mut tampered {
        packet[13] ^= 0x04;
    }
    send_all(&client, gateway, &tampered).await;
    // Key 2 sent once properly, then all of its packets again (replays).
    let genuine = key_packets(&mut srtp, "2", &mut sequence, &mut timestamp);
    send_all(&client, gateway, &genuine).await;
    send_all(&client, gateway, &genuine).await;
    // The same key's events unprotected: not SRTP at all.
    let plain_event = RtpPacketBuilder::new()
        .payload_type(101)
        .ssrc(0xC0FFEE)
        .sequence(Seq::from(sequence))
        .timestamp(timestamp)
        .marked(true)
        .payload(&[3, 0x8a, 0, 160])
        .build()
        .unwrap();
    client.rtp.send_to(&plain_event, gateway).await.unwrap();
    assert_eq!(keys_read(&mut events, Duration::from_secs(2)).await, "2");

    assert_eq!(client.bye(&mut dialog).await, 200);
    // The call's counts are published when its media ends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, scrape) = http_get(server.http_addr, "/metrics", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        dropped(&scrape, "unauthenticated"),
        (tampered.len() + 1) as f64,
        "{scrape}"
    );
    assert_eq!(dropped(&scrape, "replayed"), genuine.len() as f64);
    server.shutdown().await;
}
