//! SIP: messages, transactions, dialogs, SDP and admission as sans-IO
//! state machines (`endpoint` ties them together), plus the socket shells
//! in `transport` (streams served by `stream`, admitted by `connections`,
//! secured by `tls`).

pub mod admission;
pub mod build;
pub mod connections;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod headers;
pub mod identity;
pub mod message;
pub mod refer;
pub mod resolve;
pub mod route;
pub mod sdes;
pub mod sdp;
pub mod stream;
pub mod tls;
pub mod transaction;
pub mod transport;
pub mod uac;
pub mod validate;
pub mod x509;
