//! The transaction table: server transactions started and answered,
//! their machines' steps applied, responses matched to client
//! transactions, and the key a request is matched by.

use super::*;

impl Endpoint {
    pub(super) fn handle_response(&mut self, response: Message, now: Instant) {
        self.stats.responses_received += 1;
        if validate::check_response(&response).is_err() {
            self.stats.malformed += 1;
            return;
        }
        let branch = response
            .header_values("Via")
            .next()
            .and_then(|v| Via::parse(v).ok())
            .and_then(|v| v.branch().map(str::to_string));
        let method = response
            .header("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map(|c| c.method);
        let (Some(branch), Some(method), Some(code)) = (branch, method, response.status()) else {
            return;
        };
        let key = TxKey::Client {
            branch,
            method: method.clone(),
        };
        let Some(&id) = self.tx_index.get(&key) else {
            return;
        };
        let call = self.txs.get(&id).and_then(|tx| tx.call);
        let invite = call.and_then(|leg| self.outgoing.get(&leg).map(|o| &o.invite));
        let step = match (self.txs.get_mut(&id).map(|tx| &mut tx.machine), invite) {
            (Some(Machine::ClientNonInvite(m)), _) => m.on_response(code, now),
            (Some(Machine::ClientInvite(m)), invite) => {
                // Without the INVITE (the leg already failed) the machine
                // only repeats the ACK it built before.
                let error_ack = || {
                    invite
                        .map(|invite| uac::build_error_ack(invite, &response).to_bytes())
                        .unwrap_or_default()
                };
                let step = m.on_response(code, error_ack, now);
                let deliver = step.deliver_response;
                self.apply_step(id, step, now);
                if let (true, Some(leg)) = (deliver, call) {
                    self.on_outgoing_response(leg, &response, now);
                }
                return;
            }
            _ => return,
        };
        let deliver = step.deliver_response;
        self.apply_step(id, step, now);
        if let (true, Some(handle), "REFER") = (deliver, call, method.as_str()) {
            self.on_refer_response(handle, code);
        }
    }

    pub(super) fn start_server_tx(
        &mut self,
        request: &Message,
        key: TxKey,
        flow: Flow,
        merge_key: Option<MergeKey>,
        call: Option<CallHandle>,
    ) -> u64 {
        let reliable = flow.transport.is_reliable();
        let machine = if request.method() == Some(&Method::Invite) {
            Machine::ServerInvite(ServerInvite::new(reliable, self.config.timers))
        } else {
            Machine::ServerNonInvite(ServerNonInvite::new(reliable, self.config.timers))
        };
        let id = self.next_id();
        self.tx_index.insert(key.clone(), id);
        if let Some(merge) = &merge_key {
            self.merge_index.insert(merge.clone(), id);
        }
        self.txs.insert(
            id,
            Tx {
                machine,
                key,
                flow,
                call,
                merge_key,
            },
        );
        id
    }

    /// Creates a server transaction for a new request and answers it at once.
    pub(super) fn reply_new(
        &mut self,
        request: &Message,
        key: TxKey,
        flow: Flow,
        code: u16,
        headers: &[(&str, &str)],
        now: Instant,
    ) {
        let merge = if request.header("To").is_some_and(|to| to.contains("tag=")) {
            None
        } else {
            merge_key(request)
        };
        let merge = merge.filter(|k| !self.merge_index.contains_key(k));
        let tx = self.start_server_tx(request, key, flow, merge, None);
        self.respond_in_tx(tx, request, code, headers, None, now);
    }

    /// Builds a response and passes it to the server transaction; returns
    /// the bytes sent.
    pub(super) fn respond_in_tx(
        &mut self,
        tx: u64,
        request: &Message,
        code: u16,
        headers: &[(&str, &str)],
        sdp: Option<Bytes>,
        now: Instant,
    ) -> Bytes {
        let Some(entry) = self.txs.get(&tx) else {
            return Bytes::new();
        };
        let to_tag = entry
            .call
            .and_then(|h| self.calls.get(&h))
            .map(|c| c.dialog.id.local_tag.clone())
            .unwrap_or_else(random_token);
        let source = entry.flow.remote;
        let mut response = response_to(request, source, code, reason_phrase(code), Some(&to_tag));
        for (name, value) in headers {
            response.push_header(name, *value);
        }
        if code >= 300 || code == 200 {
            response.push_header("Server", self.config.user_agent.clone());
        }
        if let Some(sdp) = sdp {
            response.set_body("application/sdp", sdp);
        }
        let bytes = response.to_bytes();
        let step = match self.txs.get_mut(&tx).map(|t| &mut t.machine) {
            Some(Machine::ServerInvite(m)) => m.send_response(code, bytes.clone(), now),
            Some(Machine::ServerNonInvite(m)) => m.send_response(code, bytes.clone(), now),
            _ => TxStep::default(),
        };
        self.apply_step(tx, step, now);
        bytes
    }

    pub(super) fn apply_step(&mut self, id: u64, step: TxStep, now: Instant) {
        let Some(tx) = self.txs.get(&id) else {
            return;
        };
        let flow = tx.flow;
        let mut unanswered_refer = None;
        let mut unanswered_invite = None;
        if let (Some(notice), TxKey::Client { method, .. }) = (&step.notice, &tx.key) {
            // Our request (a BYE, usually) was never answered: worth knowing
            // when a peer drops signalling under load.
            match notice {
                TuNotice::Timeout => {
                    tracing::info!(%method, peer = %flow.remote, "request got no answer (timer B/F)")
                }
                TuNotice::TransportError => {
                    tracing::info!(%method, peer = %flow.remote, "request could not be sent (transport)")
                }
            }
            match method.as_str() {
                "REFER" => unanswered_refer = tx.call,
                "INVITE" => unanswered_invite = tx.call,
                _ => {}
            }
        }
        if let Some(bytes) = step.send {
            self.transmit(flow, bytes);
        }
        for (timer, at) in step.arm {
            self.arm(at, TimerTarget::Tx(id, timer));
        }
        if step.terminated {
            if let Some(tx) = self.txs.remove(&id) {
                if self.tx_index.get(&tx.key) == Some(&id) {
                    self.tx_index.remove(&tx.key);
                }
                if let Some(merge) = tx.merge_key {
                    if self.merge_index.get(&merge) == Some(&id) {
                        self.merge_index.remove(&merge);
                    }
                }
            }
        }
        if let Some(handle) = unanswered_refer {
            self.finish_transfer(handle, Some(TransferFailure::NoAnswer));
        }
        if let Some(leg) = unanswered_invite {
            let step = match self.outgoing.get_mut(&leg) {
                Some(outgoing) => outgoing.uac.on_transaction_timeout(),
                None => UacStep::Nothing,
            };
            self.apply_uac_step(leg, step, None, now);
        }
    }
}

pub(super) fn server_key(request: &Message, top_via: &Via, method: &Method) -> TxKey {
    let method = match method {
        Method::Ack => "INVITE".to_string(),
        other => other.as_str().to_string(),
    };
    if top_via.has_rfc3261_branch() {
        return TxKey::Server {
            branch: top_via.branch().unwrap_or_default().to_string(),
            sent_by: top_via.sent_by(),
            method,
        };
    }
    TxKey::Legacy {
        call_id: request.header("Call-ID").unwrap_or_default().to_string(),
        from_tag: request
            .header("From")
            .and_then(|f| NameAddr::parse(f).ok())
            .and_then(|f| f.tag().map(str::to_string))
            .unwrap_or_default(),
        cseq: request
            .header("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map_or(0, |c| c.seq),
        via: request
            .header_values("Via")
            .next()
            .unwrap_or_default()
            .to_string(),
        method,
    }
}
