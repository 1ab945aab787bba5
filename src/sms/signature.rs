//! Webhook signatures: whether an inbound SMS request was signed by the
//! provider that holds our shared secret. Two schemes:
//!
//! - Twilio: `X-Twilio-Signature` is base64(HMAC-SHA1(auth token, full URL
//!   followed by every form parameter's key and value, sorted by key and
//!   then by value)). A JSON webhook is signed over the URL alone, and the
//!   URL carries `bodySHA256=<hex SHA-256 of the raw body>`, which binds the
//!   body to the signature. Twilio keeps the port when the URL configured
//!   in its console has one, and its own validators accept the URL with
//!   and without the scheme's default port; so do we, for those two forms
//!   only ([`default_port_twin`]).
//! - The generic JSON provider: `X-Hotline-Timestamp: <unix seconds>` and
//!   `X-Hotline-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." +
//!   raw body)>`, with several comma-separated `v1=` values while a secret
//!   is being rotated. A timestamp outside the allowed window is refused as
//!   a replay.
//!
//! Every comparison of a signature is constant-time. This module owns only
//! the checks: it reads no headers, keeps no secrets and has no clock (the
//! caller passes the raw header values, the exact URL the provider
//! requested, the raw body and the current time).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// The header carrying Twilio's signature.
pub const TWILIO_SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// The generic provider's header carrying the signing time (unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Hotline-Timestamp";
/// The generic provider's header carrying the `v1=` signatures.
pub const SIGNATURE_HEADER: &str = "X-Hotline-Signature";
/// The query parameter of a Twilio JSON webhook URL that carries the body
/// hash.
pub const BODY_HASH_PARAMETER: &str = "bodySHA256";

/// Why a webhook request is refused. The messages are fit to go back in a
/// 401 or 403 reply: they name what is wrong, never the expected value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {header} header is malformed: {reason}")]
    MalformedHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error(
        "the signature is {age_secs} s old (negative: from the future), \
         outside the allowed ±{window_secs} s; refused as a possible replay"
    )]
    StaleTimestamp { age_secs: i64, window_secs: i64 },
    #[error("the signature does not match the request")]
    Mismatch,
    #[error("the URL has no {BODY_HASH_PARAMETER} parameter, which a signed JSON webhook carries")]
    MissingBodyHash,
    #[error("the body does not match the URL's {BODY_HASH_PARAMETER} parameter")]
    BodyHashMismatch,
}

impl SignatureError {
    /// Whether the request carried no credentials at all (reply 401) rather
    /// than credentials that are wrong, stale or malformed (reply 403).
    pub fn is_missing(&self) -> bool {
        matches!(self, SignatureError::MissingHeader(_))
    }
}

/// The `X-Twilio-Signature` value Twilio sends for a form-encoded request to
/// `url` (exactly as requested, query string included) with `params`.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(twilio_mac(auth_token, url, params).finalize().into_bytes())
}

/// Checks a form-encoded Twilio webhook: `url` as Twilio requested it
/// (scheme, host, port and query string as configured in Twilio), every
/// form parameter received, and the `X-Twilio-Signature` header if any.
/// A signature over `url` with the scheme's default port written out
/// (`https://host:443/…`) or left out (`https://host/…`) matches either
/// spelling; any other difference is a mismatch.
pub fn verify_twilio_form(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let claimed = decode_twilio_header(header)?;
    let matches = |url: &str| -> subtle::Choice {
        let expected = twilio_mac(auth_token, url, params).finalize().into_bytes();
        expected.as_slice().ct_eq(&claimed)
    };
    let mut any = matches(url);
    if let Some(twin) = default_port_twin(url) {
        any |= matches(&twin);
    }
    if bool::from(any) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// `url` with its scheme's default port (443 for https, 80 for http)
/// written out when it has none, or left out when it is written: the
/// other spelling of the same address, which Twilio may have signed.
/// `None` for any other port or scheme, or a URL without an authority.
pub fn default_port_twin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return None;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The port follows the host; userinfo (before the last '@') may hold ':'.
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_and_port = &authority[host_start..];
    let port_colon = match host_and_port.rfind(']') {
        // An IPv6 literal: a port can only follow its closing bracket.
        Some(bracket) => host_and_port[bracket..].find(':').map(|i| bracket + i),
        None => host_and_port.find(':'),
    };
    let twin_authority = match port_colon {
        None if host_and_port.is_empty() => return None,
        None => format!("{authority}:{default_port}"),
        Some(colon) if &host_and_port[colon + 1..] == default_port => {
            authority[..host_start + colon].to_string()
        }
        Some(_) => return None,
    };
    Some(format!("{scheme}://{twin_authority}{tail}"))
}

