//! The staff API's one error shape,
//! `{"error": {"code": "ticket_not_found", "message": "…"}}`, and the HTTP
//! status of each code. Store errors are mapped here and nowhere else;
//! database failures are logged and answered without their detail.

use crate::tickets::lifecycle::allowed_actions;
use crate::tickets::number::TicketNumberError;
use crate::tickets::store::StoreError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code for programs, a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `forbidden`, `not_found`,
    /// `ticket_not_found`, `customer_not_found`, `transfer_context_not_found`,
    /// `mistyped_ticket_number`,
    /// `invalid_ticket_number`, `invalid_customer_id`, `invalid_json`,
    /// `invalid_field`, `unsupported_media_type`, `method_not_allowed`,
    /// `conflict`, `invalid_transition`, `customer_has_tickets`,
    /// `unavailable`, `internal`.
    #[schema(example = "ticket_not_found")]
    pub code: String,
    pub message: String,
    /// The request field at fault (`invalid_field`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What the ticket's status allows instead (`invalid_transition`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_actions: Option<Vec<String>>,
    /// The ticket's version now (`conflict`): reload, then retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

/// An error answer: its HTTP status and body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {}: {}", .status, .body.error.code, .body.error.message)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.to_string(),
                    message: message.into(),
                    field: None,
                    allowed_actions: None,
                    current_version: None,
                },
            },
        }
    }

    /// 401: no token, or one that is unknown or revoked.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token's role may not do this.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 422: a request field is missing or wrong.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {}", message.into()),
        );
        error.body.error.field = Some(field);
        error
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        let message = error.to_string();
        match error {
            StoreError::InvalidNumber(TicketNumberError::CheckDigit) => {
                ApiError::new(StatusCode::BAD_REQUEST, "mistyped_ticket_number", message)
            }
            StoreError::InvalidNumber(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_ticket_number", message)
            }
            StoreError::TicketNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "ticket_not_found", message)
            }
            StoreError::Transition(refused) => {
                let mut error = ApiError::new(StatusCode::CONFLICT, "invalid_transition", message);
                error.body.error.allowed_actions = Some(
                    allowed_actions(refused.status)
                        .iter()
                        .map(|a| a.code().to_string())
                        .collect(),
                );
                error
            }
            StoreError::Conflict { actual, .. } => {
                let mut error = ApiError::new(StatusCode::CONFLICT, "conflict", message);
                error.body.error.current_version = Some(actual);
                error
            }
            StoreError::Invalid { field, reason } => ApiError::invalid(field, reason),
            StoreError::Import(_) => ApiError::invalid("customers", message),
            StoreError::CustomerHasTickets { .. } => {
                ApiError::new(StatusCode::CONFLICT, "customer_has_tickets", message)
            }
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the gateway is shutting down; try again shortly",
            ),
            StoreError::Database(_) | StoreError::Migration(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %message, "staff API request failed in the store");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the ticket store failed; the gateway's log has the detail",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::lifecycle::{Action, TransitionError};
    use crate::tickets::model::Status;

    #[test]
    fn store_errors_get_their_status_and_code() {
        let cases = [
            (
                StoreError::InvalidNumber(TicketNumberError::CheckDigit),
                400,
                "mistyped_ticket_number",
            ),
            (
                StoreError::InvalidNumber(TicketNumberError::NotDigits),
                400,
                "invalid_ticket_number",
            ),
            (
                StoreError::TicketNotFound("x".into()),
                404,
                "ticket_not_found",
            ),
            (
                StoreError::Conflict {
                    number: "x".into(),
                    expected: 1,
                    actual: 2,
                },
                409,
                "conflict",
            ),
            (
                StoreError::Invalid {
                    field: "category",
                    reason: "unknown".into(),
                },
                422,
                "invalid_field",
            ),
            (StoreError::Closed, 503, "unavailable"),
            (StoreError::Corrupt("x".into()), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let answer = ApiError::from(error);
            assert_eq!(answer.status().as_u16(), status, "{answer}");
            assert_eq!(answer.body().error.code, code);
        }
    }

    #[test]
    fn a_refused_action_names_the_allowed_ones() {
        let answer = ApiError::from(StoreError::Transition(TransitionError {
            action: Action::Resolve,
            status: Status::New,
        }));
        assert_eq!(answer.status(), StatusCode::CONFLICT);
        assert_eq!(
            answer.body().error.allowed_actions,
            Some(vec!["dispatch".to_string(), "cancel".to_string()])
        );
    }

    #[test]
    fn a_database_failure_does_not_leak_its_detail() {
        let answer = ApiError::from(StoreError::Corrupt("secret column".into()));
        assert!(!answer.body().error.message.contains("secret"));
    }
}
