//! The ticket board: one column per status, each ticket a card with its
//! next SLA deadline counting down and breached tickets highlighted, with
//! the staff API's list filters (level, category, channel, breached, text,
//! phone). Each column is loaded on its own, so a flood of new tickets
//! never pushes older work in other states off the board.

use super::clocks::{clocks, countdown_text, next_deadline};
use super::page::{local_time, page, ConsoleError};
use super::session::Session;
use super::ConsoleState;
use crate::tickets::model::{Channel, CustomerLevel, Status};
use crate::tickets::store::{Ticket, TicketQuery};
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup};
use serde::Deserialize;
use std::str::FromStr;

/// The most tickets one column shows, newest first.
const COLUMN_LIMIT: i64 = 200;
/// How much of a description a card shows.
const SNIPPET_CHARS: usize = 80;

/// The board's filters as the form sends them (empty means any).
#[derive(Debug, Default, Deserialize)]
pub(super) struct BoardFilter {
    #[serde(default)]
    level: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    breached: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    phone: String,
}

/// A vocabulary code from the filter form; empty is none.
fn code<T>(field: &str, value: &str) -> Result<Option<T>, ConsoleError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|e: T::Err| ConsoleError::bad_request(format!("{field}: {e}")))
}

fn text(value: &str) -> Option<String> {
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

impl BoardFilter {
    /// The query for one column.
    fn query(&self, status: Status) -> Result<TicketQuery, ConsoleError> {
        Ok(TicketQuery {
            level: code("level", &self.level)?,
            category: text(&self.category),
            channel: code("channel", &self.channel)?,
            breached: match self.breached.as_str() {
                "" | "false" => false,
                "true" => true,
                other => {
                    return Err(ConsoleError::bad_request(format!(
                        "breached: {other:?} is not true or false"
                    )))
                }
            },
            text: text(&self.q),
            contact_phone: text(&self.phone),
            status: Some(status),
            limit: Some(COLUMN_LIMIT),
            ..TicketQuery::default()
        })
    }
}

pub(super) async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Query(filter): Query<BoardFilter>,
) -> Result<Markup, ConsoleError> {
    let mut columns = Vec::with_capacity(Status::ALL.len());
    for status in Status::ALL {
        let tickets = state.store.list_tickets(&filter.query(*status)?).await?;
        columns.push((*status, tickets));
    }
    let shown: usize = columns.iter().map(|(_, tickets)| tickets.len()).sum();
    let now = state.store.now();
    let zone = state.store.sla().calendar().timezone();
    let categories = state.store.sla().categories();
    let body = html! {
        (filter_form(&filter, &categories))
        p.summary { "Tickets shown: " (shown) }
        div.board {
            @for (status, column) in &columns {
                section.column data-status=(status.code()) {
                    h2 { (status.chinese_name()) " " span.code { (status.code()) } " " span.count { (column.len()) } }
                    @if column.len() as i64 == COLUMN_LIMIT {
                        p.capped { "the newest " (COLUMN_LIMIT) "; filter to see others" }
                    }
                    @for ticket in column {
                        (card(ticket, now, zone))
                    }
                }
            }
        }
    };
    Ok(page("Tickets 工单", Some(session.navigation()), None, body))
}

fn filter_form(filter: &BoardFilter, categories: &[&str]) -> Markup {
    html! {
        form.filters method="get" action="/console/board" {
            label { "Level "
                select name="level" {
                    option value="" { "any" }
                    @for level in CustomerLevel::ALL {
                        option value=(level.code()) selected[filter.level == level.code()] { (level.chinese_name()) }
                    }
                }
            }
            label { "Category "
                select name="category" {
                    option value="" { "any" }
                    @for category in categories {
                        option value=(category) selected[filter.category == *category] { (category) }
                    }
                }
            }
            label { "Channel "
                select name="channel" {
                    option value="" { "any" }
                    @for channel in Channel::ALL {
                        option value=(channel.code()) selected[filter.channel == channel.code()] { (channel.chinese_name()) }
                    }
                }
            }
            label { input type="checkbox" name="breached" value="true" checked[filter.breached == "true"]; " breached" }
            label { "Text " input type="search" name="q" value=(filter.q); }
            label { "Phone " input type="search" name="phone" value=(filter.phone); }
            button type="submit" { "Filter" }
            a href="/console/board" { "Clear" }
        }
    }
}

fn card(ticket: &Ticket, now: DateTime<Utc>, zone: Tz) -> Markup {
    let clocks = clocks(ticket, now);
    let breached = clocks.iter().any(|c| c.breached);
    let next = next_deadline(&clocks);
    let snippet: String = ticket.description.chars().take(SNIPPET_CHARS).collect();
    html! {
        article.card.breached[breached] data-number=(ticket.number) {
            header {
                a.number href={ "/console/tickets/" (ticket.number) } { (ticket.number) }
                span.level { (ticket.level.chinese_name()) }
            }
            div.kind { (ticket.ticket_type.chinese_name()) " · " (ticket.category) " · " (ticket.channel.chinese_name()) }
            p.description { (snippet) @if snippet.len() < ticket.description.len() { "…" } }
            @if let Some(assignee) = &ticket.assignee {
                div.assignee { "→ " (assignee) }
            }
            @if let Some(next) = next {
                div.deadline {
                    (next.clock.chinese_name()) " "
                    time.countdown datetime=(next.due.to_rfc3339()) title=(local_time(next.due, zone)) {
                        (countdown_text(next.due, now))
                    }
                }
            } @else if breached {
                div.deadline { "SLA breached" }
            }
        }
    }
}
