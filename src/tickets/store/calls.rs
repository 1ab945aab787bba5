//! Call records: one row per call with its parties, times, outcome and the
//! path it took through the menus, linked to the tickets it touched.

use super::tickets::placeholders;
use super::{from_millis, to_millis, Store, StoreError};
use chrono::{DateTime, Utc};

/// What is recorded when a call ends.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub sip_call_id: String,
    pub caller: String,
    pub dialled: String,
    pub offered_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// How it ended (`remote_hangup`, `ivr`, `media_timeout`, …).
    pub disposition: String,
    /// (time, node, event) in order: nodes entered, keys, outcomes.
    pub menu_path: Vec<(DateTime<Utc>, String, String)>,
    /// Numbers of tickets created or read during the call.
    pub tickets: Vec<String>,
}

/// One step of a recorded call's walk through the menus.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct MenuStep {
    pub at: DateTime<Utc>,
    pub node: String,
    /// What happened there: entered, a key, an outcome.
    pub event: String,
}

/// A call record as read back (for the staff API).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCall {
    pub id: i64,
    pub sip_call_id: String,
    pub caller: String,
    pub dialled: String,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub disposition: Option<String>,
    pub menu_path: Vec<MenuStep>,
    /// Numbers of the tickets linked to the call.
    pub tickets: Vec<String>,
}

const CALL_COLUMNS: &str =
    "c.id, c.sip_call_id, c.caller, c.dialled, c.offered_at, c.answered_at, c.ended_at, \
     c.disposition, c.menu_path";

type CallRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    String,
);

impl Store {
    /// The most recent call records, newest first (at most `limit`,
    /// 1 to 1000).
    pub async fn recent_calls(&self, limit: i64) -> Result<Vec<StoredCall>, StoreError> {
        let rows: Vec<CallRow> = sqlx::query_as(&format!(
            "SELECT {CALL_COLUMNS} FROM calls c ORDER BY c.offered_at DESC, c.id DESC LIMIT $1"
        ))
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.reader())
        .await?;
        self.stored_calls(rows).await
    }

    /// The calls linked to a ticket, oldest first.
    pub async fn calls_of_ticket(&self, ticket_id: i64) -> Result<Vec<StoredCall>, StoreError> {
        let rows: Vec<CallRow> = sqlx::query_as(&format!(
            "SELECT {CALL_COLUMNS} FROM calls c JOIN call_tickets l ON l.call_id = c.id \
             WHERE l.ticket_id = $1 ORDER BY c.offered_at, c.id"
        ))
        .bind(ticket_id)
        .fetch_all(self.reader())
        .await?;
        self.stored_calls(rows).await
    }

    /// Rows with their menu paths parsed and their ticket numbers added
    /// (one query for all of them).
    async fn stored_calls(&self, rows: Vec<CallRow>) -> Result<Vec<StoredCall>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT l.call_id, t.number FROM call_tickets l JOIN tickets t ON t.id = l.ticket_id \
             WHERE l.call_id IN {} ORDER BY t.number",
            placeholders(1, rows.len())
        );
        let mut select = sqlx::query_as::<_, (i64, String)>(&sql);
        for row in &rows {
            select = select.bind(row.0);
        }
        let links = select.fetch_all(self.reader()).await?;
        rows.into_iter()
            .map(|row| {
                let (id, sip_call_id, caller, dialled, offered, answered, ended, disposition, path) =
                    row;
                let menu_path: Vec<MenuStep> = serde_json::from_str(&path)
                    .map_err(|e| StoreError::Corrupt(format!("menu path of call {id}: {e}")))?;
                Ok(StoredCall {
                    id,
                    sip_call_id,
                    caller,
                    dialled,
                    offered_at: from_millis(offered)?,
                    answered_at: answered.map(from_millis).transpose()?,
                    ended_at: ended.map(from_millis).transpose()?,
                    disposition,
                    menu_path,
                    tickets: links
                        .iter()
                        .filter(|(call, _)| *call == id)
                        .map(|(_, number)| number.clone())
                        .collect(),
                })
            })
            .collect()
    }

    /// Writes a call record and links its tickets; returns its id.
    pub async fn record_call(&self, record: CallRecord) -> Result<i64, StoreError> {
        let path: Vec<serde_json::Value> = record
            .menu_path
            .iter()
            .map(|(at, node, event)| {
                serde_json::json!({ "at": at.to_rfc3339(), "node": node, "event": event })
            })
            .collect();
        let path = serde_json::Value::Array(path).to_string();
        self.write(move |conn| {
            Box::pin(async move {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO calls (sip_call_id, caller, dialled, offered_at, answered_at, \
                     ended_at, disposition, menu_path) VALUES ($1, $2, $3, $4, $4, $5, $6, $7) \
                     RETURNING id",
                )
                .bind(&record.sip_call_id)
                .bind(&record.caller)
                .bind(&record.dialled)
                .bind(to_millis(record.offered_at))
                .bind(to_millis(record.ended_at))
                .bind(&record.disposition)
                .bind(&path)
                .fetch_one(&mut *conn)
                .await?;
                for number in &record.tickets {
                    sqlx::query(
                        "INSERT INTO call_tickets (call_id, ticket_id) \
                         SELECT $1, id FROM tickets WHERE number = $2 \
                         ON CONFLICT (call_id, ticket_id) DO NOTHING",
                    )
                    .bind(id)
                    .bind(number)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(id)
            })
        })
        .await
    }

    /// Call records for a SIP Call-ID: (caller, dialled, disposition,
    /// menu path as JSON, linked ticket numbers).
    pub async fn calls_by_sip_id(
        &self,
        sip_call_id: &str,
    ) -> Result<Vec<(String, String, String, String, Vec<String>)>, StoreError> {
        let rows: Vec<(i64, String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT id, caller, dialled, disposition, menu_path FROM calls \
             WHERE sip_call_id = $1 ORDER BY id",
        )
        .bind(sip_call_id)
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::new();
        for (id, caller, dialled, disposition, path) in rows {
            let tickets: Vec<String> = sqlx::query_scalar(
                "SELECT t.number FROM call_tickets c JOIN tickets t ON t.id = c.ticket_id \
                 WHERE c.call_id = $1 ORDER BY t.number",
            )
            .bind(id)
            .fetch_all(self.reader())
            .await?;
            out.push((
                caller,
                dialled,
                disposition.unwrap_or_default(),
                path,
                tickets,
            ));
        }
        Ok(out)
    }
}
