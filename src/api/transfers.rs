//! Transfer context route: an agent's desktop resolves the short-lived
//! token a transfer carried (`X-Context-Token`, User-to-User) to the
//! caller, level, ticket and target (the store's `transfer_context`). Every
//! role may read it; an unknown or expired token is 404.

use super::auth::Staff;
use super::error::{ApiError, ErrorBody};
use super::ApiState;
use crate::tickets::store::TransferContext;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// What the gateway knew about a caller when it handed them over.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TransferContextView {
    #[schema(example = "3f9c0a61d2b84e7f05a1c6d9")]
    token: String,
    /// The SIP Call-ID of the transferred call.
    sip_call_id: String,
    /// The caller's number as the call presented it.
    caller: String,
    /// The customer's level (`local_c` for callers not on file).
    level: String,
    /// The ticket the call created or read last.
    ticket_number: Option<String>,
    /// The transfer target's name (`[transfer.targets.NAME]`).
    target: String,
    created_at: DateTime<Utc>,
    /// After this the token no longer resolves.
    expires_at: DateTime<Utc>,
}

impl From<TransferContext> for TransferContextView {
    fn from(c: TransferContext) -> TransferContextView {
        TransferContextView {
            token: c.token,
            sip_call_id: c.sip_call_id,
            caller: c.caller,
            level: c.level.code().into(),
            ticket_number: c.ticket_number,
            target: c.target,
            created_at: c.created_at,
            expires_at: c.expires_at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/transfer-contexts/{token}",
    tag = "calls",
    params(("token" = String, Path, description = "The context token the transfer carried (24 hex digits)")),
    responses(
        (status = 200, description = "The transferred caller's context", body = TransferContextView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "`transfer_context_not_found`: no such token, or it has expired", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn show(
    State(state): State<ApiState>,
    _staff: Staff,
    Path(token): Path<String>,
) -> Result<Json<TransferContextView>, ApiError> {
    let context = state
        .store
        .transfer_context(token.trim())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "transfer_context_not_found",
                "no transfer context has this token, or it has expired",
            )
        })?;
    Ok(Json(context.into()))
}
