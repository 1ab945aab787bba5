//! The running gateway: binds the transports, owns the SIP endpoint in one
//! task, and glues calls to media. This file and `sip/transport.rs` hold
//! every network `await` of the signalling path.
//!
//! Shutdown is designed in: [`Server::shutdown`] (or SIGTERM in `main`)
//! makes new calls get 503, lets live calls run up to the drain timeout,
//! then ends them with BYE, waits briefly for the BYEs to be answered and
//! returns.

use crate::config::Config;
use crate::media::pacer::{self, OutboundStream, PacerCommand};
use crate::media::ports::RtpPortPool;
use crate::sip::endpoint::{CallHandle, Endpoint, EndpointConfig, Event, IncomingCall};
use crate::sip::sdp::{self, Codec, Direction, LocalMedia, MediaPolicy, NegotiatedMedia};
use crate::sip::transport::{Inbound, Transports};
use anyhow::Context;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How many inbound items the endpoint's task takes per wake-up.
const BATCH: usize = 256;
/// After the final BYEs, how long to wait for their answers.
const BYE_GRACE: Duration = Duration::from_secs(2);

/// A started gateway: its bound addresses and a way to stop it.
pub struct Server {
    pub udp_addrs: Vec<SocketAddr>,
    pub tcp_addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds every socket and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let policy = config.media_policy().map_err(anyhow::Error::msg)?;
        let advertised = match config.sip.advertised_address.as_str() {
            "" => None,
            ip => Some(ip.parse::<IpAddr>().context("sip.advertised_address")?),
        };
        let (inbox_tx, inbox) = mpsc::channel(16_384);
        let transports = Transports::bind(&config.sip.udp, &config.sip.tcp, advertised, inbox_tx)?;
        let endpoint = Endpoint::new(EndpointConfig {
            timers: config.timer_values(),
            user_agent: config.sip.user_agent.clone(),
            admission: config.admission_policy(),
        });
        let (pacer, _pacer_task) = pacer::spawn();
        let (stop, stopped) = watch::channel(false);
        let (udp_addrs, tcp_addrs) = (transports.udp_addrs.clone(), transports.tcp_addrs.clone());
        tracing::info!(udp = ?udp_addrs, tcp = ?tcp_addrs, "SIP listening");
        let core = Core {
            endpoint,
            transports,
            calls: HashMap::new(),
            ports: RtpPortPool::new(
                config.media.rtp_bind,
                config.media.rtp_bind_v6,
                config.media.rtp_port_min,
                config.media.rtp_port_max,
            ),
            policy,
            advertised,
            max_duration: Duration::from_secs(config.calls.max_duration_secs),
            drain_timeout: Duration::from_secs(config.shutdown.drain_timeout_secs),
            pacer,
            limits: BinaryHeap::new(),
        };
        let task = tokio::spawn(core.run(inbox, stopped));
        Ok(Server {
            udp_addrs,
            tcp_addrs,
            stop,
            task,
        })
    }

    /// Starts the graceful stop and waits until it is complete.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// A handle that starts the graceful stop (for signal handlers).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Media state of one call.
struct CallMedia {
    call_id: String,
    local: LocalMedia,
}

struct Core {
    endpoint: Endpoint,
    transports: Transports,
    calls: HashMap<CallHandle, CallMedia>,
    ports: RtpPortPool,
    policy: MediaPolicy,
    advertised: Option<IpAddr>,
    max_duration: Duration,
    drain_timeout: Duration,
    pacer: mpsc::UnboundedSender<PacerCommand>,
    /// When each answered call reaches its maximum duration.
    limits: BinaryHeap<Reverse<(Instant, CallHandle)>>,
}

