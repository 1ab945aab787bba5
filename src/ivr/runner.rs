//! Runs the IVR engines of live calls inside the server's task: feeds them
//! keys, playback ends, timers, store answers and transfer failures, and
//! turns their outputs into what the call glue does (play, stop, hang up,
//! transfer by REFER or by bridging a call of our own to the target). Store work runs in spawned tasks whose answers come
//! back through a channel, so the SIP task never waits on the database. It
//! also keeps [`LiveCalls`], the read-only view of who is in which menu
//! node that the staff API shows.
//!
//! A transfer first stores the call's context under a new token
//! (`Store::create_transfer_context`), then asks for the REFER with that
//! context in the Refer-To's headers, or (mode "bridge") for a call to the
//! target with the same context as INVITE headers; a target missing from
//! `[transfer.targets]` fails at once.

use super::dialplan::Dialplan;
use super::engine::{
    CallInfo, Engine, Input, Output, PathStep, StoreReply, StoreRequest, TimerId, TransferFailure,
};
use super::refused_records::{RefusedRecord, RefusedRecords};
use super::speech::Utterance;
use super::store_bridge;
use super::transferred::TransferContext;
use crate::config::{TransferConfig, TransferMode};
use crate::media::playback::{PlayItem, Playlist};
use crate::media::prompt::PromptLibrary;
use crate::media::recorder::{RecordSpec, Recording};
use crate::media::session::StereoChunk;
use crate::recordings::{CallRecording, Recordings};
use crate::sip::endpoint::CallHandle;
use crate::sip::identity::CallerIdentity;
use crate::sip::refer;
use crate::sip::uac::UacFailure;
use crate::speech::{Grammar, Recognizer};
use crate::tickets::calendar::BusinessCalendar;
use crate::tickets::model::{CustomerLevel, Language};
use crate::tickets::store::{
    CallDirection, CallRecord, CallTransfer, NewTransferContext, Store, REJECTED,
};
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How a listening menu takes an utterance: it ends 0.7 s after the
/// caller stops, at 6 s at most; the menu's own timer handles silence.
const LISTEN: RecordSpec = RecordSpec {
    max: Duration::from_secs(6),
    silence: Duration::from_millis(700),
    no_speech: Duration::from_secs(60),
    level: 300,
};

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
    /// A blind transfer: REFER the caller to `refer_to` (a name-addr with
    /// the context as URI headers); no outcome within `timeout` fails it.
    Refer {
        target: String,
        refer_to: String,
        timeout: Duration,
    },
    /// A bridged transfer: call `uri` with the context `headers` (and the
    /// credentials for a digest challenge), ring for at most
    /// `ring_timeout`, and relay the media once it answers.
    Bridge {
        target: String,
        uri: String,
        /// Where to send the INVITE: the URI's host looked up (A and AAAA).
        addresses: Vec<SocketAddr>,
        headers: Vec<(String, String)>,
        credentials: Option<(String, String)>,
        ring_timeout: Duration,
    },
    /// Record what the caller says (`MediaEvent::Recorded` at its end).
    StartRecording(RecordSpec),
    StopRecording,
    /// Drop the running recording (a menu stopped listening).
    CancelRecording,
}

