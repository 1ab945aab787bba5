//! The engine driven by events: what callers hear, keys typed ahead, retries,
//! timeouts, confirmation, store round trips and branches.

use super::*;
use crate::tickets::model::Status;
use chrono::TimeZone;

const PLAN: &str = r##"
[dialplan]
name = "test"
entries = { "10000" = "welcome" }
languages = ["zh", "en"]

[nodes.welcome]
kind = "play"
say = ["welcome"]
barge_in = true
next = "main"

[nodes.main]
kind = "menu"
say = ["main_menu"]
keys = { "1" = "status", "9" = "known", "*" = "english" }
retries = 2
invalid = ["invalid"]
no_input = ["no_input"]
on_failure = "bye"

[nodes.english]
kind = "set_language"
language = "en"
next = "main"

[nodes.known]
kind = "branch"
cases = [{ level = ["group", "provincial"], goto = "vip" }, { caller_known = true, goto = "create" }]
else = "service"

[nodes.vip]
kind = "play"
say = ["vip"]
next = "create"

[nodes.service]
kind = "collect"
say = ["enter_service"]
variable = "service_number"
min_digits = 5
max_digits = 12
terminator = "#"
confirm = { before = ["you_entered"], after = ["confirm_or_retry"] }
retries = 1
invalid = ["invalid"]
no_input = ["no_input"]
next = "create"
on_failure = "bye"

[nodes.create]
kind = "ticket_create"
type = "fault_report"
category = "virtual_network"
service_number = "${service_number}"
description = "IVR fault report"
next = "read_back"
on_error = "bye"

[nodes.read_back]
kind = "play"
say = ["your_ticket", { digits = "${ticket.number}" }]
next = "bye"

[nodes.status]
kind = "collect"
say = ["enter_ticket"]
variable = "ticket_input"
min_digits = 10
max_digits = 10
validate = "ticket_number"
invalid = ["mistyped"]
next = "lookup"
on_failure = "bye"

[nodes.lookup]
kind = "ticket_lookup"
by = "number"
number = "${ticket_input}"
found = "state"
not_found = "no_such"
on_error = "bye"

[nodes.state]
kind = "hangup"
say = ["status_is", "status/${ticket.status}"]

[nodes.no_such]
kind = "hangup"
say = ["no_such_ticket"]

[nodes.bye]
kind = "hangup"
say = ["goodbye"]
"##;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
}

/// An engine started at `entry` of the plan `text`.
fn start(text: &str, entry: &str, customer: Option<(String, CustomerLevel)>) -> Engine {
    let info = CallInfo {
        caller: "13800138000".into(),
        contact: PhoneNumber::contact("13800138000").ok(),
        dialled: "10000".into(),
        customer,
        transferred: None,
    };
    start_call(text, entry, info)
}

fn start_call(text: &str, entry: &str, info: CallInfo) -> Engine {
    let plan = Arc::new(Dialplan::parse(text, "test.toml").expect("test plan parses"));
    let mut engine = Engine::new(plan, entry, info, Arc::new(BusinessCalendar::default()));
    engine.handle(Input::Start, now());
    engine
}

fn engine_for(customer: Option<(String, CustomerLevel)>) -> Engine {
    start(PLAN, "welcome", customer)
}

/// Drains the outputs.
fn outputs(engine: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| engine.poll_output()).collect()
}

fn prompt_names(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Play { items, .. } => Some(items),
            _ => None,
        })
        .flatten()
        .filter_map(|u| match u {
            Utterance::Prompt(name) => Some(name.clone()),
            Utterance::Silence(_) => None,
        })
        .collect()
}

fn last_timer(outputs: &[Output]) -> Option<TimerId> {
    outputs.iter().rev().find_map(|o| match o {
        Output::StartTimer { id, .. } => Some(*id),
        _ => None,
    })
}

fn key(engine: &mut Engine, keys: &str) {
    for k in keys.chars() {
        engine.handle(Input::Key(k), now());
    }
}

fn done(engine: &mut Engine) {
    engine.handle(Input::PlaybackDone, now());
}

fn ticket(number: &str) -> StoreReply {
    StoreReply::Ticket {
        ticket: TicketFacts {
            number: number.into(),
            status: Status::Dispatched.code().into(),
            details: Some(TicketDetails {
                ticket_type: "fault_report".into(),
                category: "virtual_network".into(),
                created_at: now(),
                repair_due: None,
            }),
        },
        open_count: 1,
        position: None,
    }
}

fn valid_ticket_number() -> String {
    TicketNumber::generate(&mut rand::rng()).to_string()
}

#[test]
fn the_greeting_plays_then_the_menu_waits_for_a_key() {
    let mut engine = engine_for(None);
    let out = outputs(&mut engine);
    assert_eq!(prompt_names(&out), ["zh/welcome"]);
    assert!(matches!(out[0], Output::Play { barge_in: true, .. }));
    done(&mut engine);
    let out = outputs(&mut engine);
    assert_eq!(prompt_names(&out), ["zh/main_menu"]);
    done(&mut engine);
    let out = outputs(&mut engine);
    assert_eq!(
        out,
        [Output::StartTimer {
            id: 1,
            after: Duration::from_secs(5)
        }]
    );
}

