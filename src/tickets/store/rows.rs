//! Rows as the database returns them, and their conversion into the domain
//! types (refusing codes this version does not know).

use super::tickets::{Deadlines, Ticket, TicketEvent};
use super::{from_millis, parse_code, StoreError};
use crate::tickets::model::{Actor, ActorKind};
use crate::tickets::number::TicketNumber;

/// The ticket columns, in the order `TicketRow` reads them.
pub(super) const TICKET_COLUMNS: &str = "id, number, ticket_type, category, service_number, \
    description, contact_phone, customer_id, level, language, channel, queue, assignee, status, \
    version, created_at, updated_at, dispatched_at, accepted_at, resolved_at, confirmed_at, \
    closed_at, dispatch_due, accept_due, feedback_due, repair_due, confirm_due";

#[derive(sqlx::FromRow)]
pub(super) struct TicketRow {
    id: i64,
    number: String,
    ticket_type: String,
    category: String,
    service_number: Option<String>,
    description: String,
    contact_phone: String,
    customer_id: Option<i64>,
    level: String,
    language: String,
    channel: String,
    queue: String,
    assignee: Option<String>,
    status: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
    dispatched_at: Option<i64>,
    accepted_at: Option<i64>,
    resolved_at: Option<i64>,
    confirmed_at: Option<i64>,
    closed_at: Option<i64>,
    dispatch_due: Option<i64>,
    accept_due: Option<i64>,
    feedback_due: Option<i64>,
    repair_due: Option<i64>,
    confirm_due: Option<i64>,
}

fn optional_time(millis: Option<i64>) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
    millis.map(from_millis).transpose()
}

impl TryFrom<TicketRow> for Ticket {
    type Error = StoreError;

    fn try_from(row: TicketRow) -> Result<Ticket, StoreError> {
        let number: TicketNumber = row
            .number
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("ticket number {}: {e}", row.number)))?;
        Ok(Ticket {
            id: row.id,
            number,
            ticket_type: parse_code(&row.ticket_type)?,
            category: row.category,
            service_number: row.service_number,
            description: row.description,
            // No contact is stored as an empty string (the column is NOT NULL).
            contact_phone: (!row.contact_phone.is_empty()).then_some(row.contact_phone),
            customer_id: row.customer_id,
            level: parse_code(&row.level)?,
            language: parse_code(&row.language)?,
            channel: parse_code(&row.channel)?,
            queue: row.queue,
            assignee: row.assignee,
            status: parse_code(&row.status)?,
            version: row.version,
            created_at: from_millis(row.created_at)?,
            updated_at: from_millis(row.updated_at)?,
            dispatched_at: optional_time(row.dispatched_at)?,
            accepted_at: optional_time(row.accepted_at)?,
            resolved_at: optional_time(row.resolved_at)?,
            confirmed_at: optional_time(row.confirmed_at)?,
            closed_at: optional_time(row.closed_at)?,
            due: Deadlines {
                dispatch: optional_time(row.dispatch_due)?,
                accept: optional_time(row.accept_due)?,
                feedback: optional_time(row.feedback_due)?,
                repair: optional_time(row.repair_due)?,
                confirm: optional_time(row.confirm_due)?,
            },
        })
    }
}

pub(super) const EVENT_COLUMNS: &str =
    "id, ticket_id, at, actor_kind, actor_id, kind, from_status, to_status, detail";

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    id: i64,
    ticket_id: i64,
    at: i64,
    actor_kind: String,
    actor_id: String,
    kind: String,
    from_status: Option<String>,
    to_status: Option<String>,
    detail: String,
}

impl TryFrom<EventRow> for TicketEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<TicketEvent, StoreError> {
        let kind: ActorKind = parse_code(&row.actor_kind)?;
        Ok(TicketEvent {
            id: row.id,
            ticket_id: row.ticket_id,
            at: from_millis(row.at)?,
            actor: Actor {
                kind,
                id: row.actor_id,
            },
            kind: row.kind,
            from_status: row.from_status.as_deref().map(parse_code).transpose()?,
            to_status: row.to_status.as_deref().map(parse_code).transpose()?,
            detail: row.detail,
        })
    }
}
