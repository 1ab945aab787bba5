//! A SIP listener out of file descriptors pauses instead of spinning:
//! accept() failing with EMFILE is retried after a pause that doubles up
//! to a second (counted in `/metrics` each time), and once descriptors
//! are free again the waiting connection is served. Its own test binary:
//! it lowers this process's open-file limit.

use hotline::sip::connections::ConnectionPolicy;
use hotline::sip::endpoint::Transport;
use hotline::sip::stream::StreamSettings;
use hotline::sip::transport::{Inbound, StreamLimits, Transports};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const OPTIONS: &[u8] = b"OPTIONS sip:10000@127.0.0.1 SIP/2.0\r\n\
    Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-backoff\r\n\
    From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:10000@127.0.0.1>\r\n\
    Call-ID: backoff@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

fn failures(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|line| {
            line.starts_with("hotline_sip_accept_failures_total{")
                && line.contains("kind=\"descriptors\"")
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_out_of_descriptors_pauses_and_recovers() {
    let metrics = hotline::metrics::install();
    let (inbox, mut inbound) = mpsc::channel(64);
    let limits = StreamLimits {
        policy: ConnectionPolicy {
            trusted_networks: vec!["127.0.0.0/8".parse().unwrap()],
            max_connections: 100,
            max_per_source: 100,
            proxy_networks: Vec::new(),
            max_per_proxy: 100,
            max_outgoing: 10,
        },
        settings: StreamSettings {
            message_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            max_queued_bytes: 1 << 20,
        },
    };
    let transports =
        Transports::bind(&[], &["127.0.0.1:0".parse().unwrap()], None, limits, inbox).unwrap();
    let sip = transports.tcp_addrs[0];

    // Leave this process a handful of descriptors, then take them all.
    let before = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open_descriptors() + 16),
            maximum: before.maximum,
        },
    )
    .unwrap();
    let mut hogs = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        hogs.push(file);
    }
    // One for the client: the kernel completes its connection, and the
    // gateway's accept has no descriptor to take it with.
    hogs.pop();
    let mut client = std::net::TcpStream::connect(sip).unwrap();
    let starved = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failed = failures(&metrics.render());
    assert!(failed >= 3, "accept kept failing: {failed}");
    // 10, 20, 40 … 640 ms, then once a second: about 9 in 3 s, where a
    // loop without pauses would fail thousands of times.
    assert!(failed <= 15, "{failed} failures in 3 s: the listener spins");

    // Descriptors free again: the waiting connection is served.
    drop(hogs);
    setrlimit(Resource::Nofile, before).unwrap();
    client.write_all(OPTIONS).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut delivered = false;
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, inbound.recv()).await {
        if let Inbound::Message { bytes, flow } = item {
            assert_eq!(flow.transport, Transport::Tcp);
            assert!(bytes.starts_with(b"OPTIONS "));
            delivered = true;
            break;
        }
    }
    assert!(
        delivered,
        "the connection was not served {:?} after the starvation began",
        starved.elapsed()
    );
    let mut buf = [0u8; 1];
    client.set_nonblocking(true).unwrap();
    assert!(
        !matches!(client.read(&mut buf), Ok(0)),
        "the served connection is still open"
    );
    drop(transports);
}
