//! The notification outbox: texts to customers, written in the same
//! transaction as the ticket change that causes them (see
//! `tickets::insert_created_notifications`), and read here. Delivery is
//! the SMS outbox worker's job.

use super::{from_millis, Store, StoreError};
use chrono::{DateTime, Utc};

/// One queued (or sent) notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: i64,
    /// Unique per notification (`ticket_created:<number>`): the same event
    /// never queues two texts.
    pub dedup_key: String,
    pub kind: String,
    pub recipient: String,
    pub body: String,
    pub ticket_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
    pub sent_at: Option<DateTime<Utc>>,
}

type NotificationRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
);

impl Store {
    /// The notifications queued for a ticket, oldest first.
    pub async fn notifications(&self, ticket_id: i64) -> Result<Vec<Notification>, StoreError> {
        let rows: Vec<NotificationRow> = sqlx::query_as(
            "SELECT id, dedup_key, kind, recipient, body, ticket_id, created_at, attempts, \
             sent_at FROM outbox WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket_id)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(
                |(id, dedup_key, kind, recipient, body, ticket_id, created, attempts, sent)| {
                    Ok(Notification {
                        id,
                        dedup_key,
                        kind,
                        recipient,
                        body,
                        ticket_id,
                        created_at: from_millis(created)?,
                        attempts,
                        sent_at: sent.map(from_millis).transpose()?,
                    })
                },
            )
            .collect()
    }
}
