//! The calls in the IVR now, with the menu node each caller is in, on every
//! instance sharing the store (this one's as of now, the others' as of
//! their last heartbeat: [`Cluster`](crate::instances::Cluster)), the
//! instances themselves, with a warning when their dialplans differ, and
//! the outbound calls (queued, being placed, lately ended); the page
//! reloads itself every few seconds.

use super::clocks::countdown_text;
use super::page::{local_time, page};
use super::session::Session;
use super::ConsoleState;
use crate::instances::{Cluster, InstanceStatus};
use axum::extract::State;
use maud::{html, Markup};

/// How often the page reloads.
const REFRESH_SECS: u32 = 3;
/// Outbound calls listed, newest first.
const OUTBOUND_SHOWN: i64 = 30;

pub(super) async fn show(State(state): State<ConsoleState>, session: Session) -> Markup {
    let now = state.store.now();
    let zone = state.store.sla().calendar().timezone();
    let (calls, instances, outbound) = match (
        state.cluster.live_calls().await,
        state.cluster.instances().await,
        state.store.outbound_calls(None, OUTBOUND_SHOWN).await,
    ) {
        (Ok(calls), Ok(instances), Ok(outbound)) => (calls, instances, outbound),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            let body = html! { p.error { "The database did not answer: " (e) } };
            return page(
                "Live calls 在线呼叫",
                Some(session.navigation()),
                Some(REFRESH_SECS),
                body,
            );
        }
    };
    let versions = Cluster::versions(&instances);
    let alive: Vec<&InstanceStatus> = instances.iter().filter(|i| i.alive).collect();
    let body = html! {
        p.summary {
            "Calls in the IVR now: " (calls.len()) " on " (alive.len()) " instance(s)"
            " · refreshes every " (REFRESH_SECS) " s"
        }
        @if versions.len() > 1 {
            p.error {
                "Instances run different dialplans (" (versions.into_iter().collect::<Vec<_>>().join(", "))
                "): a reload reached only some of them. Reload the others (SIGHUP) or roll back."
            }
        }
        @if !calls.is_empty() {
            table.live {
                tr { th { "Caller" } th { "Dialled" } th { "Node" } th { "Since" } th { "For" } th { "Instance" } th { "Call-ID" } }
                @for call in &calls {
                    tr {
                        td { (call.caller) }
                        td { (call.dialled) }
                        td.node { (call.node.as_deref().unwrap_or("(starting)")) }
                        td { (local_time(call.since, zone)) }
                        td { (countdown_text(now, call.since).trim_start_matches("in ")) }
                        td.instance { (call.instance) }
                        td.call-id { (call.call_id) }
                    }
                }
            }
        }
        h2 { "Outbound calls 外呼" }
        @if outbound.is_empty() {
            p { "None queued." }
        } @else {
            table.outbound {
                tr { th { "#" } th { "Purpose" } th { "Ticket" } th { "Number" } th { "State" } th { "Attempts" } th { "Last" } th { "Next / outcome" } }
                @for call in &outbound {
                    tr {
                        td { (call.id) }
                        td { (call.purpose.code()) }
                        td {
                            @if let Some(number) = &call.ticket_number {
                                a href={ "/console/tickets/" (number) } { (number) }
                            }
                        }
                        td { (call.number) }
                        td { (call.state.code()) }
                        td { (call.attempts) }
                        td { (call.last_cause.as_deref().unwrap_or("-")) }
                        td {
                            @match &call.outcome {
                                Some(outcome) => (outcome),
                                None => (local_time(call.earliest_at, zone)),
                            }
                        }
                    }
                }
            }
        }
        h2 { "Instances" }
        table.instances {
            tr { th { "Instance" } th { "State" } th { "SIP" } th { "Dialplans" } th { "Calls" } th { "Last heartbeat" } }
            @for instance in &instances {
                tr {
                    td { (instance.row.name) @if instance.this { " (this)" } }
                    td { (state_of(instance)) }
                    td { (instance.row.sip_address) }
                    td { (instance.row.dialplan_version) }
                    td { (instance.row.live_calls) }
                    td { (local_time(instance.row.heartbeat_at, zone)) }
                }
            }
        }
    };
    page(
        "Live calls 在线呼叫",
        Some(session.navigation()),
        Some(REFRESH_SECS),
        body,
    )
}

fn state_of(instance: &InstanceStatus) -> &'static str {
    match (instance.alive, instance.row.draining) {
        (false, _) => "gone (no heartbeat)",
        (true, true) => "draining",
        (true, false) => "serving",
    }
}
