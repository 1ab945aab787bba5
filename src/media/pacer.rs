//! The paced RTP sender: one task that wakes every packet time and sends
//! one packet for every registered stream, so that the number of timers
//! does not grow with the number of calls.

use crate::sip::endpoint::CallHandle;
use rtp_rs::{RtpPacketBuilder, Seq};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Samples per 20 ms packet at 8 kHz.
const SAMPLES_PER_PACKET: u32 = 160;
const PACKET_TIME: Duration = Duration::from_millis(20);

/// One call's outgoing RTP stream.
#[derive(Debug)]
pub struct OutboundStream {
    pub socket: Arc<UdpSocket>,
    /// Where to send; `None` while the peer has no address (hold).
    pub remote: Option<SocketAddr>,
    pub payload_type: u8,
    /// The G.711 code for silence in this stream's law.
    pub silence: u8,
    /// False while the negotiated direction forbids us to send.
    pub sending: bool,
}

#[derive(Debug)]
pub enum PacerCommand {
    Start(CallHandle, OutboundStream),
    Redirect {
        call: CallHandle,
        remote: Option<SocketAddr>,
        payload_type: u8,
        silence: u8,
        sending: bool,
    },
    Stop(CallHandle),
}

struct StreamState {
    stream: OutboundStream,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    first: bool,
}

/// Starts the pacer task; it ends when every command sender is dropped.
pub fn spawn() -> (
    mpsc::UnboundedSender<PacerCommand>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, tokio::spawn(run(rx)))
}

async fn run(mut commands: mpsc::UnboundedReceiver<PacerCommand>) {
    let mut streams: HashMap<CallHandle, StreamState> = HashMap::new();
    let mut tick = tokio::time::interval(PACKET_TIME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut packet = [0u8; 12 + SAMPLES_PER_PACKET as usize];
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => apply(&mut streams, command),
                None => return,
            },
            _ = tick.tick() => {
                for state in streams.values_mut() {
                    send_silence(state, &mut packet);
                }
            }
        }
    }
}

fn apply(streams: &mut HashMap<CallHandle, StreamState>, command: PacerCommand) {
    match command {
        PacerCommand::Start(call, stream) => {
            streams.insert(
                call,
                StreamState {
                    stream,
                    ssrc: rand::random(),
                    sequence: rand::random(),
                    timestamp: rand::random(),
                    first: true,
                },
            );
        }
        PacerCommand::Redirect {
            call,
            remote,
            payload_type,
            silence,
            sending,
        } => {
            if let Some(state) = streams.get_mut(&call) {
                state.stream.remote = remote;
                state.stream.payload_type = payload_type;
                state.stream.silence = silence;
                state.stream.sending = sending;
            }
        }
        PacerCommand::Stop(call) => {
            streams.remove(&call);
        }
    }
}

fn send_silence(state: &mut StreamState, packet: &mut [u8]) {
    // The RTP clock runs on whether or not we send (RFC 3550 §5.1).
    let timestamp = state.timestamp;
    state.timestamp = state.timestamp.wrapping_add(SAMPLES_PER_PACKET);
    let (Some(remote), true) = (state.stream.remote, state.stream.sending) else {
        return;
    };
    let payload = [state.stream.silence; SAMPLES_PER_PACKET as usize];
    let built = RtpPacketBuilder::new()
        .payload_type(state.stream.payload_type)
        .ssrc(state.ssrc)
        .sequence(Seq::from(state.sequence))
        .timestamp(timestamp)
        .marked(state.first)
        .payload(&payload)
        .build_into(packet);
    let Ok(len) = built else {
        return;
    };
    state.sequence = state.sequence.wrapping_add(1);
    state.first = false;
    if let Err(e) = state.stream.socket.try_send_to(&packet[..len], remote) {
        tracing::trace!(%remote, error = %e, "RTP send failed");
    }
}
