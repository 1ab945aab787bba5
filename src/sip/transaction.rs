//! RFC 3261 §17 transaction state machines, sans-IO.
//!
//! Each machine owns the bytes it may have to retransmit and answers every
//! input (a retransmitted request, a response, a timer firing) with a
//! [`TxStep`]: what to send again, which timers to arm, whether the
//! transaction just ended, and what to tell the transaction user. Time is an
//! input; nothing here reads a clock or touches a socket. Timers are never
//! cancelled: a timer that fires in a state where it no longer applies is
//! ignored, which keeps the machines small and the timer queue simple.
//!
//! The INVITE server transaction follows RFC 6026: after a 2xx it waits in
//! *Accepted* (timer L) absorbing retransmitted INVITEs while the UAS core
//! retransmits the 2xx itself (§13.3.1.4).

use bytes::Bytes;
use std::time::{Duration, Instant};

/// The protocol timer base values (RFC 3261 §17.1.1.1, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerValues {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerValues {
    fn default() -> Self {
        TimerValues {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerValues {
    /// 64·T1: the transaction timeout (timers B, F, H, J, L, M).
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// The named timers of RFC 3261 §17 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxTimer {
    A,
    B,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
    K,
    L,
    M,
}

/// What the transaction user learns from one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TuNotice {
    /// The transaction gave up waiting (B, F, H): treat like a 408.
    Timeout,
    /// The transport could not carry the request (a TCP connection that
    /// could not be opened): treat like a 503 (RFC 3261 §8.1.3.1).
    TransportError,
}

/// The outcome of feeding one input to a transaction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TxStep {
    /// Bytes to send (again) on the transaction's flow.
    pub send: Option<Bytes>,
    /// Timers to arm, each firing once at the given instant.
    pub arm: Vec<(TxTimer, Instant)>,
    /// The transaction has ended and can be forgotten.
    pub terminated: bool,
    pub notice: Option<TuNotice>,
    /// For client transactions: the response should go up to the TU.
    pub deliver_response: bool,
}

impl TxStep {
    fn send(bytes: Bytes) -> TxStep {
        TxStep {
            send: Some(bytes),
            ..TxStep::default()
        }
    }

    fn arm(mut self, timer: TxTimer, at: Instant) -> TxStep {
        self.arm.push((timer, at));
        self
    }

