//! Handling one inbound text, whichever provider delivered it: a retry is
//! answered from the store; otherwise the sender's rate limits are
//! checked, the text is read as a command, and the store carries it out
//! and records the reply in one transaction (`Store::receive_sms`). Owns
//! the rate limits; knows nothing of HTTP, signatures or reply wording.

use crate::config::SmsConfig;
use crate::sms::command::{self, Command, TicketRef};
use crate::sms::limits::SenderLimits;
use crate::sms::{phone, reply};
use crate::tickets::lifecycle::Action;
use crate::tickets::model::{Actor, Channel, TicketType};
use crate::tickets::store::{InboundSms, NewTicket, SmsOutcome, SmsRequest, Store, StoreError};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use thiserror::Error;

/// A text as a provider delivered it, fields as received.
#[derive(Debug, Clone)]
pub struct Text {
    /// `twilio` or `generic`.
    pub provider: &'static str,
    pub message_id: String,
    pub from: String,
    pub to: String,
    pub body: String,
}

/// Why a text was not handled. Nothing was stored for any of these.
#[derive(Debug, Error)]
pub enum InboundError {
    #[error("{0}")]
    Invalid(String),
    #[error("{reason}; retry after {} s", retry_after.as_secs())]
    RateLimited {
        reason: &'static str,
        retry_after: Duration,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Texts longer than this are refused (Twilio's own limit is 1,600).
pub const MAX_TEXT_CHARS: usize = 1_600;

/// The inbound side of the SMS channel: the store and the rate limits.
pub struct SmsInbound {
    store: Store,
    texts: Mutex<SenderLimits>,
    new_tickets: Mutex<SenderLimits>,
}

impl SmsInbound {
    pub fn new(store: Store, config: &SmsConfig) -> SmsInbound {
        SmsInbound {
            store,
            texts: Mutex::new(SenderLimits::new(
                config.max_per_sender_per_minute,
                Duration::from_secs(60),
            )),
            new_tickets: Mutex::new(SenderLimits::new(
                config.max_new_tickets_per_sender_per_hour,
                Duration::from_secs(3600),
            )),
        }
    }

    /// Handles one delivery of `text` and returns the reply to send back.
    pub async fn receive(&self, text: Text) -> Result<SmsOutcome, InboundError> {
        let from = phone::normalize(&text.from);
        let digits = from.strip_prefix('+').unwrap_or(&from);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InboundError::Invalid(format!(
                "the sender {:?} is not a phone number",
                text.from
            )));
        }
        if text.body.chars().count() > MAX_TEXT_CHARS {
            return Err(InboundError::Invalid(format!(
                "the text is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        if let Some(reply) = self
            .store
            .sms_reply(text.provider, &text.message_id)
            .await?
        {
            tracing::info!("retry of a text already answered");
            return Ok(SmsOutcome {
                reply,
                repeated: true,
                created: None,
            });
        }
        let now = Instant::now();
        take(&self.texts, &from, &text.message_id, now).map_err(|retry_after| {
            InboundError::RateLimited {
                reason: "too many texts from this number",
                retry_after,
            }
        })?;
        let parsed = command::parse(&text.body);
        let request = self.request_for(&parsed, &from);
        if matches!(request, SmsRequest::Create(_)) {
            take(&self.new_tickets, &from, &text.message_id, now).map_err(|retry_after| {
                InboundError::RateLimited {
                    reason: "too many new tickets from this number",
                    retry_after,
                }
            })?;
        }
        tracing::info!(command = ?parsed.command, language = %parsed.language, "text read");
        let zone = self.store.sla().calendar().timezone();
        let inbound = InboundSms {
            provider: text.provider.to_string(),
            provider_message_id: text.message_id,
            from_spellings: phone::spellings(&from),
            from,
            to: text.to,
            body: text.body,
        };
        let outcome = self
            .store
            .receive_sms(inbound, request, move |facts| {
                reply::reply(&parsed, facts, zone)
            })
            .await?;
        if let Some(number) = outcome.created {
            tracing::info!(ticket = %number, "ticket opened by SMS");
        }
        Ok(outcome)
    }

    /// What the store must do for `parsed` from `sender`.
    fn request_for(&self, parsed: &command::ParsedCommand, sender: &str) -> SmsRequest {
        let new_ticket = |ticket_type, description: &str| {
            let mut new = NewTicket::new(
                ticket_type,
                self.store.sla().default_category(),
                sender,
                description,
                Channel::Sms,
                Actor::customer(sender),
            );
            new.language = Some(parsed.language);
            SmsRequest::Create(Box::new(new))
        };
        match &parsed.command {
            Command::Status(Some(TicketRef::Valid(number))) => SmsRequest::Ticket(*number),
            Command::Status(None) => SmsRequest::OpenTickets,
            Command::Fault(text) if !text.is_empty() => new_ticket(TicketType::FaultReport, text),
            Command::Complaint(text) if !text.is_empty() => new_ticket(TicketType::Complaint, text),
            Command::Cancel(TicketRef::Valid(number)) => SmsRequest::Cancel(*number),
            Command::Answer(true) => SmsRequest::Answer(Action::Confirm),
            Command::Answer(false) => SmsRequest::Answer(Action::Reopen),
            _ => SmsRequest::Nothing,
        }
    }
}

fn take(
    limits: &Mutex<SenderLimits>,
    sender: &str,
    id: &str,
    now: Instant,
) -> Result<(), Duration> {
    limits
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take(sender, id, now)
}
