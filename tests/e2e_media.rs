//! End-to-end media: the test client places a call and checks that the
//! audio it decodes is the prompt, in order and on time, and that keys it
//! sends by RFC 4733, SIP INFO and in-band tones are each reported once.

mod support;

use bytes::Bytes;
use hotline::call::CallEvent;
use hotline::media::g711;
use hotline::media::session::DtmfSource;
use hotline::sip::sdp::{self, Codec};
use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{start, test_config, Client, Dialog};
use tokio::sync::broadcast;

/// A prompt directory with one 1.5 s test prompt: a tone sweep, so that
/// any reordering or gap would show.
fn prompt_dir() -> (tempfile::TempDir, Vec<i16>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("test")).unwrap();
    let samples: Vec<i16> = (0..12_000)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let frequency = 300.0 + 1500.0 * t;
            (8000.0 * (2.0 * std::f64::consts::PI * frequency * t).sin()) as i16
        })
        .collect();
    write_wav(&dir.path().join("test/sweep.wav"), &samples);
    (dir, samples)
}

fn write_wav(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
}

fn media_config(dir: &Path) -> hotline::config::Config {
    let mut config = test_config();
    config.prompts.dir = dir.to_path_buf();
    config.calls.greeting = vec!["test/sweep".to_string()];
    config
}

/// Where the gateway expects our RTP, from its SDP answer.
fn gateway_rtp(answer: &[u8]) -> SocketAddr {
    let description = sdp::parse_body(answer).unwrap();
    let audio = description.audio.unwrap();
    SocketAddr::new(audio.connection.unwrap(), audio.port)
}

async fn call(client: &mut Client, offer: String) -> (Dialog, SocketAddr) {
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    (dialog, gateway_rtp(&response.body))
}

