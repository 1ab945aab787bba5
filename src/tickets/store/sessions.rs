//! Web console sessions as stored: the SHA-256 of the session id, the API
//! token the staff member logged in with, the session's CSRF token and its
//! expiry. Making ids and checking cookies is `console::session`'s job;
//! this module only keeps the rows. A session of a revoked token is not
//! found.

use super::{from_millis, parse_code, to_millis, Store, StoreError};
use crate::tickets::model::StaffRole;
use chrono::{DateTime, Utc};

/// A live console session, with who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// The token's holder: the staff actor of what the session does.
    pub name: String,
    pub role: StaffRole,
    /// The synchronizer token the session's forms carry.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Stores a session for the token `token_id` until `expires_at`.
    /// Expired sessions are deleted in the same write.
    pub async fn create_console_session(
        &self,
        id_hash: String,
        token_id: i64,
        csrf_token: String,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
                    .bind(to_millis(now))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO console_sessions (id_hash, token_id, csrf_token, created_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&id_hash)
                .bind(token_id)
                .bind(&csrf_token)
                .bind(to_millis(now))
                .bind(to_millis(expires_at))
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The session whose id hashes to `id_hash`, unless it has expired or
    /// its token was revoked.
    pub async fn console_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let row: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT t.name, t.role, s.csrf_token, s.expires_at FROM console_sessions s \
             JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
        )
        .bind(id_hash)
        .bind(to_millis(self.now()))
        .fetch_optional(self.reader())
        .await?;
        row.map(|(name, role, csrf_token, expires_at)| {
            Ok(ConsoleSession {
                name,
                role: parse_code(&role)?,
                csrf_token,
                expires_at: from_millis(expires_at)?,
            })
        })
        .transpose()
    }

    /// Ends a session (logout); ending one that is gone is not an error.
    pub async fn delete_console_session(&self, id_hash: String) -> Result<(), StoreError> {
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                    .bind(&id_hash)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
    }
}
