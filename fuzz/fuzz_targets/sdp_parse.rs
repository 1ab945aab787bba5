//! Any bytes as an SDP offer or answer: parsing, answering and accepting
//! must never panic. An answer we build parses, and read back as an answer
//! to our own offer it yields the codec, payload types, ptime and direction
//! we negotiated (our side reversed).

#![no_main]

use hotline::sip::sdp::{
    accept_answer, answer, offer, parse, parse_body, Direction, LocalMedia, MediaPolicy,
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
    };
    // The same text as an answer to the offer we send on bridged calls.
    let _ = parse(&offer(&policy, &local, Direction::SendRecv));
    let _ = accept_answer(&remote, &policy);
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
    let read_back = accept_answer(&ours, &policy).expect("our answer is acceptable");
    assert_eq!(read_back.codec, negotiated.codec);
    assert_eq!(read_back.payload_type, negotiated.payload_type);
    assert_eq!(read_back.telephone_event_pt, negotiated.telephone_event_pt);
    assert_eq!(read_back.ptime_ms, negotiated.ptime_ms);
    assert_eq!(read_back.direction, negotiated.direction.reverse());
});