#[test]
fn a_recorded_call_hears_the_notice_whole_before_the_first_node() {
    let plan = Arc::new(Dialplan::parse(PLAN, "test.toml").expect("test plan parses"));
    let info = CallInfo {
        caller: "13800138000".into(),
        contact: None,
        dialled: "10000".into(),
        customer: None,
        transferred: None,
    };
    let mut engine = Engine::new(plan, "welcome", info, Arc::new(BusinessCalendar::default()));
    engine.play_first("call_recording_notice");
    engine.handle(Input::Start, now());
    let out = outputs(&mut engine);
    assert_eq!(prompt_names(&out), ["zh/call_recording_notice"]);
    assert!(matches!(
        out[0],
        Output::Play {
            barge_in: false,
            ..
        }
    ));
    // A key during the notice does not cut it short; it is not lost.
    key(&mut engine, "9");
    assert!(outputs(&mut engine).is_empty());
    done(&mut engine);
    let out = outputs(&mut engine);
    assert!(!prompt_names(&out).contains(&"zh/call_recording_notice".to_string()));
    assert!(
        engine.path().iter().any(|step| step.node == "main"),
        "the key typed ahead reached the menu: {:?}",
        engine.path()
    );
}

#[test]
fn a_caller_who_types_ahead_skips_the_prompts_and_loses_no_key() {
    let mut engine = engine_for(None);
    outputs(&mut engine);
    // During the greeting: 9 for fault report, then the service number.
    key(&mut engine, "9");
    let out = outputs(&mut engine);
    assert_eq!(out[0], Output::StopPlayback);
    key(&mut engine, "55512345#");
    let out = outputs(&mut engine);
    // No menu prompt and no "enter your service number": straight to the
    // read-back of what was keyed.
    let heard = prompt_names(&out);
    assert_eq!(heard[0], "zh/you_entered");
    assert_eq!(
        &heard[1..9],
        [
            "zh/digits/5",
            "zh/digits/5",
            "zh/digits/5",
            "zh/digits/1",
            "zh/digits/2",
            "zh/digits/3",
            "zh/digits/4",
            "zh/digits/5"
        ]
    );
    assert_eq!(heard[9], "zh/confirm_or_retry");
    key(&mut engine, "1");
    let out = outputs(&mut engine);
    assert!(out.contains(&Output::StopPlayback));
    let Some(Output::Store(StoreRequest::CreateTicket {
        service_number,
        contact_phone,
        ..
    })) = out.iter().find(|o| matches!(o, Output::Store(_)))
    else {
        panic!("no ticket created: {out:?}");
    };
    assert_eq!(service_number.as_deref(), Some("55512345"));
    assert_eq!(contact_phone.as_deref(), Some("13800138000"));
    let keys: Vec<_> = engine
        .path()
        .iter()
        .map(|s| s.event.as_str())
        .filter(|e| e.starts_with("key") || e.starts_with("confirmed"))
        .collect();
    assert_eq!(keys, ["key 9", "key #", "confirmed with 1"]);
}

#[test]
fn an_invalid_key_gets_the_invalid_prompt_and_retries_run_out() {
    let mut engine = engine_for(None);
    done(&mut engine);
    done(&mut engine);
    outputs(&mut engine);
    key(&mut engine, "5");
    let heard = prompt_names(&outputs(&mut engine));
    assert_eq!(heard, ["zh/invalid", "zh/main_menu"]);
    done(&mut engine);
    key(&mut engine, "7");
    assert_eq!(
        prompt_names(&outputs(&mut engine)),
        ["zh/invalid", "zh/main_menu"]
    );
    done(&mut engine);
    key(&mut engine, "8");
    let out = outputs(&mut engine);
    assert_eq!(prompt_names(&out), ["zh/goodbye"]);
    done(&mut engine);
    assert_eq!(
        outputs(&mut engine),
        [Output::Hangup {
            reason: "dialplan".into()
        }]
    );
    assert!(engine.is_finished());
}

#[test]
fn silence_gets_the_no_input_prompt_and_stale_timers_are_ignored() {
    let mut engine = engine_for(None);
    done(&mut engine);
    done(&mut engine);
    let first = last_timer(&outputs(&mut engine)).unwrap();
    engine.handle(Input::Timer(first), now());
    let out = outputs(&mut engine);
    assert_eq!(prompt_names(&out), ["zh/no_input", "zh/main_menu"]);
    // The first timer firing again changes nothing.
    engine.handle(Input::Timer(first), now());
    assert!(outputs(&mut engine).is_empty());
}

#[test]
fn star_switches_to_english_prompts() {
    let mut engine = engine_for(None);
    key(&mut engine, "*");
    let heard = prompt_names(&outputs(&mut engine));
    assert_eq!(heard, ["zh/welcome", "en/main_menu"]);
}

#[test]
fn re_entering_after_confirmation_asks_again_without_using_up_attempts() {
    let mut engine = engine_for(None);
    key(&mut engine, "9");
    outputs(&mut engine);
    done(&mut engine); // "enter your service number" finished
                       // Three corrections in a row, with one retry allowed: each is the
                       // question again, never the way out.
    for entry in ["123456#", "654321#", "111111#"] {
        key(&mut engine, entry);
        outputs(&mut engine);
        key(&mut engine, "2");
        assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/enter_service"]);
        done(&mut engine);
    }
    key(&mut engine, "222222#");
    outputs(&mut engine);
    key(&mut engine, "1");
    let out = outputs(&mut engine);
    assert!(
        out.iter().any(|o| matches!(o, Output::Store(StoreRequest::CreateTicket { service_number: Some(n), .. }) if n == "222222")),
        "{out:?}"
    );
}

