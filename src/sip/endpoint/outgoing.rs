//! Calls the gateway places (UAC legs: transfers in bridge mode,
//! outbound calls): the INVITE, its responses through `sip::uac`, the
//! ring timeout and CANCEL.

use super::*;

impl Endpoint {
    /// Places a call to a transfer target (the bridge mode): an INVITE with
    /// `request.sdp` and the context headers, sent on the flow family of
    /// the call it is for, over TCP when the target URI says
    /// `transport=tcp`. Challenges are answered with the credentials; the
    /// outcome comes as [`Event::OutgoingAnswered`] or
    /// [`Event::OutgoingFailed`] (also after the ring timeout, when a
    /// CANCEL goes out). [`Endpoint::hangup`] on the returned leg cancels
    /// it before the answer and sends BYE after it.
    pub fn call_out(
        &mut self,
        request: OutgoingRequest,
        now: Instant,
    ) -> Result<CallHandle, CallError> {
        let (listener, base_local) = match request.origin {
            Origin::Call(call) => self
                .calls
                .get(&call)
                .map(|c| (c.flow.listener, c.flow.local))
                .ok_or(CallError::NoSuchCall)?,
            Origin::Listener { listener, local } => (listener, local),
        };
        let target = Uri::parse(uac::request_uri(&request.target))
            .ok()
            .filter(Uri::is_sip)
            .ok_or(CallError::BadTarget)?;
        let remote = request
            .addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == base_local.is_ipv4())
            .ok_or(CallError::BadTarget)?;
        let transport = Transport::for_uri(&target);
        let local = match transport {
            Transport::Tls => {
                self.remember_tls_name(remote, &target.host);
                self.tls_local(base_local)
            }
            _ => base_local,
        };
        let flow = Flow {
            transport,
            listener,
            connection: None,
            local,
            remote,
        };
        let user: String = request
            .from_user
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.!~*'()+".contains(*c))
            .collect();
        let user = if user.is_empty() { "hotline" } else { &user };
        // RFC 3261 §8.1.1.8: a sips: Request-URI needs a sips: Contact.
        let (scheme, transport_param) = match transport {
            Transport::Tls if target.scheme == "sips" => ("sips", ""),
            Transport::Tls => ("sip", ";transport=tls"),
            Transport::Tcp => ("sip", ";transport=tcp"),
            Transport::Udp => ("sip", ""),
        };
        let from = format!("<{scheme}:{user}@{}>", flow.local);
        let contact = format!("<{scheme}:{user}@{}{transport_param}>", flow.local);
        let call_id = format!("{}@hotline", random_token());
        let from_tag = random_token();
        let cseq = 1;
        let invite = uac::build_invite(&uac::InviteParts {
            target: &request.target,
            from: &from,
            from_tag: &from_tag,
            call_id: &call_id,
            cseq,
            contact: &contact,
            user_agent: &self.config.user_agent,
            headers: &request.headers,
            sdp: &request.sdp,
        });
        let leg = CallHandle(self.next_id());
        tracing::info!(%call_id, target = %request.target, transport = flow.transport.via_token(), "placing a call");
        let has_credentials = request.credentials.is_some();
        self.outgoing.insert(
            leg,
            Outgoing {
                uac: OutgoingInvite::new(has_credentials),
                invite: invite.clone(),
                flow,
                credentials: request.credentials,
                cseq,
                nonce_count: 0,
                ack: None,
            },
        );
        self.send_invite(leg, invite, now);
        self.arm(now + request.ring_timeout, TimerTarget::Ring(leg));
        Ok(leg)
    }

    /// Starts an INVITE client transaction for `invite` (no Via yet).
    pub(super) fn send_invite(&mut self, leg: CallHandle, mut invite: Message, now: Instant) {
        let Some(flow) = self.outgoing.get(&leg).map(|o| o.flow) else {
            return;
        };
        let branch = new_branch();
        invite.headers.insert(
            0,
            crate::sip::message::Header {
                name: "Via".to_string(),
                value: our_via(flow.transport.via_token(), flow.local, &branch),
            },
        );
        let bytes = invite.to_bytes();
        let (machine, step) =
            ClientInvite::start(bytes, flow.transport.is_reliable(), self.config.timers, now);
        let id = self.next_id();
        let key = TxKey::Client {
            branch,
            method: "INVITE".to_string(),
        };
        self.tx_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                machine: Machine::ClientInvite(machine),
                key,
                flow,
                call: Some(leg),
                merge_key: None,
            },
        );
        if let Some(outgoing) = self.outgoing.get_mut(&leg) {
            outgoing.invite = invite;
        }
        self.apply_step(id, step, now);
    }

    pub(super) fn on_outgoing_response(
        &mut self,
        leg: CallHandle,
        response: &Message,
        now: Instant,
    ) {
        let Some(code) = response.status() else {
            return;
        };
        let Some(outgoing) = self.outgoing.get_mut(&leg) else {
            return;
        };
        if (200..300).contains(&code) && outgoing.uac.state != UacState::Cancelling {
            if let Some((ack, flow)) = outgoing.ack.clone() {
                // A retransmitted 2xx: our ACK was lost.
                self.transmit(flow, ack);
                return;
            }
        }
        let challenge = match code {
            401 => response.header("WWW-Authenticate"),
            407 => response.header("Proxy-Authenticate"),
            _ => None,
        };
        let step = outgoing.uac.on_response(code, challenge);
        self.apply_uac_step(leg, step, Some(response), now);
    }

    pub(super) fn on_ring_timeout(&mut self, leg: CallHandle, now: Instant) {
        let step = match self.outgoing.get_mut(&leg) {
            Some(outgoing) => outgoing.uac.on_ring_timeout(),
            None => return,
        };
        self.apply_uac_step(leg, step, None, now);
    }

    /// Carries out what the UAC machine decided.
    pub(super) fn apply_uac_step(
        &mut self,
        leg: CallHandle,
        step: UacStep,
        response: Option<&Message>,
        now: Instant,
    ) {
        match step {
            UacStep::Nothing | UacStep::Ringing => {
                if step == UacStep::Ringing {
                    tracing::info!("the transfer target rings");
                }
                if self
                    .outgoing
                    .get(&leg)
                    .is_some_and(|o| o.uac.state == UacState::Ended)
                    && !self.calls.contains_key(&leg)
                {
                    self.outgoing.remove(&leg);
                }
            }
            UacStep::Answered => {
                if let Some(response) = response {
                    match self.confirm_outgoing(leg, response) {
                        Some(sdp) => self.events.push_back(Event::OutgoingAnswered { leg, sdp }),
                        None => self.fail_outgoing(leg, UacFailure::Failed(code_of(response))),
                    }
                }
            }
            UacStep::AckAndBye => {
                if let Some(response) = response {
                    if self.confirm_outgoing(leg, response).is_some() {
                        self.send_bye(leg, now);
                        if let Some(call) = self.calls.remove(&leg) {
                            self.dialogs.remove(&call.dialog.id);
                        }
                    }
                }
                self.outgoing.remove(&leg);
            }
            UacStep::Authenticate { header, challenge } => {
                let Some(outgoing) = self.outgoing.get_mut(&leg) else {
                    return;
                };
                let Some((username, password)) = outgoing.credentials.clone() else {
                    return;
                };
                outgoing.cseq += 1;
                outgoing.nonce_count += 1;
                let uri = outgoing
                    .invite
                    .request_uri()
                    .unwrap_or_default()
                    .to_string();
                let credentials = challenge.answer(
                    &username,
                    &password,
                    "INVITE",
                    &uri,
                    &random_token(),
                    outgoing.nonce_count,
                );
                let retry = uac::reinvite_with_credentials(
                    &outgoing.invite,
                    outgoing.cseq,
                    header,
                    credentials,
                );
                tracing::info!(realm = %challenge.realm, "answering the target's digest challenge");
                self.send_invite(leg, retry, now);
            }
            UacStep::Cancel { report } => {
                if let Some(outgoing) = self.outgoing.get(&leg) {
                    let cancel = uac::build_cancel(&outgoing.invite);
                    let flow = outgoing.flow;
                    self.send_cancel(cancel, flow, now);
                }
                if let Some(failure) = report {
                    self.events
                        .push_back(Event::OutgoingFailed { leg, failure });
                }
            }
            UacStep::CancelLater { report } => {
                if let Some(failure) = report {
                    self.events
                        .push_back(Event::OutgoingFailed { leg, failure });
                }
            }
            UacStep::Failed(failure) => self.fail_outgoing(leg, failure),
        }
    }

    pub(super) fn fail_outgoing(&mut self, leg: CallHandle, failure: UacFailure) {
        self.outgoing.remove(&leg);
        tracing::info!(?failure, "the transfer target was not reached");
        self.events
            .push_back(Event::OutgoingFailed { leg, failure });
    }

    /// ACKs the 2xx to our INVITE and makes the leg a confirmed call of
    /// its own (BYE either way, in-dialog requests); returns the answer
    /// SDP, or `None` when the 2xx cannot make a dialog.
    pub(super) fn confirm_outgoing(
        &mut self,
        leg: CallHandle,
        response: &Message,
    ) -> Option<Bytes> {
        let outgoing = self.outgoing.get_mut(&leg)?;
        let dialog = match Dialog::from_uac(&outgoing.invite, response) {
            Ok(dialog) => dialog,
            Err(reason) => {
                tracing::info!(reason, "the target's 2xx cannot set up a dialog");
                return None;
            }
        };
        let mut ack = dialog.ack(outgoing.cseq);
        ack.push_header("User-Agent", self.config.user_agent.clone());
        for name in ["Authorization", "Proxy-Authorization"] {
            if let Some(value) = outgoing.invite.header(name) {
                ack.push_header(name, value.to_string());
            }
        }
        let mut flow = outgoing.flow;
        if let Some((address, _)) = dialog.next_hop() {
            flow.remote = address;
        }
        ack.headers.insert(
            0,
            crate::sip::message::Header {
                name: "Via".to_string(),
                value: our_via(flow.transport.via_token(), flow.local, &new_branch()),
            },
        );
        let bytes = ack.to_bytes();
        outgoing.ack = Some((bytes.clone(), flow));
        let leg_flow = outgoing.flow;
        self.transmit(flow, bytes);
        self.dialogs.insert(dialog.id.clone(), leg);
        self.calls.insert(
            leg,
            Call {
                dialog,
                flow: leg_flow,
                state: CallState::Confirmed,
                pending: None,
                awaiting_ack: None,
                ack_generation: 0,
                hangup_after_ack: false,
                transfer: None,
                transfer_generation: 0,
            },
        );
        Some(response.body.clone())
    }

    /// Sends CANCEL in a non-INVITE transaction on the INVITE's branch.
    pub(super) fn send_cancel(&mut self, cancel: Message, flow: Flow, now: Instant) {
        let branch = cancel
            .header_values("Via")
            .next()
            .and_then(|v| Via::parse(v).ok())
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let (machine, step) = ClientNonInvite::start(
            cancel.to_bytes(),
            flow.transport.is_reliable(),
            self.config.timers,
            now,
        );
        let id = self.next_id();
        let key = TxKey::Client {
            branch,
            method: "CANCEL".to_string(),
        };
        self.tx_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            Tx {
                machine: Machine::ClientNonInvite(machine),
                key,
                flow,
                call: None,
                merge_key: None,
            },
        );
        self.apply_step(id, step, now);
    }
}
