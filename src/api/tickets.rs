//! Ticket routes: list with filters, detail with the whole history (events,
//! calls with their menu paths, texts both ways), create, transition,
//! assign and note. Role rules: every role reads, notes and transitions;
//! agents assign only to themselves; creating and assigning to others
//! needs a supervisor.

use super::auth::{may_assign, Staff};
use super::calls::{limit, CallView};
use super::codes::{
    action_codes, channel_codes, level_codes, optional_channel_codes, optional_language_codes,
    optional_level_codes, status_codes, type_codes,
};
use super::error::{ApiError, ErrorBody};
use super::{ApiJson, ApiQuery, ApiState};
use crate::tickets::lifecycle::{allowed_actions, Action};
use crate::tickets::model::{Channel, StaffRole};
use crate::tickets::store::{
    Deadlines, NewTicket, Notification, StoreError, StoredSms, Ticket, TicketEvent, TicketQuery,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::{IntoParams, ToSchema};

/// How many tickets a list holds when `limit` is not given, and at most.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// A ticket (工单) as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TicketView {
    #[schema(example = "2024000017")]
    number: String,
    #[serde(rename = "type")]
    ticket_type: String,
    category: String,
    service_number: Option<String>,
    description: String,
    /// The number to call or text back, in the phone normal form; null
    /// when none was known (a caller who withheld their number and keyed
    /// none).
    contact_phone: Option<String>,
    customer_id: Option<i64>,
    level: String,
    language: String,
    channel: String,
    queue: String,
    assignee: Option<String>,
    status: String,
    /// The optimistic-locking token: send it back with a change to be told
    /// (409 `conflict`) when someone else changed the ticket meanwhile.
    version: i64,
    /// What the status allows next.
    allowed_actions: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    dispatched_at: Option<DateTime<Utc>>,
    accepted_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    confirmed_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    due: DeadlinesView,
}

/// The SLA deadlines, each set when its clock starts.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeadlinesView {
    dispatch: Option<DateTime<Utc>>,
    accept: Option<DateTime<Utc>>,
    feedback: Option<DateTime<Utc>>,
    repair: Option<DateTime<Utc>>,
    confirm: Option<DateTime<Utc>>,
}

impl From<Deadlines> for DeadlinesView {
    fn from(due: Deadlines) -> DeadlinesView {
        DeadlinesView {
            dispatch: due.dispatch,
            accept: due.accept,
            feedback: due.feedback,
            repair: due.repair,
            confirm: due.confirm,
        }
    }
}

impl From<Ticket> for TicketView {
    fn from(t: Ticket) -> TicketView {
        TicketView {
            number: t.number.to_string(),
            ticket_type: t.ticket_type.code().into(),
            category: t.category,
            service_number: t.service_number,
            description: t.description,
            contact_phone: t.contact_phone,
            customer_id: t.customer_id,
            level: t.level.code().into(),
            language: t.language.code().into(),
            channel: t.channel.code().into(),
            queue: t.queue,
            assignee: t.assignee,
            status: t.status.code().into(),
            version: t.version,
            allowed_actions: allowed_actions(t.status)
                .iter()
                .map(|a| a.code().to_string())
                .collect(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            dispatched_at: t.dispatched_at,
            accepted_at: t.accepted_at,
            resolved_at: t.resolved_at,
            confirmed_at: t.confirmed_at,
            closed_at: t.closed_at,
            due: t.due.into(),
        }
    }
}

/// One entry of a ticket's history.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EventView {
    at: DateTime<Utc>,
    /// `customer`, `staff` or `system`.
    actor_kind: String,
    actor_id: String,
    /// `created`, `transition`, `assigned`, `note` or `sla_breach`.
    kind: String,
    from_status: Option<String>,
    to_status: Option<String>,
    detail: String,
}

impl From<TicketEvent> for EventView {
    fn from(e: TicketEvent) -> EventView {
        EventView {
            at: e.at,
            actor_kind: e.actor.kind.code().into(),
            actor_id: e.actor.id,
            kind: e.kind,
            from_status: e.from_status.map(|s| s.code().into()),
            to_status: e.to_status.map(|s| s.code().into()),
            detail: e.detail,
        }
    }
}

/// A text the customer sent about the ticket (`in`) or our reply (`out`).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TextView {
    direction: String,
    provider: String,
    from: String,
    to: String,
    body: String,
    status: String,
    at: DateTime<Utc>,
}

impl From<StoredSms> for TextView {
    fn from(s: StoredSms) -> TextView {
        TextView {
            direction: s.direction,
            provider: s.provider,
            from: s.from,
            to: s.to,
            body: s.body,
            status: s.status,
            at: s.created_at,
        }
    }
}

