//! Inbound texts, exactly once: recording a text, carrying out what it asks
//! (read a ticket, list the sender's open ones, open a ticket, cancel one,
//! answer a restoration question) and recording the reply happen in one
//! transaction, keyed by the provider's message id.
//!
//! The inbound row is inserted first with `ON CONFLICT DO NOTHING`. The
//! first delivery of a message wins the `(provider, provider_message_id)`
//! key and does the work; a retry, even one racing the first (PostgreSQL
//! makes its insert wait for the first transaction, SQLite's single writer
//! runs them one after the other), inserts nothing and gets the reply the
//! first one stored. What the reply says is not decided here: the caller
//! passes a function from what was found and done ([`SmsFacts`]) to the
//! text, and this module only stores it.
//!
//! Texts that open a ticket (the bulk of a busy hour) take a faster road
//! with the same guarantees: the writer handles all such texts
//! of a batch together ([`receive_text_tickets`]: a handful of multi-row
//! statements per few dozen texts instead of seven statements per text,
//! each a round trip to SQLite's thread). Everything such a text needs from
//! the database, whether it is a retry and who the sender is, is found
//! there, on the writer's connection, so the text costs one hand-off (to
//! the writer and back) and no read before it.

use super::rows::{TicketRow, TICKET_COLUMNS};
use super::tickets::{
    apply_transition, insert_tickets, prepare_ticket, Effects, NewTicket, PreparedTicket, Ticket,
};
use super::{bind_in_order, parameters, to_millis, Store, StoreError};
use crate::phone::PhoneNumber;
use crate::tickets::lifecycle::{self, Action};
use crate::tickets::model::{Actor, Channel, Status};
use crate::tickets::number::TicketNumber;
use crate::tickets::privacy::{self, Disclosure};
use crate::tickets::sla::SlaPolicy;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Executor};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The status of an inbound text a rate limit refused (and of nothing else):
/// recorded with its reply, so that staff see it and a retry gets the same
/// answer, but nothing it asked was done.
const RATE_LIMITED: &str = "rate_limited";
/// The status of a reply recorded but not sent (empty): a refused sender is
/// told only once per run of refusals.
const WITHHELD: &str = "withheld";

/// How many open tickets a sender's list holds at most.
const MAX_OPEN_LISTED: i64 = 20;
/// The outbox kind of the "reply 1 if service is restored, 2 if not"
/// question sent when a ticket is resolved.
const RESTORATION_QUESTION: &str = "resolved";

/// One text as the provider delivered it.
#[derive(Debug, Clone)]
pub struct InboundSms {
    /// `twilio` or `generic`: message ids are unique per provider.
    pub provider: String,
    pub provider_message_id: String,
    /// The sender in the one phone normal form (`crate::phone`).
    pub from: String,
    /// Every spelling the sender's tickets and customer record may be
    /// stored under, `from` included.
    pub from_spellings: Vec<String>,
    /// The number the sender texted (ours).
    pub to: String,
    pub body: String,
}

/// What the text asks of the store.
#[derive(Debug, Clone)]
pub enum SmsRequest {
    /// Nothing to read or change (help, a mistyped number, …).
    Nothing,
    /// One ticket's status.
    Ticket(TicketNumber),
    /// The sender's open tickets.
    OpenTickets,
    /// A new ticket for the sender (its contact phone is the sender).
    Create(Box<NewTicket>),
    /// Cancel one of the sender's tickets.
    Cancel(TicketNumber),
    /// Apply this action (confirm or reopen) to the ticket of the latest
    /// restoration question still waiting for the sender's answer.
    Answer(Action),
}

/// What the store found and did, for the reply.
#[derive(Debug, Clone, PartialEq)]
pub enum SmsFacts {
    Nothing,
    Ticket(TicketFacts),
    OpenTickets(Vec<Ticket>),
    Created(Ticket),
    Cancel(CancelFacts),
    Answer(AnswerFacts),
}

/// A ticket looked up by number, and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketFacts {
    NotFound,
    /// The sender is the ticket's contact.
    Own(Ticket),
    /// Someone else's ticket.
    Others(Ticket),
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelFacts {
    /// No such ticket, or not the sender's: told apart to nobody.
    NotYours,
    /// The sender's, but its status does not allow cancelling.
    Refused(Ticket),
    Cancelled(Ticket),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AnswerFacts {
    /// No restoration question is waiting for this sender's answer.
    NoQuestion,
    /// The ticket after the answer's action.
    Applied(Box<Ticket>, Action),
}

/// The reply to a text, and whether this delivery was a retry.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsOutcome {
    pub reply: String,
    /// A retry of a message already handled: nothing was done again and
    /// `reply` is the stored one.
    pub repeated: bool,
    /// The ticket this text opened, if it opened one.
    pub created: Option<TicketNumber>,
}

