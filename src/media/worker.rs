//! Media workers: a few OS threads, each serving many calls. Every packet
//! time (20 ms) a worker drains each of its calls' RTP sockets, feeds what
//! arrived to the call's [`MediaSession`], and sends that call's next
//! packet — one timer per worker, not one per call, so that thousands of
//! calls stay on time on two cores.
//!
//! Plain threads with non-blocking sockets rather than async tasks: the
//! work is a fixed-rate loop over all calls, which needs a precise sleep
//! and no per-socket wake-ups. Commands come in over a channel; events go
//! out to the server's task.
//!
//! A bridged call (transfer mode "bridge") has a second socket and session
//! in the same entry, the agent leg: each tick both are read, the audio
//! each heard is handed to the other (`relay`), and both send.
//!
//! A datagram whose handling panics (a bug in a parser, ours or a crate's,
//! reached by a peer's packet) is dropped and counted, and the worker goes
//! on: one bad packet must not end every call on the thread.

use super::batch_receive::BatchReceiver;
use super::playback::Playlist;
use super::recorder::RecordSpec;
use super::session::{MediaEvent, MediaParams, MediaSession, StereoChunk, MAX_PACKET};
use crate::sip::endpoint::CallHandle;
use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// The worker tick: the shortest packet time we send.
pub const PACKET_TIME: Duration = Duration::from_millis(20);
/// How far behind its schedule a worker may be and still send what it
/// owes (at twice the pace); beyond, it drops the backlog.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);
/// A recorded bridged call's audio leaves the worker every this many ticks
/// (one second), so that a long call never piles up in memory here.
const CALL_AUDIO_TICKS: u32 = 50;

pub enum WorkerCommand {
    Start {
        socket: UdpSocket,
        session: Box<MediaSession>,
    },
    Update(MediaParams),
    Play(Playlist),
    StopPlayback,
    SendDtmf(char),
    /// A key read from signalling (SIP INFO), for barge-in and the event.
    KeyFromSignalling(char),
    /// Bridges the call to an answered agent leg: its RTP socket and
    /// session; the caller's playback stops and audio flows both ways.
    /// `record`: both sides go out as `MediaEvent::CallAudio` every
    /// second (and `CallAudioEnd` at the end). A caller session started
    /// with its taps on (a recorded IVR leg) goes out the same way from
    /// the start; at the bridge its recording goes on with `record`, and
    /// ends without.
    Bridge {
        socket: UdpSocket,
        session: Box<MediaSession>,
        record: bool,
    },
    /// The agent leg renegotiated its media (hold, resume, a new address).
    UpdateAgent(MediaParams),
    /// Records what the caller sends (`MediaEvent::Recorded` at its end).
    StartRecording(RecordSpec),
    /// Ends a running recording now.
    StopRecording,
    /// Drops a running recording (no `Recorded` event).
    CancelRecording,
    End,
}

/// An event of one call's media, for the server's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMediaEvent {
    pub call: CallHandle,
    pub event: MediaEvent,
}

pub struct MediaWorkers {
    senders: Vec<Sender<(CallHandle, WorkerCommand)>>,
    threads: Vec<JoinHandle<()>>,
}

