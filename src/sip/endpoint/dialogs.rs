//! Requests inside a dialog: BYE, re-INVITE and UPDATE offers, INFO,
//! NOTIFY for a transfer's progress, the ACK of our 2xx, and finding the
//! dialog a request belongs to.

use super::*;

impl Endpoint {
    pub(super) fn handle_in_dialog(
        &mut self,
        request: Message,
        method: Method,
        key: TxKey,
        flow: Flow,
        to_tag: &str,
        now: Instant,
    ) {
        let dialog_id = DialogId {
            call_id: request.header("Call-ID").unwrap_or_default().to_string(),
            local_tag: to_tag.to_string(),
            remote_tag: request
                .header("From")
                .and_then(|f| NameAddr::parse(f).ok())
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default(),
        };
        let Some(&handle) = self.dialogs.get(&dialog_id) else {
            return self.reply_new(&request, key, flow, 481, &[], now);
        };
        let unsupported = unsupported_extensions(&request);
        if !unsupported.is_empty() {
            let headers = [("Unsupported", unsupported.as_str())];
            return self.reply_new(&request, key, flow, 420, &headers, now);
        }
        if method == Method::Options {
            return self.reply_new(&request, key, flow, 200, &capabilities(), now);
        }
        let seq = request
            .header("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map_or(0, |c| c.seq);
        let in_order = self
            .calls
            .get_mut(&handle)
            .is_some_and(|call| call.dialog.accept_remote_seq(seq).is_ok());
        if !in_order {
            return self.reply_new(&request, key, flow, 500, &[], now);
        }
        match method {
            Method::Bye => {
                self.reply_new(&request, key, flow, 200, &[], now);
                self.end_call(handle, EndReason::RemoteBye, now);
            }
            Method::Invite | Method::Update => {
                self.handle_reoffer(request, method, key, flow, handle, now)
            }
            Method::Info => {
                let content_type = request
                    .header("Content-Type")
                    .unwrap_or_default()
                    .to_string();
                let media_type = crate::sip::message::media_type(&content_type);
                let known =
                    ["application/dtmf-relay", "application/dtmf"].contains(&media_type.as_str());
                if !request.body.is_empty() && !known {
                    return self.reply_new(&request, key, flow, 415, &[("Accept", ACCEPT)], now);
                }
                self.reply_new(&request, key, flow, 200, &[], now);
                self.events.push_back(Event::Info {
                    call: handle,
                    content_type,
                    body: request.body.clone(),
                });
            }
            Method::Notify => self.handle_notify(&request, key, flow, handle, now),
            _ => self.reply_new(&request, key, flow, 405, &[("Allow", ALLOW)], now),
        }
    }

    pub(super) fn handle_reoffer(
        &mut self,
        request: Message,
        method: Method,
        key: TxKey,
        flow: Flow,
        handle: CallHandle,
        now: Instant,
    ) {
        let busy = self
            .calls
            .get(&handle)
            .is_some_and(|c| c.pending.is_some() || c.state == CallState::Offered);
        if busy {
            // RFC 3261 §14.2: an offer while ours is still being answered.
            return self.reply_new(&request, key, flow, 500, &[("Retry-After", "1")], now);
        }
        if let Err((code, header)) = check_session_body(&request) {
            return self.reply_new(&request, key, flow, code, &header, now);
        }
        if method == Method::Update && request.body.is_empty() {
            // An UPDATE without an offer only refreshes the target.
            if let Some(call) = self.calls.get_mut(&handle) {
                call.dialog.refresh_target(&request);
            }
            return self.reply_new(&request, key, flow, 200, &[], now);
        }
        let tx = self.start_server_tx(&request, key, flow, None, Some(handle));
        if method == Method::Invite {
            // The application answers when it likes (RFC 3261 §17.2.1).
            self.respond_in_tx(tx, &request, 100, &[], None, now);
        }
        let sdp = (!request.body.is_empty()).then(|| request.body.clone());
        if let Some(call) = self.calls.get_mut(&handle) {
            call.dialog.refresh_target(&request);
            call.pending = Some(match method {
                Method::Invite => PendingOffer::Invite { tx, request },
                _ => PendingOffer::Update { tx, request },
            });
        }
        self.events.push_back(Event::Reoffer { call: handle, sdp });
    }

    /// A NOTIFY in a call's dialog: the transferee's report on our REFER
    /// (RFC 3515 §2.4.4). Answered 200 when it is one; a final status in
    /// its sipfrag (or the end of the subscription) ends the transfer.
    pub(super) fn handle_notify(
        &mut self,
        request: &Message,
        key: TxKey,
        flow: Flow,
        handle: CallHandle,
        now: Instant,
    ) {
        if !request.header("Event").is_some_and(refer::is_refer_event) {
            return self.reply_new(request, key, flow, 489, &[("Allow-Events", "refer")], now);
        }
        let Some(state) = self.calls.get(&handle).and_then(|c| c.transfer) else {
            // No REFER of ours, so no subscription (RFC 6665 §4.1.3).
            return self.reply_new(request, key, flow, 481, &[], now);
        };
        let status = if request.body.is_empty() {
            None
        } else {
            let content_type = request.header("Content-Type").unwrap_or_default();
            if crate::sip::message::media_type(content_type) != "message/sipfrag" {
                let accept = [("Accept", "message/sipfrag")];
                return self.reply_new(request, key, flow, 415, &accept, now);
            }
            match refer::sipfrag_status(&request.body) {
                Some(code) => Some(code),
                None => return self.reply_new(request, key, flow, 400, &[], now),
            }
        };
        let terminated = request
            .header("Subscription-State")
            .is_some_and(refer::is_terminated);
        self.reply_new(request, key, flow, 200, &[], now);
        if state == TransferState::Finished {
            return;
        }
        tracing::debug!(?status, terminated, "transfer progress");
        match status {
            Some(200..=299) => self.finish_transfer(handle, None),
            Some(code) if code >= 300 => {
                self.finish_transfer(handle, Some(TransferFailure::TargetFailed(code)))
            }
            _ if terminated => self.finish_transfer(handle, Some(TransferFailure::Abandoned)),
            // A NOTIFY means the REFER was accepted, even if its 202 is
            // still on the way (RFC 3515 §2.4.4).
            _ => {
                if let Some(call) = self.calls.get_mut(&handle) {
                    call.transfer = Some(TransferState::Accepted);
                }
            }
        }
    }

    /// The answer to our REFER: a 2xx accepts it, a final error fails the
    /// transfer.
    pub(super) fn on_refer_response(&mut self, handle: CallHandle, code: u16) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        match (call.transfer, code) {
            (Some(TransferState::Referred), 200..=299) => {
                call.transfer = Some(TransferState::Accepted);
            }
            (Some(TransferState::Referred | TransferState::Accepted), 300..) => {
                self.finish_transfer(handle, Some(TransferFailure::Refused(code)));
            }
            _ => {}
        }
    }

