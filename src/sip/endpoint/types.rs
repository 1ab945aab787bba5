//! The endpoint's public vocabulary: transports and flows, what it
//! sends (`Transmit`) and reports (`Event`), call handles, end reasons,
//! outgoing requests, statistics and configuration.

use super::*;

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
