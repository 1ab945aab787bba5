//! SDP offer/answer (RFC 4566 / RFC 3264) for G.711 audio plus
//! telephone-event (RFC 4733), in plain RTP (`RTP/AVP`) or SRTP with SDES
//! keys (`RTP/SAVP`, `RTP/SAVPF`; RFC 3711, RFC 4568).
//!
//! This module owns:
//! - parsing a remote session description into the few facts we need
//!   ([`parse`]), tolerating LF-only line endings, trailing whitespace and
//!   unknown line types;
//! - choosing the codec, the telephone-event payload type, the packet time,
//!   our media direction and, for SRTP, the crypto line and the two keys
//!   ([`answer`], [`accept_answer`]) as the [`SrtpMode`] allows;
//! - building the SDP text of our own offer or answer ([`offer`],
//!   [`answer`]).
//!
//! It is pure (sans-IO): it never opens sockets, resolves host names, reads
//! configuration or logs. Callers hand in text and policy and get back text
//! and a [`NegotiatedMedia`] for the media layer. No input may make it panic.

use super::sdes::{CryptoAttribute, CryptoSuite, MasterKey};
use crate::media::srtp::SrtpKeys;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The payload type and parameters of telephone-event we answer with.
const TELEPHONE_EVENT: &str = "telephone-event";
/// RTP clock rate of G.711 and of the telephone-event stream we accept.
const CLOCK_RATE: u32 = 8000;
/// Largest remote `a=ptime` we honour; larger values fall back to ours.
const MAX_PTIME_MS: u32 = 200;
/// Plain RTP.
const RTP_AVP: &str = "RTP/AVP";
/// SRTP (RFC 3711 §12).
const RTP_SAVP: &str = "RTP/SAVP";
/// SRTP with the RTCP feedback profile (RFC 5124). We answer it in kind:
/// AVPF only changes RTCP timing and adds feedback messages, and we send
/// no RTCP, so an AVPF peer sees a compliant (silent) RTCP side.
const RTP_SAVPF: &str = "RTP/SAVPF";
/// The crypto tag of the single `a=crypto` line in our offers.
const OFFER_CRYPTO_TAG: u32 = 1;

/// Whether calls use SRTP (config `media.srtp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpMode {
    /// Plain RTP only: an SRTP-only offer gets 488.
    Off,
    /// SRTP when the offer asks for it (an `RTP/SAVP` stream with a usable
    /// `a=crypto`), plain RTP otherwise; our own offers are plain.
    #[default]
    Optional,
    /// SRTP only: a plain offer gets 488; our own offers are `RTP/SAVP`.
    Required,
}

impl SrtpMode {
    /// The name in the config file.
    pub fn code(self) -> &'static str {
        match self {
            SrtpMode::Off => "off",
            SrtpMode::Optional => "optional",
            SrtpMode::Required => "required",
        }
    }
}

/// A G.711 codec we can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551): 0 for PCMU, 8 for PCMA.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The rtpmap encoding name, `"PCMU"` or `"PCMA"`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Looks up a codec by rtpmap encoding name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|codec| codec.name().eq_ignore_ascii_case(name))
    }

    /// Looks up a codec by its static payload type (0 or 8).
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|codec| codec.payload_type() == pt)
    }
}

/// A media stream direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv`, the default.
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction the other side must use: sendonly and recvonly swap,
    /// sendrecv and inactive stay.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// The attribute name, e.g. `"sendrecv"`.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses a direction attribute name (exact, as RFC 4566 attributes
    /// are case-sensitive).
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|direction| direction.attribute() == name)
    }

    /// The direction that can actually happen when the remote side has
    /// signalled it will not receive (RFC 2543 hold with `c=0.0.0.0`).
    fn without_receiving(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }
}

/// Our side's media policy, from config.
#[derive(Debug, Clone)]
pub struct MediaPolicy {
    /// Codecs in preference order; should be non-empty.
    pub codecs: Vec<Codec>,
    /// Payload type we offer for telephone-event (default 101).
    pub telephone_event_pt: u8,
    /// Packet time we offer, and use when the remote gives none (default 20).
    pub ptime_ms: u32,
    /// SRTP: off, when offered, or always.
    pub srtp: SrtpMode,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        MediaPolicy {
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event_pt: 101,
            ptime_ms: 20,
            srtp: SrtpMode::default(),
        }
    }
}

impl MediaPolicy {
    /// Checks the policy is usable: at least one codec, a dynamic
    /// telephone-event payload type (96..=127) and a ptime in 1..=200 ms.
    pub fn validate(&self) -> Result<(), SdpError> {
        if self.codecs.is_empty() {
            return Err(SdpError::InvalidPolicy("no codecs configured".into()));
        }
        if !(96..=127).contains(&self.telephone_event_pt) {
            return Err(SdpError::InvalidPolicy(format!(
                "telephone-event payload type {} is not dynamic (96..=127)",
                self.telephone_event_pt
            )));
        }
        if !valid_ptime(self.ptime_ms) {
            return Err(SdpError::InvalidPolicy(format!(
                "ptime {} ms is outside 1..={MAX_PTIME_MS}",
                self.ptime_ms
            )));
        }
        Ok(())
    }

    /// The policy codecs in order, without duplicates.
    fn unique_codecs(&self) -> Vec<Codec> {
        let mut unique = Vec::with_capacity(self.codecs.len());
        for &codec in &self.codecs {
            if !unique.contains(&codec) {
                unique.push(codec);
            }
        }
        unique
    }
}

/// Where our RTP lives, and the o= line identity.
#[derive(Debug, Clone, Copy)]
pub struct LocalMedia {
    /// Address put in our o= and c= lines.
    pub address: IpAddr,
    /// Our RTP port, put in the audio m= line.
    pub rtp_port: u16,
    /// The o= session id.
    pub session_id: u64,
    /// The o= session version; bump it for every new offer/answer.
    pub session_version: u64,
    /// The SRTP master key we send with, when the media is SRTP. One per
    /// leg for its whole life, so that renegotiations keep its stream.
    pub srtp_key: MasterKey,
}

/// A parsed remote session description (only what we need; unknown lines
/// are left out, never an error).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDescription {
    /// The unicast address of the o= line, when it is an IP literal.
    pub origin_address: Option<IpAddr>,
    /// The audio stream a plain-RTP answer would use: the first audio m=
    /// line with a nonzero port and the `RTP/AVP` profile, else the first
    /// with a nonzero port, else the first audio m= line at all.
    pub audio: Option<AudioMedia>,
    /// Every audio m= line, in order ([`answer`] picks among them by the
    /// SRTP mode).
    pub audio_streams: Vec<AudioMedia>,
    /// Media types of every other m= line, in order (e.g. `"video"`).
    pub has_other_media: Vec<String>,
    /// Every m= line in order, needed to answer each one (RFC 3264 §6).
    pub media_lines: Vec<MediaLine>,
}

/// One m= line as written by the remote side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// Media type, e.g. `"audio"` or `"video"`.
    pub media: String,
    /// Transport port (0 means the stream is rejected or disabled).
    pub port: u16,
    /// Transport protocol, e.g. `"RTP/AVP"`.
    pub protocol: String,
    /// Media formats as written (payload types for RTP profiles).
    pub formats: Vec<String>,
}

/// The remote audio stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioMedia {
    /// Media-level c= address, else the session-level one.
    pub connection: Option<IpAddr>,
    /// RTP port.
    pub port: u16,
    /// Transport protocol, e.g. `"RTP/AVP"`.
    pub protocol: String,
    /// Payload types of the m= line, in the remote's order (non-numeric
    /// formats are left out).
    pub formats: Vec<u8>,
    /// `a=rtpmap` entries: payload type, encoding name, clock rate.
    pub rtpmaps: Vec<(u8, String, u32)>,
    /// Media-level direction attribute, else session-level, else sendrecv.
    pub direction: Direction,
    /// Media-level `a=ptime`, else session-level, if given.
    pub ptime_ms: Option<u32>,
    /// Index of this stream's m= line in [`SessionDescription::media_lines`].
    pub mline_index: usize,
    /// The stream's well-formed `a=crypto` lines, in the remote's order of
    /// preference (malformed ones are left out).
    pub crypto: Vec<CryptoAttribute>,
}

