//! SIP INFO bodies as a caller's phone sends them: any Content-Type and
//! body must never panic, and a key read from one is a DTMF key.
//!
//! Input: the Content-Type value, a NUL byte, then the body.

#![no_main]

use hotline::media::dtmf_info::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(content_type);
    if let Some(key) = parse(&content_type, body) {
        assert!(
            matches!(key, '0'..='9' | '*' | '#' | 'A'..='D'),
            "not a key: {key:?}"
        );
    }
});
