//! Any text as an SDP offer: parsing and answering must never panic.

#![no_main]

use hotline::sip::sdp::{answer, parse, LocalMedia, MediaPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(offer) = parse(text) {
        let local = LocalMedia {
            address: "127.0.0.1".parse().unwrap(),
            rtp_port: 10000,
            session_id: 1,
            session_version: 1,
            srtp_key: hotline::sip::sdes::MasterKey::from_bytes([7; 30]),
        };
        let _ = answer(&offer, &MediaPolicy::default(), &local);
    }
});