impl AudioMedia {
    /// Whether the stream is SRTP (`RTP/SAVP` or `RTP/SAVPF`).
    pub fn is_secure(&self) -> bool {
        is_secure_profile(&self.protocol)
    }
}

/// The outcome of negotiation, what the media layer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP; `None` when the remote address is unspecified
    /// (`c=0.0.0.0` hold) or missing.
    pub remote_rtp: Option<SocketAddr>,
    /// The chosen codec.
    pub codec: Codec,
    /// The payload type of the chosen codec on the wire.
    pub payload_type: u8,
    /// The remote's payload type for telephone-event, if it has one.
    pub telephone_event_pt: Option<u8>,
    /// Packet time to send with.
    pub ptime_ms: u32,
    /// Our direction.
    pub direction: Direction,
    /// The SRTP suite and keys, when the stream is SRTP.
    pub srtp: Option<SrtpKeys>,
}

/// Why an SDP could not be parsed or negotiated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SdpError {
    /// A line is not `<letter>=<value>` or a structural line is unreadable.
    #[error("malformed SDP at line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// None of our codecs is in the remote's audio stream.
    #[error("no common codec: offered {offered}")]
    NoCommonCodec {
        /// The remote's formats, described for logs.
        offered: String,
    },
    /// There is no audio stream, or it was rejected with port 0.
    #[error("no usable audio stream in the session description")]
    NoAudio,
    /// The audio stream uses a transport we do not implement.
    #[error("unsupported audio transport protocol {0}")]
    UnsupportedProtocol(String),
    /// `media.srtp = "required"` and the offer has no SRTP audio stream.
    #[error("SRTP is required and the offer has only plain RTP audio")]
    SrtpRequired,
    /// `media.srtp = "off"` and the offer has only SRTP audio.
    #[error("SRTP is off and the offer has only SRTP audio")]
    SrtpOff,
    /// The SRTP stream has no `a=crypto` line we can use.
    #[error("no usable SRTP crypto line: {offered}")]
    NoUsableCrypto {
        /// Each offered line and why it was refused, for logs.
        offered: String,
    },
    /// The configured media policy cannot be used.
    #[error("invalid media policy: {0}")]
    InvalidPolicy(String),
}

/// Parses an SDP body as received in a SIP message (bytes that must be UTF-8).
pub fn parse_body(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed {
        line: 0,
        reason: "SDP is not UTF-8".into(),
    })?;
    parse(text)
}

/// Parses a remote session description.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut session = SessionLevel::default();
    let mut sections: Vec<Section> = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            continue;
        }
        let (kind, value) = split_line(line).ok_or_else(|| SdpError::Malformed {
            line: number,
            reason: "expected <letter>=<value>".into(),
        })?;
        let malformed = |reason: &str| SdpError::Malformed {
            line: number,
            reason: reason.into(),
        };
        match (kind, sections.last_mut()) {
            ('m', _) => sections.push(Section::parse(value).map_err(malformed)?),
            ('o', None) => session.origin = parse_origin(value),
            ('c', None) => session.connection = Some(parse_connection(value).map_err(malformed)?),
            ('c', Some(section)) => {
                section.connection = Some(parse_connection(value).map_err(malformed)?);
            }
            ('a', None) => session.attribute(value),
            ('a', Some(section)) => section.attribute(value),
            _ => {}
        }
    }
    Ok(session.into_description(sections))
}

