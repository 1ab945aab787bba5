//! SMS rate limits shared by every gateway on one PostgreSQL database: a
//! token bucket per limit and sender in `sms_sender_limits`, with the same
//! rules as the in-memory [`SenderLimits`](crate::sms::limits::SenderLimits)
//! (refill over the period, a message id counted once, a token given back
//! for a retry, a refused sender told once per run of refusals).
//!
//! A take is an upsert that refills, decides and records in the row's own
//! lock, so two gateways taking for one sender at the same moment are
//! serialised by PostgreSQL and the limit holds across them. Takes are
//! group-committed like the ticket writes: a few batcher tasks each gather
//! the takes queued meanwhile and send them as one statement per limit
//! (`UNNEST` of the senders and ids, rows locked in sender order so that
//! two gateways' statements wait in one direction only), each statement a
//! transaction of its own. A sender twice in one gathering goes into a
//! second statement after the first, in arrival order. One transaction per
//! text per limit bounded the webhook rate before (two a text, 2.05
//! transactions a webhook).
//!
//! They run on connections of their own with `synchronous_commit = off`:
//! a bucket is a brake, not an account, and a crash that loses its last
//! few updates costs a sender a few texts of allowance at most, while
//! waiting for the disk on every take halved the webhook rate. Times are
//! the store's clock in milliseconds (monotonic instants mean nothing on
//! another box). PostgreSQL only (native connections, for the arrays): a
//! SQLite file has one gateway, whose buckets stay in memory.

use super::writer::{worth_retrying, MAX_ATTEMPTS};
use super::{to_millis, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor, Row};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Connections a store keeps for the limits (PostgreSQL only): one per
/// batcher task, and one for give-backs, refusals and purges.
pub const SMS_LIMIT_CONNECTIONS: u32 = TAKE_TASKS as u32 + 1;

/// Batcher tasks: while one statement runs, the next gathers.
const TAKE_TASKS: usize = 2;

/// Takes one batcher gathers at most.
const MAX_TAKES: usize = 512;

/// Message ids remembered per bucket (as in memory).
const REMEMBERED_IDS: i64 = 16;

/// The limits' connections and the queue of takes their batchers serve.
pub(super) struct SharedLimits {
    pool: PgPool,
    takes: mpsc::UnboundedSender<TakeRequest>,
}

impl SharedLimits {
    /// Connects to `url` with commits that do not wait for the WAL to reach
    /// disk, and starts the batchers.
    pub(super) async fn start(url: &str) -> Result<SharedLimits, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(SMS_LIMIT_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET synchronous_commit = off").await?;
                    Ok(())
                })
            })
            .connect_with(PgConnectOptions::from_str(url)?)
            .await?;
        let (takes, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..TAKE_TASKS {
            tokio::spawn(serve_takes(pool.clone(), queue.clone()));
        }
        Ok(SharedLimits { pool, takes })
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

/// One take waiting for its batch.
struct TakeRequest {
    limit: &'static str,
    sender: String,
    id: String,
    capacity: f64,
    per_milli: f64,
    now: i64,
    reply: oneshot::Sender<Result<SharedTake, StoreError>>,
}

impl TakeRequest {
    /// Takes of one statement share the limit and its rate.
    fn statement_key(&self) -> (&'static str, u64, u64) {
        (
            self.limit,
            self.capacity.to_bits(),
            self.per_milli.to_bits(),
        )
    }
}

/// What a take did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SharedTake {
    /// A token was used for a new message id.
    Token,
    /// The message id was counted already: nothing used.
    Free,
    /// No token left; the sender may send again after this long.
    Refused(Duration),
}

/// The take of `$1` for each sender of `$2` with the message id at the same
/// place in `$6`: `$3` tokens a bucket, refilled at `$4` per millisecond,
/// at `$5` (milliseconds), remembering `$7` ids. The id of a row being
/// updated is `EXCLUDED.recent_ids[1]`, the one the new row would have had.
const TAKE: &str = "\
INSERT INTO sms_sender_limits AS b \
    (limit_name, sender, tokens, updated_at, recent_ids, told, outcome) \
SELECT $1, t.sender, $3::float8 - 1, $5::bigint, ARRAY[t.id], 0, 'token' \
FROM UNNEST($2::text[], $6::text[]) AS t(sender, id) ORDER BY t.sender \
ON CONFLICT (limit_name, sender) DO UPDATE SET \
    tokens = CASE \
        WHEN EXCLUDED.recent_ids[1] = ANY(b.recent_ids) THEN \
            LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) \
        WHEN LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) >= 1 THEN \
            LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) - 1 \
        ELSE LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) END, \
    updated_at = GREATEST(b.updated_at, $5::bigint), \
    recent_ids = CASE \
        WHEN NOT (EXCLUDED.recent_ids[1] = ANY(b.recent_ids)) AND \
            LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) >= 1 THEN \
            (b.recent_ids || EXCLUDED.recent_ids[1])[GREATEST(1, cardinality(b.recent_ids) + 2 - $7::bigint):] \
        ELSE b.recent_ids END, \
    told = CASE \
        WHEN NOT (EXCLUDED.recent_ids[1] = ANY(b.recent_ids)) AND \
            LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) >= 1 THEN 0 \
        ELSE b.told END, \
    outcome = CASE \
        WHEN EXCLUDED.recent_ids[1] = ANY(b.recent_ids) THEN 'free' \
        WHEN LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) >= 1 THEN 'token' \
        ELSE 'refused' END \
RETURNING sender, outcome, tokens";

