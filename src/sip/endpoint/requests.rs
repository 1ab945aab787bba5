//! Requests that start something: a new request's checks and its
//! server transaction, INVITE admission (a new call, or a refusal), and
//! CANCEL.

use super::*;

impl Endpoint {
    pub(super) fn handle_request(&mut self, request: Message, flow: Flow, now: Instant) {
        self.stats.requests_received += 1;
        let method = request.method().cloned().unwrap_or(Method::Ack);
        if !self.admission.is_trusted(flow.remote.ip()) {
            // Say no and nothing else: no Server, Allow or reason detail.
            // Only an INVITE is a refused call (not its ACK, not OPTIONS).
            if method == Method::Invite {
                self.stats.refused_acl += 1;
            }
            if method != Method::Ack {
                let tag = stateless_tag(&request);
                let response = response_to(&request, flow.remote, 403, "Forbidden", Some(&tag));
                self.send_stateless(response, flow);
            }
            return;
        }
        if let Err(rejection) = validate::check_request(&request) {
            self.stats.malformed += 1;
            tracing::debug!(source = %flow.remote, reason = %rejection.reason, "invalid request");
            if method != Method::Ack {
                let tag = stateless_tag(&request);
                let response = response_to(
                    &request,
                    flow.remote,
                    rejection.code,
                    &rejection.reason,
                    Some(&tag),
                );
                self.send_stateless(response, flow);
            }
            return;
        }
        let Some(top_via) = request
            .header_values("Via")
            .next()
            .and_then(|v| Via::parse(v).ok())
        else {
            return;
        };
        let mut request = request;
        if crate::sip::route::strip_own_route(&mut request, flow.local) {
            tracing::debug!(source = %flow.remote, "top Route named us: removed");
        }
        let key = server_key(&request, &top_via, &method);
        let flow = Flow {
            remote: response_destination(flow.remote, &top_via, flow.transport.is_reliable()),
            ..flow
        };
        if method == Method::Ack {
            self.handle_ack(&request, &key, now);
            return;
        }
        if let Some(&id) = self.tx_index.get(&key) {
            self.stats.retransmissions_received += 1;
            let step = match self.txs.get_mut(&id).map(|tx| &mut tx.machine) {
                Some(Machine::ServerInvite(m)) => m.on_request_retransmission(),
                Some(Machine::ServerNonInvite(m)) => m.on_request_retransmission(),
                _ => TxStep::default(),
            };
            self.apply_step(id, step, now);
            return;
        }
        self.handle_new_request(request, method, key, flow, now);
    }

    pub(super) fn handle_new_request(
        &mut self,
        request: Message,
        method: Method,
        key: TxKey,
        flow: Flow,
        now: Instant,
    ) {
        let call_id = request.header("Call-ID").unwrap_or_default().to_string();
        let _span = tracing::info_span!("sip", call_id = %call_id).entered();
        match method {
            Method::Extension(_) => return self.reply_new(&request, key, flow, 501, &[], now),
            Method::Register
            | Method::Subscribe
            | Method::Publish
            | Method::Message
            | Method::Refer
            | Method::Prack => {
                return self.reply_new(&request, key, flow, 405, &[("Allow", ALLOW)], now);
            }
            _ => {}
        }
        if method != Method::Options && request.header("Max-Forwards") == Some("0") {
            return self.reply_new(&request, key, flow, 483, &[], now);
        }
        if method == Method::Cancel {
            return self.handle_cancel(&request, key, flow, now);
        }
        let to_tag = request
            .header("To")
            .and_then(|to| NameAddr::parse(to).ok())
            .and_then(|to| to.tag().map(str::to_string));
        if let Some(to_tag) = to_tag {
            return self.handle_in_dialog(request, method, key, flow, &to_tag, now);
        }
        let merge_key = merge_key(&request);
        if let Some(existing) = merge_key.as_ref().and_then(|k| self.merge_index.get(k)) {
            if self.txs.get(existing).is_some_and(|tx| tx.key != key) {
                return self.reply_new(&request, key, flow, 482, &[], now);
            }
        }
        let unsupported = unsupported_extensions(&request);
        if !unsupported.is_empty() {
            return self.reply_new(
                &request,
                key,
                flow,
                420,
                &[("Unsupported", &unsupported)],
                now,
            );
        }
        match method {
            Method::Invite => self.handle_new_invite(request, key, flow, merge_key, now),
            // A proxy's dispatcher probes with OPTIONS: while draining, a
            // 503 takes this gateway out of its rotation as its calls finish.
            Method::Options if self.admission.is_draining() => {
                let headers = [("Retry-After", DRAINING_RETRY_AFTER)];
                self.reply_new(&request, key, flow, 503, &headers, now)
            }
            Method::Options => self.reply_new(&request, key, flow, 200, &capabilities(), now),
            _ => self.reply_new(&request, key, flow, 481, &[], now),
        }
    }

