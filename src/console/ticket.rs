//! The ticket page: details, SLA clocks, the texts queued to the customer,
//! the whole timeline (history events, calls with their menu paths, texts
//! both ways, notifications) and the actions as forms. Actions go through
//! the same store calls as the staff API (`transition`, `assign`,
//! `add_note`), so the customer's text is queued in the same transaction,
//! and answer with a redirect back to the page (post/redirect/get).

use super::clocks::{clocks, countdown_text};
use super::page::{local_time, page, ConsoleError};
use super::session::{CsrfForm, Session};
use super::ConsoleState;
use crate::api::may_assign;
use crate::tickets::lifecycle::{allowed_actions, Action};
use crate::tickets::model::{Actor, StaffRole};
use crate::tickets::store::{
    Notification, StoreError, StoredCall, StoredRecording, StoredSms, Ticket, TicketEvent,
};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup};
use serde::Deserialize;

pub(super) async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Path(number): Path<String>,
) -> Result<Markup, ConsoleError> {
    let store = &state.store;
    let ticket = store
        .ticket(&number)
        .await?
        .ok_or(StoreError::TicketNotFound(number))?;
    let events = store.events(ticket.id).await?;
    let calls = store.calls_of_ticket(ticket.id).await?;
    let texts = store.texts_of_ticket(ticket.id).await?;
    let notifications = store.notifications(ticket.id).await?;
    let recordings = store.ticket_recordings(ticket.id).await?;
    let zone = store.sla().calendar().timezone();
    let now = store.now();
    let body = html! {
        div.ticket-page {
            section.details { (details(&ticket, zone)) }
            section.clocks { h2 { "SLA 时限" } (clock_table(&ticket, now, zone)) }
            section.actions { h2 { "Actions 操作" } (actions(&ticket, &session)) }
            @if !recordings.is_empty() {
                section #recordings.recordings {
                    h2 { "Recordings 录音" }
                    (recording_list(&recordings, zone))
                }
            }
            section #outbox.outbox {
                h2 { "Texts to the customer 短信通知" }
                (outbox(&notifications, zone))
            }
            section.timeline {
                h2 { "Timeline 处理记录" }
                (timeline(&events, &calls, &texts, &notifications, zone))
            }
        }
    };
    let title = format!("Ticket {}", ticket.number);
    Ok(page(&title, Some(session.navigation()), None, body))
}

/// The ticket's recordings, each with a player (the audio is fetched only
/// when played, and each play is on the timeline).
fn recording_list(recordings: &[StoredRecording], zone: Tz) -> Markup {
    html! {
        ul {
            @for recording in recordings {
                li.recording data-id=(recording.id) {
                    span.when { (local_time(recording.created_at, zone)) }
                    " "
                    span.length { (format!("{:.1} s", recording.duration_ms as f64 / 1000.0)) }
                    " "
                    @match recording.purged_at {
                        Some(purged) => span.purged { "audio deleted by retention " (local_time(purged, zone)) },
                        None => audio controls preload="none"
                            src=(format!("/console/recordings/{}", recording.token)) {},
                    }
                }
            }
        }
    }
}