impl MediaWorkers {
    /// Starts `count` workers (0: one per core), each at real-time
    /// `priority` when it is not 0.
    pub fn start(
        count: usize,
        priority: u8,
        events: UnboundedSender<CallMediaEvent>,
    ) -> std::io::Result<MediaWorkers> {
        let count = match count {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for index in 0..count {
            let (tx, rx) = mpsc::channel();
            let events = events.clone();
            let thread = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || {
                    if priority > 0 {
                        make_realtime(index, priority);
                    }
                    Worker::new(rx, events).run()
                })?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(MediaWorkers { senders, threads })
    }

    /// Sends a command to the worker that owns `call`.
    pub fn send(&self, call: CallHandle, command: WorkerCommand) {
        // Fibonacci hashing: call handles share their id space with
        // transactions, so consecutive calls often differ by 2 and a plain
        // modulo would put them all on one worker.
        let index =
            (call.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % self.senders.len();
        if self.senders[index].send((call, command)).is_err() {
            tracing::error!(worker = index, "media worker is gone");
        }
    }

    /// Stops the workers and waits for them.
    pub fn shutdown(self) {
        drop(self.senders);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

struct Entry {
    call: CallHandle,
    socket: UdpSocket,
    session: Box<MediaSession>,
    /// Ticks per packet (ptime / 20 ms) and ticks left until the next one.
    every: u32,
    countdown: u32,
    timeout_reported: bool,
    agent: Option<AgentLeg>,
    /// Ticks since a recorded call's audio last went out.
    tap_ticks: u32,
}

/// The agent side of a bridged call.
struct AgentLeg {
    socket: UdpSocket,
    session: Box<MediaSession>,
    every: u32,
    countdown: u32,
}

struct Worker {
    commands: Receiver<(CallHandle, WorkerCommand)>,
    events: UnboundedSender<CallMediaEvent>,
    entries: Vec<Entry>,
    index: HashMap<CallHandle, usize>,
    receiver: BatchReceiver,
    send_buffer: Vec<u8>,
}

impl Worker {
    fn new(
        commands: Receiver<(CallHandle, WorkerCommand)>,
        events: UnboundedSender<CallMediaEvent>,
    ) -> Worker {
        Worker {
            commands,
            events,
            entries: Vec::new(),
            index: HashMap::new(),
            receiver: BatchReceiver::default(),
            send_buffer: vec![0; MAX_PACKET],
        }
    }

    /// Ticks on a fixed schedule (`next_tick` only ever moves by whole
    /// packet times, so the ticks never drift). A worker that fell behind
    /// sends every packet it owes, at twice the pace until it is back on
    /// schedule (ticks at least half a packet time apart: no bursts); only
    /// after a stall of more than [`MAX_CATCH_UP`] does it start afresh.
    fn run(mut self) {
        let mut next_tick = Instant::now();
        loop {
            if !self.take_commands() {
                return;
            }
            let started = Instant::now();
            self.tick(started);
            next_tick += PACKET_TIME;
            let now = Instant::now();
            let behind = now.saturating_duration_since(next_tick);
            if behind > MAX_CATCH_UP {
                // The machine stalled: that audio is too old to send now.
                tracing::warn!(
                    behind_ms = behind.as_millis() as u64,
                    "media worker fell behind; starting afresh"
                );
                crate::metrics::media_worker_restarted();
                next_tick = now;
            }
            let at = next_tick.max(started + PACKET_TIME / 2);
            if at > now {
                std::thread::sleep(at - now);
            }
        }
    }

    /// Applies pending commands; false when the workers are shutting down.
    fn take_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok((call, command)) => self.apply(call, command),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn apply(&mut self, call: CallHandle, command: WorkerCommand) {
        if let WorkerCommand::Start { socket, session } = command {
            let every = (session.params().ptime_ms / PACKET_TIME.as_millis() as u32).max(1);
            self.index.insert(call, self.entries.len());
            self.entries.push(Entry {
                call,
                socket,
                session,
                every,
                countdown: 0,
                timeout_reported: false,
                agent: None,
                tap_ticks: 0,
            });
            return;
        }
        let Some(&position) = self.index.get(&call) else {
            return;
        };
        let now = Instant::now();
        let entry = &mut self.entries[position];
        match command {
            WorkerCommand::Start { .. } => {}
            WorkerCommand::Update(params) => {
                entry.every = (params.ptime_ms / PACKET_TIME.as_millis() as u32).max(1);
                entry.session.update(params, now);
            }
            WorkerCommand::Play(playlist) => entry.session.play(playlist),
            WorkerCommand::StopPlayback => entry.session.stop(),
            WorkerCommand::StartRecording(spec) => entry.session.start_recording(spec),
            WorkerCommand::StopRecording => entry.session.stop_recording(),
            WorkerCommand::CancelRecording => entry.session.cancel_recording(),
            WorkerCommand::SendDtmf(digit) => {
                entry.session.send_dtmf(digit);
            }
            WorkerCommand::KeyFromSignalling(digit) => entry.session.key_from_signalling(digit),
            WorkerCommand::Bridge {
                socket,
                mut session,
                record,
            } => {
                if entry.session.is_sent_tapped() {
                    // A recorded IVR leg: what it holds goes out now. With
                    // `record` its recording goes on with the agent on the
                    // right; without, it ends at the bridge.
                    entry.tap_ticks = 0;
                    let chunk = call_audio(entry);
                    let _ = self.events.send(CallMediaEvent { call, event: chunk });
                    entry.session.stop_sent_tap();
                    if !record {
                        entry.session.stop_taps();
                        let _ = self.events.send(CallMediaEvent {
                            call,
                            event: MediaEvent::CallAudioEnd,
                        });
                    }
                }
                entry.session.start_relay();
                session.start_relay();
                if record {
                    entry.session.start_tap();
                    session.start_tap();
                }
                let every = (session.params().ptime_ms / PACKET_TIME.as_millis() as u32).max(1);
                entry.agent = Some(AgentLeg {
                    socket,
                    session,
                    every,
                    countdown: 0,
                });
            }
            WorkerCommand::UpdateAgent(params) => {
                if let Some(agent) = entry.agent.as_mut() {
                    agent.every = (params.ptime_ms / PACKET_TIME.as_millis() as u32).max(1);
                    agent.session.update(params, now);
                }
            }
            WorkerCommand::End => {
                let mut removed = self.entries.swap_remove(position);
                if removed.session.is_tapped() {
                    let chunk = call_audio(&mut removed);
                    let _ = self.events.send(CallMediaEvent { call, event: chunk });
                    let _ = self.events.send(CallMediaEvent {
                        call,
                        event: MediaEvent::CallAudioEnd,
                    });
                }
                // A recording running at the hang-up is what the caller
                // said last: it is delivered, not dropped.
                removed.session.stop_recording();
                while let Some(event) = removed.session.poll_event() {
                    if let MediaEvent::Recorded(_) = event {
                        let _ = self.events.send(CallMediaEvent { call, event });
                    }
                }
                if let Some(agent) = &removed.agent {
                    let stats = agent.session.stats();
                    tracing::debug!(
                        call = call.0,
                        sent = stats.packets_sent,
                        received = stats.packets_received,
                        "agent leg media ended"
                    );
                }
                self.index.remove(&call);
                if let Some(moved) = self.entries.get(position) {
                    self.index.insert(moved.call, position);
                }
                let stats = removed.session.stats();
                crate::metrics::media_ended(&stats);
                tracing::debug!(
                    call = call.0,
                    sent = stats.packets_sent,
                    received = stats.packets_received,
                    dropped_source = stats.dropped_source,
                    dropped_payload_type = stats.dropped_payload_type,
                    dropped_unauthenticated = stats.dropped_unauthenticated,
                    dropped_replayed = stats.dropped_replayed,
                    "media ended"
                );
            }
        }
        self.forward_events(position);
    }

    fn tick(&mut self, now: Instant) {
        for position in 0..self.entries.len() {
            let entry = &mut self.entries[position];
            drain_socket(&entry.socket, &mut entry.session, &mut self.receiver, now);
            let mut agent_silent = false;
            if let Some(agent) = entry.agent.as_mut() {
                drain_socket(&agent.socket, &mut agent.session, &mut self.receiver, now);
                MediaSession::exchange_audio(&mut entry.session, &mut agent.session);
                send_due(
                    &agent.socket,
                    &mut agent.session,
                    &mut agent.countdown,
                    agent.every,
                    &mut self.send_buffer,
                );
                // The agent's keys and tones are not the IVR's business.
                while agent.session.poll_event().is_some() {}
                agent_silent = agent.session.timed_out(now);
            }
            send_due(
                &entry.socket,
                &mut entry.session,
                &mut entry.countdown,
                entry.every,
                &mut self.send_buffer,
            );
            if entry.session.is_tapped() {
                entry.tap_ticks += 1;
            }
            if entry.tap_ticks >= CALL_AUDIO_TICKS {
                entry.tap_ticks = 0;
                let chunk = call_audio(entry);
                let _ = self.events.send(CallMediaEvent {
                    call: entry.call,
                    event: chunk,
                });
            }
            if !entry.timeout_reported && (entry.session.timed_out(now) || agent_silent) {
                entry.timeout_reported = true;
                let _ = self.events.send(CallMediaEvent {
                    call: entry.call,
                    event: MediaEvent::MediaTimeout,
                });
            }
            self.forward_events(position);
        }
    }

    fn forward_events(&mut self, position: usize) {
        let Some(entry) = self.entries.get_mut(position) else {
            return;
        };
        while let Some(event) = entry.session.poll_event() {
            let _ = self.events.send(CallMediaEvent {
                call: entry.call,
                event,
            });
        }
    }
}

/// Makes the calling thread a real-time one (SCHED_FIFO at `priority`);
/// says so once (from the first worker) when it cannot.
fn make_realtime(worker: usize, priority: u8) {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: sets the calling thread's own policy from a valid struct.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if result != 0 && worker == 0 {
        tracing::warn!(
            priority,
            error = %std::io::Error::last_os_error(),
            "cannot make the media workers real-time (CAP_SYS_NICE?); they run as ordinary threads"
        );
    } else if result == 0 && worker == 0 {
        tracing::info!(priority, "media workers run at real-time priority");
    }
}

/// A recorded call's audio since the last chunk: the caller on the left;
/// on the right the agent (bridged) or what the IVR played (an IVR leg).
fn call_audio(entry: &mut Entry) -> MediaEvent {
    let left = entry.session.take_tap();
    let right = match entry.agent.as_mut() {
        Some(agent) if agent.session.is_tapped() => agent.session.take_tap(),
        _ => entry.session.take_sent_tap(),
    };
    MediaEvent::CallAudio(Box::new(StereoChunk::paired(left, right)))
}

/// Feeds every datagram waiting on `socket` to `session`: usually one
/// system call for the tick's packet.
fn drain_socket(
    socket: &UdpSocket,
    session: &mut MediaSession,
    receiver: &mut BatchReceiver,
    now: Instant,
) {
    loop {
        let read = receiver.receive(socket);
        for index in 0..read {
            let Some((datagram, source)) = receiver.datagram(index) else {
                continue;
            };
            if !contained(|| session.on_datagram(datagram, source, now)) {
                crate::metrics::media_panic();
                let len = datagram.len();
                tracing::error!(%source, len, "a media packet made its handling panic: dropped");
            }
        }
        if read < BatchReceiver::CAPACITY {
            return;
        }
    }
}

/// Runs `work`; false if it panicked (the panic is caught). The session it
/// touched is left as the panic left it: our parsers and the crates' fail
/// before they change a session's state, and the packet is dropped.
fn contained(work: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_ok()
}

/// Sends the session's next packet when its packet time has come round.
fn send_due(
    socket: &UdpSocket,
    session: &mut MediaSession,
    countdown: &mut u32,
    every: u32,
    buffer: &mut [u8],
) {
    if *countdown == 0 {
        *countdown = every;
        if let Some((len, target)) = session.next_packet(buffer) {
            if let Err(e) = socket.send_to(&buffer[..len], target) {
                tracing::trace!(%target, error = %e, "RTP send failed");
            }
        }
    }
    *countdown -= 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_packet_is_contained() {
        let mut handled = 0;
        assert!(contained(|| handled += 1));
        assert!(!contained(|| panic!("a malformed packet")));
        assert_eq!(handled, 1);
    }
}
