//! Everything queued on a UDP socket in one system call (`recvmmsg`), for
//! the media workers: a call's socket usually holds one RTP packet per
//! tick, and reading it with `recv_from` took a second call to learn the
//! queue was empty. `recvmmsg` with `MSG_DONTWAIT` returns what is there
//! and stops at the empty queue inside the kernel.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Largest datagram read: RTP of up to 60 ms G.711 with SRTP fits many
/// times over. A longer one would be cut by the kernel; it is dropped
/// rather than handed on cut.
const DATAGRAM: usize = 2048;

/// Datagrams read per system call at most; a socket holding more is read
/// again.
const BATCH: usize = 8;

/// Buffers for up to [`BATCH`] datagrams and the kernel's message headers,
/// allocated and zeroed once and reused every tick (zeroing fresh headers
/// for every socket was a tenth of a worker's time). Only the pointers are
/// set again before each read, so no pointer outlives the borrow it came
/// from.
pub struct BatchReceiver {
    headers: Box<[libc::mmsghdr; BATCH]>,
    iovecs: Box<[libc::iovec; BATCH]>,
    buffers: Box<[[u8; DATAGRAM]; BATCH]>,
    addresses: Box<[libc::sockaddr_storage; BATCH]>,
    sources: [Option<SocketAddr>; BATCH],
    /// How many the last `receive` read.
    count: usize,
}

impl Default for BatchReceiver {
    fn default() -> Self {
        // SAFETY: these are plain data; all zeroes is a valid value.
        unsafe {
            BatchReceiver {
                headers: Box::new(std::mem::zeroed()),
                iovecs: Box::new(std::mem::zeroed()),
                buffers: Box::new([[0; DATAGRAM]; BATCH]),
                addresses: Box::new(std::mem::zeroed()),
                sources: [None; BATCH],
                count: 0,
            }
        }
    }
}

impl BatchReceiver {
    /// Reads what `socket` holds, up to [`BatchReceiver::CAPACITY`], in
    /// one system call; returns how many datagrams were read (0 when none
    /// was queued, or on an error such as ICMP port unreachable from an
    /// earlier send).
    pub fn receive(&mut self, socket: &UdpSocket) -> usize {
        for (((header, iovec), buffer), address) in self
            .headers
            .iter_mut()
            .zip(self.iovecs.iter_mut())
            .zip(self.buffers.iter_mut())
            .zip(self.addresses.iter_mut())
        {
            iovec.iov_base = buffer.as_mut_ptr().cast();
            iovec.iov_len = DATAGRAM;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = (address as *mut libc::sockaddr_storage).cast();
            // The kernel shortens it to the address it wrote.
            header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        }
        // SAFETY: every header points at its own buffer of DATAGRAM bytes
        // and sockaddr_storage, borrowed from `self` just above and not
        // otherwise touched until the call returns; the count is theirs.
        let received = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        self.count = usize::try_from(received).map_or(0, |n| n.min(BATCH));
        for index in 0..self.count {
            let cut = self.headers[index].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.sources[index] = socket_address(&self.addresses[index]).filter(|_| !cut);
        }
        self.count
    }

    /// The `index`th datagram of the last `receive`, with its source;
    /// `None` past the count, for a source that is not IP, or for a
    /// datagram longer than the buffer.
    pub fn datagram(&self, index: usize) -> Option<(&[u8], SocketAddr)> {
        if index >= self.count {
            return None;
        }
        let source = self.sources[index]?;
        let len = (self.headers[index].msg_len as usize).min(DATAGRAM);
        Some((&self.buffers[index][..len], source))
    }

    /// Most datagrams one `receive` reads: when it read this many, more
    /// may be waiting.
    pub const CAPACITY: usize = BATCH;
}

/// The IPv4 or IPv6 address the kernel wrote.
fn socket_address(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let v4 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::from((
                u32::from_be(v4.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                v6.sin6_addr.s6_addr.into(),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(bind: &str) -> (UdpSocket, UdpSocket) {
        let receiver = UdpSocket::bind(bind).unwrap();
        let sender = UdpSocket::bind(bind).unwrap();
        (receiver, sender)
    }

    /// Waits until loopback has queued `count` datagrams (delivery is
    /// synchronous on Linux loopback, but not promised).
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    #[test]
    fn everything_queued_comes_in_one_call_with_its_source() {
        let (receiver, sender) = pair("127.0.0.1:0");
        for payload in [&b"one"[..], b"two", b"three"] {
            sender
                .send_to(payload, receiver.local_addr().unwrap())
                .unwrap();
        }
        settle();
        let mut batch = BatchReceiver::default();
        assert_eq!(batch.receive(&receiver), 3);
        let got: Vec<(Vec<u8>, SocketAddr)> = (0..3)
            .map(|i| {
                let (bytes, from) = batch.datagram(i).unwrap();
                (bytes.to_vec(), from)
            })
            .collect();
        let from = sender.local_addr().unwrap();
        assert_eq!(
            got,
            [
                (b"one".to_vec(), from),
                (b"two".to_vec(), from),
                (b"three".to_vec(), from)
            ]
        );
        assert!(batch.datagram(3).is_none());
        assert_eq!(batch.receive(&receiver), 0, "empty: no wait");
        assert!(batch.datagram(0).is_none(), "nothing left from before");
    }

    #[test]
    fn more_than_the_capacity_takes_more_calls_and_loses_nothing() {
        let (receiver, sender) = pair("127.0.0.1:0");
        let count = BatchReceiver::CAPACITY * 2 + 3;
        for n in 0..count {
            sender
                .send_to(&[n as u8], receiver.local_addr().unwrap())
                .unwrap();
        }
        settle();
        let mut batch = BatchReceiver::default();
        let mut got = Vec::new();
        loop {
            let read = batch.receive(&receiver);
            got.extend((0..read).map(|i| batch.datagram(i).unwrap().0[0]));
            if read < BatchReceiver::CAPACITY {
                break;
            }
        }
        assert_eq!(got, (0..count as u8).collect::<Vec<_>>());
    }

    #[test]
    fn ipv6_sources_are_read() {
        let Ok((receiver, sender)) = std::panic::catch_unwind(|| pair("[::1]:0")) else {
            return; // no IPv6 loopback here
        };
        sender
            .send_to(b"v6", receiver.local_addr().unwrap())
            .unwrap();
        settle();
        let mut batch = BatchReceiver::default();
        assert_eq!(batch.receive(&receiver), 1);
        assert_eq!(
            batch.datagram(0),
            Some((&b"v6"[..], sender.local_addr().unwrap()))
        );
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_dropped_and_the_next_read() {
        let (receiver, sender) = pair("127.0.0.1:0");
        let to = receiver.local_addr().unwrap();
        sender.send_to(&[7u8; 3000], to).unwrap();
        sender.send_to(b"next", to).unwrap();
        settle();
        let mut batch = BatchReceiver::default();
        assert_eq!(batch.receive(&receiver), 2);
        assert!(batch.datagram(0).is_none(), "not handed on cut");
        assert_eq!(batch.datagram(1).unwrap().0, b"next");
    }
}
