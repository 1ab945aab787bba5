//! The IVR engine: one call's walk through a dialplan, as a pure state
//! machine. Inputs (the call started, a key, playback finished, a timer
//! fired, the store answered, a transfer failed) go in with the current
//! time; outputs (play, stop playback, start a timer, a store request,
//! transfer, hang up) come out of `poll_output`. No sockets, clocks or
//! database: the call glue does those, and `dialplan simulate` drives the
//! same engine with a test store.
//!
//! Keys are never lost or counted twice: every key goes into the type-ahead
//! queue, and only menus, collects and confirmations take keys out of it.
//! A key pressed during a barge-in prompt stops the prompt and is then
//! consumed by the menu or collect that follows; keys pressed during other
//! prompts or between nodes wait for the next menu or collect.
//!
//! A call an agent transferred in comes with its ticket already looked up
//! (`CallInfo::transferred`): the engine records where it came from and
//! sets `ticket.*` before the first node, with the same code that handles
//! a lookup's reply.
//!
//! Who is asking goes with every store request about a ticket: the
//! caller's number (`CallInfo::contact`, never a number keyed in) and
//! whether an agent vouched for the caller by naming that ticket in the
//! transfer, so that the store side applies the one privacy rule
//! (`tickets::privacy`) and a stranger's `ticket.*` holds only the number
//! and the state (`ticket.details` = `withheld`).

use super::dialplan::{
    Case, Collect, Confirm, CustomerAction, Dialplan, LookupBy, Menu, NodeKind, Record, Speech,
    Validation,
};
use super::speech::{self, render, Utterance};
use crate::media::recorder::{RecordEnd, RecordSpec};
use crate::phone::PhoneNumber;
use crate::speech::Grammar;
use crate::tickets::calendar::BusinessCalendar;
use crate::tickets::model::{CustomerLevel, Language, TicketType};
use crate::tickets::number::TicketNumber;
use chrono::{DateTime, NaiveTime, Timelike, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Nodes entered in a row without waiting for anything, before the engine
/// decides the plan loops (the checker refuses such plans; this is the
/// backstop).
const MAX_STEPS: usize = 1_000;
/// A recording's safety timer runs this much past its maximum length (the
/// media side ends it on time when audio flows).
const RECORDING_GRACE_SECS: u32 = 2;

pub type TimerId = u64;

/// What the engine is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Start,
    Key(char),
    PlaybackDone,
    Timer(TimerId),
    Store(StoreReply),
    TransferFailed(TransferFailure),
    /// The call reached its time limit: the engine stops (the call glue
    /// says goodbye and hangs up).
    TimeLimit,
    /// The caller started speaking during a recording or while a menu
    /// listens.
    SpeechStarted,
    /// What a listening menu heard: the key of the phrase recognised, the
    /// phrase and the confidence; `None`: speech that matched nothing.
    Speech(Option<(char, String, f32)>),
    /// The recording a `record` node started has ended (the call glue
    /// keeps its audio for the store).
    Recorded {
        end: RecordEnd,
        duration: Duration,
        heard_speech: bool,
    },
}

/// Why a transfer did not reach anyone, as `transfer.failure` tells the
/// plan: the two deserve different words to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferFailure {
    /// Nothing could be tried: no such target is configured, the call to
    /// it could not be placed, or the caller's phone cannot be transferred.
    Unavailable,
    /// The target was tried and did not take the call: busy, no answer,
    /// declined.
    Busy,
}

impl TransferFailure {
    pub fn code(self) -> &'static str {
        match self {
            TransferFailure::Unavailable => "unavailable",
            TransferFailure::Busy => "busy",
        }
    }
}

/// What the engine asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Play {
        items: Vec<Utterance>,
        barge_in: bool,
    },
    StopPlayback,
    StartTimer {
        id: TimerId,
        after: Duration,
    },
    Store(StoreRequest),
    Transfer {
        target: String,
    },
    Hangup {
        reason: String,
    },
    /// Record what the caller says ([`Input::Recorded`] when it ends).
    StartRecording(RecordSpec),
    /// End the running recording now.
    StopRecording,
    /// Listen for the menu's phrases ([`Input::Speech`] with the result).
    Listen(Grammar),
    /// Stop listening (the menu was left).
    StopListening,
}

/// Who asks about a ticket, for the privacy rule (`tickets::privacy`).
#[derive(Debug, Clone, PartialEq)]
pub struct Asker {
    /// The caller's number, when known.
    pub phone: Option<PhoneNumber>,
    /// An agent vouched for the caller by transferring the call in with
    /// this ticket.
    pub vouched: bool,
}

/// A request to the ticket store; the answer comes back as `Input::Store`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreRequest {
    CreateTicket {
        ticket_type: TicketType,
        category: String,
        service_number: Option<String>,
        description: String,
        /// The number to call back (phone normal form), if any is known.
        contact_phone: Option<String>,
        /// Who reports it, for the ticket's history: the caller's number,
        /// else the From user as sent.
        reporter: String,
        /// The call's language, which the customer's texts follow.
        language: Language,
    },
    LookupNumber {
        number: String,
        asker: Asker,
    },
    /// The caller's open ticket at `position` (0 = the latest).
    LookupCaller {
        phone: String,
        position: usize,
    },
    AddNote {
        number: String,
        text: String,
        asker: Asker,
    },
    /// A satisfaction score (1–5) for ticket `number`, given by `phone`,
    /// after a call `agent` transferred (if known).
    RecordSurvey {
        number: String,
        score: u8,
        phone: String,
        agent: Option<String>,
        asker: Asker,
    },
    /// Call `phone` back about ticket `number` (asked by `reporter`).
    QueueCallback {
        number: String,
        phone: String,
        reporter: String,
        asker: Asker,
    },
    /// Keep the call's last recording, on ticket `number` if the call has
    /// one (else on the call, until it creates one).
    SaveRecording {
        number: Option<String>,
    },
    /// The caller (`phone`) confirms or reopens ticket `number`.
    ApplyAction {
        number: String,
        action: CustomerAction,
        phone: String,
        asker: Asker,
    },
}

