//! The SIP transport shells: UDP sockets, and the listeners and table of
//! stream connections (TCP, and TLS over TCP).
//!
//! Receive tasks turn datagrams and framed stream messages into
//! [`Inbound`] items for the endpoint's task; [`Transports::send`] puts the
//! endpoint's [`Transmit`]s on the wire without blocking. Responses go back
//! on the connection the request came in on. A connection is admitted by
//! `connections` (trusted sources only, capped in total and per source)
//! and then served by `stream` (framing, timeouts, bounded buffers); a
//! listener out of file descriptors pauses instead of spinning. A TLS
//! connection is admitted the same way before its handshake (untrusted
//! sources never get one), and the handshake counts against the first
//! message's time limit; the configurations come from `tls`. Nothing
//! here interprets SIP beyond finding message boundaries.

use super::connections::{ConnectionGate, ConnectionPolicy};
use super::endpoint::{ConnectionsInUse, Flow, Transmit, Transport};
use super::message::MAX_MESSAGE_SIZE;
use super::stream::{self, Close, Link, Origin, StreamSettings};
use super::tls::{self, TlsContext};
use crate::log_throttle::LogThrottle;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// What the transports hand to the endpoint's task.
#[derive(Debug)]
pub enum Inbound {
    Message {
        bytes: Bytes,
        flow: Flow,
    },
    /// A stream connection brought its first message (or we opened it):
    /// from now on messages to its peer can go on it.
    ConnectionOpened {
        id: u64,
        link: Link,
    },
    ConnectionClosed {
        id: u64,
    },
    /// A connection we opened to send something could not be made (over
    /// TCP, or TLS whose handshake failed): what was waiting to go to
    /// `remote` is lost.
    TcpConnectFailed {
        remote: SocketAddr,
    },
}

/// The limits every stream connection is held to (`[sip_connections]`).
#[derive(Debug, Clone)]
pub struct StreamLimits {
    pub policy: ConnectionPolicy,
    pub settings: StreamSettings,
}

/// How long an outgoing connection attempt may take (a TLS handshake
/// included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Accepting pauses this long after the first failure for want of
/// descriptors or memory, doubling up to `ACCEPT_PAUSE_MAX`.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);
/// How often to look whether a flood of connections has gone, and how
/// many must have gone for the memory they took to be given back.
const RELEASE_CHECK: Duration = Duration::from_secs(2);
const RELEASE_AFTER: usize = 256;

/// Chooses the address we advertise to a peer: the configured one, the
/// listener's own address, or for a wildcard listener the local address
/// the kernel would route to the peer from (looked up once per peer).
#[derive(Debug, Clone)]
struct Advertiser {
    configured: Option<IpAddr>,
    bound: SocketAddr,
    routes: HashMap<IpAddr, IpAddr>,
}

impl Advertiser {
    fn new(configured: Option<IpAddr>, bound: SocketAddr) -> Advertiser {
        Advertiser {
            configured,
            bound,
            routes: HashMap::new(),
        }
    }

    fn local_for(&mut self, remote: SocketAddr) -> SocketAddr {
        let ip = match self.configured {
            Some(ip) => ip,
            None if !self.bound.ip().is_unspecified() => self.bound.ip(),
            None => *self
                .routes
                .entry(remote.ip())
                .or_insert_with(|| route_source(remote).unwrap_or(IpAddr::from([127, 0, 0, 1]))),
        };
        SocketAddr::new(ip, self.bound.port())
    }
}

/// The source address the kernel picks for `remote` (no packet is sent).
fn route_source(remote: SocketAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = if remote.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = std::net::UdpSocket::bind(any)?;
    probe.connect(remote)?;
    Ok(probe.local_addr()?.ip())
}

struct UdpListener {
    socket: Arc<UdpSocket>,
}

/// What every stream listener and connection shares.
struct StreamShared {
    gate: Arc<ConnectionGate>,
    settings: StreamSettings,
    ids: AtomicU64,
    inbox: mpsc::Sender<Inbound>,
    /// The TLS configurations, when TLS is set up.
    tls: Option<Arc<TlsContext>>,
}

/// The bound sockets and live connections, owned by the endpoint's task.
pub struct Transports {
    udp: Vec<UdpListener>,
    tcp_local: Option<SocketAddr>,
    tls_local: Option<SocketAddr>,
    advertised: Option<IpAddr>,
    links: HashMap<u64, Link>,
    by_remote: HashMap<(Transport, SocketAddr), u64>,
    streams: Arc<StreamShared>,
    pub udp_addrs: Vec<SocketAddr>,
    pub tcp_addrs: Vec<SocketAddr>,
    pub tls_addrs: Vec<SocketAddr>,
}

