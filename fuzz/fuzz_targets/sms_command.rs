//! Any text as an inbound SMS: reading it as a command, folding it and
//! cutting it to a number of segments must never panic, and a cut text
//! must fit.

#![no_main]

use hotline::sms::command::parse;
use hotline::sms::segments::{fit, segments};
use hotline::sms::text::{fold, tidy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = parse(text);
    let _ = fold(text);
    let _ = tidy(text);
    let max = usize::from(max % 8);
    assert!(segments(&fit(text, max)) <= max);
});