/// A text the gateway sends the customer about the ticket (the outbox).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NotificationView {
    /// `ticket_created`, `dispatched`, `resolved`, `sla_apology`, …
    kind: String,
    recipient: String,
    body: String,
    /// `pending`, `sending`, `sent`, `delivered` or `failed`.
    status: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> NotificationView {
        NotificationView {
            kind: n.kind,
            recipient: n.recipient,
            body: n.body,
            status: n.status.code().into(),
            attempts: n.attempts,
            last_error: n.last_error,
            created_at: n.created_at,
            sent_at: n.sent_at,
            delivered_at: n.delivered_at,
            failed_at: n.failed_at,
        }
    }
}

/// A ticket with everything that happened to it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TicketDetail {
    ticket: TicketView,
    /// The history, oldest first.
    events: Vec<EventView>,
    /// Calls that created or read the ticket, with their menu paths.
    calls: Vec<CallView>,
    /// Texts from the customer about it and our replies.
    texts: Vec<TextView>,
    /// Texts the gateway sends the customer about it.
    notifications: Vec<NotificationView>,
}

/// Filters of the ticket list; all optional, all must hold.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TicketFilter {
    #[param(schema_with = status_codes)]
    status: Option<String>,
    #[param(schema_with = level_codes)]
    level: Option<String>,
    /// A product category of `sla.toml`.
    category: Option<String>,
    #[param(schema_with = channel_codes)]
    channel: Option<String>,
    /// `true`: only tickets with a breached SLA clock.
    #[param(value_type = Option<bool>)]
    breached: Option<String>,
    /// Text contained in the description.
    q: Option<String>,
    /// The contact phone, in any spelling: `+86 138-0013-8000`,
    /// `8613800138000` and `13800138000` find the same tickets.
    phone: Option<String>,
    /// How many, newest first (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// A ticket to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTicketRequest {
    #[serde(rename = "type")]
    #[schema(schema_with = type_codes)]
    ticket_type: String,
    /// A product category of `sla.toml`.
    #[schema(example = "virtual_network")]
    category: String,
    /// Any spelling of a number that can be called back (stored in the
    /// phone normal form); omitted, the ticket has no contact and is not
    /// texted.
    #[schema(example = "13800138000")]
    contact_phone: Option<String>,
    description: String,
    service_number: Option<String>,
    /// Default: the customer on file for the contact phone.
    customer_id: Option<i64>,
    /// Default: the customer's, or local_c.
    #[schema(schema_with = optional_level_codes)]
    level: Option<String>,
    #[schema(schema_with = optional_language_codes)]
    language: Option<String>,
    /// Default: staff.
    #[schema(schema_with = optional_channel_codes)]
    channel: Option<String>,
    /// Default: the ticket type's code.
    queue: Option<String>,
}

/// A lifecycle action.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TransitionRequest {
    #[schema(schema_with = action_codes)]
    action: String,
    /// Refuse (409 `conflict`) unless the ticket is still at this version.
    version: Option<i64>,
    note: Option<String>,
}

/// Who or which queue works the ticket; at least one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignRequest {
    /// A staff login; agents may only name themselves.
    assignee: Option<String>,
    /// Supervisors only.
    queue: Option<String>,
    version: Option<i64>,
}

/// A note for the ticket's history.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoteRequest {
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    text: String,
}

/// A vocabulary code from a request, or 422 naming the field.
fn code<T>(field: &'static str, value: Option<String>) -> Result<Option<T>, ApiError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse()
                .map_err(|e: T::Err| ApiError::invalid(field, e.to_string()))
        })
        .transpose()
}

