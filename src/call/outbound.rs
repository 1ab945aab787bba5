//! The call loop's side of outbound calls (`crate::outbound`): a call the
//! worker asked for is placed from a fresh RTP port; once answered it is a
//! call like any other (media, keys, the IVR at the campaign's dialplan
//! entry with the job's ticket loaded, limits, records), and when it ends,
//! or fails to connect, the worker hears how ([`AttemptEnded`]).

use super::{media_params, Call, Calls};
use crate::ivr::transferred::{TicketReference, TransferContext};
use crate::media::session::MediaSession;
use crate::media::worker::WorkerCommand;
use crate::outbound::schedule::{Cause, Purpose};
use crate::outbound::worker::{AttemptEnded, PlaceCall};
use crate::phone::PhoneNumber;
use crate::sip::endpoint::{CallHandle, Endpoint, Origin, OutgoingRequest};
use crate::sip::identity::{CallerIdentity, IdentitySource};
use crate::sip::sdes::MasterKey;
use crate::sip::sdp::{self, Direction, LocalMedia};
use crate::sip::uac::UacFailure;
use bytes::Bytes;
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

/// A call placed for the worker, from its INVITE until it ends.
pub(super) struct OutboundLeg {
    place: PlaceCall,
    sip_call_id: String,
    /// The RTP socket until the media worker takes it at the answer.
    socket: Option<UdpSocket>,
    local: LocalMedia,
    answered: bool,
    /// The first key the customer pressed.
    key: Option<char>,
}