/// Binds a UDP socket; IPv6 sockets are IPv6-only so that IPv4 and IPv6
/// can be listed separately on the same port.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Large buffers absorb bursts of thousands of calls per second.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

impl Transports {
    /// Binds UDP and TCP addresses (no TLS) and starts the receive tasks.
    pub fn bind(
        udp: &[SocketAddr],
        tcp: &[SocketAddr],
        advertised: Option<IpAddr>,
        limits: StreamLimits,
        inbox: mpsc::Sender<Inbound>,
    ) -> io::Result<Transports> {
        let addresses = SipAddresses {
            udp: udp.to_vec(),
            tcp: tcp.to_vec(),
            tls: Vec::new(),
        };
        Transports::bind_all(&addresses, advertised, limits, None, inbox)
    }

    /// Binds every configured address and starts the receive tasks.
    /// `tls` serves the TLS listeners (if any are configured it must have
    /// a certificate) and the TLS connections we open.
    pub fn bind_all(
        addresses: &SipAddresses,
        advertised: Option<IpAddr>,
        limits: StreamLimits,
        tls: Option<Arc<TlsContext>>,
        inbox: mpsc::Sender<Inbound>,
    ) -> io::Result<Transports> {
        let SipAddresses {
            udp,
            tcp,
            tls: tls_listen,
        } = addresses;
        let server_tls = match (&tls, tls_listen.is_empty()) {
            (_, true) => None,
            (Some(context), false) if context.server_config().is_some() => Some(context.clone()),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "SIP TLS listeners need a certificate (sip.tls_cert_file, sip.tls_key_file)",
                ))
            }
        };
        let streams = Arc::new(StreamShared {
            gate: ConnectionGate::new(limits.policy),
            settings: limits.settings,
            ids: AtomicU64::new(1),
            inbox: inbox.clone(),
            tls,
        });
        let mut transports = Transports {
            udp: Vec::new(),
            tcp_local: None,
            tls_local: None,
            advertised,
            links: HashMap::new(),
            by_remote: HashMap::new(),
            streams: streams.clone(),
            udp_addrs: Vec::new(),
            tcp_addrs: Vec::new(),
            tls_addrs: Vec::new(),
        };
        for (index, addr) in udp.iter().enumerate() {
            let socket = Arc::new(bind_udp(*addr).map_err(|e| annotate(e, "UDP", *addr))?);
            let bound = socket.local_addr()?;
            transports.udp_addrs.push(bound);
            tokio::spawn(receive_udp(
                socket.clone(),
                index,
                Advertiser::new(advertised, bound),
                inbox.clone(),
            ));
            transports.udp.push(UdpListener { socket });
        }
        tokio::spawn(release_memory_after_floods(
            streams.gate.clone(),
            inbox.clone(),
        ));
        for addr in tcp {
            let listener = bind_tcp(*addr).map_err(|e| annotate(e, "TCP", *addr))?;
            let bound = listener.local_addr()?;
            transports.tcp_addrs.push(bound);
            transports.tcp_local.get_or_insert(bound);
            tokio::spawn(accept_streams(
                listener,
                Advertiser::new(advertised, bound),
                streams.clone(),
                Arc::new(PlainTcp),
            ));
        }
        if let Some(context) = server_tls {
            let handshake = Arc::new(TlsHandshake::new(context));
            for addr in tls_listen {
                let listener = bind_tcp(*addr).map_err(|e| annotate(e, "TLS", *addr))?;
                let bound = listener.local_addr()?;
                transports.tls_addrs.push(bound);
                transports.tls_local.get_or_insert(bound);
                tokio::spawn(accept_streams(
                    listener,
                    Advertiser::new(advertised, bound),
                    streams.clone(),
                    handshake.clone(),
                ));
            }
        }
        Ok(transports)
    }

    pub fn on_opened(&mut self, id: u64, link: Link) {
        self.by_remote.insert((link.transport, link.remote), id);
        self.links.insert(id, link);
    }

    pub fn on_closed(&mut self, id: u64) {
        if let Some(link) = self.links.remove(&id) {
            let key = (link.transport, link.remote);
            if self.by_remote.get(&key) == Some(&id) {
                self.by_remote.remove(&key);
            }
        }
    }

    /// True while some connection is registered.
    pub fn has_connections(&self) -> bool {
        !self.links.is_empty()
    }

    /// How often [`Transports::mark_in_use`] should run: often enough that
    /// a connection a new call uses is marked well before it could idle out.
    pub fn in_use_interval(&self) -> Duration {
        (self.streams.settings.idle_timeout / 4).min(Duration::from_secs(1))
    }

    /// Tells each connection whether live calls or transactions use it;
    /// those are not closed for being idle.
    pub fn mark_in_use(&self, in_use: &ConnectionsInUse) {
        for (id, link) in &self.links {
            link.set_in_use(in_use.ids.contains(id) || in_use.remotes.contains(&link.remote));
        }
    }

    /// Sends without waiting: UDP by `try_send_to` (a full socket buffer
    /// drops the datagram like the network would; retransmission covers
    /// it), streams through the connection's queue or a new connection.
    /// The listener (its index) and local address a call we place to
    /// `remote` over `transport` leaves from: a listener of that transport
    /// and of the remote's address family. `None` when there is none.
    pub fn origin_for(
        &self,
        transport: Transport,
        remote: SocketAddr,
    ) -> Option<(usize, SocketAddr)> {
        let (listener, bound) = match transport {
            Transport::Udp => self.udp.iter().enumerate().find_map(|(index, l)| {
                l.socket
                    .local_addr()
                    .ok()
                    .filter(|a| a.is_ipv4() == remote.is_ipv4())
                    .map(|a| (index, a))
            })?,
            Transport::Tcp => (
                0,
                self.tcp_local.filter(|a| a.is_ipv4() == remote.is_ipv4())?,
            ),
            Transport::Tls => (
                0,
                self.tls_local.filter(|a| a.is_ipv4() == remote.is_ipv4())?,
            ),
        };
        Some((
            listener,
            Advertiser::new(self.advertised, bound).local_for(remote),
        ))
    }

    pub fn send(&mut self, transmit: Transmit) {
        let Transmit {
            flow,
            bytes,
            server_name,
        } = transmit;
        match flow.transport {
            Transport::Udp => self.send_udp(flow, bytes),
            Transport::Tcp | Transport::Tls => self.send_stream(flow, bytes, server_name),
        }
    }

    fn send_udp(&mut self, flow: Flow, bytes: Bytes) {
        let by_family = || {
            self.udp.iter().find(|l| {
                l.socket
                    .local_addr()
                    .is_ok_and(|a| a.is_ipv4() == flow.remote.is_ipv4())
            })
        };
        let listener = self
            .udp
            .get(flow.listener)
            .filter(|l| {
                l.socket
                    .local_addr()
                    .is_ok_and(|a| a.is_ipv4() == flow.remote.is_ipv4())
            })
            .or_else(by_family);
        let Some(listener) = listener else {
            tracing::warn!(remote = %flow.remote, "no UDP socket for this address family");
            return;
        };
        if let Err(e) = listener.socket.try_send_to(&bytes, flow.remote) {
            tracing::debug!(remote = %flow.remote, error = %e, "UDP send failed");
        }
    }

    fn send_stream(&mut self, flow: Flow, bytes: Bytes, server_name: Option<String>) {
        let id = flow
            .connection
            .filter(|id| {
                self.links
                    .get(id)
                    .is_some_and(|link| link.transport == flow.transport)
            })
            .or_else(|| self.by_remote.get(&(flow.transport, flow.remote)).copied());
        if let Some((id, link)) = id.and_then(|id| self.links.get(&id).map(|link| (id, link))) {
            if link.send(bytes).is_err() {
                // The peer reads nothing: everything for it would pile up.
                tracing::warn!(remote = %link.remote, "connection write queue full, closing it");
                crate::metrics::sip_connection_closed(link.transport, Close::WriteQueue.label());
                link.close();
                self.on_closed(id);
            }
            return;
        }
        let permit = match self.streams.gate.open_outgoing(flow.transport) {
            Ok(permit) => permit,
            Err(_) => {
                let failed = Inbound::TcpConnectFailed {
                    remote: flow.remote,
                };
                let _ = self.streams.inbox.try_send(failed);
                return;
            }
        };
        let bound = match flow.transport {
            Transport::Tls => self.tls_local,
            _ => self.tcp_local,
        };
        let local = bound.map_or(flow.local, |bound| {
            Advertiser::new(self.advertised, bound).local_for(flow.remote)
        });
        let id = self.streams.ids.fetch_add(1, Ordering::Relaxed);
        let flow = Flow {
            connection: Some(id),
            local,
            listener: 0,
            ..flow
        };
        let secure = match flow.transport {
            Transport::Tls => {
                let host = server_name.unwrap_or_else(|| flow.remote.ip().to_string());
                let config = self.streams.tls.as_ref().map(|tls| tls.client_config());
                match (config, tls::server_name(&host)) {
                    (Some(config), Some(name)) => Some((config, name)),
                    _ => {
                        tracing::warn!(%host, "cannot open a TLS connection: no TLS set up, or not a host name");
                        drop(permit);
                        let failed = Inbound::TcpConnectFailed {
                            remote: flow.remote,
                        };
                        let _ = self.streams.inbox.try_send(failed);
                        return;
                    }
                }
            }
            _ => None,
        };
        tokio::spawn(connect_stream(
            flow,
            bytes,
            secure,
            permit,
            self.streams.clone(),
        ));
    }
}