/// A batcher task: gathers the queued takes, runs them, answers each.
async fn serve_takes(pool: PgPool, queue: Arc<Mutex<mpsc::UnboundedReceiver<TakeRequest>>>) {
    loop {
        let batch = {
            // Held while gathering only: the next task gathers while this one runs.
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_TAKES {
                match queue.try_recv() {
                    Ok(take) => batch.push(take),
                    Err(_) => break,
                }
            }
            batch
        };
        for statement in statements(batch) {
            run_statement(&pool, statement).await;
        }
    }
}

/// Splits a gathering into statements: one per limit, and within a limit a
/// further one each time a sender comes again, keeping arrival order.
fn statements(batch: Vec<TakeRequest>) -> Vec<Vec<TakeRequest>> {
    let mut statements: Vec<Vec<TakeRequest>> = Vec::new();
    let mut senders: Vec<HashSet<String>> = Vec::new();
    let mut next_of: HashMap<(&'static str, u64, u64), Vec<usize>> = HashMap::new();
    for take in batch {
        let rounds = next_of.entry(take.statement_key()).or_default();
        let round = rounds
            .iter()
            .copied()
            .find(|&s| !senders[s].contains(&take.sender));
        let index = match round {
            Some(index) => index,
            None => {
                statements.push(Vec::new());
                senders.push(HashSet::new());
                rounds.push(statements.len() - 1);
                statements.len() - 1
            }
        };
        senders[index].insert(take.sender.clone());
        statements[index].push(take);
    }
    statements
}

/// Runs one statement of takes (one limit, each sender once) and answers
/// each take.
async fn run_statement(pool: &PgPool, takes: Vec<TakeRequest>) {
    let Some(first) = takes.first() else {
        return;
    };
    let (limit, capacity, per_milli) = (first.limit, first.capacity, first.per_milli);
    let now = takes.iter().map(|t| t.now).max().unwrap_or_default();
    let senders: Vec<&str> = takes.iter().map(|t| t.sender.as_str()).collect();
    let ids: Vec<&str> = takes.iter().map(|t| t.id.as_str()).collect();
    let mut attempt = 1;
    let rows = loop {
        let result = sqlx::query(TAKE)
            .bind(limit)
            .bind(&senders)
            .bind(capacity)
            .bind(per_milli)
            .bind(now)
            .bind(&ids)
            .bind(REMEMBERED_IDS)
            .fetch_all(pool)
            .await;
        match result {
            Err(e) if worth_retrying(&e) && attempt < MAX_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, limit, "SMS limit takes aborted by the database; running them again");
                attempt += 1;
            }
            result => break result,
        }
    };
    let mut outcomes: HashMap<String, Result<SharedTake, StoreError>> = HashMap::new();
    match rows {
        Ok(rows) => {
            for row in rows {
                let outcome = outcome_of(&row, per_milli);
                if let Ok(sender) = row.try_get::<String, _>("sender") {
                    outcomes.insert(sender, outcome);
                }
            }
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::error!(%reason, takes = takes.len(), limit, "SMS limit takes failed");
            for take in &takes {
                outcomes.insert(take.sender.clone(), Err(failed(&reason)));
            }
        }
    }
    for take in takes {
        let outcome = outcomes.remove(&take.sender).unwrap_or_else(|| {
            Err(StoreError::Corrupt(format!(
                "no SMS limit row for {}",
                take.sender
            )))
        });
        let _ = take.reply.send(outcome);
    }
}

/// A take's outcome from its returned row.
fn outcome_of(row: &sqlx::postgres::PgRow, per_milli: f64) -> Result<SharedTake, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    let tokens: f64 = row.try_get("tokens")?;
    match outcome.as_str() {
        "token" => Ok(SharedTake::Token),
        "free" => Ok(SharedTake::Free),
        "refused" => {
            let wait_ms = ((1.0 - tokens) / per_milli).max(1.0);
            Ok(SharedTake::Refused(Duration::from_secs_f64(
                wait_ms / 1000.0,
            )))
        }
        other => Err(StoreError::Corrupt(format!("SMS limit outcome {other:?}"))),
    }
}

