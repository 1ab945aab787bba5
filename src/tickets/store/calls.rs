//! Call records: one row per call with its parties, times, outcome and the
//! path it took through the menus, linked to the tickets it touched.

use super::{to_millis, Store, StoreError};
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

impl Store {
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
