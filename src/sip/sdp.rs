//! SDP offer/answer (RFC 4566 / RFC 3264) for G.711 audio plus
//! telephone-event (RFC 4733).
//!
//! This module owns:
//! - parsing a remote session description into the few facts we need
//!   ([`parse`]), tolerating LF-only line endings, trailing whitespace and
//!   unknown line types;
//! - choosing the codec, the telephone-event payload type, the packet time
//!   and our media direction ([`answer`], [`accept_answer`]);
//! - building the SDP text of our own offer or answer ([`offer`],
//!   [`answer`]).
//!
//! It is pure (sans-IO): it never opens sockets, resolves host names, reads
//! configuration or logs. Callers hand in text and policy and get back text
//! and a [`NegotiatedMedia`] for the media layer. No input may make it panic.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The payload type and parameters of telephone-event we answer with.
const TELEPHONE_EVENT: &str = "telephone-event";
/// RTP clock rate of G.711 and of the telephone-event stream we accept.
const CLOCK_RATE: u32 = 8000;
/// Largest remote `a=ptime` we honour; larger values fall back to ours.
const MAX_PTIME_MS: u32 = 200;
/// The only audio transport profile we accept.
const RTP_AVP: &str = "RTP/AVP";

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
}

impl Default for MediaPolicy {
    fn default() -> Self {
        MediaPolicy {
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event_pt: 101,
            ptime_ms: 20,
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
}

/// A parsed remote session description (only what we need; unknown lines
/// are left out, never an error).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDescription {
    /// The unicast address of the o= line, when it is an IP literal.
    pub origin_address: Option<IpAddr>,
    /// The audio stream we negotiate: the first audio m= line with a nonzero
    /// port and the `RTP/AVP` profile, else the first with a nonzero port,
    /// else the first audio m= line at all.
    pub audio: Option<AudioMedia>,
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
    /// The audio stream uses a transport other than `RTP/AVP`.
    #[error("unsupported audio transport protocol {0}")]
    UnsupportedProtocol(String),
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
/// Picks the first codec in our preference order that the offer contains
/// (by static payload type or by rtpmap name on a dynamic one, answering
/// with the offerer's payload type), echoes telephone-event with the
/// offerer's payload type when offered, reverses the offerer's direction,
/// and uses the offerer's ptime if given, else ours. Every other m= line is
/// answered with port 0 in the same position (RFC 3264 §6). Returns the SDP
/// text (CRLF line endings) and the negotiated media.
pub fn answer(
    offer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
) -> Result<(String, NegotiatedMedia), SdpError> {
    let audio = usable_audio(offer)?;
    let (codec, payload_type) = policy
        .unique_codecs()
        .into_iter()
        .find_map(|codec| find_codec_pt(audio, codec).map(|pt| (codec, pt)))
        .ok_or_else(|| no_common_codec(audio))?;
    let negotiated = negotiate(audio, codec, payload_type, policy);

    let mut sdp = SdpWriter::new(local);
    for (index, mline) in offer.media_lines.iter().enumerate() {
        if index == audio.mline_index {
            let mut formats = vec![(payload_type, codec.name())];
            if let Some(te) = negotiated.telephone_event_pt {
                formats.push((te, TELEPHONE_EVENT));
            }
            sdp.audio(
                local.rtp_port,
                &formats,
                negotiated.telephone_event_pt,
                negotiated.ptime_ms,
                negotiated.direction,
            );
        } else {
            sdp.rejected(mline);
        }
    }
    Ok((sdp.finish(), negotiated))
}

/// Builds our offer: all policy codecs in order plus telephone-event
/// (always offered, with `policy.telephone_event_pt`), `a=ptime` and the
/// given direction.
pub fn offer(policy: &MediaPolicy, local: &LocalMedia, direction: Direction) -> String {
    let mut formats: Vec<(u8, &str)> = policy
        .unique_codecs()
        .into_iter()
        .map(|codec| (codec.payload_type(), codec.name()))
        .collect();
    formats.push((policy.telephone_event_pt, TELEPHONE_EVENT));
    let mut sdp = SdpWriter::new(local);
    sdp.audio(
        local.rtp_port,
        &formats,
        Some(policy.telephone_event_pt),
        policy.ptime_ms,
        direction,
    );
    sdp.finish()
}

/// Applies the remote answer to an offer we made from `policy`.
///
/// The codec is the first one in the answer's m= format list that we
/// offered; it is an error if there is none.
pub fn accept_answer(
    answer: &SessionDescription,
    policy: &MediaPolicy,
) -> Result<NegotiatedMedia, SdpError> {
    let audio = usable_audio(answer)?;
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
    Ok(negotiate(audio, codec, payload_type, policy))
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
            Attribute::Rtpmap(..) | Attribute::Other => {}
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
        SessionDescription {
            origin_address: self.origin,
            audio,
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
        })
    }

