//! The call-control API the server drives: accept, reject, hang up,
//! transfer by REFER, and the in-dialog requests (BYE and the like)
//! the endpoint sends for a call.

use super::*;

impl Endpoint {
    /// Answers the pending INVITE (initial or re-INVITE) or UPDATE with 200
    /// and our SDP.
    pub fn accept(
        &mut self,
        handle: CallHandle,
        sdp: Bytes,
        now: Instant,
    ) -> Result<(), CallError> {
        let call = self.calls.get_mut(&handle).ok_or(CallError::NoSuchCall)?;
        let pending = call.pending.take().ok_or(CallError::NothingPending)?;
        let contact = contact_header(call.flow, &call.dialog);
        let mut headers = vec![
            ("Contact", contact.as_str()),
            ("Allow", ALLOW),
            ("Supported", ""),
        ];
        match pending {
            PendingOffer::Invite { tx, request } => {
                // RFC 3261 §12.1.1: the 2xx that sets up the dialog carries
                // the Record-Route of the request, so proxies stay in the path.
                let record_route: Vec<String> = request
                    .header_lines("Record-Route")
                    .map(str::to_string)
                    .collect();
                headers.extend(record_route.iter().map(|r| ("Record-Route", r.as_str())));
                let seq = request
                    .header("CSeq")
                    .and_then(|c| CSeq::parse(c).ok())
                    .map_or(0, |c| c.seq);
                let offer_in_2xx = request.body.is_empty();
                let bytes = self.respond_in_tx(tx, &request, 200, &headers, Some(sdp), now);
                let t1 = self.config.timers.t1;
                let timeout = self.config.timers.timeout();
                let Some(call) = self.calls.get_mut(&handle) else {
                    return Err(CallError::NoSuchCall);
                };
                if call.state == CallState::Offered {
                    self.stats.calls_answered += 1;
                    call.state = CallState::Accepted;
                }
                call.ack_generation += 1;
                call.awaiting_ack = Some(AwaitingAck {
                    response: bytes,
                    cseq: seq,
                    interval: t1,
                    offer_in_2xx,
                });
                let generation = call.ack_generation;
                // The 2xx goes end to end, possibly over UDP hops further on,
                // so it is retransmitted "even if the transport at the UAS is
                // reliable" (RFC 3261 §13.3.1.4).
                self.arm(
                    now + t1,
                    TimerTarget::Call(handle, CallTimer::Retransmit2xx, generation),
                );
                self.arm(
                    now + timeout,
                    TimerTarget::Call(handle, CallTimer::AckTimeout, generation),
                );
            }
            PendingOffer::Update { tx, request } => {
                self.respond_in_tx(tx, &request, 200, &headers, Some(sdp), now);
            }
        }
        Ok(())
    }

    /// Refuses the pending offer with `code`. For the initial INVITE this
    /// ends the call; for a re-INVITE or UPDATE the call goes on as before.
    pub fn reject(&mut self, handle: CallHandle, code: u16, now: Instant) -> Result<(), CallError> {
        self.reject_with_warning(handle, code, None, now)
    }

    /// [`Endpoint::reject`] with a `Warning` header (RFC 3261 §20.43),
    /// e.g. `302 hotline "SRTP is required"`, saying why an offer was
    /// refused.
    pub fn reject_with_warning(
        &mut self,
        handle: CallHandle,
        code: u16,
        warning: Option<&str>,
        now: Instant,
    ) -> Result<(), CallError> {
        let call = self.calls.get(&handle).ok_or(CallError::NoSuchCall)?;
        if call.pending.is_none() {
            return Err(CallError::NothingPending);
        }
        let initial = call.state == CallState::Offered;
        match warning {
            Some(warning) => {
                self.finish_pending_invite_with(handle, code, &[("Warning", warning)], now)
            }
            None => self.finish_pending_invite(handle, code, now),
        }
        if initial {
            self.end_call(handle, EndReason::Rejected(code), now);
        }
        Ok(())
    }