    fn terminated() -> TxStep {
        TxStep {
            terminated: true,
            ..TxStep::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// INVITE server transaction (RFC 3261 §17.2.1, RFC 6026).
#[derive(Debug)]
pub struct ServerInvite {
    pub state: ServerInviteState,
    reliable: bool,
    timers: TimerValues,
    last_response: Option<Bytes>,
    g_interval: Duration,
}

impl ServerInvite {
    pub fn new(reliable: bool, timers: TimerValues) -> ServerInvite {
        ServerInvite {
            state: ServerInviteState::Proceeding,
            reliable,
            timers,
            last_response: None,
            g_interval: timers.t1,
        }
    }

    /// A retransmission of the INVITE arrived.
    pub fn on_request_retransmission(&mut self) -> TxStep {
        match self.state {
            ServerInviteState::Proceeding | ServerInviteState::Completed => self
                .last_response
                .clone()
                .map(TxStep::send)
                .unwrap_or_default(),
            // Confirmed absorbs; Accepted absorbs (RFC 6026 §7.1) while the
            // core retransmits the 2xx.
            _ => TxStep::default(),
        }
    }

    /// The TU sends a response with status `code` through this transaction.
    pub fn send_response(&mut self, code: u16, bytes: Bytes, now: Instant) -> TxStep {
        match self.state {
            ServerInviteState::Proceeding => {}
            // RFC 6026: further 2xx (retransmissions by the core) pass through.
            ServerInviteState::Accepted if (200..300).contains(&code) => {
                return TxStep::send(bytes);
            }
            _ => return TxStep::default(),
        }
        let step = TxStep::send(bytes.clone());
        match code {
            100..=199 => {
                self.last_response = Some(bytes);
                step
            }
            // Accepted absorbs retransmitted INVITEs without answering them
            // (the core retransmits the 2xx), so the 2xx is not kept here.
            200..=299 => {
                self.last_response = None;
                self.state = ServerInviteState::Accepted;
                step.arm(TxTimer::L, now + self.timers.timeout())
            }
            _ => {
                self.last_response = Some(bytes);
                self.state = ServerInviteState::Completed;
                let step = step.arm(TxTimer::H, now + self.timers.timeout());
                if self.reliable {
                    step
                } else {
                    step.arm(TxTimer::G, now + self.g_interval)
                }
            }
        }
    }

    /// An ACK matched this transaction (only meaningful after a non-2xx).
    pub fn on_ack(&mut self, now: Instant) -> TxStep {
        if self.state != ServerInviteState::Completed {
            return TxStep::default();
        }
        self.state = ServerInviteState::Confirmed;
        if self.reliable {
            self.state = ServerInviteState::Terminated;
            return TxStep::terminated();
        }
        TxStep::default().arm(TxTimer::I, now + self.timers.t4)
    }

    pub fn on_timer(&mut self, timer: TxTimer, now: Instant) -> TxStep {
        match (self.state, timer) {
            (ServerInviteState::Completed, TxTimer::G) => {
                self.g_interval = (self.g_interval * 2).min(self.timers.t2);
                let step = self
                    .last_response
                    .clone()
                    .map(TxStep::send)
                    .unwrap_or_default();
                step.arm(TxTimer::G, now + self.g_interval)
            }
            (ServerInviteState::Completed, TxTimer::H) => {
                self.state = ServerInviteState::Terminated;
                TxStep {
                    notice: Some(TuNotice::Timeout),
                    ..TxStep::terminated()
                }
            }
            (ServerInviteState::Confirmed, TxTimer::I)
            | (ServerInviteState::Accepted, TxTimer::L) => {
                self.state = ServerInviteState::Terminated;
                TxStep::terminated()
            }
            _ => TxStep::default(),
        }
    }

    /// True once a final response has been sent.
    pub fn has_final_response(&self) -> bool {
        self.state != ServerInviteState::Proceeding
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// Non-INVITE server transaction (RFC 3261 §17.2.2).
#[derive(Debug)]
pub struct ServerNonInvite {
    pub state: ServerNonInviteState,
    reliable: bool,
    timers: TimerValues,
    last_response: Option<Bytes>,
}

impl ServerNonInvite {
    pub fn new(reliable: bool, timers: TimerValues) -> ServerNonInvite {
        ServerNonInvite {
            state: ServerNonInviteState::Trying,
            reliable,
            timers,
            last_response: None,
        }
    }

    pub fn on_request_retransmission(&mut self) -> TxStep {
        match self.state {
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed => self
                .last_response
                .clone()
                .map(TxStep::send)
                .unwrap_or_default(),
            _ => TxStep::default(),
        }
    }

    pub fn send_response(&mut self, code: u16, bytes: Bytes, now: Instant) -> TxStep {
        if matches!(
            self.state,
            ServerNonInviteState::Completed | ServerNonInviteState::Terminated
        ) {
            return TxStep::default();
        }
        self.last_response = Some(bytes.clone());
        let step = TxStep::send(bytes);
        if code < 200 {
            self.state = ServerNonInviteState::Proceeding;
            return step;
        }
        if self.reliable {
            self.state = ServerNonInviteState::Terminated;
            return TxStep {
                terminated: true,
                ..step
            };
        }
        self.state = ServerNonInviteState::Completed;
        step.arm(TxTimer::J, now + self.timers.timeout())
    }

    pub fn on_timer(&mut self, timer: TxTimer, _now: Instant) -> TxStep {
        if self.state == ServerNonInviteState::Completed && timer == TxTimer::J {
            self.state = ServerNonInviteState::Terminated;
            return TxStep::terminated();
        }
        TxStep::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

/// INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 timer M).
#[derive(Debug)]
pub struct ClientInvite {
    pub state: ClientInviteState,
    reliable: bool,
    timers: TimerValues,
    request: Bytes,
    a_interval: Duration,
    ack: Option<Bytes>,
}

impl ClientInvite {
    /// Starts the transaction; the returned step sends the INVITE.
    pub fn start(
        request: Bytes,
        reliable: bool,
        timers: TimerValues,
        now: Instant,
    ) -> (ClientInvite, TxStep) {
        let tx = ClientInvite {
            state: ClientInviteState::Calling,
            reliable,
            timers,
            request: request.clone(),
            a_interval: timers.t1,
            ack: None,
        };
        let mut step = TxStep::send(request).arm(TxTimer::B, now + timers.timeout());
        if !reliable {
            step = step.arm(TxTimer::A, now + timers.t1);
        }
        (tx, step)
    }

    /// A response arrived. `ack` builds the ACK for a non-2xx final response
    /// (RFC 3261 §17.1.1.3); it is called at most once.
    pub fn on_response(&mut self, code: u16, ack: impl FnOnce() -> Bytes, now: Instant) -> TxStep {
        match (self.state, code) {
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 100..=199) => {
                self.state = ClientInviteState::Proceeding;
                TxStep {
                    deliver_response: true,
                    ..TxStep::default()
                }
            }
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 200..=299) => {
                self.state = ClientInviteState::Accepted;
                TxStep {
                    deliver_response: true,
                    ..TxStep::default()
                }
                .arm(TxTimer::M, now + self.timers.timeout())
            }
            // Further 2xx (other forks, retransmissions) go to the TU, which ACKs them.
            (ClientInviteState::Accepted, 200..=299) => TxStep {
                deliver_response: true,
                ..TxStep::default()
            },
            (ClientInviteState::Calling | ClientInviteState::Proceeding, _) if code >= 300 => {
                let ack = ack();
                self.ack = Some(ack.clone());
                if self.reliable {
                    self.state = ClientInviteState::Terminated;
                    return TxStep {
                        send: Some(ack),
                        deliver_response: true,
                        terminated: true,
                        ..TxStep::default()
                    };
                }
                self.state = ClientInviteState::Completed;
                TxStep {
                    send: Some(ack),
                    deliver_response: true,
                    ..TxStep::default()
                }
                .arm(TxTimer::D, now + Duration::from_secs(32))
            }
            // A retransmitted final response: send the ACK again.
            (ClientInviteState::Completed, _) if code >= 300 => {
                self.ack.clone().map(TxStep::send).unwrap_or_default()
            }
            _ => TxStep::default(),
        }
    }

    pub fn on_timer(&mut self, timer: TxTimer, now: Instant) -> TxStep {
        match (self.state, timer) {
            (ClientInviteState::Calling, TxTimer::A) => {
                self.a_interval *= 2;
                TxStep::send(self.request.clone()).arm(TxTimer::A, now + self.a_interval)
            }
            (ClientInviteState::Calling, TxTimer::B) => {
                self.state = ClientInviteState::Terminated;
                TxStep {
                    notice: Some(TuNotice::Timeout),
                    ..TxStep::terminated()
                }
            }
            (ClientInviteState::Completed, TxTimer::D)
            | (ClientInviteState::Accepted, TxTimer::M) => {
                self.state = ClientInviteState::Terminated;
                TxStep::terminated()
            }
            _ => TxStep::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// Non-INVITE client transaction (RFC 3261 §17.1.2).
#[derive(Debug)]
pub struct ClientNonInvite {
    pub state: ClientNonInviteState,
    reliable: bool,
    timers: TimerValues,
    request: Bytes,
    e_interval: Duration,
}

impl ClientNonInvite {
    pub fn start(
        request: Bytes,
        reliable: bool,
        timers: TimerValues,
        now: Instant,
    ) -> (ClientNonInvite, TxStep) {
        let tx = ClientNonInvite {
            state: ClientNonInviteState::Trying,
            reliable,
            timers,
            request: request.clone(),
            e_interval: timers.t1,
        };
        let mut step = TxStep::send(request).arm(TxTimer::F, now + timers.timeout());
        if !reliable {
            step = step.arm(TxTimer::E, now + timers.t1);
        }
        (tx, step)
    }

    pub fn on_response(&mut self, code: u16, now: Instant) -> TxStep {
        match self.state {
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding => {}
            _ => return TxStep::default(),
        }
        let deliver = TxStep {
            deliver_response: true,
            ..TxStep::default()
        };
        if code < 200 {
            self.state = ClientNonInviteState::Proceeding;
            return deliver;
        }
        if self.reliable {
            self.state = ClientNonInviteState::Terminated;
            return TxStep {
                terminated: true,
                ..deliver
            };
        }
        self.state = ClientNonInviteState::Completed;
        deliver.arm(TxTimer::K, now + self.timers.t4)
    }

    pub fn on_timer(&mut self, timer: TxTimer, now: Instant) -> TxStep {
        match (self.state, timer) {
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, TxTimer::E) => {
                self.e_interval = if self.state == ClientNonInviteState::Trying {
                    (self.e_interval * 2).min(self.timers.t2)
                } else {
                    self.timers.t2
                };
                TxStep::send(self.request.clone()).arm(TxTimer::E, now + self.e_interval)
            }
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, TxTimer::F) => {
                self.state = ClientNonInviteState::Terminated;
                TxStep {
                    notice: Some(TuNotice::Timeout),
                    ..TxStep::terminated()
                }
            }
            (ClientNonInviteState::Completed, TxTimer::K) => {
                self.state = ClientNonInviteState::Terminated;
                TxStep::terminated()
            }
            _ => TxStep::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn schedule(offsets_ms: &[u64]) -> Vec<Duration> {
        offsets_ms.iter().map(|&m| ms(m)).collect()
    }

    /// Drives a machine's timers in time order and records when it sent.
    fn run_timers(
        start: Instant,
        first: TxStep,
        until: Duration,
        mut fire: impl FnMut(TxTimer, Instant) -> TxStep,
    ) -> (Vec<Duration>, bool, Option<TuNotice>) {
        let mut pending: Vec<(TxTimer, Instant)> = first.arm;
        let mut sends = Vec::new();
        let (mut terminated, mut notice) = (false, None);
        while let Some(i) = (0..pending.len()).min_by_key(|&i| pending[i].1) {
            let (timer, at) = pending.remove(i);
            if at - start > until || terminated {
                break;
            }
            let step = fire(timer, at);
            if step.send.is_some() {
                sends.push(at - start);
            }
            pending.extend(step.arm);
            terminated |= step.terminated;
            notice = notice.or(step.notice);
        }
        (sends, terminated, notice)
    }

    #[test]
    fn invite_server_retransmits_a_final_error_on_timer_g_until_timer_h() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(false, TimerValues::default());
        let first = tx.send_response(486, Bytes::from_static(b"486"), t0);
        assert!(first.send.is_some());
        let (sends, terminated, notice) =
            run_timers(t0, first, Duration::from_secs(60), |t, now| {
                tx.on_timer(t, now)
            });
        let expected = schedule(&[
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]);
        assert_eq!(sends, expected);
        assert!(terminated);
        assert_eq!(notice, Some(TuNotice::Timeout));
    }

    #[test]
    fn ack_stops_timer_g_and_timer_i_ends_the_transaction() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(false, TimerValues::default());
        let first = tx.send_response(404, Bytes::from_static(b"404"), t0);
        let ack = tx.on_ack(t0 + ms(700));
        assert_eq!(tx.state, ServerInviteState::Confirmed);
        assert_eq!(ack.arm, vec![(TxTimer::I, t0 + ms(5700))]);
        // G and H armed earlier now fire into Confirmed and do nothing.
        for (timer, at) in first.arm {
            assert_eq!(tx.on_timer(timer, at), TxStep::default());
        }
        assert!(tx.on_timer(TxTimer::I, t0 + ms(5700)).terminated);
    }

    #[test]
    fn retransmitted_invite_gets_the_last_response_and_is_absorbed_after_2xx() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(false, TimerValues::default());
        assert_eq!(tx.on_request_retransmission(), TxStep::default());
        tx.send_response(100, Bytes::from_static(b"100"), t0);
        assert_eq!(
            tx.on_request_retransmission().send,
            Some(Bytes::from_static(b"100"))
        );
        let ok = tx.send_response(200, Bytes::from_static(b"200"), t0);
        assert_eq!(ok.arm, vec![(TxTimer::L, t0 + ms(32_000))]);
        assert_eq!(tx.state, ServerInviteState::Accepted);
        assert_eq!(tx.on_request_retransmission(), TxStep::default());
        assert!(tx.on_timer(TxTimer::L, t0 + ms(32_000)).terminated);
    }

    #[test]
    fn reliable_invite_server_arms_no_timer_g_and_ends_on_ack() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(true, TimerValues::default());
        let step = tx.send_response(603, Bytes::from_static(b"603"), t0);
        assert_eq!(step.arm, vec![(TxTimer::H, t0 + ms(32_000))]);
        assert!(tx.on_ack(t0).terminated);
    }

    #[test]
    fn non_invite_server_waits_timer_j_over_udp_only() {
        let t0 = Instant::now();
        let mut udp = ServerNonInvite::new(false, TimerValues::default());
        let step = udp.send_response(200, Bytes::from_static(b"200"), t0);
        assert_eq!(step.arm, vec![(TxTimer::J, t0 + ms(32_000))]);
        assert_eq!(
            udp.on_request_retransmission().send,
            Some(Bytes::from_static(b"200"))
        );
        assert!(udp.on_timer(TxTimer::J, t0 + ms(32_000)).terminated);
        let mut tcp = ServerNonInvite::new(true, TimerValues::default());
        assert!(
            tcp.send_response(200, Bytes::from_static(b"200"), t0)
                .terminated
        );
    }

    #[test]
    fn non_invite_client_retransmits_on_timer_e_capped_at_t2_and_times_out_on_f() {
        let t0 = Instant::now();
        let (mut tx, first) = ClientNonInvite::start(
            Bytes::from_static(b"BYE"),
            false,
            TimerValues::default(),
            t0,
        );
        let (sends, terminated, notice) =
            run_timers(t0, first, Duration::from_secs(40), |t, now| {
                tx.on_timer(t, now)
            });
        let expected = schedule(&[
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]);
        assert_eq!(sends, expected);
        assert!(terminated);
        assert_eq!(notice, Some(TuNotice::Timeout));
    }

    #[test]
    fn non_invite_client_final_response_arms_timer_k() {
        let t0 = Instant::now();
        let (mut tx, _) = ClientNonInvite::start(
            Bytes::from_static(b"BYE"),
            false,
            TimerValues::default(),
            t0,
        );
        let step = tx.on_response(200, t0 + ms(10));
        assert!(step.deliver_response);
        assert_eq!(step.arm, vec![(TxTimer::K, t0 + ms(5010))]);
        assert_eq!(tx.on_response(200, t0 + ms(20)), TxStep::default());
        assert_eq!(tx.on_timer(TxTimer::E, t0 + ms(500)), TxStep::default());
        assert!(tx.on_timer(TxTimer::K, t0 + ms(5010)).terminated);
    }

    #[test]
    fn invite_client_doubles_timer_a_until_timer_b() {
        let t0 = Instant::now();
        let (mut tx, first) = ClientInvite::start(
            Bytes::from_static(b"INVITE"),
            false,
            TimerValues::default(),
            t0,
        );
        let (sends, terminated, notice) =
            run_timers(t0, first, Duration::from_secs(40), |t, now| {
                tx.on_timer(t, now)
            });
        let expected = schedule(&[500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(sends, expected);
        assert!(terminated);
        assert_eq!(notice, Some(TuNotice::Timeout));
    }

    #[test]
    fn invite_client_acks_a_failure_once_and_again_for_each_retransmission() {
        let t0 = Instant::now();
        let (mut tx, _) = ClientInvite::start(
            Bytes::from_static(b"INVITE"),
            false,
            TimerValues::default(),
            t0,
        );
        assert!(tx.on_response(180, || unreachable!(), t0).deliver_response);
        let step = tx.on_response(486, || Bytes::from_static(b"ACK"), t0);
        assert_eq!(step.send, Some(Bytes::from_static(b"ACK")));
        assert_eq!(step.arm, vec![(TxTimer::D, t0 + Duration::from_secs(32))]);
        let again = tx.on_response(486, || unreachable!(), t0 + ms(500));
        assert_eq!(again.send, Some(Bytes::from_static(b"ACK")));
        assert!(!again.deliver_response);
        assert!(
            tx.on_timer(TxTimer::D, t0 + Duration::from_secs(32))
                .terminated
        );
    }

    #[test]
    fn invite_client_hands_every_2xx_to_the_tu_and_ends_on_timer_m() {
        let t0 = Instant::now();
        let (mut tx, _) = ClientInvite::start(
            Bytes::from_static(b"INVITE"),
            true,
            TimerValues::default(),
            t0,
        );
        let step = tx.on_response(200, || unreachable!(), t0);
        assert!(step.deliver_response && step.send.is_none());
        assert!(tx.on_response(200, || unreachable!(), t0).deliver_response);
        assert_eq!(tx.on_timer(TxTimer::A, t0 + ms(500)), TxStep::default());
        assert!(tx.on_timer(TxTimer::M, t0 + ms(32_000)).terminated);
    }
}
