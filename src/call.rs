//! Per-call glue between the SIP endpoint, media and the IVR: picks the
//! dialplan by dialled number (404 when none matches), negotiates SDP,
//! gives each answered call an RTP port and a media session on a worker,
//! runs the call's IVR engine (or, with no dialplans loaded, plays the
//! greeting) with what a transferred call's INVITE says (ticket,
//! Referred-By), turns key presses from RTP, INFO and in-band tones into call
//! events, carries out transfers (REFER; on success the caller leg is hung
//! up and the call recorded as `transferred`, on failure the IVR takes its
//! fallback), bridges calls to agents (mode "bridge": an outgoing leg with
//! its own RTP port, ringback meanwhile, media relayed once it answers,
//! either side's BYE ending both), and ends calls on media timeout or at
//! their time limit (after a goodbye prompt). It decides the call's media
//! address family (the offer's when we have an address of that family, else
//! the signalling's with symmetric RTP) and refuses offers the SRTP mode
//! does not allow with 488 and a Warning saying why.
//!
//! Who calls is read once, at the INVITE (`sip::identity`): the caller's
//! number from a trusted P-Asserted-Identity or Remote-Party-ID, else from
//! From; the IVR, the call record and a bridged transfer's INVITE use it,
//! the last one withholding it (From `anonymous`, `Privacy: id`) when the
//! caller asked for privacy.
//!
//! It makes no network calls itself: it tells the endpoint what to answer
//! and the media workers what to do, and publishes [`CallEvent`]s.

use crate::ivr::engine::TransferFailure;
use crate::ivr::runner::{bridge_failure, refer_failure};
use crate::ivr::runner::{CallAction, Dialplans, IvrCalls, IvrMessage};
use crate::media::dtmf_info;
use crate::media::playback::{PlayItem, Playlist};
use crate::media::ports::RtpPortPool;
use crate::media::prompt::PromptLibrary;
use crate::media::relay;
use crate::media::session::{DtmfSource, MediaEvent, MediaParams, MediaSession};
use crate::media::worker::{CallMediaEvent, MediaWorkers, WorkerCommand};
use crate::outbound::worker::AttemptEnded;
use crate::sip::endpoint::{
    CallHandle, EndReason, Endpoint, Event, IncomingCall, Origin, OutgoingRequest,
};
use crate::sip::identity::{self, CallerIdentity};
use crate::sip::sdes::MasterKey;
use crate::sip::sdp::{
    self, Direction, LocalMedia, MediaPolicy, NegotiatedMedia, SdpError, SrtpMode,
};
use crate::tickets::model::Language;
use bytes::Bytes;
use ipnet::IpNet;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// What happens on calls, for whoever listens (tests now; the IVR, live
/// call views and metrics later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    Answered {
        call_id: String,
    },
    Dtmf {
        call_id: String,
        digit: char,
        source: DtmfSource,
    },
    PlaybackDone {
        call_id: String,
        interrupted: bool,
    },
    Ended {
        call_id: String,
        reason: String,
    },
}

/// Settings the call glue needs, taken from the config once.
mod outbound;

/// Where the call loop reports.
pub struct CallReports {
    /// Call events for subscribers (tests, the console).
    pub events: broadcast::Sender<CallEvent>,
    /// How outbound calls ended, for the outbound worker.
    pub outbound_ended: mpsc::UnboundedSender<AttemptEnded>,
}

pub struct CallSettings {
    pub policy: MediaPolicy,
    /// `sip.advertised_address`.
    pub advertised: Option<IpAddr>,
    /// `media.advertised_addresses`: at most one per family.
    pub media_addresses: Vec<IpAddr>,
    /// Transfer targets whose bridged legs must be SRTP.
    pub srtp_targets: HashSet<String>,
    pub max_duration: Duration,
    /// Heard (in the call's language) when `max_duration` is reached; empty:
    /// none.
    pub time_limit_prompt: String,
    /// Sources whose identity headers are believed (`sip::identity`).
    pub asserted_identity_from: Vec<IpNet>,
    pub media_timeout: Duration,
    pub symmetric_rtp: bool,
    pub greeting: Vec<String>,
    pub loop_greeting: bool,
    /// `recordings.bridged_calls`: bridged calls are recorded in stereo.
    pub record_bridged_calls: bool,
    /// `recordings.ivr_calls`: IVR legs are recorded in stereo from the
    /// answer.
    pub record_ivr_calls: bool,
}

struct Call {
    call_id: String,
    local: LocalMedia,
    /// Whether our last offer on this call was SRTP (the answer in the ACK
    /// must match it) and whether its media is SRTP now (a re-offer of ours
    /// keeps it so).
    offered_srtp: bool,
    srtp_now: bool,
    /// Why we hung up, when we did (for the call record).
    hangup_reason: Option<&'static str>,
    /// The transfer target the caller was handed to, once that succeeded.
    transferred_to: Option<String>,
    /// The target of the transfer in progress.
    transferring_to: Option<String>,
    /// Who calls, presented to a bridged transfer's target as they allow.
    identity: CallerIdentity,
    /// The agent leg of a bridged transfer, ringing or answered.
    bridge: Option<BridgeLeg>,
    /// The time limit was reached: the goodbye plays, then BYE.
    saying_goodbye: bool,
}