/// The addresses to listen on, per transport.
#[derive(Debug, Clone, Default)]
pub struct SipAddresses {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
}

fn annotate(error: io::Error, what: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("cannot bind SIP {what} {addr}: {error}"),
    )
}

async fn receive_udp(
    socket: Arc<UdpSocket>,
    listener: usize,
    mut advertiser: Advertiser,
    inbox: mpsc::Sender<Inbound>,
) {
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    loop {
        let (len, remote) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let datagram = &buf[..len];
        if datagram.iter().all(u8::is_ascii_whitespace) {
            continue; // CRLF keep-alive
        }
        let flow = Flow {
            transport: Transport::Udp,
            listener,
            connection: None,
            local: advertiser.local_for(remote),
            remote,
        };
        let message = Inbound::Message {
            bytes: Bytes::copy_from_slice(datagram),
            flow,
        };
        if inbox.send(message).await.is_err() {
            return;
        }
    }
}

/// What turns an accepted TCP connection into the byte stream SIP is
/// read from: the connection itself for TCP ([`PlainTcp`]), a session
/// after its handshake for TLS. Every listener admits through the same
/// gate before the upgrade, and the upgrade runs in the connection's own
/// task, within the message timeout counted from the accept, so that
/// every stream transport has the same limits, timeouts and counters.
pub trait Upgrade: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// The transport its streams carry (flows, metric labels).
    fn transport(&self) -> Transport;
    fn upgrade(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain SIP over TCP: the accepted connection is the stream.
pub struct PlainTcp;

impl Upgrade for PlainTcp {
    type Stream = TcpStream;

    fn transport(&self) -> Transport {
        Transport::Tcp
    }

    fn upgrade(&self, tcp: TcpStream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        std::future::ready(Ok(tcp))
    }
}

/// SIP over TLS: the accepted connection after the server side of its
/// handshake, with the certificate loaded when the handshake starts (a
/// reload changes new connections only). A failed handshake is logged
/// with its reason, once per source per minute.
struct TlsHandshake {
    context: Arc<TlsContext>,
    failures: std::sync::Mutex<LogThrottle<IpAddr>>,
}

impl TlsHandshake {
    fn new(context: Arc<TlsContext>) -> TlsHandshake {
        TlsHandshake {
            context,
            failures: std::sync::Mutex::new(LogThrottle::new(Duration::from_secs(60), 4096)),
        }
    }

    fn failed(&self, remote: SocketAddr, error: &io::Error) {
        let log = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(remote.ip(), Instant::now());
        if let Some(held_back) = log {
            tracing::info!(%remote, error = %tls::describe_handshake_error(error), held_back, "TLS handshake failed (more from this source within a minute are only counted)");
        }
    }
}

impl Upgrade for TlsHandshake {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;

    fn transport(&self) -> Transport {
        Transport::Tls
    }

    fn upgrade(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        let config = self.context.server_config();
        async move {
            let config = config.ok_or_else(|| io::Error::other("no TLS certificate loaded"))?;
            let remote = tcp.peer_addr();
            let secured = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await;
            if let (Err(error), Ok(remote)) = (&secured, remote) {
                self.failed(remote, error);
            }
            secured
        }
    }
}

/// Accepts connections while the endpoint's task runs: admitted ones are
/// upgraded and served, refused ones closed at once (reset, nothing read).
async fn accept_streams<U: Upgrade>(
    listener: TcpListener,
    mut advertiser: Advertiser,
    shared: Arc<StreamShared>,
    upgrade: Arc<U>,
) {
    let transport = upgrade.transport();
    let mut pause = ACCEPT_PAUSE_MIN;
    let mut failures = LogThrottle::new(Duration::from_secs(60), 1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.inbox.closed() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => {
                pause = ACCEPT_PAUSE_MIN;
                accepted
            }
            Err(error) => {
                if let Some(wait) = accept_failed(transport, &error, &mut pause, &mut failures) {
                    tokio::time::sleep(wait).await;
                }
                continue;
            }
        };
        let accepted_at = Instant::now();
        let permit = match shared.gate.admit(remote.ip(), transport, accepted_at) {
            Ok(permit) => permit,
            Err(_) => {
                refuse(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let flow = Flow {
            transport,
            listener: 0,
            connection: Some(shared.ids.fetch_add(1, Ordering::Relaxed)),
            local: advertiser.local_for(remote),
            remote,
        };
        let (shared, upgrade) = (shared.clone(), upgrade.clone());
        tokio::spawn(async move {
            let deadline = accepted_at + shared.settings.message_timeout;
            let stream = match tokio::time::timeout_at(deadline.into(), upgrade.upgrade(tcp)).await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(_)) | Err(_) => {
                    crate::metrics::sip_connection_closed(transport, Close::Handshake.label());
                    return;
                }
            };
            let origin = Origin::Accepted { at: accepted_at };
            let (settings, inbox) = (shared.settings.clone(), shared.inbox.clone());
            stream::serve(stream, flow, origin, permit, settings, inbox).await;
        });
    }
}

/// Once a flood of connections has gone, gives the memory it took back to
/// the system, so that the gateway's size comes back down.
async fn release_memory_after_floods(gate: Arc<ConnectionGate>, inbox: mpsc::Sender<Inbound>) {
    let mut every = tokio::time::interval(RELEASE_CHECK);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = inbox.closed() => return,
        }
        let gone = gate.fall_since_peak();
        if gone >= RELEASE_AFTER {
            crate::resources::release_free_memory();
            tracing::debug!(
                connections = gone,
                "memory given back after a flood of connections"
            );
        }
    }
}