#[test]
fn wrong_keys_at_the_confirmation_use_up_attempts() {
    let mut engine = engine_for(None);
    key(&mut engine, "9");
    outputs(&mut engine);
    done(&mut engine);
    key(&mut engine, "123456#");
    outputs(&mut engine);
    key(&mut engine, "7");
    assert_eq!(
        prompt_names(&outputs(&mut engine))[0],
        "zh/you_entered",
        "a wrong key reads the number back again"
    );
    done(&mut engine);
    key(&mut engine, "7");
    // One retry allowed: the second wrong key ends the attempts.
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/goodbye"]);
}

#[test]
fn too_few_digits_before_the_timeout_is_invalid_but_enough_digits_complete() {
    let mut engine = engine_for(None);
    key(&mut engine, "9");
    outputs(&mut engine);
    done(&mut engine);
    key(&mut engine, "12");
    let timer = last_timer(&outputs(&mut engine)).unwrap();
    engine.handle(Input::Timer(timer), now());
    assert_eq!(
        prompt_names(&outputs(&mut engine)),
        ["zh/invalid", "zh/enter_service"]
    );
    done(&mut engine);
    key(&mut engine, "123456");
    let timer = last_timer(&outputs(&mut engine)).unwrap();
    engine.handle(Input::Timer(timer), now());
    assert_eq!(prompt_names(&outputs(&mut engine))[0], "zh/you_entered");
}

#[test]
fn a_mistyped_ticket_number_is_refused_before_any_lookup() {
    let mut engine = engine_for(None);
    key(&mut engine, "1");
    outputs(&mut engine);
    let good = valid_ticket_number();
    let mut digits: Vec<char> = good.chars().collect();
    let last = digits[9].to_digit(10).unwrap();
    digits[9] = char::from_digit((last + 1) % 10, 10).unwrap();
    let wrong: String = digits.into_iter().collect();
    key(&mut engine, &wrong);
    let out = outputs(&mut engine);
    assert!(!out.iter().any(|o| matches!(o, Output::Store(_))));
    assert_eq!(prompt_names(&out), ["zh/mistyped", "zh/enter_ticket"]);
    key(&mut engine, &good);
    let out = outputs(&mut engine);
    assert!(out.contains(&Output::Store(StoreRequest::LookupNumber {
        number: good.clone(),
        asker: Asker {
            phone: PhoneNumber::contact("13800138000").ok(),
            vouched: false,
        },
    })));
    engine.handle(Input::Store(ticket(&good)), now());
    assert_eq!(
        prompt_names(&outputs(&mut engine)),
        ["zh/status_is", "zh/status/dispatched"]
    );
}

#[test]
fn a_ticket_number_nobody_has_goes_to_not_found() {
    let mut engine = engine_for(None);
    key(&mut engine, "1");
    key(&mut engine, &valid_ticket_number());
    outputs(&mut engine);
    engine.handle(Input::Store(StoreReply::NotFound), now());
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/no_such_ticket"]);
}

#[test]
fn known_callers_skip_the_service_number_and_top_levels_hear_the_vip_prompt() {
    let mut engine = engine_for(Some(("甲".into(), CustomerLevel::LocalB)));
    key(&mut engine, "9");
    let out = outputs(&mut engine);
    assert!(matches!(
        out.last(),
        Some(Output::Store(StoreRequest::CreateTicket { .. }))
    ));
    let mut engine = engine_for(Some(("乙".into(), CustomerLevel::Group)));
    key(&mut engine, "9");
    assert_eq!(
        prompt_names(&outputs(&mut engine)),
        ["zh/welcome", "zh/vip"]
    );
}

#[test]
fn the_created_ticket_number_is_read_back_digit_by_digit() {
    let mut engine = engine_for(Some(("甲".into(), CustomerLevel::LocalB)));
    key(&mut engine, "9");
    outputs(&mut engine);
    engine.handle(Input::Store(ticket("1234567890")), now());
    let heard = prompt_names(&outputs(&mut engine));
    assert_eq!(heard[0], "zh/your_ticket");
    let digits: Vec<String> = "1234567890"
        .chars()
        .map(|c| format!("zh/digits/{c}"))
        .collect();
    assert_eq!(heard[1..], digits[..]);
    assert_eq!(engine.variables()["ticket.number"], "1234567890");
    assert_eq!(engine.tickets(), ["1234567890"]);
}

#[test]
fn a_store_failure_takes_the_error_path() {
    let mut engine = engine_for(Some(("甲".into(), CustomerLevel::LocalB)));
    key(&mut engine, "9");
    outputs(&mut engine);
    engine.handle(Input::Store(StoreReply::Failed("disk full".into())), now());
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/goodbye"]);
    assert!(engine
        .path()
        .iter()
        .any(|s| s.event == "store failed: disk full"));
}

#[test]
fn keys_during_a_prompt_without_barge_in_wait_for_the_next_menu() {
    let text = r#"
[dialplan]
name = "t"
entries = { "1" = "intro" }
[nodes.intro]
kind = "play"
say = ["legal_notice"]
next = "menu"
[nodes.menu]
kind = "menu"
say = ["menu"]
keys = { "2" = "end" }
on_failure = "end"
[nodes.end]
kind = "hangup"
"#;
    let mut engine = start(text, "intro", None);
    outputs(&mut engine);
    key(&mut engine, "2");
    assert!(outputs(&mut engine).is_empty(), "the notice keeps playing");
    done(&mut engine);
    let out = outputs(&mut engine);
    assert_eq!(
        out,
        [Output::Hangup {
            reason: "dialplan".into()
        }],
        "the kept key chose the menu item without its prompt"
    );
}

