//! The SMS channel's pure core: checking that a webhook really comes from
//! the SMS provider (`signature`), folding what people type so width, case,
//! spacing and Chinese punctuation don't matter (`text`), reading a text as
//! a command (`command`), and SMS length rules (`segments`). No I/O, no
//! clock, no database and no reply wording: the HTTP handlers and the reply
//! texts live elsewhere and call these functions.

pub mod command;
pub mod segments;
pub mod signature;
pub mod text;
