//! Media load tool: holds N concurrent calls to a running gateway on
//! loopback, receives their RTP and measures loss, lateness and jitter.
//!
//!     cargo run --release --example media_load -- --gateway 127.0.0.1:5060 --calls 1000 \
//!         --rate 200 --hold 30 [--send-rtp] [--srtp] [--pid GATEWAY_PID]
//!
//! Every call's SDP points at one local RTP socket; packets are told apart
//! by the gateway port they come from, and stamped by the kernel on
//! arrival. For each call the tool tracks
//! sequence gaps (loss) and how late each packet is against the 20 ms
//! clock anchored at the call's earliest packet, plus the RFC 3550
//! interarrival jitter. With `--send-rtp` it also sends each call 20 ms
//! of G.711 silence every 20 ms, so the gateway receives as much as it
//! sends. With `--srtp` every call offers `RTP/SAVP` with an SDES key
//! (AES_CM_128_HMAC_SHA1_80): the gateway encrypts what it sends and must
//! authenticate and decrypt what the tool sends (one protected packet per
//! tick, valid for every call: the tool uses one key and SSRC for all, which
//! a real phone never would). With `--pid` it reads the gateway's CPU time over the measuring
//! window and its resident memory before the calls and with all calls up.
//! It also reports what it cost itself: its CPU over the window and how
//! long packets waited in its socket before it read them (`tool_*`), so
//! that lateness from the tool sharing the cores can be told from the
//! gateway's; and `due` (one packet per call per 20 ms of the window)
//! against what arrived (`sent_pct`).
//! Prints one summary line of `key=value` pairs.

use hotline::media::srtp::{SrtpKeys, SrtpSession};
use hotline::sip::message::{Message, Method};
use hotline::sip::sdes::{CryptoAttribute, CryptoSuite, MasterKey};
use hotline::sip::sdp;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Receive buffer asked for the RTP socket.
const RECEIVE_BUFFER: usize = 64 << 20;

struct Options {
    gateway: SocketAddr,
    calls: usize,
    rate: f64,
    hold: Duration,
    send_rtp: bool,
    /// Offer SRTP (and protect what we send).
    srtp: bool,
    /// The gateway's process id, to measure its CPU and memory.
    pid: Option<u32>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        gateway: "127.0.0.1:5060".parse().map_err(|e| format!("{e}"))?,
        calls: 100,
        rate: 100.0,
        hold: Duration::from_secs(20),
        send_rtp: false,
        srtp: false,
        pid: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--gateway" => {
                options.gateway = value()?.parse().map_err(|e| format!("--gateway: {e}"))?
            }
            "--calls" => options.calls = value()?.parse().map_err(|e| format!("--calls: {e}"))?,
            "--rate" => options.rate = value()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--hold" => {
                options.hold =
                    Duration::from_secs(value()?.parse().map_err(|e| format!("--hold: {e}"))?)
            }
            "--send-rtp" => options.send_rtp = true,
            "--srtp" => options.srtp = true,
            "--pid" => options.pid = Some(value()?.parse().map_err(|e| format!("--pid: {e}"))?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !options.gateway.ip().is_loopback() {
        return Err("the load tool only talks to loopback addresses".into());
    }
    Ok(options)
}

/// Per-call receive statistics.
#[derive(Default)]
struct Stream {
    packets: u64,
    /// Sequence number and index (packets since the first) of the last packet.
    last: Option<(u16, i64)>,
    highest: i64,
    /// Smallest (arrival - 20 ms × index) seen: the call's on-time baseline.
    baseline: Option<f64>,
    late_2ms: u64,
    late_5ms: u64,
    jitter: f64,
    last_transit: Option<f64>,
}

