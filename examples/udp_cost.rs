//! Measures what the kernel charges for the system calls a media worker
//! makes per packet on loopback: a `sendto` of one RTP packet (which also
//! delivers it into the receiving socket), a `recvfrom` that returns a
//! packet, and a `recvfrom` that finds nothing. This is the floor under the
//! gateway's CPU per call-second: 50 packets a second per call cost at least
//! 50 of each.
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
    Ok(())
}
