//! Staff API tokens as stored: a name, a role and the SHA-256 of the
//! token (hex), never the token itself. Making and hashing tokens is
//! `api::auth`'s job; this module only keeps the rows.

use super::{from_millis, parse_code, to_millis, Store, StoreError};
use crate::tickets::model::StaffRole;
use chrono::{DateTime, Utc};

/// One API token's record (without the token, which is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    /// Who holds it: recorded as the staff actor of what it does.
    pub name: String,
    pub role: StaffRole,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str = "id, name, role, created_at, revoked_at";
const MAX_NAME: usize = 100;

type TokenRow = (i64, String, String, i64, Option<i64>);

fn token_of(row: TokenRow) -> Result<ApiToken, StoreError> {
    let (id, name, role, created_at, revoked_at) = row;
    Ok(ApiToken {
        id,
        name,
        role: parse_code(&role)?,
        created_at: from_millis(created_at)?,
        revoked_at: revoked_at.map(from_millis).transpose()?,
    })
}

impl Store {
    /// Stores a new token by its hash.
    pub async fn create_api_token(
        &self,
        name: &str,
        role: StaffRole,
        token_hash: String,
    ) -> Result<ApiToken, StoreError> {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(StoreError::Invalid {
                field: "name",
                reason: format!("must have 1 to {MAX_NAME} printable characters"),
            });
        }
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                let row: TokenRow = sqlx::query_as(&format!(
                    "INSERT INTO api_tokens (name, role, token_hash, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING {TOKEN_COLUMNS}"
                ))
                .bind(&name)
                .bind(role.code())
                .bind(&token_hash)
                .bind(to_millis(now))
                .fetch_one(&mut *conn)
                .await?;
                token_of(row)
            })
        })
        .await
    }

    /// Every token, revoked ones included, oldest first.
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(token_of).collect()
    }

    /// The token with this hash, unless it was revoked.
    pub async fn active_api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(self.reader())
        .await?;
        row.map(token_of).transpose()
    }

    /// Revokes a token from now on; `None` when there is no such token.
    /// Revoking a revoked token keeps its first revocation time.
    pub async fn revoke_api_token(&self, id: i64) -> Result<Option<ApiToken>, StoreError> {
        let now = self.now();
        self.write(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(to_millis(now))
                .bind(id)
                .execute(&mut *conn)
                .await?;
                let row: Option<TokenRow> = sqlx::query_as(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
                row.map(token_of).transpose()
            })
        })
        .await
    }
}