impl Stream {
    fn on_packet(&mut self, sequence: u16, timestamp: u32, arrival: f64) {
        self.packets += 1;
        // The index survives sequence wrap and reordering: step by the
        // signed 16-bit distance from the previous packet.
        let index = match self.last {
            None => 0,
            Some((last_sequence, last_index)) => {
                last_index + i64::from(sequence.wrapping_sub(last_sequence) as i16)
            }
        };
        self.last = Some((sequence, index));
        self.highest = self.highest.max(index);
        let offset = arrival - 0.020 * index as f64;
        let baseline = self.baseline.map_or(offset, |b| b.min(offset));
        self.baseline = Some(baseline);
        let lateness = offset - baseline;
        if lateness > 0.002 {
            self.late_2ms += 1;
        }
        if lateness > 0.005 {
            self.late_5ms += 1;
        }
        let transit = arrival - f64::from(timestamp) / 8000.0;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    fn expected(&self) -> u64 {
        if self.packets == 0 {
            0
        } else {
            self.highest.max(0) as u64 + 1
        }
    }
}

fn invite(
    local: SocketAddr,
    rtp: SocketAddr,
    gateway: SocketAddr,
    index: usize,
    srtp: Option<&MasterKey>,
) -> Message {
    let mut request = Message::request(Method::Invite, format!("sip:10000@{gateway}"));
    request.push_header(
        "Via",
        format!("SIP/2.0/UDP {local};branch=z9hG4bKload{index};rport"),
    );
    request.push_header("Max-Forwards", "70");
    request.push_header("From", format!("<sip:load{index}@{local}>;tag=load{index}"));
    request.push_header("To", format!("<sip:10000@{gateway}>"));
    request.push_header("Call-ID", format!("load-{index}-{}", std::process::id()));
    request.push_header("CSeq", "1 INVITE");
    request.push_header("Contact", format!("<sip:load{index}@{local}>"));
    let (profile, crypto) = match srtp {
        Some(key) => (
            "RTP/SAVP",
            format!(
                "a=crypto:{}\r\n",
                CryptoAttribute::ours(1, CryptoSuite::AesCm128HmacSha1_80, key)
            ),
        ),
        None => ("RTP/AVP", String::new()),
    };
    let body = format!(
        "v=0\r\no=load 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} {profile} 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n{crypto}a=sendrecv\r\n",
        ip = rtp.ip(),
        port = rtp.port()
    );
    request.set_body("application/sdp", body.into_bytes());
    request
}

/// An in-dialog request (ACK or BYE) for call `index` after its 200.
fn in_dialog(
    method: Method,
    ok: &Message,
    local: SocketAddr,
    gateway: SocketAddr,
    index: usize,
    cseq: u32,
) -> Message {
    let mut request = Message::request(method.clone(), format!("sip:10000@{gateway}"));
    request.push_header(
        "Via",
        format!("SIP/2.0/UDP {local};branch=z9hG4bKload{index}-{cseq};rport"),
    );
    request.push_header("Max-Forwards", "70");
    for name in ["From", "To", "Call-ID"] {
        request.push_header(name, ok.header(name).unwrap_or_default());
    }
    request.push_header("CSeq", format!("{cseq} {method}"));
    request
}

/// Asks the kernel to stamp each datagram with its arrival time, so that
/// lateness is measured when the packet reached our socket, not when this
/// tool got round to reading it.
fn enable_kernel_timestamps(socket: &UdpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option value of the
    // size passed.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One waiting datagram with its sender and kernel arrival time (seconds
/// since the Unix epoch); `None` when nothing is waiting or for a non-IPv4
/// sender. Never blocks: see the receiver thread for why.
fn receive_timestamped(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr, f64)> {
    use std::os::fd::AsRawFd;
    // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
    let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut control = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below refers to a
    // live buffer of the length given, for the duration of the call.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_name = (&mut address as *mut libc::sockaddr_in).cast();
    header.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = control.len();
    // SAFETY: see above.
    let len = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut header, libc::MSG_DONTWAIT) };
    if len < 0 || address.sin_family != libc::AF_INET as libc::sa_family_t {
        return None;
    }
    let mut arrival = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled,
    // bounded by msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let stamp: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                arrival = Some(stamp.tv_sec as f64 + stamp.tv_nsec as f64 * 1e-9);
            }
            cmsg = libc::CMSG_NXTHDR(&header, cmsg);
        }
    }
    let from = SocketAddr::from((
        std::net::Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr)),
        u16::from_be(address.sin_port),
    ));
    Some((len as usize, from, arrival?))
}

/// Seconds since the Unix epoch on the clock the kernel stamps packets with.
fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Read delays in 0.1 ms buckets up to a second (the last bucket holds
/// anything longer).
struct DelayHistogram {
    buckets: Vec<u64>,
    count: u64,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram {
            buckets: vec![0; 10_001],
            count: 0,
        }
    }
}

impl DelayHistogram {
    fn add(&mut self, seconds: f64) {
        let bucket = ((seconds.max(0.0) * 10_000.0) as usize).min(self.buckets.len() - 1);
        self.buckets[bucket] += 1;
        self.count += 1;
    }

    /// The delay below which `q` of the packets were read, in seconds.
    fn quantile(&self, q: f64) -> f64 {
        let wanted = (self.count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= wanted.max(1) {
                return (bucket + 1) as f64 / 10_000.0;
            }
        }
        0.0
    }
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("media_load: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("media_load: {e}");
        std::process::exit(1);
    }
}