#[test]
fn a_plan_that_loops_without_waiting_is_stopped() {
    let text = r#"
[dialplan]
name = "t"
entries = { "1" = "a" }
[nodes.a]
kind = "goto"
next = "b"
[nodes.b]
kind = "goto"
next = "a"
"#;
    let mut engine = start(text, "a", None);
    assert_eq!(
        outputs(&mut engine),
        [Output::Hangup {
            reason: "dialplan loops without waiting".into()
        }]
    );
}

#[test]
fn wrong_keys_at_the_confirmation_use_up_the_retries() {
    let mut engine = engine_for(None);
    key(&mut engine, "9");
    outputs(&mut engine);
    done(&mut engine);
    key(&mut engine, "123456#");
    outputs(&mut engine);
    key(&mut engine, "7");
    assert_eq!(prompt_names(&outputs(&mut engine))[0], "zh/you_entered");
    // One retry allowed: the second wrong key ends the attempts.
    key(&mut engine, "7");
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/goodbye"]);
}

const SURVEY: &str = r##"
[dialplan]
name = "survey"
entries = { "survey" = "start" }

[nodes.start]
kind = "branch"
cases = [{ variable = "ticket.number", is_set = true, goto = "rate" }]
else = "no_ticket"

[nodes.rate]
kind = "menu"
say = ["rate"]
keys = { "1" = "one", "4" = "four", "7" = "seven" }
on_failure = "bye"

[nodes.one]
kind = "ticket_survey"
score = "1"
next = "thanks"
on_error = "failed"

[nodes.four]
kind = "set"
variable = "score"
value = "4"
next = "store"

[nodes.seven]
kind = "set"
variable = "score"
value = "7"
next = "store"

[nodes.store]
kind = "ticket_survey"
score = "${score}"
next = "thanks"
on_error = "failed"

[nodes.thanks]
kind = "hangup"
say = ["thanks"]

[nodes.failed]
kind = "hangup"
say = ["failed"]

[nodes.no_ticket]
kind = "hangup"
say = ["no_ticket"]

[nodes.bye]
kind = "hangup"
"##;

/// A call from `caller` (its number, or a name with none) to `dialled`
/// of `plan`, handed in by `by` with ticket 1234567890, which the store
/// answered with `lookup`.
fn handed_in(
    plan: &str,
    dialled: &str,
    caller: &str,
    by: Option<&str>,
    lookup: Option<StoreReply>,
) -> Engine {
    let info = CallInfo {
        caller: caller.into(),
        contact: PhoneNumber::contact(caller).ok(),
        dialled: dialled.into(),
        customer: None,
        transferred: Some(Transferred {
            by: by.map(Into::into),
            ticket: Some(TransferredTicket {
                reference: "1234567890".into(),
                lookup,
            }),
        }),
    };
    start_call(plan, "start", info)
}

/// A call to the survey plan, transferred in by agent7 with a ticket
/// reference that the store answered with `lookup`.
fn transferred(lookup: Option<StoreReply>) -> Engine {
    handed_in(SURVEY, "survey", "13800138000", Some("agent7"), lookup)
}

fn events(engine: &Engine) -> Vec<String> {
    engine
        .path()
        .iter()
        .map(|s| format!("{}: {}", s.node, s.event))
        .collect()
}

#[test]
fn a_transferred_call_has_its_ticket_loaded_before_the_first_node() {
    let mut engine = transferred(Some(ticket("1234567890")));
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/rate"]);
    assert_eq!(engine.variables()["ticket.number"], "1234567890");
    assert_eq!(engine.variables()["ticket.status"], "dispatched");
    assert_eq!(engine.variables()["transferred_by"], "agent7");
    assert_eq!(
        engine.tickets(),
        ["1234567890"],
        "linked to the call record"
    );
    assert_eq!(
        events(&engine)[..3],
        [
            "start: transferred in by agent7 with ticket 1234567890",
            "start: ticket 1234567890",
            "start: enter",
        ]
    );
}

#[test]
fn a_key_stores_its_score_on_the_loaded_ticket_then_thanks() {
    let mut engine = transferred(Some(ticket("1234567890")));
    outputs(&mut engine);
    key(&mut engine, "4");
    let out = outputs(&mut engine);
    assert_eq!(
        out.last(),
        Some(&Output::Store(StoreRequest::RecordSurvey {
            number: "1234567890".into(),
            score: 4,
            phone: "13800138000".into(),
            agent: Some("agent7".into()),
            asker: Asker {
                phone: PhoneNumber::contact("13800138000").ok(),
                vouched: true,
            },
        }))
    );
    engine.handle(Input::Store(ticket("1234567890")), now());
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/thanks"]);
    let mut engine = transferred(Some(ticket("1234567890")));
    key(&mut engine, "1");
    assert!(outputs(&mut engine).iter().any(|o| matches!(
        o,
        Output::Store(StoreRequest::RecordSurvey { score: 1, .. })
    )));
}

#[test]
fn a_score_outside_1_to_5_is_never_stored() {
    let mut engine = transferred(Some(ticket("1234567890")));
    outputs(&mut engine);
    key(&mut engine, "7");
    let out = outputs(&mut engine);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Store(_))),
        "{out:?}"
    );
    assert_eq!(prompt_names(&out), ["zh/failed"]);
    assert!(events(&engine).contains(&"store: cannot record the score: \"7\" is not 1 to 5".into()));
}