/// id, direction, provider, from, to, body, status, created_at.
type SmsRow = (i64, String, String, String, String, String, String, i64);

/// A text as stored: one the customer sent (`in`) or our reply (`out`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSms {
    pub id: i64,
    /// `in` or `out`.
    pub direction: String,
    pub provider: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// The texts about a ticket (the customer's and our replies), oldest
    /// first. Outbound notifications are in the outbox
    /// ([`Store::notifications`]).
    pub async fn texts_of_ticket(&self, ticket_id: i64) -> Result<Vec<StoredSms>, StoreError> {
        let rows: Vec<SmsRow> = sqlx::query_as(
            "SELECT id, direction, provider, from_number, to_number, body, status, created_at \
                 FROM sms_messages WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(
                |(id, direction, provider, from, to, body, status, created_at)| {
                    Ok(StoredSms {
                        id,
                        direction,
                        provider,
                        from,
                        to,
                        body,
                        status,
                        created_at: super::from_millis(created_at)?,
                    })
                },
            )
            .collect()
    }

    /// The reply stored for a message already handled, if it was.
    pub async fn sms_reply(
        &self,
        provider: &str,
        provider_message_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(STORED_REPLY)
            .bind(provider)
            .bind(provider_message_id)
            .fetch_optional(self.reader())
            .await?)
    }

    /// Records a text that a rate limit refused, with `reply` (empty: none
    /// is sent), in one transaction and without doing anything it asks. A
    /// message already recorded (a retry, or a delivery racing this one)
    /// changes nothing and gets its stored reply.
    pub async fn record_refused_sms(
        &self,
        sms: InboundSms,
        reply: String,
    ) -> Result<SmsOutcome, StoreError> {
        let now = self.now();
        let outcome = self
            .write(move |conn| {
                Box::pin(async move {
                    let Some(inbound_id) = insert_inbound(conn, &sms, RATE_LIMITED, now).await?
                    else {
                        return stored_outcome(conn, &sms).await;
                    };
                    let status = if reply.is_empty() {
                        WITHHELD
                    } else {
                        "replied"
                    };
                    insert_reply(conn, &sms, &reply, None, inbound_id, status, now).await?;
                    Ok(SmsOutcome {
                        reply,
                        repeated: false,
                        created: None,
                    })
                })
            })
            .await;
        if matches!(&outcome, Ok(outcome) if !outcome.repeated) {
            self.observer().sms_received();
        }
        outcome
    }

    /// Records `sms`, carries out `request` and records the reply that
    /// `reply` words from the result, all in one transaction. A message
    /// already handled changes nothing and gets its stored reply.
    pub async fn receive_sms<R>(
        &self,
        sms: InboundSms,
        mut request: SmsRequest,
        reply: R,
    ) -> Result<SmsOutcome, StoreError>
    where
        R: Fn(&SmsFacts) -> String + Send + Sync + 'static,
    {
        let mut creates = None;
        if let SmsRequest::Create(new) = &mut request {
            new.contact_phone = Some(sms.from.clone());
            new.validate(self.sla())?;
            creates = Some(new.ticket_type);
        }
        let now = self.now();
        let sla = self.inner.sla.clone();
        let outcome = match request {
            SmsRequest::Create(new) => {
                let text = TextTicket {
                    sms,
                    new: *new,
                    sla,
                    now,
                    reply: Arc::new(reply),
                };
                self.inner.writer.receive_text_ticket(text).await
            }
            request => {
                self.write(move |conn| {
                    Box::pin(async move {
                        let Some(inbound_id) = insert_inbound(conn, &sms, "received", now).await?
                        else {
                            return stored_outcome(conn, &sms).await;
                        };
                        let facts = carry_out(conn, &sms, request, &sla, now).await?;
                        let text = reply(&facts);
                        let ticket_id = ticket_of(&facts).map(|t| t.id);
                        if ticket_id.is_some() {
                            sqlx::query("UPDATE sms_messages SET ticket_id = $1 WHERE id = $2")
                                .bind(ticket_id)
                                .bind(inbound_id)
                                .execute(&mut *conn)
                                .await?;
                        }
                        insert_reply(conn, &sms, &text, ticket_id, inbound_id, "replied", now)
                            .await?;
                        let created = match &facts {
                            SmsFacts::Created(ticket) => Some(ticket.number),
                            _ => None,
                        };
                        Ok(SmsOutcome {
                            reply: text,
                            repeated: false,
                            created,
                        })
                    })
                })
                .await
            }
        };
        if let Ok(outcome) = &outcome {
            if !outcome.repeated {
                self.observer().sms_received();
            }
            if let (Some(_), Some(ticket_type)) = (outcome.created, creates) {
                self.observer().ticket_created(Channel::Sms, ticket_type);
            }
        }
        outcome
    }
}