fn run(options: &Options) -> std::io::Result<()> {
    let sip = UdpSocket::bind("127.0.0.1:0")?;
    sip.set_read_timeout(Some(Duration::from_millis(50)))?;
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    // Thousands of calls' packets arrive in one burst per 20 ms: a small
    // receive buffer would drop them here and count as loss.
    socket2::SockRef::from(&rtp).set_recv_buffer_size(RECEIVE_BUFFER)?;
    let granted = socket2::SockRef::from(&rtp).recv_buffer_size()?;
    if granted < RECEIVE_BUFFER {
        eprintln!(
            "media_load: receive buffer is {granted} bytes (raise net.core.rmem_max to {RECEIVE_BUFFER} for large runs)"
        );
    }
    let (local, rtp_addr) = (sip.local_addr()?, rtp.local_addr()?);
    let streams: Arc<Mutex<HashMap<SocketAddr, Stream>>> = Arc::default();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let rss_before = options.pid.and_then(rss_kib);

    let receiver = {
        let (rtp, streams, measuring, stop) = (
            rtp.try_clone()?,
            streams.clone(),
            measuring.clone(),
            stop.clone(),
        );
        enable_kernel_timestamps(&rtp)?;
        // The receiver drains the socket, then sleeps. It never waits on
        // the socket itself: on loopback the sender pays for waking a
        // waiting receiver, which would bill the gateway for the tool's
        // wake-ups. Kernel timestamps keep the arrival times exact.
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut delays = DelayHistogram::default();
            while !stop.load(Ordering::Relaxed) {
                let Some((len, from, arrival)) = receive_timestamped(&rtp, &mut buf) else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                if len < 12 || !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                delays.add(wall_clock() - arrival);
                let sequence = u16::from_be_bytes([buf[2], buf[3]]);
                let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                if let Ok(mut streams) = streams.lock() {
                    streams
                        .entry(from)
                        .or_default()
                        .on_packet(sequence, timestamp, arrival);
                }
            }
            delays
        })
    };

    // With --srtp: the tool's one key, and its sending context.
    let key = MasterKey::generate();
    let mut protect = if options.srtp {
        Some(
            SrtpSession::new(SrtpKeys {
                suite: CryptoSuite::AesCm128HmacSha1_80,
                local: key,
                remote: MasterKey::generate(),
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?,
        )
    } else {
        None
    };

    // Place the calls at the asked rate and collect their 200s.
    let mut answered: HashMap<usize, (Message, SocketAddr)> = HashMap::new();
    let interval = Duration::from_secs_f64(1.0 / options.rate.max(1.0));
    let mut buf = vec![0u8; 65536];
    let mut next = Instant::now();
    let mut sent = 0;
    let setup_deadline =
        Instant::now() + Duration::from_secs_f64(options.calls as f64 / options.rate + 30.0);
    while answered.len() < options.calls && Instant::now() < setup_deadline {
        while sent < options.calls && Instant::now() >= next {
            sip.send_to(
                &invite(
                    local,
                    rtp_addr,
                    options.gateway,
                    sent,
                    options.srtp.then_some(&key),
                )
                .to_bytes(),
                options.gateway,
            )?;
            sent += 1;
            next += interval;
        }
        sip.set_read_timeout(Some(Duration::from_millis(2)))?;
        while let Ok((len, _)) = sip.recv_from(&mut buf) {
            let Ok(message) = Message::parse(&buf[..len]) else {
                continue;
            };
            let index = message
                .header("From")
                .and_then(|f| f.split("tag=load").nth(1))
                .and_then(|t| t.parse::<usize>().ok());
            match (message.status(), index) {
                (Some(200), Some(index)) if !answered.contains_key(&index) => {
                    let Some(gateway_rtp) = sdp::parse_body(&message.body)
                        .ok()
                        .and_then(|d| d.audio)
                        .and_then(|a| Some(SocketAddr::new(a.connection?, a.port)))
                    else {
                        continue;
                    };
                    let ack = in_dialog(Method::Ack, &message, local, options.gateway, index, 1);
                    sip.send_to(&ack.to_bytes(), options.gateway)?;
                    answered.insert(index, (message, gateway_rtp));
                }
                (Some(code), _) if code >= 300 => {
                    eprintln!("media_load: call refused with {code}");
                }
                _ => {}
            }
        }
    }
    let setup_time = start.elapsed();
    eprintln!(
        "media_load: {} of {} calls answered in {:.1} s; measuring for {} s",
        answered.len(),
        options.calls,
        setup_time.as_secs_f64(),
        options.hold.as_secs()
    );

    // Measure while every call is up (and optionally send RTP to each).
    measuring.store(true, Ordering::Relaxed);
    let cpu_before = options.pid.and_then(cpu_seconds);
    let tool_cpu_before = cpu_seconds(std::process::id());
    let targets: Vec<SocketAddr> = answered.values().map(|(_, addr)| *addr).collect();
    let measure_start = Instant::now();
    let mut tick = Instant::now();
    let silence = {
        let mut packet = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0xAD];
        packet.extend(std::iter::repeat_n(0xFF, 160));
        packet
    };
    let mut sequence: u16 = 0;
    while measure_start.elapsed() < options.hold {
        if options.send_rtp {
            let mut packet = silence.clone();
            packet[2..4].copy_from_slice(&sequence.to_be_bytes());
            packet[4..8].copy_from_slice(&(u32::from(sequence) * 160).to_be_bytes());
            if let Some(srtp) = protect.as_mut() {
                let len = packet.len();
                packet.resize(len + 10, 0);
                let protected = srtp
                    .protect_rtp(&mut packet, len)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                packet.truncate(protected);
            }
            for target in &targets {
                let _ = rtp.send_to(&packet, target);
            }
            sequence = sequence.wrapping_add(1);
        }
        tick += Duration::from_millis(20);
        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Keep the SIP socket drained (retransmissions, BYEs).
        sip.set_read_timeout(Some(Duration::from_micros(100)))?;
        while sip.recv_from(&mut buf).is_ok() {}
    }
    measuring.store(false, Ordering::Relaxed);
    let measured = measure_start.elapsed();
    let cpu_after = options.pid.and_then(cpu_seconds);
    let tool_cpu_after = cpu_seconds(std::process::id());
    let rss_loaded = options.pid.and_then(rss_kib);

    for (index, (ok, _)) in &answered {
        let bye = in_dialog(Method::Bye, ok, local, options.gateway, *index, 2);
        sip.send_to(&bye.to_bytes(), options.gateway)?;
    }
    stop.store(true, Ordering::Relaxed);
    let delays = receiver
        .join()
        .map_err(|_| std::io::Error::other("the receiver thread panicked"))?;

    let streams = streams
        .lock()
        .map_err(|_| std::io::Error::other("poisoned"))?;
    let (mut packets, mut expected, mut late2, mut late5, mut jitter_sum, mut jitter_max) =
        (0u64, 0u64, 0u64, 0u64, 0f64, 0f64);
    for stream in streams.values() {
        packets += stream.packets;
        expected += stream.expected();
        late2 += stream.late_2ms;
        late5 += stream.late_5ms;
        jitter_sum += stream.jitter;
        jitter_max = jitter_max.max(stream.jitter);
    }
    let lost = expected.saturating_sub(packets);
    let streams_seen = streams.len().max(1);
    let gateway = match (cpu_before, cpu_after, rss_before, rss_loaded) {
        (Some(c0), Some(c1), Some(r0), Some(r1)) => format!(
            " gateway_cpu_pct={:.1} cpu_ms_per_call_second={:.4} rss_before_kib={r0} rss_loaded_kib={r1} rss_per_call_kib={:.1}",
            100.0 * (c1 - c0) / measured.as_secs_f64(),
            1000.0 * (c1 - c0) / (answered.len().max(1) as f64 * measured.as_secs_f64()),
            r1.saturating_sub(r0) as f64 / answered.len().max(1) as f64,
        ),
        _ => String::new(),
    };
    // What the tool itself cost, and how long packets waited in its socket
    // before it read them: lateness is stamped by the kernel on arrival,
    // so a slow tool does not make packets late, but its CPU is taken from
    // the same two cores as the gateway's.
    let tool = match (tool_cpu_before, tool_cpu_after) {
        (Some(c0), Some(c1)) => format!(
            " tool_cpu_pct={:.1} tool_read_delay_p50_ms={:.2} tool_read_delay_p99_ms={:.2}",
            100.0 * (c1 - c0) / measured.as_secs_f64(),
            delays.quantile(0.5) * 1000.0,
            delays.quantile(0.99) * 1000.0,
        ),
        _ => String::new(),
    };
    // Packets the gateway owed in the window: one per call per 20 ms.
    let due = (streams.len() as f64 * measured.as_secs_f64() * 50.0).round() as u64;
    println!(
        "calls={} answered={} streams={} seconds={:.1} due={due} sent_pct={:.2} packets={} expected={} lost={} loss_ppm={:.0} late_2ms={} late_5ms={} late_5ms_per_1000={:.3} jitter_mean_ms={:.3} jitter_max_ms={:.3}{}{tool}",
        options.calls,
        answered.len(),
        streams.len(),
        measured.as_secs_f64(),
        100.0 * packets as f64 / due.max(1) as f64,
        packets,
        expected,
        lost,
        1e6 * lost as f64 / expected.max(1) as f64,
        late2,
        late5,
        1000.0 * late5 as f64 / packets.max(1) as f64,
        1000.0 * jitter_sum / streams_seen as f64,
        1000.0 * jitter_max,
        gateway,
    );
    Ok(())
}
