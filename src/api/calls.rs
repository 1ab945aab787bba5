//! Call routes: the recorded calls (newest first, with their menu paths
//! and tickets), the calls now in the IVR of every instance sharing the
//! store with the node each caller is in, and the instances themselves
//! ([`Cluster`](crate::instances::Cluster)). Every role may read them.

use super::auth::Staff;
use super::error::{ApiError, ErrorBody};
use super::{ApiQuery, ApiState};
use crate::instances::{Cluster, InstanceStatus};
use crate::tickets::store::{CallTransfer, LiveCallRow, MenuStep, StoredCall};
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// A finished call as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CallView {
    id: i64,
    sip_call_id: String,
    /// `inbound` (a customer called) or `outbound` (an attempt of an
    /// outbound call job, answered or not).
    direction: String,
    /// The customer's side: who called, or whom an outbound call called.
    caller: String,
    /// The number called; `outbound:<purpose>` for an outbound call.
    dialled: String,
    offered_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    /// How it ended: `remote_bye`, `ivr`, `media_timeout`, `transferred`,
    /// `rejected`, …; an outbound attempt that was not answered: its cause
    /// (`busy`, `no_answer`, `declined`, `unreachable`, `trunk_failure`).
    disposition: Option<String>,
    /// Why, for a rejected call: its status and cause (`404 no dialplan`).
    reason: Option<String>,
    /// The walk through the menus, in order.
    menu_path: Vec<MenuStepView>,
    /// The transfers the call tried, in order.
    transfers: Vec<TransferView>,
    /// Numbers of the tickets the call created or read.
    tickets: Vec<String>,
}

/// One step of a call's walk through the menus.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MenuStepView {
    at: DateTime<Utc>,
    node: String,
    /// What happened there: entered, a key, an outcome.
    event: String,
}

/// A transfer a call tried.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TransferView {
    at: DateTime<Utc>,
    /// The `[transfer.targets]` name.
    target: String,
    /// `refer`, `bridge`, or `none` (a target missing from the config).
    mode: String,
    /// `accepted`, `failed` or `abandoned` (the call ended first).
    outcome: String,
}

impl From<CallTransfer> for TransferView {
    fn from(t: CallTransfer) -> TransferView {
        TransferView {
            at: t.at,
            target: t.target,
            mode: t.mode,
            outcome: t.outcome,
        }
    }
}

impl From<MenuStep> for MenuStepView {
    fn from(step: MenuStep) -> MenuStepView {
        MenuStepView {
            at: step.at,
            node: step.node,
            event: step.event,
        }
    }
}

impl From<StoredCall> for CallView {
    fn from(call: StoredCall) -> CallView {
        CallView {
            id: call.id,
            sip_call_id: call.sip_call_id,
            direction: call.direction.code().to_string(),
            caller: call.caller,
            dialled: call.dialled,
            offered_at: call.offered_at,
            answered_at: call.answered_at,
            ended_at: call.ended_at,
            disposition: call.disposition,
            reason: call.reason,
            menu_path: call.menu_path.into_iter().map(Into::into).collect(),
            transfers: call.transfers.into_iter().map(Into::into).collect(),
            tickets: call.tickets,
        }
    }
}

/// A call in the IVR now.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LiveCallView {
    /// The gateway instance the call is on (`instance.name`).
    instance: String,
    /// The SIP Call-ID.
    call_id: String,
    caller: String,
    dialled: String,
    /// The menu node the caller is in; null while the plan starts.
    node: Option<String>,
    /// When the call reached the IVR.
    since: DateTime<Utc>,
}

impl From<LiveCallRow> for LiveCallView {
    fn from(call: LiveCallRow) -> LiveCallView {
        LiveCallView {
            instance: call.instance,
            call_id: call.call_id,
            caller: call.caller,
            dialled: call.dialled,
            node: call.node,
            since: call.since,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CallFilter {
    /// How many, newest first (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// `limit` from a query: absent gives `default`; 1 to `max`, or 422.
pub(super) fn limit(text: Option<String>, default: i64, max: i64) -> Result<i64, ApiError> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("{text:?} is not a number from 1 to {max}"))
            }),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/calls",
    tag = "calls",
    params(CallFilter),
    responses(
        (status = 200, description = "Recorded calls, newest first", body = [CallView]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "A bad limit", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(state): State<ApiState>,
    _staff: Staff,
    ApiQuery(filter): ApiQuery<CallFilter>,
) -> Result<Json<Vec<CallView>>, ApiError> {
    let limit = limit(filter.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let calls = state.store.recent_calls(limit).await?;
    Ok(Json(calls.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get,
    path = "/api/v1/calls/live",
    tag = "calls",
    responses(
        (status = 200, description = "Calls in the IVR of every alive instance now, longest first, with the node each caller is in (other instances' as of their last heartbeat)", body = [LiveCallView]),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn live(
    State(state): State<ApiState>,
    _staff: Staff,
) -> Result<Json<Vec<LiveCallView>>, ApiError> {
    let calls = state.cluster.live_calls().await?;
    Ok(Json(calls.into_iter().map(Into::into).collect()))
}

/// A gateway instance sharing the store.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct InstanceView {
    name: String,
    /// Its heartbeat is recent (within three heartbeats).
    alive: bool,
    /// The instance answering this request.
    this: bool,
    draining: bool,
    sip_address: String,
    http_address: String,
    /// The version (digest) of its loaded dialplans.
    dialplan_version: String,
    /// Calls in its IVR at its last heartbeat.
    live_calls: i64,
    started_at: DateTime<Utc>,
    heartbeat_at: DateTime<Utc>,
}

impl From<InstanceStatus> for InstanceView {
    fn from(status: InstanceStatus) -> InstanceView {
        let row = status.row;
        InstanceView {
            name: row.name,
            alive: status.alive,
            this: status.this,
            draining: row.draining,
            sip_address: row.sip_address,
            http_address: row.http_address,
            dialplan_version: row.dialplan_version,
            live_calls: row.live_calls,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
        }
    }
}

/// The instances and whether their dialplans agree.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct InstancesView {
    /// False when alive instances run different dialplan versions (a
    /// reload that reached only some of them).
    dialplans_agree: bool,
    instances: Vec<InstanceView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/instances",
    tag = "calls",
    responses(
        (status = 200, description = "The gateway instances sharing this database (alive, and gone within the last day), with their dialplan versions", body = InstancesView),
        (status = 401, description = "No valid token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn instances(
    State(state): State<ApiState>,
    _staff: Staff,
) -> Result<Json<InstancesView>, ApiError> {
    let instances = state.cluster.instances().await?;
    let dialplans_agree = Cluster::versions(&instances).len() <= 1;
    Ok(Json(InstancesView {
        dialplans_agree,
        instances: instances.into_iter().map(Into::into).collect(),
    }))
}
