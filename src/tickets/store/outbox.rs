//! The notification outbox: texts to customers, written in the same
//! transaction as the ticket change that causes them
//! ([`queue_notifications`], called by ticket creation, transitions and the
//! SLA breach job), and the narrow set of queries the SMS outbox worker and
//! the delivery-status callback run on it: claim due rows under a lease,
//! mark them sent, retried or failed, and record what the provider reports.
//! It decides nothing about when to retry or how to send: that is
//! `sms::outbox`'s job.

use super::tickets::placeholders;
use super::{bind_in_order, from_millis, parse_code, to_millis, Backend, Store, StoreError};
use crate::phone::PhoneNumber;
use crate::tickets::notifications::NotificationKind;
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Where a notification is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (`next_attempt_at`).
    Pending,
    /// Claimed by a worker, which is sending it (until `claimed_until`).
    Sending,
    /// The provider accepted it.
    Sent,
    /// The provider reported it delivered to the handset.
    Delivered,
    /// Refused for good, reported undelivered, or out of attempts.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: &'static [DeliveryStatus] = &[
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<DeliveryStatus, String> {
        DeliveryStatus::ALL
            .iter()
            .copied()
            .find(|s| s.code() == text)
            .ok_or_else(|| format!("unknown delivery status {text:?}"))
    }
}

/// One queued (or sent) notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: i64,
    /// Unique per notification (`ticket_created:<number>`,
    /// `dispatched:<number>:<version>`, …): the same event never queues two
    /// texts. Also the idempotency key of every attempt to send it.
    pub dedup_key: String,
    pub kind: String,
    pub recipient: String,
    pub body: String,
    pub ticket_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    /// Attempts started so far (claims by a worker).
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub provider_message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// A notification a worker claimed and now sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedNotification {
    pub id: i64,
    /// The idempotency key every attempt carries.
    pub dedup_key: String,
    pub kind: String,
    pub recipient: String,
    pub body: String,
    /// The ticket's number, when the notification is about a ticket.
    pub ticket_number: Option<String>,
    /// Which attempt this is (1 for the first).
    pub attempt: i64,
    /// The claim's lease end (ms); it identifies the claim, so that a worker
    /// whose lease ran out cannot overwrite a newer claim's outcome.
    lease: i64,
}

/// What the provider says about a message it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryReport {
    /// Queued, accepted or sent by the provider, not yet delivered.
    Accepted,
    Delivered,
    /// Undelivered or failed, with the provider's reason.
    Undelivered {
        reason: String,
    },
}

/// Which notification a delivery report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryReference {
    /// The provider's id (Twilio's `MessageSid`).
    ProviderMessageId(String),
    /// Our dedup key, which every send carries as its idempotency key.
    DedupKey(String),
}

/// How many notifications are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxSummary {
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub failed: i64,
}

/// A notification to queue in the transaction of the change causing it.
pub(super) struct QueuedNotification {
    pub kind: NotificationKind,
    pub dedup_key: String,
    pub recipient: String,
    pub body: String,
    pub ticket_id: i64,
}

impl QueuedNotification {
    /// A notification about the ticket `number`; `occasion` tells repeated
    /// events of one kind apart (the ticket version, the SLA clock), so a
    /// reopened and re-resolved ticket is told again, but one change never
    /// twice.
    pub fn about_ticket(
        kind: NotificationKind,
        number: &str,
        occasion: Option<&str>,
        ticket_id: i64,
        recipient: &str,
        body: String,
    ) -> QueuedNotification {
        let dedup_key = match occasion {
            Some(occasion) => format!("{kind}:{number}:{occasion}"),
            None => format!("{kind}:{number}"),
        };
        QueuedNotification {
            kind,
            dedup_key,
            recipient: recipient.to_string(),
            body,
            ticket_id,
        }
    }
}

const OUTBOX_INSERT_PARAMS: usize = 8;

