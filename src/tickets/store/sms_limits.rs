//! SMS rate limits shared by every gateway on one PostgreSQL database: a
//! token bucket per limit and sender in `sms_sender_limits`, with the same
//! rules as the in-memory [`SenderLimits`](crate::sms::limits::SenderLimits)
//! (refill over the period, a message id counted once, a token given back
//! for a retry, a refused sender told once per run of refusals).
//!
//! Each operation is one statement outside any batch, committed at once:
//! a take is an upsert that refills, decides and records in the row's own
//! lock, so two gateways taking for one sender at the same moment are
//! serialised by PostgreSQL and the limit holds across them. They run on
//! connections of their own with `synchronous_commit = off`: a bucket is a
//! brake, not an account, and a crash that loses its last few updates
//! costs a sender a few texts of allowance at most, while waiting for the
//! disk on every text halved the webhook rate (two such commits a text). Times are the
//! store's clock in milliseconds (monotonic instants mean nothing on
//! another box). PostgreSQL only: the statements use arrays, and a SQLite
//! file has one gateway, whose buckets stay in memory.

use super::{to_millis, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::Row;
use sqlx::{AnyPool, Executor};
use std::time::Duration;

/// Connections a store keeps for the limits (PostgreSQL only).
pub const SMS_LIMIT_CONNECTIONS: u32 = 4;

/// The limits' pool: commits that do not wait for the WAL to reach disk.
pub(super) async fn pool(connect: AnyConnectOptions) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .max_connections(SMS_LIMIT_CONNECTIONS)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET synchronous_commit = off").await?;
                Ok(())
            })
        })
        .connect_with(connect)
        .await?)
}

/// Message ids remembered per bucket (as in memory).
const REMEMBERED_IDS: i64 = 16;

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

const TAKE: &str = "\
INSERT INTO sms_sender_limits AS b \
    (limit_name, sender, tokens, updated_at, recent_ids, told, outcome) \
VALUES ($1, $2, $3::float8 - 1, $5::bigint, ARRAY[$6::text], 0, 'token') \
ON CONFLICT (limit_name, sender) DO UPDATE SET \
    tokens = CASE \
        WHEN $6::text = ANY(b.recent_ids) THEN \
            LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) \
        WHEN LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) >= 1 THEN \
            LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) - 1 \
        ELSE LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) END, \
    updated_at = GREATEST(b.updated_at, $5::bigint), \
    recent_ids = CASE \
        WHEN NOT ($6::text = ANY(b.recent_ids)) AND \
            LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) >= 1 THEN \
            (b.recent_ids || $6::text)[GREATEST(1, cardinality(b.recent_ids) + 2 - $7::bigint):] \
        ELSE b.recent_ids END, \
    told = CASE \
        WHEN NOT ($6::text = ANY(b.recent_ids)) AND \
            LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) >= 1 THEN 0 \
        ELSE b.told END, \
    outcome = CASE \
        WHEN $6::text = ANY(b.recent_ids) THEN 'free' \
        WHEN LEAST($3::float8, b.tokens + GREATEST(0, $5::bigint - b.updated_at) * $4::float8) >= 1 THEN 'token' \
        ELSE 'refused' END \
RETURNING outcome, tokens";

impl Store {
    /// Counts message `id` from `sender` against the shared limit `limit`
    /// of `capacity` texts per `period` (capacity at least 1).
    pub async fn take_sms_token(
        &self,
        limit: &str,
        sender: &str,
        id: &str,
        capacity: u32,
        period: Duration,
    ) -> Result<SharedTake, StoreError> {
        let capacity = f64::from(capacity.max(1));
        let per_milli = capacity / (period.as_secs_f64() * 1000.0).max(1.0);
        let row = sqlx::query(TAKE)
            .bind(limit)
            .bind(sender)
            .bind(capacity)
            .bind(per_milli)
            .bind(to_millis(self.now()))
            .bind(id)
            .bind(REMEMBERED_IDS)
            .fetch_one(self.limits()?)
            .await?;
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
        .execute(self.limits()?)
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
        .execute(self.limits()?)
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
                .execute(self.limits()?)
                .await?;
        Ok(done.rows_affected())
    }

    /// The limits' pool (PostgreSQL).
    fn limits(&self) -> Result<&AnyPool, StoreError> {
        self.inner.limits.as_ref().ok_or_else(sqlite_keeps_them)
    }
}

fn sqlite_keeps_them() -> StoreError {
    StoreError::Invalid {
        field: "SMS limits",
        reason: "shared SMS limits need PostgreSQL; on SQLite they are kept in memory".into(),
    }
}