/// Plays a recording for a logged-in staff member (see
/// `api::serve_audio`: range requests, each play on the timeline).
pub(super) async fn recording(
    State(state): State<ConsoleState>,
    session: Session,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    crate::api::serve_audio(
        &state.recordings,
        &token,
        Actor::staff(&session.name),
        request,
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

fn details(ticket: &Ticket, zone: Tz) -> Markup {
    html! {
        dl {
            dt { "Status" } dd.status data-status=(ticket.status.code()) { (ticket.status.chinese_name()) " (" (ticket.status.code()) ")" }
            dt { "Type" } dd { (ticket.ticket_type.chinese_name()) }
            dt { "Category" } dd { (ticket.category) }
            dt { "Level" } dd { (ticket.level.chinese_name()) }
            dt { "Channel" } dd { (ticket.channel.chinese_name()) }
            dt { "Contact" } dd { (ticket.contact_phone.as_deref().unwrap_or("none known 无联系电话")) }
            @if let Some(service) = &ticket.service_number {
                dt { "Service number" } dd { (service) }
            }
            dt { "Queue" } dd { (ticket.queue) }
            dt { "Assignee" } dd { (ticket.assignee.as_deref().unwrap_or("—")) }
            dt { "Created" } dd { (local_time(ticket.created_at, zone)) }
            dt { "Version" } dd { (ticket.version) }
            dt { "Description" } dd.description { (ticket.description) }
        }
    }
}

fn clock_table(ticket: &Ticket, now: DateTime<Utc>, zone: Tz) -> Markup {
    let clocks = clocks(ticket, now);
    html! {
        @if clocks.is_empty() {
            p { "No SLA clock applies." }
        } @else {
            table {
                tr { th { "Clock" } th { "Due" } th { "Met" } th { "" } }
                @for c in &clocks {
                    tr.breached[c.breached] {
                        td { (c.clock.chinese_name()) " " span.code { (c.clock.code()) } }
                        td { (local_time(c.due, zone)) }
                        td { @if let Some(met) = c.met { (local_time(met, zone)) } @else { "—" } }
                        td {
                            @if c.running {
                                time.countdown datetime=(c.due.to_rfc3339()) { (countdown_text(c.due, now)) }
                            } @else if c.breached {
                                "breached"
                            } @else if c.met.is_some() {
                                "met"
                            }
                        }
                    }
                }
            }
        }
    }
}

fn actions(ticket: &Ticket, session: &Session) -> Markup {
    let number = ticket.number.to_string();
    let allowed = allowed_actions(ticket.status);
    html! {
        @if !allowed.is_empty() {
            form.transition method="post" action={ "/console/tickets/" (number) "/transition" } {
                (session.csrf_field())
                input type="hidden" name="version" value=(ticket.version);
                label { "Note (optional) " input type="text" name="note" maxlength="4000"; }
                @for action in &allowed {
                    button type="submit" name="action" value=(action.code()) { (action_label(*action)) }
                }
            }
        }
        form.note method="post" action={ "/console/tickets/" (number) "/note" } {
            (session.csrf_field())
            label { "Note 备注 " textarea name="text" rows="2" maxlength="4000" required {} }
            button type="submit" { "Add note" }
        }
        form.assign method="post" action={ "/console/tickets/" (number) "/assign" } {
            (session.csrf_field())
            input type="hidden" name="version" value=(ticket.version);
            @if session.role >= StaffRole::Supervisor {
                label { "Assignee " input type="text" name="assignee" value=(ticket.assignee.as_deref().unwrap_or("")); }
                label { "Queue " input type="text" name="queue" value=(ticket.queue); }
                button type="submit" { "Assign" }
            } @else {
                input type="hidden" name="assignee" value=(session.name);
                button type="submit" { "Assign to me 我来处理" }
            }
        }
    }
}

fn action_label(action: Action) -> &'static str {
    match action {
        Action::Dispatch => "Dispatch 派单",
        Action::Accept => "Accept 接单",
        Action::Start => "Start 开始处理",
        Action::Resolve => "Resolve 修复",
        Action::Confirm => "Confirm 确认",
        Action::Close => "Close 关闭",
        Action::Reopen => "Reopen 重新处理",
        Action::Cancel => "Cancel 取消",
    }
}

fn outbox(notifications: &[Notification], zone: Tz) -> Markup {
    html! {
        @if notifications.is_empty() {
            p { "None: the contact cannot receive texts, or nothing was sent yet." }
        } @else {
            table {
                tr { th { "Queued" } th { "Kind" } th { "To" } th { "Status" } th { "Text" } }
                @for n in notifications {
                    tr.notification data-kind=(n.kind) data-status=(n.status.code()) {
                        td { (local_time(n.created_at, zone)) }
                        td { (n.kind) }
                        td { (n.recipient) }
                        td { (n.status.code()) @if let Some(error) = &n.last_error { " (" (error) ")" } }
                        td.body { (n.body) }
                    }
                }
            }
        }
    }
}

/// One line of the timeline.
struct Entry {
    at: DateTime<Utc>,
    kind: &'static str,
    markup: Markup,
}

fn timeline(
    events: &[TicketEvent],
    calls: &[StoredCall],
    texts: &[StoredSms],
    notifications: &[Notification],
    zone: Tz,
) -> Markup {
    let mut entries: Vec<Entry> = Vec::new();
    entries.extend(events.iter().map(|e| Entry {
        at: e.at,
        kind: "event",
        markup: html! {
            strong { (e.kind) }
            @if let (Some(from), Some(to)) = (e.from_status, e.to_status) {
                " " (from.code()) " → " (to.code())
            }
            " by " (e.actor.kind.code()) ":" (e.actor.id)
            @if !e.detail.is_empty() { div.detail { (e.detail) } }
        },
    }));
    entries.extend(calls.iter().map(|c| Entry {
        at: c.offered_at,
        kind: "call",
        markup: html! {
            strong { "call" } " from " (c.caller) " to " (c.dialled)
            @if let Some(disposition) = &c.disposition { ", " (disposition) }
            ol.menu-path {
                @for step in &c.menu_path {
                    li { span.node { (step.node) } " " (step.event) }
                }
            }
        },
    }));
    entries.extend(texts.iter().map(|t| Entry {
        at: t.created_at,
        kind: if t.direction == "in" { "sms-in" } else { "sms-out" },
        markup: html! {
            strong { "SMS " (if t.direction == "in" { "from " } else { "to " }) (if t.direction == "in" { &t.from } else { &t.to }) }
            div.detail { (t.body) }
        },
    }));
    entries.extend(notifications.iter().map(|n| Entry {
        at: n.created_at,
        kind: "notification",
        markup: html! {
            strong { "SMS queued to " (n.recipient) } " (" (n.kind) ", " (n.status.code()) ")"
            div.detail { (n.body) }
        },
    }));
    entries.sort_by_key(|e| e.at);
    html! {
        ol.timeline {
            @for entry in &entries {
                li class=(entry.kind) {
                    time { (local_time(entry.at, zone)) }
                    " " (entry.markup)
                }
            }
        }
    }
}

/// A lifecycle action from the ticket page.
#[derive(Deserialize)]
pub(super) struct TransitionForm {
    action: String,
    version: Option<i64>,
    #[serde(default)]
    note: String,
}

pub(super) async fn transition(
    State(state): State<ConsoleState>,
    Path(number): Path<String>,
    CsrfForm { session, form }: CsrfForm<TransitionForm>,
) -> Result<Redirect, ConsoleError> {
    let action: Action = form
        .action
        .parse()
        .map_err(|e: String| ConsoleError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let note = Some(form.note.trim().to_string()).filter(|n| !n.is_empty());
    let ticket = state
        .store
        .transition(&number, action, actor(&session), form.version, note)
        .await?;
    Ok(back_to(&ticket))
}

/// A note from the ticket page.
#[derive(Deserialize)]
pub(super) struct NoteForm {
    #[serde(default)]
    text: String,
}

pub(super) async fn note(
    State(state): State<ConsoleState>,
    Path(number): Path<String>,
    CsrfForm { session, form }: CsrfForm<NoteForm>,
) -> Result<Redirect, ConsoleError> {
    state
        .store
        .add_note(&number, actor(&session), form.text)
        .await?;
    Ok(Redirect::to(&format!("/console/tickets/{number}")))
}

/// An assignment from the ticket page; empty fields are not changed.
#[derive(Deserialize)]
pub(super) struct AssignForm {
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    queue: String,
    version: Option<i64>,
}

pub(super) async fn assign(
    State(state): State<ConsoleState>,
    Path(number): Path<String>,
    CsrfForm { session, form }: CsrfForm<AssignForm>,
) -> Result<Redirect, ConsoleError> {
    let assignee = Some(form.assignee.trim().to_string()).filter(|a| !a.is_empty());
    let queue = Some(form.queue.trim().to_string()).filter(|q| !q.is_empty());
    // The ticket's current queue sent back unchanged is no queue change.
    let current = state
        .store
        .ticket(&number)
        .await?
        .ok_or_else(|| StoreError::TicketNotFound(number.clone()))?;
    let queue = queue.filter(|q| *q != current.queue);
    if assignee.is_none() && queue.is_none() {
        return Err(ConsoleError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give an assignee or a new queue",
        ));
    }
    if !may_assign(
        &session.name,
        session.role,
        assignee.as_deref(),
        queue.as_deref(),
    ) {
        return Err(ConsoleError::forbidden(format!(
            "agents may assign tickets only to themselves ({}), without changing the queue",
            session.name
        )));
    }
    let ticket = state
        .store
        .assign(&number, assignee, queue, actor(&session), form.version)
        .await?;
    Ok(back_to(&ticket))
}

fn actor(session: &Session) -> crate::tickets::model::Actor {
    crate::tickets::model::Actor::staff(&session.name)
}

fn back_to(ticket: &Ticket) -> Redirect {
    Redirect::to(&format!("/console/tickets/{}", ticket.number))
}
