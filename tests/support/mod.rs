//! A small SIP/RTP test client for end-to-end tests: it places calls to a
//! gateway started in-process on loopback ports, over UDP, TCP or TLS, and
//! reads what comes back. Every wait is bounded.

#![allow(dead_code)] // each test binary uses a different part of it

#[macro_use]
pub mod database;
pub mod audio;
pub mod dialplan;
pub mod tls;

use bytes::Bytes;
use hotline::config::Config;
use hotline::server::Server;
use hotline::sip::headers::NameAddr;
use hotline::sip::message::{stream_frame_len, Message};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

pub const WAIT: Duration = Duration::from_secs(5);

/// A configuration on ephemeral loopback ports.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.sip.udp = vec!["127.0.0.1:0".parse().unwrap()];
    config.sip.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    config.sip.t1_ms = 100;
    config.sip.t2_ms = 400;
    config.media.rtp_bind = "127.0.0.1".parse().unwrap();
    config.media.rtp_bind_v6 = "::1".parse().unwrap();
    config.media.rtp_port_min = 30000;
    config.media.rtp_port_max = 39998;
    // Silence unless a test asks for a prompt: calls tests check the stream
    // (and calls at their time limit get BYE at once).
    config.calls.greeting = Vec::new();
    config.calls.time_limit_prompt = String::new();
    config.database.url = format!("sqlite://{}", temp_database().display());
    // No dialplans: calls hear the (empty) greeting unless a test loads some.
    config.ivr.dialplans_dir = std::path::PathBuf::from("/nonexistent/hotline-dialplans");
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.recordings.dir = std::env::temp_dir().join(format!(
        "hotline-test-recordings-{}-{}",
        std::process::id(),
        temp_database()
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    config
}

/// A fresh SQLite file for one gateway in this test process.
pub fn temp_database() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "hotline-test-{}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

pub async fn start(config: Config) -> Server {
    Server::start(config).await.expect("gateway starts")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Udp,
    Tcp,
    Tls,
}

/// A TLS stream of either side (the caller's client, an agent's server).
pub trait SecureStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> SecureStream for T {}

enum Link {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        buffer: Vec<u8>,
    },
    Tls {
        stream: Box<dyn SecureStream>,
        buffer: Vec<u8>,
    },
}

/// One SIP user agent with its own signalling socket and RTP socket.
pub struct Client {
    link: Link,
    pub transport: Via,
    pub local: SocketAddr,
    pub server: SocketAddr,
    pub rtp: UdpSocket,
    /// Messages read while waiting for something else.
    backlog: Vec<Message>,
    counter: u32,
}

