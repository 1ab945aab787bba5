//! The SMS channel. Its pure core: checking that a webhook really comes
//! from the SMS provider (`signature`), folding what people type so width,
//! case, spacing and Chinese punctuation don't matter (`text`), reading a
//! text as a command (`command`), SMS length rules (`segments`),
//! per-sender rate limits (`limits`) and the reply wording (`reply`); none of these does
//! I/O. Around it, inbound: handling one text against the store
//! (`inbound`), where the rate limits keep their buckets (`sender_limit`:
//! memory, or PostgreSQL shared by several gateways) and the HTTP webhooks (`webhook`); outbound: the provider
//! clients (`provider`), the outbox worker that delivers queued
//! notifications (`outbox`) and the delivery-status callback routes
//! (`status`); for operators, `hotline sms test` posts a signed text to a
//! running gateway's webhook (`webhook_client`).

pub mod command;
pub mod inbound;
pub mod limits;
pub mod outbox;
pub mod provider;
pub mod reply;
pub mod segments;
pub mod sender_limit;
pub mod signature;
pub mod status;
pub mod text;
pub mod webhook;
pub mod webhook_client;