#[test]
fn a_mistyped_or_unknown_ticket_loads_nothing_and_says_why_in_the_path() {
    for (lookup, why) in [
        (None, "mistyped"),
        (Some(StoreReply::NotFound), "no such ticket"),
        (
            Some(StoreReply::Failed("disk full".into())),
            "store failed: disk full",
        ),
    ] {
        let mut engine = transferred(lookup);
        assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/no_ticket"]);
        assert!(!engine.variables().contains_key("ticket.number"));
        assert!(engine.tickets().is_empty());
        assert_eq!(
            events(&engine)[1],
            format!("start: ticket not loaded: {why}")
        );
    }
}

#[test]
fn a_survey_without_a_ticket_takes_its_error_path() {
    let mut engine = start(SURVEY, "four", None);
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/failed"]);
    assert!(events(&engine).contains(&"store: no ticket to survey".into()));
    assert!(!engine.variables().contains_key("transferred_by"));
}

#[test]
fn a_store_failure_while_storing_the_score_takes_the_error_path() {
    let mut engine = transferred(Some(ticket("1234567890")));
    key(&mut engine, "4");
    outputs(&mut engine);
    engine.handle(Input::Store(StoreReply::Failed("disk full".into())), now());
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/failed"]);
}

const CONFIRM: &str = r##"
[dialplan]
name = "outbound"
entries = { "confirm" = "start" }

[nodes.start]
kind = "branch"
cases = [{ variable = "ticket.number", is_set = true, goto = "ask" }]
else = "no_ticket"

[nodes.ask]
kind = "menu"
say = ["ask"]
keys = { "1" = "restored", "2" = "not_restored" }
on_failure = "bye"

[nodes.restored]
kind = "ticket_action"
action = "confirm"
next = "thanks"
on_error = "failed"

[nodes.not_restored]
kind = "ticket_action"
action = "reopen"
next = "sorry"
on_error = "failed"

[nodes.thanks]
kind = "hangup"
say = ["thanks"]

[nodes.sorry]
kind = "hangup"
say = ["sorry"]

[nodes.failed]
kind = "hangup"
say = ["failed"]

[nodes.no_ticket]
kind = "hangup"
say = ["no_ticket"]

[nodes.bye]
kind = "hangup"
"##;

/// A confirmation call to 13800138000 with its ticket loaded.
fn confirmation_call() -> Engine {
    handed_in(
        CONFIRM,
        "outbound:confirm",
        "13800138000",
        Some("outbound"),
        Some(ticket("1234567890")),
    )
}

#[test]
fn key_1_confirms_and_key_2_reopens_the_loaded_ticket_as_the_customer() {
    for (digit, action, after) in [
        ("1", CustomerAction::Confirm, "zh/thanks"),
        ("2", CustomerAction::Reopen, "zh/sorry"),
    ] {
        let mut engine = confirmation_call();
        assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/ask"]);
        key(&mut engine, digit);
        let out = outputs(&mut engine);
        assert_eq!(
            out.last(),
            Some(&Output::Store(StoreRequest::ApplyAction {
                number: "1234567890".into(),
                action,
                phone: "13800138000".into(),
                asker: Asker {
                    phone: PhoneNumber::contact("13800138000").ok(),
                    vouched: true,
                },
            }))
        );
        engine.handle(Input::Store(ticket("1234567890")), now());
        assert_eq!(prompt_names(&outputs(&mut engine)), [after]);
    }
}

#[test]
fn a_ticket_action_refused_or_failed_or_without_a_ticket_takes_its_error_path() {
    let mut engine = confirmation_call();
    key(&mut engine, "1");
    outputs(&mut engine);
    engine.handle(
        Input::Store(StoreReply::Failed(
            "cannot confirm a ticket that is closed".into(),
        )),
        now(),
    );
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/failed"]);
    let mut engine = start(CONFIRM, "restored", None);
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/failed"]);
    assert!(events(&engine).contains(&"restored: no ticket to act on".into()));
}

const CALLBACK: &str = r##"
[dialplan]
name = "callback"
entries = { "10000" = "start" }

[nodes.start]
kind = "branch"
cases = [{ variable = "ticket.number", is_set = true, goto = "request" }]
else = "request"

[nodes.request]
kind = "callback_request"
next = "will_call"
on_error = "failed"

[nodes.will_call]
kind = "hangup"
say = ["will_call"]

[nodes.failed]
kind = "hangup"
say = ["failed"]
"##;

#[test]
fn a_callback_is_requested_for_the_loaded_ticket_and_the_callers_number() {
    let mut engine = handed_in(
        CALLBACK,
        "10000",
        "13800138000",
        None,
        Some(ticket("1234567890")),
    );
    let out = outputs(&mut engine);
    assert_eq!(
        out.last(),
        Some(&Output::Store(StoreRequest::QueueCallback {
            number: "1234567890".into(),
            phone: "13800138000".into(),
            reporter: "13800138000".into(),
            asker: Asker {
                phone: PhoneNumber::contact("13800138000").ok(),
                vouched: true,
            },
        }))
    );
    engine.handle(Input::Store(ticket("1234567890")), now());
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/will_call"]);
}

