//! SRTP and SRTCP (RFC 3711) for one call leg, sans-IO: our outgoing RTP
//! is encrypted and authenticated with our key, the peer's RTP and RTCP are
//! authenticated, checked against replay and decrypted with the peer's.
//!
//! The transform itself is `webrtc-srtp`'s (AES-CM, HMAC-SHA1, key
//! derivation, the rollover counter and the replay window); this module
//! holds one call's two contexts, keeps our sending context for the whole
//! call (a key is never used twice from index 0), and guards what the crate
//! does not:
//! - SRTCP packets too short to hold an index and a tag are refused before
//!   the crate sees them (it would index out of bounds);
//! - SRTCP packets whose E bit says "not encrypted" are refused: we never
//!   negotiate `UNENCRYPTED_SRTCP`, and the crate would return such a packet
//!   without checking its tag.
//! - SRTP packets whose RFC 8285 header extension elements run past their
//!   block are refused before the crate parses them: its `rtp` header
//!   parser copies an element's declared length from the buffer without a
//!   bound and panics past the packet's end (found by the `media_session`
//!   fuzz target), which would end the media worker's thread.
//!
//! Keys come from SDES (`sip::sdes`); which key is ours and which the
//! peer's is decided by SDP negotiation ([`SrtpKeys`]).

use crate::sip::sdes::{CryptoSuite, MasterKey};
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Packets remembered for replay protection (RFC 3711 asks for at least
/// 64; libsrtp also uses 128).
const REPLAY_WINDOW: usize = 128;
/// The SRTCP authentication tag (80 bits for both suites, RFC 4568 §6.2).
const SRTCP_TAG_LEN: usize = 10;
/// RTCP header and sender SSRC, then the E flag and 31-bit SRTCP index.
const SRTCP_MIN_LEN: usize = 8 + 4 + SRTCP_TAG_LEN;
/// The largest SRTP tag: what an SRTP packet adds to an RTP one.
pub const MAX_TAG_LEN: usize = 10;

/// What SDP negotiation decided for a leg's SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: CryptoSuite,
    /// The key we encrypt with (the one in our `a=crypto`).
    pub local: MasterKey,
    /// The key the peer encrypts with (the one in its `a=crypto`).
    pub remote: MasterKey,
}

/// Why a packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A packet already received (same index within the window, or older).
    Replayed,
    /// The tag did not verify, or the packet is too short or malformed.
    Unauthenticated,
}

#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    #[error("cannot set up SRTP: {0}")]
    Setup(String),
    #[error("cannot protect an RTP packet: {0}")]
    Protect(String),
}

/// One leg's SRTP state.
pub struct SrtpSession {
    keys: SrtpKeys,
    /// Keyed with `keys.local`.
    send: Context,
    /// Keyed with `keys.remote`; RTP and RTCP have separate states inside.
    receive: Context,
}

impl SrtpSession {
    pub fn new(keys: SrtpKeys) -> Result<SrtpSession, SrtpError> {
        Ok(SrtpSession {
            keys,
            send: context(keys.suite, &keys.local)?,
            receive: context(keys.suite, &keys.remote)?,
        })
    }

    pub fn keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// Follows a renegotiation. Our sending context is kept while our key
    /// and suite stay (its rollover counter goes on); the receiving one is
    /// replaced when the peer's key or the suite changed.
    pub fn update(&mut self, keys: SrtpKeys) -> Result<(), SrtpError> {
        if keys.suite != self.keys.suite || keys.local != self.keys.local {
            self.send = context(keys.suite, &keys.local)?;
        }
        if keys.suite != self.keys.suite || keys.remote != self.keys.remote {
            self.receive = context(keys.suite, &keys.remote)?;
        }
        self.keys = keys;
        Ok(())
    }

    /// Protects the RTP packet in `buffer[..len]` in place and returns the
    /// SRTP packet's length (`len` plus the tag); `buffer` must have room
    /// for [`MAX_TAG_LEN`] more bytes.
    pub fn protect_rtp(&mut self, buffer: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let protected = self
            .send
            .encrypt_rtp(&buffer[..len])
            .map_err(|e| SrtpError::Protect(e.to_string()))?;
        let out = buffer
            .get_mut(..protected.len())
            .ok_or_else(|| SrtpError::Protect("buffer too small for the tag".into()))?;
        out.copy_from_slice(&protected);
        Ok(protected.len())
    }

    /// Authenticates and decrypts an SRTP packet; the plain RTP packet.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<bytes::Bytes, Refused> {
        if !extension_elements_fit(packet) {
            return Err(Refused::Unauthenticated);
        }
        self.receive.decrypt_rtp(packet).map_err(refusal)
    }

    /// Authenticates (and decrypts) an SRTCP packet; the plain RTCP packet.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<bytes::Bytes, Refused> {
        if packet.len() < SRTCP_MIN_LEN {
            return Err(Refused::Unauthenticated);
        }
        let e_flag = packet[packet.len() - SRTCP_TAG_LEN - 4] >> 7;
        if e_flag == 0 {
            return Err(Refused::Unauthenticated);
        }
        self.receive.decrypt_rtcp(packet).map_err(refusal)
    }
}

/// RFC 8285's header extension profiles: one-byte and two-byte elements.
const ONE_BYTE_PROFILE: u16 = 0xBEDE;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Whether every RFC 8285 element of `packet`'s header extension lies inside
/// the extension block. Packets too short for their header or block are
/// left to the crate, which refuses them without panicking.
fn extension_elements_fit(packet: &[u8]) -> bool {
    let Some(&first) = packet.first() else {
        return true;
    };
    let csrc_count = usize::from(first & 0x0f);
    let at = 12 + 4 * csrc_count;
    if first & 0x10 == 0 || packet.len() < at + 4 {
        return true;
    }
    let profile = u16::from_be_bytes([packet[at], packet[at + 1]]);
    let block = 4 * usize::from(u16::from_be_bytes([packet[at + 2], packet[at + 3]]));
    let (mut at, end) = (at + 4, at + 4 + block);
    if packet.len() < end {
        return true;
    }
    while at < end {
        let byte = packet[at];
        at += 1;
        if byte == 0 {
            continue;
        }
        let len = match profile {
            ONE_BYTE_PROFILE if byte >> 4 == 15 => return true,
            ONE_BYTE_PROFILE => usize::from(byte & 0x0f) + 1,
            TWO_BYTE_PROFILE => match packet.get(at).filter(|_| at < end) {
                Some(&len) => {
                    at += 1;
                    usize::from(len)
                }
                None => return false,
            },
            _ => return true,
        };
        at += len;
        if at > end {
            return false;
        }
    }
    true
}

fn context(suite: CryptoSuite, key: &MasterKey) -> Result<Context, SrtpError> {
    let profile = match suite {
        CryptoSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    };
    Context::new(
        key.key(),
        key.salt(),
        profile,
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
    )
    .map_err(|e| SrtpError::Setup(e.to_string()))
}

fn refusal(error: webrtc_srtp::Error) -> Refused {
    match error {
        webrtc_srtp::Error::SrtpSsrcDuplicated(..)
        | webrtc_srtp::Error::SrtcpSsrcDuplicated(..)
        | webrtc_srtp::Error::ErrDuplicated => Refused::Replayed,
        _ => Refused::Unauthenticated,
    }
}

#[cfg(test)]
#[path = "srtp_tests.rs"]
mod tests;
