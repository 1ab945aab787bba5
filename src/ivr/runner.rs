//! Runs the IVR engines of live calls inside the server's task: feeds them
//! keys, playback ends, timers and store answers, and turns their outputs
//! into what the call glue does (play, stop, hang up). Store work runs in
//! spawned tasks whose answers come back through a channel, so the SIP task
//! never waits on the database. It also keeps [`LiveCalls`], the read-only
//! view of who is in which menu node that the staff API shows.

use super::dialplan::Dialplan;
use super::engine::{CallInfo, Engine, Input, Output, PathStep, StoreReply, TimerId};
use super::speech::Utterance;
use super::store_bridge;
use super::transferred::TransferContext;
use crate::media::playback::{PlayItem, Playlist};
use crate::media::prompt::PromptLibrary;
use crate::sip::endpoint::CallHandle;
use crate::tickets::calendar::BusinessCalendar;
use crate::tickets::store::{CallRecord, Store};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::mpsc;

/// A call in the IVR as the staff API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCall {
    /// The SIP Call-ID.
    pub call_id: String,
    pub caller: String,
    pub dialled: String,
    /// The menu node the caller is in (none until the plan has started).
    pub node: Option<String>,
    /// When the call reached the IVR.
    pub since: DateTime<Utc>,
}

/// The calls in the IVR right now, shared between the runner (which alone
/// writes) and readers that take a snapshot. Cheap to clone.
#[derive(Clone, Default)]
pub struct LiveCalls(Arc<Mutex<HashMap<CallHandle, LiveCall>>>);