#[test]
fn a_callback_without_a_ticket_or_a_number_takes_its_error_path() {
    let mut engine = start(CALLBACK, "request", None);
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/failed"]);
    assert!(events(&engine).contains(&"request: no ticket for the callback".into()));
    let mut engine = handed_in(
        CALLBACK,
        "10000",
        "anonymous",
        None,
        Some(ticket("1234567890")),
    );
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/failed"]);
    assert!(events(&engine).contains(&"request: no number to call back".into()));
}

#[test]
fn survey_scores_are_one_digit_from_1_to_5() {
    for (text, score) in [
        ("1", Some(1)),
        (" 5 ", Some(5)),
        ("0", None),
        ("6", None),
        ("45", None),
        ("", None),
        ("４", None),
    ] {
        assert_eq!(survey_score(text), score, "{text:?}");
    }
}

const IDENTITY: &str = r##"
[dialplan]
name = "identity"
entries = { "1" = "mine", "2" = "other", "3" = "agent", "4" = "report" }

[nodes.mine]
kind = "ticket_lookup"
by = "caller"
found = "bye"
not_found = "none"
on_error = "bye"

[nodes.other]
kind = "ticket_lookup"
by = "number"
number = "1234567890"
found = "bye"
not_found = "none"
on_error = "bye"

[nodes.agent]
kind = "transfer"
target = "agents"
on_failure = "why"

[nodes.why]
kind = "branch"
cases = [{ variable = "transfer.failure", equals = "busy", goto = "busy" }]
else = "none"

[nodes.report]
kind = "branch"
cases = [{ variable = "contact", is_phone = true, goto = "create" }]
else = "ask"

[nodes.ask]
kind = "collect"
say = ["enter"]
variable = "contact"
min_digits = 4
max_digits = 15
terminator = "#"
validate = "phone"
next = "create"
on_failure = "create"

[nodes.create]
kind = "ticket_create"
type = "consultation"
category = "ict"
description = "x"
next = "bye"
on_error = "bye"

[nodes.busy]
kind = "hangup"
say = ["busy"]

[nodes.none]
kind = "hangup"
say = ["none"]

[nodes.bye]
kind = "hangup"
"##;

/// A call without a known number, starting at `node` of IDENTITY.
fn anonymous(node: &str) -> Engine {
    let info = CallInfo {
        caller: "anonymous".into(),
        contact: None,
        dialled: "1".into(),
        customer: None,
        transferred: None,
    };
    start_call(IDENTITY, node, info)
}

#[test]
fn a_caller_without_a_number_has_no_tickets_of_their_own_and_the_store_is_not_asked() {
    let mut engine = anonymous("mine");
    let out = outputs(&mut engine);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Store(_))),
        "{out:?}"
    );
    assert_eq!(prompt_names(&out), ["zh/none"]);
    assert!(events(&engine).contains(&"mine: not found: the caller's number is unknown".into()));
}

#[test]
fn withheld_facts_set_only_the_number_and_the_state() {
    let mut engine = anonymous("other");
    let out = outputs(&mut engine);
    assert_eq!(
        out.last(),
        Some(&Output::Store(StoreRequest::LookupNumber {
            number: "1234567890".into(),
            asker: Asker {
                phone: None,
                vouched: false
            },
        }))
    );
    let withheld = StoreReply::Ticket {
        ticket: TicketFacts {
            number: "1234567890".into(),
            status: "dispatched".into(),
            details: None,
        },
        open_count: 3,
        position: None,
    };
    engine.handle(Input::Store(withheld), now());
    let v = engine.variables();
    assert_eq!(v["ticket.details"], "withheld");
    assert_eq!(v["ticket.status"], "dispatched");
    for hidden in [
        "ticket.type",
        "ticket.category",
        "ticket.repair_due",
        "ticket.created_at",
        "tickets.open_count",
    ] {
        assert!(!v.contains_key(hidden), "{hidden}");
    }
}

#[test]
fn a_failed_transfer_tells_the_plan_why() {
    for (failure, heard) in [
        (TransferFailure::Busy, "zh/busy"),
        (TransferFailure::Unavailable, "zh/none"),
    ] {
        let mut engine = anonymous("agent");
        assert!(outputs(&mut engine).contains(&Output::Transfer {
            target: "agents".into()
        }));
        engine.handle(Input::TransferFailed(failure), now());
        assert_eq!(prompt_names(&outputs(&mut engine)), [heard]);
        assert_eq!(engine.variables()["transfer.failure"], failure.code());
    }
}

#[test]
fn only_a_number_that_can_be_called_back_is_collected_as_the_contact() {
    let mut engine = anonymous("report");
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/enter"]);
    done(&mut engine);
    key(&mut engine, "8001#");
    let out = outputs(&mut engine);
    assert!(!out.iter().any(|o| matches!(o, Output::Store(_))));
    assert!(events(&engine).contains(&"ask: invalid input 8001".into()));
    key(&mut engine, "13700137000#");
    let out = outputs(&mut engine);
    let Some(Output::Store(StoreRequest::CreateTicket {
        contact_phone,
        reporter,
        ..
    })) = out.last()
    else {
        panic!("{out:?}");
    };
    assert_eq!(contact_phone.as_deref(), Some("13700137000"));
    assert_eq!(reporter, "anonymous");
}

#[test]
fn the_caller_s_own_number_skips_the_question() {
    let info = CallInfo {
        caller: "anonymous".into(),
        contact: PhoneNumber::contact("+8613900139000").ok(),
        dialled: "4".into(),
        customer: None,
        transferred: None,
    };
    let mut engine = start_call(IDENTITY, "report", info);
    let out = outputs(&mut engine);
    assert!(matches!(
        out.last(),
        Some(Output::Store(StoreRequest::CreateTicket { contact_phone: Some(c), reporter, .. }))
            if c == "13900139000" && reporter == "13900139000"
    ));
}

