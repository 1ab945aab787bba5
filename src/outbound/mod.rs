//! Outbound calls (issue 17): confirmation calls after a repair (修复确认 /
//! 回访), callbacks for callers who found every agent busy (回呼) and
//! satisfaction surveys. Pure parts so far: the campaign schedule (window,
//! retries by cause, attempts, trunk failover) and the per-trunk caps.

pub mod gate;
pub mod schedule;