/// A text that opens a ticket, with everything decided that needs no
/// database: what the writer batches.
pub(super) struct TextTicket {
    sms: InboundSms,
    /// Validated, its contact phone the sender.
    new: NewTicket,
    sla: Arc<SlaPolicy>,
    now: DateTime<Utc>,
    reply: Arc<dyn Fn(&SmsFacts) -> String + Send + Sync>,
}

impl TextTicket {
    /// The text's key: its provider and the provider's message id.
    pub(super) fn key(&self) -> (&str, &str) {
        (&self.sms.provider, &self.sms.provider_message_id)
    }
}

/// Records each text, looks up its sender's customer record, opens its
/// ticket and records the reply, all of `texts` with a handful of
/// multi-row statements. A text already recorded (a retry, even of one
/// earlier in `texts`) opens nothing and gets the reply stored for the
/// first delivery. One outcome per text, in order.
pub(super) async fn receive_text_tickets(
    conn: &mut AnyConnection,
    texts: &[TextTicket],
) -> Result<Vec<SmsOutcome>, StoreError> {
    // A text whose key came earlier in `texts` is a retry of that one.
    let mut keys = HashSet::new();
    let firsts: Vec<usize> = (0..texts.len())
        .filter(|&i| keys.insert(texts[i].key()))
        .collect();
    let mut outcomes: Vec<Option<SmsOutcome>> = vec![None; texts.len()];
    if !firsts.is_empty() {
        conn.execute("SAVEPOINT texts").await?;
        let fresh = match tickets_then_texts(conn, texts, &firsts).await? {
            Some(fresh) => fresh,
            None => {
                conn.execute("ROLLBACK TO texts").await?;
                texts_then_tickets(conn, texts, &firsts).await?
            }
        };
        if !fresh.is_empty() {
            let sql = format!(
                "INSERT INTO sms_messages (direction, provider, provider_message_id, from_number, \
                 to_number, body, ticket_id, reply_to, status, created_at) VALUES {}",
                numbered_rows(fresh.len(), "('out', ?, NULL, ?, ?, ?, ?, ?, 'replied', ?)")
            );
            let sql = bind_in_order(conn, sql);
            let mut replies = sqlx::query(&sql);
            for (i, inbound_id, ticket) in fresh {
                let text = &texts[i];
                let body = (text.reply)(&SmsFacts::Created(ticket.clone()));
                replies = replies
                    .bind(&text.sms.provider)
                    .bind(&text.sms.to)
                    .bind(&text.sms.from)
                    .bind(body.clone())
                    .bind(ticket.id)
                    .bind(inbound_id)
                    .bind(to_millis(text.now));
                outcomes[i] = Some(SmsOutcome {
                    reply: body,
                    repeated: false,
                    created: Some(ticket.number),
                });
            }
            replies.execute(&mut *conn).await?;
        }
    }
    let retries: Vec<&InboundSms> = texts
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_none())
        .map(|(text, _)| &text.sms)
        .collect();
    if !retries.is_empty() {
        let stored = stored_replies(conn, &retries).await?;
        for (text, outcome) in texts.iter().zip(outcomes.iter_mut()) {
            if outcome.is_none() {
                let key = (
                    text.sms.provider.clone(),
                    text.sms.provider_message_id.clone(),
                );
                let reply = stored.get(&key).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "text {} from {} is recorded without its reply",
                        text.sms.provider_message_id, text.sms.provider
                    ))
                })?;
                *outcome = Some(SmsOutcome {
                    reply,
                    repeated: true,
                    created: None,
                });
            }
        }
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// A text that opened its ticket: its place in the batch, its row's id and
/// the ticket.
type Opened = (usize, i64, Ticket);