impl Call {
    /// A call just answered, plain RTP, nothing transferred.
    fn answered(call_id: String, local: LocalMedia, identity: CallerIdentity) -> Call {
        Call {
            call_id,
            local,
            offered_srtp: false,
            srtp_now: false,
            hangup_reason: None,
            transferred_to: None,
            transferring_to: None,
            identity,
            bridge: None,
            saying_goodbye: false,
        }
    }
}

/// A call we placed to bridge the caller to a transfer target.
struct BridgeLeg {
    leg: CallHandle,
    target: String,
    /// The leg's RTP socket until the media worker takes it at the answer.
    socket: Option<UdpSocket>,
    /// Our side of the leg's media, for answering its re-INVITEs.
    local: LocalMedia,
    /// The leg was offered SRTP (and so must stay SRTP).
    srtp: bool,
    answered_at: Option<Instant>,
}

pub struct Calls {
    settings: CallSettings,
    dialplans: Arc<Dialplans>,
    ivr: IvrCalls,
    prompts: Arc<PromptLibrary>,
    ports: RtpPortPool,
    workers: MediaWorkers,
    calls: HashMap<CallHandle, Call>,
    /// The caller of each bridged transfer's agent leg.
    legs: HashMap<CallHandle, CallHandle>,
    /// Outbound calls placed for the outbound worker, until they end.
    outbound: HashMap<CallHandle, outbound::OutboundLeg>,
    /// Where the outbound worker hears how they ended.
    outbound_ended: mpsc::UnboundedSender<AttemptEnded>,
    /// When each answered call reaches its maximum duration.
    limits: BinaryHeap<Reverse<(Instant, CallHandle)>>,
    events: broadcast::Sender<CallEvent>,
}

impl Calls {
    pub fn new(
        settings: CallSettings,
        dialplans: Arc<Dialplans>,
        ivr: IvrCalls,
        prompts: Arc<PromptLibrary>,
        ports: RtpPortPool,
        workers: MediaWorkers,
        reports: CallReports,
    ) -> Calls {
        let CallReports {
            events,
            outbound_ended,
        } = reports;
        Calls {
            settings,
            dialplans,
            ivr,
            prompts,
            ports,
            workers,
            calls: HashMap::new(),
            legs: HashMap::new(),
            outbound: HashMap::new(),
            outbound_ended,
            limits: BinaryHeap::new(),
            events,
        }
    }

    /// Stops the media workers (after the last call has ended).
    pub fn shutdown(self) {
        self.workers.shutdown();
    }

    fn call_id(&self, call: CallHandle) -> &str {
        self.calls.get(&call).map_or("", |c| c.call_id.as_str())
    }

    fn publish(&self, event: CallEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// The next instant at which `enforce_limits` has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let limit = self.limits.peek().map(|Reverse((at, _))| *at);
        [limit, self.ivr.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Loaded and checked dialplans and prompts for new calls. Calls in
    /// progress keep the dialplan they started with (their engine holds it).
    pub fn reload(&mut self, dialplans: Arc<Dialplans>, prompts: Arc<PromptLibrary>) {
        self.dialplans = dialplans;
        self.ivr.replace_prompts(prompts.clone());
        self.prompts = prompts;
    }

    /// An answer from the IVR's background work (customer lookup, store).
    pub fn on_ivr_message(&mut self, endpoint: &mut Endpoint, message: IvrMessage, now: Instant) {
        let actions = self.ivr.on_message(message, now);
        self.apply(endpoint, actions, now);
    }

    fn apply(
        &mut self,
        endpoint: &mut Endpoint,
        actions: Vec<(CallHandle, CallAction)>,
        now: Instant,
    ) {
        for (call, action) in actions {
            match action {
                CallAction::Play(playlist) => {
                    self.workers.send(call, WorkerCommand::Play(playlist))
                }
                CallAction::StopPlayback => self.workers.send(call, WorkerCommand::StopPlayback),
                CallAction::StartRecording(spec) => {
                    self.workers.send(call, WorkerCommand::StartRecording(spec))
                }
                CallAction::StopRecording => self.workers.send(call, WorkerCommand::StopRecording),
                CallAction::CancelRecording => {
                    self.workers.send(call, WorkerCommand::CancelRecording)
                }
                CallAction::Hangup => {
                    if let Some(state) = self.calls.get_mut(&call) {
                        state.hangup_reason = Some("ivr");
                    }
                    let _ = endpoint.hangup(call, now);
                }
                CallAction::Refer {
                    target,
                    refer_to,
                    timeout,
                } => {
                    let _span =
                        tracing::info_span!("call", call_id = %self.call_id(call)).entered();
                    match endpoint.refer(call, &refer_to, timeout, now) {
                        Ok(()) => {
                            tracing::info!(%target, %refer_to, "REFER sent");
                            if let Some(state) = self.calls.get_mut(&call) {
                                state.transferring_to = Some(target);
                            }
                        }
                        Err(e) => {
                            tracing::info!(%target, error = %e, "cannot transfer; taking the fallback");
                            let actions = self.ivr.on_transfer_failed(
                                call,
                                TransferFailure::Unavailable,
                                now,
                            );
                            self.apply(endpoint, actions, now);
                        }
                    }
                }
                CallAction::Bridge {
                    target,
                    uri,
                    addresses,
                    headers,
                    credentials,
                    ring_timeout,
                } => {
                    let request = OutgoingRequest {
                        target: uri,
                        addresses,
                        from_user: String::new(),
                        headers,
                        sdp: Bytes::new(),
                        credentials,
                        ring_timeout,
                        origin: Origin::Call(call),
                    };
                    self.start_bridge(endpoint, call, target, request, now);
                }
            }
        }
    }

    /// Places the agent leg of a bridged transfer from a fresh RTP port
    /// and plays ringback to the caller meanwhile.
    fn start_bridge(
        &mut self,
        endpoint: &mut Endpoint,
        call: CallHandle,
        target: String,
        mut request: OutgoingRequest,
        now: Instant,
    ) {
        let Some(state) = self.calls.get(&call) else {
            return;
        };
        let _span = tracing::info_span!("call", call_id = %state.call_id).entered();
        let address = state.local.address;
        present_caller(&state.identity, &mut request);
        let socket = match self.ports.allocate(address.is_ipv6()) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port for the agent leg; taking the fallback");
                return self.bridge_failed(endpoint, call, TransferFailure::Unavailable, now);
            }
        };
        let Ok(rtp_port) = socket.local_addr().map(|a| a.port()) else {
            return self.bridge_failed(endpoint, call, TransferFailure::Unavailable, now);
        };
        let local = LocalMedia {
            address,
            rtp_port,
            session_id: rand::random::<u32>().into(),
            session_version: 1,
            srtp_key: MasterKey::generate(),
        };
        let srtp = self.settings.srtp_targets.contains(&target);
        request.sdp = Bytes::from(sdp::offer(
            &self.settings.policy_for(srtp),
            &local,
            Direction::SendRecv,
        ));
        match endpoint.call_out(request, now) {
            Ok(leg) => {
                self.legs.insert(leg, call);
                if let Some(state) = self.calls.get_mut(&call) {
                    state.transferring_to = Some(target.clone());
                    state.bridge = Some(BridgeLeg {
                        leg,
                        target,
                        socket: Some(socket),
                        local,
                        srtp,
                        answered_at: None,
                    });
                }
                self.workers
                    .send(call, WorkerCommand::Play(relay::ringback()));
            }
            Err(e) => {
                tracing::info!(%target, error = %e, "cannot call the target; taking the fallback");
                self.bridge_failed(endpoint, call, TransferFailure::Unavailable, now);
            }
        }
    }

