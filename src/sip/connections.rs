//! Who may hold a SIP connection (TCP, and every other stream transport)
//! and how many: the counting half of the connection limits. The other
//! half, what a connection may do once admitted (timeouts, buffers), is in
//! `stream`.
//!
//! A connection from outside the trusted networks is refused as soon as it
//! is accepted. A trusted source may hold `max_per_source` connections
//! (`max_per_proxy` when it is in the proxy networks: a SIP proxy carries
//! many callers' dialogs), and all sources together `max_connections`.
//! Connections the gateway opens itself (to transfer targets, or for a
//! request too big for UDP) have an allowance of their own, so that a
//! flood of incoming connections never stops a transfer. Every admitted
//! connection holds a [`Permit`]; dropping it gives the place back.
//!
//! Refusals are counted in `/metrics` every time and logged once per
//! source per minute (`log_throttle`), so a flood cannot flood the log.

use super::admission::{canonical, in_networks};
use super::endpoint::Transport;
use crate::log_throttle::LogThrottle;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The numbers behind the connection limits (`[sip_connections]`).
#[derive(Debug, Clone)]
pub struct ConnectionPolicy {
    pub trusted_networks: Vec<IpNet>,
    /// Incoming connections from all sources together.
    pub max_connections: usize,
    /// Incoming connections from one source address.
    pub max_per_source: usize,
    /// Sources (SIP proxies, SBCs) that may hold `max_per_proxy` each.
    pub proxy_networks: Vec<IpNet>,
    pub max_per_proxy: usize,
    /// Connections the gateway opens itself, all together.
    pub max_outgoing: usize,
}

/// Why a connection was refused; each is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source is outside the trusted networks.
    Untrusted,
    /// The source already holds as many connections as it may.
    SourceLimit,
    /// All sources together hold `max_connections`.
    TotalLimit,
    /// The gateway's own connections are all in use.
    OutgoingLimit,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Untrusted => "untrusted",
            Refusal::SourceLimit => "source_limit",
            Refusal::TotalLimit => "total_limit",
            Refusal::OutgoingLimit => "outgoing_limit",
        }
    }
}

/// The open connections, counted (pure).
#[derive(Debug, Default)]
struct Counts {
    incoming: usize,
    outgoing: usize,
    by_source: HashMap<IpAddr, usize>,
    /// The most incoming connections open at once since it was last taken.
    peak: usize,
}

impl Counts {
    fn admit(&mut self, policy: &ConnectionPolicy, source: IpAddr) -> Result<(), Refusal> {
        if !in_networks(&policy.trusted_networks, source) {
            return Err(Refusal::Untrusted);
        }
        let allowed = if in_networks(&policy.proxy_networks, source) {
            policy.max_per_proxy
        } else {
            policy.max_per_source
        };
        let held = self.by_source.get(&source).copied().unwrap_or(0);
        if held >= allowed {
            return Err(Refusal::SourceLimit);
        }
        if self.incoming >= policy.max_connections {
            return Err(Refusal::TotalLimit);
        }
        self.incoming += 1;
        self.peak = self.peak.max(self.incoming);
        *self.by_source.entry(source).or_insert(0) += 1;
        Ok(())
    }

    fn release(&mut self, source: IpAddr) {
        self.incoming = self.incoming.saturating_sub(1);
        if let Some(held) = self.by_source.get_mut(&source) {
            *held -= 1;
            if *held == 0 {
                self.by_source.remove(&source);
            }
        }
    }

    fn open_outgoing(&mut self, policy: &ConnectionPolicy) -> Result<(), Refusal> {
        if self.outgoing >= policy.max_outgoing {
            return Err(Refusal::OutgoingLimit);
        }
        self.outgoing += 1;
        Ok(())
    }
}

/// How long a source's refusals stay out of the log after one is logged.
const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(60);
/// Sources whose refusals are remembered for the log at one time.
const REFUSAL_LOG_SOURCES: usize = 4096;

/// The shared connection counts of every listener, behind one lock (taken
/// once per accept and once per close).
#[derive(Debug)]
pub struct ConnectionGate {
    policy: ConnectionPolicy,
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    counts: Counts,
    refusals: LogThrottle<IpAddr>,
}