impl Calls {
    /// Places `place` from `origin` (the SIP listener and local address the
    /// transports chose for its trunk; `None`: there is none of the
    /// trunk's transport and address family).
    pub fn place_outbound(
        &mut self,
        endpoint: &mut Endpoint,
        place: PlaceCall,
        origin: Option<(usize, SocketAddr)>,
        now: Instant,
    ) {
        let job = place.job;
        let Some((listener, local_sip)) = origin else {
            tracing::warn!(job, uri = %place.uri, "no SIP listener of the trunk's transport and address family");
            return self.report(job, String::new(), None, Cause::TrunkFailure);
        };
        let Some(address) = self.media_address(local_sip.ip(), None) else {
            tracing::warn!(job, "no media address of the trunk's address family");
            return self.report(job, String::new(), None, Cause::TrunkFailure);
        };
        let socket = match self.ports.allocate(address.is_ipv6()) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(job, error = %e, "no RTP port for an outbound call");
                return self.report(job, String::new(), None, Cause::TrunkFailure);
            }
        };
        let Ok(rtp_port) = socket.local_addr().map(|a| a.port()) else {
            return self.report(job, String::new(), None, Cause::TrunkFailure);
        };
        let local = LocalMedia {
            address,
            rtp_port,
            session_id: rand::random::<u32>().into(),
            session_version: 1,
            srtp_key: MasterKey::generate(),
        };
        let headers = place
            .ticket
            .map(|ticket| vec![("X-Ticket-Number".to_string(), ticket.to_string())])
            .unwrap_or_default();
        let request = OutgoingRequest {
            target: place.uri.clone(),
            addresses: place.addresses.clone(),
            from_user: place.caller_id.clone(),
            headers,
            sdp: Bytes::from(sdp::offer(
                &self.settings.policy_for(false),
                &local,
                Direction::SendRecv,
            )),
            credentials: place.credentials.clone(),
            ring_timeout: place.ring_timeout,
            origin: Origin::Listener {
                listener,
                local: local_sip,
            },
        };
        match endpoint.call_out(request, now) {
            Ok(leg) => {
                let sip_call_id = endpoint.call_id_of(leg).unwrap_or_default();
                tracing::info!(job, %sip_call_id, uri = %place.uri, "outbound call placed");
                self.outbound.insert(
                    leg,
                    OutboundLeg {
                        place,
                        sip_call_id,
                        socket: Some(socket),
                        local,
                        answered: false,
                        key: None,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(job, uri = %place.uri, error = %e, "cannot place the outbound call");
                self.report(job, String::new(), None, Cause::TrunkFailure);
            }
        }
    }

    /// Whether `leg` is an outbound call of ours (not a bridge's agent leg).
    pub(super) fn is_outbound(&self, leg: CallHandle) -> bool {
        self.outbound.contains_key(&leg)
    }

    /// The customer answered: media starts and the IVR runs the entry.
    pub(super) fn outbound_answered(
        &mut self,
        endpoint: &mut Endpoint,
        leg: CallHandle,
        answer: &Bytes,
        now: Instant,
    ) {
        let Some(outbound) = self.outbound.get_mut(&leg) else {
            return;
        };
        let _span = tracing::info_span!("call", call_id = %outbound.sip_call_id).entered();
        let negotiated = sdp::parse_body(answer).and_then(|answer| {
            sdp::accept_answer(&answer, &self.settings.policy_for(false), &outbound.local)
        });
        let entry = self.dialplans.entry(&outbound.place.entry);
        let (Ok(negotiated), Some(socket), Some(entry)) =
            (negotiated, outbound.socket.take(), entry)
        else {
            tracing::warn!(entry = %outbound.place.entry, "answered, but the answer has no usable media or the dialplan entry is missing; hanging up");
            let _ = endpoint.hangup(leg, now);
            return;
        };
        outbound.answered = true;
        tracing::info!(job = outbound.place.job, codec = ?negotiated.codec, "outbound call answered");
        let mut session = MediaSession::new(
            media_params(&negotiated),
            self.settings.symmetric_rtp,
            self.settings.media_timeout,
            now,
        );
        if let Some(remote) = outbound.place.addresses.first() {
            session.set_signalling_peer(remote.ip());
        }
        if self.settings.record_ivr_calls {
            session.start_taps();
        }
        self.workers.send(
            leg,
            WorkerCommand::Start {
                socket,
                session: Box::new(session),
            },
        );
        let number = outbound.place.number.clone();
        let identity = CallerIdentity {
            from_user: Some(number.clone()),
            number: PhoneNumber::parse(&number)
                .ok()
                .map(|phone| (phone, IdentitySource::Dialled)),
            private: false,
            ignored: Vec::new(),
        };
        let context = TransferContext {
            ticket: outbound
                .place
                .ticket
                .map_or(TicketReference::None, TicketReference::Valid),
            referred_by: Some("outbound".to_string()),
        };
        let call_id = outbound.sip_call_id.clone();
        let dialled = format!("outbound:{}", outbound.place.purpose.code());
        let local = outbound.local;
        self.ivr
            .start(leg, call_id.clone(), &identity, dialled, entry, context);
        self.ivr.mark_outbound(leg);
        self.track_answered(leg, Call::answered(call_id, local, identity), now);
    }

    /// A key on an outbound call: the first one is the attempt's.
    pub(super) fn outbound_key(&mut self, leg: CallHandle, digit: char) {
        if let Some(outbound) = self.outbound.get_mut(&leg) {
            outbound.key.get_or_insert(digit);
        }
    }

    /// The call never connected.
    pub(super) fn outbound_failed(&mut self, leg: CallHandle, failure: UacFailure) {
        let Some(outbound) = self.outbound.remove(&leg) else {
            return;
        };
        let (status, cause) = match failure {
            UacFailure::Busy(status) | UacFailure::Failed(status) => {
                (Some(status), Cause::of_status(status))
            }
            UacFailure::NotAnswered => (None, Cause::NoAnswer),
            UacFailure::Unreachable => (None, Cause::TrunkFailure),
        };
        tracing::info!(job = outbound.place.job, call_id = %outbound.sip_call_id, ?failure, cause = cause.code(), "outbound call not connected");
        self.report(outbound.place.job, outbound.sip_call_id, status, cause);
    }

    /// An answered outbound call ended. A callback did its job if the
    /// customer reached an agent (`transferred`); other calls if the
    /// customer pressed a key. Otherwise it counts as not answered (an
    /// answering machine, silence through the prompt heard twice, or
    /// agents still busy).
    pub(super) fn outbound_ended(&mut self, leg: CallHandle, transferred: bool) {
        let Some(outbound) = self.outbound.remove(&leg) else {
            return;
        };
        let done = match outbound.place.purpose {
            Purpose::Callback => transferred,
            Purpose::Confirm | Purpose::Survey => outbound.key.is_some(),
        };
        let cause = match (outbound.answered, done) {
            (true, true) => Cause::Completed,
            (true, false) => Cause::AnsweredSilent,
            // Answered without usable media, or the entry is missing.
            (false, _) => Cause::TrunkFailure,
        };
        let ended = AttemptEnded {
            job: outbound.place.job,
            sip_call_id: outbound.sip_call_id,
            sip_status: Some(200),
            cause,
            key_pressed: outbound.key,
        };
        let _ = self.outbound_ended.send(ended);
    }

    fn report(&self, job: i64, sip_call_id: String, sip_status: Option<u16>, cause: Cause) {
        let _ = self.outbound_ended.send(AttemptEnded {
            job,
            sip_call_id,
            sip_status,
            cause,
            key_pressed: None,
        });
    }
}
