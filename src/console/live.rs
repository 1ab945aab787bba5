//! The calls in the IVR now, with the menu node each caller is in, on every
//! instance sharing the store (this one's as of now, the others' as of
//! their last heartbeat: [`Cluster`](crate::instances::Cluster)), and the
//! instances themselves, with a warning when their dialplans differ; the
//! page reloads itself every few seconds.

use super::clocks::countdown_text;
use super::page::{local_time, page};
use super::session::Session;
use super::ConsoleState;
use crate::instances::{Cluster, InstanceStatus};
use axum::extract::State;
use maud::{html, Markup};

/// How often the page reloads.
const REFRESH_SECS: u32 = 3;

pub(super) async fn show(State(state): State<ConsoleState>, session: Session) -> Markup {
    let now = state.store.now();
    let zone = state.store.sla().calendar().timezone();
    let (calls, instances) = match (
        state.cluster.live_calls().await,
        state.cluster.instances().await,
    ) {
        (Ok(calls), Ok(instances)) => (calls, instances),
        (Err(e), _) | (_, Err(e)) => {
            let body = html! { p.error { "The database did not answer: " (e) } };
            return page(
                "Live calls 在线呼叫",
                Some(&session),
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
        Some(&session),
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