/// Inserts, in the caller's transaction, every notification whose recipient
/// can receive a text (others are dropped: a landline gets no SMS). A dedup
/// key already in the outbox is skipped, so a change applied twice is
/// announced once.
pub(super) async fn queue_notifications(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    queued: Vec<QueuedNotification>,
) -> Result<(), StoreError> {
    let queued: Vec<QueuedNotification> = queued
        .into_iter()
        .filter(|n| PhoneNumber::parse(&n.recipient).is_ok_and(|p| p.can_receive_sms()))
        .collect();
    if queued.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO outbox (dedup_key, kind, recipient, body, ticket_id, created_at, \
         next_attempt_at, attempts) VALUES {} ON CONFLICT (dedup_key) DO NOTHING",
        placeholders(queued.len(), OUTBOX_INSERT_PARAMS)
    );
    let sql = bind_in_order(conn, sql);
    let mut insert = sqlx::query(&sql);
    for notice in queued {
        insert = insert
            .bind(notice.dedup_key)
            .bind(notice.kind.code())
            .bind(notice.recipient)
            .bind(notice.body)
            .bind(notice.ticket_id)
            .bind(to_millis(now))
            .bind(to_millis(now))
            .bind(0_i64);
    }
    insert.execute(&mut *conn).await?;
    Ok(())
}

const NOTIFICATION_COLUMNS: &str = "id, dedup_key, kind, recipient, body, ticket_id, created_at, \
    status, attempts, next_attempt_at, last_error, provider_message_id, sent_at, delivered_at, \
    failed_at";

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: i64,
    dedup_key: String,
    kind: String,
    recipient: String,
    body: String,
    ticket_id: Option<i64>,
    created_at: i64,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    provider_message_id: Option<String>,
    sent_at: Option<i64>,
    delivered_at: Option<i64>,
    failed_at: Option<i64>,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = StoreError;

    fn try_from(row: NotificationRow) -> Result<Notification, StoreError> {
        let at = |t: Option<i64>| t.map(from_millis).transpose();
        Ok(Notification {
            id: row.id,
            dedup_key: row.dedup_key,
            kind: row.kind,
            recipient: row.recipient,
            body: row.body,
            ticket_id: row.ticket_id,
            created_at: from_millis(row.created_at)?,
            status: parse_code(&row.status)?,
            attempts: row.attempts,
            next_attempt_at: from_millis(row.next_attempt_at)?,
            last_error: row.last_error,
            provider_message_id: row.provider_message_id,
            sent_at: at(row.sent_at)?,
            delivered_at: at(row.delivered_at)?,
            failed_at: at(row.failed_at)?,
        })
    }
}

type ClaimRow = (i64, String, String, String, String, Option<String>, i64);

impl Store {
    /// The notifications queued for a ticket, oldest first.
    pub async fn notifications(&self, ticket_id: i64) -> Result<Vec<Notification>, StoreError> {
        let rows: Vec<NotificationRow> = sqlx::query_as(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM outbox WHERE ticket_id = $1 ORDER BY id"
        ))
        .bind(ticket_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(Notification::try_from).collect()
    }

