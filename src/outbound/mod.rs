//! Outbound calls (issue 17): confirmation calls after a repair (修复确认 /
//! 回访), callbacks for callers who found every agent busy (回呼) and
//! satisfaction surveys: the configuration (`config`), the campaign
//! schedule (window, retries by cause, attempts, trunk failover), the
//! per-trunk caps (`gate`), and the worker that claims queued calls and
//! hands them to the call loop (`worker`; the call loop's side is in
//! `crate::call`).

pub mod config;
pub mod gate;
pub mod schedule;
pub mod worker;
