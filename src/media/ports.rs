//! Allocation of RTP ports: one even port per call from the configured
//! range (the odd port above it is left for RTCP), on the bind address of
//! the call's media family. A port is free again when the call's socket is
//! dropped. IPv6 sockets are IPv6-only, so an IPv4 packet never reaches an
//! IPv6 call as a mapped address.

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

    /// The bind address of a family, when it is a specific address (not
    /// the wildcard): one the operator named, so it can go into SDP.
    pub fn specific_bind(&self, ipv6: bool) -> Option<IpAddr> {
        Some(if ipv6 { self.bind_v6 } else { self.bind_v4 }).filter(|ip| !ip.is_unspecified())
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
            match bind_udp(SocketAddr::new(bind, port)) {
                Ok(socket) => return Ok(socket),
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

/// A non-blocking UDP socket on `address` (IPv6-only for IPv6).
fn bind_udp(address: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&address.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
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
    fn ipv6_sockets_are_ipv6_only_and_bind_addresses_tell_if_specific() {
        let mut pool = RtpPortPool::new(
            "0.0.0.0".parse().unwrap(),
            "::".parse().unwrap(),
            41200,
            41210,
        );
        assert_eq!(pool.specific_bind(false), None);
        assert_eq!(pool.specific_bind(true), None);
        let v6 = pool.allocate(true).unwrap();
        assert!(socket2::SockRef::from(&v6).only_v6().unwrap());
        let named = RtpPortPool::new(
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
            41200,
            41210,
        );
        assert_eq!(named.specific_bind(false), "127.0.0.1".parse().ok());
        assert_eq!(named.specific_bind(true), "::1".parse().ok());
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
