//! `dialplan simulate`: runs a dialplan without SIP or audio, against a
//! real store, and writes down what the caller would hear and what
//! happened, line by line.
//!
//! Keys come in groups (`"9,13800138000#,1"`): each group is pressed when
//! the engine next waits for the caller, after the prompt before it has
//! played in full. When no group is left and the engine waits, its timer
//! fires (the caller stays silent), so every timeout path can be driven.
//! A script may also carry what a transferred call's INVITE would (a
//! ticket number, Referred-By): the ticket is looked up in the store as
//! for a live call.

use super::dialplan::Dialplan;
use super::engine::{CallInfo, Engine, Input, Output};
use super::speech::Utterance;
use super::store_bridge;
use super::transferred::TransferContext;
use crate::tickets::calendar::BusinessCalendar;
use crate::tickets::store::Store;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::Arc;

/// Engine steps before the simulation gives up (a plan that never ends).
const MAX_STEPS: usize = 10_000;

/// What the simulated caller does.
pub struct Script {
    pub caller: String,
    pub dialled: String,
    pub keys: Vec<String>,
    pub now: DateTime<Utc>,
    /// What the INVITE of a transferred call says (default: nothing).
    pub transfer: TransferContext,
}

/// Runs `plan` from `entry` and returns the transcript.
pub async fn simulate(
    plan: Arc<Dialplan>,
    entry: &str,
    script: Script,
    store: &Store,
    calendar: Arc<BusinessCalendar>,
) -> Vec<String> {
    let customer = store
        .customer_by_phone(&script.caller)
        .await
        .ok()
        .flatten()
        .map(|c| (c.name, c.level));
    let mut lines = vec![match &customer {
        Some((name, level)) => format!(
            "caller {} ({name}, {level}) dials {}",
            script.caller, script.dialled
        ),
        None => format!(
            "caller {} (not on file) dials {}",
            script.caller, script.dialled
        ),
    }];
    let transferred = store_bridge::arrival(store, &script.transfer).await;
    if script.transfer.is_transfer() {
        lines.push(format!(
            "transferred in by {} with ticket {}",
            script.transfer.referred_by.as_deref().unwrap_or("-"),
            script.transfer.ticket
        ));
    }
    let info = CallInfo {
        caller: script.caller.clone(),
        dialled: script.dialled.clone(),
        customer,
        transferred,
    };
    let mut engine = Engine::new(plan, entry, info, calendar);
    let mut keys: VecDeque<String> = script.keys.into_iter().collect();
    let mut inputs: VecDeque<Input> = VecDeque::from([Input::Start]);
    let now = script.now;
    // The timer the engine is waiting on, acted on only once every input
    // before it has been handled (a collect restarts its timer per digit).
    let mut waiting: Option<(u64, std::time::Duration)> = None;
    for _ in 0..MAX_STEPS {
        let Some(input) = inputs.pop_front() else {
            if engine.is_finished() {
                break;
            }
            let Some((id, after)) = waiting.take() else {
                break;
            };
            match keys.pop_front() {
                Some(group) => {
                    lines.push(format!("presses: {group}"));
                    inputs.extend(group.chars().map(Input::Key));
                }
                None => {
                    lines.push(format!("stays silent ({} s)", after.as_secs()));
                    inputs.push_back(Input::Timer(id));
                }
            }
            continue;
        };
        engine.handle(input, now);
        while let Some(output) = engine.poll_output() {
            match output {
                Output::Play { items, .. } => {
                    let heard: Vec<String> = items
                        .iter()
                        .map(|u| match u {
                            Utterance::Prompt(name) => name.clone(),
                            Utterance::Silence(d) => format!("(silence {} ms)", d.as_millis()),
                        })
                        .collect();
                    lines.push(format!("hears: {}", heard.join(" ")));
                    inputs.push_back(Input::PlaybackDone);
                }
                Output::StopPlayback => {}
                Output::StartTimer { id, after } => waiting = Some((id, after)),
                Output::Store(request) => {
                    let reply = store_bridge::execute(store, request.clone()).await;
                    lines.push(format!("store: {request:?} → {reply:?}"));
                    inputs.push_back(Input::Store(reply));
                }
                Output::Transfer { target } => {
                    lines.push(format!("transfer to {target} (not available here: fails)"));
                    inputs.push_back(Input::TransferFailed);
                }
                Output::Hangup { reason } => {
                    lines.push(format!("hangs up ({reason})"));
                }
            }
        }
    }
    if !engine.is_finished() {
        lines.push("still in the dialplan when the simulation stopped".to_string());
    }
    let path: Vec<String> = engine
        .path()
        .iter()
        .map(|step| format!("{}: {}", step.node, step.event))
        .collect();
    lines.push(format!("path: {}", path.join(" | ")));
    lines
}