    /// The agent leg was not reached: the caller's ringback stops and the
    /// IVR takes the transfer node's fallback.
    fn bridge_failed(
        &mut self,
        endpoint: &mut Endpoint,
        call: CallHandle,
        failure: TransferFailure,
        now: Instant,
    ) {
        if let Some(state) = self.calls.get_mut(&call) {
            state.bridge = None;
            state.transferring_to = None;
        }
        self.workers.send(call, WorkerCommand::StopPlayback);
        let actions = self.ivr.on_transfer_failed(call, failure, now);
        self.apply(endpoint, actions, now);
    }

    /// The agent answered: its media joins the caller's on the caller's
    /// worker. An answer we cannot use ends the leg and fails the transfer.
    fn bridge_answered(
        &mut self,
        endpoint: &mut Endpoint,
        leg: CallHandle,
        answer: &Bytes,
        now: Instant,
    ) {
        let Some(&call) = self.legs.get(&leg) else {
            let _ = endpoint.hangup(leg, now);
            return;
        };
        let Some(state) = self.calls.get_mut(&call) else {
            return;
        };
        let _span = tracing::info_span!("call", call_id = %state.call_id).entered();
        let negotiated = state.bridge.as_ref().map(|bridge| {
            sdp::parse_body(answer).and_then(|answer| {
                sdp::accept_answer(
                    &answer,
                    &self.settings.policy_for(bridge.srtp),
                    &bridge.local,
                )
            })
        });
        let (Some(Ok(negotiated)), Some(bridge)) = (negotiated, state.bridge.as_mut()) else {
            tracing::info!("the target's answer has no usable media; ending its leg");
            self.legs.remove(&leg);
            let _ = endpoint.hangup(leg, now);
            return self.bridge_failed(endpoint, call, TransferFailure::Unavailable, now);
        };
        let Some(socket) = bridge.socket.take() else {
            return;
        };
        bridge.answered_at = Some(now);
        tracing::info!(
            target = %bridge.target,
            codec = ?negotiated.codec,
            srtp = ?negotiated.srtp.map(|keys| keys.suite),
            "agent answered; bridging"
        );
        state.transferred_to = state.transferring_to.take();
        state.hangup_reason = Some("transferred");
        let session = MediaSession::new(
            media_params(&negotiated),
            true,
            self.settings.media_timeout,
            now,
        );
        self.workers.send(
            call,
            WorkerCommand::Bridge {
                socket,
                session: Box::new(session),
                record: self.settings.record_bridged_calls,
            },
        );
    }