/// Answers a remote offer.
///
/// Picks the audio stream by `policy.srtp` (SRTP streams before plain ones
/// when optional, only one kind when off or required), then the first codec
/// in our preference order that the stream contains (by static payload type
/// or by rtpmap name on a dynamic one, answering with the offerer's payload
/// type), echoes telephone-event with the offerer's payload type when
/// offered, reverses the offerer's direction, and uses the offerer's ptime if
/// given, else ours. An SRTP stream is answered with the first of its
/// `a=crypto` lines we can use: same tag and suite, our own key
/// (`local.srtp_key`). Every other m= line is answered with port 0 in the
/// same position (RFC 3264 §6). Returns the SDP text (CRLF line endings) and
/// the negotiated media.
pub fn answer(
    offer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
) -> Result<(String, NegotiatedMedia), SdpError> {
    let mut first_error = None;
    for audio in candidate_streams(offer, policy.srtp)? {
        match answer_stream(offer, audio, policy, local) {
            Ok(answered) => return Ok(answered),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(SdpError::NoAudio))
}

/// The offer's enabled audio streams we may answer, best first.
fn candidate_streams(
    offer: &SessionDescription,
    mode: SrtpMode,
) -> Result<Vec<&AudioMedia>, SdpError> {
    let enabled: Vec<&AudioMedia> = offer
        .audio_streams
        .iter()
        .filter(|audio| audio.port != 0)
        .collect();
    let first = enabled.first().ok_or(SdpError::NoAudio)?;
    let plain = enabled
        .iter()
        .copied()
        .filter(|audio| audio.protocol.eq_ignore_ascii_case(RTP_AVP));
    let secure = enabled.iter().copied().filter(|audio| audio.is_secure());
    let candidates: Vec<&AudioMedia> = match mode {
        SrtpMode::Off => plain.collect(),
        SrtpMode::Optional => secure.chain(plain).collect(),
        SrtpMode::Required => secure.collect(),
    };
    if !candidates.is_empty() {
        return Ok(candidates);
    }
    let has = |secure: bool| {
        enabled.iter().any(|audio| {
            if secure {
                audio.is_secure()
            } else {
                audio.protocol.eq_ignore_ascii_case(RTP_AVP)
            }
        })
    };
    Err(match mode {
        SrtpMode::Required if has(false) => SdpError::SrtpRequired,
        SrtpMode::Off if has(true) => SdpError::SrtpOff,
        _ => SdpError::UnsupportedProtocol(first.protocol.clone()),
    })
}

/// Answers the offer with `audio` as its audio stream.
fn answer_stream(
    offer: &SessionDescription,
    audio: &AudioMedia,
    policy: &MediaPolicy,
    local: &LocalMedia,
) -> Result<(String, NegotiatedMedia), SdpError> {
    let (codec, payload_type) = policy
        .unique_codecs()
        .into_iter()
        .find_map(|codec| find_codec_pt(audio, codec).map(|pt| (codec, pt)))
        .ok_or_else(|| no_common_codec(audio))?;
    let crypto = if audio.is_secure() {
        Some(choose_crypto(audio)?)
    } else {
        None
    };
    let mut negotiated = negotiate(audio, codec, payload_type, policy);
    negotiated.srtp = crypto.map(|(_, suite, remote)| SrtpKeys {
        suite,
        local: local.srtp_key,
        remote,
    });

    let mut sdp = SdpWriter::new(local);
    for (index, mline) in offer.media_lines.iter().enumerate() {
        if index == audio.mline_index {
            let mut formats = vec![(payload_type, codec.name())];
            if let Some(te) = negotiated.telephone_event_pt {
                formats.push((te, TELEPHONE_EVENT));
            }
            sdp.audio(
                &audio.protocol,
                local.rtp_port,
                &formats,
                negotiated.telephone_event_pt,
                crypto.map(|(tag, suite, _)| CryptoAttribute::ours(tag, suite, &local.srtp_key)),
                negotiated.ptime_ms,
                negotiated.direction,
            );
        } else {
            sdp.rejected(mline);
        }
    }
    Ok((sdp.finish(), negotiated))
}

/// The first crypto line of the stream we can run: its tag, suite and the
/// remote's key.
fn choose_crypto(audio: &AudioMedia) -> Result<(u32, CryptoSuite, MasterKey), SdpError> {
    let mut refused = Vec::new();
    for line in &audio.crypto {
        match line.usable() {
            Ok((suite, key)) => return Ok((line.tag, suite, key)),
            Err(why) => refused.push(format!("tag {}: {why}", line.tag)),
        }
    }
    Err(SdpError::NoUsableCrypto {
        offered: if refused.is_empty() {
            "no a=crypto line".into()
        } else {
            refused.join("; ")
        },
    })
}

/// Builds our offer: all policy codecs in order plus telephone-event
/// (always offered, with `policy.telephone_event_pt`), `a=ptime` and the
/// given direction; `RTP/SAVP` with one `a=crypto` line
/// (AES_CM_128_HMAC_SHA1_80, our key) when SRTP is required, else `RTP/AVP`.
pub fn offer(policy: &MediaPolicy, local: &LocalMedia, direction: Direction) -> String {
    let mut formats: Vec<(u8, &str)> = policy
        .unique_codecs()
        .into_iter()
        .map(|codec| (codec.payload_type(), codec.name()))
        .collect();
    formats.push((policy.telephone_event_pt, TELEPHONE_EVENT));
    let secure = policy.srtp == SrtpMode::Required;
    let mut sdp = SdpWriter::new(local);
    sdp.audio(
        if secure { RTP_SAVP } else { RTP_AVP },
        local.rtp_port,
        &formats,
        Some(policy.telephone_event_pt),
        secure.then(|| {
            CryptoAttribute::ours(
                OFFER_CRYPTO_TAG,
                CryptoSuite::AesCm128HmacSha1_80,
                &local.srtp_key,
            )
        }),
        policy.ptime_ms,
        direction,
    );
    sdp.finish()
}

/// Applies the remote answer to an offer we made from `policy` and `local`.
///
/// The codec is the first one in the answer's m= format list that we
/// offered; it is an error if there is none. An offer of ours with SRTP
/// needs an SRTP answer with a usable `a=crypto` line carrying our tag and
/// suite; a plain offer needs a plain answer.
pub fn accept_answer(
    answer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
) -> Result<NegotiatedMedia, SdpError> {
    let offered_secure = policy.srtp == SrtpMode::Required;
    let audio = answer
        .audio_streams
        .iter()
        .find(|audio| {
            audio.port != 0
                && if offered_secure {
                    audio.protocol.eq_ignore_ascii_case(RTP_SAVP)
                } else {
                    audio.protocol.eq_ignore_ascii_case(RTP_AVP)
                }
        })
        .ok_or_else(|| match usable_audio(answer) {
            Ok(audio) if audio.is_secure() => SdpError::SrtpOff,
            Ok(_) if offered_secure => SdpError::SrtpRequired,
            Ok(audio) => SdpError::UnsupportedProtocol(audio.protocol.clone()),
            Err(e) => e,
        })?;
    let offered = policy.unique_codecs();
    let (codec, payload_type) = audio
        .formats
        .iter()
        .find_map(|&pt| {
            codec_for_pt(audio, pt)
                .filter(|codec| offered.contains(codec))
                .map(|codec| (codec, pt))
        })
        .ok_or_else(|| no_common_codec(audio))?;
    let mut negotiated = negotiate(audio, codec, payload_type, policy);
    if offered_secure {
        let (tag, suite, remote) = choose_crypto(audio)?;
        if tag != OFFER_CRYPTO_TAG || suite != CryptoSuite::AesCm128HmacSha1_80 {
            return Err(SdpError::NoUsableCrypto {
                offered: format!("tag {tag} {suite} was not in our offer"),
            });
        }
        negotiated.srtp = Some(SrtpKeys {
            suite,
            local: local.srtp_key,
            remote,
        });
    }
    Ok(negotiated)
}

/// Session-level state collected before the first m= line.
#[derive(Debug, Default)]
struct SessionLevel {
    origin: Option<IpAddr>,
    connection: Option<IpAddr>,
    direction: Option<Direction>,
    ptime_ms: Option<u32>,
}

impl SessionLevel {
    fn attribute(&mut self, value: &str) {
        match Attribute::parse(value) {
            Attribute::Direction(direction) => self.direction = Some(direction),
            Attribute::Ptime(ptime) => self.ptime_ms = Some(ptime),
            Attribute::Rtpmap(..) | Attribute::Crypto(_) | Attribute::Other => {}
        }
    }

    fn into_description(self, sections: Vec<Section>) -> SessionDescription {
        let audio_index = select_audio(&sections);
        let audio = audio_index
            .and_then(|index| sections.get(index).map(|section| (index, section)))
            .map(|(index, section)| self.audio_media(index, section));
        let has_other_media = sections
            .iter()
            .enumerate()
            .filter(|(index, _)| Some(*index) != audio_index)
            .map(|(_, section)| section.line.media.clone())
            .collect();
        let audio_streams = sections
            .iter()
            .enumerate()
            .filter(|(_, section)| section.is_audio())
            .map(|(index, section)| self.audio_media(index, section))
            .collect();
        SessionDescription {
            origin_address: self.origin,
            audio,
            audio_streams,
            has_other_media,
            media_lines: sections.into_iter().map(|section| section.line).collect(),
        }
    }

    fn audio_media(&self, index: usize, section: &Section) -> AudioMedia {
        AudioMedia {
            connection: section.connection.or(self.connection),
            port: section.line.port,
            protocol: section.line.protocol.clone(),
            formats: section
                .line
                .formats
                .iter()
                .filter_map(|format| parse_payload_type(format))
                .collect(),
            rtpmaps: section.rtpmaps.clone(),
            direction: section
                .direction
                .or(self.direction)
                .unwrap_or(Direction::SendRecv),
            ptime_ms: section.ptime_ms.or(self.ptime_ms),
            mline_index: index,
            crypto: section.crypto.clone(),
        }
    }
}

/// One m= line and the media-level lines after it.
#[derive(Debug)]
struct Section {
    line: MediaLine,
    connection: Option<IpAddr>,
    direction: Option<Direction>,
    rtpmaps: Vec<(u8, String, u32)>,
    ptime_ms: Option<u32>,
    crypto: Vec<CryptoAttribute>,
}

impl Section {
    /// Parses the value of `m=<media> <port>[/<count>] <proto> <fmt>...`.
    fn parse(value: &str) -> Result<Section, &'static str> {
        let mut fields = value.split_whitespace();
        let (Some(media), Some(port), Some(protocol)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err("m= line needs media, port and protocol");
        };
        let port = port
            .split('/')
            .next()
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or("m= line port is not a number in 0..=65535")?;
        Ok(Section {
            line: MediaLine {
                media: media.to_owned(),
                port,
                protocol: protocol.to_owned(),
                formats: fields.map(str::to_owned).collect(),
            },
            connection: None,
            direction: None,
            rtpmaps: Vec::new(),
            ptime_ms: None,
            crypto: Vec::new(),
        })
    }

    fn attribute(&mut self, value: &str) {
        match Attribute::parse(value) {
            Attribute::Direction(direction) => self.direction = Some(direction),
            Attribute::Ptime(ptime) => self.ptime_ms = Some(ptime),
            Attribute::Rtpmap(pt, name, clock) => self.rtpmaps.push((pt, name, clock)),
            Attribute::Crypto(line) => self.crypto.push(line),
            Attribute::Other => {}
        }
    }

    fn is_audio(&self) -> bool {
        self.line.media.eq_ignore_ascii_case("audio")
    }

    fn is_rtp_avp(&self) -> bool {
        self.line.protocol.eq_ignore_ascii_case(RTP_AVP)
    }
}

/// The attributes we understand; anything unreadable is `Other`.
enum Attribute {
    Direction(Direction),
    Ptime(u32),
    Rtpmap(u8, String, u32),
    Crypto(CryptoAttribute),
    Other,
}

