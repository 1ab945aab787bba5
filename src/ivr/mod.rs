//! The IVR: what callers hear and press. `say` turns values (digits,
//! numbers, money, dates, times, durations) into sequences of prompt names;
//! `transferred` reads what an agent's transfer into the IVR carries.
pub mod check;
pub mod dialplan;
pub mod engine;
pub mod refused_records;
pub mod runner;
pub mod say;
pub mod simulate;
pub mod speech;
pub mod store_bridge;
pub mod transferred;