    /// Fires IVR timers and ends answered calls that reached the configured
    /// maximum duration: the IVR stops, the caller hears the time-limit
    /// prompt in the call's language, then BYE (at the prompt's end, or
    /// when its length has passed if the worker never says it finished).
    pub fn enforce_limits(&mut self, endpoint: &mut Endpoint, now: Instant) {
        let actions = self.ivr.on_timers(now);
        self.apply(endpoint, actions, now);
        while let Some(Reverse((at, call))) = self.limits.peek().copied() {
            if at > now {
                return;
            }
            self.limits.pop();
            let Some(state) = self.calls.get_mut(&call) else {
                continue;
            };
            if state.saying_goodbye {
                tracing::info!(call_id = %state.call_id, "time-limit prompt over; hanging up");
                let _ = endpoint.hangup(call, now);
                continue;
            }
            tracing::info!(call_id = %state.call_id, "call reached its time limit");
            state.hangup_reason = Some("time_limit");
            if state.bridge.is_some() {
                // Caller and agent are talking: both legs end (no prompt
                // would reach the caller over the relay).
                let _ = endpoint.hangup(call, now);
                continue;
            }
            state.saying_goodbye = true;
            let language = self.ivr.on_time_limit(call, now).unwrap_or(Language::Zh);
            let name = format!("{}/{}", language.code(), self.settings.time_limit_prompt);
            match self
                .prompts
                .get(&name)
                .filter(|_| !self.settings.time_limit_prompt.is_empty())
            {
                Some(prompt) => {
                    let length = prompt.duration();
                    self.workers.send(
                        call,
                        WorkerCommand::Play(Playlist {
                            items: vec![PlayItem::Prompt(prompt.clone())],
                            looping: false,
                            barge_in: false,
                        }),
                    );
                    self.limits
                        .push(Reverse((now + length + GOODBYE_GRACE, call)));
                }
                None => {
                    let _ = endpoint.hangup(call, now);
                }
            }
        }
    }

    pub fn on_endpoint_event(&mut self, endpoint: &mut Endpoint, event: Event, now: Instant) {
        match event {
            Event::IncomingCall(incoming) => self.answer(endpoint, *incoming, now),
            Event::CallConfirmed { call, sdp } => {
                if let Some(answer) = sdp {
                    self.apply_answer(endpoint, call, &answer, now);
                }
            }
            Event::Reoffer { call, sdp } => self.answer_reoffer(endpoint, call, sdp, now),
            Event::Info {
                call,
                content_type,
                body,
            } => match dtmf_info::parse(&content_type, &body) {
                Some(digit) => self
                    .workers
                    .send(call, WorkerCommand::KeyFromSignalling(digit)),
                None => {
                    tracing::debug!(call_id = %self.call_id(call), %content_type, "INFO without a key")
                }
            },
            Event::CallEnded { call, reason } => self.ended(endpoint, call, reason, now),
            // Counted by the endpoint's own statistics; recorded here.
            Event::CallRefused(refused) => self.ivr.rejected(
                refused.call_id,
                refused.caller.unwrap_or_default(),
                refused.dialled.unwrap_or_default(),
                refused.reason,
                now,
            ),
            Event::OutgoingAnswered { leg, sdp } if self.is_outbound(leg) => {
                self.outbound_answered(endpoint, leg, &sdp, now)
            }
            Event::OutgoingAnswered { leg, sdp } => self.bridge_answered(endpoint, leg, &sdp, now),
            Event::OutgoingFailed { leg, failure } if self.is_outbound(leg) => {
                self.outbound_failed(leg, failure)
            }
            Event::OutgoingFailed { leg, failure } => {
                if let Some(call) = self.legs.remove(&leg) {
                    tracing::info!(call_id = %self.call_id(call), ?failure, "bridged transfer failed; taking the fallback");
                    self.bridge_failed(endpoint, call, bridge_failure(failure), now);
                }
            }
            Event::TransferSucceeded { call } => {
                if let Some(state) = self.calls.get_mut(&call) {
                    let target = state.transferring_to.take().unwrap_or_default();
                    tracing::info!(call_id = %state.call_id, %target, "transferred; hanging up the caller leg");
                    state.hangup_reason = Some("transferred");
                    state.transferred_to = Some(target);
                }
                let _ = endpoint.hangup(call, now);
            }
            Event::TransferFailed { call, reason } => {
                if let Some(state) = self.calls.get_mut(&call) {
                    let target = state.transferring_to.take().unwrap_or_default();
                    tracing::info!(
                        call_id = %state.call_id,
                        %target,
                        reason = reason.label(),
                        status = ?reason.status(),
                        "transfer failed; taking the fallback"
                    );
                }
                let actions = self
                    .ivr
                    .on_transfer_failed(call, refer_failure(reason), now);
                self.apply(endpoint, actions, now);
            }
        }
    }