#[test]
fn the_time_limit_stops_the_engine_where_it_is() {
    let mut engine = anonymous("report");
    outputs(&mut engine);
    engine.handle(Input::TimeLimit, now());
    assert!(engine.is_finished());
    key(&mut engine, "13700137000#");
    assert!(outputs(&mut engine).is_empty(), "nothing after the limit");
    assert_eq!(
        events(&engine).last().map(String::as_str),
        Some("ask: time limit reached")
    );
}

const RECORD_PLAN: &str = r##"
[dialplan]
name = "record"
entries = { "1" = "describe", "2" = "reviewed" }

[nodes.describe]
kind = "record"
say = ["describe_fault", "beep"]
max_secs = 30
silence_secs = 2
no_speech_secs = 4
after = ["description_recorded"]
next = "bye"
on_empty = "skipped"
on_error = "failed"

[nodes.reviewed]
kind = "record"
say = ["describe_fault", "beep"]
review = { say = ["keep_or_again"] }
next = "bye"
on_empty = "skipped"
on_error = "failed"

[nodes.bye]
kind = "hangup"
say = ["goodbye"]

[nodes.skipped]
kind = "hangup"
say = ["nothing_recorded"]

[nodes.failed]
kind = "hangup"
say = ["system_busy"]
"##;

fn recorded(engine: &mut Engine, seconds: u64, heard_speech: bool) {
    engine.handle(
        Input::Recorded {
            end: if heard_speech {
                RecordEnd::Silence
            } else {
                RecordEnd::NoSpeech
            },
            duration: Duration::from_secs(seconds),
            heard_speech,
        },
        now(),
    );
}

fn recording_spec(outputs: &[Output]) -> Option<RecordSpec> {
    outputs.iter().find_map(|o| match o {
        Output::StartRecording(spec) => Some(*spec),
        _ => None,
    })
}

#[test]
fn a_description_is_recorded_after_the_prompt_and_kept_on_the_ticket() {
    let mut engine = start(RECORD_PLAN, "describe", None);
    let out = outputs(&mut engine);
    assert_eq!(prompt_names(&out), ["zh/describe_fault", "zh/beep"]);
    assert!(matches!(out[0], Output::Play { barge_in: true, .. }));
    done(&mut engine);
    let out = outputs(&mut engine);
    assert_eq!(
        recording_spec(&out),
        Some(RecordSpec {
            max: Duration::from_secs(30),
            silence: Duration::from_secs(2),
            no_speech: Duration::from_secs(4),
            level: 300,
        })
    );
    assert!(engine.is_recording());
    // Until the caller speaks, the engine times the wait for speech.
    assert!(out.contains(&Output::StartTimer {
        id: 1,
        after: Duration::from_secs(4)
    }));
    engine.handle(Input::SpeechStarted, now());
    let out = outputs(&mut engine);
    assert_eq!(
        out,
        [Output::StartTimer {
            id: 2,
            after: Duration::from_secs(32)
        }]
    );
    // The first timer is stale now: it stops nothing.
    engine.handle(Input::Timer(1), now());
    assert!(outputs(&mut engine).is_empty());
    key(&mut engine, "5");
    assert!(outputs(&mut engine).is_empty(), "other keys mean nothing");
    recorded(&mut engine, 12, true);
    let out = outputs(&mut engine);
    assert_eq!(
        out,
        [Output::Store(StoreRequest::SaveRecording { number: None })]
    );
    engine.handle(Input::Store(StoreReply::Saved { id: "7".into() }), now());
    let out = outputs(&mut engine);
    assert_eq!(prompt_names(&out), ["zh/description_recorded"]);
    assert_eq!(engine.variables()["recording.id"], "7");
    done(&mut engine);
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/goodbye"]);
    let path = events(&engine);
    assert!(
        path.contains(&"describe: recorded 12.0 s (silence)".to_string()),
        "{path:?}"
    );
}

#[test]
fn the_finish_key_ends_a_recording_and_skips_one_not_started() {
    let mut engine = start(RECORD_PLAN, "describe", None);
    outputs(&mut engine);
    done(&mut engine);
    outputs(&mut engine);
    engine.handle(Input::SpeechStarted, now());
    outputs(&mut engine);
    key(&mut engine, "#");
    assert_eq!(outputs(&mut engine), [Output::StopRecording]);
    engine.handle(
        Input::Recorded {
            end: RecordEnd::Stopped,
            duration: Duration::from_secs(3),
            heard_speech: true,
        },
        now(),
    );
    assert!(matches!(
        outputs(&mut engine)[..],
        [Output::Store(StoreRequest::SaveRecording { .. })]
    ));

    // # during the prompt: nothing is recorded.
    let mut engine = start(RECORD_PLAN, "describe", None);
    outputs(&mut engine);
    key(&mut engine, "#");
    let out = outputs(&mut engine);
    assert_eq!(out[0], Output::StopPlayback);
    assert_eq!(recording_spec(&out), None);
    assert_eq!(prompt_names(&out), ["zh/nothing_recorded"]);
    assert!(events(&engine).contains(&"describe: skipped".to_string()));
}

