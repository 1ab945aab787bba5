//! Handling one inbound text, whichever provider delivered it: the
//! sender's rate limits are checked, the text is read as a command, and the
//! store carries it out and records the reply in one transaction
//! (`Store::receive_sms`), or finds it is a retry and answers it with the
//! stored reply. Owns the rate limits; knows nothing of HTTP, signatures or
//! reply wording.

use crate::config::SmsConfig;
use crate::phone::PhoneNumber;
use crate::sms::command::{self, Command, TicketRef};
use crate::sms::limits::{SenderLimits, Taken};
use crate::sms::{reply, segments};
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
    ///
    /// Nothing is read before the write: the store finds a retry of a text
    /// already handled itself, in the write's transaction, and answers it
    /// with the stored reply (on SQLite inside the writer's batch, so a text
    /// costs one hand-off to the database). A retry therefore meets the
    /// rate limits first; it gives back any token it took, and one the
    /// limits refuse is looked up before it is refused, so a retry is never
    /// refused and never counted.
    pub async fn receive(&self, text: Text) -> Result<SmsOutcome, InboundError> {
        let Ok(sender) = PhoneNumber::parse(&text.from) else {
            return Err(InboundError::Invalid(format!(
                "the sender {:?} is not a phone number",
                text.from
            )));
        };
        let from = sender.to_string();
        if text.body.chars().count() > MAX_TEXT_CHARS {
            return Err(InboundError::Invalid(format!(
                "the text is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let now = Instant::now();
        let mut tokens = Tokens::default();
        if let Err(retry_after) = tokens.take(&self.texts, &from, &text.message_id, now) {
            let refusal = InboundError::RateLimited {
                reason: "too many texts from this number",
                retry_after,
            };
            return self.retry_or(&text, tokens, refusal).await;
        }
        let parsed = command::parse(&text.body);
        let request = self.request_for(&parsed, &from);
        if matches!(request, SmsRequest::Create(_)) {
            if let Err(retry_after) = tokens.take(&self.new_tickets, &from, &text.message_id, now) {
                let refusal = InboundError::RateLimited {
                    reason: "too many new tickets from this number",
                    retry_after,
                };
                return self.retry_or(&text, tokens, refusal).await;
            }
        }
        let zone = self.store.sla().calendar().timezone();
        let inbound = InboundSms {
            provider: text.provider.to_string(),
            provider_message_id: text.message_id.clone(),
            from_spellings: sender.spellings(),
            from,
            to: text.to,
            body: text.body,
        };
        let outcome = self
            .store
            .receive_sms(inbound, request, {
                let parsed = parsed.clone();
                move |facts| reply::reply(&parsed, facts, zone)
            })
            .await?;
        if outcome.repeated {
            tokens.give_back(&text.message_id);
        }
        tracing::info!(
            command = ?parsed.command,
            language = %parsed.language,
            ticket = outcome.created.map(tracing::field::display),
            repeated = outcome.repeated,
            segments = segments::segments(&outcome.reply),
            "text answered"
        );
        Ok(outcome)
    }

    /// The stored reply if `text` is a retry of a text already answered
    /// (its tokens given back); otherwise `refusal`.
    async fn retry_or(
        &self,
        text: &Text,
        tokens: Tokens<'_>,
        refusal: InboundError,
    ) -> Result<SmsOutcome, InboundError> {
        let Some(reply) = self
            .store
            .sms_reply(text.provider, &text.message_id)
            .await?
        else {
            return Err(refusal);
        };
        tokens.give_back(&text.message_id);
        tracing::info!(
            repeated = true,
            segments = segments::segments(&reply),
            "text answered"
        );
        Ok(SmsOutcome {
            reply,
            repeated: true,
            created: None,
        })
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

/// The limits that took a token for one delivery, and for which sender.
#[derive(Default)]
struct Tokens<'a> {
    sender: String,
    taken: Vec<&'a Mutex<SenderLimits>>,
}

impl<'a> Tokens<'a> {
    /// Counts message `id` from `sender` against `limits`.
    fn take(
        &mut self,
        limits: &'a Mutex<SenderLimits>,
        sender: &str,
        id: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        let taken = lock(limits).take(sender, id, now)?;
        if taken == Taken::Token {
            self.sender = sender.to_string();
            self.taken.push(limits);
        }
        Ok(())
    }

    /// Gives back every token taken: the delivery was a retry.
    fn give_back(self, id: &str) {
        for limits in self.taken {
            lock(limits).give_back(&self.sender, id);
        }
    }
}

fn lock(limits: &Mutex<SenderLimits>) -> std::sync::MutexGuard<'_, SenderLimits> {
    limits.lock().unwrap_or_else(PoisonError::into_inner)
}