impl Core {
    async fn run(mut self, mut inbox: mpsc::Receiver<Inbound>, mut stop: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut drain_deadline: Option<Instant> = None;
        let mut exit_deadline: Option<Instant> = None;
        loop {
            let next_limit = self.limits.peek().map(|Reverse((at, _))| *at);
            let wake = [
                self.endpoint.poll_timeout(),
                next_limit,
                drain_deadline,
                exit_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                received = inbox.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return;
                    }
                    let now = Instant::now();
                    for item in batch.drain(..) {
                        self.handle_inbound(item, now);
                    }
                }
                _ = sleep_until(wake) => {}
                // A dropped `Server` handle stops the gateway too.
                _ = stop.changed(), if drain_deadline.is_none() => {
                    tracing::info!(active_calls = self.endpoint.active_calls(), "draining: new calls get 503");
                    self.endpoint.set_draining(true);
                    drain_deadline = Some(Instant::now() + self.drain_timeout);
                }
            }
            let now = Instant::now();
            self.endpoint.handle_timeout(now);
            self.enforce_limits(now);
            self.flush(now);
            if let Some(deadline) = drain_deadline {
                if exit_deadline.is_none() && (self.endpoint.active_calls() == 0 || now >= deadline)
                {
                    if self.endpoint.active_calls() > 0 {
                        tracing::info!(
                            active_calls = self.endpoint.active_calls(),
                            "drain timeout: ending live calls"
                        );
                    }
                    self.endpoint.hangup_all(now);
                    self.flush(now);
                    exit_deadline = Some(now + BYE_GRACE);
                }
            }
            if let Some(deadline) = exit_deadline {
                // Leave once our BYEs are answered or the grace period is over.
                // (server transactions left only absorb retransmissions).
                if now >= deadline || !self.endpoint.has_client_transactions() {
                    tracing::info!("stopped");
                    return;
                }
            }
        }
    }

    /// Ends answered calls that reached the configured maximum duration.
    fn enforce_limits(&mut self, now: Instant) {
        while let Some(Reverse((at, call))) = self.limits.peek().copied() {
            if at > now {
                return;
            }
            self.limits.pop();
            if let Some(media) = self.calls.get(&call) {
                tracing::info!(call_id = %media.call_id, "call reached its time limit");
                let _ = self.endpoint.hangup(call, now);
            }
        }
    }

    fn handle_inbound(&mut self, item: Inbound, now: Instant) {
        match item {
            Inbound::Message { bytes, flow } => self.endpoint.handle_message(&bytes, flow, now),
            Inbound::TcpOpened { id, remote, writer } => {
                self.transports.on_opened(id, remote, writer)
            }
            Inbound::TcpClosed { id } => {
                // Answers to what this connection sent last (often a 400
                // for unframeable input, handed over just before the close)
                // must be queued on it before it is forgotten; otherwise
                // they would go out on a new connection to the peer's
                // ephemeral port and be lost.
                self.flush(now);
                self.transports.on_closed(id)
            }
        }
    }

    fn call_id(&self, call: CallHandle) -> &str {
        self.calls.get(&call).map_or("", |c| c.call_id.as_str())
    }

    /// Sends what the endpoint produced and acts on its events until both
    /// queues are empty.
    fn flush(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.endpoint.poll_transmit() {
                self.transports.send(transmit);
                progressed = true;
            }
            while let Some(event) = self.endpoint.poll_event() {
                self.handle_event(event, now);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn handle_event(&mut self, event: Event, now: Instant) {
        match event {
            Event::IncomingCall(incoming) => self.answer(*incoming, now),
            Event::CallConfirmed { call, sdp } => {
                let span = tracing::info_span!("call", call_id = %self.call_id(call)).entered();
                if let Some(answer) = sdp {
                    self.apply_answer(call, &answer, now);
                }
                tracing::debug!("confirmed");
                drop(span);
            }
            Event::Reoffer { call, sdp } => self.answer_reoffer(call, sdp, now),
            Event::Info {
                call,
                content_type,
                body,
            } => {
                tracing::debug!(call_id = %self.call_id(call), %content_type, len = body.len(), "INFO received");
            }
            Event::CallEnded { call, reason } => {
                if let Some(media) = self.calls.remove(&call) {
                    tracing::info!(call_id = %media.call_id, reason = reason.label(), "call ended");
                    let _ = self.pacer.send(PacerCommand::Stop(call));
                }
            }
        }
    }

    /// Negotiates media and answers a new call, or rejects it with 488
    /// (no common codec) or 503 (no RTP port).
    fn answer(&mut self, incoming: IncomingCall, now: Instant) {
        let _span = tracing::info_span!("call", call_id = %incoming.call_id).entered();
        tracing::info!(
            from = incoming.caller.as_deref().unwrap_or("-"),
            dialled = incoming.dialled.as_deref().unwrap_or("-"),
            source = %incoming.flow.remote,
            "incoming call"
        );
        let call = incoming.call;
        // Media in the family of the signalling: an IPv6 caller gets IPv6 RTP.
        let ipv6 = incoming.flow.local.is_ipv6();
        let socket = match self.ports.allocate(ipv6) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port, refusing the call");
                let _ = self.endpoint.reject(call, 503, now);
                return;
            }
        };
        let address = self
            .advertised
            .filter(|a| a.is_ipv6() == ipv6)
            .unwrap_or_else(|| incoming.flow.local.ip());
        let Ok(rtp_port) = socket.local_addr().map(|a| a.port()) else {
            let _ = self.endpoint.reject(call, 503, now);
            return;
        };
        let local = LocalMedia {
            address,
            rtp_port,
            session_id: rand::random::<u32>().into(),
            session_version: 1,
        };
        let negotiated = match incoming.offer.as_deref() {
            Some(offer) => {
                let result = sdp::parse_body(offer)
                    .and_then(|offer| sdp::answer(&offer, &self.policy, &local));
                match result {
                    Ok((answer, negotiated)) => Some((answer, negotiated)),
                    Err(e) => {
                        tracing::info!(error = %e, "offer not acceptable");
                        let _ = self.endpoint.reject(call, 488, now);
                        return;
                    }
                }
            }
            None => None,
        };
        let body = match &negotiated {
            Some((answer, _)) => answer.clone(),
            None => sdp::offer(&self.policy, &local, Direction::SendRecv),
        };
        let socket = match tokio::net::UdpSocket::from_std(socket) {
            Ok(socket) => Arc::new(socket),
            Err(e) => {
                tracing::warn!(error = %e, "cannot register RTP socket");
                let _ = self.endpoint.reject(call, 503, now);
                return;
            }
        };
        if self.endpoint.accept(call, Bytes::from(body), now).is_err() {
            return;
        }
        let stream = match negotiated.map(|(_, n)| n) {
            Some(n) => outbound(socket, &n),
            // Offerless INVITE: nothing is sent until the ACK's answer.
            None => OutboundStream {
                socket,
                remote: None,
                payload_type: Codec::Pcmu.payload_type(),
                silence: silence_of(Codec::Pcmu),
                sending: false,
            },
        };
        let _ = self.pacer.send(PacerCommand::Start(call, stream));
        self.calls.insert(
            call,
            CallMedia {
                call_id: incoming.call_id.clone(),
                local,
            },
        );
        self.limits.push(Reverse((now + self.max_duration, call)));
    }

    fn answer_reoffer(&mut self, call: CallHandle, offer: Option<Bytes>, now: Instant) {
        let Some(media) = self.calls.get_mut(&call) else {
            let _ = self.endpoint.reject(call, 481, now);
            return;
        };
        let _span = tracing::info_span!("call", call_id = %media.call_id).entered();
        media.local.session_version += 1;
        let local = media.local;
        let Some(offer) = offer else {
            let body = sdp::offer(&self.policy, &local, Direction::SendRecv);
            let _ = self.endpoint.accept(call, Bytes::from(body), now);
            return;
        };
        let result =
            sdp::parse_body(&offer).and_then(|offer| sdp::answer(&offer, &self.policy, &local));
        match result {
            Ok((answer, negotiated)) => {
                tracing::info!(direction = ?negotiated.direction, "media renegotiated");
                let _ = self.endpoint.accept(call, Bytes::from(answer), now);
                self.redirect(call, &negotiated);
            }
            Err(e) => {
                tracing::info!(error = %e, "re-offer not acceptable");
                let _ = self.endpoint.reject(call, 488, now);
            }
        }
    }

    fn apply_answer(&mut self, call: CallHandle, answer: &Bytes, now: Instant) {
        let negotiated =
            sdp::parse_body(answer).and_then(|answer| sdp::accept_answer(&answer, &self.policy));
        match negotiated {
            Ok(negotiated) => self.redirect(call, &negotiated),
            Err(e) => {
                tracing::info!(error = %e, "answer in ACK not usable, ending the call");
                let _ = self.endpoint.hangup(call, now);
            }
        }
    }

    fn redirect(&self, call: CallHandle, negotiated: &NegotiatedMedia) {
        let _ = self.pacer.send(PacerCommand::Redirect {
            call,
            remote: negotiated.remote_rtp,
            payload_type: negotiated.payload_type,
            silence: silence_of(negotiated.codec),
            sending: may_send(negotiated.direction),
        });
    }
}

fn outbound(socket: Arc<tokio::net::UdpSocket>, negotiated: &NegotiatedMedia) -> OutboundStream {
    OutboundStream {
        socket,
        remote: negotiated.remote_rtp,
        payload_type: negotiated.payload_type,
        silence: silence_of(negotiated.codec),
        sending: may_send(negotiated.direction),
    }
}

fn may_send(direction: Direction) -> bool {
    matches!(direction, Direction::SendRecv | Direction::SendOnly)
}

/// The G.711 code word for a zero sample.
fn silence_of(codec: Codec) -> u8 {
    match codec {
        Codec::Pcmu => 0xFF,
        Codec::Pcma => 0xD5,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