#[test]
fn silence_or_no_audio_at_all_takes_on_empty() {
    // The media side heard nothing but noise.
    let mut engine = start(RECORD_PLAN, "describe", None);
    outputs(&mut engine);
    done(&mut engine);
    outputs(&mut engine);
    recorded(&mut engine, 0, false);
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/nothing_recorded"]);

    // No RTP at all: the engine's timer stops the recording.
    let mut engine = start(RECORD_PLAN, "describe", None);
    outputs(&mut engine);
    done(&mut engine);
    let timer = last_timer(&outputs(&mut engine)).expect("a timer");
    engine.handle(Input::Timer(timer), now());
    assert_eq!(outputs(&mut engine), [Output::StopRecording]);
    engine.handle(
        Input::Recorded {
            end: RecordEnd::Stopped,
            duration: Duration::ZERO,
            heard_speech: false,
        },
        now(),
    );
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/nothing_recorded"]);
}

#[test]
fn a_review_keeps_records_again_and_keeps_on_silence() {
    let mut engine = start(RECORD_PLAN, "reviewed", None);
    outputs(&mut engine);
    done(&mut engine);
    outputs(&mut engine);
    recorded(&mut engine, 5, true);
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/keep_or_again"]);
    // 2: the prompt and the recording again.
    key(&mut engine, "2");
    let out = outputs(&mut engine);
    assert_eq!(out[0], Output::StopPlayback);
    assert_eq!(prompt_names(&out), ["zh/describe_fault", "zh/beep"]);
    done(&mut engine);
    assert!(recording_spec(&outputs(&mut engine)).is_some());
    recorded(&mut engine, 6, true);
    outputs(&mut engine);
    done(&mut engine);
    let timer = last_timer(&outputs(&mut engine)).expect("the review waits");
    engine.handle(Input::Timer(timer), now());
    assert!(matches!(
        outputs(&mut engine)[..],
        [Output::Store(StoreRequest::SaveRecording { .. })]
    ));
    assert!(events(&engine).contains(&"reviewed: no answer: kept".to_string()));
    // A failed store takes on_error.
    engine.handle(Input::Store(StoreReply::Failed("disk full".into())), now());
    assert_eq!(prompt_names(&outputs(&mut engine)), ["zh/system_busy"]);
}

#[test]
fn a_recording_on_a_ticket_names_it() {
    let mut engine = start(RECORD_PLAN, "describe", None);
    engine
        .variables
        .insert("ticket.number".into(), "2024000017".into());
    outputs(&mut engine);
    done(&mut engine);
    outputs(&mut engine);
    recorded(&mut engine, 4, true);
    assert_eq!(
        outputs(&mut engine),
        [Output::Store(StoreRequest::SaveRecording {
            number: Some("2024000017".into())
        })]
    );
}

const LISTEN_PLAN: &str = r##"
[dialplan]
name = "listen"
entries = { "1" = "main" }

[nodes.main]
kind = "menu"
say = ["main_menu"]
keys = { "9" = "fault", "1" = "status" }
listen = { "9" = ["故障", "fault"], "1" = ["查询"] }
retries = 1
invalid = ["invalid"]
on_failure = "bye"

[nodes.fault]
kind = "hangup"
say = ["fault_intro"]

[nodes.status]
kind = "hangup"
say = ["status"]

[nodes.bye]
kind = "hangup"
say = ["goodbye"]
"##;

#[test]
fn a_listening_menu_asks_for_its_phrases_and_speech_presses_the_key() {
    let mut engine = start(LISTEN_PLAN, "main", None);
    let out = outputs(&mut engine);
    let Some(Output::Listen(grammar)) = out.first() else {
        panic!("listens first: {out:?}");
    };
    assert_eq!(grammar.id, "listen/main");
    assert_eq!(
        grammar.phrases,
        [('1', "查询"), ('9', "故障"), ('9', "fault")].map(|(k, p)| (k, p.to_string()))
    );
    // The caller's voice cuts the prompt short, as a key would.
    engine.handle(Input::SpeechStarted, now());
    let out = outputs(&mut engine);
    assert_eq!(out[0], Output::StopPlayback);
    engine.handle(Input::Speech(Some(('9', "故障".into(), 0.8))), now());
    let out = outputs(&mut engine);
    assert_eq!(prompt_names(&out), ["zh/fault_intro"]);
    assert!(!out.contains(&Output::StopListening), "it already ended");
    let path = events(&engine);
    assert!(
        path.contains(&"main: speech: 故障 (0.80) as key 9".to_string()),
        "{path:?}"
    );
}

#[test]
fn unmatched_speech_is_an_invalid_choice_and_a_key_stops_listening() {
    let mut engine = start(LISTEN_PLAN, "main", None);
    outputs(&mut engine);
    done(&mut engine);
    outputs(&mut engine);
    engine.handle(Input::Speech(None), now());
    let out = outputs(&mut engine);
    assert!(
        matches!(out.first(), Some(Output::Listen(_))),
        "listens again: {out:?}"
    );
    assert_eq!(prompt_names(&out), ["zh/invalid", "zh/main_menu"]);
    key(&mut engine, "1");
    let out = outputs(&mut engine);
    assert_eq!(out[..2], [Output::StopPlayback, Output::StopListening]);
    assert_eq!(prompt_names(&out), ["zh/status"]);
    // A late result changes nothing.
    engine.handle(Input::Speech(Some(('9', "fault".into(), 0.9))), now());
    assert!(outputs(&mut engine).is_empty());
}
