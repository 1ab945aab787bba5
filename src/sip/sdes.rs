//! SDES key exchange for SRTP (RFC 4568): the `a=crypto` SDP attribute.
//!
//! This module owns the attribute's syntax and the decision whether one
//! offered line is something we can use:
//! - [`CryptoAttribute::parse`] reads the value after `a=crypto:` into its
//!   parts (tag, suite, key parameters, session parameters) without judging
//!   them, so that any well-formed line from any peer is represented;
//! - [`CryptoAttribute::usable`] says whether we can run it: a suite we
//!   implement, exactly one `inline:` key of the suite's length, no MKI, and
//!   no session parameter we do not implement (RFC 4568 §6.3: a line with a
//!   session parameter the answerer does not understand is not accepted);
//! - [`CryptoAttribute::ours`] writes the line we answer or offer with.
//!
//! Pure and fuzz-friendly: text in, values out, no input may make it panic.
//! The keys themselves (`MasterKey`) are plain bytes; the transform that uses
//! them is `media::srtp`.

use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use std::fmt;

/// Length of an AES-128 master key.
pub const MASTER_KEY_LEN: usize = 16;
/// Length of the master salt of the AES_CM suites.
pub const MASTER_SALT_LEN: usize = 14;
/// The `inline:` key material: master key then master salt.
pub const KEY_SALT_LEN: usize = MASTER_KEY_LEN + MASTER_SALT_LEN;
/// The largest tag RFC 4568 allows (`1*9DIGIT`).
const MAX_TAG: u32 = 999_999_999;

/// The SRTP crypto suites we implement (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoSuite {
    /// AES counter mode, 128-bit key, HMAC-SHA1 with an 80-bit tag.
    AesCm128HmacSha1_80,
    /// The same with a 32-bit SRTP tag (SRTCP keeps 80 bits).
    AesCm128HmacSha1_32,
}

impl CryptoSuite {
    /// Every suite, in our order of preference when we offer.
    pub const ALL: [CryptoSuite; 2] = [
        CryptoSuite::AesCm128HmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32,
    ];

    /// The suite's name in SDP.
    pub fn name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Looks a suite up by its SDP name (case-sensitive, as RFC 4568's
    /// suite names are tokens compared exactly).
    pub fn from_name(name: &str) -> Option<CryptoSuite> {
        CryptoSuite::ALL
            .into_iter()
            .find(|suite| suite.name() == name)
    }

    /// Bytes of authentication tag on each SRTP packet.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => 10,
            CryptoSuite::AesCm128HmacSha1_32 => 4,
        }
    }
}

impl fmt::Display for CryptoSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An SRTP master key and salt, as carried in `inline:`. `Debug` never
/// shows the bytes (keys must not reach the logs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey([u8; KEY_SALT_LEN]);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_SALT_LEN]) -> MasterKey {
        MasterKey(bytes)
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> MasterKey {
        use rand::TryRngCore as _;
        let mut bytes = [0u8; KEY_SALT_LEN];
        if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
            // No OS entropy at all: fall back to the thread's CSPRNG
            // (ChaCha seeded from the OS when it started).
            rand::fill(&mut bytes);
        }
        MasterKey(bytes)
    }

    /// The 16-byte master key.
    pub fn key(&self) -> &[u8] {
        &self.0[..MASTER_KEY_LEN]
    }

    /// The 14-byte master salt.
    pub fn salt(&self) -> &[u8] {
        &self.0[MASTER_KEY_LEN..]
    }

    /// Base64 of key and salt, as written after `inline:`.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// One `inline:` key parameter: the key, its lifetime and MKI as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// The decoded key and salt (any length; checked against the suite by
    /// [`CryptoAttribute::usable`]).
    pub key_salt: Vec<u8>,
    /// `|2^31` or `|1048576`: the packets the key may protect.
    pub lifetime: Option<String>,
    /// `|1:4`: the MKI value and its length in bytes.
    pub mki: Option<String>,
}

/// A parsed `a=crypto` line (RFC 4568 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The line's tag, echoed by the answer.
    pub tag: u32,
    /// The crypto suite as written.
    pub suite: String,
    /// The `inline:` key parameters (other key methods are left out).
    pub keys: Vec<KeyParam>,
    /// Session parameters as written (`KDR=1`, `UNENCRYPTED_SRTP`, …).
    pub session_params: Vec<String>,
}

/// Why an `a=crypto` line cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdesError {
    #[error("crypto attribute needs a tag, a suite and key parameters")]
    MissingField,
    #[error("crypto tag is not a number of at most 9 digits")]
    BadTag,
    #[error("crypto key parameter {0:?} is not inline:<base64>[|lifetime][|mki:length]")]
    BadKeyParam(String),
}