    pub fn on_media_event(&mut self, endpoint: &mut Endpoint, event: CallMediaEvent, now: Instant) {
        let CallMediaEvent { call, event } = event;
        if let MediaEvent::Dtmf { digit, .. } = &event {
            self.outbound_key(call, *digit);
        }
        // A recording may end after its call (the caller hung up while
        // speaking): the IVR keeps it either way.
        let event = match event {
            MediaEvent::CallAudio(chunk) => {
                self.ivr.on_call_audio(call, *chunk);
                return;
            }
            MediaEvent::CallAudioEnd => {
                self.ivr.on_call_audio_end(call);
                return;
            }
            MediaEvent::Recorded(recording) => {
                tracing::info!(
                    call_id = self.calls.get(&call).map_or("-", |s| s.call_id.as_str()),
                    end = recording.end.code(),
                    ms = recording.duration().as_millis() as u64,
                    "recording ended"
                );
                let actions = self.ivr.on_recorded(call, *recording, now);
                self.apply(endpoint, actions, now);
                return;
            }
            other => other,
        };
        let Some(state) = self.calls.get(&call) else {
            return;
        };
        let call_id = state.call_id.clone();
        let _span = tracing::info_span!("call", call_id = %call_id).entered();
        match event {
            MediaEvent::Dtmf { digit, source } => {
                tracing::info!(%digit, source = source.label(), "key pressed");
                crate::metrics::dtmf(source);
                self.publish(CallEvent::Dtmf {
                    call_id,
                    digit,
                    source,
                });
                if state.bridge.is_some() || state.saying_goodbye {
                    // Keys during a bridged transfer are the agent's
                    // business, not the IVR's (and are not relayed); keys
                    // during the goodbye change nothing.
                    return;
                }
                let actions = self.ivr.on_key(call, digit, now);
                self.apply(endpoint, actions, now);
            }
            MediaEvent::PlaybackDone { interrupted } => {
                tracing::debug!(interrupted, "playback done");
                self.publish(CallEvent::PlaybackDone {
                    call_id,
                    interrupted,
                });
                if state.saying_goodbye {
                    // The goodbye has no barge-in: only its own end (not a
                    // stop of the prompt it replaced) ends the call.
                    if !interrupted {
                        tracing::info!("time-limit prompt played; hanging up");
                        let _ = endpoint.hangup(call, now);
                    }
                    return;
                }
                // An interrupted prompt was stopped by a key, which the
                // engine has already acted on.
                if !interrupted {
                    let actions = self.ivr.on_playback_done(call, now);
                    self.apply(endpoint, actions, now);
                }
            }
            MediaEvent::MediaTimeout => {
                tracing::info!(
                    timeout_s = self.settings.media_timeout.as_secs(),
                    "no RTP from the caller, ending the call"
                );
                if let Some(state) = self.calls.get_mut(&call) {
                    state.hangup_reason = Some("media_timeout");
                }
                let _ = endpoint.hangup(call, now);
            }
            MediaEvent::CallAudio(_) | MediaEvent::CallAudioEnd => {}
            MediaEvent::SpeechStarted => {
                let actions = self.ivr.on_speech_started(call, now);
                self.apply(endpoint, actions, now);
            }
            MediaEvent::Recorded(_) => {}
        }
    }

    fn ended(
        &mut self,
        endpoint: &mut Endpoint,
        call: CallHandle,
        reason: EndReason,
        now: Instant,
    ) {
        if let Some(caller) = self.legs.remove(&call) {
            // The agent hung up a bridged call: the caller goes too.
            if let Some(state) = self.calls.get_mut(&caller) {
                tracing::info!(call_id = %state.call_id, reason = reason.label(), "agent leg ended; hanging up the caller");
                state.hangup_reason = Some("transferred");
                if let Some(bridge) = state.bridge.as_mut() {
                    bridge.socket = None;
                }
            }
            let _ = endpoint.hangup(caller, now);
            return;
        }
        let mut transferred = false;
        if let Some(mut state) = self.calls.remove(&call) {
            if let Some(bridge) = state.bridge.take() {
                if self.legs.remove(&bridge.leg).is_some() {
                    // The caller ended first: BYE (or CANCEL) the agent leg.
                    let _ = endpoint.hangup(bridge.leg, now);
                }
                if let Some(answered) = bridge.answered_at {
                    let seconds = now.saturating_duration_since(answered).as_secs();
                    state.transferred_to =
                        Some(format!("{} (bridged, {seconds} s)", bridge.target));
                }
            }
            // A transferred caller may hang up before our BYE does.
            let reason = match (reason, state.hangup_reason) {
                _ if state.transferred_to.is_some() => "transferred",
                (EndReason::LocalHangup, Some(ours)) => ours,
                _ => reason.label(),
            };
            tracing::info!(call_id = %state.call_id, reason, "call ended");
            transferred = state.transferred_to.is_some();
            self.workers.send(call, WorkerCommand::End);
            let transfers_tried = self.ivr.end(call, reason, state.transferred_to.as_deref());
            crate::metrics::call_ended(reason, transfers_tried);
            self.publish(CallEvent::Ended {
                call_id: state.call_id,
                reason: reason.to_string(),
            });
        }
        self.outbound_ended(call, transferred);
    }