/// The facts about a ticket that a dialplan can say.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketFacts {
    pub number: String,
    pub status: String,
    /// None when the asker may hear only that the ticket exists and its
    /// state (`tickets::privacy`).
    pub details: Option<TicketDetails>,
}

/// What only the ticket's own contact (or a caller an agent vouched for)
/// hears.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketDetails {
    pub ticket_type: String,
    pub category: String,
    pub created_at: DateTime<Utc>,
    pub repair_due: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreReply {
    /// A ticket created, found or noted, with the count of its contact's
    /// open tickets (0 when its details are withheld), and for a caller
    /// lookup its position among them (1 = the latest).
    Ticket {
        ticket: TicketFacts,
        open_count: usize,
        position: Option<usize>,
    },
    NotFound,
    /// A recording was kept, under this id.
    Saved {
        id: String,
    },
    Failed(String),
}

/// Who is calling, known before the first node.
#[derive(Debug, Clone, PartialEq)]
pub struct CallInfo {
    /// The From URI's user part as sent (`anonymous`, `sipp`, `8001`,
    /// `13800138000`).
    pub caller: String,
    /// The caller's number, when known (`sip::identity`): a trusted
    /// P-Asserted-Identity or Remote-Party-ID, else the From user when it
    /// can be called back.
    pub contact: Option<PhoneNumber>,
    pub dialled: String,
    /// Name and level of the customer on file for the caller's number.
    pub customer: Option<(String, CustomerLevel)>,
    /// Set when an agent transferred the call in.
    pub transferred: Option<Transferred>,
}

/// What a call transferred into the IVR came with (see
/// `ivr::transferred`), its ticket already looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct Transferred {
    /// Who transferred it (`transferred_by`), if the INVITE said.
    pub by: Option<String>,
    pub ticket: Option<TransferredTicket>,
}

/// The ticket a transferred call named, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferredTicket {
    /// The reference as the INVITE gave it.
    pub reference: String,
    /// The store's answer: the ticket (loaded as `ticket.*` before the
    /// first node), not found, or failed. `None` for a number with a wrong
    /// check digit, which is never looked up.
    pub lookup: Option<StoreReply>,
}

/// One step of the call's path, for its call record.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStep {
    pub at: DateTime<Utc>,
    pub node: String,
    pub event: String,
}

/// What happens when the current prompt finishes.
#[derive(Debug, Clone, PartialEq)]
enum After {
    Goto(String),
    WaitMenu,
    WaitCollect,
    WaitConfirm,
    Hangup,
    Transfer(String),
    /// A `record` node's prompt: the recording starts.
    Record,
    WaitReview,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Idle,
    Playing { after: After, barge_in: bool },
    WaitingMenu,
    Collecting,
    WaitingConfirm,
    WaitingStore,
    WaitingTransfer,
    Recording,
    Reviewing,
    Finished,
}

pub struct Engine {
    plan: Arc<Dialplan>,
    calendar: Arc<BusinessCalendar>,
    info: CallInfo,
    language: Language,
    variables: BTreeMap<String, String>,
    node: String,
    stage: Stage,
    typeahead: VecDeque<char>,
    attempts: u32,
    digits: String,
    timer: Option<TimerId>,
    next_timer: TimerId,
    outputs: VecDeque<Output>,
    path: Vec<PathStep>,
    /// Numbers of the tickets this call created or read, for its record.
    tickets: Vec<String>,
    /// Tickets this caller hears in full whatever their number: the one an
    /// agent named when transferring the call in, and those the call
    /// created.
    vouched: Vec<String>,
    /// A menu listens for speech now.
    listening: bool,
    /// Played before the first node (a recorded call's consent notice).
    notice: Vec<Speech>,
    now: DateTime<Utc>,
}

