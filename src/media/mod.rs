//! Media: RTP sessions, G.711, prompts and playback, DTMF in all three
//! forms, and the paced workers that move packets for many calls at once.
//!
//! The protocol parts (`g711`, `rfc4733`, `inband`, `playback`,
//! `recorder`, `session`, `relay`, `dtmf_info`) are sans-IO; `worker` and `ports` own sockets
//! and timers,
//! `batch_receive` reads a socket's queue in one system call.

pub mod batch_receive;
pub mod dtmf_info;
pub mod g711;
pub mod inband;
pub mod playback;
pub mod ports;
pub mod prompt;
pub mod recorder;
pub mod relay;
pub mod rfc4733;
pub mod session;
pub mod srtp;
pub mod worker;