/// Answers that come back from spawned store work.
pub enum IvrMessage {
    /// The caller's customer record was looked up: the engine can start.
    Ready {
        call: CallHandle,
        info: CallInfo,
    },
    /// What a listening menu heard (see `Input::Speech`).
    Heard {
        call: CallHandle,
        heard: Option<(char, String, f32)>,
    },
    Store {
        call: CallHandle,
        reply: StoreReply,
    },
    /// A transfer's context is stored (or could not be): the REFER can go.
    TransferReady {
        call: CallHandle,
        target: String,
        refer_to: String,
    },
    /// A bridged transfer's context is stored (or could not be): the call
    /// to the target can go out with these headers.
    BridgeReady {
        call: CallHandle,
        target: String,
        addresses: Vec<SocketAddr>,
        headers: Vec<(String, String)>,
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
    direction: CallDirection,
    /// The transfers tried; the last one's outcome is `pending` while it runs.
    transfers: Vec<CallTransfer>,
    /// The last recording, until a `record` node keeps or drops it.
    recording: Option<Recording>,
    /// A recording was kept before the call had a ticket: the ticket the
    /// call creates gets it.
    unlinked_recording: bool,
    /// The menu grammar the media side is listening for.
    listening: Option<Grammar>,
}

pub struct IvrCalls {
    store: Store,
    prompts: Arc<PromptLibrary>,
    transfers: TransferConfig,
    calendar: Arc<BusinessCalendar>,
    calls: HashMap<CallHandle, RunningCall>,
    live: LiveCalls,
    timers: BinaryHeap<Reverse<(Instant, CallHandle, TimerId)>>,
    messages: mpsc::UnboundedSender<IvrMessage>,
    refused_records: RefusedRecords,
    recordings: Recordings,
    /// Calls that hung up while recording: (SIP Call-ID, ticket number)
    /// for the recording still on its way from the media worker.
    recording_at_hangup: HashMap<CallHandle, (String, Option<String>)>,
    /// Speech recognition for listening menus (`[speech]`), and the least
    /// confidence that presses a key.
    speech: Option<(Arc<dyn Recognizer>, f32)>,
    /// Calls being recorded (bridged, or IVR legs), until their media
    /// ends.
    call_recordings: HashMap<CallHandle, CallRecording>,
    /// Recorded calls that ended before their first second of audio came:
    /// (SIP Call-ID, ticket number).
    ended_recorded: HashMap<CallHandle, (String, Option<String>)>,
}

impl IvrCalls {
    pub fn new(
        store: Store,
        prompts: Arc<PromptLibrary>,
        transfers: TransferConfig,
        messages: mpsc::UnboundedSender<IvrMessage>,
        live: LiveCalls,
        recordings: Recordings,
    ) -> IvrCalls {
        let calendar = Arc::new(store.sla().calendar().clone());
        IvrCalls {
            store,
            prompts,
            transfers,
            calendar,
            calls: HashMap::new(),
            live,
            timers: BinaryHeap::new(),
            messages,
            refused_records: RefusedRecords::new(Instant::now()),
            recordings,
            recording_at_hangup: HashMap::new(),
            call_recordings: HashMap::new(),
            ended_recorded: HashMap::new(),
            speech: None,
        }
    }

