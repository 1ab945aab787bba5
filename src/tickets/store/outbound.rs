//! Outbound call jobs as stored: queued once per dedup key, claimed by any
//! gateway under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, as the
//! SMS outbox), and finished attempt by attempt with what the schedule
//! decided (`crate::outbound::schedule`). Only the claim's own lease may
//! finish it, so a gateway whose lease ran out cannot overwrite a newer
//! claim's outcome.

use super::calls::{insert_call_records, CallDirection, CallRecord};
use super::outbox::queue_notifications;
use super::tickets::{insert_event, load_for_change, transition_notification};
use super::{from_millis, to_millis, Backend, Store, StoreError};
use crate::outbound::schedule::{CampaignRules, Cause, GiveUp, Next, Purpose};
use crate::tickets::calendar::BusinessCalendar;
use crate::tickets::lifecycle::Action;
use crate::tickets::model::{Actor, Status};
use chrono::{DateTime, Utc};
use sqlx::AnyConnection;
use sqlx::Row;
use std::time::Duration;

/// A call to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboundCall {
    /// Queueing the same key again does nothing.
    pub dedup_key: String,
    pub purpose: Purpose,
    pub ticket_id: Option<i64>,
    pub number: String,
    /// Not before (the window is applied by the worker).
    pub earliest_at: DateTime<Utc>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundState {
    Queued,
    Placing,
    Done,
    Failed,
}

