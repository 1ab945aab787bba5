//! One call's media, sans-IO: the RTP stream we send (sequence numbers,
//! timestamps, SSRC, marker bit, prompt playback, RFC 4733 key presses)
//! and what we receive (source and payload checks, symmetric RTP latching,
//! DTMF by RFC 4733 or in-band tones, the media timeout), in the clear or
//! as SRTP (`srtp`: every packet we send is protected, every packet we
//! receive must authenticate before anything else looks at it, so that a
//! forged packet can neither latch the stream nor press a key).
//!
//! The worker calls [`MediaSession::on_datagram`] for every datagram that
//! arrives on the call's RTP port and [`MediaSession::next_packet`] once
//! per packet time; events come out of [`MediaSession::poll_event`]. The
//! session never reads a clock or touches a socket.

use super::g711;
use super::inband::{InbandConfig, InbandDetector};
use super::playback::{FrameStatus, Playback, Playlist};
use super::recorder::{RecordSpec, Recorder, Recording};
use super::relay::SampleQueue;
use super::rfc4733::{self, EventPacket, EventReceiver};
use super::srtp::{Refused, SrtpKeys, SrtpSession, MAX_TAG_LEN};
use crate::sip::sdp::{Codec, Direction};
use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Samples per millisecond at the G.711 clock rate.
const SAMPLES_PER_MS: u32 = 8;
/// Largest packet we build: RTP header, 60 ms of G.711, an SRTP tag.
pub const MAX_PACKET: usize = 12 + 480 + MAX_TAG_LEN;
/// The most audio a recorded leg's taps hold between the worker's takes
/// (every second): two seconds at 8 kHz.
const MAX_TAP: usize = 16_000;
/// How long a key press we send lasts.
const SENT_PRESS_MS: u32 = 100;

/// Where a key press was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    Rfc4733,
    SipInfo,
    Inband,
}

impl DtmfSource {
    pub fn label(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::SipInfo => "sip_info",
            DtmfSource::Inband => "inband",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Dtmf {
        digit: char,
        source: DtmfSource,
    },
    /// The playlist ended, or was cut short by a key (barge-in).
    PlaybackDone {
        interrupted: bool,
    },
    /// No RTP arrived for the configured time while the caller was not
    /// holding the call.
    MediaTimeout,
    /// The caller started speaking during a recording.
    SpeechStarted,
    /// A recording ([`MediaSession::start_recording`]) ended.
    Recorded(Box<Recording>),
    /// The last second or so of a recorded bridged call: what the caller
    /// sent (left) and what the agent sent (right), equally long.
    CallAudio(Box<StereoChunk>),
    /// A recorded bridged call's media ended: no more `CallAudio`.
    CallAudioEnd,
}

/// Audio of both sides of a bridged call for the same stretch of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StereoChunk {
    pub left: Vec<i16>,
    pub right: Vec<i16>,
}

impl StereoChunk {
    /// Pairs what each side sent over the same ticks; the side that sent
    /// less (a late packet, silence suppression) is padded with silence.
    pub fn paired(mut left: Vec<i16>, mut right: Vec<i16>) -> StereoChunk {
        let len = left.len().max(right.len());
        left.resize(len, 0);
        right.resize(len, 0);
        StereoChunk { left, right }
    }
}

/// What SDP negotiation decided for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaParams {
    pub codec: Codec,
    pub payload_type: u8,
    /// The caller's telephone-event payload type; `None` turns on in-band
    /// detection instead.
    pub telephone_event_pt: Option<u8>,
    pub ptime_ms: u32,
    /// The address from SDP (`None` while on hold with c=0.0.0.0).
    pub remote: Option<SocketAddr>,
    /// Our direction: whether we may send and should expect to receive.
    pub direction: Direction,
    /// SRTP suite and keys when the stream is SRTP.
    pub srtp: Option<SrtpKeys>,
}

impl MediaParams {
    fn may_send(&self) -> bool {
        matches!(self.direction, Direction::SendRecv | Direction::SendOnly)
    }

    /// The caller is expected to send unless it put the call on hold
    /// (sendonly, recvonly or inactive: phones differ in what they still
    /// send while holding, so any of them suspends the media timeout).
    fn expects_media(&self) -> bool {
        self.direction == Direction::SendRecv
    }

    fn samples_per_packet(&self) -> usize {
        (self.ptime_ms * SAMPLES_PER_MS) as usize
    }
}