    /// Starts the IVR on an answered call: looks the caller up by their
    /// number, when known (and, for a call transferred in, the ticket it
    /// names), then runs the plan from `entry`.
    pub fn start(
        &mut self,
        call: CallHandle,
        call_id: String,
        identity: &CallerIdentity,
        dialled: String,
        entry: (Arc<Dialplan>, String),
        transfer: TransferContext,
    ) {
        let now = Utc::now();
        let caller = identity.label();
        let contact = identity.phone().cloned();
        let from_user = identity.from_user.clone().unwrap_or_default();
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
                direction: CallDirection::Inbound,
                transfers: Vec::new(),
                recording: None,
                unlinked_recording: false,
                listening: None,
            },
        );
        let store = self.store.clone();
        let messages = self.messages.clone();
        tokio::spawn(async move {
            let customer = match &contact {
                Some(phone) => match store.customer_by_phone(phone.as_str()).await {
                    Ok(customer) => customer.map(|c| (c.name, c.level)),
                    Err(e) => {
                        tracing::warn!(error = %e, "customer lookup failed; treating the caller as unknown");
                        None
                    }
                },
                None => None,
            };
            let transferred = store_bridge::arrival(&store, &transfer).await;
            let info = CallInfo {
                caller: from_user,
                contact,
                dialled,
                customer,
                transferred,
            };
            let _ = messages.send(IvrMessage::Ready { call, info });
        });
    }

    /// A call answered without a dialplan (none is loaded: it hears the
    /// greeting): no plan runs, but its record is written when it ends.
    pub fn answered_without_plan(
        &mut self,
        call: CallHandle,
        call_id: String,
        caller: String,
        dialled: String,
    ) {
        self.calls.insert(
            call,
            RunningCall {
                call_id,
                engine: None,
                pending: None,
                early_keys: Vec::new(),
                offered_at: Utc::now(),
                caller,
                dialled,
                direction: CallDirection::Inbound,
                transfers: Vec::new(),
                recording: None,
                unlinked_recording: false,
                listening: None,
            },
        );
    }

    /// Records `call` (started with [`IvrCalls::start`]) as one the
    /// gateway placed.
    pub fn mark_outbound(&mut self, call: CallHandle) {
        if let Some(running) = self.calls.get_mut(&call) {
            running.direction = CallDirection::Outbound;
        }
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
                let mut engine = Engine::new(plan, &entry, info, self.calendar.clone());
                let recorded = if self.recordings.records_bridged_calls() {
                    "on"
                } else {
                    "off"
                };
                engine.set_variable("recording.calls", recorded);
                if let Some(notice) = self.recordings.ivr_notice() {
                    engine.play_first(notice);
                }
                live.engine = Some(engine);
                let early = std::mem::take(&mut live.early_keys);
                let mut actions = self.feed(call, Input::Start, now);
                for key in early {
                    actions.extend(self.feed(call, Input::Key(key), now));
                }
                actions
            }
            IvrMessage::Store { call, reply } => self.feed(call, Input::Store(reply), now),
            IvrMessage::Heard { call, heard } => self.feed(call, Input::Speech(heard), now),
            IvrMessage::TransferReady {
                call,
                target,
                refer_to,
            } => {
                if !self.calls.contains_key(&call) {
                    return Vec::new();
                }
                let timeout = Duration::from_secs(self.transfers.timeout_secs);
                vec![(
                    call,
                    CallAction::Refer {
                        target,
                        refer_to,
                        timeout,
                    },
                )]
            }
            IvrMessage::BridgeReady {
                call,
                target,
                addresses,
                headers,
            } => {
                let Some(destination) = self.transfers.targets.get(&target) else {
                    return Vec::new();
                };
                if !self.calls.contains_key(&call) {
                    return Vec::new();
                }
                vec![(
                    call,
                    CallAction::Bridge {
                        uri: destination.uri.clone(),
                        addresses,
                        credentials: destination.credentials(),
                        ring_timeout: Duration::from_secs(self.transfers.ring_timeout_secs),
                        target,
                        headers,
                    },
                )]
            }
        }
    }

    /// The transfer could not be started or did not succeed: the engine
    /// takes the transfer node's `on_failure`, knowing why.
    pub fn on_transfer_failed(
        &mut self,
        call: CallHandle,
        failure: TransferFailure,
        now: Instant,
    ) -> Vec<(CallHandle, CallAction)> {
        if let Some(live) = self.calls.get_mut(&call) {
            settle_transfer(&mut live.transfers, "failed");
        }
        self.feed(call, Input::TransferFailed(failure), now)
    }

    /// The call reached its time limit: its engine stops, and the language
    /// it is in comes back for the goodbye (none for a call without a
    /// running plan).
    pub fn on_time_limit(&mut self, call: CallHandle, now: Instant) -> Option<Language> {
        self.feed(call, Input::TimeLimit, now);
        let live = self.calls.get(&call)?;
        live.engine.as_ref().map(Engine::language)
    }

    /// A recording ended: the engine hears how, and the audio waits for
    /// its `record` node to keep it. One that ended with the call (the
    /// caller hung up while speaking) is kept at once.
    pub fn on_recorded(
        &mut self,
        call: CallHandle,
        recording: Recording,
        now: Instant,
    ) -> Vec<(CallHandle, CallAction)> {
        if let Some((call_id, ticket)) = self.recording_at_hangup.remove(&call) {
            if recording.heard_speech {
                let recordings = self.recordings.clone();
                tokio::spawn(async move {
                    match recordings.save(&call_id, ticket, recording.samples).await {
                        Ok(saved) => {
                            tracing::info!(%call_id, recording = saved.id, "recording kept after the hang-up")
                        }
                        Err(e) => {
                            tracing::error!(%call_id, error = %e, "cannot keep the recording made before the hang-up")
                        }
                    }
                });
            }
            return Vec::new();
        }
        let Some(live) = self.calls.get_mut(&call) else {
            return Vec::new();
        };
        if let Some(grammar) = live.listening.take() {
            self.recognize(call, grammar, recording);
            return Vec::new();
        }
        let input = Input::Recorded {
            end: recording.end,
            duration: recording.duration(),
            heard_speech: recording.heard_speech,
        };
        live.recording = Some(recording);
        self.feed(call, input, now)
    }

    /// Listening menus use `recognizer`; a phrase recognised with less than
    /// `min_confidence` counts as no match.
    pub fn use_speech(&mut self, recognizer: Arc<dyn Recognizer>, min_confidence: f32) {
        self.speech = Some((recognizer, min_confidence));
    }

    /// Recognises what the caller said to a listening menu, off the call
    /// loop; the engine hears the result.
    fn recognize(&self, call: CallHandle, grammar: Grammar, recording: Recording) {
        let Some((recognizer, min_confidence)) = self.speech.clone() else {
            return;
        };
        if !recording.heard_speech {
            // Nothing said: the menu's own timer asks again.
            return;
        }
        let messages = self.messages.clone();
        tokio::spawn(async move {
            let samples = recording.samples;
            let result =
                tokio::task::spawn_blocking(move || recognizer.recognize(&grammar, &samples)).await;
            let heard = match result {
                Ok(Ok(Some(h))) if h.confidence >= min_confidence => {
                    Some((h.key, h.phrase, h.confidence))
                }
                Ok(Ok(Some(h))) => {
                    tracing::info!(phrase = %h.phrase, confidence = h.confidence, "speech below the confidence threshold");
                    None
                }
                Ok(Ok(None)) => None,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "speech recognition failed");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "speech recognition task failed");
                    None
                }
            };
            let _ = messages.send(IvrMessage::Heard { call, heard });
        });
    }

    /// The next second of a recorded call, bridged or an IVR leg (the
    /// recording starts with the first).
    pub fn on_call_audio(&mut self, call: CallHandle, chunk: StereoChunk) {
        if !self.call_recordings.contains_key(&call) {
            let owner = match self.calls.get(&call) {
                Some(live) => Some((live.call_id.clone(), ticket_of(live))),
                None => self.ended_recorded.remove(&call),
            };
            let Some((call_id, ticket)) = owner else {
                return;
            };
            tracing::info!(%call_id, ticket = ?ticket, "recording the call");
            let recording = self.recordings.start_call(&call_id, ticket);
            self.call_recordings.insert(call, recording);
        }
        if let Some(recording) = self.call_recordings.get_mut(&call) {
            if let Some(live) = self.calls.get(&call) {
                recording.set_ticket(ticket_of(live));
            }
            recording.append(chunk);
        }
    }

    /// A recorded call's media ended (or its IVR leg's recording ended at
    /// a bridge): the recording is kept.
    pub fn on_call_audio_end(&mut self, call: CallHandle) {
        self.ended_recorded.remove(&call);
        let Some(recording) = self.call_recordings.remove(&call) else {
            return;
        };
        tokio::spawn(async move {
            match recording.finish().await {
                Ok(kept) => tracing::info!(
                    recording = kept.id,
                    ms = kept.duration_ms,
                    "call recording kept"
                ),
                Err(e) => tracing::error!(error = %e, "cannot keep the bridged call's recording"),
            }
        });
    }

    pub fn on_speech_started(
        &mut self,
        call: CallHandle,
        now: Instant,
    ) -> Vec<(CallHandle, CallAction)> {
        self.feed(call, Input::SpeechStarted, now)
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
    /// A call handed to a transfer target says so, with the target, as the
    /// last step of its path. Returns how many transfers the call tried.
    pub fn end(&mut self, call: CallHandle, reason: &str, transferred_to: Option<&str>) -> usize {
        self.live.lock().remove(&call);
        let Some(mut live) = self.calls.remove(&call) else {
            return 0;
        };
        let tried = live.transfers.len();
        let outcome = if transferred_to.is_some() {
            "accepted"
        } else {
            "abandoned"
        };
        settle_transfer(&mut live.transfers, outcome);
        for transfer in &live.transfers {
            crate::metrics::transfer(&transfer.mode, &transfer.outcome);
        }
        let bridged = live
            .transfers
            .iter()
            .any(|t| t.mode == TransferMode::Bridge.code() && t.outcome == "accepted");
        if let Some(recording) = self.call_recordings.get_mut(&call) {
            recording.set_ticket(ticket_of(&live));
        }
        // The call's recording may still be running in its media worker
        // (an IVR leg's ends at a bridge that is not recorded).
        let recording_runs = if bridged {
            self.recordings.records_bridged_calls()
        } else {
            self.recordings.records_ivr_calls()
        };
        if recording_runs && !self.call_recordings.contains_key(&call) {
            self.ended_recorded
                .insert(call, (live.call_id.clone(), ticket_of(&live)));
        }
        if let Some(engine) = &live.engine {
            engine.left_the_plan();
            if engine.is_recording() {
                let ticket = engine.variables().get("ticket.number").cloned();
                self.recording_at_hangup
                    .insert(call, (live.call_id.clone(), ticket));
            }
        }
        let (path, tickets): (Vec<PathStep>, Vec<String>) = live
            .engine
            .as_ref()
            .map(|e| (e.path().to_vec(), e.tickets().to_vec()))
            .unwrap_or_default();
        let mut menu_path: Vec<(DateTime<Utc>, String, String)> = path
            .iter()
            .map(|s| (s.at, s.node.clone(), s.event.clone()))
            .collect();
        if let Some(target) = transferred_to {
            let node = path.last().map(|s| s.node.clone()).unwrap_or_default();
            menu_path.push((Utc::now(), node, format!("transferred to {target}")));
        }
        let record = CallRecord {
            sip_call_id: live.call_id,
            direction: live.direction,
            caller: live.caller,
            dialled: live.dialled,
            offered_at: live.offered_at,
            answered_at: Some(live.offered_at),
            ended_at: Utc::now(),
            disposition: reason.to_string(),
            reason: None,
            menu_path,
            tickets,
            transfers: live.transfers,
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.record_call(record).await {
                tracing::error!(error = %e, "cannot write the call record");
            }
        });
        tried
    }

    /// Records a call refused before it was answered (`reason`: the status
    /// and why, e.g. `404 no dialplan`).
    pub fn rejected(
        &mut self,
        call_id: String,
        caller: String,
        dialled: String,
        reason: String,
        at: Instant,
    ) {
        match self.refused_records.decide(at) {
            RefusedRecord::Write => {}
            RefusedRecord::Skip(None) => return,
            RefusedRecord::Skip(Some(unrecorded)) => {
                tracing::warn!(
                    unrecorded,
                    "refused calls arrive faster than they are recorded; the rest are only counted (hotline_calls_refused_total)"
                );
                return;
            }
        }
        let now = Utc::now();
        let record = CallRecord {
            sip_call_id: call_id,
            direction: CallDirection::Inbound,
            caller,
            dialled,
            offered_at: now,
            answered_at: None,
            ended_at: now,
            disposition: REJECTED.to_string(),
            reason: Some(reason),
            menu_path: Vec::new(),
            tickets: Vec::new(),
            transfers: Vec::new(),
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
            // Kept for the plan about to start; a call without one has none.
            if let (Input::Key(key), Some(_)) = (input, &live.pending) {
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
                Output::Store(StoreRequest::SaveRecording { number }) => {
                    let recording = live.recording.take();
                    live.unlinked_recording |= number.is_none();
                    let recordings = self.recordings.clone();
                    let messages = self.messages.clone();
                    let call_id = live.call_id.clone();
                    tokio::spawn(async move {
                        let reply = match recording {
                            Some(recording) => {
                                match recordings.save(&call_id, number, recording.samples).await {
                                    Ok(saved) => StoreReply::Saved {
                                        id: saved.id.to_string(),
                                    },
                                    Err(e) => {
                                        tracing::error!(error = %e, "cannot keep the recording");
                                        StoreReply::Failed(e.to_string())
                                    }
                                }
                            }
                            None => StoreReply::Failed("no recording to keep".into()),
                        };
                        let _ = messages.send(IvrMessage::Store { call, reply });
                    });
                }
                Output::Store(request) => {
                    let store = self.store.clone();
                    let messages = self.messages.clone();
                    let link = (live.unlinked_recording
                        && matches!(request, StoreRequest::CreateTicket { .. }))
                    .then(|| live.call_id.clone());
                    tokio::spawn(async move {
                        let reply = store_bridge::execute(&store, request).await;
                        if let (Some(call_id), StoreReply::Ticket { ticket, .. }) = (&link, &reply)
                        {
                            if let Err(e) =
                                store.link_call_recordings(call_id, &ticket.number).await
                            {
                                tracing::warn!(error = %e, "cannot put the call's recording on its new ticket");
                            }
                        }
                        let _ = messages.send(IvrMessage::Store { call, reply });
                    });
                }
                Output::StartRecording(spec) => {
                    actions.push((call, CallAction::StartRecording(spec)));
                }
                Output::StopRecording => actions.push((call, CallAction::StopRecording)),
                Output::Listen(grammar) => {
                    if self.speech.is_some() {
                        live.listening = Some(grammar);
                        actions.push((call, CallAction::StartRecording(LISTEN)));
                    }
                }
                Output::StopListening => {
                    if live.listening.take().is_some() {
                        actions.push((call, CallAction::CancelRecording));
                    }
                }
                Output::Transfer { target } => {
                    let destination = self.transfers.targets.get(&target);
                    live.transfers.push(CallTransfer {
                        at: Utc::now(),
                        target: target.clone(),
                        mode: destination.map_or("none", |d| d.mode.code()).to_string(),
                        outcome: PENDING.to_string(),
                    });
                    let Some(destination) = destination else {
                        settle_transfer(&mut live.transfers, "failed");
                        tracing::warn!(%target, "no such target in [transfer.targets]; taking the fallback");
                        engine.handle(
                            Input::TransferFailed(TransferFailure::Unavailable),
                            Utc::now(),
                        );
                        continue;
                    };
                    let mode = destination.mode;
                    let variables = engine.variables();
                    let context = NewTransferContext {
                        sip_call_id: live.call_id.clone(),
                        caller: live.caller.clone(),
                        level: variables
                            .get("customer.level")
                            .and_then(|code| code.parse().ok())
                            .unwrap_or(CustomerLevel::LocalC),
                        ticket_number: variables.get("ticket.number").cloned(),
                        target: target.clone(),
                        ttl: Duration::from_secs(self.transfers.context_ttl_secs),
                    };
                    tracing::info!(%target, uri = %destination.uri, ?mode, "transferring");
                    let uri = destination.uri.clone();
                    let store = self.store.clone();
                    let messages = self.messages.clone();
                    tokio::spawn(async move {
                        let token = match store.create_transfer_context(context.clone()).await {
                            Ok(stored) => Some(stored.token),
                            Err(e) => {
                                // The headers still carry the context.
                                tracing::warn!(error = %e, "cannot store the transfer context; transferring without a token");
                                None
                            }
                        };
                        let message = match mode {
                            TransferMode::Refer => IvrMessage::TransferReady {
                                call,
                                refer_to: transfer_refer_to(&uri, &context, token.as_deref()),
                                target,
                            },
                            TransferMode::Bridge => IvrMessage::BridgeReady {
                                call,
                                addresses: crate::sip::resolve::target_addresses(&uri).await,
                                headers: transfer_headers(&context, token.as_deref())
                                    .into_iter()
                                    .map(|(name, value)| (name.to_string(), value))
                                    .collect(),
                                target,
                            },
                        };
                        let _ = messages.send(message);
                    });
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

/// Why a blind transfer failed, as the plan hears it: the caller's phone
/// refusing or ignoring the REFER means no transfer can be made from this
/// call (unavailable); the target busy, not answering in time or
/// declining means the agents were tried (busy).
pub fn refer_failure(reason: crate::sip::endpoint::TransferFailure) -> TransferFailure {
    use crate::sip::endpoint::TransferFailure as Refer;
    match reason {
        Refer::TargetFailed(status) if busy_status(status) => TransferFailure::Busy,
        Refer::TimedOut => TransferFailure::Busy,
        Refer::Refused(_) | Refer::NoAnswer | Refer::TargetFailed(_) | Refer::Abandoned => {
            TransferFailure::Unavailable
        }
    }
}

/// Why a bridged transfer's call to the target failed, as the plan hears
/// it: busy, ringing out and busy-like answers are "busy"; a target that
/// cannot be reached or refuses the call otherwise is "unavailable".
pub fn bridge_failure(failure: UacFailure) -> TransferFailure {
    match failure {
        UacFailure::Busy(_) | UacFailure::NotAnswered => TransferFailure::Busy,
        UacFailure::Failed(status) if busy_status(status) => TransferFailure::Busy,
        UacFailure::Failed(_) | UacFailure::Unreachable => TransferFailure::Unavailable,
    }
}

/// Final statuses that mean the people behind the target were tried:
/// 408 and 480 (no answer, nobody available), 486 and 600 (busy), 603
/// (declined).
fn busy_status(status: u16) -> bool {
    matches!(status, 408 | 480 | 486 | 600 | 603)
}

/// The outcome of a transfer still running.
const PENDING: &str = "pending";

/// The ticket a call has now (the one its plan made or loaded last).
fn ticket_of(live: &RunningCall) -> Option<String> {
    live.engine
        .as_ref()
        .and_then(|engine| engine.variables().get("ticket.number").cloned())
}

/// Gives the transfer in progress, if any, its outcome.
fn settle_transfer(transfers: &mut [CallTransfer], outcome: &str) {
    if let Some(last) = transfers.last_mut().filter(|t| t.outcome == PENDING) {
        last.outcome = outcome.to_string();
    }
}

/// The Refer-To of a transfer: the target's URI with the call's context as
/// URI headers: the ticket (if the call has one), the customer level, the
/// caller, and the context token both as a header and as RFC 7433
/// User-to-User data.
pub fn transfer_refer_to(uri: &str, context: &NewTransferContext, token: Option<&str>) -> String {
    refer::refer_to(uri, &transfer_headers(context, token))
}

/// The transfer context as SIP headers, the same in both modes: in the
/// Refer-To's URI headers (refer) or in our INVITE to the target (bridge).
pub fn transfer_headers(
    context: &NewTransferContext,
    token: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut headers: Vec<(&str, String)> = Vec::with_capacity(5);
    if let Some(number) = &context.ticket_number {
        headers.push(("X-Ticket-Number", number.clone()));
    }
    headers.push(("X-Customer-Level", context.level.code().to_string()));
    headers.push(("X-Caller", context.caller.clone()));
    if let Some(token) = token {
        headers.push(("X-Context-Token", token.to_string()));
        headers.push(("User-to-User", refer::user_to_user(token)));
    }
    headers
}

/// Transfer targets the plans name that are not in `[transfer.targets]`,
/// one message per target: where it is used (file, line, node), that every
/// transfer to it fails, and the config block to add, ready to paste.
pub fn unknown_transfer_targets(plans: &[Dialplan], transfers: &TransferConfig) -> Vec<String> {
    // Target → its uses, in plan and line order.
    let mut missing: Vec<(&str, Vec<String>)> = Vec::new();
    for plan in plans {
        let mut nodes: Vec<_> = plan.nodes.values().collect();
        nodes.sort_by_key(|node| node.line);
        for node in nodes {
            let super::dialplan::NodeKind::Transfer(transfer) = &node.kind else {
                continue;
            };
            if transfers.targets.contains_key(&transfer.target) {
                continue;
            }
            let used = format!("{} line {} (node \"{}\")", plan.file, node.line, node.name);
            match missing
                .iter_mut()
                .find(|(name, _)| *name == transfer.target)
            {
                Some((_, uses)) => uses.push(used),
                None => missing.push((&transfer.target, vec![used])),
            }
        }
    }
    missing
        .into_iter()
        .map(|(target, uses)| {
            format!(
                "{}: transfer target \"{target}\" is not in [transfer.targets], so every \
                 transfer to it fails and the node's on_failure runs. Add it to hotline.toml \
                 with your agents' SIP URI (the queue, PBX or ACD that answers them):\n\
                 \x20   [transfer.targets.{target}]\n\
                 \x20   uri = \"sip:{target}@192.0.2.10:5060\"\n\
                 \x20   mode = \"refer\"   # or \"bridge\" (with username and password) when the trunk refuses REFER\n\
                 (commented examples in hotline.example.toml, [transfer]; docs/staff.md)",
                uses.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(ticket: Option<&str>) -> NewTransferContext {
        NewTransferContext {
            sip_call_id: "c1".into(),
            caller: "13800138000".into(),
            level: CustomerLevel::Group,
            ticket_number: ticket.map(str::to_string),
            target: "agents".into(),
            ttl: Duration::from_secs(600),
        }
    }

    #[test]
    fn refer_to_carries_ticket_level_caller_and_token() {
        let value = transfer_refer_to(
            "sip:queue@127.0.0.1:5070",
            &context(Some("2611230001")),
            Some("0a1b"),
        );
        assert_eq!(
            value,
            "<sip:queue@127.0.0.1:5070?X-Ticket-Number=2611230001&X-Customer-Level=group\
             &X-Caller=13800138000&X-Context-Token=0a1b&User-to-User=30613162%3Bencoding%3Dhex>"
        );
    }

    #[test]
    fn without_a_ticket_or_token_the_level_and_caller_still_go() {
        assert_eq!(
            transfer_refer_to("sip:queue@h", &context(None), None),
            "<sip:queue@h?X-Customer-Level=group&X-Caller=13800138000>"
        );
    }

    #[test]
    fn busy_agents_are_told_apart_from_transfers_that_cannot_be_made() {
        use crate::sip::endpoint::TransferFailure as Refer;
        for (reason, expected) in [
            (Refer::TargetFailed(486), TransferFailure::Busy),
            (Refer::TargetFailed(480), TransferFailure::Busy),
            (Refer::TimedOut, TransferFailure::Busy),
            (Refer::TargetFailed(404), TransferFailure::Unavailable),
            (Refer::Refused(405), TransferFailure::Unavailable),
            (Refer::NoAnswer, TransferFailure::Unavailable),
            (Refer::Abandoned, TransferFailure::Unavailable),
        ] {
            assert_eq!(refer_failure(reason), expected, "{reason:?}");
        }
        for (failure, expected) in [
            (UacFailure::Busy(486), TransferFailure::Busy),
            (UacFailure::NotAnswered, TransferFailure::Busy),
            (UacFailure::Failed(603), TransferFailure::Busy),
            (UacFailure::Failed(503), TransferFailure::Unavailable),
            (UacFailure::Unreachable, TransferFailure::Unavailable),
        ] {
            assert_eq!(bridge_failure(failure), expected, "{failure:?}");
        }
    }

    #[test]
    fn transfer_nodes_to_unknown_targets_are_named_with_file_and_line() {
        let plan = Dialplan::parse(
            r#"
[dialplan]
name = "t"
entries = { "1" = "main" }

[nodes.main]
kind = "transfer"
target = "agents"
on_failure = "bye"

[nodes.bye]
kind = "hangup"
"#,
            "t.toml",
        )
        .unwrap();
        let mut transfers = TransferConfig::default();
        let problems = unknown_transfer_targets(std::slice::from_ref(&plan), &transfers);
        assert_eq!(
            problems,
            [
                "t.toml line 6 (node \"main\"): transfer target \"agents\" is not in \
              [transfer.targets], so every transfer to it fails and the node's on_failure \
              runs. Add it to hotline.toml with your agents' SIP URI (the queue, PBX or ACD \
              that answers them):\n    [transfer.targets.agents]\n    \
              uri = \"sip:agents@192.0.2.10:5060\"\n    mode = \"refer\"   # or \"bridge\" \
              (with username and password) when the trunk refuses REFER\n\
              (commented examples in hotline.example.toml, [transfer]; docs/staff.md)"
            ]
        );
        // The block it proposes is a valid target.
        let block = problems[0]
            .lines()
            .skip(1)
            .take(3)
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: toml::Value = toml::from_str(&block).unwrap();
        let target: crate::config::TransferTarget = parsed["transfer"]["targets"]["agents"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(target.mode, TransferMode::Refer);
        transfers.targets.insert(
            "agents".into(),
            crate::config::TransferTarget {
                uri: "sip:q@h".into(),
                mode: TransferMode::Refer,
                username: None,
                password: None,
                srtp: false,
            },
        );
        assert!(unknown_transfer_targets(&[plan], &transfers).is_empty());
    }
}
