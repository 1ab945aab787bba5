//! Measures what the kernel charges for the system calls a media worker
//! makes per packet on loopback: a `sendto` of one RTP packet (which also
//! delivers it into the receiving socket), a `recvfrom` that returns a
//! packet, and a `recvfrom` that finds nothing. This is the floor under the
//! gateway's CPU per call-second: 50 packets a second per call cost at least
//! 50 of each.
//!
//! Then the same packets through one shared socket, 64 per `sendmmsg` and
//! `recvmmsg`: the floor of a worker that served all its calls from one
//! port.
//!
//!     cargo run --release --example udp_cost -- [SOCKETS] [ROUNDS]

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::time::Duration;

fn thread_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr());
        usage.assume_init()
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

fn per_call(label: &str, calls: u64, cpu: Duration) {
    let nanos = cpu.as_nanos() as f64 / calls as f64;
    println!(
        "{label:<28} {calls:>9} calls  {:>7.2} µs each  {:>6.3} ms CPU per call-second at 50/s",
        nanos / 1000.0,
        nanos * 50.0 / 1e6
    );
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let sockets: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);

    let senders: Vec<UdpSocket> = (0..sockets)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let receivers: Vec<UdpSocket> = (0..sockets)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    for socket in senders.iter().chain(&receivers) {
        socket.set_nonblocking(true)?;
    }
    let targets: Vec<_> = receivers
        .iter()
        .map(|r| r.local_addr())
        .collect::<Result<_, _>>()?;
    let packet = [0x80u8; 172];
    let mut buffer = [0u8; 2048];

    let (mut send_cpu, mut recv_cpu, mut empty_cpu) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut sent, mut received, mut empty) = (0u64, 0u64, 0u64);
    for _ in 0..rounds {
        let start = thread_cpu();
        for (socket, target) in senders.iter().zip(&targets) {
            if socket.send_to(&packet, target).is_ok() {
                sent += 1;
            }
        }
        let after_send = thread_cpu();
        for socket in &receivers {
            if socket.recv_from(&mut buffer).is_ok() {
                received += 1;
            }
        }
        let after_recv = thread_cpu();
        for socket in &receivers {
            match socket.recv_from(&mut buffer) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => empty += 1,
                _ => {}
            }
        }
        let after_empty = thread_cpu();
        send_cpu += after_send - start;
        recv_cpu += after_recv - after_send;
        empty_cpu += after_empty - after_recv;
    }
    println!("{sockets} socket pairs, {rounds} rounds, 172-byte packets on loopback");
    per_call("sendto (with delivery)", sent, send_cpu);
    per_call("recvfrom (a packet)", received, recv_cpu);
    per_call("recvfrom (WouldBlock)", empty, empty_cpu);
    per_socket_batches(&senders, &targets, &receivers, rounds)?;
    shared_socket(&targets, &receivers, rounds)?;
    Ok(())
}

/// What the media worker does per call and tick: one `recvmmsg` that
/// returns the call's packet and stops at the empty queue, against a
/// `recvfrom` for the packet and a second one that finds nothing.
fn per_socket_batches(
    senders: &[UdpSocket],
    targets: &[std::net::SocketAddr],
    receivers: &[UdpSocket],
    rounds: u64,
) -> std::io::Result<()> {
    let packet = [0x80u8; 172];
    let mut batch = hotline::media::batch_receive::BatchReceiver::default();
    let (mut cpu, mut read) = (Duration::ZERO, 0u64);
    for _ in 0..rounds {
        for (socket, target) in senders.iter().zip(targets) {
            let _ = socket.send_to(&packet, target);
        }
        let start = thread_cpu();
        for socket in receivers {
            read += batch.receive(socket) as u64;
        }
        cpu += thread_cpu() - start;
    }
    per_call("recvmmsg (a packet, then empty)", read, cpu);
    Ok(())
}

/// The other design: one socket per worker for every call, its packets
/// sent with `sendmmsg` and read with `recvmmsg`, 64 per system call.
/// Each packet still goes to its own receiving socket (a call's peer).
fn shared_socket(
    targets: &[std::net::SocketAddr],
    receivers: &[UdpSocket],
    rounds: u64,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    const BATCH: usize = 64;
    let shared = UdpSocket::bind("127.0.0.1:0")?;
    shared.set_nonblocking(true)?;
    socket2::SockRef::from(&shared).set_recv_buffer_size(16 << 20)?;
    let packet = [0x80u8; 172];
    let addresses: Vec<socket2::SockAddr> = targets.iter().map(|&t| t.into()).collect();
    let (mut send_cpu, mut recv_cpu) = (Duration::ZERO, Duration::ZERO);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut buffers = vec![[0u8; 2048]; BATCH];
    for _ in 0..rounds {
        let start = thread_cpu();
        for chunk in addresses.chunks(BATCH) {
            let mut iovecs: Vec<libc::iovec> = chunk
                .iter()
                .map(|_| libc::iovec {
                    iov_base: packet.as_ptr() as *mut _,
                    iov_len: packet.len(),
                })
                .collect();
            // SAFETY: mmsghdr is plain data; all zeroes is valid.
            let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; chunk.len()];
            for ((header, iovec), address) in headers.iter_mut().zip(&mut iovecs).zip(chunk) {
                header.msg_hdr.msg_name = address.as_ptr() as *mut _;
                header.msg_hdr.msg_namelen = address.len();
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every header points at live data for the call.
            let n = unsafe {
                libc::sendmmsg(
                    shared.as_raw_fd(),
                    headers.as_mut_ptr(),
                    headers.len() as u32,
                    0,
                )
            };
            sent += n.max(0) as u64;
        }
        let after_send = thread_cpu();
        send_cpu += after_send - start;
        // The receiving side: every receiver answers the shared socket,
        // which then reads them all, 64 per call (the answers' cost is
        // not counted).
        for receiver in receivers {
            let _ = receiver.recv_from(&mut buffers[0]);
            let _ = receiver.send_to(&packet, shared.local_addr()?);
        }
        let before_recv = thread_cpu();
        loop {
            let mut iovecs: Vec<libc::iovec> = buffers
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            // SAFETY: as above.
            let mut headers: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
            for (header, iovec) in headers.iter_mut().zip(&mut iovecs) {
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every header points at a live buffer.
            let n = unsafe {
                libc::recvmmsg(
                    shared.as_raw_fd(),
                    headers.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n <= 0 {
                break;
            }
            received += n as u64;
        }
        recv_cpu += thread_cpu() - before_recv;
    }
    println!("one shared socket, {BATCH} packets per system call");
    per_call("sendmmsg (with delivery)", sent, send_cpu);
    per_call("recvmmsg (a packet)", received, recv_cpu);
    Ok(())
}