/// Why a well-formed `a=crypto` line is one we cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("crypto suite {0} is not supported")]
    Suite(String),
    #[error("crypto line has {0} keys; only one without MKI is supported")]
    KeyCount(usize),
    #[error("crypto key is {0} bytes, the suite needs {KEY_SALT_LEN}")]
    KeyLength(usize),
    #[error("crypto key uses an MKI, which is not supported")]
    Mki,
    #[error("crypto session parameter {0} is not supported")]
    SessionParam(String),
}

impl CryptoAttribute {
    /// Parses the value of `a=crypto:`, e.g.
    /// `1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4`.
    pub fn parse(value: &str) -> Result<CryptoAttribute, SdesError> {
        let mut fields = value.split_ascii_whitespace();
        let (Some(tag), Some(suite), Some(key_params)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(SdesError::MissingField);
        };
        let tag = Some(tag)
            .filter(|tag| (1..=9).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|tag| tag.parse::<u32>().ok())
            .filter(|&tag| tag <= MAX_TAG)
            .ok_or(SdesError::BadTag)?;
        let mut keys = Vec::new();
        for param in key_params.split(';') {
            let (method, info) = param
                .split_once(':')
                .ok_or_else(|| SdesError::BadKeyParam(param.to_owned()))?;
            // Only `inline` is defined (RFC 4568 §6.1); others are kept out.
            if method == "inline" {
                keys.push(
                    parse_inline(info).ok_or_else(|| SdesError::BadKeyParam(param.to_owned()))?,
                );
            }
        }
        Ok(CryptoAttribute {
            tag,
            suite: suite.to_owned(),
            keys,
            session_params: fields.map(str::to_owned).collect(),
        })
    }

    /// The suite and key, when we can run this line.
    pub fn usable(&self) -> Result<(CryptoSuite, MasterKey), Unusable> {
        let suite = CryptoSuite::from_name(&self.suite)
            .ok_or_else(|| Unusable::Suite(self.suite.clone()))?;
        let [key] = self.keys.as_slice() else {
            return Err(Unusable::KeyCount(self.keys.len()));
        };
        if key.mki.is_some() {
            return Err(Unusable::Mki);
        }
        let bytes: [u8; KEY_SALT_LEN] = key
            .key_salt
            .as_slice()
            .try_into()
            .map_err(|_| Unusable::KeyLength(key.key_salt.len()))?;
        // The lifetime limits the sender's own use of its key (it re-keys);
        // as the receiver of that key we have nothing to enforce.
        if let Some(param) = self
            .session_params
            .iter()
            .find(|param| !param.starts_with("WSH="))
        {
            // WSH is a hint for the replay window, which is 128 here (more
            // than the 64 RFC 3711 asks for). KDR, UNENCRYPTED_*,
            // UNAUTHENTICATED_SRTP and FEC_* change the transform itself.
            return Err(Unusable::SessionParam(param.clone()));
        }
        Ok((suite, MasterKey(bytes)))
    }

    /// The line we send: `<tag> <suite> inline:<key>`.
    pub fn ours(tag: u32, suite: CryptoSuite, key: &MasterKey) -> String {
        format!("{tag} {} inline:{}", suite.name(), key.to_base64())
    }
}

/// `<base64 key||salt>[|<lifetime>][|<mki>:<length>]`.
fn parse_inline(info: &str) -> Option<KeyParam> {
    let mut parts = info.split('|');
    let key_salt = decode_base64(parts.next()?)?;
    let mut lifetime = None;
    let mut mki = None;
    for part in parts {
        if part.contains(':') && mki.is_none() {
            let (value, length) = part.split_once(':')?;
            let numeric =
                |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
            if !numeric(value) || !numeric(length) {
                return None;
            }
            mki = Some(part.to_owned());
        } else if lifetime.is_none() && mki.is_none() && valid_lifetime(part) {
            lifetime = Some(part.to_owned());
        } else {
            return None;
        }
    }
    Some(KeyParam {
        key_salt,
        lifetime,
        mki,
    })
}