/// Counters for metrics and the load tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// From an address other than the latched or signalled one.
    pub dropped_source: u64,
    /// With a payload type the call did not negotiate.
    pub dropped_payload_type: u64,
    /// Not RTP at all (too short, wrong version).
    pub dropped_malformed: u64,
    pub rtcp_received: u64,
    /// Accepted, but older (by sequence number) than one already received.
    pub late: u64,
    /// SRTP or SRTCP whose authentication tag did not verify (tampered,
    /// wrong key, too short).
    pub dropped_unauthenticated: u64,
    /// SRTP or SRTCP already received (replay protection).
    pub dropped_replayed: u64,
}

pub struct MediaSession {
    params: MediaParams,
    symmetric: bool,
    /// Where we send: the SDP address until the caller's first packet,
    /// then (with symmetric RTP) wherever its packets come from.
    target: Option<SocketAddr>,
    latched: bool,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    marker_next: bool,
    playback: Option<Playback>,
    presses: VecDeque<EventPacket>,
    received_events: EventReceiver,
    inband: Option<InbandDetector>,
    /// What the caller says is being recorded (a `record` node).
    recorder: Option<Recorder>,
    /// While recorded: what this leg received, decoded, since the worker
    /// last took it.
    tap: Option<Vec<i16>>,
    /// While an IVR leg is recorded: what we sent (prompts, silence),
    /// decoded, since the worker last took it.
    sent_tap: Option<Vec<i16>>,
    decoded: Vec<i16>,
    payload: Vec<u8>,
    events: VecDeque<MediaEvent>,
    last_received: Instant,
    media_timeout: Duration,
    stats: MediaStats,
    /// While bridged (see `relay`): what we heard, for the other leg, and
    /// what the other leg heard, for us to send.
    relay: Option<Relay>,
    /// The caller's SSRC and the highest sequence number seen from it.
    newest: Option<(u32, u16)>,
    /// Once a leg has used SRTP its contexts stay for the whole call, so
    /// that a renegotiation back to SRTP goes on with our stream's rollover
    /// counter instead of starting the same key again at index 0.
    srtp: Option<SrtpSession>,
    /// `params.srtp` is set and `srtp` holds its keys (setting it up cannot
    /// fail with well-formed keys; if it ever did, nothing is sent or
    /// accepted rather than anything in the clear).
    srtp_ready: bool,
    /// The address the call's signalling came from: behind NAT the RTP
    /// comes from there rather than from the private address in SDP.
    peer: Option<std::net::IpAddr>,
}

#[derive(Debug, Default)]
struct Relay {
    heard: SampleQueue,
    speak: SampleQueue,
    frame: Vec<i16>,
}

impl MediaSession {
    pub fn new(
        params: MediaParams,
        symmetric: bool,
        media_timeout: Duration,
        now: Instant,
    ) -> MediaSession {
        let mut session = MediaSession {
            params,
            symmetric,
            target: params.remote,
            latched: false,
            ssrc: rand::random(),
            sequence: rand::random(),
            timestamp: rand::random(),
            marker_next: true,
            playback: None,
            presses: VecDeque::new(),
            received_events: EventReceiver::new(),
            inband: None,
            recorder: None,
            tap: None,
            sent_tap: None,
            decoded: Vec::with_capacity(480),
            payload: vec![0; 480],
            events: VecDeque::new(),
            last_received: now,
            media_timeout,
            stats: MediaStats::default(),
            relay: None,
            newest: None,
            srtp: None,
            srtp_ready: false,
            peer: None,
        };
        session.apply_params(params);
        session
    }

    fn apply_params(&mut self, params: MediaParams) {
        self.params = params;
        // In-band detection only when the call has no telephone-event, so
        // that no key is counted twice.
        self.inband = match (params.telephone_event_pt, self.inband.take()) {
            (Some(_), _) => None,
            (None, Some(existing)) => Some(existing),
            (None, None) => Some(InbandDetector::new(InbandConfig::default())),
        };
        let len = params.samples_per_packet();
        self.payload.resize(len, g711::silence(params.codec));
        self.srtp_ready = match (params.srtp, self.srtp.as_mut()) {
            (None, _) => false,
            (Some(keys), Some(session)) => session.update(keys).is_ok(),
            (Some(keys), None) => match SrtpSession::new(keys) {
                Ok(session) => {
                    self.srtp = Some(session);
                    true
                }
                Err(_) => false,
            },
        };
    }

