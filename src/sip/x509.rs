//! The few facts about an X.509 certificate (RFC 5280) the gateway
//! reports on its own TLS certificate: when it is valid, and whether it
//! names itself as its issuer (self-signed). rustls checks certificates
//! but does not expose these, and a full X.509 crate would be a large
//! dependency for three fields, so this reads just the DER structure up
//! to the subject (pure; the input is an operator's file, and any byte
//! string gives an answer or `None`, never a panic).

use chrono::{DateTime, NaiveDate, Utc};

/// What [`summarise`] finds in a DER certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateDates {
    /// Valid from (Unix seconds).
    pub not_before: i64,
    /// Valid until (Unix seconds).
    pub not_after: i64,
    /// The issuer is the subject: nobody else vouches for it.
    pub self_issued: bool,
}

impl CertificateDates {
    /// `not_after` as a date for messages.
    pub fn expires(&self) -> String {
        format_time(self.not_after)
    }

    /// `not_before` as a date for messages.
    pub fn starts(&self) -> String {
        format_time(self.not_before)
    }
}

/// A Unix time as `2026-12-04 05:50:27 UTC`.
pub fn format_time(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Reads the validity and issuer/subject of a DER certificate; `None` when
/// it is not one.
pub fn summarise(der: &[u8]) -> Option<CertificateDates> {
    let (tag, certificate, _) = element(der)?;
    expect(tag, SEQUENCE)?;
    let (tag, tbs, _) = element(certificate)?;
    expect(tag, SEQUENCE)?;
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == VERSION {
        rest = after;
    }
    let (tag, _, after_serial) = element(rest)?;
    expect(tag, INTEGER)?;
    let (tag, _, after_algorithm) = element(after_serial)?;
    expect(tag, SEQUENCE)?;
    let (tag, issuer, after_issuer) = element(after_algorithm)?;
    expect(tag, SEQUENCE)?;
    let (tag, validity, after_validity) = element(after_issuer)?;
    expect(tag, SEQUENCE)?;
    let (tag, subject, _) = element(after_validity)?;
    expect(tag, SEQUENCE)?;
    let (before_tag, before, after_before) = element(validity)?;
    let (after_tag, after, _) = element(after_before)?;
    Some(CertificateDates {
        not_before: time(before_tag, before)?,
        not_after: time(after_tag, after)?,
        self_issued: issuer == subject,
    })
}

fn expect(tag: u8, wanted: u8) -> Option<()> {
    (tag == wanted).then_some(())
}

/// One DER element: its tag, its contents and what follows it. Only the
/// single-byte tags and definite lengths DER allows.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (digits, rest) = input.split_at_checked(count)?;
        input = rest;
        digits
            .iter()
            .fold(0usize, |length, &digit| (length << 8) | usize::from(digit))
    };
    let (contents, rest) = input.split_at_checked(length)?;
    Some((tag, contents, rest))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time(tag: u8, contents: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(contents).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |at: usize| rest[at..at + 2].parse::<u32>().ok();
    let moment = NaiveDate::from_ymd_opt(year, field(0)?, field(2)?)?.and_hms_opt(
        field(4)?,
        field(6)?,
        field(8)?,
    )?;
    Some(moment.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> rcgen::Certificate {
        let mut params =
            rcgen::CertificateParams::new(vec!["sip.example.com".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap()
    }

    #[test]
    fn dates_of_a_certificate_in_utc_time() {
        let cert = certificate((2025, 1, 2), (2027, 3, 4));
        let dates = summarise(cert.der()).unwrap();
        assert_eq!(dates.starts(), "2025-01-02 00:00:00 UTC");
        assert_eq!(dates.expires(), "2027-03-04 00:00:00 UTC");
        assert!(dates.self_issued);
    }

    #[test]
    fn dates_after_2049_are_generalized_time() {
        let cert = certificate((2049, 12, 31), (2051, 6, 1));
        let dates = summarise(cert.der()).unwrap();
        assert_eq!(dates.starts(), "2049-12-31 00:00:00 UTC");
        assert_eq!(dates.expires(), "2051-06-01 00:00:00 UTC");
    }

    #[test]
    fn a_certificate_signed_by_a_ca_is_not_self_issued() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["sip.example.com".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        assert!(!summarise(leaf.der()).unwrap().self_issued);
        assert!(summarise(ca.der()).unwrap().self_issued);
    }

    #[test]
    fn anything_else_is_none_without_panicking() {
        let cert = certificate((2025, 1, 1), (2026, 1, 1));
        let der = cert.der().to_vec();
        for cut in 0..der.len() {
            let _ = summarise(&der[..cut]);
        }
        assert_eq!(summarise(b""), None);
        assert_eq!(summarise(b"not a certificate"), None);
        assert_eq!(summarise(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(summarise(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        let mut flipped = der.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = summarise(&flipped);
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn times_in_both_encodings() {
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            time(GENERALIZED_TIME, b"20500101000000Z"),
            Some(2_524_608_000)
        );
        assert_eq!(time(UTC_TIME, b"700101000000"), None, "no Z");
        assert_eq!(time(UTC_TIME, b"701301000000Z"), None, "month 13");
        assert_eq!(time(GENERALIZED_TIME, b"700101000000Z"), None);
        assert_eq!(time(UTC_TIME, "7001010000٠0Z".as_bytes()), None);
    }
}
