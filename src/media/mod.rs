//! Media: RTP ports and the paced RTP sender.
//!
//! For now every answered call is sent G.711 silence, so that NAT bindings
//! and the caller's jitter buffer see a live stream; prompts, DTMF and the
//! media timeout arrive with the media issue.

pub mod pacer;
pub mod ports;
