//! The dashboard: the centre's indicators (`Store::indicators`) over the
//! last day, week or month as figures and inline SVG charts: calls per
//! hour (per day beyond two days), IVR containment, tickets by channel and
//! category, SLA compliance per clock, abandonment by menu node and survey
//! scores. Supervisors and admins only, like the indicators API.

use super::charts::{bars, paired_columns, percent, ring, shares, Pair, Share};
use super::page::{page, ConsoleError};
use super::session::Session;
use super::ConsoleState;
use crate::tickets::model::{Channel, StaffRole};
use crate::tickets::store::{HourCount, Indicators, KeyCount};
use axum::extract::{Query, State};
use chrono::Duration;
use chrono_tz::Tz;
use maud::{html, Markup};
use serde::Deserialize;

/// The ranges offered: query value, length, label.
const RANGES: [(&str, i64, &str); 3] = [
    ("24h", 24, "Last 24 hours"),
    ("7d", 24 * 7, "Last 7 days"),
    ("30d", 24 * 30, "Last 30 days"),
];
/// Up to this many hours the calls chart has a column per hour.
const HOURLY_UP_TO: usize = 48;

#[derive(Debug, Default, Deserialize)]
pub(super) struct DashboardQuery {
    #[serde(default)]
    range: String,
}

pub(super) async fn show(
    State(state): State<ConsoleState>,
    session: Session,
    Query(query): Query<DashboardQuery>,
) -> Result<Markup, ConsoleError> {
    session.require(StaffRole::Supervisor)?;
    let wanted = if query.range.is_empty() {
        "24h"
    } else {
        query.range.as_str()
    };
    let &(code, hours, label) = RANGES
        .iter()
        .find(|(code, _, _)| *code == wanted)
        .ok_or_else(|| {
            ConsoleError::bad_request(format!("range: {wanted:?} is not one of 24h, 7d, 30d"))
        })?;
    let to = state.store.now();
    let indicators = state
        .store
        .indicators(to - Duration::hours(hours), to)
        .await?;
    let zone = state.store.sla().calendar().timezone();
    let body = html! {
        form.filters method="get" action="/console/dashboard" {
            label { "Range "
                select name="range" {
                    @for (value, _, text) in RANGES {
                        option value=(value) selected[value == code] { (text) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        (figures(&indicators))
        div.charts { (charts(&indicators, zone)) }
    };
    Ok(page(
        &format!("Dashboard 指标 · {label}"),
        Some(session.navigation()),
        None,
        body,
    ))
}

fn figures(ind: &Indicators) -> Markup {
    let calls = &ind.calls;
    html! {
        div.figures {
            div.figure { strong { (calls.offered) } "calls offered" }
            div.figure { strong { (calls.answered) } "answered" }
            div.figure { strong { (percent(calls.containment_rate)) } "contained in the IVR" }
            div.figure { strong { (calls.transferred) } "transferred" }
            div.figure { strong { (calls.abandoned) } "abandoned" }
            div.figure { strong { (ind.tickets.created) } "tickets created" }
            div.figure {
                strong { (ind.survey.mean_score.map_or_else(|| "—".to_string(), |m| format!("{m:.2}"))) }
                "survey mean (" (ind.survey.responses) ")"
            }
        }
    }
}

fn charts(ind: &Indicators, zone: Tz) -> Markup {
    let calls = &ind.calls;
    let sla: Vec<Share> = ind
        .sla
        .iter()
        .map(|c| Share {
            label: c.clock.clone(),
            met: c.met,
            breached: c.breached,
        })
        .collect();
    let channels: Vec<(String, u64)> = ind
        .tickets
        .by_channel
        .iter()
        .map(|k| (channel_name(&k.key), k.count))
        .collect();
    let abandoned: Vec<(String, u64)> = calls
        .abandoned_by_node
        .iter()
        .map(|n| {
            let node = if n.node.is_empty() {
                "(before the menu)"
            } else {
                &n.node
            };
            (node.to_string(), n.count)
        })
        .collect();
    let scores: Vec<(String, u64)> = ind
        .survey
        .by_score
        .iter()
        .map(|s| (s.score.to_string(), s.count))
        .collect();
    html! {
        section.chart #calls-per-hour {
            h2 { "Calls 呼叫量" }
            (paired_columns("Calls offered and answered", &call_points(&calls.per_hour, zone),
                ("offered", "answered"), ("offered", "answered")))
        }
        section.chart #containment {
            h2 { "IVR containment 自助完成率" }
            (ring("Containment", calls.containment_rate))
            p { (calls.contained) " of " (calls.answered) " answered calls were served by the IVR \
                alone (no transfer tried, not cut off); " (calls.transferred) " transferred" }
        }
        section.chart #tickets-by-channel {
            h2 { "Tickets by channel 渠道" }
            (bars("Tickets by channel", &channels))
        }
        section.chart #tickets-by-category {
            h2 { "Tickets by category 产品类别" }
            (bars("Tickets by category", &key_counts(&ind.tickets.by_category)))
        }
        section.chart #sla-compliance {
            h2 { "SLA compliance 时限达标率" }
            (shares("SLA compliance per clock", &sla))
            @for clock in ind.sla.iter().filter(|c| c.waited_for_calling_window > 0) {
                p.waited { (clock.waited_for_calling_window)
                    " tickets' calls waited for the calling window; "
                    (clock.breached_after_waiting) " of them breached the " (clock.clock) " clock" }
            }
        }
        section.chart #abandoned {
            h2 { "Abandoned by menu node 放弃呼叫" }
            @if abandoned.is_empty() { p { "No abandoned calls." } } @else { (bars("Abandoned calls by node", &abandoned)) }
        }
        section.chart #survey {
            h2 { "Survey scores 满意度" }
            (bars("Survey scores", &scores))
        }
    }
}

/// Hourly columns (local hour) for up to two days, daily (local date)
/// beyond.
fn call_points(per_hour: &[HourCount], zone: Tz) -> Vec<Pair> {
    let hourly = per_hour.len() <= HOURLY_UP_TO;
    let mut points: Vec<Pair> = Vec::new();
    for hour in per_hour {
        let local = hour.hour.with_timezone(&zone);
        let label = if hourly {
            local.format("%H").to_string()
        } else {
            local.format("%m-%d").to_string()
        };
        match points.last_mut() {
            Some(last) if !hourly && last.label == label => {
                last.first += hour.offered;
                last.second += hour.answered;
            }
            _ => points.push(Pair {
                label,
                first: hour.offered,
                second: hour.answered,
            }),
        }
    }
    points
}

fn channel_name(code: &str) -> String {
    code.parse::<Channel>().map_or_else(
        |_| code.to_string(),
        |c| format!("{} {code}", c.chinese_name()),
    )
}

fn key_counts(counts: &[KeyCount]) -> Vec<(String, u64)> {
    counts.iter().map(|k| (k.key.clone(), k.count)).collect()
}