    /// Ends a call from our side: a final error before the answer, BYE
    /// after it (deferred until the ACK if it has not arrived yet).
    pub fn hangup(&mut self, handle: CallHandle, now: Instant) -> Result<(), CallError> {
        if !self.calls.contains_key(&handle) {
            // A call we placed that is not answered yet: CANCEL it.
            let outgoing = self
                .outgoing
                .get_mut(&handle)
                .ok_or(CallError::NoSuchCall)?;
            let step = outgoing.uac.on_abandon();
            self.apply_uac_step(handle, step, None, now);
            return Ok(());
        }
        let call = self.calls.get_mut(&handle).ok_or(CallError::NoSuchCall)?;
        match call.state {
            CallState::Offered => self.reject(handle, 480, now),
            CallState::Accepted => {
                call.hangup_after_ack = true;
                Ok(())
            }
            CallState::Confirmed => {
                self.finish_pending_invite(handle, 487, now);
                self.send_bye(handle, now);
                self.end_call(handle, EndReason::LocalHangup, now);
                Ok(())
            }
        }
    }

    /// Starts a blind transfer (RFC 3515): sends REFER in the call's dialog
    /// to the caller's Contact, with `refer_to` (a name-addr; see
    /// [`refer::refer_to`]) and our address as Referred-By. The outcome
    /// comes as [`Event::TransferSucceeded`] or [`Event::TransferFailed`],
    /// the latter also when no final NOTIFY arrives within `timeout`.
    pub fn refer(
        &mut self,
        handle: CallHandle,
        refer_to: &str,
        timeout: Duration,
        now: Instant,
    ) -> Result<(), CallError> {
        let call = self.calls.get_mut(&handle).ok_or(CallError::NoSuchCall)?;
        if call.state != CallState::Confirmed {
            return Err(CallError::NotEstablished);
        }
        if matches!(
            call.transfer,
            Some(TransferState::Referred | TransferState::Accepted)
        ) {
            return Err(CallError::TransferInProgress);
        }
        let referred_by = NameAddr::parse(&call.dialog.local_uri)
            .map(|ours| format!("<{}>", ours.uri))
            .unwrap_or_else(|_| format!("<sip:hotline@{}>", call.flow.local));
        let contact = contact_header(call.flow, &call.dialog);
        call.transfer = Some(TransferState::Referred);
        call.transfer_generation += 1;
        let generation = call.transfer_generation;
        let (mut request, flow) = self
            .in_dialog_request(handle, Method::Refer)
            .ok_or(CallError::NoSuchCall)?;
        request.push_header("Refer-To", refer_to);
        request.push_header("Referred-By", referred_by);
        request.push_header("Contact", contact);
        self.send_request(request, flow, Some(handle), now);
        self.arm(
            now + timeout,
            TimerTarget::Call(handle, CallTimer::TransferTimeout, generation),
        );
        Ok(())
    }

    /// The SIP Call-ID of a call or of a call we placed.
    pub fn call_id_of(&self, handle: CallHandle) -> Option<String> {
        if let Some(call) = self.calls.get(&handle) {
            return Some(call.dialog.id.call_id.clone());
        }
        self.outgoing
            .get(&handle)
            .and_then(|o| o.invite.header("Call-ID"))
            .map(str::to_string)
    }

    /// Sends a final non-2xx to the call's pending INVITE/UPDATE, if any.
    pub(super) fn finish_pending_invite(&mut self, handle: CallHandle, code: u16, now: Instant) {
        self.finish_pending_invite_with(handle, code, &[], now);
    }

    pub(super) fn finish_pending_invite_with(
        &mut self,
        handle: CallHandle,
        code: u16,
        headers: &[(&str, &str)],
        now: Instant,
    ) {
        let Some(pending) = self.calls.get_mut(&handle).and_then(|c| c.pending.take()) else {
            return;
        };
        let (tx, request) = match pending {
            PendingOffer::Invite { tx, request } | PendingOffer::Update { tx, request } => {
                (tx, request)
            }
        };
        self.respond_in_tx(tx, &request, code, headers, None, now);
    }