/// The usual way: the tickets of `firsts` first, then each text written
/// once with its ticket (linking it afterwards would be an `UPDATE` of an
/// indexed column: a second copy of the row in every index). `None` when
/// any of the texts was recorded already (a retry of an earlier batch):
/// the caller rolls all of it back and goes the other way.
async fn tickets_then_texts(
    conn: &mut AnyConnection,
    texts: &[TextTicket],
    firsts: &[usize],
) -> Result<Option<Vec<Opened>>, StoreError> {
    let tickets = open_text_tickets(conn, texts, firsts).await?;
    let ticket_ids: Vec<Option<i64>> = tickets.iter().map(|t| Some(t.id)).collect();
    let mut inbound = insert_inbound_rows(conn, texts, firsts, &ticket_ids).await?;
    let mut fresh = Vec::with_capacity(firsts.len());
    for (&i, ticket) in firsts.iter().zip(tickets) {
        let (provider, message) = texts[i].key();
        match inbound.remove(&(provider.to_string(), message.to_string())) {
            Some(inbound_id) => fresh.push((i, inbound_id, ticket)),
            None => return Ok(None),
        }
    }
    Ok(Some(fresh))
}

/// The way when some texts were recorded before: each text first (the
/// retries refused), then tickets for the new ones, linked to their texts.
async fn texts_then_tickets(
    conn: &mut AnyConnection,
    texts: &[TextTicket],
    firsts: &[usize],
) -> Result<Vec<Opened>, StoreError> {
    let mut inbound = insert_inbound_rows(conn, texts, firsts, &vec![None; firsts.len()]).await?;
    let owned: Vec<(usize, i64)> = firsts
        .iter()
        .filter_map(|&i| {
            let (provider, message) = texts[i].key();
            let id = inbound.remove(&(provider.to_string(), message.to_string()))?;
            Some((i, id))
        })
        .collect();
    if owned.is_empty() {
        return Ok(Vec::new());
    }
    let new: Vec<usize> = owned.iter().map(|&(i, _)| i).collect();
    let tickets = open_text_tickets(conn, texts, &new).await?;
    let links = format!(
        "UPDATE sms_messages SET ticket_id = CASE id {} END WHERE id IN ({})",
        (0..owned.len())
            .map(|k| format!("WHEN ${} THEN ${}", 2 * k + 1, 2 * k + 2))
            .collect::<Vec<_>>()
            .join(" "),
        parameters(2 * owned.len() + 1, owned.len())
    );
    let links = bind_in_order(conn, links);
    let mut update = sqlx::query(&links);
    for (&(_, inbound_id), ticket) in owned.iter().zip(&tickets) {
        update = update.bind(inbound_id).bind(ticket.id);
    }
    for &(_, inbound_id) in &owned {
        update = update.bind(inbound_id);
    }
    update.execute(&mut *conn).await?;
    Ok(owned
        .into_iter()
        .zip(tickets)
        .map(|((i, inbound_id), ticket)| (i, inbound_id, ticket))
        .collect())
}

/// Looks up the senders' customer records and opens a ticket for each of
/// `which`, in order.
async fn open_text_tickets(
    conn: &mut AnyConnection,
    texts: &[TextTicket],
    which: &[usize],
) -> Result<Vec<Ticket>, StoreError> {
    let customers =
        customers_by_phones(conn, which.iter().map(|&i| &texts[i].sms.from_spellings)).await?;
    let prepared: Vec<PreparedTicket> = which
        .iter()
        .map(|&i| {
            let text = &texts[i];
            let customer = text
                .sms
                .from_spellings
                .iter()
                .filter_map(|phone| customers.get(phone))
                .min_by_key(|customer| customer.0)
                .cloned();
            prepare_ticket(text.new.clone(), customer, &text.sla, text.now)
        })
        .collect::<Result<_, _>>()?;
    insert_tickets(conn, &prepared).await
}