    /// Applies a renegotiation (re-INVITE, UPDATE, the answer in an ACK).
    pub fn update(&mut self, params: MediaParams, now: Instant) {
        let moved = params.remote != self.params.remote;
        self.apply_params(params);
        if moved {
            self.target = params.remote;
            self.latched = false;
        }
        self.last_received = now;
    }

    /// Lets symmetric RTP latch to packets from `peer`, the address the
    /// call's signalling came from, as well as from the SDP address.
    pub fn set_signalling_peer(&mut self, peer: std::net::IpAddr) {
        self.peer = Some(peer);
    }

    pub fn params(&self) -> &MediaParams {
        &self.params
    }

    pub fn stats(&self) -> MediaStats {
        self.stats
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Starts a playlist, replacing whatever was playing.
    pub fn play(&mut self, playlist: Playlist) {
        let samples = self.params.samples_per_packet();
        self.playback = Some(Playback::new(playlist, self.params.codec, samples));
    }

    /// Stops playback; reports `PlaybackDone { interrupted: true }` if
    /// something was playing.
    pub fn stop(&mut self) {
        if self.playback.take().is_some() {
            self.events
                .push_back(MediaEvent::PlaybackDone { interrupted: true });
        }
    }

    /// Queues a key press to send as RFC 4733 events, if the call
    /// negotiated telephone-event.
    pub fn send_dtmf(&mut self, digit: char) -> bool {
        let Some(_) = self.params.telephone_event_pt else {
            return false;
        };
        match rfc4733::press_packets(digit, self.timestamp, SENT_PRESS_MS, self.params.ptime_ms) {
            Some(packets) => {
                self.presses.extend(packets);
                true
            }
            None => false,
        }
    }

    /// Bridges the session: playback stops and from now on we send what
    /// [`MediaSession::exchange_audio`] hands over from the other leg, and
    /// keep what we receive for it.
    pub fn start_relay(&mut self) {
        self.stop();
        self.relay = Some(Relay::default());
    }

    /// Keeps what this leg receives from now on, for [`MediaSession::take_tap`].
    pub fn start_tap(&mut self) {
        self.tap = Some(Vec::with_capacity(8000));
    }

    /// What this leg received since the last call (empty when not tapped).
    pub fn take_tap(&mut self) -> Vec<i16> {
        self.tap.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub fn is_tapped(&self) -> bool {
        self.tap.is_some()
    }

    /// Keeps what this leg receives and what we send from now on: a
    /// recorded IVR leg, the caller on one side and the IVR on the other.
    pub fn start_taps(&mut self) {
        self.start_tap();
        self.sent_tap = Some(Vec::with_capacity(8000));
    }

    /// What we sent since the last call (empty when not tapped).
    pub fn take_sent_tap(&mut self) -> Vec<i16> {
        self.sent_tap
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Stops keeping what we send (the IVR leg's recording ends or goes on
    /// with another side).
    pub fn stop_sent_tap(&mut self) {
        self.sent_tap = None;
    }

    pub fn is_sent_tapped(&self) -> bool {
        self.sent_tap.is_some()
    }

    /// Stops keeping both directions.
    pub fn stop_taps(&mut self) {
        self.tap = None;
        self.sent_tap = None;
    }

    /// Moves the audio each of two bridged sessions heard to the other.
    pub fn exchange_audio(a: &mut MediaSession, b: &mut MediaSession) {
        if let (Some(a), Some(b)) = (a.relay.as_mut(), b.relay.as_mut()) {
            a.heard.move_into(&mut b.speak);
            b.heard.move_into(&mut a.speak);
        }
    }

    /// Starts recording what the caller sends (a recording already running
    /// is replaced); [`MediaEvent::Recorded`] comes when it ends.
    pub fn start_recording(&mut self, spec: RecordSpec) {
        self.recorder = Some(Recorder::new(spec));
    }

    /// Ends a running recording now; its [`MediaEvent::Recorded`] follows.
    pub fn stop_recording(&mut self) {
        if let Some(mut recorder) = self.recorder.take() {
            self.events
                .push_back(MediaEvent::Recorded(Box::new(recorder.stop())));
        }
    }

    /// Drops a running recording without an event (a menu stopped
    /// listening).
    pub fn cancel_recording(&mut self) {
        self.recorder = None;
    }

    /// A key read outside RTP (SIP INFO) enters the same path as the others.
    pub fn key_from_signalling(&mut self, digit: char) {
        self.key(digit, DtmfSource::SipInfo);
    }

    fn key(&mut self, digit: char, source: DtmfSource) {
        self.events.push_back(MediaEvent::Dtmf { digit, source });
        if self.playback.as_ref().is_some_and(Playback::barge_in) {
            self.stop();
        }
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Handles one datagram that arrived on the call's RTP port.
    pub fn on_datagram(&mut self, datagram: &[u8], source: SocketAddr, now: Instant) {
        // RTCP shares nothing with RTP but the version bits; its packet
        // types 200-204 sit where RTP has marker + payload type.
        if datagram.len() >= 2 && (200..=204).contains(&datagram[1]) {
            if self.params.srtp.is_some() {
                match self.srtp.as_mut().filter(|_| self.srtp_ready) {
                    Some(srtp) => match srtp.unprotect_rtcp(datagram) {
                        Ok(_) => self.stats.rtcp_received += 1,
                        Err(refused) => self.count_refused(refused),
                    },
                    None => self.stats.dropped_unauthenticated += 1,
                }
            } else {
                self.stats.rtcp_received += 1;
            }
            return;
        }
        if self.params.srtp.is_none() {
            return self.on_rtp(datagram, source, now);
        }
        // The source check first: it is cheap and needs no key.
        if !self.accepts_source(source) {
            self.stats.dropped_source += 1;
            return;
        }
        let plain = match self.srtp.as_mut().filter(|_| self.srtp_ready) {
            Some(srtp) => srtp.unprotect_rtp(datagram),
            None => Err(Refused::Unauthenticated),
        };
        match plain {
            Ok(plain) => self.on_rtp(&plain, source, now),
            Err(refused) => self.count_refused(refused),
        }
    }

    fn count_refused(&mut self, refused: Refused) {
        match refused {
            Refused::Replayed => self.stats.dropped_replayed += 1,
            Refused::Unauthenticated => self.stats.dropped_unauthenticated += 1,
        }
    }

    /// Handles one plain RTP packet (decrypted, when the call is SRTP).
    fn on_rtp(&mut self, datagram: &[u8], source: SocketAddr, now: Instant) {
        let Ok(packet) = RtpReader::new(datagram) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        if !self.accepts_source(source) {
            self.stats.dropped_source += 1;
            return;
        }
        let payload_type = packet.payload_type();
        let is_event = Some(payload_type) == self.params.telephone_event_pt;
        if payload_type != self.params.payload_type && !is_event && payload_type != 13 {
            self.stats.dropped_payload_type += 1;
            return;
        }
        self.stats.packets_received += 1;
        self.note_sequence(packet.ssrc(), u16::from(packet.sequence_number()));
        self.last_received = now;
        if self.symmetric && !self.latched {
            self.target = Some(source);
            self.latched = true;
        }
        if is_event {
            let press = self.received_events.on_packet(
                packet.ssrc(),
                u16::from(packet.sequence_number()),
                packet.timestamp(),
                packet.mark(),
                packet.payload(),
            );
            if let Some(press) = press {
                self.key(press.digit, DtmfSource::Rfc4733);
            }
            return;
        }
        if payload_type == self.params.payload_type
            && (self.inband.is_some()
                || self.relay.is_some()
                || self.recorder.is_some()
                || self.tap.is_some())
        {
            g711::decode(self.params.codec, packet.payload(), &mut self.decoded);
            if let Some(relay) = self.relay.as_mut() {
                relay.heard.push(&self.decoded);
            }
            // A peer sending faster than real time cannot grow the tap
            // beyond what the worker takes every second, with room.
            if let Some(tap) = self.tap.as_mut().filter(|t| t.len() < MAX_TAP) {
                tap.extend_from_slice(&self.decoded);
            }
            if let Some(recorder) = self.recorder.as_mut() {
                let done = recorder.push(&self.decoded);
                if recorder.speech_started() {
                    self.events.push_back(MediaEvent::SpeechStarted);
                }
                if let Some(done) = done {
                    self.recorder = None;
                    self.events.push_back(MediaEvent::Recorded(Box::new(done)));
                }
            }
            if let Some(detector) = self.inband.as_mut() {
                for digit in detector.push(&self.decoded) {
                    self.key(digit, DtmfSource::Inband);
                }
            }
        }
    }

    /// Counts a packet older than the newest one of its stream as late (a
    /// new SSRC starts a new stream).
    fn note_sequence(&mut self, ssrc: u32, sequence: u16) {
        match self.newest {
            Some((newest_ssrc, newest)) if newest_ssrc == ssrc => {
                // Sequence numbers wrap: "behind" is a short step back.
                if (newest.wrapping_sub(sequence) as i16) > 0 {
                    self.stats.late += 1;
                } else {
                    self.newest = Some((ssrc, sequence));
                }
            }
            _ => self.newest = Some((ssrc, sequence)),
        }
    }

    /// After latching, packets must come from the latched address. Before,
    /// from the SDP address (any port if that is all NAT changed), and with
    /// symmetric RTP also from:
    /// - the signalling peer's address (a caller behind NAT puts its
    ///   private address in SDP);
    /// - anywhere when the SDP address is of the other IP family than the
    ///   packets (an IPv6 `c=` while the caller's RTP reaches our IPv4
    ///   socket, or the reverse): this socket could never send there;
    /// - anywhere on an SRTP call: only a packet that authenticates latches.
    fn accepts_source(&self, source: SocketAddr) -> bool {
        match (self.target, self.latched) {
            (Some(target), true) => target == source,
            (Some(target), false) if self.symmetric => {
                target.ip() == source.ip()
                    || self.peer == Some(source.ip())
                    || target.is_ipv4() != source.is_ipv4()
                    || self.params.srtp.is_some()
            }
            (Some(target), false) => target.ip() == source.ip(),
            (None, _) => self.symmetric,
        }
    }

    /// True when the caller has sent nothing for the media timeout while
    /// it should have been sending.
    pub fn timed_out(&mut self, now: Instant) -> bool {
        if !self.params.expects_media() || self.media_timeout.is_zero() {
            self.last_received = now;
            return false;
        }
        now.saturating_duration_since(self.last_received) >= self.media_timeout
    }

    /// Builds the packet for this packet time into `out` and returns its
    /// length and destination, or `None` when nothing may be sent (hold,
    /// no address). The RTP clock advances either way.
    pub fn next_packet(&mut self, out: &mut [u8]) -> Option<(usize, SocketAddr)> {
        let samples = self.params.samples_per_packet() as u32;
        let timestamp = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(samples);
        let frame_status = self.fill_audio();
        if let Some(sent) = self.sent_tap.as_mut().filter(|t| t.len() < MAX_TAP) {
            g711::decode_append(self.params.codec, &self.payload, sent);
        }
        if frame_status == Some(FrameStatus::Finished) {
            self.playback = None;
            self.events
                .push_back(MediaEvent::PlaybackDone { interrupted: false });
        }
        let target = self.target.filter(|_| self.params.may_send())?;
        let built = match (self.presses.pop_front(), self.params.telephone_event_pt) {
            (Some(event), Some(event_pt)) => RtpPacketBuilder::new()
                .payload_type(event_pt)
                .ssrc(self.ssrc)
                .sequence(Seq::from(self.sequence))
                .timestamp(event.timestamp)
                .marked(event.marker)
                .payload(&event.payload)
                .build_into(out),
            _ => RtpPacketBuilder::new()
                .payload_type(self.params.payload_type)
                .ssrc(self.ssrc)
                .sequence(Seq::from(self.sequence))
                .timestamp(timestamp)
                .marked(self.marker_next)
                .payload(&self.payload)
                .build_into(out),
        };
        let mut len = built.ok()?;
        if self.params.srtp.is_some() {
            let srtp = self.srtp.as_mut().filter(|_| self.srtp_ready)?;
            len = srtp.protect_rtp(out, len).ok()?;
        }
        self.sequence = self.sequence.wrapping_add(1);
        self.marker_next = false;
        self.stats.packets_sent += 1;
        Some((len, target))
    }

    /// Fills `self.payload` with the next frame of the playlist or silence.
    fn fill_audio(&mut self) -> Option<FrameStatus> {
        if let Some(relay) = self.relay.as_mut() {
            relay.frame.resize(self.payload.len(), 0);
            relay.speak.pop_frame(&mut relay.frame);
            g711::encode(self.params.codec, &relay.frame, &mut self.payload);
            return None;
        }
        match self.playback.as_mut() {
            Some(playback) => Some(playback.next_frame(&mut self.payload)),
            None => {
                self.payload.fill(g711::silence(self.params.codec));
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
