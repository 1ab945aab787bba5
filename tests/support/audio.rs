//! Calls that carry real audio, for the recording and speech tests: a
//! call to 10000 with the gateway's RTP address, WAV files of the
//! repository read as samples, and speech sent as 20 ms µ-law packets in
//! real time.

use super::Client;
use hotline::media::g711;
use hotline::server::Server;
use hotline::sip::sdp;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The samples of a 16-bit WAV in the repository.
pub fn wav(path: &str) -> Vec<i16> {
    hound::WavReader::open(repo(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect()
}

/// Calls 10000 (G.711 offer, answered and ACKed); returns the caller, the
/// dialog and the gateway's RTP address.
pub async fn call(server: &Server) -> (Client, super::Dialog, SocketAddr) {
    let mut caller = Client::udp(server.udp_addrs[0]).await;
    let (response, mut dialog) = caller.invite("10000", Some(caller.g711_offer())).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    caller.ack(&mut dialog).await;
    let audio = sdp::parse_body(&response.body).unwrap().audio.unwrap();
    let rtp = SocketAddr::new(audio.connection.unwrap(), audio.port);
    (caller, dialog, rtp)
}

/// Sends `pcm` to `to` as 20 ms µ-law packets in real time, numbered
/// from `first`; returns the next packet number.
pub async fn say(client: &Client, to: SocketAddr, pcm: &[i16], first: u16) -> u16 {
    let frames: Vec<Vec<u8>> = pcm
        .chunks(160)
        .map(|chunk| {
            let mut frame = chunk.to_vec();
            frame.resize(160, 0);
            frame.iter().map(|s| g711::ulaw_encode(*s)).collect()
        })
        .collect();
    let count = u16::try_from(frames.len()).unwrap();
    client
        .send_audio(to, 0, 0xBEEF, count, |i| frames[usize::from(i)].clone())
        .await;
    first + count
}