impl Attribute {
    fn parse(value: &str) -> Attribute {
        if let Some(direction) = Direction::from_attribute(value.trim()) {
            return Attribute::Direction(direction);
        }
        let Some((name, argument)) = value.split_once(':') else {
            return Attribute::Other;
        };
        let parsed = match name {
            "ptime" => argument
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|&ptime| ptime > 0)
                .map(Attribute::Ptime),
            "rtpmap" => parse_rtpmap(argument),
            "crypto" => CryptoAttribute::parse(argument).ok().map(Attribute::Crypto),
            _ => None,
        };
        parsed.unwrap_or(Attribute::Other)
    }
}

/// Parses `<pt> <name>/<clock>[/<channels>]`.
fn parse_rtpmap(argument: &str) -> Option<Attribute> {
    let (pt, encoding) = argument.trim().split_once(char::is_whitespace)?;
    let pt = parse_payload_type(pt)?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next().filter(|name| !name.is_empty())?;
    let clock = parts.next()?.parse::<u32>().ok()?;
    Some(Attribute::Rtpmap(pt, name.to_owned(), clock))
}

/// An RTP payload type is 0..=127.
fn parse_payload_type(text: &str) -> Option<u8> {
    text.parse::<u8>().ok().filter(|&pt| pt <= 127)
}

/// Splits `<letter>=<value>`.
fn split_line(line: &str) -> Option<(char, &str)> {
    let mut chars = line.chars();
    let kind = chars.next().filter(char::is_ascii_alphabetic)?;
    let value = chars.as_str().strip_prefix('=')?;
    Some((kind, value))
}

/// The unicast address of `o=<user> <id> <version> IN <IP4|IP6> <address>`,
/// when it is an IP literal.
fn parse_origin(value: &str) -> Option<IpAddr> {
    value.split_whitespace().nth(5)?.parse().ok()
}

/// Parses `IN <IP4|IP6> <address>[/<ttl>[/<count>]]`.
fn parse_connection(value: &str) -> Result<IpAddr, &'static str> {
    let mut fields = value.split_whitespace();
    let (Some(network), Some(address_type), Some(address)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err("c= line needs network type, address type and address");
    };
    if network != "IN" {
        return Err("c= network type is not IN");
    }
    let address = address.split('/').next().unwrap_or(address);
    let address: IpAddr = address
        .parse()
        .map_err(|_| "c= address is not an IP literal")?;
    match (address_type, address) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(address),
        _ => Err("c= address does not match its address type"),
    }
}

/// Index of the audio section to negotiate (see [`SessionDescription::audio`]).
fn select_audio(sections: &[Section]) -> Option<usize> {
    let audio = || {
        sections
            .iter()
            .enumerate()
            .filter(|(_, section)| section.is_audio())
    };
    audio()
        .find(|(_, section)| section.line.port != 0 && section.is_rtp_avp())
        .or_else(|| audio().find(|(_, section)| section.line.port != 0))
        .or_else(|| audio().next())
        .map(|(index, _)| index)
}

/// The default audio stream if it is present and enabled.
fn usable_audio(description: &SessionDescription) -> Result<&AudioMedia, SdpError> {
    description
        .audio
        .as_ref()
        .filter(|audio| audio.port != 0)
        .ok_or(SdpError::NoAudio)
}

fn is_secure_profile(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case(RTP_SAVP) || protocol.eq_ignore_ascii_case(RTP_SAVPF)
}

/// The rtpmap entry for a payload type, if any.
fn rtpmap(audio: &AudioMedia, pt: u8) -> Option<(&str, u32)> {
    audio
        .rtpmaps
        .iter()
        .find(|(map_pt, _, _)| *map_pt == pt)
        .map(|(_, name, clock)| (name.as_str(), *clock))
}

/// Which of our codecs a payload type of the stream carries: by rtpmap when
/// there is one, else by static assignment.
fn codec_for_pt(audio: &AudioMedia, pt: u8) -> Option<Codec> {
    match rtpmap(audio, pt) {
        Some((name, clock)) => Codec::from_name(name).filter(|_| clock == CLOCK_RATE),
        None => Codec::from_payload_type(pt),
    }
}

/// The first payload type in the stream carrying `codec`.
fn find_codec_pt(audio: &AudioMedia, codec: Codec) -> Option<u8> {
    audio
        .formats
        .iter()
        .copied()
        .find(|&pt| codec_for_pt(audio, pt) == Some(codec))
}

/// The stream's payload type for telephone-event/8000, if any.
fn telephone_event_pt(audio: &AudioMedia) -> Option<u8> {
    audio.formats.iter().copied().find(|&pt| {
        rtpmap(audio, pt).is_some_and(|(name, clock)| {
            name.eq_ignore_ascii_case(TELEPHONE_EVENT) && clock == CLOCK_RATE
        })
    })
}

/// Everything but the codec choice, which differs between offer and answer.
fn negotiate(
    audio: &AudioMedia,
    codec: Codec,
    payload_type: u8,
    policy: &MediaPolicy,
) -> NegotiatedMedia {
    let remote_rtp = audio
        .connection
        .filter(|address| !address.is_unspecified())
        .map(|address| SocketAddr::new(address, audio.port));
    let remote_direction = match audio.connection {
        Some(address) if address.is_unspecified() => audio.direction.without_receiving(),
        _ => audio.direction,
    };
    NegotiatedMedia {
        remote_rtp,
        codec,
        payload_type,
        telephone_event_pt: telephone_event_pt(audio),
        ptime_ms: audio
            .ptime_ms
            .filter(|&ptime| valid_ptime(ptime))
            .unwrap_or(policy.ptime_ms),
        direction: remote_direction.reverse(),
        srtp: None,
    }
}

fn valid_ptime(ptime: u32) -> bool {
    (1..=MAX_PTIME_MS).contains(&ptime)
}

fn no_common_codec(audio: &AudioMedia) -> SdpError {
    let offered = audio
        .formats
        .iter()
        .map(|&pt| describe_format(audio, pt))
        .collect::<Vec<_>>()
        .join(", ");
    SdpError::NoCommonCodec {
        offered: if offered.is_empty() {
            "nothing".into()
        } else {
            offered
        },
    }
}

/// E.g. `18 (G729/8000)`, or just `18` for an unknown unmapped type.
fn describe_format(audio: &AudioMedia, pt: u8) -> String {
    match rtpmap(audio, pt) {
        Some((name, clock)) => format!("{pt} ({name}/{clock})"),
        None => match static_payload_name(pt) {
            Some(name) => format!("{pt} ({name}/{CLOCK_RATE})"),
            None => pt.to_string(),
        },
    }
}

/// Names of the common 8 kHz static payload types (RFC 3551).
fn static_payload_name(pt: u8) -> Option<&'static str> {
    match pt {
        0 => Some("PCMU"),
        3 => Some("GSM"),
        4 => Some("G723"),
        8 => Some("PCMA"),
        9 => Some("G722"),
        18 => Some("G729"),
        _ => None,
    }
}

/// Builds SDP text with CRLF line endings.
struct SdpWriter {
    text: String,
}

impl SdpWriter {
    /// Writes the session-level lines v=, o=, s=, c= and t=.
    fn new(local: &LocalMedia) -> SdpWriter {
        let mut writer = SdpWriter {
            text: String::with_capacity(256),
        };
        let address = AddressLine(local.address);
        writer.line(format_args!("v=0"));
        writer.line(format_args!(
            "o=hotline {} {} {address}",
            local.session_id, local.session_version
        ));
        writer.line(format_args!("s=hotline"));
        writer.line(format_args!("c={address}"));
        writer.line(format_args!("t=0 0"));
        writer
    }

