//! Transfer contexts: what an agent's desktop needs about a caller handed
//! over by a transfer (ticket, caller, level, where from), stored under the
//! short-lived random token the REFER carries, so that the context survives
//! proxies that strip the Refer-To's headers. The HTTP route that resolves
//! a token is the staff API's; this is its store side.

use super::{from_millis, parse_code, to_millis, Store, StoreError};
use crate::tickets::model::CustomerLevel;
use chrono::{DateTime, Utc};
use std::fmt::Write;
use std::time::Duration;

/// Random bytes in a token (shown as twice as many hex digits).
const TOKEN_BYTES: usize = 12;

/// A context to store for a transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTransferContext {
    pub sip_call_id: String,
    /// The caller's number as the call presented it.
    pub caller: String,
    /// The customer's level (`local_c` for callers not on file).
    pub level: CustomerLevel,
    /// The ticket the call created or read last, if any.
    pub ticket_number: Option<String>,
    /// The transfer target's name (`[transfer.targets.NAME]`).
    pub target: String,
    /// How long the token resolves.
    pub ttl: Duration,
}

/// A stored transfer context.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferContext {
    /// The token the REFER carried (`X-Context-Token`).
    pub token: String,
    pub sip_call_id: String,
    pub caller: String,
    pub level: CustomerLevel,
    pub ticket_number: Option<String>,
    pub target: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

type ContextRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
);

impl Store {
    /// Stores a transfer context under a new random token and returns it,
    /// committed. Contexts that have expired are deleted in the same write.
    pub async fn create_transfer_context(
        &self,
        new: NewTransferContext,
    ) -> Result<TransferContext, StoreError> {
        let created_at = self.now();
        let expires_at = chrono::Duration::from_std(new.ttl)
            .ok()
            .and_then(|ttl| created_at.checked_add_signed(ttl))
            .ok_or_else(|| StoreError::Invalid {
                field: "transfer context lifetime",
                reason: format!("{:?} is out of range", new.ttl),
            })?;
        let context = TransferContext {
            token: new_token(),
            sip_call_id: new.sip_call_id,
            caller: new.caller,
            level: new.level,
            ticket_number: new.ticket_number,
            target: new.target,
            created_at,
            expires_at,
        };
        let row = context.clone();
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query("DELETE FROM transfer_contexts WHERE expires_at <= $1")
                    .bind(to_millis(row.created_at))
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO transfer_contexts (token, sip_call_id, caller, level, \
                     ticket_number, target, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&row.token)
                .bind(&row.sip_call_id)
                .bind(&row.caller)
                .bind(row.level.code())
                .bind(&row.ticket_number)
                .bind(&row.target)
                .bind(to_millis(row.created_at))
                .bind(to_millis(row.expires_at))
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
        })
        .await?;
        Ok(context)
    }

    /// The context stored under `token`; `None` when there is none or it
    /// has expired.
    pub async fn transfer_context(
        &self,
        token: &str,
    ) -> Result<Option<TransferContext>, StoreError> {
        let row: Option<ContextRow> = sqlx::query_as(
            "SELECT token, sip_call_id, caller, level, ticket_number, target, created_at, \
             expires_at FROM transfer_contexts WHERE token = $1 AND expires_at > $2",
        )
        .bind(token)
        .bind(to_millis(self.now()))
        .fetch_optional(self.reader())
        .await?;
        let Some((token, sip_call_id, caller, level, ticket_number, target, created, expires)) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(TransferContext {
            token,
            sip_call_id,
            caller,
            level: parse_code(&level)?,
            ticket_number,
            target,
            created_at: from_millis(created)?,
            expires_at: from_millis(expires)?,
        }))
    }
}

/// A fresh token: random bytes from the CSPRNG as lower-case hex.
fn new_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    let mut token = String::with_capacity(TOKEN_BYTES * 2);
    for byte in bytes {
        let _ = write!(token, "{byte:02x}");
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_24_hex_digits_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