/// Records the inbound texts `which` (with their tickets, if known); the
/// ids of the rows written, by provider and message id: a text recorded
/// before is refused and not among them.
async fn insert_inbound_rows(
    conn: &mut AnyConnection,
    texts: &[TextTicket],
    which: &[usize],
    tickets: &[Option<i64>],
) -> Result<HashMap<(String, String), i64>, StoreError> {
    let sql = format!(
        "INSERT INTO sms_messages (direction, provider, provider_message_id, from_number, \
         to_number, body, ticket_id, reply_to, status, created_at) VALUES {} \
         ON CONFLICT (provider, provider_message_id) DO NOTHING \
         RETURNING id, provider, provider_message_id",
        numbered_rows(which.len(), "('in', ?, ?, ?, ?, ?, ?, NULL, 'received', ?)")
    );
    let sql = bind_in_order(conn, sql);
    let mut insert = sqlx::query_as::<_, (i64, String, String)>(&sql);
    for (&i, ticket) in which.iter().zip(tickets) {
        let text = &texts[i];
        insert = insert
            .bind(&text.sms.provider)
            .bind(&text.sms.provider_message_id)
            .bind(&text.sms.from)
            .bind(&text.sms.to)
            .bind(&text.sms.body)
            .bind(*ticket)
            .bind(to_millis(text.now));
    }
    Ok(insert
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(id, provider, message)| ((provider, message), id))
        .collect())
}

/// The replies stored for the first deliveries of `retries`, by provider
/// and message id: the same as [`STORED_REPLY`] for each, in one statement.
async fn stored_replies(
    conn: &mut AnyConnection,
    retries: &[&InboundSms],
) -> Result<HashMap<(String, String), String>, StoreError> {
    let mut providers: Vec<&str> = retries.iter().map(|sms| sms.provider.as_str()).collect();
    providers.sort_unstable();
    providers.dedup();
    let sql = format!(
        "SELECT i.provider, i.provider_message_id, o.body FROM sms_messages i \
         JOIN sms_messages o ON o.reply_to = i.id \
         WHERE i.direction = 'in' AND i.provider IN ({}) AND i.provider_message_id IN ({}) \
         ORDER BY o.id",
        parameters(1, providers.len()),
        parameters(providers.len() + 1, retries.len())
    );
    let sql = bind_in_order(conn, sql);
    let mut select = sqlx::query_as::<_, (String, String, String)>(&sql);
    for provider in providers {
        select = select.bind(provider);
    }
    for sms in retries {
        select = select.bind(&sms.provider_message_id);
    }
    let mut replies = HashMap::new();
    // Rows come oldest reply first: the first one per message is kept.
    for (provider, message, body) in select.fetch_all(&mut *conn).await? {
        replies.entry((provider, message)).or_insert(body);
    }
    Ok(replies)
}

/// `count` copies of the row `template`, comma-separated, each `?` in them
/// replaced by the next parameter: `$1`, `$2`, …
fn numbered_rows(count: usize, template: &str) -> String {
    let mut next = 0;
    let mut text = String::with_capacity(count * (template.len() + 8));
    for row in 0..count {
        if row > 0 {
            text.push_str(", ");
        }
        for c in template.chars() {
            if c == '?' {
                next += 1;
                text.push_str(&format!("${next}"));
            } else {
                text.push(c);
            }
        }
    }
    text
}

/// The outcome of a retry: the reply stored for the first delivery.
async fn stored_outcome(
    conn: &mut AnyConnection,
    sms: &InboundSms,
) -> Result<SmsOutcome, StoreError> {
    let stored: Option<String> = sqlx::query_scalar(STORED_REPLY)
        .bind(&sms.provider)
        .bind(&sms.provider_message_id)
        .fetch_optional(&mut *conn)
        .await?;
    let reply = stored.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "text {} from {} is recorded without its reply",
            sms.provider_message_id, sms.provider
        ))
    })?;
    Ok(SmsOutcome {
        reply,
        repeated: true,
        created: None,
    })
}

/// The reply recorded for an inbound message.
const STORED_REPLY: &str = "SELECT o.body FROM sms_messages i \
    JOIN sms_messages o ON o.reply_to = i.id \
    WHERE i.provider = $1 AND i.provider_message_id = $2 AND i.direction = 'in' \
    ORDER BY o.id LIMIT 1";