    /// Writes an active audio m= line with its attributes.
    #[allow(clippy::too_many_arguments)]
    fn audio(
        &mut self,
        protocol: &str,
        port: u16,
        formats: &[(u8, &str)],
        telephone_event_pt: Option<u8>,
        crypto: Option<String>,
        ptime_ms: u32,
        direction: Direction,
    ) {
        let pts: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
        self.line(format_args!("m=audio {port} {protocol} {}", pts.join(" ")));
        for (pt, name) in formats {
            self.line(format_args!("a=rtpmap:{pt} {name}/{CLOCK_RATE}"));
        }
        if let Some(te) = telephone_event_pt {
            self.line(format_args!("a=fmtp:{te} 0-16"));
        }
        if let Some(crypto) = crypto {
            self.line(format_args!("a=crypto:{crypto}"));
        }
        self.line(format_args!("a=ptime:{ptime_ms}"));
        self.line(format_args!("a={}", direction.attribute()));
    }

    /// Writes a rejected m= line: port 0, the offer's protocol and first format.
    fn rejected(&mut self, mline: &MediaLine) {
        let format = mline.formats.first().map_or("0", String::as_str);
        self.line(format_args!(
            "m={} 0 {} {format}",
            mline.media, mline.protocol
        ));
    }

    fn line(&mut self, args: fmt::Arguments<'_>) {
        use fmt::Write as _;
        // Writing into a String cannot fail.
        let _ = self.text.write_fmt(args);
        self.text.push_str("\r\n");
    }

    fn finish(self) -> String {
        self.text
    }
}

/// Formats `IN IP4 <address>` or `IN IP6 <address>`.
struct AddressLine(IpAddr);

