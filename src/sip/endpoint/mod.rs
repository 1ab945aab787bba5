//! The SIP endpoint: transaction table, dialogs and the UAS core, as one
//! sans-IO state machine in the style of `quinn-proto` and `str0m`.
//!
//! Bytes from any transport go in with [`Endpoint::handle_message`], time
//! goes in with [`Endpoint::handle_timeout`], and the application answers
//! calls with [`Endpoint::accept`], [`Endpoint::reject`] and
//! [`Endpoint::hangup`], and transfers them with [`Endpoint::refer`] (a
//! blind transfer, RFC 3515: REFER to the caller, progress by NOTIFY) or
//! places a call of its own to a transfer target with
//! [`Endpoint::call_out`] (the bridge mode: an INVITE as UAC, see `uac`).
//! What to send comes out of
//! [`Endpoint::poll_transmit`], what happened out of
//! [`Endpoint::poll_event`], and when to call back out of
//! [`Endpoint::poll_timeout`]. The endpoint never reads a clock, never
//! touches a socket and never blocks, so every behaviour here is tested by
//! feeding bytes and instants.

use super::admission::{Admission, AdmissionPolicy, Refusal};
use super::build::{
    new_branch, our_via, random_token, reason_phrase, response_destination, response_to,
    scan_for_bad_request, stateless_tag,
};
use super::dialog::{Dialog, DialogId};
use super::headers::{CSeq, NameAddr, Uri, Via};
use super::message::{Message, Method, ParseError};
use super::refer;
use super::transaction::{
    ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite, TimerValues, TuNotice, TxStep,
    TxTimer,
};
use super::uac::{self, OutgoingInvite, UacFailure, UacState, UacStep};
use super::validate;
use crate::log_throttle::LogThrottle;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

mod calls;
mod dialogs;
mod outgoing;
mod requests;
mod transactions;
mod types;

use requests::{check_session_body, merge_key, unsupported_extensions};
use transactions::server_key;
pub use types::*;

/// Retry-After (seconds) of the 503s a draining gateway gives new calls
/// and out-of-dialog OPTIONS.
const DRAINING_RETRY_AFTER: &str = "30";

/// Methods the gateway implements.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY";
/// Bodies the gateway understands.
pub const ACCEPT: &str =
    "application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag";