/// Closes a refused connection at once with a reset, so that no
/// descriptor or TIME_WAIT state is kept for it.
fn refuse(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Decides what a failed `accept` means: `None` to go on at once (the
/// peer gave up before we took its connection), or how long to pause
/// (out of descriptors or memory, or an unknown error: pausing, doubling
/// `pause` each time, keeps a listener that cannot accept from spinning).
/// Counted each time, logged once a minute.
fn accept_failed(
    transport: Transport,
    error: &io::Error,
    pause: &mut Duration,
    failures: &mut LogThrottle<()>,
) -> Option<Duration> {
    use rustix::io::Errno;
    let kind = match Errno::from_io_error(error) {
        Some(Errno::CONNABORTED | Errno::CONNRESET | Errno::PROTO | Errno::PERM) => {
            tracing::debug!(%error, "accept: the peer gave up");
            return None;
        }
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => "descriptors",
        _ => "other",
    };
    crate::metrics::sip_accept_failed(transport, kind);
    let wait = *pause;
    *pause = (*pause * 2).min(ACCEPT_PAUSE_MAX);
    if let Some(held_back) = failures.note((), Instant::now()) {
        tracing::warn!(%error, transport = transport.via_token(), kind, held_back, pause_ms = wait.as_millis() as u64, "accept failed; pausing accepts (logged once a minute, counted in hotline_sip_accept_failures_total)");
    }
    Some(wait)
}

/// Opens a connection of ours to `flow.remote` (with a TLS handshake when
/// `secure` says with what and for which name) and sends `first` on it.
async fn connect_stream(
    flow: Flow,
    first: Bytes,
    secure: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    permit: super::connections::Permit,
    shared: Arc<StreamShared>,
) {
    let remote = flow.remote;
    let origin = Origin::Dialled { first };
    let (settings, inbox) = (shared.settings.clone(), shared.inbox.clone());
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let error = match tokio::time::timeout_at(deadline, TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            let Some((config, name)) = secure else {
                stream::serve(stream, flow, origin, permit, settings, inbox).await;
                return;
            };
            let connector = tokio_rustls::TlsConnector::from(config);
            let shown = name.to_str().into_owned();
            match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
                Ok(Ok(secured)) => {
                    stream::serve(secured, flow, origin, permit, settings, inbox).await;
                    return;
                }
                Ok(Err(e)) => {
                    crate::metrics::sip_connection_closed(Transport::Tls, Close::Handshake.label());
                    format!(
                        "TLS handshake with {shown} failed: {}",
                        tls::describe_handshake_error(&e)
                    )
                }
                Err(_) => {
                    crate::metrics::sip_connection_closed(Transport::Tls, Close::Handshake.label());
                    format!(
                        "TLS handshake with {shown} not done within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    )
                }
            }
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
    };
    drop(permit);
    tracing::info!(%remote, transport = flow.transport.via_token(), %error, "connect failed");
    let _ = shared
        .inbox
        .send(Inbound::TcpConnectFailed { remote })
        .await;
}
