//! The calls in the IVR now, with the menu node each caller is in, from
//! the runner's [`LiveCalls`](crate::ivr::runner::LiveCalls) snapshot; the
//! page reloads itself every few seconds. Per gateway, like the API's.

use super::clocks::countdown_text;
use super::page::{local_time, page};
use super::session::Session;
use super::ConsoleState;
use axum::extract::State;
use maud::{html, Markup};

/// How often the page reloads.
const REFRESH_SECS: u32 = 3;

pub(super) async fn show(State(state): State<ConsoleState>, session: Session) -> Markup {
    let calls = state.live_calls.snapshot();
    let now = state.store.now();
    let zone = state.store.sla().calendar().timezone();
    let body = html! {
        p.summary { "Calls in the IVR now: " (calls.len()) " · refreshes every " (REFRESH_SECS) " s" }
        @if !calls.is_empty() {
            table.live {
                tr { th { "Caller" } th { "Dialled" } th { "Node" } th { "Since" } th { "For" } th { "Call-ID" } }
                @for call in &calls {
                    tr {
                        td { (call.caller) }
                        td { (call.dialled) }
                        td.node { (call.node.as_deref().unwrap_or("(starting)")) }
                        td { (local_time(call.since, zone)) }
                        td { (countdown_text(now, call.since).trim_start_matches("in ")) }
                        td.call-id { (call.call_id) }
                    }
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