    pub(super) fn handle_new_invite(
        &mut self,
        request: Message,
        key: TxKey,
        flow: Flow,
        merge_key: Option<MergeKey>,
        now: Instant,
    ) {
        if let Err(refusal) = self
            .admission
            .admit_call(flow.remote.ip(), self.calls.len(), now)
        {
            let (code, retry_after) = match refusal {
                Refusal::Untrusted => (403, None),
                Refusal::Capacity => (503, Some("5")),
                Refusal::Rate => (503, Some("1")),
                Refusal::Draining => (503, Some(DRAINING_RETRY_AFTER)),
            };
            match refusal {
                Refusal::Untrusted => self.stats.refused_acl += 1,
                Refusal::Capacity => self.stats.refused_capacity += 1,
                Refusal::Rate => self.stats.refused_rate += 1,
                Refusal::Draining => self.stats.refused_draining += 1,
            }
            // A flood is refused in full but logged once a minute.
            if let Some(held_back) = self
                .refusal_log
                .note((flow.remote.ip(), refusal.label()), now)
            {
                tracing::info!(source = %flow.remote, refusal = refusal.label(), held_back, "call refused (more from this source for this reason within a minute are only counted)");
            }
            let (caller, dialled) = parties(&request);
            self.events
                .push_back(Event::CallRefused(Box::new(RefusedCall {
                    call_id: request.header("Call-ID").unwrap_or_default().to_string(),
                    caller,
                    dialled,
                    reason: format!("{code} {}", refusal.label()),
                })));
            let extra: Vec<(&str, &str)> = retry_after
                .map(|r| ("Retry-After", r))
                .into_iter()
                .collect();
            return self.reply_new(&request, key, flow, code, &extra, now);
        }
        if let Err((code, header)) = check_session_body(&request) {
            return self.reply_new(&request, key, flow, code, &header, now);
        }
        let local_tag = random_token();
        let dialog = match Dialog::from_invite(&request, &local_tag) {
            Ok(dialog) => dialog,
            Err(_) => return self.reply_new(&request, key, flow, 400, &[], now),
        };
        let handle = CallHandle(self.next_id());
        let tx_id = self.start_server_tx(&request, key, flow, merge_key, Some(handle));
        self.respond_in_tx(tx_id, &request, 100, &[], None, now);
        self.stats.calls_offered += 1;
        let (caller, dialled) = parties(&request);
        let incoming = IncomingCall {
            call: handle,
            call_id: dialog.id.call_id.clone(),
            dialled,
            caller,
            offer: (!request.body.is_empty()).then(|| request.body.clone()),
            flow,
            invite: request.clone(),
        };
        tracing::debug!(call_id = %incoming.call_id, source = %flow.remote, "incoming call");
        self.dialogs.insert(dialog.id.clone(), handle);
        self.calls.insert(
            handle,
            Call {
                dialog,
                flow,
                state: CallState::Offered,
                pending: Some(PendingOffer::Invite { tx: tx_id, request }),
                awaiting_ack: None,
                ack_generation: 0,
                hangup_after_ack: false,
                transfer: None,
                transfer_generation: 0,
            },
        );
        self.events
            .push_back(Event::IncomingCall(Box::new(incoming)));
    }

    pub(super) fn handle_cancel(
        &mut self,
        request: &Message,
        key: TxKey,
        flow: Flow,
        now: Instant,
    ) {
        let invite_key = key.with_method("INVITE");
        let Some(&invite_tx) = self.tx_index.get(&invite_key) else {
            return self.reply_new(request, key, flow, 481, &[], now);
        };
        let (call, answered) = match self.txs.get(&invite_tx) {
            Some(Tx {
                machine: Machine::ServerInvite(m),
                call,
                ..
            }) => (*call, m.has_final_response()),
            _ => (None, true),
        };
        // Tied to the call, our 200 carries the To tag of the INVITE's
        // responses (RFC 3261 §9.2).
        let tx = self.start_server_tx(request, key, flow, None, call);
        self.respond_in_tx(tx, request, 200, &[], None, now);
        // A CANCEL that lost the race with our 2xx changes nothing.
        if answered {
            return;
        }
        if let Some(handle) = call {
            // A cancelled re-INVITE only ends that INVITE; the session
            // stays as it was (RFC 3261 §9.2, §14.2).
            let initial = self
                .calls
                .get(&handle)
                .is_some_and(|c| c.state == CallState::Offered);
            self.finish_pending_invite(handle, 487, now);
            if initial {
                self.end_call(handle, EndReason::Cancelled, now);
            }
        }
    }
}

pub(super) fn merge_key(request: &Message) -> Option<MergeKey> {
    let from_tag = NameAddr::parse(request.header("From")?)
        .ok()?
        .tag()?
        .to_string();
    let cseq = CSeq::parse(request.header("CSeq")?).ok()?.seq;
    Some((request.header("Call-ID")?.to_string(), from_tag, cseq))
}

/// Option tags in Require that we do not support (we support none yet).
pub(super) fn unsupported_extensions(request: &Message) -> String {
    request
        .header_values("Require")
        .filter(|tag| !tag.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A status and the headers to send with it.
type Refused = (u16, Vec<(&'static str, &'static str)>);

/// Checks that an INVITE/UPDATE body is SDP and that the peer accepts SDP:
/// `415` with Accept, or `406`.
pub(super) fn check_session_body(request: &Message) -> Result<(), Refused> {
    if !request.body.is_empty() {
        let content_type = request.header("Content-Type").unwrap_or_default();
        if crate::sip::message::media_type(content_type) != "application/sdp" {
            return Err((415, vec![("Accept", "application/sdp")]));
        }
    }
    if request.has_header("Accept") {
        let accepts_sdp = request.header_values("Accept").any(|value| {
            matches!(
                crate::sip::message::media_type(value).as_str(),
                "application/sdp" | "application/*" | "*/*"
            )
        });
        if !accepts_sdp {
            return Err((406, Vec::new()));
        }
    }
    Ok(())
}