/// Requests larger than this go over TCP (RFC 3261 §18.1.1).
pub const UDP_MTU_LIMIT: usize = 1300;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TxKey {
    /// RFC 3261 §17.2.3 matching on the magic-cookie branch.
    Server {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 compatible matching for peers without the cookie.
    Legacy {
        call_id: String,
        from_tag: String,
        cseq: u32,
        via: String,
        method: String,
    },
    Client {
        branch: String,
        method: String,
    },
}

impl TxKey {
    fn with_method(&self, method: &str) -> TxKey {
        let mut key = self.clone();
        match &mut key {
            TxKey::Server { method: m, .. }
            | TxKey::Legacy { method: m, .. }
            | TxKey::Client { method: m, .. } => {
                *m = method.to_string();
            }
        }
        key
    }
}

/// Named after the RFC 3261 §17 machines they wrap.
#[allow(clippy::enum_variant_names)]
#[derive(Debug)]
enum Machine {
    ClientInvite(ClientInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
    ClientNonInvite(ClientNonInvite),
}

/// Requests that share Call-ID, From tag and CSeq but arrive on another
/// branch are merged copies (RFC 3261 §8.2.2.2).
type MergeKey = (String, String, u32);

#[derive(Debug)]
struct Tx {
    machine: Machine,
    key: TxKey,
    flow: Flow,
    call: Option<CallHandle>,
    merge_key: Option<MergeKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CallTimer {
    Retransmit2xx,
    AckTimeout,
    /// The transfer's time limit; its generation is the transfer's.
    TransferTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerTarget {
    Tx(u64, TxTimer),
    /// The ring timeout of a call we placed.
    Ring(CallHandle),
    Call(CallHandle, CallTimer, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// INVITE received, no final response yet.
    Offered,
    /// 2xx sent, ACK not yet received.
    Accepted,
    Confirmed,
}

#[derive(Debug)]
enum PendingOffer {
    Invite { tx: u64, request: Message },
    Update { tx: u64, request: Message },
}

#[derive(Debug)]
struct AwaitingAck {
    response: Bytes,
    cseq: u32,
    interval: Duration,
    /// Our 2xx carried the offer; the ACK carries the answer.
    offer_in_2xx: bool,
}

/// Where a blind transfer (REFER) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferState {
    /// REFER sent, not answered yet.
    Referred,
    /// REFER accepted (a 2xx, or a NOTIFY came first): waiting for the
    /// final NOTIFY.
    Accepted,
    /// The outcome was reported; later NOTIFYs are answered and ignored.
    Finished,
}

#[derive(Debug)]
struct Call {
    dialog: Dialog,
    flow: Flow,
    state: CallState,
    pending: Option<PendingOffer>,
    awaiting_ack: Option<AwaitingAck>,
    /// Bumped whenever 2xx retransmission stops, to disarm its timers.
    ack_generation: u32,
    hangup_after_ack: bool,
    /// The transfer in progress or last finished, if any.
    transfer: Option<TransferState>,
    /// Bumped whenever a transfer starts or ends, to disarm its timer.
    transfer_generation: u32,
}

/// A call we placed, from the INVITE until it ends.
#[derive(Debug)]
struct Outgoing {
    uac: OutgoingInvite,
    /// The INVITE sent last (with its Via), for CANCEL and the error ACK.
    invite: Message,
    flow: Flow,
    credentials: Option<(String, String)>,
    cseq: u32,
    nonce_count: u32,
    /// The ACK of the 2xx, sent again when the 2xx is retransmitted.
    ack: Option<(Bytes, Flow)>,
}

/// Host names of TLS targets remembered at most (see `tls_names`).
const MAX_TLS_NAMES: usize = 1024;

pub struct Endpoint {
    config: EndpointConfig,
    /// Our TLS listeners' addresses: the port requests we send over TLS
    /// advertise in Via and Contact.
    tls_listeners: Vec<SocketAddr>,
    /// The host names of TLS targets we called, by the address they
    /// resolved to: a connection opened to that address (again) checks
    /// the certificate against the name.
    tls_names: HashMap<SocketAddr, String>,
    outgoing: HashMap<CallHandle, Outgoing>,
    admission: Admission,
    txs: HashMap<u64, Tx>,
    tx_index: HashMap<TxKey, u64>,
    merge_index: HashMap<MergeKey, u64>,
    calls: HashMap<CallHandle, Call>,
    dialogs: HashMap<DialogId, CallHandle>,
    timers: BinaryHeap<Reverse<(Instant, TimerTarget)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_id: u64,
    stats: Stats,
    refusal_log: LogThrottle<(IpAddr, &'static str)>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Endpoint {
        Endpoint {
            admission: Admission::new(config.admission.clone()),
            config,
            tls_listeners: Vec::new(),
            tls_names: HashMap::new(),
            outgoing: HashMap::new(),
            txs: HashMap::new(),
            tx_index: HashMap::new(),
            merge_index: HashMap::new(),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
            stats: Stats::default(),
            refusal_log: LogThrottle::new(Duration::from_secs(60), 4096),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which `handle_timeout` has work (it may be
    /// a timer that turns out to be stale; calling early is harmless).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn active_transactions(&self) -> usize {
        self.txs.len()
    }

    /// True while requests we sent (BYE) still wait for their answers.
    pub fn has_client_transactions(&self) -> bool {
        self.txs.values().any(|tx| {
            matches!(
                tx.machine,
                Machine::ClientNonInvite(_) | Machine::ClientInvite(_)
            )
        })
    }

    /// While draining, new calls get `503` and live calls go on.
    pub fn set_draining(&mut self, draining: bool) {
        self.admission.set_draining(draining);
    }

    pub fn calls(&self) -> impl Iterator<Item = CallHandle> + '_ {
        self.calls.keys().copied()
    }

    /// The stream connections that calls (with their dialogs), calls we
    /// placed and transactions use now.
    pub fn connections_in_use(&self) -> ConnectionsInUse {
        let mut in_use = ConnectionsInUse::default();
        let flows = self
            .calls
            .values()
            .map(|call| &call.flow)
            .chain(self.outgoing.values().map(|outgoing| &outgoing.flow))
            .chain(self.txs.values().map(|tx| &tx.flow));
        for flow in flows.filter(|flow| flow.transport.is_reliable()) {
            match flow.connection {
                Some(id) => in_use.ids.insert(id),
                None => in_use.remotes.insert(flow.remote),
            };
        }
        in_use
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn arm(&mut self, at: Instant, target: TimerTarget) {
        self.timers.push(Reverse((at, target)));
    }

    fn transmit(&mut self, flow: Flow, bytes: Bytes) {
        let server_name = match flow.transport {
            Transport::Tls => self.tls_names.get(&flow.remote).cloned(),
            _ => None,
        };
        self.transmits.push_back(Transmit {
            flow,
            bytes,
            server_name,
        });
    }

    /// Tells the endpoint where it listens for TLS, so that requests it
    /// sends over TLS advertise a port that speaks TLS.
    pub fn set_tls_listeners(&mut self, listeners: Vec<SocketAddr>) {
        self.tls_listeners = listeners;
    }

    /// `local` with the port of our TLS listener of its family, if any.
    fn tls_local(&self, local: SocketAddr) -> SocketAddr {
        let listener = self
            .tls_listeners
            .iter()
            .find(|l| l.is_ipv4() == local.is_ipv4())
            .or(self.tls_listeners.first());
        listener.map_or(local, |l| SocketAddr::new(local.ip(), l.port()))
    }

    /// Remembers that `remote` is the TLS target `host` (a name, not an
    /// IP literal). Entries no live call or leg uses are dropped when the
    /// table is full, so names a resolver rotated away do not pile up.
    fn remember_tls_name(&mut self, remote: SocketAddr, host: &str) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<std::net::IpAddr>().is_ok() {
            return;
        }
        if self.tls_names.len() >= MAX_TLS_NAMES && !self.tls_names.contains_key(&remote) {
            let used: HashSet<SocketAddr> = self
                .outgoing
                .values()
                .map(|o| o.flow.remote)
                .chain(self.calls.values().map(|c| c.flow.remote))
                .collect();
            self.tls_names.retain(|address, _| used.contains(address));
        }
        self.tls_names.insert(remote, host.to_string());
    }

    /// Feeds one message (a datagram, or one framed message from a stream).
    pub fn handle_message(&mut self, bytes: &[u8], flow: Flow, now: Instant) {
        match Message::parse(bytes) {
            Ok(message) if message.is_request() => self.handle_request(message, flow, now),
            Ok(message) => self.handle_response(message, now),
            Err(error) => self.handle_unparseable(bytes, flow, &error),
        }
    }

    fn handle_unparseable(&mut self, bytes: &[u8], flow: Flow, error: &ParseError) {
        self.stats.malformed += 1;
        tracing::debug!(source = %flow.remote, %error, "unparseable SIP message");
        if !self.admission.is_trusted(flow.remote.ip()) {
            return;
        }
        let reason = match error {
            ParseError::Malformed(reason) => reason,
            ParseError::TooLarge => "Message Too Large",
            ParseError::Incomplete => "Incomplete Message",
        };
        if let Some(response) = scan_for_bad_request(bytes, flow.remote, &capitalise(reason)) {
            self.send_stateless(response, flow);
        }
    }

    fn send_stateless(&mut self, response: Message, flow: Flow) {
        // A response without a Via cannot be routed (RFC 3261 §18.2.2);
        // whatever sent a request without one is not a SIP peer.
        let Some(top_via) = response.header_values("Via").next() else {
            return;
        };
        let destination = Via::parse(top_via).map_or(flow.remote, |via| {
            response_destination(flow.remote, &via, flow.transport.is_reliable())
        });
        self.transmit(
            Flow {
                remote: destination,
                ..flow
            },
            response.to_bytes(),
        );
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, target))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match target {
                TimerTarget::Ring(leg) => self.on_ring_timeout(leg, now),
                TimerTarget::Tx(id, timer) => {
                    let step = match self.txs.get_mut(&id).map(|tx| &mut tx.machine) {
                        Some(Machine::ClientInvite(m)) => m.on_timer(timer, now),
                        Some(Machine::ServerInvite(m)) => m.on_timer(timer, now),
                        Some(Machine::ServerNonInvite(m)) => m.on_timer(timer, now),
                        Some(Machine::ClientNonInvite(m)) => m.on_timer(timer, now),
                        None => continue,
                    };
                    if step.send.is_some() {
                        self.stats.retransmissions_sent += 1;
                    }
                    self.apply_step(id, step, now);
                }
                TimerTarget::Call(handle, timer, generation) => {
                    self.on_call_timer(handle, timer, generation, now)
                }
            }
        }
    }

    /// A TCP connection to `remote` could not be opened: every client
    /// transaction waiting on it fails now (RFC 3261 §17.1.4), rather than
    /// at timer B or F, so that a transfer to an agent that is down goes
    /// to its fallback at once.
    pub fn handle_tcp_failure(&mut self, remote: SocketAddr, now: Instant) {
        let failed: Vec<u64> = self
            .txs
            .iter()
            .filter(|(_, tx)| {
                tx.flow.transport.is_reliable()
                    && tx.flow.remote == remote
                    && matches!(tx.key, TxKey::Client { .. })
            })
            .map(|(&id, _)| id)
            .collect();
        for id in failed {
            let step = TxStep {
                terminated: true,
                notice: Some(TuNotice::TransportError),
                ..TxStep::default()
            };
            self.apply_step(id, step, now);
        }
    }

    fn on_call_timer(
        &mut self,
        handle: CallHandle,
        timer: CallTimer,
        generation: u32,
        now: Instant,
    ) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if timer == CallTimer::TransferTimeout {
            if call.transfer_generation == generation {
                self.finish_transfer(handle, Some(TransferFailure::TimedOut));
            }
            return;
        }
        if call.ack_generation != generation {
            return;
        }
        let Some(awaiting) = call.awaiting_ack.as_mut() else {
            return;
        };
        match timer {
            CallTimer::Retransmit2xx => {
                awaiting.interval = (awaiting.interval * 2).min(self.config.timers.t2);
                let (bytes, flow, next) = (
                    awaiting.response.clone(),
                    call.flow,
                    now + awaiting.interval,
                );
                self.stats.retransmissions_sent += 1;
                self.transmit(flow, bytes);
                self.arm(
                    next,
                    TimerTarget::Call(handle, CallTimer::Retransmit2xx, generation),
                );
            }
            CallTimer::AckTimeout => {
                tracing::info!(call_id = %call.dialog.id.call_id, "no ACK for our 2xx, ending the call");
                call.awaiting_ack = None;
                call.ack_generation += 1;
                call.state = CallState::Confirmed;
                self.send_bye(handle, now);
                self.end_call(handle, EndReason::AckTimeout, now);
            }
            CallTimer::TransferTimeout => {}
        }
    }
}

/// The caller (the From URI's user) and the dialled number (the
/// Request-URI's user) of an INVITE.
fn parties(request: &Message) -> (Option<String>, Option<String>) {
    let caller = request
        .header("From")
        .and_then(|f| NameAddr::parse(f).ok())
        .and_then(|f| Uri::parse(&f.uri).ok())
        .and_then(|u| u.user);
    let dialled = request
        .request_uri()
        .and_then(|u| Uri::parse(u).ok())
        .and_then(|u| u.user);
    (caller, dialled)
}

fn code_of(response: &Message) -> u16 {
    response.status().unwrap_or(500)
}

fn capitalise(reason: &str) -> String {
    let mut chars = reason.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn capabilities() -> [(&'static str, &'static str); 3] {
    [("Allow", ALLOW), ("Accept", ACCEPT), ("Supported", "")]
}

fn contact_header(flow: Flow, dialog: &Dialog) -> String {
    // Our Contact user is the number the caller dialled, so that a peer
    // that routes on it gets back to the same entry point.
    let user: String = NameAddr::parse(&dialog.local_uri)
        .ok()
        .and_then(|n| Uri::parse(&n.uri).ok())
        .and_then(|u| u.user)
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.!~*'()+".contains(*c))
        .collect();
    let user = if user.is_empty() { "hotline" } else { &user };
    // A secure dialog gets a sips: Contact (RFC 3261 §12.1.1); a sip: one
    // over TLS says so with `transport=tls`, which is how SIPp, baresip
    // and the common PBXs mark TLS on a sip: URI (RFC 5630 §3.1.3 leaves
    // it as a hop-by-hop hint, not a promise of end-to-end TLS).
    match flow.transport {
        Transport::Tls if dialog.secure => format!("<sips:{user}@{}>", flow.local),
        Transport::Tls => format!("<sip:{user}@{};transport=tls>", flow.local),
        Transport::Udp => format!("<sip:{user}@{}>", flow.local),
        Transport::Tcp => format!("<sip:{user}@{};transport=tcp>", flow.local),
    }
}

#[cfg(test)]
mod tests;
