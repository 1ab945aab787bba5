//! Handling one inbound text, whichever provider delivered it: the
//! sender's rate limits are checked, the text is read as a command, and the
//! store carries it out and records the reply in one transaction
//! (`Store::receive_sms`), or finds it is a retry and answers it with the
//! stored reply. A text over a limit is not an error: it is recorded with
//! its outcome and answered ("too many texts, try again in N minutes", once
//! per run of refusals) without doing what it asks
//! (`Store::record_refused_sms`), so the provider gets a 200 and the sender
//! a reason. Owns the rate limits (in memory on SQLite, shared in
//! PostgreSQL when several gateways share it: `sms::sender_limit`); knows
//! nothing of HTTP or signatures.

use crate::config::SmsConfig;
use crate::phone::PhoneNumber;
use crate::sms::command::{self, Command, TicketRef};
use crate::sms::limits::{RateLimit, Taken};
use crate::sms::sender_limit::SenderLimit;
use crate::sms::{reply, segments};
use crate::tickets::lifecycle::Action;
use crate::tickets::model::{Actor, Channel, Language, TicketType};
use crate::tickets::store::{InboundSms, NewTicket, SmsOutcome, SmsRequest, Store, StoreError};
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
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Texts longer than this are refused (Twilio's own limit is 1,600).
pub const MAX_TEXT_CHARS: usize = 1_600;

/// The inbound side of the SMS channel: the store and the rate limits.
pub struct SmsInbound {
    store: Store,
    texts: SenderLimit,
    new_tickets: SenderLimit,
}

impl SmsInbound {
    pub fn new(store: Store, config: &SmsConfig) -> SmsInbound {
        SmsInbound {
            texts: SenderLimit::new(
                &store,
                RateLimit::Texts,
                config.max_per_sender_per_minute,
                Duration::from_secs(60),
            ),
            new_tickets: SenderLimit::new(
                &store,
                RateLimit::NewTickets,
                config.max_new_tickets_per_sender_per_hour,
                Duration::from_secs(3600),
            ),
            store,
        }
    }

    /// Handles one delivery of `text` and returns the reply to send back
    /// (empty: send none).
    ///
    /// Nothing is read before the write: the store finds a retry of a text
    /// already handled itself, in the write's transaction, and answers it
    /// with the stored reply (on SQLite inside the writer's batch, so a text
    /// costs one hand-off to the database). A retry therefore meets the
    /// rate limits first; it gives back any token it took, and one the
    /// limits refuse is looked up before it is refused, so a retry is never
    /// refused and never counted. A refused text is recorded with its
    /// reply, so its retries get that same reply.
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
        let parsed = command::parse(&text.body);
        let mut tokens = Tokens::default();
        if let Err(wait) = tokens
            .take(&self.texts, &from, &text.message_id, now)
            .await?
        {
            let refusal = Refusal {
                limit: RateLimit::Texts,
                limits: &self.texts,
                wait,
            };
            return self.refuse(text, &sender, &parsed, tokens, refusal).await;
        }
        let request = self.request_for(&parsed, &from);
        if matches!(request, SmsRequest::Create(_)) {
            if let Err(wait) = tokens
                .take(&self.new_tickets, &from, &text.message_id, now)
                .await?
            {
                let refusal = Refusal {
                    limit: RateLimit::NewTickets,
                    limits: &self.new_tickets,
                    wait,
                };
                return self.refuse(text, &sender, &parsed, tokens, refusal).await;
            }
        }
        let zone = self.store.sla().calendar().timezone();
        let message_id = text.message_id.clone();
        let inbound = inbound_sms(text, &sender);
        let outcome = self
            .store
            .receive_sms(inbound, request, {
                let parsed = parsed.clone();
                move |facts| reply::reply(&parsed, facts, zone)
            })
            .await?;
        if outcome.repeated {
            tokens.give_back(&message_id).await;
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

    /// A text `refusal`'s limit refused: the stored reply if it is a retry
    /// of a text already answered (its tokens given back); otherwise it is
    /// recorded as refused, with the reply that says when to try again (or
    /// none, when this sender was told already), and nothing it asks done.
    /// Tokens it took from other limits stay taken: it was received.
    async fn refuse(
        &self,
        text: Text,
        sender: &PhoneNumber,
        parsed: &command::ParsedCommand,
        tokens: Tokens<'_>,
        refusal: Refusal<'_>,
    ) -> Result<SmsOutcome, InboundError> {
        if let Some(reply) = self
            .store
            .sms_reply(text.provider, &text.message_id)
            .await?
        {
            tokens.give_back(&text.message_id).await;
            tracing::info!(
                repeated = true,
                segments = segments::segments(&reply),
                "text answered"
            );
            return Ok(SmsOutcome {
                reply,
                repeated: true,
                created: None,
            });
        }
        let told = refusal.limits.tell(&sender.to_string()).await?;
        let reply = if told {
            let zh = parsed.language == Language::Zh;
            reply::rate_limited(zh, refusal.limit, refusal.wait)
        } else {
            String::new()
        };
        let message_id = text.message_id.clone();
        let outcome = self
            .store
            .record_refused_sms(inbound_sms(text, sender), reply)
            .await?;
        if outcome.repeated {
            tokens.give_back(&message_id).await;
        } else {
            crate::metrics::sms_rate_limited(refusal.limit.code());
        }
        tracing::info!(
            limit = refusal.limit.code(),
            wait_secs = refusal.wait.as_secs(),
            told,
            repeated = outcome.repeated,
            "text refused by a rate limit"
        );
        Ok(outcome)
    }

    /// What the store must do for `parsed` from `sender`. A fault report
    /// gets the category of the first product its description names
    /// (`sla.toml`'s `keywords`), or the default category.
    fn request_for(&self, parsed: &command::ParsedCommand, sender: &str) -> SmsRequest {
        let sla = self.store.sla();
        let new_ticket = |ticket_type, description: &str| {
            let named = match ticket_type {
                TicketType::FaultReport => sla.category_named_in(description),
                _ => None,
            };
            let mut new = NewTicket::new(
                ticket_type,
                named.unwrap_or(sla.default_category()),
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

/// Which limit refused a text, and how long until the sender may send again.
struct Refusal<'a> {
    limit: RateLimit,
    limits: &'a SenderLimit,
    wait: Duration,
}

/// `text` as the store records it, from `from` (normalised).
fn inbound_sms(text: Text, sender: &PhoneNumber) -> InboundSms {
    InboundSms {
        provider: text.provider.to_string(),
        provider_message_id: text.message_id,
        from_spellings: sender.spellings(),
        from: sender.to_string(),
        to: text.to,
        body: text.body,
    }
}

/// The limits that took a token for one delivery, and for which sender.
#[derive(Default)]
struct Tokens<'a> {
    sender: String,
    taken: Vec<&'a SenderLimit>,
}

impl<'a> Tokens<'a> {
    /// Counts message `id` from `sender` against `limits`.
    async fn take(
        &mut self,
        limits: &'a SenderLimit,
        sender: &str,
        id: &str,
        now: Instant,
    ) -> Result<Result<(), Duration>, StoreError> {
        match limits.take(sender, id, now).await? {
            Ok(Taken::Token) => {
                self.sender = sender.to_string();
                self.taken.push(limits);
                Ok(Ok(()))
            }
            Ok(Taken::Free) => Ok(Ok(())),
            Err(wait) => Ok(Err(wait)),
        }
    }

    /// Gives back every token taken: the delivery was a retry. A token
    /// that cannot be given back (the database failed) stays used: the
    /// sender loses one text of its allowance, nothing else.
    async fn give_back(self, id: &str) {
        for limits in self.taken {
            if let Err(e) = limits.give_back(&self.sender, id).await {
                tracing::warn!(error = %e, "cannot give back an SMS limit token");
            }
        }
    }
}
