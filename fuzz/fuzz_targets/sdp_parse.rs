//! Any bytes as an SDP offer or answer: parsing, answering and accepting
//! must never panic. An answer we build parses, and read back as an answer
//! to our own offer it yields the codec, payload types, ptime and direction
//! we negotiated (our side reversed). An SRTP answer is read back as the
//! answer to an SRTP offer of ours; it echoes the caller's crypto tag, so
//! only one with our own offer's tag can be read back that way.

#![no_main]

use hotline::sip::sdp::{
    accept_answer, answer, offer, parse, parse_body, Direction, LocalMedia, MediaPolicy, SdpError,
    SrtpMode,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(remote) = parse_body(data) else {
        return;
    };
    let policy = MediaPolicy::default();
    let local = LocalMedia {
        address: "127.0.0.1".parse().unwrap(),
        rtp_port: 10000,
        session_id: 1,
        session_version: 1,
        srtp_key: hotline::sip::sdes::MasterKey::from_bytes([7; 30]),
    };
    // The same text as an answer to the offer we send on bridged calls.
    let _ = parse(&offer(&policy, &local, Direction::SendRecv));
    let _ = accept_answer(&remote, &policy, &local);
    let Ok((text, negotiated)) = answer(&remote, &policy, &local) else {
        return;
    };
    let ours = parse(&text).expect("our answer parses");
    assert_eq!(
        ours.media_lines.len(),
        remote.media_lines.len(),
        "every m= line of the offer is answered"
    );
    let audio = ours.audio.as_ref().expect("our answer has audio");
    assert_eq!(audio.formats.first(), Some(&negotiated.payload_type));
    let read_policy = MediaPolicy {
        srtp: if negotiated.srtp.is_some() {
            SrtpMode::Required
        } else {
            policy.srtp
        },
        ..policy.clone()
    };
    let read_back = match accept_answer(&ours, &read_policy, &local) {
        Ok(read_back) => read_back,
        Err(SdpError::NoUsableCrypto { .. }) if negotiated.srtp.is_some() => return,
        Err(e) => panic!("our answer is not acceptable: {e}"),
    };
    assert_eq!(read_back.codec, negotiated.codec);
    assert_eq!(read_back.payload_type, negotiated.payload_type);
    assert_eq!(read_back.telephone_event_pt, negotiated.telephone_event_pt);
    assert_eq!(read_back.ptime_ms, negotiated.ptime_ms);
    assert_eq!(read_back.direction, negotiated.direction.reverse());
});