impl Client {
    pub async fn udp(server: SocketAddr) -> Client {
        let bind: SocketAddr = if server.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        }
        .parse()
        .unwrap();
        let socket = UdpSocket::bind(bind).await.unwrap();
        let local = socket.local_addr().unwrap();
        Client::with_link(Link::Udp(socket), Via::Udp, local, server).await
    }

    pub async fn tcp(server: SocketAddr) -> Client {
        let stream = TcpStream::connect(server).await.unwrap();
        let local = stream.local_addr().unwrap();
        Client::with_link(
            Link::Tcp {
                stream,
                buffer: Vec::new(),
            },
            Via::Tcp,
            local,
            server,
        )
        .await
    }

    /// A client over TLS to `server`, trusting `config`'s CAs and checking
    /// the gateway's certificate against `server`'s IP address.
    pub async fn tls(server: SocketAddr, config: std::sync::Arc<rustls::ClientConfig>) -> Client {
        let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
        Client::tls_named(server, config, name).await
    }

    /// [`Client::tls`] checking the certificate against `name`.
    pub async fn tls_named(
        server: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Client {
        let stream = TcpStream::connect(server).await.unwrap();
        let local = stream.local_addr().unwrap();
        let secured = timeout(
            WAIT,
            tokio_rustls::TlsConnector::from(config).connect(name, stream),
        )
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake");
        Client::over_tls(Box::new(secured), local, server).await
    }

    /// A client on a TLS stream already set up (an agent's side of a
    /// connection the gateway opened); `local` is the address it listens on.
    pub async fn over_tls(
        stream: Box<dyn SecureStream>,
        local: SocketAddr,
        server: SocketAddr,
    ) -> Client {
        let link = Link::Tls {
            stream,
            buffer: Vec::new(),
        };
        Client::with_link(link, Via::Tls, local, server).await
    }

    /// A TCP client whose connection (and RTP) come from `source`, a
    /// loopback address such as 127.0.0.5.
    pub async fn tcp_from(source: std::net::IpAddr, server: SocketAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        let stream = socket.connect(server).await.unwrap();
        let local = stream.local_addr().unwrap();
        Client::with_link(
            Link::Tcp {
                stream,
                buffer: Vec::new(),
            },
            Via::Tcp,
            local,
            server,
        )
        .await
    }

    async fn with_link(
        link: Link,
        transport: Via,
        local: SocketAddr,
        server: SocketAddr,
    ) -> Client {
        let rtp = UdpSocket::bind(SocketAddr::new(local.ip(), 0))
            .await
            .unwrap();
        Client {
            link,
            transport,
            local,
            server,
            rtp,
            backlog: Vec::new(),
            counter: 0,
        }
    }

    pub fn via_token(&self) -> &'static str {
        match self.transport {
            Via::Udp => "UDP",
            Via::Tcp => "TCP",
            Via::Tls => "TLS",
        }
    }

    pub fn unique(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}-{}", self.counter, rand::random::<u32>())
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.link {
            Link::Udp(socket) => {
                socket.send_to(bytes, self.server).await.unwrap();
            }
            Link::Tcp { stream, .. } => stream.write_all(bytes).await.unwrap(),
            Link::Tls { stream, .. } => {
                stream.write_all(bytes).await.unwrap();
                stream.flush().await.unwrap();
            }
        }
    }

    pub async fn send(&mut self, message: &Message) {
        let bytes = message.to_bytes();
        self.send_raw(&bytes).await;
    }

    async fn read_one(&mut self) -> Option<Message> {
        match &mut self.link {
            Link::Udp(socket) => {
                let mut buf = vec![0u8; 65536];
                let (len, _) = socket.recv_from(&mut buf).await.ok()?;
                Message::parse(&buf[..len]).ok()
            }
            Link::Tcp { stream, buffer } => read_framed(stream, buffer).await,
            Link::Tls { stream, buffer } => read_framed(stream, buffer).await,
        }
    }

    /// The next message that satisfies `want`, within `WAIT`; others are
    /// kept for later calls.
    pub async fn expect(&mut self, what: &str, want: impl Fn(&Message) -> bool) -> Message {
        self.try_expect(WAIT, &want)
            .await
            .unwrap_or_else(|| panic!("timed out waiting for {what}"))
    }

    pub async fn try_expect(
        &mut self,
        limit: Duration,
        want: &impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        if let Some(i) = self.backlog.iter().position(want) {
            return Some(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let message = timeout(deadline - tokio::time::Instant::now(), self.read_one())
                .await
                .ok()??;
            if want(&message) {
                return Some(message);
            }
            self.backlog.push(message);
        }
    }

    /// The final response (>= 200) to the request with this CSeq.
    pub async fn final_response(&mut self, cseq: &str) -> Message {
        let cseq = cseq.to_string();
        self.expect(&format!("final response to {cseq}"), move |m| {
            m.status().is_some_and(|s| s >= 200) && m.header("CSeq") == Some(cseq.as_str())
        })
        .await
    }

    /// An SDP offer for our RTP socket.
    pub fn offer(&self, formats: &str, rtpmaps: &str, extra: &str) -> String {
        let rtp = self.rtp.local_addr().unwrap();
        let family = if rtp.is_ipv4() { "IP4" } else { "IP6" };
        format!(
            "v=0\r\no=test 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {formats}\r\n{rtpmaps}{extra}",
            ip = rtp.ip(),
            port = rtp.port()
        )
    }

    pub fn g711_offer(&self) -> String {
        self.offer(
            "0 8 101",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
            "a=sendrecv\r\n",
        )
    }

    /// A request line with our Via and Max-Forwards.
    fn start_request(&self, method: &str, uri: String, branch: &str) -> Message {
        let mut request = Message::request(hotline::sip::message::Method::from_token(method), uri);
        request.push_header(
            "Via",
            format!(
                "SIP/2.0/{} {};branch={branch};rport",
                self.via_token(),
                self.local
            ),
        );
        request.push_header("Max-Forwards", "70");
        request
    }

    /// A new out-of-dialog request from this client.
    pub fn request(&mut self, method: &str, user: &str, call_id: &str, cseq: u32) -> Message {
        let branch = self.unique("z9hG4bK");
        let host = self.server;
        let mut request = self.start_request(method, format!("sip:{user}@{host}"), &branch);
        request.push_header(
            "From",
            format!(
                "<sip:13800138000@{}>;tag=caller{}",
                self.local, self.counter
            ),
        );
        request.push_header("To", format!("<sip:{user}@{host}>"));
        request.push_header("Call-ID", call_id);
        request.push_header("CSeq", format!("{cseq} {method}"));
        let contact = match self.transport {
            Via::Udp => format!("<sip:13800138000@{}>", self.local),
            Via::Tcp => format!("<sip:13800138000@{};transport=tcp>", self.local),
            Via::Tls => format!("<sip:13800138000@{};transport=tls>", self.local),
        };
        request.push_header("Contact", contact);
        request
    }

    /// Places a call to `user` with `sdp` (or none) and waits for its
    /// final response. Returns the dialog for 2xx.
    pub async fn invite(&mut self, user: &str, sdp: Option<String>) -> (Message, Dialog) {
        self.invite_with(user, sdp, &[]).await
    }

    /// `invite` with extra headers, such as the `X-Ticket-Number` and
    /// `Referred-By` of a call an agent transfers.
    pub async fn invite_with(
        &mut self,
        user: &str,
        sdp: Option<String>,
        headers: &[(&str, &str)],
    ) -> (Message, Dialog) {
        self.invite_from(user, None, sdp, headers).await
    }

    /// `invite_with` from another caller: `from` (a name-addr such as
    /// `"Anonymous" <sip:anonymous@anonymous.invalid>`, a tag is added)
    /// replaces the client's own From.
    pub async fn invite_from(
        &mut self,
        user: &str,
        from: Option<&str>,
        sdp: Option<String>,
        headers: &[(&str, &str)],
    ) -> (Message, Dialog) {
        let call_id = self.unique("call-");
        let mut invite = self.request("INVITE", user, &call_id, 1);
        if let Some(from) = from {
            invite.set_header("From", format!("{from};tag=caller{}", self.counter));
        }
        for (name, value) in headers {
            invite.push_header(name, *value);
        }
        if let Some(sdp) = sdp {
            invite.set_body("application/sdp", Bytes::from(sdp));
        }
        self.send(&invite).await;
        let response = self.final_response("1 INVITE").await;
        let dialog = Dialog::from_exchange(&invite, &response);
        (response, dialog)
    }

    /// An in-dialog request (ACK, BYE, re-INVITE …).
    pub fn in_dialog(&mut self, dialog: &mut Dialog, method: &str) -> Message {
        if method != "ACK" {
            dialog.cseq += 1;
        }
        let seq = if method == "ACK" {
            dialog.invite_cseq
        } else {
            dialog.cseq
        };
        let branch = self.unique("z9hG4bK");
        let mut request = self.start_request(method, dialog.remote_target.clone(), &branch);
        request.push_header("From", dialog.local.clone());
        request.push_header("To", dialog.remote.clone());
        request.push_header("Call-ID", dialog.call_id.clone());
        request.push_header("CSeq", format!("{seq} {method}"));
        if method == "INVITE" {
            dialog.invite_cseq = seq;
        }
        request
    }

    pub async fn ack(&mut self, dialog: &mut Dialog) {
        let ack = self.in_dialog(dialog, "ACK");
        self.send(&ack).await;
    }

    /// Sends BYE and returns the status of its final response.
    pub async fn bye(&mut self, dialog: &mut Dialog) -> u16 {
        let bye = self.in_dialog(dialog, "BYE");
        let cseq = bye.header("CSeq").unwrap().to_string();
        self.send(&bye).await;
        self.final_response(&cseq).await.status().unwrap()
    }

    /// Waits for the gateway's BYE and answers it 200.
    pub async fn answer_bye(&mut self, limit: Duration) -> Option<Message> {
        let bye = self
            .try_expect(limit, &|m: &Message| {
                m.method().is_some_and(|m| m.as_str() == "BYE")
            })
            .await?;
        self.reply(&bye, 200, "OK").await;
        Some(bye)
    }

    /// Reports on a REFER the gateway sent (RFC 3515): a NOTIFY in the call's
    /// dialog with `Event: refer`, the given Subscription-State and a
    /// `message/sipfrag` body holding `status_line`. Returns the status of
    /// the gateway's answer.
    pub async fn notify_refer(
        &mut self,
        dialog: &mut Dialog,
        status_line: &str,
        subscription_state: &str,
    ) -> u16 {
        let mut notify = self.in_dialog(dialog, "NOTIFY");
        notify.push_header("Event", "refer");
        notify.push_header("Subscription-State", subscription_state);
        notify.set_body("message/sipfrag", Bytes::from(format!("{status_line}\r\n")));
        let cseq = notify.header("CSeq").unwrap().to_string();
        self.send(&notify).await;
        self.final_response(&cseq).await.status().unwrap()
    }

    pub async fn reply(&mut self, request: &Message, code: u16, reason: &str) {
        let mut response = Message::response(code, reason);
        for via in request.header_lines("Via") {
            response.push_header("Via", via);
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            response.push_header(name, request.header(name).unwrap_or_default());
        }
        self.send(&response).await;
    }

    /// Answers a request as a UAS would: `code` with our To tag, a Contact,
    /// extra headers and an optional SDP body. For a 2xx to an INVITE the
    /// returned dialog is ours (the UAS side) for a later BYE.
    pub async fn respond(
        &mut self,
        request: &Message,
        code: u16,
        reason: &str,
        to_tag: &str,
        headers: &[(&str, &str)],
        sdp: Option<String>,
    ) -> Dialog {
        let mut response = Message::response(code, reason);
        for via in request.header_lines("Via") {
            response.push_header("Via", via);
        }
        for name in ["From", "Call-ID", "CSeq"] {
            response.push_header(name, request.header(name).unwrap_or_default());
        }
        let to = request.header("To").unwrap_or_default();
        let to = if code > 100 && !to.contains("tag=") {
            format!("{to};tag={to_tag}")
        } else {
            to.to_string()
        };
        response.push_header("To", to.clone());
        let contact = match self.transport {
            Via::Tls => format!("<sip:agent@{};transport=tls>", self.local),
            _ => format!("<sip:agent@{}>", self.local),
        };
        response.push_header("Contact", contact);
        for (name, value) in headers {
            response.push_header(name, *value);
        }
        if let Some(sdp) = sdp {
            response.set_body("application/sdp", Bytes::from(sdp));
        }
        self.send(&response).await;
        Dialog {
            call_id: request.header("Call-ID").unwrap_or_default().to_string(),
            local: to,
            remote: request.header("From").unwrap_or_default().to_string(),
            remote_target: request
                .header("Contact")
                .and_then(|c| NameAddr::parse(c).ok())
                .map(|c| c.uri)
                .unwrap_or_default(),
            cseq: 100,
            invite_cseq: 100,
        }
    }

    /// The next request with this method, within `limit`.
    pub async fn request_named(&mut self, method: &str, limit: Duration) -> Option<Message> {
        self.try_expect(limit, &|m: &Message| {
            m.method().is_some_and(|m| m.as_str() == method)
        })
        .await
    }

    /// Sends `packets` RTP packets of 20 ms of `codec_pt` audio, paced in
    /// real time, each payload from `frame(index)`; returns when done.
    pub async fn send_audio(
        &self,
        to: SocketAddr,
        payload_type: u8,
        ssrc: u32,
        packets: u16,
        frame: impl Fn(u16) -> Vec<u8>,
    ) {
        let mut interval = tokio::time::interval(Duration::from_millis(20));
        for index in 0..packets {
            interval.tick().await;
            let payload = frame(index);
            let bytes = rtp_rs::RtpPacketBuilder::new()
                .payload_type(payload_type)
                .ssrc(ssrc)
                .sequence(rtp_rs::Seq::from(index))
                .timestamp(u32::from(index) * 160)
                .marked(index == 0)
                .payload(&payload)
                .build()
                .unwrap();
            let _ = self.rtp.send_to(&bytes, to).await;
        }
    }

    /// Sends `keys` to `gateway` as RFC 4733 events (payload type 101,
    /// 100 ms each, 5 ms between packets), continuing `sequence` and
    /// `timestamp`.
    pub async fn send_keys(
        &self,
        gateway: SocketAddr,
        keys: &str,
        sequence: &mut u16,
        timestamp: &mut u32,
    ) {
        for key in keys.chars() {
            for packet in hotline::media::rfc4733::press_packets(key, *timestamp, 100, 20).unwrap()
            {
                let bytes = rtp_rs::RtpPacketBuilder::new()
                    .payload_type(101)
                    .ssrc(0xCAFE)
                    .sequence(rtp_rs::Seq::from(*sequence))
                    .timestamp(packet.timestamp)
                    .marked(packet.marker)
                    .payload(&packet.payload)
                    .build()
                    .unwrap();
                self.rtp.send_to(&bytes, gateway).await.unwrap();
                *sequence = sequence.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            *timestamp = timestamp.wrapping_add(1600);
        }
    }

    /// Counts RTP packets arriving within `window` and returns them.
    pub async fn receive_rtp(&self, window: Duration) -> Vec<Vec<u8>> {
        let mut packets = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        let mut buf = [0u8; 2048];
        while let Ok(Ok((len, _))) = timeout(
            deadline - tokio::time::Instant::now(),
            self.rtp.recv_from(&mut buf),
        )
        .await
        {
            packets.push(buf[..len].to_vec());
        }
        packets
    }
}

/// The next message framed from a stream, reading more as needed; `None`
/// when the stream ends or fails.
async fn read_framed<S: AsyncRead + Unpin + ?Sized>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
) -> Option<Message> {
    loop {
        if let Ok(Some(len)) = stream_frame_len(buffer) {
            let message = Message::parse(&buffer[..len]).ok();
            buffer.drain(..len);
            return message;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// The client's view of a dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local: String,
    pub remote: String,
    pub remote_target: String,
    pub cseq: u32,
    pub invite_cseq: u32,
}

impl Dialog {
    fn from_exchange(invite: &Message, response: &Message) -> Dialog {
        let contact = response
            .header("Contact")
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|c| c.uri)
            .unwrap_or_else(|| invite.request_uri().unwrap().to_string());
        Dialog {
            call_id: invite.header("Call-ID").unwrap().to_string(),
            local: invite.header("From").unwrap().to_string(),
            remote: response.header("To").unwrap().to_string(),
            remote_target: contact,
            cseq: 1,
            invite_cseq: 1,
        }
    }
}

/// A TCP listener bound to the same port as a UDP client, for tests of
/// requests the gateway moves to TCP.
pub async fn tcp_listener_on(port_of: SocketAddr) -> Option<TcpListener> {
    TcpListener::bind(port_of).await.ok()
}

/// Sequence number and timestamp of an RTP packet.
pub fn rtp_seq_ts(packet: &[u8]) -> (u16, u32, u8) {
    let seq = u16::from_be_bytes([packet[2], packet[3]]);
    let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    (seq, ts, packet[1] & 0x7f)
}

/// One HTTP/1.1 GET over a fresh connection (with a Bearer token if
/// given): the status, the Content-Type and the body as text.
pub async fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String, String) {
    let auth = token.map(|t| ("Authorization", format!("Bearer {t}")));
    http_request(addr, "GET", path, auth.as_slice(), b"").await
}

/// One HTTP/1.1 request over a fresh connection: the status, the
/// Content-Type and the body as text.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connects in time")
        .expect("connects");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.expect("sends");
    let mut raw = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("a reply in time")
        .expect("reads");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete reply");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The body of a chunked HTTP/1.1 reply.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let tail = &rest[end + 2..];
        match size {
            Some(size) if size > 0 && tail.len() >= size => {
                out.extend_from_slice(&tail[..size]);
                rest = tail[size..].strip_prefix(b"\r\n").unwrap_or(&tail[size..]);
            }
            _ => break,
        }
    }
    out
}
