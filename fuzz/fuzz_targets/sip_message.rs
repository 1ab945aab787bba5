//! Any bytes as one SIP message: the parser, the typed header parsers, the
//! request/response checks, digest challenges and NOTIFY sipfrags must
//! never panic; a parsed message serialises to bytes that parse back to the
//! same message (Content-Length aside, which is written fresh) and that TCP
//! framing cuts at exactly their end.

#![no_main]

use hotline::sip::build::{response_to, scan_for_bad_request};
use hotline::sip::digest::Challenge;
use hotline::sip::headers::{CSeq, NameAddr, Uri, Via};
use hotline::sip::message::{stream_frame_len, Message, MAX_MESSAGE_SIZE};
use hotline::sip::refer::sipfrag_status;
use hotline::sip::validate::{check_request, check_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = "127.0.0.1:5061".parse().unwrap();
    let _ = stream_frame_len(data);
    let _ = sipfrag_status(data);
    let Ok(message) = Message::parse(data) else {
        let _ = scan_for_bad_request(data, source, "Bad Request");
        return;
    };
    for header in &message.headers {
        let _ = Via::parse(&header.value);
        let _ = NameAddr::parse(&header.value);
        let _ = Uri::parse(&header.value);
        let _ = CSeq::parse(&header.value);
        let _ = Challenge::parse(&header.value);
    }
    if message.is_request() {
        let _ = check_request(&message);
        let response = response_to(&message, source, 400, "Bad Request", Some("fuzz"));
        Message::parse(&response.to_bytes()).expect("our response parses");
    } else {
        let _ = check_response(&message);
    }

    let bytes = message.to_bytes();
    if bytes.len() > MAX_MESSAGE_SIZE {
        return;
    }
    let again = Message::parse(&bytes).expect("a serialised message parses");
    let mut expected = message.clone();
    expected
        .headers
        .retain(|h| !h.name.eq_ignore_ascii_case("Content-Length"));
    let mut got = again.clone();
    got.headers
        .retain(|h| !h.name.eq_ignore_ascii_case("Content-Length"));
    assert_eq!(got, expected, "serialise/parse round trip");
    assert_eq!(
        again.declared_content_length(),
        Some(Ok(message.body.len()))
    );
    assert_eq!(
        stream_frame_len(&bytes),
        Ok(Some(bytes.len())),
        "TCP framing of a serialised message"
    );
});
