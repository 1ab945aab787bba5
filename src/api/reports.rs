//! Report routes: the centre's monitoring indicators over a time range
//! (`Store::indicators`), as JSON or CSV. Supervisors and admins only.

use super::auth::Staff;
use super::error::{ApiError, ErrorBody};
use super::{ApiQuery, ApiState};
use crate::tickets::model::StaffRole;
use crate::tickets::report::indicators_csv;
use crate::tickets::store::Indicators;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct IndicatorRange {
    /// Start of the range, RFC 3339 (default: 24 hours before `to`).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// End of the range (exclusive), RFC 3339 (default: now).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<String>, pattern = "^(json|csv)$")]
    format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/reports/indicators",
    tag = "reports",
    params(IndicatorRange),
    responses(
        (status = 200, description = "The indicators of [from, to)", content(
            (Indicators = "application/json"),
            (String = "text/csv"),
        )),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 422, description = "A bad time, format or range (at most 366 days)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn indicators(
    State(state): State<ApiState>,
    staff: Staff,
    ApiQuery(range): ApiQuery<IndicatorRange>,
) -> Result<Response, ApiError> {
    staff.require(StaffRole::Supervisor)?;
    let csv = match range.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("{other:?} is not json or csv"),
            ))
        }
    };
    let to = time("to", range.to)?.unwrap_or_else(|| state.store.now());
    let from = time("from", range.from)?.unwrap_or(to - Duration::hours(24));
    let report = state.store.indicators(from, to).await?;
    Ok(if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            // The API speaks UTC, as its JSON does.
            indicators_csv(&report, chrono_tz::UTC),
        )
            .into_response()
    } else {
        Json(report).into_response()
    })
}

fn time(field: &str, text: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| ApiError::invalid(field, format!("{text:?} is not an RFC 3339 time: {e}")))
    })
    .transpose()
}