impl LiveCalls {
    /// The calls now in the IVR, longest-running first.
    pub fn snapshot(&self) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self.lock().values().cloned().collect();
        calls.sort_by(|a, b| (a.since, &a.call_id).cmp(&(b.since, &b.call_id)));
        calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallHandle, LiveCall>> {
        // The map stays consistent whatever panicked while holding it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which dialplan and node a dialled number starts at.
#[derive(Default)]
pub struct Dialplans {
    entries: BTreeMap<String, (Arc<Dialplan>, String)>,
}

impl Dialplans {
    pub fn new(plans: Vec<Dialplan>) -> Dialplans {
        let mut entries = BTreeMap::new();
        for plan in plans {
            let plan = Arc::new(plan);
            for (number, node) in &plan.entries {
                entries.insert(number.clone(), (plan.clone(), node.clone()));
            }
        }
        Dialplans { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The plan and start node for a dialled number.
    pub fn entry(&self, dialled: &str) -> Option<(Arc<Dialplan>, String)> {
        self.entries.get(dialled).cloned()
    }

    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// Something a call's engine needs done to the call.
#[derive(Debug)]
pub enum CallAction {
    Play(Playlist),
    StopPlayback,
    Hangup,
}

/// Answers that come back from spawned store work.
pub enum IvrMessage {
    /// The caller's customer record was looked up: the engine can start.
    Ready {
        call: CallHandle,
        info: CallInfo,
    },
    Store {
        call: CallHandle,
        reply: StoreReply,
    },
}

struct RunningCall {
    call_id: String,
    engine: Option<Engine>,
    pending: Option<(Arc<Dialplan>, String)>,
    /// Keys pressed before the engine started (the customer lookup).
    early_keys: Vec<char>,
    offered_at: DateTime<Utc>,
    caller: String,
    dialled: String,
}

pub struct IvrCalls {
    store: Store,
    prompts: Arc<PromptLibrary>,
    calendar: Arc<BusinessCalendar>,
    calls: HashMap<CallHandle, RunningCall>,
    live: LiveCalls,
    timers: BinaryHeap<Reverse<(Instant, CallHandle, TimerId)>>,
    messages: mpsc::UnboundedSender<IvrMessage>,
}

impl IvrCalls {
    pub fn new(
        store: Store,
        prompts: Arc<PromptLibrary>,
        messages: mpsc::UnboundedSender<IvrMessage>,
        live: LiveCalls,
    ) -> IvrCalls {
        let calendar = Arc::new(store.sla().calendar().clone());
        IvrCalls {
            store,
            prompts,
            calendar,
            calls: HashMap::new(),
            live,
            timers: BinaryHeap::new(),
            messages,
        }
    }

    /// Starts the IVR on an answered call: looks the caller up (and, for a
    /// call transferred in, the ticket it names), then runs the plan from
    /// `entry`.
    pub fn start(
        &mut self,
        call: CallHandle,
        call_id: String,
        caller: String,
        dialled: String,
        entry: (Arc<Dialplan>, String),
        transfer: TransferContext,
    ) {
        let now = Utc::now();
        self.live.lock().insert(
            call,
            LiveCall {
                call_id: call_id.clone(),
                caller: caller.clone(),
                dialled: dialled.clone(),
                node: None,
                since: now,
            },
        );
        self.calls.insert(
            call,
            RunningCall {
                call_id,
                engine: None,
                pending: Some(entry),
                early_keys: Vec::new(),
                offered_at: now,
                caller: caller.clone(),
                dialled: dialled.clone(),
            },
        );
        let store = self.store.clone();
        let messages = self.messages.clone();
        tokio::spawn(async move {
            let customer = match store.customer_by_phone(&caller).await {
                Ok(customer) => customer.map(|c| (c.name, c.level)),
                Err(e) => {
                    tracing::warn!(error = %e, "customer lookup failed; treating the caller as unknown");
                    None
                }
            };
            let transferred = store_bridge::arrival(&store, &transfer).await;
            let info = CallInfo {
                caller,
                dialled,
                customer,
                transferred,
            };
            let _ = messages.send(IvrMessage::Ready { call, info });
        });
    }

    /// New calls use these prompts from now on (calls in progress keep the
    /// prompts they are playing).
    pub fn replace_prompts(&mut self, prompts: Arc<PromptLibrary>) {
        self.prompts = prompts;
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Fires due timers; returns the actions they caused.
    pub fn on_timers(&mut self, now: Instant) -> Vec<(CallHandle, CallAction)> {
        let mut actions = Vec::new();
        while let Some(Reverse((at, call, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            actions.extend(self.feed(call, Input::Timer(id), now));
        }
        actions
    }

    pub fn on_message(
        &mut self,
        message: IvrMessage,
        now: Instant,
    ) -> Vec<(CallHandle, CallAction)> {
        match message {
            IvrMessage::Ready { call, info } => {
                let Some(live) = self.calls.get_mut(&call) else {
                    return Vec::new();
                };
                let Some((plan, entry)) = live.pending.take() else {
                    return Vec::new();
                };
                live.engine = Some(Engine::new(plan, &entry, info, self.calendar.clone()));
                let early = std::mem::take(&mut live.early_keys);
                let mut actions = self.feed(call, Input::Start, now);
                for key in early {
                    actions.extend(self.feed(call, Input::Key(key), now));
                }
                actions
            }
            IvrMessage::Store { call, reply } => self.feed(call, Input::Store(reply), now),
        }
    }

    pub fn on_key(
        &mut self,
        call: CallHandle,
        key: char,
        now: Instant,
    ) -> Vec<(CallHandle, CallAction)> {
        self.feed(call, Input::Key(key), now)
    }

    pub fn on_playback_done(
        &mut self,
        call: CallHandle,
        now: Instant,
    ) -> Vec<(CallHandle, CallAction)> {
        self.feed(call, Input::PlaybackDone, now)
    }

    /// The call ended: writes its record (path, outcome) in the background.
    pub fn end(&mut self, call: CallHandle, reason: &str) {
        self.live.lock().remove(&call);
        let Some(live) = self.calls.remove(&call) else {
            return;
        };
        let (path, tickets): (Vec<PathStep>, Vec<String>) = live
            .engine
            .as_ref()
            .map(|e| (e.path().to_vec(), e.tickets().to_vec()))
            .unwrap_or_default();
        let record = CallRecord {
            sip_call_id: live.call_id,
            caller: live.caller,
            dialled: live.dialled,
            offered_at: live.offered_at,
            ended_at: Utc::now(),
            disposition: reason.to_string(),
            menu_path: path
                .iter()
                .map(|s| (s.at, s.node.clone(), s.event.clone()))
                .collect(),
            tickets,
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.record_call(record).await {
                tracing::error!(error = %e, "cannot write the call record");
            }
        });
    }

    fn feed(
        &mut self,
        call: CallHandle,
        input: Input,
        now: Instant,
    ) -> Vec<(CallHandle, CallAction)> {
        let Some(live) = self.calls.get_mut(&call) else {
            return Vec::new();
        };
        let Some(engine) = live.engine.as_mut() else {
            if let Input::Key(key) = input {
                live.early_keys.push(key);
            }
            return Vec::new();
        };
        let _span = tracing::info_span!("call", call_id = %live.call_id).entered();
        engine.handle(input, Utc::now());
        let mut actions = Vec::new();
        while let Some(output) = engine.poll_output() {
            match output {
                Output::Play { items, barge_in } => {
                    let items: Vec<PlayItem> = items
                        .into_iter()
                        .filter_map(|u| match u {
                            Utterance::Prompt(name) => match self.prompts.get(&name) {
                                Some(prompt) => Some(PlayItem::Prompt(prompt.clone())),
                                None => {
                                    tracing::warn!(prompt = %name, "prompt missing, skipped");
                                    None
                                }
                            },
                            Utterance::Silence(d) => Some(PlayItem::Silence(d)),
                        })
                        .collect();
                    if items.is_empty() {
                        // Nothing playable: go on as if it had played.
                        engine.handle(Input::PlaybackDone, Utc::now());
                        continue;
                    }
                    actions.push((
                        call,
                        CallAction::Play(Playlist {
                            items,
                            looping: false,
                            barge_in,
                        }),
                    ));
                }
                Output::StopPlayback => actions.push((call, CallAction::StopPlayback)),
                Output::StartTimer { id, after } => {
                    self.timers.push(Reverse((now + after, call, id)));
                }
                Output::Store(request) => {
                    let store = self.store.clone();
                    let messages = self.messages.clone();
                    tokio::spawn(async move {
                        let reply = store_bridge::execute(&store, request).await;
                        let _ = messages.send(IvrMessage::Store { call, reply });
                    });
                }
                Output::Transfer { target } => {
                    // Transfers arrive with the staff-side work; until then
                    // every transfer fails and the dialplan's fallback runs.
                    tracing::info!(%target, "transfer not available; taking the fallback");
                    engine.handle(Input::TransferFailed, Utc::now());
                }
                Output::Hangup { reason } => {
                    tracing::info!(%reason, "IVR hangs up");
                    actions.push((call, CallAction::Hangup));
                }
            }
        }
        let node = engine.path().last().map(|step| &step.node);
        if let Some(shown) = self.live.lock().get_mut(&call) {
            if shown.node.as_ref() != node {
                shown.node = node.cloned();
            }
        }
        actions
    }
}