/// Records the inbound text with `status`; `None` when the message id is
/// already there.
async fn insert_inbound(
    conn: &mut AnyConnection,
    sms: &InboundSms,
    status: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sms_messages (direction, provider, provider_message_id, from_number, \
         to_number, body, ticket_id, reply_to, status, created_at) \
         VALUES ('in', $1, $2, $3, $4, $5, NULL, NULL, $6, $7) \
         ON CONFLICT (provider, provider_message_id) DO NOTHING RETURNING id",
    )
    .bind(&sms.provider)
    .bind(&sms.provider_message_id)
    .bind(&sms.from)
    .bind(&sms.to)
    .bind(&sms.body)
    .bind(status)
    .bind(to_millis(now))
    .fetch_optional(&mut *conn)
    .await?)
}

/// Records the reply `text` to the inbound text `inbound_id`.
async fn insert_reply(
    conn: &mut AnyConnection,
    sms: &InboundSms,
    text: &str,
    ticket_id: Option<i64>,
    inbound_id: i64,
    status: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sms_messages (direction, provider, provider_message_id, \
         from_number, to_number, body, ticket_id, reply_to, status, created_at) \
         VALUES ('out', $1, NULL, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&sms.provider)
    .bind(&sms.to)
    .bind(&sms.from)
    .bind(text)
    .bind(ticket_id)
    .bind(inbound_id)
    .bind(status)
    .bind(to_millis(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn carry_out(
    conn: &mut AnyConnection,
    sms: &InboundSms,
    request: SmsRequest,
    sla: &SlaPolicy,
    now: DateTime<Utc>,
) -> Result<SmsFacts, StoreError> {
    let actor = Actor::customer(&sms.from);
    let sender = PhoneNumber::parse(&sms.from).ok();
    let own = |ticket: &Ticket| {
        privacy::disclosure(ticket.contact_phone.as_deref(), sender.as_ref(), false)
            == Disclosure::Details
    };
    Ok(match request {
        SmsRequest::Nothing => SmsFacts::Nothing,
        SmsRequest::Ticket(number) => {
            SmsFacts::Ticket(match ticket_by_number(conn, &number).await? {
                None => TicketFacts::NotFound,
                Some(ticket) if own(&ticket) => TicketFacts::Own(ticket),
                Some(ticket) => TicketFacts::Others(ticket),
            })
        }
        SmsRequest::OpenTickets => {
            SmsFacts::OpenTickets(open_tickets(conn, &sms.from_spellings).await?)
        }
        SmsRequest::Create(new) => {
            let customer = customer_by_phones(conn, &sms.from_spellings).await?;
            let prepared = prepare_ticket(*new, customer, sla, now)?;
            let mut created = insert_tickets(conn, std::slice::from_ref(&prepared)).await?;
            SmsFacts::Created(created.pop().ok_or(StoreError::Closed)?)
        }
        SmsRequest::Cancel(number) => {
            SmsFacts::Cancel(match ticket_by_number(conn, &number).await? {
                Some(ticket) if own(&ticket) => {
                    if lifecycle::apply(ticket.status, Action::Cancel).is_ok() {
                        let note = Some("cancelled by the customer by SMS".to_string());
                        CancelFacts::Cancelled(
                            apply_transition(
                                conn,
                                &ticket,
                                Action::Cancel,
                                &actor,
                                note,
                                Effects::of(sla),
                                now,
                            )
                            .await?,
                        )
                    } else {
                        CancelFacts::Refused(ticket)
                    }
                }
                _ => CancelFacts::NotYours,
            })
        }
        SmsRequest::Answer(action) => {
            SmsFacts::Answer(match awaiting_answer(conn, &sms.from_spellings).await? {
                Some(ticket) if lifecycle::apply(ticket.status, action).is_ok() => {
                    let note = Some(format!("{action} by the customer's SMS answer"));
                    let changed = apply_transition(
                        conn,
                        &ticket,
                        action,
                        &actor,
                        note,
                        Effects::of(sla),
                        now,
                    )
                    .await?;
                    AnswerFacts::Applied(Box::new(changed), action)
                }
                _ => AnswerFacts::NoQuestion,
            })
        }
    })
}

/// The ticket a reply is about, recorded with both texts.
fn ticket_of(facts: &SmsFacts) -> Option<&Ticket> {
    match facts {
        SmsFacts::Ticket(TicketFacts::Own(ticket) | TicketFacts::Others(ticket))
        | SmsFacts::Created(ticket)
        | SmsFacts::Cancel(CancelFacts::Refused(ticket) | CancelFacts::Cancelled(ticket)) => {
            Some(ticket)
        }
        SmsFacts::Answer(AnswerFacts::Applied(ticket, _)) => Some(ticket),
        _ => None,
    }
}

async fn ticket_by_number(
    conn: &mut AnyConnection,
    number: &TicketNumber,
) -> Result<Option<Ticket>, StoreError> {
    let row: Option<TicketRow> = sqlx::query_as(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1"
    ))
    .bind(number.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Ticket::try_from).transpose()
}

async fn open_tickets(
    conn: &mut AnyConnection,
    phones: &[String],
) -> Result<Vec<Ticket>, StoreError> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE contact_phone IN ({}) \
         AND status NOT IN ($1, $2, $3, $4) ORDER BY created_at DESC, id DESC LIMIT {MAX_OPEN_LISTED}",
        parameters(5, phones.len())
    );
    let mut select = sqlx::query_as::<_, TicketRow>(&sql);
    for status in [
        Status::Resolved,
        Status::Confirmed,
        Status::Closed,
        Status::Cancelled,
    ] {
        select = select.bind(status.code());
    }
    for phone in phones {
        select = select.bind(phone);
    }
    let rows = select.fetch_all(&mut *conn).await?;
    rows.into_iter().map(Ticket::try_from).collect()
}

