//! Admission control for signalling: which sources may talk to the gateway
//! at all (trusted networks), and whether a new call may start (capacity,
//! per-source INVITE rate, draining). Pure: the caller passes "now".

use crate::token_bucket::TokenBucket;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why a new call was refused; each maps to a status and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source is outside the trusted networks: `403`.
    Untrusted,
    /// Too many concurrent calls: `503` with Retry-After.
    Capacity,
    /// The source sends INVITEs faster than allowed: `503` with Retry-After.
    Rate,
    /// The gateway is shutting down: `503`.
    Draining,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Untrusted => "acl",
            Refusal::Capacity => "capacity",
            Refusal::Rate => "rate",
            Refusal::Draining => "draining",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdmissionPolicy {
    pub trusted_networks: Vec<IpNet>,
    pub max_calls: usize,
    /// New INVITEs per second allowed from one source address (burst of
    /// the same size); 0 disables the limit.
    pub invites_per_second_per_source: u32,
}

/// An address as the access lists see it: IPv4-mapped IPv6 addresses
/// (a dual-stack socket's view of an IPv4 peer) as plain IPv4.
pub fn canonical(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, IpAddr::V4),
        v4 => v4,
    }
}

/// True when `source` lies in one of `networks`.
pub fn in_networks(networks: &[IpNet], source: IpAddr) -> bool {
    let source = canonical(source);
    networks.iter().any(|net| net.contains(&source))
}

#[derive(Debug)]
pub struct Admission {
    policy: AdmissionPolicy,
    buckets: HashMap<IpAddr, TokenBucket>,
    last_sweep: Option<Instant>,
    draining: bool,
}

impl Admission {
    pub fn new(policy: AdmissionPolicy) -> Admission {
        Admission {
            policy,
            buckets: HashMap::new(),
            last_sweep: None,
            draining: false,
        }
    }

    pub fn is_trusted(&self, source: IpAddr) -> bool {
        in_networks(&self.policy.trusted_networks, source)
    }

    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Decides on a new INVITE from `source` while `active_calls` are up.
    pub fn admit_call(
        &mut self,
        source: IpAddr,
        active_calls: usize,
        now: Instant,
    ) -> Result<(), Refusal> {
        if !self.is_trusted(source) {
            return Err(Refusal::Untrusted);
        }
        if self.draining {
            return Err(Refusal::Draining);
        }
        if active_calls >= self.policy.max_calls {
            return Err(Refusal::Capacity);
        }
        self.take_token(source, now)
    }

    fn take_token(&mut self, source: IpAddr, now: Instant) -> Result<(), Refusal> {
        let rate = f64::from(self.policy.invites_per_second_per_source);
        if rate == 0.0 {
            return Ok(());
        }
        self.sweep(now);
        let bucket = self
            .buckets
            .entry(source)
            .or_insert_with(|| TokenBucket::full(rate, now));
        if bucket.try_take(rate, rate, now) {
            Ok(())
        } else {
            Err(Refusal::Rate)
        }
    }

    /// Forgets full buckets now and then so that many sources cannot grow
    /// the table without bound.
    fn sweep(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|last| now.saturating_duration_since(last) > Duration::from_secs(10));
        if !due {
            return;
        }
        self.last_sweep = Some(now);
        self.buckets.retain(|_, bucket| {
            now.saturating_duration_since(bucket.updated()) < Duration::from_secs(10)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rate: u32) -> AdmissionPolicy {
        AdmissionPolicy {
            trusted_networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            max_calls: 2,
            invites_per_second_per_source: rate,
        }
    }

    #[test]
    fn only_trusted_networks_are_admitted() {
        let mut admission = Admission::new(policy(0));
        let now = Instant::now();
        assert_eq!(
            admission.admit_call("127.0.0.1".parse().unwrap(), 0, now),
            Ok(())
        );
        assert_eq!(admission.admit_call("::1".parse().unwrap(), 0, now), Ok(()));
        assert_eq!(
            admission.admit_call("::ffff:127.0.0.1".parse().unwrap(), 0, now),
            Ok(())
        );
        assert_eq!(
            admission.admit_call("192.0.2.1".parse().unwrap(), 0, now),
            Err(Refusal::Untrusted)
        );
    }

    #[test]
    fn capacity_and_draining_refuse_new_calls() {
        let mut admission = Admission::new(policy(0));
        let (ip, now) = ("127.0.0.1".parse().unwrap(), Instant::now());
        assert_eq!(admission.admit_call(ip, 2, now), Err(Refusal::Capacity));
        admission.set_draining(true);
        assert_eq!(admission.admit_call(ip, 0, now), Err(Refusal::Draining));
    }

    #[test]
    fn rate_limit_refills_over_time() {
        let mut admission = Admission::new(policy(2));
        let (ip, t0) = ("127.0.0.1".parse().unwrap(), Instant::now());
        assert_eq!(admission.admit_call(ip, 0, t0), Ok(()));
        assert_eq!(admission.admit_call(ip, 0, t0), Ok(()));
        assert_eq!(admission.admit_call(ip, 0, t0), Err(Refusal::Rate));
        assert_eq!(
            admission.admit_call(ip, 0, t0 + Duration::from_millis(500)),
            Ok(())
        );
        assert_eq!(
            admission.admit_call("127.0.0.2".parse().unwrap(), 0, t0),
            Ok(())
        );
    }
}
