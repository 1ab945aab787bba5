//! Allocation of RTP ports: one even port per call from the configured
//! range (the odd port above it is left for RTCP). A port is free again when
//! the call's socket is dropped.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

#[derive(Debug)]
pub struct RtpPortPool {
    bind_v4: IpAddr,
    bind_v6: IpAddr,
    min: u16,
    max: u16,
    cursor: u16,
}

impl RtpPortPool {
    /// `min` must be even and below `max` (the config validates this).
    pub fn new(bind_v4: IpAddr, bind_v6: IpAddr, min: u16, max: u16) -> RtpPortPool {
        RtpPortPool {
            bind_v4,
            bind_v6,
            min,
            max,
            cursor: min,
        }
    }

    fn even_ports(&self) -> u16 {
        (self.max - self.min) / 2 + 1
    }

    /// Binds the next free even port, searching the range once round from
    /// where the last search stopped, so that a just-released port is not
    /// reused at once (late packets of the old call then land nowhere).
    pub fn allocate(&mut self, ipv6: bool) -> io::Result<UdpSocket> {
        let bind = if ipv6 { self.bind_v6 } else { self.bind_v4 };
        for _ in 0..self.even_ports() {
            let port = self.cursor;
            self.cursor = if port >= self.max - 1 {
                self.min
            } else {
                port + 2
            };
            match UdpSocket::bind(SocketAddr::new(bind, port)) {
                Ok(socket) => {
                    socket.set_nonblocking(true)?;
                    return Ok(socket);
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free RTP port in {}-{}", self.min, self.max),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_even_ports_and_skips_busy_ones() {
        let mut pool = RtpPortPool::new(
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
            41000,
            41006,
        );
        let a = pool.allocate(false).unwrap();
        let b = pool.allocate(false).unwrap();
        let ports = [
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        ];
        assert!(ports.iter().all(|p| p % 2 == 0), "{ports:?}");
        assert_ne!(ports[0], ports[1]);
    }

    #[test]
    fn exhausted_range_is_an_error() {
        let mut pool = RtpPortPool::new(
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
            41100,
            41102,
        );
        let _held: Vec<UdpSocket> = (0..2).filter_map(|_| pool.allocate(false).ok()).collect();
        assert!(pool.allocate(false).is_err());
    }
}
