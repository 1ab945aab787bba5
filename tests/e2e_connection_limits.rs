//! TCP cannot exhaust the gateway. The gateway here is the real binary,
//! so that its descriptors and memory are its own (read from
//! /proc/PID): thousands of stalled connections are closed within the
//! message timeout while a new TCP client and a UDP call are served, and
//! descriptors and memory come back; connections past the caps are
//! refused at once while calls are still answered; a peer that stops
//! reading is disconnected; a limit that cannot hold the configured calls
//! stops the start. In-process gateways check
//! the idle timeout (a connection that carries a call stays) and that
//! untrusted sources are closed at once.

mod support;

use hotline::sip::message::Message;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{http_get, rtp_seq_ts, start, test_config, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Half an INVITE: headers that never end.
const HALF_INVITE: &[u8] = b"INVITE sip:10000@127.0.0.1 SIP/2.0\r\n\
    Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-stalled\r\n\
    From: <sip:13800138000@127.0.0.1>;tag=stalled\r\nCall-ID: stalled@127.0.0.1\r\n";

/// A port free for UDP and TCP at once on 127.0.0.1.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Where a gateway listens and logs.
struct Setup {
    sip: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The real binary, on loopback ports, with its log in a scratch directory.
struct Gateway {
    child: Child,
    setup: Setup,
    sip: SocketAddr,
    http: SocketAddr,
}

impl Gateway {
    /// The gateway's command: `settings` on top of a loopback test
    /// configuration, under an open-file limit of `nofile` if given.
    fn command(settings: &[(&str, &str)], nofile: Option<u64>) -> (Command, Setup) {
        let dir = tempfile::tempdir().unwrap();
        let (sip_port, http_port) = (free_port(), free_port());
        let binary = env!("CARGO_BIN_EXE_hotline");
        let mut command = match nofile {
            Some(n) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.arg("serve");
        for (name, _) in std::env::vars() {
            if name.starts_with("HOTLINE_") {
                command.env_remove(name);
            }
        }
        let sip = format!("127.0.0.1:{sip_port}");
        let log = dir.path().join("gateway.log");
        command
            .env_remove("RUST_LOG")
            .env("HOTLINE_SIP_UDP", &sip)
            .env("HOTLINE_SIP_TCP", &sip)
            .env("HOTLINE_HTTP_LISTEN", format!("127.0.0.1:{http_port}"))
            .env(
                "HOTLINE_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("hotline.db").display()),
            )
            .env(
                "HOTLINE_IVR_DIALPLANS_DIR",
                "/nonexistent/hotline-dialplans",
            )
            .env("HOTLINE_MEDIA_RTP_BIND", "127.0.0.1")
            .env("HOTLINE_MEDIA_RTP_PORT_MIN", "40000")
            .env("HOTLINE_MEDIA_RTP_PORT_MAX", "49998")
            .env("HOTLINE_SIP_MAX_CALLS", "100")
            .envs(settings.iter().copied())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        let setup = Setup {
            sip: sip.parse().unwrap(),
            http: format!("127.0.0.1:{http_port}").parse().unwrap(),
            log,
            _dir: dir,
        };
        (command, setup)
    }

    /// Starts the gateway and waits until it answers OPTIONS.
    async fn start(settings: &[(&str, &str)], nofile: Option<u64>) -> Gateway {
        let (mut command, setup) = Gateway::command(settings, nofile);
        let mut gateway = Gateway {
            child: command.spawn().expect("the gateway binary runs"),
            sip: setup.sip,
            http: setup.http,
            setup,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut client = Client::udp(gateway.sip).await;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = gateway.child.try_wait() {
                panic!("the gateway exited ({status}):\n{}", gateway.log());
            }
            let call_id = client.unique("ping-");
            let options = client.request("OPTIONS", "10000", &call_id, 1);
            client.send(&options).await;
            let answered = client
                .try_expect(Duration::from_millis(200), &|m: &Message| {
                    m.status() == Some(200)
                })
                .await;
            if answered.is_some() {
                return gateway;
            }
        }
        panic!("the gateway did not answer OPTIONS:\n{}", gateway.log());
    }

    fn log(&self) -> String {
        self.setup.log()
    }

    /// The gateway's open descriptors, as the kernel counts them.
    fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }

    fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap()
    }

    /// The value of the metric `name` whose labels include `labels`.
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (status, _, text) = http_get(self.http, "/metrics", None).await;
        assert_eq!(status, 200);
        text.lines()
            .filter(|line| {
                line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
            })
            .filter(|line| {
                labels
                    .iter()
                    .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |sum, value| sum + value)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP call that is answered and hears the greeting on the 20 ms clock;
/// ended with BYE.
async fn udp_call_with_audio(gateway: SocketAddr) {
    let mut client = Client::udp(gateway).await;
    let offer = client.g711_offer();
    let (response, mut dialog) = client.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200), "{response:?}");
    client.ack(&mut dialog).await;
    let packets = client.receive_rtp(Duration::from_millis(600)).await;
    assert!(
        packets.len() >= 25,
        "{} RTP packets in 600 ms",
        packets.len()
    );
    let (first, _, _) = rtp_seq_ts(&packets[0]);
    for (i, packet) in packets.iter().enumerate() {
        assert_eq!(rtp_seq_ts(packet).0, first.wrapping_add(i as u16));
    }
    let speech = packets
        .iter()
        .filter(|p| p[12..].iter().any(|&b| b != 0xFF))
        .count();
    assert!(
        speech >= 10,
        "the greeting is heard: {speech} packets of sound"
    );
    assert_eq!(client.bye(&mut dialog).await, 200);
}

/// An OPTIONS over a new TCP connection from `source`: how long its 200
/// took.
async fn tcp_options(gateway: SocketAddr, source: IpAddr) -> Duration {
    let started = Instant::now();
    let mut client = Client::tcp_from(source, gateway).await;
    let call_id = client.unique("tcp-ping-");
    let options = client.request("OPTIONS", "10000", &call_id, 1);
    client.send(&options).await;
    let response = client.final_response("1 OPTIONS").await;
    assert_eq!(response.status(), Some(200));
    started.elapsed()
}

/// A connection from `source` to `gateway`; `None` when it was reset
/// before the connect returned (refused at once).
async fn connect_from(source: IpAddr, gateway: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    match socket.connect(gateway).await {
        Ok(stream) => Some(stream),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(error) => panic!("connect: {error}"),
    }
}

/// Waits until `stream` is closed by the other side: when that happened.
async fn closed_at(mut stream: TcpStream, limit: Duration) -> Option<Instant> {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// True when `stream` is still open after `wait` (nothing read, no close).
async fn still_open(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    tokio::time::timeout(wait, stream.read(&mut buf))
        .await
        .is_err()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_stalled_connections_are_closed_in_time_while_calls_go_on() {
    const STALLED: usize = 3000;
    const TIMEOUT: Duration = Duration::from_secs(3);
    hotline::resources::raise_open_file_limit();
    let gateway = Gateway::start(
        &[
            ("HOTLINE_SIP_CONNECTIONS_MESSAGE_TIMEOUT_SECS", "3"),
            ("HOTLINE_SIP_CONNECTIONS_IDLE_TIMEOUT_SECS", "3"),
            ("HOTLINE_SIP_CONNECTIONS_MAX_PER_SOURCE", "5000"),
            ("HOTLINE_SIP_CONNECTIONS_MAX_CONNECTIONS", "5000"),
        ],
        None,
    )
    .await;
    // What a call and a TCP client allocate once is in the baseline.
    udp_call_with_audio(gateway.sip).await;
    tcp_options(gateway.sip, ip("127.0.0.1")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fds_before, rss_before) = (gateway.descriptors(), gateway.resident_kib());

    let opened = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let mut stream = TcpStream::connect(gateway.sip).await.unwrap();
        if i % 2 == 0 {
            stream.write_all(HALF_INVITE).await.unwrap();
        }
        stalled.push(stream);
    }
    let all_opened = opened.elapsed();
    // The gateway holds every one of them: a descriptor each.
    let mut fds_held = 0;
    while opened.elapsed() < Duration::from_secs(2) {
        fds_held = gateway.descriptors();
        if fds_held >= fds_before + STALLED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_held = gateway.resident_kib();
    assert!(
        fds_held >= fds_before + STALLED,
        "the gateway holds {fds_held} descriptors, {fds_before} before the {STALLED} connections"
    );

    // Meanwhile a new TCP client is answered within a second, and a UDP
    // call is answered with audio.
    let options = tcp_options(gateway.sip, ip("127.0.0.1")).await;
    assert!(options < Duration::from_secs(1), "OPTIONS took {options:?}");
    udp_call_with_audio(gateway.sip).await;
    assert!(
        opened.elapsed() < TIMEOUT,
        "the checks ran while the stalled connections were open"
    );

    // The gateway closes each stalled connection once its message timeout
    // is over: not before, and not much later.
    let waits: Vec<_> = stalled
        .into_iter()
        .map(|stream| tokio::spawn(closed_at(stream, TIMEOUT + Duration::from_secs(5))))
        .collect();
    let mut closes = Vec::with_capacity(STALLED);
    for wait in waits {
        closes.push(wait.await.unwrap().expect("closed by the gateway"));
    }
    let first = closes.iter().min().unwrap().duration_since(opened);
    let last = closes.iter().max().unwrap().duration_since(opened);
    assert!(
        first >= TIMEOUT - Duration::from_millis(100),
        "first closed after {first:?}"
    );
    assert!(
        last <= TIMEOUT + all_opened + Duration::from_millis(1500),
        "last closed after {last:?} (opening took {all_opened:?})"
    );

    // Descriptors and memory come back near where they were.
    // (Freed memory is given back a few seconds after a flood.)
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut fds_after, mut rss_after) = (gateway.descriptors(), gateway.resident_kib());
    while (fds_after > fds_before + 4 || rss_after > rss_before + 4 * 1024)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (fds_after, rss_after) = (gateway.descriptors(), gateway.resident_kib());
    }
    eprintln!(
        "descriptors {fds_before} → {fds_held} → {fds_after}; RSS {rss_before} → {rss_held} → {rss_after} KiB; \
         {STALLED} opened in {all_opened:?}, closed {first:?}..{last:?} after the first; OPTIONS in {options:?}"
    );
    assert!(
        fds_after <= fds_before + 4,
        "{fds_after} descriptors, {fds_before} before"
    );
    assert!(
        rss_after <= rss_before + 4 * 1024,
        "RSS {rss_after} KiB, {rss_before} KiB before"
    );
    let timeouts = gateway
        .metric(
            "hotline_sip_connections_closed_total",
            &[("reason", "message_timeout")],
        )
        .await;
    assert_eq!(timeouts, STALLED as f64);
    let held = gateway
        .metric("hotline_sip_connections", &[("direction", "in")])
        .await;
    assert_eq!(held, 0.0, "no connection is still counted open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_caps_are_refused_at_once_and_calls_are_still_answered() {
    // 20 calls × 2 + 100 connections + 128 of ours + 16 HTTP + 4 database
    // + 256 = 544 descriptors, under a limit of 1024.
    let gateway = Gateway::start(
        &[
            ("HOTLINE_SIP_MAX_CALLS", "20"),
            ("HOTLINE_SIP_CONNECTIONS_MAX_CONNECTIONS", "100"),
            ("HOTLINE_SIP_CONNECTIONS_MAX_PER_SOURCE", "20"),
            ("HOTLINE_SIP_CONNECTIONS_PROXY_NETWORKS", "127.0.0.99/32"),
            ("HOTLINE_SIP_CONNECTIONS_MAX_PER_PROXY", "1000"),
            ("HOTLINE_HTTP_MAX_CONNECTIONS", "16"),
            ("HOTLINE_DATABASE_MAX_CONNECTIONS", "4"),
        ],
        Some(1024),
    )
    .await;
    // A call over TCP is up before the flood.
    let mut caller = Client::tcp_from(ip("127.0.0.1"), gateway.sip).await;
    let offer = caller.g711_offer();
    let (response, mut dialog) = caller.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    caller.ack(&mut dialog).await;

    // A proxy may hold more than one source's share…
    let mut open = Vec::new();
    for _ in 0..40 {
        open.push(connect_from(ip("127.0.0.99"), gateway.sip).await.unwrap());
    }
    // …then ten sources try 30 each: the caller, the proxy and 59 of
    // theirs fill the 100, the rest are refused.
    let mut tried = Vec::new();
    for source in 1..=10 {
        for _ in 0..30 {
            tried.push(connect_from(ip(&format!("127.0.1.{source}")), gateway.sip).await);
        }
    }
    let refusing_took = Instant::now();
    let mut refused = 0;
    for stream in tried.into_iter() {
        let Some(mut stream) = stream else {
            refused += 1;
            continue;
        };
        if still_open(&mut stream, Duration::from_millis(20)).await {
            open.push(stream);
        } else {
            refused += 1;
        }
    }
    for stream in &mut open {
        assert!(still_open(stream, Duration::from_millis(1)).await);
    }
    assert_eq!(open.len(), 99, "the caller's connection and 99 more");
    assert_eq!(refused, 300 - 59);
    eprintln!(
        "{refused} refused, {} open; checked in {:?}",
        open.len(),
        refusing_took.elapsed()
    );
    let refusals = |reason: &'static str| {
        let gateway = &gateway;
        async move {
            gateway
                .metric(
                    "hotline_sip_connections_refused_total",
                    &[("reason", reason)],
                )
                .await
        }
    };
    // Sources 1 and 2 hold 20 each and are refused 10 more each; source 3
    // finds the total used up at its 20th; sources 4 to 10 find it full.
    assert_eq!(refusals("source_limit").await, 20.0);
    assert_eq!(refusals("total_limit").await, 11.0 + 210.0);

    // Calls are still answered, with audio, over UDP; the TCP call goes on
    // and ends normally on its connection.
    for _ in 0..3 {
        udp_call_with_audio(gateway.sip).await;
    }
    assert_eq!(caller.bye(&mut dialog).await, 200);
    assert!(gateway.descriptors() < 1024);
    // One log line per source, however many of its connections were refused.
    let log = gateway.log();
    let lines = log.matches("connection refused").count();
    assert!(lines <= 10, "{lines} refusal lines:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_disconnected() {
    let gateway = Gateway::start(
        &[
            ("HOTLINE_SIP_CONNECTIONS_MESSAGE_TIMEOUT_SECS", "2"),
            ("HOTLINE_SIP_CONNECTIONS_IDLE_TIMEOUT_SECS", "2"),
            ("HOTLINE_SIP_CONNECTIONS_MAX_QUEUED_BYTES", "65535"),
        ],
        None,
    )
    .await;
    // A small receive buffer, never read: the answers pile up.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(gateway.sip).await.unwrap();
    let started = Instant::now();
    let mut sent = 0u32;
    let ended = loop {
        let options = format!(
            "OPTIONS sip:10000@{sip} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-deaf{sent}\r\n\
             From: <sip:deaf@127.0.0.1>;tag=deaf\r\nTo: <sip:10000@{sip}>\r\nCall-ID: deaf{sent}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            sip = gateway.sip
        );
        let write =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(options.as_bytes()));
        match write.await {
            Ok(Ok(())) => sent += 1,
            // Closed by the gateway, or it no longer reads (it closed).
            Ok(Err(_)) | Err(_) => break started.elapsed(),
        }
        if started.elapsed() > Duration::from_secs(20) {
            panic!("still connected after {sent} requests");
        }
    };
    let closes = gateway
        .metric("hotline_sip_connections_closed_total", &[])
        .await;
    let write_queue = gateway
        .metric(
            "hotline_sip_connections_closed_total",
            &[("reason", "write_queue")],
        )
        .await;
    let write_timeout = gateway
        .metric(
            "hotline_sip_connections_closed_total",
            &[("reason", "write_timeout")],
        )
        .await;
    eprintln!("disconnected after {sent} requests in {ended:?}: write_queue {write_queue}, write_timeout {write_timeout}");
    assert_eq!(closes, 1.0);
    assert_eq!(write_queue + write_timeout, 1.0);
    // The gateway still serves others.
    tcp_options(gateway.sip, ip("127.0.0.1")).await;
}

#[tokio::test]
async fn a_limit_that_cannot_hold_the_calls_stops_the_start() {
    let (mut command, setup) = Gateway::command(&[("HOTLINE_SIP_MAX_CALLS", "5000")], Some(2048));
    let status = command.status().unwrap();
    assert!(!status.success());
    let log = setup.log();
    assert!(log.contains("not enough file descriptors"), "{log}");
    assert!(log.contains("the open-file limit is 2048"), "{log}");
    assert!(log.contains("LimitNOFILE"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_unless_they_carry_a_call() {
    let mut config = test_config();
    config.sip_connections.message_timeout_secs = 1;
    config.sip_connections.idle_timeout_secs = 2;
    let server = start(config).await;
    let sip = server.tcp_addrs[0];
    let mut caller = Client::tcp(sip).await;
    let offer = caller.g711_offer();
    let (response, mut dialog) = caller.invite("10000", Some(offer)).await;
    assert_eq!(response.status(), Some(200));
    caller.ack(&mut dialog).await;
    let mut pinger = Client::tcp(sip).await;
    let options = pinger.request("OPTIONS", "10000", "idle-ping", 1);
    pinger.send(&options).await;
    assert_eq!(pinger.final_response("1 OPTIONS").await.status(), Some(200));

    // Twice the idle timeout without a message: the caller's connection
    // carries a call and stays; the pinger's is closed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(caller.bye(&mut dialog).await, 200);
    let options = pinger.request("OPTIONS", "10000", "idle-ping-2", 2);
    pinger.send(&options).await;
    assert!(
        pinger
            .try_expect(Duration::from_millis(500), &|m: &Message| m
                .status()
                .is_some())
            .await
            .is_none(),
        "the idle connection was closed"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_sources_are_refused_before_anything_is_read() {
    let mut config = test_config();
    config.sip.trusted_networks = vec!["127.0.0.2/32".parse().unwrap()];
    let server = start(config).await;
    let sip = server.tcp_addrs[0];
    let started = Instant::now();
    let closed = match connect_from(ip("127.0.0.1"), sip).await {
        Some(mut untrusted) => {
            let _ = untrusted.write_all(HALF_INVITE).await;
            closed_at(untrusted, Duration::from_secs(2)).await
        }
        None => Some(Instant::now()),
    };
    let took = closed.expect("closed").duration_since(started);
    assert!(took < Duration::from_millis(500), "closed after {took:?}");
    // A trusted source is served.
    tcp_options(sip, ip("127.0.0.2")).await;
    server.shutdown().await;
}
