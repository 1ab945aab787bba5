//! The SMS channel. Its pure core: checking that a webhook really comes
//! from the SMS provider (`signature`), folding what people type so width,
//! case, spacing and Chinese punctuation don't matter (`text`), reading a
//! text as a command (`command`), and SMS length rules (`segments`) — no
//! I/O, no clock, no database and no reply wording there. Its outbound
//! shell: the provider clients (`provider`), the outbox worker that
//! delivers queued notifications (`outbox`) and the delivery-status
//! callback routes (`status`).

pub mod command;
pub mod outbox;
pub mod provider;
pub mod segments;
pub mod signature;
pub mod status;
pub mod text;