#[utoipa::path(
    get,
    path = "/api/v1/tickets",
    tag = "tickets",
    params(TicketFilter),
    responses(
        (status = 200, description = "Matching tickets, newest first", body = [TicketView]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "A filter is not a known value", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(state): State<ApiState>,
    _staff: Staff,
    ApiQuery(filter): ApiQuery<TicketFilter>,
) -> Result<Json<Vec<TicketView>>, ApiError> {
    let breached = match filter.breached.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "breached",
                format!("{other:?} is not true or false"),
            ))
        }
    };
    let limit = limit(filter.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let query = TicketQuery {
        status: code("status", filter.status)?,
        level: code("level", filter.level)?,
        category: filter.category,
        channel: code("channel", filter.channel)?,
        contact_phone: filter.phone,
        breached,
        text: filter.q,
        limit: Some(limit),
        ..TicketQuery::default()
    };
    let tickets = state.store.list_tickets(&query).await?;
    Ok(Json(tickets.into_iter().map(TicketView::from).collect()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tickets",
    tag = "tickets",
    request_body = NewTicketRequest,
    responses(
        (status = 201, description = "The new ticket", body = TicketView),
        (status = 400, description = "Unreadable JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Needs a supervisor", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(state): State<ApiState>,
    staff: Staff,
    ApiJson(request): ApiJson<NewTicketRequest>,
) -> Result<(StatusCode, Json<TicketView>), ApiError> {
    staff.require(StaffRole::Supervisor)?;
    let ticket_type = code("type", Some(request.ticket_type))?
        .ok_or_else(|| ApiError::invalid("type", "is required"))?;
    let channel = code("channel", request.channel)?.unwrap_or(Channel::Staff);
    let mut new = NewTicket::new(
        ticket_type,
        request.category,
        String::new(),
        request.description,
        channel,
        staff.actor(),
    );
    new.contact_phone = request.contact_phone;
    new.service_number = request.service_number;
    new.customer_id = request.customer_id;
    new.level = code("level", request.level)?;
    new.language = code("language", request.language)?;
    new.queue = request.queue;
    let ticket = state.store.create_ticket(new).await?;
    Ok((StatusCode::CREATED, Json(ticket.into())))
}

#[utoipa::path(
    get,
    path = "/api/v1/tickets/{number}",
    tag = "tickets",
    params(("number" = String, Path, description = "The ten-digit ticket number", pattern = "^[0-9]{10}$")),
    responses(
        (status = 200, description = "The ticket and its whole history", body = TicketDetail),
        (status = 400, description = "Not a ticket number, or a mistyped one (check digit)", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn detail(
    State(state): State<ApiState>,
    _staff: Staff,
    Path(number): Path<String>,
) -> Result<Json<TicketDetail>, ApiError> {
    let store = &state.store;
    let ticket = store
        .ticket(&number)
        .await?
        .ok_or(StoreError::TicketNotFound(number))?;
    let id = ticket.id;
    Ok(Json(TicketDetail {
        events: store
            .events(id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        calls: store
            .calls_of_ticket(id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        texts: store
            .texts_of_ticket(id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        notifications: store
            .notifications(id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        ticket: ticket.into(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/tickets/{number}/transitions",
    tag = "tickets",
    params(("number" = String, Path, description = "The ten-digit ticket number", pattern = "^[0-9]{10}$")),
    request_body = TransitionRequest,
    responses(
        (status = 200, description = "The changed ticket", body = TicketView),
        (status = 400, description = "Bad ticket number or JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
        (status = 409, description = "`conflict`: the version is stale; `invalid_transition`: the status does not allow the action (`allowed_actions` says what does)", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown action or a wrong field", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn transition(
    State(state): State<ApiState>,
    staff: Staff,
    Path(number): Path<String>,
    ApiJson(request): ApiJson<TransitionRequest>,
) -> Result<Json<TicketView>, ApiError> {
    let action: Action = request
        .action
        .parse()
        .map_err(|e: String| ApiError::invalid("action", e))?;
    let ticket = state
        .store
        .transition(
            &number,
            action,
            staff.actor(),
            request.version,
            request.note,
        )
        .await?;
    Ok(Json(ticket.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tickets/{number}/assign",
    tag = "tickets",
    params(("number" = String, Path, description = "The ten-digit ticket number", pattern = "^[0-9]{10}$")),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "The ticket with its new assignee or queue", body = TicketView),
        (status = 400, description = "Bad ticket number or JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "An agent naming someone else or a queue", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
        (status = 409, description = "The version is stale", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Neither assignee nor queue", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn assign(
    State(state): State<ApiState>,
    staff: Staff,
    Path(number): Path<String>,
    ApiJson(request): ApiJson<AssignRequest>,
) -> Result<Json<TicketView>, ApiError> {
    let assignee = request.assignee.map(|a| a.trim().to_string());
    if assignee.as_deref() == Some("") {
        return Err(ApiError::invalid("assignee", "is empty"));
    }
    if assignee.is_none() && request.queue.is_none() {
        return Err(ApiError::invalid(
            "assignee",
            "give an assignee, a queue or both",
        ));
    }
    if !may_assign(
        &staff.name,
        staff.role,
        assignee.as_deref(),
        request.queue.as_deref(),
    ) {
        return Err(ApiError::forbidden(format!(
            "agents may assign tickets only to themselves ({}), without changing the queue",
            staff.name
        )));
    }
    let ticket = state
        .store
        .assign(
            &number,
            assignee,
            request.queue,
            staff.actor(),
            request.version,
        )
        .await?;
    Ok(Json(ticket.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/tickets/{number}/notes",
    tag = "tickets",
    params(("number" = String, Path, description = "The ten-digit ticket number", pattern = "^[0-9]{10}$")),
    request_body = NoteRequest,
    responses(
        (status = 201, description = "The note as recorded in the history", body = EventView),
        (status = 400, description = "Bad ticket number or JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such ticket", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Empty or too long", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn note(
    State(state): State<ApiState>,
    staff: Staff,
    Path(number): Path<String>,
    ApiJson(request): ApiJson<NoteRequest>,
) -> Result<(StatusCode, Json<EventView>), ApiError> {
    let event = state
        .store
        .add_note(&number, staff.actor(), request.text)
        .await
        .map_err(|e| match e {
            // The store calls the note's text "note"; the request, "text".
            StoreError::Invalid { reason, .. } => ApiError::invalid("text", reason),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(event.into())))
}
