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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// TLS over TCP (RFC 3261 §26).
    Tls,
}

impl Transport {
    /// Stream transports: no retransmission, one connection per peer.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The name in metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The transport a request to `uri` goes over: TLS for `sips:` (RFC
    /// 3261 §26.2) or `;transport=tls`, TCP for `;transport=tcp`, else UDP.
    pub fn for_uri(uri: &Uri) -> Transport {
        if uri.scheme == "sips" {
            return Transport::Tls;
        }
        let param = uri.param("transport").and_then(|p| p.value.as_deref());
        match param.map(str::to_ascii_lowercase).as_deref() {
            Some("tls") => Transport::Tls,
            Some("tcp") => Transport::Tcp,
            _ => Transport::Udp,
        }
    }
}

/// A path to a peer: which transport and socket a message came in on or
/// goes out by. `local` is the address we advertise in Via and Contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub transport: Transport,
    /// Index of the listening socket (UDP) the flow belongs to.
    pub listener: usize,
    /// The TCP connection, when one exists; `None` asks the transport to
    /// open (or reuse) a connection to `remote`.
    pub connection: Option<u64>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Bytes to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub flow: Flow,
    pub bytes: Bytes,
    /// TLS: the name a new connection checks the server's certificate
    /// against, when it is a host name we dialled (a transfer target);
    /// `None`: the remote's IP address.
    pub server_name: Option<String>,
}

/// The application's handle for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    RemoteBye,
    LocalHangup,
    Cancelled,
    /// Our 2xx was never acknowledged; the gateway sent BYE.
    AckTimeout,
    /// The application rejected the call with this status.
    Rejected(u16),
}

impl EndReason {
    pub fn label(self) -> &'static str {
        match self {
            EndReason::RemoteBye => "remote_bye",
            EndReason::LocalHangup => "local_hangup",
            EndReason::Cancelled => "cancelled",
            EndReason::AckTimeout => "ack_timeout",
            EndReason::Rejected(_) => "rejected",
        }
    }
}

/// An INVITE admission refused, and why (`503 capacity`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedCall {
    pub call_id: String,
    pub caller: Option<String>,
    pub dialled: Option<String>,
    pub reason: String,
}

/// A new INVITE that passed admission; the application must answer it
/// with `accept` or `reject`.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    pub call: CallHandle,
    /// The SIP Call-ID, for logs.
    pub call_id: String,
    /// The dialled number: the Request-URI user part.
    pub dialled: Option<String>,
    /// The caller: the From URI user part.
    pub caller: Option<String>,
    /// The SDP offer, if the INVITE carried one.
    pub offer: Option<Bytes>,
    pub flow: Flow,
    pub invite: Message,
}

/// Why a blind transfer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferFailure {
    /// The caller's side refused the REFER with this status.
    Refused(u16),
    /// Nothing answered the REFER (timer F).
    NoAnswer,
    /// The transferee's call to the target failed with this status (the
    /// final NOTIFY's sipfrag).
    TargetFailed(u16),
    /// The subscription ended without a final status.
    Abandoned,
    /// No final NOTIFY within the transfer's time limit.
    TimedOut,
}