    /// The notification with this dedup key, if any.
    pub async fn notification(&self, dedup_key: &str) -> Result<Option<Notification>, StoreError> {
        let row: Option<NotificationRow> = sqlx::query_as(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM outbox WHERE dedup_key = $1"
        ))
        .bind(dedup_key)
        .fetch_optional(self.reader())
        .await?;
        row.map(Notification::try_from).transpose()
    }

    /// How many notifications wait to be sent (pending or being sent), and
    /// when the oldest of them was queued.
    pub async fn outbox_backlog(&self) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        let (depth, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status IN ('pending', 'sending')",
        )
        .fetch_one(self.reader())
        .await?;
        Ok((depth, oldest.map(from_millis).transpose()?))
    }

    /// How many notifications are in each delivery status.
    pub async fn outbox_summary(&self) -> Result<OutboxSummary, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM outbox GROUP BY status")
                .fetch_all(self.reader())
                .await?;
        let mut summary = OutboxSummary::default();
        for (status, count) in rows {
            let slot = match parse_code::<DeliveryStatus>(&status)? {
                DeliveryStatus::Pending => &mut summary.pending,
                DeliveryStatus::Sending => &mut summary.sending,
                DeliveryStatus::Sent => &mut summary.sent,
                DeliveryStatus::Delivered => &mut summary.delivered,
                DeliveryStatus::Failed => &mut summary.failed,
            };
            *slot = count;
        }
        Ok(summary)
    }

    /// Claims up to `limit` notifications that are due at `now` (pending
    /// with their next attempt due, or claimed by a worker whose lease ran
    /// out) for `lease`, counting the attempt. On PostgreSQL rows another
    /// gateway is claiming are skipped (`FOR UPDATE SKIP LOCKED`); on
    /// SQLite the claim is one statement through the single writer.
    pub async fn claim_notifications(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedNotification>, StoreError> {
        let now_ms = to_millis(now);
        let lease_end = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let backend = self.backend();
        if backend == Backend::Sqlite {
            // A claim is a write; on the single writer, skip it when there
            // is nothing to claim (the common case of an idle poll).
            let due: Option<i64> =
                sqlx::query_scalar(&format!("SELECT id FROM outbox WHERE {DUE} LIMIT 1"))
                    .bind(now_ms)
                    .fetch_optional(self.reader())
                    .await?;
            if due.is_none() {
                return Ok(Vec::new());
            }
        }
        let lock = match backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET status = 'sending', claimed_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE {DUE} \
             ORDER BY next_attempt_at, id LIMIT $3{lock}) \
             RETURNING id, dedup_key, kind, recipient, body, \
             (SELECT t.number FROM tickets t WHERE t.id = outbox.ticket_id), attempts"
        );
        let mut claimed = self
            .write(move |conn| {
                Box::pin(async move {
                    let rows: Vec<ClaimRow> = sqlx::query_as(&sql)
                        .bind(now_ms)
                        .bind(lease_end)
                        .bind(limit)
                        .fetch_all(&mut *conn)
                        .await?;
                    Ok(rows)
                })
            })
            .await?
            .into_iter()
            .map(
                |(id, dedup_key, kind, recipient, body, ticket_number, attempt)| {
                    ClaimedNotification {
                        id,
                        dedup_key,
                        kind,
                        recipient,
                        body,
                        ticket_number,
                        attempt,
                        lease: lease_end,
                    }
                },
            )
            .collect::<Vec<_>>();
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Records that the provider accepted the claimed notification. True
    /// when the row changed (false: a delivery report got there first, or
    /// it is no longer pending).
    pub async fn mark_sent(
        &self,
        claim: &ClaimedNotification,
        provider_message_id: Option<String>,
    ) -> Result<bool, StoreError> {
        let now = to_millis(self.now());
        let id = claim.id;
        self.write(move |conn| {
            Box::pin(async move {
                let changed = sqlx::query(
                    "UPDATE outbox SET status = 'sent', sent_at = $1, claimed_until = NULL, \
                     provider_message_id = COALESCE(provider_message_id, $2), last_error = NULL \
                     WHERE id = $3 AND status IN ('pending', 'sending')",
                )
                .bind(now)
                .bind(provider_message_id)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                Ok(changed == 1)
            })
        })
        .await
    }

    /// Puts the claimed notification back to wait until `next_attempt_at`,
    /// keeping `error`. False when the claim is no longer this worker's.
    pub async fn mark_retry(
        &self,
        claim: &ClaimedNotification,
        next_attempt_at: DateTime<Utc>,
        error: String,
    ) -> Result<bool, StoreError> {
        self.end_claim(claim, ClaimEnd::Retry, to_millis(next_attempt_at), error)
            .await
    }

    /// Gives the claimed notification up for good, keeping `error`. False
    /// when the claim is no longer this worker's.
    pub async fn mark_failed(
        &self,
        claim: &ClaimedNotification,
        error: String,
    ) -> Result<bool, StoreError> {
        let now = to_millis(self.now());
        self.end_claim(claim, ClaimEnd::Failed, now, error).await
    }

    /// Ends a claim that did not deliver: `at` is the next attempt's time
    /// (retry) or the failure's (failed). Only the claim's own lease may
    /// end it, so a worker whose lease ran out cannot undo a newer claim.
    async fn end_claim(
        &self,
        claim: &ClaimedNotification,
        end: ClaimEnd,
        at: i64,
        error: String,
    ) -> Result<bool, StoreError> {
        let (id, lease) = (claim.id, claim.lease);
        let set = match end {
            ClaimEnd::Retry => "status = 'pending', next_attempt_at = $1",
            ClaimEnd::Failed => "status = 'failed', failed_at = $1",
        };
        self.write(move |conn| {
            Box::pin(async move {
                let changed = sqlx::query(&format!(
                    "UPDATE outbox SET {set}, last_error = $2, claimed_until = NULL \
                     WHERE id = $3 AND status = 'sending' AND claimed_until = $4"
                ))
                .bind(at)
                .bind(error)
                .bind(id)
                .bind(lease)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                Ok(changed == 1)
            })
        })
        .await
    }

    /// Records a provider's delivery report about the notification
    /// `reference` names, and the provider's id of it when given and not
    /// yet known. Reports never move a notification backwards (a late
    /// "sent" after "delivered" changes nothing). Returns the
    /// notification's status afterwards, or `None` when none matches.
    pub async fn mark_delivery_status(
        &self,
        reference: DeliveryReference,
        provider_message_id: Option<String>,
        report: DeliveryReport,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        let now = to_millis(self.now());
        let (column, value) = match reference {
            DeliveryReference::ProviderMessageId(id) => ("provider_message_id", id),
            DeliveryReference::DedupKey(key) => ("dedup_key", key),
        };
        let (change, condition, error) = match report {
            DeliveryReport::Accepted => (
                "status = 'sent', sent_at = COALESCE(sent_at, $1)",
                "status IN ('pending', 'sending')",
                None,
            ),
            DeliveryReport::Delivered => (
                "status = 'delivered', delivered_at = $1, sent_at = COALESCE(sent_at, $1)",
                "status <> 'delivered'",
                None,
            ),
            DeliveryReport::Undelivered { reason } => (
                "status = 'failed', failed_at = $1, last_error = $4",
                "status IN ('pending', 'sending', 'sent')",
                Some(format!("provider reported: {reason}")),
            ),
        };
        let sql = format!(
            "UPDATE outbox SET {change}, claimed_until = NULL, \
             provider_message_id = COALESCE(provider_message_id, $3) \
             WHERE {column} = $2 AND {condition}"
        );
        self.write(move |conn| {
            Box::pin(async move {
                let mut update = sqlx::query(&sql)
                    .bind(now)
                    .bind(value.clone())
                    .bind(provider_message_id);
                if let Some(error) = error {
                    update = update.bind(error);
                }
                update.execute(&mut *conn).await?;
                let status: Option<String> = sqlx::query_scalar(&format!(
                    "SELECT status FROM outbox WHERE {column} = $1 ORDER BY id LIMIT 1"
                ))
                .bind(value)
                .fetch_optional(&mut *conn)
                .await?;
                status.map(|s| parse_code(&s)).transpose()
            })
        })
        .await
    }
}

/// The condition of a row a worker may claim at `$1` (now, ms).
const DUE: &str = "(status = 'pending' AND next_attempt_at <= $1) \
    OR (status = 'sending' AND claimed_until <= $1)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_statuses_read_back_from_their_codes() {
        for status in DeliveryStatus::ALL {
            assert_eq!(status.code().parse::<DeliveryStatus>(), Ok(*status));
        }
        assert!("lost".parse::<DeliveryStatus>().is_err());
    }

    #[test]
    fn dedup_keys_name_the_kind_the_ticket_and_the_occasion() {
        let created = QueuedNotification::about_ticket(
            NotificationKind::TicketCreated,
            "5551234560",
            None,
            1,
            "13800138000",
            String::new(),
        );
        assert_eq!(created.dedup_key, "ticket_created:5551234560");
        let resolved = QueuedNotification::about_ticket(
            NotificationKind::Resolved,
            "5551234560",
            Some("5"),
            1,
            "13800138000",
            String::new(),
        );
        assert_eq!(resolved.dedup_key, "resolved:5551234560:5");
    }
}

/// How a claim ends when the text was not delivered.
#[derive(Debug, Clone, Copy)]
enum ClaimEnd {
    Retry,
    Failed,
}
