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
//! for a live call. Transfers to agents fail (nobody answers a
//! simulation), as the script says: busy, or unavailable.
//!
//! The call keeps a clock: prompts take as long as their WAVs play,
//! pauses their length, each key `key_interval`, a silent caller the
//! engine's timeout. When the clock reaches the call's time limit
//! (`calls.max_duration_secs`), the call ends as a live one would: the
//! engine stops, the caller hears the time-limit prompt and is hung up on.

use super::dialplan::Dialplan;
use super::engine::{CallInfo, Engine, Input, Output, StoreReply, StoreRequest, TransferFailure};
use super::speech::Utterance;
use super::store_bridge;
use super::transferred::TransferContext;
use crate::media::prompt::PromptLibrary;
use crate::media::recorder::RecordEnd;
use crate::phone::PhoneNumber;
use crate::tickets::calendar::BusinessCalendar;
use crate::tickets::store::Store;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// What a simulated caller says at a `record` node.
const SIMULATED_SPEECH: Duration = Duration::from_secs(5);

/// Engine steps before the simulation gives up (a plan that never ends).
const MAX_STEPS: usize = 10_000;

/// What the simulated caller does.
pub struct Script {
    /// The From user part (`13800138000`, `anonymous`, `sipp`, `8001`).
    pub caller: String,
    /// The number a trusted P-Asserted-Identity gives, if any.
    pub asserted: Option<String>,
    pub dialled: String,
    pub keys: Vec<String>,
    pub now: DateTime<Utc>,
    /// What the INVITE of a transferred call says (default: nothing).
    pub transfer: TransferContext,
    /// The call's time limit (`calls.max_duration_secs`).
    pub limit: Duration,
    /// The prompt heard at the limit (`calls.time_limit_prompt`); empty:
    /// none.
    pub time_limit_prompt: String,
    /// How long the caller takes per key.
    pub key_interval: Duration,
    /// How transfers to agents fail here.
    pub transfers: TransferFailure,
    /// Bridged calls are recorded (`recordings.bridged_calls`): the plan
    /// sees `recording.calls` = `on`.
    pub recorded_calls: bool,
    /// IVR legs are recorded (`recordings.ivr_calls`): this notice plays
    /// before the first node.
    pub ivr_notice: Option<String>,
}

impl Script {
    /// A script with the gateway's defaults for the limit (half an hour),
    /// its prompt, a quarter second per key, and transfers that cannot be
    /// made (no targets here).
    pub fn new(caller: &str, dialled: &str, keys: Vec<String>, now: DateTime<Utc>) -> Script {
        let defaults = crate::config::CallsConfig::default();
        Script {
            caller: caller.to_string(),
            asserted: None,
            dialled: dialled.to_string(),
            keys,
            now,
            transfer: TransferContext::default(),
            limit: Duration::from_secs(defaults.max_duration_secs),
            time_limit_prompt: defaults.time_limit_prompt,
            key_interval: Duration::from_millis(250),
            transfers: TransferFailure::Unavailable,
            recorded_calls: false,
            ivr_notice: None,
        }
    }
}