    /// Reports a running transfer's outcome (`None`: it succeeded) once.
    pub(super) fn finish_transfer(&mut self, handle: CallHandle, failure: Option<TransferFailure>) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if !matches!(
            call.transfer,
            Some(TransferState::Referred | TransferState::Accepted)
        ) {
            return;
        }
        call.transfer = Some(TransferState::Finished);
        call.transfer_generation += 1;
        let call_id = &call.dialog.id.call_id;
        match failure {
            None => {
                tracing::info!(%call_id, "transfer succeeded");
                self.events
                    .push_back(Event::TransferSucceeded { call: handle });
            }
            Some(reason) => {
                tracing::info!(%call_id, reason = reason.label(), status = ?reason.status(), "transfer failed");
                self.events.push_back(Event::TransferFailed {
                    call: handle,
                    reason,
                });
            }
        }
    }

    pub(super) fn handle_ack(&mut self, ack: &Message, key: &TxKey, now: Instant) {
        if let Some(&id) = self.tx_index.get(&key.with_method("INVITE")) {
            if let Some(Tx {
                machine: Machine::ServerInvite(m),
                ..
            }) = self.txs.get_mut(&id)
            {
                // An ACK on the INVITE's own branch acknowledges a non-2xx;
                // after a 2xx it is a (non-compliant) 2xx ACK for the dialog.
                if m.state != crate::sip::transaction::ServerInviteState::Accepted {
                    let step = m.on_ack(now);
                    self.apply_step(id, step, now);
                    return;
                }
            }
        }
        let Some(handle) = self.dialog_of(ack) else {
            return;
        };
        let seq = ack
            .header("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map(|c| c.seq);
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let Some(awaiting) = call.awaiting_ack.as_ref().filter(|a| Some(a.cseq) == seq) else {
            return;
        };
        let sdp = (awaiting.offer_in_2xx && !ack.body.is_empty()).then(|| ack.body.clone());
        call.awaiting_ack = None;
        call.ack_generation += 1;
        call.state = CallState::Confirmed;
        let hangup = call.hangup_after_ack;
        tracing::debug!(call_id = %call.dialog.id.call_id, "call confirmed");
        self.events
            .push_back(Event::CallConfirmed { call: handle, sdp });
        if hangup {
            self.send_bye(handle, now);
            self.end_call(handle, EndReason::LocalHangup, now);
        }
    }

    pub(super) fn dialog_of(&self, request: &Message) -> Option<CallHandle> {
        let to = NameAddr::parse(request.header("To")?).ok()?;
        let from = NameAddr::parse(request.header("From")?).ok()?;
        let id = DialogId {
            call_id: request.header("Call-ID")?.to_string(),
            local_tag: to.tag()?.to_string(),
            remote_tag: from.tag().unwrap_or_default().to_string(),
        };
        self.dialogs.get(&id).copied()
    }
}