    /// Negotiates media and answers a new call, or rejects it with 488
    /// (no common codec) or 503 (no RTP port).
    fn answer(&mut self, endpoint: &mut Endpoint, incoming: IncomingCall, now: Instant) {
        let _span = tracing::info_span!("call", call_id = %incoming.call_id).entered();
        tracing::info!(
            from = incoming.caller.as_deref().unwrap_or("-"),
            dialled = incoming.dialled.as_deref().unwrap_or("-"),
            source = %incoming.flow.remote,
            "incoming call"
        );
        let identity = identity::caller_identity(
            &incoming.invite,
            incoming.flow.remote.ip(),
            &self.settings.asserted_identity_from,
        );
        for ignored in &identity.ignored {
            tracing::debug!(%ignored, "caller identity header not used");
        }
        if let Some((number, source)) = &identity.number {
            tracing::info!(%number, %source, private = identity.private, "caller's number");
        }
        let call = incoming.call;
        let dialled = incoming.dialled.clone().unwrap_or_default();
        let entry = if self.dialplans.is_empty() {
            None
        } else {
            match self.dialplans.entry(&dialled) {
                Some(entry) => Some(entry),
                None => {
                    tracing::info!(%dialled, "no dialplan for this number");
                    self.reject(
                        endpoint,
                        &incoming,
                        &identity,
                        (404, "no_dialplan"),
                        "no dialplan",
                        now,
                    );
                    return;
                }
            }
        };
        let offer = match incoming.offer.as_deref().map(sdp::parse_body).transpose() {
            Ok(offer) => offer,
            Err(e) => {
                tracing::info!(error = %e, "offer not readable");
                let (label, warning) = refusal(&e);
                self.reject_offer(endpoint, &incoming, &identity, label, &warning, now);
                return;
            }
        };
        let signalling = incoming.flow.local.ip();
        let offered = offer
            .as_ref()
            .and_then(|offer| offer.audio.as_ref())
            .and_then(|audio| audio.connection)
            .filter(|address| !address.is_unspecified());
        let Some(address) = self.media_address(signalling, offered) else {
            tracing::warn!(
                offered = ?offered,
                "the offer's media address is of the other IP family, we have no media address of that family \
                 (media.advertised_addresses or a specific media.rtp_bind/rtp_bind_v6), and symmetric RTP is off: \
                 refusing the call rather than sending nothing"
            );
            let warning = "301 hotline \"Incompatible network address formats\"";
            self.reject_offer(
                endpoint,
                &incoming,
                &identity,
                "address_family",
                warning,
                now,
            );
            return;
        };
        let socket = match self.ports.allocate(address.is_ipv6()) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port, refusing the call");
                self.reject(
                    endpoint,
                    &incoming,
                    &identity,
                    (503, "no_port"),
                    "no RTP port",
                    now,
                );
                return;
            }
        };
        let Ok(rtp_port) = socket.local_addr().map(|a| a.port()) else {
            self.reject(
                endpoint,
                &incoming,
                &identity,
                (503, "no_port"),
                "no RTP port",
                now,
            );
            return;
        };
        let local = LocalMedia {
            address,
            rtp_port,
            session_id: rand::random::<u32>().into(),
            session_version: 1,
            srtp_key: MasterKey::generate(),
        };
        let (body, params, offered_srtp) = match &offer {
            Some(offer) => match sdp::answer(offer, &self.settings.policy, &local) {
                Ok((answer, negotiated)) => (answer, media_params(&negotiated), false),
                Err(e) => {
                    tracing::info!(error = %e, srtp = self.settings.policy.srtp.code(), "offer not acceptable");
                    let (label, warning) = refusal(&e);
                    self.reject_offer(endpoint, &incoming, &identity, label, &warning, now);
                    return;
                }
            },
            // Offerless INVITE: we offer, and nothing is sent until the
            // answer arrives in the ACK.
            None => (
                sdp::offer(&self.settings.policy, &local, Direction::SendRecv),
                MediaParams {
                    codec: self.settings.policy.codecs[0],
                    payload_type: self.settings.policy.codecs[0].payload_type(),
                    telephone_event_pt: Some(self.settings.policy.telephone_event_pt),
                    ptime_ms: packet_time(self.settings.policy.ptime_ms),
                    remote: None,
                    direction: Direction::SendRecv,
                    srtp: None,
                },
                self.settings.policy.srtp == SrtpMode::Required,
            ),
        };
        if params.srtp.is_some() {
            tracing::info!(suite = ?params.srtp.map(|keys| keys.suite), "media is SRTP");
        }
        if params
            .remote
            .is_some_and(|remote| remote.is_ipv6() != address.is_ipv6())
        {
            tracing::warn!(
                offered = ?offered,
                answered = %address,
                "the offer's media address is of the other IP family and we have no media address of that family \
                 (media.advertised_addresses or a specific media.rtp_bind/rtp_bind_v6): \
                 answering in the signalling's family and sending to where the caller's RTP comes from"
            );
        }
        if endpoint.accept(call, Bytes::from(body), now).is_err() {
            return;
        }
        crate::metrics::call_setup(now.elapsed());
        let mut session = MediaSession::new(
            params,
            self.settings.symmetric_rtp,
            self.settings.media_timeout,
            now,
        );
        session.set_signalling_peer(incoming.flow.remote.ip());
        if self.settings.record_ivr_calls {
            session.start_taps();
        }
        self.workers.send(
            call,
            WorkerCommand::Start {
                socket,
                session: Box::new(session),
            },
        );
        match entry {
            Some(entry) => {
                let transfer = crate::ivr::transferred::from_invite(&incoming.invite);
                if transfer.is_transfer() {
                    tracing::info!(
                        referred_by = transfer.referred_by.as_deref().unwrap_or("-"),
                        ticket = %transfer.ticket,
                        "call transferred into the IVR"
                    );
                }
                self.ivr.start(
                    call,
                    incoming.call_id.clone(),
                    &identity,
                    dialled,
                    entry,
                    transfer,
                )
            }
            None => {
                if let Some(greeting) = self.greeting() {
                    self.workers.send(call, WorkerCommand::Play(greeting));
                }
                self.ivr.answered_without_plan(
                    call,
                    incoming.call_id.clone(),
                    identity.label(),
                    dialled,
                );
            }
        }
        let mut answered = Call::answered(incoming.call_id, local, identity);
        answered.offered_srtp = offered_srtp;
        answered.srtp_now = params.srtp.is_some();
        self.track_answered(call, answered, now);
    }

    /// Keeps an answered call (inbound or outbound): its state, its time
    /// limit, and the event for subscribers.
    fn track_answered(&mut self, handle: CallHandle, call: Call, now: Instant) {
        let call_id = call.call_id.clone();
        self.calls.insert(handle, call);
        self.limits
            .push(Reverse((now + self.settings.max_duration, handle)));
        self.publish(CallEvent::Answered { call_id });
    }

    /// Refuses a call with `status` and records it, with `cause` (and
    /// `label`, its metric reason).
    fn reject(
        &mut self,
        endpoint: &mut Endpoint,
        incoming: &IncomingCall,
        identity: &CallerIdentity,
        (status, label): (u16, &'static str),
        cause: &str,
        now: Instant,
    ) {
        let _ = endpoint.reject(incoming.call, status, now);
        crate::metrics::call_rejected(label);
        crate::metrics::call_setup(now.elapsed());
        self.ivr.rejected(
            incoming.call_id.clone(),
            identity.label(),
            incoming.dialled.clone().unwrap_or_default(),
            format!("{status} {cause}"),
            now,
        );
    }

    /// Refuses an offer with 488 and a Warning saying why.
    fn reject_offer(
        &mut self,
        endpoint: &mut Endpoint,
        incoming: &IncomingCall,
        identity: &CallerIdentity,
        label: &'static str,
        warning: &str,
        now: Instant,
    ) {
        let _ = endpoint.reject_with_warning(incoming.call, 488, Some(warning), now);
        crate::metrics::call_rejected(label);
        crate::metrics::call_setup(now.elapsed());
        self.ivr.rejected(
            incoming.call_id.clone(),
            identity.label(),
            incoming.dialled.clone().unwrap_or_default(),
            format!("488 {warning}"),
            now,
        );
    }

    /// Our media address for a call whose signalling arrived at
    /// `signalling` and whose offer puts its media at `offered`: one of the
    /// offer's family when we have one, else (with symmetric RTP, which
    /// then learns the caller's real address) the signalling's family;
    /// `None` when neither can work.
    fn media_address(&self, signalling: IpAddr, offered: Option<IpAddr>) -> Option<IpAddr> {
        let ipv6 = offered.map_or(signalling.is_ipv6(), |address| address.is_ipv6());
        let of_family = |address: &IpAddr| address.is_ipv6() == ipv6;
        let configured = self
            .settings
            .media_addresses
            .iter()
            .copied()
            .find(of_family)
            .or(self.settings.advertised.filter(of_family));
        if let Some(address) = configured {
            return Some(address);
        }
        if signalling.is_ipv6() == ipv6 {
            return Some(signalling);
        }
        if let Some(bind) = self.ports.specific_bind(ipv6) {
            return Some(bind);
        }
        // No address of the offer's family: stay in the signalling's, where
        // the caller's RTP must then arrive (and we latch to it).
        let fallback = self
            .settings
            .media_addresses
            .iter()
            .copied()
            .find(|address| address.is_ipv6() == signalling.is_ipv6())
            .unwrap_or(signalling);
        self.settings.symmetric_rtp.then_some(fallback)
    }

    fn greeting(&self) -> Option<Playlist> {
        let items: Vec<PlayItem> = self
            .settings
            .greeting
            .iter()
            .filter_map(|name| self.prompts.get(name))
            .map(|prompt| PlayItem::Prompt(prompt.clone()))
            .collect();
        (!items.is_empty()).then_some(Playlist {
            items,
            looping: self.settings.loop_greeting,
            barge_in: true,
        })
    }

    fn answer_reoffer(
        &mut self,
        endpoint: &mut Endpoint,
        call: CallHandle,
        offer: Option<Bytes>,
        now: Instant,
    ) {
        if self.legs.contains_key(&call) {
            return self.answer_agent_reoffer(endpoint, call, offer, now);
        }
        let Some(state) = self.calls.get_mut(&call) else {
            let _ = endpoint.reject(call, 481, now);
            return;
        };
        let _span = tracing::info_span!("call", call_id = %state.call_id).entered();
        state.local.session_version += 1;
        let local = state.local;
        let policy = self.settings.policy_for(state.srtp_now);
        if offer.is_none() {
            state.offered_srtp = policy.srtp == SrtpMode::Required;
        }
        if let Some(negotiated) = answer_offer(endpoint, &policy, call, &local, offer, now) {
            tracing::info!(direction = ?negotiated.direction, srtp = negotiated.srtp.is_some(), "media renegotiated");
            state.srtp_now = negotiated.srtp.is_some();
            self.workers
                .send(call, WorkerCommand::Update(media_params(&negotiated)));
        }
    }

    /// A re-INVITE or UPDATE on a bridged transfer's agent leg: PBXs send
    /// them to put the caller on hold, to resume, or to move the media.
    /// Answered from the leg's own media; the relay follows the new
    /// parameters (hold stops what we send the agent, as for a caller).
    fn answer_agent_reoffer(
        &mut self,
        endpoint: &mut Endpoint,
        leg: CallHandle,
        offer: Option<Bytes>,
        now: Instant,
    ) {
        let Some(&call) = self.legs.get(&leg) else {
            return;
        };
        let Some(bridge) = self.calls.get_mut(&call).and_then(|c| c.bridge.as_mut()) else {
            let _ = endpoint.reject(leg, 481, now);
            return;
        };
        bridge.local.session_version += 1;
        let local = bridge.local;
        let policy = self.settings.policy_for(bridge.srtp);
        if let Some(negotiated) = answer_offer(endpoint, &policy, leg, &local, offer, now) {
            tracing::info!(direction = ?negotiated.direction, "agent leg renegotiated its media");
            self.workers
                .send(call, WorkerCommand::UpdateAgent(media_params(&negotiated)));
        }
    }

    fn apply_answer(
        &mut self,
        endpoint: &mut Endpoint,
        call: CallHandle,
        answer: &Bytes,
        now: Instant,
    ) {
        // The answer to an offer we made in a 2xx: on an agent leg it is
        // the bridged caller's worker that holds that leg's media.
        let (worker_call, update): (CallHandle, fn(MediaParams) -> WorkerCommand) =
            match self.legs.get(&call) {
                Some(&caller) => (caller, WorkerCommand::UpdateAgent),
                None => (call, WorkerCommand::Update),
            };
        // The offer this answers, and our media it was made from.
        let offered = match self.legs.get(&call) {
            Some(caller) => self
                .calls
                .get(caller)
                .and_then(|state| state.bridge.as_ref())
                .map(|bridge| (bridge.srtp, bridge.local)),
            None => self
                .calls
                .get(&call)
                .map(|state| (state.offered_srtp, state.local)),
        };
        let Some((srtp, local)) = offered else {
            return;
        };
        match sdp::parse_body(answer)
            .and_then(|answer| sdp::accept_answer(&answer, &self.settings.policy_for(srtp), &local))
        {
            Ok(negotiated) => {
                if let Some(state) = self.calls.get_mut(&call) {
                    state.srtp_now = negotiated.srtp.is_some();
                }
                self.workers
                    .send(worker_call, update(media_params(&negotiated)))
            }
            Err(e) => {
                tracing::info!(call_id = %self.call_id(call), error = %e, "answer in ACK not usable, ending the call");
                let _ = endpoint.hangup(call, now);
            }
        }
    }
}