/// The customers on file under each of the phones in `spellings` (one
/// list per sender): id, level and language by phone, the lowest id where a
/// phone has several, as [`customer_by_phones`] picks.
async fn customers_by_phones<'a>(
    conn: &mut AnyConnection,
    spellings: impl Iterator<Item = &'a Vec<String>>,
) -> Result<HashMap<String, (i64, String, String)>, StoreError> {
    let mut phones: Vec<&str> = spellings.flatten().map(String::as_str).collect();
    phones.sort_unstable();
    phones.dedup();
    let sql = format!(
        "SELECT p.phone, c.id, c.level, c.language FROM customer_phones p \
         JOIN customers c ON c.id = p.customer_id WHERE p.phone IN ({})",
        parameters(1, phones.len())
    );
    let sql = bind_in_order(conn, sql);
    let mut select = sqlx::query_as::<_, (String, i64, String, String)>(&sql);
    for phone in phones {
        select = select.bind(phone);
    }
    let mut found: HashMap<String, (i64, String, String)> = HashMap::new();
    for (phone, id, level, language) in select.fetch_all(&mut *conn).await? {
        let customer = (id, level, language);
        match found.get(&phone) {
            Some(known) if known.0 <= id => {}
            _ => {
                found.insert(phone, customer);
            }
        }
    }
    Ok(found)
}

/// The customer on file under any of `phones`: id, level and language.
async fn customer_by_phones(
    conn: &mut AnyConnection,
    phones: &[String],
) -> Result<Option<(i64, String, String)>, StoreError> {
    let sql = format!(
        "SELECT c.id, c.level, c.language FROM customer_phones p \
         JOIN customers c ON c.id = p.customer_id WHERE p.phone IN ({}) \
         ORDER BY c.id LIMIT 1",
        parameters(1, phones.len())
    );
    let mut select = sqlx::query_as::<_, (i64, String, String)>(&sql);
    for phone in phones {
        select = select.bind(phone);
    }
    Ok(select.fetch_optional(&mut *conn).await?)
}

/// The ticket of the latest restoration question sent to any of `phones`
/// whose ticket is still resolved (waiting for the answer).
async fn awaiting_answer(
    conn: &mut AnyConnection,
    phones: &[String],
) -> Result<Option<Ticket>, StoreError> {
    let sql = format!(
        "SELECT {} FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
         WHERE o.kind = $1 AND t.status = $2 AND o.recipient IN ({}) \
         ORDER BY o.id DESC LIMIT 1",
        TICKET_COLUMNS
            .split(", ")
            .map(|column| format!("t.{}", column.trim()))
            .collect::<Vec<_>>()
            .join(", "),
        parameters(3, phones.len())
    );
    let mut select = sqlx::query_as::<_, TicketRow>(&sql)
        .bind(RESTORATION_QUESTION)
        .bind(Status::Resolved.code());
    for phone in phones {
        select = select.bind(phone);
    }
    select
        .fetch_optional(&mut *conn)
        .await?
        .map(Ticket::try_from)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_rows_number_every_mark_once() {
        assert_eq!(
            numbered_rows(2, "('in', ?, NULL, ?)"),
            "('in', $1, NULL, $2), ('in', $3, NULL, $4)"
        );
    }
}