impl OutboundState {
    pub fn code(self) -> &'static str {
        match self {
            OutboundState::Queued => "queued",
            OutboundState::Placing => "placing",
            OutboundState::Done => "done",
            OutboundState::Failed => "failed",
        }
    }

    /// The state a code names (`queued`, `placing`, `done`, `failed`).
    pub fn parse(code: &str) -> Option<OutboundState> {
        [
            OutboundState::Queued,
            OutboundState::Placing,
            OutboundState::Done,
            OutboundState::Failed,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    pub id: i64,
    pub dedup_key: String,
    pub purpose: Purpose,
    pub ticket_id: Option<i64>,
    /// That ticket's number.
    pub ticket_number: Option<String>,
    pub number: String,
    pub state: OutboundState,
    /// The next attempt's trunk (index in the purpose's trunk list).
    pub trunk: usize,
    pub earliest_at: DateTime<Utc>,
    pub attempts: u32,
    pub last_cause: Option<String>,
    /// Why it ended: `completed`, or the give-up reason.
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A job a gateway claimed: it places attempt `attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedCall {
    pub call: OutboundCall,
    /// The claim's lease end (ms); it identifies the claim.
    pub lease: i64,
}

/// One attempt as it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub trunk: String,
    pub sip_call_id: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// The final response to the INVITE, if one came.
    pub sip_status: Option<u16>,
    pub cause: Cause,
    pub key_pressed: Option<String>,
}

/// An attempt as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttempt {
    pub attempt: u32,
    pub trunk: String,
    pub sip_call_id: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub sip_status: Option<u16>,
    pub cause: String,
    pub key_pressed: Option<String>,
}

const COLUMNS: &str = "id, dedup_key, purpose, ticket_id, number, state, trunk, earliest_at, \
                       attempts, last_cause, outcome, created_at, \
                       (SELECT t.number FROM tickets t WHERE t.id = outbound_calls.ticket_id) \
                       AS ticket_number";

/// Due: queued and not before now, or claimed by a gateway whose lease ran out.
const DUE: &str = "(state = 'queued' AND earliest_at <= $1) \
                   OR (state = 'placing' AND claimed_until < $1)";

/// Inserts `call` in the caller's transaction; `None` when its dedup key
/// was queued before.
pub(super) async fn insert_outbound_call(
    conn: &mut AnyConnection,
    call: &NewOutboundCall,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO outbound_calls (dedup_key, purpose, ticket_id, number, state, \
         trunk, earliest_at, attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, 0, $6, $6) \
         ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
    )
    .bind(&call.dedup_key)
    .bind(call.purpose.code())
    .bind(call.ticket_id)
    .bind(&call.number)
    .bind(to_millis(call.earliest_at))
    .bind(to_millis(now))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id)
}

impl Store {
    /// Queues `call`; `None` when its dedup key was queued before.
    pub async fn queue_outbound_call(
        &self,
        call: NewOutboundCall,
    ) -> Result<Option<i64>, StoreError> {
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move { insert_outbound_call(conn, &call, now).await })
        })
        .await
    }

    /// Queues a callback (回呼) about ticket `number` to `phone`, asked for
    /// by `actor` (a caller who found every agent busy), with a
    /// `callback_requested` event on the ticket, in one transaction. One
    /// callback per ticket and number may wait at a time: asking again
    /// while one waits queues nothing (`None`), and so does a gateway
    /// whose `[outbound.callback]` is off.
    pub async fn queue_callback(
        &self,
        number: &str,
        phone: &str,
        actor: Actor,
    ) -> Result<Option<i64>, StoreError> {
        let Some(rules) = &self.inner.callback_calls else {
            return Ok(None);
        };
        let number: crate::tickets::number::TicketNumber = number.parse()?;
        let phone = phone.to_string();
        let now = self.now();
        let sla = self.inner.sla.clone();
        let rules = rules.clone();
        self.write(move |conn| {
            Box::pin(async move {
                let ticket = load_for_change(conn, &number, None).await?;
                let waiting: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM outbound_calls WHERE ticket_id = $1 AND purpose = 'callback' \
                     AND number = $2 AND state IN ('queued', 'placing')",
                )
                .bind(ticket.id)
                .bind(&phone)
                .fetch_optional(&mut *conn)
                .await?;
                if waiting.is_some() {
                    return Ok(None);
                }
                let earliest_at = first_attempt(
                    conn,
                    ticket.id,
                    Purpose::Callback,
                    &rules,
                    sla.calendar(),
                    now,
                )
                .await?;
                let call = NewOutboundCall {
                    dedup_key: format!("callback:{}:{}:{}", ticket.id, phone, to_millis(now)),
                    purpose: Purpose::Callback,
                    ticket_id: Some(ticket.id),
                    number: phone.clone(),
                    earliest_at,
                };
                let id = insert_outbound_call(conn, &call, now).await?;
                let detail = format!("callback to {phone} requested");
                insert_event(
                    conn,
                    ticket.id,
                    now,
                    &actor,
                    "callback_requested",
                    None,
                    None,
                    &detail,
                )
                .await?;
                Ok(id)
            })
        })
        .await
    }

    /// Claims up to `limit` due jobs of `purposes` for `lease`, counting
    /// the attempt each is about to make; another gateway's claims are
    /// skipped.
    pub async fn claim_outbound_calls(
        &self,
        purposes: &[Purpose],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedCall>, StoreError> {
        if purposes.is_empty() {
            return Ok(Vec::new());
        }
        // Codes are this program's constants, not input.
        let purposes = purposes
            .iter()
            .map(|p| format!("'{}'", p.code()))
            .collect::<Vec<_>>()
            .join(", ");
        let due = format!("({DUE}) AND purpose IN ({purposes})");
        let now = to_millis(self.now());
        let lease_end = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        if self.backend() == Backend::Sqlite {
            // A claim is a write; on the single writer, skip it when
            // nothing is due (the common case of an idle poll).
            let due: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT id FROM outbound_calls WHERE {due} LIMIT 1"
            ))
            .bind(now)
            .fetch_optional(self.reader())
            .await?;
            if due.is_none() {
                return Ok(Vec::new());
            }
        }
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbound_calls SET state = 'placing', claimed_until = $2, \
             attempts = attempts + 1, updated_at = $1 \
             WHERE id IN (SELECT id FROM outbound_calls WHERE {due} \
             ORDER BY earliest_at, id LIMIT $3{lock}) RETURNING {COLUMNS}"
        );
        let rows = self
            .write(move |conn| {
                Box::pin(async move {
                    let rows = sqlx::query(&sql)
                        .bind(now)
                        .bind(lease_end)
                        .bind(limit)
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.iter().map(call_of_row).collect::<Result<Vec<_>, _>>()
                })
            })
            .await?;
        let mut claimed: Vec<ClaimedCall> = rows
            .into_iter()
            .map(|call| ClaimedCall {
                call,
                lease: lease_end,
            })
            .collect();
        claimed.sort_by_key(|c| c.call.id);
        Ok(claimed)
    }

    /// Gives `claim` back without an attempt made (outside the calling
    /// window, or its trunk at its caps): queued again for `at`. False when
    /// the lease had run out and another claim owns the job.
    pub async fn release_outbound_call(
        &self,
        claim: &ClaimedCall,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = to_millis(self.now());
        let (id, lease) = (claim.call.id, claim.lease);
        self.write(move |conn| {
            Box::pin(async move {
                let changed = sqlx::query(
                    "UPDATE outbound_calls SET state = 'queued', attempts = attempts - 1, \
                     earliest_at = $1, claimed_until = NULL, updated_at = $2 \
                     WHERE id = $3 AND state = 'placing' AND claimed_until = $4",
                )
                .bind(to_millis(at))
                .bind(now)
                .bind(id)
                .bind(lease)
                .execute(&mut *conn)
                .await?;
                Ok(changed.rows_affected() == 1)
            })
        })
        .await
    }

    /// Records `attempt` of `claim` and what comes next: done, queued again
    /// for the retry, or failed. False when the claim's lease had run out
    /// and another claim owns the job (the attempt is still recorded).
    pub async fn finish_outbound_attempt(
        &self,
        claim: &ClaimedCall,
        attempt: AttemptRecord,
        next: Next,
    ) -> Result<bool, StoreError> {
        let now = to_millis(self.now());
        let (id, number, lease) = (claim.call.id, claim.call.attempts, claim.lease);
        let at = self.now();
        let ticket = claim.call.ticket_id.zip(claim.call.ticket_number.clone());
        let detail = attempt_detail(&claim.call, &attempt, next);
        // A confirmation call that never got its answer falls back to the
        // "is it restored?" text the resolution would have sent.
        let text_instead =
            claim.call.purpose == Purpose::Confirm && matches!(next, Next::GiveUp(_));
        let unanswered = unanswered_call_record(&claim.call, &attempt);
        let (state, trunk, earliest, outcome) = match next {
            Next::Done => (
                OutboundState::Done,
                None,
                None,
                Some("completed".to_string()),
            ),
            Next::Retry { at, trunk } => (OutboundState::Queued, Some(trunk), Some(at), None),
            Next::GiveUp(reason) => (
                OutboundState::Failed,
                None,
                None,
                Some(give_up_code(reason)),
            ),
        };
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO outbound_attempts (call_id, attempt, trunk, sip_call_id, \
                     started_at, ended_at, sip_status, cause, key_pressed) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(i64::from(number))
                .bind(&attempt.trunk)
                .bind(&attempt.sip_call_id)
                .bind(to_millis(attempt.started_at))
                .bind(to_millis(attempt.ended_at))
                .bind(attempt.sip_status.map(i64::from))
                .bind(attempt.cause.code())
                .bind(attempt.key_pressed.as_deref())
                .execute(&mut *conn)
                .await?;
                let changed = sqlx::query(
                    "UPDATE outbound_calls SET state = $1, \
                     trunk = COALESCE($2, trunk), earliest_at = COALESCE($3, earliest_at), \
                     outcome = $4, last_cause = $5, claimed_until = NULL, updated_at = $6 \
                     WHERE id = $7 AND state = 'placing' AND claimed_until = $8",
                )
                .bind(state.code())
                .bind(trunk.map(|t| i64::try_from(t).unwrap_or(0)))
                .bind(earliest.map(to_millis))
                .bind(outcome.as_deref())
                .bind(attempt.cause.code())
                .bind(now)
                .bind(id)
                .bind(lease)
                .execute(&mut *conn)
                .await?;
                let owned = changed.rows_affected() == 1;
                if let (true, Some(record)) = (owned, unanswered) {
                    insert_call_records(conn, &[record]).await?;
                }
                if let (true, Some((ticket_id, number))) = (owned, ticket) {
                    let system = Actor::system("outbound");
                    insert_event(
                        conn,
                        ticket_id,
                        at,
                        &system,
                        "outbound_call",
                        None,
                        None,
                        &detail,
                    )
                    .await?;
                    if text_instead {
                        let ticket = load_for_change(conn, &number.parse()?, None).await?;
                        if ticket.status == Status::Resolved {
                            let text = transition_notification(&ticket, Action::Resolve);
                            queue_notifications(conn, at, text.into_iter().collect()).await?;
                        }
                    }
                }
                Ok(owned)
            })
        })
        .await
    }

    /// Jobs, newest first: all, or those in `state`; at most `limit`.
    pub async fn outbound_calls(
        &self,
        state: Option<OutboundState>,
        limit: i64,
    ) -> Result<Vec<OutboundCall>, StoreError> {
        let rows = match state {
            Some(state) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM outbound_calls WHERE state = $1 \
                     ORDER BY id DESC LIMIT $2"
                ))
                .bind(state.code())
                .bind(limit)
                .fetch_all(self.reader())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM outbound_calls ORDER BY id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(self.reader())
                .await?
            }
        };
        rows.iter().map(call_of_row).collect()
    }

    /// The job `id`, if any.
    pub async fn outbound_call(&self, id: i64) -> Result<Option<OutboundCall>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM outbound_calls WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(call_of_row).transpose()
    }

    /// A job's attempts, in order.
    pub async fn outbound_attempts(&self, call_id: i64) -> Result<Vec<StoredAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, trunk, sip_call_id, started_at, ended_at, sip_status, cause, \
             key_pressed FROM outbound_attempts WHERE call_id = $1 ORDER BY attempt, id",
        )
        .bind(call_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|row| {
                let status: Option<i64> = row.try_get("sip_status")?;
                Ok(StoredAttempt {
                    attempt: count(row.try_get("attempt")?)?,
                    trunk: row.try_get("trunk")?,
                    sip_call_id: row.try_get("sip_call_id")?,
                    started_at: from_millis(row.try_get("started_at")?)?,
                    ended_at: from_millis(row.try_get("ended_at")?)?,
                    sip_status: status.and_then(|s| u16::try_from(s).ok()),
                    cause: row.try_get("cause")?,
                    key_pressed: row.try_get("key_pressed")?,
                })
            })
            .collect()
    }
}

fn give_up_code(reason: GiveUp) -> String {
    match reason {
        GiveUp::Exhausted(cause) => format!("exhausted:{}", cause.code()),
        GiveUp::Final(cause) => cause.code().to_string(),
        GiveUp::NoWindow => "no_window".to_string(),
    }
}

fn count(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("count {value}")))
}

fn call_of_row(row: &sqlx::any::AnyRow) -> Result<OutboundCall, StoreError> {
    let purpose: String = row.try_get("purpose")?;
    let state: String = row.try_get("state")?;
    let trunk: i64 = row.try_get("trunk")?;
    Ok(OutboundCall {
        id: row.try_get("id")?,
        dedup_key: row.try_get("dedup_key")?,
        purpose: Purpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("outbound purpose {purpose:?}")))?,
        ticket_id: row.try_get("ticket_id")?,
        ticket_number: row.try_get("ticket_number")?,
        number: row.try_get("number")?,
        state: OutboundState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("outbound call state {state:?}")))?,
        trunk: usize::try_from(trunk)
            .map_err(|_| StoreError::Corrupt(format!("outbound trunk {trunk}")))?,
        earliest_at: from_millis(row.try_get("earliest_at")?)?,
        attempts: count(row.try_get("attempts")?)?,
        last_cause: row.try_get("last_cause")?,
        outcome: row.try_get("outcome")?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

/// The kind of the ticket event that says a queued call waits for its
/// calling window (counted by the SLA indicators for confirmation calls).
pub(super) const WAITING_FOR_WINDOW: &str = "outbound_call_waiting";

/// When a call of `purpose` about ticket `ticket_id`, queued at `now`, is
/// first attempted; when the calling window holds it beyond its delay,
/// the ticket's history says so and until when (local time).
pub(super) async fn first_attempt(
    conn: &mut AnyConnection,
    ticket_id: i64,
    purpose: Purpose,
    rules: &CampaignRules,
    calendar: &BusinessCalendar,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    let earliest = rules.first_attempt_at(calendar, now);
    if earliest > now + rules.first_delay {
        let local = earliest.with_timezone(&calendar.timezone());
        let detail = format!(
            "{} call waits for the calling window: first attempt {}",
            purpose.code(),
            local.format("%Y-%m-%d %H:%M %Z")
        );
        let system = Actor::system("outbound");
        insert_event(
            conn,
            ticket_id,
            now,
            &system,
            WAITING_FOR_WINDOW,
            None,
            None,
            &detail,
        )
        .await?;
    }
    Ok(earliest)
}

/// The call record of an attempt that never reached the IVR (not answered,
/// or answered without usable media): the IVR records answered ones when
/// they end. None when no INVITE went out (no SIP Call-ID).
fn unanswered_call_record(call: &OutboundCall, attempt: &AttemptRecord) -> Option<CallRecord> {
    let reached_the_ivr = matches!(attempt.cause, Cause::Completed | Cause::AnsweredSilent);
    if reached_the_ivr || attempt.sip_call_id.is_empty() {
        return None;
    }
    let reason = match attempt.sip_status {
        Some(200) => "answered without usable media".to_string(),
        Some(status) => status.to_string(),
        None if attempt.cause == Cause::NoAnswer => "CANCEL at the ring timeout".to_string(),
        None => "no final response".to_string(),
    };
    Some(CallRecord {
        sip_call_id: attempt.sip_call_id.clone(),
        direction: CallDirection::Outbound,
        caller: call.number.clone(),
        dialled: format!("outbound:{}", call.purpose.code()),
        offered_at: attempt.started_at,
        answered_at: None,
        ended_at: attempt.ended_at,
        disposition: attempt.cause.code().to_string(),
        reason: Some(reason),
        menu_path: Vec::new(),
        tickets: call.ticket_number.iter().cloned().collect(),
        transfers: Vec::new(),
    })
}

/// The ticket timeline's line for one attempt: "confirm call, attempt 2:
/// busy (SIP 486); retry at …".
fn attempt_detail(call: &OutboundCall, attempt: &AttemptRecord, next: Next) -> String {
    let status = attempt
        .sip_status
        .map(|s| format!(" (SIP {s})"))
        .unwrap_or_default();
    let key = attempt
        .key_pressed
        .as_deref()
        .map(|k| format!(", key {k}"))
        .unwrap_or_default();
    let then = match next {
        Next::Done => "done".to_string(),
        Next::Retry { at, .. } => format!("next attempt at {}", at.format("%Y-%m-%d %H:%M UTC")),
        Next::GiveUp(reason) => format!("given up: {}", give_up_code(reason)),
    };
    format!(
        "{} call to {}, attempt {} via {}: {}{status}{key}; {then}",
        call.purpose.code(),
        call.number,
        call.attempts,
        attempt.trunk,
        attempt.cause.code()
    )
}