/// How long after the time-limit prompt's length the call is hung up on
/// even if the media worker has not reported the prompt done.
const GOODBYE_GRACE: Duration = Duration::from_secs(2);

/// Presents the caller to a bridged transfer's target: their number in
/// From and P-Asserted-Identity (E.164 `tel:` URI, when the number has
/// one), or, when they asked for privacy, From `anonymous` with the
/// asserted identity marked `Privacy: id` (RFC 3325 §9.3: the agents'
/// side is inside the trust domain and may see it, and must not pass it
/// on). A caller without a known number is presented as they presented
/// themselves (their From user).
fn present_caller(identity: &CallerIdentity, request: &mut OutgoingRequest) {
    request.from_user = if identity.private {
        "anonymous".to_string()
    } else {
        identity.label()
    };
    let Some(phone) = identity.phone() else {
        return;
    };
    if let Some(e164) = phone.e164() {
        request
            .headers
            .push(("P-Asserted-Identity".into(), format!("<tel:{e164}>")));
        if identity.private {
            request.headers.push(("Privacy".into(), "id".into()));
        }
    }
}

/// Answers a re-INVITE or UPDATE on `handle` from our media `local`: an
/// offer of our own when it carried none (RFC 3261 §14.2), our answer, or
/// 488 when nothing in its offer is acceptable. The negotiated media when
/// its offer was answered.
fn answer_offer(
    endpoint: &mut Endpoint,
    policy: &MediaPolicy,
    handle: CallHandle,
    local: &LocalMedia,
    offer: Option<Bytes>,
    now: Instant,
) -> Option<NegotiatedMedia> {
    let Some(offer) = offer else {
        let body = sdp::offer(policy, local, Direction::SendRecv);
        let _ = endpoint.accept(handle, Bytes::from(body), now);
        return None;
    };
    match sdp::parse_body(&offer).and_then(|offer| sdp::answer(&offer, policy, local)) {
        Ok((answer, negotiated)) => {
            let _ = endpoint.accept(handle, Bytes::from(answer), now);
            Some(negotiated)
        }
        Err(e) => {
            tracing::info!(error = %e, "re-offer not acceptable");
            let _ = endpoint.reject(handle, 488, now);
            None
        }
    }
}