impl TransferFailure {
    pub fn label(self) -> &'static str {
        match self {
            TransferFailure::Refused(_) => "refused",
            TransferFailure::NoAnswer => "no_answer",
            TransferFailure::TargetFailed(_) => "target_failed",
            TransferFailure::Abandoned => "abandoned",
            TransferFailure::TimedOut => "timed_out",
        }
    }

    /// The SIP status behind the failure, when there is one.
    pub fn status(self) -> Option<u16> {
        match self {
            TransferFailure::Refused(code) | TransferFailure::TargetFailed(code) => Some(code),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    IncomingCall(Box<IncomingCall>),
    /// The ACK arrived; `sdp` is the answer when our 2xx carried the offer.
    CallConfirmed {
        call: CallHandle,
        sdp: Option<Bytes>,
    },
    /// A re-INVITE or UPDATE arrived; answer with `accept` or `reject`.
    /// `sdp` is `None` for an offerless re-INVITE (our 2xx then offers).
    Reoffer {
        call: CallHandle,
        sdp: Option<Bytes>,
    },
    /// An in-dialog INFO (DTMF relay and the like), already answered 200.
    Info {
        call: CallHandle,
        content_type: String,
        body: Bytes,
    },
    CallEnded {
        call: CallHandle,
        reason: EndReason,
    },
    /// A new INVITE refused by admission (capacity, rate, draining), for
    /// its call record.
    CallRefused(Box<RefusedCall>),
    /// The transferee reached the transfer target (a 2xx sipfrag). The
    /// call stays up until the application hangs up or the caller does.
    TransferSucceeded {
        call: CallHandle,
    },
    /// The transfer failed; the call goes on with us.
    TransferFailed {
        call: CallHandle,
        reason: TransferFailure,
    },
    /// A call we placed ([`Endpoint::call_out`]) was answered and ACKed;
    /// `sdp` is the answer to our offer. It ends with `CallEnded`.
    OutgoingAnswered {
        leg: CallHandle,
        sdp: Bytes,
    },
    /// A call we placed did not reach the target; nothing more comes for
    /// `leg`.
    OutgoingFailed {
        leg: CallHandle,
        failure: UacFailure,
    },
}

/// A call the gateway places (the agent leg of a bridged transfer).
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    /// The target's `sip:` or `sips:` URI. `;transport=tcp` sends the
    /// INVITE over TCP; `sips:` or `;transport=tls` over TLS, checking
    /// the target's certificate against the URI's host.
    pub target: String,
    /// Where to send it: the URI's host resolved by the caller (the
    /// endpoint does no DNS); the first of the call's address family.
    pub addresses: Vec<SocketAddr>,
    /// The From user: the caller's number, so the agent sees who it is.
    pub from_user: String,
    /// Extra headers (the transfer context).
    pub headers: Vec<(String, String)>,
    /// Our SDP offer.
    pub sdp: Bytes,
    /// Username and password for digest challenges.
    pub credentials: Option<(String, String)>,
    /// Ringing longer than this sends CANCEL and fails the call.
    pub ring_timeout: Duration,
    /// Where the call leaves from.
    pub origin: Origin,
}

/// Where a call we place leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The flow of the call on whose behalf we call (a bridged transfer's
    /// caller): its socket and address family are used.
    Call(CallHandle),
    /// A call of our own (an outbound campaign): the listener and local
    /// address the transports chose for the target.
    Listener { listener: usize, local: SocketAddr },
}

/// The stream connections live calls and transactions depend on: by
/// connection, or by peer address for flows that have not picked one yet.
/// The transports keep these open however long they are idle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionsInUse {
    pub ids: HashSet<u64>,
    pub remotes: HashSet<SocketAddr>,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests_received: u64,
    pub responses_received: u64,
    pub malformed: u64,
    pub retransmissions_sent: u64,
    pub retransmissions_received: u64,
    pub calls_offered: u64,
    pub calls_answered: u64,
    pub refused_acl: u64,
    pub refused_capacity: u64,
    pub refused_rate: u64,
    pub refused_draining: u64,
}

#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub timers: TimerValues,
    /// Product token for Server and User-Agent headers.
    pub user_agent: String,
    pub admission: AdmissionPolicy,
}

