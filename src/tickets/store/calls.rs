//! Call records: one row per call, rejected ones included, with its
//! parties, times, outcome and reason, the path it took through the menus
//! and the transfers it tried, linked to the tickets it touched.

use super::tickets::placeholders;
use super::{bind_in_order, from_millis, to_millis, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;

const CALL_INSERT_PARAMS: usize = 11;

/// The disposition of a call that was refused before it was answered.
pub const REJECTED: &str = "rejected";
/// The disposition of a call handed over to a transfer target.
pub const TRANSFERRED: &str = "transferred";
/// The dispositions of answered calls that ended the way a call served by
/// the IVR ends: the plan hung up (`ivr`) or the caller did (`remote_bye`).
/// Calls cut off at their time limit, by a media timeout or at shutdown
/// did not.
pub const CONTAINED_DISPOSITIONS: [&str; 2] = ["ivr", "remote_bye"];

/// Whether an answered call was contained in the IVR (自助完成): it ended
/// as a served call ends ([`CONTAINED_DISPOSITIONS`]) and never asked for
/// an agent: a call that tried a transfer, whatever became of it, is not
/// contained. The indicators count the same in SQL, the metrics with this.
pub fn is_contained(disposition: &str, transfers_tried: usize) -> bool {
    transfers_tried == 0 && CONTAINED_DISPOSITIONS.contains(&disposition)
}

/// Which way a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallDirection {
    /// A customer called the hotline.
    #[default]
    Inbound,
    /// The outbound worker called the customer (`crate::outbound`).
    Outbound,
}

impl CallDirection {
    pub fn code(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }

    fn from_code(code: &str) -> Option<CallDirection> {
        [CallDirection::Inbound, CallDirection::Outbound]
            .into_iter()
            .find(|d| d.code() == code)
    }
}

/// What is recorded when a call ends.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub sip_call_id: String,
    pub direction: CallDirection,
    /// The customer's side: who called, or whom an outbound call called.
    pub caller: String,
    /// The number called; `outbound:<purpose>` for an outbound call.
    pub dialled: String,
    pub offered_at: DateTime<Utc>,
    /// None for a call that was never answered (rejected, cancelled).
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    /// How it ended (`remote_bye`, `ivr`, `media_timeout`, `transferred`,
    /// `rejected`, …).
    pub disposition: String,
    /// Why, where the disposition alone does not say (a rejected call's
    /// status and cause, e.g. `404 no dialplan`).
    pub reason: Option<String>,
    /// (time, node, event) in order: nodes entered, keys, outcomes.
    pub menu_path: Vec<(DateTime<Utc>, String, String)>,
    /// Numbers of tickets created or read during the call.
    pub tickets: Vec<String>,
    /// The transfers the call tried, in order.
    pub transfers: Vec<CallTransfer>,
}

/// One transfer a call tried.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallTransfer {
    pub at: DateTime<Utc>,
    /// The `[transfer.targets]` name.
    pub target: String,
    /// `refer` or `bridge`; `none` for a target missing from the config.
    pub mode: String,
    /// `accepted` (the caller reached the target), `failed` (the IVR took
    /// its fallback), or `abandoned` (the call ended while it was pending).
    pub outcome: String,
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
    pub direction: CallDirection,
    pub caller: String,
    pub dialled: String,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub disposition: Option<String>,
    pub reason: Option<String>,
    pub menu_path: Vec<MenuStep>,
    pub transfers: Vec<CallTransfer>,
    /// Numbers of the tickets linked to the call.
    pub tickets: Vec<String>,
}

const CALL_COLUMNS: &str =
    "c.id, c.sip_call_id, c.direction, c.caller, c.dialled, c.offered_at, c.answered_at, c.ended_at, \
     c.disposition, c.reason, c.menu_path, c.transfers";

type CallRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
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
                let (
                    id,
                    sip_call_id,
                    direction,
                    caller,
                    dialled,
                    offered,
                    answered,
                    ended,
                    disposition,
                    reason,
                    path,
                    transfers,
                ) = row;
                let menu_path: Vec<MenuStep> = serde_json::from_str(&path)
                    .map_err(|e| StoreError::Corrupt(format!("menu path of call {id}: {e}")))?;
                let transfers = parse_transfers(id, &transfers)?;
                let direction = CallDirection::from_code(&direction).ok_or_else(|| {
                    StoreError::Corrupt(format!("call {id} has direction {direction:?}"))
                })?;
                Ok(StoredCall {
                    id,
                    sip_call_id,
                    direction,
                    caller,
                    dialled,
                    offered_at: from_millis(offered)?,
                    answered_at: answered.map(from_millis).transpose()?,
                    ended_at: ended.map(from_millis).transpose()?,
                    disposition,
                    reason,
                    menu_path,
                    transfers,
                    tickets: links
                        .iter()
                        .filter(|(call, _)| *call == id)
                        .map(|(_, number)| number.clone())
                        .collect(),
                })
            })
            .collect()
    }

    /// Writes a call record and links its tickets; returns its id. The
    /// record joins the writer's next batch, where all of the batch's
    /// records go in with two statements, as ticket creations do.
    pub async fn record_call(&self, record: CallRecord) -> Result<i64, StoreError> {
        let started = std::time::Instant::now();
        let id = self.inner.writer.record_call(record).await;
        self.observer().db_write("call_record", started.elapsed());
        id
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

/// Inserts the records with one multi-row statement and links their
/// tickets with another, whatever the count; returns their ids in order.
pub(super) async fn insert_call_records(
    conn: &mut AnyConnection,
    records: &[CallRecord],
) -> Result<Vec<i64>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO calls (sip_call_id, direction, caller, dialled, offered_at, answered_at, ended_at, \
         disposition, reason, menu_path, transfers) VALUES {} \
         RETURNING id, sip_call_id, offered_at, ended_at",
        placeholders(records.len(), CALL_INSERT_PARAMS)
    );
    let sql = bind_in_order(conn, sql);
    let mut insert = sqlx::query_as::<_, (i64, String, i64, i64)>(&sql);
    for record in records {
        insert = insert
            .bind(record.sip_call_id.clone())
            .bind(record.direction.code())
            .bind(record.caller.clone())
            .bind(record.dialled.clone())
            .bind(to_millis(record.offered_at))
            .bind(record.answered_at.map(to_millis))
            .bind(to_millis(record.ended_at))
            .bind(record.disposition.clone())
            .bind(record.reason.clone())
            .bind(menu_path_json(record))
            .bind(transfers_json(&record.transfers));
    }
    // RETURNING order is not guaranteed: match rows to records by what
    // they carry (records identical in these are interchangeable).
    let mut returned = insert.fetch_all(&mut *conn).await?;
    let mut ids = Vec::with_capacity(records.len());
    for record in records {
        let key = (
            record.sip_call_id.as_str(),
            to_millis(record.offered_at),
            to_millis(record.ended_at),
        );
        let position = returned
            .iter()
            .position(|(_, call_id, offered, ended)| (call_id.as_str(), *offered, *ended) == key)
            .ok_or_else(|| StoreError::Corrupt("a call record was not returned".into()))?;
        ids.push(returned.swap_remove(position).0);
    }
    let links: Vec<(i64, &str)> = records
        .iter()
        .zip(&ids)
        .flat_map(|(record, id)| record.tickets.iter().map(move |n| (*id, n.as_str())))
        .collect();
    if !links.is_empty() {
        // VALUES columns are column1, column2 in SQLite and PostgreSQL
        // alike; `WHERE true` keeps SQLite from reading ON CONFLICT as a
        // join constraint.
        let sql = format!(
            "INSERT INTO call_tickets (call_id, ticket_id) \
             SELECT v.column1, t.id FROM (VALUES {}) AS v \
             JOIN tickets t ON t.number = v.column2 WHERE true \
             ON CONFLICT (call_id, ticket_id) DO NOTHING",
            placeholders(links.len(), 2)
        );
        let sql = bind_in_order(conn, sql);
        let mut link = sqlx::query(&sql);
        for (id, number) in links {
            link = link.bind(id).bind(number.to_string());
        }
        link.execute(&mut *conn).await?;
    }
    Ok(ids)
}

fn menu_path_json(record: &CallRecord) -> String {
    let path: Vec<serde_json::Value> = record
        .menu_path
        .iter()
        .map(|(at, node, event)| {
            serde_json::json!({ "at": at.to_rfc3339(), "node": node, "event": event })
        })
        .collect();
    serde_json::Value::Array(path).to_string()
}

fn transfers_json(transfers: &[CallTransfer]) -> String {
    serde_json::to_string(transfers).unwrap_or_else(|_| "[]".to_string())
}

/// A call's stored transfers.
pub(super) fn parse_transfers(id: i64, json: &str) -> Result<Vec<CallTransfer>, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("transfers of call {id}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_served_by_the_ivr_alone_are_contained() {
        assert!(is_contained("ivr", 0));
        assert!(is_contained("remote_bye", 0));
        assert!(!is_contained("remote_bye", 1), "a failed transfer");
        assert!(
            !is_contained("ivr", 1),
            "agents busy, then the plan hung up"
        );
        assert!(!is_contained("time_limit", 0));
        assert!(!is_contained("media_timeout", 0));
        assert!(!is_contained(TRANSFERRED, 1));
    }
}
