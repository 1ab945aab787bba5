//! `hotline`: a telephony-facing IVR and SMS ticket intake gateway.
//!
//! The protocol cores (`sip`, and later media, IVR and tickets) are sans-IO
//! state machines; `server` and the transport shells own sockets, timers and
//! tasks.

pub mod admin;
pub mod api;
pub mod call;
pub mod config;
pub mod console;
pub mod health;
pub mod http;
pub mod instances;
pub mod ivr;
pub mod log_throttle;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod outbound;
pub mod periodic;
pub mod phone;
pub mod recordings;
pub mod redact;
pub mod resources;
pub mod server;
pub mod sip;
pub mod sms;
pub mod speech;
pub mod tickets;
pub mod token_bucket;