impl Engine {
    /// An engine for a call entering `plan` at `entry` (a node name).
    pub fn new(
        plan: Arc<Dialplan>,
        entry: &str,
        info: CallInfo,
        calendar: Arc<BusinessCalendar>,
    ) -> Engine {
        let mut variables = BTreeMap::new();
        variables.insert("caller".to_string(), info.caller.clone());
        if let Some(contact) = &info.contact {
            variables.insert("contact".to_string(), contact.to_string());
        }
        variables.insert("dialled".to_string(), info.dialled.clone());
        if let Some((name, level)) = &info.customer {
            variables.insert("customer.name".to_string(), name.clone());
            variables.insert("customer.level".to_string(), level.code().to_string());
        }
        let language = plan.language;
        variables.insert("language".to_string(), language.code().to_string());
        Engine {
            plan,
            calendar,
            info,
            language,
            variables,
            node: entry.to_string(),
            stage: Stage::Idle,
            typeahead: VecDeque::new(),
            attempts: 0,
            digits: String::new(),
            timer: None,
            next_timer: 1,
            outputs: VecDeque::new(),
            path: Vec::new(),
            tickets: Vec::new(),
            vouched: Vec::new(),
            listening: false,
            notice: Vec::new(),
            now: DateTime::<Utc>::MIN_UTC,
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Nodes visited, keys and outcome, in order.
    pub fn path(&self) -> &[PathStep] {
        &self.path
    }

    /// The tickets this call created or read, each once, in order.
    pub fn tickets(&self) -> &[String] {
        &self.tickets
    }

    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// The language the call is in now.
    pub fn language(&self) -> Language {
        self.language
    }

    /// Sets a variable the call glue knows before the first node (e.g.
    /// `recording.calls`).
    pub fn set_variable(&mut self, name: &str, value: &str) {
        self.variables.insert(name.to_string(), value.to_string());
    }

    /// Plays `prompt` (relative to the call's language), without barge-in,
    /// before the first node: the consent notice of a recorded IVR leg.
    pub fn play_first(&mut self, prompt: &str) {
        self.notice = vec![Speech::Prompt(prompt.to_string())];
    }

    /// Whether a `record` node is recording the caller now.
    pub fn is_recording(&self) -> bool {
        self.stage == Stage::Recording
    }

    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        self.now = now;
        if self.stage == Stage::Finished {
            return;
        }
        match input {
            Input::Start => {
                if let Some(transferred) = self.info.transferred.clone() {
                    self.arrive(transferred);
                }
                let node = self.node.clone();
                let notice = std::mem::take(&mut self.notice);
                if notice.is_empty() {
                    self.enter(node);
                } else {
                    self.play(&notice, false, After::Goto(node));
                }
            }
            Input::Key(key) => self.on_key(key),
            Input::PlaybackDone => {
                if let Stage::Playing { after, .. } = self.stage.clone() {
                    self.stage = Stage::Idle;
                    self.after_playback(after);
                }
            }
            Input::Timer(id) => {
                if self.timer == Some(id) {
                    self.timer = None;
                    self.on_timeout();
                }
            }
            Input::Store(reply) => {
                if self.stage == Stage::WaitingStore {
                    self.stage = Stage::Idle;
                    self.on_store(reply);
                }
            }
            Input::TransferFailed(failure) => {
                if self.stage == Stage::WaitingTransfer {
                    self.stage = Stage::Idle;
                    self.record(format!("transfer failed: {}", failure.code()));
                    self.variables
                        .insert("transfer.failure".into(), failure.code().into());
                    if let Some(NodeKind::Transfer(node)) = self.current() {
                        let target = node.on_failure.clone();
                        self.enter(target);
                    }
                }
            }
            Input::TimeLimit => {
                self.record("time limit reached");
                self.stage = Stage::Finished;
            }
            Input::SpeechStarted if self.listening => {
                // Barge-in on speech, as a key would.
                if let Stage::Playing {
                    after: After::WaitMenu,
                    barge_in: true,
                } = self.stage
                {
                    self.outputs.push_back(Output::StopPlayback);
                    self.stage = Stage::Idle;
                    self.after_playback(After::WaitMenu);
                }
            }
            Input::Speech(heard) => self.on_speech(heard),
            Input::SpeechStarted => {
                // From now on the recording's own length limit applies.
                if let (Stage::Recording, Some(NodeKind::Record(record))) =
                    (&self.stage, self.current())
                {
                    let limit = record.max_secs + RECORDING_GRACE_SECS;
                    self.record("speech");
                    self.start_timer(limit);
                }
            }
            Input::Recorded {
                end,
                duration,
                heard_speech,
            } => {
                if self.stage == Stage::Recording {
                    self.stage = Stage::Idle;
                    self.timer = None;
                    self.recorded(end, duration, heard_speech);
                }
            }
        }
    }

    /// A transferred call: records where it came from (in the entry
    /// node's path) and loads its ticket, before the first node runs.
    fn arrive(&mut self, transferred: Transferred) {
        let by = match &transferred.by {
            Some(by) => {
                self.variables.insert("transferred_by".into(), by.clone());
                format!(" by {by}")
            }
            None => String::new(),
        };
        let Some(ticket) = transferred.ticket else {
            self.record(format!("transferred in{by}"));
            return;
        };
        self.record(format!(
            "transferred in{by} with ticket {}",
            ticket.reference
        ));
        match ticket.lookup {
            Some(StoreReply::Ticket {
                ticket,
                open_count,
                position,
            }) => {
                self.vouched.push(ticket.number.clone());
                self.load_ticket(ticket, open_count, position)
            }
            Some(StoreReply::NotFound) => self.record("ticket not loaded: no such ticket"),
            Some(StoreReply::Failed(reason)) => {
                self.record(format!("ticket not loaded: store failed: {reason}"))
            }
            Some(StoreReply::Saved { .. }) => self.record("ticket not loaded"),
            None => self.record("ticket not loaded: mistyped"),
        }
    }

    fn current(&self) -> Option<&NodeKind> {
        self.plan.nodes.get(&self.node).map(|n| &n.kind)
    }

    /// The call has ended: the node it was in counts as exited.
    pub fn left_the_plan(&self) {
        if self.in_a_node() {
            crate::metrics::ivr_node_exited(&self.plan.name, &self.node);
        }
    }

    /// Whether the call has entered a node yet (before the start, `node`
    /// names the entry node without the caller being in it).
    fn in_a_node(&self) -> bool {
        self.path.iter().any(|step| step.event == "enter")
    }

    fn record(&mut self, event: impl Into<String>) {
        self.path.push(PathStep {
            at: self.now,
            node: self.node.clone(),
            event: event.into(),
        });
    }

    fn finish(&mut self, reason: &str) {
        if std::mem::take(&mut self.listening) {
            self.outputs.push_back(Output::StopListening);
        }
        self.record(format!("hangup: {reason}"));
        self.stage = Stage::Finished;
        self.outputs.push_back(Output::Hangup {
            reason: reason.to_string(),
        });
    }

    fn start_timer(&mut self, seconds: u32) {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timer = Some(id);
        self.outputs.push_back(Output::StartTimer {
            id,
            after: Duration::from_secs(u64::from(seconds)),
        });
    }

    /// Plays `items`, then does `after`. An empty list goes on at once.
    fn play(&mut self, items: &[Speech], barge_in: bool, after: After) {
        let spoken = speech::utterances(
            items,
            self.language,
            &self.variables,
            self.calendar.timezone(),
        );
        for skipped in &spoken.skipped {
            self.record(format!("cannot speak: {skipped}"));
        }
        if spoken.utterances.is_empty() {
            self.after_playback(after);
            return;
        }
        if barge_in && !self.typeahead.is_empty() && after != After::Hangup {
            // The caller already answered: skip the prompt.
            self.after_playback(after);
            return;
        }
        self.stage = Stage::Playing { after, barge_in };
        self.outputs.push_back(Output::Play {
            items: spoken.utterances,
            barge_in,
        });
    }

    fn after_playback(&mut self, after: After) {
        match after {
            After::Goto(node) => self.enter(node),
            After::WaitMenu => {
                self.stage = Stage::WaitingMenu;
                if !self.take_menu_key() {
                    if let Some(NodeKind::Menu(menu)) = self.current() {
                        let timeout = menu.timeout_secs;
                        self.start_timer(timeout);
                    }
                }
            }
            After::WaitCollect => {
                self.stage = Stage::Collecting;
                if !self.take_collect_keys() {
                    if let Some(NodeKind::Collect(collect)) = self.current() {
                        let timeout = if self.digits.is_empty() {
                            collect.first_digit_timeout_secs
                        } else {
                            collect.inter_digit_timeout_secs
                        };
                        self.start_timer(timeout);
                    }
                }
            }
            After::WaitConfirm => {
                self.stage = Stage::WaitingConfirm;
                if !self.take_confirm_key() {
                    if let Some(NodeKind::Collect(collect)) = self.current() {
                        let timeout = collect.first_digit_timeout_secs;
                        self.start_timer(timeout);
                    }
                }
            }
            After::Hangup => self.finish("dialplan"),
            After::Record => self.start_recording(),
            After::WaitReview => {
                self.stage = Stage::Reviewing;
                if !self.take_review_key() {
                    if let Some(NodeKind::Record(Record {
                        review: Some(review),
                        ..
                    })) = self.current()
                    {
                        let timeout = review.timeout_secs;
                        self.start_timer(timeout);
                    }
                }
            }
            After::Transfer(target) => {
                self.record(format!("transfer to {target}"));
                self.stage = Stage::WaitingTransfer;
                self.outputs.push_back(Output::Transfer { target });
            }
        }
    }

    fn on_key(&mut self, key: char) {
        self.typeahead.push_back(key);
        match self.stage.clone() {
            Stage::Playing {
                after,
                barge_in: true,
            } => {
                self.outputs.push_back(Output::StopPlayback);
                self.stage = Stage::Idle;
                self.after_playback(after);
            }
            Stage::WaitingMenu => {
                self.take_menu_key();
            }
            Stage::Collecting => {
                self.take_collect_keys();
            }
            Stage::WaitingConfirm => {
                self.take_confirm_key();
            }
            Stage::Recording => {
                // Only the finish key means anything while recording.
                self.typeahead.clear();
                if let Some(NodeKind::Record(record)) = self.current() {
                    if record.finish_key.starts_with(key) {
                        self.record(format!("key {key}: recording ends"));
                        self.outputs.push_back(Output::StopRecording);
                    }
                }
            }
            Stage::Reviewing => {
                self.take_review_key();
            }
            _ => {}
        }
    }

    fn on_timeout(&mut self) {
        match self.stage {
            Stage::WaitingMenu => {
                self.record("no input");
                self.retry_menu(true);
            }
            Stage::Collecting => {
                let Some(NodeKind::Collect(collect)) = self.current().cloned() else {
                    return;
                };
                if self.digits.is_empty() {
                    self.record("no input");
                    self.retry_collect(&collect, true);
                } else {
                    self.complete_collect(&collect);
                }
            }
            Stage::Recording => {
                // No speech in time, or (the net under the media side's
                // own limit) the maximum length.
                self.record("recording timed out");
                self.outputs.push_back(Output::StopRecording);
            }
            Stage::Reviewing => {
                self.record("no answer: kept");
                self.save_recording();
            }
            Stage::WaitingConfirm => {
                self.record("no confirmation");
                let Some(NodeKind::Collect(collect)) = self.current().cloned() else {
                    return;
                };
                self.retry_collect(&collect, true);
            }
            _ => {}
        }
    }

    /// Enters `node` and runs through nodes that do not wait, until one
    /// plays, waits for input or the store, or the call ends.
    fn enter(&mut self, node: String) {
        if std::mem::take(&mut self.listening) {
            self.outputs.push_back(Output::StopListening);
        }
        let mut next = Some(node);
        let mut steps = 0;
        while let Some(name) = next.take() {
            steps += 1;
            if steps > MAX_STEPS {
                self.finish("dialplan loops without waiting");
                return;
            }
            if self.in_a_node() {
                crate::metrics::ivr_node_exited(&self.plan.name, &self.node);
            }
            crate::metrics::ivr_node_entered(&self.plan.name, &name);
            self.node = name;
            self.attempts = 0;
            self.timer = None;
            self.record("enter");
            let Some(kind) = self.current().cloned() else {
                let missing = self.node.clone();
                self.finish(&format!("node {missing} does not exist"));
                return;
            };
            next = self.run(&kind);
        }
    }

    /// Starts one node; returns the node to go to at once, if any.
    fn run(&mut self, kind: &NodeKind) -> Option<String> {
        match kind {
            NodeKind::Play(play) => {
                self.play(&play.say, play.barge_in, After::Goto(play.next.clone()));
                None
            }
            NodeKind::Record(record) => {
                // Barge-in: the finish key skips, any other key starts the
                // recording at once.
                self.play(&record.say, true, After::Record);
                None
            }
            NodeKind::Menu(menu) => {
                self.prompt_menu(menu, &[]);
                None
            }
            NodeKind::Collect(collect) => {
                self.digits.clear();
                self.prompt_collect(collect, &[]);
                None
            }
            NodeKind::Branch(branch) => {
                let chosen = branch.cases.iter().position(|case| self.holds(case));
                // Which case held goes into the call's path, so a record
                // (and a coverage test) tells cases with one target apart.
                Some(match chosen {
                    Some(index) => {
                        self.record(format!("case {}", index + 1));
                        branch.cases[index].goto.clone()
                    }
                    None => {
                        self.record("else");
                        branch.otherwise.clone()
                    }
                })
            }
            NodeKind::SetLanguage(node) => {
                self.language = node.language;
                self.variables
                    .insert("language".into(), node.language.code().into());
                Some(node.next.clone())
            }
            NodeKind::Set(node) => match render(&node.value, &self.variables) {
                Ok(value) => {
                    self.variables.insert(node.variable.clone(), value);
                    Some(node.next.clone())
                }
                Err(e) => {
                    self.record(format!("cannot set {}: {e}", node.variable));
                    Some(node.next.clone())
                }
            },
            NodeKind::TicketCreate(node) => {
                let fields = (
                    render(&node.category, &self.variables),
                    // Optional: a variable never set (a known caller who
                    // was not asked) leaves it empty.
                    match node
                        .service_number
                        .as_ref()
                        .map(|t| render(t, &self.variables))
                    {
                        Some(Err(speech::SpeechError::Unset(_))) | None => Ok(None),
                        Some(result) => result.map(Some),
                    },
                    render(&node.description, &self.variables),
                );
                match fields {
                    (Ok(category), Ok(service_number), Ok(description)) => {
                        let contact_phone = self.contact_for_ticket();
                        self.request(StoreRequest::CreateTicket {
                            ticket_type: node.ticket_type,
                            category,
                            service_number,
                            description,
                            contact_phone,
                            reporter: self.reporter(),
                            language: self.language,
                        });
                        None
                    }
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        self.record(format!("cannot create ticket: {e}"));
                        Some(node.on_error.clone())
                    }
                }
            }
            NodeKind::TicketLookup(node) => {
                let by_caller = matches!(node.by, LookupBy::Caller | LookupBy::CallerNext);
                let Some(phone) = self.info.contact.clone().filter(|_| by_caller) else {
                    if by_caller {
                        // A caller whose number is unknown has no tickets
                        // of their own to find.
                        self.record("not found: the caller's number is unknown");
                        return Some(node.not_found.clone());
                    }
                    return self.lookup_number(node);
                };
                let position = match node.by {
                    LookupBy::CallerNext => self
                        .variables
                        .get("tickets.position")
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0),
                    _ => 0,
                };
                self.request(StoreRequest::LookupCaller {
                    phone: phone.to_string(),
                    position,
                });
                None
            }
            NodeKind::TicketNote(node) => {
                let number = self.variables.get("ticket.number").cloned();
                match (number, render(&node.text, &self.variables)) {
                    (Some(number), Ok(text)) => {
                        let asker = self.asker(&number);
                        self.request(StoreRequest::AddNote {
                            number,
                            text,
                            asker,
                        });
                        None
                    }
                    _ => {
                        self.record("no ticket to note");
                        Some(node.on_error.clone())
                    }
                }
            }
            NodeKind::TicketSurvey(node) => {
                let Some(number) = self.variables.get("ticket.number").cloned() else {
                    self.record("no ticket to survey");
                    return Some(node.on_error.clone());
                };
                let score = render(&node.score, &self.variables)
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        survey_score(&text).ok_or_else(|| format!("{text:?} is not 1 to 5"))
                    });
                match score {
                    Ok(score) => {
                        let asker = self.asker(&number);
                        self.request(StoreRequest::RecordSurvey {
                            number,
                            score,
                            phone: self.reporter(),
                            agent: self.info.transferred.as_ref().and_then(|t| t.by.clone()),
                            asker,
                        });
                        None
                    }
                    Err(e) => {
                        self.record(format!("cannot record the score: {e}"));
                        Some(node.on_error.clone())
                    }
                }
            }
            NodeKind::TicketAction(node) => {
                let Some(number) = self.variables.get("ticket.number").cloned() else {
                    self.record("no ticket to act on");
                    return Some(node.on_error.clone());
                };
                let asker = self.asker(&number);
                self.request(StoreRequest::ApplyAction {
                    number,
                    action: node.action,
                    phone: self.reporter(),
                    asker,
                });
                None
            }
            NodeKind::CallbackRequest(node) => {
                let Some(number) = self.variables.get("ticket.number").cloned() else {
                    self.record("no ticket for the callback");
                    return Some(node.on_error.clone());
                };
                let phone = self
                    .variables
                    .get("contact")
                    .and_then(|value| PhoneNumber::contact(value).ok());
                let Some(phone) = phone else {
                    self.record("no number to call back");
                    return Some(node.on_error.clone());
                };
                let asker = self.asker(&number);
                self.request(StoreRequest::QueueCallback {
                    number,
                    phone: phone.to_string(),
                    reporter: self.reporter(),
                    asker,
                });
                None
            }
            NodeKind::Transfer(node) => {
                self.play(&node.say, false, After::Transfer(node.target.clone()));
                None
            }
            NodeKind::Hangup(node) => {
                self.play(&node.say, false, After::Hangup);
                None
            }
            NodeKind::Goto(node) => Some(node.next.clone()),
        }
    }

    /// A lookup of the ticket whose number the node's template gives.
    fn lookup_number(&mut self, node: &super::dialplan::TicketLookup) -> Option<String> {
        let number = match &node.number {
            Some(template) => render(template, &self.variables),
            None => Err(speech::SpeechError::Unset("number".into())),
        };
        match number {
            Ok(number) => {
                let asker = self.asker(&number);
                self.request(StoreRequest::LookupNumber { number, asker });
                None
            }
            Err(e) => {
                self.record(format!("cannot look up: {e}"));
                Some(node.on_error.clone())
            }
        }
    }

    /// Who asks about ticket `number`: the caller's number, and whether an
    /// agent vouched for the caller with this ticket (or the call made it).
    fn asker(&self, number: &str) -> Asker {
        let digits = |text: &str| -> String { text.chars().filter(char::is_ascii_digit).collect() };
        let vouched = self
            .vouched
            .iter()
            .any(|vouched| digits(vouched) == digits(number));
        Asker {
            phone: self.info.contact.clone(),
            vouched,
        }
    }

    /// Who reports a ticket or gives a score, for its history: the
    /// caller's number, else the From user as sent.
    fn reporter(&self) -> String {
        self.info
            .contact
            .as_ref()
            .map_or_else(|| self.info.caller.clone(), ToString::to_string)
    }

    /// A new ticket's contact number: the `contact` variable (the caller's
    /// number, or what the plan set or collected) in the phone normal
    /// form. A value that cannot be called back gives a ticket without a
    /// contact rather than no ticket.
    fn contact_for_ticket(&mut self) -> Option<String> {
        let value = self.variables.get("contact")?.clone();
        match PhoneNumber::contact(&value) {
            Ok(phone) => Some(phone.to_string()),
            Err(e) => {
                self.record(format!("ticket without a contact: {e}"));
                None
            }
        }
    }

    fn request(&mut self, request: StoreRequest) {
        self.stage = Stage::WaitingStore;
        self.outputs.push_back(Output::Store(request));
    }

    /// A `record` node's prompt has played (or was cut short by a key):
    /// the finish key skips, otherwise the recording starts.
    fn start_recording(&mut self) {
        let Some(NodeKind::Record(record)) = self.current().cloned() else {
            return;
        };
        let skipped = self
            .typeahead
            .iter()
            .any(|key| record.finish_key.starts_with(*key));
        self.typeahead.clear();
        if skipped {
            self.record("skipped");
            self.enter(record.on_empty);
            return;
        }
        self.record("recording");
        self.stage = Stage::Recording;
        self.outputs.push_back(Output::StartRecording(RecordSpec {
            max: Duration::from_secs(u64::from(record.max_secs)),
            silence: Duration::from_secs(u64::from(record.silence_secs)),
            no_speech: Duration::from_secs(u64::from(record.no_speech_secs)),
            level: record.speech_level,
        }));
        // Until the caller speaks, the wait for speech is timed here, so
        // that a phone sending no RTP in silence still moves on.
        self.start_timer(record.no_speech_secs);
    }

    fn recorded(&mut self, end: RecordEnd, duration: Duration, heard_speech: bool) {
        let Some(NodeKind::Record(record)) = self.current().cloned() else {
            return;
        };
        self.record(format!(
            "recorded {:.1} s ({})",
            duration.as_secs_f64(),
            end.code()
        ));
        if !heard_speech {
            self.record("nothing said");
            self.enter(record.on_empty);
            return;
        }
        match &record.review {
            Some(review) => self.play(&review.say, true, After::WaitReview),
            None => self.save_recording(),
        }
    }

    /// The review's key, if one was pressed: keep saves, again records
    /// anew; other keys are dropped.
    fn take_review_key(&mut self) -> bool {
        let Some(NodeKind::Record(Record {
            review: Some(review),
            ..
        })) = self.current().cloned()
        else {
            return false;
        };
        while let Some(key) = self.typeahead.pop_front() {
            if review.keep.starts_with(key) {
                self.timer = None;
                self.record(format!("key {key}: kept"));
                self.save_recording();
                return true;
            }
            if review.again.starts_with(key) {
                self.timer = None;
                self.record(format!("key {key}: record again"));
                let node = self.node.clone();
                self.enter(node);
                return true;
            }
        }
        false
    }

    fn save_recording(&mut self) {
        let number = self.variables.get("ticket.number").cloned();
        self.request(StoreRequest::SaveRecording { number });
    }

    fn on_store(&mut self, reply: StoreReply) {
        let Some(kind) = self.current().cloned() else {
            return;
        };
        if let NodeKind::Record(record) = &kind {
            match reply {
                StoreReply::Saved { id } => {
                    self.record(format!("recording {id} kept"));
                    self.variables.insert("recording.id".into(), id);
                    self.play(&record.after, false, After::Goto(record.next.clone()));
                }
                StoreReply::Failed(reason) => {
                    self.record(format!("store failed: {reason}"));
                    self.enter(record.on_error.clone());
                }
                StoreReply::Ticket { .. } | StoreReply::NotFound => {
                    self.enter(record.on_error.clone());
                }
            }
            return;
        }
        let (ok, missing, failed) = match &kind {
            NodeKind::TicketCreate(n) => (n.next.clone(), n.on_error.clone(), n.on_error.clone()),
            NodeKind::TicketLookup(n) => (n.found.clone(), n.not_found.clone(), n.on_error.clone()),
            NodeKind::TicketNote(n) => (n.next.clone(), n.on_error.clone(), n.on_error.clone()),
            NodeKind::TicketSurvey(n) => (n.next.clone(), n.on_error.clone(), n.on_error.clone()),
            NodeKind::TicketAction(n) => (n.next.clone(), n.on_error.clone(), n.on_error.clone()),
            NodeKind::CallbackRequest(n) => {
                (n.next.clone(), n.on_error.clone(), n.on_error.clone())
            }
            _ => return,
        };
        match reply {
            StoreReply::Ticket {
                ticket,
                open_count,
                position,
            } => {
                if matches!(kind, NodeKind::TicketCreate(_)) {
                    self.vouched.push(ticket.number.clone());
                }
                self.load_ticket(ticket, open_count, position);
                self.enter(ok);
            }
            StoreReply::NotFound => {
                self.record("not found");
                self.enter(missing);
            }
            StoreReply::Failed(reason) => {
                self.record(format!("store failed: {reason}"));
                self.enter(failed);
            }
            StoreReply::Saved { .. } => self.enter(failed),
        }
    }

    /// Makes `ticket` the call's current ticket: the `ticket.*` and
    /// `tickets.*` variables, the path and the call's ticket list. Without
    /// its details only the number, the state and `ticket.details =
    /// withheld` are set.
    fn load_ticket(&mut self, ticket: TicketFacts, open_count: usize, position: Option<usize>) {
        match ticket.details {
            Some(_) => self.record(format!("ticket {}", ticket.number)),
            None => self.record(format!("ticket {} (details withheld)", ticket.number)),
        }
        if !self.tickets.contains(&ticket.number) {
            self.tickets.push(ticket.number.clone());
        }
        let v = &mut self.variables;
        for name in [
            "ticket.type",
            "ticket.category",
            "ticket.created_at",
            "ticket.repair_due",
            "tickets.open_count",
        ] {
            v.remove(name);
        }
        v.insert("ticket.number".into(), ticket.number);
        v.insert("ticket.status".into(), ticket.status);
        let Some(details) = ticket.details else {
            v.insert("ticket.details".into(), "withheld".into());
            return;
        };
        v.insert("ticket.details".into(), "shown".into());
        v.insert("ticket.type".into(), details.ticket_type);
        v.insert("ticket.category".into(), details.category);
        v.insert("ticket.created_at".into(), details.created_at.to_rfc3339());
        if let Some(due) = details.repair_due {
            v.insert("ticket.repair_due".into(), due.to_rfc3339());
        }
        v.insert("tickets.open_count".into(), open_count.to_string());
        if let Some(position) = position {
            v.insert("tickets.position".into(), position.to_string());
        }
    }

    fn holds(&self, case: &Case) -> bool {
        let zone = self.calendar.timezone();
        let local = self.now.with_timezone(&zone);
        if let Some(known) = case.caller_known {
            return self.info.customer.is_some() == known;
        }
        if let Some(levels) = &case.level {
            let level = self
                .info
                .customer
                .as_ref()
                .map_or(CustomerLevel::LocalC, |(_, level)| *level);
            return levels.contains(&level);
        }
        if let Some(open) = case.business_hours {
            return self.calendar.is_working_time(self.now) == open;
        }
        if let Some(day) = &case.day {
            let date = local.date_naive();
            let spec = self.calendar.spec();
            let kind = if self.calendar.is_working_day(date) {
                "working"
            } else if spec.holidays.contains(&date) {
                "holiday"
            } else {
                "weekend"
            };
            return day == kind;
        }
        if let Some(range) = &case.time {
            let Some((from, to)) = parse_time_range(range) else {
                return false;
            };
            let now = NaiveTime::from_hms_opt(local.hour(), local.minute(), 0).unwrap_or_default();
            return if from <= to {
                from <= now && now < to
            } else {
                now >= from || now < to
            };
        }
        if let Some(variable) = &case.variable {
            let value = self.variables.get(variable);
            if let Some(expected) = &case.equals {
                return value == Some(expected);
            }
            if let Some(set) = case.is_set {
                return value.is_some() == set;
            }
            if let Some(phone) = case.is_phone {
                let dialable = value.is_some_and(|v| PhoneNumber::contact(v).is_ok());
                return dialable == phone;
            }
        }
        false
    }

    // --- menus ---

    fn prompt_menu(&mut self, menu: &Menu, before: &[Speech]) {
        let mut items = before.to_vec();
        items.extend(menu.say.iter().cloned());
        if !menu.listen.is_empty() {
            self.listening = true;
            self.outputs.push_back(Output::Listen(Grammar {
                id: format!("{}/{}", self.plan.name, self.node),
                phrases: menu
                    .listen
                    .iter()
                    .flat_map(|(key, phrases)| {
                        let key = key.chars().next().unwrap_or('#');
                        phrases.iter().map(move |p| (key, p.clone()))
                    })
                    .collect(),
            }));
        }
        self.play(&items, true, After::WaitMenu);
    }

    /// A listening menu's result: a phrase presses its key; anything else
    /// counts as an invalid key.
    fn on_speech(&mut self, heard: Option<(char, String, f32)>) {
        if !self.listening {
            return;
        }
        self.listening = false;
        let in_menu = matches!(
            self.stage,
            Stage::WaitingMenu
                | Stage::Playing {
                    after: After::WaitMenu,
                    ..
                }
        );
        if !in_menu {
            return;
        }
        match heard {
            Some((key, phrase, confidence)) => {
                self.record(format!("speech: {phrase} ({confidence:.2}) as key {key}"));
                self.on_key(key);
            }
            None => {
                self.record("speech: no match");
                if matches!(self.stage, Stage::Playing { .. }) {
                    self.outputs.push_back(Output::StopPlayback);
                }
                self.timer = None;
                self.stage = Stage::WaitingMenu;
                self.retry_menu(false);
            }
        }
    }

    /// Takes one key for the menu; true if it did.
    fn take_menu_key(&mut self) -> bool {
        let Some(key) = self.typeahead.pop_front() else {
            return false;
        };
        self.timer = None;
        let Some(NodeKind::Menu(menu)) = self.current().cloned() else {
            return true;
        };
        match menu.keys.get(&key.to_string()) {
            Some(target) => {
                self.record(format!("key {key}"));
                self.enter(target.clone());
            }
            None => {
                self.record(format!("invalid key {key}"));
                self.retry_menu(false);
            }
        }
        true
    }

    fn retry_menu(&mut self, timed_out: bool) {
        let Some(NodeKind::Menu(menu)) = self.current().cloned() else {
            return;
        };
        self.attempts += 1;
        if self.attempts > menu.retries {
            self.record("retries exhausted");
            self.enter(menu.on_failure.clone());
            return;
        }
        let before = if timed_out {
            &menu.no_input
        } else {
            &menu.invalid
        };
        self.prompt_menu(&menu, before);
    }

    // --- collect ---

    fn prompt_collect(&mut self, collect: &Collect, before: &[Speech]) {
        if !self.typeahead.is_empty() {
            // Digits typed ahead: skip the prompt and take them.
            self.stage = Stage::Collecting;
            self.take_collect_keys();
            return;
        }
        let mut items = before.to_vec();
        items.extend(collect.say.iter().cloned());
        self.play(&items, true, After::WaitCollect);
    }

    /// Takes keys for the collect until it completes or the queue is empty;
    /// true if the collect completed (and moved on).
    fn take_collect_keys(&mut self) -> bool {
        let Some(NodeKind::Collect(collect)) = self.current().cloned() else {
            return false;
        };
        let mut took = false;
        while let Some(key) = self.typeahead.pop_front() {
            took = true;
            self.timer = None;
            if collect.terminator.as_deref() == Some(key.to_string().as_str()) {
                self.record(format!("key {key}"));
                self.complete_collect(&collect);
                return true;
            }
            if key.is_ascii_digit() {
                self.digits.push(key);
                if self.digits.len() >= collect.max_digits as usize {
                    self.record(format!("keys {}", self.digits));
                    self.complete_collect(&collect);
                    return true;
                }
            } else {
                self.record(format!("ignored key {key}"));
            }
        }
        if took {
            self.start_timer(collect.inter_digit_timeout_secs);
        }
        false
    }

    fn complete_collect(&mut self, collect: &Collect) {
        self.timer = None;
        let digits = std::mem::take(&mut self.digits);
        if !valid_input(collect, &digits) {
            self.record(format!("invalid input {digits}"));
            self.retry_collect(collect, false);
            return;
        }
        self.record(format!("collected {digits}"));
        self.variables
            .insert(collect.variable.clone(), digits.clone());
        match &collect.confirm {
            Some(confirm) => self.prompt_confirm(confirm, &digits),
            None => self.enter(collect.next.clone()),
        }
    }

    fn retry_collect(&mut self, collect: &Collect, timed_out: bool) {
        self.attempts += 1;
        self.digits.clear();
        if self.attempts > collect.retries {
            self.record("retries exhausted");
            self.enter(collect.on_failure.clone());
            return;
        }
        let before = if timed_out {
            &collect.no_input
        } else {
            &collect.invalid
        };
        self.prompt_collect(collect, before);
    }

    fn prompt_confirm(&mut self, confirm: &Confirm, digits: &str) {
        let mut items = confirm.before.clone();
        items.push(Speech::Say(super::dialplan::SayItem::Digits(
            digits.to_string(),
        )));
        items.extend(confirm.after.iter().cloned());
        self.play(&items, true, After::WaitConfirm);
    }

    fn take_confirm_key(&mut self) -> bool {
        let Some(key) = self.typeahead.pop_front() else {
            return false;
        };
        self.timer = None;
        let Some(NodeKind::Collect(collect)) = self.current().cloned() else {
            return true;
        };
        let Some(confirm) = &collect.confirm else {
            return true;
        };
        let key_text = key.to_string();
        if key_text == confirm.yes {
            self.record(format!("confirmed with {key}"));
            self.enter(collect.next.clone());
        } else if key_text == confirm.no {
            // Asking to re-enter is not a failed try: the caller hears the
            // question again and is never sent to `on_failure` for
            // correcting themselves.
            self.record(format!("re-enter with {key}"));
            self.variables.remove(&collect.variable);
            self.digits.clear();
            self.prompt_collect(&collect, &[]);
        } else {
            self.record(format!("invalid key {key}"));
            self.attempts += 1;
            if self.attempts > collect.retries {
                self.record("retries exhausted");
                self.enter(collect.on_failure.clone());
            } else {
                let value = self
                    .variables
                    .get(&collect.variable)
                    .cloned()
                    .unwrap_or_default();
                self.prompt_confirm(confirm, &value);
            }
        }
        true
    }
}

fn valid_input(collect: &Collect, digits: &str) -> bool {
    let length = digits.len() as u32;
    if length < collect.min_digits || length > collect.max_digits {
        return false;
    }
    if !collect.prefixes.is_empty()
        && !collect
            .prefixes
            .iter()
            .any(|p| digits.starts_with(p.as_str()))
    {
        return false;
    }
    match collect.validate {
        Validation::None => true,
        Validation::TicketNumber => digits.parse::<TicketNumber>().is_ok(),
        Validation::Phone => PhoneNumber::contact(digits).is_ok(),
    }
}

/// A survey score: one of the digits 1 to 5, nothing else.
pub fn survey_score(text: &str) -> Option<u8> {
    match text.trim().as_bytes() {
        [digit @ b'1'..=b'5'] => Some(digit - b'0'),
        _ => None,
    }
}

/// "HH:MM-HH:MM" as two times.
pub fn parse_time_range(text: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (from, to) = text.split_once('-')?;
    let parse = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok();
    Some((parse(from)?, parse(to)?))
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
