//! The log filter of the running gateway (`crate::logging`): read it, or
//! change it until the next change or restart. Admins only.

use super::auth::Staff;
use super::error::{ApiError, ErrorBody};
use super::ApiJson;
use crate::logging::{self, LevelError};
use crate::tickets::model::StaffRole;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A tracing filter: `info`, `debug`, `info,hotline::sip=debug`, …
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(super) struct LogLevel {
    #[schema(example = "info,hotline::sip=debug")]
    level: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/log-level",
    tag = "admin",
    responses(
        (status = 200, description = "The log filter in force", body = LogLevel),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 503, description = "This process did not install the logger", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn show(staff: Staff) -> Result<Json<LogLevel>, ApiError> {
    staff.require(StaffRole::Admin)?;
    logging::current_level()
        .map(|level| Json(LogLevel { level }))
        .ok_or_else(|| error(LevelError::NotInstalled))
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/log-level",
    tag = "admin",
    request_body = LogLevel,
    responses(
        (status = 200, description = "The new log filter, in force now", body = LogLevel),
        (status = 400, description = "Unreadable JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Not a log filter, or no level", body = ErrorBody),
        (status = 503, description = "This process did not install the logger", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn change(
    staff: Staff,
    ApiJson(body): ApiJson<LogLevel>,
) -> Result<Json<LogLevel>, ApiError> {
    staff.require(StaffRole::Admin)?;
    tracing::info!(staff = %staff.name, level = %body.level, "log level change asked");
    let level = logging::set_level(&body.level).map_err(error)?;
    Ok(Json(LogLevel { level }))
}

fn error(e: LevelError) -> ApiError {
    match e {
        LevelError::Invalid(..) => ApiError::invalid("level", e.to_string()),
        LevelError::NotInstalled | LevelError::Reload(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}