fn failed(reason: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!(
        "SMS limit take failed: {reason}"
    )))
}

impl Store {
    /// Counts message `id` from `sender` against the shared limit `limit`
    /// of `capacity` texts per `period` (capacity at least 1).
    pub async fn take_sms_token(
        &self,
        limit: &'static str,
        sender: &str,
        id: &str,
        capacity: u32,
        period: Duration,
    ) -> Result<SharedTake, StoreError> {
        let capacity = f64::from(capacity.max(1));
        let per_milli = capacity / (period.as_secs_f64() * 1000.0).max(1.0);
        let (reply, result) = oneshot::channel();
        let take = TakeRequest {
            limit,
            sender: sender.to_string(),
            id: id.to_string(),
            capacity,
            per_milli,
            now: to_millis(self.now()),
            reply,
        };
        self.limits()?
            .takes
            .send(take)
            .map_err(|_| StoreError::Closed)?;
        result.await.map_err(|_| StoreError::Closed)?
    }

    /// Gives back the token message `id` took: it was a retry of a text
    /// already answered. Nothing happens if `id` took none.
    pub async fn give_back_sms_token(
        &self,
        limit: &str,
        sender: &str,
        id: &str,
        capacity: u32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sms_sender_limits SET recent_ids = array_remove(recent_ids, $3::text), \
             tokens = LEAST($4::float8, tokens + 1) \
             WHERE limit_name = $1 AND sender = $2 AND $3::text = ANY(recent_ids)",
        )
        .bind(limit)
        .bind(sender)
        .bind(id)
        .bind(f64::from(capacity.max(1)))
        .execute(&self.limits()?.pool)
        .await?;
        Ok(())
    }

    /// Whether a refused text from `sender` should be answered: only the
    /// first refusal since the sender's last accepted text is, on whichever
    /// gateway it arrives.
    pub async fn tell_sms_sender(&self, limit: &str, sender: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sms_sender_limits SET told = 1 \
             WHERE limit_name = $1 AND sender = $2 AND told = 0",
        )
        .bind(limit)
        .bind(sender)
        .execute(&self.limits()?.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the buckets of `limit` untouched since `before`: they have
    /// refilled, and a sender without a bucket starts full. Returns how
    /// many.
    pub async fn purge_sms_limits(
        &self,
        limit: &str,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM sms_sender_limits WHERE limit_name = $1 AND updated_at < $2")
                .bind(limit)
                .bind(to_millis(before))
                .execute(&self.limits()?.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// The limits' pool (PostgreSQL).
    fn limits(&self) -> Result<&SharedLimits, StoreError> {
        self.inner.limits.as_ref().ok_or_else(sqlite_keeps_them)
    }
}

fn sqlite_keeps_them() -> StoreError {
    StoreError::Invalid {
        field: "SMS limits",
        reason: "shared SMS limits need PostgreSQL; on SQLite they are kept in memory".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(limit: &'static str, sender: &str, id: &str) -> TakeRequest {
        TakeRequest {
            limit,
            sender: sender.into(),
            id: id.into(),
            capacity: 5.0,
            per_milli: 0.001,
            now: 0,
            reply: oneshot::channel().0,
        }
    }

    fn shape(statements: &[Vec<TakeRequest>]) -> Vec<Vec<(&'static str, String, String)>> {
        statements
            .iter()
            .map(|s| {
                s.iter()
                    .map(|t| (t.limit, t.sender.clone(), t.id.clone()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn one_statement_per_limit_and_a_sender_twice_goes_into_the_next_in_order() {
        let batch = vec![
            take("texts", "a", "1"),
            take("texts", "b", "2"),
            take("new_tickets", "a", "1"),
            take("texts", "a", "3"),
            take("texts", "a", "4"),
            take("texts", "c", "5"),
        ];
        let statements = statements(batch);
        let t = |l, s: &str, i: &str| (l, s.to_string(), i.to_string());
        assert_eq!(
            shape(&statements),
            vec![
                vec![
                    t("texts", "a", "1"),
                    t("texts", "b", "2"),
                    t("texts", "c", "5")
                ],
                vec![t("new_tickets", "a", "1")],
                vec![t("texts", "a", "3")],
                vec![t("texts", "a", "4")],
            ]
        );
    }

    #[test]
    fn takes_of_one_limit_at_different_rates_are_not_mixed() {
        let mut other = take("texts", "b", "2");
        other.capacity = 10.0;
        let statements = statements(vec![take("texts", "a", "1"), other]);
        assert_eq!(statements.len(), 2);
    }
}