    /// Forgets a call. A request still waiting for the application's answer
    /// gets `487` first, so that its transaction ends too (RFC 3261 §15.1.2).
    pub(super) fn end_call(&mut self, handle: CallHandle, reason: EndReason, now: Instant) {
        self.finish_pending_invite(handle, 487, now);
        self.outgoing.remove(&handle);
        if let Some(call) = self.calls.remove(&handle) {
            self.dialogs.remove(&call.dialog.id);
            tracing::debug!(call_id = %call.dialog.id.call_id, reason = reason.label(), "call ended");
            self.events.push_back(Event::CallEnded {
                call: handle,
                reason,
            });
        }
    }

    pub(super) fn send_bye(&mut self, handle: CallHandle, now: Instant) {
        if let Some((bye, flow)) = self.in_dialog_request(handle, Method::Bye) {
            self.send_request(bye, flow, None, now);
        }
    }

    /// A new request in the call's dialog, and the flow it goes out on: to
    /// the first route or the remote target when that is an IP literal (on
    /// its transport), else back where the call came from. A dialog that
    /// runs over TLS stays on TLS whatever the target says: a request of a
    /// secure call never goes out in clear text.
    pub(super) fn in_dialog_request(
        &mut self,
        handle: CallHandle,
        method: Method,
    ) -> Option<(Message, Flow)> {
        let tls_local = self
            .calls
            .get(&handle)
            .map(|c| self.tls_local(c.flow.local));
        let call = self.calls.get_mut(&handle)?;
        let mut flow = call.flow;
        if let Some((address, transport)) = call.dialog.next_hop() {
            flow.remote = address;
            let wanted = match transport.as_deref() {
                Some("TLS") => Transport::Tls,
                Some("TCP") => Transport::Tcp,
                Some("UDP") => Transport::Udp,
                _ => flow.transport,
            };
            if wanted != flow.transport && flow.transport != Transport::Tls {
                flow.transport = wanted;
                flow.connection = None;
                if let (Transport::Tls, Some(local)) = (wanted, tls_local) {
                    flow.local = local;
                }
            }
        }
        let mut request = call.dialog.new_request(method);
        request.push_header("User-Agent", self.config.user_agent.clone());
        Some((request, flow))
    }

    /// Starts a non-INVITE client transaction for `request` (which has no
    /// Via yet), on behalf of `call` when its answer matters to the call.
    /// Requests too big for a datagram move to TCP.
    pub(super) fn send_request(
        &mut self,
        mut request: Message,
        mut flow: Flow,
        call: Option<CallHandle>,
        now: Instant,
    ) {
        let branch = new_branch();
        let method = request
            .method()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let via = |transport: Transport| our_via(transport.via_token(), flow.local, &branch);
        request.headers.insert(
            0,
            crate::sip::message::Header {
                name: "Via".to_string(),
                value: via(flow.transport),
            },
        );
        let mut bytes = request.to_bytes();
        if flow.transport == Transport::Udp && bytes.len() > UDP_MTU_LIMIT {
            flow.transport = Transport::Tcp;
            flow.connection = None;
            request.headers[0].value = via(Transport::Tcp);
            bytes = request.to_bytes();
        }
        let (machine, step) =
            ClientNonInvite::start(bytes, flow.transport.is_reliable(), self.config.timers, now);
        let id = self.next_id();
        let key = TxKey::Client { branch, method };
        self.tx_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                machine: Machine::ClientNonInvite(machine),
                key,
                flow,
                call,
                merge_key: None,
            },
        );
        self.apply_step(id, step, now);
    }

    /// Ends every call now: BYE to answered calls, 503 to unanswered ones.
    pub fn hangup_all(&mut self, now: Instant) {
        let handles: Vec<CallHandle> = self.calls.keys().copied().collect();
        for handle in handles {
            let state = self.calls.get(&handle).map(|c| c.state);
            match state {
                Some(CallState::Offered) => {
                    let _ = self.reject(handle, 503, now);
                }
                Some(CallState::Accepted) => {
                    if let Some(call) = self.calls.get_mut(&handle) {
                        call.awaiting_ack = None;
                        call.ack_generation += 1;
                        call.state = CallState::Confirmed;
                    }
                    let _ = self.hangup(handle, now);
                }
                Some(CallState::Confirmed) => {
                    let _ = self.hangup(handle, now);
                }
                None => {}
            }
        }
    }
}