    fn attribute(&mut self, value: &str) {
        match Attribute::parse(value) {
            Attribute::Direction(direction) => self.direction = Some(direction),
            Attribute::Ptime(ptime) => self.ptime_ms = Some(ptime),
            Attribute::Rtpmap(pt, name, clock) => self.rtpmaps.push((pt, name, clock)),
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

/// The audio stream if it is present, enabled and plain RTP/AVP.
fn usable_audio(description: &SessionDescription) -> Result<&AudioMedia, SdpError> {
    let audio = description
        .audio
        .as_ref()
        .filter(|audio| audio.port != 0)
        .ok_or(SdpError::NoAudio)?;
    if !audio.protocol.eq_ignore_ascii_case(RTP_AVP) {
        return Err(SdpError::UnsupportedProtocol(audio.protocol.clone()));
    }
    Ok(audio)
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
    fn audio(
        &mut self,
        port: u16,
        formats: &[(u8, &str)],
        telephone_event_pt: Option<u8>,
        ptime_ms: u32,
        direction: Direction,
    ) {
        let pts: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
        self.line(format_args!("m=audio {port} {RTP_AVP} {}", pts.join(" ")));
        for (pt, name) in formats {
            self.line(format_args!("a=rtpmap:{pt} {name}/{CLOCK_RATE}"));
        }
        if let Some(te) = telephone_event_pt {
            self.line(format_args!("a=fmtp:{te} 0-16"));
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
        let offer = parse(&offer_sdp("0", &[]).replace("RTP/AVP", "RTP/SAVP")).expect("parses");
        assert_eq!(
            answer(&offer, &MediaPolicy::default(), &local()).unwrap_err(),
            SdpError::UnsupportedProtocol("RTP/SAVP".into())
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
        let media = accept_answer(&answer, &MediaPolicy::default()).expect("accepts");
        assert_eq!(
            media,
            NegotiatedMedia {
                remote_rtp: remote(),
                codec: Codec::Pcma,
                payload_type: 8,
                telephone_event_pt: Some(101),
                ptime_ms: 20,
                direction: Direction::SendOnly,
            }
        );
        let only_pcmu = policy(&[Codec::Pcmu]);
        assert_eq!(
            accept_answer(&answer, &only_pcmu).map(|m| m.codec),
            Ok(Codec::Pcmu)
        );
        let g729 = parse(&offer_sdp("18", &[])).expect("parses");
        assert!(matches!(
            accept_answer(&g729, &MediaPolicy::default()),
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
        let accepted = accept_answer(&parse(&text).expect("parses"), &policy).expect("accepts");
        assert_eq!(accepted.codec, answered.codec);
        assert_eq!(accepted.telephone_event_pt, Some(101));
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
            let _ = accept_answer(&description, &policy);
            if let Ok((answer_text, media)) = answer(&description, &policy, &super::local()) {
                let reparsed = parse(&answer_text).expect("our answer parses");
                assert_eq!(reparsed.media_lines.len(), description.media_lines.len());
                let accepted = accept_answer(&reparsed, &policy).expect("our answer is acceptable");
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
                let policy = MediaPolicy { codecs, telephone_event_pt: te, ptime_ms: ptime };
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
