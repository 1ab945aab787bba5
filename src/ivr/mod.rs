//! The IVR: what callers hear and press. `say` turns values (digits,
//! numbers, money, dates, times, durations) into sequences of prompt names.
pub mod dialplan;
pub mod engine;
pub mod say;
pub mod speech;