/// Errors the application can get from a call operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no such call")]
    NoSuchCall,
    #[error("the call has no offer waiting for an answer")]
    NothingPending,
    #[error("the call is not established (no ACK yet)")]
    NotEstablished,
    #[error("a transfer of this call is already in progress")]
    TransferInProgress,
    #[error("the target is not a sip: or sips: URI with an address of the call's family")]
    BadTarget,
}

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

    fn handle_request(&mut self, request: Message, flow: Flow, now: Instant) {
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
        if super::route::strip_own_route(&mut request, flow.local) {
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

    fn handle_new_request(
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

    fn handle_new_invite(
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

    fn handle_cancel(&mut self, request: &Message, key: TxKey, flow: Flow, now: Instant) {
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

    fn handle_in_dialog(
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
                let media_type = super::message::media_type(&content_type);
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

    fn handle_reoffer(
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
    fn handle_notify(
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
            if super::message::media_type(content_type) != "message/sipfrag" {
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
    fn on_refer_response(&mut self, handle: CallHandle, code: u16) {
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
    fn finish_transfer(&mut self, handle: CallHandle, failure: Option<TransferFailure>) {
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

    fn handle_ack(&mut self, ack: &Message, key: &TxKey, now: Instant) {
        if let Some(&id) = self.tx_index.get(&key.with_method("INVITE")) {
            if let Some(Tx {
                machine: Machine::ServerInvite(m),
                ..
            }) = self.txs.get_mut(&id)
            {
                // An ACK on the INVITE's own branch acknowledges a non-2xx;
                // after a 2xx it is a (non-compliant) 2xx ACK for the dialog.
                if m.state != super::transaction::ServerInviteState::Accepted {
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

    fn dialog_of(&self, request: &Message) -> Option<CallHandle> {
        let to = NameAddr::parse(request.header("To")?).ok()?;
        let from = NameAddr::parse(request.header("From")?).ok()?;
        let id = DialogId {
            call_id: request.header("Call-ID")?.to_string(),
            local_tag: to.tag()?.to_string(),
            remote_tag: from.tag().unwrap_or_default().to_string(),
        };
        self.dialogs.get(&id).copied()
    }

    fn handle_response(&mut self, response: Message, now: Instant) {
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

    /// Starts an INVITE client transaction for `invite` (no Via yet).
    fn send_invite(&mut self, leg: CallHandle, mut invite: Message, now: Instant) {
        let Some(flow) = self.outgoing.get(&leg).map(|o| o.flow) else {
            return;
        };
        let branch = new_branch();
        invite.headers.insert(
            0,
            super::message::Header {
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

    fn on_outgoing_response(&mut self, leg: CallHandle, response: &Message, now: Instant) {
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

    fn on_ring_timeout(&mut self, leg: CallHandle, now: Instant) {
        let step = match self.outgoing.get_mut(&leg) {
            Some(outgoing) => outgoing.uac.on_ring_timeout(),
            None => return,
        };
        self.apply_uac_step(leg, step, None, now);
    }

    /// Carries out what the UAC machine decided.
    fn apply_uac_step(
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

    fn fail_outgoing(&mut self, leg: CallHandle, failure: UacFailure) {
        self.outgoing.remove(&leg);
        tracing::info!(?failure, "the transfer target was not reached");
        self.events
            .push_back(Event::OutgoingFailed { leg, failure });
    }

    /// ACKs the 2xx to our INVITE and makes the leg a confirmed call of
    /// its own (BYE either way, in-dialog requests); returns the answer
    /// SDP, or `None` when the 2xx cannot make a dialog.
    fn confirm_outgoing(&mut self, leg: CallHandle, response: &Message) -> Option<Bytes> {
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
            super::message::Header {
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
    fn send_cancel(&mut self, cancel: Message, flow: Flow, now: Instant) {
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

    /// Sends a final non-2xx to the call's pending INVITE/UPDATE, if any.
    fn finish_pending_invite(&mut self, handle: CallHandle, code: u16, now: Instant) {
        self.finish_pending_invite_with(handle, code, &[], now);
    }

    fn finish_pending_invite_with(
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
    fn end_call(&mut self, handle: CallHandle, reason: EndReason, now: Instant) {
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

    fn send_bye(&mut self, handle: CallHandle, now: Instant) {
        if let Some((bye, flow)) = self.in_dialog_request(handle, Method::Bye) {
            self.send_request(bye, flow, None, now);
        }
    }

    /// A new request in the call's dialog, and the flow it goes out on: to
    /// the first route or the remote target when that is an IP literal (on
    /// its transport), else back where the call came from. A dialog that
    /// runs over TLS stays on TLS whatever the target says: a request of a
    /// secure call never goes out in clear text.
    fn in_dialog_request(&mut self, handle: CallHandle, method: Method) -> Option<(Message, Flow)> {
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
    fn send_request(
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
            super::message::Header {
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

    fn start_server_tx(
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
    fn reply_new(
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
    fn respond_in_tx(
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

    fn apply_step(&mut self, id: u64, step: TxStep, now: Instant) {
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

fn server_key(request: &Message, top_via: &Via, method: &Method) -> TxKey {
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

fn merge_key(request: &Message) -> Option<MergeKey> {
    let from_tag = NameAddr::parse(request.header("From")?)
        .ok()?
        .tag()?
        .to_string();
    let cseq = CSeq::parse(request.header("CSeq")?).ok()?.seq;
    Some((request.header("Call-ID")?.to_string(), from_tag, cseq))
}

/// Option tags in Require that we do not support (we support none yet).
fn unsupported_extensions(request: &Message) -> String {
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
fn check_session_body(request: &Message) -> Result<(), Refused> {
    if !request.body.is_empty() {
        let content_type = request.header("Content-Type").unwrap_or_default();
        if super::message::media_type(content_type) != "application/sdp" {
            return Err((415, vec![("Accept", "application/sdp")]));
        }
    }
    if request.has_header("Accept") {
        let accepts_sdp = request.header_values("Accept").any(|value| {
            matches!(
                super::message::media_type(value).as_str(),
                "application/sdp" | "application/*" | "*/*"
            )
        });
        if !accepts_sdp {
            return Err((406, Vec::new()));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