/// `2^<digits>` or `<digits>`.
fn valid_lifetime(text: &str) -> bool {
    let digits = text.strip_prefix("2^").unwrap_or(text);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Base64 with or without padding (peers differ).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    if text.is_empty() {
        return None;
    }
    LENIENT.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4568 §4's example line.
    const RFC_EXAMPLE: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";

    #[test]
    fn the_rfc_example_parses_and_is_refused_for_its_mki() {
        let line = CryptoAttribute::parse(RFC_EXAMPLE).expect("parses");
        assert_eq!(line.tag, 1);
        assert_eq!(line.suite, "AES_CM_128_HMAC_SHA1_80");
        assert_eq!(line.keys.len(), 1);
        assert_eq!(line.keys[0].key_salt.len(), KEY_SALT_LEN);
        assert_eq!(line.keys[0].lifetime.as_deref(), Some("2^20"));
        assert_eq!(line.keys[0].mki.as_deref(), Some("1:4"));
        assert_eq!(line.usable(), Err(Unusable::Mki));
    }

    #[test]
    fn a_plain_line_is_usable_with_or_without_lifetime_and_padding() {
        for value in [
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31",
            "1  AES_CM_128_HMAC_SHA1_80\tinline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR WSH=64",
        ] {
            let line = CryptoAttribute::parse(value).expect(value);
            let (suite, key) = line.usable().expect(value);
            assert_eq!(suite, CryptoSuite::AesCm128HmacSha1_80);
            assert_eq!(key.to_base64(), "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR");
        }
        let short = CryptoAttribute::parse(
            "7 AES_CM_128_HMAC_SHA1_32 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
        )
        .expect("parses");
        let (suite, key) = short.usable().expect("usable");
        assert_eq!((short.tag, suite), (7, CryptoSuite::AesCm128HmacSha1_32));
        assert_eq!(key.key(), &(0u8..16).collect::<Vec<_>>()[..]);
        assert_eq!(key.salt(), &(16u8..30).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn lines_we_cannot_run_say_why() {
        let key = "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let cases = [
            (
                format!("1 AES_256_CM_HMAC_SHA1_80 {key}"),
                Unusable::Suite("AES_256_CM_HMAC_SHA1_80".into()),
            ),
            (
                format!("1 aes_cm_128_hmac_sha1_80 {key}"),
                Unusable::Suite("aes_cm_128_hmac_sha1_80".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key}|1:4;{key}|2:4"),
                Unusable::KeyCount(2),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA".into(),
                Unusable::KeyLength(3),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} KDR=1"),
                Unusable::SessionParam("KDR=1".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} UNENCRYPTED_SRTP"),
                Unusable::SessionParam("UNENCRYPTED_SRTP".into()),
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 {key} FEC_ORDER=FEC_SRTP"),
                Unusable::SessionParam("FEC_ORDER=FEC_SRTP".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 uri:https://keys.example/1".into(),
                Unusable::KeyCount(0),
            ),
        ];
        for (value, want) in cases {
            let line = CryptoAttribute::parse(&value).expect(&value);
            assert_eq!(line.usable().map(|_| ()), Err(want), "{value}");
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        let cases = [
            ("", SdesError::MissingField),
            ("1 AES_CM_128_HMAC_SHA1_80", SdesError::MissingField),
            ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", SdesError::BadTag),
            (
                "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
                SdesError::BadTag,
            ),
            ("-1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", SdesError::BadTag),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline",
                SdesError::BadKeyParam("inline".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:",
                SdesError::BadKeyParam("inline:".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
                SdesError::BadKeyParam("inline:!!!!".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|x",
                SdesError::BadKeyParam("inline:AAAA|x".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:|2",
                SdesError::BadKeyParam("inline:AAAA|1:|2".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^20|2^20",
                SdesError::BadKeyParam("inline:AAAA|2^20|2^20".into()),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(CryptoAttribute::parse(value), Err(want), "{value:?}");
        }
    }

    #[test]
    fn our_line_round_trips() {
        let key = MasterKey::generate();
        let text = CryptoAttribute::ours(3, CryptoSuite::AesCm128HmacSha1_32, &key);
        let line = CryptoAttribute::parse(&text).expect("parses");
        assert_eq!(line.tag, 3);
        assert_eq!(line.usable(), Ok((CryptoSuite::AesCm128HmacSha1_32, key)));
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(MasterKey::generate(), MasterKey::generate());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_text_parses_or_fails_cleanly(text in any::<String>()) {
                if let Ok(line) = CryptoAttribute::parse(&text) {
                    let _ = line.usable();
                }
            }

            #[test]
            fn crypto_like_text_never_panics(
                text in "[0-9]{0,10} [A-Z_0-9]{0,26} (inline:[A-Za-z0-9+/=]{0,44}(\\|[0-9^:]{0,8}){0,3};?){0,3}( [A-Z_=0-9]{0,12}){0,2}"
            ) {
                if let Ok(line) = CryptoAttribute::parse(&text) {
                    let _ = line.usable();
                }
            }

            #[test]
            fn any_key_round_trips(bytes in proptest::array::uniform30(any::<u8>()), tag in 0u32..=MAX_TAG) {
                let key = MasterKey::from_bytes(bytes);
                for suite in CryptoSuite::ALL {
                    let line = CryptoAttribute::parse(&CryptoAttribute::ours(tag, suite, &key)).expect("parses");
                    prop_assert_eq!(line.tag, tag);
                    prop_assert_eq!(line.usable(), Ok((suite, key)));
                }
            }
        }
    }
}