impl ConnectionGate {
    pub fn new(policy: ConnectionPolicy) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
            policy,
            state: Mutex::new(GateState {
                counts: Counts::default(),
                refusals: LogThrottle::new(REFUSAL_LOG_WINDOW, REFUSAL_LOG_SOURCES),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, GateState> {
        // Nothing under the lock can panic half-way; a poisoned lock still
        // holds consistent counts.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection just accepted from `source`, or says why not
    /// (counted, and logged once per source per minute).
    pub fn admit(
        self: &Arc<Self>,
        source: IpAddr,
        transport: Transport,
        now: Instant,
    ) -> Result<Permit, Refusal> {
        let source = canonical(source);
        let mut state = self.state();
        match state.counts.admit(&self.policy, source) {
            Ok(()) => {
                drop(state);
                crate::metrics::sip_connection_opened(transport, "in");
                Ok(Permit {
                    gate: self.clone(),
                    transport,
                    source: Some(source),
                })
            }
            Err(refusal) => {
                let log = state.refusals.note(source, now);
                drop(state);
                crate::metrics::sip_connection_refused(transport, refusal.label());
                if let Some(held_back) = log {
                    let why = refusal.label();
                    let transport = transport.via_token();
                    if refusal == Refusal::Untrusted {
                        tracing::info!(%source, transport, refusal = why, held_back, "connection refused (more from this source within a minute are only counted)");
                    } else {
                        tracing::warn!(%source, transport, refusal = why, held_back, "connection refused (more from this source within a minute are only counted)");
                    }
                }
                Err(refusal)
            }
        }
    }

    /// A place for a connection the gateway opens itself.
    pub fn open_outgoing(self: &Arc<Self>, transport: Transport) -> Result<Permit, Refusal> {
        let opened = self.state().counts.open_outgoing(&self.policy);
        match opened {
            Ok(()) => {
                crate::metrics::sip_connection_opened(transport, "out");
                Ok(Permit {
                    gate: self.clone(),
                    transport,
                    source: None,
                })
            }
            Err(refusal) => {
                crate::metrics::sip_connection_refused(transport, refusal.label());
                tracing::warn!(
                    limit = self.policy.max_outgoing,
                    "no connection of our own left; the message is not sent"
                );
                Err(refusal)
            }
        }
    }

    /// How many fewer incoming connections are open now than at the most
    /// since the last call (then the peak starts again from now).
    pub fn fall_since_peak(&self) -> usize {
        let mut state = self.state();
        let counts = &mut state.counts;
        let fall = counts.peak - counts.incoming;
        counts.peak = counts.incoming;
        fall
    }

    /// Incoming and outgoing connections open now.
    #[cfg(test)]
    fn open(&self) -> (usize, usize) {
        let state = self.state();
        (state.counts.incoming, state.counts.outgoing)
    }
}

/// One connection's place in the counts, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<ConnectionGate>,
    transport: Transport,
    /// The source of an incoming connection; `None` for our own.
    source: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.gate.state();
        match self.source {
            Some(source) => state.counts.release(source),
            None => state.counts.outgoing = state.counts.outgoing.saturating_sub(1),
        }
        drop(state);
        let direction = if self.source.is_some() { "in" } else { "out" };
        crate::metrics::sip_connection_gone(self.transport, direction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ConnectionPolicy {
        ConnectionPolicy {
            trusted_networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            max_connections: 5,
            max_per_source: 2,
            proxy_networks: vec!["127.0.0.9/32".parse().unwrap()],
            max_per_proxy: 4,
            max_outgoing: 1,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_sources_get_no_connection() {
        let mut counts = Counts::default();
        assert_eq!(
            counts.admit(&policy(), ip("192.0.2.1")),
            Err(Refusal::Untrusted)
        );
        assert_eq!(counts.incoming, 0);
    }

    #[test]
    fn one_source_holds_at_most_its_share_and_proxies_more() {
        let (policy, mut counts) = (policy(), Counts::default());
        let one = ip("127.0.0.1");
        assert_eq!(counts.admit(&policy, one), Ok(()));
        assert_eq!(counts.admit(&policy, one), Ok(()));
        assert_eq!(counts.admit(&policy, one), Err(Refusal::SourceLimit));
        counts.release(one);
        assert_eq!(counts.admit(&policy, one), Ok(()));
        let proxy = ip("127.0.0.9");
        for _ in 0..3 {
            assert_eq!(counts.admit(&policy, proxy), Ok(()));
        }
        // Five in all: the proxy's fourth finds the total used up.
        assert_eq!(counts.admit(&policy, proxy), Err(Refusal::TotalLimit));
        assert_eq!(counts.incoming, 5);
    }

    #[test]
    fn released_sources_are_forgotten() {
        let (policy, mut counts) = (policy(), Counts::default());
        counts.admit(&policy, ip("127.0.0.1")).unwrap();
        counts.release(ip("127.0.0.1"));
        assert!(counts.by_source.is_empty());
        assert_eq!(counts.incoming, 0);
    }

    #[test]
    fn our_own_connections_have_their_own_allowance() {
        let (policy, mut counts) = (policy(), Counts::default());
        for n in 1..=5 {
            counts.admit(&policy, ip(&format!("127.0.0.{n}"))).unwrap();
        }
        assert_eq!(counts.open_outgoing(&policy), Ok(()));
        assert_eq!(counts.open_outgoing(&policy), Err(Refusal::OutgoingLimit));
    }

    #[test]
    fn permits_count_and_give_back_places() {
        let gate = ConnectionGate::new(policy());
        let now = Instant::now();
        let a = gate.admit(ip("127.0.0.1"), Transport::Tcp, now).unwrap();
        let b = gate
            .admit(ip("::ffff:127.0.0.1"), Transport::Tcp, now)
            .unwrap();
        assert_eq!(
            gate.admit(ip("127.0.0.1"), Transport::Tcp, now)
                .unwrap_err(),
            Refusal::SourceLimit,
            "an IPv4-mapped address is the same source"
        );
        let ours = gate.open_outgoing(Transport::Tcp).unwrap();
        assert_eq!(gate.open(), (2, 1));
        drop((a, b, ours));
        assert_eq!(gate.open(), (0, 0));
        assert_eq!(gate.fall_since_peak(), 2);
        assert_eq!(gate.fall_since_peak(), 0);
    }
}
