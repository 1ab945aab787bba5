//! Marking SLA breaches: each (ticket, clock) is breached at most once.
//!
//! The `sla_breaches` primary key makes the mark exactly-once: the event is
//! written only by the transaction whose insert added the row. On PostgreSQL
//! the job claims overdue tickets with `FOR UPDATE SKIP LOCKED`, so several
//! gateways sharing the database split the work instead of queueing on it.
//! A breach of the repair clock found by the job queues the customer's
//! apology in the same transaction (once, as the breach itself).

use super::outbox::{queue_notifications, QueuedNotification};
use super::tickets::insert_event;
use super::{from_millis, parse_code, to_millis, Backend, Store, StoreError};
use crate::tickets::model::{Actor, Language};
use crate::tickets::notifications::{self, NotificationKind};
use crate::tickets::number::TicketNumber;
use crate::tickets::sla::SlaClock;
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

/// The most tickets one pass marks per clock.
const PASS_LIMIT: i64 = 500;

/// A breach the job recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    pub ticket_id: i64,
    pub number: String,
    pub clock: SlaClock,
    pub due: DateTime<Utc>,
}

/// The deadline column of a clock, the column that says it was met, and any
/// extra condition for it to be running.
pub(super) fn clock_columns(clock: SlaClock) -> (&'static str, &'static str, &'static str) {
    match clock {
        SlaClock::Dispatch => ("dispatch_due", "dispatched_at", ""),
        SlaClock::Accept => ("accept_due", "accepted_at", ""),
        SlaClock::Feedback => ("feedback_due", "accepted_at", ""),
        SlaClock::Repair => ("repair_due", "resolved_at", " AND status <> 'closed'"),
        SlaClock::Confirm => ("confirm_due", "confirmed_at", " AND status = 'resolved'"),
    }
}

impl Store {
    /// Records every clock that ran out before `now` without being met, as
    /// a `sla_breach` event by the system. Returns what it recorded.
    pub async fn mark_breaches(&self, now: DateTime<Utc>) -> Result<Vec<Breach>, StoreError> {
        let mut recorded = Vec::new();
        let zone = self.sla().calendar().timezone();
        for clock in SlaClock::ALL.iter().copied() {
            let backend = self.backend();
            let breaches = self
                .write(move |conn| {
                    Box::pin(async move { mark_clock(conn, backend, clock, now, zone).await })
                })
                .await?;
            recorded.extend(breaches);
        }
        for breach in &recorded {
            self.observer().sla_breached(breach.clock);
        }
        Ok(recorded)
    }
}

async fn mark_clock(
    conn: &mut AnyConnection,
    backend: Backend,
    clock: SlaClock,
    now: DateTime<Utc>,
    zone: chrono_tz::Tz,
) -> Result<Vec<Breach>, StoreError> {
    let (due, met, running) = clock_columns(clock);
    let claim = match backend {
        Backend::Postgres => " FOR UPDATE OF tickets SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let overdue: Vec<(i64, String, i64, String, String)> = sqlx::query_as(&format!(
        "SELECT id, number, {due}, contact_phone, language FROM tickets \
         WHERE {due} < $1 AND {met} IS NULL AND status <> 'cancelled'{running} \
         AND NOT EXISTS (SELECT 1 FROM sla_breaches b WHERE b.ticket_id = tickets.id AND b.clock = $2) \
         ORDER BY {due} LIMIT $3{claim}"
    ))
    .bind(to_millis(now))
    .bind(clock.code())
    .bind(PASS_LIMIT)
    .fetch_all(&mut *conn)
    .await?;
    let mut breaches = Vec::new();
    for (ticket_id, number, due_at, contact_phone, language) in overdue {
        let due_at = from_millis(due_at)?;
        if record_breach(conn, ticket_id, clock, due_at, now).await? {
            if clock == SlaClock::Repair {
                let parsed: TicketNumber = parse_code(&number)?;
                let language: Language = parse_code(&language)?;
                let apology = QueuedNotification::about_ticket(
                    NotificationKind::SlaBreached,
                    &number,
                    Some(clock.code()),
                    ticket_id,
                    &contact_phone,
                    notifications::sla_breached(language, &parsed, due_at, zone),
                );
                queue_notifications(conn, now, vec![apology]).await?;
            }
            breaches.push(Breach {
                ticket_id,
                number,
                clock,
                due: due_at,
            });
        }
    }
    Ok(breaches)
}

/// Records that `clock` of the ticket was breached, with its event, unless
/// it already was. True when this call recorded it.
pub(super) async fn record_breach(
    conn: &mut AnyConnection,
    ticket_id: i64,
    clock: SlaClock,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO sla_breaches (ticket_id, clock, due_at, detected_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (ticket_id, clock) DO NOTHING",
    )
    .bind(ticket_id)
    .bind(clock.code())
    .bind(to_millis(due))
    .bind(to_millis(now))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let detail = format!("{clock} deadline {} passed", due.to_rfc3339());
        insert_event(
            conn,
            ticket_id,
            now,
            &Actor::system("sla"),
            "sla_breach",
            None,
            None,
            &detail,
        )
        .await?;
    }
    Ok(inserted)
}
