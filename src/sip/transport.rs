//! The SIP transport shells: UDP sockets and TCP connections.
//!
//! Receive tasks turn datagrams and framed stream messages into
//! [`Inbound`] items for the endpoint's task; [`Transports::send`] puts the
//! endpoint's [`Transmit`]s on the wire without blocking. TCP messages are
//! framed by Content-Length, several per read or split over reads, and
//! responses go back on the connection the request came in on. Nothing
//! here interprets SIP beyond finding message boundaries.

use super::endpoint::{Flow, Transmit, Transport};
use super::message::{stream_frame_len, MAX_MESSAGE_SIZE};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// What the transports hand to the endpoint's task.
#[derive(Debug)]
pub enum Inbound {
    Message {
        bytes: Bytes,
        flow: Flow,
    },
    TcpOpened {
        id: u64,
        remote: SocketAddr,
        writer: mpsc::Sender<Bytes>,
    },
    TcpClosed {
        id: u64,
    },
    /// A connection we opened to send something could not be made: what
    /// was waiting to go to `remote` over TCP is lost.
    TcpConnectFailed {
        remote: SocketAddr,
    },
}

/// How long an outgoing TCP connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages queued for one TCP connection before we drop it as stuck.
const TCP_QUEUE: usize = 256;

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

struct Connection {
    writer: mpsc::Sender<Bytes>,
    remote: SocketAddr,
}

/// The bound sockets and live connections, owned by the endpoint's task.
pub struct Transports {
    udp: Vec<UdpListener>,
    tcp_local: Option<SocketAddr>,
    advertised: Option<IpAddr>,
    connections: HashMap<u64, Connection>,
    by_remote: HashMap<SocketAddr, u64>,
    next_connection: Arc<AtomicU64>,
    inbox: mpsc::Sender<Inbound>,
    pub udp_addrs: Vec<SocketAddr>,
    pub tcp_addrs: Vec<SocketAddr>,
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
    /// Binds every configured address and starts the receive tasks.
    pub fn bind(
        udp: &[SocketAddr],
        tcp: &[SocketAddr],
        advertised: Option<IpAddr>,
        inbox: mpsc::Sender<Inbound>,
    ) -> io::Result<Transports> {
        let next_connection = Arc::new(AtomicU64::new(1));
        let mut transports = Transports {
            udp: Vec::new(),
            tcp_local: None,
            advertised,
            connections: HashMap::new(),
            by_remote: HashMap::new(),
            next_connection: next_connection.clone(),
            inbox: inbox.clone(),
            udp_addrs: Vec::new(),
            tcp_addrs: Vec::new(),
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
        for addr in tcp {
            let listener = bind_tcp(*addr).map_err(|e| annotate(e, "TCP", *addr))?;
            let bound = listener.local_addr()?;
            transports.tcp_addrs.push(bound);
            transports.tcp_local.get_or_insert(bound);
            tokio::spawn(accept_tcp(
                listener,
                Advertiser::new(advertised, bound),
                next_connection.clone(),
                inbox.clone(),
            ));
        }
        Ok(transports)
    }

    pub fn on_opened(&mut self, id: u64, remote: SocketAddr, writer: mpsc::Sender<Bytes>) {
        self.by_remote.insert(remote, id);
        self.connections.insert(id, Connection { writer, remote });
    }

    pub fn on_closed(&mut self, id: u64) {
        if let Some(connection) = self.connections.remove(&id) {
            if self.by_remote.get(&connection.remote) == Some(&id) {
                self.by_remote.remove(&connection.remote);
            }
        }
    }

    /// Sends without waiting: UDP by `try_send_to` (a full socket buffer
    /// drops the datagram like the network would; retransmission covers
    /// it), TCP through the connection's queue or a new connection.
    pub fn send(&mut self, transmit: Transmit) {
        let Transmit { flow, bytes } = transmit;
        match flow.transport {
            Transport::Udp => self.send_udp(flow, bytes),
            Transport::Tcp => self.send_tcp(flow, bytes),
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

    fn send_tcp(&mut self, flow: Flow, bytes: Bytes) {
        let id = flow
            .connection
            .filter(|id| self.connections.contains_key(id))
            .or_else(|| self.by_remote.get(&flow.remote).copied());
        if let Some(connection) = id.and_then(|id| self.connections.get(&id)) {
            if connection.writer.try_send(bytes).is_err() {
                tracing::warn!(remote = %connection.remote, "TCP connection queue full, message dropped");
            }
            return;
        }
        let local = self.tcp_local.map_or(flow.local, |bound| {
            Advertiser::new(self.advertised, bound).local_for(flow.remote)
        });
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connect_tcp(
            id,
            flow.remote,
            local,
            bytes,
            self.inbox.clone(),
        ));
    }
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

async fn accept_tcp(
    listener: TcpListener,
    mut advertiser: Advertiser,
    ids: Arc<AtomicU64>,
    inbox: mpsc::Sender<Inbound>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let local = advertiser.local_for(remote);
        if serve_connection(id, stream, remote, local, None, inbox.clone())
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn connect_tcp(
    id: u64,
    remote: SocketAddr,
    local: SocketAddr,
    first: Bytes,
    inbox: mpsc::Sender<Inbound>,
) {
    let error = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => {
            let _ = serve_connection(id, stream, remote, local, Some(first), inbox).await;
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
    };
    tracing::info!(%remote, %error, "TCP connect failed");
    let _ = inbox.send(Inbound::TcpConnectFailed { remote }).await;
}

/// Registers a connection with the endpoint's task and starts its reader
/// and writer. Errs only when the endpoint's task is gone.
async fn serve_connection(
    id: u64,
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    first: Option<Bytes>,
    inbox: mpsc::Sender<Inbound>,
) -> Result<(), ()> {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(TCP_QUEUE);
    if let Some(first) = first {
        let _ = tx.try_send(first);
    }
    inbox
        .send(Inbound::TcpOpened {
            id,
            remote,
            writer: tx,
        })
        .await
        .map_err(|_| ())?;
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let flow = Flow {
        transport: Transport::Tcp,
        listener: 0,
        connection: Some(id),
        local,
        remote,
    };
    tokio::spawn(read_stream(reader, flow, inbox));
    Ok(())
}

/// Reads a TCP stream and frames messages by Content-Length.
async fn read_stream(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    flow: Flow,
    inbox: mpsc::Sender<Inbound>,
) {
    let mut buf = BytesMut::with_capacity(8192);
    let id = flow.connection.unwrap_or_default();
    'read: loop {
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            // Skip CRLF keep-alives between messages (RFC 5626 §3.5.1).
            let blank = buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            let _ = buf.split_to(blank);
            match stream_frame_len(&buf) {
                Ok(Some(len)) => {
                    let bytes = buf.split_to(len).freeze();
                    if inbox.send(Inbound::Message { bytes, flow }).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // No way to find the next message: hand over what we
                    // have (so a 400 can be sent) and close the connection.
                    tracing::debug!(remote = %flow.remote, %error, "unframeable TCP input, closing");
                    let bytes = buf.split().freeze();
                    let _ = inbox.send(Inbound::Message { bytes, flow }).await;
                    break 'read;
                }
            }
        }
    }
    let _ = inbox.send(Inbound::TcpClosed { id }).await;
}