/// The key presses reported for one call, until `count` or the deadline.
async fn presses(
    events: &mut broadcast::Receiver<CallEvent>,
    count: usize,
) -> Vec<(char, DtmfSource)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.len() < count {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(CallEvent::Dtmf { digit, source, .. })) => seen.push((digit, source)),
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    // Anything more within a short while would be a double count.
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(300), events.recv()).await
    {
        if let CallEvent::Dtmf { digit, source, .. } = event {
            seen.push((digit, source));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_hears_the_prompt_sample_for_sample_and_on_time() {
    let (dir, samples) = prompt_dir();
    let server = start(media_config(dir.path())).await;
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (mut dialog, _) = call(&mut client, offer).await;

    let mut buf = [0u8; 2048];
    let mut packets: Vec<(Instant, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while packets.len() < 90 && Instant::now() < deadline {
        if let Ok(Ok((len, _))) =
            tokio::time::timeout(Duration::from_millis(500), client.rtp.recv_from(&mut buf)).await
        {
            packets.push((Instant::now(), buf[..len].to_vec()));
        }
    }
    assert!(packets.len() >= 80, "got {} packets", packets.len());
    let mut heard = Vec::new();
    let mut expected_sequence = None;
    for (_, packet) in &packets {
        let reader = RtpReader::new(packet).unwrap();
        let sequence = u16::from(reader.sequence_number());
        if let Some(expected) = expected_sequence {
            assert_eq!(sequence, expected, "in order, none lost");
        }
        expected_sequence = Some(sequence.wrapping_add(1));
        heard.extend_from_slice(reader.payload());
    }
    let mut encoded = Vec::new();
    g711::encode(Codec::Pcmu, &samples, &mut encoded);
    let start = heard
        .windows(160)
        .position(|w| w == &encoded[..160])
        .expect("the prompt's first 20 ms are in the stream");
    let available = (heard.len() - start).min(encoded.len());
    assert!(
        available >= 11_000,
        "most of the prompt was heard ({available} samples)"
    );
    assert_eq!(
        &heard[start..start + available],
        &encoded[..available],
        "G.711 of the prompt, byte for byte"
    );
    let mut decoded = Vec::new();
    g711::decode(Codec::Pcmu, &heard[start..start + available], &mut decoded);
    let worst = decoded
        .iter()
        .zip(&samples)
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max()
        .unwrap();
    assert!(
        worst <= 256,
        "within G.711 quantisation at this level: {worst}"
    );

    let first = packets[0].0;
    let late = packets
        .iter()
        .enumerate()
        .filter(|(i, (at, _))| {
            at.duration_since(first) > Duration::from_millis(20 * *i as u64 + 15)
        })
        .count();
    assert!(
        late <= 2,
        "{late} packets arrived more than 15 ms behind the 20 ms clock"
    );
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_keys_are_each_reported_once() {
    let (dir, _) = prompt_dir();
    let server = start(media_config(dir.path())).await;
    let mut events = server.events();
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let (mut dialog, gateway) = call(&mut client, offer).await;

    let keys = "913800138000#";
    let (mut sequence, mut timestamp) = (1000u16, 50_000u32);
    client
        .send_keys(gateway, keys, &mut sequence, &mut timestamp)
        .await;
    let seen = presses(&mut events, keys.len()).await;
    let digits: String = seen.iter().map(|(d, _)| *d).collect();
    assert_eq!(digits, keys);
    assert!(seen
        .iter()
        .all(|(_, source)| *source == DtmfSource::Rfc4733));
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_info_keys_are_reported_in_both_body_formats() {
    let (dir, _) = prompt_dir();
    let server = start(media_config(dir.path())).await;
    let mut events = server.events();
    let mut client = Client::tcp(server.tcp_addrs[0]).await;
    let offer = client.g711_offer();
    let (mut dialog, _) = call(&mut client, offer).await;
    for (content_type, body) in [
        ("application/dtmf-relay", "Signal=9\r\nDuration=160\r\n"),
        ("application/dtmf", "#"),
    ] {
        let mut info = client.in_dialog(&mut dialog, "INFO");
        info.set_body(content_type, Bytes::from(body));
        let cseq = info.header("CSeq").unwrap().to_string();
        client.send(&info).await;
        assert_eq!(client.final_response(&cseq).await.status(), Some(200));
    }
    let seen = presses(&mut events, 2).await;
    assert_eq!(
        seen,
        vec![('9', DtmfSource::SipInfo), ('#', DtmfSource::SipInfo)]
    );
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

fn dtmf_tone(key: char, ms: usize) -> Vec<i16> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let layout = ["123A", "456B", "789C", "*0#D"];
    let (row, column) = layout
        .iter()
        .enumerate()
        .find_map(|(r, keys)| keys.find(key).map(|c| (r, c)))
        .unwrap();
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let v = 5000.0 * (2.0 * std::f64::consts::PI * ROWS[row] * t).sin()
                + 5000.0 * (2.0 * std::f64::consts::PI * COLUMNS[column] * t).sin();
            v as i16
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inband_tones_are_read_when_the_caller_offers_no_telephone_event() {
    let (dir, _) = prompt_dir();
    let server = start(media_config(dir.path())).await;
    let mut events = server.events();
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.offer("8", "a=rtpmap:8 PCMA/8000\r\n", "a=sendrecv\r\n");
    let (mut dialog, gateway) = call(&mut client, offer).await;

    let keys = "90#";
    let mut audio = Vec::new();
    for key in keys.chars() {
        audio.extend(dtmf_tone(key, 100));
        audio.extend(std::iter::repeat_n(0i16, 800));
    }
    let (mut sequence, mut timestamp) = (1u16, 0u32);
    let mut payload = Vec::new();
    for chunk in audio.chunks(160) {
        g711::encode(Codec::Pcma, chunk, &mut payload);
        let bytes = RtpPacketBuilder::new()
            .payload_type(8)
            .ssrc(0xBEEF)
            .sequence(Seq::from(sequence))
            .timestamp(timestamp)
            .payload(&payload)
            .build()
            .unwrap();
        client.rtp.send_to(&bytes, gateway).await.unwrap();
        sequence = sequence.wrapping_add(1);
        timestamp = timestamp.wrapping_add(160);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = presses(&mut events, keys.len()).await;
    assert_eq!(seen.iter().map(|(d, _)| *d).collect::<String>(), keys);
    assert!(seen.iter().all(|(_, source)| *source == DtmfSource::Inband));
    assert_eq!(client.bye(&mut dialog).await, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_sends_no_rtp_is_hung_up_after_the_media_timeout() {
    let (dir, _) = prompt_dir();
    let mut config = media_config(dir.path());
    config.media.timeout_secs = 1;
    let server = start(config).await;
    let mut events = server.events();
    let mut client = Client::udp(server.udp_addrs[0]).await;
    let offer = client.g711_offer();
    let started = Instant::now();
    let (_dialog, _) = call(&mut client, offer).await;
    let bye = client.answer_bye(Duration::from_secs(4)).await;
    assert!(bye.is_some(), "the gateway ends a silent call");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(2), events.recv()).await {
            Ok(Ok(CallEvent::Ended { reason, .. })) => break reason,
            Ok(Ok(_)) => continue,
            other => panic!("no end event: {other:?}"),
        }
    };
    assert_eq!(ended, "media_timeout");
    server.shutdown().await;
}