/// Checks a JSON Twilio webhook: the signature over `url` alone, and the
/// raw `body` against the URL's `bodySHA256` parameter (which the signature
/// covers). A URL without that parameter is refused.
pub fn verify_twilio_json(
    auth_token: &str,
    url: &str,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    verify_twilio_form(auth_token, url, &[], header)?;
    let claimed_hash = body_hash_parameter(url).ok_or(SignatureError::MissingBodyHash)?;
    let claimed_hash = hex::decode(claimed_hash).map_err(|_| SignatureError::BodyHashMismatch)?;
    let actual_hash = Sha256::digest(body);
    if bool::from(actual_hash.as_slice().ct_eq(&claimed_hash)) {
        Ok(())
    } else {
        Err(SignatureError::BodyHashMismatch)
    }
}

/// The `X-Hotline-Signature` value (`v1=` and the lowercase hex signature)
/// the generic provider sends for `body` signed at `timestamp`.
pub fn generic_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mac = generic_mac(secret, &timestamp.to_string(), body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a generic provider webhook: both headers present and well formed,
/// the timestamp within `window_secs` of `now_unix` either way, and one of
/// the `v1=` signatures matching. Signatures of other versions (`v0=` …) are
/// ignored; the timestamp is signed as sent.
pub fn verify_generic(
    secret: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now_unix: i64,
    window_secs: i64,
) -> Result<(), SignatureError> {
    let timestamp_text = timestamp_header
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or(SignatureError::MissingHeader(TIMESTAMP_HEADER))?;
    let signatures = signature_header
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or(SignatureError::MissingHeader(SIGNATURE_HEADER))?;
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::MalformedHeader {
            header: TIMESTAMP_HEADER,
            reason: "not a whole number of unix seconds",
        })?;
    let age_secs = now_unix.saturating_sub(timestamp);
    if age_secs.saturating_abs() > window_secs {
        return Err(SignatureError::StaleTimestamp {
            age_secs,
            window_secs,
        });
    }
    let claimed: Vec<Vec<u8>> = signatures
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .filter_map(|hex_text| hex::decode(hex_text.trim()).ok())
        .collect();
    if claimed.is_empty() {
        return Err(SignatureError::MalformedHeader {
            header: SIGNATURE_HEADER,
            reason: "no v1= signature in hexadecimal",
        });
    }
    let expected = generic_mac(secret, timestamp_text, body)
        .finalize()
        .into_bytes();
    let any_matches = claimed
        .iter()
        .fold(subtle::Choice::from(0), |found, candidate| {
            found | expected.as_slice().ct_eq(candidate)
        });
    if bool::from(any_matches) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn twilio_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (key, value) in sorted {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

fn generic_mac(secret: &[u8], timestamp_text: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn decode_twilio_header(header: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    let text = header
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or(SignatureError::MissingHeader(TWILIO_SIGNATURE_HEADER))?;
    BASE64
        .decode(text)
        .map_err(|_| SignatureError::MalformedHeader {
            header: TWILIO_SIGNATURE_HEADER,
            reason: "not base64",
        })
}

/// The value of the URL's `bodySHA256` query parameter, if any.
fn body_hash_parameter(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == BODY_HASH_PARAMETER)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example in Twilio's request-validation documentation
    /// (twilio-php's "Validate Incoming Requests" guide) and the unit tests
    /// of Twilio's helper libraries (twilio-python
    /// `tests/unit/test_request_validator.py`).
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    fn documented_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn twilios_documented_example_signs_and_verifies() {
        let mut params = documented_params();
        assert_eq!(twilio_signature(TOKEN, URL, &params), EXPECTED);
        params.reverse();
        assert_eq!(twilio_signature(TOKEN, URL, &params), EXPECTED);
        assert_eq!(
            verify_twilio_form(TOKEN, URL, &params, Some(EXPECTED)),
            Ok(())
        );
    }

    #[test]
    fn twilios_docs_page_example_with_other_caller_numbers_signs() {
        // The same example with the +12349013030 caller, as third-party
        // helpers quote it from twilio.com/docs/usage/security; the value
        // agrees with python3's hmac.new(b"12345", url + sorted pairs,
        // hashlib.sha1) in base64.
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(
            twilio_signature(TOKEN, URL, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn repeated_keys_are_signed_in_value_order() {
        // twilio-python's duplicate-parameter vector.
        let params = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            twilio_signature(TOKEN, URL, &params),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn the_default_port_has_one_twin_spelling() {
        let twin = |url: &str| default_port_twin(url);
        assert_eq!(
            twin("https://host/sms/twilio?a=1").as_deref(),
            Some("https://host:443/sms/twilio?a=1")
        );
        assert_eq!(
            twin("https://host:443/sms/twilio").as_deref(),
            Some("https://host/sms/twilio")
        );
        assert_eq!(twin("http://host").as_deref(), Some("http://host:80"));
        assert_eq!(twin("HTTP://host:80?x").as_deref(), Some("HTTP://host?x"));
        assert_eq!(
            twin("https://user:pw@host/p").as_deref(),
            Some("https://user:pw@host:443/p")
        );
        assert_eq!(
            twin("https://[2001:db8::1]:443/p").as_deref(),
            Some("https://[2001:db8::1]/p")
        );
        assert_eq!(
            twin("https://[2001:db8::1]/p").as_deref(),
            Some("https://[2001:db8::1]:443/p")
        );
        for none in [
            "https://host:8443/p",
            "http://host:443/p",
            "https://host:80/p",
            "https://host:/p",
            "ftp://host/p",
            "https:///p",
            "host/p",
        ] {
            assert_eq!(twin(none), None, "{none}");
        }
    }

    #[test]
    fn twilios_validator_signs_the_url_with_its_port_and_we_accept_it() {
        // twilio-python 9.13: RequestValidator("12345").compute_signature(
        //   "https://gw.example.com:443/sms/twilio", params); its validate()
        // accepts it for the URL with and without ":443".
        let params = pairs(&[
            ("Body", "帮助"),
            ("From", "+8613800138000"),
            ("MessageSid", "SMport1"),
            ("To", "+8610000"),
        ]);
        let with_port = "https://gw.example.com:443/sms/twilio";
        let signature = "i8Z2dAg6PzIezdc8rzoqDUGqDxU=";
        assert_eq!(twilio_signature(TOKEN, with_port, &params), signature);
        for requested in [with_port, "https://gw.example.com/sms/twilio"] {
            assert_eq!(
                verify_twilio_form(TOKEN, requested, &params, Some(signature)),
                Ok(())
            );
        }
    }

    #[test]
    fn a_signature_with_or_without_the_default_port_verifies() {
        let params = documented_params();
        for (signed, requested) in [
            ("https://mycompany.com:443/myapp.php?foo=1&bar=2", URL),
            (URL, "https://mycompany.com:443/myapp.php?foo=1&bar=2"),
            ("http://mycompany.com:80/a", "http://mycompany.com/a"),
        ] {
            let signature = twilio_signature(TOKEN, signed, &params);
            assert_eq!(
                verify_twilio_form(TOKEN, requested, &params, Some(&signature)),
                Ok(()),
                "signed for {signed}, requested as {requested}"
            );
        }
        for (signed, requested) in [
            ("https://mycompany.com:8443/a", "https://mycompany.com/a"),
            ("https://mycompany.com/a", "https://mycompany.com:8443/a"),
            ("https://mycompany.com:80/a", "https://mycompany.com/a"),
            ("http://mycompany.com:443/a", "http://mycompany.com/a"),
            ("https://mycompany.com:443/a", "http://mycompany.com/a"),
        ] {
            let signature = twilio_signature(TOKEN, signed, &params);
            assert_eq!(
                verify_twilio_form(TOKEN, requested, &params, Some(&signature)),
                Err(SignatureError::Mismatch),
                "signed for {signed}, requested as {requested}"
            );
        }
    }

    #[test]
    fn a_changed_parameter_or_url_is_a_mismatch() {
        let mut params = documented_params();
        params[2].1 = "1235".to_string();
        assert_eq!(
            verify_twilio_form(TOKEN, URL, &params, Some(EXPECTED)),
            Err(SignatureError::Mismatch)
        );
        let other_url = URL.replace("https", "http");
        assert_eq!(
            verify_twilio_form(TOKEN, &other_url, &documented_params(), Some(EXPECTED)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_twilio_form("54321", URL, &documented_params(), Some(EXPECTED)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_missing_twilio_header_is_missing_and_garbage_is_malformed() {
        for header in [None, Some(""), Some("  ")] {
            let error = verify_twilio_form(TOKEN, URL, &documented_params(), header).unwrap_err();
            assert_eq!(
                error,
                SignatureError::MissingHeader(TWILIO_SIGNATURE_HEADER)
            );
            assert!(error.is_missing());
        }
        let error =
            verify_twilio_form(TOKEN, URL, &documented_params(), Some("not*base64")).unwrap_err();
        assert!(matches!(error, SignatureError::MalformedHeader { .. }));
        assert!(!error.is_missing());
    }

    #[test]
    fn twilios_json_example_verifies_body_and_signature() {
        // twilio-python's body vector: the body, its SHA-256 and the
        // signature of the URL carrying it.
        let body = br#"{"property": "value", "boolean": true}"#;
        let url = format!(
            "{URL}&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        let signature = "a9nBmqA0ju/hNViExpshrM61xv4=";
        let header = Some(signature);
        assert_eq!(twilio_signature(TOKEN, &url, &[]), signature);
        assert_eq!(verify_twilio_json(TOKEN, &url, body, header), Ok(()));
        assert_eq!(
            verify_twilio_json(
                TOKEN,
                &url,
                br#"{"property": "value", "boolean": false}"#,
                header
            ),
            Err(SignatureError::BodyHashMismatch)
        );
    }

    #[test]
    fn a_json_webhook_without_a_body_hash_is_refused() {
        let signature = twilio_signature(TOKEN, URL, &[]);
        let error = verify_twilio_json(TOKEN, URL, b"{}", Some(&signature)).unwrap_err();
        assert_eq!(error, SignatureError::MissingBodyHash);
        assert!(!error.is_missing());
    }

    #[test]
    fn a_json_body_hash_that_is_not_hex_is_a_body_mismatch() {
        let url = format!("{URL}&bodySHA256=zz");
        let signature = twilio_signature(TOKEN, &url, &[]);
        assert_eq!(
            verify_twilio_json(TOKEN, &url, b"{}", Some(&signature)),
            Err(SignatureError::BodyHashMismatch)
        );
    }

    const SECRET: &[u8] = b"whsec_test";
    const NOW: i64 = 1_790_000_000;

    #[test]
    fn generic_signature_matches_an_independent_hmac() {
        // python3 -c 'import hmac,hashlib;
        //   print(hmac.new(b"whsec_test", b"1790000000.{\"from\":\"+8613800138000\"}",
        //   hashlib.sha256).hexdigest())'
        let body = br#"{"from":"+8613800138000"}"#;
        assert_eq!(
            generic_signature(SECRET, NOW, body),
            "v1=1af7bb625160d12628fd812b55c7edf0825111606f2a5ad4ef47d4301c99f20c"
        );
    }

    #[test]
    fn a_fresh_generic_signature_verifies() {
        let body = b"{\"text\":\"STATUS\"}";
        let signature = generic_signature(SECRET, NOW - 30, body);
        assert_eq!(
            verify_generic(
                SECRET,
                Some(&(NOW - 30).to_string()),
                Some(&signature),
                body,
                NOW,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn any_of_several_rotated_signatures_may_match() {
        let body = b"{}";
        let old = generic_signature(b"old secret", NOW, body);
        let new = generic_signature(SECRET, NOW, body);
        let header = format!("{old}, v0=abcd,{new}");
        let timestamp = NOW.to_string();
        assert_eq!(
            verify_generic(SECRET, Some(&timestamp), Some(&header), body, NOW, 300),
            Ok(())
        );
        assert_eq!(
            verify_generic(b"other", Some(&timestamp), Some(&header), body, NOW, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_replayed_or_future_timestamp_is_stale() {
        let body = b"{}";
        for (signed_at, age_secs) in [(NOW - 301, 301), (NOW + 301, -301), (i64::MIN, i64::MAX)] {
            let signature = generic_signature(SECRET, signed_at, body);
            assert_eq!(
                verify_generic(
                    SECRET,
                    Some(&signed_at.to_string()),
                    Some(&signature),
                    body,
                    NOW,
                    300
                ),
                Err(SignatureError::StaleTimestamp {
                    age_secs,
                    window_secs: 300
                })
            );
        }
        let at_edge = generic_signature(SECRET, NOW - 300, body);
        assert_eq!(
            verify_generic(
                SECRET,
                Some(&(NOW - 300).to_string()),
                Some(&at_edge),
                body,
                NOW,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn missing_and_malformed_generic_headers_are_told_apart() {
        let body = b"{}";
        let signature = generic_signature(SECRET, NOW, body);
        let timestamp = NOW.to_string();
        let missing_timestamp =
            verify_generic(SECRET, None, Some(&signature), body, NOW, 300).unwrap_err();
        assert_eq!(
            missing_timestamp,
            SignatureError::MissingHeader(TIMESTAMP_HEADER)
        );
        assert!(missing_timestamp.is_missing());
        assert_eq!(
            verify_generic(SECRET, Some(&timestamp), Some(" "), body, NOW, 300),
            Err(SignatureError::MissingHeader(SIGNATURE_HEADER))
        );
        for bad_timestamp in ["yesterday", "1.5", "99999999999999999999"] {
            let error = verify_generic(
                SECRET,
                Some(bad_timestamp),
                Some(&signature),
                body,
                NOW,
                300,
            )
            .unwrap_err();
            assert!(matches!(
                error,
                SignatureError::MalformedHeader {
                    header: TIMESTAMP_HEADER,
                    ..
                }
            ));
            assert!(!error.is_missing());
        }
        for bad_signature in ["abc", "v1=xyz", "v0=00"] {
            assert!(matches!(
                verify_generic(
                    SECRET,
                    Some(&timestamp),
                    Some(bad_signature),
                    body,
                    NOW,
                    300
                ),
                Err(SignatureError::MalformedHeader {
                    header: SIGNATURE_HEADER,
                    ..
                })
            ));
        }
    }

    #[test]
    fn a_changed_generic_body_or_timestamp_is_a_mismatch() {
        let signature = generic_signature(SECRET, NOW, b"{\"a\":1}");
        let timestamp = NOW.to_string();
        assert_eq!(
            verify_generic(
                SECRET,
                Some(&timestamp),
                Some(&signature),
                b"{\"a\":2}",
                NOW,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_generic(
                SECRET,
                Some(&(NOW - 1).to_string()),
                Some(&signature),
                b"{\"a\":1}",
                NOW,
                300
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_stale_timestamp_says_how_old() {
        let error = SignatureError::StaleTimestamp {
            age_secs: 301,
            window_secs: 300,
        };
        assert_eq!(
            error.to_string(),
            "the signature is 301 s old (negative: from the future), \
             outside the allowed ±300 s; refused as a possible replay"
        );
    }
}
