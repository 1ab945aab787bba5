//! SMS webhook bodies as a provider, or anyone on the internet, sends them:
//! Twilio forms, Twilio JSON with `bodySHA256`, the generic provider's
//! JSON, and arbitrary signature headers. The target signs each body
//! itself, as the provider would, so the fuzzer gets past the signature
//! check to the body parsing behind it; the check must accept that
//! signature and refuse the same body under another secret. Nothing may
//! panic, every refusal is a 400, and a text read from a body goes through
//! what `sms::inbound` does with it first (the sender's normal form and
//! its spellings, the command parser).
//!
//! Input: a mode byte, then the body (mode 3: timestamp header, NUL,
//! signature header, NUL, body).

#![no_main]

use hotline::sms::command;
use hotline::sms::inbound::Text;
use hotline::phone::PhoneNumber;
use hotline::sms::signature::{
    generic_signature, twilio_signature, verify_generic, verify_twilio_form, verify_twilio_json,
    SignatureError,
};
use hotline::sms::webhook::{generic_text, json_strings, twilio_text, Refusal};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const TOKEN: &str = "twilio-auth-token";
const SECRET: &[u8] = b"generic-secret";
const URL: &str = "https://hotline.example.com/sms/twilio";
const NOW: i64 = 1_767_225_600;
const WINDOW: i64 = 300;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => twilio_form(body),
        1 => twilio_json(body),
        2 => generic(body),
        _ => headers(body),
    }
});

fn twilio_form(body: &[u8]) {
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let signature = twilio_signature(TOKEN, URL, &params);
    verify_twilio_form(TOKEN, URL, &params, Some(&signature)).expect("our own signature");
    assert_eq!(
        verify_twilio_form("another-token", URL, &params, Some(&signature)),
        Err(SignatureError::Mismatch)
    );
    read(twilio_text(&params));
}

fn twilio_json(body: &[u8]) {
    let url = format!("{URL}?bodySHA256={}", hex::encode(Sha256::digest(body)));
    let signature = twilio_signature(TOKEN, &url, &[]);
    verify_twilio_json(TOKEN, &url, body, Some(&signature)).expect("our own signature");
    assert!(verify_twilio_json("another-token", &url, body, Some(&signature)).is_err());
    match json_strings(body) {
        Ok(fields) => read(twilio_text(&fields)),
        Err(refusal) => refused(&refusal),
    }
}

fn generic(body: &[u8]) {
    let signature = generic_signature(SECRET, NOW, body);
    let timestamp = NOW.to_string();
    verify_generic(
        SECRET,
        Some(&timestamp),
        Some(&signature),
        body,
        NOW,
        WINDOW,
    )
    .expect("our own signature");
    assert_eq!(
        verify_generic(
            b"other",
            Some(&timestamp),
            Some(&signature),
            body,
            NOW,
            WINDOW
        ),
        Err(SignatureError::Mismatch)
    );
    read(generic_text(body));
}

/// Headers nobody signed: refused, never a panic.
fn headers(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == 0);
    let timestamp = parts.next().map(String::from_utf8_lossy);
    let signature = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or_default();
    let generic = verify_generic(
        SECRET,
        timestamp.as_deref(),
        signature.as_deref(),
        body,
        NOW,
        WINDOW,
    );
    assert!(generic.is_err(), "an unsigned request passed");
    let query = timestamp.as_deref().unwrap_or_default();
    let url = format!("{URL}?{query}");
    assert!(verify_twilio_json(TOKEN, &url, body, signature.as_deref()).is_err());
    assert!(verify_twilio_form(TOKEN, &url, &[], signature.as_deref()).is_err());
}

fn read(text: Result<Text, Refusal>) {
    let text = match text {
        Ok(text) => text,
        Err(refusal) => return refused(&refusal),
    };
    assert!(!text.message_id.trim().is_empty());
    if let Ok(sender) = PhoneNumber::parse(&text.from) {
        let normal = sender.to_string();
        let spellings = sender.spellings();
        assert_eq!(spellings.first(), Some(&normal));
        for spelling in &spellings {
            assert_eq!(PhoneNumber::parse(spelling).as_ref(), Ok(&sender), "{spelling}");
        }
    }
    let _ = command::parse(&text.body);
}

fn refused(refusal: &Refusal) {
    assert_eq!(refusal.status().as_u16(), 400, "{refusal:?}");
}
