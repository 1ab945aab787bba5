//! Outbound call routes (issue 17): the queued, placing and finished calls
//! the gateway makes (confirmation after a repair, callbacks, surveys) with
//! each attempt, for every role; and queueing one by hand for a ticket
//! (supervisor and up).

use super::auth::Staff;
use super::calls::limit;
use super::error::{ApiError, ErrorBody};
use super::{ApiJson, ApiQuery, ApiState};
use crate::outbound::schedule::Purpose;
use crate::phone::PhoneNumber;
use crate::tickets::model::StaffRole;
use crate::tickets::store::{NewOutboundCall, OutboundCall, OutboundState, StoredAttempt};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// An outbound call job.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OutboundCallView {
    id: i64,
    /// `confirm` (修复确认), `callback` (回呼) or `survey` (满意度调查).
    purpose: String,
    /// The ticket it is about (its number).
    ticket: Option<String>,
    /// The number called.
    number: String,
    /// `queued`, `placing`, `done` or `failed`.
    state: String,
    /// Not placed before this (the next attempt's time while queued).
    earliest_at: DateTime<Utc>,
    /// Attempts made so far.
    attempts: u32,
    /// The last attempt's cause (`busy`, `no_answer`, `declined`, …).
    last_cause: Option<String>,
    /// Why it ended: `completed`, `declined`, `unreachable`,
    /// `exhausted:<cause>` or `no_window`.
    outcome: Option<String>,
    created_at: DateTime<Utc>,
}

/// One attempt of an outbound call.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AttemptView {
    attempt: u32,
    trunk: String,
    sip_call_id: String,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    /// The final response to the INVITE, if one came.
    sip_status: Option<u16>,
    cause: String,
    key_pressed: Option<String>,
}

/// A job with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OutboundCallDetail {
    #[serde(flatten)]
    call: OutboundCallView,
    attempts: Vec<AttemptView>,
}

impl From<StoredAttempt> for AttemptView {
    fn from(a: StoredAttempt) -> AttemptView {
        AttemptView {
            attempt: a.attempt,
            trunk: a.trunk,
            sip_call_id: a.sip_call_id,
            started_at: a.started_at,
            ended_at: a.ended_at,
            sip_status: a.sip_status,
            cause: a.cause,
            key_pressed: a.key_pressed,
        }
    }
}

impl From<OutboundCall> for OutboundCallView {
    fn from(call: OutboundCall) -> OutboundCallView {
        OutboundCallView {
            id: call.id,
            purpose: call.purpose.code().to_string(),
            ticket: call.ticket_number,
            number: call.number,
            state: call.state.code().to_string(),
            earliest_at: call.earliest_at,
            attempts: call.attempts,
            last_cause: call.last_cause,
            outcome: call.outcome,
            created_at: call.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct OutboundFilter {
    /// Only jobs in this state: `queued`, `placing`, `done`, `failed`.
    state: Option<String>,
    /// How many, newest first (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

fn state_of(text: &str) -> Result<OutboundState, ApiError> {
    OutboundState::parse(text).ok_or_else(|| {
        ApiError::invalid(
            "state",
            format!("{text:?} is not queued, placing, done or failed"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/outbound-calls",
    tag = "calls",
    params(OutboundFilter),
    responses(
        (status = 200, description = "Outbound call jobs, newest first", body = [OutboundCallView]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "A bad state or limit", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(state): State<ApiState>,
    _staff: Staff,
    ApiQuery(filter): ApiQuery<OutboundFilter>,
) -> Result<Json<Vec<OutboundCallView>>, ApiError> {
    let limit = limit(filter.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let wanted = filter.state.as_deref().map(state_of).transpose()?;
    let calls = state.store.outbound_calls(wanted, limit).await?;
    Ok(Json(calls.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get,
    path = "/api/v1/outbound-calls/{id}",
    tag = "calls",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job and every attempt", body = OutboundCallDetail),
        (status = 400, description = "`invalid_outbound_call_id`: not a whole number", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "`outbound_call_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn show(
    State(state): State<ApiState>,
    _staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<OutboundCallDetail>, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_outbound_call_id",
            format!("{id:?} is not an outbound call id (a whole number)"),
        )
    })?;
    let call = state.store.outbound_call(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "outbound_call_not_found",
            format!("no outbound call {id}"),
        )
    })?;
    let attempts = state.store.outbound_attempts(id).await?;
    Ok(Json(OutboundCallDetail {
        call: call.into(),
        attempts: attempts.into_iter().map(Into::into).collect(),
    }))
}

/// A call to queue by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOutboundRequest {
    /// `confirm`, `callback` or `survey`.
    purpose: String,
    /// The ticket's number.
    ticket: String,
    /// The number to call; default the ticket's contact phone.
    number: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/outbound-calls",
    tag = "calls",
    request_body = NewOutboundRequest,
    responses(
        (status = 201, description = "Queued: placed in the purpose's next calling window", body = OutboundCallView),
        (status = 400, description = "Unreadable JSON, or a mistyped ticket number", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Needs a supervisor", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
        (status = 409, description = "`already_queued`: the same request was queued in the same millisecond", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong (no number to call)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(state): State<ApiState>,
    staff: Staff,
    ApiJson(request): ApiJson<NewOutboundRequest>,
) -> Result<(StatusCode, Json<OutboundCallView>), ApiError> {
    staff.require(StaffRole::Supervisor)?;
    let purpose = Purpose::parse(&request.purpose).ok_or_else(|| {
        ApiError::invalid(
            "purpose",
            format!("{:?} is not confirm, callback or survey", request.purpose),
        )
    })?;
    let ticket = state
        .store
        .ticket(request.ticket.trim())
        .await?
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "ticket_not_found", "no such ticket")
        })?;
    let number = request
        .number
        .as_deref()
        .or(ticket.contact_phone.as_deref())
        .unwrap_or_default();
    let number = PhoneNumber::parse(number)
        .map_err(|_| {
            ApiError::invalid(
                "number",
                format!("{number:?} is not a phone number to call"),
            )
        })?
        .to_string();
    let now = state.store.now();
    let new = NewOutboundCall {
        dedup_key: format!(
            "manual:{}:{}:{}:{}",
            purpose.code(),
            ticket.id,
            staff.actor(),
            now.timestamp_millis()
        ),
        purpose,
        ticket_id: Some(ticket.id),
        number,
        earliest_at: now,
    };
    let id =
        state.store.queue_outbound_call(new).await?.ok_or_else(|| {
            ApiError::new(StatusCode::CONFLICT, "already_queued", "queued already")
        })?;
    let call =
        state.store.outbound_call(id).await?.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "outbound_call_not_found", "gone")
        })?;
    Ok((StatusCode::CREATED, Json(call.into())))
}