impl fmt::Display for AddressLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(address) => write!(f, "IN IP4 {address}"),
            IpAddr::V6(address) => write!(f, "IN IP6 {address}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn local() -> LocalMedia {
        LocalMedia {
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            rtp_port: 40000,
            session_id: 1234,
            session_version: 5,
            srtp_key: MasterKey::from_bytes([7; 30]),
        }
    }

    fn policy(codecs: &[Codec]) -> MediaPolicy {
        MediaPolicy {
            codecs: codecs.to_vec(),
            ..MediaPolicy::default()
        }
    }

    /// An offer from 198.51.100.7:5004 with the given m= formats and extra
    /// media-level lines.
    fn offer_sdp(formats: &str, media_lines: &[&str]) -> String {
        let mut text = String::from(
            "v=0\r\no=alice 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n",
        );
        text.push_str(&format!("m=audio 5004 RTP/AVP {formats}\r\n"));
        for line in media_lines {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text
    }

    fn answer_text(offer_text: &str, codecs: &[Codec]) -> (String, NegotiatedMedia) {
        let offer = parse(offer_text).expect("offer parses");
        answer(&offer, &policy(codecs), &local()).expect("offer is answerable")
    }

    fn remote() -> Option<SocketAddr> {
        Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            5004,
        ))
    }

    const ANSWER_HEAD: &str = "v=0\r\no=hotline 1234 5 IN IP4 192.0.2.10\r\ns=hotline\r\n\
                               c=IN IP4 192.0.2.10\r\nt=0 0\r\n";

    #[test]
    fn codec_helpers() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_name("pcma"), Some(Codec::Pcma));
        assert_eq!(Codec::from_name("PcMu"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_name("G729"), None);
        assert_eq!(Direction::SendOnly.reverse(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reverse(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.reverse(), Direction::Inactive);
        assert_eq!(Direction::SendRecv.attribute(), "sendrecv");
        assert!(MediaPolicy::default().validate().is_ok());
        assert!(policy(&[]).validate().is_err());
    }

    #[test]
    fn answers_pcmu_only_offer() {
        let (text, media) = answer_text(&offer_sdp("0", &[]), &[Codec::Pcma, Codec::Pcmu]);
        let expected = format!(
            "{ANSWER_HEAD}m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
             a=ptime:20\r\na=sendrecv\r\n"
        );
        assert_eq!(text, expected);
        assert_eq!(
            media,
            NegotiatedMedia {
                remote_rtp: remote(),
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event_pt: None,
                ptime_ms: 20,
                direction: Direction::SendRecv,
                srtp: None,
            }
        );
    }

    #[test]
    fn answers_pcma_only_offer() {
        let (text, media) = answer_text(&offer_sdp("8", &[]), &[Codec::Pcmu, Codec::Pcma]);
        assert!(text.contains("m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"));
        assert_eq!((media.codec, media.payload_type), (Codec::Pcma, 8));
    }

    #[test]
    fn our_preference_wins_both_ways() {
        let both = offer_sdp("8 0", &[]);
        let (_, media) = answer_text(&both, &[Codec::Pcmu, Codec::Pcma]);
        assert_eq!(media.codec, Codec::Pcmu);
        let (text, media) = answer_text(&both, &[Codec::Pcma, Codec::Pcmu]);
        assert_eq!(media.codec, Codec::Pcma);
        assert!(text.contains("m=audio 40000 RTP/AVP 8\r\n"));
        assert!(!text.contains("PCMU"));
    }

    #[test]
    fn dynamic_payload_type_matched_by_rtpmap_name() {
        let text = offer_sdp("97 18", &["a=rtpmap:97 pcma/8000", "a=rtpmap:18 G729/8000"]);
        let (answer, media) = answer_text(&text, &[Codec::Pcmu, Codec::Pcma]);
        assert_eq!((media.codec, media.payload_type), (Codec::Pcma, 97));
        assert!(answer.contains("m=audio 40000 RTP/AVP 97\r\na=rtpmap:97 PCMA/8000\r\n"));
    }

    #[test]
    fn rtpmap_with_wrong_clock_does_not_match() {
        let text = offer_sdp("96", &["a=rtpmap:96 PCMU/16000"]);
        let offer = parse(&text).expect("parses");
        let result = answer(&offer, &MediaPolicy::default(), &local());
        assert!(matches!(result, Err(SdpError::NoCommonCodec { .. })));
    }

    #[test]
    fn no_common_codec_lists_offer() {
        let offer = parse(&offer_sdp("18 96", &["a=rtpmap:96 opus/48000/2"])).expect("parses");
        let error = answer(&offer, &MediaPolicy::default(), &local()).unwrap_err();
        assert_eq!(
            error,
            SdpError::NoCommonCodec {
                offered: "18 (G729/8000), 96 (opus/48000)".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "no common codec: offered 18 (G729/8000), 96 (opus/48000)"
        );
    }

    #[test]
    fn telephone_event_payload_type_echoed() {
        let text = offer_sdp(
            "0 96",
            &[
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:96 telephone-event/8000",
                "a=fmtp:96 0-15",
            ],
        );
        let (answer, media) = answer_text(&text, &[Codec::Pcmu]);
        let expected = format!(
            "{ANSWER_HEAD}m=audio 40000 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        assert_eq!(answer, expected);
        assert_eq!(media.telephone_event_pt, Some(96));
    }

    #[test]
    fn no_telephone_event_when_not_offered() {
        let (answer, media) = answer_text(&offer_sdp("0 8", &[]), &[Codec::Pcmu]);
        assert_eq!(media.telephone_event_pt, None);
        assert!(!answer.contains("telephone-event"));
        assert!(!answer.contains("fmtp"));
    }

    #[test]
    fn telephone_event_must_be_in_format_list() {
        let text = offer_sdp("0", &["a=rtpmap:101 telephone-event/8000"]);
        let (_, media) = answer_text(&text, &[Codec::Pcmu]);
        assert_eq!(media.telephone_event_pt, None);
    }

    #[test]
    fn sendonly_answered_recvonly() {
        let (answer, media) = answer_text(&offer_sdp("0", &["a=sendonly"]), &[Codec::Pcmu]);
        assert_eq!(media.direction, Direction::RecvOnly);
        assert!(answer.ends_with("a=recvonly\r\n"));
        assert_eq!(media.remote_rtp, remote());
    }

    #[test]
    fn session_level_direction_applies_unless_overridden() {
        let text = offer_sdp("0", &[]).replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n");
        let (_, media) = answer_text(&text, &[Codec::Pcmu]);
        assert_eq!(media.direction, Direction::SendOnly);
        let text = text.replace("RTP/AVP 0\r\n", "RTP/AVP 0\r\na=sendrecv\r\n");
        let (_, media) = answer_text(&text, &[Codec::Pcmu]);
        assert_eq!(media.direction, Direction::SendRecv);
    }

    #[test]
    fn inactive_answered_inactive() {
        let (answer, media) = answer_text(&offer_sdp("0", &["a=inactive"]), &[Codec::Pcmu]);
        assert_eq!(media.direction, Direction::Inactive);
        assert!(answer.ends_with("a=inactive\r\n"));
    }

    #[test]
    fn rfc2543_hold_has_no_remote_address() {
        let text = offer_sdp("0", &[]).replace("c=IN IP4 198.51.100.7", "c=IN IP4 0.0.0.0");
        let (answer, media) = answer_text(&text, &[Codec::Pcmu]);
        assert_eq!(media.remote_rtp, None);
        // The holder will not receive, so we only receive.
        assert_eq!(media.direction, Direction::RecvOnly);
        assert!(answer.ends_with("a=recvonly\r\n"));

        let text = offer_sdp("0", &["c=IN IP4 0.0.0.0", "a=sendonly"]);
        let (_, media) = answer_text(&text, &[Codec::Pcmu]);
        assert_eq!(media.remote_rtp, None);
        assert_eq!(media.direction, Direction::RecvOnly);
    }

    #[test]
    fn media_level_connection_overrides_session_level() {
        let text = offer_sdp("0", &["c=IN IP4 203.0.113.9"]);
        let (_, media) = answer_text(&text, &[Codec::Pcmu]);
        let expected = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 5004);
        assert_eq!(media.remote_rtp, Some(expected));

        let session_only = offer_sdp("0", &[]);
        assert_eq!(
            answer_text(&session_only, &[Codec::Pcmu]).1.remote_rtp,
            remote()
        );
    }

    #[test]
    fn ipv6_offer_and_ipv6_local() {
        let text = "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nt=0 0\n\
                    m=audio 6000 RTP/AVP 8\nc=IN IP6 2001:db8::2\n";
        let offer = parse(text).expect("parses");
        assert_eq!(offer.origin_address, "2001:db8::1".parse().ok());
        let local = LocalMedia {
            address: IpAddr::V6(Ipv6Addr::LOCALHOST),
            ..local()
        };
        let (answer, media) = answer(&offer, &MediaPolicy::default(), &local).expect("answers");
        let address: IpAddr = "2001:db8::2".parse().expect("literal");
        assert_eq!(media.remote_rtp, Some(SocketAddr::new(address, 6000)));
        assert!(answer
            .starts_with("v=0\r\no=hotline 1234 5 IN IP6 ::1\r\ns=hotline\r\nc=IN IP6 ::1\r\n"));
    }

    #[test]
    fn ptime_honoured_or_defaulted() {
        let (answer, media) = answer_text(&offer_sdp("0", &["a=ptime:30"]), &[Codec::Pcmu]);
        assert_eq!(media.ptime_ms, 30);
        assert!(answer.contains("a=ptime:30\r\n"));
        let (_, media) = answer_text(&offer_sdp("0", &["a=ptime:100000"]), &[Codec::Pcmu]);
        assert_eq!(media.ptime_ms, 20);
    }

    #[test]
    fn video_rejected_with_port_zero_in_order() {
        let text = offer_sdp(
            "0",
            &["m=video 5006 RTP/AVP 99 34", "a=rtpmap:99 H264/90000"],
        );
        let (reply, media) = answer_text(&text, &[Codec::Pcmu]);
        assert!(reply.ends_with("a=sendrecv\r\nm=video 0 RTP/AVP 99\r\n"));
        assert_eq!(media.codec, Codec::Pcmu);

        let video_first = text.replace("m=audio 5004 RTP/AVP 0\r\n", "").replace(
            "a=rtpmap:99 H264/90000\r\n",
            "a=rtpmap:99 H264/90000\r\nm=audio 5004 RTP/AVP 0\r\n",
        );
        let offer = parse(&video_first).expect("parses");
        assert_eq!(offer.has_other_media, vec!["video".to_string()]);
        let (answer, _) = answer(&offer, &MediaPolicy::default(), &local()).expect("answers");
        assert!(answer.contains("t=0 0\r\nm=video 0 RTP/AVP 99\r\nm=audio 40000 RTP/AVP 0"));
    }

    #[test]
    fn extra_audio_streams_rejected() {
        let text = "v=0\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
                    m=audio 0 RTP/AVP 0\r\nm=audio 5004 RTP/AVP 8\r\nm=audio 5008 RTP/AVP 0\r\n";
        let (answer, media) = answer_text(text, &[Codec::Pcmu, Codec::Pcma]);
        assert_eq!(media.codec, Codec::Pcma);
        assert!(answer.contains("t=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 40000 RTP/AVP 8\r\n"));
        assert!(answer.ends_with("a=sendrecv\r\nm=audio 0 RTP/AVP 0\r\n"));
    }

    #[test]
    fn plain_rtp_preferred_over_earlier_srtp_stream() {
        let text = "v=0\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
                    m=audio 5004 RTP/SAVP 0\r\nm=audio 5004 RTP/AVP 0\r\n";
        let (answer, _) = answer_text(text, &[Codec::Pcmu]);
        assert!(answer.contains("t=0 0\r\nm=audio 0 RTP/SAVP 0\r\nm=audio 40000 RTP/AVP 0\r\n"));
    }

    #[test]
    fn unsupported_protocol_and_missing_audio() {
        let offer =
            parse(&offer_sdp("0", &[]).replace("RTP/AVP", "UDP/TLS/RTP/SAVPF")).expect("parses");
        assert_eq!(
            answer(&offer, &MediaPolicy::default(), &local()).unwrap_err(),
            SdpError::UnsupportedProtocol("UDP/TLS/RTP/SAVPF".into())
        );
        let offer = parse(&offer_sdp("0", &[]).replace("RTP/AVP", "RTP/SAVP")).expect("parses");
        assert_eq!(
            answer(&offer, &MediaPolicy::default(), &local()).unwrap_err(),
            SdpError::NoUsableCrypto {
                offered: "no a=crypto line".into()
            }
        );
        let rejected = parse(&offer_sdp("0", &[]).replace("5004", "0")).expect("parses");
        assert_eq!(
            answer(&rejected, &MediaPolicy::default(), &local()).unwrap_err(),
            SdpError::NoAudio
        );
        let none = parse("v=0\r\nt=0 0\r\nm=video 5000 RTP/AVP 99\r\n").expect("parses");
        assert_eq!(
            answer(&none, &MediaPolicy::default(), &local()).unwrap_err(),
            SdpError::NoAudio
        );
    }

    #[test]
    fn offer_contents_exact() {
        let text = offer(&MediaPolicy::default(), &local(), Direction::SendRecv);
        let expected = format!(
            "{ANSWER_HEAD}m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
             a=ptime:20\r\na=sendrecv\r\n"
        );
        assert_eq!(text, expected);

        let hold = MediaPolicy {
            codecs: vec![Codec::Pcma],
            telephone_event_pt: 110,
            ptime_ms: 30,
            srtp: SrtpMode::Optional,
        };
        let text = offer(&hold, &local(), Direction::SendOnly);
        let expected = format!(
            "{ANSWER_HEAD}m=audio 40000 RTP/AVP 8 110\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:110 telephone-event/8000\r\na=fmtp:110 0-16\r\na=ptime:30\r\na=sendonly\r\n"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn accept_answer_takes_first_offered_codec() {
        let text = offer_sdp(
            "18 8 0 101",
            &["a=rtpmap:101 telephone-event/8000", "a=recvonly"],
        );
        let answer = parse(&text).expect("parses");
        let media = accept_answer(&answer, &MediaPolicy::default(), &local()).expect("accepts");
        assert_eq!(
            media,
            NegotiatedMedia {
                remote_rtp: remote(),
                codec: Codec::Pcma,
                payload_type: 8,
                telephone_event_pt: Some(101),
                ptime_ms: 20,
                direction: Direction::SendOnly,
                srtp: None,
            }
        );
        let only_pcmu = policy(&[Codec::Pcmu]);
        assert_eq!(
            accept_answer(&answer, &only_pcmu, &local()).map(|m| m.codec),
            Ok(Codec::Pcmu)
        );
        let g729 = parse(&offer_sdp("18", &[])).expect("parses");
        assert!(matches!(
            accept_answer(&g729, &MediaPolicy::default(), &local()),
            Err(SdpError::NoCommonCodec { .. })
        ));
    }

    #[test]
    fn malformed_line_number_reported() {
        let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nthis is not sdp\r\nt=0 0\r\n";
        assert_eq!(
            parse(text),
            Err(SdpError::Malformed {
                line: 3,
                reason: "expected <letter>=<value>".into()
            })
        );
        let bad_port = "v=0\nt=0 0\n\nm=audio http RTP/AVP 0\n";
        assert!(matches!(
            parse(bad_port),
            Err(SdpError::Malformed { line: 4, .. })
        ));
        let bad_c = "v=0\nc=IN IP4 ::1\n";
        assert!(matches!(
            parse(bad_c),
            Err(SdpError::Malformed { line: 2, .. })
        ));
    }

    #[test]
    fn tolerant_parsing() {
        let text = "v=0  \no=- 1 1 IN IP4 host.example\nz=unknown\ns=\nc=IN IP4 198.51.100.7/127\n\
                    t=0 0\nm=audio 5004/2 RTP/AVP 0 x\na=rtpmap:bogus\na=ptime:abc\na=x-foo\n\n";
        let parsed = parse(text).expect("parses");
        assert_eq!(parsed.origin_address, None);
        let audio = parsed.audio.expect("audio present");
        assert_eq!(audio.formats, vec![0]);
        assert_eq!(audio.port, 5004);
        assert_eq!(audio.ptime_ms, None);
        assert_eq!(audio.connection, "198.51.100.7".parse().ok());
    }

    #[test]
    fn our_offer_and_answer_round_trip() {
        let policy = MediaPolicy::default();
        let our_offer = parse(&offer(&policy, &local(), Direction::SendRecv)).expect("parses");
        let (text, answered) = answer(&our_offer, &policy, &local()).expect("answers");
        assert_eq!(answered.telephone_event_pt, Some(101));
        let accepted =
            accept_answer(&parse(&text).expect("parses"), &policy, &local()).expect("accepts");
        assert_eq!(accepted.codec, answered.codec);
        assert_eq!(accepted.telephone_event_pt, Some(101));
    }

    /// An SRTP offer: the given m= profile and crypto lines.
    fn srtp_offer(profile: &str, crypto: &[&str]) -> String {
        let lines: Vec<String> = crypto
            .iter()
            .map(|line| format!("a=crypto:{line}"))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        offer_sdp("0 101", &refs)
            .replace("RTP/AVP", profile)
            .replace("a=crypto", "a=rtpmap:101 telephone-event/8000\r\na=crypto")
    }

    const KEY_A: &str = "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    const KEY_B: &str = "inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd";

    fn srtp(mode: SrtpMode) -> MediaPolicy {
        MediaPolicy {
            srtp: mode,
            ..MediaPolicy::default()
        }
    }

    #[test]
    fn an_srtp_offer_is_answered_with_its_tag_and_our_own_key() {
        let text = srtp_offer(
            "RTP/SAVP",
            &[
                &format!("1 AES_256_CM_HMAC_SHA1_80 {KEY_A}"),
                &format!("2 AES_CM_128_HMAC_SHA1_32 {KEY_B}"),
                &format!("3 AES_CM_128_HMAC_SHA1_80 {KEY_A}"),
            ],
        );
        let offer = parse(&text).expect("parses");
        let (answer_text, media) =
            answer(&offer, &MediaPolicy::default(), &local()).expect("answers");
        let ours = local().srtp_key;
        assert!(
            answer_text.contains("m=audio 40000 RTP/SAVP 0 101\r\n"),
            "{answer_text}"
        );
        assert!(answer_text.contains(&format!(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
            ours.to_base64()
        )));
        assert_eq!(answer_text.matches("a=crypto").count(), 1);
        let keys = media.srtp.expect("SRTP negotiated");
        assert_eq!(keys.suite, CryptoSuite::AesCm128HmacSha1_32);
        assert_eq!(keys.local, ours);
        assert_eq!(
            keys.remote.to_base64(),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
        );
        // The answer reads back on the offerer's side.
        let reparsed = parse(&answer_text).expect("parses");
        let audio = reparsed.audio_streams.first().expect("audio");
        assert!(audio.is_secure());
        assert_eq!(audio.crypto[0].usable(), Ok((keys.suite, ours)));
    }

    #[test]
    fn savpf_is_answered_in_kind() {
        let text = srtp_offer(
            "RTP/SAVPF",
            &[&format!("1 AES_CM_128_HMAC_SHA1_80 {KEY_A}")],
        );
        let (answer_text, media) = answer_text(&text, &[Codec::Pcmu]);
        assert!(answer_text.contains("m=audio 40000 RTP/SAVPF 0 101\r\n"));
        assert_eq!(
            media.srtp.map(|k| k.suite),
            Some(CryptoSuite::AesCm128HmacSha1_80)
        );
    }

    #[test]
    fn the_srtp_mode_decides_between_plain_and_secure_offers() {
        let secure = parse(&srtp_offer(
            "RTP/SAVP",
            &[&format!("1 AES_CM_128_HMAC_SHA1_80 {KEY_A}")],
        ))
        .expect("parses");
        let plain = parse(&offer_sdp("0", &[])).expect("parses");
        assert!(answer(&secure, &srtp(SrtpMode::Required), &local())
            .is_ok_and(|(_, m)| m.srtp.is_some()));
        assert_eq!(
            answer(&plain, &srtp(SrtpMode::Required), &local()).unwrap_err(),
            SdpError::SrtpRequired
        );
        assert_eq!(
            answer(&secure, &srtp(SrtpMode::Off), &local()).unwrap_err(),
            SdpError::SrtpOff
        );
        assert!(answer(&plain, &srtp(SrtpMode::Off), &local()).is_ok_and(|(_, m)| m.srtp.is_none()));
        // A crypto line in a plain RTP/AVP stream is not SRTP (RFC 4568 §3.1.4).
        let crypto_in_avp = parse(&offer_sdp(
            "0",
            &[&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY_A}")],
        ))
        .expect("parses");
        let (text, media) =
            answer(&crypto_in_avp, &MediaPolicy::default(), &local()).expect("answers");
        assert!(media.srtp.is_none() && !text.contains("crypto"));
        assert_eq!(
            answer(&crypto_in_avp, &srtp(SrtpMode::Required), &local()).unwrap_err(),
            SdpError::SrtpRequired
        );
    }

    #[test]
    fn best_effort_offers_get_srtp_unless_it_is_off() {
        // The same media as SRTP and as plain RTP, one after the other.
        let text = "v=0\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
                    m=audio 5004 RTP/AVP 0\r\n\
                    m=audio 5006 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 \
                    inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";
        let offer = parse(text).expect("parses");
        let (reply, media) = answer(&offer, &MediaPolicy::default(), &local()).expect("answers");
        assert!(media.srtp.is_some());
        assert!(
            reply.contains("t=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 40000 RTP/SAVP 0\r\n"),
            "{reply}"
        );
        let (reply, media) = answer(&offer, &srtp(SrtpMode::Off), &local()).expect("answers");
        assert!(media.srtp.is_none());
        assert!(
            reply.contains("m=audio 40000 RTP/AVP 0\r\n")
                && reply.contains("m=audio 0 RTP/SAVP 0\r\n")
        );
    }

    #[test]
    fn unusable_crypto_is_refused_with_reasons() {
        let text = srtp_offer(
            "RTP/SAVP",
            &[
                &format!("1 AES_CM_128_HMAC_SHA1_80 {KEY_A}|2^20|1:4"),
                &format!("2 AES_CM_128_HMAC_SHA1_80 {KEY_A} UNENCRYPTED_SRTP"),
                "3 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64",
            ],
        );
        let offer = parse(&text).expect("parses");
        assert_eq!(
            offer.audio_streams[0].crypto.len(),
            2,
            "the malformed line is left out"
        );
        assert_eq!(
            answer(&offer, &MediaPolicy::default(), &local()).unwrap_err(),
            SdpError::NoUsableCrypto {
                offered: "tag 1: crypto key uses an MKI, which is not supported; \
                          tag 2: crypto session parameter UNENCRYPTED_SRTP is not supported"
                    .into()
            }
        );
    }

    #[test]
    fn our_srtp_offer_and_its_answer() {
        let policy = srtp(SrtpMode::Required);
        let text = offer(&policy, &local(), Direction::SendRecv);
        let key = local().srtp_key.to_base64();
        assert!(text.contains("m=audio 40000 RTP/SAVP 0 8 101\r\n"));
        assert!(text.contains(&format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
        )));
        // The peer answers with its own key under our tag.
        let their_key = MasterKey::from_bytes([9; 30]);
        let peer = LocalMedia {
            srtp_key: their_key,
            ..local()
        };
        let (reply, answered) = answer(
            &parse(&text).expect("parses"),
            &MediaPolicy::default(),
            &peer,
        )
        .expect("answers");
        assert_eq!(answered.srtp.map(|k| k.remote), Some(local().srtp_key));
        let accepted =
            accept_answer(&parse(&reply).expect("parses"), &policy, &local()).expect("accepts");
        let keys = accepted.srtp.expect("SRTP");
        assert_eq!((keys.local, keys.remote), (local().srtp_key, their_key));
        // A plain answer to an SRTP offer, or another tag, is refused.
        let plain_reply = reply.replace("RTP/SAVP", "RTP/AVP");
        assert_eq!(
            accept_answer(&parse(&plain_reply).expect("parses"), &policy, &local()).unwrap_err(),
            SdpError::SrtpRequired
        );
        let other_tag = reply.replace("a=crypto:1 ", "a=crypto:2 ");
        assert!(matches!(
            accept_answer(&parse(&other_tag).expect("parses"), &policy, &local()),
            Err(SdpError::NoUsableCrypto { .. })
        ));
        // And an SRTP answer to a plain offer.
        assert_eq!(
            accept_answer(
                &parse(&reply).expect("parses"),
                &MediaPolicy::default(),
                &local()
            )
            .unwrap_err(),
            SdpError::SrtpOff
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        const VALID: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\n\
                             s=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\na=sendrecv\r\n\
                             m=audio 49170 RTP/AVP 0 8 97 101\r\na=rtpmap:97 PCMA/8000\r\n\
                             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
                             a=ptime:20\r\nm=video 51372 RTP/AVP 31\r\n\
                             c=IN IP6 2001:db8::7\r\na=rtpmap:31 H261/90000\r\n";

        #[derive(Debug, Clone)]
        enum Mutation {
            Delete(usize),
            Insert(usize, char),
            Replace(usize, char),
            Truncate(usize),
            DuplicateLine(usize),
            SwapLines(usize, usize),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            let interesting = prop_oneof![
                Just('='),
                Just(' '),
                Just('/'),
                Just(':'),
                Just('\n'),
                Just('\r'),
                Just('0'),
                Just('9'),
                Just('m'),
                any::<char>(),
            ];
            prop_oneof![
                any::<usize>().prop_map(Mutation::Delete),
                (any::<usize>(), interesting.clone()).prop_map(|(i, c)| Mutation::Insert(i, c)),
                (any::<usize>(), interesting).prop_map(|(i, c)| Mutation::Replace(i, c)),
                any::<usize>().prop_map(Mutation::Truncate),
                any::<usize>().prop_map(Mutation::DuplicateLine),
                (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
            ]
        }

        fn apply(text: &str, mutation: &Mutation) -> String {
            let mut chars: Vec<char> = text.chars().collect();
            let len = chars.len().max(1);
            match *mutation {
                Mutation::Delete(i) if !chars.is_empty() => {
                    chars.remove(i % len);
                }
                Mutation::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
                Mutation::Replace(i, c) if !chars.is_empty() => chars[i % len] = c,
                Mutation::Truncate(i) => chars.truncate(i % len),
                Mutation::DuplicateLine(i) | Mutation::SwapLines(i, _) => {
                    let mut lines: Vec<&str> = text.split('\n').collect();
                    let count = lines.len();
                    match *mutation {
                        Mutation::SwapLines(a, b) => lines.swap(a % count, b % count),
                        _ => lines.insert(i % count, lines[i % count]),
                    }
                    return lines.join("\n");
                }
                _ => {}
            }
            chars.into_iter().collect()
        }

        fn exercise(text: &str) {
            let Ok(description) = parse(text) else {
                return;
            };
            let policy = MediaPolicy::default();
            let _ = accept_answer(&description, &policy, &super::local());
            if let Ok((answer_text, media)) = answer(&description, &policy, &super::local()) {
                let reparsed = parse(&answer_text).expect("our answer parses");
                assert_eq!(reparsed.media_lines.len(), description.media_lines.len());
                // Read back as the offerer would (an SRTP offerer "requires").
                let offerer = MediaPolicy {
                    srtp: if media.srtp.is_some() {
                        SrtpMode::Required
                    } else {
                        SrtpMode::Off
                    },
                    ..MediaPolicy::default()
                };
                let _ = accept_answer(&reparsed, &offerer, &super::local());
                let accepted = accept_answer(&reparsed, &policy, &super::local())
                    .or_else(|_| {
                        accept_answer(
                            &reparsed,
                            &MediaPolicy {
                                srtp: SrtpMode::Required,
                                ..MediaPolicy::default()
                            },
                            &super::local(),
                        )
                    })
                    .expect("our answer is acceptable");
                assert_eq!(accepted.codec, media.codec);
                assert_eq!(accepted.payload_type, media.payload_type);
            }
        }

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(text in any::<String>()) {
                exercise(&text);
            }

            #[test]
            fn sdp_like_text_never_panics(text in "([a-z]=[ -~]{0,40}\r?\n){0,12}") {
                exercise(&text);
            }

            #[test]
            fn mutated_valid_sdp_never_panics(
                mutations in proptest::collection::vec(mutation(), 1..8)
            ) {
                let text = mutations.iter().fold(VALID.to_string(), |text, m| apply(&text, m));
                exercise(&text);
            }

            #[test]
            fn our_offer_is_answerable(
                codecs in proptest::sample::subsequence(vec![Codec::Pcmu, Codec::Pcma], 1..=2),
                te in 96u8..=127,
                ptime in 10u32..=60,
                port in 1u16..,
                v6 in any::<bool>(),
            ) {
                let policy = MediaPolicy { codecs, telephone_event_pt: te, ptime_ms: ptime, ..MediaPolicy::default() };
                let mut local = super::local();
                local.rtp_port = port;
                if v6 {
                    local.address = IpAddr::V6(Ipv6Addr::LOCALHOST);
                }
                let parsed = parse(&offer(&policy, &local, Direction::SendRecv)).expect("parses");
                let (_, media) = answer(&parsed, &policy, &local).expect("answers");
                prop_assert_eq!(media.codec, policy.codecs[0]);
                prop_assert_eq!(media.telephone_event_pt, Some(te));
                prop_assert_eq!(media.ptime_ms, ptime);
                prop_assert_eq!(media.remote_rtp, Some(SocketAddr::new(local.address, port)));
            }
        }
    }
}