fn media_params(negotiated: &NegotiatedMedia) -> MediaParams {
    MediaParams {
        codec: negotiated.codec,
        payload_type: negotiated.payload_type,
        telephone_event_pt: negotiated.telephone_event_pt,
        ptime_ms: packet_time(negotiated.ptime_ms),
        remote: negotiated.remote_rtp,
        direction: negotiated.direction,
        srtp: negotiated.srtp,
    }
}

/// The metric label and the Warning (RFC 3261 §20.43) for an offer we
/// refuse with 488.
fn refusal(error: &SdpError) -> (&'static str, String) {
    let (label, code) = match error {
        SdpError::SrtpRequired | SdpError::SrtpOff => ("srtp", 302),
        SdpError::UnsupportedProtocol(_) => ("codec", 302),
        SdpError::NoUsableCrypto { .. } => ("srtp", 399),
        SdpError::NoCommonCodec { .. } => ("codec", 305),
        SdpError::NoAudio => ("codec", 304),
        SdpError::Malformed { .. } | SdpError::InvalidPolicy(_) => ("sdp", 399),
    };
    // A Warning's text is a quoted string: no quotes or backslashes inside.
    let text: String = error
        .to_string()
        .chars()
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .collect();
    (label, format!("{code} hotline \"{text}\""))
}

impl CallSettings {
    /// The media policy for one leg: SRTP required when the leg must be
    /// SRTP (a secure target, a call already SRTP), else as configured.
    fn policy_for(&self, srtp: bool) -> MediaPolicy {
        let mut policy = self.policy.clone();
        if srtp {
            policy.srtp = SrtpMode::Required;
        }
        policy
    }
}

/// The workers tick every 20 ms, so we send 20, 40 or 60 ms packets:
/// the asked packet time rounded to one of those.
fn packet_time(asked_ms: u32) -> u32 {
    (asked_ms.div_ceil(20) * 20).clamp(20, 60)
}