/// Runs `plan` from `entry` and returns the transcript. `prompts` gives
/// each prompt's length (a missing one counts as nothing, as a live call
/// skips it).
pub async fn simulate(
    plan: Arc<Dialplan>,
    entry: &str,
    script: Script,
    store: &Store,
    calendar: Arc<BusinessCalendar>,
    prompts: &PromptLibrary,
) -> Vec<String> {
    let contact = script
        .asserted
        .as_deref()
        .or(Some(script.caller.as_str()))
        .and_then(|number| PhoneNumber::contact(number).ok());
    let customer = match &contact {
        Some(phone) => store
            .customer_by_phone(phone.as_str())
            .await
            .ok()
            .flatten()
            .map(|c| (c.name, c.level)),
        None => None,
    };
    let who = match (&contact, script.asserted.is_some()) {
        (Some(phone), true) => format!("{} (asserted {phone})", script.caller),
        (Some(_), false) => script.caller.clone(),
        (None, _) => format!("{} (number unknown)", script.caller),
    };
    let mut lines = vec![match &customer {
        Some((name, level)) => format!("caller {who} ({name}, {level}) dials {}", script.dialled),
        None => format!("caller {who} (not on file) dials {}", script.dialled),
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
        contact,
        dialled: script.dialled.clone(),
        customer,
        transferred,
    };
    let mut engine = Engine::new(plan, entry, info, calendar);
    engine.set_variable(
        "recording.calls",
        if script.recorded_calls { "on" } else { "off" },
    );
    if let Some(notice) = &script.ivr_notice {
        engine.play_first(notice);
    }
    let mut keys: VecDeque<String> = script.keys.into_iter().collect();
    let mut inputs: VecDeque<Input> = VecDeque::from([Input::Start]);
    let now = script.now;
    let mut clock = Duration::ZERO;
    let mut limited = false;
    // The timer the engine is waiting on, acted on only once every input
    // before it has been handled (a collect restarts its timer per digit).
    let mut waiting: Option<(u64, Duration)> = None;
    for _ in 0..MAX_STEPS {
        if clock >= script.limit {
            limited = true;
            lines.push(format!(
                "time limit reached at {:.1} s (calls.max_duration_secs)",
                script.limit.as_secs_f64()
            ));
            engine.handle(Input::TimeLimit, now);
            if !script.time_limit_prompt.is_empty() {
                let name = format!("{}/{}", engine.language().code(), script.time_limit_prompt);
                lines.push(format!("hears: {name}"));
            }
            lines.push("hangs up (time_limit)".to_string());
            break;
        }
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
                    clock += script.key_interval * group.chars().count() as u32;
                    inputs.extend(group.chars().map(Input::Key));
                }
                None => {
                    lines.push(format!("stays silent ({} s)", after.as_secs()));
                    clock += after;
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
                    clock += items
                        .iter()
                        .map(|u| match u {
                            Utterance::Prompt(name) => {
                                prompts.get(name).map_or(Duration::ZERO, |p| p.duration())
                            }
                            Utterance::Silence(d) => *d,
                        })
                        .sum::<Duration>();
                    inputs.push_back(Input::PlaybackDone);
                }
                Output::StopPlayback => {}
                Output::StartTimer { id, after } => waiting = Some((id, after)),
                Output::StartRecording(spec) => {
                    lines.push(format!(
                        "records (simulated: speaks {} s, then is silent)",
                        SIMULATED_SPEECH.as_secs()
                    ));
                    clock += SIMULATED_SPEECH + spec.silence;
                    inputs.push_back(Input::Recorded {
                        end: RecordEnd::Silence,
                        duration: SIMULATED_SPEECH,
                        heard_speech: true,
                    });
                }
                // A simulated caller presses keys; it never speaks to a
                // listening menu.
                Output::StopRecording | Output::Listen(_) | Output::StopListening => {}
                Output::Store(StoreRequest::SaveRecording { number }) => {
                    lines.push(format!(
                        "keeps the recording (simulated, ticket {number:?})"
                    ));
                    inputs.push_back(Input::Store(StoreReply::Saved {
                        id: "simulated".into(),
                    }));
                }
                Output::Store(request) => {
                    let reply = store_bridge::execute(store, request.clone()).await;
                    lines.push(format!("store: {request:?} → {reply:?}"));
                    inputs.push_back(Input::Store(reply));
                }
                Output::Transfer { target } => {
                    lines.push(format!(
                        "transfer to {target} (simulated: {})",
                        script.transfers.code()
                    ));
                    inputs.push_back(Input::TransferFailed(script.transfers));
                }
                Output::Hangup { reason } => {
                    lines.push(format!("hangs up ({reason})"));
                }
            }
        }
    }
    if !engine.is_finished() && !limited {
        lines.push("still in the dialplan when the simulation stopped".to_string());
    }
    lines.push(format!(
        "call length: {:.1} s of at most {} s",
        clock.min(script.limit).as_secs_f64(),
        script.limit.as_secs()
    ));
    let path: Vec<String> = engine
        .path()
        .iter()
        .map(|step| format!("{}: {}", step.node, step.event))
        .collect();
    lines.push(format!("path: {}", path.join(" | ")));
    lines
}
